/* Unit tests of record mapping: meta.json redaction, times, and each provider's parser on
 * real-shaped and hostile bodies (the seed documents' examples restated). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "provider.h"

static const char pai_body[] =
	"{\"CodeSources\":[{\"CodeSourceId\":\"code-202\",\"DisplayName\":\"MyCodeSourceName1\","
	"\"Description\":\"code source of dlc examples\",\"CodeRepo\":\"https://code.aliyun.com/x\","
	"\"CodeBranch\":\"master\",\"CodeCommit\":\"44da10\",\"CodeRepoUserName\":\"user\","
	"\"CodeRepoAccessToken\":\"tok-secret\",\"Accessibility\":\"PUBLIC\",\"UserId\":\"115\","
	"\"WorkspaceId\":\"1234\",\"GmtCreateTime\":\"2021-01-18T12:52:15Z\","
	"\"GmtModifyTime\":\"2021-01-19T12:52:15Z\",\"MountPath\":\"/root/code/\"},"
	"{\"CodeSourceId\":\"code-203\",\"DisplayName\":\"a\\u0000b\",\"CodeRepo\":\"u\","
	"\"CodeBranch\":\"\",\"CodeRepoAccessToken\":\"\"}],"
	"\"TotalCount\":2,\"RequestId\":\"5A14FA81\"}";

static const char volc_body[] =
	"{\"ResponseMetadata\":{\"RequestId\":\"2024\",\"Action\":\"ListResources\","
	"\"Version\":\"2023-05-01\",\"Service\":\"cp\",\"Region\":\"cn-beijing\"},"
	"\"Result\":{\"Items\":[{\"Id\":\"1bfc\",\"WorkspaceId\":\"000c\",\"Name\":\"test\","
	"\"Type\":\"Gitee\",\"Configuration\":{\"Git\":{\"Url\":\"https://gitee.com/x\","
	"\"UserToken\":\"0f68secret\",\"Password\":\"pwdsecret\",\"AccessKey\":\"aksecret\","
	"\"SecretKey\":\"sksecret\",\"CloneDepth\":0}},\"CreateTime\":\"2023-04-28T11:54:24+08:00\","
	"\"UpdateTime\":\"2023-05-08T22:07:26+08:00\",\"Creator\":{\"AccountId\":245,\"UserId\":0}}],"
	"\"PageNumber\":1,\"PageSize\":10,\"TotalCount\":1}}";

static const char codeup_groups[] =
	"[{\"avatarUrl\":\"https://x/a\",\"fullPath\":\"org/test-group\",\"id\":36932,"
	"\"kind\":\"group\",\"name\":\"test-group-name\",\"nameWithNamespace\":\"org/test-group-name\","
	"\"parentId\":20966,\"path\":\"test-group\",\"pathWithNamespace\":\"org/test-group\","
	"\"visibility\":\"private\",\"webUrl\":\"https://codeup.example/org/test-group\"}]";

static void test_meta_redacts_at_any_depth(void **state)
{
	struct json_object *o = json_tokener_parse(
		"{\"a\":\"keep\",\"UserToken\":\"s1\",\"n\":{\"Password\":\"s2\",\"list\":[{\"SecretKey\":"
		"\"s3\"}]},\"AccessKey\":\"\",\"CodeRepoAccessToken\":null}");
	char *m = provider_meta_json(o, 0);

	(void)state;
	assert_non_null(m);
	assert_null(strstr(m, "s1"));
	assert_null(strstr(m, "s2"));
	assert_null(strstr(m, "s3"));
	assert_non_null(strstr(m, "\"keep\""));
	assert_non_null(strstr(m, "\"AccessKey\": \"\"")); /* empty stays empty */
	assert_int_equal(m[strlen(m) - 1], '\n');
	free(m);
	m = provider_meta_json(o, 1);
	assert_non_null(strstr(m, "s1"));
	free(m);
	json_object_put(o);
}

static void test_times(void **state)
{
	(void)state;
	assert_int_equal(provider_parse_time("2021-01-18T12:52:15Z"), 1610974335);
	assert_int_equal(provider_parse_time("2021-01-18T20:52:15+08:00"), 1610974335);
	assert_int_equal(provider_parse_time("2021-01-18T20:52:15.123+08:00"), 1610974335);
	assert_int_equal(provider_parse_time("2021-01-18T12:52:15"), 1610974335);
	assert_int_equal(provider_parse_time("yesterday"), 0);
	assert_int_equal(provider_parse_time("2021-01-18T12:52:15+99:00"), 0);
	assert_int_equal(provider_parse_time(""), 0);
	assert_int_equal(provider_parse_time(NULL), 0);
}

