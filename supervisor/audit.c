#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "landlock.h"
#include "log.h"
#include "syscalls.h"

/* Past this backlog the receiver waits for the writer rather than drop
 * records: the log must be complete. */
#define AUDIT_QUEUE_CAP 65536
#define AUDIT_QUEUE_BYTES (64u << 20) /* path copies held at most */

struct audit_item {
	json_t *event; /* lifecycle event, or NULL for a syscall record */
	struct audit_syscall sys;
	size_t cost;   /* an event's, against the byte budget */
	unsigned slot; /* an event's charge: slot + 1, 0 for none */
};

struct audit {
	FILE *out;
	bool own_out;
	char *path; /* for messages */
	char *sandbox;
	int fail_fd; /* eventfd, written when a record is lost */
	pthread_t writer;
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	struct audit_item *ring;
	size_t head, len;
	size_t bytes; /* path bytes and event costs held by queued records */
	struct {
		size_t count, cost;
	} charged[AUDIT_SLOTS];
	bool closing;
	int error; /* first write error (negative errno), the writer's */
};

/* ---- byte strings ------------------------------------------------------ */

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0, k; i < len; i += k)
		if (!(k = utf8_char(p + i, len - i)))
			return false;
	return true;
}

bool audit_utf8_printable(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0, k; i < len; i += k)
		if (!(k = utf8_char(p + i, len - i)) || (k == 1 && is_control(p[i])))
			return false;
	return true;
}

size_t audit_utf8_copy(char *out, size_t cap, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), o = 0;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_char(p + i, len - i);
		bool bad = !k || (k == 1 && is_control(p[i]));
		size_t w = bad ? 1 : k;
		if (o + w >= cap)
			break;
		if (bad)
			out[o] = '?';
		else
			memcpy(out + o, p + i, k);
		o += w;
		i += bad ? 1 : k;
	}
	out[o] = '\0';
	return o;
}

json_t *audit_json_bytes(const char *s, size_t len)
{
	if (utf8_valid(s, len))
		return json_stringn(s, len);
	/* Worst case: every byte becomes \xHH. */
	_cleanup_free_ char *e = malloc(len * 4 + 1);
	if (!e)
		return NULL;
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0, k; i < len; i += k) {
		k = utf8_char(p + i, len - i);
		if (k == 1 && p[i] == '\\') {
			e[o++] = '\\';
			e[o++] = '\\';
		} else if (k) {
			memcpy(e + o, p + i, k);
			o += k;
		} else {
			o += (size_t)snprintf(e + o, 5, "\\x%02x", p[i]);
			k = 1;
		}
	}
	return json_pack("{s:s%}", "escaped", e, o);
}

json_t *audit_json_str(const char *s)
{
	return audit_json_bytes(s, strlen(s));
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

ssize_t audit_unescape(const char *e, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; e[i]; o++) {
		if (o >= cap)
			return -ENOBUFS;
		if (e[i] != '\\') {
			out[o] = e[i++];
			continue;
		}
		if (e[i + 1] == '\\') {
			out[o] = '\\';
			i += 2;
			continue;
		}
		int hi = e[i + 1] == 'x' ? hex_digit(e[i + 2]) : -1;
		int lo = hi >= 0 ? hex_digit(e[i + 3]) : -1;
		if (lo < 0)
			return -EINVAL;
		out[o] = (char)(hi << 4 | lo);
		i += 4;
	}
	return (ssize_t)o;
}

/* ---- records ----------------------------------------------------------- */

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
	return json_pack("{s:s, s:o, s:s}", "time", t, "sandbox", audit_json_str(sandbox), "type",
			 type);
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
			if (rec->path[i]) {
				json_t *p = audit_json_str(rec->path[i]);
				if (!p) {
					json_decref(paths);
					json_decref(errors);
					json_decref(o);
					return NULL;
				}
				json_object_set_new(paths, key, p);
				continue;
			}
			json_object_set_new(paths, key, json_null());
			if (!errors)
				errors = json_object();
			const char *why = strerrorname_np(rec->path_errno[i]) ?: "unknown";
			json_object_set_new(errors, key, json_string(why));
		}
		json_object_set_new(o, "paths", paths);
		if (errors)
			json_object_set_new(o, "path_errors", errors);
	}
	json_object_set_new(o, "decided_by", audit_json_str(rec->decider));
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
	size_t n = it->event ? it->cost : 0;
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

/* The writer's first failure ends the run: said once, signalled to the
 * main loop; later records are dropped (the log is already incomplete). */
static void write_failed(struct audit *a, int e, const char *what)
{
	pthread_mutex_lock(&a->lock);
	bool first = a->error == 0;
	if (first)
		a->error = -e;
	pthread_mutex_unlock(&a->lock);
	if (!first)
		return;
	log_error("--audit '%s': %s: %s; ending the run", a->path, what, strerror(e));
	uint64_t one = 1;
	(void)!write(a->fail_fd, &one, sizeof(one));
}

