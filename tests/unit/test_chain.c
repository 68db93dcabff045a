/* Handler chains: order, first non-continue wins, fail closed on an invalid
 * action. The handlers are fakes that answer from a table. */
#include "unit.h"

#include <signal.h>
#include <string.h>
#include <sys/syscall.h>

#include "chain.h"

#define MAX_LINKS 3

static const char *const link_names[MAX_LINKS] = { "first", "second", "third" };

/* A fake handler's state: what it answers and what it saw. */
struct fake {
	struct action answer;
	unsigned calls;
	unsigned called_at; /* value of *clock after the call: the call order */
	unsigned *clock;
	const struct seccomp_notif *req;
	const struct childmem *mem;
};

static void fake_handler(void *state, const struct seccomp_notif *req,
			 const struct childmem *mem, struct action *out)
{
	struct fake *f = state;
	f->calls++;
	f->called_at = ++*f->clock;
	f->req = req;
	f->mem = mem;
	*out = f->answer;
}

#define CONTINUE { ACTION_CONTINUE, 0 }
#define ERRNO(e) { ACTION_ERRNO, (e) }
#define RETURN(v) { ACTION_RETURN, (v) }
#define KILL(sig) { ACTION_KILL, (sig) }

struct run_case {
	const char *name;
	unsigned n_links;
	struct action answers[MAX_LINKS];
	int decider; /* index of the deciding link, -1: none (NULL) */
	struct action want;
	unsigned calls[MAX_LINKS];
};

static struct run_case run_cases[] = {
	{ "empty chain continues", 0, { CONTINUE }, -1, CONTINUE, { 0 } },
	{ "one link continues", 1, { CONTINUE }, -1, CONTINUE, { 1 } },
	{ "two links continue, both called", 2, { CONTINUE, CONTINUE }, -1, CONTINUE,
	  { 1, 1 } },
	{ "second answers errno", 2, { CONTINUE, ERRNO(EACCES) }, 1, ERRNO(EACCES), { 1, 1 } },
	{ "first errno wins, second not called", 2, { ERRNO(EPERM), ERRNO(EACCES) }, 0,
	  ERRNO(EPERM), { 1, 0 } },
	{ "first return wins", 2, { RETURN(0), ERRNO(EACCES) }, 0, RETURN(0), { 1, 0 } },
	{ "negative return value passes", 1, { RETURN(-1) }, 0, RETURN(-1), { 1 } },
	{ "middle kill wins, third not called", 3, { CONTINUE, KILL(SIGKILL), ERRNO(EIO) }, 1,
	  KILL(SIGKILL), { 1, 1, 0 } },
	{ "errno 4095 is valid", 1, { ERRNO(4095) }, 0, ERRNO(4095), { 1 } },
	{ "kill 64 is valid", 1, { KILL(64) }, 0, KILL(64), { 1 } },

	/* Invalid actions fail closed as EPERM decided by the link. */
	{ "errno 0 fails closed", 2, { ERRNO(0), CONTINUE }, 0, ERRNO(EPERM), { 1, 0 } },
	{ "errno 4096 fails closed", 2, { ERRNO(4096), CONTINUE }, 0, ERRNO(EPERM), { 1, 0 } },
	{ "errno -1 fails closed", 1, { ERRNO(-1) }, 0, ERRNO(EPERM), { 1 } },
	{ "kill 0 fails closed", 2, { KILL(0), CONTINUE }, 0, ERRNO(EPERM), { 1, 0 } },
	{ "kill 65 fails closed", 2, { KILL(65), CONTINUE }, 0, ERRNO(EPERM), { 1, 0 } },
	{ "unknown kind fails closed", 1, { { (enum action_kind)42, 0 } }, 0, ERRNO(EPERM),
	  { 1 } },
	{ "invalid second after continue", 3, { CONTINUE, ERRNO(0), CONTINUE }, 1,
	  ERRNO(EPERM), { 1, 1, 0 } },
};

