/* config: the configuration of every cloud of a table of descriptors (provider.h), from
 * the INI file (cfgini.h), the environment (cfgenv.h) and the vendors' files (credfile.h),
 * with defaults and the checks of what they say together (a value's own: cfgcheck.h). */
#ifndef CODESRCFS_CONFIG_H
#define CODESRCFS_CONFIG_H

#include <stddef.h>

struct prov_desc;

/* One cloud's section, whichever keys filled it. */
struct prov_conf {
	const struct prov_desc *desc; /* the cloud it configures */
	int enabled;		      /* credentials present */
	char *key_id;		      /* pai access_key_id, volc access_key; NULL for codeup */
	char *secret;		      /* pai access_key_secret, volc secret_key, codeup token */
	char *token;		      /* STS security/session token or NULL */
	char *region;
	char *endpoint; /* "scheme://host[:port]", no trailing slash */
	char **scopes;	/* workspaces or organizations from the config; NULL = discover */
	size_t nscopes;
	/* Where each came from, for the messages of a refusal at mount: "FILE:LINE",
	 * "VARIABLE in the environment" or "FILE profile 'NAME'" (a vendor's file); NULL
	 * when unset. */
	char *key_id_from, *secret_from, *token_from, *scopes_from;
};

struct config {
	struct prov_conf *prov; /* one per cloud of the table, in the table's order */
	size_t nprov;
	char *path; /* the file read, or NULL when none existed */
};

/* The configuration of the cloud named name, or NULL when the table had none. */
struct prov_conf *config_prov(const struct config *c, const char *name);
/* Default file: $XDG_CONFIG_HOME/codesrcfs/config, else ~/.config/codesrcfs/config. */
char *config_default_path(void);
/* Read path (a missing default file is fine when explicit == 0), then the environment,
 * then fill defaults and validate. On error, one line naming the problem (file and line
 * where it applies) goes to err and -EINVAL (or -errno) is returned. */
int config_load(struct config *c, const char *path, int explicit, char *err, size_t errlen);
/* config_load, then the vendors' files (~/.aliyun/config.json profile `profile`, or its
 * current one when NULL; ~/.volc/config) for a provider still without credentials. */
int config_load_profile(struct config *c, const char *path, int explicit, const char *profile,
			char *err, size_t errlen);
/* config_load_profile for the clouds of table (ended by NULL) instead of providers[]. */
int config_load_table(struct config *c, const struct prov_desc *const *table, const char *path,
		      int explicit, const char *profile, char *err, size_t errlen);
/* "access_key_id from ORIGIN, access_key_secret from ORIGIN": where pc's credentials came
 * from (its STS token too, when it has one), into buf. */
void config_describe_creds(const struct prov_conf *pc, char *buf, size_t len);
/* "workspaces from ORIGIN": where pc's workspaces or organizations came from, into buf. */
void config_describe_scopes(const struct prov_conf *pc, char *buf, size_t len);
/* Remove the variables config_load reads (credentials among them) from the environment,
 * wiping their text, so no child and no reader of /proc/<pid>/environ sees them. */
void config_clear_env(void);
/* Release everything c owns. */
void config_free(struct config *c);

#endif
