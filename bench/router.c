/*
 * router.c — part 4: poold side by side with llama.cpp's own router mode
 * (llama-server --models-dir DIR --models-max N), on the same tiny real
 * models, in one run.
 *
 * poold: ACQUIRE (libpoolc) + POST straight to the model's server +
 * RELEASE.  Router: POST through its proxy, the model named in the body.
 * Rows: hot short completion, hot streamed completion, cold request (no
 * server running), request that forces an eviction (capacity 2, two
 * others loaded), then a workload of mixed model sizes under a byte
 * budget: poold with the budget, the router with its default count limit
 * (4) and with the largest count that can never exceed the budget.
 *
 *	router -b BUILDDIR -l LLAMA_PREFIX [-D] [-r reps] [-w workload_reps]
 *
 * -D: no front door in poold's config (a poold from before it).
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bench.h"
#include "poolc.h"

#define ROUTER_PORT	25500
#define CALIB_PORT	25590
#define POOLD_PORTS	"[25400, 25449]"
#define SAMPLE_MS	10
#define HOT_MODELS	3
#define MAX_MODELS	16
#define MAX_REQS	64

static const char *llama;
static char	*sock;
static bool	 no_door;	/* -D: a poold without "http" (older builds) */
static const char *body_fmt =
    "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
    "\"Say hello\"}],\"max_tokens\":4,\"temperature\":0,\"seed\":1%s}";

/* --- the two ways of asking --- */

static void
body_for(char *buf, size_t len, const char *model, bool stream)
	__attribute__((nonnull));

static void
body_for(char *buf, size_t len, const char *model, bool stream)
{
	snprintf(buf, len, body_fmt, model, stream ? ",\"stream\":true" : "");
}

/* ACQUIRE + POST + RELEASE; ms, and whether poold said cold. */
static double
via_poold(struct poolc *c, const char *model, bool stream, bool *cold)
{
	struct poolc_server srv;
	struct http_result r;
	char body[1024];
	int64_t t0;

	body_for(body, sizeof(body), model, stream);
	t0 = now_ns();
	if (poolc_acquire(c, model, NULL, &srv) == -1)
		die("ACQUIRE %s: %s", model, poolc_errstr(c));
	if (http_request(srv.port, "POST", "/v1/chat/completions", body,
	    &r) != 200)
		die("POST to %s's server: status %d %.200s", model, r.status,
		    r.body);
	if (poolc_release(c, srv.lease) == -1)
		die("RELEASE: %s", poolc_errstr(c));
	t0 = now_ns() - t0;
	if (cold != NULL)
		*cold = srv.cold;
	if (stream && strstr(r.body, "data: ") == NULL)
		die("not a stream: %.200s", r.body);
	return (double)t0 / NS_PER_MS;
}

/* POST through an HTTP proxy (the router's, or poold's front door):
 * ms to the end, and to the first event when streamed (ttft). */
static double
via_http(int port, const char *who, const char *model, bool stream,
    double *ttft)
{
	struct http_result r;
	char body[1024];

	body_for(body, sizeof(body), model, stream);
	if (http_request(port, "POST", "/v1/chat/completions", body, &r) !=
	    200)
		die("%s POST %s: status %d %.300s", who, model, r.status,
		    r.body);
	if (stream && (strstr(r.body, "data: ") == NULL ||
	    r.first_data_ns == 0))
		die("%s: not a stream: %.200s", who, r.body);
	if (ttft != NULL)
		*ttft = (double)r.first_data_ns / NS_PER_MS;
	return (double)r.total_ns / NS_PER_MS;
}

static double
via_router(const char *model, bool stream)
{
	return via_http(ROUTER_PORT, "router", model, stream, NULL);
}

/* poold's HTTP front door (its port from STATS) */
static int door_port;

static double
via_door(const char *model, bool stream)
{
	return via_http(door_port, "poold's front door", model, stream, NULL);
}

/* --- the router's state --- */

