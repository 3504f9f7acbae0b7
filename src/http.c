/* http: the transport half of http.h — pooled libcurl easy handles, retries, backoff.
 *
 * Connections stay alive inside each pooled easy handle's own connection cache; the
 * share handle carries only DNS and TLS sessions, because libcurl does not support
 * sharing the connection cache between concurrent threads (CURLSHOPT_SHARE(3)). */
#define _GNU_SOURCE /* asprintf, explicit_bzero */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "clock.h"
#include "http.h"
#include "log.h"

#define HTTP_POOL_MAX	      64
#define HTTP_BACKOFF_BASE_MS  250
#define HTTP_BACKOFF_CAP_MS   5000
#define HTTP_DEFAULT_TIMEOUT  15
#define HTTP_DEFAULT_MAX_BODY (64UL << 20)
#define HTTP_DEFAULT_UA	      "codesrcfs"

struct http {
	long timeout_s;
	int retries;
	size_t max_body;
	char *user_agent;
	CURLSH *share;
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[HTTP_POOL_MAX];
	size_t npool;
};

/* What one transfer collects. */
struct http_xfer {
	struct http_response *resp;
	size_t max_body;
	size_t cap;
	int too_big;
	int nomem;
};

/* How one attempt ended. */
struct http_outcome {
	int rc;	       /* 0: an answer is in the response */
	int transient; /* a network failure worth another attempt */
	CURLcode code;
	long ms;
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_init_rc; /* written once, under http_once */

static void http_global_init(void)
{
	http_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void http_share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *ud)
{
	struct http *h = ud;

	(void)c;
	(void)access;
	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&h->share_lock[data]);
}

static void http_share_unlock(CURL *c, curl_lock_data data, void *ud)
{
	struct http *h = ud;

	(void)c;
	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&h->share_lock[data]);
}

static CURLSH *http_share_new(struct http *h)
{
	CURLSH *sh = curl_share_init();
	CURLSHcode e = CURLSHE_OK;

	if (!sh)
		return NULL;
	if (!e)
		e = curl_share_setopt(sh, CURLSHOPT_LOCKFUNC, http_share_lock);
	if (!e)
		e = curl_share_setopt(sh, CURLSHOPT_UNLOCKFUNC, http_share_unlock);
	if (!e)
		e = curl_share_setopt(sh, CURLSHOPT_USERDATA, h);
	if (!e)
		e = curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	if (!e)
		e = curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	if (e) {
		curl_share_cleanup(sh);
		return NULL;
	}
	return sh;
}

struct http *http_new(const struct http_opts *opts)
{
	struct http *h;
	int i;

	pthread_once(&http_once, http_global_init);
	if (http_init_rc != CURLE_OK || !opts)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	/* A zero timeout would mean "wait for ever" to libcurl: never allow it. */
	h->timeout_s = opts->timeout_s > 0 ? opts->timeout_s : HTTP_DEFAULT_TIMEOUT;
	h->retries = opts->retries > 0 ? opts->retries : 0;
	h->max_body = opts->max_body ? opts->max_body : HTTP_DEFAULT_MAX_BODY;
	if (h->max_body > SIZE_MAX / 2)
		h->max_body = SIZE_MAX / 2; /* so len + n + 1 cannot wrap */
	h->user_agent = strdup(opts->user_agent ? opts->user_agent : HTTP_DEFAULT_UA);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_lock[i], NULL);
	pthread_mutex_init(&h->pool_lock, NULL);
	h->share = http_share_new(h);
	if (!h->user_agent || !h->share) {
		http_free(h);
		return NULL;
	}
	return h;
}

void http_free(struct http *h)
{
	size_t i;
	int j;

	if (!h)
		return;
	/* Easy handles first: they must let go of the share before it is cleaned up. */
	for (i = 0; i < h->npool; i++)
		curl_easy_cleanup(h->pool[i]);
	if (h->share)
		curl_share_cleanup(h->share);
	for (j = 0; j < CURL_LOCK_DATA_LAST; j++)
		pthread_mutex_destroy(&h->share_lock[j]);
	pthread_mutex_destroy(&h->pool_lock);
	free(h->user_agent);
	free(h);
}

