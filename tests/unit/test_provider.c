/* Unit tests of record mapping: meta.json redaction, times, paging arithmetic, and each
 * provider's parser and error classifier on real-shaped and hostile bodies (the seed
 * documents' examples restated as literals). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "clock.h"
#include "provider.h"
#include "providers/providers_i.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* PAI ListCodeSources, the seed's success example (plus a second item with a NUL in its
 * name, an empty branch and an empty token). */
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

static const char pai_workspaces[] =
    "{\"Workspaces\":[{\"WorkspaceId\":\"1234\",\"WorkspaceName\":\"ws\",\"Status\":\"ENABLED\","
    "\"GmtCreateTime\":\"2021-01-18T12:52:15Z\"},{\"WorkspaceName\":\"no id\"},"
    "{\"WorkspaceId\":\"5678\"}],\"TotalCount\":3,\"RequestId\":\"r\"}";

/* Volcengine ListResources, the seed's example (secrets added to its Git configuration). */
static const char volc_body[] =
    "{\"ResponseMetadata\":{\"RequestId\":\"2024\",\"Action\":\"ListResources\","
    "\"Version\":\"2023-05-01\",\"Service\":\"cp\",\"Region\":\"cn-beijing\"},"
    "\"Result\":{\"Items\":[{\"Id\":\"1bfc\",\"WorkspaceId\":\"000c\",\"Name\":\"test\","
    "\"Type\":\"Gitee\",\"Configuration\":{\"Git\":{\"Url\":\"https://gitee.com/x\","
    "\"UserToken\":\"0f68secret\",\"Password\":\"pwdsecret\",\"AccessKey\":\"aksecret\","
    "\"SecretKey\":\"sksecret\",\"UserName\":\"user\",\"CloneDepth\":0}},"
    "\"CreateTime\":\"2023-04-28T11:54:24+08:00\",\"UpdateTime\":\"2023-05-08T22:07:26+08:00\","
    "\"Creator\":{\"AccountId\":245,\"UserId\":0}}],"
    "\"PageNumber\":1,\"PageSize\":10,\"TotalCount\":1}}";

static const char volc_workspaces[] =
    "{\"ResponseMetadata\":{\"RequestId\":\"r\"},\"Result\":{\"Items\":[{\"Id\":\"ws-1\","
    "\"Name\":\"one\",\"CreateTime\":\"2021-07-19T12:21:31Z\"},{\"Name\":\"no id\"},7],"
    "\"TotalCount\":3}}";

/* Codeup ListNamespaces, the seed's example plus a sub-group the top filter drops. */
static const char codeup_groups[] =
    "[{\"avatarUrl\":\"https://x/a\",\"fullPath\":\"org/test-group\",\"id\":36932,"
    "\"kind\":\"group\",\"name\":\"test-group-name\",\"nameWithNamespace\":\"org/test-group-name\","
    "\"parentId\":20966,\"path\":\"test-group\",\"pathWithNamespace\":\"org/test-group\","
    "\"visibility\":\"private\",\"webUrl\":\"https://codeup.example/org/test-group\"},"
    "{\"fullPath\":\"org/test-group/sub\",\"id\":36933,\"path\":\"sub\",\"webUrl\":\"w\"}]";

static const char codeup_repos[] =
    "[{\"id\":1,\"path\":\"top\",\"pathWithNamespace\":\"org/top\","
    "\"httpUrlToRepo\":\"https://codeup/org/top.git\",\"defaultBranch\":\"main\","
    "\"createdAt\":\"2024-01-01T00:00:00.000+08:00\",\"lastActivityAt\":\"2024-01-02T00:00:00Z\"},"
    "{\"id\":2,\"path\":\"in-group\",\"pathWithNamespace\":\"org/test-group/in-group\","
    "\"namespaceId\":36932,\"webUrl\":\"https://codeup/org/test-group/in-group\"},"
    "{\"id\":3,\"path\":\"deeper\",\"pathWithNamespace\":\"org/test-group/sub/deeper\"},"
    "{\"id\":\"4\",\"name\":\"by-ns-id\",\"namespaceId\":\"36932\"},"
    "{\"path\":\"no-id\",\"pathWithNamespace\":\"org/no-id\"},"
    "{\"id\":5,\"pathWithNamespace\":\"org/no-path\"},null,[1]]";

static void free_meta(char *m)
{
	free(m);
}

static void test_meta_redacts_at_any_depth(void **state)
{
	static const char src[] =
	    "{\"a\":\"keep/slash\",\"UserToken\":\"s1\",\"n\":{\"Password\":\"s2\",\"list\":[{"
	    "\"SecretKey\":\"s3\"},{\"privateKEY\":\"s4\"}]},\"AccessKey\":\"\","
	    "\"CodeRepoAccessToken\":null,\"Credentials\":{\"x\":\"s5\"},\"emptyCredential\":{},"
	    "\"passwd\":12345,\"ClientSecret\":true,\"TokenList\":[],"
	    "\"a_very_long_key_name_padding_padding_padding_padding_padding_padding_padding_"
	    "padding_padding_padding_padding_padding_padding_padding_token\":\"s6\"}";
	struct json_object *o = json_tokener_parse(src);
	char *orig = strdup(json_object_to_json_string(o)), *m = redact_meta_json(o, 0);

	(void)state;
	assert_non_null(m);
	for (const char *s = "s1\0s2\0s3\0s4\0s5\0s6\0"
			     "12345\0true\0";
	     *s; s += strlen(s) + 1)
		assert_null(strstr(m, s));
	assert_non_null(strstr(m, "\"UserToken\": \"******\""));
	assert_non_null(strstr(m, "\"Credentials\": \"******\""));
	assert_non_null(strstr(m, "\"a\": \"keep/slash\"")); /* no \/ escaping */
	assert_non_null(strstr(m, "\"AccessKey\": \"\""));   /* empty stays empty */
	assert_non_null(strstr(m, "\"CodeRepoAccessToken\": null"));
	assert_non_null(strstr(m, "\"emptyCredential\": {"));
	assert_non_null(strstr(m, "\"TokenList\": ["));
	assert_null(strchr(m, '\t'));
	assert_int_equal(m[strlen(m) - 1], '\n');
	assert_int_not_equal(m[strlen(m) - 2], '\n');
	free_meta(m);
	/* The caller's object is as it was: what was redacted is put back. */
	assert_string_equal(json_object_get_string(json_object_object_get(o, "UserToken")), "s1");
	assert_string_equal(json_object_to_json_string(o), orig);
	free(orig);
	json_object_put(o);
}

/* Keys that only start like a secret word stay, and with nothing to redact the item
 * prints as it is. */
