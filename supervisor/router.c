#include "router.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <nng/nng.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "answer.h"
#include "childmem.h"
#include "log.h"
#include "procs.h"
#include "proxy.h"
#include "registry.h"
#include "syscalls.h"
#include "router_impl.h"
#include "worker.h"

bool ring_push(struct ring *r, struct pending *p)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	if (t - atomic_load_explicit(&r->head, memory_order_acquire) == POOL_SIZE)
		return false;
	r->slot[t % POOL_SIZE] = p;
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return true;
}

struct pending *ring_pop(struct ring *r)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	if (h == atomic_load_explicit(&r->tail, memory_order_acquire))
		return NULL;
	struct pending *p = r->slot[h % POOL_SIZE];
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return p;
}

static const char *policy_name(unsigned policy)
{
	static const char *const names[] = { "KILL", "DENY_EPERM", "CONTINUE", "DENY_EIO" };
	return policy < ARRAY_SIZE(names) ? names[policy] : "KILL";
}

static const char *syscall_label(long nr)
{
	const char *n = syscalls_name(nr);
	return n ? n : "?";
}

static void publish_pids(struct router *rt)
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

static void audit_worker(struct router *rt, const char *type, const struct worker *w,
			 json_t *fields)
{
	if (!rt->audit) {
		json_decref(fields);
		return;
	}
	if (!fields)
		fields = json_object();
	json_object_set_new(fields, "worker", json_string(w->name));
	json_object_set_new(fields, "command", json_string(w->spec));
	if (w->pid > 0)
		json_object_set_new(fields, "worker_pid", json_integer(w->pid));
	audit_event(rt->audit, type, fields);
}

/* --- sending ------------------------------------------------------------ */

/* Over the fast channel: 0, or -EMSGSIZE / -EAGAIN (too big, full: the
 * caller may use nng), -EPROTO (the worker broke the ring). */
/* Puts env on tx, one of w's rings to the worker, and wakes the worker if
 * it sleeps. The receiver's lane uses it too: it touches nothing else of w. */
static int put_fast(struct worker *w, struct fastchan_end *tx, const Sysgate__V1__Envelope *env)
{
	int r = proto_ring_put(tx, env);
	if (r == 0 && fastchan_take_wake(&w->shm->worker_need_wake))
		fastchan_futex_wake_all(&w->shm->worker_wake_seq);
	return r;
}

static int send_fast(struct worker *w, struct fastchan_end *tx, const Sysgate__V1__Envelope *env)
{
	int r = put_fast(w, tx, env);
	if (r == -EPROTO)
		w->fast_broken = true;
	return r;
}

static int send_envelope(struct worker *w, const Sysgate__V1__Envelope *env, struct sg_err *err)
{
	if (w->fast && (env->body_case == SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT ||
			env->body_case == SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY ||
			env->body_case == SYSGATE__V1__ENVELOPE__BODY_INJECTED)) {
		/* A MemReply answers on the lane its request came on. */
		bool lane =
			w->reply_lane && env->body_case == SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY;
		int r = send_fast(w, lane ? &w->ltx : &w->tx, env);
		if (r == -EPROTO)
			return err_set(err, EPROTO, "it corrupted its fast channel");
		/* A MemReply may overtake anything: nng carries what does not
		 * fit. Snapshots and Injected keep their order or fail. */
		if (r == 0 ||
		    (r == -EAGAIN && env->body_case != SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY))
			return r == 0 ? 0 : err_set(err, EAGAIN, "its fast channel is full");
	}
	_cleanup_free_ void *buf = NULL;
	size_t len;
	int r = proto_encode(env, &buf, &len, err);
	if (r < 0)
		return r;
	/* Never blocks: a worker that does not read its link has failed. */
	int e = nng_send(w->sock, buf, len, NNG_FLAG_NONBLOCK);
	if (e)
		return err_set(err, e == NNG_EAGAIN ? EAGAIN : EIO, "cannot send to it: %s",
			       nng_strerror(e));
	return 0;
}

static void send_welcome(struct router *rt, struct worker *w, const char *refusal)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Welcome welcome;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_WELCOME);
	sysgate__v1__welcome__init(&welcome);
	env.welcome = &welcome;
	char reason[PROTO_MAX_TEXT];
	snprintf(reason, sizeof(reason), "%s", refusal ? refusal : "");
	welcome.accepted = !refusal;
	welcome.reason = reason;
	welcome.sandbox = rt->sandbox;
	welcome.max_inflight = WORKER_HELD_MAX;
	welcome.max_mem_request = PROTO_MAX_MEM;
	welcome.max_inject = PROTO_MAX_INJECT;
	welcome.fast_channel = w->fast;
	struct sg_err err;
	if (send_envelope(w, &env, &err) < 0)
		log_verbose("worker '%s': Welcome: %s", w->spec, err.msg);
}

static void send_goodbye(struct worker *w, const char *reason)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Goodbye bye;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_GOODBYE);
	sysgate__v1__goodbye__init(&bye);
	env.goodbye = &bye;
	char text[128];
	snprintf(text, sizeof(text), "%s", reason);
	bye.reason = text;
	struct sg_err err;
	(void)send_envelope(w, &env, &err);
}

/* --- answering ---------------------------------------------------------- */

/* p is answered (with a): its audit record. */
static void record(struct router *rt, struct pending *p, const struct action *a,
		   const char *decider, const char *exception)
{
	if (rt->audit) {
		p->rec.pid = (pid_t)p->req.pid;
		p->rec.nr = p->req.data.nr;
		memcpy(p->rec.args, p->req.data.args, sizeof(p->rec.args));
		p->rec.decider = decider;
		p->rec.exception = exception;
		p->rec.action = *a;
		p->rec.latency_ns = now_ns() - p->t0;
		audit_syscall(rt->audit, &p->rec);
	} else {
		audit_syscall_release(&p->rec);
	}
}

