/* The wire codec: every message kind survives encode and decode field for
 * field; what an untrusted worker may send wrong is refused, one row per
 * rule; truncated, garbled and oversized input is refused without a
 * crash. */
#include "unit.h"

#include <signal.h>
#include <string.h>

#include "protocol.h"

#define AUDIT_ARCH_X86_64_ 0xc000003eu
#define MAX_REGS (PROTO_MAX_REGISTRATIONS + 1)
#define N_PATHS (PROTO_MAX_PATHS + 1)

/* ---- Hand-built messages ------------------------------------------------- */

/* One message of any kind and everything it points to. The generated
 * *__INIT macros do not build with -Wcast-qual: the builders use the
 * generated init functions. */
struct msg {
	Sysgate__V1__Envelope env;
	Sysgate__V1__Hello hello;
	Sysgate__V1__Registration regs[MAX_REGS];
	Sysgate__V1__Registration *reg_ptrs[MAX_REGS];
	uint8_t token[PROTO_TOKEN_SIZE + 1];
	Sysgate__V1__Welcome welcome;
	Sysgate__V1__Snapshot snapshot;
	uint64_t args[PROTO_ARGS + 1];
	Sysgate__V1__PathArg paths[N_PATHS];
	Sysgate__V1__PathArg *path_ptrs[N_PATHS];
	Sysgate__V1__Action action;
	Sysgate__V1__Action__Continue act_continue;
	Sysgate__V1__Action__Errno act_errno;
	Sysgate__V1__Action__Return act_return;
	Sysgate__V1__Action__Kill act_kill;
	Sysgate__V1__Action__InjectBytes act_inject;
	Sysgate__V1__Action__Failed act_fail;
	Sysgate__V1__MemRequest mem_request;
	Sysgate__V1__MemReply mem_reply;
	Sysgate__V1__Goodbye goodbye;
	Sysgate__V1__Error error;
	Sysgate__V1__Record record;
	Sysgate__V1__Injected injected;
	char text[PROTO_MAX_TEXT + 2]; /* scratch for long strings */
};

/* Strings the messages point to (char *, not const, in protobuf-c). */
static char s_worker[] = "audit";
static char s_worker_utf8[] = "w\xc3\xb6rker-\xe2\x82\xac";
static char s_sandbox[] = "demo";
static char s_openat[] = "openat";
static char s_empty[] = "";
static char s_reason[] = "done";
static char s_message[] = "handler state lost";
static char s_newline[] = "two\nlines";
static char s_tab[] = "a\tb";
static char s_invalid_utf8[] = "bad\xff";
static char s_overlong_utf8[] = "slash\xc0\xaf";
static char s_surrogate[] = "x\xed\xa0\x80";
static char s_cut_utf8[] = "cut\xe2\x82";
static uint8_t s_path[] = "/etc/passwd";
static uint8_t s_path_nul[] = "/etc\0passwd";
static uint8_t s_binary[] = "\0\xff\xc0\xaf";
static uint8_t s_json[] = "{\"seq\":7,\"path\":\"/etc/passwd\",\"n\":[1,2]}";

/* Data for the large rows: inject, memory and records at and past their
 * caps. */
static uint8_t big[PROTO_MAX_MESSAGE + 1];

static ProtobufCBinaryData bytes(uint8_t *data, size_t len)
{
	return (ProtobufCBinaryData){ .len = len, .data = data };
}

static char *long_text(struct msg *m, size_t len)
{
	assert_true(len < sizeof(m->text));
	memset(m->text, 'a', len);
	m->text[len] = '\0';
	return m->text;
}

static void envelope(struct msg *m)
{
	sysgate__v1__envelope__init(&m->env);
	m->env.version = SYSGATE_PROTOCOL_VERSION;
}

static void add_registration(struct msg *m, int64_t nr, char *name, uint32_t order,
			     Sysgate__V1__ExceptionPolicy on_exception)
{
	size_t i = m->hello.n_registrations++;
	assert_true(i < MAX_REGS);
	sysgate__v1__registration__init(&m->regs[i]);
	m->regs[i].syscall_nr = nr;
	m->regs[i].syscall_name = name;
	m->regs[i].order = order;
	m->regs[i].on_exception = on_exception;
	m->reg_ptrs[i] = &m->regs[i];
	m->hello.registrations = m->reg_ptrs;
}

static void build_hello(struct msg *m)
{
	envelope(m);
	sysgate__v1__hello__init(&m->hello);
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_HELLO;
	m->env.hello = &m->hello;
	m->hello.protocol_version = SYSGATE_PROTOCOL_VERSION;
	m->hello.worker_name = s_worker;
	for (size_t i = 0; i < sizeof(m->token); i++)
		m->token[i] = (uint8_t)(0xa0 + i);
	m->hello.token = bytes(m->token, PROTO_TOKEN_SIZE);
	add_registration(m, -1, s_openat, 0, SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM);
	add_registration(m, 39, s_empty, 1, SYSGATE__V1__EXCEPTION_POLICY__CONTINUE);
	add_registration(m, INT64_MAX, s_empty, UINT32_MAX,
			 SYSGATE__V1__EXCEPTION_POLICY__DENY_EIO);
}

static void build_hello_max_registrations(struct msg *m)
{
	build_hello(m);
	m->hello.n_registrations = 0;
	for (uint32_t i = 0; i < PROTO_MAX_REGISTRATIONS; i++)
		add_registration(m, i, s_empty, i, SYSGATE__V1__EXCEPTION_POLICY__KILL);
}

static void build_welcome(struct msg *m)
{
	envelope(m);
	sysgate__v1__welcome__init(&m->welcome);
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_WELCOME;
	m->env.welcome = &m->welcome;
	m->welcome.accepted = 1;
	m->welcome.sandbox = s_sandbox;
	m->welcome.max_inflight = 64;
	m->welcome.max_mem_request = PROTO_MAX_MEM;
	m->welcome.max_inject = 4096;
}

static void build_snapshot(struct msg *m)
{
	envelope(m);
	sysgate__v1__snapshot__init(&m->snapshot);
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT;
	m->env.snapshot = &m->snapshot;
	Sysgate__V1__Snapshot *s = &m->snapshot;
	s->seq = 7;
	s->notif_id = 0x1122334455667788u;
	s->pid = 4242;
	s->flags = 1;
	s->syscall_nr = 257;
	s->arch = AUDIT_ARCH_X86_64_;
	s->instruction_pointer = 0x7ffff7e9a1b2u;
	const uint64_t args[PROTO_ARGS + 1] = {
		(uint64_t)-100, 0x5555deadbeef, 0x80000, 0644, UINT64_MAX, 0, 99
	};
	memcpy(m->args, args, sizeof(args));
	s->n_args = PROTO_ARGS;
	s->args = m->args;
	s->sandbox = s_sandbox;
	for (unsigned i = 0; i < N_PATHS; i++) {
		sysgate__v1__path_arg__init(&m->paths[i]);
		m->paths[i].arg = i;
		m->path_ptrs[i] = &m->paths[i];
	}
	m->paths[0].arg = 1;
	m->paths[0].path = bytes(s_path, sizeof(s_path) - 1);
	m->paths[1].arg = 3;
	m->paths[1].unreadable = 1;
	s->n_paths = 2;
	s->paths = m->path_ptrs;
	s->registration = 3;
}

