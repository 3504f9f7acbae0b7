/* provider: the one small interface every cloud implements, and the records it returns.
 * A provider knows its cloud's requests, paging and JSON; nothing of FUSE or caching. */
#ifndef CODESRCFS_PROVIDER_H
#define CODESRCFS_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http.h"

struct json_object;

/* One entry of a listing: a workspace, organization, group, repository or code source. */
struct prov_record {
	char *id;
	char *name; /* raw display name; may hold NUL bytes */
	size_t name_len;
	char *meta;    /* meta.json contents (redacted), or NULL for no meta.json */
	char *url;     /* url file contents without the newline, or NULL */
	char *branch;  /* branch file contents without the newline, or NULL */
	char *web_url; /* the entry's page in the cloud's console, or NULL */
	int64_t ctime; /* creation/modification times, 0 when unknown */
	int64_t mtime;
	int kind;		 /* provider-private: what sort of entry this is */
	char *aux;		 /* provider-private: e.g. the scope id or a full path */
	unsigned container : 1;	 /* has children, listed with list_page */
	unsigned incomplete : 1; /* call complete() before url/branch/meta are served */
};

struct prov_page {
	struct prov_record *recs;
	size_t n, cap;
	long total;	/* entries in the whole listing, -1 when unknown */
	long page_size; /* entries on a full page as the server pages; 0 when unknown */
	int last;	/* set when this page is known to be the final one */
};

struct provider;

struct provider_ops {
	/* One cheap authenticated call, made at mount. 0 or -EACCES/-EIO. */
	int (*check)(struct provider *p);
	/* Page `page` (from 1) of dir's children; dir NULL means the provider's own root
	 * (its workspaces or organizations). 0 or -errno. */
	int (*list_page)(struct provider *p, const struct prov_record *dir, long page,
			 struct prov_page *out);
	/* Candidates for a name in dir through the API's filter: a superset of the entries
	 * whose display name contains term. NULL when the API has no filter. */
	int (*lookup)(struct provider *p, const struct prov_record *dir, const char *term,
		      struct prov_page *out);
	/* Fill in what the listing lacked (rec->incomplete). NULL when never needed. */
	int (*complete)(struct provider *p, struct prov_record *rec);
	/* Forget anything the provider memoised (SIGHUP). NULL when it keeps nothing. */
	void (*flush)(struct provider *p);
	void (*destroy)(struct provider *p);
};

struct provider {
	const struct provider_ops *ops;
	const char *name; /* directory name at the root: "pai", "volc", "codeup" */
};

struct provider_env {
	struct http *http;
	int show_secrets;
	long dir_ttl; /* seconds a provider may reuse an organization-wide listing */
};

/* Create the provider for kind from its configuration. NULL with err on failure. */
struct provider *provider_new(enum prov_kind kind, const struct prov_conf *conf,
			      const struct provider_env *env, char *err, size_t errlen);

/* Pretty-printed meta.json of obj with a trailing newline, secrets redacted unless
 * show_secrets; obj's values are left as they were, but json-c keeps the printed text
 * inside obj, so obj must not be in use by another thread. Caller frees. */
char *provider_meta_json(struct json_object *obj, int show_secrets);
/* The url file of a record from the clone URL s (len bytes, NULL when the item has none):
 * *out NULL when s is NULL or no usable clone URL (empty, a control byte such as NUL or
 * newline, a leading '-'; unless what is NULL, one line is logged naming what (the field)
 * and id, never the value), else a copy of s without the password of its user information
 * (unless show_secrets). 0 or -ENOMEM. */
int provider_url(const char *s, size_t len, const char *what, const char *id, int show_secrets,
		 char **out);
/* Seconds since the epoch of an ISO 8601 time ("2021-01-18T12:52:15Z", "+08:00"), 0 if bad. */
int64_t provider_parse_time(const char *s);
/* The JSON value of exactly len bytes of body (white space may trail), or NULL when it is
 * truncated, malformed or followed by anything else. Caller puts it. */
