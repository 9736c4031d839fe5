/*
 * check_edge.c — the edge of the socket holds (issue 9, items 1-4): the
 * output buffer stays as small as the backlog, leases are bounded, a dead
 * client ends at once while a half-closed one is answered, and poold
 * keeps descriptors for its servers and closes idle clients.
 *
 * Every test drives the real poold over its real socket (testlib.c).
 *
 * Environment: POOLD_BIN, FAKELLAMA_BIN (make check sets them).
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "poold.h"
#include "testlib.h"

#define MIB		(1024LL * 1024)

/* --- small helpers ------------------------------------------------ */

/*
 * Under AddressSanitizer freed memory waits in a quarantine of 256 MiB,
 * which would hide whether poold's own buffers stay small: keep it small
 * for the poold this test starts (the test runs in a process of its own).
 */
static void
small_asan_quarantine(void)
{
	const char *old = getenv("ASAN_OPTIONS");
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s%squarantine_size_mb=1:"
	    "thread_local_quarantine_size_kb=64", old ? old : "",
	    old && *old ? ":" : "");
	setenv("ASAN_OPTIONS", buf, 1);
}

/* The entry of model in STATS' "models" array, NULL if not there. */
static json_t *
stats_model(json_t *stats, const char *model)
{
	json_t *m;
	size_t i;

	json_array_foreach(tl_get(stats, "models"), i, m)
		if (tl_str(m, "model") && strcmp(tl_str(m, "model"), model) == 0)
			return m;
	return NULL;
}

/* --- item 1: the output buffer ------------------------------------ */

#define FLAT_ID_BYTES	900	/* each reply ≈ 1 KiB */
#define FLAT_PRELOAD	600	/* replies left unread: ≈ 600 KiB backlog */
#define FLAT_BATCH	32
#define FLAT_WARMUP	100	/* rounds before the first RSS figure */
#define FLAT_ROUNDS	2000	/* ≈ 62 MiB of replies in all */
#define FLAT_GROWTH_MAX	(8 * MIB)

static void
send_pings(struct tl_conn *c, const char *line, size_t len, int n)
{
	char *batch;
	int i;

	batch = malloc(len * (size_t)n);
	TL_ASSERT(batch != NULL, "out of memory");
	for (i = 0; i < n; i++)
		memcpy(batch + (size_t)i * len, line, len);
	TL_ASSERT(tl_send(c, batch, len * (size_t)n) == 0,
	    "sending %d PINGs: %s", n, strerror(errno));
	free(batch);
}

static void
read_replies(struct tl_conn *c, int n, const char *what)
{
	char *line;
	int i;

	for (i = 0; i < n; i++) {
		line = tl_recv_line(c, TL_REPLY_TIMEOUT_MS, NULL);
		TL_ASSERT(line != NULL, "%s: reply %d of %d missing%s", what,
		    i, n, c->eof ? " (connection closed)" : "");
		TL_ASSERT(strncmp(line, "{\"ok\":true", 10) == 0,
		    "%s: %.200s", what, line);
		free(line);
	}
}

/*
 * Item 1.  A client pipelines PINGs and reads at the pace it asks, with
 * a steady backlog of about 600 KiB (under outbuf_bytes, 1 MiB): the
 * buffer never drains, so a buffer that only grows at its end takes poold
 * up by every byte it ever sent.  poold's RSS must stay flat.
 */
