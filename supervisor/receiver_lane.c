/* The receiver's lane, the receiver thread's side (lane.h): it sends a
 * notification whose builtins continued to a worker that spins on another
 * CPU, and spins (at most spin_ns) for the answer, so a worker's answer
 * costs the same two context switches as a builtin's. It answers
 * continue, errno and return itself, and serves memory requests for that
 * notification. Anything else (another action, another message, no answer
 * in time, a broken ring) it leaves unread and hands over, the
 * notification and the lane, to the router. */
#include <errno.h>
#include <poll.h>
#include <sched.h>

#include "log.h"
#include "notification.h"
#include "proxy.h"
#include "router_impl.h"

/* Memory requests the receiver serves for one notification; more go to
 * the router. */
#define LANE_MAX_MEM_REQUESTS 16u

/* A replica of h's worker whose lane the receiver may use now (taken:
 * lane_try), or NULL. */
static struct worker *lane_pick(struct router *rt, const struct chain_hop *h, int cpu,
				bool *same_cpu)
{
	struct worker *first = h->worker;
	*same_cpu = false;
	for (unsigned i = 0; i < first->n_replicas; i++) {
		struct worker *w = &rt->workers[first->index + i];
		if (!lane_try(&w->lane, WORKER_MAX_INFLIGHT))
			continue;
		/* Spinning for a worker that spins on this very CPU would only
		 * keep it from answering (the receiver is real-time). */
		if (atomic_load_explicit(&w->shm->worker_cpu, memory_order_relaxed) == cpu) {
			/* Ask it to move (a hint the SDK follows), use the router now. */
			atomic_store_explicit(&w->shm->avoid_cpu, cpu, memory_order_relaxed);
			*same_cpu = true;
			lane_release(&w->lane);
			continue;
		}
		return w;
	}
	return NULL;
}

/* What the lane's next message meant for the notification waited for. */
enum lane_result {
	LANE_WAIT,      /* a memory request, served: keep waiting */
	LANE_ANSWERED,  /* answered here */
	LANE_NEXT_HOPS, /* continued: the next hops are the router's */
	LANE_ROUTERS,   /* left unread: the router's business */
};

/* The lane's next message, already copied out (len bytes, next: the
 * position after it), for p. */
static enum lane_result lane_message(struct router *rt, struct worker *w, struct pending *p,
				     size_t len, uint32_t next)
{
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	struct sg_err err;
	if (proto_decode(rt->lane_buf, len, &m, &err) < 0 ||
	    proto_validate_from_worker(m, &err) < 0)
		return LANE_ROUTERS;
	if (m->body_case == SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST) {
		const Sysgate__V1__MemRequest *q = m->mem_request;
		/* A reply that might not fit the ring goes by the router (nng). */
		size_t bound = (size_t)q->length + 256;
		int e;
		if (q->seq != p->seq || bound > FASTCHAN_MAX_MSG ||
		    !fastchan_reserve(&w->lane.tx, bound, &e))
			return LANE_ROUTERS;
		fastchan_consume(&w->lane.rx, next);
		Sysgate__V1__Envelope env;
		Sysgate__V1__MemReply reply;
		proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY);
		env.mem_reply = &reply;
		struct childmem mem = { .listener = rt->listener,
					.id = p->req.id,
					.pid = (pid_t)p->req.pid };
		proxy_serve(&mem, q, rt->lane_proxy, &reply);
		worker_put_fast(w, &w->lane.tx, &env); /* room reserved above */
		return LANE_WAIT;
	}
	if (m->body_case != SYSGATE__V1__ENVELOPE__BODY_ACTION || m->action->seq != p->seq)
		return LANE_ROUTERS;
	/* Kill, inject, failure: the router's business. */
	struct action a;
	if (notification_action(m->action, p->chain->hops[0].observe_only, &a) !=
		    NOTIFICATION_ACTION ||
	    a.kind == ACTION_KILL)
		return LANE_ROUTERS;
	if (!action_valid(&a))
		return LANE_ROUTERS;
	fastchan_consume(&w->lane.rx, next);
	if (a.kind == ACTION_CONTINUE && p->chain->n_hops > 1) {
		/* The next hops are the router's. */
		p->hop = 1;
		p->w = NULL;
		return LANE_NEXT_HOPS;
	}
	answer_send(rt->listener, &rt->lane_answer, &p->req, &a);
	notification_record(rt->audit, &p->rec, &p->req, p->t0, &a,
			    a.kind == ACTION_CONTINUE ? "kernel" : w->name, NULL);
	return LANE_ANSWERED;
}

