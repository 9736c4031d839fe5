/*
 * fuzz_dispatch.c — libFuzzer target over the command dispatcher
 * (supervisord/dispatch.c) and the real pool (supervisord/pool.c), with a
 * fake supervisor: spawning, readiness, exits, the clock and the
 * machine's memory are events in the input, not processes.
 *
 * The input is lines.  A line starting with '!' is an event:
 *
 *	!r  the first starting server is ready	!R  all of them
 *	!x  the first server exits (crash/reap)	!X  every stopping one is reaped
 *	!tN the clock moves N ms, pool_tick	!f  the next spawn fails
 *	!p  ports look taken (toggle)		!mN first server measured N MiB
 *	!aN available memory N MiB (0: unknown)	!sN talk on session N (of 3)
 *	!c  this session's connection closes	!u  this peer admin or not
 *	!k  the daemon is stopping (toggle)
 *
 * Any other line is a request, given to dispatch_line() as control.c
 * would (framed by proto_line, empty lines skipped).
 *
 * Checked after every step: the pool's accounting (used = Σ mem of its
 * servers, the server count, at most max_servers, no port twice, each
 * server's lease count, used ≤ budget while no measurement says more),
 * every line sent decodes as a reply, no session gets more replies than
 * it sent requests.  At the end the daemon shuts down, every server is
 * reaped, and then every request of a session still open has had exactly
 * one reply.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "poold.h"

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz_dispatch: %s:%d: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

#define MIB		(1024ULL * 1024)
#define NSESSIONS	3
#define PORT_MIN	9000
#define PORT_MAX	9003

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct fsession {
	struct session	 s;		/* first: container_of by cast */
	bool		 open;
	unsigned long	 requests, replies;
};

static struct {
	struct daemon	 d;
	struct config	 conf;
	struct fsession	 ses[NSESSIONS];
	pool_ms		 now;
	long		 next_pid;
	bool		 fail_spawn;
	bool		 ports_taken;
	bool		 measured;	/* some server's RSS was reported */
	uint64_t	 available;
	unsigned long	 serial;
} fz;

/* --- what dispatch.c needs of the daemon and log.c ---------------- */

pool_ms
daemon_now(void)
{
	return fz.now;
}

/* No cluster here (d->cluster is NULL): cluster.c stays out of the link. */
int
cluster_acquire(struct session *s, const struct proto_request *req)
{
	return 0;
}

int
cluster_lease_cmd(struct session *s, const struct proto_request *req)
{
	return 0;
}

void
cluster_session_end(struct session *s)
{
}

/* The commands of other files: only their dispatching is tested here. */
void
cmd_subscribe(struct session *s, const struct proto_request *req)
{
	cmd_reply_json(s, req, json_pack("{s:b}", "subscribed", 1));
}

void
cmd_metrics(struct session *s, const struct proto_request *req)
{
	cmd_reply_json(s, req, json_pack("{s:s}", "text", ""));
}

void
cmd_reload(struct session *s, const struct proto_request *req)
{
	cmd_reply_json(s, req, json_object());
}

void
cmd_pin(struct session *s, const struct proto_request *req, bool pin)
{
	cmd_reply_json(s, req, json_pack("{s:b}", "pinned", pin));
}

void
events_session_end(struct session *s)
{
}

const char *
cluster_name(const struct cluster *cl)
{
	return NULL;
}


void
config_host_port(const struct config *c, int port, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%d", c->server_host, port);
}

struct pool_model *
daemon_model(struct daemon *d, const char *name)
{
	return pool_model_find(d->pool, name);
}

struct pool_model *
catalog_model_running(struct daemon *d, const char *name)
{
	return NULL;	/* no file goes: EVICT finds what ACQUIRE does */
}

