/* Answering a notification: the one place an action becomes a seccomp
 * response. Used by the receiver (builtins) and the router (workers); each
 * caller owns its kernel-sized response buffer. */
#ifndef SYSGATE_ANSWER_H
#define SYSGATE_ANSWER_H

#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>

#include "chain.h"
#include "util.h"

/* A response buffer as large as the running kernel's struct. */
struct answer_buf {
	void *resp;
	size_t size;
};

/* The kernel's struct sizes, never smaller than ours. */
int answer_notif_sizes(size_t *req_size, size_t *resp_size, struct sg_err *err);

int answer_buf_init(struct answer_buf *b, struct sg_err *err);
void answer_buf_free(struct answer_buf *b);

/* The response to req that action a makes, in resp (size bytes, the
 * kernel's struct size: the rest is zeroed). False: a is answered another
 * way (ACTION_INJECT: the fd's installation answered it). */
bool answer_fill(void *resp, size_t size, const struct seccomp_notif *req,
		 const struct action *a);

/* Sends action a for notification req. A kill signals the trapped process
 * (only while its notification is still pending, so the pid is certainly
 * the sandboxed one) and then fails the syscall, which resolves it. A
 * notification already gone (the task was interrupted or killed) is not an
 * error. */
void answer_send(int listener, struct answer_buf *b, const struct seccomp_notif *req,
		 const struct action *a);

/* inject_bytes (docs/handlers.md#actions): a memfd holding data, rewound and (unless
 * writable) sealed against writing, growing, shrinking and further seals,
 * installed in the trapped process with SECCOMP_IOCTL_NOTIF_ADDFD and
 * SECCOMP_ADDFD_FLAG_SEND, which also answers the notification: the
 * syscall returns the new fd (close-on-exec if cloexec). Returns that fd,
 * or -errno with the notification still to be answered (-ENOENT: gone). */
int answer_inject(int listener, const struct seccomp_notif *req, const void *data, size_t len,
		  bool writable, bool cloexec);

/* The same without answering: the fd is installed and its number returned,
 * the notification stays pending (answer it with ACTION_RETURN fd). For
 * tracked injections, which tell the worker the number first. */
int answer_inject_only(int listener, const struct seccomp_notif *req, const void *data,
		       size_t len, bool writable, bool cloexec);

#endif
