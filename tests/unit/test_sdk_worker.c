/* The C SDK's worker runtime (sysgate.h) against a fake supervisor in the
 * test process: an nng pair1 listener on an ipc:// address in a private
 * directory, with sg_worker_run() in a second thread. Every wait is bounded
 * (nng timeouts, a timed join), so a broken worker fails a test instead of
 * hanging it; no test sleeps. Which handlers run at once is shown by the
 * order of what the worker sends: a handler blocked in a memory read until
 * the fake has seen another handler's Action proves both ran together. */
#include "unit.h"

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysgate.h>
#include <time.h>

#include "protocol.h"

#define TIMEOUT_MS 5000
#define JOIN_TIMEOUT_S 10
#define TOKEN_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define AUDIT_ARCH_X86_64_ 0xc000003eu

/* ---- The fake supervisor ----------------------------------------------- */

struct fake {
	char dir[64];
	char path[96];
	char url[128];
	nng_socket socket;
	bool socket_open;
	sg_worker *worker;
	pthread_t thread;
	bool running;
	int run_result;
};

/* The fake of the test in progress: a failed assertion jumps past the
 * scope cleanup, so the test's teardown frees it then. */
static struct fake *current_fake;

static void *run_worker(void *arg)
{
	struct fake *f = arg;
	f->run_result = sg_worker_run(f->worker);
	return NULL;
}

/* Listens, sets the worker's environment and makes a worker called name
 * (used when SYSGATE_WORKER_NAME is unset) with SYSGATE_WORKER_THREADS set
 * to threads (NULL: unset). */
static struct fake *fake_new_threads(const char *name, const char *threads)
{
	if (threads)
		assert_int_equal(setenv("SYSGATE_WORKER_THREADS", threads, 1), 0);
	else
		unsetenv("SYSGATE_WORKER_THREADS");
	struct fake *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/sg-sdk-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/link", f->dir);
	snprintf(f->url, sizeof(f->url), "ipc://%s", f->path);
	assert_int_equal(nng_pair1_open(&f->socket), 0);
	f->socket_open = true;
	assert_int_equal(nng_socket_set_ms(f->socket, NNG_OPT_RECVTIMEO, TIMEOUT_MS), 0);
	assert_int_equal(nng_socket_set_ms(f->socket, NNG_OPT_SENDTIMEO, TIMEOUT_MS), 0);
	assert_int_equal(nng_listen(f->socket, f->url, NULL, 0), 0);
	assert_int_equal(setenv("SYSGATE_WORKER_URL", f->url, 1), 0);
	assert_int_equal(setenv("SYSGATE_WORKER_TOKEN", TOKEN_HEX, 1), 0);
	f->worker = sg_worker_new(name);
	unsetenv("SYSGATE_WORKER_THREADS");
	assert_non_null(f->worker);
	current_fake = f;
	return f;
}

static struct fake *fake_new(const char *name)
{
	return fake_new_threads(name, NULL);
}

static void fake_start(struct fake *f)
{
	assert_int_equal(pthread_create(&f->thread, NULL, run_worker, f), 0);
	f->running = true;
}

/* Waits (bounded) for sg_worker_run() to return; its result. */
static int fake_join(struct fake *f)
{
	if (!f->running)
		return f->run_result;
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += JOIN_TIMEOUT_S;
	int r = pthread_timedjoin_np(f->thread, NULL, &deadline);
	if (r != 0)
		fail_msg("sg_worker_run did not return within %d s", JOIN_TIMEOUT_S);
	f->running = false;
	return f->run_result;
}

static void fake_close_link(struct fake *f)
{
	if (f->socket_open)
		nng_close(f->socket);
	f->socket_open = false;
}

static void fake_free(struct fake **fp)
{
	struct fake *f = *fp;
	if (!f)
		return;
	*fp = NULL;
	current_fake = NULL;
	fake_close_link(f); /* ends a run still in progress */
	if (f->running) {
		/* Not fake_join(): this may run in a teardown, where failing is no
		 * option. A worker that does not end is leaked with its fake. */
		struct timespec deadline;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += JOIN_TIMEOUT_S;
		if (pthread_timedjoin_np(f->thread, NULL, &deadline) != 0)
			return;
	}
	sg_worker_free(f->worker);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
}

#define _cleanup_fake_ __attribute__((cleanup(fake_free)))

static void fake_send(struct fake *f, Sysgate__V1__Envelope *m)
{
	m->version = SYSGATE_PROTOCOL_VERSION;
	struct sg_err err = { "" };
	_cleanup_free_ void *buf = NULL;
	size_t len = 0;
	if (proto_encode(m, &buf, &len, &err) < 0)
		fail_msg("encode: %s", err.msg);
	assert_int_equal(nng_send(f->socket, buf, len, 0), 0);
}

/* The next message from the worker, which must be valid, of any kind. */
static Sysgate__V1__Envelope *fake_recv_any(struct fake *f)
{
	void *buf = NULL;
	size_t len = 0;
	int rv = nng_recv(f->socket, &buf, &len, NNG_FLAG_ALLOC);
	if (rv != 0)
		fail_msg("receiving from the worker: %s", nng_strerror(rv));
	struct sg_err err = { "" };
	Sysgate__V1__Envelope *m = NULL;
	int r = proto_decode(buf, len, &m, &err);
	nng_free(buf, len);
	if (r == 0)
		r = proto_validate_from_worker(m, &err);
	if (r < 0)
		fail_msg("invalid message from the worker: %s", err.msg);
	return m;
}

/* The next message from the worker, which must be valid and of kind body. */
static Sysgate__V1__Envelope *fake_recv(struct fake *f, Sysgate__V1__Envelope__BodyCase body)
{
	Sysgate__V1__Envelope *m = fake_recv_any(f);
	assert_int_equal(m->body_case, body);
	return m;
}

static char s_sandbox[] = "box";
static char s_reason[] = "unknown token";
static char s_bye[] = "end of run";
static uint8_t s_path[] = "/etc/passwd";

static void send_welcome_inflight(struct fake *f, bool accepted, uint32_t max_inflight)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Welcome w;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_WELCOME);
	sysgate__v1__welcome__init(&w);
	env.welcome = &w;
	w.accepted = accepted;
	if (accepted) {
		w.sandbox = s_sandbox;
		w.max_inflight = max_inflight;
		w.max_mem_request = 4096;
		w.max_inject = 4096;
	} else {
		w.reason = s_reason;
	}
	fake_send(f, &env);
}

/* A Welcome allowing 4 snapshots at once. */
static void send_welcome(struct fake *f, bool accepted)
{
	send_welcome_inflight(f, accepted, 4);
}

/* Starts the worker; its Hello (the caller frees it). */
static Sysgate__V1__Envelope *fake_start_hello(struct fake *f)
{
	fake_start(f);
	return fake_recv(f, SYSGATE__V1__ENVELOPE__BODY_HELLO);
}

/* Starts the worker and answers its Hello with an accepting Welcome that
 * allows max_inflight snapshots at once. */
static void fake_handshake_inflight(struct fake *f, uint32_t max_inflight)
{
	Sysgate__V1__Envelope *hello _cleanup_envelope_ = fake_start_hello(f);
	send_welcome_inflight(f, true, max_inflight);
}

static void fake_handshake(struct fake *f)
{
	fake_handshake_inflight(f, 4);
}

/* Most tests' worker: handler h (with ud, SG_EXC_KILL) for openat only, on
 * `threads` handler threads (NULL: the default), started and welcomed. */
static struct fake *fake_serving(const char *threads, sg_handler_fn h, void *ud)
{
	struct fake *f = fake_new_threads("w", threads);
	assert_int_equal(sg_worker_on(f->worker, "openat", h, ud, SG_EXC_KILL), 0);
	fake_handshake(f);
	return f;
}

/* A Snapshot of openat(AT_FDCWD, "/etc/passwd", ...) with seq and the
 * notification flags, for the registration at index reg. */
static void send_snapshot_flags(struct fake *f, uint64_t seq, uint32_t reg, uint32_t flags)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Snapshot s;
	Sysgate__V1__PathArg paths[2], *path_ptrs[2] = { &paths[0], &paths[1] };
	uint64_t args[PROTO_ARGS] = { (uint64_t)-100, 0x5555deadbeef, 0x80000, 0644, 7, 8 };
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT);
	sysgate__v1__snapshot__init(&s);
	sysgate__v1__path_arg__init(&paths[0]);
	sysgate__v1__path_arg__init(&paths[1]);
	env.snapshot = &s;
	s.seq = seq;
	s.notif_id = 0x1122334455667788u;
	s.pid = 4242;
	s.flags = flags;
	s.syscall_nr = 257;
	s.arch = AUDIT_ARCH_X86_64_;
	s.instruction_pointer = 0x7ffff7e9a1b2u;
	s.n_args = PROTO_ARGS;
	s.args = args;
	s.sandbox = s_sandbox;
	paths[0].arg = 1;
	paths[0].path = (ProtobufCBinaryData){ .len = sizeof(s_path) - 1, .data = s_path };
	paths[1].arg = 3;
	paths[1].unreadable = 1;
	s.n_paths = 2;
	s.paths = path_ptrs;
	s.registration = reg;
	fake_send(f, &env);
}

static void send_snapshot(struct fake *f, uint64_t seq, uint32_t reg)
{
	send_snapshot_flags(f, seq, reg, 0);
}

static void send_goodbye(struct fake *f)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Goodbye g;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_GOODBYE);
	sysgate__v1__goodbye__init(&g);
	env.goodbye = &g;
	g.reason = s_bye;
	fake_send(f, &env);
}

