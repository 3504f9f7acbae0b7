/* A fourth cloud registered the way the three are: a struct prov_desc in a table the
 * configuration and provider_new_all take. Its section, keys, environment variables,
 * defaults and vendor-file hook work with no line of the configuration's files (config.c,
 * cfg*.c) or provider.c knowing it, and only the clouds that are configured are made. */
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

#include "config.h"
#include "provider.h"

#include "conf_helpers.h"

static char tmpdir[] = "/tmp/codesrcfs-test-providers-XXXXXX";

/* ---- the fourth cloud ---------------------------------------------------------------- */

struct fake {
	struct provider base;
	const struct prov_conf *conf;
	const struct provider_env *env;
};

static int fake_made, fake_destroyed, fake_credfile_calls;
static const char *fake_credfile_profile;

static void fake_destroy(struct provider *p)
{
	fake_destroyed++;
	free(p);
}

static const struct provider_ops fake_ops = {.destroy = fake_destroy};

static struct provider *fake_new(const struct prov_conf *conf, const struct provider_env *env,
				 char *why, size_t whylen)
{
	struct fake *f;

	if (!conf->nscopes) {
		snprintf(why, whylen, "[%s] projects is required", conf->desc->name);
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->base.ops = &fake_ops;
	f->conf = conf;
	f->env = env;
	fake_made++;
	return &f->base;
}

static int fake_credfile(struct prov_conf *pc, const char *profile, char *err, size_t errlen)
{
	(void)pc;
	(void)err;
	(void)errlen;
	fake_credfile_calls++;
	fake_credfile_profile = profile;
	return 0;
}

static const struct prov_key fake_keys[] = {
    {"api_key", PROV_KEY_ID, 0, {"FAKE_API_KEY"}},
    {"api_secret", PROV_SECRET, 1, {"FAKE_API_SECRET"}},
    {"region", PROV_REGION, 0, {"FAKE_REGION"}},
    {"endpoint", PROV_ENDPOINT, 0, {NULL}},
    {"projects", PROV_SCOPES, 0, {"FAKE_PROJECTS"}},
    {NULL, 0, 0, {NULL}},
};

static const struct prov_desc fake_desc = {
    .name = "fake",
    .keys = fake_keys,
    .region = "zz-north-1",
    .endpoint = "https://api.%s.fake.example",
    .credfile = fake_credfile,
    .create = fake_new,
};

/* providers[] and the fake after them. */
static const struct prov_desc *table[8];

/* ---- helpers ------------------------------------------------------------------------- */

static int reset(void **state)
{
	(void)state;
	unset_cloud_env(table);
	fake_made = fake_destroyed = fake_credfile_calls = 0;
	fake_credfile_profile = NULL;
	return 0;
}

static int group_setup(void **state)
{
	size_t n = 0;

	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	/* The vendors' files (~/.aliyun, ~/.volc) of whoever runs the tests stay out. */
	setenv("HOME", tmpdir, 1);
	while (providers[n] && n < 6) {
		table[n] = providers[n];
		n++;
	}
	table[n] = &fake_desc;
	table[n + 1] = NULL;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return remove_tree(tmpdir);
}

/* Load text (a private file) with the table t; err filled. */
static int load(struct config *c, const struct prov_desc *const *t, const char *text, char *err,
		size_t errlen)
{
	char *path = write_file_in(tmpdir, text, 0600);
	int rc = config_load_table(c, t, path, 1, NULL, err, errlen);
	free(path);
	return rc;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_section_keys_and_defaults(void **state)
{
	struct config c;
	struct prov_conf *pc;
	char err[256];

	(void)state;
	assert_int_equal(load(&c, table,
			      "[fake]\napi_key = fk\napi_secret = " SECRET "\nprojects = p1, p2\n",
			      err, sizeof(err)),
			 0);
	pc = config_prov(&c, "fake");
	assert_non_null(pc);
	assert_ptr_equal(pc->desc, &fake_desc);
	assert_true(pc->enabled);
	assert_string_equal(pc->key_id, "fk");
	assert_string_equal(pc->secret, SECRET);
	assert_string_equal(pc->region, "zz-north-1");
	assert_string_equal(pc->endpoint, "https://api.zz-north-1.fake.example");
	assert_int_equal(pc->nscopes, 2);
	assert_string_equal(pc->scopes[1], "p2");
	assert_int_equal(fake_credfile_calls, 1);
	assert_false(config_prov(&c, "pai")->enabled);
	assert_false(config_prov(&c, "volc")->enabled);
	assert_false(config_prov(&c, "codeup")->enabled);
	config_free(&c);
}

static void test_environment_wins(void **state)
{
	struct config c;
	struct prov_conf *pc;
	char err[256];

	(void)state;
	setenv("FAKE_API_KEY", "envkey", 1);
	setenv("FAKE_API_SECRET", SECRET "env", 1);
	setenv("FAKE_REGION", "zz-south-2", 1);
	setenv("FAKE_PROJECTS", "a b", 1);
	assert_int_equal(config_load_table(&c, table, NULL, 0, "prof", err, sizeof(err)), 0);
	pc = config_prov(&c, "fake");
	assert_true(pc->enabled);
	assert_string_equal(pc->key_id, "envkey");
	assert_string_equal(pc->secret, SECRET "env");
	assert_string_equal(pc->endpoint, "https://api.zz-south-2.fake.example");
	assert_int_equal(pc->nscopes, 2);
	assert_string_equal(fake_credfile_profile, "prof");
	config_free(&c);
}

static void test_refusals_name_the_fake(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(load(&c, table, "[fake]\napi_key = fk\n", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "[fake] api_secret is missing (api_key is set)");
	assert_int_equal(load(&c, table, "[fake]\nworkspaces = w\n", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown key 'workspaces' in [fake]"));
	assert_int_equal(load(&c, table, "[nope]\n", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown section [nope] (expected pai, volc, codeup or fake)"));
	/* Not registered: no section of that name. */
	assert_int_equal(load(&c, providers, "[fake]\napi_key = fk\n", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown section [fake] (expected pai, volc or codeup)"));
	assert_null(strstr(err, SECRET));
}

static void test_only_configured_clouds_are_made(void **state)
{
	struct provider_env env = {.dir_ttl = 7};
	struct provider **provs;
	struct config c;
	char err[256];
	size_t n;

	(void)state;
	assert_int_equal(load(&c, table, "[fake]\napi_key = k\napi_secret = s\nprojects = p\n", err,
			      sizeof(err)),
			 0);
	assert_int_equal(provider_new_all(&c, &env, &provs, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(fake_made, 1);
	assert_string_equal(provs[0]->name, "fake");
	assert_ptr_equal(((struct fake *)provs[0])->conf, config_prov(&c, "fake"));
	assert_ptr_equal(((struct fake *)provs[0])->env, &env);
	provs[0]->ops->destroy(provs[0]);
	assert_int_equal(fake_destroyed, 1);
	free(provs);
	config_free(&c);

	/* With Codeup configured too: both, in the table's order. */
	assert_int_equal(load(&c, table,
			      "[codeup]\ntoken = t\norganizations = o\n"
			      "[fake]\napi_key = k\napi_secret = s\nprojects = p\n",
			      err, sizeof(err)),
			 0);
	assert_int_equal(provider_new_all(&c, &env, &provs, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(provs[0]->name, "codeup");
	assert_string_equal(provs[1]->name, "fake");
	for (size_t i = 0; i < n; i++)
		provs[i]->ops->destroy(provs[i]);
	free(provs);
	config_free(&c);
}

static void test_constructor_refusal(void **state)
{
	struct provider_env env = {0};
	struct provider **provs = (struct provider **)&env;
	struct config c;
	char err[256];
	size_t n = 5;

	(void)state;
	assert_int_equal(load(&c, table,
			      "[codeup]\ntoken = t\norganizations = o\n"
			      "[fake]\napi_key = k\napi_secret = s\n",
			      err, sizeof(err)),
			 0);
	assert_int_equal(provider_new_all(&c, &env, &provs, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "fake: cannot set up the provider ([fake] projects is required)");
	/* Codeup, made before the fake refused, is destroyed again (ASan checks the leak). */
	assert_null(provs);
	assert_int_equal(n, 0);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_section_keys_and_defaults, reset),
	    cmocka_unit_test_setup(test_environment_wins, reset),
	    cmocka_unit_test_setup(test_refusals_name_the_fake, reset),
	    cmocka_unit_test_setup(test_only_configured_clouds_are_made, reset),
	    cmocka_unit_test_setup(test_constructor_refusal, reset),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
