/*
 * check_tree.c — whole process trees (issue 9, items 6 and 7).
 *
 * A server is a tree: a wrapper (sh -c), the server, its helpers, a
 * helper that escaped with setsid().  poold contains each tree in a
 * cgroup where it may, else stops process groups and, as a child
 * subreaper, the orphans it adopts.  Each test that depends on the
 * containment runs twice: "cgroup": "auto" (a cgroup per server where
 * the machine lets poold make one) and "cgroup": "off" (process groups,
 * the subreaper and the state file only).
 *
 * And the exec report: a start whose exec hangs must not stop the loop.
 *
 * Environment: POOLD_BIN, FAKELLAMA_BIN, SLOWEXEC_LIB (make check).
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "testlib.h"

#define WRAPPED_SERVERS	4

static const char *const cgroup_modes[] = { "auto", "off" };

/*
 * The config: every server wrapped in sh -c (sh stays the leader; the
 * stand-in is its child: "; exit $?" keeps sh from exec'ing it).
 */
static void
overrides(char *buf, size_t len, const char *cgroup, bool wrapped)
{
	char fbuf[TL_PATH_MAX];
	const char *fake = getenv("FAKELLAMA_BIN");

	if (fake == NULL || *fake == '\0') {
		fake = realpath("build/fakellama", fbuf);
		TL_ASSERT(fake != NULL, "no FAKELLAMA_BIN");
	}
	if (!wrapped) {
		snprintf(buf, len, "{\"cgroup\":\"%s\"}", cgroup);
		return;
	}
	snprintf(buf, len, "{\"cgroup\":\"%s\",\"command\":[\"/bin/sh\",\"-c\","
	    "\"\\\"$0\\\" -m \\\"$1\\\" --host 127.0.0.1 --port \\\"$2\\\"; "
	    "exit $?\",\"%s\",\"{path}\",\"{port}\"]}", cgroup, fake);
}

/*
 * With "cgroup": "auto", did this poold put its servers in cgroups?  If
 * it could not, the case ran the process-group path twice: say so by
 * name, with poold's reason.
 */
static void
cgroups_used(struct tl_daemon *d, const char *test, const char *cgroup)
{
	char *log, *why, *end;

	if (strcmp(cgroup, "auto") != 0 ||
	    tl_log_has(d, "each server in its own cgroup"))
		return;
	log = tl_daemon_log(d);
	why = strstr(log, "no cgroups (");
	end = why != NULL ? strchr(why, '\n') : NULL;
	if (end != NULL)
		*end = '\0';
	printf("SKIP %s (cgroup path): %s\n", test, why != NULL ? why :
	    "no reason logged");
	free(log);
}

static bool
all_gone_reap(const pid_t *pids, int n)
{
	for (int i = 0; i < n; i++)
		if (!tl_pid_gone_reap(pids[i]))
			return false;
	return true;
}

/*
 * The state file lets a successor find the server's tree without its
 * leader: a cgroup, or member recorded with its start time.
 */
static bool
state_covers(const char *path, pid_t leader, pid_t member)
{
	json_t *root = json_load_file(path, 0, NULL), *e, *t;
	bool found = false;
	size_t i;

	if ((e = tl_state_server(root, leader)) != NULL) {
		found = json_is_string(json_object_get(e, "cgroup"));
		json_array_foreach(json_object_get(e, "tree"), i, t)
			if (json_integer_value(json_array_get(t, 0)) == member)
				found = true;
	}
	json_decref(root);
	return found;
}

/* The one child of pid, waited for. */
static pid_t
only_child(pid_t pid, const char *what)
{
	pid_t kids[4];
	bool ok;

	TL_WAIT_UNTIL(ok, tl_children(pid, kids, 4) == 1, 5000);
	TL_ASSERT(ok, "%s: pid %d has %d children, expected 1", what, (int)pid,
	    tl_children(pid, kids, 4));
	tl_track(kids[0]);
	return kids[0];
}

/* ---- (a) kill -9 of poold, servers wrapped in sh -c --------------- */

/*
 * Pass: kill -9 of poold with 4 servers wrapped in sh -c leaves the 4
 * stand-ins running (the parent-death signal took only the sh leaders);
 * the next poold, before its socket accepts, has stopped every one of
 * them; a new ACQUIRE of each model then runs exactly 4 stand-ins.
 */
