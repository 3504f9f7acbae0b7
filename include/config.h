/* config: the INI file, the environment and validation of what they say. */
#ifndef CODESRCFS_CONFIG_H
#define CODESRCFS_CONFIG_H

#include <stddef.h>

enum prov_kind { PROV_PAI, PROV_VOLC, PROV_CODEUP, PROV_COUNT };

struct prov_conf {
	int enabled;  /* credentials present */
	char *key_id; /* pai access_key_id, volc access_key; NULL for codeup */
	char *secret; /* pai access_key_secret, volc secret_key, codeup token */
	char *token;  /* STS security/session token or NULL */
	char *region;
	char *endpoint; /* "scheme://host[:port]", no trailing slash */
	char **scopes;	/* workspaces or organizations from the config; NULL = discover */
	size_t nscopes;
};

struct config {
	struct prov_conf prov[PROV_COUNT];
	char *path; /* the file read, or NULL when none existed */
};

/* Section name of a provider: "pai", "volc", "codeup". */
const char *config_prov_name(enum prov_kind k);
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
/* Check an endpoint: https://, or http:// to a loopback host only. 0 or -EINVAL + err. */
int config_check_endpoint(const char *url, char *err, size_t errlen);
/* Remove the variables config_load reads (credentials among them) from the environment,
 * wiping their text, so no child and no reader of /proc/<pid>/environ sees them. */
void config_clear_env(void);
/* Release everything c owns. */
void config_free(struct config *c);

#endif
