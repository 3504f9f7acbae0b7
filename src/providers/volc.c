/* volc: Volcengine continuous delivery (service cp, 2023-05-01), HMAC-SHA256 signed POSTs
 * with JSON bodies. Root: workspaces (configured, or ListWorkspaces); a workspace:
 * ListResources, the code sources. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "credfile.h"
#include "providers_i.h"
#include "sign.h"

#define VOLC_VERSION	 "2023-05-01"
#define VOLC_SERVICE	 "cp"
#define VOLC_PAGE	 100 /* the API's maximum */
#define VOLC_CHECK_PAGES 20  /* of the configured workspaces, at mount */

enum volc_kind { VOLC_WORKSPACE = 1, VOLC_RESOURCE };

static int volc_sign(struct http_request *req, void *ctx)
{
	struct ws_provider *v = ctx;
	struct sign_creds creds = {v->c.key_id, v->c.secret, v->c.token};

	return sign_volc(req, &creds, v->c.region ? v->c.region : "cn-beijing", VOLC_SERVICE, NULL);
}

static const char *volc_error_code(struct json_object *body)
{
	struct json_object *meta = provjson_get(body, "ResponseMetadata", json_type_object);

	return provjson_str(provjson_get(meta, "Error", json_type_object), "Code", NULL);
}

enum http_verdict volc_classify(const struct http_response *resp, void *ctx)
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
	code = volc_error_code(body);
	if (code && (!strcmp(code, "FlowLimitExceeded") || !strcmp(code, "InternalError") ||
		     !strcmp(code, "ServiceUnavailable")))
		v = HTTP_RETRY;
	json_object_put(body);
	return v;
}

static int volc_code_errno(long status, const char *code)
{
	static const char *const denied[] = {"InvalidAccessKey", "SignatureDoesNotMatch",
					     "AccessDenied", "InvalidSecurityToken", NULL};

	for (size_t i = 0; code && denied[i]; i++)
		if (!strcmp(code, denied[i]))
			return -EACCES;
	return status == 401 || status == 403 ? -EACCES : -EIO;
}

int volc_classify_error(long status, const char *body, size_t len)
{
	struct json_object *o = provjson_parse(body, len);
	int r = volc_code_errno(status, volc_error_code(o));

	json_object_put(o);
	return r;
}

/* The one line a failed answer logs: call, status, code, request id; never a secret. */
static void volc_log(const char *action, const struct http_response *resp, const char *why)
{
	struct json_object *body = provjson_parse(resp->body, resp->len);
	struct json_object *meta = provjson_get(body, "ResponseMetadata", json_type_object);
	struct json_object *err = provjson_get(meta, "Error", json_type_object);
	const char *rid = provjson_str(meta, "RequestId", NULL);

	provider_log_answer("volc", action, resp, provjson_str(err, "Code", NULL),
			    provjson_str(err, "Message", NULL),
			    rid ? rid : http_resp_header(resp, "x-tt-logid"), why);
	json_object_put(body);
}

/* POST action with payload; a 2xx answer without an error in resp, else the error, logged
 * once. */
static int volc_send(struct ws_provider *v, const char *action, const char *label,
		     struct json_object *payload, struct http_response *resp)
{
	const char *body = json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN);
	struct http_request req;
	int r;

	if (!body)
		return -ENOMEM;
	r = http_req_init(&req, "POST", v->c.endpoint, "/");
	if (r < 0)
		return r;
	req.sign = volc_sign;
	req.sign_ctx = v;
	req.classify = volc_classify;
	req.label = label;
	req.id_header = "x-tt-logid";
	if (!(r = http_req_query(&req, "Action", action)) &&
	    !(r = http_req_query(&req, "Version", VOLC_VERSION)) &&
	    !(r = http_req_header(&req, "Content-Type", "application/json")) &&
	    !(r = http_req_body(&req, body, strlen(body))))
		r = http_perform(v->c.http, &req, resp);
	http_req_free(&req);
	return provider_answer("volc", action, r, resp, volc_log, volc_classify_error);
}

