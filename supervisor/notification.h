/* What both threads on the notification path do with one notification of
 * the kernel's, whichever of them decides it: read its path arguments
 * once, describe it to a worker (the Snapshot), read a worker's Action,
 * and fill its audit record once it is answered. */
#ifndef SYSGATE_NOTIFICATION_H
#define SYSGATE_NOTIFICATION_H

#include <linux/seccomp.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "chain.h"
#include "childmem.h"
#include "protocol.h"

/* Fills rec->n_paths, path_arg, path and path_errno with the path arguments
 * of req (docs/handlers.md#pre-read-paths), read from the trapped process. Every notification
 * a worker decides has them read (they travel in its Snapshot), with or
 * without --audit; free them with audit_syscall_release unless the record
 * is queued. */
void notification_preread(struct audit_syscall *rec, const struct seccomp_notif *req,
			  const struct childmem *mem);

/* A Snapshot envelope, in the caller's storage (it points into itself). */
struct snapshot_msg {
	Sysgate__V1__Envelope env;
	Sysgate__V1__Snapshot s;
	Sysgate__V1__PathArg pa[2], *pap[2];
	uint64_t args[PROTO_ARGS];
};

/* The Snapshot of req for a worker's registration reg, handed off as seq,
 * with the paths pre-read into paths. m points at paths' strings and at
 * sandbox: they must outlive its sending. */
void notification_snapshot(struct snapshot_msg *m, const struct seccomp_notif *req, uint64_t seq,
			   const struct audit_syscall *paths, char *sandbox, uint32_t reg);

/* What a worker's Action says. */
enum notification_answer {
	NOTIFICATION_ACTION,  /* *out: continue, errno, return or kill (not yet validated) */
	NOTIFICATION_INJECT,  /* inject_bytes: the caller installs the fd */
	NOTIFICATION_FAILED,  /* the handler reported a failure */
	NOTIFICATION_REFUSED, /* return or inject_bytes for an observe-only registration */
	NOTIFICATION_UNKNOWN, /* a kind this supervisor does not serve */
};

/* The one translation of a validated Action (protocol.h) into an action;
 * observe_only: the registration's (registry.h). */
enum notification_answer notification_action(const Sysgate__V1__Action *m, bool observe_only,
					     struct action *out);

/* req was answered with a, by decider (exception: the policy that
 * answered, or NULL), t0 its receipt: rec completed and queued to audit,
 * or (audit NULL) its paths freed. */
void notification_record(struct audit *audit, struct audit_syscall *rec,
			 const struct seccomp_notif *req, uint64_t t0, const struct action *a,
			 const char *decider, const char *exception);

#endif
