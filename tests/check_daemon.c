/*
 * check_daemon.c — integration tests: the real poold, its real socket,
 * real child processes (the stand-in build/fakellama).
 *
 * Every test starts its own poold on a temporary folder (testlib.c) and
 * ends with tl_daemon_finish(): no zombie among poold's children, SIGTERM
 * makes it exit 0 in time, none of the processes the test saw is left,
 * the socket is removed.  Model files hold key=value lines the stand-in
 * reads.  A model accounted 8M really uses mem=4M plus the stand-in's own
 * ~2M, so the real RSS of the children can be checked against the budget.
 *
 * Environment: POOLD_BIN, FAKELLAMA_BIN (make check sets them).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "testlib.h"

#define MIB		(1024LL * 1024)
/* Slack for timing assertions on a loaded machine. */
#define LATE_MS		1500

/* --- small helpers ------------------------------------------------ */

static bool
matches(const char *text, const char *ere)
{
	regex_t re;
	bool m;

	if (text == NULL || regcomp(&re, ere, REG_EXTENDED | REG_ICASE |
	    REG_NOSUB) != 0)
		return false;
	m = regexec(&re, text, 0, NULL, 0) == 0;
	regfree(&re);
	return m;
}

static void
assert_dead(pid_t pid, const char *what)
{
	TL_ASSERT(!tl_pid_exists(pid), "%s: process %d still exists (state %c,"
	    " parent %d)", what, (int)pid, tl_proc_state(pid),
	    (int)tl_proc_ppid(pid));
}

/* --- 1. LRU ------------------------------------------------------- */

/*
 * Pass: room for 27 (216M / 8M).  After m01..m27 were each acquired and
 * released in order and m01, m02 touched again, ACQUIRE m28 stops exactly
 * m03 (the least recently used): when that ACQUIRE is answered m03's
 * process no longer exists (not even as a zombie: m28 may only be spawned
 * after the reap), STATS shows every model but m03, evictions == 1, and no
 * STATS sample, also those taken during m28's start, shows more than 27
 * servers or more memory than the budget.
 */
START_TEST(test_lru_evicts_exactly_the_oldest)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	json_t *st, *rep;
	char name[16];
	long long lease, id, waits[28], t0;
	pid_t pid3, kids[64];
	int i, n;

	tl_daemon_init(&d, 1);
	for (i = 1; i <= 30; i++) {
		snprintf(name, sizeof(name), "m%02d", i);
		tl_model(&d, name, "load_ms=50\nmem=4M\n");
	}
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	mon = tl_connect(&d);

	st = tl_stats(&d, mon);
	/* 27 of 8M fit by bytes; the count cap is only the ports. */
	TL_ASSERT(tl_int(st, "max_servers") == d.port_max - d.port_min + 1 &&
	    tl_int(st, "memory.budget") == 216 * MIB,
	    "expected budget 216M and max_servers = the ports: %s",
	    tl_dump(st));
	json_decref(st);

	for (i = 1; i <= 27; i++) {
		snprintf(name, sizeof(name), "m%02d", i);
		rep = tl_acquire(c, name, 20000, true);
		TL_ASSERT(tl_ok(rep) && json_is_true(tl_get(rep, "cold")),
		    "cold ACQUIRE %s: %s", name, tl_dump(rep));
		waits[i] = tl_int(rep, "wait_ms");
		lease = tl_int(rep, "lease");
		json_decref(rep);
		TL_ASSERT(tl_server_leases(&d, mon, name) == 1,
		    "%s not running with 1 lease", name);
		tl_release(c, lease);
	}
	st = tl_stats(&d, mon);
	TL_ASSERT(json_array_size(tl_get(st, "servers")) == 27,
	    "27 servers expected: %s", tl_dump(st));
	pid3 = tl_server_pid(st, "m03");
	TL_ASSERT(pid3 > 0, "no pid for m03: %s", tl_dump(st));
	json_decref(st);
	n = tl_standins(d.pid, kids, 64);
	TL_ASSERT(n == 27, "27 stand-in children expected, found %d", n);

	/* Touch m01 and m02: hits, so m03 is the oldest. */
	for (i = 1; i <= 2; i++) {
		snprintf(name, sizeof(name), "m%02d", i);
		rep = tl_acquire(c, name, 20000, true);
		TL_ASSERT(tl_ok(rep) && json_is_false(tl_get(rep, "cold")),
		    "ACQUIRE %s should be a hit: %s", name, tl_dump(rep));
		lease = tl_int(rep, "lease");
		json_decref(rep);
		tl_release(c, lease);
	}

	/* m28, sampling STATS while it starts. */
	t0 = tl_now_ms();
	id = tl_send_req(c, tl_acquire_req("m28", 20000, true));
	for (;;) {
		if ((rep = tl_recv_id(c, id, 0)) != NULL)
			break;
		json_decref(tl_stats(&d, mon));
		TL_ASSERT(tl_now_ms() - t0 < 20000, "no reply to ACQUIRE m28");
		tl_sleep_ms(2);
	}
	assert_dead(pid3, "m03 evicted, ACQUIRE m28 answered");
	TL_ASSERT(tl_ok(rep), "ACQUIRE m28: %s", tl_dump(rep));
	lease = tl_int(rep, "lease");
	json_decref(rep);

	st = tl_stats(&d, mon);
	n = (int)json_array_size(tl_get(st, "servers"));
	TL_ASSERT(n == 27, "27 servers expected after m28: %s", tl_dump(st));
	TL_ASSERT(tl_server(st, "m03") == NULL, "m03 still listed: %s",
	    tl_dump(st));
	for (i = 1; i <= 28; i++) {
		snprintf(name, sizeof(name), "m%02d", i);
		if (i != 3)
			TL_ASSERT(tl_server(st, name) != NULL,
			    "%s was stopped, only m03 should be: %s", name,
			    tl_dump(st));
	}
	TL_ASSERT(tl_int(st, "counters.evictions") == 1 &&
	    tl_int(st, "counters.starts") == 28,
	    "expected 1 eviction, 28 starts: %s", tl_dump(st));
	json_decref(st);
	tl_release(c, lease);
	TL_ASSERT(tl_check_rss(&d, 216 * MIB) > 0, "no RSS measured");

	qsort(waits + 1, 27, sizeof(waits[0]), tl_cmp_ll);
	fprintf(stderr, "lru: %u servers at once, %u STATS samples, max RSS"
	    " of the children %.1f MiB; cold wait_ms with load_ms=50: min %lld"
	    " median %lld max %lld\n", d.max_servers_seen, d.samples,
	    (double)d.max_rss_seen / MIB, waits[1], waits[14], waits[27]);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 2. idle timeout ---------------------------------------------- */

/*
 * Pass: x and y have idle_timeout 1s.  x, released at t0, leaves STATS
 * between 0.8 s and 5 s after t0 and its process is gone; y, leased all
 * along, is still ready with the same pid 2.5 s after it was acquired
 * (sampled every 50 ms meanwhile); once released, y is stopped for
 * idleness too.
 */
START_TEST(test_idle_timeout)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	long long lx, ly, ty, t0, dt;
	json_t *st, *s;
	pid_t px, py;
	bool ok;

	tl_daemon_init(&d, 2);
	tl_model(&d, "x", "load_ms=50\nmem=4M\n");
	tl_model(&d, "y", "load_ms=50\nmem=4M\n");
	tl_daemon_start(&d, "{\"models\":{\"x\":{\"idle_timeout\":\"1s\"},"
	    "\"y\":{\"idle_timeout\":\"1s\"}}}");
	c = tl_connect(&d);
	mon = tl_connect(&d);

	ly = tl_acquire_ok(c, "y", true, NULL);
	ty = tl_now_ms();
	lx = tl_acquire_ok(c, "x", true, NULL);
	st = tl_stats(&d, mon);
	px = tl_server_pid(st, "x");
	py = tl_server_pid(st, "y");
	TL_ASSERT(px > 0 && py > 0, "x and y should run: %s", tl_dump(st));
	json_decref(st);

	t0 = tl_now_ms();
	tl_release(c, lx);
	TL_WAIT_UNTIL(ok, !tl_has_server(&d, mon, "x"), 5000);
	dt = tl_now_ms() - t0;
	TL_ASSERT(ok, "x (idle_timeout 1s) still running 5 s after RELEASE");
	TL_ASSERT(dt >= 800, "x stopped %lld ms after RELEASE, before its"
	    " idle timeout of 1 s", dt);
	TL_ASSERT(tl_wait_gone(px, 1000), "x's process %d still exists",
	    (int)px);
	TL_ASSERT(tl_counter(&d, mon, "idle_stops") == 1, "idle_stops != 1");

	while (tl_now_ms() < ty + 2500) {
		TL_ASSERT(tl_server_leases(&d, mon, "y") == 1,
		    "leased y was stopped (or lost its lease) after %lld ms",
		    tl_now_ms() - ty);
		tl_sleep_ms(50);
	}
	st = tl_stats(&d, mon);
	s = tl_server(st, "y");
	TL_ASSERT(s != NULL && strcmp(tl_str(s, "state"), "ready") == 0 &&
	    tl_int(s, "pid") == py && tl_int(s, "leases") == 1,
	    "y should be ready, pid %d, 1 lease after 2.5 s: %s", (int)py,
	    tl_dump(st));
	TL_ASSERT(tl_int(st, "counters.idle_stops") == 1,
	    "a leased server was stopped for idleness: %s", tl_dump(st));
	json_decref(st);
	TL_ASSERT(tl_pid_exists(py), "y's process is gone");

	t0 = tl_now_ms();
	tl_release(c, ly);
	TL_WAIT_UNTIL(ok, !tl_has_server(&d, mon, "y"), 5000);
	dt = tl_now_ms() - t0;
	TL_ASSERT(ok && dt >= 800, "y not stopped 0.8-5 s after RELEASE"
	    " (%lld ms)", dt);
	TL_ASSERT(tl_wait_gone(py, 1000), "y's process %d still exists",
	    (int)py);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 3. random workload ------------------------------------------- */

#define RW_CLIENTS	6
#define RW_OPS		300
#define RW_BUDGET	(96 * MIB)

enum rw_state { RW_IDLE, RW_ACQ, RW_HOLD, RW_REL };

struct rw_client {
	struct tl_conn	*c;
	enum rw_state	 st;
	long long	 id, lease, until;
	const char	*model;
	bool		 hold;
};

static uint64_t rw_x = 0x9e3779b97f4a7c15ULL;

static unsigned
rw_rand(unsigned n)
{
	rw_x ^= rw_x << 13;
	rw_x ^= rw_x >> 7;
	rw_x ^= rw_x << 17;
	return (unsigned)(rw_x % n);
}

/*
 * Pass: 6 clients run 300 ACQUIREs (80% held 0-60 ms then released, 20%
 * "hold":false) of 12 models of 8M, 16M and 32M under a 96M budget, with
 * a fixed seed.  STATS and the /proc RSS of all of poold's stand-in
 * children are sampled every 10 ms and after every answer: accounted
 * "used" never exceeds the budget (and equals the sum of the servers'
 * mem, with no more than max_servers servers), the children's real RSS
 * never exceeds the budget, every ACQUIRE succeeds, and at the end the
 * counters match what the clients did, no lease or waiter is left and no
 * child is a zombie.
 */
