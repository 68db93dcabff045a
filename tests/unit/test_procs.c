/* The kill guard rail (issue 5): the supervisor signals, on a worker's
 * behalf, only a process of the sandbox. One row per refusal. */
#include "unit.h"

#include "procs.h"

#define SELF 100
#define WORKER 200

/* The sandbox as the supervisor's scan saw it (workers' subtrees left out). */
static struct proc_entry sandbox_entries[] = {
	{ .pid = 101, .ppid = SELF },
	{ .pid = 102, .ppid = 101 },
	{ .pid = 103, .ppid = SELF, .zombie = true },
};
static const struct proc_list sandbox = { sandbox_entries, 3 };

/* A scan that (wrongly: stale, or pids reused) lists what must never be
 * signalled: each guard must refuse on its own, not only by absence. */
static struct proc_entry poisoned_entries[] = {
	{ .pid = 0, .ppid = SELF },   { .pid = -1, .ppid = SELF },
	{ .pid = 1, .ppid = SELF },   { .pid = SELF, .ppid = SELF },
	{ .pid = WORKER, .ppid = SELF }, { .pid = -101, .ppid = SELF },
};
static const struct proc_list poisoned = { poisoned_entries, ARRAY_SIZE(poisoned_entries) };
static const pid_t helpers[] = { WORKER };

struct row {
	const char *name;
	pid_t tgid;
	bool allowed;
	const struct proc_list *scan;
};

static struct row rows[] = {
	{ "a sandbox process", 101, true },
	{ "its child", 102, true },
	{ "a zombie of the sandbox (harmless)", 103, true },
	{ "pid 0: the caller's process group", 0, false },
	{ "pid -1: every process", -1, false },
	{ "a negative pid: a process group", -101, false },
	{ "init", 1, false },
	{ "the supervisor", SELF, false },
	{ "a worker", WORKER, false },
	{ "a process that left the sandbox (or never was in it)", 4242, false },
	{ "pid 0, even listed", 0, false, &poisoned },
	{ "pid -1, even listed", -1, false, &poisoned },
	{ "a process group, even listed", -101, false, &poisoned },
	{ "init, even listed", 1, false, &poisoned },
	{ "the supervisor, even listed", SELF, false, &poisoned },
	{ "a worker, even listed", WORKER, false, &poisoned },
};

static void test_row(void **state)
{
	const struct row *r = *state;
	bool got = procs_may_signal(r->tgid, SELF, helpers, 1, r->scan ? r->scan : &sandbox);
	if (got != r->allowed)
		fail_msg("%s (pid %d): got %d, want %d", r->name, (int)r->tgid, got, r->allowed);
}

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(rows)];
	size_t n = 0;
	UNIT_ROWS(tests, n, test_row, rows);
	return cmocka_run_group_tests_name("procs", tests, NULL, NULL);
}
