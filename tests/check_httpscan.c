/*
 * check_httpscan.c — the HTTP front door's pure scanner (httpscan.c):
 * framing, the head's checks, the body's model, the heads and errors it
 * writes; and the "http" and "aliases" keys of the config.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "poold.h"
#include "http.h"
#include "testlib.h"

#define MAX_BODY	1024

static struct http_msg	 msg;

static void
msg_setup(void)
{
	http_msg_init(&msg, false, HTTP_HEAD_MAX, MAX_BODY);
}

static void
msg_teardown(void)
{
	http_msg_free(&msg);
}

/* Feeds text at once; returns the result, *used what it took. */
static enum http_scan
feed(struct http_msg *m, const char *text, size_t *used)
{
	return http_msg_feed(m, text, strlen(text), used);
}

static bool
span_is(const struct http_span *s, const char *text)
{
	return s->len == strlen(text) && memcmp(s->p, text, s->len) == 0;
}

/* --- framing --- */

START_TEST(test_head_then_body)
{
	const char *req = "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: localhost:8080\r\nContent-Length: 16\r\n"
	    "Expect: 100-continue\r\n\r\n{\"model\":\"tiny\"}";
	size_t used, off;

	ck_assert_int_eq(feed(&msg, req, &used), HTTP_SCAN_HEAD);
	off = used;
	ck_assert(span_is(&msg.method, "POST"));
	ck_assert(span_is(&msg.url, "/v1/chat/completions"));
	ck_assert(msg.has_length && msg.length == 16);
	ck_assert(msg.expect_continue && msg.keep_alive && !msg.done);
	ck_assert(span_is(http_msg_header(&msg, "HOST"), "localhost:8080"));
	ck_assert_int_eq(http_msg_feed(&msg, req + off, strlen(req) - off,
	    &used), HTTP_SCAN_DONE);
	ck_assert_uint_eq(used, 16);
	ck_assert_uint_eq(msg.body_len, 16);
	ck_assert_int_eq(memcmp(msg.body, "{\"model\":\"tiny\"}", 16), 0);
}
END_TEST

/* Byte by byte, and the next request's bytes are left alone. */
START_TEST(test_byte_by_byte_pipelined)
{
	const char *req = "POST /v1/embeddings HTTP/1.1\r\nHost: [::1]\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n4\r\n{\"mo\r\n"
	    "9\r\ndel\":\"x\"}\r\n0\r\n\r\nGET /health HTTP/1.1\r\n\r\n";
	size_t i = 0, used;
	enum http_scan r = HTTP_SCAN_MORE;

	while (i < strlen(req) && r != HTTP_SCAN_DONE) {
		r = http_msg_feed(&msg, req + i, 1, &used);
		ck_assert_int_ne(r, HTTP_SCAN_ERROR);
		if (r == HTTP_SCAN_HEAD)
			ck_assert(msg.chunked);
		/* The head is only taken once whole: a byte may wait. */
		if (used == 0 && r == HTTP_SCAN_HEAD)
			continue;
		i += used;
	}
	ck_assert_int_eq(r, HTTP_SCAN_DONE);
	ck_assert_uint_eq(msg.body_len, 13);
	ck_assert_int_eq(memcmp(msg.body, "{\"model\":\"x\"}", 13), 0);
	ck_assert_str_eq(req + i, "GET /health HTTP/1.1\r\n\r\n");
	/* The next message on the same connection. */
	http_msg_reset(&msg);
	ck_assert_int_eq(feed(&msg, req + i, &used), HTTP_SCAN_HEAD);
	ck_assert(msg.done);
	ck_assert(span_is(&msg.url, "/health"));
}
END_TEST

START_TEST(test_head_too_long)
{
	char *big = malloc(HTTP_HEAD_MAX + 64);
	size_t used;

	ck_assert_ptr_nonnull(big);
	memset(big, 'a', HTTP_HEAD_MAX + 63);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	big[HTTP_HEAD_MAX + 63] = '\0';
	ck_assert_int_eq(feed(&msg, big, &used), HTTP_SCAN_ERROR);
	ck_assert_int_eq(msg.err_status, 431);
	free(big);
}
END_TEST

START_TEST(test_too_many_headers)
{
	char head[HTTP_HEAD_MAX];
	size_t len = 0, used;
	int i;

	len += (size_t)snprintf(head, sizeof(head), "GET / HTTP/1.1\r\n");
	for (i = 0; i <= HTTP_HEADERS_MAX; i++)
		len += (size_t)snprintf(head + len, sizeof(head) - len,
		    "X-%d: y\r\n", i);
	snprintf(head + len, sizeof(head) - len, "\r\n");
	ck_assert_int_eq(feed(&msg, head, &used), HTTP_SCAN_ERROR);
	ck_assert_int_eq(msg.err_status, 431);
}
END_TEST

/* A chunked body is counted as it comes: 413 past max_body. */
START_TEST(test_chunked_too_large)
{
	char req[4096];
	size_t used, off;
	int n;

	n = snprintf(req, sizeof(req), "POST /v1/completions HTTP/1.1\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n%x\r\n", MAX_BODY + 1);
	memset(req + n, 'a', MAX_BODY + 1);
	req[n + MAX_BODY + 1] = '\0';
	ck_assert_int_eq(feed(&msg, req, &used), HTTP_SCAN_HEAD);
	off = used;
	ck_assert_int_eq(http_msg_feed(&msg, req + off, strlen(req) - off,
	    &used), HTTP_SCAN_ERROR);
	ck_assert_int_eq(msg.err_status, 413);
	ck_assert_str_eq(msg.err_code, "body_too_large");
}
END_TEST