START_TEST(test_random_workload)
{
	static const char *small[] = { "s1", "s2", "s3", "s4", "s5", "s6" };
	static const char *medium[] = { "m1", "m2", "m3", "m4" };
	static const char *large[] = { "l1", "l2" };
	struct rw_client cl[RW_CLIENTS];
	struct pollfd pfd[RW_CLIENTS];
	struct tl_daemon d;
	struct tl_conn *mon;
	json_t *st, *rep, *s;
	long long now, last = 0, t0, oks = 0, rels = 0, colds = 0;
	int issued = 0, busy, i, r;
	size_t k;

	tl_daemon_init(&d, 3);
	for (i = 0; i < 6; i++)
		tl_model(&d, small[i], "load_ms=%d\nmem=4M\n", 30 + 10 * i);
	for (i = 0; i < 4; i++)
		tl_model(&d, medium[i], "load_ms=%d\nmem=12M\n", 40 + 10 * i);
	for (i = 0; i < 2; i++)
		tl_model(&d, large[i], "load_ms=%d\nmem=28M\n", 60 + 20 * i);
	tl_daemon_start(&d, "{\"memory_limit\":\"96M\",\"models\":{"
	    "\"m1\":{\"memory\":\"16M\"},\"m2\":{\"memory\":\"16M\"},"
	    "\"m3\":{\"memory\":\"16M\"},\"m4\":{\"memory\":\"16M\"},"
	    "\"l1\":{\"memory\":\"32M\"},\"l2\":{\"memory\":\"32M\"}}}");
	mon = tl_connect(&d);
	for (i = 0; i < RW_CLIENTS; i++) {
		memset(&cl[i], 0, sizeof(cl[i]));
		cl[i].c = tl_connect(&d);
	}
	t0 = tl_now_ms();
	for (;;) {
		busy = 0;
		now = tl_now_ms();
		TL_ASSERT(now - t0 < 50000, "workload did not finish in 50 s:"
		    " %d issued, %lld answered", issued, oks);
		for (i = 0; i < RW_CLIENTS; i++) {
			struct rw_client *w = &cl[i];

			switch (w->st) {
			case RW_IDLE:
				if (issued >= RW_OPS)
					break;
				r = (int)rw_rand(100);
				w->model = r < 50 ? small[rw_rand(6)] :
				    r < 85 ? medium[rw_rand(4)] :
				    large[rw_rand(2)];
				w->hold = rw_rand(100) < 80;
				w->id = tl_send_req(w->c,
				    tl_acquire_req(w->model, 15000, w->hold));
				w->st = RW_ACQ;
				issued++;
				break;
			case RW_ACQ:
				if ((rep = tl_recv_id(w->c, w->id, 0)) == NULL)
					break;
				TL_ASSERT(tl_ok(rep), "ACQUIRE %s: %s",
				    w->model, tl_dump(rep));
				oks++;
				if (json_is_true(tl_get(rep, "cold")))
					colds++;
				if (w->hold) {
					w->lease = tl_int(rep, "lease");
					w->until = now + rw_rand(61);
					w->st = RW_HOLD;
				} else
					w->st = RW_IDLE;
				json_decref(rep);
				json_decref(tl_stats(&d, mon));
				tl_check_rss(&d, RW_BUDGET);
				break;
			case RW_HOLD:
				if (now < w->until)
					break;
				w->id = tl_send_req(w->c, json_pack("{s:s, s:I}",
				    "cmd", "RELEASE", "lease",
				    (json_int_t)w->lease));
				w->st = RW_REL;
				break;
			case RW_REL:
				if ((rep = tl_recv_id(w->c, w->id, 0)) == NULL)
					break;
				TL_ASSERT(tl_ok(rep), "RELEASE: %s",
				    tl_dump(rep));
				rels++;
				json_decref(rep);
				w->st = RW_IDLE;
				break;
			}
			if (w->st != RW_IDLE)
				busy++;
		}
		if (busy == 0 && issued >= RW_OPS)
			break;
		if (now - last >= 10) {
			json_decref(tl_stats(&d, mon));
			tl_check_rss(&d, RW_BUDGET);
			last = now;
		}
		for (i = 0; i < RW_CLIENTS; i++) {
			pfd[i].fd = cl[i].c->fd;
			pfd[i].events = POLLIN;
		}
		poll(pfd, RW_CLIENTS, 5);
	}

	st = tl_stats(&d, mon);
	TL_ASSERT(tl_int(st, "counters.acquires") == oks &&
	    tl_int(st, "counters.releases") == rels,
	    "counters disagree with %lld ACQUIREs and %lld RELEASEs: %s", oks,
	    rels, tl_dump(st));
	TL_ASSERT(tl_int(st, "waiting") == 0, "waiters left: %s", tl_dump(st));
	json_array_foreach(tl_get(st, "servers"), k, s)
		TL_ASSERT(tl_int(s, "leases") == 0, "leases left: %s",
		    tl_dump(st));
	fprintf(stderr, "random: %lld ACQUIREs (%lld cold, %lld starts, %lld"
	    " evictions) in %lld ms; %u samples; at most %u servers, %.0f MiB"
	    " accounted, %.1f MiB RSS of %.0f MiB%s\n", oks, colds,
	    tl_int(st, "counters.starts"), tl_int(st, "counters.evictions"),
	    tl_now_ms() - t0, d.samples, d.max_servers_seen,
	    (double)d.max_used_seen / MIB, (double)d.max_rss_seen / MIB,
	    (double)RW_BUDGET / MIB, d.rss_sanitized == 1 ?
	    " (ASan stand-ins: RSS not checked)" : "");
	json_decref(st);
	for (i = 0; i < RW_CLIENTS; i++)
		tl_close(cl[i].c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 4. leases block eviction ------------------------------------- */

/*
 * Pass: budget for 2 (16M / 8M).  With a and b leased, ACQUIRE c with
 * timeout_ms 500 answers busy after 450 ms to 2 s and nothing was
 * stopped (same pids, no eviction).  After RELEASE of a, ACQUIRE c
 * succeeds and a's process is gone by then (evicted).  A waiting ACQUIRE
 * of a (b and c leased) is not answered while the leases hold, and is
 * answered ok once b is released, b being evicted.
 */
START_TEST(test_leases_block_eviction)
{
	struct tl_daemon d;
	struct tl_conn *c1, *c2, *mon;
	long long la, lb, lc, la2, t0, dt, id;
	json_t *st, *rep;
	pid_t pa, pb;
	bool ok;

	tl_daemon_init(&d, 4);
	tl_model(&d, "a", "load_ms=50\nmem=4M\n");
	tl_model(&d, "b", "load_ms=50\nmem=4M\n");
	tl_model(&d, "c", "load_ms=50\nmem=4M\n");
	tl_daemon_start(&d, "{\"memory_limit\":\"16M\"}");
	c1 = tl_connect(&d);
	c2 = tl_connect(&d);
	mon = tl_connect(&d);

	la = tl_acquire_ok(c1, "a", true, NULL);
	lb = tl_acquire_ok(c1, "b", true, NULL);
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_int(st, "running") == 2 && tl_int(st, "memory.free") == 0,
	    "two servers fill the budget: %s", tl_dump(st));
	pa = tl_server_pid(st, "a");
	pb = tl_server_pid(st, "b");
	json_decref(st);

	t0 = tl_now_ms();
	rep = tl_acquire(c2, "c", 500, true);
	dt = tl_now_ms() - t0;
	tl_expect_error(rep, "busy", NULL, "ACQUIRE c with a, b leased");
	json_decref(rep);
	TL_ASSERT(dt >= 450 && dt <= 500 + LATE_MS,
	    "busy after %lld ms, expected about 500", dt);
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_server_pid(st, "a") == pa && tl_server_pid(st, "b") == pb
	    && tl_server(st, "c") == NULL &&
	    tl_int(st, "counters.evictions") == 0 &&
	    tl_int(st, "counters.busy") == 1 && tl_int(st, "waiting") == 0,
	    "a and b should still run, nothing evicted, one busy: %s",
	    tl_dump(st));
	json_decref(st);
	TL_ASSERT(tl_pid_exists(pa) && tl_pid_exists(pb),
	    "a leased server's process is gone");

	tl_release(c1, la);
	rep = tl_acquire(c2, "c", 5000, true);
	TL_ASSERT(tl_ok(rep), "ACQUIRE c after RELEASE a: %s", tl_dump(rep));
	lc = tl_int(rep, "lease");
	json_decref(rep);
	assert_dead(pa, "a evicted for c");
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_server(st, "a") == NULL && tl_server_pid(st, "b") == pb &&
	    tl_server(st, "c") != NULL && tl_int(st, "counters.evictions") == 1,
	    "a should be evicted, b kept, c running: %s", tl_dump(st));
	json_decref(st);

	/* b and c leased: ACQUIRE a waits, then gets b's room. */
	id = tl_send_req(c2, tl_acquire_req("a", 10000, true));
	t0 = tl_now_ms();
	TL_WAIT_UNTIL(ok, tl_stats_int(&d, mon, "waiting") >= 1, 2000);
	TL_ASSERT(ok, "the queued ACQUIRE a is not counted in waiting");
	TL_ASSERT(tl_recv_id(c2, id, 300) == NULL,
	    "ACQUIRE a answered while b and c are leased");
	TL_ASSERT(tl_stats_pid(&d, mon, "b") == pb,
	    "leased b was stopped");
	tl_release(c1, lb);
	rep = tl_recv_id(c2, id, 10000);
	TL_ASSERT(tl_ok(rep), "waiting ACQUIRE a: %s", tl_dump(rep));
	TL_ASSERT(tl_int(rep, "wait_ms") >= 250 && tl_now_ms() - t0 >= 300,
	    "waiting ACQUIRE a reports wait_ms %lld", tl_int(rep, "wait_ms"));
	la2 = tl_int(rep, "lease");
	json_decref(rep);
	assert_dead(pb, "b evicted for a");
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_server(st, "b") == NULL && tl_server(st, "a") != NULL &&
	    tl_server(st, "c") != NULL, "b should be evicted for a: %s",
	    tl_dump(st));
	json_decref(st);
	tl_release(c2, lc);
	tl_release(c2, la2);
	tl_close(c1);
	tl_close(c2);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 5. one start for many ---------------------------------------- */

#define CONC	20

/*
 * Pass: 20 ACQUIREs of cold m from 20 connections, sent before m can be
 * ready (load_ms 300), all answer ok with the same port and 20 distinct
 * leases; counters.starts is 1 and poold has exactly one stand-in child
 * for m.  The same with 20 ACQUIREs of n pipelined in one write on one
 * connection (starts then 2, one child for n).  Closing the connections
 * releases all 40 leases.
 */
START_TEST(test_one_start_for_concurrent_acquires)
{
	struct tl_daemon d;
	struct tl_conn *cs[CONC], *p, *mon;
	long long ids[CONC], leases[CONC];
	json_t *st, *rep;
	char *buf = NULL;
	size_t len = 0;
	int i, j, port = 0, colds = 0;
	FILE *f;
	bool ok;

	tl_daemon_init(&d, 5);
	tl_model(&d, "m", "load_ms=300\nmem=4M\n");
	tl_model(&d, "n", "load_ms=300\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	mon = tl_connect(&d);
	for (i = 0; i < CONC; i++)
		cs[i] = tl_connect(&d);
	for (i = 0; i < CONC; i++)
		ids[i] = tl_send_req(cs[i], tl_acquire_req("m", 10000, true));
	for (i = 0; i < CONC; i++) {
		rep = tl_recv_id(cs[i], ids[i], 15000);
		TL_ASSERT(tl_ok(rep), "ACQUIRE m #%d: %s", i, tl_dump(rep));
		if (i == 0)
			port = (int)tl_int(rep, "port");
		TL_ASSERT(tl_int(rep, "port") == port,
		    "ACQUIRE m #%d on another port: %s", i, tl_dump(rep));
		leases[i] = tl_int(rep, "lease");
		for (j = 0; j < i; j++)
			TL_ASSERT(leases[j] != leases[i], "lease %lld given"
			    " twice", leases[i]);
		if (json_is_true(tl_get(rep, "cold")))
			colds++;
		json_decref(rep);
	}
	TL_ASSERT(colds >= 1, "no ACQUIRE of cold m says cold");
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_int(st, "counters.starts") == 1 &&
	    tl_int(tl_server(st, "m"), "leases") == CONC,
	    "one start and 20 leases expected: %s", tl_dump(st));
	json_decref(st);
	TL_ASSERT(tl_standins_of(&d, "m") == 1, "%d processes for m",
	    tl_standins_of(&d, "m"));

	p = tl_connect(&d);
	f = open_memstream(&buf, &len);
	for (i = 1; i <= CONC; i++)
		fprintf(f, "{\"cmd\":\"ACQUIRE\",\"model\":\"n\",\"id\":%d,"
		    "\"timeout_ms\":10000}\n", i);
	fclose(f);
	TL_ASSERT(tl_send(p, buf, len) == 0, "send: %s", strerror(errno));
	free(buf);
	for (i = 1; i <= CONC; i++) {
		rep = tl_recv_id(p, i, 15000);
		TL_ASSERT(tl_ok(rep), "pipelined ACQUIRE n id %d: %s", i,
		    tl_dump(rep));
		if (i == 1)
			port = (int)tl_int(rep, "port");
		TL_ASSERT(tl_int(rep, "port") == port,
		    "ACQUIRE n id %d on another port: %s", i, tl_dump(rep));
		json_decref(rep);
	}
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_int(st, "counters.starts") == 2 &&
	    tl_int(tl_server(st, "n"), "leases") == CONC,
	    "two starts and 20 leases on n expected: %s", tl_dump(st));
	json_decref(st);
	TL_ASSERT(tl_standins_of(&d, "n") == 1, "%d processes for n",
	    tl_standins_of(&d, "n"));

	for (i = 0; i < CONC; i++)
		tl_close(cs[i]);
	tl_close(p);
	TL_WAIT_UNTIL(ok, tl_server_leases(&d, mon, "m") == 0 &&
	    tl_server_leases(&d, mon, "n") == 0, 2000);
	TL_ASSERT(ok, "closed connections' leases not released");
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 6. failing servers ------------------------------------------- */

