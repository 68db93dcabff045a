/* The router and the receiver's lane without a kernel listener: a router
 * built in the test, workers that are fast channels the test plays the
 * worker side of, and the kernel's answers captured (answer_send and the
 * sandbox kill are wrapped at link time: -Wl,--wrap). Covers the exception
 * policies, the deadlines, the Action -> answer translation, and the lane's
 * hand-over between the receiver and the router (with the races the fast
 * channel fixes closed). */
#include "unit.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "answer.h"
#include "cli.h"
#include "fastchan.h"
#include "protocol.h"
#include "proxy.h"
#include "router_impl.h"

/* --- what the router answered -------------------------------------------- */

struct answered {
	uint64_t id;
	struct action a;
};

static struct answered answers[2 * WORKER_HELD_MAX];
static size_t n_answers;
static unsigned sandbox_kills;

void __wrap_answer_send(int listener, struct answer_buf *b, const struct seccomp_notif *req,
			const struct action *a);
void __wrap_answer_send(int listener, struct answer_buf *b, const struct seccomp_notif *req,
			const struct action *a)
{
	(void)listener;
	(void)b;
	assert_true(n_answers < ARRAY_SIZE(answers));
	answers[n_answers++] = (struct answered){ .id = req->id, .a = *a };
}

/* The KILL policy kills every sandbox process: never from a test. */
int __wrap_procs_kill_all(pid_t root, const pid_t *exclude, size_t n_exclude);
int __wrap_procs_kill_all(pid_t root, const pid_t *exclude, size_t n_exclude)
{
	(void)root;
	(void)exclude;
	(void)n_exclude;
	sandbox_kills++;
	return 0;
}

/* --- a router with fake workers -------------------------------------------- */

#define N_WORKERS 2
#define TIMEOUT_NS (1000 * MS)

struct fixture {
	struct router *rt;
	struct config cfg;
	struct chain chain1; /* getpid: worker 0 */
	struct chain chain2; /* getpid: worker 0, then worker 1 */
	struct chain_hop hops[2];
	/* The worker side of each worker's four rings. */
	struct fastchan_end to_worker[N_WORKERS], to_sup[N_WORKERS];
	struct fastchan_end to_worker_r[N_WORKERS], to_sup_r[N_WORKERS];
	int shm_fd[N_WORKERS];
	uint64_t next_id;
};

static struct fixture fx;

static void worker_setup(struct worker *w, unsigned i)
{
	struct sg_err err;
	w->index = i;
	w->spec = i ? "second" : "first";
	snprintf(w->name, sizeof(w->name), "%s", w->spec);
	w->first = w;
	w->n_replicas = 1;
	w->state = WORKER_READY;
	w->exe_fd = w->pidfd = w->out_fd = w->recv_fd = w->wake_fd = -1;
	assert_int_equal(fastchan_create(&fx.shm_fd[i], &w->shm, &err), 0);
	atomic_store(&w->shm->worker_cpu, -1);
	w->fast = true;
	w->tx = (struct fastchan_end){ .ring = &w->shm->to_worker };
	w->rx = (struct fastchan_end){ .ring = &w->shm->to_sup };
	lane_reset(&w->lane, w->shm);
	lane_open(&w->lane, true);
	fx.to_worker[i] = (struct fastchan_end){ .ring = &w->shm->to_worker };
	fx.to_sup[i] = (struct fastchan_end){ .ring = &w->shm->to_sup };
	fx.to_worker_r[i] = (struct fastchan_end){ .ring = &w->shm->to_worker_r };
	fx.to_sup_r[i] = (struct fastchan_end){ .ring = &w->shm->to_sup_r };
}

