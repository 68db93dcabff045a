/* A worker's transport: its nng link (pair1, listened on in its directory;
 * the handshake, lifecycle messages, and what does not fit a ring) and the
 * fast channel of each start (fastchan.h: the router's lane here, the
 * receiver's in lane.h). */
#include "worker.h"

#include <errno.h>
#include <limits.h>
#include <nng/protocol/pair1/pair.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static void on_pipe_removed(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	(void)ev;
	struct worker *w = arg;
	atomic_store(&w->lost_pipe, (uint32_t)nng_pipe_id(pipe));
	uint64_t one = 1;
	(void)!write(w->kick_fd, &one, sizeof(one));
}

/* Before pair1 sees a new peer: only the process this start spawned, or
 * one it started (a wrapper script's child), may connect. Its pid comes
 * from SO_PEERCRED, which the peer cannot forge; the worker leads its own
 * session (setsid at spawn) and may not leave it (setsid and setpgid are
 * denied), which no other worker can join. Runs on an nng thread: touches
 * only atomics. */
static void on_pipe_adding(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	(void)ev;
	struct worker *w = arg;
	uint64_t peer = 0;
	pid_t want = atomic_load(&w->link_pid);
	if (want > 0 && nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &peer) == 0 &&
	    peer > 0 && peer <= INT_MAX &&
	    (peer == (uint64_t)want || getsid((pid_t)peer) == want))
		return;
	nng_pipe_close(pipe);
	if (atomic_fetch_add(&w->refused, 1) == 0)
		log_error("worker '%s': refused a connection to its link from pid %llu, which "
			  "is not the worker sysgate started",
			  w->spec, (unsigned long long)peer);
}

int worker_link_listen(struct worker *w, struct sg_err *err)
{
	int r;
	if ((r = nng_pair1_open(&w->sock)) != 0)
		return err_set(err, EIO, "--worker '%s': nng socket: %s", w->spec, nng_strerror(r));
	w->sock_open = true;
	/* Oversized messages close the link: a violation like any other. */
	if ((r = nng_socket_set_size(w->sock, NNG_OPT_RECVMAXSZ, PROTO_MAX_MESSAGE)) != 0 ||
	    (r = nng_socket_set_int(w->sock, NNG_OPT_SENDBUF, 2 * WORKER_MAX_INFLIGHT)) != 0 ||
	    (r = nng_socket_set_int(w->sock, NNG_OPT_RECVBUF, 2 * WORKER_MAX_INFLIGHT)) != 0 ||
	    (r = nng_pipe_notify(w->sock, NNG_PIPE_EV_ADD_PRE, on_pipe_adding, w)) != 0 ||
	    (r = nng_pipe_notify(w->sock, NNG_PIPE_EV_REM_POST, on_pipe_removed, w)) != 0 ||
	    (r = nng_listen(w->sock, w->url, NULL, 0)) != 0 ||
	    (r = nng_socket_get_int(w->sock, NNG_OPT_RECVFD, &w->recv_fd)) != 0)
		return err_set(err, EIO, "--worker '%s': cannot listen on %s: %s", w->spec, w->url,
			       nng_strerror(r));
	char sock_path[PATH_MAX];
	snprintf(sock_path, sizeof(sock_path), "%s/link", w->dir);
	if (w->sandbox.change_ids && lchown(sock_path, w->sandbox.uid, w->sandbox.gid) < 0)
		return err_sys(err, errno, "--worker '%s': cannot hand %s to the worker's user",
			       w->spec, sock_path);
	if (chmod(sock_path, 0600) < 0)
		return err_sys(err, errno, "--worker '%s': chmod %s", w->spec, sock_path);
	return 0;
}

int worker_fast_create(struct worker *w, int *shm_fd, struct sg_err *err)
{
	struct sg_err e2;
	if (fastchan_create(shm_fd, &w->shm, &e2) < 0)
		return err_set(err, EIO, "--worker '%s': %s", w->spec, e2.msg);
	w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->wake_fd < 0)
		return err_sys(err, errno, "--worker '%s': eventfd", w->spec);
	w->tx = (struct fastchan_end){ .ring = &w->shm->to_worker };
	w->rx = (struct fastchan_end){ .ring = &w->shm->to_sup };
	lane_reset(&w->lane, w->shm);
	return 0;
}

void worker_fast_release(struct worker *w)
{
	lane_quiesce(&w->lane);
	fastchan_unmap(w->shm);
	w->shm = NULL;
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	w->wake_fd = -1;
	w->fast = w->fast_broken = false;
}

/* Over the fast channel: 0, or -EMSGSIZE / -EAGAIN (too big, full: the
 * caller may use nng), -EPROTO (the worker broke the ring). */
/* Puts env on tx, one of w's rings to the worker, and wakes the worker if
 * it sleeps. The receiver's lane uses it too: it touches nothing else of w. */
int worker_put_fast(struct worker *w, struct fastchan_end *tx, const Sysgate__V1__Envelope *env)
{
	int r = proto_ring_put(tx, env);
	if (r == 0 && fastchan_take_wake(&w->shm->worker_need_wake))
		fastchan_futex_wake_all(&w->shm->worker_wake_seq);
	return r;
}

static int send_fast(struct worker *w, struct fastchan_end *tx, const Sysgate__V1__Envelope *env)
{
	int r = worker_put_fast(w, tx, env);
	if (r == -EPROTO)
		w->fast_broken = true;
	return r;
}

int worker_send(struct worker *w, const Sysgate__V1__Envelope *env, struct sg_err *err)
{
	if (w->fast && (env->body_case == SYSGATE__V1__ENVELOPE__BODY_SNAPSHOT ||
			env->body_case == SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY ||
			env->body_case == SYSGATE__V1__ENVELOPE__BODY_INJECTED)) {
		/* A MemReply answers on the lane its request came on. */
		bool lane =
			w->lane.replying && env->body_case == SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY;
		int r = send_fast(w, lane ? &w->lane.tx : &w->tx, env);
		if (r == -EPROTO)
			return err_set(err, EPROTO, "it corrupted its fast channel");
		/* A MemReply may overtake anything: nng carries what does not
		 * fit. Snapshots and Injected keep their order or fail. */
		if (r == 0 ||
		    (r == -EAGAIN && env->body_case != SYSGATE__V1__ENVELOPE__BODY_MEM_REPLY))
			return r == 0 ? 0 : err_set(err, EAGAIN, "its fast channel is full");
	}
	_cleanup_free_ void *buf = NULL;
	size_t len;
	int r = proto_encode(env, &buf, &len, err);
	if (r < 0)
		return r;
	/* Never blocks: a worker that does not read its link has failed. */
	int e = nng_send(w->sock, buf, len, NNG_FLAG_NONBLOCK);
	if (e)
		return err_set(err, e == NNG_EAGAIN ? EAGAIN : EIO, "cannot send to it: %s",
			       nng_strerror(e));
	return 0;
}
