/* Declarations shared by the cgo preambles and trampoline.c. */
#ifndef SYSGATE_GO_NATIVE_H
#define SYSGATE_GO_NATIVE_H

#include <stdint.h>
#include <sys/types.h>
#include <sysgate.h>

int sggo_handler(const sg_ctx *ctx, sg_action *out, void *ud);
void sggo_injected(pid_t pid, int fd, uint64_t cookie, void *ud);
/* sg_worker_on_nr / sg_worker_on_injected with the Go trampolines; reg and
 * worker are runtime/cgo handles, passed back to Go as the ud. */
int sggo_worker_on_nr(sg_worker *w, long nr, uintptr_t reg, int on_exc);
int sggo_worker_on_injected(sg_worker *w, uintptr_t worker);

#endif