static void finish(struct router *rt, struct pending *p, const struct action *a,
		   const char *decider, const char *exception)
{
	answer_send(rt->listener, &rt->answer, &p->req, a);
	record(rt, p, a, decider, exception);
	ring_push(&rt->spare, p); /* never full: it holds at most the pool */
}

/* The router thread's view of the live worker pids (router_worker_pids is
 * the other threads'). */
static size_t own_worker_pids(const struct router *rt, pid_t out[WORKER_MAX])
{
	size_t n = 0;
	for (size_t i = 0; i < rt->n_workers; i++)
		if (rt->workers[i].pid > 0)
			out[n++] = rt->workers[i].pid;
	return n;
}

/* Every sandbox process, never a worker: the KILL policy. */
static void kill_sandbox(struct router *rt, const struct worker *w, const char *why)
{
	pid_t helpers[WORKER_MAX];
	size_t n = own_worker_pids(rt, helpers);
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
		    syscall_label(p->req.data.nr), policy_name(h->policy));
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
		kill_sandbox(rt, w, why);
		a = (struct action){ .kind = ACTION_KILL, .value = SIGKILL };
		break;
	}
	finish(rt, p, &a, w->name, policy_name(h->policy));
}

/* The Snapshot of p for hop h, in the caller's storage. */
struct snapshot_msg {
	Sysgate__V1__Envelope env;
	Sysgate__V1__Snapshot s;
	Sysgate__V1__PathArg pa[2], *pap[2];
	uint64_t args[PROTO_ARGS];
};

static void build_snapshot(struct router *rt, const struct pending *p, const struct chain_hop *h,
			   struct snapshot_msg *m)
{
	Sysgate__V1__Snapshot *sn = &m->s;
	proto_envelope_init(&m->env, SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT);
	sysgate__v1__snapshot__init(sn);
	m->env.snapshot = sn;
	memcpy(m->args, p->req.data.args, sizeof(m->args));
	sn->seq = p->seq;
	sn->notif_id = p->req.id;
	sn->pid = p->req.pid;
	sn->flags = p->req.flags;
	sn->syscall_nr = p->req.data.nr;
	sn->arch = p->req.data.arch;
	sn->instruction_pointer = p->req.data.instruction_pointer;
	sn->n_args = PROTO_ARGS;
	sn->args = m->args;
	sn->sandbox = rt->sandbox;
	sn->registration = h->reg;
	for (unsigned i = 0; i < p->rec.n_paths; i++) {
		sysgate__v1__path_arg__init(&m->pa[i]);
		m->pa[i].arg = p->rec.path_arg[i];
		if (p->rec.path[i]) {
			m->pa[i].path.data = (uint8_t *)p->rec.path[i];
			m->pa[i].path.len = strlen(p->rec.path[i]);
		} else {
			m->pa[i].unreadable = true;
		}
		m->pap[i] = &m->pa[i];
	}
	sn->n_paths = p->rec.n_paths;
	sn->paths = m->pap;
}

static int send_snapshot(struct router *rt, struct worker *w, struct pending *p,
			 const struct chain_hop *h, struct sg_err *err)
{
	struct snapshot_msg m;
	uint64_t seq = p->seq;
	p->seq = atomic_fetch_add(&rt->next_seq, 1) + 1;
	build_snapshot(rt, p, h, &m);
	int r = send_envelope(w, &m.env, err);
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

static size_t load_of(const struct worker *w)
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
		if (w->state == WORKER_READY && load_of(w) < WORKER_MAX_INFLIGHT &&
		    (!best || load_of(w) < load_of(best)))
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
		finish(rt, p, &(struct action){ .kind = ACTION_CONTINUE }, "kernel", NULL);
		return;
	}
	const struct chain_hop *h = &p->chain->hops[p->hop];
	struct worker *w = pick_replica(rt, h);
	struct sg_err err;
	p->w = w;
	if (w->state != WORKER_READY) {
		router_apply_policy(rt, p, "is not running");
	} else if (load_of(w) >= WORKER_MAX_INFLIGHT) {
		router_apply_policy(rt, p, "has too many notifications pending");
	} else if (send_snapshot(rt, w, p, h, &err) < 0) {
		log_verbose("worker '%s': snapshot: %s", w->spec, err.msg);
		router_apply_policy(rt, p, "cannot take the notification");
	}
}

static struct pending *find_inflight(struct worker *w, uint64_t seq, bool take)
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

/* Did seq time out while its worker was alive (a late answer to ignore)? */
static bool expired_seq(struct worker *w, uint64_t seq, bool take)
{
	for (size_t i = 0; i < w->n_expired; i++) {
		if (w->expired[i] != seq)
			continue;
		if (take) {
			if (w->expired_lane[i])
				w->n_lane--;
			w->n_expired--;
			w->expired[i] = w->expired[w->n_expired];
			w->expired_lane[i] = w->expired_lane[w->n_expired];
		}
		return true;
	}
	return false;
}

/* --- failures ----------------------------------------------------------- */

static void start_failed(struct router *rt, const char *msg)
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

/* The worker failed as a whole: it is killed, everything it held gets its
 * exception policy, and it is restarted later (or given up on). */
static void worker_failed(struct router *rt, struct worker *w, const char *kind,
			  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void worker_failed(struct router *rt, struct worker *w, const char *kind,
			  const char *fmt, ...)
{
	if (w->state != WORKER_STARTING && w->state != WORKER_READY)
		return;
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	worker_kill(w);
	atomic_store(&w->lane_ready, false);
	w->n_lane = 0;
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
		start_failed(rt, msg);
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
			  "exception policy from now on", w->spec, why);
	audit_worker(rt, "worker_failed", w,
		     json_pack("{s:s, s:s, s:b, s:i}", "kind", kind, "reason", why, "restart",
			       restart, "pending", (int)w->n_inflight));
	/* Policies may route to other workers (or back here: down now). */
	struct pending *held[WORKER_HELD_MAX];
	size_t n = w->n_inflight;
	memcpy(held, w->inflight, n * sizeof(*held));
	w->n_inflight = 0;
	for (size_t i = 0; i < n; i++)
		router_apply_policy(rt, held[i], why);
}

