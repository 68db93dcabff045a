/* The audit log: JSON Lines, one object per trapped syscall and per
 * lifecycle event. Records are queued by the receiver and written by a
 * dedicated thread, so disk I/O never delays a notification. */
#ifndef SYSGATE_AUDIT_H
#define SYSGATE_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
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
	char *path[2];       /* owned, the bytes read; NULL if unreadable */
	int path_errno[2];   /* why path[i] is NULL */
	const char *decider; /* "kernel", a builtin, a worker; outlives the audit */
	const char *exception; /* the exception policy that answered, or NULL */
	struct action action;
	uint64_t latency_ns;
};

/* Frees the paths of a record that was not queued. */
void audit_syscall_release(struct audit_syscall *rec);

struct audit_spec {
	const char *path;    /* "-": standard error */
	const char *sandbox; /* valid UTF-8 */
	/* The command's file access: its -w paths, and whether Landlock
	 * restricts its files at all (-r/-w given). */
	const char *const *write_paths;
	size_t n_write;
	bool restrict_fs;
};

/* Opens spec->path for appending and starts the writer. Refuses a symbolic
 * link, anything but a regular file (never blocking on a FIFO), and a file
 * the command could write through a -w path; warns when the command's files
 * are not restricted at all. */
int audit_open(struct audit **out, const struct audit_spec *spec, struct sg_err *err);

/* Readable (POLLIN) once a record could not be written: the run must end.
 * -1 for a NULL audit. */
int audit_fail_fd(const struct audit *a);

/* Queues a record; takes ownership of rec->path[]. Never does I/O. */
void audit_syscall(struct audit *a, struct audit_syscall *rec);

/* Queues a lifecycle event `type` with extra fields (stolen, may be NULL).
 * Its memory (audit_json_cost) counts against the queue's byte budget. */
void audit_event(struct audit *a, const char *type, json_t *fields);

/* Events charged to one of AUDIT_SLOTS producers (a worker's records):
 * audit_event_charged queues like audit_event and holds the event's count
 * and cost against the slot until it is written; audit_charged reads what
 * the slot holds, so a producer can be bounded before it queues more. */
#define AUDIT_SLOTS 32
void audit_event_charged(struct audit *a, const char *type, json_t *fields, unsigned slot);
void audit_charged(struct audit *a, unsigned slot, size_t *count, size_t *cost);

/* What a JSON value costs in memory, roughly: its strings' bytes plus a
 * fixed overhead per value (a parser's "[[],[],...]" costs ~50 times its
 * text). */
size_t audit_json_cost(json_t *j);

/* Writes everything queued, flushes, stops the writer and frees a. 0, or
 * the negative errno of the first record that could not be written (the
 * writer has said so on standard error). */
int audit_close(struct audit *a);

/* Byte strings from the program, the command line or a worker in the log:
 * a JSON string when s is valid UTF-8 without NUL, else the object
 * {"escaped": E}, E being s with each backslash doubled and each byte that
 * is not part of a valid UTF-8 sequence written as \xHH (two lowercase hex
 * digits). Lossless; NULL only when out of memory. */
json_t *audit_json_bytes(const char *s, size_t len);
json_t *audit_json_str(const char *s);

/* Decodes E of {"escaped": E} back into the bytes (not NUL-terminated) in
 * out; returns their count, -EINVAL if E is malformed, -ENOBUFS if cap is
 * too small (strlen(E) always suffices). */
ssize_t audit_unescape(const char *e, char *out, size_t cap);

/* Whether s[0..len) is valid UTF-8 without control characters (C0, DEL):
 * what a sandbox name must be. */
bool audit_utf8_printable(const char *s, size_t len);

/* Copies s into out (cap > 0, NUL-terminated) by whole characters: never
 * cuts one in the middle; each byte that is not valid UTF-8 or is a control
 * character becomes '?'. Returns the bytes written. */
size_t audit_utf8_copy(char *out, size_t cap, const char *s);

/* Formats one syscall record (exposed for unit tests). */
json_t *audit_syscall_json(const struct audit_syscall *rec, const char *sandbox);

#endif
