#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <termios.h>

#include "audit.h"
#include "builtins.h"
#include "cgroup.h"
#include "chain.h"
#include "compat.h"
#include "exit_status.h"
#include "filter.h"
#include "landlock.h"
#include "log.h"
#include "procs.h"
#include "receiver.h"
#include "registry.h"
#include "router.h"
#include "spawn.h"
#include "worker.h"

enum end_reason { END_EXIT, END_TIMEOUT, END_SIGNAL, END_AUDIT };

struct sandbox {
	const struct config *cfg;
	char name[160];
	char *path; /* resolved command */
	struct chain_table chains;
	struct builtin_hostname hostname;
	struct builtin_max_procs max_procs;
	bool have_max_procs;
	struct builtin_unix_connect unix_connect;
	struct filter_spec filter;
	struct filter_prog prog;
	int landlock_fd;
	struct audit *audit;
	sigset_t old_mask;
	bool sigpipe_ignored; /* by our caller: the command keeps it so */
	int sigfd, timerfd;
	/* Waits on sigfd, the command's pidfd and timerfd: unlike poll(2),
	 * epoll_wait works whatever RLIMIT_NOFILE has become. */
	int epfd;
	struct cgroup cgroup;
	/* --user */
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	int n_groups;
	struct spawn_child child;
	struct receiver receiver;
	struct router *router; /* NULL without --worker */
	bool tty_handed;
	/* outcome */
	bool root_reaped;
	int root_status;
	enum end_reason reason;
	int end_signal;
	bool audit_failed; /* a record was lost: exit 125 */
	bool ending;          /* the command was asked to end; --kill-after runs */
	bool teardown_failed; /* processes may be left: exit 125 */
};

/* --- preparation (no child yet) --------------------------------------- */

static int setup_filter(struct sandbox *sb, struct sg_err *err)
{
	const struct config *cfg = sb->cfg;
	filter_spec_default_deny(&sb->filter);
	sb->filter.unix_sockets_only = cfg->no_network;
	for (size_t i = 0; i < cfg->deny_syscalls.n; i++)
		sb->filter.deny[syscalls_resolve(cfg->deny_syscalls.v[i])] = true;

	int r;
	if (cfg->hostname &&
	    (r = builtin_hostname_init(&sb->hostname, cfg->hostname, &sb->chains, err)) < 0)
		return r;
	if (cfg->max_procs > 0 && sb->cgroup.pids_via) {
		log_verbose("--max-procs %ld: enforced by %s (threads count too)", cfg->max_procs,
			    sb->cgroup.pids_via);
	} else if (cfg->max_procs > 0) {
		log_verbose("--max-procs %ld: enforced by trapping fork, vfork and clone "
			    "(no pids cgroup)",
			    cfg->max_procs);
		r = builtin_max_procs_init(&sb->max_procs, cfg->max_procs, &sb->chains, err);
		sb->have_max_procs = true;
		if (r < 0)
			return r;
	}
	if ((cfg->read_paths.n || cfg->write_paths.n || cfg->no_network) &&
	    (r = builtin_unix_connect_init(&sb->unix_connect, cfg, &sb->chains, err)) < 0)
		return r;
	for (size_t i = 0; i < cfg->trap_syscalls.n; i++) {
		long nr = syscalls_resolve(cfg->trap_syscalls.v[i]);
		if (sb->filter.deny[nr])
			return err_set(err, EINVAL,
				       "--trap %s: %s is on the deny list; the kernel refuses it "
				       "before any handler could see it",
				       cfg->trap_syscalls.v[i], syscalls_name(nr));
		registry_warn_eintr(nr);
		chain_trap(&sb->chains, nr);
	}
	/* A builtin on a denied syscall would never run: say so. */
	for (long nr = 0; nr < SYSCALLS_MAX; nr++)
		if (sb->chains.by_nr[nr].n && sb->filter.deny[nr])
			return err_set(err, EINVAL, "--%s needs %s, which --deny-syscall denies",
				       sb->chains.by_nr[nr].links[0].name, syscalls_name(nr));
	return 0;
}

