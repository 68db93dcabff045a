/* The router thread: it starts the workers, then loops (what the receiver
 * queued, what workers sent on either transport, their exits, the
 * deadlines), spinning briefly before it sleeps, and ends them at the
 * end. What it does with each is in router_route.c, router_messages.c and
 * router_failure.c (router_impl.h). */
#include "router.h"

#include <errno.h>
#include <nng/nng.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "notification.h"
#include "proxy.h"
#include "router_impl.h"

void router_publish_pids(struct router *rt)
{
	pthread_mutex_lock(&rt->lock);
	for (size_t i = 0; i < rt->n_workers; i++)
		rt->pids[i] = rt->workers[i].pid;
	pthread_mutex_unlock(&rt->lock);
}

size_t router_worker_pids(struct router *rt, pid_t *out, size_t cap)
{
	size_t n = 0;
	if (!rt)
		return 0;
	pthread_mutex_lock(&rt->lock);
	for (size_t i = 0; i < rt->n_workers && n < cap; i++)
		if (rt->pids[i] > 0)
			out[n++] = rt->pids[i];
	pthread_mutex_unlock(&rt->lock);
	return n;
}

static void drain_messages(struct router *rt, struct worker *w)
{
	nng_msg *msg;
	while (w->sock_open && nng_recvmsg(w->sock, &msg, NNG_FLAG_NONBLOCK) == 0) {
		router_on_message(rt, w, msg);
		nng_msg_free(msg);
	}
}

/* Does the router hold w's receiver's lane (lane.h)? */
static bool lane_ours(struct worker *w)
{
	return w->fast && lane_routers(&w->lane);
}

/* What rx (w's, of either lane) holds; false if nothing was there. A burst
 * is bounded so one worker cannot monopolize the router. */
static bool drain_ring(struct router *rt, struct worker *w, struct fastchan_end *rx)
{
	bool any = false;
	for (unsigned n = 0;
	     n < 2 * WORKER_HELD_MAX && w->fast && !w->fast_broken && w->state == WORKER_READY;
	     n++) {
		ssize_t len = fastchan_pop(rx, rt->fast_buf, FASTCHAN_MAX_MSG);
		if (len == -EAGAIN)
			break;
		if (len < 0) {
			w->fast_broken = true;
			break;
		}
		any = true;
		router_on_bytes(rt, w, rt->fast_buf, (size_t)len, true);
	}
	return any;
}

void router_drain_fast(struct router *rt, struct worker *w)
{
	bool any = drain_ring(rt, w, &w->rx);
	if (lane_ours(w)) {
		/* What the receiver handed over is adopted before its answer
		 * is read (it was queued before the lane changed hands). */
		router_take_submissions(rt);
		w->lane.replying = true;
		any |= drain_ring(rt, w, &w->lane.rx);
		w->lane.replying = false;
		if (w->state == WORKER_READY)
			lane_take_back(&w->lane);
	}
	if (w->fast_broken)
		router_worker_failed(rt, w, "violation", "corrupted its fast channel");
	if (any)
		rt->last_busy_ns = now_ns();
}

static bool fast_ready(struct router *rt)
{
	for (size_t i = 0; i < rt->n_workers; i++) {
		struct worker *w = &rt->workers[i];
		if (w->fast && w->state == WORKER_READY &&
		    (fastchan_ready(&w->rx) || (lane_ours(w) && fastchan_ready(&w->lane.rx))))
			return true;
	}
	return false;
}

static bool fast_inflight(struct router *rt)
{
	for (size_t i = 0; i < rt->n_workers; i++)
		if (rt->workers[i].fast && rt->workers[i].n_inflight)
			return true;
	return false;
}

/* Before sleeping: while answers are due from fast workers, or work came
 * in moments ago, the next event is microseconds away; catching it by
 * polling memory saves a wake-up on each side. Bounded by
 * FASTCHAN_SPIN_NS, and yields the CPU to whatever else is runnable there
 * (the sandboxed program first of all). True if work arrived. */