json_t *
daemon_stats(struct daemon *d)
{
	const struct pool_server *srv;
	json_t *servers = json_array();

	TAILQ_FOREACH(srv, &d->pool->servers, link)
		json_array_append_new(servers, json_pack("{s:s, s:s, s:i, s:I,"
		    " s:i, s:I}", "model", srv->model->name,
		    "state", pool_state_name(srv->state), "port", srv->port,
		    "pid", (json_int_t)srv->pid, "leases", (int)srv->leases,
		    "mem", (json_int_t)srv->mem));
	return json_pack("{s:{s:I, s:I}, s:i, s:o}", "memory",
	    "budget", (json_int_t)d->pool->lim.budget,
	    "used", (json_int_t)d->pool->used,
	    "waiting", (int)pool_waiting(d->pool), "servers", servers);
}

json_t *
daemon_models(struct daemon *d)
{
	json_t *a = json_array();
	const struct pool_model *m;

	for (size_t i = 0; i < d->pool->nbuckets; i++)
		for (m = d->pool->models[i]; m != NULL; m = m->hash_next)
			json_array_append_new(a, json_pack("{s:s, s:I, s:s}",
			    "model", m->name, "memory", (json_int_t)m->mem,
			    "state", pool_model_state(d->pool, m, fz.now)));
	return json_pack("{s:s, s:o}", "models_dir", d->conf->models_dir,
	    "models", a);
}

void log_info(const char *fmt, ...) { (void)fmt; }
void log_debug(const char *fmt, ...) { (void)fmt; }
void log_warn(const char *fmt, ...) { (void)fmt; }
void log_warnx(const char *fmt, ...) { (void)fmt; }
void fatal(const char *fmt, ...) { (void)fmt; abort(); }
void fatalx(const char *fmt, ...) { (void)fmt; abort(); }

/* --- the fake supervisor (struct pool_ops) ----------------------- */

static int
op_spawn(void *ctx, struct pool_server *srv, char *err, size_t len)
{
	(void)ctx;
	CHECK(srv->port >= PORT_MIN && srv->port <= PORT_MAX);
	if (fz.fail_spawn) {
		fz.fail_spawn = false;
		snprintf(err, len, "fork: %s", strerror(EAGAIN));
		return -1;
	}
	srv->pid = ++fz.next_pid;
	return 0;
}

static void
op_stop(void *ctx, struct pool_server *srv)
{
	(void)ctx;
	CHECK(srv->state == POOL_STOPPING);
}

static bool
op_port_free(void *ctx, int port)
{
	(void)ctx;
	return !(fz.ports_taken && port % 2 == 0);
}

static uint64_t
op_available(void *ctx)
{
	(void)ctx;
	return fz.available;
}

static const struct pool_ops fz_ops = {
	.spawn = op_spawn,
	.stop = op_stop,
	.answer = dispatch_answer,
	.port_free = op_port_free,
	.log = NULL,
	.available = op_available,
};

/* --- sessions ----------------------------------------------------- */

static void
fz_send(struct session *s, char *line)
{
	struct fsession *fs = (struct fsession *)s;
	struct proto_reply rep;
	char msg[PROTO_MESSAGE_MAX];
	size_t n;

	CHECK(line != NULL);
	n = strlen(line);
	CHECK(n >= 2 && line[n - 1] == '\n');
	CHECK(memchr(line, '\n', n - 1) == NULL);
	CHECK(proto_decode_reply(line, n - 1, &rep, msg, sizeof(msg)) ==
	    PROTO_OK);
	proto_reply_clear(&rep);
	free(line);
	CHECK(fs->open);
	fs->replies++;
	CHECK(fs->replies <= fs->requests);
}

static void
session_open(struct fsession *fs, bool admin)
{
	session_init(&fs->s, &fz.d, ++fz.serial, fz_send);
	fs->s.peer.known = true;
	fs->s.peer.uid = admin ? 0 : 1000;
	fs->s.peer.gid = 1000;
	fs->open = true;
	fs->requests = fs->replies = 0;
}

static void
session_close(struct fsession *fs)
{
	if (!fs->open)
		return;
	session_end(&fs->s);
	fs->open = false;
}