START_TEST(test_malformed)
{
	size_t used;

	ck_assert_int_eq(feed(&msg, "GET / HTTP/9.9\r\n\r\n", &used),
	    HTTP_SCAN_ERROR);
	ck_assert_int_eq(msg.err_status, 400);
	http_msg_reset(&msg);
	ck_assert_int_eq(feed(&msg, "POST / HTTP/1.1\r\nContent-Length: 1\r\n"
	    "Content-Length: 2\r\n\r\n", &used), HTTP_SCAN_ERROR);
}
END_TEST

/* A response: framed, never kept; its end known by length, chunks or
 * the server's close. */
START_TEST(test_response_framing)
{
	struct http_msg r;
	const char *chunked = "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "6\r\ndata: \r\n0\r\n\r\n";
	size_t used, off;

	http_msg_init(&r, true, HTTP_RESP_HEAD_MAX, 0);
	ck_assert_int_eq(feed(&r, chunked, &used), HTTP_SCAN_HEAD);
	ck_assert(r.chunked);
	ck_assert_int_eq(r.status, 200);
	off = used;
	ck_assert_int_eq(http_msg_feed(&r, chunked + off, 5, &used),
	    HTTP_SCAN_MORE);
	off += used;
	/* Cut here, the response is not complete. */
	ck_assert(!http_msg_finish(&r));
	http_msg_reset(&r);
	ck_assert_int_eq(feed(&r, chunked, &used), HTTP_SCAN_HEAD);
	ck_assert_int_eq(feed(&r, chunked + used, &used), HTTP_SCAN_DONE);
	ck_assert_uint_eq(r.body_len, 0);
	http_msg_reset(&r);
	ck_assert_int_eq(feed(&r, "HTTP/1.1 200 OK\r\n\r\nabc", &used),
	    HTTP_SCAN_HEAD);
	ck_assert(!r.has_length && !r.chunked);
	ck_assert(http_msg_finish(&r));	/* ends with the connection */
	http_msg_free(&r);
}
END_TEST

/* --- checks --- */

static const struct http_policy open_policy = {
	NULL, 0, NULL, 0, MAX_BODY,
};

static void
check(const char *head, const struct http_policy *pol,
    struct http_verdict *v)
{
	size_t used;

	http_msg_reset(&msg);
	ck_assert_int_eq(feed(&msg, head, &used), HTTP_SCAN_HEAD);
	http_check_head(&msg, pol, v);
}

static const struct {
	const char	*host;
	bool		 local;
} hosts[] = {
	{ "localhost", true }, { "localhost:8080", true },
	{ "127.0.0.1", true }, { "127.0.0.1:1", true }, { "[::1]:65535", true },
	{ "LOCALHOST", true }, { "[::1]", true },
	{ "localhost.evil.com", false }, { "127.0.0.1.nip.io", false },
	{ "127.0.0.1:", false }, { "127.0.0.1:80x", false },
	{ "evil.com", false }, { "", false }, { "[::1]:1234567", false },
	{ "10.0.0.1", false },
};

START_TEST(test_host)
{
	ck_assert(http_host_is_local(hosts[_i].host,
	    strlen(hosts[_i].host)) == hosts[_i].local);
}
END_TEST

START_TEST(test_host_check)
{
	struct http_verdict v;

	check("GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n",
	    &open_policy, &v);
	ck_assert_int_eq(v.status, 403);
	check("GET /health HTTP/1.1\r\n\r\n", &open_policy, &v);
	ck_assert_int_eq(v.status, 403);
	check("GET /health HTTP/1.1\r\nHost: localhost:1\r\n\r\n",
	    &open_policy, &v);
	ck_assert_int_eq(v.status, 0);
	ck_assert_int_eq(v.route, HTTP_ROUTE_HEALTH);
}
END_TEST

START_TEST(test_token)
{
	struct http_policy pol = { "s3cret", 6, NULL, 0, MAX_BODY };
	struct http_verdict v;

	ck_assert(http_token_equal("s3cret", 6, "s3cret", 6));
	ck_assert(!http_token_equal("s3cres", 6, "s3cret", 6));
	ck_assert(!http_token_equal("s3cre", 5, "s3cret", 6));
	ck_assert(!http_token_equal("", 0, "s3cret", 6));
	ck_assert(!http_token_equal("s3cret!", 7, "s3cret", 6));
	/* With a token, any Host. */
	check("GET /v1/models HTTP/1.1\r\nHost: box.lan\r\n"
	    "Authorization: Bearer s3cret\r\n\r\n", &pol, &v);
	ck_assert_int_eq(v.status, 0);
	ck_assert_int_eq(v.route, HTTP_ROUTE_MODELS);
	check("GET /v1/models HTTP/1.1\r\nx-api-key: s3cret\r\n\r\n", &pol,
	    &v);
	ck_assert_int_eq(v.status, 0);
	check("GET /v1/models HTTP/1.1\r\nAuthorization: Bearer s3creT\r\n\r\n",
	    &pol, &v);
	ck_assert_int_eq(v.status, 401);
	ck_assert_str_eq(v.code, "invalid_api_key");
	check("GET /v1/models HTTP/1.1\r\nAuthorization: Basic s3cret\r\n\r\n",
	    &pol, &v);
	ck_assert_int_eq(v.status, 401);
	check("GET /v1/models HTTP/1.1\r\n\r\n", &pol, &v);
	ck_assert_int_eq(v.status, 401);
	/* /health tells nothing: no token needed. */
	check("GET /health HTTP/1.1\r\n\r\n", &pol, &v);
	ck_assert_int_eq(v.status, 0);
}
END_TEST

