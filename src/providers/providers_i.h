/* providers_i: what the clouds share (implemented in provider.c, provscope.c, redact.c and
 * provjson.c) and what tests and fuzzers reach inside each cloud. Private: only
 * src/providers/, those files and tests/unit, tests/fuzz include it; the rest of codesrcfs
 * sees include/provider.h. */
#ifndef CODESRCFS_PROVIDERS_I_H
#define CODESRCFS_PROVIDERS_I_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "provider.h"

struct json_object;

/* ---- provider.c: shared by the clouds ------------------------------------------------ */

/* The one line a failed answer of call logs: status, code, message (why instead, when set),
 * request id, as the cloud's error body or headers name them (NULL: none); never a secret. */
void provider_log_answer(const char *cloud, const char *call, const struct http_response *resp,
			 const char *code, const char *msg, const char *rid, const char *why);
/* A cloud's line for a failed answer of call (why: NULL for the body's own words). */
typedef void (*provider_log_fn)(const char *call, const struct http_response *resp,
				const char *why);
/* A cloud's errno for an error answer: -EACCES or -EIO. */
typedef int (*provider_errno_fn)(long status, const char *body, size_t len);
/* What http_perform's r and resp mean to the cloud: 0 for a 2xx answer; else r (a failure
 * logged, at debug level for a reader that gave up or the daemon stopping) or classify's
 * errno of the error answer, logged by log. */
int provider_answer(const char *cloud, const char *call, int r, const struct http_response *resp,
		    provider_log_fn log, provider_errno_fn classify);
/* A NUL-terminated copy of len bytes of s (which may hold NUL bytes), or NULL. */
char *provider_strndup(const char *s, size_t len);
/* Offset paging: set page_size (the server's, when a page came back short of asked while
 * more exist beyond it; an out->page_size already set below asked is kept, so a loop over
 * pages into one out remembers it) and last, given the records added since before. With
 * no total (-1), only a short page is the last. */
void provider_page_done(struct prov_page *out, long page, long asked, size_t before);
/* One page of a provider's name filter in dir for term; ctx is provider_filter_pages'. */
typedef int (*provider_filter_fn)(struct provider *p, const struct prov_record *dir,
				  const char *term, long page, struct prov_page *out, void *ctx);
/* Every page of a name filter, bounded; a superset of the entries whose name holds term. */
int provider_filter_pages(struct provider *p, const struct prov_record *dir, const char *term,
			  provider_filter_fn fetch, void *ctx, struct prov_page *out);

/* ---- redact.c: no secret in what a record shows -------------------------------------- */

/* Pretty-printed meta.json of obj with a trailing newline, secrets redacted unless
 * show_secrets. The secrets are swapped out of obj while it prints and put back after, so
 * its values (and pointers into them) are as they were, but obj must not be in use by
 * another thread. Caller frees. */
char *redact_meta_json(struct json_object *obj, int show_secrets);
/* The url file of a record from the clone URL s (len bytes, NULL when the item has none):
 * *out NULL when s is NULL or no usable clone URL (empty, a control byte such as NUL or
 * newline, a leading '-'; unless what is NULL, one line is logged naming what (the field)
 * and id, never the value), else a copy of s without the password of its user information
 * (unless show_secrets). 0 or -ENOMEM. */
int redact_url(const char *s, size_t len, const char *what, const char *id, int show_secrets,
	       char **out);

/* ---- provjson.c: reading an answer ----------------------------------------------------- */

/* The JSON value of exactly len bytes of body (white space may trail), or NULL when it is
 * truncated, malformed or followed by anything else. Caller puts it. */
struct json_object *provjson_parse(const char *body, size_t len);
/* The string at key of a JSON object, or NULL when absent or not a string; len may be NULL. */
const char *provjson_str(struct json_object *obj, const char *key, size_t *len);
/* The value at key of a JSON object when it has type t, else NULL. */
struct json_object *provjson_get(struct json_object *obj, const char *key, int t);
/* Seconds since the epoch of an ISO 8601 time ("2021-01-18T12:52:15Z", "+08:00"), 0 if bad. */
int64_t provjson_time(const char *s);

