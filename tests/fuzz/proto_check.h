/* Properties of the codec checked by every target that decodes Envelopes
 * (fuzz_proto_worker.c, fuzz_proto_supervisor.c, fuzz_fastchan.c). */
#ifndef SYSGATE_FUZZ_PROTO_CHECK_H
#define SYSGATE_FUZZ_PROTO_CHECK_H

#include <errno.h>

#include "fuzz.h"
#include "protocol.h"

typedef int (*proto_validate_fn)(const Sysgate__V1__Envelope *m, struct sg_err *err);

/* Decodes and validates buf as the receiving side does. Returns the
 * envelope when both pass (free it), else NULL; checks that a failure is
 * one of the documented errors, with a message, and leaves nothing behind. */
static inline Sysgate__V1__Envelope *proto_check_receive(const void *buf, size_t len,
							 proto_validate_fn validate)
{
	Sysgate__V1__Envelope *m = NULL;
	struct sg_err err = { "" };
	int r = proto_decode(buf, len, &m, &err);
	if (r < 0) {
		FUZZ_CHECK(m == NULL);
		FUZZ_CHECK(r == -EMSGSIZE || r == -EBADMSG || r == -ENOMEM ||
			   r == -EPROTONOSUPPORT);
		FUZZ_CHECK(err.msg[0] != '\0');
		return NULL;
	}
	FUZZ_CHECK(m != NULL && m->version == SYSGATE_PROTOCOL_VERSION);
	r = validate(m, &err);
	if (r < 0) {
		FUZZ_CHECK(r == -EPROTO);
		FUZZ_CHECK(err.msg[0] != '\0');
		proto_envelope_free(m);
		return NULL;
	}
	return m;
}

/* What a peer accepted survives re-encoding: the encoder takes it, and the
 * decoder and the same validator take the result (unless the re-encoding,
 * denser than the input, trips the decode budget). */
static inline void proto_check_roundtrip(const Sysgate__V1__Envelope *m, proto_validate_fn validate)
{
	_cleanup_free_ void *buf = NULL;
	size_t len = 0;
	struct sg_err err = { "" };
	int r = proto_encode(m, &buf, &len, &err);
	FUZZ_CHECK(r == 0 || r == -EMSGSIZE);
	if (r < 0)
		return;
	Sysgate__V1__Envelope *again _cleanup_envelope_ = NULL;
	r = proto_decode(buf, len, &again, &err);
	FUZZ_CHECK(r == 0 || r == -EMSGSIZE);
	if (r < 0)
		return;
	FUZZ_CHECK(again->body_case == m->body_case);
	FUZZ_CHECK(validate(again, &err) == 0);
}

/* A text field a validator accepted: there, NUL-terminated within cap. */
static inline void proto_check_text(const char *s, size_t cap)
{
	FUZZ_CHECK(s != NULL);
	FUZZ_CHECK(strnlen(s, cap + 1) <= cap);
}

#endif
