/*
 * check_httpscan.c — unit tests for supervisord/httpscan.c, the front
 * door's pure half: framing with llhttp (head limits, Content-Length and
 * chunked bodies, Expect, pipelining), the head's checks (Host, token,
 * route, method, length, CORS), the body's "model", aliases, the
 * hop-by-hop filter and the heads sent both ways.  No daemon, no I/O.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define MAX_BODY	4096

/* --- helpers --- */

static struct http_msg	 msg;

static void
req_init(size_t head_max, uint64_t max_body)
{
	http_msg_init(&msg, false, head_max, max_body);
}

static void
msg_teardown(void)
{
	http_msg_free(&msg);
}

/*
 * Feeds all of s (at most step bytes a call, 0: all at once) until the
 * message is done, fails or wants more with nothing left.  *usedp gets
 * the bytes taken in all.
 */
static enum http_scan
feed(const char *s, size_t len, size_t step, size_t *usedp)
{
	enum http_scan r = HTTP_SCAN_MORE;
	size_t at = 0, n, used;

	for (;;) {
		n = len - at;
		if (step > 0 && n > step)
			n = step;
		r = http_msg_feed(&msg, s + at, n, &used);
		at += used;
		if (r == HTTP_SCAN_DONE || r == HTTP_SCAN_ERROR)
			break;
		if (r == HTTP_SCAN_MORE && at == len)
			break;
		ck_assert_msg(used > 0 || r == HTTP_SCAN_HEAD,
		    "no progress at byte %zu", at);
	}
	if (usedp != NULL)
		*usedp = at;
	return r;
}

static bool
span_is(const struct http_span *s, const char *want)
{
	return s != NULL && s->len == strlen(want) &&
	    memcmp(s->p, want, s->len) == 0;
}

static void
check_req(const char *s, const struct http_policy *pol,
    struct http_verdict *v)
{
	req_init(HTTP_HEAD_MAX, pol->max_body);
	ck_assert_int_ne(feed(s, strlen(s), 0, NULL), HTTP_SCAN_ERROR);
	ck_assert(msg.head_done);
	http_check_head(&msg, pol, v);
	http_msg_free(&msg);
}

static const struct http_policy open_policy = {
	NULL, 0, NULL, 0, MAX_BODY,
};

static char *const cors[] = { "http://app.example" };
static const struct http_policy token_policy = {
	"s3cret", 6, cors, 1, MAX_BODY,
};

/* --- framing --- */

#define POST_HEAD(len)	"POST /v1/chat/completions HTTP/1.1\r\n" \
			"Host: localhost\r\nContent-Type: application/json\r\n" \
			"Content-Length: " len "\r\n\r\n"

START_TEST(frame_whole_request)
{
	static const char req[] = POST_HEAD("13") "{\"model\":\"a\"}"
	    "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
	size_t used;

	req_init(HTTP_HEAD_MAX, MAX_BODY);
	ck_assert_int_eq(http_msg_feed(&msg, req, sizeof(req) - 1, &used),
	    HTTP_SCAN_HEAD);
	ck_assert(span_is(&msg.method, "POST"));
	ck_assert(span_is(&msg.url, "/v1/chat/completions"));
	ck_assert(span_is(http_msg_header(&msg, "content-type"),
	    "application/json"));
	ck_assert(span_is(http_msg_header(&msg, "HOST"), "localhost"));
	ck_assert(msg.has_length && msg.length == 13 && !msg.chunked);
	ck_assert(msg.keep_alive && !msg.expect_continue);
	/* The body, then the pipelined request is left alone. */
	ck_assert_int_eq(feed(req + used, sizeof(req) - 1 - used, 0, &used),
	    HTTP_SCAN_DONE);
	ck_assert_uint_eq(used, 13);
	ck_assert(msg.body_len == 13 &&
	    memcmp(msg.body, "{\"model\":\"a\"}", 13) == 0);
}
END_TEST

