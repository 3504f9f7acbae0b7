/* pai: Alibaba Cloud PAI, AIWorkSpace API 2021-02-04 (ROA, ACS3-HMAC-SHA256).
 * Root: workspaces (configured, or ListWorkspaces); a workspace: ListCodeSources. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "log.h"
#include "provider.h"
#include "sign.h"

#define PAI_VERSION   "2021-02-04"
#define PAI_PAGE      100 /* asked for; the server may give fewer (then its size wins) */
#define PAI_MAX_PAGES 50  /* bound on a look-up's pages */

enum pai_kind { PAI_WORKSPACE = 1, PAI_CODESOURCE };

struct pai {
	struct provider base;
	struct prov_common c;
};

static int pai_sign(struct http_request *req, void *ctx)
{
	struct pai *p = ctx;
	struct sign_creds creds = {p->c.key_id, p->c.secret, p->c.token};

	return sign_acs3(req, &creds, NULL, NULL);
}

/* Alibaba throttles with HTTP 400 and a Code in the body: the status alone misleads. */
static enum http_verdict pai_classify(const struct http_response *resp, void *ctx)
{
	struct json_object *body;
	const char *code;
	enum http_verdict v = HTTP_DONE;

	(void)ctx;
	if (resp->status == 429 || resp->status >= 500)
		return HTTP_RETRY;
	if (resp->status < 400)
		return HTTP_DONE;
	body = json_tokener_parse(resp->body ? resp->body : "");
	code = provider_json_str(body, "Code", NULL);
	if (code && (!strncmp(code, "Throttling", 10) || !strcmp(code, "ServiceUnavailable")))
		v = HTTP_RETRY;
	json_object_put(body);
	return v;
}

static int pai_code_errno(long status, const char *code)
{
	static const char *const denied[] = {"SignatureDoesNotMatch", "IncompleteSignature",
					     "InvalidAccessKeyId",    "InvalidSecurityToken",
					     "Forbidden",             "NoPermission",
					     NULL};

	for (size_t i = 0; code && denied[i]; i++)
		if (!strncmp(code, denied[i], strlen(denied[i])))
			return -EACCES;
	return status == 401 || status == 403 ? -EACCES : -EIO;
}

/* One line naming the call, status, code and request id; never a secret. */
static int pai_fail(const char *action, const struct http_response *resp)
{
	struct json_object *body = json_tokener_parse(resp->body ? resp->body : "");
	const char *code = provider_json_str(body, "Code", NULL);
	const char *msg = provider_json_str(body, "Message", NULL);
	const char *rid = provider_json_str(body, "RequestId", NULL);
	int r = pai_code_errno(resp->status, code);

	if (!rid)
		rid = http_resp_header(resp, "x-acs-request-id");
	log_msg(LOG_ERR, "pai: %s failed: HTTP %ld %s: %.200s (request id %s)", action,
		resp->status, code ? code : "(no code)", msg ? msg : "", rid ? rid : "none");
	json_object_put(body);
	return r;
}

/* GET path with the query in req; the parsed body of a 2xx answer in *out. */
static int pai_call(struct pai *p, const char *action, const char *label,
		    struct http_request *req, struct json_object **out)
{
	struct http_response resp = {0};
	int r;

	*out = NULL;
	req->sign = pai_sign;
	req->sign_ctx = p;
	req->classify = pai_classify;
	req->label = label;
	req->id_header = "x-acs-request-id";
	r = http_req_header(req, "x-acs-action", action);
	if (r == 0)
		r = http_req_header(req, "x-acs-version", PAI_VERSION);
	if (r == 0)
		r = http_perform(p->c.http, req, &resp);
	if (r < 0) {
		log_msg(LOG_ERR, "pai: %s failed: %s", action, strerror(-r));
		goto out;
	}
	if (resp.status < 200 || resp.status > 299) {
		r = pai_fail(action, &resp);
		goto out;
	}
	*out = json_tokener_parse(resp.body);
	if (!json_object_is_type(*out, json_type_object)) {
		log_msg(LOG_ERR, "pai: %s: the answer is not a JSON object", action);
		json_object_put(*out);
		*out = NULL;
		r = -EIO;
	}
out:
	http_resp_free(&resp);
	return r;
}

