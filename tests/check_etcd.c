/*
 * check_etcd.c — the etcd client (etcd.c) against a real etcd that each
 * test starts on 127.0.0.1's free ports with a data folder of its own
 * and kills by pid at its end: keys and values, create-if-absent,
 * leases and keepalives, watches, deadlines, endpoint rotation, auth.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <curl/curl.h>
#include <ev.h>

#include "etcd.h"
#include "testlib.h"

#define ETCD_READY_TIMEOUT_MS	15000
#define REPLY_TIMEOUT_MS	5000

struct etcd_proc {
	char	 dir[128];
	char	 url[64];
	int	 port, peer_port;
	pid_t	 pid;
	bool	 tls;		/* https, client certificates required */
	char	 ca[192], cert[192], key[192];	/* the client's */
};

/* --- a real etcd --- */

static int
free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static size_t
collect(char *data, size_t size, size_t nmemb, void *userp)
{
	char **buf = userp;
	size_t old = *buf != NULL ? strlen(*buf) : 0, n = size * nmemb;
	char *p = realloc(*buf, old + n + 1);

	if (p == NULL)
		return 0;
	memcpy(p + old, data, n);
	p[old + n] = '\0';
	*buf = p;
	return n;
}

/* A blocking POST to the gateway (the test's own setup); the body. */
static char *
http_post(const struct etcd_proc *p, const char *path, const char *body,
    const char *token, long *status)
{
	struct curl_slist *h = NULL;
	char url[256], auth[1024];
	char *out = NULL;
	CURL *c = curl_easy_init();

	snprintf(url, sizeof(url), "%s%s", p->url, path);
	if (p->tls) {
		curl_easy_setopt(c, CURLOPT_CAINFO, p->ca);
		curl_easy_setopt(c, CURLOPT_SSLCERT, p->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, p->key);
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: %s", token);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	*status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return out != NULL ? out : strdup("");
}

static void
gw(struct etcd_proc *p, const char *path, const char *body, const char *tok)
{
	long status;
	char *out = http_post(p, path, body, tok, &status);

	TL_ASSERT(status == 200, "%s %s: HTTP %ld %s", path, body, status,
	    out);
	free(out);
}

static void
etcd_print_log(const struct etcd_proc *p)
{
	char path[256], line[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/etcd.log", p->dir);
	if ((f = fopen(path, "r")) == NULL)
		return;
	fprintf(stderr, "---- %s\n", path);
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

/* A CA, and the server's and the client's certificates it signed. */
static void
make_certs(struct etcd_proc *p)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "(cd %s && "
	    "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=testca && "
	    "for n in server client; do "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	    "-keyout $n.key -out $n.csr -subj /CN=$n && "
	    "openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key "
	    "-CAcreateserial -out $n.crt -days 2 -extfile san.ext || exit 1; "
	    "done) >%s/openssl.log 2>&1", p->dir, p->dir);
	TL_ASSERT(system(cmd) == 0, "openssl failed (%s/openssl.log)",
	    p->dir);
	snprintf(p->ca, sizeof(p->ca), "%s/ca.crt", p->dir);
	snprintf(p->cert, sizeof(p->cert), "%s/client.crt", p->dir);
	snprintf(p->key, sizeof(p->key), "%s/client.key", p->dir);
}

static void
etcd_start(struct etcd_proc *p, const char *extra, bool tls)
{
	char client[64], peer[64], cluster[96], data[192], log[192];
	char scert[192], skey[192];
	const char *bin = getenv("ETCD_BIN") != NULL ? getenv("ETCD_BIN") :
	    "etcd";
	long long t0;
	long status;
	char *body;

	memset(p, 0, sizeof(*p));
	snprintf(p->dir, sizeof(p->dir), "/tmp/check_etcd.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(p->dir));
	p->tls = tls;
	if (tls)
		make_certs(p);
	snprintf(scert, sizeof(scert), "%s/server.crt", p->dir);
	snprintf(skey, sizeof(skey), "%s/server.key", p->dir);
	p->port = free_port();
	do
		p->peer_port = free_port();
	while (p->peer_port == p->port);
	snprintf(p->url, sizeof(p->url), "%s://127.0.0.1:%d",
	    tls ? "https" : "http", p->port);
	snprintf(client, sizeof(client), "%s", p->url);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", p->peer_port);
	snprintf(cluster, sizeof(cluster), "n0=%s", peer);
	snprintf(data, sizeof(data), "%s/data", p->dir);
	snprintf(log, sizeof(log), "%s/etcd.log", p->dir);
	{
		char *const plain[] = { (char *)bin, "--name", "n0",
		    "--data-dir", data, "--listen-client-urls", client,
		    "--advertise-client-urls", client, "--listen-peer-urls",
		    peer, "--initial-advertise-peer-urls", peer,
		    "--initial-cluster", cluster, "--initial-cluster-state",
		    "new", (char *)extra, NULL };
		char *const secure[] = { (char *)bin, "--name", "n0",
		    "--data-dir", data, "--listen-client-urls", client,
		    "--advertise-client-urls", client, "--listen-peer-urls",
		    peer, "--initial-advertise-peer-urls", peer,
		    "--initial-cluster", cluster, "--initial-cluster-state",
		    "new", "--cert-file", scert, "--key-file", skey,
		    "--client-cert-auth", "--trusted-ca-file", p->ca, NULL };

		p->pid = tl_spawn_logged(log, bin, tls ? secure : plain);
	}
	tl_track(p->pid);
	t0 = tl_now_ms();
	for (;;) {
		body = http_post(p, "/v3/kv/range", "{\"key\":\"AA==\"}",
		    NULL, &status);
		free(body);
		if (status == 200)
			break;
		if (tl_now_ms() - t0 > ETCD_READY_TIMEOUT_MS ||
		    waitpid(p->pid, NULL, WNOHANG) == p->pid) {
			etcd_print_log(p);
			TL_ASSERT(0, "etcd did not start");
		}
		tl_sleep_ms(50);
	}
}

static void
etcd_kill(struct etcd_proc *p)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	p->pid = 0;
}

static void
etcd_stop(struct etcd_proc *p)
{
	etcd_kill(p);
	tl_rm_rf(p->dir);
}

/* --- the loop --- */

static void
wake_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
}

