/* A worker's registrations: resolved by name or number, sorted by their
 * order (Hello order among equals), and rejected, naming the syscall, when
 * negative, unknown or on a deny list. One row per case. */
#include "unit.h"

#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>

#include "registry.h"

#define STR(x) #x
#define XSTR(x) STR(x)

#define MAX_REGS 6
#define MAX_DENY 3
#define MAX_MSGS 3

#define KILL SYSGATE__V1__EXCEPTION_POLICY__KILL
#define EPERM_ SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM
#define CONT SYSGATE__V1__EXCEPTION_POLICY__CONTINUE
#define EIO_ SYSGATE__V1__EXCEPTION_POLICY__DENY_EIO

/* A registration as the worker sends it. name NULL: the field is NULL;
 * "": the empty string (both mean "by number"). */
struct reg_in {
	const char *name;
	int64_t nr;
	uint32_t order;
	Sysgate__V1__ExceptionPolicy policy;
};

#define BY_NAME(s, order, policy) { (s), 0, (order), (policy) }
#define BY_NR(nr, order, policy) { "", (nr), (order), (policy) }

struct resolve_case {
	const char *name;
	size_t n_regs;
	struct reg_in regs[MAX_REGS];
	const char *extra_deny[MAX_DENY]; /* beyond syscalls_default_deny */
	int want;
	const char *msg[MAX_MSGS]; /* substrings the error message must hold */
	size_t n_out;
	struct registration out[MAX_REGS]; /* { nr, index, policy } in chain order */
};

static struct resolve_case resolve_cases[] = {
	/* Accepted. */
	{ "no registrations", 0, { { 0 } }, { NULL }, 0, { NULL }, 0, { { 0 } } },
	{ "by name getppid", 1, { BY_NAME("getppid", 0, KILL) }, { NULL }, 0, { NULL }, 1,
	  { { SYS_getppid, 0, KILL } } },
	{ "by number, empty name", 1, { BY_NR(SYS_getpid, 0, EPERM_) }, { NULL }, 0, { NULL }, 1,
	  { { SYS_getpid, 0, EPERM_ } } }, /* 39 on x86_64 */
	{ "by number, NULL name", 1, { { NULL, SYS_getpid, 0, CONT } }, { NULL }, 0, { NULL }, 1,
	  { { SYS_getpid, 0, CONT } } },
	{ "name as a decimal string", 1, { BY_NAME(XSTR(SYS_getpid), 0, EIO_) }, { NULL }, 0,
	  { NULL }, 1, { { SYS_getpid, 0, EIO_ } } }, /* "39" on x86_64 */
	{ "name wins over number", 1, { { "getppid", SYS_getpid, 0, KILL } }, { NULL }, 0,
	  { NULL }, 1, { { SYS_getppid, 0, KILL } } },
	{ "number 0", 1, { BY_NR(0, 0, KILL) }, { NULL }, 0, { NULL }, 1, { { 0, 0, KILL } } },
	{ "sorted by order, Hello order among equals", 5,
	  { BY_NAME("openat", 2, KILL), BY_NAME("getpid", 0, EPERM_), BY_NR(SYS_getppid, 1, CONT),
	    BY_NAME("read", 0, EIO_), BY_NAME("write", 2, CONT) },
	  { NULL }, 0, { NULL }, 5,
	  { { SYS_getpid, 1, EPERM_ },
	    { SYS_read, 3, EIO_ },
	    { SYS_getppid, 2, CONT },
	    { SYS_openat, 0, KILL },
	    { SYS_write, 4, CONT } } },
	{ "equal orders keep Hello order", 3,
	  { BY_NAME("write", 7, KILL), BY_NAME("read", 7, EPERM_), BY_NAME("openat", 7, CONT) },
	  { NULL }, 0, { NULL }, 3,
	  { { SYS_write, 0, KILL }, { SYS_read, 1, EPERM_ }, { SYS_openat, 2, CONT } } },
	{ "same syscall twice, both kept", 2,
	  { BY_NAME("openat", 1, KILL), BY_NR(SYS_openat, 0, CONT) }, { NULL }, 0, { NULL }, 2,
	  { { SYS_openat, 1, CONT }, { SYS_openat, 0, KILL } } },
	{ "order UINT32_MAX sorts last", 2,
	  { BY_NAME("read", UINT32_MAX, KILL), BY_NAME("write", 0, KILL) }, { NULL }, 0, { NULL },
	  2, { { SYS_write, 1, KILL }, { SYS_read, 0, KILL } } },
	{ "extra deny of another syscall", 1, { BY_NAME("getppid", 0, KILL) }, { "getpid" }, 0,
	  { NULL }, 1, { { SYS_getppid, 0, KILL } } },