/* --- messages from a worker -------------------------------------------- */

static bool token_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	volatile uint8_t diff = 0;
	for (size_t i = 0; i < len; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

static void refuse(struct router *rt, struct worker *w, const char *why)
{
	send_welcome(rt, w, why);
	worker_failed(rt, w, "handshake", "%s", why);
}

static void on_hello(struct router *rt, struct worker *w, const Sysgate__V1__Hello *h)
{
	if (w->state != WORKER_STARTING) {
		worker_failed(rt, w, "violation", "sent a second Hello");
		return;
	}
	if (h->protocol_version != SYSGATE_PROTOCOL_VERSION) {
		char why[128];
		snprintf(why, sizeof(why), "speaks protocol version %u, sysgate speaks %u",
			 h->protocol_version, SYSGATE_PROTOCOL_VERSION);
		refuse(rt, w, why);
		return;
	}
	if (h->token.len != PROTO_TOKEN_SIZE || !token_equal(h->token.data, w->token,
							     PROTO_TOKEN_SIZE)) {
		refuse(rt, w, "handshake with a wrong token");
		return;
	}
	struct registration *regs;
	size_t n;
	struct sg_err err;
	if (registry_resolve(h, rt->deny, &regs, &n, &err) < 0) {
		refuse(rt, w, err.msg);
		return;
	}
	/* Replicas share one set of chain hops: they must agree. */
	const struct worker *sibling = NULL;
	for (unsigned i = 0; i < w->first->n_replicas && !sibling; i++) {
		const struct worker *o = &rt->workers[w->first->index + i];
		if (o != w && o->regs)
			sibling = o;
	}
	if (w->generation == 0 && sibling &&
	    !registry_equal(sibling->regs, sibling->n_regs, regs, n)) {
		free(regs);
		refuse(rt, w, "registered differently from its other replicas");
		return;
	}
	if (w->generation == 0) {
		w->regs = regs;
		w->n_regs = n;
		if (h->worker_name && *h->worker_name)
			snprintf(w->name, sizeof(w->name), "%s", h->worker_name);
	} else {
		bool same = registry_equal(w->regs, w->n_regs, regs, n);
		free(regs);
		if (!same) {
			refuse(rt, w, "registered differently after a restart (the filter is "
				      "fixed when the sandbox starts)");
			return;
		}
	}
	w->fast = h->fast_channel && w->shm;
	send_welcome(rt, w, NULL);
	w->state = WORKER_READY;
	atomic_store_explicit(&w->lane_ready, w->fast, memory_order_release);
	log_verbose("worker '%s' (%s): ready, %zu registrations, over %s", w->spec, w->name,
		    w->n_regs, w->fast ? "the fast channel" : "nng");
	audit_worker(rt, w->generation ? "worker_restarted" : "worker_ready", w,
		     json_pack("{s:i}", "registrations", (int)w->n_regs));
}

static void send_injected(struct worker *w, const struct pending *p, uint64_t cookie, int fd)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Injected inj;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_INJECTED);
	sysgate__v1__injected__init(&inj);
	env.injected = &inj;
	inj.seq = p->seq;
	inj.pid = p->req.pid;
	inj.fd = fd;
	inj.cookie = cookie;
	struct sg_err err;
	if (send_envelope(w, &env, &err) < 0)
		log_verbose("worker '%s': Injected: %s", w->spec, err.msg);
}

/* Is thread tid's process one of the sandbox's: a descendant of the
 * supervisor outside every worker's subtree, never the supervisor, init or
 * a worker? The trapped task always is (it carries the sandbox's filter);
 * this is the guard rail in case it is gone and its pid reused. The kill
 * itself goes to that one process through a pidfd, re-validated against
 * the pending notification (answer.c), never to a group. */
static bool in_sandbox(struct router *rt, pid_t tid)
{
	pid_t tgid = procs_tgid(tid), self = getpid();
	pid_t helpers[WORKER_MAX];
	size_t n = own_worker_pids(rt, helpers);
	struct proc_list l;
	if (tgid <= 0 || procs_scan(self, helpers, n, &l) < 0)
		return false;
	bool ok = procs_may_signal(tgid, self, helpers, n, &l);
	proc_list_free(&l);
	return ok;
}

static bool submissions_ready(struct router *rt);

/* The pending notification seq of w, taking it (take) from its list. One
 * the receiver handed over may still sit in the submission ring (its
 * answer can come over nng, overtaking the hand-over): adopt those first. */
static struct pending *find_held(struct router *rt, struct worker *w, uint64_t seq, bool take)
{
	struct pending *p = find_inflight(w, seq, take);
	if (!p && submissions_ready(rt)) {
		router_take_submissions(rt);
		p = find_inflight(w, seq, take);
	}
	return p;
}

