/* sign: Alibaba ACS3-HMAC-SHA256 and Volcengine HMAC-SHA256 (V4) on OpenSSL.
 *
 * Both build the same canonical request:
 *   METHOD \n PATH \n QUERY \n name:value\n… \n signed;names \n hex(sha256(body))
 * and differ in which headers are signed and in how the key and the string to sign are
 * derived. The path is signed as the caller gave it in req->path, which http.h requires
 * to be percent-encoded already (segments RFC 3986-encoded, '/' kept); signing it again
 * here would double-encode what the transport sends. The query is http_req_query_string,
 * the very string the transport sends. Nothing here logs: every input may be secret. */
#define _GNU_SOURCE /* strcasecmp, open_memstream */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "secret.h"
#include "sign.h"

#define SIGN_SHA256_LEN 32
#define SIGN_MAX_HDRS	(HTTP_MAX_FIELDS + 1)

/* A header as signed: name compared case-insensitively and printed lower-case, value
 * trimmed of blanks at both ends. */
struct sign_hdr {
	const char *name;
	const char *value;
	size_t vlen;
};

/* Picks the request headers a scheme signs, by lower-case-insensitive name. */
typedef int (*sign_want_fn)(const char *name);

static void sign_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

void sign_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SIGN_SHA256_LEN];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data ? data : "", data ? len : 0, md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != SIGN_SHA256_LEN) {
		/* Cannot happen with a working libcrypto; an empty string fails any check. */
		out[0] = '\0';
		return;
	}
	sign_hex(md, mdlen, out);
}

static int sign_hmac(const void *key, size_t klen, const char *msg,
		     unsigned char out[SIGN_SHA256_LEN])
{
	unsigned int olen = 0;

	if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out,
		  &olen) ||
	    olen != SIGN_SHA256_LEN)
		return -EIO;
	return 0;
}

static int sign_hdr_cmp(const void *a, const void *b)
{
	return strcasecmp(((const struct sign_hdr *)a)->name, ((const struct sign_hdr *)b)->name);
}

static void sign_hdr_set(struct sign_hdr *h, const char *name, const char *value)
{
	const char *end;

	while (*value == ' ' || *value == '\t')
		value++;
	end = value + strlen(value);
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	h->name = name;
	h->value = value;
	h->vlen = (size_t)(end - value);
}

/* host (from req->host, never a header) and the headers want() picks, sorted. */
static size_t sign_collect(const struct http_request *req, sign_want_fn want, struct sign_hdr *h)
{
	size_t i, n = 0;

	sign_hdr_set(&h[n++], "host", req->host);
	for (i = 0; i < req->nheaders; i++) {
		const struct http_field *f = &req->headers[i];

		if (strcasecmp(f->name, "host") && want(f->name))
			sign_hdr_set(&h[n++], f->name, f->value);
	}
	qsort(h, n, sizeof(*h), sign_hdr_cmp);
	return n;
}

static void sign_put_lower(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc(tolower((unsigned char)*s), f);
}

/* "a;b;c" of the signed header names, or NULL. */
static char *sign_names(const struct sign_hdr *h, size_t n)
{
	char *s = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		return NULL;
	for (i = 0; i < n; i++) {
		if (i)
			fputc(';', f);
		sign_put_lower(f, h[i].name);
	}
	if (fclose(f)) {
		free(s);
		return NULL;
	}
	return s;
}

/* The canonical request, or NULL. */
static char *sign_canonical(const struct http_request *req, const struct sign_hdr *h, size_t n,
			    const char *names, const char *body_hash)
{
	char *qs = http_req_query_string(req), *s = NULL;
	size_t len = 0, i;
	FILE *f;

	if (!qs)
		return NULL;
	f = open_memstream(&s, &len);
	if (!f)
		goto out;
	fprintf(f, "%s\n%s\n%s\n", req->method, req->path ? req->path : "/", qs);
	for (i = 0; i < n; i++) {
		sign_put_lower(f, h[i].name);
		fprintf(f, ":%.*s\n", (int)h[i].vlen, h[i].value);
	}
	fprintf(f, "\n%s\n%s", names, body_hash);
	if (fclose(f)) {
		free(s);
		s = NULL;
	}
out:
	free(qs);
	return s;
}

