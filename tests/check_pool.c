/*
 * check_pool.c — scenario and property tests of the pool's decisions.
 *
 * The pool is driven directly: no fork, no socket, no clock.  A recorder
 * (pool_recorder.h) stands in for struct pool_ops, "now" is advanced by
 * hand, the test says when a spawned server is healthy (pool_ready) and
 * when a stopped one is reaped (pool_exited).  After every call into the
 * pool the accounting invariants of docs/DESIGN.md are checked (inv()).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "pool.h"
#include "pool_recorder.h"

#define G		(UINT64_C(1) << 30)
#define T0		((pool_ms)1000000)	/* virtual clock origin */
#define LONG_MS		((pool_ms)600000)	/* a deadline never reached */
#define MAX_MODELS	64

struct fx {
	struct pool		*p;
	struct rec		 r;
	pool_ms			 now;
	struct pool_limits	 lim;
	struct pool_model	*models[MAX_MODELS];
	size_t			 nmodels;
	struct pool_owner	 own, own2;
	void			(*extra_inv)(void *);
	void			*extra;
	/* pool_set_limits shrank the limits: servers started under the old
	 * ones may be over the new until they stop. */
	bool			 shrunk;
};

static struct fx	 F;

/* --- fixture and helpers --- */

/* May s be stopped for room (READY, unleased, unwatched, not pinned)? */
static bool
idle_victim(const struct pool_server *s)
{
	return s->state == POOL_READY && s->leases == 0 &&
	    TAILQ_EMPTY(&s->waiters) &&
	    s->model->priority != POOL_PRIO_PINNED;
}

/* A pinned model waits for room: it goes before the queue's head. */
static bool
pinned_waits(void)
{
	const struct pool_model	*m;

	TAILQ_FOREACH(m, &F.p->pinned, pinned_link)
		if (m->server == NULL && !m->retired && F.now >= m->retry_at)
			return true;
	return false;
}

static struct pool_limits
lim_default(void)
{
	struct pool_limits	 l;

	memset(&l, 0, sizeof(l));
	l.budget = 100 * G;
	l.max_servers = 8;
	l.port_min = 8000;
	l.port_max = 8099;
	l.start_timeout = 30000;
	l.max_waiters = 1000;
	return l;
}

static const char *
errname(enum proto_err e)
{
	static const char *const names[] = {
		"ok", "bad_request", "unknown_command", "unknown_model",
		"busy", "too_large", "start_failed", "timeout", "not_found",
		"shutting_down", "forbidden", "internal",
	};

	if ((unsigned)e < sizeof(names) / sizeof(names[0]))
		return names[e];
	return "?";
}

static bool
server_listed(const struct pool_server *s)
{
	const struct pool_server	*x;

	TAILQ_FOREACH(x, &F.p->servers, link)
		if (x == s)
			return true;
	return false;
}

/*
 * Rule 3 of the pending queue at rest: if the head would not fit even
 * once the stopping servers are reaped, but stopping idle READY servers
 * would make room, the pool must already have stopped them.
 */
static void
head_waits_rightly(const struct pool_model *h)
{
	const struct pool	*p = F.p;
	const struct pool_server *s;
	uint64_t		 freeing = 0, idle_mem = 0;
	unsigned		 nstopping = 0, nidle = 0;
	int64_t			 mem_short, cnt_short;

	TAILQ_FOREACH(s, &p->servers, link) {
		if (s->state == POOL_STOPPING) {
			freeing += s->mem;
			nstopping++;
		} else if (idle_victim(s)) {
			idle_mem += s->mem;
			nidle++;
		}
	}
	mem_short = (int64_t)(p->used - freeing + h->mem) -
	    (int64_t)p->lim.budget;
	cnt_short = (int64_t)p->nservers - nstopping + 1 -
	    (int64_t)p->lim.max_servers;
	if (mem_short <= 0 && cnt_short <= 0)
		return;		/* rule 2: the reaps make room */
	ck_assert_msg(!((int64_t)idle_mem >= mem_short &&
	    (int64_t)nidle >= cnt_short), "pending head %s: stopping idle "
	    "servers (%u, %llu bytes) would make room (short %lld bytes, "
	    "%lld servers) but none was stopped", h->name, nidle,
	    (unsigned long long)idle_mem, (long long)mem_short,
	    (long long)cnt_short);
}

/* Ports held for lost leases (their servers are gone). */
static unsigned
held_for_lost(const struct pool *p)
{
	const struct pool_lost	*g;
	unsigned		 n = 0;

	TAILQ_FOREACH(g, &p->lost, link)
		n++;
	return n;
}

/* Could m start now without stopping anything? */
static bool
fits_now(const struct pool_model *m)
{
	const struct pool	*p = F.p;

	return p->used + m->mem <= p->lim.budget &&
	    p->nservers < p->lim.max_servers && p->nservers +
	    held_for_lost(p) < (unsigned)(p->lim.port_max - p->lim.port_min + 1);
}

/*
 * Does head h wait only for leases: not even once the stopping servers
 * are reaped and every idle server stopped would it fit?
 */
static bool
waits_for_leases(const struct pool_model *h)
{
	const struct pool	*p = F.p;
	const struct pool_server *s;
	uint64_t		 freeing = 0, idle_mem = 0;
	unsigned		 nstopping = 0, nidle = 0;

	TAILQ_FOREACH(s, &p->servers, link) {
		if (s->state == POOL_STOPPING) {
			freeing += s->mem;
			nstopping++;
		} else if (idle_victim(s)) {
			idle_mem += s->mem;
			nidle++;
		}
	}
	return p->used - freeing - idle_mem + h->mem > p->lim.budget ||
	    p->nservers - nstopping - nidle + 1 > p->lim.max_servers;
}

/*
 * The queue's order and passes: models in order of their oldest waiter;
 * behind a head that waits only for leases, with passes left, no model
 * that fits now is left waiting.
 */
static void
queue_rules(void)
{
	const struct pool	*p = F.p;
	const struct pool_model	*m, *prev = NULL, *h = TAILQ_FIRST(&p->pending);

	TAILQ_FOREACH(m, &p->pending, pending) {
		ck_assert_msg(prev == NULL || TAILQ_FIRST(&prev->queued)->since
		    <= TAILQ_FIRST(&m->queued)->since, "pending %s (oldest "
		    "waiter at %lld) ahead of %s (at %lld)", prev->name,
		    (long long)TAILQ_FIRST(&prev->queued)->since, m->name,
		    (long long)TAILQ_FIRST(&m->queued)->since);
		prev = m;
	}
	if (h == NULL || p->shutting_down || F.now < p->resource_retry_at ||
	    F.r.avail != 0 || pinned_waits() || !waits_for_leases(h) ||
	    h->passes >= POOL_HEAD_PASSES_MAX)
		return;
	for (m = TAILQ_NEXT(h, pending); m != NULL; m = TAILQ_NEXT(m, pending))
		ck_assert_msg(!fits_now(m), "%s fits now but waits behind %s, "
		    "which only waits for leases (%u passes)", m->name,
		    h->name, h->passes);
}

/*
 * Pinned models: the pool's list and their sum match their classes;
 * the first that may start (they go before the queue, in order) has
 * started, or could not even with every idle server stopped.
 */
static void
pinned_rules(void)
{
	const struct pool	*p = F.p;
	const struct pool_model	*m;
	uint64_t		 sum = 0;
	size_t			 i, n = 0;

	TAILQ_FOREACH(m, &p->pinned, pinned_link) {
		ck_assert_msg(m->priority == POOL_PRIO_PINNED, "%s on the "
		    "pinned list as %s", m->name, pool_priority_name(
		    m->priority));
		sum += m->mem;
		n++;
	}
	for (i = 0; i < F.nmodels; i++)
		if (F.models[i]->priority == POOL_PRIO_PINNED)
			n--;
	ck_assert_msg(n == 0, "pinned models and the pinned list differ");
	ck_assert_msg(sum == pool_pinned_mem(p), "pinned %llu, pinned "
	    "models %llu", (unsigned long long)pool_pinned_mem(p),
	    (unsigned long long)sum);
	if (p->shutting_down || F.now < p->resource_retry_at || F.r.avail != 0)
		return;
	TAILQ_FOREACH(m, &p->pinned, pinned_link)
		if (m->server == NULL && !m->retired && F.now >= m->retry_at &&
		    m->mem <= p->lim.budget) {
			ck_assert_msg(!fits_now(m), "pinned %s fits but was "
			    "not started", m->name);
			head_waits_rightly(m);
			break;
		}
}

/* The owner's counters (its lease limit reads them) match its lists.
 * Checked on the property test's owners, whose waiters outlive the
 * calls (the scenarios' fixture owners may list stack waiters of
 * helpers that have returned). */
static void
owner_counts(const struct pool_owner *o)
{
	const struct pool_lease		*l;
	const struct pool_waiter	*w;
	unsigned			 nl = 0, nh = 0;

	TAILQ_FOREACH(l, &o->leases, owner_link)
		nl++;
	TAILQ_FOREACH(w, &o->waiters, owner_link)
		if (w->kind == POOL_WAIT_ACQUIRE && w->hold)
			nh++;
	ck_assert_uint_eq(o->nleases, nl);
	ck_assert_uint_eq(o->nwaiting_holds, nh);
}

/* The accounting invariants; called after every call into the pool. */
static void
inv(void)
{
	uint64_t		 grown = 0;
	struct pool		*p = F.p;
	struct pool_server	*s, *t;
	struct pool_model	*m, *h;
	uint64_t		 sum = 0;
	unsigned		 n = 0, npend = 0;
	size_t			 i;

	TAILQ_FOREACH(s, &p->servers, link) {
		n++;
		sum += s->mem;
		ck_assert_msg(s->model != NULL, "server with no model");
		ck_assert_msg(s->port >= p->lim.port_min &&
		    s->port <= p->lim.port_max, "%s on port %d",
		    s->model->name, s->port);
		ck_assert_msg(s->pid > 0, "%s listed with pid %ld (failed "
		    "spawn kept?)", s->model->name, s->pid);
		for (t = TAILQ_NEXT(s, link); t != NULL;
		    t = TAILQ_NEXT(t, link))
			ck_assert_msg(t->port != s->port,
			    "%s and %s share port %d", s->model->name,
			    t->model->name, s->port);
		if (s->state == POOL_STOPPING) {
			ck_assert_msg(s->model->server != s,
			    "stopping %s is still model->server",
			    s->model->name);
			ck_assert_msg(rec_is_stopped(&F.r, s),
			    "%s STOPPING but ops->stop never called",
			    s->model->name);
		} else {
			ck_assert_msg(s->model->server == s,
			    "live %s (%s) is not model->server",
			    s->model->name, pool_state_name(s->state));
			ck_assert_msg(!rec_is_stopped(&F.r, s),
			    "%s was stopped but is %s", s->model->name,
			    pool_state_name(s->state));
		}
		if (s->state == POOL_STARTING)
			ck_assert_msg(s->leases == 0,
			    "STARTING %s has %u leases", s->model->name,
			    s->leases);
		/* On a ready server, only ACQUIREs waiting for its check
		 * (out, or due again after a failed one). */
		if (s->state == POOL_READY && !TAILQ_EMPTY(&s->waiters))
			ck_assert_msg(s->checking || s->check_failures > 0,
			    "ready %s has waiters but no health check out",
			    s->model->name);
		if (s->state != POOL_READY)
			ck_assert_msg(!s->checking, "%s %s with a health check "
			    "out", s->model->name, pool_state_name(s->state));
	}
	TAILQ_FOREACH(s, &p->servers, link)
		grown += s->mem - s->estimate;
	ck_assert_msg(n == p->nservers, "nservers %u, listed %u",
	    p->nservers, n);
	ck_assert_msg(sum == p->used, "used %llu != sum of servers %llu",
	    (unsigned long long)p->used, (unsigned long long)sum);
	/* Only measured growth (rss over estimate) may go past the budget:
	 * a start never does. */
	ck_assert_msg(F.shrunk || p->used <= p->lim.budget + grown, "used "
	    "%llu > budget %llu + growth %llu", (unsigned long long)p->used,
	    (unsigned long long)p->lim.budget, (unsigned long long)grown);
	ck_assert_msg(F.shrunk || p->nservers <= p->lim.max_servers,
	    "%u servers > max_servers %u", p->nservers, p->lim.max_servers);
	ck_assert_msg(p->nwaiters <= p->lim.max_waiters,
	    "%u waiters > max_waiters %u", p->nwaiters, p->lim.max_waiters);

	TAILQ_FOREACH(m, &p->pending, pending) {
		npend++;
		ck_assert_msg(m->is_pending, "%s on pending, !is_pending",
		    m->name);
		ck_assert_msg(!TAILQ_EMPTY(&m->queued),
		    "%s pending with no waiter", m->name);
		ck_assert_msg(m->server == NULL,
		    "%s pending but has a live server", m->name);
		ck_assert_msg(npend <= F.nmodels, "pending list loops");
	}
	for (i = 0; i < F.nmodels; i++) {
		m = F.models[i];
		if (!m->is_pending)
			ck_assert_msg(TAILQ_EMPTY(&m->queued),
			    "%s has queued waiters but is not pending",
			    m->name);
		else {
			TAILQ_FOREACH(h, &p->pending, pending)
				if (h == m)
					break;
			ck_assert_msg(h == m, "%s is_pending, not on the "
			    "pending list", m->name);
		}
		if (m->server != NULL) {
			ck_assert_msg(server_listed(m->server),
			    "%s->server not on the server list", m->name);
			ck_assert_msg(m->server->model == m,
			    "%s->server belongs to another model", m->name);
		}
	}

	/* Liveness: a head that fits now must have been started. */
	h = TAILQ_FIRST(&p->pending);
	/* (With the system's memory in play, test_system_* check it.) */
	if (h != NULL && !p->shutting_down && F.now >= h->retry_at &&
	    F.now >= p->resource_retry_at && F.r.avail == 0 &&
	    !pinned_waits()) {
		/* (Every port held by an unreaped server or for a lost lease
		 * also means wait.) */
		ck_assert_msg(!(p->used + h->mem <= p->lim.budget &&
		    p->nservers < p->lim.max_servers && p->nservers +
		    held_for_lost(p) <
		    (unsigned)(p->lim.port_max - p->lim.port_min + 1)),
		    "pending head %s fits (used %llu + %llu <= %llu, %u "
		    "servers) but was not started", h->name,
		    (unsigned long long)p->used,
		    (unsigned long long)h->mem,
		    (unsigned long long)p->lim.budget, p->nservers);
		head_waits_rightly(h);
	}
	queue_rules();
	pinned_rules();

	if (F.extra_inv != NULL)
		F.extra_inv(F.extra);
}

static void
fx_init(const struct pool_limits *lim)
{
	struct pool_limits	 l = lim != NULL ? *lim : lim_default();

	memset(&F, 0, sizeof(F));
	F.now = T0;
	F.lim = l;
	rec_init(&F.r, &F.now);
	F.p = pool_new(&l, &rec_ops, &F.r, F.now);
	ck_assert_ptr_nonnull(F.p);
	F.r.pool = F.p;
	pool_owner_init(&F.own);
	pool_owner_init(&F.own2);
	ck_assert_uint_eq(F.p->used, 0);
	ck_assert_uint_eq(F.p->nservers, 0);
	ck_assert_int_eq(pool_next_deadline(F.p, F.now), -1);
	inv();
}

static void
fx_done(void)
{
	pool_free(F.p);
	F.p = NULL;
	rec_free(&F.r);
}

/* Moves the clock to T0 + t (never backwards). */
static void
at(pool_ms t)
{
	ck_assert_msg(T0 + t >= F.now, "test bug: clock back to %lld",
	    (long long)t);
	F.now = T0 + t;
}

static struct pool_model *
model(const char *name, uint64_t mem, pool_ms idle)
{
	struct pool_model	*m;

	ck_assert(F.nmodels < MAX_MODELS);
	m = pool_model_add(F.p, name, mem, idle);
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(m->name, name);
	ck_assert_uint_eq(m->mem, mem);
	ck_assert_ptr_eq(pool_model_find(F.p, name), m);
	F.models[F.nmodels++] = m;
	return m;
}

static void
acquire(struct pool_waiter *w, struct pool_owner *o, struct pool_model *m,
    bool hold, pool_ms timeout)
{
	memset(w, 0, sizeof(*w));
	pool_acquire(F.p, F.now, w, o, m, hold, F.now + timeout);
	inv();
}

static void
evict(struct pool_waiter *w, struct pool_owner *o, struct pool_model *m,
    bool force)
{
	memset(w, 0, sizeof(*w));
	F.r.allow_leased_model = force ? m : NULL;
	pool_evict(F.p, F.now, w, o, m, force);
	F.r.allow_leased_model = NULL;
	inv();
}

/* The fixture's owner that holds lease (F.own if none does). */
static struct pool_owner *
owner_of(int64_t lease)
{
	const struct pool_lease	*l;

	TAILQ_FOREACH(l, &F.own2.leases, owner_link)
		if (l->id == lease)
			return &F.own2;
	return &F.own;
}

static int
release(int64_t lease)
{
	int	 rc;

	rc = pool_release(F.p, F.now, owner_of(lease), lease);
	inv();
	return rc;
}

static struct pool_server *
ready(struct pool_model *m)
{
	struct pool_server	*s = m->server;

	ck_assert_msg(s != NULL, "%s has no server to make ready", m->name);
	ck_assert_msg(s->state == POOL_STARTING, "%s is %s, not STARTING",
	    m->name, pool_state_name(s->state));
	pool_ready(F.p, F.now, s);
	inv();
	ck_assert_int_eq(s->state, POOL_READY);
	ck_assert_int_eq(s->ready_at, F.now);
	return s;
}

static void
reap(struct pool_server *s, const char *why)
{
	rec_forget(&F.r, s);
	pool_exited(F.p, F.now, s, why);
	inv();
}

static void
tick(void)
{
	pool_tick(F.p, F.now);
	inv();
}

static pool_ms
deadline(void)
{
	return pool_next_deadline(F.p, F.now);
}

static size_t
nanswers(const struct pool_waiter *w)
{
	size_t	 i, n = 0;

	for (i = 0; i < F.r.nanswers; i++)
		if (F.r.answers[i].w == w)
			n++;
	return n;
}

/* The one answer w got; fails if it got none or more than one. */
static const struct rec_answer *
answer_of(const struct pool_waiter *w, const char *what)
{
	const struct rec_answer	*a = NULL;
	size_t			 i, n = 0;

	for (i = 0; i < F.r.nanswers; i++)
		if (F.r.answers[i].w == w) {
			a = &F.r.answers[i];
			n++;
		}
	ck_assert_msg(n == 1, "%s: answered %zu times, expected once", what,
	    n);
	return a;
}

static void
expect_err(const struct pool_waiter *w, enum proto_err err, const char *what)
{
	const struct rec_answer	*a = answer_of(w, what);

	ck_assert_msg(a->err == err, "%s: answered %s (%s), expected %s",
	    what, errname(a->err), a->message, errname(err));
}

static const struct rec_answer *
expect_ok(const struct pool_waiter *w, struct pool_model *m,
    const char *what)
{
	const struct rec_answer	*a = answer_of(w, what);

	ck_assert_msg(a->err == PROTO_OK, "%s: answered %s (%s)", what,
	    errname(a->err), a->message);
	ck_assert_msg(a->server != NULL, "%s: ok with no server", what);
	ck_assert_msg(a->server_model == m, "%s: got a server of %s", what,
	    rec_model_name(a->server_model));
	ck_assert_msg(a->server_state == POOL_READY, "%s: server is %s", what,
	    pool_state_name(a->server_state));
	return a;
}

static size_t
spawns_of(const struct pool_model *m)
{
	size_t	 i, n = 0;

	for (i = 0; i < F.r.nspawns; i++)
		if (F.r.spawns[i].model == m)
			n++;
	return n;
}

static size_t
stops_of(const struct pool_model *m)
{
	size_t	 i, n = 0;

	for (i = 0; i < F.r.nstops; i++)
		if (F.r.stops[i].model == m)
			n++;
	return n;
}

/*
 * Starts m and makes it ready now; returns the lease (0 if !hold).  The
 * waiter must be answered by pool_ready, which sets the server's last use.
 */
static int64_t
warm(struct pool_model *m, struct pool_owner *o, bool hold)
{
	struct pool_waiter	 w;
	size_t			 n = F.r.nspawns, na;
	const struct rec_answer	*a;

	acquire(&w, o, m, hold, LONG_MS);
	ck_assert_msg(F.r.nspawns == n + 1 && F.r.spawns[n].model == m &&
	    !F.r.spawns[n].failed, "warm: %s not spawned at once", m->name);
	na = F.r.nanswers;
	ready(m);
	ck_assert_msg(F.r.nanswers == na + 1 && F.r.answers[na].w == &w,
	    "warm: %s: waiter not answered by pool_ready", m->name);
	a = &F.r.answers[na];
	ck_assert_msg(a->err == PROTO_OK, "warm %s: %s", m->name,
	    errname(a->err));
	return a->lease;
}

/* A hot ACQUIRE without hold: marks m's server as used now. */
static void
touch(struct pool_model *m)
{
	struct pool_waiter	 w;
	size_t			 na = F.r.nanswers;

	ck_assert_msg(m->server != NULL && m->server->state == POOL_READY,
	    "touch: %s not ready", m->name);
	acquire(&w, &F.own, m, false, LONG_MS);
	ck_assert_msg(F.r.nanswers == na + 1 && F.r.answers[na].w == &w &&
	    F.r.answers[na].err == PROTO_OK, "touch %s: no hot answer",
	    m->name);
	ck_assert_int_eq(m->server->last_used, F.now);
}

/* --- 1. the hot path --- */

START_TEST(test_hot_path)
{
	struct pool_waiter	 w1, w2, w3;
	const struct rec_answer	*a;
	struct pool_model	*m;
	struct pool_server	*s;
	int64_t			 l1, l2;

	fx_init(NULL);
	m = model("alpha", 10 * G, 0);
	acquire(&w1, &F.own, m, true, LONG_MS);
	ck_assert_uint_eq(F.r.nspawns, 1);
	at(100);
	s = ready(m);
	a = expect_ok(&w1, m, "cold acquire");
	l1 = a->lease;
	ck_assert(l1 > 0);

	at(1000);
	acquire(&w2, &F.own, m, true, LONG_MS);
	a = expect_ok(&w2, m, "hot acquire");	/* at once */
	ck_assert_ptr_eq(a->server, s);
	ck_assert_int_eq(a->port, F.r.spawns[0].port);
	ck_assert_msg(a->lease > 0 && a->lease != l1, "lease %lld",
	    (long long)a->lease);
	ck_assert_msg(!a->cold, "hot acquire answered cold");
	ck_assert_int_eq(a->wait_ms, 0);
	l2 = a->lease;
	ck_assert_uint_eq(F.r.nspawns, 1);
	ck_assert_uint_eq(s->leases, 2);
	ck_assert_uint_eq(F.p->counters.acquires, 2);
	ck_assert_uint_eq(F.p->counters.hits, 1);
	ck_assert_uint_eq(F.p->counters.misses, 1);
	ck_assert_uint_eq(m->counters.hits, 1);
	ck_assert_int_eq(s->last_used, T0 + 1000);
	ck_assert_int_eq(m->last_used, T0 + 1000);

	/* hold=false: served, no lease. */
	at(2000);
	acquire(&w3, &F.own, m, false, LONG_MS);
	a = expect_ok(&w3, m, "hot acquire without hold");
	ck_assert_int_eq(a->lease, 0);
	ck_assert(!a->cold);
	ck_assert_uint_eq(s->leases, 2);
	ck_assert_uint_eq(F.p->counters.hits, 2);
	ck_assert_int_eq(s->last_used, T0 + 2000);

	ck_assert_int_eq(release(l2), 0);
	ck_assert_uint_eq(s->leases, 1);
	ck_assert_int_eq(release(l2), -1);
	ck_assert_int_eq(release(l1), 0);
	ck_assert_uint_eq(s->leases, 0);
	ck_assert_int_eq(release(0), -1);
	ck_assert_uint_eq(F.p->counters.releases, 2);
	ck_assert_uint_eq(F.r.nstops, 0);
	ck_assert(TAILQ_EMPTY(&F.own.leases));
	ck_assert(TAILQ_EMPTY(&F.own.waiters));
	fx_done();
}
END_TEST