static int pai_request(struct pai *p, const char *path, struct http_request *req)
{
	return http_req_init(req, "GET", p->c.endpoint, path);
}

static int pai_codesource_record(struct json_object *item, int show_secrets,
				 struct prov_page *out)
{
	struct prov_record r = {.kind = PAI_CODESOURCE};
	const char *id = provider_json_str(item, "CodeSourceId", NULL);
	const char *url = provider_json_str(item, "CodeRepo", NULL);
	const char *branch = provider_json_str(item, "CodeBranch", NULL);
	const char *name;
	size_t nlen;

	if (!id || !*id)
		return 0; /* nothing to name it by */
	name = provider_json_str(item, "DisplayName", &nlen);
	if (!name)
		name = id, nlen = strlen(id);
	r.id = strdup(id);
	r.name = provider_strndup(name, nlen);
	r.name_len = nlen;
	r.meta = provider_meta_json(item, show_secrets);
	r.url = strdup(url ? url : "");
	r.branch = branch && *branch ? strdup(branch) : NULL;
	r.ctime = provider_parse_time(provider_json_str(item, "GmtCreateTime", NULL));
	r.mtime = provider_parse_time(provider_json_str(item, "GmtModifyTime", NULL));
	if (!r.id || !r.name || !r.meta || !r.url || (branch && *branch && !r.branch) ||
	    prov_page_add(out, &r) < 0) {
		prov_record_free(&r);
		return -ENOMEM;
	}
	return 0;
}

static long pai_total(struct json_object *body)
{
	struct json_object *t = provider_json_get(body, "TotalCount", json_type_int);

	if (!t) { /* some answers carry numbers as strings */
		const char *s = provider_json_str(body, "TotalCount", NULL);
		return s ? strtol(s, NULL, 10) : -1;
	}
	return (long)json_object_get_int64(t);
}

static int pai_parse_items(struct json_object *body, const char *key, int show_secrets,
			   struct prov_page *out)
{
	struct json_object *items = provider_json_get(body, key, json_type_array);
	int r = 0;

	out->total = pai_total(body);
	if (!items)
		return out->total == 0 ? 0 : -EIO;
	for (size_t i = 0; r == 0 && i < json_object_array_length(items); i++) {
		struct json_object *it = json_object_array_get_idx(items, i);

		if (!json_object_is_type(it, json_type_object))
			continue;
		if (!strcmp(key, "Workspaces")) {
			const char *id = provider_json_str(it, "WorkspaceId", NULL);

			if (id && *id)
				r = provider_add_container(
					out, id, PAI_WORKSPACE,
					provider_parse_time(provider_json_str(it, "GmtCreateTime",
									      NULL)));
		} else {
			r = pai_codesource_record(it, show_secrets, out);
		}
	}
	return r;
}

static int pai_parse(const char *body, size_t len, const char *key, int show_secrets,
		     struct prov_page *out)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;
	int r = -EIO;

	if (!tok)
		return -ENOMEM;
	obj = json_tokener_parse_ex(tok, body, (int)len);
	if (obj && json_tokener_get_error(tok) == json_tokener_success &&
	    json_object_is_type(obj, json_type_object))
		r = pai_parse_items(obj, key, show_secrets, out);
	json_object_put(obj);
	json_tokener_free(tok);
	return r;
}

int pai_parse_codesources(const char *body, size_t len, int show_secrets, struct prov_page *out)
{
	return pai_parse(body, len, "CodeSources", show_secrets, out);
}

