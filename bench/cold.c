/*
 * cold.c — part 3: cold start overhead.  From the moment a starting
 * server first answers 200 on /health to the moment the ACQUIRE reply is
 * read from poold's socket, and the health probes poold sent per start.
 *
 * Stand-in: fakellama prints "ready port N at MONO_NS" (CLOCK_MONOTONIC)
 * when /health starts answering 200; poold's log_dir keeps that line.
 * Real llama-server: a side thread of this bench polls /health every
 * 1 ms on the one port poold may use (ports [P, P]) and takes the instant
 * it reads the first 200; the overhead is the reply instant minus that,
 * which can only under-state it by at most one poll interval plus one
 * poll's round trip.
 *
 *	cold -b BUILDDIR [-n starts] [-N real_starts] [-l llama_prefix]
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "proto.h"

#define REAL_PORT	25301
#define POLL_EVERY_US	1000

static char	*sock;

/* Sends an ACQUIRE (no lease); the instant its reply line was read. */
static int64_t
acquire(struct linebuf *lb, const char *model, long long id, bool *cold)
{
	char *line = request_line(PROTO_CMD_ACQUIRE, id, model, false), *r;
	int64_t t;

	if (write_all(lb->fd, line, strlen(line)) == -1)
		die("write: %s", strerror(errno));
	if ((r = lb_line(lb, NULL)) == NULL)
		die("no reply to ACQUIRE %s", model);
	t = now_ns();
	if (strncmp(r, "{\"ok\":true", 10) != 0)
		die("ACQUIRE %s: %.300s", model, r);
	*cold = strstr(r, "\"cold\":true") != NULL;
	free(line);
	return t;
}

static void
evict(struct linebuf *lb, const char *model)
{
	char *line = request_line(PROTO_CMD_EVICT, 0, model, true), *r;

	if ((r = roundtrip(lb, line)) == NULL || strncmp(r, "{\"ok\":true",
	    10) != 0)
		die("EVICT %s: %s", model, r ? r : "no reply");
	free(r);
	free(line);
}

/* Finds "needle<number>" in the file, polling up to 2 s; -1 if absent. */
static long long
grep_number(const char *path, const char *needle)
{
	int64_t until = now_ns() + 2 * NS_PER_S;
	char *s, *p;
	long long v;

	for (;;) {
		if ((s = read_file(path, NULL)) != NULL &&
		    (p = strstr(s, needle)) != NULL) {
			v = strtoll(p + strlen(needle), NULL, 10);
			free(s);
			return v;
		}
		free(s);
		if (now_ns() > until)
			return -1;
		sleep_ms(2);
	}
}

static pid_t
start_poold(const char *bin, const char *conf, const char *log)
{
	char *argv[] = { (char *)bin, "-v", "-f", (char *)conf, NULL };
	pid_t pid = spawn(argv, log, -1);
	int fd;

	if ((fd = unix_connect_wait(sock, 10000)) == -1)
		die("poold did not come up; see %s", log);
	close(fd);
	return pid;
}

static void
report(const char *what, double *over, double *probes, double *load,
    int n, const char *how)
{
	char a[96], b[96], c[96], w[200];
	struct summary s = summarize(over, (size_t)n);
	struct summary p = summarize(probes, (size_t)n);
	struct summary l = summarize(load, (size_t)n);

	snprintf(w, sizeof(w), "%s: first 200 to ACQUIRE reply (ms)", what);
	table_row("3 cold start", w, fmt_summary(a, sizeof(a), "%.2f", s), "",
	    "", "<= 10 ms", s.med <= 10 ? "met" : "NOT met");
	snprintf(w, sizeof(w), "%s: probes per start; load (ms) %s", what,
	    fmt_summary(c, sizeof(c), "%.0f", l));
	table_row("3 cold start", w, fmt_summary(b, sizeof(b), "%.0f", p), "",
	    "", "", "");
	table_note("cold start, %s: %s", what, how);
}

/* --- the stand-in --- */

