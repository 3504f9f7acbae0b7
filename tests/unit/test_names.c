/* names: every rule of docs/design.md §1 for entry names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "names.h"

static void check_sanitize(const char *raw, size_t len, const char *want)
{
	char out[NAMES_MAX + 1];

	names_sanitize(raw, len, out);
	assert_string_equal(out, want);
}

static void test_sanitize_specials(void **state)
{
	(void)state;
	check_sanitize("plain name", 10, "plain name");
	check_sanitize("a/b/c", 5, "a_b_c");
	check_sanitize("a\0b", 3, "a_b");
	check_sanitize("\x01\x1f\x7f", 3, "___");
	check_sanitize("tab\there\nnl\r", 12, "tab_here_nl_");
	check_sanitize(" ~!*", 4, " ~!*");
	check_sanitize("\xe4\xb8\xad\xe6\x96\x87", 6, "\xe4\xb8\xad\xe6\x96\x87");
	check_sanitize(".", 1, "_.");
	check_sanitize("..", 2, "_..");
	check_sanitize("", 0, "_");
	check_sanitize(NULL, 0, "_");
	check_sanitize("...", 3, "...");
	check_sanitize(".x", 2, ".x");
	check_sanitize("/", 1, "_");
	check_sanitize("\0", 1, "_");
	/* The length decides, not a NUL. */
	check_sanitize("ab\0\0", 4, "ab__");
	check_sanitize("abcdef", 3, "abc");
}

/* A name of n copies of ch (its UTF-8 bytes) after pre ASCII bytes. */
static char *repeat(size_t pre, const char *ch, size_t n, size_t *len)
{
	size_t cl = strlen(ch), i;
	char *s = malloc(pre + cl * n + 1);

	memset(s, 'a', pre);
	for (i = 0; i < n; i++)
		memcpy(s + pre + i * cl, ch, cl);
	*len = pre + cl * n;
	s[*len] = '\0';
	return s;
}

static void check_cut(size_t pre, const char *ch, size_t want_len)
{
	char out[NAMES_MAX + 1];
	size_t len;
	char *s = repeat(pre, ch, 300, &len);

	names_sanitize(s, len, out);
	assert_int_equal(strlen(out), want_len);
	assert_memory_equal(out, s, want_len);
	free(s);
}

static void test_sanitize_cut_utf8(void **state)
{
	(void)state;
	check_cut(300, "", 255);
	/* 2-byte "é": 1 + 2k fits 255 at 255. */
	check_cut(1, "\xc3\xa9", 255);
	check_cut(0, "\xc3\xa9", 254);
	/* 3-byte "中": 255 = 85 × 3; one ASCII byte before leaves 1 + 84 × 3. */
	check_cut(0, "\xe4\xb8\xad", 255);
	check_cut(1, "\xe4\xb8\xad", 253);
	check_cut(2, "\xe4\xb8\xad", 254);
	/* 4-byte "😀". */
	check_cut(0, "\xf0\x9f\x98\x80", 252);
	check_cut(3, "\xf0\x9f\x98\x80", 255);
	check_cut(254, "\xf0\x9f\x98\x80", 254);
	/* Exactly 255 bytes is kept whole. */
	{
		char s[256], out[NAMES_MAX + 1];

		memset(s, 'z', 255);
		s[255] = '\0';
		names_sanitize(s, 255, out);
		assert_string_equal(out, s);
	}
}

