/* sg-attack: what a hostile sandboxed program or worker tries against
 * processes outside its sandbox (issue 12), for the adversarial tests.
 *
 *	sg-attack TARGET ATTACK...           as the sandboxed command
 *	sg-attack --worker TARGET ATTACK...  as a handler worker (SDK)
 *
 * TARGET is a pid, or "ppid" for the parent (the supervisor). Each ATTACK
 * is tried once; the result is one JSON line, {"ATTACK":ERRNO,...} with 0
 * where the attack succeeded (an ATTACK starting with '#' is skipped: a
 * marker for the test), on stdout (command) or stderr prefixed with
 * "sg-attack " (worker, whose stdout is not forwarded). ATTACK unix:PATH
 * connects to the unix socket PATH. The worker then registers getppid
 * (continue) and serves; with "fork-child" among its attacks it first
 * leaves a child behind that pauses forever. */
#include <errno.h>
#include <fcntl.h>
#include <linux/ioprio.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sysgate.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

#define UNUSED_UID 2147480000 /* owns no process: ESRCH where allowed */

/* 0 or errno of a raw syscall's result. */
static long err_of(long r)
{
	return r < 0 ? errno : 0;
}

static long attack_prlimit(pid_t t)
{
	struct rlimit core = { 0, 0 }; /* harmless to lower, visible in /proc */
	return err_of(syscall(SYS_prlimit64, t, RLIMIT_CORE, &core, NULL));
}

static long attack_setpriority(pid_t t)
{
	return err_of(syscall(SYS_setpriority, PRIO_PROCESS, t, 5));
}

static long attack_setpriority_pgrp(pid_t t)
{
	return err_of(syscall(SYS_setpriority, PRIO_PGRP, getpgid(t), 5));
}

static long attack_setpriority_user(pid_t t)
{
	(void)t; /* PRIO_USER who 0 would renice the runner's own user */
	return err_of(syscall(SYS_setpriority, PRIO_USER, UNUSED_UID, 5));
}

static long attack_sched_setaffinity(pid_t t)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	return err_of(syscall(SYS_sched_setaffinity, t, sizeof(set), &set));
}

static long attack_sched_setscheduler(pid_t t)
{
	struct sched_param p = { 0 };
	return err_of(syscall(SYS_sched_setscheduler, t, SCHED_BATCH, &p));
}

static long attack_sched_setparam(pid_t t)
{
	struct sched_param p = { 0 };
	return err_of(syscall(SYS_sched_setparam, t, &p));
}

/* struct sched_attr's first fields (linux/sched/types.h clashes with
 * sched.h): size, policy, flags, nice, priority. */
struct attr_v0 {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

static long attack_sched_setattr(pid_t t)
{
	struct attr_v0 a = { .size = sizeof(a), .policy = SCHED_BATCH };
	return err_of(syscall(SYS_sched_setattr, t, &a, 0));
}

static long attack_ioprio_set(pid_t t)
{
	return err_of(syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, t,
			      IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 7)));
}

static long attack_migrate_pages(pid_t t)
{
	unsigned long nodes = 1;
	return err_of(syscall(SYS_migrate_pages, t, 8 * sizeof(nodes), &nodes, &nodes));
}

static long attack_move_pages(pid_t t)
{
	return err_of(syscall(SYS_move_pages, t, 0UL, NULL, NULL, NULL, 0));
}

static long attack_process_madvise(pid_t t)
{
	int pidfd = (int)syscall(SYS_pidfd_open, t, 0);
	if (pidfd < 0)
		return errno;
	struct iovec iov = { NULL, 0 };
	long r = err_of(syscall(SYS_process_madvise, pidfd, &iov, 1UL, MADV_COLD, 0U));
	close(pidfd);
	return r;
}

/* A clone that succeeds is reaped at once: the child only exits. */
static long reap(long pid)
{
	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(0);
	waitpid((pid_t)pid, NULL, 0);
	return 0;
}

