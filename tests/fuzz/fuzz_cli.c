/* The command line of `sysgate run` (supervisor/cli.c cli_parse_run) and
 * the splitting of each --worker command into the worker's argv
 * (supervisor/worker.c split_blanks, run by worker_init before anything is
 * spawned). A command line is not hostile input in the threat model, but
 * it is what wrappers and scripts build from other people's strings.
 *
 * split_blanks is static, so this file includes worker.c itself: the
 * target then defines worker.c's functions, and the linker takes none of
 * them from the supervisor's library.
 *
 * Input: the arguments after "run", separated by NUL bytes
 * (corpus/cli/). */
#include "fuzz.h"

#include "../../supervisor/worker.c"

#include "cli.h"

#define MAX_ARGS 64

/* spec split on blanks: each word non-empty and blank-free, and the words
 * are spec without its blanks. */
static void check_split(const char *spec)
{
	char **argv = NULL;
	int n = split_blanks(spec, &argv);
	FUZZ_CHECK(n >= 0 && argv != NULL && argv[n] == NULL);
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		FUZZ_CHECK(argv[i][0] != '\0' && !strpbrk(argv[i], " \t"));
		for (const char *c = argv[i]; *c; c++) {
			while (spec[k] == ' ' || spec[k] == '\t')
				k++;
			FUZZ_CHECK(spec[k++] == *c);
		}
	}
	while (spec[k] == ' ' || spec[k] == '\t')
		k++;
	FUZZ_CHECK(spec[k] == '\0');
	strv_free(argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A NUL-terminated copy to cut into arguments. */
	char *text = malloc(size + 1);
	FUZZ_CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	char *argv[MAX_ARGS + 2] = { (char *)(uintptr_t) "run" };
	int argc = 1;
	for (char *p = text; p <= text + size && argc <= MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;

	struct config cfg;
	struct sg_err err = { "" };
	int r = cli_parse_run(argc, argv, &cfg, &err);
	if (r < 0) {
		FUZZ_CHECK(err.msg[0] != '\0');
	} else if (r == CLI_RUN) {
		FUZZ_CHECK(cfg.command && cfg.command[0] && cfg.command[0][0]);
		FUZZ_CHECK(cfg.workers.n <= CLI_MAX_WORKERS);
		for (size_t i = 0; i < cfg.workers.n; i++) {
			FUZZ_CHECK(cfg.replicas[i] >= 1 && cfg.replicas[i] <= CLI_MAX_REPLICAS);
			check_split(cfg.workers.v[i]);
		}
		FUZZ_CHECK(!cfg.hostname || (cfg.hostname[0] && strlen(cfg.hostname) <= 64));
		FUZZ_CHECK(cfg.handler_timeout_ms >= 1 && cfg.worker_start_timeout_ms >= 1);
	} else {
		FUZZ_CHECK(r == CLI_HELP || r == CLI_VERSION);
	}
	cli_config_free(&cfg);
	/* Any bytes as one --worker command, too. */
	check_split(text);
	free(text);
	return 0;
}
