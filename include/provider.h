/* provider: the one small interface every cloud implements, the records it returns, and
 * the descriptor by which a cloud is configured and created. A provider knows its cloud's
 * requests, paging and JSON; nothing of FUSE or caching. The clouds themselves live in
 * src/providers/ (docs/hacking.md: adding a cloud). */
#ifndef CODESRCFS_PROVIDER_H
#define CODESRCFS_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http.h"

/* One entry of a listing: a workspace, organization, group, repository or code source. */
struct prov_record {
	char *id;
	char *name; /* raw display name; may hold NUL bytes */
	size_t name_len;
	char *meta;    /* meta.json contents (redacted), or NULL for no meta.json */
	char *url;     /* url file contents without the newline, or NULL */
	char *branch;  /* branch file contents without the newline, or NULL */
	char *web_url; /* the entry's page in the cloud's console, or NULL */
	char *scope;   /* the workspace or organization it belongs to, or NULL */
	char *path;    /* its full path in the cloud (a Codeup group's fullPath), or NULL */
	char *label;   /* a workspace's or organization's display name, raw (may hold NUL
			* bytes): a symbolic link of that name stands beside it; NULL for none */
	size_t label_len;
	/* The ids of the containers above it, outermost first, where the cloud's own ids are
	 * needed to refuse a cycle (a Codeup group: the groups above it), or NULL. */
	char **ancestors;
	size_t nancestors;
	int64_t ctime; /* creation/modification times, 0 when unknown */
	int64_t mtime;
	int kind; /* provider-private: what sort of entry this is */
	/* What .index.jsonl calls it: "workspace", "organization", "group", "code_source" or
	 * "repository" (a string literal, never freed) */
	const char *kind_name;
	unsigned container : 1;	 /* has children, listed with list_page */
	unsigned incomplete : 1; /* call complete() before url/branch/meta are served */
};

/* One page of a listing. Without a total, the tree takes a page that brings no id it has
 * not seen, an empty one included, for the end of the listing (docs/design.md §4), unless
 * the page says `more`: a provider whose page k is not its server's page k (Codeup: a
 * directory's entries are scattered over its organization's pages) sets it on every page
 * but the last, and bounds its own pages, since the tree's only bounds are then those of
 * docs/design.md §4. Records without an id are skipped. */
struct prov_page {
	struct prov_record *recs;
	size_t n, cap;
	long total;	/* entries in the whole listing, -1 when unknown */
	long page_size; /* entries on a full page as the server pages; 0 when unknown */
	int last;	/* set when this page is known to be the final one */
	int more;	/* set when pages follow whatever this one brought */
	size_t bytes;	/* bytes of the answers this page was read from */
};

/* What one listing may take from a server (docs/design.md §4). */
#define PROV_MAX_BODY	 (2L << 20) /* bytes in one answer */
#define PROV_MAX_ENTRIES 1000000L   /* entries in one listing; a larger total is not believed */
#define PROV_MAX_PAGES	 20000L	    /* pages in one fetch of a listing */
#define PROV_MAX_BYTES	 (1L << 30) /* bytes of the answers of one fetch of a listing */

struct provider;

struct provider_ops {
	/* One cheap authenticated call, made at mount, that also confirms the configured
	 * workspaces or organizations where the API can list them by id: 0, -EACCES/-EIO,
	 * or -ENOENT with one line in why naming the ids that were not found. */
	int (*check)(struct provider *p, char *why, size_t whylen);
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

/* How a caller gives up on what it asked: cancelled(ctx) non-zero (polled while a call
 * waits) makes the call return -EINTR. */
struct prov_cancel {
	int (*cancelled)(void *ctx);
	void *ctx;
};

/* This thread's provider calls from now on give up when c says so (NULL: never); http polls
 * it while a request waits. */
void provider_set_cancel(const struct prov_cancel *c);
/* What provider_set_cancel set for this thread (all NULL: nothing), to hand to a helper. */
struct prov_cancel provider_get_cancel(void);
/* This thread's requests from now on each hold one of slots while on the wire (NULL: no
 * limit): threads that share slots keep that many in flight while others parse. */
void provider_set_slots(struct http_slots *slots);
/* Has this thread's caller given up? */
int provider_cancelled(void);

/* What a configuration key fills in struct prov_conf. */
enum prov_field {
	PROV_KEY_ID,   /* the public half of a key pair */
	PROV_SECRET,   /* the secret half of the pair, or a token on its own */
	PROV_TOKEN,    /* an STS token that belongs to the key pair */
	PROV_REGION,   /* checked as a region id */
	PROV_ENDPOINT, /* checked with cfgcheck_endpoint */
	PROV_SCOPES,   /* a list: workspaces, organizations */
};

/* One key of a cloud's configuration section (at most 64 keys a cloud). */
struct prov_key {
	const char *name; /* in the section: "access_key_id" */
	enum prov_field field;
	int secret;	    /* a value in the file makes the file private */
	const char *env[4]; /* environment variables, preferred first; the first one set and
			     * not empty wins over the file */
};

/* A cloud: everything the configuration and the mount need to know of it. A cloud is
 * one file in src/providers/ exporting one of these, and one line in providers[]. */
struct prov_desc {
	const char *name;	     /* its directory at the root and its configuration section */
	const struct prov_key *keys; /* ended by a key without a name */
	const char *region;	     /* default region, or NULL */
	const char *endpoint;	     /* default endpoint; a "%s" in it stands for the region */
	/* Credentials the file and the environment left out, from the vendor's own files
	 * (credfile.h), or NULL. 0 or -errno with one line in err. */
	int (*credfile)(struct prov_conf *pc, const char *profile, char *err, size_t errlen);
	/* The provider of an enabled conf; NULL on failure, with the reason in why (left
	 * empty: out of memory). */
	struct provider *(*create)(const struct prov_conf *conf, const struct provider_env *env,
				   char *why, size_t whylen);
};

/* Every cloud codesrcfs knows, ended by NULL (src/providers/providers.c). */
extern const struct prov_desc *const providers[];

/* A provider for every enabled cloud of c, in c's order, in a new array *out of *n. 0, or
 * -errno with err naming the cloud (nothing is left allocated). */
int provider_new_all(const struct config *c, const struct provider_env *env, struct provider ***out,
		     size_t *n, char *err, size_t errlen);

/* Append a copy of r's pointers to pg (pg takes ownership of them). 0 or -ENOMEM. */
int prov_page_add(struct prov_page *pg, const struct prov_record *r);
/* Free every record in pg and reset it. */
void prov_page_free(struct prov_page *pg);
/* Free what r owns. */
void prov_record_free(struct prov_record *r);
/* Deep copy of src into dst. 0 or -ENOMEM. */
int prov_record_copy(struct prov_record *dst, const struct prov_record *src);

#endif