static void
fake_starts(const char *build, int n)
{
	char bin[1024], fake[1024], conf[1024], log[1024], path[1200];
	char name[32], needle[64];
	double over[64], probes[64], load[64];
	struct linebuf lb;
	char *dir;
	pid_t pid;
	bool cold;
	int64_t t;
	long long ready;

	snprintf(bin, sizeof(bin), "%s/poold", build);
	snprintf(fake, sizeof(fake), "%s/fakellama", build);
	dir = make_tmpdir("cold");
	if (asprintf(&sock, "%s/poold.sock", dir) == -1)
		die("out of memory");
	snprintf(path, sizeof(path), "%s/models", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/logs", dir);
	mkdir(path, 0755);
	/* Load times spread over 40-140 ms: the ready instant falls at every
	 * phase of poold's probe schedule. */
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/models/c%02d.gguf", dir, i);
		write_file(path, "load_ms=%d\nmem=1M\n", 40 + (i * 37) % 100);
	}
	snprintf(conf, sizeof(conf), "%s/poold.json", dir);
	write_file(conf, "{\n  \"socket\": \"%s\",\n  \"state_file\": \"%s.state\",\n  \"models_dir\": "
	    "\"%s/models\",\n  \"log_dir\": \"%s/logs\",\n  \"command\": "
	    "[\"%s\", \"-m\", \"{path}\", \"--host\", \"127.0.0.1\", "
	    "\"--port\", \"{port}\"],\n  \"memory_limit\": \"1G\", "
	    "\"reserved\": \"0\", \"per_model\": \"16M\",\n"
	    "  \"ports\": [25200, 25299],\n  \"idle_timeout\": 0\n}\n", sock,
	    sock, dir, dir, fake);
	snprintf(log, sizeof(log), "%s/poold.log", dir);
	pid = start_poold(bin, conf, log);
	lb_init(&lb, unix_connect(sock));
	for (int i = 0; i < n; i++) {
		int64_t t0 = now_ns();

		snprintf(name, sizeof(name), "c%02d", i);
		t = acquire(&lb, name, i, &cold);
		if (!cold)
			die("ACQUIRE %s was not cold", name);
		snprintf(path, sizeof(path), "%s/logs/%s.log", dir, name);
		if ((ready = grep_number(path, " at ")) < 0)
			die("%s: no ready line", path);
		over[i] = (double)(t - ready) / NS_PER_MS;
		load[i] = (double)(t - t0) / NS_PER_MS;
		snprintf(needle, sizeof(needle), "probe %s: healthy after ",
		    name);
		probes[i] = (double)grep_number(log, needle);
		evict(&lb, name);
	}
	close(lb.fd);
	lb_free(&lb);
	stop_process(pid, 5000);
	report("stand-in (fakellama)", over, probes, load, n,
	    "ready instant printed by the stand-in (CLOCK_MONOTONIC) when "
	    "/health turns 200; reply instant taken when the reply line is "
	    "read; load times 40-140 ms");
	free(sock);
}

/* --- the real llama-server --- */

struct poller {
	atomic_bool	 stop;
	int64_t		 first_200;	/* 0 until seen */
	int		 polls;
};

