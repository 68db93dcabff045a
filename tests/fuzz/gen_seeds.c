/* Writes the seed corpora of the fuzz targets from real encoded messages:
 *   fuzz_gen_seeds DIR      (DIR: tests/fuzz/corpus; files are replaced)
 * One file per seed, named after what it is. The seeds are committed; run
 * this again when the schema or a target's input format changes. */
#include <errno.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "fuzz.h"
#include "protocol.h"

static const char *root;
static int failed;

/* A growing byte buffer. */
struct out {
	uint8_t b[1 << 17];
	size_t n;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->n + n > sizeof(o->b)) {
		failed = 1;
		return;
	}
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

static void put_uint(struct out *o, uint64_t v, size_t bytes)
{
	for (size_t i = 0; i < bytes; i++) {
		uint8_t c = (uint8_t)(v >> (8 * i));
		put(o, &c, 1);
	}
}

static void write_seed(const char *target, const char *name, const void *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", root, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "gen_seeds: %s: %s\n", path, strerror(errno));
		failed = 1;
	}
}

/* m encoded into o (appended). */
static void encode(struct out *o, const Sysgate__V1__Envelope *m)
{
	_cleanup_free_ void *buf = NULL;
	size_t len;
	struct sg_err err;
	if (proto_encode(m, &buf, &len, &err) < 0) {
		fprintf(stderr, "gen_seeds: %s\n", err.msg);
		failed = 1;
		return;
	}
	put(o, buf, len);
}

/* m as a frame (fuzz.h fuzz_frame). */
static void frame(struct out *o, const Sysgate__V1__Envelope *m)
{
	struct out one = { .n = 0 };
	encode(&one, m);
	put_uint(o, one.n, 2);
	put(o, one.b, one.n);
}

static void seed_message(const char *target, const char *name, const Sysgate__V1__Envelope *m)
{
	static struct out o;
	o.n = 0;
	encode(&o, m);
	write_seed(target, name, o.b, o.n);
}

/* ---- Messages ------------------------------------------------------------ */

static uint8_t token[PROTO_TOKEN_SIZE];

static Sysgate__V1__Envelope env(Sysgate__V1__Envelope__BodyCase body)
{
	Sysgate__V1__Envelope e;
	proto_envelope_init(&e, body);
	return e;
}

static void hello(Sysgate__V1__Envelope *e, Sysgate__V1__Hello *h, Sysgate__V1__Registration *regs,
		  Sysgate__V1__Registration **ptrs, const char *const *names, size_t n)
{
	*e = env(SYSGATE__V1__ENVELOPE__BODY_HELLO);
	sysgate__v1__hello__init(h);
	e->hello = h;
	h->protocol_version = SYSGATE_PROTOCOL_VERSION;
	h->worker_name = (char *)(uintptr_t) "seed";
	h->token = (ProtobufCBinaryData){ .len = PROTO_TOKEN_SIZE, .data = token };
	for (size_t i = 0; i < n; i++) {
		sysgate__v1__registration__init(&regs[i]);
		if (names[i][0] >= '0' && names[i][0] <= '9')
			regs[i].syscall_nr = atoi(names[i]);
		else
			regs[i].syscall_name = (char *)(uintptr_t)names[i];
		regs[i].order = (uint32_t)(n - i);
		regs[i].on_exception = SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM;
		ptrs[i] = &regs[i];
	}
	h->n_registrations = n;
	h->registrations = ptrs;
}

