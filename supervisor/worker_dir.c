/* The workers' runtime directory: one private directory per run, one below
 * it per worker holding its link's socket, and the paths every worker may
 * read. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

static bool usable_base(const char *dir)
{
	struct stat st;
	/* Short enough for a socket path (108 bytes) below it. */
	return dir && *dir == '/' && strlen(dir) <= 60 && stat(dir, &st) == 0 &&
	       S_ISDIR(st.st_mode);
}

/* $XDG_RUNTIME_DIR for an unprivileged user, else $TMPDIR, else /tmp. */
int worker_rundir_create(struct worker_rundir *d, struct sg_err *err)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	if (geteuid() == 0 || !usable_base(base))
		base = getenv("TMPDIR");
	if (!usable_base(base))
		base = "/tmp";
	snprintf(d->path, sizeof(d->path), "%s/sysgate-XXXXXX", base);
	if (!mkdtemp(d->path)) {
		int e = errno;
		d->path[0] = '\0';
		return err_sys(err, e, "cannot create a runtime directory in %s", base);
	}
	return 0;
}

/* sysgate's own directory and its ../lib: the SDK library a worker links. */
static void own_paths(struct worker_rundir *d, struct worker_env *env)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *dir = dirname(exe);
	d->extra_read[env->n_read++] = strdup(dir);
	char lib[PATH_MAX], real[PATH_MAX];
	snprintf(lib, sizeof(lib), "%s/../lib", dir);
	if (realpath(lib, real))
		d->extra_read[env->n_read++] = strdup(real);
	/* strdup failures leave a NULL, skipped by the worker module's stat. */
	size_t k = 0;
	for (size_t i = 0; i < env->n_read; i++)
		if (d->extra_read[i])
			d->extra_read[k++] = d->extra_read[i];
	env->n_read = k;
}

int worker_rundir_read_paths(struct worker_rundir *d, struct worker_env *env,
			     const char *const *worker_read, size_t n_worker_read,
			     struct sg_err *err)
{
	own_paths(d, env);
	size_t n = env->n_read + n_worker_read;
	d->read_paths = calloc(n ? n : 1, sizeof(*d->read_paths));
	if (!d->read_paths)
		return err_set(err, ENOMEM, "out of memory for the workers' read paths");
	for (size_t i = 0; i < env->n_read; i++)
		d->read_paths[i] = d->extra_read[i];
	for (size_t i = 0; i < n_worker_read; i++) {
		const char *p = worker_read[i];
		if (access(p, F_OK) < 0)
			return err_sys(err, errno, "--worker-read %s", p);
		d->read_paths[env->n_read + i] = p;
	}
	env->n_read = n;
	env->read = d->read_paths;
	return 0;
}

int worker_rundir_share(struct worker_rundir *d, const struct worker_env *env,
			const struct worker_sandbox *first, struct sg_err *err)
{
	if (!first->change_ids)
		return 0; /* unprivileged: the workers are ours */
	if (!env->user) {
		/* Own uids: they pass through, none may list or enter another's. */
		if (chmod(d->path, 0711) < 0)
			return err_sys(err, errno, "cannot open %s to the workers", d->path);
		return 0;
	}
	if (chown(d->path, first->uid, first->gid) < 0)
		return err_sys(err, errno, "cannot hand %s to the workers' user", d->path);
	return 0;
}

void worker_rundir_remove(struct worker_rundir *d)
{
	if (d->path[0] && rmdir(d->path) < 0)
		log_error("cannot remove %s: %s", d->path, strerror(errno));
	d->path[0] = '\0';
}

void worker_rundir_free(struct worker_rundir *d)
{
	free(d->read_paths);
	d->read_paths = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(d->extra_read); i++) {
		free(d->extra_read[i]);
		d->extra_read[i] = NULL;
	}
}

int worker_dir_create(struct worker *w, const struct worker_env *env, struct sg_err *err)
{
	size_t len = strlen(env->rundir) + 16;
	w->dir = malloc(len);
	w->url = malloc(len + 16);
	if (!w->dir || !w->url)
		return err_set(err, ENOMEM, "--worker '%s': out of memory", w->spec);
	snprintf(w->dir, len, "%s/w%u", env->rundir, w->index);
	snprintf(w->url, len + 16, "ipc://%s/link", w->dir);
	if (mkdir(w->dir, 0700) < 0)
		return err_sys(err, errno, "--worker '%s': cannot create %s", w->spec, w->dir);
	if (w->sandbox.change_ids && chown(w->dir, w->sandbox.uid, w->sandbox.gid) < 0)
		return err_sys(err, errno, "--worker '%s': cannot hand %s to the worker's user",
			       w->spec, w->dir);
	return 0;
}

void worker_dir_remove(struct worker *w)
{
	if (!w->dir)
		return;
	char sock_path[PATH_MAX];
	snprintf(sock_path, sizeof(sock_path), "%s/link", w->dir);
	unlink(sock_path);
	rmdir(w->dir);
}
