/* pai: Alibaba Cloud PAI, AIWorkSpace API 2021-02-04 (ROA, ACS3-HMAC-SHA256).
 * Root: workspaces (configured, or ListWorkspaces); a workspace: ListCodeSources. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "credfile.h"
#include "providers_i.h"
#include "sign.h"

#define PAI_VERSION	"2021-02-04"
#define PAI_PAGE	100 /* asked for; the server may give fewer (then its size wins) */
#define PAI_CHECK_PAGES 20  /* of the configured workspaces, at mount */

enum pai_kind { PAI_WORKSPACE = 1, PAI_CODESOURCE };

static int pai_sign(struct http_request *req, void *ctx)
{
	struct ws_provider *p = ctx;
	struct sign_creds creds = {p->c.key_id, p->c.secret, p->c.token};

	return sign_acs3(req, &creds, NULL, NULL);
}

/* Alibaba throttles with HTTP 400 and a Code in the body: the status alone misleads. */
enum http_verdict pai_classify(const struct http_response *resp, void *ctx)
{
	struct json_object *body;
	const char *code;
	enum http_verdict v = HTTP_DONE;

	(void)ctx;
	if (resp->status == 429 || resp->status >= 500)
		return HTTP_RETRY;
	if (resp->status < 400)
		return HTTP_DONE;
	body = provjson_parse(resp->body, resp->len);
	code = provjson_str(body, "Code", NULL);
	if (code && (!strncmp(code, "Throttling", 10) || !strncmp(code, "ServiceUnavailable", 18)))
		v = HTTP_RETRY;
	json_object_put(body);
	return v;
}

static int pai_code_errno(long status, const char *code)
{
	/* Prefixes: InvalidAccessKeyId.NotFound, .Inactive, Forbidden.RAM, NoPermission.… */
	static const char *const denied[] = {"SignatureDoesNotMatch",
					     "IncompleteSignature",
					     "InvalidAccessKeyId",
					     "InvalidSecurityToken",
					     "Forbidden",
					     "NoPermission",
					     NULL};

	for (size_t i = 0; code && denied[i]; i++)
		if (!strncmp(code, denied[i], strlen(denied[i])))
			return -EACCES;
	return status == 401 || status == 403 ? -EACCES : -EIO;
}

int pai_classify_error(long status, const char *body, size_t len)
{
	struct json_object *o = provjson_parse(body, len);
	int r = pai_code_errno(status, provjson_str(o, "Code", NULL));

	json_object_put(o);
	return r;
}

/* The one line a failed answer logs: call, status, code, request id; never a secret. */
static void pai_log(const char *action, const struct http_response *resp, const char *why)
{
	struct json_object *body = provjson_parse(resp->body, resp->len);
	const char *rid = provjson_str(body, "RequestId", NULL);

	provider_log_answer("pai", action, resp, provjson_str(body, "Code", NULL),
			    provjson_str(body, "Message", NULL),
			    rid ? rid : http_resp_header(resp, "x-acs-request-id"), why);
	json_object_put(body);
}

/* Sign and send req as action; a 2xx answer in resp, else the error, logged once. */
static int pai_send(struct ws_provider *p, const char *action, const char *label,
		    struct http_request *req, struct http_response *resp)
{
	int r;

	req->sign = pai_sign;
	req->sign_ctx = p;
	req->classify = pai_classify;
	req->label = label;
	req->id_header = "x-acs-request-id";
	r = http_req_header(req, "x-acs-action", action);
	if (r == 0)
		r = http_req_header(req, "x-acs-version", PAI_VERSION);
	if (r == 0)
		r = http_perform(p->c.http, req, resp);
	return provider_answer("pai", action, r, resp, pai_log, pai_classify_error);
}