static void
kill9_wrapped(int n, const char *cgroup)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char over[2 * TL_PATH_MAX], state[TL_PATH_MAX + 16], name[16];
	pid_t sh[WRAPPED_SERVERS], fake[WRAPPED_SERVERS];
	pid_t now[WRAPPED_SERVERS];
	json_t *st;
	bool ok;
	int i;

	tl_daemon_init(&d, n);
	for (i = 0; i < WRAPPED_SERVERS; i++) {
		snprintf(name, sizeof(name), "w%d", i);
		tl_model(&d, name, "load_ms=20\nmem=4M\n");
	}
	snprintf(state, sizeof(state), "%s/state.json", d.dir);
	overrides(over, sizeof(over), cgroup, true);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	for (i = 0; i < WRAPPED_SERVERS; i++) {
		snprintf(name, sizeof(name), "w%d", i);
		tl_acquire_ok(c, name, i % 2 == 0, NULL);
	}
	st = tl_stats(&d, c);
	for (i = 0; i < WRAPPED_SERVERS; i++) {
		snprintf(name, sizeof(name), "w%d", i);
		sh[i] = tl_server_pid(st, name);
		fake[i] = only_child(sh[i], name);
	}
	json_decref(st);
	for (i = 0; i < WRAPPED_SERVERS; i++) {
		TL_WAIT_UNTIL(ok, state_covers(state, sh[i], fake[i]), 5000);
		TL_ASSERT(ok, "the state file does not cover w%d's stand-in %d",
		    i, (int)fake[i]);
	}
	cgroups_used(&d, "kill9_wrapped", cgroup);

	TL_ASSERT(kill(d.pid, SIGKILL) == 0, "kill: %s", strerror(errno));
	TL_ASSERT(tl_daemon_wait(&d, 2000), "poold survived SIGKILL");
	TL_WAIT_UNTIL(ok, all_gone_reap(sh, WRAPPED_SERVERS), 2000);
	TL_ASSERT(ok, "the sh leaders outlived poold");
	for (i = 0; i < WRAPPED_SERVERS; i++)
		TL_ASSERT(tl_pid_exists(fake[i]), "stand-in %d died with poold: "
		    "the test proves nothing", (int)fake[i]);
	tl_close(c);
	unlink(d.sock);

	tl_daemon_start(&d, over);
	TL_WAIT_UNTIL(ok, all_gone_reap(fake, WRAPPED_SERVERS), 1000);
	for (i = 0; i < WRAPPED_SERVERS; i++)
		TL_ASSERT(!tl_pid_exists(fake[i]), "leftover stand-in %d of "
		    "w%d still runs after the next poold serves (state %c)",
		    (int)fake[i], i, tl_proc_state(fake[i]));
	TL_ASSERT(tl_log_has(&d, "leftover"), "no leftover was logged");
	c = tl_connect(&d);
	for (i = 0; i < WRAPPED_SERVERS; i++) {
		snprintf(name, sizeof(name), "w%d", i);
		tl_acquire_ok(c, name, false, NULL);
	}
	st = tl_stats(&d, c);
	for (i = 0; i < WRAPPED_SERVERS; i++) {
		snprintf(name, sizeof(name), "w%d", i);
		now[i] = only_child(tl_server_pid(st, name), name);
		TL_ASSERT(now[i] != fake[i], "w%d: same pid", i);
	}
	json_decref(st);
	tl_close(c);
	tl_daemon_finish(&d);
}

START_TEST(test_kill9_wrapped)
{
	kill9_wrapped(1 + _i, cgroup_modes[_i]);
}
END_TEST

/* ---- (b) SIGTERM of poold leaves no grandchild -------------------- */

/*
 * Pass: with servers (wrapped in sh -c) whose grandchild called setsid()
 * and ignores SIGTERM, poold's SIGTERM ends with poold exiting and none
 * of those grandchildren running 1 s later.
 */