static int volc_resource_record(struct json_object *item, int show_secrets, struct prov_page *out)
{
	struct prov_record r = {.kind = VOLC_RESOURCE, .kind_name = "code_source"};
	struct json_object *conf = provjson_get(item, "Configuration", json_type_object);
	size_t nlen, ulen;
	const char *url = provjson_str(provjson_get(conf, "Git", json_type_object), "Url", &ulen);
	const char *id = provjson_str(item, "Id", NULL);
	const char *name;

	if (!id || !*id)
		return 0;
	name = provjson_str(item, "Name", &nlen);
	if (!name)
		name = id, nlen = strlen(id);
	r.id = strdup(id);
	r.name = provider_strndup(name, nlen);
	r.name_len = nlen;
	r.meta = redact_meta_json(item, show_secrets);
	r.ctime = provjson_time(provjson_str(item, "CreateTime", NULL));
	r.mtime = provjson_time(provjson_str(item, "UpdateTime", NULL));
	if (!r.id || !r.name || !r.meta ||
	    redact_url(url, ulen, "Configuration.Git.Url", id, show_secrets, &r.url) < 0 ||
	    prov_page_add(out, &r) < 0) {
		prov_record_free(&r);
		return -ENOMEM;
	}
	return 0;
}

static int volc_workspace_record(struct json_object *item, struct prov_page *out)
{
	const char *id = provjson_str(item, "Id", NULL);
	const char *ctime = provjson_str(item, "CreateTime", NULL);
	size_t len;
	const char *label = provjson_str(item, "Name", &len);

	if (!id || !*id)
		return 0;
	return provscope_add_container(out, id, VOLC_WORKSPACE, "workspace", provjson_time(ctime),
				       label && len ? label : NULL, len);
}

static long volc_total(struct json_object *result)
{
	struct json_object *t = provjson_get(result, "TotalCount", json_type_int);
	int64_t v = t ? json_object_get_int64(t) : -1;

	return v < 0 || v > LONG_MAX ? -1 : (long)v;
}

/* The Result object of a ListResources or ListWorkspaces answer → records. */
static int volc_parse_result(struct json_object *result, int workspaces, int show_secrets,
			     struct prov_page *out)
{
	struct json_object *items;
	int r = 0;

	if (!json_object_is_type(result, json_type_object))
		return -EIO;
	out->total = volc_total(result);
	if (!json_object_object_get_ex(result, "Items", &items))
		return out->total == 0 ? 0 : -EIO; /* an empty list may be left out */
	if (!json_object_is_type(items, json_type_array))
		return -EIO;
	for (size_t i = 0; r == 0 && i < json_object_array_length(items); i++) {
		struct json_object *it = json_object_array_get_idx(items, i);

		if (!json_object_is_type(it, json_type_object))
			continue;
		r = workspaces ? volc_workspace_record(it, out)
			       : volc_resource_record(it, show_secrets, out);
	}
	return r;
}

/* A whole answer → records; an answer naming an error is no listing. */
static int volc_parse_answer(struct json_object *obj, int workspaces, int show_secrets,
			     struct prov_page *out)
{
	if (volc_error_code(obj))
		return -EIO;
	return volc_parse_result(provjson_get(obj, "Result", json_type_object), workspaces,
				 show_secrets, out);
}

static int volc_parse(const char *body, size_t len, int workspaces, int show_secrets,
		      struct prov_page *out)
{
	struct json_object *obj = provjson_parse(body, len);
	int r = volc_parse_answer(obj, workspaces, show_secrets, out);

	json_object_put(obj);
	return r;
}

int volc_parse_resources(const char *body, size_t len, int show_secrets, struct prov_page *out)
{
	return volc_parse(body, len, 0, show_secrets, out);
}

int volc_parse_workspaces(const char *body, size_t len, struct prov_page *out)
{
	return volc_parse(body, len, 1, 0, out);
}