static int pai_codesource_record(struct json_object *item, int show_secrets, struct prov_page *out)
{
	struct prov_record r = {.kind = PAI_CODESOURCE, .kind_name = "code_source"};
	const char *id = provjson_str(item, "CodeSourceId", NULL);
	size_t nlen, ulen;
	const char *url = provjson_str(item, "CodeRepo", &ulen);
	const char *branch = provjson_str(item, "CodeBranch", NULL);
	const char *name;

	if (!id || !*id)
		return 0; /* nothing to name it by */
	name = provjson_str(item, "DisplayName", &nlen);
	if (!name)
		name = id, nlen = strlen(id);
	r.id = strdup(id);
	r.name = provider_strndup(name, nlen);
	r.name_len = nlen;
	r.meta = redact_meta_json(item, show_secrets);
	r.branch = branch && *branch ? strdup(branch) : NULL;
	r.ctime = provjson_time(provjson_str(item, "GmtCreateTime", NULL));
	r.mtime = provjson_time(provjson_str(item, "GmtModifyTime", NULL));
	if (!r.id || !r.name || !r.meta || (branch && *branch && !r.branch) ||
	    redact_url(url, ulen, "CodeRepo", id, show_secrets, &r.url) < 0 ||
	    prov_page_add(out, &r) < 0) {
		prov_record_free(&r);
		return -ENOMEM;
	}
	return 0;
}

/* TotalCount, a number or (some gateways) a numeric string; -1 when absent or absurd. */
static long pai_total(struct json_object *body)
{
	struct json_object *t = provjson_get(body, "TotalCount", json_type_int);
	const char *s = provjson_str(body, "TotalCount", NULL);
	long long v = -1;
	char *end;

	if (t) {
		v = (long long)json_object_get_int64(t);
	} else if (s && *s) {
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno || *end)
			v = -1;
	}
	return v < 0 || v > LONG_MAX ? -1 : (long)v;
}

static int pai_add_item(struct json_object *it, int workspaces, int show_secrets,
			struct prov_page *out)
{
	const char *id, *ctime, *label;
	size_t len;

	if (!workspaces)
		return pai_codesource_record(it, show_secrets, out);
	id = provjson_str(it, "WorkspaceId", NULL);
	ctime = provjson_str(it, "GmtCreateTime", NULL);
	label = provjson_str(it, "WorkspaceName", &len);
	if (!id || !*id)
		return 0;
	return provscope_add_container(out, id, PAI_WORKSPACE, "workspace", provjson_time(ctime),
				       label && len ? label : NULL, len);
}

static int pai_parse_items(struct json_object *body, int workspaces, int show_secrets,
			   struct prov_page *out)
{
	const char *key = workspaces ? "Workspaces" : "CodeSources";
	struct json_object *items;
	int r = 0;

	if (!json_object_is_type(body, json_type_object))
		return -EIO;
	out->total = pai_total(body);
	if (!json_object_object_get_ex(body, key, &items))
		return out->total == 0 ? 0 : -EIO; /* an empty list may be left out */
	if (!json_object_is_type(items, json_type_array))
		return -EIO;
	for (size_t i = 0; r == 0 && i < json_object_array_length(items); i++) {
		struct json_object *it = json_object_array_get_idx(items, i);

		if (json_object_is_type(it, json_type_object))
			r = pai_add_item(it, workspaces, show_secrets, out);
	}
	return r;
}

static int pai_parse(const char *body, size_t len, int workspaces, int show_secrets,
		     struct prov_page *out)
{
	struct json_object *obj = provjson_parse(body, len);
	int r = pai_parse_items(obj, workspaces, show_secrets, out);

	json_object_put(obj);
	return r;
}

int pai_parse_codesources(const char *body, size_t len, int show_secrets, struct prov_page *out)
{
	return pai_parse(body, len, 0, show_secrets, out);
}

int pai_parse_workspaces(const char *body, size_t len, struct prov_page *out)
{
	return pai_parse(body, len, 1, 0, out);
}

/* The query of one page: ws NULL lists workspaces (ids: only those of the comma list); name
 * filters code sources by DisplayName. */
static int pai_query(struct http_request *req, const char *ws, const char *name, const char *ids,
		     long page, long size)
{
	char num[24], sz[24];
	int r;

	snprintf(num, sizeof(num), "%ld", page);
	snprintf(sz, sizeof(sz), "%ld", size);
	r = http_req_query(req, "PageNumber", num);
	if (!r)
		r = http_req_query(req, "PageSize", sz);
	if (!r && ws)
		r = http_req_query(req, "WorkspaceId", ws);
	/* Oldest first: entries added while paging land at the end, shifting nothing. */
	if (!r && ws)
		r = http_req_query(req, "SortBy", "GmtCreateTime");
	if (!r && ws)
		r = http_req_query(req, "Order", "ASC");
	if (!r && name)
		r = http_req_query(req, "DisplayName", name);
	if (!r && ids)
		r = http_req_query(req, "WorkspaceIds", ids);
	return r;
}

