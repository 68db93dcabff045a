/* The worker's end of the fast channel (fastchan.h, sdk.h): sending,
 * the pump role, and the handler threads' loop when the supervisor agreed
 * to the channel.
 *
 * One thread at a time holds the pump role: it consumes rx, spinning for
 * SYSGATE_WORKER_SPIN_NS after the last message, then sleeping on a futex
 * word. A Snapshot it finds it runs itself, after releasing the role (so
 * another thread can take it if more arrives meanwhile; when none is
 * pumping, need_wake stays set and the supervisor's next message wakes the
 * sleepers). It takes the role back before sending the answer. A memory
 * call pumps while it waits if nobody else does; the Snapshots it finds
 * then are queued for the others.
 *
 * Two lanes come in (fastchan.h): the router's and the receiver's. An
 * answer and a memory request go back on the lane their Snapshot came on.
 * The router's lane is read first, and again before a Snapshot from the
 * receiver's lane is run, so an Injected (router's lane) reaches the
 * callback before any Snapshot sent after it on either lane. */
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
	if (sched_getaffinity(0, sizeof(w->fast_cpus), &w->fast_cpus) < 0)
		CPU_ZERO(&w->fast_cpus);
	/* The supervisor says how long spinning pays (0 on one CPU). */
	const char *spin = getenv(ENV_SPIN);
	char *end;
	unsigned long long ns = spin && *spin ? strtoull(spin, &end, 10) : 0;
	w->fast_spin_ns =
		spin && *spin && !*end && ns <= 10000000ull ? ns : FASTCHAN_WORKER_SPIN_NS;
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
	w->fast_tx[0] = (struct fastchan_end){ .ring = &w->shm->to_sup };
	w->fast_tx[1] = (struct fastchan_end){ .ring = &w->shm->to_sup_r };
	w->fast_rx[0] = (struct fastchan_end){ .ring = &w->shm->to_worker };
	w->fast_rx[1] = (struct fastchan_end){ .ring = &w->shm->to_worker_r };
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
		fastchan_futex_wake_all(&w->shm->worker_wake_seq);
}

static bool ended(sg_worker *w)
{
	return __atomic_load_n(&w->ended, __ATOMIC_ACQUIRE);
}

static bool rx_ready(sg_worker *w)
{
	return fastchan_ready(&w->fast_rx[0]) || fastchan_ready(&w->fast_rx[1]);
}

int worker_send(sg_worker *w, const Sysgate__V1__Envelope *m, int lane, struct sg_err *err)
{
	if (!w->fast)
		return link_send(&w->link, m, err);
	struct fastchan_end *tx = &w->fast_tx[lane ? 1 : 0];
	pthread_mutex_lock(&w->fast_tx_lock);
	int e = proto_ring_put(tx, m);
	pthread_mutex_unlock(&w->fast_tx_lock);
	if (e == 0) {
		uint64_t one = 1;
		if (fastchan_take_wake(&tx->ring->need_wake))
			(void)!write(w->fast_wake_fd, &one, sizeof(one));
		return 0;
	}
	if (e == -EPROTO)
		return err_set(err, EPROTO, "the supervisor's end of the fast channel is corrupt");
	/* Too big or full for now: the link carries it (any order is fine for
	 * what a worker sends), and refuses what is over the protocol's cap. */
	return link_send(&w->link, m, err);
}

static void release_role(sg_worker *w, struct handler_slot *slot)
{
	slot->pumping = false;
	atomic_store_explicit(&w->shm->worker_cpu, -1, memory_order_relaxed);
	atomic_store(&w->pumping, false);
	fastchan_want_wake(&w->shm->worker_need_wake);
	/* Published before we asked: someone must pump it. */
	if (rx_ready(w))
		worker_kick(w);
}

void fast_try_role(sg_worker *w, struct handler_slot *slot)
{
	if (slot->pumping)
		return;
	bool expected = false;
	if (atomic_compare_exchange_strong(&w->pumping, &expected, true)) {
		slot->pumping = true;
		fastchan_no_wake(&w->shm->worker_need_wake);
		atomic_store_explicit(&w->shm->worker_cpu, sched_getcpu(), memory_order_relaxed);
	}
}

/* Ends the run for a message we cannot accept. */
static void violation(sg_worker *w, struct sg_err *err)
{
	worker_end(w, -EPROTO, err);
}

/* The receiver spins for our answers on its own CPU (the trapped
 * program's): a worker spinning there would keep it waiting, so the
 * spinning thread moves to the other CPUs when asked to. */
static void step_aside(sg_worker *w)
{
	int cpu = sched_getcpu();
	int avoid = atomic_load_explicit(&w->shm->avoid_cpu, memory_order_relaxed);
	if (avoid >= 0 && avoid == cpu && avoid < CPU_SETSIZE && CPU_ISSET(avoid, &w->fast_cpus) &&
	    CPU_COUNT(&w->fast_cpus) > 1) {
		cpu_set_t set = w->fast_cpus;
		CPU_CLR(avoid, &set);
		if (sched_setaffinity(0, sizeof(set), &set) == 0)
			cpu = sched_getcpu();
		atomic_store_explicit(&w->shm->avoid_cpu, -1, memory_order_relaxed);
	}
	atomic_store_explicit(&w->shm->worker_cpu, cpu, memory_order_relaxed);
}

static int pump_router_lane(sg_worker *w, struct mem_wait *mine);

/* One message from lane: 1 a Snapshot for the caller (*snap), 0 handled,
 * -1 the run ended (a violation). */
