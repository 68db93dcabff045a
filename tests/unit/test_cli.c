/* cli_parse_run(): every option of the usage text, and every error naming
 * the option at fault. */
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"

#define MAX_WORDS 12

/* 64 characters: the longest node name uname(2) can report. */
#define HOST64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A field of struct config, rendered as text so one row can name the field
 * and the value it expects. */
enum cli_field {
	FIELD_NONE, /* nothing to check beyond the result */
	FIELD_COMMAND,
	FIELD_READ,
	FIELD_WRITE,
	FIELD_NO_NETWORK,
	FIELD_ALLOW_UNIX,
	FIELD_DENY,
	FIELD_MAX_PROCS,
	FIELD_HOSTNAME,
	FIELD_TRAP,
	FIELD_TIMEOUT_MS,
	FIELD_NAME,
	FIELD_WORKERS,
	FIELD_HANDLER_TIMEOUT_MS,
	FIELD_WORKER_USER,
	FIELD_WORKER_UID_BASE,
	FIELD_AUDIT,
	FIELD_VERBOSE,
	FIELD_REPLICAS,  /* replicas of each --worker, '|'-joined */
	FIELD_TRANSPORT, /* "fast" or "nng" */
	FIELD_KILL_AFTER_MS,
	FIELD_USER,
	FIELD_KEEP_CAPS,
};

struct parse_case {
	const char *name;
	const char *argv[MAX_WORDS]; /* argv[0] is "run"; NULL-terminated */
	enum cli_result result;
	enum cli_field field;
	const char *want; /* the field rendered; lists joined by '|' */
};

struct error_case {
	const char *name;
	const char *argv[MAX_WORDS];
	const char *msg_contains; /* the option the message must name */
};

/* Options that parse. Unless the row checks the command itself, each ends in
 * "-- true" and the command must still be `true`. */
static struct parse_case parse_cases[] = {
	{ "minimal", { "run", "--", "/bin/true" }, CLI_RUN, FIELD_COMMAND, "/bin/true" },
	{ "command without --", { "run", "/bin/true" }, CLI_RUN, FIELD_COMMAND, "/bin/true" },
	{ "command options pass through", { "run", "cat", "-n" }, CLI_RUN, FIELD_COMMAND,
	  "cat|-n" },
	{ "options after the command are the command's", { "run", "-v", "cat", "-v", "--help" },
	  CLI_RUN, FIELD_COMMAND, "cat|-v|--help" },
	{ "-- ends the options", { "run", "--", "-v" }, CLI_RUN, FIELD_COMMAND, "-v" },

