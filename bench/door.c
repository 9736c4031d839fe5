/*
 * door.c — part 6: poold's HTTP front door.
 *
 * Added latency: one hot model; the same POST /v1/chat/completions sent
 * straight to the model's server and through poold's URL, alternately
 * (which goes first alternates too), a new TCP connection each on both
 * sides; p50 and p99 per block of pairs, the median over the blocks.
 * With the stand-in (fakellama) and with the real llama-server.
 *
 * Streams: 1,000 concurrent slow SSE streams (5 stand-in models, 200
 * each: a stand-in serves at most 256 connections), N events a fixed gap
 * apart, read by one epoll client: straight from the stand-ins, then
 * through poold, in the same run.  Per stream the largest gap between
 * two events; poold's CPU time (utime + stime) and peak RSS over the
 * streams.
 *
 *	door -b BUILDDIR [-l LLAMA_PREFIX] [-r reps] [-n pairs] [-s streams]
 *	    [-p parts]
 *
 * parts: any of 'a' (added latency over the stand-in), 'l' (over
 * llama-server), 's' (the streams); all by default.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "poolc.h"

#define STREAM_MODELS	5
#define STREAM_EVENTS	20
#define STREAM_GAP_MS	100
#define PORTS		"[25600, 25649]"

static const char *build = "build";
static const char *llama;

static const char *chat_fmt =
    "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
    "\"Say hello\"}],\"max_tokens\":%d,\"temperature\":0,\"seed\":1%s}";

/* --- poold --- */

struct pool {
	pid_t		 pid;
	struct poolc	*c;
	int		 http;		/* the front door's port */
	char		*tmp;
	char		 sock[1100];
};

static void
pool_start(struct pool *p, const char *name, const char *command,
    const char *extra)
{
	char conf[1200], log[1200], bin[1100];
	char *argv[] = { bin, "-f", conf, NULL };
	int fd;

	p->tmp = make_tmpdir(name);
	snprintf(p->sock, sizeof(p->sock), "%s/poold.sock", p->tmp);
	snprintf(conf, sizeof(conf), "%s/poold.json", p->tmp);
	snprintf(log, sizeof(log), "%s/poold.log", p->tmp);
	snprintf(bin, sizeof(bin), "%s/models", p->tmp);
	mkdir(bin, 0755);
	snprintf(bin, sizeof(bin), "%s/poold", build);
	write_file(conf, "{\n  \"socket\": \"%s\",\n  \"state_file\": "
	    "\"%s.state\",\n  \"models_dir\": \"%s/models\",\n  \"command\": "
	    "%s,\n  \"memory_limit\": \"4G\", \"reserved\": \"0\", "
	    "\"per_model\": \"64M\",\n  \"ports\": " PORTS ", "
	    "\"idle_timeout\": 0,\n  \"max_leases_per_client\": 8192,\n"
	    "  \"http\": {\"listen\": \"127.0.0.1:0\", \"max_conns\": 4096}%s\n"
	    "}\n", p->sock, p->sock, p->tmp, command, extra);
	p->pid = spawn(argv, log, -1);
	if ((fd = unix_connect_wait(p->sock, 10000)) == -1)
		die("poold did not come up; see %s", log);
	close(fd);
	if ((p->c = poolc_connect(p->sock, 10000)) == NULL ||
	    poolc_error(p->c) != POOLC_OK)
		die("poold did not come up; see %s", log);
	if ((p->http = poold_http_port(p->c)) <= 0)
		die("no \"http\" listen address in poold's STATS; see %s", log);
}

static void
pool_stop(struct pool *p)
{
	poolc_free(p->c);
	stop_process(p->pid, 10000);
}

/* Starts model and returns its server's port. */
static int
pool_port(struct pool *p, const char *model)
{
	struct poolc_server srv;

	if (poolc_acquire(p->c, model, NULL, &srv) == -1)
		die("ACQUIRE %s: %s", model, poolc_errstr(p->c));
	if (poolc_release(p->c, srv.lease) == -1)
		die("RELEASE: %s", poolc_errstr(p->c));
	return srv.port;
}

/* --- added latency --- */