static void worker_seeds(void)
{
	const char *t = "proto_worker";
	Sysgate__V1__Envelope e;
	Sysgate__V1__Hello h;
	Sysgate__V1__Registration regs[4], *ptrs[4];
	static const char *const ok[] = { "openat", "read", "0", "execve" };
	hello(&e, &h, regs, ptrs, ok, 4);
	h.fast_channel = true;
	seed_message(t, "hello", &e);
	static const char *const denied[] = { "openat", "ptrace" };
	hello(&e, &h, regs, ptrs, denied, 2);
	seed_message(t, "hello-denied", &e);
	static const char *const ex[] = { "exit_group" };
	hello(&e, &h, regs, ptrs, ex, 1);
	seed_message(t, "hello-exit", &e);

	Sysgate__V1__Action a;
	Sysgate__V1__Action__Continue ac;
	Sysgate__V1__Action__Errno ae;
	Sysgate__V1__Action__Return ar;
	Sysgate__V1__Action__Kill ak;
	Sysgate__V1__Action__InjectBytes ai;
	Sysgate__V1__Action__Failed af;
	e = env(SYSGATE__V1__ENVELOPE__BODY_ACTION);
	e.action = &a;
	sysgate__v1__action__init(&a);
	a.seq = 42;
	a.kind_case = SYSGATE__V1__ACTION__KIND_DO_CONTINUE;
	sysgate__v1__action__continue__init(&ac);
	a.do_continue = &ac;
	seed_message(t, "action-continue", &e);
	a.kind_case = SYSGATE__V1__ACTION__KIND_DO_ERRNO;
	sysgate__v1__action__errno__init(&ae);
	ae.errnum = EACCES;
	a.do_errno = &ae;
	seed_message(t, "action-errno", &e);
	a.kind_case = SYSGATE__V1__ACTION__KIND_DO_RETURN;
	sysgate__v1__action__return__init(&ar);
	ar.value = -1;
	a.do_return = &ar;
	seed_message(t, "action-return", &e);
	a.kind_case = SYSGATE__V1__ACTION__KIND_DO_KILL;
	sysgate__v1__action__kill__init(&ak);
	ak.signal = 9;
	a.do_kill = &ak;
	seed_message(t, "action-kill", &e);
	a.kind_case = SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES;
	sysgate__v1__action__inject_bytes__init(&ai);
	ai.data = (ProtobufCBinaryData){ .len = 5, .data = (uint8_t *)(uintptr_t) "hello" };
	ai.flags = SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__TRACK;
	ai.cookie = 7;
	a.do_inject_bytes = &ai;
	seed_message(t, "action-inject", &e);
	a.kind_case = SYSGATE__V1__ACTION__KIND_DO_FAIL;
	sysgate__v1__action__failed__init(&af);
	af.reason = (char *)(uintptr_t) "handler failed";
	a.do_fail = &af;
	seed_message(t, "action-fail", &e);

	Sysgate__V1__MemRequest q;
	e = env(SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST);
	e.mem_request = &q;
	sysgate__v1__mem_request__init(&q);
	q.request_id = 1;
	q.seq = 42;
	q.addr = 0x7ffd0000;
	q.length = 16;
	q.op = SYSGATE__V1__MEM_REQUEST__OP__READ;
	seed_message(t, "mem-read", &e);
	q.op = SYSGATE__V1__MEM_REQUEST__OP__READ_CSTR;
	seed_message(t, "mem-read-cstr", &e);
	q.op = SYSGATE__V1__MEM_REQUEST__OP__WRITE;
	q.length = 4;
	q.data = (ProtobufCBinaryData){ .len = 4, .data = (uint8_t *)(uintptr_t) "abcd" };
	seed_message(t, "mem-write", &e);

	Sysgate__V1__Record rec;
	e = env(SYSGATE__V1__ENVELOPE__BODY_RECORD);
	e.record = &rec;
	sysgate__v1__record__init(&rec);
	static const char json[] = "{\"path\":\"/etc/passwd\",\"n\":[1,2.5,null,true]}";
	rec.json = (ProtobufCBinaryData){ .len = sizeof(json) - 1,
					  .data = (uint8_t *)(uintptr_t)json };
	seed_message(t, "record", &e);

	Sysgate__V1__Goodbye g;
	e = env(SYSGATE__V1__ENVELOPE__BODY_GOODBYE);
	e.goodbye = &g;
	sysgate__v1__goodbye__init(&g);
	g.reason = (char *)(uintptr_t) "done";
	seed_message(t, "goodbye", &e);
	Sysgate__V1__Error er;
	e = env(SYSGATE__V1__ENVELOPE__BODY_ERROR);
	e.error = &er;
	sysgate__v1__error__init(&er);
	er.code = EPROTO;
	er.message = (char *)(uintptr_t) "protocol error";
	seed_message(t, "error", &e);
	/* Past proto_encode, which refuses it. */
	e.version = 2;
	static uint8_t raw[256];
	size_t n = sysgate__v1__envelope__get_packed_size(&e);
	if (n <= sizeof(raw) && sysgate__v1__envelope__pack(&e, raw) == n)
		write_seed(t, "version-2", raw, n);
	else
		failed = 1;
}

