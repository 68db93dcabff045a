#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat.h"
#include "log.h"
#include "spawn.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

/* Read-only for every worker: the loader, libraries and configuration. */
static const char *const system_read[] = { "/usr", "/lib", "/lib64", "/lib32", "/libx32",
					   "/bin", "/sbin", "/etc" };

static int split_blanks(const char *spec, char ***out)
{
	size_t n = 0, cap = 4;
	char **v = calloc(cap + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (const char *p = spec; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		size_t len = strcspn(p, " \t");
		if (n == cap) {
			char **nv = realloc(v, (cap * 2 + 1) * sizeof(*v));
			if (!nv) {
				strv_free(v);
				return -ENOMEM;
			}
			v = nv;
			cap *= 2;
		}
		if (!(v[n] = strndup(p, len))) {
			strv_free(v);
			return -ENOMEM;
		}
		v[++n] = NULL;
		p += len;
	}
	*out = v;
	return (int)n;
}

/* Read paths for this worker: the system's, its binary's directory, the
 * directory of each argument that names a file (a script, a plugin), and
 * the run's extra paths. Paths that do not exist are skipped. */
struct paths {
	char *v[64];
	size_t n;
};

static void paths_add(struct paths *p, const char *path)
{
	struct stat st;
	if (p->n == ARRAY_SIZE(p->v) || stat(path, &st) < 0)
		return;
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->v[i], path))
			return;
	char *copy = strdup(path);
	if (copy)
		p->v[p->n++] = copy;
}

