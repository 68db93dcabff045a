/* The worker's end of the fast channel (fastchan.h, sdk.h): sending,
 * the pump role, and the handler threads' loop when the supervisor agreed
 * to the channel.
 *
 * One thread at a time holds the pump role: it consumes rx, spinning for
 * FASTCHAN_SPIN_NS after the last message, then sleeping on rx's futex
 * word. A Snapshot it finds it runs itself, after releasing the role (so
 * another thread can take it if more arrives meanwhile; when none is
 * pumping, need_wake stays set and the supervisor's next message wakes the
 * sleepers). It takes the role back before sending the answer. A memory
 * call pumps while it waits if nobody else does; the Snapshots it finds
 * then are queued for the others. */
#include "sdk.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ENV_FAST "SYSGATE_WORKER_FAST"
#define ENV_SPIN "SYSGATE_WORKER_SPIN_NS"

void fast_init(sg_worker *w)
{
	w->fast_shm_fd = w->fast_wake_fd = -1;
	pthread_mutex_init(&w->fast_tx_lock, NULL);
	const char *v = getenv(ENV_FAST);
	int a, b, n = 0;
	if (v && sscanf(v, "%d,%d%n", &a, &b, &n) == 2 && v[n] == '\0' && a > 2 && b > 2) {
		w->fast_shm_fd = a;
		w->fast_wake_fd = b;
	}
	/* The supervisor says how long spinning pays (0 on one CPU). */
	const char *spin = getenv(ENV_SPIN);
	char *end;
	unsigned long long ns = spin && *spin ? strtoull(spin, &end, 10) : 0;
	w->fast_spin_ns = spin && *spin && !*end && ns <= 10000000ull ? ns : FASTCHAN_SPIN_NS;
}

bool fast_offer(sg_worker *w)
{
	if (w->fast_shm_fd < 0)
		return false;
	struct sg_err err;
	w->fast_buf = malloc(FASTCHAN_MAX_MSG);
	if (!w->fast_buf || fastchan_map(w->fast_shm_fd, &w->shm, &err) < 0) {
		free(w->fast_buf);
		w->fast_buf = NULL;
		w->shm = NULL;
		return false; /* nng serves us all the same */
	}
	w->fast_tx = (struct fastchan_end){ .ring = &w->shm->to_sup };
	w->fast_rx = (struct fastchan_end){ .ring = &w->shm->to_worker };
	return true;
}

void fast_free(sg_worker *w)
{
	fastchan_unmap(w->shm);
	w->shm = NULL;
	w->fast = false;
	free(w->fast_buf);
	w->fast_buf = NULL;
	pthread_mutex_destroy(&w->fast_tx_lock);
}

void worker_kick(sg_worker *w)
{
	if (w->fast)
		fastchan_futex_wake_all(w->fast_rx.ring);
}

static bool ended(sg_worker *w)
{
	return __atomic_load_n(&w->ended, __ATOMIC_ACQUIRE);
}

int worker_send(sg_worker *w, const Sysgate__V1__Envelope *m, struct sg_err *err)
{
	if (!w->fast)
		return link_send(&w->link, m, err);
	size_t len = protobuf_c_message_get_packed_size(&m->base);
	if (len > PROTO_MAX_MESSAGE)
		return err_set(err, EMSGSIZE, "message of %zu bytes over the cap", len);
	pthread_mutex_lock(&w->fast_tx_lock);
	int e;
	uint8_t *dst = fastchan_reserve(&w->fast_tx, len, &e);
	if (dst) {
		protobuf_c_message_pack(&m->base, dst);
		fastchan_commit(&w->fast_tx, len);
	}
	pthread_mutex_unlock(&w->fast_tx_lock);
	if (dst) {
		uint64_t one = 1;
		if (fastchan_take_wake(w->fast_tx.ring))
			(void)!write(w->fast_wake_fd, &one, sizeof(one));
		return 0;
	}
	if (e == -EPROTO)
		return err_set(err, EPROTO, "the supervisor's end of the fast channel is corrupt");
	/* Too big or full for now: the link carries it (any order is fine for
	 * what a worker sends). */
	return link_send(&w->link, m, err);
}

static void release_role(sg_worker *w, struct handler_slot *slot)
{
	slot->pumping = false;
	atomic_store(&w->pumping, false);
	fastchan_want_wake(w->fast_rx.ring);
	/* Published before we asked: someone must pump it. */
	if (fastchan_ready(&w->fast_rx))
		worker_kick(w);
}

void fast_try_role(sg_worker *w, struct handler_slot *slot)
{
	if (slot->pumping)
		return;
	bool expected = false;
	if (atomic_compare_exchange_strong(&w->pumping, &expected, true)) {
		slot->pumping = true;
		fastchan_no_wake(w->fast_rx.ring);
	}
}

/* Ends the run for a message we cannot accept. */
static void violation(sg_worker *w, struct sg_err *err)
{
	worker_end(w, -EPROTO, err);
}

