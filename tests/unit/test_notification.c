/* What both threads do with one notification: the one Action -> action
 * translation, the Snapshot, and the audit record's fill. */
#include "unit.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "notification.h"

enum kind { K_CONTINUE, K_ERRNO, K_RETURN, K_KILL, K_INJECT, K_FAIL, K_UNKNOWN };

struct action_case {
	const char *name;
	enum kind kind;
	int64_t value;
	bool observe_only;
	enum notification_answer want;
	struct action want_action; /* for NOTIFICATION_ACTION */
};

static struct action_case action_cases[] = {
	{ "continue", K_CONTINUE, 0, false, NOTIFICATION_ACTION, { ACTION_CONTINUE, 0 } },
	{ "errno", K_ERRNO, EACCES, false, NOTIFICATION_ACTION, { ACTION_ERRNO, EACCES } },
	{ "return", K_RETURN, -7, false, NOTIFICATION_ACTION, { ACTION_RETURN, -7 } },
	{ "kill", K_KILL, SIGTERM, false, NOTIFICATION_ACTION, { ACTION_KILL, SIGTERM } },
	{ "inject_bytes: the caller's", K_INJECT, 0, false, NOTIFICATION_INJECT, { 0, 0 } },
	{ "a reported failure", K_FAIL, 0, false, NOTIFICATION_FAILED, { 0, 0 } },
	{ "an unknown kind: never a continue",
	  K_UNKNOWN,
	  0,
	  false,
	  NOTIFICATION_UNKNOWN,
	  { 0, 0 } },
	{ "observe-only: continue",
	  K_CONTINUE,
	  0,
	  true,
	  NOTIFICATION_ACTION,
	  { ACTION_CONTINUE, 0 } },
	{ "observe-only: errno",
	  K_ERRNO,
	  EPERM,
	  true,
	  NOTIFICATION_ACTION,
	  { ACTION_ERRNO, EPERM } },
	{ "observe-only: kill",
	  K_KILL,
	  SIGKILL,
	  true,
	  NOTIFICATION_ACTION,
	  { ACTION_KILL, SIGKILL } },
	{ "observe-only: return refused", K_RETURN, 0, true, NOTIFICATION_REFUSED, { 0, 0 } },
	{ "observe-only: inject_bytes refused", K_INJECT, 0, true, NOTIFICATION_REFUSED, { 0, 0 } },
};

static void test_action(void **state)
{
	const struct action_case *c = *state;
	Sysgate__V1__Action m;
	Sysgate__V1__Action__Continue co;
	Sysgate__V1__Action__Errno er;
	Sysgate__V1__Action__Return re;
	Sysgate__V1__Action__Kill ki;
	Sysgate__V1__Action__InjectBytes ib;
	Sysgate__V1__Action__Failed fa;
	sysgate__v1__action__init(&m);
	m.seq = 1;
	switch (c->kind) {
	case K_CONTINUE:
		sysgate__v1__action__continue__init(&co);
		m.kind_case = SYSGATE__V1__ACTION__KIND_DO_CONTINUE;
		m.do_continue = &co;
		break;
	case K_ERRNO:
		sysgate__v1__action__errno__init(&er);
		er.errnum = (int32_t)c->value;
		m.kind_case = SYSGATE__V1__ACTION__KIND_DO_ERRNO;
		m.do_errno = &er;
		break;
	case K_RETURN:
		sysgate__v1__action__return__init(&re);
		re.value = c->value;
		m.kind_case = SYSGATE__V1__ACTION__KIND_DO_RETURN;
		m.do_return = &re;
		break;
	case K_KILL:
		sysgate__v1__action__kill__init(&ki);
		ki.signal = (int32_t)c->value;
		m.kind_case = SYSGATE__V1__ACTION__KIND_DO_KILL;
		m.do_kill = &ki;
		break;
	case K_INJECT:
		sysgate__v1__action__inject_bytes__init(&ib);
		m.kind_case = SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES;
		m.do_inject_bytes = &ib;
		break;
	case K_FAIL:
		sysgate__v1__action__failed__init(&fa);
		m.kind_case = SYSGATE__V1__ACTION__KIND_DO_FAIL;
		m.do_fail = &fa;
		break;
	case K_UNKNOWN:
		m.kind_case = (Sysgate__V1__Action__KindCase)99;
		break;
	}
	struct action a = { (enum action_kind)42, 42 };
	assert_int_equal(notification_action(&m, c->observe_only, &a), c->want);
	if (c->want == NOTIFICATION_ACTION) {
		assert_int_equal(a.kind, c->want_action.kind);
		assert_int_equal(a.value, c->want_action.value);
	}
}

