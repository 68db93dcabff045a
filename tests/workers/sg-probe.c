/* sg-probe: a test-only handler worker (C SDK) that reports what its
 * confinement (docs/worker-sandbox.md) lets it do to the sandboxed child, so the integration
 * tests can assert the worker sandbox from the outside.
 *
 *	sg-probe [--tcp-port P]
 *
 * It registers getppid (exception policy continue). On the first getppid
 * notification it runs every probe against the trapped process and prints
 * one JSON line on stdout, e.g.
 *	{"uid":65534,"gid":65534,"euid":65534,"proc_mem":13,...}
 * where a probe's value is 0 when the operation succeeded and the errno it
 * failed with otherwise (uid, gid, euid: the ids themselves). Every
 * notification is answered continue. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sysgate.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define PROG "sg-probe"
/* The discard port: nothing listens there on a test machine, so a connect
 * that reaches the network is refused (ECONNREFUSED), one that is denied
 * fails with EACCES or EPERM. */
#define DEFAULT_TCP_PORT 9
/* How long the ptrace probe waits for an attached child to stop. */
#define PTRACE_STOP_WAIT_MS 1000

enum { EXIT_USAGE = 2 };

/* What the probes act on. */
struct probe_target {
	pid_t child; /* the trapped process */
	uint64_t ip; /* its instruction pointer: mapped, readable memory */
	int tcp_port;
};

struct probe {
	const char *name;
	/* 0 on success or the errno seen; the ids for the id probes. */
	long (*run)(const struct probe_target *t);
};

/* ---- Probes ---------------------------------------------------------------- */

static long probe_uid(const struct probe_target *t)
{
	(void)t;
	return (long)getuid();
}

static long probe_gid(const struct probe_target *t)
{
	(void)t;
	return (long)getgid();
}

static long probe_euid(const struct probe_target *t)
{
	(void)t;
	return (long)geteuid();
}

/* 0 if path opens with flags, else the errno. */
static long try_open(const char *path, int flags)
{
	int fd _cleanup_close_ = open(path, flags | O_CLOEXEC);
	return fd < 0 ? errno : 0;
}

static long probe_proc_mem(const struct probe_target *t)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)t->child);
	return try_open(path, O_RDONLY);
}

static long probe_proc_status(const struct probe_target *t)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)t->child);
	return try_open(path, O_RDONLY);
}

static long probe_process_vm_readv(const struct probe_target *t)
{
	uint64_t word;
	struct iovec local = { .iov_base = &word, .iov_len = sizeof(word) };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)t->ip, .iov_len = sizeof(word) };
	return process_vm_readv(t->child, &local, 1, &remote, 1, 0) < 0 ? errno : 0;
}