static void send_mem_reply(struct fake *f, uint64_t request_id, int32_t error, const void *data,
			   size_t len)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__MemReply q;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY);
	sysgate__v1__mem_reply__init(&q);
	env.mem_reply = &q;
	q.request_id = request_id;
	q.error = error;
	q.data = (ProtobufCBinaryData){ .len = len, .data = (uint8_t *)(uintptr_t)data };
	fake_send(f, &env);
}

static void send_injected(struct fake *f, uint64_t seq, uint32_t pid, int32_t fd, uint64_t cookie)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__Injected inj;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_INJECTED);
	sysgate__v1__injected__init(&inj);
	env.injected = &inj;
	inj.seq = seq;
	inj.pid = pid;
	inj.fd = fd;
	inj.cookie = cookie;
	fake_send(f, &env);
}

/* Sends Goodbye and checks that the run ends with 0. */
static void fake_finish(struct fake *f)
{
	send_goodbye(f);
	assert_int_equal(fake_join(f), 0);
}

/* The worker's answer to a protocol violation: Error EPROTO, whose message
 * holds part (NULL: any), and the run's end with -EPROTO. */
static void expect_protocol_error(struct fake *f, const char *part)
{
	Sysgate__V1__Envelope *m _cleanup_envelope_ =
		fake_recv(f, SYSGATE__V1__ENVELOPE__BODY_ERROR);
	assert_int_equal(m->error->code, EPROTO);
	if (part && !strstr(m->error->message, part))
		fail_msg("Error \"%s\" lacks \"%s\"", m->error->message, part);
	assert_int_equal(fake_join(f), -EPROTO);
}

/* The next Action, which must be for seq. */
static Sysgate__V1__Envelope *expect_action(struct fake *f, uint64_t seq)
{
	Sysgate__V1__Envelope *m = fake_recv(f, SYSGATE__V1__ENVELOPE__BODY_ACTION);
	if (m->action->seq != seq) {
		unsigned long long got = m->action->seq;
		proto_envelope_free(m);
		fail_msg("Action for seq %llu, expected seq %llu", got, (unsigned long long)seq);
	}
	return m;
}

/* The next Action when several are due in any order: its seq must be in
 * first..last and not answered[] yet, and is marked there. */
static Sysgate__V1__Envelope *expect_action_among(struct fake *f, bool *answered, uint64_t first,
						  uint64_t last)
{
	Sysgate__V1__Envelope *m = fake_recv(f, SYSGATE__V1__ENVELOPE__BODY_ACTION);
	uint64_t seq = m->action->seq;
	assert_true(seq >= first && seq <= last && !answered[seq]);
	answered[seq] = true;
	return m;
}

/* ---- Handlers ------------------------------------------------------------- */

static int h_errno(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	sg_errno(out, EACCES);
	return 0;
}

static int h_return(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	sg_return(out, 42);
	return 0;
}

static int h_return_min(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	sg_return(out, INT64_MIN);
	return 0;
}

static int h_continue(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	sg_continue(out);
	return 0;
}

static int h_kill(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	sg_kill(out, 9);
	return 0;
}

static int h_inject(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	return sg_inject_bytes(out, "hello", 5, SG_INJECT_NO_CLOEXEC);
}

/* Over Welcome.max_inject (4096), then bad flags: returns the errors. */
static int h_inject_big(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	static const char big[4097];
	int r = sg_inject_bytes(out, big, sizeof(big), 0);
	int r2 = sg_inject_bytes(out, big, 1, 4);
	sg_return(out, r * 1000 + r2);
	return 0;
}

#define COOKIE 0xfedcba9876543210u

/* What is refused first (the action stays unset), then a tracked inject:
 * fails if a refusal is not the one expected. */
static int h_inject_tracked(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	static const char big[4097];
	if (sg_inject_bytes(out, "x", 1, SG_INJECT_TRACK) != -EINVAL ||
	    sg_inject_tracked(out, "x", 1, 8, COOKIE) != -EINVAL ||
	    sg_inject_tracked(out, big, sizeof(big), 0, COOKIE) != -E2BIG ||
	    sg_inject_tracked(NULL, "x", 1, 0, COOKIE) != -EINVAL ||
	    sg_inject_tracked(out, NULL, 1, 0, COOKIE) != -EINVAL)
		return 1;
	return sg_inject_tracked(out, "hello", 5, SG_INJECT_WRITABLE, COOKIE);
}

/* SG_INJECT_TRACK given to sg_inject_tracked is fine; cookie 0 too. */
static int h_inject_tracked_flag(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	return sg_inject_tracked(out, "hello", 5, SG_INJECT_TRACK | SG_INJECT_NO_CLOEXEC, 0);
}

static int h_fail(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	sg_continue(out);
	return 1;
}

static int h_none(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)out, (void)ud;
	return 0;
}

static int h_two(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	sg_continue(out);
	sg_errno(out, EPERM);
	return 0;
}

static int h_errno_0(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	sg_errno(out, 0);
	return 0;
}

static int h_kill_65(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx, (void)ud;
	sg_kill(out, 65);
	return 0;
}

/* ---- One Snapshot, one Action: one row per handler answer ------------------- */

/* Checks a row's expectations of Action a: its kind and what goes with it
 * (value: errnum, return value, signal or inject flags; an inject carries
 * "hello" and cookie), or part of a failure's reason. */
static void check_action(const Sysgate__V1__Action *a, Sysgate__V1__Action__KindCase want,
			 int64_t value, uint64_t cookie, const char *fail_reason)
{
	assert_int_equal(a->kind_case, want);
	switch (want) {
	case SYSGATE__V1__ACTION__KIND_DO_ERRNO:
		assert_int_equal(a->do_errno->errnum, value);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_RETURN:
		assert_true(a->do_return->value == value);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_KILL:
		assert_int_equal(a->do_kill->signal, value);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES:
		assert_int_equal(a->do_inject_bytes->flags, value);
		assert_int_equal(a->do_inject_bytes->data.len, 5);
		assert_memory_equal(a->do_inject_bytes->data.data, "hello", 5);
		assert_true(a->do_inject_bytes->cookie == cookie);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_FAIL:
		if (!strstr(a->do_fail->reason, fail_reason))
			fail_msg("reason \"%s\" lacks \"%s\"", a->do_fail->reason, fail_reason);
		break;
	default:
		break;
	}
}

struct action_case {
	const char *name;
	sg_handler_fn handler;
	Sysgate__V1__Action__KindCase want;
	int64_t value;           /* errnum, return value or signal */
	const char *fail_reason; /* part of do_fail's reason */
	uint64_t cookie;         /* inject_bytes */
};

static struct action_case action_cases[] = {
	{ "errno(EACCES)", h_errno, SYSGATE__V1__ACTION__KIND_DO_ERRNO, EACCES, NULL },
	{ "return(42)", h_return, SYSGATE__V1__ACTION__KIND_DO_RETURN, 42, NULL },
	{ "return(INT64_MIN)", h_return_min, SYSGATE__V1__ACTION__KIND_DO_RETURN, INT64_MIN, NULL },
	{ "continue", h_continue, SYSGATE__V1__ACTION__KIND_DO_CONTINUE, 0, NULL },
	{ "kill(9)", h_kill, SYSGATE__V1__ACTION__KIND_DO_KILL, 9, NULL },
	{ "inject_bytes", h_inject, SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES, SG_INJECT_NO_CLOEXEC,
	  NULL },
	{ "inject_bytes over the cap, bad flags", h_inject_big, SYSGATE__V1__ACTION__KIND_DO_RETURN,
	  -E2BIG * 1000 - EINVAL, NULL },
	{ "inject_tracked", h_inject_tracked, SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES,
	  SG_INJECT_WRITABLE | SG_INJECT_TRACK, NULL, COOKIE },
	{ "inject_tracked with SG_INJECT_TRACK, cookie 0", h_inject_tracked_flag,
	  SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES, SG_INJECT_NO_CLOEXEC | SG_INJECT_TRACK, NULL,
	  0 },
	{ "handler returns 1: fail", h_fail, SYSGATE__V1__ACTION__KIND_DO_FAIL, 0,
	  "handler for openat returned 1 (seq 11)" },
	{ "no action set: fail", h_none, SYSGATE__V1__ACTION__KIND_DO_FAIL, 0, "set no action" },
	{ "two actions set: fail", h_two, SYSGATE__V1__ACTION__KIND_DO_FAIL, 0, "set 2 actions" },
	{ "errno(0): fail", h_errno_0, SYSGATE__V1__ACTION__KIND_DO_FAIL, 0, "errno outside" },
	{ "kill(65): fail", h_kill_65, SYSGATE__V1__ACTION__KIND_DO_FAIL, 0, "signal outside" },
};

static void test_action(void **state)
{
	const struct action_case *c = *state;
	struct fake *f _cleanup_fake_ = fake_serving(NULL, c->handler, NULL);
	send_snapshot(f, 11, 0);
	Sysgate__V1__Envelope *m _cleanup_envelope_ = expect_action(f, 11);
	check_action(m->action, c->want, c->value, c->cookie, c->fail_reason);
	fake_finish(f);
}

/* ---- Handshake ------------------------------------------------------------- */

