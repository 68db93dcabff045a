#include "builtins.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>

#include "log.h"
#include "procs.h"

/* --- hostname ----------------------------------------------------------- */

static void hostname_handle(void *state, const struct seccomp_notif *req,
			    const struct childmem *mem, struct action *out)
{
	struct builtin_hostname *b = state;
	struct utsname u;
	if (uname(&u) < 0) {
		*out = (struct action){ ACTION_ERRNO, errno };
		return;
	}
	snprintf(u.nodename, sizeof(u.nodename), "%s", b->nodename);
	ssize_t n = childmem_write(mem, req->data.args[0], &u, sizeof(u));
	if (n == (ssize_t)sizeof(u))
		*out = (struct action){ ACTION_RETURN, 0 };
	else
		/* A bad buffer is the program's EFAULT, as the kernel would say. */
		*out = (struct action){ ACTION_ERRNO, n == -ENOENT ? EINTR : EFAULT };
}

int builtin_hostname_init(struct builtin_hostname *b, const char *name, struct chain_table *t,
			  struct sg_err *err)
{
	snprintf(b->nodename, sizeof(b->nodename), "%s", name);
	struct chain_link link = { .name = "hostname", .fn = hostname_handle, .state = b };
	int r = chain_append(t, SYS_uname, &link);
	if (r < 0)
		return err_sys(err, -r, "--hostname: cannot trap uname");
	return 0;
}

/* --- max-procs ---------------------------------------------------------- */

static void reservation_drop(struct builtin_max_procs *b, size_t i)
{
	free(b->reserved[i].known);
	b->reserved[i] = b->reserved[--b->n_reserved];
}

static int pid_push(pid_t **v, size_t *n, pid_t pid)
{
	pid_t *nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = pid;
	*v = nv;
	return 0;
}

/* A reservation ends when its fork is visible (a child of tgid we did not
 * know), when the process is gone, or when the same thread forks again (a
 * thread has one syscall in flight). Until then it counts as a live
 * process: over-counting only ever refuses a fork, never allows one. */
static void reservations_settle(struct builtin_max_procs *b, const struct proc_list *l,
				pid_t forking_tid)
{
	for (size_t i = 0; i < b->n_reserved;) {
		struct reservation *r = &b->reserved[i];
		bool done = r->tid == forking_tid || !procs_contains(l, r->tgid);
		for (size_t k = 0; !done && k < l->n; k++) {
			pid_t child = l->v[k].pid;
			if (l->v[k].ppid != r->tgid || pids_contain(r->known, r->n_known, child))
				continue;
			done = true;
			/* That child resolves this reservation only. */
			for (size_t j = 0; j < b->n_reserved; j++)
				if (j != i && b->reserved[j].tgid == r->tgid)
					pid_push(&b->reserved[j].known, &b->reserved[j].n_known, child);
		}
		if (done)
			reservation_drop(b, i);
		else
			i++;
	}
}

static bool is_thread_clone(const struct seccomp_notif *req)
{
#ifdef SYS_clone
	if (req->data.nr == SYS_clone)
		return req->data.args[0] & CLONE_THREAD;
#endif
	return false;
}

