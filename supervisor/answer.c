#include "answer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "childmem.h"
#include "compat.h"
#include "log.h"
#include "procs.h"

int answer_notif_sizes(size_t *req_size, size_t *resp_size, struct sg_err *err)
{
	struct seccomp_notif_sizes sizes;
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
		return err_sys(err, errno, "seccomp: SECCOMP_GET_NOTIF_SIZES");
	/* A newer kernel may use larger structs than these headers know. */
	*req_size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif
									 : sizeof(struct seccomp_notif);
	*resp_size = sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp)
			     ? sizes.seccomp_notif_resp
			     : sizeof(struct seccomp_notif_resp);
	return 0;
}

int answer_buf_init(struct answer_buf *b, struct sg_err *err)
{
	size_t req_size;
	b->resp = NULL;
	int r = answer_notif_sizes(&req_size, &b->size, err);
	if (r < 0)
		return r;
	b->resp = calloc(1, b->size);
	if (!b->resp)
		return err_set(err, ENOMEM, "out of memory for a notification answer");
	return 0;
}

void answer_buf_free(struct answer_buf *b)
{
	free(b->resp);
	b->resp = NULL;
}

static void kill_trapped(const struct seccomp_notif *req, int listener, int sig)
{
	/* req->pid is a thread id; a pidfd needs the process. */
	pid_t tgid = procs_tgid((pid_t)req->pid);
	if (tgid < 0)
		return;
	_cleanup_close_ int pidfd = sg_pidfd_open(tgid, 0);
	if (pidfd >= 0 && childmem_id_valid(listener, req->id) == 0)
		sg_pidfd_send_signal(pidfd, sig);
}

bool answer_fill(void *resp_buf, size_t size, const struct seccomp_notif *req,
		 const struct action *a)
{
	struct seccomp_notif_resp *resp = resp_buf;
	memset(resp, 0, size);
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
		resp->error = -EPERM; /* resolves the notification if it survives */
		break;
	case ACTION_INJECT:
		return false; /* answered by answer_inject's ADDFD_FLAG_SEND */
	}
	return true;
}

void answer_send(int listener, struct answer_buf *b, const struct seccomp_notif *req,
		 const struct action *a)
{
	if (a->kind == ACTION_KILL)
		kill_trapped(req, listener, (int)a->value);
	if (!answer_fill(b->resp, b->size, req, a))
		return;
	if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, b->resp) < 0 && errno != ENOENT)
		log_verbose("answering notification %llu: %s", (unsigned long long)req->id,
			    strerror(errno));
}

static int inject(int listener, const struct seccomp_notif *req, const void *data, size_t len,
		  bool writable, bool cloexec, bool send)
{
	_cleanup_close_ int fd = memfd_create("sysgate-inject", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, data, len);
	if (r < 0)
		return r;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	if (!writable &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
		return -errno;
	struct seccomp_notif_addfd add = {
		.id = req->id,
		.flags = send ? SECCOMP_ADDFD_FLAG_SEND : 0,
		.srcfd = (uint32_t)fd,
		.newfd_flags = cloexec ? O_CLOEXEC : 0,
	};
	int newfd = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
	return newfd < 0 ? -errno : newfd;
}

int answer_inject(int listener, const struct seccomp_notif *req, const void *data, size_t len,
		  bool writable, bool cloexec)
{
	return inject(listener, req, data, len, writable, cloexec, true);
}

int answer_inject_only(int listener, const struct seccomp_notif *req, const void *data,
		       size_t len, bool writable, bool cloexec)
{
	return inject(listener, req, data, len, writable, cloexec, false);
}
