/* Internals of the C SDK (sysgate.h): the worker, its transports to the
 * supervisor, the notification context and the action a handler fills in.
 *
 * Files in layers: each calls only into the files listed before it, so
 * none calls back into one that calls it.
 *
 *   syscall.c    syscall names and numbers;
 *   action.c     the action setters and the Action message they become;
 *   link.c       the nng pair1 socket: dial, send (from any thread) and
 *                receive envelopes, noticing when the supervisor's end goes
 *                away;
 *   run.c        the run's shared state under the worker's lock: the
 *                worker's lifetime (references), admission and the queue of
 *                Snapshots, the memory calls waiting for their MemReply, the
 *                threads on the link, the end of the run;
 *   transport.c  the one transport layer over nng (link.c) and the fast
 *                channel's rings (fastchan.h): setting the rings up, sending
 *                an envelope, waking the threads that sleep on the rings,
 *                handling one envelope from either, ending the run;
 *   pump.c       the ring pump: the handler threads take turns consuming
 *                the rings (fast channel only);
 *   ctx.c        the context accessors and the memory requests;
 *   deferred.c   deferred answers (sg_defer, sg_complete);
 *   handler.c    the handler threads: each takes the next Snapshot, calls
 *                its handler and sends the Action it answered;
 *   worker.c     registrations, the handshake, and the run: sg_worker_run's
 *                thread receives from the link.
 *
 * Threads: the thread that called sg_worker_run() receives everything the
 * supervisor sends on the link. Each Snapshot goes to a pool of handler
 * threads (SYSGATE_WORKER_THREADS, at most Welcome.max_inflight) through
 * the queue, each MemReply to the memory call waiting for its request_id,
 * so one handler can wait for memory while another runs, and the
 * sg_injected_fn is called for each Injected on the thread that received
 * it, before it receives the next message (so before any later Snapshot is
 * queued). With the fast channel the handler threads also receive, from
 * the rings (pump.c). The run ends (Goodbye, Error, lost link, a protocol
 * error) by waking every waiting memory call and idle handler thread;
 * sg_worker_run() returns once the pool is joined and no other thread (a
 * deferred answer's, an emitter) is still on the link.
 *
 * Lifetime: a deferred answer may outlive the run and sg_worker_free(), so
 * it holds a reference on the worker: sg_worker_free() releases everything
 * but the struct itself (its lock, ended flag and counters), which goes
 * with the last reference. After the run nothing touches the link.
 *
 * Locks, always taken in this order: a context's lock (struct
 * handler_slot's or struct sg_deferred's), the worker's lock, the rings'
 * fast_tx_lock or the link's send_lock, the link's lock.
 * No thread holds one while it waits for a message. */
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

/* ---- action.c -------------------------------------------------------- */

/* Which setter a handler called (the SDK's, not the supervisor's
 * enum action_kind of supervisor/chain.h). */
enum sdk_action_kind {
	SDK_ACTION_NONE = 0,
	SDK_ACTION_CONTINUE,
	SDK_ACTION_ERRNO,
	SDK_ACTION_RETURN,
	SDK_ACTION_KILL,
	SDK_ACTION_INJECT,
};

struct sg_action {
	enum sdk_action_kind kind;
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
#define SDK_ACTION_CANCELLED INT32_MIN

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

/* ---- The worker ------------------------------------------------------ */

/* A handler registered with sg_worker_on (the SDK's, not the supervisor's
 * struct registration of supervisor/registry.h). */
struct sdk_registration {
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

/* A memory call waiting for the MemReply with request_id: whichever
 * thread receives that reply (sg_worker_run's, or the pump), or the end of
 * the run, completes it. Lives on the waiting thread's stack, linked in
 * sg_worker.mem_waits until done. */
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
	struct sdk_registration *regs;
	size_t n_regs, cap_regs;
	bool started;               /* sg_worker_run was called: no more registrations */
	sg_injected_fn on_injected; /* sg_worker_on_injected, or NULL */
	void *on_injected_ud;
	sg_thread_wrap_fn thread_wrap; /* sg_worker_set_thread_wrap, or NULL */
	void *thread_wrap_ud;

	struct link link;

	/* The fast channel (transport.c, pump.c): offered at spawn
	 * (SYSGATE_WORKER_FAST), used once Welcome.fast_channel agreed. One
	 * handler thread at a time holds the pump role and consumes fast_rx;
	 * it runs the Snapshot it finds itself, after releasing the role.
	 * Every thread that waits (an idle one, a memory call) sleeps on the
	 * futex word shm->worker_wake_seq, which anything they wait for bumps
	 * (transport_kick). */
	int fast_shm_fd, fast_wake_fd;
	struct fastchan_shm *shm;
	bool fast;
	_Atomic bool pumping;
	pthread_mutex_t fast_tx_lock;               /* senders take turns on fast_tx */
	struct fastchan_end fast_tx[2], fast_rx[2]; /* [lane]: the router's, the receiver's */
	uint8_t *fast_buf;                          /* the pump role's */
	uint64_t fast_spin_ns;                      /* SYSGATE_WORKER_SPIN_NS */
	cpu_set_t fast_cpus;                        /* where the worker may run (at start) */

