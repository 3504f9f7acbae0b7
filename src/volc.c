/* volc: Volcengine continuous delivery (service cp, 2023-05-01), HMAC-SHA256 signed POSTs
 * with JSON bodies. Root: workspaces (configured, or ListWorkspaces); a workspace:
 * ListResources, the code sources. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "log.h"
#include "provider.h"
#include "sign.h"

#define VOLC_VERSION   "2023-05-01"
#define VOLC_SERVICE   "cp"
#define VOLC_PAGE      100 /* the API's maximum */
#define VOLC_MAX_PAGES 50  /* bound on a look-up's pages */

enum volc_kind { VOLC_WORKSPACE = 1, VOLC_RESOURCE };

struct volc {
	struct provider base;
	struct prov_common c;
};

static int volc_sign(struct http_request *req, void *ctx)
{
	struct volc *v = ctx;
	struct sign_creds creds = {v->c.key_id, v->c.secret, v->c.token};

	return sign_volc(req, &creds, v->c.region ? v->c.region : "cn-beijing", VOLC_SERVICE,
			 NULL);
}

static const char *volc_error_code(struct json_object *body)
{
	struct json_object *meta = provider_json_get(body, "ResponseMetadata", json_type_object);

	return provider_json_str(provider_json_get(meta, "Error", json_type_object), "Code", NULL);
}

static enum http_verdict volc_classify(const struct http_response *resp, void *ctx)
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
	code = volc_error_code(body);
	if (code && (!strcmp(code, "FlowLimitExceeded") || !strcmp(code, "InternalError")))
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

/* One line naming the call, status, code and request id; never a secret. */
static int volc_fail(const char *action, const struct http_response *resp)
{
	struct json_object *body = json_tokener_parse(resp->body ? resp->body : "");
	struct json_object *meta = provider_json_get(body, "ResponseMetadata", json_type_object);
	struct json_object *err = provider_json_get(meta, "Error", json_type_object);
	const char *code = provider_json_str(err, "Code", NULL);
	const char *msg = provider_json_str(err, "Message", NULL);
	const char *rid = provider_json_str(meta, "RequestId", NULL);
	int r = volc_code_errno(resp->status, code);

	log_msg(LOG_ERR, "volc: %s failed: HTTP %ld %s: %.200s (request id %s)", action,
		resp->status, code ? code : "(no code)", msg ? msg : "", rid ? rid : "none");
	json_object_put(body);
	return r;
}

/* POST action with body; the "Result" object of a 2xx answer in *out (owned by *root). */
static int volc_call(struct volc *v, const char *action, const char *label,
		     struct json_object *payload, struct json_object **root, struct json_object **out)
{
	struct http_request req;
	struct http_response resp = {0};
	const char *body = json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN);
	int r;

	*root = *out = NULL;
	r = http_req_init(&req, "POST", v->c.endpoint, "/");
	if (r < 0)
		return r;
	req.sign = volc_sign;
	req.sign_ctx = v;
	req.classify = volc_classify;
	req.label = label;
	if (!(r = http_req_query(&req, "Action", action)) &&
	    !(r = http_req_query(&req, "Version", VOLC_VERSION)) &&
	    !(r = http_req_header(&req, "Content-Type", "application/json")) &&
	    !(r = http_req_body(&req, body, strlen(body))))
		r = http_perform(v->c.http, &req, &resp);
	if (r < 0) {
		log_msg(LOG_ERR, "volc: %s failed: %s", action, strerror(-r));
		goto out;
	}
	if (resp.status < 200 || resp.status > 299) {
		r = volc_fail(action, &resp);
		goto out;
	}
	*root = json_tokener_parse(resp.body);
	*out = provider_json_get(*root, "Result", json_type_object);
	log_msg(LOG_DEBUG, "%s: request id %s", label,
		provider_json_str(provider_json_get(*root, "ResponseMetadata", json_type_object),
				  "RequestId", NULL) ?: "-");
	if (!*out) {
		log_msg(LOG_ERR, "volc: %s: the answer has no Result object", action);
		r = -EIO;
	}
out:
	http_resp_free(&resp);
	http_req_free(&req);
	return r;
}

static int volc_resource_record(struct json_object *item, int show_secrets, struct prov_page *out)
{
	struct prov_record r = {.kind = VOLC_RESOURCE};
	struct json_object *conf = provider_json_get(item, "Configuration", json_type_object);
	const char *url = provider_json_str(provider_json_get(conf, "Git", json_type_object), "Url",
					    NULL);
	const char *id = provider_json_str(item, "Id", NULL);
	const char *name;
	size_t nlen;

	if (!id || !*id)
		return 0;
	name = provider_json_str(item, "Name", &nlen);
	if (!name)
		name = id, nlen = strlen(id);
	r.id = strdup(id);
	r.name = provider_strndup(name, nlen);
	r.name_len = nlen;
	r.meta = provider_meta_json(item, show_secrets);
	r.url = strdup(url ? url : "");
	r.ctime = provider_parse_time(provider_json_str(item, "CreateTime", NULL));
	r.mtime = provider_parse_time(provider_json_str(item, "UpdateTime", NULL));
	if (!r.id || !r.name || !r.meta || !r.url || prov_page_add(out, &r) < 0) {
		prov_record_free(&r);
		return -ENOMEM;
	}
	return 0;
}

