/* http_req: building requests and reading answers — the half of http.h that needs no
 * network, so that sign.c and the providers can be tested without a transport.
 *
 * Every string a request or response holds is its own malloc'd copy. Header values are
 * wiped before they are freed: some carry a secret (x-yunxiao-token, STS tokens). */
#define _GNU_SOURCE /* strcasecmp */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "http.h"
#include "secret.h"

/* One query parameter, encoded, for sorting. */
struct http_qpair {
	char *name;
	char *value;
};

static void http_fields_free(struct http_field *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(f[i].name);
		secret_free(f[i].value);
		f[i].name = f[i].value = NULL;
	}
}

/* A header name or value must not be able to end the header line early. */
static int http_has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* Length of the "scheme://" prefix when base_url begins with http:// or https://. */
static size_t http_scheme_len(const char *url)
{
	if (!strncasecmp(url, "https://", 8))
		return 8;
	if (!strncasecmp(url, "http://", 7))
		return 7;
	return 0;
}

/* host[:port] or [v6][:port]: no path, userinfo, query, fragment, blank or control. */
static int http_authority_ok(const char *a)
{
	const unsigned char *p;

	if (!*a)
		return 0;
	for (p = (const unsigned char *)a; *p; p++)
		if (*p <= ' ' || *p == 0x7f || strchr("/?#@\\", *p))
			return 0;
	return 1;
}

int http_req_init(struct http_request *req, const char *method, const char *base_url,
		  const char *path)
{
	size_t skip;

	memset(req, 0, sizeof(*req));
	if (!method || !*method || !base_url || http_has_crlf(method))
		return -EINVAL;
	skip = http_scheme_len(base_url);
	if (!skip || !http_authority_ok(base_url + skip))
		return -EINVAL;
	if (!path)
		path = "/";
	if (path[0] != '/' || strpbrk(path, " \r\n"))
		return -EINVAL;
	req->method = strdup(method);
	req->base = strdup(base_url);
	req->host = strdup(base_url + skip);
	req->path = strdup(path);
	if (!req->method || !req->base || !req->host || !req->path) {
		http_req_free(req);
		return -ENOMEM;
	}
	return 0;
}

static int http_field_set(struct http_field *f, const char *name, const char *value)
{
	char *n = strdup(name), *v = strdup(value ? value : "");

	if (!n || !v) {
		free(n);
		free(v);
		return -ENOMEM;
	}
	free(f->name);
	secret_free(f->value);
	f->name = n;
	f->value = v;
	return 0;
}

int http_req_query(struct http_request *req, const char *name, const char *value)
{
	int rc;

	if (!name || !*name)
		return -EINVAL;
	if (req->nquery >= HTTP_MAX_FIELDS)
		return -E2BIG;
	rc = http_field_set(&req->query[req->nquery], name, value);
	if (rc == 0)
		req->nquery++;
	return rc;
}

static struct http_field *http_req_find(const struct http_request *req, const char *name)
{
	size_t i;

	for (i = 0; i < req->nheaders; i++)
		if (!strcasecmp(req->headers[i].name, name))
			return (struct http_field *)&req->headers[i];
	return NULL;
}

int http_req_header(struct http_request *req, const char *name, const char *value)
{
	struct http_field *f;
	int rc;

	if (!name || !*name || strpbrk(name, ": \t\r\n") || (value && http_has_crlf(value)))
		return -EINVAL;
	f = http_req_find(req, name);
	if (f)
		return http_field_set(f, name, value);
	if (req->nheaders >= HTTP_MAX_FIELDS)
		return -E2BIG;
	rc = http_field_set(&req->headers[req->nheaders], name, value);
	if (rc == 0)
		req->nheaders++;
	return rc;
}

const char *http_req_get_header(const struct http_request *req, const char *name)
{
	const struct http_field *f = http_req_find(req, name);

	return f ? f->value : NULL;
}

int http_req_body(struct http_request *req, const char *body, size_t len)
{
	char *copy = NULL;

	if (len && !body)
		return -EINVAL;
	if (len == SIZE_MAX)
		return -E2BIG;
	if (body) {
		/* NUL-terminated as a courtesy to readers that print it; len is what counts. */
		copy = malloc(len + 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, body, len);
		copy[len] = '\0';
	}
	free(req->body);
	req->body = copy;
	req->body_len = copy ? len : 0;
	return 0;
}

char *http_escape(const char *s, size_t len)
{
	char *enc, *out;

	/* curl_easy_escape takes an int and reads strlen() when given 0. */
	if (len == 0)
		return strdup("");
	if (!s || len > INT_MAX)
		return NULL;
	enc = curl_easy_escape(NULL, s, (int)len);
	if (!enc)
		return NULL;
	/* curl's memory goes back to curl; callers get plain malloc'd memory. */
	out = strdup(enc);
	curl_free(enc);
	return out;
}

/* Byte order of the encoded forms, as both clouds' signers sort. */
static int http_qpair_cmp(const void *a, const void *b)
{
	const struct http_qpair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static char *http_qpairs_join(const struct http_qpair *p, size_t n)
{
	size_t i, len = 1;
	char *s, *w;

	for (i = 0; i < n; i++)
		len += strlen(p[i].name) + strlen(p[i].value) + 2;
	s = malloc(len);
	if (!s)
		return NULL;
	w = s;
	for (i = 0; i < n; i++)
		w += sprintf(w, "%s%s=%s", i ? "&" : "", p[i].name, p[i].value);
	*w = '\0';
	return s;
}

char *http_req_query_string(const struct http_request *req)
{
	struct http_qpair p[HTTP_MAX_FIELDS];
	char *out = NULL;
	size_t i, n = req->nquery;

	memset(p, 0, sizeof(p));
	for (i = 0; i < n; i++) {
		const struct http_field *f = &req->query[i];

		p[i].name = http_escape(f->name, strlen(f->name));
		p[i].value = http_escape(f->value, strlen(f->value));
		if (!p[i].name || !p[i].value)
			goto out;
	}
	qsort(p, n, sizeof(p[0]), http_qpair_cmp);
	out = http_qpairs_join(p, n);
out:
	for (i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	return out;
}

void http_req_free(struct http_request *req)
{
	if (!req)
		return;
	free(req->method);
	free(req->base);
	free(req->host);
	free(req->path);
	http_fields_free(req->query, req->nquery);
	http_fields_free(req->headers, req->nheaders);
	if (req->body)
		secret_wipe(req->body, req->body_len);
	free(req->body);
	memset(req, 0, sizeof(*req));
}

const char *http_resp_header(const struct http_response *resp, const char *name)
{
	size_t i;

	for (i = 0; i < resp->nheaders; i++)
		if (resp->headers[i].name && !strcasecmp(resp->headers[i].name, name))
			return resp->headers[i].value;
	return NULL;
}

void http_resp_free(struct http_response *resp)
{
	if (!resp)
		return;
	free(resp->body);
	http_fields_free(resp->headers, resp->nheaders);
	memset(resp, 0, sizeof(*resp));
}
