#define _GNU_SOURCE /* strptime, timegm, memmem */
/* provider: making providers from their descriptors, and what every provider shares:
 * records, pages, redacted meta.json and time parsing. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "clock.h"
#include "log.h"
#include "provider.h"
#include "providers/providers_i.h"
#include "secret.h"

/* The calling thread's way to give up (provider_set_cancel). */
static __thread struct prov_cancel provider_cancel;

struct provider *provider_new(const struct prov_conf *conf, const struct provider_env *env,
			      char *err, size_t errlen)
{
	const struct prov_desc *d = conf->desc;
	struct provider *p;
	char why[256] = "";

	p = d->create(conf, env, why, sizeof(why));
	if (!p) {
		snprintf(err, errlen, "cannot set up the provider (%s)",
			 why[0] ? why : "out of memory");
		return NULL;
	}
	p->name = d->name;
	return p;
}

void provider_set_cancel(const struct prov_cancel *c)
{
	provider_cancel = c ? *c : (struct prov_cancel){0};
	http_thread_cancel(provider_cancel.cancelled, provider_cancel.ctx);
}

void provider_set_slots(sem_t *slots)
{
	http_thread_slots(slots);
}

struct prov_cancel provider_get_cancel(void)
{
	return provider_cancel;
}

int provider_cancelled(void)
{
	return provider_cancel.cancelled && provider_cancel.cancelled(provider_cancel.ctx);
}

int provider_fail_level(int r)
{
	return r == -EINTR || r == -ECANCELED ? LOG_DEBUG : LOG_ERR;
}

void provider_log_answer(const char *cloud, const char *call, const struct http_response *resp,
			 const char *code, const char *msg, const char *rid, const char *why)
{
	log_msg(LOG_ERR, "%s: %s failed: HTTP %ld %s: %.200s (request id %s)", cloud, call,
		resp->status, code ? code : "(no code)", why ? why : (msg ? msg : ""),
		rid ? rid : "none");
}

int provider_answer(const char *cloud, const char *call, int r, const struct http_response *resp,
		    provider_log_fn log, provider_errno_fn classify)
{
	if (r < 0) {
		log_msg(provider_fail_level(r), "%s: %s failed: %s", cloud, call, strerror(-r));
		return r;
	}
	if (resp->status < 200 || resp->status > 299) {
		log(call, resp, NULL);
		return classify(resp->status, resp->body, resp->len);
	}
	return 0;
}

int provider_new_all(const struct config *c, const struct provider_env *env, struct provider ***out,
		     size_t *n, char *err, size_t errlen)
{
	struct provider **all = calloc(c->nprov + 1, sizeof(*all));
	char why[512];
	size_t k, made = 0;

	*out = NULL;
	*n = 0;
	if (!all) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (k = 0; k < c->nprov; k++) {
		if (!c->prov[k].enabled)
			continue; /* a cloud without credentials has no directory */
		all[made] = provider_new(&c->prov[k], env, why, sizeof(why));
		if (!all[made])
			break;
		made++;
	}
	if (k < c->nprov) {
		snprintf(err, errlen, "%s: %s", c->prov[k].desc->name, why);
		while (made-- > 0)
			all[made]->ops->destroy(all[made]);
		free(all);
		return -EINVAL;
	}
	*out = all;
	*n = made;
	return 0;
}

/* Keys whose values are credentials, compared with case, '_' and '-' ignored (so
 * "private_key", "Private-Key" and "privateKey" are one key): a key holding one of
 * secret_words anywhere, or ending in one of secret_ends, is a secret. The lists are the
 * ones docs/configuration.md documents. */
struct secret_word {
	const char *w;
	size_t len;
};
#define SECRET_WORD(s)                                                                             \
	{                                                                                          \
		s, sizeof(s) - 1                                                                   \
	}
