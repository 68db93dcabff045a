/* sg-droplink: a test worker (C SDK) whose link to the supervisor drops in
 * the middle of a run, as a transport failure would drop it, while the
 * process lives on: the fault behind issue 12 item 17 (a worker that left
 * a run on its own with exit status 0).
 *
 *   sg-droplink [--after N] [MODE]
 *
 * MODE is ignored: it lets the worker stand in for sg_bench_worker, as
 * bench/soak.sh's own check does (a run whose worker leaves must fail).
 * It answers getppid with continue (policy DENY_EIO). In the handler of
 * notification N+1 (default N = 2) it shuts down every socket it holds,
 * which is its nng link (the fast channel is memory and an eventfd), then
 * answers continue. The SDK must report the lost link and sg_worker_run()
 * fail; the worker exits with 1 then, with 0 only after a Goodbye. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <sysgate.h>

#define PROG "sg-droplink"

static atomic_long calls;
static long after = 2;

/* Every socket of ours, shut down: our end of the link stops at once. */
static void drop_link(void)
{
	for (int fd = 3; fd < 1024; fd++) {
		int type;
		socklen_t len = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
			shutdown(fd, SHUT_RDWR);
	}
	fprintf(stderr, PROG ": dropped the link\n");
}

static int handle(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx;
	(void)ud;
	if (atomic_fetch_add(&calls, 1) == after)
		drop_link();
	sg_continue(out);
	return 0;
}

int main(int argc, char **argv)
{
	int i = 1;
	if (argc >= 3 && strcmp(argv[1], "--after") == 0) {
		char *end;
		after = strtol(argv[2], &end, 10);
		i = *end || after < 0 ? argc + 1 : 3;
	}
	if (argc - i > 1 || i > argc) {
		fprintf(stderr, "usage: " PROG " [--after N] [MODE]\n");
		return 2;
	}
	sg_worker *w = sg_worker_new(PROG);
	if (!w) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	int r = sg_worker_on(w, "getppid", handle, NULL, SG_EXC_DENY_EIO);
	if (r == 0)
		r = sg_worker_run(w); /* prints its cause on failure */
	else
		fprintf(stderr, PROG ": cannot register getppid: %s\n", strerror(-r));
	sg_worker_free(w);
	return r == 0 ? 0 : 1;
}
