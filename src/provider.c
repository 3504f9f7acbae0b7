#define _GNU_SOURCE /* strptime, timegm */
/* provider: the table of clouds, and what every provider shares: records, pages,
 * redacted meta.json and time parsing. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "log.h"
#include "provider.h"

typedef struct provider *(*provider_ctor)(const struct prov_conf *, const struct provider_env *);

/* A fourth cloud is one new file and one line here. */
static const provider_ctor provider_table[PROV_COUNT] = {
    [PROV_PAI] = pai_new,
    [PROV_VOLC] = volc_new,
    [PROV_CODEUP] = codeup_new,
};

struct provider *provider_new(enum prov_kind kind, const struct prov_conf *conf,
			      const struct provider_env *env, char *err, size_t errlen)
{
	struct provider *p = NULL;

	if ((int)kind < 0 || kind >= PROV_COUNT || !provider_table[kind])
		snprintf(err, errlen, "unknown provider");
	else if (!(p = provider_table[kind](conf, env)))
		snprintf(err, errlen, "cannot set up the provider (%s)",
			 kind == PROV_CODEUP && !conf->nscopes
			     ? "[codeup] organizations is required: Codeup has no call that "
			       "lists them"
			     : "out of memory");
	return p;
}

/* Keys whose values are credentials: one of these words anywhere in the key, in any case.
 * A word is compared only where its first letter stands, which keeps the walk over every
 * listed item cheap. */
static int secret_key(const char *key)
{
	static const char *const words[] = {"token",	 "password",   "passwd",     "secret",
					    "accesskey", "privatekey", "credential", NULL};

	for (; *key; key++) {
		int c = tolower((unsigned char)*key);

		for (size_t i = 0; words[i]; i++)
			if (c == words[i][0] && !strncasecmp(key, words[i], strlen(words[i])))
				return 1;
	}
	return 0;
}

/* Empty strings, null and empty containers say "no secret here" and are kept as they are,
 * so a reader can tell an unset credential from a redacted one. */
static int secret_present(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return 0;
	case json_type_string:
		return json_object_get_string_len(v) > 0;
	case json_type_array:
		return json_object_array_length(v) > 0;
	case json_type_object:
		return json_object_object_length(v) > 0;
	default:
		return 1;
	}
}

/* The credentials in obj, replaced by "******" when apply is set, else only counted. */
static int redact(struct json_object *obj, int apply)
{
	int n = 0;

	if (json_object_is_type(obj, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(obj); i++)
			n += redact(json_object_array_get_idx(obj, i), apply);
		return n;
	}
	if (!json_object_is_type(obj, json_type_object))
		return 0;
	/* Replacing the value of an existing key keeps its entry, so iteration is safe. */
	json_object_object_foreach(obj, key, val)
	{
		if (!secret_key(key) || !secret_present(val)) {
			n += redact(val, apply);
			continue;
		}
		n++;
		if (apply)
			json_object_object_add(obj, key, json_object_new_string("******"));
	}
	return n;
}

char *provider_meta_json(struct json_object *obj, int show_secrets)
{
	struct json_object *copy = NULL;
	const char *s;
	char *out = NULL;
	size_t len;

	if (!obj)
		return NULL;
	/* The caller's values stay as they were: redact a copy, made only when there is
	 * something to redact. */
	if (!show_secrets && redact(obj, 0)) {
		if (json_object_deep_copy(obj, &copy, NULL) != 0)
			return NULL;
		redact(copy, 1);
		obj = copy;
	}
	s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						    JSON_C_TO_STRING_NOSLASHESCAPE);
	len = s ? strlen(s) : 0;
	out = s ? malloc(len + 2) : NULL;
	if (out) {
		memcpy(out, s, len);
		out[len] = '\n';
		out[len + 1] = '\0';
	}
	json_object_put(copy);
	return out;
}

/* n digits at s as a number, or -1. */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* The zone at s ("Z", "+08:00", "-0530", or nothing for UTC) as seconds east of UTC in
 * *off. -1 when s is anything else, trailing bytes included. */
static int parse_offset(const char *s, long *off)
{
	int sign, h, m;

	*off = 0;
	if (*s == '\0' || ((*s == 'Z' || *s == 'z') && s[1] == '\0'))
		return 0;
	if (*s != '+' && *s != '-')
		return -1;
	sign = *s == '-' ? -1 : 1;
	h = digits(s + 1, 2);
	if (h < 0)
		return -1; /* and s[3] may lie past the end */
	if (s[3] == ':')
		m = digits(s + 4, 2), s += 6;
	else
		m = digits(s + 3, 2), s += 5;
	if (m < 0 || h > 23 || m > 59 || *s != '\0')
		return -1;
	*off = sign * (h * 3600L + m * 60L);
	return 0;
}

int64_t provider_parse_time(const char *s)
{
	struct tm tm = {0};
	const char *rest;
	long off;

	if (!s || !isdigit((unsigned char)*s))
		return 0;
	rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return 0;
	if (*rest == '.' || *rest == ',')
		for (rest++; isdigit((unsigned char)*rest); rest++)
			;
	if (parse_offset(rest, &off) < 0)
		return 0;
	return (int64_t)timegm(&tm) - off;
}

struct json_object *provider_json_parse(const char *body, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t end;

	if (!body || len > INT_MAX)
		return NULL;
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	obj = json_tokener_parse_ex(tok, body, (int)len);
	end = json_tokener_get_parse_end(tok);
	/* Truncated, or followed by more than white space: not the answer we were sent. */
	while (end < len && isspace((unsigned char)body[end]))
		end++;
	if (json_tokener_get_error(tok) != json_tokener_success || end != len) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

struct json_object *provider_json_get(struct json_object *obj, const char *key, int t)
{
	struct json_object *v;

	if (!obj || !json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, (json_type)t))
		return NULL;
	return v;
}

