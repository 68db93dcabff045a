#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <termios.h>

#include "audit.h"
#include "builtins.h"
#include "chain.h"
#include "compat.h"
#include "exit_status.h"
#include "filter.h"
#include "landlock.h"
#include "log.h"
#include "procs.h"
#include "receiver.h"
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
	int sigfd, timerfd;
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
	if (cfg->hostname && (r = builtin_hostname_init(&sb->hostname, cfg->hostname,
							&sb->chains, err)) < 0)
		return r;
	if (cfg->max_procs > 0) {
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

static int setup_signals(struct sandbox *sb, struct sg_err *err)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGCHLD);
	/* Blocked before any thread starts, so every thread inherits it. */
	sigset_t blocked = set;
	sigaddset(&blocked, SIGTTOU); /* tcsetpgrp from the background */
	if (sigprocmask(SIG_BLOCK, &blocked, &sb->old_mask) < 0)
		return err_sys(err, errno, "sigprocmask");
	signal(SIGPIPE, SIG_IGN);
	sb->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sb->sigfd < 0)
		return err_sys(err, errno, "signalfd");
	return 0;
}

static int setup_timer(struct sandbox *sb, struct sg_err *err)
{
	if (!sb->cfg->timeout_ms)
		return 0;
	sb->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (sb->timerfd < 0)
		return err_sys(err, errno, "timerfd_create");
	struct itimerspec its = {
		.it_value = { .tv_sec = (time_t)(sb->cfg->timeout_ms / 1000),
			      .tv_nsec = (long)(sb->cfg->timeout_ms % 1000) * 1000000 },
	};
	if (timerfd_settime(sb->timerfd, 0, &its, NULL) < 0)
		return err_sys(err, errno, "timerfd_settime");
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

static void main_loop(struct sandbox *sb)
{
	for (;;) {
		struct pollfd p[4] = {
			{ .fd = sb->sigfd, .events = POLLIN },
			{ .fd = sb->child.pidfd, .events = POLLIN },
			{ .fd = sb->timerfd, .events = POLLIN },
			{ .fd = audit_fail_fd(sb->audit), .events = POLLIN },
		};
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			sb->reason = END_SIGNAL;
			sb->end_signal = SIGTERM;
			return;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sb->sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					continue;
				log_verbose("got signal %d: ending the sandbox", si.ssi_signo);
				sb->reason = END_SIGNAL;
				sb->end_signal = (int)si.ssi_signo;
				return;
			}
			reap(sb);
		}
		if (p[1].revents & POLLIN)
			reap(sb);
		if (sb->root_reaped) {
			sb->reason = END_EXIT;
			return;
		}
		if (p[2].revents & POLLIN) {
			sb->reason = END_TIMEOUT;
			return;
		}
		if (p[3].revents & POLLIN) {
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

/* Kills what is left of the sandbox and reaps it. Bounded: a process that
 * keeps forking is killed along with its children on the next pass. */
static void kill_sandbox(struct sandbox *sb)
{
	for (int pass = 0; pass < 1000; pass++) {
		if (no_children())
			return;
		pid_t helpers[WORKER_MAX];
		size_t n_helpers = router_worker_pids(sb->router, helpers, WORKER_MAX);
		procs_kill_all(getpid(), helpers, n_helpers);
		reap(sb);
		struct proc_list l;
		if (procs_scan(getpid(), helpers, n_helpers, &l) < 0)
			return;
		size_t left = l.n;
		proc_list_free(&l);
		if (left == 0)
			return;
		/* Wait for the next SIGCHLD, briefly. */
		struct pollfd p = { .fd = sb->sigfd, .events = POLLIN };
		if (poll(&p, 1, 10) > 0) {
			struct signalfd_siginfo si;
			(void)!read(sb->sigfd, &si, sizeof(si));
		}
	}
	log_error("some sandbox processes could not be reaped");
}

static int exit_status(struct sandbox *sb)
{
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
	if ((r = setup_filter(sb, err)) < 0 || (r = setup_landlock(sb, err)) < 0)
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
	};
	r = spawn_start(&spec, &sb->child, err);
	if (r < 0)
		return r;
	log_verbose("sandbox %s: pid %d, WAIT_KILLABLE_RECV %s", sb->name, (int)sb->child.pid,
		    sb->child.wait_killable ? "on" : "unavailable");
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
	free(sb->path);
}

int sandbox_run(const struct config *cfg)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		log_error("out of memory");
		return EXIT_OWN_ERROR;
	}
	sb->cfg = cfg;
	sb->landlock_fd = sb->sigfd = sb->timerfd = -1;
	sb->child.pid = -1;
	sb->child.pidfd = sb->child.listener = -1;
	sb->receiver.stop_fd = -1;
	chain_table_init(&sb->chains);
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
	if (sb->reason == END_TIMEOUT)
		log_error("--timeout %.3g s reached: sandbox killed",
			  (double)sb->cfg->timeout_ms / 1000.0);
	status = exit_status(sb);
	audit_end(sb, status);
	teardown(sb);
	if (sb->audit_failed)
		status = EXIT_OWN_ERROR; /* never a clean exit with records lost */
	free(sb);
	return status;
}