static long attack_clone_newuser(pid_t t)
{
	(void)t;
	return reap(syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
}

static long attack_clone3(pid_t t)
{
	(void)t;
	struct clone_args a = { .exit_signal = SIGCHLD };
	return reap(syscall(SYS_clone3, &a, sizeof(a)));
}

static long open_socket(int family, int type, int protocol)
{
	int fd = socket(family, type | SOCK_CLOEXEC, protocol);
	return fd < 0 ? -errno : fd;
}

static long bind_listen(int family, int type, int protocol, bool bind_first)
{
	long fd = open_socket(family, type, protocol);
	if (fd < 0)
		return -fd;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	long r = 0;
	if (bind_first && bind((int)fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		r = errno;
	/* An unbound TCP socket's listen() picks a port: no bind hook runs. */
	if (!r && listen((int)fd, 1) < 0)
		r = errno;
	close((int)fd);
	return r;
}

static long attack_mptcp(pid_t t)
{
	(void)t;
	return bind_listen(AF_INET, SOCK_STREAM, IPPROTO_MPTCP, true);
}

static long attack_tcp_listen(pid_t t)
{
	(void)t;
	return bind_listen(AF_INET, SOCK_STREAM, 0, false);
}

static long attack_udp(pid_t t)
{
	(void)t;
	long fd = open_socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -fd;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(9),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	long r = err_of(sendto((int)fd, "x", 1, 0, (struct sockaddr *)&a, sizeof(a)));
	close((int)fd);
	return r;
}

static long just_socket(int family, int type, int protocol)
{
	long fd = open_socket(family, type, protocol);
	if (fd < 0)
		return -fd;
	close((int)fd);
	return 0;
}

static long attack_sctp(pid_t t)
{
	(void)t;
	return just_socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
}

static long attack_raw(pid_t t)
{
	(void)t;
	return just_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
}

static long attack_packet(pid_t t)
{
	(void)t;
	return just_socket(AF_PACKET, SOCK_RAW, 0);
}

static long attack_netlink(pid_t t)
{
	(void)t;
	return just_socket(AF_NETLINK, SOCK_RAW, 0 /* NETLINK_ROUTE */);
}

static long attack_unix(const char *path)
{
	long fd = open_socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -fd;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	long r = err_of(connect((int)fd, (struct sockaddr *)&a, sizeof(a)));
	close((int)fd);
	return r;
}

static long fork_child(pid_t t)
{
	(void)t;
	pid_t pid = fork();
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid < 0 ? errno : 0;
}

static const struct {
	const char *name;
	long (*run)(pid_t target);
} attacks[] = {
	{ "prlimit", attack_prlimit },
	{ "setpriority", attack_setpriority },
	{ "setpriority-pgrp", attack_setpriority_pgrp },
	{ "setpriority-user", attack_setpriority_user },
	{ "sched_setaffinity", attack_sched_setaffinity },
	{ "sched_setscheduler", attack_sched_setscheduler },
	{ "sched_setparam", attack_sched_setparam },
	{ "sched_setattr", attack_sched_setattr },
	{ "ioprio_set", attack_ioprio_set },
	{ "migrate_pages", attack_migrate_pages },
	{ "move_pages", attack_move_pages },
	{ "process_madvise", attack_process_madvise },
	{ "clone-newuser", attack_clone_newuser },
	{ "clone3", attack_clone3 },
	{ "mptcp", attack_mptcp },
	{ "tcp-listen", attack_tcp_listen },
	{ "udp", attack_udp },
	{ "sctp", attack_sctp },
	{ "raw", attack_raw },
	{ "packet", attack_packet },
	{ "netlink", attack_netlink },
	{ "fork-child", fork_child },
};

static long run_one(const char *name, pid_t target)
{
	if (!strncmp(name, "unix:", 5))
		return attack_unix(name + 5);
	for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++)
		if (!strcmp(name, attacks[i].name))
			return attacks[i].run(target);
	fprintf(stderr, "sg-attack: unknown attack \"%s\"\n", name);
	exit(2);
}

static void run_all(FILE *out, const char *prefix, pid_t target, char **names, int n)
{
	fprintf(out, "%s{", prefix);
	bool comma = false;
	for (int i = 0; i < n; i++) {
		if (names[i][0] == '#')
			continue; /* a marker for the test to find the processes by */
		fprintf(out, "%s\"%s\":%ld", comma ? "," : "", names[i], run_one(names[i], target));
		comma = true;
	}
	fprintf(out, "}\n");
	fflush(out);
}

static int on_getppid(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx;
	(void)ud;
	sg_continue(out);
	return 0;
}

int main(int argc, char **argv)
{
	bool worker = argc > 1 && !strcmp(argv[1], "--worker");
	int first = worker ? 2 : 1;
	if (argc < first + 2) {
		fprintf(stderr, "usage: sg-attack [--worker] TARGET ATTACK...\n");
		return 2;
	}
	pid_t target = !strcmp(argv[first], "ppid") ? getppid() : (pid_t)atoi(argv[first]);
	if (!worker) {
		run_all(stdout, "", target, argv + first + 1, argc - first - 1);
		return 0;
	}
	run_all(stderr, "sg-attack ", target, argv + first + 1, argc - first - 1);
	sg_worker *w = sg_worker_new("sg-attack");
	if (!w)
		return 1;
	int r = sg_worker_on(w, "getppid", on_getppid, NULL, SG_EXC_CONTINUE);
	if (r >= 0)
		r = sg_worker_run(w);
	sg_worker_free(w);
	return r < 0 ? 1 : 0;
}
