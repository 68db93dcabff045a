/* Internals of the C SDK (sysgate.h): the worker, its link to the
 * supervisor, the notification context and the action a handler fills in.
 *
 *   link.c    the nng pair1 socket: dial, send (from any thread) and
 *             receive envelopes, noticing when the supervisor's end goes
 *             away;
 *   worker.c  registrations, handshake, the run loop, the handler threads,
 *             the routing of MemReplys to the calls waiting for them, and
 *             deferred answers (sg_defer, sg_complete);
 *   ctx.c     the context accessors and the memory requests;
 *   action.c  the action setters and the Action message they become;
 *   fast.c    the fast channel (fastchan.h), when the supervisor offers it.
 *
 * Threads: the thread that called sg_worker_run() receives everything the
 * supervisor sends. It queues each Snapshot for a pool of handler threads
 * (SYSGATE_WORKER_THREADS, at most Welcome.max_inflight), hands each
 * MemReply to the memory call waiting for its request_id, so one handler
 * can wait for memory while another runs, and calls the sg_injected_fn
 * for each Injected itself, before it receives the next message (so before
 * any later Snapshot is queued). The run ends (Goodbye, Error,
 * lost link, a protocol error) by waking every waiting memory call and idle
 * handler thread; sg_worker_run() returns once the pool is joined and no
 * other thread (a deferred answer's, an emitter) is still on the link.
 *
 * Lifetime: a deferred answer may outlive the run and sg_worker_free(), so
 * it holds a reference on the worker: sg_worker_free() releases everything
 * but the struct itself (its lock, ended flag and counters), which goes
 * with the last reference. After the run nothing touches the link.
 *
 * Locks, always taken in this order: a context's lock (struct
 * handler_slot's or struct sg_deferred's), the worker's lock, the link's
 * send_lock, the link's lock.
 * The receiving thread never holds one while it waits on the link. */
#ifndef SYSGATE_SDK_H
#define SYSGATE_SDK_H

#include <nng/nng.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sysgate.h>

#include "fastchan.h"
#include "protocol.h"

/* ---- link.c ---------------------------------------------------------- */

/* The worker's end of its link. lock guards lost, recv_stopped and
 * closing, and orders starting an operation against the cancels of the
 * pipe callback and link_stop_recv(); send_lock makes senders take turns on
 * tx. */
struct link {
	nng_socket socket;
	nng_aio *rx, *tx;
	bool open;
	pthread_mutex_t lock, send_lock;
	bool lost;         /* the supervisor's end went away */
	bool recv_stopped; /* link_stop_recv(): no more receiving */
	bool closing;      /* link_close() started: the callback does nothing */
};

int link_init(struct link *l, struct sg_err *err);
/* Dials url (blocking until connected or failed). */
int link_dial(struct link *l, const char *url, struct sg_err *err);
/* Encodes and sends m; safe from any thread. -ECONNRESET once the link is
 * lost. */
int link_send(struct link *l, const Sysgate__V1__Envelope *m, struct sg_err *err);
/* Receives, decodes and validates (proto_validate_from_supervisor) one
 * envelope into *out. -ECONNRESET when the link is lost, -EPROTO for
 * malformed input (the codec's reason in err). */
int link_recv(struct link *l, Sysgate__V1__Envelope **out, struct sg_err *err);
/* Ends a link_recv() in progress, and any later one, with -ECONNRESET:
 * how another thread wakes the receiver when the run must end. */
void link_stop_recv(struct link *l);
void link_close(struct link *l);

/* ---- worker.c -------------------------------------------------------- */

struct registration {
	long nr;
	const char *name; /* static (sg_syscall_name) */
	sg_handler_fn fn;
	void *ud;
	enum sg_exception on_exception;
};

/* A notification as its handler sees it. Lives in its handler_slot, owned
 * by the worker until sg_worker_free(), so a context kept past its call is
 * still memory the SDK owns: it reads as stale (live false) rather than
 * freed. Its fields are guarded by *lock (the slot's), since a handler may
 * pass its context to other threads. A deferred answer's context is a copy
 * living in its struct sg_deferred, freed when the answer is completed. */