/* Once the workers have registered: trap every syscall some handler wants
 * (worker registrations were checked against the deny list). */
static int finish_filter(struct sandbox *sb, struct sg_err *err)
{
	for (long nr = 0; nr < SYSCALLS_MAX; nr++) {
		if (!sb->chains.trapped[nr] || sb->filter.deny[nr])
			continue;
		sb->filter.notify[nr] = true;
		log_verbose("trapping %s", syscalls_name(nr));
	}
	return filter_compile(&sb->filter, &sb->prog, err);
}

/* Helper processes are not sandbox processes: never counted, never killed
 * with the sandbox. */
static size_t sandbox_helpers(void *ctx, pid_t *out, size_t cap)
{
	return router_worker_pids(ctx, out, cap);
}

static int setup_workers(struct sandbox *sb, struct sg_err *err)
{
	if (!sb->cfg->workers.n)
		return 0;
	struct router_config rc = {
		.cfg = sb->cfg,
		.sandbox = sb->name,
		.deny = sb->filter.deny,
		.audit = sb->audit,
		.sigmask = sb->old_mask,
	};
	int r = router_start(&sb->router, &rc, err);
	if (r < 0)
		return r;
	if (sb->have_max_procs) {
		sb->max_procs.helpers = sandbox_helpers;
		sb->max_procs.helpers_ctx = sb->router;
	}
	return router_add_hops(sb->router, &sb->chains, err);
}

static int setup_landlock(struct sandbox *sb, struct sg_err *err)
{
	const struct config *cfg = sb->cfg;
	struct landlock_spec spec = {
		.read_paths = cfg->read_paths.v,
		.n_read = cfg->read_paths.n,
		.write_paths = cfg->write_paths.v,
		.n_write = cfg->write_paths.n,
		.restrict_fs = cfg->read_paths.n || cfg->write_paths.n,
		.no_network = cfg->no_network,
		/* Hardening, where the kernel has it: the command cannot signal
		 * the supervisor or anything else outside the sandbox. */
		.scope_signals = true,
		.scope_abstract = cfg->no_network,
		.always_domain = true,
	};
	int abi = landlock_abi();
	if (abi > 0)
		log_verbose("Landlock ABI %d", abi);
	else
		log_error("warning: no Landlock on this kernel: the command can reach processes "
			  "of its own user outside the sandbox, the supervisor included");
	return landlock_build(&spec, &sb->landlock_fd, err);
}

static bool ignored_at_start(int sig)
{
	struct sigaction sa;
	return sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
}

static int setup_signals(struct sandbox *sb, struct sg_err *err)
{
	sigset_t set;
	sigemptyset(&set);
	/* A signal our caller ignores (nohup, a script's background job) stays
	 * ignored, for us and, as execve would keep it, for the command. */
	static const int ending[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	for (size_t i = 0; i < ARRAY_SIZE(ending); i++) {
		if (ignored_at_start(ending[i]))
			log_verbose("signal %d ignored by our caller: stays ignored", ending[i]);
		else
			sigaddset(&set, ending[i]);
	}
	sigaddset(&set, SIGCHLD);
	/* Blocked before any thread starts, so every thread inherits it. */
	sigset_t blocked = set;
	sigaddset(&blocked, SIGTTOU); /* tcsetpgrp from the background */
	if (sigprocmask(SIG_BLOCK, &blocked, &sb->old_mask) < 0)
		return err_sys(err, errno, "sigprocmask");
	/* Ours only: the child puts back what our caller had. */
	sb->sigpipe_ignored = ignored_at_start(SIGPIPE);
	signal(SIGPIPE, SIG_IGN);
	sb->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sb->sigfd < 0)
		return err_sys(err, errno, "signalfd");
	return 0;
}