/* Runs the loop until *done or timeout_ms; true if done. */
static bool
run_until(struct ev_loop *loop, const bool *done, long long timeout_ms)
{
	long long t0 = tl_now_ms();
	ev_timer wake;

	ev_timer_init(&wake, wake_cb, 0.02, 0.02);
	ev_timer_start(loop, &wake);
	while (!*done && tl_now_ms() - t0 < timeout_ms)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &wake);
	return *done;
}

static void
run_for(struct ev_loop *loop, long long ms)
{
	bool never = false;

	run_until(loop, &never, ms);
}

/* --- replies --- */

#define GOT_KVS_MAX	16

struct got {
	bool		 done;
	int		 calls;
	enum etcd_err	 err;
	char		 message[512];
	int64_t		 revision, lease, ttl, deleted;
	bool		 created;
	size_t		 nkvs;
	char		*keys[GOT_KVS_MAX], *values[GOT_KVS_MAX];
	size_t		 value_lens[GOT_KVS_MAX];
	int64_t		 kv_lease[GOT_KVS_MAX];
};

/* Set around each etcd_* call: no callback may run inside one. */
static bool	in_call;

static void
got_clear(struct got *g)
{
	size_t i;

	for (i = 0; i < g->nkvs; i++) {
		free(g->keys[i]);
		free(g->values[i]);
	}
	memset(g, 0, sizeof(*g));
}

static void
got_cb(void *arg, const struct etcd_reply *r)
{
	struct got *g = arg;
	size_t i;

	ck_assert_msg(!in_call, "a callback ran inside the call");
	g->calls++;
	g->done = true;
	g->err = r->err;
	snprintf(g->message, sizeof(g->message), "%s",
	    r->message != NULL ? r->message : "");
	g->revision = r->revision;
	g->lease = r->lease;
	g->ttl = r->ttl;
	g->deleted = r->deleted;
	g->created = r->created;
	g->nkvs = r->nkvs < GOT_KVS_MAX ? r->nkvs : GOT_KVS_MAX;
	for (i = 0; i < g->nkvs; i++) {
		g->keys[i] = strdup(r->kvs[i].key);
		g->values[i] = malloc(r->kvs[i].value_len + 1);
		memcpy(g->values[i], r->kvs[i].value,
		    r->kvs[i].value_len + 1);
		g->value_lens[i] = r->kvs[i].value_len;
		g->kv_lease[i] = r->kvs[i].lease;
	}
}

static void
wait_got(struct ev_loop *loop, struct got *g, const char *what)
{
	TL_ASSERT(run_until(loop, &g->done, REPLY_TIMEOUT_MS),
	    "%s: no reply", what);
	TL_ASSERT(g->calls == 1, "%s: %d calls", what, g->calls);
}

static void
expect_ok(struct got *g, const char *what)
{
	TL_ASSERT(g->err == ETCD_OK, "%s: %s (%s)", what,
	    etcd_err_name(g->err), g->message);
}

static struct etcd *
client(struct ev_loop *loop, const char *ep1, const char *ep2, long deadline,
    const char *user, const char *password)
{
	struct etcd_config cfg;
	struct etcd *e;
	char err[256];

	memset(&cfg, 0, sizeof(cfg));
	cfg.endpoints[cfg.n_endpoints++] = ep1;
	if (ep2 != NULL)
		cfg.endpoints[cfg.n_endpoints++] = ep2;
	cfg.deadline_ms = deadline;
	cfg.user = user;
	cfg.password = password;
	e = etcd_new(loop, &cfg, err, sizeof(err));
	TL_ASSERT(e != NULL, "etcd_new: %s", err);
	return e;
}

