/* The run's shared state (sdk.h), under the worker's lock: the worker's
 * lifetime, the Snapshots admitted and queued for the handler threads, the
 * memory calls waiting for their MemReply, the threads outside the pool on
 * the link, and the end of the run. Nothing here sends, receives or wakes
 * the threads sleeping on the rings: transport.c does, around these. */
#include "sdk.h"

#include <errno.h>
#include <string.h>

/* ---- Lifetime ------------------------------------------------------------ */

void run_init(sg_worker *w)
{
	w->refs = 1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work_cond, NULL);
	pthread_cond_init(&w->mem_cond, NULL);
	pthread_cond_init(&w->link_cond, NULL);
}

void run_ref(sg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->refs++;
	pthread_mutex_unlock(&w->lock);
}

void run_unref(sg_worker *w)
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

bool run_ended(sg_worker *w)
{
	return __atomic_load_n(&w->ended, __ATOMIC_ACQUIRE);
}

/* ---- Snapshots ------------------------------------------------------------ */

int run_admit(sg_worker *w, const Sysgate__V1__Snapshot *s, struct sg_err *err)
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

int run_queue(sg_worker *w, Sysgate__V1__Envelope **m, int lane, struct sg_err *err)
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
	return r;
}

Sysgate__V1__Envelope *run_next_snapshot(sg_worker *w, int *lane, bool wait)
{
	pthread_mutex_lock(&w->lock);
	while (wait && !w->ended && !w->queue_len)
		pthread_cond_wait(&w->work_cond, &w->lock);
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

bool run_queued(sg_worker *w)
{
	return __atomic_load_n(&w->queue_len, __ATOMIC_RELAXED) != 0;
}

bool run_settle(sg_worker *w, bool enter_link)
{
	pthread_mutex_lock(&w->lock);
	w->outstanding--;
	bool running = !w->ended;
	if (running && enter_link)
		w->link_users++;
	pthread_mutex_unlock(&w->lock);
	return running;
}

void run_free_queue(sg_worker *w)
{
	for (size_t i = 0; i < w->queue_len; i++)
		proto_envelope_free(w->queue[i]);
	free(w->queue);
	free(w->queue_lane);
	w->queue = NULL;
	w->queue_lane = NULL;
	w->queue_len = w->queue_cap = 0;
}

/* ---- Memory calls ------------------------------------------------------------ */

/* What a memory call learns when the run ended: the link is going away, or
 * our own failure. The supervisor's Error is an end like Goodbye to it. */
static int run_waiter_error(int result)
{
	return result == 0 || result == -ECONNABORTED ? -ECONNRESET : result;
}

int run_mem_register(sg_worker *w, struct mem_wait *wait)
{
	pthread_mutex_lock(&w->lock);
	int r = 0;
	if (w->ended) {
		r = run_waiter_error(w->result);
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

void run_mem_cancel(sg_worker *w, struct mem_wait *wait)
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

int run_mem_reply(sg_worker *w, Sysgate__V1__Envelope **m, const struct mem_wait *mine,
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
	/* wait may be gone now (its owner returned): compared, never read. */
	if (!wait)
		return err_set(err, EPROTO, "MemReply %llu with no memory request pending",
			       (unsigned long long)id);
	return wait != mine;
}

int run_mem_wait(sg_worker *w, struct mem_wait *wait)
{
	pthread_mutex_lock(&w->lock);
	while (!wait->done)
		pthread_cond_wait(&w->mem_cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return wait->reply ? 0 : wait->error;
}

/* ---- The link's users and the end of the run ---------------------------------- */

bool run_link_enter(sg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	bool running = w->welcomed && !w->ended;
	if (running)
		w->link_users++;
	pthread_mutex_unlock(&w->lock);
	return running;
}

void run_link_leave(sg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	if (--w->link_users == 0)
		pthread_cond_broadcast(&w->link_cond);
	pthread_mutex_unlock(&w->lock);
}

void run_wait_link_idle(sg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->link_users)
		pthread_cond_wait(&w->link_cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

bool run_end(sg_worker *w, int result, const struct sg_err *err)
{
	pthread_mutex_lock(&w->lock);
	bool first = !w->ended;
	if (first) {
		w->ended = true;
		w->result = result;
		if (err)
			w->result_err = *err;
		for (struct mem_wait *q = w->mem_waits; q; q = q->next) {
			q->done = true;
			q->error = run_waiter_error(result);
		}
		w->mem_waits = NULL;
		pthread_cond_broadcast(&w->mem_cond);
		pthread_cond_broadcast(&w->work_cond);
		w->link_users++; /* for what the caller sends to end it, from any thread */
	}
	pthread_mutex_unlock(&w->lock);
	return first;
}
