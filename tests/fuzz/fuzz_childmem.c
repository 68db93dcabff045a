/* What the supervisor reads from, and writes to, a trapped process on
 * behalf of others: the path arguments it pre-reads for the audit log and
 * the Snapshot (notification.c notification_preread over childmem.c
 * childmem_read_cstr), the audit record made of them, and a worker's
 * memory requests (proxy.c proxy_serve). The process's memory is the
 * program's to shape: strings without a NUL, strings that end at an
 * unmapped page, read-only pages a worker asks to write.
 *
 * The "trapped process" is this one: an arena of pages, read-write,
 * read-only and unmapped (PROT_NONE), filled from the input, that the real
 * process_vm_readv and /proc/self/mem reach. The notification's validity
 * check (SECCOMP_IOCTL_NOTIF_ID_VALID) is answered by __wrap_ioctl below
 * (linked with -Wl,--wrap=ioctl), as the input says: valid, or gone after
 * some checks. Every result is compared with what the arena holds.
 *
 * Input: a header (see LLVMFuzzerTestOneInput), then the arena's bytes
 * (corpus/childmem/). */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "audit.h"
#include "compat.h"
#include "notification.h"
#include "proto_check.h"
#include "proxy.h"

#define PAGE 4096u
#define ARENA_PAGES 32u
#define RW_FIRST 1u /* pages 1, 2: read-write; 3: read-only; the rest: none */
#define RO_PAGE 3u
#define READABLE_END (4u * PAGE)
#define FAKE_LISTENER 1000000

static uint8_t *arena;
static int valid_checks_left; /* < 0: the notification stays valid */

int __real_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...);

int __wrap_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (fd != FAKE_LISTENER)
		return __real_ioctl(fd, request, arg);
	FUZZ_CHECK(request == SECCOMP_IOCTL_NOTIF_ID_VALID);
	if (valid_checks_left == 0) {
		errno = ENOENT;
		return -1;
	}
	if (valid_checks_left > 0)
		valid_checks_left--;
	return 0;
}

static void arena_fill(const uint8_t *p, size_t n)
{
	if (!arena) {
		void *a = mmap(NULL, ARENA_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			       0);
		FUZZ_CHECK(a != MAP_FAILED);
		arena = a;
		FUZZ_CHECK(mprotect(arena + RW_FIRST * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE) ==
			   0);
	}
	FUZZ_CHECK(mprotect(arena + RO_PAGE * PAGE, PAGE, PROT_READ | PROT_WRITE) == 0);
	size_t cap = READABLE_END - RW_FIRST * PAGE;
	memset(arena + RW_FIRST * PAGE, 0xa5, cap); /* no NUL unless the input puts one */
	memcpy(arena + RW_FIRST * PAGE, p, n < cap ? n : cap);
	FUZZ_CHECK(mprotect(arena + RO_PAGE * PAGE, PAGE, PROT_READ) == 0);
}

static bool readable(size_t off)
{
	return off >= RW_FIRST * PAGE && off < READABLE_END;
}

/* What childmem_read_cstr must find at arena + off (cap 4096): the string,
 * or why not. */
static int expect_cstr(size_t off, size_t *len)
{
	if (!readable(off))
		return -EFAULT;
	size_t room = READABLE_END - off, limit = PROTO_MAX_PATH - 1;
	const uint8_t *nul = memchr(arena + off, '\0', room < limit ? room : limit);
	if (nul) {
		*len = (size_t)(nul - (arena + off));
		return 0;
	}
	return room < limit ? -EFAULT : -ENAMETOOLONG;
}

static const long path_calls[] = { SYS_openat, SYS_renameat2, SYS_linkat, SYS_symlinkat,
				   SYS_execve, SYS_chdir,     SYS_read };

/* valid_for: how many of the path reads find the notification still
 * pending (3: all). */
static void check_preread(struct fuzz_in *in, unsigned valid_for)
{
	struct seccomp_notif req = { .id = 7, .pid = getpid() };
	req.data.nr = (int)path_calls[fuzz_u8(in) % ARRAY_SIZE(path_calls)];
	size_t off[PROTO_ARGS];
	for (unsigned i = 0; i < PROTO_ARGS; i++) {
		off[i] = fuzz_u16(in) % (5 * PAGE);
		req.data.args[i] = (uint64_t)(uintptr_t)(arena + off[i]);
	}
	struct childmem mem = { .listener = FAKE_LISTENER, .id = req.id, .pid = req.pid };
	struct audit_syscall rec = { .pid = req.pid, .nr = req.data.nr, .decider = "fuzz" };
	memcpy(rec.args, req.data.args, sizeof(rec.args));
	notification_preread(&rec, &req, &mem);

	unsigned idx[2];
	FUZZ_CHECK(rec.n_paths == syscalls_path_args(req.data.nr, idx));
	for (unsigned i = 0; i < rec.n_paths; i++) {
		FUZZ_CHECK(rec.path_arg[i] == idx[i]);
		size_t len = 0;
		int want =
			valid_for == 3 || i < valid_for ? expect_cstr(off[idx[i]], &len) : -ENOENT;
		if (want < 0) {
			FUZZ_CHECK(rec.path[i] == NULL && rec.path_errno[i] == -want);
			continue;
		}
		FUZZ_CHECK(rec.path[i] && rec.path_errno[i] == 0);
		FUZZ_CHECK(strlen(rec.path[i]) == len);
		FUZZ_CHECK(!memcmp(rec.path[i], arena + off[idx[i]], len));
	}

	/* The audit record of it (any bytes: a path need not be UTF-8). */
	json_t *o = audit_syscall_json(&rec, "fuzz");
	FUZZ_CHECK(o != NULL);
	char *text = json_dumps(o, JSON_COMPACT);
	FUZZ_CHECK(text != NULL);
	free(text);
	json_decref(o);

	/* The Snapshot of it, as notification.c makes it, is one the SDK
	 * accepts. */
	struct snapshot_msg m;
	notification_snapshot(&m, &req, 1, &rec, (char *)(uintptr_t) "fuzz", 0);
	struct sg_err err = { "" };
	FUZZ_CHECK(proto_validate_from_supervisor(&m.env, &err) == 0);
	audit_syscall_release(&rec);
}