START_TEST(frame_byte_by_byte)
{
	static const char req[] = POST_HEAD("13") "{\"model\":\"b\"}";
	size_t used;

	req_init(HTTP_HEAD_MAX, MAX_BODY);
	ck_assert_int_eq(feed(req, sizeof(req) - 1, 1, &used), HTTP_SCAN_DONE);
	ck_assert_uint_eq(used, sizeof(req) - 1);
	ck_assert(msg.body_len == 13 &&
	    memcmp(msg.body, "{\"model\":\"b\"}", 13) == 0);
	ck_assert(span_is(&msg.url, "/v1/chat/completions"));
}
END_TEST

START_TEST(frame_head_too_long)
{
	char req[512];

	snprintf(req, sizeof(req), "GET /v1/models HTTP/1.1\r\nHost: "
	    "localhost\r\nX-Pad: %0200d\r\n\r\n", 0);
	req_init(128, MAX_BODY);
	ck_assert_int_eq(feed(req, strlen(req), 7, NULL), HTTP_SCAN_ERROR);
	ck_assert_int_eq(msg.err_status, 431);
	ck_assert_str_eq(msg.err_code, "headers_too_large");
}
END_TEST

START_TEST(frame_too_many_headers)
{
	char req[HTTP_HEAD_MAX];
	size_t n;
	int i;

	n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n");
	for (i = 0; i <= HTTP_HEADERS_MAX; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, "X-%d: y\r\n",
		    i);
	n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
	req_init(HTTP_HEAD_MAX, MAX_BODY);
	ck_assert_int_eq(feed(req, n, 0, NULL), HTTP_SCAN_ERROR);
	ck_assert_int_eq(msg.err_status, 431);
}
END_TEST

START_TEST(frame_chunked)
{
	static const char req[] = "POST /v1/embeddings HTTP/1.1\r\n"
	    "Host: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5;ext=1\r\n{\"mod\r\n8\r\nel\":\"a\"}\r\n0\r\nX-Trailer: t\r\n\r\n";

	req_init(HTTP_HEAD_MAX, MAX_BODY);
	ck_assert_int_eq(feed(req, sizeof(req) - 1, 3, NULL), HTTP_SCAN_DONE);
	ck_assert(msg.chunked && !msg.has_length);
	ck_assert_uint_eq(msg.body_len, 13);
	ck_assert(memcmp(msg.body, "{\"model\":\"a\"}", 13) == 0);
}
END_TEST