static void test_sanitize_cut_invalid_utf8(void **state)
{
	char s[300], out[NAMES_MAX + 1];

	(void)state;
	/* Lone continuation bytes are one character each: cut at exactly 255. */
	memset(s, 0x80, sizeof(s));
	names_sanitize(s, sizeof(s), out);
	assert_int_equal(strlen(out), 255);
	/* A lead byte whose sequence is broken counts alone, too. */
	memset(s, 'a', sizeof(s));
	s[254] = (char)0xe4;
	s[255] = 'b';
	names_sanitize(s, sizeof(s), out);
	assert_int_equal(strlen(out), 255);
	/* Overlong (0xc0 0xaf) and surrogate (0xed 0xa0 0x80) forms are not characters. */
	memset(s, 'a', sizeof(s));
	s[254] = (char)0xc0;
	s[255] = (char)0xaf;
	names_sanitize(s, sizeof(s), out);
	assert_int_equal(strlen(out), 255);
	memset(s, 'a', sizeof(s));
	s[253] = (char)0xed;
	s[254] = (char)0xa0;
	s[255] = (char)0x80;
	names_sanitize(s, sizeof(s), out);
	assert_int_equal(strlen(out), 255);
	/* A valid sequence across the limit is dropped whole. */
	s[253] = (char)0xe4;
	s[254] = (char)0xb8;
	s[255] = (char)0xad;
	names_sanitize(s, sizeof(s), out);
	assert_int_equal(strlen(out), 253);
	/* Controls inside a long name are mapped before the cut. */
	memset(s, '/', sizeof(s));
	names_sanitize(s, sizeof(s), out);
	assert_int_equal(strlen(out), 255);
	assert_int_equal(out[0], '_');
	assert_int_equal(out[254], '_');
}

static void test_id_cmp(void **state)
{
	(void)state;
	assert_true(names_id_cmp("2", "10") < 0);
	assert_true(names_id_cmp("10", "2") > 0);
	assert_int_equal(names_id_cmp("42", "42"), 0);
	assert_true(names_id_cmp("007", "8") < 0);
	/* Far past 64 bits, still numeric. */
	assert_true(names_id_cmp("99999999999999999999999999", "100000000000000000000000000") < 0);
	assert_true(names_id_cmp("100000000000000000000000001", "100000000000000000000000000") > 0);
	/* Not both digits: bytewise. */
	assert_true(names_id_cmp("10a", "2") < 0);
	assert_true(names_id_cmp("b", "a") > 0);
	assert_true(names_id_cmp("abc", "abd") < 0);
	assert_true(names_id_cmp("", "0") < 0);
	assert_true(names_id_cmp("\xff", "a") > 0);
	/* Equal numbers with different spellings still order, consistently. */
	assert_true(names_id_cmp("01", "1") < 0);
	assert_true(names_id_cmp("1", "01") > 0);
}

#define E(raw_, id_, ctime_)                                                                       \
	{                                                                                          \
		.raw = raw_, .raw_len = sizeof(raw_) - 1, .id = id_, .ctime = ctime_               \
	}

static void free_names(struct names_entry *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(e[i].name);
}

/* Names the n entries e, each of which must get the name want[i]; frees the names. */
static void assign_expect(struct names_entry *e, size_t n, const char *const *reserved,
			  const char *const *want)
{
	assert_int_equal(names_assign(e, n, reserved), 0);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(e[i].name, want[i]);
	free_names(e, n);
}

static void test_assign_unique(void **state)
{
	struct names_entry e[] = {E("alpha", "1", 100), E("beta", "2", 50), E("a/b", "3", 7)};
	static const char *const want[] = {"alpha", "beta", "a_b"};

	(void)state;
	assign_expect(e, 3, NULL, want);
	assert_int_equal(names_assign(NULL, 0, NULL), 0);
}

static void test_assign_oldest_keeps(void **state)
{
	struct names_entry e[] = {E("dup", "a1", 300), E("dup", "b2", 100), E("dup", "c3", 200)};
	static const char *const want[] = {"dup~a1", "dup", "dup~c3"};

	(void)state;
	assign_expect(e, 3, NULL, want);
}

static void test_assign_tie_numeric_id(void **state)
{
	struct names_entry e[] = {E("x", "10", 5), E("x", "9", 5)};
	static const char *const want[] = {"x~10", "x"};

	(void)state;
	assign_expect(e, 2, NULL, want);
}