static void on_action(struct router *rt, struct worker *w, const Sysgate__V1__Action *m)
{
	struct pending *p = find_held(rt, w, m->seq, true);
	if (p && p->via_lane)
		w->n_lane--;
	if (!p && expired_seq(w, m->seq, true)) {
		log_verbose("worker '%s': late answer for %llu, which timed out: ignored", w->spec,
			    (unsigned long long)m->seq);
		return;
	}
	if (!p) {
		worker_failed(rt, w, "violation",
			      "answered notification %llu, which it does not hold",
			      (unsigned long long)m->seq);
		return;
	}
	struct action a;
	if (p->chain->hops[p->hop].observe_only &&
	    (m->kind_case == SYSGATE__V1__ACTION__KIND_DO_RETURN ||
	     m->kind_case == SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES)) {
		/* A faked pid or exec would lie about what runs in the sandbox. */
		log_error("worker '%s' answered %s with %s: only continue, errno or kill may answer "
			  "it", w->spec, syscall_label(p->req.data.nr),
			  m->kind_case == SYSGATE__V1__ACTION__KIND_DO_RETURN ? "return"
									      : "inject_bytes");
		router_apply_policy(rt, p, "answered an observe-or-deny syscall with another action");
		return;
	}
	switch (m->kind_case) {
	case SYSGATE__V1__ACTION__KIND_DO_CONTINUE:
		p->hop++;
		router_route(rt, p);
		return;
	case SYSGATE__V1__ACTION__KIND_DO_ERRNO:
		a = (struct action){ .kind = ACTION_ERRNO, .value = m->do_errno->errnum };
		break;
	case SYSGATE__V1__ACTION__KIND_DO_RETURN:
		a = (struct action){ .kind = ACTION_RETURN, .value = m->do_return->value };
		break;
	case SYSGATE__V1__ACTION__KIND_DO_KILL:
		a = (struct action){ .kind = ACTION_KILL, .value = m->do_kill->signal };
		if (!in_sandbox(rt, (pid_t)p->req.pid)) {
			/* Never signal outside the sandbox: resolve it, fail closed. */
			log_error("worker '%s': kill of pid %u refused: not a sandbox process",
				  w->spec, p->req.pid);
			a = (struct action){ .kind = ACTION_ERRNO, .value = EPERM };
		}
		break;
	case SYSGATE__V1__ACTION__KIND_DO_FAIL: {
		const char *reason = m->do_fail->reason ? m->do_fail->reason : "";
		log_error("worker '%s': handler for %s failed: %s", w->spec,
			  syscall_label(p->req.data.nr), reason);
		audit_worker(rt, "handler_failed", w,
			     json_pack("{s:s, s:s}", "syscall", syscall_label(p->req.data.nr),
				       "reason", reason));
		router_apply_policy(rt, p, "reported a handler failure");
		return;
	}
	case SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES: {
		const Sysgate__V1__Action__InjectBytes *ib = m->do_inject_bytes;
		bool writable = ib->flags & SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__WRITABLE;
		bool cloexec = !(ib->flags & SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__NO_CLOEXEC);
		bool track = ib->flags & SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__TRACK;
		int fd = track ? answer_inject_only(rt->listener, &p->req, ib->data.data,
						    ib->data.len, writable, cloexec)
			       : answer_inject(rt->listener, &p->req, ib->data.data, ib->data.len,
					       writable, cloexec);
		if (fd >= 0 && track) {
			/* The worker hears the number first; the syscall then
			 * returns it (ADDFD without SEND left it pending). */
			send_injected(w, p, ib->cookie, fd);
			a = (struct action){ .kind = ACTION_RETURN, .value = fd };
			finish(rt, p, &a, w->name, NULL);
			return;
		}
		if (fd >= 0) {
			a = (struct action){ .kind = ACTION_INJECT, .value = fd };
		} else {
			/* Never continue: the syscall fails with why. */
			log_verbose("worker '%s': inject_bytes for %s: %s", w->spec,
				    syscall_label(p->req.data.nr), strerror(-fd));
			a = (struct action){ .kind = ACTION_ERRNO, .value = -fd };
		}
		break;
	}
	default:
		/* A kind this version does not know: never a silent continue. */
		router_apply_policy(rt, p, "answered with an action this supervisor does not serve");
		return;
	}
	if (!action_valid(&a)) {
		router_apply_policy(rt, p, "answered with an invalid action");
		return;
	}
	finish(rt, p, &a, w->name, NULL);
}

static void on_mem_request(struct router *rt, struct worker *w,
			   const Sysgate__V1__MemRequest *m)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__MemReply reply;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY);
	env.mem_reply = &reply;
	struct pending *p = find_held(rt, w, m->seq, false);
	if (!p) {
		/* Not held (any more): an error, never an access. */
		sysgate__v1__mem_reply__init(&reply);
		reply.request_id = m->request_id;
		reply.error = ESRCH;
	} else {
		struct childmem mem = { .listener = rt->listener, .id = p->req.id,
					.pid = (pid_t)p->req.pid };
		proxy_serve(&mem, m, rt->proxy_buf, &reply);
	}
	struct sg_err err;
	if (send_envelope(w, &env, &err) < 0)
		worker_failed(rt, w, "link", "memory reply: %s", err.msg);
}

/* A handler's result for whoever runs the sandbox: into the audit log. */
static void on_record(struct router *rt, struct worker *w, const Sysgate__V1__Record *m)
{
	json_error_t jerr;
	json_t *data = json_loadb((const char *)m->json.data, m->json.len,
				  JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!data) {
		worker_failed(rt, w, "violation", "sent a Record that is not JSON: %s", jerr.text);
		return;
	}
	if (!rt->audit) {
		json_decref(data);
		log_verbose("worker '%s': a record, dropped (no --audit)", w->spec);
		return;
	}
	audit_worker(rt, "record", w, json_pack("{s:o}", "data", data));
}


