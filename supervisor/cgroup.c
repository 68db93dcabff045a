#include "cgroup.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static bool word_in_list(const char *list, const char *word, const char *seps)
{
	size_t n = strlen(word);
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, seps);
		if (len == n && strncmp(p, word, n) == 0)
			return true;
		p += len;
		p += strspn(p, seps);
	}
	return false;
}

/* Our cgroup's path in the hierarchy with `controller` (NULL: cgroup2),
 * from /proc/self/cgroup. */
static int own_path(const char *controller, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	char line[4096];
	int r = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		bool match = controller ? word_in_list(c1 + 1, controller, ",")
					: strcmp(line, "0:") == 0 && c1[1] == '\0';
		if (match) {
			r = snprintf(out, len, "%s", c2 + 1) < (int)len ? 0 : -ENAMETOOLONG;
			break;
		}
	}
	fclose(f);
	return r;
}

/* The directory of our own cgroup in the hierarchy with `controller`
 * (NULL: cgroup2), through /proc/self/mountinfo. */
static int own_dir(const char *controller, char *out, size_t len)
{
	char path[4096];
	int r = own_path(controller, path, sizeof(path));
	if (r < 0)
		return r;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	char line[8192];
	r = -ENOENT;
	while (r == -ENOENT && fgets(line, sizeof(line), f)) {
		/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE SRC SUPEROPTS" */
		char *fields[5], *save = NULL, *tok = strtok_r(line, " \n", &save);
		int n = 0;
		for (; tok && n < 5; tok = strtok_r(NULL, " \n", &save))
			fields[n++] = tok;
		while (tok && strcmp(tok, "-") != 0)
			tok = strtok_r(NULL, " \n", &save);
		char *fstype = strtok_r(NULL, " \n", &save);
		(void)strtok_r(NULL, " \n", &save);
		char *superopts = strtok_r(NULL, " \n", &save);
		if (n < 5 || !fstype || !superopts)
			continue;
		if (controller ? strcmp(fstype, "cgroup") != 0 ||
					 !word_in_list(superopts, controller, ",")
			       : strcmp(fstype, "cgroup2") != 0)
			continue;
		/* Escaped names (\040) are not worth decoding here. */
		if (strchr(fields[4], '\\'))
			continue;
		const char *root = fields[3], *rest = path;
		size_t rl = strlen(root);
		if (strcmp(root, "/") != 0) {
			if (strncmp(path, root, rl) != 0 || (path[rl] && path[rl] != '/'))
				continue; /* our cgroup is not visible under this mount */
			rest = path + rl;
		}
		r = snprintf(out, len, "%s%s", fields[4], strcmp(rest, "/") == 0 ? "" : rest) <
				    (int)len
			    ? 0
			    : -ENAMETOOLONG;
	}
	fclose(f);
	return r;
}

static void node_init(struct cgroup_node *n)
{
	n->parent_fd = n->procs_fd = -1;
	n->name[0] = '\0';
}