static int timer_arm(int timerfd, unsigned long ms)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000 },
	};
	return timerfd_settime(timerfd, 0, &its, NULL) < 0 ? -errno : 0;
}

/* One timer for --timeout, then for --kill-after; created up front like
 * every fd the end of the run needs. */
static int setup_timer(struct sandbox *sb, struct sg_err *err)
{
	sb->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (sb->timerfd < 0)
		return err_sys(err, errno, "timerfd_create");
	int r = sb->cfg->timeout_ms ? timer_arm(sb->timerfd, sb->cfg->timeout_ms) : 0;
	if (r < 0)
		return err_sys(err, -r, "timerfd_settime");
	return 0;
}

/* --user: resolved here, where NSS may be used; the child only applies it. */
static int setup_user(struct sandbox *sb, struct sg_err *err)
{
	const char *user = sb->cfg->user;
	if (!user)
		return 0;
	if (geteuid() != 0)
		return err_set(err, EPERM, "--user %s: sysgate must run as root to change user",
			       user);
	errno = 0;
	struct passwd *pw = getpwnam(user);
	if (!pw)
		return err_set(err, ENOENT, "--user %s: no such user%s%s", user, errno ? ": " : "",
			       errno ? strerror(errno) : "");
	sb->uid = pw->pw_uid;
	sb->gid = pw->pw_gid;
	int n = 32;
	for (;;) {
		gid_t *v = realloc(sb->groups, (size_t)n * sizeof(*v));
		if (!v)
			return err_set(err, ENOMEM, "out of memory");
		sb->groups = v;
		int want = n;
		if (getgrouplist(pw->pw_name, pw->pw_gid, sb->groups, &want) >= 0) {
			sb->n_groups = want;
			break;
		}
		if (want <= n || want > 65536)
			return err_set(err, EINVAL, "--user %s: cannot list its groups", user);
		n = want;
	}
	log_verbose("command runs as %s: uid %d, gid %d, %d groups", user, (int)sb->uid,
		    (int)sb->gid, sb->n_groups);
	return 0;
}

/* --- the terminal ------------------------------------------------------ */

/* An interactive command must own the terminal, or reading it stops it. */
static void tty_hand_over(struct sandbox *sb)
{
	if (!isatty(STDIN_FILENO) || tcgetpgrp(STDIN_FILENO) != getpgrp())
		return;
	if (tcsetpgrp(STDIN_FILENO, sb->child.pid) == 0)
		sb->tty_handed = true;
}

static void tty_take_back(struct sandbox *sb)
{
	if (sb->tty_handed)
		tcsetpgrp(STDIN_FILENO, getpgrp());
	sb->tty_handed = false;
}

/* --- running ----------------------------------------------------------- */

static void note_root_exit(struct sandbox *sb, int status)
{
	sb->root_reaped = true;
	sb->root_status = status;
}

/* Job control, as shells expect of a command that owns the terminal: when
 * Ctrl-Z stops the sandboxed command, take the terminal back and stop
 * ourselves; once continued, hand it back and continue the command's
 * process group (only sandbox processes can be in it: it is the command's
 * own, created by us, and stays ours while the command lives). */
static void forward_stop(struct sandbox *sb)
{
	if (!sb->tty_handed)
		return; /* not interactive: a stopped command is its stopper's business */
	tty_take_back(sb);
	raise(SIGSTOP);
	/* Continued (fg or bg): the terminal is ours again if we are in the
	 * foreground now. */
	if (tcgetpgrp(STDIN_FILENO) == getpgrp())
		tty_hand_over(sb);
	killpg(sb->child.pid, SIGCONT);
}

/* Reaps every child that has exited (orphans come to us as subreaper). */
static void reap(struct sandbox *sb)
{
	int status;
	pid_t pid;
	/* __WNOTHREAD: workers are the router thread's children, reaped there. */
	while ((pid = waitpid(-1, &status, WNOHANG | WUNTRACED | __WNOTHREAD)) > 0) {
		if (pid != sb->child.pid)
			continue;
		if (WIFSTOPPED(status))
			forward_stop(sb);
		else
			note_root_exit(sb, status);
	}
}

