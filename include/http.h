/* http: requests over libcurl with reused connections, timeouts, retries and backoff.
 * Knows nothing of clouds or JSON: signing and error classification are callbacks.
 * One engine thread drives every transfer of a client (libcurl's multi interface), so
 * connections are kept and reused across threads, and HTTP/2 multiplexes on one. */
#ifndef CODESRCFS_HTTP_H
#define CODESRCFS_HTTP_H

#include <stddef.h>

#define HTTP_MAX_FIELDS	     32	 /* query parameters and request headers */
#define HTTP_MAX_RESP_FIELDS 128 /* response header fields; an answer with more fails */

struct http_field {
	char *name;
	char *value;
};

struct http_response {
	long status; /* 0 when no answer arrived */
	char *body;  /* NUL-terminated, len bytes */
	size_t len;
	struct http_field headers[HTTP_MAX_RESP_FIELDS]; /* names lower-cased */
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
	/* Polled from the calling thread at least every 50 ms while the request waits on
	 * the network or on a backoff, and from the engine's before it sends a request held
	 * for a slot; non-zero aborts it and http_perform returns -EINTR. NULL: the thread's
	 * default (http_thread_cancel), if any. */
	int (*cancelled)(void *ctx);
	void *cancel_ctx;
};

struct http_opts {
	long timeout_s;	 /* bound on one attempt, connect included */
	int retries;	 /* further attempts after a retryable failure */
	size_t max_body; /* larger answers fail with -EFBIG */
	const char *user_agent;
	int max_host_conns; /* connections open at once to one host; 0: 8 */
	const char *cafile; /* PEM bundle of the CAs to trust for https://; NULL: the system's */
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

/* A client: connection cache, DNS and TLS session caches. NULL on failure. */
struct http *http_new(const struct http_opts *opts);
/* Send req, retrying 429/5xx/network failures with backoff and jitter (Retry-After
 * honoured); a failure no retry can fix (certificate, unresolved name) is not retried.
 * 0 when an answer arrived (any status, in resp); otherwise -ETIMEDOUT, -EIO, -EFBIG,
 * -EINTR (req's cancel callback said so) or -ECANCELED (http_shutdown), with the cause
 * in http_last_error(). Thread-safe; never from the engine's own callbacks. */
int http_perform(struct http *h, struct http_request *req, struct http_response *resp);
/* Why this thread's last http_perform got no answer: "host[:port]: reason (libcurl's
 * words)", the reason being e.g. "certificate not trusted", "name not resolved",
 * "connection refused", "timed out"; "" when it got one. Valid until its next call. */
const char *http_last_error(void);
/* The cancel callback of this thread's requests that have none of their own (NULL: none).
 * A cancel callback is asked from the engine's thread too (before a held request is sent):
 * it reads its ctx, never the caller's thread-local state. */
void http_thread_cancel(int (*cancelled)(void *ctx), void *ctx);
/* A bound on the requests on the wire at once, shared by the threads that give it to
 * http_thread_slots; all of them use one client, whose engine hands a freed slot to the
 * next request it holds at once, without waking a thread. */
struct http_slots {
	int free; /* the engine's, under its client's lock */
};
/* n slots, none taken. */
void http_slots_init(struct http_slots *s, int n);
/* This thread's attempts each hold one of slots while on the wire (NULL: no limit), so that
 * threads sharing slots keep that many requests in flight while others parse answers. */
void http_thread_slots(struct http_slots *slots);
/* Abort every transfer in flight and every later one: their http_perform returns
 * -ECANCELED at once. Thread-safe; not async-signal-safe (call it from a thread). */
void http_shutdown(struct http *h);
/* Stop the engine thread, keeping the connections, until the next request: call with
 * nothing in flight before fork() (daemonising), which a thread does not survive. */
void http_pause(struct http *h);
/* Close connections and free h; nothing may be in flight or start on h any more. */
void http_free(struct http *h);

#endif
