/* sysgate handler SDK (C). See SPEC section 5 and docs/.
 *
 * Errors are negative errno values; nothing here exits or aborts. */
#ifndef SYSGATE_H
#define SYSGATE_H

#ifdef __cplusplus
extern "C" {
#endif

#define SG_API __attribute__((visibility("default")))

/* Exception policy of a registration: what answers a notification when its
 * handler fails, times out, or its worker crashes. */
enum sg_exception {
	SG_EXC_KILL = 0,       /* kill the sandbox (default, fail closed) */
	SG_EXC_DENY_EPERM = 1, /* fail the syscall with EPERM */
	SG_EXC_CONTINUE = 2,   /* let the syscall run (explicit fail-open) */
	SG_EXC_DENY_EIO = 3,   /* fail the syscall with EIO */
};

/* Number of a native syscall by name ("openat") or decimal number ("257");
 * -ENOENT if the architecture has no such syscall, -EINVAL if malformed. */
SG_API long sg_syscall_nr(const char *name);

/* Name of a native syscall number, or NULL if unknown. The string is static. */
SG_API const char *sg_syscall_name(long nr);

#ifdef __cplusplus
}
#endif

#endif
