/* The router's routing and exception policy: which worker's turn a
 * notification is, handing it over, and answering it, with the worker's
 * answer or with the exception policy of the registration whose worker
 * failed it. Runs on the router thread. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "notification.h"
#include "procs.h"
#include "router_impl.h"
#include "syscalls.h"

const char *router_policy_name(unsigned policy)
{
	static const char *const names[] = { "KILL", "DENY_EPERM", "CONTINUE", "DENY_EIO" };
	return policy < ARRAY_SIZE(names) ? names[policy] : "KILL";
}

const char *router_syscall_label(long nr)
{
	const char *n = syscalls_name(nr);
	return n ? n : "?";
}

void router_audit_worker(struct router *rt, const char *type, const struct worker *w,
			 json_t *fields)
{
	if (!rt->audit) {
		json_decref(fields);
		return;
	}
	if (!fields)
		fields = json_object();
	json_object_set_new(fields, "worker", audit_json_str(w->name));
	json_object_set_new(fields, "command", audit_json_str(w->spec)); /* any bytes */
	if (w->pid > 0)
		json_object_set_new(fields, "worker_pid", json_integer(w->pid));
	audit_event(rt->audit, type, fields);
}

void router_finish(struct router *rt, struct pending *p, const struct action *a,
		   const char *decider, const char *exception)
{
	answer_send(rt->listener, &rt->answer, &p->req, a);
	notification_record(rt->audit, &p->rec, &p->req, p->t0, a, decider, exception);
	pending_put(rt, p);
}

/* The router thread's view of the live worker pids (router_worker_pids is
 * the other threads'). */
size_t router_own_pids(const struct router *rt, pid_t out[WORKER_MAX])
{
	size_t n = 0;
	for (size_t i = 0; i < rt->n_workers; i++)
		if (rt->workers[i].pid > 0)
			out[n++] = rt->workers[i].pid;
	return n;
}

/* Every sandbox process, never a worker: the KILL policy. */
static void kill_for_policy(struct router *rt, const struct worker *w, const char *why)
{
	pid_t helpers[WORKER_MAX];
	size_t n = router_own_pids(rt, helpers);
	procs_kill_all(getpid(), helpers, n);
	if (!rt->sandbox_killed)
		log_error("worker '%s' %s: killing the sandbox (exception policy KILL)", w->spec,
			  why);
	rt->sandbox_killed = true;
}

/* The current hop's exception policy answers p; CONTINUE hands it on. */
void router_apply_policy(struct router *rt, struct pending *p, const char *why)
{
	const struct chain_hop *h = &p->chain->hops[p->hop];
	struct worker *w = p->w ? p->w : h->worker;
	struct action a = { .kind = ACTION_ERRNO };
	p->w = NULL;
	log_verbose("worker '%s' %s: %s gets exception policy %s", w->spec, why,
		    router_syscall_label(p->req.data.nr), router_policy_name(h->policy));
	switch (h->policy) {
	case SYSGATE__V1__EXCEPTION_POLICY__CONTINUE:
		p->hop++;
		router_route(rt, p);
		return;
	case SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM:
		a.value = EPERM;
		break;
	case SYSGATE__V1__EXCEPTION_POLICY__DENY_EIO:
		a.value = EIO;
		break;
	default:
		kill_for_policy(rt, w, why);
		a = (struct action){ .kind = ACTION_KILL, .value = SIGKILL };
		break;
	}
	router_finish(rt, p, &a, w->name, router_policy_name(h->policy));
}

static int send_snapshot(struct router *rt, struct worker *w, struct pending *p,
			 const struct chain_hop *h, struct sg_err *err)
{
	struct snapshot_msg m;
	uint64_t seq = p->seq;
	p->seq = atomic_fetch_add(&rt->next_seq, 1) + 1;
	notification_snapshot(&m, &p->req, p->seq, &p->rec, rt->sandbox, h->reg);
	int r = worker_send(w, &m.env, err);
	if (r < 0) {
		p->seq = seq;
		return r;
	}
	p->w = w;
	p->gen = w->generation;
	p->via_lane = false;
	p->deadline = now_ns() + rt->handler_timeout_ns;
	w->inflight[w->n_inflight++] = p;
	return 0;
}

size_t router_load_of(const struct worker *w)
{
	return w->n_inflight + w->n_expired;
}

/* The replica of h's worker to take one more notification: a ready one
 * with the fewest pending; else the first, to report why not. */
static struct worker *pick_replica(struct router *rt, const struct chain_hop *h)
{
	struct worker *first = h->worker, *best = NULL;
	for (unsigned i = 0; i < first->n_replicas; i++) {
		struct worker *w = &rt->workers[first->index + i];
		if (w->state == WORKER_READY && router_load_of(w) < WORKER_MAX_INFLIGHT &&
		    (!best || router_load_of(w) < router_load_of(best)))
			best = w;
	}
	if (best)
		return best;
	for (unsigned i = 0; i < first->n_replicas; i++)
		if (rt->workers[first->index + i].state == WORKER_READY)
			return &rt->workers[first->index + i];
	return first;
}

/* Hands p to the next hop that takes it, or answers it. */
void router_route(struct router *rt, struct pending *p)
{
	if (p->hop >= p->chain->n_hops) {
		/* Everyone continued: the kernel runs the syscall. */
		router_finish(rt, p, &(struct action){ .kind = ACTION_CONTINUE }, "kernel", NULL);
		return;
	}
	const struct chain_hop *h = &p->chain->hops[p->hop];
	struct worker *w = pick_replica(rt, h);
	struct sg_err err;
	p->w = w;
	if (w->state != WORKER_READY) {
		router_apply_policy(rt, p, "is not running");
	} else if (router_load_of(w) >= WORKER_MAX_INFLIGHT) {
		router_apply_policy(rt, p, "has too many notifications pending");
	} else if (send_snapshot(rt, w, p, h, &err) < 0) {
		log_verbose("worker '%s': snapshot: %s", w->spec, err.msg);
		router_apply_policy(rt, p, "cannot take the notification");
	}
}

struct pending *router_find_inflight(struct worker *w, uint64_t seq, bool take)
{
	for (size_t i = 0; i < w->n_inflight; i++) {
		struct pending *p = w->inflight[i];
		if (p->seq != seq)
			continue;
		if (take)
			w->inflight[i] = w->inflight[--w->n_inflight];
		return p;
	}
	return NULL;
}
