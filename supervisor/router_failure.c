/* How a worker fails, and what follows: its deadlines (the Hello, each
 * notification's --handler-timeout, a lost link's grace), its exit, and its
 * restart with backoff, a bounded number of times. Runs on the router
 * thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "log.h"
#include "router_impl.h"

void router_start_failed(struct router *rt, const char *msg)
{
	pthread_mutex_lock(&rt->lock);
	if (!rt->start_done) {
		rt->start_done = true;
		rt->start_result = -ECHILD;
		snprintf(rt->start_err.msg, sizeof(rt->start_err.msg), "%s", msg);
		pthread_cond_broadcast(&rt->cond);
	}
	pthread_mutex_unlock(&rt->lock);
}

void router_worker_failed(struct router *rt, struct worker *w, const char *kind, const char *fmt,
			  ...)
{
	if (w->state != WORKER_STARTING && w->state != WORKER_READY)
		return;
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	worker_kill(w);
	lane_close(&w->lane);
	if (w->pipe_id) {
		nng_pipe pipe = NNG_PIPE_INITIALIZER;
		pipe.id = w->pipe_id;
		nng_pipe_close(pipe);
		w->pipe_id = 0;
	}
	if (rt->starting) {
		w->state = WORKER_DEAD;
		if (w->out_fd >= 0)
			worker_pump_output(w);
		char tail[400], msg[sizeof(rt->start_err.msg)];
		worker_tail(w, tail, sizeof(tail));
		snprintf(msg, sizeof(msg), "--worker '%.180s': %.200s%s%.100s", w->spec, why,
			 *tail ? "; its output: " : "", tail);
		router_start_failed(rt, msg);
		return;
	}
	bool restart = w->generation < RESTART_MAX;
	unsigned backoff = BACKOFF_FIRST_MS << (w->generation < 6 ? w->generation : 6);
	if (backoff > BACKOFF_MAX_MS)
		backoff = BACKOFF_MAX_MS;
	w->state = restart ? WORKER_DOWN : WORKER_DEAD;
	w->deadline_ns = now_ns() + backoff * MS;
	if (restart)
		log_error("worker '%s' %s: restarting it in %u ms (restart %u of %u)", w->spec, why,
			  backoff, w->generation + 1, RESTART_MAX);
	else
		log_error("worker '%s' %s: out of restarts; its registrations answer with their "
			  "exception policy from now on",
			  w->spec, why);
	router_audit_worker(rt, "worker_failed", w,
			    json_pack("{s:s, s:s, s:b, s:i}", "kind", kind, "reason", why,
				      "restart", restart, "pending", (int)w->n_inflight));
	/* Policies may route to other workers (or back here: down now). */
	struct pending *held[WORKER_HELD_MAX];
	size_t n = w->n_inflight;
	memcpy(held, w->inflight, n * sizeof(*held));
	w->n_inflight = 0;
	for (size_t i = 0; i < n; i++)
		router_apply_policy(rt, held[i], why);
}

void router_on_exit(struct router *rt, struct worker *w)
{
	int status;
	bool live = w->state == WORKER_STARTING || w->state == WORKER_READY;
	pid_t pid = w->pid;
	worker_kill(w); /* what it forked too, while its pid still pins the group */
	if (worker_reap(w, &status) <= 0)
		return;
	if (live) {
		char how[64];
		worker_describe_status(status, how, sizeof(how));
		w->pid = pid; /* for the audit record */
		router_worker_failed(rt, w, WIFSIGNALED(status) ? "crash" : "exit", "(pid %d) %s",
				     (int)pid, how);
		w->pid = 0;
	}
	router_publish_pids(rt);
}

void router_check_lost_links(struct router *rt)
{
	for (size_t i = 0; i < rt->n_workers; i++) {
		struct worker *w = &rt->workers[i];
		uint32_t lost = atomic_exchange(&w->lost_pipe, 0);
		/* Most often the process is exiting: give its exit status the
		 * chance to be the reason. */
		if (lost && lost == w->pipe_id && !w->link_lost_ns)
			w->link_lost_ns = now_ns() + LINK_GRACE_MS * MS;
	}
}

static void restart(struct router *rt, struct worker *w, uint64_t now)
{
	w->generation++;
	struct sg_err err;
	if (worker_spawn(w, &rt->env, now + rt->start_timeout_ns, &err) < 0) {
		w->state = w->generation < RESTART_MAX ? WORKER_DOWN : WORKER_DEAD;
		w->deadline_ns = now + BACKOFF_MAX_MS * MS;
		log_error("%s", err.msg);
		return;
	}
	router_publish_pids(rt);
	router_audit_worker(rt, "worker_restart", w,
			    json_pack("{s:i}", "restart", (int)w->generation));
}

/* One notification of a live worker past --handler-timeout: its policy
 * answers; a late answer for it is ignored, not a violation. */
static void expire(struct router *rt, struct worker *w, struct pending *p)
{
	router_find_inflight(w, p->seq, true);
	/* Room: in flight and expired together never pass the bound. */
	w->expired_lane[w->n_expired] = p->via_lane; /* its late answer still counts there */
	w->expired[w->n_expired++] = p->seq;
	log_error("worker '%s' did not answer %s within --handler-timeout %lu ms", w->spec,
		  router_syscall_label(p->req.data.nr), rt->cfg->handler_timeout_ms);
	router_audit_worker(rt, "handler_timeout", w,
			    json_pack("{s:s}", "syscall", router_syscall_label(p->req.data.nr)));
	router_apply_policy(rt, p, "did not answer in time");
}

/* Deadlines due by now; returns the next one (UINT64_MAX: none). */
uint64_t router_check_deadlines(struct router *rt, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	for (size_t i = 0; i < rt->n_workers; i++) {
		struct worker *w = &rt->workers[i];
		switch (w->state) {
		case WORKER_STARTING:
			if (now >= w->deadline_ns) {
				router_worker_failed(
					rt, w, "timeout", "did not register within %llu ms",
					(unsigned long long)(rt->start_timeout_ns / MS));
				break;
			}
			next = next < w->deadline_ns ? next : w->deadline_ns;
			break;
		case WORKER_READY:
			if (w->link_lost_ns && now >= w->link_lost_ns) {
				router_worker_failed(rt, w, "link", "closed its link");
				break;
			}
			if (w->link_lost_ns)
				next = next < w->link_lost_ns ? next : w->link_lost_ns;
			for (size_t k = 0; k < w->n_inflight;) {
				struct pending *p = w->inflight[k];
				if (now < p->deadline) {
					next = next < p->deadline ? next : p->deadline;
					k++;
					continue;
				}
				/* Heard from since this was handed over: alive (an
				 * answer deferred too long), not hung. Only this
				 * notification times out. */
				if (w->last_heard_ns > p->deadline - rt->handler_timeout_ns) {
					expire(rt, w, p); /* slot k now holds another */
					continue;
				}
				router_worker_failed(rt, w, "timeout",
						     "did not answer %s within "
						     "--handler-timeout %lu ms",
						     router_syscall_label(p->req.data.nr),
						     rt->cfg->handler_timeout_ms);
				break;
			}
			break;
		case WORKER_DOWN:
			if (w->pidfd >= 0)
				break; /* not reaped yet: its exit wakes us */
			if (now >= w->deadline_ns)
				restart(rt, w, now);
			else
				next = next < w->deadline_ns ? next : w->deadline_ns;
			break;
		case WORKER_DEAD:
			break;
		}
	}
	return next;
}
