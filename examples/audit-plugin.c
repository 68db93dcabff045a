/* audit-plugin.so: the audit handler of sysgate-audit-worker as a plugin for
 * sysgate-worker (`sysgate-worker --plugin audit-plugin.so`). Built without
 * libsysgate: its sg_* references resolve to the host when it is loaded. */
#include <errno.h>
#include <stdio.h>

#include <sysgate.h>

#include "audit-handler.h"

#define PLUGIN_EXPORT __attribute__((visibility("default")))

PLUGIN_EXPORT int sysgate_plugin_init(sg_worker *w, const char *arg);

int sysgate_plugin_init(sg_worker *w, const char *arg)
{
	if (arg) {
		fprintf(stderr, "audit-plugin: takes no --arg (got \"%s\")\n", arg);
		return -EINVAL;
	}
	setvbuf(stdout, NULL, _IOLBF, 0); /* a pipe: one write per line */
	return audit_handler_register(w);
}
