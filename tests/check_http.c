/*
 * check_http.c — the HTTP front door's contract (issue 10), against the
 * real poold with stand-in servers in their streaming mode
 * (build/fakellama: "stream_tokens", "stream_delay_ms", ... in a model
 * file; its GET /debug/stats tells what the upstream side saw).
 *
 * Every test starts poold with "http": {"listen": "127.0.0.1:0"} and
 * reads the bound address from STATS ("http"."listen"), then talks to it
 * with testlib's raw-socket client (tl_http_*).  Nothing waits for a
 * fixed time where a condition can be polled; the bounds on time and
 * memory are loose, for a loaded 2-core machine.
 *
 * Environment: POOLD_BIN, FAKELLAMA_BIN (make check sets them).
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "testlib.h"

#define MIB			(1024LL * 1024)
#define WAIT_MS			10000	/* for a condition to hold */
#define STREAM_WAIT_MS		30000	/* for a whole stream */
#define EVENTS_MAX		64

#define CHAT_PATH		"/v1/chat/completions"
#define MESSAGES		"\"messages\":[{\"role\":\"user\"," \
				"\"content\":\"hi\"}]"
#define CHAT(model)		"{\"model\":\"" model "\"," MESSAGES "}"
#define CHAT_STREAM(model)	"{\"model\":\"" model "\"," MESSAGES \
				",\"stream\":true}"
#define JSON_HEADER		"Content-Type: application/json\r\n"

/* --- helpers ------------------------------------------------------ */

/*
 * Starts poold with the front door on 127.0.0.1:0, the "http" keys of
 * http_extra (",\"key\":value..." or NULL) and the top-level keys of
 * extra (the same), and returns the port it bound, from STATS.
 */
static int
start_door(struct tl_daemon *d, struct tl_conn **cp, const char *http_extra,
    const char *extra)
{
	char over[4096];
	const char *listen, *colon;
	json_t *st;
	long long dl;
	int port = 0;

	snprintf(over, sizeof(over), "{\"http\":{\"listen\":\"127.0.0.1:0\""
	    "%s}%s}", http_extra ? http_extra : "", extra ? extra : "");
	tl_daemon_start(d, over);
	*cp = tl_connect(d);
	dl = tl_now_ms() + WAIT_MS;
	do {
		st = tl_stats(d, *cp);
		listen = tl_str(st, "http.listen");
		if (listen != NULL && (colon = strrchr(listen, ':')) != NULL)
			port = atoi(colon + 1);
		json_decref(st);
		if (port > 0)
			break;
		tl_sleep_ms(50);
	} while (tl_now_ms() < dl);
	TL_ASSERT(port > 0, "no port in STATS http.listen within %d ms",
	    WAIT_MS);
	return port;
}

/* The port of model's stand-in, from STATS; fails if it is not running. */
static int
fake_port(struct tl_daemon *d, struct tl_conn *c, const char *model)
{
	json_t *st = tl_stats(d, c), *srv = tl_server(st, model);
	int port;

	TL_ASSERT(srv != NULL, "'%s' is not running: %s", model, tl_dump(st));
	port = (int)tl_int(srv, "port");
	json_decref(st);
	return port;
}

/* A number from the stand-in's GET /debug/stats. */
static long long
fake_stat(int port, const char *key)
{
	struct tl_http *h = tl_http_request(port, "GET", "/debug/stats",
	    NULL, NULL, WAIT_MS);
	json_t *j;
	long long v;

	TL_ASSERT(h->status == 200, "GET /debug/stats of the stand-in on %d:"
	    " %d", port, h->status);
	j = tl_http_json(h);
	v = tl_int(j, key);
	json_decref(j);
	tl_http_close(h);
	return v;
}

/* STATS servers[model].leases, -1 if it is not running. */
static bool
leases_are(struct tl_daemon *d, struct tl_conn *c, const char *model,
    long long want)
{
	long long n = tl_server_leases(d, c, model);

	return n == want || (want == 0 && n == -1);
}

/*
 * Sends a request (Host 127.0.0.1:port unless headers has one,
 * Connection: close, Content-Length of body) and returns at once.
 */
static struct tl_http *
send_request(int port, const char *method, const char *path,
    const char *headers, const char *body)
{
	struct tl_http *h = tl_http_open(port);
	bool host = headers != NULL && strcasestr(headers, "host:") != NULL;

	TL_ASSERT(tl_http_sendf(h, "%s %s HTTP/1.1\r\n%s%s%s"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", method, path,
	    host ? "" : "Host: 127.0.0.1\r\n", JSON_HEADER,
	    headers ? headers : "", body ? strlen(body) : 0,
	    body ? body : "") == 0, "%s %s: send: %s", method, path,
	    strerror(errno));
	return h;
}

static struct tl_http *
post_chat(int port, const char *headers, const char *body)
{
	struct tl_http *h = send_request(port, "POST", CHAT_PATH, headers,
	    body);

	tl_http_wait_done(h, STREAM_WAIT_MS);
	TL_ASSERT(h->head_done, "POST %s %.200s: no response head", CHAT_PATH,
	    body);
	return h;
}

/*
 * Fails unless h is an error of this status in OpenAI's shape, with this
 * error.code if code is not NULL.
 */
static void
expect_openai_error(const struct tl_http *h, int status, const char *code,
    const char *what)
{
	const char *msg, *type, *got;
	json_t *j;

	TL_ASSERT(h->status == status, "%s: HTTP %d, not %d: %.300s", what,
	    h->status, status, h->body ? h->body : "");
	j = tl_http_json(h);
	msg = tl_str(j, "error.message");
	type = tl_str(j, "error.type");
	got = tl_str(j, "error.code");
	TL_ASSERT(msg != NULL && *msg != '\0' && type != NULL,
	    "%s: not OpenAI's error shape: %s", what, tl_dump(j));
	TL_ASSERT(code == NULL || (got != NULL && strcmp(got, code) == 0),
	    "%s: error.code is not \"%s\": %s", what, code, tl_dump(j));
	json_decref(j);
}

/* Reads a stream, noting when each event arrived (times[i], ms). */
static void
read_stream(struct tl_http *h, long long *times, long max,
    long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms;
	long seen = 0;

	while (!h->done && !h->eof && !h->bad && tl_now_ms() < dl) {
		tl_http_read(h, 1000);
		/* Entries already set (by the caller) are kept. */
		for (; seen < h->events; seen++)
			if (seen < max && times[seen] == 0)
				times[seen] = tl_now_ms();
	}
}

