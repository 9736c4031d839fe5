/*
 * check_clock.c — poold's idle-client timeout runs on the monotonic
 * clock, so a wall-clock jump neither stretches nor cuts it (issue 9,
 * item 4d: a clock set back a day kept an idle client a day longer,
 * because ev_now() follows the wall clock while libev's timers do not).
 *
 * poold runs under libfaketime with only the wall clock faked
 * (FAKETIME_DONT_FAKE_MONOTONIC=1); the offset lives in a file that the
 * test rewrites while poold runs (FAKETIME_NO_CACHE=1).  Each test first
 * proves the jump reached poold: its log lines carry the wall clock.
 * Without libfaketime the tests are skipped (tl_skip: a failure in CI).
 *
 * Environment: POOLD_BIN, FAKELLAMA_BIN (make check sets them);
 * FAKETIME_LIB may name the library if it is nowhere we look.
 */
#include <sys/types.h>

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "testlib.h"

#define IDLE_TIMEOUT_MS		2000
#define DAY_S			(24 * 60 * 60)
/* A loaded 2-core machine: wide, one-sided bounds. */
#define CLOSED_AFTER_MIN_MS	1500
#define CLOSED_AFTER_MAX_MS	8000
#define STAMP_SLACK_S		600

/* --- libfaketime -------------------------------------------------- */

/* Where Debian (any multiarch), other Linux packages and Homebrew put it. */
static const char *const faketime_globs[] = {
	"/usr/lib/*/faketime/libfaketime.so.1",
	"/usr/lib/faketime/libfaketime.so.1",
	"/usr/lib64/faketime/libfaketime.so.1",
	"/usr/local/lib/faketime/libfaketime.so.1",
	"/opt/homebrew/lib/faketime/libfaketime.1.dylib",
	"/usr/local/lib/faketime/libfaketime.1.dylib",
};

/* The library's path in buf, false if there is none. */
static bool
faketime_lib(char *buf, size_t len)
{
	const char *env = getenv("FAKETIME_LIB");
	glob_t g;
	size_t i;
	bool found = false;

	if (env != NULL && *env != '\0') {
		snprintf(buf, len, "%s", env);
		return access(buf, R_OK) == 0;
	}
	for (i = 0; i < sizeof(faketime_globs) / sizeof(faketime_globs[0]) &&
	    !found; i++) {
		if (glob(faketime_globs[i], 0, NULL, &g) != 0)
			continue;
		if (g.gl_pathc > 0 && access(g.gl_pathv[0], R_OK) == 0) {
			snprintf(buf, len, "%s", g.gl_pathv[0]);
			found = true;
		}
		globfree(&g);
	}
	return found;
}

/*
 * Sets the wall-clock offset ("+0", "-1d") that poold sees from its next
 * clock read on.  Renamed into place, so poold never reads half a file.
 */
static void
set_offset(const char *file, const char *offset)
{
	char tmp[TL_PATH_MAX + 8];

	snprintf(tmp, sizeof(tmp), "%s.new", file);
	tl_write_file(tmp, "%s\n", offset);
	TL_ASSERT(rename(tmp, file) == 0, "rename %s", tmp);
}

/*
 * Starts poold (idle_client_timeout 2 s) under libfaketime with the wall
 * clock at offset "+0" kept in *file.  false if the case was skipped.
 */
static bool
start_faked(struct tl_daemon *d, int n, const char *name, char *file,
    size_t len)
{
	const char *asan = getenv("ASAN_OPTIONS");
	char lib[TL_PATH_MAX], opts[1024];

	if (!faketime_lib(lib, sizeof(lib))) {
		tl_skip(name, "no libfaketime (apt-get install libfaketime, "
		    "brew install libfaketime, or set FAKETIME_LIB)");
		return false;
	}
	tl_daemon_init(d, n);
	snprintf(file, len, "%s/faketime", d->dir);
	set_offset(file, "+0");
	/* ASan wants to come first; the preloaded library comes before it. */
	snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0",
	    asan ? asan : "", asan && *asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
#ifdef __APPLE__
	setenv("DYLD_INSERT_LIBRARIES", lib, 1);
	setenv("DYLD_FORCE_FLAT_NAMESPACE", "1", 1);
#else
	setenv("LD_PRELOAD", lib, 1);
#endif
	setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
	setenv("FAKETIME_NO_CACHE", "1", 1);
	setenv("FAKETIME_TIMESTAMP_FILE", file, 1);
	tl_daemon_start(d, "{\"idle_client_timeout\": \"2s\"}");
	unsetenv("LD_PRELOAD");
	unsetenv("DYLD_INSERT_LIBRARIES");
	unsetenv("DYLD_FORCE_FLAT_NAMESPACE");
	return true;
}

/* The wall time of poold's last log line, -1 if there is none. */
static time_t
last_log_stamp(const struct tl_daemon *d)
{
	char *log = tl_daemon_log(d), *line, *end;
	struct tm tm;
	time_t t = -1;

	end = log + strlen(log);
	while (end > log && end[-1] == '\n')
		*--end = '\0';
	line = strrchr(log, '\n');
	line = line ? line + 1 : log;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(line, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon,
	    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) == 6) {
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		t = timegm(&tm);
	}
	free(log);
	return t;
}

