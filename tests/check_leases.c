/*
 * check_leases.c — integration tests: leases belong to their connection,
 * their ids mean nothing to another run of poold, and a lease whose
 * server is gone keeps its port from every other model until it ends.
 *
 * The real poold on its real socket, with stand-in servers
 * (build/fakellama); see testlib.h.  Environment: POOLD_BIN,
 * FAKELLAMA_BIN (make check sets them).
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "poolc.h"
#include "testlib.h"

#define LEASE_MAX	((1LL << 53) - 1)	/* JSON's exact integers */

/* --- helpers ------------------------------------------------------ */

static json_t *
release_req(long long lease)
{
	return json_pack("{s:s, s:I}", "cmd", "RELEASE", "lease",
	    (json_int_t)lease);
}

static json_t *
call_release(struct tl_conn *c, long long lease)
{
	return tl_call(c, release_req(lease), TL_REPLY_TIMEOUT_MS);
}

static json_t *
call_lease(struct tl_conn *c, long long lease)
{
	return tl_call(c, json_pack("{s:s, s:I}", "cmd", "LEASE", "lease",
	    (json_int_t)lease), TL_REPLY_TIMEOUT_MS);
}

static void
expect_not_found(struct tl_conn *c, long long lease, const char *what)
{
	json_t *rep = call_release(c, lease);

	tl_expect_error(rep, "not_found", NULL, what);
	json_decref(rep);
}

/* SIGTERM to poold, and wait for it to exit 0; the folder stays. */
static void
stop_poold(struct tl_daemon *d)
{
	TL_ASSERT(kill(d->pid, SIGTERM) == 0, "kill poold: %s",
	    strerror(errno));
	TL_ASSERT(tl_daemon_wait(d, d->stop_timeout_ms + 5000),
	    "poold did not exit after SIGTERM");
	TL_ASSERT(WIFEXITED(d->status) && WEXITSTATUS(d->status) == 0,
	    "poold exited with status %d", d->status);
}

/* Waits until model has no server in STATS. */
static void
wait_no_server(struct tl_daemon *d, struct tl_conn *mon, const char *model)
{
	bool ok;

	TL_WAIT_UNTIL(ok, tl_stats_pid(d, mon, model) == 0, 10000);
	TL_ASSERT(ok, "%s still has a server 10 s after its process died",
	    model);
}

/* Kills model's server with SIGKILL (a crash) and waits for the reap. */
static void
crash(struct tl_daemon *d, struct tl_conn *mon, const char *model)
{
	pid_t pid = tl_stats_pid(d, mon, model);

	TL_ASSERT(pid > 0, "%s is not running", model);
	TL_ASSERT(kill(pid, SIGKILL) == 0, "kill %d: %s", (int)pid,
	    strerror(errno));
	wait_no_server(d, mon, model);
}

/* ACQUIRE model without a lease: its port, or 0 if it was refused. */
static int
acquire_port(struct tl_conn *c, const char *model)
{
	json_t *rep = tl_acquire(c, model, 2000, false);
	int port = tl_ok(rep) ? (int)tl_int(rep, "port") : 0;

	json_decref(rep);
	return port;
}

/* --- 1. a lease is its connection's ------------------------------ */

/*
 * Pass: A holds a lease on m.  B (same uid, as any local client could
 * be) RELEASEs A's id → not_found, with no word of whose it is; LEASE of
 * it → not_found too; m's server still has its 1 lease in STATS; A's
 * LEASE → ok, ready, its port; poold logs the refusal with B's uid.  A
 * cannot end B's lease either.  A's own RELEASE → ok, then 0 leases.  Fails on the old code: B's RELEASE answered ok.
 */
