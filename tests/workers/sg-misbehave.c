/* sg-misbehave: a test-only handler worker that breaks the worker protocol
 * on purpose, so the integration tests can check that the supervisor fails
 * closed (docs/handlers.md#exception-policies, docs/protocol.md "What the supervisor
 * enforces"): it crashes, exits, hangs, answers twice or with a seq it does
 * not hold, sends garbage, no action, a failure or a wrong version, or
 * registers what the supervisor must refuse. Its mem* modes use the memory
 * proxy (docs/protocol.md "What the supervisor enforces") rightly and
 * wrongly, and print what the supervisor answered.
 *
 * It speaks the protocol with the codec (common/protocol.h), not the SDK:
 * the SDK is built never to send any of this.
 *
 *	sg-misbehave [--once] [--policy kill|eperm|eio|continue] [--syscall NAME]
 *	             [--after N] [--register NAME ...] MODE
 *
 * It registers SYSCALL with the policy, answers continue to the first N
 * snapshots, misbehaves as MODE on the next one (one line on stderr), and
 * answers continue after that until Goodbye or the end of the link (exit 0).
 * MODE register sends only the --register names, prints the supervisor's
 * answer and exits. With --once, only the first start (SYSGATE_WORKER_RESTART
 * absent or 0) misbehaves; restarts behave as MODE ok.
 *
 * The memory modes act on every snapshot after the first N and print what
 * they were answered on stdout, a line per request (flushed):
 *	memread    READ_CSTR of 4096 bytes at args[1]: "memread: STRING" or
 *	           "memread: error=N"; then a READ of 4 bytes there:
 *	           "memread4: HEX" or "memread4: error=N"; answers continue
 *	           (use with --syscall openat)
 *	memwrite   WRITE "/virtual\0" at args[0] when args[1] >= 9:
 *	           "memwrite: error=N", answers return 9 (use with --syscall
 *	           getcwd), or continue if the write failed; a smaller buffer
 *	           gets ERANGE
 *	memstale   READ of 8 bytes at args[0] for seq+1000, which it does not
 *	           hold: "memstale: error=N"; answers continue
 *	memafter   answers continue, then READs 8 bytes at args[0] for the seq
 *	           it just answered: "memafter: error=N"
 *	membad     READ of 8 bytes at address 0: "membad: error=N"; answers
 *	           continue
 *	membig     READ of PROTO_MAX_MEM + 1 bytes at args[0], which the codec
 *	           refuses: "membig: requesting N bytes", then "membig: error=N"
 *	           if a reply comes, "membig: link closed" if the link ends
 *	memreadat  READ of 8 bytes at args[0]: "memreadat: HEX" (as many bytes
 *	           as came) or "memreadat: error=N"; answers continue
 *	memwriteat WRITE "sysgate!" (8 bytes) at args[0]: "memwriteat:
 *	           error=N"; answers continue
 * A reply's text is printed with bytes outside printable ASCII as '?'.
 * Snapshots arriving while a memory request waits are served after it.
 *
 * The fast* modes offer the fast channel (common/fastchan.h) in the Hello
 * and break it (one line on stderr), then wait on the link without
 * serving:
 *	fastcorrupt   an impossible tail in the worker->supervisor ring, once the
 *	              first Snapshot arrived (so while a call is pending)
 *	fastgarbage   a record that is no protobuf on the receiver's lane, right
 *	              after the Welcome
 *	fastlifecycle an encoded Goodbye on the router's ring, once the first
 *	              Snapshot arrived
 *	fasthead      impossible read positions in both supervisor->worker rings,
 *	              right after the Welcome
 *
 * Attacks on the supervisor's resources and on sibling workers (issue 12):
 *	sibling  before dialing its own link, dials the link of the next
 *	         worker (".../wN/link" -> ".../wN+1/link") and keeps redialing it
 *	         every few milliseconds for as long as it lives, saying nothing
 *	         on it ("sibling: stat errno N" first: whether it can see the
 *	         socket's file); then serves as MODE ok
 *	flood    right after the Welcome, sends 2,000 records of 64 KiB
 *	         of JSON ("[[],[],...]", the most memory per byte for a JSON
 *	         parser), as fast as the link takes them ("flood: sent N" on
 *	         stderr), then serves as MODE ok */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fastchan.h"
#include "protocol.h"
#include "syscalls.h"
#include "util.h"

#define PROG "sg-misbehave"
#define ENV_URL "SYSGATE_WORKER_URL"
#define ENV_TOKEN "SYSGATE_WORKER_TOKEN"
#define ENV_NAME "SYSGATE_WORKER_NAME"
#define ENV_RESTART "SYSGATE_WORKER_RESTART"
#define ENV_FAST "SYSGATE_WORKER_FAST"

/* How often a blocked receive or send looks whether the supervisor's end
 * went away: a pair1 dialer would otherwise wait for it forever. */
#define POLL_MS 100

/* The version a wrongversion answer claims: one no supervisor speaks. */
#define WRONG_VERSION 99u
/* What a wrongseq answer adds to the seq it should have answered. */
#define WRONG_SEQ_OFFSET 1000u
/* The errno of MODE errno (EACCES): any valid one would do. */
#define ERRNO_ANSWER 13
/* What MODE memread asks for: a path's worth (PATH_MAX), then a word. */
#define MEMREAD_LENGTH 4096u
#define MEMREAD_WORD 4u
/* What MODE memstale, memafter, membad and memreadat read. */
#define MEMPROBE_LENGTH 8u
/* The directory MODE memwrite makes getcwd return, with its NUL (getcwd
 * returns the length including it). */
static const char virtual_cwd[] = "/virtual";
/* What MODE memwriteat writes: MEMPROBE_LENGTH bytes, no NUL. */
static const char probe_bytes[MEMPROBE_LENGTH] = { 's', 'y', 's', 'g', 'a', 't', 'e', '!' };

enum { EXIT_USAGE = 2, EXIT_ON_PURPOSE = 3 };

