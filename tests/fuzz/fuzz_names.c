/* libFuzzer target: display names → directory entry names. Whatever the clouds send, every
 * entry must be a valid, unique path component (docs/design.md §1), so this checks the result
 * rather than just running the code.
 *
 * Input: lines separated by '\n', each "raw name[\tid]"; a line without a tab gets its
 * index as id. Names may hold any byte (NUL included); ctimes repeat so ties are common. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

#define MAX_ENTRIES 256

static const char *const reserved[] = {"pai", "volc", "codeup", NULL};

static void check_name(const char *s)
{
	size_t len = strlen(s);

	/* strlen stops at the first NUL, so "no NUL inside" is "no room for one": the name
	 * must be a C string and nothing the caller meant to be part of it was cut. */
	if (len == 0 || len > NAMES_MAX || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
		abort();
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct names_entry e[MAX_ENTRIES];
	char *ids[MAX_ENTRIES], *sorted[MAX_ENTRIES + 3];
	char out[NAMES_MAX + 1];
	const char *p = (const char *)data, *end = p + size;
	size_t n = 0, i, j;

	while (n < MAX_ENTRIES && p <= end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl ? nl : end;
		const char *tab = memchr(p, '\t', (size_t)(line_end - p));
		char num[24];

		e[n].raw = p;
		e[n].raw_len = (size_t)((tab ? tab : line_end) - p);
		if (tab) {
			ids[n] = strndup(tab + 1, (size_t)(line_end - tab - 1));
		} else {
			snprintf(num, sizeof(num), "%zu", n);
			ids[n] = strdup(num);
		}
		if (!ids[n])
			abort();
		e[n].id = ids[n];
		e[n].ctime = (int64_t)(n % 3);
		e[n].name = NULL;
		/* The sanitiser alone must already give a valid component. */
		memset(out, 'x', sizeof(out));
		names_sanitize(e[n].raw, e[n].raw_len, out);
		if (!memchr(out, '\0', sizeof(out)))
			abort();
		check_name(out);
		n++;
		if (!nl)
			break;
		p = nl + 1;
	}

	if (names_assign(e, n, reserved) == 0) {
		for (i = 0; i < n; i++) {
			check_name(e[i].name);
			sorted[i] = e[i].name;
		}
		/* Unique among themselves and distinct from the reserved names. */
		for (j = 0; reserved[j]; j++)
			sorted[n + j] = (char *)reserved[j];
		qsort(sorted, n + j, sizeof(*sorted), cmp_str);
		for (i = 1; i < n + j; i++)
			if (!strcmp(sorted[i - 1], sorted[i]))
				abort();
	}
	for (i = 0; i < n; i++) {
		free(e[i].name);
		free(ids[i]);
	}
	return 0;
}
