#include "fastchan.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WRAP UINT32_MAX /* record header: the rest of the ring is unused */
#define HDR 4u

static uint32_t record_size(size_t len)
{
	return (uint32_t)((HDR + len + 7u) & ~(size_t)7u);
}

int fastchan_create(int *memfd, struct fastchan_shm **shm, struct sg_err *err)
{
	_cleanup_close_ int fd = memfd_create("sysgate-fastchan", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return err_sys(err, errno, "fast channel: memfd_create");
	if (ftruncate(fd, sizeof(struct fastchan_shm)) < 0)
		return err_sys(err, errno, "fast channel: ftruncate");
	/* The worker cannot resize it under us (a SIGBUS in the supervisor). */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return err_sys(err, errno, "fast channel: sealing");
	struct fastchan_shm *m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return err_sys(err, errno, "fast channel: mmap");
	m->magic = FASTCHAN_MAGIC;
	m->size = sizeof(*m);
	m->worker_cpu = m->avoid_cpu = -1;
	*shm = m;
	*memfd = steal_fd(&fd);
	return 0;
}

int fastchan_map(int memfd, struct fastchan_shm **shm, struct sg_err *err)
{
	struct stat st;
	if (fstat(memfd, &st) < 0)
		return err_sys(err, errno, "fast channel: fd %d", memfd);
	if (st.st_size != (off_t)sizeof(struct fastchan_shm))
		return err_set(err, EPROTO,
			       "fast channel: %lld bytes, expected %zu (another build?)",
			       (long long)st.st_size, sizeof(struct fastchan_shm));
	struct fastchan_shm *m =
		mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (m == MAP_FAILED)
		return err_sys(err, errno, "fast channel: mmap");
	if (m->magic != FASTCHAN_MAGIC || m->size != sizeof(*m)) {
		munmap(m, sizeof(*m));
		return err_set(err, EPROTO, "fast channel: not a sysgate channel");
	}
	*shm = m;
	return 0;
}

void fastchan_unmap(struct fastchan_shm *shm)
{
	if (shm)
		munmap(shm, sizeof(*shm));
}

void *fastchan_reserve(struct fastchan_end *e, size_t len, int *error)
{
	if (len > FASTCHAN_MAX_MSG) {
		*error = -EMSGSIZE;
		return NULL;
	}
	struct fastchan_ring *r = e->ring;
	uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	uint32_t used = e->pos - head;
	if (used > FASTCHAN_RING || (head & 7u)) {
		*error = -EPROTO;
		return NULL;
	}
	uint32_t need = record_size(len), off = e->pos % FASTCHAN_RING;
	uint32_t skip = off + need > FASTCHAN_RING ? FASTCHAN_RING - off : 0;
	if (FASTCHAN_RING - used < skip + need) {
		*error = -EAGAIN;
		return NULL;
	}
	if (skip) {
		/* No record straddles the end: mark the rest unused. */
		memcpy(&r->data[off], &(uint32_t){ WRAP }, HDR);
		e->pos += skip;
		off = 0;
	}
	return &r->data[off + HDR];
}

void fastchan_commit(struct fastchan_end *e, size_t len)
{
	uint32_t l = (uint32_t)len;
	memcpy(&e->ring->data[e->pos % FASTCHAN_RING], &l, HDR);
	e->pos += record_size(len);
	atomic_store_explicit(&e->ring->tail, e->pos, memory_order_release);
}

int fastchan_push(struct fastchan_end *e, const void *msg, size_t len)
{
	int error;
	void *dst = fastchan_reserve(e, len, &error);
	if (!dst)
		return error;
	memcpy(dst, msg, len);
	fastchan_commit(e, len);
	return 0;
}

bool fastchan_ready(const struct fastchan_end *e)
{
	return atomic_load_explicit(&e->ring->tail, memory_order_acquire) != e->pos;
}

ssize_t fastchan_pop(struct fastchan_end *e, void *buf, size_t cap)
{
	uint32_t next;
	ssize_t n = fastchan_peek(e, buf, cap, &next);
	if (n >= 0)
		fastchan_consume(e, next);
	return n;
}

void fastchan_consume(struct fastchan_end *e, uint32_t next)
{
	e->pos = next;
	atomic_store_explicit(&e->ring->head, next, memory_order_release);
}

ssize_t fastchan_peek(struct fastchan_end *e, void *buf, size_t cap, uint32_t *next)
{
	struct fastchan_ring *r = e->ring;
	for (;;) {
		uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
		uint32_t avail = tail - e->pos;
		if (avail == 0)
			return -EAGAIN;
		if (avail > FASTCHAN_RING || (avail & 7u))
			return -EPROTO;
		uint32_t off = e->pos % FASTCHAN_RING, len;
		memcpy(&len, &r->data[off], HDR); /* read once */
		if (len == WRAP) {
			if (avail < FASTCHAN_RING - off)
				return -EPROTO;
			e->pos += FASTCHAN_RING - off;
			atomic_store_explicit(&r->head, e->pos, memory_order_release);
			continue;
		}
		if (len > FASTCHAN_MAX_MSG || len > cap || record_size(len) > avail ||
		    off + record_size(len) > FASTCHAN_RING)
			return -EPROTO;
		memcpy(buf, &r->data[off + HDR], len);
		*next = e->pos + record_size(len);
		return (ssize_t)len;
	}
}

void fastchan_want_wake(_Atomic uint32_t *flag)
{
	atomic_store_explicit(flag, 1, memory_order_relaxed);
	/* Pairs with the producer's fence: either it sees the request, or we
	 * see its record when we look again. */
	atomic_thread_fence(memory_order_seq_cst);
}

void fastchan_no_wake(_Atomic uint32_t *flag)
{
	if (atomic_load_explicit(flag, memory_order_relaxed))
		atomic_store_explicit(flag, 0, memory_order_relaxed);
}

bool fastchan_take_wake(_Atomic uint32_t *flag)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(flag, memory_order_relaxed))
		return false;
	return atomic_exchange_explicit(flag, 0, memory_order_relaxed) != 0;
}

void fastchan_futex_wait(_Atomic uint32_t *word, uint32_t seq, uint64_t timeout_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000u),
			       .tv_nsec = (long)(timeout_ns % 1000000000u) };
	/* Shared mapping: not FUTEX_PRIVATE_FLAG. */
	syscall(SYS_futex, word, FUTEX_WAIT, seq, timeout_ns ? &ts : NULL, NULL, 0);
}

void fastchan_futex_wake_all(_Atomic uint32_t *word)
{
	atomic_fetch_add_explicit(word, 1, memory_order_seq_cst);
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* SYSGATE_FAST_SPIN_NS (0..10 s), or UINT64_MAX when unset or invalid. */
static uint64_t spin_override(void)
{
	const char *e = getenv("SYSGATE_FAST_SPIN_NS");
	char *end;
	unsigned long long n = e && *e ? strtoull(e, &end, 10) : 0;
	return e && *e && !*end && n <= 10000000ull ? (uint64_t)n : UINT64_MAX;
}

uint64_t fastchan_spin_ns(void)
{
	uint64_t v = spin_override();
	return v != UINT64_MAX ? v : FASTCHAN_SPIN_NS;
}

uint64_t fastchan_worker_spin_ns(void)
{
	uint64_t v = spin_override();
	return v != UINT64_MAX ? v : FASTCHAN_WORKER_SPIN_NS;
}
