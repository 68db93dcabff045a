/* The router's internals, shared by the files that implement it (as nng's
 * sockimpl.h is), by thread:
 *
 *   receiver thread: receiver_lane.c (the receiver's side of the lane),
 *                    pending.c (router_submit, the kick)
 *   router thread:   router.c (the thread: loop, start, end),
 *                    router_route.c (routing, exception policy, answering),
 *                    router_messages.c (what a worker sends),
 *                    router_failure.c (deadlines, failures, restarts)
 *   both:            pending.c (the pool), lane.c (the lane's hand-over),
 *                    notification.c (pre-read, Snapshot, Action, record)
 *
 * The rest of the supervisor uses router.h. Who may touch a worker's
 * receiver's lane when: lane.h. */
#ifndef SYSGATE_ROUTER_IMPL_H
#define SYSGATE_ROUTER_IMPL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "answer.h"
#include "audit.h"
#include "router.h"
#include "worker.h"

#define RESTART_MAX 5        /* restarts per worker per run */
#define BACKOFF_FIRST_MS 50u /* before the first restart, doubled after each */
#define BACKOFF_MAX_MS 2000u
#define STOP_GRACE_MS 1000u /* between Goodbye and SIGKILL at the end */
#define LINK_GRACE_MS 100u  /* a lost link waits this long for its process's exit */
#define MS 1000000ull

/* A notification the workers decide. */
struct pending {
	struct seccomp_notif req;
	uint64_t t0;
	const struct chain *chain;
	size_t hop;               /* the chain hop deciding now */
	struct worker *w;         /* the replica of that hop holding it, or NULL */
	unsigned gen;             /* w's generation when it was handed over */
	bool adopt;               /* from the receiver: sent on w's lane already */
	bool via_lane;            /* sent on w's lane: its answer comes there */
	bool preread;             /* rec's paths are read already */
	uint64_t seq;             /* its hand-off to that hop's worker */
	uint64_t deadline;        /* --handler-timeout of that hand-off */
	struct audit_syscall rec; /* pre-read paths: the snapshot's and the audit's */
};

/* Pending notifications live in a fixed pool and travel between the
 * receiver and the router through two single-producer single-consumer
 * rings (pending.c): the receiver, at real-time priority, never takes a
 * lock or calls malloc to hand one over (a lock held by a preempted router
 * thread would delay the next receive, and a signal in that delay turns a
 * trapped close() into EINTR). */
#define POOL_SIZE 4096u /* a power of two */

struct ring {
	_Alignas(64) _Atomic uint32_t head; /* the consumer's */
	_Alignas(64) _Atomic uint32_t tail; /* the producer's */
	struct pending *slot[POOL_SIZE];
};

struct router {
	const struct config *cfg;
	char sandbox[PROTO_MAX_SANDBOX + 1];
	const bool *deny;
	struct audit *audit;
	struct worker_env env;
	struct worker_rundir rundir;
	struct worker workers[WORKER_MAX];
	size_t n_workers;
	int kick_fd, stop_fd;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock. */
	bool start_done;
	int start_result;
	struct sg_err start_err;
	pid_t pids[WORKER_MAX];

	struct pending *pool;
	struct ring submitted; /* receiver -> router */
	struct ring spare;     /* router -> receiver */

	/* The router thread's own. */
	bool starting;
	int listener; /* set by router_go, before any submission */
	struct answer_buf answer;
	_Atomic uint64_t next_seq; /* the receiver takes seqs too */
	uint64_t handler_timeout_ns, start_timeout_ns;
	uint8_t *proxy_buf;
	uint8_t *fast_buf;     /* one fast-channel record, copied out */
	uint64_t last_busy_ns; /* last hot-path work: spin a while after it */
	uint64_t spin_ns;      /* how long: 0 never (one CPU) */
	bool sandbox_killed;

	/* The receiver thread's own, for the lane (receiver_lane). */
	struct pending *lane_spare; /* a pool entry it took and may reuse */
	uint8_t *lane_buf, *lane_proxy;
	struct answer_buf lane_answer;
	/* For -v at the end: how notifications went. */
	uint64_t lane_answered, lane_handed, lane_same_cpu, lane_not_used;

	/* Set while the router sleeps in poll(): the receiver then kicks. */
	_Alignas(64) _Atomic uint32_t sleeping;
};

/* --- the pending pool (pending.c) --- */

