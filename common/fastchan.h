/* The fast local channel (docs/protocol.md#the-fast-channel): a shared-memory
 * pair of rings beside a worker's nng link, carrying the same encoded Envelopes for the hot path
 * (Snapshot, Action, MemRequest, MemReply, Injected, Record). nng keeps the
 * handshake and lifecycle, and any message too big for a ring.
 *
 * The supervisor creates the memory (a memfd) and one eventfd per worker
 * start and hands both to the worker at spawn. Each direction is a
 * single-producer single-consumer byte ring of length-prefixed records;
 * positions are free-running 32-bit byte counts.
 *
 * The peer is untrusted and can write anything anywhere in the shared
 * pages at any time. So each end keeps its own position privately (the
 * shared copy is only published), checks the peer's position before use
 * (-EPROTO when impossible), and copies a record out before anything reads
 * it (no double fetch).
 *
 * Two lanes, each a ring per direction: the router's (everything the
 * router thread sends and what answers it) and the receiver's (the
 * receiver thread hands a notification to a spinning worker itself and
 * spins for the answer: no thread hop on the hot path; supervisor/lane.h
 * says who owns it when).
 *
 * Wake-ups: a consumer spins briefly, then sets a need-wake flag,
 * re-checks, and sleeps; a producer that finds the flag set after
 * publishing wakes it. The supervisor sleeps in poll() on the eventfd
 * (written by the worker; a ring's own need_wake); the worker's threads
 * sleep on the futex word worker_wake_seq (worker_need_wake: both rings to
 * the worker), bumped by the supervisor and by the worker's own threads, so
 * all of them wait on one word. */
#ifndef SYSGATE_FASTCHAN_H
#define SYSGATE_FASTCHAN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define FASTCHAN_MAGIC 0x63666773u   /* "sgfc" */
#define FASTCHAN_RING (256u << 10)   /* bytes per direction, a power of two */
#define FASTCHAN_MAX_MSG (64u << 10) /* bigger messages go over nng */

struct fastchan_ring {
	_Alignas(64) _Atomic uint32_t head;      /* bytes consumed */
	_Alignas(64) _Atomic uint32_t tail;      /* bytes published */
	_Alignas(64) _Atomic uint32_t need_wake; /* the consumer (supervisor) sleeps */
	_Alignas(64) uint8_t data[FASTCHAN_RING];
};

struct fastchan_shm {
	uint32_t magic;
	uint32_t size;                                  /* sizeof(struct fastchan_shm) */
	_Alignas(64) _Atomic uint32_t worker_need_wake; /* no worker thread pumps */
	_Atomic uint32_t worker_wake_seq;               /* futex word */
	_Atomic int32_t worker_cpu; /* where a worker thread spins, -1: none (a hint) */
	_Atomic int32_t avoid_cpu;  /* the receiver asks: do not spin on this CPU (a hint) */
	struct fastchan_ring to_worker, to_sup;     /* the router's lane */
	struct fastchan_ring to_worker_r, to_sup_r; /* the receiver's lane */
};

/* One end of one ring, private to its process. */
struct fastchan_end {
	struct fastchan_ring *ring;
	uint32_t pos; /* producer: tail; consumer: head. The truth, not the shared copy. */
};

/* Supervisor: a fresh zeroed channel in a memfd (close-on-exec), mapped. */
int fastchan_create(int *memfd, struct fastchan_shm **shm, struct sg_err *err);
/* Worker: maps the channel in memfd after checking its size and magic. */
int fastchan_map(int memfd, struct fastchan_shm **shm, struct sg_err *err);
void fastchan_unmap(struct fastchan_shm *shm);

/* Producer: room for a record of at most len bytes (len <=
 * FASTCHAN_MAX_MSG), or NULL with *error: -EAGAIN full for now, -EMSGSIZE
 * too big, -EPROTO the peer's head is impossible. Write the record there,
 * then fastchan_commit() with its actual length (<= len). */
void *fastchan_reserve(struct fastchan_end *e, size_t len, int *error);
void fastchan_commit(struct fastchan_end *e, size_t len);
/* reserve + copy + commit. */
int fastchan_push(struct fastchan_end *e, const void *msg, size_t len);

/* Consumer: copies the next record into buf (cap >= FASTCHAN_MAX_MSG) and
 * returns its length; -EAGAIN none; -EPROTO the peer wrote an impossible
 * tail or record (the channel is unusable from now on). */
ssize_t fastchan_pop(struct fastchan_end *e, void *buf, size_t cap);
bool fastchan_ready(const struct fastchan_end *e); /* a record (or garbage) waits */
/* fastchan_pop in two steps: copy the next record out (a wrap marker
 * before it is consumed), then, if the caller takes it, consume it
 * (next: the position after it). */
ssize_t fastchan_peek(struct fastchan_end *e, void *buf, size_t cap, uint32_t *next);
void fastchan_consume(struct fastchan_end *e, uint32_t next);

/* Consumer, before sleeping: asks for a wake-up through flag (a ring's
 * need_wake, or worker_need_wake). Re-check fastchan_ready() afterwards: a
 * record published before the request is not announced. */
void fastchan_want_wake(_Atomic uint32_t *flag);
void fastchan_no_wake(_Atomic uint32_t *flag);
/* Producer, after commit: true once if the consumer asked to be woken. */
bool fastchan_take_wake(_Atomic uint32_t *flag);

/* A futex word in the shared pages: wait while it still reads seq
 * (timeout_ns 0: no limit), and bump + wake every waiter. */
void fastchan_futex_wait(_Atomic uint32_t *word, uint32_t seq, uint64_t timeout_ns);
void fastchan_futex_wake_all(_Atomic uint32_t *word);

/* Inside a spin loop. */
static inline void fastchan_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* How long the supervisor's threads spin before they sleep (the receiver
 * waiting for an answer on its lane; the router after work): long enough
 * for a worker that spins to answer, or one asleep to wake up and answer,
 * short since the receiver runs at real-time priority on the program's CPU. */
#define FASTCHAN_SPIN_NS 50000ull
/* How long an idle worker spins on its own CPU before it sleeps (the
 * supervisor passes it as SYSGATE_WORKER_SPIN_NS): real programs trap in
 * bursts with gaps of tens to hundreds of microseconds between calls (a
 * tar: open, read, write, open ...); a worker asleep costs a cross-CPU
 * wake-up (25-30 us here) on the next one. Bounded, and it yields. */
#define FASTCHAN_WORKER_SPIN_NS 500000ull

/* A spinning thread yields this often, so a runnable task on its CPU (the
 * sandboxed program) waits at most about this long for it. */
#define FASTCHAN_YIELD_NS 1000ull

/* FASTCHAN_SPIN_NS and FASTCHAN_WORKER_SPIN_NS, or SYSGATE_FAST_SPIN_NS
 * from the environment for both (0: never spin), read once. */
uint64_t fastchan_spin_ns(void);
uint64_t fastchan_worker_spin_ns(void);

#endif