static int setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	n_answers = 0;
	sandbox_kills = 0;
	struct router *rt = calloc(1, sizeof(*rt));
	assert_non_null(rt);
	fx.rt = rt;
	fx.cfg.handler_timeout_ms = TIMEOUT_NS / MS;
	rt->cfg = &fx.cfg;
	snprintf(rt->sandbox, sizeof(rt->sandbox), "test");
	rt->listener = -1;
	rt->kick_fd = rt->stop_fd = -1;
	rt->handler_timeout_ns = TIMEOUT_NS;
	rt->start_timeout_ns = TIMEOUT_NS;
	struct sg_err err;
	assert_int_equal(pending_pool_init(rt, &err), 0);
	rt->proxy_buf = malloc(PROXY_BUF_SIZE);
	rt->fast_buf = malloc(FASTCHAN_MAX_MSG);
	rt->lane_buf = malloc(FASTCHAN_MAX_MSG);
	rt->lane_proxy = malloc(PROXY_BUF_SIZE);
	assert_true(rt->pool && rt->proxy_buf && rt->fast_buf && rt->lane_buf && rt->lane_proxy);
	pthread_mutex_init(&rt->lock, NULL);
	rt->n_workers = N_WORKERS;
	for (unsigned i = 0; i < N_WORKERS; i++)
		worker_setup(&rt->workers[i], i);
	fx.hops[0] = (struct chain_hop){ .worker = &rt->workers[0],
					 .policy = SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM };
	fx.hops[1] = (struct chain_hop){ .worker = &rt->workers[1],
					 .policy = SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM };
	fx.chain1 = (struct chain){ .hops = fx.hops, .n_hops = 1 };
	fx.chain2 = (struct chain){ .hops = fx.hops, .n_hops = 2 };
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	struct router *rt = fx.rt;
	for (unsigned i = 0; i < N_WORKERS; i++) {
		struct worker *w = &rt->workers[i];
		for (size_t k = 0; k < w->n_inflight; k++)
			audit_syscall_release(&w->inflight[k]->rec);
		fastchan_unmap(w->shm);
		close(fx.shm_fd[i]);
	}
	if (rt->listener >= 0)
		close(rt->listener);
	pthread_mutex_destroy(&rt->lock);
	free(rt->pool);
	free(rt->proxy_buf);
	free(rt->fast_buf);
	free(rt->lane_buf);
	free(rt->lane_proxy);
	free(rt);
	return 0;
}

static struct seccomp_notif notif(void)
{
	struct seccomp_notif req = { .id = ++fx.next_id, .pid = (uint32_t)getpid() };
	req.data.nr = SYS_getpid; /* no path argument to read */
	return req;
}

/* A notification handed to the router (as the receiver does), routed. */
static void submit(const struct chain *chain)
{
	struct seccomp_notif req = notif();
	assert_int_equal(router_submit(fx.rt, &req, chain, now_ns()), 0);
	router_take_submissions(fx.rt);
}

/* --- the worker's side ------------------------------------------------------ */

/* The next Snapshot on worker i's ring (lane: the receiver's); its seq. */
static uint64_t worker_snapshot(unsigned i, bool lane)
{
	uint8_t *buf = malloc(FASTCHAN_MAX_MSG);
	assert_non_null(buf);
	ssize_t len =
		fastchan_pop(lane ? &fx.to_worker_r[i] : &fx.to_worker[i], buf, FASTCHAN_MAX_MSG);
	assert_true(len > 0);
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	struct sg_err err;
	assert_int_equal(proto_decode(buf, (size_t)len, &m, &err), 0);
	free(buf);
	assert_int_equal(m->body_case, SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT);
	return m->snapshot->seq;
}

/* How many messages of kind body wait on a ring to the worker. */
static unsigned worker_count(struct fastchan_end *e, Sysgate__V1__Envelope__BodyCase body)
{
	uint8_t *buf = malloc(FASTCHAN_MAX_MSG);
	assert_non_null(buf);
	unsigned n = 0;
	ssize_t len;
	while ((len = fastchan_pop(e, buf, FASTCHAN_MAX_MSG)) > 0) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
		struct sg_err err;
		assert_int_equal(proto_decode(buf, (size_t)len, &m, &err), 0);
		n += m->body_case == body;
	}
	free(buf);
	return n;
}

enum kind { K_CONTINUE, K_ERRNO, K_RETURN, K_KILL, K_FAIL };

/* An Action envelope for seq, in the caller's storage. */
struct action_msg {
	Sysgate__V1__Envelope env;
	Sysgate__V1__Action act;
	Sysgate__V1__Action__Continue c;
	Sysgate__V1__Action__Errno e;
	Sysgate__V1__Action__Return r;
	Sysgate__V1__Action__Kill k;
	Sysgate__V1__Action__Failed f;
};

static char fail_reason[] = "test", no_reason[] = "";

