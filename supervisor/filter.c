#include "filter.h"

#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "compat.h"

void filter_spec_default_deny(struct filter_spec *spec)
{
	for (const char *const *n = syscalls_default_deny; *n; n++) {
		long nr = syscalls_resolve(*n);
		if (nr >= 0)
			spec->deny[nr] = true; /* names absent on this arch are moot */
	}
}

static void release_ctx(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

int filter_compile(const struct filter_spec *spec, struct filter_prog *out, struct sg_err *err)
{
	memset(out, 0, sizeof(*out));
	__attribute__((cleanup(release_ctx))) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return err_set(err, ENOMEM, "seccomp: cannot create a filter");
	/* A syscall from a foreign ABI (i386, x32) would bypass the tables. */
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r < 0)
		return err_sys(err, -r, "seccomp: cannot set the bad-arch action");

	for (int nr = 0; nr < SYSCALLS_MAX; nr++) {
		uint32_t action;
		if (spec->deny[nr])
			action = SCMP_ACT_ERRNO(EPERM);
		else if (spec->notify[nr])
			action = SCMP_ACT_NOTIFY;
		else
			continue;
		r = seccomp_rule_add(ctx, action, nr, 0);
		if (r < 0)
			return err_sys(err, -r, "seccomp: cannot add a rule for syscall %s (%d)",
				       syscalls_name(nr) ? syscalls_name(nr) : "?", nr);
	}

	/* libseccomp 2.5 exports BPF only to an fd. */
	_cleanup_close_ int mfd = memfd_create("sysgate-bpf", MFD_CLOEXEC);
	if (mfd < 0)
		return err_sys(err, errno, "seccomp: memfd_create");
	r = seccomp_export_bpf(ctx, mfd);
	if (r < 0)
		return err_sys(err, -r, "seccomp: cannot export the filter");
	struct stat st;
	if (fstat(mfd, &st) < 0)
		return err_sys(err, errno, "seccomp: fstat");
	size_t len = (size_t)st.st_size;
	if (len == 0 || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > 4096)
		return err_set(err, EINVAL, "seccomp: exported filter has a bad size (%zu bytes)",
			       len);
	struct sock_filter *insns = malloc(len);
	if (!insns)
		return err_set(err, ENOMEM, "seccomp: out of memory");
	if (pread(mfd, insns, len, 0) != (ssize_t)len) {
		free(insns);
		return err_sys(err, errno ? errno : EIO, "seccomp: reading back the filter");
	}
	out->fprog.len = (unsigned short)(len / sizeof(struct sock_filter));
	out->fprog.filter = insns;
	return 0;
}

void filter_prog_free(struct filter_prog *prog)
{
	free(prog->fprog.filter);
	prog->fprog.filter = NULL;
}

int filter_install(const struct filter_prog *prog, bool notify, struct filter_installed *out)
{
	out->listener = -1;
	out->wait_killable = false;
	unsigned long flags = 0;
	if (notify)
		flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
	long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog->fprog);
	if (r < 0 && errno == EINVAL && notify) {
		/* Kernels before 5.19 lack WAIT_KILLABLE_RECV. */
		flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
		r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog->fprog);
	}
	if (r < 0)
		return -errno;
	if (notify) {
		out->listener = (int)r;
		out->wait_killable = flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
	}
	return 0;
}
