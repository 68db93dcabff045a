/* What every fuzz target includes: the libFuzzer entry point, a check that
 * crashes loudly (so libFuzzer saves the input), and a reader that takes
 * structured values off the front of the input.
 *
 * A target is one fuzz_<name>.c defining LLVMFuzzerTestOneInput(); it is
 * linked twice (tests/fuzz/CMakeLists.txt): with libFuzzer (clang,
 * -DSYSGATE_FUZZ=ON) to search, and with replay.c (any compiler) to
 * replay its corpus in ctest. */
#ifndef SYSGATE_FUZZ_H
#define SYSGATE_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the code under test promised and broke: abort, naming it. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__,      \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Bookkeeping of a target that the fuzzer need not watch (clang only). */
#if defined(__clang__)
#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define FUZZ_NO_COVERAGE
#endif

/* The unread rest of an input. Past its end every value reads as 0 and
 * every byte run as empty, so a short input is still a valid one. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint64_t fuzz_uint(struct fuzz_in *in, size_t bytes)
{
	uint64_t v = 0;
	for (size_t i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)in->p[0] << (8 * i);
	return v;
}

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	return (uint8_t)fuzz_uint(in, 1);
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	return (uint16_t)fuzz_uint(in, 2);
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	return (uint32_t)fuzz_uint(in, 4);
}

/* Up to len bytes (fewer at the end of the input); *got says how many. */
static inline const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t len, size_t *got)
{
	const uint8_t *p = in->p;
	*got = len < in->n ? len : in->n;
	in->p += *got;
	in->n -= *got;
	return p;
}

/* The next frame of a framed input: a 16-bit little-endian length, then
 * that many bytes (or the rest). false at the end of the input. */
static inline bool fuzz_frame(struct fuzz_in *in, const uint8_t **frame, size_t *len)
{
	if (in->n == 0)
		return false;
	size_t want = fuzz_u16(in);
	*frame = fuzz_bytes(in, want, len);
	return true;
}

#endif