/* --- 2. a cold start --- */

START_TEST(test_cold_start)
{
	struct pool_waiter	 w;
	const struct rec_answer	*a;
	struct pool_model	*m;
	struct pool_server	*s;

	fx_init(NULL);
	m = model("beta", 12 * G, 0);
	at(100);
	acquire(&w, &F.own, m, true, LONG_MS);
	ck_assert_uint_eq(F.r.nspawns, 1);
	ck_assert_ptr_eq(F.r.spawns[0].model, m);
	ck_assert_uint_eq(F.r.spawns[0].mem, 12 * G);
	ck_assert(F.r.spawns[0].port >= 8000 && F.r.spawns[0].port <= 8099);
	ck_assert_uint_eq(F.p->used, 12 * G);	/* accounted at once */
	ck_assert_uint_eq(F.p->nservers, 1);
	s = m->server;
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(s->state, POOL_STARTING);
	ck_assert_int_eq(s->spawned_at, T0 + 100);
	ck_assert_int_eq(s->pid, F.r.spawns[0].pid);
	ck_assert_uint_eq(nanswers(&w), 0);
	ck_assert_uint_eq(pool_waiting(F.p), 1);
	ck_assert_uint_eq(F.p->counters.starts, 1);

	at(1000);
	tick();
	ck_assert_uint_eq(nanswers(&w), 0);

	at(100 + 2345);
	ready(m);
	a = expect_ok(&w, m, "cold acquire");
	ck_assert_ptr_eq(a->server, s);
	ck_assert_int_eq(a->port, F.r.spawns[0].port);
	ck_assert(a->cold);
	ck_assert_int_eq(a->wait_ms, 2345);
	ck_assert(a->lease > 0);
	ck_assert_uint_eq(s->leases, 1);
	ck_assert_uint_eq(pool_waiting(F.p), 0);
	ck_assert_uint_eq(F.p->counters.misses, 1);
	ck_assert_uint_eq(F.p->counters.hits, 0);
	ck_assert_uint_eq(F.p->counters.acquires, 1);
	ck_assert_int_eq(m->last_load_ms, 2345);
	ck_assert_uint_eq(F.p->counters.load_ms_total, 2345);
	ck_assert_uint_eq(F.p->used, 12 * G);
	fx_done();
}
END_TEST

/* --- 3. one start per model --- */

START_TEST(test_one_start_per_model)
{
	struct pool_waiter	 w[20];
	const struct rec_answer	*a;
	struct pool_model	*m;
	int64_t			 leases[20];
	int			 i, j;

	fx_init(NULL);
	m = model("gamma", 18 * G, 0);
	for (i = 0; i < 20; i++) {
		at(i);
		acquire(&w[i], i % 2 ? &F.own : &F.own2, m, true, LONG_MS);
	}
	ck_assert_uint_eq(F.r.nspawns, 1);
	ck_assert_uint_eq(F.p->used, 18 * G);
	ck_assert_uint_eq(F.r.nanswers, 0);
	ck_assert_uint_eq(pool_waiting(F.p), 20);
	at(500);
	ready(m);
	ck_assert_uint_eq(F.r.nanswers, 20);
	for (i = 0; i < 20; i++) {
		a = expect_ok(&w[i], m, "one of 20");
		ck_assert(a->cold);
		ck_assert_int_eq(a->wait_ms, 500 - i);
		ck_assert(a->lease > 0);
		leases[i] = a->lease;
		for (j = 0; j < i; j++)
			ck_assert_msg(leases[j] != leases[i],
			    "lease %lld given twice", (long long)leases[i]);
	}
	ck_assert_uint_eq(m->server->leases, 20);
	ck_assert_uint_eq(F.r.nspawns, 1);
	ck_assert_uint_eq(F.p->counters.misses, 20);
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(release(leases[i]), 0);
	ck_assert_uint_eq(m->server->leases, 0);
	fx_done();
}
END_TEST

/* --- 4. the example of the design notes: 27 × 18 G, a 28th --- */

START_TEST(test_design_example)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*m[29];
	struct pool_waiter	 w28, w29;
	struct pool_server	*victim;
	char			 name[32];
	int			 i, k;

	l.budget = 492 * G;
	l.max_servers = 27;
	fx_init(&l);
	for (i = 0; i < 29; i++) {
		snprintf(name, sizeof(name), "model-%02d", i);
		m[i] = model(name, 18 * G, 0);
	}
	for (i = 0; i < 27; i++) {
		at(i * 10);
		warm(m[i], &F.own, false);
	}
	ck_assert_uint_eq(F.p->used, 486 * G);
	ck_assert_uint_eq(F.p->nservers, 27);
	ck_assert_uint_eq(F.r.nstops, 0);
	/* Last use in another order than the starts: m[5] is the oldest. */
	for (k = 0; k < 27; k++) {
		at(1000 + k * 10);
		touch(m[(k * 7 + 5) % 27]);
	}

	at(5000);
	acquire(&w28, &F.own, m[27], true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_msg(F.r.stops[0].model == m[5], "stopped %s, not model-05",
	    rec_model_name(F.r.stops[0].model));
	victim = F.r.stops[0].srv;
	ck_assert_int_eq(victim->state, POOL_STOPPING);
	ck_assert_int_eq(victim->stop_reason, POOL_STOP_LRU);
	ck_assert_ptr_null(m[5]->server);
	ck_assert_uint_eq(F.r.nspawns, 27);	/* not before the reap */
	ck_assert_uint_eq(F.p->used, 486 * G);
	ck_assert_uint_eq(F.p->counters.evictions, 1);
	ck_assert_uint_eq(nanswers(&w28), 0);

	at(5500);
	tick();
	ck_assert_uint_eq(F.r.nspawns, 27);
	ck_assert_uint_eq(F.r.nstops, 1);

	at(6000);
	reap(victim, "exited with status 0");
	ck_assert_uint_eq(F.r.nspawns, 28);
	ck_assert_ptr_eq(F.r.spawns[27].model, m[27]);
	ck_assert_uint_eq(F.p->used, 486 * G);
	ck_assert_uint_eq(F.r.nstops, 1);
	at(7000);
	ready(m[27]);
	ck_assert(expect_ok(&w28, m[27], "28th")->cold);

	/* A 29th: the next oldest, m[12], goes. */
	at(8000);
	acquire(&w29, &F.own, m[28], true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_msg(F.r.stops[1].model == m[12], "stopped %s, not model-12",
	    rec_model_name(F.r.stops[1].model));
	ck_assert_uint_eq(F.r.nspawns, 28);
	reap(F.r.stops[1].srv, "exited with status 0");
	ck_assert_uint_eq(F.r.nspawns, 29);
	ck_assert_ptr_eq(F.r.spawns[28].model, m[28]);
	fx_done();
}
END_TEST

/* --- 5. LRU follows the latest ACQUIRE or RELEASE --- */

START_TEST(test_lru_touch)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*a, *b, *c, *d, *e;
	struct pool_waiter	 wd, we;
	int64_t			 la;

	l.budget = 30 * G;
	fx_init(&l);
	a = model("a", 10 * G, 0);
	b = model("b", 10 * G, 0);
	c = model("c", 10 * G, 0);
	d = model("d", 10 * G, 0);
	e = model("e", 10 * G, 0);
	at(0);
	la = warm(a, &F.own, true);
	at(10);
	warm(b, &F.own, false);
	at(20);
	warm(c, &F.own, false);
	at(100);
	touch(b);
	at(200);
	touch(c);
	at(300);
	ck_assert_int_eq(release(la), 0);	/* a: last use 300 */
	ck_assert_int_eq(a->server->last_used, T0 + 300);

	at(400);
	acquire(&wd, &F.own, d, true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_msg(F.r.stops[0].model == b, "LRU stopped %s, expected b "
	    "(a was released later)", rec_model_name(F.r.stops[0].model));
	reap(F.r.stops[0].srv, "exited");
	ck_assert_ptr_eq(F.r.spawns[F.r.nspawns - 1].model, d);
	at(410);
	ready(d);
	expect_ok(&wd, d, "d");

	/* Touch c (200) after a (300): a is now the oldest idle one. */
	at(1000);
	touch(c);
	at(1100);
	acquire(&we, &F.own, e, true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_msg(F.r.stops[1].model == a, "LRU stopped %s, expected a",
	    rec_model_name(F.r.stops[1].model));
	fx_done();
}
END_TEST

/* --- 6. mixed sizes; the server count --- */

START_TEST(test_mixed_sizes)
{
	struct pool_model	*a, *b, *c, *d, *big;
	struct pool_waiter	 w;
	struct pool_server	*sa, *sb;

	fx_init(NULL);	/* 100 G */
	a = model("a", 10 * G, 0);
	b = model("b", 20 * G, 0);
	c = model("c", 30 * G, 0);
	d = model("d", 10 * G, 0);
	big = model("big", 60 * G, 0);
	at(10);
	warm(a, &F.own, false);
	at(20);
	warm(b, &F.own, false);
	at(30);
	warm(c, &F.own, false);
	at(40);
	warm(d, &F.own, false);
	ck_assert_uint_eq(F.p->used, 70 * G);

	/* 60 G needs 30 G more: a (10) then b (20), oldest first. */
	at(100);
	acquire(&w, &F.own, big, true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_eq(F.r.stops[0].model, a);
	ck_assert_ptr_eq(F.r.stops[1].model, b);
	sa = F.r.stops[0].srv;
	sb = F.r.stops[1].srv;
	ck_assert_int_eq(sa->stop_reason, POOL_STOP_LRU);
	ck_assert_int_eq(sb->stop_reason, POOL_STOP_LRU);
	ck_assert_uint_eq(F.p->counters.evictions, 2);
	ck_assert_uint_eq(spawns_of(big), 0);
	at(200);
	reap(sa, "exited");
	ck_assert_uint_eq(spawns_of(big), 0);	/* 60 + 60 > 100 still */
	ck_assert_uint_eq(F.r.nstops, 2);	/* and no more stops */
	at(300);
	reap(sb, "exited");
	ck_assert_uint_eq(spawns_of(big), 1);
	ck_assert_uint_eq(F.p->used, 100 * G);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_nonnull(c->server);
	ck_assert_ptr_nonnull(d->server);
	fx_done();
}
END_TEST

START_TEST(test_count_limit)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*a, *b, *c, *d;
	struct pool_waiter	 w;

	l.max_servers = 3;
	fx_init(&l);
	a = model("a", 10 * G, 0);
	b = model("b", 10 * G, 0);
	c = model("c", 10 * G, 0);
	d = model("d", 10 * G, 0);
	at(10);
	warm(b, &F.own, false);
	at(20);
	warm(a, &F.own, false);
	at(30);
	warm(c, &F.own, false);
	at(40);
	acquire(&w, &F.own, d, true, LONG_MS);	/* bytes fit: 40 <= 100 */
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(F.r.stops[0].model, b);
	ck_assert_int_eq(F.r.stops[0].srv->stop_reason, POOL_STOP_LRU);
	ck_assert_uint_eq(spawns_of(d), 0);	/* 4 servers > 3 */
	at(50);
	reap(F.r.stops[0].srv, "exited");
	ck_assert_uint_eq(spawns_of(d), 1);
	ck_assert_uint_eq(F.p->nservers, 3);
	fx_done();
}
END_TEST

/* --- 7. leases block eviction --- */

START_TEST(test_leases_block)
{
	struct pool_model	*a, *b, *c;
	struct pool_waiter	 w1, w2;
	struct pool_server	*sa;
	int64_t			 la;

	fx_init(NULL);
	a = model("a", 50 * G, 0);
	b = model("b", 50 * G, 0);
	c = model("c", 30 * G, 0);
	at(0);
	la = warm(a, &F.own, true);
	warm(b, &F.own, true);
	sa = a->server;

	at(1000);
	acquire(&w1, &F.own, c, true, 5000);
	ck_assert_uint_eq(F.r.nstops, 0);
	ck_assert_uint_eq(spawns_of(c), 0);
	ck_assert(c->is_pending);
	ck_assert_uint_eq(nanswers(&w1), 0);
	ck_assert_int_eq(deadline(), T0 + 6000);
	at(5999);
	tick();
	ck_assert_uint_eq(nanswers(&w1), 0);
	at(6000);
	tick();
	expect_err(&w1, PROTO_E_BUSY, "queued past its deadline");
	ck_assert(!c->is_pending);
	ck_assert_uint_eq(pool_waiting(F.p), 0);
	ck_assert_uint_eq(F.p->counters.busy, 1);
	ck_assert_uint_eq(F.r.nstops, 0);
	ck_assert_int_eq(deadline(), -1);

	/* A release before the deadline lets the start proceed. */
	at(7000);
	acquire(&w2, &F.own, c, true, 5000);
	ck_assert_uint_eq(F.r.nstops, 0);
	at(8000);
	ck_assert_int_eq(release(la), 0);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(F.r.stops[0].srv, sa);
	ck_assert_uint_eq(spawns_of(c), 0);
	at(8500);
	reap(sa, "exited");
	ck_assert_uint_eq(spawns_of(c), 1);
	at(9000);
	ready(c);
	ck_assert_int_eq(expect_ok(&w2, c, "after the release")->wait_ms, 2000);
	fx_done();
}
END_TEST

/*
 * A server that becomes ready and idle changes the picture: the head
 * waiting for room must get it then, not only at its deadline.
 */
START_TEST(test_ready_makes_room)
{
	struct pool_model	*x, *y;
	struct pool_waiter	 wx, wy;

	fx_init(NULL);
	x = model("x", 60 * G, 0);
	y = model("y", 50 * G, 0);
	at(0);
	acquire(&wx, &F.own, x, false, LONG_MS);
	at(10);
	acquire(&wy, &F.own, y, true, 5000);	/* x starting: wait */
	ck_assert_uint_eq(F.r.nstops, 0);
	ck_assert(y->is_pending);
	at(100);
	pool_ready(F.p, F.now, x->server);
	expect_ok(&wx, x, "x");			/* x is idle now */
	ck_assert_msg(F.r.nstops == 1, "pool_ready left head y waiting "
	    "though idle x could be evicted (%zu stops)", F.r.nstops);
	inv();
	ck_assert_ptr_eq(F.r.stops[0].model, x);
	at(200);
	reap(F.r.stops[0].srv, "exited");
	ck_assert_uint_eq(spawns_of(y), 1);
	fx_done();
}
END_TEST

/*
 * So does a forced EVICT: once a leased server is stopping, stopping the
 * idle ones too makes room (rule 3), without waiting for the first reap.
 */
START_TEST(test_evict_makes_room)
{
	struct pool_model	*a, *b, *c, *d;
	struct pool_waiter	 wd, ea;

	fx_init(NULL);
	a = model("a", 50 * G, 0);
	b = model("b", 20 * G, 0);
	c = model("c", 30 * G, 0);
	d = model("d", 60 * G, 0);
	at(0);
	warm(a, &F.own, true);
	at(10);
	warm(b, &F.own, false);
	at(20);
	warm(c, &F.own, true);
	at(100);
	acquire(&wd, &F.own, d, true, LONG_MS);	/* short 60, idle 20 */
	ck_assert_uint_eq(F.r.nstops, 0);
	at(200);
	evict(&ea, &F.own2, a, true);		/* now short 10 <= 20 */
	ck_assert_msg(F.r.nstops == 2, "after the forced EVICT of a, idle b "
	    "was not stopped for head d (%zu stops)", F.r.nstops);
	ck_assert_ptr_eq(F.r.stops[1].model, b);
	reap(F.r.stops[0].srv, "exited");
	reap(F.r.stops[1].srv, "exited");
	ck_assert_uint_eq(spawns_of(d), 1);
	fx_done();
}
END_TEST

/* --- 8. stops none if even all idle ones would not make room --- */

START_TEST(test_stops_none)
{
	struct pool_model	*a, *b, *c, *d;
	struct pool_waiter	 w;
	int64_t			 lb;

	fx_init(NULL);
	a = model("a", 20 * G, 0);
	b = model("b", 40 * G, 0);
	c = model("c", 40 * G, 0);
	d = model("d", 50 * G, 0);
	at(10);
	warm(a, &F.own, false);
	at(20);
	lb = warm(b, &F.own, true);
	at(30);
	warm(c, &F.own, true);
	at(100);
	acquire(&w, &F.own, d, true, LONG_MS);	/* 100 - 20 + 50 > 100 */
	ck_assert_uint_eq(F.r.nstops, 0);
	ck_assert_uint_eq(spawns_of(d), 0);
	at(200);
	tick();
	ck_assert_uint_eq(F.r.nstops, 0);

	/* Now a (20) and b (40) idle: both must go, a first. */
	at(300);
	ck_assert_int_eq(release(lb), 0);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_eq(F.r.stops[0].model, a);
	ck_assert_ptr_eq(F.r.stops[1].model, b);
	reap(F.r.stops[0].srv, "exited");
	ck_assert_uint_eq(spawns_of(d), 0);
	reap(F.r.stops[1].srv, "exited");
	ck_assert_uint_eq(spawns_of(d), 1);
	ck_assert_uint_eq(F.p->used, 90 * G);
	fx_done();
}
END_TEST

/* --- 9. too large --- */

START_TEST(test_too_large)
{
	struct pool_model	*huge, *exact;
	struct pool_waiter	 w1, w2;

	fx_init(NULL);
	huge = model("huge", 100 * G + 1, 0);
	exact = model("exact", 100 * G, 0);
	acquire(&w1, &F.own, huge, true, LONG_MS);
	expect_err(&w1, PROTO_E_TOO_LARGE, "larger than the budget");
	ck_assert(!huge->is_pending);
	ck_assert_uint_eq(pool_waiting(F.p), 0);
	ck_assert_uint_eq(F.p->nwaiters, 0);
	ck_assert_uint_eq(F.r.nspawns, 0);
	ck_assert(TAILQ_EMPTY(&F.own.waiters));
	acquire(&w2, &F.own, exact, true, LONG_MS);
	ck_assert_uint_eq(spawns_of(exact), 1);
	ck_assert_uint_eq(F.p->used, 100 * G);
	fx_done();
}
END_TEST

/* --- 10. strict FIFO --- */

START_TEST(test_fifo)
{
	struct pool_model	*a, *b, *x, *y;
	struct pool_waiter	 wx, wy;
	int64_t			 la, lb, ly;

	fx_init(NULL);
	a = model("a", 40 * G, 0);
	b = model("b", 40 * G, 0);
	x = model("x", 50 * G, 0);
	y = model("y", 20 * G, 0);
	at(0);
	la = warm(a, &F.own, true);
	lb = warm(b, &F.own, true);
	at(10);
	acquire(&wx, &F.own, x, true, LONG_MS);
	ck_assert_uint_eq(spawns_of(x), 0);	/* only leases hold it */
	at(20);
	/* 80 + 20 fits, and x can only wait for leases: y passes it. */
	acquire(&wy, &F.own2, y, true, LONG_MS);
	ck_assert_uint_eq(spawns_of(y), 1);
	ck_assert_uint_eq(spawns_of(x), 0);
	ck_assert(x->is_pending && !y->is_pending);
	ck_assert_ptr_eq(TAILQ_FIRST(&F.p->pending), x);
	ck_assert_uint_eq(x->passes, 1);
	at(30);
	ready(y);
	ly = expect_ok(&wy, y, "y")->lease;

	at(100);
	ck_assert_int_eq(release(la), 0);	/* idle a, 40, short of 50 */
	ck_assert_uint_eq(F.r.nstops, 0);
	at(110);
	ck_assert_int_eq(release(ly), 0);	/* idle a + y: 60 */
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_eq(F.r.stops[0].model, a);	/* LRU first */
	ck_assert_ptr_eq(F.r.stops[1].model, y);
	reap(F.r.stops[0].srv, "exited");
	ck_assert_uint_eq(spawns_of(x), 0);	/* 40 + 20 + 50 > 100 */
	reap(F.r.stops[1].srv, "exited");
	ck_assert_uint_eq(spawns_of(x), 1);
	at(300);
	ready(x);
	expect_ok(&wx, x, "x");
	ck_assert_int_eq(release(lb), 0);
	fx_done();
}
END_TEST

/* --- 11. readiness timeout --- */

START_TEST(test_start_timeout)
{
	struct pool_model	*m;
	struct pool_waiter	 w1, w2;
	struct pool_server	*s;

	fx_init(NULL);	/* start_timeout 30 s */
	m = model("slow", 10 * G, 0);
	at(0);
	acquire(&w1, &F.own, m, true, 100000);
	at(5000);
	acquire(&w2, &F.own2, m, false, 100000);
	s = m->server;
	ck_assert_int_eq(deadline(), T0 + 30000);
	at(29999);
	tick();
	ck_assert_uint_eq(F.r.nstops, 0);
	at(30000);
	tick();
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(F.r.stops[0].srv, s);
	ck_assert_int_eq(s->state, POOL_STOPPING);
	ck_assert_int_eq(s->stop_reason, POOL_STOP_START_TIMEOUT);
	expect_err(&w1, PROTO_E_START_FAILED, "start timeout, waiter 1");
	expect_err(&w2, PROTO_E_START_FAILED, "start timeout, waiter 2");
	ck_assert_uint_eq(F.p->used, 10 * G);	/* until reaped */
	ck_assert_uint_eq(F.p->nservers, 1);
	ck_assert_ptr_null(m->server);
	ck_assert_uint_eq(F.p->counters.start_failures, 1);
	ck_assert_uint_eq(pool_waiting(F.p), 0);
	at(31000);
	reap(s, "killed by signal 15");
	ck_assert_uint_eq(F.p->used, 0);
	ck_assert_uint_eq(F.p->nservers, 0);
	ck_assert_uint_eq(F.r.nanswers, 2);	/* nothing more */
	ck_assert_uint_eq(F.p->counters.start_failures, 1);
	fx_done();
}
END_TEST

/* --- 12. a crash at start, and the back-off --- */

/* Starts m at rel. time t (must spawn), crashes it at t + 100. */
static void
fail_start(struct pool_model *m, pool_ms t, const char *why)
{
	struct pool_waiter	 w;
	size_t			 n = spawns_of(m), na;

	at(t);
	acquire(&w, &F.own, m, true, LONG_MS);
	ck_assert_msg(spawns_of(m) == n + 1, "no spawn at %lld (retry_at %lld)",
	    (long long)t, (long long)(m->retry_at - T0));
	at(t + 100);
	na = F.r.nanswers;
	reap(m->server, why);
	ck_assert_uint_eq(F.r.nanswers, na + 1);
	ck_assert_ptr_eq(F.r.answers[na].w, &w);
	ck_assert_int_eq(F.r.answers[na].err, PROTO_E_START_FAILED);
	ck_assert_msg(strstr(F.r.answers[na].message, why) != NULL,
	    "message \"%s\" lacks \"%s\"", F.r.answers[na].message, why);
	ck_assert_uint_eq(F.p->used, 0);
	ck_assert_uint_eq(F.p->nservers, 0);
}

/* An ACQUIRE at rel. time t gets start_failed at once, no spawn. */
static void
refused(struct pool_model *m, pool_ms t, const char *why)
{
	struct pool_waiter	 w;
	size_t			 n = spawns_of(m), na = F.r.nanswers;
	const struct rec_answer	*a;

	at(t);
	acquire(&w, &F.own, m, true, LONG_MS);
	ck_assert_msg(spawns_of(m) == n, "spawned during back-off at %lld",
	    (long long)t);
	ck_assert_msg(F.r.nanswers == na + 1 && F.r.answers[na].w == &w,
	    "acquire during back-off at %lld not answered at once",
	    (long long)t);
	a = &F.r.answers[na];
	ck_assert_msg(a->err == PROTO_E_START_FAILED, "back-off answered %s",
	    errname(a->err));
	ck_assert_msg(strstr(a->message, why) != NULL,
	    "back-off message \"%s\" lacks the last error \"%s\"",
	    a->message, why);
	ck_assert(!m->is_pending);
}

START_TEST(test_crash_at_start_backoff)
{
	struct pool_model	*m;
	struct pool_waiter	 w1, w2, w3;
	pool_ms			 t, fail_at, backoff;
	unsigned		 k;
	char			 why[64];

	fx_init(NULL);
	m = model("flaky", 10 * G, 0);
	at(0);
	acquire(&w1, &F.own, m, true, LONG_MS);
	acquire(&w2, &F.own2, m, false, LONG_MS);
	at(500);
	reap(m->server, "exit status 1: error loading model");
	expect_err(&w1, PROTO_E_START_FAILED, "crash at start, waiter 1");
	expect_err(&w2, PROTO_E_START_FAILED, "crash at start, waiter 2");
	ck_assert_ptr_nonnull(strstr(answer_of(&w1, "w1")->message,
	    "error loading model"));
	ck_assert_ptr_nonnull(strstr(answer_of(&w2, "w2")->message,
	    "error loading model"));
	ck_assert_uint_eq(F.p->used, 0);
	ck_assert_uint_eq(F.p->nservers, 0);
	ck_assert_ptr_null(m->server);
	ck_assert_uint_eq(m->failures, 1);
	ck_assert_int_eq(m->retry_at, T0 + 1500);
	ck_assert_uint_eq(F.p->counters.start_failures, 1);
	ck_assert_uint_eq(F.p->counters.crashes, 0);
	ck_assert_ptr_nonnull(strstr(m->last_error, "error loading model"));

	refused(m, 501, "error loading model");
	refused(m, 1499, "error loading model");
	/* 1 s later: allowed.  Fails again: 2 s, 4 s, ... capped at 60 s. */
	t = 1500;
	for (k = 2; k <= 9; k++) {
		snprintf(why, sizeof(why), "crash number %u", k);
		fail_start(m, t, why);
		fail_at = t + 100;
		backoff = (pool_ms)POOL_BACKOFF_MIN_MS << (k - 1);
		if (backoff > POOL_BACKOFF_MAX_MS)
			backoff = POOL_BACKOFF_MAX_MS;
		ck_assert_uint_eq(m->failures, k);
		ck_assert_msg(m->retry_at == T0 + fail_at + backoff,
		    "after failure %u: retry in %lld ms, expected %lld", k,
		    (long long)(m->retry_at - T0 - fail_at),
		    (long long)backoff);
		refused(m, fail_at + backoff - 1, why);
		t = fail_at + backoff;
	}

	/* A server that stays up POOL_CRASH_EARLY_MS resets the count: the
	 * next crash backs off 1 s again. */
	at(t);
	acquire(&w3, &F.own, m, true, LONG_MS);
	ck_assert_ptr_nonnull(m->server);
	at(t + 50);
	ready(m);
	expect_ok(&w3, m, "after the back-off");
	ck_assert_uint_eq(m->failures, 9);	/* not proven yet */
	t += 50 + POOL_CRASH_EARLY_MS;
	at(t);
	reap(m->server, "segfault");		/* a crash long after ready */
	ck_assert_uint_eq(F.p->counters.crashes, 1);
	ck_assert_uint_eq(m->failures, 0);
	fail_start(m, t + 10, "boom");
	ck_assert_uint_eq(m->failures, 1);
	ck_assert_int_eq(m->retry_at, T0 + t + 110 + POOL_BACKOFF_MIN_MS);
	fx_done();
}
END_TEST

/* --- 13. spawn failure --- */

START_TEST(test_spawn_failure)
{
	struct pool_model	*a, *b;
	struct pool_waiter	 w0, w1, w2;
	int64_t			 la;

	fx_init(NULL);
	a = model("a", 60 * G, 0);
	b = model("b", 60 * G, 0);

	/* At once, in the ACQUIRE. */
	F.r.fail_spawns = 1;
	acquire(&w0, &F.own, b, true, LONG_MS);
	expect_err(&w0, PROTO_E_START_FAILED, "spawn failed");
	ck_assert_ptr_nonnull(strstr(answer_of(&w0, "w0")->message,
	    "No such file or directory"));
	ck_assert_uint_eq(F.p->used, 0);
	ck_assert_uint_eq(F.p->nservers, 0);
	ck_assert_ptr_null(b->server);
	ck_assert(!b->is_pending);
	ck_assert_uint_eq(F.p->counters.start_failures, 1);
	ck_assert_uint_eq(b->failures, 1);
	ck_assert_uint_eq(F.r.nstops, 0);

	/* From the queue, with two waiters. */
	at(2000);
	la = warm(a, &F.own, true);
	at(5000);
	acquire(&w1, &F.own, b, true, LONG_MS);
	acquire(&w2, &F.own2, b, true, LONG_MS);
	ck_assert(b->is_pending);
	ck_assert_int_eq(release(la), 0);
	ck_assert_uint_eq(F.r.nstops, 1);
	F.r.fail_spawns = 1;
	snprintf(F.r.fail_msg, sizeof(F.r.fail_msg), "fork: Resource "
	    "temporarily unavailable");
	at(5100);
	reap(F.r.stops[0].srv, "exited");
	ck_assert_uint_eq(spawns_of(b), 2);
	expect_err(&w1, PROTO_E_START_FAILED, "queued, spawn failed 1");
	expect_err(&w2, PROTO_E_START_FAILED, "queued, spawn failed 2");
	ck_assert_ptr_nonnull(strstr(answer_of(&w1, "w1")->message,
	    "Resource temporarily unavailable"));
	ck_assert_uint_eq(F.p->used, 0);
	ck_assert_uint_eq(F.p->nservers, 0);
	ck_assert(!b->is_pending);
	ck_assert_uint_eq(pool_waiting(F.p), 0);
	fx_done();
}
END_TEST

/* --- 14. a crash after ready --- */

START_TEST(test_crash_after_ready)
{
	struct pool_model	*m, *n;
	int64_t			 l1, l2;

	fx_init(NULL);
	m = model("m", 10 * G, 0);
	n = model("n", 5 * G, 0);
	at(0);
	l1 = warm(m, &F.own, true);
	l2 = warm(n, &F.own2, true);
	ck_assert_uint_eq(F.p->used, 15 * G);
	at(100);
	reap(m->server, "killed by signal 9");
	ck_assert_uint_eq(F.p->counters.crashes, 1);
	ck_assert_uint_eq(F.p->counters.start_failures, 0);
	ck_assert_uint_eq(F.p->used, 5 * G);
	ck_assert_uint_eq(F.p->nservers, 1);
	ck_assert_ptr_null(m->server);
	ck_assert_uint_eq(F.r.nstops, 0);
	at(200);
	ck_assert_int_eq(release(l1), 0);	/* still valid */
	ck_assert_int_eq(release(l1), -1);
	ck_assert_int_eq(release(987654321), -1);
	ck_assert_int_eq(release(l2), 0);
	ck_assert_uint_eq(F.p->counters.releases, 2);
	fx_done();
}
END_TEST

/* --- 15. idle timeout --- */

START_TEST(test_idle_timeout)
{
	struct pool_model	*a, *held, *never, *d;
	struct pool_server	*sa, *sd;
	int64_t			 ld;

	fx_init(NULL);
	a = model("a", 10 * G, 5000);
	held = model("held", 10 * G, 5000);
	never = model("never", 10 * G, 0);
	d = model("d", 10 * G, 5000);
	at(0);
	warm(a, &F.own, false);
	warm(held, &F.own, true);
	warm(never, &F.own, false);
	ld = warm(d, &F.own, true);
	at(1000);
	touch(a);
	at(2000);
	ck_assert_int_eq(release(ld), 0);
	sa = a->server;
	sd = d->server;
	ck_assert_int_eq(deadline(), T0 + 6000);	/* a: 1000 + 5000 */
	at(5999);
	tick();
	ck_assert_uint_eq(F.r.nstops, 0);
	at(6000);
	tick();
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(F.r.stops[0].srv, sa);
	ck_assert_int_eq(sa->stop_reason, POOL_STOP_IDLE);
	ck_assert_uint_eq(F.p->counters.idle_stops, 1);
	ck_assert_int_eq(deadline(), T0 + 7000);	/* d: 2000 + 5000 */
	at(7000);
	tick();
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_eq(F.r.stops[1].srv, sd);
	ck_assert_int_eq(sd->stop_reason, POOL_STOP_IDLE);
	/* Left: held (leased) and never (idle_timeout 0): nothing to do. */
	ck_assert_int_eq(deadline(), -1);
	at(8000);
	reap(sa, "exited");
	reap(sd, "exited");
	ck_assert_int_eq(deadline(), -1);
	at(100000000);
	tick();
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_nonnull(held->server);
	ck_assert_ptr_nonnull(never->server);
	ck_assert_int_eq(deadline(), -1);
	fx_done();
}
END_TEST

/* --- 16. waiter timeouts --- */

START_TEST(test_waiter_timeouts)
{
	struct pool_model	*m, *a, *q;
	struct pool_waiter	 w1, w2, wq;
	struct pool_server	*s;

	fx_init(NULL);
	m = model("m", 10 * G, 0);
	a = model("a", 90 * G, 0);
	q = model("q", 50 * G, 0);
	at(0);
	acquire(&w1, &F.own, m, true, 1000);
	acquire(&w2, &F.own, m, true, 50000);
	s = m->server;
	ck_assert_int_eq(deadline(), T0 + 1000);
	at(1000);
	tick();
	expect_err(&w1, PROTO_E_TIMEOUT, "waiting for a start");
	ck_assert_uint_eq(nanswers(&w2), 0);
	ck_assert_uint_eq(F.r.nstops, 0);		/* the start goes on */
	ck_assert_ptr_eq(m->server, s);
	ck_assert_int_eq(s->state, POOL_STARTING);
	ck_assert_uint_eq(F.p->counters.timeouts, 1);
	ck_assert_uint_eq(pool_waiting(F.p), 1);
	at(2000);
	ready(m);
	expect_ok(&w2, m, "the other waiter");

	/* Queued for room: busy. */
	at(3000);
	warm(a, &F.own, true);			/* 100 used, all leased */
	acquire(&wq, &F.own, q, true, 500);
	ck_assert(q->is_pending);
	ck_assert_int_eq(deadline(), T0 + 3500);
	at(3500);
	tick();
	expect_err(&wq, PROTO_E_BUSY, "waiting for room");
	ck_assert_uint_eq(F.p->counters.busy, 1);
	ck_assert_uint_eq(F.p->counters.timeouts, 1);
	ck_assert(!q->is_pending);
	fx_done();
}
END_TEST

/* --- 17. a client goes away --- */

START_TEST(test_owner_gone)
{
	struct pool_model	*b, *x, *c, *d, *s;
	struct pool_waiter	 wc, wd, ws1, ws2;
	struct pool_owner	 gone;
	struct pool_server	*sb;
	int64_t			 lb;
	size_t			 na;

	fx_init(NULL);
	pool_owner_init(&gone);
	b = model("b", 40 * G, 0);
	x = model("x", 40 * G, 0);
	c = model("c", 50 * G, 0);
	d = model("d", 10 * G, 0);
	s = model("s", 10 * G, 0);
	at(0);
	lb = warm(b, &gone, true);
	warm(x, &F.own, true);
	(void)lb;
	sb = b->server;
	at(10);
	acquire(&ws1, &gone, s, true, LONG_MS);		/* starting */
	acquire(&ws2, &F.own, s, true, LONG_MS);
	ck_assert_uint_eq(spawns_of(s), 1);
	at(20);
	acquire(&wc, &gone, c, true, LONG_MS);		/* 90+50: blocked */
	at(30);
	acquire(&wd, &F.own, d, true, LONG_MS);	/* c waits for leases */
	ck_assert(c->is_pending && !d->is_pending);
	ck_assert_uint_eq(spawns_of(d), 1);	/* so d passes it */
	ck_assert_uint_eq(F.r.nstops, 0);

	at(1000);
	na = F.r.nanswers;
	pool_owner_gone(F.p, F.now, &gone);
	inv();
	ck_assert_uint_eq(nanswers(&wc), 0);	/* dropped, not answered */
	ck_assert_uint_eq(nanswers(&ws1), 0);
	ck_assert(TAILQ_EMPTY(&gone.waiters));
	ck_assert(TAILQ_EMPTY(&gone.leases));
	ck_assert(!c->is_pending);
	ck_assert_uint_eq(sb->leases, 0);
	ck_assert_int_eq(sb->last_used, T0 + 1000);
	ck_assert_uint_eq(spawns_of(d), 1);
	ck_assert_msg(F.r.nstops == 0, "stopped %s for a model whose client "
	    "left", rec_model_name(F.r.stops[0].model));
	ck_assert_uint_eq(F.r.nanswers, na);
	ck_assert_uint_eq(pool_waiting(F.p), 2);	/* ws2, wd */
	ck_assert_int_eq(release(lb), -1);

	at(1100);
	ready(s);
	ck_assert_uint_eq(nanswers(&ws1), 0);
	expect_ok(&ws2, s, "the other client's waiter");
	ck_assert_uint_eq(s->server->leases, 1);
	fx_done();
}
END_TEST

/* --- 18. EVICT --- */

START_TEST(test_evict)
{
	struct pool_model	*a, *b, *c, *d;
	struct pool_waiter	 e0, e1, e2, e3, e4, e5, e6, wc;
	struct pool_server	*sa, *sb, *sc;
	int64_t			 la;

	fx_init(NULL);
	a = model("a", 10 * G, 0);
	b = model("b", 10 * G, 0);
	c = model("c", 10 * G, 0);
	d = model("d", 10 * G, 0);

	evict(&e1, &F.own, a, false);
	expect_err(&e1, PROTO_E_NOT_FOUND, "evict of a model not running");
	evict(&e0, &F.own, a, true);
	expect_err(&e0, PROTO_E_NOT_FOUND, "forced evict, not running");

	at(0);
	la = warm(a, &F.own, true);
	sa = a->server;
	at(10);
	evict(&e2, &F.own, a, false);
	expect_err(&e2, PROTO_E_BUSY, "evict of a leased server");
	ck_assert_uint_eq(F.r.nstops, 0);

	at(20);
	evict(&e3, &F.own, a, true);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(F.r.stops[0].srv, sa);
	ck_assert_int_eq(sa->stop_reason, POOL_STOP_ADMIN);
	ck_assert_uint_eq(nanswers(&e3), 0);	/* only at the reap */
	ck_assert_uint_eq(F.p->counters.admin_stops, 1);
	/* A second EVICT of the stopping server: answered at the reap. */
	evict(&e4, &F.own2, a, false);
	ck_assert_uint_eq(nanswers(&e4), 0);
	ck_assert_uint_eq(stops_of(a), 1);
	at(30);
	reap(sa, "killed by signal 15");
	expect_err(&e3, PROTO_OK, "forced evict");
	expect_err(&e4, PROTO_OK, "evict of a stopping server");
	ck_assert_int_eq(release(la), 0);	/* the lease outlives it */
	ck_assert_uint_eq(F.p->counters.crashes, 0);

	/* An idle one, no force needed. */
	at(40);
	warm(b, &F.own, false);
	sb = b->server;
	evict(&e5, &F.own, b, false);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_eq(F.r.stops[1].srv, sb);
	ck_assert_int_eq(sb->stop_reason, POOL_STOP_ADMIN);
	ck_assert_uint_eq(nanswers(&e5), 0);
	reap(sb, "exited");
	expect_err(&e5, PROTO_OK, "evict of an idle server");

	/* A starting one: its waiters get start_failed. */
	at(50);
	acquire(&wc, &F.own, c, true, LONG_MS);
	sc = c->server;
	evict(&e6, &F.own, c, false);
	ck_assert_uint_eq(F.r.nstops, 3);
	ck_assert_ptr_eq(F.r.stops[2].srv, sc);
	ck_assert_uint_eq(nanswers(&e6), 0);
	at(60);
	reap(sc, "killed by signal 15");
	expect_err(&wc, PROTO_E_START_FAILED, "acquire of an evicted start");
	expect_err(&e6, PROTO_OK, "evict of a starting server");
	ck_assert_uint_eq(F.p->used, 0);
	ck_assert_uint_eq(F.p->counters.admin_stops, 3);
	(void)d;
	/* counters.busy: "waits that ran out of time in the queue" */
	ck_assert_msg(F.p->counters.busy == 0, "counters.busy %llu after an "
	    "EVICT refusal", (unsigned long long)F.p->counters.busy);
	fx_done();
}
END_TEST

/* --- 19. ports --- */

START_TEST(test_ports_stopping)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*a, *b, *c, *d;
	struct pool_waiter	 ea, wd;
	int			 pa, pb, pc;
	const struct rec_answer	*ans;

	l.port_min = 8000;
	l.port_max = 8002;
	fx_init(&l);
	a = model("a", 10 * G, 0);
	b = model("b", 10 * G, 0);
	c = model("c", 10 * G, 0);
	d = model("d", 10 * G, 0);
	at(0);
	warm(a, &F.own, false);
	warm(b, &F.own, false);
	pa = F.r.spawns[0].port;
	pb = F.r.spawns[1].port;
	ck_assert_int_ne(pa, pb);
	evict(&ea, &F.own, a, false);		/* a stopping, port held */
	at(10);
	warm(c, &F.own, false);
	pc = F.r.spawns[2].port;
	ck_assert_msg(pc != pa && pc != pb, "c got port %d (a %d, b %d)", pc,
	    pa, pb);
	/* d: no port until a is reaped; never a's port while it lives. */
	at(20);
	acquire(&wd, &F.own, d, true, LONG_MS);
	if (nanswers(&wd) == 1) {
		ans = answer_of(&wd, "no port");
		ck_assert_int_eq(ans->err, PROTO_E_START_FAILED);
		ck_assert(ans->has_message && ans->message[0] != '\0');
		ck_assert_uint_eq(spawns_of(d), 0);
		at(30);
		reap(F.r.stops[0].srv, "exited");
		at(30 + POOL_BACKOFF_MIN_MS);	/* pool.c backs off here */
		acquire(&wd, &F.own, d, true, LONG_MS);
	} else {
		at(30);
		reap(F.r.stops[0].srv, "exited");
	}
	ck_assert_uint_eq(spawns_of(d), 1);
	ck_assert_int_eq(F.r.spawns[F.r.nspawns - 1].port, pa);
	fx_done();
}
END_TEST

START_TEST(test_ports_taken)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*a, *b, *c;
	struct pool_waiter	 wa, wb, wc;
	const struct rec_answer	*ans;

	l.port_min = 8000;
	l.port_max = 8003;
	fx_init(&l);
	F.r.taken[8000] = F.r.taken[8002] = 1;
	a = model("a", 10 * G, 0);
	b = model("b", 10 * G, 0);
	c = model("c", 10 * G, 0);
	acquire(&wa, &F.own, a, true, LONG_MS);
	acquire(&wb, &F.own, b, true, LONG_MS);
	ck_assert_uint_eq(F.r.nspawns, 2);
	ck_assert_msg((F.r.spawns[0].port == 8001 &&
	    F.r.spawns[1].port == 8003) || (F.r.spawns[0].port == 8003 &&
	    F.r.spawns[1].port == 8001), "ports %d, %d", F.r.spawns[0].port,
	    F.r.spawns[1].port);
	acquire(&wc, &F.own, c, true, LONG_MS);
	ans = answer_of(&wc, "no free port");
	ck_assert_int_eq(ans->err, PROTO_E_START_FAILED);
	ck_assert(ans->has_message && ans->message[0] != '\0');
	ck_assert_uint_eq(F.r.nspawns, 2);
	ck_assert_uint_eq(F.p->used, 20 * G);
	ck_assert_uint_eq(F.p->nservers, 2);
	ck_assert(!c->is_pending);
	fx_done();
}
END_TEST