const char *provider_json_str(struct json_object *obj, const char *key, size_t *len)
{
	struct json_object *v = provider_json_get(obj, key, json_type_string);

	if (len)
		*len = v ? (size_t)json_object_get_string_len(v) : 0;
	return v ? json_object_get_string(v) : NULL;
}

char *provider_strndup(const char *s, size_t len)
{
	char *d = s ? malloc(len + 1) : NULL;

	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

int provider_add_container(struct prov_page *out, const char *id, int kind, int64_t ctime)
{
	struct prov_record r = {.kind = kind, .container = 1, .ctime = ctime};

	r.id = strdup(id);
	r.name = strdup(id);
	r.name_len = strlen(id);
	if (!r.id || !r.name || prov_page_add(out, &r) < 0) {
		prov_record_free(&r);
		return -ENOMEM;
	}
	return 0;
}

int provider_scopes_page(char *const *scopes, size_t n, int kind, struct prov_page *out)
{
	for (size_t i = 0; i < n; i++)
		if (provider_add_container(out, scopes[i], kind, 0) < 0)
			return -ENOMEM;
	out->total = (long)n;
	out->last = 1;
	return 0;
}

static char *dup_opt(const char *s, int *fail)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*fail = 1;
	return d;
}

int provider_common_init(struct prov_common *c, const struct prov_conf *conf,
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
		provider_common_free(c);
		return -ENOMEM;
	}
	return 0;
}

static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

void provider_common_free(struct prov_common *c)
{
	for (size_t i = 0; c->scopes && c->scopes[i]; i++)
		free(c->scopes[i]);
	free(c->scopes);
	free(c->key_id);
	free_secret(c->secret);
	free_secret(c->token);
	free(c->region);
	free(c->endpoint);
	memset(c, 0, sizeof(*c));
}

void provider_page_done(struct prov_page *out, long page, long asked, size_t before)
{
	long long n = (long long)(out->n - before);
	long long size = out->page_size > 0 && out->page_size < asked ? out->page_size : asked;

	/* Short of asked with more beyond it: the server pages by a smaller size of its own,
	 * and the next pages' offsets follow that size, not ours. */
	if (n > 0 && n < size && out->total >= 0 && (page - 1) * size + n < out->total)
		size = n;
	out->page_size = (long)size;
	if (out->total < 0) /* no total: only a short page ends the listing */
		out->last = n < size;
	else
		out->last = n == 0 || (page - 1) * size + n >= out->total;
}

#define PROVIDER_FILTER_PAGES 50 /* a name filter that needs more is no filter */

int provider_filter_pages(struct provider *p, const char *scope, const char *term,
			  provider_filter_fn fetch, struct prov_page *out)
{
	int r = 0;

	for (long page = 1; page <= PROVIDER_FILTER_PAGES; page++) {
		out->last = 0;
		r = fetch(p, scope, term, page, out);
		if (r == 0 && out->n > (size_t)PROV_MAX_ENTRIES) {
			log_msg(LOG_ERR,
				"%s: the name filter in %s: more than %ld entries; failing "
				"(docs/design.md §4)",
				p->name, scope, PROV_MAX_ENTRIES);
			return -EIO;
		}
		if (r < 0 || out->last)
			return r;
	}
	log_msg(LOG_WARNING,
		"%s: the name filter in %s still had more after %d pages; the "
		"look-up uses what came",
		p->name, scope, PROVIDER_FILTER_PAGES);
	return r;
}

int prov_page_add(struct prov_page *pg, const struct prov_record *r)
{
	if (pg->n == pg->cap) {
		size_t cap = pg->cap ? pg->cap * 2 : 16;
		struct prov_record *grown = realloc(pg->recs, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		pg->recs = grown;
		pg->cap = cap;
	}
	pg->recs[pg->n++] = *r;
	return 0;
}

void prov_record_free(struct prov_record *r)
{
	free(r->id);
	free(r->name);
	free(r->meta);
	free(r->url);
	free(r->branch);
	free(r->web_url);
	free(r->aux);
	memset(r, 0, sizeof(*r));
}

void prov_page_free(struct prov_page *pg)
{
	for (size_t i = 0; i < pg->n; i++)
		prov_record_free(&pg->recs[i]);
	free(pg->recs);
	memset(pg, 0, sizeof(*pg));
	pg->total = -1;
}

static int copy_str(char **dst, const char *src, size_t len)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = malloc(len + 1);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, len);
	(*dst)[len] = '\0';
	return 0;
}

int prov_record_copy(struct prov_record *dst, const struct prov_record *src)
{
	/* Scalars first; every pointer is then owned by dst alone, so freeing on failure is
	 * safe. */
	*dst = *src;
	dst->id = dst->name = dst->meta = dst->url = dst->branch = dst->web_url = dst->aux = NULL;
	if (copy_str(&dst->id, src->id, src->id ? strlen(src->id) : 0) ||
	    copy_str(&dst->name, src->name, src->name_len) ||
	    copy_str(&dst->meta, src->meta, src->meta ? strlen(src->meta) : 0) ||
	    copy_str(&dst->url, src->url, src->url ? strlen(src->url) : 0) ||
	    copy_str(&dst->branch, src->branch, src->branch ? strlen(src->branch) : 0) ||
	    copy_str(&dst->web_url, src->web_url, src->web_url ? strlen(src->web_url) : 0) ||
	    copy_str(&dst->aux, src->aux, src->aux ? strlen(src->aux) : 0)) {
		prov_record_free(dst);
		return -ENOMEM;
	}
	return 0;
}