START_TEST(test_routes)
{
	struct http_verdict v;

	check("POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Length: 2\r\n\r\n", &open_policy, &v);
	ck_assert_int_eq(v.status, 0);
	ck_assert_int_eq(v.route, HTTP_ROUTE_PROXY);
	check("POST /v1/rerank HTTP/1.1\r\nHost: localhost\r\n\r\n",
	    &open_policy, &v);
	ck_assert_int_eq(v.route, HTTP_ROUTE_PROXY);
	check("POST /chat/completions HTTP/1.1\r\nHost: localhost\r\n\r\n",
	    &open_policy, &v);
	ck_assert_int_eq(v.status, 404);
	check("GET /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n\r\n",
	    &open_policy, &v);
	ck_assert_int_eq(v.status, 405);
	check("POST /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n",
	    &open_policy, &v);
	ck_assert_int_eq(v.status, 405);
	check("POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Length: 1025\r\n\r\n", &open_policy, &v);
	ck_assert_int_eq(v.status, 413);
	ck_assert_str_eq(v.code, "body_too_large");
}
END_TEST

START_TEST(test_cors)
{
	char *origins[] = { "http://app.example", NULL };
	struct http_policy pol = { NULL, 0, origins, 1, MAX_BODY };
	struct http_verdict v;

	check("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
	    "Origin: http://app.example\r\n\r\n", &pol, &v);
	ck_assert_int_eq(v.status, 0);
	ck_assert_int_eq(v.route, HTTP_ROUTE_PREFLIGHT);
	ck_assert(span_is(&v.origin, "http://app.example"));
	check("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
	    "Origin: http://evil.example\r\n\r\n", &pol, &v);
	ck_assert_int_eq(v.status, 403);
	check("GET /v1/models HTTP/1.1\r\nHost: localhost\r\n"
	    "Origin: http://evil.example\r\n\r\n", &pol, &v);
	ck_assert_int_eq(v.status, 0);
	ck_assert_ptr_null(v.origin.p);
}
END_TEST

/* --- the body's model --- */

static const struct {
	const char	*body;
	int		 status;	/* 0: found */
	const char	*model_or_code;
} bodies[] = {
	{ "{\"model\":\"tiny\",\"messages\":[]}", 0, "tiny" },
	{ "{\"messages\":[{\"model\":\"x\"}],\"model\":\"a.b+c\"}", 0,
	    "a.b+c" },
	{ "{\"messages\":[{\"model\":\"x\"}]}", 400, "model_missing" },
	{ "{\"model\":3}", 400, "model_missing" },
	{ "{\"model\":\"\"}", 400, "model_missing" },
	{ "[\"model\"]", 400, "model_missing" },
	{ "{\"model\":\"tiny\"", 400, "invalid_json" },
	{ "", 400, "invalid_json" },
	{ " {\"messages\":[{\"model\":\"inner\"}], \"model\" : \"ti\\u006ey\","
	    "\"n\":[1,-2.5e3,true,false,null,{}], \"s\":\"a\\\"b\"} ", 0,
	    "tiny" },
	{ "{\"model\":\"first\",\"model\":\"last\"}", 0, "last" },
	/* A key written with escapes is the same key to the server. */
	{ "{\"mod\\u0065l\":\"tiny\"}", 0, "tiny" },
	{ "{\"model\":\"a\",\"\\u006dodel\":\"b\"}", 0, "b" },
	{ "{\"mode\\u006c2\":\"tiny\"}", 400, "model_missing" },
	{ "[{\"model\":\"x\"}]", 400, "model_missing" },
	{ "{\"x\":{\"model\":\"x\"}}", 400, "model_missing" },
	{ "{\"model\":\"tiny\"} x", 400, "invalid_json" },
	{ "{\"model\":\"tiny\",}", 400, "invalid_json" },
	{ "{\"model\":tru}", 400, "invalid_json" },
	{ "{\"model\":\"ti\nny\"}", 400, "invalid_json" },
	{ "{\"model\":\"tiny\",\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
	    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 400, "invalid_json" },
	{ "{\"model\":\"\\ud800\"}", 400, "invalid_json" },
	/* jansson refuses NUL in strings unless told otherwise. */
	{ "{\"model\":\"a\\u0000b\"}", 400, "invalid_json" },
};

START_TEST(test_body_model)
{
	struct http_verdict v;
	char model[PROTO_MODEL_NAME_MAX + 2];
	int rc;

	memset(&v, 0, sizeof(v));
	rc = http_body_model(bodies[_i].body, strlen(bodies[_i].body), model,
	    sizeof(model), &v);
	if (bodies[_i].status == 0) {
		ck_assert_int_eq(rc, 0);
		ck_assert_str_eq(model, bodies[_i].model_or_code);
	} else {
		ck_assert_int_eq(rc, -1);
		ck_assert_int_eq(v.status, bodies[_i].status);
		ck_assert_str_eq(v.code, bodies[_i].model_or_code);
	}
}
END_TEST