/* Which models the router has loaded (or is loading): a bit per index. */
static unsigned
router_loaded(char names[][32], int n)
{
	struct http_result r;
	json_t *o, *data, *m;
	json_error_t err;
	size_t i;
	unsigned set = 0;
	const char *id, *st;

	if (http_request(ROUTER_PORT, "GET", "/models", NULL, &r) != 200)
		die("router GET /models: %d", r.status);
	/* The body is cut at 8 KiB; the models list is longer.  Ask for the
	 * statuses one by one instead if it did not parse. */
	if ((o = json_loads(r.body, 0, &err)) == NULL)
		die("router /models: %s (body larger than the bench reads?)",
		    err.text);
	data = json_object_get(o, "data");
	json_array_foreach(data, i, m) {
		id = json_string_value(json_object_get(m, "id"));
		st = json_string_value(json_object_get(json_object_get(m,
		    "status"), "value"));
		for (int k = 0; id != NULL && st != NULL && k < n; k++)
			if (strcmp(names[k], id) == 0 &&
			    strcmp(st, "unloaded") != 0)
				set |= 1u << k;
	}
	json_decref(o);
	return set;
}

/* Unloads everything and waits until the processes are gone. */
static void
router_unload_all(pid_t router, char names[][32], int n)
{
	struct http_result r;
	char body[128];
	pid_t kids[64];
	int64_t until;
	unsigned set = router_loaded(names, n);

	for (int k = 0; k < n; k++)
		if (set & 1u << k) {
			snprintf(body, sizeof(body), "{\"model\":\"%s\"}",
			    names[k]);
			http_request(ROUTER_PORT, "POST", "/models/unload",
			    body, &r);
		}
	until = now_ns() + 10 * NS_PER_S;
	while (children_of(router, kids, 64) > 0 && now_ns() < until)
		sleep_ms(1);
}

static void
poold_evict_all(struct poolc *c, char names[][32], int n)
{
	for (int k = 0; k < n; k++)
		(void)poolc_evict(c, names[k], true, NULL);	/* not_found ok */
}

static pid_t
start_router(const char *dir, int max, const char *log)
{
	char maxs[16], port[16], models[1100], bin[1100];
	char *argv[] = { bin, "--models-dir", models, "--models-max", maxs,
	    "--host", "127.0.0.1", "--port", port, "-t", "1", "-np", "1",
	    "-c", "512", NULL };
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s", llama_binary(llama));
	snprintf(models, sizeof(models), "%s", dir);
	snprintf(maxs, sizeof(maxs), "%d", max);
	snprintf(port, sizeof(port), "%d", ROUTER_PORT);
	pid = spawn(argv, log, -1);
	if (http_wait_200(ROUTER_PORT, "/health", 20000) < 0)
		die("the router did not come up; see %s", log);
	return pid;
}

static pid_t
start_poold(const char *build, const char *conf, const char *log)
{
	char bin[1100];
	char *argv[] = { bin, "-f", (char *)conf, NULL };
	pid_t pid;
	int fd;

	snprintf(bin, sizeof(bin), "%s/poold", build);
	pid = spawn(argv, log, -1);
	if ((fd = unix_connect_wait(sock, 10000)) == -1)
		die("poold did not come up; see %s", log);
	close(fd);
	return pid;
}

static void
write_poold_conf(const char *conf, const char *dir, const char *budget,
    int max_servers, const char *models_json)
{
	char max[64] = "";

	if (max_servers > 0)
		snprintf(max, sizeof(max), "\"max_servers\": %d, ",
		    max_servers);
	write_file(conf, "{\n  \"socket\": \"%s\",\n  \"state_file\": \"%s.state\",\n  \"models_dir\": \"%s\",\n"
	    "  \"command\": [\"%s\", \"-m\", \"{path}\", "
	    "\"--host\", \"127.0.0.1\", \"--port\", \"{port}\", \"-t\", \"1\", "
	    "\"-np\", \"1\", \"-c\", \"512\"],\n  \"memory_limit\": \"%s\", "
	    "\"reserved\": \"0\", \"per_model\": \"64M\",\n"
	    "  %s\"ports\": " POOLD_PORTS ",\n  \"idle_timeout\": 0%s%s%s\n"
	    "}\n", sock, sock, dir, llama_binary(llama), budget, max,
	    no_door ? "" : ",\n  \"http\": {\"listen\": \"127.0.0.1:0\"}",
	    models_json != NULL ? ",\n  \"models\": " : "",
	    models_json != NULL ? models_json : "");
}