enum mode {
	MODE_OK,
	MODE_SEGV,
	MODE_ABORT,
	MODE_EXIT,
	MODE_HANG,
	MODE_TWICE,
	MODE_WRONGSEQ,
	MODE_GARBAGE,
	MODE_NOACTION,
	MODE_FAIL,
	MODE_ERRNO,
	MODE_WRONGVERSION,
	MODE_REGISTER,
	MODE_MEMREAD,
	MODE_MEMWRITE,
	MODE_MEMSTALE,
	MODE_MEMAFTER,
	MODE_MEMBAD,
	MODE_MEMBIG,
	MODE_MEMREADAT,
	MODE_MEMWRITEAT,
	MODE_RECORD,
	MODE_BADRECORD,
	MODE_RETURN,
	MODE_KILL,
	MODE_INJECTTRACK,
	MODE_FASTCORRUPT,
	MODE_FASTGARBAGE,
	MODE_FASTLIFECYCLE,
	MODE_FASTHEAD,
	MODE_SIBLING,
	MODE_FLOOD,
};

static const char *const mode_names[] = {
	[MODE_OK] = "ok",
	[MODE_SEGV] = "segv",
	[MODE_ABORT] = "abort",
	[MODE_EXIT] = "exit",
	[MODE_HANG] = "hang",
	[MODE_TWICE] = "twice",
	[MODE_WRONGSEQ] = "wrongseq",
	[MODE_GARBAGE] = "garbage",
	[MODE_NOACTION] = "noaction",
	[MODE_FAIL] = "fail",
	[MODE_ERRNO] = "errno",
	[MODE_WRONGVERSION] = "wrongversion",
	[MODE_REGISTER] = "register",
	[MODE_MEMREAD] = "memread",
	[MODE_MEMWRITE] = "memwrite",
	[MODE_MEMSTALE] = "memstale",
	[MODE_MEMAFTER] = "memafter",
	[MODE_MEMBAD] = "membad",
	[MODE_MEMBIG] = "membig",
	[MODE_MEMREADAT] = "memreadat",
	[MODE_MEMWRITEAT] = "memwriteat",
	[MODE_RECORD] = "record",
	[MODE_BADRECORD] = "badrecord",
	[MODE_RETURN] = "return",
	[MODE_KILL] = "kill",
	[MODE_INJECTTRACK] = "injecttrack",
	[MODE_FASTCORRUPT] = "fastcorrupt",
	[MODE_FASTGARBAGE] = "fastgarbage",
	[MODE_FASTLIFECYCLE] = "fastlifecycle",
	[MODE_FASTHEAD] = "fasthead",
	[MODE_SIBLING] = "sibling",
	[MODE_FLOOD] = "flood",
};

static const struct {
	const char *name;
	Sysgate__V1__ExceptionPolicy policy;
} policy_names[] = {
	{ "kill", SYSGATE__V1__EXCEPTION_POLICY__KILL },
	{ "eperm", SYSGATE__V1__EXCEPTION_POLICY__DENY_EPERM },
	{ "eio", SYSGATE__V1__EXCEPTION_POLICY__DENY_EIO },
	{ "continue", SYSGATE__V1__EXCEPTION_POLICY__CONTINUE },
};

struct options {
	enum mode mode;
	bool once;
	Sysgate__V1__ExceptionPolicy policy;
	const char *syscall;
	unsigned long after;
	const char **registers; /* --register values, in order */
	size_t n_registers;
	bool fork_child; /* --fork-child TAG: leave a child behind (TAG unused) */
};

/* What the supervisor passed in the environment. */
struct env {
	const char *url;
	const char *name;
	uint8_t token[PROTO_TOKEN_SIZE];
	unsigned long restart;
	int fast_fd, fast_wake_fd; /* SYSGATE_WORKER_FAST, or -1 */
};

struct link {
	nng_socket socket;
	atomic_bool lost; /* the supervisor's end went away */
};

/* How a send or receive ended; errors are printed where they happen. */
enum link_result { LINK_ERROR = -1, LINK_OK = 0, LINK_CLOSED = 1 };

/* parse_options: --help was printed, exit 0. */
#define OPTIONS_HELP (-1)

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [--once] [--policy kill|eperm|eio|continue] [--syscall NAME]\n"
		   "       [--after N] [--register NAME ...] MODE\n"
		   "MODE: ok segv abort exit hang twice wrongseq garbage noaction fail errno\n"
		   "      wrongversion register memread memwrite memstale memafter membad\n"
		   "      membig memreadat memwriteat record badrecord return kill injecttrack\n"
		   "      fastcorrupt fastgarbage fastlifecycle fasthead\n");
}

/* ---- Options and environment ------------------------------------------- */

