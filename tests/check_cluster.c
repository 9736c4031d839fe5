/*
 * check_cluster.c — integration tests of the cluster (issue 11): real
 * poolds as one pool across "machines", coordinated by a real etcd.
 *
 * Each case starts its own etcd (tests/etcdlib.c) on 127.0.0.1 and three
 * poolds, a on 127.0.0.2, b on 127.0.0.3 and c on 127.0.0.4, each with its
 * own socket, models folder, state file and peer port, sharing a secret
 * file; the stand-in servers (build/fakellama) listen on their node's
 * address.  Lease TTL 3 s, PING 300 ms, etcd deadline 1 s, so a dead node
 * is noticed in seconds.
 *
 * Each case runs in a network namespace of its own where permitted
 * (unshare(CLONE_NEWNET), lo brought up): its nftables rules and
 * addresses are private to it.  Elsewhere it runs on the host's loopback
 * and the nftables case uses a table of its own, removed at the end.
 *
 * Every wait has a deadline: a poold without the feature fails each case
 * with a message, it never hangs.  On a failure every node's log and
 * etcd's are printed.
 *
 * Environment: POOLD_BIN, POOLC_BIN, FAKELLAMA_BIN (make check sets
 * them), ETCD_BIN (else "etcd" on the PATH), POOLD_TEST_NETNS=0 (the
 * host's loopback even where a namespace is permitted).
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#ifdef __linux__
#include <sched.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "etcdlib.h"
#include "testlib.h"

#define NODE_MAX	4
#define TTL_MS		3000		/* "lease_ttl": "3s" */
#define FORM_MS		10000		/* etcd and the nodes find each other */
#define ACQ_MS		6000		/* the timeout_ms of our ACQUIREs */
#define REPLY_MS	12000		/* any reply: past it, poold hangs */
#define LOG_TAIL	12000		/* bytes of each log on a failure */
#define PREFIX		"/poold/v1/default"

struct node {
	struct tl_daemon d;
	char		 name[8];	/* "a" */
	char		 host[16];	/* "127.0.0.2" */
	int		 peer_port;
	struct tl_conn	*mon;		/* for STATS */
	bool		 inited;
};

struct cluster {
	struct tl_etcd	 etcd;
	struct node	 n[NODE_MAX];
	int		 nn;
	char		 secret[TL_PATH_MAX];
	char		 nft_table[64];	/* set while our table exists */
	char		 nft_log[TL_PATH_MAX];
	bool		 netns;
};

static struct cluster	*cl_cur;

/* --- failing: every log, every process --- */

static void
cl_print_tail(const char *what, const char *path, size_t max)
{
	char buf[4096];
	long size, off;
	size_t n;
	FILE *f;

	if (path[0] == '\0' || (f = fopen(path, "r")) == NULL)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	off = size > (long)max ? size - (long)max : 0;
	fseek(f, off, SEEK_SET);
	fprintf(stderr, "---- %s %s (%ld bytes%s) ----\n", what, path, size,
	    off > 0 ? ", tail" : "");
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fprintf(stderr, "---- end of %s ----\n", what);
}

static void
cl_nft_remove(struct cluster *);

/* SIGKILL to every poold, its servers and etcd; our nftables table goes. */
static void
cl_kill_all(struct cluster *c)
{
	pid_t kids[256];
	int i, k, n;

	for (i = 0; i < c->nn; i++) {
		if (c->n[i].d.pid <= 0)
			continue;
		n = tl_children(c->n[i].d.pid, kids, 256);
		for (k = 0; k < n; k++)
			kill(kids[k], SIGKILL);
		kill(c->n[i].d.pid, SIGCONT);
		kill(c->n[i].d.pid, SIGKILL);
	}
	if (c->etcd.pid > 0)
		kill(c->etcd.pid, SIGKILL);
	cl_nft_remove(c);
}

static void
cl_failed(const char *file, int line)
{
	struct cluster *c = cl_cur;
	char what[64];
	int i;

	fprintf(stderr, "\n**** cluster test failed at %s:%d (%s)\n", file,
	    line, c && c->netns ? "own network namespace" : "host loopback");
	if (c != NULL) {
		for (i = 0; i < c->nn; i++) {
			snprintf(what, sizeof(what), "poold %s log",
			    c->n[i].name);
			cl_print_tail(what, c->n[i].d.log, LOG_TAIL);
		}
		tl_etcd_print_log(&c->etcd, 4096);
		cl_print_tail("nft output", c->nft_log, 2048);
		cl_kill_all(c);
	}
	tl_cleanup();
}

#define CL_ASSERT(cond, ...) do {					\
	if (!(cond)) {							\
		cl_failed(__FILE__, __LINE__);				\
		ck_abort_msg(__VA_ARGS__);				\
	}								\
} while (0)

/* --- isolation --- */

/* lo up in a fresh namespace: ioctl, else ip(8). */
static int
cl_lo_up(void)
{
	struct ifreq ifr;
	int fd, rc = -1;

	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	if (rc == -1)
		rc = system("ip link set lo up") == 0 ? 0 : -1;
	return rc;
}

/*
 * A network namespace of our own if permitted; else the host's.
 * POOLD_TEST_NETNS=0 asks for the host's (to try that path here).
 */
static bool
cl_isolate(void)
{
	const char *want = getenv("POOLD_TEST_NETNS");

	if (want != NULL && strcmp(want, "0") == 0)
		return false;
#ifdef __linux__
	if (unshare(CLONE_NEWNET) == 0) {
		TL_ASSERT(cl_lo_up() == 0, "lo up in the new network "
		    "namespace: %s", strerror(errno));
		return true;
	}
#endif
	return false;
}

/* Whether cl_isolate can unshare here (tried in a child). */
static bool
cl_netns_permitted(void)
{
	int status;
	pid_t pid;

	if ((pid = fork()) == 0)
		_exit(cl_isolate() ? 0 : 1);
	return pid > 0 && waitpid(pid, &status, 0) == pid &&
	    WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* --- running commands (nft, poolc) --- */

/* Runs argv with stdout and stderr appended to out; its exit status, or
 * -1 if it could not run or took longer than timeout_ms (then killed). */
static int
cl_run(char *const argv[], const char *out, long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms;
	int status, fd;
	pid_t pid, p;

	pid = fork();
	if (pid == -1)
		return -1;
	if (pid == 0) {
		if ((fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644)) !=
		    -1) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		signal(SIGALRM, SIG_DFL);
		execvp(argv[0], argv);
		_exit(127);
	}
	for (;;) {
		p = waitpid(pid, &status, WNOHANG);
		if (p == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		if (tl_now_ms() >= dl) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return -1;
		}
		tl_sleep_ms(10);
	}
}