static void action_msg(struct action_msg *m, uint64_t seq, enum kind kind, int64_t value)
{
	proto_envelope_init(&m->env, SYSGATE__V1__ENVELOPE__BODY_ACTION);
	sysgate__v1__action__init(&m->act);
	m->env.action = &m->act;
	m->act.seq = seq;
	switch (kind) {
	case K_CONTINUE:
		sysgate__v1__action__continue__init(&m->c);
		m->act.kind_case = SYSGATE__V1__ACTION__KIND_DO_CONTINUE;
		m->act.do_continue = &m->c;
		break;
	case K_ERRNO:
		sysgate__v1__action__errno__init(&m->e);
		m->e.errnum = (int32_t)value;
		m->act.kind_case = SYSGATE__V1__ACTION__KIND_DO_ERRNO;
		m->act.do_errno = &m->e;
		break;
	case K_RETURN:
		sysgate__v1__action__return__init(&m->r);
		m->r.value = value;
		m->act.kind_case = SYSGATE__V1__ACTION__KIND_DO_RETURN;
		m->act.do_return = &m->r;
		break;
	case K_KILL:
		sysgate__v1__action__kill__init(&m->k);
		m->k.signal = (int32_t)value;
		m->act.kind_case = SYSGATE__V1__ACTION__KIND_DO_KILL;
		m->act.do_kill = &m->k;
		break;
	case K_FAIL:
		sysgate__v1__action__failed__init(&m->f);
		m->f.reason = fail_reason;
		m->act.kind_case = SYSGATE__V1__ACTION__KIND_DO_FAIL;
		m->act.do_fail = &m->f;
		break;
	}
}

/* Worker i answers seq on a ring (lane: the receiver's). */
static void worker_answer(unsigned i, bool lane, uint64_t seq, enum kind kind, int64_t value)
{
	struct action_msg m;
	action_msg(&m, seq, kind, value);
	assert_int_equal(proto_ring_put(lane ? &fx.to_sup_r[i] : &fx.to_sup[i], &m.env), 0);
}

/* Worker i answers seq over its nng link (what the router reads from it). */
static void worker_answer_nng(unsigned i, uint64_t seq, enum kind kind, int64_t value)
{
	struct action_msg m;
	action_msg(&m, seq, kind, value);
	_cleanup_free_ void *buf = NULL;
	size_t len;
	struct sg_err err;
	assert_int_equal(proto_encode(&m.env, &buf, &len, &err), 0);
	router_on_bytes(fx.rt, &fx.rt->workers[i], buf, len, false);
}

/* Worker i asks for n bytes of memory of seq's process on a ring. */
static void worker_mem_request(unsigned i, bool lane, uint64_t seq, uint64_t id)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__MemRequest q;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST);
	sysgate__v1__mem_request__init(&q);
	env.mem_request = &q;
	q.request_id = id;
	q.seq = seq;
	q.op = SYSGATE__V1__MEM_REQUEST__OP__READ;
	q.addr = 4096;
	q.length = 8;
	assert_int_equal(proto_ring_put(lane ? &fx.to_sup_r[i] : &fx.to_sup[i], &env), 0);
}

static void assert_answer(size_t k, enum action_kind kind, int64_t value)
{
	assert_true(k < n_answers);
	assert_int_equal(answers[k].a.kind, kind);
	assert_int_equal(answers[k].a.value, value);
}

/* --- exception policies ----------------------------------------------------- */

/* Why the first hop cannot take the notification. */
enum refusal { NOT_RUNNING, TOO_MANY, HANDLER_FAILED, MALFORMED_ACTION, OBSERVE_ONLY_RETURN };

struct policy_case {
	const char *name;
	unsigned policy;
	enum refusal refusal;
	enum action_kind want;
	int64_t want_value;
	unsigned want_kills;
};

static struct policy_case policy_cases[] = {
	{ "KILL: not running kills the sandbox", SYSGATE__V1__EXCEPTION_POLICY__KILL, NOT_RUNNING,
	  ACTION_KILL, SIGKILL, 1 },
	{ "DENY_EPERM: not running", SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM, NOT_RUNNING,
	  ACTION_ERRNO, EPERM, 0 },
	{ "DENY_EIO: not running", SYSGATE__V1__EXCEPTION_POLICY__DENY_EIO, NOT_RUNNING,
	  ACTION_ERRNO, EIO, 0 },
	{ "CONTINUE: not running, the last hop: the kernel runs it",
	  SYSGATE__V1__EXCEPTION_POLICY__CONTINUE, NOT_RUNNING, ACTION_CONTINUE, 0, 0 },
	{ "an unknown policy is KILL", 7, NOT_RUNNING, ACTION_KILL, SIGKILL, 1 },
	{ "DENY_EPERM: too many pending", SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM, TOO_MANY,
	  ACTION_ERRNO, EPERM, 0 },
	{ "DENY_EIO: a reported handler failure", SYSGATE__V1__EXCEPTION_POLICY__DENY_EIO,
	  HANDLER_FAILED, ACTION_ERRNO, EIO, 0 },
	{ "KILL: a malformed action (errno 0) fails the worker",
	  SYSGATE__V1__EXCEPTION_POLICY__KILL, MALFORMED_ACTION, ACTION_KILL, SIGKILL, 1 },
	{ "DENY_EPERM: return for an observe-only syscall",
	  SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM, OBSERVE_ONLY_RETURN, ACTION_ERRNO, EPERM, 0 },
};

