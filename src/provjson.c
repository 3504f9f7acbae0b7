#define _GNU_SOURCE /* strptime, timegm, memmem */
/* provjson: reading a cloud's answer: exactly its bytes as JSON (NUL escapes kept), typed
 * member access, and its ISO 8601 times. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "providers/providers_i.h"

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

int64_t provjson_time(const char *s)
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

struct json_object *provjson_parse(const char *body, size_t len)
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

struct json_object *provjson_get(struct json_object *obj, const char *key, int t)
{
	struct json_object *v;

	if (!obj || !json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, (json_type)t))
		return NULL;
	return v;
}

const char *provjson_str(struct json_object *obj, const char *key, size_t *len)
{
	struct json_object *v = provjson_get(obj, key, json_type_string);

	if (len)
		*len = v ? (size_t)json_object_get_string_len(v) : 0;
	return v ? json_object_get_string(v) : NULL;
}