/* --- 20. shutdown --- */

START_TEST(test_shutdown)
{
	struct pool_model	*a, *b, *c, *d, *e;
	struct pool_waiter	 wc, we, ed, wn, en;
	struct pool_server	*sa, *sb, *sc, *sd;
	struct pool_server	*all[4];
	size_t			 i, j;

	fx_init(NULL);
	a = model("a", 30 * G, 0);
	b = model("b", 20 * G, 0);
	c = model("c", 20 * G, 0);
	d = model("d", 20 * G, 0);
	e = model("e", 80 * G, 0);
	at(0);
	warm(a, &F.own, true);
	warm(b, &F.own, false);
	warm(d, &F.own, false);
	sa = a->server;
	sb = b->server;
	sd = d->server;
	evict(&ed, &F.own, d, false);		/* d stopping */
	ck_assert_uint_eq(F.r.nstops, 1);
	acquire(&wc, &F.own, c, true, LONG_MS);	/* c starting */
	sc = c->server;
	ck_assert_ptr_nonnull(sc);
	acquire(&we, &F.own2, e, true, LONG_MS);	/* e queued */
	ck_assert(e->is_pending);
	ck_assert_uint_eq(F.r.nstops, 1);

	at(100);
	F.r.allow_leased_stop = true;
	pool_shutdown(F.p, F.now);
	F.r.allow_leased_stop = false;
	inv();
	ck_assert(F.p->shutting_down);
	expect_err(&wc, PROTO_E_SHUTTING_DOWN, "starting waiter");
	expect_err(&we, PROTO_E_SHUTTING_DOWN, "queued waiter");
	ck_assert(!e->is_pending);
	ck_assert_uint_eq(pool_waiting(F.p), 0);
	ck_assert_uint_eq(F.r.nstops, 4);	/* a, b, c; d not again */
	all[0] = sa;
	all[1] = sb;
	all[2] = sc;
	all[3] = sd;
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(all[i]->state, POOL_STOPPING);
		for (j = 0; j < F.r.nstops; j++)
			if (F.r.stops[j].srv == all[i])
				break;
		ck_assert_msg(j < F.r.nstops, "server %zu not stopped", i);
	}
	ck_assert_int_eq(sa->stop_reason, POOL_STOP_SHUTDOWN);
	ck_assert_int_eq(sb->stop_reason, POOL_STOP_SHUTDOWN);
	ck_assert_int_eq(sc->stop_reason, POOL_STOP_SHUTDOWN);

	acquire(&wn, &F.own, b, true, LONG_MS);
	expect_err(&wn, PROTO_E_SHUTTING_DOWN, "acquire after shutdown");
	evict(&en, &F.own, b, false);

	at(200);
	for (i = 0; i < 4; i++)
		reap(all[i], "exited");
	ck_assert_uint_eq(F.p->used, 0);
	ck_assert_uint_eq(F.p->nservers, 0);
	ck_assert_uint_eq(F.r.nspawns, 4);	/* nothing started */
	ck_assert_uint_eq(nanswers(&en), 1);	/* once, whatever it says */
	ck_assert_uint_eq(nanswers(&ed), 1);
	ck_assert_msg(answer_of(&ed, "evict")->err == PROTO_OK ||
	    answer_of(&ed, "evict")->err == PROTO_E_SHUTTING_DOWN,
	    "evict answered %s", errname(answer_of(&ed, "evict")->err));
	ck_assert_int_eq(deadline(), -1);
	fx_done();
}
END_TEST

/* --- 21. max_waiters --- */

START_TEST(test_max_waiters)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*a, *b;
	struct pool_waiter	 w[5];

	l.max_waiters = 3;
	fx_init(&l);
	a = model("a", 10 * G, 0);
	b = model("b", 10 * G, 0);
	acquire(&w[0], &F.own, a, true, LONG_MS);
	acquire(&w[1], &F.own, a, true, LONG_MS);
	acquire(&w[2], &F.own, a, true, LONG_MS);
	ck_assert_uint_eq(pool_waiting(F.p), 3);
	ck_assert_uint_eq(F.r.nanswers, 0);
	acquire(&w[3], &F.own, a, true, LONG_MS);
	expect_err(&w[3], PROTO_E_BUSY, "4th waiter");
	acquire(&w[4], &F.own, b, true, LONG_MS);
	expect_err(&w[4], PROTO_E_BUSY, "5th waiter, other model");
	ck_assert_uint_eq(spawns_of(b), 0);
	ck_assert_uint_eq(pool_waiting(F.p), 3);
	at(100);
	ready(a);
	ck_assert_uint_eq(pool_waiting(F.p), 0);
	acquire(&w[4], &F.own, b, true, LONG_MS);
	ck_assert_uint_eq(spawns_of(b), 1);
	/* counters.busy: "waits that ran out of time in the queue" */
	ck_assert_msg(F.p->counters.busy == 0, "counters.busy %llu after "
	    "max_waiters refusals", (unsigned long long)F.p->counters.busy);
	fx_done();
}
END_TEST

