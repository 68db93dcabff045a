/* sysgate: run a program under seccomp user notification. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "cli.h"
#include "exit_status.h"
#include "log.h"
#include "sandbox.h"

#ifndef SYSGATE_VERSION
#define SYSGATE_VERSION "0.0.0"
#endif

static const char top_usage[] =
	"Usage: sysgate run [OPTIONS] -- COMMAND [ARG...]\n"
	"       sysgate --help | --version\n"
	"\n"
	"Run COMMAND under seccomp user notification, with builtin handlers, handler\n"
	"workers and an audit log. 'sysgate run --help' lists the options.\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(top_usage, stderr);
		return EXIT_OWN_ERROR;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(top_usage, stdout);
		fputs("\n", stdout);
		fputs(cli_run_usage, stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("sysgate %s\n", SYSGATE_VERSION);
		return 0;
	}
	if (strcmp(cmd, "run") != 0) {
		log_error("unknown command '%s' (try 'sysgate --help')", cmd);
		return EXIT_OWN_ERROR;
	}

	struct config cfg;
	struct sg_err err = { { 0 } };
	int r = cli_parse_run(argc - 1, argv + 1, &cfg, &err);
	int status;
	if (r < 0) {
		log_error("%s", err.msg);
		status = EXIT_OWN_ERROR;
	} else if (r == CLI_HELP) {
		fputs(cli_run_usage, stdout);
		status = 0;
	} else if (r == CLI_VERSION) {
		printf("sysgate %s\n", SYSGATE_VERSION);
		status = 0;
	} else {
		log_verbosity = cfg.verbose;
		/* The command runs as our uid: it must not be able to open our
		 * memory or take our fds (the listener) through /proc. */
		if (prctl(PR_SET_DUMPABLE, 0) < 0)
			log_error("warning: cannot make sysgate non-dumpable (%s; under another "
				  "sysgate?): processes of its uid outside this sandbox can read "
				  "its memory",
				  strerror(errno));
		status = sandbox_run(&cfg);
		/* What the supervisor itself held at most (bench/rss-flood.sh). */
		struct rusage ru;
		if (getrusage(RUSAGE_SELF, &ru) == 0)
			log_verbose("peak resident memory: %ld KiB", ru.ru_maxrss);
	}
	cli_config_free(&cfg);
	return status;
}