static void test_meta_near_misses_are_kept(void **state)
{
	struct json_object *o = json_tokener_parse(
	    "{\"Tokamak\":\"v1\",\"passive\":\"v2\",\"SECRE\":\"v3\",\"accessKe\":\"v4\","
	    "\"CodeRepoAccessToken\":\"\",\"n\":[{\"creden\":\"v5\"}]}");
	char *m = redact_meta_json(o, 0);

	(void)state;
	assert_non_null(m);
	for (const char *s = "v1\0v2\0v3\0v4\0v5\0"; *s; s += strlen(s) + 1)
		assert_non_null(strstr(m, s));
	assert_null(strstr(m, "******"));
	assert_non_null(strstr(m, "\"CodeRepoAccessToken\": \"\""));
	free_meta(m);
	json_object_put(o);
}

static void test_meta_show_secrets(void **state)
{
	struct json_object *o =
	    json_tokener_parse("{\"n\":{\"Password\":\"s2\"},\"Token\":\"s1\"}");
	char *m = redact_meta_json(o, 1);

	(void)state;
	assert_non_null(strstr(m, "\"s1\""));
	assert_non_null(strstr(m, "\"s2\""));
	assert_null(strstr(m, "******"));
	free_meta(m);
	json_object_put(o);
	assert_null(redact_meta_json(NULL, 0));
}

/* Keys are compared with case, '_' and '-' ignored, against the documented words. */
static void test_meta_normalised_keys(void **state)
{
	struct json_object *o = json_tokener_parse(
	    "{\"private_key\":\"s1\",\"ApiKey\":\"s2\",\"Authorization\":\"s3\",\"ssh_pass\":"
	    "\"s4\","
	    "\"Private-Key\":\"s5\",\"X_API_KEY\":\"s6\",\"db_pwd\":\"s7\",\"Pass\":\"s8\","
	    "\"session-cookie\":\"s9\",\"PassPhrase\":\"s10\",\"pass_word\":\"s11\","
	    "\"passive\":\"k1\",\"Passage\":\"k2\",\"author\":\"k3\",\"keyboard\":\"k4\","
	    "\"api\":\"k5\",\"private\":\"k6\"}");
	char *m = redact_meta_json(o, 0);
	char want[64];

	(void)state;
	assert_non_null(m);
	for (int i = 1; i <= 11; i++) {
		snprintf(want, sizeof(want), "\"s%d\"", i);
		if (strstr(m, want))
			fail_msg("%s shows in %s", want, m);
	}
	for (int i = 1; i <= 6; i++) {
		snprintf(want, sizeof(want), "\"k%d\"", i);
		assert_non_null(strstr(m, want));
	}
	assert_non_null(strstr(m, "\"private_key\": \"******\""));
	assert_non_null(strstr(m, "\"ssh_pass\": \"******\""));
	free_meta(m);
	json_object_put(o);
}

/* A URL's password is a secret wherever the URL stands; the rest of it stays. */
static void test_meta_url_passwords(void **state)
{
	struct json_object *o = json_tokener_parse(
	    "{\"CodeRepo\":\"https://oauth2:ghp_s1@github.com/x.git\","
	    "\"list\":[\"http://u:s2@h:8080/p?q=a@b\",\"ssh://git@github.com/x.git\"],"
	    "\"n\":{\"mirror\":\"git+https://:s3@example.com/r\"},"
	    "\"mail\":\"a:b@c.d\",\"web\":\"https://h/p?x=u:v@w\",\"plain\":\"https://u@h/x\"}");
	/* Taken before: the redaction must leave the caller's strings where they are. */
	const char *repo = json_object_get_string(json_object_object_get(o, "CodeRepo"));
	char *m = redact_meta_json(o, 0), *shown;

	(void)state;
	assert_non_null(m);
	assert_string_equal(repo, "https://oauth2:ghp_s1@github.com/x.git");
	assert_null(strstr(m, "s1"));
	assert_null(strstr(m, "s2"));
	assert_null(strstr(m, "s3"));
	assert_non_null(strstr(m, "\"https://oauth2:******@github.com/x.git\""));
	assert_non_null(strstr(m, "\"http://u:******@h:8080/p?q=a@b\""));
	assert_non_null(strstr(m, "\"ssh://git@github.com/x.git\""));
	assert_non_null(strstr(m, "\"git+https://:******@example.com/r\""));
	assert_non_null(strstr(m, "\"a:b@c.d\""));	       /* no scheme: no URL */
	assert_non_null(strstr(m, "\"https://h/p?x=u:v@w\"")); /* '@' past the host */
	assert_non_null(strstr(m, "\"https://u@h/x\""));
	free_meta(m);
	shown = redact_meta_json(o, 1);
	assert_non_null(strstr(shown, "ghp_s1"));
	free_meta(shown);
	/* The caller's value is untouched. */
	assert_string_equal(json_object_get_string(json_object_object_get(o, "CodeRepo")),
			    "https://oauth2:ghp_s1@github.com/x.git");
	json_object_put(o);
}

/* json-c cuts a key at a NUL: "x\u0000token" would print as "x", unredacted. Such members
 * go; a NUL in a value stays, and an escaped backslash before "u0000" is text. */
static void test_json_nul_in_keys(void **state)
{
	static const char body[] =
	    "{\"x\\u0000token\":\"s1\",\"Password\\u0000\":\"s2\",\"x\":\"kept\","
	    "\"v\":\"a\\u0000b\",\"t\":\"\\\\u0000\",\"m\":\"\\ufdd0\","
	    "\"n\":[{\"k\\u0000\":1,\"ok\":\"\\u0000\"}]}";
	struct json_object *o = provjson_parse(body, strlen(body)), *v;
	char *m;

	(void)state;
	assert_non_null(o);
	assert_int_equal(json_object_object_length(o), 5);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "x")), "kept");
	v = json_object_object_get(o, "v");
	assert_int_equal(json_object_get_string_len(v), 3);
	assert_memory_equal(json_object_get_string(v), "a\0b", 3);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "t")), "\\u0000");
	assert_string_equal(json_object_get_string(json_object_object_get(o, "m")),
			    "\xef\xb7\x90"); /* a genuine U+FDD0 is no marker */
	v = json_object_array_get_idx(json_object_object_get(o, "n"), 0);
	assert_int_equal(json_object_object_length(v), 1);
	assert_int_equal(json_object_get_string_len(json_object_object_get(v, "ok")), 1);
	m = redact_meta_json(o, 0);
	assert_null(strstr(m, "s1"));
	assert_null(strstr(m, "s2"));
	free_meta(m);
	json_object_put(o);
}

/* A string literal and its length, NUL bytes inside included. */
#define LIT(s) s, sizeof(s) - 1

static void check_url(const char *s, size_t len, int show, const char *want)
{
	char *out = (char *)"unset";

	assert_int_equal(redact_url(s, len, "CodeRepo", "id-1", show, &out), 0);
	if (!want)
		assert_null(out);
	else
		assert_string_equal(out, want);
	free(out);
}