/* --- the catalog --- */

START_TEST(test_catalog)
{
	char			 name[16] = "copied";
	struct pool_model	*m;

	fx_init(NULL);
	m = pool_model_add(F.p, name, 7 * G, 1234);
	ck_assert_ptr_nonnull(m);
	name[0] = 'X';
	ck_assert_str_eq(m->name, "copied");
	ck_assert_ptr_eq(pool_model_find(F.p, "copied"), m);
	ck_assert_ptr_null(pool_model_find(F.p, "Xopied"));
	ck_assert_int_eq(m->idle_timeout, 1234);
	ck_assert_ptr_null(m->server);
	ck_assert(!m->is_pending);
	ck_assert_str_ne(pool_state_name(POOL_READY),
	    pool_state_name(POOL_STOPPING));
	ck_assert_str_ne(pool_stop_reason_name(POOL_STOP_LRU),
	    pool_stop_reason_name(POOL_STOP_IDLE));
	fx_done();
}
END_TEST

START_TEST(test_format_size)
{
	char	 buf[32];

	ck_assert_str_eq(pool_format_size(18 * G, buf, sizeof(buf)),
	    "18.0 GiB");
	ck_assert_str_eq(pool_format_size(512ULL << 20, buf, sizeof(buf)),
	    "512.0 MiB");
	ck_assert_str_eq(pool_format_size(900, buf, sizeof(buf)), "900 B");
}
END_TEST

/* --- 22. the property test --- */

#define P_OWNERS	5
#define P_MODELS	40
#define P_STEPS		2000
#define P_HOT		12

enum { PW_ACTIVE = 1, PW_ANSWERED, PW_DROPPED };

struct pw {
	struct pool_waiter	 w;		/* first: cast back */
	size_t			 idx;
	int			 state;
	int			 owner;
	struct pool_model	*m;
	enum pool_wait_kind	 kind;
	bool			 hold, force;
	unsigned		 failures;	/* model's, at an EVICT */
	pool_ms			 since, deadline;
	unsigned long		 call;
};

struct plz {
	int64_t			 id;
	int			 owner;
	const struct pool_server *srv;
	bool			 srv_live;
};

enum pop { OP_OTHER, OP_ACQUIRE, OP_READY, OP_EXITED, OP_CHECKED };

struct prop {
	uint64_t		 rng;
	struct pool_owner	 owners[P_OWNERS];
	struct pw		**w;
	size_t			 nw, capw;
	struct plz		*lz;
	size_t			 nlz, caplz;
	int64_t			*all;		/* every lease handed out */
	size_t			 nall, capall;
	int64_t			*dead;		/* released or gone */
	size_t			 ndead, capdead;
	unsigned long		 call;
	int			 gone_owner;
	enum pop		 op;
	bool			 free_answered;
	unsigned long		 stats[PROTO_E__COUNT + 2];
};

static struct prop	 P;

static uint64_t
prnd(unsigned n)
{
	return rec_rand(&P.rng) % n;
}

static void
p_answer(struct rec *r, struct pool_waiter *w, const struct pool_answer *a)
{
	struct pw	*x = (struct pw *)(void *)w;
	pool_ms		 now = F.now;
	size_t		 i;

	ck_assert_msg(x->state == PW_ACTIVE, "waiter #%zu answered again "
	    "(state %d, err %s)", x->idx, x->state, errname(a->err));
	ck_assert_msg(x->owner != P.gone_owner, "waiter #%zu of a gone "
	    "client answered %s", x->idx, errname(a->err));
	x->state = PW_ANSWERED;
	if ((unsigned)a->err < PROTO_E__COUNT)
		P.stats[a->err]++;
	if (x->kind == POOL_WAIT_ACQUIRE) {
		if (x->m->mem > F.lim.budget)
			ck_assert_msg(a->err == PROTO_E_TOO_LARGE,
			    "%s larger than the budget answered %s",
			    x->m->name, errname(a->err));
		switch (a->err) {
		case PROTO_OK:
			ck_assert_msg(a->server != NULL &&
			    a->server->model == x->m &&
			    a->server->state == POOL_READY,
			    "acquire #%zu of %s: bad server", x->idx,
			    x->m->name);
			ck_assert_msg((a->lease > 0) == x->hold, "acquire "
			    "#%zu hold %d lease %lld", x->idx, x->hold,
			    (long long)a->lease);
			if (x->call == P.call) {
				ck_assert_msg(P.op == OP_ACQUIRE && !a->cold &&
				    a->wait_ms == 0, "hot acquire #%zu: cold "
				    "%d wait %lld", x->idx, a->cold,
				    (long long)a->wait_ms);
			} else if (P.op == OP_CHECKED) {
				/* A hit that waited for a health check. */
				ck_assert_msg(!a->cold && a->wait_ms ==
				    now - x->since, "checked acquire #%zu: cold "
				    "%d wait %lld", x->idx, a->cold,
				    (long long)a->wait_ms);
			} else {
				ck_assert_msg(P.op == OP_READY, "acquire #%zu "
				    "served outside pool_ready", x->idx);
				ck_assert_msg(a->cold && a->wait_ms ==
				    now - x->since, "cold acquire #%zu: cold "
				    "%d wait %lld, expected %lld", x->idx,
				    a->cold, (long long)a->wait_ms,
				    (long long)(now - x->since));
			}
			if (x->hold) {
				for (i = 0; i < P.nall; i++)
					ck_assert_msg(P.all[i] != a->lease,
					    "lease %lld handed out twice",
					    (long long)a->lease);
				REC_PUSH(P.all, P.nall, P.capall);
				P.all[P.nall - 1] = a->lease;
				REC_PUSH(P.lz, P.nlz, P.caplz);
				P.lz[P.nlz - 1].id = a->lease;
				P.lz[P.nlz - 1].owner = x->owner;
				P.lz[P.nlz - 1].srv = a->server;
				P.lz[P.nlz - 1].srv_live = true;
			}
			break;
		case PROTO_E_BUSY:
			ck_assert_msg(x->call == P.call || now >= x->deadline,
			    "acquire #%zu busy at %lld before its deadline "
			    "%lld", x->idx, (long long)now,
			    (long long)x->deadline);
			break;
		case PROTO_E_TIMEOUT:
			ck_assert_msg(now >= x->deadline, "acquire #%zu "
			    "timeout at %lld before its deadline %lld",
			    x->idx, (long long)now, (long long)x->deadline);
			break;
		case PROTO_E_TOO_LARGE:
			ck_assert_msg(x->m->mem > F.lim.budget &&
			    x->call == P.call, "%s: too_large", x->m->name);
			break;
		case PROTO_E_START_FAILED:
			ck_assert_msg(a->message != NULL &&
			    a->message[0] != '\0', "start_failed, no message");
			break;
		default:
			ck_abort_msg("acquire #%zu answered %s", x->idx,
			    errname(a->err));
		}
	} else {
		switch (a->err) {
		case PROTO_OK:
			/*
			 * pool.c extension, not in pool.h: an EVICT of a
			 * model backing off clears the back-off, ok at once.
			 */
			ck_assert_msg(P.op == OP_EXITED || (x->call == P.call &&
			    x->failures > 0 && x->m->server == NULL),
			    "evict #%zu of %s ok before a reap", x->idx,
			    x->m->name);
			break;
		case PROTO_E_NOT_FOUND:
		case PROTO_E_BUSY:
			ck_assert_msg(x->call == P.call, "evict #%zu %s "
			    "later", x->idx, errname(a->err));
			if (a->err == PROTO_E_BUSY)
				ck_assert(!x->force ||
				    x->m->priority == POOL_PRIO_PINNED);
			break;
		default:
			ck_abort_msg("evict #%zu answered %s", x->idx,
			    errname(a->err));
		}
	}
	if (P.free_answered) {
		P.w[x->idx] = NULL;
		free(x);
	}
}

/* Per-property invariants: leases per server as the test counts them. */
static void
p_inv(void *unused)
{
	struct pool_server	*s;
	size_t			 i, acq = 0, ev = 0;
	unsigned		 n;

	TAILQ_FOREACH(s, &F.p->servers, link) {
		n = 0;
		for (i = 0; i < P.nlz; i++)
			if (P.lz[i].srv_live && P.lz[i].srv == s)
				n++;
		ck_assert_msg(s->leases == n, "%s has %u leases, test holds "
		    "%u", s->model->name, s->leases, n);
	}
	for (i = 0; i < P.nw; i++) {
		if (P.w[i] == NULL || P.w[i]->state != PW_ACTIVE)
			continue;
		if (P.w[i]->kind == POOL_WAIT_ACQUIRE)
			acq++;
		else
			ev++;
	}
	if (ev == 0)
		ck_assert_msg(pool_waiting(F.p) == acq, "pool_waiting %u, "
		    "test counts %zu", pool_waiting(F.p), acq);
}

/* After the clock moved: nothing is overdue. */
static void
p_nothing_overdue(void)
{
	struct pool_server	*s;
	size_t			 i;
	struct pw		*x;

	for (i = 0; i < P.nw; i++) {
		x = P.w[i];
		if (x == NULL || x->state != PW_ACTIVE ||
		    x->kind != POOL_WAIT_ACQUIRE)
			continue;
		ck_assert_msg(x->deadline > F.now, "acquire #%zu of %s still "
		    "waiting at %lld, deadline %lld", i, x->m->name,
		    (long long)F.now, (long long)x->deadline);
	}
	TAILQ_FOREACH(s, &F.p->servers, link) {
		if (s->state == POOL_STARTING)
			ck_assert_msg(s->spawned_at + F.lim.start_timeout >
			    F.now, "%s STARTING past start_timeout",
			    s->model->name);
		if (s->state == POOL_READY && s->leases == 0 &&
		    TAILQ_EMPTY(&s->waiters) &&
		    s->model->priority != POOL_PRIO_PINNED &&
		    s->model->idle_timeout > 0 && !F.p->shutting_down)
			ck_assert_msg(s->last_used + s->model->idle_timeout >
			    F.now, "%s idle since %lld, timeout %lld, now "
			    "%lld", s->model->name, (long long)s->last_used,
			    (long long)s->model->idle_timeout,
			    (long long)F.now);
	}
}

/* The daemon's timer: tick at every deadline up to "to". */
static void
p_advance(pool_ms to)
{
	pool_ms		 d, last = -1;
	unsigned	 same = 0;

	for (;;) {
		d = pool_next_deadline(F.p, F.now);
		if (d < 0 || d > to)
			break;
		if (d > F.now)
			F.now = d;
		if (d == last)
			ck_assert_msg(++same < 50, "pool_next_deadline stuck "
			    "at %lld", (long long)d);
		else
			same = 0;
		last = d;
		P.call++;
		P.op = OP_OTHER;
		pool_tick(F.p, F.now);
		inv();
		for (int o = 0; o < P_OWNERS; o++)
			owner_counts(&P.owners[o]);
	}
	if (to > F.now)
		F.now = to;
	p_nothing_overdue();
}

static struct pw *
p_new_waiter(enum pool_wait_kind kind, int owner, struct pool_model *m)
{
	struct pw	*x;

	x = calloc(1, sizeof(*x));
	ck_assert_ptr_nonnull(x);
	REC_PUSH(P.w, P.nw, P.capw);
	x->idx = P.nw - 1;
	P.w[x->idx] = x;
	x->state = PW_ACTIVE;
	x->kind = kind;
	x->owner = owner;
	x->m = m;
	x->since = F.now;
	x->call = ++P.call;
	return x;
}

static struct pool_model *
p_model(void)
{
	if (prnd(10) < 7)
		return F.models[prnd(P_HOT)];
	return F.models[prnd(P_MODELS)];
}

static void
p_acquire(void)
{
	int		 o = (int)prnd(P_OWNERS);
	struct pw	*x = p_new_waiter(POOL_WAIT_ACQUIRE, o, p_model());
	pool_ms		 timeout = prnd(10) == 0 ? 0 : (pool_ms)prnd(8000);

	x->hold = prnd(10) < 7;
	x->deadline = F.now + timeout;
	P.op = OP_ACQUIRE;
	pool_acquire(F.p, F.now, &x->w, &P.owners[o], x->m, x->hold,
	    x->deadline);
	inv();
}

static void
p_evict(void)
{
	int		 o = (int)prnd(P_OWNERS);
	struct pw	*x = p_new_waiter(POOL_WAIT_EVICT, o, p_model());

	x->force = prnd(3) == 0;
	x->failures = x->m->failures;
	P.op = OP_OTHER;
	F.r.allow_leased_model = x->force ? x->m : NULL;
	pool_evict(F.p, F.now, &x->w, &P.owners[o], x->m, x->force);
	F.r.allow_leased_model = NULL;
	inv();
}

static void
p_release(void)
{
	size_t	 i;
	int64_t	 id;
	int	 rc, o;

	if (P.nlz == 0 || prnd(20) == 0) {
		if (P.ndead > 0 && prnd(2) == 0)
			id = P.dead[prnd((unsigned)P.ndead)];
		else
			id = -(int64_t)prnd(1000) - 1;
		P.call++;
		P.op = OP_OTHER;
		rc = pool_release(F.p, F.now, &P.owners[0], id);
		inv();
		ck_assert_msg(rc == -1, "release of dead lease %lld: %d",
		    (long long)id, rc);
		return;
	}
	i = prnd((unsigned)P.nlz);
	id = P.lz[i].id;
	o = P.lz[i].owner;
	P.lz[i] = P.lz[--P.nlz];
	REC_PUSH(P.dead, P.ndead, P.capdead);
	P.dead[P.ndead - 1] = id;
	P.call++;
	P.op = OP_OTHER;
	rc = pool_release(F.p, F.now, &P.owners[o], id);
	inv();
	ck_assert_msg(rc == 0, "release of lease %lld: %d", (long long)id, rc);
}

/* A random server in one of the states (mask of 1 << state), or NULL. */
static struct pool_server *
p_server(unsigned mask)
{
	struct pool_server	*s, *pick = NULL;
	unsigned		 n = 0;

	TAILQ_FOREACH(s, &F.p->servers, link)
		if (mask & (1u << s->state))
			n++;
	if (n == 0)
		return NULL;
	n = (unsigned)prnd(n);
	TAILQ_FOREACH(s, &F.p->servers, link)
		if ((mask & (1u << s->state)) && n-- == 0)
			pick = s;
	return pick;
}

static void
p_ready(void)
{
	struct pool_server	*s = p_server(1u << POOL_STARTING);

	if (s == NULL)
		return;
	P.call++;
	P.op = OP_READY;
	pool_ready(F.p, F.now, s);
	inv();
}

static void
p_exited(struct pool_server *s, const char *why)
{
	size_t	 i;

	for (i = 0; i < P.nlz; i++)
		if (P.lz[i].srv == s)
			P.lz[i].srv_live = false;
	rec_forget(&F.r, s);
	P.call++;
	P.op = OP_EXITED;
	pool_exited(F.p, F.now, s, why);
	inv();
}

static void
p_reap(void)
{
	struct pool_server	*s = p_server(1u << POOL_STOPPING);

	if (s != NULL)
		p_exited(s, "exited with status 0");
}

/* A health check that is out ends, healthy or not (a stopped server can
 * be leased: its leases are lost as in a crash). */
static void
p_checked(bool healthy)
{
	struct pool_server	*s, *pick = NULL;

	TAILQ_FOREACH(s, &F.p->servers, link)
		if (s->checking && (pick == NULL || prnd(2) == 0))
			pick = s;
	if (pick == NULL)
		return;
	P.call++;
	P.op = OP_CHECKED;
	F.r.allow_leased_stop = true;
	pool_checked(F.p, F.now, pick, healthy, healthy ? "200" : "503");
	F.r.allow_leased_stop = false;
	inv();
}

static void
p_crash(void)
{
	struct pool_server	*s;

	s = p_server((1u << POOL_STARTING) | (1u << POOL_READY));
	if (s != NULL)
		p_exited(s, "killed by signal 11");
}

static void
p_owner_gone(void)
{
	int	 o = (int)prnd(P_OWNERS);
	size_t	 i;

	P.call++;
	P.op = OP_OTHER;
	P.gone_owner = o;
	pool_owner_gone(F.p, F.now, &P.owners[o]);
	P.gone_owner = -1;
	ck_assert(TAILQ_EMPTY(&P.owners[o].waiters));
	ck_assert(TAILQ_EMPTY(&P.owners[o].leases));
	for (i = 0; i < P.nw; i++)
		if (P.w[i] != NULL && P.w[i]->state == PW_ACTIVE &&
		    P.w[i]->owner == o) {
			P.w[i]->state = PW_DROPPED;
			if (P.free_answered) {
				free(P.w[i]);
				P.w[i] = NULL;
			}
		}
	for (i = 0; i < P.nlz; )
		if (P.lz[i].owner == o) {
			REC_PUSH(P.dead, P.ndead, P.capdead);
			P.dead[P.ndead - 1] = P.lz[i].id;
			P.lz[i] = P.lz[--P.nlz];
		} else
			i++;
	pool_owner_init(&P.owners[o]);
	inv();
}

/* A model's class changes: pinned now and then (up to the budget). */
static void
p_priority(void)
{
	struct pool_model	*m = p_model();
	enum pool_priority	 prio = (enum pool_priority)prnd(POOL_PRIO__COUNT);
	char			 err[512];
	int			 rc;

	P.call++;
	P.op = OP_OTHER;
	rc = pool_set_priority(F.p, F.now, m, prio, err, sizeof(err));
	ck_assert_msg(rc == 0 || (prio == POOL_PRIO_PINNED &&
	    strstr(err, "more than the budget") != NULL), "priority %s: %s",
	    m->name, err);
	inv();
}

/* A preload: started only into free room with nothing waiting. */
static void
p_preload(void)
{
	struct pool_model	*m = p_model();
	bool			 had = m->server != NULL;
	bool			 fit = fits_now(m) && TAILQ_EMPTY(&F.p->pending);
	char			 why[512];
	int			 rc;

	P.call++;
	P.op = OP_OTHER;
	rc = pool_preload(F.p, F.now, m, why, sizeof(why));
	inv();
	if (rc == 0 && !had) {
		ck_assert_msg(fit, "%s preloaded without room", m->name);
		ck_assert(m->server != NULL && m->server->preloaded);
	}
	if (rc == 0)
		ck_assert_ptr_nonnull(m->server);
}

static unsigned
p_active(void)
{
	size_t		 i;
	unsigned	 n = 0;

	for (i = 0; i < P.nw; i++)
		if (P.w[i] != NULL && P.w[i]->state == PW_ACTIVE)
			n++;
	return n;
}

START_TEST(test_property)
{
	struct pool_limits	 l = lim_default();
	static const uint64_t	 sizes[] = { 5, 10, 18, 25, 40, 60 };
	struct pool_server	*s;
	char			 name[32];
	unsigned		 step, r, k;
	uint64_t		 mem;
	pool_ms			 d;
	size_t			 i;
	int			 o;

	l.budget = 100 * G;
	l.max_servers = 6;
	l.port_min = 9000;
	l.port_max = 9007;
	l.start_timeout = 10000;
	l.max_waiters = 24;
	l.health_interval = _i % 3 == 0 ? 0 : 1500;
	if (getenv("POOL_TEST_SEED") != NULL &&
	    atoi(getenv("POOL_TEST_SEED")) != _i)
		return;
	fx_init(&l);
	memset(&P, 0, sizeof(P));
	P.rng = UINT64_C(0x9E3779B97F4A7C15) * (uint64_t)(_i + 1);
	P.gone_owner = -1;
	P.free_answered = _i % 2 == 1;
	for (o = 0; o < P_OWNERS; o++)
		pool_owner_init(&P.owners[o]);
	F.r.hook = p_answer;
	F.r.rng = &P.rng;
	F.r.deny_permille = 20;
	snprintf(F.r.fail_msg, sizeof(F.r.fail_msg), "exec: simulated "
	    "failure");
	F.extra_inv = p_inv;
	for (k = 0; k < P_MODELS; k++) {
		snprintf(name, sizeof(name), "m%02u", k);
		mem = sizes[(k * 5 + 3) % 6] * G;
		if (k == 37)
			mem = 100 * G;		/* exactly the budget */
		if (k >= 38)
			mem = 120 * G;		/* too large */
		model(name, mem, k % 4 == 0 ? 0 :
		    2000 + (pool_ms)((k * 7919) % 20000));
	}

	for (step = 0; step < P_STEPS; step++) {
		p_advance(F.now + (pool_ms)prnd(40));
		if (_i % 4 != 3) {	/* a quarter of the seeds without */
			if (prnd(100) < 2)
				p_priority();
			if (prnd(100) < 3)
				p_preload();
		}
		r = (unsigned)prnd(1000);
		if (r < 300)
			p_acquire();
		else if (r < 420)
			p_release();
		else if (r < 570)
			p_ready();
		else if (r < 690)
			p_reap();
		else if (r < 705)
			p_crash();
		else if (r < 850)
			p_advance(F.now + (pool_ms)prnd(3000));
		else if (r < 900) {
			d = pool_next_deadline(F.p, F.now);
			if (d >= 0)
				p_advance(d > F.now ? d : F.now);
		} else if (r < 925)
			p_owner_gone();
		else if (r < 955)
			p_evict();
		else if (r < 985)
			p_checked(prnd(3) != 0);
		else if (r < 995)
			F.r.fail_spawns = 1;
		else
			F.r.again_spawns = 1;
	}

	/* Drain: every waiter gets its one answer. */
	F.r.fail_spawns = 0;
	F.r.again_spawns = 0;
	F.r.deny_permille = 0;
	while (P.nlz > 0) {
		P.call++;
		P.op = OP_OTHER;
		int64_t	 id = P.lz[0].id;

		o = P.lz[0].owner;
		P.lz[0] = P.lz[--P.nlz];
		ck_assert_int_eq(pool_release(F.p, F.now, &P.owners[o], id),
		    0);
		inv();
	}
	for (k = 0; k < 50; k++) {
		while ((s = p_server(1u << POOL_STARTING)) != NULL) {
			P.call++;
			P.op = OP_READY;
			pool_ready(F.p, F.now, s);
			inv();
		}
		while ((s = p_server(1u << POOL_STOPPING)) != NULL)
			p_exited(s, "exited");
		for (i = 0; i < F.nmodels; i++)
			if (F.models[i]->server != NULL &&
			    F.models[i]->server->checking)
				p_checked(true);
		if (p_active() == 0 && TAILQ_EMPTY(&F.p->pending))
			break;
		p_advance(F.now + 10000);
	}
	ck_assert_msg(p_active() == 0, "%u waiters never answered",
	    p_active());
	ck_assert(TAILQ_EMPTY(&F.p->pending));
	while (P.nlz > 0) {
		int64_t	 id = P.lz[0].id;

		o = P.lz[0].owner;
		P.lz[0] = P.lz[--P.nlz];
		ck_assert_int_eq(pool_release(F.p, F.now, &P.owners[o], id),
		    0);
		inv();
	}

	F.r.allow_leased_stop = true;
	P.call++;
	P.op = OP_OTHER;
	pool_shutdown(F.p, F.now);
	inv();
	TAILQ_FOREACH(s, &F.p->servers, link)
		ck_assert_int_eq(s->state, POOL_STOPPING);
	while ((s = p_server(1u << POOL_STOPPING)) != NULL)
		p_exited(s, "exited");
	ck_assert_uint_eq(F.p->used, 0);
	ck_assert_uint_eq(F.p->nservers, 0);
	ck_assert_uint_eq(p_active(), 0);
	ck_assert_int_eq(pool_next_deadline(F.p, F.now), -1);
	if (getenv("POOL_TEST_STATS") != NULL) {
		fprintf(stderr, "seed %d: spawns %zu (preloads %llu) stops "
		    "%zu answers %zu leases %zu events %zu:", _i, F.r.nspawns,
		    (unsigned long long)F.p->counters.preloads, F.r.nstops,
		    F.r.nanswers, P.nall, F.r.nevents);
		for (i = 0; i < PROTO_E__COUNT; i++)
			if (P.stats[i] != 0)
				fprintf(stderr, " %s %lu", errname(i),
				    P.stats[i]);
		fprintf(stderr, "\n");
	}

	F.extra_inv = NULL;
	F.r.hook = NULL;
	fx_done();
	for (i = 0; i < P.nw; i++)
		free(P.w[i]);
	free(P.w);
	free(P.lz);
	free(P.all);
	free(P.dead);
}
END_TEST