	uint32_t max_inflight, max_mem_request, max_inject; /* Welcome; fixed after */

	/* The handler threads (n_started of them running). The slots stay
	 * until sg_worker_free(): contexts kept by handlers point into them. */
	struct handler_slot *slots;
	size_t n_slots, n_started;

	/* lock guards everything below (run.c). */
	pthread_mutex_t lock;
	pthread_cond_t work_cond;      /* a snapshot queued, or the run ended */
	pthread_cond_t mem_cond;       /* a mem_wait done */
	pthread_cond_t link_cond;      /* link_users dropped to 0 */
	unsigned refs;                 /* the owner's (until sg_worker_free), one per sg_deferred */
	unsigned link_users;           /* threads outside the pool on the link (run_link_leave) */
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

/* ---- run.c ----------------------------------------------------------- */

/* The lock, conditions and the owner's reference of a new worker. */
void run_init(sg_worker *w);
/* References on the worker (run_init holds the owner's): the last
 * run_unref frees what sg_worker_free() left, the struct itself. */
void run_ref(sg_worker *w);
void run_unref(sg_worker *w);

/* Whether the run ended (without the lock: a hint, final once true). */
bool run_ended(sg_worker *w);

/* Counts Snapshot s against max_inflight after checking it (its
 * registration exists, room): -EPROTO with the reason otherwise. */
int run_admit(sg_worker *w, const Sysgate__V1__Snapshot *s, struct sg_err *err);
/* Queues the admitted Snapshot in *m (taking it), which came on lane, for
 * whichever handler thread is free; -ENOMEM (it is no longer counted). Wakes
 * a thread waiting in run_next_snapshot, not those on the rings. */
int run_queue(sg_worker *w, Sysgate__V1__Envelope **m, int lane, struct sg_err *err);
/* The oldest queued Snapshot and its lane; if none, NULL at once (wait
 * false) or once one is queued (wait true). NULL once the run ended. */
Sysgate__V1__Envelope *run_next_snapshot(sg_worker *w, int *lane, bool wait);
/* Whether Snapshots are queued (without the lock: a hint). */
bool run_queued(sg_worker *w);
/* A handler call (or a deferred answer) is over: it no longer counts
 * against max_inflight. Done before its Action is sent, so the
 * supervisor's next Snapshot finds room. Whether the run goes on (an answer
 * is still wanted); then, with enter_link (a thread outside the pool), the
 * caller is counted on the link (run_link_leave once sent). */
bool run_settle(sg_worker *w, bool enter_link);
/* Frees the Snapshots nobody took. */
void run_free_queue(sg_worker *w);

/* Gives wait a new request_id and links it for the MemReply, and enters the
 * link for the request (run_link_leave once sent); the run's error
 * (-ECONNRESET ...) once it ended. */
int run_mem_register(sg_worker *w, struct mem_wait *wait);
/* Unlinks wait, whose request was not sent. */
void run_mem_cancel(sg_worker *w, struct mem_wait *wait);
/* Hands the MemReply in *m (taking it) to the memory call waiting for its
 * request_id: 0 when that is mine (the caller's own), 1 another's (which
 * may sleep on the rings: wake it), -EPROTO when none waits. */
int run_mem_reply(sg_worker *w, Sysgate__V1__Envelope **m, const struct mem_wait *mine,
		  struct sg_err *err);
/* Waits until wait is done, without pumping (nng only): 0 with
 * wait->reply set, or wait->error. */
int run_mem_wait(sg_worker *w, struct mem_wait *wait);

/* A thread sg_worker_run() may not join (a deferred answer's, an
 * emitter's) enters the link before it sends: true (counted in link_users)
 * if the handshake succeeded and the run has not ended. sg_worker_run()
 * returns only once link_users is 0, so sg_worker_free() closes an idle
 * link. */
bool run_link_enter(sg_worker *w);
/* Leaves the link after run_link_enter or run_mem_register (or a true
 * run_end). */
void run_link_leave(sg_worker *w);
/* Waits until no thread outside the pool uses the link (after the end of
 * the run: none enters any more). */
void run_wait_link_idle(sg_worker *w);

/* Marks the run ended with result (0: orderly, by the supervisor) unless it
 * ended already: completes every memory call waiting (with -ECONNRESET, or
 * result for a failure of ours) and wakes them and the idle handler
 * threads. True if this call ended it: the caller then holds the link
 * (run_link_leave) to finish the end (transport_end). */
bool run_end(sg_worker *w, int result, const struct sg_err *err);

/* ---- transport.c ----------------------------------------------------- */

/* Parses SYSGATE_WORKER_FAST and SYSGATE_WORKER_SPIN_NS (at sg_worker_new). */
void transport_init(sg_worker *w);
/* Maps the rings for the Hello: whether they can be offered. */
bool transport_offer(sg_worker *w);
void transport_free(sg_worker *w);

/* Sends m on lane of the rings when agreed and it fits, else on the link.
 * Safe from any thread. */
int transport_send(sg_worker *w, const Sysgate__V1__Envelope *m, int lane, struct sg_err *err);
/* Wakes every thread sleeping on the rings (fast only): what it waits for
 * may have happened. */
void transport_kick(sg_worker *w);

/* What transport_handle did with an envelope. */
enum transport_handled {
	TRANSPORT_DONE = 0,     /* handled */
	TRANSPORT_SNAPSHOT = 1, /* an admitted Snapshot, left in *m for the caller */
	TRANSPORT_GOODBYE = 2,  /* the orderly end of the run */
};
/* Handles one envelope from the supervisor, validated, from the link or
 * (on_rings) the rings: a Snapshot is admitted (run_admit), a MemReply goes
 * to its memory call (mine: the caller's own, not to be woken), an
 * Injected to the sg_injected_fn, here. The lifecycle (Goodbye, Error, a
 * second Welcome) comes on the link only. A negative errno ends the run. */
int transport_handle(sg_worker *w, Sysgate__V1__Envelope **m, bool on_rings,
		     const struct mem_wait *mine, struct sg_err *err);
/* run_queue, then wakes the threads sleeping on the rings. */
int transport_queue(sg_worker *w, Sysgate__V1__Envelope **m, int lane, struct sg_err *err);

/* Ends the run with result (0: orderly, by the supervisor) unless it ended
 * already (run_end): wakes every thread waiting on either transport, stops
 * the link's receiver, and for -EPROTO tells the supervisor why. */
void transport_end(sg_worker *w, int result, const struct sg_err *err);

/* ---- pump.c ---------------------------------------------------------- */

/* Tries to take the pump role for slot (before sending an Action). */
void pump_try_role(sg_worker *w, struct handler_slot *slot);
/* Releases the role slot holds. */
void pump_release_role(sg_worker *w, struct handler_slot *slot);
/* A handler thread's next Snapshot and its lane (fast only): a queued one,
 * or the first one it finds pumping when nobody else does; NULL when it
 * found none (then it waited, for queued work, the role or the end). Never
 * returns holding the role with a Snapshot. */
Sysgate__V1__Envelope *pump_next_snapshot(sg_worker *w, struct handler_slot *slot, int *lane);
/* A memory call waiting for wait (fast only): pumps when nobody else does.
 * 0 with wait->reply set, or wait->error. */
int pump_mem_wait(sg_worker *w, struct mem_wait *wait);

/* ---- ctx.c ----------------------------------------------------------- */

/* Sets up c, stale until ctx_begin() (or ctx_defer()), guarded by lock. */
void ctx_init(struct sg_ctx *c, sg_worker *w, pthread_mutex_t *lock);
/* Makes c the context of snapshot s, which came on lane, for one handler
 * call of the registration for reg_name (static); -ENOMEM. */
int ctx_begin(struct sg_ctx *c, const Sysgate__V1__Snapshot *s, const char *reg_name, int lane);
/* Makes d->ctx (set up with ctx_init) a live copy of the handler call's
 * context c, and d the answer of that call. -EINVAL c is no handler call's
 * context, -ESTALE its call is over, -EALREADY it deferred already, -ENOMEM. */
int ctx_defer(struct sg_ctx *c, struct sg_deferred *d);
/* Ends the call (or the deferred answer): c reads as stale from now on, and
 * any memory request made through it was sent before this returns (so
 * before the Action). The answer the call deferred, or NULL. */
struct sg_deferred *ctx_end(struct sg_ctx *c);

/* ---- deferred.c ------------------------------------------------------ */

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

/* The handler call that made d returned: d's answer may leave once it is
 * completed, and leaves now if it was. */
void deferred_call_returned(struct sg_deferred *d);

/* ---- handler.c ------------------------------------------------------- */

/* Starts the handler threads: as many as asked for, at most max_inflight
 * (fewer if the system refuses more, but at least one). */
int handler_start(sg_worker *w, struct sg_err *err);
/* Calls the handler of snapshot s, which came on lane, with slot's context
 * and sends its answer. A failure of ours ends the run. */
void handler_dispatch(sg_worker *w, struct handler_slot *slot, const Sysgate__V1__Snapshot *s,
		      int lane);
/* Joins them (the run ended). */
void handler_join(sg_worker *w);
/* Frees the slots, their contexts stale (at sg_worker_free). */
void handler_free(sg_worker *w);

#endif
