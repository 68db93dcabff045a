#include "bpf.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>

scmp_filter_ctx bpf_filter_new(struct sg_err *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx) {
		err_set(err, ENOMEM, "seccomp: cannot create a filter");
		return NULL;
	}
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r < 0) {
		err_sys(err, -r, "seccomp: cannot set the bad-arch action");
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

void bpf_filter_release(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

int bpf_export(scmp_filter_ctx ctx, struct sock_fprog *out, struct sg_err *err)
{
	/* libseccomp 2.5 exports BPF only to an fd. */
	_cleanup_close_ int mfd = memfd_create("sysgate-bpf", MFD_CLOEXEC);
	if (mfd < 0)
		return err_sys(err, errno, "seccomp: memfd_create");
	int r = seccomp_export_bpf(ctx, mfd);
	if (r < 0)
		return err_sys(err, -r, "seccomp: cannot export the filter");
	struct stat st;
	if (fstat(mfd, &st) < 0)
		return err_sys(err, errno, "seccomp: fstat");
	size_t len = (size_t)st.st_size;
	if (len == 0 || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > 4096)
		return err_set(err, EINVAL, "seccomp: exported filter has a bad size (%zu bytes)",
			       len);
	_cleanup_free_ struct sock_filter *insns = malloc(len);
	if (!insns)
		return err_set(err, ENOMEM, "seccomp: out of memory");
	errno = 0;
	if (pread(mfd, insns, len, 0) != (ssize_t)len)
		return err_sys(err, errno ? errno : EIO, "seccomp: reading back the filter");
	out->len = (unsigned short)(len / sizeof(struct sock_filter));
	out->filter = steal_ptr(&insns);
	return 0;
}

/* One comparison turning a syscall into an error. Several rows on the same
 * syscall are alternatives: any one matching denies. */
struct arg_rule {
	const char *syscall;
	int error;
	bool unconditional; /* no comparison: the whole syscall */
	unsigned arg;
	enum scmp_compare op;
	uint64_t datum_a, datum_b; /* SCMP_CMP's two operands */
};

#define SELF_ONLY(name, argn)                                                                      \
	{                                                                                          \
		name, EPERM, false, argn, SCMP_CMP_NE, 0, 0                                        \
	}
/* Not equal on all 64 bits also refuses the caller's own value with junk in
 * the upper half, which the kernel would truncate: that fails closed. */
#define NOT(name, argn, value)                                                                     \
	{                                                                                          \
		name, EPERM, false, argn, SCMP_CMP_NE, value, 0                                    \
	}
#define FLAG(flag)                                                                                 \
	{                                                                                          \
		"clone", EPERM, false, 0, SCMP_CMP_MASKED_EQ, flag, flag                           \
	}

static const struct arg_rule other_process_rules[] = {
	SELF_ONLY("prlimit64", 0),
	/* PRIO_PGRP and PRIO_USER with who 0 reach the caller's group and
	 * user, the supervisor included. */
	NOT("setpriority", 0, PRIO_PROCESS),
	SELF_ONLY("setpriority", 1),
	SELF_ONLY("sched_setaffinity", 0),
	SELF_ONLY("sched_setscheduler", 0),
	SELF_ONLY("sched_setparam", 0),
	SELF_ONLY("sched_setattr", 0),
	NOT("ioprio_set", 0, 1 /* IOPRIO_WHO_PROCESS */),
	SELF_ONLY("ioprio_set", 1),
	SELF_ONLY("migrate_pages", 0),
	SELF_ONLY("move_pages", 0),
};

static const struct arg_rule namespace_rules[] = {
	FLAG(CLONE_NEWNS),
	FLAG(CLONE_NEWCGROUP),
	FLAG(CLONE_NEWUTS),
	FLAG(CLONE_NEWIPC),
	FLAG(CLONE_NEWUSER),
	FLAG(CLONE_NEWPID),
	FLAG(CLONE_NEWNET),
	FLAG(0x80 /* CLONE_NEWTIME */),
	{ "clone3", ENOSYS, true, 0, 0, 0, 0 },
};

static const struct arg_rule socket_rules[] = {
	{ "socket", EACCES, false, 0, SCMP_CMP_NE, AF_UNIX, 0 },
	{ "socketpair", EACCES, false, 0, SCMP_CMP_NE, AF_UNIX, 0 },
};

static int add_rules(scmp_filter_ctx ctx, const struct arg_rule *rules, size_t n,
		     struct sg_err *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct arg_rule *r = &rules[i];
		int nr = seccomp_syscall_resolve_name(r->syscall);
		if (nr == __NR_SCMP_ERROR)
			continue; /* absent on this arch */
		struct scmp_arg_cmp cmp = { r->arg, r->op, r->datum_a, r->datum_b };
		int e = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO((uint32_t)r->error), nr,
					       r->unconditional ? 0 : 1, &cmp);
		/* -EEXIST: a rule of the caller's (--deny-syscall) already
		 * denies the whole syscall. */
		if (e < 0 && e != -EEXIST)
			return err_sys(err, -e, "seccomp: cannot add a rule on %s", r->syscall);
	}
	return 0;
}

int bpf_add_confinement(scmp_filter_ctx ctx, unsigned what, struct sg_err *err)
{
	int r = 0;
	if (what & BPF_CONFINE_OTHER_PROCESSES)
		r = add_rules(ctx, other_process_rules, ARRAY_SIZE(other_process_rules), err);
	if (r >= 0 && what & BPF_CONFINE_NAMESPACES)
		r = add_rules(ctx, namespace_rules, ARRAY_SIZE(namespace_rules), err);
	if (r >= 0 && what & BPF_CONFINE_UNIX_SOCKETS_ONLY)
		r = add_rules(ctx, socket_rules, ARRAY_SIZE(socket_rules), err);
	return r;
}
