/* The worker's end of its link: one nng pair1 socket dialed to the
 * supervisor (docs/protocol.md). Sends and receives run as nng aios so that
 * the pipe callback can cancel them when the supervisor's end goes away: a
 * pair1 dialer would otherwise wait for a reconnection forever.
 *
 * One thread receives (the run loop); any thread may send: senders take
 * turns on the one send aio under send_lock. */
#include "sdk.h"

#include <errno.h>
#include <nng/protocol/pair1/pair.h>
#include <stdio.h>

/* A negative errno for an nng error. */
static int nng_to_errno(int rv)
{
	if (rv & NNG_ESYSERR)
		return -(rv & ~NNG_ESYSERR);
	switch (rv) {
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
		return -EINVAL;
	case NNG_ENOENT:
		return -ENOENT;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_EPERM:
		return -EPERM;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	case NNG_ENOTSUP:
		return -ENOTSUP;
	case NNG_EPROTO:
		return -EPROTO;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_ECONNABORTED:
		return -ECONNRESET;
	default:
		return -EIO;
	}
}

static void link_lock(struct link *l)
{
	pthread_mutex_lock(&l->lock);
}

static void link_unlock(struct link *l)
{
	pthread_mutex_unlock(&l->lock);
}

/* The supervisor's end went away: end whatever waits on the link. */
static void on_pipe_removed(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	(void)pipe;
	(void)ev;
	struct link *l = arg;
	link_lock(l);
	if (!l->closing) {
		l->lost = true;
		nng_aio_cancel(l->rx);
		nng_aio_cancel(l->tx);
	}
	link_unlock(l);
}

int link_init(struct link *l, struct sg_err *err)
{
	*l = (struct link){ 0 };
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->send_lock, NULL);
	int rv = nng_aio_alloc(&l->rx, NULL, NULL);
	if (rv == 0)
		rv = nng_aio_alloc(&l->tx, NULL, NULL);
	if (rv != 0)
		return err_set(err, -nng_to_errno(rv), "allocating the link: %s", nng_strerror(rv));
	return 0;
}

int link_dial(struct link *l, const char *url, struct sg_err *err)
{
	int rv = nng_pair1_open(&l->socket);
	if (rv != 0)
		return err_set(err, -nng_to_errno(rv), "opening a pair1 socket: %s",
			       nng_strerror(rv));
	l->open = true;
	rv = nng_socket_set_size(l->socket, NNG_OPT_RECVMAXSZ, PROTO_MAX_MESSAGE);
	if (rv == 0)
		rv = nng_pipe_notify(l->socket, NNG_PIPE_EV_REM_POST, on_pipe_removed, l);
	if (rv != 0)
		return err_set(err, -nng_to_errno(rv), "setting up the link: %s", nng_strerror(rv));
	rv = nng_dial(l->socket, url, NULL, 0);
	if (rv != 0)
		return err_set(err, -nng_to_errno(rv), "dialing %s: %s", url, nng_strerror(rv));
	return 0;
}

/* Starts op on aio unless the link is lost (or, for a receive, stopped),
 * then waits for it. */
static int link_run(struct link *l, nng_aio *aio, void (*op)(nng_socket, nng_aio *))
{
	link_lock(l);
	if (l->lost || (aio == l->rx && l->recv_stopped)) {
		link_unlock(l);
		return l->lost ? NNG_ECONNRESET : NNG_ECANCELED;
	}
	op(l->socket, aio);
	link_unlock(l);
	nng_aio_wait(aio);
	return nng_aio_result(aio);
}

int link_send(struct link *l, const Sysgate__V1__Envelope *m, struct sg_err *err)
{
	_cleanup_free_ void *buf = NULL;
	size_t len = 0;
	int r = proto_encode(m, &buf, &len, err);
	if (r < 0)
		return r;
	nng_msg *msg = NULL;
	int rv = nng_msg_alloc(&msg, 0);
	if (rv == 0)
		rv = nng_msg_append(msg, buf, len);
	if (rv != 0) {
		nng_msg_free(msg);
		return err_set(err, -nng_to_errno(rv), "sending %zu bytes: %s", len,
			       nng_strerror(rv));
	}
	pthread_mutex_lock(&l->send_lock);
	nng_aio_set_msg(l->tx, msg);
	rv = link_run(l, l->tx, nng_send_aio);
	if (rv != 0) {
		/* Not sent: the message is still ours. */
		nng_msg_free(nng_aio_get_msg(l->tx));
		nng_aio_set_msg(l->tx, NULL);
	}
	pthread_mutex_unlock(&l->send_lock);
	if (rv != 0)
		return err_set(err, -nng_to_errno(rv), "sending to the supervisor: %s",
			       nng_strerror(rv));
	return 0;
}

int link_recv(struct link *l, Sysgate__V1__Envelope **out, struct sg_err *err)
{
	*out = NULL;
	int rv = link_run(l, l->rx, nng_recv_aio);
	if (rv != 0) {
		link_lock(l);
		bool lost = l->lost;
		link_unlock(l);
		/* Which of the two it was tells a dropped connection from an
		 * nng failure in the worker's report. */
		return err_set(err, -nng_to_errno(rv), "receiving from the supervisor: %s",
			       lost ? "its connection closed" : nng_strerror(rv));
	}
	nng_msg *msg = nng_aio_get_msg(l->rx);
	nng_aio_set_msg(l->rx, NULL);
	Sysgate__V1__Envelope *m _cleanup_envelope_ = NULL;
	int r = proto_decode(nng_msg_body(msg), nng_msg_len(msg), &m, err);
	nng_msg_free(msg);
	if (r == 0)
		r = proto_validate_from_supervisor(m, err);
	if (r < 0)
		return r == -ENOMEM ? r : -EPROTO; /* the details are in err */
	*out = steal_ptr(&m);
	return 0;
}

void link_stop_recv(struct link *l)
{
	link_lock(l);
	l->recv_stopped = true;
	nng_aio_cancel(l->rx);
	link_unlock(l);
}

void link_close(struct link *l)
{
	link_lock(l);
	l->closing = true;
	link_unlock(l);
	if (l->open)
		nng_close(l->socket); /* returns after every pipe callback */
	l->open = false;
	nng_aio_free(l->rx);
	nng_aio_free(l->tx);
	l->rx = l->tx = NULL;
	pthread_mutex_destroy(&l->send_lock);
	pthread_mutex_destroy(&l->lock);
}