/* ---- provscope.c: the common configuration, the configured workspaces or organizations */

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
	struct provscope_seed *seed; /* provscope_seed_keep's, until the root's first listing */
};

/* Copy conf and env into c. 0 or -ENOMEM (c is then freed). */
int provscope_common_init(struct prov_common *c, const struct prov_conf *conf,
			  const struct provider_env *env);
/* Free what c owns; secrets are wiped first. */
void provscope_common_free(struct prov_common *c);

/* Append a container record named by its id (a workspace or organization; kind_name as in
 * struct prov_record), with label (label_len bytes, NULL for none) its display name. 0 or
 * -ENOMEM. */
int provscope_add_container(struct prov_page *out, const char *id, int kind, const char *kind_name,
			    int64_t ctime, const char *label, size_t label_len);
/* The configured scopes as one final page of containers. 0 or -ENOMEM. */
int provscope_page(char *const *scopes, size_t n, int kind, const char *kind_name,
		   struct prov_page *out);
/* The records the cloud's listing call answers for the workspaces or organizations ids
 * (n of them; it may answer more), appended to found. 0 or -errno. */
typedef int (*provscope_ids_fn)(struct provider *p, char *const *ids, size_t n,
				struct prov_page *found);
/* c's configured scopes as one final page of containers, each with the label (display
 * name) and creation time of what fetch found of it, or of what the check at mount found
 * (provscope_seed_keep) when no dir_ttl passed since; a failed fetch leaves them unnamed.
 * 0, -ENOMEM, or the fetch's -EINTR or -ECANCELED (its reader gave up, or the daemon
 * stops). */
int provscope_named(struct provider *p, struct prov_common *c, int kind, const char *kind_name,
		    provscope_ids_fn fetch, struct prov_page *out);
/* Keep found (taken), what the check at mount found of c's configured scopes, for the
 * first listing of the root: the same call need not be made twice in a row. */
void provscope_seed_keep(struct prov_common *c, struct prov_page *found);
/* Forget what provscope_seed_keep kept (SIGHUP). */
void provscope_seed_drop(struct prov_common *c);
/* 0 when each of the n scopes is the id of a record of found; else -ENOENT and, unless why
 * is NULL, one line in why naming those that are not ("workspace 9999 not found: no such
 * id, or these credentials cannot see it"); what names one scope: "workspace". */
int provscope_confirm(char *const *scopes, size_t n, const struct prov_page *found,
		      const char *what, char *why, size_t whylen);

/* ---- clouds whose root is workspaces: PAI, Volcengine (workspaces.c) ----------------- */

struct ws_provider;
/* What such a cloud brings: its listing request, and the numbers of its paging. */
struct ws_cloud {
	/* One page (from 1, size entries asked) into out: of workspace ws's code sources
	 * whose name the cloud's filter matches with name (NULL: all), or with ws NULL of
	 * the workspaces (only those of the n ids when ids is set). 0 or -errno. */
	int (*fetch)(struct ws_provider *w, const char *ws, const char *name, char *const *ids,
		     size_t n, long page, long size, struct prov_page *out);
	int workspace_kind; /* the kind of a workspace record */
	long page_size;	    /* asked of every listing page */
	long check_pages;   /* pages of the configured workspaces read at most, at mount */
};

/* The provider of a cloud whose root is workspaces: its fetch behind the shared check,
 * listing, name filter and SIGHUP flush. */
struct ws_provider {
	struct provider base;
	struct prov_common c;
	const struct ws_cloud *cloud;
};

/* A provider of cloud for conf, or NULL (out of memory). */
struct provider *ws_provider_new(const struct ws_cloud *cloud, const struct prov_conf *conf,
				 const struct provider_env *env);

/* ---- one response body → records, for unit tests and fuzzing ------------------------ */

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
/* Codeup ListOrganizations body (a bare array) → organization containers, each with its
 * name as label. 0 or -EIO. */
int codeup_parse_organizations(const char *body, size_t len, struct prov_page *out);
/* Codeup error answer → -EACCES (401, 403, token error codes) or -EIO. */
int codeup_classify_error(long status, const char *body, size_t len);

#endif
