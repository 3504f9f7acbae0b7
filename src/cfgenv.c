/* cfgenv: the environment's variables for the configuration; the first one set of a key's
 * wins over the file. */
#include <errno.h>
#include <stdlib.h>

#include "cfgcheck.h"
#include "cfgenv.h"
#include "cfgstore.h"
#include "provider.h"
#include "secret.h"

static const char *cfgenv_getenv(const struct prov_key *key, const char **which)
{
	const char *v;
	size_t i;

	for (i = 0; i < sizeof(key->env) / sizeof(key->env[0]) && key->env[i]; i++) {
		v = getenv(key->env[i]);
		if (v && *v) {
			*which = key->env[i];
			return v;
		}
	}
	return NULL;
}

/* The environment's value of key into pc; *from_env gets 1 for half a key pair, 2 for a
 * token. */
static int cfgenv_key(struct prov_conf *pc, const struct prov_key *key, int *from_env, char *err,
		      size_t errlen)
{
	const char *which = NULL, *v = cfgenv_getenv(key, &which);
	char why[256];
	int rc;

	if (!v)
		return 0;
	rc = cfgcheck_value(v, key->field);
	if (!rc && key->field == PROV_ENDPOINT && cfgcheck_endpoint(v, why, sizeof(why)))
		return cfgcheck_fail(err, errlen, "environment variable %s: %s", which, why);
	if (!rc)
		rc = cfgstore_set(pc, key->field, v);
	if (!rc)
		rc = cfgstore_origin(pc, key->field, 1, "%s in the environment", which);
	if (rc == -ENOMEM)
		return cfgcheck_nomem(err, errlen);
	if (rc)
		return cfgcheck_fail(err, errlen, "environment variable %s %s", which,
				     cfgcheck_why(rc, key->field));
	if (key->field == PROV_KEY_ID || key->field == PROV_SECRET)
		*from_env |= 1;
	if (key->field == PROV_TOKEN)
		*from_env |= 2;
	return 0;
}

int cfgenv_apply(struct config *c, char *err, size_t errlen)
{
	for (size_t k = 0; k < c->nprov; k++) {
		struct prov_conf *pc = &c->prov[k];
		int from_env = 0, rc;

		for (const struct prov_key *key = pc->desc->keys; key->name; key++) {
			rc = cfgenv_key(pc, key, &from_env, err, errlen);
			if (rc)
				return rc;
		}
		/* An STS token belongs to its key pair: a pair from the environment drops the
		 * file's. */
		if ((from_env & 1) && !(from_env & 2)) {
			secret_free(pc->token);
			pc->token = NULL;
			free(pc->token_from);
			pc->token_from = NULL;
		}
	}
	return 0;
}
