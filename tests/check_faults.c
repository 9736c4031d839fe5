/*
 * check_faults.c — fault injection: whatever a child, a client or the
 * machine does, poold keeps a true picture, keeps answering and leaves
 * nothing behind (issue 5, "Proof").
 *
 * Every test starts the real poold (testlib.c), injects one fault and
 * asserts the pass criterion stated in the comment above it.  Some tests
 * are the specification of features that were being built when they were
 * written; their comments say "Depends on" and name the config key or
 * behaviour.  Until that lands they fail, on purpose: they are the spec.
 *
 * Some faults need root (a pids cgroup to make fork fail, a tmpfs to fill,
 * setuid to play another user).  Without it those tests print a SKIP
 * line saying why the fault cannot be injected (tl_skip: in CI, where we
 * are root, a skip fails).
 *
 * Environment: POOLD_BIN, FAKELLAMA_BIN (make check sets them).
 */
#include <sys/types.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
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
#define NOBODY		65534		/* uid and gid of nobody/nogroup */

/* --- small helpers ------------------------------------------------ */

/* The entry of model in an array of objects with "model" (STATS, MODELS). */
static json_t *
entry_of(json_t *reply, const char *array, const char *model)
{
	json_t *m;
	size_t i;

	json_array_foreach(tl_get(reply, array), i, m)
		if (tl_str(m, "model") && strcmp(tl_str(m, "model"), model) == 0)
			return m;
	return NULL;
}

/*
 * true if poold runs under AddressSanitizer (make check SANITIZE=1),
 * whose shadow memory, quarantine and slower code some bounds allow for.
 */
static bool
poold_sanitized(const struct tl_daemon *d)
{
	return tl_proc_maps_has(d->pid, "libasan") ||
	    tl_proc_maps_has(d->pid, "libclang_rt.asan");
}

/* PING must be answered within timeout_ms; returns how long it took. */
static long long
ping_ok(struct tl_conn *c, long long timeout_ms, const char *what)
{
	long long t0 = tl_now_ms(), id;
	json_t *rep;

	id = tl_send_req(c, json_pack("{s:s}", "cmd", "PING"));
	rep = tl_recv_id(c, id, timeout_ms);
	TL_ASSERT(rep != NULL, "%s: PING not answered within %lld ms%s", what,
	    timeout_ms, c->eof ? " (connection closed)" : "");
	TL_ASSERT(tl_ok(rep), "%s: PING failed: %s", what, tl_dump(rep));
	json_decref(rep);
	return tl_now_ms() - t0;
}

static void
set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/*
 * true if the peer closed fd (EOF, ECONNRESET, EPIPE); reads and drops
 * whatever else is there.  Never blocks.
 */
static bool
peer_closed(int fd)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == 0)
			return true;
		return errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR;
	}
}

/* Field n (1-based, as in proc(5)) of /proc/PID/stat; 0 if gone. */
static unsigned long long
proc_stat_field(pid_t pid, int n)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t len;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	p += 2;				/* field 3 */
	for (i = 3; i < n && p != NULL; i++)
		if ((p = strchr(p, ' ')) != NULL)
			p++;
	if (p != NULL)
		sscanf(p, "%llu", &v);
	return v;
}

/* CPU time (user + system) of pid in clock ticks. */
static unsigned long long
proc_cpu_ticks(pid_t pid)
{
	return proc_stat_field(pid, 14) + proc_stat_field(pid, 15);
}

/* Open descriptors of pid, -1 if unknown; fds[] gets their numbers. */
static int
proc_fds(pid_t pid, int *fds, int max)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((dir = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fds != NULL && n < max)
			fds[n] = atoi(de->d_name);
		n++;
	}
	closedir(dir);
	return n;
}

/*
 * The RLIMIT_NOFILE that leaves pid exactly spare free descriptor
 * numbers: new descriptors take the lowest free number below the limit,
 * and it may hold some far above (inherited ones).
 */
static rlim_t
nofile_for_spare(pid_t pid, int spare)
{
	int fds[1024], n, i, below;
	rlim_t lim;

	n = proc_fds(pid, fds, 1024);
	TL_ASSERT(n > 0 && n <= 1024, "cannot read the fds of %d", (int)pid);
	for (lim = 1;; lim++) {
		for (i = below = 0; i < n; i++)
			if ((rlim_t)fds[i] < lim)
				below++;
		if ((int)lim - below == spare)
			return lim;
	}
}

/* Bytes pid has written (wchar of /proc/PID/io), -1 if unknown. */
static long long
proc_wchar(pid_t pid)
{
	char path[64], line[128];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "wchar: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/*
 * Starts a stand-in by hand, in its own session and without a
 * parent-death signal: what a SIGKILLed poold could leave behind if the
 * kernel did not take its children along.  Like such an orphan, whose
 * new parent (init) reaps it, it is the child of a keeper process that
 * waits for it, so it never lingers as a zombie.  Returns its pid; the
 * keeper's is *keeper.
 */
static pid_t
spawn_standin(struct tl_daemon *d, const char *model, int port,
    pid_t *keeper)
{
	const char *fake = getenv("FAKELLAMA_BIN");
	char path[TL_PATH_MAX + 64], portstr[16];
	pid_t pid = 0;
	int null, pp[2];

	if (fake == NULL || fake[0] == '\0')
		fake = "build/fakellama";
	snprintf(path, sizeof(path), "%s/%s.gguf", d->models_dir, model);
	snprintf(portstr, sizeof(portstr), "%d", port);
	TL_ASSERT(pipe(pp) == 0, "pipe: %s", strerror(errno));
	*keeper = fork();
	TL_ASSERT(*keeper != -1, "fork: %s", strerror(errno));
	if (*keeper == 0) {
		signal(SIGALRM, SIG_DFL);
		close(pp[0]);
		setsid();
		if ((pid = fork()) == 0) {
			if ((null = open("/dev/null", O_RDWR)) != -1) {
				dup2(null, 0);
				dup2(null, 1);
				dup2(null, 2);
			}
			execl(fake, fake, "-m", path, "--host", "127.0.0.1",
			    "--port", portstr, (char *)NULL);
			_exit(127);
		}
		(void)!write(pp[1], &pid, sizeof(pid));
		close(pp[1]);
		while (pid > 0 && waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		_exit(0);
	}
	close(pp[1]);
	TL_ASSERT(read(pp[0], &pid, sizeof(pid)) == sizeof(pid) && pid > 0,
	    "the keeper could not start a stand-in");
	close(pp[0]);
	tl_track(*keeper);
	return pid;
}

/* What a process running as another user saw (run_as()). */
struct as_result {
	int	 connect_errno;		/* 0: connected; -1: never tried */
	int	 n;			/* replies read */
	json_t	*replies[8];		/* NULL where none came */
};

static void
as_result_free(struct as_result *r)
{
	for (int i = 0; i < r->n; i++)
		json_decref(r->replies[i]);
}

/* In the child: one reply line into buf, "" if none within 5 s. */
static void
as_read_line(int fd, char *buf, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t n = 0;
	char ch;

	buf[0] = '\0';
	while (n + 1 < len && poll(&pfd, 1, 5000) == 1) {
		if (read(fd, &ch, 1) != 1 || ch == '\n')
			break;
		buf[n++] = ch;
	}
	buf[n] = '\0';
}

/*
 * Forks a process that becomes uid/gid (no supplementary groups),
 * connects to sock and sends each line, reading one reply after each.
 * Its results come back through a pipe.
 */
static void
run_as(uid_t uid, gid_t gid, const char *sock, const char *const *lines,
    int nlines, struct as_result *res)
{
	char buf[65536], reply[8192];
	size_t len = 0;
	ssize_t n;
	char *p, *nl;
	int pp[2], fd, i, st;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	res->connect_errno = -1;
	TL_ASSERT(pipe(pp) == 0, "pipe: %s", strerror(errno));
	pid = fork();
	TL_ASSERT(pid != -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(pp[0]);
		signal(SIGALRM, SIG_DFL);
		if (setgroups(0, NULL) == -1 || setgid(gid) == -1 ||
		    setuid(uid) == -1) {
			dprintf(pp[1], "E %d\n", errno);
			_exit(1);
		}
		if ((fd = tl_connect_fd(sock)) == -1) {
			dprintf(pp[1], "C %d\n", errno);
			_exit(0);
		}
		dprintf(pp[1], "C 0\n");
		for (i = 0; i < nlines; i++) {
			if (write(fd, lines[i], strlen(lines[i])) == -1 ||
			    write(fd, "\n", 1) == -1)
				break;
			as_read_line(fd, reply, sizeof(reply));
			dprintf(pp[1], "R %s\n", reply);
		}
		_exit(0);
	}
	close(pp[1]);
	while (len + 1 < sizeof(buf) &&
	    (n = read(pp[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(pp[0]);
	waitpid(pid, &st, 0);
	for (p = buf; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		*nl = '\0';
		if (p[0] == 'E')
			TL_ASSERT(0, "cannot become uid %d: %s", (int)uid,
			    strerror(atoi(p + 2)));
		else if (p[0] == 'C')
			res->connect_errno = atoi(p + 2);
		else if (p[0] == 'R' && res->n < 8)
			res->replies[res->n++] = p[2] != '\0' ?
			    json_loads(p + 2, 0, NULL) : NULL;
	}
}

/* --- 1. poold killed with servers running ------------------------- */

static bool
all_gone_reap(const pid_t *pids, int n)
{
	for (int i = 0; i < n; i++)
		if (!tl_pid_gone_reap(pids[i]))
			return false;
	return true;
}

/*
 * Pass: kill -9 of poold with 10 servers running (5 leased, 5 not) → 1 s
 * after the kill none of the 10 exists, not even as a zombie (the
 * parent-death signal took them along).
 */
START_TEST(test_kill9_no_server_survives)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *st, *rep;
	long long ids[10], t0;
	pid_t pids[10];
	char name[16];
	int i;
	bool ok;

	tl_daemon_init(&d, 1);
	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "k%02d", i);
		tl_model(&d, name, "load_ms=30\nmem=4M\n");
	}
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "k%02d", i);
		ids[i] = tl_send_req(c, tl_acquire_req(name, 10000, i % 2 == 0));
	}
	for (i = 0; i < 10; i++) {
		rep = tl_recv_id(c, ids[i], 15000);
		TL_ASSERT(tl_ok(rep), "ACQUIRE k%02d: %s", i, tl_dump(rep));
		json_decref(rep);
	}
	st = tl_stats(&d, c);
	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "k%02d", i);
		pids[i] = tl_server_pid(st, name);
		TL_ASSERT(pids[i] > 0, "%s not running: %s", name, tl_dump(st));
	}
	json_decref(st);

	t0 = tl_now_ms();
	TL_ASSERT(kill(d.pid, SIGKILL) == 0, "kill: %s", strerror(errno));
	TL_ASSERT(tl_daemon_wait(&d, 1000), "poold survived SIGKILL");
	TL_WAIT_UNTIL(ok, all_gone_reap(pids, 10), t0 + 1000 - tl_now_ms());
	for (i = 0; i < 10 && !ok; i++)
		TL_ASSERT(!tl_pid_exists(pids[i]), "server %d (k%02d) still "
		    "exists 1 s after poold's SIGKILL (state %c)",
		    (int)pids[i], i, tl_proc_state(pids[i]));
	unlink(d.sock);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 2. leftovers recorded in the state file ---------------------- */

/* Reloads the state file into *root; the entry of pid, or NULL. */
static json_t *
load_state_entry(const char *path, pid_t pid, json_t **root)
{
	json_decref(*root);
	*root = json_load_file(path, 0, NULL);
	return tl_state_server(*root, pid);
}

/*
 * Depends on the state file (state.c): "state_file" in the config names
 * a JSON file {"servers":[{"model":M,"pid":P,"start":T,"port":N}], ...},
 * T being field 22 of /proc/P/stat (start time in clock ticks).
 *
 * On Linux a SIGKILLed poold takes its servers along (test 1), so a
 * leftover is made by hand: a stand-in started in its own session,
 * recorded in the state file as a killed poold would have left it.
 *
 * Pass: a leftover whose pid and start time both match is gone within
 * 100 ms of the new poold's socket accepting, i.e. it was stopped before
 * poold served; a recorded pid whose start time does not match (the pid
 * was reused) is left alone, then and later; once poold starts a server,
 * the state file records its model, pid, start time and port.
 */
