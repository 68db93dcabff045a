/* The fast channel's rings (common/fastchan.h): records in order across
 * the wrap, back-pressure, and every position or length a hostile peer can
 * write into the shared pages refused before anything is read. */
#include "unit.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fastchan.h"

struct chan {
	int fd;
	struct fastchan_shm *shm;
	struct fastchan_end tx, rx; /* both ends of to_sup, as two processes hold them */
	uint8_t buf[FASTCHAN_MAX_MSG];
};

static int setup(void **state)
{
	struct chan *c = calloc(1, sizeof(*c));
	struct sg_err err;
	assert_non_null(c);
	assert_int_equal(fastchan_create(&c->fd, &c->shm, &err), 0);
	c->tx = (struct fastchan_end){ .ring = &c->shm->to_sup };
	c->rx = (struct fastchan_end){ .ring = &c->shm->to_sup };
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct chan *c = *state;
	fastchan_unmap(c->shm);
	close(c->fd);
	free(c);
	return 0;
}

static void test_in_order(void **state)
{
	struct chan *c = *state;
	assert_false(fastchan_ready(&c->rx));
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), -EAGAIN);
	assert_int_equal(fastchan_push(&c->tx, "one", 3), 0);
	assert_int_equal(fastchan_push(&c->tx, "", 0), 0);
	assert_int_equal(fastchan_push(&c->tx, "three", 5), 0);
	assert_true(fastchan_ready(&c->rx));
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), 3);
	assert_memory_equal(c->buf, "one", 3);
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), 0);
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), 5);
	assert_memory_equal(c->buf, "three", 5);
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), -EAGAIN);
}

/* Many rounds of odd sizes: every record crosses the end of the ring at
 * some point, and none straddles it. */
static void test_wraps(void **state)
{
	struct chan *c = *state;
	static uint8_t msg[5000];
	for (unsigned round = 0; round < 2000; round++) {
		size_t len = 1 + (round * 7919u) % sizeof(msg);
		memset(msg, (int)(round & 0xff), len);
		assert_int_equal(fastchan_push(&c->tx, msg, len), 0);
		assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), (ssize_t)len);
		assert_memory_equal(c->buf, msg, len);
	}
	assert_true(c->tx.pos > 4 * FASTCHAN_RING); /* it went round several times */
}

static void test_full_then_room(void **state)
{
	struct chan *c = *state;
	static uint8_t msg[FASTCHAN_MAX_MSG];
	unsigned n = 0;
	while (fastchan_push(&c->tx, msg, sizeof(msg)) == 0)
		n++;
	assert_int_equal(n, FASTCHAN_RING / (FASTCHAN_MAX_MSG + 8));
	assert_int_equal(fastchan_push(&c->tx, msg, sizeof(msg)), -EAGAIN);
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), (ssize_t)sizeof(msg));
	assert_int_equal(fastchan_push(&c->tx, msg, sizeof(msg)), 0);
	assert_int_equal(fastchan_push(&c->tx, msg, FASTCHAN_MAX_MSG + 1), -EMSGSIZE);
}

static void test_peek_then_consume(void **state)
{
	struct chan *c = *state;
	uint32_t next;
	assert_int_equal(fastchan_push(&c->tx, "abc", 3), 0);
	assert_int_equal(fastchan_peek(&c->rx, c->buf, sizeof(c->buf), &next), 3);
	/* Not consumed: the same record again. */
	assert_int_equal(fastchan_peek(&c->rx, c->buf, sizeof(c->buf), &next), 3);
	fastchan_consume(&c->rx, next);
	assert_int_equal(atomic_load(&c->shm->to_sup.head), next);
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), -EAGAIN);
}

/* What the peer can write, and what each end must make of it. */
static void test_hostile_tail(void **state)
{
	struct chan *c = *state;
	atomic_store(&c->shm->to_sup.tail, FASTCHAN_RING + 8); /* more than the ring */
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), -EPROTO);
	atomic_store(&c->shm->to_sup.tail, 12); /* not a record boundary */
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), -EPROTO);
	atomic_store(&c->shm->to_sup.tail, (uint32_t)-8); /* behind us */
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), -EPROTO);
}

static void test_hostile_length(void **state)
{
	struct chan *c = *state;
	assert_int_equal(fastchan_push(&c->tx, "12345678", 8), 0);
	uint32_t len = FASTCHAN_MAX_MSG + 1; /* over the cap */
	memcpy(c->shm->to_sup.data, &len, 4);
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), -EPROTO);
	len = 100; /* past what was published */
	memcpy(c->shm->to_sup.data, &len, 4);
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), -EPROTO);
	len = 8;
	memcpy(c->shm->to_sup.data, &len, 4);
	assert_int_equal(fastchan_pop(&c->rx, c->buf, 4), -EPROTO); /* over the caller's buffer */
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), 8);
}

static void test_hostile_wrap_marker(void **state)
{
	struct chan *c = *state;
	assert_int_equal(fastchan_push(&c->tx, "12345678", 8), 0);
	/* A wrap marker claiming the rest of the ring, with 16 bytes published. */
	memcpy(c->shm->to_sup.data, &(uint32_t){ UINT32_MAX }, 4);
	assert_int_equal(fastchan_pop(&c->rx, c->buf, sizeof(c->buf)), -EPROTO);
}

static void test_hostile_head(void **state)
{
	struct chan *c = *state;
	int e;
	atomic_store(&c->shm->to_sup.head, 3); /* not a record boundary */
	assert_null(fastchan_reserve(&c->tx, 8, &e));
	assert_int_equal(e, -EPROTO);
	atomic_store(&c->shm->to_sup.head, 8); /* ahead of what was written */
	assert_null(fastchan_reserve(&c->tx, 8, &e));
	assert_int_equal(e, -EPROTO);
}

static void test_wake_flag(void **state)
{
	struct chan *c = *state;
	_Atomic uint32_t *flag = &c->shm->to_sup.need_wake;
	assert_false(fastchan_take_wake(flag));
	fastchan_want_wake(flag);
	assert_true(fastchan_take_wake(flag));
	assert_false(fastchan_take_wake(flag)); /* once */
	fastchan_want_wake(flag);
	fastchan_no_wake(flag);
	assert_false(fastchan_take_wake(flag));
}

static void test_map_checks(void **state)
{
	struct chan *c = *state;
	struct fastchan_shm *m;
	struct sg_err err;
	assert_int_equal(fastchan_map(c->fd, &m, &err), 0);
	assert_ptr_not_equal(m, c->shm);
	assert_int_equal(m->magic, FASTCHAN_MAGIC);
	fastchan_unmap(m);
	/* Sealed: the worker cannot shrink it under the supervisor. */
	assert_int_equal(ftruncate(c->fd, 4096), -1);
	int other = memfd_create("not-a-channel", MFD_CLOEXEC);
	assert_true(other >= 0);
	assert_int_equal(ftruncate(other, 4096), 0);
	assert_int_equal(fastchan_map(other, &m, &err), -EPROTO);
	close(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wraps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_then_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peek_then_consume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_wrap_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wake_flag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_checks, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