static void test_policy(void **state)
{
	const struct policy_case *c = *state;
	struct worker *w = &fx.rt->workers[0];
	fx.hops[0].policy = c->policy;
	fx.hops[0].observe_only = c->refusal == OBSERVE_ONLY_RETURN;
	if (c->refusal == NOT_RUNNING)
		w->state = WORKER_DOWN;
	if (c->refusal == TOO_MANY)
		w->n_expired = WORKER_MAX_INFLIGHT; /* late answers count against it */
	submit(&fx.chain1);
	if (c->refusal == HANDLER_FAILED || c->refusal == MALFORMED_ACTION ||
	    c->refusal == OBSERVE_ONLY_RETURN) {
		uint64_t seq = worker_snapshot(0, false);
		assert_int_equal(n_answers, 0);
		if (c->refusal == HANDLER_FAILED)
			worker_answer(0, false, seq, K_FAIL, 0);
		else if (c->refusal == MALFORMED_ACTION)
			worker_answer(0, false, seq, K_ERRNO, 0);
		else
			worker_answer(0, false, seq, K_RETURN, 3);
		router_drain_fast(fx.rt, w);
		/* A bad answer fails the notification; a malformed message,
		 * the worker too. */
		assert_int_equal(w->state,
				 c->refusal == MALFORMED_ACTION ? WORKER_DOWN : WORKER_READY);
		assert_int_equal(w->n_inflight, 0);
	}
	assert_int_equal(n_answers, 1);
	assert_answer(0, c->want, c->want_value);
	assert_int_equal(answers[0].id, fx.next_id);
	assert_int_equal(sandbox_kills, c->want_kills);
}

/* CONTINUE hands the notification to the next hop, not to the kernel. */
static void test_policy_continue_next_hop(void **state)
{
	(void)state;
	fx.hops[0].policy = SYSGATE__V1__EXCEPTION_POLICY__CONTINUE;
	fx.rt->workers[0].state = WORKER_DEAD;
	submit(&fx.chain2);
	assert_int_equal(n_answers, 0);
	assert_int_equal(fx.rt->workers[1].n_inflight, 1);
	uint64_t seq = worker_snapshot(1, false);
	worker_answer(1, false, seq, K_ERRNO, EACCES);
	router_drain_fast(fx.rt, &fx.rt->workers[1]);
	assert_int_equal(n_answers, 1);
	assert_answer(0, ACTION_ERRNO, EACCES);
}

/* --- the Action -> answer translation ---------------------------------------- */

struct action_case {
	const char *name;
	enum kind kind;
	int64_t value;
	bool two_hops;
	enum action_kind want;
	int64_t want_value;
};

static struct action_case action_cases[] = {
	{ "errno answers errno", K_ERRNO, EACCES, false, ACTION_ERRNO, EACCES },
	{ "return answers return", K_RETURN, 42, false, ACTION_RETURN, 42 },
	{ "negative return passes", K_RETURN, -5, false, ACTION_RETURN, -5 },
	{ "continue on the last hop: the kernel", K_CONTINUE, 0, false, ACTION_CONTINUE, 0 },
	{ "continue: the next hop decides", K_CONTINUE, 0, true, ACTION_ERRNO, ENOSYS },
	/* The test process is no sandbox process: never signalled. */
	{ "kill outside the sandbox is refused with EPERM", K_KILL, SIGKILL, false, ACTION_ERRNO,
	  EPERM },
};

static void test_action(void **state)
{
	const struct action_case *c = *state;
	submit(c->two_hops ? &fx.chain2 : &fx.chain1);
	worker_answer(0, false, worker_snapshot(0, false), c->kind, c->value);
	router_drain_fast(fx.rt, &fx.rt->workers[0]);
	if (c->two_hops) {
		assert_int_equal(n_answers, 0);
		worker_answer(1, false, worker_snapshot(1, false), K_ERRNO, ENOSYS);
		router_drain_fast(fx.rt, &fx.rt->workers[1]);
	}
	assert_int_equal(n_answers, 1);
	assert_answer(0, c->want, c->want_value);
	assert_int_equal(sandbox_kills, 0);
	assert_int_equal(fx.rt->workers[0].state, WORKER_READY);
}

/* An answer for a notification the worker does not hold is a violation:
 * the worker fails and what it held gets its policy. */
