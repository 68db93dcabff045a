/* The sandboxed side of the benchmark: calls one cheap syscall N times and
 * prints the mean cost per call in nanoseconds.
 *   sg_bench_loop SYSCALL ITERATIONS
 * SYSCALL:
 *   getppid    getppid()
 *   uname      uname(&u)
 *   faccessat  faccessat(AT_FDCWD, "/", F_OK, 0): a path argument the supervisor pre-reads
 *   pwrite64   pwrite64(-1, buf, 256, 0): a 256-byte buffer argument; fails with EBADF
 *
 * Every result is checked (getppid, uname and faccessat succeed, pwrite64 fails with
 * EBADF): a handler that failed and was answered by its exception policy stops the loop
 * with a message on stderr and exit status 1 instead of being timed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench-shared.h"

enum loop_call { CALL_GETPPID, CALL_UNAME, CALL_FACCESSAT, CALL_PWRITE64 };

static const char *const call_names[] = {
	[CALL_GETPPID] = "getppid",
	[CALL_UNAME] = "uname",
	[CALL_FACCESSAT] = "faccessat",
	[CALL_PWRITE64] = "pwrite64",
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	int call = -1;
	for (int i = 0; argc == 3 && i < (int)(sizeof(call_names) / sizeof(call_names[0])); i++)
		if (strcmp(argv[1], call_names[i]) == 0)
			call = i;
	if (call < 0) {
		fprintf(stderr, "usage: %s getppid|uname|faccessat|pwrite64 ITERATIONS\n", argv[0]);
		return 2;
	}
	long n = atol(argv[2]);
	struct utsname u;
	unsigned char buf[BENCH_READ_LEN];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = bench_read_byte(i);

	long r = 0, i;
	int bad = 0;
	double t0 = now();
	for (i = 0; i < n && !bad; i++) {
		switch (call) {
		case CALL_UNAME:
			r = syscall(SYS_uname, &u);
			bad = r != 0;
			break;
		case CALL_FACCESSAT:
			r = syscall(SYS_faccessat, AT_FDCWD, BENCH_PATH, F_OK, 0);
			bad = r != 0;
			break;
		case CALL_PWRITE64:
			r = syscall(SYS_pwrite64, BENCH_READ_FD, buf, sizeof(buf), 0L);
			bad = !(r < 0 && errno == EBADF);
			break;
		default: /* 0 is a valid parent pid in a new pid namespace */
			r = syscall(SYS_getppid);
			bad = r < 0;
			break;
		}
	}
	double t1 = now();
	if (bad) {
		fprintf(stderr, "sg_bench_loop: %s call %ld of %ld: %s\n", call_names[call], i, n,
			r < 0 ? strerror(errno) : "succeeded, expected EBADF");
		return 1;
	}
	printf("%.1f\n", (t1 - t0) / (double)(n > 0 ? n : 1));
	return 0;
}