static void
sigterm_escapees(int n, const char *cgroup)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char over[2 * TL_PATH_MAX], name[16];
	pid_t gc[2], fake;
	json_t *st;
	bool ok;
	int i;

	tl_daemon_init(&d, n);
	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "e%d", i);
		tl_model(&d, name, "load_ms=20\nmem=4M\nmode=escape_child\n");
	}
	overrides(over, sizeof(over), cgroup, true);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	st = NULL;
	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "e%d", i);
		tl_acquire_ok(c, name, i == 0, NULL);
		json_decref(st);
		st = tl_stats(&d, c);
		fake = only_child(tl_server_pid(st, name), name);
		gc[i] = only_child(fake, "the stand-in");
		TL_WAIT_UNTIL(ok, getpgid(gc[i]) == gc[i], 5000);
		TL_ASSERT(ok, "grandchild %d did not call setsid()", (int)gc[i]);
	}
	json_decref(st);
	tl_close(c);
	cgroups_used(&d, "sigterm_escapees", cgroup);

	TL_ASSERT(kill(d.pid, SIGTERM) == 0, "kill: %s", strerror(errno));
	TL_ASSERT(tl_daemon_wait(&d, d.stop_timeout_ms + 5000),
	    "poold did not exit after SIGTERM");
	TL_WAIT_UNTIL(ok, all_gone_reap(gc, 2), 1000);
	for (i = 0; i < 2; i++)
		TL_ASSERT(!tl_pid_exists(gc[i]), "grandchild %d (setsid, "
		    "ignores SIGTERM) outlived poold's SIGTERM (state %c)",
		    (int)gc[i], tl_proc_state(gc[i]));
	tl_daemon_finish(&d);
}

START_TEST(test_sigterm_escapees)
{
	sigterm_escapees(3 + _i, cgroup_modes[_i]);
}
END_TEST

/* ---- (c) a grandchild that escaped is stopped with its server ----- */

/*
 * Pass: a server whose grandchild called setsid() (and ignores SIGTERM)
 * is EVICTed: the grandchild is gone within 2 s of the answer, poold is
 * left with no zombie (the orphan it adopted was reaped) and serves on.
 */
static void
escapee_stopped(int n, const char *cgroup)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char over[2 * TL_PATH_MAX];
	pid_t srv, gc;
	json_t *st, *rep;
	bool ok;

	tl_daemon_init(&d, n);
	tl_model(&d, "esc", "load_ms=20\nmem=4M\nmode=escape_child\n");
	overrides(over, sizeof(over), cgroup, false);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	tl_acquire_ok(c, "esc", false, NULL);
	st = tl_stats(&d, c);
	srv = tl_server_pid(st, "esc");
	json_decref(st);
	gc = only_child(srv, "esc");
	TL_WAIT_UNTIL(ok, getpgid(gc) == gc, 5000);
	TL_ASSERT(ok, "grandchild %d did not call setsid()", (int)gc);
	cgroups_used(&d, "escapee_stopped", cgroup);

	rep = tl_evict(c, "esc", false, 10000);
	TL_ASSERT(tl_ok(rep), "EVICT esc: %s", tl_dump(rep));
	json_decref(rep);
	TL_WAIT_UNTIL(ok, tl_pid_gone_reap(gc), 2000);
	TL_ASSERT(ok, "grandchild %d that escaped with setsid() outlived its "
	    "server's stop by 2 s (state %c, parent %d)", (int)gc,
	    tl_proc_state(gc), (int)tl_proc_ppid(gc));
	tl_acquire_ok(c, "esc", false, NULL);
	tl_close(c);
	tl_daemon_finish(&d);
}

START_TEST(test_escapee_stopped)
{
	escapee_stopped(5 + _i, cgroup_modes[_i]);
}
END_TEST

/* ---- (c') an escapee whose parent died while its server runs ----- */

/* poold's stand-in child that is not its server srv, 0 if none yet. */
static pid_t
adopted_standin(struct tl_daemon *d, pid_t srv)
{
	pid_t kids[16];
	int n = tl_standins(d->pid, kids, 16);

	for (int i = 0; i < n; i++)
		if (kids[i] != srv) {
			tl_track(kids[i]);
			return kids[i];
		}
	return 0;
}

/*
 * Pass: a server's helper leaves its group (setsid) and its parent exits
 * (a double fork), so it comes to poold, the subreaper, while the server
 * runs.  With a cgroup it is still the server's: it lives until the
 * server stops, then goes with it.  Without one, poold cannot tell whose
 * it is nor count its memory: it is stopped within a few seconds (the
 * census sweeps orphans every second; no reap is needed to find it) and
 * the server goes on serving.
 */
