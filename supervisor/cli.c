#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "syscalls.h"

const char cli_run_usage[] =
	"Usage: sysgate run [OPTIONS] -- COMMAND [ARG...]\n"
	"Run COMMAND under seccomp user notification.\n"
	"\n"
	"Child confinement:\n"
	"  -r, --read PATH          allow read and execute beneath PATH (Landlock); repeatable\n"
	"  -w, --write PATH         allow read, write and create beneath PATH (Landlock); repeatable\n"
	"                           (without any -r/-w the filesystem is not restricted)\n"
	"      --no-network         no sockets but unix ones; no TCP bind/connect (Landlock)\n"
	"      --allow-unix PATH    allow connecting to the unix socket PATH, which\n"
	"                           -r/-w and --no-network refuse otherwise; repeatable\n"
	"      --deny-syscall NAME  fail NAME with EPERM in the kernel; repeatable\n"
	"      --max-procs N        at most N live processes; further forks fail with EAGAIN\n"
	"      --hostname NAME      uname(2) reports NAME as the node name\n"
	"      --trap NAME          trap NAME and let it run, so --audit records it; repeatable\n"
	"      --timeout SECONDS    after SECONDS of wall time, send the command SIGTERM, then\n"
	"                           kill the rest after --kill-after (exit 124)\n"
	"      --kill-after SECONDS  time the command has to end after SIGTERM/SIGINT/SIGHUP\n"
	"                           (passed on) or --timeout, before everything left in the\n"
	"                           sandbox is killed (default 5; 0: kill at once)\n"
	"      --user USER          run the command as USER: its uid, primary group and\n"
	"                           supplementary groups (sysgate as root only)\n"
	"      --keep-caps          as root, leave the command its capabilities (default: it\n"
	"                           runs with empty bounding, ambient, effective, permitted\n"
	"                           and inheritable sets)\n"
	"      --name NAME          sandbox name for the audit log (default: COMMAND-PID)\n"
	"\n"
	"Handlers:\n"
	"      --worker 'CMD [ARG...]'  start a handler worker; repeatable, order = chain order\n"
	"      --replicas N             run N copies of the --worker before it, sharing its\n"
	"                               notifications (default 1)\n"
	"      --handler-timeout MS     time a worker may take per notification (default 5000)\n"
	"      --worker-user USER       user all workers run as when sysgate runs as root\n"
	"                               (default: a uid of their own, see next)\n"
	"      --worker-uid-base UID    as root without --worker-user, the k-th --worker\n"
	"                               (0-based; replicas share) runs as uid and gid UID+k\n"
	"                               (default 2136866816 = 0x7f5e0000)\n"
	"      --worker-start-timeout MS  time a worker may take to register (default 10000)\n"
	"      --worker-read PATH       let workers read beneath PATH too (their code, a\n"
	"                               PYTHONPATH); repeatable\n"
	"      --worker-transport fast|nng  how snapshots and answers travel: a shared-memory\n"
	"                               channel beside the nng link (default), or nng only\n"
	"\n"
	"Observability:\n"
	"      --audit FILE         append one JSON object per trapped syscall and event to\n"
	"                           FILE, a regular file beneath no -w PATH ('-' for\n"
	"                           standard error, which the command shares)\n"
	"  -v, --verbose            more diagnostics on standard error\n"
	"  -h, --help               show this help and exit\n"
	"      --version            show the version and exit\n"
	"\n"
	"Exit status: the command's status; 128+N if it died of signal N, or if sysgate\n"
	"received signal N (however the command then ended); 124 on --timeout; 125 for\n"
	"sysgate's own errors (also when processes of the sandbox could not be killed);\n"
	"126 if COMMAND is not executable; 127 if not found.\n";

