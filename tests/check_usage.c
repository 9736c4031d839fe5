/*
 * check_usage.c — integration tests of priorities, pins, usage across
 * restarts and preloading (issue 12): the real poold on its real socket,
 * with the stand-in build/fakellama.
 *
 * Every model here is accounted per_model (8M: a stand-in's file is no
 * GGUF and rss_interval is 0), so "memory_limit": "16M" is room for two.
 * The tests wait for conditions; bounds on time are loose.
 *
 * Environment: POOLD_BIN, FAKELLAMA_BIN (make check sets them).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "testlib.h"

#define WAIT_MS		10000
#define NOBODY		65534

/* Room for two 8M models. */
#define TWO_SLOTS	"\"memory_limit\": \"16M\""

/* --- helpers --- */

/* model's server entry in a fresh STATS (a new reference), or NULL. */
static json_t *
server_of(struct tl_daemon *d, struct tl_conn *c, const char *model)
{
	json_t *st = tl_stats(d, c), *s = tl_server(st, model);

	if (s != NULL)
		json_incref(s);
	json_decref(st);
	return s;
}

/* Is model's server ready? */
static bool
ready(struct tl_daemon *d, struct tl_conn *c, const char *model)
{
	json_t *s = server_of(d, c, model);
	bool r = s != NULL && tl_str(s, "state") != NULL &&
	    strcmp(tl_str(s, "state"), "ready") == 0;

	json_decref(s);
	return r;
}

static bool
running(struct tl_daemon *d, struct tl_conn *c, const char *model)
{
	json_t *s = server_of(d, c, model);
	bool r = s != NULL && strcmp(tl_str(s, "state"), "stopping") != 0;

	json_decref(s);
	return r;
}

static void
wait_ready(struct tl_daemon *d, struct tl_conn *c, const char *model)
{
	bool ok;

	TL_WAIT_UNTIL(ok, ready(d, c, model), WAIT_MS);
	TL_ASSERT(ok, "%s is not ready within %d ms", model, WAIT_MS);
}

/* Has model a server in any state, stopping included? */
static bool
has_server(struct tl_daemon *d, struct tl_conn *c, const char *model)
{
	json_t *s = server_of(d, c, model);

	json_decref(s);
	return s != NULL;
}

static void
wait_gone(struct tl_daemon *d, struct tl_conn *c, const char *model)
{
	bool ok;

	TL_WAIT_UNTIL(ok, !has_server(d, c, model), WAIT_MS);
	TL_ASSERT(ok, "%s still runs after %d ms", model, WAIT_MS);
}

/* SIGTERM, a clean exit (the state file is written), then a new poold
 * on the same folder and state file. */
static struct tl_conn *
restart(struct tl_daemon *d, struct tl_conn *c, const char *overrides)
{
	tl_close(c);
	TL_ASSERT(kill(d->pid, SIGTERM) == 0, "kill: %s", strerror(errno));
	TL_ASSERT(tl_daemon_wait(d, d->stop_timeout_ms + 3000),
	    "poold did not exit on SIGTERM");
	TL_ASSERT(WIFEXITED(d->status) && WEXITSTATUS(d->status) == 0,
	    "poold ended with status 0x%x", d->status);
	tl_daemon_start(d, overrides);
	return tl_connect(d);
}

static json_t *
pin(struct tl_conn *c, const char *cmd, const char *model)
{
	return tl_call(c, json_pack("{s:s, s:s}", "cmd", cmd, "model", model),
	    WAIT_MS);
}

/* STATS "usage" (a new reference). */
static json_t *
usage_of(struct tl_daemon *d, struct tl_conn *c)
{
	json_t *st = tl_stats(d, c), *u = json_object_get(st, "usage");

	TL_ASSERT(json_is_array(u), "STATS has no usage: %s", tl_dump(st));
	json_incref(u);
	json_decref(st);
	return u;
}

/* How many times to acquire each: a hit or a start, no lease. */
static void
use(struct tl_conn *c, const char *model, int times)
{
	int port;

	for (int i = 0; i < times; i++)
		tl_acquire_ok(c, model, false, &port);
}

/*
 * One request from another user (nobody) on its own connection: the
 * error code it got ("" if ok), or "connect" if it could not connect.
 */