static void
orphan_while_running(int n, const char *cgroup)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char over[2 * TL_PATH_MAX];
	pid_t srv, gc = 0;
	json_t *st, *rep;
	bool ok;

	tl_daemon_init(&d, n);
	tl_model(&d, "dm", "load_ms=20\nmem=4M\nmode=daemon_child\n");
	overrides(over, sizeof(over), cgroup, false);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	tl_acquire_ok(c, "dm", false, NULL);
	st = tl_stats(&d, c);
	srv = tl_server_pid(st, "dm");
	json_decref(st);
	TL_WAIT_UNTIL(ok, (gc = adopted_standin(&d, srv)) != 0, 5000);
	if (strcmp(cgroup, "off") == 0) {
		if (!ok)	/* swept before we saw it: look at the log */
			TL_ASSERT(tl_log_has(&d, "orphan pid"), "no orphan "
			    "came to poold, none was stopped");
		else {
			TL_WAIT_UNTIL(ok, tl_pid_gone_reap(gc), 5000);
			TL_ASSERT(ok, "orphan %d of a running server still "
			    "runs 5 s after poold adopted it", (int)gc);
		}
	} else {
		TL_ASSERT(ok, "the grandchild never came to poold");
		cgroups_used(&d, "orphan_while_running", cgroup);
		tl_sleep_ms(2500);	/* two census sweeps */
		if (tl_log_has(&d, "each server in its own cgroup")) {
			TL_ASSERT(tl_pid_exists(gc), "orphan %d in its server's "
			    "cgroup was stopped while the server runs",
			    (int)gc);
			rep = tl_evict(c, "dm", false, 10000);
			TL_ASSERT(tl_ok(rep), "EVICT dm: %s", tl_dump(rep));
			json_decref(rep);
			TL_WAIT_UNTIL(ok, tl_pid_gone_reap(gc), 3000);
			TL_ASSERT(ok, "orphan %d outlived its server's stop",
			    (int)gc);
		}
	}
	st = tl_stats(&d, c);
	TL_ASSERT(strcmp(cgroup, "off") != 0 ||
	    tl_server_pid(st, "dm") == srv, "the server was stopped too");
	json_decref(st);
	tl_close(c);
	tl_daemon_finish(&d);
}

START_TEST(test_orphan_while_running)
{
	orphan_while_running(10 + _i, cgroup_modes[_i]);
}
END_TEST

/* ---- (c'') memory counts until the whole tree is gone -------------- */

#define FREEZER_ROOT	"/sys/fs/cgroup/freezer"

static bool
freezer_write(const char *dir, const char *file, const char *what)
{
	char path[TL_PATH_MAX + 64];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((f = fopen(path, "w")) == NULL)
		return false;
	ok = fputs(what, f) >= 0;
	return fclose(f) == 0 && ok;
}

static bool
frozen(const char *dir)
{
	char path[TL_PATH_MAX + 64], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/freezer.state", dir);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	(void)!fgets(buf, sizeof(buf), f);
	fclose(f);
	return strncmp(buf, "FROZEN", 6) == 0;
}

/*
 * Pass, servers wrapped in sh -c, budget 16M (two 8M servers): the
 * stand-in under w's sh is frozen (a v1 freezer cgroup: SIGKILL waits for
 * the thaw, as it would for a process stuck in the kernel or still
 * unmapping its memory).  ACQUIRE b stops w, the LRU one: sh exits and
 * is reaped, but w stays stopping with its 8M counted and b does not
 * start while the frozen stand-in lives (2 s); once it is thawed (and
 * dies of the SIGKILL waiting for it), b starts.
 */
