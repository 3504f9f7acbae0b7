/* http_i: what http.c and http_engine.c share; include/http.h is the public API.
 *
 *   http_engine.c  the client and its one engine thread on libcurl's multi interface:
 *                  transfers queued, handed to libcurl and let go of; connection, TLS and
 *                  proxy set-up; an answer's body and header fields as they arrive
 *   http.c         one call in its caller's thread: request slots, attempts, waiting on a
 *                  transfer or a backoff (cancel, shutdown, deadline), retries, backoff,
 *                  Retry-After, and the words for why an attempt got no answer
 *
 * Every libcurl handle is touched by the engine thread alone: the multi handle (whose
 * connection cache keeps HTTP/1.1 connections alive and lets HTTP/2 multiplex on one),
 * the easy handles and the share handle (TLS sessions). A caller hands the engine a
 * transfer and waits on the transfer's own condition (x->done: the engine wakes its caller
 * alone, not every caller with a transfer on the wire), waking every HTTP_POLL_MS (http.c)
 * to ask its cancel callback; giving up is a flag (x->abort) the engine acts on once woken
 * (http_wake).
 *
 * Request slots (http_thread_slots) are the engine's too: a transfer whose slots are all
 * taken is held, and the engine sends it as soon as one of them is given back, in the same
 * turn of its loop that took the answer in, unless its caller's cancel callback says it is
 * not wanted any more. No thread has to wake for the wire to stay full. */
#ifndef CODESRCFS_HTTP_I_H
#define CODESRCFS_HTTP_I_H

#include <pthread.h>
#include <stddef.h>

#include <curl/curl.h>

#include "http.h"

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
	struct http_xfer *held, *held_tail;   /* the engine's: waiting for a slot, oldest first */
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
	char *url;
	struct curl_slist *hdrs;
	struct http_response *resp;
	struct http_slots *slots;    /* NULL: no bound; else one of them is held while active */
	int (*cancelled)(void *ctx); /* the caller's cancel callback, or NULL */
	void *cancel_ctx;
	size_t max_body;
	size_t cap;
	int too_big;
	int too_many; /* more header fields than a response holds */
	int nomem;
	CURL *easy;		    /* engine thread only */
	enum http_xfer_state state; /* under h->lock */
	int abort;		    /* under h->lock: the -errno the caller gave up with */
	long started;		    /* under h->lock: clock_ms() when it became active */
	pthread_cond_t done;	    /* signalled (under h->lock) when state becomes finished */
	CURLcode code;		    /* set when finished */
	long status;
	long os_errno;
	char errbuf[CURL_ERROR_SIZE];
};

/* Build x's URL and header list from x->req, and its condition. 0 or -ENOMEM (release x
 * all the same). */
int http_xfer_prepare(struct http_xfer *x);
/* Free x's URL and header list, the headers wiped first (signatures, tokens). */
void http_xfer_release(struct http_xfer *x);
/* Wait on x->done (h->lock held) for at most ms milliseconds. */
void http_xfer_wait_ms(struct http *h, struct http_xfer *x, long ms);
/* Queue x for the engine, starting it when needed. 0, -ECANCELED after http_shutdown, or
 * -errno when the engine thread cannot start. */
int http_submit(struct http *h, struct http_xfer *x);
/* Make the engine look at its queue and aborts now rather than at its next poll. */
void http_wake(struct http *h);
/* Wait on h->cond (h->lock held) for at most ms milliseconds. */
void http_cond_wait_ms(struct http *h, long ms);
/* req's method, "GET" when it names none. */
const char *http_method(const struct http_request *req);

#endif