static void test_url_file(void **state)
{
	(void)state;
	check_url(NULL, 0, 0, NULL);
	check_url(LIT(""), 0, NULL);
	check_url(LIT("--upload-pack=touch PWNED"), 0, NULL);
	check_url(LIT("-"), 0, NULL);
	check_url(LIT("https://h/x\ny"), 0, NULL);
	check_url(LIT("https://h/x\0--upload-pack=x"), 0, NULL); /* never cut at the NUL */
	check_url(LIT("https://h/x\r"), 0, NULL);
	check_url(LIT("https://h/\x7f"), 0, NULL);
	check_url(LIT("https://oauth2:ghp_x@github.com/x.git"), 0,
		  "https://oauth2@github.com/x.git");
	check_url(LIT("https://oauth2:ghp_x@github.com/x.git"), 1,
		  "https://oauth2:ghp_x@github.com/x.git");
	check_url(LIT("https://:tok@h/x"), 0, "https://h/x");
	check_url(LIT("https://u:p@h:8443/x?y=1@2"), 0, "https://u@h:8443/x?y=1@2");
	check_url(LIT("https://u@h/x"), 0, "https://u@h/x");
	check_url(LIT("git@github.com:x/y.git"), 0, "git@github.com:x/y.git");
	check_url(LIT("https://h/a b"), 0, "https://h/a b");
	check_url(LIT("https://\xe4\xb8\xad/x"), 0, "https://\xe4\xb8\xad/x");
}

/* A hostile clone URL gives no url file; meta.json still shows what the cloud said. */
static void test_pai_unusable_urls(void **state)
{
	static const char body[] =
	    "{\"CodeSources\":[{\"CodeSourceId\":\"1\",\"CodeRepo\":\"--upload-pack=touch PWNED\"},"
	    "{\"CodeSourceId\":\"2\",\"CodeRepo\":\"https://h/x\\u0000--upload-pack=y\"},"
	    "{\"CodeSourceId\":\"3\",\"CodeRepo\":\"https://h/x\\nhttps://evil/\"},"
	    "{\"CodeSourceId\":\"4\",\"CodeRepo\":\"https://t:tok@h/ok.git\"}],\"TotalCount\":4}";
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(pai_parse_codesources(body, strlen(body), 0, &pg), 0);
	assert_int_equal(pg.n, 4);
	assert_null(pg.recs[0].url);
	assert_null(pg.recs[1].url);
	assert_null(pg.recs[2].url);
	assert_string_equal(pg.recs[3].url, "https://t@h/ok.git");
	assert_non_null(strstr(pg.recs[0].meta, "\"--upload-pack=touch PWNED\""));
	assert_non_null(strstr(pg.recs[1].meta, "\"https://h/x\\u0000--upload-pack=y\""));
	assert_non_null(strstr(pg.recs[2].meta, "\"https://h/x\\nhttps://evil/\""));
	assert_non_null(strstr(pg.recs[3].meta, "\"https://t:******@h/ok.git\""));
	prov_page_free(&pg);
}

static void test_times(void **state)
{
	static const struct {
		const char *s;
		int64_t t;
	} good[] = {
	    {"2021-01-18T12:52:15Z", 1610974335},
	    {"2021-01-18T12:52:15", 1610974335},
	    {"2021-01-18T20:52:15+08:00", 1610974335},
	    {"2021-01-18T20:52:15+0800", 1610974335},
	    {"2021-01-18T07:22:15-05:30", 1610974335},
	    {"2021-01-18T12:52:15.123456Z", 1610974335},
	    {"2023-04-28T11:54:24+08:00", 1682654064},
	    {"2024-01-01T00:00:00.000+08:00", 1704038400},
	    /* Past the zero-padded form every cloud writes, strptime's rules: fewer digits, a
	     * leap second, a day the month lacks (it rolls over). */
	    {"2021-1-18T12:52:15Z", 1610974335},
	    {"2021-01-18T2:2:5Z", 1610935325},
	    {"2021-01-18T12:52:60Z", 1610974380},
	    {"2021-02-29T00:00:00Z", 1614556800},
	};
	static const char *const bad[] = {
	    "yesterday",
	    "",
	    "2021-01-18",
	    "2021-01-18T12:52",
	    "2021-13-18T12:52:15Z",
	    "2021-01-18T12:52:15+99:00",
	    "2021-01-18T12:52:15+08:00junk",
	    "2021-01-18T12:52:15+",
	    "2021-01-18T12:52:15+0",
	    "2021-01-18T12:52:15+08:",
	    "2021-01-18T12:52:15Zz",
	    "2021-01-18T12:52:15 ",
	    " 2021-01-18T12:52:15Z",
	    "-2021-01-18T12:52:15Z",
	    "2021-01-18T12:52:15.+08:00x",
	    "2021-00-18T12:52:15Z",
	    "2021-01-32T12:52:15Z",
	    "2021-01-18T24:52:15Z",
	    "2021-01-18T12:60:15Z",
	    "2021-01-18T12:52:62Z",
	    "2021-01-18 12:52:15Z",
	    "2021-01-18T12-52:15Z",
	};

	(void)state;
	for (size_t i = 0; i < LEN(good); i++)
		assert_int_equal(provjson_time(good[i].s), good[i].t);
	for (size_t i = 0; i < LEN(bad); i++)
		assert_int_equal(provjson_time(bad[i]), 0);
	assert_int_equal(provjson_time(NULL), 0);
}

/* n fake records added to pg, then provider_page_done as a provider calls it. */
static void page_of(struct prov_page *pg, long page, long asked, long total, size_t n)
{
	size_t before = pg->n;

	pg->total = total;
	for (size_t i = 0; i < n; i++) {
		struct prov_record r = {0};

		assert_int_equal(prov_page_add(pg, &r), 0);
	}
	provider_page_done(pg, page, asked, before);
}

static void test_page_done(void **state)
{
	struct prov_page pg = {0};

	(void)state;
	page_of(&pg, 1, 100, 250, 100); /* full first page */
	assert_int_equal(pg.page_size, 100);
	assert_false(pg.last);
	prov_page_free(&pg);
	page_of(&pg, 3, 100, 250, 50); /* the honest last page */
	assert_int_equal(pg.page_size, 100);
	assert_true(pg.last);
	prov_page_free(&pg);
	page_of(&pg, 1, 100, 300, 50); /* the server pages by 50 */
	assert_int_equal(pg.page_size, 50);
	assert_false(pg.last);
	page_of(&pg, 2, 100, 300, 50); /* a look-up loop remembers it */
	assert_int_equal(pg.page_size, 50);
	assert_false(pg.last);
	page_of(&pg, 6, 100, 300, 50);
	assert_true(pg.last);
	prov_page_free(&pg);
	page_of(&pg, 2, 100, 150, 50); /* a fresh page 2 that ends the listing at our size */
	assert_int_equal(pg.page_size, 100);
	assert_true(pg.last);
	prov_page_free(&pg);
	page_of(&pg, 2, 100, 300, 50); /* a fresh page 2 short while more exist beyond it */
	assert_int_equal(pg.page_size, 50);
	assert_false(pg.last);
	prov_page_free(&pg);
	page_of(&pg, 1, 100, 0, 0);
	assert_true(pg.last);
	prov_page_free(&pg);
	page_of(&pg, 4, 100, 9999, 0); /* an empty page ends it whatever the total says */
	assert_true(pg.last);
	prov_page_free(&pg);
	page_of(&pg, 1, 100, -1, 100); /* no total: a full page may have more */
	assert_false(pg.last);
	prov_page_free(&pg);
	page_of(&pg, 1, 100, -1, 7);
	assert_true(pg.last);
	prov_page_free(&pg);
}

