/* The audit log: one syscall record as JSON, and the writer end to end. */
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "audit.h"

static char etc_passwd[] = "/etc/passwd";
static char tmp_a[] = "/tmp/a";

/* openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC), let through. */
static struct audit_syscall openat_record(void)
{
	return (struct audit_syscall){
		.when = { .tv_sec = 1700000000, .tv_nsec = 123456789 },
		.pid = 42,
		.nr = SYS_openat,
		.args = { (uint64_t)-100, 0x7ffc0000beefULL, 0x80000, 0, 0, 0 },
		.n_paths = 1,
		.path_arg = { 1 },
		.path = { etc_passwd }, /* audit_syscall_json only reads it */
		.decider = "kernel",
		.action = { ACTION_CONTINUE, 0 },
		.latency_ns = 1500,
	};
}

static const char *string_field(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		fail_msg("\"%s\" is not a string", key);
	return json_string_value(v);
}

static void test_syscall_json(void **state)
{
	(void)state;
	struct audit_syscall rec = openat_record();
	json_t *o = audit_syscall_json(&rec, "box");
	assert_non_null(o);

	assert_string_equal(string_field(o, "type"), "syscall");
	assert_string_equal(string_field(o, "sandbox"), "box");
	assert_string_equal(string_field(o, "time"), "2023-11-14T22:13:20.123456Z");
	assert_int_equal(json_integer_value(json_object_get(o, "pid")), 42);
	assert_string_equal(string_field(o, "syscall"), "openat");
	assert_int_equal(json_integer_value(json_object_get(o, "nr")), SYS_openat);

	static const char *const want_args[6] = { "0xffffffffffffff9c", "0x7ffc0000beef",
						  "0x80000", "0x0", "0x0", "0x0" };
	json_t *args = json_object_get(o, "args");
	assert_true(json_is_array(args));
	assert_int_equal(json_array_size(args), 6);
	for (size_t i = 0; i < 6; i++) {
		json_t *arg = json_array_get(args, i);
		assert_true(json_is_string(arg));
		assert_string_equal(json_string_value(arg), want_args[i]);
	}

	json_t *paths = json_object_get(o, "paths");
	assert_true(json_is_object(paths));
	assert_int_equal(json_object_size(paths), 1);
	assert_string_equal(string_field(paths, "arg1"), "/etc/passwd");

	assert_string_equal(string_field(o, "decided_by"), "kernel");
	assert_string_equal(string_field(o, "action"), "continue");
	json_t *latency = json_object_get(o, "latency_us");
	assert_true(json_is_real(latency));
	assert_float_equal(json_real_value(latency), 1.5, 1e-9);

	json_decref(o);
}

/* The field that carries an action's value, and only that one. */
struct action_case {
	const char *name;
	struct action action;
	const char *want_name;
	const char *want_key; /* NULL: no value field */
};

static struct action_case action_cases[] = {
	{ "continue has no value", { ACTION_CONTINUE, 0 }, "continue", NULL },
	{ "errno has errno", { ACTION_ERRNO, EACCES }, "errno", "errno" },
	{ "return has value", { ACTION_RETURN, -7 }, "return", "value" },
	{ "kill has signal", { ACTION_KILL, 9 }, "kill", "signal" },
};

static void test_action_json(void **state)
{
	const struct action_case *c = *state;
	static const char *const value_keys[] = { "errno", "value", "signal" };
	struct audit_syscall rec = openat_record();
	rec.action = c->action;
	rec.decider = "worker";
	json_t *o = audit_syscall_json(&rec, "box");
	assert_non_null(o);

	assert_string_equal(string_field(o, "action"), c->want_name);
	assert_string_equal(string_field(o, "decided_by"), "worker");
	for (size_t i = 0; i < ARRAY_SIZE(value_keys); i++) {
		json_t *v = json_object_get(o, value_keys[i]);
		if (c->want_key && strcmp(value_keys[i], c->want_key) == 0) {
			assert_true(json_is_integer(v));
			assert_int_equal(json_integer_value(v), c->action.value);
		} else if (v) {
			fail_msg("unexpected \"%s\" in a %s record", value_keys[i], c->want_name);
		}
	}

	json_decref(o);
}

