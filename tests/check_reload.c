/*
 * check_reload.c — SIGHUP and RELOAD against the real poold (issue 12,
 * "Live reload"): a new config applies without dropping servers or
 * connections; a bad one changes nothing and says why.
 *
 * Every test starts poold with the stand-in servers (fakellama), edits
 * its config file and reloads it, and checks STATS, the replies, the log
 * and the processes.
 *
 * Environment: POOLD_BIN, FAKELLAMA_BIN (make check sets them).
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "testlib.h"

#define MIB		(1024LL * 1024)
#define WAIT_MS		10000
#define NOBODY		65534		/* uid and gid of nobody/nogroup */

/* --- helpers ------------------------------------------------------ */

/* RELOAD; the reply as it is (ok or not). */
static json_t *
reload_call(struct tl_conn *c)
{
	return tl_call(c, json_pack("{s:s}", "cmd", "RELOAD"), WAIT_MS);
}

/* RELOAD that must succeed. */
static json_t *
reload_ok(struct tl_conn *c)
{
	json_t *rep = reload_call(c);

	TL_ASSERT(tl_ok(rep), "RELOAD: %s", tl_dump(rep));
	return rep;
}

/* How many times needle is in poold's log. */
static int
log_count(const struct tl_daemon *d, const char *needle)
{
	char *log = tl_daemon_log(d), *p;
	int n = 0;

	for (p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(log);
	return n;
}

/* SIGHUP, then wait until the log has one more line holding needle. */
static void
sighup_until(struct tl_daemon *d, const char *needle)
{
	int before = log_count(d, needle);
	bool ok;

	TL_ASSERT(kill(d->pid, SIGHUP) == 0, "kill: %s", strerror(errno));
	TL_WAIT_UNTIL(ok, log_count(d, needle) > before, WAIT_MS);
	TL_ASSERT(ok, "no \"%s\" in poold's log within %d ms of SIGHUP",
	    needle, WAIT_MS);
}

/* Runs "poolc -s SOCK reload", its output (both streams) into out;
 * its exit status. */
static int
poolc_reload(const struct tl_daemon *d, char *out, size_t len)
{
	const char *bin = getenv("POOLC_BIN") ? getenv("POOLC_BIN") :
	    "build/poolc";
	char cmd[2 * TL_PATH_MAX + 64];
	size_t n;
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' -s '%s' reload 2>&1", bin, d->sock);
	TL_ASSERT((f = popen(cmd, "r")) != NULL, "popen %s", cmd);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* STATS without tl_stats()'s checks of the accounting rules. */
static json_t *
stats_raw(struct tl_conn *c)
{
	json_t *st = tl_call(c, json_pack("{s:s}", "cmd", "STATS"), WAIT_MS);

	TL_ASSERT(tl_ok(st), "STATS: %s", tl_dump(st));
	return st;
}

/* model's server pid in a raw STATS, 0 if none. */
static pid_t
raw_pid(struct tl_conn *c, const char *model)
{
	json_t *st = stats_raw(c);
	pid_t pid = tl_server_pid(st, model);

	json_decref(st);
	return pid;
}

/* true if the JSON array arr holds the string s. */
static bool
array_has(json_t *arr, const char *s)
{
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

static void
model_path(const struct tl_daemon *d, const char *name, char *buf,
    size_t len)
{
	snprintf(buf, len, "%s/%s.gguf", d->models_dir, name);
}

/* STATS servers[model].config ("current", "old"), NULL if none. */
static char *
server_config(struct tl_daemon *d, struct tl_conn *c, const char *model)
{
	json_t *st = tl_stats(d, c), *srv = tl_server(st, model);
	char *s = srv != NULL && tl_str(srv, "config") != NULL ?
	    strdup(tl_str(srv, "config")) : NULL;

	json_decref(st);
	return s;
}

static bool
server_config_is(struct tl_daemon *d, struct tl_conn *c, const char *model,
    const char *want)
{
	char *s = server_config(d, c, model);
	bool same = s != NULL && strcmp(s, want) == 0;

	free(s);
	return same;
}

/* The value of var in /proc/PID/environ, into buf; false if absent. */
static bool
proc_env(pid_t pid, const char *var, char *buf, size_t len)
{
	char path[64], env[65536];
	size_t vlen = strlen(var);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return false;
	n = read(fd, env, sizeof(env) - 1);
	close(fd);
	if (n <= 0)
		return false;
	env[n] = '\0';
	for (char *p = env; p < env + n; p += strlen(p) + 1)
		if (strncmp(p, var, vlen) == 0 && p[vlen] == '=') {
			snprintf(buf, len, "%s", p + vlen + 1);
			return true;
		}
	return false;
}

/* --- a smaller budget --------------------------------------------- */

/*
 * Pass: a (8M, leased), b and c (4M each, idle) run in 216M.  SIGHUP
 * with memory_limit 6M (per_model 2M): the budget in STATS is 6M at
 * once, b and c are stopped (budget), a runs on with its lease, and the
 * pool starts nothing new while over; after a's RELEASE a is stopped too
 * (still over: 8M in 6M).  Nothing dropped the client's connection.
 */
START_TEST(test_shrink_budget)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	long long lease;
	pid_t pa, pb, pc;
	json_t *st;
	bool ok;

	tl_daemon_init(&d, 1);
	tl_model(&d, "a", "load_ms=20\nmem=1M\n");
	tl_model(&d, "b", "load_ms=20\nmem=1M\n");
	tl_model(&d, "c", "load_ms=20\nmem=1M\n");
	tl_daemon_start(&d, "{\"per_model\":\"4M\",\"models\":{\"a\":"
	    "{\"memory\":\"8M\"}}}");
	c = tl_connect(&d);
	mon = tl_connect(&d);
	lease = tl_acquire_ok(c, "a", true, NULL);
	tl_acquire_ok(c, "b", false, NULL);
	tl_acquire_ok(c, "c", false, NULL);
	st = tl_stats(&d, mon);
	pa = tl_server_pid(st, "a");
	pb = tl_server_pid(st, "b");
	pc = tl_server_pid(st, "c");
	TL_ASSERT(pa > 0 && pb > 0 && pc > 0, "not all running: %s",
	    tl_dump(st));
	TL_ASSERT(tl_int(st, "memory.used") == 16 * MIB, "used: %s",
	    tl_dump(tl_get(st, "memory")));
	json_decref(st);

	/* From here a leased server may hold more than the budget, which
	 * tl_stats() would call a broken rule: raw STATS. */
	tl_write_config(&d, "{\"memory_limit\":\"6M\",\"per_model\":\"2M\","
	    "\"models\":{\"a\":{\"memory\":\"8M\"}}}");
	sighup_until(&d, "reload: done");
	st = stats_raw(mon);
	TL_ASSERT(tl_int(st, "memory.budget") == 6 * MIB, "the budget did "
	    "not shrink to 6M: %s", tl_dump(tl_get(st, "memory")));
	json_decref(st);
	TL_WAIT_UNTIL(ok, raw_pid(mon, "b") == 0 && raw_pid(mon, "c") == 0,
	    WAIT_MS);
	TL_ASSERT(ok, "idle b and c still run in a budget of 6M: %s",
	    tl_dump(stats_raw(mon)));
	TL_ASSERT(tl_wait_gone(pb, WAIT_MS) && tl_wait_gone(pc, WAIT_MS),
	    "b's or c's process is still there");
	st = stats_raw(mon);
	TL_ASSERT(tl_server_pid(st, "a") == pa && tl_pid_exists(pa) &&
	    tl_int(tl_server(st, "a"), "leases") == 1, "the leased a was "
	    "stopped or lost its lease: %s", tl_dump(st));
	json_decref(st);
	/* Nothing new starts while over. */
	st = tl_acquire(c, "b", 300, false);
	TL_ASSERT(!tl_ok(st), "b started while a holds more than the "
	    "budget: %s", tl_dump(st));
	json_decref(st);

	tl_release(c, lease);
	TL_WAIT_UNTIL(ok, raw_pid(mon, "a") == 0, WAIT_MS);
	TL_ASSERT(ok, "a (8M) still runs after its RELEASE in a 6M budget");
	TL_ASSERT(tl_wait_gone(pa, WAIT_MS), "a's process is still there");
	/* Counted until poold has reaped it. */
	TL_WAIT_UNTIL(ok, !tl_has_server(&d, mon, "a"), WAIT_MS);
	TL_ASSERT(ok, "a is still listed after its process is gone");
	/* The connection that held the lease still works, within the rules. */
	TL_ASSERT(tl_stats_int(&d, c, "memory.used") == 0, "used is not 0");
	tl_acquire_ok(c, "b", false, NULL);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- a bad config changes nothing --------------------------------- */

struct broken {
	const char	*what;
	const char	*text;		/* the whole file, or NULL */
	const char	*overrides;	/* else tl_write_config's */
	const char	*reason;	/* in the log and the reply */
};

/* Budget, servers and pids as STATS shows them. */
static void
expect_unchanged(struct tl_daemon *d, struct tl_conn *mon, pid_t pa,
    const char *what)
{
	json_t *st = tl_stats(d, mon);

	TL_ASSERT(tl_int(st, "memory.budget") == 216 * MIB, "%s: the budget "
	    "changed: %s", what, tl_dump(tl_get(st, "memory")));
	TL_ASSERT(tl_server_pid(st, "a") == pa && json_array_size(
	    tl_get(st, "servers")) == 1, "%s: the servers changed: %s", what,
	    tl_dump(tl_get(st, "servers")));
	json_decref(st);
}

/*
 * Pass: for a file that is not JSON, one with an unknown key, one whose
 * alias names no model, a bad value, a budget no model fits in (each
 * also setting memory_limit 100M or less) and a file that is gone:
 * SIGHUP logs "reload refused" with the reason, RELOAD answers
 * bad_request with the reason in its message, and after both the budget
 * is still 216M, a's server the same process and the aliases those of
 * the start.  Then the good file reloads.
 */
START_TEST(test_broken_config)
{
	static const struct broken cases[] = {
		{ "bad JSON", "{\"memory_limit\": \"100M\",", NULL,
		    "line" },
		{ "an unknown key", NULL, "{\"memory_limit\":\"100M\","
		    "\"no_such_key\":1}", "unknown key \"no_such_key\"" },
		{ "an unknown alias", NULL, "{\"memory_limit\":\"100M\","
		    "\"aliases\":{\"x\":\"nosuch\"}}", "names an unknown "
		    "model \"nosuch\"" },
		{ "a bad value", NULL, "{\"memory_limit\":\"lots\"}",
		    "memory_limit" },
		{ "no model fits", NULL, "{\"memory_limit\":\"4M\"}",
		    "no model fits" },
		{ "a file that is gone", "", NULL, "No such file" },
	};
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	json_t *rep;
	pid_t pa;
	char *log;
	size_t i;

	tl_daemon_init(&d, 2);
	tl_model(&d, "a", "load_ms=20\nmem=1M\n");
	tl_daemon_start(&d, "{\"aliases\":{\"first\":\"a\"}}");
	c = tl_connect(&d);
	mon = tl_connect(&d);
	tl_acquire_ok(c, "a", false, NULL);
	pa = tl_stats_pid(&d, mon, "a");
	TL_ASSERT(pa > 0, "a is not running");

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct broken *b = &cases[i];

		if (b->text != NULL && b->text[0] == '\0')
			TL_ASSERT(unlink(d.config) == 0, "unlink the config");
		else if (b->text != NULL)
			tl_write_file(d.config, "%s", b->text);
		else
			tl_write_config(&d, b->overrides);
		sighup_until(&d, "reload refused");
		log = tl_daemon_log(&d);
		TL_ASSERT(strstr(strstr(log, "reload refused"), b->reason) !=
		    NULL || strstr(log, b->reason) != NULL, "%s: the log does "
		    "not give the reason (%s)", b->what, b->reason);
		free(log);
		expect_unchanged(&d, mon, pa, b->what);

		rep = reload_call(c);
		tl_expect_error(rep, "bad_request", NULL, b->what);
		TL_ASSERT(strstr(tl_str(rep, "message"), b->reason) != NULL,
		    "%s: RELOAD's message does not give the reason (%s): %s",
		    b->what, b->reason, tl_dump(rep));
		json_decref(rep);
		expect_unchanged(&d, mon, pa, b->what);
		/* The old alias still resolves (nothing was half applied). */
		tl_acquire_ok(c, "a", false, NULL);
	}
	TL_ASSERT(tl_daemon_wait(&d, 0) == false, "poold exited");

	tl_write_config(&d, "{\"memory_limit\":\"100M\"}");
	rep = reload_ok(c);
	TL_ASSERT(array_has(tl_get(rep, "changed"), "memory_limit") &&
	    array_has(tl_get(rep, "changed"), "aliases") &&
	    json_array_size(tl_get(rep, "restart_needed")) == 0,
	    "the good file's RELOAD: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(tl_stats_int(&d, mon, "memory.budget") == 100 * MIB,
	    "the good file's budget did not apply");
	TL_ASSERT(tl_stats_pid(&d, mon, "a") == pa, "a's server changed");
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- pins are accounted from the header -------------------------- */

/* MODELS' memory and source of model, which must be there. */
static long long
model_memory(struct tl_conn *c, const char *model, const char **source)
{
	json_t *m = tl_models_entry(c, model);
	long long mem;
	static char src[32];

	TL_ASSERT(m != NULL, "MODELS has no %s", model);
	mem = tl_int(m, "memory");
	snprintf(src, sizeof(src), "%s", tl_str(m, "source") != NULL ?
	    tl_str(m, "source") : "");
	*source = src;
	json_decref(m);
	return mem;
}

/*
 * Pass: "late", pinned by the config but without a file at the start,
 * gets a 96M GGUF; a RELOAD finds it, pins it at the header's figure
 * (≥ 96M, source gguf) and starts its server accounted so, not at
 * per_model's 8M.  Then "big" (64M header) runs pinned with "memory": "8M" in 216M; a file that keeps it
 * pinned but drops its "memory" needs 96M + 64M: under a budget of 150M
 * that is refused, naming both, and 8M stays (before, the check used
 * the old config's 8M and the RELOAD answered ok with the pins half
 * applied).  Under 300M the same pins are ok, with no warning, big at
 * its header's figure and both pinned.  Last, "huge" (160M), pinned by the config, gets its file
 * when there is no room for it beside the others: it runs as high,
 * MODELS says high, and PIN huge is refused too_large.
 */
START_TEST(test_pins_new_estimates)
{
	struct tl_daemon d;
	struct tl_conn *c;
	const char *src;
	json_t *rep, *st, *srv;
	long long mem;

	tl_daemon_init(&d, 9);
	tl_model_gguf(&d, "big", 64 * MIB);
	tl_daemon_start(&d, "{\"models\":{\"big\":{\"memory\":\"8M\","
	    "\"priority\":\"pinned\"},\"late\":{\"priority\":"
	    "\"pinned\"}}}");
	c = tl_connect(&d);
	TL_ASSERT(model_memory(c, "big", &src) == 8 * MIB &&
	    strcmp(src, "config") == 0, "big: %s", src);

	tl_model_gguf(&d, "late", 96 * MIB);
	json_decref(reload_ok(c));
	mem = model_memory(c, "late", &src);
	TL_ASSERT(mem >= 96 * MIB && strcmp(src, "gguf") == 0, "late, pinned "
	    "when its file appeared, is accounted %lld (%s), not from its "
	    "header", mem, src);
	st = tl_stats(&d, c);
	srv = tl_server(st, "late");
	TL_ASSERT(srv != NULL && tl_int(srv, "estimate") >= 96 * MIB, "late's "
	    "server was started accounted below its header's figure: %s",
	    tl_dump(srv));
	json_decref(st);

	tl_write_config(&d, "{\"memory_limit\":\"150M\",\"models\":{"
	    "\"big\":{\"priority\":\"pinned\"},\"late\":{"
	    "\"priority\":\"pinned\"}}}");
	rep = reload_call(c);
	tl_expect_error(rep, "bad_request", NULL, "pins over the new budget");
	TL_ASSERT(strstr(tl_str(rep, "message"), "pinned models need") !=
	    NULL && strstr(tl_str(rep, "message"), "big") != NULL &&
	    strstr(tl_str(rep, "message"), "late") != NULL, "the refusal "
	    "does not name both: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(tl_stats_int(&d, c, "memory.budget") == 216 * MIB,
	    "the refused file's budget applied");
	TL_ASSERT(model_memory(c, "big", &src) == 8 * MIB &&
	    strcmp(src, "config") == 0, "big after the refusal: %s", src);

	/* Room for both: big is accounted from its header from now on
	 * (its "memory" had kept the header unread), both stay pinned and
	 * the reply has no warning. */
	tl_write_config(&d, "{\"memory_limit\":\"300M\",\"models\":{"
	    "\"big\":{\"priority\":\"pinned\"},\"late\":{"
	    "\"priority\":\"pinned\"}}}");
	rep = reload_ok(c);
	TL_ASSERT(json_object_get(rep, "warning") == NULL, "RELOAD: %s",
	    tl_dump(rep));
	json_decref(rep);
	mem = model_memory(c, "big", &src);
	TL_ASSERT(mem >= 64 * MIB && strcmp(src, "gguf") == 0, "big without "
	    "its memory is accounted %lld (%s), not from its header", mem,
	    src);
	for (int i = 0; i < 2; i++) {
		rep = tl_models_entry(c, i == 0 ? "big" : "late");
		TL_ASSERT(strcmp(tl_str(rep, "priority"), "pinned") == 0,
		    "not pinned: %s", tl_dump(rep));
		json_decref(rep);
	}

	/* "huge" is pinned while it has no file; when its file comes there
	 * is no room beside the others: it runs as high, MODELS says so,
	 * and PIN does not answer "pinned" without pinning. */
	tl_write_config(&d, "{\"memory_limit\":\"216M\",\"models\":{"
	    "\"big\":{\"memory\":\"8M\","
	    "\"priority\":\"pinned\"},\"late\":{\"priority\":"
	    "\"pinned\"},\"huge\":{\"priority\":\"pinned\"}}}");
	json_decref(reload_ok(c));
	tl_model_gguf(&d, "huge", 160 * MIB);
	rep = reload_call(c);
	tl_expect_error(rep, "bad_request", NULL, "huge's pin over the budget");
	json_decref(rep);
	rep = tl_models_entry(c, "huge");
	TL_ASSERT(rep != NULL && strcmp(tl_str(rep, "priority"), "high") == 0,
	    "huge, not pinned, is said to be: %s", tl_dump(rep));
	json_decref(rep);
	rep = tl_call(c, json_pack("{s:s, s:s}", "cmd", "PIN", "model",
	    "huge"), WAIT_MS);
	tl_expect_error(rep, "too_large", NULL, "PIN huge");
	json_decref(rep);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- keys that need a restart ------------------------------------- */

/*
 * Pass: a file that moves the socket and the ports and changes
 * idle_timeout reloads ok with restart_needed ["ports", "socket"] (both
 * kept: the same socket still answers) and idle_timeout in changed;
 * the log names the kept keys.  A second RELOAD of the same file
 * reports those two again (the file still differs from what runs) and
 * nothing changed.
 */
START_TEST(test_restart_keys)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char over[TL_PATH_MAX + 256];
	json_t *rep, *rn;
	char out[4096];
	int fd;

	tl_daemon_init(&d, 3);
	tl_model(&d, "a", "load_ms=20\nmem=1M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	snprintf(over, sizeof(over), "{\"socket\":\"%s.other\",\"ports\":"
	    "[%d,%d],\"idle_timeout\":\"7m\"}", d.sock, d.port_min,
	    d.port_max - 1);
	tl_write_config(&d, over);
	rep = reload_ok(c);
	rn = tl_get(rep, "restart_needed");
	TL_ASSERT(array_has(rn, "socket") && array_has(rn, "ports") &&
	    json_array_size(rn) == 2 && array_has(tl_get(rep, "changed"),
	    "idle_timeout") && !array_has(tl_get(rep, "changed"), "socket"),
	    "RELOAD: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(tl_log_has(&d, "kept until a restart: "), "the log does "
	    "not name the kept keys");
	/* poolc reload says the same; a broken file is its error. */
	TL_ASSERT(poolc_reload(&d, out, sizeof(out)) == 0 && strstr(out,
	    "needs a restart") != NULL && strstr(out, "socket") != NULL,
	    "poolc reload: %s", out);
	tl_write_file(d.config, "{");
	TL_ASSERT(poolc_reload(&d, out, sizeof(out)) == 1 && strstr(out,
	    "bad_request") != NULL, "poolc reload of a broken file: %s", out);
	fd = tl_connect_fd(d.sock);
	TL_ASSERT(fd >= 0, "the socket went away");
	close(fd);
	tl_acquire_ok(c, "a", false, NULL);
	tl_close(c);
	/* The socket is still the one of the start. */
	tl_daemon_finish(&d);
}
END_TEST

/* --- RELOAD is for admins ----------------------------------------- */

struct as_result {
	int	 connect_errno;
	json_t	*reply;
};

/* A child as uid/gid sends one line to sock and reads one reply. */
static void
run_as(uid_t uid, gid_t gid, const char *sock, const char *line,
    struct as_result *res)
{
	char buf[8192];
	size_t n = 0;
	int pp[2], fd, st;
	ssize_t r;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	TL_ASSERT(pipe(pp) == 0, "pipe: %s", strerror(errno));
	pid = fork();
	TL_ASSERT(pid != -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct pollfd pfd;
		char ch;

		close(pp[0]);
		signal(SIGALRM, SIG_DFL);
		if (setgroups(0, NULL) == -1 || setgid(gid) == -1 ||
		    setuid(uid) == -1)
			_exit(2);
		if ((fd = tl_connect_fd(sock)) == -1)
			_exit(3);
		if (write(fd, line, strlen(line)) == -1 ||
		    write(fd, "\n", 1) == -1)
			_exit(4);
		pfd.fd = fd;
		pfd.events = POLLIN;
		while (poll(&pfd, 1, 5000) == 1 && read(fd, &ch, 1) == 1 &&
		    ch != '\n')
			(void)!write(pp[1], &ch, 1);
		_exit(0);
	}
	close(pp[1]);
	while (n + 1 < sizeof(buf) &&
	    (r = read(pp[0], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(pp[0]);
	waitpid(pid, &st, 0);
	TL_ASSERT(WIFEXITED(st), "the child as uid %d died", (int)uid);
	res->connect_errno = WEXITSTATUS(st);
	res->reply = n > 0 ? json_loads(buf, 0, NULL) : NULL;
}

/*
 * Pass (root only; socket 0666): RELOAD from uid 65534 is forbidden and
 * the changed file (memory_limit 100M) is not applied; the same RELOAD
 * from root (the owner) applies it.
 */
START_TEST(test_reload_forbidden)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct as_result r;
	json_t *rep;

	tl_daemon_init(&d, 4);
	if (geteuid() != 0) {
		tl_skip("reload_forbidden", "needs root to act as another "
		    "user");
		tl_daemon_finish(&d);
		return;
	}
	tl_model(&d, "a", "load_ms=20\nmem=1M\n");
	TL_ASSERT(chmod(d.dir, 0755) == 0, "chmod: %s", strerror(errno));
	tl_daemon_start(&d, "{\"socket_mode\":\"0666\"}");
	c = tl_connect(&d);
	tl_write_config(&d, "{\"socket_mode\":\"0666\",\"memory_limit\":"
	    "\"100M\"}");
	run_as(NOBODY, NOBODY, d.sock, "{\"cmd\":\"RELOAD\"}", &r);
	TL_ASSERT(r.connect_errno == 0, "uid %d could not send (%d)", NOBODY,
	    r.connect_errno);
	tl_expect_error(r.reply, "forbidden", NULL, "RELOAD by a non-admin");
	json_decref(r.reply);
	TL_ASSERT(tl_stats_int(&d, c, "memory.budget") == 216 * MIB,
	    "a forbidden RELOAD applied the file");
	rep = reload_ok(c);
	json_decref(rep);
	TL_ASSERT(tl_stats_int(&d, c, "memory.budget") == 100 * MIB,
	    "the owner's RELOAD did not apply the file");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- a changed command or env: at the next start ------------------ */

/*
 * Pass: a runs with env X=1, b with no env.  The file now says X=2 for
 * a: RELOAD says changed ["models.a"]; a's server is the same process,
 * still with X=1, and STATS says config "old" for it and "current" for
 * b.  After EVICT a, the next ACQUIRE starts it with X=2 and STATS says
 * "current".  A changed global command makes b "old" too.
 */
START_TEST(test_command_next_start)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	char val[64], over[1024];
	json_t *rep;
	pid_t pa, pa2;

	tl_daemon_init(&d, 5);
	tl_model(&d, "a", "load_ms=20\nmem=1M\n");
	tl_model(&d, "b", "load_ms=20\nmem=1M\n");
	tl_daemon_start(&d, "{\"models\":{\"a\":{\"env\":{\"X\":\"1\"}}}}");
	c = tl_connect(&d);
	mon = tl_connect(&d);
	tl_acquire_ok(c, "a", false, NULL);
	tl_acquire_ok(c, "b", false, NULL);
	pa = tl_stats_pid(&d, mon, "a");
	TL_ASSERT(proc_env(pa, "X", val, sizeof(val)) && strcmp(val, "1") ==
	    0, "a's server has no X=1");
	TL_ASSERT(server_config_is(&d, mon, "a", "current") &&
	    server_config_is(&d, mon, "b", "current"), "not current at start");

	tl_write_config(&d, "{\"models\":{\"a\":{\"env\":{\"X\":\"2\"}}}}");
	rep = reload_ok(c);
	TL_ASSERT(array_has(tl_get(rep, "changed"), "models.a") &&
	    json_array_size(tl_get(rep, "changed")) == 1, "RELOAD: %s",
	    tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(tl_stats_pid(&d, mon, "a") == pa, "a was restarted");
	TL_ASSERT(proc_env(pa, "X", val, sizeof(val)) && strcmp(val, "1") ==
	    0, "a's running server changed its env?");
	TL_ASSERT(server_config_is(&d, mon, "a", "old"), "a's server is not "
	    "\"old\" after its env changed");
	TL_ASSERT(server_config_is(&d, mon, "b", "current"), "b's server is "
	    "not \"current\"");
	/* It is still handed out as it is. */
	tl_acquire_ok(c, "a", false, NULL);
	TL_ASSERT(tl_stats_pid(&d, mon, "a") == pa, "ACQUIRE restarted a");

	rep = tl_evict(c, "a", false, WAIT_MS);
	TL_ASSERT(tl_ok(rep), "EVICT a: %s", tl_dump(rep));
	json_decref(rep);
	tl_acquire_ok(c, "a", false, NULL);
	pa2 = tl_stats_pid(&d, mon, "a");
	TL_ASSERT(pa2 > 0 && pa2 != pa, "a was not started again");
	TL_ASSERT(proc_env(pa2, "X", val, sizeof(val)) && strcmp(val, "2") ==
	    0, "a's new server has not X=2 (%s)", val);
	TL_ASSERT(server_config_is(&d, mon, "a", "current"), "a's new server "
	    "is not \"current\"");

	/* The global command: every running server is old. */
	snprintf(over, sizeof(over), "{\"models\":{\"a\":{\"env\":{\"X\":"
	    "\"2\"}}},\"command\":[\"%s\",\"-m\",\"{path}\",\"--host\","
	    "\"127.0.0.1\",\"--port\",\"{port}\",\"--fake\",\"load_ms=1\"]}",
	    getenv("FAKELLAMA_BIN") ? getenv("FAKELLAMA_BIN") :
	    "build/fakellama");
	tl_write_config(&d, over);
	rep = reload_ok(c);
	TL_ASSERT(array_has(tl_get(rep, "changed"), "command"), "RELOAD: %s",
	    tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(server_config_is(&d, mon, "a", "old") &&
	    server_config_is(&d, mon, "b", "old"), "a new command leaves "
	    "servers \"current\"");
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- the folder: removed and added files -------------------------- */

/*
 * Pass: a idle and b leased; both files removed, c added; RELOAD says
 * models added 1, removed 2; a's server stops (retired) and its process
 * goes; b runs on with its lease and stops after its RELEASE; ACQUIRE a
 * is unknown_model; c is in MODELS and starts.  A rescan outside a
 * reload (SIGHUP with the same file) behaves the same for d.
 */
START_TEST(test_folder_changes)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	char path[TL_PATH_MAX + 64];
	long long lease;
	json_t *rep;
	pid_t pa, pb;
	bool ok;

	tl_daemon_init(&d, 6);
	tl_model(&d, "a", "load_ms=20\nmem=1M\n");
	tl_model(&d, "b", "load_ms=20\nmem=1M\n");
	tl_model(&d, "d", "load_ms=20\nmem=1M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	mon = tl_connect(&d);
	tl_acquire_ok(c, "a", false, NULL);
	lease = tl_acquire_ok(c, "b", true, NULL);
	pa = tl_stats_pid(&d, mon, "a");
	pb = tl_stats_pid(&d, mon, "b");

	model_path(&d, "a", path, sizeof(path));
	TL_ASSERT(unlink(path) == 0, "unlink a");
	model_path(&d, "b", path, sizeof(path));
	TL_ASSERT(unlink(path) == 0, "unlink b");
	tl_model(&d, "c", "load_ms=20\nmem=1M\n");
	rep = reload_ok(c);
	TL_ASSERT(tl_int(rep, "models.added") == 1 &&
	    tl_int(rep, "models.removed") == 2, "RELOAD: %s", tl_dump(rep));
	json_decref(rep);
	TL_WAIT_UNTIL(ok, tl_stats_pid(&d, mon, "a") == 0, WAIT_MS);
	TL_ASSERT(ok, "a's idle server runs on after its file went");
	TL_ASSERT(tl_wait_gone(pa, WAIT_MS), "a's process is still there");
	TL_ASSERT(tl_stats_pid(&d, mon, "b") == pb &&
	    tl_server_leases(&d, mon, "b") == 1, "the leased b was stopped");
	rep = tl_acquire(c, "a", 2000, false);
	tl_expect_error(rep, "unknown_model", NULL, "ACQUIRE of a removed "
	    "model");
	json_decref(rep);
	tl_release(c, lease);
	TL_WAIT_UNTIL(ok, tl_stats_pid(&d, mon, "b") == 0, WAIT_MS);
	TL_ASSERT(ok, "b runs on after its last RELEASE");
	TL_ASSERT(tl_wait_gone(pb, WAIT_MS), "b's process is still there");
	tl_acquire_ok(c, "c", false, NULL);

	/* A plain rescan (SIGHUP, nothing changed in the file). */
	tl_acquire_ok(c, "d", false, NULL);
	pa = tl_stats_pid(&d, mon, "d");
	model_path(&d, "d", path, sizeof(path));
	TL_ASSERT(unlink(path) == 0, "unlink d");
	sighup_until(&d, "reload: done");
	TL_WAIT_UNTIL(ok, tl_stats_pid(&d, mon, "d") == 0, WAIT_MS);
	TL_ASSERT(ok, "d's idle server runs on after its file went (SIGHUP)");
	/* A file put back is a model again, once its old server is gone. */
	tl_model(&d, "a", "load_ms=20\nmem=1M\n");
	tl_acquire_ok(c, "a", false, NULL);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- the front door's token and aliases --------------------------- */

#define STREAM_BODY	"{\"model\":\"x\",\"stream\":true,\"messages\":" \
			"[{\"role\":\"user\",\"content\":\"hi\"}]}"

/* The front door's port, from STATS http.listen. */
static int
door_port(struct tl_daemon *d, struct tl_conn *c)
{
	json_t *st = tl_stats(d, c);
	const char *listen = tl_str(st, "http.listen"), *colon;
	int port = 0;

	if (listen != NULL && (colon = strrchr(listen, ':')) != NULL)
		port = atoi(colon + 1);
	json_decref(st);
	TL_ASSERT(port > 0, "no port in STATS http.listen");
	return port;
}

/* GET /v1/models with token; the status, the body's ids in ids. */
static int
get_models(int port, const char *token, char *ids, size_t len)
{
	char hdr[256];
	struct tl_http *h;
	json_t *j, *m;
	size_t i, off = 0;
	int status;

	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", token);
	h = tl_http_request(port, "GET", "/v1/models", hdr, NULL, WAIT_MS);
	status = h->status;
	ids[0] = '\0';
	if (status == 200) {
		j = tl_http_json(h);
		json_array_foreach(json_object_get(j, "data"), i, m)
			off += (size_t)snprintf(ids + off, off < len ?
			    len - off : 0, "%s ", tl_str(m, "id"));
		json_decref(j);
	}
	tl_http_close(h);
	return status;
}

/*
 * Pass: the front door with token "one" and alias x → a: GET /v1/models
 * with "one" is 200 and lists x.  The token file now says "two" (the
 * config names another file) and the alias is y: RELOAD; a connection
 * opened before it still works, a completion streamed across it is not
 * cut, a GET /events stream opened with "one" ends; "one" gets 401, "two" gets 200 listing y
 * and not x; an ACQUIRE of y gets a's server.  A token file others may
 * read is refused and "two" still works.
 */
START_TEST(test_http_reload)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char tok1[TL_PATH_MAX + 64], tok2[TL_PATH_MAX + 64];
	char over[2 * TL_PATH_MAX + 512], ids[1024];
	struct tl_http *kept, *stream, *events;
	json_t *rep;
	int port;

	tl_daemon_init(&d, 7);
	tl_model(&d, "a", "load_ms=20\nmem=1M\nstream_delay_ms=100\n"
	    "stream_tokens=10\n");
	snprintf(tok1, sizeof(tok1), "%s/token1", d.dir);
	snprintf(tok2, sizeof(tok2), "%s/token2", d.dir);
	tl_write_file(tok1, "one\n");
	tl_write_file(tok2, "two\n");
	TL_ASSERT(chmod(tok1, 0600) == 0 && chmod(tok2, 0600) == 0, "chmod");
	snprintf(over, sizeof(over), "{\"http\":{\"listen\":\"127.0.0.1:0\","
	    "\"token_file\":\"%s\"},\"aliases\":{\"x\":\"a\"}}", tok1);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	port = door_port(&d, c);
	TL_ASSERT(get_models(port, "one", ids, sizeof(ids)) == 200 &&
	    strstr(ids, "x ") != NULL, "before: %s", ids);
	/* A keep-alive connection opened before the reload, and a stream
	 * (1 s) proxied through it. */
	kept = tl_http_open(port);
	stream = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(stream, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nAuthorization: Bearer one\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\nConnection: close"
	    "\r\n\r\n%s", strlen(STREAM_BODY), STREAM_BODY) == 0,
	    "send the stream's request");
	TL_ASSERT(tl_http_wait_head(stream, WAIT_MS) && stream->status == 200,
	    "the stream: HTTP %d", stream->status);
	events = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(events, "GET /events HTTP/1.1\r\nHost: "
	    "127.0.0.1\r\nAuthorization: Bearer one\r\n\r\n") == 0,
	    "send GET /events");
	TL_ASSERT(tl_http_wait_head(events, WAIT_MS) && events->status == 200,
	    "GET /events: HTTP %d", events->status);

	snprintf(over, sizeof(over), "{\"http\":{\"listen\":\"127.0.0.1:0\","
	    "\"token_file\":\"%s\"},\"aliases\":{\"y\":\"a\"}}", tok2);
	tl_write_config(&d, over);
	rep = reload_ok(c);
	TL_ASSERT(array_has(tl_get(rep, "changed"), "http.token_file") &&
	    array_has(tl_get(rep, "changed"), "aliases") &&
	    json_array_size(tl_get(rep, "restart_needed")) == 0,
	    "RELOAD: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(door_port(&d, c) == port, "the listener moved");
	/* The event stream ends with its token; the proxied one does not. */
	for (long long dl = tl_now_ms() + WAIT_MS; !events->eof &&
	    tl_now_ms() < dl;)
		tl_http_read(events, 100);
	TL_ASSERT(events->eof, "an event stream outlived its token");
	tl_http_close(events);
	TL_ASSERT(tl_http_wait_done(stream, 30000) && stream->done &&
	    !stream->bad && stream->events >= 10, "the stream proxied across "
	    "the reload was cut: %ld events, done %d", stream->events,
	    (int)stream->done);
	tl_http_close(stream);
	TL_ASSERT(tl_http_sendf(kept, "GET /v1/models HTTP/1.1\r\nHost: "
	    "127.0.0.1\r\nAuthorization: Bearer two\r\n\r\n") == 0,
	    "the connection from before the reload was dropped");
	TL_ASSERT(tl_http_wait_done(kept, WAIT_MS) && kept->status == 200,
	    "the connection from before the reload: HTTP %d", kept->status);
	tl_http_close(kept);
	TL_ASSERT(get_models(port, "one", ids, sizeof(ids)) == 401,
	    "the old token still works");
	TL_ASSERT(get_models(port, "two", ids, sizeof(ids)) == 200 &&
	    strstr(ids, "y ") != NULL && strstr(ids, "x ") == NULL,
	    "after: %s", ids);

	/* A token file others can read: refused, the running token stays. */
	TL_ASSERT(chmod(tok2, 0644) == 0, "chmod");
	rep = reload_call(c);
	tl_expect_error(rep, "bad_request", NULL, "a token file of mode 644");
	json_decref(rep);
	TL_ASSERT(get_models(port, "two", ids, sizeof(ids)) == 200,
	    "a refused reload changed the token");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- reloads under load ------------------------------------------- */

/*
 * Pass: while an ACQUIRE waits for a slow start (load_ms 600) a RELOAD
 * is answered and the ACQUIRE then succeeds; then 50 RELOADs in a row,
 * alternating two files (budget 216M/200M, a's env), with three clients
 * acquiring, holding and releasing between them: every reply is ok,
 * nothing is dropped, the budget is the last file's, and poold exits
 * cleanly at the end (under SANITIZE=1: no leak, no error).
 */
START_TEST(test_reload_under_load)
{
	struct tl_daemon d;
	struct tl_conn *c, *cl[3];
	json_t *rep;
	long long id, lease;
	int i, k;
	static const char *const names[] = { "a", "b", "slow" };

	tl_daemon_init(&d, 8);
	tl_model(&d, "a", "load_ms=20\nmem=1M\n");
	tl_model(&d, "b", "load_ms=20\nmem=1M\n");
	tl_model(&d, "slow", "load_ms=600\nmem=1M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	for (k = 0; k < 3; k++)
		cl[k] = tl_connect(&d);

	id = tl_send_req(cl[0], tl_acquire_req("slow", WAIT_MS, false));
	rep = reload_ok(c);
	json_decref(rep);
	rep = tl_recv_id(cl[0], id, WAIT_MS);
	TL_ASSERT(tl_ok(rep), "an ACQUIRE waiting through a RELOAD: %s",
	    tl_dump(rep));
	json_decref(rep);

	for (i = 0; i < 50; i++) {
		tl_write_config(&d, i % 2 == 0 ? "{\"memory_limit\":\"200M\","
		    "\"models\":{\"a\":{\"env\":{\"X\":\"1\"}}},\"aliases\":"
		    "{\"al\":\"b\"}}" : "{\"models\":{\"a\":{\"idle_timeout\":"
		    "\"1m\"}}}");
		/* Requests in flight across the reload. */
		for (k = 0; k < 3; k++)
			(void)tl_send_req(cl[k], tl_acquire_req(names[(i + k) %
			    3], WAIT_MS, true));
		rep = reload_ok(c);
		json_decref(rep);
		for (k = 0; k < 3; k++) {
			rep = tl_recv(cl[k], WAIT_MS);
			TL_ASSERT(tl_ok(rep), "round %d client %d: %s", i, k,
			    tl_dump(rep));
			lease = json_integer_value(json_object_get(rep,
			    "lease"));
			json_decref(rep);
			tl_release(cl[k], lease);
		}
	}
	TL_ASSERT(tl_stats_int(&d, c, "memory.budget") == 216 * MIB,
	    "the last file's budget is not in force");
	TL_ASSERT(tl_log_has(&d, "reload refused") == false, "a reload was "
	    "refused");
	for (k = 0; k < 3; k++)
		tl_close(cl[k]);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("reload");

	tl_add(s, "shrink", test_shrink_budget);
	tl_add(s, "broken", test_broken_config);
	tl_add(s, "restart_keys", test_restart_keys);
	tl_add(s, "forbidden", test_reload_forbidden);
	tl_add(s, "command", test_command_next_start);
	tl_add(s, "folder", test_folder_changes);
	tl_add(s, "http", test_http_reload);
	tl_add(s, "under_load", test_reload_under_load);
	tl_add(s, "pins_estimates", test_pins_new_estimates);
	return tl_run(s, CK_ENV);
}