/* One page of ListCodeSources (ws set) or ListWorkspaces (of ids, when set) into out. */
static int pai_page(struct ws_provider *p, const char *ws, const char *name, const char *ids,
		    long page, long size, struct prov_page *out)
{
	const char *action = ws ? "ListCodeSources" : "ListWorkspaces";
	const char *path = ws ? "/api/v1/codesources" : "/api/v1/workspaces";
	struct http_request req;
	struct http_response resp = {0};
	size_t before = out->n;
	char label[160];
	int r;

	r = http_req_init(&req, "GET", p->c.endpoint, path);
	if (r < 0)
		return r;
	snprintf(label, sizeof(label), "pai %s%s%s page %ld%s", action, ws ? " ws=" : "",
		 ws ? ws : "", page,
		 name  ? " (name filter)"
		 : ids ? " (the configured ids)"
		       : "");
	r = pai_query(&req, ws, name, ids, page, size);
	if (r == 0)
		r = pai_send(p, action, label, &req, &resp);
	if (r == 0) {
		out->bytes += resp.len; /* the pager bounds a listing's bytes */
		r = pai_parse(resp.body, resp.len, !ws, p->c.show_secrets, out);
		if (r == -EIO)
			pai_log(action, &resp, "the answer is not the expected JSON");
	}
	if (r == 0)
		provider_page_done(out, page, size, before);
	http_resp_free(&resp);
	http_req_free(&req);
	return r;
}

/* "a,b,c" of n ids, as WorkspaceIds takes them, or NULL. */
static char *pai_join(char *const *ids, size_t n)
{
	size_t len = 1, o = 0;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += strlen(ids[i]) + 1;
	s = malloc(len);
	if (s)
		s[0] = '\0';
	for (size_t i = 0; s && i < n; i++)
		o += (size_t)snprintf(s + o, len - o, "%s%s", i ? "," : "", ids[i]);
	return s;
}

static int pai_fetch(struct ws_provider *p, const char *ws, const char *name, char *const *ids,
		     size_t n, long page, long size, struct prov_page *out)
{
	char *list = ids ? pai_join(ids, n) : NULL;
	int r = ids && !list ? -ENOMEM : pai_page(p, ws, name, list, page, size, out);

	free(list);
	return r;
}

static const struct ws_cloud pai_cloud = {
    .fetch = pai_fetch,
    .workspace_kind = PAI_WORKSPACE,
    .page_size = PAI_PAGE,
    .check_pages = PAI_CHECK_PAGES,
};

static struct provider *pai_new(const struct prov_conf *conf, const struct provider_env *env,
				char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	return ws_provider_new(&pai_cloud, conf, env);
}

static const struct prov_key pai_keys[] = {
    {"access_key_id",
     PROV_KEY_ID,
     0,
     {"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABACLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY_ID"}},
    {"access_key_secret",
     PROV_SECRET,
     1,
     {"ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABACLOUD_ACCESS_KEY_SECRET",
      "ALICLOUD_ACCESS_KEY_SECRET"}},
    {"security_token", PROV_TOKEN, 1, {"ALIBABA_CLOUD_SECURITY_TOKEN"}},
    {"region", PROV_REGION, 0, {"ALIBABA_CLOUD_REGION_ID"}},
    {"endpoint", PROV_ENDPOINT, 0, {NULL}},
    {"workspaces", PROV_SCOPES, 0, {NULL}},
    {NULL, 0, 0, {NULL}},
};

const struct prov_desc pai_desc = {
    .name = "pai",
    .keys = pai_keys,
    .region = "cn-hangzhou",
    .endpoint = "https://aiworkspace.%s.aliyuncs.com",
    .credfile = credfile_aliyun,
    .create = pai_new,
};
