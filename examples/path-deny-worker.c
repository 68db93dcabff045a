/* sysgate-path-deny-worker PATTERN...: fails with EPERM the path syscalls
 * whose path, as the sandboxed program passed it, matches a fnmatch(3)
 * pattern. An example of a handler, not a security boundary: relative paths,
 * symlinks, /proc/self/fd, ".." and syscalls that are not pre-read all name
 * the same file another way. */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include <sysgate.h>

#define PROG "sysgate-path-deny-worker"

struct deny_target {
	const char *name;
	unsigned path_arg; /* the argument holding the path */
};

static const struct deny_target deny_targets[] = {
	{ "openat", 1 }, { "open", 0 },      { "creat", 0 },      { "openat2", 1 },
	{ "execve", 0 }, { "unlinkat", 1 },  { "mkdirat", 1 },    { "newfstatat", 1 },
	{ "statx", 1 },  { "faccessat", 1 }, { "faccessat2", 1 },
};

#define DENY_TARGETS (sizeof(deny_targets) / sizeof(deny_targets[0]))

struct deny_patterns {
	char **patterns;
	int count;
};

/* A registration's user data: what it watches and what it denies. */
struct deny_binding {
	const struct deny_target *target;
	const struct deny_patterns *patterns;
};

static int deny_handle(const sg_ctx *ctx, sg_action *out, void *ud)
{
	const struct deny_binding *b = ud;
	const char *path = sg_ctx_path(ctx, b->target->path_arg);
	if (path) {
		for (int i = 0; i < b->patterns->count; i++) {
			if (fnmatch(b->patterns->patterns[i], path, 0) == 0) {
				sg_errno(out, EPERM);
				return 0;
			}
		}
	}
	sg_continue(out);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: " PROG " PATTERN... (at least one fnmatch pattern)\n");
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		printf("Usage: " PROG " PATTERN...\n"
		       "Fails with EPERM the opens, execs, stats, access checks, mkdirs and unlinks\n"
		       "of the sandboxed program whose path matches a fnmatch(3) PATTERN (no flags:\n"
		       "'*' also matches '/'). Run it with sysgate run --worker.\n");
		return 0;
	}
	struct deny_patterns patterns = { argv + 1, argc - 1 };
	struct deny_binding bindings[DENY_TARGETS];

	sg_worker *w = sg_worker_new("path-deny");
	if (!w) {
		fprintf(stderr, PROG ": cannot create the worker: out of memory\n");
		return 1;
	}
	int r = 0;
	for (size_t i = 0; i < DENY_TARGETS && r == 0; i++) {
		const struct deny_target *t = &deny_targets[i];
		if (sg_syscall_nr(t->name) < 0)
			continue; /* not on this architecture */
		bindings[i] = (struct deny_binding){ t, &patterns };
		r = sg_worker_on(w, t->name, deny_handle, &bindings[i], SG_EXC_DENY_EPERM);
		if (r < 0)
			fprintf(stderr, PROG ": cannot register %s: %s\n", t->name, strerror(-r));
	}
	if (r == 0)
		r = sg_worker_run(w); /* prints its own cause on failure */
	sg_worker_free(w);
	return r == 0 ? 0 : 1;
}