/* Fills the pool; every entry spare. */
int pending_pool_init(struct router *rt, struct sg_err *err);

/* Receiver: a spare entry, or NULL (all 4096 are out). */
struct pending *pending_get(struct router *rt);

/* Router: p is answered; spare again. */
void pending_put(struct router *rt, struct pending *p);

/* Receiver: p (an entry it got) becomes notification req. */
void pending_start(struct router *rt, struct pending *p, const struct seccomp_notif *req,
		   const struct chain *chain, uint64_t t0);

/* Receiver: queues p for the router (then router_kick). */
void pending_submit(struct router *rt, struct pending *p);

/* Router: the next queued entry, or NULL; is there one? */
struct pending *pending_next(struct router *rt);
bool pending_submitted(struct router *rt);

/* Receiver, after queueing: wakes the router if it sleeps (a spinning
 * router sees the queue without it, see serve()). */
void router_kick(struct router *rt);

/* --- the receiver's side of the lane (receiver_lane.c) --- */

/* Receiver, before router_submit: answers req through a worker's lane if
 * one is free and spinning elsewhere, waiting at most briefly; hands it to
 * the router otherwise. 0 done (the router may have taken it over),
 * -EAGAIN not taken: router_submit it. Takes no lock, allocates nothing. */
int receiver_lane(struct router *rt, const struct seccomp_notif *req, const struct chain *chain,
		  uint64_t t0);

/* For -v at the end: how the lane's notifications went. */
void receiver_lane_report(const struct router *rt);

/* --- the router thread (router.c) --- */

/* The worker pids for router_worker_pids, after a start or an end. */
void router_publish_pids(struct router *rt);

/* What the receiver queued (one atomic load when nothing was). */
void router_take_submissions(struct router *rt);

/* What w's rings hold, of the router's lane and (while the router owns
 * it) the receiver's. */
void router_drain_fast(struct router *rt, struct worker *w);

/* --- routing and exception policy (router_route.c) --- */

/* Hands p to the next hop that takes it, or answers it. */
void router_route(struct router *rt, struct pending *p);

/* The current hop's exception policy answers p; CONTINUE hands it on. */
void router_apply_policy(struct router *rt, struct pending *p, const char *why);

/* Answers p with a (decider, exception: for its audit record) and frees
 * its entry. */
void router_finish(struct router *rt, struct pending *p, const struct action *a,
		   const char *decider, const char *exception);

/* The pending notification seq of w, taking it (take) from its list. */
struct pending *router_find_inflight(struct worker *w, uint64_t seq, bool take);

/* Notifications w holds, the timed-out ones it has not answered included. */
size_t router_load_of(const struct worker *w);

/* The router thread's view of the live worker pids (router_worker_pids is
 * the other threads'). */
size_t router_own_pids(const struct router *rt, pid_t out[WORKER_MAX]);

/* A lifecycle event about w into the audit log (fields stolen). */
void router_audit_worker(struct router *rt, const char *type, const struct worker *w,
			 json_t *fields);

const char *router_policy_name(unsigned policy);
const char *router_syscall_label(long nr);

/* --- what a worker sends (router_messages.c) --- */

/* One message from w over nng: from the process it started, on its
 * current connection, or ignored. */
void router_on_message(struct router *rt, struct worker *w, nng_msg *msg);

/* One message from w, over nng or (fast) its fast channel. */
void router_on_bytes(struct router *rt, struct worker *w, const void *buf, size_t len, bool fast);

void router_send_goodbye(struct worker *w, const char *reason);

/* --- failures, deadlines and restarts (router_failure.c) --- */

/* The worker failed as a whole: it is killed, everything it held gets its
 * exception policy, and it is restarted later (or given up on). */
void router_worker_failed(struct router *rt, struct worker *w, const char *kind, const char *fmt,
			  ...) __attribute__((format(printf, 4, 5)));

/* The run cannot start: router_start returns msg. */
void router_start_failed(struct router *rt, const char *msg);

/* w's pidfd is readable: reaped, and failed if it was live. */
void router_on_exit(struct router *rt, struct worker *w);

/* Lost links (nng's callback) start their grace period. */
void router_check_lost_links(struct router *rt);

/* Deadlines due by now; returns the next one (UINT64_MAX: none). */
uint64_t router_check_deadlines(struct router *rt, uint64_t now);

#endif