static int volc_parse_result(struct json_object *result, int workspaces, int show_secrets,
			     struct prov_page *out)
{
	struct json_object *items = provider_json_get(result, "Items", json_type_array);
	struct json_object *total = provider_json_get(result, "TotalCount", json_type_int);
	int r = 0;

	out->total = total ? (long)json_object_get_int64(total) : -1;
	if (!items)
		return out->total == 0 ? 0 : -EIO;
	for (size_t i = 0; r == 0 && i < json_object_array_length(items); i++) {
		struct json_object *it = json_object_array_get_idx(items, i);
		const char *id = provider_json_str(it, "Id", NULL);

		if (workspaces)
			r = id && *id ? provider_add_container(out, id, VOLC_WORKSPACE, 0) : 0;
		else if (json_object_is_type(it, json_type_object))
			r = volc_resource_record(it, show_secrets, out);
	}
	return r;
}

static int volc_parse(const char *body, size_t len, int workspaces, int show_secrets,
		      struct prov_page *out)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;
	int r = -EIO;

	if (!tok)
		return -ENOMEM;
	obj = json_tokener_parse_ex(tok, body, (int)len);
	if (obj && json_tokener_get_error(tok) == json_tokener_success)
		r = volc_parse_result(provider_json_get(obj, "Result", json_type_object), workspaces,
				      show_secrets, out);
	json_object_put(obj);
	json_tokener_free(tok);
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

static struct json_object *volc_payload(const char *ws, const char *name, long page, int size)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (ws)
		json_object_object_add(o, "WorkspaceId", json_object_new_string(ws));
	json_object_object_add(o, "PageNumber", json_object_new_int64(page));
	json_object_object_add(o, "PageSize", json_object_new_int(size));
	if (name) {
		struct json_object *f = json_object_new_object();

		json_object_object_add(f, "Name", json_object_new_string(name));
		json_object_object_add(o, "Filter", f);
	}
	return o;
}

static int volc_fetch(struct volc *v, const char *ws, const char *name, long page, int size,
		      struct prov_page *out)
{
	struct json_object *payload = volc_payload(ws, name, page, size);
	struct json_object *root = NULL, *result;
	const char *action = ws ? "ListResources" : "ListWorkspaces";
	size_t before = out->n;
	char label[160];
	int r;

	if (!payload)
		return -ENOMEM;
	snprintf(label, sizeof(label), "volc %s%s%s page %ld%s", action, ws ? " ws=" : "",
		 ws ? ws : "", page, name ? " (name filter)" : "");
	r = volc_call(v, action, label, payload, &root, &result);
	if (r == 0) {
		r = volc_parse_result(result, !ws, v->c.show_secrets, out);
		if (r == -EIO)
			log_msg(LOG_ERR, "volc: %s: the answer has no Items list", action);
	}
	if (r == 0)
		provider_page_done(out, page, size, before);
	json_object_put(root);
	json_object_put(payload);
	return r;
}

static int volc_check(struct provider *base)
{
	struct prov_page pg = {0};
	int r = volc_fetch((struct volc *)base, NULL, NULL, 1, 1, &pg);

	prov_page_free(&pg);
	return r;
}

static int volc_list_page(struct provider *base, const struct prov_record *dir, long page,
			  struct prov_page *out)
{
	struct volc *v = (struct volc *)base;

	if (dir || !v->c.nscopes)
		return volc_fetch(v, dir ? dir->id : NULL, NULL, page, VOLC_PAGE, out);
	return provider_scopes_page(v->c.scopes, v->c.nscopes, VOLC_WORKSPACE, out);
}

/* Every page of Filter.Name: a superset of the entries whose name holds term. */
static int volc_lookup(struct provider *base, const struct prov_record *dir, const char *term,
		       struct prov_page *out)
{
	int r = 0;

	for (long page = 1; page <= VOLC_MAX_PAGES; page++) {
		out->last = 0;
		r = volc_fetch((struct volc *)base, dir->id, term, page, VOLC_PAGE, out);
		if (r < 0 || out->last)
			break;
	}
	return r;
}

static void volc_destroy(struct provider *base)
{
	struct volc *v = (struct volc *)base;

	provider_common_free(&v->c);
	free(v);
}

static const struct provider_ops volc_ops = {
	.check = volc_check,
	.list_page = volc_list_page,
	.lookup = volc_lookup,
	.destroy = volc_destroy,
};

struct provider *volc_new(const struct prov_conf *conf, const struct provider_env *env)
{
	struct volc *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->base.ops = &volc_ops;
	v->base.name = "volc";
	if (provider_common_init(&v->c, conf, env) < 0) {
		free(v);
		return NULL;
	}
	return &v->base;
}
