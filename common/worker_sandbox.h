/* Confinement of a worker process before its code runs (docs/worker-sandbox.md): resource
 * limits, an unprivileged uid when sysgate runs as root, no_new_privs, a
 * Landlock domain and a seccomp filter. Like landlock.h, split in two:
 * everything that can fail for a reason worth a message is prepared in the
 * parent; the forked child applies it with async-signal-safe syscalls only. */
#ifndef SYSGATE_WORKER_SANDBOX_H
#define SYSGATE_WORKER_SANDBOX_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "util.h"

struct worker_sandbox_spec {
	/* User to run as when sysgate runs as root (e.g. "nobody"); required
	 * then, ignored otherwise. */
	const char *user;
	/* Without user: this uid, and the gid of the same number (a worker's
	 * own domain, nobody's name), when sysgate runs as root. */
	uid_t uid;
	/* Read + execute beneath: the worker's binary, script and libraries
	 * must be reachable from these. No defaults. */
	const char *const *read_paths;
	size_t n_read;
	/* Read, write, create beneath. */
	const char *const *write_paths;
	size_t n_write;
	/* TCP bind/connect allowed; without it only unix sockets can be made. */
	bool allow_tcp;
};

struct worker_sandbox_rlimit {
	int resource; /* RLIMIT_* */
	struct rlimit limit;
};

#define WORKER_SANDBOX_MAX_RLIMITS 2

/* Everything worker_sandbox_prepare computed, owned. */
struct worker_sandbox {
	struct sock_fprog filter; /* seccomp program, heap-allocated */
	int landlock_fd;          /* ruleset fd, -1 if none */
	bool change_ids;          /* switch to uid/gid below */
	uid_t uid;
	gid_t gid;
	struct worker_sandbox_rlimit rlimits[WORKER_SANDBOX_MAX_RLIMITS];
	size_t n_rlimits;
};

/* The step of worker_sandbox_apply_staged that failed. */
enum worker_sandbox_stage {
	WORKER_SANDBOX_STAGE_NONE = 0,
	WORKER_SANDBOX_STAGE_RLIMIT,
	WORKER_SANDBOX_STAGE_SETGROUPS,
	WORKER_SANDBOX_STAGE_SETGID,
	WORKER_SANDBOX_STAGE_SETUID,
	WORKER_SANDBOX_STAGE_VERIFY_IDS,
	WORKER_SANDBOX_STAGE_NO_NEW_PRIVS,
	WORKER_SANDBOX_STAGE_LANDLOCK,
	WORKER_SANDBOX_STAGE_SECCOMP,
};

/* Builds the sandbox for spec into *sb. Fails (with *sb left empty and safe
 * to free) if the kernel lacks Landlock or a feature the spec needs, if the
 * user is unknown or is root, if sysgate runs as root and spec->user is
 * NULL, or if a path cannot be opened; the message names the culprit. */
int worker_sandbox_prepare(struct worker_sandbox *sb, const struct worker_sandbox_spec *spec,
			   struct sg_err *err);

/* Applies sb to the calling process, meant for a freshly forked child, in
 * this order: rlimits, setgroups/setgid/setuid (verified), no_new_privs,
 * Landlock, seccomp. Closes the Landlock ruleset fd once enforced.
 * Async-signal-safe. Returns 0 or a negative errno; *failed (if not NULL)
 * receives the stage that failed, WORKER_SANDBOX_STAGE_NONE on success. */
int worker_sandbox_apply_staged(const struct worker_sandbox *sb, enum worker_sandbox_stage *failed);

/* worker_sandbox_apply_staged without the stage. */
int worker_sandbox_apply(const struct worker_sandbox *sb);

/* Static name of a stage, for the parent's message. */
const char *worker_sandbox_stage_name(enum worker_sandbox_stage stage);

/* Releases what prepare allocated; sb is left empty. Idempotent. */
void worker_sandbox_free(struct worker_sandbox *sb);

#endif