static char *
cl_read_file(const char *path)
{
	char *s = NULL;
	long n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n >= 0 && (s = calloc(1, (size_t)n + 1)) != NULL)
		n = (long)fread(s, 1, (size_t)n, f);
	fclose(f);
	return s ? s : strdup("");
}

/* --- nftables --- */

static bool
cl_nft_works(struct cluster *c)
{
	char *argv[] = { "nft", "list", "tables", NULL };

	return cl_run(argv, c->nft_log, 5000) == 0;
}

/*
 * Replaces our table by one whose output chain holds rules (nft syntax,
 * one rule a line); every packet of the loopback passes the output hook.
 */
static void
cl_nft_set(struct cluster *c, const char *rules)
{
	char path[TL_PATH_MAX + 16];
	char *argv[] = { "nft", "-f", path, NULL };
	int rc;

	if (c->nft_table[0] == '\0')
		snprintf(c->nft_table, sizeof(c->nft_table), "poold_ctest_%d",
		    (int)getpid());
	snprintf(path, sizeof(path), "%s/rules.nft", c->etcd.dir);
	tl_write_file(path, "table inet %s\ndelete table inet %s\n"
	    "table inet %s {\n\tchain out {\n\t\ttype filter hook output "
	    "priority 0; policy accept;\n%s\n\t}\n}\n", c->nft_table,
	    c->nft_table, c->nft_table, rules);
	rc = cl_run(argv, c->nft_log, 5000);
	CL_ASSERT(rc == 0, "nft -f %s failed (%d): rules %s", path, rc,
	    rules);
}

static void
cl_nft_remove(struct cluster *c)
{
	char *argv[] = { "nft", "delete", "table", "inet", c->nft_table,
	    NULL };

	if (c->nft_table[0] == '\0')
		return;
	cl_run(argv, c->nft_log, 5000);
	c->nft_table[0] = '\0';
}

/* --- the cluster --- */

static struct node *
N(struct cluster *c, char name)
{
	int i = name - 'a';

	CL_ASSERT(i >= 0 && i < c->nn, "no node %c", name);
	return &c->n[i];
}

/*
 * Fresh folders for nodes a.. (nn of them), etcd started, the secret
 * written (0600).  Models come next (cl_model), then cl_start.
 */
static void
cl_setup(struct cluster *c, int nn)
{
	struct node *n;
	int i;

	memset(c, 0, sizeof(*c));
	cl_cur = c;
	c->netns = cl_isolate();
	c->nn = nn;
	for (i = 0; i < nn; i++) {
		n = &c->n[i];
		tl_daemon_init(&n->d, i);
		n->inited = true;
		snprintf(n->name, sizeof(n->name), "%c", 'a' + i);
		snprintf(n->host, sizeof(n->host), "127.0.0.%d", 2 + i);
	}
	/* After the inits: tl_daemon_init forgets what was tracked. */
	tl_etcd_start(&c->etcd, "127.0.0.1");
	snprintf(c->nft_log, sizeof(c->nft_log), "%s/nft.log", c->etcd.dir);
	snprintf(c->secret, sizeof(c->secret), "%s/cluster.key", c->etcd.dir);
	tl_write_file(c->secret, "the-cluster-test-secret-0123456789abcdef\n");
	CL_ASSERT(chmod(c->secret, 0600) == 0, "chmod: %s", strerror(errno));
	for (i = 0; i < nn; i++)
		c->n[i].peer_port = tl_free_port(c->n[i].host);
}

/* A stand-in model of node name: loads in 50 ms, 1 MiB. */
static void
cl_model(struct cluster *c, char name, const char *model)
{
	tl_model(&N(c, name)->d, model, "load_ms=50\nmem=1M\n");
}

/*
 * Starts node name with the cluster's config: a 16M budget of 8M
 * servers (two servers fill it), servers on the node's address.
 * secret: another secret file, or NULL for the cluster's.
 */
static void
cl_start(struct cluster *c, char name, const char *secret)
{
	struct node *n = N(c, name);
	const char *fake = getenv("FAKELLAMA_BIN");
	char etcd[160], listen[64], fbuf[TL_PATH_MAX], *text;
	long long dl;
	json_t *over;
	int fd;

	if (fake == NULL || fake[0] == '\0') {
		snprintf(fbuf, sizeof(fbuf), "%s/build/fakellama",
		    getenv("POOLD_SRCDIR") ? getenv("POOLD_SRCDIR") : ".");
		fake = fbuf;
	}
	snprintf(etcd, sizeof(etcd), "%s", c->etcd.url);
	snprintf(listen, sizeof(listen), "%s:%d", n->host, n->peer_port);
	over = json_pack("{s:s, s:s, s:[s,s,s,s,s,s,s], s:{s:[s], s:s, s:s,"
	    " s:s, s:s, s:s, s:s, s:s}}",
	    "memory_limit", "16M", "per_model", "8M",
	    "command", fake, "-m", "{path}", "--host", "{host}", "--port",
	    "{port}",
	    "cluster", "etcd", etcd, "name", n->name, "listen", listen,
	    "advertise", n->host, "secret_file", secret ? secret : c->secret,
	    "lease_ttl", "3s", "ping", "300ms", "deadline", "1s");
	CL_ASSERT(over != NULL, "json_pack of the node's config");
	text = json_dumps(over, JSON_COMPACT);
	json_decref(over);
	tl_write_config(&n->d, text);
	free(text);
	tl_daemon_spawn(&n->d);
	tl_track(n->d.pid);
	dl = tl_now_ms() + TL_READY_TIMEOUT_MS;
	while ((fd = tl_connect_fd(n->d.sock)) == -1) {
		CL_ASSERT(!tl_daemon_wait(&n->d, 0), "poold %s exited at its "
		    "start (status 0x%x): does it take the \"cluster\" "
		    "section?", n->name, n->d.status);
		CL_ASSERT(tl_now_ms() < dl, "poold %s: no socket within %d "
		    "ms", n->name, TL_READY_TIMEOUT_MS);
		tl_sleep_ms(10);
	}
	close(fd);
	tl_close(n->mon);
	n->mon = tl_connect(&n->d);
}

