/* The child's seccomp filters: compiled with libseccomp in the supervisor,
 * installed in the child with seccomp(2). Two filters are stacked: one that
 * denies (the deny list, dangerous argument values) and one that notifies.
 * The kernel runs both and ERRNO outranks USER_NOTIF, so a denial holds even
 * for a syscall that is also trapped (--trap ioctl cannot re-open TIOCSTI). */
#ifndef SYSGATE_FILTER_H
#define SYSGATE_FILTER_H

#include <linux/filter.h>
#include <stdbool.h>

#include "syscalls.h"
#include "util.h"

struct filter_spec {
	bool deny[SYSCALLS_MAX];   /* kernel answers EPERM */
	bool notify[SYSCALLS_MAX]; /* USER_NOTIF to the supervisor */
	/* --no-network: sockets of no family but AF_UNIX (EACCES). Always on:
	 * the rules of bpf.h on other processes and on namespaces. */
	bool unix_sockets_only;
};

struct filter_prog {
	struct sock_fprog deny;   /* .filter points into owned memory */
	struct sock_fprog notify; /* .filter NULL when nothing is trapped */
};

/* Marks the default deny list in spec, process_madvise included. */
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

/* Installs prog in the calling process (no_new_privs must be set): the deny
 * filter, then the notify filter with a listener (WAIT_KILLABLE_RECV when
 * the kernel has it). Async-signal-safe; returns -errno. */
int filter_install(const struct filter_prog *prog, struct filter_installed *out);

#endif
