/* http transport tests against a scripted HTTP/1.1 server on 127.0.0.1 in a thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"

enum step_kind {
	STEP_ANSWER, /* status, headers, body */
	STEP_CLOSE,  /* read the request, close without a word */
	STEP_STALL,  /* read the request, say nothing until the client goes away */
	STEP_SHORT,  /* promise more body than is sent, then close */
};

struct step {
	enum step_kind kind;
	int status;
	const char *headers; /* extra header lines, each ending in \r\n */
	const char *body;
	size_t body_len; /* 0: strlen(body); for large bodies, a filler length */
};

#define MAX_STEPS 8
#define MAX_CONNS 256

struct server {
	int fd;
	int port;
	pthread_t thread;
	pthread_mutex_t lock;
	struct step steps[MAX_STEPS];
	int nsteps;
	int nreq;
	int inflight, inflight_max; /* requests read and not answered yet */
	int answered;		    /* answers begun */
	int delay_ms;		    /* how long each answer takes (server_slow) */
	char last_req[8192];	    /* head and body of the last request */
	struct conn {
		pthread_t thread;
		int fd;
	} conns[MAX_CONNS];
	int nconns;
};

static struct server srv;

static void server_script(int n, const struct step *steps)
{
	pthread_mutex_lock(&srv.lock);
	memcpy(srv.steps, steps, (size_t)n * sizeof(*steps));
	srv.nsteps = n;
	srv.nreq = 0;
	srv.inflight_max = 0;
	srv.answered = 0;
	srv.delay_ms = 0;
	pthread_mutex_unlock(&srv.lock);
}

/* From now on each answer takes ms. */
static void server_slow(int ms)
{
	pthread_mutex_lock(&srv.lock);
	srv.delay_ms = ms;
	pthread_mutex_unlock(&srv.lock);
}

static int server_nreq(void)
{
	int n;

	pthread_mutex_lock(&srv.lock);
	n = srv.nreq;
	pthread_mutex_unlock(&srv.lock);
	return n;
}

/* One of the server's counts, read under its lock. */
static int server_count(const int *count)
{
	int n;

	pthread_mutex_lock(&srv.lock);
	n = *count;
	pthread_mutex_unlock(&srv.lock);
	return n;
}

static void server_last(char *out, size_t len)
{
	pthread_mutex_lock(&srv.lock);
	snprintf(out, len, "%s", srv.last_req);
	pthread_mutex_unlock(&srv.lock);
}

/* Read one request (head and Content-Length body); -1 when the client left. */
static int read_request(int fd, char *buf, size_t cap)
{
	size_t len = 0, need = 0;
	char *end = NULL, *cl;
	ssize_t n;

	for (;;) {
		if (end && len >= need)
			break;
		if (len + 1 >= cap)
			return -1;
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			need = (size_t)(end - buf) + 4;
			cl = strcasestr(buf, "\r\nContent-Length:");
			if (cl && cl < end)
				need += strtoul(cl + 17, NULL, 10);
		}
	}
	return (int)len;
}

static void send_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void send_body(int fd, const struct step *st, size_t len)
{
	char fill[4096];
	size_t n;

	if (st->body) {
		send_all(fd, st->body, len);
		return;
	}
	memset(fill, 'x', sizeof(fill));
	for (; len; len -= n) {
		n = len < sizeof(fill) ? len : sizeof(fill);
		send_all(fd, fill, n);
	}
}

/* Act out one step; 0 to keep the connection, -1 to close it. */
static int play(int fd, const struct step *st)
{
	char head[8192]; /* room for an answer with many header fields */
	size_t blen = st->body_len ? st->body_len : (st->body ? strlen(st->body) : 0);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int delay;

	switch (st->kind) {
	case STEP_CLOSE:
		return -1;
	case STEP_STALL:
		poll(&pfd, 1, 10000);
		return -1;
	case STEP_SHORT:
		snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
			 blen + 100);
		send_all(fd, head, strlen(head));
		send_body(fd, st, blen);
		return -1;
	case STEP_ANSWER:
		break;
	}
	pthread_mutex_lock(&srv.lock);
	delay = srv.delay_ms;
	pthread_mutex_unlock(&srv.lock);
	if (delay)
		poll(NULL, 0, delay);
	pthread_mutex_lock(&srv.lock);
	srv.answered++;
	pthread_mutex_unlock(&srv.lock);
	snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", st->status,
		 blen, st->headers ? st->headers : "");
	send_all(fd, head, strlen(head));
	send_body(fd, st, blen);
	return 0;
}

