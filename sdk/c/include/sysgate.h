/* sysgate handler SDK (C). See docs/sdk-c.md.
 *
 * A worker registers (syscall, handler, exception policy) triples, then
 * serves the notifications the supervisor hands it until the run ends:
 *
 *	static int deny(const sg_ctx *ctx, sg_action *out, void *ud)
 *	{
 *		sg_errno(out, EACCES);
 *		return 0;
 *	}
 *	sg_worker *w = sg_worker_new("demo");
 *	sg_worker_on(w, "openat", deny, NULL, SG_EXC_DENY_EPERM);
 *	int r = sg_worker_run(w);
 *	sg_worker_free(w);
 *
 * Threads: handlers run on a small pool of threads that sg_worker_run()
 * starts, so a handler may be called for the next notification while an
 * earlier call waits for a memory reply. Several handlers (and several calls
 * of one handler) may therefore run at the same time: whatever they share,
 * ud included, must be thread-safe. The pool has SYSGATE_WORKER_THREADS
 * threads (a decimal 1..64 in the worker's environment; 4 if unset or
 * invalid), never more than the supervisor lets the worker hold at once;
 * SYSGATE_WORKER_THREADS=1 calls one handler at a time, in arrival order.
 * A handler may also answer later, from any thread, while its thread goes
 * on with other notifications: see sg_defer() below.
 *
 * Errors are negative errno values; nothing here exits or aborts. */
#ifndef SYSGATE_H
#define SYSGATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SG_API __attribute__((visibility("default")))

/* A handler worker: its registrations and its link to the supervisor. */
typedef struct sg_worker sg_worker;
/* One notification, as a handler sees it; valid only during the handler
 * call, and usable from any thread during it. Afterwards it reads as stale
 * (0, NULL, -ESTALE) until the worker is freed, or, once its thread calls
 * the next handler, as that call's context: do not keep it (a handler that
 * answers later uses sg_deferred_ctx(), live until the answer is sent). */
typedef struct sg_ctx sg_ctx;
/* The answer a handler fills in with exactly one of the action setters. */
typedef struct sg_action sg_action;
/* An answer a handler promised to give later (sg_defer). */
typedef struct sg_deferred sg_deferred;

/* Exception policy of a registration: what answers a notification when its
 * handler fails, times out, or its worker crashes. */
enum sg_exception {
	SG_EXC_KILL = 0,       /* kill the sandbox (default, fail closed) */
	SG_EXC_DENY_EPERM = 1, /* fail the syscall with EPERM */
	SG_EXC_CONTINUE = 2,   /* let the syscall run (explicit fail-open) */
	SG_EXC_DENY_EIO = 3,   /* fail the syscall with EIO */
};

/* sg_inject_bytes flag: the memfd is not sealed against writes. */
#define SG_INJECT_WRITABLE 1u
/* sg_inject_bytes flag: the new fd in the child is not close-on-exec. */
#define SG_INJECT_NO_CLOEXEC 2u
/* sg_inject_tracked flag (set by it; sg_inject_bytes refuses it): the
 * worker is told the fd number the child got (sg_worker_on_injected). */
#define SG_INJECT_TRACK 4u

/* A handler: return 0 after setting exactly one action on out; non-zero (or
 * no action, or an invalid one) is a failure: the exception policy applies.
 * A handler that called sg_defer() answers later instead (return 0).
 * May run on several threads at once (see the top of this file): ud must
 * be safe to use concurrently, or set SYSGATE_WORKER_THREADS=1. */
typedef int (*sg_handler_fn)(const sg_ctx *ctx, sg_action *out, void *ud);

/* Told that a tracked injection (sg_inject_tracked) was installed: process
 * pid (the trapped thread, as sg_ctx_pid) got fd, for the action that gave
 * cookie. See sg_worker_on_injected. */
typedef void (*sg_injected_fn)(pid_t pid, int fd, uint64_t cookie, void *ud);

/* Runs run(arg) on the calling thread and returns what it returns: see
 * sg_worker_set_thread_wrap. */
typedef void *(*sg_thread_wrap_fn)(void *(*run)(void *), void *arg, void *ud);