#define EXIT_STATUS_RE	"(exit|status|code)[^0-9]{0,16}1([^0-9]|$)"
#define BACKOFF_RE	"back.?off|backing off|retry|try again|next (try|" \
			"attempt|start)|until|in [0-9.]+ ?(ms|s)"

static json_t *
model_entry(json_t *stats, const char *model)
{
	json_t *m;
	size_t i;

	json_array_foreach(tl_get(stats, "models"), i, m)
		if (tl_str(m, "model") && strcmp(tl_str(m, "model"), model) == 0)
			return m;
	return NULL;
}

/*
 * Pass (start_timeout 1s, stop_timeout 2s):
 * crash_start → start_failed naming "cannot load model" and exit status
 * 1, the process reaped; an immediate retry → start_failed at once (under
 * 500 ms) mentioning the backoff, nothing spawned; after 1.1 s a retry
 * spawns and fails again; 1.2 s after that (backoff doubled to 2 s) no
 * spawn yet.  never_ready → start_failed 0.9-2.5 s after the ACQUIRE, its
 * process gone within stop_timeout + 1 s.  ignore_term, leased, EVICT
 * force → answered 1.8-3.5 s later, after the reap (process gone at the
 * answer, not a zombie), freed 8M, its RELEASE answers lease_lost.
 * term_twice, EVICT → answered after the second SIGTERM (0.9-1.95 s, not
 * the SIGKILL at 2 s).  fork_child, EVICT → the grandchild, which ignores
 * SIGTERM, is gone within 1 s of the answer.  crash_later (SIGSEGV
 * 300 ms after ready) while leased → removed from STATS, reaped,
 * counters.crashes and its model's crashes 1, its RELEASE answers
 * lease_lost.
 */
START_TEST(test_failing_servers)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	long long s0, t0, dt, tfail, id, lease;
	const char *msg;
	json_t *st, *rep, *m;
	pid_t pn, ps, pt, pf, gc, kids[8];
	bool ok;

	tl_daemon_init(&d, 6);
	tl_model(&d, "crash", "load_ms=50\nmem=4M\nmode=crash_start\n");
	tl_model(&d, "never", "load_ms=50\nmem=4M\nmode=never_ready\n");
	tl_model(&d, "stubborn", "load_ms=50\nmem=4M\nmode=ignore_term\n");
	tl_model(&d, "twice", "load_ms=50\nmem=4M\nmode=term_twice\n");
	tl_model(&d, "forker", "load_ms=50\nmem=4M\nmode=fork_child\n");
	tl_model(&d, "later", "load_ms=50\nmem=4M\nmode=crash_later\n"
	    "crash_after_ms=300\ncrash_signal=11\n");
	tl_daemon_start(&d, "{\"start_timeout\":\"1s\",\"stop_timeout\":\"2s\"}");
	c = tl_connect(&d);
	mon = tl_connect(&d);

	/* crash at start */
	s0 = tl_counter(&d, mon, "starts");
	rep = tl_acquire(c, "crash", 10000, true);
	tl_expect_error(rep, "start_failed", NULL, "ACQUIRE crash_start");
	msg = tl_str(rep, "message");
	TL_ASSERT(strstr(msg, "cannot load model") != NULL,
	    "start_failed without the server's last stderr line: %s", msg);
	TL_ASSERT(matches(msg, EXIT_STATUS_RE),
	    "start_failed without the exit status 1: %s", msg);
	json_decref(rep);
	tfail = tl_now_ms();
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_int(st, "counters.starts") == s0 + 1 &&
	    tl_server(st, "crash") == NULL &&
	    tl_int(st, "counters.start_failures") == 1,
	    "one failed start, no server left: %s", tl_dump(st));
	m = model_entry(st, "crash");
	TL_ASSERT(m != NULL && tl_int(m, "failures") >= 1 &&
	    tl_str(m, "last_error") != NULL &&
	    strstr(tl_str(m, "last_error"), "cannot load model") != NULL,
	    "STATS models[] should show crash's failure: %s", tl_dump(st));
	json_decref(st);

	t0 = tl_now_ms();
	rep = tl_acquire(c, "crash", 10000, true);
	dt = tl_now_ms() - t0;
	tl_expect_error(rep, "start_failed", NULL, "retry of crash in backoff");
	TL_ASSERT(dt < 500, "retry in backoff took %lld ms", dt);
	TL_ASSERT(matches(tl_str(rep, "message"), BACKOFF_RE),
	    "retry in backoff does not say so: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(tl_counter(&d, mon, "starts") == s0 + 1,
	    "a start was spawned during the backoff");

	tl_sleep_ms(tfail + 1100 - tl_now_ms());
	rep = tl_acquire(c, "crash", 10000, true);
	tl_expect_error(rep, "start_failed", NULL, "retry of crash after 1.1 s");
	TL_ASSERT(strstr(tl_str(rep, "message"), "cannot load model") != NULL,
	    "second failure without the stderr line: %s", tl_dump(rep));
	json_decref(rep);
	tfail = tl_now_ms();
	TL_ASSERT(tl_counter(&d, mon, "starts") == s0 + 2,
	    "no new start 1.1 s after the first failure");
	tl_sleep_ms(tfail + 1200 - tl_now_ms());
	rep = tl_acquire(c, "crash", 10000, true);
	tl_expect_error(rep, "start_failed", NULL, "retry 1.2 s after 2nd fail");
	json_decref(rep);
	TL_ASSERT(tl_counter(&d, mon, "starts") == s0 + 2,
	    "backoff did not double: spawned 1.2 s after the second failure");

	/* never ready */
	id = tl_send_req(c, tl_acquire_req("never", 10000, true));
	t0 = tl_now_ms();
	pn = 0;
	TL_WAIT_UNTIL(ok, (pn = tl_stats_pid(&d, mon, "never")) > 0,
	    900);
	TL_ASSERT(ok, "never_ready's server not in STATS while starting");
	rep = tl_recv_id(c, id, 10000);
	dt = tl_now_ms() - t0;
	tl_expect_error(rep, "start_failed", NULL, "ACQUIRE never_ready");
	json_decref(rep);
	TL_ASSERT(dt >= 900 && dt <= 1000 + LATE_MS,
	    "never_ready failed after %lld ms, start_timeout is 1 s", dt);
	TL_ASSERT(tl_wait_gone(pn, 3000), "never_ready's process %d still"
	    " exists (state %c)", (int)pn, tl_proc_state(pn));
	TL_WAIT_UNTIL(ok, !tl_has_server(&d, mon, "never"), 1000);
	TL_ASSERT(ok, "never_ready still listed after its process is gone");

	/* ignores SIGTERM: only the SIGKILL at stop_timeout ends it */
	lease = tl_acquire_ok(c, "stubborn", true, NULL);
	ps = tl_stats_pid(&d, mon, "stubborn");
	t0 = tl_now_ms();
	rep = tl_evict(c, "stubborn", true, 10000);
	dt = tl_now_ms() - t0;
	TL_ASSERT(tl_ok(rep), "EVICT force stubborn: %s", tl_dump(rep));
	assert_dead(ps, "EVICT of ignore_term answered");
	TL_ASSERT(dt >= 1800 && dt <= 2000 + LATE_MS,
	    "EVICT of ignore_term answered after %lld ms, stop_timeout 2 s",
	    dt);
	TL_ASSERT(tl_int(rep, "freed") == 8 * MIB, "EVICT freed: %s",
	    tl_dump(rep));
	json_decref(rep);
	/* Its server is gone: RELEASE says the lease was lost, and ends it. */
	rep = tl_call(c, json_pack("{s:s, s:I}", "cmd", "RELEASE", "lease",
	    (json_int_t)lease), TL_REPLY_TIMEOUT_MS);
	tl_expect_error(rep, "lease_lost", NULL, "RELEASE after EVICT force");
	json_decref(rep);
	TL_ASSERT(!tl_has_server(&d, mon, "stubborn"), "stubborn still listed");

	/* exits on the second SIGTERM */
	tl_acquire_ok(c, "twice", false, NULL);
	pt = tl_stats_pid(&d, mon, "twice");
	t0 = tl_now_ms();
	rep = tl_evict(c, "twice", false, 10000);
	dt = tl_now_ms() - t0;
	TL_ASSERT(tl_ok(rep), "EVICT twice: %s", tl_dump(rep));
	json_decref(rep);
	assert_dead(pt, "EVICT of term_twice answered");
	TL_ASSERT(dt >= 900 && dt < 1950, "term_twice stopped after %lld ms:"
	    " expected the second SIGTERM at 1 s", dt);

	/* leaves a grandchild in its process group */
	tl_acquire_ok(c, "forker", false, NULL);
	pf = tl_stats_pid(&d, mon, "forker");
	TL_WAIT_UNTIL(ok, tl_children(pf, kids, 8) > 0, 2000);
	TL_ASSERT(ok, "fork_child's grandchild not found");
	gc = kids[0];
	tl_track(gc);
	rep = tl_evict(c, "forker", false, 10000);
	TL_ASSERT(tl_ok(rep), "EVICT forker: %s", tl_dump(rep));
	json_decref(rep);
	assert_dead(pf, "EVICT of fork_child answered");
	TL_WAIT_UNTIL(ok, tl_pid_gone_reap(gc), 1000);
	TL_ASSERT(ok, "grandchild %d of fork_child survived EVICT (state %c)",
	    (int)gc, tl_proc_state(gc));

	/* crashes (SIGSEGV) 300 ms after ready, while leased */
	lease = tl_acquire_ok(c, "later", true, NULL);
	pf = tl_stats_pid(&d, mon, "later");
	TL_WAIT_UNTIL(ok, !tl_has_server(&d, mon, "later"), 3000);
	TL_ASSERT(ok, "crashed server still listed 3 s after ready");
	assert_dead(pf, "crashed server no longer listed");
	st = tl_stats(&d, mon);
	m = model_entry(st, "later");
	TL_ASSERT(tl_int(st, "counters.crashes") == 1 && m != NULL &&
	    tl_int(m, "crashes") == 1, "one crash expected: %s", tl_dump(st));
	json_decref(st);
	/* Its server is gone: RELEASE says the lease was lost, and ends it. */
	rep = tl_call(c, json_pack("{s:s, s:I}", "cmd", "RELEASE", "lease",
	    (json_int_t)lease), TL_REPLY_TIMEOUT_MS);
	tl_expect_error(rep, "lease_lost", NULL, "RELEASE after the crash");
	json_decref(rep);

	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 7. disconnect releases --------------------------------------- */

