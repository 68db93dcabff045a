/* Internals of the C SDK (sysgate.h): the worker, its link to the
 * supervisor, the notification context and the action a handler fills in.
 *
 *   link.c    the nng pair1 socket: dial, send and receive envelopes,
 *             noticing when the supervisor's end goes away;
 *   worker.c  registrations, handshake, the run loop, handler dispatch;
 *   ctx.c     the context accessors and the memory requests;
 *   action.c  the action setters and the Action message they become.
 *
 * One handler runs at a time, on the thread that called sg_worker_run(). */
#ifndef SYSGATE_SDK_H
#define SYSGATE_SDK_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sysgate.h>

#include "protocol.h"

/* ---- link.c ---------------------------------------------------------- */

/* The worker's end of its link. lock guards lost and closing, and orders
 * starting a receive against the pipe callback that cancels it. */
struct link {
	nng_socket socket;
	nng_aio *rx, *tx;
	bool open;
	pthread_mutex_t lock;
	bool lost;    /* the supervisor's end went away */
	bool closing; /* link_close() started: the callback does nothing */
};

int link_init(struct link *l, struct sg_err *err);
/* Dials url (blocking until connected or failed). */
int link_dial(struct link *l, const char *url, struct sg_err *err);
/* Encodes and sends m. -ECONNRESET once the link is lost. */
int link_send(struct link *l, const Sysgate__V1__Envelope *m, struct sg_err *err);
/* Receives, decodes and validates (proto_validate_from_supervisor) one
 * envelope into *out. -ECONNRESET when the link is lost, -EPROTO for
 * malformed input (the codec's reason in err). */
int link_recv(struct link *l, Sysgate__V1__Envelope **out, struct sg_err *err);
void link_close(struct link *l);

/* ---- worker.c -------------------------------------------------------- */

struct registration {
	long nr;
	const char *name; /* static (sg_syscall_name) */
	sg_handler_fn fn;
	void *ud;
	enum sg_exception on_exception;
};

/* Messages that arrived while a handler waited for a MemReply, handled
 * after it returns. At most max_inflight snapshots plus a few lifecycle
 * messages can be legitimately pending. */
#define WORKER_BACKLOG_EXTRA 4u

/* The context of the one handler call in progress. Lives in the worker, so
 * a context kept past its call is still memory the SDK owns: it reads as
 * stale (live false) rather than freed. */
struct sg_ctx {
	sg_worker *worker;
	const Sysgate__V1__Snapshot *snapshot; /* NULL outside the call */
	bool live;
	char *paths[PROTO_ARGS]; /* pre-read paths, NUL-terminated, or NULL */
};

struct sg_worker {
	char *name;
	char *url; /* SYSGATE_WORKER_URL, or NULL */
	uint8_t token[PROTO_TOKEN_SIZE];
	int token_error; /* 0, or why SYSGATE_WORKER_TOKEN is unusable */
	struct registration *regs;
	size_t n_regs, cap_regs;
	bool started; /* sg_worker_run was called: no more registrations */

	struct link link;
	uint32_t max_inflight, max_mem_request, max_inject;

	Sysgate__V1__Envelope **backlog; /* FIFO, oldest first */
	size_t backlog_len, backlog_cap;

	struct sg_ctx ctx;
	uint64_t last_request_id;
	/* Set while a handler runs when the run must end after it: a protocol
	 * error (-EPROTO ...) or the end of the link (0 once reported). */
	int fatal;
	bool ended;
	struct sg_err fatal_err;
};

/* Queues m (taking it) to be handled after the current handler; -EPROTO
 * if the supervisor sent more than it may. */
int worker_backlog_push(sg_worker *w, Sysgate__V1__Envelope *m, struct sg_err *err);

/* ---- ctx.c ----------------------------------------------------------- */

/* Makes w->ctx the context of snapshot s for one handler call; -ENOMEM. */
int ctx_begin(sg_worker *w, const Sysgate__V1__Snapshot *s);
/* Ends the call: the context reads as stale from now on. */
void ctx_end(sg_worker *w);

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
	uint32_t max_inject; /* the supervisor's cap (Welcome), never 0 */
};

void action_init(sg_action *a, uint32_t max_inject);
void action_release(sg_action *a);

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

#endif
