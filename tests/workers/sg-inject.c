/* sg-inject: a test worker (C SDK) serving a virtual file. An openat of
 * PATH gets a new fd holding CONTENT (inject_bytes); every other open runs
 * as usual.
 *
 *   sg-inject [--writable] [--no-cloexec] PATH CONTENT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sysgate.h>

#define PROG "sg-inject"

struct virtual_file {
	const char *path;
	const char *content;
	unsigned flags;
};

static int on_openat(const sg_ctx *ctx, sg_action *out, void *ud)
{
	const struct virtual_file *vf = ud;
	const char *path = sg_ctx_path(ctx, 1);
	if (!path || strcmp(path, vf->path) != 0) {
		sg_continue(out);
		return 0;
	}
	int r = sg_inject_bytes(out, vf->content, strlen(vf->content), vf->flags);
	if (r < 0)
		fprintf(stderr, PROG ": inject: %s\n", strerror(-r));
	return r < 0;
}

int main(int argc, char **argv)
{
	struct virtual_file vf = { 0 };
	int i = 1;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--writable"))
			vf.flags |= SG_INJECT_WRITABLE;
		else if (!strcmp(argv[i], "--no-cloexec"))
			vf.flags |= SG_INJECT_NO_CLOEXEC;
		else
			break;
	}
	if (argc - i != 2) {
		fprintf(stderr, "usage: " PROG " [--writable] [--no-cloexec] PATH CONTENT\n");
		return 2;
	}
	vf.path = argv[i];
	vf.content = argv[i + 1];
	sg_worker *w = sg_worker_new(PROG);
	if (!w)
		return 1;
	int r = sg_worker_on(w, "openat", on_openat, &vf, SG_EXC_DENY_EIO);
	if (r == 0)
		r = sg_worker_run(w);
	else
		fprintf(stderr, PROG ": openat: %s\n", strerror(-r));
	sg_worker_free(w);
	return r == 0 ? 0 : 1;
}