/* ---- The supervisor's side ------------------------------------------------ */

struct snapshot_msg {
	Sysgate__V1__Envelope e;
	Sysgate__V1__Snapshot s;
	uint64_t args[PROTO_ARGS];
	Sysgate__V1__PathArg pa[2];
	Sysgate__V1__PathArg *pap[2];
};

static void snapshot(struct snapshot_msg *m, uint64_t seq, uint32_t reg, long nr, const char *path0,
		     unsigned arg0, const char *path1, unsigned arg1)
{
	m->e = env(SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT);
	sysgate__v1__snapshot__init(&m->s);
	m->e.snapshot = &m->s;
	m->s.seq = seq;
	m->s.notif_id = 1000 + seq;
	m->s.pid = 4242;
	m->s.syscall_nr = (int32_t)nr;
	m->s.arch = 0xc000003eu;
	m->s.instruction_pointer = 0x401000;
	for (unsigned i = 0; i < PROTO_ARGS; i++)
		m->args[i] = 0x1000 * (i + 1);
	m->args[0] = (uint64_t)-100; /* AT_FDCWD */
	m->s.n_args = PROTO_ARGS;
	m->s.args = m->args;
	m->s.sandbox = (char *)(uintptr_t) "seed";
	m->s.registration = reg;
	const char *paths[2] = { path0, path1 };
	unsigned args[2] = { arg0, arg1 };
	for (unsigned i = 0; i < 2 && paths[i]; i++) {
		sysgate__v1__path_arg__init(&m->pa[i]);
		m->pa[i].arg = args[i];
		if (strcmp(paths[i], "?") == 0)
			m->pa[i].unreadable = true;
		else
			m->pa[i].path =
				(ProtobufCBinaryData){ .len = strlen(paths[i]),
						       .data = (uint8_t *)(uintptr_t)paths[i] };
		m->pap[i] = &m->pa[i];
		m->s.n_paths = i + 1;
	}
	m->s.paths = m->pap;
}

static void welcome(Sysgate__V1__Envelope *e, Sysgate__V1__Welcome *w, bool accepted)
{
	*e = env(SYSGATE__V1__ENVELOPE__BODY_WELCOME);
	sysgate__v1__welcome__init(w);
	e->welcome = w;
	w->accepted = accepted;
	w->reason = (char *)(uintptr_t)(accepted ? "" : "registration of \"ptrace\" rejected");
	w->sandbox = (char *)(uintptr_t) "seed";
	w->max_inflight = accepted ? 2 : 0;
	w->max_mem_request = PROTO_MAX_MEM;
	w->max_inject = PROTO_MAX_INJECT;
}

