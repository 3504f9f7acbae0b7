/* codeup_i: what the Codeup provider's own files share; its entry point, codeup_desc, is
 * codeup.c's, and what tests reach (the parsers) is declared in providers_i.h.
 *
 *   codeup.c        the provider: its descriptor and operations (check, a directory's
 *                   pages, the root's organizations, look-ups, completing a repository)
 *   codeup_api.c    the requests: paths, GET with the token, a list call's page and its
 *                   paging headers, Codeup's bounds on pages, the one line of a failure
 *   codeup_parse.c  answers → records: organizations, groups (never one inside itself),
 *                   repositories placed by their namespace, GetRepository merged
 *   codeup_memo.c   the organization-wide memo: the repository pages of each organization,
 *                   dropped dir_ttl after the first came, and how far each parent's groups
 *                   go (its lanes), behind cu->lock
 *
 * cu->lock guards the memo and every reference count of what it holds (json-c's are not
 * atomic); it is never held across a request. */
#ifndef CODESRCFS_CODEUP_I_H
#define CODESRCFS_CODEUP_I_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <uthash.h>

#include "providers_i.h"

#define CODEUP_PAGE   100
#define CODEUP_PAGE_S "100"
/* Codeup's bounds (docs/design.md §4): the pages of any list call, and what an
 * organization's memo keeps. The memo keeps its repositories as parsed JSON, some 2.7 KB
 * for a 535-byte item, so tighter than a listing's. */
#define CODEUP_MAX_PAGES 1000
#define CODEUP_MAX_ITEMS 100000L
#define CODEUP_MAX_BYTES (128L << 20)

enum codeup_kind { CODEUP_ORG = 1, CODEUP_GROUP, CODEUP_REPO };

/* How far one parent's groups go: page 1 of a listing learns it, so the later pages of the
 * listing ask ListNamespaces nothing once the groups ended. */
struct codeup_lane {
	UT_hash_handle hh;
	long last;  /* the last page of the parent's groups, 0 while unknown */
	char gid[]; /* the parent's id; "" for the organization */
};

/* An organization's repositories as the server pages them, and its lanes. Dropped as a
 * whole dir_ttl after the first of them came; the memo itself lives as long as the
 * provider. */
struct codeup_memo {
	UT_hash_handle hh;
	struct json_object **pages; /* pages[k - 1]: the array of page k, or NULL */
	long npages;		    /* room in pages */
	long last;		    /* the last page, 0 while unknown */
	size_t items, bytes;	    /* what the pages held hold, against the bounds */
	int64_t fetched;	    /* when the first of them came; 0 while empty */
	unsigned gen;		    /* counts the drops: a page asked for before one is not kept */
	struct codeup_lane *lanes;
	char org[]; /* the organization's id */
};

struct codeup {
	struct provider base;
	struct prov_common c;
	pthread_mutex_t lock;	  /* guards memo, and every reference count of what it holds */
	struct codeup_memo *memo; /* by organization id, made when first asked for */
};

/* A directory's organization, full path (groups), the id its sub-groups name as parent and
 * the ids of the groups above it, outermost first. */
struct codeup_dir {
	const char *org, *full, *gid;
	char *const *anc;
	size_t nanc;
};

/* What page k of a list call brought. */
struct codeup_got {
	struct json_object *arr; /* its array; the caller puts it */
	size_t bytes;		 /* the answer's length */
	int more;		 /* a page follows */
	long total;		 /* x-total: entries in the whole list, -1 when absent */
};

/* ---- codeup_api.c ------------------------------------------------------------------- */

/* "/oapi/v1/codeup/organizations/<org>/<what>[/<id>]", org and id percent-encoded; NULL
 * when out of memory or a segment is "", "." or "..". Caller frees. */
char *codeup_path(const char *org, const char *what, const char *id);
/* The one line a failed answer logs (what: the call; why: NULL for the body's own words). */
void codeup_log(const char *what, const struct http_response *resp, const char *why);
/* GET path?query (name, value pairs, NULL-terminated); 0 with a 2xx answer in resp, else
 * -errno, the error logged once. */
int codeup_get(struct codeup *cu, const char *what, const char *path, const char *const *query,
	       struct http_response *resp);
/* Log that list call what at path went past limit of bound (e.g. "pages"). -EIO. */
int codeup_bound(const char *what, const char *path, const char *bound, long limit);
/* Page k of a list call into got, no further than CODEUP_MAX_PAGES; query has room for
 * four more entries and a NULL after its nq. 0 or -errno. */
int codeup_get_page(struct codeup *cu, const char *what, const char *path, const char **query,
		    size_t nq, long k, struct codeup_got *got);

/* ---- codeup_parse.c ----------------------------------------------------------------- */

/* d's groups in a ListNamespaces array (top: only those of one '/' in fullPath) into out.
 * 0 or -ENOMEM. */
int codeup_add_groups(struct json_object *arr, const struct codeup_dir *d, int top,
		      int show_secrets, struct prov_page *out);
/* The repositories of arr (NULL: none) directly in the group full, gid (both NULL: in no
 * group) of organization org into out. 0 or -ENOMEM. */
int codeup_add_repos(struct json_object *arr, const char *org, const char *full, const char *gid,
		     int show_secrets, struct prov_page *out);
/* The organizations of a ListOrganizations array as containers into out. 0 or -ENOMEM. */
int codeup_add_orgs(struct json_object *arr, struct prov_page *out);
/* GetRepository's object got merged over rec's list item: meta, url, branch; rec changes
 * only when everything succeeded. 0 or -ENOMEM. */
int codeup_merge(struct prov_record *rec, struct json_object *got, int show_secrets);

/* ---- codeup_memo.c ------------------------------------------------------------------ */

/* org's memo, made when first asked for; NULL when out of memory. */
struct codeup_memo *codeup_memo_of(struct codeup *cu, const char *org);
/* Drop a reference taken from the memo, under cu->lock. */
void codeup_memo_drop(struct codeup *cu, struct json_object *o);
/* Page k of org's repositories, the memo's or fetched and kept; release got->arr with
 * codeup_memo_drop. 0 or -errno. */
int codeup_repos_page(struct codeup *cu, struct codeup_memo *m, const char *org, long k,
		      struct codeup_got *got);
/* Every page of m when it holds them all, fresh: references in a new array *pages of *n
 * (release each with codeup_memo_drop, free the array); 0 when it does not. */
int codeup_repos_whole(struct codeup *cu, struct codeup_memo *m, struct json_object ***pages,
		       long *n);
/* The last page of parent gid's groups as a listing learnt it, 0 while unknown. */
long codeup_lane_last(struct codeup *cu, struct codeup_memo *m, const char *gid);
/* Page k of parent gid's groups was the last (done) or not. */
void codeup_lane_keep(struct codeup *cu, struct codeup_memo *m, const char *gid, long k, int done);
/* Empty every organization's memo (SIGHUP). */
void codeup_memo_flush(struct codeup *cu);
/* Free every memo; nothing may use cu any more. */
void codeup_memo_free(struct codeup *cu);

#endif