/* Unreadable paths and unknown syscalls are null, not missing. */
static void test_nulls(void **state)
{
	(void)state;
	struct audit_syscall rec = openat_record();
	rec.nr = SYS_renameat2;
	rec.n_paths = 2;
	rec.path_arg[0] = 1;
	rec.path_arg[1] = 3;
	rec.path[0] = tmp_a;
	rec.path[1] = NULL;
	json_t *o = audit_syscall_json(&rec, "box");
	assert_non_null(o);
	json_t *paths = json_object_get(o, "paths");
	assert_string_equal(string_field(paths, "arg1"), "/tmp/a");
	assert_true(json_is_null(json_object_get(paths, "arg3")));
	json_decref(o);

	rec = openat_record();
	rec.nr = 999;
	rec.n_paths = 0;
	o = audit_syscall_json(&rec, "box");
	assert_non_null(o);
	assert_true(json_is_null(json_object_get(o, "syscall")));
	assert_int_equal(json_integer_value(json_object_get(o, "nr")), 999);
	assert_null(json_object_get(o, "paths"));
	json_decref(o);
}

static void test_open_error_names_file(void **state)
{
	(void)state;
	struct audit *a = (struct audit *)1;
	struct sg_err err = { "" };
	struct audit_spec spec = { .path = "/nonexistent-dir/audit.jsonl", .sandbox = "box" };
	assert_true(audit_open(&a, &spec, &err) < 0);
	assert_null(a);
	assert_non_null(strstr(err.msg, "--audit"));
	assert_non_null(strstr(err.msg, "/nonexistent-dir/audit.jsonl"));
}

/* 1000 syscall records and one event come back as 1001 JSON lines, the
 * syscall records in the order they were queued. */
static void test_end_to_end(void **state)
{
	(void)state;
	enum { N_RECORDS = 1000 };
	char path[] = "/tmp/sysgate-audit-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	struct audit *a;
	struct sg_err err = { "" };
	struct audit_spec spec = { .path = path, .sandbox = "e2e" };
	int r = audit_open(&a, &spec, &err);
	/* Read back through fd: the file is gone even if an assertion fails. */
	unlink(path);
	if (r < 0)
		fail_msg("%s", err.msg);
	for (int i = 0; i < N_RECORDS; i++) {
		struct audit_syscall rec = openat_record();
		rec.pid = i + 1;
		rec.path[0] = strdup("/etc/passwd");
		assert_non_null(rec.path[0]);
		audit_syscall(a, &rec);
		assert_null(rec.path[0]); /* ownership moved to the log */
	}
	audit_event(a, "sandbox_start", json_pack("{s:i, s:s}", "pid", 1234, "command", "true"));
	assert_int_equal(audit_close(a), 0);

	FILE *f = fdopen(fd, "r");
	assert_non_null(f);
	char *line = NULL;
	size_t cap = 0;
	int lines = 0, syscalls = 0, starts = 0;
	while (getline(&line, &cap, f) >= 0) {
		lines++;
		json_error_t jerr;
		json_t *o = json_loads(line, 0, &jerr);
		if (!o)
			fail_msg("line %d is not JSON: %s", lines, jerr.text);
		assert_string_equal(string_field(o, "sandbox"), "e2e");
		const char *type = string_field(o, "type");
		if (strcmp(type, "syscall") == 0) {
			syscalls++;
			assert_int_equal(json_integer_value(json_object_get(o, "pid")), syscalls);
			assert_string_equal(string_field(json_object_get(o, "paths"), "arg1"),
					    "/etc/passwd");
		} else if (strcmp(type, "sandbox_start") == 0) {
			starts++;
			assert_int_equal(json_integer_value(json_object_get(o, "pid")), 1234);
			assert_string_equal(string_field(o, "command"), "true");
		} else {
			fail_msg("unexpected type \"%s\"", type);
		}
		json_decref(o);
	}
	free(line);
	fclose(f);

	assert_int_equal(lines, N_RECORDS + 1);
	assert_int_equal(syscalls, N_RECORDS);
	assert_int_equal(starts, 1);
}

/* Byte strings: valid UTF-8 stays a string; anything else is
 * {"escaped": E}, and audit_unescape(E) gives back the very bytes. */
struct bytes_case {
	const char *name;
	const char *in;      /* NUL-terminated unless len says otherwise */
	size_t len;          /* 0: strlen(in) */
	const char *escaped; /* NULL: a plain JSON string */
};