static bool parse_ulong(const char *s, unsigned long *out)
{
	if (!*s || *s == '-' || *s == '+')
		return false;
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* 0, OPTIONS_HELP, or an exit status after printing why. */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "once", no_argument, NULL, 'o' },
		{ "fork-child", required_argument, NULL, 'F' },
		{ "policy", required_argument, NULL, 'p' },
		{ "syscall", required_argument, NULL, 's' },
		{ "after", required_argument, NULL, 'a' },
		{ "register", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct options){ .policy = SYSGATE__V1__EXCEPTION_POLICY__KILL,
			       .syscall = "getppid" };
	/* At most one --register per argument pair: argc bounds them. */
	o->registers = calloc((size_t)argc, sizeof(*o->registers));
	if (!o->registers) {
		fprintf(stderr, PROG ": out of memory\n");
		return EXIT_FAILURE;
	}
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'F':
			o->fork_child = true; /* the argument only marks the command line */
			break;
		case 'o':
			o->once = true;
			break;
		case 'p': {
			size_t i = 0;
			while (i < ARRAY_SIZE(policy_names) && strcmp(optarg, policy_names[i].name))
				i++;
			if (i == ARRAY_SIZE(policy_names)) {
				fprintf(stderr, PROG ": unknown policy \"%s\"\n", optarg);
				usage(stderr);
				return EXIT_USAGE;
			}
			o->policy = policy_names[i].policy;
			break;
		}
		case 's':
			o->syscall = optarg;
			break;
		case 'a':
			if (!parse_ulong(optarg, &o->after)) {
				fprintf(stderr, PROG ": --after wants a count, not \"%s\"\n",
					optarg);
				usage(stderr);
				return EXIT_USAGE;
			}
			break;
		case 'r':
			o->registers[o->n_registers++] = optarg;
			break;
		case 'h':
			usage(stdout);
			return OPTIONS_HELP;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	size_t m = 0;
	while (m < ARRAY_SIZE(mode_names) && strcmp(argv[optind], mode_names[m]))
		m++;
	if (m == ARRAY_SIZE(mode_names)) {
		fprintf(stderr, PROG ": unknown mode \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	o->mode = (enum mode)m;
	return 0;
}

/* 0, or EXIT_FAILURE after printing what is missing or malformed. */
static int read_env(struct env *e)
{
	*e = (struct env){ .name = PROG, .fast_fd = -1, .fast_wake_fd = -1 };
	const char *fast = getenv(ENV_FAST);
	if (fast && sscanf(fast, "%d,%d", &e->fast_fd, &e->fast_wake_fd) != 2)
		e->fast_fd = e->fast_wake_fd = -1;
	e->url = getenv(ENV_URL);
	if (!e->url || !*e->url) {
		fprintf(stderr, PROG ": %s is not set: not started by sysgate?\n", ENV_URL);
		return EXIT_FAILURE;
	}
	const char *token = getenv(ENV_TOKEN);
	if (!token) {
		fprintf(stderr, PROG ": %s is not set: not started by sysgate?\n", ENV_TOKEN);
		return EXIT_FAILURE;
	}
	if (hex_decode(token, e->token, PROTO_TOKEN_SIZE) < 0) {
		fprintf(stderr, PROG ": %s is not %u hex digits\n", ENV_TOKEN,
			2 * PROTO_TOKEN_SIZE);
		return EXIT_FAILURE;
	}
	const char *name = getenv(ENV_NAME);
	if (name && *name)
		e->name = name;
	const char *restart = getenv(ENV_RESTART);
	if (restart && *restart && !parse_ulong(restart, &e->restart)) {
		fprintf(stderr, PROG ": %s is not a count: \"%s\"\n", ENV_RESTART, restart);
		return EXIT_FAILURE;
	}
	return 0;
}

/* ---- The link ------------------------------------------------------------ */

static void on_pipe_removed(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	(void)pipe;
	(void)ev;
	struct link *l = arg;
	atomic_store(&l->lost, true);
}

static int link_dial(struct link *l, const char *url)
{
	int rv = nng_pair1_open(&l->socket);
	if (rv != 0) {
		fprintf(stderr, PROG ": opening a pair1 socket: %s\n", nng_strerror(rv));
		return LINK_ERROR;
	}
	rv = nng_socket_set_size(l->socket, NNG_OPT_RECVMAXSZ, PROTO_MAX_MESSAGE);
	if (rv == 0)
		rv = nng_socket_set_ms(l->socket, NNG_OPT_RECVTIMEO, POLL_MS);
	if (rv == 0)
		rv = nng_socket_set_ms(l->socket, NNG_OPT_SENDTIMEO, POLL_MS);
	/* Never dial again once the supervisor dropped us: a restarted worker
	 * is a new process, and this one must not take its place. */
	if (rv == 0)
		rv = nng_socket_set_ms(l->socket, NNG_OPT_RECONNMINT, INT32_MAX);
	if (rv == 0)
		rv = nng_socket_set_ms(l->socket, NNG_OPT_RECONNMAXT, INT32_MAX);
	if (rv == 0)
		rv = nng_pipe_notify(l->socket, NNG_PIPE_EV_REM_POST, on_pipe_removed, l);
	if (rv != 0) {
		fprintf(stderr, PROG ": setting up the link: %s\n", nng_strerror(rv));
		return LINK_ERROR;
	}
	rv = nng_dial(l->socket, url, NULL, 0);
	if (rv != 0) {
		fprintf(stderr, PROG ": dialing %s: %s\n", url, nng_strerror(rv));
		return LINK_ERROR;
	}
	return LINK_OK;
}

/* Sends buf[0..len) as one message. */
static enum link_result link_send_raw(struct link *l, const void *buf, size_t len)
{
	nng_msg *msg = NULL;
	int rv = nng_msg_alloc(&msg, 0);
	if (rv == 0)
		rv = nng_msg_append(msg, buf, len);
	while (rv == 0) {
		rv = nng_sendmsg(l->socket, msg, 0);
		if (rv == 0)
			return LINK_OK; /* nng owns msg now */
		if (rv == NNG_ETIMEDOUT && !atomic_load(&l->lost))
			rv = 0;
	}
	nng_msg_free(msg);
	if (rv == NNG_ETIMEDOUT || rv == NNG_ECLOSED)
		return LINK_CLOSED;
	fprintf(stderr, PROG ": sending %zu bytes: %s\n", len, nng_strerror(rv));
	return LINK_ERROR;
}

static enum link_result link_send(struct link *l, const Sysgate__V1__Envelope *m)
{
	_cleanup_free_ void *buf = NULL;
	size_t len = 0;
	struct sg_err err;
	if (proto_encode(m, &buf, &len, &err) < 0) {
		fprintf(stderr, PROG ": %s\n", err.msg);
		return LINK_ERROR;
	}
	return link_send_raw(l, buf, len);
}

/* Receives one envelope into *out, checked as the SDK checks it. */
static enum link_result link_recv(struct link *l, Sysgate__V1__Envelope **out)
{
	nng_msg *msg = NULL;
	int rv;
	/* Messages queued before the supervisor closed are still delivered:
	 * the link counts as closed only once nothing is left to read. */
	while ((rv = nng_recvmsg(l->socket, &msg, 0)) == NNG_ETIMEDOUT)
		if (atomic_load(&l->lost))
			return LINK_CLOSED;
	if (rv == NNG_ECLOSED)
		return LINK_CLOSED;
	if (rv != 0) {
		fprintf(stderr, PROG ": receiving: %s\n", nng_strerror(rv));
		return LINK_ERROR;
	}
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	struct sg_err err;
	int r = proto_decode(nng_msg_body(msg), nng_msg_len(msg), &m, &err);
	nng_msg_free(msg);
	if (r == 0)
		r = proto_validate_from_supervisor(m, &err);
	if (r < 0) {
		fprintf(stderr, PROG ": from the supervisor: %s\n", err.msg);
		return LINK_ERROR;
	}
	*out = steal_ptr(&m);
	return LINK_OK;
}

/* A message the receiver had no use for: Goodbye and Error (after a
 * violation, which is what the test asked for) end the session as
 * LINK_CLOSED; any other kind is a fault. */
static enum link_result link_end(const Sysgate__V1__Envelope *m)
{
	switch (m->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		return LINK_CLOSED;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		fprintf(stderr, PROG ": the supervisor sent Error: %s\n", m->error->message);
		return LINK_CLOSED;
	default:
		fprintf(stderr, PROG ": unexpected message kind %d\n", (int)m->body_case);
		return LINK_ERROR;
	}
}

static bool mode_is_fast(enum mode mode)
{
	return mode >= MODE_FASTCORRUPT && mode <= MODE_FASTHEAD;
}

/* Breaks the fast channel as the mode says, and wakes the supervisor. */
static int break_fast(const struct env *e, enum mode mode)
{
	struct fastchan_shm *shm;
	struct sg_err err;
	if (e->fast_fd < 0 || fastchan_map(e->fast_fd, &shm, &err) < 0) {
		fprintf(stderr, PROG ": no fast channel to break\n");
		return EXIT_FAILURE;
	}
	if (mode == MODE_FASTCORRUPT || mode == MODE_FASTLIFECYCLE) {
		/* Broken before a call came, the router would find it while the
		 * sandbox is still starting: a failed start, not a policy. */
		struct fastchan_end in[2] = { { .ring = &shm->to_worker },
					      { .ring = &shm->to_worker_r } };
		for (int i = 0; i < 20000 && !fastchan_ready(&in[0]) && !fastchan_ready(&in[1]);
		     i++)
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	fprintf(stderr, PROG ": %s\n", mode_names[mode]);
	struct fastchan_end to_sup = { .ring = &shm->to_sup };
	struct fastchan_end lane = { .ring = &shm->to_sup_r };
	static const uint8_t junk[] = { 0xff, 0xfe, 0x00, 0x42, 0x13, 0x37, 0x99 };
	switch (mode) {
	case MODE_FASTCORRUPT:
		atomic_store(&shm->to_sup.tail, 12345u); /* not a record boundary */
		break;
	case MODE_FASTGARBAGE:
		fastchan_push(&lane, junk, sizeof(junk));
		break;
	case MODE_FASTLIFECYCLE: {
		Sysgate__V1__Envelope env;
		Sysgate__V1__Goodbye bye;
		proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_GOODBYE);
		sysgate__v1__goodbye__init(&bye);
		env.goodbye = &bye;
		proto_ring_put(&to_sup, &env);
		break;
	}
	default:
		atomic_store(&shm->to_worker.head, 3u);
		atomic_store(&shm->to_worker_r.head, 77777u);
		break;
	}
	uint64_t one = 1;
	(void)!write(e->fast_wake_fd, &one, sizeof(one));
	return EXIT_SUCCESS;
}

/* ---- Handshake ----------------------------------------------------------- */

/* A --register or --syscall value: a decimal number (negative ones too,
 * which the supervisor must refuse) is sent as syscall_nr with no name,
 * anything else as syscall_name. */
static void registration_set(Sysgate__V1__Registration *r, const char *syscall)
{
	char *end = NULL;
	errno = 0;
	long long nr = strtoll(syscall, &end, 10);
	if (*syscall && !*end && !errno)
		r->syscall_nr = nr;
	else
		r->syscall_name = (char *)(uintptr_t)syscall; /* not written to */
}

static enum link_result send_hello(struct link *l, const struct options *o, const struct env *e)
{
	/* MODE register sends exactly the --register names, even none. */
	/* injecttrack too, when given --register names (openat and read). */
	bool listed = o->mode == MODE_REGISTER || (o->mode == MODE_INJECTTRACK && o->n_registers);
	const char *const *names = listed ? o->registers : &o->syscall;
	size_t n = listed ? o->n_registers : 1;
	_cleanup_free_ Sysgate__V1__Registration *regs = calloc(n + 1, sizeof(*regs));
	_cleanup_free_ Sysgate__V1__Registration **ptrs = calloc(n + 1, sizeof(*ptrs));
	if (!regs || !ptrs) {
		fprintf(stderr, PROG ": building Hello: out of memory\n");
		return LINK_ERROR;
	}
	for (size_t i = 0; i < n; i++) {
		sysgate__v1__registration__init(&regs[i]);
		registration_set(&regs[i], names[i]);
		regs[i].order = (uint32_t)i;
		regs[i].on_exception = o->policy;
		ptrs[i] = &regs[i];
	}
	Sysgate__V1__Envelope env;
	Sysgate__V1__Hello hello;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_HELLO);
	sysgate__v1__hello__init(&hello);
	env.hello = &hello;
	hello.protocol_version = SYSGATE_PROTOCOL_VERSION;
	hello.worker_name = (char *)(uintptr_t)e->name; /* not written to */
	hello.token = (ProtobufCBinaryData){ .len = PROTO_TOKEN_SIZE,
					     .data = (uint8_t *)(uintptr_t)e->token };
	hello.n_registrations = n;
	hello.registrations = ptrs;
	hello.fast_channel = mode_is_fast(o->mode) && e->fast_fd >= 0;
	/* Deliberately not validated: MODE register sends what the supervisor
	 * must refuse. */
	return link_send(l, &env);
}