static void max_procs_handle(void *state, const struct seccomp_notif *req,
			     const struct childmem *mem, struct action *out)
{
	(void)mem;
	struct builtin_max_procs *b = state;
	/* clone3 keeps its flags in memory the child can change after we look;
	 * ENOSYS makes libc fall back to clone, whose flags are in a register. */
	if (req->data.nr == SYS_clone3) {
		*out = (struct action){ ACTION_ERRNO, ENOSYS };
		return;
	}
	if (is_thread_clone(req))
		return; /* threads are not processes */

	pid_t tgid = procs_tgid((pid_t)req->pid);
	if (tgid < 0) {
		*out = (struct action){ ACTION_ERRNO, EAGAIN };
		return;
	}
	pthread_mutex_lock(&b->lock);
	struct proc_list l;
	pid_t helpers[16];
	size_t n_helpers = b->helpers ? b->helpers(b->helpers_ctx, helpers, ARRAY_SIZE(helpers)) : 0;
	if (procs_scan(b->supervisor, helpers, n_helpers, &l) < 0) {
		pthread_mutex_unlock(&b->lock);
		*out = (struct action){ ACTION_ERRNO, EAGAIN }; /* fail closed */
		return;
	}
	reservations_settle(b, &l, (pid_t)req->pid);
	size_t live = procs_live(&l) + b->n_reserved;
	if ((long)live >= b->limit) {
		*out = (struct action){ ACTION_ERRNO, EAGAIN };
		log_verbose("--max-procs %ld: refused a fork by pid %u (%zu live)", b->limit,
			    req->pid, live);
	} else {
		struct reservation r = { .tid = (pid_t)req->pid, .tgid = tgid };
		bool ok = true;
		for (size_t k = 0; ok && k < l.n; k++)
			if (l.v[k].ppid == tgid)
				ok = pid_push(&r.known, &r.n_known, l.v[k].pid) == 0;
		struct reservation *nv =
			ok ? realloc(b->reserved, (b->n_reserved + 1) * sizeof(*nv)) : NULL;
		if (!nv) {
			free(r.known);
			*out = (struct action){ ACTION_ERRNO, EAGAIN };
		} else {
			b->reserved = nv;
			b->reserved[b->n_reserved++] = r;
		}
	}
	proc_list_free(&l);
	pthread_mutex_unlock(&b->lock);
}

int builtin_max_procs_init(struct builtin_max_procs *b, long limit, struct chain_table *t,
			   struct sg_err *err)
{
	memset(b, 0, sizeof(*b));
	b->limit = limit;
	b->supervisor = getpid();
	pthread_mutex_init(&b->lock, NULL);
	struct chain_link link = { .name = "max-procs", .fn = max_procs_handle, .state = b };
	static const long nrs[] = {
#ifdef SYS_fork
		SYS_fork,
#endif
#ifdef SYS_vfork
		SYS_vfork,
#endif
		SYS_clone,
		SYS_clone3,
	};
	for (size_t i = 0; i < ARRAY_SIZE(nrs); i++) {
		int r = chain_append(t, nrs[i], &link);
		if (r < 0)
			return err_sys(err, -r, "--max-procs: cannot trap %s", syscalls_name(nrs[i]));
	}
	return 0;
}

void builtin_max_procs_free(struct builtin_max_procs *b)
{
	while (b->n_reserved)
		reservation_drop(b, 0);
	free(b->reserved);
	pthread_mutex_destroy(&b->lock);
}

/* --- unix-connect ------------------------------------------------------- */

static bool path_beneath(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (strncmp(path, dir, n) != 0)
		return false;
	return path[n] == '/' || path[n] == '\0' || (n == 1 && dir[0] == '/');
}

static bool unix_path_granted(const struct builtin_unix_connect *b, const char *path)
{
	for (size_t i = 0; i < b->n_beneath; i++)
		if (path_beneath(path, b->beneath[i]))
			return true;
	for (size_t i = 0; i < b->n_exact; i++)
		if (!strcmp(path, b->exact[i]))
			return true;
	return false;
}

