/* secret: credentials leave memory wiped, never merely freed. */
#ifndef CODESRCFS_SECRET_H
#define CODESRCFS_SECRET_H

#include <stddef.h>

/* Overwrite n bytes at p with zeros in a way the compiler may not drop; NULL is fine. */
void secret_wipe(void *p, size_t n);
/* Wipe the NUL-terminated string s, then free it; NULL is fine. */
void secret_free(char *s);

#endif