/* A request and its reply within REPLY_MS; failing says which node. */
static json_t *
cl_call(struct node *n, struct tl_conn *conn, json_t *req)
{
	char *text = json_dumps(req, JSON_COMPACT);
	long long id = tl_send_req(conn, req);
	json_t *rep = tl_recv_id(conn, id, REPLY_MS);

	CL_ASSERT(rep != NULL, "poold %s: no reply to %s within %d ms%s",
	    n->name, text, REPLY_MS, conn->eof ? " (connection closed)" :
	    " (it hangs)");
	free(text);
	return rep;
}

static json_t *
cl_stats(struct node *n)
{
	json_t *rep = cl_call(n, n->mon, json_pack("{s:s}", "cmd", "STATS"));

	CL_ASSERT(tl_ok(rep), "poold %s: STATS failed: %s", n->name,
	    tl_dump(rep));
	return rep;
}

static json_t *
cl_acquire(struct node *n, struct tl_conn *conn, const char *model,
    bool hold)
{
	return cl_call(n, conn, tl_acquire_req(model, ACQ_MS, hold));
}

/* ACQUIRE that must succeed; the reply. */
static json_t *
cl_acquire_ok(struct node *n, struct tl_conn *conn, const char *model,
    bool hold)
{
	json_t *rep = cl_acquire(n, conn, model, hold);

	CL_ASSERT(tl_ok(rep), "ACQUIRE %s on %s failed: %s", model, n->name,
	    tl_dump(rep));
	return rep;
}

static json_t *
cl_release(struct node *n, struct tl_conn *conn, long long lease)
{
	return cl_call(n, conn, json_pack("{s:s, s:I}", "cmd", "RELEASE",
	    "lease", (json_int_t)lease));
}

/* The reply's "node", "" if none. */
static const char *
cl_node_of(json_t *rep)
{
	const char *s = tl_str(rep, "node");

	return s ? s : "";
}

/* STATS cluster.nodes' names, sorted into a string ("abc"); "-" if the
 * STATS has no cluster section. */
static void
cl_names(json_t *stats, char *buf, size_t len)
{
	json_t *nodes = tl_get(stats, "cluster.nodes"), *e;
	const char *name;
	size_t i, k = 0, j;
	char t;

	if (!json_is_array(nodes)) {
		snprintf(buf, len, "-");
		return;
	}
	json_array_foreach(nodes, i, e)
		if ((name = json_string_value(json_object_get(e, "name"))) !=
		    NULL && k + 1 < len)
			buf[k++] = name[0];
	buf[k] = '\0';
	for (i = 0; i < k; i++)		/* a handful: insertion sort */
		for (j = i; j > 0 && buf[j - 1] > buf[j]; j--) {
			t = buf[j];
			buf[j] = buf[j - 1];
			buf[j - 1] = t;
		}
}

/* true if node n's STATS says connected with exactly the nodes names. */
static bool
cl_sees(struct node *n, const char *names)
{
	json_t *st = cl_stats(n);
	const char *state = tl_str(st, "cluster.state");
	char got[16];
	bool ok;

	cl_names(st, got, sizeof(got));
	ok = state != NULL && strcmp(state, "connected") == 0 &&
	    strcmp(got, names) == 0;
	json_decref(st);
	return ok;
}

/* Waits until each node of who sees exactly names; fails after ms. */
static void
cl_wait_sees(struct cluster *c, const char *who, const char *names,
    long long ms, const char *why)
{
	long long dl = tl_now_ms() + ms;
	const char *p;
	char got[16];
	json_t *st;

	for (p = who; *p != '\0'; p++) {
		while (!cl_sees(N(c, *p), names)) {
			if (tl_now_ms() < dl) {
				tl_sleep_ms(50);
				continue;
			}
			st = cl_stats(N(c, *p));
			cl_names(st, got, sizeof(got));
			CL_ASSERT(0, "%s: node %c should list nodes \"%s\" "
			    "connected within %lld ms, it lists \"%s\": %s",
			    why, *p, names, ms, got,
			    tl_dump(tl_get(st, "cluster")));
		}
	}
}

/* true if node n's view of etcd lists model's server on node as ready. */
static bool
cl_knows_ready(struct node *n, const char *node, const char *model)
{
	json_t *st = cl_stats(n), *s;
	size_t i;
	bool ok = false;

	json_array_foreach(tl_get(st, "cluster.servers"), i, s)
		if (tl_str(s, "node") != NULL && tl_str(s, "model") != NULL &&
		    tl_str(s, "state") != NULL &&
		    strcmp(tl_str(s, "node"), node) == 0 &&
		    strcmp(tl_str(s, "model"), model) == 0 &&
		    strcmp(tl_str(s, "state"), "ready") == 0)
			ok = true;
	json_decref(st);
	return ok;
}

/* Starts the nodes named and waits until they all see each other. */
static void
cl_form(struct cluster *c, const char *names)
{
	const char *p;

	for (p = names; *p != '\0'; p++)
		cl_start(c, *p, NULL);
	cl_wait_sees(c, names, names, FORM_MS, "forming");
}

/* The servers of model in n's own STATS (0 or 1), their leases in
 * *leases (may be NULL). */
static int
cl_local(struct node *n, const char *model, long long *leases)
{
	json_t *st = cl_stats(n), *s, *e;
	int count = 0;
	size_t i;

	if (leases != NULL)
		*leases = 0;
	json_array_foreach(json_object_get(st, "servers"), i, e) {
		s = json_object_get(e, "model");
		if (!json_is_string(s) || strcmp(json_string_value(s),
		    model) != 0)
			continue;
		count++;
		if (leases != NULL)
			*leases += json_integer_value(json_object_get(e,
			    "leases"));
	}
	json_decref(st);
	return count;
}

/* n's STATS cluster.remote_leases, -1 if absent. */
static long long
cl_remote_leases(struct node *n)
{
	json_t *st = cl_stats(n), *v = tl_get(st, "cluster.remote_leases");
	long long k = json_is_integer(v) ? json_integer_value(v) : -1;

	json_decref(st);
	return k;
}

/* Waits until node n's server of model has want leases. */
static void
cl_wait_leases(struct node *n, const char *model, long long want,
    long long ms, const char *why)
{
	long long dl = tl_now_ms() + ms, got = -1;

	for (;;) {
		cl_local(n, model, &got);
		if (got == want)
			return;
		CL_ASSERT(tl_now_ms() < dl, "%s: %s's server of %s should "
		    "have %lld leases within %lld ms, it has %lld", why,
		    n->name, model, want, ms, got);
		tl_sleep_ms(50);
	}
}

