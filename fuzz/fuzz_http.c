/*
 * fuzz_http.c — libFuzzer target over supervisord/httpscan.c, the HTTP
 * front door's scanner: whatever bytes a client (or a model's server)
 * could send, framed with llhttp, checked, and turned into the heads and
 * bodies poold sends on.
 *
 * The first byte picks how the rest is read: bit 0 as responses (a
 * server's) rather than requests, bits 1-3 the size of the pieces it is
 * fed in (1, 2, 3, 7, 16, 64, 512 bytes or all at once), bit 4 a small
 * head limit (256 bytes) and max_body (64).  Besides "no crash, no leak,
 * no undefined behaviour" it checks what the front door relies on:
 *   - a message read in pieces is read as in one piece: same end, same
 *     error status, and unless it fails the same bytes taken and body;
 *   - used never runs past the input, and a message that is done takes
 *     no more bytes (the rest is the next, pipelined, message's);
 *   - a request body never exceeds max_body;
 *   - a refused head has an OpenAI error (status, type, code, message);
 *   - the head sent upstream has one Host (127.0.0.1:PORT), one
 *     Content-Length (the body's), Connection: close, no hop-by-hop
 *     header, no bare CR or LF, no NUL, and ends at its one blank line;
 *     the head sent to a client likewise ends at its one blank line,
 *     has one Connection, and one X-Accel-Buffering: no for an event
 *     stream;
 *   - a model found in the body is non-empty, NUL-free and fits.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz_http: %s:%d: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

#define MESSAGES_MAX	8	/* pipelined messages looked at per input */
#define UP_PORT		41234
#define CONN_CLOSE	"\r\nConnection: close\r\n"
#define XAB_NO		"\r\nX-Accel-Buffering: no\r\n"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const size_t steps[8] = { 0, 1, 2, 3, 7, 16, 64, 512 };

/* What reading one message gave. */
struct outcome {
	enum http_scan	 end;
	size_t		 used;
	int		 err_status;
	size_t		 body_len;
	uint64_t	 body_sum;
};

static void	check_request_head(const struct http_msg *);
static void	check_response_head(const struct http_msg *);

/*
 * Feeds data in pieces of step bytes (0: all at once) until the message
 * is done, fails or the input is used up.  With check, the head is
 * checked when it is complete, as the front door does: before the body.
 */
static struct outcome
read_message(struct http_msg *m, const char *data, size_t len, size_t step,
    bool check)
{
	struct outcome o = { HTTP_SCAN_MORE, 0, 0, 0, 0 };
	size_t n, used, i;
	enum http_scan r;

	for (;;) {
		n = len - o.used;
		if (step > 0 && n > step)
			n = step;
		r = http_msg_feed(m, data + o.used, n, &used);
		CHECK(used <= n);
		o.used += used;
		o.end = r;
		if (r == HTTP_SCAN_HEAD && check)
			(m->response ? check_response_head :
			    check_request_head)(m);
		if (r == HTTP_SCAN_DONE || r == HTTP_SCAN_ERROR)
			break;
		if (r == HTTP_SCAN_MORE && o.used == len)
			break;
		/* A piece that ends no head and is not all taken: only
		 * the head's end may stop it short. */
		CHECK(used == n || r == HTTP_SCAN_HEAD);
	}
	if (o.end == HTTP_SCAN_ERROR) {
		o.err_status = m->err_status;
		CHECK(m->err_status >= 400 && m->err_status < 600);
		CHECK(m->err_code != NULL && m->err[0] != '\0');
	}
	if (o.end == HTTP_SCAN_DONE) {
		CHECK(m->done && m->head_done);
		/* Done takes nothing more. */
		CHECK(http_msg_feed(m, data + o.used, len - o.used, &used) ==
		    HTTP_SCAN_DONE && used == 0);
	}
	o.body_len = m->body_len;
	for (i = 0; i < m->body_len; i++)
		o.body_sum = o.body_sum * 131 + (unsigned char)m->body[i];
	return o;
}

/*
 * One blank line, at the end; every LF after a CR; with no_nul, no NUL
 * (a server's reason phrase may hold one: llhttp lets it through).
 */
static void
check_head_shape(const char *h, size_t len, bool no_nul)
{
	const char *blank;
	size_t i;

	CHECK(h != NULL && len >= 4);
	blank = memmem(h, len, "\r\n\r\n", 4);
	CHECK(blank == h + len - 4);
	for (i = 0; i < len; i++) {
		if (h[i] == '\n')
			CHECK(i > 0 && h[i - 1] == '\r');
		if (h[i] == '\r')
			CHECK(i + 1 < len && h[i + 1] == '\n');
		CHECK(!no_nul || h[i] != '\0');
	}
}