/*
 * Pass: c1 holds 2 leases on a, c2 holds 1; closing c1 brings a's leases
 * to 1 within 2 s (c2's stays); c2's RELEASE brings it to 0.
 */
START_TEST(test_disconnect_releases)
{
	struct tl_daemon d;
	struct tl_conn *c1, *c2, *mon;
	long long l2;
	bool ok;

	tl_daemon_init(&d, 7);
	tl_model(&d, "a", "load_ms=50\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c1 = tl_connect(&d);
	c2 = tl_connect(&d);
	mon = tl_connect(&d);
	tl_acquire_ok(c1, "a", true, NULL);
	tl_acquire_ok(c1, "a", true, NULL);
	l2 = tl_acquire_ok(c2, "a", true, NULL);
	TL_ASSERT(tl_server_leases(&d, mon, "a") == 3, "3 leases expected");
	tl_close(c1);
	TL_WAIT_UNTIL(ok, tl_server_leases(&d, mon, "a") == 1, 2000);
	TL_ASSERT(ok, "a has %lld leases 2 s after the holder closed",
	    tl_server_leases(&d, mon, "a"));
	tl_release(c2, l2);
	TL_ASSERT(tl_server_leases(&d, mon, "a") == 0,
	    "lease left after RELEASE");
	tl_close(c2);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 8. shutdown -------------------------------------------------- */

/*
 * Pass: with 5 servers running (2 leased, one of those ignoring SIGTERM),
 * SIGTERM makes poold exit 0 within stop_timeout + 2 s; none of the 5
 * processes exists afterwards (not even as a zombie); the socket file is
 * removed.  An ACQUIRE sent during the shutdown gets shutting_down (or
 * the connection is closed).
 */
START_TEST(test_sigterm_stops_everything)
{
	static const char *names[] = { "s1", "s2", "s3", "s4", "stubborn" };
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	pid_t pids[5];
	json_t *st, *rep;
	long long t0, dt;
	int i;
	bool ok;

	tl_daemon_init(&d, 8);
	for (i = 0; i < 4; i++)
		tl_model(&d, names[i], "load_ms=50\nmem=4M\n");
	tl_model(&d, "stubborn", "load_ms=50\nmem=4M\nmode=ignore_term\n");
	tl_daemon_start(&d, "{\"stop_timeout\":\"2s\"}");
	c = tl_connect(&d);
	mon = tl_connect(&d);
	for (i = 0; i < 5; i++)
		tl_acquire_ok(c, names[i], i == 0 || i == 4, NULL);
	st = tl_stats(&d, mon);
	for (i = 0; i < 5; i++) {
		pids[i] = tl_server_pid(st, names[i]);
		TL_ASSERT(pids[i] > 0, "%s not running: %s", names[i],
		    tl_dump(st));
	}
	json_decref(st);
	TL_ASSERT(tl_standins(d.pid, (pid_t[8]){0}, 8) == 5,
	    "5 stand-in children expected");

	t0 = tl_now_ms();
	TL_ASSERT(kill(d.pid, SIGTERM) == 0, "kill: %s", strerror(errno));
	/* Not a sleep: wait until poold says it has begun to shut down. */
	TL_WAIT_UNTIL(ok, tl_log_has(&d, "shutting down"), 3000);
	TL_ASSERT(ok, "poold did not log \"shutting down\" within 3 s of "
	    "SIGTERM");
	/*
	 * stubborn is still stopping (it ignores SIGTERM until the SIGKILL
	 * at stop_timeout), so poold is still there: the ACQUIRE gets
	 * shutting_down, or poold has closed its clients (send or read
	 * fails at EOF).  Never silence.
	 */
	if (tl_sendf(mon, "{\"cmd\":\"ACQUIRE\",\"model\":\"s2\","
	    "\"id\":77}\n") == 0) {
		rep = tl_recv_id(mon, 77, 3000);
		TL_ASSERT(rep != NULL || mon->eof, "ACQUIRE during shutdown: "
		    "no reply within 3 s, and the connection is open");
		if (rep != NULL) {
			tl_expect_error(rep, "shutting_down", NULL,
			    "ACQUIRE during shutdown");
			json_decref(rep);
		}
		fprintf(stderr, "shutdown: an ACQUIRE meanwhile got %s\n",
		    rep != NULL ? "shutting_down" : "EOF");
	}
	TL_ASSERT(tl_daemon_wait(&d, 2000 + 2000),
	    "poold did not exit within stop_timeout + 2 s of SIGTERM");
	dt = tl_now_ms() - t0;
	TL_ASSERT(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 0,
	    "poold's exit status after SIGTERM: 0x%x", d.status);
	for (i = 0; i < 5; i++)
		assert_dead(pids[i], names[i]);
	TL_ASSERT(access(d.sock, F_OK) == -1, "socket not removed");
	fprintf(stderr, "shutdown: 5 servers (one ignoring SIGTERM) stopped"
	    " in %lld ms\n", dt);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 9. malformed lines ------------------------------------------- */

struct bad_line {
	const char	*desc;
	const char	*bytes;
	size_t		 len;		/* 0: strlen */
	const char	*code;
	const char	*id;		/* JSON of the echoed id; NULL: none */
};

#define BL(desc, s, code, id)	{ desc, s, sizeof(s) - 1, code, id }

static const struct bad_line bad_lines[] = {
	BL("not JSON", "not json\n", "bad_request", NULL),
	BL("an array", "[]\n", "bad_request", NULL),
	BL("a number", "42\n", "bad_request", NULL),
	BL("unknown command", "{\"cmd\":\"FROB\",\"id\":5}\n",
	    "unknown_command", "5"),
	BL("no cmd", "{\"model\":\"a\",\"id\":51}\n", "bad_request", "51"),
	BL("missing model", "{\"cmd\":\"ACQUIRE\",\"id\":6}\n",
	    "bad_request", "6"),
	BL("model not a string", "{\"cmd\":\"ACQUIRE\",\"model\":5,\"id\":7}\n",
	    "bad_request", "7"),
	BL("timeout_ms a string", "{\"cmd\":\"ACQUIRE\",\"model\":\"a\","
	    "\"timeout_ms\":\"soon\",\"id\":8}\n", "bad_request", "8"),
	BL("lease a string", "{\"cmd\":\"RELEASE\",\"lease\":\"x\",\"id\":9}\n",
	    "bad_request", "9"),
	BL("missing lease", "{\"cmd\":\"RELEASE\",\"id\":91}\n",
	    "bad_request", "91"),
	BL("cmd a number", "{\"cmd\":42,\"id\":10}\n", "bad_request", "10"),
	BL("hold a string, string id", "{\"cmd\":\"ACQUIRE\",\"model\":\"a\","
	    "\"hold\":\"yes\",\"id\":\"s11\"}\n", "bad_request", "\"s11\""),
	BL("invalid UTF-8", "{\"cmd\":\"PING\",\"id\":\"\xff\xfe\"}\n",
	    "bad_request", NULL),
	BL("NUL in a string", "{\"cmd\":\"PI\0NG\",\"id\":12}\n",
	    "bad_request", NULL),
	BL("NUL after the object", "{\"cmd\":\"PING\",\"id\":13}\0\n",
	    "bad_request", NULL),
	BL("duplicate key", "{\"cmd\":\"PING\",\"cmd\":\"STATS\",\"id\":14}\n",
	    "bad_request", NULL),
};

/*
 * Pass: each malformed line gets one reply with the expected code
 * (bad_request, or unknown_command) and a message, echoing the id when
 * the line had a readable one, on a connection that stays usable (an
 * empty line is ignored, a lower-case "ping" then answers ok).  A
 * 70000-byte line, and 70000 bytes with no newline, each get bad_request
 * and their connection is closed.  Meanwhile another client keeps its
 * lease and gets STATS answered, the server keeps its pid, the set of
 * stand-in children is unchanged, and a new connection still works.
 */
START_TEST(test_malformed_lines)
{
	struct tl_daemon d;
	struct tl_conn *h, *b, *big;
	pid_t before[16], after[16], pa;
	json_t *rep, *id, *st;
	char *line, *pad;
	size_t i, n;
	long long lease;
	int nb, na, k;

	tl_daemon_init(&d, 9);
	tl_model(&d, "a", "load_ms=50\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	h = tl_connect(&d);
	b = tl_connect(&d);
	lease = tl_acquire_ok(h, "a", true, NULL);
	st = tl_stats(&d, h);
	pa = tl_server_pid(st, "a");
	json_decref(st);
	nb = tl_standins(d.pid, before, 16);

	for (i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
		const struct bad_line *bl = &bad_lines[i];

		TL_ASSERT(tl_send(b, bl->bytes, bl->len) == 0,
		    "send %s: %s", bl->desc, strerror(errno));
		rep = tl_recv(b, 5000);
		TL_ASSERT(rep != NULL, "no reply to %s%s", bl->desc,
		    b->eof ? " (connection closed)" : "");
		id = bl->id ? json_loads(bl->id, JSON_DECODE_ANY, NULL) : NULL;
		tl_expect_error(rep, bl->code, id, bl->desc);
		json_decref(id);
		json_decref(rep);
		TL_ASSERT(tl_server_leases(&d, h, "a") == 1,
		    "the other client's lease is gone after %s", bl->desc);
	}
	TL_ASSERT(tl_send(b, "\n\r\n{\"cmd\":\"ping\",\"id\":15}\n", 27) == 0,
	    "send ping");
	rep = tl_recv(b, 5000);
	TL_ASSERT(tl_ok(rep) && tl_int(rep, "id") == 15,
	    "empty lines then lower-case ping: %s", tl_dump(rep));
	json_decref(rep);

	/* A line over the 64 KiB limit: bad_request, then closed. */
	n = 70000;
	pad = malloc(n + 1);
	memset(pad, 'x', n);
	k = snprintf(pad, n, "{\"cmd\":\"PING\",\"id\":18,\"pad\":\"");
	pad[k] = 'x';
	memcpy(pad + n - 3, "\"}\n", 3);
	big = tl_connect(&d);
	tl_send(big, pad, n);	/* may fail once poold has closed */
	rep = tl_recv(big, 5000);
	TL_ASSERT(rep != NULL, "no reply to a 70000-byte line");
	tl_expect_error(rep, "bad_request", NULL, "70000-byte line");
	json_decref(rep);
	line = tl_recv_line(big, 3000, NULL);
	TL_ASSERT(line == NULL && big->eof,
	    "connection not closed after a too-long line: %.100s", line);
	tl_close(big);

	big = tl_connect(&d);
	memset(pad, 'x', n);
	tl_send(big, pad, n);
	rep = tl_recv(big, 5000);
	TL_ASSERT(rep != NULL, "no reply to 70000 bytes without a newline");
	tl_expect_error(rep, "bad_request", NULL, "70000 bytes, no newline");
	json_decref(rep);
	line = tl_recv_line(big, 3000, NULL);
	TL_ASSERT(line == NULL && big->eof,
	    "connection not closed after 70000 bytes without a newline");
	tl_close(big);
	free(pad);

	st = tl_stats(&d, h);
	TL_ASSERT(tl_server_pid(st, "a") == pa &&
	    tl_int(tl_server(st, "a"), "leases") == 1,
	    "a should keep its pid and lease: %s", tl_dump(st));
	json_decref(st);
	na = tl_standins(d.pid, after, 16);
	TL_ASSERT(na == nb && na == 1 && after[0] == before[0],
	    "stand-in children changed: %d before, %d after", nb, na);
	big = tl_connect(&d);
	rep = tl_call(big, json_pack("{s:s}", "cmd", "PING"), 5000);
	TL_ASSERT(tl_ok(rep), "PING on a new connection: %s", tl_dump(rep));
	json_decref(rep);
	tl_close(big);
	tl_release(h, lease);
	tl_close(h);
	tl_close(b);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 10. the catalog ---------------------------------------------- */

/*
 * Pass: "nope" → unknown_model; a file added after start is found
 * without a restart; "../x" (T/x.gguf exists) is refused (unknown_model,
 * or bad_request for the bad name) and nothing is spawned; a split model
 * "split-00001-of-00002.gguf" is model "split" and its second part is
 * not a model; MODELS and PING answer ok.
 */
START_TEST(test_catalog)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	char path[TL_PATH_MAX + 32];
	json_t *rep;
	long long s0;

	tl_daemon_init(&d, 10);
	tl_model(&d, "a", "load_ms=50\nmem=4M\n");
	snprintf(path, sizeof(path), "%s/x.gguf", d.dir);
	tl_write_file(path, "load_ms=50\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	mon = tl_connect(&d);

	rep = tl_acquire(c, "nope", 5000, true);
	tl_expect_error(rep, "unknown_model", NULL, "ACQUIRE nope");
	json_decref(rep);

	tl_model(&d, "late", "load_ms=50\nmem=4M\n");
	tl_acquire_ok(c, "late", false, NULL);

	s0 = tl_counter(&d, mon, "starts");
	rep = tl_acquire(c, "../x", 5000, true);
	TL_ASSERT(!tl_ok(rep) && (strcmp(tl_err(rep), "unknown_model") == 0 ||
	    strcmp(tl_err(rep), "bad_request") == 0),
	    "ACQUIRE ../x: %s", tl_dump(rep));
	fprintf(stderr, "catalog: ACQUIRE ../x → %s\n", tl_err(rep));
	json_decref(rep);
	TL_ASSERT(tl_counter(&d, mon, "starts") == s0, "../x spawned something");

	tl_model(&d, "split-00001-of-00002", "load_ms=50\nmem=4M\n");
	tl_model(&d, "split-00002-of-00002", "load_ms=50\nmem=4M\n");
	tl_acquire_ok(c, "split", false, NULL);
	rep = tl_acquire(c, "split-00002-of-00002", 5000, true);
	tl_expect_error(rep, "unknown_model", NULL, "second part of a split");
	json_decref(rep);

	rep = tl_call(c, json_pack("{s:s}", "cmd", "MODELS"), 5000);
	TL_ASSERT(tl_ok(rep), "MODELS: %s", tl_dump(rep));
	json_decref(rep);
	rep = tl_call(c, json_pack("{s:s}", "cmd", "PING"), 5000);
	TL_ASSERT(tl_ok(rep), "PING: %s", tl_dump(rep));
	json_decref(rep);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 11. pipelining ----------------------------------------------- */

/*
 * Pass: a cold ACQUIRE (load_ms 500) and a STATS written together on one
 * connection: the STATS reply (id 2) comes first, within 400 ms; then the
 * ACQUIRE's (id 1), ok, cold, wait_ms ≥ 400.
 */
START_TEST(test_pipelining)
{
	static const char two[] =
	    "{\"cmd\":\"ACQUIRE\",\"model\":\"slow\",\"id\":1}\n"
	    "{\"cmd\":\"STATS\",\"id\":2}\n";
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep;
	long long t0, dt;

	tl_daemon_init(&d, 11);
	tl_model(&d, "slow", "load_ms=500\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	t0 = tl_now_ms();
	TL_ASSERT(tl_send(c, two, sizeof(two) - 1) == 0, "send");
	rep = tl_recv(c, 5000);
	dt = tl_now_ms() - t0;
	TL_ASSERT(rep != NULL && tl_int(rep, "id") == 2 && tl_ok(rep),
	    "first reply should be STATS's: %s", tl_dump(rep));
	TL_ASSERT(dt < 400, "STATS answered after %lld ms", dt);
	json_decref(rep);
	rep = tl_recv(c, 5000);
	TL_ASSERT(rep != NULL && tl_int(rep, "id") == 1 && tl_ok(rep) &&
	    json_is_true(tl_get(rep, "cold")) && tl_int(rep, "wait_ms") >= 400,
	    "then the cold ACQUIRE: %s", tl_dump(rep));
	json_decref(rep);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 12. EVICT ---------------------------------------------------- */

/*
 * Pass: EVICT of a leased a without force → busy, a keeps running with
 * the same pid; EVICT of b (not running) → not_found; after RELEASE,
 * EVICT a → ok, model a, freed 8M, answered after the reap (process gone
 * at the answer), a no longer listed, admin_stops 1.
 */
START_TEST(test_evict)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	json_t *rep, *st;
	long long lease;
	pid_t pa;

	tl_daemon_init(&d, 12);
	tl_model(&d, "a", "load_ms=50\nmem=4M\n");
	tl_model(&d, "b", "load_ms=50\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	mon = tl_connect(&d);
	lease = tl_acquire_ok(c, "a", true, NULL);
	pa = tl_stats_pid(&d, mon, "a");

	rep = tl_evict(c, "a", false, 5000);
	tl_expect_error(rep, "busy", NULL, "EVICT leased a");
	json_decref(rep);
	TL_ASSERT(tl_stats_pid(&d, mon, "a") == pa &&
	    tl_pid_exists(pa), "a was stopped by a refused EVICT");
	rep = tl_evict(c, "b", false, 5000);
	tl_expect_error(rep, "not_found", NULL, "EVICT b, not running");
	json_decref(rep);

	tl_release(c, lease);
	rep = tl_evict(c, "a", false, 5000);
	TL_ASSERT(tl_ok(rep) && tl_str(rep, "model") &&
	    strcmp(tl_str(rep, "model"), "a") == 0 &&
	    tl_int(rep, "freed") == 8 * MIB, "EVICT a: %s", tl_dump(rep));
	json_decref(rep);
	assert_dead(pa, "EVICT a answered");
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_server(st, "a") == NULL &&
	    tl_int(st, "counters.admin_stops") == 1,
	    "a gone, one admin stop: %s", tl_dump(st));
	json_decref(st);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 13. too large ------------------------------------------------ */

/*
 * Pass: big (memory 64M) with a 16M budget → too_large within 500 ms,
 * nothing started, nobody waiting.
 */
START_TEST(test_too_large)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep, *st;
	long long t0, dt;

	tl_daemon_init(&d, 13);
	tl_model(&d, "big", "load_ms=50\nmem=4M\n");
	tl_daemon_start(&d, "{\"memory_limit\":\"16M\","
	    "\"models\":{\"big\":{\"memory\":\"64M\"}}}");
	c = tl_connect(&d);
	t0 = tl_now_ms();
	rep = tl_acquire(c, "big", 5000, true);
	dt = tl_now_ms() - t0;
	tl_expect_error(rep, "too_large", NULL, "ACQUIRE big");
	json_decref(rep);
	TL_ASSERT(dt < 500, "too_large took %lld ms", dt);
	st = tl_stats(&d, c);
	TL_ASSERT(tl_int(st, "counters.starts") == 0 &&
	    tl_int(st, "waiting") == 0, "nothing should start or wait: %s",
	    tl_dump(st));
	json_decref(st);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- measured memory ---------------------------------------------- */

/*
 * Pass: a server that really takes 40M while its model is configured at
 * 8M is accounted what it measures (mem == rss > estimate) within a few
 * samples; the growth takes the pool over its 64M budget (76M under
 * ASan), so the idle
 * least recently used server is stopped (and only that one: the leased
 * grower stays), and accounted memory is back under the budget once that
 * server is reaped.
 */
START_TEST(test_measured_growth)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *st, *srv;
	long long lease, deadline;
	bool evicted = false;

	tl_daemon_init(&d, 19);
	tl_model(&d, "idle1", "load_ms=50\nmem=4M\n");
	tl_model(&d, "idle2", "load_ms=50\nmem=4M\n");
	tl_model(&d, "grower", "load_ms=50\nmem=40M\n");
	/*
	 * The budget must hold the grower and one idle 16M, not two: the
	 * grower measures ~42M, or ~51M when the stand-ins are built with
	 * ASan, as this binary is (make check SANITIZE=1).
	 */
	tl_daemon_start(&d, tl_proc_maps_has(getpid(), "libasan") ?
	    "{\"memory_limit\":\"76M\",\"per_model\":\"16M\","
	    "\"eviction\":\"lru\","
	    "\"rss_interval\":\"100ms\",\"models\":{\"grower\":"
	    "{\"memory\":\"8M\"}}}" :
	    "{\"memory_limit\":\"64M\",\"per_model\":\"16M\","
	    "\"eviction\":\"lru\","
	    "\"rss_interval\":\"100ms\",\"models\":{\"grower\":"
	    "{\"memory\":\"8M\"}}}");
	c = tl_connect(&d);
	tl_acquire_ok(c, "idle1", false, NULL);
	tl_acquire_ok(c, "idle2", false, NULL);
	lease = tl_acquire_ok(c, "grower", true, NULL);
	deadline = tl_now_ms() + 5000;
	while (!evicted && tl_now_ms() < deadline) {
		tl_sleep_ms(50);
		st = tl_stats(&d, c);
		srv = tl_server(st, "grower");
		TL_ASSERT(srv != NULL, "grower gone: %s", tl_dump(st));
		evicted = tl_int(st, "counters.evictions") >= 1 &&
		    tl_int(srv, "rss") >= 40LL << 20 &&
		    tl_int(srv, "mem") == tl_int(srv, "rss") &&
		    tl_int(st, "memory.used") <= tl_int(st, "memory.budget");
		if (evicted) {
			TL_ASSERT(tl_int(srv, "estimate") == 8LL << 20 &&
			    strcmp(tl_str(srv, "estimate_source"), "config") ==
			    0, "estimate: %s", tl_dump(srv));
			TL_ASSERT(tl_server(st, "idle1") == NULL &&
			    tl_server(st, "idle2") != NULL, "not the LRU one "
			    "was stopped: %s", tl_dump(st));
		}
		json_decref(st);
	}
	TL_ASSERT(evicted, "no eviction after the growth within 5 s; log:\n%s",
	    tl_daemon_log(&d));
	TL_ASSERT(tl_log_has(&d, "evict LRU idle1"), "no log line");
	tl_release(c, lease);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 14. poold killed --------------------------------------------- */

/*
 * Pass: SIGKILL to poold with 2 servers running: both stand-ins are gone
 * within 3 s (PR_SET_PDEATHSIG), no server outlives poold.
 */
START_TEST(test_sigkill_leaves_no_server)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *st;
	pid_t p1, p2;
	bool ok;

	tl_daemon_init(&d, 14);
	tl_model(&d, "k1", "load_ms=50\nmem=4M\n");
	tl_model(&d, "k2", "load_ms=50\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	tl_acquire_ok(c, "k1", false, NULL);
	tl_acquire_ok(c, "k2", true, NULL);
	st = tl_stats(&d, c);
	p1 = tl_server_pid(st, "k1");
	p2 = tl_server_pid(st, "k2");
	json_decref(st);
	TL_ASSERT(kill(d.pid, SIGKILL) == 0, "kill: %s", strerror(errno));
	TL_ASSERT(tl_daemon_wait(&d, 2000), "poold survived SIGKILL");
	TL_WAIT_UNTIL(ok, tl_pid_gone_reap(p1) && tl_pid_gone_reap(p2), 3000);
	TL_ASSERT(ok, "a server outlived poold's SIGKILL: %d %c, %d %c",
	    (int)p1, tl_proc_state(p1), (int)p2, tl_proc_state(p2));
	unlink(d.sock);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 15. bad config ----------------------------------------------- */

/*
 * Pass: an unknown key, then a bad size, each make poold exit with status
 * 1 within 5 s, naming the key on stderr, with no socket created.
 */
START_TEST(test_bad_config)
{
	static const struct { const char *over, *key; } bad[] = {
		{ "{\"frobnicate\":1}", "frobnicate" },
		{ "{\"memory_limit\":\"lots\"}", "memory_limit" },
	};
	struct tl_daemon d;
	size_t i;

	tl_daemon_init(&d, 15);
	tl_model(&d, "a", "load_ms=50\nmem=4M\n");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tl_write_config(&d, bad[i].over);
		truncate(d.log, 0);
		tl_daemon_spawn(&d);
		TL_ASSERT(tl_daemon_wait(&d, 5000), "poold kept running with"
		    " config %s", bad[i].over);
		TL_ASSERT(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 1,
		    "config %s: status 0x%x, expected exit 1", bad[i].over,
		    d.status);
		TL_ASSERT(tl_log_has(&d, bad[i].key), "config %s: the message"
		    " does not name %s", bad[i].over, bad[i].key);
		TL_ASSERT(access(d.sock, F_OK) == -1,
		    "config %s: socket created", bad[i].over);
	}
	tl_daemon_finish(&d);
}
END_TEST

/* --- 16. LRU by size ---------------------------------------------- */

/*
 * Pass (budget 32M; a, b 8M; c, big, big2 16M; huge 24M):
 * a, b, c used in that order, all idle: ACQUIRE big stops a and b (the
 * oldest, just enough) and not c.  Then ACQUIRE a stops only c (the
 * oldest, 16M is enough), big stays.  With big leased and a idle, huge
 * (needs 24M, idle a frees only 8M + 8M free) stops nothing and gets busy
 * after its 500 ms; a keeps its pid.
 */
START_TEST(test_lru_by_size)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	json_t *st, *rep;
	long long lbig;
	pid_t pc, pa;

	tl_daemon_init(&d, 16);
	tl_model(&d, "a", "load_ms=30\nmem=4M\n");
	tl_model(&d, "b", "load_ms=30\nmem=4M\n");
	tl_model(&d, "c", "load_ms=30\nmem=12M\n");
	tl_model(&d, "big", "load_ms=30\nmem=12M\n");
	tl_model(&d, "huge", "load_ms=30\nmem=20M\n");
	tl_daemon_start(&d, "{\"memory_limit\":\"32M\",\"models\":{"
	    "\"c\":{\"memory\":\"16M\"},\"big\":{\"memory\":\"16M\"},"
	    "\"huge\":{\"memory\":\"24M\"}}}");
	c = tl_connect(&d);
	mon = tl_connect(&d);
	tl_release(c, tl_acquire_ok(c, "a", true, NULL));
	tl_release(c, tl_acquire_ok(c, "b", true, NULL));
	tl_release(c, tl_acquire_ok(c, "c", true, NULL));
	pc = tl_stats_pid(&d, mon, "c");

	tl_release(c, tl_acquire_ok(c, "big", true, NULL));
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_server(st, "a") == NULL && tl_server(st, "b") == NULL &&
	    tl_server_pid(st, "c") == pc && tl_server(st, "big") != NULL &&
	    tl_int(st, "counters.evictions") == 2,
	    "big should evict a and b only: %s", tl_dump(st));
	json_decref(st);

	tl_release(c, tl_acquire_ok(c, "a", true, NULL));
	assert_dead(pc, "c evicted for a");
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_server(st, "c") == NULL && tl_server(st, "big") != NULL &&
	    tl_server(st, "a") != NULL && tl_int(st, "counters.evictions") == 3,
	    "a should evict c only: %s", tl_dump(st));
	pa = tl_server_pid(st, "a");
	json_decref(st);

	lbig = tl_acquire_ok(c, "big", true, NULL);
	rep = tl_acquire(c, "huge", 500, true);
	tl_expect_error(rep, "busy", NULL, "huge with big leased");
	json_decref(rep);
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_server_pid(st, "a") == pa &&
	    tl_int(st, "counters.evictions") == 3,
	    "idle a was stopped although that could not make room: %s",
	    tl_dump(st));
	json_decref(st);
	tl_release(c, lbig);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 17. ports ---------------------------------------------------- */

/*
 * Pass (ports [P, P+2]): with P held by a listener of ours, a server gets
 * another port of the range.  While an ignore_term server on P+1 is being
 * stopped (EVICT force, 2 s), a new server does not get P+1; once it is
 * reaped, P+1 is given again.
 */
START_TEST(test_ports)
{
	struct tl_daemon d;
	struct tl_conn *c, *ev, *mon;
	struct sockaddr_in sin;
	char over[256];
	json_t *rep;
	long long id;
	int lfd, pa, ps, pb, pc, one = 1;

	tl_daemon_init(&d, 17);
	tl_model(&d, "a", "load_ms=30\nmem=4M\n");
	tl_model(&d, "stubborn", "load_ms=30\nmem=4M\nmode=ignore_term\n");
	tl_model(&d, "b", "load_ms=30\nmem=4M\n");
	tl_model(&d, "c", "load_ms=30\nmem=4M\n");
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)d.port_min);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	TL_ASSERT(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    listen(lfd, 1) == 0, "cannot hold port %d: %s", d.port_min,
	    strerror(errno));
	snprintf(over, sizeof(over), "{\"ports\":[%d,%d]}", d.port_min,
	    d.port_min + 2);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	ev = tl_connect(&d);
	mon = tl_connect(&d);

	tl_acquire_ok(c, "a", false, &pa);
	TL_ASSERT(pa == d.port_min + 1 || pa == d.port_min + 2,
	    "a got port %d; %d is taken, range %d-%d", pa, d.port_min,
	    d.port_min, d.port_min + 2);
	tl_acquire_ok(c, "stubborn", false, &ps);
	TL_ASSERT(ps != pa && ps > d.port_min && ps <= d.port_min + 2,
	    "stubborn got port %d (a has %d)", ps, pa);
	rep = tl_evict(c, "a", false, 5000);
	TL_ASSERT(tl_ok(rep), "EVICT a: %s", tl_dump(rep));
	json_decref(rep);

	id = tl_send_req(ev, json_pack("{s:s, s:s, s:b}", "cmd", "EVICT",
	    "model", "stubborn", "force", true));
	tl_sleep_ms(200);
	TL_ASSERT(tl_recv_id(ev, id, 0) == NULL, "ignore_term EVICT answered"
	    " in 200 ms");
	tl_acquire_ok(c, "b", false, &pb);
	TL_ASSERT(pb == pa, "b got port %d while stubborn still holds %d",
	    pb, ps);
	rep = tl_recv_id(ev, id, 5000);
	TL_ASSERT(tl_ok(rep), "EVICT stubborn: %s", tl_dump(rep));
	json_decref(rep);
	tl_acquire_ok(c, "c", false, &pc);
	TL_ASSERT(pc == ps, "c got port %d; %d is the only free one", pc, ps);
	close(lfd);
	tl_close(c);
	tl_close(ev);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 18. readiness ------------------------------------------------ */

/*
 * Pass: a server that refuses connections for 300 ms and answers 503
 * until 400 ms is answered only once ready: wait_ms ≥ 350 and GET
 * /health on the port answers 200 right after the reply.
 */
START_TEST(test_readiness)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep;
	int port, st;

	tl_daemon_init(&d, 18);
	tl_model(&d, "slow", "listen_delay_ms=300\nload_ms=400\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	rep = tl_acquire(c, "slow", 10000, false);
	TL_ASSERT(tl_ok(rep) && tl_int(rep, "wait_ms") >= 350,
	    "ACQUIRE slow: %s", tl_dump(rep));
	port = (int)tl_int(rep, "port");
	json_decref(rep);
	st = tl_http_status(port, "/health", 2000);
	TL_ASSERT(st == 200, "GET /health on %d right after ACQUIRE: %d",
	    port, st);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 19. the suite proves what the docs promise (issue 9) ---------- */

/* MODELS that must succeed. */
static json_t *
models_call(struct tl_conn *c)
{
	json_t *rep = tl_call(c, json_pack("{s:s}", "cmd", "MODELS"),
	    TL_REPLY_TIMEOUT_MS);

	TL_ASSERT(tl_ok(rep), "MODELS: %s", tl_dump(rep));
	return rep;
}

/* The MODELS entry of model, NULL if not listed. */
static json_t *
models_entry(json_t *rep, const char *model)
{
	json_t *m;
	size_t i;

	json_array_foreach(tl_get(rep, "models"), i, m)
		if (tl_str(m, "model") != NULL &&
		    strcmp(tl_str(m, "model"), model) == 0)
			return m;
	return NULL;
}

/*
 * Runs $POOLD_BIN with argv (argv[0] is replaced by it), its stdout and
 * stderr into out; returns its wait status, or -1 if it did not exit
 * within timeout_ms (it is killed then).
 */
static int
run_poold(char *argv[], const char *out, long long timeout_ms)
{
	const char *bin = getenv("POOLD_BIN");
	long long dl = tl_now_ms() + timeout_ms;
	int status, fd;
	pid_t pid, p;

	TL_ASSERT(bin != NULL, "POOLD_BIN not set");
	argv[0] = (char *)bin;
	pid = fork();
	TL_ASSERT(pid != -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644)) != -1) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(bin, argv);
		_exit(127);
	}
	tl_track(pid);
	for (;;) {
		if ((p = waitpid(pid, &status, WNOHANG)) == pid)
			return status;
		if (tl_now_ms() >= dl) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		tl_sleep_ms(10);
	}
}

/* The whole of a small file, malloc'd ("" if none). */
static char *
slurp(const char *path)
{
	char *buf = calloc(1, 65536);
	ssize_t n;
	int fd;

	TL_ASSERT(buf != NULL, "out of memory");
	if ((fd = open(path, O_RDONLY)) == -1)
		return buf;
	n = read(fd, buf, 65535);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

/*
 * Learned estimates.  Pass (rss_interval 100ms, per_model 8M; g touches
 * 24M): g's first server is accounted the default 8M (source default);
 * while it runs, its measured memory raises its "mem" over 24M; once it is
 * evicted (the EVICT is answered after the reap), MODELS says g's
 * estimate is learned and is the peak the server was accounted when it
 * was reaped (EVICT's "freed"); the next server of g is
 * accounted that figure from its spawn (STATS estimate and
 * estimate_source learned); and a poold started again on the same state
 * file says so in MODELS before g was asked for (that figure, or the
 * second server's peak if it was higher).
 */
START_TEST(test_learned_estimate)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *st, *rep, *m, *s;
	long long mem = 0, learned, freed;
	bool ok;
	int fd;

	tl_daemon_init(&d, 19);
	tl_model(&d, "g", "load_ms=20\nmem=24M\n");
	tl_daemon_start(&d, "{\"rss_interval\":\"100ms\"}");
	c = tl_connect(&d);

	rep = models_call(c);
	m = models_entry(rep, "g");
	TL_ASSERT(m != NULL && strcmp(tl_str(m, "source"), "default") == 0 &&
	    tl_int(m, "memory") == 8 * MIB, "g before any run: %s",
	    tl_dump(rep));
	json_decref(rep);
	tl_acquire_ok(c, "g", false, NULL);
	st = tl_stats(&d, c);
	s = tl_server(st, "g");
	TL_ASSERT(s != NULL && tl_int(s, "estimate") == 8 * MIB &&
	    strcmp(tl_str(s, "estimate_source"), "default") == 0,
	    "g's first server: %s", tl_dump(st));
	json_decref(st);
	TL_WAIT_UNTIL(ok, (st = tl_stats(&d, c)) != NULL &&
	    (mem = tl_int(tl_server(st, "g"), "mem"),
	    json_decref(st), mem >= 24 * MIB), 10000);
	TL_ASSERT(ok, "g's measured memory never raised its mem over 24M"
	    " (last %lld)", mem);
	rep = tl_evict(c, "g", false, 10000);
	TL_ASSERT(tl_ok(rep), "EVICT g: %s", tl_dump(rep));
	freed = tl_int(rep, "freed");	/* its mem when it was reaped */
	json_decref(rep);
	TL_ASSERT(freed >= mem, "EVICT freed %lld, less than g's mem %lld",
	    freed, mem);
	rep = models_call(c);
	m = models_entry(rep, "g");
	TL_ASSERT(m != NULL && strcmp(tl_str(m, "source"), "learned") == 0,
	    "g's estimate is not learned after its server was reaped: %s",
	    tl_dump(rep));
	learned = tl_int(m, "memory");
	TL_ASSERT(learned == freed, "learned %lld, but the server was "
	    "accounted %lld when it was reaped", learned, freed);
	json_decref(rep);

	tl_acquire_ok(c, "g", false, NULL);
	st = tl_stats(&d, c);
	s = tl_server(st, "g");
	TL_ASSERT(s != NULL && tl_int(s, "estimate") == learned &&
	    strcmp(tl_str(s, "estimate_source"), "learned") == 0,
	    "g's second server is not accounted the learned %lld: %s",
	    learned, tl_dump(st));
	json_decref(st);
	fprintf(stderr, "learned: g (mem=24M) learned %.1f MiB\n",
	    (double)learned / MIB);

	/* Kept in the state file: a new poold knows it. */
	tl_close(c);
	TL_ASSERT(kill(d.pid, SIGTERM) == 0, "kill: %s", strerror(errno));
	TL_ASSERT(tl_daemon_wait(&d, d.stop_timeout_ms + 2000),
	    "poold did not exit after SIGTERM");
	tl_daemon_spawn(&d);
	TL_WAIT_UNTIL(ok, (fd = tl_connect_fd(d.sock)) != -1, 5000);
	TL_ASSERT(ok, "the second poold does not accept");
	close(fd);
	c = tl_connect(&d);
	rep = models_call(c);
	m = models_entry(rep, "g");
	/* The second server's peak, learned at shutdown, may be higher. */
	TL_ASSERT(m != NULL && strcmp(tl_str(m, "source"), "learned") == 0 &&
	    tl_int(m, "memory") >= learned, "after a restart, g's learned "
	    "%lld is lost: %s", learned, tl_dump(rep));
	json_decref(rep);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Freed only at reap, by LRU.  Pass (budget 16M: two 8M servers): slow
 * (SIGTERM makes it exit 1.5 s later) and a run idle, slow the older.
 * ACQUIRE b stops slow; until slow's process is gone (reaped, not even a
 * zombie), every STATS sample lists slow as stopping with its 8M, used
 * is 16M, b has no server and no process, also right after a is
 * acquired and released (every 5th sample: a RELEASE makes the pool try
 * b again);
 * b's ACQUIRE is answered only after slow's process is gone, at least
 * 1 s after it was sent.
 */
START_TEST(test_freed_at_reap)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	json_t *st, *rep, *s;
	long long id, t0, wait, lease;
	pid_t ps;
	int samples = 0;

	tl_daemon_init(&d, 20);
	tl_model(&d, "slow", "load_ms=20\nmem=4M\nmode=slow_exit\n"
	    "exit_delay_ms=1500\n");
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, "{\"memory_limit\":\"16M\",\"stop_timeout\":\"5s\"}");
	c = tl_connect(&d);
	mon = tl_connect(&d);
	tl_release(c, tl_acquire_ok(c, "slow", true, NULL));
	tl_release(c, tl_acquire_ok(c, "a", true, NULL));
	ps = tl_stats_pid(&d, mon, "slow");
	TL_ASSERT(ps > 0, "slow not running");

	t0 = tl_now_ms();
	id = tl_send_req(c, tl_acquire_req("b", 20000, true));
	while ((rep = tl_recv_id(c, id, 0)) == NULL) {
		st = tl_stats(&d, mon);
		if (tl_pid_exists(ps)) {
			s = tl_server(st, "slow");
			TL_ASSERT(tl_server(st, "b") == NULL &&
			    tl_standins_of(&d, "b") == 0, "b started while slow "
			    "(pid %d) was not reaped yet: %s", (int)ps,
			    tl_dump(st));
			if (s != NULL && strcmp(tl_str(s, "state"),
			    "stopping") == 0) {
				TL_ASSERT(tl_int(s, "mem") == 8 * MIB &&
				    tl_int(st, "memory.used") == 16 * MIB,
				    "a stopping server's memory is not "
				    "accounted until its reap: %s", tl_dump(st));
				/* A RELEASE makes the pool try b again. */
				if (samples++ % 5 == 0)
					tl_release(mon, tl_acquire_ok(mon, "a",
					    true, NULL));
			}
		}
		json_decref(st);
		TL_ASSERT(tl_now_ms() - t0 < 20000, "no reply to ACQUIRE b");
		tl_sleep_ms(20);
	}
	wait = tl_now_ms() - t0;
	assert_dead(ps, "slow evicted, ACQUIRE b answered");
	TL_ASSERT(tl_ok(rep), "ACQUIRE b: %s", tl_dump(rep));
	lease = tl_int(rep, "lease");
	json_decref(rep);
	TL_ASSERT(samples >= 5, "slow was seen stopping in only %d samples "
	    "during its 1.5 s exit", samples);
	TL_ASSERT(wait >= 1000, "b answered %lld ms after its ACQUIRE: "
	    "before slow (1.5 s to exit) could be reaped", wait);
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_server(st, "slow") == NULL && tl_server(st, "a") &&
	    tl_server(st, "b") && tl_int(st, "counters.evictions") == 1,
	    "after b: %s", tl_dump(st));
	json_decref(st);
	fprintf(stderr, "freed_at_reap: b waited %lld ms for slow's reap (%d"
	    " samples of slow stopping)\n", wait, samples);
	tl_release(c, lease);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * The socket's lock.  Pass: a second poold on the same socket exits 1 at
 * once with "another poold (pid P) is serving SOCKET", P the first's pid;
 * the first keeps its socket and answers on a new connection, with the
 * same pid in STATS and its server still running.
 */
