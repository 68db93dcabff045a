/* The worker (sysgate.h): registrations, the handshake, and the run:
 * sg_worker_run's thread starts the handler threads (handler.c), receives
 * from the link and hands each envelope to the transport layer
 * (transport.c) until the run ends (docs/protocol.md). */
#include "sdk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ENV_URL "SYSGATE_WORKER_URL"
#define ENV_TOKEN "SYSGATE_WORKER_TOKEN"
#define ENV_NAME "SYSGATE_WORKER_NAME"
#define ENV_THREADS "SYSGATE_WORKER_THREADS"
#define DEFAULT_NAME "worker"

/* ---- Creation and registrations ------------------------------------------ */

/* The handler threads asked for: SYSGATE_WORKER_THREADS if it is a
 * decimal 1..WORKER_THREADS_MAX, else the default. */
static unsigned threads_parse(const char *s)
{
	if (!s || *s < '0' || *s > '9')
		return WORKER_THREADS_DEFAULT;
	char *end;
	errno = 0;
	unsigned long n = strtoul(s, &end, 10);
	if (errno || *end || n < 1 || n > WORKER_THREADS_MAX)
		return WORKER_THREADS_DEFAULT;
	return (unsigned)n;
}

void sg_worker_free(sg_worker *w)
{
	if (!w)
		return;
	/* Deferred answers completed from now on find the run over, and
	 * sg_worker_run() returned only once nobody else used the link. */
	pthread_mutex_lock(&w->lock);
	w->ended = true;
	pthread_mutex_unlock(&w->lock);
	link_close(&w->link);
	handler_free(w); /* sg_worker_run() joined the handler threads */
	run_free_queue(w);
	transport_free(w);
	free(w->regs);
	free(w->name);
	free(w->url);
	w->regs = NULL;
	w->name = w->url = NULL;
	run_unref(w); /* the rest goes with the last deferred answer */
}

sg_worker *sg_worker_new(const char *name)
{
	sg_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	run_init(w);
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
	w->token_error = token ? hex_decode(token, w->token, PROTO_TOKEN_SIZE) : -ENOENT;
	w->threads_wanted = threads_parse(getenv(ENV_THREADS));
	transport_init(w);
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
		struct sdk_registration *regs = realloc(w->regs, cap * sizeof(*regs));
		if (!regs)
			return -ENOMEM;
		w->regs = regs;
		w->cap_regs = cap;
	}
	w->regs[w->n_regs++] = (struct sdk_registration){
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

int sg_worker_on_injected(sg_worker *w, sg_injected_fn fn, void *ud)
{
	if (!w)
		return -EINVAL;
	if (w->started)
		return -EBUSY;
	w->on_injected = fn;
	w->on_injected_ud = fn ? ud : NULL;
	return 0;
}

int sg_worker_set_thread_wrap(sg_worker *w, sg_thread_wrap_fn wrap, void *ud)
{
	if (!w)
		return -EINVAL;
	if (w->started)
		return -EBUSY;
	w->thread_wrap = wrap;
	w->thread_wrap_ud = wrap ? ud : NULL;
	return 0;
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
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_HELLO);
	sysgate__v1__hello__init(&hello);
	env.hello = &hello;
	hello.protocol_version = SYSGATE_PROTOCOL_VERSION;
	hello.worker_name = w->name;
	hello.token = (ProtobufCBinaryData){ .len = PROTO_TOKEN_SIZE, .data = w->token };
	hello.n_registrations = w->n_regs;
	hello.registrations = ptrs;
	hello.fast_channel = transport_offer(w);
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
		if (m->welcome->fast_channel && !w->shm)
			return err_set(err, EPROTO, "a fast channel we did not offer");
		w->fast = m->welcome->fast_channel;
		pthread_mutex_lock(&w->lock);
		w->welcomed = true; /* sg_worker_emit may ask from another thread */
		pthread_mutex_unlock(&w->lock);
		return 0;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		return err_set(err, EPERM, "not accepted by the supervisor: %s",
			       *m->error->message ? m->error->message : strerror(m->error->code));
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		return err_set(err, ECONNRESET, "the supervisor said goodbye before welcoming us");
	case SYSGATE__V1__ENVELOPE__BODY_INJECTED:
		return err_set(err, EPROTO, "the supervisor sent an Injected before its Welcome");
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

/* ---- The run ------------------------------------------------------------------ */

/* Receives from the link until the run ends: 0 for its orderly end (a
 * Goodbye; a link lost without one is -ECONNRESET), else a
 * negative errno (the message in err). */
static int worker_serve(sg_worker *w, struct sg_err *err)
{
	int r = handler_start(w, err);
	if (r < 0) {
		transport_end(w, r, err);
		return r;
	}
	while (!run_ended(w)) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
		struct sg_err why = { "" };
		r = link_recv(&w->link, &m, &why);
		if (r == 0)
			r = transport_handle(w, &m, false, NULL, &why);
		if (r == TRANSPORT_SNAPSHOT)
			r = transport_queue(w, &m, 0, &why);
		if (r == TRANSPORT_GOODBYE) {
			transport_end(w, 0, NULL); /* or a handler thread ended it first */
		} else if (r == -ECONNRESET) {
			/* Only Goodbye ends a run in order: the supervisor kills a
			 * worker before it drops its link, and says Goodbye at the
			 * end. A link that ends without one is a failure to report,
			 * never a silent exit 0 (mid-run, it cost the program the
			 * calls this worker held). */
			struct sg_err lost;
			err_set(&lost, ECONNRESET, "the link ended without a Goodbye (%s)",
				why.msg);
			transport_end(w, -ECONNRESET, &lost);
		} else if (r < 0) {
			transport_end(w, r, &why);
		}
	}
	handler_join(w);
	run_wait_link_idle(w);
	run_free_queue(w);
	*err = w->result_err;
	return w->result;
}

int sg_worker_emit(sg_worker *w, const char *json, size_t len)
{
	if (!w || !json || len == 0)
		return -EINVAL;
	if (len > PROTO_MAX_RECORD)
		return -EMSGSIZE;
	if (!run_link_enter(w))
		return -ENOTCONN;
	Sysgate__V1__Envelope env;
	Sysgate__V1__Record rec;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_RECORD);
	sysgate__v1__record__init(&rec);
	env.record = &rec;
	rec.json = (ProtobufCBinaryData){ .len = len, .data = (uint8_t *)(uintptr_t)json };
	struct sg_err err;
	int r = transport_send(w, &env, 0, &err);
	run_link_leave(w);
	return r;
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
