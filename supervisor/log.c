#include "log.h"

#include <stdarg.h>
#include <stdio.h>

int log_verbosity;

static void log_v(const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	/* One write so lines from several threads do not interleave. */
	fprintf(stderr, "sysgate: %s\n", line);
}

void log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v(fmt, ap);
	va_end(ap);
}

void log_verbose(const char *fmt, ...)
{
	if (log_verbosity <= 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_v(fmt, ap);
	va_end(ap);
}