static const char *
as_nobody(struct tl_daemon *d, const char *line)
{
	static char code[64];
	int pfd[2], status;
	ssize_t n;
	pid_t pid;

	TL_ASSERT(pipe(pfd) == 0, "pipe: %s", strerror(errno));
	TL_ASSERT((pid = fork()) != -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		char buf[4096] = "";
		const char *out = "connect";
		json_t *rep;
		size_t len = 0;
		int fd;

		close(pfd[0]);
		if (setgroups(0, NULL) == -1 || setgid(NOBODY) == -1 ||
		    setuid(NOBODY) == -1)
			_exit(2);
		if ((fd = tl_connect_fd(d->sock)) != -1 &&
		    write(fd, line, strlen(line)) == (ssize_t)strlen(line)) {
			while (len < sizeof(buf) - 1 && memchr(buf, '\n',
			    len) == NULL && (n = read(fd, buf + len,
			    sizeof(buf) - 1 - len)) > 0)
				len += (size_t)n;
			buf[len] = '\0';
			out = "bad reply";
			if ((rep = json_loads(buf, JSON_DISABLE_EOF_CHECK,
			    NULL)) != NULL) {
				out = json_is_true(json_object_get(rep, "ok")) ?
				    "" : json_string_value(json_object_get(rep,
				    "error"));
				if (out == NULL)
					out = "bad reply";
			}
		}
		(void)write(pfd[1], out, strlen(out));
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], code, sizeof(code) - 1);
	code[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	TL_ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "the child as nobody failed (0x%x)",
	    status);
	return code;
}

/* --- pinned --- */

/*
 * A pinned model starts at boot, without a request, is never the one
 * evicted, and comes back after a kill -9.
 */
START_TEST(test_pinned_survives)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep, *s;
	long long lease;
	pid_t pid1, pid2;
	long long t0;
	int port;
	bool ok;

	tl_daemon_init(&d, 1);
	tl_model(&d, "p", "load_ms=20\n");
	tl_model(&d, "a", "load_ms=20\n");
	tl_model(&d, "b", "load_ms=20\n");
	tl_model(&d, "c", "load_ms=20\n");
	/* No health checks: nothing but the retry's own timer may start p
	 * again after its crash. */
	tl_daemon_start(&d, "{" TWO_SLOTS ", \"health_interval\": 0, "
	    "\"models\": {\"p\": {\"priority\": \"pinned\"}}}");
	c = tl_connect(&d);
	wait_ready(&d, c, "p");
	s = server_of(&d, c, "p");
	TL_ASSERT(strcmp(tl_str(s, "priority"), "pinned") == 0 &&
	    json_is_true(json_object_get(s, "preloaded")),
	    "p's server: %s", tl_dump(s));
	pid1 = (pid_t)tl_int(s, "pid");
	json_decref(s);

	/* Full: p pinned, a leased; b waits in vain, told why. */
	lease = tl_acquire_ok(c, "a", true, &port);
	rep = tl_acquire(c, "b", 1000, true);
	tl_expect_error(rep, "busy", NULL, "ACQUIRE b with p pinned, a leased");
	TL_ASSERT(strstr(tl_str(rep, "message"), "pinned") != NULL,
	    "busy does not say pinned: %s", tl_dump(rep));
	json_decref(rep);
	/* a idle: b takes its place, never p's. */
	tl_release(c, lease);
	tl_acquire_ok(c, "b", false, &port);
	tl_acquire_ok(c, "c", false, &port);
	TL_ASSERT(tl_stats_pid(&d, c, "p") == pid1, "p was stopped");
	TL_ASSERT(!running(&d, c, "a") && running(&d, c, "c"),
	    "c should have taken a's place");

	/* A crash: p is started again on its own. */
	TL_ASSERT(kill(pid1, SIGKILL) == 0, "kill p: %s", strerror(errno));
	/* A crash 1 s after its ready is a failed start: back-off 1 s,
	 * then the retry's timer (check_pool's test_pinned_restart pins
	 * down that the retry stays owed until made). */
	TL_WAIT_UNTIL(ok, (pid2 = tl_stats_pid(&d, c, "p")) != 0 &&
	    pid2 != pid1 && ready(&d, c, "p"), WAIT_MS);
	TL_ASSERT(ok, "p was not restarted after its crash");

	/* p and c pinned fill the budget: a request for b is told so at
	 * once, not after its 60 s, and an UNPIN makes room again. */
	rep = pin(c, "PIN", "c");
	TL_ASSERT(tl_ok(rep), "PIN c: %s", tl_dump(rep));
	json_decref(rep);
	t0 = tl_now_ms();
	rep = tl_acquire(c, "b", 60000, false);
	tl_expect_error(rep, "busy", NULL, "ACQUIRE b with p and c pinned");
	TL_ASSERT(strstr(tl_str(rep, "message"), "UNPIN one") != NULL &&
	    tl_now_ms() - t0 < 30000, "busy after %lld ms: %s",
	    tl_now_ms() - t0, tl_dump(rep));
	json_decref(rep);
	rep = pin(c, "UNPIN", "c");
	json_decref(rep);
	tl_acquire_ok(c, "b", false, &port);
	TL_ASSERT(tl_stats_pid(&d, c, "p") == pid2, "p was stopped for b");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* Low goes before normal, even when the normal one is older. */
