/*
 * fuzz_http.c — libFuzzer target over supervisord/httpscan.c: the HTTP
 * front door's request and response scanner, the head's checks, the
 * body's model and the heads it writes, fed whatever a client or a model
 * server could send, cut into pieces as a socket would.
 *
 * The first byte picks a request or a response (de-chunked or not) and
 * the size of the pieces.  Besides "no crash, no leak, no undefined behaviour" it checks
 * what http.c relies on:
 *   - the scanner never takes more than it is given, and makes progress;
 *   - a request's body never passes max_body, its head never head_max;
 *   - every error has a status and a code;
 *   - the heads written for the server and the client end in a blank
 *     line and hold no header the proxy must drop.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz_http: %s:%d: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

#define MAX_BODY	4096

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_head_text(const char *h, size_t len)
{
	CHECK(h != NULL);
	CHECK(strlen(h) == len);
	CHECK(len >= 4 && memcmp(h + len - 4, "\r\n\r\n", 4) == 0);
	CHECK(strstr(h, "\r\nKeep-Alive:") == NULL);
	CHECK(strstr(h, "\r\nUpgrade:") == NULL);
}

static void
after_head(struct http_msg *m)
{
	static char *origins[] = { "http://a", NULL };
	struct http_policy open_pol = { NULL, 0, origins, 1, MAX_BODY };
	struct http_policy tok_pol = { "t0ken", 5, NULL, 0, MAX_BODY };
	struct http_verdict v;
	bool keep = m->keep_alive;
	size_t len;
	char *h;

	CHECK(m->head_len <= m->head_max);
	if (m->response) {
		h = http_client_head(m, NULL, &keep, &len);
		check_head_text(h, len);
		free(h);
		return;
	}
	http_check_head(m, &open_pol, &v);
	CHECK(v.status == 0 || (v.type != NULL && v.code != NULL));
	http_check_head(m, &tok_pol, &v);
	CHECK(v.status == 0 || (v.type != NULL && v.code != NULL));
	h = http_upstream_head(m, "127.0.0.1:8080", NULL, 12, &len);
	check_head_text(h, len);
	CHECK(strstr(h, "\r\nAuthorization:") == NULL);
	free(h);
	h = http_upstream_head(m, "[::1]:8080", "k", 12, &len);
	check_head_text(h, len);
	CHECK(strstr(h, "\r\nAuthorization: Bearer k\r\n") != NULL);
	free(h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_msg m;
	struct http_verdict v;
	char model[130];
	size_t off = 1, piece, used, n;
	enum http_scan r = HTTP_SCAN_MORE;

	if (size < 1)
		return 0;
	http_msg_init(&m, (data[0] & 1) != 0, (data[0] & 2) ? 256 :
	    HTTP_HEAD_MAX, MAX_BODY);
	piece = (size_t)((data[0] >> 2) & 0x1f) + 1;
	/* The top bit: a response de-chunked for an HTTP/1.0 client. */
	m.dechunk = m.response && (data[0] & 0x80) != 0;
	while (off < size) {
		n = size - off < piece ? size - off : piece;
		r = http_msg_feed(&m, (const char *)data + off, n, &used);
		CHECK(used <= n);
		if (r == HTTP_SCAN_ERROR) {
			CHECK(m.err_status >= 400 && m.err_code != NULL);
			break;
		}
		if (r == HTTP_SCAN_HEAD)
			after_head(&m);
		CHECK(m.body_len <= MAX_BODY);
		/* De-chunked data is at most what was fed (a head llhttp
		 * ends before its blank line holds some), and is taken. */
		if (m.dechunk) {
			CHECK(m.body_len <= used + m.head_len);
			m.body_len = 0;
		}
		if (r == HTTP_SCAN_DONE) {
			if (!m.response) {
				memset(&v, 0, sizeof(v));
				if (http_body_model(m.body, m.body_len, model,
				    sizeof(model), &v) == -1)
					CHECK(v.status >= 400 && v.code != NULL);
				else
					CHECK(strlen(model) < sizeof(model));
			}
			/* The next message on the connection. */
			http_msg_reset(&m);
		} else if (used == 0 && r == HTTP_SCAN_MORE)
			break;	/* a head that fills head_max waits no more */
		off += used;
		if (used == 0 && r != HTTP_SCAN_HEAD && r != HTTP_SCAN_DONE)
			break;
	}
	if (r != HTTP_SCAN_ERROR)
		(void)http_msg_finish(&m);
	http_msg_free(&m);
	return 0;
}
