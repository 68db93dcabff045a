/* The notification context (sysgate.h): the snapshot's fields, its
 * pre-read paths, and memory access through the supervisor.
 *
 * A memory accessor sends one MemRequest and waits for the MemReply with
 * its request_id. Whatever else arrives meanwhile (snapshots, a Goodbye) is
 * queued and handled after the current handler returns: this first version
 * runs one handler at a time and does not call a handler for the next
 * notification while an earlier one waits for memory (docs/protocol.md
 * allows that; it is not needed for correctness). */
#include "sdk.h"

#include <errno.h>
#include <string.h>

int ctx_begin(sg_worker *w, const Sysgate__V1__Snapshot *s)
{
	struct sg_ctx *c = &w->ctx;
	*c = (struct sg_ctx){ .worker = w, .snapshot = s };
	for (size_t i = 0; i < s->n_paths; i++) {
		const Sysgate__V1__PathArg *p = s->paths[i];
		/* Validated: arg < PROTO_ARGS, once each, no NUL inside. */
		if (p->unreadable)
			continue;
		c->paths[p->arg] = strndup((const char *)p->path.data, p->path.len);
		if (!c->paths[p->arg]) {
			ctx_end(w);
			return -ENOMEM;
		}
	}
	c->live = true;
	return 0;
}

void ctx_end(sg_worker *w)
{
	struct sg_ctx *c = &w->ctx;
	for (size_t i = 0; i < PROTO_ARGS; i++) {
		free(c->paths[i]);
		c->paths[i] = NULL;
	}
	c->snapshot = NULL;
	c->live = false;
}

/* The snapshot of a context in its handler call, or NULL. */
static const Sysgate__V1__Snapshot *ctx_snapshot(const sg_ctx *c)
{
	return c && c->live ? c->snapshot : NULL;
}

uint64_t sg_ctx_id(const sg_ctx *c)
{
	const Sysgate__V1__Snapshot *s = ctx_snapshot(c);
	return s ? s->notif_id : 0;
}

pid_t sg_ctx_pid(const sg_ctx *c)
{
	const Sysgate__V1__Snapshot *s = ctx_snapshot(c);
	return s ? (pid_t)s->pid : 0;
}

long sg_ctx_syscall(const sg_ctx *c)
{
	const Sysgate__V1__Snapshot *s = ctx_snapshot(c);
	return s ? s->syscall_nr : -1;
}

uint32_t sg_ctx_arch(const sg_ctx *c)
{
	const Sysgate__V1__Snapshot *s = ctx_snapshot(c);
	return s ? s->arch : 0;
}

uint64_t sg_ctx_ip(const sg_ctx *c)
{
	const Sysgate__V1__Snapshot *s = ctx_snapshot(c);
	return s ? s->instruction_pointer : 0;
}

uint64_t sg_ctx_arg(const sg_ctx *c, unsigned i)
{
	const Sysgate__V1__Snapshot *s = ctx_snapshot(c);
	return s && i < s->n_args ? s->args[i] : 0;
}

const char *sg_ctx_path(const sg_ctx *c, unsigned arg)
{
	return ctx_snapshot(c) && arg < PROTO_ARGS ? c->paths[arg] : NULL;
}

/* ---- Memory requests ----------------------------------------------------- */

/* The run must end after this handler: remember why (the first cause). */
static int worker_fail(sg_worker *w, int code, const struct sg_err *err)
{
	if (!w->fatal && !w->ended) {
		w->fatal = code;
		w->fatal_err = *err;
	}
	return code;
}

/* Sends a MemRequest for the context's snapshot and waits for its
 * MemReply, queueing everything else; *reply is the decoded MemReply's
 * envelope (the caller frees it). */
static int mem_transact(const sg_ctx *c, Sysgate__V1__MemRequest__Op op, uint64_t addr,
			uint32_t length, const void *data, Sysgate__V1__Envelope **reply)
{
	sg_worker *w = c->worker;
	if (w->fatal)
		return w->fatal;
	if (w->ended)
		return -ECONNRESET;

	Sysgate__V1__Envelope env;
	Sysgate__V1__MemRequest q;
	sysgate__v1__envelope__init(&env);
	sysgate__v1__mem_request__init(&q);
	env.version = SYSGATE_PROTOCOL_VERSION;
	env.body_case = SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST;
	env.mem_request = &q;
	q.request_id = ++w->last_request_id;
	q.seq = c->snapshot->seq;
	q.op = op;
	q.addr = addr;
	q.length = length;
	if (data)
		q.data = (ProtobufCBinaryData){ .len = length, .data = (uint8_t *)(uintptr_t)data };

	struct sg_err err = { "" };
	int r = link_send(&w->link, &env, &err);
	if (r == -ECONNRESET) {
		w->ended = true;
		return r;
	}
	if (r < 0)
		return worker_fail(w, r, &err);

	for (;;) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
		r = link_recv(&w->link, &m, &err);
		if (r == -ECONNRESET) {
			w->ended = true;
			return r;
		}
		if (r < 0)
			return worker_fail(w, r, &err);
		switch (m->body_case) {
		case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
			if (m->mem_reply->request_id != q.request_id) {
				err_set(&err, EPROTO,
					"MemReply %llu while waiting for MemReply %llu",
					(unsigned long long)m->mem_reply->request_id,
					(unsigned long long)q.request_id);
				return worker_fail(w, -EPROTO, &err);
			}
			*reply = steal_ptr(&m);
			return 0;
		case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		case SYSGATE__V1__ENVELOPE__BODY_ERROR:
			/* The supervisor ends the run; no reply will come. */
			r = worker_backlog_push(w, steal_ptr(&m), &err);
			return r < 0 ? worker_fail(w, r, &err) : -ECONNRESET;
		default:
			r = worker_backlog_push(w, steal_ptr(&m), &err);
			if (r < 0)
				return worker_fail(w, r, &err);
			break;
		}
	}
}

