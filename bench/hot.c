/*
 * hot.c — part 1: the hot path.  ACQUIRE+RELEASE of a running model,
 * through libpoolc (one synchronous pair at a time per client) and
 * pipelined on raw sockets (lines from proto_encode_request), with 1, 8
 * and 64 clients, against a raw UNIX-socket echo server answering lines
 * of the same sizes in the same run.  Then poold is profiled under the
 * 8-client pipelined load.
 *
 *	hot -b BUILDDIR [-r reps] [-d ms] [-o profile.txt]
 *
 * BUILDDIR holds poold, fakellama and bench/echo.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "poolc.h"
#include "proto.h"

#define WINDOW_PAIRS	16	/* pairs in flight per pipelined connection */
#define WARMUP_MS	100
#define SENTINEL_ID	987654321LL
#define SENTINEL_LEASE	876543219LL
#define MODEL		"hot"

enum target { T_ECHO, T_POOLD };
enum mode { M_SYNC, M_PIPE };

static const char *target_name[] = { "echo", "poold" };

/* Request lines, split around the numbers that change. */
struct lines {
	char	 acq_pre[128], acq_post[128];
	char	 rel_pre[128], rel_mid[128], rel_post[128];
	size_t	 acq_req, rel_req;	/* sizes with typical numbers */
	size_t	 acq_rep, rel_rep;
};

static struct lines L;
static char *sock_poold, *sock_echo;

struct run {
	enum target	 target;
	enum mode	 mode;
	int		 clients;
	int64_t		 start, warm, deadline;
	atomic_int	 ready;
	atomic_llong	 pairs;
	atomic_llong	 errors;
	pthread_mutex_t	 mu;
	double		*lat;
	size_t		 nlat, caplat;
};

static void
run_record(struct run *r, const double *v, size_t n, long long pairs)
{
	pthread_mutex_lock(&r->mu);
	if (r->nlat + n > r->caplat) {
		while (r->nlat + n > r->caplat)
			r->caplat = r->caplat ? r->caplat * 2 : 1 << 16;
		if ((r->lat = realloc(r->lat, r->caplat * sizeof(double))) ==
		    NULL)
			die("out of memory");
	}
	memcpy(r->lat + r->nlat, v, n * sizeof(double));
	r->nlat += n;
	pthread_mutex_unlock(&r->mu);
	atomic_fetch_add(&r->pairs, pairs);
}

/* Per-thread latency buffer. */
struct lat {
	double	*v;
	size_t	 n, cap;
};

static void
lat_add(struct lat *l, double x)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1 << 14;
		if ((l->v = realloc(l->v, l->cap * sizeof(double))) == NULL)
			die("out of memory");
	}
	l->v[l->n++] = x;
}

/* Echo lines: the size of poold's request, asking for poold's reply size. */
static int
echo_line(char *buf, size_t len, size_t req, size_t rep)
{
	int n = snprintf(buf, len, "R%zu ", rep);

	while ((size_t)n + 1 < req && (size_t)n + 1 < len)
		buf[n++] = 'x';
	buf[n++] = '\n';
	buf[n] = '\0';
	return n;
}

static int
poold_acq(char *buf, size_t len, long long id)
{
	return snprintf(buf, len, "%s%lld%s", L.acq_pre, id, L.acq_post);
}

static int
poold_rel(char *buf, size_t len, long long id, long long lease)
{
	return snprintf(buf, len, "%s%lld%s%lld%s", L.rel_pre, id, L.rel_mid,
	    lease, L.rel_post);
}

/* --- synchronous clients --- */

/* Sleeps (never spins: 64 threads may share one cpu) until the start. */
static void
wait_start(struct run *r)
{
	struct timespec ts = { r->start / NS_PER_S, r->start % NS_PER_S };

	atomic_fetch_add(&r->ready, 1);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
}

static void *
sync_poold(void *arg)
{
	struct run *r = arg;
	struct poolc *c;
	struct poolc_server srv;
	struct lat l = { 0 };
	long long pairs = 0;
	int64_t t0, t1;

	if ((c = poolc_connect(sock_poold, 10000)) == NULL ||
	    poolc_error(c) != POOLC_OK)
		die("poolc_connect: %s", c ? poolc_errstr(c) : "no memory");
	wait_start(r);
	for (;;) {
		t0 = now_ns();
		if (t0 >= r->deadline)
			break;
		if (poolc_acquire(c, MODEL, NULL, &srv) == -1 ||
		    poolc_release(c, srv.lease) == -1) {
			atomic_fetch_add(&r->errors, 1);
			break;
		}
		t1 = now_ns();
		if (t0 >= r->warm && t1 <= r->deadline) {
			lat_add(&l, (double)(t1 - t0));
			pairs++;
		}
	}
	run_record(r, l.v, l.n, pairs);
	free(l.v);
	poolc_free(c);
	return NULL;
}

