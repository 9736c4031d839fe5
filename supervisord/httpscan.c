/*
 * httpscan.c — the HTTP front door's pure half: no I/O, no clock, no
 * daemon.  It frames requests and responses with llhttp, checks a
 * request's head (Host, token, route, method, length, CORS), finds the
 * body's "model", and writes the heads and error bodies the front door
 * sends.  http.c and upstream.c do the I/O; a fuzzer or a unit test can
 * drive all of this with plain buffers.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "http.h"

/* --- framing --- */

static struct http_msg *
msg_of(llhttp_t *p)
{
	return p->data;
}

/* Header names and values come as spans of the head, which is whole. */
static int
span_add(struct http_span *s, const char *at, size_t len)
{
	if (s->p == NULL)
		s->p = at;
	else if (s->p + s->len != at)
		return -1;
	s->len += len;
	return 0;
}

static int
on_method(llhttp_t *p, const char *at, size_t len)
{
	return span_add(&msg_of(p)->method, at, len) == 0 ? 0 : HPE_USER;
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
	return span_add(&msg_of(p)->url, at, len) == 0 ? 0 : HPE_USER;
}

static int
on_status(llhttp_t *p, const char *at, size_t len)
{
	return span_add(&msg_of(p)->reason, at, len) == 0 ? 0 : HPE_USER;
}

static int
too_many_headers(struct http_msg *m)
{
	m->err_status = 431;
	m->err_code = "headers_too_large";
	snprintf(m->err, sizeof(m->err), "more than %d header lines",
	    HTTP_HEADERS_MAX);
	return HPE_USER;
}

/*
 * A chunked body's trailer lines come after the head: they are not
 * headers and are never passed on (RFC 9110 6.5.1), but they are
 * counted, so that endless trailers cannot keep a request open.
 */
static int
trailer(struct http_msg *m, size_t len)
{
	m->trailer_len += len;
	if (m->trailer_len <= m->head_max)
		return 0;
	m->err_status = 431;
	m->err_code = "headers_too_large";
	snprintf(m->err, sizeof(m->err), "trailer longer than %zu bytes",
	    m->head_max);
	return HPE_USER;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http_msg *m = msg_of(p);
	struct http_header *h;

	if (m->head_done)
		return trailer(m, len);

	/* A new header starts once the last one has a value. */
	if (m->nheaders == 0 || m->headers[m->nheaders - 1].value.p != NULL) {
		if (m->nheaders == HTTP_HEADERS_MAX)
			return too_many_headers(m);
		h = &m->headers[m->nheaders++];
		memset(h, 0, sizeof(*h));
	}
	h = &m->headers[m->nheaders - 1];
	return span_add(&h->name, at, len) == 0 ? 0 : HPE_USER;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http_msg *m = msg_of(p);

	if (m->head_done)
		return trailer(m, len);
	if (m->nheaders == 0)
		return HPE_USER;
	return span_add(&m->headers[m->nheaders - 1].value, at, len) == 0 ?
	    0 : HPE_USER;
}

static bool
span_ieq(const struct http_span *s, const char *str)
{
	return s->len == strlen(str) && strncasecmp(s->p, str, s->len) == 0;
}

static int
on_headers_complete(llhttp_t *p)
{
	struct http_msg *m = msg_of(p);
	const struct http_span *v;
	size_t i;

	/* A header with an empty value got no value callback. */
	for (i = 0; i < m->nheaders; i++)
		if (m->headers[i].value.p == NULL)
			m->headers[i].value.p = "";
	m->head_done = true;
	m->status = p->status_code;
	m->minor = p->http_minor;
	m->chunked = (p->flags & F_CHUNKED) != 0;
	m->has_length = (p->flags & F_CONTENT_LENGTH) != 0;
	m->length = m->has_length ? p->content_length : 0;
	m->keep_alive = llhttp_should_keep_alive(p);
	m->expect_continue = (v = http_msg_header(m, "expect")) != NULL &&
	    span_ieq(v, "100-continue");
	return 0;
}

static int
body_too_large(struct http_msg *m)
{
	m->err_status = 413;
	m->err_code = "body_too_large";
	snprintf(m->err, sizeof(m->err), "request body larger than %llu "
	    "bytes (max_body)", (unsigned long long)m->max_body);
	return HPE_USER;
}