static bool spin_for_work(struct router *rt)
{
	uint64_t start = now_ns();
	if (!rt->spin_ns)
		return false;
	if (!fast_inflight(rt) && start - rt->last_busy_ns > rt->spin_ns)
		return false;
	uint64_t t = start, yielded = start;
	while (t - start < rt->spin_ns) {
		for (int i = 0; i < 32; i++) {
			if (pending_submitted(rt) || fast_ready(rt))
				return true;
			fastchan_relax();
		}
		t = now_ns();
		if (t - yielded > FASTCHAN_YIELD_NS) {
			sched_yield();
			yielded = t;
		}
	}
	return false;
}

/* A notification the receiver sent on w's lane and gave up waiting for:
 * ours from now on, like one we sent. */
static void adopt(struct router *rt, struct pending *p)
{
	struct worker *w = p->w;
	p->adopt = false;
	if (w->state != WORKER_READY || !w->fast || p->gen != w->generation) {
		router_apply_policy(rt, p, "is not running");
		return;
	}
	p->via_lane = true;
	w->lane.n_pending++;
	w->inflight[w->n_inflight++] = p; /* room: see WORKER_HELD_MAX */
}

/* What the receiver queued (one atomic load when nothing was). */
void router_take_submissions(struct router *rt)
{
	struct pending *p;
	while ((p = pending_next(rt))) {
		rt->last_busy_ns = now_ns();
		if (p->adopt) {
			adopt(rt, p);
			continue;
		}
		struct childmem mem = { .listener = rt->listener,
					.id = p->req.id,
					.pid = (pid_t)p->req.pid };
		/* Path arguments travel with the snapshot: no round trip. */
		if (!p->preread)
			notification_preread(&p->rec, &p->req, &mem);
		p->preread = true;
		router_route(rt, p);
	}
}

static void start_check_done(struct router *rt)
{
	for (size_t i = 0; i < rt->n_workers; i++)
		if (rt->workers[i].state != WORKER_READY)
			return;
	rt->starting = false;
	pthread_mutex_lock(&rt->lock);
	rt->start_done = true;
	rt->start_result = 0;
	pthread_cond_broadcast(&rt->cond);
	pthread_mutex_unlock(&rt->lock);
}

enum { FD_STOP, FD_KICK, FD_FIXED };

static void serve(struct router *rt)
{
	for (;;) {
		struct pollfd pfd[FD_FIXED + 4 * WORKER_MAX];
		struct worker *owner[FD_FIXED + 4 * WORKER_MAX];
		size_t n = FD_FIXED;
		pfd[FD_STOP] = (struct pollfd){ .fd = rt->stop_fd, .events = POLLIN };
		pfd[FD_KICK] = (struct pollfd){ .fd = rt->kick_fd, .events = POLLIN };
		for (size_t i = 0; i < rt->n_workers; i++) {
			struct worker *w = &rt->workers[i];
			int fds[4] = { w->sock_open ? w->recv_fd : -1, w->pidfd, w->out_fd,
				       w->fast ? w->wake_fd : -1 };
			for (size_t k = 0; k < 4; k++) {
				if (fds[k] < 0)
					continue;
				owner[n] = w;
				pfd[n++] = (struct pollfd){ .fd = fds[k], .events = POLLIN };
			}
		}
		uint64_t now = now_ns();
		uint64_t next = router_check_deadlines(rt, now);
		if (rt->starting && !rt->start_done)
			start_check_done(rt);
		if (rt->start_done && rt->start_result < 0)
			return; /* a worker failed to start: the run ends */
		int timeout = -1;
		if (next != UINT64_MAX)
			timeout = next <= now ? 0 : (int)((next - now) / MS + 1);
		if (timeout != 0 && spin_for_work(rt))
			timeout = 0;
		if (timeout != 0) {
			/* Ask to be woken, then look once more (fastchan.h). */
			atomic_store(&rt->sleeping, 1);
			for (size_t i = 0; i < rt->n_workers; i++) {
				struct worker *w = &rt->workers[i];
				if (w->fast)
					fastchan_want_wake(&w->rx.ring->need_wake);
				if (lane_ours(w))
					fastchan_want_wake(&w->lane.rx.ring->need_wake);
			}
			if (pending_submitted(rt) || fast_ready(rt))
				timeout = 0;
		}
		int pr = poll(pfd, n, timeout);
		atomic_store_explicit(&rt->sleeping, 0, memory_order_relaxed);
		for (size_t i = 0; i < rt->n_workers; i++)
			if (rt->workers[i].fast)
				fastchan_no_wake(&rt->workers[i].rx.ring->need_wake);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			log_error("router: poll: %s", strerror(errno));
			return;
		}
		if (pfd[FD_STOP].revents)
			return;
		if (pfd[FD_KICK].revents) {
			uint64_t kicks;
			(void)!read(rt->kick_fd, &kicks, sizeof(kicks));
		}
		router_take_submissions(rt);
		/* Messages before exits: an answer sent just before a crash counts. */
		for (size_t i = 0; i < rt->n_workers; i++) {
			drain_messages(rt, &rt->workers[i]);
			router_drain_fast(rt, &rt->workers[i]);
		}
		router_check_lost_links(rt);
		for (size_t i = 0; i < rt->n_workers; i++) {
			struct worker *w = &rt->workers[i];
			lane_publish_load(&w->lane, (uint32_t)router_load_of(w));
		}
		for (size_t i = FD_FIXED; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			struct worker *w = owner[i];
			if (pfd[i].fd == w->out_fd) {
				worker_pump_output(w);
			} else if (pfd[i].fd == w->pidfd) {
				router_on_exit(rt, w);
			} else if (pfd[i].fd == w->wake_fd) {
				uint64_t v;
				(void)!read(w->wake_fd, &v, sizeof(v));
			}
		}
	}
}