/* Synchronous wrappers: each checks the call queued, then waits. */
static void
do_put(struct ev_loop *loop, struct etcd *e, struct got *g, const char *key,
    const char *value, int64_t lease)
{
	got_clear(g);
	in_call = true;
	TL_ASSERT(etcd_put(e, key, value, lease, got_cb, g) == 0, "put");
	in_call = false;
	wait_got(loop, g, "put");
}

static void
do_range(struct ev_loop *loop, struct etcd *e, struct got *g,
    const char *prefix)
{
	got_clear(g);
	in_call = true;
	TL_ASSERT(etcd_range_prefix(e, prefix, got_cb, g) == 0, "range");
	in_call = false;
	wait_got(loop, g, "range");
}

static void
do_create(struct ev_loop *loop, struct etcd *e, struct got *g,
    const char *key, const char *value, int64_t lease)
{
	got_clear(g);
	in_call = true;
	TL_ASSERT(etcd_create(e, key, value, lease, got_cb, g) == 0, "create");
	in_call = false;
	wait_got(loop, g, "create");
}

static void
do_delete(struct ev_loop *loop, struct etcd *e, struct got *g,
    const char *key)
{
	got_clear(g);
	in_call = true;
	TL_ASSERT(etcd_delete(e, key, got_cb, g) == 0, "delete");
	in_call = false;
	wait_got(loop, g, "delete");
}

static int64_t
do_grant(struct ev_loop *loop, struct etcd *e, struct got *g, int64_t ttl)
{
	got_clear(g);
	in_call = true;
	TL_ASSERT(etcd_lease_grant(e, ttl, got_cb, g) == 0, "grant");
	in_call = false;
	wait_got(loop, g, "grant");
	expect_ok(g, "grant");
	TL_ASSERT(g->lease != 0 && g->ttl >= ttl, "grant: lease %lld ttl %lld",
	    (long long)g->lease, (long long)g->ttl);
	return g->lease;
}

static void
do_revoke(struct ev_loop *loop, struct etcd *e, struct got *g, int64_t lease)
{
	got_clear(g);
	in_call = true;
	TL_ASSERT(etcd_lease_revoke(e, lease, got_cb, g) == 0, "revoke");
	in_call = false;
	wait_got(loop, g, "revoke");
}

/* How many keys under prefix. */
static size_t
count_keys(struct ev_loop *loop, struct etcd *e, const char *prefix)
{
	struct got g;
	size_t n;

	memset(&g, 0, sizeof(g));
	do_range(loop, e, &g, prefix);
	expect_ok(&g, "range");
	n = g.nkvs;
	got_clear(&g);
	return n;
}

/* --- keys and values --- */

START_TEST(test_put_range)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct etcd_proc p;
	struct etcd *e;
	struct got g;
	char binary[256];
	int i;

	for (i = 0; i < 255; i++)
		binary[i] = (char)(i + 1);	/* every byte but NUL */
	binary[255] = '\0';
	memset(&g, 0, sizeof(g));
	etcd_start(&p, NULL, false);
	e = client(loop, p.url, NULL, 2000, NULL, NULL);
	do_put(loop, e, &g, "/t/a", "hello", 0);
	expect_ok(&g, "put a");
	TL_ASSERT(g.revision > 1, "put: revision %lld", (long long)g.revision);
	do_put(loop, e, &g, "/t/b", binary, 0);
	expect_ok(&g, "put b");
	do_put(loop, e, &g, "/t/c", "line 1\nline 2\n\"quoted\"\n", 0);
	expect_ok(&g, "put c");
	do_put(loop, e, &g, "/t/d", "", 0);
	expect_ok(&g, "put d");
	do_put(loop, e, &g, "/u/x", "outside", 0);
	expect_ok(&g, "put outside");

	do_range(loop, e, &g, "/t/");
	expect_ok(&g, "range");
	TL_ASSERT(g.nkvs == 4, "range: %zu keys", g.nkvs);
	TL_ASSERT(strcmp(g.keys[0], "/t/a") == 0 &&
	    strcmp(g.values[0], "hello") == 0, "a: %s=%s", g.keys[0],
	    g.values[0]);
	TL_ASSERT(strcmp(g.keys[1], "/t/b") == 0 && g.value_lens[1] == 255 &&
	    memcmp(g.values[1], binary, 256) == 0, "b: binary value");
	TL_ASSERT(strcmp(g.values[2], "line 1\nline 2\n\"quoted\"\n") == 0,
	    "c: %s", g.values[2]);
	TL_ASSERT(g.value_lens[3] == 0 && g.values[3][0] == '\0', "d: empty");
	TL_ASSERT(g.revision > 0, "range: no revision");

	do_range(loop, e, &g, "/nothing/");
	expect_ok(&g, "empty range");
	TL_ASSERT(g.nkvs == 0, "empty range: %zu keys", g.nkvs);

	/* Bad arguments are refused at once, with no callback. */
	errno = 0;
	TL_ASSERT(etcd_put(e, "", "v", 0, got_cb, &g) == -1 &&
	    errno == EINVAL, "put of an empty key");
	TL_ASSERT(etcd_lease_grant(e, 0, got_cb, &g) == -1 &&
	    errno == EINVAL, "grant of 0 s");
	got_clear(&g);
	etcd_free(e);
	etcd_stop(&p);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_create_delete)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct etcd_proc p;
	struct etcd *e;
	struct got g;

	memset(&g, 0, sizeof(g));
	etcd_start(&p, NULL, false);
	e = client(loop, p.url, NULL, 2000, NULL, NULL);
	do_create(loop, e, &g, "/t/lock", "first", 0);
	expect_ok(&g, "create");
	TL_ASSERT(g.created, "create: not created");
	do_create(loop, e, &g, "/t/lock", "second", 0);
	expect_ok(&g, "create again");
	TL_ASSERT(!g.created, "create again: created");
	TL_ASSERT(g.nkvs == 1 && strcmp(g.values[0], "first") == 0,
	    "create again: holder %s", g.nkvs > 0 ? g.values[0] : "none");
	do_delete(loop, e, &g, "/t/lock");
	expect_ok(&g, "delete");
	TL_ASSERT(g.deleted == 1, "delete: %lld", (long long)g.deleted);
	do_delete(loop, e, &g, "/t/lock");
	expect_ok(&g, "delete again");
	TL_ASSERT(g.deleted == 0, "delete again: %lld", (long long)g.deleted);
	TL_ASSERT(count_keys(loop, e, "/t/") == 0, "key left");
	do_create(loop, e, &g, "/t/lock", "third", 0);
	TL_ASSERT(g.err == ETCD_OK && g.created, "create after delete");
	got_clear(&g);
	etcd_free(e);
	etcd_stop(&p);
	ev_loop_destroy(loop);
}
END_TEST

