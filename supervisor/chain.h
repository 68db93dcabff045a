/* Per-syscall handler chains (docs/handlers.md#chain-order): builtins first, then worker
 * registrations; the first action that is not `continue` wins. */
#ifndef SYSGATE_CHAIN_H
#define SYSGATE_CHAIN_H

#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "childmem.h"
#include "syscalls.h"

enum action_kind {
	ACTION_CONTINUE = 0,
	ACTION_ERRNO,  /* value: positive errno, 1..4095 */
	ACTION_RETURN, /* value: the syscall's return value */
	ACTION_KILL,   /* value: signal for the trapped process */
	ACTION_INJECT, /* value: the fd the child got (workers' inject_bytes, once installed) */
};

struct action {
	enum action_kind kind;
	int64_t value;
};

/* A handler answers synchronously. It must not block: it runs on the
 * receiver's thread. */
typedef void (*chain_fn)(void *state, const struct seccomp_notif *req,
			 const struct childmem *mem, struct action *out);

struct chain_link {
	const char *name; /* who decided, for the audit log */
	chain_fn fn;
	void *state;
};

struct worker; /* worker.h */

/* A worker registration in a chain, run after every builtin link: the
 * router hands the notification to `worker` for its registration `reg`. */
struct chain_hop {
	struct worker *worker;
	uint32_t reg;    /* index into the worker's registrations (Hello order) */
	unsigned policy; /* enum sysgate.v1.ExceptionPolicy */
	bool observe_only; /* only continue, errno or kill (registry.h) */
};

struct chain {
	struct chain_link *links; /* builtins, answered on the receiver */
	size_t n;
	struct chain_hop *hops; /* worker registrations, answered by the router */
	size_t n_hops;
};

struct chain_table {
	struct chain by_nr[SYSCALLS_MAX];
	bool trapped[SYSCALLS_MAX]; /* notify even with an empty chain */
};

void chain_table_init(struct chain_table *t);
void chain_table_free(struct chain_table *t);

/* Appends link to nr's chain and traps nr. -EINVAL for a bad nr. */
int chain_append(struct chain_table *t, long nr, const struct chain_link *link);
/* Appends a worker hop to nr's chain and traps nr. */
int chain_append_hop(struct chain_table *t, long nr, const struct chain_hop *hop);
/* Traps nr with no handler: it is recorded and continued. */
int chain_trap(struct chain_table *t, long nr);

/* Runs the builtin links of nr's chain. Returns the link that decided, or NULL when every link
 * continued (out is then ACTION_CONTINUE). An invalid action from a link is
 * turned into a fail-closed EPERM decided by that link. */
const struct chain_link *chain_run(const struct chain_table *t, const struct seccomp_notif *req,
				   const struct childmem *mem, struct action *out);

/* Does a well-formed action carry valid values? */
bool action_valid(const struct action *a);

/* "continue", "errno", "return", "kill". */
const char *action_name(enum action_kind kind);

#endif