START_TEST(test_low_before_normal)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *m;
	int port;

	tl_daemon_init(&d, 2);
	tl_model(&d, "lo", "load_ms=20\n");
	tl_model(&d, "no", "load_ms=20\n");
	tl_model(&d, "x", "load_ms=20\n");
	tl_daemon_start(&d, "{" TWO_SLOTS ", \"models\": {\"lo\": "
	    "{\"priority\": \"low\"}}}");
	c = tl_connect(&d);
	m = tl_models_entry(c, "lo");
	TL_ASSERT(m != NULL && strcmp(tl_str(m, "priority"), "low") == 0,
	    "MODELS lo: %s", tl_dump(m));
	json_decref(m);
	tl_acquire_ok(c, "no", false, &port);	/* the least recently used */
	tl_acquire_ok(c, "lo", false, &port);
	tl_acquire_ok(c, "x", false, &port);
	TL_ASSERT(running(&d, c, "no"), "the normal model was evicted");
	wait_gone(&d, c, "lo");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * The default eviction order, freq: of two idle servers, the one whose
 * model is asked for less goes, even when it was used last; with
 * "eviction": "lru" the other one goes.
 */
static void
freq_or_lru(const char *eviction, const char *kept, const char *gone)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char conf[256];
	int port, i;

	tl_daemon_init(&d, 4);
	tl_model(&d, "popular", "load_ms=20\n");
	tl_model(&d, "rare", "load_ms=20\n");
	tl_model(&d, "x", "load_ms=20\n");
	snprintf(conf, sizeof(conf), "{" TWO_SLOTS "%s%s%s}",
	    eviction != NULL ? ", \"eviction\": \"" : "",
	    eviction != NULL ? eviction : "", eviction != NULL ? "\"" : "");
	tl_daemon_start(&d, conf);
	c = tl_connect(&d);
	for (i = 0; i < 3; i++)
		tl_acquire_ok(c, "popular", false, &port);
	tl_acquire_ok(c, "rare", false, &port);	/* the most recent */
	tl_acquire_ok(c, "x", false, &port);
	TL_ASSERT(running(&d, c, kept) && running(&d, c, "x"),
	    "%s: %s should have stayed", eviction != NULL ? eviction :
	    "the default", kept);
	wait_gone(&d, c, gone);
	tl_close(c);
	tl_daemon_finish(&d);
}

START_TEST(test_freq_order)
{
	freq_or_lru(NULL, "popular", "rare");
	freq_or_lru("lru", "rare", "popular");
}
END_TEST