static int
on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http_msg *m = msg_of(p);
	size_t cap;
	char *nb;

	/* A response is only framed (its bytes go as they came), unless it
	 * is de-chunked: then its data waits in body for the caller. */
	if (m->response && !(m->dechunk && m->chunked))
		return 0;
	if (!m->response && m->body_len + len > m->max_body)
		return body_too_large(m);
	if (m->body_len + len > m->body_cap) {
		cap = m->body_cap ? m->body_cap : 4096;
		while (cap < m->body_len + len)
			cap *= 2;
		if (!m->response && cap > m->max_body)
			cap = m->max_body;
		if ((nb = realloc(m->body, cap)) == NULL) {
			m->err_status = 500;
			m->err_code = "internal_error";
			snprintf(m->err, sizeof(m->err), "out of memory");
			return HPE_USER;
		}
		m->body = nb;
		m->body_cap = cap;
	}
	memcpy(m->body + m->body_len, at, len);
	m->body_len += len;
	return 0;
}

/* The message's end: stop there, what follows is the next one's. */
static int
on_message_complete(llhttp_t *p)
{
	msg_of(p)->done = true;
	return HPE_PAUSED;
}

static const llhttp_settings_t scan_settings = {
	.on_method = on_method,
	.on_url = on_url,
	.on_status = on_status,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void
http_msg_init(struct http_msg *m, bool response, size_t head_max,
    uint64_t max_body)
{
	memset(m, 0, sizeof(*m));
	m->response = response;
	m->head_max = head_max;
	m->max_body = max_body;
	http_msg_reset(m);
}

void
http_msg_reset(struct http_msg *m)
{
	char *head = m->head, *body = m->body;
	size_t body_cap = m->body_cap;
	bool response = m->response, dechunk = m->dechunk;
	size_t head_max = m->head_max;
	uint64_t max_body = m->max_body;

	memset(m, 0, sizeof(*m));
	m->response = response;
	m->dechunk = dechunk;
	m->head_max = head_max;
	m->max_body = max_body;
	m->head = head;
	m->body = body;
	m->body_cap = body_cap;
	llhttp_init(&m->parser, response ? HTTP_RESPONSE : HTTP_REQUEST,
	    &scan_settings);
	m->parser.data = m;
}

void
http_msg_free(struct http_msg *m)
{
	free(m->head);
	free(m->body);
	m->head = m->body = NULL;
	m->body_cap = 0;
}

static enum http_scan
scan_error(struct http_msg *m, llhttp_errno_t err)
{
	if (err == HPE_USER && m->err_status != 0)
		return HTTP_SCAN_ERROR;
	m->err_status = m->response ? 502 : 400;
	m->err_code = m->response ? "bad_upstream_response" : "bad_request";
	snprintf(m->err, sizeof(m->err), "%s: %s", m->response ?
	    "the model's server sent a malformed response" :
	    "malformed HTTP request", llhttp_get_error_reason(&m->parser) ?
	    llhttp_get_error_reason(&m->parser) : llhttp_errno_name(err));
	return HTTP_SCAN_ERROR;
}

/* Where the head's blank line ends in head[0..head_len), or 0. */
static size_t
head_end(struct http_msg *m)
{
	size_t i = m->scanned > 3 ? m->scanned - 3 : 0;

	for (; i + 4 <= m->head_len; i++)
		if (memcmp(m->head + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	m->scanned = m->head_len;
	return 0;
}

static enum http_scan
feed_head(struct http_msg *m, const char *data, size_t len, size_t *used)
{
	size_t take, end, before = m->head_len;
	llhttp_errno_t err;

	if (m->head == NULL && (m->head = malloc(m->head_max)) == NULL) {
		m->err_status = 500;
		m->err_code = "internal_error";
		snprintf(m->err, sizeof(m->err), "out of memory");
		return HTTP_SCAN_ERROR;
	}
	take = m->head_max - m->head_len < len ? m->head_max - m->head_len :
	    len;
	memcpy(m->head + m->head_len, data, take);
	m->head_len += take;
	if ((end = head_end(m)) == 0) {
		*used = take;
		if (m->head_len < m->head_max)
			return HTTP_SCAN_MORE;
		m->err_status = m->response ? 502 : 431;
		m->err_code = "headers_too_large";
		snprintf(m->err, sizeof(m->err), "%s head longer than %zu "
		    "bytes", m->response ? "response" : "request",
		    m->head_max);
		return HTTP_SCAN_ERROR;
	}
	m->head_len = end;
	*used = end - before;
	err = llhttp_execute(&m->parser, m->head, end);
	if (err != HPE_OK && !(err == HPE_PAUSED && m->done))
		return scan_error(m, err);
	if (!m->head_done)	/* a blank line llhttp took as not the end */
		return scan_error(m, HPE_INVALID_EOF_STATE);
	return HTTP_SCAN_HEAD;
}

enum http_scan
http_msg_feed(struct http_msg *m, const char *data, size_t len,
    size_t *used)
{
	llhttp_errno_t err;

	*used = 0;
	if (m->done)
		return HTTP_SCAN_DONE;
	if (!m->head_done)
		return feed_head(m, data, len, used);
	if (len == 0)
		return HTTP_SCAN_MORE;
	err = llhttp_execute(&m->parser, data, len);
	if (err == HPE_OK) {
		*used = len;
		return HTTP_SCAN_MORE;
	}
	if (err == HPE_PAUSED && m->done) {
		*used = (size_t)(llhttp_get_error_pos(&m->parser) - data);
		if (*used > len)
			*used = len;
		return HTTP_SCAN_DONE;
	}
	return scan_error(m, err);
}

bool
http_msg_finish(struct http_msg *m)
{
	llhttp_errno_t err;

	if (m->done)
		return true;
	if (!m->head_done)
		return false;
	err = llhttp_finish(&m->parser);
	return m->done || err == HPE_OK;
}

const struct http_span *
http_msg_header(const struct http_msg *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nheaders; i++)
		if (span_ieq(&m->headers[i].name, name))
			return &m->headers[i].value;
	return NULL;
}

/* --- checks --- */

static bool
span_prefix_ieq(const char *p, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && strncasecmp(p, prefix, n) == 0;
}

bool
http_host_is_local(const char *h, size_t len)
{
	static const char *const names[] = { "localhost", "127.0.0.1",
	    "[::1]" };
	size_t i, n, j;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		n = strlen(names[i]);
		if (!span_prefix_ieq(h, len, names[i]))
			continue;
		if (len == n)
			return true;
		if (h[n] != ':' || len == n + 1 || len > n + 6)
			return false;
		for (j = n + 1; j < len; j++)
			if (!isdigit((unsigned char)h[j]))
				return false;
		return true;
	}
	return false;
}

bool
http_token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char diff = alen != blen;
	size_t i;

	/* Every byte of b is looked at, whatever a is. */
	for (i = 0; i < blen; i++)
		diff |= (unsigned char)(b[i] ^ (alen > 0 ? a[i % alen] : 0));
	return diff == 0;
}

