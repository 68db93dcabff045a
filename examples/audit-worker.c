/* sysgate-audit-worker: prints a line for every file open and execve of the
 * sandboxed program, and lets each run (fail-open). Its stdout goes to
 * sysgate's standard error. */
#include <stdio.h>
#include <string.h>

#include <sysgate.h>

#include "audit-handler.h"

#define PROG "sysgate-audit-worker"

int main(int argc, char **argv)
{
	(void)argv;
	setvbuf(stdout, NULL, _IOLBF, 0); /* a pipe: one write per line */
	if (argc > 1) {
		fprintf(stderr, "usage: " PROG " (takes no arguments)\n");
		return 2;
	}

	sg_worker *w = sg_worker_new("audit");
	if (!w) {
		fprintf(stderr, PROG ": cannot create the worker: out of memory\n");
		return 1;
	}
	int r = audit_handler_register(w);
	if (r == 0)
		r = sg_worker_run(w); /* prints its own cause on failure */
	sg_worker_free(w);
	return r == 0 ? 0 : 1;
}