static void test_json_parse(void **state)
{
	static const char *const bad[] = {"", "{", "{} x", "{}{}", "[1,", "nul", "\"x"};
	struct json_object *o;

	(void)state;
	for (size_t i = 0; i < LEN(bad); i++)
		assert_null(provjson_parse(bad[i], strlen(bad[i])));
	o = provjson_parse("{\"a\":1} \n", 9);
	assert_true(json_object_is_type(o, json_type_object));
	json_object_put(o);
	o = provjson_parse("{\"a\":1}garbage", 7); /* len bounds what is read */
	assert_non_null(o);
	json_object_put(o);
	assert_null(provjson_parse(NULL, 0));
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
	assert_int_equal(pg.recs[0].mtime, 1611060735);
	assert_false(pg.recs[0].container);
	assert_string_equal(pg.recs[0].kind_name, "code_source");
	assert_null(strstr(pg.recs[0].meta, "tok-secret"));
	assert_non_null(strstr(pg.recs[0].meta, "\"CodeRepoAccessToken\": \"******\""));
	assert_non_null(strstr(pg.recs[0].meta, "\"MountPath\": \"/root/code/\""));
	assert_int_equal(pg.recs[1].name_len, 3); /* the NUL inside the name survives */
	assert_memory_equal(pg.recs[1].name, "a\0b", 3);
	assert_null(pg.recs[1].branch);
	assert_non_null(strstr(pg.recs[1].meta, "\"CodeRepoAccessToken\": \"\""));
	assert_int_equal(pg.recs[1].ctime, 0);
	prov_page_free(&pg);
	assert_int_equal(pai_parse_codesources(pai_body, strlen(pai_body), 1, &pg), 0);
	assert_non_null(strstr(pg.recs[0].meta, "tok-secret"));
	prov_page_free(&pg);
}

static void test_pai_workspaces(void **state)
{
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(pai_parse_workspaces(pai_workspaces, strlen(pai_workspaces), &pg), 0);
	assert_int_equal(pg.n, 2);
	assert_int_equal(pg.total, 3);
	assert_string_equal(pg.recs[0].id, "1234");
	assert_string_equal(pg.recs[0].name, "1234");
	assert_string_equal(pg.recs[0].label, "ws"); /* WorkspaceName: the link beside it */
	assert_int_equal(pg.recs[0].label_len, 2);
	assert_true(pg.recs[0].container);
	assert_string_equal(pg.recs[0].kind_name, "workspace");
	assert_null(pg.recs[0].meta);
	assert_null(pg.recs[0].url);
	assert_string_equal(pg.recs[1].id, "5678");
	assert_null(pg.recs[1].label);
	prov_page_free(&pg);
}

struct hostile {
	const char *body;
	int r;
	size_t n;
};

/* Each body through parse: its result, as many records as said when it succeeds, each with
 * a name and no url (and with an id and a meta.json too when whole is set). */
static void parse_hostile(int (*parse)(const char *, size_t, int, struct prov_page *),
			  const struct hostile *cases, size_t ncases, int whole)
{
	for (size_t i = 0; i < ncases; i++) {
		struct prov_page pg = {0};
		int r = parse(cases[i].body, strlen(cases[i].body), 0, &pg);

		assert_int_equal(r, cases[i].r);
		if (r == 0)
			assert_int_equal(pg.n, cases[i].n);
		for (size_t k = 0; k < pg.n; k++) {
			if (whole)
				assert_non_null(pg.recs[k].id);
			assert_non_null(pg.recs[k].name);
			assert_null(pg.recs[k].url); /* none is a string, or it is empty */
			if (whole)
				assert_non_null(pg.recs[k].meta);
		}
		prov_page_free(&pg);
	}
}

static void test_pai_hostile(void **state)
{
	static const struct hostile cases[] = {
	    {"", -EIO, 0},
	    {"{", -EIO, 0},
	    {"[]", -EIO, 0},
	    {"null", -EIO, 0},
	    {"\"CodeSources\"", -EIO, 0},
	    {"<html>502 Bad Gateway</html>", -EIO, 0},
	    {"{\"CodeSources\":5,\"TotalCount\":3}", -EIO, 0},
	    {"{\"CodeSources\":{},\"TotalCount\":0}", -EIO, 0},
	    {"{\"TotalCount\":3}", -EIO, 0},
	    {"{\"TotalCount\":0,\"RequestId\":\"r\"}", 0, 0},
	    {"{\"CodeSources\":[],\"TotalCount\":0}", 0, 0},
	    {"{\"CodeSources\":[{\"CodeSourceId\":\"1\"}],\"TotalCount\":1} trailing", -EIO, 0},
	    {"{\"CodeSources\":[{\"CodeSourceId\":\"1\"},", -EIO, 0},
	    {"{\"CodeSources\":[1,\"x\",null,[],{\"DisplayName\":\"noid\"},{\"CodeSourceId\":7},"
	     "{\"CodeSourceId\":\"\"},{\"CodeSourceId\":null}],\"TotalCount\":\"x\"}",
	     0, 0},
	    {"{\"CodeSources\":[{\"CodeSourceId\":\"1\",\"DisplayName\":5,\"CodeRepo\":[],"
	     "\"CodeBranch\":{},\"GmtCreateTime\":1e400,\"GmtModifyTime\":\"2021\"}],"
	     "\"TotalCount\":99999999999999999999}",
	     0, 1},
	    {"{\"CodeSources\":[{\"CodeSourceId\":\"1\"}],\"TotalCount\":-5}", 0, 1},
	    {"{\"CodeSources\":[{\"CodeSourceId\":\"1\",\"CodeSourceId\":\"2\"}],\"TotalCount\":1}",
	     0, 1},
	};

	(void)state;
	parse_hostile(pai_parse_codesources, cases, LEN(cases), 1);
}

static void test_pai_hostile_fields(void **state)
{
	static const char body[] =
	    "{\"CodeSources\":[{\"CodeSourceId\":\"1\",\"DisplayName\":5,\"CodeRepo\":[],"
	    "\"CodeBranch\":{}}],\"TotalCount\":-5}";
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(pai_parse_codesources(body, strlen(body), 0, &pg), 0);
	assert_string_equal(pg.recs[0].name, "1"); /* not a string: named by its id */
	assert_null(pg.recs[0].url);
	assert_null(pg.recs[0].branch);
	assert_int_equal(pg.total, -1);
	prov_page_free(&pg);
}

