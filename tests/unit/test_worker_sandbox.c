/* Worker confinement (docs/worker-sandbox.md). The parent prepares the sandbox, a forked
 * child applies it, makes ONE attempt and reports the errno through a pipe.
 * A long-lived, unconfined "victim" process (under the same uid as the
 * worker, so that only the sandbox can stand in the way) plays the
 * sandboxed program. Every denial has an "unconfined" row: the same
 * attempt, from a child with the same uid but no sandbox, succeeds. */
#include "unit.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/kcmp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "compat.h"
#include "landlock.h"
#include "worker_sandbox.h"

#define NOBODY "nobody"

static struct {
	bool root;
	uid_t uid; /* the worker's: nobody's when root, ours otherwise */
	gid_t gid;
	int abi;
	const char *read_paths[5];
	size_t n_read;
	char dir[64]; /* the write path */
	char inside[96];
	char outside[96];
	char proc_mem[64];
	pid_t victim;
	int victim_wr; /* closing it ends the victim */
	int victim_pidfd;
	int tcp_listener;
	struct sockaddr_in tcp_addr;
	int unix_listener;
	struct sockaddr_un unix_addr;
	socklen_t unix_addr_len;
} fx = {
	.victim = -1, .victim_wr = -1, .victim_pidfd = -1, .tcp_listener = -1, .unix_listener = -1
};

/* Read from the victim with process_vm_readv: the victim is a fork of this
 * process, so the address is valid there. */
static uint64_t victim_word = 0x5359534741544521u;

/* ---- The attempts, run in the child; each returns 0 or an errno. ---- */

static int result(long r)
{
	return r < 0 ? errno : 0;
}

static int op_nothing(void)
{
	return 0;
}

