/*
 * common.c — helpers shared by poold's benchmarks; see bench.h.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench.h"
#include "poolc.h"
#include "proto.h"

#define TRACKED_MAX	64
#define TMPDIRS_MAX	16

static pid_t	 tracked[TRACKED_MAX];
static char	*tmpdirs[TMPDIRS_MAX];
static bool	 cleanup_installed;

/* --- time and statistics --- */

int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

void
sleep_ms(int64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * NS_PER_MS };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
percentile(double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	/* nearest rank */
	i = (size_t)(p / 100 * (double)n + 0.999999);
	if (i > 0)
		i--;
	if (i >= n)
		i = n - 1;
	return v[i];
}

struct summary
summarize(double *v, size_t n)
{
	struct summary s = { 0, 0, 0, n };

	if (n == 0)
		return s;
	qsort(v, n, sizeof(*v), cmp_double);
	s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	s.min = v[0];
	s.max = v[n - 1];
	return s;
}

char *
fmt_summary(char *buf, size_t len, const char *fmt, struct summary s)
{
	char a[32], b[32], c[32];

	snprintf(a, sizeof(a), fmt, s.med);
	snprintf(b, sizeof(b), fmt, s.min);
	snprintf(c, sizeof(c), fmt, s.max);
	snprintf(buf, len, "%s [%s-%s]", a, b, c);
	return buf;
}

void
table_row(const char *section, const char *what, const char *poold,
    const char *baseline, const char *ratio, const char *target,
    const char *verdict)
{
#define DASH(s)	((s) != NULL && *(s) != '\0' ? (s) : "-")
	printf("ROW\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", DASH(section), DASH(what),
	    DASH(poold), DASH(baseline), DASH(ratio), DASH(target),
	    DASH(verdict));
#undef DASH
	fflush(stdout);
}