/* Reads until at least n events came; fails if they do not. */
static void
read_events(struct tl_http *h, long n, const char *what)
{
	long long dl = tl_now_ms() + STREAM_WAIT_MS;

	while (h->events < n && !h->eof && !h->bad && tl_now_ms() < dl)
		tl_http_read(h, 1000);
	TL_ASSERT(h->events >= n, "%s: %ld events, not %ld, within %d ms "
	    "(HTTP %d, eof %d): %.300s", what, h->events, n, STREAM_WAIT_MS,
	    h->status, h->eof, h->body ? h->body : "");
}

/* --- 1. tokens arrive as they are made ---------------------------- */

/*
 * Pass: a streamed chat completion of 8 events 250 ms apart through the
 * front door is 200 text/event-stream with X-Accel-Buffering: no; its
 * events reach the client spread over at least half the upstream's
 * 1750 ms (a proxy that buffers delivers them together); it ends with
 * [DONE] and the final chunk.  While it streams, the model's server has
 * one lease; after it, none.
 */
START_TEST(test_stream_incremental)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	long long times[EVENTS_MAX] = { 0 };
	const char *ct, *xab;
	bool ok;
	int port;

	tl_daemon_init(&d, 1);
	tl_model(&d, "a", "load_ms=50\nmem=1M\nstream_tokens=8\n"
	    "stream_delay_ms=250\n");
	port = start_door(&d, &c, NULL, NULL);

	h = send_request(port, "POST", CHAT_PATH, NULL, CHAT_STREAM("a"));
	read_events(h, 1, "stream of a");
	TL_ASSERT(leases_are(&d, c, "a", 1), "a streams, but STATS shows %lld"
	    " leases on its server", tl_server_leases(&d, c, "a"));
	read_stream(h, times, EVENTS_MAX, STREAM_WAIT_MS);

	ct = tl_http_header(h, "Content-Type");
	xab = tl_http_header(h, "X-Accel-Buffering");
	TL_ASSERT(h->status == 200 && ct != NULL &&
	    strncmp(ct, "text/event-stream", 17) == 0, "stream: HTTP %d, "
	    "Content-Type %s", h->status, ct ? ct : "(none)");
	TL_ASSERT(xab != NULL && strcasecmp(xab, "no") == 0,
	    "X-Accel-Buffering is %s, not no:\n%s", xab ? xab : "(none)",
	    h->head);
	TL_ASSERT(h->done && !h->bad, "stream did not end with its final "
	    "chunk (eof %d, bad %d)", h->eof, h->bad);
	/* The last event and [DONE] come in one piece: 9 in all. */
	TL_ASSERT(h->events == 9 && strstr(h->body, "data: [DONE]") != NULL,
	    "%ld events, not 8 + [DONE]: %.400s", h->events, h->body);
	TL_ASSERT(times[7] - times[0] >= 875, "the 8 events reached the "
	    "client within %lld ms; the upstream spread them over 1750 ms",
	    times[7] - times[0]);
	printf("check_http: [stream] 8 events, first to last %lld ms at the "
	    "client (upstream: 1750 ms)\n", times[7] - times[0]);
	tl_http_close(h);
	TL_WAIT_UNTIL(ok, leases_are(&d, c, "a", 0), WAIT_MS);
	TL_ASSERT(ok, "a's lease not released after its stream: %lld",
	    tl_server_leases(&d, c, "a"));
	/* One line per request: model, status, bytes, ttfb, total. */
	TL_WAIT_UNTIL(ok, tl_log_has(&d, "http: a 200 "), WAIT_MS);
	TL_ASSERT(ok && tl_log_has(&d, " ttfb="), "no request line "
	    "\"http: a 200 BYTES ttfb=... total=...\" in poold's log");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 2. a client that goes away mid-stream ------------------------ */

/*
 * Pass: a's stand-in sends one event, then nothing for 30 s (a long
 * generation step: no byte flows that could fail on a write).  Closing
 * the client then ends the lease (STATS leases 0, http conns 0) and
 * closes the upstream within 10 s: the stand-in records one disconnect
 * and no finished stream.
 */
START_TEST(test_abort_mid_stream)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	int port, fport;
	bool ok;

	tl_daemon_init(&d, 2);
	tl_model(&d, "a", "load_ms=50\nmem=1M\nstream_tokens=3\n"
	    "stream_delay_ms=30000\nclient_idle_ms=120000\n");
	port = start_door(&d, &c, NULL, NULL);

	h = send_request(port, "POST", CHAT_PATH, NULL, CHAT_STREAM("a"));
	read_events(h, 1, "stream of a");
	fport = fake_port(&d, c, "a");
	TL_ASSERT(leases_are(&d, c, "a", 1), "a streams with %lld leases",
	    tl_server_leases(&d, c, "a"));
	tl_http_close(h);

	TL_WAIT_UNTIL(ok, leases_are(&d, c, "a", 0), WAIT_MS);
	TL_ASSERT(ok, "the lease outlived its client by %d ms: %lld leases",
	    WAIT_MS, tl_server_leases(&d, c, "a"));
	TL_WAIT_UNTIL(ok, fake_stat(fport, "disconnects") == 1, WAIT_MS);
	TL_ASSERT(ok, "the upstream was not closed within %d ms of the "
	    "client: the stand-in saw %lld disconnects", WAIT_MS,
	    fake_stat(fport, "disconnects"));
	TL_ASSERT(fake_stat(fport, "streams_finished") == 0,
	    "the upstream stream ran to its end");
	TL_WAIT_UNTIL(ok, tl_stats_int(&d, c, "http.conns") == 0, WAIT_MS);
	TL_ASSERT(ok, "STATS http.conns is %lld after the client left",
	    tl_stats_int(&d, c, "http.conns"));
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 2b. a long silence of the upstream is no timeout -------------- */

/*
 * Pass: with head_timeout 2s and idle_timeout 3s, a stream whose second
 * event comes 7 s after its first (a long prefill or a slow step: no
 * upstream idle timeout by default) reaches the client whole, and the
 * control socket keeps answering meanwhile.
 */
START_TEST(test_long_silence)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	int port;

	tl_daemon_init(&d, 16);
	tl_model(&d, "a", "load_ms=50\nmem=1M\nstream_tokens=2\n"
	    "stream_delay_ms=7000\nclient_idle_ms=120000\n");
	port = start_door(&d, &c, ",\"head_timeout\":\"2s\","
	    "\"idle_timeout\":\"3s\"", NULL);

	h = send_request(port, "POST", CHAT_PATH, NULL, CHAT_STREAM("a"));
	read_events(h, 1, "stream of a");
	while (!h->done && !h->eof && !h->bad) {
		tl_http_read(h, 1000);
		TL_ASSERT(leases_are(&d, c, "a", h->done ? 0 : 1) ||
		    h->done, "a streams with %lld leases",
		    tl_server_leases(&d, c, "a"));
	}
	TL_ASSERT(h->done && h->events == 3, "a stream with 7 s between its "
	    "events was cut: done %d, eof %d, %ld events: %.300s", h->done,
	    h->eof, h->events, h->body);
	tl_http_close(h);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 3. a client that stops reading ------------------------------- */

