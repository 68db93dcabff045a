/* The fast channel's rings (common/fastchan.c) with a hostile worker on
 * the other side: it owns the shared pages, so it may write any position
 * and any byte of the ring at any time. Each input is a script of steps,
 * interleaving what the worker writes with what the supervisor's end does:
 *
 *   worker -> supervisor ring: the supervisor reads (fastchan_pop, or
 *     fastchan_peek then maybe fastchan_consume, as router.c does) and
 *     decodes each record as a worker's message (router.c on_bytes); the
 *     worker publishes tails, overwrites bytes and headers, or produces
 *     honestly (fastchan_push, what the SDK does);
 *   supervisor -> worker ring: the supervisor produces (fastchan_reserve
 *     via fastchan_push) against whatever head the worker published, and
 *     an honest worker consumes and decodes as the SDK does (fast.c).
 *
 * Besides the sanitizers' checks (each ring is its own heap block, so a
 * copy past its data is an overflow), while the worker plays by the rules
 * every record arrives intact and in order, and the supervisor's positions
 * stay 8-aligned and within one ring of the peer's.
 *
 * Input: steps, each an opcode byte and its operands (see step()); records
 * are frames (fuzz.h). Seeds: corpus/fastchan/. */
#include "fastchan.h"
#include "proto_check.h"

/* Records in flight on one ring while its peer is honest: length and hash. */
#define FIFO_MAX 512u

struct fifo {
	struct {
		size_t len;
		uint64_t hash;
	} v[FIFO_MAX];
	size_t head, n;
	bool valid; /* no hostile step touched this ring yet */
};

struct script {
	struct fastchan_ring *to_sup, *to_worker;
	struct fastchan_end sup_rx, worker_tx; /* to_sup: supervisor reads, worker writes */
	struct fastchan_end sup_tx, worker_rx; /* to_worker */
	bool sup_rx_broken;                    /* -EPROTO: the router stops reading */
	struct fifo up, down;
	uint8_t *buf;
};

/* Not instrumented: its loop over 64 KiB records would be most of the
 * time spent, and its branches tell the fuzzer nothing. */