/* A low model without an idle_timeout of its own: low_idle_timeout. */
START_TEST(test_low_idle_timeout)
{
	struct tl_daemon d;
	struct tl_conn *c;
	int port;

	tl_daemon_init(&d, 3);
	tl_model(&d, "lo", "load_ms=20\n");
	tl_model(&d, "no", "load_ms=20\n");
	tl_daemon_start(&d, "{\"low_idle_timeout\": \"300ms\", \"models\": "
	    "{\"lo\": {\"priority\": \"low\"}}}");
	c = tl_connect(&d);
	tl_acquire_ok(c, "lo", false, &port);
	tl_acquire_ok(c, "no", false, &port);
	wait_gone(&d, c, "lo");
	TL_ASSERT(running(&d, c, "no"), "no stopped with lo's timeout");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* Pinned models over the budget: no start, and poold -n says so too. */
START_TEST(test_pins_over_budget)
{
	struct tl_daemon d;
	char cmd[2 * TL_PATH_MAX], out[4096] = "", *log;
	const char *poold = getenv("POOLD_BIN");
	size_t n;
	FILE *f;
	int rc;

	tl_daemon_init(&d, 4);
	tl_model(&d, "big1", "load_ms=20\n");
	tl_model(&d, "big2", "load_ms=20\n");
	tl_model(&d, "big3", "load_ms=20\n");
	tl_write_config(&d, "{" TWO_SLOTS ", \"models\": {"
	    "\"big1\": {\"priority\": \"pinned\"}, \"big2\": {\"priority\": "
	    "\"pinned\"}, \"big3\": {\"priority\": \"pinned\"}}}");
	tl_daemon_spawn(&d);
	TL_ASSERT(tl_daemon_wait(&d, WAIT_MS), "poold did not exit");
	TL_ASSERT(WIFEXITED(d.status) && WEXITSTATUS(d.status) != 0,
	    "poold exited 0x%x", d.status);
	log = tl_daemon_log(&d);
	TL_ASSERT(strstr(log, "pinned") != NULL && strstr(log, "big1") &&
	    strstr(log, "big2") && strstr(log, "big3"),
	    "the message does not name them: %s", log);
	free(log);

	snprintf(cmd, sizeof(cmd), "%s -n -f %s 2>&1", poold != NULL ? poold :
	    "build/poold", d.config);
	TL_ASSERT((f = popen(cmd, "r")) != NULL, "popen: %s", strerror(errno));
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	rc = pclose(f);
	TL_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 1 &&
	    strstr(out, "pinned") != NULL && strstr(out, "big3") != NULL,
	    "poold -n: 0x%x: %s", rc, out);
	tl_daemon_finish(&d);
}
END_TEST

/* PIN and UNPIN: admins only, kept across a restart. */
START_TEST(test_pin_unpin)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep, *m;
	const char *over = "{\"socket_mode\": \"0666\"}";
	const char *code;

	tl_daemon_init(&d, 5);
	tl_model(&d, "a", "load_ms=20\n");
	tl_model(&d, "b", "load_ms=20\n");
	tl_daemon_start(&d, over);
	TL_ASSERT(chmod(d.dir, 0711) == 0, "chmod: %s", strerror(errno));
	c = tl_connect(&d);

	code = as_nobody(&d, "{\"cmd\":\"PIN\",\"model\":\"a\",\"id\":1}\n");
	TL_ASSERT(strcmp(code, "forbidden") == 0, "PIN as nobody: '%s'",
	    code);
	code = as_nobody(&d, "{\"cmd\":\"UNPIN\",\"model\":\"a\",\"id\":1}\n");
	TL_ASSERT(strcmp(code, "forbidden") == 0, "UNPIN as nobody: '%s'",
	    code);
	TL_ASSERT(!running(&d, c, "a"), "a forbidden PIN started a");

	rep = pin(c, "PIN", "nosuch");
	tl_expect_error(rep, "unknown_model", NULL, "PIN nosuch");
	json_decref(rep);
	rep = pin(c, "PIN", "a");
	TL_ASSERT(tl_ok(rep) && strcmp(tl_str(rep, "model"), "a") == 0 &&
	    strcmp(tl_str(rep, "priority"), "pinned") == 0, "PIN a: %s",
	    tl_dump(rep));
	json_decref(rep);
	wait_ready(&d, c, "a");

	/* Kept across a restart: started at boot. */
	c = restart(&d, c, over);
	wait_ready(&d, c, "a");
	m = tl_models_entry(c, "a");
	TL_ASSERT(strcmp(tl_str(m, "priority"), "pinned") == 0, "MODELS a: %s",
	    tl_dump(m));
	json_decref(m);

	rep = pin(c, "UNPIN", "a");
	TL_ASSERT(tl_ok(rep) && strcmp(tl_str(rep, "priority"), "normal") ==
	    0, "UNPIN a: %s", tl_dump(rep));
	json_decref(rep);
	c = restart(&d, c, over);
	m = tl_models_entry(c, "a");
	TL_ASSERT(strcmp(tl_str(m, "priority"), "normal") == 0, "MODELS a: %s",
	    tl_dump(m));
	json_decref(m);
	TL_ASSERT(!running(&d, c, "a"), "unpinned a started at boot");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* UNPIN of a model the config pins: normal, until PIN, across restarts. */