static struct http_response resp_of(long status, const char *body)
{
	struct http_response r = {.status = status, .body = (char *)body};

	r.len = body ? strlen(body) : 0;
	return r;
}

/* An answer's status and error code (NULL: a body that holds none), and the errno it means. */
struct error_case {
	long status;
	const char *code;
	int r;
};

/* Each case through classify, its code between pre and post, else the body other. */
static void classify_errors(int (*classify)(long, const char *, size_t), const char *pre,
			    const char *post, const char *other, const struct error_case *cases,
			    size_t ncases)
{
	char body[256];

	for (size_t i = 0; i < ncases; i++) {
		if (cases[i].code)
			snprintf(body, sizeof(body), "%s%s%s", pre, cases[i].code, post);
		else
			snprintf(body, sizeof(body), "%s", other);
		assert_int_equal(classify(cases[i].status, body, strlen(body)), cases[i].r);
	}
}

/* An answer, and whether it is worth another try. */
struct verdict_case {
	long status;
	const char *body;
	enum http_verdict v;
};

static void classify_verdicts(enum http_verdict (*classify)(const struct http_response *, void *),
			      const struct verdict_case *cases, size_t ncases)
{
	for (size_t i = 0; i < ncases; i++) {
		struct http_response r = resp_of(cases[i].status, cases[i].body);

		assert_int_equal(classify(&r, NULL), cases[i].v);
	}
}

static void test_pai_errors(void **state)
{
	static const struct error_case cases[] = {
	    {400, "SignatureDoesNotMatch", -EACCES},
	    {400, "IncompleteSignature", -EACCES},
	    {404, "InvalidAccessKeyId.NotFound", -EACCES},
	    {400, "InvalidAccessKeyId.Inactive", -EACCES},
	    {400, "InvalidSecurityToken.Expired", -EACCES},
	    {403, "Forbidden.RAM", -EACCES},
	    {400, "NoPermission", -EACCES},
	    {401, "Whatever", -EACCES},
	    {403, NULL, -EACCES},
	    {400, "InvalidTimeStamp.Expired", -EIO},
	    {404, "InvalidApi.NotFound", -EIO},
	    {404, NULL, -EIO},
	    {500, "InternalError", -EIO},
	    {400, "SignatureNonceUsed", -EIO},
	};

	(void)state;
	classify_errors(pai_classify_error, "{\"RequestId\":\"r\",\"Code\":\"",
			"\",\"Message\":\"m\"}", "not json", cases, LEN(cases));
	assert_int_equal(pai_classify_error(400, NULL, 0), -EIO);
}

static void test_pai_retry(void **state)
{
	static const struct verdict_case cases[] = {
	    {400, "{\"Code\":\"Throttling.User\",\"Message\":\"Request was denied\"}", HTTP_RETRY},
	    {400, "{\"Code\":\"Throttling\"}", HTTP_RETRY},
	    {403, "{\"Code\":\"Throttling.Api\"}", HTTP_RETRY},
	    {400, "{\"Code\":\"ServiceUnavailable\"}", HTTP_RETRY},
	    {429, "", HTTP_RETRY},
	    {503, NULL, HTTP_RETRY},
	    {400, "{\"Code\":\"SignatureDoesNotMatch\"}", HTTP_DONE},
	    {400, "{\"Code\":5}", HTTP_DONE},
	    {400, "{\"Code\":\"Throttling.User\"", HTTP_DONE},
	    {200, "{\"Code\":\"Throttling\"}", HTTP_DONE},
	};

	(void)state;
	classify_verdicts(pai_classify, cases, LEN(cases));
}

static void test_volc_parse(void **state)
{
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(volc_parse_resources(volc_body, strlen(volc_body), 0, &pg), 0);
	assert_int_equal(pg.n, 1);
	assert_int_equal(pg.total, 1);
	assert_string_equal(pg.recs[0].id, "1bfc");
	assert_string_equal(pg.recs[0].name, "test");
	assert_string_equal(pg.recs[0].url, "https://gitee.com/x");
	assert_null(pg.recs[0].branch);
	assert_string_equal(pg.recs[0].kind_name, "code_source");
	assert_int_equal(pg.recs[0].ctime, 1682654064);
	assert_int_equal(pg.recs[0].mtime, 1683554846);
	for (const char *s = "0f68secret\0pwdsecret\0aksecret\0sksecret\0"; *s; s += strlen(s) + 1)
		assert_null(strstr(pg.recs[0].meta, s));
	for (const char *s = "UserToken\0Password\0AccessKey\0SecretKey\0"; *s; s += strlen(s) + 1)
		assert_non_null(strstr(pg.recs[0].meta, s)); /* the keys stay */
	assert_non_null(strstr(pg.recs[0].meta, "\"UserName\": \"user\""));
	assert_non_null(strstr(pg.recs[0].meta, "\"AccountId\": 245"));
	prov_page_free(&pg);
}

static void test_volc_workspaces(void **state)
{
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(volc_parse_workspaces(volc_workspaces, strlen(volc_workspaces), &pg), 0);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.recs[0].id, "ws-1");
	assert_string_equal(pg.recs[0].name, "ws-1");
	assert_string_equal(pg.recs[0].label, "one");
	assert_true(pg.recs[0].container);
	assert_string_equal(pg.recs[0].kind_name, "workspace");
	assert_int_equal(pg.total, 3);
	prov_page_free(&pg);
}

static void test_volc_hostile(void **state)
{
	static const struct hostile cases[] = {
	    {"", -EIO, 0},
	    {"{\"Result\":7}", -EIO, 0},
	    {"{\"Result\":{\"Items\":{}}}", -EIO, 0},
	    {"{\"Result\":{\"TotalCount\":4}}", -EIO, 0},
	    {"{\"Result\":{\"TotalCount\":0}}", 0, 0},
	    {"{\"ResponseMetadata\":{\"Error\":{\"Code\":\"InternalError\"}},\"Result\":{"
	     "\"Items\":[],\"TotalCount\":0}}",
	     -EIO, 0},
	    {"{\"ResponseMetadata\":{\"RequestId\":\"r\"}}", -EIO, 0},
	    {"{\"Result\":{\"Items\":[null,1,\"s\",{},{\"Id\":5},{\"Id\":\"\"},{\"Id\":\"a\","
	     "\"Name\":[],\"Configuration\":{\"Git\":[]}},{\"Id\":\"b\",\"Configuration\":7}],"
	     "\"TotalCount\":\"many\"}}",
	     0, 2},
	    {"{\"Result\":{\"Items\":[{\"Id\":\"a\",\"Name\":\"x\\u0000y\"}],\"TotalCount\":1}",
	     -EIO, 0},
	};

	(void)state;
	parse_hostile(volc_parse_resources, cases, LEN(cases), 0);
}

