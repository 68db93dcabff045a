/* The wire codec: decoding with caps, validation of every field a peer
 * controls, encoding. See protocol.h. */
#include "protocol.h"

#include "fastchan.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sysgate.h"

/* The schema's ExceptionPolicy is the SDK's enum sg_exception. */
_Static_assert((int)SYSGATE__V1__EXCEPTION_POLICY__KILL == SG_EXC_KILL, "KILL");
_Static_assert((int)SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM == SG_EXC_DENY_EPERM, "DENY_EPERM");
_Static_assert((int)SYSGATE__V1__EXCEPTION_POLICY__CONTINUE == SG_EXC_CONTINUE, "CONTINUE");
_Static_assert((int)SYSGATE__V1__EXCEPTION_POLICY__DENY_EIO == SG_EXC_DENY_EIO, "DENY_EIO");

/* ---- Decoding ---------------------------------------------------------- */

/* A malloc-backed allocator that refuses to hand out more than `left`
 * bytes in total. Its blocks are plain malloc blocks, so the result is
 * freed with the default allocator (protobuf_c_message_free_unpacked(m,
 * NULL)). */
struct budget {
	size_t left;
	bool exceeded;
	bool out_of_memory;
};

static void *budget_alloc(void *data, size_t size)
{
	struct budget *b = data;
	if (size > b->left) {
		b->exceeded = true;
		return NULL;
	}
	void *p = malloc(size);
	if (!p) {
		b->out_of_memory = true;
		return NULL;
	}
	b->left -= size;
	return p;
}

static void budget_free(void *data, void *p)
{
	(void)data;
	free(p);
}

static const char *body_name(Sysgate__V1__Envelope__BodyCase body)
{
	switch (body) {
	case SYSGATE__V1__ENVELOPE__BODY_HELLO:
		return "Hello";
	case SYSGATE__V1__ENVELOPE__BODY_WELCOME:
		return "Welcome";
	case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT:
		return "Snapshot";
	case SYSGATE__V1__ENVELOPE__BODY_ACTION:
		return "Action";
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST:
		return "MemRequest";
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
		return "MemReply";
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		return "Goodbye";
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		return "Error";
	case SYSGATE__V1__ENVELOPE__BODY_RECORD:
		return "Record";
	case SYSGATE__V1__ENVELOPE__BODY_INJECTED:
		return "Injected";
	case SYSGATE__V1__ENVELOPE__BODY__NOT_SET:
	default:
		return "no body";
	}
}

int proto_decode(const void *buf, size_t len, Sysgate__V1__Envelope **out, struct sg_err *err)
{
	if (!out)
		return err_set(err, EINVAL, "proto_decode: no place for the result");
	*out = NULL;
	if (!buf || len == 0)
		return err_set(err, EBADMSG, "empty message");
	if (len > PROTO_MAX_MESSAGE)
		return err_set(err, EMSGSIZE, "message of %zu bytes exceeds the %u-byte cap", len,
			       PROTO_MAX_MESSAGE);

	struct budget budget = {
		.left = PROTO_DECODE_BUDGET_BASE + len * PROTO_DECODE_BUDGET_FACTOR,
	};
	ProtobufCAllocator allocator = {
		.alloc = budget_alloc,
		.free = budget_free,
		.allocator_data = &budget,
	};
	Sysgate__V1__Envelope *m _cleanup_envelope_ =
		sysgate__v1__envelope__unpack(&allocator, len, buf);
	if (!m) {
		if (budget.exceeded)
			return err_set(
				err, EMSGSIZE,
				"message of %zu bytes would take more than %zu bytes decoded", len,
				PROTO_DECODE_BUDGET_BASE + len * PROTO_DECODE_BUDGET_FACTOR);
		if (budget.out_of_memory)
			return err_set(err, ENOMEM,
				       "decoding a message of %zu bytes: out of memory", len);
		return err_set(err, EBADMSG,
			       "malformed message of %zu bytes (truncated, or not a sysgate.v1 "
			       "Envelope)",
			       len);
	}
	if (m->version != SYSGATE_PROTOCOL_VERSION)
		return err_set(err, EPROTONOSUPPORT, "protocol version %u, expected %u", m->version,
			       SYSGATE_PROTOCOL_VERSION);
	if (m->body_case == SYSGATE__V1__ENVELOPE__BODY__NOT_SET)
		return err_set(err, EBADMSG,
			       "envelope without a body (or of a kind unknown to "
			       "protocol version %u)",
			       SYSGATE_PROTOCOL_VERSION);
	*out = steal_ptr(&m);
	return 0;
}

/* ---- Field checks ------------------------------------------------------ */

