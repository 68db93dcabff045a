/* Deferred answers (sysgate.h: sg_defer, sg_complete, sg_deferred_cancel):
 * a handler promises its answer and returns; any thread completes it
 * later. The answer leaves once both happened (the handler returned, the
 * answer was completed), from whichever thread comes second, on the lane
 * its Snapshot came on. A deferred answer holds a reference on the worker,
 * so it may outlive the run and sg_worker_free(). */
#include "sdk.h"

#include <errno.h>

static void deferred_free(struct sg_deferred *d)
{
	sg_worker *w = d->worker;
	ctx_end(&d->ctx);
	action_release(&d->action);
	pthread_mutex_destroy(&d->ctx_lock);
	free(d);
	run_unref(w);
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
	run_ref(w);
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
	int r = -ENOTCONN;
	if (run_settle(w, true)) {
		struct action_msg msg;
		struct sg_err err = { "" };
		action_to_msg(&d->action, d->cancelled ? SDK_ACTION_CANCELLED : 0, d->ctx.seq,
			      d->ctx.reg_name, &msg);
		r = transport_send(w, &msg.env, d->ctx.lane, &err);
		/* A lost link: the receiving thread sees it too and ends the run. */
		if (r == -ECONNRESET)
			r = -ENOTCONN;
		else if (r < 0)
			transport_end(w, r, &err);
		run_link_leave(w);
	}
	deferred_free(d);
	return r;
}

void deferred_call_returned(struct sg_deferred *d)
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