static void build_action(struct msg *m, Sysgate__V1__Action__KindCase kind)
{
	envelope(m);
	sysgate__v1__action__init(&m->action);
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_ACTION;
	m->env.action = &m->action;
	m->action.seq = 7;
	m->action.kind_case = kind;
	switch (kind) {
	case SYSGATE__V1__ACTION__KIND_DO_CONTINUE:
		sysgate__v1__action__continue__init(&m->act_continue);
		m->action.do_continue = &m->act_continue;
		break;
	case SYSGATE__V1__ACTION__KIND_DO_ERRNO:
		sysgate__v1__action__errno__init(&m->act_errno);
		m->act_errno.errnum = EACCES;
		m->action.do_errno = &m->act_errno;
		break;
	case SYSGATE__V1__ACTION__KIND_DO_RETURN:
		sysgate__v1__action__return__init(&m->act_return);
		m->act_return.value = -123456789012345;
		m->action.do_return = &m->act_return;
		break;
	case SYSGATE__V1__ACTION__KIND_DO_KILL:
		sysgate__v1__action__kill__init(&m->act_kill);
		m->act_kill.signal = SIGKILL;
		m->action.do_kill = &m->act_kill;
		break;
	case SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES:
		sysgate__v1__action__inject_bytes__init(&m->act_inject);
		m->act_inject.data = bytes(big, 4096);
		m->act_inject.flags = SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__NO_CLOEXEC;
		m->action.do_inject_bytes = &m->act_inject;
		break;
	case SYSGATE__V1__ACTION__KIND_DO_FAIL:
		sysgate__v1__action__failed__init(&m->act_fail);
		m->act_fail.reason = s_message;
		m->action.do_fail = &m->act_fail;
		break;
	case SYSGATE__V1__ACTION__KIND__NOT_SET:
	default:
		break;
	}
}

static void build_continue(struct msg *m)
{
	build_action(m, SYSGATE__V1__ACTION__KIND_DO_CONTINUE);
}

static void build_errno(struct msg *m)
{
	build_action(m, SYSGATE__V1__ACTION__KIND_DO_ERRNO);
}

static void build_return(struct msg *m)
{
	build_action(m, SYSGATE__V1__ACTION__KIND_DO_RETURN);
}

static void build_kill(struct msg *m)
{
	build_action(m, SYSGATE__V1__ACTION__KIND_DO_KILL);
}

static void build_inject(struct msg *m)
{
	build_action(m, SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES);
}

static void build_fail(struct msg *m)
{
	build_action(m, SYSGATE__V1__ACTION__KIND_DO_FAIL);
}

static void build_mem(struct msg *m, Sysgate__V1__MemRequest__Op op)
{
	envelope(m);
	sysgate__v1__mem_request__init(&m->mem_request);
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST;
	m->env.mem_request = &m->mem_request;
	m->mem_request.request_id = 3;
	m->mem_request.seq = 7;
	m->mem_request.op = op;
	m->mem_request.addr = 0x7ffc12345678u;
	m->mem_request.length = 256;
	if (op == SYSGATE__V1__MEM_REQUEST__OP__WRITE)
		m->mem_request.data = bytes(big, 256);
}

static void build_mem_read(struct msg *m)
{
	build_mem(m, SYSGATE__V1__MEM_REQUEST__OP__READ);
}

static void build_mem_read_cstr(struct msg *m)
{
	build_mem(m, SYSGATE__V1__MEM_REQUEST__OP__READ_CSTR);
}

static void build_mem_write(struct msg *m)
{
	build_mem(m, SYSGATE__V1__MEM_REQUEST__OP__WRITE);
}

static void build_mem_reply(struct msg *m)
{
	envelope(m);
	sysgate__v1__mem_reply__init(&m->mem_reply);
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY;
	m->env.mem_reply = &m->mem_reply;
	m->mem_reply.request_id = 3;
	m->mem_reply.data = bytes(s_path, sizeof(s_path) - 1);
}

static void build_goodbye(struct msg *m)
{
	envelope(m);
	sysgate__v1__goodbye__init(&m->goodbye);
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_GOODBYE;
	m->env.goodbye = &m->goodbye;
	m->goodbye.reason = s_reason;
}

static void build_error(struct msg *m)
{
	envelope(m);
	sysgate__v1__error__init(&m->error);
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_ERROR;
	m->env.error = &m->error;
	m->error.code = EPROTO;
	m->error.message = s_message;
}

/* A Record is only checked for its size here: whether it is JSON is the
 * supervisor's business. */
static void build_record(struct msg *m)
{
	envelope(m);
	sysgate__v1__record__init(&m->record);
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_RECORD;
	m->env.record = &m->record;
	m->record.json = bytes(s_json, sizeof(s_json) - 1);
}

/* A tracked inject_bytes was installed (supervisor -> worker). */
static void build_injected(struct msg *m)
{
	envelope(m);
	sysgate__v1__injected__init(&m->injected);
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_INJECTED;
	m->env.injected = &m->injected;
	m->injected.seq = 7;
	m->injected.pid = 4242;
	m->injected.fd = 3;
	m->injected.cookie = 77;
}

/* A builder that starts from `base` and changes what the row tests. */
#define VARIANT(fn, base, ...)                                                                     \
	static void fn(struct msg *m)                                                              \
	{                                                                                          \
		base(m);                                                                           \
		__VA_ARGS__;                                                                       \
	}

static struct msg *msg_new(void (*build)(struct msg *))
{
	struct msg *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	build(m);
	return m;
}

static void cleanup_msgp(struct msg **m)
{
	free(*m);
}

#define _cleanup_msg_ __attribute__((cleanup(cleanup_msgp)))

/* ---- Field equality ------------------------------------------------------ */

static void assert_bytes_equal(ProtobufCBinaryData got, ProtobufCBinaryData want)
{
	assert_int_equal(got.len, want.len);
	if (want.len)
		assert_memory_equal(got.data, want.data, want.len);
}

static void assert_hello_equal(const Sysgate__V1__Hello *got, const Sysgate__V1__Hello *want)
{
	assert_int_equal(got->protocol_version, want->protocol_version);
	assert_string_equal(got->worker_name, want->worker_name);
	assert_bytes_equal(got->token, want->token);
	assert_int_equal(got->n_registrations, want->n_registrations);
	for (size_t i = 0; i < want->n_registrations; i++) {
		const Sysgate__V1__Registration *g = got->registrations[i];
		const Sysgate__V1__Registration *w = want->registrations[i];
		assert_int_equal(g->syscall_nr, w->syscall_nr);
		assert_string_equal(g->syscall_name, w->syscall_name);
		assert_int_equal(g->order, w->order);
		assert_int_equal(g->on_exception, w->on_exception);
	}
}

static void assert_welcome_equal(const Sysgate__V1__Welcome *got, const Sysgate__V1__Welcome *want)
{
	assert_int_equal(got->accepted, want->accepted);
	assert_string_equal(got->reason, want->reason);
	assert_string_equal(got->sandbox, want->sandbox);
	assert_int_equal(got->max_inflight, want->max_inflight);
	assert_int_equal(got->max_mem_request, want->max_mem_request);
	assert_int_equal(got->max_inject, want->max_inject);
}

static void assert_snapshot_equal(const Sysgate__V1__Snapshot *got,
				  const Sysgate__V1__Snapshot *want)
{
	assert_int_equal(got->seq, want->seq);
	assert_int_equal(got->notif_id, want->notif_id);
	assert_int_equal(got->pid, want->pid);
	assert_int_equal(got->flags, want->flags);
	assert_int_equal(got->syscall_nr, want->syscall_nr);
	assert_int_equal(got->arch, want->arch);
	assert_int_equal(got->instruction_pointer, want->instruction_pointer);
	assert_int_equal(got->n_args, want->n_args);
	for (size_t i = 0; i < want->n_args; i++)
		assert_int_equal(got->args[i], want->args[i]);
	assert_string_equal(got->sandbox, want->sandbox);
	assert_int_equal(got->registration, want->registration);
	assert_int_equal(got->n_paths, want->n_paths);
	for (size_t i = 0; i < want->n_paths; i++) {
		assert_int_equal(got->paths[i]->arg, want->paths[i]->arg);
		assert_bytes_equal(got->paths[i]->path, want->paths[i]->path);
		assert_int_equal(got->paths[i]->unreadable, want->paths[i]->unreadable);
	}
}