static struct chain_table *table_new(void)
{
	struct chain_table *t = malloc(sizeof(*t));
	assert_non_null(t);
	chain_table_init(t);
	return t;
}

static void table_delete(struct chain_table *t)
{
	chain_table_free(t);
	free(t);
}

/* Appends to openat's chain one fake link per answer, named in order, all
 * on *clock. */
static void append_fakes(struct chain_table *t, unsigned n, const struct action *answers,
			 struct fake *fakes, unsigned *clock)
{
	for (unsigned i = 0; i < n; i++) {
		fakes[i] = (struct fake){ .answer = answers[i], .clock = clock };
		struct chain_link link = { link_names[i], fake_handler, &fakes[i] };
		assert_int_equal(chain_append(t, SYS_openat, &link), 0);
	}
}

/* Runs the chain for req, which must answer want: the deciding link. */
static const struct chain_link *run_want(const struct chain_table *t,
					 const struct seccomp_notif *req, struct action want)
{
	struct action out = { ACTION_KILL, 99 };
	const struct chain_link *decider = chain_run(t, req, NULL, &out);
	assert_int_equal(out.kind, want.kind);
	assert_int_equal(out.value, want.value);
	return decider;
}

/* No syscall but `except` (-1: none) has a link, a hop or a trap. */
static void assert_empty_but(const struct chain_table *t, long except)
{
	for (long nr = 0; nr < SYSCALLS_MAX; nr++) {
		if (nr == except)
			continue;
		assert_int_equal(t->by_nr[nr].n, 0);
		assert_null(t->by_nr[nr].links);
		assert_int_equal(t->by_nr[nr].n_hops, 0);
		assert_null(t->by_nr[nr].hops);
		assert_false(t->trapped[nr]);
	}
}

static void test_run(void **state)
{
	const struct run_case *c = *state;
	struct chain_table *t = table_new();
	struct fake fakes[MAX_LINKS];
	unsigned clock = 0;

	append_fakes(t, c->n_links, c->answers, fakes, &clock);
	assert_int_equal(chain_trap(t, SYS_openat), 0);

	struct seccomp_notif req = { .id = 7, .pid = 42 };
	req.data.nr = SYS_openat;
	const struct chain_link *decider = run_want(t, &req, c->want);

	if (c->decider < 0) {
		assert_null(decider);
	} else {
		assert_non_null(decider);
		assert_string_equal(decider->name, link_names[c->decider]);
		assert_ptr_equal(decider->state, &fakes[c->decider]);
	}
	for (unsigned i = 0; i < c->n_links; i++) {
		assert_int_equal(fakes[i].calls, c->calls[i]);
		if (!fakes[i].calls)
			continue;
		assert_ptr_equal(fakes[i].req, &req);
		assert_null(fakes[i].mem);
		/* Called in chain order: the k-th link called is link k. */
		assert_int_equal(fakes[i].called_at, i + 1);
	}

	table_delete(t);
}

/* A request for another syscall, or out of range, runs no handler. */
static void test_run_other_nr(void **state)
{
	(void)state;
	static const int other_nrs[] = { SYS_getpid, -1, SYSCALLS_MAX };
	struct chain_table *t = table_new();
	unsigned clock = 0;
	struct fake f = { .answer = ERRNO(EACCES), .clock = &clock };
	struct chain_link link = { "first", fake_handler, &f };
	assert_int_equal(chain_append(t, SYS_openat, &link), 0);

	for (size_t i = 0; i < ARRAY_SIZE(other_nrs); i++) {
		struct seccomp_notif req = { 0 };
		req.data.nr = other_nrs[i];
		assert_null(run_want(t, &req, (struct action)CONTINUE));
	}
	assert_int_equal(f.calls, 0);

	table_delete(t);
}

struct append_case {
	const char *name;
	long nr;
	bool null_link;
	bool null_fn;
	int want;
};