static void on_message(struct router *rt, struct worker *w, nng_msg *msg)
{
	nng_pipe pipe = nng_msg_get_pipe(msg);
	uint32_t id = (uint32_t)nng_pipe_id(pipe);
	if (w->state == WORKER_STARTING && w->pipe_id == 0) {
		/* The first peer to speak must be the process we started. */
		uint64_t peer = 0;
		if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &peer) != 0)
			return; /* gone already: an earlier instance's leftovers */
		if (peer != (uint64_t)w->pid) {
			log_error("worker '%s': refused a connection from pid %llu", w->spec,
				  (unsigned long long)peer);
			nng_pipe_close(pipe);
			return;
		}
		w->pipe_id = id;
	} else if (id != w->pipe_id || (w->state != WORKER_STARTING &&
					w->state != WORKER_READY)) {
		return; /* an old connection's leftovers */
	}
	router_on_bytes(rt, w, nng_msg_body(msg), nng_msg_len(msg), false);
}

/* One message from w, over nng or (fast) its fast channel. */
void router_on_bytes(struct router *rt, struct worker *w, const void *buf, size_t len, bool fast)
{
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	struct sg_err err;
	if (proto_decode(buf, len, &m, &err) < 0 || proto_validate_from_worker(m, &err) < 0) {
		worker_failed(rt, w, "violation", "sent a malformed message: %s", err.msg);
		return;
	}
	w->last_heard_ns = now_ns();
	bool per_notification = m->body_case == SYSGATE__V1__ENVELOPE__BODY_ACTION ||
				m->body_case == SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST ||
				m->body_case == SYSGATE__V1__ENVELOPE__BODY_RECORD;
	if (per_notification && w->state != WORKER_READY) {
		worker_failed(rt, w, "violation", "spoke out of turn, before its handshake");
		return;
	}
	if (fast && !per_notification) {
		worker_failed(rt, w, "violation", "sent a lifecycle message on its fast channel");
		return;
	}
	switch (m->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_HELLO:
		on_hello(rt, w, m->hello);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_ACTION:
		on_action(rt, w, m->action);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST:
		on_mem_request(rt, w, m->mem_request);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_RECORD:
		on_record(rt, w, m->record);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		worker_failed(rt, w, "exit", "said goodbye (%s)",
			      m->goodbye->reason ? m->goodbye->reason : "");
		break;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		worker_failed(rt, w, "error", "reported an error: %s",
			      m->error->message ? m->error->message : "");
		break;
	default:
		worker_failed(rt, w, "violation", "sent a message only the supervisor sends");
		break;
	}
}

static void drain_messages(struct router *rt, struct worker *w)
{
	nng_msg *msg;
	while (w->sock_open && nng_recvmsg(w->sock, &msg, NNG_FLAG_NONBLOCK) == 0) {
		on_message(rt, w, msg);
		nng_msg_free(msg);
	}
}

static bool lane_ours(struct worker *w)
{
	return w->fast && atomic_load_explicit(&w->lane_owner, memory_order_acquire) == LANE_ROUTER;
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
		w->reply_lane = true;
		any |= drain_ring(rt, w, &w->lrx);
		w->reply_lane = false;
		if (w->n_lane == 0 && w->state == WORKER_READY) {
			/* Nothing of the receiver's is pending: hand it back. */
			fastchan_no_wake(&w->lrx.ring->need_wake);
			atomic_store_explicit(&w->lane_owner, LANE_RECEIVER, memory_order_release);
		}
	}
	if (w->fast_broken)
		worker_failed(rt, w, "violation", "corrupted its fast channel");
	if (any)
		rt->last_busy_ns = now_ns();
}

static bool fast_ready(struct router *rt)
{
	for (size_t i = 0; i < rt->n_workers; i++) {
		struct worker *w = &rt->workers[i];
		if (w->fast && w->state == WORKER_READY &&
		    (fastchan_ready(&w->rx) || (lane_ours(w) && fastchan_ready(&w->lrx))))
			return true;
	}
	return false;
}

static bool submissions_ready(struct router *rt)
{
	return atomic_load_explicit(&rt->submitted.head, memory_order_relaxed) !=
	       atomic_load_explicit(&rt->submitted.tail, memory_order_acquire);
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
			if (submissions_ready(rt) || fast_ready(rt))
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

/* --- the thread --------------------------------------------------------- */

static void on_exit_of(struct router *rt, struct worker *w)
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
		worker_failed(rt, w, WIFSIGNALED(status) ? "crash" : "exit", "(pid %d) %s",
			      (int)pid, how);
		w->pid = 0;
	}
	publish_pids(rt);
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
	w->n_lane++;
	w->inflight[w->n_inflight++] = p; /* room: see WORKER_HELD_MAX */
}

/* What the receiver queued (one atomic load when nothing was). */
void router_take_submissions(struct router *rt)
{
	struct pending *p;
	while ((p = ring_pop(&rt->submitted))) {
		rt->last_busy_ns = now_ns();
		if (p->adopt) {
			adopt(rt, p);
			continue;
		}
		struct childmem mem = { .listener = rt->listener, .id = p->req.id,
					.pid = (pid_t)p->req.pid };
		/* Path arguments travel with the snapshot: no round trip. */
		if (!p->preread)
			audit_preread_paths(&p->rec, &p->req, &mem);
		p->preread = true;
		router_route(rt, p);
	}
}

static void check_lost_links(struct router *rt)
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
	publish_pids(rt);
	audit_worker(rt, "worker_restart", w, json_pack("{s:i}", "restart", (int)w->generation));
}

/* One notification of a live worker past --handler-timeout: its policy
 * answers; a late answer for it is ignored, not a violation. */
