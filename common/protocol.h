/* The wire protocol between the supervisor and handler workers (docs/protocol.md):
 * caps, and a codec that validates what it decodes. The schema is
 * schema/sysgate.proto; its generated C code (sysgate.pb-c.h) is built into
 * the build tree.
 *
 * Workers are untrusted peers. The receiving side of a worker link runs
 *   proto_decode()               size cap, protobuf framing, version, a body;
 *   proto_validate_from_worker() kinds a worker may send, field ranges, caps;
 * and treats any failure as the worker's failure (the registration's
 * exception policy). Whether a seq or request_id is one the worker holds
 * is the router's business; whether a registration's syscall exists or is
 * denied is the registry's.
 *
 * Errors: a negative errno, and one line in *err naming what was wrong:
 *   -EMSGSIZE        message over PROTO_MAX_MESSAGE (decode, encode), or one
 *                    that would take more than its budget decoded;
 *   -EBADMSG         empty, not a protobuf Envelope, or one without a body;
 *   -ENOMEM          out of memory;
 *   -EPROTONOSUPPORT envelope version other than SYSGATE_PROTOCOL_VERSION;
 *   -EPROTO          a kind the sender may not send, or a field out of range;
 *   -EINVAL          a caller's mistake (NULL message, encoding without
 *                    version or body).
 *
 * Note: the generated *__INIT macros cast away const (protobuf_c_empty_string)
 * and so do not build with -Wcast-qual; initialize with the generated
 * sysgate__v1__*__init() functions instead. */
#ifndef SYSGATE_PROTOCOL_H
#define SYSGATE_PROTOCOL_H

#include <stddef.h>

#include "sysgate.pb-c.h"
#include "util.h"

/* Envelope.version of this code. Bumped by any change that an older peer
 * cannot safely ignore (schema/README.md). */
#define SYSGATE_PROTOCOL_VERSION 1u

/* Caps, enforced on every message received. An encoded Envelope: a full
 * InjectBytes or MemReply plus headroom. */
#define PROTO_MAX_MESSAGE ((1u << 20) + (64u << 10))
#define PROTO_MAX_INJECT (1u << 20)   /* InjectBytes data, bytes */
#define PROTO_MAX_MEM (1u << 20)      /* MemRequest length, MemReply data, bytes */
#define PROTO_MAX_NAME 64u            /* Hello worker_name, bytes of UTF-8 */
#define PROTO_MAX_SANDBOX 255u        /* sandbox name, bytes of UTF-8 */
#define PROTO_MAX_SYSCALL_NAME 64u    /* Registration syscall_name */
#define PROTO_MAX_REGISTRATIONS 1024u /* per Hello */
#define PROTO_MAX_TEXT 1024u          /* Goodbye reason, Error message, Welcome reason */
#define PROTO_MAX_RECORD (64u << 10)  /* Record json, bytes */
#define PROTO_TOKEN_SIZE 32u          /* Hello token, exactly */
#define PROTO_ARGS 6u                 /* Snapshot args, exactly */
#define PROTO_MAX_PATHS PROTO_ARGS    /* Snapshot paths: at most one per argument */
#define PROTO_MAX_PATH 4096u          /* PathArg path, bytes (PATH_MAX) */
#define PROTO_MAX_ERRNO 4095          /* Errno errnum, MemReply error, Error code */
#define PROTO_MAX_SIGNAL 64           /* Kill signal (SIGRTMAX) */
#define PROTO_INJECT_FLAGS                                                                         \
	(SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__WRITABLE |                                       \
	 SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__NO_CLOEXEC |                                     \
	 SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__TRACK)

/* Decoding allocates at most PROTO_DECODE_BUDGET_BASE + len *
 * PROTO_DECODE_BUDGET_FACTOR bytes for a len-byte message: a legitimate
 * message needs far less, a crafted one (thousands of empty repeated
 * entries) is refused instead of multiplying its size in memory. */
#define PROTO_DECODE_BUDGET_BASE (256u << 10)
#define PROTO_DECODE_BUDGET_FACTOR 8u

/* Unpacks the Envelope in buf[0..len) into *out (free it with
 * proto_envelope_free() or scope it with _cleanup_envelope_). Rejects
 * empty and oversized input before unpacking, input that does not unpack,
 * a version other than SYSGATE_PROTOCOL_VERSION and an envelope without a
 * body. Checks nothing inside the body: validate before use. *out is NULL
 * on failure. */
int proto_decode(const void *buf, size_t len, Sysgate__V1__Envelope **out, struct sg_err *err);

/* 0 if m is a message a worker may send (Hello, Action, MemRequest, Goodbye,
 * Error) with every field within the protocol's rules; -EPROTO otherwise. */
int proto_validate_from_worker(const Sysgate__V1__Envelope *m, struct sg_err *err);

/* Same for what the supervisor may send (Welcome, Snapshot, MemReply,
 * Goodbye, Error): what a worker checks before trusting a snapshot. */
int proto_validate_from_supervisor(const Sysgate__V1__Envelope *m, struct sg_err *err);

/* Packs m into a malloc'd *buf of *len bytes (the caller frees it). Refuses
 * an envelope without version SYSGATE_PROTOCOL_VERSION or body (-EINVAL)
 * and one the peer would refuse as oversized (-EMSGSIZE). Does not check
 * the body's fields. */
int proto_encode(const Sysgate__V1__Envelope *m, void **buf, size_t *len, struct sg_err *err);

struct fastchan_end;

/* Packs m straight into the next record of a fast-channel ring
 * (fastchan.h): 0, or fastchan_reserve()'s error (-EAGAIN full, -EMSGSIZE
 * too big for a ring, -EPROTO the peer broke it). Waking the consumer is the
 * caller's. */
int proto_ring_put(struct fastchan_end *e, const Sysgate__V1__Envelope *m);

/* Frees an envelope from proto_decode() (NULL is fine). Not for envelopes
 * the caller built itself. */
static inline void proto_envelope_free(Sysgate__V1__Envelope *m)
{
	if (m)
		protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* Initializes *env as an Envelope of this version with body `body`; the
 * caller points the matching member at its message. */
static inline void proto_envelope_init(Sysgate__V1__Envelope *env,
				       Sysgate__V1__Envelope__BodyCase body)
{
	sysgate__v1__envelope__init(env);
	env->version = SYSGATE_PROTOCOL_VERSION;
	env->body_case = body;
}

static inline void cleanup_envelopep(Sysgate__V1__Envelope **m)
{
	proto_envelope_free(*m);
}

/* Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL; hand it on with
 * steal_ptr(&m). */
#define _cleanup_envelope_ __attribute__((cleanup(cleanup_envelopep)))

#endif