static void write_item(struct audit *a, struct audit_item *it)
{
	json_t *o = it->event ? json_incref(it->event) : audit_syscall_json(&it->sys, a->sandbox);
	_cleanup_free_ char *line =
		o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6)) : NULL;
	json_decref(o);
	item_free(it);
	if (a->error)
		return;
	if (!line) {
		write_failed(a, ENOMEM, "cannot encode a record");
		return;
	}
	/* One fwrite per line: on an unbuffered standard error, one write. */
	size_t len = strlen(line);
	line[len] = '\n'; /* replaces the NUL; fwrite is given the length */
	errno = EIO;
	if (fwrite(line, 1, len + 1, a->out) != len + 1)
		write_failed(a, errno, "cannot write a record");
}

static void flush(struct audit *a)
{
	errno = EIO;
	if (!a->error && fflush(a->out) == EOF)
		write_failed(a, errno, "cannot write a record");
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
		unsigned slot = it.slot;
		size_t cost = it.cost;
		write_item(a, &it);
		/* Flush when idle so a reader following the file sees whole lines. */
		if (drained)
			flush(a);
		pthread_mutex_lock(&a->lock);
		if (slot) {
			a->charged[slot - 1].count--;
			a->charged[slot - 1].cost -= cost;
		}
	}
	pthread_mutex_unlock(&a->lock);
	flush(a);
	return NULL;
}

/* ---- opening ----------------------------------------------------------- */

static bool same_inode(const struct stat *x, const struct stat *y)
{
	return x->st_dev == y->st_dev && x->st_ino == y->st_ino;
}

/* The -w path the file open as fd is (or is beneath), or NULL. Landlock
 * grants whole hierarchies: walk up from the file's directory comparing
 * inodes, so symbolic links and bind mounts hide nothing. */
static const char *writable_through(int fd, const char *path, const struct audit_spec *spec)
{
	struct stat file;
	if (spec->n_write == 0 || fstat(fd, &file) < 0)
		return NULL;
	_cleanup_free_ struct stat *w = calloc(spec->n_write, sizeof(*w));
	_cleanup_free_ char *copy = strdup(path);
	if (!w || !copy)
		return NULL;
	for (size_t i = 0; i < spec->n_write; i++) {
		if (stat(spec->write_paths[i], &w[i]) < 0)
			w[i].st_ino = 0; /* matches nothing: Landlock refused it already */
		else if (same_inode(&file, &w[i]))
			return spec->write_paths[i];
	}
	_cleanup_close_ int dir = open(dirname(copy), O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (int depth = 0; dir >= 0 && depth < 4096; depth++) {
		struct stat d, u;
		if (fstat(dir, &d) < 0)
			return NULL;
		for (size_t i = 0; i < spec->n_write; i++)
			if (w[i].st_ino && same_inode(&d, &w[i]))
				return spec->write_paths[i];
		int up = openat(dir, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		close(dir);
		dir = up;
		if (dir < 0 || fstat(dir, &u) < 0 || same_inode(&u, &d))
			return NULL; /* past the root */
	}
	return NULL;
}

/* The audit log is evidence of what the command did: refuse a file it
 * could rewrite, and say so where it can (see README, threat model). */
static int check_reach(int fd, const struct audit_spec *spec, struct sg_err *err)
{
	if (!spec->restrict_fs || landlock_abi() <= 0) {
		log_error("warning: --audit '%s': the command's files are not restricted (no "
			  "-r/-w), so it can write this log too; give -r/-w paths that do not "
			  "contain it",
			  spec->path);
		return 0;
	}
	const char *w = writable_through(fd, spec->path, spec);
	if (w)
		return err_set(err, EPERM,
			       "--audit '%s': the command could write it (-w '%s'); put the audit "
			       "log outside every -w path",
			       spec->path, w);
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_nlink > 1)
		return err_set(
			err, EPERM,
			"--audit '%s': has other hard links, through which the command might "
			"write it; give a file with one name",
			spec->path);
	return 0;
}

/* An append-only regular file, never a symbolic link (it could lead
 * anywhere) and never a FIFO or device (O_NONBLOCK: opening a FIFO without
 * a reader fails at once instead of hanging start-up). */
static int open_file(const struct audit_spec *spec, FILE **out, struct sg_err *err)
{
	_cleanup_close_ int fd =
		open(spec->path,
		     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK,
		     0600);
	if (fd < 0 && errno == ELOOP)
		return err_set(err, ELOOP,
			       "--audit '%s': is a symbolic link; give the file it points to",
			       spec->path);
	if (fd < 0 && errno == ENXIO)
		return err_set(err, ENXIO, "--audit '%s': not a regular file", spec->path);
	if (fd < 0)
		return err_sys(err, errno, "--audit: cannot open '%s'", spec->path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_sys(err, errno, "--audit: cannot stat '%s'", spec->path);
	if (!S_ISREG(st.st_mode))
		return err_set(err, EINVAL, "--audit '%s': not a regular file", spec->path);
	if (fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) < 0)
		return err_sys(err, errno, "--audit: fcntl '%s'", spec->path);
	int r = check_reach(fd, spec, err);
	if (r < 0)
		return r;
	*out = fdopen(fd, "a");
	if (!*out)
		return err_sys(err, errno, "--audit: cannot open '%s'", spec->path);
	steal_fd(&fd);
	return 0;
}

static void audit_free(struct audit *a)
{
	if (a->own_out && a->out)
		fclose(a->out);
	if (a->fail_fd >= 0)
		close(a->fail_fd);
	free(a->ring);
	free(a->path);
	free(a->sandbox);
	free(a);
}

int audit_open(struct audit **out, const struct audit_spec *spec, struct sg_err *err)
{
	*out = NULL;
	struct audit *a = calloc(1, sizeof(*a));
	if (!a)
		return err_set(err, ENOMEM, "--audit: out of memory");
	a->fail_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a->ring = calloc(AUDIT_QUEUE_CAP, sizeof(*a->ring));
	a->sandbox = strdup(spec->sandbox);
	bool is_stderr = strcmp(spec->path, "-") == 0;
	a->path = strdup(is_stderr ? "-" : spec->path);
	if (!a->ring || !a->sandbox || !a->path || a->fail_fd < 0) {
		audit_free(a);
		return err_set(err, ENOMEM, "--audit: out of memory");
	}
	int r = 0;
	if (is_stderr)
		a->out = stderr;
	else if ((r = open_file(spec, &a->out, err)) == 0)
		a->own_out = true;
	if (r < 0) {
		audit_free(a);
		return r;
	}
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->not_empty, NULL);
	pthread_cond_init(&a->not_full, NULL);
	r = pthread_create(&a->writer, NULL, writer_main, a);
	if (r) {
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->not_empty);
		pthread_cond_destroy(&a->not_full);
		audit_free(a);
		return err_sys(err, r, "--audit: cannot start the writer thread");
	}
	*out = a;
	return 0;
}