#define STALL_EVENTS	4000
#define STALL_EVENT_KB	16		/* 4000 x 16K: 64 MiB in all */
#define STALL_RSS_MAX	(24 * MIB)	/* poold's growth while it stalls */

/*
 * Pass: a client reads the first event of a 64 MiB stream and then
 * nothing: once the upstream stops making progress (or after 20 s)
 * poold's VmRSS has grown by less than 24 MiB and the upstream has not
 * finished (it is held back, not buffered); then the client reads on
 * and gets all 4000 events, [DONE] and the final chunk.
 */
START_TEST(test_stalled_reader)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	long long rss0, rss, rss_max, sent, last_sent = -1, dl, stable_since;
	int port, fport;

	tl_daemon_init(&d, 3);
	tl_model(&d, "a", "load_ms=50\nmem=1M\nstream_tokens=%d\n"
	    "stream_token_bytes=%dK\nstream_delay_ms=0\nclient_idle_ms=600000\n",
	    STALL_EVENTS, STALL_EVENT_KB);
	port = start_door(&d, &c, NULL, NULL);

	h = send_request(port, "POST", CHAT_PATH, NULL, CHAT_STREAM("a"));
	h->keep_body = false;
	read_events(h, 1, "stream of a");
	fport = fake_port(&d, c, "a");
	rss0 = rss_max = tl_proc_rss(d.pid);
	TL_ASSERT(rss0 > 0, "no VmRSS for poold %d", (int)d.pid);

	/* Stall: wait until the upstream is held back (no progress). */
	dl = tl_now_ms() + 20000;
	stable_since = tl_now_ms();
	while (tl_now_ms() < dl) {
		tl_sleep_ms(200);
		if ((rss = tl_proc_rss(d.pid)) > rss_max)
			rss_max = rss;
		sent = fake_stat(fport, "events_sent");
		if (sent != last_sent) {
			last_sent = sent;
			stable_since = tl_now_ms();
		} else if (tl_now_ms() - stable_since >= 1500)
			break;
	}
	printf("check_http: [stall] poold VmRSS %.1f MiB, at most %.1f MiB "
	    "while the client stalls; the upstream made %lld of %d events "
	    "(%.1f MiB)\n", (double)rss0 / MIB, (double)rss_max / MIB,
	    last_sent, STALL_EVENTS, (double)last_sent * STALL_EVENT_KB /
	    1024);
	TL_ASSERT(fake_stat(fport, "streams_finished") == 0 &&
	    last_sent < STALL_EVENTS, "the upstream finished its %d MiB while "
	    "the client read nothing: poold buffered it",
	    STALL_EVENTS * STALL_EVENT_KB / 1024);
	TL_ASSERT(rss_max - rss0 < STALL_RSS_MAX, "poold grew by %.1f MiB "
	    "while its client stalled", (double)(rss_max - rss0) / MIB);

	read_stream(h, NULL, 0, 120000);
	TL_ASSERT(h->done && h->events == STALL_EVENTS + 1 &&
	    strstr(h->body, "data: [DONE]") != NULL, "after the stall: done "
	    "%d, %ld events of %d + [DONE], %llu bytes", h->done, h->events,
	    STALL_EVENTS, h->body_total);
	tl_http_close(h);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 4. 413 before the body, Expect: 100-continue ------------------ */

/*
 * Pass: with max_body 64K, a head announcing 10 MB is answered 413
 * (code body_too_large) without any body sent; with Expect:
 * 100-continue, too, and no 100 comes first; a chunked body past 64K
 * gets 413 too; no server was started for any of them.
 */
START_TEST(test_too_large)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	char chunk[16384];
	int port, i;

	tl_daemon_init(&d, 4);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	port = start_door(&d, &c, ",\"max_body\":\"64K\"", NULL);

	h = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(h, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    JSON_HEADER "Content-Length: 10000000\r\n\r\n", CHAT_PATH) == 0,
	    "send the head");
	TL_ASSERT(tl_http_wait_done(h, WAIT_MS), "no whole answer to a 10 MB "
	    "Content-Length within %d ms, with no body sent (HTTP %d)",
	    WAIT_MS, h->status);
	expect_openai_error(h, 413, "body_too_large", "Content-Length 10 MB");
	tl_http_close(h);

	h = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(h, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    JSON_HEADER "Expect: 100-continue\r\nContent-Length: 10000000\r\n"
	    "\r\n", CHAT_PATH) == 0, "send the head");
	TL_ASSERT(tl_http_wait_done(h, WAIT_MS), "no whole answer to Expect "
	    "with a 10 MB Content-Length (HTTP %d)", h->status);
	TL_ASSERT(!h->saw_continue, "100 Continue for a body past max_body");
	expect_openai_error(h, 413, "body_too_large", "Expect, 10 MB");
	tl_http_close(h);

	/* Chunked: the limit holds on what comes, not on a header. */
	h = tl_http_open(port);
	memset(chunk, ' ', sizeof(chunk));
	(void)tl_http_sendf(h, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    JSON_HEADER "Transfer-Encoding: chunked\r\n\r\n%zx\r\n{\"model\":"
	    "\"a\",\"pad\":\"\r\n", CHAT_PATH, strlen("{\"model\":\"a\","
	    "\"pad\":\""));
	/* poold may answer and close before all of it is sent. */
	for (i = 0; i < 8 && !h->head_done; i++) {
		if (tl_http_sendf(h, "%zx\r\n", sizeof(chunk)) == -1 ||
		    tl_http_send(h, chunk, sizeof(chunk)) == -1 ||
		    tl_http_send(h, "\r\n", 2) == -1)
			break;
		tl_http_read(h, 0);
	}
	(void)tl_http_sendf(h, "1\r\n\"\r\n1\r\n}\r\n0\r\n\r\n");
	tl_http_wait_done(h, WAIT_MS);
	TL_ASSERT(h->head_done, "no answer to a 128K chunked body");
	expect_openai_error(h, 413, "body_too_large", "chunked, 128K");
	tl_http_close(h);

	TL_ASSERT(tl_stats_int(&d, c, "running") == 0, "a server started for "
	    "a request refused at its head");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: a client that stops reading a response is closed after
 * idle_timeout (2 s here) with nothing taken, and its lease ends, so it
 * cannot pin a server's memory for ever; the log says why.  (The
 * stalled reader above reads again within the default 60 s.)
 */