START_TEST(test_outbuf_flat)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char id[FLAT_ID_BYTES + 1], line[FLAT_ID_BYTES + 64];
	long long before, after;
	size_t len;
	int r;

	small_asan_quarantine();
	tl_daemon_init(&d, 1);
	tl_daemon_start(&d, NULL);
	memset(id, 'x', FLAT_ID_BYTES);
	id[FLAT_ID_BYTES] = '\0';
	len = (size_t)snprintf(line, sizeof(line),
	    "{\"cmd\":\"PING\",\"id\":\"%s\"}\n", id);
	c = tl_connect(&d);
	send_pings(c, line, len, FLAT_PRELOAD);
	for (r = 0; r < FLAT_WARMUP; r++) {
		send_pings(c, line, len, FLAT_BATCH);
		read_replies(c, FLAT_BATCH, "warm-up");
	}
	before = tl_proc_rss(d.pid);
	for (r = 0; r < FLAT_ROUNDS; r++) {
		send_pings(c, line, len, FLAT_BATCH);
		read_replies(c, FLAT_BATCH, "steady backlog");
	}
	after = tl_proc_rss(d.pid);
	read_replies(c, FLAT_PRELOAD, "the backlog");
	fprintf(stderr, "outbuf_flat: poold RSS %.1f MiB before, %.1f MiB "
	    "after %d MiB of replies\n", (double)before / MIB,
	    (double)after / MIB,
	    (int)((long long)FLAT_ROUNDS * FLAT_BATCH * (long long)len / MIB));
	TL_ASSERT(before > 0 && after > 0, "no VmRSS for poold");
	TL_ASSERT(after - before < FLAT_GROWTH_MAX, "poold's RSS grew from "
	    "%.1f MiB to %.1f MiB under a steady backlog", (double)before / MIB,
	    (double)after / MIB);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- item 2: leases are bounded ----------------------------------- */

/* Fails unless rep is busy and its message names key. */
static void
expect_busy_naming(json_t *rep, const char *key, const char *what)
{
	tl_expect_error(rep, "busy", NULL, what);
	TL_ASSERT(strstr(tl_str(rep, "message"), key) != NULL,
	    "%s: the message does not name %s: %s", what, key, tl_dump(rep));
}

/* Replies to ids[0..n-1]: how many were ok; the others must be busy
 * naming key. */
static int
count_ok(struct tl_conn *c, const long long *ids, int n, const char *key,
    const char *what)
{
	json_t *rep;
	int i, ok = 0;

	for (i = 0; i < n; i++) {
		rep = tl_recv_id(c, ids[i], TL_REPLY_TIMEOUT_MS);
		TL_ASSERT(rep != NULL, "%s: ACQUIRE %d not answered", what, i);
		if (tl_ok(rep))
			ok++;
		else
			expect_busy_naming(rep, key, what);
		json_decref(rep);
	}
	return ok;
}

/*
 * Item 2.  max_leases_per_client and max_leases bound the leases a
 * connection and all of them hold, counting ACQUIREs that wait with hold
 * (pipelining cannot pass them); past them ACQUIRE is answered busy,
 * naming the key, and a RELEASE makes room again.  ACQUIRE without hold
 * takes no lease and still works.
 */
