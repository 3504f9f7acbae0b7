/* names: safe, unique directory entry names from cloud display names (DESIGN §1).
 *
 * Entries are named in age order (oldest first), so an entry's name depends only on
 * entries older than it: adding a newer entry never renames an existing one. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed allocation must not exit() the daemon: let HASH_ADD report it instead. */
#define HASH_NONFATAL_OOM	 1
#define uthash_nonfatal_oom(obj) (oom = 1)
#include <uthash.h>

#include "names.h"

struct name_node {
	const char *key;
	size_t len;
	UT_hash_handle hh;
};

struct name_set {
	struct name_node *head;
	struct name_node *nodes; /* preallocated, one per name that can be added */
	size_t used;
};

/* Length of the UTF-8 character at s (n bytes left), strict per RFC 3629; an invalid or
 * truncated sequence counts as a one-byte character. */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 1;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f; /* no surrogates */
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f; /* nothing above U+10FFFF */
	if (len > n || s[1] < lo || s[1] > hi)
		return 1;
	for (i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 1;
	return len;
}

/* Longest prefix of s (len bytes) that is at most max bytes and splits no character. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	size_t pos = 0, k;

	if (len <= max)
		return len;
	while (pos < len) {
		k = utf8_char_len((const unsigned char *)s + pos, len - pos);
		if (pos + k > max)
			break;
		pos += k;
	}
	return pos;
}

void names_sanitize(const char *raw, size_t len, char out[NAMES_MAX + 1])
{
	/* 3 bytes past the limit are enough to see whether the character there is whole. */
	char buf[NAMES_MAX + 3];
	size_t i;

	if (!raw)
		len = 0;
	for (i = 0; i < len && i < sizeof(buf); i++) {
		unsigned char c = (unsigned char)raw[i];

		buf[i] = (c == '/' || c < 0x20 || c == 0x7f) ? '_' : (char)c;
	}
	/* Mapping is byte for byte and only touches ASCII, so cutting the mapped copy
	 * finds the same character boundaries as the raw name. */
	len = utf8_cut(buf, i, NAMES_MAX);
	memcpy(out, buf, len);
	out[len] = '\0';
	if (len == 0)
		strcpy(out, "_");
	else if (!strcmp(out, "."))
		strcpy(out, "_.");
	else if (!strcmp(out, ".."))
		strcpy(out, "_..");
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

int names_id_cmp(const char *a, const char *b)
{
	size_t la, lb;
	int r;

	a = a ? a : "";
	b = b ? b : "";
	if (all_digits(a) && all_digits(b)) {
		/* Compare as numbers of any size: no leading zeros, then length, then bytes. */
		const char *sa = a, *sb = b;

		while (sa[0] == '0' && sa[1])
			sa++;
		while (sb[0] == '0' && sb[1])
			sb++;
		la = strlen(sa);
		lb = strlen(sb);
		if (la != lb)
			return la < lb ? -1 : 1;
		r = memcmp(sa, sb, la);
		if (r)
			return r < 0 ? -1 : 1;
		/* "01" and "1": equal numbers, still a total order. */
	}
	r = strcmp(a, b);
	return r < 0 ? -1 : r > 0;
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct names_entry *a = *(struct names_entry *const *)pa;
	const struct names_entry *b = *(struct names_entry *const *)pb;
	int r;

	/* A missing creation time (0) counts as older than any real one. */
	if (a->ctime != b->ctime) {
		if (a->ctime == 0)
			return -1;
		if (b->ctime == 0)
			return 1;
		return a->ctime < b->ctime ? -1 : 1;
	}
	r = names_id_cmp(a->id, b->id);
	if (r)
		return r;
	/* Same id twice: input order, so the result is still deterministic. */
	return a < b ? -1 : a > b;
}

static int set_has(struct name_set *set, const char *key, size_t len)
{
	struct name_node *found = NULL;

	HASH_FIND(hh, set->head, key, len, found);
	return found != NULL;
}

/* key must outlive the set. 0 or -ENOMEM. */
static int set_add(struct name_set *set, const char *key, size_t len)
{
	struct name_node *node = &set->nodes[set->used];
	int oom = 0;

	node->key = key;
	node->len = len;
	HASH_ADD_KEYPTR(hh, set->head, node->key, node->len, node);
	if (oom)
		return -ENOMEM;
	set->used++;
	return 0;
}

