/* The memory proxy (docs/handlers.md#memory-accessors): a worker reads or writes the trapped
 * process's memory only through these requests, which the router serves
 * for a notification the worker holds, for that notification's pid only.
 * Every access is bracketed by SECCOMP_IOCTL_NOTIF_ID_VALID (childmem.h). */
#ifndef SYSGATE_PROXY_H
#define SYSGATE_PROXY_H

#include <stdint.h>

#include "childmem.h"
#include "protocol.h"

/* Room proxy_serve needs in its buffer. */
#define PROXY_BUF_SIZE (PROTO_MAX_MEM + 1)

/* Serves req against mem into *reply (initialized here; its data points
 * into buf). Failures become a positive errno in reply->error, never an
 * access: EINVAL for an unknown op or inconsistent sizes, E2BIG past the
 * cap, ENOENT once the notification is gone, EFAULT for a bad address. */
void proxy_serve(const struct childmem *mem, const Sysgate__V1__MemRequest *req, uint8_t *buf,
		 Sysgate__V1__MemReply *reply);

#endif
