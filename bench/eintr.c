/* How often a trapped fork fails with a spurious EINTR (issue 12.6).
 *   sg_bench_eintr [--forks N] [--neighbours K]
 * Forks N times (default 10000); each child exits at once. A SIGCHLD handler
 * installed without SA_RESTART (as dash has) interrupts whatever syscall the
 * parent is in when a child exits: a plain fork is never interrupted, a
 * fork trapped by seccomp user notification can be, until the supervisor has
 * received the notification. K CPU-bound neighbour processes (default 1)
 * spin meanwhile, so the supervisor competes for the CPUs.
 *
 * Prints one JSON object: forks, EINTRs, EINTRs per 10^4 forks, seconds.
 * Run it plainly and under `sysgate run --max-procs N` (pids cgroup: nothing
 * trapped) or `sysgate run --trap clone` (trapped) to compare. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t exited;

static void on_chld(int sig)
{
	(void)sig;
	exited++;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pid_t spin_neighbour(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGCHLD, SIG_DFL);
		for (volatile unsigned long x = 0;; x++)
			;
	}
	return pid;
}

static long parse_arg(const char *s, long min, long max)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*end || v < min || v > max) {
		fprintf(stderr, "sg_bench_eintr: bad number %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	long forks = 10000, neighbours = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--forks"))
			forks = parse_arg(argv[i + 1], 1, 100000000);
		else if (!strcmp(argv[i], "--neighbours"))
			neighbours = parse_arg(argv[i + 1], 0, 64);
		else {
			fprintf(stderr, "usage: sg_bench_eintr [--forks N] [--neighbours K]\n");
			return 2;
		}
	}
	pid_t spinners[64];
	for (long i = 0; i < neighbours; i++)
		if ((spinners[i] = spin_neighbour()) < 0) {
			perror("fork (neighbour)");
			return 1;
		}
	/* No SA_RESTART: an interrupted syscall returns EINTR. */
	struct sigaction sa = { .sa_handler = on_chld };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);

	long eintr = 0, eagain = 0, other = 0;
	double t0 = now_s();
	for (long done = 0; done < forks;) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		if (pid > 0) {
			done++;
		} else if (errno == EINTR) {
			eintr++;
		} else if (errno == EAGAIN) {
			eagain++; /* a limit (zombies count in pids.max): reap, retry */
			waitpid(-1, NULL, 0);
		} else if (++other > 1000) {
			perror("fork");
			break;
		}
		/* Reap without blocking: children keep exiting (and signalling)
		 * while the next fork is under way. */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	double secs = now_s() - t0;
	for (long i = 0; i < neighbours; i++)
		kill(spinners[i], SIGKILL);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	printf("{\"forks\":%ld,\"eintr\":%ld,\"eintr_per_10k\":%.1f,\"other_errors\":%ld,"
	       "\"eagain\":%ld,\"neighbours\":%ld,\"seconds\":%.2f}\n",
	       forks, eintr, (double)eintr * 10000.0 / (double)forks, other, eagain, neighbours,
	       secs);
	return other > 1000;
}