static void
verdict(struct http_verdict *v, int status, const char *type,
    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
verdict(struct http_verdict *v, int status, const char *type,
    const char *code, const char *fmt, ...)
{
	va_list ap;

	v->status = status;
	v->type = type;
	v->code = code;
	va_start(ap, fmt);
	vsnprintf(v->message, sizeof(v->message), fmt, ap);
	va_end(ap);
}

static bool
token_ok(const struct http_msg *m, const struct http_policy *pol)
{
	const struct http_span *h;

	if ((h = http_msg_header(m, "authorization")) != NULL &&
	    span_prefix_ieq(h->p, h->len, "bearer ")) {
		size_t i = 7;

		while (i < h->len && h->p[i] == ' ')
			i++;
		return http_token_equal(h->p + i, h->len - i, pol->token,
		    pol->token_len);
	}
	if ((h = http_msg_header(m, "x-api-key")) != NULL)
		return http_token_equal(h->p, h->len, pol->token,
		    pol->token_len);
	return false;
}

static bool
origin_allowed(const struct http_span *o, const struct http_policy *pol)
{
	size_t i;

	for (i = 0; i < pol->ncors; i++)
		if (strlen(pol->cors_origins[i]) == o->len &&
		    memcmp(pol->cors_origins[i], o->p, o->len) == 0)
			return true;
	return false;
}

/* The routes poold proxies by the body's "model". */
static const char *const proxy_paths[] = {
	"/v1/chat/completions", "/v1/completions", "/v1/embeddings",
	"/v1/rerank", "/v1/responses", "/v1/messages",
};

static enum http_route
route_of(const struct http_span *url, const char **want)
{
	size_t len = url->len, i;
	const char *q;

	if ((q = memchr(url->p, '?', len)) != NULL)
		len = (size_t)(q - url->p);
	for (i = 0; i < sizeof(proxy_paths) / sizeof(proxy_paths[0]); i++)
		if (strlen(proxy_paths[i]) == len &&
		    memcmp(proxy_paths[i], url->p, len) == 0) {
			*want = "POST";
			return HTTP_ROUTE_PROXY;
		}
	*want = "GET";
	if (len == 10 && memcmp(url->p, "/v1/models", 10) == 0)
		return HTTP_ROUTE_MODELS;
	if (len == 7 && memcmp(url->p, "/health", 7) == 0)
		return HTTP_ROUTE_HEALTH;
	if (len == 8 && memcmp(url->p, "/metrics", 8) == 0)
		return HTTP_ROUTE_METRICS;
	if (len == 7 && memcmp(url->p, "/events", 7) == 0)
		return HTTP_ROUTE_EVENTS;
	if (len == 1 && url->p[0] == '/')
		return HTTP_ROUTE_STATUS;
	if (len == 14 && memcmp(url->p, "/v1/pool/stats", 14) == 0)
		return HTTP_ROUTE_POOL;
	return HTTP_ROUTE_NONE;
}

void
http_check_head(const struct http_msg *m, const struct http_policy *pol,
    struct http_verdict *v)
{
	const struct http_span *host, *origin;
	const char *want = NULL;

	memset(v, 0, sizeof(*v));
	host = http_msg_header(m, "host");
	if (pol->token == NULL && (host == NULL ||
	    !http_host_is_local(host->p, host->len))) {
		verdict(v, 403, "invalid_request_error", "host_not_allowed",
		    "without a token poold answers only requests to localhost, "
		    "127.0.0.1 or [::1] (Host header)");
		return;
	}
	if ((origin = http_msg_header(m, "origin")) != NULL &&
	    origin_allowed(origin, pol))
		v->origin = *origin;
	if (span_ieq(&m->method, "OPTIONS")) {
		if (v->origin.p == NULL)
			verdict(v, 403, "invalid_request_error",
			    "origin_not_allowed", "this Origin is not in "
			    "cors_origins");
		else
			v->route = HTTP_ROUTE_PREFLIGHT;
		return;
	}
	v->route = route_of(&m->url, &want);
	/* /health tells nothing: a load balancer asks it without a token;
	 * nor does the status page, which asks for the token itself. */
	if (pol->token != NULL && v->route != HTTP_ROUTE_HEALTH &&
	    v->route != HTTP_ROUTE_STATUS &&
	    !token_ok(m, pol)) {
		verdict(v, 401, "invalid_request_error", "invalid_api_key",
		    "missing or wrong API key (Authorization: Bearer, or "
		    "x-api-key)");
		return;
	}
	if (v->route == HTTP_ROUTE_NONE) {
		verdict(v, 404, "invalid_request_error", "unknown_url",
		    "unknown URL %.*s", (int)(m->url.len > 128 ? 128 :
		    m->url.len), m->url.p);
		return;
	}
	if (!span_ieq(&m->method, want)) {
		verdict(v, 405, "invalid_request_error", "method_not_allowed",
		    "%.*s takes %s", (int)(m->url.len > 128 ? 128 :
		    m->url.len), m->url.p, want);
		return;
	}
	if (m->has_length && m->length > pol->max_body)
		verdict(v, 413, "invalid_request_error", "body_too_large",
		    "request body of %llu bytes is larger than %llu "
		    "(max_body)", (unsigned long long)m->length,
		    (unsigned long long)pol->max_body);
}

/*
 * The body's top-level "model", found without building the document: a
 * request body may be 32 MiB of JSON, which jansson takes seconds to load
 * (a tree of millions of nodes), and the loop must not stall for it.  A
 * skipper walks the text once, checking its structure (nesting, strings,
 * literals), and notes where the top-level "model" value is (the last
 * one, as a full parse would keep); jansson then decodes that value
 * alone.  The server reads the body in full; this only routes it.
 */
struct jscan {
	const char	*p, *end;
	unsigned	 depth;
	struct http_span model;		/* the top-level "model" value */
};

#define JSCAN_DEPTH_MAX	64

static void
js_ws(struct jscan *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	    *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/*
 * A string at j->p; its text (quotes excluded) in *out.  Its end is the
 * first quote after an even run of backslashes, found with memchr: a
 * megabyte prompt is skipped at memory speed.  Its escapes and control
 * bytes are the server's to judge (and jansson's, for the model's).
 */
static int
js_string(struct jscan *j, struct http_span *out)
{
	const char *start, *q;
	size_t n;

	if (j->p >= j->end || *j->p != '"')
		return -1;
	start = ++j->p;
	while ((q = memchr(j->p, '"', (size_t)(j->end - j->p))) != NULL) {
		for (n = 0; q - n > start && q[-1 - (ptrdiff_t)n] == '\\'; n++)
			;
		j->p = q + 1;
		if (n % 2 == 0) {
			out->p = start;
			out->len = (size_t)(q - start);
			return 0;
		}
	}
	return -1;
}

static bool
js_number_char(char ch)
{
	return (ch >= '0' && ch <= '9') || ch == '-' || ch == '+' ||
	    ch == '.' || ch == 'e' || ch == 'E';
}

static int	js_value(struct jscan *);

/*
 * Is this key "model"?  A key written with escapes ("mod\u0065l") is
 * the same key to every JSON reader, the server's too, so it is decoded
 * (by jansson; only short keys can be "model").
 */
static bool
js_key_is_model(const struct http_span *key)
{
	json_t *k;
	bool is;

	if (memchr(key->p, '\\', key->len) == NULL)
		return key->len == 5 && memcmp(key->p, "model", 5) == 0;
	if (key->len > 64)
		return false;
	/* The span is the key's text: its quotes are just outside it. */
	k = json_loadb(key->p - 1, key->len + 2, JSON_DECODE_ANY, NULL);
	is = json_is_string(k) && json_string_length(k) == 5 &&
	    memcmp(json_string_value(k), "model", 5) == 0;
	json_decref(k);
	return is;
}

static int
js_object(struct jscan *j)
{
	struct http_span key;
	const char *value;

	j->p++;
	js_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		js_ws(j);
		if (js_string(j, &key) == -1)
			return -1;
		js_ws(j);
		if (j->p >= j->end || *j->p++ != ':')
			return -1;
		js_ws(j);
		value = j->p;
		if (js_value(j) == -1)
			return -1;
		if (j->depth == 1 && js_key_is_model(&key)) {
			j->model.p = value;
			j->model.len = (size_t)(j->p - value);
		}
		js_ws(j);
		if (j->p >= j->end)
			return -1;
		if (*j->p == '}') {
			j->p++;
			return 0;
		}
		if (*j->p++ != ',')
			return -1;
	}
}

static int
js_array(struct jscan *j)
{
	j->p++;
	js_ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		js_ws(j);
		if (js_value(j) == -1)
			return -1;
		js_ws(j);
		if (j->p >= j->end)
			return -1;
		if (*j->p == ']') {
			j->p++;
			return 0;
		}
		if (*j->p++ != ',')
			return -1;
	}
}