static const struct secret_word secret_words[] = {
    SECRET_WORD("token"),	  SECRET_WORD("password"), SECRET_WORD("passwd"),
    SECRET_WORD("passphrase"),	  SECRET_WORD("secret"),   SECRET_WORD("accesskey"),
    SECRET_WORD("privatekey"),	  SECRET_WORD("apikey"),   SECRET_WORD("credential"),
    SECRET_WORD("authorization"), SECRET_WORD("cookie"),
};
static const struct secret_word secret_ends[] = {SECRET_WORD("pass"), SECRET_WORD("pwd")};
#define NWORDS(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(NWORDS(secret_words) <= 16, "secret_by_first holds 16 words a letter");

/* For each letter, the secret_words that start with it (bit k: word k). */
static uint16_t secret_by_first[26];
static pthread_once_t secret_once = PTHREAD_ONCE_INIT;

static void secret_index(void)
{
	for (size_t k = 0; k < NWORDS(secret_words); k++)
		secret_by_first[secret_words[k].w[0] - 'a'] |= (uint16_t)(1u << k);
}

/* One pass over the normalised key: every key of every item of every page comes here, so
 * only the words that start with a letter are compared where it stands. */
static int secret_key_norm(const char *norm, size_t n)
{
	pthread_once(&secret_once, secret_index);
	for (size_t i = 0; i < n; i++) {
		unsigned m = norm[i] >= 'a' && norm[i] <= 'z' ? secret_by_first[norm[i] - 'a'] : 0;

		for (; m; m &= m - 1) {
			const struct secret_word *w = &secret_words[__builtin_ctz(m)];

			if (n - i >= w->len && !memcmp(norm + i, w->w, w->len))
				return 1;
		}
	}
	for (size_t k = 0; k < NWORDS(secret_ends); k++)
		if (n >= secret_ends[k].len &&
		    !memcmp(norm + n - secret_ends[k].len, secret_ends[k].w, secret_ends[k].len))
			return 1;
	return 0;
}

static int secret_key(const char *key)
{
	char small[64], *norm = small;
	size_t len = strlen(key), n = 0;
	int r;

	if (len >= sizeof(small) && !(norm = malloc(len + 1)))
		return 1; /* cannot tell: redact */
	for (; *key; key++)
		if (*key != '_' && *key != '-')
			norm[n++] = *key >= 'A' && *key <= 'Z' ? (char)(*key - 'A' + 'a') : *key;
	norm[n] = '\0';
	r = secret_key_norm(norm, n);
	if (norm != small)
		free(norm);
	return r;
}

/* The password in "scheme://user:PASSWORD@host/…" of s (len bytes) as [*start, *end): 1 when
 * s is such a URL with a non-empty password, else 0. The user information ends at the last
 * '@' before the path, so a password that holds an unescaped '@' is taken whole. */
static int url_password(const char *s, size_t len, size_t *start, size_t *end)
{
	const char *sep = s, *auth, *at = NULL, *colon = NULL, *p;

	/* Every string value of every item comes here: the scheme is walked, not searched
	 * for, so a string that is no URL costs a byte or two. A NUL passes as a scheme byte
	 * and ends the host, as strchr() on the lists used to make it. */
	if (!len || !isalpha((unsigned char)s[0]))
		return 0;
	while (sep < s + len &&
	       (isalnum((unsigned char)*sep) || !*sep || *sep == '+' || *sep == '-' || *sep == '.'))
		sep++;
	if (s + len - sep < 3 || memcmp(sep, "://", 3))
		return 0;
	auth = sep + 3;
	for (p = auth; p < s + len && *p && *p != '/' && *p != '?' && *p != '#'; p++)
		if (*p == '@')
			at = p;
	for (p = auth; at && p < at && !colon; p++)
		if (*p == ':')
			colon = p;
	if (!colon || colon + 1 == at)
		return 0;
	*start = (size_t)(colon + 1 - s);
	*end = (size_t)(at - s);
	return 1;
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

/* A value of the printed object swapped for its redacted stand-in, kept to be put back:
 * its parent (an object with the member's key, or an array with the index). Redacting in
 * place and putting back costs nothing for the items without a secret, where a deep copy
 * of every item with one cost a copy of each of its values. */
struct swap {
	struct json_object *parent;
	const char *key; /* NULL: parent is an array */
	size_t idx;
	struct json_object *orig;
};

struct swaps {
	struct swap *v;
	size_t n, cap;
	int failed; /* out of memory: no meta.json */
};

/* repl (taken; NULL: out of memory) in the place of orig in parent. */
static void swap_in(struct swaps *s, struct json_object *parent, const char *key, size_t idx,
		    struct json_object *orig, struct json_object *repl)
{
	if (s->n == s->cap && repl) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct swap *grown = realloc(s->v, cap * sizeof(*grown));

		if (!grown) {
			json_object_put(repl);
			repl = NULL;
		} else {
			s->v = grown;
			s->cap = cap;
		}
	}
	if (!repl) {
		s->failed = 1;
		return;
	}
	s->v[s->n++] = (struct swap){parent, key, idx, json_object_get(orig)};
	/* An existing key keeps its entry (and key), so an iteration over parent goes on. */
	if (key)
		json_object_object_add(parent, key, repl);
	else
		json_object_array_put_idx(parent, idx, repl);
}