static void
tree_holds_memory(int n, const char *cgroup)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	char wrap[2 * TL_PATH_MAX], over[2 * TL_PATH_MAX + 64];
	char frz[TL_PATH_MAX], num[32];
	pid_t sh, fk;
	json_t *st, *rep, *w;
	long long id;
	bool ok;

	if (access(FREEZER_ROOT "/cgroup.procs", W_OK) == -1) {
		tl_skip("tree_holds_memory", "no writable v1 freezer at "
		    FREEZER_ROOT ": %s", strerror(errno));
		return;
	}
	tl_daemon_init(&d, n);
	tl_model(&d, "w", "load_ms=20\nmem=4M\n");
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	overrides(wrap, sizeof(wrap), cgroup, true);
	snprintf(over, sizeof(over), "{\"memory_limit\":\"16M\","
	    "\"stop_timeout\":\"30s\",%s", wrap + 1);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	mon = tl_connect(&d);
	tl_release(c, tl_acquire_ok(c, "w", true, NULL));
	tl_release(c, tl_acquire_ok(c, "a", true, NULL));
	sh = tl_stats_pid(&d, mon, "w");
	fk = only_child(sh, "w's stand-in under sh");

	snprintf(frz, sizeof(frz), FREEZER_ROOT "/poold-t-%d", (int)getpid());
	TL_ASSERT(mkdir(frz, 0755) == 0 || errno == EEXIST, "mkdir %s: %s",
	    frz, strerror(errno));
	snprintf(num, sizeof(num), "%d", (int)fk);
	TL_ASSERT(freezer_write(frz, "cgroup.procs", num) &&
	    freezer_write(frz, "freezer.state", "FROZEN"), "cannot freeze "
	    "%d in %s: %s", (int)fk, frz, strerror(errno));
	TL_WAIT_UNTIL(ok, frozen(frz), 5000);
	TL_ASSERT(ok, "%s never FROZEN", frz);

	id = tl_send_req(c, tl_acquire_req("b", 20000, true));
	TL_WAIT_UNTIL(ok, !tl_pid_exists(sh), 5000);
	if (ok) {
		tl_sleep_ms(2000);
		st = tl_stats(&d, mon);
		w = tl_server(st, "w");
		ok = tl_pid_exists(fk) && w != NULL &&
		    strcmp(tl_str(w, "state"), "stopping") == 0 &&
		    tl_int(st, "memory.used") == 16 * 1048576LL &&
		    tl_server(st, "b") == NULL;
		snprintf(wrap, sizeof(wrap), "%s", tl_dump(st));
		json_decref(st);
	} else
		snprintf(wrap, sizeof(wrap), "w's sh (%d) did not end on "
		    "SIGTERM", (int)sh);
	/* Thawed before any verdict: a frozen process would outlive us. */
	TL_ASSERT(freezer_write(frz, "freezer.state", "THAWED"), "thaw: %s",
	    strerror(errno));
	TL_ASSERT(ok, "w's leader was reaped while its stand-in %d still "
	    "ran: its memory must stay counted and b must wait: %s", (int)fk,
	    wrap);
	rep = tl_recv_id(c, id, 10000);
	TL_ASSERT(rep != NULL && tl_ok(rep), "ACQUIRE b after w's tree is "
	    "gone: %s", tl_dump(rep));
	json_decref(rep);
	TL_WAIT_UNTIL(ok, tl_pid_gone_reap(fk), 5000);
	TL_ASSERT(ok, "w's stand-in %d still exists", (int)fk);
	for (int i = 0; i < 100 && rmdir(frz) == -1 && errno == EBUSY; i++)
		tl_sleep_ms(10);
	tl_close(mon);
	tl_close(c);
	tl_daemon_finish(&d);
}

START_TEST(test_tree_holds_memory)
{
	tree_holds_memory(12 + _i, cgroup_modes[_i]);
}
END_TEST

/* ---- (d) a recorded group id that was reused ----------------------- */

/*
 * A group whose leader is gone, as a daemon leaves it: the leader calls
 * setsid(), forks n members, exits.  Returns the group id; the members
 * (our children: we are a subreaper) in out.
 */
static pid_t
leaderless_group(pid_t *out, int n)
{
	int p[2];
	pid_t leader;

	TL_ASSERT(pipe(p) == 0, "pipe: %s", strerror(errno));
	if ((leader = fork()) == 0) {
		setsid();
		for (int i = 0; i < n; i++) {
			pid_t m = fork();
			if (m == 0) {
				/* not the test's handlers (its watchdog) */
				signal(SIGTERM, SIG_DFL);
				signal(SIGALRM, SIG_DFL);
				close(p[0]);
				close(p[1]);
				alarm(120);
				for (;;)
					pause();
			}
			(void)!write(p[1], &m, sizeof(m));
		}
		_exit(0);
	}
	TL_ASSERT(leader > 0, "fork: %s", strerror(errno));
	close(p[1]);
	for (int i = 0; i < n; i++) {
		TL_ASSERT(read(p[0], &out[i], sizeof(out[i])) ==
		    (ssize_t)sizeof(out[i]), "member %d", i);
		tl_track(out[i]);
	}
	close(p[0]);
	waitpid(leader, NULL, 0);
	return leader;
}