static void test_assign_tie_bytewise_id(void **state)
{
	struct names_entry e[] = {E("x", "b9", 5), E("x", "a10", 5), E("x", "9z", 5)};
	static const char *const want[] = {"x~b9", "x~a10", "x"};

	(void)state;
	assign_expect(e, 3, NULL, want);
}

static void test_assign_no_ctime_is_oldest(void **state)
{
	struct names_entry e[] = {E("g", "1", 1), E("g", "2", 0)};
	static const char *const want[] = {"g~1", "g"};

	(void)state;
	assign_expect(e, 2, NULL, want);
}

static void test_assign_reserved(void **state)
{
	static const char *const reserved[] = {"meta.json", "url", "branch", NULL};
	struct names_entry e[] = {E("url", "7", 1), E("meta.json", "8", 2), E("src", "9", 3)};
	static const char *const want[] = {"url~7", "meta.json~8", "src"};

	(void)state;
	assign_expect(e, 3, reserved, want);
}

static void test_assign_double_suffix(void **state)
{
	/* "a~2" is an older entry's own name, so the newer "a" from id 2 needs two. */
	struct names_entry e[] = {E("a", "1", 1), E("a~2", "5", 2), E("a", "2", 3)};
	static const char *const want[] = {"a", "a~2", "a~2~2"};

	(void)state;
	assign_expect(e, 3, NULL, want);
}

static void test_assign_sanitised_collisions(void **state)
{
	/* Different raw names, same safe name. */
	struct names_entry e[] = {E("a/b", "1", 1), E("a\0b", "2", 2), E("a_b", "3", 3),
				  E(".", "4", 4), E("_.", "5", 5)};
	static const char *const want[] = {"a_b", "a_b~2", "a_b~3", "_.", "_.~5"};

	(void)state;
	assign_expect(e, 5, NULL, want);
}

static void test_assign_id_sanitised(void **state)
{
	struct names_entry e[] = {E("r", "x", 1), E("r", "grp/sub\n", 2), E("r", "", 3)};

	(void)state;
	assert_int_equal(names_assign(e, 3, NULL), 0);
	assert_string_equal(e[0].name, "r");
	assert_string_equal(e[1].name, "r~grp_sub_");
	assert_null(strchr(e[1].name, '/'));
	assert_string_equal(e[2].name, "r~_");
	free_names(e, 3);
}