/* --- measured memory, the system's memory, the failed state --- */

/*
 * A leased server grows past its estimate: it is accounted what it
 * measures, and the LRU idle server is stopped to get back under the
 * budget; memory falls only at the reap.
 */
START_TEST(test_measured_growth)
{
	struct pool_model	*a, *b, *c;
	struct pool_server	*sc;

	fx_init(NULL);			/* budget 100 G */
	a = model("a", 30 * G, 0);
	b = model("b", 30 * G, 0);
	c = model("c", 30 * G, 0);
	at(0);
	warm(a, &F.own, false);
	at(10);
	warm(b, &F.own, false);
	at(20);
	warm(c, &F.own, true);
	sc = c->server;
	at(30);
	pool_measured(F.p, F.now, sc, 20 * G);	/* under the estimate */
	inv();
	ck_assert_uint_eq(sc->mem, 30 * G);
	ck_assert_uint_eq(F.p->used, 90 * G);
	ck_assert_uint_eq(F.r.nstops, 0);
	at(40);
	pool_measured(F.p, F.now, sc, 50 * G);	/* over: 110 G */
	inv();
	ck_assert_uint_eq(sc->mem, 50 * G);
	ck_assert_uint_eq(sc->peak_rss, 50 * G);
	ck_assert_uint_eq(F.p->used, 110 * G);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(F.r.stops[0].model, a);	/* the LRU idle one */
	reap(F.r.stops[0].srv, "exited");
	ck_assert_uint_eq(F.p->used, 80 * G);
	fx_done();
}
END_TEST

/*
 * All leased: growth over the budget stops nothing (and is logged); the
 * first released while the pool is still over is stopped then.
 */
START_TEST(test_measured_all_leased)
{
	struct pool_model	*a, *b;
	int64_t			 lb;

	fx_init(NULL);
	a = model("a", 50 * G, 0);
	b = model("b", 40 * G, 0);
	at(0);
	warm(a, &F.own, true);
	lb = warm(b, &F.own, true);
	pool_measured(F.p, F.now, a->server, 70 * G);
	inv();
	ck_assert_uint_eq(F.p->used, 110 * G);
	ck_assert_uint_eq(F.r.nstops, 0);
	ck_assert_msg(strstr(F.r.lastlog, "over budget") != NULL,
	    "no log line about it: %s", F.r.lastlog);
	at(1000);
	ck_assert_int_eq(release(lb), 0);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(F.r.stops[0].model, b);
	ck_assert_uint_eq(b->counters.stops[POOL_STOP_BUDGET], 1);
	reap(F.r.stops[0].srv, "exited");
	ck_assert_uint_eq(F.p->used, 70 * G);
	fx_done();
}
END_TEST

/*
 * The system's available memory: a start must leave min_available to
 * others, counting what starting servers have not touched yet; an idle
 * server is stopped to make the room, and the start waits for its reap.
 */
START_TEST(test_system_available)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*x, *y, *z;
	struct pool_waiter	 wz;

	l.min_available = 2 * G;
	fx_init(&l);
	x = model("x", 10 * G, 0);
	y = model("y", 10 * G, 0);
	z = model("z", 10 * G, 0);
	F.r.avail = 100 * G;
	at(0);
	warm(x, &F.own, false);
	pool_measured(F.p, F.now, x->server, 10 * G);
	F.r.avail = 15 * G;		/* others took the rest */
	at(10);
	acquire(&wz, &F.own, y, false, LONG_MS);	/* 10 + 2 <= 15 */
	ck_assert_uint_eq(spawns_of(y), 1);
	at(20);
	acquire(&wz, &F.own, z, false, LONG_MS);	/* + y's 10 to come */
	ck_assert_uint_eq(spawns_of(z), 0);
	ck_assert_uint_eq(F.r.nstops, 1);		/* x frees its 10 */
	ck_assert_ptr_eq(F.r.stops[0].model, x);
	F.r.avail = 25 * G;
	at(30);
	reap(F.r.stops[0].srv, "exited");
	ck_assert_uint_eq(spawns_of(z), 1);
	fx_done();
}
END_TEST

/* Nothing idle to stop: the start waits, and busy comes at the deadline. */
START_TEST(test_system_waits)
{
	struct pool_model	*a;
	struct pool_waiter	 w;

	fx_init(NULL);
	a = model("a", 10 * G, 0);
	F.r.avail = 5 * G;
	at(0);
	acquire(&w, &F.own, a, true, 1000);
	ck_assert_uint_eq(spawns_of(a), 0);
	ck_assert_uint_eq(nanswers(&w), 0);
	at(1000);
	tick();
	expect_err(&w, PROTO_E_BUSY, "system memory wait");
	fx_done();
}
END_TEST

/*
 * max_failures failed starts in a row make the model failed for the
 * cooldown; EVICT clears it and the next ACQUIRE starts it.
 */
START_TEST(test_failed_state)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*m;
	struct pool_waiter	 ev;

	l.max_failures = 3;
	l.failed_cooldown = 600000;
	fx_init(&l);
	m = model("m", 10 * G, 0);
	fail_start(m, 0, "boom");
	fail_start(m, 1100, "boom");			/* after 1 s */
	fail_start(m, 1100 + 100 + 2000, "boom");	/* after 2 s */
	ck_assert_str_eq(pool_model_state(F.p, m, F.now), "failed");
	ck_assert_int_eq(m->retry_at, F.now + 600000);
	refused(m, 3300 + 60000, "boom");
	ck_assert_msg(strstr(F.r.answers[F.r.nanswers - 1].message,
	    "is failed") != NULL, "%s", F.r.answers[F.r.nanswers - 1].message);
	evict(&ev, &F.own2, m, false);
	ck_assert_int_eq(answer_of(&ev, "EVICT clears failed")->err, PROTO_OK);
	ck_assert_str_eq(pool_model_state(F.p, m, F.now), "stopped");
	ck_assert_uint_eq(m->failures, 0);
	fail_start(m, 3300 + 60001, "again");
	ck_assert_str_eq(pool_model_state(F.p, m, F.now), "backoff");
	fx_done();
}
END_TEST


/* --- health checks of ready servers (issue 9 item 9) --- */

static struct pool_limits
lim_watched(void)
{
	struct pool_limits	 l = lim_default();

	l.health_interval = 10000;
	return l;
}

/* Answers the check that is out on m's server. */
static void
checked(struct pool_model *m, bool healthy, const char *why)
{
	struct pool_server	*s = m->server;

	ck_assert_msg(s != NULL && s->checking, "no check out on %s",
	    m->name);
	ck_assert_ptr_eq(F.r.last_check, s);
	pool_checked(F.p, F.now, s, healthy, why);
	inv();
}

START_TEST(test_health_periodic)
{
	struct pool_limits	 l = lim_watched();
	struct pool_model	*m;
	struct pool_server	*s;
	struct pool_waiter	 w;
	int64_t			 lease;

	fx_init(&l);
	m = model("m", 10 * G, 0);
	at(0);
	lease = warm(m, &F.own, true);
	s = m->server;
	ck_assert_uint_eq(F.r.nchecks, 0);
	ck_assert_int_eq(deadline(), T0 + 10000);
	at(9999);
	tick();
	ck_assert_uint_eq(F.r.nchecks, 0);
	at(10000);
	tick();				/* leased servers are watched too */
	ck_assert_uint_eq(F.r.nchecks, 1);
	ck_assert(s->checking);
	tick();				/* one check out at a time */
	ck_assert_uint_eq(F.r.nchecks, 1);
	at(10005);
	checked(m, true, "200");
	ck_assert_int_eq(deadline(), T0 + 20005);

	at(20005);
	tick();
	checked(m, true, "200");
	/* Failed once: checked again after POOL_HEALTH_RETRY_MS. */
	at(30005);
	tick();
	at(31005);
	checked(m, false, "no answer within 2 s");
	ck_assert_uint_eq(F.r.nstops, 0);
	ck_assert_uint_eq(s->check_failures, 1);
	ck_assert_int_eq(deadline(), T0 + 31005 + POOL_HEALTH_RETRY_MS);
	/* A hot ACQUIRE of a suspect server waits for the next check. */
	acquire(&w, &F.own2, m, false, LONG_MS);
	ck_assert_uint_eq(nanswers(&w), 0);
	ck_assert_uint_eq(F.r.nchecks, 4);	/* asked at once */
	/* Second failure in a row: stopped, leases or not. */
	F.r.allow_leased_stop = true;
	at(31100);
	checked(m, false, "HTTP 503");
	F.r.allow_leased_stop = false;
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(F.r.stops[0].srv, s);
	ck_assert_int_eq(s->stop_reason, POOL_STOP_UNHEALTHY);
	ck_assert_str_eq(pool_stop_reason_name(s->stop_reason), "unhealthy");
	ck_assert_uint_eq(F.p->counters.unhealthy_stops, 1);
	ck_assert_uint_eq(m->counters.unhealthy_stops, 1);
	ck_assert_msg(strstr(F.r.lastlog, "start m") != NULL, "log: %s",
	    F.r.lastlog);
	ck_assert_uint_eq(m->failures, 0);	/* ready 31 s: not early */
	/* Its memory stays accounted until the reap; the waiting ACQUIRE
	 * gets a fresh server (the budget has room for both). */
	ck_assert_uint_eq(F.p->used, 20 * G);
	ck_assert_uint_eq(spawns_of(m), 2);
	ck_assert_ptr_ne(m->server, s);
	ck_assert_int_ne(m->server->port, s->port);
	at(31200);
	reap(s, "killed by signal 9");
	ck_assert_uint_eq(F.p->used, 10 * G);
	ready(m);
	ck_assert(expect_ok(&w, m, "after unhealthy")->cold);
	ck_assert_int_eq(release(lease), 0);	/* the dead server's lease */
	fx_done();
}
END_TEST

START_TEST(test_health_before_idle_handout)
{
	struct pool_limits	 l = lim_watched();
	struct pool_model	*m;
	struct pool_waiter	 w1, w2, w3, w4;
	const struct rec_answer	*a;

	fx_init(&l);
	m = model("m", 10 * G, 0);
	at(0);
	warm(m, &F.own, false);
	at(10000);
	acquire(&w1, &F.own, m, false, LONG_MS);	/* idle 10 s: hot */
	expect_ok(&w1, m, "idle exactly health_interval");
	ck_assert_uint_eq(F.r.nchecks, 0);
	/* The periodic check moved with the use?  No: it is periodic. */
	at(10000 + 10001);
	tick();
	ck_assert_uint_eq(F.r.nchecks, 1);
	checked(m, true, "200");
	/* Idle longer than health_interval: the ACQUIRE waits for a check. */
	at(20001 + 10001);
	acquire(&w2, &F.own, m, true, 5000);
	ck_assert_uint_eq(nanswers(&w2), 0);
	ck_assert_uint_eq(F.r.nchecks, 2);
	acquire(&w3, &F.own2, m, false, 5000);	/* joins the same check */
	ck_assert_uint_eq(F.r.nchecks, 2);
	ck_assert_uint_eq(pool_waiting(F.p), 2);
	ck_assert_uint_eq(F.r.nstops, 0);	/* idle, but waited for */
	at(30003);
	checked(m, true, "200");
	a = expect_ok(&w2, m, "after the check");
	ck_assert(!a->cold);
	ck_assert_int_eq(a->wait_ms, 1);
	ck_assert(a->lease > 0);
	expect_ok(&w3, m, "the second waiter");
	ck_assert_uint_eq(F.p->counters.hits, 3);
	/* Used just now: hot again, no check. */
	acquire(&w4, &F.own, m, false, 5000);
	expect_ok(&w4, m, "hot after the check");
	ck_assert_uint_eq(F.r.nchecks, 2);
	fx_done();
}
END_TEST

START_TEST(test_health_check_times_out_waiter)
{
	struct pool_limits	 l = lim_watched();
	struct pool_model	*m;
	struct pool_waiter	 w;
	const struct rec_answer	*a;

	fx_init(&l);
	m = model("m", 10 * G, 2000000);	/* idle stop far away */
	at(0);
	warm(m, &F.own, false);
	at(10000);
	tick();
	checked(m, true, "200");
	at(15001);
	acquire(&w, &F.own, m, false, 500);
	ck_assert_uint_eq(nanswers(&w), 0);
	ck_assert_int_eq(deadline(), T0 + 15501);
	at(15501);
	tick();
	a = answer_of(&w, "check too slow");
	ck_assert_int_eq(a->err, PROTO_E_TIMEOUT);
	ck_assert_msg(strstr(a->message, "health check") != NULL, "%s",
	    a->message);
	checked(m, true, "200 at last");	/* late: nobody to answer */
	ck_assert_uint_eq(nanswers(&w), 1);
	fx_done();
}
END_TEST

/* An unhealthy server soon after its ready is not the model's failure
 * (unlike a crash): the ACQUIRE that waited gets a fresh server. */
START_TEST(test_health_early_is_no_failure)
{
	struct pool_limits	 l = lim_watched();
	struct pool_model	*m;
	struct pool_waiter	 w;
	struct pool_server	*s;

	l.health_interval = 100;
	fx_init(&l);
	m = model("m", 10 * G, 0);
	at(0);
	warm(m, &F.own, false);
	s = m->server;
	at(101);
	acquire(&w, &F.own, m, false, LONG_MS);
	checked(m, false, "HTTP 503");
	at(101 + POOL_HEALTH_RETRY_MS);
	tick();
	checked(m, false, "HTTP 503");
	ck_assert_int_eq(s->stop_reason, POOL_STOP_UNHEALTHY);
	ck_assert_uint_eq(nanswers(&w), 0);
	ck_assert_uint_eq(m->failures, 0);
	ck_assert_uint_eq(spawns_of(m), 2);	/* at once: room for both */
	reap(s, "killed by signal 15");
	ready(m);
	ck_assert(expect_ok(&w, m, "fresh after unhealthy")->cold);
	fx_done();
}
END_TEST

/* --- crash soon after ready (issue 9 item 10) --- */

START_TEST(test_crash_early_backoff)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*m;
	struct pool_waiter	 w[5];
	pool_ms			 t = 0, delay;
	unsigned		 k;

	l.max_failures = 4;
	l.failed_cooldown = 600000;
	fx_init(&l);
	m = model("m", 10 * G, 0);
	for (k = 1; k <= 4; k++) {
		at(t);
		warm(m, &F.own, false);
		at(t + 60);
		reap(m->server, "exited with status 1");
		ck_assert_uint_eq(m->failures, k);
		ck_assert_uint_eq(F.p->counters.crashes, k);
		delay = k < 4 ? (pool_ms)POOL_BACKOFF_MIN_MS << (k - 1) :
		    600000;
		ck_assert_int_eq(m->retry_at, F.now + delay);
		ck_assert_str_eq(pool_model_state(F.p, m, F.now),
		    k < 4 ? "backoff" : "failed");
		at(t + 60 + delay - 1);
		acquire(&w[k], &F.own, m, false, LONG_MS);
		expect_err(&w[k], PROTO_E_START_FAILED, "in backoff");
		ck_assert_msg(strstr(answer_of(&w[k], "x")->message,
		    "after it was ready") != NULL, "%s",
		    answer_of(&w[k], "x")->message);
		t += 60 + delay;
	}
	ck_assert_uint_eq(spawns_of(m), 4);
	/* A crash POOL_CRASH_EARLY_MS after ready is no failure. */
	at(t);
	warm(m, &F.own, false);
	at(t + POOL_CRASH_EARLY_MS);
	reap(m->server, "exited with status 1");
	ck_assert_uint_eq(m->failures, 0);
	ck_assert_str_eq(pool_model_state(F.p, m, F.now), "stopped");
	fx_done();
}
END_TEST

/* --- poold short of its own resources (contract C1) --- */

START_TEST(test_spawn_again)
{
	struct pool_model	*m, *n;
	struct pool_waiter	 w1, w2, wn;
	pool_ms			 t;

	fx_init(NULL);
	m = model("m", 10 * G, 0);
	n = model("n", 10 * G, 0);
	at(0);
	F.r.again_spawns = 1;
	acquire(&w1, &F.own, m, true, 5000);
	ck_assert_uint_eq(spawns_of(m), 1);
	ck_assert_uint_eq(nanswers(&w1), 0);	/* still waiting */
	ck_assert(m->is_pending);
	ck_assert_ptr_null(m->server);
	ck_assert_uint_eq(m->failures, 0);
	ck_assert_int_eq(m->retry_at, 0);
	ck_assert_uint_eq(F.p->counters.start_failures, 0);
	ck_assert_uint_eq(F.p->counters.starts, 0);
	ck_assert_uint_eq(F.p->counters.resource_failures, 1);
	ck_assert_uint_eq(F.p->used, 0);
	ck_assert_msg(strstr(F.r.lastlog, "short of resources") != NULL,
	    "log: %s", F.r.lastlog);
	ck_assert_int_eq(deadline(), T0 + POOL_RESOURCE_RETRY_MS);
	at(10);
	acquire(&w2, &F.own2, m, true, 5000);	/* same model, same place */
	acquire(&wn, &F.own2, n, true, 5000);	/* nothing starts for 1 s */
	ck_assert_uint_eq(spawns_of(m) + spawns_of(n), 1);
	ck_assert_ptr_eq(TAILQ_FIRST(&F.p->pending), m);
	t = POOL_RESOURCE_RETRY_MS - 1;
	at(t);
	tick();
	ck_assert_uint_eq(spawns_of(m) + spawns_of(n), 1);
	/* A daemon's timer that fires a hair late (or is re-armed by
	 * another event just past the instant) still finds the retry due. */
	at(POOL_RESOURCE_RETRY_MS + 3);
	ck_assert_int_eq(pool_next_deadline(F.p, F.now), F.now);
	tick();
	ck_assert_uint_eq(spawns_of(m), 2);	/* m first: its place kept */
	ck_assert_uint_eq(spawns_of(n), 1);
	ck_assert(F.r.spawns[1].model == m);
	at(POOL_RESOURCE_RETRY_MS + 50);
	ready(m);
	ck_assert_int_eq(expect_ok(&w1, m, "w1")->wait_ms,
	    POOL_RESOURCE_RETRY_MS + 50);
	expect_ok(&w2, m, "w2");
	ck_assert_uint_eq(F.p->counters.starts, 2);
	/* Deadlines are kept: a second AGAIN past w's deadline. */
	fx_done();
}
END_TEST

START_TEST(test_spawn_again_deadline)
{
	struct pool_model	*m;
	struct pool_waiter	 w;

	fx_init(NULL);
	m = model("m", 10 * G, 0);
	at(0);
	F.r.again_spawns = 5;
	acquire(&w, &F.own, m, true, 2500);
	at(1000);
	tick();
	at(2000);
	tick();
	ck_assert_uint_eq(spawns_of(m), 3);
	ck_assert_uint_eq(nanswers(&w), 0);
	at(2500);
	tick();
	expect_err(&w, PROTO_E_BUSY, "deadline kept through AGAIN");
	ck_assert(!m->is_pending);
	ck_assert_uint_eq(m->failures, 0);
	fx_done();
}
END_TEST

/* --- the queue: passes and places (issue 9 item 12) --- */

/* The issue's scenario: 96 of 256 leased, a 200 head, a 48 behind it. */
START_TEST(test_queue_head_passed)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*small, *big, *used;
	struct pool_waiter	 wb, ws, wb2;
	const struct rec_answer	*a;
	const uint64_t		 M = UINT64_C(1) << 20;

	l.budget = 256 * M;
	fx_init(&l);
	used = model("used", 96 * M, 0);
	big = model("big", 200 * M, 0);
	small = model("small", 48 * M, 0);
	at(0);
	warm(used, &F.own, true);
	at(10);
	acquire(&wb, &F.own, big, true, 5000);
	at(20);
	acquire(&ws, &F.own2, small, true, 5000);
	ck_assert_uint_eq(spawns_of(small), 1);
	ck_assert_uint_eq(spawns_of(big), 0);
	at(30);
	ready(small);
	expect_ok(&ws, small, "small passes big");
	at(5010);
	tick();
	a = answer_of(&wb, "big");
	ck_assert_int_eq(a->err, PROTO_E_BUSY);
	ck_assert_msg(strstr(a->message, "144.0 MiB is leased") != NULL &&
	    strstr(a->message, "112.0 MiB free") != NULL &&
	    strstr(a->message, "200.0 MiB") != NULL, "busy: %s", a->message);
	/* The client asks again: a fresh place at the end. */
	acquire(&wb2, &F.own, big, true, 5000);
	ck_assert(big->is_pending);
	fx_done();
}
END_TEST

/* A head that fits once the stopping servers are reaped keeps its place;
 * nothing counts a stopping server's memory as free. */
START_TEST(test_queue_head_waits_for_reap)
{
	struct pool_model	*a, *h, *s;
	struct pool_waiter	 wh, ws;
	struct pool_server	*sa;

	fx_init(NULL);
	a = model("a", 60 * G, 0);
	h = model("h", 60 * G, 0);
	s = model("s", 30 * G, 0);
	at(0);
	warm(a, &F.own, false);
	sa = a->server;
	at(10);
	acquire(&wh, &F.own, h, true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);	/* a: stopping */
	ck_assert_uint_eq(spawns_of(h), 0);	/* freed only at the reap */
	ck_assert_uint_eq(F.p->used, 60 * G);
	at(20);
	acquire(&ws, &F.own, s, true, LONG_MS);	/* 60 + 30 fits now... */
	ck_assert_uint_eq(spawns_of(s), 0);	/* ...but h keeps its place */
	ck_assert_uint_eq(h->passes, 0);
	at(30);
	tick();
	ck_assert_uint_eq(spawns_of(h) + spawns_of(s), 0);
	at(40);
	reap(sa, "exited");
	ck_assert_uint_eq(spawns_of(h), 1);
	ck_assert_uint_eq(spawns_of(s), 1);	/* 60 + 30 */
	fx_done();
}
END_TEST

START_TEST(test_queue_pass_bound)
{
	struct pool_model	*lk, *h, *sm[POOL_HEAD_PASSES_MAX + 2];
	struct pool_waiter	 wh, ws[POOL_HEAD_PASSES_MAX + 2];
	const struct rec_answer	*a;
	char			 name[16];
	int64_t			 lease;
	unsigned		 i;

	struct pool_limits	 l = lim_default();

	l.max_servers = 20;
	fx_init(&l);
	lk = model("leased", 50 * G, 0);
	h = model("head", 60 * G, 0);
	for (i = 0; i < POOL_HEAD_PASSES_MAX + 2; i++) {
		snprintf(name, sizeof(name), "s%u", i);
		sm[i] = model(name, 2 * G, 0);
	}
	at(0);
	lease = warm(lk, &F.own, true);
	at(10);
	acquire(&wh, &F.own, h, true, LONG_MS);
	for (i = 0; i < POOL_HEAD_PASSES_MAX + 2; i++) {
		at(20 + i);
		acquire(&ws[i], &F.own2, sm[i], true, 1000);
		ck_assert_uint_eq(spawns_of(sm[i]),
		    i < POOL_HEAD_PASSES_MAX ? 1 : 0);
	}
	ck_assert_uint_eq(h->passes, POOL_HEAD_PASSES_MAX);
	at(20 + POOL_HEAD_PASSES_MAX + 1000);
	tick();
	a = answer_of(&ws[POOL_HEAD_PASSES_MAX], "passes used up");
	ck_assert_int_eq(a->err, PROTO_E_BUSY);
	ck_assert_msg(strstr(a->message, "waits behind 'head'") != NULL,
	    "busy: %s", a->message);
	/* The head gets its turn once the lease ends. */
	for (i = 0; i < POOL_HEAD_PASSES_MAX; i++)
		ready(sm[i]);
	at(3000);
	ck_assert_int_eq(release(lease), 0);
	ck_assert_uint_eq(spawns_of(h), 0);	/* small ones are leased */
	fx_done();
}
END_TEST

