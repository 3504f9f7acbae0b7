/* http: one call of http.h in its caller's thread — attempts, signed, waiting on a
 * transfer or a backoff (cancel, shutdown, deadline), retries with backoff and jitter,
 * Retry-After, and why an attempt got no answer in a person's words. The engine thread
 * that carries the transfers, and the client, are http_engine.c's (see http_i.h). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "clock.h"
#include "http.h"
#include "http_i.h"
#include "log.h"

#define HTTP_BACKOFF_BASE_MS 250
#define HTTP_BACKOFF_CAP_MS  5000
#define HTTP_POLL_MS	     40	  /* how often a waiting caller asks its cancel callback */
#define HTTP_GRACE_MS	     1000 /* past libcurl's own timeout, the caller gives up */
#define HTTP_ERRTEXT_MAX     512

/* How one attempt ended. */
struct http_outcome {
	int rc;	       /* 0: an answer is in the response */
	int transient; /* a network failure worth another attempt */
	CURLcode code;
	long ms;
	char text[HTTP_ERRTEXT_MAX]; /* why there is no answer: "host: reason (detail)" */
};

/* What the calling thread's last http_perform met, and its default cancel callback. */
static __thread char http_errtext[HTTP_ERRTEXT_MAX];
static __thread int (*http_thread_cancelled)(void *ctx);
static __thread void *http_thread_cancel_ctx;
static __thread struct http_slots *http_thread_slot; /* http_thread_slots */

const char *http_last_error(void)
{
	return http_errtext;
}

void http_thread_cancel(int (*cancelled)(void *ctx), void *ctx)
{
	http_thread_cancelled = cancelled;
	http_thread_cancel_ctx = ctx;
}

void http_slots_init(struct http_slots *s, int n)
{
	s->free = n;
}

void http_thread_slots(struct http_slots *slots)
{
	http_thread_slot = slots;
}

static const char *http_label(const struct http_request *req)
{
	return req->label ? req->label : "http";
}

/* ---- waiting in the caller's thread ---------------------------------------------------- */

/* x asks its caller's cancel callback, the request's own or the thread's; the engine
 * too, before it sends a request it held for a slot. */
static void http_cancel_of(const struct http_request *req, struct http_xfer *x)
{
	x->cancelled = req->cancelled ? req->cancelled : http_thread_cancelled;
	x->cancel_ctx = req->cancelled ? req->cancel_ctx : http_thread_cancel_ctx;
}

static int http_is_cancelled(const struct http_request *req)
{
	struct http_xfer x;

	http_cancel_of(req, &x);
	return x.cancelled && x.cancelled(x.cancel_ctx) != 0;
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

/* Until the engine lets go of x; on shutdown, cancel or deadline, ask it to drop x. The
 * deadline runs from when the engine sent x: waiting for a slot is no failure. */
static void http_wait(struct http *h, struct http_xfer *x)
{
	long deadline;
	int why;

	pthread_mutex_lock(&h->lock);
	while (x->state != XFER_FINISHED) {
		deadline = x->state == XFER_ACTIVE
			       ? x->started + h->timeout_s * 1000 + HTTP_GRACE_MS
			       : LONG_MAX;
		if (!x->abort && (why = http_give_up(h, x, deadline))) {
			x->abort = why;
			http_wake(h);
			continue;
		}
		if (x->state != XFER_FINISHED)
			http_xfer_wait_ms(h, x, HTTP_POLL_MS);
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
	struct http_xfer x = {
	    .req = req, .resp = resp, .max_body = h->max_body, .slots = http_thread_slot};
	long start = (long)clock_ms();

	memset(o, 0, sizeof(*o));
	o->rc = -ENOMEM;
	snprintf(o->text, sizeof(o->text), "%s: out of memory", req->host);
	if (http_xfer_prepare(&x) < 0)
		goto out;
	http_cancel_of(req, &x);
	o->rc = http_submit(h, &x);
	if (o->rc < 0) {
		snprintf(o->text, sizeof(o->text), "%s: %s", req->host,
			 o->rc == -ECANCELED ? "the client is shutting down" : strerror(-o->rc));
		goto out;
	}
	http_wait(h, &x);
	o->ms = (long)clock_ms() - (x.started ? x.started : start); /* on the wire */
	http_judge(h, req, &x, o);
	http_log_attempt(req, resp, o, attempt);
out:
	if (o->rc)
		http_resp_free(resp);
	http_xfer_release(&x);
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

/* One attempt, signed afresh: a retry must carry a new date and nonce. It is signed before
 * it waits for one of the thread's slots, in the engine's hands, so that the engine sends it
 * the moment a slot is free; that wait is at most a transfer's time-out, well within the 15
 * minutes both clouds allow a signature's date to be off. Non-zero when there is no attempt
 * to make (signing failed: o says why). */
static int http_try(struct http *h, struct http_request *req, struct http_response *cur,
		    int attempt, struct http_outcome *o)
{
	if (req->sign) {
		o->rc = req->sign(req, req->sign_ctx);
		o->transient = 0;
		o->text[0] = '\0';
		if (o->rc < 0)
			return 1;
	}
	http_attempt(h, req, cur, attempt, o);
	return 0;
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