START_TEST(test_state_file_leftovers)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char state[TL_PATH_MAX + 32], over[TL_PATH_MAX + 64];
	json_t *root, *st, *e;
	pid_t left, decoy, srv, k1, k2;
	int lport, dport, port;
	bool ok;

	tl_daemon_init(&d, 2);
	tl_model(&d, "m", "load_ms=20\nmem=4M\n");
	lport = d.port_min + 90;
	dport = d.port_min + 91;
	left = spawn_standin(&d, "m", lport, &k1);
	decoy = spawn_standin(&d, "m", dport, &k2);
	tl_track(left);
	tl_track(decoy);
	TL_WAIT_UNTIL(ok, tl_http_status(lport, "/health", 500) == 200 &&
	    tl_http_status(dport, "/health", 500) == 200, 5000);
	TL_ASSERT(ok, "the hand-made stand-ins did not get ready");

	snprintf(state, sizeof(state), "%s/poold.state", d.dir);
	root = json_pack("{s:i, s:[{s:s, s:i, s:I, s:i},"
	    " {s:s, s:i, s:I, s:i}]}", "version", 1, "servers",
	    "model", "m", "pid", (int)left,
	    "start", (json_int_t)tl_proc_starttime(left), "port", lport,
	    "model", "m", "pid", (int)decoy,
	    "start", (json_int_t)tl_proc_starttime(decoy) + 1,
	    "port", dport);
	TL_ASSERT(root != NULL && json_dump_file(root, state, 0) == 0,
	    "cannot write %s", state);
	json_decref(root);

	snprintf(over, sizeof(over), "{\"state_file\":\"%s\"}", state);
	tl_daemon_start(&d, over);
	TL_WAIT_UNTIL(ok, !tl_pid_exists(left), 100);
	TL_ASSERT(ok, "leftover %d recorded in the state file still exists "
	    "after poold serves (state %c)", (int)left,
	    tl_proc_state(left));
	TL_ASSERT(tl_pid_exists(decoy) && tl_proc_state(decoy) != 'Z',
	    "poold killed pid %d whose start time does not match the state "
	    "file (a reused pid)", (int)decoy);

	c = tl_connect(&d);
	tl_acquire_ok(c, "m", false, &port);
	st = tl_stats(&d, c);
	srv = tl_server_pid(st, "m");
	json_decref(st);
	root = NULL;
	TL_WAIT_UNTIL(ok, (e = load_state_entry(state, srv, &root)) != NULL,
	    1000);
	TL_ASSERT(ok, "the state file does not record server %d: %s",
	    (int)srv, tl_dump(root));
	TL_ASSERT(tl_str(e, "model") && strcmp(tl_str(e, "model"), "m") == 0 &&
	    tl_int(e, "port") == port &&
	    (unsigned long long)tl_int(e, "start") == tl_proc_starttime(srv),
	    "state file entry of %d: %s (port %d, start time %llu)", (int)srv,
	    tl_dump(e), port, tl_proc_starttime(srv));
	json_decref(root);

	TL_ASSERT(tl_pid_exists(decoy) && tl_proc_state(decoy) != 'Z',
	    "poold killed the decoy %d later on", (int)decoy);
	kill(decoy, SIGKILL);
	TL_ASSERT(tl_wait_gone(decoy, 2000), "decoy does not die");
	waitpid(k1, NULL, 0);
	waitpid(k2, NULL, 0);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 3. slowloris -------------------------------------------------- */

#define DRIP_CONNS	1000
#define DRIP_TEXT	"{\"cmd\":\"STATS\",\"id\":\"slow drip\"," \
			"\"x\":\"xxxx\""

