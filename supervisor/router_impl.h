/* The router's internals, shared by the files that implement it (as nng's
 * sockimpl.h is): not for the rest of the supervisor, which uses router.h. */
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
 * rings: the receiver, at real-time priority, never takes a lock or calls
 * malloc to hand one over (a lock held by a preempted router thread would
 * delay the next receive, and a signal in that delay turns a trapped
 * close() into EINTR). */
#define POOL_SIZE 4096u /* a power of two */

struct ring {
	_Alignas(64) _Atomic uint32_t head; /* the consumer's */
	_Alignas(64) _Atomic uint32_t tail; /* the producer's */
	struct pending *slot[POOL_SIZE];
};

bool ring_push(struct ring *r, struct pending *p);
struct pending *ring_pop(struct ring *r);

struct router {
	const struct config *cfg;
	char sandbox[PROTO_MAX_SANDBOX + 1];
	const bool *deny;
	struct audit *audit;
	struct worker_env env;
	char rundir[PATH_MAX];
	char *extra_read[2];
	const char **read_paths; /* extra_read, then --worker-read */
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

	/* The receiver thread's own, for the lane (router_lane). */
	struct pending *lane_spare; /* a pool entry it took and may reuse */
	uint8_t *lane_buf, *lane_proxy;
	struct answer_buf lane_answer;
	/* For -v at the end: how notifications went. */
	uint64_t lane_answered, lane_handed, lane_same_cpu, lane_not_used;

	/* Set while the router sleeps in poll(): the receiver then kicks. */
	_Alignas(64) _Atomic uint32_t sleeping;
};

/* Hands p to the next hop that takes it, or answers it. */
void router_route(struct router *rt, struct pending *p);

/* The current hop's exception policy answers p; CONTINUE hands it on. */
void router_apply_policy(struct router *rt, struct pending *p, const char *why);

/* One message from w, over nng or (fast) its fast channel. */
void router_on_bytes(struct router *rt, struct worker *w, const void *buf, size_t len, bool fast);

/* What the receiver queued (one atomic load when nothing was). */
void router_take_submissions(struct router *rt);

/* What w's rings hold, of the router's lane and (while the router owns
 * it) the receiver's. */
void router_drain_fast(struct router *rt, struct worker *w);

/* Deadlines due by now; returns the next one (UINT64_MAX: none). */
uint64_t router_check_deadlines(struct router *rt, uint64_t now);

#endif