/* --- leases --- */

struct lost_rec {
	bool		 done;
	int		 calls;
	enum etcd_err	 why;
};

static void
lost_cb(void *arg, enum etcd_err why)
{
	struct lost_rec *l = arg;

	l->done = true;
	l->calls++;
	l->why = why;
}

START_TEST(test_lease)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct lost_rec lost;
	struct etcd_proc p;
	struct etcd *e;
	struct got g;
	int64_t a, c, d;
	long long t0, t_kept;

	memset(&g, 0, sizeof(g));
	memset(&lost, 0, sizeof(lost));
	etcd_start(&p, NULL, false);
	e = client(loop, p.url, NULL, 2000, NULL, NULL);

	/* Revoked: its keys go at once. */
	a = do_grant(loop, e, &g, 30);
	do_put(loop, e, &g, "/l/a", "x", a);
	expect_ok(&g, "put with lease");
	do_range(loop, e, &g, "/l/a");
	TL_ASSERT(g.nkvs == 1 && g.kv_lease[0] == a, "key's lease");
	do_revoke(loop, e, &g, a);
	expect_ok(&g, "revoke");
	TL_ASSERT(count_keys(loop, e, "/l/a") == 0, "key kept after revoke");
	do_revoke(loop, e, &g, a);
	TL_ASSERT(g.err == ETCD_ENOTFOUND, "revoke twice: %s",
	    etcd_err_name(g.err));

	/* One left to expire, one kept alive, side by side. */
	c = do_grant(loop, e, &g, 2);
	do_put(loop, e, &g, "/l/c", "expires", c);
	expect_ok(&g, "put c");
	d = do_grant(loop, e, &g, 2);
	t0 = tl_now_ms();
	do_put(loop, e, &g, "/l/d", "kept", d);
	expect_ok(&g, "put d");
	TL_ASSERT(etcd_keepalive_start(e, d, 2, lost_cb, &lost) == 0,
	    "keepalive_start");
	while (count_keys(loop, e, "/l/c") != 0 && tl_now_ms() - t0 < 6000)
		run_for(loop, 200);
	TL_ASSERT(count_keys(loop, e, "/l/c") == 0,
	    "key of an expired lease kept");
	t_kept = t0 + 2 * 2000 + 1000;
	while (tl_now_ms() < t_kept) {
		run_for(loop, 200);
		TL_ASSERT(count_keys(loop, e, "/l/d") == 1,
		    "key lost under keepalive after %lld ms",
		    tl_now_ms() - t0);
	}
	TL_ASSERT(!lost.done, "keepalive lost: %s", etcd_err_name(lost.why));

	/* Revoked under the keepalive: etcd says it is gone. */
	do_revoke(loop, e, &g, d);
	expect_ok(&g, "revoke d");
	TL_ASSERT(run_until(loop, &lost.done, 3000), "no lost() after revoke");
	TL_ASSERT(lost.why == ETCD_ENOTFOUND, "lost: %s",
	    etcd_err_name(lost.why));
	run_for(loop, 1000);
	TL_ASSERT(lost.calls == 1, "lost %d times", lost.calls);
	got_clear(&g);
	etcd_free(e);
	etcd_stop(&p);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_keepalive_lost)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct lost_rec lost;
	struct etcd_proc p;
	struct etcd *e;
	struct got g;
	int64_t l;
	long long t0;

	memset(&g, 0, sizeof(g));
	memset(&lost, 0, sizeof(lost));
	etcd_start(&p, NULL, false);
	e = client(loop, p.url, NULL, 500, NULL, NULL);
	l = do_grant(loop, e, &g, 2);
	TL_ASSERT(etcd_keepalive_start(e, l, 2, lost_cb, &lost) == 0,
	    "keepalive_start");
	run_for(loop, 1500);
	TL_ASSERT(!lost.done, "lost too soon");
	t0 = tl_now_ms();
	etcd_kill(&p);
	TL_ASSERT(run_until(loop, &lost.done, 5000),
	    "no lost() within 5 s of etcd's death");
	/* The TTL (2 s) after the last renewal, and room for a late wake. */
	TL_ASSERT(tl_now_ms() - t0 <= 3000, "lost() after %lld ms",
	    tl_now_ms() - t0);
	TL_ASSERT(lost.why == ETCD_EUNREACHABLE || lost.why == ETCD_ETIMEDOUT,
	    "lost: %s", etcd_err_name(lost.why));
	run_for(loop, 1000);
	TL_ASSERT(lost.calls == 1, "lost %d times", lost.calls);
	got_clear(&g);
	etcd_free(e);
	etcd_stop(&p);
	ev_loop_destroy(loop);
}
END_TEST

