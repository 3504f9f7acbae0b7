/* secret: the one wipe of credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "secret.h"

static void test_wipe_zeroes_every_byte(void **state)
{
	char buf[] = "S3CR3T-value";

	(void)state;
	secret_wipe(buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0);
	secret_wipe(NULL, 5);
	secret_wipe(buf, 0);
}

static void test_free_takes_null_and_strings(void **state)
{
	(void)state;
	secret_free(NULL);
	secret_free(strdup("S3CR3T"));
	secret_free(strdup(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wipe_zeroes_every_byte),
	    cmocka_unit_test(test_free_takes_null_and_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
