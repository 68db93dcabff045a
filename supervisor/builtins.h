/* Builtin handlers: answered inline by the supervisor, first in every chain. */
#ifndef SYSGATE_BUILTINS_H
#define SYSGATE_BUILTINS_H

#include <pthread.h>
#include <sys/types.h>

#include "chain.h"
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

int builtin_hostname_init(struct builtin_hostname *b, const char *name, struct chain_table *t,
			  struct sg_err *err);

int builtin_max_procs_init(struct builtin_max_procs *b, long limit, struct chain_table *t,
			   struct sg_err *err);
void builtin_max_procs_free(struct builtin_max_procs *b);

#endif
