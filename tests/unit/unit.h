/* What every unit test includes: cmocka, and the glue that turns a table of
 * cases into one cmocka test per row, named after the row, so a failing row
 * is named in the output and a new case is one more row. */
#ifndef SYSGATE_UNIT_H
#define SYSGATE_UNIT_H

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util.h"

/* Appends one test per element of the array `rows` to `tests` (counted by
 * n), named by the row's `name` member; the test function receives the row
 * as *state. */
#define UNIT_ROWS(tests, n, fn, rows)                                          \
	for (size_t row_ = 0; row_ < ARRAY_SIZE(rows); row_++)                 \
		(tests)[(n)++] = (struct CMUnitTest){                          \
			.name = (rows)[row_].name,                             \
			.test_func = (fn),                                     \
			.initial_state = &(rows)[row_],                        \
		}

/* Appends the plain tests of the array `fixed` to `tests`. */
#define UNIT_TESTS(tests, n, fixed)                                            \
	for (size_t test_ = 0; test_ < ARRAY_SIZE(fixed); test_++)             \
		(tests)[(n)++] = (fixed)[test_]

#endif