/* Holding the pump role: consumes rx until there is something for the
 * caller: a Snapshot to run (*snap, when mine is NULL), or its memory call
 * done (mine); or the run ended, or queued work waits (mine NULL). */
static void pump(sg_worker *w, struct mem_wait *mine, Sysgate__V1__Envelope **snap)
{
	uint64_t idle_since = now_ns(), yielded = idle_since;
	for (;;) {
		if (ended(w))
			return;
		if (mine && __atomic_load_n(&mine->done, __ATOMIC_ACQUIRE))
			return;
		if (!mine && __atomic_load_n(&w->queue_len, __ATOMIC_RELAXED))
			return;
		ssize_t len = fastchan_pop(&w->fast_rx, w->fast_buf, FASTCHAN_MAX_MSG);
		if (len >= 0) {
			struct sg_err err = { "" };
			Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
			if (proto_decode(w->fast_buf, (size_t)len, &m, &err) < 0 ||
			    proto_validate_from_supervisor(m, &err) < 0) {
				violation(w, &err);
				return;
			}
			idle_since = now_ns();
			int r = 0;
			switch (m->body_case) {
			case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT:
				r = worker_admit(w, m->snapshot, &err);
				if (r == 0 && !mine) {
					*snap = steal_ptr(&m);
					return;
				}
				if (r == 0)
					r = worker_queue_snapshot(w, &m, &err);
				break;
			case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
				r = worker_route_reply(w, &m, mine, &err);
				break;
			case SYSGATE__V1__ENVELOPE__BODY_INJECTED:
				/* Before any later Snapshot is taken from the ring. */
				if (w->on_injected)
					w->on_injected((pid_t)m->injected->pid, m->injected->fd,
						       m->injected->cookie, w->on_injected_ud);
				break;
			default:
				r = err_set(&err, EPROTO, "a lifecycle message on the fast channel");
				break;
			}
			if (r < 0) {
				violation(w, &err);
				return;
			}
			continue;
		}
		if (len == -EPROTO) {
			struct sg_err err;
			err_set(&err, EPROTO, "the supervisor's end of the fast channel is corrupt");
			violation(w, &err);
			return;
		}
		uint64_t t = now_ns();
		if (t - idle_since < w->fast_spin_ns) {
			fastchan_relax();
			if (t - yielded > FASTCHAN_YIELD_NS) {
				sched_yield(); /* whatever else is runnable here goes first */
				yielded = t;
			}
			continue;
		}
		/* Sleep until the supervisor (or one of ours) bumps the word. */
		uint32_t seq = atomic_load(&w->fast_rx.ring->wake_seq);
		fastchan_want_wake(w->fast_rx.ring);
		if (!fastchan_ready(&w->fast_rx) && !ended(w) &&
		    !(mine && __atomic_load_n(&mine->done, __ATOMIC_ACQUIRE)))
			fastchan_futex_wait(w->fast_rx.ring, seq, 0);
		fastchan_no_wake(w->fast_rx.ring);
		idle_since = yielded = now_ns();
	}
}

void *fast_thread(void *arg)
{
	struct handler_slot *slot = arg;
	sg_worker *w = slot->worker;
	while (!ended(w)) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ = worker_try_snapshot(w);
		if (m) {
			worker_dispatch(w, slot, m->snapshot);
			continue;
		}
		uint32_t seq = atomic_load(&w->fast_rx.ring->wake_seq);
		fast_try_role(w, slot);
		if (slot->pumping) {
			pump(w, NULL, &m);
			release_role(w, slot);
			if (m)
				worker_dispatch(w, slot, m->snapshot);
			continue;
		}
		/* Another thread pumps: wait for queued work, the role, or the end. */
		if (!__atomic_load_n(&w->queue_len, __ATOMIC_RELAXED) &&
		    atomic_load(&w->pumping) && !ended(w))
			fastchan_futex_wait(w->fast_rx.ring, seq, 0);
	}
	if (slot->pumping)
		release_role(w, slot);
	return NULL;
}

int fast_mem_wait(sg_worker *w, struct mem_wait *wait)
{
	struct handler_slot self = { .worker = w };
	for (;;) {
		pthread_mutex_lock(&w->lock);
		bool done = wait->done;
		pthread_mutex_unlock(&w->lock);
		if (done)
			break;
		uint32_t seq = atomic_load(&w->fast_rx.ring->wake_seq);
		fast_try_role(w, &self);
		if (self.pumping) {
			pump(w, wait, NULL);
			release_role(w, &self);
			continue;
		}
		pthread_mutex_lock(&w->lock);
		done = wait->done;
		pthread_mutex_unlock(&w->lock);
		if (!done && atomic_load(&w->pumping))
			fastchan_futex_wait(w->fast_rx.ring, seq, 0);
	}
	return wait->reply ? 0 : wait->error;
}
