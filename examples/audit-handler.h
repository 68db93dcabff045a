/* A fail-open audit handler: one stdout line per file open or execve. Shared
 * by sysgate-audit-worker and audit-plugin.so. */
#ifndef SYSGATE_EXAMPLES_AUDIT_HANDLER_H
#define SYSGATE_EXAMPLES_AUDIT_HANDLER_H

#include <sysgate.h>

/* Registers the audit handler on w for openat, open, creat, openat2 and
 * execve (skipping the ones the architecture does not have), each with
 * SG_EXC_CONTINUE. The handler prints `audit: PID SYSCALL PATH` (PATH the
 * supervisor's pre-read path, `?` if none; control characters and '\' as
 * \xHH) and lets the syscall run. 0, or the negative errno of the first
 * failed registration after printing one line naming it on stderr. */
int audit_handler_register(sg_worker *w);

#endif
