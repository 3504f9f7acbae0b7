/* sign: request signatures of the clouds (OpenSSL); adds headers, sends nothing. */
#ifndef CODESRCFS_SIGN_H
#define CODESRCFS_SIGN_H

#include "http.h"

struct sign_creds {
	const char *key_id;
	const char *secret;
	const char *token; /* STS token or NULL */
};

/* Lower-case hex SHA-256 of data into out (65 bytes with the NUL). */
void sign_sha256_hex(const void *data, size_t len, char out[65]);
/* Alibaba ACS3-HMAC-SHA256: adds x-acs-date, x-acs-signature-nonce, x-acs-content-sha256,
 * x-acs-security-token (STS) and Authorization. x-acs-action/-version must already be set.
 * date ("2024-01-01T00:00:00Z") and nonce may be NULL for now and random. 0 or -errno. */
int sign_acs3(struct http_request *req, const struct sign_creds *c, const char *date,
	      const char *nonce);
/* Volcengine HMAC-SHA256 (V4): adds X-Date, X-Content-Sha256, X-Security-Token (STS) and
 * Authorization; signs host, x-date, x-content-sha256, content-type when set, and other
 * x-* headers. xdate ("20240101T000000Z") may be NULL for now. 0 or -errno. */
int sign_volc(struct http_request *req, const struct sign_creds *c, const char *region,
	      const char *service, const char *xdate);

#endif
