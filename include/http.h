/* http: requests over libcurl with reused connections, timeouts, retries and backoff.
 * Knows nothing of clouds or JSON: signing and error classification are callbacks. */
#ifndef CODESRCFS_HTTP_H
#define CODESRCFS_HTTP_H

#include <stddef.h>

#define HTTP_MAX_FIELDS 32

struct http_field {
	char *name;
	char *value;
};

struct http_response {
	long status; /* 0 when no answer arrived */
	char *body;  /* NUL-terminated, len bytes */
	size_t len;
	struct http_field headers[HTTP_MAX_FIELDS]; /* names lower-cased; extras dropped */
	size_t nheaders;
};

enum http_verdict { HTTP_DONE = 0, HTTP_RETRY = 1 };

struct http_request {
	char *method;
	char *base;				  /* "https://host[:port]" */
	char *host;				  /* "host[:port]", as sent in Host and as signed */
	char *path;				  /* percent-encoded, begins with '/' */
	struct http_field query[HTTP_MAX_FIELDS]; /* raw values; encoded when sent */
	size_t nquery;
	struct http_field headers[HTTP_MAX_FIELDS];
	size_t nheaders;
	char *body;
	size_t body_len;
	/* Called before every attempt, so each retry carries a fresh date and nonce. */
	int (*sign)(struct http_request *req, void *ctx);
	void *sign_ctx;
	/* Decides whether an answer is worth retrying (throttling hidden in a 400 body);
	 * NULL means 429 and 5xx are retried. */
	enum http_verdict (*classify)(const struct http_response *resp, void *ctx);
	void *classify_ctx;
	const char *label;     /* names the call in logs, e.g. "pai ListCodeSources"; no secrets */
	const char *id_header; /* response header carrying the request id, for logs, or NULL */
};

struct http_opts {
	long timeout_s;	 /* bound on one attempt, connect included */
	int retries;	 /* further attempts after a retryable failure */
	size_t max_body; /* larger answers fail with -EFBIG */
	const char *user_agent;
};

struct http;

/* Fill req for METHOD base_url+path; base_url is "scheme://host[:port]". 0 or -errno. */
int http_req_init(struct http_request *req, const char *method, const char *base_url,
		  const char *path);
/* Add a query parameter (raw value, encoded when sent). 0 or -errno. */
int http_req_query(struct http_request *req, const char *name, const char *value);
/* Set a header, replacing one of the same name (case-insensitive). 0 or -errno. */
int http_req_header(struct http_request *req, const char *name, const char *value);
/* Value of a request header, or NULL. */
const char *http_req_get_header(const struct http_request *req, const char *name);
/* Copy the body. 0 or -errno. */
int http_req_body(struct http_request *req, const char *body, size_t len);
/* The query as sent and signed: RFC 3986 encoded, sorted by name, joined by '&'. */
char *http_req_query_string(const struct http_request *req);
/* Release everything req owns. */
void http_req_free(struct http_request *req);

/* Value of a response header by lower-case name, or NULL. */
const char *http_resp_header(const struct http_response *resp, const char *name);
/* Release everything resp owns and zero it. */
void http_resp_free(struct http_response *resp);

/* RFC 3986 percent-encoding (unreserved kept, %XX upper-case); caller frees. */
char *http_escape(const char *s, size_t len);

/* A client: connection pool, shared DNS/TLS caches. NULL on failure. */
struct http *http_new(const struct http_opts *opts);
/* Send req, retrying 429/5xx/network failures with backoff and jitter (Retry-After
 * honoured). 0 when an answer arrived (any status, in resp); -ETIMEDOUT, -EIO, -EFBIG
 * otherwise. Thread-safe. */
int http_perform(struct http *h, struct http_request *req, struct http_response *resp);
/* Close connections and free h. */
void http_free(struct http *h);

#endif
