#include "receiver.h"

#include <errno.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>

#include "compat.h"
#include "log.h"
#include "procs.h"
#include "syscalls.h"

/* Path arguments are pre-read for the audit log (and, later, snapshots). */
static void preread_paths(const struct seccomp_notif *req, const struct childmem *mem,
			  struct audit_syscall *rec)
{
	unsigned idx[2];
	rec->n_paths = syscalls_path_args(req->data.nr, idx);
	for (unsigned i = 0; i < rec->n_paths; i++) {
		rec->path_arg[i] = idx[i];
		rec->path[i] = NULL;
		char buf[4096];
		ssize_t n = childmem_read_cstr(mem, req->data.args[idx[i]], buf, sizeof(buf));
		if (n >= 0 && !(rec->path[i] = strdup(buf)))
			n = -ENOMEM;
		rec->path_errno[i] = n < 0 ? (int)-n : 0;
	}
}

static void kill_trapped(const struct seccomp_notif *req, int listener, int sig)
{
	/* req->pid is a thread id; a pidfd needs the process. */
	pid_t tgid = procs_tgid((pid_t)req->pid);
	if (tgid < 0)
		return;
	_cleanup_close_ int pidfd = sg_pidfd_open(tgid, 0);
	/* Signal only while the notification is still pending: the pid is then
	 * certainly the trapped (sandboxed) process. */
	if (pidfd >= 0 && childmem_id_valid(listener, req->id) == 0)
		sg_pidfd_send_signal(pidfd, sig);
}

static void respond(struct receiver *r, const struct seccomp_notif *req, const struct action *a)
{
	/* Sized as the kernel's struct, which may be larger than ours. */
	struct seccomp_notif_resp *resp = r->resp_buf;
	memset(resp, 0, r->resp_size);
	resp->id = req->id;
	switch (a->kind) {
	case ACTION_CONTINUE:
		resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		break;
	case ACTION_ERRNO:
		resp->error = -(int32_t)a->value;
		break;
	case ACTION_RETURN:
		resp->val = a->value;
		break;
	case ACTION_KILL:
		kill_trapped(req, r->listener, (int)a->value);
		resp->error = -EPERM; /* resolves the notification if it survives */
		break;
	}
	if (ioctl(r->listener, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0 && errno != ENOENT)
		log_verbose("answering notification %llu: %s", (unsigned long long)req->id,
			    strerror(errno));
}

static void handle_one(struct receiver *r, const struct seccomp_notif *req, uint64_t t0)
{
	struct childmem mem = { .listener = r->listener, .id = req->id, .pid = (pid_t)req->pid };
	struct audit_syscall rec;
	if (r->audit) {
		memset(&rec, 0, sizeof(rec));
		clock_gettime(CLOCK_REALTIME, &rec.when);
		preread_paths(req, &mem, &rec);
	}
	struct action a;
	const struct chain_link *decider = chain_run(r->chains, req, &mem, &a);
	respond(r, req, &a);
	atomic_fetch_add_explicit(&r->handled, 1, memory_order_relaxed);
	if (r->audit) {
		rec.pid = (pid_t)req->pid;
		rec.nr = req->data.nr;
		memcpy(rec.args, req->data.args, sizeof(rec.args));
		rec.decider = decider ? decider->name : "kernel";
		rec.action = a;
		rec.latency_ns = now_ns() - t0;
		audit_syscall(r->audit, &rec);
	}
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
	free(r->resp_buf);
	r->req_buf = r->resp_buf = NULL;
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	r->stop_fd = -1;
}

int receiver_start(struct receiver *r, int listener, const struct chain_table *chains,
		   struct audit *audit, struct sg_err *err)
{
	memset(r, 0, sizeof(*r));
	r->stop_fd = -1;
	r->listener = listener;
	r->chains = chains;
	r->audit = audit;
	/* The kernel's notification struct must match what we were built with. */
	struct seccomp_notif_sizes sizes;
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
		return err_sys(err, errno, "seccomp: SECCOMP_GET_NOTIF_SIZES");
	/* A newer kernel may use larger structs than these headers know. */
	r->req_size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif
									   : sizeof(struct seccomp_notif);
	r->resp_size = sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp)
			       ? sizes.seccomp_notif_resp
			       : sizeof(struct seccomp_notif_resp);
	r->req_buf = calloc(1, r->req_size);
	r->resp_buf = calloc(1, r->resp_size);
	r->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!r->req_buf || !r->resp_buf || r->stop_fd < 0) {
		int e = r->stop_fd < 0 ? errno : ENOMEM;
		receiver_free_bufs(r);
		return err_sys(err, e, "receiver: cannot allocate its buffers");
	}
	int e = pthread_create(&r->thread, NULL, receiver_main, r);
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
