/* redact: the secrets kept out of what a record shows: credential fields and URL passwords
 * of meta.json, and the password of a url file's clone URL. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "log.h"
#include "providers/providers_i.h"

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

char *redact_meta_json(struct json_object *obj, int show_secrets)
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

int redact_url(const char *s, size_t len, const char *what, const char *id, int show_secrets,
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