/* --- invariants ----------------------------------------------------- */

static void
check_pool(void)
{
	const struct pool *p = fz.d.pool;
	const struct pool_server *srv, *o;
	const struct pool_lease *l;
	uint64_t used = 0;
	unsigned n = 0, leases;

	TAILQ_FOREACH(srv, &p->servers, link) {
		used += srv->mem;
		n++;
		CHECK(srv->port >= PORT_MIN && srv->port <= PORT_MAX);
		for (o = TAILQ_NEXT(srv, link); o != NULL;
		    o = TAILQ_NEXT(o, link))
			CHECK(o->port != srv->port);
		leases = 0;
		TAILQ_FOREACH(l, &srv->lease_list, server_link) {
			CHECK(l->server == srv);
			leases++;
		}
		CHECK(leases == srv->leases);
		if (srv->state != POOL_STOPPING)
			CHECK(srv->model->server == srv);
	}
	CHECK(used == p->used);
	CHECK(n == p->nservers);
	CHECK(n <= p->lim.max_servers);
	if (!fz.measured)
		CHECK(p->used <= p->lim.budget);
	for (int i = 0; i < NSESSIONS; i++)
		CHECK(fz.ses[i].replies <= fz.ses[i].requests);
}

/* --- events --------------------------------------------------------- */

static struct pool_server *
first_server(bool (*want)(const struct pool_server *))
{
	struct pool_server *srv;

	TAILQ_FOREACH(srv, &fz.d.pool->servers, link)
		if (want == NULL || want(srv))
			return srv;
	return NULL;
}

static bool
is_starting(const struct pool_server *srv)
{
	return srv->state == POOL_STARTING;
}

static bool
is_stopping(const struct pool_server *srv)
{
	return srv->state == POOL_STOPPING;
}

static unsigned long
arg(const char *s, size_t len, unsigned long dflt, unsigned long max)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0)
		return dflt;
	for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		if ((v = v * 10 + (unsigned long)(s[i] - '0')) > max)
			return max;
	return i == 0 ? dflt : v;
}

static void
event(const char *e, size_t len, struct fsession **cur)
{
	struct pool_server *srv;
	const char *a = e + 1;
	size_t alen = len > 0 ? len - 1 : 0;

	switch (len > 0 ? e[0] : 0) {
	case 'r':
		if ((srv = first_server(is_starting)) != NULL)
			pool_ready(fz.d.pool, fz.now, srv);
		break;
	case 'R':
		while ((srv = first_server(is_starting)) != NULL)
			pool_ready(fz.d.pool, fz.now, srv);
		break;
	case 'x':
		if ((srv = first_server(is_stopping)) != NULL ||
		    (srv = first_server(NULL)) != NULL)
			pool_exited(fz.d.pool, fz.now, srv, "exit status 1; "
			    "last output: error: cannot load model");
		break;
	case 'X':
		while ((srv = first_server(is_stopping)) != NULL)
			pool_exited(fz.d.pool, fz.now, srv, "killed by "
			    "signal 15 (Terminated)");
		break;
	case 't':
		fz.now += (pool_ms)arg(a, alen, 100, 10000000);
		pool_tick(fz.d.pool, fz.now);
		break;
	case 'f':
		fz.fail_spawn = true;
		break;
	case 'p':
		fz.ports_taken = !fz.ports_taken;
		break;
	case 'm':
		if ((srv = first_server(NULL)) != NULL) {
			fz.measured = true;
			pool_measured(fz.d.pool, fz.now, srv,
			    arg(a, alen, 1, 4096) * MIB);
		}
		break;
	case 'a':
		fz.available = arg(a, alen, 0, 1 << 20) * MIB;
		if (fz.available == 0)
			fz.available = UINT64_MAX;
		break;
	case 's':
		*cur = &fz.ses[arg(a, alen, 0, 1000) % NSESSIONS];
		if (!(*cur)->open)
			session_open(*cur, true);
		break;
	case 'c':
		session_close(*cur);
		session_open(*cur, (*cur)->s.peer.uid == 0);
		break;
	case 'u':
		(*cur)->s.peer.uid = (*cur)->s.peer.uid == 0 ? 1000 : 0;
		break;
	case 'k':
		fz.d.stopping = !fz.d.stopping;
		break;
	}
	/* What the daemon's loop does after every event. */
	pool_tick(fz.d.pool, fz.now);
}