START_TEST(frame_body_past_max)
{
	char req[1024];
	size_t n;

	/* Content-Length: the limit holds on the bytes, too. */
	n = (size_t)snprintf(req, sizeof(req), POST_HEAD("100") "%0100d", 0);
	req_init(HTTP_HEAD_MAX, 64);
	ck_assert_int_eq(feed(req, n, 0, NULL), HTTP_SCAN_ERROR);
	ck_assert_int_eq(msg.err_status, 413);
	ck_assert_str_eq(msg.err_code, "body_too_large");
	http_msg_free(&msg);

	n = (size_t)snprintf(req, sizeof(req), "POST /v1/completions "
	    "HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "40\r\n%064d\r\n1\r\nx\r\n0\r\n\r\n", 0);
	req_init(HTTP_HEAD_MAX, 64);
	ck_assert_int_eq(feed(req, n, 0, NULL), HTTP_SCAN_ERROR);
	ck_assert_int_eq(msg.err_status, 413);
}
END_TEST

START_TEST(frame_expect)
{
	static const char yes[] = "POST /v1/completions HTTP/1.1\r\nHost: "
	    "localhost\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n";
	static const char no[] = "POST /v1/completions HTTP/1.1\r\nHost: "
	    "localhost\r\nExpect: something\r\nContent-Length: 2\r\n\r\n";

	req_init(HTTP_HEAD_MAX, MAX_BODY);
	ck_assert_int_eq(feed(yes, sizeof(yes) - 1, 0, NULL), HTTP_SCAN_MORE);
	ck_assert(msg.head_done && msg.expect_continue && !msg.done);
	http_msg_free(&msg);
	req_init(HTTP_HEAD_MAX, MAX_BODY);
	feed(no, sizeof(no) - 1, 0, NULL);
	ck_assert(msg.head_done && !msg.expect_continue);
}
END_TEST

/* Framing that a proxy must refuse rather than guess at. */
static const char *const malformed[] = {
	"GET / HTTP/1.1\r\nHost localhost\r\n\r\n",
	"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
	"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Length: -1\r\n\r\n",
	"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
	    "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
	"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n",
	"G\001T / HTTP/1.1\r\n\r\n",
};

START_TEST(frame_malformed)
{
	const char *s = malformed[_i];

	req_init(HTTP_HEAD_MAX, MAX_BODY);
	ck_assert_msg(feed(s, strlen(s), 0, NULL) == HTTP_SCAN_ERROR,
	    "accepted: %s", s);
	ck_assert_int_eq(msg.err_status, 400);
	ck_assert(msg.err[0] != '\0');
}
END_TEST

START_TEST(frame_response)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n6\r\ndata: \r\n0\r\n\r\n";
	static const char cut[] = "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n6\r\ndata: \r\n";
	static const char closed[] = "HTTP/1.1 200 OK\r\n\r\nto the end";

	http_msg_init(&msg, true, HTTP_RESP_HEAD_MAX, 0);
	ck_assert_int_eq(feed(resp, sizeof(resp) - 1, 5, NULL),
	    HTTP_SCAN_DONE);
	ck_assert_int_eq(msg.status, 200);
	ck_assert(msg.chunked && msg.body_len == 0);	/* framed, not kept */
	http_msg_free(&msg);

	/* Cut before the last chunk: not complete, the client must know. */
	http_msg_init(&msg, true, HTTP_RESP_HEAD_MAX, 0);
	ck_assert_int_eq(feed(cut, sizeof(cut) - 1, 0, NULL), HTTP_SCAN_MORE);
	ck_assert(!http_msg_finish(&msg));
	http_msg_free(&msg);

	/* No length: the server's close ends it. */
	http_msg_init(&msg, true, HTTP_RESP_HEAD_MAX, 0);
	ck_assert_int_eq(feed(closed, sizeof(closed) - 1, 0, NULL),
	    HTTP_SCAN_MORE);
	ck_assert(http_msg_finish(&msg));
}
END_TEST

/* --- checks of the head --- */

struct host_case {
	const char	*host;
	bool		 local;
};

static const struct host_case hosts[] = {
	{ "localhost", true }, { "LOCALHOST:8080", true },
	{ "127.0.0.1", true }, { "127.0.0.1:1", true }, { "[::1]", true },
	{ "[::1]:65535", true },
	{ "evil.example", false }, { "localhost.evil.example", false },
	{ "127.0.0.1.nip.io", false }, { "localhost:", false },
	{ "localhost:80a", false }, { "localhost:1234567", false },
	{ "[::1]x", false }, { "", false }, { "127.0.0.2", false },
	{ "::1", false },
};

START_TEST(host_local)
{
	const struct host_case *c = &hosts[_i];

	ck_assert_msg(http_host_is_local(c->host, strlen(c->host)) ==
	    c->local, "Host \"%s\"", c->host);
}
END_TEST

START_TEST(check_host_without_token)
{
	struct http_verdict v;

	check_req("GET /v1/models HTTP/1.1\r\nHost: evil.example\r\n\r\n",
	    &open_policy, &v);
	ck_assert_int_eq(v.status, 403);
	ck_assert_str_eq(v.code, "host_not_allowed");
	check_req("GET /v1/models HTTP/1.1\r\n\r\n", &open_policy, &v);
	ck_assert_int_eq(v.status, 403);
	check_req("GET /v1/models HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
	    &open_policy, &v);
	ck_assert_int_eq(v.status, 0);
	ck_assert_int_eq(v.route, HTTP_ROUTE_MODELS);
	/* With a token, the token decides, whatever the Host. */
	check_req("GET /v1/models HTTP/1.1\r\nHost: evil.example\r\n"
	    "Authorization: Bearer s3cret\r\n\r\n", &token_policy, &v);
	ck_assert_int_eq(v.status, 0);
}
END_TEST

struct token_case {
	const char	*header;	/* a header line, or "" */
	int		 status;
};