/* Candidate number k (k >= 1) for a taken name: base cut so that base + k copies of
 * suffix fit NAMES_MAX. Returns the length written to out, or 0 when k copies alone do
 * not fit. */
static size_t build_suffixed(char *out, const char *base, const char *suf, size_t suflen,
			     unsigned k)
{
	size_t blen, pos, i;

	if (suflen == 0 || k > NAMES_MAX / suflen)
		return 0;
	blen = utf8_cut(base, strlen(base), NAMES_MAX - k * suflen);
	memcpy(out, base, blen);
	pos = blen;
	for (i = 0; i < k; i++, pos += suflen)
		memcpy(out + pos, suf, suflen);
	out[pos] = '\0';
	return pos;
}

/* Last resort when no number of "~<id>" copies fits (a very long name whose every cut is
 * taken): "~<id>~<n>", counting up. Terminates: the set is finite. */
static size_t build_counted(char *out, const char *base, const char *suf, size_t suflen,
			    unsigned long n)
{
	char tail[NAMES_MAX + 32];
	size_t tlen, blen;

	tlen = (size_t)snprintf(tail, sizeof(tail), "%.*s~%lu", (int)suflen, suf, n);
	if (tlen > NAMES_MAX) {
		/* Keep the counter whole; cut the id part. */
		size_t clen = (size_t)snprintf(NULL, 0, "~%lu", n);
		size_t slen = utf8_cut(suf, suflen, NAMES_MAX - clen);

		tlen = (size_t)snprintf(tail, sizeof(tail), "%.*s~%lu", (int)slen, suf, n);
	}
	blen = utf8_cut(base, strlen(base), NAMES_MAX - tlen);
	memcpy(out, base, blen);
	memcpy(out + blen, tail, tlen + 1);
	return blen + tlen;
}

/* Pick a free name for e into out (NAMES_MAX + 1 bytes); returns its length. */
static size_t pick_name(struct name_set *set, const struct names_entry *e, char *out)
{
	char base[NAMES_MAX + 1], sid[NAMES_MAX + 1], suf[NAMES_MAX + 2];
	size_t len, suflen;
	unsigned long k;

	names_sanitize(e->raw, e->raw_len, base);
	len = strlen(base);
	if (!set_has(set, base, len)) {
		memcpy(out, base, len + 1);
		return len;
	}
	/* The id goes into a path component, so it is made safe like a name. */
	names_sanitize(e->id ? e->id : "", e->id ? strlen(e->id) : 0, sid);
	suflen = (size_t)snprintf(suf, sizeof(suf), "~%s", sid);
	for (k = 1;; k++) {
		len = build_suffixed(out, base, suf, suflen, (unsigned)k);
		if (len == 0)
			break;
		if (!set_has(set, out, len))
			return len;
	}
	for (k = 2;; k++) {
		len = build_counted(out, base, suf, suflen, k);
		if (!set_has(set, out, len))
			return len;
	}
}

static size_t count_reserved(const char *const *reserved)
{
	size_t n = 0;

	while (reserved && reserved[n])
		n++;
	return n;
}

int names_assign(struct names_entry *e, size_t n, const char *const *reserved)
{
	struct name_set set = {0};
	struct names_entry **order = NULL;
	size_t nres = count_reserved(reserved), i, len;
	char buf[NAMES_MAX + 1];
	int rc = -ENOMEM;

	for (i = 0; i < n; i++)
		e[i].name = NULL;
	order = malloc((n ? n : 1) * sizeof(*order));
	set.nodes = calloc(n + nres + 1, sizeof(*set.nodes));
	if (!order || !set.nodes)
		goto out;
	for (i = 0; i < nres; i++) {
		len = strlen(reserved[i]);
		if (!set_has(&set, reserved[i], len) && set_add(&set, reserved[i], len))
			goto out;
	}
	for (i = 0; i < n; i++)
		order[i] = &e[i];
	qsort(order, n, sizeof(*order), entry_cmp);
	for (i = 0; i < n; i++) {
		len = pick_name(&set, order[i], buf);
		order[i]->name = strdup(buf);
		if (!order[i]->name || set_add(&set, order[i]->name, len))
			goto out;
	}
	rc = 0;
out:
	HASH_CLEAR(hh, set.head);
	free(set.nodes);
	free(order);
	if (rc)
		for (i = 0; i < n; i++) {
			free(e[i].name);
			e[i].name = NULL;
		}
	return rc;
}
