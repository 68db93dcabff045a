#include "builtins.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
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