/* Asks the command to end as timeout(1) does: the signal goes to its
 * process group, or to the command alone if it left the group. The group
 * is safe to signal while the command is not reaped: its id cannot be
 * reused before then. */
static void forward_signal(struct sandbox *sb, int sig)
{
	if (getpgid(sb->child.pid) == sb->child.pid)
		killpg(sb->child.pid, sig);
	else
		sg_pidfd_send_signal(sb->child.pidfd, sig);
}

/* The first reason to end: pass the signal on (SIGTERM for --timeout) and
 * let --kill-after run. Returns false when the rest is to be killed now. */
static bool begin_ending(struct sandbox *sb, enum end_reason reason, int sig)
{
	sb->reason = reason;
	sb->end_signal = sig;
	sb->ending = true;
	if (!sb->cfg->kill_after_ms || timer_arm(sb->timerfd, sb->cfg->kill_after_ms) < 0)
		return false;
	log_verbose("sending signal %d to the command; the rest is killed in %lu ms", sig,
		    sb->cfg->kill_after_ms);
	forward_signal(sb, sig);
	return true;
}

static int setup_epoll(struct sandbox *sb, struct sg_err *err)
{
	sb->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sb->epfd < 0)
		return err_sys(err, errno, "epoll_create1");
	/* The audit writer's failure fd: -1 without --audit. */
	int fds[] = { sb->sigfd, sb->child.pidfd, sb->timerfd, audit_fail_fd(sb->audit) };
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		if (fds[i] < 0)
			continue;
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fds[i] };
		if (epoll_ctl(sb->epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			return err_sys(err, errno, "epoll_ctl");
	}
	return 0;
}

static void main_loop(struct sandbox *sb)
{
	for (;;) {
		struct epoll_event ev[4];
		int n = epoll_wait(sb->epfd, ev, 4, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			sb->reason = END_SIGNAL;
			sb->end_signal = SIGTERM;
			return;
		}
		bool sig = false, child = false, timer = false, audit = false;
		for (int i = 0; i < n; i++) {
			sig |= ev[i].data.fd == sb->sigfd;
			child |= ev[i].data.fd == sb->child.pidfd;
			timer |= ev[i].data.fd == sb->timerfd;
			audit |= ev[i].data.fd == audit_fail_fd(sb->audit);
		}
		if (sig) {
			struct signalfd_siginfo si;
			while (read(sb->sigfd, &si, sizeof(si)) == sizeof(si)) {
				int signo = (int)si.ssi_signo;
				if (signo == SIGCHLD)
					continue;
				log_verbose("got signal %d: ending the sandbox", signo);
				if (sb->ending)
					forward_signal(sb, signo); /* a second Ctrl-C, say */
				else if (!begin_ending(sb, END_SIGNAL, signo))
					return;
			}
			reap(sb);
		}
		if (child)
			reap(sb);
		if (sb->root_reaped) {
			if (!sb->ending)
				sb->reason = END_EXIT;
			return;
		}
		if (timer) {
			uint64_t ticks;
			(void)!read(sb->timerfd, &ticks, sizeof(ticks));
			if (sb->ending) {
				log_verbose("--kill-after %lu ms over: killing the sandbox",
					    sb->cfg->kill_after_ms);
				return;
			}
			log_error("--timeout %.3g s reached: ending the sandbox",
				  (double)sb->cfg->timeout_ms / 1000.0);
			if (!begin_ending(sb, END_TIMEOUT, SIGTERM))
				return;
		}
		if (audit) {
			sb->reason = END_AUDIT; /* the writer said why */
			return;
		}
	}
}