static void test_answer_not_held(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	submit(&fx.chain1);
	uint64_t seq = worker_snapshot(0, false);
	worker_answer(0, false, seq + 100, K_ERRNO, EACCES);
	router_drain_fast(fx.rt, w);
	assert_int_equal(w->state, WORKER_DOWN);
	assert_int_equal(w->n_inflight, 0);
	assert_int_equal(n_answers, 1);
	assert_answer(0, ACTION_ERRNO, EPERM);
	assert_false(atomic_load(&w->lane.ready));
}

/* A lifecycle message on the fast channel is a violation too. */
static void test_lifecycle_on_fast_channel(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	Sysgate__V1__Envelope env;
	Sysgate__V1__Goodbye bye;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_GOODBYE);
	sysgate__v1__goodbye__init(&bye);
	bye.reason = no_reason;
	env.goodbye = &bye;
	assert_int_equal(proto_ring_put(&fx.to_sup[0], &env), 0);
	router_drain_fast(fx.rt, w);
	assert_int_equal(w->state, WORKER_DOWN);
}

/* --- deadlines -------------------------------------------------------------- */

/* Not due yet: nothing happens, and the deadline is the next one. */
static void test_deadline_not_due(void **state)
{
	(void)state;
	submit(&fx.chain1);
	struct pending *p = fx.rt->workers[0].inflight[0];
	assert_int_equal(router_check_deadlines(fx.rt, p->deadline - 1), p->deadline);
	assert_int_equal(n_answers, 0);
}

/* Past --handler-timeout, but heard from since: only this notification
 * times out; its late answer is ignored, then no longer counted. */
static void test_deadline_alive_expires(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	submit(&fx.chain1);
	uint64_t seq = worker_snapshot(0, false);
	struct pending *p = w->inflight[0];
	uint64_t due = p->deadline;
	w->last_heard_ns = due - TIMEOUT_NS + 1;
	router_check_deadlines(fx.rt, due);
	assert_int_equal(w->state, WORKER_READY);
	assert_int_equal(w->n_inflight, 0);
	assert_int_equal(w->n_expired, 1);
	assert_int_equal(n_answers, 1);
	assert_answer(0, ACTION_ERRNO, EPERM);
	worker_answer(0, false, seq, K_ERRNO, EACCES);
	router_drain_fast(fx.rt, w);
	assert_int_equal(n_answers, 1); /* ignored */
	assert_int_equal(w->n_expired, 0);
	assert_int_equal(w->state, WORKER_READY);
}

/* Past --handler-timeout and silent since: the worker has failed, with a
 * restart after the first backoff; everything it held gets its policy. */
static void test_deadline_silent_fails(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	submit(&fx.chain1);
	submit(&fx.chain1);
	uint64_t due = w->inflight[0]->deadline;
	uint64_t now = now_ns();
	router_check_deadlines(fx.rt, due > now ? due : now);
	assert_int_equal(w->state, WORKER_DOWN);
	assert_int_equal(w->n_inflight, 0);
	assert_int_equal(n_answers, 2);
	assert_answer(0, ACTION_ERRNO, EPERM);
	assert_answer(1, ACTION_ERRNO, EPERM);
	assert_true(w->deadline_ns >= now + BACKOFF_FIRST_MS * MS);
	assert_true(w->deadline_ns <= now_ns() + BACKOFF_FIRST_MS * MS);
}

struct backoff_case {
	const char *name;
	unsigned generation;
	enum worker_state want;
	uint64_t want_backoff_ms;
};

static struct backoff_case backoff_cases[] = {
	{ "first failure: restart in 50 ms", 0, WORKER_DOWN, 50 },
	{ "third failure: restart in 200 ms", 2, WORKER_DOWN, 200 },
	{ "fifth failure: restart in 800 ms", 4, WORKER_DOWN, 800 },
	{ "out of restarts: dead", RESTART_MAX, WORKER_DEAD, 0 },
};

/* A STARTING worker past its Hello deadline fails like any other. */
static void test_deadline_backoff(void **state)
{
	const struct backoff_case *c = *state;
	struct worker *w = &fx.rt->workers[0];
	w->state = WORKER_STARTING;
	w->generation = c->generation;
	uint64_t now = now_ns();
	w->deadline_ns = now;
	router_check_deadlines(fx.rt, now);
	assert_int_equal(w->state, c->want);
	if (c->want == WORKER_DOWN) {
		assert_true(w->deadline_ns >= now + c->want_backoff_ms * MS);
		assert_true(w->deadline_ns <= now_ns() + c->want_backoff_ms * MS);
	}
}