static void *conn_main(void *arg)
{
	int fd = (int)(long)arg;
	char buf[8192];
	struct step st;
	int i;

	while (read_request(fd, buf, sizeof(buf)) >= 0) {
		pthread_mutex_lock(&srv.lock);
		i = srv.nreq < srv.nsteps ? srv.nreq : srv.nsteps - 1;
		st = srv.steps[i];
		srv.nreq++;
		if (++srv.inflight > srv.inflight_max)
			srv.inflight_max = srv.inflight;
		snprintf(srv.last_req, sizeof(srv.last_req), "%s", buf);
		pthread_mutex_unlock(&srv.lock);
		i = play(fd, &st);
		pthread_mutex_lock(&srv.lock);
		srv.inflight--;
		pthread_mutex_unlock(&srv.lock);
		if (i < 0)
			break;
	}
	/* The fd is closed by server_stop, so it cannot be reused under its feet. */
	shutdown(fd, SHUT_RDWR);
	return NULL;
}

static void *accept_main(void *arg)
{
	int fd, ok, one = 1;

	(void)arg;
	while ((fd = accept(srv.fd, NULL, NULL)) >= 0) {
		/* Head and body leave in two writes: no 40 ms wait for a delayed ACK between. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_mutex_lock(&srv.lock);
		ok = srv.nconns < MAX_CONNS && !pthread_create(&srv.conns[srv.nconns].thread, NULL,
							       conn_main, (void *)(long)fd);
		if (ok)
			srv.conns[srv.nconns++].fd = fd;
		pthread_mutex_unlock(&srv.lock);
		if (!ok)
			close(fd);
	}
	return NULL;
}

static int server_start(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);

	(void)state;
	memset(&srv, 0, sizeof(srv));
	pthread_mutex_init(&srv.lock, NULL);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(srv.fd, 64) < 0 || getsockname(srv.fd, (struct sockaddr *)&a, &alen) < 0)
		return -1;
	srv.port = ntohs(a.sin_port);
	return pthread_create(&srv.thread, NULL, accept_main, NULL);
}

static int server_stop(void **state)
{
	int i;

	(void)state;
	/* Wakes accept() and every connection thread, even one whose client leaked. */
	shutdown(srv.fd, SHUT_RDWR);
	pthread_join(srv.thread, NULL);
	close(srv.fd);
	for (i = 0; i < srv.nconns; i++) {
		shutdown(srv.conns[i].fd, SHUT_RDWR);
		pthread_join(srv.conns[i].thread, NULL);
		close(srv.conns[i].fd);
	}
	pthread_mutex_destroy(&srv.lock);
	return 0;
}

static struct http *client(long timeout_s, int retries, size_t max_body)
{
	struct http_opts o = {.timeout_s = timeout_s,
			      .retries = retries,
			      .max_body = max_body,
			      .user_agent = "codesrcfs-test/1"};
	struct http *h = http_new(&o);

	assert_non_null(h);
	return h;
}

static void request(struct http_request *req, const char *method, const char *path)
{
	char base[64];

	snprintf(base, sizeof(base), "http://127.0.0.1:%d", srv.port);
	assert_int_equal(http_req_init(req, method, base, path), 0);
	req->label = "test";
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One GET of /x against the script; returns http_perform's result. */
static int get(struct http *h, struct http_response *resp)
{
	struct http_request req;
	int rc;

	request(&req, "GET", "/x");
	rc = http_perform(h, &req, resp);
	http_req_free(&req);
	return rc;
}

/* One GET of /x against the script s (n steps), answered (0) with status after nreq
 * requests, with body when it is not NULL. */
static void expect_get(struct http *h, int n, const struct step *s, int status, const char *body,
		       int nreq)
{
	struct http_response resp;

	server_script(n, s);
	assert_int_equal(get(h, &resp), 0);
	assert_int_equal(resp.status, status);
	if (body)
		assert_string_equal(resp.body, body);
	assert_int_equal(server_nreq(), nreq);
	http_resp_free(&resp);
}

static void test_answer_and_headers(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200,
					 "X-Foo:   bar baz  \r\nCONTENT-Type: application/json\r\n",
					 "{\"a\":1}", 0}};
	struct http *h = client(2, 2, 0);
	struct http_request req;
	struct http_response resp;
	char last[8192];

	(void)state;
	server_script(1, s);
	request(&req, "GET", "/v1/list");
	assert_int_equal(http_req_query(&req, "b", "x y"), 0);
	assert_int_equal(http_req_query(&req, "a", "1"), 0);
	assert_int_equal(http_req_header(&req, "X-Custom", "secret-value"), 0);
	assert_int_equal(http_perform(h, &req, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.len, 7);
	assert_string_equal(resp.body, "{\"a\":1}");
	assert_string_equal(http_resp_header(&resp, "x-foo"), "bar baz");
	assert_string_equal(http_resp_header(&resp, "content-type"), "application/json");
	assert_int_equal(server_nreq(), 1);
	server_last(last, sizeof(last));
	assert_non_null(strstr(last, "GET /v1/list?a=1&b=x%20y HTTP/1.1\r\n"));
	assert_non_null(strstr(last, "\r\nX-Custom: secret-value\r\n"));
	assert_non_null(strstr(last, "\r\nUser-Agent: codesrcfs-test/1\r\n"));
	assert_non_null(strstr(last, "\r\nAccept-Encoding: "));
	assert_null(strcasestr(last, "Expect:"));
	http_resp_free(&resp);
	http_req_free(&req);
	http_free(h);
}

static void test_empty_body_not_null(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 204, NULL, NULL, 0}};
	struct http *h = client(2, 0, 0);
	struct http_response resp;

	(void)state;
	server_script(1, s);
	assert_int_equal(get(h, &resp), 0);
	assert_int_equal(resp.status, 204);
	assert_non_null(resp.body);
	assert_int_equal(resp.len, 0);
	http_resp_free(&resp);
	http_free(h);
}