/* No sandbox process left at all? Every one of them is a child of this
 * thread or below one (orphans are reparented to us, the subreaper; the
 * workers are the router thread's children), so having no child at all
 * means none is left, without reading /proc. */
static bool no_children(void)
{
	siginfo_t si;
	return waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WNOTHREAD) < 0 &&
	       errno == ECHILD;
}

/* Waits for the next SIGCHLD (blocked, so it stays pending), briefly;
 * needs no fd. */
static void wait_sigchld(void)
{
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	sigtimedwait(&chld, NULL, &ts);
}

/* Without a cgroup: kill what a walk of /proc finds. The walk opens files,
 * so first take back the file limit the command (or anyone) may have
 * lowered, as far as the hard limit allows. Returns false when the tree
 * could not be read. */
static bool kill_by_proc_walk(struct sandbox *sb)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	pid_t helpers[WORKER_MAX];
	size_t n_helpers = router_worker_pids(sb->router, helpers, WORKER_MAX);
	int r = procs_kill_all(getpid(), helpers, n_helpers);
	if (r < 0) {
		/* Still end what we can reach without files: the command's
		 * process group (whose id stays reserved while it has members). */
		killpg(sb->child.pid, SIGKILL);
		log_error("cannot list the sandbox's processes in /proc (%s): some may "
			  "still run",
			  strerror(-r));
		return false;
	}
	return true;
}

/* Kills what is left of the sandbox and reaps it. With the sandbox's
 * cgroup one write ends every process in it, however it forked or whatever
 * limits it set; otherwise (or for what left the cgroup) each pass kills
 * what /proc shows, so a process that keeps forking is killed along with
 * its children on the next pass. */
static void kill_sandbox(struct sandbox *sb)
{
	bool by_cgroup = cgroup_kill(&sb->cgroup) == 0;
	/* The command through its pidfd too: it may not have reached its
	 * cgroup (a failed start). */
	if (!sb->root_reaped && sb->child.pidfd >= 0)
		sg_pidfd_send_signal(sb->child.pidfd, SIGKILL);
	for (int pass = 0; pass < 1000; pass++) {
		reap(sb);
		if (no_children())
			return;
		/* Children left though the cgroup is empty (or cannot tell):
		 * some process left it (a uid-0 command can write
		 * cgroup.procs). Walk /proc for those. */
		if ((!by_cgroup || cgroup_populated(&sb->cgroup) != 1) && !kill_by_proc_walk(sb)) {
			sb->teardown_failed = true;
			return;
		}
		wait_sigchld();
	}
	sb->teardown_failed = true;
	log_error("some sandbox processes could not be reaped");
}

static int exit_status(struct sandbox *sb)
{
	if (sb->teardown_failed)
		return EXIT_OWN_ERROR;
	switch (sb->reason) {
	case END_TIMEOUT:
		return EXIT_TIMEOUT;
	case END_SIGNAL:
		return 128 + sb->end_signal;
	case END_AUDIT:
		return EXIT_OWN_ERROR;
	case END_EXIT:
		break;
	}
	int exec_err = spawn_exec_errno(&sb->child);
	if (exec_err) {
		log_error("cannot execute '%s': %s", sb->path, strerror(exec_err));
		return exec_err == ENOENT || exec_err == ENOTDIR ? EXIT_NOTFOUND : EXIT_NOEXEC;
	}
	if (WIFEXITED(sb->root_status))
		return WEXITSTATUS(sb->root_status);
	if (WIFSIGNALED(sb->root_status))
		return 128 + WTERMSIG(sb->root_status);
	return EXIT_OWN_ERROR;
}

static void audit_start(struct sandbox *sb)
{
	if (!sb->audit)
		return;
	json_t *argv = json_array();
	for (char **a = sb->cfg->command; *a; a++)
		json_array_append_new(argv, audit_json_str(*a)); /* lossless, any bytes */
	audit_event(sb->audit, "sandbox_start",
		    json_pack("{s:i, s:o, s:o}", "pid", (int)sb->child.pid, "path",
			      audit_json_str(sb->path), "argv", argv));
}