static void assert_action_equal(const Sysgate__V1__Action *got, const Sysgate__V1__Action *want)
{
	assert_int_equal(got->seq, want->seq);
	assert_int_equal(got->kind_case, want->kind_case);
	switch (want->kind_case) {
	case SYSGATE__V1__ACTION__KIND_DO_CONTINUE:
		assert_non_null(got->do_continue);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_ERRNO:
		assert_int_equal(got->do_errno->errnum, want->do_errno->errnum);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_RETURN:
		assert_int_equal(got->do_return->value, want->do_return->value);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_KILL:
		assert_int_equal(got->do_kill->signal, want->do_kill->signal);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES:
		assert_bytes_equal(got->do_inject_bytes->data, want->do_inject_bytes->data);
		assert_int_equal(got->do_inject_bytes->flags, want->do_inject_bytes->flags);
		break;
	case SYSGATE__V1__ACTION__KIND_DO_FAIL:
		assert_string_equal(got->do_fail->reason, want->do_fail->reason);
		break;
	case SYSGATE__V1__ACTION__KIND__NOT_SET:
	default:
		fail_msg("round trip of an action without a kind");
	}
}

static void assert_envelope_equal(const Sysgate__V1__Envelope *got,
				  const Sysgate__V1__Envelope *want)
{
	assert_int_equal(got->version, want->version);
	assert_int_equal(got->body_case, want->body_case);
	switch (want->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_HELLO:
		assert_hello_equal(got->hello, want->hello);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_WELCOME:
		assert_welcome_equal(got->welcome, want->welcome);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT:
		assert_snapshot_equal(got->snapshot, want->snapshot);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_ACTION:
		assert_action_equal(got->action, want->action);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST:
		assert_int_equal(got->mem_request->request_id, want->mem_request->request_id);
		assert_int_equal(got->mem_request->seq, want->mem_request->seq);
		assert_int_equal(got->mem_request->op, want->mem_request->op);
		assert_int_equal(got->mem_request->addr, want->mem_request->addr);
		assert_int_equal(got->mem_request->length, want->mem_request->length);
		assert_bytes_equal(got->mem_request->data, want->mem_request->data);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
		assert_int_equal(got->mem_reply->request_id, want->mem_reply->request_id);
		assert_int_equal(got->mem_reply->error, want->mem_reply->error);
		assert_bytes_equal(got->mem_reply->data, want->mem_reply->data);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		assert_string_equal(got->goodbye->reason, want->goodbye->reason);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		assert_int_equal(got->error->code, want->error->code);
		assert_string_equal(got->error->message, want->error->message);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_RECORD:
		assert_bytes_equal(got->record->json, want->record->json);
		break;
	case SYSGATE__V1__ENVELOPE__BODY_INJECTED:
		assert_int_equal(got->injected->seq, want->injected->seq);
		assert_int_equal(got->injected->pid, want->injected->pid);
		assert_int_equal(got->injected->fd, want->injected->fd);
		assert_int_equal(got->injected->cookie, want->injected->cookie);
		break;
	case SYSGATE__V1__ENVELOPE__BODY__NOT_SET:
	default:
		fail_msg("round trip of an envelope without a body");
	}
}

/* ---- Round trips --------------------------------------------------------- */

enum sender { FROM_WORKER, FROM_SUPERVISOR };

static int validate(enum sender from, const Sysgate__V1__Envelope *m, struct sg_err *err)
{
	return from == FROM_WORKER ? proto_validate_from_worker(m, err)
				   : proto_validate_from_supervisor(m, err);
}

VARIANT(build_hello_utf8_name, build_hello, m->hello.worker_name = s_worker_utf8)
VARIANT(build_hello_no_registrations, build_hello, m->hello.n_registrations = 0)
VARIANT(build_welcome_refused, build_welcome, m->welcome.accepted = 0, m->welcome.reason = s_reason,
	m->welcome.max_inflight = 0)
VARIANT(build_snapshot_no_paths, build_snapshot, m->snapshot.n_paths = 0)
VARIANT(build_inject_writable_empty, build_inject, m->act_inject.data = bytes(NULL, 0),
	m->act_inject.flags = PROTO_INJECT_FLAGS)
VARIANT(build_mem_reply_error, build_mem_reply, m->mem_reply.error = EFAULT,
	m->mem_reply.data = bytes(NULL, 0))
VARIANT(build_record_1_byte, build_record, m->record.json = bytes(s_json + 1, 1))
VARIANT(build_record_at_cap, build_record, m->record.json = bytes(big, PROTO_MAX_RECORD))

struct roundtrip_case {
	const char *name;
	void (*build)(struct msg *m);
	enum sender from;
};

static struct roundtrip_case roundtrip_cases[] = {
	{ "round trip Hello", build_hello, FROM_WORKER },
	{ "round trip Hello, UTF-8 name", build_hello_utf8_name, FROM_WORKER },
	{ "round trip Hello, no registrations", build_hello_no_registrations, FROM_WORKER },
	{ "round trip Hello, max registrations", build_hello_max_registrations, FROM_WORKER },
	{ "round trip Welcome", build_welcome, FROM_SUPERVISOR },
	{ "round trip Welcome, refused", build_welcome_refused, FROM_SUPERVISOR },
	{ "round trip Snapshot", build_snapshot, FROM_SUPERVISOR },
	{ "round trip Snapshot, no paths", build_snapshot_no_paths, FROM_SUPERVISOR },
	{ "round trip Action continue", build_continue, FROM_WORKER },
	{ "round trip Action errno", build_errno, FROM_WORKER },
	{ "round trip Action return", build_return, FROM_WORKER },
	{ "round trip Action kill", build_kill, FROM_WORKER },
	{ "round trip Action inject", build_inject, FROM_WORKER },
	{ "round trip Action inject, empty, all flags", build_inject_writable_empty, FROM_WORKER },
	{ "round trip Action fail", build_fail, FROM_WORKER },
	{ "round trip MemRequest read", build_mem_read, FROM_WORKER },
	{ "round trip MemRequest read_cstr", build_mem_read_cstr, FROM_WORKER },
	{ "round trip MemRequest write", build_mem_write, FROM_WORKER },
	{ "round trip MemReply", build_mem_reply, FROM_SUPERVISOR },
	{ "round trip MemReply, error", build_mem_reply_error, FROM_SUPERVISOR },
	{ "round trip Goodbye from a worker", build_goodbye, FROM_WORKER },
	{ "round trip Goodbye from the supervisor", build_goodbye, FROM_SUPERVISOR },
	{ "round trip Error from a worker", build_error, FROM_WORKER },
	{ "round trip Error from the supervisor", build_error, FROM_SUPERVISOR },
	{ "round trip Record", build_record, FROM_WORKER },
	{ "round trip Record, 1 byte", build_record_1_byte, FROM_WORKER },
	{ "round trip Record at cap", build_record_at_cap, FROM_WORKER },
	{ "round trip Injected", build_injected, FROM_SUPERVISOR },
};

static void test_roundtrip(void **state)
{
	const struct roundtrip_case *c = *state;
	struct msg *m _cleanup_msg_ = msg_new(c->build);
	struct sg_err err = { "" };

	assert_int_equal(validate(c->from, &m->env, &err), 0);
	_cleanup_free_ void *buf = NULL;
	size_t len = 0;
	assert_int_equal(proto_encode(&m->env, &buf, &len, &err), 0);
	assert_non_null(buf);
	assert_int_equal(len, sysgate__v1__envelope__get_packed_size(&m->env));

	Sysgate__V1__Envelope *got _cleanup_envelope_ = NULL;
	int r = proto_decode(buf, len, &got, &err);
	if (r < 0)
		fail_msg("decode: %s", err.msg);
	assert_non_null(got);
	r = validate(c->from, got, &err);
	if (r < 0)
		fail_msg("validate: %s", err.msg);
	assert_envelope_equal(got, &m->env);
}

/* ---- Validation rules ---------------------------------------------------- */