static struct bytes_case bytes_cases[] = {
	{ "ascii", "/etc/hostname", 0, NULL },
	{ "utf8", "/tmp/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 0, NULL },
	{ "backslash_alone_stays", "a\\b", 0, NULL },
	{ "invalid_byte", "/tmp/\xff/../etc/hostname", 0, "/tmp/\\xff/../etc/hostname" },
	{ "backslash_doubled_beside_invalid", "a\\x41\\\xc3(", 0, "a\\\\x41\\\\\\xc3(" },
	{ "truncated_sequence", "\xe2\x82", 0, "\\xe2\\x82" },
	{ "overlong", "\xc0\xaf", 0, "\\xc0\\xaf" },
	{ "surrogate", "\xed\xa0\x80", 0, "\\xed\\xa0\\x80" },
	{ "past_max", "\xf4\x90\x80\x80", 0, "\\xf4\\x90\\x80\\x80" },
	{ "nul_inside", "a\0b", 3, "a\\x00b" },
	{ "valid_after_invalid", "\x80\xc3\xa9", 0, "\\x80\xc3\xa9" },
};

static void test_bytes_json(void **state)
{
	const struct bytes_case *c = *state;
	size_t len = c->len ? c->len : strlen(c->in);
	json_t *v = audit_json_bytes(c->in, len);
	assert_non_null(v);
	if (!c->escaped) {
		assert_true(json_is_string(v));
		assert_int_equal(json_string_length(v), len);
		assert_memory_equal(json_string_value(v), c->in, len);
		json_decref(v);
		return;
	}
	assert_true(json_is_object(v));
	assert_int_equal(json_object_size(v), 1);
	const char *e = string_field(v, "escaped");
	assert_string_equal(e, c->escaped);
	/* It is written, and read back, as any JSON. */
	char *text = json_dumps(v, JSON_ENSURE_ASCII);
	assert_non_null(text);
	json_t *back = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(back);
	char out[64];
	ssize_t n = audit_unescape(string_field(back, "escaped"), out, sizeof(out));
	assert_int_equal(n, (ssize_t)len);
	assert_memory_equal(out, c->in, len);
	json_decref(back);
	json_decref(v);
}

static void test_unescape_refuses_malformed(void **state)
{
	(void)state;
	char out[16];
	static const char *const bad[] = { "a\\", "\\q", "\\x4", "\\xFF", "\\xg0" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(audit_unescape(bad[i], out, sizeof(out)), -EINVAL);
	assert_int_equal(audit_unescape("abcd", out, 3), -ENOBUFS);
	assert_int_equal(audit_unescape("a\\\\b\\x00", out, sizeof(out)), 4);
	assert_memory_equal(out, "a\\b\0", 4);
}

/* A syscall record's path that is not UTF-8 is escaped, not null. */
static void test_non_utf8_path_escaped(void **state)
{
	(void)state;
	char bad[] = "/tmp/\xff/../etc/hostname";
	struct audit_syscall rec = openat_record();
	rec.path[0] = bad;
	json_t *o = audit_syscall_json(&rec, "box");
	assert_non_null(o);
	json_t *p = json_object_get(json_object_get(o, "paths"), "arg1");
	assert_string_equal(string_field(p, "escaped"), "/tmp/\\xff/../etc/hostname");
	assert_null(json_object_get(o, "path_errors"));
	json_decref(o);
}

/* Names: cut on character boundaries, bad bytes and controls replaced. */
static void test_utf8_copy(void **state)
{
	(void)state;
	char out[8];
	assert_int_equal(audit_utf8_copy(out, sizeof(out), "a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"), 7);
	assert_string_equal(out, "a\xc3\xa9\xc3\xa9\xc3\xa9");
	assert_int_equal(audit_utf8_copy(out, sizeof(out), "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"), 6);
	assert_string_equal(out, "\xc3\xa9\xc3\xa9\xc3\xa9");
	audit_utf8_copy(out, sizeof(out), "t\xffu\x01\xc3");
	assert_string_equal(out, "t?u??");
	assert_true(audit_utf8_printable("box-\xc3\xa9", 6));
	assert_false(audit_utf8_printable("a\xff", 2));
	assert_false(audit_utf8_printable("a\tb", 3));
	assert_false(audit_utf8_printable("\xc3", 1));
}

static const struct CMUnitTest fixed_tests[] = {
	cmocka_unit_test(test_syscall_json),
	cmocka_unit_test(test_nulls),
	cmocka_unit_test(test_open_error_names_file),
	cmocka_unit_test(test_end_to_end),
	cmocka_unit_test(test_unescape_refuses_malformed),
	cmocka_unit_test(test_non_utf8_path_escaped),
	cmocka_unit_test(test_utf8_copy),
};

int main(void)
{
	struct CMUnitTest
		tests[ARRAY_SIZE(fixed_tests) + ARRAY_SIZE(action_cases) + ARRAY_SIZE(bytes_cases)];
	size_t n = 0;
	UNIT_TESTS(tests, n, fixed_tests);
	UNIT_ROWS(tests, n, test_action_json, action_cases);
	UNIT_ROWS(tests, n, test_bytes_json, bytes_cases);
	return cmocka_run_group_tests_name("audit", tests, NULL, NULL);
}