/* Waits for the answer to Hello: true when welcomed, else false and the
 * exit status in *status. MODE register prints the answer on stdout for
 * the test and stops there. */
static bool await_welcome(struct link *l, const struct options *o, int *status)
{
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	*status = EXIT_FAILURE;
	enum link_result r = link_recv(l, &m);
	if (r == LINK_CLOSED) {
		fprintf(stderr, PROG ": the link closed before a Welcome\n");
		*status = EXIT_SUCCESS;
		return false;
	}
	if (r != LINK_OK)
		return false;
	bool reg = o->mode == MODE_REGISTER;
	switch (m->body_case) {
	case SYSGATE__V1__ENVELOPE__BODY_WELCOME:
		if (reg) {
			printf("welcome: accepted=%d reason=%s\n", m->welcome->accepted ? 1 : 0,
			       m->welcome->reason);
			fflush(stdout);
			*status = EXIT_SUCCESS;
			return false;
		}
		if (!m->welcome->accepted) {
			fprintf(stderr, PROG ": not accepted: %s\n", m->welcome->reason);
			return false;
		}
		return true;
	case SYSGATE__V1__ENVELOPE__BODY_ERROR:
		/* The other way to refuse a Hello (docs/protocol.md). */
		if (reg) {
			printf("error: code=%d message=%s\n", m->error->code, m->error->message);
			fflush(stdout);
			*status = EXIT_SUCCESS;
			return false;
		}
		fprintf(stderr, PROG ": not accepted: %s (%s)\n", m->error->message,
			strerror(m->error->code));
		return false;
	case SYSGATE__V1__ENVELOPE__BODY_GOODBYE:
		fprintf(stderr, PROG ": goodbye before a Welcome: %s\n", m->goodbye->reason);
		*status = EXIT_SUCCESS;
		return false;
	default:
		fprintf(stderr, PROG ": the supervisor sent message kind %d before its Welcome\n",
			(int)m->body_case);
		return false;
	}
}