static void test_hello(void **state)
{
	(void)state;
	assert_int_equal(setenv("SYSGATE_WORKER_NAME", "from-env", 1), 0);
	struct fake *f _cleanup_fake_ = fake_new("from-arg");
	unsetenv("SYSGATE_WORKER_NAME");
	assert_int_equal(sg_worker_on(f->worker, "openat", h_errno, NULL, SG_EXC_DENY_EPERM), 0);
	assert_int_equal(sg_worker_on_nr(f->worker, 39, h_return, NULL, SG_EXC_CONTINUE), 0);
	assert_int_equal(sg_worker_on(f->worker, "read", h_kill, NULL, SG_EXC_DENY_EIO), 0);

	Sysgate__V1__Envelope *m _cleanup_envelope_ = fake_start_hello(f);
	const Sysgate__V1__Hello *h = m->hello;
	assert_int_equal(h->protocol_version, SYSGATE_PROTOCOL_VERSION);
	assert_string_equal(h->worker_name, "from-env");
	assert_int_equal(h->token.len, PROTO_TOKEN_SIZE);
	for (unsigned i = 0; i < PROTO_TOKEN_SIZE; i++)
		assert_int_equal(h->token.data[i], i);
	static const struct {
		long nr;
		const char *name;
		Sysgate__V1__ExceptionPolicy policy;
	} want[] = {
		{ 257, "openat", SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM },
		{ 39, "getpid", SYSGATE__V1__EXCEPTION_POLICY__CONTINUE },
		{ 0, "read", SYSGATE__V1__EXCEPTION_POLICY__DENY_EIO },
	};
	assert_int_equal(h->n_registrations, ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		assert_int_equal(h->registrations[i]->syscall_nr, want[i].nr);
		assert_string_equal(h->registrations[i]->syscall_name, want[i].name);
		assert_int_equal(h->registrations[i]->order, i);
		assert_int_equal(h->registrations[i]->on_exception, want[i].policy);
	}
	send_welcome(f, true);
	/* Snapshots reach the handler of their registration. */
	send_snapshot(f, 5, 1);
	Sysgate__V1__Envelope *a _cleanup_envelope_ =
		fake_recv(f, SYSGATE__V1__ENVELOPE__BODY_ACTION);
	assert_int_equal(a->action->seq, 5);
	assert_int_equal(a->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_RETURN);
	fake_finish(f);
}

/* Without SYSGATE_WORKER_NAME, the name given to sg_worker_new. */
static void test_hello_name_from_argument(void **state)
{
	(void)state;
	unsetenv("SYSGATE_WORKER_NAME");
	struct fake *f _cleanup_fake_ = fake_new("from-arg");
	Sysgate__V1__Envelope *m _cleanup_envelope_ = fake_start_hello(f);
	assert_string_equal(m->hello->worker_name, "from-arg");
	assert_int_equal(m->hello->n_registrations, 0);
	send_welcome(f, true);
	fake_finish(f);
}

static void test_not_accepted(void **state)
{
	(void)state;
	struct fake *f _cleanup_fake_ = fake_new("w");
	assert_int_equal(sg_worker_on(f->worker, "openat", h_errno, NULL, SG_EXC_KILL), 0);
	Sysgate__V1__Envelope *m _cleanup_envelope_ = fake_start_hello(f);
	send_welcome(f, false);
	assert_int_equal(fake_join(f), -EPERM);
	/* Registrations are closed once the run started; a second run refused. */
	assert_int_equal(sg_worker_on(f->worker, "openat", h_errno, NULL, SG_EXC_KILL), -EBUSY);
	assert_int_equal(sg_worker_run(f->worker), -EBUSY);
}

static void test_bad_token(void **state)
{
	(void)state;
	assert_int_equal(setenv("SYSGATE_WORKER_URL", "ipc:///nonexistent/link", 1), 0);
	assert_int_equal(setenv("SYSGATE_WORKER_TOKEN", "abc", 1), 0);
	sg_worker *w = sg_worker_new("w");
	assert_non_null(w);
	assert_int_equal(sg_worker_run(w), -EINVAL);
	sg_worker_free(w);
	unsetenv("SYSGATE_WORKER_URL");
	w = sg_worker_new("w");
	assert_non_null(w);
	assert_int_equal(sg_worker_run(w), -EDESTADDRREQ);
	sg_worker_free(w);
}

static void test_registration_errors(void **state)
{
	(void)state;
	sg_worker *w = sg_worker_new("w");
	assert_non_null(w);
	assert_int_equal(sg_worker_on(w, "no_such_syscall", h_errno, NULL, SG_EXC_KILL), -ENOENT);
	assert_int_equal(sg_worker_on(w, "-1", h_errno, NULL, SG_EXC_KILL), -EINVAL);
	assert_int_equal(sg_worker_on_nr(w, -1, h_errno, NULL, SG_EXC_KILL), -EINVAL);
	assert_int_equal(sg_worker_on_nr(w, 100000, h_errno, NULL, SG_EXC_KILL), -ENOENT);
	assert_int_equal(sg_worker_on(w, "openat", NULL, NULL, SG_EXC_KILL), -EINVAL);
	assert_int_equal(sg_worker_on(w, "openat", h_errno, NULL, (enum sg_exception)4), -EINVAL);
	assert_int_equal(sg_worker_on(w, NULL, h_errno, NULL, SG_EXC_KILL), -EINVAL);
	assert_int_equal(sg_worker_on(NULL, "openat", h_errno, NULL, SG_EXC_KILL), -EINVAL);
	assert_int_equal(sg_worker_on(w, "openat", h_errno, NULL, SG_EXC_KILL), 0);
	assert_int_equal(sg_worker_run(NULL), -EINVAL);
	sg_worker_free(w);
	sg_worker_free(NULL);
}

/* ---- Serving ----------------------------------------------------------------- */

/* What the inspecting handler saw. */
struct seen {
	uint64_t id, ip, args[PROTO_ARGS + 1];
	pid_t pid;
	long nr;
	uint32_t arch;
	char path[2][64];
	bool path_null[PROTO_ARGS + 1];
	const sg_ctx *ctx;
	unsigned calls;          /* atomic: handlers may run at once */
	bool first_done;         /* atomic: the first h_read call returns */
	bool second_after_first; /* the second h_read call began after it */
	ssize_t read_result, read2_result, cstr_result;
	char buf[16], cstr[8];
};

static int h_inspect(const sg_ctx *ctx, sg_action *out, void *ud)
{
	struct seen *s = ud;
	s->ctx = ctx;
	s->id = sg_ctx_id(ctx);
	s->pid = sg_ctx_pid(ctx);
	s->nr = sg_ctx_syscall(ctx);
	s->arch = sg_ctx_arch(ctx);
	s->ip = sg_ctx_ip(ctx);
	for (unsigned i = 0; i <= PROTO_ARGS; i++) {
		s->args[i] = sg_ctx_arg(ctx, i);
		s->path_null[i] = sg_ctx_path(ctx, i) == NULL;
	}
	const char *p = sg_ctx_path(ctx, 1);
	snprintf(s->path[0], sizeof(s->path[0]), "%s", p ? p : "(null)");
	sg_continue(out);
	return 0;
}

static void test_ctx_accessors(void **state)
{
	(void)state;
	struct seen seen = { 0 };
	struct fake *f _cleanup_fake_ = fake_serving(NULL, h_inspect, &seen);
	send_snapshot(f, 3, 0);
	Sysgate__V1__Envelope *m _cleanup_envelope_ =
		fake_recv(f, SYSGATE__V1__ENVELOPE__BODY_ACTION);
	assert_int_equal(m->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_CONTINUE);

	assert_int_equal(seen.id, 0x1122334455667788u);
	assert_int_equal(seen.pid, 4242);
	assert_int_equal(seen.nr, 257);
	assert_int_equal(seen.arch, AUDIT_ARCH_X86_64_);
	assert_int_equal(seen.ip, 0x7ffff7e9a1b2u);
	assert_int_equal(seen.args[0], (uint64_t)-100);
	assert_int_equal(seen.args[1], 0x5555deadbeef);
	assert_int_equal(seen.args[5], 8);
	assert_int_equal(seen.args[PROTO_ARGS], 0);
	assert_string_equal(seen.path[0], "/etc/passwd");
	assert_false(seen.path_null[1]);
	assert_true(seen.path_null[0]);
	assert_true(seen.path_null[3]); /* unreadable */
	assert_true(seen.path_null[PROTO_ARGS]);

	/* The context fails safe once its handler returned. */
	char buf[4];
	assert_int_equal(sg_ctx_read(seen.ctx, 0x1000, buf, sizeof(buf)), -ESTALE);
	assert_int_equal(sg_ctx_write(seen.ctx, 0x1000, buf, sizeof(buf)), -ESTALE);
	assert_int_equal(sg_ctx_read_cstr(seen.ctx, 0x1000, buf, sizeof(buf)), -ESTALE);
	assert_int_equal(buf[0], '\0');
	assert_null(sg_ctx_path(seen.ctx, 1));
	assert_int_equal(sg_ctx_pid(seen.ctx), 0);
	fake_finish(f);
}

/* First call: reads 5 bytes at arg 1, then a string at arg 3, and returns
 * the first read's result. A second call (for a Snapshot that arrives
 * meanwhile) notes whether the first had returned, and fails at once. */
static int h_read(const sg_ctx *ctx, sg_action *out, void *ud)
{
	struct seen *s = ud;
	if (__atomic_fetch_add(&s->calls, 1, __ATOMIC_SEQ_CST)) {
		s->second_after_first = __atomic_load_n(&s->first_done, __ATOMIC_SEQ_CST);
		return 1;
	}
	s->read_result = sg_ctx_read(ctx, sg_ctx_arg(ctx, 1), s->buf, 5);
	s->read2_result = sg_ctx_read(ctx, sg_ctx_arg(ctx, 1), s->buf, 5000); /* over the cap */
	s->cstr_result = sg_ctx_read_cstr(ctx, sg_ctx_arg(ctx, 3), s->cstr, sizeof(s->cstr));
	sg_return(out, s->read_result);
	__atomic_store_n(&s->first_done, true, __ATOMIC_SEQ_CST);
	return 0;
}