struct json_object *provider_json_parse(const char *body, size_t len);
/* The string at key of a JSON object, or NULL when absent or not a string; len may be NULL. */
const char *provider_json_str(struct json_object *obj, const char *key, size_t *len);
/* The value at key of a JSON object when it has type t, else NULL. */
struct json_object *provider_json_get(struct json_object *obj, const char *key, int t);
/* A NUL-terminated copy of len bytes of s (which may hold NUL bytes), or NULL. */
char *provider_strndup(const char *s, size_t len);
/* Append a container record named by its id (a workspace or organization). 0 or -ENOMEM. */
int provider_add_container(struct prov_page *out, const char *id, int kind, int64_t ctime);
/* The configured scopes as one final page of containers. 0 or -ENOMEM. */
int provider_scopes_page(char *const *scopes, size_t n, int kind, struct prov_page *out);
/* What every provider keeps of its configuration and environment. */
struct prov_common {
	struct http *http;
	char *key_id, *secret, *token; /* token: STS, or NULL */
	char *region;
	char *endpoint;
	char **scopes; /* configured workspaces or organizations */
	size_t nscopes;
	int show_secrets;
	long dir_ttl;
};

/* Copy conf and env into c. 0 or -ENOMEM (c is then freed). */
int provider_common_init(struct prov_common *c, const struct prov_conf *conf,
			 const struct provider_env *env);
/* Free what c owns; secrets are wiped first. */
void provider_common_free(struct prov_common *c);
/* Offset paging: set page_size (the server's, when a page came back short of asked while
 * more exist beyond it; an out->page_size already set below asked is kept, so a loop over
 * pages into one out remembers it) and last, given the records added since before. With
 * no total (-1), only a short page is the last. */
void provider_page_done(struct prov_page *out, long page, long asked, size_t before);
/* One page of a provider's name filter in scope (a workspace) for term. */
typedef int (*provider_filter_fn)(struct provider *p, const char *scope, const char *term,
				  long page, struct prov_page *out);
/* Every page of a name filter, bounded; a superset of the entries whose name holds term. */
int provider_filter_pages(struct provider *p, const char *scope, const char *term,
			  provider_filter_fn fetch, struct prov_page *out);
/* Append a copy of r's pointers to pg (pg takes ownership of them). 0 or -ENOMEM. */
int prov_page_add(struct prov_page *pg, const struct prov_record *r);
/* Free every record in pg and reset it. */
void prov_page_free(struct prov_page *pg);
/* Free what r owns. */
void prov_record_free(struct prov_record *r);
/* Deep copy of src into dst. 0 or -ENOMEM. */
int prov_record_copy(struct prov_record *dst, const struct prov_record *src);

/* Constructors of the clouds, used by provider_new. */
struct provider *pai_new(const struct prov_conf *conf, const struct provider_env *env);
struct provider *volc_new(const struct prov_conf *conf, const struct provider_env *env);
struct provider *codeup_new(const struct prov_conf *conf, const struct provider_env *env);

/* ---- exposed for unit tests and fuzzing: one response body → records -------------- */

/* PAI ListCodeSources body → records; out->total from TotalCount. 0 or -EIO. */
int pai_parse_codesources(const char *body, size_t len, int show_secrets, struct prov_page *out);
/* PAI ListWorkspaces body → workspace containers. 0 or -EIO. */
int pai_parse_workspaces(const char *body, size_t len, struct prov_page *out);
/* PAI error answer → -EACCES (rejected credentials or permission) or -EIO. */
int pai_classify_error(long status, const char *body, size_t len);
/* PAI retry decision: 429, 5xx, and throttling named by the body's Code on any status. */
enum http_verdict pai_classify(const struct http_response *resp, void *ctx);
/* Volcengine ListResources body → records. 0 or -EIO. */
int volc_parse_resources(const char *body, size_t len, int show_secrets, struct prov_page *out);
/* Volcengine ListWorkspaces body → workspace containers. 0 or -EIO. */
int volc_parse_workspaces(const char *body, size_t len, struct prov_page *out);
/* Volcengine error answer (ResponseMetadata.Error.Code, status) → -EACCES or -EIO. */
int volc_classify_error(long status, const char *body, size_t len);
/* Volcengine retry decision: 429, 5xx and FlowLimitExceeded. */
enum http_verdict volc_classify(const struct http_response *resp, void *ctx);
/* Codeup ListNamespaces body (a bare array) → group records of organization org; top keeps
 * only groups whose fullPath has one '/'. 0 or -EIO. */
int codeup_parse_namespaces(const char *body, size_t len, const char *org, int top,
			    int show_secrets, struct prov_page *out);
/* Codeup ListRepositories body → the repositories directly in the group of full path full
 * and id gid (both NULL: those of no group). 0 or -EIO. */
int codeup_parse_repositories(const char *body, size_t len, const char *org, const char *full,
			      const char *gid, int show_secrets, struct prov_page *out);
/* Codeup error answer → -EACCES (401, 403, token error codes) or -EIO. */
int codeup_classify_error(long status, const char *body, size_t len);

#endif