/* ---- Answers ------------------------------------------------------------- */

/* An Action envelope in storage owned by the caller. */
struct answer {
	Sysgate__V1__Envelope env;
	Sysgate__V1__Action action;
	Sysgate__V1__Action__Continue do_continue;
	Sysgate__V1__Action__Errno do_errno;
	Sysgate__V1__Action__Return do_return;
	Sysgate__V1__Action__Kill do_kill;
	Sysgate__V1__Action__Failed do_fail;
};

/* An Action for seq with no kind set; the caller picks one. */
static void answer_init(struct answer *a, uint64_t seq)
{
	proto_envelope_init(&a->env, SYSGATE__V1__ENVELOPE__BODY_ACTION);
	sysgate__v1__action__init(&a->action);
	sysgate__v1__action__continue__init(&a->do_continue);
	sysgate__v1__action__errno__init(&a->do_errno);
	sysgate__v1__action__return__init(&a->do_return);
	sysgate__v1__action__failed__init(&a->do_fail);
	a->env.action = &a->action;
	a->action.seq = seq;
}

static void answer_continue(struct answer *a, uint64_t seq)
{
	answer_init(a, seq);
	a->action.kind_case = SYSGATE__V1__ACTION__KIND_DO_CONTINUE;
	a->action.do_continue = &a->do_continue;
}

static enum link_result send_continue(struct link *l, uint64_t seq)
{
	struct answer a;
	answer_continue(&a, seq);
	return link_send(l, &a.env);
}

/* Packs a continue for seq under a version the codec would refuse to
 * encode. */
static enum link_result send_wrong_version(struct link *l, uint64_t seq)
{
	struct answer a;
	answer_continue(&a, seq);
	a.env.version = WRONG_VERSION;
	size_t len = sysgate__v1__envelope__get_packed_size(&a.env);
	_cleanup_free_ uint8_t *buf = malloc(len);
	if (!buf) {
		fprintf(stderr, PROG ": out of memory\n");
		return LINK_ERROR;
	}
	sysgate__v1__envelope__pack(&a.env, buf);
	return link_send_raw(l, buf, len);
}

/* A NULL write the compiler can neither see through nor drop as a dead
 * store. UBSan is told not to report it (and, for that, not to inline it
 * into instrumented code), so the sanitizer build dies of the signal too. */
__attribute__((noinline, no_sanitize("null"))) static void crash_segv(void)
{
	/* Whatever handler a runtime installed (AddressSanitizer's reports and
	 * exits 1), the test wants death by SIGSEGV. */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigaction(SIGSEGV, &dfl, NULL);
	volatile int *volatile p = NULL;
	*p = 1;
}

static enum link_result send_errno(struct link *l, uint64_t seq, int errnum)
{
	struct answer a;
	answer_init(&a, seq);
	a.action.kind_case = SYSGATE__V1__ACTION__KIND_DO_ERRNO;
	a.action.do_errno = &a.do_errno;
	a.do_errno.errnum = errnum;
	return link_send(l, &a.env);
}

static enum link_result send_return(struct link *l, uint64_t seq, int64_t value)
{
	struct answer a;
	answer_init(&a, seq);
	a.action.kind_case = SYSGATE__V1__ACTION__KIND_DO_RETURN;
	a.action.do_return = &a.do_return;
	a.do_return.value = value;
	return link_send(l, &a.env);
}

/* ---- The session and the memory proxy ----------------------------------- */

/* A snapshot that arrived while a memory request waited. */
struct deferred {
	struct deferred *next;
	Sysgate__V1__Envelope *m;
};

struct session {
	struct link *link;
	enum mode mode;
	unsigned long after; /* --after */
	unsigned long seen;  /* snapshots so far */
	uint64_t last_request_id;
	struct deferred *backlog, *backlog_tail; /* to serve next, oldest first */
	int tracked_fd; /* injecttrack: the fd the supervisor said it installed */
	uint32_t tracked_pid;
	unsigned long tracked_reads;
};

static bool mode_uses_memory(enum mode mode)
{
	return mode >= MODE_MEMREAD && mode <= MODE_MEMWRITEAT;
}

static enum link_result backlog_push(struct session *s, Sysgate__V1__Envelope *m)
{
	struct deferred *d = malloc(sizeof(*d));
	if (!d) {
		fprintf(stderr, PROG ": out of memory\n");
		proto_envelope_free(m);
		return LINK_ERROR;
	}
	*d = (struct deferred){ .m = m };
	if (s->backlog_tail)
		s->backlog_tail->next = d;
	else
		s->backlog = d;
	s->backlog_tail = d;
	return LINK_OK;
}

/* The oldest deferred snapshot (the caller frees it), or NULL. */
static Sysgate__V1__Envelope *backlog_pop(struct session *s)
{
	struct deferred *d = s->backlog;
	if (!d)
		return NULL;
	s->backlog = d->next;
	if (!s->backlog)
		s->backlog_tail = NULL;
	Sysgate__V1__Envelope *m = d->m;
	free(d);
	return m;
}

static void session_done(struct session *s)
{
	Sysgate__V1__Envelope *m;
	while ((m = backlog_pop(s)))
		proto_envelope_free(m);
}

/* Sends a MemRequest for seq and waits for the MemReply with its
 * request_id: LINK_OK with that reply in *out (the caller frees it),
 * LINK_CLOSED when the link ended or the supervisor said Goodbye or Error
 * first, else LINK_ERROR. Snapshots arriving meanwhile join the backlog; a
 * MemReply for another request_id is reported on stderr and dropped. */
