/*
 * soak.c — poold under a long random workload, with servers that crash
 * and hang, checking every second that nothing leaks and nothing breaks.
 *
 *   SOAK_SECONDS=300 POOLD_BIN=build/poold FAKELLAMA_BIN=build/fakellama \
 *       build/soak/soak            (or: make soak)
 *
 * Clients (SOAK_CLIENTS, 50) pipeline random ACQUIRE (held or not, random
 * timeouts), RELEASE, EVICT (forced or not), STATS, MODELS, PING and the
 * odd malformed line over one poll() loop, and now and then hang up
 * abruptly.  The models are stand-ins of mixed sizes, more than the budget
 * holds together; some crash a while after they are ready, one at start,
 * one is never ready, one ignores SIGTERM, one exits slowly, one leaves a
 * grandchild; every few seconds the soak SIGKILLs a random server too.
 *
 * Every second it records poold's RSS and open descriptors, zombies among
 * its children, STATS used against the budget and the children's summed
 * RSS against the budget, and requests still unanswered 5 s past their
 * deadline (ACQUIRE: timeout_ms; EVICT: stop_timeout; others: at once).
 * It prints a table every SOAK_REPORT_S (10) seconds and a summary, and
 * exits 1 if an invariant broke:
 *
 *   - STATS used > budget, or the servers' summed RSS > budget;
 *   - a request not answered by its deadline + 5 s;
 *   - a RELEASE of a lease we hold answered with anything but ok (or
 *     lease_lost, when chaos or a forced EVICT ended its server);
 *   - a zombie child of poold seen in two samples in a row;
 *   - leases left on servers once every client released or left;
 *   - poold dying, or not exiting 0 (with no server left) on SIGTERM.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define MIB			(1024LL * 1024)
#define BUDGET			(64 * MIB)
#define STOP_TIMEOUT_MS		2000
#define START_TIMEOUT_MS	3000
#define GRACE_MS		5000	/* past a deadline: unanswered */
#define MAX_OUTSTANDING		6	/* per client, below max_pending */
#define MAX_LEASES		32	/* per client */
#define OUT_MAX			65536
#define IN_MAX			(256 * 1024)
#define CHAOS_EVERY_MS		3000
#define PATHLEN			512

enum kind { K_ACQUIRE, K_RELEASE, K_EVICT, K_STATS, K_MODELS, K_PING, K_BAD };
static const char *const kind_name[] = {
	"ACQUIRE", "RELEASE", "EVICT", "STATS", "MODELS", "PING", "bad line",
};

struct model {
	const char	*name;
	const char	*file;		/* the stand-in's model file */
	long long	 mem;		/* accounted (the config's memory) */
	int		 weight;	/* how often clients ask for it */
};

/* Stand-in RSS is mem + ~2.5M of its own; each is accounted mem + 4M. */
static const struct model models[] = {
	{ "n1", "load_ms=80\nmem=2M\n", 6 * MIB, 10 },
	{ "n2", "load_ms=150\nmem=4M\n", 8 * MIB, 10 },
	{ "n3", "load_ms=300\nmem=6M\n", 10 * MIB, 8 },
	{ "n4", "load_ms=50\nmem=4M\n", 8 * MIB, 8 },
	{ "n5", "load_ms=600\nmem=10M\n", 14 * MIB, 6 },
	{ "n6", "load_ms=400\nmem=14M\n", 18 * MIB, 5 },
	{ "n7", "load_ms=100\nmem=20M\n", 24 * MIB, 3 },
	{ "crash1", "load_ms=100\nmem=4M\nmode=crash_later\n"
	    "crash_after_ms=2000\n", 8 * MIB, 4 },
	{ "crash2", "load_ms=200\nmem=4M\nmode=crash_later\n"
	    "crash_after_ms=7000\ncrash_signal=9\n", 8 * MIB, 4 },
	{ "crashs", "load_ms=50\nmem=4M\nmode=crash_start\n", 8 * MIB, 2 },
	{ "never", "load_ms=50\nmem=4M\nmode=never_ready\n", 8 * MIB, 1 },
	{ "stubborn", "load_ms=100\nmem=4M\nmode=ignore_term\n", 8 * MIB, 3 },
	{ "slow", "load_ms=100\nmem=4M\nmode=slow_exit\nexit_delay_ms=1500\n",
	    8 * MIB, 3 },
	{ "forker", "load_ms=100\nmem=4M\nmode=fork_child\n", 8 * MIB, 3 },
	{ "huge", "load_ms=100\nmem=1M\n", 200 * MIB, 1 },
};
#define NMODELS	(sizeof(models) / sizeof(models[0]))