static char sandbox_name[] = "box";

/* The Snapshot carries the notification, the registration and the paths
 * read (or that they were unreadable). */
static void test_snapshot(void **state)
{
	(void)state;
	struct seccomp_notif req = { .id = 9, .pid = 1234, .flags = 0 };
	req.data.nr = SYS_openat;
	req.data.arch = 0xc000003e;
	req.data.instruction_pointer = 0x1000;
	for (int i = 0; i < 6; i++)
		req.data.args[i] = 100u + (unsigned)i;
	char path[] = "/etc/passwd";
	struct audit_syscall paths = { .n_paths = 2,
				       .path_arg = { 1, 2 },
				       .path = { path, NULL },
				       .path_errno = { 0, EFAULT } };
	struct snapshot_msg m;
	notification_snapshot(&m, &req, 77, &paths, sandbox_name, 3);
	assert_int_equal(m.env.body_case, SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT);
	const Sysgate__V1__Snapshot *s = m.env.snapshot;
	assert_int_equal(s->seq, 77);
	assert_int_equal(s->notif_id, 9);
	assert_int_equal(s->pid, 1234);
	assert_int_equal(s->syscall_nr, SYS_openat);
	assert_int_equal(s->arch, 0xc000003e);
	assert_int_equal(s->instruction_pointer, 0x1000);
	assert_int_equal(s->n_args, 6);
	assert_int_equal(s->args[5], 105);
	assert_string_equal(s->sandbox, "box");
	assert_int_equal(s->registration, 3);
	assert_int_equal(s->n_paths, 2);
	assert_int_equal(s->paths[0]->arg, 1);
	assert_int_equal(s->paths[0]->path.len, strlen(path));
	assert_memory_equal(s->paths[0]->path.data, path, strlen(path));
	assert_false(s->paths[0]->unreadable);
	assert_int_equal(s->paths[1]->arg, 2);
	assert_true(s->paths[1]->unreadable);
	/* What the worker would get: the codec accepts it. */
	void *buf = NULL;
	size_t len;
	struct sg_err err;
	assert_int_equal(proto_encode(&m.env, &buf, &len, &err), 0);
	free(buf);
}

/* Without --audit the record is not kept: its paths are freed. */
static void test_record_without_audit(void **state)
{
	(void)state;
	struct seccomp_notif req = { .id = 1, .pid = 1 };
	struct audit_syscall rec = { .n_paths = 1, .path = { strdup("/tmp") } };
	assert_non_null(rec.path[0]);
	struct action a = { ACTION_ERRNO, EPERM };
	notification_record(NULL, &rec, &req, now_ns(), &a, "kernel", NULL);
	assert_int_equal(rec.n_paths, 0);
	assert_null(rec.path[0]);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_record_without_audit),
	};
	struct CMUnitTest tests[ARRAY_SIZE(fixed) + ARRAY_SIZE(action_cases)];
	size_t n = 0;
	UNIT_TESTS(tests, n, fixed);
	UNIT_ROWS(tests, n, test_action, action_cases);
	return _cmocka_run_group_tests("notification", tests, n, NULL, NULL);
}
