#include "receiver.h"

#include <errno.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>

#include "answer.h"
#include "compat.h"
#include "log.h"
#include "notification.h"
#include "procs.h"
#include "router_impl.h"
#include "syscalls.h"

static void handle_one(struct receiver *r, const struct seccomp_notif *req, uint64_t t0)
{
	struct childmem mem = { .listener = r->listener, .id = req->id, .pid = (pid_t)req->pid };
	struct action a;
	const struct chain_link *decider = chain_run(r->chains, req, &mem, &a);
	if (!decider && r->router && req->data.nr >= 0 && req->data.nr < SYSCALLS_MAX &&
	    r->chains->by_nr[req->data.nr].n_hops) {
		/* Every builtin continued: the workers decide, on a worker's
		 * lane with this thread waiting briefly, or by the router. */
		const struct chain *chain = &r->chains->by_nr[req->data.nr];
		if (receiver_lane(r->router, req, chain, t0) == 0 ||
		    router_submit(r->router, req, chain, t0) == 0) {
			atomic_fetch_add_explicit(&r->handled, 1, memory_order_relaxed);
			return;
		}
		log_error("too many notifications with the workers: %s denied",
			  syscalls_name(req->data.nr));
		a = (struct action){ .kind = ACTION_ERRNO, .value = EPERM }; /* fail closed */
	}
	struct audit_syscall rec;
	if (r->audit) {
		memset(&rec, 0, sizeof(rec));
		clock_gettime(CLOCK_REALTIME, &rec.when);
		notification_preread(&rec, req, &mem);
	}
	answer_send(r->listener, &r->answer, req, &a);
	atomic_fetch_add_explicit(&r->handled, 1, memory_order_relaxed);
	if (r->audit)
		notification_record(r->audit, &rec, req, t0, &a, decider ? decider->name : "kernel",
				    NULL);
}

/* Until a notification is received the trapped syscall is interruptible: a
 * signal arriving in that window (a shell's SIGCHLD, say) makes close() or
 * clone() fail with EINTR, and a pipeline whose close was lost hangs. The
 * window is the receiver's wake-up latency, so the receiver must preempt the
 * sandbox's processes at once: SCHED_FIFO where allowed (it only ever runs
 * in response to a trapped syscall, so it cannot starve the machine), else
 * the shortest EEVDF slice, which also wins wake-up preemption (6.12+). */
static void receiver_boost(void)
{
	struct sched_param sp = { .sched_priority = 1 };
	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0) {
		log_verbose("receiver: SCHED_FIFO");
		return;
	}
	struct {
		uint32_t size, policy;
		uint64_t flags;
		int32_t nice;
		uint32_t priority;
		uint64_t runtime, deadline, period;
	} attr = { .size = sizeof(attr), .policy = SCHED_OTHER, .runtime = 100000 /* ns */ };
	if (syscall(SYS_sched_setattr, 0, &attr, 0) == 0)
		log_verbose("receiver: 0.1 ms scheduler slice");
	else
		log_verbose("receiver: default scheduling (%s)", strerror(errno));
}

static void *receiver_main(void *arg)
{
	struct receiver *r = arg;
	struct seccomp_notif *req = r->req_buf;
	receiver_boost();
	struct pollfd pfd[2] = {
		{ .fd = r->listener, .events = POLLIN },
		{ .fd = r->stop_fd, .events = POLLIN },
	};
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("receiver: poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			/* Every filtered task is gone: nothing more will arrive, but
			 * keep going until told to stop so teardown stays ordered. */
			if (!(pfd[0].revents & POLLIN)) {
				pfd[0].fd = -1;
				continue;
			}
		}
		memset(req, 0, r->req_size);
		if (ioctl(r->listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
			/* ENOENT: the task was killed or the syscall interrupted
			 * before we got it; normal. */
			if (errno == ENOENT || errno == EINTR || errno == EAGAIN)
				continue;
			log_error("receiver: SECCOMP_IOCTL_NOTIF_RECV: %s", strerror(errno));
			break;
		}
		handle_one(r, req, now_ns());
	}
	return NULL;
}

static void receiver_free_bufs(struct receiver *r)
{
	free(r->req_buf);
	r->req_buf = NULL;
	answer_buf_free(&r->answer);
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	r->stop_fd = -1;
}

int receiver_start(struct receiver *r, int listener, const struct chain_table *chains,
		   struct router *router, struct audit *audit, struct sg_err *err)
{
	memset(r, 0, sizeof(*r));
	r->stop_fd = -1;
	r->listener = listener;
	r->chains = chains;
	r->router = router;
	r->audit = audit;
	size_t resp_size;
	int e = answer_notif_sizes(&r->req_size, &resp_size, err);
	if (e < 0 || (e = answer_buf_init(&r->answer, err)) < 0)
		return e;
	r->req_buf = calloc(1, r->req_size);
	r->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!r->req_buf || r->stop_fd < 0) {
		e = r->stop_fd < 0 ? errno : ENOMEM;
		receiver_free_bufs(r);
		return err_sys(err, e, "receiver: cannot allocate its buffers");
	}
	e = pthread_create(&r->thread, NULL, receiver_main, r);
	if (e) {
		receiver_free_bufs(r);
		return err_sys(err, e, "receiver: cannot start its thread");
	}
	r->running = true;
	return 0;
}

void receiver_stop(struct receiver *r)
{
	if (!r->running)
		return;
	uint64_t one = 1;
	(void)!write(r->stop_fd, &one, sizeof(one));
	pthread_join(r->thread, NULL);
	receiver_free_bufs(r);
	r->running = false;
}