/*
 * Pass: two groups whose leaders are gone are in the state file.  The
 * first was recorded with start times its processes do not have (its id
 * and its member's pid were reused by unrelated processes): none of its
 * processes is signalled.  The second has a member recorded with its
 * true start time: it and the other member, which was never recorded
 * but is in its group, are stopped before poold serves.
 */
START_TEST(test_reused_group_id)
{
	struct tl_daemon d;
	char state[TL_PATH_MAX + 16], over[TL_PATH_MAX + 64];
	pid_t other[1], ours[2], gother, gours;
	unsigned long long so, s0;
	json_t *root;
	bool ok;

	tl_daemon_init(&d, 7);
	tl_model(&d, "m", "load_ms=20\nmem=4M\n");
	gother = leaderless_group(other, 1);
	gours = leaderless_group(ours, 2);
	so = tl_proc_starttime(other[0]);
	s0 = tl_proc_starttime(ours[0]);
	TL_ASSERT(getpgid(other[0]) == gother && getpgid(ours[1]) == gours,
	    "groups not as made");

	snprintf(state, sizeof(state), "%s/poold.state", d.dir);
	root = json_pack("{s:i, s:[{s:s, s:i, s:I, s:i, s:i, s:[[i,I]]},"
	    " {s:s, s:i, s:I, s:i, s:i, s:[[i,I]]}]}", "version", 1, "servers",
	    "model", "m", "pid", (int)gother, "start", (json_int_t)so - 2,
	    "pgid", (int)gother, "port", d.port_min + 90, "tree",
	    (int)other[0], (json_int_t)so - 1,
	    "model", "m", "pid", (int)gours, "start", (json_int_t)s0 - 1,
	    "pgid", (int)gours, "port", d.port_min + 91, "tree",
	    (int)ours[0], (json_int_t)s0);
	TL_ASSERT(root != NULL && json_dump_file(root, state, 0) == 0,
	    "cannot write %s", state);
	json_decref(root);

	snprintf(over, sizeof(over), "{\"state_file\":\"%s\",\"cgroup\":"
	    "\"off\"}", state);
	tl_daemon_start(&d, over);
	TL_WAIT_UNTIL(ok, all_gone_reap(ours, 2), 1000);
	TL_ASSERT(ok, "our leftover group %d (a member recorded with its "
	    "start time) was not stopped: %d %c, %d %c", (int)gours,
	    (int)ours[0], tl_proc_state(ours[0]), (int)ours[1],
	    tl_proc_state(ours[1]));
	TL_ASSERT(tl_pid_exists(other[0]) && tl_proc_state(other[0]) != 'Z',
	    "poold signalled %d, of group %d whose recorded start times do "
	    "not match (a reused id)", (int)other[0], (int)gother);
	kill(other[0], SIGKILL);
	TL_WAIT_UNTIL(ok, tl_pid_gone_reap(other[0]), 2000);
	TL_ASSERT(ok, "member %d does not die", (int)other[0]);
	tl_daemon_finish(&d);
}
END_TEST

/* ---- 7. an exec that hangs does not stop the loop ------------------ */

static bool
server_state_is(struct tl_daemon *d, struct tl_conn *c, const char *model,
    const char *state)
{
	json_t *st = tl_stats(d, c), *srv = tl_server(st, model);
	bool is = srv != NULL && tl_str(srv, "state") != NULL &&
	    strcmp(tl_str(srv, "state"), state) == 0;

	json_decref(st);
	return is;
}

/*
 * Pass (LD_PRELOAD stand-in for an exec on a hung mount, holding the
 * forked child where exec would hang): while the exec hangs the server
 * is "starting" and poold answers each of 5 PINGs within 2 s; when exec
 * goes on, the waiting ACQUIRE succeeds.  A second start whose exec
 * hangs for good is failed at start_timeout (start_failed), its child
 * killed.
 */