static int utf8_whole(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, len = strlen(s), k;

	while (i < len) {
		k = p[i] < 0x80 ? 1 : p[i] < 0xe0 ? 2 : p[i] < 0xf0 ? 3 : 4;
		if (i + k > len)
			return 0;
		for (size_t j = 1; j < k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
		i += k;
	}
	return 1;
}

static void test_assign_long_names_fit(void **state)
{
	size_t len;
	char *zh = repeat(0, "\xe4\xb8\xad", 120, &len); /* 360 bytes */
	struct names_entry e[3] = {
	    {.raw = zh, .raw_len = len, .id = "1", .ctime = 1},
	    {.raw = zh, .raw_len = len, .id = "22", .ctime = 2},
	    {.raw = zh, .raw_len = len, .id = "333", .ctime = 3},
	};

	(void)state;
	assert_int_equal(names_assign(e, 3, NULL), 0);
	assert_int_equal(strlen(e[0].name), 255);
	assert_memory_equal(e[0].name, zh, 255);
	/* 255 - 3 = 252 = 84 characters; 255 - 4 = 251 → 249 = 83 characters. */
	assert_int_equal(strlen(e[1].name), 252 + 3);
	assert_memory_equal(e[1].name, zh, 252);
	assert_string_equal(e[1].name + 252, "~22");
	assert_int_equal(strlen(e[2].name), 249 + 4);
	assert_string_equal(e[2].name + 249, "~333");
	for (int i = 0; i < 3; i++)
		assert_true(utf8_whole(e[i].name));
	free_names(e, 3);
	free(zh);
}

static void test_assign_long_double_suffix(void **state)
{
	char raw[256], taken[256];
	struct names_entry e[3];
	size_t i;

	(void)state;
	memset(raw, 'n', 255);
	raw[255] = '\0';
	/* The newest "nnn…" from id 7 would be "n×253~7", but an older entry has it. */
	memset(taken, 'n', 253);
	strcpy(taken + 253, "~7");
	e[0] = (struct names_entry){.raw = raw, .raw_len = 255, .id = "1", .ctime = 1};
	e[1] = (struct names_entry){.raw = taken, .raw_len = 255, .id = "2", .ctime = 2};
	e[2] = (struct names_entry){.raw = raw, .raw_len = 255, .id = "7", .ctime = 3};
	assert_int_equal(names_assign(e, 3, NULL), 0);
	assert_string_equal(e[0].name, raw);
	assert_string_equal(e[1].name, taken);
	assert_int_equal(strlen(e[2].name), 255);
	assert_string_equal(e[2].name + 251, "~7~7");
	for (i = 0; i < 251; i++)
		assert_int_equal(e[2].name[i], 'n');
	free_names(e, 3);
}

static void test_assign_huge_id(void **state)
{
	char id[400];
	struct names_entry e[2] = {E("k", "1", 1), E("k", "", 2)};

	(void)state;
	memset(id, 'i', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	e[1].id = id;
	assert_int_equal(names_assign(e, 2, NULL), 0);
	assert_string_equal(e[0].name, "k");
	/* No copy of "~<id>" fits: the id cut to 233 bytes after "~", then "~2". */
	assert_int_equal(strlen(e[1].name), 1 + 233 + 2);
	assert_int_equal(strspn(e[1].name + 1, "i"), 233);
	assert_memory_equal(e[1].name, "~i", 2);
	assert_string_equal(e[1].name + 234, "~2");
	free_names(e, 2);
}

/* Names the n entries e: a few look-ups per entry, not one per entry named before it. */
static void assign_counted(struct names_entry *e, size_t n)
{
	unsigned long before = names_probes();

	assert_int_equal(names_assign(e, n, NULL), 0);
	assert_true(names_probes() - before <= 4 * n);
}

/* Ids that differ only past the 255 bytes a name can hold: their "~<id>" suffixes are one
 * and the same, and only a counter tells the entries apart. Naming them must not walk the
 * counters already given for every entry (that was quadratic: 19 s for 8,000). */
static void test_assign_long_common_id_prefix(void **state)
{
	const size_t n = 8000;
	struct names_entry *e = calloc(n, sizeof(*e));
	char(*ids)[320] = calloc(n, sizeof(*ids));
	size_t i;

	(void)state;
	assert_non_null(e);
	assert_non_null(ids);
	for (i = 0; i < n; i++) {
		memset(ids[i], 'A', 300);
		snprintf(ids[i] + 300, sizeof(ids[i]) - 300, "%zu", i);
		e[i] = (struct names_entry){.raw = "x", .raw_len = 1, .id = ids[i], .ctime = 1};
	}
	assign_counted(e, n);
	assert_string_equal(e[0].name, "x");
	for (i = 0; i < n; i++) {
		assert_true(strlen(e[i].name) <= NAMES_MAX);
		assert_true(utf8_whole(e[i].name));
		for (size_t j = i + 1; j < n && j < i + 3; j++)
			assert_string_not_equal(e[i].name, e[j].name);
	}
	free_names(e, n);
	free(e);
	free(ids);
}

/* Thousands of ids that are one and the same once made safe ("q" and three '_'): each entry
 * tries the "~<id>" copies and counters the entries before it took without walking them. */
static void test_assign_sanitised_same_ids(void **state)
{
	/* In byte order, so the ids sort as their indexes. */
	static const char odd[] =
	    "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x1f/_\x7f";
	const size_t n = 5000, nodd = sizeof(odd) - 1;
	struct names_entry *e = calloc(n, sizeof(*e));
	char(*ids)[8] = calloc(n, sizeof(*ids));
	size_t i;

	(void)state;
	assert_non_null(e);
	assert_non_null(ids);
	for (i = 0; i < n; i++) {
		ids[i][0] = 'q';
		ids[i][1] = odd[i / nodd / nodd % nodd];
		ids[i][2] = odd[i / nodd % nodd];
		ids[i][3] = odd[i % nodd];
		e[i] = (struct names_entry){.raw = "x", .raw_len = 1, .id = ids[i], .ctime = 1};
	}
	assign_counted(e, n);
	/* Entry 0 keeps the name; then "~q___" 1 to 51 times, then counted. */
	assert_string_equal(e[0].name, "x");
	assert_string_equal(e[1].name, "x~q___");
	assert_string_equal(e[2].name, "x~q___~q___");
	assert_string_equal(e[52].name, "x~q___~2");
	assert_string_equal(e[53].name, "x~q___~3");
	free_names(e, n);
	free(e);
	free(ids);
}

static void test_assign_stable(void **state)
{
	struct names_entry before[] = {E("s", "5", 10), E("s", "6", 20), E("t", "7", 30)};
	/* Same entries plus newer ones, one of which reuses a suffixed name, in new order. */
	struct names_entry after[] = {E("s~6", "9", 50), E("t", "7", 30), E("s", "8", 40),
				      E("s", "6", 20), E("s", "5", 10)};

	(void)state;
	assert_int_equal(names_assign(before, 3, NULL), 0);
	assert_int_equal(names_assign(after, 5, NULL), 0);
	assert_string_equal(after[4].name, before[0].name);
	assert_string_equal(after[3].name, before[1].name);
	assert_string_equal(after[1].name, before[2].name);
	assert_string_equal(after[2].name, "s~8");
	assert_string_equal(after[0].name, "s~6~9");
	free_names(before, 3);
	free_names(after, 5);
}

static void test_assign_many(void **state)
{
	const size_t n = 100000;
	struct names_entry *e = calloc(n, sizeof(*e));
	char(*ids)[16] = calloc(n, sizeof(*ids));
	size_t i;

	(void)state;
	assert_non_null(e);
	assert_non_null(ids);
	for (i = 0; i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%zu", i);
		e[i].raw = (i % 2) ? "same" : ids[i];
		e[i].raw_len = strlen(e[i].raw);
		e[i].id = ids[i];
		e[i].ctime = (int64_t)(n - i);
	}
	assert_int_equal(names_assign(e, n, NULL), 0);
	/* Newest odd entry is the oldest: the largest odd index. */
	assert_string_equal(e[n - 1].name, "same");
	assert_string_equal(e[1].name, "same~1");
	assert_string_equal(e[2].name, "2");
	free_names(e, n);
	free(e);
	free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sanitize_specials),
	    cmocka_unit_test(test_sanitize_cut_utf8),
	    cmocka_unit_test(test_sanitize_cut_invalid_utf8),
	    cmocka_unit_test(test_id_cmp),
	    cmocka_unit_test(test_assign_unique),
	    cmocka_unit_test(test_assign_oldest_keeps),
	    cmocka_unit_test(test_assign_tie_numeric_id),
	    cmocka_unit_test(test_assign_tie_bytewise_id),
	    cmocka_unit_test(test_assign_no_ctime_is_oldest),
	    cmocka_unit_test(test_assign_reserved),
	    cmocka_unit_test(test_assign_double_suffix),
	    cmocka_unit_test(test_assign_sanitised_collisions),
	    cmocka_unit_test(test_assign_id_sanitised),
	    cmocka_unit_test(test_assign_long_names_fit),
	    cmocka_unit_test(test_assign_long_double_suffix),
	    cmocka_unit_test(test_assign_huge_id),
	    cmocka_unit_test(test_assign_long_common_id_prefix),
	    cmocka_unit_test(test_assign_sanitised_same_ids),
	    cmocka_unit_test(test_assign_stable),
	    cmocka_unit_test(test_assign_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
