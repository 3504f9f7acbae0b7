/* sign: the vendors' vectors (A1–A4 for ACS3, V1–V2 for Volcengine), restated here. */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "sign.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define A_DATE	     "2024-01-01T00:00:00Z"
#define A_NONCE	     "0123456789abcdef0123456789abcdef"
#define A_SIGNED                                                                                   \
	"host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
#define V_BODY	    "{\"WorkspaceId\":\"ws-123\",\"PageNumber\":1,\"PageSize\":100}"
#define V_BODY_HASH "44d8689c5c2fd23a695926c4e656429aa825a77e1eb4ffd432e980267de1330a"
#define V_CRED	    "HMAC-SHA256 Credential=testak/20240101/cn-beijing/cp/request, "

static const struct sign_creds test_creds = {"testak", "testsecret", NULL};

static void test_sha256_empty(void **state)
{
	char out[65];

	(void)state;
	sign_sha256_hex("", 0, out);
	assert_string_equal(out, EMPTY_SHA256);
	sign_sha256_hex(NULL, 0, out);
	assert_string_equal(out, EMPTY_SHA256);
	sign_sha256_hex(V_BODY, strlen(V_BODY), out);
	assert_string_equal(out, V_BODY_HASH);
}

static void test_acs3_a1(void **state)
{
	static const struct sign_creds c = {"YourAccessKeyId", "YourAccessKeySecret", NULL};
	struct http_request req;

	(void)state;
	assert_int_equal(http_req_init(&req, "POST", "https://ecs.cn-shanghai.aliyuncs.com", "/"),
			 0);
	assert_int_equal(
	    http_req_query(&req, "ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"),
	    0);
	assert_int_equal(http_req_query(&req, "RegionId", "cn-shanghai"), 0);
	assert_int_equal(http_req_header(&req, "x-acs-action", "RunInstances"), 0);
	assert_int_equal(http_req_header(&req, "x-acs-version", "2014-05-26"), 0);
	assert_int_equal(
	    sign_acs3(&req, &c, "2023-10-26T10:22:32Z", "3156853299f313e23d1673dc12e1703d"), 0);
	assert_string_equal(
	    http_req_get_header(&req, "authorization"),
	    "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=" A_SIGNED
	    ",Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0");
	assert_string_equal(http_req_get_header(&req, "x-acs-content-sha256"), EMPTY_SHA256);
	assert_string_equal(http_req_get_header(&req, "x-acs-date"), "2023-10-26T10:22:32Z");
	assert_string_equal(http_req_get_header(&req, "x-acs-signature-nonce"),
			    "3156853299f313e23d1673dc12e1703d");
	assert_null(http_req_get_header(&req, "x-acs-security-token"));
	http_req_free(&req);
}

/* The A2 request: ListCodeSources on workspace 12345. */
static void a2_request(struct http_request *req)
{
	assert_int_equal(http_req_init(req, "GET", "https://aiworkspace.cn-hangzhou.aliyuncs.com",
				       "/api/v1/codesources"),
			 0);
	assert_int_equal(http_req_query(req, "PageNumber", "1"), 0);
	assert_int_equal(http_req_query(req, "PageSize", "100"), 0);
	assert_int_equal(http_req_query(req, "WorkspaceId", "12345"), 0);
	assert_int_equal(http_req_query(req, "SortBy", "GmtCreateTime"), 0);
	assert_int_equal(http_req_query(req, "Order", "ASC"), 0);
	assert_int_equal(http_req_header(req, "x-acs-action", "ListCodeSources"), 0);
	assert_int_equal(http_req_header(req, "x-acs-version", "2021-02-04"), 0);
}

static void test_acs3_a2(void **state)
{
	struct http_request req;

	(void)state;
	a2_request(&req);
	assert_int_equal(sign_acs3(&req, &test_creds, A_DATE, A_NONCE), 0);
	assert_string_equal(
	    http_req_get_header(&req, "Authorization"),
	    "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=" A_SIGNED
	    ",Signature=5aa4acc28dc9fee4c33f4b9e8381dd4d05dc521aaf0eabeb668c2148cef888c3");
	http_req_free(&req);
}

static void test_acs3_a3_sts(void **state)
{
	static const struct sign_creds c = {"testak", "testsecret", "testtoken"};
	struct http_request req;

	(void)state;
	a2_request(&req);
	assert_int_equal(sign_acs3(&req, &c, A_DATE, A_NONCE), 0);
	assert_string_equal(http_req_get_header(&req, "x-acs-security-token"), "testtoken");
	assert_string_equal(
	    http_req_get_header(&req, "Authorization"),
	    "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=host;x-acs-action;"
	    "x-acs-content-sha256;x-acs-date;x-acs-security-token;x-acs-signature-nonce;"
	    "x-acs-version,Signature="
	    "f228841bbb811141bbf43b2c4a2fef1bae7097971e2fd435fbc4fa7475fbd7b0");
	http_req_free(&req);
}

