/* The sandbox's process tree. sysgate is a child subreaper, so every
 * sandbox process stays a descendant of the supervisor until it is reaped;
 * the tree is read from /proc (ppid links), excluding the supervisor's own
 * helpers (workers) and their descendants. */
#ifndef SYSGATE_PROCS_H
#define SYSGATE_PROCS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct proc_entry {
	pid_t pid;
	pid_t ppid;
	bool zombie;
};

struct proc_list {
	struct proc_entry *v;
	size_t n;
};

/* Lists the descendants of `root` (the supervisor), skipping the subtrees of
 * the pids in `exclude`. */
int procs_scan(pid_t root, const pid_t *exclude, size_t n_exclude, struct proc_list *out);
void proc_list_free(struct proc_list *l);

/* Non-zombie entries. */
size_t procs_live(const struct proc_list *l);

/* Is pid in the list? */
bool procs_contains(const struct proc_list *l, pid_t pid);

/* Is pid one of v[0..n)? */
bool pids_contain(const pid_t *v, size_t n, pid_t pid);

/* May the supervisor (pid `self`) signal process `tgid` on a worker's
 * behalf? Only a process of the sandbox: positive, not init, not the
 * supervisor, not one of the helpers (workers), and in `sandbox` (the
 * scan of the supervisor's descendants without the helpers' subtrees), so
 * never a group (0, -1, negative) and never one that left the tree. */
bool procs_may_signal(pid_t tgid, pid_t self, const pid_t *helpers, size_t n_helpers,
		      const struct proc_list *sandbox);

/* The process (thread group) of thread `tid`, or -errno. */
pid_t procs_tgid(pid_t tid);

/* Sends SIGKILL to every sandbox process through a pidfd, re-checking after
 * opening it that the pid still belongs to the tree, so a recycled pid
 * outside the sandbox is never signalled. Returns how many were signalled. */
int procs_kill_all(pid_t root, const pid_t *exclude, size_t n_exclude);

#endif