static void *
sync_echo(void *arg)
{
	struct run *r = arg;
	struct linebuf lb;
	struct lat l = { 0 };
	char acq[512], rel[512];
	int acqn, reln, fd;
	long long pairs = 0;
	int64_t t0, t1;

	if ((fd = unix_connect(sock_echo)) == -1)
		die("connect %s: %s", sock_echo, strerror(errno));
	lb_init(&lb, fd);
	acqn = echo_line(acq, sizeof(acq), L.acq_req, L.acq_rep);
	reln = echo_line(rel, sizeof(rel), L.rel_req, L.rel_rep);
	wait_start(r);
	for (;;) {
		t0 = now_ns();
		if (t0 >= r->deadline)
			break;
		if (write_all(fd, acq, (size_t)acqn) == -1 ||
		    lb_line(&lb, NULL) == NULL ||
		    write_all(fd, rel, (size_t)reln) == -1 ||
		    lb_line(&lb, NULL) == NULL) {
			atomic_fetch_add(&r->errors, 1);
			break;
		}
		t1 = now_ns();
		if (t0 >= r->warm && t1 <= r->deadline) {
			lat_add(&l, (double)(t1 - t0));
			pairs++;
		}
	}
	run_record(r, l.v, l.n, pairs);
	free(l.v);
	lb_free(&lb);
	close(fd);
	return NULL;
}

/* --- pipelined clients: one thread drives several connections --- */

struct inflight {
	int64_t	 t0;
	bool	 release;
};

struct pconn {
	int		 fd;
	char		*in;
	size_t		 in_len, in_cap;
	char		*out;
	size_t		 out_len, out_cap;
	struct inflight	 q[2 * WINDOW_PAIRS];
	unsigned	 qh, qn;		/* ring: head, count */
	long long	 next_id;
};

struct pthread_arg {
	struct run	*r;
	int		 first, count;	/* connections of this thread */
};