void
table_note(const char *fmt, ...)
{
	va_list ap;

	printf("NOTE\t");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

void
say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "  ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* --- processes --- */

/* Every pid under root (not root itself), found through /proc. */
static size_t
descendants(pid_t root, pid_t *out, size_t max)
{
	size_t n = 0, i = 0;

	n = children_of(root, out, max);
	while (i < n && n < max) {
		n += children_of(out[i], out + n, max - n);
		i++;
	}
	return n;
}

static void
kill_tree(pid_t pid, int sig)
{
	pid_t below[4096];
	size_t n = descendants(pid, below, 4096);

	(void)kill(pid, sig);
	for (size_t i = 0; i < n; i++)
		(void)kill(below[i], sig);
}

void
kill_tracked(void)
{
	pid_t own[4096];
	size_t n;

	for (int i = 0; i < TRACKED_MAX; i++)
		if (tracked[i] > 0) {
			kill_tree(tracked[i], SIGKILL);
			while (waitpid(tracked[i], NULL, 0) == -1 &&
			    errno == EINTR)
				;
			tracked[i] = 0;
		}
	/* Orphans were reparented to us (we are a subreaper). */
	n = descendants(getpid(), own, 4096);
	for (size_t i = 0; i < n; i++)
		(void)kill(own[i], SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void
cleanup(void)
{
	kill_tracked();
	for (int i = 0; i < TMPDIRS_MAX; i++)
		if (tmpdirs[i] != NULL) {
			rm_rf(tmpdirs[i]);
			free(tmpdirs[i]);
			tmpdirs[i] = NULL;
		}
}

static void
on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
install_cleanup(void)
{
	if (cleanup_installed)
		return;
	cleanup_installed = true;
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
}

pid_t
spawn(char *const argv[], const char *logpath, int cpu)
{
	pid_t pid;
	int fd, i;

	install_cleanup();
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		/* The bench's subreaper role is not inherited by exec'd
		 * programs that care; but end with us anyway. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if ((fd = open("/dev/null", O_RDONLY)) != -1) {
			dup2(fd, 0);
			close(fd);
		}
		if (logpath != NULL) {
			fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd != -1) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		pin_cpu(cpu);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	for (i = 0; i < TRACKED_MAX && tracked[i] > 0; i++)
		;
	if (i < TRACKED_MAX)
		tracked[i] = pid;
	return pid;
}

void
stop_process(pid_t pid, int timeout_ms)
{
	pid_t below[4096];
	size_t n;
	int64_t until = now_ns() + (int64_t)timeout_ms * NS_PER_MS;
	pid_t r;

	n = descendants(pid, below, 4096);
	(void)kill(pid, SIGTERM);
	for (;;) {
		r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r == -1 && errno == ECHILD))
			break;
		if (now_ns() > until) {
			kill_tree(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
				;
			break;
		}
		sleep_ms(2);
	}
	/* What it left behind (reparented to us): by pid, never by name. */
	for (size_t i = 0; i < n; i++)
		if (kill(below[i], 0) == 0)
			(void)kill(below[i], SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	for (int i = 0; i < TRACKED_MAX; i++)
		if (tracked[i] == pid)
			tracked[i] = 0;
}

size_t
children_of(pid_t ppid, pid_t *out, size_t max)
{
	DIR *d;
	struct dirent *de;
	char path[300], buf[512], *p;
	size_t n = 0;
	long pp;
	int fd;
	ssize_t len;

	if ((d = opendir("/proc")) == NULL)
		return 0;
	while (n < max && (de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((fd = open(path, O_RDONLY)) == -1)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		/* pid (comm) state ppid: comm may hold spaces and ')' */
		if ((p = strrchr(buf, ')')) == NULL)
			continue;
		if (sscanf(p + 2, "%*c %ld", &pp) == 1 && pp == ppid)
			out[n++] = (pid_t)atol(de->d_name);
	}
	closedir(d);
	return n;
}

uint64_t
proc_rss(pid_t pid)
{
	char path[64], *s, *p;
	uint64_t kb = 0;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((s = read_file(path, NULL)) == NULL)
		return 0;
	if ((p = strstr(s, "VmRSS:")) != NULL)
		kb = strtoull(p + 6, NULL, 10);
	free(s);
	return kb * 1024;
}

double
proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY)) == -1)
		return -1;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -1;
	buf[len] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* fields after comm: state(3) ... utime(14) stime(15) */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

bool
proc_alive(pid_t pid)
{
	char path[64], *s, *p;
	bool alive;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((s = read_file(path, NULL)) == NULL)
		return false;
	/* a zombie is not alive: it only waits for its reap */
	p = strrchr(s, ')');
	alive = p != NULL && p[2] != 'Z' && p[2] != 'X';
	free(s);
	return alive;
}

void
pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

int
ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

long
raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -1;
	if (rl.rlim_max != RLIM_INFINITY && (rlim_t)want > rl.rlim_max)
		want = (long)rl.rlim_max;
	if ((rlim_t)want > rl.rlim_cur) {
		rl.rlim_cur = (rlim_t)want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (long)rl.rlim_cur;
}

long
perf_value(const char *txt, const char *event)
{
	const char *line = txt, *c1, *c2, *nl;
	size_t elen = strlen(event);

	while (*line != '\0') {
		nl = strchr(line, '\n');
		if (nl == NULL)
			nl = line + strlen(line);
		/* value,unit,event,... */
		if ((c1 = memchr(line, ',', (size_t)(nl - line))) != NULL &&
		    (c2 = memchr(c1 + 1, ',', (size_t)(nl - c1 - 1))) != NULL &&
		    (size_t)(nl - c2 - 1) >= elen &&
		    strncmp(c2 + 1, event, elen) == 0 &&
		    (c2[1 + elen] == ',' || c2 + 1 + elen == nl))
			return line[0] == '<' ? 0 : atol(line);
		line = *nl != '\0' ? nl + 1 : nl;
	}
	return -1;
}

const char *
llama_binary(const char *prefix)
{
	static char path[1024];

	snprintf(path, sizeof(path), "%s/root/usr/bin/llama-server", prefix);
	if (access(path, X_OK) == 0)
		return path;
	snprintf(path, sizeof(path), "%s/bin/llama-server", prefix);
	return path;
}

/* --- files --- */

void
write_file(const char *path, const char *fmt, ...)
{
	va_list ap;
	FILE *f;

	if ((f = fopen(path, "w")) == NULL)
		die("%s: %s", path, strerror(errno));
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	if (fclose(f) == EOF)
		die("%s: %s", path, strerror(errno));
}

char *
read_file(const char *path, size_t *lenp)
{
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap)) == NULL) {
				free(buf);
				close(fd);
				return NULL;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

char *
make_tmpdir(const char *name)
{
	char tmpl[128], *dir;
	int i;

	install_cleanup();
	snprintf(tmpl, sizeof(tmpl), "/tmp/pbench-%s.XXXXXX", name);
	if ((dir = mkdtemp(tmpl)) == NULL)
		die("mkdtemp: %s", strerror(errno));
	dir = strdup(dir);
	for (i = 0; i < TMPDIRS_MAX && tmpdirs[i] != NULL; i++)
		;
	if (i < TMPDIRS_MAX && getenv("BENCH_KEEP") == NULL)
		tmpdirs[i] = strdup(dir);
	return dir;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) == -1 ? 0 : 0;
}