static void test_503_then_200(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 503, NULL, "busy", 0},
					{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 2, 0);

	(void)state;
	expect_get(h, 2, s, 200, "ok", 2);
	http_free(h);
}

static void test_5xx_exhausted_returns_answer(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 500, "X-N: last\r\n", "err", 0}};
	struct http *h = client(2, 2, 0);
	struct http_response resp;

	(void)state;
	server_script(1, s);
	assert_int_equal(get(h, &resp), 0);
	assert_int_equal(resp.status, 500);
	assert_string_equal(resp.body, "err");
	assert_string_equal(http_resp_header(&resp, "x-n"), "last");
	assert_int_equal(server_nreq(), 3);
	http_resp_free(&resp);
	http_free(h);
}

static void test_429_retry_after_1(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 429, "Retry-After: 1\r\n", "slow", 0},
					{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 2, 0);
	long t0 = now_ms(), dt;

	(void)state;
	expect_get(h, 2, s, 200, NULL, 2);
	dt = now_ms() - t0;
	assert_true(dt >= 950);
	assert_true(dt < 3000);
	http_free(h);
}

static void test_429_retry_after_60_stops(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 429, "Retry-After: 60\r\n", "slow", 0},
					{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 3, 0);
	long t0 = now_ms();

	(void)state;
	expect_get(h, 2, s, 429, NULL, 1);
	assert_true(now_ms() - t0 < 1000);
	http_free(h);
}

/* Leading zeros do not make a Retry-After long: "0000000000001" is one second. */
static void test_retry_after_leading_zeros(void **state)
{
	static const struct step s[] = {
	    {STEP_ANSWER, 429, "Retry-After: 0000000000001\r\n", "slow", 0},
	    {STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 2, 0);

	(void)state;
	expect_get(h, 2, s, 200, NULL, 2);
	http_free(h);
}

/* An answer with more header fields than a response holds fails whole: keeping the first
 * ones would silently lose a paging header that came after them. */
static void test_too_many_header_fields_fail_the_answer(void **state)
{
	static char many[HTTP_MAX_RESP_FIELDS * 24 + 64];
	static struct step s[] = {{STEP_ANSWER, 200, many, "[]", 0}};
	struct http *h = client(2, 0, 0);
	struct http_response resp;
	size_t len = 0;

	(void)state;
	for (int i = 0; i < HTTP_MAX_RESP_FIELDS; i++)
		len += (size_t)snprintf(many + len, sizeof(many) - len, "X-Junk-%d: v\r\n", i);
	snprintf(many + len, sizeof(many) - len, "X-Next-Page: 2\r\n");
	server_script(1, s);
	assert_int_equal(get(h, &resp), -EIO);
	assert_non_null(strstr(http_last_error(), "header fields"));
	http_resp_free(&resp);
	http_free(h);
}

static void test_retry_after_date(void **state)
{
	static const struct step s[] = {
	    {STEP_ANSWER, 503, "Retry-After: Fri, 31 Dec 2100 23:59:59 GMT\r\n", "", 0},
	    {STEP_ANSWER, 200, NULL, "ok", 0}};
	static const struct step past[] = {
	    {STEP_ANSWER, 503, "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n", "", 0},
	    {STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 3, 0);

	(void)state;
	expect_get(h, 2, s, 503, NULL, 1);
	/* A date already past means "now": retried after the usual backoff. */
	expect_get(h, 2, past, 200, NULL, 2);
	http_free(h);
}

static void test_4xx_not_retried(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 400, NULL, "bad", 0},
					{STEP_ANSWER, 200, NULL, "ok", 0}};
	static const struct step s404[] = {{STEP_ANSWER, 404, NULL, "gone", 0},
					   {STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 3, 0);

	(void)state;
	expect_get(h, 2, s, 400, NULL, 1);
	expect_get(h, 2, s404, 404, NULL, 1);
	http_free(h);
}

static void test_closed_then_200(void **state)
{
	static const struct step s[] = {{STEP_CLOSE, 0, NULL, NULL, 0},
					{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 2, 0);

	(void)state;
	expect_get(h, 2, s, 200, NULL, 2);
	http_free(h);
}

static void test_short_body_then_200(void **state)
{
	static const struct step s[] = {{STEP_SHORT, 0, NULL, "partial", 0},
					{STEP_ANSWER, 200, NULL, "whole", 0}};
	struct http *h = client(2, 2, 0);

	(void)state;
	expect_get(h, 2, s, 200, "whole", 2);
	http_free(h);
}

static void test_stall_times_out_bounded(void **state)
{
	static const struct step s[] = {{STEP_STALL, 0, NULL, NULL, 0}};
	struct http *h = client(1, 1, 0);
	struct http_response resp;
	long t0 = now_ms(), dt;

	(void)state;
	server_script(1, s);
	assert_int_equal(get(h, &resp), -ETIMEDOUT);
	dt = now_ms() - t0;
	assert_int_equal(resp.status, 0);
	assert_null(resp.body);
	assert_int_equal(server_nreq(), 2);
	/* timeout × (retries + 1) + 5 s × retries */
	assert_true(dt >= 1900);
	assert_true(dt <= 1000 * 2 + 5000 * 1);
	http_free(h);
}

static void test_network_failure_after_answer(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 503, NULL, "busy", 0},
					{STEP_CLOSE, 0, NULL, NULL, 0}};
	struct http *h = client(2, 1, 0);
	struct http_response resp;

	(void)state;
	server_script(2, s);
	/* The 503 said more than the hang-up that followed it. */
	assert_int_equal(get(h, &resp), 0);
	assert_int_equal(resp.status, 503);
	assert_string_equal(resp.body, "busy");
	/* libcurl itself resends once when a reused connection dies unanswered. */
	assert_in_range(server_nreq(), 2, 3);
	http_resp_free(&resp);
	http_free(h);
}

