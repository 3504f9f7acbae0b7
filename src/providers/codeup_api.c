/* codeup_api: Codeup's requests (see codeup_i.h): paths, GET with the token, a list call's
 * page and its paging headers, the bounds on a list call, and the one line a failure logs. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "codeup_i.h"
#include "log.h"

/* One path segment, percent-encoded. "", "." and ".." are refused: curl would resolve them
 * as dot segments and the request would leave the organization. */
static char *codeup_seg(const char *s)
{
	if (!s || !*s || !strcmp(s, ".") || !strcmp(s, ".."))
		return NULL;
	return http_escape(s, strlen(s));
}

/* "/oapi/v1/codeup/organizations/<org>/<what>[/<id>]", org and id percent-encoded. */
char *codeup_path(const char *org, const char *what, const char *id)
{
	char *eorg = codeup_seg(org), *eid = id ? codeup_seg(id) : NULL, *path = NULL;

	if (eorg && (!id || eid) &&
	    asprintf(&path, "/oapi/v1/codeup/organizations/%s/%s%s%s", eorg, what, id ? "/" : "",
		     id ? eid : "") < 0)
		path = NULL;
	free(eorg);
	free(eid);
	return path;
}

int codeup_classify_error(long status, const char *body, size_t len)
{
	static const char *const denied[] = {"InvalidTokenError", "ExpiredTokenError",
					     "Unauthorized", "Forbidden", NULL};
	struct json_object *o = provjson_parse(body, len);
	const char *code = provjson_str(o, "errorCode", NULL);
	int r = status == 401 || status == 403 ? -EACCES : -EIO;

	for (size_t i = 0; code && denied[i]; i++)
		if (!strncmp(code, denied[i], strlen(denied[i])))
			r = -EACCES;
	json_object_put(o);
	return r;
}

/* The one line a failed answer logs: call, status, code, request id; never the token. */
void codeup_log(const char *what, const struct http_response *resp, const char *why)
{
	struct json_object *body = provjson_parse(resp->body, resp->len);
	const char *code = provjson_str(body, "errorCode", NULL);
	const char *msg = provjson_str(body, "errorMessage", NULL);

	if (!msg)
		msg = provjson_str(body, "errorDescription", NULL);
	if (!msg)
		msg = provjson_str(body, "message", NULL);
	provider_log_answer("codeup", what, resp, code, msg, http_resp_header(resp, "x-request-id"),
			    why);
	json_object_put(body);
}

/* GET path?query (name, value pairs, NULL-terminated); a 2xx answer in resp, else the
 * error, logged once. */
int codeup_get(struct codeup *cu, const char *what, const char *path, const char *const *query,
	       struct http_response *resp)
{
	struct http_request req;
	int r = http_req_init(&req, "GET", cu->c.endpoint, path);

	if (r < 0)
		return r;
	req.label = what;
	req.id_header = "x-request-id";
	for (size_t i = 0; r == 0 && query && query[i]; i += 2)
		r = http_req_query(&req, query[i], query[i + 1]);
	if (r == 0)
		r = http_req_header(&req, "x-yunxiao-token", cu->c.secret);
	if (r == 0)
		r = http_perform(cu->c.http, &req, resp);
	http_req_free(&req);
	return provider_answer("codeup", what, r, resp, codeup_log, codeup_classify_error);
}

/* The x-total paging header: entries in the whole list, -1 when absent or not a count. */
static long codeup_total(const struct http_response *resp)
{
	const char *total = http_resp_header(resp, "x-total");
	char *end;
	long long t;

	if (!total || !*total)
		return -1;
	errno = 0;
	t = strtoll(total, &end, 10);
	return *end || errno || t < 0 || t > LONG_MAX ? -1 : (long)t;
}

/* Is there a page after page k, which held n entries? The paging headers when the server
 * sends them, else a full page says so. */
static int codeup_more(const struct http_response *resp, size_t n, long k)
{
	const char *next = http_resp_header(resp, "x-next-page");
	long t = codeup_total(resp);

	if (n == 0)
		return 0;
	if (next)
		return *next != '\0' && strcmp(next, "0") != 0;
	if (t >= 0)
		return (long long)(k - 1) * CODEUP_PAGE + (long long)n < t;
	return n >= CODEUP_PAGE;
}

/* Past a bound of a list call: it fails rather than be served cut. */
int codeup_bound(const char *what, const char *path, const char *bound, long limit)
{
	log_msg(LOG_ERR,
		"codeup: %s %s: more than %ld %s; failing rather than serving it cut "
		"(docs/design.md §4)",
		what, path, limit, bound);
	return -EIO;
}

/* Page k of a list call, no further than CODEUP_MAX_PAGES. query has room for four more
 * entries and a NULL after its nq. */
int codeup_get_page(struct codeup *cu, const char *what, const char *path, const char **query,
		    size_t nq, long k, struct codeup_got *got)
{
	struct http_response resp = {0};
	char page[24];
	int r;

	memset(got, 0, sizeof(*got));
	if (k > CODEUP_MAX_PAGES)
		return codeup_bound(what, path, "pages", CODEUP_MAX_PAGES);
	snprintf(page, sizeof(page), "%ld", k);
	query[nq] = "page";
	query[nq + 1] = page;
	query[nq + 2] = "perPage";
	query[nq + 3] = CODEUP_PAGE_S;
	query[nq + 4] = NULL;
	r = codeup_get(cu, what, path, query, &resp);
	if (r == 0) {
		got->bytes = resp.len;
		got->arr = provjson_parse(resp.body, resp.len);
		if (!json_object_is_type(got->arr, json_type_array)) {
			codeup_log(what, &resp, "the answer is not a JSON array");
			json_object_put(got->arr);
			got->arr = NULL;
			r = -EIO;
		}
	}
	if (r == 0)
		got->more = codeup_more(&resp, json_object_array_length(got->arr), k);
	got->total = r == 0 ? codeup_total(&resp) : -1;
	http_resp_free(&resp);
	return r;
}