static enum link_result mem_call(struct session *s, uint64_t seq, Sysgate__V1__MemRequest__Op op,
				 uint64_t addr, uint32_t length, const void *data,
				 Sysgate__V1__Envelope **out)
{
	Sysgate__V1__Envelope env;
	Sysgate__V1__MemRequest req;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_MEM_REQUEST);
	sysgate__v1__mem_request__init(&req);
	env.mem_request = &req;
	req.request_id = ++s->last_request_id;
	req.seq = seq;
	req.op = op;
	req.addr = addr;
	req.length = length;
	if (data) /* WRITE: exactly length bytes */
		req.data =
			(ProtobufCBinaryData){ .len = length, .data = (uint8_t *)(uintptr_t)data };
	enum link_result r = link_send(s->link, &env);
	if (r != LINK_OK)
		return r;
	for (;;) {
		Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
		r = link_recv(s->link, &m);
		if (r != LINK_OK)
			return r;
		switch (m->body_case) {
		case SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY:
			if (m->mem_reply->request_id == req.request_id) {
				*out = steal_ptr(&m);
				return LINK_OK;
			}
			fprintf(stderr,
				PROG ": a MemReply for request %" PRIu64
				     " while waiting for %" PRIu64 "\n",
				m->mem_reply->request_id, req.request_id);
			break;
		case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT:
			r = backlog_push(s, steal_ptr(&m));
			if (r != LINK_OK)
				return r;
			break;
		default:
			return link_end(m);
		}
	}
}

/* One line on stdout for the test, flushed: "WHAT: error=N" for a failed
 * request, else the reply's data as text (bytes outside printable ASCII as
 * '?') or as hex. */
static void print_reply(const char *what, const Sysgate__V1__MemReply *q, bool hex)
{
	printf("%s: ", what);
	if (q->error) {
		printf("error=%d", q->error);
	} else {
		for (size_t i = 0; i < q->data.len; i++) {
			uint8_t c = q->data.data[i];
			if (hex)
				printf("%02x", c);
			else
				putchar(c >= 0x20 && c < 0x7f ? c : '?');
		}
	}
	putchar('\n');
	fflush(stdout);
}

static void print_error(const char *what, const Sysgate__V1__MemReply *q)
{
	printf("%s: error=%d\n", what, q->error);
	fflush(stdout);
}

/* The memory modes on snapshot snap (docs at the top). */
static enum link_result misbehave_memory(struct session *s, const Sysgate__V1__Snapshot *snap)
{
	const uint64_t seq = snap->seq;
	const uint64_t *args = snap->args; /* PROTO_ARGS of them, validated */
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	enum link_result r;
	switch (s->mode) {
	case MODE_MEMREAD:
		r = mem_call(s, seq, SYSGATE__V1__MEM_REQUEST__OP__READ_CSTR, args[1],
			     MEMREAD_LENGTH, NULL, &m);
		if (r != LINK_OK)
			return r;
		print_reply("memread", m->mem_reply, false);
		proto_envelope_free(steal_ptr(&m));
		r = mem_call(s, seq, SYSGATE__V1__MEM_REQUEST__OP__READ, args[1], MEMREAD_WORD,
			     NULL, &m);
		if (r != LINK_OK)
			return r;
		print_reply("memread4", m->mem_reply, true);
		return send_continue(s->link, seq);
	case MODE_MEMWRITE:
		if (args[1] < sizeof(virtual_cwd)) {
			printf("memwrite: size=%" PRIu64 " too small\n", args[1]);
			fflush(stdout);
			return send_errno(s->link, seq, ERANGE);
		}
		r = mem_call(s, seq, SYSGATE__V1__MEM_REQUEST__OP__WRITE, args[0],
			     sizeof(virtual_cwd), virtual_cwd, &m);
		if (r != LINK_OK)
			return r;
		print_error("memwrite", m->mem_reply);
		/* Unwritten, the buffer holds no path: let the real getcwd run. */
		if (m->mem_reply->error)
			return send_continue(s->link, seq);
		return send_return(s->link, seq, (int64_t)sizeof(virtual_cwd));
	case MODE_MEMSTALE:
		r = mem_call(s, seq + WRONG_SEQ_OFFSET, SYSGATE__V1__MEM_REQUEST__OP__READ, args[0],
			     MEMPROBE_LENGTH, NULL, &m);
		if (r != LINK_OK)
			return r;
		print_error("memstale", m->mem_reply);
		return send_continue(s->link, seq);
	case MODE_MEMAFTER:
		r = send_continue(s->link, seq);
		if (r != LINK_OK)
			return r;
		r = mem_call(s, seq, SYSGATE__V1__MEM_REQUEST__OP__READ, args[0], MEMPROBE_LENGTH,
			     NULL, &m);
		if (r != LINK_OK)
			return r;
		print_error("memafter", m->mem_reply);
		return LINK_OK;
	case MODE_MEMBAD:
		/* The codec refuses a length of 0 and a write whose data is not
		 * `length` bytes (a violation, not a reply): the bad request
		 * that passes it is a bad address. */
		r = mem_call(s, seq, SYSGATE__V1__MEM_REQUEST__OP__READ, 0, MEMPROBE_LENGTH, NULL,
			     &m);
		if (r != LINK_OK)
			return r;
		print_error("membad", m->mem_reply);
		return send_continue(s->link, seq);
	case MODE_MEMBIG:
		printf("membig: requesting %u bytes\n", PROTO_MAX_MEM + 1u);
		fflush(stdout);
		r = mem_call(s, seq, SYSGATE__V1__MEM_REQUEST__OP__READ, args[0],
			     PROTO_MAX_MEM + 1u, NULL, &m);
		if (r == LINK_CLOSED) {
			printf("membig: link closed\n");
			fflush(stdout);
		}
		if (r != LINK_OK)
			return r;
		printf("membig: error=%d length=%zu\n", m->mem_reply->error,
		       m->mem_reply->data.len);
		fflush(stdout);
		return send_continue(s->link, seq);
	case MODE_MEMREADAT:
		r = mem_call(s, seq, SYSGATE__V1__MEM_REQUEST__OP__READ, args[0], MEMPROBE_LENGTH,
			     NULL, &m);
		if (r != LINK_OK)
			return r;
		print_reply("memreadat", m->mem_reply, true);
		return send_continue(s->link, seq);
	case MODE_MEMWRITEAT:
		r = mem_call(s, seq, SYSGATE__V1__MEM_REQUEST__OP__WRITE, args[0], MEMPROBE_LENGTH,
			     probe_bytes, &m);
		if (r != LINK_OK)
			return r;
		print_error("memwriteat", m->mem_reply);
		return send_continue(s->link, seq);
	default:
		return send_continue(s->link, seq);
	}
}