FUZZ_NO_COVERAGE static uint64_t hash(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull, w;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 1099511628211ull;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void fifo_push(struct fifo *f, const uint8_t *p, size_t n)
{
	if (f->n == FIFO_MAX) {
		f->valid = false;
		return;
	}
	size_t i = (f->head + f->n++) % FIFO_MAX;
	f->v[i].len = n;
	f->v[i].hash = hash(p, n);
}

/* A record came out: the oldest one in, if the peer was honest. */
static void fifo_pop(struct fifo *f, const uint8_t *p, size_t n)
{
	if (!f->valid)
		return;
	FUZZ_CHECK(f->n > 0);
	FUZZ_CHECK(f->v[f->head].len == n && f->v[f->head].hash == hash(p, n));
	f->head = (f->head + 1) % FIFO_MAX;
	f->n--;
}

static void check_positions(const struct script *s)
{
	FUZZ_CHECK(s->sup_rx.pos % 8 == 0 && s->sup_tx.pos % 8 == 0);
	/* The supervisor never published a head past what was published to it. */
	if (s->up.valid)
		FUZZ_CHECK(s->worker_tx.pos - s->sup_rx.pos <= FASTCHAN_RING);
}

/* The supervisor reads one record from the worker (router.c drain_ring and
 * the receiver's lane). */
static void sup_read(struct script *s, bool peek, bool consume)
{
	if (s->sup_rx_broken)
		return;
	uint32_t before = s->sup_rx.pos, next = 0;
	ssize_t n = peek ? fastchan_peek(&s->sup_rx, s->buf, FASTCHAN_MAX_MSG, &next)
			 : fastchan_pop(&s->sup_rx, s->buf, FASTCHAN_MAX_MSG);
	if (n == -EAGAIN) {
		FUZZ_CHECK(!fastchan_ready(&s->sup_rx));
		if (s->up.valid)
			FUZZ_CHECK(s->up.n == 0);
		return;
	}
	if (n == -EPROTO) {
		FUZZ_CHECK(!s->up.valid);
		s->sup_rx_broken = true;
		return;
	}
	FUZZ_CHECK(n >= 0 && (size_t)n <= FASTCHAN_MAX_MSG);
	FUZZ_CHECK(s->sup_rx.pos - before <= FASTCHAN_RING);
	if (peek) {
		FUZZ_CHECK(next - s->sup_rx.pos >= 8 && next - s->sup_rx.pos <= FASTCHAN_RING);
		if (!consume)
			return; /* the same record again next time */
		fastchan_consume(&s->sup_rx, next);
	}
	fifo_pop(&s->up, s->buf, (size_t)n);
	proto_envelope_free(proto_check_receive(s->buf, (size_t)n, proto_validate_from_worker));
}

/* The honest worker reads one record from the supervisor (fast.c pump). */
static void worker_read(struct script *s)
{
	ssize_t n = fastchan_pop(&s->worker_rx, s->buf, FASTCHAN_MAX_MSG);
	if (n == -EAGAIN || !s->down.valid)
		return;
	FUZZ_CHECK(n >= 0); /* the supervisor wrote it */
	fifo_pop(&s->down, s->buf, (size_t)n);
	proto_envelope_free(proto_check_receive(s->buf, (size_t)n, proto_validate_from_supervisor));
}

/* A producer's push: what it may answer, and what it promised on 0. */
static void push(struct fastchan_end *e, struct fifo *f, const uint8_t *p, size_t n)
{
	uint32_t before = e->pos;
	int r = fastchan_push(e, p, n);
	FUZZ_CHECK(r == 0 || r == -EAGAIN || r == -EMSGSIZE || r == -EPROTO);
	if (n > FASTCHAN_MAX_MSG)
		FUZZ_CHECK(r == -EMSGSIZE);
	if (r == -EPROTO)
		FUZZ_CHECK(!f->valid);
	if (r < 0) {
		FUZZ_CHECK(e->pos == before);
		return;
	}
	FUZZ_CHECK(e->pos - before <= FASTCHAN_RING && e->pos % 8 == 0);
	fifo_push(f, p, n);
}

/* A record of the input: a frame, or a length with zero bytes past the
 * input (so big records are cheap to ask for). */
static const uint8_t *record(struct fuzz_in *in, size_t *len)
{
	static uint8_t big[FASTCHAN_MAX_MSG + 64];
	const uint8_t *frame = big;
	size_t got;
	if (fuzz_u8(in) & 1) {
		*len = fuzz_u32(in) % sizeof(big);
		return big;
	}
	if (!fuzz_frame(in, &frame, &got))
		got = 0;
	*len = got;
	return frame;
}

static void step(struct script *s, struct fuzz_in *in)
{
	struct fastchan_ring *up = s->to_sup, *down = s->to_worker;
	size_t len, got;
	const uint8_t *p;
	switch (fuzz_u8(in) % 12) {
	case 0: /* the worker publishes any tail */
		atomic_store(&up->tail, fuzz_u32(in));
		s->up.valid = false;
		break;
	case 1: /* ... or one near the supervisor's head */
		atomic_store(&up->tail, s->sup_rx.pos + (uint32_t)(int16_t)fuzz_u16(in));
		s->up.valid = false;
		break;
	case 2: { /* overwrites bytes anywhere in the ring */
		uint32_t off = fuzz_u32(in) % FASTCHAN_RING;
		p = fuzz_bytes(in, fuzz_u8(in), &got);
		if (got > FASTCHAN_RING - off)
			got = FASTCHAN_RING - off;
		memcpy(&up->data[off], p, got);
		s->up.valid = false;
		break;
	}
	case 3: { /* writes a record header where the supervisor reads next */
		uint32_t hdr = fuzz_u32(in);
		memcpy(&up->data[s->sup_rx.pos % FASTCHAN_RING], &hdr, sizeof(hdr));
		s->up.valid = false;
		break;
	}
	case 4: /* produces honestly */
	case 5:
		p = record(in, &len);
		push(&s->worker_tx, &s->up, p, len);
		break;
	case 6:
		sup_read(s, false, false);
		break;
	case 7:
		sup_read(s, true, fuzz_u8(in) & 1);
		break;
	case 8: /* the worker publishes any head on the supervisor's ring */
		atomic_store(&down->head, fuzz_u32(in));
		s->down.valid = false;
		break;
	case 9:
		atomic_store(&down->head, s->sup_tx.pos + (uint32_t)(int16_t)fuzz_u16(in));
		s->down.valid = false;
		break;
	case 10: /* the supervisor sends */
		p = record(in, &len);
		push(&s->sup_tx, &s->down, p, len);
		break;
	default:
		worker_read(s);
		break;
	}
	check_positions(s);
}

static struct fastchan_ring *ring_new(void)
{
	/* Exactly one ring per heap block: ASan's redzone follows data[]. */
	struct fastchan_ring *r = aligned_alloc(64, sizeof(*r));
	FUZZ_CHECK(r != NULL);
	memset(r, 0, sizeof(*r));
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct script s;
	if (!s.buf) {
		s.buf = malloc(FASTCHAN_MAX_MSG);
		s.to_sup = ring_new();
		s.to_worker = ring_new();
		FUZZ_CHECK(s.buf != NULL);
	}
	struct fastchan_ring *up = s.to_sup, *down = s.to_worker;
	uint8_t *buf = s.buf;
	memset(&s, 0, sizeof(s));
	s.buf = buf;
	s.to_sup = up;
	s.to_worker = down;
	memset(up, 0, sizeof(*up));
	memset(down, 0, sizeof(*down));
	s.sup_rx.ring = s.worker_tx.ring = up;
	s.sup_tx.ring = s.worker_rx.ring = down;
	s.up.valid = s.down.valid = true;
	/* Start anywhere on the 32-bit circle (8-aligned, as both ends agree):
	 * the positions' wrap-around is part of the contract. */
	struct fuzz_in in = { data, size };
	uint32_t start = fuzz_u32(&in) & ~7u, start2 = fuzz_u32(&in) & ~7u;
	s.sup_rx.pos = s.worker_tx.pos = start;
	atomic_store(&up->head, start);
	atomic_store(&up->tail, start);
	s.sup_tx.pos = s.worker_rx.pos = start2;
	atomic_store(&down->head, start2);
	atomic_store(&down->tail, start2);
	for (unsigned n = 0; in.n && n < 512; n++)
		step(&s, &in);
	return 0;
}
