/* The receiver's lane of one worker: the second pair of fast-channel rings
 * (fastchan.h: to_worker_r, to_sup_r), on which the receiver thread hands a
 * notification to a worker that spins on another CPU and waits briefly for
 * the answer itself (receiver_lane.c), so a worker's answer costs the same
 * two context switches as a builtin's.
 *
 * Who may touch it, the only place this is stated:
 *
 * - Everything else of a worker (worker.h) is the router thread's. The
 *   lane is the one part two threads share, and its rings are used by one
 *   thread at a time: the one `owner` names. It starts as the receiver's.
 * - The router opens the lane once the worker's handshake agreed on the
 *   fast channel (lane_open), publishes the worker's load for the receiver
 *   (lane_publish_load), and closes it when the worker fails (lane_close).
 * - The receiver uses it only between lane_try (ready, the receiver's, the
 *   worker not full: it sets busy) and lane_release, and reads nothing
 *   else of the worker but its channel's shared page and its generation
 *   (which the router changes only while the lane is closed). When it gives up on an
 *   answer it leaves what came unread and hands the lane over
 *   (lane_hand_over), after queueing the notification for the router, so
 *   the router adopts the notification before it reads the lane.
 * - The router then reads the lane as its own and hands it back
 *   (lane_take_back) once nothing sent on it is pending.
 * - Before the rings are unmapped (a restart, the end), the router waits
 *   out a receiver still looking at them (lane_quiesce): the receiver
 *   re-checks `ready` after setting `busy`, so it never starts once ready
 *   is false, and never spins longer than its bounded wait. */
#ifndef SYSGATE_LANE_H
#define SYSGATE_LANE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fastchan.h"

enum lane_owner { LANE_RECEIVER, LANE_ROUTER };

struct lane {
	struct fastchan_end tx, rx; /* to_worker_r, to_sup_r */
	_Atomic int owner;          /* enum lane_owner */
	_Atomic bool ready;         /* the router's: the receiver may try it */
	_Atomic bool busy;          /* the receiver's: it is looking at the rings */
	_Atomic uint32_t load;      /* the router's: the worker's notifications held */
	size_t n_pending;           /* router: taken over, not answered yet */
	bool replying;              /* router: serving a message that came on the lane */
};

/* Router, at each start of the worker: the rings of a fresh channel, the
 * receiver's, nothing pending. */
void lane_reset(struct lane *l, struct fastchan_shm *shm);

/* Router: the handshake is done; the receiver may use the lane if fast. */
void lane_open(struct lane *l, bool fast);

/* Router: the worker failed; the receiver must not start on the lane, and
 * nothing sent on it is pending any more. */
void lane_close(struct lane *l);

/* Router: closes the lane and waits until the receiver no longer looks at
 * its rings (bounded by the receiver's wait). */
void lane_quiesce(struct lane *l);

/* Router: the worker's load, for lane_try. */
void lane_publish_load(struct lane *l, uint32_t load);

/* Receiver: takes the lane (sets busy) if it is ready, the receiver's, and
 * the worker holds fewer than max_load notifications. */
bool lane_try(struct lane *l, uint32_t max_load);

/* Receiver: done looking at the lane (it stays the receiver's). */
void lane_release(struct lane *l);

/* Receiver, after queueing the notification it gave up on: the router's
 * from now on. Still to be released. */
void lane_hand_over(struct lane *l);

/* Router: does it hold the lane? */
bool lane_routers(const struct lane *l);

/* Router: hands the lane back to the receiver if nothing sent on it is
 * pending. */
void lane_take_back(struct lane *l);

#endif
