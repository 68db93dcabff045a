/* Diagnostics on standard error: one line each, prefixed "sysgate: ". */
#ifndef SYSGATE_LOG_H
#define SYSGATE_LOG_H

extern int log_verbosity;

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed only with -v. */
void log_verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
