/* names: safe, unique directory entry names from cloud display names (docs/design.md §1).
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

/* The candidates of one suffix sequence ("~<id>" repeated, or "~<id>~<n>" counted), named
 * by what fixes them all. Names are only ever added while entries are named, so every
 * candidate before next stays taken: the next entry of the family starts at next, which
 * keeps naming linear however many entries share a family. */
struct family {
	char *key;
	size_t len;
	unsigned long next; /* 0: no candidate tried yet */
	UT_hash_handle hh;
};

#define NAMES_COUNTER 21 /* "~" and the 20 digits of the largest counter */

struct name_set {
	struct name_node *head;
	struct name_node *nodes; /* preallocated, one per name that can be added */
	size_t used;
	struct family *families;
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

int names_age_cmp(int64_t ctime_a, const char *id_a, int64_t ctime_b, const char *id_b)
{
	/* A missing creation time (0) counts as older than any real one. */
	if (ctime_a != ctime_b) {
		if (ctime_a == 0)
			return -1;
		if (ctime_b == 0)
			return 1;
		return ctime_a < ctime_b ? -1 : 1;
	}
	return names_id_cmp(id_a, id_b);
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct names_entry *a = *(struct names_entry *const *)pa;
	const struct names_entry *b = *(struct names_entry *const *)pb;
	int r = names_age_cmp(a->ctime, a->id, b->ctime, b->id);

	if (r)
		return r;
	/* Same id twice: input order, so the result is still deterministic. */
	return a < b ? -1 : a > b;
}

static _Thread_local unsigned long names_probe_count;

unsigned long names_probes(void)
{
	return names_probe_count;
}

static int set_has(struct name_set *set, const char *key, size_t len)
{
	struct name_node *found = NULL;

	names_probe_count++;

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

/* The family of key (len bytes), created on first use; NULL when out of memory. */
static struct family *family_get(struct name_set *set, const char *key, size_t len)
{
	struct family *f = NULL;
	int oom = 0;

	HASH_FIND(hh, set->families, key, len, f);
	if (f)
		return f;
	f = calloc(1, sizeof(*f));
	if (!f || !(f->key = malloc(len))) {
		free(f);
		return NULL;
	}
	memcpy(f->key, key, len);
	f->len = len;
	HASH_ADD_KEYPTR(hh, set->families, f->key, f->len, f);
	if (oom) {
		free(f->key);
		free(f);
		return NULL;
	}
	return f;
}

static void families_free(struct name_set *set)
{
	struct family *f, *tmp;

	HASH_ITER(hh, set->families, f, tmp) {
		HASH_DEL(set->families, f);
		free(f->key);
		free(f);
	}
}

/* Candidate number k (k >= 1) for a taken name: base cut so that base + k copies of
 * suffix fit NAMES_MAX. Returns the length written to out, or 0 when k copies alone do
 * not fit. */
static size_t build_suffixed(char *out, const char *base, const char *suf, size_t suflen,
			     unsigned long k)
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

/* base + "~<id>" k times, k = 1, 2, … while it fits. 1 with the name in out (*len), 0 when
 * every one is taken, -ENOMEM. The first candidate and the suffix's length fix the rest. */
static int pick_repeated(struct name_set *set, const char *base, const char *suf, size_t suflen,
			 char *out, size_t *len)
{
	char key[NAMES_MAX + 2];
	struct family *f;
	unsigned long k;
	size_t klen;

	klen = build_suffixed(key + 1, base, suf, suflen, 1);
	if (klen == 0)
		return 0;
	key[0] = (char)suflen; /* 2 to 255, never the counted families' 0 */
	f = family_get(set, key, klen + 1);
	if (!f)
		return -ENOMEM;
	for (k = f->next ? f->next : 1; (*len = build_suffixed(out, base, suf, suflen, k)); k++)
		if (!set_has(set, out, *len)) {
			f->next = k + 1;
			return 1;
		}
	f->next = k;
	return 0;
}

/* Last resort when no copy of "~<id>" fits or all are taken (an id of 255 bytes or more,
 * or a long name whose every cut is taken): base cut, "~<id>" cut to 234 bytes, then "~<n>"
 * for n = 2, 3, … so that the whole fits 255 bytes. Terminates: the set is finite. 0 or
 * -ENOMEM. */
static int pick_counted(struct name_set *set, const char *base, const char *suf, size_t suflen,
			char *out, size_t *len)
{
	size_t tlen = utf8_cut(suf, suflen, NAMES_MAX - NAMES_COUNTER);
	size_t blen = utf8_cut(base, strlen(base), NAMES_MAX - NAMES_COUNTER - tlen);
	char key[NAMES_MAX + 1];
	struct family *f;
	unsigned long n;

	key[0] = '\0';
	memcpy(key + 1, base, blen);
	memcpy(key + 1 + blen, suf, tlen);
	f = family_get(set, key, 1 + blen + tlen);
	if (!f)
		return -ENOMEM;
	memcpy(out, key + 1, blen + tlen);
	for (n = f->next ? f->next : 2;; n++) {
		*len = blen + tlen;
		*len += (size_t)snprintf(out + *len, NAMES_COUNTER + 1, "~%lu", n);
		if (!set_has(set, out, *len))
			break;
	}
	f->next = n + 1;
	return 0;
}

/* Pick a free name for e into out (NAMES_MAX + 1 bytes), its length in *len. 0 or -ENOMEM. */
static int pick_name(struct name_set *set, const struct names_entry *e, char *out, size_t *len)
{
	char base[NAMES_MAX + 1], sid[NAMES_MAX + 1], suf[NAMES_MAX + 2];
	size_t suflen;
	int r;

	names_sanitize(e->raw, e->raw_len, base);
	*len = strlen(base);
	if (!set_has(set, base, *len)) {
		memcpy(out, base, *len + 1);
		return 0;
	}
	/* The id goes into a path component, so it is made safe like a name. */
	names_sanitize(e->id ? e->id : "", e->id ? strlen(e->id) : 0, sid);
	suflen = (size_t)snprintf(suf, sizeof(suf), "~%s", sid);
	r = pick_repeated(set, base, suf, suflen, out, len);
	if (r != 0)
		return r < 0 ? r : 0;
	return pick_counted(set, base, suf, suflen, out, len);
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
		if (pick_name(&set, order[i], buf, &len) < 0)
			goto out;
		order[i]->name = strdup(buf);
		if (!order[i]->name || set_add(&set, order[i]->name, len))
			goto out;
	}
	rc = 0;
out:
	HASH_CLEAR(hh, set.head);
	families_free(&set);
	free(set.nodes);
	free(order);
	if (rc)
		for (i = 0; i < n; i++) {
			free(e[i].name);
			e[i].name = NULL;
		}
	return rc;
}