/* Checks that m is a MemRequest for what the handler asked for; its
 * request_id. */
static uint64_t check_mem_request(const Sysgate__V1__Envelope *m, uint64_t seq,
				  Sysgate__V1__MemRequest__Op op, uint64_t addr, uint32_t length)
{
	assert_int_equal(m->body_case, SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST);
	const Sysgate__V1__MemRequest *q = m->mem_request;
	assert_int_equal(q->seq, seq);
	assert_int_equal(q->op, op);
	assert_int_equal(q->addr, addr);
	assert_int_equal(q->length, length);
	return q->request_id;
}

/* The next MemRequest, checked against what the handler asked for. */
static uint64_t expect_mem_request(struct fake *f, uint64_t seq, Sysgate__V1__MemRequest__Op op,
				   uint64_t addr, uint32_t length)
{
	Sysgate__V1__Envelope *m _cleanup_envelope_ =
		fake_recv(f, SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST);
	return check_mem_request(m, seq, op, addr, length);
}

struct read_case {
	const char *name;
	int32_t error; /* what the supervisor answers the read with */
	ssize_t want;
	const char *threads; /* SYSGATE_WORKER_THREADS, or NULL */
};

static struct read_case read_cases[] = {
	{ "read gets the MemReply data", 0, 5, NULL },
	{ "read answered EFAULT", EFAULT, -EFAULT, NULL },
	{ "one thread: the snapshot sent during a read waits for it", 0, 5, "1" },
};

static void test_read(void **state)
{
	const struct read_case *c = *state;
	bool serial = c->threads && strcmp(c->threads, "1") == 0;
	struct seen seen = { 0 };
	struct fake *f _cleanup_fake_ = fake_serving(c->threads, h_read, &seen);
	send_snapshot(f, 21, 0);

	uint64_t id =
		expect_mem_request(f, 21, SYSGATE__V1__MEM_REQUEST__OP__READ, 0x5555deadbeef, 5);
	assert_int_equal(id, 1);
	/* A second notification while the handler waits: handled by another
	 * thread at any time, or with one thread after the first. */
	send_snapshot(f, 22, 0);
	if (c->error)
		send_mem_reply(f, id, c->error, NULL, 0);
	else
		send_mem_reply(f, id, 0, "abcde", 5);

	Sysgate__V1__Envelope *a21 _cleanup_envelope_ = NULL;
	Sysgate__V1__Envelope *a22 _cleanup_envelope_ = NULL;
	bool cstr_asked = false;
	while (!a21 || !a22) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ = fake_recv_any(f);
		if (m->body_case == SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST) {
			assert_false(cstr_asked);
			id = check_mem_request(m, 21, SYSGATE__V1__MEM_REQUEST__OP__READ_CSTR, 0644,
					       sizeof(seen.cstr) - 1);
			assert_int_equal(id, 2);
			send_mem_reply(f, id, 0, "str", 3);
			cstr_asked = true;
			continue;
		}
		assert_int_equal(m->body_case, SYSGATE__V1__ENVELOPE__BODY_ACTION);
		if (m->action->seq == 21 && !a21) {
			assert_true(cstr_asked);
			a21 = steal_ptr(&m);
		} else if (m->action->seq == 22 && !a22) {
			if (serial)
				assert_non_null(a21); /* not before the first's answer */
			a22 = steal_ptr(&m);
		} else {
			fail_msg("unexpected Action for seq %llu",
				 (unsigned long long)m->action->seq);
		}
	}
	assert_int_equal(a21->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_RETURN);
	assert_true(a21->action->do_return->value == c->want);
	assert_true(seen.read_result == c->want);
	if (c->want > 0)
		assert_memory_equal(seen.buf, "abcde", 5);
	assert_true(seen.read2_result == -E2BIG);
	assert_int_equal(seen.cstr_result, 3);
	assert_string_equal(seen.cstr, "str");
	assert_int_equal(a22->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_FAIL);
	if (serial)
		assert_true(seen.second_after_first);
	fake_finish(f);
}

/* ---- Concurrent handlers ------------------------------------------------------ */

/* Reads 5 bytes at arg 1 and answers return(what the read returned). */
static int h_read5(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ud;
	char buf[5];
	sg_return(out, sg_ctx_read(ctx, sg_ctx_arg(ctx, 1), buf, sizeof(buf)));
	return 0;
}

/* Same, noting the read's result in *(ssize_t *)ud. */
static int h_read5_note(const sg_ctx *ctx, sg_action *out, void *ud)
{
	char buf[5];
	ssize_t r = sg_ctx_read(ctx, sg_ctx_arg(ctx, 1), buf, sizeof(buf));
	__atomic_store_n((ssize_t *)ud, r, __ATOMIC_SEQ_CST);
	sg_return(out, r);
	return 0;
}

static void expect_return(const Sysgate__V1__Envelope *m, int64_t value)
{
	assert_int_equal(m->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_RETURN);
	assert_true(m->action->do_return->value == value);
}

/* Handler A waits for a MemReply that the fake sends only once it has the
 * Action of handler B, for a later Snapshot: B ran while A waited. */
static void test_concurrent_handlers(void **state)
{
	(void)state;
	struct fake *f _cleanup_fake_ = fake_new("w");
	assert_int_equal(sg_worker_on(f->worker, "openat", h_read5, NULL, SG_EXC_KILL), 0);
	assert_int_equal(sg_worker_on(f->worker, "getpid", h_errno, NULL, SG_EXC_KILL), 0);
	fake_handshake(f);
	send_snapshot(f, 1, 0);
	uint64_t id =
		expect_mem_request(f, 1, SYSGATE__V1__MEM_REQUEST__OP__READ, 0x5555deadbeef, 5);
	send_snapshot(f, 2, 1);
	Sysgate__V1__Envelope *b _cleanup_envelope_ = expect_action(f, 2);
	assert_int_equal(b->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_ERRNO);
	send_mem_reply(f, id, 0, "abcde", 5);
	Sysgate__V1__Envelope *a _cleanup_envelope_ = expect_action(f, 1);
	expect_return(a, 5);
	fake_finish(f);
}

/* Hands its context to a second thread, which reads through it while the
 * handler waits (the context is live: same notification). */
static void *read_from_other_thread(void *arg)
{
	const sg_ctx *ctx = arg;
	char buf[5];
	return (void *)(intptr_t)sg_ctx_read(ctx, sg_ctx_arg(ctx, 1), buf, sizeof(buf));
}

static int h_read_elsewhere(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ud;
	pthread_t t;
	void *r = NULL;
	if (pthread_create(&t, NULL, read_from_other_thread, (void *)(uintptr_t)ctx) != 0)
		return 1;
	pthread_join(t, &r);
	sg_return(out, (intptr_t)r);
	return 0;
}

static void test_ctx_from_another_thread(void **state)
{
	(void)state;
	struct fake *f _cleanup_fake_ = fake_serving(NULL, h_read_elsewhere, NULL);
	send_snapshot(f, 1, 0);
	uint64_t id =
		expect_mem_request(f, 1, SYSGATE__V1__MEM_REQUEST__OP__READ, 0x5555deadbeef, 5);
	send_mem_reply(f, id, 0, "abc", 3);
	Sysgate__V1__Envelope *a _cleanup_envelope_ = expect_action(f, 1);
	expect_return(a, 3);
	fake_finish(f);
}

/* How many handlers run at once: SYSGATE_WORKER_THREADS (1..64, else 4),
 * at most max_inflight. */
struct pool_case {
	const char *name;
	const char *threads; /* SYSGATE_WORKER_THREADS, or NULL */
	uint32_t max_inflight;
	unsigned want; /* handler threads expected */
};

static struct pool_case pool_cases[] = {
	{ "pool: 4 threads by default", NULL, 8, 4 },
	{ "pool: SYSGATE_WORKER_THREADS=2", "2", 8, 2 },
	{ "pool: SYSGATE_WORKER_THREADS=1", "1", 8, 1 },
	{ "pool: SYSGATE_WORKER_THREADS=64, max_inflight 3", "64", 3, 3 },
	{ "pool: SYSGATE_WORKER_THREADS=0 is the default", "0", 8, 4 },
	{ "pool: SYSGATE_WORKER_THREADS=65 is the default", "65", 8, 4 },
	{ "pool: SYSGATE_WORKER_THREADS=2x is the default", "2x", 8, 4 },
	{ "pool: SYSGATE_WORKER_THREADS empty is the default", "", 8, 4 },
};

#define POOL_MAX 8

/* want handlers wait for memory at once (each asked before any answer);
 * then, if room is left, a quick Snapshot is answered only after one of
 * them was: it waited for a free thread. */