static void node_free(struct cgroup_node *n)
{
	if (n->procs_fd >= 0)
		close(n->procs_fd);
	if (n->parent_fd >= 0) {
		/* Empty by now (the sandbox was killed and reaped); EBUSY otherwise,
		 * which leaves an empty-to-be directory behind, nothing running. */
		if (unlinkat(n->parent_fd, n->name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			log_verbose("cgroup %s: cannot remove: %s", n->name, strerror(errno));
		close(n->parent_fd);
	}
	node_init(n);
}

/* Creates "sysgate-PID" under our own cgroup of that hierarchy and opens its
 * cgroup.procs. Returns the new directory's fd, or -errno (nothing left). */
static int node_create(struct cgroup_node *n, const char *controller, const char *what, char *why,
		       size_t why_len)
{
	char dir[4096];
	int r = own_dir(controller, dir, sizeof(dir));
	if (r < 0) {
		snprintf(why, why_len, "no %s hierarchy mounted: %s", what, strerror(-r));
		return r;
	}
	_cleanup_close_ int parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0) {
		r = -errno;
		snprintf(why, why_len, "%.160s: %s", dir, strerror(errno));
		return r;
	}
	/* Moving a process between cgroups needs write access to the common
	 * ancestor's cgroup.procs (cgroup2 delegation): ours. */
	if (faccessat(parent, "cgroup.procs", W_OK, AT_EACCESS) < 0) {
		r = -errno;
		snprintf(why, why_len, "%.160s/cgroup.procs: %s", dir, strerror(errno));
		return r;
	}
	snprintf(n->name, sizeof(n->name), "sysgate-%d", (int)getpid());
	if (mkdirat(parent, n->name, 0755) < 0) {
		r = -errno;
		snprintf(why, why_len, "mkdir %.160s/%s: %s", dir, n->name, strerror(errno));
		return r;
	}
	n->parent_fd = steal_fd(&parent);
	int fd = openat(n->parent_fd, n->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		n->procs_fd = openat(fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || n->procs_fd < 0) {
		r = -errno;
		snprintf(why, why_len, "%.160s/%s/cgroup.procs: %s", dir, n->name, strerror(errno));
		if (fd >= 0)
			close(fd);
		node_free(n);
		return r;
	}
	return fd;
}

static int write_at(int dir, const char *file, const char *text)
{
	_cleanup_close_ int fd = openat(dir, file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return write_all(fd, text, strlen(text));
}

static bool has_controller(int dir, const char *controller)
{
	_cleanup_close_ int fd = openat(dir, "cgroup.controllers", O_RDONLY | O_CLOEXEC);
	char buf[512];
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return word_in_list(buf, controller, " \n");
}

void cgroup_init(struct cgroup *cg)
{
	node_init(&cg->v2);
	node_init(&cg->pids_v1);
	cg->kill_fd = cg->events_fd = -1;
	cg->pids_via = NULL;
	cg->pids_events_fd = -1;
	cg->why_no_kill[0] = '\0';
}

void cgroup_create(struct cgroup *cg, long max_procs)
{
	char limit[32];
	snprintf(limit, sizeof(limit), "%ld", max_procs);

	_cleanup_close_ int v2 =
		node_create(&cg->v2, NULL, "cgroup2", cg->why_no_kill, sizeof(cg->why_no_kill));
	if (v2 >= 0) {
		cg->kill_fd = openat(v2, "cgroup.kill", O_WRONLY | O_CLOEXEC);
		cg->events_fd = openat(v2, "cgroup.events", O_RDONLY | O_CLOEXEC);
		if (cg->kill_fd < 0)
			snprintf(cg->why_no_kill, sizeof(cg->why_no_kill),
				 "cgroup.kill: %s (kernel older than 5.14?)", strerror(errno));
		if (max_procs > 0 && has_controller(v2, "pids") &&
		    write_at(v2, "pids.max", limit) == 0) {
			cg->pids_via = "cgroup2 pids.max";
			cg->pids_events_fd = openat(v2, "pids.events", O_RDONLY | O_CLOEXEC);
		}
		if (cg->kill_fd < 0 && !cg->pids_via)
			node_free(&cg->v2); /* of no use */
	}
	if (max_procs > 0 && !cg->pids_via) {
		char why[256];
		_cleanup_close_ int v1 =
			node_create(&cg->pids_v1, "pids", "cgroup v1 pids", why, sizeof(why));
		if (v1 >= 0 && write_at(v1, "pids.max", limit) == 0) {
			cg->pids_via = "cgroup v1 pids.max";
			cg->pids_events_fd = openat(v1, "pids.events", O_RDONLY | O_CLOEXEC);
		} else if (v1 >= 0)
			node_free(&cg->pids_v1);
		else
			log_verbose("--max-procs: no pids cgroup: %s", why);
	}
	if (cg->kill_fd >= 0)
		log_verbose("teardown through cgroup.kill of %s", cg->v2.name);
	else
		log_verbose("no cgroup.kill (%s): teardown walks /proc", cg->why_no_kill);
}

int cgroup_attach(struct cgroup *cg, pid_t pid, struct sg_err *err)
{
	char text[16];
	snprintf(text, sizeof(text), "%d", (int)pid);
	struct cgroup_node *nodes[] = { &cg->v2, &cg->pids_v1 };
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		if (nodes[i]->procs_fd < 0)
			continue;
		int r = write_all(nodes[i]->procs_fd, text, strlen(text));
		if (r < 0)
			return err_sys(err, -r, "cannot move the command into cgroup %s",
				       nodes[i]->name);
	}
	return 0;
}

long cgroup_pids_refused(struct cgroup *cg)
{
	char buf[128];
	ssize_t n =
		cg->pids_events_fd >= 0 ? pread(cg->pids_events_fd, buf, sizeof(buf) - 1, 0) : -1;
	if (n < 0)
		return cg->pids_events_fd >= 0 ? -errno : -ENOENT;
	buf[n] = '\0';
	long v;
	/* "max N": forks refused because pids.max was reached. */
	return sscanf(buf, "max %ld", &v) == 1 ? v : -EIO;
}

int cgroup_populated(struct cgroup *cg)
{
	char buf[256];
	ssize_t n = cg->events_fd >= 0 ? pread(cg->events_fd, buf, sizeof(buf) - 1, 0) : -1;
	if (n < 0)
		return cg->events_fd >= 0 ? -errno : -ENOENT;
	buf[n] = '\0';
	const char *p = strstr(buf, "populated ");
	return p ? p[10] == '1' : -EIO;
}

int cgroup_kill(struct cgroup *cg)
{
	if (cg->kill_fd < 0)
		return -ENOTSUP;
	return write_all(cg->kill_fd, "1", 1);
}

void cgroup_free(struct cgroup *cg)
{
	if (cg->kill_fd >= 0)
		close(cg->kill_fd);
	cg->kill_fd = -1;
	if (cg->pids_events_fd >= 0)
		close(cg->pids_events_fd);
	if (cg->events_fd >= 0)
		close(cg->events_fd);
	cg->events_fd = -1;
	cg->pids_events_fd = -1;
	node_free(&cg->v2);
	node_free(&cg->pids_v1);
}
