/* A worker's registrations (docs/handlers.md#registration): resolved and checked against the deny
 * lists before the child starts, and kept in chain order. */
#ifndef SYSGATE_REGISTRY_H
#define SYSGATE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "syscalls.h"
#include "util.h"

struct registration {
	long nr;
	uint32_t index;  /* position in Hello.registrations: Snapshot.registration */
	unsigned policy; /* enum sysgate.v1.ExceptionPolicy */
	bool observe_only; /* answers limited to continue, errno, kill */
};

/* Resolves hello's registrations into *out (malloc'd, sorted by their
 * `order`, Hello order among equals) and *n. Rejects, naming the syscall:
 * negative numbers, names or numbers unknown for the architecture, and any
 * syscall in deny[] (a handler there would turn a kernel deny into a user
 * decision), and exit/exit_group (a process must always be able to exit: a
 * handler there could hold it forever). Syscalls that create processes or
 * replace the program (execve, execveat, clone, clone3, fork, vfork) are
 * observe-or-deny: their registrations are marked observe_only, and an
 * answer other than continue, errno or kill gets the exception policy (a
 * faked pid or a faked exec would lie about what runs in the sandbox). A
 * worker may register nothing. */
int registry_resolve(const Sysgate__V1__Hello *hello, const bool deny[SYSCALLS_MAX],
		     struct registration **out, size_t *n, struct sg_err *err);

/* Syscalls a spurious EINTR is known to break programs on (a trapped call
 * can fail with EINTR until the supervisor receives it): fork and clone
 * ("Cannot fork"), close and dup2 (the fd is left open or not duplicated),
 * execve. registry_warn_eintr logs a warning for them; registry_resolve
 * calls it for every registration. */
bool registry_eintr_fragile(long nr);
void registry_warn_eintr(long nr);

/* Do two resolved sets say the same thing (a restarted worker must
 * register exactly what its first instance did: the filter is fixed)? */
bool registry_equal(const struct registration *a, size_t n_a, const struct registration *b,
		    size_t n_b);

#endif