/*
 * A client connected now makes poold log a line: its wall time must be
 * shift_s off ours, else libfaketime did not reach poold (skipped, and
 * false, so that the caller ends the case).
 */
static bool
jump_seen(struct tl_daemon *d, const char *name, long long shift_s)
{
	struct tl_conn *probe = tl_connect(d);
	json_t *rep;
	time_t seen;
	long long off;

	/* poold logs the connection before it reads from it. */
	rep = tl_call(probe, json_pack("{s:s}", "cmd", "PING"),
	    TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(tl_ok(rep), "PING: %s", tl_dump(rep));
	json_decref(rep);
	seen = last_log_stamp(d);
	tl_close(probe);
	TL_ASSERT(seen != -1, "no time stamp in poold's log");
	off = (long long)seen - (long long)time(NULL);
	if (llabs(off - shift_s) <= STAMP_SLACK_S)
		return true;
	tl_skip(name, "libfaketime did not move poold's wall clock by %lld s "
	    "(its log is %lld s off ours)", shift_s, off);
	return false;
}

/*
 * A client connected and touched (a PING answered) at *t0; returns it
 * with *t0 taken before the PING was sent, so that poold's last sight of
 * the client is no earlier than *t0.
 */
static struct tl_conn *
idle_client(struct tl_daemon *d, long long *t0)
{
	struct tl_conn *c = tl_connect(d);
	json_t *rep;

	*t0 = tl_now_ms();
	rep = tl_call(c, json_pack("{s:s}", "cmd", "PING"),
	    TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(tl_ok(rep), "PING: %s", tl_dump(rep));
	json_decref(rep);
	return c;
}

/* Waits for poold to close c; ms from t0 to its EOF. */
static long long
wait_closed(struct tl_daemon *d, struct tl_conn *c, long long t0,
    const char *what)
{
	long long left = t0 + CLOSED_AFTER_MAX_MS - tl_now_ms(), dt;
	char *line;

	line = tl_recv_line(c, left > 0 ? left : 0, NULL);
	dt = tl_now_ms() - t0;
	TL_ASSERT(line == NULL && c->eof, "%s: the idle client is still "
	    "connected %lld ms after it last spoke (idle_client_timeout "
	    "2 s)%s%s", what, dt, line ? ": got " : "", line ? line : "");
	/* An EOF because poold is gone proves nothing about its timer. */
	TL_ASSERT(!tl_daemon_wait(d, 0), "%s: poold exited (wait status "
	    "%#x), the idle client with it", what, (unsigned)d->status);
	TL_ASSERT(dt >= CLOSED_AFTER_MIN_MS, "%s: the idle client was closed "
	    "%lld ms after it last spoke, before idle_client_timeout (2 s)",
	    what, dt);
	return dt;
}

/* --- tests -------------------------------------------------------- */

/*
 * The wall clock goes back a day just after an idle client spoke: poold
 * still closes it about idle_client_timeout (2 s) later, between 1.5 and
 * 8 s.  (Timed with ev_now(), it was kept for a day more.)
 */
START_TEST(test_idle_clock_back)
{
	struct tl_daemon d;
	struct tl_conn *idle;
	char file[TL_PATH_MAX];
	long long t0, dt;

	if (!start_faked(&d, 1, "idle_clock_back", file, sizeof(file)))
		return;
	idle = idle_client(&d, &t0);
	set_offset(file, "-1d");
	if (!jump_seen(&d, "idle_clock_back", -DAY_S)) {
		tl_close(idle);
		tl_daemon_finish(&d);
		return;
	}
	dt = wait_closed(&d, idle, t0, "wall clock set back 1 day");
	printf("idle_clock_back: closed %lld ms after it last spoke\n", dt);
	TL_ASSERT(tl_log_has(&d, "closed: idle for 2 s"), "no log line");
	tl_close(idle);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * The wall clock goes a day forward just after an idle client spoke:
 * poold does not close it at once (it is open 1 s after the jump), and
 * closes it after idle_client_timeout, between 1.5 and 8 s.
 */
START_TEST(test_idle_clock_forward)
{
	struct tl_daemon d;
	struct tl_conn *idle;
	char file[TL_PATH_MAX], *line;
	long long t0, dt;

	if (!start_faked(&d, 2, "idle_clock_forward", file, sizeof(file)))
		return;
	idle = idle_client(&d, &t0);
	set_offset(file, "+1d");
	line = tl_recv_line(idle, 1000, NULL);
	TL_ASSERT(line == NULL && !idle->eof, "wall clock set forward 1 day: "
	    "the idle client was closed %lld ms after it last spoke, before "
	    "idle_client_timeout (2 s)", tl_now_ms() - t0);
	if (!jump_seen(&d, "idle_clock_forward", DAY_S)) {
		tl_close(idle);
		tl_daemon_finish(&d);
		return;
	}
	dt = wait_closed(&d, idle, t0, "wall clock set forward 1 day");
	printf("idle_clock_forward: closed %lld ms after it last spoke\n", dt);
	TL_ASSERT(tl_log_has(&d, "closed: idle for 2 s"), "no log line");
	tl_close(idle);
	tl_daemon_finish(&d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("clock");

	tl_add(s, "idle_clock_back", test_idle_clock_back);
	tl_add(s, "idle_clock_forward", test_idle_clock_forward);
	return tl_run(s, CK_ENV);
}
