#include "audit.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syscalls.h"

/* Past this backlog the receiver waits for the writer rather than drop
 * records: the log must be complete. */
#define AUDIT_QUEUE_CAP 65536
#define AUDIT_QUEUE_BYTES (64u << 20) /* path copies held at most */

struct audit_item {
	json_t *event; /* lifecycle event, or NULL for a syscall record */
	struct audit_syscall sys;
};

struct audit {
	FILE *out;
	bool own_out;
	char *sandbox;
	pthread_t writer;
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	struct audit_item *ring;
	size_t head, len;
	size_t bytes; /* path bytes held by queued records */
	bool closing;
};

static void format_time(const struct timespec *ts, char *buf, size_t cap)
{
	struct tm tm;
	gmtime_r(&ts->tv_sec, &tm);
	size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%06ldZ", ts->tv_nsec / 1000);
}

static json_t *base_record(const struct timespec *when, const char *sandbox, const char *type)
{
	char t[64];
	format_time(when, t, sizeof(t));
	return json_pack("{s:s, s:s, s:s}", "time", t, "sandbox", sandbox, "type", type);
}

json_t *audit_syscall_json(const struct audit_syscall *rec, const char *sandbox)
{
	json_t *o = base_record(&rec->when, sandbox, "syscall");
	if (!o)
		return NULL;
	const char *name = syscalls_name(rec->nr);
	json_t *args = json_array();
	for (int i = 0; i < 6; i++) {
		char hex[24];
		snprintf(hex, sizeof(hex), "0x%" PRIx64, rec->args[i]);
		json_array_append_new(args, json_string(hex));
	}
	json_object_set_new(o, "pid", json_integer(rec->pid));
	json_object_set_new(o, "syscall", name ? json_string(name) : json_null());
	json_object_set_new(o, "nr", json_integer(rec->nr));
	json_object_set_new(o, "args", args);
	if (rec->n_paths) {
		json_t *paths = json_object();
		json_t *errors = NULL;
		for (unsigned i = 0; i < rec->n_paths; i++) {
			char key[16];
			snprintf(key, sizeof(key), "arg%u", rec->path_arg[i]);
			/* json_string refuses invalid UTF-8: null it, say why. */
			json_t *p = rec->path[i] ? json_string(rec->path[i]) : NULL;
			json_object_set_new(paths, key, p ? p : json_null());
			if (p)
				continue;
			if (!errors)
				errors = json_object();
			const char *why = "not UTF-8";
			if (!rec->path[i])
				why = strerrorname_np(rec->path_errno[i]) ?: "unknown";
			json_object_set_new(errors, key, json_string(why));
		}
		json_object_set_new(o, "paths", paths);
		if (errors)
			json_object_set_new(o, "path_errors", errors);
	}
	json_object_set_new(o, "decided_by", json_string(rec->decider));
	if (rec->exception)
		json_object_set_new(o, "exception", json_string(rec->exception));
	json_object_set_new(o, "action", json_string(action_name(rec->action.kind)));
	if (rec->action.kind == ACTION_ERRNO)
		json_object_set_new(o, "errno", json_integer(rec->action.value));
	else if (rec->action.kind == ACTION_RETURN)
		json_object_set_new(o, "value", json_integer(rec->action.value));
	else if (rec->action.kind == ACTION_KILL)
		json_object_set_new(o, "signal", json_integer(rec->action.value));
	else if (rec->action.kind == ACTION_INJECT)
		json_object_set_new(o, "fd", json_integer(rec->action.value));
	json_object_set_new(o, "latency_us", json_real((double)rec->latency_ns / 1000.0));
	return o;
}

static size_t item_bytes(const struct audit_item *it)
{
	size_t n = 0;
	for (unsigned i = 0; !it->event && i < 2; i++)
		n += it->sys.path[i] ? strlen(it->sys.path[i]) + 1 : 0;
	return n;
}

static void item_free(struct audit_item *it)
{
	json_decref(it->event);
	for (unsigned i = 0; i < 2; i++)
		free(it->sys.path[i]);
}