START_TEST(test_lease_limits)
{
	struct tl_daemon d;
	struct tl_conn *a, *b;
	long long lease, ids[7];
	json_t *rep;
	int i, ok;

	tl_daemon_init(&d, 2);
	tl_model(&d, "a", "load_ms=10\nmem=1M\n");
	tl_model(&d, "s", "load_ms=3000\nmem=1M\n");
	tl_daemon_start(&d, "{\"max_leases_per_client\": 5, "
	    "\"max_leases\": 8}");
	a = tl_connect(&d);
	b = tl_connect(&d);
	(void)tl_acquire_ok(a, "a", false, NULL);	/* a is ready */

	/* b pipelines 7 cold ACQUIREs with hold: 5 wait, 2 are refused at
	 * once; then, while those 5 still wait, a gets 3 of 4 leases. */
	for (i = 0; i < 7; i++)
		ids[i] = tl_send_req(b, tl_acquire_req("s", -1, true));
	for (i = 5; i < 7; i++) {
		rep = tl_recv_id(b, ids[i], TL_REPLY_TIMEOUT_MS);
		expect_busy_naming(rep, "(max_leases_per_client)",
		    "pipelined past max_leases_per_client");
		json_decref(rep);
	}
	for (i = 0; i < 4; i++)
		ids[i] = tl_send_req(a, tl_acquire_req("a", -1, true));
	ok = count_ok(a, ids, 4, "(max_leases)", "past max_leases");
	TL_ASSERT(ok == 3, "with 5 ACQUIREs waiting of 8, %d of 4 leases "
	    "given (want 3)", ok);
	(void)tl_acquire_ok(a, "a", false, NULL);	/* no lease: served */
	for (i = 0; i < 5; i++) {
		rep = tl_recv(b, TL_REPLY_TIMEOUT_MS);
		TL_ASSERT(rep != NULL && tl_ok(rep), "b's waiting ACQUIRE: %s",
		    tl_dump(rep));
		if (i == 0)
			lease = tl_int(rep, "lease");
		json_decref(rep);
	}
	rep = tl_acquire(b, "s", -1, true);
	expect_busy_naming(rep, "(max_leases_per_client)", "a sixth lease");
	json_decref(rep);

	/* A RELEASE makes room; the pool is full again after one more. */
	tl_release(b, lease);
	(void)tl_acquire_ok(a, "a", true, NULL);
	rep = tl_acquire(b, "s", -1, true);
	expect_busy_naming(rep, "(max_leases)", "a ninth lease");
	json_decref(rep);
	tl_close(a);
	tl_close(b);
	tl_daemon_finish(&d);
}
END_TEST

#define DEFAULT_CLIENT_LEASES	1024	/* poold.json(5) */

