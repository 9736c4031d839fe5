/*
 * fuzz_proto.c — libFuzzer target over protocol/proto.c: the framing
 * (proto_line), the request decoder and the reply decoder, fed whatever
 * bytes a client or a daemon could send.
 *
 * Besides "no crash, no leak, no undefined behaviour" it checks what the
 * daemon relies on:
 *   - proto_line finds each line once, never past the buffer;
 *   - whatever the line, the daemon can answer it: proto_encode_error of
 *     the decoder's code, message and id gives a line that decodes back
 *     to that code and id;
 *   - a request that decodes re-encodes (proto_encode_request) to a line
 *     that decodes to the same request;
 *   - a reply that decodes as an ACQUIRE reply re-encodes to the same.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz_proto: %s:%d: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* One '\n', at the end; not longer than the daemon accepts (+ '\n'). */
static void
check_line_shape(const char *s)
{
	size_t n;

	CHECK(s != NULL);
	n = strlen(s);
	CHECK(n >= 3 && s[n - 1] == '\n');
	CHECK(memchr(s, '\n', n - 1) == NULL);
}

/* The error line the daemon would send decodes to the same code and id. */
static void
check_error_reply(json_t *id, enum proto_err err, const char *msg)
{
	struct proto_reply rep;
	char m[PROTO_MESSAGE_MAX], *line;

	line = proto_encode_error(id, err, msg);
	check_line_shape(line);
	CHECK(proto_decode_reply(line, strlen(line) - 1, &rep, m, sizeof(m))
	    == PROTO_OK);
	CHECK(!rep.ok);
	CHECK(rep.err == err);
	CHECK(rep.message[0] != '\0');
	CHECK(id == NULL ? rep.id == NULL : json_equal(id, rep.id));
	proto_reply_clear(&rep);
	free(line);
}

static void
check_request_roundtrip(const struct proto_request *req)
{
	struct proto_request again;
	char m[PROTO_MESSAGE_MAX], *line;

	if ((line = proto_encode_request(req)) == NULL) {
		/* Escaping may lengthen a line past the limit; nothing else. */
		CHECK(errno == EMSGSIZE);
		return;
	}
	check_line_shape(line);
	CHECK(proto_decode_request(line, strlen(line) - 1, &again, m,
	    sizeof(m)) == PROTO_OK);
	CHECK(again.cmd == req->cmd);
	CHECK(strcmp(again.model, req->model) == 0);
	CHECK(again.lease == req->lease);
	CHECK(again.timeout_ms == req->timeout_ms);
	CHECK(again.hold == req->hold);
	CHECK(again.force == req->force);
	CHECK(req->id == NULL ? again.id == NULL :
	    json_equal(req->id, again.id));
	proto_request_clear(&again);
	free(line);
}

static void
check_request(const char *line, size_t len)
{
	struct proto_request req;
	char msg[PROTO_MESSAGE_MAX];
	enum proto_err err;

	memset(msg, 'x', sizeof(msg));
	proto_request_init(&req);
	err = proto_decode_request(line, len, &req, msg, sizeof(msg));
	CHECK((unsigned)err < PROTO_E__COUNT);
	CHECK(memchr(msg, '\0', sizeof(msg)) != NULL);
	CHECK(req.id == NULL || (!json_is_object(req.id) &&
	    !json_is_array(req.id)));
	if (err == PROTO_OK) {
		CHECK(req.cmd != PROTO_CMD_NONE);
		CHECK(proto_cmd_name(req.cmd) != NULL);
		if (req.cmd == PROTO_CMD_ACQUIRE || req.cmd == PROTO_CMD_EVICT)
			CHECK(proto_model_name_ok(req.model));
		if (req.cmd == PROTO_CMD_RELEASE)
			CHECK(req.lease > 0);
		CHECK(req.timeout_ms >= -1);
		check_request_roundtrip(&req);
		check_error_reply(req.id, PROTO_E_BUSY, "busy");
	} else {
		CHECK(msg[0] != '\0');
		CHECK(strcmp(proto_err_name(err), "ok") != 0);
		CHECK(proto_err_from_name(proto_err_name(err)) == err);
		check_error_reply(req.id, err, msg);
	}
	proto_request_clear(&req);
	CHECK(req.id == NULL);
}

static void
check_reply(const char *line, size_t len)
{
	struct proto_reply rep, again;
	struct proto_acquired a, b;
	char msg[PROTO_MESSAGE_MAX], *enc;
	enum proto_err err;

	err = proto_decode_reply(line, len, &rep, msg, sizeof(msg));
	CHECK(err == PROTO_OK || err == PROTO_E_BAD_REQUEST);
	if (err != PROTO_OK) {
		CHECK(rep.body == NULL && msg[0] != '\0');
		return;
	}
	CHECK(rep.body != NULL);
	if (!rep.ok) {
		CHECK(rep.err != PROTO_OK && rep.err < PROTO_E__COUNT);
		CHECK(memchr(rep.message, '\0', sizeof(rep.message)) != NULL);
	} else if (proto_reply_acquired(&rep, &a) == PROTO_OK) {
		CHECK(a.port >= 1 && a.port <= 65535 && a.lease >= 0);
		enc = proto_encode_acquired(rep.id, &a);
		check_line_shape(enc);
		CHECK(proto_decode_reply(enc, strlen(enc) - 1, &again, msg,
		    sizeof(msg)) == PROTO_OK);
		CHECK(again.ok);
		CHECK(proto_reply_acquired(&again, &b) == PROTO_OK);
		CHECK(strcmp(a.model, b.model) == 0 && a.port == b.port &&
		    strcmp(a.endpoint, b.endpoint) == 0 &&
		    a.lease == b.lease && a.cold == b.cold &&
		    a.wait_ms == b.wait_ms &&
		    strcmp(a.api_key, b.api_key) == 0 &&
		    strcmp(a.node, b.node) == 0);
		proto_reply_clear(&again);
		free(enc);
	}
	proto_reply_clear(&rep);
}

static void
check_text(const char *line, size_t len)
{
	char *s = malloc(len + 1);

	CHECK(s != NULL);
	memcpy(s, line, len);
	s[len] = '\0';
	if (proto_model_name_ok(s)) {
		CHECK(strlen(s) > 0 && strlen(s) <= PROTO_MODEL_NAME_MAX);
		CHECK(s[0] != '.' && s[0] != '-');
		CHECK(strchr(s, '/') == NULL);
	}
	(void)proto_err_from_name(s);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t off = 0, consumed;
	long len;

	while (off < size) {
		consumed = (size_t)-1;
		len = proto_line(buf + off, size - off, &consumed);
		if (len < 0) {
			/* No newline: what a client sends before it. */
			CHECK(memchr(buf + off, '\n', size - off) == NULL);
			len = (long)(size - off);
			consumed = size - off;
		} else {
			CHECK(consumed >= 1 && consumed <= size - off);
			CHECK(buf[off + consumed - 1] == '\n');
			CHECK((size_t)len < consumed);
			CHECK(memchr(buf + off, '\n', consumed - 1) == NULL);
		}
		check_request(buf + off, (size_t)len);
		check_reply(buf + off, (size_t)len);
		check_text(buf + off, (size_t)len);
		off += consumed;
	}
	return 0;
}
