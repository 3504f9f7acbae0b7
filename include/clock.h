/* clock: the one monotonic clock of the daemon. TTLs count seconds on clock_now, which a
 * test may turn by hand; time-outs and back-off measure milliseconds on clock_ms, which
 * stays the real clock (they sleep for real). */
#ifndef CODESRCFS_CLOCK_H
#define CODESRCFS_CLOCK_H

#include <stdint.h>

/* Seconds on CLOCK_MONOTONIC, or on the test clock while one is set. */
int64_t clock_now(void);
/* Milliseconds on CLOCK_MONOTONIC; never the test clock. */
int64_t clock_ms(void);
/* Tests: clock_now answers now() from here on (NULL: CLOCK_MONOTONIC again). Set it
 * before the threads that read the clock start. */
void clock_set_test(int64_t (*now)(void));

#endif
