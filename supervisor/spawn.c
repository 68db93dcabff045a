#include "spawn.h"

#include <errno.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "compat.h"
#include "landlock.h"

extern char **environ;

enum spawn_state {
	STATE_STARTING = 0,
	STATE_READY,  /* filter installed, listener published */
	STATE_GO,     /* parent holds the listener: exec */
	STATE_FAILED, /* setup failed before exec */
};

enum spawn_stage {
	STAGE_NONE = 0,
	STAGE_PGID,
	STAGE_PDEATHSIG,
	STAGE_NO_NEW_PRIVS,
	STAGE_LANDLOCK,
	STAGE_SECCOMP,
	STAGE_SIGMASK,
	STAGE_DUMPABLE,
	STAGE_CAPS,
	STAGE_USER,
};

struct spawn_shared {
	_Atomic uint32_t state; /* futex word */
	_Atomic int32_t listener;
	int32_t stage;
	int32_t error;      /* errno of the failed stage */
	int32_t exec_errno; /* errno of a failed execve */
	int32_t wait_killable;
};

static const char *stage_name(int stage)
{
	switch (stage) {
	case STAGE_PGID:
		return "setpgid";
	case STAGE_PDEATHSIG:
		return "prctl(PR_SET_PDEATHSIG)";
	case STAGE_NO_NEW_PRIVS:
		return "prctl(PR_SET_NO_NEW_PRIVS)";
	case STAGE_LANDLOCK:
		return "landlock_restrict_self";
	case STAGE_SECCOMP:
		return "seccomp(SECCOMP_SET_MODE_FILTER)";
	case STAGE_SIGMASK:
		return "sigprocmask";
	case STAGE_DUMPABLE:
		return "prctl(PR_SET_DUMPABLE)";
	case STAGE_CAPS:
		return "dropping capabilities";
	case STAGE_USER:
		return "--user: setgroups/setresgid/setresuid";
	}
	return "setup";
}

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

static void state_set(struct spawn_shared *s, uint32_t st)
{
	atomic_store(&s->state, st);
	futex(&s->state, FUTEX_WAKE, INT_MAX, NULL);
}

/* Empties the bounding set (if asked) and the ambient set; the other sets
 * are emptied by drop_caps_now, after any uid change (which needs them). */
static int drop_bounding_and_ambient(const struct spawn_spec *spec)
{
	/* Only what is there: under a sysgate that emptied it already, we may
	 * lack the CAP_SETPCAP dropping needs. */
	int in;
	for (int cap = 0; spec->drop_bounding && (in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0)) >= 0;
	     cap++)
		if (in && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -1;
	return 0;
}

static int drop_caps_now(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { { 0 } };
	return (int)syscall(SYS_capset, &hdr, data);
}

/* Raw syscalls: they change this thread only, which is the whole process
 * here, without libc's all-threads machinery. */
static int become_user(const struct spawn_spec *spec)
{
	if (syscall(SYS_setgroups, spec->n_groups, spec->groups) < 0 ||
	    syscall(SYS_setresgid, spec->gid, spec->gid, spec->gid) < 0 ||
	    syscall(SYS_setresuid, spec->uid, spec->uid, spec->uid) < 0)
		return -1;
	return 0;
}

/* Runs in the forked child; only async-signal-safe calls. */
/* SCM_RIGHTS of fd over sock; a datagram the parent reads if it needs it. */
static void send_fd(int sock, int fd)
{
	char data = 'L';
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	(void)!sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int recv_fd(int sock)
{
	char data;
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	if (recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int))) {
		errno = EPROTO;
		return -1;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

static _Noreturn void child_main(const struct spawn_spec *spec, struct spawn_shared *s,
				 pid_t parent, int sock)
{
	int stage = STAGE_PGID;
	if (setpgid(0, 0) < 0)
		goto fail;
	/* The command's signal state, restored before the filter, which may
	 * deny the calls that restore it. The supervisor ignores SIGPIPE. */
	stage = STAGE_SIGMASK;
	if (!spec->sigpipe_ignored)
		signal(SIGPIPE, SIG_DFL);
	if (sigprocmask(SIG_SETMASK, &spec->child_sigmask, NULL) < 0)
		goto fail;
	/* Credentials before PDEATHSIG and DUMPABLE: changing them resets
	 * both. */
	stage = STAGE_CAPS;
	if (spec->drop_caps && drop_bounding_and_ambient(spec) < 0)
		goto fail;
	stage = STAGE_USER;
	if (spec->set_user && become_user(spec) < 0)
		goto fail;
	stage = STAGE_CAPS;
	if (spec->drop_caps && drop_caps_now() < 0)
		goto fail;
	/* The supervisor is non-dumpable; the child must not be, or the
	 * supervisor could not take its listener nor read its memory. Under
	 * another sysgate, which denies PR_SET_DUMPABLE, the supervisor could
	 * not drop it and the child already has it. */
	stage = STAGE_DUMPABLE;
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1 && prctl(PR_SET_DUMPABLE, 1) < 0)
		goto fail;
	stage = STAGE_PDEATHSIG;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		goto fail;
	if (getppid() != parent)
		_exit(125); /* the supervisor died before we got here */
	stage = STAGE_NO_NEW_PRIVS;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		goto fail;
	stage = STAGE_LANDLOCK;
	int r = landlock_enforce(spec->landlock_fd);
	if (r < 0) {
		errno = -r;
		goto fail;
	}
	if (spec->landlock_fd >= 0)
		close(spec->landlock_fd);
	stage = STAGE_SECCOMP;
	struct filter_installed inst;
	r = filter_install(spec->prog, &inst);
	if (r < 0) {
		errno = -r;
		goto fail;
	}
	/* From here on any syscall may be trapped; the parent picks the
	 * listener up from shared memory without our help. */
	s->wait_killable = inst.wait_killable;
	if (inst.listener >= 0 && spec->may_send_listener)
		send_fd(sock, inst.listener);
	atomic_store(&s->listener, inst.listener);
	state_set(s, STATE_READY);
	while (atomic_load(&s->state) != STATE_GO)
		futex(&s->state, FUTEX_WAIT, STATE_READY, NULL);
	execve(spec->path, spec->argv, environ);
	s->exec_errno = errno;
	_exit(errno == ENOENT || errno == ENOTDIR ? 127 : 126);
fail:
	s->stage = stage;
	s->error = errno;
	state_set(s, STATE_FAILED);
	_exit(125);
}