/* A port on 127.0.0.1 that was free a moment ago: nothing listens there. */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	int fd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void test_connect_refused(void **state)
{
	struct http *h = client(1, 1, 0);
	struct http_request req;
	struct http_response resp;
	char base[64];

	(void)state;
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", free_port());
	assert_int_equal(http_req_init(&req, "GET", base, "/"), 0);
	assert_int_equal(http_perform(h, &req, &resp), -EIO);
	assert_int_equal(resp.status, 0);
	http_req_free(&req);
	http_free(h);
}

static void test_too_large_body(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, NULL, 100000},
					{STEP_ANSWER, 200, NULL, "ok", 0}};
	static const struct step exact[] = {{STEP_ANSWER, 200, NULL, NULL, 1000}};
	struct http *h = client(2, 3, 1000);
	struct http_response resp;

	(void)state;
	server_script(2, s);
	assert_int_equal(get(h, &resp), -EFBIG);
	assert_int_equal(server_nreq(), 1);
	assert_null(resp.body);
	http_free(h);
	/* Exactly at the cap is fine. */
	h = client(2, 0, 1000);
	server_script(1, exact);
	assert_int_equal(get(h, &resp), 0);
	assert_int_equal(resp.len, 1000);
	http_resp_free(&resp);
	http_free(h);
}

static int sign_count(struct http_request *req, void *ctx)
{
	int *n = ctx;
	char v[16];

	snprintf(v, sizeof(v), "%d", ++*n);
	return http_req_header(req, "X-Sig", v);
}

static void test_sign_each_attempt(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 503, NULL, "", 0},
					{STEP_ANSWER, 502, NULL, "", 0},
					{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 3, 0);
	struct http_request req;
	struct http_response resp;
	char last[8192];
	int n = 0;

	(void)state;
	server_script(3, s);
	request(&req, "GET", "/x");
	req.sign = sign_count;
	req.sign_ctx = &n;
	assert_int_equal(http_perform(h, &req, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(n, 3);
	assert_int_equal(server_nreq(), 3);
	server_last(last, sizeof(last));
	assert_non_null(strstr(last, "\r\nX-Sig: 3\r\n"));
	http_resp_free(&resp);
	http_req_free(&req);
	http_free(h);
}

static int sign_fail(struct http_request *req, void *ctx)
{
	(void)req;
	(void)ctx;
	return -EINVAL;
}

static void test_sign_failure(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 3, 0);
	struct http_request req;
	struct http_response resp;

	(void)state;
	server_script(1, s);
	request(&req, "GET", "/x");
	req.sign = sign_fail;
	assert_int_equal(http_perform(h, &req, &resp), -EINVAL);
	assert_int_equal(server_nreq(), 0);
	http_req_free(&req);
	http_free(h);
}

static enum http_verdict throttled(const struct http_response *resp, void *ctx)
{
	(void)ctx;
	return resp->body && strstr(resp->body, "Throttling") ? HTTP_RETRY : HTTP_DONE;
}