static void audit_end(struct sandbox *sb, int status)
{
	if (!sb->audit)
		return;
	static const char *const reasons[] = { "exit", "timeout", "signal", "audit" };
	json_t *f = json_pack("{s:i, s:s, s:I}", "status", status, "reason", reasons[sb->reason],
			      "notifications", (json_int_t)sb->receiver.handled);
	if (sb->reason == END_SIGNAL)
		json_object_set_new(f, "signal", json_integer(sb->end_signal));
	/* Forks the pids cgroup refused: no notification recorded them. */
	long refused = cgroup_pids_refused(&sb->cgroup);
	if (refused >= 0)
		json_object_set_new(f, "max_procs_refused", json_integer(refused));
	audit_event(sb->audit, "sandbox_exit", f);
}

static void default_name(struct sandbox *sb)
{
	if (sb->cfg->name) {
		snprintf(sb->name, sizeof(sb->name), "%s", sb->cfg->name);
		return;
	}
	const char *base = strrchr(sb->cfg->command[0], '/');
	base = base ? base + 1 : sb->cfg->command[0];
	/* Whole characters only, printable: the name goes into every record
	 * and to every worker, which refuse anything else. */
	char cut[65];
	audit_utf8_copy(cut, sizeof(cut), *base ? base : "sandbox");
	snprintf(sb->name, sizeof(sb->name), "%s-%d", cut, (int)getpid());
}

static void enable_sync_wakeup(int listener)
{
	/* Wakes the trapped task on the CPU that answered: ~5 us instead of
	 * 5-55 us depending on placement (perf-baseline.md). */
	if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) == 0)
		log_verbose("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP enabled");
	else
		log_verbose("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP unavailable: %s", strerror(errno));
}

static int start(struct sandbox *sb, struct sg_err *err)
{
	const struct config *cfg = sb->cfg;
	int r;
	/* Before the filter: --max-procs traps only without a pids cgroup. */
	cgroup_create(&sb->cgroup, cfg->max_procs);
	if ((r = setup_user(sb, err)) < 0 || (r = setup_filter(sb, err)) < 0 ||
	    (r = setup_landlock(sb, err)) < 0)
		return r;
	/* Signals first: a thread started before the mask is set could take
	 * (and drop) a SIGCHLD meant for the signalfd. */
	if ((r = setup_signals(sb, err)) < 0 || (r = setup_timer(sb, err)) < 0)
		return r;
	struct audit_spec audit = {
		.path = cfg->audit_path,
		.sandbox = sb->name,
		.write_paths = cfg->write_paths.v,
		.n_write = cfg->write_paths.n,
		.restrict_fs = cfg->read_paths.n || cfg->write_paths.n,
	};
	if (cfg->audit_path && (r = audit_open(&sb->audit, &audit, err)) < 0)
		return r;
	/* Workers register before the filter is compiled: it traps what they
	 * asked for. */
	if ((r = setup_workers(sb, err)) < 0 || (r = finish_filter(sb, err)) < 0)
		return r;
	/* Orphans of the sandbox are reparented to us, so none escapes the
	 * tree we kill at the end. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return err_sys(err, errno, "prctl(PR_SET_CHILD_SUBREAPER)");

	struct spawn_spec spec = {
		.path = sb->path,
		.argv = cfg->command,
		.landlock_fd = sb->landlock_fd,
		.prog = &sb->prog,
		.child_sigmask = sb->old_mask,
		.sigpipe_ignored = sb->sigpipe_ignored,
		.may_send_listener =
			!sb->filter.notify[SYS_sendmsg] && !sb->filter.deny[SYS_sendmsg],
		/* As root the command gets no capability unless asked for. */
		.drop_caps = geteuid() == 0 && !cfg->keep_caps,
		.drop_bounding = geteuid() == 0 && !cfg->keep_caps,
		.set_user = cfg->user != NULL,
		.uid = sb->uid,
		.gid = sb->gid,
		.groups = sb->groups,
		.n_groups = (size_t)sb->n_groups,
	};
	r = spawn_start(&spec, &sb->child, err);
	/* Still before execve: the command starts inside its cgroups. */
	if (r < 0 || (r = cgroup_attach(&sb->cgroup, sb->child.pid, err)) < 0)
		return r;
	log_verbose("sandbox %s: pid %d, WAIT_KILLABLE_RECV %s", sb->name, (int)sb->child.pid,
		    sb->child.wait_killable ? "on" : "unavailable");
	if ((r = setup_epoll(sb, err)) < 0)
		return r;
	if (sb->child.listener >= 0) {
		enable_sync_wakeup(sb->child.listener);
		if (sb->router)
			router_go(sb->router, sb->child.listener);
		r = receiver_start(&sb->receiver, sb->child.listener, &sb->chains, sb->router,
				   sb->audit, err);
		if (r < 0)
			return r;
	}
	tty_hand_over(sb);
	audit_start(sb);
	spawn_release(&sb->child);
	return 0;
}

