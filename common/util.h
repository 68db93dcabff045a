/* Scope-cleanup helpers and the error-message convention shared by every
 * sysgate component. */
#ifndef SYSGATE_UTIL_H
#define SYSGATE_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void cleanup_freep(void *p)
{
	free(*(void **)p);
}

#define _cleanup_close_ __attribute__((cleanup(cleanup_closep)))
#define _cleanup_free_ __attribute__((cleanup(cleanup_freep)))

/* Hand ownership out of a cleanup-scoped variable. */
static inline int steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

static inline void *steal_ptr(void *pp)
{
	void **p = pp;
	void *r = *p;
	*p = NULL;
	return r;
}

/* Functions that can fail return a negative errno and describe the cause,
 * naming the object, in one line the caller prints. */
struct sg_err {
	char msg[512];
};

/* Formats the message and returns -code (code is a positive errno). */
int err_set(struct sg_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(code)". */
int err_sys(struct sg_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/* write(2) all of buf, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);

/* out[0..n) = the 2n hex digits of s (either case), nothing more: 0, or
 * -EINVAL. How a worker reads the token the supervisor passed. */
int hex_decode(const char *s, uint8_t *out, size_t n);

/* Frees a NULL-terminated array of strings and the strings (NULL is fine). */
void strv_free(char **v);

/* Length of the valid UTF-8 character at p (n > 0 bytes left), or 0 if p
 * does not start one: no NUL, overlong forms, surrogates or code points
 * past U+10FFFF. */
size_t utf8_char(const unsigned char *p, size_t n);

#endif