	{ "-r", { "run", "-r", "/usr", "--", "true" }, CLI_RUN, FIELD_READ, "/usr" },
	{ "--read repeatable",
	  { "run", "--read", "/usr", "-r", "/lib", "--read=/etc", "--", "true" },
	  CLI_RUN, FIELD_READ, "/usr|/lib|/etc" },
	{ "-w", { "run", "-w", "/tmp", "--", "true" }, CLI_RUN, FIELD_WRITE, "/tmp" },
	{ "--write repeatable", { "run", "--write", "/tmp", "-w", "/var/tmp", "--", "true" },
	  CLI_RUN, FIELD_WRITE, "/tmp|/var/tmp" },
	{ "--no-network", { "run", "--no-network", "--", "true" }, CLI_RUN, FIELD_NO_NETWORK,
	  "true" },
	{ "--allow-unix repeatable",
	  { "run", "-r", "/", "--allow-unix", "/run/a.sock", "--allow-unix=/b", "--", "true" },
	  CLI_RUN,
	  FIELD_ALLOW_UNIX, "/run/a.sock|/b" },
	{ "--deny-syscall name", { "run", "--deny-syscall", "ptrace", "--", "true" }, CLI_RUN,
	  FIELD_DENY, "ptrace" },
	{ "--deny-syscall number", { "run", "--deny-syscall", "39", "--", "true" }, CLI_RUN,
	  FIELD_DENY, "39" },
	{ "--deny-syscall repeatable",
	  { "run", "--deny-syscall", "ptrace", "--deny-syscall=bpf", "--", "true" }, CLI_RUN,
	  FIELD_DENY, "ptrace|bpf" },
	{ "--max-procs 1", { "run", "--max-procs", "1", "--", "true" }, CLI_RUN,
	  FIELD_MAX_PROCS, "1" },
	{ "--max-procs 64", { "run", "--max-procs", "64", "--", "true" }, CLI_RUN,
	  FIELD_MAX_PROCS, "64" },
	{ "--hostname", { "run", "--hostname", "box", "--", "true" }, CLI_RUN, FIELD_HOSTNAME,
	  "box" },
	{ "--hostname 64 chars", { "run", "--hostname", HOST64, "--", "true" }, CLI_RUN,
	  FIELD_HOSTNAME, HOST64 },
	{ "--trap", { "run", "--trap", "openat", "--", "true" }, CLI_RUN, FIELD_TRAP, "openat" },
	{ "--trap repeatable", { "run", "--trap", "openat", "--trap", "getpid", "--", "true" },
	  CLI_RUN, FIELD_TRAP, "openat|getpid" },
	{ "--timeout 0.5", { "run", "--timeout", "0.5", "--", "true" }, CLI_RUN,
	  FIELD_TIMEOUT_MS, "500" },
	{ "--timeout 2", { "run", "--timeout", "2", "--", "true" }, CLI_RUN, FIELD_TIMEOUT_MS,
	  "2000" },
	{ "--timeout=1.25", { "run", "--timeout=1.25", "--", "true" }, CLI_RUN,
	  FIELD_TIMEOUT_MS, "1250" },
	{ "--kill-after default", { "run", "--", "true" }, CLI_RUN, FIELD_KILL_AFTER_MS, "5000" },
	{ "--kill-after 0.25", { "run", "--kill-after", "0.25", "--", "true" }, CLI_RUN,
	  FIELD_KILL_AFTER_MS, "250" },
	{ "--kill-after 0", { "run", "--kill-after", "0", "--", "true" }, CLI_RUN,
	  FIELD_KILL_AFTER_MS, "0" },
	{ "--user", { "run", "--user", "nobody", "--", "true" }, CLI_RUN, FIELD_USER, "nobody" },
	{ "--keep-caps", { "run", "--keep-caps", "--", "true" }, CLI_RUN, FIELD_KEEP_CAPS, "1" },
	{ "caps dropped by default", { "run", "--", "true" }, CLI_RUN, FIELD_KEEP_CAPS, "0" },
	{ "--name", { "run", "--name", "job1", "--", "true" }, CLI_RUN, FIELD_NAME, "job1" },
	{ "--worker repeatable, in order",
	  { "run", "--worker", "w1 --flag", "--worker", "w2", "--", "true" }, CLI_RUN,
	  FIELD_WORKERS, "w1 --flag|w2" },
	{ "--replicas apply to the --worker before",
	  { "run", "--worker", "w1", "--replicas", "3", "--worker", "w2", "--", "true" }, CLI_RUN,
	  FIELD_REPLICAS, "3|1" },
	{ "--replicas 8, last one wins",
	  { "run", "--worker", "w1", "--replicas", "2", "--replicas=8", "--", "true" }, CLI_RUN,
	  FIELD_REPLICAS, "8" },
	{ "transport defaults to fast", { "run", "--worker", "w1", "--", "true" }, CLI_RUN,
	  FIELD_TRANSPORT, "fast" },
	{ "--worker-transport nng", { "run", "--worker-transport", "nng", "--", "true" }, CLI_RUN,
	  FIELD_TRANSPORT, "nng" },
	{ "--worker-transport fast", { "run", "--worker-transport=nng", "--worker-transport",
				       "fast", "--", "true" },
	  CLI_RUN, FIELD_TRANSPORT, "fast" },
	{ "--handler-timeout", { "run", "--handler-timeout", "250", "--", "true" }, CLI_RUN,
	  FIELD_HANDLER_TIMEOUT_MS, "250" },
	{ "--worker-user", { "run", "--worker-user", "daemon", "--", "true" }, CLI_RUN,
	  FIELD_WORKER_USER, "daemon" },
	{ "--worker-uid-base", { "run", "--worker-uid-base", "300000", "--", "true" }, CLI_RUN,
	  FIELD_WORKER_UID_BASE, "300000" },
	{ "--audit FILE", { "run", "--audit", "/tmp/audit.jsonl", "--", "true" }, CLI_RUN,
	  FIELD_AUDIT, "/tmp/audit.jsonl" },
	{ "--audit -", { "run", "--audit", "-", "--", "true" }, CLI_RUN, FIELD_AUDIT, "-" },
	{ "-v", { "run", "-v", "--", "true" }, CLI_RUN, FIELD_VERBOSE, "1" },
	{ "-vv", { "run", "-vv", "--", "true" }, CLI_RUN, FIELD_VERBOSE, "2" },
	{ "-v counted", { "run", "-v", "--verbose", "-v", "--", "true" }, CLI_RUN,
	  FIELD_VERBOSE, "3" },

