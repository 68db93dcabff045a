#include "lane.h"

void lane_reset(struct lane *l, struct fastchan_shm *shm)
{
	l->tx = (struct fastchan_end){ .ring = &shm->to_worker_r };
	l->rx = (struct fastchan_end){ .ring = &shm->to_sup_r };
	atomic_store(&l->owner, LANE_RECEIVER);
	l->n_pending = 0;
}

void lane_open(struct lane *l, bool fast)
{
	atomic_store_explicit(&l->ready, fast, memory_order_release);
}

void lane_close(struct lane *l)
{
	atomic_store(&l->ready, false);
	l->n_pending = 0;
}

void lane_quiesce(struct lane *l)
{
	atomic_store(&l->ready, false);
	while (atomic_load(&l->busy))
		fastchan_relax();
}

void lane_publish_load(struct lane *l, uint32_t load)
{
	atomic_store_explicit(&l->load, load, memory_order_relaxed);
}

bool lane_try(struct lane *l, uint32_t max_load)
{
	if (!atomic_load_explicit(&l->ready, memory_order_acquire) ||
	    atomic_load_explicit(&l->owner, memory_order_acquire) != LANE_RECEIVER ||
	    atomic_load_explicit(&l->load, memory_order_relaxed) >= max_load)
		return false;
	atomic_store(&l->busy, true);
	/* Closed meanwhile: lane_quiesce may not have seen busy. */
	if (!atomic_load(&l->ready)) {
		atomic_store(&l->busy, false);
		return false;
	}
	return true;
}

void lane_release(struct lane *l)
{
	atomic_store(&l->busy, false);
}

void lane_hand_over(struct lane *l)
{
	atomic_store_explicit(&l->owner, LANE_ROUTER, memory_order_release);
}

bool lane_routers(const struct lane *l)
{
	return atomic_load_explicit(&l->owner, memory_order_acquire) == LANE_ROUTER;
}

void lane_take_back(struct lane *l)
{
	if (l->n_pending)
		return;
	fastchan_no_wake(&l->rx.ring->need_wake);
	atomic_store_explicit(&l->owner, LANE_RECEIVER, memory_order_release);
}