/* --- hot, cold, eviction --- */

static void
row_in(const char *section, const char *what, double *p, double *r, int n)
{
	char a[96], b[96], ratio[32];
	struct summary sp = summarize(p, (size_t)n);
	struct summary sr = summarize(r, (size_t)n);

	snprintf(ratio, sizeof(ratio), "%.2fx", sp.med / sr.med);
	table_row(section, what, fmt_summary(a, sizeof(a), "%.1f", sp),
	    fmt_summary(b, sizeof(b), "%.1f", sr), ratio, "<= router",
	    sp.med <= sr.med ? "met" : "NOT met");
}

static void
row(const char *what, double *p, double *r, int n)
{
	row_in("4 vs router", what, p, r, n);
}

/* Nothing running on either side. */
static void
unload_both(struct poolc *c, pid_t router, char names[][32], int n)
{
	poold_evict_all(c, names, n);
	router_unload_all(router, names, n);
	sleep_ms(50);
}

/* poold's front door against the router, both over HTTP, the model in
 * the body: hot (short, and the first token of a stream), cold, and a
 * request that forces an eviction (capacity 2 on both). */
static void
door_side_by_side(struct poolc *c, pid_t router, char names[][32],
    int reps)
{
	double d[4][32], r[4][32], x;

	via_door("t0", false);
	via_router("t0", false);
	for (int i = 0; i < reps; i++) {
		if (i % 2 == 0) {
			d[0][i] = via_door("t0", false);
			r[0][i] = via_router("t0", false);
			via_http(door_port, "door", "t0", true, &d[1][i]);
			via_http(ROUTER_PORT, "router", "t0", true, &r[1][i]);
		} else {
			r[0][i] = via_router("t0", false);
			d[0][i] = via_door("t0", false);
			via_http(ROUTER_PORT, "router", "t0", true, &r[1][i]);
			via_http(door_port, "door", "t0", true, &d[1][i]);
		}
	}
	for (int i = 0; i < reps; i++) {
		const char *m = names[i % HOT_MODELS];

		unload_both(c, router, names, HOT_MODELS);
		if (i % 2 == 1)
			r[2][i] = via_router(m, false);
		d[2][i] = via_door(m, false);
		if (i % 2 == 0)
			r[2][i] = via_router(m, false);
	}
	for (int i = 0; i < reps; i++) {
		const char *a = names[i % 3], *b = names[(i + 1) % 3];
		const char *m = names[(i + 2) % 3];

		unload_both(c, router, names, HOT_MODELS);
		x = via_door(a, false) + via_door(b, false);
		x += via_router(a, false) + via_router(b, false);
		sleep_ms(50);
		if (i % 2 == 1)
			r[3][i] = via_router(m, false);
		d[3][i] = via_door(m, false);
		if (i % 2 == 0)
			r[3][i] = via_router(m, false);
		if (router_loaded(names, HOT_MODELS) & 1u << (i % 3))
			die("router did not evict %s", a);
	}
	(void)x;
	row_in("4 vs router", "front door: hot, short completion (ms)", d[0],
	    r[0], reps);
	row_in("4 vs router", "front door: hot, streamed, time to first "
	    "token (ms)", d[1], r[1], reps);
	row_in("4 vs router", "front door: cold request, nothing loaded (ms)",
	    d[2], r[2], reps);
	row_in("4 vs router", "front door: request forcing an eviction, "
	    "capacity 2 (ms)", d[3], r[3], reps);
	table_note("vs router, front door rows: the same POST to poold's "
	    "HTTP URL and to the router's, the model in the body, a new "
	    "TCP connection per request on both; time to first token = "
	    "until the first \"data: \" line of the stream");
}

