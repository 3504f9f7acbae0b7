/* http: the transport half of http.h — one engine thread on libcurl's multi interface,
 * retries and backoff in the callers' threads.
 *
 * Every libcurl handle is touched by the engine thread alone: the multi handle (whose
 * connection cache keeps HTTP/1.1 connections alive and lets HTTP/2 multiplex on one),
 * the easy handles and the share handle (TLS sessions). A caller hands the engine a
 * transfer and waits on a condition variable, waking every HTTP_POLL_MS to ask its
 * cancel callback; giving up is a flag the engine acts on at once. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "clock.h"
#include "http.h"
#include "log.h"
#include "secret.h"

#define HTTP_BACKOFF_BASE_MS  250
#define HTTP_BACKOFF_CAP_MS   5000
#define HTTP_DEFAULT_TIMEOUT  15
#define HTTP_DEFAULT_MAX_BODY (64UL << 20)
#define HTTP_DEFAULT_UA	      "codesrcfs"
#define HTTP_DEFAULT_CONNS    8
#define HTTP_POLL_MS	      40   /* how often a waiting caller asks its cancel callback */
#define HTTP_GRACE_MS	      1000 /* past libcurl's own timeout, the caller gives up */
#define HTTP_ERRTEXT_MAX      512

struct http_xfer;

struct http {
	long timeout_s;
	int retries;
	size_t max_body;
	char *user_agent;
	char *cafile;
	CURLM *multi;
	CURLSH *share;
	pthread_mutex_t lock; /* guards what follows, and each transfer's state and abort */
	pthread_cond_t cond;  /* a transfer finished, or the client shut down */
	struct http_xfer *queue, *queue_tail; /* handed over, not yet seen by the engine */
	struct http_xfer *active;	      /* the engine's; linked and unlinked by it */
	pthread_t thread;
	int running;  /* the engine thread exists */
	int stopping; /* the engine is asked to exit once idle (http_pause, http_free) */
	int shut;     /* http_shutdown: everything fails with -ECANCELED */
};

enum http_xfer_state { XFER_QUEUED, XFER_ACTIVE, XFER_FINISHED };

/* One attempt, on its caller's stack: the caller waits until the engine lets go of it. */
struct http_xfer {
	struct http_xfer *next, *prev;
	const struct http_request *req;
	const char *url;
	struct curl_slist *hdrs;
	struct http_response *resp;
	size_t max_body;
	size_t cap;
	int too_big;
	int too_many; /* more header fields than a response holds */
	int nomem;
	CURL *easy;		    /* engine thread only */
	enum http_xfer_state state; /* under h->lock */
	int abort;		    /* under h->lock: the -errno the caller gave up with */
	CURLcode code;		    /* set when finished */
	long status;
	long os_errno;
	char errbuf[CURL_ERROR_SIZE];
};

