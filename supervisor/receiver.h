/* The receiver: a dedicated thread that takes notifications off the
 * listener as soon as they arrive, runs their chain and answers. Handlers on
 * this thread never block (builtins are inline and bounded). */
#ifndef SYSGATE_RECEIVER_H
#define SYSGATE_RECEIVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "answer.h"
#include "audit.h"
#include "chain.h"

struct router;

struct receiver {
	int listener;
	int stop_fd; /* eventfd: wakes the thread to exit */
	const struct chain_table *chains;
	struct router *router; /* NULL without workers */
	struct audit *audit; /* NULL without --audit */
	void *req_buf; /* kernel-sized notification struct */
	size_t req_size;
	struct answer_buf answer;
	pthread_t thread;
	bool running;
	_Atomic uint64_t handled; /* notifications answered */
};

/* Starts the thread. Notifications whose builtins all continue and whose
 * chain has worker hops are handed to router. */
int receiver_start(struct receiver *r, int listener, const struct chain_table *chains,
		   struct router *router, struct audit *audit, struct sg_err *err);
void receiver_stop(struct receiver *r);

#endif
