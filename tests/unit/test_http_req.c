/* http_req: building requests (no network): URL split, encoding, headers, bodies. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static void test_init_split(void **state)
{
	struct http_request req;

	(void)state;
	assert_int_equal(http_req_init(&req, "GET", "https://example.com", "/a/b%20c"), 0);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.base, "https://example.com");
	assert_string_equal(req.host, "example.com");
	assert_string_equal(req.path, "/a/b%20c");
	assert_int_equal(req.nquery, 0);
	assert_int_equal(req.nheaders, 0);
	assert_null(req.body);
	http_req_free(&req);
	assert_null(req.host);
	assert_int_equal(http_req_init(&req, "POST", "http://127.0.0.1:8080", NULL), 0);
	assert_string_equal(req.host, "127.0.0.1:8080");
	assert_string_equal(req.path, "/");
	http_req_free(&req);
	assert_int_equal(http_req_init(&req, "GET", "http://[::1]:9000", "/"), 0);
	assert_string_equal(req.host, "[::1]:9000");
	http_req_free(&req);
	http_req_free(&req); /* idempotent */
}

static void test_init_rejects(void **state)
{
	static const char *const bad[] = {
	    "ftp://example.com", "example.com",	      "https://",	 "https://h/",
	    "https://h/path",	 "https://u:p@h",     "https://h?x",	 "https://h#f",
	    "https://h h",	 "https://h\r\nX: y", "https://h\\evil", "",
	};
	struct http_request req;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (http_req_init(&req, "GET", bad[i], "/") != -EINVAL)
			fail_msg("accepted %s", bad[i]);
		assert_null(req.base);
	}
	assert_int_equal(http_req_init(&req, "GET", NULL, "/"), -EINVAL);
	assert_int_equal(http_req_init(&req, "GET", "https://h", "relative"), -EINVAL);
	assert_int_equal(http_req_init(&req, "GET", "https://h", "/a b"), -EINVAL);
	assert_int_equal(http_req_init(&req, "", "https://h", "/"), -EINVAL);
	assert_int_equal(http_req_init(&req, NULL, "https://h", "/"), -EINVAL);
}

static char *query_of(const char *const *kv, size_t n)
{
	struct http_request req;
	char *qs;
	size_t i;

	assert_int_equal(http_req_init(&req, "GET", "https://h", "/"), 0);
	for (i = 0; i < n; i += 2)
		assert_int_equal(http_req_query(&req, kv[i], kv[i + 1]), 0);
	qs = http_req_query_string(&req);
	assert_non_null(qs);
	http_req_free(&req);
	return qs;
}

static void expect_query(const char *const *kv, size_t n, const char *want)
{
	char *qs = query_of(kv, n);

	assert_string_equal(qs, want);
	free(qs);
}

static void test_query_encoding(void **state)
{
	static const char *const enc[] = {"k", "a b*c~d/e\xc3\xa9+f=g&h%i-j_k.l!'()"};
	static const char *const names[] = {"my key", "v", "\xc3\xa9", "w"};

	(void)state;
	expect_query(enc, 2, "k=a%20b%2Ac~d%2Fe%C3%A9%2Bf%3Dg%26h%25i-j_k.l%21%27%28%29");
	expect_query(names, 4, "%C3%A9=w&my%20key=v");
}

static void test_query_sorting(void **state)
{
	static const char *const kv[] = {"b", "2", "a", "z", "B", "0", "a", "y", "aa", ""};
	static const char *const pai[] = {"PageNumber",	 "1",	  "PageSize", "100",
					  "WorkspaceId", "12345", "SortBy",   "GmtCreateTime",
					  "Order",	 "ASC"};

	(void)state;
	/* Byte order of names (upper case first), then of values; an empty value keeps '='. */
	expect_query(kv, 10, "B=0&a=y&a=z&aa=&b=2");
	expect_query(pai, 10,
		     "Order=ASC&PageNumber=1&PageSize=100&SortBy=GmtCreateTime&WorkspaceId=12345");
	expect_query(NULL, 0, "");
}

static void test_query_limits(void **state)
{
	struct http_request req;
	char name[16];
	int i;

	(void)state;
	assert_int_equal(http_req_init(&req, "GET", "https://h", "/"), 0);
	for (i = 0; i < HTTP_MAX_FIELDS; i++) {
		snprintf(name, sizeof(name), "q%02d", i);
		assert_int_equal(http_req_query(&req, name, NULL), 0);
	}
	assert_int_equal(http_req_query(&req, "one-too-many", "x"), -E2BIG);
	assert_int_equal(req.nquery, HTTP_MAX_FIELDS);
	assert_string_equal(req.query[0].value, "");
	assert_int_equal(http_req_query(&req, "", "x"), -EINVAL);
	http_req_free(&req);
}

