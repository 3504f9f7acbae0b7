/* providers_i: what the clouds share (implemented in provider.c) and what tests and
 * fuzzers reach inside each cloud. Private: only src/providers/, provider.c and
 * tests/unit, tests/fuzz include it; the rest of codesrcfs sees include/provider.h. */
#ifndef CODESRCFS_PROVIDERS_I_H
#define CODESRCFS_PROVIDERS_I_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "provider.h"

/* ---- shared by the clouds ----------------------------------------------------------- */

/* The url file of a record from the clone URL s (len bytes, NULL when the item has none):
 * *out NULL when s is NULL or no usable clone URL (empty, a control byte such as NUL or
 * newline, a leading '-'; unless what is NULL, one line is logged naming what (the field)
 * and id, never the value), else a copy of s without the password of its user information
 * (unless show_secrets). 0 or -ENOMEM. */
int provider_url(const char *s, size_t len, const char *what, const char *id, int show_secrets,
		 char **out);
/* The log level of a request that got no answer: a reader that gave up (-EINTR) or the
 * daemon stopping (-ECANCELED) is asked for, not met, and worth no error line. */
int provider_fail_level(int r);
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
/* Append a container record named by its id (a workspace or organization; kind_name as in
 * struct prov_record). 0 or -ENOMEM. */
int provider_add_container(struct prov_page *out, const char *id, int kind, const char *kind_name,
			   int64_t ctime);
/* The configured scopes as one final page of containers. 0 or -ENOMEM. */
int provider_scopes_page(char *const *scopes, size_t n, int kind, const char *kind_name,
			 struct prov_page *out);
/* 0 when each of the n scopes is the id of a record of found; else -ENOENT and, unless why
 * is NULL, one line in why naming those that are not ("workspace 9999 not found: no such
 * id, or these credentials cannot see it"); what names one scope: "workspace". */
int provider_confirm_scopes(char *const *scopes, size_t n, const struct prov_page *found,
			    const char *what, char *why, size_t whylen);
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
/* One page of a provider's name filter in dir for term; ctx is provider_filter_pages'. */
typedef int (*provider_filter_fn)(struct provider *p, const struct prov_record *dir,
				  const char *term, long page, struct prov_page *out, void *ctx);
/* Every page of a name filter, bounded; a superset of the entries whose name holds term. */
int provider_filter_pages(struct provider *p, const struct prov_record *dir, const char *term,
			  provider_filter_fn fetch, void *ctx, struct prov_page *out);

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
/* Codeup ListOrganizations body (a bare array) → organization containers. 0 or -EIO. */
int codeup_parse_organizations(const char *body, size_t len, struct prov_page *out);
/* Codeup error answer → -EACCES (401, 403, token error codes) or -EIO. */
int codeup_classify_error(long status, const char *body, size_t len);

#endif