/* Every swapped value back where it was; the stand-ins are freed. */
static void swaps_undo(struct swaps *s)
{
	while (s->n > 0) {
		struct swap *w = &s->v[--s->n];

		if (w->key)
			json_object_object_add(w->parent, w->key, w->orig);
		else
			json_object_array_put_idx(w->parent, w->idx, w->orig);
	}
	free(s->v);
}

/* A string that is a URL with a password, as a new string with "******" in the
 * password's place; NULL when v is no such URL, or (*fail set) when memory ran out. */
static struct json_object *url_redacted(struct json_object *v, int *fail)
{
	const char *s = json_object_get_string(v);
	size_t len = (size_t)json_object_get_string_len(v), a, b;
	struct json_object *r = NULL;
	char *t;

	if (!url_password(s, len, &a, &b))
		return NULL;
	t = malloc(len - (b - a) + 6);
	if (t) {
		memcpy(t, s, a);
		memcpy(t + a, "******", 6);
		memcpy(t + a + 6, s + b, len - b);
		r = json_object_new_string_len(t, (int)(len - (b - a) + 6));
		free(t);
	}
	if (!r)
		*fail = 1;
	return r;
}

static void redact(struct json_object *obj, struct swaps *s);

/* The member key (NULL: element idx of an array) of parent, whose value is v. */
static void redact_value(struct swaps *s, struct json_object *parent, const char *key, size_t idx,
			 struct json_object *v)
{
	struct json_object *r;

	if (key && secret_present(v) && secret_key(key)) {
		swap_in(s, parent, key, idx, v, json_object_new_string("******"));
	} else if (json_object_is_type(v, json_type_string)) {
		r = url_redacted(v, &s->failed);
		if (r)
			swap_in(s, parent, key, idx, v, r);
	} else {
		redact(v, s);
	}
}

/* The credentials in obj swapped for their redacted stand-ins (swaps_undo puts them back). */
static void redact(struct json_object *obj, struct swaps *s)
{
	if (json_object_is_type(obj, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(obj); i++)
			redact_value(s, obj, NULL, i, json_object_array_get_idx(obj, i));
	} else if (json_object_is_type(obj, json_type_object)) {
		json_object_object_foreach(obj, key, val)
			redact_value(s, obj, key, 0, val);
	}
}

/* obj printed as meta.json is: pretty, with a trailing newline. */
static char *meta_text(struct json_object *obj)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(
	    obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE,
	    &len);
	char *out = s ? malloc(len + 2) : NULL;

	if (out) {
		memcpy(out, s, len);
		out[len] = '\n';
		out[len + 1] = '\0';
	}
	return out;
}

