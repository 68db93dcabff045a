/* The handler threads (sdk.h): each takes the next Snapshot (from the
 * queue, or with the fast channel from the rings, pumping them in turn:
 * pump.c), calls its registration's handler with the slot's context, and
 * sends the Action it answered, or leaves it to the answer it deferred. */
#include "sdk.h"

#include <errno.h>

void handler_dispatch(sg_worker *w, struct handler_slot *slot,
			     const Sysgate__V1__Snapshot *s, int lane)
{
	struct sg_ctx *c = &slot->ctx;
	const struct sdk_registration *reg = &w->regs[s->registration]; /* run_admit checked */
	struct sg_err err = { "" };
	if (ctx_begin(c, s, reg->name, lane) < 0) {
		run_settle(w, false);
		err_set(&err, ENOMEM, "Snapshot %llu: out of memory", (unsigned long long)s->seq);
		transport_end(w, -ENOMEM, &err);
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
	if (run_settle(w, false)) {
		struct action_msg msg;
		action_to_msg(&action, result, s->seq, reg->name, &msg);
		/* Pumping again before the answer leaves: the next Snapshot then
		 * finds this thread spinning, not asleep. */
		if (w->fast)
			pump_try_role(w, slot);
		int r = transport_send(w, &msg.env, lane, &err);
		/* A lost link: the receiving thread sees it too and ends the run. */
		if (r < 0 && r != -ECONNRESET)
			transport_end(w, r, &err);
	}
	action_release(&action);
}

static void *handler_thread(void *arg)
{
	struct handler_slot *slot = arg;
	sg_worker *w = slot->worker;
	while (!run_ended(w)) {
		int lane = 0;
		Sysgate__V1__Envelope *m _cleanup_envelope_ =
			w->fast ? pump_next_snapshot(w, slot, &lane)
				: run_next_snapshot(w, &lane, true);
		if (m)
			handler_dispatch(w, slot, m->snapshot, lane);
	}
	if (slot->pumping)
		pump_release_role(w, slot);
	return NULL;
}

/* A handler thread's body run through the binding's sg_thread_wrap_fn. */
static void *wrapped_thread(void *arg)
{
	struct handler_slot *slot = arg;
	sg_worker *w = slot->worker;
	return w->thread_wrap(handler_thread, slot, w->thread_wrap_ud);
}

int handler_start(sg_worker *w, struct sg_err *err)
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
		r = pthread_create(&w->slots[i].thread, NULL,
				   w->thread_wrap ? wrapped_thread : handler_thread, &w->slots[i]);
		if (r != 0)
			break;
		w->n_started++;
	}
	if (w->n_started == 0)
		return err_sys(err, r, "starting a handler thread");
	return 0;
}

void handler_join(sg_worker *w)
{
	for (size_t i = 0; i < w->n_started; i++)
		pthread_join(w->slots[i].thread, NULL);
	w->n_started = 0;
}

void handler_free(sg_worker *w)
{
	for (size_t i = 0; i < w->n_slots; i++) {
		ctx_end(&w->slots[i].ctx);
		pthread_mutex_destroy(&w->slots[i].ctx_lock);
	}
	free(w->slots);
	w->slots = NULL;
	w->n_slots = 0;
}