/* A model's place is its oldest live waiter's arrival. */
START_TEST(test_queue_place_follows_waiters)
{
	struct pool_model	*lk, *a, *b;
	struct pool_waiter	 wa1, wa2, wb;
	int64_t			 lease;

	fx_init(NULL);
	lk = model("leased", 50 * G, 0);
	a = model("a", 60 * G, 0);
	b = model("b", 60 * G, 0);
	at(0);
	lease = warm(lk, &F.own, true);
	at(10);
	acquire(&wa1, &F.own, a, true, 100);
	at(20);
	acquire(&wb, &F.own2, b, true, LONG_MS);
	at(30);
	acquire(&wa2, &F.own, a, true, LONG_MS);
	ck_assert_ptr_eq(TAILQ_FIRST(&F.p->pending), a);
	at(110);
	tick();
	expect_err(&wa1, PROTO_E_BUSY, "first a");
	ck_assert_ptr_eq(TAILQ_FIRST(&F.p->pending), b);	/* 20 < 30 */
	at(200);
	ck_assert_int_eq(release(lease), 0);
	ck_assert_uint_eq(F.r.nstops, 1);	/* leased, for b */
	reap(F.r.stops[0].srv, "exited");
	ck_assert_uint_eq(spawns_of(b), 1);
	ck_assert_uint_eq(spawns_of(a), 0);
	fx_done();
}
END_TEST

/* --- GreedyDual-Size (victim.c) --- */

/* Starts m at t and makes it ready load ms later: its last load time. */
static void
load(struct pool_model *m, pool_ms t, pool_ms load_ms)
{
	struct pool_waiter	 w;
	size_t			 na;

	at(t);
	acquire(&w, &F.own, m, false, LONG_MS);
	at(t + load_ms);
	na = F.r.nanswers;
	ready(m);
	ck_assert_uint_eq(F.r.nanswers, na + 1);
	ck_assert_int_eq(F.r.answers[na].err, PROTO_OK);
}

/*
 * Three 4 GiB servers in a 12 GiB budget with load times 100, 150 and
 * 180 ms (credits 25, 37.5, 45 per GiB).  c (1000 ms) needs room: GDS
 * stops a, the lowest credit (LRU would stop it too: the two agree
 * here), and inflation L becomes 25.  b is used: its credit becomes
 * 25 + 37.5 = 62.5.  d needs room: GDS stops e (45), not b (62.5 now,
 * 37.5 if the use did not count) and not c (25 + 250); LRU would stop b.
 */
START_TEST(test_gds_credit)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*a, *b, *e, *c, *d;
	struct pool_waiter	 wc, wd;

	l.budget = 12 * G;
	l.policy = POOL_POLICY_GDS;
	fx_init(&l);
	a = model("a", 4 * G, 0);
	b = model("b", 4 * G, 0);
	e = model("e", 4 * G, 0);
	c = model("c", 4 * G, 0);
	d = model("d", 4 * G, 0);
	load(b, 0, 150);
	load(a, 1000, 100);
	load(e, 2000, 180);
	ck_assert(a->server->credit < b->server->credit &&
	    b->server->credit < e->server->credit);
	at(3000);
	acquire(&wc, &F.own, c, false, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_msg(F.r.stops[0].model == a, "GDS stopped %s, not a (the "
	    "lowest credit)", rec_model_name(F.r.stops[0].model));
	ck_assert(F.p->inflation > 24.9 && F.p->inflation < 25.1);
	reap(F.r.stops[0].srv, "exited");
	at(4000);
	ready(c);
	at(5000);
	touch(b);
	ck_assert(b->server->credit > 62.4 && b->server->credit < 62.6);
	at(6000);
	acquire(&wd, &F.own, d, false, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_msg(F.r.stops[1].model == e, "GDS stopped %s, not e",
	    rec_model_name(F.r.stops[1].model));
	fx_done();
}
END_TEST

/* The same servers under LRU: the least recently used goes, whatever it
 * costs to load. */
START_TEST(test_lru_ignores_credit)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*a, *b, *e, *c;
	struct pool_waiter	 wc;

	l.budget = 12 * G;
	fx_init(&l);
	a = model("a", 4 * G, 0);
	b = model("b", 4 * G, 0);
	e = model("e", 4 * G, 0);
	c = model("c", 4 * G, 0);
	load(b, 0, 150);
	load(a, 1000, 100);
	load(e, 2000, 180);
	at(3000);
	acquire(&wc, &F.own, c, false, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(F.r.stops[0].model, b);
	fx_done();
}
END_TEST

static TCase	*leases_tcase(void);
static TCase	*issue12_tcase(void);

static Suite *
pool_suite(void)
{
	Suite	*s = suite_create("pool");
	TCase	*tc;

	tc = tcase_create("scenarios");
	tcase_add_test(tc, test_hot_path);
	tcase_add_test(tc, test_cold_start);
	tcase_add_test(tc, test_one_start_per_model);
	tcase_add_test(tc, test_design_example);
	tcase_add_test(tc, test_lru_touch);
	tcase_add_test(tc, test_mixed_sizes);
	tcase_add_test(tc, test_count_limit);
	tcase_add_test(tc, test_leases_block);
	tcase_add_test(tc, test_ready_makes_room);
	tcase_add_test(tc, test_evict_makes_room);
	tcase_add_test(tc, test_stops_none);
	tcase_add_test(tc, test_too_large);
	tcase_add_test(tc, test_fifo);
	tcase_add_test(tc, test_start_timeout);
	tcase_add_test(tc, test_crash_at_start_backoff);
	tcase_add_test(tc, test_spawn_failure);
	tcase_add_test(tc, test_crash_after_ready);
	tcase_add_test(tc, test_idle_timeout);
	tcase_add_test(tc, test_waiter_timeouts);
	tcase_add_test(tc, test_owner_gone);
	tcase_add_test(tc, test_evict);
	tcase_add_test(tc, test_ports_stopping);
	tcase_add_test(tc, test_ports_taken);
	tcase_add_test(tc, test_shutdown);
	tcase_add_test(tc, test_max_waiters);
	tcase_add_test(tc, test_catalog);
	tcase_add_test(tc, test_format_size);
	tcase_add_test(tc, test_measured_growth);
	tcase_add_test(tc, test_measured_all_leased);
	tcase_add_test(tc, test_system_available);
	tcase_add_test(tc, test_system_waits);
	tcase_add_test(tc, test_failed_state);
	tcase_add_test(tc, test_health_periodic);
	tcase_add_test(tc, test_health_before_idle_handout);
	tcase_add_test(tc, test_health_check_times_out_waiter);
	tcase_add_test(tc, test_health_early_is_no_failure);
	tcase_add_test(tc, test_crash_early_backoff);
	tcase_add_test(tc, test_spawn_again);
	tcase_add_test(tc, test_spawn_again_deadline);
	tcase_add_test(tc, test_queue_head_passed);
	tcase_add_test(tc, test_queue_head_waits_for_reap);
	tcase_add_test(tc, test_queue_pass_bound);
	tcase_add_test(tc, test_queue_place_follows_waiters);
	tcase_add_test(tc, test_gds_credit);
	tcase_add_test(tc, test_lru_ignores_credit);
	suite_add_tcase(s, tc);

	tc = tcase_create("property");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_property, 0, 20);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, leases_tcase());
	suite_add_tcase(s, issue12_tcase());
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(pool_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* --- leases: owners, ids, lost leases and their ports --- */

/* A lease on m's READY server for o, at once. */
static int64_t
hold_hot(struct pool_model *m, struct pool_owner *o)
{
	struct pool_waiter	 w;
	size_t			 na = F.r.nanswers;

	acquire(&w, o, m, true, LONG_MS);
	ck_assert_msg(F.r.nanswers == na + 1 && F.r.answers[na].w == &w &&
	    F.r.answers[na].err == PROTO_OK, "hot acquire of %s", m->name);
	return F.r.answers[na].lease;
}

/* A lease is its owner's: another owner's RELEASE is -1 and changes
 * nothing; pool_lease_find() says NULL to it, as for no lease at all. */
START_TEST(test_lease_owner)
{
	struct pool_model	*a;
	struct pool_server	*s;
	int64_t			 l1, l2;

	fx_init(NULL);
	a = model("a", 10 * G, 0);
	l1 = warm(a, &F.own, true);
	s = a->server;
	ck_assert_ptr_null(pool_lease_find(F.p, &F.own2, l1));
	ck_assert_ptr_nonnull(pool_lease_find(F.p, &F.own, l1));
	ck_assert_int_eq(pool_release(F.p, F.now, &F.own2, l1), -1);
	inv();
	ck_assert_uint_eq(s->leases, 1);
	ck_assert_uint_eq(F.p->counters.releases, 0);
	l2 = hold_hot(a, &F.own2);
	ck_assert_int_eq(pool_release(F.p, F.now, &F.own, l2), -1);
	ck_assert_uint_eq(s->leases, 2);
	ck_assert_int_eq(pool_release(F.p, F.now, &F.own2, l2), 0);
	ck_assert_int_eq(pool_release(F.p, F.now, &F.own, l1), 0);
	inv();
	ck_assert_uint_eq(s->leases, 0);
	ck_assert_ptr_null(pool_lease_find(F.p, &F.own, l1));
	fx_done();
}
END_TEST

/* Ids: EPOCH << 32 | sequence, below 2^53; any epoch value is taken into
 * 1 .. 2^21 - 1; without one they count from 1. */
START_TEST(test_lease_ids)
{
	struct pool_model	*a;
	int64_t			 l;

	fx_init(NULL);
	a = model("a", 10 * G, 0);
	ck_assert_int_eq(warm(a, &F.own, true), 1);
	fx_done();

	fx_init(NULL);
	a = model("a", 10 * G, 0);
	pool_lease_epoch(F.p, 5);
	ck_assert_int_eq(warm(a, &F.own, true), (INT64_C(6) << 32) + 1);
	ck_assert_int_eq(hold_hot(a, &F.own), (INT64_C(6) << 32) + 2);
	fx_done();

	fx_init(NULL);
	a = model("a", 10 * G, 0);
	pool_lease_epoch(F.p, UINT32_MAX);
	l = warm(a, &F.own, true);
	ck_assert(l > 0 && l <= PROTO_LEASE_MAX);
	/* Round 2^53: the ids go back to 1, skipping any still held. */
	F.p->next_lease = PROTO_LEASE_MAX - 1;
	ck_assert_int_eq(hold_hot(a, &F.own), PROTO_LEASE_MAX);
	ck_assert_int_eq(hold_hot(a, &F.own), 1);
	F.p->next_lease = 0;
	ck_assert_int_eq(hold_hot(a, &F.own), 2);
	fx_done();
}
END_TEST

/*
 * Ports 8000-8001.  a (8000) is leased and crashes: the lease is lost
 * and holds 8000.  b takes 8001; c finds no port (start_failed) while
 * the lease is held.  Its RELEASE ends it (0) and frees 8000; c gets it.
 * A lost lease of a gone owner frees its port too.
 */
START_TEST(test_lost_lease_holds_port)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*a, *b, *c;
	struct pool_server	*srv;
	struct pool_waiter	 w, w2, w3, w4;
	const struct pool_lease	*ls;
	int64_t			 la;

	l.port_min = 8000;
	l.port_max = 8001;
	fx_init(&l);
	a = model("a", 10 * G, 0);
	b = model("b", 10 * G, 0);
	c = model("c", 10 * G, 0);
	la = warm(a, &F.own, true);
	ck_assert_int_eq(a->server->port, 8000);
	/* Past the crash-early window: a's crash is no failed start. */
	at(F.now + POOL_CRASH_EARLY_MS);
	reap(a->server, "killed by signal 9");
	ls = pool_lease_find(F.p, &F.own, la);
	ck_assert_ptr_nonnull(ls);
	ck_assert_ptr_null(ls->server);
	ck_assert_ptr_nonnull(ls->lost);
	ck_assert_int_eq(ls->lost->port, 8000);
	ck_assert_str_eq(ls->lost->model, "a");
	ck_assert_str_eq(ls->lost->why, "killed by signal 9");

	warm(b, &F.own2, false);
	ck_assert_int_eq(b->server->port, 8001);
	/* c waits for a port (the lost lease's end frees one), and a wait
	 * that runs out says why. */
	acquire(&w4, &F.own2, c, false, 100);
	ck_assert_uint_eq(nanswers(&w4), 0);
	at(F.now - T0 + 100);
	tick();
	expect_err(&w4, PROTO_E_BUSY, "c with every port held");
	ck_assert_msg(strstr(answer_of(&w4, "c")->message, "RELEASE") !=
	    NULL, "busy should say the lost lease holds the port: %s",
	    answer_of(&w4, "c")->message);
	acquire(&w, &F.own2, c, false, LONG_MS);
	ck_assert_uint_eq(nanswers(&w), 0);
	ck_assert_int_eq(pool_release(F.p, F.now, &F.own, la), 0);
	inv();
	ck_assert(TAILQ_EMPTY(&F.p->lost));
	ck_assert_ptr_nonnull(c->server);
	ck_assert_int_eq(c->server->port, 8000);
	ready(c);
	expect_ok(&w, c, "c once the lost lease ended");

	/* A forced EVICT of a leased server: its lease is lost too, the
	 * cause says so, and the owner's end frees the port. */
	evict(&w, &F.own2, b, false);
	reap(F.r.stops[F.r.nstops - 1].srv, "exited with status 0");
	la = warm(a, &F.own, true);
	ck_assert_int_eq(a->server->port, 8001);
	srv = a->server;
	evict(&w2, &F.own2, a, true);
	reap(srv, "exited with status 0");
	ls = pool_lease_find(F.p, &F.own, la);
	ck_assert_ptr_nonnull(ls);
	ck_assert_ptr_nonnull(ls->lost);
	ck_assert_str_eq(ls->lost->why, "stopped (evict): exited with status 0");
	acquire(&w3, &F.own2, b, false, LONG_MS);
	ck_assert_uint_eq(nanswers(&w3), 0);	/* waits for the port */
	pool_owner_gone(F.p, F.now, &F.own);
	inv();
	ck_assert(TAILQ_EMPTY(&F.p->lost));
	ck_assert_ptr_nonnull(b->server);
	ck_assert_int_eq(b->server->port, 8001);
	ready(b);
	expect_ok(&w3, b, "b once the lost lease's owner went");
	fx_done();
}
END_TEST

/*
 * Ports 8000-8002: a, b, c get 8000, 8001, 8002 (never used first, lowest
 * first).  c is reaped, then a: d gets 8002 (freed first), e 8000.
 */
START_TEST(test_ports_lrf)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*m[5];
	struct pool_waiter	 w;
	const char		*names[] = { "a", "b", "c", "d", "e" };
	int			 i;

	l.port_min = 8000;
	l.port_max = 8002;
	fx_init(&l);
	for (i = 0; i < 5; i++)
		m[i] = model(names[i], 10 * G, 0);
	for (i = 0; i < 3; i++) {
		warm(m[i], &F.own, false);
		ck_assert_int_eq(m[i]->server->port, 8000 + i);
	}
	evict(&w, &F.own2, m[2], false);
	reap(F.r.stops[F.r.nstops - 1].srv, "exited with status 0");
	evict(&w, &F.own2, m[0], false);
	reap(F.r.stops[F.r.nstops - 1].srv, "exited with status 0");
	warm(m[3], &F.own, false);
	ck_assert_int_eq(m[3]->server->port, 8002);
	warm(m[4], &F.own, false);
	ck_assert_int_eq(m[4]->server->port, 8000);
	fx_done();
}
END_TEST

static TCase *
leases_tcase(void)
{
	TCase	*tc = tcase_create("leases");

	tcase_add_test(tc, test_lease_owner);
	tcase_add_test(tc, test_lease_ids);
	tcase_add_test(tc, test_lost_lease_holds_port);
	tcase_add_test(tc, test_ports_lrf);
	return tc;
}

/* --- issue 12: priorities, pinning, limits, preload, retire, usage --- */

static int
set_prio(struct pool_model *m, enum pool_priority prio, char *err,
    size_t len)
{
	int	 rc;

	rc = pool_set_priority(F.p, F.now, m, prio, err, len);
	inv();
	return rc;
}

static struct pool_model *
model_prio(const char *name, uint64_t mem, pool_ms idle,
    enum pool_priority prio)
{
	struct pool_model	*m = model(name, mem, idle);
	char			 err[512];

	ck_assert_msg(set_prio(m, prio, err, sizeof(err)) == 0, "%s: %s",
	    name, err);
	ck_assert_int_eq(m->priority, prio);
	return m;
}

/* Events of kind for m (NULL: any model). */
static size_t
events_of(enum pool_event_kind kind, const struct pool_model *m)
{
	size_t	 i, n = 0;

	for (i = 0; i < F.r.nevents; i++)
		if (F.r.events[i].kind == kind &&
		    (m == NULL || F.r.events[i].model == m))
			n++;
	return n;
}

/* The last event of kind for m; fails if there is none. */
static const struct rec_event *
last_event(enum pool_event_kind kind, const struct pool_model *m)
{
	size_t	 i;

	for (i = F.r.nevents; i > 0; i--)
		if (F.r.events[i - 1].kind == kind &&
		    (m == NULL || F.r.events[i - 1].model == m))
			return &F.r.events[i - 1];
	ck_abort_msg("no %s event for %s", rec_event_name(kind),
	    rec_model_name(m));
	return NULL;
}

/* The model of the n-th stop (from 0). */
static const struct pool_model *
stopped_model(size_t n)
{
	ck_assert_msg(n < F.r.nstops, "stop #%zu: only %zu stops", n,
	    F.r.nstops);
	return F.r.stops[n].model;
}

/* Reaps the last server stopped. */
static void
reap_last(void)
{
	ck_assert(F.r.nstops > 0);
	reap(F.r.stops[F.r.nstops - 1].srv, "exited with status 0");
}

/* m is gone from the catalog: the fixture stops checking it. */
static void
forget_model(const struct pool_model *m)
{
	size_t	 i;

	for (i = 0; i < F.nmodels; i++)
		if (F.models[i] == m) {
			F.models[i] = F.models[--F.nmodels];
			return;
		}
	ck_abort_msg("forget_model: not a fixture model");
}

static void
expect_msg(const struct pool_waiter *w, enum proto_err err, const char *has,
    const char *what)
{
	const struct rec_answer	*a = answer_of(w, what);

	ck_assert_msg(a->err == err, "%s: answered %s (%s), expected %s",
	    what, errname(a->err), a->message, errname(err));
	ck_assert_msg(strstr(a->message, has) != NULL, "%s: \"%s\" lacks "
	    "\"%s\"", what, a->message, has);
}

/*
 * Three idle servers, high the least recently used, low the most: room
 * is made from low first, then normal (least recently used first), and
 * high goes only when every other server is leased.
 */