static int
js_literal(struct jscan *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return -1;
	j->p += n;
	return 0;
}

static int
js_value(struct jscan *j)
{
	struct http_span str;
	const char *start = j->p;
	int rc;

	if (j->p >= j->end)
		return -1;
	switch (*j->p) {
	case '{':
	case '[':
		if (++j->depth > JSCAN_DEPTH_MAX)
			return -1;
		rc = *j->p == '{' ? js_object(j) : js_array(j);
		j->depth--;
		return rc;
	case '"':
		return js_string(j, &str);
	case 't':
		return js_literal(j, "true");
	case 'f':
		return js_literal(j, "false");
	case 'n':
		return js_literal(j, "null");
	default:
		while (j->p < j->end && js_number_char(*j->p))
			j->p++;
		return j->p > start ? 0 : -1;
	}
}

int
http_body_model(const char *body, size_t len, char *model, size_t modellen,
    struct http_verdict *v)
{
	struct jscan j;
	json_error_t je;
	json_t *mv;
	int rc = -1;

	if (len == 0) {		/* body may be NULL: no body was sent */
		verdict(v, 400, "invalid_request_error", "invalid_json",
		    "the body is empty; expected JSON with a \"model\"");
		return -1;
	}
	memset(&j, 0, sizeof(j));
	j.p = body;
	j.end = body + len;
	js_ws(&j);
	if (js_value(&j) == -1 || (js_ws(&j), j.p != j.end)) {
		verdict(v, 400, "invalid_request_error", "invalid_json",
		    "the body is not JSON (at byte %zu of %zu)",
		    (size_t)(j.p - body), len);
		return -1;
	}
	/* Keys at depth 1 are a top-level object's: j.model is set only
	 * for one. */
	mv = j.model.p != NULL ? json_loadb(j.model.p, j.model.len,
	    JSON_DECODE_ANY, &je) : NULL;
	if (j.model.p != NULL && mv == NULL)
		verdict(v, 400, "invalid_request_error", "invalid_json",
		    "the body's \"model\" is not JSON: %s", je.text);
	else if (!json_is_string(mv) || json_string_length(mv) == 0)
		verdict(v, 400, "invalid_request_error", "model_missing",
		    "the body has no \"model\" (a string)");
	else if (json_string_length(mv) >= modellen)
		verdict(v, 404, "invalid_request_error", "model_not_found",
		    "no model has so long a name");
	else {
		/* Without JSON_ALLOW_NUL, jansson's strings hold no NUL. */
		memcpy(model, json_string_value(mv), json_string_length(mv) + 1);
		rc = 0;
	}
	json_decref(mv);
	return rc;
}