static void test_volc_errors(void **state)
{
	static const struct error_case cases[] = {
	    {401, "InvalidAccessKey", -EACCES},
	    {401, "SignatureDoesNotMatch", -EACCES},
	    {403, "AccessDenied", -EACCES},
	    {400, "AccessDenied", -EACCES},
	    {400, "InvalidTimestamp", -EIO},
	    {400, "MissingParameter", -EIO},
	    {404, NULL, -EIO},
	    {403, NULL, -EACCES},
	};
	static const struct verdict_case verdicts[] = {
	    {429, "{\"ResponseMetadata\":{\"Error\":{\"Code\":\"FlowLimitExceeded\"}}}",
	     HTTP_RETRY},
	    {400, "{\"ResponseMetadata\":{\"Error\":{\"Code\":\"FlowLimitExceeded\"}}}",
	     HTTP_RETRY},
	    {500, "oops", HTTP_RETRY},
	    {401, "{\"ResponseMetadata\":{\"Error\":{\"Code\":\"InvalidAccessKey\"}}}", HTTP_DONE},
	};

	(void)state;
	classify_errors(volc_classify_error,
			"{\"ResponseMetadata\":{\"RequestId\":\"r\",\"Error\":{\"Code\":\"",
			"\",\"CodeN\":100009,\"Message\":\"m\"}}}", "[]", cases, LEN(cases));
	classify_verdicts(volc_classify, verdicts, LEN(verdicts));
}

static void test_codeup_namespaces(void **state)
{
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(
	    codeup_parse_namespaces(codeup_groups, strlen(codeup_groups), "org", 0, 0, &pg), 0);
	assert_int_equal(pg.n, 2);
	assert_string_equal(pg.recs[0].id, "36932");
	assert_string_equal(pg.recs[0].name, "test-group");
	assert_string_equal(pg.recs[0].url, "https://codeup.example/org/test-group");
	assert_string_equal(pg.recs[0].scope, "org");
	assert_string_equal(pg.recs[0].path, "org/test-group");
	assert_null(pg.recs[0].ancestors); /* listed in the organization: no group above */
	assert_int_equal(pg.recs[0].nancestors, 0);
	assert_true(pg.recs[0].container);
	assert_string_equal(pg.recs[0].kind_name, "group");
	assert_int_equal(pg.recs[0].ctime, 0);
	assert_non_null(strstr(pg.recs[0].meta, "\"visibility\": \"private\""));
	prov_page_free(&pg);
	/* The organization's top: groups whose fullPath has one '/'. */
	assert_int_equal(
	    codeup_parse_namespaces(codeup_groups, strlen(codeup_groups), "org", 1, 0, &pg), 0);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.recs[0].name, "test-group");
	prov_page_free(&pg);
}

static const char *rec_named(const struct prov_page *pg, const char *name)
{
	for (size_t i = 0; i < pg->n; i++)
		if (!strcmp(pg->recs[i].name, name))
			return pg->recs[i].id;
	return NULL;
}

static void test_codeup_repositories(void **state)
{
	struct prov_page pg = {0};
	size_t len = strlen(codeup_repos);

	(void)state;
	/* No group: only org/<repo>. */
	assert_int_equal(codeup_parse_repositories(codeup_repos, len, "org", NULL, NULL, 0, &pg),
			 0);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.recs[0].id, "1");
	assert_string_equal(pg.recs[0].name, "top");
	assert_string_equal(pg.recs[0].url, "https://codeup/org/top.git");
	assert_string_equal(pg.recs[0].branch, "main");
	assert_false(pg.recs[0].incomplete);
	assert_false(pg.recs[0].container);
	assert_string_equal(pg.recs[0].kind_name, "repository");
	assert_string_equal(pg.recs[0].scope, "org");
	assert_null(pg.recs[0].path);
	assert_int_equal(pg.recs[0].ctime, 1704038400);
	assert_int_equal(pg.recs[0].mtime, 1704153600);
	prov_page_free(&pg);
	/* The group by its full path, or by namespaceId where the path is missing. */
	assert_int_equal(
	    codeup_parse_repositories(codeup_repos, len, "org", "org/test-group", "36932", 0, &pg),
	    0);
	assert_int_equal(pg.n, 2);
	assert_string_equal(rec_named(&pg, "in-group"), "2");
	assert_string_equal(rec_named(&pg, "by-ns-id"), "4");
	assert_true(pg.recs[0].incomplete); /* no clone URL or branch in the list */
	assert_null(pg.recs[0].url);
	assert_null(pg.recs[0].branch);
	prov_page_free(&pg);
	assert_int_equal(codeup_parse_repositories(codeup_repos, len, "org", "org/test-group/sub",
						   "36933", 0, &pg),
			 0);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.recs[0].name, "deeper");
	prov_page_free(&pg);
	/* A group whose fullPath is unknown: namespaceId only. */
	assert_int_equal(codeup_parse_repositories(codeup_repos, len, "org", "", "36932", 0, &pg),
			 0);
	assert_int_equal(pg.n, 2);
	prov_page_free(&pg);
}

static void test_codeup_hostile(void **state)
{
	static const struct hostile cases[] = {
	    {"", -EIO, 0},
	    {"{\"errorCode\":\"x\"}", -EIO, 0},
	    {"null", -EIO, 0},
	    {"[", -EIO, 0},
	    {"[{\"id\":1,\"path\":\"a\"}] [", -EIO, 0},
	    {"[]", 0, 0},
	    {"[null,1,\"x\",{},{\"id\":{}},{\"id\":1.5,\"path\":\"p\"},{\"id\":\"\",\"path\":\"p\"}"
	     ","
	     "{\"id\":1,\"path\":7}]",
	     0, 0},
	    {"[{\"id\":18446744073709551615,\"path\":\"big\",\"fullPath\":\"o/big\"},"
	     "{\"id\":-1,\"path\":\"a\\u0000b\",\"fullPath\":[]}]",
	     0, 2},
	};

	(void)state;
	for (size_t i = 0; i < LEN(cases); i++) {
		struct prov_page pg = {0};
		int r =
		    codeup_parse_namespaces(cases[i].body, strlen(cases[i].body), "o", 1, 0, &pg);

		assert_int_equal(r, cases[i].r);
		if (r == 0)
			assert_int_equal(pg.n, cases[i].n);
		prov_page_free(&pg);
		r = codeup_parse_repositories(cases[i].body, strlen(cases[i].body), "o", NULL, NULL,
					      0, &pg);
		assert_int_equal(r, cases[i].r);
		prov_page_free(&pg);
		r = codeup_parse_organizations(cases[i].body, strlen(cases[i].body), &pg);
		assert_int_equal(r, cases[i].r);
		prov_page_free(&pg);
	}
}