	{ "-h", { "run", "-h" }, CLI_HELP, FIELD_NONE, NULL },
	{ "--help", { "run", "--help" }, CLI_HELP, FIELD_NONE, NULL },
	{ "--help wins over a later error", { "run", "-v", "--help", "--bogus" }, CLI_HELP,
	  FIELD_NONE, NULL },
	{ "--version", { "run", "--version" }, CLI_VERSION, FIELD_NONE, NULL },
};

static struct error_case error_cases[] = {
	{ "--replicas before any --worker", { "run", "--replicas", "2", "--", "true" },
	  "--replicas 2" },
	{ "--replicas 0", { "run", "--worker", "w", "--replicas", "0", "--", "true" },
	  "--replicas 0" },
	{ "--replicas 9", { "run", "--worker", "w", "--replicas", "9", "--", "true" },
	  "--replicas 9" },
	{ "--replicas x", { "run", "--worker", "w", "--replicas", "x", "--", "true" },
	  "--replicas x" },
	{ "--worker-transport tcp", { "run", "--worker-transport", "tcp", "--", "true" },
	  "--worker-transport tcp" },
	{ "unknown long option", { "run", "--bogus", "--", "true" }, "--bogus" },
	{ "unknown short option", { "run", "-x", "--", "true" }, "-x" },
	{ "unknown short option in a cluster", { "run", "-vx", "--", "true" }, "-x" },
	/* getopt reports these with optopt set to the option's value. */
	{ "--no-network given an argument", { "run", "--no-network=yes", "--", "true" },
	  "--no-network" },
	{ "--help given an argument", { "run", "--help=x", "--", "true" }, "--help" },
	{ "missing argument", { "run", "--timeout" }, "--timeout" },
	{ "missing argument, short", { "run", "-r" }, "-r" },
	{ "no command", { "run" }, "command" },
	{ "no command after options", { "run", "-v", "--no-network" }, "command" },
	{ "no command after --", { "run", "--" }, "command" },
	{ "empty command", { "run", "--", "" }, "command" },