static void
raise_nofile(rlim_t want)
{
	struct rlimit rl;

	TL_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit: %s",
	    strerror(errno));
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		rl.rlim_max = want;	/* root may raise the hard limit */
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	TL_ASSERT(rl.rlim_cur >= want, "RLIMIT_NOFILE is %llu, need %llu",
	    (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/*
 * One-sided and loose: on an idle machine STATS answers in 1-10 ms here,
 * but a loaded 2-core machine took 75 and 109 ms; what this guards is
 * that no drip holds poold up (a blocking read would never answer).
 */
#define DRIP_LIMIT_MS	1000

/*
 * Pass: 1,000 connections (max_clients 2000; poold inherits our raised
 * RLIMIT_NOFILE) each drip a request one byte at a time, never a whole
 * line: poold accepts all of them (STATS clients), and a normal client's
 * STATS, sampled after every drip round (one byte on each of the 1,000),
 * answers within DRIP_LIMIT_MS every time and within a quarter of it in
 * the median (three times that when poold runs under ASan).
 */
START_TEST(test_slow_drip)
{
	static const char text[] = DRIP_TEXT;
	struct tl_daemon d;
	struct tl_conn *mon;
	long long lat[sizeof(text)], t0;
	json_t *st;
	int *fds, i, r, nlat = 0;
	long long limit;
	bool ok;

	raise_nofile(DRIP_CONNS * 2 + 256);
	tl_daemon_init(&d, 3);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, "{\"max_clients\":2000}");
	mon = tl_connect(&d);
	tl_acquire_ok(mon, "a", false, NULL);
	fds = calloc(DRIP_CONNS, sizeof(*fds));
	TL_ASSERT(fds != NULL, "out of memory");
	for (i = 0; i < DRIP_CONNS; i++) {
		fds[i] = tl_connect_fd(d.sock);
		TL_ASSERT(fds[i] != -1, "connection %d: %s", i,
		    strerror(errno));
		set_nonblock(fds[i]);
	}
	TL_WAIT_UNTIL(ok, tl_stats_int(&d, mon, "clients") >= DRIP_CONNS + 1,
	    5000);
	TL_ASSERT(ok, "poold has %lld clients, expected %d",
	    tl_stats_int(&d, mon, "clients"), DRIP_CONNS + 1);

	for (r = 0; r < (int)sizeof(text) - 1; r++) {
		for (i = 0; i < DRIP_CONNS; i++)
			(void)send(fds[i], text + r, 1,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
		t0 = tl_now_ms();
		st = tl_stats(&d, mon);
		lat[nlat++] = tl_now_ms() - t0;
		json_decref(st);
		tl_sleep_ms(10);
	}
	qsort(lat, (size_t)nlat, sizeof(lat[0]), tl_cmp_ll);
	limit = poold_sanitized(&d) ? 3 * DRIP_LIMIT_MS : DRIP_LIMIT_MS;
	fprintf(stderr, "slow drip: %d connections, %d rounds: STATS median "
	    "%lld ms, max %lld ms (limits %lld, median %lld)\n", DRIP_CONNS,
	    nlat, lat[nlat / 2], lat[nlat - 1], limit, limit / 4);
	TL_ASSERT(lat[nlat - 1] < limit && lat[nlat / 2] < limit / 4,
	    "STATS took %lld ms (median %lld) with %d slow-drip connections;"
	    " limits %lld ms, median %lld ms", lat[nlat - 1], lat[nlat / 2],
	    DRIP_CONNS, limit, limit / 4);
	TL_ASSERT(tl_stats_int(&d, mon, "clients") >= DRIP_CONNS + 1,
	    "poold dropped slow-drip clients before any timeout");
	for (i = 0; i < DRIP_CONNS; i++)
		close(fds[i]);
	free(fds);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

#define LT_CONNS	50

/*
 * Depends on line_timeout (partial-line timeout).
 *
 * Pass: with "line_timeout": "1s", 50 connections that keep dripping one
 * byte of a line every 100 ms are all closed by poold within
 * line_timeout + 2.5 s of their first byte (room for a loaded machine;
 * without the timeout they would never be); a client connected as long but
 * silent (no partial line) is still served, and so is one that sent whole
 * lines; STATS clients is back to those two.
 */
START_TEST(test_line_timeout)
{
	static const char text[] = DRIP_TEXT DRIP_TEXT DRIP_TEXT;
	struct tl_daemon d;
	struct tl_conn *idle, *mon;
	long long t0, closed_at[LT_CONNS];
	int fds[LT_CONNS], i, r, open_n;

	tl_daemon_init(&d, 4);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, "{\"line_timeout\":\"1s\"}");
	idle = tl_connect(&d);
	mon = tl_connect(&d);
	for (i = 0; i < LT_CONNS; i++) {
		fds[i] = tl_connect_fd(d.sock);
		TL_ASSERT(fds[i] != -1, "connect: %s", strerror(errno));
		set_nonblock(fds[i]);
		closed_at[i] = -1;
	}
	t0 = tl_now_ms();
	for (r = 0, open_n = LT_CONNS; open_n > 0 &&
	    tl_now_ms() - t0 < 5000; r++) {
		for (i = 0; i < LT_CONNS; i++) {
			if (closed_at[i] >= 0)
				continue;
			if (peer_closed(fds[i]) ||
			    (send(fds[i], text + r % (sizeof(text) - 1), 1,
			    MSG_NOSIGNAL | MSG_DONTWAIT) == -1 &&
			    errno != EAGAIN)) {
				closed_at[i] = tl_now_ms() - t0;
				open_n--;
			}
		}
		if (r % 5 == 0)
			ping_ok(mon, 1000, "a client sending whole lines");
		tl_sleep_ms(100);
	}
	for (i = 0; i < LT_CONNS; i++) {
		TL_ASSERT(closed_at[i] >= 0, "slow-drip connection %d still "
		    "open after %lld ms; line_timeout is 1 s", i,
		    tl_now_ms() - t0);
		TL_ASSERT(closed_at[i] <= 3500, "slow-drip connection %d "
		    "closed only after %lld ms; line_timeout is 1 s", i,
		    closed_at[i]);
	}
	ping_ok(idle, 1000, "a silent client (no partial line)");
	TL_ASSERT(tl_stats_int(&d, mon, "clients") == 2,
	    "STATS clients should be 2 once the drippers are gone");
	for (i = 0; i < LT_CONNS; i++)
		close(fds[i]);
	tl_close(idle);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 4. clients that never read ----------------------------------- */

#define NOREAD_CONNS	8
#define RSS_LIMIT	(64 * MIB)

/*
 * Pass (outbuf_bytes 256K): 8 clients that flood STATS requests and never
 * read are each disconnected (their send fails, the peer closed) within
 * 10 s; poold's log says a client was dropped; STATS clients is back to 1;
 * poold's RSS, sampled all along, stays < 64 MB (under ASan, whose shadow
 * and quarantine count too: 64 MB above its RSS before the flood, with
 * the quarantine cut to 16 MB); the monitor's PING is answered within
 * 1 s throughout.
 */
START_TEST(test_never_reading_client)
{
	struct tl_daemon d;
	struct tl_conn *mon;
	char *flood;
	size_t flen, one;
	long long t0, rss, max_rss = 0, last_ping = 0, sent[NOREAD_CONNS];
	long long limit = RSS_LIMIT;
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[512];
	int fds[NOREAD_CONNS], i, alive;
	bool dead[NOREAD_CONNS];
	ssize_t n;

	tl_daemon_init(&d, 5);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=16",
	    asan ? asan : "", asan && asan[0] ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	tl_daemon_start(&d, "{\"outbuf_bytes\":\"256K\"}");
	mon = tl_connect(&d);
	/* Some activity, so a STATS reply is a few hundred bytes. */
	tl_acquire_ok(mon, "a", false, NULL);
	tl_acquire_ok(mon, "b", false, NULL);
	if (poold_sanitized(&d))
		limit = tl_proc_rss(d.pid) + RSS_LIMIT;
	one = strlen("{\"cmd\":\"STATS\"}\n");
	flen = one * 4096;
	flood = malloc(flen);
	TL_ASSERT(flood != NULL, "out of memory");
	for (i = 0; i < 4096; i++)
		memcpy(flood + (size_t)i * one, "{\"cmd\":\"STATS\"}\n", one);
	for (i = 0; i < NOREAD_CONNS; i++) {
		fds[i] = tl_connect_fd(d.sock);
		TL_ASSERT(fds[i] != -1, "connect: %s", strerror(errno));
		set_nonblock(fds[i]);
		dead[i] = false;
		sent[i] = 0;
	}
	t0 = tl_now_ms();
	alive = NOREAD_CONNS;
	while (alive > 0 && tl_now_ms() - t0 < 10000) {
		for (i = 0; i < NOREAD_CONNS; i++) {
			if (dead[i])
				continue;
			n = send(fds[i], flood, flen,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent[i] += n;
			else if (n == -1 && errno != EAGAIN &&
			    errno != EWOULDBLOCK && errno != EINTR) {
				dead[i] = true;
				alive--;
			}
		}
		if ((rss = tl_proc_rss(d.pid)) > max_rss)
			max_rss = rss;
		TL_ASSERT(rss < limit, "poold's RSS is %lld bytes with %d "
		    "clients not reading; limit %lld", rss, alive, limit);
		if (tl_now_ms() - last_ping > 200) {
			ping_ok(mon, 1000, "the monitor during the flood");
			last_ping = tl_now_ms();
		}
		tl_sleep_ms(5);
	}
	fprintf(stderr, "never-reading clients: max RSS of poold %lld KiB "
	    "(limit %lld KiB)\n", max_rss / 1024, limit / 1024);
	for (i = 0; i < NOREAD_CONNS; i++)
		TL_ASSERT(dead[i], "client %d, which never reads, is still "
		    "connected 10 s later (it sent %lld bytes)", i, sent[i]);
	TL_ASSERT(tl_log_has(&d, "dropped") || tl_log_has(&d, "unread"),
	    "poold's log does not say why it dropped the clients");
	TL_ASSERT(tl_stats_int(&d, mon, "clients") == 1,
	    "STATS clients should be 1 once the flooders are dropped");
	for (i = 0; i < NOREAD_CONNS; i++)
		close(fds[i]);
	free(flood);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 5. many children killed at once ------------------------------ */

#define MASS_KILL	20

/*
 * Pass: 20 ready servers SIGKILLed at the same moment → within 2 s STATS
 * lists no server and used is 0, counters.crashes went up by exactly 20
 * and each model's crashes is 1; none of the 20 pids exists any more and
 * no child of poold is a zombie.
 */
START_TEST(test_mass_kill)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	long long ids[MASS_KILL], crashes0;
	pid_t pids[MASS_KILL];
	json_t *st, *rep, *m;
	char name[16];
	int i;
	bool ok;

	tl_daemon_init(&d, 6);
	for (i = 0; i < MASS_KILL; i++) {
		snprintf(name, sizeof(name), "z%02d", i);
		tl_model(&d, name, "load_ms=30\nmem=4M\n");
	}
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	mon = tl_connect(&d);
	for (i = 0; i < MASS_KILL; i++) {
		snprintf(name, sizeof(name), "z%02d", i);
		ids[i] = tl_send_req(c, tl_acquire_req(name, 15000, false));
	}
	for (i = 0; i < MASS_KILL; i++) {
		rep = tl_recv_id(c, ids[i], 20000);
		TL_ASSERT(tl_ok(rep), "ACQUIRE z%02d: %s", i, tl_dump(rep));
		json_decref(rep);
	}
	st = tl_stats(&d, mon);
	crashes0 = tl_int(st, "counters.crashes");
	for (i = 0; i < MASS_KILL; i++) {
		snprintf(name, sizeof(name), "z%02d", i);
		pids[i] = tl_server_pid(st, name);
		TL_ASSERT(pids[i] > 0, "%s not running: %s", name, tl_dump(st));
	}
	json_decref(st);
	for (i = 0; i < MASS_KILL; i++)
		kill(pids[i], SIGKILL);
	TL_WAIT_UNTIL(ok, tl_stats_int(&d, mon, "running") == 0, 2000);
	TL_ASSERT(ok, "servers still listed 2 s after they were killed");
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_int(st, "memory.used") == 0 &&
	    tl_int(st, "counters.crashes") == crashes0 + MASS_KILL,
	    "expected %d crashes recorded and nothing used: %s", MASS_KILL,
	    tl_dump(st));
	for (i = 0; i < MASS_KILL; i++) {
		snprintf(name, sizeof(name), "z%02d", i);
		m = entry_of(st, "models", name);
		TL_ASSERT(m != NULL && tl_int(m, "crashes") == 1,
		    "model %s should show 1 crash: %s", name, tl_dump(m));
		TL_ASSERT(!tl_pid_exists(pids[i]), "killed server %d still "
		    "exists (state %c)", (int)pids[i], tl_proc_state(pids[i]));
	}
	json_decref(st);
	TL_ASSERT(tl_zombie_children(d.pid) == 0, "poold has %d zombies",
	    tl_zombie_children(d.pid));
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 6. exec failures ---------------------------------------------- */

/*
 * Pass: ACQUIRE of a model whose command does not exist (an absolute
 * path, and a bare name not in PATH) or is not executable gets
 * start_failed at once (under 2 s, where a health check would take its
 * whole timeout), its message naming the errno ("No such
 * file or directory", "Permission denied"); counters.start_failures
 * counts 3, no server is listed, used is 0, poold has no child, and it
 * serves on (a good model starts).
 */
START_TEST(test_exec_failures)
{
	static const struct { const char *model, *err; } cases[] = {
		{ "ghost", "No such file or directory" },
		{ "nopath", "No such file or directory" },
		{ "noexec", "Permission denied" },
	};
	struct tl_daemon d;
	struct tl_conn *c;
	char noexec[TL_PATH_MAX + 32], over[4 * TL_PATH_MAX];
	long long t0, dt;
	json_t *rep, *st;
	size_t i;

	tl_daemon_init(&d, 7);
	tl_model(&d, "ghost", "mem=4M\n");
	tl_model(&d, "nopath", "mem=4M\n");
	tl_model(&d, "noexec", "mem=4M\n");
	tl_model(&d, "good", "load_ms=20\nmem=4M\n");
	snprintf(noexec, sizeof(noexec), "%s/not-executable", d.dir);
	tl_write_file(noexec, "#!/bin/sh\nexit 0\n");
	chmod(noexec, 0644);
	snprintf(over, sizeof(over), "{\"models\":{"
	    "\"ghost\":{\"command\":[\"/nonexistent/llama-server\",\"-m\","
	    "\"{path}\",\"--port\",\"{port}\"]},"
	    "\"nopath\":{\"command\":[\"no-such-llama-server-here\",\"-m\","
	    "\"{path}\",\"--port\",\"{port}\"]},"
	    "\"noexec\":{\"command\":[\"%s\",\"-m\",\"{path}\",\"--port\","
	    "\"{port}\"]}}}", noexec);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t0 = tl_now_ms();
		rep = tl_acquire(c, cases[i].model, 10000, true);
		dt = tl_now_ms() - t0;
		tl_expect_error(rep, "start_failed", NULL, cases[i].model);
		TL_ASSERT(strstr(tl_str(rep, "message"), cases[i].err) != NULL,
		    "%s: start_failed without \"%s\": %s", cases[i].model,
		    cases[i].err, tl_dump(rep));
		TL_ASSERT(dt < 2000, "%s: start_failed after %lld ms; an exec "
		    "failure must show at once, not at the health check's "
		    "timeout", cases[i].model, dt);
		json_decref(rep);
	}
	st = tl_stats(&d, c);
	TL_ASSERT(tl_int(st, "counters.start_failures") == 3 &&
	    tl_int(st, "memory.used") == 0 && tl_int(st, "running") == 0,
	    "after 3 exec failures: %s", tl_dump(st));
	json_decref(st);
	TL_ASSERT(tl_wait_no_zombies(d.pid, 1000) &&
	    tl_children(d.pid, (pid_t[4]){0}, 4) == 0,
	    "poold has children left after exec failures");
	tl_acquire_ok(c, "good", false, NULL);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 7. fork failing ----------------------------------------------- */

/*
 * fork() fails with EAGAIN when a pids cgroup is full, for root too
 * (RLIMIT_NPROC does not bind root).  cgroup v1 "pids" or v2 with the
 * pids controller.
 */
struct cgroup {
	char	dir[512];
	char	home_procs[512];	/* where to move poold back */
};

static int
cg_write(const char *dir, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
cg_write(const char *dir, const char *file, const char *fmt, ...)
{
	char path[640], buf[64];
	va_list ap;
	int fd, n, rc;

	if (file != NULL)
		snprintf(path, sizeof(path), "%s/%s", dir, file);
	else
		snprintf(path, sizeof(path), "%s", dir);
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	rc = write(fd, buf, (size_t)n) == n ? 0 : -1;
	close(fd);
	return rc;
}

static long long
cg_read(const char *dir, const char *file)
{
	char path[640];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* Our own cgroup in the hierarchy: v1 "N:pids:/p", v2 "0::/p". */
static bool
cg_own_path(bool v2, char *out, size_t len)
{
	char line[512], *p;
	FILE *f;
	bool found = false;

	if ((f = fopen("/proc/self/cgroup", "r")) == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((p = strchr(line, ':')) == NULL)
			continue;
		p++;
		if ((v2 && strncmp(p, ":", 1) == 0) ||
		    (!v2 && strncmp(p, "pids:", 5) == 0)) {
			p = strchr(p, ':') + 1;
			snprintf(out, len, "%s", strcmp(p, "/") == 0 ? "" : p);
			found = true;
		}
	}
	fclose(f);
	return found;
}

static bool
cg_make(struct cgroup *cg, char *why, size_t len)
{
	char own[256], base[400];
	bool v2;

	for (int tryv2 = 0; tryv2 < 2; tryv2++) {
		v2 = tryv2 == 1;
		if (!cg_own_path(v2, own, sizeof(own)))
			continue;
		snprintf(base, sizeof(base), "%s%s", v2 ? "/sys/fs/cgroup" :
		    "/sys/fs/cgroup/pids", own);
		if (v2)
			(void)cg_write(base, "cgroup.subtree_control", "+pids");
		snprintf(cg->dir, sizeof(cg->dir), "%s/poold-faults-%d", base,
		    (int)getpid());
		snprintf(cg->home_procs, sizeof(cg->home_procs),
		    "%s/cgroup.procs", base);
		if (mkdir(cg->dir, 0755) == -1 && errno != EEXIST) {
			snprintf(why, len, "mkdir %s: %s", cg->dir,
			    strerror(errno));
			continue;
		}
		if (cg_read(cg->dir, "pids.current") >= 0)
			return true;
		snprintf(why, len, "%s has no pids controller", cg->dir);
		rmdir(cg->dir);
	}
	if (why[0] == '\0')
		snprintf(why, len, "no pids cgroup (v1 or v2) found");
	return false;
}

static void
cg_remove(struct cgroup *cg)
{
	for (int i = 0; i < 100 && rmdir(cg->dir) == -1 && errno == EBUSY; i++)
		tl_sleep_ms(10);
}

/*
 * Pass: with poold alone in a pids cgroup whose pids.max is its current
 * task count, fork fails (EAGAIN), which is poold's own lack of
 * resources, not the model's failure: the start is put off and tried
 * again each second, so ACQUIRE waits to its deadline and gets busy, its
 * message naming fork and "Resource temporarily unavailable"; no server is
 * listed, used is 0, no failed start is counted; PING still answers.
 * Once the limit is lifted, an ACQUIRE starts the server (no backoff).
 *
 * Where no pids cgroup can be made (not root, no controller), fork
 * failure cannot be injected from outside: a SKIP (a failure in CI).
 */
START_TEST(test_fork_fails)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct cgroup cg;
	char why[600] = "";
	long long t0, dt, cur;
	json_t *rep, *st;
	const char *msg;

	tl_daemon_init(&d, 8);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	if (!cg_make(&cg, why, sizeof(why))) {
		tl_skip("fork_fail", "fork failure cannot be injected here: "
		    "%s", why);
		tl_close(c);
		tl_daemon_finish(&d);
		return;
	}
	TL_ASSERT(cg_write(cg.dir, "cgroup.procs", "%d", (int)d.pid) == 0,
	    "cannot move poold into %s: %s", cg.dir, strerror(errno));
	cur = cg_read(cg.dir, "pids.current");
	TL_ASSERT(cur >= 1 && cg_write(cg.dir, "pids.max", "%lld", cur) == 0,
	    "cannot set %s/pids.max: %s", cg.dir, strerror(errno));

	t0 = tl_now_ms();
	rep = tl_acquire(c, "a", 2500, false);
	dt = tl_now_ms() - t0;
	st = tl_stats(&d, c);
	cg_write(cg.dir, "pids.max", "max");
	cg_write(cg.home_procs, NULL, "%d", (int)d.pid);
	cg_remove(&cg);
	/* poold's own lack of processes is not the model's failure: the
	 * start is put off and tried again, the wait ends busy, and the
	 * reason names fork and EAGAIN. */
	tl_expect_error(rep, "busy", NULL, "ACQUIRE while fork fails");
	msg = tl_str(rep, "message");
	TL_ASSERT(strstr(msg, "fork") != NULL &&
	    strstr(msg, strerror(EAGAIN)) != NULL &&
	    strstr(msg, "not the model's fault") != NULL,
	    "busy should name fork, EAGAIN and poold's resources: %s",
	    tl_dump(rep));
	TL_ASSERT(dt >= 2000, "busy after %lld ms, before the deadline", dt);
	json_decref(rep);
	TL_ASSERT(tl_int(st, "running") == 0 && tl_int(st, "memory.used") == 0,
	    "a server is accounted after fork failed: %s", tl_dump(st));
	TL_ASSERT(tl_int(st, "counters.start_failures") == 0 &&
	    tl_int(st, "counters.resource_failures") >= 2,
	    "fork failures should be put off (tried again), not failed "
	    "starts: %s", tl_dump(st));
	json_decref(st);
	ping_ok(c, 1000, "after fork failed");

	/* No backoff: the next try after the put-off period starts it. */
	tl_acquire_ok(c, "a", false, NULL);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 8. EMFILE at accept ------------------------------------------- */

#define EMFILE_SPARE	20
#define EMFILE_CONNS	40
#define EMFILE_BACKLOG	5

/* Each of n connections gets one reply to its PING within 10 s: ok, or
 * the busy of a refused client.  Returns how many were refused. */
static int
answered_or_refused(struct tl_conn **cs, const long long *ids, int n)
{
	long long t0 = tl_now_ms();
	int i, refused = 0;
	json_t *rep;

	for (i = 0; i < n; i++) {
		rep = tl_recv(cs[i], t0 + 10000 - tl_now_ms());
		TL_ASSERT(rep != NULL, "connection %d got no reply to its PING "
		    "in 10 s (neither served nor refused)", i);
		if (!tl_ok(rep)) {
			tl_expect_error(rep, "busy", NULL, "a refused client");
			refused++;
		} else
			TL_ASSERT(tl_int(rep, "id") == ids[i], "connection %d: "
			    "%s", i, tl_dump(rep));
		json_decref(rep);
	}
	return refused;
}

/*
 * Pass, with RLIMIT_NOFILE of a running poold lowered (prlimit):
 *
 * 20 spare descriptors, fewer than the reserve poold keeps for starts:
 * 40 new connections are each answered (refused with busy, not left
 * hanging), and an ACQUIRE of a cold model from an existing client still
 * starts its server (clients are refused before starts fail).
 *
 * No spare descriptor at all: accept fails with EMFILE, which poold logs
 * and pauses on without spinning (CPU time over 2 s < 0.2 s); the
 * existing client's PING is answered; a cold start fails for lack of
 * descriptors, which is poold's, not the model's: busy at the deadline,
 * naming "Too many open files", no failed start counted, and a's health
 * checks (every second) wait for a socket: a is not stopped as
 * unhealthy.  Once the
 * limit is back, the connections waiting in the backlog are served
 * (within 10 s) and the model starts at once (no backoff).
 */
START_TEST(test_emfile_accept)
{
	struct tl_daemon d;
	struct tl_conn *mon, *cs[EMFILE_CONNS];
	struct rlimit old, lim;
	long long ids[EMFILE_CONNS], tick0, used_ticks, t0;
	long hz = sysconf(_SC_CLK_TCK);
	int i, refused;
	bool logged;
	json_t *rep, *st;

	tl_daemon_init(&d, 9);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	/* Checks of a's server fall in the time without descriptors. */
	tl_daemon_start(&d, "{\"health_interval\": \"1s\"}");
	mon = tl_connect(&d);
	ping_ok(mon, 1000, "before the limit");
	TL_ASSERT(prlimit(d.pid, RLIMIT_NOFILE, NULL, &old) == 0,
	    "prlimit: %s", strerror(errno));

	/* The soft limit only: raising a hard one back takes a privilege
	 * a sandboxed root may not have. */
	lim.rlim_max = old.rlim_max;
	lim.rlim_cur = nofile_for_spare(d.pid, EMFILE_SPARE);
	TL_ASSERT(prlimit(d.pid, RLIMIT_NOFILE, &lim, NULL) == 0,
	    "prlimit: %s", strerror(errno));
	for (i = 0; i < EMFILE_CONNS; i++) {
		/* A refused client may be closed before its PING is sent:
		 * a failed send is fine, the busy line is there to read. */
		cs[i] = tl_connect(&d);
		ids[i] = 1;
		(void)!send(cs[i]->fd, "{\"cmd\":\"PING\",\"id\":1}\n", 22,
		    MSG_NOSIGNAL);
	}
	refused = answered_or_refused(cs, ids, EMFILE_CONNS);
	TL_ASSERT(refused > 0, "with %d spare descriptors all %d new clients "
	    "were let in: no reserve is kept for starts", EMFILE_SPARE,
	    EMFILE_CONNS);
	for (i = 0; i < EMFILE_CONNS; i++)
		tl_close(cs[i]);
	tl_acquire_ok(mon, "a", false, NULL);

	lim.rlim_cur = nofile_for_spare(d.pid, 0);
	TL_ASSERT(prlimit(d.pid, RLIMIT_NOFILE, &lim, NULL) == 0,
	    "prlimit: %s", strerror(errno));
	for (i = 0; i < EMFILE_BACKLOG; i++) {
		cs[i] = tl_connect(&d);
		ids[i] = tl_send_req(cs[i], json_pack("{s:s}", "cmd", "PING"));
	}
	TL_WAIT_UNTIL(logged, tl_log_has(&d, strerror(EMFILE)), 5000);
	TL_ASSERT(logged, "poold's log does not mention \"%s\"", strerror(EMFILE));
	rep = tl_acquire(mon, "b", 1500, false);
	tl_expect_error(rep, "busy", NULL, "a cold start out of descriptors");
	TL_ASSERT(strstr(tl_str(rep, "message"), strerror(EMFILE)) != NULL,
	    "busy should say \"%s\": %s", strerror(EMFILE), tl_dump(rep));
	json_decref(rep);
	tick0 = (long long)proc_cpu_ticks(d.pid);
	tl_sleep_ms(2000);
	used_ticks = (long long)proc_cpu_ticks(d.pid) - tick0;
	TL_ASSERT(used_ticks * 5 < hz, "poold used %lld ticks (of %ld/s) in "
	    "2 s while out of descriptors: it spins", used_ticks, hz);
	ping_ok(mon, 1000, "an existing client, out of descriptors");
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_int(st, "counters.start_failures") == 0 &&
	    tl_int(st, "counters.unhealthy_stops") == 0,
	    "poold's lack of descriptors counted as the model's failure: %s",
	    tl_dump(st));
	json_decref(st);

	TL_ASSERT(prlimit(d.pid, RLIMIT_NOFILE, &old, NULL) == 0,
	    "prlimit back to %llu: %s", (unsigned long long)old.rlim_cur,
	    strerror(errno));
	t0 = tl_now_ms();
	for (i = 0; i < EMFILE_BACKLOG; i++) {
		rep = tl_recv_id(cs[i], ids[i], t0 + 10000 - tl_now_ms());
		TL_ASSERT(rep != NULL && tl_ok(rep), "connection %d waiting in "
		    "the backlog not served 10 s after the limit was raised: "
		    "%s", i, tl_dump(rep));
		json_decref(rep);
		tl_close(cs[i]);
	}
	tl_acquire_ok(mon, "b", false, NULL);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 9. log folder on a full file system --------------------------- */

/*
 * A 64 KiB tmpfs, mounted in a mount namespace of this test process
 * (poold, forked after, shares it; it vanishes with the test).  Returns
 * false if it cannot be made (not root).
 */
static bool
mount_tiny_tmpfs(const char *dir)
{
	if (unshare(CLONE_NEWNS) == -1)
		return false;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1)
		return false;
	return mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0755") == 0;
}

/* Writes into dir/filler until the file system is full. */
static void
fill_up(const char *dir)
{
	char path[TL_PATH_MAX + 32], buf[4096];
	int fd;

	memset(buf, 'x', sizeof(buf));
	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	TL_ASSERT(fd != -1, "%s: %s", path, strerror(errno));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	while (write(fd, buf, 1) > 0)
		;
	TL_ASSERT(errno == ENOSPC, "filling %s: %s", dir, strerror(errno));
	close(fd);
}

static bool
file_has(const char *path, const char *needle)
{
	char buf[65536];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/*
 * Pass: with log_dir on a full file system (a filled 64 KiB tmpfs; if
 * that cannot be mounted, each log is a symlink to /dev/full): a server
 * that writes 160 KiB to its output (one line per SIGTERM it ignores)
 * keeps running and answers /health within 1 s (poold drained its pipe
 * though the log could not take it); a crash_start server's start_failed
 * still quotes its last output; poold logs "No space left on device" and
 * answers PING.  Once space is freed, a restarted server's output is in
 * its log again.
 */
START_TEST(test_log_dir_full)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char logs[TL_PATH_MAX + 16], path[TL_PATH_MAX + 64];
	char over[TL_PATH_MAX + 128];
	long long t0, w;
	json_t *rep, *st;
	pid_t chatty;
	int port, i;
	bool tmpfs, ok;

	tl_daemon_init(&d, 10);
	tl_model(&d, "chatty", "load_ms=20\nmem=4M\nmode=ignore_term\n");
	tl_model(&d, "crashy", "load_ms=20\nmem=4M\nmode=crash_start\n");
	tl_model(&d, "plain", "load_ms=20\nmem=4M\n");
	snprintf(logs, sizeof(logs), "%s/logs", d.dir);
	TL_ASSERT(mkdir(logs, 0755) == 0, "mkdir %s: %s", logs,
	    strerror(errno));
	if ((tmpfs = mount_tiny_tmpfs(logs)))
		fill_up(logs);
	else {
		tl_skip("log_full_tmpfs", "no tmpfs to fill (%s); the logs "
		    "are symlinks to /dev/full instead", strerror(errno));
		for (i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s/%s.log", logs,
			    (const char *[]){ "chatty", "crashy", "plain" }[i]);
			TL_ASSERT(symlink("/dev/full", path) == 0,
			    "symlink: %s", strerror(errno));
		}
	}
	snprintf(over, sizeof(over), "{\"log_dir\":\"%s\",\"stop_timeout\":"
	    "\"1s\"}", logs);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);

	tl_acquire_ok(c, "chatty", false, &port);
	st = tl_stats(&d, c);
	chatty = tl_server_pid(st, "chatty");
	json_decref(st);
	t0 = tl_now_ms();
	for (i = 0; (w = proc_wchar(chatty)) < 160 * 1024 &&
	    tl_now_ms() - t0 < 8000; i++) {
		kill(chatty, SIGTERM);
		if (i % 20 == 19)
			tl_sleep_ms(1);
	}
	TL_ASSERT(w >= 160 * 1024, "the server wrote only %lld bytes in 8 s "
	    "(%d SIGTERMs): is its output pipe drained?", w, i);
	TL_ASSERT(tl_http_status(port, "/health", 1000) == 200,
	    "the server stopped answering after writing %lld bytes to a "
	    "full log folder", w);
	TL_ASSERT(tl_log_has(&d, strerror(ENOSPC)),
	    "poold's log does not say \"%s\"", strerror(ENOSPC));

	rep = tl_acquire(c, "crashy", 5000, false);
	tl_expect_error(rep, "start_failed", NULL,
	    "crash_start, log folder full");
	TL_ASSERT(strstr(tl_str(rep, "message"), "cannot load model") != NULL,
	    "start_failed lost the server's last output: %s", tl_dump(rep));
	json_decref(rep);
	ping_ok(c, 1000, "with the log folder full");

	tl_acquire_ok(c, "plain", false, NULL);
	snprintf(path, sizeof(path), "%s/plain.log", logs);
	if (tmpfs) {
		snprintf(over, sizeof(over), "%s/filler", logs);
		unlink(over);
	} else {
		unlink(path);
		tl_write_file(path, "%s", "");
	}
	rep = tl_evict(c, "plain", false, 5000);
	TL_ASSERT(tl_ok(rep), "EVICT plain: %s", tl_dump(rep));
	json_decref(rep);
	tl_acquire_ok(c, "plain", false, NULL);
	TL_WAIT_UNTIL(ok, file_has(path, "loading"), 1000);
	TL_ASSERT(ok, "after space was freed, the "
	    "restarted server's output is not in %s", path);

	tl_close(c);
	/* Lazily: the servers' logs are still open on it. */
	if (tmpfs)
		umount2(logs, MNT_DETACH);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 10. crash loop → failed --------------------------------------- */

static long long
starts_of(struct tl_daemon *d, struct tl_conn *mon)
{
	return tl_counter(d, mon, "starts");
}

/* ACQUIRE crash: start_failed; *spawned whether a start was made. */
static long long
acquire_crash(struct tl_daemon *d, struct tl_conn *c, struct tl_conn *mon,
    bool *spawned, const char *what)
{
	long long s0 = starts_of(d, mon), t0 = tl_now_ms(), dt;
	json_t *rep;

	rep = tl_acquire(c, "crash", 10000, true);
	dt = tl_now_ms() - t0;
	tl_expect_error(rep, "start_failed", NULL, what);
	json_decref(rep);
	*spawned = starts_of(d, mon) > s0;
	return dt;
}

/*
 * Depends on max_failures and failed_cooldown.
 *
 * Pass (max_failures 3, failed_cooldown 30s): a crash_start model is
 * started at once, again only ≥ 1 s after the 1st failure, again only
 * ≥ 2 s after the 2nd (ACQUIREs in between fail at once, nothing
 * spawned); after the 3rd failure it is "failed": MODELS shows state
 * "failed", STATS models[] failures 3 and last_error quoting the server's
 * output ("cannot load model"); 4.2 s later (past where a 4 s backoff
 * would end) an ACQUIRE still fails at once (under 2 s), nothing spawned, the
 * message saying "failed"; EVICT of the model answers ok and the next
 * ACQUIRE spawns again.
 */
START_TEST(test_crash_loop_failed)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	long long tf, dt, s0, t0;
	json_t *st, *m, *rep;
	bool spawned;

	tl_daemon_init(&d, 11);
	tl_model(&d, "crash", "mem=4M\nmode=crash_start\ncrash_after_ms=20\n");
	tl_daemon_start(&d, "{\"max_failures\":3,\"failed_cooldown\":\"30s\"}");
	c = tl_connect(&d);
	mon = tl_connect(&d);

	acquire_crash(&d, c, mon, &spawned, "1st start");
	tf = tl_now_ms();
	TL_ASSERT(spawned, "the 1st ACQUIRE spawned nothing");
	tl_sleep_ms(tf + 300 - tl_now_ms());
	dt = acquire_crash(&d, c, mon, &spawned, "0.3 s after 1st failure");
	TL_ASSERT(!spawned && dt < 500, "spawned (%d) or slow (%lld ms) "
	    "0.3 s into a 1 s backoff", spawned, dt);
	tl_sleep_ms(tf + 1100 - tl_now_ms());
	acquire_crash(&d, c, mon, &spawned, "1.1 s after 1st failure");
	tf = tl_now_ms();
	TL_ASSERT(spawned, "no start 1.1 s after the 1st failure");
	tl_sleep_ms(tf + 1200 - tl_now_ms());
	acquire_crash(&d, c, mon, &spawned, "1.2 s after 2nd failure");
	TL_ASSERT(!spawned, "spawned 1.2 s after the 2nd failure: the "
	    "backoff did not double");
	tl_sleep_ms(tf + 2100 - tl_now_ms());
	acquire_crash(&d, c, mon, &spawned, "2.1 s after 2nd failure");
	tf = tl_now_ms();
	TL_ASSERT(spawned, "no start 2.1 s after the 2nd failure");

	rep = tl_call(mon, json_pack("{s:s}", "cmd", "MODELS"),
	    TL_REPLY_TIMEOUT_MS);
	m = entry_of(rep, "models", "crash");
	TL_ASSERT(m != NULL && tl_str(m, "state") != NULL &&
	    strcmp(tl_str(m, "state"), "failed") == 0,
	    "MODELS should show crash as failed after 3 failures: %s",
	    tl_dump(m));
	json_decref(rep);
	st = tl_stats(&d, mon);
	m = entry_of(st, "models", "crash");
	TL_ASSERT(m != NULL && tl_int(m, "failures") == 3 &&
	    tl_str(m, "last_error") != NULL &&
	    strstr(tl_str(m, "last_error"), "cannot load model") != NULL,
	    "STATS should show 3 failures and the last error: %s", tl_dump(m));
	json_decref(st);

	tl_sleep_ms(tf + 4200 - tl_now_ms());
	s0 = starts_of(&d, mon);
	t0 = tl_now_ms();
	rep = tl_acquire(c, "crash", 10000, true);
	dt = tl_now_ms() - t0;
	tl_expect_error(rep, "start_failed", NULL, "ACQUIRE of a failed model");
	TL_ASSERT(dt < 2000 && strstr(tl_str(rep, "message"), "fail") != NULL,
	    "a failed model's ACQUIRE (after %lld ms) should fail at once "
	    "saying so: %s", dt, tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(starts_of(&d, mon) == s0, "a failed model was spawned "
	    "4.2 s after its 3rd failure; the cooldown is 30 s");

	rep = tl_evict(mon, "crash", false, 5000);
	TL_ASSERT(tl_ok(rep), "EVICT of a failed model should clear it: %s",
	    tl_dump(rep));
	json_decref(rep);
	acquire_crash(&d, c, mon, &spawned, "after EVICT");
	TL_ASSERT(spawned, "EVICT did not clear the failed state");
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 11. process groups, and memory held until the reap ------------ */

/*
 * EVICTs model on ev and samples STATS on mon every 20 ms until the EVICT
 * is answered: while the server's pid exists (zombie included, i.e. not
 * yet reaped) it must be listed — hence accounted, as tl_stats checks
 * used = Σ mem — and in state "stopping".  Returns the EVICT's reply.
 */
static json_t *
evict_sampling(struct tl_daemon *d, struct tl_conn *ev, struct tl_conn *mon,
    const char *model, pid_t pid, int *samples)
{
	long long id, t0 = tl_now_ms();
	json_t *st, *s, *rep;
	bool listed;

	id = tl_send_req(ev, json_pack("{s:s, s:s, s:b}", "cmd", "EVICT",
	    "model", model, "force", true));
	*samples = 0;
	while ((rep = tl_recv_id(ev, id, 20)) == NULL) {
		TL_ASSERT(tl_now_ms() - t0 < 10000, "EVICT %s not answered "
		    "in 10 s", model);
		st = tl_stats(d, mon);
		s = tl_server(st, model);
		listed = s != NULL;
		/* STATS first, then the pid: a reap in between is fine. */
		TL_ASSERT(listed || !tl_pid_exists(pid), "%s: memory released "
		    "(not in STATS: %s) while its process %d is not reaped "
		    "(state %c)", model, tl_dump(st), (int)pid,
		    tl_proc_state(pid));
		TL_ASSERT(!listed ||
		    strcmp(tl_str(s, "state"), "stopping") == 0,
		    "%s being evicted is not stopping: %s", model, tl_dump(s));
		json_decref(st);
		(*samples)++;
	}
	return rep;
}

/*
 * Pass (stop_timeout 2s): EVICT of a server whose grandchild, in its
 * process group, ignores SIGTERM, and of a server that itself ignores
 * SIGTERM: in every STATS sample taken during the stop (every ~20 ms) a
 * server whose process is not yet reaped is listed as stopping, its
 * memory counted in used; when each EVICT is answered, its process is
 * gone and within 500 ms so is the grandchild (the whole group); used is
 * then 0.
 */
START_TEST(test_group_and_reap)
{
	struct tl_daemon d;
	struct tl_conn *c, *ev, *mon;
	pid_t pf, ps, gc, kids[8];
	json_t *st, *rep;
	int samples;
	bool ok;

	tl_daemon_init(&d, 12);
	tl_model(&d, "forker", "load_ms=20\nmem=4M\nmode=fork_child\n");
	tl_model(&d, "stubborn", "load_ms=20\nmem=4M\nmode=ignore_term\n");
	tl_daemon_start(&d, "{\"stop_timeout\":\"2s\"}");
	c = tl_connect(&d);
	ev = tl_connect(&d);
	mon = tl_connect(&d);

	tl_acquire_ok(c, "forker", true, NULL);
	tl_acquire_ok(c, "stubborn", true, NULL);
	st = tl_stats(&d, mon);
	pf = tl_server_pid(st, "forker");
	ps = tl_server_pid(st, "stubborn");
	json_decref(st);
	TL_WAIT_UNTIL(ok, tl_children(pf, kids, 8) > 0, 2000);
	TL_ASSERT(ok, "fork_child's grandchild not found");
	gc = kids[0];
	tl_track(gc);

	rep = evict_sampling(&d, ev, mon, "forker", pf, &samples);
	TL_ASSERT(tl_ok(rep), "EVICT forker: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(!tl_pid_exists(pf), "forker %d exists when its EVICT is "
	    "answered (state %c)", (int)pf, tl_proc_state(pf));
	TL_WAIT_UNTIL(ok, tl_pid_gone_reap(gc), 500);
	TL_ASSERT(ok, "grandchild %d (ignores SIGTERM) outlived its group's "
	    "leader by 500 ms (state %c)", (int)gc, tl_proc_state(gc));

	rep = evict_sampling(&d, ev, mon, "stubborn", ps, &samples);
	TL_ASSERT(tl_ok(rep), "EVICT stubborn: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(samples >= 20, "only %d samples during a 2 s stop", samples);
	TL_ASSERT(!tl_pid_exists(ps), "stubborn %d exists when its EVICT is "
	    "answered (state %c)", (int)ps, tl_proc_state(ps));
	TL_ASSERT(tl_stats_int(&d, mon, "memory.used") == 0,
	    "memory used after both servers were reaped");
	tl_close(c);
	tl_close(ev);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 12. bad input -------------------------------------------------- */

/* A line with an embedded NUL needs its length. */
#define WITH_LEN(s)	s, sizeof(s) - 1

/*
 * Pass: every malformed line below gets bad_request with a message (and
 * echoes the id where the line is a JSON object whose id is readable);
 * after each, a PING on the same connection is answered (the connection
 * carries on); a request nested exactly 8 deep is served; nothing was
 * spawned and poold serves on.
 */
START_TEST(test_bad_json)
{
	static const struct { const char *line; size_t len; int id; } bad[] = {
		/* duplicates, depth */
		{ "{\"cmd\":\"PING\",\"cmd\":\"STATS\",\"id\":1}", 0, -1 },
		{ "{\"cmd\":\"PING\",\"id\":2,\"id\":2}", 0, -1 },
		{ "{\"cmd\":\"PING\",\"id\":3,\"x\":[[[[[[[[1]]]]]]]]}", 0, 3 },
		{ "{\"cmd\":\"PING\",\"id\":4,\"x\":{\"a\":{\"b\":{\"c\":{\"d\":"
		  "{\"e\":{\"f\":{\"g\":{}}}}}}}}}", 0, 4 },
		/* NUL, UTF-8 */
		{ WITH_LEN("{\"cmd\":\"PING\",\"id\":5,\"x\":\"a\0b\"}"), -1 },
		{ WITH_LEN("\0{\"cmd\":\"PING\"}"), -1 },
		{ "{\"cmd\":\"PING\\u0000\",\"id\":6}", 0, -1 },
		{ "{\"cmd\":\"PING\",\"id\":7,\"x\":\"\xff\xfe\"}", 0, -1 },
		{ "{\"cmd\":\"PING\",\"id\":8,\"x\":\"\xc0\xaf\"}", 0, -1 },
		{ "{\"cmd\":\"PING\",\"id\":9,\"x\":\"\xed\xa0\x80\"}", 0, -1 },
		{ "{\"cmd\":\"PING\",\"id\":10,\"x\":\"\\ud800\"}", 0, -1 },
		{ "{\"cmd\":\"PI\xe2\x82\",\"id\":11}", 0, -1 },
		/* wrong types */
		{ "{\"cmd\":7,\"id\":12}", 0, 12 },
		{ "{\"cmd\":[\"PING\"],\"id\":13}", 0, 13 },
		{ "{\"cmd\":\"ACQUIRE\",\"model\":5,\"id\":14}", 0, 14 },
		{ "{\"cmd\":\"ACQUIRE\",\"model\":null,\"id\":15}", 0, 15 },
		{ "{\"cmd\":\"RELEASE\",\"lease\":\"1\",\"id\":16}", 0, 16 },
		{ "{\"cmd\":\"RELEASE\",\"lease\":1.0,\"id\":17}", 0, 17 },
		{ "{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"hold\":\"yes\","
		  "\"id\":18}", 0, 18 },
		{ "{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"hold\":1,\"id\":19}",
		  0, 19 },
		{ "{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"timeout_ms\":1.5,"
		  "\"id\":20}", 0, 20 },
		{ "{\"cmd\":\"EVICT\",\"model\":\"a\",\"force\":\"true\","
		  "\"id\":21}", 0, 21 },
		{ "{\"cmd\":\"PING\",\"id\":{\"x\":1}}", 0, -1 },
		{ "{\"cmd\":\"PING\",\"id\":[22]}", 0, -1 },
		/* out of range */
		{ "{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"timeout_ms\":-1,"
		  "\"id\":23}", 0, 23 },
		{ "{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"timeout_ms\":"
		  "99999999999999,\"id\":24}", 0, 24 },
		{ "{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"timeout_ms\":"
		  "99999999999999999999999,\"id\":25}", 0, -1 },
		{ "{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"timeout_ms\":1e400,"
		  "\"id\":26}", 0, -1 },
		{ "{\"cmd\":\"RELEASE\",\"lease\":0,\"id\":27}", 0, 27 },
		{ "{\"cmd\":\"RELEASE\",\"lease\":-5,\"id\":28}", 0, 28 },
		{ "{\"cmd\":\"RELEASE\",\"lease\":9223372036854775808,"
		  "\"id\":29}", 0, -1 },
		/* not an object, not JSON, missing fields */
		{ "[]", 0, -1 },
		{ "\"PING\"", 0, -1 },
		{ "42", 0, -1 },
		{ "null", 0, -1 },
		{ "{", 0, -1 },
		{ "}", 0, -1 },
		{ "{\"cmd\":\"PING\"} trailing", 0, -1 },
		{ "{\"cmd\":\"PING\"}{\"cmd\":\"PING\"}", 0, -1 },
		{ "{'cmd':'PING'}", 0, -1 },
		{ "{\"cmd\":\"PING\",}", 0, -1 },
		{ "{\"id\":30}", 0, 30 },
		{ "{\"cmd\":\"ACQUIRE\",\"id\":31}", 0, 31 },
		{ "{\"cmd\":\"RELEASE\",\"id\":32}", 0, 32 },
		{ "{\"cmd\":\"EVICT\",\"id\":33}", 0, 33 },
	};
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep;
	size_t i, len;
	char what[64];

	tl_daemon_init(&d, 13);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		len = bad[i].len ? bad[i].len : strlen(bad[i].line);
		snprintf(what, sizeof(what), "bad line %zu", i);
		TL_ASSERT(tl_send(c, bad[i].line, len) == 0 &&
		    tl_send(c, "\n", 1) == 0, "%s: send failed", what);
		rep = tl_recv(c, 5000);
		TL_ASSERT(rep != NULL, "%s (%.*s): no reply%s", what,
		    (int)len, bad[i].line, c->eof ? ", connection closed" : "");
		TL_ASSERT(strcmp(tl_err(rep), "bad_request") == 0,
		    "%s (%.*s): expected bad_request, got %s", what, (int)len,
		    bad[i].line, tl_dump(rep));
		tl_expect_error(rep, "bad_request", NULL, what);
		if (bad[i].id >= 0)
			TL_ASSERT(json_integer_value(json_object_get(rep,
			    "id")) == bad[i].id, "%s: id %d not echoed: %s",
			    what, bad[i].id, tl_dump(rep));
		json_decref(rep);
		ping_ok(c, 2000, what);
	}
	/* The limit itself is fine: 8 levels. */
	rep = tl_call(c, json_loads("{\"cmd\":\"PING\",\"x\":[[[[[[[1]]]]]]]}",
	    0, NULL), 2000);
	TL_ASSERT(tl_ok(rep), "a request 8 deep: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(tl_counter(&d, c, "starts") == 0, "bad lines spawned servers");
	tl_acquire_ok(c, "a", false, NULL);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Pass: ACQUIRE and EVICT of names that are paths or not names (../x,
 * /etc/passwd, sub/b, ../models/a, a 200-character name, .hidden, -rf,
 * "a b", ...) get unknown_model — bad_request only where the JSON itself
 * is refused (an escaped NUL) — even though a file each name could reach
 * by path exists (T/x.gguf, models/sub/b.gguf, models/<200 chars>.gguf,
 * models/.hidden.gguf ...); no server is spawned and the real model "a"
 * still starts.
 */
START_TEST(test_bad_names)
{
	char long_name[201], sub[TL_PATH_MAX + 16], path[TL_PATH_MAX + 300];
	const char *names[] = {
		"../x", "/etc/passwd", "sub/b", "../models/a", "./a", "a/",
		long_name, ".hidden", "-rf", "a b", "a\nb", "%2e%2e/x",
		"a\\b", "\xc3\xa9t\xc3\xa9", "a.gguf", "..", ".", "a\tb",
	};
	static const char nul_req[] =
	    "{\"cmd\":\"ACQUIRE\",\"model\":\"a\\u0000b\",\"id\":1}\n";
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep;
	size_t i;
	const char *e;

	tl_daemon_init(&d, 14);
	memset(long_name, 'n', 200);
	long_name[200] = '\0';
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, ".hidden", "load_ms=20\nmem=4M\n");
	tl_model(&d, "-rf", "load_ms=20\nmem=4M\n");
	tl_model(&d, long_name, "load_ms=20\nmem=4M\n");
	snprintf(path, sizeof(path), "%s/x.gguf", d.dir);
	tl_write_file(path, "load_ms=20\nmem=4M\n");
	snprintf(sub, sizeof(sub), "%s/sub", d.models_dir);
	TL_ASSERT(mkdir(sub, 0755) == 0, "mkdir: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/b.gguf", sub);
	tl_write_file(path, "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		rep = tl_acquire(c, names[i], 5000, false);
		TL_ASSERT(strcmp(tl_err(rep), "unknown_model") == 0,
		    "ACQUIRE '%.40s': expected unknown_model, got %s",
		    names[i], tl_dump(rep));
		json_decref(rep);
		rep = tl_evict(c, names[i], true, 5000);
		TL_ASSERT(strcmp(tl_err(rep), "unknown_model") == 0,
		    "EVICT '%.40s': expected unknown_model, got %s",
		    names[i], tl_dump(rep));
		json_decref(rep);
	}
	TL_ASSERT(tl_send(c, nul_req, strlen(nul_req)) == 0, "send");
	rep = tl_recv(c, 5000);	/* the id may be unreadable */
	e = tl_err(rep);
	TL_ASSERT(strcmp(e, "unknown_model") == 0 ||
	    strcmp(e, "bad_request") == 0, "a name with a NUL: %s",
	    tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(tl_counter(&d, c, "starts") == 0 &&
	    tl_children(d.pid, (pid_t[4]){0}, 4) == 0,
	    "a bad name spawned a server");
	tl_acquire_ok(c, "a", false, NULL);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 13. clients that vanish --------------------------------------- */

/*
 * Pass: a client holding 3 leases (2 on a, 1 on b) that closes with
 * replies still unread and SO_LINGER 0 (poold's read then fails with
 * ECONNRESET) has all 3 released within 1 s; a client process holding a
 * lease that is SIGKILLed has it released within 1 s; a then stops on a
 * plain EVICT (no lease left).
 */
START_TEST(test_abrupt_disconnect)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	struct linger lg = { 1, 0 };
	struct pollfd pfd;
	json_t *rep;
	char buf[4096], ch;
	int pp[2], fd, i;
	size_t n;
	pid_t kid;
	bool ok;

	tl_daemon_init(&d, 15);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, NULL);
	c = tl_connect(&d);
	mon = tl_connect(&d);
	tl_acquire_ok(c, "a", true, NULL);
	tl_acquire_ok(c, "a", true, NULL);
	tl_acquire_ok(c, "b", true, NULL);
	TL_ASSERT(tl_server_leases(&d, mon, "a") == 2 &&
	    tl_server_leases(&d, mon, "b") == 1, "leases not taken");
	for (i = 0; i < 3; i++)
		tl_send_req(c, json_pack("{s:s}", "cmd", "PING"));
	pfd.fd = c->fd;
	pfd.events = POLLIN;
	TL_ASSERT(poll(&pfd, 1, 2000) == 1, "no reply to leave unread");
	TL_ASSERT(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg,
	    sizeof(lg)) == 0, "SO_LINGER: %s", strerror(errno));
	tl_close(c);
	TL_WAIT_UNTIL(ok, tl_server_leases(&d, mon, "a") == 0 &&
	    tl_server_leases(&d, mon, "b") == 0, 1000);
	TL_ASSERT(ok, "leases of a client reset mid-stream not released "
	    "within 1 s: a %lld, b %lld", tl_server_leases(&d, mon, "a"),
	    tl_server_leases(&d, mon, "b"));

	TL_ASSERT(pipe(pp) == 0, "pipe");
	kid = fork();
	TL_ASSERT(kid != -1, "fork: %s", strerror(errno));
	if (kid == 0) {
		static const char req[] =
		    "{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"id\":1}\n";

		signal(SIGALRM, SIG_DFL);
		close(pp[0]);
		if ((fd = tl_connect_fd(d.sock)) == -1 ||
		    write(fd, req, sizeof(req) - 1) == -1)
			_exit(1);
		for (n = 0; n < sizeof(buf) && read(fd, &ch, 1) == 1 &&
		    ch != '\n'; n++)
			buf[n] = ch;
		(void)!write(pp[1], "k", 1);
		for (;;)
			pause();
	}
	close(pp[1]);
	pfd.fd = pp[0];
	TL_ASSERT(poll(&pfd, 1, 10000) == 1 && read(pp[0], &ch, 1) == 1,
	    "the client process did not get its lease");
	close(pp[0]);
	TL_ASSERT(tl_server_leases(&d, mon, "a") == 1, "the client process's "
	    "lease is not there");
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	TL_WAIT_UNTIL(ok, tl_server_leases(&d, mon, "a") == 0, 1000);
	TL_ASSERT(ok, "the lease of a SIGKILLed client is not released "
	    "within 1 s");
	rep = tl_evict(mon, "a", false, 5000);
	TL_ASSERT(tl_ok(rep), "EVICT a (no lease left): %s", tl_dump(rep));
	json_decref(rep);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 14. who may do what -------------------------------------------- */

static bool
am_root(const char *test)
{
	if (geteuid() == 0)
		return true;
	tl_skip(test, "needs root to act as another user");
	return false;
}

/*
 * Depends on peer credentials and "forbidden".
 *
 * Pass (socket_mode 0666, the socket's folder open to all): a client
 * running as uid/gid 65534 gets PING, STATS and ACQUIRE (hold false)
 * answered ok, but its EVICT gets forbidden and the server keeps
 * running; poold's log names uid 65534; the same EVICT from root (the
 * owner) is answered ok.
 */
START_TEST(test_evict_forbidden)
{
	static const char *const lines[] = {
		"{\"cmd\":\"PING\"}",
		"{\"cmd\":\"STATS\"}",
		"{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"hold\":false}",
		"{\"cmd\":\"EVICT\",\"model\":\"a\",\"force\":true}",
	};
	struct tl_daemon d;
	struct tl_conn *c;
	struct as_result r;
	pid_t pa;
	json_t *rep, *st;
	int i;

	tl_daemon_init(&d, 16);
	if (!am_root("evict_forbidden")) {
		tl_daemon_finish(&d);
		return;
	}
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	TL_ASSERT(chmod(d.dir, 0755) == 0, "chmod: %s", strerror(errno));
	tl_daemon_start(&d, "{\"socket_mode\":\"0666\"}");
	c = tl_connect(&d);
	run_as(NOBODY, NOBODY, d.sock, lines, 4, &r);
	TL_ASSERT(r.connect_errno == 0, "uid %d cannot connect to a 0666 "
	    "socket: %s", NOBODY, strerror(r.connect_errno));
	TL_ASSERT(r.n == 4, "uid %d got %d replies of 4", NOBODY, r.n);
	for (i = 0; i < 3; i++)
		TL_ASSERT(tl_ok(r.replies[i]), "uid %d: %s → %s", NOBODY,
		    lines[i], tl_dump(r.replies[i]));
	tl_expect_error(r.replies[3], "forbidden", NULL, "EVICT by a non-admin");
	as_result_free(&r);
	st = tl_stats(&d, c);
	pa = tl_server_pid(st, "a");
	json_decref(st);
	TL_ASSERT(pa > 0 && tl_pid_exists(pa), "a forbidden EVICT stopped "
	    "the server");
	TL_ASSERT(tl_log_has(&d, "65534"), "poold's log does not name the "
	    "peer (uid %d) of the forbidden EVICT", NOBODY);
	rep = tl_evict(c, "a", false, 5000);
	TL_ASSERT(tl_ok(rep), "EVICT by the owner: %s", tl_dump(rep));
	json_decref(rep);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Depends on socket_group.
 *
 * Pass (socket_mode 0660, socket_group the group of gid 65534): the
 * socket's group is that gid and its mode 0660; a process with uid 65533
 * in that group connects and gets PING answered; one with uid and gid
 * 65533 (neither owner nor group) gets EACCES at connect.
 */
START_TEST(test_socket_group)
{
	static const char *const ping[] = { "{\"cmd\":\"PING\"}" };
	struct tl_daemon d;
	struct as_result r;
	struct group *gr;
	struct stat sb;
	char over[256];

	tl_daemon_init(&d, 17);
	if (!am_root("socket_group")) {
		tl_daemon_finish(&d);
		return;
	}
	gr = getgrgid(NOBODY);
	TL_ASSERT(gr != NULL, "no group %d", NOBODY);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	TL_ASSERT(chmod(d.dir, 0755) == 0, "chmod: %s", strerror(errno));
	snprintf(over, sizeof(over), "{\"socket_mode\":\"0660\","
	    "\"socket_group\":\"%s\"}", gr->gr_name);
	tl_daemon_start(&d, over);
	TL_ASSERT(stat(d.sock, &sb) == 0, "stat %s: %s", d.sock,
	    strerror(errno));
	TL_ASSERT(sb.st_gid == NOBODY && (sb.st_mode & 07777) == 0660,
	    "socket group %d mode %o; expected %d and 660", (int)sb.st_gid,
	    (unsigned)(sb.st_mode & 07777), NOBODY);
	run_as(NOBODY - 1, NOBODY, d.sock, ping, 1, &r);
	TL_ASSERT(r.connect_errno == 0 && r.n == 1 && tl_ok(r.replies[0]),
	    "a member of socket_group: connect %s, reply %s",
	    strerror(r.connect_errno), tl_dump(r.n ? r.replies[0] : NULL));
	as_result_free(&r);
	run_as(NOBODY - 1, NOBODY - 1, d.sock, ping, 1, &r);
	TL_ASSERT(r.connect_errno == EACCES, "an outsider's connect: %s",
	    r.connect_errno == 0 ? "succeeded" : strerror(r.connect_errno));
	as_result_free(&r);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Depends on max_line_bytes.
 *
 * Pass (max_line_bytes 1024, max_clients 3): a 1,000-byte request is
 * served; a 2,000-byte line gets bad_request and then the connection is
 * closed, while the other clients carry on; with 3 clients connected a
 * 4th gets one busy error line and is closed.
 */
START_TEST(test_limits)
{
	struct tl_daemon d;
	struct tl_conn *a, *b, *mon, *extra;
	char line[2100];
	json_t *rep;
	char *l;
	bool ok;

	tl_daemon_init(&d, 18);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, "{\"max_line_bytes\":1024,\"max_clients\":3}");
	a = tl_connect(&d);
	b = tl_connect(&d);
	mon = tl_connect(&d);
	snprintf(line, sizeof(line),
	    "{\"cmd\":\"PING\",\"id\":1,\"x\":\"%0*d\"}\n", 1000 - 30, 0);
	TL_ASSERT(tl_send(a, line, strlen(line)) == 0, "send");
	rep = tl_recv_id(a, 1, 2000);
	TL_ASSERT(rep != NULL && tl_ok(rep), "a %zu-byte line: %s",
	    strlen(line), tl_dump(rep));
	json_decref(rep);
	snprintf(line, sizeof(line),
	    "{\"cmd\":\"PING\",\"id\":2,\"x\":\"%0*d\"}\n", 2000 - 30, 0);
	TL_ASSERT(tl_send(a, line, strlen(line)) == 0, "send");
	rep = tl_recv(a, 2000);
	tl_expect_error(rep, "bad_request", NULL, "a 2,000-byte line");
	json_decref(rep);
	TL_ASSERT(tl_recv_line(a, 2000, NULL) == NULL && a->eof,
	    "the connection is still open after a line over the limit");
	ping_ok(b, 1000, "another client");

	TL_WAIT_UNTIL(ok, tl_stats_int(&d, mon, "clients") == 2, 1000);
	TL_ASSERT(ok, "the closed client still counts");
	tl_close(a);
	a = tl_connect(&d);
	ping_ok(a, 1000, "the 3rd client");
	extra = tl_connect(&d);
	l = tl_recv_line(extra, 2000, NULL);
	TL_ASSERT(l != NULL && strstr(l, "\"busy\"") != NULL,
	    "a 4th client (max_clients 3) got %s", l ? l : "nothing");
	free(l);
	l = tl_recv_line(extra, 2000, NULL);
	TL_ASSERT(l == NULL && extra->eof, "the 4th client is not closed "
	    "after its busy line");
	tl_close(extra);
	tl_close(a);
	tl_close(b);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 15. what a server inherits ------------------------------------- */

/* The NUL-separated /proc/PID/environ, one "K=V" per line (malloc'd). */
static char *
proc_environ(pid_t pid)
{
	char path[64], *buf;
	ssize_t n, len = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	if ((buf = calloc(1, 65536)) == NULL ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		free(buf);
		return NULL;
	}
	while (len < 65535 && (n = read(fd, buf + len, 65535 - len)) > 0)
		len += n;
	close(fd);
	for (ssize_t i = 0; i < len; i++)
		if (buf[i] == '\0')
			buf[i] = '\n';
	return buf;
}

static bool
env_has(const char *env, const char *kv)
{
	size_t n = strlen(kv);
	const char *p;

	for (p = env; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, kv, n) == 0 && (p[n] == '\n' || p[n] == '\0' ||
		    kv[n - 1] == '='))
			return true;
	}
	return false;
}

/* Field "Name:" of /proc/PID/status as a number (hex masks: base 16). */
static unsigned long long
proc_status_field(pid_t pid, const char *name, int base)
{
	char path[64], line[256];
	unsigned long long v = ~0ULL;
	size_t n = strlen(name);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return v;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, name, n) == 0) {
			v = strtoull(line + n, NULL, base);
			break;
		}
	fclose(f);
	return v;
}

/* The target of /proc/PID/fd/FD, "" if none. */
static void
fd_target(pid_t pid, const char *fd, char *buf, size_t len)
{
	char path[320];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid, fd);
	n = readlink(path, buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
}

/* true if one of pid's descriptors points at target. */
static bool
holds(pid_t pid, const char *target)
{
	char path[64], t[TL_PATH_MAX];
	struct dirent *de;
	bool found = false;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((dir = opendir(path)) == NULL)
		return false;
	while (!found && (de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		fd_target(pid, de->d_name, t, sizeof(t));
		found = strcmp(t, target) == 0;
	}
	closedir(dir);
	return found;
}

#define MARKER_FD	77

/*
 * Depends on the cleaned environment and closing inherited descriptors
 * in the child.
 *
 * Pass: poold runs with a stray LLAMA_ARG_CTX_SIZE and FAULTS_SECRET in
 * its environment, a marker file open (not close-on-exec) at fd 77, and
 * SIGUSR2 ignored, all inherited from us.  Its server then has PATH and
 * its model's env (LLAMA_ARG_THREADS=3) but neither stray variable; none
 * of its descriptors above 2 is one poold holds (the marker, poold's
 * socket, lock or other servers' pipes); it leads its own session and
 * process group; it blocks no signal and does not ignore SIGUSR2.
 */
START_TEST(test_child_hygiene)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char marker[TL_PATH_MAX + 16], t[TL_PATH_MAX], path[64];
	struct dirent *de;
	json_t *st;
	char *env;
	pid_t srv;
	DIR *dir;
	int fd;

	tl_daemon_init(&d, 19);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	snprintf(marker, sizeof(marker), "%s/marker", d.dir);
	tl_write_file(marker, "marker\n");
	fd = open(marker, O_RDONLY);
	TL_ASSERT(fd != -1 && dup2(fd, MARKER_FD) == MARKER_FD, "marker: %s",
	    strerror(errno));
	close(fd);
	setenv("LLAMA_ARG_CTX_SIZE", "99", 1);
	setenv("FAULTS_SECRET", "leak", 1);
	signal(SIGUSR2, SIG_IGN);
	tl_daemon_start(&d, "{\"models\":{\"a\":{\"env\":"
	    "{\"LLAMA_ARG_THREADS\":\"3\"}}}}");
	close(MARKER_FD);
	unsetenv("LLAMA_ARG_CTX_SIZE");
	unsetenv("FAULTS_SECRET");
	signal(SIGUSR2, SIG_DFL);
	TL_ASSERT(holds(d.pid, marker), "poold did not inherit the marker "
	    "fd: the test proves nothing");

	c = tl_connect(&d);
	tl_acquire_ok(c, "b", false, NULL);
	tl_acquire_ok(c, "a", false, NULL);
	st = tl_stats(&d, c);
	srv = tl_server_pid(st, "a");
	json_decref(st);

	env = proc_environ(srv);
	TL_ASSERT(env != NULL, "cannot read the environment of %d", (int)srv);
	TL_ASSERT(env_has(env, "PATH=") && env_has(env, "LLAMA_ARG_THREADS=3"),
	    "the server lacks PATH or its model's env:\n%s", env);
	TL_ASSERT(!env_has(env, "LLAMA_ARG_CTX_SIZE=") &&
	    !env_has(env, "FAULTS_SECRET="), "poold's stray environment "
	    "reached the server:\n%s", env);
	free(env);

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)srv);
	TL_ASSERT((dir = opendir(path)) != NULL, "%s: %s", path,
	    strerror(errno));
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || atoi(de->d_name) <= 2)
			continue;
		fd_target(srv, de->d_name, t, sizeof(t));
		TL_ASSERT(!holds(d.pid, t), "the server's fd %s (%s) is one "
		    "poold holds too: inherited", de->d_name, t);
		TL_ASSERT(strncmp(t, d.dir, strlen(d.dir)) != 0, "the server "
		    "holds %s (fd %s)", t, de->d_name);
	}
	closedir(dir);

	TL_ASSERT(proc_stat_field(srv, 5) == (unsigned long long)srv &&
	    proc_stat_field(srv, 6) == (unsigned long long)srv,
	    "server %d is not the leader of its session and group (pgrp %llu,"
	    " session %llu)", (int)srv, proc_stat_field(srv, 5),
	    proc_stat_field(srv, 6));
	TL_ASSERT(proc_status_field(srv, "SigBlk:", 16) == 0,
	    "the server starts with blocked signals (SigBlk %llx)",
	    proc_status_field(srv, "SigBlk:", 16));
	TL_ASSERT((proc_status_field(srv, "SigIgn:", 16) &
	    (1ULL << (SIGUSR2 - 1))) == 0, "SIGUSR2, ignored by poold, is "
	    "ignored by the server (SigIgn %llx)",
	    proc_status_field(srv, "SigIgn:", 16));
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 15. the suite proves what the docs promise (issue 9) ---------- */

/* pid no longer exists, not even as a zombie. */
static void
assert_gone_now(pid_t pid, const char *what)
{
	TL_ASSERT(!tl_pid_exists(pid), "%s: process %d still exists (state "
	    "%c)", what, (int)pid, tl_proc_state(pid));
}

/* How many times needle occurs in poold's log. */
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

/*
 * An unwritable state file (poold.8, "The state file": "If it cannot be
 * written ... says so once and keeps serving").  Pass: state_file is
 * T/blocker/state.json where T/blocker is a regular file: poold starts
 * and serves three starts, an EVICT and a reap (each a write of the
 * state file) with PING answered, and its log says "cannot write the
 * state file" exactly once.  Once T/blocker is removed, the next start
 * writes the file, which records the running servers.
 */
START_TEST(test_state_unwritable)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char blocker[TL_PATH_MAX + 16], state[TL_PATH_MAX + 32];
	char over[TL_PATH_MAX * 2];
	json_t *rep, *root, *srv;
	json_error_t jerr;
	size_t i;
	bool ok;

	tl_daemon_init(&d, 19);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	tl_model(&d, "c", "load_ms=20\nmem=4M\n");
	snprintf(blocker, sizeof(blocker), "%s/blocker", d.dir);
	snprintf(state, sizeof(state), "%s/state.json", blocker);
	tl_write_file(blocker, "a file where the state file's folder goes\n");
	snprintf(over, sizeof(over), "{\"state_file\":\"%s\"}", state);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	tl_acquire_ok(c, "a", false, NULL);
	tl_acquire_ok(c, "b", false, NULL);
	rep = tl_evict(c, "a", false, 5000);
	TL_ASSERT(tl_ok(rep), "EVICT a: %s", tl_dump(rep));
	json_decref(rep);
	tl_acquire_ok(c, "a", false, NULL);
	ping_ok(c, 5000, "state file unwritable");
	TL_ASSERT(log_count(&d, "cannot write the state file") == 1,
	    "poold should say once that it cannot write %s; it said so %d "
	    "times", state, log_count(&d, "cannot write the state file"));

	TL_ASSERT(unlink(blocker) == 0, "unlink: %s", strerror(errno));
	tl_acquire_ok(c, "c", false, NULL);
	TL_WAIT_UNTIL(ok, access(state, F_OK) == 0, 5000);
	TL_ASSERT(ok, "%s not written after it became writable", state);
	root = json_load_file(state, 0, &jerr);
	TL_ASSERT(root != NULL, "%s: %s", state, jerr.text);
	ok = false;
	json_array_foreach(json_object_get(root, "servers"), i, srv)
		if (json_is_string(json_object_get(srv, "model")) &&
		    strcmp(json_string_value(json_object_get(srv, "model")),
		    "c") == 0)
			ok = true;
	TL_ASSERT(ok, "the state file does not record c: %s", tl_dump(root));
	json_decref(root);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/*
 * Freed only at reap, by a forced EVICT of a server that ignores
 * SIGTERM.  Pass (budget 16M: two 8M servers, stop_timeout 1.5 s):
 * stubborn and a both leased, ACQUIRE b waits (leases hold the budget);
 * EVICT stubborn with force: until stubborn's process is gone (SIGKILL at
 * stop_timeout, then the reap), every STATS sample lists it stopping
 * with its 8M, used is 16M and b has no server nor process, also right
 * after a RELEASE (which makes the pool try b again); the EVICT is
 * answered once stubborn is gone, freed 8M; b's ACQUIRE after that, at
 * least 1 s after the EVICT was sent.
 */
START_TEST(test_evict_frees_at_reap)
{
	struct tl_daemon d;
	struct tl_conn *c, *cb, *mon;
	json_t *st, *ev = NULL, *rb = NULL, *s;
	long long t0, idb, ide, evict_ms = -1, b_ms = -1;
	pid_t ps;
	int samples = 0;

	tl_daemon_init(&d, 20);
	tl_model(&d, "stubborn", "load_ms=20\nmem=4M\nmode=ignore_term\n");
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, "{\"memory_limit\":\"16M\","
	    "\"stop_timeout\":\"1500ms\"}");
	c = tl_connect(&d);
	cb = tl_connect(&d);
	mon = tl_connect(&d);
	tl_acquire_ok(c, "stubborn", true, NULL);
	tl_acquire_ok(c, "a", true, NULL);
	ps = tl_stats_pid(&d, mon, "stubborn");
	TL_ASSERT(ps > 0, "stubborn not running");
	idb = tl_send_req(cb, tl_acquire_req("b", 20000, true));
	TL_ASSERT(tl_recv_id(cb, idb, 300) == NULL, "ACQUIRE b answered "
	    "while leases held the whole budget");

	t0 = tl_now_ms();
	ide = tl_send_req(c, json_pack("{s:s, s:s, s:b}", "cmd", "EVICT",
	    "model", "stubborn", "force", 1));
	while (ev == NULL || rb == NULL) {
		if (ev == NULL && (ev = tl_recv_id(c, ide, 0)) != NULL) {
			evict_ms = tl_now_ms() - t0;
			assert_gone_now(ps, "EVICT stubborn answered");
		}
		if (rb == NULL && (rb = tl_recv_id(cb, idb, 0)) != NULL) {
			b_ms = tl_now_ms() - t0;
			assert_gone_now(ps, "ACQUIRE b answered");
		}
		st = tl_stats(&d, mon);
		if (tl_pid_exists(ps)) {
			TL_ASSERT(tl_server(st, "b") == NULL &&
			    tl_standins_of(&d, "b") == 0, "b started while "
			    "stubborn (pid %d) was not reaped yet: %s",
			    (int)ps, tl_dump(st));
			s = tl_server(st, "stubborn");
			if (s != NULL && strcmp(tl_str(s, "state"),
			    "stopping") == 0) {
				TL_ASSERT(tl_int(s, "mem") == 8 * MIB &&
				    tl_int(st, "memory.used") == 16 * MIB,
				    "a stopping server's memory is not "
				    "accounted until its reap: %s", tl_dump(st));
				if (samples++ % 5 == 0)
					tl_release(mon, tl_acquire_ok(mon,
					    "a", true, NULL));
			}
		}
		json_decref(st);
		TL_ASSERT(tl_now_ms() - t0 < 20000, "EVICT or ACQUIRE b not "
		    "answered within 20 s");
		tl_sleep_ms(20);
	}
	TL_ASSERT(tl_ok(ev) && tl_int(ev, "freed") == 8 * MIB,
	    "EVICT stubborn: %s", tl_dump(ev));
	TL_ASSERT(tl_ok(rb), "ACQUIRE b: %s", tl_dump(rb));
	TL_ASSERT(samples >= 5, "stubborn seen stopping in %d samples only",
	    samples);
	TL_ASSERT(evict_ms >= 1000 && b_ms >= 1000, "EVICT answered after "
	    "%lld ms, b after %lld ms: before stubborn (SIGKILL at 1.5 s) "
	    "could be reaped", evict_ms, b_ms);
	fprintf(stderr, "evict_reap: stubborn reaped, EVICT answered after "
	    "%lld ms, b after %lld ms (%d samples of it stopping)\n",
	    evict_ms, b_ms, samples);
	json_decref(ev);
	json_decref(rb);
	tl_close(c);
	tl_close(cb);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

#define CG_LIMIT	(192 * MIB)

/*
 * A memory cgroup of our own, child of ours: v2 if our v2 cgroup offers
 * the memory controller, else v1's memory hierarchy.
 */
struct memcg {
	char	dir[512];
	bool	v2;
};

/* Our path in the v2 hierarchy or, v2 false, in v1's memory one. */
static bool
memcg_own_path(bool v2, char *out, size_t len)
{
	char line[512], *ctl, *path, *tok, *save;
	bool found = false;
	FILE *f;

	if ((f = fopen("/proc/self/cgroup", "r")) == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((ctl = strchr(line, ':')) == NULL ||
		    (path = strchr(++ctl, ':')) == NULL)
			continue;
		*path++ = '\0';
		if (v2) {
			found = ctl[0] == '\0' && strncmp(line, "0:", 2) == 0;
		} else {
			for (tok = strtok_r(ctl, ",", &save); tok != NULL &&
			    !found; tok = strtok_r(NULL, ",", &save))
				found = strcmp(tok, "memory") == 0;
		}
		if (found)
			snprintf(out, len, "%s", strcmp(path, "/") == 0 ? "" :
			    path);
	}
	fclose(f);
	return found;
}

/*
 * Removes the empty poold-mem-* cgroups a failed run left in base (a
 * failed assertion ends the test before its rmdir); rmdir leaves any
 * that still holds a process.
 */
static void
memcg_sweep(const char *base)
{
	char path[700];
	struct dirent *e;
	DIR *dir;

	if ((dir = opendir(base)) == NULL)
		return;
	while ((e = readdir(dir)) != NULL)
		if (strncmp(e->d_name, "poold-mem-", 10) == 0) {
			snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
			(void)rmdir(path);
		}
	closedir(dir);
}

static bool
memcg_make(struct memcg *cg, long long limit, char *why, size_t len)
{
	char own[256], base[400];

	for (int tryv2 = 1; tryv2 >= 0; tryv2--) {
		cg->v2 = tryv2 == 1;
		if (!memcg_own_path(cg->v2, own, sizeof(own)))
			continue;
		snprintf(base, sizeof(base), "%s%s", cg->v2 ?
		    "/sys/fs/cgroup" : "/sys/fs/cgroup/memory", own);
		memcg_sweep(base);
		if (cg->v2)
			(void)cg_write(base, "cgroup.subtree_control",
			    "+memory");
		snprintf(cg->dir, sizeof(cg->dir), "%s/poold-mem-%d", base,
		    (int)getpid());
		if (mkdir(cg->dir, 0755) == -1 && errno != EEXIST) {
			snprintf(why, len, "mkdir %s: %s", cg->dir,
			    strerror(errno));
			continue;
		}
		if (cg_write(cg->dir, cg->v2 ? "memory.max" :
		    "memory.limit_in_bytes", "%lld", limit) == 0)
			return true;
		snprintf(why, len, "%s: cannot set a memory limit: %s",
		    cg->dir, strerror(errno));
		rmdir(cg->dir);
	}
	if (why[0] == '\0')
		snprintf(why, len, "no memory cgroup (v2 or v1) found");
	return false;
}

/*
 * The cgroup limit (poold.8, "The rest of the machine"; budget with
 * memory_limit "auto").  Pass: poold started in a memory cgroup of its
 * own limited to 192 MiB (memory.max, or v1's memory.limit_in_bytes)
 * with memory_limit auto and reserved 0 reports memory.total and
 * memory.budget of 192 MiB in STATS, and system_available at most that;
 * poold --budget, run in the same cgroup, prints a total of 192.0 MiB
 * (detected).  Not root, or no memory cgroup to make: a SKIP.
 */
START_TEST(test_cgroup_limit)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct memcg cg;
	char why[600] = "", wrapper[TL_PATH_MAX + 16];
	char cmd[TL_PATH_MAX * 3], line[256];
	const char *real = getenv("POOLD_BIN");
	bool total_ok = false;
	json_t *st;
	FILE *p;

	tl_daemon_init(&d, 21);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	if (geteuid() != 0 || !memcg_make(&cg, CG_LIMIT, why, sizeof(why))) {
		tl_skip("cgroup_limit", "%s", geteuid() != 0 ? "needs root to "
		    "make a cgroup" : why);
		tl_daemon_finish(&d);
		return;
	}
	TL_ASSERT(real != NULL, "POOLD_BIN not set");
	snprintf(wrapper, sizeof(wrapper), "%s/poold-in-cgroup", d.dir);
	tl_write_file(wrapper, "#!/bin/sh\necho $$ > '%s/cgroup.procs' || "
	    "exit 97\nexec '%s' \"$@\"\n", cg.dir, real);
	TL_ASSERT(chmod(wrapper, 0755) == 0, "chmod: %s", strerror(errno));
	TL_ASSERT(setenv("POOLD_BIN", wrapper, 1) == 0, "setenv");
	tl_daemon_start(&d, "{\"memory_limit\":\"auto\",\"reserved\":\"0\","
	    "\"min_available\":0}");
	c = tl_connect(&d);
	st = tl_stats(&d, c);
	TL_ASSERT(tl_int(st, "memory.total") == CG_LIMIT &&
	    tl_int(st, "memory.budget") == CG_LIMIT &&
	    tl_int(st, "memory.system_available") <= CG_LIMIT,
	    "poold in %s (limit %lld) does not see its cgroup's limit: %s",
	    cg.dir, CG_LIMIT, tl_dump(st));
	json_decref(st);
	tl_acquire_ok(c, "a", false, NULL);
	tl_close(c);

	snprintf(cmd, sizeof(cmd), "'%s' --budget -f '%s' 2>&1", wrapper,
	    d.config);
	TL_ASSERT((p = popen(cmd, "r")) != NULL, "popen: %s", strerror(errno));
	while (fgets(line, sizeof(line), p) != NULL) {
		fprintf(stderr, "cgroup_limit: --budget: %s", line);
		if (strncmp(line, "total memory", 12) == 0 &&
		    strstr(line, "192.0 MiB") != NULL &&
		    strstr(line, "(detected)") != NULL)
			total_ok = true;
	}
	TL_ASSERT(pclose(p) == 0 && total_ok, "poold --budget in %s does not "
	    "print a total of 192.0 MiB (detected)", cg.dir);
	fprintf(stderr, "cgroup_limit: cgroup %s %s, limit 192 MiB: STATS "
	    "and --budget agree\n", cg.v2 ? "v2" : "v1", cg.dir);
	tl_daemon_finish(&d);
	for (int i = 0; i < 100 && rmdir(cg.dir) == -1 && errno == EBUSY; i++)
		tl_sleep_ms(10);
}
END_TEST

/* --- the suite ---------------------------------------------------- */

int
main(void)
{
	Suite *s = suite_create("faults");

	tl_add(s, "kill9", test_kill9_no_server_survives);
	tl_add(s, "state_file", test_state_file_leftovers);
	tl_add(s, "slow_drip", test_slow_drip);
	tl_add(s, "line_timeout", test_line_timeout);
	tl_add(s, "never_reads", test_never_reading_client);
	tl_add(s, "mass_kill", test_mass_kill);
	tl_add(s, "exec_fail", test_exec_failures);
	tl_add(s, "fork_fail", test_fork_fails);
	tl_add(s, "emfile", test_emfile_accept);
	tl_add(s, "log_full", test_log_dir_full);
	tl_add(s, "crash_loop", test_crash_loop_failed);
	tl_add(s, "group_reap", test_group_and_reap);
	tl_add(s, "bad_json", test_bad_json);
	tl_add(s, "bad_names", test_bad_names);
	tl_add(s, "disconnect", test_abrupt_disconnect);
	tl_add(s, "forbidden", test_evict_forbidden);
	tl_add(s, "socket_group", test_socket_group);
	tl_add(s, "limits", test_limits);
	tl_add(s, "child_hygiene", test_child_hygiene);
	tl_add(s, "state_unwritable", test_state_unwritable);
	tl_add(s, "evict_reap", test_evict_frees_at_reap);
	tl_add(s, "cgroup_limit", test_cgroup_limit);
	return tl_run(s, CK_ENV);
}