char *provider_meta_json(struct json_object *obj, int show_secrets)
{
	struct swaps s = {0};
	struct json_object *root = NULL;
	char *out = NULL;

	if (!obj)
		return NULL;
	if (!show_secrets && json_object_is_type(obj, json_type_string))
		root = url_redacted(obj, &s.failed); /* nothing to swap it in */
	else if (!show_secrets)
		redact(obj, &s);
	if (!s.failed)
		out = meta_text(root ? root : obj);
	swaps_undo(&s);
	json_object_put(root);
	return out;
}

/* Why s (len bytes) is no usable clone URL, or NULL when it is one. */
static const char *url_unusable(const char *s, size_t len)
{
	if (len == 0)
		return "it is empty";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return "it holds a control character";
	if (s[0] == '-')
		return "it starts with '-', which git would take as an option";
	return NULL;
}

int provider_url(const char *s, size_t len, const char *what, const char *id, int show_secrets,
		 char **out)
{
	const char *why = s ? url_unusable(s, len) : NULL;
	size_t a, b;

	*out = NULL;
	if (!s)
		return 0;
	if (why) {
		/* The value may hold a secret: say why, never what. */
		if (what)
			log_msg(LOG_WARNING, "%s of %s is no usable clone URL (%s): no url file",
				what, id ? id : "(no id)", why);
		return 0;
	}
	if (show_secrets || !url_password(s, len, &a, &b))
		a = b = len;
	else if (!memcmp(s + a - 4, "://", 3))
		a--, b++; /* "scheme://:password@host": no user either, so no '@' */
	else
		a--; /* the ':' before the password goes too */
	*out = malloc(len - (b - a) + 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, s, a);
	memcpy(*out + a, s + b, len - b);
	(*out)[len - (b - a)] = '\0';
	return 0;
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

/* s in the zero-padded form every cloud writes, "YYYY-MM-DDTHH:MM:SS", into tm with the
 * ranges strptime checks: a listing parses two times an entry, and strptime is a tenth of
 * what an entry costs. NULL when s is in any other form, for strptime to judge; else where
 * the time ends. */
static const char *iso_fixed(const char *s, struct tm *tm)
{
	static const char seps[] = "--T::";
	static const int width[] = {4, 2, 2, 2, 2, 2}, low[] = {0, 1, 1, 0, 0, 0},
			 high[] = {9999, 12, 31, 23, 59, 61};
	int v[6];

	for (int i = 0; i < 6; i++) {
		v[i] = digits(s, width[i]);
		if (v[i] < low[i] || v[i] > high[i] || (i < 5 && s[width[i]] != seps[i]))
			return NULL;
		s += width[i] + (i < 5);
	}
	tm->tm_year = v[0] - 1900;
	tm->tm_mon = v[1] - 1;
	tm->tm_mday = v[2];
	tm->tm_hour = v[3];
	tm->tm_min = v[4];
	tm->tm_sec = v[5];
	return s;
}

int64_t provider_parse_time(const char *s)
{
	struct tm tm = {0};
	const char *rest;
	long off;

	if (!s || !isdigit((unsigned char)*s))
		return 0;
	rest = iso_fixed(s, &tm);
	if (!rest)
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

static struct json_object *json_parse_exact(const char *body, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t end;

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

/* json-c keeps an object's keys as C strings: a key holding "\u0000" is cut there, and
 * "x\u0000token" would print as "x", unredacted. Such escapes are parsed as a noncharacter
 * (U+FDD0 … U+FDEF) that the body does not hold; members whose key holds it are dropped
 * (a key with a NUL cannot be printed as it is), and in string values it turns back into
 * the NUL it stood for. */
#define NUL_MARK_FIRST 0xfdd0
#define NUL_MARK_LAST  0xfdef

static int mark_present(const char *body, size_t len, unsigned code)
{
	char hex[5], utf[3] = {'\xef', '\xb7', (char)(0x90 + code - NUL_MARK_FIRST)};

	snprintf(hex, sizeof(hex), "%04x", code);
	if (memmem(body, len, utf, sizeof(utf)))
		return 1;
	for (size_t i = 0; i + 6 <= len; i++)
		if (body[i] == '\\' && body[i + 1] == 'u' && !strncasecmp(body + i + 2, hex, 4))
			return 1;
	return 0;
}

/* A copy of body with every "\u0000" escape replaced by the escape of code. */
static char *mark_nuls(const char *body, size_t len, unsigned code)
{
	char *copy = malloc(len + 1), esc[7];

	if (!copy)
		return NULL;
	memcpy(copy, body, len);
	copy[len] = '\0';
	snprintf(esc, sizeof(esc), "\\u%04x", code);
	for (size_t i = 0; i + 6 <= len; i++) {
		if (copy[i] != '\\')
			continue;
		if (!memcmp(copy + i + 1, "u0000", 5))
			memcpy(copy + i, esc, 6);
		i++; /* the escaped character: "\\u0000" is text, not a NUL */
	}
	return copy;
}

/* The marker (3 bytes) in string o back into the NUL it stood for. */
static void unmark_string(struct json_object *o, const char *mark)
{
	const char *s = json_object_get_string(o);
	size_t len = (size_t)json_object_get_string_len(o), n = 0;
	char *t;

	if (!memmem(s, len, mark, 3) || !(t = malloc(len + 1)))
		return;
	for (size_t i = 0; i < len; i++) {
		if (i + 3 <= len && !memcmp(s + i, mark, 3)) {
			t[n++] = '\0';
			i += 2;
		} else {
			t[n++] = s[i];
		}
	}
	json_object_set_string_len(o, t, (int)n);
	free(t);
}

static void unmark(struct json_object *o, const char *mark)
{
	if (json_object_is_type(o, json_type_string)) {
		unmark_string(o, mark);
	} else if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			unmark(json_object_array_get_idx(o, i), mark);
	} else if (json_object_is_type(o, json_type_object)) {
		/* The next entry is taken before the body runs: deleting this one is safe. */
		json_object_object_foreach(o, key, val) {
			if (strstr(key, mark))
				json_object_object_del(o, key);
			else
				unmark(val, mark);
		}
	}
}

struct json_object *provider_json_parse(const char *body, size_t len)
{
	struct json_object *obj;
	unsigned code = NUL_MARK_FIRST;
	char *copy, mark[4];

	if (!body || len > INT_MAX)
		return NULL;
	if (!memmem(body, len, "\\u0000", 6))
		return json_parse_exact(body, len);
	while (code <= NUL_MARK_LAST && mark_present(body, len, code))
		code++;
	if (code > NUL_MARK_LAST)
		return NULL; /* every marker taken: no real answer looks like this */
	copy = mark_nuls(body, len, code);
	obj = copy ? json_parse_exact(copy, len) : NULL;
	mark[0] = '\xef', mark[1] = '\xb7', mark[2] = (char)(0x90 + code - NUL_MARK_FIRST);
	mark[3] = '\0';
	unmark(obj, mark);
	free(copy);
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

int provider_add_container(struct prov_page *out, const char *id, int kind, const char *kind_name,
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

int provider_scopes_page(char *const *scopes, size_t n, int kind, const char *kind_name,
			 struct prov_page *out)
{
	for (size_t i = 0; i < n; i++)
		if (provider_add_container(out, scopes[i], kind, kind_name, 0, NULL, 0) < 0)
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
struct prov_seed {
	struct prov_page found;
	int64_t at; /* clock_now() when it came */
};

void provider_seed_keep(struct prov_common *c, struct prov_page *found)
{
	struct prov_seed *s = malloc(sizeof(*s));

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

void provider_seed_drop(struct prov_common *c)
{
	struct prov_seed *s = __atomic_exchange_n(&c->seed, NULL, __ATOMIC_ACQ_REL);

	if (s)
		prov_page_free(&s->found);
	free(s);
}

/* The seed of c into *found when one is there and no dir_ttl passed since it came: 1, else
 * 0. Whichever, it is used once. */
static int seed_take(struct prov_common *c, struct prov_page *found)
{
	struct prov_seed *s = __atomic_exchange_n(&c->seed, NULL, __ATOMIC_ACQ_REL);
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

int provider_named_scopes(struct provider *p, struct prov_common *c, int kind,
			  const char *kind_name, provider_ids_fn fetch, struct prov_page *out)
{
	struct prov_page found = {0};
	int r = provider_scopes_page(c->scopes, c->nscopes, kind, kind_name, out);

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

int provider_confirm_scopes(char *const *scopes, size_t n, const struct prov_page *found,
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

void provider_common_free(struct prov_common *c)
{
	provider_seed_drop(c);
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

int provider_filter_pages(struct provider *p, const struct prov_record *dir, const char *term,
			  provider_filter_fn fetch, void *ctx, struct prov_page *out)
{
	int r = 0;

	for (long page = 1; page <= PROVIDER_FILTER_PAGES; page++) {
		out->last = 0;
		r = fetch(p, dir, term, page, out, ctx);
		if (r == 0 && out->n > (size_t)PROV_MAX_ENTRIES) {
			log_msg(LOG_ERR,
				"%s: the name filter in %s: more than %ld entries; failing "
				"(docs/design.md §4)",
				p->name, dir->id, PROV_MAX_ENTRIES);
			return -EIO;
		}
		if (r < 0 || out->last)
			return r;
	}
	log_msg(LOG_WARNING,
		"%s: the name filter in %s still had more after %d pages; the "
		"look-up uses what came",
		p->name, dir->id, PROVIDER_FILTER_PAGES);
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
	free(r->scope);
	free(r->path);
	free(r->label);
	for (size_t i = 0; i < r->nancestors; i++)
		free(r->ancestors[i]);
	free(r->ancestors);
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

/* dst's copy of src's ancestors; dst->nancestors counts those copied so far. */
static int copy_ancestors(struct prov_record *dst, const struct prov_record *src)
{
	dst->nancestors = 0;
	if (!src->nancestors)
		return 0;
	dst->ancestors = calloc(src->nancestors, sizeof(*dst->ancestors));
	if (!dst->ancestors)
		return -ENOMEM;
	for (; dst->nancestors < src->nancestors; dst->nancestors++) {
		const char *id = src->ancestors[dst->nancestors];

		if (copy_str(&dst->ancestors[dst->nancestors], id, strlen(id)) < 0)
			return -ENOMEM;
	}
	return 0;
}

int prov_record_copy(struct prov_record *dst, const struct prov_record *src)
{
	/* Scalars first; every pointer is then owned by dst alone, so freeing on failure is
	 * safe. */
	*dst = *src;
	dst->id = dst->name = dst->meta = dst->url = dst->branch = dst->web_url = NULL;
	dst->scope = dst->path = dst->label = NULL;
	dst->ancestors = NULL;
	dst->nancestors = 0;
	if (copy_str(&dst->id, src->id, src->id ? strlen(src->id) : 0) ||
	    copy_str(&dst->name, src->name, src->name_len) ||
	    copy_str(&dst->meta, src->meta, src->meta ? strlen(src->meta) : 0) ||
	    copy_str(&dst->url, src->url, src->url ? strlen(src->url) : 0) ||
	    copy_str(&dst->branch, src->branch, src->branch ? strlen(src->branch) : 0) ||
	    copy_str(&dst->web_url, src->web_url, src->web_url ? strlen(src->web_url) : 0) ||
	    copy_str(&dst->scope, src->scope, src->scope ? strlen(src->scope) : 0) ||
	    copy_str(&dst->path, src->path, src->path ? strlen(src->path) : 0) ||
	    copy_str(&dst->label, src->label, src->label_len) || copy_ancestors(dst, src)) {
		prov_record_free(dst);
		return -ENOMEM;
	}
	return 0;
}
