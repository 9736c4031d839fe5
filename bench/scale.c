/*
 * scale.c — part 2: scale.  A catalog of 10,000 model files (stand-in
 * text files): time from exec to the first STATS answer, STATS and
 * MODELS latency, poold's RSS.  Then 1,000 connected clients and 200
 * running stand-in children at once: STATS latency, CPU and wakeups over
 * a quiet minute, and every child SIGKILLed: are all exits seen?
 *
 *	scale -b BUILDDIR [-r reps] [-q quiet_s] [-n models] [-c clients]
 *	    [-k children]
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bench.h"
#include "proto.h"

#define STATS_SAMPLES	20
#define CONTROL_CONNS	4
#define CONF_DEFAULT_OUTBUF	(1024 * 1024)	/* poold.json(5) */

static char	*sock;

/* One command's round trip in ms; the reply in *reply if asked. */
static double
timed(struct linebuf *lb, enum proto_cmd cmd, char **reply)
{
	char *line = request_line(cmd, 1, NULL, true), *r;
	int64_t t0 = now_ns();

	if ((r = roundtrip(lb, line)) == NULL)
		die("no reply to %s", line);
	t0 = now_ns() - t0;
	free(line);
	if (strncmp(r, "{\"ok\":true", 10) != 0)
		die("%.200s", r);
	if (reply != NULL)
		*reply = r;
	else
		free(r);
	return (double)t0 / NS_PER_MS;
}

/* The median of STATS_SAMPLES STATS round trips, in ms; all in v. */
static double
stats_latency(struct linebuf *lb, double *v)
{
	double tmp[STATS_SAMPLES];

	for (int i = 0; i < STATS_SAMPLES; i++)
		v[i] = tmp[i] = timed(lb, PROTO_CMD_STATS, NULL);
	return summarize(tmp, STATS_SAMPLES).med;
}

static pid_t
start_poold(const char *bin, const char *conf, const char *log,
    double *ready_ms)
{
	char *argv[] = { (char *)bin, "-f", (char *)conf, NULL };
	struct linebuf lb;
	int64_t t0 = now_ns();
	pid_t pid = spawn(argv, log, -1);
	int fd;

	/* Ready = the socket accepts and a STATS is answered. */
	if ((fd = unix_connect_wait(sock, 10000)) == -1)
		die("poold did not come up; see %s", log);
	lb_init(&lb, fd);
	timed(&lb, PROTO_CMD_STATS, NULL);
	*ready_ms = (double)(now_ns() - t0) / NS_PER_MS;
	lb_free(&lb);
	close(fd);
	return pid;
}

/* Starts n models at once (no leases), pipelined over a few
 * connections; returns the ms until every one answered. */
static double
start_children(int n)
{
	struct linebuf lb[CONTROL_CONNS];
	char name[32], *line, *r;
	int64_t t0 = now_ns();
	int fd;

	for (int c = 0; c < CONTROL_CONNS; c++) {
		if ((fd = unix_connect(sock)) == -1)
			die("connect: %s", strerror(errno));
		lb_init(&lb[c], fd);
	}
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "m%05d", i);
		line = request_line(PROTO_CMD_ACQUIRE, i, name, false);
		if (write_all(lb[i % CONTROL_CONNS].fd, line,
		    strlen(line)) == -1)
			die("write: %s", strerror(errno));
		free(line);
	}
	for (int i = 0; i < n; i++) {
		if ((r = lb_line(&lb[i % CONTROL_CONNS], NULL)) == NULL)
			die("no reply to ACQUIRE %d", i);
		if (strncmp(r, "{\"ok\":true", 10) != 0)
			die("ACQUIRE: %.300s", r);
	}
	t0 = now_ns() - t0;
	for (int c = 0; c < CONTROL_CONNS; c++) {
		close(lb[c].fd);
		lb_free(&lb[c]);
	}
	return (double)t0 / NS_PER_MS;
}

/* The pids of the running servers, from STATS. */
static size_t
server_pids(struct linebuf *lb, pid_t *pids, size_t max)
{
	char *r;
	json_t *o, *servers, *s;
	json_error_t err;
	size_t i, n = 0;

	timed(lb, PROTO_CMD_STATS, &r);
	if ((o = json_loads(r, 0, &err)) == NULL)
		die("STATS: %s", err.text);
	servers = json_object_get(o, "servers");
	json_array_foreach(servers, i, s)
		if (n < max)
			pids[n++] = (pid_t)json_integer_value(json_object_get(
			    s, "pid"));
	json_decref(o);
	free(r);
	return n;
}

