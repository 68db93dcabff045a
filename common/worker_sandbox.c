#include "worker_sandbox.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "compat.h"
#include "bpf.h"
#include "landlock.h"
#include "syscalls.h"

/* Denied to workers on top of the default deny list (most are on it already;
 * naming them here keeps docs/worker-sandbox.md#syscalls true whatever that list becomes): no way
 * into another process's memory or file descriptors. */
static const char *const worker_extra_deny[] = {
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
	"process_madvise",
	/* Its process group is how the supervisor kills all it forked. */
	"setsid", "setpgid",
};

#define WORKER_NOFILE 1024

static int add_deny(scmp_filter_ctx ctx, const char *name, bool *denied, struct sg_err *err)
{
	long nr = syscalls_resolve(name);
	if (nr < 0 || denied[nr])
		return 0; /* absent on this arch, or already there */
	int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), (int)nr, 0);
	if (r < 0)
		return err_sys(err, -r, "seccomp: cannot deny %s", name);
	denied[nr] = true;
	return 0;
}

/* Compiles the worker's filter: allow by default, EPERM for the deny set and
 * for touching another process (a sibling worker, the supervisor: RLIMIT_CPU
 * on an unprivileged supervisor kills it), no namespaces, only unix sockets
 * without TCP, kill the process on a foreign ABI (i386, x32 would bypass the
 * table). */
static int build_filter(struct sock_fprog *out, bool allow_tcp, struct sg_err *err)
{
	_cleanup_filter_ scmp_filter_ctx ctx = bpf_filter_new(err);
	if (!ctx)
		return -EINVAL;
	int r;
	bool denied[SYSCALLS_MAX] = { false };
	for (const char *const *n = syscalls_default_deny; *n; n++)
		if ((r = add_deny(ctx, *n, denied, err)) < 0)
			return r;
	for (size_t i = 0; i < ARRAY_SIZE(worker_extra_deny); i++)
		if ((r = add_deny(ctx, worker_extra_deny[i], denied, err)) < 0)
			return r;
	unsigned confine = BPF_CONFINE_OTHER_PROCESSES | BPF_CONFINE_NAMESPACES;
	if (!allow_tcp)
		confine |= BPF_CONFINE_UNIX_SOCKETS_ONLY;
	if ((r = bpf_add_confinement(ctx, confine, err)) < 0)
		return r;

	return bpf_export(ctx, out, err);
}

/* Resolves the user to run as when sysgate runs as root. */
static int resolve_user(struct worker_sandbox *sb, const char *user, uid_t uid, struct sg_err *err)
{
	if (geteuid() != 0)
		return 0;
	if ((!user || !*user) && uid != 0 && uid != (uid_t)-1) {
		sb->change_ids = true;
		sb->uid = uid;
		sb->gid = (gid_t)uid;
		return 0;
	}
	if (!user || !*user)
		return err_set(err, EINVAL,
			       "sysgate runs as root and no user was given to run the worker as");
	long size = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t buflen = size > 0 ? (size_t)size : 4096;
	for (;;) {
		_cleanup_free_ char *buf = malloc(buflen);
		if (!buf)
			return err_set(err, ENOMEM, "user \"%s\": out of memory", user);
		struct passwd pw, *found = NULL;
		int r = getpwnam_r(user, &pw, buf, buflen, &found);
		if (r == ERANGE && buflen < (1u << 20)) {
			buflen *= 2;
			continue;
		}
		if (r != 0)
			return err_sys(err, r, "user \"%s\": cannot look it up", user);
		if (!found)
			return err_set(err, ENOENT, "user \"%s\" does not exist", user);
		if (pw.pw_uid == 0 || pw.pw_gid == 0)
			return err_set(
				err, EPERM,
				"user \"%s\" is privileged (uid %u, gid %u); workers need an "
				"unprivileged one",
				user, (unsigned)pw.pw_uid, (unsigned)pw.pw_gid);
		sb->change_ids = true;
		sb->uid = pw.pw_uid;
		sb->gid = pw.pw_gid;
		return 0;
	}
}

static int build_landlock(struct worker_sandbox *sb, const struct worker_sandbox_spec *spec,
			  struct sg_err *err)
{
	/* A worker must never run unconfined: no fallback. */
	int abi = landlock_abi();
	if (abi < 0)
		return err_set(err, -abi, "workers need Landlock, which this kernel %s",
			       abi == -EOPNOTSUPP ? "has disabled" : "does not provide");
	if (!spec->allow_tcp && abi < 4)
		return err_set(err, EOPNOTSUPP,
			       "a worker without network access needs Landlock ABI 4, this "
			       "kernel has ABI %d",
			       abi);
	struct landlock_spec ll = {
		.read_paths = spec->read_paths,
		.n_read = spec->n_read,
		.write_paths = spec->write_paths,
		.n_write = spec->n_write,
		.restrict_fs = true,
		.no_network = !spec->allow_tcp,
		.scope_signals = true,
		.scope_abstract = true,
		.always_domain = true,
	};
	int r = landlock_build(&ll, &sb->landlock_fd, err);
	if (r < 0)
		return r;
	if (sb->landlock_fd < 0) /* cannot happen with restrict_fs */
		return err_set(err, EINVAL, "landlock: no ruleset was built for the worker");
	return 0;
}