static const struct token_case tokens[] = {
	{ "Authorization: Bearer s3cret\r\n", 0 },
	{ "Authorization: bearer   s3cret\r\n", 0 },
	{ "x-api-key: s3cret\r\n", 0 },
	{ "", 401 },
	{ "Authorization: Bearer s3cre\r\n", 401 },
	{ "Authorization: Bearer s3cret2\r\n", 401 },
	{ "Authorization: Bearer S3CRET\r\n", 401 },
	{ "Authorization: Basic s3cret\r\n", 401 },
	{ "Authorization: s3cret\r\n", 401 },
	{ "x-api-key: \r\n", 401 },
	{ "x-api-key: wrong\r\n", 401 },
};

START_TEST(check_token)
{
	const struct token_case *c = &tokens[_i];
	struct http_verdict v;
	char req[512];

	snprintf(req, sizeof(req), "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: localhost\r\n%sContent-Length: 0\r\n\r\n", c->header);
	check_req(req, &token_policy, &v);
	ck_assert_msg(v.status == c->status, "%s: %d", c->header, v.status);
	if (c->status == 401)
		ck_assert_str_eq(v.code, "invalid_api_key");
	else
		ck_assert_int_eq(v.route, HTTP_ROUTE_PROXY);
}
END_TEST

START_TEST(check_token_equal)
{
	ck_assert(http_token_equal("abc", 3, "abc", 3));
	ck_assert(!http_token_equal("abd", 3, "abc", 3));
	ck_assert(!http_token_equal("ab", 2, "abc", 3));
	ck_assert(!http_token_equal("abcd", 4, "abc", 3));
	ck_assert(!http_token_equal("", 0, "abc", 3));
	ck_assert(!http_token_equal("abcabc", 6, "abc", 3));
}
END_TEST

START_TEST(check_health_without_token)
{
	struct http_verdict v;

	check_req("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
	    &token_policy, &v);
	ck_assert_int_eq(v.status, 0);
	ck_assert_int_eq(v.route, HTTP_ROUTE_HEALTH);
	check_req("GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n",
	    &token_policy, &v);
	ck_assert_int_eq(v.status, 401);
}
END_TEST

struct route_case {
	const char	*line;
	int		 status;
	enum http_route	 route;
};

static const struct route_case routes[] = {
	{ "POST /v1/chat/completions", 0, HTTP_ROUTE_PROXY },
	{ "POST /v1/chat/completions?x=1", 0, HTTP_ROUTE_PROXY },
	{ "POST /v1/completions", 0, HTTP_ROUTE_PROXY },
	{ "POST /v1/embeddings", 0, HTTP_ROUTE_PROXY },
	{ "POST /v1/rerank", 0, HTTP_ROUTE_PROXY },
	{ "POST /v1/responses", 0, HTTP_ROUTE_PROXY },
	{ "POST /v1/messages", 0, HTTP_ROUTE_PROXY },
	{ "GET /v1/models", 0, HTTP_ROUTE_MODELS },
	{ "GET /health", 0, HTTP_ROUTE_HEALTH },
	{ "GET /v1/chat/completions", 405, HTTP_ROUTE_PROXY },
	{ "POST /v1/models", 405, HTTP_ROUTE_MODELS },
	{ "POST /chat/completions", 404, HTTP_ROUTE_NONE },
	{ "GET /", 404, HTTP_ROUTE_NONE },
	{ "GET /v1/models/extra", 404, HTTP_ROUTE_NONE },
	{ "POST /v1/chat/completions/", 404, HTTP_ROUTE_NONE },
};

START_TEST(check_route)
{
	const struct route_case *c = &routes[_i];
	struct http_verdict v;
	char req[256];

	snprintf(req, sizeof(req), "%s HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Length: 0\r\n\r\n", c->line);
	check_req(req, &open_policy, &v);
	ck_assert_msg(v.status == c->status, "%s: status %d", c->line,
	    v.status);
	if (c->status == 0)
		ck_assert_msg(v.route == c->route, "%s: route %d", c->line,
		    v.route);
	else
		ck_assert(v.type != NULL && v.code != NULL &&
		    v.message[0] != '\0');
}
END_TEST