/* injecttrack: serves /virtual/file with a tracked inject_bytes (cookie 77)
 * and counts the reads on exactly the fd the supervisor reported. */
static enum link_result inject_tracked(struct session *s, const Sysgate__V1__Snapshot *snap)
{
	static char content[] = "tracked\n";
	const char *name = syscalls_name(snap->syscall_nr) ? syscalls_name(snap->syscall_nr) : "";
	if (!strcmp(name, "read") && (int)snap->args[0] == s->tracked_fd &&
	    snap->pid == s->tracked_pid) {
		printf("tracked read %lu\n", ++s->tracked_reads);
		fflush(stdout);
	}
	bool virtual_file = false;
	for (size_t i = 0; i < snap->n_paths; i++)
		if (snap->paths[i]->path.len == 13 &&
		    !memcmp(snap->paths[i]->path.data, "/virtual/file", 13))
			virtual_file = true;
	if (strcmp(name, "openat") || !virtual_file)
		return send_continue(s->link, snap->seq);
	struct answer a;
	Sysgate__V1__Action__InjectBytes ib;
	answer_init(&a, snap->seq);
	sysgate__v1__action__inject_bytes__init(&ib);
	ib.data = (ProtobufCBinaryData){ .len = sizeof(content) - 1, .data = (uint8_t *)content };
	ib.flags = SYSGATE__V1__ACTION__INJECT_BYTES__FLAG__TRACK;
	ib.cookie = 77;
	a.action.kind_case = SYSGATE__V1__ACTION__KIND_DO_INJECT_BYTES;
	a.action.do_inject_bytes = &ib;
	return link_send(s->link, &a.env);
}

/* Answers snapshot snap as the session's mode, saying so on stderr when
 * announce is set. The crashing and hanging modes do not return. */
static enum link_result misbehave(struct session *s, const Sysgate__V1__Snapshot *snap,
				  bool announce)
{
	struct link *l = s->link;
	enum mode mode = s->mode;
	uint64_t seq = snap->seq;
	if (announce && mode != MODE_OK)
		fprintf(stderr, PROG ": %s on seq %" PRIu64 "\n", mode_names[mode], seq);
	struct answer a;
	switch (mode) {
	case MODE_SEGV:
		crash_segv();
		abort(); /* not reached */
	case MODE_ABORT:
		abort();
	case MODE_EXIT:
		fflush(stdout);
		exit(EXIT_ON_PURPOSE);
	case MODE_HANG:
		/* Never answers; the default action of SIGTERM or SIGKILL still
		 * ends it. */
		for (;;)
			pause();
	case MODE_TWICE: {
		enum link_result r = send_continue(l, seq);
		return r == LINK_OK ? send_continue(l, seq) : r;
	}
	case MODE_WRONGSEQ:
		return send_continue(l, seq + WRONG_SEQ_OFFSET);
	case MODE_GARBAGE: {
		/* Sixteen varint continuation bytes: a varint that never ends,
		 * which no protobuf parser accepts. */
		uint8_t garbage[16];
		memset(garbage, 0xff, sizeof(garbage));
		return link_send_raw(l, garbage, sizeof(garbage));
	}
	case MODE_NOACTION:
		answer_init(&a, seq);
		return link_send(l, &a.env);
	case MODE_FAIL:
		answer_init(&a, seq);
		a.action.kind_case = SYSGATE__V1__ACTION__KIND_DO_FAIL;
		a.action.do_fail = &a.do_fail;
		a.do_fail.reason = (char *)(uintptr_t) "test failure"; /* not written to */
		return link_send(l, &a.env);
	case MODE_ERRNO:
		return send_errno(l, seq, ERRNO_ANSWER);
	case MODE_RETURN:
		return send_return(l, seq, 0);
	case MODE_INJECTTRACK:
		return inject_tracked(s, snap);
	case MODE_KILL: {
		answer_init(&a, seq);
		a.action.kind_case = SYSGATE__V1__ACTION__KIND_DO_KILL;
		sysgate__v1__action__kill__init(&a.do_kill);
		a.action.do_kill = &a.do_kill;
		a.do_kill.signal = SIGTERM;
		return link_send(l, &a.env);
	}
	case MODE_WRONGVERSION:
		return send_wrong_version(l, seq);
	case MODE_MEMREAD:
	case MODE_MEMWRITE:
	case MODE_MEMSTALE:
	case MODE_MEMAFTER:
	case MODE_MEMBAD:
	case MODE_MEMBIG:
	case MODE_MEMREADAT:
	case MODE_MEMWRITEAT:
		return misbehave_memory(s, snap);
	case MODE_RECORD:
	case MODE_BADRECORD: {
		/* A record for the audit log, then continue; badrecord's is not
		 * JSON. */
		char json[64];
		int n = mode == MODE_RECORD ? snprintf(json, sizeof(json), "{\"seq\":%" PRIu64 "}", seq)
					    : snprintf(json, sizeof(json), "{not json");
		Sysgate__V1__Envelope env;
		Sysgate__V1__Record rec;
		proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_RECORD);
		sysgate__v1__record__init(&rec);
		env.record = &rec;
		rec.json = (ProtobufCBinaryData){ .len = (size_t)n, .data = (uint8_t *)json };
		enum link_result r = link_send(l, &env);
		return r == LINK_OK ? send_continue(l, seq) : r;
	}
	case MODE_OK:
	case MODE_REGISTER:
	default:
		return send_continue(l, seq);
	}
}

/* ---- Serving ------------------------------------------------------------- */

