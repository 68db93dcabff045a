/* sg-busy: a test worker (C SDK) whose handler takes time and reads the
 * trapped process's memory, so several handler threads are busy at once
 * and wait for memory replies while more snapshots arrive.
 *
 *   sg-busy [--syscall NAME] [--work-us N]
 *
 * Each notification of NAME (default getppid): N microseconds of "work"
 * (default 300), then an 8-byte read at the trapped instruction pointer
 * through the memory proxy; the answer is errno 77 (EBADE), or EIO if the
 * read failed. The policy is DENY_EPERM: a program that sees anything but
 * 77 saw a failure. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sysgate.h>

#define PROG "sg-busy"
#define ANSWER 77

static long work_us = 300;

static int handle(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ud;
	struct timespec ts = { .tv_sec = work_us / 1000000, .tv_nsec = (work_us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
	unsigned char code[8];
	if (sg_ctx_read(ctx, sg_ctx_ip(ctx), code, sizeof(code)) != (ssize_t)sizeof(code))
		sg_errno(out, EIO);
	else
		sg_errno(out, ANSWER);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "syscall", required_argument, NULL, 's' },
		{ "work-us", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	const char *syscall = "getppid";
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's') {
			syscall = optarg;
		} else if (c == 'w') {
			char *end;
			work_us = strtol(optarg, &end, 10);
			if (*end || work_us < 0 || work_us > 10000000) {
				fprintf(stderr, PROG ": --work-us wants 0..10000000\n");
				return 2;
			}
		} else {
			fprintf(stderr, "usage: " PROG " [--syscall NAME] [--work-us N]\n");
			return 2;
		}
	}
	sg_worker *w = sg_worker_new(PROG);
	if (!w)
		return 1;
	int r = sg_worker_on(w, syscall, handle, NULL, SG_EXC_DENY_EPERM);
	if (r < 0)
		fprintf(stderr, PROG ": cannot register %s: %s\n", syscall, strerror(-r));
	else
		r = sg_worker_run(w);
	sg_worker_free(w);
	return r == 0 ? 0 : 1;
}