static void expire(struct router *rt, struct worker *w, struct pending *p)
{
	find_inflight(w, p->seq, true);
	/* Room: in flight and expired together never pass the bound. */
	w->expired_lane[w->n_expired] = p->via_lane; /* its late answer still counts there */
	w->expired[w->n_expired++] = p->seq;
	log_error("worker '%s' did not answer %s within --handler-timeout %lu ms", w->spec,
		  syscall_label(p->req.data.nr), rt->cfg->handler_timeout_ms);
	audit_worker(rt, "handler_timeout", w,
		     json_pack("{s:s}", "syscall", syscall_label(p->req.data.nr)));
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
				worker_failed(rt, w, "timeout", "did not register within %llu ms",
					      (unsigned long long)(rt->start_timeout_ns / MS));
				break;
			}
			next = next < w->deadline_ns ? next : w->deadline_ns;
			break;
		case WORKER_READY:
			if (w->link_lost_ns && now >= w->link_lost_ns) {
				worker_failed(rt, w, "link", "closed its link");
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
				worker_failed(rt, w, "timeout",
					      "did not answer %s within "
					      "--handler-timeout %lu ms",
					      syscall_label(p->req.data.nr),
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
					fastchan_want_wake(&w->lrx.ring->need_wake);
			}
			if (submissions_ready(rt) || fast_ready(rt))
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
		check_lost_links(rt);
		for (size_t i = 0; i < rt->n_workers; i++) {
			struct worker *w = &rt->workers[i];
			atomic_store_explicit(&w->load_pub, (uint32_t)load_of(w),
					      memory_order_relaxed);
		}
		for (size_t i = FD_FIXED; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			struct worker *w = owner[i];
			if (pfd[i].fd == w->out_fd) {
				worker_pump_output(w);
			} else if (pfd[i].fd == w->pidfd) {
				on_exit_of(rt, w);
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
			send_goodbye(&rt->workers[i], "the sandbox ended");
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
					publish_pids(rt);
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
			start_failed(rt, err.msg);
			break;
		}
		publish_pids(rt);
		audit_worker(rt, "worker_start", &rt->workers[i], NULL);
	}
	if (!rt->start_done)
		serve(rt);
	stop_workers(rt);
	release_pending(rt);
	return NULL;
}

/* --- the main thread's side --------------------------------------------- */

static bool usable_base(const char *dir)
{
	struct stat st;
	/* Short enough for a socket path (108 bytes) below it. */
	return dir && *dir == '/' && strlen(dir) <= 60 && stat(dir, &st) == 0 &&
	       S_ISDIR(st.st_mode);
}

/* $XDG_RUNTIME_DIR for an unprivileged user, else $TMPDIR, else /tmp. */
static int make_rundir(struct router *rt, struct sg_err *err)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	if (geteuid() == 0 || !usable_base(base))
		base = getenv("TMPDIR");
	if (!usable_base(base))
		base = "/tmp";
	snprintf(rt->rundir, sizeof(rt->rundir), "%s/sysgate-XXXXXX", base);
	if (!mkdtemp(rt->rundir)) {
		int e = errno;
		rt->rundir[0] = '\0';
		return err_sys(err, e, "cannot create a runtime directory in %s", base);
	}
	return 0;
}

/* sysgate's own directory and its ../lib: the SDK library a worker links. */
static void own_paths(struct router *rt)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *dir = dirname(exe);
	rt->extra_read[rt->env.n_read++] = strdup(dir);
	char lib[PATH_MAX], real[PATH_MAX];
	snprintf(lib, sizeof(lib), "%s/../lib", dir);
	if (realpath(lib, real))
		rt->extra_read[rt->env.n_read++] = strdup(real);
	/* strdup failures leave a NULL, skipped by the worker module's stat. */
	size_t k = 0;
	for (size_t i = 0; i < rt->env.n_read; i++)
		if (rt->extra_read[i])
			rt->extra_read[k++] = rt->extra_read[i];
	rt->env.n_read = k;
}

/* Every worker may read sysgate's own paths and each --worker-read. */
static int read_paths(struct router *rt, const struct config *cfg, struct sg_err *err)
{
	own_paths(rt);
	size_t n = rt->env.n_read + cfg->worker_read.n;
	rt->read_paths = calloc(n ? n : 1, sizeof(*rt->read_paths));
	if (!rt->read_paths)
		return err_set(err, ENOMEM, "out of memory for the workers' read paths");
	for (size_t i = 0; i < rt->env.n_read; i++)
		rt->read_paths[i] = rt->extra_read[i];
	for (size_t i = 0; i < cfg->worker_read.n; i++) {
		const char *p = cfg->worker_read.v[i];
		if (access(p, F_OK) < 0)
			return err_sys(err, errno, "--worker-read %s", p);
		rt->read_paths[rt->env.n_read + i] = p;
	}
	rt->env.n_read = n;
	rt->env.read = rt->read_paths;
	return 0;
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
	rt->pool = calloc(POOL_SIZE, sizeof(*rt->pool));
	if (!rt->pool)
		return err_set(err, ENOMEM, "out of memory for the router");
	for (size_t i = 0; i < POOL_SIZE; i++)
		ring_push(&rt->spare, &rt->pool[i]);
	rt->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rt->stop_fd = eventfd(0, EFD_CLOEXEC);
	bool bufs = rt->proxy_buf && rt->fast_buf && rt->lane_buf && rt->lane_proxy;
	if (!bufs || rt->kick_fd < 0 || rt->stop_fd < 0)
		return err_sys(err, bufs ? errno : ENOMEM, "router: cannot set up");
	if ((r = make_rundir(rt, err)) < 0 || (r = read_paths(rt, c->cfg, err)) < 0)
		return r;
	rt->env.rundir = rt->rundir;
	rt->env.user = c->cfg->worker_user;
	rt->env.sigmask = c->sigmask;
	rt->env.kick_fd = rt->kick_fd;
	rt->env.fast = !c->cfg->worker_nng_only;
	spin_setup(rt);
	for (size_t i = 0; i < c->cfg->workers.n; i++) {
		unsigned reps = c->cfg->replicas[i] ? c->cfg->replicas[i] : 1;
		struct worker *first = &rt->workers[rt->n_workers];
		for (unsigned k = 0; k < reps; k++) {
			struct worker *w = &rt->workers[rt->n_workers];
			r = worker_init(w, (unsigned)rt->n_workers, c->cfg->workers.v[i], k,
					&rt->env, err);
			rt->n_workers++;
			w->first = first;
			first->n_replicas = k + 1;
			if (r < 0)
				return r;
		}
	}
	/* Workers of an unprivileged user must reach their sockets. */
	const struct worker_sandbox *ws = &rt->workers[0].sandbox;
	if (ws->change_ids && chown(rt->rundir, ws->uid, ws->gid) < 0)
		return err_sys(err, errno, "cannot hand %s to the workers' user", rt->rundir);

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
			struct chain_hop hop = { .worker = w, .reg = w->regs[k].index,
						 .policy = w->regs[k].policy,
						 .observe_only = w->regs[k].observe_only };
			if (chain_append_hop(t, w->regs[k].nr, &hop) < 0)
				return err_set(err, ENOMEM, "out of memory for chains");
			log_verbose("worker '%s' handles %s (exception policy %s)", w->spec,
				    syscall_label(w->regs[k].nr), policy_name(hop.policy));
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

/* The receiver's: p (a pool entry) becomes notification req. */
static void pending_start(struct router *rt, struct pending *p, const struct seccomp_notif *req,
			  const struct chain *chain, uint64_t t0)
{
	memset(p, 0, sizeof(*p));
	p->req = *req;
	p->t0 = t0;
	p->chain = chain;
	if (rt->audit)
		clock_gettime(CLOCK_REALTIME, &p->rec.when);
}

/* The receiver's, after pushing to the submission ring: wakes the router
 * if it sleeps (a spinning router sees the push without it, see serve()). */
static void kick_router(struct router *rt)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&rt->sleeping, memory_order_relaxed)) {
		uint64_t one = 1;
		(void)!write(rt->kick_fd, &one, sizeof(one));
	}
}

