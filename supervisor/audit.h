/* The audit log: JSON Lines, one object per trapped syscall and per
 * lifecycle event. Records are queued by the receiver and written by a
 * dedicated thread, so disk I/O never delays a notification. */
#ifndef SYSGATE_AUDIT_H
#define SYSGATE_AUDIT_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "chain.h"
#include "util.h"

struct audit;

struct audit_syscall {
	struct timespec when; /* CLOCK_REALTIME at receipt */
	pid_t pid;
	int nr;
	uint64_t args[6];
	unsigned n_paths;
	unsigned path_arg[2];
	char *path[2];       /* owned; NULL if unreadable */
	int path_errno[2];   /* why path[i] is NULL (0: read, but not valid UTF-8) */
	const char *decider; /* "kernel", a builtin, a worker; outlives the audit */
	const char *exception; /* the exception policy that answered, or NULL */
	struct action action;
	uint64_t latency_ns;
};

/* Frees the paths of a record that was not queued. */
void audit_syscall_release(struct audit_syscall *rec);

/* Opens FILE for appending ("-": standard error) and starts the writer. */
int audit_open(struct audit **out, const char *path, const char *sandbox, struct sg_err *err);

/* Queues a record; takes ownership of rec->path[]. Never does I/O. */
void audit_syscall(struct audit *a, struct audit_syscall *rec);

/* Queues a lifecycle event `type` with extra fields (stolen, may be NULL). */
void audit_event(struct audit *a, const char *type, json_t *fields);

/* Writes everything queued, flushes, stops the writer and frees a. */
void audit_close(struct audit *a);

/* Formats one syscall record (exposed for unit tests). */
json_t *audit_syscall_json(const struct audit_syscall *rec, const char *sandbox);

#endif