static void supervisor_seeds(void)
{
	const char *t = "proto_supervisor";
	static struct out o;
	Sysgate__V1__Envelope we, e;
	Sysgate__V1__Welcome w;
	struct snapshot_msg s1, s2, s3;
	welcome(&we, &w, true);
	snapshot(&s1, 1, 0, SYS_openat, "/etc/passwd", 1, NULL, 0);
	snapshot(&s2, 2, 1, SYS_renameat2, "old name", 1, "?", 3);
	snapshot(&s3, 3, 2, SYS_read, NULL, 0, NULL, 0);

	o.n = 0; /* Welcome, snapshots run one by one, the end */
	frame(&o, &we);
	frame(&o, &s1.e);
	put_uint(&o, 0, 2);
	frame(&o, &s2.e);
	put_uint(&o, 0, 2);
	Sysgate__V1__Injected inj;
	e = env(SYSGATE__V1__ENVELOPE__BODY_INJECTED);
	e.injected = &inj;
	sysgate__v1__injected__init(&inj);
	inj.seq = 2;
	inj.fd = 5;
	inj.pid = 4242;
	inj.cookie = 7;
	frame(&o, &e);
	Sysgate__V1__Goodbye g;
	e = env(SYSGATE__V1__ENVELOPE__BODY_GOODBYE);
	e.goodbye = &g;
	sysgate__v1__goodbye__init(&g);
	g.reason = (char *)(uintptr_t) "sandbox exited";
	frame(&o, &e);
	write_seed(t, "run", o.b, o.n);

	o.n = 0; /* more in flight than max_inflight */
	frame(&o, &we);
	for (uint64_t seq = 4; seq < 8; seq++) {
		s3.s.seq = seq;
		frame(&o, &s3.e);
	}
	write_seed(t, "inflight", o.b, o.n);

	o.n = 0; /* every kind of answer, a MemReply nobody asked for */
	frame(&o, &we);
	for (uint64_t seq = 6; seq < 12; seq++) {
		s1.s.seq = seq;
		frame(&o, &s1.e);
		put_uint(&o, 0, 2);
	}
	Sysgate__V1__MemReply r;
	e = env(SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY);
	e.mem_reply = &r;
	sysgate__v1__mem_reply__init(&r);
	r.request_id = 1;
	r.data = (ProtobufCBinaryData){ .len = 3, .data = (uint8_t *)(uintptr_t) "abc" };
	frame(&o, &e);
	write_seed(t, "answers", o.b, o.n);

	o.n = 0;
	welcome(&e, &w, false);
	frame(&o, &e);
	write_seed(t, "refused", o.b, o.n);
	o.n = 0;
	Sysgate__V1__Error er;
	e = env(SYSGATE__V1__ENVELOPE__BODY_ERROR);
	e.error = &er;
	sysgate__v1__error__init(&er);
	er.code = EPERM;
	er.message = (char *)(uintptr_t) "handshake with a wrong token";
	frame(&o, &e);
	write_seed(t, "error", o.b, o.n);
}

/* ---- Fast channel scripts (fuzz_fastchan.c step()) -------------------------- */

static void step_record(struct out *o, uint8_t op, const Sysgate__V1__Envelope *m)
{
	put_uint(o, op, 1);
	put_uint(o, 0, 1); /* a frame, not a big zero record */
	frame(o, m);
}

static void step_big(struct out *o, uint8_t op, uint32_t len)
{
	put_uint(o, op, 1);
	put_uint(o, 1, 1);
	put_uint(o, len, 4);
}

static void fastchan_seeds(void)
{
	const char *t = "fastchan";
	static struct out o;
	Sysgate__V1__Envelope e;
	Sysgate__V1__Action a;
	Sysgate__V1__Action__Continue ac;
	e = env(SYSGATE__V1__ENVELOPE__BODY_ACTION);
	e.action = &a;
	sysgate__v1__action__init(&a);
	a.seq = 1;
	a.kind_case = SYSGATE__V1__ACTION__KIND_DO_CONTINUE;
	sysgate__v1__action__continue__init(&ac);
	a.do_continue = &ac;
	struct snapshot_msg s;
	snapshot(&s, 1, 0, SYS_openat, "/tmp/x", 1, NULL, 0);

	o.n = 0; /* a round trip each way */
	put_uint(&o, 0, 4);
	put_uint(&o, 0, 4);
	step_record(&o, 10, &s.e);
	put_uint(&o, 11, 1);
	step_record(&o, 4, &e);
	put_uint(&o, 6, 1);
	put_uint(&o, 6, 1);
	write_seed(t, "roundtrip", o.b, o.n);

	o.n = 0; /* big records past the end of the ring and the 32-bit wrap */
	put_uint(&o, 0xffff0000u, 4);
	put_uint(&o, 0xfffc0000u, 4);
	for (int i = 0; i < 12; i++) {
		step_big(&o, 4, 60000);
		put_uint(&o, 7, 1);
		put_uint(&o, 1, 1);
		step_big(&o, 10, 50000);
		put_uint(&o, 11, 1);
	}
	write_seed(t, "wrap", o.b, o.n);

	o.n = 0; /* a hostile worker: a tail, a header, bytes */
	put_uint(&o, 0, 4);
	put_uint(&o, 0, 4);
	step_record(&o, 4, &e);
	put_uint(&o, 3, 1);
	put_uint(&o, 0xffffffffu, 4); /* a wrap marker where the record was */
	put_uint(&o, 6, 1);
	put_uint(&o, 1, 1);
	put_uint(&o, 64, 2);
	put_uint(&o, 6, 1);
	put_uint(&o, 9, 1);
	put_uint(&o, 0x8000, 2);
	step_record(&o, 10, &s.e);
	write_seed(t, "hostile", o.b, o.n);
}