/* A lost link waits for its grace period, then fails the worker. */
static void test_deadline_lost_link(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	uint64_t now = now_ns();
	w->link_lost_ns = now + LINK_GRACE_MS * MS;
	assert_int_equal(router_check_deadlines(fx.rt, now), w->link_lost_ns);
	assert_int_equal(w->state, WORKER_READY);
	router_check_deadlines(fx.rt, w->link_lost_ns);
	assert_int_equal(w->state, WORKER_DOWN);
}

/* A DOWN worker not reaped yet is not restarted (its exit wakes the
 * router); the next deadline is someone else's. */
static void test_deadline_down_unreaped(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	w->state = WORKER_DOWN;
	w->pidfd = 1000; /* only compared with -1 */
	w->deadline_ns = 0;
	assert_int_equal(router_check_deadlines(fx.rt, now_ns()), UINT64_MAX);
	assert_int_equal(w->state, WORKER_DOWN);
	w->pidfd = -1;
}

/* --- the receiver's lane ------------------------------------------------------ */

/* The seq the next hand-off takes. */
static uint64_t next_seq(void)
{
	return atomic_load(&fx.rt->next_seq) + 1;
}

static int lane(const struct chain *chain)
{
	struct seccomp_notif req = notif();
	return receiver_lane(fx.rt, &req, chain, now_ns());
}

static bool submissions_empty(void)
{
	return !pending_submitted(fx.rt);
}

/* The worker's answer is there in time: the receiver answers; the lane
 * stays the receiver's and the router never hears of it. */
static void test_lane_answered(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = 1000 * MS;
	worker_answer(0, true, next_seq(), K_ERRNO, EACCES);
	assert_int_equal(lane(&fx.chain1), 0);
	assert_int_equal(n_answers, 1);
	assert_answer(0, ACTION_ERRNO, EACCES);
	assert_int_equal(worker_snapshot(0, true), next_seq() - 1);
	assert_true(submissions_empty());
	assert_int_equal(atomic_load(&w->lane.owner), LANE_RECEIVER);
	assert_false(atomic_load(&w->lane.busy));
	assert_int_equal(fx.rt->lane_answered, 1);
}

/* No answer in time: the notification and the lane go to the router,
 * which serves the answer from the lane and then hands the lane back. */
static void test_lane_handed_over_and_back(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = 20000; /* 20 us */
	uint64_t seq = next_seq();
	assert_int_equal(lane(&fx.chain1), 0);
	assert_int_equal(n_answers, 0);
	assert_int_equal(atomic_load(&w->lane.owner), LANE_ROUTER);
	assert_false(atomic_load(&w->lane.busy));
	assert_false(submissions_empty());
	assert_int_equal(fx.rt->lane_handed, 1);
	/* The router adopts it before it reads the lane. */
	router_take_submissions(fx.rt);
	assert_int_equal(w->n_inflight, 1);
	assert_int_equal(w->lane.n_pending, 1);
	worker_answer(0, true, seq, K_RETURN, 7);
	router_drain_fast(fx.rt, w);
	assert_int_equal(n_answers, 1);
	assert_answer(0, ACTION_RETURN, 7);
	assert_int_equal(w->lane.n_pending, 0);
	assert_int_equal(atomic_load(&w->lane.owner), LANE_RECEIVER);
}

/* The race fixed in 55be073: the answer comes over nng (too big for the
 * ring) before the router took the hand-over from its ring: it is found
 * after adopting what was handed over, not a violation. */
static void test_lane_answer_overtakes_hand_over(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = 20000;
	uint64_t seq = next_seq();
	assert_int_equal(lane(&fx.chain1), 0);
	assert_false(submissions_empty());
	worker_answer_nng(0, seq, K_ERRNO, EACCES);
	assert_int_equal(w->state, WORKER_READY);
	assert_int_equal(n_answers, 1);
	assert_answer(0, ACTION_ERRNO, EACCES);
	assert_int_equal(w->lane.n_pending, 0);
	assert_int_equal(w->n_inflight, 0);
	router_drain_fast(fx.rt, w);
	assert_int_equal(atomic_load(&w->lane.owner), LANE_RECEIVER);
}

/* What the receiver does not answer itself (here a handler failure) is
 * left unread on the lane for the router, which applies the policy. */