START_TEST(test_reader_gone_quiet)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	long long dl;
	int port;

	tl_daemon_init(&d, 3);
	tl_model(&d, "a", "load_ms=50\nmem=1M\nstream_tokens=%d\n"
	    "stream_token_bytes=%dK\nstream_delay_ms=0\nclient_idle_ms=600000\n",
	    STALL_EVENTS, STALL_EVENT_KB);
	port = start_door(&d, &c, ",\"idle_timeout\":\"2s\"", NULL);

	h = send_request(port, "POST", CHAT_PATH, NULL,
	    CHAT_STREAM("a"));
	h->keep_body = false;
	read_events(h, 1, "stream of a");
	TL_ASSERT(tl_server_leases(&d, c, "a") == 1, "no lease while a "
	    "streams");
	/* Read nothing more: within 2 s of the last byte taken, plus
	 * slack for a loaded machine, the lease must end. */
	dl = tl_now_ms() + 20000;
	while (tl_now_ms() < dl && tl_server_leases(&d, c, "a") != 0)
		tl_sleep_ms(100);
	TL_ASSERT(tl_server_leases(&d, c, "a") == 0, "the lease of a client "
	    "that reads nothing is still held 20 s on (idle_timeout 2 s)");
	TL_ASSERT(tl_log_has(&d, "took nothing of its response"), "no log "
	    "line for the closed reader");
	tl_http_close(h);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* Polls STATS until the integer at path is want; false if it never is. */
static bool
stats_int_becomes(struct tl_daemon *d, struct tl_conn *c, const char *path,
    long long want, long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms;

	do {
		if (tl_stats_int(d, c, path) == want)
			return true;
		tl_sleep_ms(20);
	} while (tl_now_ms() < dl);
	return false;
}

/*
 * Pass: with max_body and max_body_total 64K, a client that has sent
 * the head of a 48K body (and is still sending it) holds 48K of the
 * total: a second 48K request gets 503 busy with Retry-After, naming
 * max_body_total, before its body is read; once the first is done, the
 * same request is served.  STATS http.body_bytes shows what is held.
 */
START_TEST(test_body_total)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *a, *b;
	char *body;
	size_t len = 48 * 1024, head;	/* the stand-in takes 64K */
	int port;
	json_t *j;
	const char *msg;

	tl_daemon_init(&d, 4);
	tl_model(&d, "a", "load_ms=10\nmem=1M\n");
	port = start_door(&d, &c, ",\"max_body\":\"64K\","
	    "\"max_body_total\":\"64K\"", NULL);
	body = malloc(len + 1);
	TL_ASSERT(body != NULL, "malloc");
	head = (size_t)snprintf(body, len, "{\"model\":\"a\",\"pad\":\"");
	memset(body + head, 'x', len - head - 2);
	memcpy(body + len - 2, "\"}", 2);
	body[len] = '\0';

	a = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(a, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    JSON_HEADER "Content-Length: %zu\r\n\r\n", CHAT_PATH, len) == 0,
	    "send a's head");
	TL_ASSERT(tl_http_send(a, body, 1000) == 0, "send a's first bytes");
	TL_ASSERT(stats_int_becomes(&d, c, "http.body_bytes", (long long)len,
	    WAIT_MS), "a's 48K not counted in STATS http.body_bytes");

	b = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(b, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    JSON_HEADER "Content-Length: %zu\r\n\r\n", CHAT_PATH, len) == 0,
	    "send b's head");
	TL_ASSERT(tl_http_wait_done(b, WAIT_MS), "no answer to b's head "
	    "within %d ms while a's body holds the total", WAIT_MS);
	expect_openai_error(b, 503, "busy", "b past max_body_total");
	TL_ASSERT(tl_http_header(b, "retry-after") != NULL, "503 without "
	    "Retry-After");
	j = tl_http_json(b);
	msg = tl_str(j, "error.message");
	TL_ASSERT(msg != NULL && strstr(msg, "max_body_total") != NULL,
	    "the message does not name max_body_total: %s", tl_dump(j));
	json_decref(j);
	tl_http_close(b);

	TL_ASSERT(tl_http_send(a, body + 1000, len - 1000) == 0,
	    "send the rest of a's body");
	TL_ASSERT(tl_http_wait_done(a, STREAM_WAIT_MS), "a not answered");
	TL_ASSERT(a->status == 200, "a: HTTP %d: %.300s", a->status,
	    a->body ? a->body : "");
	tl_http_close(a);
	TL_ASSERT(stats_int_becomes(&d, c, "http.body_bytes", 0, WAIT_MS),
	    "a's body still counted after its response");

	b = send_request(port, "POST", CHAT_PATH, NULL, body);
	TL_ASSERT(tl_http_wait_done(b, STREAM_WAIT_MS), "b again: no answer");
	TL_ASSERT(b->status == 200, "b again: HTTP %d: %.300s", b->status,
	    b->body ? b->body : "");
	tl_http_close(b);
	free(body);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: Expect: 100-continue on a good head gets "100 Continue" before
 * the body is sent, then 200 once it is; on a head that fails a check
 * (Host evil.example, no token), a final 4xx comes and no 100.
 */
START_TEST(test_expect_continue)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	const char *body = CHAT("a");
	long long dl;
	int port;

	tl_daemon_init(&d, 5);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	port = start_door(&d, &c, NULL, NULL);

	h = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(h, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    JSON_HEADER "Expect: 100-continue\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", CHAT_PATH, strlen(body)) == 0,
	    "send the head");
	dl = tl_now_ms() + WAIT_MS;
	while (!h->saw_continue && !h->head_done && !h->eof &&
	    tl_now_ms() < dl)
		tl_http_read(h, 500);
	TL_ASSERT(h->saw_continue && !h->head_done, "no 100 Continue within "
	    "%d ms for a good head (HTTP %d): %.200s", WAIT_MS, h->status,
	    h->head ? h->head : "");
	TL_ASSERT(tl_http_send(h, body, strlen(body)) == 0, "send the body");
	TL_ASSERT(tl_http_wait_done(h, STREAM_WAIT_MS) && h->status == 200,
	    "after 100 Continue and the body: HTTP %d: %.300s", h->status,
	    h->body ? h->body : "");
	tl_http_close(h);

	h = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(h, "POST %s HTTP/1.1\r\nHost: evil.example\r\n"
	    JSON_HEADER "Expect: 100-continue\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", CHAT_PATH, strlen(body)) == 0,
	    "send the head");
	tl_http_wait_head(h, WAIT_MS);
	TL_ASSERT(h->head_done && h->status >= 400 && h->status < 500 &&
	    !h->saw_continue, "Host evil.example with Expect: HTTP %d, 100 "
	    "Continue %s", h->status, h->saw_continue ? "sent" : "not sent");
	tl_http_close(h);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 5. chunked request bodies ------------------------------------ */