static void
out_add(struct pconn *c, const char *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		while (c->out_len + n > c->out_cap)
			c->out_cap = c->out_cap ? c->out_cap * 2 : 8192;
		if ((c->out = realloc(c->out, c->out_cap)) == NULL)
			die("out of memory");
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void
push(struct pconn *c, int64_t t0, bool release)
{
	struct inflight *f = &c->q[(c->qh + c->qn) % (2 * WINDOW_PAIRS)];

	f->t0 = t0;
	f->release = release;
	c->qn++;
}

static void
send_acquire(struct run *r, struct pconn *c, int64_t t0)
{
	char line[512];
	int n;

	if (r->target == T_POOLD)
		n = poold_acq(line, sizeof(line), ++c->next_id);
	else
		n = echo_line(line, sizeof(line), L.acq_req, L.acq_rep);
	out_add(c, line, (size_t)n);
	push(c, t0, false);
}

static void
send_release(struct run *r, struct pconn *c, int64_t t0, long long lease)
{
	char line[512];
	int n;

	if (r->target == T_POOLD)
		n = poold_rel(line, sizeof(line), ++c->next_id, lease);
	else
		n = echo_line(line, sizeof(line), L.rel_req, L.rel_rep);
	out_add(c, line, (size_t)n);
	push(c, t0, true);
}

static int
flush_out(struct pconn *c)
{
	size_t off = 0;
	ssize_t n;
	struct timespec ts = { 0, 20000 };

	while (off < c->out_len) {
		n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			nanosleep(&ts, NULL);
			continue;
		}
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	c->out_len = 0;
	return 0;
}

/* Handles what arrived; -1 on a closed connection or a bad reply. */
static int
pconn_read(struct run *r, struct pconn *c, struct lat *l, long long *pairs)
{
	ssize_t n;
	size_t off = 0;
	char *nl, *line;
	struct inflight f;
	int64_t now;

	for (;;) {
		if (c->in_cap - c->in_len < 4096) {
			c->in_cap = c->in_cap ? c->in_cap * 2 : 65536;
			if ((c->in = realloc(c->in, c->in_cap)) == NULL)
				die("out of memory");
		}
		n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		if (n <= 0)
			return -1;
		c->in_len += (size_t)n;
		if ((size_t)n < c->in_cap - c->in_len)
			break;
	}
	now = now_ns();
	while ((nl = memchr(c->in + off, '\n', c->in_len - off)) != NULL) {
		line = c->in + off;
		*nl = '\0';
		off = (size_t)(nl - c->in) + 1;
		if (c->qn == 0)
			return -1;
		f = c->q[c->qh];
		c->qh = (c->qh + 1) % (2 * WINDOW_PAIRS);
		c->qn--;
		if (r->target == T_POOLD && strncmp(line, "{\"ok\":true", 10)) {
			atomic_fetch_add(&r->errors, 1);
			return -1;
		}
		if (!f.release) {
			send_release(r, c, f.t0, r->target == T_POOLD ?
			    json_int(line, "lease", 0) : 0);
			continue;
		}
		if (f.t0 >= r->warm && now <= r->deadline) {
			lat_add(l, (double)(now - f.t0));
			(*pairs)++;
		}
		if (now < r->deadline)
			send_acquire(r, c, now);
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return flush_out(c);
}

static void *
pipe_thread(void *arg)
{
	struct pthread_arg *a = arg;
	struct run *r = a->r;
	struct pconn *cs;
	struct epoll_event ev, evs[64];
	struct lat l = { 0 };
	long long pairs = 0;
	int ep, n, open;

	if ((cs = calloc((size_t)a->count, sizeof(*cs))) == NULL)
		die("out of memory");
	ep = epoll_create1(0);
	for (int i = 0; i < a->count; i++) {
		const char *path = r->target == T_POOLD ? sock_poold :
		    sock_echo;

		if ((cs[i].fd = unix_connect(path)) == -1)
			die("connect %s: %s", path, strerror(errno));
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
		ev.events = EPOLLIN;
		ev.data.ptr = &cs[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	wait_start(r);
	for (int i = 0; i < a->count; i++) {
		for (int k = 0; k < WINDOW_PAIRS; k++)
			send_acquire(r, &cs[i], now_ns());
		if (flush_out(&cs[i]) == -1)
			die("write: %s", strerror(errno));
	}
	open = a->count;
	while (open > 0) {
		n = epoll_wait(ep, evs, 64, 200);
		if (n == -1 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			struct pconn *c = evs[i].data.ptr;

			if (pconn_read(r, c, &l, &pairs) == -1 ||
			    (c->qn == 0 && now_ns() >= r->deadline)) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->fd = -1;
				open--;
			}
		}
		if (now_ns() > r->deadline + 2 * NS_PER_S)
			break;		/* something is stuck: give up */
	}
	for (int i = 0; i < a->count; i++) {
		if (cs[i].fd != -1) {
			atomic_fetch_add(&r->errors, 1);
			close(cs[i].fd);
		}
		free(cs[i].in);
		free(cs[i].out);
	}
	close(ep);
	free(cs);
	run_record(r, l.v, l.n, pairs);
	free(l.v);
	return NULL;
}

/* --- one measurement --- */

struct result {
	double	 p50_us, p99_us, pairs_s;
	double	 cpu, client_cpu;	/* cores used: poold, the clients */
};

static double
self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	    ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* perf stat on poold for the middle of the next measure(), if set. */
static const char *perf_out;
static pid_t perf_pid;
/* poold under callgrind: collect only between warm-up and deadline. */
static pid_t callgrind_pid;

static void
callgrind_collect(bool on)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "callgrind_control -i %s %ld >/dev/null",
	    on ? "on" : "off", (long)callgrind_pid);
	if (system(cmd) != 0)
		say("%s failed", cmd);
}

static void
perf_start(pid_t poold, int duration_ms)
{
	char pidstr[32], secs[32], *argv[16];
	int i = 0;

	snprintf(pidstr, sizeof(pidstr), "%ld", (long)poold);
	snprintf(secs, sizeof(secs), "%.3f", (double)duration_ms / 1000);
	argv[i++] = "perf"; argv[i++] = "stat"; argv[i++] = "-x,";
	argv[i++] = "-o"; argv[i++] = (char *)perf_out; argv[i++] = "-e";
	argv[i++] = "raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait";
	argv[i++] = "-p"; argv[i++] = pidstr; argv[i++] = "--";
	argv[i++] = "sleep"; argv[i++] = secs; argv[i] = NULL;
	perf_pid = spawn(argv, NULL, -1);
}

static struct result
measure(enum target t, enum mode m, int clients, int duration_ms,
    pid_t poold)
{
	struct run r;
	pthread_t th[256];
	struct pthread_arg pa[256];
	pthread_attr_t attr;
	int nth, per;
	double cpu0, cpu1, ccpu0, ccpu1;
	struct result res;
	cpu_set_t set;

	memset(&r, 0, sizeof(r));
	r.target = t;
	r.mode = m;
	r.clients = clients;
	pthread_mutex_init(&r.mu, NULL);
	pthread_attr_init(&attr);
	/* Clients stay off the server's core (cpu 0) when there is another. */
	if (ncpus() > 1) {
		CPU_ZERO(&set);
		for (int i = 1; i < ncpus(); i++)
			CPU_SET(i, &set);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	}
	/* Far enough ahead for every thread to connect first. */
	r.start = now_ns() + 300 * NS_PER_MS;
	r.warm = r.start + WARMUP_MS * NS_PER_MS;
	r.deadline = r.warm + (int64_t)duration_ms * NS_PER_MS;
	if (m == M_SYNC) {
		nth = clients;
		for (int i = 0; i < nth; i++)
			pthread_create(&th[i], &attr, t == T_POOLD ?
			    sync_poold : sync_echo, &r);
	} else {
		nth = ncpus() > 1 ? ncpus() - 1 : 1;
		if (nth > clients)
			nth = clients;
		per = clients / nth;
		for (int i = 0; i < nth; i++) {
			pa[i].r = &r;
			pa[i].first = i * per;
			pa[i].count = i == nth - 1 ? clients - i * per : per;
			pthread_create(&th[i], &attr, pipe_thread, &pa[i]);
		}
	}
	while (now_ns() < r.warm)
		sleep_ms(1);
	cpu0 = proc_cpu_s(poold);
	ccpu0 = self_cpu_s();
	if (perf_out != NULL)
		perf_start(poold, duration_ms / 2);
	if (callgrind_pid > 0)
		callgrind_collect(true);
	while (now_ns() < r.deadline)
		sleep_ms(1);
	if (callgrind_pid > 0)
		callgrind_collect(false);
	cpu1 = proc_cpu_s(poold);
	ccpu1 = self_cpu_s();
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	if (r.errors > 0)
		die("%s %s %d clients: %lld errors", target_name[t],
		    m == M_SYNC ? "sync" : "pipelined", clients,
		    (long long)r.errors);
	res.p50_us = percentile(r.lat, r.nlat, 50) / 1000;
	res.p99_us = percentile(r.lat, r.nlat, 99) / 1000;
	res.pairs_s = (double)r.pairs / ((double)duration_ms / 1000);
	res.cpu = t == T_POOLD ? (cpu1 - cpu0) / ((double)duration_ms / 1000) :
	    0;
	res.client_cpu = (ccpu1 - ccpu0) / ((double)duration_ms / 1000);
	free(r.lat);
	pthread_attr_destroy(&attr);
	return res;
}

/* --- setup --- */

static void
split_at(const char *s, const char *needle, char *pre, size_t prelen,
    const char **rest)
{
	const char *p = strstr(s, needle);

	if (p == NULL)
		die("no %s in %s", needle, s);
	snprintf(pre, prelen, "%.*s", (int)(p - s), s);
	*rest = p + strlen(needle);
}

/* Builds the request templates with proto_encode_request and measures
 * the reply sizes poold gives for them. */
static void
make_lines(void)
{
	struct proto_request req;
	char *line, *reply, buf[512], id[32], lease[32];
	const char *rest, *rest2;
	struct linebuf lb;
	int fd;
	long long got;

	proto_request_init(&req);
	req.cmd = PROTO_CMD_ACQUIRE;
	req.id = json_integer(SENTINEL_ID);
	snprintf(req.model, sizeof(req.model), "%s", MODEL);
	if ((line = proto_encode_request(&req)) == NULL)
		die("proto_encode_request");
	snprintf(id, sizeof(id), "%lld", SENTINEL_ID);
	split_at(line, id, L.acq_pre, sizeof(L.acq_pre), &rest);
	snprintf(L.acq_post, sizeof(L.acq_post), "%s", rest);
	free(line);
	proto_request_clear(&req);

	proto_request_init(&req);
	req.cmd = PROTO_CMD_RELEASE;
	req.id = json_integer(SENTINEL_ID);
	req.lease = SENTINEL_LEASE;
	if ((line = proto_encode_request(&req)) == NULL)
		die("proto_encode_request");
	snprintf(lease, sizeof(lease), "%lld", SENTINEL_LEASE);
	split_at(line, id, L.rel_pre, sizeof(L.rel_pre), &rest);
	split_at(rest, lease, L.rel_mid, sizeof(L.rel_mid), &rest2);
	snprintf(L.rel_post, sizeof(L.rel_post), "%s", rest2);
	free(line);
	proto_request_clear(&req);

	/* Typical sizes: six-digit ids and leases, as after a while. */
	if ((fd = unix_connect(sock_poold)) == -1)
		die("connect %s", sock_poold);
	lb_init(&lb, fd);
	L.acq_req = (size_t)poold_acq(buf, sizeof(buf), 123456);
	if ((reply = roundtrip(&lb, buf)) == NULL || strncmp(reply,
	    "{\"ok\":true", 10) != 0)
		die("ACQUIRE %s: %s", MODEL, reply ? reply : "no reply");
	L.acq_rep = strlen(reply) + 1;
	got = json_int(reply, "lease", 0);
	free(reply);
	L.rel_req = (size_t)poold_rel(buf, sizeof(buf), 123457, got);
	if ((reply = roundtrip(&lb, buf)) == NULL)
		die("RELEASE: no reply");
	L.rel_rep = strlen(reply) + 1;
	free(reply);
	lb_free(&lb);
	close(fd);
	say("lines: ACQUIRE %zu B -> %zu B, RELEASE %zu B -> %zu B",
	    L.acq_req, L.acq_rep, L.rel_req, L.rel_rep);
}

static pid_t
start_poold(const char *bin, const char *conf, const char *log,
    const char *valgrind_out)
{
	char *argv[16];
	char vout[1100];
	int i = 0, fd;
	pid_t pid;

	if (valgrind_out != NULL) {
		snprintf(vout, sizeof(vout), "--callgrind-out-file=%s",
		    valgrind_out);
		argv[i++] = "valgrind";
		argv[i++] = "--tool=callgrind";
		argv[i++] = "--quiet";
		argv[i++] = "--instr-atstart=no";
		argv[i++] = vout;
	}
	argv[i++] = (char *)bin;
	argv[i++] = "-f";
	argv[i++] = (char *)conf;
	argv[i] = NULL;
	pid = spawn(argv, log, ncpus() > 1 ? 0 : -1);
	if ((fd = unix_connect_wait(sock_poold, 30000)) == -1)
		die("poold did not come up; see %s", log);
	close(fd);
	return pid;
}

/* Starts the model (a cold ACQUIRE, no lease) so every later one is hot. */
static void
warm_model(void)
{
	struct poolc *c = poolc_connect(sock_poold, 30000);
	struct poolc_acquire_opts o = { .no_lease = true };
	struct poolc_server srv;

	if (c == NULL || poolc_acquire(c, MODEL, &o, &srv) == -1)
		die("ACQUIRE %s: %s", MODEL, c ? poolc_errstr(c) : "no memory");
	poolc_free(c);
}

static pid_t
start_echo(const char *bin, const char *log)
{
	char *argv[] = { (char *)bin, sock_echo, NULL };
	pid_t pid = spawn(argv, log, ncpus() > 1 ? 0 : -1);
	int fd;

	if ((fd = unix_connect_wait(sock_echo, 5000)) == -1)
		die("echo server did not come up");
	close(fd);
	return pid;
}

/* Syscalls poold makes per request under the pipelined load (perf). */
static double
syscalls_per_request(pid_t poold, int duration_ms, double *epolls)
{
	char out[1100], *s;
	struct result res;
	double sys = -1, ep = -1, reqs;
	int status;

	snprintf(out, sizeof(out), "%s.perf", sock_poold);
	perf_out = out;
	res = measure(T_POOLD, M_PIPE, 8, duration_ms, poold);
	perf_out = NULL;
	while (waitpid(perf_pid, &status, 0) == -1 && errno == EINTR)
		;
	if ((s = read_file(out, NULL)) != NULL) {
		sys = (double)perf_value(s, "raw_syscalls:sys_enter");
		ep = (double)perf_value(s, "syscalls:sys_enter_epoll_wait");
		free(s);
	}
	if (sys <= 0)
		return -1;
	/* perf counted about half the window, at the same rate */
	reqs = res.pairs_s * 2 * (double)duration_ms / 2 / 1000;
	*epolls = ep / reqs;
	return sys / reqs;
}

/* "12,345 ( 7.21%)  file:function [object]" -> percent, name, object */
static bool
annotate_line(const char *line, double *pct, char *fn, size_t fnlen,
    char *obj, size_t objlen)
{
	const char *p = strchr(line, '('), *q, *b;

	if (p == NULL || sscanf(p + 1, "%lf%%", pct) != 1 ||
	    (q = strstr(p, "%)")) == NULL)
		return false;
	q += 2;
	q += strspn(q, " ");
	b = strchr(q, '[');
	snprintf(fn, fnlen, "%.*s", (int)(b != NULL ? b - q - 1 : (long)
	    strcspn(q, "\n")), q);
	obj[0] = '\0';
	if (b != NULL) {
		const char *slash = b + strcspn(b, "]");
		const char *base = b;

		for (const char *t = b; t < slash; t++)
			if (*t == '/')
				base = t;
		snprintf(obj, objlen, "%.*s", (int)(slash - base - 1),
		    base + 1);
	}
	return true;
}

static void
profile(const char *poold_bin, const char *conf, const char *dir,
    const char *outpath, int duration_ms)
{
	char cg[1024], log[1024], cmd[2300], line[1024], fn[512], obj[256];
	char objs[16][256], summary[2048], seen[2048] = "", key[600], *name;
	double objpct[16], pct;
	struct result res;
	FILE *f, *out;
	pid_t pid;
	int shown = 0, nobj = 0, k, o;
	bool body = false;

	snprintf(cg, sizeof(cg), "%s/callgrind.out", dir);
	snprintf(log, sizeof(log), "%s/poold-callgrind.log", dir);
	pid = start_poold(poold_bin, conf, log, cg);
	warm_model();
	callgrind_pid = pid;
	res = measure(T_POOLD, M_PIPE, 8, duration_ms, pid);
	callgrind_pid = 0;
	say("profile: %.0f pairs/s under callgrind", res.pairs_s);
	stop_process(pid, 60000);
	out = outpath != NULL ? fopen(outpath, "w") : NULL;

	/* Self cost: the top functions, and the total per library. */
	snprintf(cmd, sizeof(cmd), "callgrind_annotate --threshold=100 %s "
	    "2>/dev/null", cg);
	if ((f = popen(cmd, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (out != NULL)
			fputs(line, out);
		if (strstr(line, "file:function") != NULL) {
			body = true;
			continue;
		}
		if (body && line[strspn(line, " \t\n")] == '\0')
			body = false;	/* the table ends; source follows */
		/* "75,318,998 (100.0%)  PROGRAM TOTALS": per request, with
		 * the requests answered while callgrind collected. */
		if (strstr(line, "PROGRAM TOTALS") != NULL && res.pairs_s > 0) {
			double ir = 0;

			for (name = line; *name != '\0' && *name != ' '; name++)
				if (*name >= '0' && *name <= '9')
					ir = ir * 10 + (*name - '0');
			table_note("profile: %.0f instructions per request "
			    "(%.0f Ir over %.0f requests)", ir / (res.pairs_s *
			    2 * duration_ms / 1000), ir, res.pairs_s * 2 *
			    duration_ms / 1000);
		}
		if (!body || !annotate_line(line, &pct, fn, sizeof(fn), obj,
		    sizeof(obj)))
			continue;
		if (shown < 8) {
			table_note("profile, self: %5.2f%% %s (%s)", pct, fn,
			    obj);
			shown++;
		}
		if (obj[0] == '\0')
			snprintf(obj, sizeof(obj), "other");
		for (k = 0; k < nobj && strcmp(objs[k], obj) != 0; k++)
			;
		if (k == nobj && nobj < 16) {
			snprintf(objs[nobj], sizeof(objs[nobj]), "%s", obj);
			objpct[nobj++] = 0;
		}
		if (k < nobj)
			objpct[k] += pct;
	}
	pclose(f);
	o = snprintf(summary, sizeof(summary), "profile, self by object:");
	for (int pass = 0; pass < nobj && pass < 6; pass++) {
		int best = -1;

		for (k = 0; k < nobj; k++)
			if (objpct[k] >= 0 && (best < 0 ||
			    objpct[k] > objpct[best]))
				best = k;
		o += snprintf(summary + o, sizeof(summary) - (size_t)o,
		    " %s %.1f%%;", objs[best], objpct[best]);
		objpct[best] = -1;
	}
	table_note("%s", summary);

	/* Inclusive cost of poold's own functions: where the time goes. */
	if (out != NULL)
		fputs("\n==== inclusive ====\n", out);
	snprintf(cmd, sizeof(cmd), "callgrind_annotate --inclusive=yes "
	    "--threshold=100 %s 2>/dev/null", cg);
	if ((f = popen(cmd, "r")) == NULL)
		return;
	body = false;
	shown = 0;
	summary[0] = '\0';
	o = snprintf(summary, sizeof(summary), "profile, inclusive (poold's "
	    "own functions):");
	while (fgets(line, sizeof(line), f) != NULL) {
		if (out != NULL)
			fputs(line, out);
		if (strstr(line, "file:function") != NULL) {
			body = true;
			continue;
		}
		if (body && line[strspn(line, " \t\n")] == '\0')
			body = false;
		if (!body || !annotate_line(line, &pct, fn, sizeof(fn), obj,
		    sizeof(obj)) || shown >= 14)
			continue;
		if (strstr(fn, "supervisord/") == NULL &&
		    strstr(fn, "protocol/") == NULL)
			continue;
		name = strrchr(fn, ':') ? strrchr(fn, ':') + 1 : fn;
		name[strcspn(name, "'")] = '\0';	/* "f'2": a cycle */
		snprintf(key, sizeof(key), " %s ", name);
		if (strstr(seen, key) != NULL)
			continue;
		snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen),
		    "%s", key);
		o += snprintf(summary + o, sizeof(summary) - (size_t)o,
		    " %s %.1f%%;", name, pct);
		shown++;
	}
	pclose(f);
	table_note("%s", summary);
	if (out != NULL)
		fclose(out);
}

static struct summary
pick(struct result res[2][2][3][16], int t, int m, int k, int reps,
    size_t field, double scale)
{
	double v[16];

	for (int i = 0; i < reps; i++)
		v[i] = *(double *)((char *)&res[t][m][k][i] + field) * scale;
	return summarize(v, (size_t)reps);
}

static void
report(struct result res[2][2][3][16], int m, int k, int n, int reps)
{
	struct summary p50[2], p99[2], rate[2], cpu, ccpu[2];
	char what[128], ratio[32], a[96], b[96], mode[64];
	bool sync = m == M_SYNC;

	for (int t = 0; t < 2; t++) {
		p50[t] = pick(res, t, m, k, reps,
		    offsetof(struct result, p50_us), 1);
		p99[t] = pick(res, t, m, k, reps,
		    offsetof(struct result, p99_us), 1);
		rate[t] = pick(res, t, m, k, reps,
		    offsetof(struct result, pairs_s), 2);
		ccpu[t] = pick(res, t, m, k, reps,
		    offsetof(struct result, client_cpu), 100);
	}
	cpu = pick(res, T_POOLD, m, k, reps, offsetof(struct result, cpu), 100);
	snprintf(mode, sizeof(mode), "%s, %d client%s", sync ?
	    "libpoolc sync" : "pipelined", n, n > 1 ? "s" : "");

	snprintf(what, sizeof(what), "%s: p50 pair (us)", mode);
	snprintf(ratio, sizeof(ratio), "%.2fx", p50[T_POOLD].med /
	    p50[T_ECHO].med);
	/* Pipelined latency is queueing (Little: window / rate): no target. */
	table_row("1 hot path", what,
	    fmt_summary(a, sizeof(a), "%.1f", p50[T_POOLD]),
	    fmt_summary(b, sizeof(b), "%.1f", p50[T_ECHO]), ratio,
	    sync ? "<= 2x echo" : "", !sync ? "" :
	    p50[T_POOLD].med <= 2 * p50[T_ECHO].med ? "met" : "NOT met");

	snprintf(what, sizeof(what), "%s: p99 pair (us)", mode);
	snprintf(ratio, sizeof(ratio), "%.2fx", p99[T_POOLD].med /
	    p99[T_ECHO].med);
	table_row("1 hot path", what,
	    fmt_summary(a, sizeof(a), "%.1f", p99[T_POOLD]),
	    fmt_summary(b, sizeof(b), "%.1f", p99[T_ECHO]), ratio, "", "");

	snprintf(what, sizeof(what), "%s: requests/s (CPU%%: poold %.0f, "
	    "clients %.0f vs %.0f)", mode, cpu.med, ccpu[T_POOLD].med,
	    ccpu[T_ECHO].med);
	snprintf(ratio, sizeof(ratio), "%.2fx", rate[T_POOLD].med /
	    rate[T_ECHO].med);
	table_row("1 hot path", what,
	    fmt_summary(a, sizeof(a), "%.0f", rate[T_POOLD]),
	    fmt_summary(b, sizeof(b), "%.0f", rate[T_ECHO]), ratio,
	    !sync && n == 8 ? ">= 100000 req/s" : "", sync || n != 8 ? "" :
	    rate[T_POOLD].med >= 100000 ? "met" : "NOT met");
}

int
main(int argc, char **argv)
{
	const char *build = "build", *profile_out = NULL;
	char poold_bin[1024], fake_bin[1024], echo_bin[1024], conf[1024];
	char log[1024], elog[1024];
	int reps = 5, duration_ms = 500, ch;
	static const int nclients[] = { 1, 8, 64 };
	struct result res[2][2][3][16];
	char *dir;
	pid_t poold, echo;
	double epolls = 0, spr;

	while ((ch = getopt(argc, argv, "b:r:d:o:")) != -1) {
		switch (ch) {
		case 'b': build = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'd': duration_ms = atoi(optarg); break;
		case 'o': profile_out = optarg; break;
		default:
			fprintf(stderr, "usage: hot -b builddir [-r reps] "
			    "[-d ms] [-o profile.txt]\n");
			return 1;
		}
	}
	if (reps < 1 || reps > 16)
		reps = 5;
	snprintf(poold_bin, sizeof(poold_bin), "%s/poold", build);
	snprintf(fake_bin, sizeof(fake_bin), "%s/fakellama", build);
	snprintf(echo_bin, sizeof(echo_bin), "%s/bench/echo", build);
	dir = make_tmpdir("hot");
	if (asprintf(&sock_poold, "%s/poold.sock", dir) == -1 ||
	    asprintf(&sock_echo, "%s/echo.sock", dir) == -1)
		die("out of memory");
	snprintf(conf, sizeof(conf), "%s/models", dir);
	mkdir(conf, 0755);
	snprintf(conf, sizeof(conf), "%s/models/%s.gguf", dir, MODEL);
	write_file(conf, "load_ms=20\nmem=1M\n");
	snprintf(conf, sizeof(conf), "%s/poold.json", dir);
	write_file(conf, "{\n  \"socket\": \"%s\",\n  \"state_file\": \"%s.state\",\n  \"models_dir\": "
	    "\"%s/models\",\n  \"command\": [\"%s\", \"-m\", \"{path}\", "
	    "\"--host\", \"127.0.0.1\", \"--port\", \"{port}\"],\n"
	    "  \"memory_limit\": \"1G\", \"reserved\": \"0\", "
	    "\"per_model\": \"16M\",\n  \"ports\": [25100, 25199],\n"
	    "  \"idle_timeout\": 0\n}\n", sock_poold, sock_poold, dir, fake_bin);
	snprintf(log, sizeof(log), "%s/poold.log", dir);
	snprintf(elog, sizeof(elog), "%s/echo.log", dir);

	poold = start_poold(poold_bin, conf, log, NULL);
	warm_model();
	make_lines();
	echo = start_echo(echo_bin, elog);

	/* Interleaved: every repetition measures echo and poold back to back,
	 * so a noisy moment hits both. */
	for (int rep = 0; rep < reps; rep++)
		for (int m = 0; m < 2; m++)
			for (int k = 0; k < 3; k++)
				for (int t = 0; t < 2; t++)
					res[t][m][k][rep] = measure(t, m,
					    nclients[k], duration_ms, poold);
	say("measured %d x 12 runs of %d ms", reps, duration_ms);
	for (int m = 0; m < 2; m++)
		for (int k = 0; k < 3; k++)
			report(res, m, k, nclients[k], reps);
	table_note("hot path: a pair is ACQUIRE+RELEASE (two round trips); "
	    "requests/s counts both; echo answers lines of poold's sizes "
	    "(%zu/%zu B in, %zu/%zu B out); poold and echo pinned to cpu 0, "
	    "clients on the other cpus; pipelined: %d pairs in flight per "
	    "connection", L.acq_req, L.rel_req, L.acq_rep, L.rel_rep,
	    WINDOW_PAIRS);
	spr = syscalls_per_request(poold, duration_ms, &epolls);
	if (spr > 0)
		table_note("hot path: poold makes %.2f syscalls per request "
		    "(%.3f epoll_wait) under the 8-client pipelined load "
		    "(perf raw_syscalls)", spr, epolls);
	stop_process(echo, 2000);
	stop_process(poold, 5000);
	if (profile_out != NULL)
		profile(poold_bin, conf, dir, profile_out, 2000);
	return 0;
}