/* A worker's memory request against the arena, as the router serves it. */
static void check_proxy(struct fuzz_in *in, bool valid)
{
	static uint8_t *buf;
	if (!buf)
		buf = malloc(PROXY_BUF_SIZE);
	FUZZ_CHECK(buf != NULL);
	uint8_t ro_before[PAGE];
	memcpy(ro_before, arena + RO_PAGE * PAGE, PAGE);

	Sysgate__V1__MemRequest q;
	sysgate__v1__mem_request__init(&q);
	q.request_id = 1;
	q.seq = 1;
	q.op = (Sysgate__V1__MemRequest__Op)(fuzz_u8(in) % 4);
	size_t off = fuzz_u16(in) % (5 * PAGE);
	q.addr = (uint64_t)(uintptr_t)(arena + off);
	q.length = fuzz_u16(in) % (3 * PAGE + 64);
	static uint8_t fill[3 * PAGE + 64];
	memset(fill, fuzz_u8(in), q.length);
	if (q.op == SYSGATE__V1__MEM_REQUEST__OP__WRITE)
		q.data = (ProtobufCBinaryData){ .len = q.length, .data = fill };
	Sysgate__V1__MemReply reply;
	proxy_serve(&(struct childmem){ .listener = FAKE_LISTENER, .id = 7, .pid = getpid() }, &q,
		    buf, &reply);
	FUZZ_CHECK(reply.request_id == 1);
	if (reply.error) {
		FUZZ_CHECK(reply.error > 0 && reply.error <= PROTO_MAX_ERRNO && !reply.data.len);
	} else {
		FUZZ_CHECK(valid);
		FUZZ_CHECK(q.length >= 1 && reply.data.len <= q.length);
		switch (q.op) {
		case SYSGATE__V1__MEM_REQUEST__OP__READ:
			FUZZ_CHECK(!memcmp(reply.data.data, arena + off, reply.data.len));
			FUZZ_CHECK(reply.data.len == 0 || readable(off + reply.data.len - 1));
			break;
		case SYSGATE__V1__MEM_REQUEST__OP__READ_CSTR:
			/* What sg_ctx_read_cstr accepts: no NUL inside. */
			FUZZ_CHECK(!memchr(reply.data.data, '\0', reply.data.len));
			FUZZ_CHECK(!memcmp(reply.data.data, arena + off, reply.data.len));
			break;
		case SYSGATE__V1__MEM_REQUEST__OP__WRITE:
			/* Only what the process itself could write. */
			FUZZ_CHECK(off >= RW_FIRST * PAGE && off + q.length <= RO_PAGE * PAGE);
			FUZZ_CHECK(!memcmp(arena + off, q.data.data, q.length));
			FUZZ_CHECK(reply.data.len == 0);
			break;
		default:
			FUZZ_CHECK(!"an unknown op was served");
		}
	}
	FUZZ_CHECK(!memcmp(ro_before, arena + RO_PAGE * PAGE, PAGE));
	/* The reply is one the SDK accepts. */
	Sysgate__V1__Envelope env;
	proto_envelope_init(&env, SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY);
	env.mem_reply = &reply;
	struct sg_err err = { "" };
	FUZZ_CHECK(proto_validate_from_supervisor(&env, &err) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	/* Header: validity (checks before the notification is gone, 3: never),
	 * the syscall and its six arguments' offsets, the memory request (op,
	 * offset, length, the byte a write writes). */
	uint8_t mode = fuzz_u8(&in) % 4;
	struct fuzz_in head = in;
	size_t skipped;
	fuzz_bytes(&in, 1 + 2 * PROTO_ARGS + 1 + 2 + 2 + 1, &skipped);
	size_t got;
	const uint8_t *bytes = fuzz_bytes(&in, READABLE_END, &got);
	arena_fill(bytes, got);

	valid_checks_left = mode == 3 ? -1 : mode;
	check_preread(&head, mode);
	valid_checks_left = mode == 3 ? -1 : 0;
	check_proxy(&head, mode == 3);
	return 0;
}