static void
side_by_side(const char *build, int reps)
{
	char dir[1100], conf[1100], plog[1100], rlog[1100], cmd[2600];
	char names[HOT_MODELS][32];
	double p[4][32], r[4][32];
	struct poolc *c;
	pid_t poold, router;
	char *tmp;
	bool cold;

	tmp = make_tmpdir("router");
	snprintf(dir, sizeof(dir), "%s/models", tmp);
	mkdir(dir, 0755);
	for (int i = 0; i < HOT_MODELS; i++) {
		snprintf(names[i], sizeof(names[i]), "t%d", i);
		snprintf(cmd, sizeof(cmd), "'%s/bin/make-tiny-gguf' "
		    "'%s/t%d.gguf' --seed %d >/dev/null", llama, dir, i, i);
		if (system(cmd) != 0)
			die("%s failed", cmd);
	}
	if (asprintf(&sock, "%s/poold.sock", tmp) == -1)
		die("out of memory");
	snprintf(conf, sizeof(conf), "%s/poold.json", tmp);
	write_poold_conf(conf, dir, "1G", 2, NULL);
	snprintf(plog, sizeof(plog), "%s/poold.log", tmp);
	snprintf(rlog, sizeof(rlog), "%s/router.log", tmp);
	poold = start_poold(build, conf, plog);
	router = start_router(dir, 2, rlog);
	if ((c = poolc_connect(sock, 60000)) == NULL ||
	    poolc_error(c) != POOLC_OK)
		die("poolc_connect");
	/* A poold without the front door (an older build): its rows skip. */
	door_port = poold_http_port(c);

	/* Hot: t0 loaded on both; a warm-up request each first. */
	via_poold(c, "t0", false, NULL);
	via_router("t0", false);
	/* Who goes first alternates: neither side always gets the calmer
	 * moment right after the other's request. */
	for (int i = 0; i < reps; i++) {
		if (i % 2 == 0) {
			p[0][i] = via_poold(c, "t0", false, &cold);
			r[0][i] = via_router("t0", false);
			p[1][i] = via_poold(c, "t0", true, &cold);
			r[1][i] = via_router("t0", true);
		} else {
			r[0][i] = via_router("t0", false);
			p[0][i] = via_poold(c, "t0", false, &cold);
			r[1][i] = via_router("t0", true);
			p[1][i] = via_poold(c, "t0", true, &cold);
		}
	}
	/* Cold: nothing running on either side. */
	for (int i = 0; i < reps; i++) {
		const char *m = names[i % HOT_MODELS];

		poold_evict_all(c, names, HOT_MODELS);
		router_unload_all(router, names, HOT_MODELS);
		sleep_ms(50);
		if (i % 2 == 1)
			r[2][i] = via_router(m, false);
		p[2][i] = via_poold(c, m, false, &cold);
		if (!cold)
			die("poold: %s was not cold", m);
		if (i % 2 == 0)
			r[2][i] = via_router(m, false);
	}
	/* Eviction: a and b loaded (capacity 2), then c. */
	for (int i = 0; i < reps; i++) {
		const char *a = names[i % 3], *b = names[(i + 1) % 3];
		const char *m = names[(i + 2) % 3];

		poold_evict_all(c, names, HOT_MODELS);
		router_unload_all(router, names, HOT_MODELS);
		via_poold(c, a, false, NULL);
		via_poold(c, b, false, NULL);
		via_router(a, false);
		via_router(b, false);
		sleep_ms(50);
		if (i % 2 == 1)
			r[3][i] = via_router(m, false);
		p[3][i] = via_poold(c, m, false, &cold);
		if (i % 2 == 0)
			r[3][i] = via_router(m, false);
		if (router_loaded(names, HOT_MODELS) & 1u << (i % 3))
			die("router did not evict %s", a);
	}
	if (door_port > 0)
		door_side_by_side(c, router, names, reps);
	else
		table_row("4 vs router", "front door rows SKIPPED: no \"http\" "
		    "in poold's STATS", "", "", "", "", "skipped");
	row("hot, short completion (ms)", p[0], r[0], reps);
	row("hot, streamed completion (ms)", p[1], r[1], reps);
	row("cold request, nothing loaded (ms)", p[2], r[2], reps);
	row("request forcing an eviction, capacity 2 (ms)", p[3], r[3], reps);
	table_note("vs router: the same tiny models (0.5 MB), same server "
	    "flags (-t 1 -np 1 -c 512); poold = ACQUIRE + POST to the "
	    "model's own server + RELEASE, router = POST through its proxy; "
	    "max_tokens 4, temperature 0; one new TCP connection per POST "
	    "on both sides; the two run side by side, requests alternate "
	    "and so does who goes first");
	poolc_free(c);
	stop_process(router, 10000);
	stop_process(poold, 10000);
	free(sock);
}