/* How many servers of model the running nodes run, by their STATS. */
static int
cl_total(struct cluster *c, const char *model)
{
	int i, sum = 0;

	for (i = 0; i < c->nn; i++)
		if (c->n[i].d.pid > 0)
			sum += cl_local(&c->n[i], model, NULL);
	return sum;
}

/* How many stand-in processes run model under the running nodes. */
static int
cl_procs(struct cluster *c, const char *model)
{
	int i, sum = 0;

	for (i = 0; i < c->nn; i++)
		if (c->n[i].d.pid > 0)
			sum += tl_standins_of(&c->n[i].d, model);
	return sum;
}

/* The host and port of "http://H:P"; false if it is not that. */
static bool
cl_endpoint(json_t *rep, char *host, size_t hlen, int *port)
{
	const char *ep = tl_str(rep, "endpoint"), *colon;

	if (ep == NULL || strncmp(ep, "http://", 7) != 0 ||
	    (colon = strrchr(ep + 7, ':')) == NULL)
		return false;
	snprintf(host, hlen, "%.*s", (int)(colon - ep - 7), ep + 7);
	*port = atoi(colon + 1);
	return *port > 0;
}

/* GET path on the reply's endpoint, with its key or without. */
static int
cl_get(json_t *rep, const char *path, bool with_key)
{
	char host[64], auth[256];
	const char *key = tl_str(rep, "api_key");
	int port;

	CL_ASSERT(cl_endpoint(rep, host, sizeof(host), &port), "no http "
	    "endpoint in %s", tl_dump(rep));
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n",
	    key ? key : "");
	return tl_etcd_http(host, port, "GET", path, with_key ? auth : NULL,
	    NULL, 3000, NULL);
}

/* SIGTERM to every node still running, each exits 0 and leaves no
 * server; etcd stopped; folders removed. */
static void
cl_finish(struct cluster *c)
{
	pid_t kids[256];
	int i, k, n;
	bool ok;

	for (i = 0; i < c->nn; i++) {
		struct node *nd = &c->n[i];

		tl_close(nd->mon);
		nd->mon = NULL;
		if (nd->d.pid <= 0)
			continue;
		CL_ASSERT(!tl_daemon_wait(&nd->d, 0), "poold %s died during "
		    "the test (status 0x%x)", nd->name, nd->d.status);
		n = tl_children(nd->d.pid, kids, 256);
		for (k = 0; k < n; k++)
			tl_track(kids[k]);
		kill(nd->d.pid, SIGTERM);
		CL_ASSERT(tl_daemon_wait(&nd->d, nd->d.stop_timeout_ms + 3000),
		    "poold %s did not exit after SIGTERM", nd->name);
		CL_ASSERT(WIFEXITED(nd->d.status) &&
		    WEXITSTATUS(nd->d.status) == 0, "poold %s ended with "
		    "status 0x%x after SIGTERM", nd->name, nd->d.status);
		for (k = 0; k < n; k++) {
			TL_WAIT_UNTIL(ok, tl_pid_gone_reap(kids[k]), 2000);
			CL_ASSERT(ok, "server %d of poold %s outlives it",
			    (int)kids[k], nd->name);
		}
	}
	tl_etcd_free(&c->etcd);
	cl_nft_remove(c);
	tl_cleanup();
	for (i = 0; i < c->nn; i++)
		tl_rm_rf(c->n[i].d.dir);
	cl_cur = NULL;
}

/* Occurrences of needle in node n's log. */
static int
cl_log_count(struct node *n, const char *needle)
{
	char *log = tl_daemon_log(&n->d), *p = log;
	int k = 0;

	while ((p = strstr(p, needle)) != NULL) {
		k++;
		p += strlen(needle);
	}
	free(log);
	return k;
}

static void
cl_wait_log(struct node *n, const char *needle, long long ms)
{
	bool ok;

	TL_WAIT_UNTIL(ok, tl_log_has(&n->d, needle), ms);
	CL_ASSERT(ok, "poold %s did not log \"%s\" within %lld ms", n->name,
	    needle, ms);
}

/* n's STATS cluster.state is state. */
static bool
cl_state_is(struct node *n, const char *state)
{
	json_t *st = cl_stats(n);
	const char *s = tl_str(st, "cluster.state");
	bool is = s != NULL && strcmp(s, state) == 0;

	json_decref(st);
	return is;
}

/* How many keys under the prefix hold needle; -1 if etcd is silent. */
static int
cl_key_count(struct cluster *c, const char *needle)
{
	json_t *kvs = tl_etcd_range(&c->etcd, PREFIX "/", 3000);
	int n = kvs != NULL ? tl_etcd_count(kvs, needle) : -1;

	json_decref(kvs);
	return n;
}

/* The keys under the prefix, by etcd's own word. */
static json_t *
cl_keys(struct cluster *c)
{
	json_t *kvs = tl_etcd_range(&c->etcd, PREFIX "/", 3000);

	CL_ASSERT(kvs != NULL, "etcd's gateway did not answer a range");
	return kvs;
}

/* --- 1. remote --- */

/*
 * A model only b has, asked on a: the endpoint is on b's address with a
 * key that opens it (401 without); the lease is held on b until a's
 * client releases it, or disconnects.
 */
