/*
 * testlib.c — helpers for tests that drive the real poold binary.
 * See testlib.h.  No main, no suites: every check_* binary links this.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define TL_TRACK_MAX	8192
#define TL_LOG_PRINT_MAX (256 * 1024)

struct tl_tracked {
	pid_t			pid;
	pid_t			ppid;	/* its parent when first seen */
	unsigned long long	start;	/* /proc start time, against reuse */
};

static struct tl_daemon	*tl_current;
static struct tl_tracked tl_tracked[TL_TRACK_MAX];
static int		 tl_ntracked;
static bool		 tl_failed;
/* For the watchdog, which may only use async-signal-safe calls. */
static volatile pid_t	 tl_wd_pid;
static char		 tl_wd_log[TL_PATH_MAX];

/* --- suites --- */

void
tl_add(Suite *s, const char *name, const TTest *t)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, TL_TEST_TIMEOUT_S);
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

int
tl_run(Suite *s, enum print_output mode)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, mode);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* --- time --- */

long long
tl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long
tl_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
tl_sleep_ms(long long ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* --- small file helpers --- */

static char *
tl_read_all(const char *path, size_t *lenp)
{
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if ((buf = realloc(buf, cap + 1)) == NULL) {
				fclose(f);
				return NULL;
			}
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	if (buf == NULL && (buf = malloc(1)) == NULL)
		return NULL;
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

static void
tl_vwrite_file(const char *path, const char *fmt, va_list ap)
{
	FILE *f;

	f = fopen(path, "w");
	TL_ASSERT(f != NULL, "cannot write %s: %s", path, strerror(errno));
	vfprintf(f, fmt, ap);
	TL_ASSERT(fclose(f) == 0, "cannot write %s: %s", path,
	    strerror(errno));
}

void
tl_write_file(const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tl_vwrite_file(path, fmt, ap);
	va_end(ap);
}

static int
tl_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

void
tl_rm_rf(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, tl_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- failing and cleaning up --- */

static void
tl_print_log(const struct tl_daemon *d)
{
	char *log;
	size_t len = 0, off = 0;

	if (d == NULL || d->log[0] == '\0')
		return;
	log = tl_read_all(d->log, &len);
	fprintf(stderr, "---- poold log %s (%zu bytes)%s ----\n", d->log, len,
	    len > TL_LOG_PRINT_MAX ? ", tail" : "");
	if (log != NULL) {
		if (len > TL_LOG_PRINT_MAX)
			off = len - TL_LOG_PRINT_MAX;
		fwrite(log + off, 1, len - off, stderr);
		if (len > 0 && log[len - 1] != '\n')
			fputc('\n', stderr);
	}
	fprintf(stderr, "---- end of poold log ----\n");
	fflush(stderr);
	free(log);
}

void
tl_on_failure(const char *file, int line)
{
	if (tl_failed)
		return;
	tl_failed = true;
	fprintf(stderr, "\n**** test failed at %s:%d; temp dir %s kept\n",
	    file, line, tl_current ? tl_current->dir : "(none)");
	tl_print_log(tl_current);
	tl_cleanup();
}

/* --- skipping --- */

/*
 * Cases that cannot run in CI at all and may skip there (comma-separated
 * names, each with its reason in a comment).  None today: the CI machine
 * is root, has cgroups, python3 and the real llama-server.
 */
#define TL_SKIP_CI_OK	""

bool
tl_in_ci(void)
{
	const char *ci = getenv("CI");

	return ci != NULL && ci[0] != '\0' && strcmp(ci, "false") != 0 &&
	    strcmp(ci, "0") != 0;
}

static bool
tl_skip_ci_ok(const char *name)
{
	static const char list[] = TL_SKIP_CI_OK;
	const char *p = list;
	size_t n = strlen(name);

	while (n > 0 && (p = strstr(p, name)) != NULL) {
		if ((p == list || p[-1] == ',') &&
		    (p[n] == '\0' || p[n] == ','))
			return true;
		p += n;
	}
	return false;
}

/* Prints the SKIP line; true if the skip must fail the run. */
static bool
tl_vskip(const char *name, const char *fmt, va_list ap)
{
	bool fail = tl_in_ci() && !tl_skip_ci_ok(name);

	fflush(stdout);
	fprintf(stderr, "SKIP %s: ", name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "%s\n", fail ? " (CI is set: a skip is a failure)" :
	    "");
	return fail;
}

void
tl_skip(const char *name, const char *fmt, ...)
{
	va_list ap;
	bool fail;

	va_start(ap, fmt);
	fail = tl_vskip(name, fmt, ap);
	va_end(ap);
	if (fail) {
		tl_on_failure(__FILE__, __LINE__);
		ck_abort_msg("SKIP %s in CI", name);
	}
}

bool
tl_skip_main(const char *name, const char *fmt, ...)
{
	va_list ap;
	bool fail;

	va_start(ap, fmt);
	fail = tl_vskip(name, fmt, ap);
	va_end(ap);
	return fail;
}

/* Kills a tracked process only if it is still the one we saw. */
static void
tl_kill_tracked(int sig)
{
	int i;

	for (i = 0; i < tl_ntracked; i++)
		if (tl_tracked[i].start != 0 &&
		    tl_proc_starttime(tl_tracked[i].pid) == tl_tracked[i].start)
			kill(tl_tracked[i].pid, sig);
}

static void
tl_reap_ours(long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms;
	pid_t p;

	for (;;) {
		p = waitpid(-1, NULL, WNOHANG);
		if (p > 0)
			continue;
		if (p == -1 && errno == ECHILD)
			return;
		if (tl_now_ms() >= dl)
			return;
		tl_sleep_ms(10);
	}
}

void
tl_cleanup(void)
{
	struct tl_daemon *d = tl_current;
	pid_t kids[1024];
	int i, n;

	alarm(0);
	if (d != NULL && d->pid > 0) {
		kill(-d->pid, SIGKILL);
		kill(d->pid, SIGKILL);
		waitpid(d->pid, &d->status, 0);
		d->pid = 0;
		d->exited = true;
	}
	tl_wd_pid = 0;
	tl_kill_tracked(SIGKILL);
	/* Orphans of poold were adopted by us (subreaper). */
	n = tl_children(getpid(), kids, 1024);
	for (i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	tl_reap_ours(n > 0 ? 1000 : 100);
}

static void
tl_watchdog(int sig)
{
	static const char msg[] =
	    "\n**** test watchdog: out of time, poold's log follows ****\n";
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	char buf[4096];
	ssize_t n;
	pid_t p;
	int fd, i;

	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	if (tl_wd_log[0] != '\0' && (fd = open(tl_wd_log, O_RDONLY)) != -1) {
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			(void)!write(2, buf, (size_t)n);
		close(fd);
	}
	if (tl_wd_pid > 0) {
		kill(-tl_wd_pid, SIGKILL);
		kill(tl_wd_pid, SIGKILL);
	}
	/*
	 * Reap poold and the servers its death kills (they are reparented
	 * to us, a subreaper), so no zombie is left to an init that may
	 * not reap.  Only async-signal-safe calls here.
	 */
	for (i = 0; i < 200; i++) {
		p = waitpid(-1, NULL, WNOHANG);
		if (p == -1 && errno == ECHILD)
			break;
		if (p <= 0)
			nanosleep(&tick, NULL);
	}
	_exit(1);
}

static void
tl_setup_process(void)
{
	static bool done;
	struct sigaction sa;

	if (done)
		return;
	done = true;
	signal(SIGPIPE, SIG_IGN);
#ifdef PR_SET_CHILD_SUBREAPER
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#endif
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tl_watchdog;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
}

static void
tl_arm_watchdog(void)
{
	const char *mul = getenv("CK_TIMEOUT_MULTIPLIER");
	double m = 1;
	unsigned s;

	if (mul != NULL && atof(mul) > 0)
		m = atof(mul);
	s = (unsigned)(TL_TEST_TIMEOUT_S * m);
	alarm(s > 3 ? s - 3 : 1);
}

/* --- the daemon --- */

static const char *
tl_env_bin(const char *var, const char *rel, char *buf, size_t len)
{
	const char *v = getenv(var), *src = getenv("POOLD_SRCDIR");
	char tmp[TL_PATH_MAX];

	if (v != NULL && v[0] != '\0')
		return v;
	snprintf(tmp, sizeof(tmp), "%s/%s", src ? src : ".", rel);
	if (realpath(tmp, buf) == NULL)
		snprintf(buf, len, "%s", tmp);
	return buf;
}

/*
 * TL_PORT_SLOTS slots of 100 ports from 10000, below Linux's ephemeral
 * ports (32768 up), which any outgoing connection may take (32000 up
 * is the shell and Node tests', one fixed slot each).  The slot to try first comes
 * from the pid and n; a flock on /tmp/poold-test-ports.K, held until
 * tl_daemon_finish or the test's exit, makes it ours, so that two
 * suites running at once (make -j) never hand one range to two
 * poolds, which could both pick a port before either server binds it.
 */
#define TL_PORT_SLOTS	220

static int
tl_port_slot(struct tl_daemon *d, int n)
{
	char path[64];
	long first = ((long)getpid() * 7919 + (long)n * 37) % TL_PORT_SLOTS;
	long k;
	int fd;

	d->port_lock = -1;
	for (long i = 0; i < TL_PORT_SLOTS; i++) {
		k = (first + i) % TL_PORT_SLOTS;
		snprintf(path, sizeof(path), "/tmp/poold-test-ports.%ld", k);
		fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd == -1)
			continue;	/* another user's, say */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			d->port_lock = fd;
			return 10000 + 100 * (int)k;
		}
		close(fd);
	}
	/* No lock to be had (a read-only /tmp): the first guess. */
	return 10000 + 100 * (int)first;
}

void
tl_daemon_init(struct tl_daemon *d, int n)
{
	char tmpl[] = "/tmp/poold-t.XXXXXX";

	tl_setup_process();
	memset(d, 0, sizeof(*d));
	tl_failed = false;
	tl_ntracked = 0;
	tl_current = d;
	TL_ASSERT(mkdtemp(tmpl) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(d->dir, sizeof(d->dir), "%s", tmpl);
	snprintf(d->models_dir, sizeof(d->models_dir), "%s/models", d->dir);
	snprintf(d->sock, sizeof(d->sock), "%s/poold.sock", d->dir);
	snprintf(d->config, sizeof(d->config), "%s/poold.json", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/poold.log", d->dir);
	TL_ASSERT(mkdir(d->models_dir, 0755) == 0, "mkdir %s: %s",
	    d->models_dir, strerror(errno));
	d->port_min = tl_port_slot(d, n);
	d->port_max = d->port_min + 99;
	d->stop_timeout_ms = 2000;
}

void
tl_model(struct tl_daemon *d, const char *name, const char *fmt, ...)
{
	char path[TL_PATH_MAX + 160];
	va_list ap;

	snprintf(path, sizeof(path), "%s/%s.gguf", d->models_dir, name);
	va_start(ap, fmt);
	tl_vwrite_file(path, fmt, ap);
	va_end(ap);
}

static void
tl_le(unsigned char **p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		*(*p)++ = (unsigned char)(v >> (8 * i));
}

static void
tl_gguf_str(unsigned char **p, const char *s)
{
	tl_le(p, strlen(s), 8);
	memcpy(*p, s, strlen(s));
	*p += strlen(s);
}

void
tl_model_gguf(struct tl_daemon *d, const char *name, uint64_t weights)
{
	char path[TL_PATH_MAX + 160];
	unsigned char head[256], *p = head;
	size_t len;
	int fd;

	TL_ASSERT(weights % 4 == 0, "weights %llu: not whole F32s",
	    (unsigned long long)weights);
	memcpy(p, "GGUF", 4);
	p += 4;
	tl_le(&p, 3, 4);		/* version */
	tl_le(&p, 1, 8);		/* tensors */
	tl_le(&p, 1, 8);		/* key-values */
	tl_gguf_str(&p, "general.architecture");
	tl_le(&p, 8, 4);		/* a string */
	tl_gguf_str(&p, "llama");
	tl_gguf_str(&p, "token_embd.weight");
	tl_le(&p, 1, 4);		/* dimensions */
	tl_le(&p, weights / 4, 8);
	tl_le(&p, 0, 4);		/* F32 */
	tl_le(&p, 0, 8);		/* at the data's start */
	len = (size_t)(p - head);
	len = (len + 31) / 32 * 32;	/* general.alignment's default */
	memset(p, 0, len - (size_t)(p - head));
	snprintf(path, sizeof(path), "%s/%s.gguf", d->models_dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	TL_ASSERT(fd != -1, "open %s: %s", path, strerror(errno));
	TL_ASSERT(write(fd, head, len) == (ssize_t)len, "write %s", path);
	/* The weights are a hole: no disk, no time. */
	TL_ASSERT(ftruncate(fd, (off_t)(len + weights)) == 0, "ftruncate %s: "
	    "%s", path, strerror(errno));
	close(fd);
}

json_t *
tl_models_entry(struct tl_conn *c, const char *model)
{
	json_t *rep = tl_call(c, json_pack("{s:s}", "cmd", "MODELS"), 10000);
	json_t *m, *found = NULL;
	size_t i;

	TL_ASSERT(tl_ok(rep), "MODELS: %s", tl_dump(rep));
	json_array_foreach(json_object_get(rep, "models"), i, m)
		if (strcmp(tl_str(m, "model"), model) == 0)
			found = json_incref(m);
	json_decref(rep);
	return found;
}

/* "2s", "1500ms", "1m", "1h", 3 (seconds) → ms; -1 if unparsable. */
static long long
tl_duration_ms(json_t *v)
{
	const char *s;
	char *end;
	double x;

	if (json_is_integer(v))
		return json_integer_value(v) * 1000;
	if (json_is_real(v))
		return (long long)(json_real_value(v) * 1000);
	if ((s = json_string_value(v)) == NULL)
		return -1;
	x = strtod(s, &end);
	if (end == s)
		return -1;
	if (strcmp(end, "ms") == 0)
		return (long long)x;
	if (strcmp(end, "s") == 0 || *end == '\0')
		return (long long)(x * 1000);
	if (strcmp(end, "m") == 0)
		return (long long)(x * 60000);
	if (strcmp(end, "h") == 0)
		return (long long)(x * 3600000);
	return -1;
}

void
tl_write_config(struct tl_daemon *d, const char *overrides)
{
	char fbuf[TL_PATH_MAX], state[TL_PATH_MAX];
	const char *fake, *key;
	json_t *conf, *over, *val;
	json_error_t jerr;
	long long st;

	fake = tl_env_bin("FAKELLAMA_BIN", "build/fakellama", fbuf,
	    sizeof(fbuf));
	snprintf(state, sizeof(state), "%s/state.json", d->dir);
	/*
	 * rss_interval 0: servers are accounted their configured figures,
	 * which the tests of the rules assert exactly; tests of measured
	 * memory turn sampling on in their overrides.
	 */
	conf = json_pack("{s:s, s:s, s:s, s:s, s:[s,s,s,s,s,s,s], s:s, s:s,"
	    " s:s, s:[i,i], s:s, s:s, s:s, s:s}",
	    "rss_interval", "0",
	    "state_file", state,
	    "socket", d->sock,
	    "models_dir", d->models_dir,
	    "command", fake, "-m", "{path}", "--host", "127.0.0.1",
	    "--port", "{port}",
	    "memory_limit", "216M",
	    "reserved", "0",
	    "per_model", "8M",
	    "ports", d->port_min, d->port_max,
	    "idle_timeout", "5m",
	    "start_timeout", "10s",
	    "stop_timeout", "2s",
	    "acquire_timeout", "20s");
	TL_ASSERT(conf != NULL, "json_pack of the default config failed");
	if (overrides != NULL) {
		over = json_loads(overrides, 0, &jerr);
		TL_ASSERT(json_is_object(over), "bad overrides %s: %s",
		    overrides, jerr.text);
		json_object_foreach(over, key, val) {
			if (json_is_null(val))
				json_object_del(conf, key);
			else
				json_object_set(conf, key, val);
		}
		json_decref(over);
	}
	st = tl_duration_ms(json_object_get(conf, "stop_timeout"));
	d->stop_timeout_ms = st >= 0 ? st : 2000;
	TL_ASSERT(json_dump_file(conf, d->config, JSON_INDENT(2)) == 0,
	    "cannot write %s", d->config);
	json_decref(conf);
}

pid_t
tl_spawn_logged(const char *log, const char *path, char *const argv[])
{
	pid_t parent = getpid(), pid;
	sigset_t all;
	int logfd, nullfd;

	logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	TL_ASSERT(logfd != -1, "open %s: %s", log, strerror(errno));
	pid = fork();
	TL_ASSERT(pid != -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
#ifdef PR_SET_PDEATHSIG
		/* A test killed by Check's timeout takes its children along. */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (getppid() != parent)
			_exit(127);
#endif
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		if ((nullfd = open("/dev/null", O_RDONLY)) != -1)
			dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execvp(path, argv);
		dprintf(2, "testlib: exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	(void)parent;
	close(logfd);
	setpgid(pid, pid);	/* either side may win the race; both set it */
	return pid;
}

void
tl_daemon_spawn(struct tl_daemon *d)
{
	char pbuf[TL_PATH_MAX];
	const char *poold;
	pid_t pid;

	poold = tl_env_bin("POOLD_BIN", "build/poold", pbuf, sizeof(pbuf));
	TL_ASSERT(access(poold, X_OK) == 0, "POOLD_BIN %s: %s", poold,
	    strerror(errno));
	pid = tl_spawn_logged(d->log, poold, (char *const []){ (char *)poold,
	    "-f", d->config, NULL });
	d->pid = pid;
	d->started_pid = pid;
	d->exited = false;
	tl_wd_pid = pid;
	snprintf(tl_wd_log, sizeof(tl_wd_log), "%s", d->log);
	tl_arm_watchdog();
}

bool
tl_daemon_wait(struct tl_daemon *d, long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms;
	pid_t p;

	if (d->exited)
		return true;
	for (;;) {
		p = waitpid(d->pid, &d->status, WNOHANG);
		if (p == d->pid) {
			d->exited = true;
			d->pid = 0;
			tl_wd_pid = 0;
			return true;
		}
		if (tl_now_ms() >= dl)
			return false;
		tl_sleep_ms(5);
	}
}

static const char *
tl_status_str(int status)
{
	static char buf[64];

	if (WIFEXITED(status))
		snprintf(buf, sizeof(buf), "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "signal %d", WTERMSIG(status));
	else
		snprintf(buf, sizeof(buf), "status 0x%x", status);
	return buf;
}

void
tl_daemon_start(struct tl_daemon *d, const char *overrides)
{
	long long dl;
	int fd;

	tl_write_config(d, overrides);
	tl_daemon_spawn(d);
	dl = tl_now_ms() + TL_READY_TIMEOUT_MS;
	for (;;) {
		if ((fd = tl_connect_fd(d->sock)) != -1) {
			close(fd);
			return;
		}
		TL_ASSERT(!tl_daemon_wait(d, 0),
		    "poold exited before its socket accepted: %s",
		    tl_status_str(d->status));
		TL_ASSERT(tl_now_ms() < dl,
		    "poold's socket %s did not accept within %d ms", d->sock,
		    TL_READY_TIMEOUT_MS);
		tl_sleep_ms(10);
	}
}

char *
tl_daemon_log(const struct tl_daemon *d)
{
	char *s = tl_read_all(d->log, NULL);

	return s ? s : strdup("");
}

bool
tl_log_has(const struct tl_daemon *d, const char *needle)
{
	char *s = tl_daemon_log(d);
	bool has = s && strstr(s, needle) != NULL;

	free(s);
	return has;
}

void
tl_daemon_finish(struct tl_daemon *d)
{
	pid_t kids[1024], poold = d->started_pid;
	long long t0, dt, grace;
	int i, n;
	bool ok;

	if (d->pid > 0) {
		TL_ASSERT(!tl_daemon_wait(d, 0), "poold died during the test: %s",
		    tl_status_str(d->status));
		TL_ASSERT(tl_wait_no_zombies(d->pid, 1000),
		    "poold leaves %d zombie children",
		    tl_zombie_children(d->pid));
		n = tl_children(d->pid, kids, 1024);
		for (i = 0; i < n; i++)
			tl_track(kids[i]);
		t0 = tl_now_ms();
		TL_ASSERT(kill(d->pid, SIGTERM) == 0, "kill poold: %s",
		    strerror(errno));
		grace = d->stop_timeout_ms + 2000;
		TL_ASSERT(tl_daemon_wait(d, grace),
		    "poold did not exit within %lld ms of SIGTERM", grace);
		dt = tl_now_ms() - t0;
		TL_ASSERT(WIFEXITED(d->status) && WEXITSTATUS(d->status) == 0,
		    "poold ended with %s after SIGTERM (in %lld ms)",
		    tl_status_str(d->status), dt);
	}
	/*
	 * Its direct children must all have been reaped by poold itself;
	 * grandchildren (reparented to us) must be dead, and we reap them.
	 */
	for (i = 0; i < tl_ntracked; i++) {
		struct tl_tracked *t = &tl_tracked[i];

		if (t->start == 0 || tl_proc_starttime(t->pid) != t->start)
			continue;
		TL_ASSERT(t->ppid != poold, "server %d still exists after poold"
		    " exited (state %c, parent now %d)", (int)t->pid,
		    tl_proc_state(t->pid), (int)tl_proc_ppid(t->pid));
		TL_WAIT_UNTIL(ok, tl_pid_gone_reap(t->pid), 1000);
		TL_ASSERT(ok, "process %d (child of %d) still exists after"
		    " poold exited, state %c", (int)t->pid, (int)t->ppid,
		    tl_proc_state(t->pid) ? tl_proc_state(t->pid) : '-');
	}
	TL_ASSERT(access(d->sock, F_OK) == -1,
	    "socket %s still exists after poold exited", d->sock);
	tl_cleanup();
	tl_rm_rf(d->dir);
	tl_current = NULL;
	tl_ntracked = 0;
	if (d->port_lock != -1)
		close(d->port_lock);	/* the ports are free for others */
	d->port_lock = -1;
}

/* --- connections --- */

int
tl_connect_fd(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

struct tl_conn *
tl_connect(struct tl_daemon *d)
{
	struct tl_conn *c;
	int fd;

	fd = tl_connect_fd(d->sock);
	TL_ASSERT(fd != -1, "connect %s: %s", d->sock, strerror(errno));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c = calloc(1, sizeof(*c));
	TL_ASSERT(c != NULL, "out of memory");
	c->fd = fd;
	c->stash = json_array();
	c->next_id = 1000000;
	return c;
}

void
tl_close(struct tl_conn *c)
{
	if (c == NULL)
		return;
	if (c->fd != -1)
		close(c->fd);
	json_decref(c->stash);
	free(c->buf);
	free(c);
}

/* POOLD_TEST_TRACE=1 prints every line sent and received. */
static bool
tl_trace(void)
{
	static int on = -1;

	if (on == -1)
		on = getenv("POOLD_TEST_TRACE") != NULL &&
		    getenv("POOLD_TEST_TRACE")[0] == '1';
	return on;
}

int
tl_send(struct tl_conn *c, const void *data, size_t len)
{
	const char *p = data;
	struct pollfd pfd;
	long long dl = tl_now_ms() + TL_REPLY_TIMEOUT_MS;
	ssize_t n;

	if (tl_trace())
		fprintf(stderr, "trace %d >> %.*s%s", c->fd,
		    (int)(len > 300 ? 300 : len), p, len > 300 ? "…\n" : "");
	while (len > 0) {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (tl_now_ms() >= dl)
				return -1;
			pfd.fd = c->fd;
			pfd.events = POLLOUT;
			poll(&pfd, 1, 100);
			continue;
		}
		return -1;
	}
	return 0;
}

int
tl_sendf(struct tl_conn *c, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n, r;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	r = tl_send(c, s, (size_t)n);
	free(s);
	return r;
}

char *
tl_recv_line(struct tl_conn *c, long long timeout_ms, size_t *lenp)
{
	long long dl = tl_now_ms() + timeout_ms, left;
	struct pollfd pfd;
	char *nl, *line;
	size_t ll;
	ssize_t n;

	for (;;) {
		if (c->len > 0 && (nl = memchr(c->buf, '\n', c->len)) != NULL) {
			ll = (size_t)(nl - c->buf);
			line = malloc(ll + 1);
			TL_ASSERT(line != NULL, "out of memory");
			memcpy(line, c->buf, ll);
			line[ll] = '\0';
			if (tl_trace())
				fprintf(stderr, "trace %d << %.300s\n", c->fd,
				    line);
			memmove(c->buf, nl + 1, c->len - ll - 1);
			c->len -= ll + 1;
			if (lenp)
				*lenp = ll;
			return line;
		}
		if (c->eof)
			return NULL;
		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? c->cap * 2 : 131072;
			c->buf = realloc(c->buf, c->cap);
			TL_ASSERT(c->buf != NULL, "out of memory");
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR)) {
			c->eof = true;
			continue;
		}
		left = dl - tl_now_ms();
		if (left <= 0)
			return NULL;
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
	}
}

/* The next reply from the socket itself (not the stash). */
static json_t *
tl_read_reply(struct tl_conn *c, long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms, left;
	json_error_t jerr;
	json_t *j;
	char *line;
	size_t len;

	for (;;) {
		left = dl - tl_now_ms();
		if ((line = tl_recv_line(c, left > 0 ? left : 0, &len)) == NULL)
			return NULL;
		if (len > 0)
			break;
		free(line);
	}
	j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	TL_ASSERT(json_is_object(j), "reply is not a JSON object (%s): %.300s",
	    jerr.text, line);
	TL_ASSERT(line[len - 1] != '\r', "reply ends in CR: %.300s", line);
	free(line);
	return j;
}

json_t *
tl_recv(struct tl_conn *c, long long timeout_ms)
{
	json_t *j;

	if (json_array_size(c->stash) > 0) {
		j = json_incref(json_array_get(c->stash, 0));
		json_array_remove(c->stash, 0);
		return j;
	}
	return tl_read_reply(c, timeout_ms);
}

static bool
tl_id_is(json_t *reply, long long id)
{
	json_t *v = json_object_get(reply, "id");

	return json_is_integer(v) && json_integer_value(v) == id;
}

json_t *
tl_recv_id(struct tl_conn *c, long long id, long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms, left;
	json_t *j;
	size_t i;

	for (i = 0; i < json_array_size(c->stash); i++) {
		j = json_array_get(c->stash, i);
		if (tl_id_is(j, id)) {
			json_incref(j);
			json_array_remove(c->stash, i);
			return j;
		}
	}
	for (;;) {
		left = dl - tl_now_ms();
		if ((j = tl_read_reply(c, left > 0 ? left : 0)) == NULL)
			return NULL;
		if (tl_id_is(j, id))
			return j;
		json_array_append_new(c->stash, j);
	}
}

long long
tl_send_req(struct tl_conn *c, json_t *req)
{
	json_t *idv;
	long long id = -1;
	char *s;
	size_t n;
	int r;

	TL_ASSERT(req != NULL, "bad request (json_pack failed)");
	idv = json_object_get(req, "id");
	if (idv == NULL) {
		id = c->next_id++;
		json_object_set_new(req, "id", json_integer(id));
	} else if (json_is_integer(idv))
		id = json_integer_value(idv);
	s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	TL_ASSERT(s != NULL, "json_dumps failed");
	n = strlen(s);
	s = realloc(s, n + 2);
	s[n] = '\n';
	s[n + 1] = '\0';
	r = tl_send(c, s, n + 1);
	TL_ASSERT(r == 0, "cannot send %s: %s", s, strerror(errno));
	free(s);
	return id;
}

json_t *
tl_call(struct tl_conn *c, json_t *req, long long timeout_ms)
{
	char *text;
	json_t *rep;
	long long id;

	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	id = tl_send_req(c, req);
	rep = tl_recv_id(c, id, timeout_ms);
	TL_ASSERT(rep != NULL, "no reply to %s within %lld ms%s", text,
	    timeout_ms, c->eof ? " (connection closed)" : "");
	free(text);
	return rep;
}

json_t *
tl_acquire_req(const char *model, long long timeout_ms, bool hold)
{
	json_t *req;

	req = json_pack("{s:s, s:s, s:b}", "cmd", "ACQUIRE", "model", model,
	    "hold", hold);
	if (timeout_ms >= 0)
		json_object_set_new(req, "timeout_ms", json_integer(timeout_ms));
	return req;
}

json_t *
tl_acquire(struct tl_conn *c, const char *model, long long timeout_ms,
    bool hold)
{
	return tl_call(c, tl_acquire_req(model, timeout_ms, hold),
	    (timeout_ms >= 0 ? timeout_ms : 20000) + TL_REPLY_TIMEOUT_MS);
}

long long
tl_acquire_ok(struct tl_conn *c, const char *model, bool hold, int *port)
{
	json_t *rep;
	long long lease = 0;

	rep = tl_acquire(c, model, 20000, hold);
	TL_ASSERT(tl_ok(rep), "ACQUIRE %s failed: %s", model, tl_dump(rep));
	TL_ASSERT(strcmp(tl_str(rep, "model") ? tl_str(rep, "model") : "",
	    model) == 0, "ACQUIRE %s answered for another model: %s", model,
	    tl_dump(rep));
	TL_ASSERT(tl_int(rep, "port") > 0, "ACQUIRE %s: bad port: %s", model,
	    tl_dump(rep));
	if (hold) {
		lease = tl_int(rep, "lease");
		TL_ASSERT(lease > 0, "ACQUIRE %s: no lease: %s", model,
		    tl_dump(rep));
	}
	if (port != NULL)
		*port = (int)tl_int(rep, "port");
	json_decref(rep);
	return lease;
}

void
tl_release(struct tl_conn *c, long long lease)
{
	json_t *rep;

	rep = tl_call(c, json_pack("{s:s, s:I}", "cmd", "RELEASE", "lease",
	    (json_int_t)lease), TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(tl_ok(rep), "RELEASE %lld failed: %s", lease, tl_dump(rep));
	json_decref(rep);
}

json_t *
tl_evict(struct tl_conn *c, const char *model, bool force,
    long long timeout_ms)
{
	return tl_call(c, json_pack("{s:s, s:s, s:b}", "cmd", "EVICT",
	    "model", model, "force", force), timeout_ms);
}

json_t *
tl_stats(struct tl_daemon *d, struct tl_conn *c)
{
	json_t *rep, *servers, *s;
	long long used, budget, maxs, sum = 0, grown = 0, port, pid;
	long long ports[1024];
	const char *state;
	size_t i, j, n;

	rep = tl_call(c, json_pack("{s:s}", "cmd", "STATS"),
	    TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(tl_ok(rep), "STATS failed: %s", tl_dump(rep));
	used = tl_int(rep, "memory.used");
	budget = tl_int(rep, "memory.budget");
	maxs = tl_int(rep, "max_servers");
	servers = tl_get(rep, "servers");
	TL_ASSERT(json_is_array(servers), "STATS without servers[]: %s",
	    tl_dump(rep));
	n = json_array_size(servers);
	json_array_foreach(servers, i, s)
		if (tl_get(s, "estimate") != NULL)
			grown += tl_int(s, "mem") - tl_int(s, "estimate");
	/* Only measured growth past an estimate may exceed the budget (and
	 * poold then stops idle servers); a start never does. */
	TL_ASSERT(used <= budget + grown, "accounted memory %lld > budget "
	    "%lld + measured growth %lld: %s", used, budget, grown,
	    tl_dump(rep));
	TL_ASSERT((long long)n <= maxs, "%zu servers > max_servers %lld: %s",
	    n, maxs, tl_dump(rep));
	if (tl_get(rep, "running") != NULL)
		TL_ASSERT(tl_int(rep, "running") <= maxs,
		    "running > max_servers: %s", tl_dump(rep));
	json_array_foreach(servers, i, s) {
		sum += tl_int(s, "mem");
		state = tl_str(s, "state");
		TL_ASSERT(state != NULL && (strcmp(state, "starting") == 0 ||
		    strcmp(state, "ready") == 0 ||
		    strcmp(state, "stopping") == 0),
		    "server with a bad state: %s", tl_dump(s));
		port = tl_int(s, "port");
		pid = tl_int(s, "pid");
		if (i < 1024)
			ports[i] = port;
		for (j = 0; j < i && j < 1024; j++)
			TL_ASSERT(ports[j] != port, "two servers on port %lld: %s",
			    port, tl_dump(rep));
		/* Only poold's own children: the pid may be reused already. */
		if (pid > 0 && (d == NULL || tl_proc_ppid((pid_t)pid) ==
		    d->started_pid))
			tl_track((pid_t)pid);
	}
	TL_ASSERT(sum == used, "used %lld is not the sum of the servers' mem"
	    " %lld: %s", used, sum, tl_dump(rep));
	if (d != NULL) {
		d->samples++;
		if (n > d->max_servers_seen)
			d->max_servers_seen = (unsigned)n;
		if ((unsigned long long)used > d->max_used_seen)
			d->max_used_seen = (unsigned long long)used;
	}
	return rep;
}

long long
tl_stats_int(struct tl_daemon *d, struct tl_conn *mon, const char *path)
{
	json_t *st = tl_stats(d, mon);
	long long v = tl_int(st, path);

	json_decref(st);
	return v;
}

long long
tl_counter(struct tl_daemon *d, struct tl_conn *mon, const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "counters.%s", name);
	return tl_stats_int(d, mon, path);
}

long long
tl_server_leases(struct tl_daemon *d, struct tl_conn *mon,
    const char *model)
{
	json_t *st = tl_stats(d, mon), *s;
	long long n = -1;

	if ((s = tl_server(st, model)) != NULL)
		n = tl_int(s, "leases");
	json_decref(st);
	return n;
}

pid_t
tl_stats_pid(struct tl_daemon *d, struct tl_conn *mon, const char *model)
{
	json_t *st = tl_stats(d, mon);
	pid_t pid = tl_server_pid(st, model);

	json_decref(st);
	return pid;
}

int
tl_http_status(int port, const char *path, long long timeout_ms)
{
	struct sockaddr_in sin;
	struct tl_conn c;
	char *line;
	int fd, status = -1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	memset(&c, 0, sizeof(c));
	c.fd = fd;
	if (tl_sendf(&c, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	    "Connection: close\r\n\r\n", path, port) == 0 &&
	    (line = tl_recv_line(&c, timeout_ms, NULL)) != NULL) {
		if (sscanf(line, "HTTP/1.%*d %d", &status) != 1)
			status = -1;
		free(line);
	}
	free(c.buf);
	close(fd);
	return status;
}

/* --- JSON --- */

json_t *
tl_get(json_t *j, const char *path)
{
	char key[256];
	const char *p = path, *dot;
	size_t n;

	while (j != NULL && *p != '\0') {
		dot = strchr(p, '.');
		n = dot ? (size_t)(dot - p) : strlen(p);
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		j = json_object_get(j, key);
		p += n + (dot ? 1 : 0);
	}
	return j;
}

long long
tl_int(json_t *j, const char *path)
{
	json_t *v = tl_get(j, path);

	TL_ASSERT(json_is_integer(v), "no integer %s in %s", path, tl_dump(j));
	return json_integer_value(v);
}

const char *
tl_str(json_t *j, const char *path)
{
	return json_string_value(tl_get(j, path));
}

bool
tl_ok(json_t *reply)
{
	return json_is_true(json_object_get(reply, "ok"));
}

const char *
tl_err(json_t *reply)
{
	const char *e = json_string_value(json_object_get(reply, "error"));

	return e ? e : "";
}

void
tl_expect_error(json_t *rep, const char *code, json_t *id, const char *what)
{
	const char *msg = tl_str(rep, "message");

	TL_ASSERT(rep != NULL, "%s: no reply", what);
	TL_ASSERT(json_is_false(json_object_get(rep, "ok")),
	    "%s: expected ok:false with %s, got %s", what, code, tl_dump(rep));
	TL_ASSERT(strcmp(tl_err(rep), code) == 0,
	    "%s: expected error %s, got %s", what, code, tl_dump(rep));
	TL_ASSERT(msg != NULL && msg[0] != '\0',
	    "%s: error without a message: %s", what, tl_dump(rep));
	if (id != NULL)
		TL_ASSERT(json_equal(json_object_get(rep, "id"), id),
		    "%s: reply does not echo id %s: %s", what, tl_dump(id),
		    tl_dump(rep));
}

const char *
tl_dump(json_t *j)
{
	static char bufs[8][8192];
	static int next;
	char *b = bufs[next++ % 8], *s;

	if (j == NULL)
		return "(null)";
	s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	snprintf(b, sizeof(bufs[0]), "%s", s ? s : "(unprintable)");
	free(s);
	return b;
}

json_t *
tl_server(json_t *stats, const char *model)
{
	json_t *s;
	size_t i;

	json_array_foreach(tl_get(stats, "servers"), i, s) {
		const char *m = tl_str(s, "model");

		if (m != NULL && strcmp(m, model) == 0)
			return s;
	}
	return NULL;
}

bool
tl_has_server(struct tl_daemon *d, struct tl_conn *mon, const char *model)
{
	json_t *st = tl_stats(d, mon);
	bool has = tl_server(st, model) != NULL;

	json_decref(st);
	return has;
}

pid_t
tl_server_pid(json_t *stats, const char *model)
{
	json_t *s = tl_server(stats, model);

	return s ? (pid_t)tl_int(s, "pid") : 0;
}

/* --- processes --- */

/* Reads /proc/PID/stat; returns the text after "(comm) ", NULL if gone. */
static const char *
tl_stat_fields(pid_t pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	char *rp;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	if ((rp = strrchr(buf, ')')) == NULL || rp[1] != ' ')
		return NULL;
	return rp + 2;
}

char
tl_proc_state(pid_t pid)
{
	char buf[1024];
	const char *f = tl_stat_fields(pid, buf, sizeof(buf));

	return f ? f[0] : 0;
}

pid_t
tl_proc_ppid(pid_t pid)
{
	char buf[1024];
	const char *f = tl_stat_fields(pid, buf, sizeof(buf));
	int ppid;

	if (f == NULL || sscanf(f, "%*c %d", &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

unsigned long long
tl_proc_starttime(pid_t pid)
{
	char buf[1024];
	const char *f = tl_stat_fields(pid, buf, sizeof(buf));
	unsigned long long st;
	int i;

	if (f == NULL)
		return 0;
	/* Field 22; f starts at field 3. */
	for (i = 0; i < 19; i++) {
		if ((f = strchr(f, ' ')) == NULL)
			return 0;
		f++;
	}
	if (sscanf(f, "%llu", &st) != 1)
		return 0;
	return st;
}

int
tl_proc_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

int
tl_proc_model(pid_t pid, char *buf, size_t len)
{
	char path[64], *cmd, *p, *end, *base, *dot;
	size_t n;
	bool next = false;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if ((cmd = tl_read_all(path, &n)) == NULL)
		return -1;
	for (p = cmd, end = cmd + n; p < end; p += strlen(p) + 1) {
		if (next) {
			base = strrchr(p, '/');
			base = base ? base + 1 : p;
			snprintf(buf, len, "%s", base);
			if ((dot = strstr(buf, ".gguf")) != NULL)
				*dot = '\0';
			free(cmd);
			return 0;
		}
		next = strcmp(p, "-m") == 0;
	}
	free(cmd);
	return -1;
}

bool
tl_proc_maps_has(pid_t pid, const char *needle)
{
	char path[64], line[1024];
	bool has = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	while (!has && fgets(line, sizeof(line), f) != NULL)
		has = strstr(line, needle) != NULL;
	fclose(f);
	return has;
}

long long
tl_proc_rss(pid_t pid)
{
	char path[64], line[256];
	long long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

int
tl_children(pid_t ppid, pid_t *out, int max)
{
	struct dirent *de;
	char *end;
	DIR *dir;
	long pid;
	int n = 0;

	if ((dir = opendir("/proc")) == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL && n < max) {
		pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 0)
			continue;
		if (tl_proc_ppid((pid_t)pid) == ppid)
			out[n++] = (pid_t)pid;
	}
	closedir(dir);
	return n;
}

int
tl_standins(pid_t ppid, pid_t *out, int max)
{
	pid_t all[1024];
	char comm[64];
	int i, n, m = 0;

	n = tl_children(ppid, all, 1024);
	for (i = 0; i < n && m < max; i++)
		if (tl_proc_comm(all[i], comm, sizeof(comm)) == 0 &&
		    strcmp(comm, "fakellama") == 0)
			out[m++] = all[i];
	return m;
}

int
tl_standins_of(struct tl_daemon *d, const char *model)
{
	pid_t kids[1024];
	char m[256];
	int i, n, k = 0;

	n = tl_standins(d->pid, kids, 1024);
	for (i = 0; i < n; i++) {
		tl_track(kids[i]);
		if (tl_proc_model(kids[i], m, sizeof(m)) == 0 &&
		    strcmp(m, model) == 0)
			k++;
	}
	return k;
}

json_t *
tl_state_server(json_t *root, pid_t pid)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(root, "servers"), i, e)
		if (json_integer_value(json_object_get(e, "pid")) == pid)
			return e;
	return NULL;
}

int
tl_zombie_children(pid_t ppid)
{
	pid_t kids[1024];
	int i, n, z = 0;

	n = tl_children(ppid, kids, 1024);
	for (i = 0; i < n; i++)
		if (tl_proc_state(kids[i]) == 'Z')
			z++;
	return z;
}

bool
tl_wait_no_zombies(pid_t ppid, long long timeout_ms)
{
	bool ok;

	TL_WAIT_UNTIL(ok, tl_zombie_children(ppid) == 0, timeout_ms);
	return ok;
}

void
tl_track(pid_t pid)
{
	unsigned long long st;
	int i;

	if (pid <= 0 || (st = tl_proc_starttime(pid)) == 0)
		return;
	for (i = 0; i < tl_ntracked; i++)
		if (tl_tracked[i].pid == pid && tl_tracked[i].start == st)
			return;
	if (tl_ntracked == TL_TRACK_MAX)
		return;
	tl_tracked[tl_ntracked].pid = pid;
	tl_tracked[tl_ntracked].ppid = tl_proc_ppid(pid);
	tl_tracked[tl_ntracked].start = st;
	tl_ntracked++;
}

bool
tl_pid_exists(pid_t pid)
{
	int i;

	for (i = tl_ntracked - 1; i >= 0; i--)
		if (tl_tracked[i].pid == pid)
			return tl_tracked[i].start != 0 &&
			    tl_proc_starttime(pid) == tl_tracked[i].start;
	return tl_proc_state(pid) != 0;
}

bool
tl_pid_gone_reap(pid_t pid)
{
	if (!tl_pid_exists(pid))
		return true;
	if (tl_proc_state(pid) == 'Z' && tl_proc_ppid(pid) == getpid())
		waitpid(pid, NULL, WNOHANG);
	return !tl_pid_exists(pid);
}

bool
tl_wait_gone(pid_t pid, long long timeout_ms)
{
	bool ok;

	TL_WAIT_UNTIL(ok, !tl_pid_exists(pid), timeout_ms);
	return ok;
}

long long
tl_check_rss(struct tl_daemon *d, unsigned long long budget)
{
	pid_t kids[1024];
	long long sum = 0, r;
	int i, n;

	if (d->pid <= 0)
		return 0;
	n = tl_standins(d->pid, kids, 1024);
	for (i = 0; i < n; i++) {
		tl_track(kids[i]);
		if ((r = tl_proc_rss(kids[i])) > 0)
			sum += r;
	}
	if ((unsigned long long)sum > d->max_rss_seen)
		d->max_rss_seen = (unsigned long long)sum;
	/* AddressSanitizer's shadow memory is no model's: not comparable. */
	for (i = 0; i < n && d->rss_sanitized == 0 &&
	    (unsigned long long)sum > budget; i++)
		if (tl_proc_maps_has(kids[i], "libasan"))
			d->rss_sanitized = 1;
	if (d->rss_sanitized == 1)
		return sum;
	TL_ASSERT((unsigned long long)sum <= budget,
	    "the %d stand-ins' RSS sum to %lld bytes > budget %llu", n, sum,
	    budget);
	return sum;
}

/* --- misc --- */

int
tl_cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/* --- HTTP: a raw-socket client for the front door --- */

#define TL_HTTP_BODY_TAIL	256	/* kept when !keep_body */

enum {
	TL_CHUNK_SIZE,		/* at a chunk-size line */
	TL_CHUNK_DATA,
	TL_CHUNK_CRLF,		/* after a chunk's data */
	TL_CHUNK_TRAILER,	/* after the last chunk, up to a blank line */
};

struct tl_http *
tl_http_open(int port)
{
	struct sockaddr_in sin;
	struct tl_http *h;
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	TL_ASSERT(fd != -1, "socket: %s", strerror(errno));
	TL_ASSERT(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
	    "connect 127.0.0.1:%d: %s", port, strerror(errno));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	h = calloc(1, sizeof(*h));
	TL_ASSERT(h != NULL, "out of memory");
	h->fd = fd;
	h->port = port;
	h->length = -1;
	h->keep_body = true;
	return h;
}

void
tl_http_close(struct tl_http *h)
{
	if (h == NULL)
		return;
	if (h->fd != -1)
		close(h->fd);
	free(h->raw);
	free(h->head);
	free(h->body);
	free(h);
}

/* The control socket's writer serves: only the descriptor differs. */
int
tl_http_send(struct tl_http *h, const void *data, size_t len)
{
	struct tl_conn c = { .fd = h->fd };

	return tl_send(&c, data, len);
}

int
tl_http_sendf(struct tl_http *h, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n, rc;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	TL_ASSERT(n >= 0, "out of memory");
	rc = tl_http_send(h, s, (size_t)n);
	free(s);
	return rc;
}

static void
tl_http_grow(char **p, size_t *cap, size_t need)
{
	if (need + 1 <= *cap)
		return;
	while (*cap < need + 1)
		*cap = *cap ? *cap * 2 : 4096;
	*p = realloc(*p, *cap);
	TL_ASSERT(*p != NULL, "out of memory");
}

static void
tl_http_take(struct tl_http *h, size_t n)
{
	memmove(h->raw, h->raw + n, h->raw_len - n);
	h->raw_len -= n;
}

/* Appends decoded body bytes, counting the SSE events they end. */
static void
tl_http_body(struct tl_http *h, const char *p, size_t n)
{
	size_t i, keep;

	for (i = 0; i < n; i++) {
		if (p[i] == '\n' && h->prev == '\n')
			h->events++;
		h->prev = p[i];
	}
	h->body_total += n;
	tl_http_grow(&h->body, &h->body_cap, h->body_len + n);
	memcpy(h->body + h->body_len, p, n);
	h->body_len += n;
	if (!h->keep_body && h->body_len > TL_HTTP_BODY_TAIL) {
		keep = TL_HTTP_BODY_TAIL;
		memmove(h->body, h->body + h->body_len - keep, keep);
		h->body_len = keep;
	}
	h->body[h->body_len] = '\0';
}

/* The head, if all of it is in raw; 1xx heads are noted and dropped. */
static void
tl_http_parse_head(struct tl_http *h)
{
	char *end, *te, *cl;
	size_t n;

	while (!h->head_done) {
		if (h->raw == NULL || (end = memmem(h->raw, h->raw_len,
		    "\r\n\r\n", 4)) == NULL)
			return;
		n = (size_t)(end - h->raw) + 4;
		free(h->head);
		h->head = strndup(h->raw, n);
		TL_ASSERT(h->head != NULL, "out of memory");
		tl_http_take(h, n);
		if (sscanf(h->head, "HTTP/1.%*d %d", &h->status) != 1) {
			h->bad = true;
			return;
		}
		if (h->status >= 100 && h->status < 200) {
			h->saw_continue |= h->status == 100;
			continue;
		}
		h->head_done = true;
		te = strcasestr(h->head, "\r\ntransfer-encoding:");
		h->chunked = te != NULL && strncasecmp(te + 20 +
		    strspn(te + 20, " \t"), "chunked", 7) == 0;
		if ((cl = strcasestr(h->head, "\r\ncontent-length:")) != NULL)
			h->length = strtoll(cl + 17, NULL, 10);
		if (h->status == 204 || h->status == 304 ||
		    (!h->chunked && h->length == 0))
			h->done = true;
	}
}

/* Decodes what raw holds of a chunked body. */
static void
tl_http_dechunk(struct tl_http *h)
{
	char *nl, *end;
	size_t n;

	while (!h->done && !h->bad && h->raw_len > 0) {
		switch (h->chunk_state) {
		case TL_CHUNK_SIZE:
		case TL_CHUNK_TRAILER:
			if ((nl = memmem(h->raw, h->raw_len, "\r\n", 2)) ==
			    NULL)
				return;
			n = (size_t)(nl - h->raw) + 2;
			if (h->chunk_state == TL_CHUNK_TRAILER) {
				h->done = n == 2;
				tl_http_take(h, n);
				break;
			}
			*nl = '\0';
			h->chunk_left = strtoull(h->raw, &end, 16);
			if (end == h->raw) {
				h->bad = true;
				return;
			}
			tl_http_take(h, n);
			h->chunk_state = h->chunk_left == 0 ?
			    TL_CHUNK_TRAILER : TL_CHUNK_DATA;
			break;
		case TL_CHUNK_DATA:
			n = h->raw_len < h->chunk_left ? h->raw_len :
			    (size_t)h->chunk_left;
			tl_http_body(h, h->raw, n);
			tl_http_take(h, n);
			if ((h->chunk_left -= n) == 0)
				h->chunk_state = TL_CHUNK_CRLF;
			break;
		case TL_CHUNK_CRLF:
			if (h->raw_len < 2)
				return;
			if (memcmp(h->raw, "\r\n", 2) != 0) {
				h->bad = true;
				return;
			}
			tl_http_take(h, 2);
			h->chunk_state = TL_CHUNK_SIZE;
			break;
		}
	}
}

static void
tl_http_decode(struct tl_http *h)
{
	size_t n;

	tl_http_parse_head(h);
	if (!h->head_done || h->done || h->bad)
		return;
	if (h->chunked) {
		tl_http_dechunk(h);
		return;
	}
	n = h->raw_len;
	if (h->length >= 0 && (long long)(h->body_total + n) > h->length)
		n = (size_t)(h->length - (long long)h->body_total);
	tl_http_body(h, h->raw, n);
	tl_http_take(h, n);
	if (h->length >= 0 && (long long)h->body_total == h->length)
		h->done = true;
}

long
tl_http_read(struct tl_http *h, long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms, left;
	struct pollfd pfd;
	ssize_t n;

	if (h->eof)
		return 0;
	for (;;) {
		tl_http_grow(&h->raw, &h->raw_cap, h->raw_len + 65536);
		n = recv(h->fd, h->raw + h->raw_len, 65536, 0);
		if (n > 0) {
			h->raw_len += (size_t)n;
			tl_http_decode(h);
			return (long)n;
		}
		if (n == 0 || (errno != EINTR && errno != EAGAIN &&
		    errno != EWOULDBLOCK)) {
			h->eof = true;
			/* A body framed by the close ends here. */
			if (h->head_done && !h->chunked && h->length < 0)
				h->done = true;
			return 0;
		}
		if ((left = dl - tl_now_ms()) <= 0)
			return -1;
		pfd.fd = h->fd;
		pfd.events = POLLIN;
		poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
	}
}

bool
tl_http_wait_head(struct tl_http *h, long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms;

	while (!h->head_done && !h->eof && !h->bad && tl_now_ms() < dl)
		tl_http_read(h, dl - tl_now_ms());
	return h->head_done;
}

bool
tl_http_wait_done(struct tl_http *h, long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms;

	while (!h->done && !h->eof && !h->bad && tl_now_ms() < dl)
		tl_http_read(h, dl - tl_now_ms());
	return h->done;
}

const char *
tl_http_header(const struct tl_http *h, const char *name)
{
	static char bufs[4][1024];
	static int next;
	const char *p, *v, *eol;
	size_t nlen = strlen(name), len;
	char *out;

	if (h->head == NULL)
		return NULL;
	for (p = strstr(h->head, "\r\n"); p != NULL;
	    p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, name, nlen) != 0 || p[2 + nlen] != ':')
			continue;
		v = p + 3 + nlen;
		v += strspn(v, " \t");
		eol = strstr(v, "\r\n");
		len = eol != NULL ? (size_t)(eol - v) : strlen(v);
		out = bufs[next++ % 4];
		snprintf(out, sizeof(bufs[0]), "%.*s", (int)len, v);
		return out;
	}
	return NULL;
}

struct tl_http *
tl_http_request(int port, const char *method, const char *path,
    const char *headers, const char *body, long long timeout_ms)
{
	struct tl_http *h = tl_http_open(port);
	bool has_host = headers != NULL && (strncasecmp(headers, "host:",
	    5) == 0 || strcasestr(headers, "\r\nhost:") != NULL);
	char host[64] = "";
	char length[64] = "";

	if (!has_host)
		snprintf(host, sizeof(host), "Host: 127.0.0.1:%d\r\n", port);
	if (body != NULL)
		snprintf(length, sizeof(length), "Content-Length: %zu\r\n",
		    strlen(body));
	TL_ASSERT(tl_http_sendf(h, "%s %s HTTP/1.1\r\n%s%s%sConnection: "
	    "close\r\n\r\n%s", method, path, host, headers ? headers : "",
	    length, body ? body : "") == 0, "%s %s: cannot send: %s", method,
	    path, strerror(errno));
	tl_http_wait_done(h, timeout_ms);
	TL_ASSERT(h->head_done, "%s %s: no response head within %lld ms "
	    "(got %zu bytes: %.200s)", method, path, timeout_ms, h->raw_len,
	    h->raw ? h->raw : "");
	return h;
}

json_t *
tl_http_json(const struct tl_http *h)
{
	json_error_t jerr;
	json_t *j;

	j = json_loadb(h->body ? h->body : "", h->body_len, 0, &jerr);
	TL_ASSERT(j != NULL, "HTTP %d: the body is not JSON (%s): %.300s",
	    h->status, jerr.text, h->body ? h->body : "");
	return j;
}

void
tl_http_next(struct tl_http *h)
{
	free(h->head);
	h->head = NULL;
	h->head_done = h->saw_continue = h->chunked = false;
	h->done = h->bad = false;
	h->status = 0;
	h->length = -1;
	h->chunk_state = TL_CHUNK_SIZE;
	h->chunk_left = 0;
	h->body_len = 0;
	h->body_total = 0;
	h->events = 0;
	h->prev = 0;
	if (h->body != NULL)
		h->body[0] = '\0';
	tl_http_decode(h);
}
