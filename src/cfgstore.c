/* cfgstore: a checked configuration value stored in its cloud's struct prov_conf, and where
 * it came from ("FILE:LINE", "VARIABLE in the environment", a vendor's file and profile). */
#define _GNU_SOURCE /* vasprintf */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgstore.h"
#include "secret.h"

#define CFGSTORE_MAX_SCOPE 256

static char **cfgstore_slot(struct prov_conf *pc, enum prov_field f)
{
	switch (f) {
	case PROV_KEY_ID:
		return &pc->key_id;
	case PROV_SECRET:
		return &pc->secret;
	case PROV_TOKEN:
		return &pc->token;
	case PROV_REGION:
		return &pc->region;
	case PROV_ENDPOINT:
		return &pc->endpoint;
	default:
		return NULL;
	}
}

static void cfgstore_scopes_free(struct prov_conf *pc)
{
	size_t i;

	for (i = 0; i < pc->nscopes; i++)
		free(pc->scopes[i]);
	free(pc->scopes);
	pc->scopes = NULL;
	pc->nscopes = 0;
}

static int cfgstore_scope_add(struct prov_conf *pc, const char *s, size_t len)
{
	char **grown;
	size_t i;

	if (len > CFGSTORE_MAX_SCOPE)
		return -E2BIG;
	/* A path segment "." or ".." would leave the organization's URL. */
	if ((len == 1 || len == 2) && !strncmp(s, "..", len))
		return -EINVAL;
	for (i = 0; i < pc->nscopes; i++)
		if (strlen(pc->scopes[i]) == len && !memcmp(pc->scopes[i], s, len))
			return 0; /* listed twice: one directory */
	grown = realloc(pc->scopes, (pc->nscopes + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	pc->scopes = grown;
	pc->scopes[pc->nscopes] = strndup(s, len);
	if (!pc->scopes[pc->nscopes])
		return -ENOMEM;
	pc->nscopes++;
	return 0;
}

/* "a, b c" → {a, b, c}; replaces any earlier list. */
static int cfgstore_set_scopes(struct prov_conf *pc, const char *list)
{
	static const char sep[] = ", \t";
	const char *p = list;
	size_t len;
	int rc = 0;

	cfgstore_scopes_free(pc);
	while (!rc && *(p += strspn(p, sep))) {
		len = strcspn(p, sep);
		rc = cfgstore_scope_add(pc, p, len);
		p += len;
	}
	if (rc)
		cfgstore_scopes_free(pc);
	return rc;
}

/* Where the value of f is said to come from, or NULL when no message names it. */
static char **cfgstore_from_slot(struct prov_conf *pc, enum prov_field f)
{
	switch (f) {
	case PROV_KEY_ID:
		return &pc->key_id_from;
	case PROV_SECRET:
		return &pc->secret_from;
	case PROV_TOKEN:
		return &pc->token_from;
	case PROV_SCOPES:
		return &pc->scopes_from;
	default:
		return NULL;
	}
}

int cfgstore_origin(struct prov_conf *pc, enum prov_field f, int set, const char *fmt, ...)
{
	char **slot = cfgstore_from_slot(pc, f), *from = NULL;
	va_list ap;
	int n;

	if (!slot)
		return 0;
	if (set) {
		va_start(ap, fmt);
		n = vasprintf(&from, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -ENOMEM;
	}
	free(*slot);
	*slot = from;
	return 0;
}

/* Stores value (already checked) in field; an empty value unsets it. */
int cfgstore_set(struct prov_conf *pc, enum prov_field f, const char *value)
{
	char **slot, *copy;

	if (f == PROV_SCOPES)
		return cfgstore_set_scopes(pc, value);
	slot = cfgstore_slot(pc, f);
	copy = *value ? strdup(value) : NULL;
	if (*value && !copy)
		return -ENOMEM;
	secret_free(*slot);
	*slot = copy;
	return 0;
}

void cfgstore_free(struct prov_conf *pc)
{
	free(pc->key_id);
	secret_free(pc->secret);
	secret_free(pc->token);
	free(pc->region);
	free(pc->endpoint);
	cfgstore_scopes_free(pc);
	free(pc->key_id_from);
	free(pc->secret_from);
	free(pc->token_from);
	free(pc->scopes_from);
}
