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

/* Where pc keeps the value of f (*value; NULL for the list of scopes, kept apart) and where
 * it came from (*from; NULL when no message names it). */
static void cfgstore_slots(struct prov_conf *pc, enum prov_field f, char ***value, char ***from)
{
	*value = NULL;
	*from = NULL;
	switch (f) {
	case PROV_KEY_ID:
		*value = &pc->key_id;
		*from = &pc->key_id_from;
		break;
	case PROV_SECRET:
		*value = &pc->secret;
		*from = &pc->secret_from;
		break;
	case PROV_TOKEN:
		*value = &pc->token;
		*from = &pc->token_from;
		break;
	case PROV_REGION:
		*value = &pc->region;
		break;
	case PROV_ENDPOINT:
		*value = &pc->endpoint;
		break;
	case PROV_SCOPES:
		*from = &pc->scopes_from;
		break;
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

int cfgstore_origin(struct prov_conf *pc, enum prov_field f, int set, const char *fmt, ...)
{
	char **value, **slot, *from = NULL;
	va_list ap;
	int n;

	cfgstore_slots(pc, f, &value, &slot);
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
	char **slot, **from, *copy;

	if (f == PROV_SCOPES)
		return cfgstore_set_scopes(pc, value);
	cfgstore_slots(pc, f, &slot, &from);
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