/* Hello */
VARIANT(hello_version_0, build_hello, m->hello.protocol_version = 0)
VARIANT(hello_version_2, build_hello, m->hello.protocol_version = 2)
VARIANT(hello_name_empty, build_hello, m->hello.worker_name = s_empty)
VARIANT(hello_name_at_cap, build_hello, m->hello.worker_name = long_text(m, PROTO_MAX_NAME))
VARIANT(hello_name_over_cap, build_hello, m->hello.worker_name = long_text(m, PROTO_MAX_NAME + 1))
VARIANT(hello_name_newline, build_hello, m->hello.worker_name = s_newline)
VARIANT(hello_name_tab, build_hello, m->hello.worker_name = s_tab)
VARIANT(hello_name_invalid_utf8, build_hello, m->hello.worker_name = s_invalid_utf8)
VARIANT(hello_name_overlong_utf8, build_hello, m->hello.worker_name = s_overlong_utf8)
VARIANT(hello_name_surrogate, build_hello, m->hello.worker_name = s_surrogate)
VARIANT(hello_name_cut_utf8, build_hello, m->hello.worker_name = s_cut_utf8)
VARIANT(hello_token_empty, build_hello, m->hello.token = bytes(NULL, 0))
VARIANT(hello_token_short, build_hello, m->hello.token = bytes(m->token, PROTO_TOKEN_SIZE - 1))
VARIANT(hello_token_long, build_hello, m->hello.token = bytes(m->token, PROTO_TOKEN_SIZE + 1))
VARIANT(hello_too_many_registrations, build_hello_max_registrations,
	add_registration(m, 0, s_empty, 0, SYSGATE__V1__EXCEPTION_POLICY__KILL))
VARIANT(hello_policy_4, build_hello, m->regs[1].on_exception = (Sysgate__V1__ExceptionPolicy)4)
VARIANT(hello_policy_negative, build_hello,
	m->regs[2].on_exception = (Sysgate__V1__ExceptionPolicy)-1)
VARIANT(hello_syscall_name_at_cap, build_hello,
	m->regs[0].syscall_name = long_text(m, PROTO_MAX_SYSCALL_NAME))
VARIANT(hello_syscall_name_over_cap, build_hello,
	m->regs[0].syscall_name = long_text(m, PROTO_MAX_SYSCALL_NAME + 1))
VARIANT(hello_syscall_name_newline, build_hello, m->regs[2].syscall_name = s_newline)

/* Action */
static void action_no_kind(struct msg *m)
{
	build_action(m, SYSGATE__V1__ACTION__KIND__NOT_SET);
}

VARIANT(action_seq_0, build_continue, m->action.seq = 0)
VARIANT(errno_1, build_errno, m->act_errno.errnum = 1)
VARIANT(errno_4095, build_errno, m->act_errno.errnum = 4095)
VARIANT(errno_0, build_errno, m->act_errno.errnum = 0)
VARIANT(errno_4096, build_errno, m->act_errno.errnum = 4096)
VARIANT(errno_negative, build_errno, m->act_errno.errnum = -EPERM)
VARIANT(return_min, build_return, m->act_return.value = INT64_MIN)
VARIANT(kill_1, build_kill, m->act_kill.signal = 1)
VARIANT(kill_64, build_kill, m->act_kill.signal = 64)
VARIANT(kill_0, build_kill, m->act_kill.signal = 0)
VARIANT(kill_65, build_kill, m->act_kill.signal = 65)
VARIANT(kill_negative, build_kill, m->act_kill.signal = -SIGKILL)
VARIANT(inject_at_cap, build_inject, m->act_inject.data = bytes(big, PROTO_MAX_INJECT))
VARIANT(inject_over_cap, build_inject, m->act_inject.data = bytes(big, PROTO_MAX_INJECT + 1))
VARIANT(inject_unknown_flag, build_inject, m->act_inject.flags = PROTO_INJECT_FLAGS + 1)
VARIANT(fail_no_reason, build_fail, m->act_fail.reason = s_empty)
VARIANT(fail_reason_at_cap, build_fail, m->act_fail.reason = long_text(m, PROTO_MAX_TEXT))
VARIANT(fail_reason_over_cap, build_fail, m->act_fail.reason = long_text(m, PROTO_MAX_TEXT + 1))
VARIANT(fail_reason_newline, build_fail, m->act_fail.reason = s_newline)

/* MemRequest */
VARIANT(mem_read_at_cap, build_mem_read, m->mem_request.length = PROTO_MAX_MEM)
VARIANT(mem_read_over_cap, build_mem_read, m->mem_request.length = PROTO_MAX_MEM + 1)
VARIANT(mem_cstr_over_cap, build_mem_read_cstr, m->mem_request.length = UINT32_MAX)
VARIANT(mem_write_at_cap, build_mem_write, m->mem_request.length = PROTO_MAX_MEM,
	m->mem_request.data = bytes(big, PROTO_MAX_MEM))
VARIANT(mem_write_over_cap, build_mem_write, m->mem_request.length = PROTO_MAX_MEM + 1,
	m->mem_request.data = bytes(big, PROTO_MAX_MEM + 1))
VARIANT(mem_read_length_0, build_mem_read, m->mem_request.length = 0)
VARIANT(mem_write_short_data, build_mem_write, m->mem_request.data = bytes(big, 255))
VARIANT(mem_write_long_data, build_mem_write, m->mem_request.data = bytes(big, 257))
VARIANT(mem_write_no_data, build_mem_write, m->mem_request.data = bytes(NULL, 0))
VARIANT(mem_read_with_data, build_mem_read, m->mem_request.data = bytes(big, 256))
VARIANT(mem_op_unspecified, build_mem_read,
	m->mem_request.op = SYSGATE__V1__MEM_REQUEST__OP__OP_UNSPECIFIED)
VARIANT(mem_op_unknown, build_mem_read, m->mem_request.op = (Sysgate__V1__MemRequest__Op)7)
VARIANT(mem_request_id_0, build_mem_read, m->mem_request.request_id = 0)
VARIANT(mem_seq_0, build_mem_read, m->mem_request.seq = 0)

/* Goodbye, Error */
VARIANT(goodbye_empty, build_goodbye, m->goodbye.reason = s_empty)
VARIANT(goodbye_at_cap, build_goodbye, m->goodbye.reason = long_text(m, PROTO_MAX_TEXT))
VARIANT(goodbye_over_cap, build_goodbye, m->goodbye.reason = long_text(m, PROTO_MAX_TEXT + 1))
VARIANT(goodbye_newline, build_goodbye, m->goodbye.reason = s_newline)
VARIANT(error_code_0, build_error, m->error.code = 0)
VARIANT(error_code_4096, build_error, m->error.code = 4096)
VARIANT(error_message_over_cap, build_error, m->error.message = long_text(m, PROTO_MAX_TEXT + 1))
VARIANT(error_message_invalid_utf8, build_error, m->error.message = s_invalid_utf8)

/* Injected */
VARIANT(injected_seq_0, build_injected, m->injected.seq = 0)
VARIANT(injected_fd_negative, build_injected, m->injected.fd = -1)

/* Record */
VARIANT(record_empty, build_record, m->record.json = bytes(NULL, 0))
VARIANT(record_over_cap, build_record, m->record.json = bytes(big, PROTO_MAX_RECORD + 1))
/* Not even checked for being text: the supervisor parses it as JSON. */
VARIANT(record_binary, build_record, m->record.json = bytes(s_binary, sizeof(s_binary)))

/* Snapshot, Welcome, MemReply (what a worker checks) */
VARIANT(snapshot_seq_0, build_snapshot, m->snapshot.seq = 0)
VARIANT(snapshot_5_args, build_snapshot, m->snapshot.n_args = PROTO_ARGS - 1)
VARIANT(snapshot_7_args, build_snapshot, m->snapshot.n_args = PROTO_ARGS + 1)
VARIANT(snapshot_6_paths, build_snapshot, m->snapshot.n_paths = PROTO_MAX_PATHS,
	m->paths[0].arg = 0, m->paths[1].arg = 1, m->paths[1].unreadable = 0)
VARIANT(snapshot_7_paths, build_snapshot, m->snapshot.n_paths = N_PATHS)
VARIANT(snapshot_last_registration, build_snapshot,
	m->snapshot.registration = PROTO_MAX_REGISTRATIONS - 1)
VARIANT(snapshot_registration_past_cap, build_snapshot,
	m->snapshot.registration = PROTO_MAX_REGISTRATIONS)