static void add_rlimit(struct worker_sandbox *sb, int resource, rlim_t value)
{
	struct worker_sandbox_rlimit *l = &sb->rlimits[sb->n_rlimits++];
	l->resource = resource;
	l->limit.rlim_cur = value;
	l->limit.rlim_max = value;
}

static void prepare_rlimits(struct worker_sandbox *sb)
{
	add_rlimit(sb, RLIMIT_CORE, 0);
	/* Lowering the hard limit is always allowed, raising it is not. */
	struct rlimit cur;
	rlim_t nofile = WORKER_NOFILE;
	if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
	    cur.rlim_max < nofile)
		nofile = cur.rlim_max;
	add_rlimit(sb, RLIMIT_NOFILE, nofile);
}

int worker_sandbox_prepare(struct worker_sandbox *sb, const struct worker_sandbox_spec *spec,
			   struct sg_err *err)
{
	memset(sb, 0, sizeof(*sb));
	sb->landlock_fd = -1;
	int r = resolve_user(sb, spec->user, spec->uid, err);
	if (r >= 0)
		r = build_landlock(sb, spec, err);
	if (r >= 0)
		r = build_filter(&sb->filter, spec->allow_tcp, err);
	if (r < 0) {
		worker_sandbox_free(sb);
		return r;
	}
	prepare_rlimits(sb);
	return 0;
}

/* Only async-signal-safe calls from here to the end of apply. */
int worker_sandbox_apply_staged(const struct worker_sandbox *sb, enum worker_sandbox_stage *failed)
{
	enum worker_sandbox_stage stage = WORKER_SANDBOX_STAGE_RLIMIT;
	int r;
	for (size_t i = 0; i < sb->n_rlimits; i++)
		if (setrlimit(sb->rlimits[i].resource, &sb->rlimits[i].limit) < 0)
			goto fail;
	if (sb->change_ids) {
		stage = WORKER_SANDBOX_STAGE_SETGROUPS;
		if (setgroups(0, NULL) < 0)
			goto fail;
		stage = WORKER_SANDBOX_STAGE_SETGID;
		if (setresgid(sb->gid, sb->gid, sb->gid) < 0)
			goto fail;
		stage = WORKER_SANDBOX_STAGE_SETUID;
		if (setresuid(sb->uid, sb->uid, sb->uid) < 0)
			goto fail;
		stage = WORKER_SANDBOX_STAGE_VERIFY_IDS;
		uid_t ru, eu, su;
		gid_t rg, eg, sg;
		if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
			goto fail;
		if (ru != sb->uid || eu != sb->uid || su != sb->uid || rg != sb->gid ||
		    eg != sb->gid || sg != sb->gid || getgroups(0, NULL) != 0) {
			errno = EPERM;
			goto fail;
		}
	}
	stage = WORKER_SANDBOX_STAGE_NO_NEW_PRIVS;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		goto fail;
	stage = WORKER_SANDBOX_STAGE_LANDLOCK;
	if (sb->landlock_fd < 0) {
		errno = EINVAL; /* never run a worker without its domain */
		goto fail;
	}
	r = landlock_enforce(sb->landlock_fd);
	if (r < 0) {
		errno = -r;
		goto fail;
	}
	close(sb->landlock_fd);
	stage = WORKER_SANDBOX_STAGE_SECCOMP;
	if (!sb->filter.filter) {
		errno = EINVAL;
		goto fail;
	}
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sb->filter) < 0)
		goto fail;
	if (failed)
		*failed = WORKER_SANDBOX_STAGE_NONE;
	return 0;
fail:
	r = -errno;
	if (failed)
		*failed = stage;
	return r;
}

int worker_sandbox_apply(const struct worker_sandbox *sb)
{
	return worker_sandbox_apply_staged(sb, NULL);
}

const char *worker_sandbox_stage_name(enum worker_sandbox_stage stage)
{
	switch (stage) {
	case WORKER_SANDBOX_STAGE_NONE:
		break;
	case WORKER_SANDBOX_STAGE_RLIMIT:
		return "setrlimit";
	case WORKER_SANDBOX_STAGE_SETGROUPS:
		return "setgroups";
	case WORKER_SANDBOX_STAGE_SETGID:
		return "setgid";
	case WORKER_SANDBOX_STAGE_SETUID:
		return "setuid";
	case WORKER_SANDBOX_STAGE_VERIFY_IDS:
		return "checking the uid/gid after the switch";
	case WORKER_SANDBOX_STAGE_NO_NEW_PRIVS:
		return "prctl(PR_SET_NO_NEW_PRIVS)";
	case WORKER_SANDBOX_STAGE_LANDLOCK:
		return "landlock_restrict_self";
	case WORKER_SANDBOX_STAGE_SECCOMP:
		return "seccomp(SECCOMP_SET_MODE_FILTER)";
	}
	return "setup";
}

void worker_sandbox_free(struct worker_sandbox *sb)
{
	free(sb->filter.filter);
	sb->filter.filter = NULL;
	sb->filter.len = 0;
	if (sb->landlock_fd >= 0)
		close(sb->landlock_fd);
	sb->landlock_fd = -1;
}