START_TEST(test_remote)
{
	struct cluster c;
	struct tl_conn *ca, *ca2;
	json_t *rep, *r;
	const char *key;
	char host[64], out[TL_PATH_MAX + 16], addr[64], *text;
	char *argv[] = { NULL, "-s", NULL, "stats", "--cluster", NULL };
	const char *poolc = getenv("POOLC_BIN");
	long long lease;
	int port, st, i;

	cl_setup(&c, 3);
	cl_model(&c, 'a', "aonly");
	cl_model(&c, 'b', "bonly");
	cl_model(&c, 'c', "conly");
	cl_form(&c, "abc");
	ca = tl_connect(&N(&c, 'a')->d);
	rep = cl_acquire_ok(N(&c, 'a'), ca, "bonly", true);
	CL_ASSERT(strcmp(cl_node_of(rep), "b") == 0, "bonly should be served "
	    "by node b: %s", tl_dump(rep));
	CL_ASSERT(cl_endpoint(rep, host, sizeof(host), &port) &&
	    strcmp(host, "127.0.0.3") == 0, "the endpoint should be on "
	    "127.0.0.3: %s", tl_dump(rep));
	key = tl_str(rep, "api_key");
	CL_ASSERT(key != NULL && strlen(key) == 64 && strspn(key,
	    "0123456789abcdef") == 64, "api_key should be 64 hex digits: %s",
	    tl_dump(rep));
	lease = tl_int(rep, "lease");
	st = cl_get(rep, "/debug/stats", true);
	CL_ASSERT(st == 200, "GET /debug/stats on %s with its key: HTTP %d",
	    tl_str(rep, "endpoint"), st);
	st = cl_get(rep, "/debug/stats", false);
	CL_ASSERT(st == 401, "GET /debug/stats on %s without a key: HTTP %d, "
	    "want 401", tl_str(rep, "endpoint"), st);
	cl_wait_leases(N(&c, 'b'), "bonly", 1, 2000, "a's lease on b");
	CL_ASSERT(cl_local(N(&c, 'a'), "bonly", NULL) == 0, "a runs bonly "
	    "itself");
	CL_ASSERT(cl_remote_leases(N(&c, 'a')) == 1, "a's STATS "
	    "cluster.remote_leases is %lld, want 1",
	    cl_remote_leases(N(&c, 'a')));

	/* Another client of a cannot end it by its id (forged), nor can
	 * it LEASE it: the same not_found as for a lease never given. */
	{
		struct tl_conn *thief = tl_connect(&N(&c, 'a')->d);
		json_t *fr;

		fr = tl_call(thief, json_pack("{s:s, s:I}", "cmd", "RELEASE",
		    "lease", (json_int_t)lease), 5000);
		CL_ASSERT(tl_err(fr) != NULL && strcmp(tl_err(fr),
		    "not_found") == 0, "RELEASE of another client's remote "
		    "lease: %s", tl_dump(fr));
		json_decref(fr);
		fr = tl_call(thief, json_pack("{s:s, s:I}", "cmd", "LEASE",
		    "lease", (json_int_t)lease), 5000);
		CL_ASSERT(tl_err(fr) != NULL && strcmp(tl_err(fr),
		    "not_found") == 0, "LEASE of another client's remote "
		    "lease: %s", tl_dump(fr));
		json_decref(fr);
		tl_close(thief);
		cl_wait_leases(N(&c, 'b'), "bonly", 1, 2000, "the lease on b "
		    "after a forged RELEASE");
	}

	/* poolc stats --cluster lists the three nodes' peer addresses. */
	if (poolc != NULL && poolc[0] != '\0') {
		snprintf(out, sizeof(out), "%s/poolc.out", c.etcd.dir);
		argv[0] = (char *)poolc;
		argv[2] = N(&c, 'a')->d.sock;
		st = cl_run(argv, out, 5000);
		text = cl_read_file(out);
		for (i = 0; i < 3; i++) {
			snprintf(addr, sizeof(addr), "%s:%d", c.n[i].host,
			    c.n[i].peer_port);
			CL_ASSERT(st == 0 && strstr(text, addr) != NULL,
			    "poolc stats --cluster (exit %d) should list %s:"
			    "\n%s", st, addr, text);
		}
		free(text);
	}

	r = cl_release(N(&c, 'a'), ca, lease);
	CL_ASSERT(tl_ok(r), "RELEASE of the remote lease: %s", tl_dump(r));
	json_decref(r);
	cl_wait_leases(N(&c, 'b'), "bonly", 0, 3000, "after a's RELEASE");
	CL_ASSERT(cl_remote_leases(N(&c, 'a')) == 0, "a's STATS "
	    "cluster.remote_leases is %lld after the RELEASE, want 0",
	    cl_remote_leases(N(&c, 'a')));
	json_decref(rep);

	/* Again, the client goes away instead of releasing. */
	ca2 = tl_connect(&N(&c, 'a')->d);
	rep = cl_acquire_ok(N(&c, 'a'), ca2, "bonly", true);
	CL_ASSERT(strcmp(cl_node_of(rep), "b") == 0, "again on b: %s",
	    tl_dump(rep));
	cl_wait_leases(N(&c, 'b'), "bonly", 1, 2000, "a's second lease");
	tl_close(ca2);
	cl_wait_leases(N(&c, 'b'), "bonly", 0, 3000, "after a's client "
	    "disconnected");
	json_decref(rep);
	tl_close(ca);
	cl_finish(&c);
}
END_TEST

/* --- 2. one start --- */

/*
 * Cold ACQUIREs of one model on the three nodes at once: one start in
 * the cluster, the three replies name one node and one endpoint.
 */
START_TEST(test_one_start)
{
	struct cluster c;
	struct tl_conn *conn[3];
	json_t *rep[3];
	long long id[3];
	int i, total, procs;

	cl_setup(&c, 3);
	for (i = 0; i < 3; i++)
		cl_model(&c, (char)('a' + i), "shared");
	cl_form(&c, "abc");
	for (i = 0; i < 3; i++)
		conn[i] = tl_connect(&c.n[i].d);
	for (i = 0; i < 3; i++)
		id[i] = tl_send_req(conn[i], tl_acquire_req("shared", ACQ_MS,
		    true));
	for (i = 0; i < 3; i++) {
		rep[i] = tl_recv_id(conn[i], id[i], REPLY_MS);
		CL_ASSERT(rep[i] != NULL, "no reply to ACQUIRE on %c within "
		    "%d ms", 'a' + i, REPLY_MS);
		CL_ASSERT(tl_ok(rep[i]), "ACQUIRE shared on %c: %s", 'a' + i,
		    tl_dump(rep[i]));
	}
	for (i = 1; i < 3; i++)
		CL_ASSERT(strcmp(cl_node_of(rep[i]), cl_node_of(rep[0])) == 0 &&
		    tl_str(rep[i], "endpoint") != NULL &&
		    tl_str(rep[0], "endpoint") != NULL &&
		    strcmp(tl_str(rep[i], "endpoint"), tl_str(rep[0],
		    "endpoint")) == 0, "the replies differ: %s and %s",
		    tl_dump(rep[0]), tl_dump(rep[i]));
	CL_ASSERT(cl_node_of(rep[0])[0] != '\0', "no node in %s",
	    tl_dump(rep[0]));
	/* A late second start would show a moment later. */
	tl_sleep_ms(500);
	total = cl_total(&c, "shared");
	procs = cl_procs(&c, "shared");
	CL_ASSERT(total == 1 && procs == 1, "the cluster runs %d servers "
	    "(%d processes) of shared, want 1", total, procs);
	cl_wait_leases(N(&c, cl_node_of(rep[0])[0]), "shared", 3, 2000,
	    "the three leases on one server");
	for (i = 0; i < 3; i++) {
		json_decref(rep[i]);
		tl_close(conn[i]);
	}
	cl_finish(&c);
}
END_TEST