/* A new worker that connects using what the supervisor passed in the
 * environment (SYSGATE_WORKER_URL, _TOKEN, _NAME; name is used when
 * SYSGATE_WORKER_NAME is unset) and serves with SYSGATE_WORKER_THREADS
 * handler threads, as read now; NULL if out of memory. */
SG_API sg_worker *sg_worker_new(const char *name);

/* Registers fn for the syscall called name (or given as a decimal number),
 * after the earlier ones. The supervisor refuses (at the handshake) syscalls
 * on its deny lists and exit/exit_group; execve, execveat, clone, clone3,
 * fork and vfork may only be answered with continue, errno or kill (any
 * other action gets the exception policy). Returns 0; -ENOENT unknown
 * syscall, -EINVAL bad argument,
 * -EBUSY once sg_worker_run was called, -ENOSPC too many, -ENOMEM. */
SG_API int sg_worker_on(sg_worker *w, const char *syscall, sg_handler_fn fn, void *ud,
			enum sg_exception on_exc);

/* Same with a syscall number; -EINVAL negative, -ENOENT unknown. */
SG_API int sg_worker_on_nr(sg_worker *w, long nr, sg_handler_fn fn, void *ud,
			   enum sg_exception on_exc);

/* Calls fn(pid, fd, cookie, ud) for every tracked injection of this worker
 * (sg_inject_tracked), once the supervisor installed the fd in the child
 * and before the child's syscall returns it: fn runs on the thread that
 * called sg_worker_run(), which receives everything from the supervisor,
 * and returns before that thread takes the next message. So its effects are
 * in place (and visible: the SDK's lock orders them) before any handler is
 * called for a later notification, such as a read of that fd: the place for
 * per-fd bookkeeping (a virtual filesystem). Handlers of earlier
 * notifications may still run meanwhile, so what fn shares with them must
 * be thread-safe. fn must be quick and must not wait for a handler (while
 * it runs, no memory reply reaches one); it may call sg_worker_emit and
 * sg_complete. No SDK lock is held. An fd whose install failed is never
 * reported (the syscall failed instead); a cookie is whatever the handler
 * chose, reported as given. Without a callback (the default; fn NULL
 * removes it) tracked injections are not reported. One callback per worker:
 * a second call replaces the first. Before sg_worker_run(): 0, -EINVAL w is
 * NULL, -EBUSY once sg_worker_run was called. */
SG_API int sg_worker_on_injected(sg_worker *w, sg_injected_fn fn, void *ud);

/* Makes each handler thread run its whole body as wrap(run, arg, ud), so a
 * language runtime can enter its own context once per thread instead of on
 * every handler call (Go: a call from a thread its runtime did not start
 * costs some microseconds each time; within wrap it costs nanoseconds).
 * wrap must call run(arg) on the calling thread and return its result.
 * NULL (the default) runs the body directly. Before sg_worker_run(): 0,
 * -EINVAL w is NULL, -EBUSY once sg_worker_run was called. */
SG_API int sg_worker_set_thread_wrap(sg_worker *w, sg_thread_wrap_fn wrap, void *ud);

/* Connects, says Hello and serves notifications until the supervisor ends
 * the run with Goodbye: 0, the only orderly end. -ECONNRESET the link
 * closed without a Goodbye (before or after the Welcome), -EPERM not
 * welcomed, -EPROTO malformed or unexpected input, -ECONNABORTED the
 * supervisor's Error, other negative errno on link errors; the cause is
 * printed to stderr on one line. When the run ends, memory calls still waiting fail
 * (-ECONNRESET, or the run's error) and answers not yet sent are dropped,
 * deferred ones included (completing them returns -ENOTCONN); returns once
 * every handler call in progress has returned. Call once. */
SG_API int sg_worker_run(sg_worker *w);

/* Sends one record (JSON text, 1..65536 bytes, not NUL-terminated
 * necessarily) to whoever runs the sandbox: sysgate writes it to its
 * --audit log as {"type":"record","worker":NAME,"data":VALUE}; text that
 * is not JSON ends the worker's run as a protocol violation. For results
 * of handlers (their state lives in this process). Any thread, while
 * sg_worker_run runs: 0, -ENOTCONN otherwise, -EMSGSIZE too long, -EINVAL. */
