/* Access to a trapped process's memory, valid only while its notification is
 * pending. Every access is bracketed by SECCOMP_IOCTL_NOTIF_ID_VALID so a
 * recycled pid can never be read or written. */
#ifndef SYSGATE_CHILDMEM_H
#define SYSGATE_CHILDMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Largest single read or write served. */
#define CHILDMEM_MAX (1u << 20)

struct childmem {
	int listener;
	uint64_t id; /* notification id */
	pid_t pid;
};

/* Reads len bytes at addr. Returns bytes read, or -errno (-ENOENT: the
 * notification is gone, -EFAULT: bad address, -E2BIG: over the cap). */
ssize_t childmem_read(const struct childmem *m, uint64_t addr, void *buf, size_t len);

/* Reads a NUL-terminated string of at most cap-1 bytes into buf (always
 * terminated). Returns its length, -ENAMETOOLONG if no NUL within cap-1. */
ssize_t childmem_read_cstr(const struct childmem *m, uint64_t addr, char *buf, size_t cap);

/* Writes len bytes at addr. Returns bytes written or -errno. */
ssize_t childmem_write(const struct childmem *m, uint64_t addr, const void *buf, size_t len);

/* Still pending? */
int childmem_id_valid(int listener, uint64_t id);

#endif
