/* sg-inject: a test worker (C SDK) serving a virtual file. An openat of
 * PATH gets a new fd holding CONTENT (inject_bytes); every other open runs
 * as usual.
 *
 *   sg-inject [--writable] [--no-cloexec] [--track] PATH CONTENT
 *
 * --track: the injection is tracked (sg_inject_tracked, cookie COOKIE) and
 * read is served too: the worker prints "injected: fd=F cookie=C" when it
 * hears the fd number the process got (sg_worker_on_injected), then
 * "tracked read N" for each read of exactly that fd by that process, and
 * lets every read run. Output lines go to stdout, flushed one by one. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sysgate.h>

#define PROG "sg-inject"
/* All 64 bits used, the top one set: a cookie travels whole. */
#define COOKIE UINT64_C(0xfedcba9876543210)

struct virtual_file {
	const char *path;
	const char *content;
	unsigned flags;
	bool track;
	/* --track: the fd the supervisor reported (-1: none yet) and the reads
	 * seen on it. The callback runs on the receiving thread, handlers on
	 * the pool: lock guards these. */
	pthread_mutex_t lock;
	pid_t tracked_pid;
	int tracked_fd;
	unsigned long tracked_reads;
};

static int on_openat(const sg_ctx *ctx, sg_action *out, void *ud)
{
	struct virtual_file *vf = ud;
	const char *path = sg_ctx_path(ctx, 1);
	if (!path || strcmp(path, vf->path) != 0) {
		sg_continue(out);
		return 0;
	}
	size_t len = strlen(vf->content);
	int r = vf->track ? sg_inject_tracked(out, vf->content, len, vf->flags, COOKIE)
			  : sg_inject_bytes(out, vf->content, len, vf->flags);
	if (r < 0)
		fprintf(stderr, PROG ": inject: %s\n", strerror(-r));
	return r < 0;
}

/* The fd is known here before the process can read it. */
static void on_injected(pid_t pid, int fd, uint64_t cookie, void *ud)
{
	struct virtual_file *vf = ud;
	pthread_mutex_lock(&vf->lock);
	vf->tracked_pid = pid;
	vf->tracked_fd = fd;
	vf->tracked_reads = 0;
	printf("injected: fd=%d cookie=%" PRIu64 "\n", fd, cookie);
	fflush(stdout);
	pthread_mutex_unlock(&vf->lock);
}

static int on_read(const sg_ctx *ctx, sg_action *out, void *ud)
{
	struct virtual_file *vf = ud;
	pthread_mutex_lock(&vf->lock);
	if (vf->tracked_fd >= 0 && sg_ctx_pid(ctx) == vf->tracked_pid &&
	    (int)sg_ctx_arg(ctx, 0) == vf->tracked_fd) {
		printf("tracked read %lu\n", ++vf->tracked_reads);
		fflush(stdout);
	}
	pthread_mutex_unlock(&vf->lock);
	sg_continue(out);
	return 0;
}

int main(int argc, char **argv)
{
	struct virtual_file vf = { .tracked_fd = -1 };
	int i = 1;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--writable"))
			vf.flags |= SG_INJECT_WRITABLE;
		else if (!strcmp(argv[i], "--no-cloexec"))
			vf.flags |= SG_INJECT_NO_CLOEXEC;
		else if (!strcmp(argv[i], "--track"))
			vf.track = true;
		else
			break;
	}
	if (argc - i != 2) {
		fprintf(stderr,
			"usage: " PROG " [--writable] [--no-cloexec] [--track] PATH CONTENT\n");
		return 2;
	}
	vf.path = argv[i];
	vf.content = argv[i + 1];
	pthread_mutex_init(&vf.lock, NULL);
	sg_worker *w = sg_worker_new(PROG);
	if (!w)
		return 1;
	const char *what = "openat";
	int r = sg_worker_on(w, what, on_openat, &vf, SG_EXC_DENY_EIO);
	if (r == 0 && vf.track) {
		what = "read";
		r = sg_worker_on(w, what, on_read, &vf, SG_EXC_DENY_EIO);
		if (r == 0) {
			what = "injected";
			r = sg_worker_on_injected(w, on_injected, &vf);
		}
	}
	if (r == 0)
		r = sg_worker_run(w);
	else
		fprintf(stderr, PROG ": %s: %s\n", what, strerror(-r));
	sg_worker_free(w);
	pthread_mutex_destroy(&vf.lock);
	return r == 0 ? 0 : 1;
}