int router_submit(struct router *rt, const struct seccomp_notif *req, const struct chain *chain,
		  uint64_t t0)
{
	struct pending *p = ring_pop(&rt->spare);
	if (!p)
		return -EBUSY;
	pending_start(rt, p, req, chain, t0);
	ring_push(&rt->submitted, p); /* room: at most the pool is out */
	kick_router(rt);
	return 0;
}

/* --- the receiver's lane --------------------------------------------------
 *
 * The receiver thread itself sends a notification to a worker that spins
 * on another CPU, and spins (at most spin_ns) for the answer: then a
 * worker's answer costs the same two context switches as a builtin's. It
 * answers continue, errno and return itself, and serves memory requests
 * for that notification. Anything else (another action, another message,
 * no answer in time, a broken ring) it leaves unread and hands over, the
 * notification and the lane, to the router, which treats it as its own
 * and hands the lane back once nothing sent on it is pending. Only one
 * thread uses a lane at a time (lane_owner). */

/* Memory requests the receiver serves for one notification; more go to
 * the router. */
#define LANE_MAX_MEM_REQUESTS 16u

/* A replica of h's worker whose lane the receiver may use now (lane_busy
 * set), or NULL. */
static struct worker *lane_pick(struct router *rt, const struct chain_hop *h, int cpu,
				bool *same_cpu)
{
	struct worker *first = h->worker;
	*same_cpu = false;
	for (unsigned i = 0; i < first->n_replicas; i++) {
		struct worker *w = &rt->workers[first->index + i];
		if (!atomic_load_explicit(&w->lane_ready, memory_order_acquire) ||
		    atomic_load_explicit(&w->lane_owner, memory_order_acquire) != LANE_RECEIVER ||
		    atomic_load_explicit(&w->load_pub, memory_order_relaxed) >= WORKER_MAX_INFLIGHT)
			continue;
		atomic_store(&w->lane_busy, true);
		if (!atomic_load(&w->lane_ready)) {
			atomic_store(&w->lane_busy, false);
			continue;
		}
		/* Spinning for a worker that spins on this very CPU would only
		 * keep it from answering (the receiver is real-time). */
		if (atomic_load_explicit(&w->shm->worker_cpu, memory_order_relaxed) == cpu) {
			/* Ask it to move (a hint the SDK follows), use the router now. */
			atomic_store_explicit(&w->shm->avoid_cpu, cpu, memory_order_relaxed);
			*same_cpu = true;
			atomic_store(&w->lane_busy, false);
			continue;
		}
		return w;
	}
	return NULL;
}

/* The lane's next message, already copied out (len bytes, next: the
 * position after it), for p: 1 p is answered, 2 p continued and went to the
 * router for its next hops, 0 keep waiting (a memory request was served),
 * -1 leave it unread for the router. */