START_TEST(test_socket_lock)
{
	struct tl_daemon d;
	struct tl_conn *c, *c2;
	char out[TL_PATH_MAX + 16], want[TL_PATH_MAX * 2], *text;
	char *argv[] = { NULL, "-f", d.config, NULL };
	pid_t pa;
	int status;

	tl_daemon_init(&d, 21);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	tl_acquire_ok(c, "a", true, NULL);
	pa = tl_stats_pid(&d, c, "a");
	snprintf(out, sizeof(out), "%s/second.out", d.dir);
	status = run_poold(argv, out, 5000);
	text = slurp(out);
	TL_ASSERT(status != -1, "a second poold on the same socket kept "
	    "running: %s", text);
	TL_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1, "the second"
	    " poold: status 0x%x, expected exit 1: %s", status, text);
	snprintf(want, sizeof(want), "another poold (pid %d) is serving %s",
	    (int)d.pid, d.sock);
	TL_ASSERT(strstr(text, want) != NULL, "the second poold does not say"
	    " '%s': %s", want, text);
	free(text);
	c2 = tl_connect(&d);
	TL_ASSERT(tl_stats_int(&d, c2, "pid") == d.pid, "the socket is not "
	    "served by the first poold (pid %d) any more", (int)d.pid);
	TL_ASSERT(tl_stats_pid(&d, c2, "a") == pa && tl_pid_exists(pa),
	    "the first poold's server changed");
	tl_close(c2);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Unsafe socket folders.  Pass: for a socket in each of: a folder every
 * user may write in (mode 1777), one its group may write in (0770), one
 * owned by another user (uid 65534), a symbolic link owned by uid 65534
 * to a good folder, and a regular file in place of the folder, poold
 * exits 1 within 5 s, its message names the folder and says why (and
 * what to do), no socket is made and the folder is not changed.  The
 * same config with a safe folder (0755, ours) serves.
 */