START_TEST(test_unpin_config_pinned)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep, *s;
	const char *over = "{\"models\": {\"p\": {\"priority\": \"pinned\"}}}";

	tl_daemon_init(&d, 6);
	tl_model(&d, "p", "load_ms=20\n");
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	wait_ready(&d, c, "p");
	rep = pin(c, "UNPIN", "p");
	TL_ASSERT(tl_ok(rep) && strcmp(tl_str(rep, "priority"), "normal") ==
	    0, "UNPIN p: %s", tl_dump(rep));
	json_decref(rep);
	s = server_of(&d, c, "p");	/* unpinned: it runs on, as normal */
	TL_ASSERT(s != NULL && strcmp(tl_str(s, "priority"), "normal") == 0,
	    "p's server: %s", tl_dump(s));
	json_decref(s);
	c = restart(&d, c, over);
	TL_ASSERT(!running(&d, c, "p"), "UNPIN was forgotten at the restart");
	rep = pin(c, "PIN", "p");
	TL_ASSERT(tl_ok(rep), "PIN p: %s", tl_dump(rep));
	json_decref(rep);
	wait_ready(&d, c, "p");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- usage --- */

START_TEST(test_usage_persisted)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *u, *root;
	char state[TL_PATH_MAX + 16];

	tl_daemon_init(&d, 7);
	tl_model(&d, "a", "load_ms=20\n");
	tl_model(&d, "b", "load_ms=20\n");
	tl_model(&d, "never", "load_ms=20\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	use(c, "b", 1);
	use(c, "a", 3);
	u = usage_of(&d, c);
	TL_ASSERT(json_array_size(u) == 2 &&
	    strcmp(tl_str(json_array_get(u, 0), "model"), "a") == 0 &&
	    tl_int(json_array_get(u, 0), "acquires") == 3 &&
	    tl_int(json_array_get(u, 0), "hits") == 2 &&
	    tl_int(json_array_get(u, 0), "cold_starts") == 1 &&
	    tl_int(json_array_get(u, 0), "loads") == 1 &&
	    tl_int(json_array_get(u, 0), "last_used") > 0 &&
	    strcmp(tl_str(json_array_get(u, 1), "model"), "b") == 0,
	    "usage: %s", tl_dump(u));
	json_decref(u);

	c = restart(&d, c, NULL);
	snprintf(state, sizeof(state), "%s/state.json", d.dir);
	root = json_load_file(state, 0, NULL);
	TL_ASSERT(json_integer_value(json_object_get(json_object_get(
	    json_object_get(root, "usage"), "a"), "acquires")) == 3,
	    "state file: %s", tl_dump(root));
	json_decref(root);
	/* Counting goes on; b overtakes a. */
	use(c, "b", 4);
	use(c, "a", 1);
	u = usage_of(&d, c);
	TL_ASSERT(json_array_size(u) == 2 &&
	    strcmp(tl_str(json_array_get(u, 0), "model"), "b") == 0 &&
	    tl_int(json_array_get(u, 0), "acquires") == 5 &&
	    tl_int(json_array_get(u, 1), "acquires") == 4,
	    "usage after the restart: %s", tl_dump(u));
	json_decref(u);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: a state file edited by hand (or damaged) with counts and times
 * at INT64_MAX, a frequency of 1e299 and a gone model "used" at
 * INT64_MAX: poold starts, a's figures are bounded (counts at most
 * 2^53, freq at most its acquires, last_used not in the future) and
 * counting goes on; under SANITIZE=1 no arithmetic overflows.
 */