int audit_fail_fd(const struct audit *a)
{
	return a ? a->fail_fd : -1;
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
	if (it->slot) {
		a->charged[it->slot - 1].count++;
		a->charged[it->slot - 1].cost += it->cost;
	}
	pthread_cond_signal(&a->not_empty);
	pthread_mutex_unlock(&a->lock);
}

void audit_syscall(struct audit *a, struct audit_syscall *rec)
{
	struct audit_item it = { .event = NULL, .sys = *rec };
	rec->path[0] = rec->path[1] = NULL;
	enqueue(a, &it);
}

size_t audit_json_cost(json_t *j)
{
	/* json_t plus its container or string, and malloc's overhead. */
	enum { PER_VALUE = 96 };
	size_t n = PER_VALUE;
	const char *key;
	json_t *v;
	size_t i;
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		json_object_foreach (j, key, v)
			n += strlen(key) + PER_VALUE + audit_json_cost(v);
		break;
	case JSON_ARRAY:
		json_array_foreach (j, i, v)
			n += sizeof(void *) + audit_json_cost(v);
		break;
	case JSON_STRING:
		n += json_string_length(j);
		break;
	default:
		break;
	}
	return n;
}

static void event(struct audit *a, const char *type, json_t *fields, unsigned slot)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	json_t *o = base_record(&now, a->sandbox, type);
	if (!o) {
		json_decref(fields);
		write_failed(a, ENOMEM, "cannot encode a record");
		return;
	}
	if (fields)
		json_object_update(o, fields);
	json_decref(fields);
	struct audit_item it = { .event = o, .cost = audit_json_cost(o), .slot = slot };
	enqueue(a, &it);
}

void audit_event(struct audit *a, const char *type, json_t *fields)
{
	event(a, type, fields, 0);
}

void audit_event_charged(struct audit *a, const char *type, json_t *fields, unsigned slot)
{
	event(a, type, fields, slot < AUDIT_SLOTS ? slot + 1 : 0);
}

void audit_charged(struct audit *a, unsigned slot, size_t *count, size_t *cost)
{
	*count = *cost = 0;
	if (!a || slot >= AUDIT_SLOTS)
		return;
	pthread_mutex_lock(&a->lock);
	*count = a->charged[slot].count;
	*cost = a->charged[slot].cost;
	pthread_mutex_unlock(&a->lock);
}

int audit_close(struct audit *a)
{
	if (!a)
		return 0;
	pthread_mutex_lock(&a->lock);
	a->closing = true;
	pthread_cond_signal(&a->not_empty);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->writer, NULL);
	int r = a->error;
	if (a->own_out) {
		errno = EIO;
		if (fclose(a->out) == EOF && !r) {
			r = -errno;
			log_error("--audit '%s': cannot write a record: %s", a->path,
				  strerror(errno));
		}
		a->out = NULL;
	}
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->not_empty);
	pthread_cond_destroy(&a->not_full);
	audit_free(a);
	return r;
}

void audit_syscall_release(struct audit_syscall *rec)
{
	for (unsigned i = 0; i < rec->n_paths; i++) {
		free(rec->path[i]);
		rec->path[i] = NULL;
	}
	rec->n_paths = 0;
}