static struct append_case append_cases[] = {
	{ "append nr 0", 0, false, false, 0 },
	{ "append nr SYSCALLS_MAX-1", SYSCALLS_MAX - 1, false, false, 0 },
	{ "append nr -1", -1, false, false, -EINVAL },
	{ "append nr SYSCALLS_MAX", SYSCALLS_MAX, false, false, -EINVAL },
	{ "append NULL link", SYS_openat, true, false, -EINVAL },
	{ "append link without fn", SYS_openat, false, true, -EINVAL },
};

static void test_append(void **state)
{
	const struct append_case *c = *state;
	struct chain_table *t = table_new();
	unsigned clock = 0;
	struct fake f = { .answer = CONTINUE, .clock = &clock };
	struct chain_link link = { "first", c->null_fn ? NULL : fake_handler, &f };

	assert_int_equal(chain_append(t, c->nr, c->null_link ? NULL : &link), c->want);
	if (c->want == 0) {
		assert_int_equal(t->by_nr[c->nr].n, 1);
		assert_int_equal(t->by_nr[c->nr].n_hops, 0);
		assert_true(t->trapped[c->nr]);
	}
	assert_empty_but(t, c->want == 0 ? c->nr : -1);

	table_delete(t);
}

static void test_trap(void **state)
{
	(void)state;
	struct chain_table *t = table_new();

	assert_int_equal(chain_trap(t, SYS_getpid), 0);
	assert_true(t->trapped[SYS_getpid]);
	assert_int_equal(t->by_nr[SYS_getpid].n, 0);
	assert_int_equal(chain_trap(t, -1), -EINVAL);
	assert_int_equal(chain_trap(t, SYSCALLS_MAX), -EINVAL);

	struct seccomp_notif req = { 0 };
	req.data.nr = SYS_getpid;
	assert_null(run_want(t, &req, (struct action)CONTINUE));

	table_delete(t);
}

/* ---- Worker hops -------------------------------------------------------- */

/* Stand-ins for workers: the chain only stores the pointer. */
static char fake_workers[3];
#define FAKE_WORKER(i) ((struct worker *)&fake_workers[(i)])

struct append_hop_case {
	const char *name;
	long nr;
	bool null_hop;
	bool null_worker;
	int want;
};

static struct append_hop_case append_hop_cases[] = {
	{ "append hop nr 0", 0, false, false, 0 },
	{ "append hop nr SYSCALLS_MAX-1", SYSCALLS_MAX - 1, false, false, 0 },
	{ "append hop nr -1", -1, false, false, -EINVAL },
	{ "append hop nr SYSCALLS_MAX", SYSCALLS_MAX, false, false, -EINVAL },
	{ "append NULL hop", SYS_openat, true, false, -EINVAL },
	{ "append hop without worker", SYS_openat, false, true, -EINVAL },
};

static void test_append_hop(void **state)
{
	const struct append_hop_case *c = *state;
	struct chain_table *t = table_new();
	struct chain_hop hop = { c->null_worker ? NULL : FAKE_WORKER(0), 5, 2 };

	assert_int_equal(chain_append_hop(t, c->nr, c->null_hop ? NULL : &hop), c->want);
	if (c->want == 0) {
		const struct chain *ch = &t->by_nr[c->nr];
		assert_int_equal(ch->n_hops, 1);
		assert_ptr_equal(ch->hops[0].worker, FAKE_WORKER(0));
		assert_int_equal(ch->hops[0].reg, 5);
		assert_int_equal(ch->hops[0].policy, 2);
		assert_int_equal(ch->n, 0); /* a hop is not a builtin link */
		assert_true(t->trapped[c->nr]);
	}
	assert_empty_but(t, c->want == 0 ? c->nr : -1);

	table_delete(t);
}

/* Hops of several workers stay in the order they were appended, apart from
 * the builtin links and per syscall. */