static int open_close(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int op_open_victim_mem(void)
{
	return open_close(fx.proc_mem, O_RDONLY);
}

static int op_read_etc_passwd(void)
{
	return open_close("/etc/passwd", O_RDONLY);
}

static int op_vm_readv_victim(void)
{
	uint64_t got = 0;
	struct iovec local = { &got, sizeof(got) };
	struct iovec remote = { &victim_word, sizeof(victim_word) };
	return result(process_vm_readv(fx.victim, &local, 1, &remote, 1, 0));
}

static int op_ptrace_victim(void)
{
	/* On success the tracer's exit detaches it again. */
	return result(ptrace(PTRACE_SEIZE, fx.victim, NULL, NULL));
}

static int op_kill_victim(void)
{
	return result(kill(fx.victim, SIGTERM));
}

static int op_probe_victim(void)
{
	return result(kill(fx.victim, 0));
}

static int op_pidfd_getfd_fd(int pidfd)
{
	int fd = sg_pidfd_getfd(pidfd, 0);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int op_pidfd_getfd_victim(void)
{
	return op_pidfd_getfd_fd(fx.victim_pidfd);
}

static int op_kcmp_victim(void)
{
	return result(syscall(SYS_kcmp, getpid(), fx.victim, KCMP_VM, 0, 0));
}

/* The same calls on the child itself, or on its own child: inside its
 * Landlock domain, so only the seccomp filter stands in the way. */
static int op_vm_readv_self(void)
{
	uint64_t got = 0;
	struct iovec local = { &got, sizeof(got) };
	struct iovec remote = { &victim_word, sizeof(victim_word) };
	return result(process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
}

static int op_pidfd_getfd_self(void)
{
	int pidfd = sg_pidfd_open(getpid(), 0);
	if (pidfd < 0)
		return errno == EPERM ? EINVAL : errno; /* not the EPERM we look for */
	int r = op_pidfd_getfd_fd(pidfd);
	close(pidfd);
	return r;
}

static int op_kcmp_self(void)
{
	return result(syscall(SYS_kcmp, getpid(), getpid(), KCMP_VM, 0, 0));
}

static int op_ptrace_own_child(void)
{
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		return errno == EPERM ? EINVAL : errno;
	pid_t pid = fork();
	if (pid < 0) {
		close(ready[0]);
		close(ready[1]);
		return errno == EPERM ? EINVAL : errno;
	}
	if (pid == 0) {
		/* The uid switch made us non-dumpable, which alone would
		 * stop the ptrace. */
		char c = prctl(PR_SET_DUMPABLE, 1) == 0;
		(void)!write(ready[1], &c, 1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	char c = 0;
	int r = read(ready[0], &c, 1) == 1 && c ? 0 : EINVAL;
	close(ready[0]);
	if (r == 0)
		r = result(ptrace(PTRACE_SEIZE, pid, NULL, NULL));
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return r;
}

static int op_create_outside(void)
{
	return open_close(fx.outside, O_WRONLY | O_CREAT | O_EXCL);
}

static int op_create_inside(void)
{
	return open_close(fx.inside, O_WRONLY | O_CREAT | O_EXCL);
}

static int connect_to(int domain, const void *addr, socklen_t len)
{
	int fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	int r = result(connect(fd, addr, len));
	close(fd);
	return r;
}

static int op_connect_tcp(void)
{
	return connect_to(AF_INET, &fx.tcp_addr, sizeof(fx.tcp_addr));
}

static int op_connect_abstract(void)
{
	return connect_to(AF_UNIX, &fx.unix_addr, fx.unix_addr_len);
}

/* ---- Running one attempt in a child ---- */

enum mode {
	SANDBOXED,     /* the sandbox, no network */
	SANDBOXED_TCP, /* the sandbox with allow_tcp */
	UNCONFINED,    /* only the worker's uid */
};

struct report {
	int32_t stage;  /* enum worker_sandbox_stage that failed */
	int32_t error;  /* its errno */
	int32_t result; /* the attempt's errno, 0 on success */
	uint32_t uid, euid, gid, egid;
	int32_t ngroups;
	int32_t no_new_privs;
	uint64_t core_max, nofile_max;
};

static int drop_to_worker_ids(void)
{
	if (!fx.root)
		return 0;
	if (setgroups(0, NULL) < 0 || setresgid(fx.gid, fx.gid, fx.gid) < 0 ||
	    setresuid(fx.uid, fx.uid, fx.uid) < 0)
		return -errno;
	return 0;
}

static _Noreturn void child_main(const struct worker_sandbox *sb, int (*op)(void), int out)
{
	struct report rep = { 0 };
	alarm(10);
	enum worker_sandbox_stage stage = WORKER_SANDBOX_STAGE_SETUID;
	int r = sb ? worker_sandbox_apply_staged(sb, &stage) : drop_to_worker_ids();
	if (r < 0) {
		rep.stage = (int32_t)stage;
		rep.error = -r;
	} else {
		rep.result = op();
		rep.uid = getuid();
		rep.euid = geteuid();
		rep.gid = getgid();
		rep.egid = getegid();
		rep.ngroups = getgroups(0, NULL);
		rep.no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
		struct rlimit lim;
		if (getrlimit(RLIMIT_CORE, &lim) == 0)
			rep.core_max = lim.rlim_max;
		if (getrlimit(RLIMIT_NOFILE, &lim) == 0)
			rep.nofile_max = lim.rlim_max;
	}
	_exit(write_all(out, &rep, sizeof(rep)) < 0 ? 1 : 0);
}

static void prepare(struct worker_sandbox *sb, const char *user, bool allow_tcp)
{
	const char *write_paths[] = { fx.dir };
	struct worker_sandbox_spec spec = {
		.user = user,
		.read_paths = fx.read_paths,
		.n_read = fx.n_read,
		.write_paths = write_paths,
		.n_write = ARRAY_SIZE(write_paths),
		.allow_tcp = allow_tcp,
	};
	struct sg_err err = { "" };
	int r = worker_sandbox_prepare(sb, &spec, &err);
	if (r < 0)
		fail_msg("worker_sandbox_prepare: %d: %s", r, err.msg);
}

/* Forks a child that (unless mode is UNCONFINED) applies a sandbox prepared
 * here, attempts op, and reports. The child is always reaped. */
static void run_child(enum mode mode, int (*op)(void), struct report *rep)
{
	struct worker_sandbox sb = { .landlock_fd = -1 };
	if (mode != UNCONFINED)
		prepare(&sb, NOBODY, mode == SANDBOXED_TCP);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		child_main(mode == UNCONFINED ? NULL : &sb, op, p[1]);
	}
	int fork_errno = errno;
	close(p[1]);
	worker_sandbox_free(&sb);
	ssize_t n = -1;
	if (pid > 0) {
		do
			n = read(p[0], rep, sizeof(*rep));
		while (n < 0 && errno == EINTR);
	}
	close(p[0]);
	int status = 0;
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (pid < 0)
		fail_msg("fork: %s", strerror(fork_errno));
	if (n != (ssize_t)sizeof(*rep))
		fail_msg("the child reported nothing (status 0x%x)", (unsigned)status);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (rep->error)
		fail_msg("the child could not confine itself: %s: %s",
			 mode == UNCONFINED ? "dropping to the worker's uid"
					    : worker_sandbox_stage_name(rep->stage),
			 strerror(rep->error));
}

static void skip_without_landlock(void)
{
	if (fx.abi < 4) {
		print_message("Landlock ABI %d: workers cannot be confined here\n", fx.abi);
		skip();
	}
}

/* ---- The victim: an unconfined process under the worker's uid ---- */

static _Noreturn void victim_main(int rd, int ready)
{
	if (drop_to_worker_ids() < 0)
		_exit(1);
	/* The uid change cleared both; the worker's peer is dumpable. */
	if (prctl(PR_SET_DUMPABLE, 1) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		_exit(1);
	char c = 1;
	if (write_all(ready, &c, 1) < 0)
		_exit(1);
	close(ready);
	while (read(rd, &c, 1) != 0 && errno == EINTR)
		;
	_exit(0);
}

static void stop_victim(void)
{
	if (fx.victim_pidfd >= 0)
		close(fx.victim_pidfd);
	if (fx.victim_wr >= 0)
		close(fx.victim_wr);
	while (fx.victim > 0 && waitpid(fx.victim, NULL, 0) < 0 && errno == EINTR)
		;
	fx.victim_pidfd = fx.victim_wr = -1;
	fx.victim = -1;
}

static int start_victim(void)
{
	int wake[2], ready[2];
	if (pipe2(wake, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(ready, O_CLOEXEC) < 0) {
		close(wake[0]);
		close(wake[1]);
		return -1;
	}
	fx.victim = fork();
	if (fx.victim == 0) {
		close(wake[1]);
		close(ready[0]);
		victim_main(wake[0], ready[1]);
	}
	close(wake[0]);
	close(ready[1]);
	fx.victim_wr = wake[1];
	char c = 0;
	ssize_t n = fx.victim > 0 ? read(ready[0], &c, 1) : -1;
	close(ready[0]);
	if (n != 1)
		return -1;
	snprintf(fx.proc_mem, sizeof(fx.proc_mem), "/proc/%d/mem", (int)fx.victim);
	fx.victim_pidfd = sg_pidfd_open(fx.victim, 0);
	return fx.victim_pidfd < 0 ? -1 : 0;
}

/* Whether the victim is still running (not even a zombie). */
static bool victim_alive(void)
{
	return fx.victim > 0 && waitpid(fx.victim, NULL, WNOHANG) == 0;
}

/* ---- One attempt per row ---- */

struct op_case {
	const char *name;
	int (*op)(void);
	enum mode mode;
	int want;    /* errno, 0 for success */
	int or_want; /* another acceptable errno, 0 for none */
	int min_abi; /* Landlock ABI the row needs */
};

static struct op_case op_cases[] = {
	{ "open /proc/<victim>/mem fails", op_open_victim_mem, SANDBOXED, EACCES, EPERM, 4 },
	{ "unconfined: open /proc/<victim>/mem works", op_open_victim_mem, UNCONFINED, 0, 0, 0 },
	{ "process_vm_readv on the victim fails", op_vm_readv_victim, SANDBOXED, EPERM, 0, 4 },
	{ "unconfined: process_vm_readv works", op_vm_readv_victim, UNCONFINED, 0, 0, 0 },
	{ "ptrace(PTRACE_SEIZE) of the victim fails", op_ptrace_victim, SANDBOXED, EPERM, 0, 4 },
	{ "unconfined: ptrace(PTRACE_SEIZE) works", op_ptrace_victim, UNCONFINED, 0, 0, 0 },
	{ "kill(victim, SIGTERM) fails", op_kill_victim, SANDBOXED, EPERM, 0, 6 },
	{ "unconfined: kill(victim, 0) works", op_probe_victim, UNCONFINED, 0, 0, 0 },
	{ "pidfd_getfd on the victim fails", op_pidfd_getfd_victim, SANDBOXED, EPERM, 0, 4 },
	{ "unconfined: pidfd_getfd works", op_pidfd_getfd_victim, UNCONFINED, 0, 0, 0 },
	{ "kcmp with the victim fails", op_kcmp_victim, SANDBOXED, EPERM, 0, 4 },
	{ "unconfined: kcmp works", op_kcmp_victim, UNCONFINED, 0, 0, 0 },
	{ "process_vm_readv on itself fails", op_vm_readv_self, SANDBOXED, EPERM, 0, 4 },
	{ "unconfined: process_vm_readv on itself works", op_vm_readv_self, UNCONFINED, 0, 0, 0 },
	{ "pidfd_getfd on itself fails", op_pidfd_getfd_self, SANDBOXED, EPERM, 0, 4 },
	{ "unconfined: pidfd_getfd on itself works", op_pidfd_getfd_self, UNCONFINED, 0, 0, 0 },
	{ "kcmp with itself fails", op_kcmp_self, SANDBOXED, EPERM, 0, 4 },
	{ "unconfined: kcmp with itself works", op_kcmp_self, UNCONFINED, 0, 0, 0 },
	{ "ptrace(PTRACE_SEIZE) of its own child fails", op_ptrace_own_child, SANDBOXED, EPERM, 0,
	  4 },
	{ "unconfined: ptrace(PTRACE_SEIZE) of its own child works", op_ptrace_own_child,
	  UNCONFINED, 0, 0, 0 },
	{ "creating a file in /tmp fails", op_create_outside, SANDBOXED, EACCES, 0, 4 },
	{ "unconfined: creating a file in /tmp works", op_create_outside, UNCONFINED, 0, 0, 0 },
	{ "creating a file in the write path works", op_create_inside, SANDBOXED, 0, 0, 4 },
	{ "reading beneath a read path works", op_read_etc_passwd, SANDBOXED, 0, 0, 4 },
	{ "TCP connect to 127.0.0.1 fails", op_connect_tcp, SANDBOXED, EACCES, 0, 4 },
	{ "TCP connect with allow_tcp works", op_connect_tcp, SANDBOXED_TCP, 0, 0, 4 },
	{ "unconfined: TCP connect works", op_connect_tcp, UNCONFINED, 0, 0, 0 },
	{ "connect to an outside abstract socket fails", op_connect_abstract, SANDBOXED, EPERM, 0,
	  6 },
	{ "unconfined: connect to the abstract socket works", op_connect_abstract, UNCONFINED, 0, 0,
	  0 },
};

static void test_op(void **state)
{
	const struct op_case *c = *state;
	if (c->mode != UNCONFINED)
		skip_without_landlock();
	if (fx.abi < c->min_abi) {
		print_message("needs Landlock ABI %d, the kernel has %d\n", c->min_abi, fx.abi);
		skip();
	}
	struct report rep;
	run_child(c->mode, c->op, &rep);
	unlink(fx.inside);
	unlink(fx.outside);
	/* A kill that went through: report it, and give the next rows a
	 * victim of their own. */
	bool alive = victim_alive();
	if (!alive) {
		stop_victim();
		if (start_victim() < 0)
			fail_msg("cannot restart the victim: %s", strerror(errno));
	}
	if (rep.result != c->want && (!c->or_want || rep.result != c->or_want))
		fail_msg("%s: got %s, want %s", c->name,
			 rep.result ? strerror(rep.result) : "success",
			 c->want ? strerror(c->want) : "success");
	if (!alive)
		fail_msg("%s: the victim died", c->name);
}

/* ---- Fixed tests ---- */

/* The child runs under nobody's ids (or ours when not root), with no
 * supplementary groups, no_new_privs and the limits; the supervisor keeps
 * its own ids. */
static void test_identity_and_limits(void **state)
{
	(void)state;
	skip_without_landlock();
	uid_t uid = getuid(), euid = geteuid();
	gid_t gid = getgid();
	struct report rep;
	run_child(SANDBOXED, op_nothing, &rep);
	assert_int_equal(rep.uid, fx.uid);
	assert_int_equal(rep.euid, fx.uid);
	assert_int_equal(rep.gid, fx.gid);
	assert_int_equal(rep.egid, fx.gid);
	if (fx.root) {
		assert_int_equal(rep.uid, 65534);
		assert_int_equal(rep.gid, 65534);
		assert_int_equal(rep.ngroups, 0);
	}
	assert_int_equal(rep.no_new_privs, 1);
	assert_int_equal(rep.core_max, 0);
	assert_true(rep.nofile_max > 0 && rep.nofile_max <= 1024);
	assert_int_equal(getuid(), uid);
	assert_int_equal(geteuid(), euid);
	assert_int_equal(getgid(), gid);
}

/* Root: an unknown user fails, named. Not root: the user is ignored. */
static void test_unknown_user(void **state)
{
	(void)state;
	skip_without_landlock();
	static const char name[] = "sysgate-no-such-user";
	const char *write_paths[] = { fx.dir };
	struct worker_sandbox_spec spec = {
		.user = name,
		.read_paths = fx.read_paths,
		.n_read = fx.n_read,
		.write_paths = write_paths,
		.n_write = 1,
	};
	struct worker_sandbox sb;
	struct sg_err err = { "" };
	int r = worker_sandbox_prepare(&sb, &spec, &err);
	bool changed = sb.change_ids;
	worker_sandbox_free(&sb);
	if (fx.root) {
		assert_int_equal(r, -ENOENT);
		assert_non_null(strstr(err.msg, name));
	} else {
		if (r < 0)
			fail_msg("prepare: %s", err.msg);
		assert_false(changed);
	}
}

/* Root without a user to run the worker as: refused. */
static void test_root_needs_user(void **state)
{
	(void)state;
	skip_without_landlock();
	if (!fx.root)
		skip();
	struct worker_sandbox_spec spec = { .read_paths = fx.read_paths, .n_read = fx.n_read };
	struct worker_sandbox sb;
	struct sg_err err = { "" };
	int r = worker_sandbox_prepare(&sb, &spec, &err);
	worker_sandbox_free(&sb);
	assert_true(r < 0);
	assert_non_null(strstr(err.msg, "user"));
}

/* A path that cannot be opened fails prepare, named. */
static void test_missing_path(void **state)
{
	(void)state;
	skip_without_landlock();
	static const char missing[] = "/nonexistent/sysgate-wsb";
	const char *read_paths[] = { missing };
	struct worker_sandbox_spec spec = { .user = NOBODY, .read_paths = read_paths, .n_read = 1 };
	struct worker_sandbox sb;
	struct sg_err err = { "" };
	int r = worker_sandbox_prepare(&sb, &spec, &err);
	worker_sandbox_free(&sb);
	assert_int_equal(r, -ENOENT);
	assert_non_null(strstr(err.msg, missing));
}

/* prepare + free leave no descriptor open; free is idempotent. */
static void test_no_fd_leak(void **state)
{
	(void)state;
	skip_without_landlock();
	int before = dup(0);
	close(before);
	struct worker_sandbox sb;
	prepare(&sb, NOBODY, false);
	assert_true(sb.landlock_fd >= 0);
	assert_non_null(sb.filter.filter);
	worker_sandbox_free(&sb);
	worker_sandbox_free(&sb);
	int after = dup(0);
	close(after);
	assert_int_equal(after, before);
}

/* ---- Fixture: write path, listeners ---- */

static int start_listeners(void)
{
	fx.tcp_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fx.tcp_addr = (struct sockaddr_in){ .sin_family = AF_INET,
					    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(fx.tcp_addr);
	if (fx.tcp_listener < 0 ||
	    bind(fx.tcp_listener, (struct sockaddr *)&fx.tcp_addr, sizeof(fx.tcp_addr)) < 0 ||
	    getsockname(fx.tcp_listener, (struct sockaddr *)&fx.tcp_addr, &len) < 0 ||
	    listen(fx.tcp_listener, 16) < 0)
		return -1;

	fx.unix_listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fx.unix_addr.sun_family = AF_UNIX;
	int n = snprintf(fx.unix_addr.sun_path + 1, sizeof(fx.unix_addr.sun_path) - 1,
			 "sysgate-wsb-%d", (int)getpid());
	fx.unix_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	if (fx.unix_listener < 0 ||
	    bind(fx.unix_listener, (struct sockaddr *)&fx.unix_addr, fx.unix_addr_len) < 0 ||
	    listen(fx.unix_listener, 16) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	stop_victim();
	if (fx.tcp_listener >= 0)
		close(fx.tcp_listener);
	if (fx.unix_listener >= 0)
		close(fx.unix_listener);
	if (fx.dir[0]) {
		unlink(fx.inside);
		rmdir(fx.dir);
	}
	if (fx.outside[0])
		unlink(fx.outside);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	fx.root = geteuid() == 0;
	fx.uid = getuid();
	fx.gid = getgid();
	if (fx.root) {
		struct passwd *pw = getpwnam(NOBODY);
		if (!pw) {
			print_error("running as root, and there is no user \"%s\"\n", NOBODY);
			return -1;
		}
		fx.uid = pw->pw_uid;
		fx.gid = pw->pw_gid;
	}
	fx.abi = landlock_abi();
	static const char *const wanted[] = { "/usr", "/lib", "/lib64", "/bin", "/etc" };
	for (size_t i = 0; i < ARRAY_SIZE(wanted); i++)
		if (access(wanted[i], F_OK) == 0)
			fx.read_paths[fx.n_read++] = wanted[i];

	snprintf(fx.outside, sizeof(fx.outside), "/tmp/sysgate-wsb-outside-%d", (int)getpid());
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/sysgate-wsb-XXXXXX");
	if (!mkdtemp(fx.dir)) {
		fx.dir[0] = '\0';
		print_error("mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	snprintf(fx.inside, sizeof(fx.inside), "%s/created", fx.dir);
	if (chmod(fx.dir, 0777) < 0 || start_listeners() < 0 || start_victim() < 0) {
		print_error("fixture: %s\n", strerror(errno));
		group_teardown(state);
		return -1;
	}
	return 0;
}

static const struct CMUnitTest fixed_tests[] = {
	cmocka_unit_test(test_identity_and_limits), cmocka_unit_test(test_unknown_user),
	cmocka_unit_test(test_root_needs_user),     cmocka_unit_test(test_missing_path),
	cmocka_unit_test(test_no_fd_leak),
};

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(fixed_tests) + ARRAY_SIZE(op_cases)];
	size_t n = 0;
	UNIT_TESTS(tests, n, fixed_tests);
	UNIT_ROWS(tests, n, test_op, op_cases);
	return cmocka_run_group_tests_name("worker_sandbox", tests, group_setup, group_teardown);
}
