/*
 * check_events.c — the event stream (issue 12): SUBSCRIBE on the socket,
 * GET /events on the HTTP front door, `poolc events`, against the real
 * poold with stand-in servers (build/fakellama).
 *
 * Events are read as they come and checked in order (seq strictly
 * increasing, each kind's fields).  The slow-subscriber tests make
 * thousands of events cheaply: with the budget full of leased servers,
 * ACQUIREs of other models that give up after 1 ms each wait once, and
 * each wait is a "pressure" event, with no process started.
 *
 * Environment: POOLD_BIN, POOLC_BIN, FAKELLAMA_BIN (make check sets
 * them).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "testlib.h"

#define WAIT_MS			10000	/* for a condition, an event */
#define UNSENT_MAX		(256 * 1024)	/* EVENTS_UNSENT_MAX */
#define FLOOD_MODELS		4	/* pressured in a round */
#define RSS_GROWTH_MAX		(24LL << 20)	/* poold's, over a flood */
#define MANY_SUBSCRIBERS	500

/* --- helpers ------------------------------------------------------ */

/* A connection that has sent SUBSCRIBE and had its reply. */
static struct tl_conn *
subscribe(struct tl_daemon *d)
{
	struct tl_conn *c = tl_connect(d);
	json_t *rep;

	rep = tl_call(c, json_pack("{s:s}", "cmd", "SUBSCRIBE"), WAIT_MS);
	TL_ASSERT(tl_ok(rep), "SUBSCRIBE: %s", tl_dump(rep));
	TL_ASSERT(json_is_true(json_object_get(rep, "subscribed")),
	    "SUBSCRIBE's reply lacks \"subscribed\":true: %s", tl_dump(rep));
	json_decref(rep);
	return c;
}

/* The next event on c (replies are not expected), NULL if none came. */
static json_t *
next_event(struct tl_conn *c, long long timeout_ms)
{
	json_t *e = tl_recv(c, timeout_ms);

	if (e == NULL)
		return NULL;
	TL_ASSERT(json_is_string(json_object_get(e, "event")) &&
	    json_object_get(e, "ok") == NULL,
	    "not an event: %s", tl_dump(e));
	return e;
}

/*
 * The next event of kind (others skipped, but their seq checked too);
 * fails the test if none comes.  *last_seq is the seq before; it is
 * moved on.
 */
static json_t *
expect_event(struct tl_conn *c, const char *kind, long long *last_seq)
{
	long long dl = tl_now_ms() + WAIT_MS, seq;
	json_t *e;

	for (;;) {
		e = next_event(c, dl - tl_now_ms());
		TL_ASSERT(e != NULL, "no \"%s\" event within %d ms", kind,
		    WAIT_MS);
		seq = tl_int(e, "seq");
		TL_ASSERT(seq > *last_seq, "seq %lld after %lld: %s", seq,
		    *last_seq, tl_dump(e));
		*last_seq = seq;
		if (strcmp(tl_str(e, "event"), kind) == 0)
			return e;
		json_decref(e);
	}
}

/* The next event must be kind, of model. */
static json_t *
expect_next(struct tl_conn *c, const char *kind, const char *model,
    long long *last_seq)
{
	json_t *e = next_event(c, WAIT_MS);
	long long seq;

	TL_ASSERT(e != NULL, "no event within %d ms (wanted \"%s\")", WAIT_MS,
	    kind);
	TL_ASSERT(strcmp(tl_str(e, "event"), kind) == 0 &&
	    strcmp(tl_str(e, "model") ? tl_str(e, "model") : "", model) == 0,
	    "wanted \"%s\" of %s, got %s", kind, model, tl_dump(e));
	seq = tl_int(e, "seq");
	TL_ASSERT(seq > *last_seq, "seq %lld after %lld", seq, *last_seq);
	*last_seq = seq;
	return e;
}

static long long
stats_events(struct tl_daemon *d, struct tl_conn *c, const char *key)
{
	char path[64];

	snprintf(path, sizeof(path), "events.%s", key);
	return tl_stats_int(d, c, path);
}

/* Waits until STATS events.subscribers is n. */
static void
wait_subscribers(struct tl_daemon *d, struct tl_conn *c, long long n)
{
	bool ok;

	TL_WAIT_UNTIL(ok, stats_events(d, c, "subscribers") == n, WAIT_MS);
	TL_ASSERT(ok, "events.subscribers is %lld, not %lld",
	    stats_events(d, c, "subscribers"), n);
}

/* The front door's port from STATS http.listen. */
static int
http_port(struct tl_daemon *d, struct tl_conn *c)
{
	json_t *st = tl_stats(d, c);
	const char *l = tl_str(st, "http.listen"), *colon;
	int port = l != NULL && (colon = strrchr(l, ':')) != NULL ?
	    atoi(colon + 1) : 0;

	json_decref(st);
	TL_ASSERT(port > 0, "no http.listen in STATS");
	return port;
}

/* ACQUIRE with hold, RELEASE, EVICT of model: start, ready, evict, exit. */
static void
cycle(struct tl_conn *c, const char *model)
{
	long long lease = tl_acquire_ok(c, model, true, NULL);
	json_t *rep;

	tl_release(c, lease);
	rep = tl_evict(c, model, false, WAIT_MS);
	TL_ASSERT(tl_ok(rep), "EVICT %s: %s", model, tl_dump(rep));
	json_decref(rep);
}

/* poold's resident memory, bytes. */
static long long
poold_rss(struct tl_daemon *d)
{
	long long rss = tl_proc_rss(d->pid);

	TL_ASSERT(rss > 0, "no RSS for poold %d", (int)d->pid);
	return rss;
}