/* --- watches --- */

#define WEV_MAX	16

struct wrec {
	struct etcd		*e;
	struct etcd_watch	*w;
	int			 n;
	bool			 deleted[WEV_MAX];
	char			 key[WEV_MAX][32], value[WEV_MAX][32];
	int64_t			 rev[WEV_MAX];
	bool			 broken;
	int			 broken_calls;
	enum etcd_err		 why;
	bool			 cancel_on_event;	/* and put /s/after */
	struct got		 after;
};

static void
wrec_event(void *arg, bool deleted, const struct etcd_kv *kv, int64_t rev)
{
	struct wrec *r = arg;

	ck_assert_msg(!in_call, "a callback ran inside the call");
	ck_assert_msg(!r->broken, "an event after broken()");
	if (r->n < WEV_MAX) {
		r->deleted[r->n] = deleted;
		snprintf(r->key[r->n], sizeof(r->key[0]), "%s", kv->key);
		snprintf(r->value[r->n], sizeof(r->value[0]), "%s", kv->value);
		r->rev[r->n] = rev;
	}
	r->n++;
	if (r->cancel_on_event) {
		/* Its own watch ends inside its callback; more is queued. */
		etcd_watch_cancel(r->w);
		r->w = NULL;
		ck_assert_int_eq(etcd_put(r->e, "/s/after", "1", 0, got_cb,
		    &r->after), 0);
	}
}

static void
wrec_broken(void *arg, enum etcd_err why, const char *message)
{
	struct wrec *r = arg;

	r->broken = true;
	r->broken_calls++;
	r->why = why;
	r->w = NULL;	/* it is gone once this returns */
}

static const struct etcd_watch_ops wrec_ops = { wrec_event, wrec_broken };