static void unix_connect_handle(void *state, const struct seccomp_notif *req,
				const struct childmem *mem, struct action *out)
{
	const struct builtin_unix_connect *b = state;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	size_t len = (uint32_t)req->data.args[2];
	if (len > sizeof(sa))
		return; /* the kernel answers EINVAL */
	ssize_t n = childmem_read(mem, req->data.args[1], &sa, len);
	if (n == -ENOENT) {
		*out = (struct action){ ACTION_ERRNO, EINTR }; /* gone: nobody reads it */
		return;
	}
	if (n != (ssize_t)len) {
		*out = (struct action){ ACTION_ERRNO, n == -EFAULT ? EFAULT : EACCES };
		return;
	}
	size_t path_len = len > offsetof(struct sockaddr_un, sun_path)
				  ? len - offsetof(struct sockaddr_un, sun_path)
				  : 0;
	/* Other families, unnamed and abstract addresses (Landlock scopes
	 * those) are not this builtin's. */
	if (sa.sun_family != AF_UNIX || path_len == 0 || sa.sun_path[0] == '\0')
		return;
	char name[sizeof(sa.sun_path) + 1];
	memcpy(name, sa.sun_path, path_len);
	name[path_len] = '\0';

	/* Resolved as the trapped thread sees it: its root and its cwd. */
	char where[sizeof(name) + 64];
	snprintf(where, sizeof(where), "/proc/%u/%s/%s", req->pid, name[0] == '/' ? "root" : "cwd",
		 name);
	_cleanup_free_ char *real = realpath(where, NULL);
	int e = errno;
	if (childmem_id_valid(mem->listener, mem->id) < 0) {
		*out = (struct action){ ACTION_ERRNO, EINTR }; /* the pid may be another's now */
		return;
	}
	if (!real) {
		*out = (struct action){ ACTION_ERRNO, e == ENOMEM ? EACCES : e };
		return;
	}
	if (unix_path_granted(b, real))
		return;
	log_verbose("refused connect to unix socket %s by pid %u: not beneath -r/-w nor "
		    "--allow-unix",
		    real, req->pid);
	*out = (struct action){ ACTION_ERRNO, EACCES };
}

/* Canonical form of path; for a socket that does not exist yet, of its
 * directory plus its name. */
static char *canonical(const char *path)
{
	char *real = realpath(path, NULL);
	if (real || errno != ENOENT)
		return real;
	_cleanup_free_ char *copy = strdup(path);
	if (!copy)
		return NULL;
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
	if (slash)
		*slash = '\0';
	if (!*base) {
		errno = ENOENT;
		return NULL;
	}
	_cleanup_free_ char *real_dir = realpath(dir, NULL);
	if (!real_dir)
		return NULL;
	char *out;
	if (asprintf(&out, "%s%s%s", real_dir, strcmp(real_dir, "/") ? "/" : "", base) < 0)
		return NULL;
	return out;
}

/* Appends the canonical forms of paths to *v. */
static int canonical_append(char ***v, size_t *n_v, const struct strvec *paths, const char *opt,
			    bool may_be_absent, struct sg_err *err)
{
	char **nv = realloc(*v, (*n_v + paths->n + 1) * sizeof(*nv));
	if (!nv)
		return err_set(err, ENOMEM, "%s: out of memory", opt);
	*v = nv;
	for (size_t i = 0; i < paths->n; i++) {
		char *c = may_be_absent ? canonical(paths->v[i]) : realpath(paths->v[i], NULL);
		if (!c)
			return err_sys(err, errno, "%s %s", opt, paths->v[i]);
		nv[(*n_v)++] = c;
	}
	return 0;
}

int builtin_unix_connect_init(struct builtin_unix_connect *b, const struct config *cfg,
			      struct chain_table *t, struct sg_err *err)
{
	memset(b, 0, sizeof(*b));
	int r = canonical_append(&b->beneath, &b->n_beneath, &cfg->read_paths, "--read", false,
				 err);
	if (r >= 0)
		r = canonical_append(&b->beneath, &b->n_beneath, &cfg->write_paths, "--write",
				     false, err);
	if (r >= 0)
		r = canonical_append(&b->exact, &b->n_exact, &cfg->allow_unix, "--allow-unix", true,
				     err);
	if (r < 0)
		return r;
	struct chain_link link = { .name = "unix-connect", .fn = unix_connect_handle, .state = b };
	r = chain_append(t, SYS_connect, &link);
	if (r < 0)
		return err_sys(err, -r, "cannot trap connect for the unix socket check");
	return 0;
}

void builtin_unix_connect_free(struct builtin_unix_connect *b)
{
	for (size_t i = 0; i < b->n_beneath; i++)
		free(b->beneath[i]);
	for (size_t i = 0; i < b->n_exact; i++)
		free(b->exact[i]);
	free(b->beneath);
	free(b->exact);
	memset(b, 0, sizeof(*b));
}