struct sg_ctx {
	sg_worker *worker;
	pthread_mutex_t *lock;
	bool live;                    /* in its handler call, or its deferred answer pending */
	bool may_defer;               /* a handler slot's context (not a deferred answer's) */
	struct sg_deferred *deferred; /* made by sg_defer in this call, or NULL */
	const char *reg_name;         /* the registration's syscall (static) */
	/* The snapshot's fields, copied: valid while live. */
	uint64_t seq, notif_id, instruction_pointer;
	int lane; /* the fast-channel lane it came on (answers go back there) */
	uint64_t args[PROTO_ARGS];
	long syscall_nr;
	pid_t pid;
	uint32_t arch;
	uint32_t flags;
	char *paths[PROTO_ARGS]; /* pre-read paths, NUL-terminated, or NULL */
};

/* One handler thread and the context it lends the handler calls it makes. */
struct handler_slot {
	sg_worker *worker;
	bool pumping; /* fast: this thread holds the pump role */
	pthread_t thread;
	pthread_mutex_t ctx_lock;
	struct sg_ctx ctx;
};

/* A memory call waiting for the MemReply with request_id: the receiving
 * thread (or the end of the run) completes it. Lives on the waiting
 * thread's stack, linked in sg_worker.mem_waits until done. */
struct mem_wait {
	uint64_t request_id;
	bool done;
	Sysgate__V1__Envelope *reply; /* done with a MemReply (the waiter frees it) */
	int error;                    /* done without one: why (-ECONNRESET ...) */
	struct mem_wait *next;
};

/* Handler threads when SYSGATE_WORKER_THREADS is unset or invalid, and the
 * most it may ask for. */
#define WORKER_THREADS_DEFAULT 4u
#define WORKER_THREADS_MAX 64u

struct sg_worker {
	char *name;
	char *url; /* SYSGATE_WORKER_URL, or NULL */
	uint8_t token[PROTO_TOKEN_SIZE];
	int token_error;         /* 0, or why SYSGATE_WORKER_TOKEN is unusable */
	unsigned threads_wanted; /* SYSGATE_WORKER_THREADS, or the default */
	struct registration *regs;
	size_t n_regs, cap_regs;
	bool started;               /* sg_worker_run was called: no more registrations */
	sg_injected_fn on_injected; /* sg_worker_on_injected, or NULL */
	void *on_injected_ud;
	sg_thread_wrap_fn thread_wrap; /* sg_worker_set_thread_wrap, or NULL */
	void *thread_wrap_ud;

	struct link link;

	/* The fast channel (fast.c): offered at spawn (SYSGATE_WORKER_FAST),
	 * used once Welcome.fast_channel agreed. One handler thread at a time
	 * holds the pump role and consumes rx; it runs the Snapshot it finds
	 * itself, after releasing the role. Every thread that waits (an idle
	 * one, a memory call) sleeps on rx's futex word, which anything they
	 * wait for bumps (worker_kick). */
	int fast_shm_fd, fast_wake_fd;
	struct fastchan_shm *shm;
	bool fast;
	_Atomic bool pumping;
	pthread_mutex_t fast_tx_lock;               /* senders take turns on tx */
	struct fastchan_end fast_tx[2], fast_rx[2]; /* [lane]: the router's, the receiver's */
	uint8_t *fast_buf;                          /* the pump role's */
	uint64_t fast_spin_ns;                      /* SYSGATE_WORKER_SPIN_NS */
	cpu_set_t fast_cpus;                        /* where the worker may run (at start) */

	uint32_t max_inflight, max_mem_request, max_inject; /* Welcome; fixed after */

	/* The handler threads (n_started of them running). The slots stay
	 * until sg_worker_free(): contexts kept by handlers point into them. */
	struct handler_slot *slots;
	size_t n_slots, n_started;