SG_API int sg_worker_emit(sg_worker *w, const char *json, size_t len);
/* Closes the link and frees the worker (NULL is fine), after
 * sg_worker_run() returned. Answers still deferred may be completed later
 * (-ENOTCONN); the worker's last bytes go with the last of them. */
SG_API void sg_worker_free(sg_worker *w);

/* The kernel's notification id. */
SG_API uint64_t sg_ctx_id(const sg_ctx *c);
/* The pid of the trapped process (in the supervisor's pid namespace). */
SG_API pid_t sg_ctx_pid(const sg_ctx *c);
/* The syscall number. */
SG_API long sg_ctx_syscall(const sg_ctx *c);
/* The AUDIT_ARCH_* value of the syscall. */
SG_API uint32_t sg_ctx_arch(const sg_ctx *c);
/* The notification's flags (struct seccomp_notif.flags). */
SG_API uint32_t sg_ctx_flags(const sg_ctx *c);
/* The instruction pointer of the trapped process. */
SG_API uint64_t sg_ctx_ip(const sg_ctx *c);
/* Syscall argument i (0..5); 0 for any other i. */
SG_API uint64_t sg_ctx_arg(const sg_ctx *c, unsigned i);
/* Every plain field above in one call, for language bindings where each
 * call costs (Python's ctypes): 0, or -ESTALE once the handler returned
 * and -EINVAL for NULL (then *out reads as the single calls do: zeros,
 * syscall -1). */
struct sg_ctx_info {
	uint64_t id;      /* sg_ctx_id */
	uint64_t ip;      /* sg_ctx_ip */
	uint64_t args[6]; /* sg_ctx_arg */
	int64_t syscall;  /* sg_ctx_syscall */
	int32_t pid;      /* sg_ctx_pid */
	uint32_t arch;    /* sg_ctx_arch */
	uint32_t flags;   /* sg_ctx_flags */
	uint32_t reserved;
};
SG_API int sg_ctx_info(const sg_ctx *c, struct sg_ctx_info *out);
/* The path the supervisor pre-read for argument arg (owned by ctx, valid
 * until the handler returns, or a deferred answer is completed), or NULL. */
SG_API const char *sg_ctx_path(const sg_ctx *c, unsigned arg);

/* Reads len bytes of the trapped process at addr into buf (through the
 * supervisor, blocking this thread only); bytes read, or -errno (-ESTALE:
 * handler returned or answer completed, -ECONNRESET: the run ended). */
SG_API ssize_t sg_ctx_read(const sg_ctx *c, uint64_t addr, void *buf, size_t len);
/* Reads a string at addr into buf, always NUL-terminated; its length, or -errno. */
SG_API ssize_t sg_ctx_read_cstr(const sg_ctx *c, uint64_t addr, char *buf, size_t cap);
/* Writes len bytes of buf at addr in the trapped process; len, or -errno. */
SG_API ssize_t sg_ctx_write(const sg_ctx *c, uint64_t addr, const void *buf, size_t len);

/* Action: let the syscall run (or the next handler in the chain decide). */
SG_API void sg_continue(sg_action *a);
/* Action: fail the syscall with errno err (1..4095, else the action is invalid). */
SG_API void sg_errno(sg_action *a, int err);
/* Action: do not run the syscall; it returns v. */
SG_API void sg_return(sg_action *a, int64_t v);
/* Action: send signal sig (1..64, else invalid) to the trapped process. */
SG_API void sg_kill(sg_action *a, int sig);
/* Action: the syscall returns a new fd of a memfd holding a copy of data;
 * flags: SG_INJECT_WRITABLE, SG_INJECT_NO_CLOEXEC. -E2BIG over the cap,
 * -EINVAL bad flags (SG_INJECT_TRACK included: see sg_inject_tracked),
 * -ENOMEM. On an error the action is left as it was. */