VARIANT(snapshot_path_arg_6, build_snapshot, m->paths[1].arg = PROTO_ARGS)
VARIANT(snapshot_path_arg_twice, build_snapshot, m->paths[1].arg = 1)
VARIANT(snapshot_path_at_cap, build_snapshot, m->paths[0].path = bytes(big, PROTO_MAX_PATH))
VARIANT(snapshot_path_over_cap, build_snapshot, m->paths[0].path = bytes(big, PROTO_MAX_PATH + 1))
VARIANT(snapshot_unreadable_with_path, build_snapshot, m->paths[0].unreadable = 1)
VARIANT(snapshot_path_nul, build_snapshot,
	m->paths[0].path = bytes(s_path_nul, sizeof(s_path_nul) - 1))
VARIANT(snapshot_sandbox_newline, build_snapshot, m->snapshot.sandbox = s_newline)
VARIANT(welcome_no_inflight, build_welcome, m->welcome.max_inflight = 0)
VARIANT(welcome_mem_over_cap, build_welcome, m->welcome.max_mem_request = PROTO_MAX_MEM + 1)
VARIANT(welcome_inject_over_cap, build_welcome, m->welcome.max_inject = PROTO_MAX_INJECT + 1)
VARIANT(mem_reply_at_cap, build_mem_reply, m->mem_reply.data = bytes(big, PROTO_MAX_MEM))
VARIANT(mem_reply_over_cap, build_mem_reply, m->mem_reply.data = bytes(big, PROTO_MAX_MEM + 1))
VARIANT(mem_reply_error_negative, build_mem_reply_error, m->mem_reply.error = -EFAULT)
VARIANT(mem_reply_error_4096, build_mem_reply_error, m->mem_reply.error = 4096)
VARIANT(mem_reply_error_with_data, build_mem_reply, m->mem_reply.error = EFAULT)
VARIANT(mem_reply_id_0, build_mem_reply, m->mem_reply.request_id = 0)

struct validate_case {
	const char *name;
	void (*build)(struct msg *m);
	enum sender from;
	int want;        /* 0 or -EPROTO */
	const char *msg; /* when rejected: part of the message */
};

#define W FROM_WORKER
#define S FROM_SUPERVISOR

static struct validate_case validate_cases[] = {
	/* Only what a worker may send. */
	{ "worker sends Snapshot", build_snapshot, W, -EPROTO, "Snapshot is a supervisor-only" },
	{ "worker sends Welcome", build_welcome, W, -EPROTO, "Welcome is a supervisor-only" },
	{ "worker sends MemReply", build_mem_reply, W, -EPROTO, "MemReply is a supervisor-only" },
	{ "supervisor sends Hello", build_hello, S, -EPROTO, "Hello is a worker-only" },
	{ "supervisor sends Action", build_errno, S, -EPROTO, "Action is a worker-only" },
	{ "supervisor sends MemRequest", build_mem_read, S, -EPROTO,
	  "MemRequest is a worker-only" },
	{ "supervisor sends Record", build_record, S, -EPROTO, "Record is a worker-only message" },
	{ "worker sends Injected", build_injected, W, -EPROTO,
	  "Injected is a supervisor-only message" },
	{ "Injected", build_injected, S, 0, NULL },
	{ "Injected seq 0", injected_seq_0, S, -EPROTO, "Injected: seq 0" },
	{ "Injected fd -1", injected_fd_negative, S, -EPROTO, "fd -1" },

	{ "Hello protocol version 0", hello_version_0, W, -EPROTO, "protocol version 0" },
	{ "Hello protocol version 2", hello_version_2, W, -EPROTO, "protocol version 2" },
	{ "Hello empty name", hello_name_empty, W, -EPROTO, "worker name is empty" },
	{ "Hello name at cap", hello_name_at_cap, W, 0, NULL },
	{ "Hello name over cap", hello_name_over_cap, W, -EPROTO, "worker name is longer" },
	{ "Hello name with newline", hello_name_newline, W, -EPROTO, "not printable" },
	{ "Hello name with tab", hello_name_tab, W, -EPROTO, "not printable" },
	{ "Hello name invalid UTF-8", hello_name_invalid_utf8, W, -EPROTO, "not printable" },
	{ "Hello name overlong UTF-8", hello_name_overlong_utf8, W, -EPROTO, "not printable" },
	{ "Hello name UTF-16 surrogate", hello_name_surrogate, W, -EPROTO, "not printable" },
	{ "Hello name cut UTF-8", hello_name_cut_utf8, W, -EPROTO, "not printable" },
	{ "Hello empty token", hello_token_empty, W, -EPROTO, "token of 0 bytes" },
	{ "Hello short token", hello_token_short, W, -EPROTO, "token of 31 bytes" },
	{ "Hello long token", hello_token_long, W, -EPROTO, "token of 33 bytes" },
	{ "Hello max registrations", build_hello_max_registrations, W, 0, NULL },
	{ "Hello too many registrations", hello_too_many_registrations, W, -EPROTO,
	  "1025 registrations" },
	{ "Hello exception policy 4", hello_policy_4, W, -EPROTO,
	  "registration 1: unknown exception policy 4" },
	{ "Hello exception policy -1", hello_policy_negative, W, -EPROTO,
	  "registration 2: unknown exception policy -1" },
	{ "Hello syscall name at cap", hello_syscall_name_at_cap, W, 0, NULL },
	{ "Hello syscall name over cap", hello_syscall_name_over_cap, W, -EPROTO,
	  "registration 0: syscall name is longer" },
	{ "Hello syscall name with newline", hello_syscall_name_newline, W, -EPROTO,
	  "registration 2: syscall name is not printable" },

	{ "Action without kind", action_no_kind, W, -EPROTO, "no action kind" },
	{ "Action seq 0", action_seq_0, W, -EPROTO, "seq 0" },
	{ "Action errno 1", errno_1, W, 0, NULL },
	{ "Action errno 4095", errno_4095, W, 0, NULL },
	{ "Action errno 0", errno_0, W, -EPROTO, "errno 0 outside 1..4095" },
	{ "Action errno 4096", errno_4096, W, -EPROTO, "errno 4096 outside" },
	{ "Action errno -1", errno_negative, W, -EPROTO, "errno -1 outside" },
	{ "Action return INT64_MIN", return_min, W, 0, NULL },
	{ "Action kill 1", kill_1, W, 0, NULL },
	{ "Action kill 64", kill_64, W, 0, NULL },
	{ "Action kill 0", kill_0, W, -EPROTO, "signal 0 outside 1..64" },
	{ "Action kill 65", kill_65, W, -EPROTO, "signal 65 outside" },
	{ "Action kill -9", kill_negative, W, -EPROTO, "signal -9 outside" },
	{ "Action inject at cap", inject_at_cap, W, 0, NULL },
	{ "Action inject over cap", inject_over_cap, W, -EPROTO, "inject of 1048577 bytes" },
	{ "Action inject unknown flag", inject_unknown_flag, W, -EPROTO, "unknown inject flags" },
	{ "Action fail without reason", fail_no_reason, W, 0, NULL },
	{ "Action fail reason at cap", fail_reason_at_cap, W, 0, NULL },
	{ "Action fail reason over cap", fail_reason_over_cap, W, -EPROTO,
	  "failure reason is longer" },
	{ "Action fail reason with newline", fail_reason_newline, W, -EPROTO,
	  "failure reason is not printable" },

	{ "MemRequest read at cap", mem_read_at_cap, W, 0, NULL },
	{ "MemRequest read over cap", mem_read_over_cap, W, -EPROTO,
	  "read of 1048577 bytes exceeds" },
	{ "MemRequest read_cstr over cap", mem_cstr_over_cap, W, -EPROTO,
	  "read_cstr of 4294967295 bytes" },
	{ "MemRequest write at cap", mem_write_at_cap, W, 0, NULL },
	{ "MemRequest write over cap", mem_write_over_cap, W, -EPROTO, "exceeds" },
	{ "MemRequest length 0", mem_read_length_0, W, -EPROTO, "length 0" },
	{ "MemRequest write, short data", mem_write_short_data, W, -EPROTO,
	  "write of length 256 carries 255 bytes" },
	{ "MemRequest write, long data", mem_write_long_data, W, -EPROTO, "carries 257 bytes" },
	{ "MemRequest write, no data", mem_write_no_data, W, -EPROTO, "carries 0 bytes" },
	{ "MemRequest read with data", mem_read_with_data, W, -EPROTO, "read carries 256 bytes" },
	{ "MemRequest op unspecified", mem_op_unspecified, W, -EPROTO, "unknown op 0" },
	{ "MemRequest op 7", mem_op_unknown, W, -EPROTO, "unknown op 7" },
	{ "MemRequest request_id 0", mem_request_id_0, W, -EPROTO, "request_id 0" },
	{ "MemRequest seq 0", mem_seq_0, W, -EPROTO, "seq 0" },