/*
 * A pool whose budget (216M) two leased servers of 100M fill, and
 * FLOOD_MODELS more models of 100M that can only wait: each ACQUIRE of
 * one with timeout_ms 1 is a "pressure" event and a "busy".
 */
static void
pressure_pool(struct tl_daemon *d, const char *extra)
{
	char over[8192], *p = over;
	size_t left = sizeof(over);
	int i, n;

	tl_model(d, "big1", "load_ms=0\n");
	tl_model(d, "big2", "load_ms=0\n");
	n = snprintf(p, left, "{\"models\":{\"big1\":{\"memory\":\"100M\"},"
	    "\"big2\":{\"memory\":\"100M\"}");
	p += n, left -= (size_t)n;
	for (i = 0; i < FLOOD_MODELS; i++) {
		char name[64];

		snprintf(name, sizeof(name), "waiting-model-with-a-long-name-"
		    "so-that-each-event-is-big-%02d", i);
		tl_model(d, name, "load_ms=0\n");
		n = snprintf(p, left, ",\"%s\":{\"memory\":\"100M\"}", name);
		p += n, left -= (size_t)n;
	}
	snprintf(p, left, "}%s}", extra != NULL ? extra : "");
	tl_daemon_start(d, over);
}

/* Leases big1 and big2 on c: the budget is full. */
static void
fill_budget(struct tl_conn *c)
{
	(void)tl_acquire_ok(c, "big1", true, NULL);
	(void)tl_acquire_ok(c, "big2", true, NULL);
}

/* One round: an ACQUIRE of each waiting model, timeout 1 ms, pipelined;
 * all must be answered busy (or timeout). */
static void
pressure_round(struct tl_conn *c)
{
	long long ids[FLOOD_MODELS];
	json_t *rep;
	int i;

	for (i = 0; i < FLOOD_MODELS; i++) {
		char name[64];

		snprintf(name, sizeof(name), "waiting-model-with-a-long-name-"
		    "so-that-each-event-is-big-%02d", i);
		ids[i] = tl_send_req(c, tl_acquire_req(name, 1, false));
	}
	for (i = 0; i < FLOOD_MODELS; i++) {
		rep = tl_recv_id(c, ids[i], WAIT_MS);
		TL_ASSERT(rep != NULL, "no reply to a pressured ACQUIRE");
		TL_ASSERT(!tl_ok(rep), "a pressured ACQUIRE got a server: %s",
		    tl_dump(rep));
		json_decref(rep);
	}
}

/* Reads every event that is there now; how many. */
static long
drain(struct tl_conn *c, long long *last_seq)
{
	long n = 0;
	json_t *e;

	while ((e = next_event(c, 0)) != NULL) {
		long long seq = tl_int(e, "seq");

		TL_ASSERT(seq > *last_seq, "seq %lld after %lld", seq,
		    *last_seq);
		*last_seq = seq;
		json_decref(e);
		n++;
	}
	return n;
}

/* --- SUBSCRIBE: a server's life -------------------------------------- */