static void test_pai_parse(void **state)
{
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(pai_parse_codesources(pai_body, strlen(pai_body), 0, &pg), 0);
	assert_int_equal(pg.n, 2);
	assert_int_equal(pg.total, 2);
	assert_string_equal(pg.recs[0].id, "code-202");
	assert_string_equal(pg.recs[0].name, "MyCodeSourceName1");
	assert_string_equal(pg.recs[0].url, "https://code.aliyun.com/x");
	assert_string_equal(pg.recs[0].branch, "master");
	assert_int_equal(pg.recs[0].ctime, 1610974335);
	assert_null(strstr(pg.recs[0].meta, "tok-secret"));
	assert_non_null(strstr(pg.recs[0].meta, "\"******\""));
	assert_int_equal(pg.recs[1].name_len, 3); /* the NUL inside the name survives */
	assert_memory_equal(pg.recs[1].name, "a\0b", 3);
	assert_null(pg.recs[1].branch);
	prov_page_free(&pg);
}

static void test_pai_hostile(void **state)
{
	static const char *const bad[] = {
		"", "{", "[]", "null", "{\"CodeSources\":5,\"TotalCount\":3}",
		"{\"CodeSources\":[1,\"x\",null,{\"DisplayName\":\"noid\"},{\"CodeSourceId\":7}],"
		"\"TotalCount\":\"x\"}",
		"{\"CodeSources\":[{\"CodeSourceId\":\"1\",\"DisplayName\":5,\"CodeRepo\":[]}],"
		"\"TotalCount\":99999999999999999999}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct prov_page pg = {0};
		int r = pai_parse_codesources(bad[i], strlen(bad[i]), 0, &pg);

		assert_true(r == 0 || r == -EIO);
		for (size_t k = 0; k < pg.n; k++) {
			assert_non_null(pg.recs[k].id);
			assert_non_null(pg.recs[k].name);
		}
		prov_page_free(&pg);
	}
}

static void test_volc_parse(void **state)
{
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(volc_parse_resources(volc_body, strlen(volc_body), 0, &pg), 0);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.recs[0].id, "1bfc");
	assert_string_equal(pg.recs[0].url, "https://gitee.com/x");
	assert_null(pg.recs[0].branch);
	assert_int_equal(pg.recs[0].ctime, 1682654064);
	for (const char *s = "0f68secret\0pwdsecret\0aksecret\0sksecret\0"; *s; s += strlen(s) + 1)
		assert_null(strstr(pg.recs[0].meta, s));
	prov_page_free(&pg);
	assert_int_equal(volc_parse_resources("{\"Result\":7}", 12, 0, &pg), -EIO);
	prov_page_free(&pg);
}

static void test_codeup_parse(void **state)
{
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(codeup_parse_list(codeup_groups, strlen(codeup_groups), "org", 0, 0, &pg),
			 0);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.recs[0].id, "36932");
	assert_string_equal(pg.recs[0].name, "test-group");
	assert_string_equal(pg.recs[0].url, "https://codeup.example/org/test-group");
	assert_true(pg.recs[0].container);
	prov_page_free(&pg);
	assert_int_equal(codeup_parse_list("{\"errorCode\":\"x\"}", 17, "org", 1, 0, &pg), -EIO);
	prov_page_free(&pg);
}

static void test_record_copy_is_deep(void **state)
{
	struct prov_record a = {0}, b;

	(void)state;
	a.id = strdup("1");
	a.name = malloc(3);
	memcpy(a.name, "x\0y", 3);
	a.name_len = 3;
	a.url = strdup("u");
	assert_int_equal(prov_record_copy(&b, &a), 0);
	prov_record_free(&a);
	assert_string_equal(b.id, "1");
	assert_memory_equal(b.name, "x\0y", 3);
	assert_string_equal(b.url, "u");
	assert_null(b.meta);
	prov_record_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_meta_redacts_at_any_depth),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_pai_parse),
		cmocka_unit_test(test_pai_hostile),
		cmocka_unit_test(test_volc_parse),
		cmocka_unit_test(test_codeup_parse),
		cmocka_unit_test(test_record_copy_is_deep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