static void test_lane_failure_is_the_routers(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = 1000 * MS;
	uint64_t seq = next_seq();
	worker_answer(0, true, seq, K_FAIL, 0);
	assert_int_equal(lane(&fx.chain1), 0);
	assert_int_equal(n_answers, 0);
	assert_int_equal(atomic_load(&w->lane.owner), LANE_ROUTER);
	router_drain_fast(fx.rt, w);
	assert_int_equal(n_answers, 1);
	assert_answer(0, ACTION_ERRNO, EPERM);
	assert_int_equal(w->state, WORKER_READY);
	assert_int_equal(atomic_load(&w->lane.owner), LANE_RECEIVER);
}

/* Continue with more hops: the receiver passes it to the router for the
 * next hop, keeping its lane. */
static void test_lane_continue_next_hops(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = 1000 * MS;
	worker_answer(0, true, next_seq(), K_CONTINUE, 0);
	assert_int_equal(lane(&fx.chain2), 0);
	assert_int_equal(n_answers, 0);
	assert_int_equal(atomic_load(&w->lane.owner), LANE_RECEIVER);
	router_take_submissions(fx.rt);
	assert_int_equal(w->n_inflight, 0);
	assert_int_equal(fx.rt->workers[1].n_inflight, 1);
	worker_answer(1, false, worker_snapshot(1, false), K_ERRNO, EIO);
	router_drain_fast(fx.rt, &fx.rt->workers[1]);
	assert_int_equal(n_answers, 1);
	assert_answer(0, ACTION_ERRNO, EIO);
}

/* A worker streaming memory requests does not keep the receiver (fixed in
 * 55be073): 16 served on the lane, then the router takes over and serves
 * the rest. */
static void test_lane_memory_requests_bounded(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = 1000 * MS;
	uint64_t seq = next_seq();
	for (uint64_t id = 1; id <= 20; id++)
		worker_mem_request(0, true, seq, id);
	assert_int_equal(lane(&fx.chain1), 0);
	assert_int_equal(atomic_load(&w->lane.owner), LANE_ROUTER);
	assert_int_equal(worker_snapshot(0, true), seq);
	assert_int_equal(worker_count(&fx.to_worker_r[0], SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY),
			 16);
	router_drain_fast(fx.rt, w);
	/* The router answers on the lane they came on. */
	assert_int_equal(worker_count(&fx.to_worker_r[0], SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY),
			 4);
	assert_int_equal(n_answers, 0);
	assert_int_equal(atomic_load(&w->lane.owner), LANE_ROUTER); /* still pending */
	worker_answer(0, true, seq, K_ERRNO, EACCES);
	router_drain_fast(fx.rt, w);
	assert_int_equal(n_answers, 1);
	assert_int_equal(atomic_load(&w->lane.owner), LANE_RECEIVER);
}

/* The fix of 44f11ae: while it waits, another notification arriving on
 * the listener ends the wait at once (however long the spin may be). */
static void test_lane_listener_ready_ends_wait(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = 20000 * MS;               /* far longer than the bound below */
	fx.rt->listener = eventfd(1, EFD_CLOEXEC); /* readable: "a notification waits" */
	assert_true(fx.rt->listener >= 0);
	uint64_t t0 = now_ns();
	assert_int_equal(lane(&fx.chain1), 0);
	assert_true(now_ns() - t0 < 5000 * MS); /* loose: a loaded machine */
	assert_int_equal(atomic_load(&w->lane.owner), LANE_ROUTER);
	assert_int_equal(fx.rt->lane_handed, 1);
}

/* A worker spinning on the receiver's own CPU is not waited for: it is
 * asked to move, and the router takes the notification. */
static void test_lane_same_cpu(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = 1000 * MS;
	cpu_set_t one, old;
	assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
	int cpu = sched_getcpu();
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	atomic_store(&w->shm->worker_cpu, cpu);
	int r = lane(&fx.chain1);
	sched_setaffinity(0, sizeof(old), &old);
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(atomic_load(&w->shm->avoid_cpu), cpu);
	assert_int_equal(fx.rt->lane_same_cpu, 1);
	assert_false(atomic_load(&w->lane.busy));
	assert_true(submissions_empty());
}

struct refuse_case {
	const char *name;
	bool not_ready, routers, full, no_spin, full_ring;
};

static struct refuse_case refuse_cases[] = {
	{ "not taken: the lane is not ready", .not_ready = true },
	{ "not taken: the router holds the lane", .routers = true },
	{ "not taken: the worker has too many pending", .full = true },
	{ "not taken: no spinning (one CPU)", .no_spin = true },
	{ "not taken: the lane's ring is full", .full_ring = true },
};