/* Serves until Goodbye or the end of the link: an exit status. */
static int serve(struct session *s)
{
	for (;;) {
		/* Snapshots put aside while a memory request waited come first. */
		Sysgate__V1__Envelope *m _cleanup_envelope_ = backlog_pop(s);
		enum link_result r = LINK_OK;
		if (!m)
			r = link_recv(s->link, &m);
		if (r == LINK_CLOSED)
			return EXIT_SUCCESS;
		if (r != LINK_OK)
			return EXIT_FAILURE;
		switch (m->body_case) {
		case SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT: {
			const Sysgate__V1__Snapshot *snap = m->snapshot;
			s->seen++;
			if (s->seen <= s->after)
				r = send_continue(s->link, snap->seq);
			else if (s->seen == s->after + 1)
				r = misbehave(s, snap, true);
			else if (s->mode == MODE_ERRNO || s->mode == MODE_RECORD ||
				 s->mode == MODE_RETURN || s->mode == MODE_INJECTTRACK ||
				 mode_uses_memory(s->mode))
				r = misbehave(s, snap, false); /* a policy, not a one-off */
			else
				r = send_continue(s->link, snap->seq);
			break;
		}
		case SYSGATE__V1__ENVELOPE__BODY_INJECTED:
			s->tracked_fd = m->injected->fd;
			s->tracked_pid = m->injected->pid;
			printf("injected: fd=%d cookie=%" PRIu64 "\n", m->injected->fd,
			       m->injected->cookie);
			fflush(stdout);
			break;
		default:
			r = link_end(m);
			break;
		}
		if (r == LINK_CLOSED)
			return EXIT_SUCCESS;
		if (r != LINK_OK)
			return EXIT_FAILURE;
	}
}

/* MODE sibling: dials the next worker's link and leaves the dialer running
 * (nng redials whenever the supervisor drops it). */
static void dial_sibling(const char *url, nng_socket *sock)
{
	const char *w = strrchr(url, '/');
	while (w && w > url && *w != 'w')
		w--; /* back from "/link" to "wN" */
	const char *slash = w ? strrchr(url, '/') : NULL;
	if (!w || *w != 'w' || !slash) {
		fprintf(stderr, PROG ": sibling: unexpected url %s\n", url);
		return;
	}
	char sibling[PATH_MAX];
	snprintf(sibling, sizeof(sibling), "%.*sw%lu%s", (int)(w - url), url,
		 strtoul(w + 1, NULL, 10) + 1, slash);
	/* Whether its socket is within reach at all ("ipc://" + path). */
	struct stat st;
	const char *path = strncmp(sibling, "ipc://", 6) ? sibling : sibling + 6;
	fprintf(stderr, PROG ": sibling: stat errno %d\n", stat(path, &st) < 0 ? errno : 0);
	if (nng_pair1_open(sock) != 0 || nng_socket_set_ms(*sock, NNG_OPT_RECONNMINT, 2) != 0 ||
	    nng_socket_set_ms(*sock, NNG_OPT_RECONNMAXT, 5) != 0 ||
	    nng_dial(*sock, sibling, NULL, NNG_FLAG_NONBLOCK) != 0)
		fprintf(stderr, PROG ": sibling: cannot dial %s\n", sibling);
	else
		fprintf(stderr, PROG ": sibling: dialing %s\n", sibling);
}

#define FLOOD_RECORDS 2000
#define FLOOD_BYTES (64 * 1024)

/* MODE flood: records of "[[],[],...]" until FLOOD_RECORDS or the end of
 * the link. */
static enum link_result flood(struct link *l)
{
	static char json[FLOOD_BYTES];
	size_t n = 0;
	json[n++] = '[';
	while (n + 4 < sizeof(json)) {
		memcpy(json + n, "[],", 3);
		n += 3;
	}
	memcpy(json + n - 1, "]", 1); /* the last ',' closes the list */
	Sysgate__V1__Envelope env;
	Sysgate__V1__Record rec;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_RECORD);
	sysgate__v1__record__init(&rec);
	env.record = &rec;
	rec.json = (ProtobufCBinaryData){ .len = n, .data = (uint8_t *)json };
	enum link_result r = LINK_OK;
	unsigned sent = 0;
	while (sent < FLOOD_RECORDS && (r = link_send(l, &env)) == LINK_OK)
		sent++;
	fprintf(stderr, PROG ": flood: sent %u\n", sent);
	return r;
}

/* Dials, says Hello and serves: an exit status. */
static int run(struct link *l, const struct options *o, const struct env *e, enum mode mode)
{
	if (o->fork_child) {
		/* A child that would outlive us: the supervisor must end it too. */
		pid_t child = fork();
		if (child == 0)
			for (;;)
				pause();
	}
	nng_socket sibling = NNG_SOCKET_INITIALIZER;
	if (mode == MODE_SIBLING)
		dial_sibling(e->url, &sibling); /* closed by exit */
	if (link_dial(l, e->url) != LINK_OK)
		return EXIT_FAILURE;
	enum link_result r = send_hello(l, o, e);
	if (r != LINK_OK)
		return r == LINK_CLOSED ? EXIT_SUCCESS : EXIT_FAILURE;
	int status;
	if (!await_welcome(l, o, &status))
		return status;
	if (mode_is_fast(mode) && break_fast(e, mode) != EXIT_SUCCESS)
		return EXIT_FAILURE;
	if (mode == MODE_FLOOD && (r = flood(l)) != LINK_OK)
		return r == LINK_CLOSED ? EXIT_SUCCESS : EXIT_FAILURE;
	struct session s = { .link = l, .mode = mode, .after = o->after, .tracked_fd = -1 };
	status = serve(&s);
	session_done(&s);
	return status;
}

int main(int argc, char **argv)
{
	struct options o;
	int r = parse_options(argc, argv, &o);
	_cleanup_free_ const char **registers = o.registers;
	if (r == OPTIONS_HELP)
		return EXIT_SUCCESS;
	if (r)
		return r;
	struct env e;
	r = read_env(&e);
	if (r)
		return r;
	/* Later generations of a --once worker are the healthy restart. */
	enum mode mode = o.once && e.restart > 0 && o.mode != MODE_REGISTER ? MODE_OK : o.mode;
	struct link l = { .socket = NNG_SOCKET_INITIALIZER, .lost = false };
	r = run(&l, &o, &e, mode);
	nng_close(l.socket); /* waits for the pipe callback, which uses l */
	return r;
}
