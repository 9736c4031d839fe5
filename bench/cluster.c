/*
 * cluster.c — part 7: two poolds as one cluster, with a real etcd.
 *
 * The added latency of a forwarded hot ACQUIRE: node a serves model
 * "here" itself and forwards model "there" to node b, where it is hot.
 * One client on a's socket sends ACQUIRE + RELEASE of "here" and of
 * "there", alternately (which goes first alternates too); per block of
 * pairs the p50 and p99 of each, the median over the blocks.  The
 * forwarded pair crosses two poolds and a TCP link twice (ACQUIRE and
 * RELEASE are both passed on).
 *
 *	cluster -b BUILDDIR [-r reps] [-n pairs]
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static const char *build = "build";

/* A free loopback TCP port (bound and closed: a race we accept here). */
static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd, port;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket: %s", strerror(errno));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		die("bind: %s", strerror(errno));
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static pid_t
etcd_start(const char *tmp, int *client_port)
{
	char data[1200], curl[64], purl[64], init[128], log[1200];
	char *argv[] = { "etcd", "--name", "bench", "--data-dir", data,
	    "--listen-client-urls", curl, "--advertise-client-urls", curl,
	    "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
	    "--initial-cluster", init, NULL };
	int peer = free_port();

	*client_port = free_port();
	snprintf(data, sizeof(data), "%s/etcd", tmp);
	snprintf(log, sizeof(log), "%s/etcd.log", tmp);
	snprintf(curl, sizeof(curl), "http://127.0.0.1:%d", *client_port);
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", peer);
	snprintf(init, sizeof(init), "bench=%s", purl);
	return spawn(argv, log, -1);
}

struct node {
	pid_t		 pid;
	char		 sock[1200];
	char		 log[1200];
};

static void
node_start(struct node *n, const char *tmp, const char *name, int etcd,
    int peer, int port_base)
{
	char conf[1200], dir[1200], bin[1200];
	char *argv[] = { bin, "-f", conf, NULL };
	int fd;

	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	mkdir(dir, 0755);
	snprintf(bin, sizeof(bin), "%s/models", dir);
	mkdir(bin, 0755);
	snprintf(n->sock, sizeof(n->sock), "%s/poold.sock", dir);
	snprintf(n->log, sizeof(n->log), "%s/poold.log", dir);
	snprintf(conf, sizeof(conf), "%s/poold.json", dir);
	write_file(conf, "{\n  \"socket\": \"%s\", \"state_file\": \"%s/state\","
	    "\n  \"models_dir\": \"%s/models\",\n  \"command\": [\"%s/fakellama\","
	    " \"-m\", \"{path}\", \"--host\", \"{host}\", \"--port\", "
	    "\"{port}\"],\n  \"memory_limit\": \"4G\", \"reserved\": \"0\", "
	    "\"per_model\": \"64M\", \"idle_timeout\": 0,\n  \"ports\": [%d, %d],"
	    "\n  \"cluster\": {\"etcd\": [\"http://127.0.0.1:%d\"], \"name\": "
	    "\"%s\", \"listen\": \"127.0.0.1:%d\", \"secret_file\": "
	    "\"%s/secret\", \"lease_ttl\": \"5s\"}\n}\n", n->sock, dir, dir,
	    build, port_base, port_base + 9, etcd, name, peer, tmp);
	snprintf(bin, sizeof(bin), "%s/poold", build);
	n->pid = spawn(argv, n->log, -1);
	if ((fd = unix_connect_wait(n->sock, 10000)) == -1)
		die("poold %s did not come up; see %s", name, n->log);
	close(fd);
}

static void
model(const char *tmp, const char *node, const char *name)
{
	char path[1300];

	snprintf(path, sizeof(path), "%s/%s/models/%s.gguf", tmp, node, name);
	write_file(path, "load_ms=0\nmem=1M\n");
}

/* ACQUIRE + RELEASE of model on lb: ms, or dies. */
static double
pair_ms(struct linebuf *lb, const char *model_name, long long *id)
{
	char line[256], *rep;
	long long lease;
	int64_t t0 = now_ns();

	snprintf(line, sizeof(line), "{\"cmd\":\"ACQUIRE\",\"id\":%lld,"
	    "\"model\":\"%s\"}\n", ++*id, model_name);
	rep = roundtrip(lb, line);
	if (strstr(rep, "\"ok\":true") == NULL)
		die("ACQUIRE %s: %s", model_name, rep);
	lease = json_int(rep, "lease", -1);
	free(rep);
	snprintf(line, sizeof(line), "{\"cmd\":\"RELEASE\",\"id\":%lld,"
	    "\"lease\":%lld}\n", ++*id, lease);
	rep = roundtrip(lb, line);
	if (strstr(rep, "\"ok\":true") == NULL)
		die("RELEASE %s: %s", model_name, rep);
	free(rep);
	return (double)(now_ns() - t0) / NS_PER_MS;
}

