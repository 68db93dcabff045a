/* The notification context (sysgate.h): the snapshot's fields, its
 * pre-read paths, and memory access through the supervisor.
 *
 * A context belongs to a handler thread's slot and serves one handler call
 * after another; between calls (and after the last) it is stale. Its lock
 * makes every accessor see either the live call or a stale context, even
 * from a thread the handler passed it to. A deferred answer (sg_defer) has
 * a context of its own: a copy of its call's, live until it is completed.
 *
 * A memory accessor sends one MemRequest and waits for the MemReply with
 * its request_id, which whichever thread receives it hands over (with the
 * fast channel, the waiting call may pump the rings itself); other
 * handlers run meanwhile. */
#include "sdk.h"

#include <errno.h>
#include <string.h>

void ctx_init(struct sg_ctx *c, sg_worker *w, pthread_mutex_t *lock)
{
	*c = (struct sg_ctx){ .worker = w, .lock = lock };
}

/* dst[i] = a copy of each src[i]; -ENOMEM (nothing kept). */
static int copy_paths(char *dst[PROTO_ARGS], char *const src[PROTO_ARGS])
{
	for (size_t i = 0; i < PROTO_ARGS; i++) {
		dst[i] = src[i] ? strdup(src[i]) : NULL;
		if (src[i] && !dst[i]) {
			while (i--) {
				free(dst[i]);
				dst[i] = NULL;
			}
			return -ENOMEM;
		}
	}
	return 0;
}

static void free_paths(char *paths[PROTO_ARGS])
{
	for (size_t i = 0; i < PROTO_ARGS; i++)
		free(paths[i]);
}

int ctx_begin(struct sg_ctx *c, const Sysgate__V1__Snapshot *s, const char *reg_name, int lane)
{
	char *paths[PROTO_ARGS] = { NULL };
	for (size_t i = 0; i < s->n_paths; i++) {
		const Sysgate__V1__PathArg *p = s->paths[i];
		/* Validated: arg < PROTO_ARGS, once each, no NUL inside. */
		if (p->unreadable)
			continue;
		/* An empty path ("" with AT_EMPTY_PATH) arrives without data. */
		paths[p->arg] = p->path.len ? strndup((const char *)p->path.data, p->path.len)
					    : strdup("");
		if (!paths[p->arg]) {
			free_paths(paths);
			return -ENOMEM;
		}
	}
	pthread_mutex_lock(c->lock);
	c->seq = s->seq;
	c->lane = lane;
	c->notif_id = s->notif_id;
	c->pid = (pid_t)s->pid;
	c->syscall_nr = (long)s->syscall_nr;
	c->arch = s->arch;
	c->flags = s->flags;
	c->instruction_pointer = s->instruction_pointer;
	for (size_t i = 0; i < PROTO_ARGS; i++)
		c->args[i] = i < s->n_args ? s->args[i] : 0;
	memcpy(c->paths, paths, sizeof(paths));
	c->reg_name = reg_name;
	c->may_defer = true;
	c->deferred = NULL;
	c->live = true;
	pthread_mutex_unlock(c->lock);
	return 0;
}

int ctx_defer(struct sg_ctx *c, struct sg_deferred *d)
{
	struct sg_ctx *copy = &d->ctx;
	pthread_mutex_lock(c->lock);
	int r = 0;
	if (!c->live)
		r = -ESTALE;
	else if (!c->may_defer)
		r = -EINVAL;
	else if (c->deferred)
		r = -EALREADY;
	else
		r = copy_paths(copy->paths, c->paths);
	if (r == 0) {
		/* copy is d's alone until d is returned: no need for its lock. */
		copy->seq = c->seq;
		copy->lane = c->lane;
		copy->notif_id = c->notif_id;
		copy->instruction_pointer = c->instruction_pointer;
		memcpy(copy->args, c->args, sizeof(copy->args));
		copy->syscall_nr = c->syscall_nr;
		copy->pid = c->pid;
		copy->arch = c->arch;
		copy->flags = c->flags;
		copy->reg_name = c->reg_name;
		copy->may_defer = false;
		copy->live = true;
		c->deferred = d;
	}
	pthread_mutex_unlock(c->lock);
	return r;
}

struct sg_deferred *ctx_end(struct sg_ctx *c)
{
	char *paths[PROTO_ARGS];
	/* Waits for a memory request being sent through c (mem_transact). */
	pthread_mutex_lock(c->lock);
	memcpy(paths, c->paths, sizeof(paths));
	memset(c->paths, 0, sizeof(c->paths));
	c->live = false;
	struct sg_deferred *d = c->deferred;
	c->deferred = NULL;
	pthread_mutex_unlock(c->lock);
	free_paths(paths);
	return d;
}

/* The fields of a context in its handler call: true with *out a copy, or
 * false if c is NULL or stale. */