START_TEST(test_usage_state_input)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *u, *root, *a;
	char state[TL_PATH_MAX + 16];
	long long before = tl_wall_ms();

	tl_daemon_init(&d, 13);
	tl_model(&d, "a", "load_ms=20\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	use(c, "a", 1);
	tl_close(c);
	TL_ASSERT(kill(d.pid, SIGTERM) == 0, "kill: %s", strerror(errno));
	TL_ASSERT(tl_daemon_wait(&d, d.stop_timeout_ms + 3000), "no exit");
	snprintf(state, sizeof(state), "%s/state.json", d.dir);
	TL_ASSERT((root = json_load_file(state, 0, NULL)) != NULL, "state");
	a = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I}",
	    "acquires", (json_int_t)INT64_MAX, "hits", (json_int_t)INT64_MAX,
	    "loads", (json_int_t)INT64_MAX, "load_ms_total",
	    (json_int_t)INT64_MAX, "leased_ms", (json_int_t)INT64_MAX,
	    "last_used", (json_int_t)INT64_MAX, "freq", 1e299, "freq_at",
	    (json_int_t)INT64_MAX);
	json_object_set_new(json_object_get(root, "usage"), "a", a);
	json_object_set_new(json_object_get(root, "usage"), "gone",
	    json_pack("{s:I, s:I}", "acquires", (json_int_t)5, "last_used",
	    (json_int_t)INT64_MAX));
	TL_ASSERT(json_dump_file(root, state, 0) == 0, "write %s", state);
	json_decref(root);
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	use(c, "a", 1);
	u = usage_of(&d, c);
	a = json_array_get(u, 0);
	TL_ASSERT(a != NULL && strcmp(tl_str(a, "model"), "a") == 0 &&
	    tl_int(a, "acquires") > 0 &&
	    tl_int(a, "acquires") <= (1LL << 53) + 1 &&
	    tl_int(a, "leased_ms") > 0 &&
	    tl_int(a, "leased_ms") <= (1LL << 53) + 60000 &&
	    tl_int(a, "last_used") >= before - 1000 &&
	    tl_int(a, "last_used") <= tl_wall_ms() + 1000 &&
	    json_real_value(tl_get(a, "freq")) <= (double)tl_int(a,
	    "acquires"), "usage from a damaged state file: %s", tl_dump(u));
	json_decref(u);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * A second poold with "preload": 2 starts the two most used of the
 * first, one after the other, and an ACQUIRE of another model meanwhile
 * does not wait for them.
 */
START_TEST(test_preload_after_restart)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *s, *rep;
	long long t0, took;
	const char *over = "{\"memory_limit\": \"32M\", \"preload\": 2}";

	tl_daemon_init(&d, 8);
	tl_model(&d, "a", "load_ms=1500\n");
	tl_model(&d, "b", "load_ms=1500\n");
	tl_model(&d, "c", "load_ms=20\n");
	tl_model(&d, "x", "load_ms=50\n");
	tl_daemon_start(&d, "{\"memory_limit\": \"32M\"}");
	c = tl_connect(&d);
	use(c, "a", 3);
	use(c, "b", 2);
	use(c, "c", 1);

	c = restart(&d, c, over);
	t0 = tl_now_ms();
	rep = tl_acquire(c, "x", WAIT_MS, false);
	took = tl_now_ms() - t0;
	TL_ASSERT(tl_ok(rep), "ACQUIRE x: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(took < 1500 && !ready(&d, c, "b"),
	    "ACQUIRE x waited %lld ms, behind the preloading", took);
	wait_ready(&d, c, "a");
	wait_ready(&d, c, "b");
	s = server_of(&d, c, "a");
	TL_ASSERT(json_is_true(json_object_get(s, "preloaded")),
	    "a: %s", tl_dump(s));
	json_decref(s);
	TL_ASSERT(tl_log_has(&d, "preload: done"), "the preloader goes on");
	TL_ASSERT(!running(&d, c, "c"), "c is the third most used");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* preload_refill: a quiet pool starts what was popular and fits. */
START_TEST(test_refill_when_quiet)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep, *s;
	bool ok;

	tl_daemon_init(&d, 9);
	tl_model(&d, "a", "load_ms=20\n");
	tl_model(&d, "b", "load_ms=20\n");
	tl_model(&d, "unused", "load_ms=20\n");
	/* 2 s: the EVICTs below come well before the pool is quiet. */
	tl_daemon_start(&d, "{\"preload_refill\": \"2s\"}");
	c = tl_connect(&d);
	use(c, "b", 1);
	use(c, "a", 2);
	rep = tl_evict(c, "a", false, WAIT_MS);
	TL_ASSERT(tl_ok(rep), "EVICT a: %s", tl_dump(rep));
	json_decref(rep);
	rep = tl_evict(c, "b", false, WAIT_MS);
	TL_ASSERT(tl_ok(rep), "EVICT b: %s", tl_dump(rep));
	json_decref(rep);
	TL_WAIT_UNTIL(ok, ready(&d, c, "a") && ready(&d, c, "b"), WAIT_MS);
	TL_ASSERT(ok, "refill did not start a and b");
	s = server_of(&d, c, "a");
	TL_ASSERT(json_is_true(json_object_get(s, "preloaded")), "a: %s",
	    tl_dump(s));
	json_decref(s);
	TL_ASSERT(!running(&d, c, "unused"), "refill started an unused model");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* Each new key's bad value is refused, naming the key (poold -n). */