static void test_pool(void **state)
{
	const struct pool_case *c = *state;
	struct fake *f _cleanup_fake_ = fake_new_threads("w", c->threads);
	assert_int_equal(sg_worker_on(f->worker, "openat", h_read5, NULL, SG_EXC_KILL), 0);
	assert_int_equal(sg_worker_on(f->worker, "getpid", h_errno, NULL, SG_EXC_KILL), 0);
	fake_handshake_inflight(f, c->max_inflight);
	uint64_t ids[POOL_MAX + 1] = { 0 };
	assert_true(c->want <= POOL_MAX);
	for (uint64_t seq = 1; seq <= c->want; seq++)
		send_snapshot(f, seq, 0);
	for (unsigned i = 0; i < c->want; i++) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ =
			fake_recv(f, SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST);
		uint64_t seq = m->mem_request->seq;
		assert_true(seq >= 1 && seq <= c->want && !ids[seq]);
		ids[seq] = m->mem_request->request_id;
	}
	if (c->want < c->max_inflight) {
		send_snapshot(f, 100, 1);
		send_mem_reply(f, ids[1], 0, "a", 1);
		Sysgate__V1__Envelope *a1 _cleanup_envelope_ = expect_action(f, 1);
		expect_return(a1, 1);
		Sysgate__V1__Envelope *a100 _cleanup_envelope_ = expect_action(f, 100);
		assert_int_equal(a100->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_ERRNO);
	} else {
		send_mem_reply(f, ids[1], 0, "a", 1);
		Sysgate__V1__Envelope *a1 _cleanup_envelope_ = expect_action(f, 1);
		expect_return(a1, 1);
	}
	for (uint64_t seq = 2; seq <= c->want; seq++)
		send_mem_reply(f, ids[seq], 0, "ab", 2);
	bool answered[POOL_MAX + 1] = { false };
	for (unsigned i = 1; i < c->want; i++) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ =
			expect_action_among(f, answered, 2, c->want);
		expect_return(m, 2);
	}
	fake_finish(f);
}

/* The run ends while a handler waits for memory: its read fails, the
 * handler returns, and no Action is sent; sg_worker_run() returns 0 for a
 * Goodbye, -ECONNRESET for a link that closed without one. */
struct end_case {
	const char *name;
	bool goodbye; /* else the link closes */
};

static struct end_case end_cases[] = {
	{ "Goodbye while a handler waits for memory", true },
	{ "link closed while a handler waits for memory", false },
};

static void test_end_while_waiting(void **state)
{
	const struct end_case *c = *state;
	ssize_t read_result = 1;
	struct fake *f _cleanup_fake_ = fake_serving(NULL, h_read5_note, &read_result);
	send_snapshot(f, 1, 0);
	expect_mem_request(f, 1, SYSGATE__V1__MEM_REQUEST__OP__READ, 0x5555deadbeef, 5);
	if (c->goodbye)
		send_goodbye(f);
	else
		fake_close_link(f);
	/* Only Goodbye is an orderly end: a lost link is reported. */
	assert_int_equal(fake_join(f), c->goodbye ? 0 : -ECONNRESET);
	/* sg_worker_run() returned after the handler: its result is in. */
	assert_int_equal(read_result, -ECONNRESET);
}

/* A protocol error while handlers wait for memory: the worker sends Error
 * (EPROTO, naming the cause), the waiting reads fail, the run ends with
 * -EPROTO. */
struct proto_case {
	const char *name;
	const char *threads;   /* SYSGATE_WORKER_THREADS, or NULL */
	uint32_t max_inflight; /* snapshots sent, before the offending message */
	unsigned waiting;      /* handlers then waiting for memory */
	enum { EXTRA_SNAPSHOT, UNKNOWN_REPLY, LONG_REPLY } offence;
	const char *message; /* part of the Error's message */
};

static struct proto_case proto_cases[] = {
	{ "max_inflight 1: a second Snapshot", NULL, 1, 1, EXTRA_SNAPSHOT, "max_inflight (1)" },
	{ "max_inflight 4: a fifth Snapshot", NULL, 4, 4, EXTRA_SNAPSHOT, "max_inflight (4)" },
	{ "queued Snapshots count against max_inflight", "1", 3, 1, EXTRA_SNAPSHOT,
	  "max_inflight (3)" },
	{ "MemReply with an unknown request_id", NULL, 2, 2, UNKNOWN_REPLY,
	  "no memory request pending" },
	{ "MemReply with more bytes than asked for", NULL, 2, 2, LONG_REPLY,
	  "more bytes than asked for" },
};

static void test_protocol_error_while_waiting(void **state)
{
	const struct proto_case *c = *state;
	ssize_t results[4] = { 1, 1, 1, 1 };
	struct fake *f _cleanup_fake_ = fake_new_threads("w", c->threads);
	assert_true(c->max_inflight <= ARRAY_SIZE(results));
	for (unsigned i = 0; i < c->max_inflight; i++)
		assert_int_equal(
			sg_worker_on(f->worker, "openat", h_read5_note, &results[i], SG_EXC_KILL),
			0);
	fake_handshake_inflight(f, c->max_inflight);
	for (unsigned i = 0; i < c->max_inflight; i++)
		send_snapshot(f, i + 1, i);
	uint64_t last_id = 0;
	for (unsigned i = 0; i < c->waiting; i++) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ =
			fake_recv(f, SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST);
		last_id = m->mem_request->request_id;
	}
	switch (c->offence) {
	case EXTRA_SNAPSHOT:
		send_snapshot(f, 99, 0);
		break;
	case UNKNOWN_REPLY:
		send_mem_reply(f, 1000, 0, "x", 1);
		break;
	case LONG_REPLY:
		send_mem_reply(f, last_id, 0, "abcdef", 6);
		break;
	}
	expect_protocol_error(f, c->message);
	/* Every handler that got to read was told the run failed. */
	unsigned failed = 0;
	for (unsigned i = 0; i < c->max_inflight; i++) {
		if (results[i] != 1) {
			assert_int_equal(results[i], -EPROTO);
			failed++;
		}
	}
	assert_int_equal(failed, c->waiting);
}

static void test_registration_out_of_range(void **state)
{
	(void)state;
	struct fake *f _cleanup_fake_ = fake_serving(NULL, h_errno, NULL);
	send_snapshot(f, 9, 1);
	expect_protocol_error(f, "registration 1");
}

/* A MemReply nobody asked for is a protocol error. */
static void test_unexpected_mem_reply(void **state)
{
	(void)state;
	struct fake *f _cleanup_fake_ = fake_new("w");
	fake_handshake(f);
	send_mem_reply(f, 1, 0, "x", 1);
	/* Read the worker's Error before closing: nng 1.5.2 can hang in
	 * nng_close on a pair1 socket with an unread message in flight. */
	expect_protocol_error(f, NULL);
}

/* The link closing without Goodbye ends the run too, as a failure: a
 * worker never leaves a run with 0 unless told to (issue 12 item 17). */
static void test_link_closed(void **state)
{
	(void)state;
	struct fake *f _cleanup_fake_ = fake_serving(NULL, h_errno, NULL);
	fake_close_link(f);
	assert_int_equal(fake_join(f), -ECONNRESET);
}

/* ---- Records and notification flags ------------------------------------------ */

static const char s_record[] = "{\"path\":\"/etc/passwd\",\"n\":[1,2]}";
/* A JSON string of exactly PROTO_MAX_RECORD bytes, and one byte more. */
static char big_record[PROTO_MAX_RECORD + 1];

/* What h_emit's sg_worker_emit calls returned, and the context it saw. */
struct emitted {
	sg_worker *w;
	int ok, at_cap, over_cap, null_json, empty, null_worker;
	uint32_t flags;
	const sg_ctx *ctx;
};

/* Emits s_record and the record at the cap (in that order, before its
 * Action), and tries what is refused. */
static int h_emit(const sg_ctx *ctx, sg_action *out, void *ud)
{
	struct emitted *e = ud;
	e->ctx = ctx;
	e->flags = sg_ctx_flags(ctx);
	e->null_worker = sg_worker_emit(NULL, s_record, strlen(s_record));
	e->null_json = sg_worker_emit(e->w, NULL, 5);
	e->empty = sg_worker_emit(e->w, s_record, 0);
	e->over_cap = sg_worker_emit(e->w, big_record, PROTO_MAX_RECORD + 1);
	e->ok = sg_worker_emit(e->w, s_record, strlen(s_record));
	e->at_cap = sg_worker_emit(e->w, big_record, PROTO_MAX_RECORD);
	sg_continue(out);
	return 0;
}

/* The next message, a Record that must carry exactly json[0..len). */
static void expect_record(struct fake *f, const void *json, size_t len)
{
	Sysgate__V1__Envelope *m _cleanup_envelope_ =
		fake_recv(f, SYSGATE__V1__ENVELOPE__BODY_RECORD);
	assert_int_equal(m->record->json.len, len);
	assert_memory_equal(m->record->json.data, json, len);
}

/* What h_emit sends for Snapshot seq: its two records, then continue. */
static void expect_emitted(struct fake *f, uint64_t seq)
{
	expect_record(f, s_record, strlen(s_record));
	expect_record(f, big_record, PROTO_MAX_RECORD);
	Sysgate__V1__Envelope *a _cleanup_envelope_ = expect_action(f, seq);
	assert_int_equal(a->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_CONTINUE);
}

/* Records a handler emits reach the supervisor byte for byte, before the
 * handler's Action; what is refused sends nothing. Another thread may emit
 * while the run lasts, nobody after it. */
static void test_emit(void **state)
{
	(void)state;
	struct fake *f _cleanup_fake_ = fake_new("w");
	struct emitted e = { .w = f->worker, .ok = 1, .at_cap = 1 };
	assert_int_equal(sg_worker_on(f->worker, "openat", h_emit, &e, SG_EXC_KILL), 0);
	fake_handshake(f);
	send_snapshot(f, 3, 0);

	expect_emitted(f, 3);
	assert_int_equal(e.ok, 0);
	assert_int_equal(e.at_cap, 0);
	assert_int_equal(e.over_cap, -EMSGSIZE);
	assert_int_equal(e.null_json, -EINVAL);
	assert_int_equal(e.empty, -EINVAL);
	assert_int_equal(e.null_worker, -EINVAL);

	/* From the test's thread, outside any handler: the length counts, not
	 * a NUL. */
	assert_int_equal(sg_worker_emit(f->worker, "[1,2][3]", 5), 0);
	expect_record(f, "[1,2]", 5);

	fake_finish(f);
	assert_int_equal(sg_worker_emit(f->worker, s_record, strlen(s_record)), -ENOTCONN);
	assert_int_equal(sg_worker_emit(f->worker, NULL, 1), -EINVAL);
}

