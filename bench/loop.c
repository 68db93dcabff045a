/* The sandboxed side of the benchmark: calls one cheap syscall N times and
 * prints the mean cost per call in nanoseconds.
 *   sg_bench_loop [--threads T] SYSCALL ITERATIONS
 * --threads T: T threads (1..64) each make ITERATIONS/T calls at once, started together
 * behind a barrier; the figure is the aggregate cost, the wall time from the barrier until
 * the last thread is done divided by the calls made by all threads (so 1/throughput).
 * Without it the main thread makes all ITERATIONS calls.
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
#include <pthread.h>
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

#define MAX_THREADS 64

struct loop_run {
	int call;
	long n;    /* calls to make */
	long done; /* calls made (the failing one included) */
	long r;    /* the last result */
	int err;   /* errno after it */
	int bad;   /* the last result was not the expected one */
	pthread_barrier_t *start;
};

/* Makes run->n calls, stopping at the first unexpected result. */
static void loop_calls(struct loop_run *run)
{
	struct utsname u;
	unsigned char buf[BENCH_READ_LEN];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = bench_read_byte(i);

	long r = 0, i;
	int bad = 0;
	for (i = 0; i < run->n && !bad; i++) {
		switch (run->call) {
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
	run->err = errno;
	run->done = i;
	run->r = r;
	run->bad = bad;
}

static void *loop_thread(void *arg)
{
	struct loop_run *run = arg;
	pthread_barrier_wait(run->start);
	loop_calls(run);
	return NULL;
}

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--threads T] getppid|uname|faccessat|pwrite64 ITERATIONS\n",
		prog);
	return 2;
}

int main(int argc, char **argv)
{
	const char *prog = argv[0];
	long threads = 0; /* 0: the main thread makes the calls */
	if (argc >= 3 && strcmp(argv[1], "--threads") == 0) {
		char *end;
		threads = strtol(argv[2], &end, 10);
		if (end == argv[2] || *end != '\0' || threads < 1 || threads > MAX_THREADS)
			return usage(prog);
		argc -= 2;
		argv += 2;
	}
	int call = -1;
	for (int i = 0; argc == 3 && i < (int)(sizeof(call_names) / sizeof(call_names[0])); i++)
		if (strcmp(argv[1], call_names[i]) == 0)
			call = i;
	if (call < 0)
		return usage(prog);
	long n = atol(argv[2]);

	struct loop_run runs[MAX_THREADS];
	pthread_t tids[MAX_THREADS];
	pthread_barrier_t start;
	long nruns = threads > 0 ? threads : 1, total = 0;
	for (long t = 0; t < nruns; t++) {
		runs[t] = (struct loop_run){ .call = call, .n = n / nruns, .start = &start };
		total += runs[t].n;
	}

	double t0, t1;
	if (threads == 0) {
		t0 = now();
		loop_calls(&runs[0]);
		t1 = now();
	} else {
		int e = pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
		for (long t = 0; e == 0 && t < threads; t++) {
			e = pthread_create(&tids[t], NULL, loop_thread, &runs[t]);
			if (e != 0) {
				/* The barrier waits for every party: too late to back out. */
				fprintf(stderr, "sg_bench_loop: pthread_create: %s\n", strerror(e));
				return 1;
			}
		}
		if (e != 0) {
			fprintf(stderr, "sg_bench_loop: pthread_barrier_init: %s\n", strerror(e));
			return 1;
		}
		pthread_barrier_wait(&start);
		t0 = now();
		for (long t = 0; t < threads; t++)
			pthread_join(tids[t], NULL);
		t1 = now();
		pthread_barrier_destroy(&start);
	}

	for (long t = 0; t < nruns; t++) {
		const struct loop_run *run = &runs[t];
		if (!run->bad)
			continue;
		fprintf(stderr, "sg_bench_loop: %s call %ld of %ld%s: %s\n", call_names[call],
			run->done, run->n, threads > 0 ? " (a thread)" : "",
			run->r < 0 ? strerror(run->err) : "succeeded, expected EBADF");
		return 1;
	}
	printf("%.1f\n", (t1 - t0) / (double)(total > 0 ? total : 1));
	return 0;
}