/* Item 2, the default: one connection gets 1024 leases, not more. */
START_TEST(test_lease_default_limit)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep;
	char *batch;
	size_t len = 0, cap = (DEFAULT_CLIENT_LEASES + 100) * 64;
	int i, ok = 0, busy = 0;

	tl_daemon_init(&d, 6);
	tl_model(&d, "a", "load_ms=10\nmem=1M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	(void)tl_acquire_ok(c, "a", false, NULL);	/* started, ready */
	batch = malloc(cap);
	TL_ASSERT(batch != NULL, "out of memory");
	for (i = 0; i < DEFAULT_CLIENT_LEASES + 100; i++)
		len += (size_t)snprintf(batch + len, cap - len,
		    "{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"id\":%d}\n", i);
	TL_ASSERT(tl_send(c, batch, len) == 0, "send: %s", strerror(errno));
	free(batch);
	for (i = 0; i < DEFAULT_CLIENT_LEASES + 100; i++) {
		rep = tl_recv(c, TL_REPLY_TIMEOUT_MS);
		TL_ASSERT(rep != NULL, "reply %d missing", i);
		if (tl_ok(rep))
			ok++;
		else if (strcmp(tl_err(rep), "busy") == 0)
			busy++;
		json_decref(rep);
	}
	TL_ASSERT(ok == DEFAULT_CLIENT_LEASES && busy == 100, "%d leases "
	    "given, %d busy (want %d and 100)", ok, busy,
	    DEFAULT_CLIENT_LEASES);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- item 3: a dead client and a half-closed one ------------------ */

#define SLOW_LOAD_MS	30000	/* a cold start that outlasts the test */
/* Well before acquire_timeout (20 s in testlib's config), loose enough
 * for a loaded machine; HANGUP_CHECK_S is 1 s. */
#define GONE_WITHIN_MS	4000

/* Leases of model's server from STATS (0 when it is not running). */
static long long
leases_of(struct tl_daemon *d, struct tl_conn *mon, const char *model)
{
	long long n = tl_server_leases(d, mon, model);

	return n < 0 ? 0 : n;
}

/*
 * A client takes a lease on a, asks for the slow model s (a cold start
 * that waits) and waits until poold has the request.  Returns the lease.
 */
static long long
lease_and_wait(struct tl_daemon *d, struct tl_conn *mon, struct tl_conn *c)
{
	long long lease;
	bool ok;

	lease = tl_acquire_ok(c, "a", true, NULL);
	(void)tl_send_req(c, tl_acquire_req("s", -1, true));
	TL_WAIT_UNTIL(ok, tl_stats_int(d, mon, "waiting") >= 1, 5000);
	TL_ASSERT(ok, "the cold ACQUIRE of s is not waiting");
	return lease;
}

/*
 * Item 3.  A client that closes its connection with a lease held and a
 * cold ACQUIRE waiting is gone: STATS from another client shows the lease
 * ended and the waiter dropped at once, well before acquire_timeout.
 */
START_TEST(test_full_close_ends_all)
{
	struct tl_daemon d;
	struct tl_conn *mon, *c;
	long long t0, leases = -1, waiting = -1;
	bool ok;

	tl_daemon_init(&d, 3);
	tl_model(&d, "a", "load_ms=10\nmem=1M\n");
	tl_model(&d, "s", "load_ms=%d\nmem=1M\n", SLOW_LOAD_MS);
	tl_daemon_start(&d, NULL);
	mon = tl_connect(&d);
	c = tl_connect(&d);
	(void)lease_and_wait(&d, mon, c);
	TL_ASSERT(leases_of(&d, mon, "a") == 1, "the lease on a is not held");
	t0 = tl_now_ms();
	tl_close(c);
	TL_WAIT_UNTIL(ok, (leases = leases_of(&d, mon, "a"),
	    waiting = tl_stats_int(&d, mon, "waiting"),
	    leases == 0 && waiting == 0), GONE_WITHIN_MS);
	TL_ASSERT(ok, "%lld ms after a full close: %lld leases on a, %lld "
	    "waiting", tl_now_ms() - t0, leases, waiting);
	fprintf(stderr, "full_close: lease and waiter gone after %lld ms\n",
	    tl_now_ms() - t0);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Item 3, what a half-close keeps.  After shutdown(SHUT_WR) the client's
 * lease stays and its waiting ACQUIRE is answered; then the connection
 * closes and the lease ends.
 */
START_TEST(test_half_close_answered)
{
	struct tl_daemon d;
	struct tl_conn *mon, *c;
	json_t *rep;
	long long lease, leases, waiting;
	bool ok;

	tl_daemon_init(&d, 4);
	tl_model(&d, "a", "load_ms=10\nmem=1M\n");
	tl_model(&d, "s", "load_ms=1500\nmem=1M\n");
	tl_daemon_start(&d, NULL);
	mon = tl_connect(&d);
	c = tl_connect(&d);
	lease = lease_and_wait(&d, mon, c);
	TL_ASSERT(shutdown(c->fd, SHUT_WR) == 0, "shutdown: %s",
	    strerror(errno));
	tl_sleep_ms(300);
	leases = leases_of(&d, mon, "a");
	waiting = tl_stats_int(&d, mon, "waiting");
	TL_ASSERT(leases == 1 && waiting == 1, "a half-close dropped its "
	    "lease %lld or its waiting request: %lld leases, %lld waiting",
	    lease, leases, waiting);
	rep = tl_recv(c, TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(rep != NULL && tl_ok(rep) && tl_int(rep, "lease") > 0,
	    "the half-closed client's cold ACQUIRE: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(tl_recv_line(c, TL_REPLY_TIMEOUT_MS, NULL) == NULL &&
	    c->eof, "the connection stays open after its last reply");
	TL_WAIT_UNTIL(ok, leases_of(&d, mon, "a") == 0 &&
	    leases_of(&d, mon, "s") == 0, GONE_WITHIN_MS);
	TL_ASSERT(ok, "the half-closed client's leases outlive it");
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Item 3.  A half-closed client that then closes for good, while its cold
 * ACQUIRE still waits, is found within HANGUP_CHECK_S and ended.
 */
START_TEST(test_half_then_full_close)
{
	struct tl_daemon d;
	struct tl_conn *mon, *c;
	long long t0, leases = -1, waiting = -1;
	bool ok;

	tl_daemon_init(&d, 5);
	tl_model(&d, "a", "load_ms=10\nmem=1M\n");
	tl_model(&d, "s", "load_ms=%d\nmem=1M\n", SLOW_LOAD_MS);
	tl_daemon_start(&d, NULL);
	mon = tl_connect(&d);
	c = tl_connect(&d);
	(void)lease_and_wait(&d, mon, c);
	TL_ASSERT(shutdown(c->fd, SHUT_WR) == 0, "shutdown: %s",
	    strerror(errno));
	tl_sleep_ms(300);
	TL_ASSERT(leases_of(&d, mon, "a") == 1, "a half-close ended the lease");
	t0 = tl_now_ms();
	tl_close(c);
	TL_WAIT_UNTIL(ok, (leases = leases_of(&d, mon, "a"),
	    waiting = tl_stats_int(&d, mon, "waiting"),
	    leases == 0 && waiting == 0), GONE_WITHIN_MS);
	TL_ASSERT(ok, "%lld ms after the close of a half-closed client: %lld "
	    "leases on a, %lld waiting", tl_now_ms() - t0, leases, waiting);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- item 4: descriptors and idle clients ------------------------- */

#define LOW_NOFILE	256	/* poold's descriptor limit in these tests */
#define IDLE_CONNS	250	/* more than LOW_NOFILE leaves for clients */

/*
 * Makes poold start under `ulimit ARGS` (a wrapper script in the test's
 * folder becomes POOLD_BIN for this test's process).
 */
static void
poold_under_ulimit(struct tl_daemon *d, const char *args)
{
	char wrap[TL_PATH_MAX + 16], real[TL_PATH_MAX];
	const char *bin = getenv("POOLD_BIN"), *src = getenv("POOLD_SRCDIR");

	if (bin != NULL && bin[0] != '\0')
		snprintf(real, sizeof(real), "%s", bin);
	else
		snprintf(real, sizeof(real), "%s/build/poold", src ? src : ".");
	snprintf(wrap, sizeof(wrap), "%s/poold-ulimit.sh", d->dir);
	tl_write_file(wrap, "#!/bin/sh\nulimit %s || exit 126\n"
	    "exec '%s' \"$@\"\n", args, real);
	TL_ASSERT(chmod(wrap, 0755) == 0, "chmod %s: %s", wrap,
	    strerror(errno));
	setenv("POOLD_BIN", wrap, 1);
}

/* The soft and hard "Max open files" of pid from /proc/PID/limits. */
static void
proc_nofile(pid_t pid, long long *soft, long long *hard)
{
	char path[64], line[256];
	FILE *f;

	*soft = *hard = -1;
	snprintf(path, sizeof(path), "/proc/%ld/limits", (long)pid);
	TL_ASSERT((f = fopen(path, "r")) != NULL, "%s: %s", path,
	    strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "Max open files", 14) == 0)
			(void)sscanf(line + 14, "%lld %lld", soft, hard);
	fclose(f);
}

/* Item 4a.  poold raises its soft descriptor limit to the hard one. */
START_TEST(test_nofile_raised)
{
	struct tl_daemon d;
	long long soft, hard;

	struct tl_conn *c;
	pid_t srv;

	tl_daemon_init(&d, 7);
	tl_model(&d, "a", "load_ms=20\nmem=1M\n");
	poold_under_ulimit(&d, "-S -n 256");
	tl_daemon_start(&d, NULL);
	proc_nofile(d.pid, &soft, &hard);
	TL_ASSERT(hard > LOW_NOFILE, "the hard limit is %lld: cannot test "
	    "raising the soft one", hard);
	TL_ASSERT(soft == hard, "poold's descriptor limit: soft %lld, hard "
	    "%lld", soft, hard);
	TL_ASSERT(tl_log_has(&d, "descriptor limit raised from 256"),
	    "the raise is not logged");
	/* A server gets the limit poold was given, not poold's raised one
	 * (select(2) and close-every-fd loops expect the usual soft one). */
	c = tl_connect(&d);
	tl_acquire_ok(c, "a", false, NULL);
	srv = tl_stats_pid(&d, c, "a");
	proc_nofile(srv, &soft, &hard);
	TL_ASSERT(soft == 256, "the server's soft descriptor limit is %lld, "
	    "not the 256 poold was started with", soft);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* A line from a raw descriptor within timeout_ms, "" if none. */
static void
raw_line(int fd, char *buf, size_t len, long long timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t n = 0;
	ssize_t r;

	buf[0] = '\0';
	while (n + 1 < len && poll(&pfd, 1, (int)timeout_ms) == 1) {
		if ((r = read(fd, buf + n, len - 1 - n)) <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if (memchr(buf, '\n', n) != NULL)
			break;
	}
}

/* true once STATS' client count is the same 200 ms apart. */
static bool
settled(struct tl_daemon *d, struct tl_conn *mon, long long *clients)
{
	long long last = *clients;

	tl_sleep_ms(200);
	*clients = tl_stats_int(d, mon, "clients");
	return *clients == last;
}

/*
 * Item 4b and c.  Under a descriptor limit of 256 (soft and hard, so
 * poold cannot raise it) and the default max_clients of 1024, 250 idle
 * clients connect.  poold refuses the ones past what its reserve for
 * servers leaves (busy, saying why), and starts of three models still
 * succeed: none fails, no model is failed.  Before, the clients took
 * every descriptor and each start failed with EMFILE.
 */
START_TEST(test_fd_reserve)
{
	static const char *const models[] = { "a", "b", "c" };
	struct tl_daemon d;
	struct tl_conn *mon;
	struct rlimit rl;
	json_t *stats, *m;
	char line[512];
	int fds[IDLE_CONNS], i, refused = 0;
	long long clients;
	bool ok;

	/* This process needs descriptors for them all. */
	TL_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
	if (rl.rlim_cur < IDLE_CONNS + 64 && rl.rlim_max >= IDLE_CONNS + 64) {
		rl.rlim_cur = IDLE_CONNS + 64;
		TL_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s",
		    strerror(errno));
	}
	TL_ASSERT(rl.rlim_cur >= IDLE_CONNS + 64, "this test needs %d "
	    "descriptors; the limit is %llu", IDLE_CONNS + 64,
	    (unsigned long long)rl.rlim_cur);
	tl_daemon_init(&d, 8);
	for (i = 0; i < 3; i++)
		tl_model(&d, models[i], "load_ms=20\nmem=1M\n");
	poold_under_ulimit(&d, "-n 256");
	/* The reserve is 4 descriptors a server that may run: a count
	 * that fits in 256 (with "auto" it is one per port). */
	tl_daemon_start(&d, "{\"max_servers\": 8}");
	mon = tl_connect(&d);
	for (i = 0; i < IDLE_CONNS; i++) {
		fds[i] = tl_connect_fd(d.sock);
		TL_ASSERT(fds[i] != -1, "connection %d: %s", i, strerror(errno));
	}
	/* Every connection taken in (or refused) before the starts. */
	clients = -1;
	TL_WAIT_UNTIL(ok, settled(&d, mon, &clients), 10000);
	TL_ASSERT(ok, "the client count does not settle: %lld", clients);
	for (i = 0; i < 3; i++)
		(void)tl_acquire_ok(mon, models[i], false, NULL);
	stats = tl_stats(&d, mon);
	TL_ASSERT(tl_int(stats, "counters.start_failures") == 0, "starts "
	    "failed: %s", tl_dump(tl_get(stats, "counters")));
	for (i = 0; i < 3; i++) {
		m = stats_model(stats, models[i]);
		TL_ASSERT(m == NULL || tl_str(m, "state") == NULL ||
		    strcmp(tl_str(m, "state"), "failed") != 0, "%s is failed",
		    models[i]);
	}
	json_decref(stats);
	/* The refused ones are told so, and why. */
	for (i = IDLE_CONNS - 1; i >= 0; i--) {
		raw_line(fds[i], line, sizeof(line), refused ? 0 : 2000);
		if (strstr(line, "\"busy\"") == NULL)
			break;
		TL_ASSERT(strstr(line, "descriptors") != NULL, "refusal does "
		    "not say why: %s", line);
		refused++;
	}
	clients = tl_stats_int(&d, mon, "clients");
	fprintf(stderr, "fd_reserve: %lld clients served, %d refused\n",
	    clients, refused);
	TL_ASSERT(refused > 0, "no client refused under a limit of %d",
	    LOW_NOFILE);
	for (i = 0; i < IDLE_CONNS; i++)
		close(fds[i]);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Item 4d.  With idle_client_timeout 1 s, a client that holds nothing and
 * says nothing is closed; one that holds a lease, one that waits for a
 * cold start and one that keeps talking are not.
 */
START_TEST(test_idle_client_timeout)
{
	struct tl_daemon d;
	struct tl_conn *idle, *holder, *waiter, *talker;
	long long t0, closed_after, id;
	json_t *rep;
	char *line;

	tl_daemon_init(&d, 9);
	tl_model(&d, "a", "load_ms=10\nmem=1M\n");
	tl_model(&d, "s", "load_ms=3000\nmem=1M\n");
	tl_daemon_start(&d, "{\"idle_client_timeout\": \"1s\"}");
	holder = tl_connect(&d);
	(void)tl_acquire_ok(holder, "a", true, NULL);
	waiter = tl_connect(&d);
	id = tl_send_req(waiter, tl_acquire_req("s", -1, true));
	talker = tl_connect(&d);
	t0 = tl_now_ms();
	idle = tl_connect(&d);
	while (tl_now_ms() - t0 < 2500) {
		rep = tl_call(talker, json_pack("{s:s}", "cmd", "PING"),
		    TL_REPLY_TIMEOUT_MS);
		json_decref(rep);
		tl_sleep_ms(300);
	}
	line = tl_recv_line(idle, 8000, NULL);
	closed_after = tl_now_ms() - t0;
	TL_ASSERT(line == NULL && idle->eof, "the idle client is still "
	    "connected %lld ms later", closed_after);
	TL_ASSERT(closed_after >= 900, "the idle client was closed after "
	    "%lld ms, before idle_client_timeout (1 s)", closed_after);
	rep = tl_recv_id(waiter, id, TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(rep != NULL && tl_ok(rep), "the waiting client: %s",
	    tl_dump(rep));
	json_decref(rep);
	rep = tl_call(holder, json_pack("{s:s}", "cmd", "PING"),
	    TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(tl_ok(rep), "the lease holder was closed");
	json_decref(rep);
	TL_ASSERT(tl_log_has(&d, "closed: idle for 1 s"), "no log line");
	tl_close(idle);
	tl_close(holder);
	tl_close(waiter);
	tl_close(talker);
	tl_daemon_finish(&d);
}
END_TEST

/* Item 4d.  The default is finite: 10 minutes (poold.json(5)). */
START_TEST(test_idle_client_default)
{
	struct config conf;

	config_defaults(&conf);
	ck_assert_int_eq(conf.idle_client_timeout_ms, 10 * 60 * 1000);
	config_free(&conf);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("edge");

	tl_add(s, "outbuf_flat", test_outbuf_flat);
	tl_add(s, "lease_limits", test_lease_limits);
	tl_add(s, "lease_default", test_lease_default_limit);
	tl_add(s, "full_close", test_full_close_ends_all);
	tl_add(s, "half_close", test_half_close_answered);
	tl_add(s, "half_then_full", test_half_then_full_close);
	tl_add(s, "nofile_raised", test_nofile_raised);
	tl_add(s, "fd_reserve", test_fd_reserve);
	tl_add(s, "idle_client", test_idle_client_timeout);
	tl_add(s, "idle_default", test_idle_client_default);
	return tl_run(s, CK_ENV);
}