void
rm_rf(const char *path)
{
	(void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- sockets --- */

int
unix_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
unix_connect_wait(const char *path, int timeout_ms)
{
	int64_t until = now_ns() + (int64_t)timeout_ms * NS_PER_MS;
	struct timespec ts = { 0, 100 * NS_PER_US };
	int fd;

	while ((fd = unix_connect(path)) == -1) {
		if (now_ns() > until)
			return -1;
		nanosleep(&ts, NULL);
	}
	return fd;
}

int
tcp_connect(int port)
{
	struct sockaddr_in sin;
	int fd, one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void
lb_init(struct linebuf *lb, int fd)
{
	memset(lb, 0, sizeof(*lb));
	lb->fd = fd;
}

void
lb_free(struct linebuf *lb)
{
	free(lb->buf);
	lb->buf = NULL;
}

char *
lb_line(struct linebuf *lb, size_t *lenp)
{
	char *nl, *nb;
	ssize_t n;
	size_t len;

	for (;;) {
		nl = lb->len > lb->off ? memchr(lb->buf + lb->off, '\n',
		    lb->len - lb->off) : NULL;
		if (nl != NULL) {
			char *line = lb->buf + lb->off;

			*nl = '\0';
			len = (size_t)(nl - line);
			lb->off += len + 1;
			if (lenp != NULL)
				*lenp = len;
			return line;
		}
		if (lb->off > 0) {
			memmove(lb->buf, lb->buf + lb->off, lb->len - lb->off);
			lb->len -= lb->off;
			lb->off = 0;
		}
		if (lb->cap - lb->len < 4096) {
			lb->cap = lb->cap ? lb->cap * 2 : 65536;
			if ((nb = realloc(lb->buf, lb->cap)) == NULL)
				return NULL;
			lb->buf = nb;
		}
		n = read(lb->fd, lb->buf + lb->len, lb->cap - lb->len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		lb->len += (size_t)n;
	}
}

char *
roundtrip(struct linebuf *lb, const char *line)
{
	char *r;

	if (write_all(lb->fd, line, strlen(line)) == -1)
		return NULL;
	if ((r = lb_line(lb, NULL)) == NULL)
		return NULL;
	return strdup(r);
}

long long
json_int(const char *line, const char *key, long long def)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if ((p = strstr(line, pat)) == NULL)
		return def;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	return strtoll(p, NULL, 10);
}

/* --- HTTP --- */

int
http_request(int port, const char *method, const char *path,
    const char *body, struct http_result *r)
{
	char head[1024], buf[16384];
	int64_t t0;
	size_t blen = body != NULL ? strlen(body) : 0, keep;
	ssize_t n;
	int fd, hlen;
	char *p;

	memset(r, 0, sizeof(*r));
	t0 = now_ns();
	if ((fd = tcp_connect(port)) == -1)
		return -1;
	if (body != NULL)
		hlen = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: "
		    "127.0.0.1:%d\r\nConnection: close\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\n\r\n",
		    method, path, port, blen);
	else
		hlen = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: "
		    "127.0.0.1:%d\r\nConnection: close\r\n\r\n", method,
		    path, port);
	if (write_all(fd, head, (size_t)hlen) == -1 ||
	    (blen > 0 && write_all(fd, body, blen) == -1)) {
		close(fd);
		return -1;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (r->bytes == 0)
			r->first_byte_ns = now_ns() - t0;
		keep = sizeof(r->body) - 1 - (r->bytes < sizeof(r->body) - 1 ?
		    r->bytes : sizeof(r->body) - 1);
		if (keep > (size_t)n)
			keep = (size_t)n;
		memcpy(r->body + (r->bytes < sizeof(r->body) - 1 ? r->bytes :
		    sizeof(r->body) - 1), buf, keep);
		r->bytes += (size_t)n;
		if (r->first_data_ns == 0) {
			r->body[r->bytes < sizeof(r->body) - 1 ? r->bytes :
			    sizeof(r->body) - 1] = '\0';
			if (strstr(r->body, "\ndata: ") != NULL)
				r->first_data_ns = now_ns() - t0;
		}
	}
	r->total_ns = now_ns() - t0;
	close(fd);
	r->body[r->bytes < sizeof(r->body) - 1 ? r->bytes :
	    sizeof(r->body) - 1] = '\0';
	if (sscanf(r->body, "HTTP/%*d.%*d %d", &r->status) != 1)
		r->status = 0;
	/* keep only the body in r->body */
	if ((p = strstr(r->body, "\r\n\r\n")) != NULL)
		memmove(r->body, p + 4, strlen(p + 4) + 1);
	return r->status;
}

int
poold_http_port(struct poolc *c)
{
	json_t *o, *http;
	json_error_t err;
	const char *listen, *colon;
	char *json;
	int port = -1;

	if (poolc_stats(c, &json) == -1)
		return -1;
	if ((o = json_loads(json, 0, &err)) != NULL &&
	    (http = json_object_get(o, "http")) != NULL &&
	    (listen = json_string_value(json_object_get(http, "listen")))
	    != NULL && (colon = strrchr(listen, ':')) != NULL)
		port = atoi(colon + 1);
	json_decref(o);
	free(json);
	return port;
}

int64_t
http_wait_200(int port, const char *path, int timeout_ms)
{
	int64_t until = now_ns() + (int64_t)timeout_ms * NS_PER_MS;
	struct http_result r;

	while (now_ns() < until) {
		if (http_request(port, "GET", path, NULL, &r) == 200)
			return now_ns();
		sleep_ms(5);
	}
	return -1;
}

/* One request line, encoded by the protocol module as clients do. */
char *
request_line(enum proto_cmd cmd, long long id, const char *model, bool hold)
{
	struct proto_request req;
	char *line;

	proto_request_init(&req);
	req.cmd = cmd;
	req.id = json_integer(id);
	if (model != NULL)
		snprintf(req.model, sizeof(req.model), "%s", model);
	req.hold = hold;
	if ((line = proto_encode_request(&req)) == NULL)
		die("proto_encode_request");
	proto_request_clear(&req);
	return line;
}