START_TEST(check_length)
{
	struct http_verdict v;
	char req[256];

	snprintf(req, sizeof(req), "POST /v1/completions HTTP/1.1\r\nHost: "
	    "localhost\r\nContent-Length: %d\r\n\r\n", MAX_BODY + 1);
	check_req(req, &open_policy, &v);
	ck_assert_int_eq(v.status, 413);
	ck_assert_str_eq(v.code, "body_too_large");
	snprintf(req, sizeof(req), "POST /v1/completions HTTP/1.1\r\nHost: "
	    "localhost\r\nContent-Length: %d\r\n\r\n", MAX_BODY);
	check_req(req, &open_policy, &v);
	ck_assert_int_eq(v.status, 0);
}
END_TEST

START_TEST(check_cors)
{
	struct http_verdict v;

	check_req("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
	    "Origin: http://app.example\r\n"
	    "Access-Control-Request-Method: POST\r\n\r\n", &token_policy, &v);
	ck_assert_int_eq(v.status, 0);	/* no token in a preflight */
	ck_assert_int_eq(v.route, HTTP_ROUTE_PREFLIGHT);
	ck_assert(span_is(&v.origin, "http://app.example"));

	check_req("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
	    "Origin: http://app.example.evil\r\n\r\n", &token_policy, &v);
	ck_assert_int_eq(v.status, 403);
	check_req("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
	    "\r\n", &token_policy, &v);
	ck_assert_int_eq(v.status, 403);

	/* A real request from an allowed origin carries it for the answer. */
	check_req("GET /v1/models HTTP/1.1\r\nHost: localhost\r\n"
	    "Origin: http://app.example\r\nx-api-key: s3cret\r\n\r\n",
	    &token_policy, &v);
	ck_assert_int_eq(v.status, 0);
	ck_assert(span_is(&v.origin, "http://app.example"));
	check_req("GET /v1/models HTTP/1.1\r\nHost: localhost\r\n"
	    "Origin: http://evil.example\r\n\r\n", &open_policy, &v);
	ck_assert_int_eq(v.status, 0);
	ck_assert(v.origin.p == NULL);
}
END_TEST

/* --- the body's model, aliases --- */

struct model_case {
	const char	*body;
	int		 status;	/* 0: found */
	const char	*want;		/* the model, or the error code */
};

static const struct model_case models[] = {
	{ "{\"model\":\"a\"}", 0, "a" },
	{ " {\"messages\":[],\"model\" : \"qwen2.5-7b\"} ", 0, "qwen2.5-7b" },
	{ "{\"messages\":[{\"model\":\"x\"}]}", 400, "model_missing" },
	{ "{\"model\":\"\"}", 400, "model_missing" },
	{ "{\"model\":7}", 400, "model_missing" },
	{ "{\"model\":null}", 400, "model_missing" },
	{ "[\"model\",\"a\"]", 400, "model_missing" },
	{ "\"a\"", 400, NULL },
	{ "", 400, "invalid_json" },
	{ "{\"model\":\"a\"", 400, "invalid_json" },
	{ "{\"model\":\"a\"} trailing", 400, "invalid_json" },
	/* jansson refuses \u0000 unless asked: not JSON to poold. */
	{ "{\"model\":\"a\\u0000b\"}", 400, NULL },
};

START_TEST(body_model)
{
	const struct model_case *c = &models[_i];
	struct http_verdict v;
	char model[64];
	int rc;

	memset(&v, 0, sizeof(v));
	rc = http_body_model(c->body, strlen(c->body), model, sizeof(model),
	    &v);
	if (c->status == 0) {
		ck_assert_msg(rc == 0, "%s: %d %s", c->body, v.status,
		    v.message);
		ck_assert_str_eq(model, c->want);
		return;
	}
	ck_assert_msg(rc == -1 && v.status == c->status, "%s: rc %d status "
	    "%d", c->body, rc, v.status);
	ck_assert(v.message[0] != '\0');
	if (c->want != NULL)
		ck_assert_str_eq(v.code, c->want);
}
END_TEST