SG_API int sg_inject_bytes(sg_action *a, const void *data, size_t len, unsigned flags);
/* Action: as sg_inject_bytes, tracked: once the fd is installed in the
 * child, and before its syscall returns it, the worker's
 * sg_worker_on_injected callback gets the fd number with cookie (any value
 * the handler likes, to tell its injections apart). flags: as for
 * sg_inject_bytes; SG_INJECT_TRACK may be given and is always set. Same
 * errors. */
SG_API int sg_inject_tracked(sg_action *a, const void *data, size_t len, unsigned flags,
			     uint64_t cookie);

/* ---- Answering later -----------------------------------------------------
 *
 * A handler that cannot decide at once (it waits for a timer, an event loop,
 * another service) calls sg_defer(ctx), hands the sg_deferred to whoever
 * will decide, and returns 0. The SDK sends nothing for that call, and the
 * handler's thread goes on with the next notification while the trapped
 * process waits. Later, from any thread, the decider sets exactly one action
 * on sg_deferred_action(d) with the usual setters and calls sg_complete(d),
 * which sends the answer; until then sg_deferred_ctx(d) is a live context
 * of that notification (fields, paths and memory accessors work).
 *
 *	static int later(const sg_ctx *ctx, sg_action *out, void *ud)
 *	{
 *		sg_deferred *d = sg_defer(ctx);
 *		if (!d)
 *			return 1;
 *		my_queue_push(ud, d);
 *		return 0;
 *	}
 *
 * and on the thread that decides, later:
 *
 *	sg_continue(sg_deferred_action(d));
 *	sg_complete(d);
 *
 * Bounds: a deferred answer counts against the worker's in-flight limit
 * (Welcome.max_inflight; sysgate allows 64) until it is completed; past the
 * limit the supervisor answers new notifications with their exception
 * policy. --handler-timeout runs from the notification's arrival: an answer
 * not completed by then gets the exception policy, and sysgate takes the
 * worker for hung (it is restarted), so complete well within it.
 *
 * Ownership: every sg_deferred that sg_defer() returned must be given to
 * exactly one sg_complete() or sg_deferred_cancel(), which frees it with its
 * context and action; d must not be used afterwards, nor completed while a
 * memory call on its context is in progress, and its action must not be set
 * from two threads at once. Completing stays valid after sg_worker_run()
 * returned and even after sg_worker_free(): it then sends nothing (the
 * supervisor settled the notification when the run ended) and returns
 * -ENOTCONN. A worker freed with answers still deferred keeps the little
 * memory they need until the last of them is completed. */

/* Called during a handler call, with its ctx (from any thread): the call
 * will be answered later through the returned sg_deferred, and the
 * handler's own result and out are then ignored. NULL with errno set:
 * EINVAL ctx is NULL or a deferred answer's context, ESTALE the handler
 * returned, EALREADY this call deferred already, ENOMEM. */
SG_API sg_deferred *sg_defer(const sg_ctx *ctx);
/* The notification of d: a live context until d is completed (the same
 * fields as the handler's; its paths are valid until then). NULL for NULL. */
SG_API const sg_ctx *sg_deferred_ctx(sg_deferred *d);
/* The action of d, for the action setters; NULL for NULL. */
SG_API sg_action *sg_deferred_action(sg_deferred *d);
/* Sends d's answer and frees d: its action if exactly one valid action was
 * set, else a failure (the exception policy applies), as for a handler.
 * Called before the deferring handler returned, it leaves the sending to
 * that handler's return. 0; -ENOTCONN the run ended: nothing is sent;
 * another negative errno if sending failed (the run ends); -EINVAL NULL. */
SG_API int sg_complete(sg_deferred *d);
/* Answers d with a failure (its registration's exception policy applies)
 * and frees d; returns as sg_complete. */
SG_API int sg_deferred_cancel(sg_deferred *d);

/* Number of a native syscall by name ("openat") or decimal number ("257");
 * -ENOENT if the architecture has no such syscall, -EINVAL if malformed. */
SG_API long sg_syscall_nr(const char *name);

/* Name of a native syscall number, or NULL if unknown. The string is static. */
SG_API const char *sg_syscall_name(long nr);

#ifdef __cplusplus
}
#endif

#endif