static void test_acs3_a4_encoding(void **state)
{
	struct http_request req;
	char *qs;

	(void)state;
	assert_int_equal(http_req_init(&req, "GET", "https://aiworkspace.cn-hangzhou.aliyuncs.com",
				       "/api/v1/codesources"),
			 0);
	assert_int_equal(http_req_query(&req, "WorkspaceId", "12345"), 0);
	assert_int_equal(http_req_query(&req, "DisplayName", "my repo/\xc3\xa9*~"), 0);
	assert_int_equal(http_req_header(&req, "x-acs-action", "ListCodeSources"), 0);
	assert_int_equal(http_req_header(&req, "x-acs-version", "2021-02-04"), 0);
	qs = http_req_query_string(&req);
	assert_string_equal(qs, "DisplayName=my%20repo%2F%C3%A9%2A~&WorkspaceId=12345");
	free(qs);
	assert_int_equal(sign_acs3(&req, &test_creds, A_DATE, A_NONCE), 0);
	assert_string_equal(
	    http_req_get_header(&req, "Authorization"),
	    "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=" A_SIGNED
	    ",Signature=d3727854dc72360fa41a368a469f083af67b20b15e6e92774fce0866a220f86d");
	http_req_free(&req);
}

/* A retry signs again: headers are replaced, never added twice, and the result is stable. */
static void test_acs3_resign(void **state)
{
	struct http_request req;
	size_t n;

	(void)state;
	a2_request(&req);
	assert_int_equal(sign_acs3(&req, &test_creds, "2023-01-01T00:00:00Z", A_NONCE), 0);
	n = req.nheaders;
	assert_int_equal(sign_acs3(&req, &test_creds, A_DATE, A_NONCE), 0);
	assert_int_equal(req.nheaders, n);
	assert_string_equal(
	    http_req_get_header(&req, "Authorization"),
	    "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=" A_SIGNED
	    ",Signature=5aa4acc28dc9fee4c33f4b9e8381dd4d05dc521aaf0eabeb668c2148cef888c3");
	http_req_free(&req);
}

static int is_lower_hex(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return 0;
	return s[len] == '\0';
}

static void test_acs3_fresh_date_nonce(void **state)
{
	struct http_request req;
	const char *d;
	char first[33];

	(void)state;
	a2_request(&req);
	assert_int_equal(sign_acs3(&req, &test_creds, NULL, NULL), 0);
	d = http_req_get_header(&req, "x-acs-date");
	assert_non_null(d);
	assert_int_equal(strlen(d), 20);
	assert_true(d[4] == '-' && d[7] == '-' && d[10] == 'T' && d[13] == ':' && d[19] == 'Z');
	assert_true(is_lower_hex(http_req_get_header(&req, "x-acs-signature-nonce"), 32));
	strcpy(first, http_req_get_header(&req, "x-acs-signature-nonce"));
	assert_int_equal(sign_acs3(&req, &test_creds, NULL, NULL), 0);
	assert_string_not_equal(http_req_get_header(&req, "x-acs-signature-nonce"), first);
	http_req_free(&req);
}

static void test_acs3_content_type_and_body(void **state)
{
	struct http_request req;
	char hash[65];

	(void)state;
	a2_request(&req);
	assert_int_equal(http_req_header(&req, "Content-Type", "application/json"), 0);
	assert_int_equal(http_req_header(&req, "X-Other", "not signed"), 0);
	assert_int_equal(http_req_body(&req, V_BODY, strlen(V_BODY)), 0);
	assert_int_equal(sign_acs3(&req, &test_creds, A_DATE, A_NONCE), 0);
	sign_sha256_hex(V_BODY, strlen(V_BODY), hash);
	assert_string_equal(http_req_get_header(&req, "x-acs-content-sha256"), hash);
	assert_non_null(strstr(http_req_get_header(&req, "Authorization"),
			       ",SignedHeaders=content-type;host;x-acs-action;"));
	assert_null(strstr(http_req_get_header(&req, "Authorization"), "x-other"));
	http_req_free(&req);
}

static void test_acs3_rejects(void **state)
{
	static const struct sign_creds nosecret = {"testak", "", NULL};
	struct http_request req;

	(void)state;
	assert_int_equal(http_req_init(&req, "GET", "https://h.example", "/"), 0);
	assert_int_equal(http_req_header(&req, "x-acs-version", "2021-02-04"), 0);
	/* x-acs-action is the caller's to set. */
	assert_int_equal(sign_acs3(&req, &test_creds, A_DATE, A_NONCE), -EINVAL);
	assert_int_equal(http_req_header(&req, "x-acs-action", "X"), 0);
	assert_int_equal(sign_acs3(&req, &nosecret, A_DATE, A_NONCE), -EINVAL);
	assert_int_equal(sign_acs3(&req, NULL, A_DATE, A_NONCE), -EINVAL);
	assert_null(http_req_get_header(&req, "Authorization"));
	http_req_free(&req);
}