START_TEST(body_model_too_long)
{
	struct http_verdict v;
	char model[8];

	memset(&v, 0, sizeof(v));
	ck_assert_int_eq(http_body_model("{\"model\":\"12345678\"}", 20, model,
	    sizeof(model), &v), -1);
	ck_assert_int_eq(v.status, 404);
	ck_assert_int_eq(http_body_model("{\"model\":\"1234567\"}", 19, model,
	    sizeof(model), &v), 0);
	ck_assert_str_eq(model, "1234567");
}
END_TEST

START_TEST(alias_resolve)
{
	static char *const pairs[] = {
		"gpt-4o-mini", "qwen", "small-chat", "tiny",
	};

	ck_assert_str_eq(http_alias_resolve(pairs, 2, "gpt-4o-mini"), "qwen");
	ck_assert_str_eq(http_alias_resolve(pairs, 2, "small-chat"), "tiny");
	ck_assert_str_eq(http_alias_resolve(pairs, 2, "qwen"), "qwen");
	ck_assert_str_eq(http_alias_resolve(pairs, 2, "GPT-4O-MINI"),
	    "GPT-4O-MINI");
	ck_assert_str_eq(http_alias_resolve(pairs, 0, "gpt-4o-mini"),
	    "gpt-4o-mini");
}
END_TEST

/* --- what is sent --- */

START_TEST(hop_by_hop)
{
	static const char *const hop[] = { "Connection", "keep-alive", "TE",
	    "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authorization",
	    "proxy-connection", "Proxy-Anything", "Expect" };
	static const char *const end[] = { "Content-Type", "Authorization",
	    "x-api-key", "Accept", "User-Agent", "Content-Length", "Tee",
	    "Connections", "Upgrade-Insecure-Requests" };
	size_t i;

	for (i = 0; i < NELEM(hop); i++)
		ck_assert_msg(http_hop_by_hop(hop[i], strlen(hop[i])), "%s",
		    hop[i]);
	for (i = 0; i < NELEM(end); i++)
		ck_assert_msg(!http_hop_by_hop(end[i], strlen(end[i])), "%s",
		    end[i]);
}
END_TEST