struct pending {
	long long	 id;
	enum kind	 kind;
	long long	 sent, deadline;
	long long	 lease;		/* RELEASE */
	bool		 late;		/* counted as unanswered already */
};

struct lease {
	long long	 id;
	long long	 release_at;
};

struct client {
	int		 fd;
	char		 in[IN_MAX];
	size_t		 in_len;
	char		 out[OUT_MAX];
	size_t		 out_len;
	struct pending	 pend[MAX_OUTSTANDING + 2];
	int		 npend;
	struct lease	 leases[MAX_LEASES];
	int		 nleases;
	long long	 next_id;
	long long	 next_at;
};

static struct {
	char		 dir[PATHLEN / 2];
	char		 sock[PATHLEN], conf[PATHLEN], log[PATHLEN];
	char		 models_dir[PATHLEN];
	pid_t		 poold;
	int		 status;
	bool		 exited;
	struct client	*clients;
	int		 nclients;
	int		 mon;		/* the monitor's connection */
	long long	 t0;
	/* counts */
	unsigned long	 sent[K_BAD + 1], answered[K_BAD + 1];
	unsigned long	 errors[16];	/* by error code, see err_index() */
	unsigned long	 unanswered, bad_release, used_over, rss_over;
	unsigned long	 lingering_zombies, zombie_samples, hangups;
	unsigned long	 chaos_kills, unexpected, reconnect_fail, abandoned;
	long long	 max_late_ms;
} S;

static const char *const err_codes[] = {
	"bad_request", "unknown_command", "unknown_model", "busy",
	"too_large", "start_failed", "timeout", "not_found", "shutting_down",
	"forbidden", "internal", "lease_lost", "other",
};
#define NERR	(sizeof(err_codes) / sizeof(err_codes[0]))

/* --- small helpers ------------------------------------------------ */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (ms > 0 && nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static _Noreturn void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "soak: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	if (S.poold > 0 && !S.exited)
		kill(S.poold, SIGKILL);
	exit(2);
}

static unsigned
rnd(unsigned n)
{
	return n == 0 ? 0 : (unsigned)(random() % n);
}

static long
env_long(const char *name, long dflt)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? atol(v) : dflt;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) == EOF || fclose(f) == EOF)
		die("cannot write %s: %s", path, strerror(errno));
}

static int
err_index(const char *code)
{
	for (size_t i = 0; i + 1 < NERR; i++)
		if (code != NULL && strcmp(code, err_codes[i]) == 0)
			return (int)i;
	return (int)NERR - 1;
}

/* --- /proc ----------------------------------------------------------- */

static long long
proc_rss(pid_t pid)
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

static int
proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* State letter and parent of pid; 0 if gone. */
static char
proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512], *p, st;
	int pp;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%c %d", &st, &pp) != 2)
		return 0;
	if (ppid != NULL)
		*ppid = pp;
	return st;
}