static void paths_add_dir_of(struct paths *p, const char *file)
{
	struct stat st;
	if (stat(file, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	char real[PATH_MAX];
	if (!realpath(file, real))
		return;
	paths_add(p, dirname(real));
}

/* Whether path starts with "#!" (unreadable here: not a script we can
 * tell, the exec says what it is). */
static bool is_script(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	char magic[2];
	return fd >= 0 && read(fd, magic, sizeof(magic)) == 2 && magic[0] == '#' && magic[1] == '!';
}

static void paths_free(struct paths *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	p->n = 0;
}

/* As root without --worker-user: spec's own uid, which no user or group
 * of this system may hold (it would share files or signals with it). */
static int own_uid(const char *spec, unsigned spec_index, const struct worker_env *env, uid_t *uid,
		   struct sg_err *err)
{
	*uid = 0;
	if (geteuid() != 0 || env->user || !env->uid_base)
		return 0;
	unsigned long u = env->uid_base + spec_index;
	errno = 0;
	struct passwd *pw = getpwuid((uid_t)u);
	if (pw)
		return err_set(err, EEXIST,
			       "--worker '%s': its uid %lu is user \"%s\"; give --worker-uid-base "
			       "a range no user or group uses, or --worker-user",
			       spec, u, pw->pw_name);
	struct group *gr = getgrgid((gid_t)u);
	if (gr)
		return err_set(err, EEXIST,
			       "--worker '%s': its gid %lu is group \"%s\"; give "
			       "--worker-uid-base a range no user or group uses, or --worker-user",
			       spec, u, gr->gr_name);
	*uid = (uid_t)u;
	return 0;
}

int worker_init(struct worker *w, unsigned index, const char *spec, unsigned spec_index,
		unsigned replica, const struct worker_env *env, struct sg_err *err)
{
	memset(w, 0, sizeof(*w));
	w->index = index;
	w->spec = spec;
	w->replica = replica;
	/* Messages tell replicas apart. */
	if (replica && asprintf(&w->label, "%s [replica %u]", spec, replica + 1) >= 0)
		w->spec = w->label;
	w->exe_fd = w->pidfd = w->out_fd = w->recv_fd = w->wake_fd = -1;
	w->kick_fd = env->kick_fd;
	w->sandbox.landlock_fd = -1;
	w->state = WORKER_DEAD;
	int n = split_blanks(spec, &w->argv);
	if (n < 0)
		return err_set(err, ENOMEM, "--worker '%s': out of memory", spec);
	if (n == 0)
		return err_set(err, EINVAL, "--worker: empty command");
	const char *base = strrchr(w->argv[0], '/');
	snprintf(w->name, sizeof(w->name), "%s", base ? base + 1 : w->argv[0]);

	_cleanup_free_ char *path = spawn_resolve(w->argv[0]);
	if (!path)
		return err_set(err, errno == EACCES ? EACCES : ENOENT, "--worker '%s': %s: %s",
			       spec, w->argv[0],
			       errno == EACCES ? "permission denied" : "command not found");
	w->exe_fd = open(path, O_PATH | O_CLOEXEC);
	if (w->exe_fd < 0)
		return err_sys(err, errno, "--worker '%s': cannot open %s", spec, path);
	w->script = is_script(path);

	struct paths rp = { .n = 0 };
	for (size_t i = 0; i < ARRAY_SIZE(system_read); i++)
		paths_add(&rp, system_read[i]);
	paths_add_dir_of(&rp, path);
	for (char **a = w->argv + 1; *a; a++)
		paths_add_dir_of(&rp, *a);
	for (size_t i = 0; i < env->n_read; i++)
		paths_add(&rp, env->read[i]);
	uid_t uid;
	int r = own_uid(spec, spec_index, env, &uid, err);
	if (r < 0) {
		paths_free(&rp);
		return r;
	}
	struct worker_sandbox_spec ws = {
		.user = env->user,
		.uid = uid,
		.read_paths = (const char *const *)rp.v,
		.n_read = rp.n,
	};
	struct sg_err e2;
	r = worker_sandbox_prepare(&w->sandbox, &ws, &e2);
	paths_free(&rp);
	if (r < 0)
		return err_set(err, -r, "--worker '%s': %s", spec, e2.msg);
	if ((r = worker_dir_create(w, env, err)) < 0)
		return r;
	return worker_link_listen(w, err);
}

static int token_hex(const uint8_t *t, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++) {
		out[2 * i] = hex[t[i] >> 4];
		out[2 * i + 1] = hex[t[i] & 15];
	}
	out[2 * PROTO_TOKEN_SIZE] = '\0';
	return 0;
}

/* environ without SYSGATE_WORKER_*, plus this worker's. */
static char **worker_environ(const struct worker *w, int shm_fd, uint64_t spin_ns)
{
	size_t n = 0;
	for (char **e = environ; *e; e++)
		n++;
	char **v = calloc(n + 8, sizeof(*v));
	if (!v)
		return NULL;
	size_t k = 0;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "SYSGATE_WORKER_", 15) != 0 && !(v[k++] = strdup(*e)))
			goto fail;
	char token[2 * PROTO_TOKEN_SIZE + 1];
	token_hex(w->token, token);
	if (asprintf(&v[k++], "SYSGATE_WORKER_URL=%s", w->url) < 0 ||
	    asprintf(&v[k++], "SYSGATE_WORKER_TOKEN=%s", token) < 0 ||
	    asprintf(&v[k++], "SYSGATE_WORKER_NAME=%s", w->name) < 0 ||
	    asprintf(&v[k++], "SYSGATE_WORKER_RESTART=%u", w->generation) < 0 ||
	    asprintf(&v[k++], "SYSGATE_WORKER_REPLICA=%u", w->replica) < 0) {
		v[k - 1] = NULL;
		goto fail;
	}
	if (shm_fd >= 0 &&
	    (asprintf(&v[k++], "SYSGATE_WORKER_FAST=%d,%d", shm_fd, w->wake_fd) < 0 ||
	     asprintf(&v[k++], "SYSGATE_WORKER_SPIN_NS=%llu", (unsigned long long)spin_ns) < 0)) {
		v[k - 1] = NULL;
		goto fail;
	}
	return v;
fail:
	strv_free(v);
	return NULL;
}

/* Async-signal-safe diagnostics for the forked child. */
static void child_fail(const char *what, int err)
{
	char num[16];
	int i = (int)sizeof(num);
	num[--i] = '\0';
	unsigned u = (unsigned)(err < 0 ? -err : err);
	do
		num[--i] = (char)('0' + u % 10);
	while ((u /= 10) && i > 0);
	const char *parts[] = { "sysgate: worker: ", what, " failed (errno ", num + i, ")\n" };
	for (size_t p = 0; p < ARRAY_SIZE(parts); p++)
		(void)!write(STDERR_FILENO, parts[p], strlen(parts[p]));
}

/* ENOENT from a script's exec: its interpreter (the #! line) is missing, or
 * outside what the worker may read. Async-signal-safe. */
static void child_script_fail(const char *script)
{
	const char *parts[] = { "sysgate: worker: ", script,
				" is a script and its interpreter (its #! line) cannot be run "
				"by the worker: install it, name an interpreter the worker can "
				"read (--worker-read DIR grants a directory), or give the "
				"interpreter as the command (--worker 'INTERPRETER SCRIPT')\n" };
	for (size_t p = 0; p < ARRAY_SIZE(parts); p++)
		(void)!write(STDERR_FILENO, parts[p], strlen(parts[p]));
}