/*
 * Pass: a 3 KB body sent chunked, in 7 pieces 50 ms apart, is answered
 * 200 by a's stand-in, which got all of its bytes; a streamed request
 * sent chunked streams.
 */
START_TEST(test_chunked_request)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	char body[4096];
	size_t len, at, n;
	json_t *j;
	int port;

	tl_daemon_init(&d, 6);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	port = start_door(&d, &c, NULL, NULL);

	len = (size_t)snprintf(body, sizeof(body), "{\"model\":\"a\",%s,"
	    "\"pad\":\"%3000d\"}", MESSAGES, 7);
	h = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(h, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    JSON_HEADER "Transfer-Encoding: chunked\r\nConnection: close\r\n"
	    "\r\n", CHAT_PATH) == 0, "send the head");
	for (at = 0; at < len; at += n) {
		n = len - at < 500 ? len - at : 500;
		TL_ASSERT(tl_http_sendf(h, "%zx\r\n%.*s\r\n", n, (int)n,
		    body + at) == 0, "send a chunk");
		tl_sleep_ms(50);
	}
	TL_ASSERT(tl_http_sendf(h, "0\r\n\r\n") == 0, "send the last chunk");
	tl_http_wait_done(h, STREAM_WAIT_MS);
	TL_ASSERT(h->status == 200, "chunked body: HTTP %d: %.300s",
	    h->status, h->body ? h->body : "");
	j = tl_http_json(h);
	TL_ASSERT(tl_int(j, "fakellama.body_bytes") == (long long)len,
	    "the stand-in got %lld bytes of the %zu sent chunked",
	    tl_int(j, "fakellama.body_bytes"), len);
	json_decref(j);
	tl_http_close(h);

	h = tl_http_open(port);
	len = strlen(CHAT_STREAM("a"));
	TL_ASSERT(tl_http_sendf(h, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    JSON_HEADER "Transfer-Encoding: chunked\r\nConnection: close\r\n"
	    "\r\n%zx\r\n%s\r\n0\r\n\r\n", CHAT_PATH, len, CHAT_STREAM("a")) ==
	    0, "send");
	read_stream(h, NULL, 0, STREAM_WAIT_MS);
	TL_ASSERT(h->status == 200 && h->done && h->events == 4,
	    "streamed, chunked body: HTTP %d, done %d, %ld events: %.300s",
	    h->status, h->done, h->events, h->body ? h->body : "");
	tl_http_close(h);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: a chunked request's trailers are not headers.  (1) Sent with a
 * trailer and, in the same write, a second request of other bytes, it
 * is answered 200 and the head a's stand-in got holds neither the
 * trailer nor any of the second request's bytes.  (2) With its trailer
 * cut in two writes 200 ms apart, it is answered 200 all the same.
 */
START_TEST(test_chunked_trailers)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h, *g;
	char req[2048], junk[1024];
	const char *body = CHAT("a"), *head;
	json_t *j;
	size_t n, i;
	int port, fport;

	tl_daemon_init(&d, 17);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	port = start_door(&d, &c, NULL, NULL);

	n = (size_t)snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\n" JSON_HEADER "Transfer-Encoding: chunked\r\n"
	    "\r\n%zx\r\n%s\r\n0\r\nX-Trailer: %040d\r\n\r\n", CHAT_PATH,
	    strlen(body), body, 7);
	for (i = 0; i + 1 < sizeof(junk); i++)
		junk[i] = "\r\nX-Injected: yes"[i % 18];
	junk[i] = '\0';
	h = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(h, "%s%s", req, junk) == 0, "send");
	tl_http_wait_done(h, STREAM_WAIT_MS);
	TL_ASSERT(h->status == 200, "a chunked request with a trailer, the "
	    "next bytes behind it: HTTP %d: %.300s", h->status,
	    h->body ? h->body : "");
	tl_http_close(h);
	fport = fake_port(&d, c, "a");
	g = tl_http_request(fport, "GET", "/debug/stats", NULL, NULL, WAIT_MS);
	j = tl_http_json(g);
	head = tl_str(j, "last_head");
	TL_ASSERT(head != NULL && strcasestr(head, "X-Trailer") == NULL &&
	    strcasestr(head, "X-Injected") == NULL && strstr(head,
	    "yes") == NULL, "the upstream got the trailer or the next "
	    "request's bytes as headers:\n%s", head ? head : "(none)");
	json_decref(j);
	tl_http_close(g);

	/* The trailer split between two reads of poold's. */
	n = (size_t)snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\n" JSON_HEADER "Transfer-Encoding: chunked\r\n"
	    "Connection: close\r\n\r\n%zx\r\n%s\r\n0\r\nX-Tra", CHAT_PATH,
	    strlen(body), body);
	h = tl_http_open(port);
	TL_ASSERT(tl_http_send(h, req, n) == 0, "send");
	tl_sleep_ms(200);
	TL_ASSERT(tl_http_sendf(h, "iler: t\r\n\r\n") == 0, "send");
	tl_http_wait_done(h, STREAM_WAIT_MS);
	TL_ASSERT(h->status == 200, "a trailer in two pieces: HTTP %d: "
	    "%.300s", h->status, h->body ? h->body : "");
	tl_http_close(h);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 6. the upstream dies mid-stream ------------------------------ */

/*
 * Pass: a's stand-in crashes after 3 events of 50; the client gets those
 * 3, then the connection closes without the final chunk (and without
 * [DONE]): an error, not a short answer.  The lease ends.
 */
START_TEST(test_crash_mid_stream)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	bool ok;
	int port;

	tl_daemon_init(&d, 7);
	tl_model(&d, "a", "load_ms=50\nmem=1M\nstream_tokens=50\n"
	    "stream_delay_ms=50\ncrash_after_events=3\n");
	port = start_door(&d, &c, NULL, NULL);

	h = send_request(port, "POST", CHAT_PATH, NULL, CHAT_STREAM("a"));
	read_stream(h, NULL, 0, STREAM_WAIT_MS);
	TL_ASSERT(h->status == 200, "HTTP %d", h->status);
	TL_ASSERT(h->eof && !h->done, "the stream ended %s",
	    h->done ? "with its final chunk, like a whole answer" :
	    "neither closed nor complete");
	TL_ASSERT(h->events == 3 && strstr(h->body, "[DONE]") == NULL,
	    "%ld events (3 sent before the crash): %.300s", h->events,
	    h->body);
	tl_http_close(h);
	TL_WAIT_UNTIL(ok, leases_are(&d, c, "a", 0), WAIT_MS);
	TL_ASSERT(ok, "lease not ended after its server crashed");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 7. a swap never kills a request in flight -------------------- */

