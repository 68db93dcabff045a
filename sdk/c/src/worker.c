/* The worker (sysgate.h): registrations, the handshake, and the run loop
 * that hands each Snapshot to its registration's handler and sends the
 * Action it answered (docs/protocol.md). */
#include "sdk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ENV_URL "SYSGATE_WORKER_URL"
#define ENV_TOKEN "SYSGATE_WORKER_TOKEN"
#define ENV_NAME "SYSGATE_WORKER_NAME"
#define DEFAULT_NAME "worker"

/* ---- Creation and registrations ------------------------------------------ */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* token = the 64 hex digits of s; -EINVAL if s is anything else. */
static int token_parse(const char *s, uint8_t token[PROTO_TOKEN_SIZE])
{
	if (strlen(s) != 2 * PROTO_TOKEN_SIZE)
		return -EINVAL;
	for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		token[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void worker_free_backlog(sg_worker *w)
{
	for (size_t i = 0; i < w->backlog_len; i++)
		proto_envelope_free(w->backlog[i]);
	free(w->backlog);
	w->backlog = NULL;
	w->backlog_len = w->backlog_cap = 0;
}

void sg_worker_free(sg_worker *w)
{
	if (!w)
		return;
	link_close(&w->link);
	ctx_end(w);
	worker_free_backlog(w);
	free(w->regs);
	free(w->name);
	free(w->url);
	free(w);
}

sg_worker *sg_worker_new(const char *name)
{
	sg_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	struct sg_err err;
	if (link_init(&w->link, &err) < 0) {
		sg_worker_free(w);
		return NULL;
	}
	const char *env_name = getenv(ENV_NAME);
	if (env_name && *env_name)
		name = env_name;
	w->name = strdup(name && *name ? name : DEFAULT_NAME);
	const char *url = getenv(ENV_URL);
	if (url && *url)
		w->url = strdup(url);
	if (!w->name || (url && *url && !w->url)) {
		sg_worker_free(w);
		return NULL;
	}
	const char *token = getenv(ENV_TOKEN);
	w->token_error = token ? token_parse(token, w->token) : -ENOENT;
	return w;
}

static bool exception_known(enum sg_exception e)
{
	switch (e) {
	case SG_EXC_KILL:
	case SG_EXC_DENY_EPERM:
	case SG_EXC_CONTINUE:
	case SG_EXC_DENY_EIO:
		return true;
	default:
		return false;
	}
}

int sg_worker_on_nr(sg_worker *w, long nr, sg_handler_fn fn, void *ud, enum sg_exception on_exc)
{
	if (!w || !fn || nr < 0 || !exception_known(on_exc))
		return -EINVAL;
	if (w->started)
		return -EBUSY;
	const char *name = sg_syscall_name(nr);
	if (!name)
		return -ENOENT;
	if (w->n_regs >= PROTO_MAX_REGISTRATIONS)
		return -ENOSPC;
	if (w->n_regs == w->cap_regs) {
		size_t cap = w->cap_regs ? 2 * w->cap_regs : 8;
		struct registration *regs = realloc(w->regs, cap * sizeof(*regs));
		if (!regs)
			return -ENOMEM;
		w->regs = regs;
		w->cap_regs = cap;
	}
	w->regs[w->n_regs++] = (struct registration){
		.nr = nr, .name = name, .fn = fn, .ud = ud, .on_exception = on_exc
	};
	return 0;
}

int sg_worker_on(sg_worker *w, const char *syscall, sg_handler_fn fn, void *ud,
		 enum sg_exception on_exc)
{
	if (!w || !syscall)
		return -EINVAL;
	long nr = sg_syscall_nr(syscall);
	if (nr < 0)
		return (int)nr;
	return sg_worker_on_nr(w, nr, fn, ud, on_exc);
}

/* ---- Backlog --------------------------------------------------------------- */

int worker_backlog_push(sg_worker *w, Sysgate__V1__Envelope *m, struct sg_err *err)
{
	Sysgate__V1__Envelope *owned _cleanup_envelope_ = m;
	if (w->backlog_len >= (size_t)w->max_inflight + WORKER_BACKLOG_EXTRA)
		return err_set(err, EPROTO,
			       "the supervisor sent more than max_inflight (%u) messages "
			       "while a handler waited for memory",
			       w->max_inflight);
	if (w->backlog_len == w->backlog_cap) {
		size_t cap = w->backlog_cap ? 2 * w->backlog_cap : 8;
		Sysgate__V1__Envelope **q = realloc(w->backlog, cap * sizeof(*q));
		if (!q)
			return err_set(err, ENOMEM, "queueing a message: out of memory");
		w->backlog = q;
		w->backlog_cap = cap;
	}
	w->backlog[w->backlog_len++] = steal_ptr(&owned);
	return 0;
}

static Sysgate__V1__Envelope *worker_backlog_pop(sg_worker *w)
{
	if (!w->backlog_len)
		return NULL;
	Sysgate__V1__Envelope *m = w->backlog[0];
	memmove(w->backlog, w->backlog + 1, --w->backlog_len * sizeof(*w->backlog));
	return m;
}

/* ---- Handshake ------------------------------------------------------------- */

static int worker_hello(sg_worker *w, struct sg_err *err)
{
	_cleanup_free_ Sysgate__V1__Registration *regs = calloc(w->n_regs + 1, sizeof(*regs));
	_cleanup_free_ Sysgate__V1__Registration **ptrs = calloc(w->n_regs + 1, sizeof(*ptrs));
	if (!regs || !ptrs)
		return err_set(err, ENOMEM, "building Hello: out of memory");
	for (size_t i = 0; i < w->n_regs; i++) {
		sysgate__v1__registration__init(&regs[i]);
		regs[i].syscall_nr = w->regs[i].nr;
		regs[i].syscall_name = (char *)(uintptr_t)w->regs[i].name;
		regs[i].order = (uint32_t)i;
		regs[i].on_exception = (Sysgate__V1__ExceptionPolicy)w->regs[i].on_exception;
		ptrs[i] = &regs[i];
	}
	Sysgate__V1__Envelope env;
	Sysgate__V1__Hello hello;
	sysgate__v1__envelope__init(&env);
	sysgate__v1__hello__init(&hello);
	env.version = SYSGATE_PROTOCOL_VERSION;
	env.body_case = SYSGATE__V1__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	hello.protocol_version = SYSGATE_PROTOCOL_VERSION;
	hello.worker_name = w->name;
	hello.token = (ProtobufCBinaryData){ .len = PROTO_TOKEN_SIZE, .data = w->token };
	hello.n_registrations = w->n_regs;
	hello.registrations = ptrs;
	/* What the supervisor would refuse (a bad name) is our caller's mistake. */
	if (proto_validate_from_worker(&env, err) < 0)
		return -EINVAL;
	return link_send(&w->link, &env, err);
}

static int worker_welcome(sg_worker *w, struct sg_err *err)
{
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	int r = link_recv(&w->link, &m, err);
	if (r == -ECONNRESET)
		return err_set(err, ECONNRESET,
			       "the supervisor closed the link before welcoming us");
	if (r < 0)
		return r;
	switch (m->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_WELCOME:
		if (!m->welcome->accepted)
			return err_set(err, EPERM, "not accepted by the supervisor: %s",
				       *m->welcome->reason ? m->welcome->reason
							   : "no reason given");
		w->max_inflight = m->welcome->max_inflight;
		w->max_mem_request = m->welcome->max_mem_request;
		w->max_inject = m->welcome->max_inject;
		return 0;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		return err_set(err, EPERM, "not accepted by the supervisor: %s",
			       *m->error->message ? m->error->message : strerror(m->error->code));
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		return err_set(err, ECONNRESET, "the supervisor said goodbye before welcoming us");
	default:
		return err_set(err, EPROTO, "the supervisor sent a %s before its Welcome",
			       m->body_case == SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT ? "Snapshot"
										    : "MemReply");
	}
}

static int worker_connect(sg_worker *w, struct sg_err *err)
{
	if (!w->url)
		return err_set(err, EDESTADDRREQ, "%s is not set: not started by sysgate?",
			       ENV_URL);
	if (w->token_error == -ENOENT)
		return err_set(err, EINVAL, "%s is not set: not started by sysgate?", ENV_TOKEN);
	if (w->token_error < 0)
		return err_set(err, EINVAL, "%s is not %u hex digits", ENV_TOKEN,
			       2 * PROTO_TOKEN_SIZE);
	int r = link_dial(&w->link, w->url, err);
	if (r == 0)
		r = worker_hello(w, err);
	if (r == 0)
		r = worker_welcome(w, err);
	return r;
}

/* ---- Serving --------------------------------------------------------------- */

/* Tells the supervisor why the run ends (best effort) and returns -code. */
static int worker_abort(sg_worker *w, int code, struct sg_err *err)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Error e;
	sysgate__v1__envelope__init(&env);
	sysgate__v1__error__init(&e);
	env.version = SYSGATE_PROTOCOL_VERSION;
	env.body_case = SYSGATE__V1__ENVELOPE__BODY_ERROR;
	env.error = &e;
	e.code = code;
	e.message = err->msg;
	struct sg_err ignored;
	link_send(&w->link, &env, &ignored);
	return -code;
}

/* Calls the handler of snapshot s and sends its answer. 0, or a negative
 * errno that ends the run. */
static int worker_dispatch(sg_worker *w, const Sysgate__V1__Snapshot *s, struct sg_err *err)
{
	if (s->registration >= w->n_regs) {
		err_set(err, EPROTO, "Snapshot %llu for registration %u, but we made %zu",
			(unsigned long long)s->seq, s->registration, w->n_regs);
		return worker_abort(w, EPROTO, err);
	}
	const struct registration *reg = &w->regs[s->registration];
	if (ctx_begin(w, s) < 0)
		return err_set(err, ENOMEM, "Snapshot %llu: out of memory",
			       (unsigned long long)s->seq);
	sg_action action;
	action_init(&action, w->max_inject);
	int result = reg->fn(&w->ctx, &action, reg->ud);
	ctx_end(w);
	if (w->fatal) {
		action_release(&action);
		*err = w->fatal_err;
		return w->fatal == -EPROTO ? worker_abort(w, EPROTO, err) : w->fatal;
	}
	struct action_msg msg;
	action_to_msg(&action, result, s->seq, reg->name, &msg);
	int r = link_send(&w->link, &msg.env, err);
	action_release(&action);
	if (r == -ECONNRESET) {
		w->ended = true;
		return 0;
	}
	return r;
}

/* Serves until the run ends: 0 for its orderly end, else a negative errno. */
static int worker_serve(sg_worker *w, struct sg_err *err)
{
	for (;;) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ = worker_backlog_pop(w);
		if (!m) {
			if (w->ended)
				return 0;
			int r = link_recv(&w->link, &m, err);
			if (r == -ECONNRESET)
				return 0;
			if (r == -EPROTO)
				return worker_abort(w, EPROTO, err);
			if (r < 0)
				return r;
		}
		int r = 0;
		switch (m->body_case) {
		case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT:
			r = worker_dispatch(w, m->snapshot, err);
			break;
		case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
			return 0;
		case SYSGATE__V1__ENVELOPE__BODY_ERROR:
			return err_set(err, ECONNABORTED, "the supervisor ended the run: %s",
				       *m->error->message ? m->error->message
							  : strerror(m->error->code));
		case SYSGATE__V1__ENVELOPE__BODY_WELCOME:
			err_set(err, EPROTO, "a second Welcome");
			return worker_abort(w, EPROTO, err);
		case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
		default:
			err_set(err, EPROTO, "MemReply %llu with no memory request pending",
				(unsigned long long)m->mem_reply->request_id);
			return worker_abort(w, EPROTO, err);
		}
		if (r < 0)
			return r;
	}
}

int sg_worker_run(sg_worker *w)
{
	if (!w)
		return -EINVAL;
	if (w->started)
		return -EBUSY;
	w->started = true;
	struct sg_err err = { "" };
	int r = worker_connect(w, &err);
	if (r == 0)
		r = worker_serve(w, &err);
	if (r < 0)
		fprintf(stderr, "sysgate worker \"%s\": %s\n", w->name, err.msg);
	return r;
}