/* Lines of head that start with name and a colon, any case. */
static int
header_count(const char *h, size_t len, const char *name)
{
	const char *p = h, *end = h + len;
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

static void
check_upstream_head(const struct http_msg *m, bool drop_auth)
{
	static const char *const hop[] = { "connection", "keep-alive", "te",
	    "trailer", "transfer-encoding", "upgrade", "expect",
	    "proxy-authorization" };
	char want[64];
	size_t len, i;
	char *h;

	if ((h = http_upstream_head(m, UP_PORT, m->body_len, drop_auth,
	    &len)) == NULL)
		return;		/* out of memory */
	check_head_shape(h, len, true);
	snprintf(want, sizeof(want), "\r\nHost: 127.0.0.1:%d\r\n", UP_PORT);
	CHECK(memmem(h, len, want, strlen(want)) != NULL);
	CHECK(header_count(h, len, "host") == 1);
	snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n",
	    m->body_len);
	CHECK(memmem(h, len, want, strlen(want)) != NULL);
	CHECK(header_count(h, len, "content-length") == 1);
	CHECK(header_count(h, len, "connection") == 1);
	CHECK(memmem(h, len, CONN_CLOSE, strlen(CONN_CLOSE)) != NULL);
	for (i = 1; i < sizeof(hop) / sizeof(hop[0]); i++)
		CHECK(header_count(h, len, hop[i]) == 0);
	if (drop_auth)
		CHECK(header_count(h, len, "authorization") == 0 &&
		    header_count(h, len, "x-api-key") == 0);
	free(h);
}

static void
check_verdict(const struct http_verdict *v)
{
	switch (v->status) {
	case 0:
		CHECK(v->route != HTTP_ROUTE_NONE);
		return;
	case 401: case 403: case 404: case 405: case 413:
		CHECK(v->type != NULL && v->code != NULL);
		CHECK(v->message[0] != '\0');
		return;
	default:
		CHECK(!"an unexpected verdict status");
	}
}

static void
check_body(const struct http_msg *m)
{
	static char *const aliases[] = { "gpt-4o-mini", "tiny", "a", "b" };
	struct http_verdict v;
	char model[64];
	const char *to;
	char *err;

	memset(&v, 0, sizeof(v));
	CHECK(m->body_len <= m->max_body);
	if (http_body_model(m->body, m->body_len, model, sizeof(model),
	    &v) == 0) {
		CHECK(model[0] != '\0' && strlen(model) < sizeof(model));
		to = http_alias_resolve(aliases, 2, model);
		CHECK(to != NULL && to[0] != '\0');
	} else {
		CHECK(v.status == 400 || v.status == 404);
		CHECK(v.code != NULL && v.message[0] != '\0');
		if ((err = http_error_body(v.message, v.type, v.code)) !=
		    NULL) {
			CHECK(strstr(err, "{\"error\":{") == err);
			free(err);
		}
	}
}

static void
check_request_head(const struct http_msg *m)
{
	static char *const cors[] = { "http://app.example" };
	const struct http_policy open = { NULL, 0, NULL, 0, m->max_body };
	const struct http_policy tok = { "s3cret", 6, cors, 1, m->max_body };
	struct http_verdict v;

	http_check_head(m, &open, &v);
	check_verdict(&v);
	http_check_head(m, &tok, &v);
	check_verdict(&v);
	if (v.status == 0 && v.route == HTTP_ROUTE_PROXY)
		CHECK(v.origin.p == NULL || v.origin.len == 18);
}

static void
check_response_head(const struct http_msg *m)
{
	struct http_span origin = { "http://app.example", 18 };
	const struct http_span *ct;
	bool keep_alive = true;
	size_t len;
	char *h;

	if ((h = http_client_head(m, &origin, &keep_alive, &len)) == NULL)
		return;
	check_head_shape(h, len, false);
	CHECK(header_count(h, len, "connection") == 1);
	/* An event stream is marked once, whatever the server said. */
	ct = http_msg_header(m, "content-type");
	if (ct != NULL && ct->len >= 17 &&
	    strncasecmp(ct->p, "text/event-stream", 17) == 0)
		CHECK(header_count(h, len, "x-accel-buffering") == 1 &&
		    memmem(h, len, XAB_NO, strlen(XAB_NO)) != NULL);
	free(h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_msg whole, piece;
	struct outcome a, b;
	const char *buf = (const char *)data + 1;
	size_t len, off = 0, head_max, step;
	uint64_t max_body;
	bool response;
	int n;

	if (size < 1)
		return 0;
	len = size - 1;
	response = data[0] & 1;
	step = steps[(data[0] >> 1) & 7];
	head_max = data[0] & 16 ? 256 : (response ? HTTP_RESP_HEAD_MAX :
	    HTTP_HEAD_MAX);
	max_body = data[0] & 16 ? 64 : 4096;

	http_msg_init(&whole, response, head_max, max_body);
	http_msg_init(&piece, response, head_max, max_body);
	for (n = 0; n < MESSAGES_MAX && off < len; n++) {
		a = read_message(&whole, buf + off, len - off, 0, true);
		b = read_message(&piece, buf + off, len - off, step, false);
		CHECK(a.end == b.end);
		/* An error stops where each run was: only the rest agrees. */
		CHECK(a.end == HTTP_SCAN_ERROR || a.used == b.used);
		CHECK(a.err_status == b.err_status);
		CHECK(a.end == HTTP_SCAN_ERROR || (a.body_len == b.body_len &&
		    a.body_sum == b.body_sum));
		if (a.end != HTTP_SCAN_DONE) {
			if (response && a.end == HTTP_SCAN_MORE)
				(void)http_msg_finish(&whole);
			break;
		}
		if (!response) {
			check_body(&whole);
			check_upstream_head(&whole, true);
			check_upstream_head(&whole, false);
		}
		CHECK(a.used > 0 || whole.head_len > 0);
		off += a.used;
		http_msg_reset(&whole);
		http_msg_reset(&piece);
	}
	http_msg_free(&whole);
	http_msg_free(&piece);
	return 0;
}
