/* secret: the one wipe of credentials, on OpenSSL's cleanse (a plain memset before free is
 * a dead store the compiler may remove). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "secret.h"

void secret_wipe(void *p, size_t n)
{
	if (p && n)
		OPENSSL_cleanse(p, n);
}

void secret_free(char *s)
{
	if (s)
		secret_wipe(s, strlen(s));
	free(s);
}