static double
post_ms(int port, const char *body)
{
	struct http_result r;

	if (http_request(port, "POST", "/v1/chat/completions", body, &r) !=
	    200)
		die("POST to port %d: status %d %.200s", port, r.status,
		    r.body);
	return (double)r.total_ns / NS_PER_MS;
}

static void
latency_rows(const char *who, double med[4][32], int reps)
{
	static const char *what[] = { "p50", "p99" };
	char row[160], a[96], b[96], ratio[32], added[96];
	struct summary sd, sx, sa;
	double add[32];

	for (int k = 0; k < 2; k++) {
		sd = summarize(med[2 * k], (size_t)reps);
		sx = summarize(med[2 * k + 1], (size_t)reps);
		snprintf(row, sizeof(row), "%s, hot: %s request through the "
		    "door (ms)", who, what[k]);
		snprintf(ratio, sizeof(ratio), "%.2fx", sd.med / sx.med);
		table_row("6 front door", row, fmt_summary(a, sizeof(a),
		    "%.3f", sd), fmt_summary(b, sizeof(b), "%.3f", sx),
		    ratio, "", "");
	}
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < reps; i++)
			add[i] = med[2 * k][i] - med[2 * k + 1][i];
		sa = summarize(add, (size_t)reps);
		snprintf(row, sizeof(row), "%s, hot: added %s (ms)", who,
		    what[k]);
		fmt_summary(added, sizeof(added), "%.3f", sa);
		table_row("6 front door", row, added, "0 (direct)", "-",
		    k == 0 ? "<= 0.2 ms" : "", k == 0 ? (sa.med <= 0.2 ? "met" :
		    "NOT met") : "");
	}
}

/* reps blocks of n pairs: med[0]/[1] p50 door/direct, [2]/[3] p99. */
static void
latency(const char *who, struct pool *p, const char *model, int max_tokens,
    int reps, int n)
{
	double med[4][32], *door, *direct;
	char body[1024];
	int port;

	snprintf(body, sizeof(body), chat_fmt, model, max_tokens, "");
	port = pool_port(p, model);
	if ((door = calloc((size_t)n, sizeof(double))) == NULL ||
	    (direct = calloc((size_t)n, sizeof(double))) == NULL)
		die("out of memory");
	for (int i = 0; i < 20; i++) {		/* warm up both paths */
		post_ms(port, body);
		post_ms(p->http, body);
	}
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < n; i++) {
			if (i % 2 == 0) {
				door[i] = post_ms(p->http, body);
				direct[i] = post_ms(port, body);
			} else {
				direct[i] = post_ms(port, body);
				door[i] = post_ms(p->http, body);
			}
		}
		med[0][r] = percentile(door, (size_t)n, 50);
		med[1][r] = percentile(direct, (size_t)n, 50);
		med[2][r] = percentile(door, (size_t)n, 99);
		med[3][r] = percentile(direct, (size_t)n, 99);
		say("%s block %d: p50 door %.3f direct %.3f ms; p99 %.3f %.3f",
		    who, r, med[0][r], med[1][r], med[2][r], med[3][r]);
	}
	/* latency_rows wants p50 door, p50 direct, p99 door, p99 direct */
	latency_rows(who, med, reps);
	free(door);
	free(direct);
}

static void
latency_standin(int reps, int n)
{
	struct pool p;
	char cmd[1400], model[1200];

	snprintf(cmd, sizeof(cmd), "[\"%s/fakellama\", \"-m\", \"{path}\", "
	    "\"--host\", \"127.0.0.1\", \"--port\", \"{port}\"]", build);
	pool_start(&p, "door-lat", cmd, "");
	snprintf(model, sizeof(model), "%s/models/f.gguf", p.tmp);
	write_file(model, "load_ms=0\nmem=1M\n");
	latency("stand-in", &p, "f", 4, reps, n);
	pool_stop(&p);
}

