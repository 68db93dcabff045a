/* What sg_bench_loop and sg_bench_worker agree on: the arguments the loop passes to the
 * syscalls the worker checks. */
#ifndef SG_BENCH_SHARED_H
#define SG_BENCH_SHARED_H

#include <stddef.h>

/* faccessat(AT_FDCWD, BENCH_PATH, F_OK, 0): a path the supervisor pre-reads (argument 1). */
#define BENCH_PATH "/"

/* pwrite64(BENCH_READ_FD, buf, BENCH_READ_LEN, 0): the worker reads buf through the memory
 * proxy; the kernel then fails the call with EBADF, so nothing is written. */
#define BENCH_READ_FD (-1)
#define BENCH_READ_LEN 256

/* Byte i of that buffer, so the worker can tell it read the right memory. */
static inline unsigned char bench_read_byte(size_t i)
{
	return (unsigned char)(i * 31u + 7u);
}

#endif
