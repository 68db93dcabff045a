/* sysgate-getpid-faker [VALUE]: getpid() in the sandboxed program returns
 * VALUE (default 4242) without running. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sysgate.h>

#define PROG "sysgate-getpid-faker"
#define DEFAULT_PID 4242

static int getpid_handle(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx;
	sg_return(out, *(const int64_t *)ud);
	return 0;
}

/* A decimal pid-like value, 0..INT_MAX; -EINVAL otherwise. */
static int parse_value(const char *s, int64_t *value)
{
	if (*s < '0' || *s > '9') /* no sign, no blanks */
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v > INT_MAX)
		return -EINVAL;
	*value = v;
	return 0;
}

int main(int argc, char **argv)
{
	int64_t value = DEFAULT_PID;
	if (argc > 2) {
		fprintf(stderr, "usage: " PROG " [VALUE]\n");
		return 2;
	}
	if (argc == 2 && parse_value(argv[1], &value) < 0) {
		fprintf(stderr, PROG ": VALUE \"%s\" is not a number from 0 to %d\n", argv[1],
			INT_MAX);
		return 2;
	}

	sg_worker *w = sg_worker_new("getpid-faker");
	if (!w) {
		fprintf(stderr, PROG ": cannot create the worker: out of memory\n");
		return 1;
	}
	int r = sg_worker_on(w, "getpid", getpid_handle, &value, SG_EXC_KILL);
	if (r < 0)
		fprintf(stderr, PROG ": cannot register getpid: %s\n", strerror(-r));
	else
		r = sg_worker_run(w); /* prints its own cause on failure */
	sg_worker_free(w);
	return r == 0 ? 0 : 1;
}