static void
latency_llama(int reps, int n)
{
	struct pool p;
	char cmd[2400], gen[2400], path[1100];

	snprintf(path, sizeof(path), "%s/bin/llama-server", llama);
	if (access(path, X_OK) != 0) {
		table_row("6 front door", "llama-server rows SKIPPED: not "
		    "installed (LLAMA_PREFIX)", "", "", "", "", "skipped");
		return;
	}
	snprintf(cmd, sizeof(cmd), "[\"%s\", \"-m\", \"{path}\", \"--host\", "
	    "\"127.0.0.1\", \"--port\", \"{port}\", \"-t\", \"1\", \"-np\", "
	    "\"1\", \"-c\", \"512\"]", llama_binary(llama));
	pool_start(&p, "door-llama", cmd, "");
	snprintf(gen, sizeof(gen), "'%s/bin/make-tiny-gguf' "
	    "'%s/models/t0.gguf' --seed 0 >/dev/null", llama, p.tmp);
	if (system(gen) != 0)
		die("%s failed", gen);
	/* One token: the generation's own noise stays small. */
	latency("llama-server", &p, "t0", 1, reps, n / 2);
	pool_stop(&p);
}

/* --- 1,000 streams --- */

struct stream {
	int	 fd;
	int	 events;
	int	 match;		/* chars of "data: " matched so far */
	bool	 done;
	int64_t	 last_ns, max_gap_ns, first_ns;
	int	 gap_at;	/* the event after the largest gap */
	char	 req[1024];
	size_t	 req_len, req_off;
};

/* Counts "data: " in buf, carrying a partial match across reads ('d'
 * does not recur in the pattern, so a mismatch restarts at 0 or 1). */
static int
count_events(struct stream *s, const char *buf, size_t n)
{
	static const char pat[] = "data: ";
	int found = 0;

	for (size_t i = 0; i < n; i++) {
		if (buf[i] == pat[s->match])
			s->match++;
		else
			s->match = buf[i] == 'd' ? 1 : 0;
		if (s->match == 6) {
			found++;
			s->match = 0;
		}
	}
	return found;
}

static int
connect_nb(int port)
{
	struct sockaddr_in sin;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1)
		die("socket: %s (raise ulimit -n)", strerror(errno));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
	    errno != EINPROGRESS)
		die("connect %d: %s", port, strerror(errno));
	return fd;
}

struct streams_result {
	double	 gap_p50, gap_max;	/* per stream max gap, ms */
	double	 first_p50;		/* request to first event, ms */
	double	 wall_s;
	double	 poold_cpu_ms;
	double	 poold_rss_mb;
	int	 complete;		/* streams with every event and [DONE] */
	int	 late;			/* first event after 1 s (SYN retry?) */
	int	 gappy;			/* streams with a gap > 1.5x */
	int	 gappy_early;		/* ... before their 3rd event */
};

