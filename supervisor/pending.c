/* The pending pool: notifications the workers decide, in a fixed pool,
 * travelling between the receiver and the router through two
 * single-producer single-consumer rings (router_impl.h says why), and the
 * kick that wakes a sleeping router. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "router_impl.h"

static bool ring_push(struct ring *r, struct pending *p)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	if (t - atomic_load_explicit(&r->head, memory_order_acquire) == POOL_SIZE)
		return false;
	r->slot[t % POOL_SIZE] = p;
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return true;
}

static struct pending *ring_pop(struct ring *r)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	if (h == atomic_load_explicit(&r->tail, memory_order_acquire))
		return NULL;
	struct pending *p = r->slot[h % POOL_SIZE];
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return p;
}

int pending_pool_init(struct router *rt, struct sg_err *err)
{
	rt->pool = calloc(POOL_SIZE, sizeof(*rt->pool));
	if (!rt->pool)
		return err_set(err, ENOMEM, "out of memory for the router");
	for (size_t i = 0; i < POOL_SIZE; i++)
		ring_push(&rt->spare, &rt->pool[i]);
	return 0;
}

struct pending *pending_get(struct router *rt)
{
	return ring_pop(&rt->spare);
}

void pending_put(struct router *rt, struct pending *p)
{
	ring_push(&rt->spare, p); /* never full: it holds at most the pool */
}

void pending_start(struct router *rt, struct pending *p, const struct seccomp_notif *req,
		   const struct chain *chain, uint64_t t0)
{
	memset(p, 0, sizeof(*p));
	p->req = *req;
	p->t0 = t0;
	p->chain = chain;
	if (rt->audit)
		clock_gettime(CLOCK_REALTIME, &p->rec.when);
}

void pending_submit(struct router *rt, struct pending *p)
{
	ring_push(&rt->submitted, p); /* room: at most the pool is out */
}

struct pending *pending_next(struct router *rt)
{
	return ring_pop(&rt->submitted);
}

bool pending_submitted(struct router *rt)
{
	return atomic_load_explicit(&rt->submitted.head, memory_order_relaxed) !=
	       atomic_load_explicit(&rt->submitted.tail, memory_order_acquire);
}

void router_kick(struct router *rt)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&rt->sleeping, memory_order_relaxed)) {
		uint64_t one = 1;
		(void)!write(rt->kick_fd, &one, sizeof(one));
	}
}

int router_submit(struct router *rt, const struct seccomp_notif *req, const struct chain *chain,
		  uint64_t t0)
{
	struct pending *p = pending_get(rt);
	if (!p)
		return -EBUSY;
	pending_start(rt, p, req, chain, t0);
	pending_submit(rt, p);
	router_kick(rt);
	return 0;
}