/* Common checks of a memory accessor; the request's length limit. */
static int mem_check(const sg_ctx *c, const void *buf, size_t len, size_t *limit)
{
	if (!c || !buf)
		return -EINVAL;
	if (!c->live)
		return -ESTALE;
	if (len == 0)
		return -EINVAL;
	uint32_t cap = c->worker->max_mem_request;
	*limit = cap && cap < PROTO_MAX_MEM ? cap : PROTO_MAX_MEM;
	return 0;
}

/* A reply the supervisor may not send for this request ends the run. */
static int mem_malformed(const sg_ctx *c, uint64_t id, const char *what)
{
	struct sg_err err;
	err_set(&err, EPROTO, "MemReply %llu: %s", (unsigned long long)id, what);
	return worker_fail(c->worker, -EPROTO, &err);
}

/* One memory round trip: the MemReply on success (its envelope in *m, for
 * the caller to free), or a negative errno (transport, or the reply's). */
static const Sysgate__V1__MemReply *mem_call(const sg_ctx *c, Sysgate__V1__MemRequest__Op op,
					     uint64_t addr, uint32_t length, const void *data,
					     Sysgate__V1__Envelope **m, int *r)
{
	*r = mem_transact(c, op, addr, length, data, m);
	if (*r < 0)
		return NULL;
	const Sysgate__V1__MemReply *reply = (*m)->mem_reply;
	if (reply->error) {
		*r = -reply->error;
		return NULL;
	}
	return reply;
}

ssize_t sg_ctx_read(const sg_ctx *c, uint64_t addr, void *buf, size_t len)
{
	size_t limit;
	int r = mem_check(c, buf, len, &limit);
	if (r < 0)
		return r;
	if (len > limit)
		return -E2BIG;
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	const Sysgate__V1__MemReply *reply =
		mem_call(c, SYSGATE__V1__MEM_REQUEST__OP__READ, addr, (uint32_t)len, NULL, &m, &r);
	if (!reply)
		return r;
	if (reply->data.len > len)
		return mem_malformed(c, reply->request_id, "more bytes than asked for");
	if (reply->data.len)
		memcpy(buf, reply->data.data, reply->data.len);
	return (ssize_t)reply->data.len;
}

ssize_t sg_ctx_read_cstr(const sg_ctx *c, uint64_t addr, char *buf, size_t cap)
{
	if (buf && cap)
		buf[0] = '\0';
	size_t limit;
	int r = mem_check(c, buf, cap, &limit);
	if (r < 0)
		return r;
	if (cap < 2)
		return -EINVAL;
	size_t want = cap - 1 < limit ? cap - 1 : limit; /* room for the NUL */
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	const Sysgate__V1__MemReply *reply = mem_call(c, SYSGATE__V1__MEM_REQUEST__OP__READ_CSTR,
						      addr, (uint32_t)want, NULL, &m, &r);
	if (!reply)
		return r;
	if (reply->data.len > want)
		return mem_malformed(c, reply->request_id, "string longer than asked for");
	if (reply->data.len && memchr(reply->data.data, '\0', reply->data.len))
		return mem_malformed(c, reply->request_id, "string contains a NUL");
	if (reply->data.len)
		memcpy(buf, reply->data.data, reply->data.len);
	buf[reply->data.len] = '\0';
	return (ssize_t)reply->data.len;
}

ssize_t sg_ctx_write(const sg_ctx *c, uint64_t addr, const void *buf, size_t len)
{
	size_t limit;
	int r = mem_check(c, buf, len, &limit);
	if (r < 0)
		return r;
	if (len > limit)
		return -E2BIG;
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	const Sysgate__V1__MemReply *reply =
		mem_call(c, SYSGATE__V1__MEM_REQUEST__OP__WRITE, addr, (uint32_t)len, buf, &m, &r);
	if (!reply)
		return r;
	if (reply->data.len)
		return mem_malformed(c, reply->request_id, "data in the reply to a write");
	return (ssize_t)len;
}