/* n streams; stream i to ports[i % nports], model names "s%d". */
static struct streams_result
run_streams(int n, const int *ports, int nports, pid_t poold)
{
	struct streams_result res = { 0 };
	struct epoll_event ev, evs[256];
	struct stream *st;
	double *gaps, *firsts, cpu0 = 0;
	char buf[65536], body[512];
	int ep, open = n, k;
	int64_t t0, next_sample = 0, deadline;
	uint64_t rss, peak = 0;
	ssize_t r;

	if ((st = calloc((size_t)n, sizeof(*st))) == NULL ||
	    (gaps = calloc((size_t)n, sizeof(double))) == NULL ||
	    (firsts = calloc((size_t)n, sizeof(double))) == NULL)
		die("out of memory");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	if (poold > 0)
		cpu0 = proc_cpu_s(poold);
	t0 = now_ns();
	for (int i = 0; i < n; i++) {
		int port = ports[i % nports];

		snprintf(body, sizeof(body), "{\"model\":\"s%d\",\"messages\":"
		    "[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":"
		    "%d,\"stream\":true}", i % STREAM_MODELS,
		    STREAM_EVENTS - 1);
		st[i].req_len = (size_t)snprintf(st[i].req, sizeof(st[i].req),
		    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d"
		    "\r\nConnection: close\r\nContent-Type: application/json"
		    "\r\nContent-Length: %zu\r\n\r\n%s", port, strlen(body),
		    body);
		st[i].fd = connect_nb(port);
		ev.events = EPOLLOUT | EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, st[i].fd, &ev) == -1)
			die("epoll_ctl");
	}
	deadline = t0 + 60 * NS_PER_S;
	while (open > 0 && now_ns() < deadline) {
		k = epoll_wait(ep, evs, 256, 50);
		for (int j = 0; j < k; j++) {
			struct stream *s = &st[evs[j].data.u32];
			int64_t now = now_ns();
			int got;

			if (s->req_off < s->req_len) {
				r = write(s->fd, s->req + s->req_off,
				    s->req_len - s->req_off);
				if (r > 0)
					s->req_off += (size_t)r;
				if (s->req_off == s->req_len) {
					ev.events = EPOLLIN;
					ev.data.u32 = evs[j].data.u32;
					epoll_ctl(ep, EPOLL_CTL_MOD, s->fd,
					    &ev);
				}
				continue;
			}
			r = read(s->fd, buf, sizeof(buf));
			if (r == -1 && errno == EAGAIN)
				continue;
			if (r <= 0) {
				close(s->fd);
				s->fd = -1;
				open--;
				continue;
			}
			if (memmem(buf, (size_t)r, "[DONE]", 6) != NULL)
				s->done = true;
			if ((got = count_events(s, buf, (size_t)r)) == 0)
				continue;
			if (s->events == 0)
				s->first_ns = now - t0;
			else if (now - s->last_ns > s->max_gap_ns) {
				s->max_gap_ns = now - s->last_ns;
				s->gap_at = s->events;
			}
			s->events += got;
			s->last_ns = now;
		}
		if (poold > 0 && now_ns() >= next_sample) {
			if ((rss = proc_rss(poold)) > peak)
				peak = rss;
			next_sample = now_ns() + 50 * NS_PER_MS;
		}
	}
	res.wall_s = (double)(now_ns() - t0) / NS_PER_S;
	if (poold > 0) {
		res.poold_cpu_ms = (proc_cpu_s(poold) - cpu0) * 1000;
		res.poold_rss_mb = (double)peak / (1 << 20);
	}
	for (int i = 0; i < n; i++) {
		if (st[i].fd != -1)
			close(st[i].fd);
		/* STREAM_EVENTS - 1 tokens + [DONE] */
		if (st[i].done && st[i].events == STREAM_EVENTS)
			res.complete++;
		gaps[i] = (double)st[i].max_gap_ns / NS_PER_MS;
		firsts[i] = (double)st[i].first_ns / NS_PER_MS;
		if (st[i].first_ns > NS_PER_S)
			res.late++;
		if (st[i].max_gap_ns > 3 * STREAM_GAP_MS * NS_PER_MS / 2) {
			res.gappy++;
			if (st[i].gap_at <= 2)
				res.gappy_early++;
		}
	}
	res.gap_p50 = percentile(gaps, (size_t)n, 50);
	res.gap_max = percentile(gaps, (size_t)n, 100);
	res.first_p50 = percentile(firsts, (size_t)n, 50);
	close(ep);
	free(st);
	free(gaps);
	free(firsts);
	return res;
}

/* A row of poold's own figures, no baseline. */
static void
poold_row(int n, const char *what, const char *fmt, double *v, int reps)
{
	char row[160], a[96];

	snprintf(row, sizeof(row), "%d SSE streams: %s", n, what);
	table_row("6 front door", row, fmt_summary(a, sizeof(a), fmt,
	    summarize(v, (size_t)reps)), "", "", "", "");
}

