/* names: safe, unique directory entry names from display names (docs/design.md §1). */
#ifndef CODESRCFS_NAMES_H
#define CODESRCFS_NAMES_H

#include <stddef.h>
#include <stdint.h>

#define NAMES_MAX 255

struct names_entry {
	const char *raw; /* display name as the cloud gave it (may hold NUL bytes) */
	size_t raw_len;
	const char *id;
	int64_t ctime; /* creation time; 0 = none, which counts as older than any */
	char *name;    /* out: the unique entry name, malloc'd */
};

/* Make raw safe: '/', NUL and controls → '_'; ".", "..", "" → "_.", "_..", "_";
 * cut to 255 bytes at a UTF-8 boundary. out holds NAMES_MAX + 1 bytes. */
void names_sanitize(const char *raw, size_t len, char out[NAMES_MAX + 1]);
/* Compare ids: numerically when both are all digits, else byte by byte. */
int names_id_cmp(const char *a, const char *b);
/* Compare two entries by age as names_assign orders them (creation time, 0 first, then
 * id): < 0 when a is the older. */
int names_age_cmp(int64_t ctime_a, const char *id_a, int64_t ctime_b, const char *id_b);
/* Give every entry a unique name: the oldest (ctime, then id) keeps the sanitised name,
 * the others get "~<id>" (repeated until unique). Names in reserved (NULL-terminated,
 * may be NULL) count as taken. 0 or -ENOMEM. */
int names_assign(struct names_entry *e, size_t n, const char *const *reserved);

/* Names this thread's names_assign calls looked up so far: a measure of their work. */
unsigned long names_probes(void);

#endif