/* --- 3. spill --- */

/* Node a full of leased servers: a model all have goes to b or c. */
START_TEST(test_spill)
{
	struct cluster c;
	struct tl_conn *ca;
	json_t *r1, *r2, *rep;
	const char *node;
	int i;

	cl_setup(&c, 3);
	cl_model(&c, 'a', "a1");
	cl_model(&c, 'a', "a2");
	for (i = 0; i < 3; i++)
		cl_model(&c, (char)('a' + i), "shared");
	cl_form(&c, "abc");
	ca = tl_connect(&N(&c, 'a')->d);
	r1 = cl_acquire_ok(N(&c, 'a'), ca, "a1", true);
	r2 = cl_acquire_ok(N(&c, 'a'), ca, "a2", true);
	CL_ASSERT(strcmp(cl_node_of(r1), "a") == 0 &&
	    strcmp(cl_node_of(r2), "a") == 0, "a's own models should be "
	    "served by a: %s %s", tl_dump(r1), tl_dump(r2));
	rep = cl_acquire_ok(N(&c, 'a'), ca, "shared", true);
	node = cl_node_of(rep);
	CL_ASSERT(strcmp(node, "b") == 0 || strcmp(node, "c") == 0,
	    "with a full of leased servers, shared should go to b or c: %s",
	    tl_dump(rep));
	CL_ASSERT(cl_local(N(&c, 'a'), "shared", NULL) == 0 &&
	    cl_local(N(&c, 'a'), "a1", NULL) == 1 &&
	    cl_local(N(&c, 'a'), "a2", NULL) == 1, "a evicted a leased "
	    "server or started shared itself");
	CL_ASSERT(cl_total(&c, "shared") == 1, "%d servers of shared",
	    cl_total(&c, "shared"));
	json_decref(r1);
	json_decref(r2);
	json_decref(rep);
	tl_close(ca);
	cl_finish(&c);
}
END_TEST

/* --- 4. kill -9 of a node --- */

/*
 * b dies holding a's lease: its keys go with its etcd lease, a's
 * client gets lease_lost, the next ACQUIRE goes elsewhere, b's servers
 * die with it.
 */
START_TEST(test_kill_node)
{
	struct cluster c;
	struct tl_conn *ca, *cb;
	struct node *b;
	json_t *rep, *r, *kvs;
	pid_t kids[64];
	long long lease, t0, dt;
	int i, n;
	bool ok;

	cl_setup(&c, 3);
	cl_model(&c, 'b', "bonly");
	for (i = 0; i < 3; i++)
		cl_model(&c, (char)('a' + i), "shared");
	cl_form(&c, "abc");
	b = N(&c, 'b');
	/* b runs shared already: after its death a must not use it. */
	cb = tl_connect(&b->d);
	r = cl_acquire_ok(b, cb, "shared", false);
	CL_ASSERT(strcmp(cl_node_of(r), "b") == 0, "shared on b: %s",
	    tl_dump(r));
	json_decref(r);
	ca = tl_connect(&N(&c, 'a')->d);
	rep = cl_acquire_ok(N(&c, 'a'), ca, "bonly", true);
	CL_ASSERT(strcmp(cl_node_of(rep), "b") == 0, "bonly on b: %s",
	    tl_dump(rep));
	lease = tl_int(rep, "lease");
	n = tl_standins(b->d.pid, kids, 64);
	CL_ASSERT(n == 2, "b should run 2 servers, it runs %d", n);
	for (i = 0; i < n; i++)
		tl_track(kids[i]);

	t0 = tl_now_ms();
	kill(b->d.pid, SIGKILL);
	CL_ASSERT(tl_daemon_wait(&b->d, 2000), "b survives SIGKILL");
	tl_close(cb);
	for (i = 0; i < n; i++) {
		TL_WAIT_UNTIL(ok, tl_pid_gone_reap(kids[i]), 3000);
		CL_ASSERT(ok, "b's server %d outlives b", (int)kids[i]);
	}
	cl_wait_sees(&c, "ac", "ac", TTL_MS + 3000, "b killed");
	dt = tl_now_ms() - t0;
	kvs = cl_keys(&c);
	CL_ASSERT(tl_etcd_count(kvs, "/nodes/b") == 0 &&
	    tl_etcd_count(kvs, "/servers/b/") == 0, "b's keys are still in "
	    "etcd %lld ms after its death: %s", dt, tl_dump(kvs));
	json_decref(kvs);
	fprintf(stderr, "check_cluster: kill_node: b gone from the cluster "
	    "in %lld ms (lease_ttl %d ms)\n", dt, TTL_MS);

	r = cl_release(N(&c, 'a'), ca, lease);
	CL_ASSERT(strcmp(tl_err(r), "lease_lost") == 0, "RELEASE of a lease "
	    "on dead b: want lease_lost, got %s", tl_dump(r));
	json_decref(r);
	r = cl_acquire_ok(N(&c, 'a'), ca, "shared", true);
	CL_ASSERT(strcmp(cl_node_of(r), "b") != 0 && cl_node_of(r)[0] !=
	    '\0', "shared after b's death: %s", tl_dump(r));
	CL_ASSERT(cl_get(r, "/v1/models", true) == 200, "the new server of "
	    "shared does not answer: %s", tl_dump(r));
	r = (json_decref(r), cl_acquire(N(&c, 'a'), ca, "bonly", true));
	CL_ASSERT(!tl_ok(r), "bonly with b dead should fail: %s",
	    tl_dump(r));
	json_decref(r);
	json_decref(rep);
	tl_close(ca);
	cl_finish(&c);
}
END_TEST

/* --- 5. SIGSTOP past the TTL --- */

/*
 * b frozen for twice the TTL loses its etcd lease; thawed, it registers
 * again and republishes what it runs: one server of shared, no stale
 * claim.
 */
