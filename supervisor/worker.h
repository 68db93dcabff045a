/* Handler workers: one process per --worker (and replica), in three
 * files: the process (worker.c: start, output, end), its runtime directory
 * (worker_dir.c) and its transport (worker_link.c: an nng pair1 link the
 * supervisor listens on, and a fast channel beside it). The router
 * (router.h) owns every struct worker and is the only thread that touches
 * one after start, except the receiver's lane (lane.h says who uses it
 * when); this module holds the mechanics, the router decides.
 *
 * A worker is started by fork + worker_sandbox_apply + execveat of an fd
 * opened by the supervisor: its binary need not be reachable by the
 * unprivileged user it runs as, only executable. Its stdin is /dev/null;
 * its stdout and stderr are a pipe the router forwards to sysgate's
 * stderr, keeping the tail for failure messages. */
#ifndef SYSGATE_WORKER_H
#define SYSGATE_WORKER_H

#include <limits.h>
#include <nng/nng.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fastchan.h"
#include "lane.h"
#include "protocol.h"
#include "registry.h"
#include "worker_sandbox.h"

#define WORKER_MAX 32           /* worker processes, replicas included */
#define WORKER_MAX_INFLIGHT 64u /* notifications the router hands one worker */
/* ... plus the one the receiver may hand it on its lane (lane.h). */
#define WORKER_HELD_MAX (WORKER_MAX_INFLIGHT + 1u)
#define WORKER_TAIL 2048u       /* bytes of output kept for messages */

enum worker_state {
	WORKER_STARTING, /* spawned, no accepted Hello yet */
	WORKER_READY,    /* serving */
	WORKER_DOWN,     /* failed; restarts at restart_at */
	WORKER_DEAD,     /* out of restarts, or stopped */
};

struct pending; /* router_impl.h */

struct worker {
	unsigned index;
	const char *spec; /* the --worker string (label for replicas), for messages */
	char *label;      /* "spec [replica N]" for N > 1 */
	/* --replicas: workers[first->index .. + n_replicas) run the same
	 * --worker and share its chain hops. */
	struct worker *first;
	unsigned replica, n_replicas;
	char **argv;      /* spec split on blanks */
	char name[PROTO_MAX_NAME + 1]; /* for the audit log: Hello's, else argv[0]'s */
	int exe_fd;                    /* the binary, opened by the supervisor */
	/* It starts with "#!": exe_fd must survive the exec, the kernel hands
	 * the interpreter /dev/fd/N. */
	bool script;
	struct worker_sandbox sandbox;

	/* link */
	char *dir, *url;
	nng_socket sock;
	bool sock_open;
	int recv_fd;                 /* readable when a message waits */
	uint32_t pipe_id;            /* the accepted peer, 0: none */
	/* The only process that may connect: the current start's pid, set
	 * before the process runs (worker_spawn), 0 between starts. nng's
	 * pipe callback closes every other peer before the pair socket takes
	 * it, so a sibling that dials first cannot take the link. */
	_Atomic pid_t link_pid;
	/* Peers closed for that, this run. */
	_Atomic uint32_t refused;
	_Atomic uint32_t lost_pipe;  /* set by nng's pipe callback */
	int kick_fd;                 /* the router's eventfd, written on loss */

	/* The fast channel of this start (fastchan.h), when the transport is
	 * fast: made at spawn, used once the handshake agreed on it. */
	struct fastchan_shm *shm;
	int wake_fd;                /* eventfd the worker writes to wake us */
	bool fast;                  /* agreed: hot-path messages travel here */
	bool fast_broken;           /* it wrote an impossible ring position */
	struct fastchan_end tx, rx; /* the router's lane: to_worker, to_sup */
	struct lane lane;           /* the receiver's lane (lane.h) */

	/* process */
	pid_t pid;
	int pidfd, out_fd;
	uint8_t token[PROTO_TOKEN_SIZE];
	unsigned generation; /* 0 for the first start, n for the n-th restart */
	enum worker_state state;
	uint64_t deadline_ns; /* STARTING: Hello due; DOWN: restart time */
	uint64_t link_lost_ns; /* link gone, process not (yet): failed at this time */
	uint64_t last_heard_ns; /* when its last message arrived */
	/* Seqs that timed out while it was alive and that it has not answered
	 * yet: they still count against its in-flight bound (the SDK counts
	 * them until it answers), and their late answers are ignored. */
	uint64_t expired[WORKER_HELD_MAX];
	bool expired_lane[WORKER_HELD_MAX]; /* it came on the receiver's lane */
	size_t n_expired;

	struct registration *regs; /* after the first accepted Hello */
	size_t n_regs;

	struct pending *inflight[WORKER_HELD_MAX];
	size_t n_inflight;

	char tail[WORKER_TAIL]; /* ring of recent output */
	size_t tail_len, tail_pos;
};