	{ "Goodbye empty reason", goodbye_empty, W, 0, NULL },
	{ "Goodbye reason at cap", goodbye_at_cap, W, 0, NULL },
	{ "Goodbye reason over cap", goodbye_over_cap, W, -EPROTO, "reason is longer" },
	{ "Goodbye reason with newline", goodbye_newline, W, -EPROTO, "not printable" },
	{ "Error code 0", error_code_0, W, -EPROTO, "code 0 outside" },
	{ "Error code 4096", error_code_4096, W, -EPROTO, "code 4096 outside" },
	{ "Error message over cap", error_message_over_cap, W, -EPROTO, "message is longer" },
	{ "Error message invalid UTF-8", error_message_invalid_utf8, W, -EPROTO,
	  "message is not printable" },

	{ "Record", build_record, W, 0, NULL },
	{ "Record 1 byte", build_record_1_byte, W, 0, NULL },
	{ "Record at cap", build_record_at_cap, W, 0, NULL },
	{ "Record of NUL and invalid UTF-8 bytes", record_binary, W, 0, NULL },
	{ "Record empty", record_empty, W, -EPROTO, "Record: 0 bytes, expected 1..65536" },
	{ "Record over cap", record_over_cap, W, -EPROTO,
	  "Record: 65537 bytes, expected 1..65536" },

	{ "Snapshot seq 0", snapshot_seq_0, S, -EPROTO, "seq 0" },
	{ "Snapshot 5 args", snapshot_5_args, S, -EPROTO, "5 args, expected 6" },
	{ "Snapshot 7 args", snapshot_7_args, S, -EPROTO, "7 args, expected 6" },
	{ "Snapshot 6 paths", snapshot_6_paths, S, 0, NULL },
	{ "Snapshot 7 paths", snapshot_7_paths, S, -EPROTO, "7 paths" },
	{ "Snapshot last registration", snapshot_last_registration, S, 0, NULL },
	{ "Snapshot registration past cap", snapshot_registration_past_cap, S, -EPROTO,
	  "registration 1024" },
	{ "Snapshot path of argument 6", snapshot_path_arg_6, S, -EPROTO, "argument 6" },
	{ "Snapshot two paths for one argument", snapshot_path_arg_twice, S, -EPROTO,
	  "two paths for argument 1" },
	{ "Snapshot path at cap", snapshot_path_at_cap, S, 0, NULL },
	{ "Snapshot path over cap", snapshot_path_over_cap, S, -EPROTO, "longer than 4096" },
	{ "Snapshot unreadable path with bytes", snapshot_unreadable_with_path, S, -EPROTO,
	  "unreadable" },
	{ "Snapshot path with NUL", snapshot_path_nul, S, -EPROTO, "contains a NUL" },
	{ "Snapshot sandbox with newline", snapshot_sandbox_newline, S, -EPROTO,
	  "sandbox name is not printable" },
	{ "Welcome max_inflight 0", welcome_no_inflight, S, -EPROTO, "max_inflight 0" },
	{ "Welcome max_mem_request over cap", welcome_mem_over_cap, S, -EPROTO,
	  "max_mem_request 1048577" },
	{ "Welcome max_inject over cap", welcome_inject_over_cap, S, -EPROTO,
	  "max_inject 1048577" },
	{ "MemReply at cap", mem_reply_at_cap, S, 0, NULL },
	{ "MemReply over cap", mem_reply_over_cap, S, -EPROTO, "1048577 bytes exceed" },
	{ "MemReply error -14", mem_reply_error_negative, S, -EPROTO, "error -14 outside" },
	{ "MemReply error 4096", mem_reply_error_4096, S, -EPROTO, "error 4096 outside" },
	{ "MemReply error with data", mem_reply_error_with_data, S, -EPROTO, "with 11 bytes" },
	{ "MemReply request_id 0", mem_reply_id_0, S, -EPROTO, "request_id 0" },
};

#undef W
#undef S

static void assert_result(int got, const struct sg_err *err, int want, const char *msg)
{
	if (want == 0 && got != 0)
		fail_msg("rejected: %s", err->msg);
	assert_int_equal(got, want);
	if (msg && !strstr(err->msg, msg))
		fail_msg("message \"%s\" does not contain \"%s\"", err->msg, msg);
}

/* The rule holds for the message as built and as received. */
static void test_validate(void **state)
{
	const struct validate_case *c = *state;
	struct msg *m _cleanup_msg_ = msg_new(c->build);
	struct sg_err err = { "" };

	assert_result(validate(c->from, &m->env, &err), &err, c->want, c->msg);

	_cleanup_free_ void *buf = NULL;
	size_t len = 0;
	int r = proto_encode(&m->env, &buf, &len, &err);
	if (r < 0)
		fail_msg("encode: %s", err.msg);
	Sysgate__V1__Envelope *got _cleanup_envelope_ = NULL;
	r = proto_decode(buf, len, &got, &err);
	if (r < 0)
		fail_msg("decode: %s", err.msg);
	err.msg[0] = '\0';
	assert_result(validate(c->from, got, &err), &err, c->want, c->msg);
}

/* ---- Decoding ------------------------------------------------------------ */

/* A growing byte buffer for hand-made encodings. */
struct wire {
	uint8_t *data;
	size_t len, cap;
};

static void wire_put(struct wire *w, const void *p, size_t n)
{
	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2;
		w->data = realloc(w->data, w->cap);
		assert_non_null(w->data);
	}
	if (n)
		memcpy(w->data + w->len, p, n);
	w->len += n;
}

static void wire_varint(struct wire *w, uint64_t v)
{
	do {
		uint8_t b = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			b |= 0x80;
		wire_put(w, &b, 1);
	} while (v);
}

/* A length-delimited field of `len` copies of `fill`. */
static void wire_field(struct wire *w, uint32_t field, size_t len, uint8_t fill)
{
	wire_varint(w, (uint64_t)field << 3 | 2);
	wire_varint(w, len);
	if (w->len + len > w->cap) {
		w->cap = w->len + len;
		w->data = realloc(w->data, w->cap);
		assert_non_null(w->data);
	}
	if (len)
		memset(w->data + w->len, fill, len);
	w->len += len;
}

/* The encoding of a built message, packed raw (proto_encode refuses a bad
 * version or no body). */
static struct wire wire_of(void (*build)(struct msg *), uint32_t version)
{
	struct msg *m _cleanup_msg_ = msg_new(build);
	m->env.version = version;
	struct wire w = { 0 };
	size_t len = sysgate__v1__envelope__get_packed_size(&m->env);
	w.data = malloc(len);
	assert_non_null(w.data);
	w.len = w.cap = len;
	assert_int_equal(sysgate__v1__envelope__pack(&m->env, w.data), len);
	return w;
}

/* A valid Goodbye followed by an unknown field that brings it to `total`
 * bytes. */
static struct wire goodbye_padded(size_t total)
{
	struct wire w = wire_of(build_goodbye, SYSGATE_PROTOCOL_VERSION);
	size_t pad = total - w.len - 2 /* tag */ - 3 /* length */;
	assert_true(pad >= 1u << 14 && pad < 1u << 21); /* a three-byte length */
	wire_field(&w, 100, pad, 'x');
	assert_int_equal(w.len, total);
	return w;
}

static struct wire make_empty(void)
{
	return (struct wire){ 0 };
}

static struct wire make_at_cap(void)
{
	return goodbye_padded(PROTO_MAX_MESSAGE);
}

static struct wire make_over_cap(void)
{
	return goodbye_padded(PROTO_MAX_MESSAGE + 1);
}

/* The largest Record a worker may send, as it arrives. */
static struct wire make_record_at_cap(void)
{
	return wire_of(build_record_at_cap, SYSGATE_PROTOCOL_VERSION);
}