START_TEST(test_stop_cont)
{
	struct cluster c;
	struct tl_conn *cb, *conn[2];
	struct node *b;
	json_t *r, *kvs, *rep[2];
	long long id[2], t0;
	int i, regs, total;
	bool ok;

	cl_setup(&c, 3);
	for (i = 0; i < 3; i++)
		cl_model(&c, (char)('a' + i), "shared");
	cl_form(&c, "abc");
	b = N(&c, 'b');
	cb = tl_connect(&b->d);
	r = cl_acquire_ok(b, cb, "shared", false);
	CL_ASSERT(strcmp(cl_node_of(r), "b") == 0, "shared on b: %s",
	    tl_dump(r));
	json_decref(r);
	regs = cl_log_count(b, "cluster: registered as b");

	t0 = tl_now_ms();
	kill(b->d.pid, SIGSTOP);
	cl_wait_sees(&c, "ac", "ac", TTL_MS + 3000, "b stopped");
	tl_sleep_ms(t0 + 2 * TTL_MS - tl_now_ms());
	kill(b->d.pid, SIGCONT);
	cl_wait_sees(&c, "abc", "abc", 8000, "b continued");
	TL_WAIT_UNTIL(ok, cl_log_count(b, "cluster: registered as b") > regs,
	    3000);
	CL_ASSERT(ok, "b did not log \"cluster: registered as b\" again");

	/* Its server is published again: a and c use it, none starts. */
	TL_WAIT_UNTIL(ok, cl_key_count(&c, "/servers/b/shared") == 1, 5000);
	CL_ASSERT(ok, "servers/b/shared is not in etcd again");
	/* a and c learn it through their watches, a little later. */
	TL_WAIT_UNTIL(ok, cl_knows_ready(N(&c, 'a'), "b", "shared") &&
	    cl_knows_ready(N(&c, 'c'), "b", "shared"), 5000);
	CL_ASSERT(ok, "a and c do not list b's server of shared as ready");
	for (i = 0; i < 2; i++) {
		conn[i] = tl_connect(&c.n[i == 0 ? 0 : 2].d);
		id[i] = tl_send_req(conn[i], tl_acquire_req("shared", ACQ_MS,
		    true));
	}
	for (i = 0; i < 2; i++) {
		rep[i] = tl_recv_id(conn[i], id[i], REPLY_MS);
		CL_ASSERT(rep[i] != NULL && tl_ok(rep[i]) &&
		    strcmp(cl_node_of(rep[i]), "b") == 0, "ACQUIRE shared on "
		    "%c after b's return should be b's server: %s",
		    i == 0 ? 'a' : 'c', rep[i] ? tl_dump(rep[i]) : "no reply");
	}
	tl_sleep_ms(300);
	total = cl_total(&c, "shared");
	CL_ASSERT(total == 1 && cl_procs(&c, "shared") == 1, "%d servers of "
	    "shared after b's return, want 1", total);
	/* No claim outlives its start; every server key is one. */
	TL_WAIT_UNTIL(ok, cl_key_count(&c, "/claims/") == 0, 5000);
	kvs = cl_keys(&c);
	CL_ASSERT(ok && tl_etcd_count(kvs, "/servers/") == 1 &&
	    tl_etcd_count(kvs, "/nodes/") == 3, "etcd holds a stale claim "
	    "or a duplicate: %s", tl_dump(kvs));
	json_decref(kvs);
	for (i = 0; i < 2; i++) {
		json_decref(rep[i]);
		tl_close(conn[i]);
	}
	tl_close(cb);
	cl_finish(&c);
}
END_TEST

/* --- 6. nftables between a and b --- */

/* Waits until a's ACQUIRE of bonly is served by b again. */
static void
cl_wait_bonly(struct cluster *c, struct tl_conn *ca, const char *why)
{
	long long dl = tl_now_ms() + 10000;
	json_t *r;

	for (;;) {
		r = cl_acquire(N(c, 'a'), ca, "bonly", false);
		if (tl_ok(r) && strcmp(cl_node_of(r), "b") == 0) {
			json_decref(r);
			return;
		}
		CL_ASSERT(tl_now_ms() < dl, "%s: a's ACQUIRE of bonly still "
		    "fails: %s", why, tl_dump(r));
		json_decref(r);
		tl_sleep_ms(200);
	}
}

/* With a↔b cut by rules: bonly fails in time, bc goes to c, and the
 * lease a held on b ends on b. */
static void
cl_cut(struct cluster *c, struct tl_conn *ca, const char *rules,
    const char *what)
{
	json_t *held, *r;
	long long t0;

	held = cl_acquire_ok(N(c, 'a'), ca, "bonly", true);
	CL_ASSERT(strcmp(cl_node_of(held), "b") == 0, "%s: bonly on b: %s",
	    what, tl_dump(held));
	cl_wait_leases(N(c, 'b'), "bonly", 1, 2000, what);
	cl_nft_set(c, rules);
	t0 = tl_now_ms();
	r = cl_acquire(N(c, 'a'), ca, "bonly", true);
	CL_ASSERT(!tl_ok(r), "%s: ACQUIRE bonly across the cut succeeded: "
	    "%s", what, tl_dump(r));
	fprintf(stderr, "check_cluster: %s: bonly refused in %lld ms: %s\n",
	    what, tl_now_ms() - t0, tl_dump(r));
	json_decref(r);
	r = cl_acquire_ok(N(c, 'a'), ca, "bc", true);
	CL_ASSERT(strcmp(cl_node_of(r), "c") == 0, "%s: bc should go to c: "
	    "%s", what, tl_dump(r));
	json_decref(r);
	/* b frees what a's dead link held. */
	cl_wait_leases(N(c, 'b'), "bonly", 0, 6000, what);
	r = cl_release(N(c, 'a'), ca, tl_int(held, "lease"));
	fprintf(stderr, "check_cluster: %s: RELEASE of the lease held on b: "
	    "%s\n", what, tl_dump(r));
	json_decref(r);
	json_decref(held);
	cl_nft_remove(c);
	cl_wait_bonly(c, ca, what);
}

START_TEST(test_nft)
{
	struct cluster c;
	struct tl_conn *ca;

	cl_setup(&c, 3);
	if (!cl_nft_works(&c)) {
		if (tl_in_ci())
			CL_ASSERT(0, "nft does not work here (%s): the "
			    "nftables case cannot run, and CI must run it",
			    c.netns ? "own namespace" : "host");
		tl_skip("nft", "nft does not work here");
		cl_finish(&c);
		return;
	}
	cl_model(&c, 'a', "aonly");
	cl_model(&c, 'b', "bonly");
	cl_model(&c, 'b', "bc");
	cl_model(&c, 'c', "bc");
	cl_form(&c, "abc");
	ca = tl_connect(&N(&c, 'a')->d);
	cl_wait_bonly(&c, ca, "before");
	cl_cut(&c, ca, "\t\tip saddr 127.0.0.2 ip daddr 127.0.0.3 drop\n"
	    "\t\tip saddr 127.0.0.3 ip daddr 127.0.0.2 drop", "link down");
	cl_cut(&c, ca, "\t\tip saddr 127.0.0.2 ip daddr 127.0.0.3 drop",
	    "one-way drop a->b");
	tl_close(ca);
	cl_finish(&c);
}
END_TEST