/* Canonical request hash and signed names for the headers want() picks. */
static int sign_digest(const struct http_request *req, sign_want_fn want, const char *body_hash,
		       char hash[65], char **names)
{
	struct sign_hdr h[SIGN_MAX_HDRS];
	size_t n = sign_collect(req, want, h);
	char *creq;

	*names = sign_names(h, n);
	if (!*names)
		return -ENOMEM;
	creq = sign_canonical(req, h, n, *names, body_hash);
	if (!creq) {
		free(*names);
		*names = NULL;
		return -ENOMEM;
	}
	sign_sha256_hex(creq, strlen(creq), hash);
	free(creq);
	return 0;
}

static int sign_args_ok(const struct http_request *req, const struct sign_creds *c)
{
	return req && req->method && req->host && c && c->key_id && *c->key_id && c->secret &&
	       *c->secret;
}

static int sign_utc(char *out, size_t len, const char *fmt)
{
	time_t now = time(NULL);
	struct tm tm;

	if (!gmtime_r(&now, &tm) || !strftime(out, len, fmt, &tm))
		return -EIO;
	return 0;
}

/* ---- Alibaba ACS3-HMAC-SHA256 ---- */

static int sign_acs3_want(const char *name)
{
	return !strncasecmp(name, "x-acs-", 6) || !strcasecmp(name, "content-type");
}

static int sign_nonce(char out[33])
{
	unsigned char r[16];

	if (RAND_bytes(r, sizeof(r)) != 1)
		return -EIO;
	sign_hex(r, sizeof(r), out);
	return 0;
}

/* The x-acs-* headers that carry this attempt's date, nonce, body hash and token. */
static int sign_acs3_headers(struct http_request *req, const struct sign_creds *c, const char *date,
			     const char *nonce, const char *body_hash)
{
	int rc;

	rc = http_req_header(req, "x-acs-date", date);
	if (!rc)
		rc = http_req_header(req, "x-acs-signature-nonce", nonce);
	if (!rc)
		rc = http_req_header(req, "x-acs-content-sha256", body_hash);
	if (!rc && c->token && *c->token)
		rc = http_req_header(req, "x-acs-security-token", c->token);
	return rc;
}

static int sign_acs3_auth(struct http_request *req, const struct sign_creds *c, const char *names,
			  const char *creq_hash)
{
	unsigned char mac[SIGN_SHA256_LEN];
	char sts[128], sig[65], *auth = NULL;
	int rc;

	snprintf(sts, sizeof(sts), "ACS3-HMAC-SHA256\n%s", creq_hash);
	rc = sign_hmac(c->secret, strlen(c->secret), sts, mac);
	if (rc)
		return rc;
	sign_hex(mac, sizeof(mac), sig);
	if (asprintf(&auth, "ACS3-HMAC-SHA256 Credential=%s,SignedHeaders=%s,Signature=%s",
		     c->key_id, names, sig) < 0)
		return -ENOMEM;
	rc = http_req_header(req, "Authorization", auth);
	free(auth);
	return rc;
}