static struct wire make_version_0(void)
{
	return wire_of(build_goodbye, 0);
}

static struct wire make_version_2(void)
{
	return wire_of(build_goodbye, 2);
}

static struct wire make_no_body(void)
{
	struct wire w = { 0 };
	wire_varint(&w, 1 << 3 | 0);
	wire_varint(&w, SYSGATE_PROTOCOL_VERSION);
	return w;
}

/* Field 12 of the body oneof: a kind from a later protocol version. */
static struct wire make_unknown_kind(void)
{
	struct wire w = make_no_body();
	wire_field(&w, 12, 4, 0);
	return w;
}

static struct wire make_garbage_ff(void)
{
	struct wire w = { 0 };
	for (int i = 0; i < 16; i++)
		wire_put(&w, "\xff", 1);
	return w;
}

static struct wire make_zeros(void)
{
	struct wire w = { 0 };
	for (int i = 0; i < 16; i++)
		wire_put(&w, "", 1);
	return w;
}

/* version as a length-delimited field */
static struct wire make_wrong_wire_type(void)
{
	struct wire w = { 0 };
	wire_field(&w, 1, 1, 1);
	wire_field(&w, 8, 0, 0);
	return w;
}

/* A length past the end of the buffer. */
static struct wire make_length_past_end(void)
{
	struct wire w = make_no_body();
	wire_varint(&w, 8 << 3 | 2);
	wire_varint(&w, 1000);
	wire_put(&w, "abc", 3);
	return w;
}

/* A varint of 11 bytes. */
static struct wire make_long_varint(void)
{
	struct wire w = { 0 };
	wire_varint(&w, 1 << 3 | 0);
	for (int i = 0; i < 10; i++)
		wire_put(&w, "\x81", 1);
	wire_put(&w, "\x01", 1);
	return w;
}

/* 100000 empty registrations: 200 KB on the wire, megabytes decoded. */
static struct wire make_registration_flood(void)
{
	const size_t n = 100000;
	struct wire w = make_no_body();
	wire_varint(&w, 2 << 3 | 2);
	wire_varint(&w, 2 * n);
	for (size_t i = 0; i < n; i++)
		wire_put(&w, "\x22\x00", 2);
	return w;
}

struct decode_case {
	const char *name;
	struct wire (*make)(void);
	int want;
	const char *msg;
};

static struct decode_case decode_cases[] = {
	{ "decode empty buffer", make_empty, -EBADMSG, "empty message" },
	{ "decode at the size cap", make_at_cap, 0, NULL },
	{ "decode over the size cap", make_over_cap, -EMSGSIZE, "exceeds the 1114112-byte cap" },
	{ "decode Record at its cap", make_record_at_cap, 0, NULL },
	{ "decode version 0", make_version_0, -EPROTONOSUPPORT, "protocol version 0, expected 1" },
	{ "decode version 2", make_version_2, -EPROTONOSUPPORT, "protocol version 2, expected 1" },
	{ "decode without body", make_no_body, -EBADMSG, "without a body" },
	{ "decode unknown body kind", make_unknown_kind, -EBADMSG, "without a body" },
	{ "decode 0xff bytes", make_garbage_ff, -EBADMSG, "malformed" },
	{ "decode zero bytes", make_zeros, -EBADMSG, "malformed" },
	{ "decode wrong wire type", make_wrong_wire_type, -EBADMSG, "malformed" },
	{ "decode length past the end", make_length_past_end, -EBADMSG, "malformed" },
	{ "decode 11-byte varint", make_long_varint, -EBADMSG, "malformed" },
	{ "decode registration flood", make_registration_flood, -EMSGSIZE, "decoded" },
};

static void test_decode(void **state)
{
	const struct decode_case *c = *state;
	struct wire w = c->make();
	struct sg_err err = { "" };
	Sysgate__V1__Envelope *got _cleanup_envelope_ = (void *)&err; /* must be reset */

	int r = proto_decode(w.data, w.len, &got, &err);
	free(w.data);
	assert_result(r, &err, c->want, c->msg);
	if (c->want < 0)
		assert_null(got);
	else
		assert_non_null(got);
}

/* ---- Fixed tests --------------------------------------------------------- */

static void test_decode_null(void **state)
{
	(void)state;
	struct sg_err err = { "" };
	Sysgate__V1__Envelope *got = NULL;
	assert_int_equal(proto_decode(NULL, 5, &got, &err), -EBADMSG);
	assert_null(got);
	assert_int_equal(proto_decode("\x08\x01", 2, NULL, &err), -EINVAL);
	/* No error struct: still an error code. */
	assert_int_equal(proto_decode("", 0, &got, NULL), -EBADMSG);
}

/* Every prefix of a valid message either fails to decode or fails
 * validation; the whole message passes both. Each prefix sits in a buffer
 * of its exact size, so a read past it is caught by the sanitizer build. */
static void check_prefixes(void (*build)(struct msg *), enum sender from)
{
	struct wire w = wire_of(build, SYSGATE_PROTOCOL_VERSION);
	for (size_t n = 0; n <= w.len; n++) {
		uint8_t *prefix = malloc(n ? n : 1);
		assert_non_null(prefix);
		memcpy(prefix, w.data, n);
		struct sg_err err = { "" };
		Sysgate__V1__Envelope *got _cleanup_envelope_ = NULL;
		int r = proto_decode(prefix, n, &got, &err);
		if (r == 0)
			r = validate(from, got, &err);
		free(prefix);
		if (n < w.len && r == 0)
			fail_msg("prefix of %zu of %zu bytes accepted", n, w.len);
		if (n == w.len && r < 0)
			fail_msg("whole message rejected: %s", err.msg);
	}
	free(w.data);
}

static void test_truncated_snapshot(void **state)
{
	(void)state;
	check_prefixes(build_snapshot, FROM_SUPERVISOR);
}

static void test_truncated_hello(void **state)
{
	(void)state;
	check_prefixes(build_hello, FROM_WORKER);
}

static void test_truncated_action(void **state)
{
	(void)state;
	check_prefixes(build_inject, FROM_WORKER);
}

static void test_truncated_record(void **state)
{
	(void)state;
	check_prefixes(build_record, FROM_WORKER);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Random bytes are never a message a worker may send. */
static void test_random_garbage(void **state)
{
	(void)state;
	uint64_t seed = 0x5eed5eed5eed5eedu;
	for (int i = 0; i < 5000; i++) {
		size_t n = 1 + xorshift(&seed) % 512;
		uint8_t *buf = malloc(n);
		assert_non_null(buf);
		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)xorshift(&seed);
		struct sg_err err = { "" };
		Sysgate__V1__Envelope *got _cleanup_envelope_ = NULL;
		int r = proto_decode(buf, n, &got, &err);
		if (r == 0)
			r = proto_validate_from_worker(got, &err);
		free(buf);
		if (r == 0)
			fail_msg("random buffer %d of %zu bytes accepted", i, n);
	}
}

/* Single-byte corruptions of a valid Hello: whatever decodes and validates
 * still obeys the rules, and nothing crashes. */