START_TEST(test_lifecycle)
{
	struct tl_daemon d;
	struct tl_conn *s, *c;
	long long seq = 0, t0, lease;
	int port;
	json_t *e, *rep;
	pid_t pid;

	tl_daemon_init(&d, _i);
	tl_model(&d, "m", "load_ms=30\n");
	tl_daemon_start(&d, NULL);
	s = subscribe(&d);
	c = tl_connect(&d);
	TL_ASSERT(stats_events(&d, c, "subscribers") == 1,
	    "events.subscribers is not 1");
	t0 = tl_wall_ms();

	lease = tl_acquire_ok(c, "m", true, &port);
	pid = tl_stats_pid(&d, c, "m");
	e = expect_next(s, "start", "m", &seq);
	TL_ASSERT(tl_int(e, "port") == port && tl_int(e, "pid") == pid &&
	    json_is_false(json_object_get(e, "preload")),
	    "start: %s (port %d pid %d)", tl_dump(e), port, (int)pid);
	TL_ASSERT(tl_int(e, "time") >= t0 - 1000 &&
	    tl_int(e, "time") <= tl_wall_ms() + 1000,
	    "start: time %lld is not now (%lld)", tl_int(e, "time"), t0);
	json_decref(e);
	e = expect_next(s, "ready", "m", &seq);
	TL_ASSERT(tl_int(e, "port") == port && tl_int(e, "pid") == pid &&
	    tl_int(e, "load_ms") >= 0, "ready: %s", tl_dump(e));
	json_decref(e);

	tl_release(c, lease);
	rep = tl_evict(c, "m", false, WAIT_MS);
	TL_ASSERT(tl_ok(rep), "EVICT: %s", tl_dump(rep));
	json_decref(rep);
	e = expect_next(s, "evict", "m", &seq);
	TL_ASSERT(strcmp(tl_str(e, "reason"), "evict") == 0 &&
	    tl_int(e, "pid") == pid, "evict: %s", tl_dump(e));
	json_decref(e);
	e = expect_next(s, "exit", "m", &seq);
	TL_ASSERT(strcmp(tl_str(e, "reason"), "evict") == 0 &&
	    tl_str(e, "status") != NULL && tl_int(e, "pid") == pid,
	    "exit: %s", tl_dump(e));
	json_decref(e);

	/* The same connection still takes commands; their replies come in
	 * order among the events. */
	rep = tl_call(s, json_pack("{s:s}", "cmd", "PING"), WAIT_MS);
	TL_ASSERT(tl_ok(rep), "PING on a subscribed connection: %s",
	    tl_dump(rep));
	json_decref(rep);
	/* SUBSCRIBE again: the same answer, still one subscriber. */
	rep = tl_call(s, json_pack("{s:s}", "cmd", "SUBSCRIBE"), WAIT_MS);
	TL_ASSERT(tl_ok(rep), "second SUBSCRIBE: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(stats_events(&d, c, "subscribers") == 1,
	    "two SUBSCRIBEs made two subscribers");
	TL_ASSERT(stats_events(&d, c, "sent") == 4 &&
	    stats_events(&d, c, "dropped") == 0,
	    "events: sent %lld dropped %lld", stats_events(&d, c, "sent"),
	    stats_events(&d, c, "dropped"));

	tl_close(s);
	wait_subscribers(&d, c, 0);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* A start that fails is "failed"; a wait for leased memory "pressure". */
START_TEST(test_failed_and_pressure)
{
	struct tl_daemon d;
	struct tl_conn *s, *c;
	long long seq = 0;
	json_t *e, *rep;
	char name[64];

	tl_daemon_init(&d, _i);
	tl_model(&d, "crashy", "mode=crash_start\ncrash_after_ms=10\n");
	pressure_pool(&d, NULL);
	s = subscribe(&d);
	c = tl_connect(&d);

	rep = tl_acquire(c, "crashy", WAIT_MS, false);
	tl_expect_error(rep, "start_failed", NULL, "ACQUIRE of a crash");
	json_decref(rep);
	e = expect_event(s, "failed", &seq);
	TL_ASSERT(strcmp(tl_str(e, "model"), "crashy") == 0 &&
	    tl_str(e, "message") != NULL && tl_str(e, "message")[0] != '\0',
	    "failed: %s", tl_dump(e));
	json_decref(e);

	fill_budget(c);
	snprintf(name, sizeof(name), "waiting-model-with-a-long-name-so-that-"
	    "each-event-is-big-%02d", 0);
	rep = tl_acquire(c, name, 300, false);
	TL_ASSERT(!tl_ok(rep), "ACQUIRE past a full budget: %s",
	    tl_dump(rep));
	json_decref(rep);
	e = expect_event(s, "pressure", &seq);
	TL_ASSERT(strcmp(tl_str(e, "model"), name) == 0 &&
	    tl_int(e, "need") >= 100LL * 1024 * 1024 &&
	    tl_str(e, "message") != NULL, "pressure: %s", tl_dump(e));
	json_decref(e);

	tl_close(s);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* The idle timeout's stop is "evict" with reason "idle". */
START_TEST(test_idle)
{
	struct tl_daemon d;
	struct tl_conn *s, *c;
	long long seq = 0;
	json_t *e;

	tl_daemon_init(&d, _i);
	tl_model(&d, "m", "load_ms=0\n");
	/* The socket's idle-client timeout too: a subscriber is not idle. */
	tl_daemon_start(&d, "{\"idle_timeout\":\"1s\","
	    "\"idle_client_timeout\":\"1s\"}");
	s = subscribe(&d);
	c = tl_connect(&d);
	(void)tl_acquire_ok(c, "m", false, NULL);
	e = expect_event(s, "evict", &seq);
	TL_ASSERT(strcmp(tl_str(e, "reason"), "idle") == 0 &&
	    strcmp(tl_str(e, "model"), "m") == 0, "evict: %s", tl_dump(e));
	json_decref(e);
	e = expect_event(s, "exit", &seq);
	TL_ASSERT(strcmp(tl_str(e, "reason"), "idle") == 0, "exit: %s",
	    tl_dump(e));
	json_decref(e);
	/* Two idle timeouts later the subscriber is still there. */
	tl_sleep_ms(2500);
	tl_close(c);
	c = tl_connect(&d);
	TL_ASSERT(stats_events(&d, c, "subscribers") == 1,
	    "the idle-client timeout closed a subscriber");
	cycle(c, "m");
	json_decref(expect_event(s, "exit", &seq));
	tl_close(s);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- GET /events -------------------------------------------------------- */

/* Parses the SSE events in h's body from *off on: their "id" and "data"
 * (JSON); appends them to arr.  Comments and partial events are left. */
static void
sse_parse(struct tl_http *h, size_t *off, json_t *arr, long *comments)
{
	const char *p, *end;

	while ((end = strstr(h->body + *off, "\n\n")) != NULL) {
		p = h->body + *off;
		if (p[0] == ':') {
			(*comments)++;
		} else {
			long long id;
			const char *data = strstr(p, "\ndata: ");
			json_t *j;

			TL_ASSERT(sscanf(p, "id: %lld\n", &id) == 1 &&
			    data != NULL && data < end,
			    "bad SSE event: %.*s", (int)(end - p), p);
			j = json_loadb(data + 7, (size_t)(end - data - 7), 0,
			    NULL);
			TL_ASSERT(j != NULL && tl_int(j, "seq") == id,
			    "SSE data is no event of id %lld: %.*s", id,
			    (int)(end - p), p);
			json_array_append_new(arr, j);
		}
		*off = (size_t)(end - h->body) + 2;
	}
}

START_TEST(test_sse)
{
	struct tl_daemon d;
	struct tl_conn *s, *c;
	struct tl_http *h, *h2;
	json_t *arr = json_array(), *e;
	size_t off = 0;
	long comments = 0;
	long long seq = 0;
	const char *kinds[] = { "start", "ready", "evict", "exit" };
	int port, i;
	bool ok;

	tl_daemon_init(&d, _i);
	tl_model(&d, "m", "load_ms=0\n");
	tl_daemon_start(&d, "{\"http\":{\"listen\":\"127.0.0.1:0\","
	    "\"cors_origins\":[\"http://app.example\"]}}");
	c = tl_connect(&d);
	port = http_port(&d, c);
	s = subscribe(&d);

	h = tl_http_open(port);
	tl_http_sendf(h, "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	    "Origin: http://app.example\r\nAccept: text/event-stream\r\n\r\n",
	    port);
	TL_ASSERT(tl_http_wait_head(h, WAIT_MS), "no head for GET /events");
	TL_ASSERT(h->status == 200, "GET /events: %d", h->status);
	TL_ASSERT(tl_http_header(h, "content-type") != NULL &&
	    strncmp(tl_http_header(h, "content-type"), "text/event-stream",
	    17) == 0, "Content-Type: %s", tl_http_header(h, "content-type"));
	TL_ASSERT(tl_http_header(h, "cache-control") != NULL &&
	    strcmp(tl_http_header(h, "cache-control"), "no-cache") == 0,
	    "Cache-Control: %s", tl_http_header(h, "cache-control"));
	TL_ASSERT(tl_http_header(h, "content-length") == NULL &&
	    tl_http_header(h, "transfer-encoding") == NULL,
	    "an event stream with a length or chunks: %s", h->head);
	TL_ASSERT(tl_http_header(h, "access-control-allow-origin") != NULL &&
	    strcmp(tl_http_header(h, "access-control-allow-origin"),
	    "http://app.example") == 0, "no CORS header: %s", h->head);
	wait_subscribers(&d, c, 2);

	cycle(c, "m");
	for (i = 0; i < 4; i++)
		json_decref(expect_next(s, kinds[i], "m", &seq));
	TL_WAIT_UNTIL(ok, (tl_http_read(h, 50), sse_parse(h, &off, arr,
	    &comments), json_array_size(arr) >= 4), WAIT_MS);
	TL_ASSERT(ok, "SSE: %zu events of 4: %s", json_array_size(arr),
	    h->body);
	/* The same events as the socket's, the same seq. */
	for (i = 0; i < 4; i++) {
		e = json_array_get(arr, (size_t)i);
		TL_ASSERT(strcmp(tl_str(e, "event"), kinds[i]) == 0 &&
		    tl_int(e, "seq") == seq - 3 + i, "SSE event %d: %s", i,
		    tl_dump(e));
	}

	/* A client that goes is no subscriber at once. */
	h2 = tl_http_open(port);
	tl_http_sendf(h2, "GET /events HTTP/1.0\r\nHost: localhost\r\n\r\n");
	TL_ASSERT(tl_http_wait_head(h2, WAIT_MS) && h2->status == 200,
	    "GET /events over HTTP/1.0: %d", h2->status);
	wait_subscribers(&d, c, 3);
	tl_http_close(h2);
	wait_subscribers(&d, c, 2);
	/* A request body or more requests on the stream's connection are
	 * read and dropped; the stream goes on. */
	TL_ASSERT(tl_http_sendf(h, "GET /health HTTP/1.1\r\n\r\ngarbage") == 0,
	    "writing to the stream's connection");
	cycle(c, "m");
	TL_WAIT_UNTIL(ok, (tl_http_read(h, 50), sse_parse(h, &off, arr,
	    &comments), json_array_size(arr) >= 8), WAIT_MS);
	TL_ASSERT(ok, "SSE after input: %zu events of 8", json_array_size(arr));

	tl_http_close(h);
	wait_subscribers(&d, c, 1);
	json_decref(arr);
	tl_close(s);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* The keep-alive comment every 15 s; the front door's idle and head
 * timeouts (1 s here) do not end a stream. */
START_TEST(test_sse_keepalive)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	json_t *arr = json_array();
	size_t off = 0;
	long comments = 0;
	int port;
	bool ok;

	tl_daemon_init(&d, _i);
	tl_daemon_start(&d, "{\"http\":{\"listen\":\"127.0.0.1:0\","
	    "\"idle_timeout\":\"1s\",\"head_timeout\":\"1s\"}}");
	c = tl_connect(&d);
	port = http_port(&d, c);
	h = tl_http_open(port);
	tl_http_sendf(h, "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n");
	TL_ASSERT(tl_http_wait_head(h, WAIT_MS) && h->status == 200,
	    "GET /events: %d", h->status);
	TL_WAIT_UNTIL(ok, (tl_http_read(h, 100), sse_parse(h, &off, arr,
	    &comments), comments >= 1 || h->eof), 20000);
	TL_ASSERT(ok && !h->eof && strstr(h->body, ": keepalive\n\n") != NULL,
	    "no keep-alive within 20 s (eof %d): %s", h->eof, h->body);
	TL_ASSERT(stats_events(&d, c, "subscribers") == 1,
	    "the stream is no subscriber");
	tl_http_close(h);
	json_decref(arr);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- slow readers and attackers ------------------------------------- */

/*
 * GET /events on a socket that is never read, with a small receive
 * buffer (set before the connect, so the window stays small): poold's
 * unsent bytes pass 256 KiB after a few MiB of events, not after the
 * many MiB loopback TCP would otherwise buffer.
 */
static int
slow_sse(int port)
{
	struct sockaddr_in sin;
	int fd, small = 4096;
	char req[] = "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n";

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	TL_ASSERT(fd != -1, "socket: %s", strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	TL_ASSERT(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
	    "connect: %s", strerror(errno));
	TL_ASSERT(write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1,
	    "write: %s", strerror(errno));
	return fd;
}

/* Reads fd to its end (what the kernel kept of it); false if it does not
 * end within WAIT_MS. */
static bool
reads_to_eof(int fd)
{
	char buf[65536];
	ssize_t n;

	for (long long dl = tl_now_ms() + WAIT_MS; tl_now_ms() < dl;) {
		struct pollfd pfd = { fd, POLLIN, 0 };

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			return true;
	}
	return false;
}

/*
 * A subscriber that never reads is dropped past 256 KiB (counted, logged
 * once, its connection closed); a reading one and ordinary clients go
 * on; poold's memory stays bounded.
 */
START_TEST(test_slow_subscriber)
{
	struct tl_daemon d;
	struct tl_conn *slow, *good, *c, *p;
	long long seq = 0, rss0, rss_max = 0;
	long got = 0, rounds = 0;
	int port, sse;
	json_t *rep;
	bool ok;

	tl_daemon_init(&d, _i);
	pressure_pool(&d, ",\"http\":{\"listen\":\"127.0.0.1:0\"}");
	c = tl_connect(&d);
	port = http_port(&d, c);
	fill_budget(c);
	slow = subscribe(&d);		/* never reads from now on */
	good = subscribe(&d);
	sse = slow_sse(port);		/* a slow SSE reader, too */
	wait_subscribers(&d, c, 3);
	rss0 = poold_rss(&d);
	p = tl_connect(&d);

	/* Until both slow ones are past 256 KiB and what the kernel
	 * buffers for them. */
	while (rounds < 20000 && ((rounds % 50) != 0 ||
	    stats_events(&d, c, "dropped") < 2)) {
		pressure_round(p);
		got += drain(good, &seq);
		if ((rounds++ % 50) == 0 && poold_rss(&d) > rss_max)
			rss_max = poold_rss(&d);
	}
	fprintf(stderr, "slow_subscriber: %ld rounds, %ld events, poold "
	    "RSS %lld -> %lld KiB\n", rounds, got, rss0 >> 10, rss_max >> 10);
	TL_ASSERT(!tl_daemon_wait(&d, 0), "poold exited: status %#x",
	    d.status);
	TL_ASSERT(stats_events(&d, c, "dropped") == 2,
	    "%ld rounds, %lld events: dropped %lld, not 2", rounds,
	    stats_events(&d, c, "seq"), stats_events(&d, c, "dropped"));
	TL_ASSERT(tl_log_has(&d, "dropped from the event stream"),
	    "no log line for the drop");
	/* More events: the reader gets them all, in order. */
	for (int i = 0; i < 800; i++) {
		pressure_round(p);
		got += drain(good, &seq);
	}
	TL_WAIT_UNTIL(ok, (got += drain(good, &seq),
	    seq == stats_events(&d, c, "seq")), WAIT_MS);
	TL_ASSERT(ok, "the reading subscriber is at seq %lld of %lld", seq,
	    stats_events(&d, c, "seq"));
	TL_ASSERT(got >= 2000, "only %ld events made", got);
	wait_subscribers(&d, c, 1);
	/* The slow ones' connections were closed: they read to an end. */
	TL_ASSERT(reads_to_eof(slow->fd),
	    "the dropped subscriber's connection is still open");
	TL_ASSERT(reads_to_eof(sse), "the dropped SSE reader's connection "
	    "is still open");
	/* AddressSanitizer keeps freed memory in quarantine (256 MiB). */
	TL_ASSERT(rss_max - rss0 < (tl_proc_maps_has(d.pid, "libasan") ?
	    4 * RSS_GROWTH_MAX : RSS_GROWTH_MAX),
	    "poold grew from %lld to %lld bytes with a slow subscriber",
	    rss0, rss_max);
	rep = tl_call(c, json_pack("{s:s}", "cmd", "PING"), WAIT_MS);
	TL_ASSERT(tl_ok(rep), "PING after the drop: %s", tl_dump(rep));
	json_decref(rep);

	close(sse);
	tl_close(slow);
	tl_close(good);
	tl_close(p);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * A subscriber that half-closes keeps its events until it hangs up; one
 * that sends garbage gets errors and its events; one that starts a line
 * and never ends it is closed by the line timeout.
 */
START_TEST(test_attackers)
{
	struct tl_daemon d;
	struct tl_conn *half, *junk, *slowloris, *c;
	long long seq1 = 0, seq2 = 0;
	json_t *rep, *j;
	bool ok;

	tl_daemon_init(&d, _i);
	tl_model(&d, "m", "load_ms=0\n");
	tl_daemon_start(&d, "{\"line_timeout\":\"1s\"}");
	c = tl_connect(&d);

	half = subscribe(&d);
	TL_ASSERT(shutdown(half->fd, SHUT_WR) == 0, "shutdown");
	junk = subscribe(&d);
	TL_ASSERT(tl_sendf(junk, "garbage\n{\"cmd\":\"NOPE\"}\n\x01\x02\n")
	    == 0, "write");
	slowloris = subscribe(&d);
	TL_ASSERT(tl_sendf(slowloris, "{\"cmd\":") == 0, "write");
	wait_subscribers(&d, c, 3);

	/* Its errors (three, no id), then events. */
	for (int i = 0; i < 3; i++) {
		rep = tl_recv(junk, WAIT_MS);
		TL_ASSERT(rep != NULL && !tl_ok(rep),
		    "no error for garbage: %s", tl_dump(rep));
		json_decref(rep);
	}
	/* The slowloris goes at its line timeout. */
	wait_subscribers(&d, c, 2);
	cycle(c, "m");
	json_decref(expect_event(half, "exit", &seq1));
	json_decref(expect_event(junk, "exit", &seq2));
	/* The half-closed one hangs up for good: gone within the
	 * hang-up check (1 s). */
	tl_close(half);
	wait_subscribers(&d, c, 1);
	/* A line too long on a subscribed connection ends it. */
	j = json_pack("{s:s, s:s}", "cmd", "PING", "pad", "");
	{
		size_t big = 70 * 1024;
		char *line = malloc(big + 2);

		memset(line, 'x', big);
		line[big] = '\n';
		(void)tl_send(junk, line, big + 1);
		free(line);
	}
	json_decref(j);
	wait_subscribers(&d, c, 0);
	TL_WAIT_UNTIL(ok, stats_events(&d, c, "dropped") == 0, 100);
	TL_ASSERT(ok, "a closed subscriber counted as dropped");
	tl_close(junk);
	tl_close(slowloris);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* 500 subscribers: each gets the same events; all go when they close. */
START_TEST(test_many_subscribers)
{
	struct tl_daemon d;
	struct tl_conn *subs[MANY_SUBSCRIBERS], *c;
	long long seq;
	const char *kinds[] = { "start", "ready", "evict", "exit" };
	int i, k;

	tl_daemon_init(&d, _i);
	tl_model(&d, "m", "load_ms=0\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	for (i = 0; i < MANY_SUBSCRIBERS; i++)
		subs[i] = subscribe(&d);
	TL_ASSERT(stats_events(&d, c, "subscribers") == MANY_SUBSCRIBERS,
	    "events.subscribers is not %d", MANY_SUBSCRIBERS);
	cycle(c, "m");
	for (i = 0; i < MANY_SUBSCRIBERS; i++) {
		seq = 0;
		for (k = 0; k < 4; k++)
			json_decref(expect_next(subs[i], kinds[k], "m", &seq));
	}
	TL_ASSERT(stats_events(&d, c, "sent") == 4 * MANY_SUBSCRIBERS,
	    "events.sent %lld", stats_events(&d, c, "sent"));
	for (i = 0; i < MANY_SUBSCRIBERS; i++)
		tl_close(subs[i]);
	wait_subscribers(&d, c, 0);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- poolc events --------------------------------------------------- */

/* Runs POOLC_BIN -s SOCK events [--json] with stdout into a pipe. */
static pid_t
poolc_events(struct tl_daemon *d, bool json, int *out, const char *errlog)
{
	const char *bin = getenv("POOLC_BIN");
	int fds[2];
	pid_t pid;

	TL_ASSERT(bin != NULL, "POOLC_BIN is not set");
	TL_ASSERT(pipe(fds) == 0, "pipe");
	if ((pid = fork()) == 0) {
		int e = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fds[1], 1);
		if (e != -1)
			dup2(e, 2);
		close(fds[0]);
		execl(bin, "poolc", "-s", d->sock, "events",
		    json ? "--json" : NULL, (char *)NULL);
		_exit(127);
	}
	TL_ASSERT(pid > 0, "fork");
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	*out = fds[0];
	return pid;
}

/* Reads fd into buf (NUL-terminated) until it holds want or timeout. */
static bool
read_until(int fd, char *buf, size_t cap, size_t *len, const char *want)
{
	long long dl = tl_now_ms() + WAIT_MS;
	ssize_t n;

	while (tl_now_ms() < dl) {
		struct pollfd pfd = { fd, POLLIN, 0 };

		if (strstr(buf, want) != NULL)
			return true;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((n = read(fd, buf + *len, cap - 1 - *len)) <= 0)
			return strstr(buf, want) != NULL;
		*len += (size_t)n;
		buf[*len] = '\0';
	}
	return strstr(buf, want) != NULL;
}

START_TEST(test_poolc_events)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char out[16384] = "", out2[16384] = "", errlog[TL_PATH_MAX];
	size_t len = 0, len2 = 0;
	int fd, fd2, status;
	pid_t human, raw;
	bool ok;

	tl_daemon_init(&d, _i);
	tl_model(&d, "m", "load_ms=0\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	snprintf(errlog, sizeof(errlog), "%s/poolc.err", d.dir);
	human = poolc_events(&d, false, &fd, "/dev/null");
	raw = poolc_events(&d, true, &fd2, errlog);
	wait_subscribers(&d, c, 2);
	cycle(c, "m");
	TL_ASSERT(read_until(fd, out, sizeof(out), &len, " exit "),
	    "poolc events printed: %s", out);
	TL_ASSERT(strstr(out, " start    m port=") != NULL &&
	    strstr(out, " ready    m ") != NULL &&
	    strstr(out, " evict    m ") != NULL &&
	    strstr(out, "reason=evict") != NULL, "poolc events: %s", out);
	TL_ASSERT(read_until(fd2, out2, sizeof(out2), &len2,
	    "\"event\":\"exit\""), "poolc events --json: %s", out2);
	{
		char *nl, *line = out2;
		int lines = 0;

		while ((nl = strchr(line, '\n')) != NULL) {
			json_t *j = json_loadb(line, (size_t)(nl - line), 0,
			    NULL);

			TL_ASSERT(j != NULL && tl_str(j, "event") != NULL,
			    "--json line: %.*s", (int)(nl - line), line);
			json_decref(j);
			lines++;
			line = nl + 1;
		}
		TL_ASSERT(lines == 4, "--json: %d lines: %s", lines, out2);
	}
	/* SIGINT ends it with 0. */
	kill(human, SIGINT);
	TL_ASSERT(waitpid(human, &status, 0) == human && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "poolc events after SIGINT: %#x",
	    status);
	/* poold going away ends it with an error and a message. */
	tl_close(c);
	TL_ASSERT(kill(d.pid, SIGTERM) == 0, "kill poold");
	status = 0;
	TL_WAIT_UNTIL(ok, waitpid(raw, &status, WNOHANG) == raw, WAIT_MS);
	TL_ASSERT(ok && WIFEXITED(status) && WEXITSTATUS(status) != 0,
	    "poolc events when poold went: %d %#x", ok, status);
	TL_ASSERT(tl_daemon_wait(&d, WAIT_MS) && WIFEXITED(d.status) &&
	    WEXITSTATUS(d.status) == 0, "poold after SIGTERM: %#x", d.status);
	{
		FILE *f = fopen(errlog, "r");
		char line[512] = "";

		if (f != NULL) {
			(void)!fgets(line, sizeof(line), f);
			fclose(f);
		}
		TL_ASSERT(strstr(line, "closed") != NULL,
		    "poolc's message when poold went: %s", line);
	}
	tl_daemon_finish(&d);
	close(fd);
	close(fd2);
}
END_TEST

/* --- what the review found ---------------------------------------- */

/*
 * Pass: a subscriber asks MODELS (4,000 models: a reply over 256 KiB)
 * and, in the same write, ACQUIREs m (a start event queued behind the
 * reply): it reads both replies and the event, and is not dropped.  Its
 * replies have outbuf_bytes; only its events count against the events'
 * limit (before, its own reply got it dropped).
 */
START_TEST(test_own_big_reply)
{
	struct tl_daemon d;
	struct tl_conn *s, *c;
	char name[160], *line;
	json_t *j;
	size_t len;
	bool models = false, acquired = false, started = false;

	tl_daemon_init(&d, _i);
	for (int i = 0; i < 4000; i++) {
		snprintf(name, sizeof(name), "model-with-a-rather-long-name-to-"
		    "make-the-models-reply-big-%05d", i);
		tl_model(&d, name, "load_ms=0\n");
	}
	tl_model(&d, "m", "load_ms=0\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	s = subscribe(&d);
	TL_ASSERT(tl_sendf(s, "{\"cmd\":\"MODELS\",\"id\":1}\n"
	    "{\"cmd\":\"ACQUIRE\",\"model\":\"m\",\"id\":2}\n") == 0, "write");
	while (!(models && acquired && started)) {
		line = tl_recv_line(s, WAIT_MS, &len);
		TL_ASSERT(line != NULL, "the subscriber's connection ended (or "
		    "went quiet) before both replies and the start event: "
		    "MODELS %d, ACQUIRE %d, start %d", models, acquired,
		    started);
		TL_ASSERT((j = json_loadb(line, len, 0, NULL)) != NULL,
		    "not JSON: %.80s", line);
		free(line);
		if (json_object_get(j, "event") != NULL)
			started |= strcmp(tl_str(j, "event"), "start") == 0;
		else if (tl_int(j, "id") == 1)
			models = tl_ok(j) && json_array_size(tl_get(j,
			    "models")) == 4001;
		else if (tl_int(j, "id") == 2)
			acquired = tl_ok(j);
		json_decref(j);
	}
	TL_ASSERT(stats_events(&d, c, "dropped") == 0, "a subscriber that "
	    "reads was dropped for its own MODELS reply");
	TL_ASSERT(stats_events(&d, c, "subscribers") == 1, "it is gone");
	tl_close(s);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: on SIGTERM the SSE stream gets the last server's exit event, as
 * the socket's subscriber does (before, it was queued for a POLLOUT the
 * loop's end never waited for).
 */
START_TEST(test_sse_shutdown)
{
	struct tl_daemon d;
	struct tl_conn *s, *c;
	struct tl_http *h;
	json_t *arr = json_array(), *e;
	size_t off = 0;
	long comments = 0;
	long long seq = 0;
	int port;
	bool sock_exit = false, sse_exit = false;

	tl_daemon_init(&d, _i);
	tl_model(&d, "m", "load_ms=0\n");
	tl_daemon_start(&d, "{\"http\":{\"listen\":\"127.0.0.1:0\"}}");
	c = tl_connect(&d);
	port = http_port(&d, c);
	s = subscribe(&d);
	h = tl_http_open(port);
	tl_http_sendf(h, "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n");
	TL_ASSERT(tl_http_wait_head(h, WAIT_MS) && h->status == 200,
	    "GET /events: %d", h->status);
	wait_subscribers(&d, c, 2);
	tl_release(c, tl_acquire_ok(c, "m", true, NULL));
	json_decref(expect_event(s, "ready", &seq));
	tl_close(c);
	TL_ASSERT(kill(d.pid, SIGTERM) == 0, "kill: %s", strerror(errno));
	while ((e = next_event(s, WAIT_MS)) != NULL) {
		sock_exit |= strcmp(tl_str(e, "event"), "exit") == 0;
		json_decref(e);
	}
	for (long long dl = tl_now_ms() + WAIT_MS; !h->eof &&
	    tl_now_ms() < dl;)
		tl_http_read(h, 100);
	TL_ASSERT(h->eof, "the stream did not end with poold");
	sse_parse(h, &off, arr, &comments);
	for (size_t i = 0; i < json_array_size(arr); i++)
		sse_exit |= strcmp(tl_str(json_array_get(arr, i), "event"),
		    "exit") == 0;
	TL_ASSERT(sock_exit, "the socket's subscriber got no exit event");
	TL_ASSERT(sse_exit, "the SSE stream lost the exit event: %s",
	    h->body);
	tl_http_close(h);
	tl_close(s);
	json_decref(arr);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: with max_conns 4, one event stream (a quarter) is open; a
 * second is answered 503 busy, and GET /health still gets 200 past the
 * idle timeout (before, four streams took every connection for good).
 * max_event_streams 4 is refused at a reload (not below max_conns); 2
 * applies, and a second stream opens.
 */
START_TEST(test_sse_streams_max)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h[3];
	json_t *rep;
	int port;

	tl_daemon_init(&d, _i);
	tl_daemon_start(&d, "{\"http\":{\"listen\":\"127.0.0.1:0\","
	    "\"max_conns\":4,\"idle_timeout\":\"1s\"}}");
	c = tl_connect(&d);
	port = http_port(&d, c);
	for (int i = 0; i < 3; i++) {
		h[i] = tl_http_open(port);
		tl_http_sendf(h[i], "GET /events HTTP/1.1\r\nHost: localhost"
		    "\r\n\r\n");
		TL_ASSERT(tl_http_wait_head(h[i], WAIT_MS), "stream %d: no "
		    "head", i);
	}
	TL_ASSERT(h[0]->status == 200, "the first stream: %d", h[0]->status);
	for (int i = 1; i < 3; i++) {
		TL_ASSERT(h[i]->status == 503, "stream %d past the cap: %d", i,
		    h[i]->status);
		(void)tl_http_wait_done(h[i], WAIT_MS);
		TL_ASSERT(strstr(h[i]->body, "max_event_streams") != NULL &&
		    strstr(h[i]->body, "\"busy\"") != NULL, "the 503 says "
		    "nothing of the cap: %s", h[i]->body);
		tl_http_close(h[i]);
	}
	tl_sleep_ms(1500);	/* past idle_timeout */
	TL_ASSERT(tl_http_status(port, "/health", WAIT_MS) == 200,
	    "GET /health with a stream open");

	tl_write_config(&d, "{\"http\":{\"listen\":\"127.0.0.1:0\","
	    "\"max_conns\":4,\"max_event_streams\":4}}");
	rep = tl_call(c, json_pack("{s:s}", "cmd", "RELOAD"), WAIT_MS);
	tl_expect_error(rep, "bad_request", NULL, "max_event_streams 4");
	TL_ASSERT(strstr(tl_str(rep, "message"), "max_event_streams") != NULL,
	    "the refusal does not name the key: %s", tl_dump(rep));
	json_decref(rep);
	tl_write_config(&d, "{\"http\":{\"listen\":\"127.0.0.1:0\","
	    "\"max_conns\":4,\"max_event_streams\":2}}");
	rep = tl_call(c, json_pack("{s:s}", "cmd", "RELOAD"), WAIT_MS);
	TL_ASSERT(tl_ok(rep), "RELOAD: %s", tl_dump(rep));
	json_decref(rep);
	h[1] = tl_http_open(port);
	tl_http_sendf(h[1], "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n");
	TL_ASSERT(tl_http_wait_head(h[1], WAIT_MS) && h[1]->status == 200,
	    "a second stream under max_event_streams 2: %d", h[1]->status);
	tl_http_close(h[1]);
	tl_http_close(h[0]);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: a server that writes a byte that is not UTF-8 (\377) and
 * exits: its exit event keeps its status and its failed event its
 * message (made valid UTF-8), and STATS still lists the model with its
 * last error (before, each lost the field or the whole entry).
 */
START_TEST(test_not_utf8)
{
	struct tl_daemon d;
	struct tl_conn *s, *c;
	json_t *e, *rep, *m;
	long long seq = 0;
	size_t i;
	bool listed = false;

	tl_daemon_init(&d, _i);
	tl_model(&d, "bad", "x\n");
	tl_daemon_start(&d, "{\"command\":[\"/bin/sh\",\"-c\","
	    "\"printf 'error: bad byte \\\\377 here\\\\n' >&2; exit 3\","
	    "\"{path}\",\"{port}\"]}");
	c = tl_connect(&d);
	s = subscribe(&d);
	json_decref(tl_acquire(c, "bad", 5000, false));
	e = expect_event(s, "exit", &seq);
	TL_ASSERT(tl_str(e, "status") != NULL, "exit without status: %s",
	    tl_dump(e));
	json_decref(e);
	e = expect_event(s, "failed", &seq);
	TL_ASSERT(tl_str(e, "message") != NULL && strstr(tl_str(e, "message"),
	    "bad byte ? here") != NULL, "failed: %s", tl_dump(e));
	json_decref(e);
	rep = tl_call(c, json_pack("{s:s}", "cmd", "STATS"), WAIT_MS);
	TL_ASSERT(tl_ok(rep), "STATS: %s", tl_dump(rep));
	json_array_foreach(tl_get(rep, "models"), i, m)
		if (strcmp(tl_str(m, "model"), "bad") == 0)
			listed = tl_str(m, "last_error") != NULL &&
			    strstr(tl_str(m, "last_error"), "bad byte") != NULL;
	TL_ASSERT(listed, "STATS lost bad or its last error: %s",
	    tl_dump(rep));
	json_decref(rep);
	tl_close(s);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("events");

	tl_add(s, "lifecycle", test_lifecycle);
	tl_add(s, "failed_and_pressure", test_failed_and_pressure);
	tl_add(s, "idle", test_idle);
	tl_add(s, "sse", test_sse);
	tl_add(s, "sse_keepalive", test_sse_keepalive);
	tl_add(s, "slow_subscriber", test_slow_subscriber);
	tl_add(s, "attackers", test_attackers);
	tl_add(s, "many_subscribers", test_many_subscribers);
	tl_add(s, "poolc_events", test_poolc_events);
	tl_add(s, "own_big_reply", test_own_big_reply);
	tl_add(s, "sse_shutdown", test_sse_shutdown);
	tl_add(s, "sse_streams_max", test_sse_streams_max);
	tl_add(s, "not_utf8", test_not_utf8);
	return tl_run(s, CK_NORMAL);
}
