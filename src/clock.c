/* clock: CLOCK_MONOTONIC read in one place, with a hook for tests. */
#include <time.h>

#include "clock.h"

static int64_t (*clock_test)(void);

int64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_now(void)
{
	return clock_test ? clock_test() : clock_ms() / 1000;
}

void clock_set_test(int64_t (*now)(void))
{
	clock_test = now;
}
