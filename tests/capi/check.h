/* The C tests' assertion: counts checks and failures and prints each failure with the last
 * parley error message; main() ends with check_report(). C99. */
#ifndef PARLEY_TESTS_CAPI_CHECK_H
#define PARLEY_TESTS_CAPI_CHECK_H

#include <parley/parley.h>
#include <stdio.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                \
  do {                                                                             \
    ++checks;                                                                      \
    if (!(cond)) {                                                                 \
      ++failures;                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,     \
              __LINE__, #cond, parley_last_error_message());                       \
    }                                                                              \
  } while (0)

/* Prints the tally; the process's exit status. */
static int check_report(void) {
  printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

#endif