START_TEST(test_config_errors)
{
	static const struct { const char *over, *says; } bad[] = {
		{ "{\"models\": {\"m\": {\"priority\": \"urgent\"}}}",
		    "\"priority\"" },
		{ "{\"preload\": -1}", "\"preload\"" },
		{ "{\"preload\": [\"a\", \"a\"]}", "named twice" },
		{ "{\"preload\": [\"../x\"]}", "\"preload\"" },
		{ "{\"preload_refill\": true}", "\"preload_refill\"" },
		{ "{\"usage_half_life\": 0}", "\"usage_half_life\"" },
		{ "{\"low_idle_timeout\": \"soon\"}", "\"low_idle_timeout\"" },
		/* Their sum wraps to 100M + 2 bytes if it is not saturated. */
		{ "{\"models\": {\"a\": {\"memory\": 9223372036854775807, "
		    "\"priority\": \"pinned\"}, \"b\": {\"memory\": "
		    "9223372036854775807, \"priority\": \"pinned\"}, \"c\": "
		    "{\"memory\": 104857602, \"priority\": \"pinned\"}}}",
		    "the pinned models need" },
	};
	static const char *const good[] = {
		"{\"preload\": 2, \"preload_refill\": false, "
		    "\"low_idle_timeout\": 0, \"usage_half_life\": \"1h\"}",
		"{\"preload\": [\"a\", \"b\"], \"preload_refill\": \"10m\", "
		    "\"models\": {\"a\": {\"priority\": \"high\"}}}",
	};
	struct tl_daemon d;
	char cmd[2 * TL_PATH_MAX], out[4096];
	const char *poold = getenv("POOLD_BIN");
	size_t n;
	FILE *f;
	int rc;

	tl_daemon_init(&d, 10);
	tl_model(&d, "a", "load_ms=20\n");
	tl_model(&d, "b", "load_ms=20\n");
	tl_model(&d, "c", "load_ms=20\n");
	snprintf(cmd, sizeof(cmd), "%s -n -f %s 2>&1", poold != NULL ? poold :
	    "build/poold", d.config);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) +
	    sizeof(good) / sizeof(good[0]); i++) {
		bool ok = i >= sizeof(bad) / sizeof(bad[0]);
		const char *over = ok ? good[i - sizeof(bad) / sizeof(bad[0])] :
		    bad[i].over;

		tl_write_config(&d, over);
		TL_ASSERT((f = popen(cmd, "r")) != NULL, "popen: %s",
		    strerror(errno));
		n = fread(out, 1, sizeof(out) - 1, f);
		out[n] = '\0';
		rc = pclose(f);
		if (ok)
			TL_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 0,
			    "%s: refused: %s", over, out);
		else
			TL_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 1 &&
			    strstr(out, bad[i].says) != NULL,
			    "%s: 0x%x: %s", over, rc, out);
	}
	tl_daemon_finish(&d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("usage");

	tl_add(s, "pinned_survives", test_pinned_survives);
	tl_add(s, "low_before_normal", test_low_before_normal);
	tl_add(s, "low_idle_timeout", test_low_idle_timeout);
	tl_add(s, "freq_order", test_freq_order);
	tl_add(s, "pins_over_budget", test_pins_over_budget);
	tl_add(s, "pin_unpin", test_pin_unpin);
	tl_add(s, "unpin_config_pinned", test_unpin_config_pinned);
	tl_add(s, "usage_persisted", test_usage_persisted);
	tl_add(s, "usage_state_input", test_usage_state_input);
	tl_add(s, "preload_after_restart", test_preload_after_restart);
	tl_add(s, "refill_when_quiet", test_refill_when_quiet);
	tl_add(s, "config_errors", test_config_errors);
	return tl_run(s, CK_ENV);
}