static void teardown(struct sandbox *sb)
{
	if (sb->child.pid > 0)
		kill_sandbox(sb);
	receiver_stop(&sb->receiver);
	router_stop(sb->router);
	tty_take_back(sb);
	spawn_free(&sb->child);
	cgroup_free(&sb->cgroup); /* empty now: everything in it was reaped */
	if (audit_close(sb->audit) < 0)
		sb->audit_failed = true;
	sb->audit = NULL;
	router_free(sb->router); /* after the audit: records name its workers */
	sb->router = NULL;
	if (sb->have_max_procs)
		builtin_max_procs_free(&sb->max_procs);
	builtin_unix_connect_free(&sb->unix_connect);
	chain_table_free(&sb->chains);
	filter_prog_free(&sb->prog);
	if (sb->landlock_fd >= 0)
		close(sb->landlock_fd);
	if (sb->sigfd >= 0)
		close(sb->sigfd);
	if (sb->timerfd >= 0)
		close(sb->timerfd);
	if (sb->epfd >= 0)
		close(sb->epfd);
	free(sb->path);
	free(sb->groups);
}

int sandbox_run(const struct config *cfg)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		log_error("out of memory");
		return EXIT_OWN_ERROR;
	}
	sb->cfg = cfg;
	sb->landlock_fd = sb->sigfd = sb->timerfd = sb->epfd = -1;
	sb->child.pid = -1;
	sb->child.pidfd = sb->child.listener = -1;
	sb->receiver.stop_fd = -1;
	chain_table_init(&sb->chains);
	cgroup_init(&sb->cgroup);
	default_name(sb);

	int status;
	sb->path = spawn_resolve(cfg->command[0]);
	if (!sb->path) {
		status = errno == EACCES ? EXIT_NOEXEC : EXIT_NOTFOUND;
		log_error("%s: %s", cfg->command[0],
			  status == EXIT_NOEXEC ? "permission denied" : "command not found");
		teardown(sb);
		free(sb);
		return status;
	}

	struct sg_err err = { { 0 } };
	if (start(sb, &err) < 0) {
		log_error("%s", err.msg);
		status = EXIT_OWN_ERROR;
		teardown(sb);
		free(sb);
		return status;
	}
	main_loop(sb);
	/* Kill the rest before writing anything: the command may have stopped
	 * the terminal we would write to (tcflow), and must not make us wait. */
	kill_sandbox(sb);
	if (isatty(STDERR_FILENO))
		tcflow(STDERR_FILENO, TCOON);
	status = exit_status(sb);
	audit_end(sb, status);
	teardown(sb);
	if (sb->audit_failed)
		status = EXIT_OWN_ERROR; /* never a clean exit with records lost */
	free(sb);
	return status;
}