/* --- 7. etcd killed and back --- */

START_TEST(test_etcd_down)
{
	struct cluster c;
	struct tl_conn *ca, *cc;
	struct node *a;
	json_t *r;
	long long t0;
	int regs;
	bool ok;

	cl_setup(&c, 3);
	cl_model(&c, 'a', "aonly");
	cl_model(&c, 'b', "bonly");
	cl_model(&c, 'c', "conly");
	cl_form(&c, "abc");
	a = N(&c, 'a');
	ca = tl_connect(&a->d);
	regs = cl_log_count(a, "cluster: registered as a");

	t0 = tl_now_ms();
	tl_etcd_kill(&c.etcd);
	r = cl_acquire_ok(a, ca, "aonly", true);
	CL_ASSERT(cl_get(r, "/v1/models", true) == 200, "aonly's server: %s",
	    tl_dump(r));
	json_decref(r);
	cl_wait_log(a, "etcd unreachable", TTL_MS + 3000);
	TL_WAIT_UNTIL(ok, cl_state_is(a, "local-only"), 3000);
	CL_ASSERT(ok, "a's cluster.state is not local-only with etcd dead");
	cc = tl_connect(&N(&c, 'c')->d);
	r = cl_acquire_ok(N(&c, 'c'), cc, "conly", true);
	json_decref(r);
	tl_sleep_ms(1000);
	CL_ASSERT(cl_log_count(a, "etcd unreachable") == 1, "a logged "
	    "\"etcd unreachable\" %d times, want once",
	    cl_log_count(a, "etcd unreachable"));

	/* Down past the TTL: the nodes' etcd leases are gone for them. */
	tl_sleep_ms(t0 + TTL_MS + 1000 - tl_now_ms());
	tl_etcd_restart(&c.etcd);
	cl_wait_sees(&c, "abc", "abc", 10000, "etcd back");
	TL_WAIT_UNTIL(ok, cl_log_count(a, "cluster: registered as a") > regs,
	    3000);
	CL_ASSERT(ok, "a did not log \"cluster: registered as a\" again");
	r = cl_acquire_ok(a, ca, "bonly", true);
	CL_ASSERT(strcmp(cl_node_of(r), "b") == 0, "bonly after etcd's "
	    "return: %s", tl_dump(r));
	json_decref(r);
	tl_close(ca);
	tl_close(cc);
	cl_finish(&c);
}
END_TEST

/* --- 8. a wrong secret --- */

START_TEST(test_wrong_secret)
{
	struct cluster c;
	static const char garbage[] = "GET / HTTP/1.0\r\n\r\n"
	    "{\"cmd\":\"EVICT\"}\n\x01\xff\n";
	struct tl_conn *cd, *ca;
	char other[TL_PATH_MAX + 16], buf[256];
	struct node *b;
	struct pollfd pfd;
	struct sockaddr_in sin;
	long long dl;
	json_t *r;
	ssize_t got;
	int fd;
	bool closed = false;

	cl_setup(&c, 4);
	cl_model(&c, 'a', "aonly");
	cl_model(&c, 'b', "bonly");
	cl_model(&c, 'd', "donly");
	snprintf(other, sizeof(other), "%s/other.key", c.etcd.dir);
	tl_write_file(other, "not-the-cluster-secret-0123456789abcdefgh\n");
	CL_ASSERT(chmod(other, 0600) == 0, "chmod: %s", strerror(errno));
	cl_start(&c, 'a', NULL);
	cl_start(&c, 'b', NULL);
	cl_start(&c, 'd', other);
	/* etcd knows no secret: d is a member, but no peer talks to it. */
	cl_wait_sees(&c, "abd", "abd", FORM_MS, "forming with d");
	b = N(&c, 'b');
	cd = tl_connect(&N(&c, 'd')->d);
	r = cl_acquire(N(&c, 'd'), cd, "bonly", true);
	CL_ASSERT(!tl_ok(r), "d with another secret got bonly from b: %s",
	    tl_dump(r));
	json_decref(r);
	cl_wait_log(b, "handshake failed: wrong secret", 3000);
	CL_ASSERT(cl_local(b, "bonly", NULL) == 0, "b started bonly for d");

	/* Garbage on b's peer port: dropped, b carries on. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)b->peer_port);
	inet_pton(AF_INET, b->host, &sin.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CL_ASSERT(fd != -1 && connect(fd, (struct sockaddr *)&sin,
	    sizeof(sin)) == 0, "connect to b's peer port %d: %s",
	    b->peer_port, strerror(errno));
	(void)!write(fd, garbage, sizeof(garbage) - 1);
	dl = tl_now_ms() + 5000 + 2000;	/* the handshake's deadline */
	while (!closed && tl_now_ms() < dl) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) == 1) {
			got = read(fd, buf, sizeof(buf));
			closed = got <= 0;
		}
	}
	close(fd);
	CL_ASSERT(closed, "b keeps a connection that spoke garbage on its "
	    "peer port");
	ca = tl_connect(&N(&c, 'a')->d);
	r = cl_acquire_ok(N(&c, 'a'), ca, "bonly", true);
	CL_ASSERT(strcmp(cl_node_of(r), "b") == 0, "a's bonly after the "
	    "garbage: %s", tl_dump(r));
	json_decref(r);
	tl_close(ca);
	tl_close(cd);
	cl_finish(&c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cluster");

	if (tl_etcd_bin() == NULL) {
		/* Fails under CI: contrib/install-deps.sh installs etcd. */
		return tl_skip_main("check_cluster", "no etcd (ETCD_BIN, "
		    "PATH; Debian: etcd-server)") ? EXIT_FAILURE :
		    EXIT_SUCCESS;
	}
	fprintf(stderr, "check_cluster: %s\n", cl_netns_permitted() ?
	    "each case in a network namespace of its own" :
	    "on the host's loopback (no network namespace: not permitted, "
	    "or POOLD_TEST_NETNS=0)");
	tl_add(s, "remote", test_remote);
	tl_add(s, "one_start", test_one_start);
	tl_add(s, "spill", test_spill);
	tl_add(s, "kill_node", test_kill_node);
	tl_add(s, "stop_cont", test_stop_cont);
	tl_add(s, "nft", test_nft);
	tl_add(s, "etcd_down", test_etcd_down);
	tl_add(s, "wrong_secret", test_wrong_secret);
	return tl_run(s, CK_NORMAL);
}
