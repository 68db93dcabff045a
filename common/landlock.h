/* Landlock rulesets: built (and every error reported) in the parent, enforced
 * in the confined process with a single syscall. Shared by the child
 * confinement and, later, the worker sandbox. */
#ifndef SYSGATE_LANDLOCK_H
#define SYSGATE_LANDLOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct landlock_spec {
	const char *const *read_paths; /* read + execute beneath */
	size_t n_read;
	const char *const *write_paths; /* read, write, create beneath */
	size_t n_write;
	bool restrict_fs;     /* handle filesystem access at all */
	bool no_network;      /* deny TCP bind/connect */
	bool scope_signals;   /* ABI 6+: no signals out of the domain (best effort) */
	bool scope_abstract;  /* ABI 6+: no abstract sockets out of the domain (best effort) */
	bool always_domain;   /* a domain even with nothing else asked (best effort) */
};

/* Landlock ABI version of the running kernel, or a negative errno
 * (-EOPNOTSUPP: built in but disabled at boot; -ENOSYS: absent). */
int landlock_abi(void);

/* Creates a ruleset fd for spec. Returns -1 in *fd (and 0) when the spec asks
 * for nothing. Fails with a message naming the path or the missing feature if
 * a requested rule cannot be enforced. */
int landlock_build(const struct landlock_spec *spec, int *fd, struct sg_err *err);

/* Enforces a ruleset built by landlock_build. no_new_privs must be set.
 * Async-signal-safe. */
int landlock_enforce(int ruleset_fd);

#endif