/* poold's children: their pids, and which are zombies. */
static int
children(pid_t parent, pid_t *out, bool *zombie, int max)
{
	struct dirent *de;
	pid_t pp;
	char st;
	DIR *d;
	long pid;
	int n = 0;

	if ((d = opendir("/proc")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL && n < max) {
		if ((pid = strtol(de->d_name, NULL, 10)) <= 0)
			continue;
		if ((st = proc_state((pid_t)pid, &pp)) == 0 || pp != parent)
			continue;
		out[n] = (pid_t)pid;
		zombie[n++] = st == 'Z';
	}
	closedir(d);
	return n;
}

/* RSS of pid and everything below it. */
static long long
tree_rss(pid_t pid, int depth)
{
	pid_t kids[256];
	bool z[256];
	long long sum = 0, r;
	int n;

	if ((r = proc_rss(pid)) > 0)
		sum += r;
	if (depth < 3) {
		n = children(pid, kids, z, 256);
		for (int i = 0; i < n; i++)
			sum += tree_rss(kids[i], depth + 1);
	}
	return sum;
}

/* --- the daemon ------------------------------------------------------ */

static const char *
bin(const char *var, const char *dflt)
{
	const char *v = getenv(var);

	return v != NULL && v[0] != '\0' ? v : dflt;
}

/* The config; optional keys that the poold at hand may not know yet. */
static void
write_config(bool optional)
{
	json_t *c, *mm;
	char state[PATHLEN + 16];

	mm = json_object();
	for (size_t i = 0; i < NMODELS; i++)
		json_object_set_new(mm, models[i].name, json_pack("{s:I}",
		    "memory", (json_int_t)models[i].mem));
	c = json_pack("{s:s, s:s, s:[s,s,s,s,s,s,s], s:s, s:s, s:s,"
	    " s:[i,i], s:s, s:s, s:s, s:s, s:i, s:o}",
	    "socket", S.sock, "models_dir", S.models_dir,
	    "command", bin("FAKELLAMA_BIN", "build/fakellama"), "-m", "{path}",
	    "--host", "127.0.0.1", "--port", "{port}",
	    "memory_limit", "64M", "reserved", "0", "per_model", "8M",
	    "ports", 40000 + (int)(getpid() % 200) * 100,
	    40000 + (int)(getpid() % 200) * 100 + 99,
	    "idle_timeout", "4s", "start_timeout", "3s", "stop_timeout", "2s",
	    "acquire_timeout", "10s", "max_clients", 256, "models", mm);
	if (optional) {
		snprintf(state, sizeof(state), "%s/state.json", S.dir);
		json_object_set_new(c, "state_file", json_string(state));
		json_object_set_new(c, "max_failures", json_integer(3));
		json_object_set_new(c, "failed_cooldown", json_string("5s"));
	}
	if (c == NULL || json_dump_file(c, S.conf, JSON_INDENT(2)) != 0)
		die("cannot write %s", S.conf);
	json_decref(c);
}

/* poold -n: does it take this config? */
static bool
config_ok(void)
{
	char cmd[3 * PATHLEN];

	snprintf(cmd, sizeof(cmd), "'%s' -n -f '%s' >/dev/null 2>&1",
	    bin("POOLD_BIN", "build/poold"), S.conf);
	return system(cmd) == 0;
}

static int
connect_sock(void)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(S.sock) >= sizeof(sun.sun_path))
		die("socket path too long: %s", S.sock);
	memcpy(sun.sun_path, S.sock, strlen(S.sock) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void
start_poold(void)
{
	const char *poold = bin("POOLD_BIN", "build/poold");
	pid_t parent = getpid();
	long long dl;
	int fd, logfd;

	logfd = open(S.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd == -1)
		die("%s: %s", S.log, strerror(errno));
	if ((S.poold = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (S.poold == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (getppid() != parent)
			_exit(127);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execl(poold, poold, "-f", S.conf, (char *)NULL);
		_exit(127);
	}
	close(logfd);
	for (dl = now_ms() + 5000; now_ms() < dl; sleep_ms(10)) {
		if ((fd = connect_sock()) != -1) {
			close(fd);
			return;
		}
		if (waitpid(S.poold, &S.status, WNOHANG) == S.poold) {
			S.exited = true;
			die("poold exited at once; see %s", S.log);
		}
	}
	die("poold's socket does not accept; see %s", S.log);
}

/* --- the monitor ----------------------------------------------------- */

/* One request on the monitor connection; its reply, NULL if none in 5 s. */
static json_t *
mon_call(const char *line)
{
	static char buf[1 << 20];
	static size_t len;
	struct pollfd pfd = { .fd = S.mon, .events = POLLIN };
	long long dl = now_ms() + GRACE_MS;
	json_t *j;
	char *nl;
	ssize_t n;

	if (send(S.mon, line, strlen(line), MSG_NOSIGNAL) == -1)
		return NULL;
	for (;;) {
		if ((nl = memchr(buf, '\n', len)) != NULL) {
			j = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
			len -= (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, len);
			return j;
		}
		if (now_ms() >= dl || len == sizeof(buf))
			return NULL;
		if (poll(&pfd, 1, (int)(dl - now_ms())) <= 0)
			continue;
		n = recv(S.mon, buf + len, sizeof(buf) - len, 0);
		if (n <= 0)
			return NULL;
		len += (size_t)n;
	}
}

static long long
jint(json_t *j, const char *a, const char *b)
{
	json_t *v = json_object_get(j, a);

	if (b != NULL)
		v = json_object_get(v, b);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* --- clients ---------------------------------------------------------- */

static void
client_queue(struct client *c, enum kind k, long long deadline_ms,
    long long lease, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
client_queue(struct client *c, enum kind k, long long deadline_ms,
    long long lease, const char *fmt, ...)
{
	struct pending *p;
	va_list ap;
	int n;

	if (c->fd == -1 || c->npend >= MAX_OUTSTANDING + 2)
		return;
	p = &c->pend[c->npend++];
	p->id = ++c->next_id;
	p->kind = k;
	p->sent = now_ms();
	p->deadline = p->sent + deadline_ms;
	p->lease = lease;
	p->late = false;
	va_start(ap, fmt);
	n = vsnprintf(c->out + c->out_len, OUT_MAX - c->out_len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= OUT_MAX - c->out_len)
		die("client output buffer full");
	/* Every line ends with ,"id":N}\n: fmt leaves the id out. */
	c->out_len += (size_t)n;
	c->out_len += (size_t)snprintf(c->out + c->out_len,
	    OUT_MAX - c->out_len, ",\"id\":%lld}\n", p->id);
	S.sent[k]++;
}

static void
client_flush(struct client *c)
{
	ssize_t n;

	while (c->fd != -1 && c->out_len > 0) {
		n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
		if (n > 0) {
			memmove(c->out, c->out + n, c->out_len - (size_t)n);
			c->out_len -= (size_t)n;
		} else if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		else
			return;	/* a closed connection shows on read */
	}
}

static void
client_connect(struct client *c)
{
	c->fd = connect_sock();
	c->in_len = c->out_len = 0;
	c->npend = c->nleases = 0;
	if (c->fd == -1)
		S.reconnect_fail++;
}

static void
client_hangup(struct client *c, bool abrupt)
{
	struct linger lg = { 1, 0 };

	if (c->fd == -1)
		return;
	if (abrupt)
		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c->fd);
	c->fd = -1;
	if (abrupt)
		S.abandoned += (unsigned long)c->npend;
	c->npend = c->nleases = 0;	/* poold releases its leases */
}

static const struct model *
pick_model(void)
{
	static int total;
	int r;

	if (total == 0)
		for (size_t i = 0; i < NMODELS; i++)
			total += models[i].weight;
	r = (int)rnd((unsigned)total);
	for (size_t i = 0; i < NMODELS; i++)
		if ((r -= models[i].weight) < 0)
			return &models[i];
	return &models[0];
}

/* One turn of a client: releases that are due, then a random batch. */
static void
client_act(struct client *c, long long now, bool winding_down)
{
	const struct model *m;
	int i, batch, r;
	long long t;

	if (c->fd == -1) {
		if (!winding_down)
			client_connect(c);
		return;
	}
	for (i = 0; i < c->nleases; i++) {
		if (c->npend >= MAX_OUTSTANDING ||
		    (!winding_down && c->leases[i].release_at > now))
			continue;
		client_queue(c, K_RELEASE, 0, c->leases[i].id,
		    "{\"cmd\":\"RELEASE\",\"lease\":%lld", c->leases[i].id);
		c->leases[i--] = c->leases[--c->nleases];
	}
	if (winding_down)
		return;
	for (batch = 1 + (int)rnd(3); batch > 0 && c->npend < MAX_OUTSTANDING;
	    batch--) {
		r = (int)rnd(100);
		m = pick_model();
		if (r < 62) {
			t = 200 + rnd(6000);
			client_queue(c, K_ACQUIRE, t, 0, "{\"cmd\":\"ACQUIRE\","
			    "\"model\":\"%s\",\"timeout_ms\":%lld,\"hold\":%s",
			    m->name, t, rnd(4) != 0 &&
			    c->nleases < MAX_LEASES - MAX_OUTSTANDING ?
			    "true" : "false");
		} else if (r < 65)
			client_queue(c, K_EVICT, STOP_TIMEOUT_MS, 0,
			    "{\"cmd\":\"EVICT\",\"model\":\"%s\",\"force\":%s",
			    m->name, rnd(3) == 0 ? "true" : "false");
		else if (r < 75)
			client_queue(c, K_STATS, 0, 0, "{\"cmd\":\"STATS\"");
		else if (r < 77)
			client_queue(c, K_MODELS, 0, 0, "{\"cmd\":\"MODELS\"");
		else if (r < 78)
			client_queue(c, K_BAD, 0, 0, "{\"cmd\":\"ACQUIRE\","
			    "\"model\":[1,2],\"x\":\"\\u00e9\"");
		else
			client_queue(c, K_PING, 0, 0, "{\"cmd\":\"PING\"");
	}
}

static void
handle_reply(struct client *c, const char *line, size_t len, long long now)
{
	json_t *j, *idv;
	struct pending p;
	const char *code;
	long long lease;
	int i;
	bool ok;

	if ((j = json_loadb(line, len, 0, NULL)) == NULL) {
		S.unexpected++;
		return;
	}
	idv = json_object_get(j, "id");
	for (i = 0; i < c->npend; i++)
		if (json_is_integer(idv) && c->pend[i].id ==
		    json_integer_value(idv))
			break;
	if (i == c->npend) {
		S.unexpected++;
		json_decref(j);
		return;
	}
	p = c->pend[i];
	c->pend[i] = c->pend[--c->npend];
	S.answered[p.kind]++;
	if (now - p.deadline > S.max_late_ms)
		S.max_late_ms = now - p.deadline;
	ok = json_is_true(json_object_get(j, "ok"));
	if (!ok) {
		code = json_string_value(json_object_get(j, "error"));
		S.errors[err_index(code)]++;
		/* A lease whose server died still ends, and says so. */
		if (p.kind == K_RELEASE && (code == NULL ||
		    strcmp(code, "lease_lost") != 0))
			S.bad_release++;
	} else if (p.kind == K_ACQUIRE &&
	    (lease = jint(j, "lease", NULL)) > 0) {
		if (c->nleases < MAX_LEASES) {
			c->leases[c->nleases].id = lease;
			c->leases[c->nleases++].release_at = now + 50 +
			    rnd(1500);
		}
	}
	if (p.kind == K_BAD && ok)
		S.unexpected++;
	json_decref(j);
}

static void
client_read(struct client *c, long long now)
{
	size_t off = 0;
	ssize_t n;
	char *nl;

	for (;;) {
		n = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			if (c->in_len == IN_MAX)
				die("a reply longer than %d bytes", IN_MAX);
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		/* poold closed us: every request pending is unanswered. */
		S.hangups++;
		for (int i = 0; i < c->npend; i++)
			if (!c->pend[i].late)
				S.unanswered++;
		client_hangup(c, false);
		return;
	}
	while ((nl = memchr(c->in + off, '\n', c->in_len - off)) != NULL) {
		handle_reply(c, c->in + off, (size_t)(nl - (c->in + off)), now);
		off = (size_t)(nl - c->in) + 1;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

/* Requests past deadline + grace, each counted once. */
static unsigned long
check_late(long long now)
{
	unsigned long late = 0;

	for (int k = 0; k < S.nclients; k++)
		for (int i = 0; i < S.clients[k].npend; i++) {
			struct pending *p = &S.clients[k].pend[i];

			if (!p->late && now > p->deadline + GRACE_MS) {
				p->late = true;
				late++;
				fprintf(stderr, "soak: %s id %lld of client %d "
				    "unanswered %lld ms after sending\n",
				    kind_name[p->kind], p->id, k,
				    now - p->sent);
			}
		}
	S.unanswered += late;
	return late;
}

/*
 * Reaps what comes to us: poold, and orphans of its servers (we are a
 * subreaper).  true once poold has exited.
 */
static bool
reap_all(void)
{
	pid_t p;
	int st;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0)
		if (p == S.poold) {
			S.status = st;
			S.exited = true;
		}
	return S.exited;
}

/* --- chaos ------------------------------------------------------------ */

/* SIGKILLs one random server of poold: a crash nobody planned. */
static void
chaos_kill(void)
{
	pid_t kids[256];
	bool z[256];
	int n;

	if ((n = children(S.poold, kids, z, 256)) == 0)
		return;
	n = (int)rnd((unsigned)n);
	if (!z[n] && kill(kids[n], SIGKILL) == 0)
		S.chaos_kills++;
}

/* --- one second's sample ---------------------------------------------- */

struct sample {
	long long	 t, rss, fds, used, budget, kids_rss;
	int		 servers, waiting, clients, zombies;
	unsigned long	 sent, answered;
};

static pid_t	 last_zombies[256];
static int	 nlast_zombies;

static void
take_sample(struct sample *s, long long now)
{
	pid_t kids[256], zs[256];
	bool z[256];
	json_t *st;
	int n, nz = 0;

	memset(s, 0, sizeof(*s));
	s->t = (now - S.t0) / 1000;
	s->rss = proc_rss(S.poold);
	s->fds = proc_fds(S.poold);
	n = children(S.poold, kids, z, 256);
	for (int i = 0; i < n; i++) {
		if (z[i]) {
			zs[nz++] = kids[i];
			for (int j = 0; j < nlast_zombies; j++)
				if (last_zombies[j] == kids[i]) {
					S.lingering_zombies++;
					fprintf(stderr, "soak: zombie %d of "
					    "poold in two samples\n",
					    (int)kids[i]);
				}
		} else
			s->kids_rss += tree_rss(kids[i], 1);
	}
	memcpy(last_zombies, zs, sizeof(pid_t) * (size_t)nz);
	nlast_zombies = nz;
	s->zombies = nz;
	S.zombie_samples += nz;
	if (s->kids_rss > BUDGET) {
		S.rss_over++;
		fprintf(stderr, "soak: children's RSS %lld > budget %lld\n",
		    s->kids_rss, (long long)BUDGET);
	}
	if ((st = mon_call("{\"cmd\":\"STATS\"}\n")) == NULL) {
		S.unanswered++;
		fprintf(stderr, "soak: the monitor's STATS got no answer\n");
		return;
	}
	s->used = jint(st, "memory", "used");
	s->budget = jint(st, "memory", "budget");
	s->servers = (int)json_array_size(json_object_get(st, "servers"));
	s->waiting = (int)jint(st, "waiting", NULL);
	s->clients = (int)jint(st, "clients", NULL);
	if (s->used > s->budget) {
		S.used_over++;
		fprintf(stderr, "soak: STATS used %lld > budget %lld\n",
		    s->used, s->budget);
	}
	json_decref(st);
	for (int k = 0; k <= K_BAD; k++) {
		s->sent += S.sent[k];
		s->answered += S.answered[k];
	}
}

static void
print_header(void)
{
	printf("%6s %9s %5s %7s %9s %9s %7s %7s %7s %8s %8s\n", "t(s)",
	    "rss(KiB)", "fds", "servers", "used(MiB)", "kids(MiB)", "waiting",
	    "clients", "zombies", "req/s", "answers");
}

static void
print_row(const struct sample *s, const struct sample *prev)
{
	double dt = prev != NULL ? (double)(s->t - prev->t) : (double)s->t;

	if (dt <= 0)
		dt = 1;

	printf("%6lld %9lld %5lld %7d %9.1f %9.1f %7d %7d %7d %8.0f %8lu\n",
	    s->t, s->rss / 1024, s->fds, s->servers,
	    (double)s->used / MIB, (double)s->kids_rss / MIB, s->waiting,
	    s->clients, s->zombies,
	    (double)(s->sent - (prev ? prev->sent : 0)) / dt, s->answered);
	fflush(stdout);
}

/* --- the run ----------------------------------------------------------- */

static void
setup_dir(void)
{
	char tmpl[] = "/tmp/poold-soak.XXXXXX", path[2 * PATHLEN];

	if (mkdtemp(tmpl) == NULL)
		die("mkdtemp: %s", strerror(errno));
	snprintf(S.dir, sizeof(S.dir), "%s", tmpl);
	snprintf(S.models_dir, sizeof(S.models_dir), "%s/models", S.dir);
	snprintf(S.sock, sizeof(S.sock), "%s/poold.sock", S.dir);
	snprintf(S.conf, sizeof(S.conf), "%s/poold.json", S.dir);
	snprintf(S.log, sizeof(S.log), "%s/poold.log", S.dir);
	if (mkdir(S.models_dir, 0755) == -1)
		die("mkdir: %s", strerror(errno));
	for (size_t i = 0; i < NMODELS; i++) {
		snprintf(path, sizeof(path), "%s/%s.gguf", S.models_dir,
		    models[i].name);
		write_file(path, models[i].file);
	}
}

static void
rm_dir(void)
{
	char cmd[PATHLEN + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", S.dir);
	(void)!system(cmd);
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1024) {
		rl.rlim_cur = rl.rlim_max < 1024 ? rl.rlim_max : 1024;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(void)
{
	long seconds = env_long("SOAK_SECONDS", 300);
	long report = env_long("SOAK_REPORT_S", 10);
	struct sample *samples, *first, *last;
	struct pollfd *pfds;
	long long now, end, next_sample, next_chaos, drain_end;
	long long min_rss = LLONG_MAX, max_rss = 0, min_fds = LLONG_MAX;
	long long max_fds = 0, max_kids = 0, max_used = 0, leases_left = 0;
	unsigned long total_sent = 0, total_answered = 0;
	int nsamples = 0, i, n, failures = 0, maxs = 0;
	json_t *st, *srv;
	size_t k;
	bool optional = true, winding_down = false, gone;

	srandom((unsigned)env_long("SOAK_SEED", (long)getpid()));
	S.nclients = (int)env_long("SOAK_CLIENTS", 50);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	raise_nofile();
	setup_dir();
	write_config(true);
	if (!config_ok()) {
		optional = false;
		write_config(false);
		if (!config_ok())
			die("poold -n refuses %s", S.conf);
	}
	start_poold();
	if ((S.mon = connect_sock()) == -1)
		die("monitor: %s", strerror(errno));
	S.clients = calloc((size_t)S.nclients, sizeof(*S.clients));
	samples = calloc((size_t)seconds + 64, sizeof(*samples));
	pfds = calloc((size_t)S.nclients, sizeof(*pfds));
	if (S.clients == NULL || samples == NULL || pfds == NULL)
		die("out of memory");
	printf("soak: %ld s, %d clients, %zu models, budget %lld MiB, poold "
	    "%d, config %s%s\n", seconds, S.nclients, NMODELS,
	    (long long)BUDGET / MIB, (int)S.poold, S.conf,
	    optional ? "" : " (without state_file/max_failures: not known "
	    "to this poold)");
	for (k = 0; k < NMODELS; k++)
		if (models[k].mem <= BUDGET)
			maxs += (int)(models[k].mem / MIB);
	printf("soak: the models that fit the budget want %d MiB together\n",
	    maxs);
	for (i = 0; i < S.nclients; i++) {
		client_connect(&S.clients[i]);
		S.clients[i].next_at = now_ms() + rnd(200);
	}
	print_header();
	S.t0 = now = now_ms();
	end = S.t0 + seconds * 1000;
	next_sample = S.t0 + 1000;
	next_chaos = S.t0 + CHAOS_EVERY_MS;
	drain_end = end + STOP_TIMEOUT_MS + 6000 + GRACE_MS;

	while (now < drain_end) {
		if (!winding_down && now >= end) {
			winding_down = true;
			for (i = 0; i < S.nclients; i++)
				client_act(&S.clients[i], now, true);
		}
		for (i = n = 0; i < S.nclients; i++) {
			struct client *c = &S.clients[i];

			if (!winding_down && now >= c->next_at) {
				/* One client in 2,000 turns hangs up hard. */
				if (rnd(2000) == 0)
					client_hangup(c, true);
				else
					client_act(c, now, false);
				c->next_at = now + 20 + rnd(180);
			} else if (winding_down)
				client_act(c, now, true);
			client_flush(c);
			pfds[i].fd = c->fd;
			pfds[i].events = POLLIN | (c->out_len ? POLLOUT : 0);
			pfds[i].revents = 0;
		}
		poll(pfds, (nfds_t)S.nclients, 10);
		now = now_ms();
		for (i = 0; i < S.nclients; i++)
			if (S.clients[i].fd != -1 &&
			    (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				client_read(&S.clients[i], now);
		if (reap_all()) {
			fprintf(stderr, "soak: poold died: status 0x%x; see %s\n",
			    S.status, S.log);
			failures++;
			break;
		}
		if (!winding_down && now >= next_chaos) {
			if (rnd(2) == 0)
				chaos_kill();
			next_chaos = now + CHAOS_EVERY_MS;
		}
		if (now >= next_sample) {
			check_late(now);
			if (nsamples < seconds + 64) {
				take_sample(&samples[nsamples], now);
				if (report > 0 && nsamples % report ==
				    report - 1)
					print_row(&samples[nsamples],
					    nsamples >= report ?
					    &samples[nsamples - report] : NULL);
				nsamples++;
			}
			next_sample += 1000;
		}
		if (winding_down) {
			for (i = n = 0; i < S.nclients; i++)
				n += S.clients[i].npend +
				    S.clients[i].nleases;
			if (n == 0)
				break;
		}
	}
	check_late(now_ms() + GRACE_MS * 1000);	/* what is left is late */

	/* Every lease released: no server may hold one. */
	if (!S.exited && (st = mon_call("{\"cmd\":\"STATS\"}\n")) != NULL) {
		json_array_foreach(json_object_get(st, "servers"), k, srv)
			leases_left += jint(srv, "leases", NULL);
		json_decref(st);
	}
	for (i = 0; i < S.nclients; i++)
		client_hangup(&S.clients[i], false);

	/* Shutdown: exit 0, no server left. */
	if (!S.exited) {
		kill(S.poold, SIGTERM);
		for (now = now_ms(); !S.exited && now_ms() - now <
		    STOP_TIMEOUT_MS + 5000; sleep_ms(20))
			(void)reap_all();
		if (!S.exited || !WIFEXITED(S.status) ||
		    WEXITSTATUS(S.status) != 0) {
			fprintf(stderr, "soak: poold did not exit 0 on SIGTERM "
			    "(status 0x%x)\n", S.status);
			failures++;
			if (!S.exited)
				kill(S.poold, SIGKILL);
		}
	}
	sleep_ms(300);
	{
		pid_t kids[256];
		bool z[256];

		/* Orphans of poold come to us (subreaper); dead is fine. */
		(void)reap_all();
		n = children(getpid(), kids, z, 256);
		gone = true;
		for (i = 0; i < n; i++) {
			if (z[i])
				continue;
			gone = false;
			fprintf(stderr, "soak: process %d left after poold "
			    "exited\n", (int)kids[i]);
			kill(kids[i], SIGKILL);
		}
		(void)reap_all();
	}
	if (!gone)
		failures++;

	/* --- summary --- */
	first = nsamples > 0 ? &samples[0] : NULL;
	last = nsamples > 0 ? &samples[nsamples - 1] : NULL;
	for (i = 0; i < nsamples; i++) {
		struct sample *s = &samples[i];

		if (s->rss > 0 && s->rss < min_rss)
			min_rss = s->rss;
		if (s->rss > max_rss)
			max_rss = s->rss;
		if (s->fds >= 0 && s->fds < min_fds)
			min_fds = s->fds;
		if (s->fds > max_fds)
			max_fds = s->fds;
		if (s->kids_rss > max_kids)
			max_kids = s->kids_rss;
		if (s->used > max_used)
			max_used = s->used;
	}
	for (i = 0; i <= K_BAD; i++) {
		total_sent += S.sent[i];
		total_answered += S.answered[i];
	}
	printf("\nsummary (%d samples over %lld s)\n", nsamples,
	    last ? last->t : 0LL);
	if (first != NULL)
		printf("  poold RSS      first %lld KiB, last %lld KiB, min %lld,"
		    " max %lld\n", first->rss / 1024, last->rss / 1024,
		    min_rss / 1024, max_rss / 1024);
	if (first != NULL)
		printf("  poold fds      first %lld, last %lld, min %lld, max "
		    "%lld\n", first->fds, last->fds, min_fds, max_fds);
	printf("  requests       %lu sent, %lu answered", total_sent,
	    total_answered);
	for (i = 0; i <= K_BAD; i++)
		printf("%s %s %lu/%lu", i ? "," : ":", kind_name[i],
		    S.answered[i], S.sent[i]);
	printf("\n  errors        ");
	for (k = 0; k < NERR; k++)
		if (S.errors[k] > 0)
			printf(" %s %lu", err_codes[k], S.errors[k]);
	printf("\n  chaos          %lu servers SIGKILLed; clients hung up "
	    "abruptly, abandoning %lu requests; poold closed %lu clients\n",
	    S.chaos_kills, S.abandoned, S.hangups);
	printf("  memory         max STATS used %.1f MiB, max children RSS "
	    "%.1f MiB, budget %.1f MiB\n", (double)max_used / MIB,
	    (double)max_kids / MIB, (double)BUDGET / MIB);
	printf("  zombies        %lu seen in samples (transient), %lu in two "
	    "samples in a row\n", S.zombie_samples, S.lingering_zombies);
	printf("\ninvariants\n");
#define INV(name, v) do {						\
	printf("  %-44s %lu%s\n", name, (unsigned long)(v),		\
	    (v) ? "  FAILED" : "");					\
	if (v)								\
		failures++;						\
} while (0)
	INV("budget violations (STATS used > budget)", S.used_over);
	INV("budget violations (children RSS > budget)", S.rss_over);
	INV("requests unanswered by deadline + 5 s", S.unanswered);
	INV("RELEASEs of held leases not ok", S.bad_release);
	INV("zombies lingering across samples", S.lingering_zombies);
	INV("leases left after every client released", leases_left);
	INV("replies unexpected (no such id, not JSON)", S.unexpected);
	INV("processes left after poold exited", !gone);
	printf("\nsoak: %s (log %s)\n", failures ? "FAILED" : "passed",
	    S.log);
	if (failures == 0 && getenv("SOAK_KEEP") == NULL)
		rm_dir();
	return failures ? 1 : 0;
}
