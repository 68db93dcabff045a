#include "util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int err_vset(struct sg_err *e, int code, int with_strerror, const char *fmt,
		    va_list ap)
{
	if (code < 0)
		code = -code;
	if (code == 0)
		code = EIO;
	if (e) {
		int n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		if (with_strerror && n >= 0 && (size_t)n < sizeof(e->msg))
			snprintf(e->msg + n, sizeof(e->msg) - (size_t)n, ": %s", strerror(code));
	}
	return -code;
}

int err_set(struct sg_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = err_vset(e, code, 0, fmt, ap);
	va_end(ap);
	return r;
}

int err_sys(struct sg_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = err_vset(e, code, 1, fmt, ap);
	va_end(ap);
	return r;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* Length of the valid UTF-8 character at p (n > 0 bytes left), or 0 if p
 * does not start one: no NUL, overlong forms, surrogates or code points
 * past U+10FFFF (what jansson and Python's strict codec refuse). */
size_t utf8_char(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	if (c < 0x80)
		return c != 0;
	size_t more;
	uint32_t cp, min;
	if ((c & 0xe0) == 0xc0) {
		more = 1;
		cp = c & 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		more = 2;
		cp = c & 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		more = 3;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n <= more)
		return 0;
	for (size_t k = 1; k <= more; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return more + 1;
}