START_TEST(test_release_foreign_lease)
{
	struct tl_daemon d;
	struct tl_conn *a, *b, *mon;
	long long la, lb;
	json_t *rep;
	char uid[64];
	int port;

	tl_daemon_init(&d, 1);
	tl_model(&d, "m", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	a = tl_connect(&d);
	b = tl_connect(&d);
	mon = tl_connect(&d);

	la = tl_acquire_ok(a, "m", true, &port);
	TL_ASSERT(tl_server_leases(&d, mon, "m") == 1, "m should hold 1 lease");

	rep = call_release(b, la);
	tl_expect_error(rep, "not_found", NULL, "RELEASE of another "
	    "connection's lease");
	TL_ASSERT(strstr(tl_str(rep, "message"), "this connection") != NULL,
	    "not_found should say the lease is not this connection's: %s",
	    tl_dump(rep));
	json_decref(rep);
	rep = call_lease(b, la);
	tl_expect_error(rep, "not_found", NULL, "LEASE of another "
	    "connection's lease");
	json_decref(rep);
	TL_ASSERT(tl_server_leases(&d, mon, "m") == 1,
	    "B's RELEASE ended A's lease");
	rep = call_lease(a, la);
	TL_ASSERT(tl_ok(rep) && tl_int(rep, "lease") == la &&
	    tl_int(rep, "port") == port && tl_str(rep, "state") != NULL &&
	    strcmp(tl_str(rep, "state"), "ready") == 0 &&
	    strcmp(tl_str(rep, "model"), "m") == 0,
	    "LEASE of a live lease: %s", tl_dump(rep));
	json_decref(rep);
	snprintf(uid, sizeof(uid), "(uid %u", (unsigned)getuid());
	TL_ASSERT(tl_log_has(&d, "RELEASE of lease") &&
	    tl_log_has(&d, "not a lease of this connection") &&
	    tl_log_has(&d, uid), "the refusal is not logged with the uid");

	/* B's own lease is B's, and A cannot end it either. */
	lb = tl_acquire_ok(b, "m", true, NULL);
	TL_ASSERT(lb != la, "two leases with the id %lld", la);
	expect_not_found(a, lb, "A's RELEASE of B's lease");
	TL_ASSERT(tl_server_leases(&d, mon, "m") == 2, "m should hold 2");
	tl_release(b, lb);
	tl_release(a, la);
	TL_ASSERT(tl_server_leases(&d, mon, "m") == 0, "leases left");
	expect_not_found(a, la, "second RELEASE");

	tl_close(a);
	tl_close(b);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 2. ids mean nothing to another run -------------------------- */

/*
 * Pass: run 1 gives A the lease L1.  poold is restarted; in run 2, B
 * takes a lease L2 on the same model; L1 != L2 (the runs' ids differ),
 * both within 1 .. 2^53 - 1 and above 2^32 (the random epoch is there).
 * A reconnects and RELEASEs L1 → not_found, and B's lease is still held
 * (STATS).  Fails on the old code: ids counted from 1 in each run, so
 * L1 == L2, and A's RELEASE ended B's lease.
 */
START_TEST(test_restart_ids)
{
	struct tl_daemon d;
	struct tl_conn *a, *b, *mon;
	long long l1, l2, l3;

	tl_daemon_init(&d, 2);
	tl_model(&d, "m", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	a = tl_connect(&d);
	l1 = tl_acquire_ok(a, "m", true, NULL);
	tl_close(a);
	stop_poold(&d);

	tl_daemon_start(&d, NULL);
	b = tl_connect(&d);
	mon = tl_connect(&d);
	l2 = tl_acquire_ok(b, "m", true, NULL);
	TL_ASSERT(l1 != l2, "the first leases of two runs are both %lld", l1);
	TL_ASSERT(l1 > (1LL << 32) && l1 <= LEASE_MAX && l2 > (1LL << 32) &&
	    l2 <= LEASE_MAX, "lease ids %lld, %lld: not an epoch above 2^32 "
	    "within 2^53", l1, l2);

	a = tl_connect(&d);
	expect_not_found(a, l1, "RELEASE of a lease of the last run");
	expect_not_found(a, l2, "RELEASE of a stranger's lease");
	TL_ASSERT(tl_server_leases(&d, mon, "m") == 1,
	    "B's lease did not survive A's RELEASEs");
	/* Ids within a run go on from the epoch. */
	l3 = tl_acquire_ok(a, "m", true, NULL);
	TL_ASSERT(l3 != l2 && l3 >> 32 == l2 >> 32, "ids %lld, %lld of one "
	    "run should share the epoch", l2, l3);
	tl_release(a, l3);
	tl_release(b, l2);

	tl_close(a);
	tl_close(b);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 3. a lost lease keeps its port ------------------------------ */

/*
 * Two ports.  Pass: A holds a lease on a (port P); a is killed
 * (SIGKILL).  b starts on the other port; c cannot start while b runs
 * (the only free port is P, held for A's lease): start_failed, "no free
 * port".  poold logs the lost lease.  LEASE → lease_lost, naming a, P
 * and the signal; the lease is still held.  A's RELEASE → lease_lost
 * with the cause, and the lease ends (a second RELEASE → not_found).
 * Then c starts, on P.  Fails on the old code: c got P while A still
 * held its lease (and RELEASE answered ok).
 */
START_TEST(test_lost_lease_holds_port)
{
	struct tl_daemon d;
	struct tl_conn *a, *c, *mon;
	long long la;
	int pa, pb, pc;
	json_t *rep;
	const char *msg;
	char over[128], want[64];

	tl_daemon_init(&d, 3);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	tl_model(&d, "c", "load_ms=20\nmem=4M\n");
	snprintf(over, sizeof(over), "{\"ports\":[%d,%d]}", d.port_min,
	    d.port_min + 1);
	tl_daemon_start(&d, over);
	a = tl_connect(&d);
	c = tl_connect(&d);
	mon = tl_connect(&d);

	la = tl_acquire_ok(a, "a", true, &pa);

	crash(&d, mon, "a");

	/* b takes the other port; c finds none, P being held for A. */
	tl_acquire_ok(c, "b", false, &pb);
	TL_ASSERT(pb != pa, "b got port %d, held for A's lost lease", pb);
	rep = tl_acquire(c, "c", 1000, false);
	TL_ASSERT(!tl_ok(rep), "c started while the only free port %d is "
	    "held for a lost lease: %s", pa, tl_dump(rep));
	tl_expect_error(rep, "busy", NULL, "c with every port held");
	TL_ASSERT(strstr(tl_str(rep, "message"), "RELEASE") != NULL,
	    "c's busy should say a lost lease holds the port: %s",
	    tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(tl_log_has(&d, "lost a: 1 lease named its server"),
	    "the lost lease is not logged");
	rep = call_lease(a, la);
	tl_expect_error(rep, "lease_lost", NULL, "LEASE after the crash");
	msg = tl_str(rep, "message");
	snprintf(want, sizeof(want), "port %d", pa);
	TL_ASSERT(strstr(msg, "'a'") != NULL && strstr(msg, want) != NULL &&
	    strstr(msg, "signal 9") != NULL, "lease_lost should name the "
	    "model, the port and the cause: %s", msg);
	json_decref(rep);

	rep = call_release(a, la);
	tl_expect_error(rep, "lease_lost", NULL, "RELEASE after the crash");
	msg = tl_str(rep, "message");
	TL_ASSERT(strstr(msg, "signal 9") != NULL &&
	    strstr(msg, "has ended") != NULL,
	    "RELEASE's lease_lost should give the cause and say it ended: %s",
	    msg);
	json_decref(rep);
	expect_not_found(a, la, "RELEASE of a lost lease, again");

	tl_acquire_ok(c, "c", false, &pc);
	TL_ASSERT(pc == pa, "c got port %d; %d is the only free one", pc, pa);

	tl_close(a);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: a lost lease also ends with its connection, and its port comes
 * free then.  A forced EVICT of a leased server makes the lease lost
 * too, and says so ("evict").  Fails on the old code: RELEASE answered
 * ok after the forced EVICT.
 */
START_TEST(test_lost_lease_ends_with_connection)
{
	struct tl_daemon d;
	struct tl_conn *a, *c, *mon;
	long long la;
	int pa, pb;
	json_t *rep;
	char over[128];
	bool ok;

	pb = 0;

	tl_daemon_init(&d, 4);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	snprintf(over, sizeof(over), "{\"ports\":[%d,%d]}", d.port_min,
	    d.port_min);
	tl_daemon_start(&d, over);
	a = tl_connect(&d);
	c = tl_connect(&d);
	mon = tl_connect(&d);

	la = tl_acquire_ok(a, "a", true, &pa);
	rep = tl_evict(mon, "a", true, TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(tl_ok(rep), "EVICT force a: %s", tl_dump(rep));
	json_decref(rep);
	rep = tl_acquire(c, "b", 2000, false);
	TL_ASSERT(!tl_ok(rep), "b started on the port held for A: %s",
	    tl_dump(rep));
	json_decref(rep);
	rep = call_lease(a, la);
	tl_expect_error(rep, "lease_lost", NULL, "LEASE after a forced EVICT");
	TL_ASSERT(strstr(tl_str(rep, "message"), "evict") != NULL,
	    "lease_lost should say the server was evicted: %s", tl_dump(rep));
	json_decref(rep);

	/* poold hears of the close a moment later. */
	tl_close(a);
	TL_WAIT_UNTIL(ok, (pb = acquire_port(c, "b")) > 0, 10000);
	TL_ASSERT(ok, "b never started after A's connection closed");
	TL_ASSERT(pb == pa, "b on port %d, the range is %d", pb, pa);

	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * libpoolc against the real poold: a lease of a crashed server is
 * POOLC_ERR_LEASE_LOST for poolc_lease() (the lease stays) and
 * poolc_release() (it ends), with the cause in poolc_errstr(); then it
 * is gone (POOLC_ERR_SERVER, not_found).  Another connection's
 * poolc_lease()/poolc_release() of a live lease is not_found.
 */
START_TEST(test_libpoolc_lost_lease)
{
	struct tl_daemon d;
	struct tl_conn *mon;
	struct poolc *c, *other;
	struct poolc_server s, got;

	tl_daemon_init(&d, 6);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	mon = tl_connect(&d);
	c = poolc_connect(d.sock, 10000);
	other = poolc_connect(d.sock, 10000);
	TL_ASSERT(c != NULL && other != NULL && poolc_error(c) == POOLC_OK &&
	    poolc_error(other) == POOLC_OK, "poolc_connect failed");

	TL_ASSERT(poolc_acquire(c, "a", NULL, &s) == 0, "acquire: %s",
	    poolc_errstr(c));
	TL_ASSERT(s.lease > (1LL << 32) && s.lease <= LEASE_MAX,
	    "lease id %lld", (long long)s.lease);
	TL_ASSERT(poolc_lease(c, s.lease, &got) == 0 && got.port == s.port &&
	    strcmp(got.model, "a") == 0 && got.lease == s.lease,
	    "poolc_lease of a live lease: %s", poolc_errstr(c));
	TL_ASSERT(poolc_lease(other, s.lease, NULL) == -1 &&
	    poolc_error(other) == POOLC_ERR_SERVER &&
	    strcmp(poolc_server_error(other), "not_found") == 0,
	    "another connection's poolc_lease: %s", poolc_errstr(other));
	TL_ASSERT(poolc_release(other, s.lease) == -1 &&
	    strcmp(poolc_server_error(other), "not_found") == 0,
	    "another connection's poolc_release: %s", poolc_errstr(other));

	crash(&d, mon, "a");
	TL_ASSERT(poolc_lease(c, s.lease, &got) == -1 &&
	    poolc_error(c) == POOLC_ERR_LEASE_LOST &&
	    strstr(poolc_errstr(c), "signal 9") != NULL,
	    "poolc_lease of a lost lease: %d %s", poolc_error(c),
	    poolc_errstr(c));
	TL_ASSERT(poolc_release(c, s.lease) == -1 &&
	    poolc_error(c) == POOLC_ERR_LEASE_LOST &&
	    strstr(poolc_errstr(c), "has ended") != NULL,
	    "poolc_release of a lost lease: %d %s", poolc_error(c),
	    poolc_errstr(c));
	TL_ASSERT(poolc_release(c, s.lease) == -1 &&
	    poolc_error(c) == POOLC_ERR_SERVER &&
	    strcmp(poolc_server_error(c), "not_found") == 0,
	    "second poolc_release: %s", poolc_errstr(c));
	TL_ASSERT(poolc_ping(c, NULL, 0) == 0, "the connection should be "
	    "fine: %s", poolc_errstr(c));

	poolc_free(c);
	poolc_free(other);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 4. least recently freed first ------------------------------- */

/*
 * Three ports.  a, b, c start on P0, P1, P2 (never used ones go first,
 * lowest first).  c is stopped, then a: P2 was freed before P0.  d then
 * starts on P2, e on P0 (least recently freed first).  Fails on the old
 * round robin, which gave d P0 (the cursor had come round to it).
 */
START_TEST(test_ports_least_recently_freed)
{
	struct tl_daemon d;
	struct tl_conn *c;
	int p[5], i;
	const char *names[] = { "a", "b", "c", "d", "e" };
	char over[128];
	json_t *rep;

	tl_daemon_init(&d, 5);
	for (i = 0; i < 5; i++)
		tl_model(&d, names[i], "load_ms=20\nmem=4M\n");
	snprintf(over, sizeof(over), "{\"ports\":[%d,%d]}", d.port_min,
	    d.port_min + 2);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);

	for (i = 0; i < 3; i++) {
		tl_acquire_ok(c, names[i], false, &p[i]);
		TL_ASSERT(p[i] == d.port_min + i, "%s got port %d, expected %d "
		    "(never used ports first, lowest first)", names[i], p[i],
		    d.port_min + i);
	}
	rep = tl_evict(c, "c", false, TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(tl_ok(rep), "EVICT c: %s", tl_dump(rep));
	json_decref(rep);
	rep = tl_evict(c, "a", false, TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(tl_ok(rep), "EVICT a: %s", tl_dump(rep));
	json_decref(rep);
	tl_acquire_ok(c, "d", false, &p[3]);
	TL_ASSERT(p[3] == p[2], "d got port %d; %d (c's) was freed first",
	    p[3], p[2]);
	tl_acquire_ok(c, "e", false, &p[4]);
	TL_ASSERT(p[4] == p[0], "e got port %d; %d (a's) was free", p[4],
	    p[0]);

	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("leases");

	tl_add(s, "foreign", test_release_foreign_lease);
	tl_add(s, "restart", test_restart_ids);
	tl_add(s, "lost_port", test_lost_lease_holds_port);
	tl_add(s, "lost_close", test_lost_lease_ends_with_connection);
	tl_add(s, "libpoolc", test_libpoolc_lost_lease);
	tl_add(s, "lrf", test_ports_least_recently_freed);
	return tl_run(s, CK_NORMAL);
}
