/* sysgate's own exit statuses (docs/cli.md#exit-status), beside the command's own status
 * and 128 + the signal that killed it. */
#ifndef SYSGATE_EXIT_STATUS_H
#define SYSGATE_EXIT_STATUS_H

enum {
	EXIT_TIMEOUT = 124,   /* --timeout reached */
	EXIT_OWN_ERROR = 125, /* sysgate itself failed (usage, setup) */
	EXIT_NOEXEC = 126,    /* the command cannot be executed */
	EXIT_NOTFOUND = 127,  /* the command was not found */
};

#endif