/* Waits for the child to publish its listener or to fail. Polls shared
 * memory too, so a child whose futex call is itself trapped still gets
 * through. */
static int wait_ready(struct spawn_child *c, struct sg_err *err)
{
	struct spawn_shared *s = c->shared;
	uint64_t deadline = now_ns() + 10ull * 1000000000ull;
	for (;;) {
		uint32_t st = atomic_load(&s->state);
		if (st == STATE_READY)
			return 0;
		if (st == STATE_FAILED)
			return err_sys(err, s->error, "cannot confine the command: %s",
				       stage_name(s->stage));
		struct pollfd p = { .fd = c->pidfd, .events = POLLIN };
		if (poll(&p, 1, 0) > 0 && atomic_load(&s->state) == STATE_STARTING)
			return err_set(err, ECHILD, "the child died while being confined");
		if (now_ns() > deadline)
			return err_set(err, ETIMEDOUT,
				       "the child did not finish its confinement in 10 s");
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		futex(&s->state, FUTEX_WAIT, st, &ts);
	}
}

int spawn_start(const struct spawn_spec *spec, struct spawn_child *out, struct sg_err *err)
{
	memset(out, 0, sizeof(*out));
	out->pid = -1;
	out->pidfd = -1;
	out->listener = -1;
	struct spawn_shared *s =
		mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return err_sys(err, errno, "mmap");
	atomic_store(&s->listener, -1);
	out->shared = s;

	/* The child's end is closed by its execve. */
	int pair[2] = { -1, -1 };
	if (spec->may_send_listener && socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) < 0)
		return err_sys(err, errno, "socketpair");
	_cleanup_close_ int sock = pair[0];
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		if (pair[1] >= 0)
			close(pair[1]);
		return err_sys(err, errno, "fork");
	}
	if (pid == 0)
		child_main(spec, s, parent, pair[1]);
	if (pair[1] >= 0)
		close(pair[1]);
	out->pid = pid;
	/* Mirror the child's setpgid so the group exists whoever runs first. */
	setpgid(pid, pid);
	out->pidfd = sg_pidfd_open(pid, 0);
	if (out->pidfd < 0)
		return err_sys(err, errno, "pidfd_open on the child");

	int r = wait_ready(out, err);
	if (r < 0)
		return r;
	out->wait_killable = s->wait_killable;
	int child_fd = atomic_load(&s->listener);
	if (child_fd < 0)
		return 0;
	out->listener = sg_pidfd_getfd(out->pidfd, child_fd);
	if (out->listener < 0 && errno == EPERM && sock >= 0)
		out->listener = recv_fd(sock); /* sent before READY: queued by now */
	if (out->listener < 0)
		return err_sys(err, errno,
			       "cannot take the seccomp listener from the child (pidfd_getfd; "
			       "ptrace restrictions such as yama ptrace_scope >= 2, or under "
			       "another sysgate with sendmsg trapped?)");
	return 0;
}

void spawn_release(struct spawn_child *c)
{
	state_set(c->shared, STATE_GO);
}

int spawn_exec_errno(const struct spawn_child *c)
{
	return c->shared ? c->shared->exec_errno : 0;
}

void spawn_free(struct spawn_child *c)
{
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->listener >= 0)
		close(c->listener);
	if (c->shared)
		munmap(c->shared, sizeof(*c->shared));
	c->pidfd = c->listener = -1;
	c->shared = NULL;
}

static bool is_executable_file(const char *path, int *why)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		*why = errno;
		return false;
	}
	if (S_ISDIR(st.st_mode) || access(path, X_OK) < 0) {
		*why = EACCES;
		return false;
	}
	return true;
}

char *spawn_resolve(const char *cmd)
{
	int why = ENOENT;
	if (strchr(cmd, '/')) {
		if (!is_executable_file(cmd, &why)) {
			errno = why == ENOENT || why == ENOTDIR ? ENOENT : EACCES;
			return NULL;
		}
		return strdup(cmd);
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	int seen_eacces = 0;
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		char *full = NULL;
		if (asprintf(&full, "%.*s%s%s", (int)dlen, p, dlen ? "/" : "", cmd) < 0)
			return NULL;
		if (is_executable_file(full, &why))
			return full;
		if (why == EACCES)
			seen_eacces = 1;
		free(full);
		if (!*end)
			break;
		p = end;
	}
	errno = seen_eacces ? EACCES : ENOENT;
	return NULL;
}