/* End of the run: Goodbye, a grace period to exit, then SIGKILL. */
static void stop_workers(struct router *rt)
{
	for (size_t i = 0; i < rt->n_workers; i++) {
		/* What they sent before the end still counts: a Record on the
		 * router's lane can trail the answer the receiver took on its
		 * own lane, and the program may have exited since. */
		drain_messages(rt, &rt->workers[i]);
		router_drain_fast(rt, &rt->workers[i]);
	}
	for (size_t i = 0; i < rt->n_workers; i++)
		if (rt->workers[i].state == WORKER_READY)
			router_send_goodbye(&rt->workers[i], "the sandbox ended");
	uint64_t until = now_ns() + STOP_GRACE_MS * MS;
	bool killed = false;
	for (;;) {
		struct pollfd pfd[2 * WORKER_MAX];
		struct worker *owner[2 * WORKER_MAX];
		size_t n = 0;
		for (size_t i = 0; i < rt->n_workers; i++) {
			struct worker *w = &rt->workers[i];
			w->state = WORKER_DEAD;
			if (w->pidfd >= 0) {
				owner[n] = w;
				pfd[n++] = (struct pollfd){ .fd = w->pidfd, .events = POLLIN };
			}
			if (w->out_fd >= 0) {
				owner[n] = w;
				pfd[n++] = (struct pollfd){ .fd = w->out_fd, .events = POLLIN };
			}
		}
		if (n == 0)
			break;
		uint64_t now = now_ns();
		if (now >= until && !killed) {
			for (size_t i = 0; i < rt->n_workers; i++)
				worker_kill(&rt->workers[i]);
			killed = true;
			until = now + STOP_GRACE_MS * MS;
		} else if (now >= until) {
			break; /* unkillable (D state): leave it, do not hang */
		}
		if (poll(pfd, n, (int)((until - now) / MS + 1)) < 0 && errno != EINTR)
			break;
		for (size_t i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			int status;
			if (pfd[i].fd == owner[i]->out_fd)
				worker_pump_output(owner[i]);
			else if (pfd[i].fd == owner[i]->pidfd) {
				worker_kill(owner[i]); /* its children hold the output pipe */
				if (worker_reap(owner[i], &status) > 0)
					router_publish_pids(rt);
			}
		}
	}
}