/* Another notification waits to be received: waiting here would delay it
 * (and keep the next replica idle), so the router takes this one over. */
static bool listener_ready(struct router *rt)
{
	struct pollfd pfd = { .fd = rt->listener, .events = POLLIN };
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

int receiver_lane(struct router *rt, const struct seccomp_notif *req, const struct chain *chain,
		  uint64_t t0)
{
	if (!rt->spin_ns)
		return -EAGAIN;
	struct pending *p = rt->lane_spare ? rt->lane_spare : pending_get(rt);
	if (!p)
		return -EAGAIN;
	rt->lane_spare = p;
	bool same_cpu;
	struct worker *w = lane_pick(rt, &chain->hops[0], sched_getcpu(), &same_cpu);
	if (!w) {
		rt->lane_not_used++;
		rt->lane_same_cpu += same_cpu;
		return -EAGAIN;
	}
	pending_start(rt, p, req, chain, t0);
	p->w = w;
	p->gen = w->generation; /* published before the lane opened */
	p->seq = atomic_fetch_add(&rt->next_seq, 1) + 1;
	p->via_lane = true;
	struct childmem mem = { .listener = rt->listener, .id = req->id, .pid = (pid_t)req->pid };
	notification_preread(&p->rec, req, &mem);
	p->preread = true;
	struct snapshot_msg sm;
	notification_snapshot(&sm, req, p->seq, &p->rec, rt->sandbox, chain->hops[0].reg);
	/* A full or broken lane: the router's way (and the router finds a
	 * broken ring; w's state is not the receiver's to touch). */
	if (worker_put_fast(w, &w->lane.tx, &sm.env) < 0) {
		audit_syscall_release(&p->rec);
		lane_release(&w->lane);
		return -EAGAIN;
	}
	uint64_t start = now_ns();
	p->deadline = start + rt->handler_timeout_ns;
	enum lane_result k = LANE_ROUTERS;
	unsigned served = 0;
	for (unsigned spins = 0;; spins++) {
		uint32_t next;
		ssize_t len = fastchan_peek(&w->lane.rx, rt->lane_buf, FASTCHAN_MAX_MSG, &next);
		if (len >= 0) {
			/* Bounded however the worker behaves: a stream of memory
			 * requests does not keep the receiver here. */
			if (served == LANE_MAX_MEM_REQUESTS || now_ns() - start > rt->spin_ns)
				break;
			k = lane_message(rt, w, p, (size_t)len, next);
			if (k != LANE_WAIT)
				break;
			k = LANE_ROUTERS; /* a memory request served: still unanswered */
			served++;
			continue;
		}
		if (len != -EAGAIN)
			break; /* a broken ring: the router finds it */
		fastchan_relax();
		if (spins % 64 == 63 && (now_ns() - start > rt->spin_ns || listener_ready(rt)))
			break;
	}
	if (k == LANE_ROUTERS)
		rt->lane_handed++;
	else
		rt->lane_answered++;
	if (k != LANE_ANSWERED) {
		/* Unanswered here (the router takes it, and the lane), or on to
		 * the next hops: queued before any hand-over (lane.h). */
		p->adopt = k == LANE_ROUTERS;
		rt->lane_spare = NULL;
		pending_submit(rt, p);
		if (k == LANE_ROUTERS)
			lane_hand_over(&w->lane);
		router_kick(rt);
	}
	lane_release(&w->lane);
	return 0;
}

void receiver_lane_report(const struct router *rt)
{
	if (rt->lane_answered || rt->lane_handed || rt->lane_not_used)
		log_verbose("receiver's lane: %llu answered on it, %llu handed to the router, "
			    "%llu not taken (%llu of them: the worker was on the receiver's CPU)",
			    (unsigned long long)rt->lane_answered,
			    (unsigned long long)rt->lane_handed,
			    (unsigned long long)rt->lane_not_used,
			    (unsigned long long)rt->lane_same_cpu);
}
