/* The sandboxed side of the benchmark: calls one cheap syscall N times and
 * prints the mean cost per call in nanoseconds.
 *   sg_bench_loop SYSCALL ITERATIONS     SYSCALL: getppid | uname */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s getppid|uname ITERATIONS\n", argv[0]);
		return 2;
	}
	long n = atol(argv[2]);
	int use_uname = strcmp(argv[1], "uname") == 0;
	struct utsname u;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		if (use_uname)
			syscall(SYS_uname, &u);
		else
			syscall(SYS_getppid);
	}
	double t1 = now();
	printf("%.1f\n", (t1 - t0) / (double)(n > 0 ? n : 1));
	return 0;
}