static void test_header_replace(void **state)
{
	struct http_request req;
	char name[16];
	int i;

	(void)state;
	assert_int_equal(http_req_init(&req, "GET", "https://h", "/"), 0);
	assert_null(http_req_get_header(&req, "x-a"));
	assert_int_equal(http_req_header(&req, "X-A", "1"), 0);
	assert_int_equal(http_req_header(&req, "Content-Type", "text/plain"), 0);
	assert_int_equal(http_req_header(&req, "x-a", "2"), 0);
	assert_int_equal(req.nheaders, 2);
	assert_string_equal(http_req_get_header(&req, "X-a"), "2");
	assert_string_equal(http_req_get_header(&req, "content-type"), "text/plain");
	assert_int_equal(http_req_header(&req, "X-Empty", ""), 0);
	assert_string_equal(http_req_get_header(&req, "x-empty"), "");
	/* No header may smuggle in another line. */
	assert_int_equal(http_req_header(&req, "X-B", "v\r\nX-Evil: 1"), -EINVAL);
	assert_int_equal(http_req_header(&req, "X-B\r\nX-Evil", "v"), -EINVAL);
	assert_int_equal(http_req_header(&req, "X-B: v", "v"), -EINVAL);
	assert_int_equal(http_req_header(&req, "", "v"), -EINVAL);
	assert_int_equal(req.nheaders, 3);
	for (i = 3; i < HTTP_MAX_FIELDS; i++) {
		snprintf(name, sizeof(name), "X-H%02d", i);
		assert_int_equal(http_req_header(&req, name, "v"), 0);
	}
	assert_int_equal(http_req_header(&req, "X-Last", "v"), -E2BIG);
	/* Replacing still works when full. */
	assert_int_equal(http_req_header(&req, "x-a", "3"), 0);
	assert_string_equal(http_req_get_header(&req, "X-A"), "3");
	http_req_free(&req);
}

static void test_body(void **state)
{
	struct http_request req;

	(void)state;
	assert_int_equal(http_req_init(&req, "POST", "https://h", "/"), 0);
	assert_int_equal(http_req_body(&req, "{\"a\":1}", 7), 0);
	assert_int_equal(req.body_len, 7);
	assert_memory_equal(req.body, "{\"a\":1}", 7);
	assert_int_equal(http_req_body(&req, "a\0b", 3), 0);
	assert_int_equal(req.body_len, 3);
	assert_memory_equal(req.body, "a\0b", 3);
	assert_int_equal(http_req_body(&req, NULL, 0), 0);
	assert_null(req.body);
	assert_int_equal(req.body_len, 0);
	assert_int_equal(http_req_body(&req, NULL, 5), -EINVAL);
	http_req_free(&req);
}

static void test_escape(void **state)
{
	char *s;

	(void)state;
	s = http_escape("", 0);
	assert_string_equal(s, "");
	free(s);
	s = http_escape("a\0b c", 5);
	assert_string_equal(s, "a%00b%20c");
	free(s);
	s = http_escape("AZaz09-._~", 10);
	assert_string_equal(s, "AZaz09-._~");
	free(s);
	s = http_escape("\xff/?", 3);
	assert_string_equal(s, "%FF%2F%3F");
	free(s);
}

static void test_response(void **state)
{
	struct http_response resp;

	(void)state;
	memset(&resp, 0, sizeof(resp));
	resp.status = 200;
	resp.body = strdup("[]");
	resp.len = 2;
	resp.headers[0].name = strdup("x-total");
	resp.headers[0].value = strdup("42");
	resp.headers[1].name = strdup("retry-after");
	resp.headers[1].value = strdup("3");
	resp.nheaders = 2;
	assert_string_equal(http_resp_header(&resp, "x-total"), "42");
	assert_string_equal(http_resp_header(&resp, "Retry-After"), "3");
	assert_null(http_resp_header(&resp, "x-page"));
	http_resp_free(&resp);
	assert_int_equal(resp.status, 0);
	assert_null(resp.body);
	assert_int_equal(resp.nheaders, 0);
	http_resp_free(&resp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_split),	   cmocka_unit_test(test_init_rejects),
	    cmocka_unit_test(test_query_encoding), cmocka_unit_test(test_query_sorting),
	    cmocka_unit_test(test_query_limits),   cmocka_unit_test(test_header_replace),
	    cmocka_unit_test(test_body),	   cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_response),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