START_TEST(test_watch)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct wrec r, self;
	struct etcd_proc p;
	struct etcd *e;
	struct got g;
	int64_t rev0;
	long long t0;

	memset(&g, 0, sizeof(g));
	memset(&r, 0, sizeof(r));
	memset(&self, 0, sizeof(self));
	etcd_start(&p, NULL, false);
	e = client(loop, p.url, NULL, 2000, NULL, NULL);
	do_put(loop, e, &g, "/w/a", "1", 0);
	expect_ok(&g, "put a");
	rev0 = g.revision;
	do_put(loop, e, &g, "/x/other", "no", 0);

	in_call = true;
	r.w = etcd_watch_prefix(e, "/w/", rev0, &wrec_ops, &r);
	in_call = false;
	TL_ASSERT(r.w != NULL, "watch");
	do_put(loop, e, &g, "/w/b", "2", 0);
	do_delete(loop, e, &g, "/w/a");
	TL_ASSERT(g.deleted == 1, "delete a");
	t0 = tl_now_ms();
	while (r.n < 3 && tl_now_ms() - t0 < REPLY_TIMEOUT_MS)
		run_for(loop, 50);
	TL_ASSERT(r.n == 3, "%d events", r.n);
	TL_ASSERT(!r.deleted[0] && strcmp(r.key[0], "/w/a") == 0 &&
	    strcmp(r.value[0], "1") == 0 && r.rev[0] == rev0,
	    "event 0: %s %lld", r.key[0], (long long)r.rev[0]);
	TL_ASSERT(!r.deleted[1] && strcmp(r.key[1], "/w/b") == 0 &&
	    strcmp(r.value[1], "2") == 0 && r.rev[1] > rev0, "event 1: %s",
	    r.key[1]);
	TL_ASSERT(r.deleted[2] && strcmp(r.key[2], "/w/a") == 0 &&
	    r.rev[2] > r.rev[1], "event 2: %s", r.key[2]);

	/* A watch that cancels itself in its event callback and puts a
	 * key it would see: one event, and the put went. */
	self.e = e;
	self.cancel_on_event = true;
	self.w = etcd_watch_prefix(e, "/s/", g.revision + 1, &wrec_ops,
	    &self);
	TL_ASSERT(self.w != NULL, "watch self");
	do_put(loop, e, &g, "/s/trigger", "1", 0);
	TL_ASSERT(run_until(loop, &self.after.done, REPLY_TIMEOUT_MS),
	    "put from the event callback: no reply");
	expect_ok(&self.after, "put from the event callback");
	got_clear(&self.after);
	run_for(loop, 300);
	TL_ASSERT(self.n == 1 && !self.broken, "self-cancelled: %d events",
	    self.n);
	TL_ASSERT(count_keys(loop, e, "/s/after") == 1, "/s/after missing");
	TL_ASSERT(r.n == 3, "other keys seen: %d events", r.n);

	/* From a revision compacted away: broken(ECOMPACTED). */
	{
		struct wrec old;
		char body[64];

		memset(&old, 0, sizeof(old));
		snprintf(body, sizeof(body), "{\"revision\":\"%lld\"}",
		    (long long)r.rev[2]);
		gw(&p, "/v3/kv/compaction", body, NULL);
		old.w = etcd_watch_prefix(e, "/w/", rev0, &wrec_ops, &old);
		TL_ASSERT(old.w != NULL, "watch compacted");
		TL_ASSERT(run_until(loop, &old.broken, REPLY_TIMEOUT_MS),
		    "compacted: no broken()");
		TL_ASSERT(old.why == ETCD_ECOMPACTED && old.n == 0,
		    "compacted: %s, %d events", etcd_err_name(old.why), old.n);
	}

	/* etcd dies: the stream ends. */
	t0 = tl_now_ms();
	etcd_kill(&p);
	TL_ASSERT(run_until(loop, &r.broken, 3000), "no broken()");
	TL_ASSERT(r.why == ETCD_EBROKEN || r.why == ETCD_EUNREACHABLE,
	    "broken: %s", etcd_err_name(r.why));
	TL_ASSERT(tl_now_ms() - t0 < 2000, "broken() after %lld ms",
	    tl_now_ms() - t0);
	run_for(loop, 200);
	TL_ASSERT(r.broken_calls == 1, "broken %d times", r.broken_calls);
	got_clear(&g);
	etcd_free(e);
	etcd_stop(&p);
	ev_loop_destroy(loop);
}
END_TEST

/* A watch freed by etcd_free with callbacks pending drops them. */
START_TEST(test_free_pending)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct etcd_proc p;
	struct etcd *e;
	struct wrec r;
	struct got g;

	memset(&g, 0, sizeof(g));
	memset(&r, 0, sizeof(r));
	etcd_start(&p, NULL, false);
	e = client(loop, p.url, NULL, 2000, NULL, NULL);
	r.w = etcd_watch_prefix(e, "/w/", 0, &wrec_ops, &r);
	TL_ASSERT(r.w != NULL, "watch");
	TL_ASSERT(etcd_put(e, "/w/z", "1", 0, got_cb, &g) == 0, "put");
	TL_ASSERT(etcd_range_prefix(e, "/", got_cb, &g) == 0, "range");
	etcd_free(e);
	run_for(loop, 300);
	TL_ASSERT(!g.done && r.n == 0 && !r.broken, "a callback after free");
	/* And one cancelled before it was created. */
	e = client(loop, p.url, NULL, 2000, NULL, NULL);
	r.w = etcd_watch_prefix(e, "/w/", 0, &wrec_ops, &r);
	etcd_watch_cancel(r.w);
	run_for(loop, 300);
	TL_ASSERT(!r.broken, "broken() after cancel");
	etcd_free(e);
	etcd_stop(&p);
	ev_loop_destroy(loop);
}
END_TEST

/* --- deadlines and endpoints --- */