static bool ctx_fields(const sg_ctx *c, struct sg_ctx *out)
{
	if (!c)
		return false;
	pthread_mutex_lock(c->lock);
	bool live = c->live;
	if (live)
		*out = *c;
	pthread_mutex_unlock(c->lock);
	return live;
}

int sg_ctx_info(const sg_ctx *c, struct sg_ctx_info *out)
{
	if (!out)
		return -EINVAL;
	struct sg_ctx f;
	memset(out, 0, sizeof(*out));
	out->syscall = -1; /* as sg_ctx_syscall on a stale context */
	if (!c)
		return -EINVAL;
	if (!ctx_fields(c, &f))
		return -ESTALE;
	out->id = f.notif_id;
	out->ip = f.instruction_pointer;
	memcpy(out->args, f.args, sizeof(out->args));
	out->syscall = f.syscall_nr;
	out->pid = f.pid;
	out->arch = f.arch;
	out->flags = f.flags;
	return 0;
}

uint64_t sg_ctx_id(const sg_ctx *c)
{
	struct sg_ctx f;
	return ctx_fields(c, &f) ? f.notif_id : 0;
}

pid_t sg_ctx_pid(const sg_ctx *c)
{
	struct sg_ctx f;
	return ctx_fields(c, &f) ? f.pid : 0;
}

long sg_ctx_syscall(const sg_ctx *c)
{
	struct sg_ctx f;
	return ctx_fields(c, &f) ? f.syscall_nr : -1;
}

uint32_t sg_ctx_arch(const sg_ctx *c)
{
	struct sg_ctx f;
	return ctx_fields(c, &f) ? f.arch : 0;
}

uint32_t sg_ctx_flags(const sg_ctx *c)
{
	struct sg_ctx f;
	return ctx_fields(c, &f) ? f.flags : 0;
}

uint64_t sg_ctx_ip(const sg_ctx *c)
{
	struct sg_ctx f;
	return ctx_fields(c, &f) ? f.instruction_pointer : 0;
}

uint64_t sg_ctx_arg(const sg_ctx *c, unsigned i)
{
	struct sg_ctx f;
	return i < PROTO_ARGS && ctx_fields(c, &f) ? f.args[i] : 0;
}

const char *sg_ctx_path(const sg_ctx *c, unsigned arg)
{
	struct sg_ctx f;
	/* The string itself lives until the call ends (ctx_end). */
	return arg < PROTO_ARGS && ctx_fields(c, &f) ? f.paths[arg] : NULL;
}

/* ---- Memory requests ----------------------------------------------------- */

/* Sends a MemRequest for the context's notification and waits for its
 * MemReply; *reply is the decoded MemReply's envelope (the caller frees
 * it). -ESTALE once the call is over (or the deferred answer completed),
 * -ECONNRESET when the run ends first; other errors end the run. */
static int mem_transact(const sg_ctx *c, Sysgate__V1__MemRequest__Op op, uint64_t addr,
			uint32_t length, const void *data, Sysgate__V1__Envelope **reply)
{
	sg_worker *w = c->worker;
	struct mem_wait wait = { 0 };
	struct sg_err err = { "" };

	/* Held while sending, so the request leaves before the call's Action
	 * (ctx_end takes it first) and for a seq the worker still holds. */
	pthread_mutex_lock(c->lock);
	if (!c->live) {
		pthread_mutex_unlock(c->lock);
		return -ESTALE;
	}
	int r = run_mem_register(w, &wait);
	if (r == 0) {
		Sysgate__V1__Envelope env;
		Sysgate__V1__MemRequest q;
		proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST);
		sysgate__v1__mem_request__init(&q);
		env.mem_request = &q;
		q.request_id = wait.request_id;
		q.seq = c->seq;
		q.op = op;
		q.addr = addr;
		q.length = length;
		if (data)
			q.data = (ProtobufCBinaryData){ .len = length,
							.data = (uint8_t *)(uintptr_t)data };
		r = transport_send(w, &env, c->lane, &err);
		if (r < 0)
			run_mem_cancel(w, &wait);
		/* A lost link: the receiving thread sees it too and ends the run. */
		if (r < 0 && r != -ECONNRESET)
			transport_end(w, r, &err);
		run_link_leave(w);
	}
	pthread_mutex_unlock(c->lock);
	if (r < 0)
		return r;
	r = w->fast ? pump_mem_wait(w, &wait) : run_mem_wait(w, &wait);
	if (r < 0)
		return r;
	*reply = wait.reply;
	return 0;
}

/* Common checks of a memory accessor; the request's length limit. */
static int mem_check(const sg_ctx *c, const void *buf, size_t len, size_t *limit)
{
	struct sg_ctx f;
	if (!c || !buf)
		return -EINVAL;
	if (!ctx_fields(c, &f))
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
	transport_end(c->worker, -EPROTO, &err);
	return -EPROTO;
}

/* One memory round trip: the MemReply on success (its envelope in *m, for
 * the caller to free), or NULL with *r a negative errno (transport, or the
 * reply's). */
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