/*
 * Pass: a and b do not fit together (12M, 8M each).  A request for b
 * sent while a streams (15 events 150 ms apart) waits: a's stream ends
 * whole (15 events, [DONE], the final chunk), b's answer (200) comes
 * after a's last event.
 */
START_TEST(test_no_kill_in_flight)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *ha, *hb;
	long long times[EVENTS_MAX] = { 0 }, tb;
	pid_t apid;
	int port;

	tl_daemon_init(&d, 8);
	tl_model(&d, "a", "load_ms=50\nmem=1M\nstream_tokens=15\n"
	    "stream_delay_ms=150\n");
	tl_model(&d, "b", "load_ms=50\nmem=1M\n");
	port = start_door(&d, &c, NULL, ",\"memory_limit\":\"12M\"");

	ha = send_request(port, "POST", CHAT_PATH, NULL, CHAT_STREAM("a"));
	read_events(ha, 1, "stream of a");
	times[0] = tl_now_ms();
	apid = tl_stats_pid(&d, c, "a");
	hb = send_request(port, "POST", CHAT_PATH, NULL, CHAT("b"));
	read_stream(ha, times, EVENTS_MAX, STREAM_WAIT_MS);
	TL_ASSERT(ha->done && ha->events == 16 &&
	    strstr(ha->body, "data: [DONE]") != NULL, "a's stream was cut "
	    "(done %d, eof %d, %ld events of 15 + [DONE]) by the request for b;"
	    " a's server %d %s", ha->done, ha->eof, ha->events, (int)apid,
	    tl_pid_exists(apid) ? "lives" : "is gone");
	tl_http_wait_done(hb, STREAM_WAIT_MS);
	tb = tl_now_ms();
	TL_ASSERT(hb->status == 200, "b: HTTP %d: %.300s", hb->status,
	    hb->body ? hb->body : "");
	TL_ASSERT(strstr(hb->body, "b.gguf") != NULL, "b answered by another "
	    "model: %.300s", hb->body);
	TL_ASSERT(tb >= times[14], "b was answered before a's stream ended");
	tl_http_close(ha);
	tl_http_close(hb);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 8. a client that leaves during a cold start ------------------ */

/*
 * Pass: a request for a model that takes 30 s to load waits (STATS
 * waiting 1); its client closes; within 10 s STATS waiting is 0 again,
 * long before the load could have ended it.
 */
START_TEST(test_cold_start_disconnect)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	bool ok;
	int port;

	tl_daemon_init(&d, 9);
	tl_model(&d, "slow", "load_ms=30000\nmem=1M\n");
	port = start_door(&d, &c, NULL, ",\"start_timeout\":\"60s\"");

	h = send_request(port, "POST", CHAT_PATH, NULL, CHAT("slow"));
	TL_WAIT_UNTIL(ok, tl_stats_int(&d, c, "waiting") == 1, WAIT_MS);
	TL_ASSERT(ok, "the request for slow does not wait: STATS waiting %lld",
	    tl_stats_int(&d, c, "waiting"));
	tl_http_close(h);
	TL_WAIT_UNTIL(ok, tl_stats_int(&d, c, "waiting") == 0, WAIT_MS);
	TL_ASSERT(ok, "the waiter outlived its client by %d ms", WAIT_MS);
	TL_ASSERT(leases_are(&d, c, "slow", 0), "a lease for a gone client");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 9. tokens and Host ------------------------------------------- */

/*
 * Pass: with a token file, no credentials, a wrong Bearer and a wrong
 * x-api-key get 401 invalid_api_key (with Expect: no 100 first); the
 * right one either way gets 200, whatever the Host.
 */
START_TEST(test_tokens)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	char tok[TL_PATH_MAX + 64], extra[TL_PATH_MAX + 128];
	static const char *const bad[] = {
		NULL,
		"Authorization: Bearer wrong\r\n",
		"x-api-key: wrong\r\n",
		"Authorization: Bearer s3cret-but-longer\r\n",
		"Authorization: s3cret\r\n",
	};
	static const char *const good[] = {
		"Authorization: Bearer s3cret\r\n",
		"x-api-key: s3cret\r\n",
		"Host: evil.example\r\nAuthorization: Bearer s3cret\r\n",
	};
	size_t i;
	int port;

	tl_daemon_init(&d, 10);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	snprintf(tok, sizeof(tok), "%s/token", d.dir);
	tl_write_file(tok, "s3cret\n");
	TL_ASSERT(chmod(tok, 0600) == 0, "chmod %s", tok);
	snprintf(extra, sizeof(extra), ",\"token_file\":\"%s\"", tok);
	port = start_door(&d, &c, extra, NULL);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = post_chat(port, bad[i], CHAT("a"));
		expect_openai_error(h, 401, "invalid_api_key",
		    bad[i] ? bad[i] : "no credentials");
		tl_http_close(h);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		h = post_chat(port, good[i], CHAT("a"));
		TL_ASSERT(h->status == 200, "%s: HTTP %d: %.300s", good[i],
		    h->status, h->body ? h->body : "");
		tl_http_close(h);
	}

	h = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(h, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    JSON_HEADER "Expect: 100-continue\r\nContent-Length: 100\r\n"
	    "Connection: close\r\n\r\n", CHAT_PATH) == 0, "send the head");
	tl_http_wait_done(h, WAIT_MS);
	TL_ASSERT(h->head_done && !h->saw_continue, "Expect without a token: "
	    "100 Continue %s", h->saw_continue ? "sent" : "not sent");
	expect_openai_error(h, 401, "invalid_api_key", "Expect, no token");
	tl_http_close(h);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: poold refuses to start (exit 1, the reason in its log) with a
 * token file others can read, and with a non-loopback address and no
 * token.
 */
START_TEST(test_start_refusals)
{
	struct tl_daemon d;
	char tok[TL_PATH_MAX + 64], over[TL_PATH_MAX + 256];
	char *log;

	tl_daemon_init(&d, 11);
	snprintf(tok, sizeof(tok), "%s/token", d.dir);
	tl_write_file(tok, "s3cret\n");
	TL_ASSERT(chmod(tok, 0644) == 0, "chmod %s", tok);
	snprintf(over, sizeof(over), "{\"http\":{\"listen\":\"127.0.0.1:0\","
	    "\"token_file\":\"%s\"}}", tok);
	tl_write_config(&d, over);
	tl_daemon_spawn(&d);
	TL_ASSERT(tl_daemon_wait(&d, WAIT_MS) && WIFEXITED(d.status) &&
	    WEXITSTATUS(d.status) == 1, "poold started with a token file of "
	    "mode 0644");
	log = tl_daemon_log(&d);
	TL_ASSERT(strstr(log, "token") != NULL, "no word of the token file in"
	    " the log:\n%s", log);
	free(log);

	tl_write_config(&d, "{\"http\":{\"listen\":\"0.0.0.0:0\"}}");
	tl_daemon_spawn(&d);
	TL_ASSERT(tl_daemon_wait(&d, WAIT_MS) && WIFEXITED(d.status) &&
	    WEXITSTATUS(d.status) == 1, "poold listens on 0.0.0.0 without a "
	    "token");
	tl_rm_rf(d.dir);
}
END_TEST

