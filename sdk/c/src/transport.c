/* The worker's one transport layer (sdk.h) over its two transports: the
 * nng link (link.c), which always carries the handshake and the lifecycle,
 * and the fast channel's rings (fastchan.h), which carry the rest once the
 * supervisor agreed to them. Here: setting the rings up, sending an
 * envelope on either, waking the threads that sleep on the rings, handling
 * one envelope from either, and ending the run. Receiving is the caller's:
 * sg_worker_run's thread on the link (worker.c), the pump on the rings
 * (pump.c).
 *
 * Two lanes, each a ring per direction (fastchan.h): the router's and the
 * receiver's. An answer and a memory request go back on the lane their
 * Snapshot came on; what belongs to no Snapshot (a Record) on the
 * router's. */
#include "sdk.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENV_FAST "SYSGATE_WORKER_FAST"
#define ENV_SPIN "SYSGATE_WORKER_SPIN_NS"

/* ---- Setting the rings up ------------------------------------------------ */

void transport_init(sg_worker *w)
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

bool transport_offer(sg_worker *w)
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

void transport_free(sg_worker *w)
{
	fastchan_unmap(w->shm);
	w->shm = NULL;
	w->fast = false;
	free(w->fast_buf);
	w->fast_buf = NULL;
	pthread_mutex_destroy(&w->fast_tx_lock);
}

/* ---- Sending and waking ---------------------------------------------------- */

int transport_send(sg_worker *w, const Sysgate__V1__Envelope *m, int lane, struct sg_err *err)
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

void transport_kick(sg_worker *w)
{
	if (w->fast)
		fastchan_futex_wake_all(&w->shm->worker_wake_seq);
}

/* ---- Handling one envelope --------------------------------------------------- */

int transport_handle(sg_worker *w, Sysgate__V1__Envelope **m, bool on_rings,
		     const struct mem_wait *mine, struct sg_err *err)
{
	const Sysgate__V1__Envelope *e = *m;
	int r;
	switch (e->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT:
		r = run_admit(w, e->snapshot, err);
		return r < 0 ? r : TRANSPORT_SNAPSHOT;
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
		r = run_mem_reply(w, m, mine, err);
		if (r == 1)
			transport_kick(w); /* its waiter may sleep on the rings */
		return r < 0 ? r : TRANSPORT_DONE;
	case SYSGATE__V1__ENVELOPE__BODY_INJECTED:
		/* Here, before the next message is received: whatever it does is
		 * done before any later Snapshot reaches a handler thread. */
		if (w->on_injected)
			w->on_injected((pid_t)e->injected->pid, e->injected->fd,
				       e->injected->cookie, w->on_injected_ud);
		return TRANSPORT_DONE;
	default:
		break;
	}
	if (on_rings)
		return err_set(err, EPROTO, "a lifecycle message on the fast channel");
	switch (e->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		return TRANSPORT_GOODBYE;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		return err_set(err, ECONNABORTED, "the supervisor ended the run: %s",
			       *e->error->message ? e->error->message : strerror(e->error->code));
	case SYSGATE__V1__ENVELOPE__BODY_WELCOME:
	default:
		return err_set(err, EPROTO, "a second Welcome");
	}
}

int transport_queue(sg_worker *w, Sysgate__V1__Envelope **m, int lane, struct sg_err *err)
{
	int r = run_queue(w, m, lane, err);
	if (r == 0)
		transport_kick(w);
	return r;
}

/* ---- The end of the run --------------------------------------------------------- */

/* Tells the supervisor why the run ends (best effort). */
static void transport_send_error(sg_worker *w, int code, const struct sg_err *err)
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

void transport_end(sg_worker *w, int result, const struct sg_err *err)
{
	if (!run_end(w, result, err))
		return;
	transport_kick(w);
	if (result == -EPROTO)
		transport_send_error(w, EPROTO, err);
	link_stop_recv(&w->link);
	run_link_leave(w);
}