/* ListOrganizations, the documented shape: ids as strings (or numbers), names as labels. */
static void test_codeup_organizations(void **state)
{
	static const char body[] =
	    "[{\"id\":\"5f9a\",\"name\":\"Team A\",\"description\":\"\",\"creatorId\":\"u\","
	    "\"defaultRole\":\"member\",\"createdAt\":\"2021-01-18T12:52:15.000+08:00\","
	    "\"updateAt\":\"2021-01-19T12:52:15.000+08:00\"},{\"id\":123,\"name\":\"num\"},"
	    "{\"name\":\"no id\"},{\"id\":\"x\"},{\"id\":\"y\",\"name\":\"\"},"
	    "{\"id\":\"z\",\"name\":\"a\\u0000b\"},{\"id\":\"\",\"name\":\"empty id\"},null,7]";
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(codeup_parse_organizations(body, strlen(body), &pg), 0);
	assert_int_equal(pg.n, 5);
	assert_string_equal(pg.recs[0].id, "5f9a");
	assert_string_equal(pg.recs[0].name, "5f9a"); /* the directory is the id */
	assert_string_equal(pg.recs[0].label, "Team A");
	assert_int_equal(pg.recs[0].ctime, 1610945535);
	assert_true(pg.recs[0].container);
	assert_null(pg.recs[0].url);
	assert_string_equal(pg.recs[1].id, "123");
	assert_string_equal(pg.recs[1].label, "num");
	assert_string_equal(pg.recs[2].id, "x");
	assert_null(pg.recs[2].label);
	assert_null(pg.recs[3].label); /* an empty name is none */
	assert_int_equal(pg.recs[4].label_len, 3);
	assert_memory_equal(pg.recs[4].label, "a\0b", 3);
	prov_page_free(&pg);
	assert_int_equal(codeup_parse_organizations("{}", 2, &pg), -EIO);
	assert_int_equal(codeup_parse_organizations("[", 1, &pg), -EIO);
	assert_int_equal(codeup_parse_organizations("[]", 2, &pg), 0);
	assert_int_equal(pg.n, 0);
}

static int ids_calls;

/* provscope_ids_fn: what a cloud answers for configured ids b, c and an unknown one. */
static int ids_found(struct provider *p, char *const *ids, size_t n, struct prov_page *found)
{
	(void)p;
	ids_calls++;
	assert_int_equal(n, 3);
	assert_string_equal(ids[1], "b");
	assert_int_equal(provscope_add_container(found, "x", 1, "workspace", 5, "ex", 2), 0);
	assert_int_equal(provscope_add_container(found, "b", 1, "workspace", 7, "bee", 3), 0);
	assert_int_equal(provscope_add_container(found, "c", 1, "workspace", 9, NULL, 0), 0);
	return 0;
}

static int ids_fail(struct provider *p, char *const *ids, size_t n, struct prov_page *found)
{
	(void)p, (void)ids, (void)n;
	ids_calls++;
	assert_int_equal(provscope_add_container(found, "a", 1, "workspace", 5, "half", 4), 0);
	return -EIO;
}

/* Configured workspaces are named by one call of the cloud's listing; a failed call leaves
 * them unnamed, never hidden, and uses what came. */
static int ids_stopped(struct provider *p, char *const *ids, size_t n, struct prov_page *found)
{
	(void)p, (void)ids, (void)n, (void)found;
	ids_calls++;
	return -ECANCELED;
}

static int64_t seed_clock;

static int64_t seed_now(void)
{
	return seed_clock;
}

/* Configured workspaces are named by one call of the cloud's listing; a failed call leaves
 * them unnamed, never hidden, and uses what came; a reader that gave up (or a stopping
 * daemon) gets no listing. What the check at mount found names them once, within dir_ttl,
 * with no call. */
static void test_named_scopes(void **state)
{
	char *ids[] = {"a", "b", "c"};
	struct prov_common c = {.scopes = ids, .nscopes = 3, .dir_ttl = 60};
	struct prov_page pg = {0}, seed = {0};

	(void)state;
	ids_calls = 0;
	assert_int_equal(provscope_named(NULL, &c, 2, "workspace", ids_found, &pg), 0);
	assert_int_equal(ids_calls, 1);
	assert_int_equal(pg.n, 3);
	assert_true(pg.last);
	assert_null(pg.recs[0].label);
	assert_int_equal(pg.recs[0].ctime, 0);
	assert_string_equal(pg.recs[1].id, "b");
	assert_string_equal(pg.recs[1].label, "bee");
	assert_int_equal(pg.recs[1].ctime, 7);
	assert_int_equal(pg.recs[1].kind, 2);
	assert_null(pg.recs[2].label);
	prov_page_free(&pg);
	assert_int_equal(provscope_named(NULL, &c, 2, "workspace", ids_fail, &pg), 0);
	assert_int_equal(pg.n, 3);
	assert_string_equal(pg.recs[0].label, "half");
	assert_null(pg.recs[1].label);
	prov_page_free(&pg);
	assert_int_equal(provscope_named(NULL, &c, 2, "workspace", ids_stopped, &pg), -ECANCELED);
	prov_page_free(&pg);

	seed_clock = 1000;
	clock_set_test(seed_now);
	ids_calls = 0;
	assert_int_equal(provscope_add_container(&seed, "c", 1, "workspace", 3, "sea", 3), 0);
	provscope_seed_keep(&c, &seed);
	assert_int_equal(seed.n, 0); /* taken */
	seed_clock += 59;
	assert_int_equal(provscope_named(NULL, &c, 2, "workspace", ids_fail, &pg), 0);
	assert_int_equal(ids_calls, 0);
	assert_string_equal(pg.recs[2].label, "sea");
	prov_page_free(&pg);
	assert_int_equal(provscope_named(NULL, &c, 2, "workspace", ids_found, &pg), 0);
	assert_int_equal(ids_calls, 1); /* used once */
	prov_page_free(&pg);
	assert_int_equal(provscope_add_container(&seed, "c", 1, "workspace", 3, "sea", 3), 0);
	provscope_seed_keep(&c, &seed);
	seed_clock += 60; /* older than a listing may be */
	assert_int_equal(provscope_named(NULL, &c, 2, "workspace", ids_found, &pg), 0);
	assert_int_equal(ids_calls, 2);
	assert_null(pg.recs[2].label);
	prov_page_free(&pg);
	assert_int_equal(provscope_add_container(&seed, "c", 1, "workspace", 3, "sea", 3), 0);
	provscope_seed_keep(&c, &seed);
	provscope_seed_drop(&c); /* SIGHUP */
	assert_null(c.seed);
	clock_set_test(NULL);
}