/* {"WorkspaceId":ws, "PageNumber":page, "PageSize":size, "Filter":{"Name":name, "Ids":ids}}. */
static struct json_object *volc_payload(const char *ws, const char *name, struct json_object *ids,
					long page, int size)
{
	struct json_object *o = json_object_new_object(), *f = NULL;
	int bad = !o;

	if (!bad && ws)
		bad |= json_object_object_add(o, "WorkspaceId", json_object_new_string(ws));
	if (!bad)
		bad |= json_object_object_add(o, "PageNumber", json_object_new_int64(page));
	if (!bad)
		bad |= json_object_object_add(o, "PageSize", json_object_new_int(size));
	if (!bad && (name || ids)) {
		f = json_object_new_object();
		bad = !f ||
		      (name && json_object_object_add(f, "Name", json_object_new_string(name))) ||
		      (ids && json_object_object_add(f, "Ids", json_object_get(ids))) ||
		      json_object_object_add(o, "Filter", f);
		if (bad)
			json_object_put(f);
	}
	if (bad) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* A 2xx answer → records; an error named inside it, or a body of the wrong shape, is logged
 * once. */
static int volc_answer(const char *action, const struct http_response *resp, int workspaces,
		       int show_secrets, struct prov_page *out)
{
	struct json_object *obj = provjson_parse(resp->body, resp->len);
	const char *code = volc_error_code(obj);
	int r;

	if (code) {
		volc_log(action, resp, NULL);
		r = volc_code_errno(resp->status, code);
	} else {
		r = volc_parse_result(provjson_get(obj, "Result", json_type_object), workspaces,
				      show_secrets, out);
		if (r == -EIO)
			volc_log(action, resp, "the answer is not the expected JSON");
	}
	json_object_put(obj);
	return r;
}

/* One page of ListResources (ws set) or ListWorkspaces (of ids, when set) into out. */
static int volc_page(struct ws_provider *v, const char *ws, const char *name,
		     struct json_object *ids, long page, int size, struct prov_page *out)
{
	struct json_object *payload = volc_payload(ws, name, ids, page, size);
	const char *action = ws ? "ListResources" : "ListWorkspaces";
	struct http_response resp = {0};
	size_t before = out->n;
	char label[160];
	int r;

	if (!payload)
		return -ENOMEM;
	snprintf(label, sizeof(label), "volc %s%s%s page %ld%s", action, ws ? " ws=" : "",
		 ws ? ws : "", page,
		 name  ? " (name filter)"
		 : ids ? " (the configured ids)"
		       : "");
	r = volc_send(v, action, label, payload, &resp);
	if (r == 0) {
		out->bytes += resp.len; /* the pager bounds a listing's bytes */
		r = volc_answer(action, &resp, !ws, v->c.show_secrets, out);
	}
	if (r == 0)
		provider_page_done(out, page, size, before);
	json_object_put(payload);
	http_resp_free(&resp);
	return r;
}

/* n ids as a JSON array, or NULL. */
static struct json_object *volc_ids(char *const *ids, size_t n)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < n; i++) {
		struct json_object *id = json_object_new_string(ids[i]);

		if (!id || json_object_array_add(a, id)) {
			json_object_put(id);
			json_object_put(a);
			a = NULL;
		}
	}
	return a;
}

static int volc_fetch(struct ws_provider *v, const char *ws, const char *name, char *const *ids,
		      size_t n, long page, long size, struct prov_page *out)
{
	struct json_object *list = ids ? volc_ids(ids, n) : NULL;
	int r = ids && !list ? -ENOMEM : volc_page(v, ws, name, list, page, (int)size, out);

	json_object_put(list);
	return r;
}

static const struct ws_cloud volc_cloud = {
    .fetch = volc_fetch,
    .workspace_kind = VOLC_WORKSPACE,
    .page_size = VOLC_PAGE,
    .check_pages = VOLC_CHECK_PAGES,
};

static struct provider *volc_new(const struct prov_conf *conf, const struct provider_env *env,
				 char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	return ws_provider_new(&volc_cloud, conf, env);
}

static const struct prov_key volc_keys[] = {
    {"access_key", PROV_KEY_ID, 0, {"VOLCENGINE_ACCESS_KEY", "VOLC_ACCESSKEY"}},
    {"secret_key", PROV_SECRET, 1, {"VOLCENGINE_SECRET_KEY", "VOLC_SECRETKEY"}},
    {"security_token", PROV_TOKEN, 1, {"VOLCENGINE_SESSION_TOKEN"}},
    {"region", PROV_REGION, 0, {"VOLCENGINE_REGION"}},
    {"endpoint", PROV_ENDPOINT, 0, {NULL}},
    {"workspaces", PROV_SCOPES, 0, {NULL}},
    {NULL, 0, 0, {NULL}},
};

const struct prov_desc volc_desc = {
    .name = "volc",
    .keys = volc_keys,
    .region = "cn-beijing",
    .endpoint = "https://open.volcengineapi.com",
    .credfile = credfile_volc,
    .create = volc_new,
};