static long long
stats_field(struct linebuf *lb, const char *key)
{
	char *r;
	long long v;

	timed(lb, PROTO_CMD_STATS, &r);
	v = json_int(r, key, -1);
	free(r);
	return v;
}

/* epoll_wait calls poold makes over secs (perf, else strace); -1 if
 * neither works. */
static long
count_wakeups(pid_t pid, int secs, const char *dir, char *how, size_t len)
{
	char pidstr[32], s[32], out[1100], *argv[20], *txt, *p;
	int i = 0, status;
	long n = -1;
	pid_t tool;

	snprintf(pidstr, sizeof(pidstr), "%ld", (long)pid);
	snprintf(s, sizeof(s), "%d", secs);
	snprintf(out, sizeof(out), "%s/wakeups.txt", dir);
	argv[i++] = "perf"; argv[i++] = "stat"; argv[i++] = "-x,";
	argv[i++] = "-o"; argv[i++] = out; argv[i++] = "-e";
	argv[i++] = "syscalls:sys_enter_epoll_wait,"
	    "syscalls:sys_enter_epoll_pwait,raw_syscalls:sys_enter";
	argv[i++] = "-p"; argv[i++] = pidstr; argv[i++] = "--";
	argv[i++] = "sleep"; argv[i++] = s; argv[i] = NULL;
	tool = spawn(argv, NULL, -1);
	while (waitpid(tool, &status, 0) == -1 && errno == EINTR)
		;
	if ((txt = read_file(out, NULL)) != NULL &&
	    perf_value(txt, "raw_syscalls:sys_enter") >= 0) {
		long all = perf_value(txt, "raw_syscalls:sys_enter");

		n = perf_value(txt, "syscalls:sys_enter_epoll_wait");
		if (perf_value(txt, "syscalls:sys_enter_epoll_pwait") > 0)
			n += perf_value(txt, "syscalls:sys_enter_epoll_pwait");
		snprintf(how, len, "perf stat, %d s: %ld epoll_wait, %ld "
		    "syscalls in all", secs, n, all);
		free(txt);
		return n;
	}
	free(txt);
	/* strace -c writes a summary on exit; SIGINT ends it. */
	snprintf(out, sizeof(out), "%s/strace.txt", dir);
	i = 0;
	argv[i++] = "strace"; argv[i++] = "-c"; argv[i++] = "-f";
	argv[i++] = "-o"; argv[i++] = out; argv[i++] = "-p"; argv[i++] = pidstr;
	argv[i] = NULL;
	tool = spawn(argv, NULL, -1);
	sleep_ms((int64_t)secs * 1000);
	kill(tool, SIGINT);
	while (waitpid(tool, &status, 0) == -1 && errno == EINTR)
		;
	if ((txt = read_file(out, NULL)) == NULL)
		return -1;
	n = 0;
	if ((p = strstr(txt, "epoll_wait")) != NULL) {
		while (p > txt && p[-1] != '\n')
			p--;
		/* % time, seconds, usecs/call, calls */
		sscanf(p, "%*f %*f %*d %ld", &n);
	}
	snprintf(how, len, "strace -c, %d s: %ld epoll_wait", secs, n);
	free(txt);
	return n;
}

static void
write_conf(const char *path, const char *dir, const char *fake, int nchildren,
    int nclients, bool no_sampling)
{
	write_file(path, "{\n  \"socket\": \"%s\",\n  \"state_file\": "
	    "\"%s.state\",\n  \"models_dir\": \"%s/models\",\n  \"command\": "
	    "[\"%s\", \"-m\", \"{path}\", \"--host\", \"127.0.0.1\", "
	    "\"--port\", \"{port}\"],\n  \"memory_limit\": \"64G\", "
	    "\"reserved\": \"0\", \"per_model\": \"16M\",\n  \"max_servers\": "
	    "%d,\n  \"ports\": [26000, 26999],\n  \"idle_timeout\": 0,\n"
	    "  \"max_clients\": %d,\n  \"outbuf_bytes\": \"16M\"%s\n}\n",
	    sock, sock, dir, fake, nchildren + 16, nclients + 64,
	    no_sampling ? ",\n  \"rss_interval\": 0,\n  \"health_interval\": 0" :
	    "");
}