static void test_codeup_nul_name(void **state)
{
	static const char body[] = "[{\"id\":-1,\"path\":\"a\\u0000b\",\"fullPath\":\"o/x\"}]";
	struct prov_page pg = {0};

	(void)state;
	assert_int_equal(codeup_parse_namespaces(body, strlen(body), "o", 1, 0, &pg), 0);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.recs[0].id, "-1");
	assert_int_equal(pg.recs[0].name_len, 3);
	assert_memory_equal(pg.recs[0].name, "a\0b", 3);
	prov_page_free(&pg);
}

static void test_codeup_errors(void **state)
{
	(void)state;
	assert_int_equal(codeup_classify_error(401, "{\"errorCode\":\"InvalidTokenError\"}", 34),
			 -EACCES);
	assert_int_equal(codeup_classify_error(401, "", 0), -EACCES);
	assert_int_equal(codeup_classify_error(403, "[]", 2), -EACCES);
	assert_int_equal(codeup_classify_error(400, "{\"errorCode\":\"ExpiredTokenError\"}", 33),
			 -EACCES);
	assert_int_equal(codeup_classify_error(400, "{\"errorCode\":\"BadRequest\"}", 26), -EIO);
	assert_int_equal(codeup_classify_error(404, NULL, 0), -EIO);
	assert_int_equal(codeup_classify_error(500, "x", 1), -EIO);
}

/* The ids a check at mount did not find, named in one line; found ones never are. */
static void test_confirm_scopes(void **state)
{
	char *scopes[] = {"1001", "9999", "1002", "777"};
	struct prov_page pg = {0};
	char why[256];

	(void)state;
	assert_int_equal(provscope_add_container(&pg, "1002", 1, "workspace", 0, NULL, 0), 0);
	assert_int_equal(provscope_add_container(&pg, "1001", 1, "workspace", 0, NULL, 0), 0);
	assert_int_equal(provscope_confirm(scopes, 1, &pg, "workspace", why, sizeof(why)), 0);
	assert_int_equal(provscope_confirm(scopes, 3, &pg, "workspace", why, sizeof(why)), -ENOENT);
	assert_string_equal(why, "workspace 9999 not found: no such id, or these credentials "
				 "cannot see it");
	assert_int_equal(provscope_confirm(scopes, 4, &pg, "organization", why, sizeof(why)),
			 -ENOENT);
	assert_string_equal(why, "organizations 9999, 777 not found: no such ids, or these "
				 "credentials cannot see them");
	assert_int_equal(provscope_confirm(scopes, 4, &pg, "workspace", NULL, 0), -ENOENT);
	assert_int_equal(provscope_confirm(scopes, 0, &pg, "workspace", why, sizeof(why)), 0);
	prov_page_free(&pg);
	/* An id "99" is not found by a record "999" nor the other way round. */
	assert_int_equal(provscope_add_container(&pg, "99999", 1, "workspace", 0, NULL, 0), 0);
	assert_int_equal(provscope_confirm(scopes + 1, 1, &pg, "workspace", why, sizeof(why)),
			 -ENOENT);
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
	a.scope = strdup("org");
	a.path = strdup("org/full");
	a.label = malloc(3);
	memcpy(a.label, "n\0m", 3);
	a.label_len = 3;
	a.ancestors = calloc(2, sizeof(*a.ancestors));
	a.ancestors[0] = strdup("10");
	a.ancestors[1] = strdup("11");
	a.nancestors = 2;
	a.ctime = 7;
	a.container = 1;
	assert_int_equal(prov_record_copy(&b, &a), 0);
	prov_record_free(&a);
	assert_null(a.id);
	assert_string_equal(b.id, "1");
	assert_memory_equal(b.name, "x\0y", 3);
	assert_int_equal(b.name_len, 3);
	assert_string_equal(b.url, "u");
	assert_string_equal(b.scope, "org");
	assert_string_equal(b.path, "org/full");
	assert_int_equal(b.label_len, 3);
	assert_memory_equal(b.label, "n\0m", 3);
	assert_int_equal(b.nancestors, 2);
	assert_string_equal(b.ancestors[0], "10");
	assert_string_equal(b.ancestors[1], "11");
	assert_null(b.meta);
	assert_null(b.branch);
	assert_int_equal(b.ctime, 7);
	assert_true(b.container);
	prov_record_free(&b);
}

static void test_page_grows(void **state)
{
	struct prov_page pg = {0};

	(void)state;
	for (int i = 0; i < 1000; i++) {
		struct prov_record r = {0};

		r.id = malloc(16);
		snprintf(r.id, 16, "%d", i);
		assert_int_equal(prov_page_add(&pg, &r), 0);
	}
	assert_int_equal(pg.n, 1000);
	assert_string_equal(pg.recs[999].id, "999");
	prov_page_free(&pg);
	assert_int_equal(pg.n, 0);
	assert_null(pg.recs);
	assert_int_equal(provscope_page((char *[]){"a", "b"}, 2, 3, "workspace", &pg), 0);
	assert_int_equal(pg.n, 2);
	assert_true(pg.last);
	assert_int_equal(pg.total, 2);
	assert_int_equal(pg.recs[1].kind, 3);
	assert_string_equal(pg.recs[1].kind_name, "workspace");
	assert_string_equal(pg.recs[1].name, "b");
	prov_page_free(&pg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_meta_redacts_at_any_depth),
	    cmocka_unit_test(test_meta_normalised_keys),
	    cmocka_unit_test(test_meta_url_passwords),
	    cmocka_unit_test(test_json_nul_in_keys),
	    cmocka_unit_test(test_url_file),
	    cmocka_unit_test(test_pai_unusable_urls),
	    cmocka_unit_test(test_meta_near_misses_are_kept),
	    cmocka_unit_test(test_meta_show_secrets),
	    cmocka_unit_test(test_times),
	    cmocka_unit_test(test_page_done),
	    cmocka_unit_test(test_json_parse),
	    cmocka_unit_test(test_pai_parse),
	    cmocka_unit_test(test_pai_workspaces),
	    cmocka_unit_test(test_pai_hostile),
	    cmocka_unit_test(test_pai_hostile_fields),
	    cmocka_unit_test(test_pai_errors),
	    cmocka_unit_test(test_pai_retry),
	    cmocka_unit_test(test_volc_parse),
	    cmocka_unit_test(test_volc_workspaces),
	    cmocka_unit_test(test_volc_hostile),
	    cmocka_unit_test(test_volc_errors),
	    cmocka_unit_test(test_codeup_namespaces),
	    cmocka_unit_test(test_codeup_repositories),
	    cmocka_unit_test(test_codeup_hostile),
	    cmocka_unit_test(test_codeup_organizations),
	    cmocka_unit_test(test_named_scopes),
	    cmocka_unit_test(test_codeup_nul_name),
	    cmocka_unit_test(test_codeup_errors),
	    cmocka_unit_test(test_confirm_scopes),
	    cmocka_unit_test(test_record_copy_is_deep),
	    cmocka_unit_test(test_page_grows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