START_TEST(test_deadline)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char url[64];
	struct etcd *e;
	struct wrec r;
	struct got g;
	long long t0, took;
	int fd;

	memset(&g, 0, sizeof(g));
	memset(&r, 0, sizeof(r));
	/* Accepts TCP (the kernel's backlog) and never answers. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	TL_ASSERT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    listen(fd, 16) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0, "listen");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	e = client(loop, url, NULL, 500, NULL, NULL);
	ev_now_update(loop);	/* (timers count from the loop's time) */
	t0 = tl_now_ms();
	in_call = true;
	TL_ASSERT(etcd_put(e, "/k", "v", 0, got_cb, &g) == 0, "put");
	r.w = etcd_watch_prefix(e, "/k", 0, &wrec_ops, &r);
	in_call = false;
	wait_got(loop, &g, "put");
	took = tl_now_ms() - t0;
	TL_ASSERT(g.err == ETCD_ETIMEDOUT, "put: %s (%s)",
	    etcd_err_name(g.err), g.message);
	TL_ASSERT(took >= 450 && took < 1500, "timed out after %lld ms", took);
	TL_ASSERT(run_until(loop, &r.broken, 1500), "watch: no broken()");
	TL_ASSERT(r.why == ETCD_ETIMEDOUT, "watch: %s", etcd_err_name(r.why));
	got_clear(&g);
	etcd_free(e);
	close(fd);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_unreachable_rotates)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct etcd_proc p;
	char closed[64];
	struct etcd *e;
	struct got g;
	long long t0;

	memset(&g, 0, sizeof(g));
	etcd_start(&p, NULL, false);
	snprintf(closed, sizeof(closed), "http://127.0.0.1:%d", free_port());
	e = client(loop, closed, p.url, 2000, NULL, NULL);
	t0 = tl_now_ms();
	do_put(loop, e, &g, "/k", "v", 0);
	TL_ASSERT(g.err == ETCD_EUNREACHABLE, "put: %s (%s)",
	    etcd_err_name(g.err), g.message);
	TL_ASSERT(tl_now_ms() - t0 < 500, "unreachable after %lld ms",
	    tl_now_ms() - t0);
	TL_ASSERT(strstr(g.message, closed) != NULL, "message: %s",
	    g.message);
	do_put(loop, e, &g, "/k", "v", 0);
	expect_ok(&g, "put on the second endpoint");
	TL_ASSERT(count_keys(loop, e, "/k") == 1, "key not there");
	got_clear(&g);
	etcd_free(e);
	etcd_stop(&p);
	ev_loop_destroy(loop);
}
END_TEST

/* --- auth --- */

START_TEST(test_auth)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct etcd_proc p;
	struct etcd *e;
	struct wrec r, again;
	struct got g;
	int64_t rev_px;
	long long t0;

	memset(&g, 0, sizeof(g));
	memset(&r, 0, sizeof(r));
	memset(&again, 0, sizeof(again));
	/* Tokens that expire after 1 s idle: the client logs in again. */
	etcd_start(&p, "--auth-token-ttl=1", false);
	gw(&p, "/v3/auth/role/add", "{\"name\":\"root\"}", NULL);
	gw(&p, "/v3/auth/user/add",
	    "{\"name\":\"root\",\"password\":\"rootpw\"}", NULL);
	gw(&p, "/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}",
	    NULL);
	gw(&p, "/v3/auth/role/add", "{\"name\":\"pool\"}", NULL);
	/* key "/p/", range_end "/p0" */
	gw(&p, "/v3/auth/role/grant", "{\"name\":\"pool\",\"perm\":"
	    "{\"permType\":\"READWRITE\",\"key\":\"L3Av\","
	    "\"range_end\":\"L3Aw\"}}", NULL);
	gw(&p, "/v3/auth/user/add",
	    "{\"name\":\"poold\",\"password\":\"s3cret\"}", NULL);
	gw(&p, "/v3/auth/user/grant",
	    "{\"user\":\"poold\",\"role\":\"pool\"}", NULL);
	gw(&p, "/v3/auth/enable", "{}", NULL);

	e = client(loop, p.url, NULL, 2000, "poold", "wrong");
	do_put(loop, e, &g, "/p/x", "v", 0);
	TL_ASSERT(g.err == ETCD_EAUTH, "wrong password: %s (%s)",
	    etcd_err_name(g.err), g.message);
	etcd_free(e);

	e = client(loop, p.url, NULL, 2000, NULL, NULL);
	do_put(loop, e, &g, "/p/x", "v", 0);
	TL_ASSERT(g.err == ETCD_EAUTH, "no user: %s (%s)",
	    etcd_err_name(g.err), g.message);
	etcd_free(e);

	e = client(loop, p.url, NULL, 2000, "poold", "s3cret");
	do_put(loop, e, &g, "/p/x", "v", 0);
	expect_ok(&g, "right password");
	rev_px = g.revision;
	r.w = etcd_watch_prefix(e, "/p/", g.revision, &wrec_ops, &r);
	TL_ASSERT(r.w != NULL, "watch");
	do_range(loop, e, &g, "/p/");
	expect_ok(&g, "range");
	TL_ASSERT(g.nkvs == 1, "range: %zu keys", g.nkvs);
	do_put(loop, e, &g, "/q/x", "v", 0);
	TL_ASSERT(g.err == ETCD_EAUTH || g.err == ETCD_EREJECTED,
	    "outside the prefix: %s (%s)", etcd_err_name(g.err), g.message);
	t0 = tl_now_ms();
	while (r.n < 1 && tl_now_ms() - t0 < REPLY_TIMEOUT_MS)
		run_for(loop, 50);
	TL_ASSERT(r.n == 1 && strcmp(r.key[0], "/p/x") == 0,
	    "watch under auth: %d events", r.n);
	{
		struct wrec denied;

		memset(&denied, 0, sizeof(denied));
		denied.w = etcd_watch_prefix(e, "/q/", 0, &wrec_ops, &denied);
		TL_ASSERT(denied.w != NULL, "watch outside");
		TL_ASSERT(run_until(loop, &denied.broken, REPLY_TIMEOUT_MS),
		    "watch outside the prefix: no broken()");
		TL_ASSERT(denied.why == ETCD_EAUTH, "watch outside: %s",
		    etcd_err_name(denied.why));
	}

	/* The token expires; the next calls log in again by themselves
	 * (a watch, refused as "permission denied", and a put). */
	run_for(loop, 2500);
	again.w = etcd_watch_prefix(e, "/p/", rev_px + 1, &wrec_ops, &again);
	TL_ASSERT(again.w != NULL, "watch after the token expired");
	run_for(loop, 300);
	TL_ASSERT(!again.broken, "watch after the token expired: %s",
	    etcd_err_name(again.why));
	do_put(loop, e, &g, "/p/y", "w", 0);
	expect_ok(&g, "after the token expired");
	t0 = tl_now_ms();
	while (again.n < 1 && tl_now_ms() - t0 < REPLY_TIMEOUT_MS)
		run_for(loop, 50);
	TL_ASSERT(again.n == 1 && strcmp(again.key[0], "/p/y") == 0,
	    "watch after the token expired: %d events", again.n);
	etcd_watch_cancel(again.w);
	TL_ASSERT(!r.broken || r.why != ETCD_EAUTH, "watch: %s",
	    etcd_err_name(r.why));
	if (r.w != NULL)
		etcd_watch_cancel(r.w);
	got_clear(&g);
	etcd_free(e);
	etcd_stop(&p);
	ev_loop_destroy(loop);
}
END_TEST

