/* Answer building: what response each action makes, without a kernel. */
#include "unit.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "answer.h"

struct fill_case {
	const char *name;
	struct action a;
	bool want_sent;
	uint32_t want_flags;
	int32_t want_error;
	int64_t want_val;
};

static struct fill_case fill_cases[] = {
	{ "continue: the CONTINUE flag",
	  { ACTION_CONTINUE, 0 },
	  true,
	  SECCOMP_USER_NOTIF_FLAG_CONTINUE,
	  0,
	  0 },
	{ "errno: a negative error", { ACTION_ERRNO, EACCES }, true, 0, -EACCES, 0 },
	{ "return: the value", { ACTION_RETURN, 42 }, true, 0, 0, 42 },
	{ "return: a negative value, no error", { ACTION_RETURN, -1 }, true, 0, 0, -1 },
	{ "kill: EPERM resolves it if it survives", { ACTION_KILL, SIGKILL }, true, 0, -EPERM, 0 },
	{ "inject: answered by the fd's installation", { ACTION_INJECT, 5 }, false, 0, 0, 0 },
};

static void test_answer_fill(void **state)
{
	const struct fill_case *c = *state;
	/* A kernel with a larger struct: the tail is zeroed too. */
	size_t size = sizeof(struct seccomp_notif_resp) + 16;
	uint8_t buf[sizeof(struct seccomp_notif_resp) + 16];
	memset(buf, 0xa5, sizeof(buf));
	struct seccomp_notif req = { .id = 77 };
	bool sent = answer_fill(buf, size, &req, &c->a);
	assert_int_equal(sent, c->want_sent);
	if (!sent)
		return;
	struct seccomp_notif_resp resp;
	memcpy(&resp, buf, sizeof(resp));
	assert_int_equal(resp.id, 77);
	assert_int_equal(resp.flags, c->want_flags);
	assert_int_equal(resp.error, c->want_error);
	assert_int_equal(resp.val, c->want_val);
	for (size_t i = sizeof(resp); i < size; i++)
		assert_int_equal(buf[i], 0);
}

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(fill_cases)];
	size_t n = 0;
	UNIT_ROWS(tests, n, test_answer_fill, fill_cases);
	return _cmocka_run_group_tests("answer", tests, n, NULL, NULL);
}