static int lane_message(struct router *rt, struct worker *w, struct pending *p, size_t len,
			uint32_t next)
{
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	struct sg_err err;
	if (proto_decode(rt->lane_buf, len, &m, &err) < 0 ||
	    proto_validate_from_worker(m, &err) < 0)
		return -1;
	if (m->body_case == SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST) {
		const Sysgate__V1__MemRequest *q = m->mem_request;
		/* A reply that might not fit the ring goes by the router (nng). */
		size_t bound = (size_t)q->length + 256;
		int e;
		if (q->seq != p->seq || bound > FASTCHAN_MAX_MSG ||
		    !fastchan_reserve(&w->ltx, bound, &e))
			return -1;
		fastchan_consume(&w->lrx, next);
		Sysgate__V1__Envelope env;
		Sysgate__V1__MemReply reply;
		proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY);
		env.mem_reply = &reply;
		struct childmem mem = { .listener = rt->listener,
					.id = p->req.id,
					.pid = (pid_t)p->req.pid };
		proxy_serve(&mem, q, rt->lane_proxy, &reply);
		put_fast(w, &w->ltx, &env); /* room reserved above */
		return 0;
	}
	if (m->body_case != SYSGATE__V1__ENVELOPE__BODY_ACTION || m->action->seq != p->seq)
		return -1;
	const struct chain_hop *h = &p->chain->hops[0];
	struct action a;
	switch (m->action->kind_case) {
	case SYSGATE__V1__ACTION__KIND_DO_CONTINUE:
		a = (struct action){ .kind = ACTION_CONTINUE };
		break;
	case SYSGATE__V1__ACTION__KIND_DO_ERRNO:
		a = (struct action){ .kind = ACTION_ERRNO, .value = m->action->do_errno->errnum };
		break;
	case SYSGATE__V1__ACTION__KIND_DO_RETURN:
		if (h->observe_only)
			return -1;
		a = (struct action){ .kind = ACTION_RETURN, .value = m->action->do_return->value };
		break;
	default:
		return -1; /* kill, inject, failure: the router's business */
	}
	if (!action_valid(&a))
		return -1;
	fastchan_consume(&w->lrx, next);
	if (a.kind == ACTION_CONTINUE && p->chain->n_hops > 1) {
		/* The next hops are the router's. */
		p->hop = 1;
		p->w = NULL;
		return 2;
	}
	answer_send(rt->listener, &rt->lane_answer, &p->req, &a);
	record(rt, p, &a, a.kind == ACTION_CONTINUE ? "kernel" : w->name, NULL);
	return 1;
}

/* Another notification waits to be received: waiting here would delay it
 * (and keep the next replica idle), so the router takes this one over. */
static bool listener_ready(struct router *rt)
{
	struct pollfd pfd = { .fd = rt->listener, .events = POLLIN };
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

int router_lane(struct router *rt, const struct seccomp_notif *req, const struct chain *chain,
		uint64_t t0)
{
	if (!rt->spin_ns)
		return -EAGAIN;
	struct pending *p = rt->lane_spare ? rt->lane_spare : ring_pop(&rt->spare);
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
	p->gen = w->generation; /* published with lane_ready */
	p->seq = atomic_fetch_add(&rt->next_seq, 1) + 1;
	p->via_lane = true;
	struct childmem mem = { .listener = rt->listener, .id = req->id, .pid = (pid_t)req->pid };
	audit_preread_paths(&p->rec, req, &mem);
	p->preread = true;
	struct snapshot_msg sm;
	build_snapshot(rt, p, &chain->hops[0], &sm);
	/* A full or broken lane: the router's way (and the router finds a
	 * broken ring; w's state is not the receiver's to touch). */
	if (put_fast(w, &w->ltx, &sm.env) < 0) {
		audit_syscall_release(&p->rec);
		atomic_store(&w->lane_busy, false);
		return -EAGAIN;
	}
	uint64_t start = now_ns();
	p->deadline = start + rt->handler_timeout_ns;
	int k = -1;
	unsigned served = 0;
	for (unsigned spins = 0;; spins++) {
		uint32_t next;
		ssize_t len = fastchan_peek(&w->lrx, rt->lane_buf, FASTCHAN_MAX_MSG, &next);
		if (len >= 0) {
			/* Bounded however the worker behaves: a stream of memory
			 * requests does not keep the receiver here. */
			if (served == LANE_MAX_MEM_REQUESTS || now_ns() - start > rt->spin_ns)
				break;
			k = lane_message(rt, w, p, (size_t)len, next);
			if (k != 0)
				break;
			k = -1; /* a memory request served: still unanswered */
			served++;
			continue;
		}
		if (len != -EAGAIN)
			break; /* a broken ring: the router finds it */
		fastchan_relax();
		if (spins % 64 == 63 && (now_ns() - start > rt->spin_ns || listener_ready(rt)))
			break;
	}
	if (k < 0)
		rt->lane_handed++;
	else
		rt->lane_answered++;
	if (k != 1) {
		/* Unanswered here (the router takes it, and the lane), or on to
		 * the next hops. Pushed before the lane changes hands: the
		 * router adopts it before it reads the lane. */
		p->adopt = k < 0;
		rt->lane_spare = NULL;
		ring_push(&rt->submitted, p); /* room: at most the pool is out */
		if (k < 0)
			atomic_store_explicit(&w->lane_owner, LANE_ROUTER, memory_order_release);
		kick_router(rt);
	}
	atomic_store(&w->lane_busy, false);
	return 0;
}

void router_stop(struct router *rt)
{
	if (!rt)
		return;
	if (rt->lane_answered || rt->lane_handed || rt->lane_not_used)
		log_verbose("receiver's lane: %llu answered on it, %llu handed to the router, "
			    "%llu not taken (%llu of them: the worker was on the receiver's CPU)",
			    (unsigned long long)rt->lane_answered,
			    (unsigned long long)rt->lane_handed,
			    (unsigned long long)rt->lane_not_used,
			    (unsigned long long)rt->lane_same_cpu);
	if (rt->thread_started) {
		uint64_t one = 1;
		(void)!write(rt->stop_fd, &one, sizeof(one));
		pthread_join(rt->thread, NULL);
		rt->thread_started = false;
	}
	for (size_t i = 0; i < rt->n_workers; i++)
		worker_free(&rt->workers[i]);
	if (rt->rundir[0] && rmdir(rt->rundir) < 0)
		log_error("cannot remove %s: %s", rt->rundir, strerror(errno));
	rt->rundir[0] = '\0';
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
	free(rt->read_paths);
	for (size_t i = 0; i < ARRAY_SIZE(rt->extra_read); i++)
		free(rt->extra_read[i]);
	if (rt->kick_fd >= 0)
		close(rt->kick_fd);
	if (rt->stop_fd >= 0)
		close(rt->stop_fd);
	pthread_mutex_destroy(&rt->lock);
	pthread_cond_destroy(&rt->cond);
	free(rt);
}