static CURL *http_pool_get(struct http *h)
{
	CURL *c = NULL;

	pthread_mutex_lock(&h->pool_lock);
	if (h->npool)
		c = h->pool[--h->npool];
	pthread_mutex_unlock(&h->pool_lock);
	return c ? c : curl_easy_init();
}

static void http_pool_put(struct http *h, CURL *c)
{
	/* Reset drops pointers to this request's headers and body but keeps the
	 * handle's live connections, which is the point of pooling it. */
	curl_easy_reset(c);
	pthread_mutex_lock(&h->pool_lock);
	if (h->npool < HTTP_POOL_MAX) {
		h->pool[h->npool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&h->pool_lock);
	if (c)
		curl_easy_cleanup(c);
}

static void http_sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static size_t http_on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct http_xfer *x = ud;
	struct http_response *r = x->resp;
	size_t n = size * nmemb, cap;
	char *p;

	/* Checked on the decoded bytes, so a compressed bomb is stopped as well. */
	if (n > x->max_body - r->len) {
		x->too_big = 1;
		return 0;
	}
	if (r->len + n + 1 > x->cap) {
		cap = x->cap ? x->cap * 2 : 4096;
		if (cap < r->len + n + 1)
			cap = r->len + n + 1;
		if (cap > x->max_body + 1)
			cap = x->max_body + 1;
		p = realloc(r->body, cap);
		if (!p) {
			x->nomem = 1;
			return 0;
		}
		r->body = p;
		x->cap = cap;
	}
	memcpy(r->body + r->len, ptr, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

static void http_drop_headers(struct http_response *r)
{
	size_t i;

	for (i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
		r->headers[i].name = r->headers[i].value = NULL;
	}
	r->nheaders = 0;
}

static int http_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t http_on_header(char *buf, size_t size, size_t nmemb, void *ud)
{
	struct http_xfer *x = ud;
	struct http_response *r = x->resp;
	size_t total = size * nmemb, len = total, nlen, i;
	const char *colon, *v;
	struct http_field *f;

	while (len && http_is_space(buf[len - 1]))
		len--;
	/* A status line starts a new response (1xx); only the last one's headers count. */
	if (len >= 5 && !memcmp(buf, "HTTP/", 5)) {
		http_drop_headers(r);
		return total;
	}
	colon = memchr(buf, ':', len);
	if (!colon || colon == buf || http_is_space(buf[0]) || r->nheaders >= HTTP_MAX_FIELDS)
		return total;
	nlen = (size_t)(colon - buf);
	while (nlen && http_is_space(buf[nlen - 1]))
		nlen--;
	for (v = colon + 1; v < buf + len && http_is_space(*v); v++)
		;
	f = &r->headers[r->nheaders];
	f->name = strndup(buf, nlen);
	f->value = strndup(v, (size_t)(buf + len - v));
	if (!f->name || !f->value) {
		free(f->name);
		free(f->value);
		f->name = f->value = NULL;
		x->nomem = 1;
		return 0;
	}
	for (i = 0; i < nlen; i++)
		if (f->name[i] >= 'A' && f->name[i] <= 'Z')
			f->name[i] = (char)(f->name[i] - 'A' + 'a');
	r->nheaders++;
	return total;
}

/* base + path [+ "?" + query], or NULL. */
static char *http_url(const struct http_request *req)
{
	char *qs = NULL, *url = NULL;
	int n;

	if (req->nquery) {
		qs = http_req_query_string(req);
		if (!qs)
			return NULL;
	}
	n = asprintf(&url, "%s%s%s%s", req->base, req->path ? req->path : "/", qs && *qs ? "?" : "",
		     qs ? qs : "");
	free(qs);
	return n < 0 ? NULL : url;
}

/* Header lines carry signatures and tokens: wipe them, as http_req.c does. */
static void http_wipe_free(char *s)
{
	explicit_bzero(s, strlen(s));
	free(s);
}

static void http_slist_free(struct curl_slist *list)
{
	struct curl_slist *l;

	for (l = list; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

static int http_headers(const struct http_request *req, struct curl_slist **out)
{
	struct curl_slist *list = NULL, *next;
	char *line;
	size_t i;
	int n;

	for (i = 0; i < req->nheaders; i++) {
		const struct http_field *f = &req->headers[i];

		/* "Name;" is libcurl's way to send a header with an empty value. */
		if (f->value && *f->value)
			n = asprintf(&line, "%s: %s", f->name, f->value);
		else
			n = asprintf(&line, "%s;", f->name);
		if (n < 0)
			goto nomem;
		next = curl_slist_append(list, line);
		http_wipe_free(line);
		if (!next)
			goto nomem;
		list = next;
	}
	/* Send only what was signed: no form Content-Type libcurl would make up. */
	if (!http_req_get_header(req, "Content-Type")) {
		next = curl_slist_append(list, "Content-Type:");
		if (!next)
			goto nomem;
		list = next;
	}
	/* No "Expect: 100-continue": it costs a round trip and some servers stall on it. */
	next = curl_slist_append(list, "Expect:");
	if (!next)
		goto nomem;
	*out = next;
	return 0;
nomem:
	http_slist_free(list);
	return -ENOMEM;
}

static const char *http_label(const struct http_request *req)
{
	return req->label ? req->label : "http";
}

static const char *http_method(const struct http_request *req)
{
	return req->method ? req->method : "GET";
}

#define HTTP_SET(c, e, opt, val)                                                                   \
	do {                                                                                       \
		if ((e) == CURLE_OK)                                                               \
			(e) = curl_easy_setopt((c), (opt), (val));                                 \
	} while (0)

static CURLcode http_set_method(CURL *c, const struct http_request *req)
{
	const char *m = http_method(req);
	CURLcode e = CURLE_OK;

	if (!strcmp(m, "GET")) {
		HTTP_SET(c, e, CURLOPT_HTTPGET, 1L);
		return e;
	}
	if (!strcmp(m, "HEAD")) {
		HTTP_SET(c, e, CURLOPT_NOBODY, 1L);
		return e;
	}
	if (req->body || !strcmp(m, "POST")) {
		/* Always give the size: bodies may hold NUL bytes, and an empty POST must
		 * still say Content-Length: 0. */
		HTTP_SET(c, e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		HTTP_SET(c, e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
	}
	if (strcmp(m, "POST"))
		HTTP_SET(c, e, CURLOPT_CUSTOMREQUEST, m);
	return e;
}

static CURLcode http_setup(struct http *h, CURL *c, const char *url, struct curl_slist *hdrs,
			   struct http_xfer *x, const struct http_request *req)
{
	CURLcode e = CURLE_OK;

	HTTP_SET(c, e, CURLOPT_SHARE, h->share);
	HTTP_SET(c, e, CURLOPT_URL, url);
	HTTP_SET(c, e, CURLOPT_PROTOCOLS_STR, "http,https");
	HTTP_SET(c, e, CURLOPT_FOLLOWLOCATION, 0L);
	HTTP_SET(c, e, CURLOPT_NOSIGNAL, 1L);
	HTTP_SET(c, e, CURLOPT_CONNECTTIMEOUT, h->timeout_s);
	HTTP_SET(c, e, CURLOPT_TIMEOUT, h->timeout_s);
	HTTP_SET(c, e, CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SET(c, e, CURLOPT_SSL_VERIFYHOST, 2L);
	HTTP_SET(c, e, CURLOPT_USERAGENT, h->user_agent);
	HTTP_SET(c, e, CURLOPT_ACCEPT_ENCODING, "");
	HTTP_SET(c, e, CURLOPT_TCP_KEEPALIVE, 1L);
	HTTP_SET(c, e, CURLOPT_TCP_KEEPIDLE, 60L);
	HTTP_SET(c, e, CURLOPT_TCP_KEEPINTVL, 30L);
	HTTP_SET(c, e, CURLOPT_HTTPHEADER, hdrs);
	HTTP_SET(c, e, CURLOPT_WRITEFUNCTION, http_on_body);
	HTTP_SET(c, e, CURLOPT_WRITEDATA, x);
	HTTP_SET(c, e, CURLOPT_HEADERFUNCTION, http_on_header);
	HTTP_SET(c, e, CURLOPT_HEADERDATA, x);
	if (e == CURLE_OK)
		e = http_set_method(c, req);
	return e;
}

/* Failures that another attempt may not meet: the network, not the request. */
static int http_transient(CURLcode code)
{
	switch (code) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
		return 1;
	default:
		return 0;
	}
}

/* One try: resp gets the answer (rc 0) or stays empty. */
static void http_attempt(struct http *h, CURL *c, struct http_request *req,
			 struct http_response *resp, int attempt, struct http_outcome *o)
{
	struct http_xfer x = {.resp = resp, .max_body = h->max_body};
	struct curl_slist *hdrs = NULL;
	char *url = NULL;
	int64_t start = clock_ms();

	memset(o, 0, sizeof(*o));
	o->rc = -ENOMEM;
	url = http_url(req);
	if (!url || http_headers(req, &hdrs) < 0)
		goto out;
	curl_easy_reset(c);
	o->code = http_setup(h, c, url, hdrs, &x, req);
	if (o->code == CURLE_OK)
		o->code = curl_easy_perform(c);
	o->ms = (long)(clock_ms() - start);
	if (x.nomem || o->code == CURLE_OUT_OF_MEMORY) {
		o->rc = -ENOMEM;
	} else if (x.too_big) {
		o->rc = -EFBIG;
	} else if (o->code != CURLE_OK) {
		o->rc = o->code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
		o->transient = http_transient(o->code);
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
		/* Callers may parse the body without checking for NULL. */
		if (!resp->body && !(resp->body = calloc(1, 1)))
			o->rc = -ENOMEM;
		else
			o->rc = 0;
	}
	/* Path only: the query and the headers carry signatures and tokens. */
	if (o->rc == 0) {
		const char *rid = req->id_header ? http_resp_header(resp, req->id_header) : NULL;

		log_msg(LOG_DEBUG, "%s: %s %s -> %ld in %ld ms (attempt %d, request id %s)",
			http_label(req), http_method(req), req->path, resp->status, o->ms,
			attempt + 1, rid ? rid : "-");
	} else
		log_msg(LOG_DEBUG, "%s: %s %s -> %s in %ld ms (attempt %d)", http_label(req),
			http_method(req), req->path,
			o->rc == -EFBIG ? "body too large" : curl_easy_strerror(o->code), o->ms,
			attempt + 1);
out:
	if (o->rc)
		http_resp_free(resp);
	http_slist_free(hdrs);
	free(url);
}

/* Milliseconds Retry-After asks for, or -1 when there is none we can read. */
static long http_retry_after_ms(const struct http_response *resp)
{
	const char *v = http_resp_header(resp, "retry-after");
	const char *p;
	time_t t, now;

	if (!v || !*v)
		return -1;
	for (p = v; *p >= '0' && *p <= '9'; p++)
		;
	if (!*p) {
		/* Anything of 7 digits or more is far past the cap anyway. */
		if (p - v > 6)
			return 1000000000L;
		return strtol(v, NULL, 10) * 1000;
	}
	t = curl_getdate(v, NULL);
	if (t == (time_t)-1)
		return -1;
	now = time(NULL);
	if (t <= now)
		return 0;
	return t - now > 1000000 ? 1000000000L : (long)(t - now) * 1000;
}

/* Exponential backoff with equal jitter: at least half the step, so retries from many
 * threads neither bunch at zero nor march in step. */
static long http_backoff_ms(int attempt, unsigned int *seed)
{
	long step = HTTP_BACKOFF_BASE_MS << (attempt < 5 ? attempt : 5);

	if (step > HTTP_BACKOFF_CAP_MS)
		step = HTTP_BACKOFF_CAP_MS;
	return step / 2 + (long)(rand_r(seed) % (unsigned)(step / 2 + 1));
}

static enum http_verdict http_verdict(const struct http_request *req,
				      const struct http_response *resp)
{
	if (req->classify)
		return req->classify(resp, req->classify_ctx);
	return resp->status == 429 || resp->status >= 500 ? HTTP_RETRY : HTTP_DONE;
}

/* How long to wait before the next attempt, or -1 to stop now. */
static long http_next_wait(const struct http_request *req, const struct http_response *resp,
			   const struct http_outcome *o, int attempt, unsigned int *seed)
{
	long wait = http_backoff_ms(attempt, seed), ra;

	if (o->rc != 0)
		return wait;
	ra = http_retry_after_ms(resp);
	if (ra > HTTP_BACKOFF_CAP_MS) {
		/* Waiting would break the time bound every caller relies on. */
		log_msg(LOG_WARNING,
			"%s: %s %s -> %ld, Retry-After %ld s is past the %d s cap; "
			"not retrying",
			http_label(req), http_method(req), req->path, resp->status, ra / 1000,
			HTTP_BACKOFF_CAP_MS / 1000);
		return -1;
	}
	return ra > wait ? ra : wait;
}

static void http_log_retry(const struct http_request *req, const struct http_response *resp,
			   const struct http_outcome *o, int attempt, int retries, long wait)
{
	char why[64];

	if (o->rc == 0)
		snprintf(why, sizeof(why), "HTTP %ld", resp->status);
	else
		snprintf(why, sizeof(why), "%s", curl_easy_strerror(o->code));
	log_msg(LOG_WARNING, "%s: %s %s: %s; retry %d of %d in %ld ms", http_label(req),
		http_method(req), req->path, why, attempt + 1, retries, wait);
}

int http_perform(struct http *h, struct http_request *req, struct http_response *resp)
{
	struct http_response cur = {0};
	struct http_outcome o = {.rc = -EIO};
	unsigned int seed =
	    (unsigned int)((uintptr_t)clock_ms() ^ (uintptr_t)req ^ (uintptr_t)&cur);
	int attempt, answered = 0;
	long wait;
	CURL *c;

	memset(resp, 0, sizeof(*resp));
	c = http_pool_get(h);
	if (!c)
		return -ENOMEM;
	for (attempt = 0;; attempt++) {
		/* Signed afresh each time: a retry must carry a new date and nonce. */
		if (req->sign) {
			o.rc = req->sign(req, req->sign_ctx);
			o.transient = 0;
			if (o.rc < 0)
				break;
		}
		http_attempt(h, c, req, &cur, attempt, &o);
		if (o.rc == 0) {
			http_resp_free(resp);
			*resp = cur;
			memset(&cur, 0, sizeof(cur));
			answered = 1;
			if (http_verdict(req, resp) == HTTP_DONE)
				break;
		} else if (!o.transient) {
			break;
		}
		if (attempt >= h->retries)
			break;
		wait = http_next_wait(req, resp, &o, attempt, &seed);
		if (wait < 0)
			break;
		http_log_retry(req, resp, &o, attempt, h->retries, wait);
		http_sleep_ms(wait);
	}
	http_pool_put(h, c);
	/* A network failure after an answer: the answer (its error body) says more. */
	if (o.rc < 0 && o.transient && answered)
		return 0;
	if (o.rc < 0)
		http_resp_free(resp);
	return o.rc;
}