/* --- TLS --- */

START_TEST(test_tls)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct etcd_config cfg;
	struct etcd_proc p;
	struct etcd *e;
	struct wrec r;
	struct got g;
	char err[256];
	long long t0;

	memset(&g, 0, sizeof(g));
	memset(&r, 0, sizeof(r));
	etcd_start(&p, NULL, true);
	memset(&cfg, 0, sizeof(cfg));
	cfg.endpoints[cfg.n_endpoints++] = p.url;
	cfg.deadline_ms = 2000;
	cfg.ca_file = p.ca;
	cfg.cert_file = p.cert;
	cfg.key_file = p.key;
	e = etcd_new(loop, &cfg, err, sizeof(err));
	TL_ASSERT(e != NULL, "etcd_new: %s", err);
	do_put(loop, e, &g, "/t/a", "over TLS", 0);
	expect_ok(&g, "put over TLS");
	r.w = etcd_watch_prefix(e, "/t/", g.revision, &wrec_ops, &r);
	TL_ASSERT(r.w != NULL, "watch");
	do_range(loop, e, &g, "/t/");
	TL_ASSERT(g.err == ETCD_OK && g.nkvs == 1 &&
	    strcmp(g.values[0], "over TLS") == 0, "range over TLS");
	t0 = tl_now_ms();
	while (r.n < 1 && tl_now_ms() - t0 < REPLY_TIMEOUT_MS)
		run_for(loop, 50);
	TL_ASSERT(r.n == 1, "watch over TLS: %d events, broken %s", r.n,
	    r.broken ? etcd_err_name(r.why) : "no");
	etcd_watch_cancel(r.w);
	etcd_free(e);

	/* Without the client's certificate etcd refuses the handshake. */
	cfg.cert_file = cfg.key_file = NULL;
	e = etcd_new(loop, &cfg, err, sizeof(err));
	do_put(loop, e, &g, "/t/b", "x", 0);
	TL_ASSERT(g.err == ETCD_EUNREACHABLE, "no client cert: %s (%s)",
	    etcd_err_name(g.err), g.message);
	etcd_free(e);

	/* Without our CA the server is not trusted. */
	cfg.ca_file = "/dev/null";
	cfg.cert_file = p.cert;
	cfg.key_file = p.key;
	e = etcd_new(loop, &cfg, err, sizeof(err));
	do_put(loop, e, &g, "/t/b", "x", 0);
	TL_ASSERT(g.err == ETCD_EUNREACHABLE, "unknown CA: %s (%s)",
	    etcd_err_name(g.err), g.message);
	got_clear(&g);
	etcd_free(e);
	etcd_stop(&p);
	ev_loop_destroy(loop);
}
END_TEST

static Suite *
etcd_suite(void)
{
	Suite *s = suite_create("etcd");

	tl_add(s, "put_range", test_put_range);
	tl_add(s, "create_delete", test_create_delete);
	tl_add(s, "lease", test_lease);
	tl_add(s, "keepalive_lost", test_keepalive_lost);
	tl_add(s, "watch", test_watch);
	tl_add(s, "free_pending", test_free_pending);
	tl_add(s, "deadline", test_deadline);
	tl_add(s, "unreachable_rotates", test_unreachable_rotates);
	tl_add(s, "auth", test_auth);
	tl_add(s, "tls", test_tls);
	return s;
}

int
main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return tl_run(etcd_suite(), CK_NORMAL);
}