static void *
poll_health(void *arg)
{
	struct poller *p = arg;
	struct http_result r;
	struct timespec ts = { 0, POLL_EVERY_US * 1000 };

	while (!atomic_load(&p->stop)) {
		p->polls++;
		if (http_request(REAL_PORT, "GET", "/health", NULL, &r) == 200) {
			p->first_200 = now_ns();
			return NULL;
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void
real_starts(const char *build, const char *llama, int n)
{
	char bin[1024], conf[1024], log[1024], path[1200], cmd[2600];
	char name[32], needle[64];
	double over[64], probes[64], load[64];
	struct linebuf lb;
	struct poller pl;
	pthread_t th;
	char *dir;
	pid_t pid;
	bool cold;
	int64_t t, t0;

	snprintf(bin, sizeof(bin), "%s/poold", build);
	dir = make_tmpdir("coldreal");
	if (asprintf(&sock, "%s/poold.sock", dir) == -1)
		die("out of memory");
	snprintf(path, sizeof(path), "%s/models", dir);
	mkdir(path, 0755);
	for (int i = 0; i < n; i++) {
		snprintf(cmd, sizeof(cmd), "'%s/bin/make-tiny-gguf' "
		    "'%s/models/r%02d.gguf' --seed %d >/dev/null", llama, dir, i,
		    i);
		if (system(cmd) != 0)
			die("%s failed", cmd);
	}
	snprintf(conf, sizeof(conf), "%s/poold.json", dir);
	/* One port: the poller knows where the server will listen. */
	write_file(conf, "{\n  \"socket\": \"%s\",\n  \"state_file\": \"%s.state\",\n  \"models_dir\": "
	    "\"%s/models\",\n  \"command\": [\"%s\", \"-m\", "
	    "\"{path}\", \"--host\", \"127.0.0.1\", \"--port\", \"{port}\", "
	    "\"-t\", \"1\", \"-np\", \"1\", \"-c\", \"512\"],\n"
	    "  \"memory_limit\": \"1G\", \"reserved\": \"0\", "
	    "\"per_model\": \"64M\",\n  \"ports\": [%d, %d],\n"
	    "  \"max_servers\": 1,\n  \"idle_timeout\": 0\n}\n", sock, sock, dir,
	    llama_binary(llama), REAL_PORT, REAL_PORT);
	snprintf(log, sizeof(log), "%s/poold.log", dir);
	pid = start_poold(bin, conf, log);
	lb_init(&lb, unix_connect(sock));
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "r%02d", i);
		memset(&pl, 0, sizeof(pl));
		pthread_create(&th, NULL, poll_health, &pl);
		t0 = now_ns();
		t = acquire(&lb, name, i, &cold);
		/* The poller may still be one interval from its 200. */
		for (int k = 0; k < 100 && pl.first_200 == 0; k++)
			sleep_ms(1);
		atomic_store(&pl.stop, true);
		pthread_join(th, NULL);
		if (!cold || pl.first_200 == 0)
			die("%s: cold %d, poller saw %s", name, cold,
			    pl.first_200 ? "200" : "no 200");
		over[i] = (double)(t - pl.first_200) / NS_PER_MS;
		load[i] = (double)(t - t0) / NS_PER_MS;
		snprintf(needle, sizeof(needle), "probe %s: healthy after ",
		    name);
		probes[i] = (double)grep_number(log, needle);
		evict(&lb, name);	/* waits for the reap: the port is free */
	}
	close(lb.fd);
	lb_free(&lb);
	stop_process(pid, 10000);
	report("real llama-server", over, probes, load, n,
	    "ready instant = the first 200 read by a side thread polling "
	    "GET /health every 1 ms on the only port poold may use (so it "
	    "may under-state the overhead by up to ~1 ms); tiny 0.5 MB "
	    "models, -t 1 -np 1 -c 512");
}

int
main(int argc, char **argv)
{
	const char *build = "build", *llama = NULL;
	char path[1100];
	int n = 20, nreal = 7, ch;

	while ((ch = getopt(argc, argv, "b:n:N:l:")) != -1) {
		switch (ch) {
		case 'b': build = optarg; break;
		case 'n': n = atoi(optarg); break;
		case 'N': nreal = atoi(optarg); break;
		case 'l': llama = optarg; break;
		default:
			fprintf(stderr, "usage: cold -b builddir [-n starts] "
			    "[-N real_starts] [-l llama_prefix]\n");
			return 1;
		}
	}
	if (n < 5 || n > 64)
		n = 20;
	if (nreal < 5 || nreal > 64)
		nreal = 7;
	fake_starts(build, n);
	if (llama != NULL)
		snprintf(path, sizeof(path), "%s/bin/llama-server", llama);
	if (llama == NULL || access(path, X_OK) != 0) {
		table_row("3 cold start", "real llama-server: SKIPPED "
		    "(not installed; see ../shared/tools/setup-real-llama.sh)",
		    "", "", "", "", "skipped");
		return 0;
	}
	real_starts(build, llama, nreal);
	return 0;
}
