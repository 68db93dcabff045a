/* Command line of `sysgate run` (docs/cli.md). Parsing is side-effect free so it
 * can be unit tested. */
#ifndef SYSGATE_CLI_H
#define SYSGATE_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct strvec {
	const char **v;
	size_t n;
};

#define CLI_MAX_WORKERS 16u /* --worker options */
/* As root, the k-th --worker runs as uid and gid base + k: a range no
 * distribution or systemd allocates (0x7f5e0000..+15); refused if
 * /etc/passwd or /etc/group maps one of them. */
#define CLI_WORKER_UID_BASE 0x7f5e0000UL
#define CLI_MAX_REPLICAS 8u /* --replicas N */

struct config {
	struct strvec read_paths;
	struct strvec write_paths;
	bool no_network;
	struct strvec allow_unix; /* --allow-unix */
	struct strvec deny_syscalls;
	long max_procs; /* 0: no limit */
	const char *hostname;
	struct strvec trap_syscalls;
	unsigned long timeout_ms;    /* 0: none */
	unsigned long kill_after_ms; /* grace after the command is asked to end */
	bool keep_caps;              /* as root: leave the command its capabilities */
	const char *user;            /* run the command as this user (root only) */
	const char *name;
	struct strvec workers;
	unsigned replicas[CLI_MAX_WORKERS]; /* --replicas of each --worker (1) */
	bool worker_nng_only;               /* --worker-transport nng */
	struct strvec worker_read;          /* --worker-read */
	unsigned long handler_timeout_ms;
	unsigned long worker_start_timeout_ms;
	const char *worker_user;       /* --worker-user, or NULL */
	unsigned long worker_uid_base; /* without it, as root */
	const char *audit_path;
	int verbose;
	char **command; /* NULL-terminated, borrowed from argv */
};

enum cli_result {
	CLI_RUN = 0,
	CLI_HELP = 1,
	CLI_VERSION = 2,
};

/* Parses `run` arguments (argv[0] is "run"). Returns an enum cli_result or
 * -errno with a message naming the option. */
int cli_parse_run(int argc, char **argv, struct config *cfg, struct sg_err *err);
void cli_config_free(struct config *cfg);

/* Usage text of `sysgate run`. */
extern const char cli_run_usage[];

#endif
