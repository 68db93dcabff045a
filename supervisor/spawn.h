/* Starting the confined child. In the forked child, in order: new process
 * group, no_new_privs, Landlock, seccomp filter, then execve. Everything that
 * can fail with a useful message is prepared in the parent beforehand; the
 * child only makes the few syscalls that apply it.
 *
 * The listener fd is created in the child by seccomp(2). The child publishes
 * its number in a shared page and the parent takes a copy with pidfd_getfd;
 * the child waits for the parent's go-ahead before execve (which closes its
 * copy). No child syscall after the filter is needed for the hand-over, so a
 * trapped sendmsg, write or futex cannot deadlock it. Where pidfd_getfd is
 * denied (a sysgate nested in another), the listener comes over a socket
 * pair instead, if sendmsg is not trapped. */
#ifndef SYSGATE_SPAWN_H
#define SYSGATE_SPAWN_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "filter.h"
#include "util.h"

struct spawn_spec {
	const char *path; /* resolved executable */
	char *const *argv;
	int landlock_fd; /* -1: none */
	const struct filter_prog *prog;
	sigset_t child_sigmask;
	bool sigpipe_ignored; /* by our caller: keep it so; else SIG_DFL */
	/* sendmsg is neither trapped nor denied by the child's own filter: the
	 * child may also pass the listener over a socket, for when pidfd_getfd
	 * is refused (under another sysgate, which denies it). */
	bool may_send_listener;
	/* Capabilities: drop_caps empties the effective, permitted, inheritable
	 * and ambient sets, and the bounding set too when drop_bounding (needs
	 * CAP_SETPCAP: as root). */
	bool drop_caps, drop_bounding;
	/* set_user: run as uid/gid with these supplementary groups. */
	bool set_user;
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t n_groups;
};

struct spawn_shared; /* the page shared with the child until execve */

struct spawn_child {
	pid_t pid;
	int pidfd;
	int listener; /* -1 when nothing is trapped */
	bool wait_killable;
	struct spawn_shared *shared;
};

/* Forks and confines the child and takes its listener. The child is left
 * waiting before execve; spawn_release lets it run. */
int spawn_start(const struct spawn_spec *spec, struct spawn_child *out, struct sg_err *err);

/* Lets the child call execve. */
void spawn_release(struct spawn_child *c);

/* After the child exited: errno of a failed execve, or 0. */
int spawn_exec_errno(const struct spawn_child *c);

void spawn_free(struct spawn_child *c);

/* PATH lookup as execvp does it. Returns a malloc'd path, or NULL with errno
 * ENOENT (not found) or EACCES (found, not executable). */
char *spawn_resolve(const char *cmd);

#endif