const char *
http_alias_resolve(char *const *aliases, size_t npairs, const char *name)
{
	size_t i;

	for (i = 0; i < npairs; i++)
		if (strcmp(aliases[2 * i], name) == 0)
			return aliases[2 * i + 1];
	return name;
}

/* --- what is sent --- */

char *
http_error_body(const char *message, const char *type, const char *code)
{
	json_t *o;
	char *s;

	o = json_pack("{s:{s:s, s:s, s:s}}", "error", "message", message,
	    "type", type, "code", code);
	s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 507: return "Insufficient Storage";
	default: return "Unknown";
	}
}

/* A growing string; on out of memory it stays failed. */
struct sbuf {
	char	*p;
	size_t	 len, cap;
	bool	 failed;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	size_t cap;
	char *np;

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		for (cap = b->cap ? b->cap : 512; cap < b->len + n + 1;
		    cap *= 2)
			;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		b->failed = true;
	else
		sb_add(b, buf, (size_t)n);
}

static char *
sb_done(struct sbuf *b, size_t *len)
{
	if (b->failed) {
		free(b->p);
		return NULL;
	}
	*len = b->len;
	return b->p;
}

char *
http_response(int status, const char *content_type, const char *extra,
    const char *body, size_t bodylen, bool keep_alive, size_t *len)
{
	struct sbuf b = { 0 };

	sb_printf(&b, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
	if (status != 204 && status != 100) {
		if (content_type != NULL)
			sb_printf(&b, "Content-Type: %s\r\n", content_type);
		sb_printf(&b, "Content-Length: %zu\r\n", bodylen);
	}
	if (extra != NULL)
		sb_str(&b, extra);
	if (status != 100)
		sb_str(&b, keep_alive ? "Connection: keep-alive\r\n" :
		    "Connection: close\r\n");
	sb_str(&b, "\r\n");
	if (body != NULL)
		sb_add(&b, body, bodylen);
	return sb_done(&b, len);
}

bool
http_hop_by_hop(const char *name, size_t len)
{
	static const char *const hop[] = { "connection", "keep-alive",
	    "te", "trailer", "transfer-encoding", "upgrade", "expect",
	    "proxy-connection", "proxy-authenticate", "proxy-authorization" };
	struct http_span s = { name, len };
	size_t i;

	if (span_prefix_ieq(name, len, "proxy-"))
		return true;
	for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (span_ieq(&s, hop[i]))
			return true;
	return false;
}

static void
sb_header(struct sbuf *b, const struct http_header *h)
{
	sb_add(b, h->name.p, h->name.len);
	sb_str(b, ": ");
	sb_add(b, h->value.p, h->value.len);
	sb_str(b, "\r\n");
}

char *
http_upstream_head(const struct http_msg *req, const char *host_port,
    const char *api_key, size_t bodylen, size_t *len)
{
	const struct http_header *h;
	struct sbuf b = { 0 };
	size_t i;

	sb_add(&b, req->method.p, req->method.len);
	sb_str(&b, " ");
	sb_add(&b, req->url.p, req->url.len);
	sb_printf(&b, " HTTP/1.1\r\nHost: %s\r\n", host_port);
	/* The client's credentials are the front door's (its token), never
	 * the server's: a server sees only the key poold gave it. */
	for (i = 0; i < req->nheaders; i++) {
		h = &req->headers[i];
		if (http_hop_by_hop(h->name.p, h->name.len) ||
		    span_ieq(&h->name, "host") ||
		    span_ieq(&h->name, "content-length") ||
		    span_ieq(&h->name, "authorization") ||
		    span_ieq(&h->name, "x-api-key"))
			continue;
		sb_header(&b, h);
	}
	if (api_key != NULL && api_key[0] != '\0')
		sb_printf(&b, "Authorization: Bearer %s\r\n", api_key);
	sb_printf(&b, "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	    bodylen);
	return sb_done(&b, len);
}

char *
http_client_head(const struct http_msg *resp, const struct http_span *origin,
    bool *keep_alive, size_t *len)
{
	const struct http_header *h;
	const struct http_span *ct;
	struct sbuf b = { 0 };
	size_t i;
	bool stream;
	bool bodyless = resp->status == 204 || resp->status == 304 ||
	    resp->status < 200;

	/* A body framed by the server's close ends the client's too; so
	 * does a de-chunked one. */
	if ((!resp->chunked && !resp->has_length && !bodyless) ||
	    (resp->chunked && resp->dechunk))
		*keep_alive = false;
	sb_printf(&b, "HTTP/1.1 %d ", resp->status);
	/* Its reason phrase if it is plain text (llhttp lets bytes pass). */
	for (i = 0; i < resp->reason.len; i++)
		if (!isprint((unsigned char)resp->reason.p[i]))
			break;
	if (resp->reason.len > 0 && i == resp->reason.len)
		sb_add(&b, resp->reason.p, resp->reason.len);
	else
		sb_str(&b, http_reason(resp->status));
	sb_str(&b, "\r\n");
	stream = (ct = http_msg_header(resp, "content-type")) != NULL &&
	    span_prefix_ieq(ct->p, ct->len, "text/event-stream");
	for (i = 0; i < resp->nheaders; i++) {
		h = &resp->headers[i];
		/* Its own framing is kept: the body goes as it came.  Its
		 * CORS answers are not: poold decides those. */
		if ((http_hop_by_hop(h->name.p, h->name.len) &&
		    !(resp->chunked && !resp->dechunk &&
		    span_ieq(&h->name, "transfer-encoding"))) ||
		    span_prefix_ieq(h->name.p, h->name.len,
		    "access-control-") ||
		    (stream && span_ieq(&h->name, "x-accel-buffering")))
			continue;
		sb_header(&b, h);
	}
	if (stream)
		sb_str(&b, "X-Accel-Buffering: no\r\n");
	if (origin != NULL && origin->p != NULL) {
		sb_str(&b, "Access-Control-Allow-Origin: ");
		sb_add(&b, origin->p, origin->len);
		sb_str(&b, "\r\nVary: Origin\r\n");
	}
	sb_str(&b, *keep_alive ? "Connection: keep-alive\r\n\r\n" :
	    "Connection: close\r\n\r\n");
	return sb_done(&b, len);
}