START_TEST(test_socket_folder_refused)
{
	static const struct {
		const char	*name, *why;
		mode_t		 mode;
		int		 kind;		/* 0 dir, 1 symlink, 2 file */
		uid_t		 owner;		/* (uid_t)-1: ours */
	} cases[] = {
		{ "world", "shared by every user", 01777, 0, (uid_t)-1 },
		{ "group", "chmod go-w", 0770, 0, (uid_t)-1 },
		{ "other", "belongs to uid 65534", 0755, 0, 65534 },
		{ "link", "symbolic link", 0755, 1, 65534 },
		{ "file", "not a", 0644, 2, (uid_t)-1 },
	};
	struct tl_daemon d;
	char dir[TL_PATH_MAX + 32], sock[TL_PATH_MAX + 64];
	char over[TL_PATH_MAX * 2], good[TL_PATH_MAX + 32], *log;
	struct stat sb;
	size_t i;
	int fd;
	bool ok;

	tl_daemon_init(&d, 22);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	snprintf(good, sizeof(good), "%s/good", d.dir);
	TL_ASSERT(mkdir(good, 0755) == 0, "mkdir %s: %s", good,
	    strerror(errno));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].owner != (uid_t)-1 && geteuid() != 0) {
			tl_skip("socket_folder", "%s: needs root to give a "
			    "folder to another user", cases[i].name);
			continue;
		}
		snprintf(dir, sizeof(dir), "%s/%s", d.dir, cases[i].name);
		if (cases[i].kind == 0) {
			TL_ASSERT(mkdir(dir, 0700) == 0 &&
			    chmod(dir, cases[i].mode) == 0, "mkdir %s: %s",
			    dir, strerror(errno));
			if (cases[i].owner != (uid_t)-1)
				TL_ASSERT(chown(dir, cases[i].owner,
				    cases[i].owner) == 0, "chown: %s",
				    strerror(errno));
		} else if (cases[i].kind == 1) {
			TL_ASSERT(symlink(good, dir) == 0 && lchown(dir,
			    cases[i].owner, cases[i].owner) == 0,
			    "symlink %s: %s", dir, strerror(errno));
		} else {
			tl_write_file(dir, "not a folder\n");
		}
		snprintf(sock, sizeof(sock), "%s/poold.sock", dir);
		snprintf(over, sizeof(over), "{\"socket\":\"%s\"}", sock);
		tl_write_config(&d, over);
		truncate(d.log, 0);
		tl_daemon_spawn(&d);
		TL_ASSERT(tl_daemon_wait(&d, 5000), "poold serves on a socket "
		    "in the %s folder %s", cases[i].name, dir);
		log = tl_daemon_log(&d);
		TL_ASSERT(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 1 &&
		    strstr(log, dir) != NULL && strstr(log, cases[i].why) !=
		    NULL, "%s folder: status 0x%x; the message should name %s"
		    " and say '%s': %s", cases[i].name, d.status, dir,
		    cases[i].why, log);
		free(log);
		TL_ASSERT(access(sock, F_OK) == -1 && (cases[i].kind != 1 ||
		    access(good, F_OK) == 0), "%s: socket made", sock);
		if (cases[i].kind == 0) {
			TL_ASSERT(stat(dir, &sb) == 0 && (sb.st_mode & 07777) ==
			    cases[i].mode, "%s: mode changed to %o", dir,
			    (unsigned)(sb.st_mode & 07777));
		}
	}
	/* The same config with a safe folder serves. */
	snprintf(sock, sizeof(sock), "%s/poold.sock", good);
	snprintf(over, sizeof(over), "{\"socket\":\"%s\"}", sock);
	tl_write_config(&d, over);
	tl_daemon_spawn(&d);
	TL_WAIT_UNTIL(ok, (fd = tl_connect_fd(sock)) != -1, 5000);
	TL_ASSERT(ok, "poold does not serve on %s (safe folder)", sock);
	close(fd);
	TL_ASSERT(kill(d.pid, SIGTERM) == 0 && tl_daemon_wait(&d, 5000) &&
	    WIFEXITED(d.status) && WEXITSTATUS(d.status) == 0,
	    "poold on %s did not exit 0 after SIGTERM", sock);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * SIGHUP.  Pass: a model file added to the folder after poold started is
 * found by a rescan within 5 s of a SIGHUP, before any request (the log
 * says "catalog: 2 models in DIR (1 new)"), then listed by MODELS and
 * served by ACQUIRE; poold keeps running.
 */