static _Noreturn void child_run(const struct worker *w, const struct worker_env *env, int out,
				int devnull, int shm_fd, char **envp, pid_t supervisor, int go[2])
{
	/* Until the supervisor knows our pid as the one allowed on the link
	 * (link_pid): it closes its end then. */
	char c;
	close(go[1]);
	while (read(go[0], &c, 1) < 0 && errno == EINTR)
		;
	if (dup2(devnull, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    dup2(out, STDERR_FILENO) < 0)
		_exit(126);
	/* Its own session: terminal signals are sysgate's to handle. */
	setsid();
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigaction(SIGPIPE, &dfl, NULL);
	sigprocmask(SIG_SETMASK, &env->sigmask, NULL);
	/* Everything else we hold stays out of the worker. */
	if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < 1024; fd++)
			if (fd != w->exe_fd && fd != w->sandbox.landlock_fd)
				fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	/* The fast channel is the worker's to keep (SYSGATE_WORKER_FAST). */
	if (shm_fd >= 0 && (fcntl(shm_fd, F_SETFD, 0) < 0 || fcntl(w->wake_fd, F_SETFD, 0) < 0))
		_exit(126);
	enum worker_sandbox_stage stage;
	int r = worker_sandbox_apply_staged(&w->sandbox, &stage);
	if (r < 0) {
		child_fail(worker_sandbox_stage_name(stage), r);
		_exit(126);
	}
	/* After the uid change, which clears it; dies with the supervisor. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != supervisor)
		_exit(126);
	/* A script's interpreter opens /dev/fd/N: the kernel refuses the exec
	 * (ENOENT) if N closes on it. */
	if (w->script && fcntl(w->exe_fd, F_SETFD, 0) < 0)
		_exit(126);
	syscall(SYS_execveat, w->exe_fd, "", w->argv, envp, AT_EMPTY_PATH);
	int e = errno;
	if (w->script && e == ENOENT)
		child_script_fail(w->argv[0]);
	else
		child_fail("execve", e);
	_exit(127);
}

int worker_spawn(struct worker *w, const struct worker_env *env, uint64_t hello_deadline_ns,
		 struct sg_err *err)
{
	if (getrandom(w->token, sizeof(w->token), 0) != (ssize_t)sizeof(w->token))
		return err_sys(err, errno, "--worker '%s': getrandom", w->spec);
	/* A fresh channel per start: nothing an earlier instance left in the
	 * old one can reach the new one. */
	worker_fast_release(w);
	_cleanup_close_ int shm_fd = -1;
	int r;
	if (env->fast && (r = worker_fast_create(w, &shm_fd, err)) < 0)
		return r;
	char **envp = worker_environ(w, shm_fd, env->spin_ns);
	if (!envp)
		return err_set(err, ENOMEM, "--worker '%s': out of memory", w->spec);
	if (w->out_fd >= 0) {
		/* An earlier instance's output: what is left, then closed. */
		worker_pump_output(w);
		if (w->out_fd >= 0)
			close(w->out_fd);
		w->out_fd = -1;
	}
	int pipefd[2], go[2] = { -1, -1 };
	_cleanup_close_ int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || pipe2(go, O_CLOEXEC) < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
		int e = errno;
		strv_free(envp);
		if (go[0] >= 0) {
			close(go[0]);
			close(go[1]);
		}
		return err_sys(err, e, "--worker '%s': cannot set up its output", w->spec);
	}
	pid_t self = getpid();
	pid_t pid = fork();
	if (pid == 0)
		child_run(w, env, pipefd[1], devnull, shm_fd, envp, self, go);
	int e = errno;
	if (pid > 0)
		atomic_store(&w->link_pid, pid);
	close(go[0]);
	close(go[1]); /* the child goes on */
	strv_free(envp);
	close(pipefd[1]);
	if (pid < 0) {
		close(pipefd[0]);
		return err_sys(err, e, "--worker '%s': fork", w->spec);
	}
	w->pid = pid;
	w->out_fd = pipefd[0];
	fcntl(w->out_fd, F_SETFL, O_NONBLOCK);
	w->pidfd = sg_pidfd_open(pid, 0);
	if (w->pidfd < 0) {
		e = errno;
		kill(pid, SIGKILL); /* our unreaped child: the pid is still ours */
		waitpid(pid, NULL, 0);
		w->pid = 0;
		atomic_store(&w->link_pid, 0);
		return err_sys(err, e, "--worker '%s': pidfd_open", w->spec);
	}
	w->state = WORKER_STARTING;
	w->deadline_ns = hello_deadline_ns;
	w->link_lost_ns = 0;
	w->last_heard_ns = 0;
	w->n_expired = 0;
	w->pipe_id = 0;
	log_verbose("worker '%s': pid %d%s", w->spec, (int)pid,
		    w->generation ? " (restarted)" : "");
	return 0;
}

