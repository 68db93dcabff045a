/* Builtin handlers: answered inline by the supervisor, first in every chain. */
#ifndef SYSGATE_BUILTINS_H
#define SYSGATE_BUILTINS_H

#include <pthread.h>
#include <sys/types.h>

#include "chain.h"
#include "cli.h"
#include "util.h"

/* --hostname: uname(2) reports NAME as the node name. */
struct builtin_hostname {
	char nodename[65];
};

/* --max-procs: at most `limit` live processes in the sandbox. */
struct builtin_max_procs {
	long limit;
	pid_t supervisor;
	/* The supervisor's helper processes (workers), not counted. */
	size_t (*helpers)(void *ctx, pid_t *out, size_t cap);
	void *helpers_ctx;
	pthread_mutex_t lock;
	/* Forks allowed but whose child may not be visible in /proc yet. */
	struct reservation {
		pid_t tid;    /* forking thread: at most one fork in flight each */
		pid_t tgid;   /* its process, the new child's parent */
		pid_t *known; /* tgid's children when the fork was allowed */
		size_t n_known;
	} *reserved;
	size_t n_reserved;
};

/* -r/-w or --no-network: connect(2) to a pathname unix socket only beneath a
 * granted path or at an --allow-unix path (EACCES otherwise); Landlock does
 * not mediate it. A check, not a boundary: the kernel reads the address
 * again after the check, so a thread (or another process sharing the
 * memory) that rewrites it in between, or swaps a symlink on the path,
 * connects where it likes. It stops programs that do not race. */
struct builtin_unix_connect {
	char **beneath; /* canonical -r/-w paths */
	size_t n_beneath;
	char **exact; /* canonical --allow-unix paths */
	size_t n_exact;
};

int builtin_hostname_init(struct builtin_hostname *b, const char *name, struct chain_table *t,
			  struct sg_err *err);

int builtin_max_procs_init(struct builtin_max_procs *b, long limit, struct chain_table *t,
			   struct sg_err *err);
void builtin_max_procs_free(struct builtin_max_procs *b);

/* Canonicalises the paths (an --allow-unix socket may not exist yet: its
 * directory must) and traps connect. */
int builtin_unix_connect_init(struct builtin_unix_connect *b, const struct config *cfg,
			      struct chain_table *t, struct sg_err *err);
void builtin_unix_connect_free(struct builtin_unix_connect *b);

#endif