	{ "--read empty", { "run", "--read", "", "--", "true" }, "--read" },
	{ "--allow-unix empty", { "run", "--allow-unix", "", "--", "true" }, "--allow-unix" },
	{ "--allow-unix unconfined", { "run", "--allow-unix", "/run/a.sock", "--", "true" },
	  "--allow-unix needs" },
	{ "-w empty", { "run", "-w", "", "--", "true" }, "--write" },
	{ "--deny-syscall nosuch", { "run", "--deny-syscall", "nosuch", "--", "true" },
	  "--deny-syscall" },
	{ "--deny-syscall -1", { "run", "--deny-syscall", "-1", "--", "true" },
	  "--deny-syscall" },
	{ "--deny-syscall 999", { "run", "--deny-syscall", "999", "--", "true" },
	  "--deny-syscall" },
	{ "--max-procs 0", { "run", "--max-procs", "0", "--", "true" }, "--max-procs" },
	{ "--max-procs -1", { "run", "--max-procs", "-1", "--", "true" }, "--max-procs" },
	{ "--max-procs abc", { "run", "--max-procs", "abc", "--", "true" }, "--max-procs" },
	{ "--max-procs 1x", { "run", "--max-procs", "1x", "--", "true" }, "--max-procs" },
	{ "--max-procs empty", { "run", "--max-procs", "", "--", "true" }, "--max-procs" },
	{ "--hostname 65 chars", { "run", "--hostname", HOST64 "x", "--", "true" },
	  "--hostname" },
	{ "--hostname empty", { "run", "--hostname", "", "--", "true" }, "--hostname" },
	{ "--trap nosuch", { "run", "--trap", "nosuch", "--", "true" }, "--trap" },
	{ "--timeout 0", { "run", "--timeout", "0", "--", "true" }, "--timeout" },
	{ "--timeout -1", { "run", "--timeout", "-1", "--", "true" }, "--timeout" },
	{ "--timeout abc", { "run", "--timeout", "abc", "--", "true" }, "--timeout" },
	{ "--timeout inf", { "run", "--timeout", "inf", "--", "true" }, "--timeout" },
	{ "--timeout nan", { "run", "--timeout", "nan", "--", "true" }, "--timeout" },
	{ "--timeout 2s", { "run", "--timeout", "2s", "--", "true" }, "--timeout" },
	{ "--kill-after -1", { "run", "--kill-after", "-1", "--", "true" }, "--kill-after" },
	{ "--kill-after x", { "run", "--kill-after", "x", "--", "true" }, "--kill-after" },
	{ "--kill-after inf", { "run", "--kill-after", "inf", "--", "true" }, "--kill-after" },
	{ "--user empty", { "run", "--user", "", "--", "true" }, "--user" },
	{ "--keep-caps=1", { "run", "--keep-caps=1", "--", "true" }, "--keep-caps" },
	{ "--name empty", { "run", "--name", "", "--", "true" }, "--name" },
	{ "--worker empty", { "run", "--worker", "", "--", "true" }, "--worker" },
	{ "--handler-timeout 0", { "run", "--handler-timeout", "0", "--", "true" },
	  "--handler-timeout" },
	{ "--handler-timeout abc", { "run", "--handler-timeout", "abc", "--", "true" },
	  "--handler-timeout" },
	{ "--worker-user empty", { "run", "--worker-user", "", "--", "true" },
	  "--worker-user" },
	{ "--worker-uid-base 0", { "run", "--worker-uid-base", "0", "--", "true" },
	  "--worker-uid-base" },
	{ "--worker-uid-base past the top",
	  { "run", "--worker-uid-base", "4294967290", "--", "true" },
	  "--worker-uid-base" },
	{ "--audit empty", { "run", "--audit", "", "--", "true" }, "--audit" },
};

/* A writable, NULL-terminated copy of a row's words, as main() would pass
 * (strv_free frees it). */
static char **argv_dup(const char *const *words, int *argc)
{
	int n = 0;
	while (n < MAX_WORDS && words[n])
		n++;
	char **argv = calloc((size_t)n + 1, sizeof(*argv));
	assert_non_null(argv);
	for (int i = 0; i < n; i++) {
		argv[i] = strdup(words[i]);
		assert_non_null(argv[i]);
	}
	*argc = n;
	return argv;
}

static void join(char *buf, size_t cap, const char *const *v, size_t n)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && len < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "|" : "", v[i]);
}

