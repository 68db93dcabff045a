/* The worker (sysgate.h): registrations, the handshake, and the run: the
 * calling thread receives, handler threads call each Snapshot's handler and
 * send the Action it answered (or leave it to a deferred answer, completed
 * later from any thread), MemReplys go to the memory calls waiting for
 * them, and each Injected to the sg_worker_on_injected callback, on the
 * receiving thread (docs/protocol.md). */
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

static void worker_free_queue(sg_worker *w)
{
	for (size_t i = 0; i < w->queue_len; i++)
		proto_envelope_free(w->queue[i]);
	free(w->queue);
	free(w->queue_lane);
	w->queue = NULL;
	w->queue_lane = NULL;
	w->queue_len = w->queue_cap = 0;
}

/* Drops a reference; the last frees what sg_worker_free() left. */
static void worker_unref(sg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	bool last = --w->refs == 0;
	pthread_mutex_unlock(&w->lock);
	if (!last)
		return;
	pthread_cond_destroy(&w->link_cond);
	pthread_cond_destroy(&w->mem_cond);
	pthread_cond_destroy(&w->work_cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
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
	/* sg_worker_run() joined the handler threads. */
	for (size_t i = 0; i < w->n_slots; i++) {
		ctx_end(&w->slots[i].ctx);
		pthread_mutex_destroy(&w->slots[i].ctx_lock);
	}
	free(w->slots);
	w->slots = NULL;
	w->n_slots = 0;
	worker_free_queue(w);
	fast_free(w);
	free(w->regs);
	free(w->name);
	free(w->url);
	w->regs = NULL;
	w->name = w->url = NULL;
	worker_unref(w); /* the rest goes with the last deferred answer */
}

sg_worker *sg_worker_new(const char *name)
{
	sg_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->refs = 1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work_cond, NULL);
	pthread_cond_init(&w->mem_cond, NULL);
	pthread_cond_init(&w->link_cond, NULL);
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
	fast_init(w);
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
	hello.fast_channel = fast_offer(w);
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

/* ---- The end of the run ----------------------------------------------------- */

/* Tells the supervisor why the run ends (best effort). */
static void worker_send_error(sg_worker *w, int code, const struct sg_err *err)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Error e;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_ERROR);
	sysgate__v1__error__init(&e);
	env.error = &e;
	e.code = code;
	e.message = (char *)(uintptr_t)err->msg;
	struct sg_err ignored;
	link_send(&w->link, &env, &ignored);
}

void worker_end(sg_worker *w, int result, const struct sg_err *err)
{
	/* What a memory call waiting learns: the link is going away, or our
	 * own failure. The supervisor's Error is an end like Goodbye to it. */
	int waiter_error = result == 0 || result == -ECONNABORTED ? -ECONNRESET : result;
	pthread_mutex_lock(&w->lock);
	bool first = !w->ended;
	if (first) {
		w->ended = true;
		w->result = result;
		if (err)
			w->result_err = *err;
		for (struct mem_wait *q = w->mem_waits; q; q = q->next) {
			q->done = true;
			q->error = waiter_error;
		}
		w->mem_waits = NULL;
		pthread_cond_broadcast(&w->mem_cond);
		pthread_cond_broadcast(&w->work_cond);
		w->link_users++; /* for the Error below, from any thread */
	}
	pthread_mutex_unlock(&w->lock);
	if (!first)
		return;
	worker_kick(w);
	if (result == -EPROTO)
		worker_send_error(w, EPROTO, err);
	link_stop_recv(&w->link);
	worker_link_leave(w);
}

void worker_link_leave(sg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	if (--w->link_users == 0)
		pthread_cond_broadcast(&w->link_cond);
	pthread_mutex_unlock(&w->lock);
}

/* Waits until no thread outside the pool uses the link (the run ended:
 * none enters any more). */