static void test_hops_in_order(void **state)
{
	(void)state;
	static const struct chain_hop hops[] = {
		{ FAKE_WORKER(0), 0, 0 },
		{ FAKE_WORKER(1), 3, 1 },
		{ FAKE_WORKER(0), 1, 2 },
		{ FAKE_WORKER(2), 0, 3 },
	};
	struct chain_table *t = table_new();
	unsigned clock = 0;
	struct fake f = { .answer = CONTINUE, .clock = &clock };
	struct chain_link link = { "first", fake_handler, &f };

	assert_int_equal(chain_append_hop(t, SYS_openat, &hops[0]), 0);
	assert_int_equal(chain_append(t, SYS_openat, &link), 0);
	for (size_t i = 1; i < ARRAY_SIZE(hops); i++)
		assert_int_equal(chain_append_hop(t, SYS_openat, &hops[i]), 0);
	assert_int_equal(chain_append_hop(t, SYS_getpid, &hops[3]), 0);

	const struct chain *c = &t->by_nr[SYS_openat];
	assert_int_equal(c->n, 1);
	assert_int_equal(c->n_hops, ARRAY_SIZE(hops));
	for (size_t i = 0; i < ARRAY_SIZE(hops); i++) {
		assert_ptr_equal(c->hops[i].worker, hops[i].worker);
		assert_int_equal(c->hops[i].reg, hops[i].reg);
		assert_int_equal(c->hops[i].policy, hops[i].policy);
	}
	assert_true(t->trapped[SYS_openat]);
	assert_int_equal(t->by_nr[SYS_getpid].n_hops, 1);
	assert_ptr_equal(t->by_nr[SYS_getpid].hops[0].worker, FAKE_WORKER(2));
	assert_true(t->trapped[SYS_getpid]);

	table_delete(t);
}

struct hops_run_case {
	const char *name;
	unsigned n_links;
	struct action answers[MAX_LINKS];
	int decider; /* index of the deciding link, -1: none (NULL) */
	struct action want;
};

/* chain_run answers from the builtin links only: hops are the router's. */
static struct hops_run_case hops_run_cases[] = {
	{ "hops only: run continues", 0, { CONTINUE }, -1, CONTINUE },
	{ "hops after a continuing link: run continues", 1, { CONTINUE }, -1, CONTINUE },
	{ "hops after a deciding link: the link decides", 2, { CONTINUE, ERRNO(EACCES) }, 1,
	  ERRNO(EACCES) },
	{ "hops after an invalid link: fails closed", 1, { KILL(0) }, 0, ERRNO(EPERM) },
};

static void test_run_with_hops(void **state)
{
	const struct hops_run_case *c = *state;
	struct chain_table *t = table_new();
	struct fake fakes[MAX_LINKS];
	unsigned clock = 0;
	struct chain_hop hop = { FAKE_WORKER(0), 0, 0 };

	assert_int_equal(chain_append_hop(t, SYS_openat, &hop), 0);
	append_fakes(t, c->n_links, c->answers, fakes, &clock);
	hop.reg = 1;
	assert_int_equal(chain_append_hop(t, SYS_openat, &hop), 0);

	struct seccomp_notif req = { .id = 7, .pid = 42 };
	req.data.nr = SYS_openat;
	const struct chain_link *decider = run_want(t, &req, c->want);

	if (c->decider < 0) {
		assert_null(decider);
	} else {
		assert_non_null(decider);
		assert_ptr_equal(decider, &t->by_nr[SYS_openat].links[c->decider]);
	}
	/* Running does not consume or reorder the hops. */
	assert_int_equal(t->by_nr[SYS_openat].n_hops, 2);
	assert_int_equal(t->by_nr[SYS_openat].hops[0].reg, 0);
	assert_int_equal(t->by_nr[SYS_openat].hops[1].reg, 1);

	table_delete(t);
}

/* chain_table_free releases hops and links on every syscall (the sanitizer
 * build reports a leak otherwise) and leaves an empty table that can be
 * filled again. */
