/* The C side of the binding: the sg_handler_fn and sg_injected_fn that
 * libsysgate calls on its threads, each forwarding to an exported Go
 * function. They live here because a cgo preamble in a file with //export
 * may only declare, not define. */
#include <stdint.h>

#include "_cgo_export.h"
#include "native.h"

int sggo_handler(const sg_ctx *ctx, sg_action *out, void *ud)
{
	return sggoHandle((uintptr_t)ud, (sg_ctx *)ctx, out);
}

void sggo_injected(pid_t pid, int fd, uint64_t cookie, void *ud)
{
	sggoInjected((uintptr_t)ud, pid, fd, cookie);
}

void *sggo_thread_wrap(void *(*run)(void *), void *arg, void *ud)
{
	(void)ud;
	return (void *)sggoThread((uintptr_t)run, (uintptr_t)arg);
}

void *sggo_run(uintptr_t run, uintptr_t arg)
{
	return ((void *(*)(void *))run)((void *)arg);
}

int sggo_worker_set_thread_wrap(sg_worker *w)
{
	return sg_worker_set_thread_wrap(w, sggo_thread_wrap, NULL);
}

int sggo_worker_on_nr(sg_worker *w, long nr, uintptr_t reg, int on_exc)
{
	return sg_worker_on_nr(w, nr, sggo_handler, (void *)reg, (enum sg_exception)on_exc);
}

int sggo_worker_on_injected(sg_worker *w, uintptr_t worker)
{
	return sg_worker_on_injected(w, sggo_injected, (void *)worker);
}
