/* The ring pump (sdk.h): how the worker receives from the fast channel's
 * rings (fastchan.h) once the supervisor agreed to them. No thread is
 * dedicated to it: the handler threads, and the memory calls, take turns.
 *
 * One thread at a time holds the pump role: it consumes both lanes,
 * spinning for SYSGATE_WORKER_SPIN_NS after the last message, then sleeping
 * on a futex word. A Snapshot it finds it runs itself, after releasing the
 * role (so another thread can take it if more arrives meanwhile; when none
 * is pumping, need_wake stays set and the supervisor's next message wakes
 * the sleepers). It takes the role back before sending the answer. A
 * memory call pumps while it waits if nobody else does; the Snapshots it
 * finds then are queued for the others. Each message is handled by
 * transport_handle, as on the link.
 *
 * The router's lane is read first, and again before a Snapshot from the
 * receiver's lane is run or queued, so an Injected (router's lane) reaches
 * the callback before any Snapshot sent after it on either lane. */
#include "sdk.h"

#include <errno.h>
#include <sched.h>

static void pump_violation(sg_worker *w, struct sg_err *err)
{
	transport_end(w, -EPROTO, err);
}

static bool rx_ready(sg_worker *w)
{
	return fastchan_ready(&w->fast_rx[0]) || fastchan_ready(&w->fast_rx[1]);
}

/* ---- The role ------------------------------------------------------------ */

void pump_release_role(sg_worker *w, struct handler_slot *slot)
{
	slot->pumping = false;
	atomic_store_explicit(&w->shm->worker_cpu, -1, memory_order_relaxed);
	atomic_store(&w->pumping, false);
	fastchan_want_wake(&w->shm->worker_need_wake);
	/* Published before we asked: someone must pump it. */
	if (rx_ready(w))
		transport_kick(w);
}

void pump_try_role(sg_worker *w, struct handler_slot *slot)
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

/* ---- Pumping --------------------------------------------------------------- */

static int pump_router_lane(sg_worker *w, const struct mem_wait *mine);

/* The message of len bytes in fast_buf, popped from lane: 1 an admitted
 * Snapshot for the caller (*snap, when snap is given and mine is NULL), 0
 * handled (a Snapshot queued), -1 the run ended (a violation). */
static int pump_one(sg_worker *w, int lane, size_t len, const struct mem_wait *mine,
		    Sysgate__V1__Envelope **snap)
{
	struct sg_err err = { "" };
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	int r = proto_decode(w->fast_buf, len, &m, &err);
	if (r == 0)
		r = proto_validate_from_supervisor(m, &err);
	if (r == 0)
		r = transport_handle(w, &m, true, mine, &err);
	if (r == TRANSPORT_SNAPSHOT) {
		/* The receiver's lane may overtake an Injected: what the
		 * router's lane holds goes first, before anyone can take it. */
		if (lane == 1 && pump_router_lane(w, mine) < 0)
			return -1;
		if (!mine && snap) {
			*snap = steal_ptr(&m);
			return 1;
		}
		r = transport_queue(w, &m, lane, &err);
	}
	if (r < 0) {
		pump_violation(w, &err);
		return -1;
	}
	return 0;
}

/* Everything waiting on the router's lane, Snapshots queued: what must be
 * done before a Snapshot from the receiver's lane runs. */
static int pump_router_lane(sg_worker *w, const struct mem_wait *mine)
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
static void pump(sg_worker *w, const struct mem_wait *mine, Sysgate__V1__Envelope **snap, int *lane)
{
	uint64_t idle_since = now_ns(), yielded = idle_since;
	for (;;) {
		if (run_ended(w))
			return;
		if (mine && __atomic_load_n(&mine->done, __ATOMIC_ACQUIRE))
			return;
		if (!mine && run_queued(w))
			return;
		ssize_t len = -EAGAIN;
		int l;
		for (l = 0; l < 2 && len == -EAGAIN; l++)
			len = fastchan_pop(&w->fast_rx[l], w->fast_buf, FASTCHAN_MAX_MSG);
		l--;
		if (len >= 0) {
			idle_since = now_ns();
			int r = pump_one(w, l, (size_t)len, mine, snap);
			if (r < 0)
				return;
			if (r == 1) {
				*lane = l;
				return;
			}
			continue;
		}
		if (len == -EPROTO) {
			struct sg_err err;
			err_set(&err, EPROTO,
				"the supervisor's end of the fast channel is corrupt");
			pump_violation(w, &err);
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
		if (!rx_ready(w) && !run_ended(w) &&
		    !(mine && __atomic_load_n(&mine->done, __ATOMIC_ACQUIRE)))
			fastchan_futex_wait(&w->shm->worker_wake_seq, seq, 0);
		fastchan_no_wake(&w->shm->worker_need_wake);
		atomic_store_explicit(&w->shm->worker_cpu, sched_getcpu(), memory_order_relaxed);
		idle_since = yielded = now_ns();
	}
}

/* ---- The threads that pump ---------------------------------------------------- */

Sysgate__V1__Envelope *pump_next_snapshot(sg_worker *w, struct handler_slot *slot, int *lane)
{
	Sysgate__V1__Envelope *m = run_next_snapshot(w, lane, false);
	if (m) {
		/* Never run a handler holding the role (taken back before the
		 * last answer left): nobody would read the rings meanwhile, a
		 * memory reply included. */
		if (slot->pumping)
			pump_release_role(w, slot);
		return m;
	}
	uint32_t seq = atomic_load(&w->shm->worker_wake_seq);
	pump_try_role(w, slot);
	if (slot->pumping) {
		pump(w, NULL, &m, lane);
		pump_release_role(w, slot);
		return m;
	}
	/* Another thread pumps: wait for queued work, the role, or the end. */
	if (!run_queued(w) && atomic_load(&w->pumping) && !run_ended(w))
		fastchan_futex_wait(&w->shm->worker_wake_seq, seq, 0);
	return NULL;
}

int pump_mem_wait(sg_worker *w, struct mem_wait *wait)
{
	struct handler_slot self = { .worker = w };
	for (;;) {
		pthread_mutex_lock(&w->lock);
		bool done = wait->done;
		pthread_mutex_unlock(&w->lock);
		if (done)
			break;
		uint32_t seq = atomic_load(&w->shm->worker_wake_seq);
		pump_try_role(w, &self);
		if (self.pumping) {
			pump(w, wait, NULL, NULL);
			pump_release_role(w, &self);
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
