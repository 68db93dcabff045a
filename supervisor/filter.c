#include "filter.h"

#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "bpf.h"
#include "compat.h"

void filter_spec_default_deny(struct filter_spec *spec)
{
	for (const char *const *n = syscalls_default_deny; *n; n++) {
		long nr = syscalls_resolve(*n);
		if (nr >= 0)
			spec->deny[nr] = true; /* names absent on this arch are moot */
	}
	/* Its target is a pidfd, whose process a filter cannot tell: it would
	 * page out or collapse the supervisor's memory. */
	long nr = syscalls_resolve("process_madvise");
	if (nr >= 0)
		spec->deny[nr] = true;
}

/* Calls that are harmless in general but let the command reach past the
 * sandbox with one argument value: pushing input into the terminal it
 * shares with the user's shell (the shell runs it after sysgate exits), and
 * making itself non-dumpable, which would blind the supervisor's reads of
 * its memory (audit paths, --hostname). Always EPERM, whatever else the
 * filter does with the syscall. */
static int add_argument_denials(scmp_filter_ctx ctx, struct sg_err *err)
{
	static const struct {
		int nr;
		unsigned arg;
		uint64_t value;
		const char *what;
	} denials[] = {
		{ SCMP_SYS(ioctl), 1, TIOCSTI, "ioctl(TIOCSTI)" },
		{ SCMP_SYS(ioctl), 1, TIOCLINUX, "ioctl(TIOCLINUX)" },
		{ SCMP_SYS(prctl), 0, PR_SET_DUMPABLE, "prctl(PR_SET_DUMPABLE)" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(denials); i++) {
		/* ioctl's request and prctl's option are ints: compare the low
		 * 32 bits, or a set high bit would slip past. */
		struct scmp_arg_cmp cmp = SCMP_CMP(denials[i].arg, SCMP_CMP_MASKED_EQ, 0xffffffffu,
						   denials[i].value);
		int r = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), denials[i].nr, 1, &cmp);
		if (r < 0)
			return err_sys(err, -r, "seccomp: cannot deny %s", denials[i].what);
	}
	return 0;
}

/* Compiles one filter whose rules come from `action_for(nr)`. */
static int compile_one(const struct filter_spec *spec, bool denying, struct sock_fprog *out,
		       struct sg_err *err)
{
	_cleanup_filter_ scmp_filter_ctx ctx = bpf_filter_new(err);
	if (!ctx)
		return -EINVAL;
	int r;
	for (int nr = 0; nr < SYSCALLS_MAX; nr++) {
		if (!(denying ? spec->deny[nr] : spec->notify[nr]))
			continue;
		r = seccomp_rule_add(ctx, denying ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_NOTIFY, nr, 0);
		if (r < 0)
			return err_sys(err, -r, "seccomp: cannot add a rule for syscall %s (%d)",
				       syscalls_name(nr) ? syscalls_name(nr) : "?", nr);
	}
	if (denying && (r = add_argument_denials(ctx, err)) < 0)
		return r;
	unsigned confine = BPF_CONFINE_OTHER_PROCESSES | BPF_CONFINE_NAMESPACES;
	if (spec->unix_sockets_only)
		confine |= BPF_CONFINE_UNIX_SOCKETS_ONLY;
	if (denying && (r = bpf_add_confinement(ctx, confine, err)) < 0)
		return r;
	return bpf_export(ctx, out, err);
}

static bool any(const bool *v)
{
	for (int nr = 0; nr < SYSCALLS_MAX; nr++)
		if (v[nr])
			return true;
	return false;
}

int filter_compile(const struct filter_spec *spec, struct filter_prog *out, struct sg_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = compile_one(spec, true, &out->deny, err);
	if (r >= 0 && any(spec->notify))
		r = compile_one(spec, false, &out->notify, err);
	if (r < 0)
		filter_prog_free(out);
	return r;
}

void filter_prog_free(struct filter_prog *prog)
{
	free(prog->deny.filter);
	free(prog->notify.filter);
	prog->deny.filter = prog->notify.filter = NULL;
}

int filter_install(const struct filter_prog *prog, struct filter_installed *out)
{
	out->listener = -1;
	out->wait_killable = false;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog->deny) < 0)
		return -errno;
	if (!prog->notify.filter)
		return 0;
	unsigned long flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
	long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog->notify);
	if (r < 0 && errno == EINVAL) {
		/* Kernels before 5.19 lack WAIT_KILLABLE_RECV. */
		flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
		r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog->notify);
	}
	if (r < 0)
		return -errno;
	out->listener = (int)r;
	out->wait_killable = flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
	return 0;
}