/* ---- Command lines and memory images ---------------------------------------- */

static void cli_seed(const char *name, const char *const *args, size_t n)
{
	static struct out o;
	o.n = 0;
	for (size_t i = 0; i < n; i++)
		put(&o, args[i], strlen(args[i]) + (i + 1 < n));
	write_seed("cli", name, o.b, o.n);
}

static void cli_seeds(void)
{
	static const char *const basic[] = { "-r",        "/usr", "-w", "/tmp",     "--no-network",
					     "--timeout", "2.5",  "--", "/bin/true" };
	cli_seed("basic", basic, ARRAY_SIZE(basic));
	static const char *const workers[] = { "--worker",
					       "sg-audit --json\t -v",
					       "--replicas",
					       "3",
					       "--worker",
					       "  python3 w.py  ",
					       "--worker-transport",
					       "nng",
					       "--handler-timeout",
					       "100",
					       "--audit",
					       "-",
					       "-v",
					       "sh",
					       "-c",
					       "ls" };
	cli_seed("workers", workers, ARRAY_SIZE(workers));
	static const char *const syscalls[] = { "--deny-syscall", "ptrace", "--trap",     "39",
						"--max-procs",    "64",     "--hostname", "box",
						"--name",         "job",    "true" };
	cli_seed("syscalls", syscalls, ARRAY_SIZE(syscalls));
	static const char *const bad[] = { "--help=x", "-hv", "--replicas", "2" };
	cli_seed("bad", bad, ARRAY_SIZE(bad));
}

static void childmem_seed(const char *name, uint8_t mode, uint8_t call, const uint16_t off[6],
			  uint8_t op, uint16_t addr, uint16_t len, const char *const *strings,
			  const uint16_t *at, size_t n)
{
	static struct out o;
	static uint8_t image[3 * 4096];
	o.n = 0;
	put_uint(&o, mode, 1);
	put_uint(&o, call, 1);
	for (int i = 0; i < 6; i++)
		put_uint(&o, off[i], 2);
	put_uint(&o, op, 1);
	put_uint(&o, addr, 2);
	put_uint(&o, len, 2);
	put_uint(&o, 'x', 1);
	memset(image, 'A', sizeof(image));
	for (size_t i = 0; i < n; i++)
		memcpy(image + at[i], strings[i], strlen(strings[i]) + 1);
	put(&o, image, sizeof(image));
	write_seed("childmem", name, o.b, o.n);
}

static void childmem_seeds(void)
{
	/* Offsets are from the arena's start; its page 1 is the image's byte 0. */
	static const char *const strs[] = { "/etc/passwd", "new name", "" };
	static const uint16_t at[] = { 0, 100, 8191 };
	static const uint16_t open_off[6] = { 0, 4096, 0, 0, 0, 0 };
	childmem_seed("openat-read", 3, 0, open_off, 1, 4096, 12, strs, at, 3);
	static const uint16_t rename_off[6] = { 0, 4196, 0, 12287, 0, 0 };
	childmem_seed("renameat2-cstr", 3, 1, rename_off, 2, 4096, 64, strs, at, 3);
	/* A string running into the unmapped page; a write to the read-only one. */
	static const uint16_t edge_off[6] = { 0, 16380, 0, 0, 0, 0 };
	childmem_seed("edge-write-ro", 3, 0, edge_off, 3, 12290, 8, strs, at, 2);
	childmem_seed("write-rw", 3, 0, open_off, 3, 4200, 100, strs, at, 2);
	childmem_seed("gone", 1, 1, rename_off, 1, 4096, 12, strs, at, 3);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
		return 2;
	}
	root = argv[1];
	mkdir(root, 0755);
	for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++)
		token[i] = (uint8_t)i;
	worker_seeds();
	supervisor_seeds();
	fastchan_seeds();
	cli_seeds();
	childmem_seeds();
	return failed;
}
