/* libseccomp filters as plain BPF programs: built in a parent, where errors
 * can be reported, and installed later with one seccomp(2) call. Shared by
 * the child's filters and the worker sandbox. */
#ifndef SYSGATE_BPF_H
#define SYSGATE_BPF_H

#include <linux/filter.h>
#include <seccomp.h>

#include "util.h"

/* A context that allows by default and kills the process on a foreign ABI
 * (i386, x32: their numbers would bypass the tables). NULL on failure. */
scmp_filter_ctx bpf_filter_new(struct sg_err *err);

/* Scope cleanup for a context. */
void bpf_filter_release(scmp_filter_ctx *ctx);
#define _cleanup_filter_ __attribute__((cleanup(bpf_filter_release)))

/* Argument rules shared by the child's and the workers' filters. */
enum bpf_confine {
	/* No changing another process's resource limits, priority, scheduling,
	 * affinity, I/O priority or memory placement: EPERM unless the call
	 * names the caller itself (pid 0, PRIO_PROCESS/IOPRIO_WHO_PROCESS who
	 * 0). Even its own pid is refused: the filter cannot know it. */
	BPF_CONFINE_OTHER_PROCESSES = 1u << 0,
	/* No new namespaces through clone (EPERM); clone3, whose flags sit in
	 * memory a filter cannot read, fails with ENOSYS so libc falls back
	 * to clone. */
	BPF_CONFINE_NAMESPACES = 1u << 1,
	/* socket(2) and socketpair(2) only for AF_UNIX, EACCES otherwise:
	 * Landlock mediates TCP bind/connect only, not UDP, MPTCP, SCTP, raw,
	 * packet or netlink sockets, nor listen(2) autobinding a TCP port. */
	BPF_CONFINE_UNIX_SOCKETS_ONLY = 1u << 2,
};

/* Adds the rules selected by `what` (enum bpf_confine bits) to ctx. */
int bpf_add_confinement(scmp_filter_ctx ctx, unsigned what, struct sg_err *err);

/* Exports ctx into out->filter (malloc'd, owned by the caller). */
int bpf_export(scmp_filter_ctx ctx, struct sock_fprog *out, struct sg_err *err);

#endif