static void
streams(int reps, int n)
{
	struct streams_result d[32], x[32];
	double v[6][32];
	struct pool p;
	char cmd[1400], model[1200], row[160], a[96], b[96], ratio[32];
	int ports[STREAM_MODELS], door[1];
	uint64_t idle_rss;
	int complete_d = n, complete_x = n, late_d = 0, late_x = 0;
	int gappy_d = 0, gappy_x = 0;
	double after_mb[32];
	struct summary s1, s2;

	if (raise_nofile(3 * n + 256) < 2 * n + 64)
		die("RLIMIT_NOFILE too low for %d streams", n);
	snprintf(cmd, sizeof(cmd), "[\"%s/fakellama\", \"-m\", \"{path}\", "
	    "\"--host\", \"127.0.0.1\", \"--port\", \"{port}\"]", build);
	/* poold inherits the raised limit; its servers get it back */
	pool_start(&p, "door-streams", cmd, "");
	for (int i = 0; i < STREAM_MODELS; i++) {
		snprintf(model, sizeof(model), "%s/models/s%d.gguf", p.tmp, i);
		write_file(model, "load_ms=0\nmem=1M\nstream_delay_ms=%d\n"
		    "client_idle_ms=60000\n", STREAM_GAP_MS);
		snprintf(model, sizeof(model), "s%d", i);
		ports[i] = pool_port(&p, model);
	}
	door[0] = p.http;
	idle_rss = proc_rss(p.pid);
	for (int r = 0; r < reps; r++) {
		if (r % 2 == 0) {
			x[r] = run_streams(n, ports, STREAM_MODELS, 0);
			d[r] = run_streams(n, door, 1, p.pid);
		} else {
			d[r] = run_streams(n, door, 1, p.pid);
			x[r] = run_streams(n, ports, STREAM_MODELS, 0);
		}
		say("streams %d: door gap p50 %.1f max %.1f ms, first %.1f ms, "
		    "cpu %.0f ms, rss %.1f MiB, complete %d, late %d; direct "
		    "gap p50 %.1f max %.1f, first %.1f, complete %d, late %d",
		    r, d[r].gap_p50, d[r].gap_max, d[r].first_p50,
		    d[r].poold_cpu_ms, d[r].poold_rss_mb, d[r].complete,
		    d[r].late, x[r].gap_p50, x[r].gap_max, x[r].first_p50,
		    x[r].complete, x[r].late);
		say("  streams with a gap > %d ms: door %d (%d before the "
		    "3rd event), direct %d (%d)", 3 * STREAM_GAP_MS / 2,
		    d[r].gappy, d[r].gappy_early, x[r].gappy,
		    x[r].gappy_early);
		gappy_d += d[r].gappy;
		gappy_x += x[r].gappy;
		late_d += d[r].late;
		late_x += x[r].late;
		{
			char *js, *h;

			if (poolc_stats(p.c, &js) == 0) {
				h = strstr(js, "\"http\"");
				after_mb[r] = (double)proc_rss(p.pid) /
				    (1 << 20);
				say("  poold RSS after run %d, every stream "
				    "closed: %.1f MiB; STATS %.300s", r,
				    after_mb[r], h != NULL ? h : "(no http)");
				free(js);
			}
		}
		if (d[r].complete < complete_d)
			complete_d = d[r].complete;
		if (x[r].complete < complete_x)
			complete_x = x[r].complete;
	}
	for (int r = 0; r < reps; r++) {
		v[0][r] = d[r].gap_p50;
		v[1][r] = x[r].gap_p50;
		v[2][r] = d[r].gap_max;
		v[3][r] = x[r].gap_max;
		v[4][r] = d[r].first_p50;
		v[5][r] = x[r].first_p50;
	}
	for (int k = 0; k < 3; k++) {
		static const char *what[] = {
			"largest gap between events in a stream, median "
			    "stream (ms)",
			"largest gap between events in a stream, worst "
			    "stream (ms)",
			"request to first event, median stream (ms)" };

		s1 = summarize(v[2 * k], (size_t)reps);
		s2 = summarize(v[2 * k + 1], (size_t)reps);
		snprintf(row, sizeof(row), "%d SSE streams: %s", n, what[k]);
		snprintf(ratio, sizeof(ratio), "%.2fx", s1.med / s2.med);
		/* No stall: the door's worst stream within one upstream gap
		 * of the worst one read straight from the stand-ins (the
		 * client and the stand-ins' own loops are not free either). */
		table_row("6 front door", row, fmt_summary(a, sizeof(a),
		    "%.1f", s1), fmt_summary(b, sizeof(b), "%.1f", s2), ratio,
		    k == 1 ? "<= direct + 1 gap" : "", k == 1 ? (s1.med <=
		    s2.med + STREAM_GAP_MS ? "met" : "NOT met") : "");
	}
	snprintf(row, sizeof(row), "%d SSE streams: complete (every event "
	    "and [DONE]), fewest in a run", n);
	snprintf(a, sizeof(a), "%d", complete_d);
	snprintf(b, sizeof(b), "%d", complete_x);
	table_row("6 front door", row, a, b, "-", "all", complete_d == n ?
	    "met" : "NOT met");
	snprintf(row, sizeof(row), "%d SSE streams: first event after more "
	    "than 1 s, all runs", n);
	snprintf(a, sizeof(a), "%d", late_d);
	snprintf(b, sizeof(b), "%d", late_x);
	table_row("6 front door", row, a, b, "-", "", "");
	snprintf(row, sizeof(row), "%d SSE streams: streams with a gap over "
	    "%d ms, all runs", n, 3 * STREAM_GAP_MS / 2);
	snprintf(a, sizeof(a), "%d", gappy_d);
	snprintf(b, sizeof(b), "%d", gappy_x);
	table_row("6 front door", row, a, b, "-", "", "");
	for (int r = 0; r < reps; r++) {
		v[0][r] = d[r].poold_cpu_ms;
		v[1][r] = d[r].poold_cpu_ms * 1000 / ((double)n *
		    STREAM_EVENTS);
		v[2][r] = d[r].poold_rss_mb;
	}
	for (int r = 0; r < reps; r++)
		v[3][r] = (v[2][r] - (double)idle_rss / (1 << 20)) * 1024 / n;
	poold_row(n, "poold CPU, utime+stime (ms)", "%.0f", v[0], reps);
	poold_row(n, "poold CPU per event relayed (us)", "%.1f", v[1], reps);
	poold_row(n, "poold RSS growth per stream (KiB)", "%.1f", v[3], reps);
	s1 = summarize(v[2], (size_t)reps);
	snprintf(row, sizeof(row), "%d SSE streams: poold peak RSS (MiB)", n);
	snprintf(b, sizeof(b), "idle %.1f", (double)idle_rss / (1 << 20));
	snprintf(ratio, sizeof(ratio), "%.2fx", s1.med /
	    ((double)idle_rss / (1 << 20)));
	table_row("6 front door", row, fmt_summary(a, sizeof(a), "%.1f", s1),
	    b, ratio, "", "");
	snprintf(row, sizeof(row), "%d SSE streams: poold RSS once all "
	    "closed, after runs 1..%d (MiB)", n, reps);
	{
		int o = 0;

		for (int r = 0; r < reps && o < (int)sizeof(a) - 8; r++)
			o += snprintf(a + o, sizeof(a) - (size_t)o, "%s%.0f",
			    r ? " " : "", after_mb[r]);
	}
	snprintf(b, sizeof(b), "idle %.1f", (double)idle_rss / (1 << 20));
	table_row("6 front door", row, a, b, "-", "flat", after_mb[reps - 1] <
	    after_mb[0] + 4 ? "met" : "NOT met");
	table_note("front door streams: %d streams at once over %d stand-in "
	    "models (%d each), %d events %d ms apart + [DONE]; baseline = "
	    "the same streams straight from the stand-ins, same run, "
	    "alternating; one epoll client; poold's CPU from "
	    "/proc/PID/stat, RSS sampled every 50 ms", n, STREAM_MODELS,
	    n / STREAM_MODELS, STREAM_EVENTS - 1, STREAM_GAP_MS);
	pool_stop(&p);
}

