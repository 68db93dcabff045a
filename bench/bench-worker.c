/* The worker side of the benchmark: a C handler worker (SDK, linked statically) that answers
 * the syscall sg_bench_loop calls, doing as little as each measured path needs.
 *   sg_bench_worker MODE     (started by `sysgate run --worker 'sg_bench_worker MODE'`)
 * MODE:
 *   continue  getppid: continue at once (the bare supervisor -> worker -> supervisor hop)
 *   nopath    faccessat: continue at once, without reading the path (the reference for path:
 *             the same syscall and snapshot, minus the handler's look at the path)
 *   path      faccessat: read the path the supervisor pre-read for argument 1 (it travels
 *             in the snapshot), check it is "/", continue
 *   read      pwrite64: read the 256-byte buffer at argument 1 with one sg_ctx_read (a
 *             round trip through the supervisor's memory proxy), check its bytes, continue
 *
 * A check that fails makes the handler fail, and the registration's exception policy is
 * DENY_EIO: the loop sees EIO instead of the expected result and stops with an error, so a
 * broken path can never pass for a fast one.  Nothing is printed per call. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sysgate.h>

#include "bench-shared.h"

#define PROG "sg_bench_worker"

static int on_continue(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx;
	(void)ud;
	sg_continue(out);
	return 0;
}

static int on_path(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ud;
	const char *path = sg_ctx_path(ctx, 1);
	if (!path || strcmp(path, BENCH_PATH) != 0)
		return -1;
	sg_continue(out);
	return 0;
}

static int on_read(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ud;
	unsigned char buf[BENCH_READ_LEN];
	if ((int)sg_ctx_arg(ctx, 0) != BENCH_READ_FD ||
	    sg_ctx_read(ctx, sg_ctx_arg(ctx, 1), buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return -1;
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != bench_read_byte(i))
			return -1;
	sg_continue(out);
	return 0;
}

static const struct mode {
	const char *name, *syscall;
	sg_handler_fn fn;
} modes[] = {
	{ "continue", "getppid", on_continue },
	{ "nopath", "faccessat", on_continue },
	{ "path", "faccessat", on_path },
	{ "read", "pwrite64", on_read },
};

int main(int argc, char **argv)
{
	const struct mode *m = NULL;
	for (size_t i = 0; argc == 2 && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(argv[1], modes[i].name) == 0)
			m = &modes[i];
	if (!m) {
		fprintf(stderr, "usage: " PROG " continue|nopath|path|read\n");
		return 2;
	}

	sg_worker *w = sg_worker_new(PROG);
	if (!w) {
		fprintf(stderr, PROG ": cannot create the worker: out of memory\n");
		return 1;
	}
	int r = sg_worker_on(w, m->syscall, m->fn, NULL, SG_EXC_DENY_EIO);
	if (r < 0)
		fprintf(stderr, PROG ": cannot register %s: %s\n", m->syscall, strerror(-r));
	else
		r = sg_worker_run(w); /* prints its own cause on failure */
	sg_worker_free(w);
	return r == 0 ? 0 : 1;
}
