/* Syscall names and numbers, the default deny list, the path-argument
 * table. */
#include "unit.h"

#include <string.h>
#include <sys/syscall.h>

#include "syscalls.h"

#define STR(x) #x
#define XSTR(x) STR(x)

struct resolve_case {
	const char *name;
	const char *input;
	long want;
};

static struct resolve_case resolve_cases[] = {
	{ "resolve openat", "openat", SYS_openat },
	{ "resolve getpid", "getpid", SYS_getpid },
	{ "resolve the number of openat", XSTR(SYS_openat), SYS_openat }, /* "257" on x86_64 */
	{ "resolve 0", "0", 0 },
	{ "resolve NULL", NULL, -EINVAL },
	{ "resolve empty", "", -EINVAL },
	{ "resolve negative", "-3", -EINVAL },
	{ "resolve trailing junk", "12x", -EINVAL },
	{ "resolve overflow", "99999999999999999999", -EINVAL },
	{ "resolve unknown name", "nosuch", -ENOENT },
	{ "resolve undefined number", "999", -ENOENT },
	{ "resolve SYSCALLS_MAX", XSTR(SYSCALLS_MAX), -ENOENT },
	/* A libseccomp pseudo-syscall (negative number) on x86_64 and arm64. */
	{ "resolve socketcall", "socketcall", -ENOENT },
};

static void test_resolve(void **state)
{
	const struct resolve_case *c = *state;
	assert_int_equal(syscalls_resolve(c->input), c->want);
}

struct name_case {
	const char *name;
	long nr;
	const char *want;
};

static struct name_case name_cases[] = {
	{ "name of openat", SYS_openat, "openat" },
	{ "name of getpid", SYS_getpid, "getpid" },
	{ "name of -1", -1, NULL },
	{ "name of 999", 999, NULL },
	{ "name of SYSCALLS_MAX", SYSCALLS_MAX, NULL },
};

static void test_name(void **state)
{
	const struct name_case *c = *state;
	const char *got = syscalls_name(c->nr);
	if (c->want)
		assert_string_equal(got, c->want);
	else
		assert_null(got);
}

/* Each name that resolves names a syscall no other entry names. */
static void test_deny_list_unique(void **state)
{
	(void)state;
	for (size_t i = 0; syscalls_default_deny[i]; i++) {
		long nr = syscalls_resolve(syscalls_default_deny[i]);
		if (nr < 0)
			continue;
		for (size_t k = i + 1; syscalls_default_deny[k]; k++) {
			if (syscalls_resolve(syscalls_default_deny[k]) == nr)
				fail_msg("%s and %s are both %ld", syscalls_default_deny[i],
					 syscalls_default_deny[k], nr);
		}
	}
}

/* The deny list covers at least the list of docs/cli.md#default-deny-list. */
static void test_deny_list_covers_spec(void **state)
{
	(void)state;
	static const char *const spec[] = {
		"mount",	     "umount2",		  "pivot_root",	     "swapon",
		"swapoff",	     "reboot",		  "sethostname",     "setdomainname",
		"kexec_load",	     "init_module",	  "finit_module",    "delete_module",
		"unshare",	     "setns",		  "perf_event_open", "bpf",
		"userfaultfd",	     "keyctl",		  "add_key",	     "request_key",
		"ptrace",	     "process_vm_readv",  "process_vm_writev",
		"open_by_handle_at", "name_to_handle_at", "ioperm",	     "iopl",
		"quotactl",	     "acct",		  "lookup_dcookie",  "nfsservctl",
		"io_uring_setup",    "io_uring_enter",	  "io_uring_register",
		"personality",
	};
	for (size_t i = 0; i < ARRAY_SIZE(spec); i++) {
		bool found = false;
		for (size_t k = 0; syscalls_default_deny[k] && !found; k++)
			found = strcmp(syscalls_default_deny[k], spec[i]) == 0;
		if (!found)
			fail_msg("%s is missing from the default deny list", spec[i]);
	}
}

struct path_case {
	const char *name;
	long nr;
	unsigned n;
	unsigned idx[2];
};

static struct path_case path_cases[] = {
	{ "paths of openat", SYS_openat, 1, { 1 } },
	{ "paths of execve", SYS_execve, 1, { 0 } },
	{ "paths of execveat", SYS_execveat, 1, { 1 } },
	{ "paths of newfstatat", SYS_newfstatat, 1, { 1 } },
	{ "paths of renameat2", SYS_renameat2, 2, { 1, 3 } },
	{ "paths of linkat", SYS_linkat, 2, { 1, 3 } },
	{ "paths of symlinkat", SYS_symlinkat, 2, { 0, 2 } },
#ifdef SYS_rename
	{ "paths of rename", SYS_rename, 2, { 0, 1 } },
#endif
	{ "paths of getpid", SYS_getpid, 0, { 0 } },
	{ "paths of -1", -1, 0, { 0 } },
};

static void test_path_args(void **state)
{
	const struct path_case *c = *state;
	unsigned idx[2] = { 99, 99 }; /* entries past the count stay untouched */
	assert_int_equal(syscalls_path_args(c->nr, idx), c->n);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(idx[i], i < c->n ? c->idx[i] : 99);
}

static const struct CMUnitTest fixed_tests[] = {
	cmocka_unit_test(test_deny_list_unique),
	cmocka_unit_test(test_deny_list_covers_spec),
};

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(fixed_tests) + ARRAY_SIZE(resolve_cases) +
				ARRAY_SIZE(name_cases) + ARRAY_SIZE(path_cases)];
	size_t n = 0;
	UNIT_TESTS(tests, n, fixed_tests);
	UNIT_ROWS(tests, n, test_resolve, resolve_cases);
	UNIT_ROWS(tests, n, test_name, name_cases);
	UNIT_ROWS(tests, n, test_path_args, path_cases);
	return cmocka_run_group_tests_name("syscalls", tests, NULL, NULL);
}