/* Starts n children and sits quiet for secs: poold's CPU ms over it and
 * its epoll_wait calls over the first 10 s (or fewer). */
static void
quiet_window(pid_t poold, int secs, const char *dir, double *cpu_ms,
    long *wakeups, char *how, size_t len)
{
	double c0 = proc_cpu_s(poold);
	int64_t q0 = now_ns();

	*wakeups = count_wakeups(poold, secs < 10 ? secs : 10, dir, how, len);
	while (now_ns() - q0 < (int64_t)secs * NS_PER_S)
		sleep_ms(100);
	*cpu_ms = (proc_cpu_s(poold) - c0) * 1000;
}

int
main(int argc, char **argv)
{
	const char *build = "build";
	char bin[1024], fake[1024], conf[1024], log[1024], path[1200];
	char conf_quiet[1100], how2[256];
	char a[96], b[128], how[256], what[160];
	int reps = 5, quiet_s = 60, nmodels = 10000, nclients = 1000;
	int nchildren = 200, ch, *cfd;
	double ready[16], stats0[16], rss0[16], models_ms[16], v[STATS_SAMPLES];
	double start_ms[16], stats1[16], reap_ms[16], rss1[16];
	char *dir, *r;
	struct linebuf lb;
	pid_t poold = -1, *pids;
	long nofile, wakeups = -1, wakeups2 = -1;
	double cpu_quiet = -1, cpu_quiet2 = -1;
	int quiet2_s;
	bool exits_ok = true;
	size_t models_bytes = 0;
	struct summary s;
	FILE *f;

	while ((ch = getopt(argc, argv, "b:r:q:n:c:k:")) != -1) {
		switch (ch) {
		case 'b': build = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'q': quiet_s = atoi(optarg); break;
		case 'n': nmodels = atoi(optarg); break;
		case 'c': nclients = atoi(optarg); break;
		case 'k': nchildren = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: scale -b builddir [-r reps] "
			    "[-q quiet_s] [-n models] [-c clients] "
			    "[-k children]\n");
			return 1;
		}
	}
	if (reps < 1 || reps > 15)
		reps = 5;
	quiet2_s = quiet_s < 20 ? quiet_s : 20;
	if (nchildren > nmodels)
		nchildren = nmodels;
	nofile = raise_nofile(nclients + 3 * nchildren + 256);
	if (nofile < nclients + 2 * nchildren + 64)
		die("RLIMIT_NOFILE is %ld; %d clients and %d children need "
		    "more", nofile, nclients, nchildren);
	snprintf(bin, sizeof(bin), "%s/poold", build);
	snprintf(fake, sizeof(fake), "%s/fakellama", build);
	dir = make_tmpdir("scale");
	if (asprintf(&sock, "%s/poold.sock", dir) == -1)
		die("out of memory");
	snprintf(path, sizeof(path), "%s/models", dir);
	mkdir(path, 0755);
	for (int i = 0; i < nmodels; i++) {
		snprintf(path, sizeof(path), "%s/models/m%05d.gguf", dir, i);
		if ((f = fopen(path, "w")) == NULL)
			die("%s: %s", path, strerror(errno));
		fprintf(f, "# fakellama model\nload_ms=50\nmem=1M\n");
		fclose(f);
	}
	snprintf(conf, sizeof(conf), "%s/poold.json", dir);
	write_conf(conf, dir, fake, nchildren, nclients, false);
	snprintf(conf_quiet, sizeof(conf_quiet), "%s/poold-nosample.json", dir);
	write_conf(conf_quiet, dir, fake, nchildren, nclients, true);
	snprintf(log, sizeof(log), "%s/poold.log", dir);
	say("scale: %d model files, RLIMIT_NOFILE %ld", nmodels, nofile);

	/* Cold page cache is not the point: one untimed start first. */
	poold = start_poold(bin, conf, log, &ready[0]);
	stop_process(poold, 5000);
	for (int rep = 0; rep < reps; rep++) {
		poold = start_poold(bin, conf, log, &ready[rep]);
		lb_init(&lb, unix_connect(sock));
		stats0[rep] = stats_latency(&lb, v);
		rss0[rep] = (double)proc_rss(poold) / (1 << 20);
		models_ms[rep] = timed(&lb, PROTO_CMD_MODELS, &r);
		models_bytes = strlen(r) + 1;
		free(r);
		if (proc_rss(poold) / (double)(1 << 20) > rss0[rep])
			rss0[rep] = (double)proc_rss(poold) / (1 << 20);
		close(lb.fd);
		lb_free(&lb);
		if (rep < reps - 1)
			stop_process(poold, 5000);
	}
	s = summarize(ready, (size_t)reps);
	snprintf(what, sizeof(what), "%d-model catalog: exec to first STATS "
	    "answer (ms)", nmodels);
	table_row("2 scale", what, fmt_summary(a, sizeof(a), "%.1f", s), "",
	    "", "<= 200 ms", s.med <= 200 ? "met" : "NOT met");
	s = summarize(stats0, (size_t)reps);
	snprintf(what, sizeof(what), "STATS, %d models, idle (ms)", nmodels);
	table_row("2 scale", what, fmt_summary(a, sizeof(a), "%.3f", s), "",
	    "", "<= 5 ms", s.med <= 5 ? "met" : "NOT met");
	s = summarize(models_ms, (size_t)reps);
	snprintf(what, sizeof(what), "MODELS, all %d, sorted (ms)", nmodels);
	table_row("2 scale", what, fmt_summary(a, sizeof(a), "%.1f", s), "",
	    "", "", "");
	if (models_bytes > CONF_DEFAULT_OUTBUF)
		table_note("scale: finding: the MODELS reply for %d models is "
		    "%.2f MiB, more than the default outbuf_bytes (1 MiB): "
		    "with the defaults poold drops the client instead of "
		    "answering (the bench sets 16M)", nmodels,
		    (double)models_bytes / (1 << 20));
	s = summarize(rss0, (size_t)reps);
	snprintf(what, sizeof(what), "poold RSS, %d models, after MODELS "
	    "(MiB)", nmodels);
	table_row("2 scale", what, fmt_summary(a, sizeof(a), "%.1f", s), "",
	    "", "<= 32 MiB", s.max <= 32 ? "met" : "NOT met");

	/* 1,000 clients connected, each answered once. */
	if ((cfd = calloc((size_t)nclients, sizeof(int))) == NULL)
		die("out of memory");
	for (int i = 0; i < nclients; i++) {
		struct linebuf one;
		char *line = request_line(PROTO_CMD_PING, i, NULL, true);

		if ((cfd[i] = unix_connect(sock)) == -1)
			die("client %d: connect: %s", i, strerror(errno));
		lb_init(&one, cfd[i]);
		if ((r = roundtrip(&one, line)) == NULL ||
		    strncmp(r, "{\"ok\":true", 10) != 0)
			die("client %d: %s", i, r ? r : "no reply");
		free(r);
		free(line);
		lb_free(&one);
	}
	lb_init(&lb, unix_connect(sock));
	if (stats_field(&lb, "clients") < nclients)
		die("poold counts fewer than %d clients", nclients);
	if ((pids = calloc((size_t)nchildren, sizeof(*pids))) == NULL)
		die("out of memory");
	for (int rep = 0; rep < reps; rep++) {
		int64_t t0;
		size_t n;
		long long crashes0 = stats_field(&lb, "crashes");

		start_ms[rep] = start_children(nchildren);
		if (stats_field(&lb, "running") != nchildren)
			die("not %d running", nchildren);
		stats1[rep] = stats_latency(&lb, v);
		rss1[rep] = (double)proc_rss(poold) / (1 << 20);
		if (rep == 0) {
			say("quiet: %d s with %d clients and %d children, "
			    "nothing asked", quiet_s, nclients, nchildren);
			quiet_window(poold, quiet_s, dir, &cpu_quiet, &wakeups,
			    how, sizeof(how));
		}
		n = server_pids(&lb, pids, (size_t)nchildren);
		if (n != (size_t)nchildren)
			die("STATS lists %zu servers", n);
		t0 = now_ns();
		for (size_t i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		while (stats_field(&lb, "running") != 0) {
			if (now_ns() - t0 > 30 * NS_PER_S) {
				exits_ok = false;
				break;
			}
			sleep_ms(1);
		}
		reap_ms[rep] = (double)(now_ns() - t0) / NS_PER_MS;
		if (stats_field(&lb, "crashes") - crashes0 != nchildren)
			exits_ok = false;
		for (size_t i = 0; i < n; i++)
			if (proc_alive(pids[i]))
				exits_ok = false;
	}
	/* The same quiet, with RSS sampling off: what is left is the loop. */
	for (int i = 0; i < nclients; i++)
		close(cfd[i]);
	close(lb.fd);
	lb_free(&lb);
	stop_process(poold, 10000);
	poold = start_poold(bin, conf_quiet, log, &ready[reps]);
	start_children(nchildren);
	sleep_ms(500);
	say("quiet: %d s, rss_interval 0, health_interval 0", quiet2_s);
	quiet_window(poold, quiet2_s, dir, &cpu_quiet2, &wakeups2, how2,
	    sizeof(how2));
	stop_process(poold, 10000);

	s = summarize(start_ms, (size_t)reps);
	snprintf(what, sizeof(what), "%d stand-ins started at once, %d "
	    "clients connected (ms)", nchildren, nclients);
	table_row("2 scale", what, fmt_summary(a, sizeof(a), "%.0f", s), "",
	    "", "", "");
	s = summarize(stats1, (size_t)reps);
	snprintf(what, sizeof(what), "STATS with %d clients + %d children "
	    "(ms)", nclients, nchildren);
	table_row("2 scale", what, fmt_summary(a, sizeof(a), "%.3f", s), "",
	    "", "<= 5 ms", s.med <= 5 ? "met" : "NOT met");
	s = summarize(rss1, (size_t)reps);
	snprintf(what, sizeof(what), "poold RSS with %d clients + %d "
	    "children (MiB)", nclients, nchildren);
	table_row("2 scale", what, fmt_summary(a, sizeof(a), "%.1f", s), "",
	    "", "<= 32 MiB", s.max <= 32 ? "met" : "NOT met");
	/* The default config checks each ready server's health every
	 * 10 s (issue 9): 200 servers are 20 probes a second.  What that
	 * watch may cost: 1% of a core. */
	snprintf(what, sizeof(what), "quiet %d s, default config (%d clients, %d children): "
	    "poold CPU (ms)", quiet_s, nclients, nchildren);
	snprintf(a, sizeof(a), "%.0f", cpu_quiet);
	table_row("2 scale", what, a, "", "", "<= 1% CPU",
	    cpu_quiet <= quiet_s * 10.0 ? "met" : "NOT met");
	snprintf(what, sizeof(what), "quiet: poold wakeups (epoll_wait "
	    "calls in %d s)", quiet_s < 10 ? quiet_s : 10);
	snprintf(a, sizeof(a), "%ld", wakeups);
	table_row("2 scale", what, wakeups < 0 ? "n/a" : a, "", "", "-",
	    wakeups < 0 ? "unmeasured" : "-");
	if (wakeups >= 0)
		table_note("scale: wakeups by %s", how);
	snprintf(what, sizeof(what), "quiet %d s, rss_interval 0, "
	    "health_interval 0 (no sampling, no checks): poold CPU (ms)",
	    quiet2_s);
	snprintf(a, sizeof(a), "%.0f", cpu_quiet2);
	table_row("2 scale", what, a, "", "", "~0", cpu_quiet2 <= 20 ?
	    "met" : "NOT met");
	snprintf(what, sizeof(what), "quiet, nothing watched: wakeups "
	    "(epoll_wait calls in %d s)", quiet2_s < 10 ? quiet2_s : 10);
	snprintf(a, sizeof(a), "%ld", wakeups2);
	table_row("2 scale", what, wakeups2 < 0 ? "n/a" : a, "", "", "~0",
	    wakeups2 < 0 ? "unmeasured" : wakeups2 <= 2 ? "met" : "NOT met");
	if (wakeups2 >= 0)
		table_note("scale, rss_interval 0: wakeups by %s", how2);
	s = summarize(reap_ms, (size_t)reps);
	snprintf(what, sizeof(what), "SIGKILL all %d children: all exits "
	    "seen, counters match (ms)", nchildren);
	fmt_summary(a, sizeof(a), "%.0f", s);
	snprintf(b, sizeof(b), "%s, %s", exits_ok ? "all seen" : "MISSED",
	    a);
	table_row("2 scale", what, b, "", "", "no missed exits",
	    exits_ok ? "met" : "NOT met");
	free(cfd);
	free(pids);
	return 0;
}