/* Waits until a's ACQUIRE of model is served by node b. */
static void
wait_forwarded(struct linebuf *lb, long long *id)
{
	char line[256], *rep;
	int64_t until = now_ns() + 30 * NS_PER_S;

	for (;;) {
		snprintf(line, sizeof(line), "{\"cmd\":\"ACQUIRE\",\"id\":%lld,"
		    "\"model\":\"there\",\"hold\":false}\n", ++*id);
		rep = roundtrip(lb, line);
		if (strstr(rep, "\"node\":\"b\"") != NULL) {
			free(rep);
			return;
		}
		if (now_ns() > until)
			die("node a never forwarded to b: %s", rep);
		free(rep);
		sleep_ms(100);
	}
}

int
main(int argc, char **argv)
{
	struct node a, b;
	struct linebuf lb;
	double *here, *there, med[4][32];
	char secret[1200], row[160], x[96], y[96], ratio[32];
	struct summary s1, s2;
	long long id = 0;
	int reps = 5, n = 2000, ch, etcd, fd;
	const char *what[] = { "p50", "p99" };
	char *tmp;
	pid_t etcd_pid;

	while ((ch = getopt(argc, argv, "b:r:n:")) != -1) {
		switch (ch) {
		case 'b': build = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: cluster -b builddir [-r reps] "
			    "[-n pairs]\n");
			return 1;
		}
	}
	if (reps < 1 || reps > 32)
		reps = 5;
	if (n < 10)
		n = 2000;
	if (access("/usr/bin/etcd", X_OK) != 0 && system("command -v etcd "
	    ">/dev/null 2>&1") != 0) {
		table_row("7 cluster", "forwarded ACQUIRE SKIPPED: no etcd "
		    "(contrib/install-deps.sh installs it)", "", "", "", "",
		    "skipped");
		return 0;
	}
	tmp = make_tmpdir("cluster");
	snprintf(secret, sizeof(secret), "%s/secret", tmp);
	write_file(secret, "0123456789abcdef0123456789abcdef-bench-secret\n");
	chmod(secret, 0600);
	etcd_pid = etcd_start(tmp, &etcd);
	sleep_ms(500);
	node_start(&a, tmp, "a", etcd, free_port(), 25700);
	node_start(&b, tmp, "b", etcd, free_port(), 25710);
	model(tmp, "a", "here");
	model(tmp, "b", "there");
	if ((fd = unix_connect_wait(a.sock, 10000)) == -1)
		die("connect to a");
	lb_init(&lb, fd);
	wait_forwarded(&lb, &id);
	if ((here = calloc((size_t)n, sizeof(double))) == NULL ||
	    (there = calloc((size_t)n, sizeof(double))) == NULL)
		die("out of memory");
	for (int i = 0; i < 200; i++) {		/* warm both paths */
		pair_ms(&lb, "here", &id);
		pair_ms(&lb, "there", &id);
	}
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < n; i++) {
			if (i % 2 == 0) {
				here[i] = pair_ms(&lb, "here", &id);
				there[i] = pair_ms(&lb, "there", &id);
			} else {
				there[i] = pair_ms(&lb, "there", &id);
				here[i] = pair_ms(&lb, "here", &id);
			}
		}
		med[0][r] = percentile(there, (size_t)n, 50);
		med[1][r] = percentile(here, (size_t)n, 50);
		med[2][r] = percentile(there, (size_t)n, 99);
		med[3][r] = percentile(here, (size_t)n, 99);
		say("cluster block %d: p50 forwarded %.3f local %.3f ms; p99 "
		    "%.3f %.3f", r, med[0][r], med[1][r], med[2][r], med[3][r]);
	}
	for (int k = 0; k < 2; k++) {
		s1 = summarize(med[2 * k], (size_t)reps);
		s2 = summarize(med[2 * k + 1], (size_t)reps);
		snprintf(row, sizeof(row), "hot ACQUIRE+RELEASE on node a, "
		    "served by b vs by a: %s (ms)", what[k]);
		snprintf(ratio, sizeof(ratio), "%.2fx", s1.med / s2.med);
		table_row("7 cluster", row, fmt_summary(x, sizeof(x), "%.3f",
		    s1), fmt_summary(y, sizeof(y), "%.3f", s2), ratio, "", "");
	}
	table_note("cluster: two poolds and etcd 3.4 on one machine (loopback "
	    "TCP between them), blocks of %d pairs alternating, p50/p99 per "
	    "block, median [range] over %d blocks; the forwarded pair passes "
	    "both ACQUIRE and RELEASE on to node b", n, reps);
	lb_free(&lb);
	close(fd);
	stop_process(a.pid, 10000);
	stop_process(b.pid, 10000);
	stop_process(etcd_pid, 10000);
	return 0;
}