	/* lock guards everything below. */
	pthread_mutex_t lock;
	pthread_cond_t work_cond;      /* a snapshot queued, or the run ended */
	pthread_cond_t mem_cond;       /* a mem_wait done */
	pthread_cond_t link_cond;      /* link_users dropped to 0 */
	unsigned refs;                 /* the owner's (until sg_worker_free), one per sg_deferred */
	unsigned link_users;           /* threads sending on the link (worker_link_leave) */
	Sysgate__V1__Envelope **queue; /* Snapshots no thread took yet, oldest first */
	uint8_t *queue_lane;           /* ... and the lane each came on */
	size_t queue_len, queue_cap;
	uint32_t outstanding; /* snapshots queued, in a handler call or deferred */
	struct mem_wait *mem_waits;
	uint64_t last_request_id;
	bool welcomed; /* the handshake succeeded: records may be sent */
	/* The run ended: result is what sg_worker_run() returns (0 for the
	 * supervisor's orderly end), result_err its message. */
	bool ended;
	int result;
	struct sg_err result_err;
};

/* Counts Snapshot s against max_inflight after checking it (its
 * registration exists, room): -EPROTO with the reason otherwise. */
int worker_admit(sg_worker *w, const Sysgate__V1__Snapshot *s, struct sg_err *err);
/* Handles a MemReply (taking *m): hands it to its waiter; -EPROTO if none.
 * *to_other: it was not mine's. */
int worker_route_reply(sg_worker *w, Sysgate__V1__Envelope **m, const struct mem_wait *mine,
		       struct sg_err *err);
/* Queues an admitted Snapshot for whichever handler thread is free. */
int worker_queue_snapshot(sg_worker *w, Sysgate__V1__Envelope **m, int lane, struct sg_err *err);

/* Ends the run with result (0: orderly, by the supervisor) unless it ended
 * already: wakes every memory call waiting (they fail with -ECONNRESET, or
 * result for a failure of ours) and the idle handler threads, stops the
 * receiver, and for -EPROTO tells the supervisor why. */
void worker_end(sg_worker *w, int result, const struct sg_err *err);

/* A thread sg_worker_run() may not join (a deferred answer's, an
 * emitter's) counts itself in link_users, under the lock and only while the
 * run has not ended, before it sends; then calls this. sg_worker_run()
 * returns only once link_users is 0, so sg_worker_free() closes an idle
 * link. */
void worker_link_leave(sg_worker *w);

/* Gives wait a new request_id and links it for the MemReply, and enters the
 * link for the request (worker_link_leave once sent); the run's error
 * (-ECONNRESET ...) once it ended. */
int worker_mem_register(sg_worker *w, struct mem_wait *wait);
/* Unlinks wait, whose request was not sent. */
void worker_mem_cancel(sg_worker *w, struct mem_wait *wait);
/* Waits until wait is done: 0 with wait->reply set, or wait->error. */
int worker_mem_wait(sg_worker *w, struct mem_wait *wait);

/* ---- fast.c ---------------------------------------------------------- */

/* Parses SYSGATE_WORKER_FAST (at sg_worker_new). */
void fast_init(sg_worker *w);
/* Maps the channel for the Hello: whether it can be offered. */
bool fast_offer(sg_worker *w);
void fast_free(sg_worker *w);
/* Sends m over lane of the fast channel when agreed and it fits, else the
 * link. */
int worker_send(sg_worker *w, const Sysgate__V1__Envelope *m, int lane, struct sg_err *err);
/* Wakes every thread sleeping on the channel (fast only): what it waits
 * for may have happened. */
void worker_kick(sg_worker *w);
/* A handler thread's loop (fast only). */
void *fast_thread(void *slot);
/* Tries to take the pump role for slot (before sending an Action). */
void fast_try_role(sg_worker *w, struct handler_slot *slot);
/* A memory call waiting for wait (fast only): pumps when nobody else does. */
int fast_mem_wait(sg_worker *w, struct mem_wait *wait);
/* Calls the handler of snapshot s with the context c and sends its answer. */
void worker_dispatch(sg_worker *w, struct handler_slot *slot, const Sysgate__V1__Snapshot *s,
		     int lane);