START_TEST(test_slow_exec)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	const char *lib = getenv("SLOWEXEC_LIB");
	char gate[TL_PATH_MAX + 16], asan[1024], comm[64];
	long long id, t0;
	json_t *rep, *st;
	pid_t child;
	bool ok;

	if (lib == NULL || access(lib, R_OK) == -1) {
		printf("SKIP slow_exec: no SLOWEXEC_LIB (Linux, make check)\n");
		TL_ASSERT(getenv("CI") == NULL, "slow_exec cannot run in CI");
		return;
	}
	tl_daemon_init(&d, 9);
	tl_model(&d, "m", "load_ms=20\nmem=4M\n");
	tl_model(&d, "n", "load_ms=20\nmem=4M\n");
	snprintf(gate, sizeof(gate), "%s/gate", d.dir);
	tl_write_file(gate, "closed\n");
	snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0",
	    getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "",
	    getenv("ASAN_OPTIONS") ? ":" : "");
	setenv("ASAN_OPTIONS", asan, 1);
	setenv("LD_PRELOAD", lib, 1);
	setenv("SLOWEXEC_GATE", gate, 1);
	tl_daemon_start(&d, "{\"start_timeout\":\"6s\"}");
	unsetenv("LD_PRELOAD");
	unsetenv("SLOWEXEC_GATE");
	c = tl_connect(&d);
	mon = tl_connect(&d);

	id = tl_send_req(c, tl_acquire_req("m", 30000, false));
	TL_WAIT_UNTIL(ok, server_state_is(&d, mon, "m", "starting"), 5000);
	TL_ASSERT(ok, "no starting server for m");
	st = tl_stats(&d, mon);
	child = tl_server_pid(st, "m");
	json_decref(st);
	for (int i = 0; i < 5; i++) {
		t0 = tl_now_ms();
		rep = tl_call(mon, json_pack("{s:s}", "cmd", "PING"), 2000);
		TL_ASSERT(tl_ok(rep), "PING while an exec hangs: %s",
		    tl_dump(rep));
		json_decref(rep);
		TL_ASSERT(tl_proc_comm(child, comm, sizeof(comm)) == 0 &&
		    strcmp(comm, "fakellama") != 0, "the exec did not hang "
		    "(child %d is %s): the test proves nothing", (int)child,
		    comm);
		printf("slow_exec: PING %d answered in %lld ms while the "
		    "exec hangs\n", i, tl_now_ms() - t0);
		tl_sleep_ms(100);
	}
	TL_ASSERT(server_state_is(&d, mon, "m", "starting"),
	    "m is not starting while its exec hangs");
	unlink(gate);
	rep = tl_recv_id(c, id, 15000);
	TL_ASSERT(tl_ok(rep), "ACQUIRE m once exec went on: %s", tl_dump(rep));
	json_decref(rep);

	tl_write_file(gate, "closed\n");
	t0 = tl_now_ms();
	id = tl_send_req(c, tl_acquire_req("n", 30000, false));
	TL_WAIT_UNTIL(ok, server_state_is(&d, mon, "n", "starting"), 5000);
	st = tl_stats(&d, mon);
	child = tl_server_pid(st, "n");
	json_decref(st);
	tl_track(child);
	rep = tl_recv_id(c, id, 20000);
	tl_expect_error(rep, "start_failed", NULL, "ACQUIRE n, exec hung");
	printf("slow_exec: hung exec failed after %lld ms (start_timeout "
	    "6 s)\n", tl_now_ms() - t0);
	json_decref(rep);
	TL_WAIT_UNTIL(ok, !tl_pid_exists(child), 5000);
	TL_ASSERT(ok, "the child whose exec hung (%d) was not stopped",
	    (int)child);
	unlink(gate);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* ---- the suite ----------------------------------------------------- */

int
main(void)
{
	Suite *s = suite_create("tree");
	TCase *tc = tcase_create("modes");

	tcase_add_loop_test(tc, test_kill9_wrapped, 0, 2);
	tcase_add_loop_test(tc, test_sigterm_escapees, 0, 2);
	tcase_add_loop_test(tc, test_escapee_stopped, 0, 2);
	tcase_add_loop_test(tc, test_orphan_while_running, 0, 2);
	tcase_add_loop_test(tc, test_tree_holds_memory, 0, 2);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	tl_add(s, "reused_group_id", test_reused_group_id);
	tl_add(s, "slow_exec", test_slow_exec);
	return tl_run(s, CK_ENV);
}