/*
 * Pass: with no token, Host evil.example is refused (4xx, OpenAI's error
 * shape, no server started); localhost, 127.0.0.1 and [::1], with a port
 * or without, are served.
 */
START_TEST(test_host_check)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	char hosts[6][32], line[256];
	size_t i;
	int port;

	tl_daemon_init(&d, 12);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	port = start_door(&d, &c, NULL, NULL);

	h = post_chat(port, "Host: evil.example\r\n", CHAT("a"));
	TL_ASSERT(h->status >= 400 && h->status < 500, "Host evil.example: "
	    "HTTP %d", h->status);
	expect_openai_error(h, h->status, NULL, "Host evil.example");
	tl_http_close(h);
	h = post_chat(port, "Host: evil.example:80\r\n", CHAT("a"));
	TL_ASSERT(h->status >= 400 && h->status < 500, "Host evil.example:80:"
	    " HTTP %d", h->status);
	tl_http_close(h);
	TL_ASSERT(tl_stats_int(&d, c, "running") == 0, "a server started for "
	    "a refused Host");

	snprintf(hosts[0], sizeof(hosts[0]), "localhost");
	snprintf(hosts[1], sizeof(hosts[1]), "localhost:%d", port);
	snprintf(hosts[2], sizeof(hosts[2]), "127.0.0.1");
	snprintf(hosts[3], sizeof(hosts[3]), "127.0.0.1:%d", port);
	snprintf(hosts[4], sizeof(hosts[4]), "[::1]");
	snprintf(hosts[5], sizeof(hosts[5]), "[::1]:%d", port);
	for (i = 0; i < 6; i++) {
		snprintf(line, sizeof(line), "Host: %s\r\n", hosts[i]);
		h = post_chat(port, line, CHAT("a"));
		TL_ASSERT(h->status == 200, "Host %s: HTTP %d: %.300s",
		    hosts[i], h->status, h->body ? h->body : "");
		tl_http_close(h);
	}
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 10. CORS preflight ------------------------------------------- */

/*
 * Pass: OPTIONS from an Origin in cors_origins gets 204 with
 * Access-Control-Allow-Origin naming it and the methods allowing POST;
 * from another Origin, 403 without it.
 */
START_TEST(test_cors_preflight)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	const char *allow, *methods;
	int port;

	tl_daemon_init(&d, 13);
	port = start_door(&d, &c, ",\"cors_origins\":[\"http://app.example\"]",
	    NULL);

	h = tl_http_request(port, "OPTIONS", CHAT_PATH, "Origin: "
	    "http://app.example\r\nAccess-Control-Request-Method: POST\r\n"
	    "Access-Control-Request-Headers: authorization, content-type\r\n",
	    NULL, WAIT_MS);
	allow = tl_http_header(h, "Access-Control-Allow-Origin");
	methods = tl_http_header(h, "Access-Control-Allow-Methods");
	TL_ASSERT(h->status == 204 && allow != NULL &&
	    strcmp(allow, "http://app.example") == 0 && methods != NULL &&
	    strstr(methods, "POST") != NULL, "preflight from an allowed "
	    "origin: HTTP %d:\n%s", h->status, h->head);
	tl_http_close(h);

	h = tl_http_request(port, "OPTIONS", CHAT_PATH, "Origin: "
	    "http://evil.example\r\nAccess-Control-Request-Method: POST\r\n",
	    NULL, WAIT_MS);
	TL_ASSERT(h->status == 403 &&
	    tl_http_header(h, "Access-Control-Allow-Origin") == NULL,
	    "preflight from another origin: HTTP %d:\n%s", h->status,
	    h->head);
	tl_http_close(h);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 11. /v1/models, aliases, /health ----------------------------- */

static bool
models_has(json_t *list, const char *id)
{
	json_t *m;
	size_t i;

	json_array_foreach(json_object_get(list, "data"), i, m)
		if (tl_str(m, "id") != NULL && strcmp(tl_str(m, "id"), id) == 0 &&
		    tl_str(m, "object") != NULL &&
		    strcmp(tl_str(m, "object"), "model") == 0)
			return true;
	return false;
}

/*
 * Pass: GET /v1/models is an OpenAI list holding the models a and b and
 * the aliases gpt-4o-mini (top-level, for a) and small-chat (b's own);
 * a chat for each alias is answered by its model; GET /health is 200
 * {"status":"ok"} with no server running.
 */
START_TEST(test_models_aliases_health)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	json_t *j;
	int port;

	tl_daemon_init(&d, 14);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	tl_model(&d, "b", "load_ms=50\nmem=1M\n");
	port = start_door(&d, &c, NULL, ",\"aliases\":{\"gpt-4o-mini\":\"a\"},"
	    "\"models\":{\"b\":{\"aliases\":[\"small-chat\"]}}");

	h = tl_http_request(port, "GET", "/health", NULL, NULL, WAIT_MS);
	j = tl_http_json(h);
	TL_ASSERT(h->status == 200 && tl_str(j, "status") != NULL &&
	    strcmp(tl_str(j, "status"), "ok") == 0, "/health: HTTP %d: %s",
	    h->status, tl_dump(j));
	json_decref(j);
	tl_http_close(h);

	h = tl_http_request(port, "GET", "/v1/models", NULL, NULL, WAIT_MS);
	j = tl_http_json(h);
	TL_ASSERT(h->status == 200 && tl_str(j, "object") != NULL &&
	    strcmp(tl_str(j, "object"), "list") == 0 && models_has(j, "a") &&
	    models_has(j, "b") && models_has(j, "gpt-4o-mini") &&
	    models_has(j, "small-chat"), "/v1/models: HTTP %d: %s",
	    h->status, tl_dump(j));
	json_decref(j);
	tl_http_close(h);

	h = post_chat(port, NULL, CHAT("gpt-4o-mini"));
	TL_ASSERT(h->status == 200 && strstr(h->body, "a.gguf") != NULL,
	    "gpt-4o-mini: HTTP %d: %.300s", h->status, h->body);
	tl_http_close(h);
	h = post_chat(port, NULL, CHAT("small-chat"));
	TL_ASSERT(h->status == 200 && strstr(h->body, "b.gguf") != NULL,
	    "small-chat: HTTP %d: %.300s", h->status, h->body);
	tl_http_close(h);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 12. errors in OpenAI's shape --------------------------------- */