static void worker_wait_link_idle(sg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->link_users)
		pthread_cond_wait(&w->link_cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static bool worker_ended(sg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	bool ended = w->ended;
	pthread_mutex_unlock(&w->lock);
	return ended;
}

/* ---- Memory calls ------------------------------------------------------------ */

int worker_mem_register(sg_worker *w, struct mem_wait *wait)
{
	pthread_mutex_lock(&w->lock);
	int r = 0;
	if (w->ended) {
		r = w->result == 0 || w->result == -ECONNABORTED ? -ECONNRESET : w->result;
	} else {
		if (++w->last_request_id == 0) /* never 0 on the wire */
			++w->last_request_id;
		*wait = (struct mem_wait){ .request_id = w->last_request_id, .next = w->mem_waits };
		w->mem_waits = wait;
		w->link_users++; /* the request's send */
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

void worker_mem_cancel(sg_worker *w, struct mem_wait *wait)
{
	pthread_mutex_lock(&w->lock);
	for (struct mem_wait **p = &w->mem_waits; *p; p = &(*p)->next) {
		if (*p == wait) {
			*p = wait->next;
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
}

int worker_mem_wait(sg_worker *w, struct mem_wait *wait)
{
	if (w->fast)
		return fast_mem_wait(w, wait);
	pthread_mutex_lock(&w->lock);
	while (!wait->done)
		pthread_cond_wait(&w->mem_cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return wait->reply ? 0 : wait->error;
}

int worker_route_reply(sg_worker *w, Sysgate__V1__Envelope **m, const struct mem_wait *mine,
		       struct sg_err *err)
{
	uint64_t id = (*m)->mem_reply->request_id;
	pthread_mutex_lock(&w->lock);
	struct mem_wait **p = &w->mem_waits;
	while (*p && (*p)->request_id != id)
		p = &(*p)->next;
	struct mem_wait *wait = *p;
	if (wait) {
		*p = wait->next;
		wait->reply = steal_ptr(m);
		wait->done = true;
		pthread_cond_broadcast(&w->mem_cond);
	}
	pthread_mutex_unlock(&w->lock);
	if (!wait)
		return err_set(err, EPROTO, "MemReply %llu with no memory request pending",
			       (unsigned long long)id);
	if (wait != mine)
		worker_kick(w);
	return 0;
}

/* ---- Deferred answers --------------------------------------------------------- */

static void deferred_free(struct sg_deferred *d)
{
	sg_worker *w = d->worker;
	ctx_end(&d->ctx);
	action_release(&d->action);
	pthread_mutex_destroy(&d->ctx_lock);
	free(d);
	worker_unref(w);
}

sg_deferred *sg_defer(const sg_ctx *ctx)
{
	if (!ctx) {
		errno = EINVAL;
		return NULL;
	}
	sg_worker *w = ctx->worker;
	struct sg_deferred *d = calloc(1, sizeof(*d));
	if (!d) {
		errno = ENOMEM;
		return NULL;
	}
	d->worker = w;
	pthread_mutex_init(&d->ctx_lock, NULL);
	ctx_init(&d->ctx, w, &d->ctx_lock);
	action_init(&d->action, w->max_inject);
	pthread_mutex_lock(&w->lock);
	w->refs++;
	pthread_mutex_unlock(&w->lock);
	/* Handlers see their context as const; its call's state is ours. */
	int r = ctx_defer((struct sg_ctx *)(uintptr_t)ctx, d);
	if (r < 0) {
		deferred_free(d);
		errno = -r;
		return NULL;
	}
	return d;
}

const sg_ctx *sg_deferred_ctx(sg_deferred *d)
{
	return d ? &d->ctx : NULL;
}

sg_action *sg_deferred_action(sg_deferred *d)
{
	return d ? &d->action : NULL;
}

/* Sends d's answer unless the run ended, and frees d: 0, -ENOTCONN, or
 * the error that ended the run. */
static int deferred_finish(struct sg_deferred *d)
{
	sg_worker *w = d->worker;
	pthread_mutex_lock(&w->lock);
	w->outstanding--; /* as worker_settle: before the Action leaves */
	bool send = !w->ended;
	if (send)
		w->link_users++;
	pthread_mutex_unlock(&w->lock);
	int r = -ENOTCONN;
	if (send) {
		struct action_msg msg;
		struct sg_err err = { "" };
		action_to_msg(&d->action, d->cancelled ? ACTION_CANCELLED : 0, d->ctx.seq,
			      d->ctx.reg_name, &msg);
		r = worker_send(w, &msg.env, d->ctx.lane, &err);
		/* A lost link: the receiving thread sees it too and ends the run. */
		if (r == -ECONNRESET)
			r = -ENOTCONN;
		else if (r < 0)
			worker_end(w, r, &err);
		worker_link_leave(w);
	}
	deferred_free(d);
	return r;
}

/* The handler call that made d returned: d's answer may leave once it is
 * completed, and leaves now if it was. */
static void deferred_call_returned(struct sg_deferred *d)
{
	sg_worker *w = d->worker;
	pthread_mutex_lock(&w->lock);
	d->call_returned = true;
	bool completed = d->completed;
	pthread_mutex_unlock(&w->lock);
	if (completed)
		deferred_finish(d);
}

/* sg_complete (cancelled false) and sg_deferred_cancel. */
static int deferred_complete(struct sg_deferred *d, bool cancelled)
{
	if (!d)
		return -EINVAL;
	sg_worker *w = d->worker;
	/* Stale from now on, once a memory request being sent through it left. */
	ctx_end(&d->ctx);
	pthread_mutex_lock(&w->lock);
	d->completed = true;
	d->cancelled = cancelled;
	bool now = d->call_returned;
	bool ended = w->ended;
	pthread_mutex_unlock(&w->lock);
	if (now)
		return deferred_finish(d);
	/* The handler's thread sends it (and frees d) when the handler returns. */
	return ended ? -ENOTCONN : 0;
}

int sg_complete(sg_deferred *d)
{
	return deferred_complete(d, false);
}

int sg_deferred_cancel(sg_deferred *d)
{
	return deferred_complete(d, true);
}

/* ---- Handler threads --------------------------------------------------------- */

int worker_admit(sg_worker *w, const Sysgate__V1__Snapshot *s, struct sg_err *err)
{
	if (s->registration >= w->n_regs)
		return err_set(err, EPROTO, "Snapshot %llu for registration %u, but we made %zu",
			       (unsigned long long)s->seq, s->registration, w->n_regs);
	pthread_mutex_lock(&w->lock);
	int r = 0;
	if (w->outstanding >= w->max_inflight)
		r = err_set(err, EPROTO,
			    "Snapshot %llu while %u are unanswered: more than max_inflight (%u)",
			    (unsigned long long)s->seq, w->outstanding, w->max_inflight);
	else
		w->outstanding++;
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* Queues the Snapshot in *m (taking it) for a handler thread; -EPROTO if
 * the supervisor sent more than it may. */
static int worker_receive_snapshot(sg_worker *w, Sysgate__V1__Envelope **m, struct sg_err *err)
{
	int r = worker_admit(w, (*m)->snapshot, err);
	return r < 0 ? r : worker_queue_snapshot(w, m, 0, err);
}

int worker_queue_snapshot(sg_worker *w, Sysgate__V1__Envelope **m, int lane, struct sg_err *err)
{
	const Sysgate__V1__Snapshot *s = (*m)->snapshot;
	pthread_mutex_lock(&w->lock);
	int r = 0;
	if (w->queue_len == w->queue_cap) {
		size_t cap = w->queue_cap ? 2 * w->queue_cap : 8;
		Sysgate__V1__Envelope **q = realloc(w->queue, cap * sizeof(*q));
		if (q)
			w->queue = q;
		uint8_t *ql = q ? realloc(w->queue_lane, cap) : NULL;
		if (ql)
			w->queue_lane = ql;
		if (q && ql) {
			w->queue_cap = cap;
		} else {
			r = err_set(err, ENOMEM, "Snapshot %llu: out of memory",
				    (unsigned long long)s->seq);
		}
	}
	if (r == 0) {
		w->queue_lane[w->queue_len] = (uint8_t)lane;
		w->queue[w->queue_len++] = steal_ptr(m);
		pthread_cond_signal(&w->work_cond);
	} else {
		w->outstanding--; /* admitted, but never to be answered */
	}
	pthread_mutex_unlock(&w->lock);
	if (r == 0)
		worker_kick(w);
	return r;
}

Sysgate__V1__Envelope *worker_try_snapshot(sg_worker *w, int *lane)
{
	pthread_mutex_lock(&w->lock);
	Sysgate__V1__Envelope *m = NULL;
	if (!w->ended && w->queue_len) {
		m = w->queue[0];
		*lane = w->queue_lane[0];
		memmove(w->queue, w->queue + 1, --w->queue_len * sizeof(*w->queue));
		memmove(w->queue_lane, w->queue_lane + 1, w->queue_len);
	}
	pthread_mutex_unlock(&w->lock);
	return m;
}

/* The next queued Snapshot's envelope, waiting for one; NULL once the run
 * ended. */
static Sysgate__V1__Envelope *worker_next_snapshot(sg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	while (!w->ended && !w->queue_len)
		pthread_cond_wait(&w->work_cond, &w->lock);
	Sysgate__V1__Envelope *m = NULL;
	if (!w->ended) {
		m = w->queue[0];
		memmove(w->queue, w->queue + 1, --w->queue_len * sizeof(*w->queue));
		memmove(w->queue_lane, w->queue_lane + 1, w->queue_len);
	}
	pthread_mutex_unlock(&w->lock);
	return m;
}

/* A handler call is over: it no longer counts against max_inflight. Done
 * before its Action is sent, so the supervisor's next Snapshot finds room.
 * Whether the run goes on (an answer is still wanted). */
static bool worker_settle(sg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->outstanding--;
	bool ended = w->ended;
	pthread_mutex_unlock(&w->lock);
	return !ended;
}

/* A failure of ours ends the run. */
void worker_dispatch(sg_worker *w, struct handler_slot *slot, const Sysgate__V1__Snapshot *s,
		     int lane)
{
	struct sg_ctx *c = &slot->ctx;
	const struct registration *reg = &w->regs[s->registration]; /* checked when queued */
	struct sg_err err = { "" };
	if (ctx_begin(c, s, reg->name, lane) < 0) {
		worker_settle(w);
		err_set(&err, ENOMEM, "Snapshot %llu: out of memory", (unsigned long long)s->seq);
		worker_end(w, -ENOMEM, &err);
		return;
	}
	sg_action action;
	action_init(&action, w->max_inject);
	int result = reg->fn(c, &action, reg->ud);
	struct sg_deferred *d = ctx_end(c);
	if (d) {
		/* Answered later; counted against max_inflight until then. */
		action_release(&action);
		deferred_call_returned(d);
		return;
	}
	if (worker_settle(w)) {
		struct action_msg msg;
		action_to_msg(&action, result, s->seq, reg->name, &msg);
		/* Pumping again before the answer leaves: the next Snapshot then
		 * finds this thread spinning, not asleep. */
		if (w->fast)
			fast_try_role(w, slot);
		int r = worker_send(w, &msg.env, lane, &err);
		/* A lost link: the receiving thread sees it too and ends the run. */
		if (r < 0 && r != -ECONNRESET)
			worker_end(w, r, &err);
	}
	action_release(&action);
}

static void *worker_thread(void *arg)
{
	struct handler_slot *slot = arg;
	sg_worker *w = slot->worker;
	for (;;) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ = worker_next_snapshot(w);
		if (!m)
			return NULL;
		worker_dispatch(w, slot, m->snapshot, 0);
	}
}

/* A handler thread's body run through the binding's sg_thread_wrap_fn. */
static void *wrapped_thread(void *arg)
{
	struct handler_slot *slot = arg;
	sg_worker *w = slot->worker;
	return w->thread_wrap(w->fast ? fast_thread : worker_thread, slot, w->thread_wrap_ud);
}

/* Starts the handler threads: as many as asked for, at most max_inflight
 * (fewer if the system refuses more, but at least one). */
static int worker_start_threads(sg_worker *w, struct sg_err *err)
{
	size_t n = w->threads_wanted < w->max_inflight ? w->threads_wanted : w->max_inflight;
	w->slots = calloc(n, sizeof(*w->slots));
	if (!w->slots)
		return err_set(err, ENOMEM, "starting %zu handler threads: out of memory", n);
	w->n_slots = n;
	for (size_t i = 0; i < n; i++) {
		struct handler_slot *slot = &w->slots[i];
		slot->worker = w;
		pthread_mutex_init(&slot->ctx_lock, NULL);
		ctx_init(&slot->ctx, w, &slot->ctx_lock);
	}
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		void *(*body)(void *) = w->fast ? fast_thread : worker_thread;
		r = pthread_create(&w->slots[i].thread, NULL,
				   w->thread_wrap ? wrapped_thread : body, &w->slots[i]);
		if (r != 0)
			break;
		w->n_started++;
	}
	if (w->n_started == 0)
		return err_sys(err, r, "starting a handler thread");
	return 0;
}

static void worker_join_threads(sg_worker *w)
{
	for (size_t i = 0; i < w->n_started; i++)
		pthread_join(w->slots[i].thread, NULL);
	w->n_started = 0;
}

/* ---- Receiving --------------------------------------------------------------- */

/* Handles one message from the supervisor (taking *m): 0 to go on, 1 for the
 * orderly end of the run, or a negative errno that ends it. */
static int worker_receive(sg_worker *w, Sysgate__V1__Envelope **m, struct sg_err *err)
{
	const Sysgate__V1__Envelope *e = *m;
	switch (e->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT:
		return worker_receive_snapshot(w, m, err);
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
		return worker_route_reply(w, m, NULL, err);
	case SYSGATE__V1__ENVELOPE__BODY_INJECTED:
		/* Here, before the next message is received: whatever it does is
		 * done before any later Snapshot reaches a handler thread. */
		if (w->on_injected)
			w->on_injected((pid_t)e->injected->pid, e->injected->fd,
				       e->injected->cookie, w->on_injected_ud);
		return 0;
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		return 1;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		return err_set(err, ECONNABORTED, "the supervisor ended the run: %s",
			       *e->error->message ? e->error->message : strerror(e->error->code));
	case SYSGATE__V1__ENVELOPE__BODY_WELCOME:
	default:
		return err_set(err, EPROTO, "a second Welcome");
	}
}

/* Serves until the run ends: 0 for its orderly end, else a negative errno
 * (the message in err). */
static int worker_serve(sg_worker *w, struct sg_err *err)
{
	int r = worker_start_threads(w, err);
	if (r < 0) {
		worker_end(w, r, err);
		return r;
	}
	while (!worker_ended(w)) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
		struct sg_err why = { "" };
		r = link_recv(&w->link, &m, &why);
		if (r == 0)
			r = worker_receive(w, &m, &why);
		if (r == 1 || r == -ECONNRESET)
			worker_end(w, 0, NULL); /* or a handler thread ended it first */
		else if (r < 0)
			worker_end(w, r, &why);
	}
	worker_join_threads(w);
	worker_wait_link_idle(w);
	worker_free_queue(w);
	*err = w->result_err;
	return w->result;
}

int sg_worker_emit(sg_worker *w, const char *json, size_t len)
{
	if (!w || !json || len == 0)
		return -EINVAL;
	if (len > PROTO_MAX_RECORD)
		return -EMSGSIZE;
	pthread_mutex_lock(&w->lock);
	bool running = w->welcomed && !w->ended;
	if (running)
		w->link_users++;
	pthread_mutex_unlock(&w->lock);
	if (!running)
		return -ENOTCONN;
	Sysgate__V1__Envelope env;
	Sysgate__V1__Record rec;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_RECORD);
	sysgate__v1__record__init(&rec);
	env.record = &rec;
	rec.json = (ProtobufCBinaryData){ .len = len, .data = (uint8_t *)(uintptr_t)json };
	struct sg_err err;
	int r = worker_send(w, &env, 0, &err);
	worker_link_leave(w);
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