static void test_classify_retries_400(void **state)
{
	static const struct step s[] = {
	    {STEP_ANSWER, 400, NULL, "{\"Code\":\"Throttling.User\"}", 0},
	    {STEP_ANSWER, 200, NULL, "ok", 0}};
	static const struct step s503[] = {{STEP_ANSWER, 503, NULL, "", 0},
					   {STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 2, 0);
	struct http_request req;
	struct http_response resp;

	(void)state;
	server_script(2, s);
	request(&req, "GET", "/x");
	req.classify = throttled;
	assert_int_equal(http_perform(h, &req, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(server_nreq(), 2);
	http_resp_free(&resp);
	/* The classifier decides alone: it may also decline a 503. */
	server_script(2, s503);
	assert_int_equal(http_perform(h, &req, &resp), 0);
	assert_int_equal(resp.status, 503);
	assert_int_equal(server_nreq(), 1);
	http_resp_free(&resp);
	http_req_free(&req);
	http_free(h);
}

static void test_post_body(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, "ok", 0}};
	static const char body[] = "{\"k\":\"v\0w\"}";
	struct http *h = client(2, 0, 0);
	struct http_request req;
	struct http_response resp;
	char last[8192];

	(void)state;
	server_script(1, s);
	request(&req, "POST", "/p");
	assert_int_equal(http_req_header(&req, "Content-Type", "application/json"), 0);
	assert_int_equal(http_req_body(&req, body, sizeof(body) - 1), 0);
	assert_int_equal(http_perform(h, &req, &resp), 0);
	server_last(last, sizeof(last));
	assert_non_null(strstr(last, "POST /p HTTP/1.1\r\n"));
	assert_non_null(strstr(last, "\r\nContent-Length: 11\r\n"));
	assert_non_null(strstr(last, "\r\n\r\n{\"k\":\"v"));
	assert_null(strcasestr(last, "Expect:"));
	http_resp_free(&resp);
	http_req_free(&req);
	/* Without a Content-Type of its own, none is made up (it would not be signed). */
	request(&req, "POST", "/p");
	assert_int_equal(http_perform(h, &req, &resp), 0);
	server_last(last, sizeof(last));
	assert_non_null(strstr(last, "\r\nContent-Length: 0\r\n"));
	assert_null(strcasestr(last, "Content-Type"));
	http_resp_free(&resp);
	http_req_free(&req);
	http_free(h);
}

#define NTHREADS   8
#define PER_THREAD 20

static void *hammer(void *arg)
{
	struct http *h = arg;
	struct http_response resp;
	long fails = 0;
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		if (get(h, &resp) != 0 || resp.status != 200 || strcmp(resp.body, "ok"))
			fails++;
		http_resp_free(&resp);
	}
	return (void *)fails;
}

/* NTHREADS threads of hammer on h, each of which must have had every answer right. */
static void hammer_all(struct http *h)
{
	pthread_t t[NTHREADS];
	void *fails;
	int i;

	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, h), 0);
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], &fails);
		assert_int_equal((long)fails, 0);
	}
}

static void test_concurrent(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 1, 0);

	(void)state;
	server_script(1, s);
	hammer_all(h);
	assert_int_equal(server_nreq(), NTHREADS * PER_THREAD);
	http_free(h);
}

static void test_bad_scheme_not_retried(void **state)
{
	struct http *h = client(1, 3, 0);
	struct http_request req;
	struct http_response resp;
	long t0 = now_ms();

	(void)state;
	/* http_req_init refuses such a base; the transport must refuse it as well. */
	assert_int_equal(http_req_init(&req, "GET", "http://127.0.0.1:1", "/"), 0);
	free(req.base);
	req.base = strdup("ftp://127.0.0.1:1");
	assert_int_equal(http_perform(h, &req, &resp), -EIO);
	assert_true(now_ms() - t0 < 200);
	http_req_free(&req);
	http_free(h);
}

/* ---- a server that accepts and never answers -------------------------------------------- */

struct stalled {
	int fd;
	int port;
	pthread_t thread;
	pthread_mutex_t lock;
	int conns[MAX_CONNS];
	int nconns;
};

static void *stalled_main(void *arg)
{
	struct stalled *st = arg;
	int fd;

	while ((fd = accept(st->fd, NULL, NULL)) >= 0) {
		pthread_mutex_lock(&st->lock);
		if (st->nconns < MAX_CONNS)
			st->conns[st->nconns++] = fd;
		else
			close(fd);
		pthread_mutex_unlock(&st->lock);
	}
	return NULL;
}

static void stalled_start(struct stalled *st)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);

	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->lock, NULL);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	st->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(st->fd >= 0);
	assert_int_equal(bind(st->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(st->fd, 64), 0);
	assert_int_equal(getsockname(st->fd, (struct sockaddr *)&a, &alen), 0);
	st->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&st->thread, NULL, stalled_main, st), 0);
}

static int stalled_nconns(struct stalled *st)
{
	int n;

	pthread_mutex_lock(&st->lock);
	n = st->nconns;
	pthread_mutex_unlock(&st->lock);
	return n;
}

