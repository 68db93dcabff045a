/* The sandbox's own cgroups: one on the cgroup2 hierarchy, whose cgroup.kill
 * ends the whole tree at once (no process can leave a cgroup on its own, so
 * double-forked daemons and processes that lowered our limits are caught),
 * and one with the pids controller for --max-procs (cgroup2 where the
 * controller is enabled for our cgroup, else the v1 "pids" hierarchy of a
 * hybrid host).
 *
 * Every fd the teardown needs is opened here, before the command runs: the
 * command cannot keep us from killing it by exhausting or lowering our
 * RLIMIT_NOFILE. Without write access to a cgroup (an unprivileged sysgate
 * without a delegated subtree) nothing is created and the caller falls back
 * to walking /proc (procs.h). */
#ifndef SYSGATE_CGROUP_H
#define SYSGATE_CGROUP_H

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

/* A cgroup directory we created: removed again by cgroup_free. */
struct cgroup_node {
	int parent_fd; /* the directory it was created in */
	int procs_fd;  /* its cgroup.procs, open for writing */
	char name[32];
};

struct cgroup {
	struct cgroup_node v2;      /* parent_fd -1: none */
	struct cgroup_node pids_v1; /* parent_fd -1: none */
	int kill_fd;                /* v2 cgroup.kill, -1: none */
	int events_fd;              /* v2 cgroup.events, -1: none */
	/* Where --max-procs is enforced: "cgroup2 pids.max", "cgroup v1 pids.max"
	 * or NULL (not by a cgroup). */
	const char *pids_via;
	int pids_events_fd;    /* its pids.events, -1: none */
	char why_no_kill[256]; /* why kill_fd is -1, for -v */
};

/* No cgroup yet: cgroup_free does nothing. */
void cgroup_init(struct cgroup *cg);

/* Creates the sandbox's cgroups. max_procs > 0: also limits them to that many
 * tasks. Never fails: what cannot be created is left out (kill_fd -1,
 * pids_via NULL) and the reason logged with -v. */
void cgroup_create(struct cgroup *cg, long max_procs);

/* Moves `pid` (the command, before execve) into every cgroup created. */
int cgroup_attach(struct cgroup *cg, pid_t pid, struct sg_err *err);

/* How many forks the pids controller refused so far, or -errno. */
long cgroup_pids_refused(struct cgroup *cg);

/* SIGKILLs every process of the sandbox cgroup; opens no file. -errno when
 * there is no such cgroup or the kernel refused. */
int cgroup_kill(struct cgroup *cg);

/* Has the sandbox cgroup live processes? 1, 0, or -errno; opens no file. */
int cgroup_populated(struct cgroup *cg);

/* Closes the fds and removes the (empty) cgroups. */
void cgroup_free(struct cgroup *cg);

#endif