static void release_pending(struct router *rt)
{
	for (size_t i = 0; i < rt->n_workers; i++) {
		struct worker *w = &rt->workers[i];
		for (size_t k = 0; k < w->n_inflight; k++)
			audit_syscall_release(&w->inflight[k]->rec);
		w->n_inflight = 0;
	}
	/* Queued ones have no paths yet; the pool goes with the router. */
}

static void *router_main(void *arg)
{
	struct router *rt = arg;
	uint64_t deadline = now_ns() + rt->start_timeout_ns;
	/* Workers are children of this thread, so the main thread's
	 * waitpid(__WNOTHREAD) never reaps them from under us. */
	for (size_t i = 0; i < rt->n_workers; i++) {
		struct sg_err err;
		if (worker_spawn(&rt->workers[i], &rt->env, deadline, &err) < 0) {
			router_start_failed(rt, err.msg);
			break;
		}
		router_publish_pids(rt);
		router_audit_worker(rt, "worker_start", &rt->workers[i], NULL);
	}
	if (!rt->start_done)
		serve(rt);
	stop_workers(rt);
	release_pending(rt);
	return NULL;
}

/* Spinning pays only if the spinner's peer runs meanwhile: on 2+ CPUs. */
static void spin_setup(struct router *rt)
{
	cpu_set_t allowed;
	rt->spin_ns = 0;
	if (rt->env.fast && sched_getaffinity(0, sizeof(allowed), &allowed) == 0 &&
	    CPU_COUNT(&allowed) >= 2)
		rt->spin_ns = fastchan_spin_ns();
	rt->env.spin_ns = rt->spin_ns ? fastchan_worker_spin_ns() : 0;
}

