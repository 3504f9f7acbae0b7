/* http_engine: the client and its one engine thread on libcurl's multi interface (see
 * http_i.h): transfers handed over by callers and held for their request slots,
 * connection, TLS and proxy set-up, and an answer's body and header fields as they
 * arrive. What one call does with a transfer (attempts, retries, waiting, the words of a
 * failure) is http.c's. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <pthread.h>
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
#include "http_i.h"
#include "secret.h"

#define HTTP_DEFAULT_TIMEOUT  15
#define HTTP_DEFAULT_MAX_BODY (64UL << 20)
#define HTTP_DEFAULT_UA	      "codesrcfs"
#define HTTP_DEFAULT_CONNS    8

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_init_rc; /* written once, under http_once */

static void http_global_init(void)
{
	http_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Wait on c (h->lock held) for at most ms milliseconds. */
static void http_timedwait(struct http *h, pthread_cond_t *c, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(c, &h->lock, &ts);
}

void http_cond_wait_ms(struct http *h, long ms)
{
	http_timedwait(h, &h->cond, ms);
}

void http_xfer_wait_ms(struct http *h, struct http_xfer *x, long ms)
{
	http_timedwait(h, &x->done, ms);
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

int http_xfer_prepare(struct http_xfer *x)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&x->done, &ca);
	pthread_condattr_destroy(&ca);
	x->url = http_url(x->req);
	if (!x->url || http_headers(x->req, &x->hdrs) < 0)
		return -ENOMEM;
	return 0;
}

void http_xfer_release(struct http_xfer *x)
{
	http_slist_free(x->hdrs);
	x->hdrs = NULL;
	free(x->url);
	x->url = NULL;
	pthread_cond_destroy(&x->done);
}

const char *http_method(const struct http_request *req)
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

/* Take x off the list at *head (whose last is *tail, when the list keeps one). */
static void http_unlink(struct http_xfer **head, struct http_xfer **tail, struct http_xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		*head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else if (tail)
		*tail = x->prev;
	x->next = x->prev = NULL;
}

/* Let go of x, active or held (lock held): its caller may return as soon as it sees it
 * finished. An active x gives its slot back. */
static void http_finish(struct http *h, struct http_xfer *x, CURLcode code)
{
	if (x->easy) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
		curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &x->os_errno);
		curl_multi_remove_handle(h->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	if (x->state == XFER_ACTIVE) {
		http_unlink(&h->active, NULL, x);
		if (x->slots)
			x->slots->free++;
	} else {
		http_unlink(&h->held, &h->held_tail, x);
	}
	x->code = code;
	x->state = XFER_FINISHED;
	pthread_cond_signal(&x->done); /* its caller alone; x may go once the lock does */
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

/* Put x on the active list, taking one of its slots, and start it (lock held). */
static void http_activate(struct http *h, struct http_xfer *x)
{
	x->prev = NULL;
	x->next = h->active;
	if (h->active)
		h->active->prev = x;
	h->active = x;
	x->state = XFER_ACTIVE;
	x->started = (long)clock_ms();
	if (x->slots)
		x->slots->free--;
	if (!x->abort && !h->shut)
		http_start(h, x);
}

/* Put x last on the held list, to wait for one of its slots (lock held). */
static void http_hold(struct http *h, struct http_xfer *x)
{
	x->next = NULL;
	x->prev = h->held_tail;
	if (h->held_tail)
		h->held_tail->next = x;
	else
		h->held = x;
	h->held_tail = x;
}

/* Take in what callers queued, and drop what they gave up on (lock held). */
static void http_admit(struct http *h)
{
	struct http_xfer *x, *next;

	while ((x = h->queue)) {
		h->queue = x->next;
		if (x->slots)
			http_hold(h, x); /* http_start_held sends it, in turn */
		else
			http_activate(h, x);
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

/* Whether x's caller gave up on it: its flag, or its cancel callback asked now (lock held,
 * dropped around the callback, which may take locks of its own; only the engine changes
 * the held list meanwhile). */
static int http_unwanted(struct http *h, struct http_xfer *x)
{
	int cancelled;

	if (!x->abort && h->shut)
		x->abort = -ECANCELED;
	if (!x->abort && x->cancelled) {
		pthread_mutex_unlock(&h->lock);
		cancelled = x->cancelled(x->cancel_ctx);
		pthread_mutex_lock(&h->lock);
		if (cancelled && !x->abort)
			x->abort = -EINTR;
	}
	return x->abort != 0;
}

/* Send the held transfers whose slots have room, oldest first; drop those their callers no
 * longer want, a page past the end of a listing say, rather than send them (lock held). */
static void http_start_held(struct http *h)
{
	struct http_xfer *x, *next;

	for (x = h->held; x; x = next) {
		next = x->next;
		if (!x->abort && !h->shut && x->slots->free <= 0)
			continue;
		if (http_unwanted(h, x)) {
			http_finish(h, x, CURLE_ABORTED_BY_CALLBACK);
			continue;
		}
		http_unlink(&h->held, &h->held_tail, x);
		http_activate(h, x);
	}
}

/* Let go of the transfers libcurl finished (lock held). Non-zero when one gave a slot back
 * that a held transfer may take. */
static int http_reap(struct http *h)
{
	struct http_xfer *x;
	int left, freed = 0;
	CURLMsg *m;

	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x) {
			freed |= x->slots != NULL;
			http_finish(h, x, m->data.result);
		}
	}
	return freed && h->held;
}

static void *http_engine(void *arg)
{
	struct http *h = arg;
	int running, idle_stop, again;

	for (;;) {
		pthread_mutex_lock(&h->lock);
		http_admit(h);
		http_start_held(h);
		idle_stop = h->stopping && !h->active && !h->held;
		pthread_mutex_unlock(&h->lock);
		if (idle_stop)
			break;
		/* Unlocked: body callbacks run here, and callers must be able to queue. */
		curl_multi_perform(h->multi, &running);
		pthread_mutex_lock(&h->lock);
		again = http_reap(h);
		pthread_mutex_unlock(&h->lock);
		/* A slot came free: send what waits for it now, not after a poll. */
		if (!again)
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
int http_submit(struct http *h, struct http_xfer *x)
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

void http_wake(struct http *h)
{
	curl_multi_wakeup(h->multi);
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