static void stalled_stop(struct stalled *st)
{
	int i;

	shutdown(st->fd, SHUT_RDWR);
	pthread_join(st->thread, NULL);
	close(st->fd);
	for (i = 0; i < st->nconns; i++)
		close(st->conns[i]);
	pthread_mutex_destroy(&st->lock);
}

static void stalled_request(struct http_request *req, const struct stalled *st)
{
	char base[64];

	snprintf(base, sizeof(base), "http://127.0.0.1:%d", st->port);
	assert_int_equal(http_req_init(req, "GET", base, "/never"), 0);
	req->label = "stalled";
}

/* Says "cancelled" from a set time on, and remembers when it was first asked after it. */
struct canceller {
	long at_ms;
	long polls;
};

static int cancel_after(void *ctx)
{
	struct canceller *c = ctx;

	c->polls++;
	return now_ms() >= c->at_ms;
}

static void test_cancel_while_stalled(void **state)
{
	struct http *h = client(30, 3, 0);
	struct canceller c = {.at_ms = now_ms() + 300};
	struct http_request req;
	struct http_response resp;
	struct stalled st;

	(void)state;
	stalled_start(&st);
	stalled_request(&req, &st);
	req.cancelled = cancel_after;
	req.cancel_ctx = &c;
	assert_int_equal(http_perform(h, &req, &resp), -EINTR);
	/* Out within 0.1 s of saying so, and asked every 50 ms or sooner (one wake-up late
	 * on a busy machine allowed for). */
	assert_true(now_ms() - c.at_ms < 100);
	assert_true(c.polls >= 300 / 50 - 1);
	assert_int_equal(resp.status, 0);
	assert_null(resp.body);
	assert_non_null(strstr(http_last_error(), "interrupted"));
	assert_int_equal(stalled_nconns(&st), 1);
	http_req_free(&req);
	http_free(h);
	stalled_stop(&st);
}

static void test_cancel_during_backoff(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 503, "Retry-After: 4\r\n", "busy", 0}};
	struct http *h = client(30, 3, 0);
	struct canceller c = {.at_ms = now_ms() + 300};
	struct http_request req;
	struct http_response resp;

	(void)state;
	server_script(1, s);
	request(&req, "GET", "/x");
	req.cancelled = cancel_after;
	req.cancel_ctx = &c;
	assert_int_equal(http_perform(h, &req, &resp), -EINTR);
	assert_true(now_ms() - c.at_ms < 100);
	assert_int_equal(server_nreq(), 1);
	assert_null(resp.body);
	http_req_free(&req);
	http_free(h);
}

static int thread_cancel_now(void *ctx)
{
	(void)ctx;
	return 1;
}

static void test_thread_default_cancel(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 0, 0);
	struct http_response resp;

	(void)state;
	server_script(1, s);
	http_thread_cancel(thread_cancel_now, NULL);
	assert_int_equal(get(h, &resp), -EINTR);
	assert_int_equal(server_nreq(), 0);
	http_thread_cancel(NULL, NULL);
	assert_int_equal(get(h, &resp), 0);
	assert_int_equal(resp.status, 200);
	http_resp_free(&resp);
	http_free(h);
}

struct waiter {
	struct http *h;
	struct stalled *st;
	int rc;
	long done_ms;
};

static void *wait_stalled(void *arg)
{
	struct waiter *w = arg;
	struct http_request req;
	struct http_response resp;

	stalled_request(&req, w->st);
	w->rc = http_perform(w->h, &req, &resp);
	w->done_ms = now_ms();
	http_req_free(&req);
	return NULL;
}

static void *get_thread(void *arg)
{
	struct waiter *w = arg;
	struct http_response resp;

	w->rc = get(w->h, &resp);
	w->done_ms = now_ms();
	http_resp_free(&resp);
	return NULL;
}

static void test_shutdown_cancels_everything(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 503, "Retry-After: 4\r\n", "busy", 0}};
	struct http *h = client(30, 3, 0);
	struct waiter w[4];
	struct http_response resp;
	struct stalled st;
	pthread_t t[4];
	long at;
	int i;

	(void)state;
	stalled_start(&st);
	server_script(1, s);
	for (i = 0; i < 3; i++) {
		w[i] = (struct waiter){.h = h, .st = &st};
		assert_int_equal(pthread_create(&t[i], NULL, wait_stalled, &w[i]), 0);
	}
	/* The fourth sleeps in a backoff after a 503. */
	w[3] = (struct waiter){.h = h};
	assert_int_equal(pthread_create(&t[3], NULL, get_thread, &w[3]), 0);
	while (stalled_nconns(&st) < 3 || server_nreq() < 1)
		usleep(10000);
	usleep(100000);
	at = now_ms();
	http_shutdown(h);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].rc, -ECANCELED);
		assert_true(w[i].done_ms - at < 100);
	}
	/* Later requests do not even start. */
	assert_int_equal(get(h, &resp), -ECANCELED);
	assert_int_equal(server_nreq(), 1);
	assert_non_null(strstr(http_last_error(), "shutting down"));
	http_free(h);
	stalled_stop(&st);
}