	/* Rejected, naming the syscall. */
	{ "negative number", 1, { BY_NR(-5, 0, KILL) }, { NULL }, -EINVAL,
	  { "syscall number -5", "not a valid syscall number" }, 0, { { 0 } } },
	{ "negative number as a name", 1, { BY_NAME("-5", 0, KILL) }, { NULL }, -EINVAL,
	  { "\"-5\"", "not a valid syscall number" }, 0, { { 0 } } },
	{ "malformed number as a name", 1, { BY_NAME("39x", 0, KILL) }, { NULL }, -EINVAL,
	  { "\"39x\"", "not a valid syscall number" }, 0, { { 0 } } },
	{ "INT64_MIN", 1, { BY_NR(INT64_MIN, 0, KILL) }, { NULL }, -EINVAL,
	  { "syscall number -9223372036854775808" }, 0, { { 0 } } },
	{ "unknown name", 1, { BY_NAME("nosuchcall", 0, KILL) }, { NULL }, -ENOENT,
	  { "\"nosuchcall\"", "no such syscall on this architecture" }, 0, { { 0 } } },
	{ "unknown number 99999", 1, { BY_NR(99999, 0, KILL) }, { NULL }, -ENOENT,
	  { "syscall number 99999", "no such syscall" }, 0, { { 0 } } },
	{ "unknown number 99999 as a name", 1, { BY_NAME("99999", 0, KILL) }, { NULL }, -ENOENT,
	  { "\"99999\"", "no such syscall" }, 0, { { 0 } } },
	/* The last slot of the per-syscall tables; no syscall on x86_64 or arm64. */
	{ "unknown number 1023", 1, { BY_NR(SYSCALLS_MAX - 1, 0, KILL) }, { NULL }, -ENOENT,
	  { "syscall number 1023", "no such syscall" }, 0, { { 0 } } },
	{ "number SYSCALLS_MAX", 1, { BY_NR(SYSCALLS_MAX, 0, KILL) }, { NULL }, -ENOENT,
	  { "syscall number 1024", "no such syscall" }, 0, { { 0 } } },
	{ "INT64_MAX", 1, { BY_NR(INT64_MAX, 0, KILL) }, { NULL }, -ENOENT,
	  { "syscall number 9223372036854775807" }, 0, { { 0 } } },
	{ "default deny: mount", 1, { BY_NAME("mount", 0, CONT) }, { NULL }, -EPERM,
	  { "\"mount\"", "deny list" }, 0, { { 0 } } },
	{ "default deny: ptrace", 1, { BY_NAME("ptrace", 0, CONT) }, { NULL }, -EPERM,
	  { "\"ptrace\"", "ptrace is on the deny list" }, 0, { { 0 } } },
	{ "default deny by number: mount", 1, { BY_NR(SYS_mount, 0, CONT) }, { NULL }, -EPERM,
	  { "syscall number " XSTR(SYS_mount), "mount is on the deny list" }, 0, { { 0 } } },
	{ "extra deny: getppid", 1, { BY_NAME("getppid", 0, KILL) }, { "getppid" }, -EPERM,
	  { "\"getppid\"", "getppid is on the deny list" }, 0, { { 0 } } },
	{ "extra deny by number", 1, { BY_NR(SYS_getppid, 0, KILL) }, { "getppid" }, -EPERM,
	  { "syscall number " XSTR(SYS_getppid), "deny list" }, 0, { { 0 } } },
	/* The first bad registration is named, after good ones; nothing is
	 * returned. */
	{ "bad after good ones", 3,
	  { BY_NAME("read", 0, KILL), BY_NAME("ptrace", 1, KILL), BY_NAME("nosuchcall", 2, KILL) },
	  { NULL }, -EPERM, { "\"ptrace\"", "deny list" }, 0, { { 0 } } },
};

/* A Hello and the strings its registrations point to (char *, not const,
 * in protobuf-c). */
struct hello {
	Sysgate__V1__Hello msg;
	Sysgate__V1__Registration regs[MAX_REGS];
	Sysgate__V1__Registration *reg_ptrs[MAX_REGS];
	char names[MAX_REGS][32];
};

static void build_hello(struct hello *h, const struct reg_in *in, size_t n)
{
	assert_true(n <= MAX_REGS);
	sysgate__v1__hello__init(&h->msg);
	for (size_t i = 0; i < n; i++) {
		Sysgate__V1__Registration *r = &h->regs[i];
		sysgate__v1__registration__init(r);
		r->syscall_nr = in[i].nr;
		if (in[i].name) {
			assert_true(strlen(in[i].name) < sizeof(h->names[i]));
			strcpy(h->names[i], in[i].name);
			r->syscall_name = h->names[i];
		} else {
			r->syscall_name = NULL;
		}
		r->order = in[i].order;
		r->on_exception = in[i].policy;
		h->reg_ptrs[i] = r;
	}
	h->msg.n_registrations = n;
	h->msg.registrations = n ? h->reg_ptrs : NULL;
}

