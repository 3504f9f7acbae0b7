/* What the configuration's unit tests share: an environment without the clouds' variables,
 * and files written in the test's own temporary directory. Each function is static: one
 * copy per test program that includes this. */
#ifndef CODESRCFS_TEST_CONF_HELPERS_H
#define CODESRCFS_TEST_CONF_HELPERS_H

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

#include "provider.h"

/* Every secret the tests use carries this marker; no error may ever show it. */
#define SECRET "S3CR3T"

/* Unsets every variable a cloud of table (ended by NULL) reads: none may leak in from the
 * caller. */
static void unset_cloud_env(const struct prov_desc *const *table)
{
	for (size_t k = 0; table[k]; k++)
		for (const struct prov_key *key = table[k]->keys; key->name; key++)
			for (size_t j = 0;
			     j < sizeof(key->env) / sizeof(key->env[0]) && key->env[j]; j++)
				unsetenv(key->env[j]);
}

/* A new file under dir holding text, with mode; returns its malloc'd path. */
static char *write_file_in(const char *dir, const char *text, mode_t mode)
{
	char *path;
	int fd;

	assert_true(asprintf(&path, "%s/conf-XXXXXX", dir) > 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

/* Removes dir and all below it; 0 or system()'s status. */
static int remove_tree(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

#endif