static int pump_one(sg_worker *w, int lane, size_t len, struct mem_wait *mine,
		    Sysgate__V1__Envelope **snap)
{
	struct sg_err err = { "" };
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	if (proto_decode(w->fast_buf, len, &m, &err) < 0 ||
	    proto_validate_from_supervisor(m, &err) < 0) {
		violation(w, &err);
		return -1;
	}
	int r = 0;
	switch (m->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT:
		r = worker_admit(w, m->snapshot, &err);
		if (r == 0 && !mine && snap) {
			*snap = steal_ptr(&m);
			return 1;
		}
		/* The receiver's lane may overtake an Injected: what the
		 * router's lane holds goes first, before anyone can take it. */
		if (r == 0 && lane == 1 && pump_router_lane(w, mine) < 0)
			return -1;
		if (r == 0)
			r = worker_queue_snapshot(w, &m, lane, &err);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
		r = worker_route_reply(w, &m, mine, &err);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_INJECTED:
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
		return -1;
	}
	return 0;
}

/* Everything waiting on the router's lane, Snapshots queued: what must be
 * done before a Snapshot from the receiver's lane runs. */
static int pump_router_lane(sg_worker *w, struct mem_wait *mine)
{
	for (;;) {
		ssize_t len = fastchan_pop(&w->fast_rx[0], w->fast_buf, FASTCHAN_MAX_MSG);
		if (len == -EAGAIN)
			return 0;
		if (len < 0 || pump_one(w, 0, (size_t)len, mine, NULL) < 0)
			return -1;
	}
}

/* Holding the pump role: consumes both lanes until there is something for
 * the caller: a Snapshot to run (*snap and *lane, when mine is NULL), or
 * its memory call done (mine); or the run ended, or queued work waits
 * (mine NULL). */
static void pump(sg_worker *w, struct mem_wait *mine, Sysgate__V1__Envelope **snap, int *lane)
{
	uint64_t idle_since = now_ns(), yielded = idle_since;
	for (;;) {
		if (ended(w))
			return;
		if (mine && __atomic_load_n(&mine->done, __ATOMIC_ACQUIRE))
			return;
		if (!mine && __atomic_load_n(&w->queue_len, __ATOMIC_RELAXED))
			return;
		ssize_t len = -EAGAIN;
		int l;
		for (l = 0; l < 2 && len == -EAGAIN; l++)
			len = fastchan_pop(&w->fast_rx[l], w->fast_buf, FASTCHAN_MAX_MSG);
		l--;
		if (len >= 0) {
			idle_since = now_ns();
			Sysgate__V1__Envelope *m = NULL;
			int r = pump_one(w, l, (size_t)len, mine, &m);
			if (r < 0)
				return;
			if (r == 1) {
				/* The receiver's lane may overtake an Injected. */
				if (l == 1 && pump_router_lane(w, NULL) < 0) {
					proto_envelope_free(m);
					return;
				}
				*snap = m;
				*lane = l;
				return;
			}
			continue;
		}
		if (len == -EPROTO) {
			struct sg_err err;
			err_set(&err, EPROTO,
				"the supervisor's end of the fast channel is corrupt");
			violation(w, &err);
			return;
		}
		uint64_t t = now_ns();
		if (t - idle_since < w->fast_spin_ns) {
			fastchan_relax();
			if (t - yielded > FASTCHAN_YIELD_NS) {
				sched_yield(); /* whatever else is runnable here goes first */
				step_aside(w);
				yielded = t;
			}
			continue;
		}
		/* Sleep until the supervisor (or one of ours) bumps the word. */
		uint32_t seq = atomic_load(&w->shm->worker_wake_seq);
		atomic_store_explicit(&w->shm->worker_cpu, -1, memory_order_relaxed);
		fastchan_want_wake(&w->shm->worker_need_wake);
		if (!rx_ready(w) && !ended(w) &&
		    !(mine && __atomic_load_n(&mine->done, __ATOMIC_ACQUIRE)))
			fastchan_futex_wait(&w->shm->worker_wake_seq, seq, 0);
		fastchan_no_wake(&w->shm->worker_need_wake);
		atomic_store_explicit(&w->shm->worker_cpu, sched_getcpu(), memory_order_relaxed);
		idle_since = yielded = now_ns();
	}
}

void *fast_thread(void *arg)
{
	struct handler_slot *slot = arg;
	sg_worker *w = slot->worker;
	while (!ended(w)) {
		int lane = 0;
		Sysgate__V1__Envelope *m _cleanup_envelope_ = worker_try_snapshot(w, &lane);
		if (m) {
			/* Never run a handler holding the role (taken back before
			 * the last answer left): nobody would read the rings
			 * meanwhile, a memory reply included. */
			if (slot->pumping)
				release_role(w, slot);
			worker_dispatch(w, slot, m->snapshot, lane);
			continue;
		}
		uint32_t seq = atomic_load(&w->shm->worker_wake_seq);
		fast_try_role(w, slot);
		if (slot->pumping) {
			pump(w, NULL, &m, &lane);
			release_role(w, slot);
			if (m)
				worker_dispatch(w, slot, m->snapshot, lane);
			continue;
		}
		/* Another thread pumps: wait for queued work, the role, or the end. */
		if (!__atomic_load_n(&w->queue_len, __ATOMIC_RELAXED) && atomic_load(&w->pumping) &&
		    !ended(w))
			fastchan_futex_wait(&w->shm->worker_wake_seq, seq, 0);
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
		uint32_t seq = atomic_load(&w->shm->worker_wake_seq);
		fast_try_role(w, &self);
		if (self.pumping) {
			pump(w, wait, NULL, NULL);
			release_role(w, &self);
			continue;
		}
		pthread_mutex_lock(&w->lock);
		done = wait->done;
		pthread_mutex_unlock(&w->lock);
		if (!done && atomic_load(&w->pumping))
			fastchan_futex_wait(&w->shm->worker_wake_seq, seq, 0);
	}
	return wait->reply ? 0 : wait->error;
}