/* --- the mixed-size workload --- */

struct model {
	char	 name[32];
	int	 file_mb;
	uint64_t rss;		/* measured */
};

struct sampler {
	pid_t		 daemon;
	uint64_t	 budget;
	atomic_bool	 stop;
	uint64_t	 peak;
	long		 samples, over;
};

static void *
sample_rss(void *arg)
{
	struct sampler *s = arg;
	pid_t kids[64];
	uint64_t sum;
	size_t n;

	while (!atomic_load(&s->stop)) {
		n = children_of(s->daemon, kids, 64);
		sum = 0;
		for (size_t i = 0; i < n; i++)
			sum += proc_rss(kids[i]);
		if (sum > s->peak)
			s->peak = sum;
		s->samples++;
		if (sum > s->budget)
			s->over++;
		sleep_ms(SAMPLE_MS);
	}
	return NULL;
}

struct wl_result {
	double	 total_s, cold_s, peak_mb, over_pct;
	double	 loads, evictions;
};

/* Each model's RSS after loading and one completion, alone. */
static void
calibrate(struct model *m, int n, const char *dir, const char *tmp)
{
	char bin[1100], path[1700], port[16], log[1100];
	char *argv[] = { bin, "-m", path, "--host", "127.0.0.1", "--port",
	    port, "-t", "1", "-np", "1", "-c", "512", NULL };
	struct http_result r;
	char body[1024];
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s", llama_binary(llama));
	snprintf(port, sizeof(port), "%d", CALIB_PORT);
	snprintf(log, sizeof(log), "%s/calibrate.log", tmp);
	for (int i = 0; i < n; i++) {
		/* same file size, same RSS: measure each size once */
		for (int k = 0; k < i; k++)
			if (m[k].file_mb == m[i].file_mb)
				m[i].rss = m[k].rss;
		if (m[i].rss != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s.gguf", dir, m[i].name);
		pid = spawn(argv, log, -1);
		if (http_wait_200(CALIB_PORT, "/health", 30000) < 0)
			die("calibration: %s did not start", m[i].name);
		body_for(body, sizeof(body), m[i].name, false);
		http_request(CALIB_PORT, "POST", "/v1/chat/completions", body,
		    &r);
		m[i].rss = proc_rss(pid);
		stop_process(pid, 5000);
	}
}

static void
make_trace(int *trace, int *len, unsigned seed, int nsmall, int n)
{
	int k = 0;

	/* phase A: the small models; B: the large and medium ones; C: all */
	for (int i = 0; i < 12; i++) {
		seed = seed * 1103515245 + 12345;
		trace[k++] = (int)((seed >> 16) % (unsigned)nsmall);
	}
	for (int i = 0; i < 12; i++) {
		seed = seed * 1103515245 + 12345;
		trace[k++] = nsmall + (int)((seed >> 16) % (unsigned)(n -
		    nsmall));
	}
	for (int i = 0; i < 12; i++) {
		seed = seed * 1103515245 + 12345;
		trace[k++] = (int)((seed >> 16) % (unsigned)n);
	}
	*len = k;
}

static long long
poold_counter(struct poolc *c, const char *key)
{
	char *json;
	long long v;

	if (poolc_stats(c, &json) == -1)
		die("STATS: %s", poolc_errstr(c));
	v = json_int(json, key, -1);
	free(json);
	return v;
}

/* kind 0: poold; else the router with --models-max kind. */
static struct wl_result
workload(int kind, const char *build, const char *dir, const char *tmp,
    struct model *m, int n, uint64_t budget, const int *trace, int len)
{
	char conf[1100], log[1100], names[MAX_MODELS][32];
	struct wl_result res = { 0 };
	struct sampler smp = { 0 };
	struct poolc *c = NULL;
	pthread_t th;
	pid_t daemon;
	int64_t t0, t;
	bool cold;
	unsigned before, after;
	long long ev0 = 0;

	for (int i = 0; i < n; i++)
		snprintf(names[i], sizeof(names[i]), "%s", m[i].name);
	if (kind == 0) {
		snprintf(conf, sizeof(conf), "%s/poold-wl.json", tmp);
		snprintf(log, sizeof(log), "%s/poold-wl.log", tmp);
		daemon = start_poold(build, conf, log);
		if ((c = poolc_connect(sock, 120000)) == NULL ||
		    poolc_error(c) != POOLC_OK)
			die("poolc_connect");
		ev0 = poold_counter(c, "evictions");
	} else {
		snprintf(log, sizeof(log), "%s/router-wl.log", tmp);
		daemon = start_router(dir, kind, log);
	}
	smp.daemon = daemon;
	smp.budget = budget;
	pthread_create(&th, NULL, sample_rss, &smp);
	t0 = now_ns();
	for (int i = 0; i < len; i++) {
		const char *name = m[trace[i]].name;

		if (kind == 0) {
			double ms = via_poold(c, name, false, &cold);

			if (cold) {
				res.loads++;
				res.cold_s += ms / 1000;
			}
			continue;
		}
		/* the router's state, read between requests (not timed) */
		t = now_ns();
		before = router_loaded(names, n);
		t0 += now_ns() - t;
		{
			double ms = via_router(name, false);

			if (!(before & 1u << trace[i])) {
				res.loads++;
				res.cold_s += ms / 1000;
			}
		}
		t = now_ns();
		after = router_loaded(names, n);
		for (int k = 0; k < n; k++)
			if ((before & 1u << k) && !(after & 1u << k))
				res.evictions++;
		t0 += now_ns() - t;
	}
	res.total_s = (double)(now_ns() - t0) / NS_PER_S;
	atomic_store(&smp.stop, true);
	pthread_join(th, NULL);
	if (kind == 0) {
		res.evictions = (double)(poold_counter(c, "evictions") - ev0);
		poolc_free(c);
	}
	res.peak_mb = (double)smp.peak / (1 << 20);
	res.over_pct = smp.samples ? 100.0 * (double)smp.over /
	    (double)smp.samples : 0;
	stop_process(daemon, 10000);
	return res;
}

static void
wl_row(const char *what, const char *fmt, struct wl_result *p,
    struct wl_result *r4, struct wl_result *r2, int n, size_t field,
    bool lower_better, const char *target, int verdict)
{
	double vp[16], v4[16], v2[16];
	char a[96], b[96], c[96], base[200], ratio[32];
	struct summary sp, s4, s2;

	for (int i = 0; i < n; i++) {
		vp[i] = *(double *)((char *)&p[i] + field);
		v4[i] = *(double *)((char *)&r4[i] + field);
		v2[i] = *(double *)((char *)&r2[i] + field);
	}
	sp = summarize(vp, (size_t)n);
	s4 = summarize(v4, (size_t)n);
	s2 = summarize(v2, (size_t)n);
	snprintf(base, sizeof(base), "max4 %s; max2 %s",
	    fmt_summary(b, sizeof(b), fmt, s4),
	    fmt_summary(c, sizeof(c), fmt, s2));
	if (s4.med > 0)
		snprintf(ratio, sizeof(ratio), "%.2fx", sp.med / s4.med);
	else
		snprintf(ratio, sizeof(ratio), "-");
	if (verdict >= 0) {
		table_row("4 vs router", what, fmt_summary(a, sizeof(a), fmt,
		    sp), base, ratio, target, target[0] ? (verdict ? "met" :
		    "NOT met") : "");
		return;
	}
	/* Faster than the router that keeps to the budget is what counts
	 * most; say which of the two it beats. */
	table_row("4 vs router", what, fmt_summary(a, sizeof(a), fmt, sp),
	    base, ratio, target, !target[0] ? "" :
	    sp.med <= s4.med && sp.med <= s2.med ? "met" :
	    sp.med <= s2.med ? "NOT met vs max4 (over budget); met vs max2" :
	    sp.med <= s4.med ? "met vs max4; NOT met vs max2" : "NOT met");
}

static void
mixed_sizes(const char *build, int reps)
{
	static const struct { const char *name; int mb; } spec[] = {
		{ "s1", 8 }, { "s2", 8 }, { "s3", 8 }, { "s4", 8 },
		{ "s5", 8 }, { "s6", 8 }, { "m1", 32 }, { "m2", 32 },
		{ "l1", 96 }, { "l2", 128 },
	};
	enum { NSMALL = 6, N = 10 };
	struct model m[N];
	struct wl_result p[16], r4[16], r2[16];
	char dir[1100], conf[1100], cmd[2600], models[2048], what[160];
	uint64_t budget, declared[N], sorted[N], sum;
	int trace[MAX_REQS], len, safe_max = 0, o = 0;
	char *tmp;
	bool never_over = true;

	tmp = make_tmpdir("mixed");
	snprintf(dir, sizeof(dir), "%s/models", tmp);
	mkdir(dir, 0755);
	memset(m, 0, sizeof(m));
	for (int i = 0; i < N; i++) {
		snprintf(m[i].name, sizeof(m[i].name), "%s", spec[i].name);
		m[i].file_mb = spec[i].mb;
		snprintf(cmd, sizeof(cmd), "'%s/bin/make-tiny-gguf' "
		    "'%s/%s.gguf' %d --seed %d >/dev/null", llama, dir,
		    spec[i].name, spec[i].mb, i);
		if (system(cmd) != 0)
			die("%s failed", cmd);
	}
	calibrate(m, N, dir, tmp);
	/*
	 * poold is told each model's memory: its measured RSS + 10%, what a
	 * user writes in "models".  The budget holds the two largest with
	 * that margin; the router's safe count is the largest N whose N
	 * biggest models fit in it (by real RSS).
	 */
	for (int i = 0; i < N; i++)
		declared[i] = (m[i].rss + m[i].rss / 10 + (1 << 20) - 1) &
		    ~(uint64_t)((1 << 20) - 1);
	budget = declared[N - 1] + declared[N - 2] + (16 << 20);
	budget &= ~(uint64_t)((1 << 20) - 1);
	for (int i = 0; i < N; i++)
		sorted[i] = m[i].rss;
	for (int i = 0; i < N; i++)
		for (int k = i + 1; k < N; k++)
			if (sorted[k] > sorted[i]) {
				uint64_t x = sorted[i];
				sorted[i] = sorted[k];
				sorted[k] = x;
			}
	for (sum = 0; safe_max < N && sum + sorted[safe_max] <= budget; )
		sum += sorted[safe_max++];
	o = snprintf(models, sizeof(models), "{");
	for (int i = 0; i < N; i++)
		o += snprintf(models + o, sizeof(models) - (size_t)o,
		    "%s\"%s\": {\"memory\": \"%lluM\"}", i ? ", " : "",
		    m[i].name, (unsigned long long)(declared[i] >> 20));
	snprintf(models + o, sizeof(models) - (size_t)o, "}");
	if (asprintf(&sock, "%s/poold.sock", tmp) == -1)
		die("out of memory");
	snprintf(conf, sizeof(conf), "%s/poold-wl.json", tmp);
	{
		char b[32];

		snprintf(b, sizeof(b), "%lluM",
		    (unsigned long long)(budget >> 20));
		write_poold_conf(conf, dir, b, 0, models);
	}
	say("mixed: budget %llu MiB; RSS s %llu, m %llu, l1 %llu, l2 %llu "
	    "MiB; router safe count %d", (unsigned long long)(budget >> 20),
	    (unsigned long long)(m[0].rss >> 20),
	    (unsigned long long)(m[6].rss >> 20),
	    (unsigned long long)(m[8].rss >> 20),
	    (unsigned long long)(m[9].rss >> 20), safe_max);
	for (int i = 0; i < reps; i++) {
		make_trace(trace, &len, 1000u + (unsigned)i, NSMALL, N);
		/* the order rotates from one repetition to the next */
		for (int k = 0; k < 3; k++)
			switch ((i + k) % 3) {
			case 0:
				p[i] = workload(0, build, dir, tmp, m, N,
				    budget, trace, len);
				break;
			case 1:
				r4[i] = workload(4, build, dir, tmp, m, N,
				    budget, trace, len);
				break;
			default:
				r2[i] = workload(safe_max, build, dir, tmp, m,
				    N, budget, trace, len);
				break;
			}
		if (p[i].over_pct > 0)
			never_over = false;
		say("mixed rep %d: poold %.1f s %g loads; router-4 %.1f s %g "
		    "loads; router-%d %.1f s %g loads", i, p[i].total_s,
		    p[i].loads, r4[i].total_s, r4[i].loads, safe_max,
		    r2[i].total_s, r2[i].loads);
	}
	snprintf(what, sizeof(what), "mixed sizes, budget %llu MiB: peak "
	    "RSS of model servers (MiB)", (unsigned long long)(budget >> 20));
	wl_row(what, "%.0f", p, r4, r2, reps, offsetof(struct wl_result,
	    peak_mb), true, "never over budget", p[0].peak_mb >= 0 &&
	    never_over);
	wl_row("mixed sizes: samples over budget (%)", "%.0f", p, r4, r2,
	    reps, offsetof(struct wl_result, over_pct), true, "0 for poold",
	    never_over);
	wl_row("mixed sizes: evictions", "%.0f", p, r4, r2, reps,
	    offsetof(struct wl_result, evictions), true, "", -1);
	wl_row("mixed sizes: loads (cold requests)", "%.0f", p, r4, r2, reps,
	    offsetof(struct wl_result, loads), true, "", -1);
	wl_row("mixed sizes: time in cold requests (s)", "%.2f", p, r4, r2,
	    reps, offsetof(struct wl_result, cold_s), true, "<= router", -1);
	wl_row("mixed sizes: whole workload (s)", "%.2f", p, r4, r2, reps,
	    offsetof(struct wl_result, total_s), true, "<= router", -1);
	table_note("mixed sizes: 6 models of 8 MB, 2 of 32 MB, 96 and 128 MB "
	    "(RSS %llu/%llu/%llu/%llu MiB); 36 requests in a row: 12 over the "
	    "small ones, 12 over the big and medium ones, 12 over all "
	    "(seeded, a different seed per repetition); poold gets the "
	    "budget and each model's memory (RSS + 10%%), the router a count: "
	    "its default 4 (max4) and %d, the largest count whose biggest "
	    "models fit the budget (max2 column when %d = 2); RSS of the "
	    "model servers sampled every %d ms", (unsigned long long)(m[0].rss
	    >> 20), (unsigned long long)(m[6].rss >> 20),
	    (unsigned long long)(m[8].rss >> 20),
	    (unsigned long long)(m[9].rss >> 20), safe_max, safe_max,
	    SAMPLE_MS);
	free(sock);
}

int
main(int argc, char **argv)
{
	const char *build = "build";
	char path[1100];
	int reps = 9, wreps = 5, ch;

	while ((ch = getopt(argc, argv, "b:Dl:r:w:")) != -1) {
		switch (ch) {
		case 'D': no_door = true; break;
		case 'b': build = optarg; break;
		case 'l': llama = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'w': wreps = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: router -b builddir -l prefix "
			    "[-D] [-r reps] [-w workload_reps]\n");
			return 1;
		}
	}
	if (reps < 5 || reps > 32)
		reps = 9;
	if (wreps < 0 || wreps > 16)
		wreps = 5;
	if (llama != NULL)
		snprintf(path, sizeof(path), "%s/bin/llama-server", llama);
	if (llama == NULL || access(path, X_OK) != 0) {
		table_row("4 vs router", "SKIPPED: llama-server not installed "
		    "(../shared/tools/setup-real-llama.sh PREFIX; "
		    "LLAMA_PREFIX=PREFIX)", "", "", "", "", "skipped");
		return 0;
	}
	side_by_side(build, reps);
	if (wreps > 0)
		mixed_sizes(build, wreps);
	return 0;
}
