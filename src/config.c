/* config: the configuration of every cloud of a table of descriptors, from its sources in
 * order, then defaults, then the checks of the whole.
 *
 * Order: the file (if any, cfgini.c), then the environment (which wins, key by key,
 * cfgenv.c), then the vendors' own files for a cloud still without credentials
 * (credfile.c), then defaults, then checks. Errors are one line in err (cfgcheck.c). Where
 * each credential and id list came from is kept for the refusals at mount (cfgstore.c). */
#define _GNU_SOURCE /* asprintf, environ */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfgcheck.h"
#include "cfgenv.h"
#include "cfgini.h"
#include "cfgstore.h"
#include "config.h"
#include "provider.h"
#include "secret.h"

/* For every cloud that has them, after the file and the environment (credfile.h). */
static int cfg_credfiles(struct config *c, const char *profile, char *err, size_t errlen)
{
	for (size_t k = 0; k < c->nprov; k++) {
		const struct prov_desc *d = c->prov[k].desc;
		int rc = d->credfile ? d->credfile(&c->prov[k], profile, err, errlen) : 0;

		if (rc == -ENOMEM)
			return cfgcheck_nomem(err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* Every copy of name in the environment, removed, then wiped where it lay: the initial
 * environment is what /proc/<pid>/environ shows and what a child would inherit. */
static void cfg_env_clear(const char *name)
{
	size_t len = strlen(name), n = 0;
	char *found[8];

	for (char **e = environ; *e && n < sizeof(found) / sizeof(found[0]); e++)
		if (!strncmp(*e, name, len) && (*e)[len] == '=')
			found[n++] = *e;
	unsetenv(name);
	while (n--)
		secret_wipe(found[n], strlen(found[n]));
}

void config_clear_env(void)
{
	for (size_t k = 0; providers[k]; k++)
		for (const struct prov_key *key = providers[k]->keys; key->name; key++)
			for (size_t j = 0;
			     j < sizeof(key->env) / sizeof(key->env[0]) && key->env[j]; j++)
				cfg_env_clear(key->env[j]);
}

static int cfg_defaults(struct prov_conf *pc)
{
	const struct prov_desc *d = pc->desc;
	const char *at;

	if (!pc->region && d->region && !(pc->region = strdup(d->region)))
		return -ENOMEM;
	if (pc->endpoint || !d->endpoint)
		return 0;
	at = strstr(d->endpoint, "%s"); /* the region's place */
	if (!at)
		pc->endpoint = strdup(d->endpoint);
	else if (asprintf(&pc->endpoint, "%.*s%s%s", (int)(at - d->endpoint), d->endpoint,
			  pc->region ? pc->region : "", at + 2) < 0)
		pc->endpoint = NULL;
	return pc->endpoint ? 0 : -ENOMEM;
}

static void cfg_strip_slash(char *url)
{
	size_t n = url ? strlen(url) : 0;

	if (n && url[n - 1] == '/')
		url[n - 1] = '\0';
}

/* The first key of d that fills f, or NULL. */
static const struct prov_key *cfg_key_for(const struct prov_desc *d, enum prov_field f)
{
	for (const struct prov_key *key = d->keys; key->name; key++)
		if (key->field == f)
			return key;
	return NULL;
}

/* Appends "KEY from ORIGIN" for field f of pc to the list in buf, when from is set. */
static void cfg_describe(const struct prov_conf *pc, enum prov_field f, const char *from, char *buf,
			 size_t len)
{
	const struct prov_key *key = cfg_key_for(pc->desc, f);
	size_t used = strlen(buf);

	if (key && from)
		snprintf(buf + used, len - used, "%s%s from %s", used ? ", " : "", key->name, from);
}

void config_describe_creds(const struct prov_conf *pc, char *buf, size_t len)
{
	buf[0] = '\0';
	cfg_describe(pc, PROV_KEY_ID, pc->key_id ? pc->key_id_from : NULL, buf, len);
	cfg_describe(pc, PROV_SECRET, pc->secret ? pc->secret_from : NULL, buf, len);
	cfg_describe(pc, PROV_TOKEN, pc->token ? pc->token_from : NULL, buf, len);
}

void config_describe_scopes(const struct prov_conf *pc, char *buf, size_t len)
{
	buf[0] = '\0';
	cfg_describe(pc, PROV_SCOPES, pc->nscopes ? pc->scopes_from : NULL, buf, len);
}

/* Enabled when the credentials are complete: both halves of a key pair, or the secret of a
 * cloud without key ids (a token); half a pair is an error. */
static int cfg_enable(struct prov_conf *pc, char *err, size_t errlen)
{
	const struct prov_key *id = cfg_key_for(pc->desc, PROV_KEY_ID);
	const struct prov_key *secret = cfg_key_for(pc->desc, PROV_SECRET);

	if (id && secret && !pc->key_id != !pc->secret)
		return cfgcheck_fail(err, errlen, "[%s] %s is missing (%s is set)", pc->desc->name,
				     (pc->key_id ? secret : id)->name,
				     (pc->key_id ? id : secret)->name);
	pc->enabled = secret ? pc->secret != NULL : pc->key_id != NULL;
	return 0;
}

static int cfg_finish(struct config *c, char *err, size_t errlen)
{
	int rc, any = 0;

	for (size_t k = 0; k < c->nprov; k++) {
		struct prov_conf *pc = &c->prov[k];

		rc = cfg_enable(pc, err, errlen);
		if (rc)
			return rc;
		if (pc->region && !cfgcheck_region(pc->region))
			return cfgcheck_fail(err, errlen, "[%s] region is not a valid region id",
					     pc->desc->name);
		if (cfg_defaults(pc))
			return cfgcheck_nomem(err, errlen);
		cfg_strip_slash(pc->endpoint);
		any |= pc->enabled;
	}
	if (!any)
		return cfgcheck_fail(
		    err, errlen, "no credentials configured for any provider (see codesrcfs(1))");
	return 0;
}

/* One empty prov_conf per cloud of table. 0 or -ENOMEM. */
static int cfg_init(struct config *c, const struct prov_desc *const *table)
{
	size_t n = 0;

	while (table[n])
		n++;
	c->prov = calloc(n + 1, sizeof(*c->prov));
	if (!c->prov)
		return -ENOMEM;
	for (c->nprov = 0; c->nprov < n; c->nprov++)
		c->prov[c->nprov].desc = table[c->nprov];
	return 0;
}

int config_load(struct config *c, const char *path, int explicit, char *err, size_t errlen)
{
	return config_load_profile(c, path, explicit, NULL, err, errlen);
}

int config_load_profile(struct config *c, const char *path, int explicit, const char *profile,
			char *err, size_t errlen)
{
	return config_load_table(c, providers, path, explicit, profile, err, errlen);
}

int config_load_table(struct config *c, const struct prov_desc *const *table, const char *path,
		      int explicit, const char *profile, char *err, size_t errlen)
{
	int rc = 0;

	memset(c, 0, sizeof(*c));
	if (err && errlen)
		err[0] = '\0';
	if (cfg_init(c, table))
		rc = cfgcheck_nomem(err, errlen);
	else if (path)
		rc = cfgini_read(c, path, explicit, err, errlen);
	else if (explicit)
		rc = cfgcheck_fail(err, errlen, "no configuration file given");
	if (!rc)
		rc = cfgenv_apply(c, err, errlen);
	if (!rc)
		rc = cfg_credfiles(c, profile, err, errlen);
	if (!rc)
		rc = cfg_finish(c, err, errlen);
	if (rc)
		config_free(c);
	return rc;
}

struct prov_conf *config_prov(const struct config *c, const char *name)
{
	for (size_t k = 0; k < c->nprov; k++)
		if (!strcmp(c->prov[k].desc->name, name))
			return &c->prov[k];
	return NULL;
}

char *config_default_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	struct passwd *pw;
	char *path = NULL;

	/* The XDG spec says a relative XDG_CONFIG_HOME is to be ignored. */
	if (xdg && xdg[0] == '/')
		return asprintf(&path, "%s/codesrcfs/config", xdg) < 0 ? NULL : path;
	if (!home || !*home) {
		pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || !*home)
		return NULL;
	return asprintf(&path, "%s/.config/codesrcfs/config", home) < 0 ? NULL : path;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t k = 0; k < c->nprov; k++) {
		cfgstore_free(&c->prov[k]);
	}
	free(c->prov);
	free(c->path);
	memset(c, 0, sizeof(*c));
}