/* The next queued Snapshot and its lane, or NULL (never waits). */
Sysgate__V1__Envelope *worker_try_snapshot(sg_worker *w, int *lane);

/* ---- ctx.c ----------------------------------------------------------- */

/* Sets up c, stale until ctx_begin() (or ctx_defer()), guarded by lock. */
void ctx_init(struct sg_ctx *c, sg_worker *w, pthread_mutex_t *lock);
/* Makes c the context of snapshot s for one handler call of the
 * registration for reg_name (static); -ENOMEM. */
int ctx_begin(struct sg_ctx *c, const Sysgate__V1__Snapshot *s, const char *reg_name, int lane);
/* Makes d->ctx (set up with ctx_init) a live copy of the handler call's
 * context c, and d the answer of that call. -EINVAL c is no handler call's
 * context, -ESTALE its call is over, -EALREADY it deferred already, -ENOMEM. */
int ctx_defer(struct sg_ctx *c, struct sg_deferred *d);
/* Ends the call (or the deferred answer): c reads as stale from now on, and
 * any memory request made through it was sent before this returns (so
 * before the Action). The answer the call deferred, or NULL. */
struct sg_deferred *ctx_end(struct sg_ctx *c);

/* ---- action.c -------------------------------------------------------- */

enum action_kind {
	ACTION_NONE = 0,
	ACTION_CONTINUE,
	ACTION_ERRNO,
	ACTION_RETURN,
	ACTION_KILL,
	ACTION_INJECT,
};

struct sg_action {
	enum action_kind kind;
	unsigned n_set;      /* setters called; exactly 1 is valid */
	const char *invalid; /* why the last setter's argument is invalid, or NULL */
	int32_t errnum;
	int64_t value;
	int32_t signal;
	uint8_t *data; /* inject: malloc'd copy */
	size_t len;
	uint32_t flags;
	uint64_t cookie;     /* inject with SG_INJECT_TRACK */
	uint32_t max_inject; /* the supervisor's cap (Welcome), never 0 */
};

void action_init(sg_action *a, uint32_t max_inject);
void action_release(sg_action *a);

/* The handler_result of a cancelled deferred answer (sg_deferred_cancel). */
#define ACTION_CANCELLED INT32_MIN

/* The Action message for seq built from a and the handler's result, in
 * storage owned by the caller (struct action_msg); the failure reason names
 * syscall. */
struct action_msg {
	Sysgate__V1__Envelope env;
	Sysgate__V1__Action action;
	Sysgate__V1__Action__Continue do_continue;
	Sysgate__V1__Action__Errno do_errno;
	Sysgate__V1__Action__Return do_return;
	Sysgate__V1__Action__Kill do_kill;
	Sysgate__V1__Action__InjectBytes do_inject;
	Sysgate__V1__Action__Failed do_fail;
	char reason[160];
};

void action_to_msg(const sg_action *a, int handler_result, uint64_t seq, const char *syscall,
		   struct action_msg *out);

/* ---- Deferred answers (worker.c) ------------------------------------- */

/* An answer a handler deferred (sg_defer): a copy of its context, live
 * until completed, and the action to send. Holds a reference on worker.
 * The handler call that made it may still run when it is completed: then
 * that call's thread sends the answer once the handler returned, so memory
 * requests of the call still leave before the Action. */
struct sg_deferred {
	sg_worker *worker;
	pthread_mutex_t ctx_lock;
	struct sg_ctx ctx;
	sg_action action;
	/* Guarded by the worker's lock. */
	bool call_returned; /* the handler call that deferred returned */
	bool completed;     /* sg_complete or sg_deferred_cancel was called */
	bool cancelled;     /* ... sg_deferred_cancel */
};

#endif