int
main(int argc, char **argv)
{
	int reps = 5, pairs = 400, nstreams = 1000, ch;
	const char *parts = "als";

	while ((ch = getopt(argc, argv, "b:l:r:n:s:p:")) != -1) {
		switch (ch) {
		case 'b': build = optarg; break;
		case 'l': llama = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'n': pairs = atoi(optarg); break;
		case 's': nstreams = atoi(optarg); break;
		case 'p': parts = optarg; break;
		default:
			fprintf(stderr, "usage: door -b builddir [-l prefix] "
			    "[-r reps] [-n pairs] [-s streams] [-p als]\n");
			return 1;
		}
	}
	if (reps < 1 || reps > 32)
		reps = 5;
	if (pairs < 10)
		pairs = 400;
	if (nstreams < STREAM_MODELS || nstreams > 5 * 250)
		nstreams = 1000;
	if (strchr(parts, 'a') != NULL)
		latency_standin(reps, pairs);
	if (llama != NULL && strchr(parts, 'l') != NULL)
		latency_llama(reps, pairs);
	if (strchr(parts, 's') != NULL)
		streams(reps, nstreams);
	table_note("front door latency: blocks of %d pairs (%d with "
	    "llama-server, max_tokens 1), door and direct alternating, a "
	    "new TCP connection per request on both sides; p50/p99 per "
	    "block, median [range] over %d blocks; added = door - direct "
	    "per block", pairs, pairs / 2, reps);
	return 0;
}