enum {
	OPT_NO_NETWORK = 256,
	OPT_DENY_SYSCALL,
	OPT_MAX_PROCS,
	OPT_HOSTNAME,
	OPT_TRAP,
	OPT_TIMEOUT,
	OPT_KILL_AFTER,
	OPT_USER,
	OPT_KEEP_CAPS,
	OPT_NAME,
	OPT_WORKER,
	OPT_HANDLER_TIMEOUT,
	OPT_WORKER_USER,
	OPT_WORKER_UID_BASE,
	OPT_WORKER_START_TIMEOUT,
	OPT_WORKER_READ,
	OPT_WORKER_TRANSPORT,
	OPT_REPLICAS,
	OPT_AUDIT,
	OPT_VERSION,
	OPT_ALLOW_UNIX,
};

static const struct option long_options[] = {
	{ "read", required_argument, NULL, 'r' },
	{ "write", required_argument, NULL, 'w' },
	{ "no-network", no_argument, NULL, OPT_NO_NETWORK },
	{ "allow-unix", required_argument, NULL, OPT_ALLOW_UNIX },
	{ "deny-syscall", required_argument, NULL, OPT_DENY_SYSCALL },
	{ "max-procs", required_argument, NULL, OPT_MAX_PROCS },
	{ "hostname", required_argument, NULL, OPT_HOSTNAME },
	{ "trap", required_argument, NULL, OPT_TRAP },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "kill-after", required_argument, NULL, OPT_KILL_AFTER },
	{ "user", required_argument, NULL, OPT_USER },
	{ "keep-caps", no_argument, NULL, OPT_KEEP_CAPS },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "worker", required_argument, NULL, OPT_WORKER },
	{ "handler-timeout", required_argument, NULL, OPT_HANDLER_TIMEOUT },
	{ "worker-user", required_argument, NULL, OPT_WORKER_USER },
	{ "worker-uid-base", required_argument, NULL, OPT_WORKER_UID_BASE },
	{ "worker-start-timeout", required_argument, NULL, OPT_WORKER_START_TIMEOUT },
	{ "worker-read", required_argument, NULL, OPT_WORKER_READ },
	{ "worker-transport", required_argument, NULL, OPT_WORKER_TRANSPORT },
	{ "replicas", required_argument, NULL, OPT_REPLICAS },
	{ "audit", required_argument, NULL, OPT_AUDIT },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static int strvec_push(struct strvec *sv, const char *s)
{
	const char **v = realloc(sv->v, (sv->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	v[sv->n++] = s;
	sv->v = v;
	return 0;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Seconds (a decimal fraction) to milliseconds, at most a year. */
static int parse_seconds(const char *s, bool zero_ok, unsigned long *ms)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || (v == 0 && !zero_ok) ||
	    v > 31536000.0)
		return -EINVAL;
	*ms = (unsigned long)ceil(v * 1000.0);
	return 0;
}

static int check_syscall(const char *opt, const char *name, struct sg_err *err)
{
	long nr = syscalls_resolve(name);
	if (nr == -EINVAL)
		return err_set(err, EINVAL, "%s %s: not a valid syscall number", opt, name);
	if (nr < 0)
		return err_set(err, ENOENT, "%s %s: unknown syscall on this architecture", opt,
			       name);
	return 0;
}

static int check_path(const char *opt, const char *path, struct sg_err *err)
{
	if (!*path)
		return err_set(err, EINVAL, "%s: empty path", opt);
	return 0;
}

void cli_config_free(struct config *cfg)
{
	free(cfg->read_paths.v);
	free(cfg->write_paths.v);
	free(cfg->deny_syscalls.v);
	free(cfg->trap_syscalls.v);
	free(cfg->workers.v);
	free(cfg->worker_read.v);
	free(cfg->allow_unix.v);
	memset(cfg, 0, sizeof(*cfg));
}

static int parse_option(int c, const char *arg, struct config *cfg, struct sg_err *err)
{
	long v;
	switch (c) {
	case 'r':
		if (check_path("--read", arg, err) < 0)
			return -EINVAL;
		return strvec_push(&cfg->read_paths, arg);
	case 'w':
		if (check_path("--write", arg, err) < 0)
			return -EINVAL;
		return strvec_push(&cfg->write_paths, arg);
	case OPT_NO_NETWORK:
		cfg->no_network = true;
		return 0;
	case OPT_ALLOW_UNIX:
		if (check_path("--allow-unix", arg, err) < 0)
			return -EINVAL;
		return strvec_push(&cfg->allow_unix, arg);
	case OPT_DENY_SYSCALL:
		if (check_syscall("--deny-syscall", arg, err) < 0)
			return -EINVAL;
		return strvec_push(&cfg->deny_syscalls, arg);
	case OPT_MAX_PROCS:
		if (parse_long(arg, 1, 1L << 22, &v) < 0)
			return err_set(err, EINVAL, "--max-procs %s: not a positive integer", arg);
		cfg->max_procs = v;
		return 0;
	case OPT_HOSTNAME:
		/* Must fit utsname.nodename with its NUL. */
		if (!*arg || strlen(arg) > 64)
			return err_set(err, EINVAL, "--hostname: must be 1 to 64 characters");
		cfg->hostname = arg;
		return 0;
	case OPT_TRAP:
		if (check_syscall("--trap", arg, err) < 0)
			return -EINVAL;
		return strvec_push(&cfg->trap_syscalls, arg);
	case OPT_TIMEOUT:
		if (parse_seconds(arg, false, &cfg->timeout_ms) < 0)
			return err_set(err, EINVAL,
				       "--timeout %s: not a positive number of seconds", arg);
		return 0;
	case OPT_KILL_AFTER:
		if (parse_seconds(arg, true, &cfg->kill_after_ms) < 0)
			return err_set(err, EINVAL, "--kill-after %s: not a number of seconds",
				       arg);
		return 0;
	case OPT_USER:
		if (!*arg)
			return err_set(err, EINVAL, "--user: empty user name");
		cfg->user = arg;
		return 0;
	case OPT_KEEP_CAPS:
		cfg->keep_caps = true;
		return 0;
	case OPT_NAME:
		if (!*arg || strlen(arg) > 128)
			return err_set(err, EINVAL, "--name: must be 1 to 128 bytes");
		/* It goes into every audit record and to every worker. */
		if (!audit_utf8_printable(arg, strlen(arg)))
			return err_set(err, EINVAL,
				       "--name: not printable UTF-8 (control characters or invalid "
				       "bytes)");
		cfg->name = arg;
		return 0;
	case OPT_WORKER:
		if (!*arg)
			return err_set(err, EINVAL, "--worker: empty command");
		if (cfg->workers.n >= CLI_MAX_WORKERS)
			return err_set(err, E2BIG, "--worker: at most %u workers", CLI_MAX_WORKERS);
		cfg->replicas[cfg->workers.n] = 1;
		return strvec_push(&cfg->workers, arg);
	case OPT_REPLICAS:
		if (cfg->workers.n == 0)
			return err_set(err, EINVAL,
				       "--replicas %s: give it after the --worker it "
				       "applies to",
				       arg);
		if (parse_long(arg, 1, CLI_MAX_REPLICAS, &v) < 0)
			return err_set(err, EINVAL, "--replicas %s: not a number from 1 to %u", arg,
				       CLI_MAX_REPLICAS);
		cfg->replicas[cfg->workers.n - 1] = (unsigned)v;
		return 0;
	case OPT_WORKER_TRANSPORT:
		if (strcmp(arg, "fast") == 0)
			cfg->worker_nng_only = false;
		else if (strcmp(arg, "nng") == 0)
			cfg->worker_nng_only = true;
		else
			return err_set(err, EINVAL, "--worker-transport %s: must be fast or nng",
				       arg);
		return 0;
	case OPT_HANDLER_TIMEOUT:
		if (parse_long(arg, 1, 3600000, &v) < 0)
			return err_set(
				err, EINVAL,
				"--handler-timeout %s: not a number of milliseconds (1..3600000)",
				arg);
		cfg->handler_timeout_ms = (unsigned long)v;
		return 0;
	case OPT_WORKER_READ:
		if (!*arg)
			return err_set(err, EINVAL, "--worker-read: empty path");
		return strvec_push(&cfg->worker_read, arg);
	case OPT_WORKER_START_TIMEOUT:
		if (parse_long(arg, 1, 3600000, &v) < 0)
			return err_set(err, EINVAL,
				       "--worker-start-timeout %s: not a number of milliseconds "
				       "(1..3600000)",
				       arg);
		cfg->worker_start_timeout_ms = (unsigned long)v;
		return 0;
	case OPT_WORKER_USER:
		if (!*arg)
			return err_set(err, EINVAL, "--worker-user: empty user name");
		cfg->worker_user = arg;
		return 0;
	case OPT_WORKER_UID_BASE:
		/* Room for a uid per --worker below (uid_t)-1, which means "none". */
		if (parse_long(arg, 1, 0xfffffffeL - CLI_MAX_WORKERS, &v) < 0)
			return err_set(err, EINVAL, "--worker-uid-base %s: not a uid (1..%lu)", arg,
				       0xfffffffeUL - CLI_MAX_WORKERS);
		cfg->worker_uid_base = (unsigned long)v;
		return 0;
	case OPT_AUDIT:
		if (!*arg)
			return err_set(err, EINVAL, "--audit: empty file name");
		cfg->audit_path = arg;
		return 0;
	case 'v':
		cfg->verbose++;
		return 0;
	}
	return -EINVAL;
}

int cli_parse_run(int argc, char **argv, struct config *cfg, struct sg_err *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->handler_timeout_ms = 5000;
	cfg->worker_start_timeout_ms = 10000;
	cfg->kill_after_ms = 5000;
	cfg->worker_uid_base = CLI_WORKER_UID_BASE;

	/* '+': stop at the first non-option so COMMAND's own options pass
	 * through; ':' lets us word the errors ourselves. */
	optind = 0; /* 0, not 1: glibc then also drops the rest of a cluster
		     * ("-hv") an earlier call stopped in */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "+:r:w:vh", long_options, NULL)) != -1) {
		int r;
		switch (c) {
		case 'h':
			return CLI_HELP;
		case OPT_VERSION:
			return CLI_VERSION;
		case ':':
			return err_set(err, EINVAL, "option %s needs an argument",
				       argv[optind - 1]);
		case '?':
			/* A short option's '?' means an unknown letter. optopt is 0
			 * for an unknown long option and the option's value for a
			 * known one given an argument (--help=x): name the word. */
			if (optopt && optopt < 256 && !strchr("rwvh", optopt))
				return err_set(err, EINVAL, "unknown option -%c", optopt);
			if (optopt)
				return err_set(err, EINVAL, "option %.*s takes no argument",
					       (int)strcspn(argv[optind - 1], "="),
					       argv[optind - 1]);
			return err_set(err, EINVAL, "unknown option %s", argv[optind - 1]);
		default:
			r = parse_option(c, optarg, cfg, err);
			if (r == -ENOMEM)
				return err_set(err, ENOMEM, "out of memory");
			if (r < 0)
				return r;
		}
	}
	if (optind >= argc)
		return err_set(
			err, EINVAL,
			"no command given (usage: sysgate run [OPTIONS] -- COMMAND [ARG...])");
	if (!*argv[optind])
		return err_set(err, EINVAL, "empty command name");
	/* Only confinement checks unix sockets: a grant without it would be
	 * silently meaningless. */
	if (cfg->allow_unix.n && !cfg->read_paths.n && !cfg->write_paths.n && !cfg->no_network)
		return err_set(err, EINVAL,
			       "--allow-unix needs -r, -w or --no-network (without them unix "
			       "sockets are not restricted)");
	cfg->command = &argv[optind];
	return CLI_RUN;
}
