/* provscope: what a cloud keeps of its configuration (struct prov_common), and its
 * configured workspaces or organizations as its root's containers: named from the cloud's
 * listing (or from what the check at mount found), and confirmed at mount. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "provider.h"
#include "providers/providers_i.h"
#include "secret.h"

static char *dup_opt(const char *s, int *fail)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*fail = 1;
	return d;
}

int provscope_common_init(struct prov_common *c, const struct prov_conf *conf,
			  const struct provider_env *env)
{
	int fail = 0;

	memset(c, 0, sizeof(*c));
	c->http = env->http;
	c->show_secrets = env->show_secrets;
	c->dir_ttl = env->dir_ttl;
	c->key_id = dup_opt(conf->key_id, &fail);
	c->secret = dup_opt(conf->secret, &fail);
	c->token = dup_opt(conf->token, &fail);
	c->region = dup_opt(conf->region, &fail);
	c->endpoint = dup_opt(conf->endpoint, &fail);
	c->scopes = calloc(conf->nscopes + 1, sizeof(*c->scopes));
	fail |= !c->scopes;
	for (; !fail && c->nscopes < conf->nscopes; c->nscopes++)
		c->scopes[c->nscopes] = dup_opt(conf->scopes[c->nscopes], &fail);
	if (fail) {
		provscope_common_free(c);
		return -ENOMEM;
	}
	return 0;
}

void provscope_common_free(struct prov_common *c)
{
	provscope_seed_drop(c);
	for (size_t i = 0; c->scopes && c->scopes[i]; i++)
		free(c->scopes[i]);
	free(c->scopes);
	free(c->key_id);
	secret_free(c->secret);
	secret_free(c->token);
	free(c->region);
	free(c->endpoint);
	memset(c, 0, sizeof(*c));
}

int provscope_add_container(struct prov_page *out, const char *id, int kind, const char *kind_name,
			    int64_t ctime, const char *label, size_t label_len)
{
	struct prov_record r = {
	    .kind = kind, .kind_name = kind_name, .container = 1, .ctime = ctime};

	r.id = strdup(id);
	r.name = strdup(id);
	r.name_len = strlen(id);
	r.label = label ? provider_strndup(label, label_len) : NULL;
	r.label_len = label ? label_len : 0;
	if (!r.id || !r.name || (label && !r.label) || prov_page_add(out, &r) < 0) {
		prov_record_free(&r);
		return -ENOMEM;
	}
	return 0;
}

int provscope_page(char *const *scopes, size_t n, int kind, const char *kind_name,
		   struct prov_page *out)
{
	for (size_t i = 0; i < n; i++)
		if (provscope_add_container(out, scopes[i], kind, kind_name, 0, NULL, 0) < 0)
			return -ENOMEM;
	out->total = (long)n;
	out->last = 1;
	return 0;
}

/* Give each record of scopes that has none the label and creation time of the record of
 * found with its id. 0 or -ENOMEM. */
static int scopes_named(struct prov_page *scopes, const struct prov_page *found)
{
	for (size_t i = 0; i < scopes->n; i++) {
		struct prov_record *s = &scopes->recs[i];

		for (size_t k = 0; !s->label && k < found->n; k++) {
			const struct prov_record *f = &found->recs[k];

			if (!f->label || !f->id || strcmp(f->id, s->id))
				continue;
			s->label = provider_strndup(f->label, f->label_len);
			if (!s->label)
				return -ENOMEM;
			s->label_len = f->label_len;
			s->ctime = f->ctime;
		}
	}
	return 0;
}

/* What the check at mount found of the configured scopes. */
struct provscope_seed {
	struct prov_page found;
	int64_t at; /* clock_now() when it came */
};

void provscope_seed_keep(struct prov_common *c, struct prov_page *found)
{
	struct provscope_seed *s = malloc(sizeof(*s));

	if (s) {
		s->found = *found;
		s->at = clock_now();
		memset(found, 0, sizeof(*found));
		s = __atomic_exchange_n(&c->seed, s, __ATOMIC_ACQ_REL);
	}
	if (s)
		prov_page_free(&s->found);
	prov_page_free(found);
	free(s);
}

void provscope_seed_drop(struct prov_common *c)
{
	struct provscope_seed *s = __atomic_exchange_n(&c->seed, NULL, __ATOMIC_ACQ_REL);

	if (s)
		prov_page_free(&s->found);
	free(s);
}

/* The seed of c into *found when one is there and no dir_ttl passed since it came: 1, else
 * 0. Whichever, it is used once. */
static int seed_take(struct prov_common *c, struct prov_page *found)
{
	struct provscope_seed *s = __atomic_exchange_n(&c->seed, NULL, __ATOMIC_ACQ_REL);
	int fresh = s && clock_now() < s->at + c->dir_ttl;

	if (fresh) {
		*found = s->found;
		memset(&s->found, 0, sizeof(s->found));
	}
	if (s)
		prov_page_free(&s->found);
	free(s);
	return fresh;
}

int provscope_named(struct provider *p, struct prov_common *c, int kind, const char *kind_name,
		    provscope_ids_fn fetch, struct prov_page *out)
{
	struct prov_page found = {0};
	int r = provscope_page(c->scopes, c->nscopes, kind, kind_name, out);

	if (r < 0)
		return r;
	/* The names are a convenience: whatever came is used, and a failed fetch (logged by
	 * the cloud) leaves the directories unnamed, never hidden; but a reader that gave up,
	 * or a daemon stopping, wants no listing at all. */
	if (!seed_take(c, &found))
		r = fetch(p, c->scopes, c->nscopes, &found);
	if (r != -EINTR && r != -ECANCELED)
		r = scopes_named(out, &found);
	prov_page_free(&found);
	return r;
}

static int page_has_id(const struct prov_page *pg, const char *id)
{
	for (size_t i = 0; i < pg->n; i++)
		if (pg->recs[i].id && !strcmp(pg->recs[i].id, id))
			return 1;
	return 0;
}

int provscope_confirm(char *const *scopes, size_t n, const struct prov_page *found,
		      const char *what, char *why, size_t whylen)
{
	size_t missing = 0, used;

	if (why && whylen)
		why[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (page_has_id(found, scopes[i]))
			continue;
		if (why && whylen) {
			used = strlen(why);
			snprintf(why + used, whylen - used, "%s%s", missing ? ", " : "", scopes[i]);
		}
		missing++;
	}
	if (!missing)
		return 0;
	if (why && whylen) {
		char *ids = strdup(why);

		snprintf(why, whylen,
			 "%s%s %s not found: no such id%s, or these credentials "
			 "cannot see %s",
			 what, missing > 1 ? "s" : "", ids ? ids : "", missing > 1 ? "s" : "",
			 missing > 1 ? "them" : "it");
		free(ids);
	}
	return -ENOENT;
}