/* The default deny list plus extra names. */
static void build_deny(bool deny[SYSCALLS_MAX], const char *const *extra, size_t n_extra)
{
	memset(deny, 0, SYSCALLS_MAX * sizeof(*deny));
	for (size_t i = 0; syscalls_default_deny[i]; i++) {
		long nr = syscalls_resolve(syscalls_default_deny[i]);
		if (nr >= 0) /* not every name exists on every architecture */
			deny[nr] = true;
	}
	for (size_t i = 0; i < n_extra && extra[i]; i++) {
		long nr = syscalls_resolve(extra[i]);
		assert_in_range(nr, 0, SYSCALLS_MAX - 1);
		deny[nr] = true;
	}
}

static void test_resolve(void **state)
{
	const struct resolve_case *c = *state;
	struct hello h;
	bool deny[SYSCALLS_MAX];
	build_hello(&h, c->regs, c->n_regs);
	build_deny(deny, c->extra_deny, MAX_DENY);

	struct registration *out = (void *)&h; /* must be reset */
	size_t n = 99;
	struct sg_err err = { "" };
	int r = registry_resolve(&h.msg, deny, &out, &n, &err);

	if (c->want == 0 && r != 0)
		fail_msg("rejected: %s", err.msg);
	assert_int_equal(r, c->want);
	for (size_t i = 0; i < MAX_MSGS && c->msg[i]; i++)
		if (!strstr(err.msg, c->msg[i]))
			fail_msg("message \"%s\" does not contain \"%s\"", err.msg, c->msg[i]);

	if (c->want < 0) {
		assert_null(out);
		assert_int_equal(n, 0);
		return;
	}
	assert_int_equal(n, c->n_out);
	if (n)
		assert_non_null(out);
	for (size_t i = 0; i < n; i++) {
		if (out[i].nr != c->out[i].nr || out[i].index != c->out[i].index ||
		    out[i].policy != c->out[i].policy)
			fail_msg("registration %zu is { nr %ld, index %u, policy %u }, want "
				 "{ nr %ld, index %u, policy %u }",
				 i, out[i].nr, out[i].index, out[i].policy, c->out[i].nr,
				 c->out[i].index, c->out[i].policy);
	}
	free(out);
}

/* ---- registry_equal ------------------------------------------------------ */

#define MAX_SET 3

struct equal_case {
	const char *name;
	size_t n_a;
	struct registration a[MAX_SET];
	size_t n_b;
	struct registration b[MAX_SET];
	bool want;
};

static struct equal_case equal_cases[] = {
	{ "equal: both empty", 0, { { 0 } }, 0, { { 0 } }, true },
	{ "equal: same one", 1, { { 39, 0, 1 } }, 1, { { 39, 0, 1 } }, true },
	{ "equal: same three", 3, { { 39, 1, 0 }, { 0, 2, 3 }, { 257, 0, 2 } }, 3,
	  { { 39, 1, 0 }, { 0, 2, 3 }, { 257, 0, 2 } }, true },
	{ "equal: different nr", 1, { { 39, 0, 1 } }, 1, { { 40, 0, 1 } }, false },
	{ "equal: different index", 1, { { 39, 0, 1 } }, 1, { { 39, 1, 1 } }, false },
	{ "equal: different policy", 1, { { 39, 0, 1 } }, 1, { { 39, 0, 2 } }, false },
	{ "equal: difference in the last", 3, { { 39, 0, 0 }, { 0, 1, 0 }, { 257, 2, 0 } }, 3,
	  { { 39, 0, 0 }, { 0, 1, 0 }, { 257, 2, 3 } }, false },
	{ "equal: same set, other order", 2, { { 39, 0, 0 }, { 0, 1, 0 } }, 2,
	  { { 0, 1, 0 }, { 39, 0, 0 } }, false },
	{ "equal: one more", 2, { { 39, 0, 0 }, { 0, 1, 0 } }, 3,
	  { { 39, 0, 0 }, { 0, 1, 0 }, { 257, 2, 0 } }, false },
	{ "equal: empty and one", 0, { { 0 } }, 1, { { 0, 0, 0 } }, false },
};

static void test_equal(void **state)
{
	const struct equal_case *c = *state;
	/* Exactly sized copies: a read past n is caught by the sanitizer build. */
	struct registration *a = malloc((c->n_a ? c->n_a : 1) * sizeof(*a));
	struct registration *b = malloc((c->n_b ? c->n_b : 1) * sizeof(*b));
	assert_non_null(a);
	assert_non_null(b);
	memcpy(a, c->a, c->n_a * sizeof(*a));
	memcpy(b, c->b, c->n_b * sizeof(*b));

	assert_int_equal(registry_equal(a, c->n_a, b, c->n_b), c->want);
	assert_int_equal(registry_equal(b, c->n_b, a, c->n_a), c->want);
	assert_true(registry_equal(a, c->n_a, a, c->n_a));
	free(a);
	free(b);
}