/* Before sg_worker_run, and while it waits for Welcome: not connected.
 * The arguments are checked first. */
static void test_emit_before_welcome(void **state)
{
	(void)state;
	struct fake *f _cleanup_fake_ = fake_new("w");
	assert_int_equal(sg_worker_on(f->worker, "openat", h_errno, NULL, SG_EXC_KILL), 0);
	assert_int_equal(sg_worker_emit(f->worker, s_record, strlen(s_record)), -ENOTCONN);
	assert_int_equal(sg_worker_emit(f->worker, NULL, 5), -EINVAL);
	assert_int_equal(sg_worker_emit(f->worker, s_record, 0), -EINVAL);
	assert_int_equal(sg_worker_emit(f->worker, big_record, PROTO_MAX_RECORD + 1), -EMSGSIZE);
	assert_int_equal(sg_worker_emit(NULL, s_record, strlen(s_record)), -EINVAL);

	Sysgate__V1__Envelope *hello _cleanup_envelope_ = fake_start_hello(f);
	/* Hello sent, no Welcome yet. */
	assert_int_equal(sg_worker_emit(f->worker, s_record, strlen(s_record)), -ENOTCONN);
	send_welcome(f, true);
	/* Nothing was sent meanwhile: the next message is the Action. */
	send_snapshot(f, 1, 0);
	Sysgate__V1__Envelope *a _cleanup_envelope_ = expect_action(f, 1);
	assert_int_equal(a->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_ERRNO);
	fake_finish(f);
	assert_int_equal(sg_worker_emit(f->worker, s_record, strlen(s_record)), -ENOTCONN);
}

/* A run the supervisor refused never connects. */
static void test_emit_not_accepted(void **state)
{
	(void)state;
	struct fake *f _cleanup_fake_ = fake_new("w");
	Sysgate__V1__Envelope *hello _cleanup_envelope_ = fake_start_hello(f);
	send_welcome(f, false);
	assert_int_equal(fake_join(f), -EPERM);
	assert_int_equal(sg_worker_emit(f->worker, s_record, strlen(s_record)), -ENOTCONN);
}

/* ---- Tracked injection: Injected ------------------------------------------------ */

/* What the sg_injected_fn saw, shared with the handlers (atomics). */
struct tracked {
	unsigned calls;
	int last_fd; /* of the latest Injected, -1 before the first */
	pid_t pid;
	uint64_t cookie;
	pthread_t thread;
};

static void on_injected(pid_t pid, int fd, uint64_t cookie, void *ud)
{
	struct tracked *t = ud;
	t->pid = pid;
	t->cookie = cookie;
	t->thread = pthread_self();
	__atomic_add_fetch(&t->calls, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->last_fd, fd, __ATOMIC_SEQ_CST); /* last: what handlers look at */
}

/* Answers with the fd of the latest Injected the callback saw (-1: none). */
static int h_tracked_fd(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx;
	struct tracked *t = ud;
	sg_return(out, __atomic_load_n(&t->last_fd, __ATOMIC_SEQ_CST));
	return 0;
}

/* The callback gets Injected's fields, on the thread that runs the worker,
 * before the handler of the Snapshot that follows it is called. */
static void test_injected(void **state)
{
	(void)state;
	struct tracked t = { .last_fd = -1 };
	struct fake *f _cleanup_fake_ = fake_new("w");
	assert_int_equal(sg_worker_on(f->worker, "openat", h_tracked_fd, &t, SG_EXC_KILL), 0);
	assert_int_equal(sg_worker_on_injected(f->worker, on_injected, &t), 0);
	fake_handshake(f);
	send_injected(f, 1, 4242, 7, UINT64_MAX);
	send_snapshot(f, 2, 0);
	Sysgate__V1__Envelope *a _cleanup_envelope_ = expect_action(f, 2);
	assert_int_equal(a->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_RETURN);
	assert_int_equal(a->action->do_return->value, 7);
	assert_int_equal(__atomic_load_n(&t.calls, __ATOMIC_SEQ_CST), 1);
	assert_int_equal(t.pid, 4242);
	assert_true(t.cookie == UINT64_MAX);
	assert_true(pthread_equal(t.thread, f->thread));
	fake_finish(f);
	/* Once the run started, the callback is fixed. */
	assert_int_equal(sg_worker_on_injected(f->worker, NULL, NULL), -EBUSY);
	assert_int_equal(sg_worker_on_injected(f->worker, on_injected, &t), -EBUSY);
}

/* sg_worker_set_thread_wrap: each handler thread runs its body inside the
 * wrap (once per thread), so handlers are called from within it. */
struct wrapped {
	int wraps;
};

static __thread bool in_wrap;

static void *wrap_body(void *(*run)(void *), void *arg, void *ud)
{
	struct wrapped *t = ud;
	__atomic_add_fetch(&t->wraps, 1, __ATOMIC_SEQ_CST);
	in_wrap = true;
	void *r = run(arg);
	in_wrap = false;
	return r;
}

/* Returns 1 if called within the wrap, 0 otherwise. */
static int h_in_wrap(const sg_ctx *ctx, sg_action *out, void *ud)
{
	(void)ctx;
	(void)ud;
	sg_return(out, in_wrap);
	return 0;
}

static void test_thread_wrap(void **state)
{
	(void)state;
	struct wrapped t = { 0 };
	struct fake *f _cleanup_fake_ = fake_new_threads("w", "2");
	assert_int_equal(sg_worker_set_thread_wrap(NULL, wrap_body, &t), -EINVAL);
	assert_int_equal(sg_worker_on(f->worker, "openat", h_in_wrap, NULL, SG_EXC_KILL), 0);
	assert_int_equal(sg_worker_set_thread_wrap(f->worker, wrap_body, &t), 0);
	fake_handshake(f);
	send_snapshot(f, 1, 0);
	Sysgate__V1__Envelope *a _cleanup_envelope_ = expect_action(f, 1);
	assert_int_equal(a->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_RETURN);
	assert_int_equal(a->action->do_return->value, 1);
	fake_finish(f);
	assert_int_equal(__atomic_load_n(&t.wraps, __ATOMIC_SEQ_CST), 2); /* one per thread */
	assert_int_equal(sg_worker_set_thread_wrap(f->worker, NULL, NULL), -EBUSY);
}

/* Many Injected/Snapshot pairs sent at once to 4 handler threads: the
 * handler for Snapshot k always finds the callback for the Injected sent
 * before it done (fd k, or a later one it ran for meanwhile). */
#define N_TRACKED 32

static void test_injected_before_later_snapshots(void **state)
{
	(void)state;
	struct tracked t = { .last_fd = -1 };
	struct fake *f _cleanup_fake_ = fake_new_threads("w", "4");
	assert_int_equal(sg_worker_on(f->worker, "openat", h_tracked_fd, &t, SG_EXC_KILL), 0);
	assert_int_equal(sg_worker_on_injected(f->worker, on_injected, &t), 0);
	fake_handshake_inflight(f, 64);
	for (int k = 1; k <= N_TRACKED; k++) {
		send_injected(f, (uint64_t)k, 4242, k, (uint64_t)k);
		send_snapshot(f, (uint64_t)k, 0);
	}
	bool seen[N_TRACKED + 1] = { false };
	for (int i = 0; i < N_TRACKED; i++) {
		Sysgate__V1__Envelope *a _cleanup_envelope_ =
			expect_action_among(f, seen, 1, N_TRACKED);
		uint64_t seq = a->action->seq;
		assert_int_equal(a->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_RETURN);
		if (a->action->do_return->value < (int64_t)seq)
			fail_msg("the handler of Snapshot %llu saw fd %lld: its Injected was not "
				 "handled first",
				 (unsigned long long)seq, (long long)a->action->do_return->value);
	}
	assert_int_equal(__atomic_load_n(&t.calls, __ATOMIC_SEQ_CST), N_TRACKED);
	assert_true(t.cookie == N_TRACKED);
	fake_finish(f);
}

/* Without a callback (never set, or removed with NULL) Injected is
 * ignored: the run goes on. */
static void test_injected_ignored(void **state)
{
	(void)state;
	struct tracked t = { .last_fd = -1 };
	assert_int_equal(sg_worker_on_injected(NULL, on_injected, &t), -EINVAL);
	for (int removed = 0; removed <= 1; removed++) {
		struct fake *f _cleanup_fake_ = fake_new("w");
		assert_int_equal(sg_worker_on(f->worker, "openat", h_tracked_fd, &t, SG_EXC_KILL),
				 0);
		if (removed) {
			assert_int_equal(sg_worker_on_injected(f->worker, on_injected, &t), 0);
			assert_int_equal(sg_worker_on_injected(f->worker, NULL, &t), 0);
		}
		fake_handshake(f);
		send_injected(f, 1, 4242, 7, 5);
		send_snapshot(f, 2, 0);
		Sysgate__V1__Envelope *a _cleanup_envelope_ = expect_action(f, 2);
		assert_int_equal(a->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_RETURN);
		assert_int_equal(a->action->do_return->value, -1);
		fake_finish(f);
	}
	assert_int_equal(t.calls, 0);
}