/* s is UTF-8 without control characters (C0 and DEL): safe in a one-line
 * message and in JSON. Overlong forms, surrogates and code points past
 * U+10FFFF are invalid UTF-8. */
static bool text_printable(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0, k; i < len; i += k) {
		k = utf8_char(p + i, len - i);
		if (!k || (k == 1 && (p[i] < 0x20 || p[i] == 0x7f)))
			return false;
	}
	return true;
}

/* A text field of `what`: present, non-empty if required, at most cap
 * bytes, printable UTF-8. */
static int check_text(const char *what, const char *s, bool required, size_t cap,
		      struct sg_err *err)
{
	if (!s)
		return err_set(err, EPROTO, "%s is missing", what);
	size_t len = strnlen(s, cap + 1);
	if (len > cap)
		return err_set(err, EPROTO, "%s is longer than %zu bytes", what, cap);
	if (len == 0 && required)
		return err_set(err, EPROTO, "%s is empty", what);
	if (!text_printable(s, len))
		return err_set(err, EPROTO, "%s is not printable UTF-8", what);
	return 0;
}

static bool errno_valid(int32_t e)
{
	return e >= 1 && e <= PROTO_MAX_ERRNO;
}

static bool exception_policy_known(Sysgate__V1__ExceptionPolicy p)
{
	switch (p) {
	case SYSGATE__V1__EXCEPTION_POLICY__KILL:
	case SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM:
	case SYSGATE__V1__EXCEPTION_POLICY__CONTINUE:
	case SYSGATE__V1__EXCEPTION_POLICY__DENY_EIO:
		return true;
	default:
		return false;
	}
}

/* ---- What a worker sends ----------------------------------------------- */

static int check_registration(size_t i, const Sysgate__V1__Registration *r, struct sg_err *err)
{
	if (!r)
		return err_set(err, EPROTO, "Hello: registration %zu is missing", i);
	char what[64];
	snprintf(what, sizeof(what), "Hello: registration %zu: syscall name", i);
	int ret = check_text(what, r->syscall_name, false, PROTO_MAX_SYSCALL_NAME, err);
	if (ret < 0)
		return ret;
	if (!exception_policy_known(r->on_exception))
		return err_set(err, EPROTO, "Hello: registration %zu: unknown exception policy %d",
			       i, (int)r->on_exception);
	return 0;
}

