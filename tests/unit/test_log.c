/* log: every line is scrubbed of registered secrets and control bytes, and capped. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static char dir[] = "/tmp/codesrcfs-test-log-XXXXXX";
static char path[64];

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/log", dir);
	umask(0); /* the file's mode is the daemon's doing, not the umask's */
	return log_set_file(path);
}

static int teardown(void **state)
{
	(void)state;
	log_forget_secrets();
	unlink(path);
	return rmdir(dir);
}

/* What the file holds, then empties it. */
static char *take_log(void)
{
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 1 << 16);

	assert_non_null(f);
	assert_non_null(text);
	assert_true(fread(text, 1, (1 << 16) - 1, f) < (1 << 16) - 1);
	fclose(f);
	assert_int_equal(truncate(path, 0), 0);
	return text;
}

static void test_file_is_private(void **state)
{
	struct stat st;

	(void)state;
	log_msg(LOG_ERR, "hello");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(take_log());
}

static void test_secrets_masked(void **state)
{
	char *text;

	(void)state;
	assert_int_equal(log_add_secret("pt-T0KEN"), 0);
	assert_int_equal(log_add_secret("sk/secret+2"), 0);
	assert_int_equal(log_add_secret(""), 0);
	assert_int_equal(log_add_secret(NULL), 0);
	log_msg(LOG_ERR, "server said: bad token pt-T0KEN (x-pt-T0KENpt-T0KEN) %s", "sk/secret+2");
	text = take_log();
	assert_null(strstr(text, "T0KEN"));
	assert_null(strstr(text, "secret+2"));
	assert_non_null(strstr(text, ": bad token ****** (x-************) ******\n"));
	free(text);
}

static void test_controls_escaped(void **state)
{
	char *text, *nl;

	(void)state;
	log_msg(LOG_WARNING, "a\nZ codesrcfs[1]: error: forged\r\x1b[2J\x7f\tend%c!", '\0');
	text = take_log();
	nl = strchr(text, '\n');
	assert_non_null(nl);
	assert_string_equal(nl, "\n"); /* one line, however many newlines the text held */
	assert_non_null(strstr(text, "a\\x0aZ codesrcfs[1]: error: forged\\x0d\\x1b[2J\\x7f\\x09end"
				     "\\x00!\n"));
	free(text);
}

static void test_capped(void **state)
{
	char big[5000], *text, *msg;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_msg(LOG_ERR, "%s", big);
	text = take_log();
	msg = strstr(text, ": error: ") + 9;
	assert_int_equal(strlen(msg), 1024 + 1);
	assert_string_equal(msg + 1021, "...\n");
	free(text);
	/* A secret that would straddle the cap is never shown in part. */
	assert_int_equal(log_add_secret("SECRETVALUE"), 0);
	log_msg(LOG_ERR, "%.1019s%s", big, "SECRETVALUE");
	text = take_log();
	assert_null(strstr(text, "SEC"));
	free(text);
	/* Nor is a character cut in two: 3-byte characters past the cap. */
	msg = calloc(1, 3 * 400 + 1);
	for (int i = 0; i < 400; i++)
		memcpy(msg + 3 * i, "\xe4\xb8\xad", 3);
	log_msg(LOG_ERR, "x%s", msg);
	log_msg(LOG_ERR, "xy%s", msg);
	free(msg);
	text = take_log();
	msg = strstr(text, ": error: ") + 9;
	assert_memory_equal(msg + 1 + 3 * 340, "...\n", 4); /* 1021 bytes: 340 whole */
	msg = strstr(msg, ": error: ") + 9;
	assert_string_equal(msg + 2 + 3 * 339, "...\n"); /* 1021 would cut the 340th */
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_file_is_private),
	    cmocka_unit_test(test_secrets_masked),
	    cmocka_unit_test(test_controls_escaped),
	    cmocka_unit_test(test_capped),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