/*
 * Pass: an unknown model is 404 model_not_found, no model 400
 * model_missing, a body that is not JSON 400, an unknown path 404, a
 * server that dies loading 502 start_failed with its own words, all in
 * OpenAI's error shape; with a holding a lease, b (which does not fit
 * beside it) waited for by a socket client, and max_waiters 1, a request
 * for b is 503 with Retry-After.
 */
START_TEST(test_errors)
{
	struct tl_daemon d;
	struct tl_conn *c, *holder;
	struct tl_http *h;
	long long lease;
	json_t *req;
	bool ok;
	int port;

	tl_daemon_init(&d, 15);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	tl_model(&d, "b", "load_ms=50\nmem=1M\n");
	tl_model(&d, "broken", "mode=crash_start\nmem=1M\n");
	port = start_door(&d, &c, NULL, ",\"memory_limit\":\"12M\","
	    "\"max_waiters\":1");

	h = post_chat(port, NULL, CHAT("nosuch"));
	expect_openai_error(h, 404, "model_not_found", "unknown model");
	tl_http_close(h);
	h = post_chat(port, NULL, "{" MESSAGES "}");
	expect_openai_error(h, 400, "model_missing", "no model");
	tl_http_close(h);
	h = post_chat(port, NULL, "{\"model\": \"a\", ");
	expect_openai_error(h, 400, NULL, "not JSON");
	tl_http_close(h);
	h = tl_http_request(port, "GET", "/v1/nothing-here", NULL, NULL,
	    WAIT_MS);
	expect_openai_error(h, 404, NULL, "unknown path");
	tl_http_close(h);
	h = post_chat(port, NULL, CHAT("broken"));
	expect_openai_error(h, 502, "start_failed", "a server that dies "
	    "loading");
	TL_ASSERT(strstr(h->body, "crash_start") != NULL, "502 without the "
	    "server's own cause: %.300s", h->body);
	tl_http_close(h);

	holder = tl_connect(&d);
	lease = tl_acquire_ok(holder, "a", true, NULL);
	req = tl_acquire_req("b", 60000, true);
	tl_send_req(holder, req);
	TL_WAIT_UNTIL(ok, tl_stats_int(&d, c, "waiting") == 1, WAIT_MS);
	TL_ASSERT(ok, "the socket's ACQUIRE b does not wait");
	h = post_chat(port, NULL, CHAT("b"));
	expect_openai_error(h, 503, NULL, "busy");
	TL_ASSERT(tl_http_header(h, "Retry-After") != NULL, "503 without "
	    "Retry-After:\n%s", h->head);
	tl_http_close(h);
	tl_release(holder, lease);
	tl_close(holder);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 13. hop-by-hop headers, keep-alive --------------------------- */

/*
 * Pass: a request with Keep-Alive, Proxy-Authorization, Upgrade, TE and
 * an end-to-end X-Custom reaches a's stand-in with only X-Custom of
 * those and Host 127.0.0.1:ITS_PORT; the client's connection is kept
 * alive and a second request on it is answered too.
 */
START_TEST(test_hop_by_hop_keep_alive)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h, *g;
	const char *body = CHAT("a"), *head;
	char host[64];
	json_t *j;
	int port, fport, i;

	tl_daemon_init(&d, 18);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	port = start_door(&d, &c, NULL, NULL);

	h = tl_http_open(port);
	for (i = 0; i < 2; i++) {
		TL_ASSERT(tl_http_sendf(h, "POST %s HTTP/1.1\r\nHost: "
		    "127.0.0.1\r\n" JSON_HEADER "Keep-Alive: timeout=5\r\n"
		    "Proxy-Authorization: Basic eDp5\r\nUpgrade: h2c\r\n"
		    "TE: trailers\r\nX-Custom: kept\r\nContent-Length: %zu\r\n"
		    "\r\n%s", CHAT_PATH, strlen(body), body) == 0,
		    "send request %d on one connection", i + 1);
		tl_http_wait_done(h, STREAM_WAIT_MS);
		TL_ASSERT(h->done && h->status == 200, "request %d on a kept "
		    "connection: HTTP %d, eof %d: %.300s", i + 1, h->status,
		    h->eof, h->body ? h->body : "");
		tl_http_next(h);
	}
	tl_http_close(h);

	fport = fake_port(&d, c, "a");
	g = tl_http_request(fport, "GET", "/debug/stats", NULL, NULL, WAIT_MS);
	j = tl_http_json(g);
	head = tl_str(j, "last_head");
	snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", fport);
	TL_ASSERT(head != NULL && strstr(head, host) != NULL &&
	    strstr(head, "\r\nX-Custom: kept\r\n") != NULL &&
	    strcasestr(head, "\nKeep-Alive:") == NULL &&
	    strcasestr(head, "\nProxy-Authorization:") == NULL &&
	    strcasestr(head, "\nUpgrade:") == NULL &&
	    strcasestr(head, "\nTE:") == NULL, "the head the stand-in got:"
	    "\n%s", head ? head : "(none)");
	json_decref(j);
	tl_http_close(g);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("http");

	tl_add(s, "stream_incremental", test_stream_incremental);
	tl_add(s, "abort_mid_stream", test_abort_mid_stream);
	tl_add(s, "long_silence", test_long_silence);
	tl_add(s, "stalled_reader", test_stalled_reader);
	tl_add(s, "too_large", test_too_large);
	tl_add(s, "expect_continue", test_expect_continue);
	tl_add(s, "chunked_request", test_chunked_request);
	tl_add(s, "chunked_trailers", test_chunked_trailers);
	tl_add(s, "crash_mid_stream", test_crash_mid_stream);
	tl_add(s, "no_kill_in_flight", test_no_kill_in_flight);
	tl_add(s, "cold_start_disconnect", test_cold_start_disconnect);
	tl_add(s, "tokens", test_tokens);
	tl_add(s, "start_refusals", test_start_refusals);
	tl_add(s, "host_check", test_host_check);
	tl_add(s, "cors_preflight", test_cors_preflight);
	tl_add(s, "models_aliases_health", test_models_aliases_health);
	tl_add(s, "errors", test_errors);
	tl_add(s, "hop_by_hop_keep_alive", test_hop_by_hop_keep_alive);
	tl_add(s, "body_total", test_body_total);
	tl_add(s, "reader_gone_quiet", test_reader_gone_quiet);
	return tl_run(s, CK_NORMAL);
}