/* How one attempt ended. */
struct http_outcome {
	int rc;	       /* 0: an answer is in the response */
	int transient; /* a network failure worth another attempt */
	CURLcode code;
	long ms;
	char text[HTTP_ERRTEXT_MAX]; /* why there is no answer: "host: reason (detail)" */
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_init_rc; /* written once, under http_once */

/* What the calling thread's last http_perform met, and its default cancel callback. */
static __thread char http_errtext[HTTP_ERRTEXT_MAX];
static __thread int (*http_thread_cancelled)(void *ctx);
static __thread void *http_thread_cancel_ctx;
static __thread sem_t *http_thread_slot; /* http_thread_slots: one held per attempt */

static void http_global_init(void)
{
	http_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *http_last_error(void)
{
	return http_errtext;
}

void http_thread_cancel(int (*cancelled)(void *ctx), void *ctx)
{
	http_thread_cancelled = cancelled;
	http_thread_cancel_ctx = ctx;
}

void http_thread_slots(sem_t *slots)
{
	http_thread_slot = slots;
}

/* Wait on h->cond (lock held) for at most ms milliseconds. */
static void http_cond_wait_ms(struct http *h, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&h->cond, &h->lock, &ts);
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
	if (!colon || colon == buf || http_is_space(buf[0]))
		return total;
	/* Dropping fields past the last slot could drop the one a provider pages by. */
	if (r->nheaders >= HTTP_MAX_RESP_FIELDS) {
		x->too_many = 1;
		return 0;
	}
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

static void http_slist_free(struct curl_slist *list)
{
	struct curl_slist *l;

	for (l = list; l; l = l->next)
		secret_wipe(l->data, strlen(l->data)); /* signatures and tokens */
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
		secret_free(line);
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

/* Connection, TLS and proxy: what every transfer of the client shares. */
static CURLcode http_setup_transport(struct http *h, CURL *c, struct http_xfer *x)
{
	CURLcode e = CURLE_OK;

	HTTP_SET(c, e, CURLOPT_PRIVATE, x);
	HTTP_SET(c, e, CURLOPT_ERRORBUFFER, x->errbuf);
	HTTP_SET(c, e, CURLOPT_SHARE, h->share);
	HTTP_SET(c, e, CURLOPT_URL, x->url);
	HTTP_SET(c, e, CURLOPT_PROTOCOLS_STR, "http,https");
	HTTP_SET(c, e, CURLOPT_FOLLOWLOCATION, 0L);
	HTTP_SET(c, e, CURLOPT_NOSIGNAL, 1L);
	HTTP_SET(c, e, CURLOPT_CONNECTTIMEOUT, h->timeout_s);
	HTTP_SET(c, e, CURLOPT_TIMEOUT, h->timeout_s);
	HTTP_SET(c, e, CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SET(c, e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (h->cafile)
		HTTP_SET(c, e, CURLOPT_CAINFO, h->cafile);
	/* HTTP/2 is offered by ALPN; its transfers then share one connection, and a new one
	 * waits for the first handshake to know whether it may, rather than opening its own.
	 * Over http:// only an answer would tell, which a stalled server never gives. */
	HTTP_SET(c, e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	if (strncasecmp(x->url, "http://", 7))
		HTTP_SET(c, e, CURLOPT_PIPEWAIT, 1L);
	else /* http:// is for loopback only: a proxy would see the credentials in clear. */
		HTTP_SET(c, e, CURLOPT_PROXY, "");
	HTTP_SET(c, e, CURLOPT_TCP_KEEPALIVE, 1L);
	HTTP_SET(c, e, CURLOPT_TCP_KEEPIDLE, 60L);
	HTTP_SET(c, e, CURLOPT_TCP_KEEPINTVL, 30L);
#if LIBCURL_VERSION_NUM >= 0x075700
	/* An aborted transfer must not wait for its resolver thread to finish. */
	HTTP_SET(c, e, CURLOPT_QUICK_EXIT, 1L);
#endif
	return e;
}

static CURLcode http_setup(struct http *h, CURL *c, struct http_xfer *x)
{
	CURLcode e = http_setup_transport(h, c, x);

	HTTP_SET(c, e, CURLOPT_USERAGENT, h->user_agent);
	HTTP_SET(c, e, CURLOPT_ACCEPT_ENCODING, "");
	HTTP_SET(c, e, CURLOPT_HTTPHEADER, x->hdrs);
	HTTP_SET(c, e, CURLOPT_WRITEFUNCTION, http_on_body);
	HTTP_SET(c, e, CURLOPT_WRITEDATA, x);
	HTTP_SET(c, e, CURLOPT_HEADERFUNCTION, http_on_header);
	HTTP_SET(c, e, CURLOPT_HEADERDATA, x);
	if (e == CURLE_OK)
		e = http_set_method(c, x->req);
	return e;
}

/* ---- the engine thread ---------------------------------------------------------------- */

/* Let go of x (lock held): its caller may return as soon as it sees it finished. */
static void http_finish(struct http *h, struct http_xfer *x, CURLcode code)
{
	if (x->easy) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
		curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &x->os_errno);
		curl_multi_remove_handle(h->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	if (x->prev)
		x->prev->next = x->next;
	else
		h->active = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->next = x->prev = NULL;
	x->code = code;
	x->state = XFER_FINISHED;
	pthread_cond_broadcast(&h->cond);
}

/* Hand x to libcurl (lock held); it is on the active list already. */
static void http_start(struct http *h, struct http_xfer *x)
{
	CURL *c = curl_easy_init();
	CURLcode e = c ? http_setup(h, c, x) : CURLE_OUT_OF_MEMORY;

	if (e == CURLE_OK && curl_multi_add_handle(h->multi, c) != CURLM_OK)
		e = CURLE_OUT_OF_MEMORY;
	if (e != CURLE_OK) {
		curl_easy_cleanup(c);
		http_finish(h, x, e);
		return;
	}
	x->easy = c;
}

/* Take in what callers queued, and drop what they gave up on (lock held). */
static void http_admit(struct http *h)
{
	struct http_xfer *x, *next;

	while ((x = h->queue)) {
		h->queue = x->next;
		x->prev = NULL;
		x->next = h->active;
		if (h->active)
			h->active->prev = x;
		h->active = x;
		x->state = XFER_ACTIVE;
		if (!x->abort && !h->shut)
			http_start(h, x);
	}
	h->queue_tail = NULL;
	for (x = h->active; x; x = next) {
		next = x->next;
		if (h->shut && !x->abort)
			x->abort = -ECANCELED;
		if (x->abort)
			http_finish(h, x, CURLE_ABORTED_BY_CALLBACK);
	}
}

static void http_reap(struct http *h)
{
	struct http_xfer *x;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x)
			http_finish(h, x, m->data.result);
	}
}

static void *http_engine(void *arg)
{
	struct http *h = arg;
	int running, idle_stop;

	for (;;) {
		pthread_mutex_lock(&h->lock);
		http_admit(h);
		idle_stop = h->stopping && !h->active;
		pthread_mutex_unlock(&h->lock);
		if (idle_stop)
			break;
		/* Unlocked: body callbacks run here, and callers must be able to queue. */
		curl_multi_perform(h->multi, &running);
		pthread_mutex_lock(&h->lock);
		http_reap(h);
		pthread_mutex_unlock(&h->lock);
		curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
	}
	return NULL;
}

/* Start the engine (lock held). Signals are for the other threads to take. */
static int http_engine_start(struct http *h)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&h->thread, NULL, http_engine, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -r;
	h->running = 1;
	return 0;
}

/* Queue x for the engine. 0, or -ECANCELED after http_shutdown. */
static int http_submit(struct http *h, struct http_xfer *x)
{
	int r = 0;

	pthread_mutex_lock(&h->lock);
	if (h->shut)
		r = -ECANCELED;
	else if (!h->running)
		r = http_engine_start(h);
	if (r == 0) {
		x->state = XFER_QUEUED;
		x->next = NULL;
		if (h->queue_tail)
			h->queue_tail->next = x;
		else
			h->queue = x;
		h->queue_tail = x;
	}
	pthread_mutex_unlock(&h->lock);
	if (r == 0)
		curl_multi_wakeup(h->multi);
	return r;
}

/* ---- waiting in the caller's thread ---------------------------------------------------- */

static int http_is_cancelled(const struct http_request *req)
{
	if (req->cancelled)
		return req->cancelled(req->cancel_ctx) != 0;
	return http_thread_cancelled && http_thread_cancelled(http_thread_cancel_ctx) != 0;
}

/* Why the caller should give x up now (lock held, dropped around the callback), or 0. */
static int http_give_up(struct http *h, const struct http_xfer *x, long deadline)
{
	int cancelled;

	if (h->shut)
		return -ECANCELED;
	pthread_mutex_unlock(&h->lock);
	cancelled = http_is_cancelled(x->req);
	pthread_mutex_lock(&h->lock);
	if (h->shut)
		return -ECANCELED;
	if (cancelled)
		return -EINTR;
	return (long)clock_ms() >= deadline ? -ETIMEDOUT : 0;
}

/* Until the engine lets go of x; on shutdown, cancel or deadline, ask it to drop x. */
static void http_wait(struct http *h, struct http_xfer *x, long deadline)
{
	int why;

	pthread_mutex_lock(&h->lock);
	while (x->state != XFER_FINISHED) {
		if (!x->abort && (why = http_give_up(h, x, deadline))) {
			x->abort = why;
			curl_multi_wakeup(h->multi);
			continue;
		}
		if (x->state != XFER_FINISHED)
			http_cond_wait_ms(h, HTTP_POLL_MS);
	}
	pthread_mutex_unlock(&h->lock);
}

/* Sleep ms unless cancelled (-EINTR) or shut down (-ECANCELED); 0 when slept. */
static int http_sleep(struct http *h, const struct http_request *req, long ms)
{
	long end = (long)clock_ms() + ms, left;
	int r = 0, cancelled;

	pthread_mutex_lock(&h->lock);
	while (!h->shut && (left = end - (long)clock_ms()) > 0) {
		pthread_mutex_unlock(&h->lock);
		cancelled = http_is_cancelled(req);
		pthread_mutex_lock(&h->lock);
		if (cancelled) {
			r = -EINTR;
			break;
		}
		if (!h->shut)
			http_cond_wait_ms(h, left < HTTP_POLL_MS ? left : HTTP_POLL_MS);
	}
	if (h->shut)
		r = -ECANCELED;
	pthread_mutex_unlock(&h->lock);
	return r;
}

/* ---- what an attempt met ----------------------------------------------------------------- */

/* Failures that another attempt may not meet: the network, not the request. A name that
 * does not resolve and a certificate that does not verify stay so. */
static int http_transient(CURLcode code)
{
	switch (code) {
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

/* The transport's reason in a person's words; libcurl's own text follows it. */
static const char *http_reason(CURLcode code, long os_errno, const char *detail)
{
	switch (code) {
	case CURLE_COULDNT_RESOLVE_HOST:
		return "name not resolved";
	case CURLE_COULDNT_RESOLVE_PROXY:
		return "proxy name not resolved";
	case CURLE_COULDNT_CONNECT:
		if (os_errno == ECONNREFUSED)
			return "connection refused";
		return os_errno == ETIMEDOUT ? "timed out" : "cannot connect";
	case CURLE_OPERATION_TIMEDOUT:
		return "timed out";
	case CURLE_PEER_FAILED_VERIFICATION:
		if (strstr(detail, "subject name") || strstr(detail, "does not match"))
			return "certificate is for another host name";
		return "certificate not trusted";
	case CURLE_SSL_CACERT_BADFILE:
		return "cannot read the certificate authorities (cafile)";
	case CURLE_SSL_CONNECT_ERROR:
		return "TLS handshake failed";
	case CURLE_GOT_NOTHING:
		return "connection closed without an answer";
	case CURLE_PARTIAL_FILE:
		return "answer cut short";
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		return os_errno == ECONNRESET ? "connection reset" : "connection broken";
	default:
		return curl_easy_strerror(code);
	}
}

static void http_explain(const struct http_request *req, const struct http_xfer *x,
			 struct http_outcome *o)
{
	const char *why = http_reason(x->code, x->os_errno, x->errbuf);

	if (x->errbuf[0] && strcmp(x->errbuf, why))
		snprintf(o->text, sizeof(o->text), "%s: %s (%s)", req->host, why, x->errbuf);
	else
		snprintf(o->text, sizeof(o->text), "%s: %s", req->host, why);
}

/* Fill o from what the engine left in x. */
static void http_judge(struct http *h, const struct http_request *req, struct http_xfer *x,
		       struct http_outcome *o)
{
	struct http_response *resp = x->resp;

	o->code = x->code;
	o->rc = -EIO;
	if (x->abort == -EINTR || x->abort == -ECANCELED) {
		o->rc = x->abort;
		snprintf(o->text, sizeof(o->text), "%s: %s", req->host,
			 o->rc == -EINTR ? "interrupted" : "the client is shutting down");
	} else if (x->nomem || x->code == CURLE_OUT_OF_MEMORY) {
		o->rc = -ENOMEM;
		snprintf(o->text, sizeof(o->text), "%s: out of memory", req->host);
	} else if (x->too_many) {
		snprintf(o->text, sizeof(o->text), "%s: answer with more than %d header fields",
			 req->host, HTTP_MAX_RESP_FIELDS);
	} else if (x->too_big) {
		o->rc = -EFBIG;
		snprintf(o->text, sizeof(o->text), "%s: answer larger than %zu bytes", req->host,
			 h->max_body);
	} else if (x->code == CURLE_ABORTED_BY_CALLBACK) {
		o->rc = -ETIMEDOUT;
		o->transient = 1;
		snprintf(o->text, sizeof(o->text), "%s: timed out (no answer in %ld s)", req->host,
			 h->timeout_s);
	} else if (x->code != CURLE_OK) {
		o->rc = x->code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
		o->transient = http_transient(x->code);
		http_explain(req, x, o);
	} else {
		resp->status = x->status;
		/* Callers may parse the body without checking for NULL. */
		o->rc = resp->body || (resp->body = calloc(1, 1)) ? 0 : -ENOMEM;
	}
}

static void http_log_attempt(const struct http_request *req, const struct http_response *resp,
			     const struct http_outcome *o, int attempt)
{
	const char *rid;

	if (!log_debug_enabled())
		return;
	/* Path only: the query and the headers carry signatures and tokens. */
	if (o->rc == 0) {
		rid = req->id_header ? http_resp_header(resp, req->id_header) : NULL;
		log_msg(LOG_DEBUG, "%s: %s %s -> %ld in %ld ms (attempt %d, request id %s)",
			http_label(req), http_method(req), req->path, resp->status, o->ms,
			attempt + 1, rid ? rid : "-");
	} else
		log_msg(LOG_DEBUG, "%s: %s %s -> %s in %ld ms (attempt %d)", http_label(req),
			http_method(req), req->path, o->text, o->ms, attempt + 1);
}

/* One try: resp gets the answer (rc 0) or stays empty. */
static void http_attempt(struct http *h, struct http_request *req, struct http_response *resp,
			 int attempt, struct http_outcome *o)
{
	struct http_xfer x = {.req = req, .resp = resp, .max_body = h->max_body};
	long start = (long)clock_ms();
	char *url;

	memset(o, 0, sizeof(*o));
	o->rc = -ENOMEM;
	snprintf(o->text, sizeof(o->text), "%s: out of memory", req->host);
	url = http_url(req);
	if (!url || http_headers(req, &x.hdrs) < 0)
		goto out;
	x.url = url;
	o->rc = http_submit(h, &x);
	if (o->rc < 0) {
		snprintf(o->text, sizeof(o->text), "%s: %s", req->host,
			 o->rc == -ECANCELED ? "the client is shutting down" : strerror(-o->rc));
		goto out;
	}
	http_wait(h, &x, start + h->timeout_s * 1000 + HTTP_GRACE_MS);
	o->ms = (long)clock_ms() - start;
	http_judge(h, req, &x, o);
	http_log_attempt(req, resp, o, attempt);
out:
	if (o->rc)
		http_resp_free(resp);
	http_slist_free(x.hdrs);
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
	while (v[0] == '0' && v[1] >= '0' && v[1] <= '9')
		v++; /* "0003" is three seconds, not a number too long to read */
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
	char why[HTTP_ERRTEXT_MAX];

	if (o->rc == 0)
		snprintf(why, sizeof(why), "HTTP %ld", resp->status);
	else
		snprintf(why, sizeof(why), "%s", o->text);
	log_msg(LOG_WARNING, "%s: %s %s: %s; retry %d of %d in %ld ms", http_label(req),
		http_method(req), req->path, why, attempt + 1, retries, wait);
}

/* Before an attempt: -ECANCELED or -EINTR (in o) when it must not be made. */
static int http_stopped(struct http *h, const struct http_request *req, struct http_outcome *o)
{
	int shut;

	pthread_mutex_lock(&h->lock);
	shut = h->shut;
	pthread_mutex_unlock(&h->lock);
	o->rc = shut ? -ECANCELED : http_is_cancelled(req) ? -EINTR : 0;
	if (o->rc) {
		o->transient = 0;
		snprintf(o->text, sizeof(o->text), "%s: %s", req->host,
			 shut ? "the client is shutting down" : "interrupted");
	}
	return o->rc;
}

/* One of the thread's slots for an attempt, waiting as a transfer does: asking every
 * HTTP_POLL_MS whether the caller gave up or the client shuts down (then o->rc). */
static int http_slot_take(struct http *h, const struct http_request *req, struct http_outcome *o)
{
	struct timespec ts;

	while (http_thread_slot) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += HTTP_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (sem_clockwait(http_thread_slot, CLOCK_MONOTONIC, &ts) == 0)
			return 0;
		if (http_stopped(h, req, o))
			return o->rc;
	}
	return 0;
}

static void http_slot_give(void)
{
	if (http_thread_slot)
		sem_post(http_thread_slot);
}

/* One attempt on one of the thread's slots, signed afresh once it has the slot: a retry
 * must carry a new date and nonce, and a wait for a slot must not age them. Non-zero when
 * there is no attempt to make (no slot, or signing failed: o says why). */
static int http_try(struct http *h, struct http_request *req, struct http_response *cur,
		    int attempt, struct http_outcome *o)
{
	int r = 0;

	if (http_slot_take(h, req, o))
		return 1;
	if (req->sign) {
		o->rc = req->sign(req, req->sign_ctx);
		o->transient = 0;
		o->text[0] = '\0';
		r = o->rc < 0;
	}
	if (!r)
		http_attempt(h, req, cur, attempt, o);
	http_slot_give();
	return r;
}

/* After the last attempt: the thread's error text, and one log line for a failure. */
static void http_conclude(const struct http_request *req, const struct http_outcome *o)
{
	if (o->rc == 0) {
		http_errtext[0] = '\0';
		return;
	}
	if (o->text[0])
		snprintf(http_errtext, sizeof(http_errtext), "%s", o->text);
	else
		snprintf(http_errtext, sizeof(http_errtext), "%s: %s", req->host, strerror(-o->rc));
	/* Interrupts and shutdown are asked for, not met: not worth an error line. */
	log_msg(o->rc == -EINTR || o->rc == -ECANCELED ? LOG_DEBUG : LOG_ERR, "%s: %s %s: %s",
		http_label(req), http_method(req), req->path, http_errtext);
}

int http_perform(struct http *h, struct http_request *req, struct http_response *resp)
{
	struct http_response cur = {0};
	struct http_outcome o = {.rc = -EIO};
	unsigned int seed = (unsigned int)((long)clock_ms() ^ (uintptr_t)req ^ (uintptr_t)&cur);
	int attempt, answered = 0;
	long wait;

	memset(resp, 0, sizeof(*resp));
	for (attempt = 0;; attempt++) {
		if (http_stopped(h, req, &o) || http_try(h, req, &cur, attempt, &o))
			break;
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
		if ((o.rc = http_sleep(h, req, wait)) < 0) {
			o.transient = 0;
			snprintf(o.text, sizeof(o.text), "%s: %s", req->host,
				 o.rc == -EINTR ? "interrupted" : "the client is shutting down");
			break;
		}
	}
	/* A network failure after an answer: the answer (its error body) says more. */
	if (o.rc < 0 && o.transient && answered)
		o.rc = 0;
	http_conclude(req, &o);
	if (o.rc < 0)
		http_resp_free(resp);
	return o.rc;
}

/* ---- the client ------------------------------------------------------------------------- */

static int http_handles_new(struct http *h, long conns)
{
	CURLMcode m = CURLM_OK;

	h->share = curl_share_init();
	h->multi = curl_multi_init();
	if (!h->share || !h->multi)
		return -ENOMEM;
	/* Only the engine thread uses it: no lock callbacks needed. */
	if (curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
		return -ENOMEM;
	m = curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	if (m == CURLM_OK)
		m = curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
	/* Kept alive between listings: room for every provider's host. */
	if (m == CURLM_OK)
		m = curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, conns * 4);
	return m == CURLM_OK ? 0 : -ENOMEM;
}

struct http *http_new(const struct http_opts *opts)
{
	pthread_condattr_t ca;
	struct http *h;

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
	h->cafile = opts->cafile ? strdup(opts->cafile) : NULL;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!h->user_agent || (opts->cafile && !h->cafile) ||
	    http_handles_new(h, opts->max_host_conns > 0 ? opts->max_host_conns
							 : HTTP_DEFAULT_CONNS) < 0) {
		http_free(h);
		return NULL;
	}
	return h;
}

void http_shutdown(struct http *h)
{
	pthread_mutex_lock(&h->lock);
	h->shut = 1;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	if (h->multi)
		curl_multi_wakeup(h->multi);
}

void http_pause(struct http *h)
{
	int running;

	pthread_mutex_lock(&h->lock);
	running = h->running;
	h->stopping = running;
	pthread_mutex_unlock(&h->lock);
	if (!running)
		return;
	curl_multi_wakeup(h->multi);
	pthread_join(h->thread, NULL);
	pthread_mutex_lock(&h->lock);
	h->running = 0;
	h->stopping = 0;
	pthread_mutex_unlock(&h->lock);
}

void http_free(struct http *h)
{
	if (!h)
		return;
	http_shutdown(h);
	http_pause(h);
	/* The easy handles are gone with their transfers; the multi closes the connections. */
	if (h->multi)
		curl_multi_cleanup(h->multi);
	if (h->share)
		curl_share_cleanup(h->share);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h->user_agent);
	free(h->cafile);
	free(h);
}