/* ---- Fixed tests --------------------------------------------------------- */

/* Resolves a Hello registering only syscall `name` (order 0, KILL). */
static int resolve_one(const char *name, const bool deny[SYSCALLS_MAX], struct registration **out,
		       size_t *n, struct sg_err *err)
{
	struct reg_in in = BY_NAME(name, 0, KILL);
	struct hello h;
	build_hello(&h, &in, 1);
	return registry_resolve(&h.msg, deny, out, n, err);
}

/* A restarted worker that sends the same Hello resolves to an equal set;
 * one that changes a policy does not. */
static void test_restart_same_hello(void **state)
{
	(void)state;
	static const struct reg_in regs[] = {
		BY_NAME("openat", 1, KILL),
		BY_NR(SYS_getpid, 0, CONT),
		BY_NAME("read", 1, EIO_),
	};
	struct hello h;
	bool deny[SYSCALLS_MAX];
	build_hello(&h, regs, ARRAY_SIZE(regs));
	build_deny(deny, NULL, 0);
	struct sg_err err = { "" };

	_cleanup_free_ struct registration *first = NULL;
	size_t n_first = 0;
	assert_int_equal(registry_resolve(&h.msg, deny, &first, &n_first, &err), 0);
	_cleanup_free_ struct registration *again = NULL;
	size_t n_again = 0;
	assert_int_equal(registry_resolve(&h.msg, deny, &again, &n_again, &err), 0);
	assert_true(registry_equal(first, n_first, again, n_again));

	h.regs[2].on_exception = KILL;
	_cleanup_free_ struct registration *changed = NULL;
	size_t n_changed = 0;
	assert_int_equal(registry_resolve(&h.msg, deny, &changed, &n_changed, &err), 0);
	assert_false(registry_equal(first, n_first, changed, n_changed));
}

/* Every name on the default deny list that the architecture has is
 * refused. */
static void test_every_default_deny(void **state)
{
	(void)state;
	bool deny[SYSCALLS_MAX];
	build_deny(deny, NULL, 0);
	for (size_t i = 0; syscalls_default_deny[i]; i++) {
		const char *name = syscalls_default_deny[i];
		struct registration *out = NULL;
		size_t n = 0;
		struct sg_err err = { "" };
		int r = resolve_one(name, deny, &out, &n, &err);
		int want = syscalls_resolve(name) >= 0 ? -EPERM : -ENOENT;
		if (r != want)
			fail_msg("%s: got %d (%s), want %d", name, r, err.msg, want);
		assert_null(out);
	}
}

/* exit and exit_group are never registrable; process-creating and exec
 * syscalls are observe-or-deny; anything else is not. */
static void test_exit_and_observe_only(void **state)
{
	(void)state;
	bool deny[SYSCALLS_MAX];
	build_deny(deny, NULL, 0);
	static const struct {
		const char *name;
		int result;
		bool observe_only;
	} rows[] = {
		{ "exit", -EPERM, false },    { "exit_group", -EPERM, false },
		{ "execve", 0, true },        { "execveat", 0, true },
		{ "clone", 0, true },         { "clone3", 0, true },
		{ "fork", 0, true },          { "vfork", 0, true },
		{ "openat", 0, false },       { "getpid", 0, false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct registration *out = NULL;
		size_t n = 0;
		struct sg_err err = { "" };
		int r = resolve_one(rows[i].name, deny, &out, &n, &err);
		if (r != rows[i].result)
			fail_msg("%s: got %d (%s), want %d", rows[i].name, r, err.msg,
				 rows[i].result);
		if (r < 0) {
			assert_non_null(strstr(err.msg, "must always be able to exit"));
			assert_null(out);
			continue;
		}
		assert_int_equal(n, 1);
		if (out[0].observe_only != rows[i].observe_only)
			fail_msg("%s: observe_only %d", rows[i].name, out[0].observe_only);
		free(out);
	}
}

static const struct CMUnitTest fixed_tests[] = {
	cmocka_unit_test(test_restart_same_hello),
	cmocka_unit_test(test_every_default_deny),
	cmocka_unit_test(test_exit_and_observe_only),
};

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(fixed_tests) + ARRAY_SIZE(resolve_cases) +
				ARRAY_SIZE(equal_cases)];
	size_t n = 0;
	UNIT_TESTS(tests, n, fixed_tests);
	UNIT_ROWS(tests, n, test_resolve, resolve_cases);
	UNIT_ROWS(tests, n, test_equal, equal_cases);
	return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