/* Injected before Welcome is out of turn. */
static void test_injected_before_welcome(void **state)
{
	(void)state;
	struct tracked t = { .last_fd = -1 };
	struct fake *f _cleanup_fake_ = fake_new("w");
	assert_int_equal(sg_worker_on_injected(f->worker, on_injected, &t), 0);
	Sysgate__V1__Envelope *hello _cleanup_envelope_ = fake_start_hello(f);
	send_injected(f, 1, 4242, 7, 5);
	assert_int_equal(fake_join(f), -EPROTO);
	assert_int_equal(t.calls, 0);
}

/* sg_ctx_flags: the Snapshot's flags in the handler call, 0 once it
 * returned. */
struct flags_case {
	const char *name;
	uint32_t flags;
};

static struct flags_case flags_cases[] = {
	{ "sg_ctx_flags 1", 1 },
	{ "sg_ctx_flags 0", 0 },
	{ "sg_ctx_flags UINT32_MAX", UINT32_MAX },
};

static void test_ctx_flags(void **state)
{
	const struct flags_case *c = *state;
	struct emitted e = { .flags = ~c->flags };
	struct fake *f _cleanup_fake_ = fake_new("w");
	e.w = f->worker;
	assert_int_equal(sg_worker_on(f->worker, "openat", h_emit, &e, SG_EXC_KILL), 0);
	fake_handshake(f);
	send_snapshot_flags(f, 4, 0, c->flags);
	expect_emitted(f, 4);
	assert_true(e.flags == c->flags);
	/* The context the test kept is stale now. */
	assert_non_null(e.ctx);
	assert_int_equal(sg_ctx_flags(e.ctx), 0);
	assert_int_equal(sg_ctx_flags(NULL), 0);
	fake_finish(f);
}

/* ---- Deferred answers ----------------------------------------------------------- */

/* The answers h_defer deferred, in the order of its calls, for the test's
 * thread to complete. */
struct deferrals {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	sg_deferred *d[8];
	const sg_ctx *call_ctx[8]; /* the handler call's own context */
	unsigned n;
	int defer_errno; /* errno of a failed sg_defer, or 0 */
};

#define DEFERRALS_INIT                                                                             \
	{                                                                                          \
		PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { 0 }, { 0 }, 0, 0            \
	}

/* Defers every call. Whatever it sets on out and returns is ignored. */
static int h_defer(const sg_ctx *ctx, sg_action *out, void *ud)
{
	struct deferrals *s = ud;
	sg_errno(out, EPERM);
	sg_deferred *d = sg_defer(ctx);
	pthread_mutex_lock(&s->lock);
	if (!d) {
		s->defer_errno = errno;
	} else if (s->n < ARRAY_SIZE(s->d)) {
		s->call_ctx[s->n] = ctx;
		s->d[s->n++] = d;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return d ? 7 : 1;
}

/* The i-th deferred answer, waiting (bounded) for its handler call. */
static sg_deferred *deferred_nth(struct deferrals *s, unsigned i)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += TIMEOUT_MS / 1000;
	pthread_mutex_lock(&s->lock);
	int r = 0;
	while (s->n <= i && !s->defer_errno && r == 0)
		r = pthread_cond_timedwait(&s->cond, &s->lock, &deadline);
	sg_deferred *d = s->n > i ? s->d[i] : NULL;
	int err = s->defer_errno;
	pthread_mutex_unlock(&s->lock);
	if (!d)
		fail_msg("no deferred answer #%u (sg_defer: %s)", i,
			 err ? strerror(err) : "not called");
	return d;
}

/* One handler thread, h_defer (s) for openat and h_errno for getpid: the
 * call for Snapshot 1 (openat, with flags) defers, and the thread answers
 * Snapshot 2 (getpid) meanwhile. Completing seq 1 is the caller's. */
static struct fake *fake_deferring(struct deferrals *s, uint32_t flags)
{
	struct fake *f = fake_new_threads("w", "1");
	assert_int_equal(sg_worker_on(f->worker, "openat", h_defer, s, SG_EXC_KILL), 0);
	assert_int_equal(sg_worker_on(f->worker, "getpid", h_errno, NULL, SG_EXC_KILL), 0);
	fake_handshake(f);
	send_snapshot_flags(f, 1, 0, flags);
	send_snapshot(f, 2, 1);
	Sysgate__V1__Envelope *a2 _cleanup_envelope_ = expect_action(f, 2);
	assert_int_equal(a2->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_ERRNO);
	return f;
}

static void a_continue(sg_action *a)
{
	sg_continue(a);
}

static void a_errno(sg_action *a)
{
	sg_errno(a, EACCES);
}

static void a_return(sg_action *a)
{
	sg_return(a, -42);
}

static void a_kill(sg_action *a)
{
	sg_kill(a, 15);
}

static void a_inject(sg_action *a)
{
	assert_int_equal(sg_inject_bytes(a, "hello", 5, SG_INJECT_WRITABLE), 0);
}

static void a_none(sg_action *a)
{
	(void)a;
}

static void a_two(sg_action *a)
{
	sg_continue(a);
	sg_return(a, 1);
}

struct defer_case {
	const char *name;
	void (*answer)(sg_action *a);
	bool cancel; /* sg_deferred_cancel, not sg_complete */
	Sysgate__V1__Action__KindCase want;
	int64_t value;           /* errnum, return value, signal or inject flags */
	const char *fail_reason; /* part of do_fail's reason */
};

static struct defer_case defer_cases[] = {
	{ "deferred continue", a_continue, false, SYSGATE__V1__ACTION__KIND_DO_CONTINUE, 0, NULL },
	{ "deferred errno(EACCES)", a_errno, false, SYSGATE__V1__ACTION__KIND_DO_ERRNO, EACCES,
	  NULL },
	{ "deferred return(-42)", a_return, false, SYSGATE__V1__ACTION__KIND_DO_RETURN, -42, NULL },
	{ "deferred kill(15)", a_kill, false, SYSGATE__V1__ACTION__KIND_DO_KILL, 15, NULL },
	{ "deferred inject_bytes", a_inject, false, SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES,
	  SG_INJECT_WRITABLE, NULL },
	{ "deferred, no action set: fail", a_none, false, SYSGATE__V1__ACTION__KIND_DO_FAIL, 0,
	  "handler for openat set no action (seq 1)" },
	{ "deferred, two actions set: fail", a_two, false, SYSGATE__V1__ACTION__KIND_DO_FAIL, 0,
	  "set 2 actions" },
	{ "deferred, cancelled: fail", a_continue, true, SYSGATE__V1__ACTION__KIND_DO_FAIL, 0,
	  "handler for openat cancelled its deferred answer (seq 1)" },
};

/* Seq 1 deferred while seq 2 was answered (fake_deferring); the test's
 * thread completes it afterwards. */
static void test_defer(void **state)
{
	const struct defer_case *c = *state;
	struct deferrals s = DEFERRALS_INIT;
	struct fake *f _cleanup_fake_ = fake_deferring(&s, 0);
	sg_deferred *d = deferred_nth(&s, 0);
	c->answer(sg_deferred_action(d));
	assert_int_equal(c->cancel ? sg_deferred_cancel(d) : sg_complete(d), 0);
	Sysgate__V1__Envelope *m _cleanup_envelope_ = expect_action(f, 1);
	/* An untracked inject (a_inject) carries no cookie. */
	check_action(m->action, c->want, c->value, 0, c->fail_reason);
	fake_finish(f);
}

/* What a completing thread did with a deferred answer's context. */
struct completer {
	pthread_t thread;
	sg_deferred *d;
	ssize_t read_result;
	char buf[5];
	int complete_result;
};

/* Reads 5 bytes at arg 1 through the deferred context, answers return(what
 * the read returned) and completes. */
static void *complete_after_read(void *arg)
{
	struct completer *c = arg;
	const sg_ctx *ctx = sg_deferred_ctx(c->d);
	c->read_result = sg_ctx_read(ctx, sg_ctx_arg(ctx, 1), c->buf, sizeof(c->buf));
	sg_return(sg_deferred_action(c->d), c->read_result);
	c->complete_result = sg_complete(c->d);
	return NULL;
}

/* The deferred answer's context is a live copy of its call's: its fields and
 * paths, and memory reads served for its seq, while the call's own context
 * is stale. */
static void test_defer_ctx_is_live(void **state)
{
	(void)state;
	struct deferrals s = DEFERRALS_INIT;
	struct fake *f _cleanup_fake_ = fake_deferring(&s, 1);
	struct completer c = { .d = deferred_nth(&s, 0), .read_result = 1 };
	const sg_ctx *ctx = sg_deferred_ctx(c.d);
	assert_true(sg_ctx_id(ctx) == 0x1122334455667788u);
	assert_int_equal(sg_ctx_pid(ctx), 4242);
	assert_int_equal(sg_ctx_syscall(ctx), 257);
	assert_int_equal(sg_ctx_arch(ctx), AUDIT_ARCH_X86_64_);
	assert_int_equal(sg_ctx_flags(ctx), 1);
	assert_true(sg_ctx_ip(ctx) == 0x7ffff7e9a1b2u);
	assert_true(sg_ctx_arg(ctx, 1) == 0x5555deadbeef);
	assert_string_equal(sg_ctx_path(ctx, 1), "/etc/passwd");
	assert_null(sg_ctx_path(ctx, 3));
	assert_int_equal(sg_ctx_pid(s.call_ctx[0]), 0); /* the call's: stale */
	/* A deferred answer's context cannot defer again. */
	errno = 0;
	assert_null(sg_defer(ctx));
	assert_int_equal(errno, EINVAL);

	assert_int_equal(pthread_create(&c.thread, NULL, complete_after_read, &c), 0);
	uint64_t id =
		expect_mem_request(f, 1, SYSGATE__V1__MEM_REQUEST__OP__READ, 0x5555deadbeef, 5);
	send_mem_reply(f, id, 0, "abcde", 5);
	Sysgate__V1__Envelope *a1 _cleanup_envelope_ = expect_action(f, 1);
	expect_return(a1, 5);
	assert_int_equal(pthread_join(c.thread, NULL), 0);
	assert_int_equal(c.read_result, 5);
	assert_memory_equal(c.buf, "abcde", 5);
	assert_int_equal(c.complete_result, 0);
	fake_finish(f);
}