static long probe_ptrace(const struct probe_target *t)
{
	if (ptrace(PTRACE_ATTACH, t->child, NULL, NULL) < 0)
		return errno;
	/* Attached (the sandbox failed): detach, which needs the child in its
	 * attach stop, so the test run goes on. */
	for (int waited = 0; waited < PTRACE_STOP_WAIT_MS; waited += 10) {
		int status;
		pid_t r = waitpid(t->child, &status, __WALL | WNOHANG);
		if (r == t->child || (r < 0 && errno != EINTR))
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	if (ptrace(PTRACE_DETACH, t->child, NULL, NULL) < 0)
		kill(t->child, SIGCONT); /* discards a SIGSTOP still pending */
	return 0;
}

static long probe_kill(const struct probe_target *t)
{
	/* SIGCONT: harmless to a running process if the sandbox lets it through. */
	return kill(t->child, SIGCONT) < 0 ? errno : 0;
}

static long probe_kill0(const struct probe_target *t)
{
	return kill(t->child, 0) < 0 ? errno : 0;
}

/* 0 if a new file can be created at path (then removed), else the errno. */
static long try_create(const char *path)
{
	int fd _cleanup_close_ = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	unlink(path);
	return 0;
}

static long probe_write_tmp(const struct probe_target *t)
{
	(void)t;
	char path[64];
	snprintf(path, sizeof(path), "/tmp/sg-probe-%d", (int)getpid());
	return try_create(path);
}

static long probe_write_cwd(const struct probe_target *t)
{
	(void)t;
	char path[64];
	snprintf(path, sizeof(path), "sg-probe-%d", (int)getpid());
	return try_create(path);
}

static long probe_tcp(const struct probe_target *t)
{
	int fd _cleanup_close_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_port = htons((uint16_t)t->tcp_port),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	return connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0 ? errno : 0;
}

static long probe_pidfd_getfd(const struct probe_target *t)
{
	/* Raw syscalls: not every glibc has wrappers for these. */
	int pidfd _cleanup_close_ = (int)syscall(SYS_pidfd_open, t->child, 0);
	if (pidfd < 0)
		return errno;
	int fd _cleanup_close_ = (int)syscall(SYS_pidfd_getfd, pidfd, 0, 0);
	return fd < 0 ? errno : 0;
}

static long probe_read_etc_passwd(const struct probe_target *t)
{
	(void)t;
	return try_open("/etc/passwd", O_RDONLY);
}

/* Leaving its process group would hide what it forks from the supervisor. */
static long probe_setsid(const struct probe_target *t)
{
	(void)t;
	return setsid() < 0 ? errno : 0;
}

/* In the order of the JSON line. */
static const struct probe probes[] = {
	{ "uid", probe_uid },
	{ "gid", probe_gid },
	{ "euid", probe_euid },
	{ "proc_mem", probe_proc_mem },
	{ "proc_status", probe_proc_status },
	{ "process_vm_readv", probe_process_vm_readv },
	{ "ptrace", probe_ptrace },
	{ "kill", probe_kill },
	{ "kill0", probe_kill0 },
	{ "write_tmp", probe_write_tmp },
	{ "write_cwd", probe_write_cwd },
	{ "tcp", probe_tcp },
	{ "pidfd_getfd", probe_pidfd_getfd },
	{ "read_etc_passwd", probe_read_etc_passwd },
	{ "setsid", probe_setsid },
};

/* ---- The worker -------------------------------------------------------------- */

struct probe_state {
	int tcp_port;
	bool done; /* probes run once, on the first notification */
};

static int on_getppid(const sg_ctx *ctx, sg_action *out, void *ud)
{
	struct probe_state *s = ud;
	if (!s->done) {
		s->done = true;
		const struct probe_target t = { .child = sg_ctx_pid(ctx),
						.ip = sg_ctx_ip(ctx),
						.tcp_port = s->tcp_port };
		fputc('{', stdout);
		for (size_t i = 0; i < ARRAY_SIZE(probes); i++)
			printf("%s\"%s\":%ld", i ? "," : "", probes[i].name, probes[i].run(&t));
		fputs("}\n", stdout);
		fflush(stdout);
	}
	sg_continue(out);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [--tcp-port P]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "tcp-port", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct probe_state state = { .tcp_port = DEFAULT_TCP_PORT };
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 't': {
			char *end = NULL;
			long port = strtol(optarg, &end, 10);
			if (!*optarg || *end || port < 1 || port > 65535) {
				fprintf(stderr, PROG ": --tcp-port wants 1..65535, not \"%s\"\n",
					optarg);
				return EXIT_USAGE;
			}
			state.tcp_port = (int)port;
			break;
		}
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	sg_worker *w = sg_worker_new(PROG);
	if (!w) {
		fprintf(stderr, PROG ": out of memory\n");
		return EXIT_FAILURE;
	}
	int r = sg_worker_on(w, "getppid", on_getppid, &state, SG_EXC_CONTINUE);
	if (r < 0)
		fprintf(stderr, PROG ": registering getppid: %s\n", strerror(-r));
	else
		r = sg_worker_run(w); /* prints its own errors */
	sg_worker_free(w);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