/* ---- connections, proxies, error text ---------------------------------------------------- */

static int server_nconns(void)
{
	int n;

	pthread_mutex_lock(&srv.lock);
	n = srv.nconns;
	pthread_mutex_unlock(&srv.lock);
	return n;
}

/* A thread's requests on shared slots: GETs of /x, each result and when it came. */
struct slotted {
	struct http *h;
	struct http_slots *slots;
	int (*cancelled)(void *ctx);
	int rc;
	long status;
	pthread_t th;
};

static void *slotted_get(void *arg)
{
	struct slotted *w = arg;
	struct http_response resp;

	http_thread_slots(w->slots);
	http_thread_cancel(w->cancelled, NULL);
	w->rc = get(w->h, &resp);
	w->status = resp.status;
	http_resp_free(&resp);
	return NULL;
}

/* n threads, each one GET on slots; their results once all are done. */
static void slotted_run(struct slotted *w, int n, struct http *h, struct http_slots *slots)
{
	for (int i = 0; i < n; i++) {
		w[i].h = h;
		w[i].slots = slots;
		assert_int_equal(pthread_create(&w[i].th, NULL, slotted_get, &w[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(w[i].th, NULL);
}

static void test_slots_bound_the_requests_on_the_wire(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(5, 0, 0);
	struct slotted w[6] = {0};
	struct http_slots slots;

	(void)state;
	server_script(1, s);
	server_slow(100);
	http_slots_init(&slots, 2);
	slotted_run(w, 6, h, &slots);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(w[i].rc, 0);
		assert_int_equal(w[i].status, 200);
	}
	assert_int_equal(server_nreq(), 6);
	assert_int_equal(server_count(&srv.inflight_max), 2);
	assert_int_equal(slots.free, 2);
	http_free(h);
}

/* The time-out runs from when a request is sent: three requests of 800 ms on one slot,
 * with a time-out of 1 s, all answered, the last after some 2.4 s. */
static void test_a_request_waiting_for_a_slot_does_not_time_out(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(1, 0, 0);
	struct slotted w[3] = {0};
	struct http_slots slots;

	(void)state;
	server_script(1, s);
	server_slow(800);
	http_slots_init(&slots, 1);
	slotted_run(w, 3, h, &slots);
	for (int i = 0; i < 3; i++)
		assert_int_equal(w[i].rc, 0);
	assert_int_equal(server_nreq(), 3);
	assert_int_equal(server_count(&srv.inflight_max), 1);
	http_free(h);
}

static int unwanted_once_answered(void *ctx)
{
	(void)ctx;
	return server_count(&srv.answered) > 0;
}

/* A request waiting for a slot is asked whether it is still wanted when the slot comes
 * free, before it is sent: a page past the end of a listing is never asked for. */
static void test_a_request_not_wanted_when_its_slot_frees_is_never_sent(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(5, 0, 0);
	struct slotted first = {0}, second = {.cancelled = unwanted_once_answered};
	struct http_slots slots;

	(void)state;
	server_script(1, s);
	server_slow(300);
	http_slots_init(&slots, 1);
	first.h = second.h = h;
	first.slots = second.slots = &slots;
	assert_int_equal(pthread_create(&first.th, NULL, slotted_get, &first), 0);
	while (server_nreq() < 1)
		poll(NULL, 0, 5);
	assert_int_equal(pthread_create(&second.th, NULL, slotted_get, &second), 0);
	pthread_join(first.th, NULL);
	pthread_join(second.th, NULL);
	assert_int_equal(first.rc, 0);
	assert_int_equal(second.rc, -EINTR);
	assert_int_equal(server_nreq(), 1);
	assert_int_equal(slots.free, 1);
	http_free(h);
}

static void test_connection_kept_across_requests_and_pause(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http *h = client(2, 0, 0);
	struct http_response resp;
	int before = server_nconns(), i;

	(void)state;
	server_script(1, s);
	for (i = 0; i < 5; i++) {
		assert_int_equal(get(h, &resp), 0);
		http_resp_free(&resp);
	}
	/* As before daemonising: the engine thread goes, the connection stays. */
	http_pause(h);
	assert_int_equal(get(h, &resp), 0);
	assert_string_equal(resp.body, "ok");
	http_resp_free(&resp);
	assert_int_equal(server_nconns() - before, 1);
	http_free(h);
}

static void test_connections_capped_per_host(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, "ok", 0}};
	struct http_opts o = {.timeout_s = 5, .retries = 1, .max_host_conns = 2};
	struct http *h = http_new(&o);
	int before = server_nconns();

	(void)state;
	assert_non_null(h);
	server_script(1, s);
	hammer_all(h);
	assert_int_equal(server_nreq(), NTHREADS * PER_THREAD);
	assert_in_range(server_nconns() - before, 1, 2);
	http_free(h);
}

static void test_loopback_http_never_proxied(void **state)
{
	static const struct step s[] = {{STEP_ANSWER, 200, NULL, "direct", 0}};
	struct http *h = client(5, 0, 0);
	struct http_response resp;
	struct stalled proxy;
	char url[64];

	(void)state;
	stalled_start(&proxy);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", proxy.port);
	setenv("http_proxy", url, 1);
	setenv("ALL_PROXY", url, 1);
	server_script(1, s);
	assert_int_equal(get(h, &resp), 0);
	unsetenv("http_proxy");
	unsetenv("ALL_PROXY");
	assert_string_equal(resp.body, "direct");
	assert_int_equal(stalled_nconns(&proxy), 0);
	http_resp_free(&resp);
	http_free(h);
	stalled_stop(&proxy);
}

static void test_unresolved_name_not_retried(void **state)
{
	struct http *h = client(5, 3, 0);
	struct http_request req;
	struct http_response resp;
	int n = 0;

	(void)state;
	/* A label longer than 63 bytes fails inside the resolver: no query leaves. */
	assert_int_equal(
	    http_req_init(&req, "GET",
			  "http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			  "aaaaaaaaaaaaaaaaaaaa.invalid",
			  "/"),
	    0);
	req.sign = sign_count;
	req.sign_ctx = &n;
	assert_int_equal(http_perform(h, &req, &resp), -EIO);
	assert_int_equal(n, 1);
	assert_non_null(strstr(http_last_error(), ".invalid: name not resolved"));
	http_req_free(&req);
	http_free(h);
}

static void test_refused_names_host_and_reason(void **state)
{
	struct http *h = client(1, 1, 0);
	struct http_request req;
	struct http_response resp;
	char base[64], want[64];
	int port = free_port(), n = 0;

	(void)state;
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
	assert_int_equal(http_req_init(&req, "GET", base, "/"), 0);
	req.sign = sign_count;
	req.sign_ctx = &n;
	assert_int_equal(http_perform(h, &req, &resp), -EIO);
	assert_int_equal(n, 2); /* worth a retry: the server may be restarting */
	snprintf(want, sizeof(want), "127.0.0.1:%d: connection refused", port);
	assert_non_null(strstr(http_last_error(), want));
	/* An answer clears it. */
	http_req_free(&req);
	server_script(1, (const struct step[]){{STEP_ANSWER, 200, NULL, "ok", 0}});
	assert_int_equal(get(h, &resp), 0);
	assert_string_equal(http_last_error(), "");
	http_resp_free(&resp);
	http_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_answer_and_headers),
	    cmocka_unit_test(test_empty_body_not_null),
	    cmocka_unit_test(test_503_then_200),
	    cmocka_unit_test(test_5xx_exhausted_returns_answer),
	    cmocka_unit_test(test_429_retry_after_1),
	    cmocka_unit_test(test_429_retry_after_60_stops),
	    cmocka_unit_test(test_retry_after_date),
	    cmocka_unit_test(test_retry_after_leading_zeros),
	    cmocka_unit_test(test_too_many_header_fields_fail_the_answer),
	    cmocka_unit_test(test_4xx_not_retried),
	    cmocka_unit_test(test_closed_then_200),
	    cmocka_unit_test(test_short_body_then_200),
	    cmocka_unit_test(test_stall_times_out_bounded),
	    cmocka_unit_test(test_network_failure_after_answer),
	    cmocka_unit_test(test_connect_refused),
	    cmocka_unit_test(test_too_large_body),
	    cmocka_unit_test(test_sign_each_attempt),
	    cmocka_unit_test(test_sign_failure),
	    cmocka_unit_test(test_classify_retries_400),
	    cmocka_unit_test(test_post_body),
	    cmocka_unit_test(test_concurrent),
	    cmocka_unit_test(test_bad_scheme_not_retried),
	    cmocka_unit_test(test_cancel_while_stalled),
	    cmocka_unit_test(test_cancel_during_backoff),
	    cmocka_unit_test(test_thread_default_cancel),
	    cmocka_unit_test(test_shutdown_cancels_everything),
	    cmocka_unit_test(test_slots_bound_the_requests_on_the_wire),
	    cmocka_unit_test(test_a_request_waiting_for_a_slot_does_not_time_out),
	    cmocka_unit_test(test_a_request_not_wanted_when_its_slot_frees_is_never_sent),
	    cmocka_unit_test(test_connection_kept_across_requests_and_pause),
	    cmocka_unit_test(test_connections_capped_per_host),
	    cmocka_unit_test(test_loopback_http_never_proxied),
	    cmocka_unit_test(test_unresolved_name_not_retried),
	    cmocka_unit_test(test_refused_names_host_and_reason),
	};

	return cmocka_run_group_tests(tests, server_start, server_stop);
}