/* --- one input ------------------------------------------------------ */

static void
setup(void)
{
	static char models_dir[] = "/srv/models";
	static char server_host[] = "127.0.0.1";
	struct pool_limits lim;
	struct pool_model *m;

	memset(&fz, 0, sizeof(fz));
	fz.now = 1000000;
	fz.available = UINT64_MAX;
	fz.conf.models_dir = models_dir;
	fz.conf.server_host = server_host;
	fz.conf.max_pending = 4;
	fz.conf.max_leases = 12;		/* small: reached by fuzzing */
	fz.conf.max_leases_per_client = 6;
	fz.conf.acquire_timeout_ms = 5000;
	fz.conf.admin_group = NULL;
	fz.d.conf = &fz.conf;
	memset(&lim, 0, sizeof(lim));
	lim.budget = 32 * MIB;
	lim.max_servers = 3;
	lim.port_min = PORT_MIN;
	lim.port_max = PORT_MAX;
	lim.start_timeout = 5000;
	lim.max_waiters = 8;
	lim.max_failures = 3;
	lim.failed_cooldown = 30000;
	lim.min_available = 4 * MIB;
	fz.d.pool = pool_new(&lim, &fz_ops, &fz.d, fz.now);
	CHECK(fz.d.pool != NULL);
	CHECK(pool_model_add(fz.d.pool, "a", 8 * MIB, 60000) != NULL);
	CHECK(pool_model_add(fz.d.pool, "b", 8 * MIB, 60000) != NULL);
	CHECK(pool_model_add(fz.d.pool, "c", 16 * MIB, 0) != NULL);
	CHECK(pool_model_add(fz.d.pool, "big", 1024 * MIB, 60000) != NULL);
	CHECK((m = pool_model_add(fz.d.pool, "tiny", 1 * MIB, 1000)) != NULL);
	for (int i = 0; i < NSESSIONS; i++)
		session_open(&fz.ses[i], i != 2);
}

static void
teardown(void)
{
	struct pool_server *srv;

	fz.d.stopping = true;
	pool_shutdown(fz.d.pool, fz.now);
	check_pool();
	/* Every server ends, as ev_child would say. */
	for (int guard = 0; (srv = first_server(NULL)) != NULL; guard++) {
		CHECK(guard < 1000);
		pool_exited(fz.d.pool, fz.now, srv, "killed by signal 15");
		check_pool();
	}
	CHECK(fz.d.pool->used == 0 && fz.d.pool->nservers == 0);
	CHECK(pool_waiting(fz.d.pool) == 0);
	for (int i = 0; i < NSESSIONS; i++) {
		if (fz.ses[i].open)
			CHECK(fz.ses[i].replies == fz.ses[i].requests);
		session_close(&fz.ses[i]);
	}
	pool_free(fz.d.pool);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct fsession *cur;
	size_t off = 0, consumed;
	long len;

	setup();
	cur = &fz.ses[0];
	while (off < size) {
		len = proto_line(buf + off, size - off, &consumed);
		if (len < 0)
			break;		/* a partial line is never handled */
		if (len > 0 && buf[off] == '!')
			event(buf + off + 1, (size_t)len - 1, &cur);
		else if (len > 0) {
			cur->requests++;
			dispatch_line(&cur->s, buf + off, (size_t)len);
		}
		check_pool();
		off += consumed;
	}
	teardown();
	return 0;
}