/* A POST without a body has none at all (fuzz_http). */
START_TEST(test_body_none)
{
	struct http_verdict v;
	char model[8];

	ck_assert_int_eq(http_body_model(NULL, 0, model, sizeof(model), &v),
	    -1);
	ck_assert_int_eq(v.status, 400);
	ck_assert_str_eq(v.code, "invalid_json");
}
END_TEST

START_TEST(test_alias)
{
	char *pairs[] = { "gpt-4o-mini", "tiny", "small", "tiny-b" };

	ck_assert_str_eq(http_alias_resolve(pairs, 2, "gpt-4o-mini"), "tiny");
	ck_assert_str_eq(http_alias_resolve(pairs, 2, "small"), "tiny-b");
	ck_assert_str_eq(http_alias_resolve(pairs, 2, "tiny"), "tiny");
}
END_TEST

/* --- what is sent --- */

START_TEST(test_error_body)
{
	char *s = http_error_body("no \"such\" model", "invalid_request_error",
	    "model_not_found");
	json_t *j;

	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(j = json_loads(s, 0, NULL));
	ck_assert_str_eq(tl_str(j, "error.message"), "no \"such\" model");
	ck_assert_str_eq(tl_str(j, "error.type"), "invalid_request_error");
	ck_assert_str_eq(tl_str(j, "error.code"), "model_not_found");
	json_decref(j);
	free(s);
}
END_TEST

START_TEST(test_upstream_head)
{
	const char *req = "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: localhost:8080\r\nConnection: keep-alive, Upgrade\r\n"
	    "Upgrade: h2c\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
	    "Proxy-Authorization: x\r\nAuthorization: Bearer t\r\n"
	    "x-api-key: t\r\nTransfer-Encoding: chunked\r\n"
	    "Expect: 100-continue\r\nContent-Type: application/json\r\n"
	    "X-Custom: kept\r\n\r\n";
	size_t used, len;
	char *h;

	ck_assert_int_eq(feed(&msg, req, &used), HTTP_SCAN_HEAD);
	h = http_upstream_head(&msg, "127.0.0.1:18080", NULL, 42, &len);
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: 127.0.0.1:18080\r\nContent-Type: application/json\r\n"
	    "X-Custom: kept\r\nContent-Length: 42\r\nConnection: close\r\n\r\n");
	ck_assert_uint_eq(len, strlen(h));
	free(h);
	/* The client's credentials never reach the server; poold's key
	 * for it does. */
	h = http_upstream_head(&msg, "[::1]:18080", "k3y", 42, &len);
	ck_assert_str_eq(h, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: [::1]:18080\r\nContent-Type: application/json\r\n"
	    "X-Custom: kept\r\nAuthorization: Bearer k3y\r\n"
	    "Content-Length: 42\r\nConnection: close\r\n\r\n");
	free(h);
}
END_TEST

START_TEST(test_client_head)
{
	struct http_msg r;
	struct http_span origin = { "http://app.example", 18 };
	const char *resp = "HTTP/1.1 200 OK\r\nServer: llama.cpp\r\n"
	    "Access-Control-Allow-Origin: *\r\nX-Accel-Buffering: no\r\n"
	    "Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
	    "Keep-Alive: timeout=5\r\nConnection: keep-alive\r\n\r\n";
	bool keep = true;
	size_t used, len;
	char *h;

	http_msg_init(&r, true, HTTP_RESP_HEAD_MAX, 0);
	ck_assert_int_eq(feed(&r, resp, &used), HTTP_SCAN_HEAD);
	h = http_client_head(&r, &origin, &keep, &len);
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h, "HTTP/1.1 200 OK\r\nServer: llama.cpp\r\n"
	    "Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
	    "X-Accel-Buffering: no\r\n"
	    "Access-Control-Allow-Origin: http://app.example\r\n"
	    "Vary: Origin\r\nConnection: keep-alive\r\n\r\n");
	ck_assert(keep);
	free(h);
	/* Framed by the server's close: the client's connection ends too. */
	http_msg_reset(&r);
	ck_assert_int_eq(feed(&r, "HTTP/1.1 200 OK\r\nConnection: close\r\n"
	    "\r\n", &used), HTTP_SCAN_HEAD);
	h = http_client_head(&r, NULL, &keep, &len);
	ck_assert(!keep);
	ck_assert_str_eq(h, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
	free(h);
	/* A reason phrase that is not text is not relayed (fuzz_http). */
	http_msg_reset(&r);
	ck_assert_int_eq(feed(&r, "HTTP/1.1 404 N\x01pe\r\nContent-Length: 0"
	    "\r\n\r\n", &used), HTTP_SCAN_HEAD);
	h = http_client_head(&r, NULL, &keep, &len);
	ck_assert_ptr_nonnull(strstr(h, "HTTP/1.1 404 Not Found\r\n"));
	free(h);
	http_msg_free(&r);
}
END_TEST

/* For an HTTP/1.0 client a chunked response is de-chunked: its data
 * kept for the caller, no Transfer-Encoding, and the close ends it. */
