/* One `sysgate run`: confinement, builtins, the receiver, the audit log,
 * and the main loop that waits for the command, signals and --timeout. */
#ifndef SYSGATE_SANDBOX_H
#define SYSGATE_SANDBOX_H

#include "cli.h"

/* Exit status for sysgate (docs/cli.md#exit-status). Own errors are reported here and
 * mapped to 125. */
int sandbox_run(const struct config *cfg);

#endif