static int check_hello(const Sysgate__V1__Hello *h, struct sg_err *err)
{
	if (h->protocol_version != SYSGATE_PROTOCOL_VERSION)
		return err_set(err, EPROTO, "Hello: protocol version %u, expected %u",
			       h->protocol_version, SYSGATE_PROTOCOL_VERSION);
	int r = check_text("Hello: worker name", h->worker_name, true, PROTO_MAX_NAME, err);
	if (r < 0)
		return r;
	if (h->token.len != PROTO_TOKEN_SIZE)
		return err_set(err, EPROTO, "Hello: token of %zu bytes, expected %u", h->token.len,
			       PROTO_TOKEN_SIZE);
	if (h->n_registrations > PROTO_MAX_REGISTRATIONS)
		return err_set(err, EPROTO, "Hello: %zu registrations, at most %u allowed",
			       h->n_registrations, PROTO_MAX_REGISTRATIONS);
	for (size_t i = 0; i < h->n_registrations; i++) {
		r = check_registration(i, h->registrations[i], err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_action(const Sysgate__V1__Action *a, struct sg_err *err)
{
	if (a->seq == 0)
		return err_set(err, EPROTO, "Action: seq 0 (missing)");
	switch (a->kind_case) {
	case SYSGATE__V1__ACTION__KIND_DO_CONTINUE:
		return 0;
	case SYSGATE__V1__ACTION__KIND_DO_ERRNO:
		if (!errno_valid(a->do_errno->errnum))
			return err_set(err, EPROTO, "Action %llu: errno %d outside 1..%d",
				       (unsigned long long)a->seq, a->do_errno->errnum,
				       PROTO_MAX_ERRNO);
		return 0;
	case SYSGATE__V1__ACTION__KIND_DO_RETURN:
		return 0;
	case SYSGATE__V1__ACTION__KIND_DO_KILL:
		if (a->do_kill->signal < 1 || a->do_kill->signal > PROTO_MAX_SIGNAL)
			return err_set(err, EPROTO, "Action %llu: kill signal %d outside 1..%d",
				       (unsigned long long)a->seq, a->do_kill->signal,
				       PROTO_MAX_SIGNAL);
		return 0;
	case SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES:
		if (a->do_inject_bytes->data.len > PROTO_MAX_INJECT)
			return err_set(err, EPROTO,
				       "Action %llu: inject of %zu bytes exceeds the %u-byte cap",
				       (unsigned long long)a->seq, a->do_inject_bytes->data.len,
				       PROTO_MAX_INJECT);
		if (a->do_inject_bytes->flags & ~(uint32_t)PROTO_INJECT_FLAGS)
			return err_set(err, EPROTO, "Action %llu: unknown inject flags %#x",
				       (unsigned long long)a->seq,
				       a->do_inject_bytes->flags & ~(uint32_t)PROTO_INJECT_FLAGS);
		return 0;
	case SYSGATE__V1__ACTION__KIND_DO_FAIL:
		return check_text("Action: failure reason", a->do_fail->reason, false,
				  PROTO_MAX_TEXT, err);
	case SYSGATE__V1__ACTION__KIND__NOT_SET:
	default:
		return err_set(err, EPROTO,
			       "Action %llu: no action kind (or one unknown to "
			       "protocol version %u)",
			       (unsigned long long)a->seq, SYSGATE_PROTOCOL_VERSION);
	}
}

static const char *mem_op_name(Sysgate__V1__MemRequest__Op op)
{
	switch (op) {
	case SYSGATE__V1__MEM_REQUEST__OP__READ:
		return "read";
	case SYSGATE__V1__MEM_REQUEST__OP__READ_CSTR:
		return "read_cstr";
	case SYSGATE__V1__MEM_REQUEST__OP__WRITE:
		return "write";
	case SYSGATE__V1__MEM_REQUEST__OP__OP_UNSPECIFIED:
	default:
		return NULL;
	}
}

static int check_mem_request(const Sysgate__V1__MemRequest *q, struct sg_err *err)
{
	unsigned long long id = q->request_id;
	if (id == 0)
		return err_set(err, EPROTO, "MemRequest: request_id 0 (missing)");
	if (q->seq == 0)
		return err_set(err, EPROTO, "MemRequest %llu: seq 0 (missing)", id);
	const char *op = mem_op_name(q->op);
	if (!op)
		return err_set(err, EPROTO, "MemRequest %llu: unknown op %d", id, (int)q->op);
	if (q->length == 0)
		return err_set(err, EPROTO, "MemRequest %llu: %s of length 0", id, op);
	if (q->length > PROTO_MAX_MEM)
		return err_set(err, EPROTO,
			       "MemRequest %llu: %s of %u bytes exceeds the %u-byte cap", id, op,
			       q->length, PROTO_MAX_MEM);
	if (q->op == SYSGATE__V1__MEM_REQUEST__OP__WRITE) {
		if (q->data.len != q->length)
			return err_set(err, EPROTO,
				       "MemRequest %llu: write of length %u carries %zu bytes", id,
				       q->length, q->data.len);
	} else if (q->data.len) {
		return err_set(err, EPROTO, "MemRequest %llu: %s carries %zu bytes of data", id, op,
			       q->data.len);
	}
	return 0;
}

static int check_goodbye(const Sysgate__V1__Goodbye *g, struct sg_err *err)
{
	return check_text("Goodbye: reason", g->reason, false, PROTO_MAX_TEXT, err);
}

static int check_error(const Sysgate__V1__Error *e, struct sg_err *err)
{
	if (!errno_valid(e->code))
		return err_set(err, EPROTO, "Error: code %d outside 1..%d", e->code,
			       PROTO_MAX_ERRNO);
	return check_text("Error: message", e->message, false, PROTO_MAX_TEXT, err);
}

/* The submessage of the body, or NULL: protobuf-c leaves a oneof member
 * NULL only for a hand-built envelope, but a NULL must never be followed. */
static const void *body_of(const Sysgate__V1__Envelope *m)
{
	switch (m->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_HELLO:
		return m->hello;
	case SYSGATE__V1__ENVELOPE__BODY_WELCOME:
		return m->welcome;
	case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT:
		return m->snapshot;
	case SYSGATE__V1__ENVELOPE__BODY_ACTION:
		return m->action;
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST:
		return m->mem_request;
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
		return m->mem_reply;
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		return m->goodbye;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		return m->error;
	case SYSGATE__V1__ENVELOPE__BODY_RECORD:
		return m->record;
	case SYSGATE__V1__ENVELOPE__BODY_INJECTED:
		return m->injected;
	case SYSGATE__V1__ENVELOPE__BODY__NOT_SET:
	default:
		return NULL;
	}
}

/* Checks shared by both directions: a message, with a body. */
static int check_envelope(const Sysgate__V1__Envelope *m, struct sg_err *err)
{
	if (!m)
		return err_set(err, EINVAL, "no message");
	if (!body_of(m))
		return err_set(err, EPROTO, "envelope without a body");
	return 0;
}

/* An Action's oneof member is set whenever kind_case says so. */
static bool action_complete(const Sysgate__V1__Action *a)
{
	switch (a->kind_case) {
	case SYSGATE__V1__ACTION__KIND_DO_CONTINUE:
		return a->do_continue;
	case SYSGATE__V1__ACTION__KIND_DO_ERRNO:
		return a->do_errno;
	case SYSGATE__V1__ACTION__KIND_DO_RETURN:
		return a->do_return;
	case SYSGATE__V1__ACTION__KIND_DO_KILL:
		return a->do_kill;
	case SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES:
		return a->do_inject_bytes;
	case SYSGATE__V1__ACTION__KIND_DO_FAIL:
		return a->do_fail;
	case SYSGATE__V1__ACTION__KIND__NOT_SET:
	default:
		return true;
	}
}

int proto_validate_from_worker(const Sysgate__V1__Envelope *m, struct sg_err *err)
{
	int r = check_envelope(m, err);
	if (r < 0)
		return r;
	switch (m->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_HELLO:
		return check_hello(m->hello, err);
	case SYSGATE__V1__ENVELOPE__BODY_ACTION:
		if (!action_complete(m->action))
			return err_set(err, EPROTO, "Action: kind set without its message");
		return check_action(m->action, err);
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST:
		return check_mem_request(m->mem_request, err);
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		return check_goodbye(m->goodbye, err);
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		return check_error(m->error, err);
	case SYSGATE__V1__ENVELOPE__BODY_RECORD:
		/* Whether it is JSON is the supervisor's check (jansson). */
		if (m->record->json.len == 0 || m->record->json.len > PROTO_MAX_RECORD)
			return err_set(err, EPROTO, "Record: %zu bytes, expected 1..%u",
				       m->record->json.len, PROTO_MAX_RECORD);
		return 0;
	default:
		return err_set(err, EPROTO, "%s is a supervisor-only message",
			       body_name(m->body_case));
	}
}

/* ---- What the supervisor sends ----------------------------------------- */

static int check_welcome(const Sysgate__V1__Welcome *w, struct sg_err *err)
{
	int r = check_text("Welcome: reason", w->reason, false, PROTO_MAX_TEXT, err);
	if (r < 0)
		return r;
	r = check_text("Welcome: sandbox name", w->sandbox, false, PROTO_MAX_SANDBOX, err);
	if (r < 0)
		return r;
	if (!w->accepted)
		return 0;
	if (w->max_inflight == 0)
		return err_set(err, EPROTO, "Welcome: max_inflight 0");
	if (w->max_mem_request > PROTO_MAX_MEM)
		return err_set(err, EPROTO, "Welcome: max_mem_request %u exceeds the %u-byte cap",
			       w->max_mem_request, PROTO_MAX_MEM);
	if (w->max_inject > PROTO_MAX_INJECT)
		return err_set(err, EPROTO, "Welcome: max_inject %u exceeds the %u-byte cap",
			       w->max_inject, PROTO_MAX_INJECT);
	return 0;
}

static int check_snapshot(const Sysgate__V1__Snapshot *s, struct sg_err *err)
{
	unsigned long long seq = s->seq;
	if (seq == 0)
		return err_set(err, EPROTO, "Snapshot: seq 0 (missing)");
	if (s->n_args != PROTO_ARGS)
		return err_set(err, EPROTO, "Snapshot %llu: %zu args, expected %u", seq, s->n_args,
			       PROTO_ARGS);
	int r = check_text("Snapshot: sandbox name", s->sandbox, false, PROTO_MAX_SANDBOX, err);
	if (r < 0)
		return r;
	if (s->registration >= PROTO_MAX_REGISTRATIONS)
		return err_set(err, EPROTO, "Snapshot %llu: registration %u, past %u", seq,
			       s->registration, PROTO_MAX_REGISTRATIONS);
	if (s->n_paths > PROTO_MAX_PATHS)
		return err_set(err, EPROTO, "Snapshot %llu: %zu paths, at most %u", seq, s->n_paths,
			       PROTO_MAX_PATHS);
	unsigned seen = 0; /* bit i: a path for argument i */
	for (size_t i = 0; i < s->n_paths; i++) {
		const Sysgate__V1__PathArg *p = s->paths[i];
		if (!p)
			return err_set(err, EPROTO, "Snapshot %llu: path %zu is missing", seq, i);
		if (p->arg >= PROTO_ARGS)
			return err_set(err, EPROTO, "Snapshot %llu: path of argument %u, past %u",
				       seq, p->arg, PROTO_ARGS - 1);
		if (seen & 1u << p->arg)
			return err_set(err, EPROTO, "Snapshot %llu: two paths for argument %u", seq,
				       p->arg);
		seen |= 1u << p->arg;
		if (p->path.len > PROTO_MAX_PATH)
			return err_set(err, EPROTO,
				       "Snapshot %llu: path of argument %u longer than %u bytes",
				       seq, p->arg, PROTO_MAX_PATH);
		if (p->unreadable && p->path.len)
			return err_set(err, EPROTO,
				       "Snapshot %llu: unreadable path of argument %u has bytes",
				       seq, p->arg);
		if (p->path.len && memchr(p->path.data, '\0', p->path.len))
			return err_set(err, EPROTO,
				       "Snapshot %llu: path of argument %u contains a NUL", seq,
				       p->arg);
	}
	return 0;
}

static int check_mem_reply(const Sysgate__V1__MemReply *q, struct sg_err *err)
{
	unsigned long long id = q->request_id;
	if (id == 0)
		return err_set(err, EPROTO, "MemReply: request_id 0 (missing)");
	if (q->error != 0 && !errno_valid(q->error))
		return err_set(err, EPROTO, "MemReply %llu: error %d outside 0..%d", id, q->error,
			       PROTO_MAX_ERRNO);
	if (q->error != 0 && q->data.len)
		return err_set(err, EPROTO, "MemReply %llu: error %d with %zu bytes of data", id,
			       q->error, q->data.len);
	if (q->data.len > PROTO_MAX_MEM)
		return err_set(err, EPROTO, "MemReply %llu: %zu bytes exceed the %u-byte cap", id,
			       q->data.len, PROTO_MAX_MEM);
	return 0;
}

int proto_validate_from_supervisor(const Sysgate__V1__Envelope *m, struct sg_err *err)
{
	int r = check_envelope(m, err);
	if (r < 0)
		return r;
	switch (m->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_WELCOME:
		return check_welcome(m->welcome, err);
	case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT:
		return check_snapshot(m->snapshot, err);
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
		return check_mem_reply(m->mem_reply, err);
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		return check_goodbye(m->goodbye, err);
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		return check_error(m->error, err);
	case SYSGATE__V1__ENVELOPE__BODY_INJECTED:
		if (m->injected->seq == 0 || m->injected->fd < 0)
			return err_set(err, EPROTO, "Injected: seq %llu, fd %d",
				       (unsigned long long)m->injected->seq, m->injected->fd);
		return 0;
	default:
		return err_set(err, EPROTO, "%s is a worker-only message", body_name(m->body_case));
	}
}

/* ---- Encoding ---------------------------------------------------------- */

int proto_encode(const Sysgate__V1__Envelope *m, void **buf, size_t *len, struct sg_err *err)
{
	if (!m || !buf || !len)
		return err_set(err, EINVAL, "proto_encode: missing argument");
	*buf = NULL;
	*len = 0;
	if (m->version != SYSGATE_PROTOCOL_VERSION)
		return err_set(err, EINVAL, "encoding %s with protocol version %u, not %u",
			       body_name(m->body_case), m->version, SYSGATE_PROTOCOL_VERSION);
	if (!body_of(m))
		return err_set(err, EINVAL, "encoding an envelope without a body");
	size_t size = sysgate__v1__envelope__get_packed_size(m);
	if (size > PROTO_MAX_MESSAGE)
		return err_set(err, EMSGSIZE, "%s of %zu bytes exceeds the %u-byte message cap",
			       body_name(m->body_case), size, PROTO_MAX_MESSAGE);
	_cleanup_free_ uint8_t *out = malloc(size);
	if (!out)
		return err_set(err, ENOMEM, "encoding %s of %zu bytes: out of memory",
			       body_name(m->body_case), size);
	size_t packed = sysgate__v1__envelope__pack(m, out);
	if (packed != size)
		return err_set(err, EIO, "encoding %s: packed %zu bytes, expected %zu",
			       body_name(m->body_case), packed, size);
	*buf = steal_ptr(&out);
	*len = size;
	return 0;
}

int proto_ring_put(struct fastchan_end *e, const Sysgate__V1__Envelope *m)
{
	size_t len = protobuf_c_message_get_packed_size(&m->base);
	int error;
	uint8_t *dst = fastchan_reserve(e, len, &error);
	if (!dst)
		return error;
	protobuf_c_message_pack(&m->base, dst);
	fastchan_commit(e, len);
	return 0;
}
