/* The child's seccomp filter: compiled with libseccomp in the supervisor,
 * installed in the child with one seccomp(2) call. */
#ifndef SYSGATE_FILTER_H
#define SYSGATE_FILTER_H

#include <linux/filter.h>
#include <stdbool.h>

#include "syscalls.h"
#include "util.h"

struct filter_spec {
	bool deny[SYSCALLS_MAX];   /* kernel answers EPERM */
	bool notify[SYSCALLS_MAX]; /* USER_NOTIF to the supervisor */
};

struct filter_prog {
	struct sock_fprog fprog; /* filter points into owned memory */
};

/* Marks the default deny list in spec. */
void filter_spec_default_deny(struct filter_spec *spec);

/* Compiles spec. A syscall both denied and notified is a bug in the caller
 * (registrations on the deny list are rejected before this). */
int filter_compile(const struct filter_spec *spec, struct filter_prog *out, struct sg_err *err);
void filter_prog_free(struct filter_prog *prog);

/* Outcome of installing the filter, for diagnostics. */
struct filter_installed {
	int listener;       /* -1 if nothing is notified */
	bool wait_killable; /* SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV accepted */
};

/* Installs prog in the calling process (no_new_privs must be set). Requests
 * a listener if notify != false, with WAIT_KILLABLE_RECV when the kernel
 * has it. Async-signal-safe; returns -errno. */
int filter_install(const struct filter_prog *prog, bool notify, struct filter_installed *out);

#endif