/* Counts the lines of head that start with "name:" (any case). */
static int
header_lines(const char *head, size_t len, const char *name)
{
	const char *p = head, *end = head + len;
	size_t n = strlen(name);
	int count = 0;

	while (p < end) {
		if ((size_t)(end - p) > n && strncasecmp(p, name, n) == 0 &&
		    p[n] == ':')
			count++;
		if ((p = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		p++;
	}
	return count;
}

START_TEST(upstream_head)
{
	static const char req[] = "POST /v1/chat/completions?q=1 HTTP/1.1\r\n"
	    "Host: localhost:8080\r\nConnection: keep-alive, X-Drop\r\n"
	    "Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n"
	    "Expect: 100-continue\r\nProxy-Authorization: x\r\n"
	    "Authorization: Bearer s3cret\r\nx-api-key: s3cret\r\n"
	    "Content-Type: application/json\r\nUser-Agent: t/1\r\n\r\n"
	    "d\r\n{\"model\":\"a\"}\r\n0\r\n\r\n";
	size_t len;
	char *h;

	req_init(HTTP_HEAD_MAX, MAX_BODY);
	ck_assert_int_eq(feed(req, sizeof(req) - 1, 0, NULL), HTTP_SCAN_DONE);
	h = http_upstream_head(&msg, 41234, msg.body_len, true, &len);
	ck_assert_ptr_nonnull(h);
	ck_assert_msg(strncmp(h, "POST /v1/chat/completions?q=1 HTTP/1.1\r\n",
	    40) == 0, "%s", h);
	ck_assert(strstr(h, "\r\nHost: 127.0.0.1:41234\r\n") != NULL);
	ck_assert_int_eq(header_lines(h, len, "host"), 1);
	ck_assert(strstr(h, "\r\nContent-Length: 13\r\n") != NULL);
	ck_assert_int_eq(header_lines(h, len, "content-length"), 1);
	ck_assert_int_eq(header_lines(h, len, "connection"), 1);
	ck_assert(strstr(h, "\r\nConnection: close\r\n") != NULL);
	ck_assert_int_eq(header_lines(h, len, "keep-alive"), 0);
	ck_assert_int_eq(header_lines(h, len, "transfer-encoding"), 0);
	ck_assert_int_eq(header_lines(h, len, "expect"), 0);
	ck_assert_int_eq(header_lines(h, len, "proxy-authorization"), 0);
	ck_assert_int_eq(header_lines(h, len, "authorization"), 0);
	ck_assert_int_eq(header_lines(h, len, "x-api-key"), 0);
	ck_assert_int_eq(header_lines(h, len, "content-type"), 1);
	ck_assert_int_eq(header_lines(h, len, "user-agent"), 1);
	ck_assert(len >= 4 && memcmp(h + len - 4, "\r\n\r\n", 4) == 0);
	free(h);

	/* Without a token of poold's own, credentials are the server's. */
	h = http_upstream_head(&msg, 41234, msg.body_len, false, &len);
	ck_assert_int_eq(header_lines(h, len, "authorization"), 1);
	ck_assert_int_eq(header_lines(h, len, "x-api-key"), 1);
	free(h);
}
END_TEST

/*
 * Trailers of a chunked request come after the head, in the connection's
 * input, which moves on: they must not become headers of the head sent
 * upstream (whose spans would point at bytes since overwritten).
 */
START_TEST(upstream_head_no_trailers)
{
	static const char head[] = "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
	static const char body[] = "d\r\n{\"model\":\"a\"}\r\n0\r\n"
	    "X-Trailer: t\r\n\r\n";
	char in[sizeof(body)];
	size_t len, used;
	char *h;

	req_init(HTTP_HEAD_MAX, MAX_BODY);
	ck_assert_int_eq(feed(head, sizeof(head) - 1, 0, &used),
	    HTTP_SCAN_MORE);
	memcpy(in, body, sizeof(body));
	ck_assert_int_eq(feed(in, sizeof(body) - 1, 0, &used), HTTP_SCAN_DONE);
	memset(in, 'Z', sizeof(in));	/* the input buffer moves on */
	h = http_upstream_head(&msg, 41234, msg.body_len, true, &len);
	ck_assert_ptr_nonnull(h);
	ck_assert_msg(header_lines(h, len, "x-trailer") == 0 &&
	    memchr(h, 'Z', len) == NULL, "trailers in the head sent upstream:"
	    "\n%.*s", (int)len, h);
	free(h);
}
END_TEST

static char *
client_head_of(const char *resp, const struct http_span *origin,
    bool *keep_alive, size_t *len)
{
	http_msg_init(&msg, true, HTTP_RESP_HEAD_MAX, 0);
	ck_assert_int_ne(feed(resp, strlen(resp), 0, NULL), HTTP_SCAN_ERROR);
	ck_assert(msg.head_done);
	return http_client_head(&msg, origin, keep_alive, len);
}

START_TEST(client_head_stream)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
	    "X-Accel-Buffering: yes\r\nAccess-Control-Allow-Origin: *\r\n"
	    "Server: llama.cpp\r\n\r\n";
	struct http_span origin = { "http://app.example", 18 };
	bool keep_alive = true;
	size_t len;
	char *h;

	h = client_head_of(resp, &origin, &keep_alive, &len);
	ck_assert_ptr_nonnull(h);
	ck_assert(strncmp(h, "HTTP/1.1 200 OK\r\n", 17) == 0);
	ck_assert(keep_alive);
	/* Its own framing stays, so the chunks go through as they are. */
	ck_assert_int_eq(header_lines(h, len, "transfer-encoding"), 1);
	ck_assert_int_eq(header_lines(h, len, "x-accel-buffering"), 1);
	ck_assert(strstr(h, "\r\nX-Accel-Buffering: no\r\n") != NULL);
	ck_assert_int_eq(header_lines(h, len, "keep-alive"), 0);
	ck_assert_int_eq(header_lines(h, len, "connection"), 1);
	ck_assert_int_eq(header_lines(h, len, "access-control-allow-origin"),
	    1);
	ck_assert(strstr(h, "Access-Control-Allow-Origin: http://app.example"
	    "\r\n") != NULL);
	ck_assert_int_eq(header_lines(h, len, "server"), 1);
	free(h);
}
END_TEST

START_TEST(client_head_close_framed)
{
	static const char json[] = "HTTP/1.1 200 OK\r\n"
	    "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
	static const char closed[] = "HTTP/1.1 200 OK\r\n"
	    "Content-Type: application/json\r\n\r\n";
	bool keep_alive = true;
	size_t len;
	char *h;

	h = client_head_of(json, NULL, &keep_alive, &len);
	ck_assert(keep_alive);
	ck_assert_int_eq(header_lines(h, len, "x-accel-buffering"), 0);
	ck_assert_int_eq(header_lines(h, len, "content-length"), 1);
	free(h);
	http_msg_free(&msg);

	h = client_head_of(closed, NULL, &keep_alive, &len);
	ck_assert(!keep_alive);
	ck_assert(strstr(h, "\r\nConnection: close\r\n") != NULL);
	free(h);
}
END_TEST

START_TEST(error_shapes)
{
	char *body, *resp;
	size_t len;

	body = http_error_body("no \"x\"", "invalid_request_error",
	    "model_not_found");
	ck_assert_str_eq(body, "{\"error\":{\"message\":\"no \\\"x\\\"\","
	    "\"type\":\"invalid_request_error\",\"code\":\"model_not_found\"}}");
	resp = http_response(503, "application/json", "Retry-After: 1\r\n",
	    body, strlen(body), false, &len);
	ck_assert(strncmp(resp, "HTTP/1.1 503 Service Unavailable\r\n", 34) ==
	    0);
	ck_assert(strstr(resp, "\r\nRetry-After: 1\r\n") != NULL);
	ck_assert(strstr(resp, "\r\nConnection: close\r\n") != NULL);
	ck_assert(len > strlen(body) &&
	    memcmp(resp + len - strlen(body), body, strlen(body)) == 0);
	free(resp);
	resp = http_response(204, NULL, NULL, NULL, 0, true, &len);
	ck_assert_int_eq(header_lines(resp, len, "content-length"), 0);
	free(resp);
	free(body);
}
END_TEST

static Suite *
httpscan_suite(void)
{
	Suite *s = suite_create("httpscan");
	TCase *tc;

	tc = tcase_create("framing");
	tcase_add_checked_fixture(tc, NULL, msg_teardown);
	tcase_add_test(tc, frame_whole_request);
	tcase_add_test(tc, frame_byte_by_byte);
	tcase_add_test(tc, frame_head_too_long);
	tcase_add_test(tc, frame_too_many_headers);
	tcase_add_test(tc, frame_chunked);
	tcase_add_test(tc, frame_body_past_max);
	tcase_add_test(tc, frame_expect);
	tcase_add_loop_test(tc, frame_malformed, 0, NELEM(malformed));
	tcase_add_test(tc, frame_response);
	suite_add_tcase(s, tc);

	tc = tcase_create("checks");
	tcase_add_loop_test(tc, host_local, 0, NELEM(hosts));
	tcase_add_test(tc, check_host_without_token);
	tcase_add_loop_test(tc, check_token, 0, NELEM(tokens));
	tcase_add_test(tc, check_token_equal);
	tcase_add_test(tc, check_health_without_token);
	tcase_add_loop_test(tc, check_route, 0, NELEM(routes));
	tcase_add_test(tc, check_length);
	tcase_add_test(tc, check_cors);
	suite_add_tcase(s, tc);

	tc = tcase_create("model");
	tcase_add_loop_test(tc, body_model, 0, NELEM(models));
	tcase_add_test(tc, body_model_too_long);
	tcase_add_test(tc, alias_resolve);
	suite_add_tcase(s, tc);

	tc = tcase_create("heads");
	tcase_add_checked_fixture(tc, NULL, msg_teardown);
	tcase_add_test(tc, hop_by_hop);
	tcase_add_test(tc, upstream_head);
	tcase_add_test(tc, upstream_head_no_trailers);
	tcase_add_test(tc, client_head_stream);
	tcase_add_test(tc, client_head_close_framed);
	tcase_add_test(tc, error_shapes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(httpscan_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