/* The receiver leaves the lane alone and the notification to the router. */
static void test_lane_not_taken(void **state)
{
	const struct refuse_case *c = *state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = c->no_spin ? 0 : 1000 * MS;
	if (c->not_ready)
		atomic_store(&w->lane.ready, false);
	if (c->routers)
		atomic_store(&w->lane.owner, LANE_ROUTER);
	if (c->full)
		atomic_store(&w->lane.load, WORKER_MAX_INFLIGHT);
	if (c->full_ring) {
		static uint8_t junk[4096];
		for (size_t size = sizeof(junk); size; size /= 2)
			while (fastchan_push(&w->lane.tx, junk, size) == 0)
				;
	}
	assert_int_equal(lane(&fx.chain1), -EAGAIN);
	assert_false(atomic_load(&w->lane.busy));
	assert_true(submissions_empty());
	assert_int_equal(n_answers, 0);
	assert_int_equal(atomic_load(&w->lane.owner), c->routers ? LANE_ROUTER : LANE_RECEIVER);
}

/* The worker restarted while the hand-over travelled: what was handed
 * over gets its policy (it went to the old instance). */
static void test_lane_hand_over_to_restarted_worker(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = 20000;
	assert_int_equal(lane(&fx.chain1), 0);
	w->generation++;
	router_take_submissions(fx.rt);
	assert_int_equal(n_answers, 1);
	assert_answer(0, ACTION_ERRNO, EPERM);
	assert_int_equal(w->n_inflight, 0);
}

/* A worker that fails while the router holds its lane loses the lane:
 * not ready, nothing counted on it. */
static void test_lane_worker_fails_while_handed_over(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	fx.rt->spin_ns = 20000;
	uint64_t seq = next_seq();
	assert_int_equal(lane(&fx.chain1), 0);
	router_take_submissions(fx.rt);
	worker_answer(0, true, seq + 5, K_ERRNO, EACCES); /* not held: a violation */
	router_drain_fast(fx.rt, w);
	assert_int_equal(w->state, WORKER_DOWN);
	assert_false(atomic_load(&w->lane.ready));
	assert_int_equal(w->lane.n_pending, 0);
	assert_int_equal(n_answers, 1);
	assert_answer(0, ACTION_ERRNO, EPERM);
}

/* A worker that fails holding the most it can (its in-flight bound and one
 * more from the receiver's lane) gives every one its policy (55be073: the
 * copy was one short). */
static void test_lane_worker_fails_holding_most(void **state)
{
	(void)state;
	struct worker *w = &fx.rt->workers[0];
	for (unsigned i = 0; i < WORKER_MAX_INFLIGHT; i++)
		submit(&fx.chain1);
	fx.rt->spin_ns = 20000;
	assert_int_equal(lane(&fx.chain1), 0);
	router_take_submissions(fx.rt);
	assert_int_equal(w->n_inflight, WORKER_HELD_MAX);
	worker_answer(0, false, 1u << 30, K_ERRNO, EACCES); /* not held: a violation */
	router_drain_fast(fx.rt, w);
	assert_int_equal(w->state, WORKER_DOWN);
	assert_int_equal(n_answers, WORKER_HELD_MAX);
	for (size_t k = 0; k < n_answers; k++)
		assert_answer(k, ACTION_ERRNO, EPERM);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test_setup_teardown(test_policy_continue_next_hop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_not_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle_on_fast_channel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_not_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_alive_expires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_silent_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_lost_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_down_unreaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lane_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lane_handed_over_and_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lane_answer_overtakes_hand_over, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lane_failure_is_the_routers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lane_continue_next_hops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lane_memory_requests_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lane_listener_ready_ends_wait, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lane_same_cpu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lane_hand_over_to_restarted_worker, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lane_worker_fails_while_handed_over, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lane_worker_fails_holding_most, setup,
						teardown),
	};
	struct CMUnitTest tests[ARRAY_SIZE(fixed) + ARRAY_SIZE(policy_cases) +
				ARRAY_SIZE(action_cases) + ARRAY_SIZE(backoff_cases) +
				ARRAY_SIZE(refuse_cases)];
	size_t n = 0;
	UNIT_TESTS(tests, n, fixed);
	size_t rows_from = n;
	UNIT_ROWS(tests, n, test_policy, policy_cases);
	UNIT_ROWS(tests, n, test_action, action_cases);
	UNIT_ROWS(tests, n, test_deadline_backoff, backoff_cases);
	UNIT_ROWS(tests, n, test_lane_not_taken, refuse_cases);
	for (size_t i = rows_from; i < n; i++) {
		tests[i].setup_func = setup;
		tests[i].teardown_func = teardown;
	}
	return _cmocka_run_group_tests("router", tests, n, NULL, NULL);
}