START_TEST(test_sighup_rescan)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep;
	bool ok;

	tl_daemon_init(&d, 23);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	rep = models_call(c);
	TL_ASSERT(models_entry(rep, "a") != NULL && json_array_size(
	    tl_get(rep, "models")) == 1, "MODELS at start: %s", tl_dump(rep));
	json_decref(rep);
	tl_model(&d, "late", "load_ms=20\nmem=4M\n");
	TL_ASSERT(kill(d.pid, SIGHUP) == 0, "kill: %s", strerror(errno));
	/*
	 * MODELS and ACQUIRE of an unknown name look at the folder too, so
	 * first, before any request: the SIGHUP's own rescan found it.
	 */
	TL_WAIT_UNTIL(ok, tl_log_has(&d, "2 models in"), 5000);
	TL_ASSERT(ok, "no rescan found the new model within 5 s of SIGHUP "
	    "(poold's log has no \"catalog: 2 models in ...\")");
	TL_WAIT_UNTIL(ok, (rep = models_call(c)) != NULL &&
	    (ok = models_entry(rep, "late") != NULL, json_decref(rep), ok),
	    5000);
	TL_ASSERT(ok, "a model added before SIGHUP is not listed 5 s later");
	rep = tl_acquire(c, "late", 10000, false);
	TL_ASSERT(tl_ok(rep), "ACQUIRE of a model added before SIGHUP: %s",
	    tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(tl_daemon_wait(&d, 0) == false, "poold exited on SIGHUP");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* true if MODELS' state is one poold-protocol(7) names. */
static bool
model_state_known(const char *s)
{
	static const char *const states[] = { "starting", "ready",
	    "stopping", "backoff", "failed", "stopped" };
	size_t i;

	for (i = 0; s != NULL && i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(s, states[i]) == 0)
			return true;
	return false;
}

/*
 * MODELS' fields, as poold-protocol(7) lists them.  Pass: the reply has
 * models_dir (our folder) and models, an array of objects each with
 * model (string), path (string: models_dir/model.gguf), memory (integer
 * > 0), source (config, learned, gguf or default), state (one of the six
 * documented) and port (an integer) exactly when a server that is not
 * stopping runs.  Here: r (running: ready, its port, default 8M), c
 * (memory 12M in the config: source config, stopped, no port) and x
 * (its start failed: backoff, no port).
 */
START_TEST(test_models_fields)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep, *m, *v;
	char path[TL_PATH_MAX + 32];
	const char *name;
	size_t i;
	int port;

	tl_daemon_init(&d, 24);
	tl_model(&d, "r", "load_ms=20\nmem=4M\n");
	tl_model(&d, "c", "load_ms=20\nmem=4M\n");
	tl_model(&d, "x", "mode=crash_start\ncrash_after_ms=10\n");
	tl_daemon_start(&d, "{\"models\":{\"c\":{\"memory\":\"12M\"}}}");
	c = tl_connect(&d);
	tl_acquire_ok(c, "r", true, &port);
	rep = tl_acquire(c, "x", 10000, false);
	tl_expect_error(rep, "start_failed", NULL, "ACQUIRE x");
	json_decref(rep);

	rep = models_call(c);
	TL_ASSERT(tl_str(rep, "models_dir") != NULL &&
	    strcmp(tl_str(rep, "models_dir"), d.models_dir) == 0 &&
	    json_is_array(tl_get(rep, "models")) &&
	    json_array_size(tl_get(rep, "models")) == 3,
	    "MODELS: models_dir and 3 models expected: %s", tl_dump(rep));
	json_array_foreach(tl_get(rep, "models"), i, m) {
		name = tl_str(m, "model");
		TL_ASSERT(json_is_object(m) && name != NULL, "entry %zu: %s",
		    i, tl_dump(m));
		snprintf(path, sizeof(path), "%s/%s.gguf", d.models_dir, name);
		TL_ASSERT(tl_str(m, "path") != NULL &&
		    strcmp(tl_str(m, "path"), path) == 0, "%s: path: %s", name,
		    tl_dump(m));
		v = json_object_get(m, "memory");
		TL_ASSERT(json_is_integer(v) && json_integer_value(v) > 0,
		    "%s: memory: %s", name, tl_dump(m));
		TL_ASSERT(tl_str(m, "source") != NULL &&
		    matches(tl_str(m, "source"), "^(config|learned|gguf|"
		    "default)$"), "%s: source: %s", name, tl_dump(m));
		TL_ASSERT(model_state_known(tl_str(m, "state")), "%s: state: %s",
		    name, tl_dump(m));
		v = json_object_get(m, "port");
		TL_ASSERT(v == NULL || json_is_integer(v), "%s: port: %s", name,
		    tl_dump(m));
	}
	m = models_entry(rep, "r");
	TL_ASSERT(m && strcmp(tl_str(m, "state"), "ready") == 0 &&
	    json_is_integer(json_object_get(m, "port")) &&
	    tl_int(m, "port") == port && tl_int(m, "memory") == 8 * MIB &&
	    strcmp(tl_str(m, "source"), "default") == 0, "r (running on %d): "
	    "%s", port, tl_dump(m));
	m = models_entry(rep, "c");
	TL_ASSERT(m && strcmp(tl_str(m, "state"), "stopped") == 0 &&
	    json_object_get(m, "port") == NULL &&
	    tl_int(m, "memory") == 12 * MIB &&
	    strcmp(tl_str(m, "source"), "config") == 0, "c (memory 12M in the"
	    " config, never started): %s", tl_dump(m));
	m = models_entry(rep, "x");
	TL_ASSERT(m && strcmp(tl_str(m, "state"), "backoff") == 0 &&
	    json_object_get(m, "port") == NULL, "x (its start failed): %s",
	    tl_dump(m));
	json_decref(rep);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * The timeout error.  Pass: slow takes 1.5 s to load; an ACQUIRE with
 * timeout_ms 300 gets timeout (not busy) with a message, after at least
 * 300 ms; the start goes on: a later ACQUIRE gets the server that start
 * made (one start in all, the same pid) and counters.timeouts is 1.
 */
START_TEST(test_timeout_then_found)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep, *st;
	long long t0, dt;
	pid_t p1;

	tl_daemon_init(&d, 25);
	tl_model(&d, "slow", "load_ms=1500\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	t0 = tl_now_ms();
	rep = tl_acquire(c, "slow", 300, true);
	dt = tl_now_ms() - t0;
	tl_expect_error(rep, "timeout", NULL, "ACQUIRE slow, 300 ms");
	json_decref(rep);
	TL_ASSERT(dt >= 290, "timeout after %lld ms, before timeout_ms 300",
	    dt);
	st = tl_stats(&d, c);
	p1 = tl_server_pid(st, "slow");
	TL_ASSERT(p1 > 0 && tl_int(st, "counters.timeouts") == 1,
	    "the start does not go on after the timeout: %s", tl_dump(st));
	json_decref(st);
	rep = tl_acquire(c, "slow", 10000, true);
	TL_ASSERT(tl_ok(rep), "the later ACQUIRE: %s", tl_dump(rep));
	json_decref(rep);
	st = tl_stats(&d, c);
	TL_ASSERT(tl_server_pid(st, "slow") == p1 &&
	    tl_int(st, "counters.starts") == 1, "the later ACQUIRE did not "
	    "find the server started for the first (pid %d): %s", (int)p1,
	    tl_dump(st));
	json_decref(st);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * idle_client_timeout, set to 1s here (its default is the edge's to
 * choose).  Pass: a client that sent a PING and then nothing is closed
 * by poold between 0.8 and 5 s later; a client holding a lease, silent as
 * long and 2 s more, is not closed: its PING is answered and its lease
 * still counts.
 */
START_TEST(test_idle_client_timeout)
{
	struct tl_daemon d;
	struct tl_conn *idle, *holder, *mon;
	long long t0, dt;
	char *line;
	json_t *rep;

	tl_daemon_init(&d, 26);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, "{\"idle_client_timeout\":\"1s\"}");
	holder = tl_connect(&d);
	tl_acquire_ok(holder, "a", true, NULL);
	idle = tl_connect(&d);
	t0 = tl_now_ms();
	rep = tl_call(idle, json_pack("{s:s}", "cmd", "PING"), 5000);
	TL_ASSERT(tl_ok(rep), "PING: %s", tl_dump(rep));
	json_decref(rep);
	line = tl_recv_line(idle, 5000, NULL);
	dt = tl_now_ms() - t0;
	TL_ASSERT(line == NULL && idle->eof, "an idle client was not closed "
	    "within 5 s (idle_client_timeout 1s)%s%s", line ? ": got " : "",
	    line ? line : "");
	TL_ASSERT(dt >= 800, "an idle client was closed after %lld ms, "
	    "before idle_client_timeout 1s", dt);
	tl_sleep_ms(2000);
	rep = tl_call(holder, json_pack("{s:s}", "cmd", "PING"), 5000);
	TL_ASSERT(tl_ok(rep) && !holder->eof, "a client holding a lease was "
	    "closed for idleness");
	json_decref(rep);
	mon = tl_connect(&d);
	TL_ASSERT(tl_server_leases(&d, mon, "a") == 1, "the silent holder's "
	    "lease is gone");
	tl_close(mon);
	tl_close(idle);
	tl_close(holder);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * min_available.  Pass (min_available 1 TiB, more than any test machine
 * has free): ACQUIRE a waits and gets busy after its 800 ms, the message
 * saying the system lacks free memory; nothing was started.  Then, on a
 * poold with min_available 0, a starts (the rule, not the model, was
 * the cause).
 */
START_TEST(test_min_available)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep, *st;
	long long t0, dt;

	tl_daemon_init(&d, 27);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, "{\"min_available\":1099511627776}");
	c = tl_connect(&d);
	t0 = tl_now_ms();
	rep = tl_acquire(c, "a", 800, false);
	dt = tl_now_ms() - t0;
	tl_expect_error(rep, "busy", NULL, "ACQUIRE a, min_available 1T");
	TL_ASSERT(matches(tl_str(rep, "message"), "lacks .* free memory"),
	    "busy, but not for the system's memory: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(dt >= 750, "busy after %lld ms: the start did not wait",
	    dt);
	st = tl_stats(&d, c);
	TL_ASSERT(tl_int(st, "counters.starts") == 0 &&
	    json_array_size(tl_get(st, "servers")) == 0 &&
	    tl_standins_of(&d, "a") == 0, "a start that would leave less than "
	    "min_available was made: %s", tl_dump(st));
	json_decref(st);
	tl_close(c);
	TL_ASSERT(kill(d.pid, SIGTERM) == 0 &&
	    tl_daemon_wait(&d, d.stop_timeout_ms + 2000), "poold did not "
	    "exit");
	tl_daemon_start(&d, "{\"min_available\":0}");
	c = tl_connect(&d);
	tl_acquire_ok(c, "a", false, NULL);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- the suite ---------------------------------------------------- */

int
main(void)
{
	Suite *s = suite_create("daemon");

	tl_add(s, "lru", test_lru_evicts_exactly_the_oldest);
	tl_add(s, "idle", test_idle_timeout);
	tl_add(s, "random", test_random_workload);
	tl_add(s, "leases", test_leases_block_eviction);
	tl_add(s, "concurrent", test_one_start_for_concurrent_acquires);
	tl_add(s, "failing", test_failing_servers);
	tl_add(s, "disconnect", test_disconnect_releases);
	tl_add(s, "sigterm", test_sigterm_stops_everything);
	tl_add(s, "malformed", test_malformed_lines);
	tl_add(s, "catalog", test_catalog);
	tl_add(s, "pipelining", test_pipelining);
	tl_add(s, "evict", test_evict);
	tl_add(s, "too_large", test_too_large);
	tl_add(s, "measured_growth", test_measured_growth);
	tl_add(s, "sigkill", test_sigkill_leaves_no_server);
	tl_add(s, "bad_config", test_bad_config);
	tl_add(s, "lru_sizes", test_lru_by_size);
	tl_add(s, "ports", test_ports);
	tl_add(s, "readiness", test_readiness);
	tl_add(s, "learned", test_learned_estimate);
	tl_add(s, "freed_at_reap", test_freed_at_reap);
	tl_add(s, "socket_lock", test_socket_lock);
	tl_add(s, "socket_folder", test_socket_folder_refused);
	tl_add(s, "sighup", test_sighup_rescan);
	tl_add(s, "models_fields", test_models_fields);
	tl_add(s, "timeout", test_timeout_then_found);
	tl_add(s, "idle_client", test_idle_client_timeout);
	tl_add(s, "min_available", test_min_available);
	return tl_run(s, CK_ENV);
}