static void volc_request(struct http_request *req, int ctype)
{
	assert_int_equal(http_req_init(req, "POST", "https://open.volcengineapi.com", "/"), 0);
	assert_int_equal(http_req_query(req, "Action", "ListResources"), 0);
	assert_int_equal(http_req_query(req, "Version", "2023-05-01"), 0);
	if (ctype)
		assert_int_equal(http_req_header(req, "Content-Type", "application/json"), 0);
	assert_int_equal(http_req_body(req, V_BODY, strlen(V_BODY)), 0);
}

static void test_volc_v1(void **state)
{
	struct http_request req;

	(void)state;
	volc_request(&req, 0);
	assert_int_equal(sign_volc(&req, &test_creds, "cn-beijing", "cp", "20240101T000000Z"), 0);
	assert_string_equal(http_req_get_header(&req, "x-date"), "20240101T000000Z");
	assert_string_equal(http_req_get_header(&req, "x-content-sha256"), V_BODY_HASH);
	assert_null(http_req_get_header(&req, "x-security-token"));
	assert_string_equal(
	    http_req_get_header(&req, "Authorization"),
	    V_CRED "SignedHeaders=host;x-content-sha256;x-date, "
		   "Signature=0d469c067144ca77f45db0da6c07e958ec930b4c0b7eb6db47eb50ff0fbfeeb1");
	http_req_free(&req);
}

static void test_volc_v2(void **state)
{
	struct http_request req;

	(void)state;
	volc_request(&req, 1);
	assert_int_equal(sign_volc(&req, &test_creds, "cn-beijing", "cp", "20240101T000000Z"), 0);
	assert_string_equal(
	    http_req_get_header(&req, "Authorization"),
	    V_CRED "SignedHeaders=content-type;host;x-content-sha256;x-date, "
		   "Signature=3af9a21bcab5cfff830620dc25fe47b03a60de3bc3ef57e0a4f8e29840f7b9ea");
	/* Signing again for a retry gives the same answer. */
	assert_int_equal(sign_volc(&req, &test_creds, "cn-beijing", "cp", "20240101T000000Z"), 0);
	assert_non_null(strstr(http_req_get_header(&req, "Authorization"), "3af9a21bcab5"));
	http_req_free(&req);
}

static void test_volc_sts(void **state)
{
	static const struct sign_creds c = {"testak", "testsecret", "sts-token"};
	struct http_request req;

	(void)state;
	volc_request(&req, 1);
	assert_int_equal(sign_volc(&req, &c, "cn-beijing", "cp", "20240101T000000Z"), 0);
	assert_string_equal(http_req_get_header(&req, "X-Security-Token"), "sts-token");
	assert_non_null(strstr(http_req_get_header(&req, "Authorization"),
			       ", SignedHeaders=content-type;host;x-content-sha256;x-date;"
			       "x-security-token, Signature="));
	assert_null(strstr(http_req_get_header(&req, "Authorization"), "sts-token"));
	assert_null(strstr(http_req_get_header(&req, "Authorization"), "testsecret"));
	http_req_free(&req);
}

static void test_volc_fresh_date(void **state)
{
	struct http_request req;
	const char *x, *auth;

	(void)state;
	volc_request(&req, 0);
	assert_int_equal(sign_volc(&req, &test_creds, "cn-beijing", "cp", NULL), 0);
	x = http_req_get_header(&req, "X-Date");
	assert_non_null(x);
	assert_int_equal(strlen(x), 16);
	assert_true(x[8] == 'T' && x[15] == 'Z');
	auth = http_req_get_header(&req, "Authorization");
	assert_memory_equal(auth + strlen("HMAC-SHA256 Credential=testak/"), x, 8);
	http_req_free(&req);
}

static void test_volc_rejects(void **state)
{
	struct http_request req;

	(void)state;
	volc_request(&req, 0);
	assert_int_equal(sign_volc(&req, &test_creds, "cn-beijing", "cp", "2024-01-01"), -EINVAL);
	assert_int_equal(sign_volc(&req, &test_creds, "cn-beijing", "cp", "20240101T000000"),
			 -EINVAL);
	assert_int_equal(sign_volc(&req, &test_creds, NULL, "cp", NULL), -EINVAL);
	assert_int_equal(sign_volc(&req, &test_creds, "cn-beijing", "", NULL), -EINVAL);
	assert_null(http_req_get_header(&req, "Authorization"));
	http_req_free(&req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256_empty),
	    cmocka_unit_test(test_acs3_a1),
	    cmocka_unit_test(test_acs3_a2),
	    cmocka_unit_test(test_acs3_a3_sts),
	    cmocka_unit_test(test_acs3_a4_encoding),
	    cmocka_unit_test(test_acs3_resign),
	    cmocka_unit_test(test_acs3_fresh_date_nonce),
	    cmocka_unit_test(test_acs3_content_type_and_body),
	    cmocka_unit_test(test_acs3_rejects),
	    cmocka_unit_test(test_volc_v1),
	    cmocka_unit_test(test_volc_v2),
	    cmocka_unit_test(test_volc_sts),
	    cmocka_unit_test(test_volc_fresh_date),
	    cmocka_unit_test(test_volc_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