START_TEST(test_dechunk)
{
	struct http_msg r;
	const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"
	    "\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ndata: \r\n"
	    "3\r\nabc\r\n0\r\n\r\n";
	bool keep = true;
	size_t used, len;
	char *h;

	http_msg_init(&r, true, HTTP_RESP_HEAD_MAX, 0);
	r.dechunk = true;
	http_msg_reset(&r);
	ck_assert(r.dechunk);
	ck_assert_int_eq(feed(&r, resp, &used), HTTP_SCAN_HEAD);
	h = http_client_head(&r, NULL, &keep, &len);
	ck_assert(!keep);
	ck_assert_ptr_null(strstr(h, "Transfer-Encoding"));
	free(h);
	ck_assert_int_eq(feed(&r, resp + used, &used), HTTP_SCAN_DONE);
	ck_assert_uint_eq(r.body_len, 9);
	ck_assert_int_eq(memcmp(r.body, "data: abc", 9), 0);
	/* A response with a length goes as it came: nothing is kept. */
	http_msg_reset(&r);
	ck_assert_int_eq(feed(&r, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
	    "\r\nabc", &used), HTTP_SCAN_HEAD);
	ck_assert_int_eq(feed(&r, "abc", &used), HTTP_SCAN_DONE);
	ck_assert_uint_eq(r.body_len, 0);
	http_msg_free(&r);
}
END_TEST

START_TEST(test_response)
{
	size_t len;
	char *r = http_response(503, "application/json", "Retry-After: 1\r\n",
	    "{}", 2, true, &len);

	ck_assert_str_eq(r, "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: application/json\r\nContent-Length: 2\r\n"
	    "Retry-After: 1\r\nConnection: keep-alive\r\n\r\n{}");
	free(r);
	r = http_response(204, NULL, NULL, NULL, 0, false, &len);
	ck_assert_str_eq(r, "HTTP/1.1 204 No Content\r\nConnection: close"
	    "\r\n\r\n");
	free(r);
}
END_TEST

/* --- the config --- */

static char	 tmpdir[] = "/tmp/check_httpscan.XXXXXX";