void worker_kill(struct worker *w)
{
	if (w->pidfd < 0)
		return;
	sg_pidfd_send_signal(w->pidfd, SIGKILL);
	/* And every process it forked: its own session and group (setsid at
	 * spawn; setsid and setpgid are denied to it). Safe while it is not
	 * reaped: its pid, hence the group id, cannot be reused. */
	kill(-w->pid, SIGKILL);
}

int worker_reap(struct worker *w, int *status)
{
	if (w->pidfd < 0)
		return -ECHILD;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG) < 0)
		return -errno;
	if (si.si_pid == 0)
		return 0;
	*status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status & 0x7f;
	close(w->pidfd);
	w->pidfd = -1;
	w->pid = 0;
	atomic_store(&w->link_pid, 0); /* before its pid can be reused */
	return 1;
}

bool worker_pump_output(struct worker *w)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(w->out_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0) {
			close(w->out_fd);
			w->out_fd = -1;
			return false;
		}
		(void)!write_all(STDERR_FILENO, buf, (size_t)n);
		for (ssize_t i = 0; i < n; i++) {
			w->tail[w->tail_pos] = buf[i];
			w->tail_pos = (w->tail_pos + 1) % WORKER_TAIL;
		}
		w->tail_len = w->tail_len + (size_t)n > WORKER_TAIL ? WORKER_TAIL
								    : w->tail_len + (size_t)n;
	}
}

void worker_tail(const struct worker *w, char *buf, size_t size)
{
	size_t want = w->tail_len < size - 1 ? w->tail_len : size - 1;
	size_t start = (w->tail_pos + WORKER_TAIL - want) % WORKER_TAIL, k = 0;
	for (size_t i = 0; i < want; i++) {
		char c = w->tail[(start + i) % WORKER_TAIL];
		/* One line: output lines joined, control characters blanked. */
		buf[k++] = c == '\n' ? '|' : (unsigned char)c < 0x20 ? ' ' : c;
	}
	while (k && (buf[k - 1] == '|' || buf[k - 1] == ' '))
		k--;
	buf[k] = '\0';
}

void worker_describe_status(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by SIG%s", sigabbrev_np(WTERMSIG(status))
							      ? sigabbrev_np(WTERMSIG(status))
							      : "?");
	else
		snprintf(buf, size, "ended (status %#x)", (unsigned)status);
}

void worker_free(struct worker *w)
{
	/* The socket is left open: nng 1.5's nng_close of a pair1 socket can
	 * wait forever for a message still in flight inside nng (a worker
	 * that answered or restarted just before the end), and draining
	 * first does not close that window. This runs once, as sysgate ends;
	 * the process's exit releases the socket (the link's file is removed
	 * below). Its callback goes first: it points into w, and at an fd that
	 * will be closed. */
	if (w->sock_open) {
		nng_pipe_notify(w->sock, NNG_PIPE_EV_ADD_PRE, NULL, NULL);
		nng_pipe_notify(w->sock, NNG_PIPE_EV_REM_POST, NULL, NULL);
	}
	w->sock_open = false;
	worker_dir_remove(w);
	if (w->pidfd >= 0)
		close(w->pidfd);
	if (w->out_fd >= 0)
		close(w->out_fd);
	if (w->exe_fd >= 0)
		close(w->exe_fd);
	worker_fast_release(w);
	worker_sandbox_free(&w->sandbox);
	strv_free(w->argv);
	free(w->dir);
	free(w->url);
	free(w->regs);
	free(w->label);
	w->label = NULL;
	/* w->name stays: audit records may still point at it. */
	w->argv = NULL;
	w->dir = w->url = NULL;
	w->regs = NULL;
	w->n_regs = 0;
	w->exe_fd = w->pidfd = w->out_fd = w->recv_fd = -1;
}