static void test_free_hops(void **state)
{
	(void)state;
	static const long nrs[] = { 0, SYS_openat, SYS_getpid, SYSCALLS_MAX - 1 };
	struct chain_table *t = table_new();
	unsigned clock = 0;
	struct fake f = { .answer = CONTINUE, .clock = &clock };
	struct chain_link link = { "first", fake_handler, &f };

	for (size_t i = 0; i < ARRAY_SIZE(nrs); i++) {
		for (uint32_t k = 0; k < 5; k++) {
			struct chain_hop hop = { FAKE_WORKER(k % 3), k, k % 4 };
			assert_int_equal(chain_append_hop(t, nrs[i], &hop), 0);
		}
		if (i % 2)
			assert_int_equal(chain_append(t, nrs[i], &link), 0);
	}
	chain_table_free(t);
	assert_empty_but(t, -1);

	struct chain_hop hop = { FAKE_WORKER(1), 9, 1 };
	assert_int_equal(chain_append_hop(t, SYS_openat, &hop), 0);
	assert_int_equal(t->by_nr[SYS_openat].n_hops, 1);
	table_delete(t);
}

struct valid_case {
	const char *name;
	struct action action;
	bool valid;
};

static struct valid_case valid_cases[] = {
	{ "valid: continue", CONTINUE, true },
	{ "valid: errno 1", ERRNO(1), true },
	{ "valid: errno 4095", ERRNO(4095), true },
	{ "valid: errno 0", ERRNO(0), false },
	{ "valid: errno 4096", ERRNO(4096), false },
	{ "valid: errno -1", ERRNO(-1), false },
	{ "valid: return 0", RETURN(0), true },
	{ "valid: return INT64_MIN", RETURN(INT64_MIN), true },
	{ "valid: return INT64_MAX", RETURN(INT64_MAX), true },
	{ "valid: kill SIGKILL", KILL(SIGKILL), true },
	{ "valid: kill 64", KILL(64), true },
	{ "valid: kill 0", KILL(0), false },
	{ "valid: kill 65", KILL(65), false },
	{ "valid: kill -9", KILL(-9), false },
	{ "valid: unknown kind", { (enum action_kind)42, 0 }, false },
};

static void test_action_valid(void **state)
{
	const struct valid_case *c = *state;
	assert_int_equal(action_valid(&c->action), c->valid);
}

static void test_action_name(void **state)
{
	(void)state;
	static const struct {
		enum action_kind kind;
		const char *name;
	} names[] = {
		{ ACTION_CONTINUE, "continue" },
		{ ACTION_ERRNO, "errno" },
		{ ACTION_RETURN, "return" },
		{ ACTION_KILL, "kill" },
		{ (enum action_kind)42, "invalid" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		assert_string_equal(action_name(names[i].kind), names[i].name);
}

static const struct CMUnitTest fixed_tests[] = {
	cmocka_unit_test(test_run_other_nr),
	cmocka_unit_test(test_trap),
	cmocka_unit_test(test_action_name),
	cmocka_unit_test(test_hops_in_order),
	cmocka_unit_test(test_free_hops),
};

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(fixed_tests) + ARRAY_SIZE(run_cases) +
				ARRAY_SIZE(append_cases) + ARRAY_SIZE(append_hop_cases) +
				ARRAY_SIZE(hops_run_cases) + ARRAY_SIZE(valid_cases)];
	size_t n = 0;
	UNIT_TESTS(tests, n, fixed_tests);
	UNIT_ROWS(tests, n, test_run, run_cases);
	UNIT_ROWS(tests, n, test_append, append_cases);
	UNIT_ROWS(tests, n, test_append_hop, append_hop_cases);
	UNIT_ROWS(tests, n, test_run_with_hops, hops_run_cases);
	UNIT_ROWS(tests, n, test_action_valid, valid_cases);
	return cmocka_run_group_tests_name("chain", tests, NULL, NULL);
}
