#include "audit-handler.h"

#include <stdio.h>
#include <string.h>

struct audit_syscall {
	const char *name;
	unsigned path_arg; /* the argument holding the path */
};

static const struct audit_syscall audit_syscalls[] = {
	{ "openat", 1 }, { "open", 0 }, { "creat", 0 }, { "openat2", 1 }, { "execve", 0 },
};

/* Writes path so that the child cannot forge or split audit lines. */
static void audit_put_path(FILE *out, const char *path)
{
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			fprintf(out, "\\x%02x", *p);
		else
			putc(*p, out);
	}
}

/* Never fails: a lost line must not fail the child's syscall. */
static int audit_handle(const sg_ctx *ctx, sg_action *out, void *ud)
{
	const struct audit_syscall *sc = ud;
	const char *path = sg_ctx_path(ctx, sc->path_arg);

	flockfile(stdout); /* one line, even if handlers ever run concurrently */
	printf("audit: %ld %s ", (long)sg_ctx_pid(ctx), sc->name);
	if (path)
		audit_put_path(stdout, path);
	else
		putc('?', stdout);
	putc('\n', stdout);
	funlockfile(stdout);

	sg_continue(out);
	return 0;
}

int audit_handler_register(sg_worker *w)
{
	for (size_t i = 0; i < sizeof(audit_syscalls) / sizeof(audit_syscalls[0]); i++) {
		const struct audit_syscall *sc = &audit_syscalls[i];
		if (sg_syscall_nr(sc->name) < 0)
			continue; /* not on this architecture */
		/* ud is only read back as const; the SDK's ud is plain void *. */
		int r = sg_worker_on(w, sc->name, audit_handle, (void *)(uintptr_t)sc,
				     SG_EXC_CONTINUE);
		if (r < 0) {
			fprintf(stderr, "audit: cannot register %s: %s\n", sc->name, strerror(-r));
			return r;
		}
	}
	return 0;
}