static void render(const struct config *cfg, enum cli_field field, char *buf, size_t cap)
{
	size_t n = 0;
	switch (field) {
	case FIELD_NONE:
		snprintf(buf, cap, "%s", "");
		return;
	case FIELD_COMMAND:
		while (cfg->command && cfg->command[n])
			n++;
		join(buf, cap, (const char *const *)cfg->command, n);
		return;
	case FIELD_READ:
		join(buf, cap, cfg->read_paths.v, cfg->read_paths.n);
		return;
	case FIELD_WRITE:
		join(buf, cap, cfg->write_paths.v, cfg->write_paths.n);
		return;
	case FIELD_NO_NETWORK:
		snprintf(buf, cap, "%s", cfg->no_network ? "true" : "false");
		return;
	case FIELD_ALLOW_UNIX:
		join(buf, cap, cfg->allow_unix.v, cfg->allow_unix.n);
		return;
	case FIELD_DENY:
		join(buf, cap, cfg->deny_syscalls.v, cfg->deny_syscalls.n);
		return;
	case FIELD_MAX_PROCS:
		snprintf(buf, cap, "%ld", cfg->max_procs);
		return;
	case FIELD_HOSTNAME:
		snprintf(buf, cap, "%s", cfg->hostname ? cfg->hostname : "(null)");
		return;
	case FIELD_TRAP:
		join(buf, cap, cfg->trap_syscalls.v, cfg->trap_syscalls.n);
		return;
	case FIELD_TIMEOUT_MS:
		snprintf(buf, cap, "%lu", cfg->timeout_ms);
		return;
	case FIELD_KILL_AFTER_MS:
		snprintf(buf, cap, "%lu", cfg->kill_after_ms);
		return;
	case FIELD_USER:
		snprintf(buf, cap, "%s", cfg->user ? cfg->user : "(null)");
		return;
	case FIELD_KEEP_CAPS:
		snprintf(buf, cap, "%d", cfg->keep_caps);
		return;
	case FIELD_NAME:
		snprintf(buf, cap, "%s", cfg->name ? cfg->name : "(null)");
		return;
	case FIELD_WORKERS:
		join(buf, cap, cfg->workers.v, cfg->workers.n);
		return;
	case FIELD_HANDLER_TIMEOUT_MS:
		snprintf(buf, cap, "%lu", cfg->handler_timeout_ms);
		return;
	case FIELD_WORKER_USER:
		snprintf(buf, cap, "%s", cfg->worker_user ? cfg->worker_user : "(null)");
		return;
	case FIELD_WORKER_UID_BASE:
		snprintf(buf, cap, "%lu", cfg->worker_uid_base);
		return;
	case FIELD_AUDIT:
		snprintf(buf, cap, "%s", cfg->audit_path ? cfg->audit_path : "(null)");
		return;
	case FIELD_VERBOSE:
		snprintf(buf, cap, "%d", cfg->verbose);
		return;
	case FIELD_REPLICAS: {
		size_t k = 0;
		buf[0] = '\0';
		for (size_t i = 0; i < cfg->workers.n && k < cap; i++)
			k += (size_t)snprintf(buf + k, cap - k, "%s%u", i ? "|" : "",
					      cfg->replicas[i]);
		return;
	}
	case FIELD_TRANSPORT:
		snprintf(buf, cap, "%s", cfg->worker_nng_only ? "nng" : "fast");
		return;
	}
	fail_msg("unknown field %d", (int)field);
}

static void test_parse(void **state)
{
	const struct parse_case *c = *state;
	int argc;
	char **argv = argv_dup(c->argv, &argc);
	struct config cfg;
	struct sg_err err = { "" };

	int r = cli_parse_run(argc, argv, &cfg, &err);
	if (r < 0)
		fail_msg("%s: %s", c->name, err.msg);
	assert_int_equal(r, c->result);
	char got[512];
	render(&cfg, c->field, got, sizeof(got));
	assert_string_equal(got, c->want ? c->want : "");
	if (c->result == CLI_RUN && c->field != FIELD_COMMAND) {
		render(&cfg, FIELD_COMMAND, got, sizeof(got));
		assert_string_equal(got, "true");
	}

	cli_config_free(&cfg);
	strv_free(argv);
}

static void test_error(void **state)
{
	const struct error_case *c = *state;
	int argc;
	char **argv = argv_dup(c->argv, &argc);
	struct config cfg;
	struct sg_err err = { "" };

	int r = cli_parse_run(argc, argv, &cfg, &err);
	assert_true(r < 0);
	if (!strstr(err.msg, c->msg_contains))
		fail_msg("message \"%s\" does not name \"%s\"", err.msg, c->msg_contains);

	cli_config_free(&cfg);
	strv_free(argv);
}

