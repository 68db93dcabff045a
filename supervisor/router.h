/* The router: one thread that owns every handler worker (worker.h). It
 * starts them, takes their handshakes, hands each notification whose
 * builtins continued to the workers of its chain in order (docs/handlers.md#chain-order), serves
 * their memory requests (proxy.h), answers the kernel, and applies the
 * registration's exception policy whenever a worker fails: a reported
 * handler failure, a malformed or out-of-turn message, a crash or exit, a
 * lost link, an answer later than --handler-timeout, or a full queue.
 * Failed workers are restarted with backoff, a bounded number of times.
 *
 * Everything a worker sends is untrusted: decoded and validated
 * (protocol.h), and acted on only for notifications that worker holds. */
#ifndef SYSGATE_ROUTER_H
#define SYSGATE_ROUTER_H

#include <linux/seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit.h"
#include "chain.h"
#include "cli.h"
#include "util.h"

struct router;

struct router_config {
	const struct config *cfg;  /* workers, timeouts, --worker-user */
	const char *sandbox;       /* sandbox name, for snapshots */
	const bool *deny;          /* [SYSCALLS_MAX]: the kernel's deny list */
	struct audit *audit;       /* NULL without --audit */
	sigset_t sigmask;          /* what workers start with */
};

/* Creates the private runtime directory, starts every worker and waits
 * until each has registered (or one failed: the message names it and
 * quotes the tail of its output). *out is set either way; free it with
 * router_stop + router_free. Call with the supervisor's signals blocked. */
int router_start(struct router **out, const struct router_config *c, struct sg_err *err);

/* Adds every worker's registrations to the chains, in --worker order. */
int router_add_hops(struct router *rt, struct chain_table *t, struct sg_err *err);

/* The child is about to run: notifications may now arrive on listener. */
void router_go(struct router *rt, int listener);

/* Called on the receiver thread: the router answers req from now on.
 * Takes no lock and allocates nothing. -EBUSY: every slot is taken (4096
 * notifications with the workers); the caller must answer it. */
int router_submit(struct router *rt, const struct seccomp_notif *req, const struct chain *chain,
		  uint64_t t0);

/* Pids of the worker processes (not sandbox processes), into out[0..cap). */
size_t router_worker_pids(struct router *rt, pid_t *out, size_t cap);

/* Ends every worker (Goodbye, then SIGKILL after a grace period), joins
 * the thread and removes the runtime directory. NULL is fine. */
void router_stop(struct router *rt);

/* Frees what router_stop left (worker names the audit log may still be
 * writing). NULL is fine. */
void router_free(struct router *rt);

#endif