int pai_parse_workspaces(const char *body, size_t len, struct prov_page *out)
{
	return pai_parse(body, len, "Workspaces", 0, out);
}

static int pai_fetch(struct pai *p, const char *action, const char *path, const char *ws,
		     const char *name, long page, struct prov_page *out)
{
	struct http_request req;
	struct json_object *body = NULL;
	char num[24], size[24];
	size_t before = out->n;
	const char *key = ws ? "CodeSources" : "Workspaces";
	char label[160];
	int r;

	snprintf(num, sizeof(num), "%ld", page);
	snprintf(size, sizeof(size), "%d", !ws && !strcmp(action, "check") ? 1 : PAI_PAGE);
	r = pai_request(p, path, &req);
	if (r < 0)
		return r;
	r = http_req_query(&req, "PageNumber", num);
	if (!r)
		r = http_req_query(&req, "PageSize", size);
	if (!r && ws)
		r = http_req_query(&req, "WorkspaceId", ws);
	if (!r && ws)
		r = http_req_query(&req, "SortBy", "GmtCreateTime");
	if (!r && ws)
		r = http_req_query(&req, "Order", "ASC");
	if (!r && name)
		r = http_req_query(&req, "DisplayName", name);
	snprintf(label, sizeof(label), "pai %s%s page %ld%s",
		 ws ? "ListCodeSources ws=" : "ListWorkspaces", ws ? ws : "", page,
		 name ? " (name filter)" : "");
	if (!r)
		r = pai_call(p, ws ? "ListCodeSources" : "ListWorkspaces", label, &req, &body);
	if (!r) {
		r = pai_parse_items(body, key, p->c.show_secrets, out);
		if (r == -EIO)
			log_msg(LOG_ERR, "pai: %s: the answer has no %s list", action, key);
	}
	if (!r)
		provider_page_done(out, page, PAI_PAGE, before);
	json_object_put(body);
	http_req_free(&req);
	return r;
}

static int pai_check(struct provider *base)
{
	struct pai *p = (struct pai *)base;
	struct prov_page pg = {0};
	int r = pai_fetch(p, "check", "/api/v1/workspaces", NULL, NULL, 1, &pg);

	prov_page_free(&pg);
	return r;
}

static int pai_list_page(struct provider *base, const struct prov_record *dir, long page,
			 struct prov_page *out)
{
	struct pai *p = (struct pai *)base;

	if (dir)
		return pai_fetch(p, "ListCodeSources", "/api/v1/codesources", dir->id, NULL, page,
				 out);
	if (!p->c.nscopes)
		return pai_fetch(p, "ListWorkspaces", "/api/v1/workspaces", NULL, NULL, page, out);
	return provider_scopes_page(p->c.scopes, p->c.nscopes, PAI_WORKSPACE, out);
}

/* Every page of the DisplayName filter: a superset of the entries whose name holds term. */
static int pai_lookup(struct provider *base, const struct prov_record *dir, const char *term,
		      struct prov_page *out)
{
	struct pai *p = (struct pai *)base;
	int r = 0;

	for (long page = 1; page <= PAI_MAX_PAGES; page++) {
		out->last = 0;
		r = pai_fetch(p, "ListCodeSources", "/api/v1/codesources", dir->id, term, page,
			      out);
		if (r < 0 || out->last)
			break;
	}
	return r;
}

static void pai_destroy(struct provider *base)
{
	struct pai *p = (struct pai *)base;

	provider_common_free(&p->c);
	free(p);
}

static const struct provider_ops pai_ops = {
	.check = pai_check,
	.list_page = pai_list_page,
	.lookup = pai_lookup,
	.destroy = pai_destroy,
};

struct provider *pai_new(const struct prov_conf *conf, const struct provider_env *env)
{
	struct pai *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->base.ops = &pai_ops;
	p->base.name = "pai";
	if (provider_common_init(&p->c, conf, env) < 0) {
		free(p);
		return NULL;
	}
	return &p->base;
}