static void
conf_setup(void)
{
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
conf_teardown(void)
{
	tl_rm_rf(tmpdir);
}

static int
load(struct config *c, const char *text, char *err, size_t len)
{
	char path[sizeof(tmpdir) + 16];

	snprintf(path, sizeof(path), "%s/poold.json", tmpdir);
	tl_write_file(path, "%s", text);
	config_defaults(c);
	return config_load(c, path, err, len);
}

START_TEST(test_conf_http)
{
	struct config c;
	char err[512];

	ck_assert_int_eq(load(&c, "{}", err, sizeof(err)), 0);
	ck_assert_ptr_null(c.http.listen);
	ck_assert_uint_eq(c.http.max_body, 32u << 20);
	ck_assert_uint_eq(c.http.max_conns, 256);
	ck_assert_int_eq(c.http.idle_timeout_ms, 60000);
	ck_assert_int_eq(c.http.head_timeout_ms, 10000);
	config_free(&c);
	ck_assert_int_eq(load(&c, "{\"http\": null}", err, sizeof(err)), 0);
	ck_assert_ptr_null(c.http.listen);
	config_free(&c);
	ck_assert_int_eq(load(&c, "{\"http\": {\"listen\": \"[::1]:0\", "
	    "\"token_file\": \"/t\", \"max_body\": \"1M\", \"max_conns\": 8, "
	    "\"cors_origins\": [\"http://a\", \"http://b\"], "
	    "\"idle_timeout\": \"5s\", \"head_timeout\": \"2s\"}}", err,
	    sizeof(err)), 0);
	ck_assert_str_eq(c.http.listen, "[::1]:0");
	ck_assert_str_eq(c.http.token_file, "/t");
	ck_assert_uint_eq(c.http.max_body, 1u << 20);
	ck_assert_uint_eq(c.http.max_conns, 8);
	ck_assert_uint_eq(c.http.ncors, 2);
	ck_assert_str_eq(c.http.cors_origins[1], "http://b");
	ck_assert_int_eq(c.http.idle_timeout_ms, 5000);
	ck_assert_int_eq(c.http.head_timeout_ms, 2000);
	config_free(&c);
}
END_TEST

static const struct {
	const char	*text;
	const char	*key;	/* named in the message */
} bad_http[] = {
	{ "{\"http\": {\"listen\": \"8080\"}}", "\"http.listen\"" },
	{ "{\"http\": {\"listen\": \"127.0.0.1:x\"}}", "\"http.listen\"" },
	{ "{\"http\": {\"listen\": \"127.0.0.1:70000\"}}", "\"http.listen\"" },
	{ "{\"http\": {\"listen\": 8080}}", "\"http.listen\"" },
	{ "{\"http\": {\"max_body\": 0}}", "\"http.max_body\"" },
	{ "{\"http\": {\"max_body\": \"2G\"}}", "\"http.max_body\"" },
	{ "{\"http\": {\"max_conns\": 0}}", "\"http.max_conns\"" },
	{ "{\"http\": {\"cors_origins\": \"http://a\"}}",
	    "\"http.cors_origins\"" },
	{ "{\"http\": {\"cors_origins\": [1]}}", "\"http.cors_origins\"" },
	{ "{\"http\": {\"head_timeout\": 0}}", "\"http.head_timeout\"" },
	{ "{\"http\": {\"bogus\": 1}}", "\"http.bogus\"" },
	{ "{\"http\": 1}", "\"http\"" },
	{ "{\"aliases\": {\"a\": 1}}", "\"aliases\"" },
	{ "{\"aliases\": {\"a b\": \"m\"}}", "\"aliases\"" },
	{ "{\"aliases\": {\"a\": \"m\"}, \"models\": {\"x\": {\"aliases\": "
	    "[\"a\"]}}}", "given twice" },
	{ "{\"models\": {\"x\": {\"aliases\": \"a\"}}}", "\"aliases\"" },
};

START_TEST(test_conf_http_bad)
{
	struct config c;
	char err[512];

	ck_assert_int_eq(load(&c, bad_http[_i].text, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, bad_http[_i].key) != NULL, "%s does not "
	    "say %s", err, bad_http[_i].key);
	config_free(&c);
}
END_TEST

START_TEST(test_conf_aliases)
{
	struct config c;
	char err[512];

	ck_assert_int_eq(load(&c, "{\"aliases\": {\"gpt-4o-mini\": \"tiny\"}, "
	    "\"models\": {\"tiny-b\": {\"aliases\": [\"small\", \"chat\"]}}}",
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(c.naliases, 3);
	ck_assert_str_eq(http_alias_resolve(c.aliases, c.naliases,
	    "gpt-4o-mini"), "tiny");
	ck_assert_str_eq(http_alias_resolve(c.aliases, c.naliases, "chat"),
	    "tiny-b");
	config_free(&c);
}
END_TEST

/* --- the real poold --- */

/* The front door's port, from STATS "http" "listen". */
static int
http_port(struct tl_daemon *d, struct tl_conn *c)
{
	json_t *st = tl_stats(d, c);
	const char *listen = tl_str(st, "http.listen"), *colon;
	int port;

	TL_ASSERT(listen != NULL, "no http.listen in STATS: %s", tl_dump(st));
	colon = strrchr(listen, ':');
	TL_ASSERT(colon != NULL, "http.listen %s", listen);
	port = atoi(colon + 1);
	TL_ASSERT(port > 0, "http.listen %s: port 0 not replaced", listen);
	json_decref(st);
	return port;
}

static int
http_connect(int port)
{
	struct sockaddr_in sin;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	TL_ASSERT(fd != -1, "socket: %s", strerror(errno));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	TL_ASSERT(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
	    "connect to port %d: %s", port, strerror(errno));
	return fd;
}

static void
http_write(int fd, const char *text)
{
	size_t len = strlen(text);

	TL_ASSERT(write(fd, text, len) == (ssize_t)len, "write: %s",
	    strerror(errno));
}

static void
http_post(int fd, const char *path, const char *body)
{
	char req[1024];

	snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: "
	    "localhost\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n%s", path, strlen(body), body);
	http_write(fd, req);
}

/* Reads until buf holds needle or timeout_ms pass; true if it does. */
static bool
http_read_until(int fd, char *buf, size_t cap, const char *needle,
    long long timeout_ms)
{
	long long end = tl_now_ms() + timeout_ms;
	struct pollfd pfd = { fd, POLLIN, 0 };
	size_t len = strlen(buf);
	ssize_t n;

	while (strstr(buf, needle) == NULL && len + 1 < cap) {
		if (tl_now_ms() >= end || poll(&pfd, 1, 100) == -1)
			return false;
		if (!(pfd.revents & POLLIN))
			continue;
		if ((n = read(fd, buf + len, cap - len - 1)) <= 0)
			return strstr(buf, needle) != NULL;
		len += (size_t)n;
		buf[len] = '\0';
	}
	return strstr(buf, needle) != NULL;
}

/*
 * Pass: poold refuses to start (exit 1, the reason in its log, no socket)
 * with a non-loopback listen and no token, a token file others may read,
 * and an alias of a model that is not there; a 0600 token starts it,
 * its STATS say the port the kernel picked for port 0.
 */
START_TEST(test_start_refusals)
{
	static const struct { const char *over, *why; } bad[] = {
		{ "{\"http\": {\"listen\": \"0.0.0.0:0\"}}",
		    "not a loopback address" },
		{ "{\"http\": {\"listen\": \"0.0.0.0:0\", \"token_file\": "
		    "\"TOKEN\"}}", "chmod 600" },
		{ "{\"aliases\": {\"gpt-4o-mini\": \"nothere\"}}",
		    "unknown model \"nothere\"" },
		{ "{\"aliases\": {\"a\": \"b\"}}", "also the name of a model" },
	};
	struct tl_daemon d;
	struct tl_conn *c;
	char over[1024], token[TL_PATH_MAX];
	const char *t;
	size_t i;

	tl_daemon_init(&d, 1);
	tl_model(&d, "a", "load_ms=50\nmem=4M\n");
	tl_model(&d, "b", "load_ms=50\nmem=4M\n");
	snprintf(token, sizeof(token), "%s/token", d.dir);
	tl_write_file(token, "s3cret\n");
	TL_ASSERT(chmod(token, 0644) == 0, "chmod: %s", strerror(errno));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(over, sizeof(over), "%s", bad[i].over);
		if ((t = strstr(bad[i].over, "TOKEN")) != NULL)
			snprintf(over + (t - bad[i].over), sizeof(over) -
			    (size_t)(t - bad[i].over), "%s%s", token, t + 5);
		tl_write_config(&d, over);
		truncate(d.log, 0);
		tl_daemon_spawn(&d);
		TL_ASSERT(tl_daemon_wait(&d, 5000), "poold kept running with"
		    " %s", over);
		TL_ASSERT(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 1,
		    "%s: status 0x%x, expected exit 1", over, d.status);
		TL_ASSERT(tl_log_has(&d, bad[i].why), "%s: the log does not "
		    "say '%s'", over, bad[i].why);
		TL_ASSERT(access(d.sock, F_OK) == -1, "%s: socket created",
		    over);
	}
	TL_ASSERT(chmod(token, 0600) == 0, "chmod: %s", strerror(errno));
	snprintf(over, sizeof(over), "{\"http\": {\"listen\": \"0.0.0.0:0\","
	    " \"token_file\": \"%s\"}, \"aliases\": {\"gpt\": \"a\"}}",
	    token);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	(void)http_port(&d, c);
	TL_ASSERT(tl_log_has(&d, "http: listening on 0.0.0.0:"),
	    "the bound address is not in the log");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: a streamed request holds a lease of its server (STATS) while its
 * response flows; when the client hangs up mid-stream the lease ends.
 * A non-streamed request's lease ends with its response.
 */
START_TEST(test_lease_per_request)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char buf[65536] = "";
	int port, fd;
	bool ok;

	tl_daemon_init(&d, 2);
	tl_model(&d, "slow", "load_ms=50\nmem=4M\nstream_delay_ms=400\n");
	tl_daemon_start(&d, "{\"http\": {\"listen\": \"127.0.0.1:0\"}}");
	c = tl_connect(&d);
	port = http_port(&d, c);

	fd = http_connect(port);
	http_post(fd, "/v1/chat/completions", "{\"model\":\"slow\"}");
	TL_ASSERT(http_read_until(fd, buf, sizeof(buf), "chat.completion",
	    10000), "no completion: %s", buf);
	TL_WAIT_UNTIL(ok, tl_server_leases(&d, c, "slow") == 0, 5000);
	TL_ASSERT(ok, "the lease outlived its response");

	buf[0] = '\0';
	http_post(fd, "/v1/chat/completions",
	    "{\"model\":\"slow\",\"stream\":true}");
	TL_ASSERT(http_read_until(fd, buf, sizeof(buf), "data: ", 10000),
	    "no first event: %s", buf);
	TL_ASSERT(tl_server_leases(&d, c, "slow") == 1,
	    "no lease while the stream flows");
	TL_ASSERT(tl_stats_int(&d, c, "http.requests") == 1,
	    "http.requests is not 1 while the stream flows");
	close(fd);
	TL_WAIT_UNTIL(ok, tl_server_leases(&d, c, "slow") == 0, 5000);
	TL_ASSERT(ok, "the lease outlived its client");
	TL_ASSERT(tl_stats_int(&d, c, "http.conns") == 0, "a connection "
	    "is left");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: a client that hangs up while its model starts leaves no waiter
 * (STATS waiting back to 0 before the start ends).
 */
START_TEST(test_wait_abort)
{
	struct tl_daemon d;
	struct tl_conn *c;
	int port, fd;
	bool ok;

	tl_daemon_init(&d, 3);
	tl_model(&d, "cold", "load_ms=4000\nmem=4M\n");
	tl_daemon_start(&d, "{\"http\": {\"listen\": \"127.0.0.1:0\"}}");
	c = tl_connect(&d);
	port = http_port(&d, c);
	fd = http_connect(port);
	http_post(fd, "/v1/embeddings", "{\"model\":\"cold\"}");
	TL_WAIT_UNTIL(ok, tl_stats_int(&d, c, "waiting") == 1, 5000);
	TL_ASSERT(ok, "the request does not wait for the start");
	close(fd);
	TL_WAIT_UNTIL(ok, tl_stats_int(&d, c, "waiting") == 0, 2000);
	TL_ASSERT(ok, "the waiter outlived its client");
	TL_ASSERT(tl_stats_int(&d, c, "http.requests") == 0,
	    "the request is still counted in flight");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: with head_timeout 1s, a client that sends half a head gets a 408
 * and its connection closed; one that sends nothing is closed after
 * idle_timeout 1s; with max_conns 2 a third connection gets a 503 with
 * Retry-After, and a connection is taken again once one closes.
 */
START_TEST(test_timeouts_and_conns)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char buf[4096] = "";
	int port, a, b, x;
	long long t0;

	tl_daemon_init(&d, 4);
	tl_model(&d, "a", "load_ms=50\nmem=4M\n");
	tl_daemon_start(&d, "{\"http\": {\"listen\": \"127.0.0.1:0\", "
	    "\"head_timeout\": \"1s\", \"idle_timeout\": \"1s\", "
	    "\"max_conns\": 2}}");
	c = tl_connect(&d);
	port = http_port(&d, c);

	a = http_connect(port);
	http_write(a, "POST /v1/embeddings HTTP/1.1\r\nHost: l");
	t0 = tl_now_ms();
	TL_ASSERT(http_read_until(a, buf, sizeof(buf), "request_timeout",
	    10000), "no 408 for a head never ended: '%s'", buf);
	TL_ASSERT(strstr(buf, "HTTP/1.1 408 ") == buf, "%s", buf);
	TL_ASSERT(tl_now_ms() - t0 >= 900, "408 before head_timeout");
	TL_ASSERT(read(a, buf, sizeof(buf)) <= 0, "still open after 408");
	close(a);

	a = http_connect(port);
	b = http_connect(port);
	x = http_connect(port);
	buf[0] = '\0';
	TL_ASSERT(http_read_until(x, buf, sizeof(buf), "Retry-After: 1",
	    10000), "no 503 for a third connection: '%s'", buf);
	TL_ASSERT(strstr(buf, "HTTP/1.1 503 ") == buf, "%s", buf);
	TL_ASSERT(tl_stats_int(&d, c, "http.refused_total") == 1,
	    "refused_total is not 1");
	close(x);
	/* Idle connections go after idle_timeout: room again. */
	TL_ASSERT(read(a, buf, sizeof(buf)) == 0, "idle connection not "
	    "closed");
	close(a);
	close(b);
	x = http_connect(port);
	http_write(x, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
	buf[0] = '\0';
	TL_ASSERT(http_read_until(x, buf, sizeof(buf), "{\"status\":\"ok\"}",
	    10000), "no /health once room is back: '%s'", buf);
	close(x);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: a client that sends its too-large body at once, without waiting
 * for 100 Continue, reads the 413 and then an orderly end of the
 * connection, not a reset that could destroy the answer.
 */
START_TEST(test_413_lingers)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char buf[4096] = "", *junk;
	size_t sent = 0, len = 512 * 1024;
	ssize_t n;
	int port, fd;

	tl_daemon_init(&d, 5);
	tl_model(&d, "a", "load_ms=50\nmem=4M\n");
	tl_daemon_start(&d, "{\"http\": {\"listen\": \"127.0.0.1:0\", "
	    "\"max_body\": \"64K\"}}");
	c = tl_connect(&d);
	port = http_port(&d, c);
	fd = http_connect(port);
	http_write(fd, "POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Length: 524288\r\n\r\n");
	TL_ASSERT((junk = malloc(len)) != NULL, "malloc");
	memset(junk, 'x', len);
	while (sent < len && (n = write(fd, junk + sent, len - sent)) > 0)
		sent += (size_t)n;
	free(junk);
	TL_ASSERT(sent == len, "the body was refused after %zu bytes: %s",
	    sent, strerror(errno));
	TL_ASSERT(http_read_until(fd, buf, sizeof(buf), "body_too_large",
	    10000), "no 413: '%s'", buf);
	TL_ASSERT(strstr(buf, "HTTP/1.1 413 ") == buf, "%s", buf);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	TL_ASSERT(n == 0, "the connection ended with %s, not an orderly "
	    "close", n == -1 ? strerror(errno) : "?");
	close(fd);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

static Suite *
httpscan_suite(void)
{
	Suite *s = suite_create("httpscan");
	TCase *tc;

#define N(a)	((int)(sizeof(a) / sizeof((a)[0])))
	tc = tcase_create("framing");
	tcase_add_checked_fixture(tc, msg_setup, msg_teardown);
	tcase_add_test(tc, test_head_then_body);
	tcase_add_test(tc, test_byte_by_byte_pipelined);
	tcase_add_test(tc, test_head_too_long);
	tcase_add_test(tc, test_too_many_headers);
	tcase_add_test(tc, test_chunked_too_large);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_response_framing);
	suite_add_tcase(s, tc);

	tc = tcase_create("checks");
	tcase_add_checked_fixture(tc, msg_setup, msg_teardown);
	tcase_add_loop_test(tc, test_host, 0, N(hosts));
	tcase_add_test(tc, test_host_check);
	tcase_add_test(tc, test_token);
	tcase_add_test(tc, test_routes);
	tcase_add_test(tc, test_cors);
	tcase_add_loop_test(tc, test_body_model, 0, N(bodies));
	tcase_add_test(tc, test_body_none);
	tcase_add_test(tc, test_alias);
	suite_add_tcase(s, tc);

	tc = tcase_create("output");
	tcase_add_checked_fixture(tc, msg_setup, msg_teardown);
	tcase_add_test(tc, test_error_body);
	tcase_add_test(tc, test_upstream_head);
	tcase_add_test(tc, test_client_head);
	tcase_add_test(tc, test_dechunk);
	tcase_add_test(tc, test_response);
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_add_checked_fixture(tc, conf_setup, conf_teardown);
	tcase_add_test(tc, test_conf_http);
	tcase_add_loop_test(tc, test_conf_http_bad, 0, N(bad_http));
	tcase_add_test(tc, test_conf_aliases);
	suite_add_tcase(s, tc);

	tl_add(s, "start_refusals", test_start_refusals);
	tl_add(s, "lease_per_request", test_lease_per_request);
	tl_add(s, "wait_abort", test_wait_abort);
	tl_add(s, "timeouts_and_conns", test_timeouts_and_conns);
	tl_add(s, "413_lingers", test_413_lingers);
#undef N
	return s;
}

int
main(void)
{
	return tl_run(httpscan_suite(), CK_NORMAL);
}