/* The minimal command line leaves every option at its default and borrows
 * the command from argv. */
static void test_defaults(void **state)
{
	(void)state;
	const char *const words[] = { "run", "--", "/bin/true", NULL };
	int argc;
	char **argv = argv_dup(words, &argc);
	struct config cfg;
	struct sg_err err = { "" };

	assert_int_equal(cli_parse_run(argc, argv, &cfg, &err), CLI_RUN);
	assert_ptr_equal(cfg.command, &argv[2]);
	assert_string_equal(cfg.command[0], "/bin/true");
	assert_null(cfg.command[1]);
	assert_int_equal(cfg.read_paths.n, 0);
	assert_int_equal(cfg.write_paths.n, 0);
	assert_false(cfg.no_network);
	assert_int_equal(cfg.deny_syscalls.n, 0);
	assert_int_equal(cfg.max_procs, 0);
	assert_null(cfg.hostname);
	assert_int_equal(cfg.trap_syscalls.n, 0);
	assert_int_equal(cfg.timeout_ms, 0);
	assert_null(cfg.name);
	assert_int_equal(cfg.workers.n, 0);
	assert_int_equal(cfg.handler_timeout_ms, 5000);
	assert_null(cfg.worker_user); /* as root: each worker's own uid */
	assert_int_equal(cfg.worker_uid_base, 0x7f5e0000UL);
	assert_null(cfg.audit_path);
	assert_int_equal(cfg.verbose, 0);

	cli_config_free(&cfg);
	strv_free(argv);
}

/* A parse that stops inside a cluster ("-hv" returns at 'h') must not leak
 * getopt's position into the next parse. */
static void test_getopt_state_reset(void **state)
{
	(void)state;
	const char *const first_words[] = { "run", "-hv", "--", "true", NULL };
	const char *const second_words[] = { "run", "-r", "/x", "--", "true", NULL };
	int first_argc, second_argc;
	/* Both alive to the end, as main's argv is: a stale pointer into the
	 * first must not read freed memory but be caught by the assertions. */
	char **first = argv_dup(first_words, &first_argc);
	char **second = argv_dup(second_words, &second_argc);
	struct config cfg;
	struct sg_err err = { "" };

	assert_int_equal(cli_parse_run(first_argc, first, &cfg, &err), CLI_HELP);
	cli_config_free(&cfg);

	int r = cli_parse_run(second_argc, second, &cfg, &err);
	if (r < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(r, CLI_RUN);
	assert_int_equal(cfg.verbose, 0);
	assert_int_equal(cfg.read_paths.n, 1);
	assert_string_equal(cfg.read_paths.v[0], "/x");
	assert_string_equal(cfg.command[0], "true");
	cli_config_free(&cfg);
	strv_free(second);
	strv_free(first);
}

static void test_config_free_clears(void **state)
{
	(void)state;
	const char *const words[] = { "run", "-r", "/a", "-w", "/b", "--trap", "openat", "--",
				      "true", NULL };
	int argc;
	char **argv = argv_dup(words, &argc);
	struct config cfg;
	struct sg_err err = { "" };

	assert_int_equal(cli_parse_run(argc, argv, &cfg, &err), CLI_RUN);
	cli_config_free(&cfg);
	assert_null(cfg.read_paths.v);
	assert_int_equal(cfg.read_paths.n, 0);
	assert_null(cfg.write_paths.v);
	assert_null(cfg.trap_syscalls.v);
	assert_null(cfg.command);
	strv_free(argv);
}

static const struct CMUnitTest fixed_tests[] = {
	cmocka_unit_test(test_defaults),
	cmocka_unit_test(test_getopt_state_reset),
	cmocka_unit_test(test_config_free_clears),
};

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(fixed_tests) + ARRAY_SIZE(parse_cases) +
				ARRAY_SIZE(error_cases)];
	size_t n = 0;
	UNIT_TESTS(tests, n, fixed_tests);
	UNIT_ROWS(tests, n, test_parse, parse_cases);
	UNIT_ROWS(tests, n, test_error, error_cases);
	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
