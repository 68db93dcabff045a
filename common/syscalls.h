/* Syscall names, the default deny list and the path-argument table, for the
 * native architecture. Shared by the supervisor and the SDK. */
#ifndef SYSGATE_SYSCALLS_H
#define SYSGATE_SYSCALLS_H

#include <stdbool.h>
#include <stddef.h>

/* Highest syscall number we keep per-syscall tables for (exclusive). */
#define SYSCALLS_MAX 1024

/* Number for a native syscall name, or -ENOENT. Accepts decimal numbers too
 * ("39"), returning -EINVAL for negative or malformed ones and -ENOENT for
 * numbers the architecture does not define. */
long syscalls_resolve(const char *name_or_nr);

/* Static name of a native syscall number, or NULL if unknown. */
const char *syscalls_name(long nr);

/* The default deny list (docs/cli.md#default-deny-list), NULL-terminated. */
extern const char *const syscalls_default_deny[];

/* Path arguments of the common path syscalls (docs/handlers.md#pre-read-paths). Fills idx with the
 * argument indices that hold a path and returns how many (0, 1 or 2). */
unsigned syscalls_path_args(long nr, unsigned idx[2]);

#endif