/* What every worker of a run shares. */
struct worker_env {
	const char *rundir;        /* private, 0700, owned by the workers' uid */
	const char *user;          /* --worker-user, when root */
	/* Without it, as root: the k-th --worker's uid and gid are uid_base +
	 * k, its own (0: unprivileged sysgate, all workers share its uid). */
	unsigned long uid_base;
	const char *const *read;   /* extra read paths for every worker */
	size_t n_read;
	sigset_t sigmask;          /* the mask sysgate was started with */
	int kick_fd;               /* eventfd the pipe callback writes to */
	bool fast;                 /* --worker-transport fast */
	uint64_t spin_ns;          /* SYSGATE_WORKER_SPIN_NS for the SDK */
};

/* --- the process (worker.c) --- */

/* Splits spec, finds the binary, prepares the sandbox, creates the link's
 * directory and starts listening. Messages name the worker. */
int worker_init(struct worker *w, unsigned index, const char *spec, unsigned spec_index,
		unsigned replica, const struct worker_env *env, struct sg_err *err);

/* Starts (or restarts) the process: a fresh token, state STARTING. */
int worker_spawn(struct worker *w, const struct worker_env *env, uint64_t hello_deadline_ns,
		 struct sg_err *err);

/* SIGKILL to the process and its process group (what it forked), if it is
 * still ours to signal (not reaped). */
void worker_kill(struct worker *w);

/* Reaps the process if it exited: 1 and a wait status, 0 still running,
 * -errno. Closes the pidfd once reaped. */
int worker_reap(struct worker *w, int *status);

/* Forwards what the process wrote to sysgate's stderr and keeps the tail.
 * Returns false at end of output (the pipe is then closed). */
bool worker_pump_output(struct worker *w);

/* The kept tail as one line ("" if none), for a failure message. */
void worker_tail(const struct worker *w, char *buf, size_t size);

/* "exited with status 3", "killed by SIGSEGV". */
void worker_describe_status(int status, char *buf, size_t size);

/* Closes the link and frees everything; the process must be reaped. */
void worker_free(struct worker *w);

/* --- the runtime directory (worker_dir.c) --- */

/* The run's private directory, and the paths every worker may read. */
struct worker_rundir {
	char path[PATH_MAX];
	char *extra_read[2];     /* sysgate's own directory and its ../lib */
	const char **read_paths; /* extra_read, then --worker-read */
};

/* Creates d->path, 0700: $XDG_RUNTIME_DIR for an unprivileged user, else
 * $TMPDIR, else /tmp. */
int worker_rundir_create(struct worker_rundir *d, struct sg_err *err);

/* Every worker may read sysgate's own paths and each --worker-read (which
 * must exist): into env->read and env->n_read, pointing into d. */
int worker_rundir_read_paths(struct worker_rundir *d, struct worker_env *env,
			     const char *const *worker_read, size_t n_worker_read,
			     struct sg_err *err);

/* Lets the workers reach d->path: handed to their one user (--worker-user),
 * or, each with its own uid, root's and 0711 (each worker's directory below
 * is its own, 0700). */
int worker_rundir_share(struct worker_rundir *d, const struct worker_env *env,
			const struct worker_sandbox *first, struct sg_err *err);

/* Removes d->path (empty by then: worker_free removed each worker's). */
void worker_rundir_remove(struct worker_rundir *d);
void worker_rundir_free(struct worker_rundir *d);

/* w's own directory below env->rundir, for its link's socket (w->dir,
 * w->url), handed to its user. */
int worker_dir_create(struct worker *w, const struct worker_env *env, struct sg_err *err);
void worker_dir_remove(struct worker *w);

/* --- the transport (worker_link.c) --- */

/* Listens on w->url, private to the worker's user. */
int worker_link_listen(struct worker *w, struct sg_err *err);

/* The fast channel of one start: a fresh shared memory (its fd in
 * *shm_fd, for the worker) and eventfd, and its rings. */
int worker_fast_create(struct worker *w, int *shm_fd, struct sg_err *err);

/* Unmaps and closes the fast channel (a new start makes a new one), once
 * the receiver no longer looks at its lane. */
void worker_fast_release(struct worker *w);

/* Puts env on tx, one of w's rings to the worker, and wakes the worker if
 * it sleeps: 0, or -EMSGSIZE / -EAGAIN (too big, full: the caller may use
 * nng), -EPROTO (the worker broke the ring). The receiver's lane uses it
 * too: it touches nothing of w but the channel's shared page. */
int worker_put_fast(struct worker *w, struct fastchan_end *tx, const Sysgate__V1__Envelope *env);

/* Sends env to w: Snapshot, MemReply and Injected on the fast channel when
 * agreed (a MemReply on the lane its request came on, lane.replying), the
 * rest and what does not fit over nng, never blocking. -errno and a
 * message (to follow the worker's name) if it cannot. */
int worker_send(struct worker *w, const Sysgate__V1__Envelope *env, struct sg_err *err);

#endif