int sign_acs3(struct http_request *req, const struct sign_creds *c, const char *date,
	      const char *nonce)
{
	char now[32], rnd[33], body_hash[65], creq_hash[65], *names = NULL;
	int rc;

	if (!sign_args_ok(req, c) || !http_req_get_header(req, "x-acs-action") ||
	    !http_req_get_header(req, "x-acs-version"))
		return -EINVAL;
	if (!date) {
		rc = sign_utc(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ");
		if (rc)
			return rc;
		date = now;
	}
	if (!nonce) {
		rc = sign_nonce(rnd);
		if (rc)
			return rc;
		nonce = rnd;
	}
	sign_sha256_hex(req->body, req->body_len, body_hash);
	rc = sign_acs3_headers(req, c, date, nonce, body_hash);
	if (rc)
		return rc;
	rc = sign_digest(req, sign_acs3_want, body_hash, creq_hash, &names);
	if (!rc)
		rc = sign_acs3_auth(req, c, names, creq_hash);
	free(names);
	return rc;
}

/* ---- Volcengine HMAC-SHA256 (V4) ---- */

static int sign_volc_want(const char *name)
{
	return !strncasecmp(name, "x-", 2) || !strcasecmp(name, "content-type");
}

/* kSigning = HMAC(HMAC(HMAC(HMAC(secret, date), region), service), "request"). */
static int sign_volc_key(const char *secret, const char *day, const char *region,
			 const char *service, unsigned char key[SIGN_SHA256_LEN])
{
	unsigned char a[SIGN_SHA256_LEN], b[SIGN_SHA256_LEN];
	int rc;

	/* Two buffers: HMAC's key and output never alias. */
	rc = sign_hmac(secret, strlen(secret), day, a);
	if (!rc)
		rc = sign_hmac(a, sizeof(a), region, b);
	if (!rc)
		rc = sign_hmac(b, sizeof(b), service, a);
	if (!rc)
		rc = sign_hmac(a, sizeof(a), "request", key);
	secret_wipe(a, sizeof(a));
	secret_wipe(b, sizeof(b));
	return rc;
}

/* "20240101T000000Z": the only shape the scope can be cut from. */
static int sign_xdate_ok(const char *x)
{
	int i;

	for (i = 0; i < 16; i++) {
		if (i == 8 ? x[i] != 'T' : i == 15 ? x[i] != 'Z' : !isdigit((unsigned char)x[i]))
			return 0;
	}
	return x[16] == '\0';
}

static int sign_volc_auth(struct http_request *req, const struct sign_creds *c, const char *xdate,
			  const char *scope, const char *names, const char *creq_hash,
			  const unsigned char key[SIGN_SHA256_LEN])
{
	unsigned char mac[SIGN_SHA256_LEN];
	char *sts = NULL, *auth = NULL, sig[65];
	int rc;

	if (asprintf(&sts, "HMAC-SHA256\n%s\n%s\n%s", xdate, scope, creq_hash) < 0)
		return -ENOMEM;
	rc = sign_hmac(key, SIGN_SHA256_LEN, sts, mac);
	free(sts);
	if (rc)
		return rc;
	sign_hex(mac, sizeof(mac), sig);
	if (asprintf(&auth, "HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		     c->key_id, scope, names, sig) < 0)
		return -ENOMEM;
	rc = http_req_header(req, "Authorization", auth);
	free(auth);
	return rc;
}

static int sign_volc_headers(struct http_request *req, const struct sign_creds *c,
			     const char *xdate, const char *body_hash)
{
	int rc;

	rc = http_req_header(req, "X-Date", xdate);
	if (!rc)
		rc = http_req_header(req, "X-Content-Sha256", body_hash);
	if (!rc && c->token && *c->token)
		rc = http_req_header(req, "X-Security-Token", c->token);
	return rc;
}

int sign_volc(struct http_request *req, const struct sign_creds *c, const char *region,
	      const char *service, const char *xdate)
{
	unsigned char key[SIGN_SHA256_LEN];
	char now[32], scope[256], day[9], body_hash[65], creq_hash[65], *names = NULL;
	int rc, n;

	if (!sign_args_ok(req, c) || !region || !*region || !service || !*service)
		return -EINVAL;
	if (!xdate) {
		rc = sign_utc(now, sizeof(now), "%Y%m%dT%H%M%SZ");
		if (rc)
			return rc;
		xdate = now;
	}
	if (!sign_xdate_ok(xdate))
		return -EINVAL;
	memcpy(day, xdate, 8);
	day[8] = '\0';
	n = snprintf(scope, sizeof(scope), "%s/%s/%s/request", day, region, service);
	if (n < 0 || (size_t)n >= sizeof(scope))
		return -EINVAL;
	sign_sha256_hex(req->body, req->body_len, body_hash);
	rc = sign_volc_headers(req, c, xdate, body_hash);
	if (!rc)
		rc = sign_digest(req, sign_volc_want, body_hash, creq_hash, &names);
	if (!rc)
		rc = sign_volc_key(c->secret, day, region, service, key);
	if (!rc)
		rc = sign_volc_auth(req, c, xdate, scope, names, creq_hash, key);
	secret_wipe(key, sizeof(key));
	free(names);
	return rc;
}