/* What h_defer_now saw. */
struct defer_now {
	const sg_ctx *ctx;
	int again_errno, complete_result;
};

/* Defers, tries to defer again, and completes before returning (with an
 * action and a result of its own, both ignored). */
static int h_defer_now(const sg_ctx *ctx, sg_action *out, void *ud)
{
	struct defer_now *s = ud;
	s->ctx = ctx;
	sg_deferred *d = sg_defer(ctx);
	if (!d)
		return 1;
	errno = 0;
	s->again_errno = sg_defer(ctx) ? 0 : errno;
	sg_return(sg_deferred_action(d), 7);
	s->complete_result = sg_complete(d);
	sg_errno(out, EPERM);
	return 1;
}

/* Completed before its handler returned: the answer leaves once it did.
 * One sg_defer per call; a context whose call is over cannot defer. */
static void test_defer_completed_in_handler(void **state)
{
	(void)state;
	struct defer_now s = { 0 };
	struct fake *f _cleanup_fake_ = fake_serving(NULL, h_defer_now, &s);
	send_snapshot(f, 1, 0);
	Sysgate__V1__Envelope *a _cleanup_envelope_ = expect_action(f, 1);
	expect_return(a, 7);
	assert_int_equal(s.again_errno, EALREADY);
	assert_int_equal(s.complete_result, 0);
	errno = 0;
	assert_null(sg_defer(s.ctx));
	assert_int_equal(errno, ESTALE);
	fake_finish(f);
}

/* A deferred answer outlives the run, and even the worker: its context
 * still reads its fields, memory calls fail, completing sends nothing and
 * frees it (the sanitizer build checks for leaks and use after free). */
struct defer_end_case {
	const char *name;
	bool cancel;
	bool free_first; /* sg_worker_free before completing */
};

static struct defer_end_case defer_end_cases[] = {
	{ "deferred answer completed after the run", false, false },
	{ "deferred answer cancelled after the run", true, false },
	{ "deferred answer completed after sg_worker_free", false, true },
	{ "deferred answer cancelled after sg_worker_free", true, true },
};

static void test_defer_after_end(void **state)
{
	const struct defer_end_case *c = *state;
	struct deferrals s = DEFERRALS_INIT;
	struct fake *f _cleanup_fake_ = fake_serving(NULL, h_defer, &s);
	send_snapshot(f, 1, 0);
	sg_deferred *d = deferred_nth(&s, 0);
	fake_finish(f);
	if (c->free_first) {
		sg_worker_free(f->worker);
		f->worker = NULL;
	}
	const sg_ctx *ctx = sg_deferred_ctx(d);
	assert_int_equal(sg_ctx_pid(ctx), 4242);
	char buf[4];
	assert_int_equal(sg_ctx_read(ctx, 0x1000, buf, sizeof(buf)), -ECONNRESET);
	sg_continue(sg_deferred_action(d));
	assert_int_equal(c->cancel ? sg_deferred_cancel(d) : sg_complete(d), -ENOTCONN);
}

/* A deferred answer counts against max_inflight until it is completed. */
static void test_defer_counts_in_flight(void **state)
{
	(void)state;
	struct deferrals s = DEFERRALS_INIT;
	struct fake *f _cleanup_fake_ = fake_new_threads("w", "1");
	assert_int_equal(sg_worker_on(f->worker, "openat", h_defer, &s, SG_EXC_KILL), 0);
	fake_handshake_inflight(f, 1);
	send_snapshot(f, 1, 0);
	sg_deferred *d = deferred_nth(&s, 0);
	sg_continue(sg_deferred_action(d));
	assert_int_equal(sg_complete(d), 0);
	Sysgate__V1__Envelope *a1 _cleanup_envelope_ = expect_action(f, 1);
	assert_int_equal(a1->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_CONTINUE);
	/* Completed: room for the next one, which stays pending. */
	send_snapshot(f, 2, 0);
	d = deferred_nth(&s, 1);
	send_snapshot(f, 3, 0);
	expect_protocol_error(f, "max_inflight (1)");
	assert_int_equal(sg_complete(d), -ENOTCONN);
}

static void *complete_continue(void *arg)
{
	sg_deferred *d = arg;
	sg_continue(sg_deferred_action(d));
	return (void *)(intptr_t)sg_complete(d);
}

/* Eight answers pending at once, completed by eight threads at once. */
static void test_defer_many(void **state)
{
	(void)state;
	enum { N = 8 };
	struct deferrals s = DEFERRALS_INIT;
	struct fake *f _cleanup_fake_ = fake_new_threads("w", "2");
	assert_int_equal(sg_worker_on(f->worker, "openat", h_defer, &s, SG_EXC_KILL), 0);
	fake_handshake_inflight(f, N);
	for (uint64_t seq = 1; seq <= N; seq++)
		send_snapshot(f, seq, 0);
	pthread_t threads[N];
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(
			pthread_create(&threads[i], NULL, complete_continue, deferred_nth(&s, i)),
			0);
	bool answered[N + 1] = { false };
	for (unsigned i = 0; i < N; i++) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ =
			expect_action_among(f, answered, 1, N);
		assert_int_equal(m->action->kind_case, SYSGATE__V1__ACTION__KIND_DO_CONTINUE);
	}
	for (unsigned i = 0; i < N; i++) {
		void *r = NULL;
		assert_int_equal(pthread_join(threads[i], &r), 0);
		assert_int_equal((intptr_t)r, 0);
	}
	fake_finish(f);
}

static void test_defer_null(void **state)
{
	(void)state;
	errno = 0;
	assert_null(sg_defer(NULL));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sg_complete(NULL), -EINVAL);
	assert_int_equal(sg_deferred_cancel(NULL), -EINVAL);
	assert_null(sg_deferred_ctx(NULL));
	assert_null(sg_deferred_action(NULL));
}

static const struct CMUnitTest fixed_tests[] = {
	cmocka_unit_test(test_hello),
	cmocka_unit_test(test_hello_name_from_argument),
	cmocka_unit_test(test_not_accepted),
	cmocka_unit_test(test_bad_token),
	cmocka_unit_test(test_registration_errors),
	cmocka_unit_test(test_ctx_accessors),
	cmocka_unit_test(test_registration_out_of_range),
	cmocka_unit_test(test_unexpected_mem_reply),
	cmocka_unit_test(test_link_closed),
	cmocka_unit_test(test_concurrent_handlers),
	cmocka_unit_test(test_ctx_from_another_thread),
	cmocka_unit_test(test_emit),
	cmocka_unit_test(test_emit_before_welcome),
	cmocka_unit_test(test_emit_not_accepted),
	cmocka_unit_test(test_injected),
	cmocka_unit_test(test_injected_before_later_snapshots),
	cmocka_unit_test(test_injected_ignored),
	cmocka_unit_test(test_injected_before_welcome),
	cmocka_unit_test(test_defer_ctx_is_live),
	cmocka_unit_test(test_defer_completed_in_handler),
	cmocka_unit_test(test_defer_counts_in_flight),
	cmocka_unit_test(test_defer_many),
	cmocka_unit_test(test_defer_null),
	cmocka_unit_test(test_thread_wrap),
};

static int teardown_fake(void **state)
{
	(void)state;
	fake_free(&current_fake);
	unsetenv("SYSGATE_WORKER_THREADS");
	return 0;
}

int main(void)
{
	memset(big_record, 'x', sizeof(big_record));
	big_record[0] = '"';
	big_record[PROTO_MAX_RECORD - 1] = '"';
	struct CMUnitTest tests[ARRAY_SIZE(fixed_tests) + ARRAY_SIZE(action_cases) +
				ARRAY_SIZE(read_cases) + ARRAY_SIZE(pool_cases) +
				ARRAY_SIZE(end_cases) + ARRAY_SIZE(proto_cases) +
				ARRAY_SIZE(flags_cases) + ARRAY_SIZE(defer_cases) +
				ARRAY_SIZE(defer_end_cases)];
	size_t n = 0;
	UNIT_TESTS(tests, n, fixed_tests);
	UNIT_ROWS(tests, n, test_action, action_cases);
	UNIT_ROWS(tests, n, test_read, read_cases);
	UNIT_ROWS(tests, n, test_pool, pool_cases);
	UNIT_ROWS(tests, n, test_end_while_waiting, end_cases);
	UNIT_ROWS(tests, n, test_protocol_error_while_waiting, proto_cases);
	UNIT_ROWS(tests, n, test_ctx_flags, flags_cases);
	UNIT_ROWS(tests, n, test_defer, defer_cases);
	UNIT_ROWS(tests, n, test_defer_after_end, defer_end_cases);
	for (size_t i = 0; i < n; i++)
		tests[i].teardown_func = teardown_fake;
	return cmocka_run_group_tests_name("sdk_worker", tests, NULL, NULL);
}