static void test_corrupted_hello(void **state)
{
	(void)state;
	static const uint8_t values[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
	struct wire w = wire_of(build_hello, SYSGATE_PROTOCOL_VERSION);
	uint8_t *buf = malloc(w.len);
	assert_non_null(buf);
	for (size_t at = 0; at < w.len; at++) {
		for (size_t v = 0; v < ARRAY_SIZE(values) + 1; v++) {
			memcpy(buf, w.data, w.len);
			buf[at] = v < ARRAY_SIZE(values) ? values[v] : (uint8_t)(buf[at] ^ 0x40);
			struct sg_err err = { "" };
			Sysgate__V1__Envelope *got _cleanup_envelope_ = NULL;
			if (proto_decode(buf, w.len, &got, &err) < 0 ||
			    proto_validate_from_worker(got, &err) < 0)
				continue;
			if (got->body_case != SYSGATE__V1__ENVELOPE__BODY_HELLO)
				continue;
			const Sysgate__V1__Hello *h = got->hello;
			assert_int_equal(h->token.len, PROTO_TOKEN_SIZE);
			assert_in_range(strlen(h->worker_name), 1, PROTO_MAX_NAME);
			assert_true(h->n_registrations <= PROTO_MAX_REGISTRATIONS);
			for (size_t i = 0; i < h->n_registrations; i++)
				assert_in_range(h->registrations[i]->on_exception, 0, 3);
		}
	}
	free(buf);
	free(w.data);
}

static void test_encode_refuses(void **state)
{
	(void)state;
	struct msg *m _cleanup_msg_ = msg_new(build_goodbye);
	struct sg_err err = { "" };
	void *buf = (void *)&err;
	size_t len = 99;

	m->env.version = 0;
	assert_int_equal(proto_encode(&m->env, &buf, &len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "protocol version 0"));
	assert_null(buf);
	assert_int_equal(len, 0);

	m->env.version = SYSGATE_PROTOCOL_VERSION;
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY__NOT_SET;
	assert_int_equal(proto_encode(&m->env, &buf, &len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "without a body"));

	/* The body says Goodbye but points nowhere. */
	m->env.body_case = SYSGATE__V1__ENVELOPE__BODY_GOODBYE;
	m->env.goodbye = NULL;
	assert_int_equal(proto_encode(&m->env, &buf, &len, &err), -EINVAL);
	assert_int_equal(proto_validate_from_worker(&m->env, &err), -EPROTO);
	assert_int_equal(proto_validate_from_supervisor(&m->env, &err), -EPROTO);
	assert_int_equal(proto_validate_from_worker(NULL, &err), -EINVAL);

	assert_int_equal(proto_encode(NULL, &buf, &len, &err), -EINVAL);
	assert_int_equal(proto_encode(&m->env, NULL, &len, &err), -EINVAL);
}

/* What the peer would refuse for its size is not sent. */
static void test_encode_oversized(void **state)
{
	(void)state;
	struct msg *m _cleanup_msg_ = msg_new(build_inject);
	struct sg_err err = { "" };
	void *buf = NULL;
	size_t len = 0;

	m->act_inject.data = bytes(big, PROTO_MAX_MESSAGE);
	assert_int_equal(proto_encode(&m->env, &buf, &len, &err), -EMSGSIZE);
	assert_non_null(strstr(err.msg, "exceeds the 1114112-byte message cap"));
	assert_null(buf);
}

/* An Action whose kind is set but whose member is not (hand-built). */
static void test_action_kind_without_member(void **state)
{
	(void)state;
	struct msg *m _cleanup_msg_ = msg_new(build_errno);
	struct sg_err err = { "" };
	m->action.do_errno = NULL;
	assert_int_equal(proto_validate_from_worker(&m->env, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "kind set without its message"));
}

/* A Record body case without its message (hand-built): refused both ways,
 * and not encoded. */
static void test_record_without_member(void **state)
{
	(void)state;
	struct msg *m _cleanup_msg_ = msg_new(build_record);
	struct sg_err err = { "" };
	void *buf = (void *)&err;
	size_t len = 99;
	m->env.record = NULL;
	assert_int_equal(proto_validate_from_worker(&m->env, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "without a body"));
	assert_int_equal(proto_validate_from_supervisor(&m->env, &err), -EPROTO);
	assert_int_equal(proto_encode(&m->env, &buf, &len, &err), -EINVAL);
	assert_null(buf);
	assert_int_equal(len, 0);
}

/* The largest Record fits in a message and in the decode budget, with room
 * for the envelope around it, and is what the encoder sends. */
static void test_record_at_cap_encoded(void **state)
{
	(void)state;
	struct msg *m _cleanup_msg_ = msg_new(build_record_at_cap);
	struct sg_err err = { "" };
	_cleanup_free_ void *buf = NULL;
	size_t len = 0;
	if (proto_encode(&m->env, &buf, &len, &err) < 0)
		fail_msg("encode: %s", err.msg);
	/* version (2) + tag and length of Record (1 + 3) + of json (1 + 3). */
	assert_int_equal(len, PROTO_MAX_RECORD + 10);
	assert_true(len <= PROTO_MAX_MESSAGE);
	Sysgate__V1__Envelope *got _cleanup_envelope_ = NULL;
	if (proto_decode(buf, len, &got, &err) < 0)
		fail_msg("decode: %s", err.msg);
	if (proto_validate_from_worker(got, &err) < 0)
		fail_msg("validate: %s", err.msg);
	assert_int_equal(got->record->json.len, PROTO_MAX_RECORD);
	assert_memory_equal(got->record->json.data, big, PROTO_MAX_RECORD);
}

/* The cleanup helper frees a decoded envelope at scope end, steal_ptr hands
 * it on (the sanitizer build checks for leaks and double frees). */
static void test_cleanup(void **state)
{
	(void)state;
	struct wire w = wire_of(build_hello, SYSGATE_PROTOCOL_VERSION);
	Sysgate__V1__Envelope *kept = NULL;
	{
		Sysgate__V1__Envelope *scoped _cleanup_envelope_ = NULL;
		assert_int_equal(proto_decode(w.data, w.len, &scoped, NULL), 0);
		Sysgate__V1__Envelope *other _cleanup_envelope_ = NULL;
		assert_int_equal(proto_decode(w.data, w.len, &other, NULL), 0);
		kept = steal_ptr(&scoped);
	}
	assert_non_null(kept);
	assert_string_equal(kept->hello->worker_name, s_worker);
	proto_envelope_free(kept);
	proto_envelope_free(NULL);
	free(w.data);
}

static void test_protocol_values(void **state)
{
	(void)state;
	assert_int_equal(SYSGATE_PROTOCOL_VERSION, 1);
	/* Field numbers other implementations rely on. */
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
		&sysgate__v1__envelope__descriptor, "version");
	assert_non_null(f);
	assert_int_equal(f->id, 1);
	/* A full inject or memory reply fits in a message. */
	assert_true(PROTO_MAX_INJECT + 64 < PROTO_MAX_MESSAGE);
	assert_true(PROTO_MAX_MEM + 64 < PROTO_MAX_MESSAGE);
	assert_true(PROTO_MAX_RECORD + 64 < PROTO_MAX_MESSAGE);
	assert_int_equal(PROTO_MAX_RECORD, 65536);
	f = protobuf_c_message_descriptor_get_field_by_name(&sysgate__v1__envelope__descriptor,
							    "record");
	assert_non_null(f);
	assert_int_equal(f->id, 10);
	f = protobuf_c_message_descriptor_get_field_by_name(&sysgate__v1__record__descriptor,
							    "json");
	assert_non_null(f);
	assert_int_equal(f->id, 1);
	assert_int_equal(f->type, PROTOBUF_C_TYPE_BYTES);
}

static const struct CMUnitTest fixed_tests[] = {
	cmocka_unit_test(test_decode_null),
	cmocka_unit_test(test_truncated_snapshot),
	cmocka_unit_test(test_truncated_hello),
	cmocka_unit_test(test_truncated_action),
	cmocka_unit_test(test_truncated_record),
	cmocka_unit_test(test_random_garbage),
	cmocka_unit_test(test_corrupted_hello),
	cmocka_unit_test(test_encode_refuses),
	cmocka_unit_test(test_encode_oversized),
	cmocka_unit_test(test_action_kind_without_member),
	cmocka_unit_test(test_record_without_member),
	cmocka_unit_test(test_record_at_cap_encoded),
	cmocka_unit_test(test_cleanup),
	cmocka_unit_test(test_protocol_values),
};

int main(void)
{
	memset(big, 'b', sizeof(big));
	struct CMUnitTest tests[ARRAY_SIZE(fixed_tests) + ARRAY_SIZE(roundtrip_cases) +
				ARRAY_SIZE(validate_cases) + ARRAY_SIZE(decode_cases)];
	size_t n = 0;
	UNIT_TESTS(tests, n, fixed_tests);
	UNIT_ROWS(tests, n, test_roundtrip, roundtrip_cases);
	UNIT_ROWS(tests, n, test_validate, validate_cases);
	UNIT_ROWS(tests, n, test_decode, decode_cases);
	return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