static void write_item(struct audit *a, struct audit_item *it)
{
	json_t *o = it->event ? json_incref(it->event) : audit_syscall_json(&it->sys, a->sandbox);
	if (o) {
		json_dumpf(o, a->out, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6));
		fputc('\n', a->out);
		json_decref(o);
	}
	item_free(it);
}

static void *writer_main(void *arg)
{
	struct audit *a = arg;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (a->len == 0 && !a->closing)
			pthread_cond_wait(&a->not_empty, &a->lock);
		if (a->len == 0 && a->closing)
			break;
		struct audit_item it = a->ring[a->head];
		a->head = (a->head + 1) % AUDIT_QUEUE_CAP;
		a->len--;
		a->bytes -= item_bytes(&it);
		bool drained = a->len == 0;
		pthread_cond_signal(&a->not_full);
		pthread_mutex_unlock(&a->lock);
		write_item(a, &it);
		/* Flush when idle so a reader following the file sees whole lines. */
		if (drained)
			fflush(a->out);
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	fflush(a->out);
	return NULL;
}

int audit_open(struct audit **out, const char *path, const char *sandbox, struct sg_err *err)
{
	*out = NULL;
	struct audit *a = calloc(1, sizeof(*a));
	if (!a)
		return err_set(err, ENOMEM, "--audit: out of memory");
	a->ring = calloc(AUDIT_QUEUE_CAP, sizeof(*a->ring));
	a->sandbox = strdup(sandbox);
	if (!a->ring || !a->sandbox) {
		free(a->ring);
		free(a->sandbox);
		free(a);
		return err_set(err, ENOMEM, "--audit: out of memory");
	}
	if (strcmp(path, "-") == 0) {
		a->out = stderr;
	} else {
		int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
		a->out = fd >= 0 ? fdopen(fd, "a") : NULL;
		if (!a->out) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			free(a->ring);
			free(a->sandbox);
			free(a);
			return err_sys(err, e, "--audit: cannot open '%s'", path);
		}
		a->own_out = true;
	}
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->not_empty, NULL);
	pthread_cond_init(&a->not_full, NULL);
	int r = pthread_create(&a->writer, NULL, writer_main, a);
	if (r) {
		if (a->own_out)
			fclose(a->out);
		free(a->ring);
		free(a->sandbox);
		free(a);
		return err_sys(err, r, "--audit: cannot start the writer thread");
	}
	*out = a;
	return 0;
}

static void enqueue(struct audit *a, const struct audit_item *it)
{
	size_t bytes = item_bytes(it);
	pthread_mutex_lock(&a->lock);
	/* Bounded in records and in bytes; an empty queue takes anything. */
	while (a->len == AUDIT_QUEUE_CAP || (a->len && a->bytes + bytes > AUDIT_QUEUE_BYTES))
		pthread_cond_wait(&a->not_full, &a->lock);
	a->ring[(a->head + a->len) % AUDIT_QUEUE_CAP] = *it;
	a->len++;
	a->bytes += bytes;
	pthread_cond_signal(&a->not_empty);
	pthread_mutex_unlock(&a->lock);
}

void audit_syscall(struct audit *a, struct audit_syscall *rec)
{
	struct audit_item it = { .event = NULL, .sys = *rec };
	rec->path[0] = rec->path[1] = NULL;
	enqueue(a, &it);
}

void audit_event(struct audit *a, const char *type, json_t *fields)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	json_t *o = base_record(&now, a->sandbox, type);
	if (!o) {
		json_decref(fields);
		return;
	}
	if (fields)
		json_object_update(o, fields);
	json_decref(fields);
	struct audit_item it = { .event = o };
	enqueue(a, &it);
}

void audit_close(struct audit *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->closing = true;
	pthread_cond_signal(&a->not_empty);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->writer, NULL);
	if (a->own_out)
		fclose(a->out);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->not_empty);
	pthread_cond_destroy(&a->not_full);
	free(a->ring);
	free(a->sandbox);
	free(a);
}

void audit_syscall_release(struct audit_syscall *rec)
{
	for (unsigned i = 0; i < rec->n_paths; i++) {
		free(rec->path[i]);
		rec->path[i] = NULL;
	}
	rec->n_paths = 0;
}
