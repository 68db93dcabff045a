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
/* Each handler thread of w enters Go once (sggoThread) and runs its whole
 * body from there (sggo_run), so every handler call is a callback on a
 * thread the Go runtime already knows: nanoseconds, where a call from a
 * foreign thread attaches it to the runtime and detaches it again, some
 * system calls and a wake-up of the runtime's monitor each time. */
int sggo_worker_set_thread_wrap(sg_worker *w);
void *sggo_thread_wrap(void *(*run)(void *), void *arg, void *ud);
void *sggo_run(uintptr_t run, uintptr_t arg);

#endif
