#include "bpf.h"

#include <errno.h>
#include <stdlib.h>
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