int router_start(struct router **out, const struct router_config *c, struct sg_err *err)
{
	struct router *rt = calloc(1, sizeof(*rt));
	*out = rt;
	if (!rt)
		return err_set(err, ENOMEM, "out of memory for the router");
	rt->cfg = c->cfg;
	snprintf(rt->sandbox, sizeof(rt->sandbox), "%s", c->sandbox);
	rt->deny = c->deny;
	rt->audit = c->audit;
	rt->listener = -1;
	rt->kick_fd = rt->stop_fd = -1;
	/* The receiver (real-time) asks for worker pids under this lock. */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
	pthread_mutex_init(&rt->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_cond_init(&rt->cond, NULL);
	rt->handler_timeout_ns = (uint64_t)c->cfg->handler_timeout_ms * MS;
	rt->start_timeout_ns = (uint64_t)c->cfg->worker_start_timeout_ms * MS;
	size_t procs = 0;
	for (size_t i = 0; i < c->cfg->workers.n; i++)
		procs += c->cfg->replicas[i] ? c->cfg->replicas[i] : 1;
	if (procs > WORKER_MAX)
		return err_set(err, E2BIG, "--worker, --replicas: at most %d worker processes",
			       WORKER_MAX);
	int r;
	if ((r = answer_buf_init(&rt->answer, err)) < 0)
		return r;
	rt->proxy_buf = malloc(PROXY_BUF_SIZE);
	rt->fast_buf = malloc(FASTCHAN_MAX_MSG);
	rt->lane_buf = malloc(FASTCHAN_MAX_MSG);
	rt->lane_proxy = malloc(PROXY_BUF_SIZE);
	if ((r = answer_buf_init(&rt->lane_answer, err)) < 0)
		return r;
	if ((r = pending_pool_init(rt, err)) < 0)
		return r;
	rt->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rt->stop_fd = eventfd(0, EFD_CLOEXEC);
	bool bufs = rt->proxy_buf && rt->fast_buf && rt->lane_buf && rt->lane_proxy;
	if (!bufs || rt->kick_fd < 0 || rt->stop_fd < 0)
		return err_sys(err, bufs ? errno : ENOMEM, "router: cannot set up");
	if ((r = worker_rundir_create(&rt->rundir, err)) < 0 ||
	    (r = worker_rundir_read_paths(&rt->rundir, &rt->env, c->cfg->worker_read.v,
					  c->cfg->worker_read.n, err)) < 0)
		return r;
	rt->env.rundir = rt->rundir.path;
	rt->env.user = c->cfg->worker_user;
	rt->env.uid_base = c->cfg->worker_uid_base;
	rt->env.sigmask = c->sigmask;
	rt->env.kick_fd = rt->kick_fd;
	rt->env.fast = !c->cfg->worker_nng_only;
	spin_setup(rt);
	for (size_t i = 0; i < c->cfg->workers.n; i++) {
		unsigned reps = c->cfg->replicas[i] ? c->cfg->replicas[i] : 1;
		struct worker *first = &rt->workers[rt->n_workers];
		for (unsigned k = 0; k < reps; k++) {
			struct worker *w = &rt->workers[rt->n_workers];
			r = worker_init(w, (unsigned)rt->n_workers, c->cfg->workers.v[i],
					(unsigned)i, k, &rt->env, err);
			rt->n_workers++;
			w->first = first;
			first->n_replicas = k + 1;
			if (r < 0)
				return r;
		}
	}
	/* Workers of an unprivileged user must reach their sockets. */
	if (rt->n_workers &&
	    (r = worker_rundir_share(&rt->rundir, &rt->env, &rt->workers[0].sandbox, err)) < 0)
		return r;

	rt->starting = true;
	if ((r = pthread_create(&rt->thread, NULL, router_main, rt)) != 0)
		return err_sys(err, r, "router: cannot start its thread");
	rt->thread_started = true;
	pthread_mutex_lock(&rt->lock);
	while (!rt->start_done)
		pthread_cond_wait(&rt->cond, &rt->lock);
	r = rt->start_result;
	if (r < 0)
		*err = rt->start_err;
	pthread_mutex_unlock(&rt->lock);
	return r;
}

int router_add_hops(struct router *rt, struct chain_table *t, struct sg_err *err)
{
	for (size_t i = 0; i < rt->n_workers; i++) {
		struct worker *w = &rt->workers[i];
		if (w->first != w)
			continue; /* a replica: the first one's hops are its too */
		for (size_t k = 0; k < w->n_regs; k++) {
			struct chain_hop hop = { .worker = w,
						 .reg = w->regs[k].index,
						 .policy = w->regs[k].policy,
						 .observe_only = w->regs[k].observe_only };
			if (chain_append_hop(t, w->regs[k].nr, &hop) < 0)
				return err_set(err, ENOMEM, "out of memory for chains");
			log_verbose("worker '%s' handles %s (exception policy %s)", w->spec,
				    router_syscall_label(w->regs[k].nr),
				    router_policy_name(hop.policy));
		}
	}
	return 0;
}

void router_go(struct router *rt, int listener)
{
	pthread_mutex_lock(&rt->lock);
	rt->listener = listener;
	pthread_mutex_unlock(&rt->lock);
}

void router_stop(struct router *rt)
{
	if (!rt)
		return;
	receiver_lane_report(rt);
	if (rt->thread_started) {
		uint64_t one = 1;
		(void)!write(rt->stop_fd, &one, sizeof(one));
		pthread_join(rt->thread, NULL);
		rt->thread_started = false;
	}
	for (size_t i = 0; i < rt->n_workers; i++)
		worker_free(&rt->workers[i]);
	worker_rundir_remove(&rt->rundir);
}

void router_free(struct router *rt)
{
	if (!rt)
		return;
	answer_buf_free(&rt->answer);
	free(rt->proxy_buf);
	free(rt->fast_buf);
	free(rt->lane_buf);
	free(rt->lane_proxy);
	answer_buf_free(&rt->lane_answer);
	free(rt->pool);
	worker_rundir_free(&rt->rundir);
	if (rt->kick_fd >= 0)
		close(rt->kick_fd);
	if (rt->stop_fd >= 0)
		close(rt->stop_fd);
	pthread_mutex_destroy(&rt->lock);
	pthread_cond_destroy(&rt->cond);
	free(rt);
}
