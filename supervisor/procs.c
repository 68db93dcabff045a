#include "procs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "util.h"

/* Parses /proc/PID/stat: "pid (comm) S ppid ...". comm may hold ')' so
 * the last ')' ends it. */
static int read_stat(pid_t pid, pid_t *ppid, char *state)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	int pp;
	if (!rp || sscanf(rp + 1, " %c %d", state, &pp) != 2)
		return -EIO;
	*ppid = pp;
	return 0;
}

pid_t procs_tgid(pid_t tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	pid_t tgid = -ESRCH;
	while (fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "Tgid: %d", &tgid) == 1)
			break;
	fclose(f);
	return tgid;
}

bool pids_contain(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = ((const struct proc_entry *)a)->pid, y = ((const struct proc_entry *)b)->pid;
	return (x > y) - (x < y);
}

static ssize_t find_pid(const struct proc_entry *v, size_t n, pid_t pid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid].pid == pid)
			return (ssize_t)mid;
		if (v[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void proc_list_free(struct proc_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

bool procs_contains(const struct proc_list *l, pid_t pid)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].pid == pid)
			return true;
	return false;
}

size_t procs_live(const struct proc_list *l)
{
	size_t live = 0;
	for (size_t i = 0; i < l->n; i++)
		live += !l->v[i].zombie;
	return live;
}

int procs_scan(pid_t root, const pid_t *exclude, size_t n_exclude, struct proc_list *out)
{
	out->v = NULL;
	out->n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	struct proc_entry *all = NULL;
	size_t n_all = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid_t pid = (pid_t)atoi(de->d_name);
		pid_t ppid;
		char state;
		if (read_stat(pid, &ppid, &state) < 0)
			continue; /* gone meanwhile */
		if (n_all == cap) {
			cap = cap ? cap * 2 : 256;
			struct proc_entry *v = realloc(all, cap * sizeof(*v));
			if (!v) {
				free(all);
				closedir(d);
				return -ENOMEM;
			}
			all = v;
		}
		all[n_all++] = (struct proc_entry){ pid, ppid, state == 'Z' || state == 'X' };
	}
	closedir(d);

	/* Sort by pid so each parent link is a binary search, then settle every
	 * entry by walking up its parent chain; each entry is settled once, so
	 * a fork under --max-procs costs O(n log n), not O(n^2). */
	qsort(all, n_all, sizeof(*all), cmp_pid);
	signed char *state = calloc(n_all ? n_all : 1, 1); /* 0 ?, 1 in, -1 out */
	size_t *chain = malloc((n_all ? n_all : 1) * sizeof(*chain));
	if (!state || !chain) {
		free(state);
		free(chain);
		free(all);
		return -ENOMEM;
	}
	size_t n_marked = 0;
	for (size_t i = 0; i < n_all; i++) {
		size_t depth = 0, k = i;
		signed char verdict = -1;
		for (;;) {
			if (state[k]) {
				verdict = state[k];
				break;
			}
			if (pids_contain(exclude, n_exclude, all[k].pid) || depth == n_all)
				break; /* excluded subtree (or a cycle: stale snapshot) */
			chain[depth++] = k;
			if (all[k].ppid == root) {
				verdict = 1;
				break;
			}
			ssize_t parent = find_pid(all, n_all, all[k].ppid);
			if (parent < 0)
				break;
			k = (size_t)parent;
		}
		for (size_t c = 0; c < depth; c++)
			state[chain[c]] = verdict;
	}
	size_t k = 0;
	for (size_t i = 0; i < n_all; i++)
		if (state[i] == 1)
			all[k++] = all[i];
	n_marked = k;
	free(state);
	free(chain);
	out->v = all;
	out->n = n_marked;
	return 0;
}

int procs_kill_all(pid_t root, const pid_t *exclude, size_t n_exclude)
{
	struct proc_list l;
	int r = procs_scan(root, exclude, n_exclude, &l);
	if (r < 0)
		return r;
	int killed = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (l.v[i].zombie)
			continue;
		_cleanup_close_ int pidfd = sg_pidfd_open(l.v[i].pid, 0);
		if (pidfd < 0)
			continue;
		/* The pidfd pins the identity; if the pid was recycled its
		 * parent is no longer in the tree. */
		pid_t ppid;
		char state;
		if (read_stat(l.v[i].pid, &ppid, &state) < 0)
			continue;
		if (ppid != root && !procs_contains(&l, ppid))
			continue;
		if (sg_pidfd_send_signal(pidfd, SIGKILL) == 0)
			killed++;
	}
	proc_list_free(&l);
	return killed;
}

bool procs_may_signal(pid_t tgid, pid_t self, const pid_t *helpers, size_t n_helpers,
		      const struct proc_list *sandbox)
{
	if (tgid <= 1 || tgid == self || pids_contain(helpers, n_helpers, tgid))
		return false;
	return procs_contains(sandbox, tgid);
}