START_TEST(test_prio_class_order)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*lo, *no, *hi, *a, *b, *c, *d, *e;
	struct pool_waiter	 wa, wb, wc, wd, we;

	l.budget = 90 * G;
	fx_init(&l);
	lo = model_prio("low", 30 * G, 0, POOL_PRIO_LOW);
	no = model("normal", 30 * G, 0);
	hi = model_prio("high", 30 * G, 0, POOL_PRIO_HIGH);
	a = model("a", 30 * G, 0);
	b = model("b", 30 * G, 0);
	c = model("c", 30 * G, 0);
	d = model("d", 30 * G, 0);
	e = model("e", 30 * G, 0);
	at(0);
	warm(hi, &F.own, false);
	at(1000);
	warm(no, &F.own, false);
	at(2000);
	warm(lo, &F.own, false);

	at(3000);
	acquire(&wa, &F.own, a, false, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(stopped_model(0), lo);	/* low, though the newest */
	reap_last();
	at(3500);
	ready(a);
	at(4000);
	acquire(&wb, &F.own, b, false, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_eq(stopped_model(1), no);	/* normal, older than a */
	reap_last();
	ready(b);
	at(5000);
	acquire(&wc, &F.own, c, true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 3);
	ck_assert_ptr_eq(stopped_model(2), a);	/* normal before high */
	reap_last();
	ready(c);
	at(6000);
	acquire(&wd, &F.own, d, true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 4);
	ck_assert_ptr_eq(stopped_model(3), b);
	reap_last();
	ready(d);
	/* c and d leased: only high is left to stop. */
	at(7000);
	acquire(&we, &F.own, e, false, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 5);
	ck_assert_ptr_eq(stopped_model(4), hi);
	ck_assert_uint_eq(F.p->counters.stops[POOL_STOP_LRU], 5);
	ck_assert_uint_eq(hi->counters.stops[POOL_STOP_LRU], 1);
	fx_done();
}
END_TEST

/*
 * High is stopped only when low and normal idle servers cannot make the
 * room; when they can, they go, however recently they were used.
 */
START_TEST(test_prio_high_last)
{
	struct pool_model	*lo, *hi, *no, *x, *y;
	struct pool_waiter	 wx, wy;

	fx_init(NULL);
	hi = model_prio("high", 50 * G, 0, POOL_PRIO_HIGH);
	lo = model_prio("low", 20 * G, 0, POOL_PRIO_LOW);
	no = model("normal", 30 * G, 0);
	x = model("x", 20 * G, 0);
	y = model("y", 50 * G, 0);
	at(0);
	warm(hi, &F.own, false);
	at(1000);
	warm(lo, &F.own, false);
	at(2000);
	warm(no, &F.own, true);
	/* x needs 20: low alone makes it. */
	at(3000);
	acquire(&wx, &F.own, x, true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(stopped_model(0), lo);
	reap_last();
	ready(x);
	/* y needs 50 with normal and x leased: high goes. */
	at(4000);
	acquire(&wy, &F.own, y, false, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_eq(stopped_model(1), hi);
	fx_done();
}
END_TEST

/*
 * A pinned server is never stopped for room or idleness: a request
 * that only it (and a lease) keeps out waits, gets one PRESSURE event,
 * and then `busy` naming the pinned model.  EVICT refuses it, forced
 * too; unpinned, it is an idle server like any other, idle from then.
 */
START_TEST(test_pinned_never_evicted)
{
	struct pool_model	*p, *n, *x;
	struct pool_waiter	 wx, wx2, we, wf;
	const struct rec_event	*ev;
	char			 err[256];
	int64_t			 ln;

	fx_init(NULL);
	p = model("pin", 60 * G, 1000);
	n = model("n", 30 * G, 0);
	x = model("x", 40 * G, 0);
	at(0);
	ck_assert_int_eq(set_prio(p, POOL_PRIO_PINNED, err, sizeof(err)), 0);
	ck_assert_uint_eq(spawns_of(p), 1);
	ck_assert(p->server->preloaded);
	ck_assert_uint_eq(F.p->counters.preloads, 1);
	ck_assert_uint_eq(pool_pinned_mem(F.p), 60 * G);
	ev = last_event(POOL_EV_START, p);
	ck_assert(ev->preload);
	at(500);
	ready(p);
	ln = warm(n, &F.own, true);
	/* Idle far past its idle_timeout: kept, and no deadline for it. */
	at(100000);
	ck_assert_int_eq(deadline(), -1);
	tick();
	ck_assert_uint_eq(F.r.nstops, 0);

	acquire(&wx, &F.own, x, true, 2000);
	ck_assert_uint_eq(F.r.nstops, 0);
	ck_assert(x->is_pending);
	ck_assert_uint_eq(events_of(POOL_EV_PRESSURE, x), 1);
	ev = last_event(POOL_EV_PRESSURE, x);
	ck_assert_uint_eq(ev->need, 40 * G);
	ck_assert_ptr_nonnull(strstr(ev->message, "60.0 GiB pinned (pin)"));
	at(101000);
	tick();
	ck_assert_uint_eq(events_of(POOL_EV_PRESSURE, x), 1);
	at(102000);
	tick();
	expect_msg(&wx, PROTO_E_BUSY, "60.0 GiB pinned (pin)", "x behind pin");
	ck_assert_ptr_nonnull(strstr(answer_of(&wx, "x")->message,
	    "30.0 GiB is leased"));

	evict(&we, &F.own, p, false);
	expect_msg(&we, PROTO_E_BUSY, "is pinned; UNPIN it first", "evict");
	evict(&wf, &F.own, p, true);
	expect_msg(&wf, PROTO_E_BUSY, "is pinned; UNPIN it first", "force");
	ck_assert_uint_eq(F.r.nstops, 0);

	/* Unpinned: idle from now, stopped for x. */
	at(110000);
	ck_assert_int_eq(set_prio(p, POOL_PRIO_NORMAL, err, sizeof(err)), 0);
	ck_assert_uint_eq(pool_pinned_mem(F.p), 0);
	ck_assert_int_eq(p->server->last_used, F.now);
	ck_assert_int_eq(deadline(), F.now + 1000);
	acquire(&wx2, &F.own, x, true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(stopped_model(0), p);
	reap_last();
	ready(x);
	expect_ok(&wx2, x, "x after unpin");
	ck_assert_int_eq(release(ln), 0);
	fx_done();
}
END_TEST

/*
 * A pinned server that dies is started again: at once after a late
 * exit, after the backoff after an early crash or a failed start, after
 * the failed cooldown once max_failures starts failed in a row; the
 * pool's deadline is each retry.
 */
START_TEST(test_pinned_restart)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*p;
	char			 err[256];

	l.max_failures = 3;
	l.failed_cooldown = 60000;
	fx_init(&l);
	p = model("pin", 10 * G, 0);
	at(0);
	ck_assert_int_eq(set_prio(p, POOL_PRIO_PINNED, err, sizeof(err)), 0);
	ck_assert_uint_eq(spawns_of(p), 1);
	at(1000);
	ready(p);
	/* Crashes 1 s after its ready: a failed start, backoff 1 s. */
	at(2000);
	reap(p->server, "killed by signal 11");
	ck_assert_uint_eq(spawns_of(p), 1);
	ck_assert_int_eq(last_event(POOL_EV_EXIT, p)->reason, POOL_STOP_NONE);
	ck_assert_int_eq(deadline(), T0 + 3000);
	ck_assert_str_eq(pool_model_state(F.p, p, F.now), "backoff");
	at(2999);
	tick();
	ck_assert_uint_eq(spawns_of(p), 1);
	/* The loop may look at the clock at the retry itself, or after it
	 * without a tick between: the retry is still owed, now. */
	at(3000);
	ck_assert_int_eq(deadline(), T0 + 3000);
	at(3007);
	ck_assert_int_eq(deadline(), T0 + 3007);
	tick();
	ck_assert_uint_eq(spawns_of(p), 2);
	ck_assert(p->server->preloaded);
	/* Dies while starting: backoff 2 s. */
	at(3500);
	reap(p->server, "exit status 1");
	ck_assert_uint_eq(events_of(POOL_EV_FAILED, p), 1);
	ck_assert_int_eq(deadline(), T0 + 5500);
	at(5500);
	tick();
	ck_assert_uint_eq(spawns_of(p), 3);
	/* Third in a row: failed, no start for the cooldown. */
	at(6000);
	reap(p->server, "exit status 1");
	ck_assert_str_eq(pool_model_state(F.p, p, F.now), "failed");
	ck_assert_int_eq(deadline(), T0 + 66000);
	at(65999);
	tick();
	ck_assert_uint_eq(spawns_of(p), 3);
	at(66000);
	tick();
	ck_assert_uint_eq(spawns_of(p), 4);
	at(67000);
	ready(p);
	/* Exits long after its ready: started again at once. */
	at(200000);
	reap(p->server, "killed by signal 9");
	ck_assert_uint_eq(spawns_of(p), 5);
	ck_assert_uint_eq(p->failures, 0);
	/* Start timeout: a failed start too, stopped, then backoff. */
	at(200000 + l.start_timeout);
	tick();
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_int_eq(F.r.stops[0].srv->stop_reason,
	    POOL_STOP_START_TIMEOUT);
	reap_last();
	ck_assert_uint_eq(spawns_of(p), 5);
	ck_assert_int_eq(deadline(), T0 + 200000 + l.start_timeout + 1000);
	/* Shutdown: no more retries. */
	pool_shutdown(F.p, F.now);
	inv();
	ck_assert_int_eq(deadline(), -1);
	fx_done();
}
END_TEST

/* Pinned models that would take more than the budget: -1 naming them,
 * nothing changes.  A request for a model that cannot fit beside the
 * pinned ones is told so at once, not after its timeout. */
START_TEST(test_pin_over_budget)
{
	struct pool_model	*a, *b, *c, *d;
	struct pool_waiter	 wc, wc2, wd;
	const struct rec_answer	*ans;
	char			 err[512];
	size_t			 nsp;

	fx_init(NULL);
	a = model_prio("a", 50 * G, 0, POOL_PRIO_PINNED);
	b = model_prio("b", 40 * G, 0, POOL_PRIO_PINNED);
	c = model("c", 20 * G, 0);
	ck_assert_ptr_nonnull(a->server);	/* pinning started them */
	ck_assert_ptr_nonnull(b->server);
	nsp = F.r.nspawns;
	ck_assert_int_eq(set_prio(c, POOL_PRIO_PINNED, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "a 50.0 GiB, b 40.0 GiB") != NULL &&
	    strstr(err, "'c'") != NULL, "err: %s", err);
	ck_assert_int_eq(c->priority, POOL_PRIO_NORMAL);
	ck_assert_uint_eq(pool_pinned_mem(F.p), 90 * G);
	ck_assert_uint_eq(F.r.nspawns, nsp);
	ck_assert_int_eq(set_prio(c, 7, err, sizeof(err)), -1);
	acquire(&wc, &F.own, c, false, LONG_MS);
	ans = answer_of(&wc, "c beside 90 GiB pinned");
	ck_assert_msg(ans->err == PROTO_E_BUSY && strstr(ans->message,
	    "(a 50.0 GiB, b 40.0 GiB): UNPIN one") != NULL, "c: %s %s",
	    errname(ans->err), ans->message);
	ck_assert_uint_eq(F.r.nspawns, nsp);
	d = model("d", 10 * G, 0);		/* fits beside them */
	acquire(&wd, &F.own, d, false, LONG_MS);
	ck_assert_uint_eq(F.r.nspawns, nsp + 1);
	ready(d);
	expect_ok(&wd, d, "d beside 90 GiB pinned");
	/* Room made by unpinning b. */
	ck_assert_int_eq(set_prio(b, POOL_PRIO_HIGH, err, sizeof(err)), 0);
	ck_assert_uint_eq(pool_pinned_mem(F.p), 50 * G);
	ck_assert_int_eq(set_prio(c, POOL_PRIO_PINNED, err, sizeof(err)), 0);
	ck_assert_uint_eq(pool_pinned_mem(F.p), 70 * G);
	/* Its size changes with the catalog's. */
	ck_assert_ptr_eq(pool_model_add(F.p, "c", 25 * G, 0), c);
	ck_assert_uint_eq(pool_pinned_mem(F.p), 75 * G);
	/* And when the daemon changes it in place (a learned peak, a first
	 * header read): unpinned, nothing is left counted (a kept sum
	 * wrapped below zero here and refused everything as busy). */
	c->mem = 30 * G;
	ck_assert_uint_eq(pool_pinned_mem(F.p), 80 * G);
	ck_assert_int_eq(set_prio(c, POOL_PRIO_NORMAL, err, sizeof(err)), 0);
	ck_assert_int_eq(set_prio(a, POOL_PRIO_NORMAL, err, sizeof(err)), 0);
	ck_assert_uint_eq(pool_pinned_mem(F.p), 0);
	acquire(&wc2, &F.own, c, false, LONG_MS);
	ck_assert_msg(nanswers(&wc2) == 0 || answer_of(&wc2, "c")->err !=
	    PROTO_E_BUSY, "c unpinned: busy");
	fx_done();
}
END_TEST

/*
 * A model that cannot fit beside the pinned ones is refused a start, not
 * a server it already has: a request joins its start (or its lease)
 * like any other.  Only when it would need a new start is it busy.
 */
START_TEST(test_pinned_leave_running)
{
	struct pool_model	*a, *b, *c;
	struct pool_waiter	 w1, w2, w3, w4;
	char			 err[512];
	size_t			 nsp;
	int64_t			 l1, l2;

	fx_init(NULL);
	a = model_prio("a", 50 * G, 0, POOL_PRIO_PINNED);
	b = model("b", 40 * G, 0);
	c = model("c", 20 * G, 0);
	ready(a);
	acquire(&w1, &F.own, c, true, LONG_MS);
	ck_assert_ptr_nonnull(c->server);		/* starting */
	/* b pinned: 90 GiB pinned, and c (20) no longer fits beside. */
	ck_assert_int_eq(set_prio(b, POOL_PRIO_PINNED, err, sizeof(err)), 0);
	nsp = F.r.nspawns;
	acquire(&w2, &F.own, c, true, LONG_MS);
	ck_assert_uint_eq(nanswers(&w2), 0);		/* joined the start */
	ck_assert_uint_eq(F.r.nspawns, nsp);
	ready(c);
	l1 = expect_ok(&w1, c, "c, first")->lease;
	l2 = expect_ok(&w2, c, "c, joined")->lease;
	/* Ready and leased: a third request is a hit, not busy. */
	acquire(&w3, &F.own, c, true, LONG_MS);
	ck_assert_int_eq(release(expect_ok(&w3, c, "c, hit")->lease), 0);
	ck_assert_int_eq(release(l1), 0);
	ck_assert_int_eq(release(l2), 0);
	/* Idle, c is stopped for the pinned b; then c needs a new start,
	 * and that is refused at once. */
	ck_assert_ptr_eq(stopped_model(0), c);
	reap_last();
	ck_assert_ptr_null(c->server);
	acquire(&w4, &F.own, c, false, LONG_MS);
	expect_msg(&w4, PROTO_E_BUSY, "UNPIN one", "c after b pinned");
	fx_done();
}
END_TEST

/*
 * A pinned model that only leases keep out does not hold the queue: a
 * request that fits starts.  Once leases end, it stops idle servers
 * for its room and holds the queue until their reaps: a request that
 * fits meanwhile waits behind it.
 */
START_TEST(test_pinned_before_queue)
{
	struct pool_model	*l, *p, *s, *t;
	struct pool_waiter	 ws, wt;
	char			 err[256];
	int64_t			 ll;

	fx_init(NULL);
	l = model("l", 70 * G, 0);
	p = model("pin", 50 * G, 0);
	s = model("s", 20 * G, 0);
	t = model("t", 10 * G, 0);
	at(0);
	ll = warm(l, &F.own, true);
	ck_assert_int_eq(set_prio(p, POOL_PRIO_PINNED, err, sizeof(err)), 0);
	ck_assert_ptr_null(p->server);
	ck_assert_uint_eq(events_of(POOL_EV_PRESSURE, p), 1);
	acquire(&ws, &F.own, s, false, LONG_MS);
	ck_assert_ptr_nonnull(s->server);
	at(1000);
	ready(s);
	at(2000);
	ck_assert_int_eq(release(ll), 0);
	ck_assert_uint_eq(F.r.nstops, 2);	/* s, then l */
	ck_assert_ptr_eq(stopped_model(0), s);
	ck_assert_ptr_eq(stopped_model(1), l);
	acquire(&wt, &F.own, t, false, LONG_MS);
	ck_assert_ptr_null(t->server);		/* behind the pinned start */
	ck_assert(t->is_pending);
	reap(F.r.stops[0].srv, "exited");
	ck_assert_ptr_null(p->server);
	reap(F.r.stops[1].srv, "exited");
	ck_assert_ptr_nonnull(p->server);
	ck_assert_ptr_nonnull(t->server);
	ck_assert(F.r.spawns[F.r.nspawns - 2].model == p);
	fx_done();
}
END_TEST

/*
 * A smaller budget stops idle servers (reason budget), least recently
 * used first, until used fits; leased, starting and pinned ones stay,
 * and nothing starts while used is over the budget; one of them ready
 * and idle while it is still over goes then.  A smaller max_servers the
 * same.
 */
START_TEST(test_set_limits_shrink)
{
	struct pool_limits	 nl;
	struct pool_model	*a, *a2, *b, *p, *s, *d;
	struct pool_waiter	 ws, wd;
	char			 why[256];
	int64_t			 lb;

	fx_init(NULL);
	a = model("a", 20 * G, 0);
	a2 = model("a2", 10 * G, 0);
	b = model("b", 30 * G, 0);
	p = model_prio("pin", 30 * G, 0, POOL_PRIO_PINNED);
	s = model("s", 5 * G, 0);
	d = model("d", 10 * G, 0);
	at(0);
	ready(p);
	warm(a2, &F.own, false);
	at(100);
	warm(a, &F.own, false);
	lb = warm(b, &F.own, true);
	acquire(&ws, &F.own, s, false, LONG_MS);	/* starting */
	ck_assert_uint_eq(F.p->used, 95 * G);

	at(1000);
	nl = F.p->lim;
	nl.budget = 50 * G;
	F.shrunk = true;
	pool_set_limits(F.p, F.now, &nl);
	inv();
	ck_assert_uint_eq(F.p->lim.budget, 50 * G);
	ck_assert_uint_eq(F.r.nstops, 2);		/* both idle ones */
	ck_assert_ptr_eq(stopped_model(0), a2);
	ck_assert_ptr_eq(stopped_model(1), a);
	ck_assert_uint_eq(F.p->counters.stops[POOL_STOP_BUDGET], 2);
	ck_assert_uint_eq(a->counters.stops[POOL_STOP_BUDGET], 1);
	ck_assert_int_eq(last_event(POOL_EV_EVICT, a)->reason,
	    POOL_STOP_BUDGET);
	ck_assert_ptr_nonnull(b->server);
	ck_assert_ptr_nonnull(p->server);
	ck_assert_ptr_nonnull(s->server);
	reap(F.r.stops[0].srv, "exited");
	reap(F.r.stops[1].srv, "exited");
	ck_assert_uint_eq(F.p->used, 65 * G);
	/* Over the budget: nothing starts, not even a preload. */
	ck_assert_int_eq(pool_preload(F.p, F.now, d, why, sizeof(why)), -1);
	acquire(&wd, &F.own, d, false, LONG_MS);
	ck_assert_ptr_null(d->server);
	at(2000);
	/* Ready and idle while the pool is over: it goes at once (not
	 * room enough for d: the leased b keeps the pool over). */
	pool_ready(F.p, F.now, s->server);
	inv();
	ck_assert_uint_eq(F.r.nstops, 3);
	ck_assert_ptr_eq(stopped_model(2), s);
	ck_assert_int_eq(last_event(POOL_EV_EVICT, s)->reason,
	    POOL_STOP_BUDGET);
	ck_assert_ptr_null(d->server);
	at(3000);
	ck_assert_int_eq(release(lb), 0);	/* b goes for d */
	ck_assert_uint_eq(F.r.nstops, 4);
	ck_assert_ptr_eq(stopped_model(3), b);
	reap(F.r.stops[2].srv, "exited");
	reap(F.r.stops[3].srv, "exited");
	ck_assert_ptr_nonnull(d->server);
	ck_assert_uint_eq(F.p->used, 40 * G);
	ck_assert_uint_eq(F.p->counters.stops[POOL_STOP_LRU], 1);
	ck_assert_uint_eq(F.p->counters.stops[POOL_STOP_BUDGET], 3);

	/* max_servers 2 of 2 (pin, d): to 1, d goes (idle once ready). */
	ready(d);
	nl.max_servers = 1;
	pool_set_limits(F.p, F.now, &nl);
	inv();
	ck_assert_uint_eq(F.r.nstops, 5);
	ck_assert_ptr_eq(stopped_model(4), d);
	ck_assert_uint_eq(F.p->counters.stops[POOL_STOP_BUDGET], 4);
	/* The port range stays the pool's. */
	ck_assert_int_eq(F.p->lim.port_min, 8000);
	fx_done();
}
END_TEST

/*
 * A preload starts only into free room, with nothing queued and the
 * model not backing off; a preload still starting is the first stopped
 * for a request's room, unless a request waits on it.
 */
START_TEST(test_preload)
{
	struct pool_model	*a, *b, *c, *d, *e;
	struct pool_waiter	 wb, wc, wd;
	const struct rec_event	*ev;
	char			 why[512];
	size_t			 nsp;

	fx_init(NULL);
	a = model("a", 40 * G, 0);
	b = model("b", 70 * G, 0);
	c = model("c", 30 * G, 0);
	d = model("d", 50 * G, 0);
	e = model("e", 1 * G, 0);
	at(0);
	ck_assert_int_eq(pool_preload(F.p, F.now, a, why, sizeof(why)), 0);
	inv();
	ck_assert_ptr_nonnull(a->server);
	ck_assert(a->server->preloaded);
	ck_assert_uint_eq(F.p->counters.preloads, 1);
	ck_assert_uint_eq(a->counters.preloads, 1);
	ck_assert_uint_eq(a->usage.cold_starts, 0);
	ev = last_event(POOL_EV_START, a);
	ck_assert(ev->preload);
	nsp = F.r.nspawns;
	ck_assert_int_eq(pool_preload(F.p, F.now, a, why, sizeof(why)), 0);
	ck_assert_int_eq(pool_preload(F.p, F.now, b, why, sizeof(why)), -1);
	ck_assert_msg(strstr(why, "does not fit") != NULL, "why: %s", why);
	ck_assert_uint_eq(F.r.nspawns, nsp);

	/* b's request takes the room of a's preload, still starting. */
	at(100);
	acquire(&wb, &F.own, b, true, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(stopped_model(0), a);
	ck_assert_int_eq(F.r.stops[0].state, POOL_STOPPING);
	ck_assert_int_eq(last_event(POOL_EV_EVICT, a)->reason, POOL_STOP_LRU);
	reap_last();
	ck_assert_ptr_nonnull(b->server);
	ck_assert(!b->server->preloaded);
	ck_assert_uint_eq(b->usage.cold_starts, 1);
	ready(b);

	/* c preloaded, then asked for: no longer a victim. */
	ck_assert_int_eq(pool_preload(F.p, F.now, c, why, sizeof(why)), 0);
	acquire(&wc, &F.own, c, false, LONG_MS);
	ck_assert_uint_eq(spawns_of(c), 1);
	acquire(&wd, &F.own, d, false, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert(d->is_pending);
	/* Nothing is preloaded while a request waits for room. */
	ck_assert_int_eq(pool_preload(F.p, F.now, e, why, sizeof(why)), -1);
	ck_assert_msg(strstr(why, "'d' waits for room") != NULL, "why: %s",
	    why);
	ready(c);
	expect_ok(&wc, c, "c preloaded");
	ck_assert(answer_of(&wc, "c")->cold);
	fx_done();
}
END_TEST

/* Refusals of pool_preload that need a pool of their own. */
START_TEST(test_preload_refused)
{
	struct pool_model	*f, *g;
	struct pool_waiter	 wf;
	char			 why[512];

	fx_init(NULL);
	f = model("f", 1 * G, 0);
	g = model("g", 1 * G, 0);
	F.r.fail_spawns = 1;
	acquire(&wf, &F.own, f, false, LONG_MS);
	expect_err(&wf, PROTO_E_START_FAILED, "f fails");
	ck_assert_uint_eq(events_of(POOL_EV_FAILED, f), 1);
	ck_assert_ptr_null(last_event(POOL_EV_FAILED, f)->server);
	ck_assert_int_eq(pool_preload(F.p, F.now, f, why, sizeof(why)), -1);
	ck_assert_msg(strstr(why, "backing off") != NULL, "why: %s", why);
	/* A spawn that fails: -1 with its error. */
	F.r.fail_spawns = 1;
	ck_assert_int_eq(pool_preload(F.p, F.now, g, why, sizeof(why)), -1);
	ck_assert_msg(strstr(why, "No such file") != NULL, "why: %s", why);
	ck_assert_uint_eq(g->usage.failed_starts, 1);
	ck_assert_uint_eq(F.p->counters.preloads, 0);
	pool_model_retire(F.p, F.now, g);
	inv();
	at(100000);
	ck_assert_int_eq(pool_preload(F.p, F.now, g, why, sizeof(why)), -1);
	ck_assert_msg(strstr(why, "was removed") != NULL, "why: %s", why);
	pool_shutdown(F.p, F.now);
	ck_assert_int_eq(pool_preload(F.p, F.now, f, why, sizeof(why)), -1);
	fx_done();
}
END_TEST

/*
 * Retire: waiters get unknown_model, an idle server stops now, a leased
 * one at its last release (reason retired), nothing starts it again,
 * and pool_model_remove works once nothing refers to it.
 */
START_TEST(test_retire)
{
	struct pool_model	*a, *b, *c, *x;
	struct pool_waiter	 wc, wc2, wb;
	char			 err[256];
	int64_t			 lb, lx;

	fx_init(NULL);
	a = model("a", 30 * G, 0);
	b = model("b", 40 * G, 0);
	x = model("x", 25 * G, 0);
	c = model("c", 50 * G, 0);
	at(0);
	warm(a, &F.own, false);
	lb = warm(b, &F.own, true);
	lx = warm(x, &F.own, true);
	acquire(&wc, &F.own, c, true, LONG_MS);
	ck_assert(c->is_pending);

	at(1000);
	pool_model_retire(F.p, F.now, c);
	inv();
	expect_msg(&wc, PROTO_E_UNKNOWN_MODEL, "model 'c' was removed", "c");
	ck_assert(!c->is_pending);
	acquire(&wc2, &F.own, c, true, LONG_MS);
	expect_msg(&wc2, PROTO_E_UNKNOWN_MODEL, "was removed", "c again");
	ck_assert_int_eq(set_prio(c, POOL_PRIO_PINNED, err, sizeof(err)), -1);
	ck_assert_int_eq(pool_model_remove(F.p, c), 0);
	forget_model(c);

	pool_model_retire(F.p, F.now, a);
	inv();
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(stopped_model(0), a);
	ck_assert_int_eq(F.r.stops[0].srv->stop_reason, POOL_STOP_RETIRED);
	ck_assert_int_eq(last_event(POOL_EV_EVICT, a)->reason,
	    POOL_STOP_RETIRED);
	ck_assert_uint_eq(a->counters.stops[POOL_STOP_RETIRED], 1);
	ck_assert_int_eq(pool_model_remove(F.p, a), -1);
	reap_last();
	ck_assert_int_eq(pool_model_remove(F.p, a), 0);
	forget_model(a);

	pool_model_retire(F.p, F.now, b);
	inv();
	ck_assert_uint_eq(F.r.nstops, 1);	/* leased: it runs on */
	acquire(&wb, &F.own, b, false, LONG_MS);
	expect_err(&wb, PROTO_E_UNKNOWN_MODEL, "b retired");
	ck_assert_int_eq(pool_model_remove(F.p, b), -1);
	at(2000);
	ck_assert_int_eq(release(lb), 0);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_eq(stopped_model(1), b);
	ck_assert_int_eq(F.r.stops[1].srv->stop_reason, POOL_STOP_RETIRED);
	reap_last();
	ck_assert_int_eq(pool_model_remove(F.p, b), 0);
	forget_model(b);
	ck_assert_int_eq(release(lx), 0);
	ck_assert_uint_eq(F.r.nstops, 2);
	fx_done();
}
END_TEST

/* A pinned model retired is unpinned and stops like any other. */
START_TEST(test_retire_pinned)
{
	struct pool_model	*p;

	fx_init(NULL);
	p = model_prio("pin", 30 * G, 0, POOL_PRIO_PINNED);
	ready(p);
	pool_model_retire(F.p, F.now, p);
	inv();
	ck_assert_int_ne(p->priority, POOL_PRIO_PINNED);
	ck_assert_uint_eq(pool_pinned_mem(F.p), 0);
	ck_assert_uint_eq(F.r.nstops, 1);
	reap_last();
	ck_assert_uint_eq(spawns_of(p), 1);	/* not restarted */
	ck_assert_int_eq(deadline(), -1);
	ck_assert_int_eq(pool_model_remove(F.p, p), 0);
	forget_model(p);
	fx_done();
}
END_TEST

static bool
near(double a, double b)
{
	return a - b < 1e-9 && b - a < 1e-9;
}

/*
 * Usage: acquires, hits, cold starts, loads and their times, last use,
 * time under lease (released, live, lost, owner gone), failed starts,
 * the decayed frequency (halved at each half-life), last_request.
 */
START_TEST(test_usage)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*a, *b, *c;
	struct pool_waiter	 wa, wb, we, wc;
	struct pool_usage	 u;
	int64_t			 la, lc;

	l.freq_half_life = 10000;
	fx_init(&l);
	a = model("a", 10 * G, 0);
	b = model("b", 10 * G, 0);
	c = model("c", 10 * G, 0);
	at(0);
	acquire(&wa, &F.own, a, true, LONG_MS);
	ck_assert_int_eq(F.p->last_request, T0);
	ck_assert_uint_eq(a->usage.cold_starts, 1);
	ck_assert_uint_eq(a->usage.acquires, 0);
	at(2000);
	ready(a);
	la = expect_ok(&wa, a, "a")->lease;
	ck_assert_uint_eq(a->usage.acquires, 1);
	ck_assert_uint_eq(a->usage.hits, 0);
	ck_assert_uint_eq(a->usage.loads, 1);
	ck_assert_uint_eq(a->usage.load_ms_total, 2000);
	ck_assert_int_eq(a->usage.last_load_ms, 2000);
	ck_assert_int_eq(a->usage.last_used, T0 + 2000);
	ck_assert(near(a->usage.freq, 1));
	ck_assert_int_eq(a->usage.freq_at, T0 + 2000);
	ck_assert_int_eq(last_event(POOL_EV_READY, a)->load_ms, 2000);

	at(7000);
	ck_assert_uint_eq(pool_usage_leased_ms(F.p, a, F.now), 5000);
	ck_assert_int_eq(release(la), 0);
	ck_assert_int_eq(F.p->last_request, T0 + 7000);
	ck_assert_uint_eq(a->usage.leased_ms, 5000);
	ck_assert_uint_eq(pool_usage_leased_ms(F.p, a, F.now), 5000);
	ck_assert_int_eq(release(la), -1);
	ck_assert_uint_eq(a->usage.leased_ms, 5000);

	/* One half-life after the use: half. */
	at(12000);
	ck_assert(near(pool_usage_freq(F.p, a, F.now), 0.5));
	ck_assert(near(pool_usage_freq(F.p, a, T0 + 22000), 0.25));
	ck_assert(near(a->usage.freq, 1));	/* reading changes nothing */
	touch(a);
	ck_assert_uint_eq(a->usage.acquires, 2);
	ck_assert_uint_eq(a->usage.hits, 1);
	ck_assert_uint_eq(a->usage.cold_starts, 1);
	ck_assert(near(a->usage.freq, 1.5));
	ck_assert(near(pool_usage_freq(F.p, a, T0 + 17000),
	    1.5 * 0.70710678118654752));
	ck_assert_int_eq(a->usage.last_used, T0 + 12000);

	/* A lease lost to a forced EVICT counts until the reap. */
	at(20000);
	la = hold_hot(a, &F.own);
	at(21000);
	evict(&we, &F.own2, a, true);
	at(23000);
	ck_assert_uint_eq(pool_usage_leased_ms(F.p, a, F.now), 8000);
	reap_last();
	ck_assert_uint_eq(a->usage.leased_ms, 8000);
	at(30000);
	ck_assert_int_eq(release(la), 0);
	ck_assert_uint_eq(a->usage.leased_ms, 8000);

	/* The owner gone: its leases end then. */
	lc = warm(c, &F.own2, true);
	ck_assert(lc > 0);
	at(31500);
	pool_owner_gone(F.p, F.now, &F.own2);
	inv();
	ck_assert_uint_eq(c->usage.leased_ms, 1500);

	/* Failed starts: a spawn that fails, a crash before ready. */
	F.r.fail_spawns = 1;
	acquire(&wb, &F.own, b, false, LONG_MS);
	ck_assert_uint_eq(b->usage.failed_starts, 1);
	ck_assert_uint_eq(b->usage.cold_starts, 0);
	at(40000);
	acquire(&wc, &F.own, b, false, LONG_MS);
	ck_assert_ptr_nonnull(b->server);
	reap(b->server, "exit status 1");
	ck_assert_uint_eq(b->usage.failed_starts, 2);
	ck_assert_uint_eq(b->usage.cold_starts, 1);
	ck_assert_uint_eq(b->usage.acquires, 0);

	/* Restored: taken as it is, freq decaying from freq_at. */
	memset(&u, 0, sizeof(u));
	u.acquires = 7;
	u.freq = 4;
	u.freq_at = F.now;
	u.leased_ms = 100;
	pool_usage_restore(F.p, b, &u);
	ck_assert_uint_eq(b->usage.acquires, 7);
	ck_assert(near(pool_usage_freq(F.p, b, F.now + 10000), 2));
	ck_assert_uint_eq(pool_usage_leased_ms(F.p, b, F.now), 100);
	u.freq = 0.0 / 0.0;
	pool_usage_restore(F.p, b, &u);
	ck_assert(near(b->usage.freq, 0));
	/* Never above the acquires: each adds 1, then decays. */
	u.freq = 1e299;
	pool_usage_restore(F.p, b, &u);
	ck_assert(near(b->usage.freq, 7));
	fx_done();
}
END_TEST

/* The default half-life, and a clock that goes back. */
START_TEST(test_usage_freq_default)
{
	struct pool_model	*a;

	fx_init(NULL);
	a = model("a", 10 * G, 0);
	at(0);
	warm(a, &F.own, false);
	ck_assert(near(pool_usage_freq(F.p, a, F.now +
	    POOL_FREQ_HALF_LIFE_DEFAULT), 0.5));
	ck_assert(near(pool_usage_freq(F.p, a, F.now - 5000), 1));
	ck_assert(pool_usage_freq(F.p, a, F.now + 2000 *
	    POOL_FREQ_HALF_LIFE_DEFAULT) == 0);
	fx_done();
}
END_TEST

/*
 * FREQ: the lowest decayed frequency goes, not the least recently used;
 * uses long ago count for less.
 */
START_TEST(test_policy_freq)
{
	struct pool_limits	 l = lim_default();
	struct pool_model	*a, *b, *c, *d, *e;
	struct pool_waiter	 wd, we;

	l.budget = 30 * G;
	l.policy = POOL_POLICY_FREQ;
	l.freq_half_life = 10000;
	fx_init(&l);
	a = model("a", 10 * G, 0);
	b = model("b", 10 * G, 0);
	c = model("c", 10 * G, 0);
	d = model("d", 10 * G, 0);
	e = model("e", 10 * G, 0);
	at(0);
	warm(a, &F.own, false);
	at(10);
	touch(a);
	at(20);
	touch(a);
	at(30);
	warm(c, &F.own, false);
	at(40);
	touch(c);
	at(50);
	warm(b, &F.own, false);		/* the newest, used once */
	at(60);
	acquire(&wd, &F.own, d, false, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(stopped_model(0), b);	/* LRU would stop a */
	reap_last();
	ready(d);
	/* Three half-lives on, a's three uses weigh 0.375: less than d's
	 * one (0.5 at 40000, used at 60 + ...). */
	at(30000);
	touch(d);
	at(30020);
	touch(c);
	touch(c);
	acquire(&we, &F.own, e, false, LONG_MS);
	ck_assert_uint_eq(F.r.nstops, 2);
	ck_assert_ptr_eq(stopped_model(1), a);
	fx_done();
}
END_TEST

/*
 * Events: start, ready, evict, exit for a server's life; failed for each
 * failed start (a spawn that fails, a crash before ready, a start
 * timeout); exit's reason is none when it left on its own.
 */
START_TEST(test_events)
{
	struct pool_model	*a, *b, *c, *d;
	struct pool_waiter	 wb, wc, wd;
	const struct rec_event	*ev;
	size_t			 i, n = 0;
	enum pool_event_kind	 seq[8];

	fx_init(NULL);
	a = model("a", 10 * G, 1000);
	b = model("b", 10 * G, 0);
	c = model("c", 10 * G, 0);
	d = model("d", 10 * G, 0);
	at(0);
	warm(a, &F.own, false);
	at(1000);
	tick();
	ck_assert_uint_eq(F.r.nstops, 1);
	reap_last();
	for (i = 0; i < F.r.nevents; i++)
		if (F.r.events[i].model == a && n < 8)
			seq[n++] = F.r.events[i].kind;
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(seq[0], POOL_EV_START);
	ck_assert_int_eq(seq[1], POOL_EV_READY);
	ck_assert_int_eq(seq[2], POOL_EV_EVICT);
	ck_assert_int_eq(seq[3], POOL_EV_EXIT);
	ck_assert(!last_event(POOL_EV_START, a)->preload);
	ck_assert_int_eq(last_event(POOL_EV_EVICT, a)->reason, POOL_STOP_IDLE);
	ev = last_event(POOL_EV_EXIT, a);
	ck_assert_int_eq(ev->reason, POOL_STOP_IDLE);
	ck_assert_str_eq(ev->message, "exited with status 0");
	ck_assert_uint_eq(a->counters.stops[POOL_STOP_IDLE], 1);

	F.r.fail_spawns = 1;
	acquire(&wb, &F.own, b, false, LONG_MS);
	ev = last_event(POOL_EV_FAILED, b);
	ck_assert_ptr_null(ev->server);
	ck_assert_ptr_nonnull(strstr(ev->message, "No such file"));
	ck_assert_uint_eq(events_of(POOL_EV_START, b), 0);

	acquire(&wc, &F.own, c, false, LONG_MS);
	at(1500);
	n = F.r.nevents;
	reap(c->server, "exit status 1: bad magic");
	ck_assert_uint_eq(F.r.nevents, n + 2);
	ck_assert_int_eq(F.r.events[n].kind, POOL_EV_EXIT);
	ck_assert_int_eq(F.r.events[n].reason, POOL_STOP_NONE);
	ck_assert_int_eq(F.r.events[n + 1].kind, POOL_EV_FAILED);
	ck_assert_ptr_nonnull(strstr(F.r.events[n + 1].message, "bad magic"));

	acquire(&wd, &F.own, d, false, LONG_MS);
	at(1500 + F.lim.start_timeout);
	n = F.r.nevents;
	tick();
	ck_assert_uint_eq(F.r.nevents, n + 2);
	ck_assert_int_eq(F.r.events[n].kind, POOL_EV_FAILED);
	ck_assert_int_eq(F.r.events[n + 1].kind, POOL_EV_EVICT);
	ck_assert_int_eq(F.r.events[n + 1].reason, POOL_STOP_START_TIMEOUT);
	reap_last();
	ck_assert_int_eq(last_event(POOL_EV_EXIT, d)->reason,
	    POOL_STOP_START_TIMEOUT);
	ck_assert_uint_eq(F.p->counters.stops[POOL_STOP_START_TIMEOUT], 1);

	F.r.allow_leased_stop = true;
	pool_shutdown(F.p, F.now);
	inv();
	ck_assert_uint_eq(events_of(POOL_EV_EVICT, NULL), 2);
	fx_done();
}
END_TEST

/*
 * PRESSURE: once per wait of a model kept out by leases, however many
 * events pass; again after the model left the queue and waits anew;
 * not for a head that only waits for reaps.
 */
START_TEST(test_pressure_once)
{
	struct pool_model	*big, *x, *y;
	struct pool_waiter	 wx, wx2, wx3, wy;
	int64_t			 lb;

	fx_init(NULL);
	big = model("big", 80 * G, 0);
	x = model("x", 30 * G, 0);
	y = model("y", 15 * G, 0);
	at(0);
	lb = warm(big, &F.own, true);
	acquire(&wx, &F.own, x, false, 5000);
	ck_assert_uint_eq(events_of(POOL_EV_PRESSURE, x), 1);
	ck_assert(x->pressured);
	acquire(&wx2, &F.own2, x, false, 5000);
	at(1000);
	tick();
	acquire(&wy, &F.own, y, false, LONG_MS);	/* passes x */
	ck_assert_ptr_nonnull(y->server);
	ready(y);
	ck_assert_uint_eq(events_of(POOL_EV_PRESSURE, x), 1);
	ck_assert_uint_eq(events_of(POOL_EV_PRESSURE, NULL), 1);
	at(5000);
	tick();					/* both waits run out */
	expect_err(&wx, PROTO_E_BUSY, "x");
	ck_assert(!x->pressured);
	at(6000);
	acquire(&wx3, &F.own, x, false, LONG_MS);
	ck_assert_uint_eq(events_of(POOL_EV_PRESSURE, x), 2);
	/* The lease ends: y is stopped for x, which waits for the reap
	 * (no pressure), then starts. */
	ck_assert_int_eq(release(lb), 0);
	ck_assert_uint_eq(F.r.nstops, 2);
	reap(F.r.stops[0].srv, "exited");
	reap(F.r.stops[1].srv, "exited");
	ck_assert_ptr_nonnull(x->server);
	ck_assert(!x->pressured);
	ck_assert_uint_eq(events_of(POOL_EV_PRESSURE, NULL), 2);
	fx_done();
}
END_TEST

/* Load times per bucket: a bound is its bucket's, the last is slower. */
START_TEST(test_load_hist)
{
	struct pool_limits	 l = lim_default();
	static const pool_ms	 loads[] = { 500, 1000, 1001, 2500, 300000,
	    300001, 400000 };
	struct pool_model	*m[7];
	char			 name[8];
	size_t			 i;

	l.start_timeout = 1000000;
	l.max_servers = 16;
	fx_init(&l);
	for (i = 0; i < 7; i++) {
		snprintf(name, sizeof(name), "m%zu", i);
		m[i] = model(name, 1 * G, 0);
		load(m[i], (pool_ms)i * 1000000, loads[i]);
	}
	ck_assert_uint_eq(F.p->counters.load_hist[0], 2);
	ck_assert_uint_eq(F.p->counters.load_hist[1], 2);
	ck_assert_uint_eq(F.p->counters.load_hist[8], 1);
	ck_assert_uint_eq(F.p->counters.load_hist[POOL_LOAD_BUCKETS - 1], 2);
	for (i = 2; i < 8; i++)
		ck_assert_uint_eq(F.p->counters.load_hist[i], 0);
	ck_assert_uint_eq(m[6]->counters.load_hist[POOL_LOAD_BUCKETS - 1], 1);
	ck_assert_uint_eq(m[6]->usage.last_load_ms, 400000);
	ck_assert_int_eq(pool_load_bounds[POOL_LOAD_BUCKETS - 2], 300000);
	fx_done();
}
END_TEST

/* Names of the priorities, both ways. */
START_TEST(test_priority_names)
{
	int	 i;

	for (i = 0; i < POOL_PRIO__COUNT; i++)
		ck_assert_int_eq(pool_priority_from_name(
		    pool_priority_name((enum pool_priority)i)), i);
	ck_assert_int_eq(pool_priority_from_name("PINNED"), -1);
	ck_assert_int_eq(pool_priority_from_name(""), -1);
	ck_assert_str_eq(pool_stop_reason_name(POOL_STOP_BUDGET), "budget");
	ck_assert_str_eq(pool_stop_reason_name(POOL_STOP_RETIRED), "retired");
}
END_TEST

/*
 * A retired model stays retired through pool_model_add (a new estimate
 * of it), its leased server stopping at its release, until removed; a
 * model of the same name added then is a new one.
 */
START_TEST(test_retire_readd)
{
	struct pool_model	*a, *a2;
	struct pool_waiter	 w;
	int64_t			 la;

	fx_init(NULL);
	a = model("a", 10 * G, 0);
	la = warm(a, &F.own, true);
	pool_model_retire(F.p, F.now, a);
	inv();
	ck_assert_ptr_eq(pool_model_add(F.p, "a", 12 * G, 0), a);
	ck_assert(a->retired);
	ck_assert_uint_eq(a->mem, 12 * G);
	ck_assert_int_eq(release(la), 0);
	ck_assert_uint_eq(F.r.nstops, 1);
	reap_last();
	ck_assert_int_eq(pool_model_remove(F.p, a), 0);
	forget_model(a);
	a2 = model("a", 10 * G, 0);
	ck_assert(!a2->retired);
	acquire(&w, &F.own, a2, false, LONG_MS);
	ck_assert_ptr_nonnull(a2->server);
	fx_done();
}
END_TEST

/*
 * A request for a pinned model that waits for room waits with it: the
 * pinned start is then for the request (not a preload, a cold start).
 */
START_TEST(test_pinned_acquired_while_waiting)
{
	struct pool_model	*l, *p;
	struct pool_waiter	 wp;
	char			 err[256];
	int64_t			 ll;

	fx_init(NULL);
	l = model("l", 70 * G, 0);
	p = model("pin", 50 * G, 0);
	ll = warm(l, &F.own, true);
	ck_assert_int_eq(set_prio(p, POOL_PRIO_PINNED, err, sizeof(err)), 0);
	ck_assert_ptr_null(p->server);
	acquire(&wp, &F.own2, p, true, LONG_MS);
	ck_assert(p->is_pending);
	ck_assert_uint_eq(events_of(POOL_EV_PRESSURE, p), 1);
	ck_assert_int_eq(release(ll), 0);
	reap_last();
	ck_assert_ptr_nonnull(p->server);
	ck_assert(!p->server->preloaded);
	ck_assert(!last_event(POOL_EV_START, p)->preload);
	ck_assert_uint_eq(p->usage.cold_starts, 1);
	ck_assert_uint_eq(F.p->counters.preloads, 0);
	ready(p);
	expect_ok(&wp, p, "pin for a request");
	fx_done();
}
END_TEST

/* Two GPUs of 40 G: a (20 G) and c (15 G) on GPU 0, b (20 G) on 1. */
static void
gpus_abc(struct pool_model **a, struct pool_model **b, struct pool_model **c)
{
	struct pool_limits	 l = lim_default();

	l.ngpus = 2;
	l.gpu_budgets[0] = 40 * G;
	l.gpu_budgets[1] = 40 * G;
	fx_init(&l);
	*a = model("a", 10 * G, 0);
	*b = model("b", 10 * G, 0);
	*c = model("c", 10 * G, 0);
	(*a)->gpu_mem = (*b)->gpu_mem = 20 * G;
	(*c)->gpu_mem = 15 * G;
	(*a)->gpu_share[0] = (*c)->gpu_share[0] = 1;
	(*b)->gpu_share[1] = 1;
}

/*
 * A smaller GPU budget stops idle servers on that GPU only, least
 * recently used first; the number of GPUs does not change.
 */
START_TEST(test_set_limits_gpu)
{
	struct pool_limits	 nl;
	struct pool_model	*a, *b, *c;

	gpus_abc(&a, &b, &c);
	at(0);
	warm(b, &F.own, false);
	at(100);
	warm(a, &F.own, false);
	at(200);
	warm(c, &F.own, false);
	ck_assert_uint_eq(F.p->gpu_dev_used[0], 35 * G);
	nl = F.p->lim;
	nl.gpu_budgets[0] = 20 * G;
	F.shrunk = true;
	pool_set_limits(F.p, F.now, &nl);
	inv();
	ck_assert_uint_eq(F.p->lim.gpu_budget, 60 * G);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(stopped_model(0), a);	/* not b: GPU 1 */
	ck_assert_int_eq(last_event(POOL_EV_EVICT, a)->reason,
	    POOL_STOP_BUDGET);
	nl.ngpus = 1;
	pool_set_limits(F.p, F.now, &nl);
	inv();
	ck_assert_uint_eq(F.p->lim.ngpus, 2);
	ck_assert_uint_eq(F.p->lim.gpu_budgets[0], 20 * G);
	ck_assert_uint_eq(F.r.nstops, 1);
	fx_done();
}
END_TEST

/*
 * A smaller GPU budget that only leased servers keep the pool over:
 * nothing idle elsewhere goes for it, and each server on that GPU is
 * stopped when released while the GPU is still over, not once it fits.
 */
START_TEST(test_set_limits_gpu_leased)
{
	struct pool_limits	 nl;
	struct pool_model	*a, *b, *c;
	int64_t			 la, lc;

	gpus_abc(&a, &b, &c);
	at(0);
	warm(b, &F.own, false);
	la = warm(a, &F.own, true);
	lc = warm(c, &F.own, true);
	nl = F.p->lim;
	nl.gpu_budgets[0] = 20 * G;
	F.shrunk = true;
	pool_set_limits(F.p, F.now, &nl);
	inv();
	ck_assert_uint_eq(F.r.nstops, 0);	/* not b: GPU 1 */
	at(1000);
	ck_assert_int_eq(release(lc), 0);
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_ptr_eq(F.r.stops[0].model, c);
	ck_assert_uint_eq(c->counters.stops[POOL_STOP_BUDGET], 1);
	/* 35 G on GPU 0 until c is reaped, but 20 once it is: a stays. */
	ck_assert_int_eq(release(la), 0);
	ck_assert_uint_eq(F.r.nstops, 1);
	reap(F.r.stops[0].srv, "exited");
	ck_assert_uint_eq(F.p->gpu_dev_used[0], 20 * G);
	ck_assert_ptr_nonnull(a->server);
	ck_assert_ptr_nonnull(b->server);
	fx_done();
}
END_TEST

/*
 * A pinned server's health fails: it is stopped (the one stop a pinned
 * server gets besides start timeout and shutdown) and started again.
 */
START_TEST(test_pinned_unhealthy)
{
	struct pool_limits	 l = lim_watched();
	struct pool_model	*p;

	fx_init(&l);
	p = model_prio("pin", 10 * G, 0, POOL_PRIO_PINNED);
	ready(p);
	at(l.health_interval);
	tick();
	checked(p, false, "connection refused");
	at(l.health_interval + POOL_HEALTH_RETRY_MS);
	tick();
	checked(p, false, "connection refused");
	ck_assert_uint_eq(F.r.nstops, 1);
	ck_assert_int_eq(last_event(POOL_EV_EVICT, p)->reason,
	    POOL_STOP_UNHEALTHY);
	ck_assert_uint_eq(p->counters.stops[POOL_STOP_UNHEALTHY], 1);
	reap_last();
	ck_assert_uint_eq(spawns_of(p), 2);
	fx_done();
}
END_TEST

static TCase *
issue12_tcase(void)
{
	TCase	*tc = tcase_create("issue12");

	tcase_add_test(tc, test_prio_class_order);
	tcase_add_test(tc, test_prio_high_last);
	tcase_add_test(tc, test_pinned_never_evicted);
	tcase_add_test(tc, test_pinned_restart);
	tcase_add_test(tc, test_pin_over_budget);
	tcase_add_test(tc, test_pinned_leave_running);
	tcase_add_test(tc, test_pinned_before_queue);
	tcase_add_test(tc, test_set_limits_shrink);
	tcase_add_test(tc, test_preload);
	tcase_add_test(tc, test_preload_refused);
	tcase_add_test(tc, test_retire);
	tcase_add_test(tc, test_retire_pinned);
	tcase_add_test(tc, test_usage);
	tcase_add_test(tc, test_usage_freq_default);
	tcase_add_test(tc, test_policy_freq);
	tcase_add_test(tc, test_events);
	tcase_add_test(tc, test_pressure_once);
	tcase_add_test(tc, test_load_hist);
	tcase_add_test(tc, test_priority_names);
	tcase_add_test(tc, test_retire_readd);
	tcase_add_test(tc, test_pinned_acquired_while_waiting);
	tcase_add_test(tc, test_set_limits_gpu);
	tcase_add_test(tc, test_set_limits_gpu_leased);
	tcase_add_test(tc, test_pinned_unhealthy);
	return tc;
}
