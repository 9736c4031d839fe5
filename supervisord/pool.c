/*
 * pool.c — the pool's decisions: who starts, who waits, who is evicted.
 *
 * Pure: no fork, socket, clock or libev.  Time comes in as `now`, effects
 * leave through p->ops.  The rules are in docs/DESIGN.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpus.h"
#include "pool.h"
#include "victim.h"

#define MODEL_BUCKETS_MIN	1024
#define LEASE_BUCKETS_MIN	256
/* Lease ids: EPOCH << 32 | sequence, EPOCH of 21 bits: below 2^53. */
#define LEASE_SEQ_BITS		32
#define LEASE_EPOCH_MAX		((UINT32_C(1) << 21) - 1)

static void	 schedule(struct pool *, pool_ms);
static void	 stop_server(struct pool *, pool_ms, struct pool_server *,
		    enum pool_stop_reason);
static void	 lost_end(struct pool *, struct pool_lost *);
static const char *busy_reason(const struct pool *, const struct pool_model *,
		    char *, size_t);
static void	 unpin(struct pool *, pool_ms, struct pool_model *);
static void	 shed_shrunk(struct pool *, pool_ms, bool);

/* --- small helpers --- */

char *
pool_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = {
	    "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"
	};
	double v = (double)bytes;
	int i = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return buf;
	}
	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[i]);
	return buf;
}

static void
plog(struct pool *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
plog(struct pool *p, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (p->ops->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	p->ops->log(p->ctx, line);
}

/* Tells the daemon (events, metrics); the callback may not call back. */
static void
emit(struct pool *p, enum pool_event_kind kind, const struct pool_model *m,
    const struct pool_server *srv, const struct pool_event *more)
{
	struct pool_event ev;

	if (p->ops->event == NULL)
		return;
	if (more != NULL)
		ev = *more;
	else
		memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.model = m;
	ev.server = srv;
	p->ops->event(p->ctx, &ev);
}

static uint64_t
hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

const char *
pool_state_name(enum pool_state s)
{
	switch (s) {
	case POOL_STARTING:	return "starting";
	case POOL_READY:	return "ready";
	case POOL_STOPPING:	return "stopping";
	}
	return "unknown";
}

const char *
pool_stop_reason_name(enum pool_stop_reason r)
{
	switch (r) {
	case POOL_STOP_NONE:		return "none";
	case POOL_STOP_LRU:		return "lru";
	case POOL_STOP_IDLE:		return "idle";
	case POOL_STOP_ADMIN:		return "evict";
	case POOL_STOP_START_TIMEOUT:	return "start_timeout";
	case POOL_STOP_SHUTDOWN:	return "shutdown";
	case POOL_STOP_UNHEALTHY:	return "unhealthy";
	case POOL_STOP_BUDGET:		return "budget";
	case POOL_STOP_RETIRED:		return "retired";
	case POOL_STOP__COUNT:		break;
	}
	return "unknown";
}

const char *
pool_model_state(const struct pool *p, const struct pool_model *m,
    pool_ms now)
{
	const struct pool_server *srv;

	if (m->server != NULL)
		return pool_state_name(m->server->state);
	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->model == m)
			return "stopping";
	if (m->failures > 0 && now < m->retry_at)
		return p->lim.max_failures > 0 &&
		    m->failures >= p->lim.max_failures ? "failed" : "backoff";
	return "stopped";
}

unsigned
pool_waiting(const struct pool *p)
{
	return p->nwaiters;
}

/* --- life of the pool --- */

struct pool *
pool_new(const struct pool_limits *lim, const struct pool_ops *ops,
    void *ctx, pool_ms now)
{
	struct pool *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->lim = *lim;
	gpus_limits(&p->lim);
	p->ops = ops;
	p->ctx = ctx;
	TAILQ_INIT(&p->servers);
	TAILQ_INIT(&p->pending);
	TAILQ_INIT(&p->lost);
	TAILQ_INIT(&p->pinned);
	p->started_at = now;
	p->nbuckets = MODEL_BUCKETS_MIN;
	p->nlease_buckets = LEASE_BUCKETS_MIN;
	p->models = calloc(p->nbuckets, sizeof(*p->models));
	p->leases = calloc(p->nlease_buckets, sizeof(*p->leases));
	if (lim->port_max >= lim->port_min)
		p->port_freed = calloc((size_t)(lim->port_max - lim->port_min)
		    + 1, sizeof(*p->port_freed));
	if (p->models == NULL || p->leases == NULL ||
	    (lim->port_max >= lim->port_min && p->port_freed == NULL)) {
		pool_free(p);
		return NULL;
	}
	return p;
}

void
pool_free(struct pool *p)
{
	struct pool_server *srv, *tsrv;
	struct pool_model *m, *tm;
	struct pool_lease *l, *tl;
	struct pool_lost *g, *tg;
	size_t i;

	if (p == NULL)
		return;
	TAILQ_FOREACH_SAFE(srv, &p->servers, link, tsrv)
		free(srv);
	TAILQ_FOREACH_SAFE(g, &p->lost, link, tg)
		free(g);
	for (i = 0; p->leases != NULL && i < p->nlease_buckets; i++)
		for (l = p->leases[i]; l != NULL; l = tl) {
			tl = l->hash_next;
			free(l);
		}
	for (i = 0; p->models != NULL && i < p->nbuckets; i++)
		for (m = p->models[i]; m != NULL; m = tm) {
			tm = m->hash_next;
			free(m->name);
			free(m);
		}
	free(p->leases);
	free(p->models);
	free(p->port_freed);
	free(p);
}

/* --- the catalog --- */

struct pool_model *
pool_model_find(const struct pool *p, const char *name)
{
	struct pool_model *m;

	m = p->models[hash_name(name) % p->nbuckets];
	for (; m != NULL; m = m->hash_next)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

/* Keeps chains short as the catalog grows to 10,000 models and more. */
static void
grow_models(struct pool *p)
{
	struct pool_model **nb, *m, *next;
	size_t n = p->nbuckets * 4, i;

	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;		/* longer chains, still correct */
	for (i = 0; i < p->nbuckets; i++)
		for (m = p->models[i]; m != NULL; m = next) {
			next = m->hash_next;
			m->hash_next = nb[hash_name(m->name) % n];
			nb[hash_name(m->name) % n] = m;
		}
	free(p->models);
	p->models = nb;
	p->nbuckets = n;
}

struct pool_model *
pool_model_add(struct pool *p, const char *name, uint64_t mem,
    pool_ms idle_timeout)
{
	struct pool_model *m;
	size_t b;

	if ((m = pool_model_find(p, name)) != NULL) {
		m->mem = mem;
		m->idle_timeout = idle_timeout;
		/* (A retired model stays retired: a new estimate is not a
		 * new model.  One whose file is back is added again once
		 * pool_model_remove() has freed it.) */
		return m;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	if ((m->name = strdup(name)) == NULL) {
		free(m);
		return NULL;
	}
	m->mem = mem;
	m->idle_timeout = idle_timeout;
	m->priority = POOL_PRIO_NORMAL;
	TAILQ_INIT(&m->queued);
	if (p->nmodels >= p->nbuckets * 2)
		grow_models(p);
	b = hash_name(name) % p->nbuckets;
	m->hash_next = p->models[b];
	p->models[b] = m;
	p->nmodels++;
	return m;
}

/* --- leases --- */

static struct pool_lease **
lease_slot(const struct pool *p, int64_t id)
{
	return &p->leases[(uint64_t)id % p->nlease_buckets];
}

static struct pool_lease *
lease_find(const struct pool *p, int64_t id)
{
	struct pool_lease *l;

	for (l = *lease_slot(p, id); l != NULL; l = l->hash_next)
		if (l->id == id)
			return l;
	return NULL;
}

static void
grow_leases(struct pool *p)
{
	struct pool_lease **nb, *l, *next;
	size_t n = p->nlease_buckets * 4, i;

	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < p->nlease_buckets; i++)
		for (l = p->leases[i]; l != NULL; l = next) {
			next = l->hash_next;
			l->hash_next = nb[(uint64_t)l->id % n];
			nb[(uint64_t)l->id % n] = l;
		}
	free(p->leases);
	p->leases = nb;
	p->nlease_buckets = n;
}

void
pool_lease_epoch(struct pool *p, uint32_t epoch)
{
	p->next_lease = (int64_t)(epoch % LEASE_EPOCH_MAX + 1) <<
	    LEASE_SEQ_BITS;
}

/* The next id after the last one given, skipping any still held (only
 * possible once the ids have gone round 2^53, but then possible). */
static int64_t
lease_next_id(struct pool *p)
{
	do
		p->next_lease = p->next_lease >= PROTO_LEASE_MAX ? 1 :
		    p->next_lease + 1;
	while (lease_find(p, p->next_lease) != NULL);
	return p->next_lease;
}

int64_t
pool_lease_id(struct pool *p)
{
	return lease_next_id(p);
}

static struct pool_lease *
lease_new(struct pool *p, pool_ms now, struct pool_server *srv,
    struct pool_owner *owner)
{
	struct pool_lease *l, **slot;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	if (p->nleases >= p->nlease_buckets * 2)
		grow_leases(p);
	l->id = lease_next_id(p);
	l->since = now;
	l->server = srv;
	l->owner = owner;
	TAILQ_INSERT_TAIL(&srv->lease_list, l, server_link);
	if (owner != NULL) {
		TAILQ_INSERT_TAIL(&owner->leases, l, owner_link);
		owner->nleases++;
	}
	slot = lease_slot(p, l->id);
	l->hash_next = *slot;
	*slot = l;
	p->nleases++;
	srv->leases++;
	return l;
}

/* Time under a lease counts for its model (usage.leased_ms). */
static void
lease_time(struct pool_model *m, pool_ms now, const struct pool_lease *l)
{
	if (now > l->since)
		m->usage.leased_ms += (uint64_t)(now - l->since);
}

/*
 * Ends a lease; its server (if any) is used now, which LRU reads, and
 * stops if its model was retired and this was its last lease.
 */
static void
lease_end(struct pool *p, pool_ms now, struct pool_lease *l)
{
	struct pool_lease **pp;
	struct pool_server *srv = l->server;

	for (pp = lease_slot(p, l->id); *pp != l; pp = &(*pp)->hash_next)
		;
	*pp = l->hash_next;
	p->nleases--;
	if (l->owner != NULL) {
		TAILQ_REMOVE(&l->owner->leases, l, owner_link);
		l->owner->nleases--;
	}
	if (l->lost != NULL && --l->lost->leases == 0)
		lost_end(p, l->lost);
	if (srv != NULL) {
		lease_time(srv->model, now, l);
		TAILQ_REMOVE(&srv->lease_list, l, server_link);
		srv->leases--;
		srv->last_used = now;
		srv->model->last_used = now;
		gds_credit(p, srv);
	}
	p->counters.releases++;
	free(l);
	if (srv != NULL && srv->model->retired && srv->leases == 0 &&
	    srv->state == POOL_READY) {
		plog(p, "stop retired %s: its last lease ended",
		    srv->model->name);
		stop_server(p, now, srv, POOL_STOP_RETIRED);
	}
}

/* --- waiters --- */

/* A pending model's place: when its oldest live waiter arrived. */
static pool_ms
queued_since(const struct pool_model *m)
{
	return TAILQ_FIRST(&m->queued)->since;
}

/*
 * Puts m (with waiters on m->queued) on the pending queue at the place of
 * its oldest waiter: a model whose first request gave up does not keep
 * that request's place ahead of later models.
 */
static void
pend(struct pool *p, struct pool_model *m)
{
	struct pool_model *prev;

	if (m->is_pending)
		TAILQ_REMOVE(&p->pending, m, pending);
	else
		m->passes = 0;
	m->is_pending = true;
	for (prev = TAILQ_LAST(&p->pending, pool_pending);
	    prev != NULL && queued_since(prev) > queued_since(m);
	    prev = TAILQ_PREV(prev, pool_pending, pending))
		;
	if (prev == NULL)
		TAILQ_INSERT_HEAD(&p->pending, m, pending);
	else
		TAILQ_INSERT_AFTER(&p->pending, prev, m, pending);
}

static void
waiter_link(struct pool *p, struct pool_waiter *w, struct pool_waiter_list *on)
{
	w->list = on;
	TAILQ_INSERT_TAIL(on, w, link);
	if (w->owner != NULL) {
		TAILQ_INSERT_TAIL(&w->owner->waiters, w, owner_link);
		if (w->kind == POOL_WAIT_ACQUIRE && w->hold)
			w->owner->nwaiting_holds++;
	}
	if (w->kind == POOL_WAIT_ACQUIRE)
		p->nwaiters++;
}

/*
 * Takes w off every list; a model nobody waits for leaves the queue, and
 * one whose oldest waiter left moves to the place of the next.
 */
static void
waiter_unlink(struct pool *p, struct pool_waiter *w)
{
	struct pool_model *m = w->model;
	bool oldest = w->list == &m->queued && TAILQ_FIRST(&m->queued) == w;

	TAILQ_REMOVE(w->list, w, link);
	if (w->owner != NULL) {
		TAILQ_REMOVE(&w->owner->waiters, w, owner_link);
		if (w->kind == POOL_WAIT_ACQUIRE && w->hold)
			w->owner->nwaiting_holds--;
	}
	if (w->kind == POOL_WAIT_ACQUIRE)
		p->nwaiters--;
	if (w->list == &m->queued && TAILQ_EMPTY(&m->queued) &&
	    m->is_pending) {
		TAILQ_REMOVE(&p->pending, m, pending);
		m->is_pending = false;
		m->pressured = false;	/* the wait is over */
	} else if (oldest && m->is_pending)
		pend(p, m);
	w->list = NULL;
}

static void
answer_error(struct pool *p, struct pool_waiter *w, enum proto_err err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
answer_error(struct pool *p, struct pool_waiter *w, enum proto_err err,
    const char *fmt, ...)
{
	struct pool_answer a = { .err = err };
	char msg[POOL_ERROR_MAX + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	a.message = msg;
	p->ops->answer(p->ctx, w, &a);
}

/*
 * 2^-halves for halves >= 0, without libm (the fuzzers link the core
 * without it): 2^-n by halving, 2^-f = e^(-f ln 2) by its series, which
 * for f < 1 is exact to the last bit well within 24 terms.
 */
static double
pow2_neg(double halves)
{
	double r = 1, term = 1, y;
	int n;

	if (!(halves < 1100))		/* also NaN */
		return 0;
	n = (int)halves;
	y = -(halves - n) * 0.69314718055994530942;
	for (int k = 1; k < 24; k++) {
		term *= y / k;
		r += term;
	}
	while (n-- > 0)
		r *= 0.5;
	return r;
}

/* The decayed frequency's half-life, ms. */
static double
half_life(const struct pool *p)
{
	return (double)(p->lim.freq_half_life > 0 ? p->lim.freq_half_life :
	    POOL_FREQ_HALF_LIFE_DEFAULT);
}

double
pool_usage_freq(const struct pool *p, const struct pool_model *m, pool_ms now)
{
	if (now <= m->usage.freq_at || m->usage.freq == 0)
		return m->usage.freq;
	return m->usage.freq * pow2_neg((double)(now - m->usage.freq_at) /
	    half_life(p));
}

/* An ACQUIRE of m was answered with a server now. */
static void
usage_used(struct pool *p, struct pool_model *m, pool_ms now)
{
	m->usage.acquires++;
	m->usage.last_used = now;
	m->usage.freq = pool_usage_freq(p, m, now) + 1;
	/* (A clock that jumped back does not move freq_at back: the decay
	 * of a later use starts from the latest.) */
	if (now > m->usage.freq_at)
		m->usage.freq_at = now;
}

/* Answers an ACQUIRE with srv, taking a lease if it asked to hold one. */
static void
grant(struct pool *p, pool_ms now, struct pool_waiter *w,
    struct pool_server *srv, bool cold)
{
	struct pool_answer a = { .err = PROTO_OK, .server = srv, .cold = cold };
	struct pool_model *m = srv->model;
	struct pool_lease *l;

	if (w->hold) {
		if ((l = lease_new(p, now, srv, w->owner)) == NULL) {
			answer_error(p, w, PROTO_E_INTERNAL,
			    "out of memory taking a lease");
			return;
		}
		a.lease = l->id;
	}
	srv->last_used = m->last_used = now;
	gds_credit(p, srv);
	a.wait_ms = now - w->since;
	p->counters.acquires++;
	m->counters.acquires++;
	if (cold) {
		p->counters.misses++;
		m->counters.misses++;
	} else {
		p->counters.hits++;
		m->counters.hits++;
		m->usage.hits++;
	}
	usage_used(p, m, now);
	p->ops->answer(p->ctx, w, &a);
}

static void
fail_all(struct pool *p, struct pool_waiter_list *list, enum proto_err err,
    const char *msg)
{
	struct pool_waiter *w;

	while ((w = TAILQ_FIRST(list)) != NULL) {
		waiter_unlink(p, w);
		answer_error(p, w, err, "%s", msg);
	}
}

/*
 * srv is gone or going while ACQUIREs wait on it (for its start or a
 * health check): they go back to its model's queue, keeping their
 * arrival and deadline, for a fresh start.
 */
static void
requeue_waiters(struct pool *p, struct pool_server *srv)
{
	struct pool_model *m = srv->model;
	struct pool_waiter *w;

	if (TAILQ_EMPTY(&srv->waiters))
		return;
	while ((w = TAILQ_LAST(&srv->waiters, pool_waiter_list)) != NULL) {
		TAILQ_REMOVE(&srv->waiters, w, link);
		w->list = &m->queued;
		w->queued = true;
		TAILQ_INSERT_HEAD(&m->queued, w, link);
	}
	pend(p, m);
}

/* --- failures and backoff --- */

static pool_ms
backoff_delay(unsigned failures)
{
	pool_ms d = POOL_BACKOFF_MIN_MS;

	while (failures-- > 1 && d < POOL_BACKOFF_MAX_MS)
		d *= 2;
	return d < POOL_BACKOFF_MAX_MS ? d : POOL_BACKOFF_MAX_MS;
}

/* So many starts failed in a row that the model rests for a cooldown. */
static bool
model_failed(const struct pool *p, const struct pool_model *m)
{
	return p->lim.max_failures > 0 && m->failures >= p->lim.max_failures;
}

/*
 * The model failed (a start, or a server soon after its ready): remember
 * why, and hold the next start back.
 */
static void
model_failure(struct pool *p, pool_ms now, struct pool_model *m,
    const char *why)
{
	pool_ms delay;

	m->failures++;
	p->failure_seq++;
	p->last_failed = m;
	delay = backoff_delay(m->failures);
	if (model_failed(p, m))
		delay = p->lim.failed_cooldown;
	m->retry_at = now + delay;
	snprintf(m->last_error, sizeof(m->last_error), "%s", why);
	if (model_failed(p, m))
		plog(p, "failed %s: %u failed starts in a row; no start for "
		    "%.0f s (EVICT clears it): %s", m->name, m->failures,
		    (double)delay / 1000, why);
	else
		plog(p, "start failed %s (%u in a row, next try in %.1f s): "
		    "%s", m->name, m->failures, (double)delay / 1000, why);
}

/* A start failed: srv crashed or timed out before ready, or (NULL) the
 * spawn itself failed. */
static void
start_failed(struct pool *p, pool_ms now, struct pool_model *m,
    const struct pool_server *srv, const char *why)
{
	struct pool_event ev = { .message = why };

	p->counters.start_failures++;
	m->counters.start_failures++;
	m->usage.failed_starts++;
	model_failure(p, now, m, why);
	emit(p, POOL_EV_FAILED, m, srv, &ev);
}

/* A server ran long enough: the model's failures in a row end. */
static void
model_proven(struct pool_model *m)
{
	m->failures = 0;
	m->retry_at = 0;
}

/*
 * --- ports ---
 *
 * A port is held from the spawn until the reap, and after the reap for as
 * long as a lost lease names it (struct pool_lost): a client that still
 * holds a lease must never find another model behind its port.  Free
 * ports are handed out least recently freed first (never used ones first,
 * lowest first), so a just-freed port rests as long as it can: a client
 * that has not heard of its server's end yet meets a refused connection
 * rather than a stranger.
 */

static void
port_freed_now(struct pool *p, int port)
{
	if (p->port_freed != NULL && port >= p->lim.port_min &&
	    port <= p->lim.port_max)
		p->port_freed[port - p->lim.port_min] = ++p->port_seq;
}

static struct pool_lost *
lost_on_port(const struct pool *p, int port)
{
	struct pool_lost *g;

	TAILQ_FOREACH(g, &p->lost, link)
		if (g->port == port)
			return g;
	return NULL;
}

static bool
port_taken(const struct pool *p, int port)
{
	const struct pool_server *srv;

	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->port == port)
			return true;
	return lost_on_port(p, port) != NULL;
}

struct port_rank {
	uint64_t	freed;
	int		port;
};

static int
by_freed(const void *a, const void *b)
{
	const struct port_rank *x = a, *y = b;

	if (x->freed != y->freed)
		return x->freed < y->freed ? -1 : 1;
	return (x->port > y->port) - (x->port < y->port);
}

/* The free ports of the range, least recently freed first; *n of them. */
static struct port_rank *
free_ports(const struct pool *p, size_t *n)
{
	const struct pool_server *srv;
	const struct pool_lost *g;
	struct port_rank *r;
	size_t span = (size_t)(p->lim.port_max - p->lim.port_min) + 1, i;
	uint8_t *taken;

	*n = 0;
	if ((taken = calloc(span, 1)) == NULL)
		return NULL;
	if ((r = calloc(span, sizeof(*r))) == NULL) {
		free(taken);
		return NULL;
	}
	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->port >= p->lim.port_min && srv->port <= p->lim.port_max)
			taken[srv->port - p->lim.port_min] = 1;
	TAILQ_FOREACH(g, &p->lost, link)
		if (g->port >= p->lim.port_min && g->port <= p->lim.port_max)
			taken[g->port - p->lim.port_min] = 1;
	for (i = 0; i < span; i++)
		if (!taken[i]) {
			r[*n].freed = p->port_freed[i];
			r[*n].port = p->lim.port_min + (int)i;
			(*n)++;
		}
	free(taken);
	qsort(r, *n, sizeof(*r), by_freed);
	return r;
}

static bool
port_usable(struct pool *p, int port)
{
	return p->ops->port_free == NULL || p->ops->port_free(p->ctx, port);
}

/* A free port, least recently freed first; -1 if none. */
static int
pick_port(struct pool *p)
{
	struct port_rank *r;
	size_t n, i;
	int port;

	if (p->port_freed == NULL)
		return -1;		/* an empty range */
	if ((r = free_ports(p, &n)) == NULL) {
		/* Out of memory: any free port will do. */
		for (port = p->lim.port_min; port <= p->lim.port_max; port++)
			if (!port_taken(p, port) && port_usable(p, port))
				return port;
		return -1;
	}
	for (i = 0, port = -1; i < n && port < 0; i++)
		if (port_usable(p, r[i].port))
			port = r[i].port;
	free(r);
	return port;
}

/* --- lost leases --- */

/* The last lost lease on g's port ended: the port is free again. */
static void
lost_end(struct pool *p, struct pool_lost *g)
{
	if (!p->shutting_down)
		plog(p, "port %d free again: the last lost lease of %s "
		    "ended", g->port, g->model);
	TAILQ_REMOVE(&p->lost, g, link);
	port_freed_now(p, g->port);
	free(g);
}

/*
 * srv is gone (reaped, and off the server list) and leases still name
 * it: they become lost, and hold its port until the last of them ends.
 * why is how it ended.
 */
static void
leases_orphan(struct pool *p, pool_ms now, struct pool_server *srv,
    const char *why)
{
	struct pool_lease *l;
	struct pool_lost *g;

	if (TAILQ_EMPTY(&srv->lease_list))
		return;
	/* Without memory for the record the port is not held; the leases
	 * still answer lease_lost, with no cause. */
	if ((g = calloc(1, sizeof(*g))) == NULL)
		port_freed_now(p, srv->port);
	else {
		g->port = srv->port;
		snprintf(g->model, sizeof(g->model), "%s", srv->model->name);
		if (srv->state == POOL_STOPPING)
			snprintf(g->why, sizeof(g->why), "stopped (%s): %s",
			    pool_stop_reason_name(srv->stop_reason), why);
		else
			snprintf(g->why, sizeof(g->why), "%s", why);
		TAILQ_INSERT_TAIL(&p->lost, g, link);
		/* At shutdown every lease goes: no news. */
		if (!p->shutting_down)
			plog(p, "lost %s: %u lease%s named its server; port "
			    "%d is held until %s released", g->model,
			    srv->leases, srv->leases == 1 ? "" : "s", g->port,
			    srv->leases == 1 ? "it is" : "they are");
	}
	while ((l = TAILQ_FIRST(&srv->lease_list)) != NULL) {
		TAILQ_REMOVE(&srv->lease_list, l, server_link);
		lease_time(srv->model, now, l);	/* its use ended here */
		l->server = NULL;
		l->lost = g;
		if (g != NULL)
			g->leases++;
	}
	srv->leases = 0;
}

/* --- servers --- */

static void
server_remove(struct pool *p, struct pool_server *srv)
{
	if (srv->model->server == srv)
		srv->model->server = NULL;
	TAILQ_REMOVE(&p->servers, srv, link);
	p->nservers--;
	p->used -= srv->mem;
	for (unsigned d = 0; d < POOL_GPUS_MAX; d++) {
		p->gpu_dev_used[d] -= srv->gpu_dev[d];
		p->gpu_used -= srv->gpu_dev[d];
	}
	/* Leases outlive their server, and so does its port while they
	 * name it: leases_orphan(). */
	if (TAILQ_EMPTY(&srv->lease_list))
		port_freed_now(p, srv->port);
}

bool
pool_any_in(const struct pool *p, enum pool_state state)
{
	const struct pool_server *srv;

	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->state == state)
			return true;
	return false;
}

/*
 * poold itself is short of descriptors, memory or processes: not the
 * model's failure.  Its waiters go back to the queue with their places
 * and deadlines, and no start is tried for POOL_RESOURCE_RETRY_MS.
 */
static void
spawn_again(struct pool *p, pool_ms now, struct pool_server *srv,
    const char *why)
{
	struct pool_model *m = srv->model;

	server_remove(p, srv);
	p->counters.starts--;
	m->counters.starts--;
	p->counters.resource_failures++;
	p->resource_retry_at = now + POOL_RESOURCE_RETRY_MS;
	snprintf(p->resource_error, sizeof(p->resource_error), "%s",
	    why[0] ? why : "?");
	m->put_off = true;
	plog(p, "start %s put off for %.1f s: poold is short of resources "
	    "(not the model's failure): %s", m->name,
	    (double)POOL_RESOURCE_RETRY_MS / 1000, why[0] ? why : "?");
	requeue_waiters(p, srv);
	free(srv);
}

/*
 * Spawns m: the head of the queue, a pinned model or a preload; it fits
 * (checked by the caller).  Without waiters it is a start nobody asked
 * for (srv->preloaded).  false: it must wait (every port is held, some
 * by servers not yet reaped, or poold is short of its own resources).
 */
static bool
start(struct pool *p, pool_ms now, struct pool_model *m)
{
	struct pool_server *srv;
	struct pool_waiter *w;
	struct pool_event ev = { .preload = false };
	char err[POOL_ERROR_MAX], used[32], budget[32], mem[32];
	int port, rc;

	if ((port = pick_port(p)) < 0) {
		/* A reap frees one; so does the end of a lost lease. */
		if (pool_any_in(p, POOL_STOPPING) || !TAILQ_EMPTY(&p->lost))
			return false;
		snprintf(err, sizeof(err), "no free port in %d-%d",
		    p->lim.port_min, p->lim.port_max);
		fail_all(p, &m->queued, PROTO_E_START_FAILED, err);
		return true;
	}
	if ((srv = calloc(1, sizeof(*srv))) == NULL) {
		fail_all(p, &m->queued, PROTO_E_INTERNAL, "out of memory");
		return true;
	}
	srv->model = m;
	srv->state = POOL_STARTING;
	srv->preloaded = ev.preload = TAILQ_EMPTY(&m->queued);
	srv->port = port;
	srv->mem = srv->estimate = m->mem;
	srv->spawned_at = srv->last_used = now;
	gds_credit(p, srv);
	TAILQ_INIT(&srv->waiters);
	TAILQ_INIT(&srv->evicts);
	TAILQ_INIT(&srv->lease_list);
	TAILQ_INSERT_TAIL(&p->servers, srv, link);
	p->nservers++;
	p->used += srv->mem;
	gpus_spawned(p, srv);
	m->server = srv;
	/* The model's waiters now wait for this start, not for room. */
	while ((w = TAILQ_FIRST(&m->queued)) != NULL) {
		TAILQ_REMOVE(&m->queued, w, link);
		w->list = &srv->waiters;
		TAILQ_INSERT_TAIL(&srv->waiters, w, link);
	}
	if (m->is_pending)
		TAILQ_REMOVE(&p->pending, m, pending);
	m->is_pending = false;
	m->pressured = false;
	p->counters.starts++;
	m->counters.starts++;

	err[0] = '\0';
	rc = p->ops->spawn(p->ctx, srv, err, sizeof(err));
	if (rc == POOL_SPAWN_AGAIN) {
		spawn_again(p, now, srv, err);
		return false;
	}
	m->put_off = false;
	if (rc != 0) {
		server_remove(p, srv);
		start_failed(p, now, m, NULL, err[0] ? err : "spawn failed");
		fail_all(p, &srv->waiters, PROTO_E_START_FAILED, m->last_error);
		free(srv);
		return true;
	}
	if (srv->preloaded) {
		p->counters.preloads++;
		m->counters.preloads++;
	} else
		m->usage.cold_starts++;
	plog(p, "start %s port %d pid %ld (%s, %s of %s in use)%s", m->name,
	    port, srv->pid, pool_format_size(srv->mem, mem, sizeof(mem)),
	    pool_format_size(p->used, used, sizeof(used)),
	    pool_format_size(p->lim.budget, budget, sizeof(budget)),
	    !srv->preloaded ? "" : m->priority == POOL_PRIO_PINNED ?
	    ", pinned" : ", preload");
	emit(p, POOL_EV_START, m, srv, &ev);
	return true;
}

static const char *
stop_message(const struct pool_server *srv, enum pool_stop_reason why,
    char *buf, size_t len)
{
	const char *name = srv->model->name;

	switch (why) {
	case POOL_STOP_START_TIMEOUT:
		snprintf(buf, len, "'%s' was not ready within %.1f s and was "
		    "stopped", name, (double)(srv->stop_at - srv->spawned_at) /
		    1000);
		break;
	case POOL_STOP_SHUTDOWN:
		snprintf(buf, len, "poold is shutting down");
		break;
	case POOL_STOP_RETIRED:
		snprintf(buf, len, "model '%s' was removed", name);
		break;
	default:
		snprintf(buf, len, "'%s' was evicted while it was starting",
		    name);
		break;
	}
	return buf;
}

static void
stop_server(struct pool *p, pool_ms now, struct pool_server *srv,
    enum pool_stop_reason why)
{
	struct pool_model *m = srv->model;
	struct pool_event ev = { .reason = why };
	char msg[POOL_ERROR_MAX];
	bool starting = srv->state == POOL_STARTING;

	if (srv->state == POOL_STOPPING)
		return;
	/* Stopped by poold, not failing: the model's run of failures ends. */
	if (srv->state == POOL_READY && why != POOL_STOP_UNHEALTHY)
		model_proven(m);
	srv->checking = false;		/* a late answer is ignored */
	srv->state = POOL_STOPPING;
	srv->stop_reason = why;
	srv->stop_at = now;
	if (m->server == srv)
		m->server = NULL;
	switch (why) {
	case POOL_STOP_LRU:
		p->counters.evictions++;
		m->counters.evictions++;
		break;
	case POOL_STOP_IDLE:
		p->counters.idle_stops++;
		m->counters.idle_stops++;
		break;
	case POOL_STOP_ADMIN:
		p->counters.admin_stops++;
		m->counters.admin_stops++;
		break;
	case POOL_STOP_UNHEALTHY:
		p->counters.unhealthy_stops++;
		m->counters.unhealthy_stops++;
		break;
	default:
		break;
	}
	if ((unsigned)why < POOL_STOP__COUNT) {
		p->counters.stops[why]++;
		m->counters.stops[why]++;
	}
	emit(p, POOL_EV_EVICT, m, srv, &ev);
	if (starting || why == POOL_STOP_SHUTDOWN)
		fail_all(p, &srv->waiters, why == POOL_STOP_SHUTDOWN ?
		    PROTO_E_SHUTTING_DOWN : PROTO_E_START_FAILED,
		    stop_message(srv, why, msg, sizeof(msg)));
	else			/* ACQUIREs waiting for a check */
		requeue_waiters(p, srv);
	p->ops->stop(p->ctx, srv);
}

/* --- scheduling: the pending queue, strict FIFO --- */

/*
 * How much more the system must free before m may start, counting the
 * memory of servers accounted but not yet resident (still loading) as
 * already taken: two starts in a row must not both see the same free
 * memory.  0 or less: enough.
 */
static int64_t
system_short(const struct pool *p, const struct pool_model *m)
{
	const struct pool_server *srv;
	uint64_t avail, coming = 0;

	if (p->ops->available == NULL ||
	    (avail = p->ops->available(p->ctx)) == UINT64_MAX)
		return 0;
	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->state != POOL_STOPPING && srv->mem > srv->rss)
			coming += srv->mem - srv->rss;
	return (int64_t)(m->mem + p->lim.min_available + coming) -
	    (int64_t)avail;
}

static bool
fits(const struct pool *p, const struct pool_model *m)
{
	return p->used + m->mem <= p->lim.budget && gpus_short(p, m) < 0 &&
	    p->nservers + 1 <= p->lim.max_servers && system_short(p, m) <= 0;
}

bool
pool_can_admit(const struct pool *p, const struct pool_model *m)
{
	const struct pool_server *srv;
	uint64_t used = p->used;
	unsigned n = p->nservers;

	if (m->retired)
		return false;
	TAILQ_FOREACH(srv, &p->servers, link)
		if (victim_evictable(srv, false)) {
			used -= srv->mem;
			n--;
		}
	return used + m->mem <= p->lim.budget && n + 1 <= p->lim.max_servers &&
	    !model_failed(p, m);
}

/* What a stopped server gives back to the system. */
static uint64_t
resident(const struct pool_server *srv)
{
	return srv->rss > 0 ? srv->rss : srv->mem;
}

/*
 * What is missing, in budget bytes, system bytes, servers and, per GPU,
 * GPU budget bytes: the shortfalls a stop can cover.  Stopping servers
 * already count as gone.
 */
struct shortfall {
	int64_t	mem, sys, count, gpu[POOL_GPUS_MAX];
};

/* The GPUs still short, a bit each. */
static unsigned
gpus_short_mask(const struct shortfall *s)
{
	unsigned mask = 0;

	for (unsigned d = 0; d < POOL_GPUS_MAX; d++)
		if (s->gpu[d] > 0)
			mask |= 1U << d;
	return mask;
}

static bool
covered(const struct shortfall *s)
{
	return s->mem <= 0 && s->sys <= 0 && s->count <= 0 &&
	    gpus_short_mask(s) == 0;
}

/* Only GPUs are short: just the stop of a server holding memory on one
 * of them helps (not a CPU-only one, nor one on another card).  0: any
 * server's stop helps. */
static unsigned
only_gpus_short(const struct shortfall *s)
{
	return s->mem <= 0 && s->sys <= 0 && s->count <= 0 ?
	    gpus_short_mask(s) : 0;
}

/*
 * How to cover a shortfall: the reason the stops get, whether only idle
 * READY servers may go (not starting preloads: a shrunk budget lets
 * starts finish), and whether to stop what there is even if it is not
 * enough (a shrunk budget: every idle server over it goes).
 */
struct eviction {
	const char		*for_;		/* the log's "for ..." */
	enum pool_stop_reason	 reason;
	bool			 ready_only;
	bool			 partial;
};

/*
 * Stops the fewest idle servers, in eviction order (victim_pick), that
 * cover the shortfall — or none, if even all of them would not (leases
 * or pinned servers hold the memory), unless e->partial.  Returns
 * whether it is covered (now or once reaped).
 */
static bool
evict_lru(struct pool *p, pool_ms now, struct shortfall *s,
    const struct eviction *e)
{
	struct pool_server *srv;
	int64_t idle_mem = 0, idle_res = 0, idle = 0;
	int64_t idle_gpu[POOL_GPUS_MAX] = { 0 };
	unsigned d;
	bool enough = true;
	char size[32];

	if (covered(s))
		return true;
	TAILQ_FOREACH(srv, &p->servers, link)
		if (victim_evictable(srv, e->ready_only)) {
			idle_mem += (int64_t)srv->mem;
			idle_res += (int64_t)resident(srv);
			for (d = 0; d < POOL_GPUS_MAX; d++)
				idle_gpu[d] += (int64_t)srv->gpu_dev[d];
			idle++;
		}
	if (idle_mem < s->mem || idle_res < s->sys || idle < s->count)
		enough = false;
	for (d = 0; d < POOL_GPUS_MAX; d++)
		if (idle_gpu[d] < s->gpu[d])
			enough = false;
	if (!enough && !e->partial)
		return false;
	while (!covered(s) && (srv = victim_pick(p, now, only_gpus_short(s),
	    e->ready_only)) != NULL) {
		plog(p, "evict %s %s%s (%s) for %s: %s %.0f s, frees %s",
		    victim_policy_name(p->lim.policy), srv->model->name,
		    srv->state == POOL_STARTING ? " (a preload still "
		    "starting)" : "", pool_priority_name(srv->model->priority),
		    e->for_, srv->state == POOL_STARTING ? "started" : "idle",
		    (double)(now - srv->last_used) / 1000,
		    pool_format_size(srv->mem, size, sizeof(size)));
		victim_chosen(p, srv);
		s->mem -= (int64_t)srv->mem;
		s->sys -= (int64_t)resident(srv);
		s->count--;
		for (d = 0; d < POOL_GPUS_MAX; d++)
			s->gpu[d] -= (int64_t)srv->gpu_dev[d];
		stop_server(p, now, srv, e->reason);
	}
	return enough || covered(s);
}

/*
 * The head m does not fit: make room, or wait for it.  Returns false if
 * it can only wait for others (leases to end, other programs' memory):
 * not even stopping every idle server would make room.
 */
static bool
make_room(struct pool *p, pool_ms now, struct pool_model *m)
{
	struct pool_server *srv;
	struct shortfall s;
	struct eviction e = { .reason = POOL_STOP_LRU };
	uint64_t freeing = 0, freeing_res = 0;
	uint64_t freeing_gpu[POOL_GPUS_MAX] = { 0 }, need[POOL_GPUS_MAX];
	unsigned stopping = 0, d;

	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->state == POOL_STOPPING) {
			freeing += srv->mem;
			freeing_res += resident(srv);
			for (d = 0; d < POOL_GPUS_MAX; d++)
				freeing_gpu[d] += srv->gpu_dev[d];
			stopping++;
		}
	s.mem = (int64_t)(p->used - freeing + m->mem) -
	    (int64_t)p->lim.budget;
	s.count = (int64_t)(p->nservers - stopping + 1) -
	    (int64_t)p->lim.max_servers;
	s.sys = system_short(p, m) - (int64_t)freeing_res;
	gpus_need(p, m, need);
	for (d = 0; d < POOL_GPUS_MAX; d++)
		s.gpu[d] = d >= p->lim.ngpus ? 0 :
		    (int64_t)(p->gpu_dev_used[d] - freeing_gpu[d] + need[d]) -
		    (int64_t)p->lim.gpu_budgets[d];
	e.for_ = m->name;
	return evict_lru(p, now, &s, &e);
}

/*
 * The head can only wait for leases to end (or other programs to free
 * memory): models behind it that fit now start, in queue order, up to
 * POOL_HEAD_PASSES_MAX times per head, so the head cannot starve behind
 * a stream of small models.  Returns false if scheduling must stop.
 */
static bool
pass_head(struct pool *p, pool_ms now, struct pool_model *head)
{
	struct pool_model *m, *next;
	char mem[32];

	for (m = TAILQ_NEXT(head, pending); m != NULL &&
	    head->passes < POOL_HEAD_PASSES_MAX; m = next) {
		next = TAILQ_NEXT(m, pending);
		if (!fits(p, m))
			continue;
		head->passes++;
		plog(p, "start %s ahead of %s (needs %s; waits for leases or "
		    "other programs' memory), pass %u of %u", m->name,
		    head->name, pool_format_size(head->mem, mem, sizeof(mem)),
		    head->passes, POOL_HEAD_PASSES_MAX);
		if (!start(p, now, m))
			return false;
	}
	return true;
}

/*
 * m must wait for room that only leases, pinned servers or other
 * programs hold: said once per wait (it ends when m starts or leaves the
 * queue).
 */
static void
pressure(struct pool *p, struct pool_model *m)
{
	struct pool_event ev = { .need = m->mem };
	char why[POOL_ERROR_MAX + 256];

	if (m->pressured)
		return;
	m->pressured = true;
	ev.message = busy_reason(p, m, why, sizeof(why));
	plog(p, "pressure %s: %s", m->name, why);
	emit(p, POOL_EV_PRESSURE, m, NULL, &ev);
}

/* A pinned model that has no server and may start now. */
static bool
pinned_due(const struct pool *p, const struct pool_model *m, pool_ms now)
{
	return m->server == NULL && !m->retired && now >= m->retry_at &&
	    m->mem <= p->lim.budget && gpus_too_large(p, m) < 0;
}

/*
 * Pinned models without a server start before the queue's head, in the
 * order they were pinned.  One that will fit once servers already
 * stopping (or stopped for it now) are reaped holds the queue: nothing
 * may take the room it waits for.  One that only leases, pinned servers
 * or other programs keep out does not hold it (waiting requests would
 * not help it) and tries again at every event.  Returns false if
 * scheduling must stop.
 */
static bool
start_pinned(struct pool *p, pool_ms now)
{
	struct pool_model *m, *tm;

	/* The retries owed are made now (see pool_next_deadline): clear
	 * them first, so that none is owed again if a start below stops
	 * the loop, and a model that finds no room waits for an event. */
	TAILQ_FOREACH(m, &p->pinned, pinned_link)
		if (m->server == NULL && m->retry_at > 0 && now >= m->retry_at)
			m->retry_at = 0;
	TAILQ_FOREACH_SAFE(m, &p->pinned, pinned_link, tm) {
		if (!pinned_due(p, m, now))
			continue;
		if (fits(p, m)) {
			if (!start(p, now, m))
				return false;
		} else if (make_room(p, now, m))
			return false;
		else
			pressure(p, m);
	}
	return true;
}

static void
schedule_starts(struct pool *p, pool_ms now)
{
	struct pool_model *head;

	if (p->shutting_down || now < p->resource_retry_at)
		return;
	p->resource_retry_at = 0;	/* the retry owed, if any, is now */
	if (!start_pinned(p, now))
		return;
	while ((head = TAILQ_FIRST(&p->pending)) != NULL) {
		if (!fits(p, head)) {
			/* A head that fits once the stopping servers are
			 * reaped keeps its place: nothing passes it. */
			if (!make_room(p, now, head)) {
				pressure(p, head);
				(void)pass_head(p, now, head);
			}
			return;
		}
		if (!start(p, now, head))
			return;
	}
}

/* Over the budget, max_servers or a GPU's budget (stopping servers
 * counted until reaped)? */
static bool
over_limits(const struct pool *p)
{
	if (p->used > p->lim.budget || p->nservers > p->lim.max_servers)
		return true;
	for (unsigned d = 0; d < p->lim.ngpus; d++)
		if (p->gpu_dev_used[d] > p->lim.gpu_budgets[d])
			return true;
	return false;
}

/*
 * After every change: waiting requests start what they can, then a
 * server idle again while the pool is over its limits (they shrank, or
 * servers grew, while it was leased) goes now, as idle ones did at the
 * change itself (shed_shrunk, reason budget).  Costs a comparison while
 * the pool fits.
 */
static void
schedule(struct pool *p, pool_ms now)
{
	schedule_starts(p, now);
	if (!p->shutting_down && over_limits(p))
		shed_shrunk(p, now, false);
}

/* --- requests --- */

void
pool_owner_init(struct pool_owner *o)
{
	TAILQ_INIT(&o->leases);
	TAILQ_INIT(&o->waiters);
	o->nleases = o->nwaiting_holds = 0;
}

static void
waiter_init(struct pool_waiter *w, enum pool_wait_kind kind,
    struct pool_owner *owner, struct pool_model *m, pool_ms now)
{
	w->kind = kind;
	w->owner = owner;
	w->model = m;
	w->since = now;
	w->list = NULL;
	w->queued = false;
}

/* --- health of ready servers --- */

static bool
watched(const struct pool *p)
{
	return p->ops->check != NULL && p->lim.health_interval > 0;
}

/*
 * Must an ACQUIRE of READY srv wait for a health check?  Only if it has
 * been idle longer than health_interval, or its last check failed: a
 * server in use is handed out at once.
 */
static bool
check_first(const struct pool *p, pool_ms now, const struct pool_server *srv)
{
	if (!watched(p))
		return false;
	return srv->check_failures > 0 || (srv->leases == 0 &&
	    now - srv->last_used > p->lim.health_interval);
}

static void
check_now(struct pool *p, struct pool_server *srv)
{
	if (srv->checking || !watched(p))
		return;
	srv->checking = true;
	p->ops->check(p->ctx, srv);
}

/*
 * Not the model's failure, even soon after its ready (unlike a crash):
 * a frozen machine or a SIGSTOP is not the model's doing, and detection
 * takes seconds, so a model that hangs cannot restart in a tight loop.
 * The ACQUIREs that waited for the check wait for a fresh start.
 */
static void
server_unhealthy(struct pool *p, pool_ms now, struct pool_server *srv,
    const char *why)
{
	struct pool_model *m = srv->model;
	char msg[POOL_ERROR_MAX];

	snprintf(msg, sizeof(msg), "'%s' stopped unhealthy %.1f s after it "
	    "was ready: %s", m->name, (double)(now - srv->ready_at) / 1000,
	    why);
	plog(p, "stop unhealthy %s pid %ld: %u health checks failed in a "
	    "row, last: %s (%u lease%s lost)", m->name, srv->pid,
	    srv->check_failures, why, srv->leases,
	    srv->leases == 1 ? "" : "s");
	stop_server(p, now, srv, POOL_STOP_UNHEALTHY);
	snprintf(m->last_error, sizeof(m->last_error), "%s", msg);
	requeue_waiters(p, srv);
}

void
pool_checked(struct pool *p, pool_ms now, struct pool_server *srv,
    bool healthy, const char *why)
{
	struct pool_waiter *w;

	if (srv->state != POOL_READY || !srv->checking)
		return;
	srv->checking = false;
	if (healthy) {
		srv->check_failures = 0;
		srv->check_due = now + p->lim.health_interval;
		while ((w = TAILQ_FIRST(&srv->waiters)) != NULL) {
			waiter_unlink(p, w);
			grant(p, now, w, srv, false);
		}
		/* Nobody waits on it now: the head may stop it. */
		schedule(p, now);
		return;
	}
	if (++srv->check_failures < POOL_HEALTH_FAILURES) {
		srv->check_due = now + POOL_HEALTH_RETRY_MS;
		plog(p, "health check failed %s pid %ld (%u of %u in a row; "
		    "again in %.1f s): %s", srv->model->name, srv->pid,
		    srv->check_failures, POOL_HEALTH_FAILURES,
		    (double)POOL_HEALTH_RETRY_MS / 1000, why);
		return;
	}
	server_unhealthy(p, now, srv, why);
	schedule(p, now);
}

static void pinned_names(const struct pool *, bool, char *, size_t);

/*
 * The pinned models' estimates, summed when asked: an estimate changes
 * under the pool (a first header read, a learned peak), so a kept sum
 * would drift and, at UNPIN, wrap.  The list is short: they all fit.
 */
uint64_t
pool_pinned_mem(const struct pool *p)
{
	const struct pool_model *m;
	uint64_t sum = 0;

	TAILQ_FOREACH(m, &p->pinned, pinned_link)
		sum = pool_sat_add(sum, m->mem);
	return sum;
}

/*
 * m is not pinned and cannot fit beside the pinned models even with
 * every other server gone: only an UNPIN can make room, so w is told
 * now (busy, naming them) rather than after the whole acquire timeout.
 */
static bool
refused_for_pins(struct pool *p, struct pool_waiter *w,
    const struct pool_model *m)
{
	char names[POOL_ERROR_MAX / 2], pinned[32], need[32], budget[32];
	uint64_t held;

	if (m->priority == POOL_PRIO_PINNED || TAILQ_EMPTY(&p->pinned) ||
	    pool_sat_add(held = pool_pinned_mem(p), m->mem) <= p->lim.budget)
		return false;
	pinned_names(p, false, names, sizeof(names));
	answer_error(p, w, PROTO_E_BUSY, "no room for '%s' (%s) while the "
	    "pinned models hold %s of the budget %s (%s): UNPIN one to make "
	    "room", m->name, pool_format_size(m->mem, need, sizeof(need)),
	    pool_format_size(held, pinned, sizeof(pinned)),
	    pool_format_size(p->lim.budget, budget, sizeof(budget)), names);
	return true;
}

void
pool_acquire(struct pool *p, pool_ms now, struct pool_waiter *w,
    struct pool_owner *owner, struct pool_model *m, bool hold,
    pool_ms deadline)
{
	struct pool_server *srv = m->server;
	uint64_t gpu_need[POOL_GPUS_MAX];
	char need[32], budget[32];
	int gpu;

	waiter_init(w, POOL_WAIT_ACQUIRE, owner, m, now);
	w->hold = hold;
	w->deadline = deadline;
	p->last_request = now;
	if (p->shutting_down) {
		answer_error(p, w, PROTO_E_SHUTTING_DOWN,
		    "poold is shutting down");
		return;
	}
	if (m->retired) {
		answer_error(p, w, PROTO_E_UNKNOWN_MODEL, "model '%s' was "
		    "removed", m->name);
		return;
	}
	if (srv != NULL && srv->state == POOL_READY &&
	    !check_first(p, now, srv)) {
		grant(p, now, w, srv, false);	/* the hot path */
		return;
	}
	if (m->mem > p->lim.budget) {
		answer_error(p, w, PROTO_E_TOO_LARGE,
		    "'%s' needs %s but the whole budget is %s", m->name,
		    pool_format_size(m->mem, need, sizeof(need)),
		    pool_format_size(p->lim.budget, budget, sizeof(budget)));
		return;
	}
	if ((gpu = gpus_too_large(p, m)) >= 0) {
		gpus_need(p, m, gpu_need);
		answer_error(p, w, PROTO_E_TOO_LARGE,
		    "'%s' needs %s of GPU %d's memory but its whole GPU "
		    "budget is %s", m->name,
		    pool_format_size(gpu_need[gpu], need, sizeof(need)), gpu,
		    pool_format_size(p->lim.gpu_budgets[gpu], budget,
		    sizeof(budget)));
		return;
	}
	if (p->nwaiters >= p->lim.max_waiters) {
		answer_error(p, w, PROTO_E_BUSY, "too many requests waiting "
		    "(%u); try again later", p->nwaiters);
		return;
	}
	if (srv != NULL) {		/* starting: one start per model */
		waiter_link(p, w, &srv->waiters);
		if (srv->state == POOL_READY)
			check_now(p, srv);	/* answered by pool_checked() */
		return;
	}
	if (refused_for_pins(p, w, m))	/* (a start it has is not refused) */
		return;
	if (now < m->retry_at) {
		answer_error(p, w, PROTO_E_START_FAILED, "'%s' %s after %u "
		    "failed start%s in a row; next try in %.1f s%s; last error: "
		    "%s", m->name, model_failed(p, m) ? "is failed" :
		    "is backing off", m->failures, m->failures == 1 ? "" : "s",
		    (double)(m->retry_at - now) / 1000, model_failed(p, m) ?
		    " (EVICT clears it)" : "", m->last_error);
		return;
	}
	w->queued = true;
	waiter_link(p, w, &m->queued);
	if (!m->is_pending)
		pend(p, m);
	schedule(p, now);
}

const struct pool_lease *
pool_lease_find(const struct pool *p, const struct pool_owner *owner,
    int64_t id)
{
	const struct pool_lease *l = lease_find(p, id);

	return l != NULL && l->owner == owner ? l : NULL;
}

int
pool_release(struct pool *p, pool_ms now, struct pool_owner *owner,
    int64_t id)
{
	struct pool_lease *l;

	p->last_request = now;
	if ((l = lease_find(p, id)) == NULL || l->owner != owner)
		return -1;
	lease_end(p, now, l);
	schedule(p, now);
	return 0;
}

void
pool_owner_gone(struct pool *p, pool_ms now, struct pool_owner *o)
{
	struct pool_waiter *w;
	struct pool_lease *l;

	while ((w = TAILQ_FIRST(&o->waiters)) != NULL) {
		waiter_unlink(p, w);
		w->owner = NULL;
	}
	while ((l = TAILQ_FIRST(&o->leases)) != NULL)
		lease_end(p, now, l);
	schedule(p, now);
}

static struct pool_server *
stopping_server_of(const struct pool *p, const struct pool_model *m)
{
	struct pool_server *srv;

	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->model == m && srv->state == POOL_STOPPING)
			return srv;
	return NULL;
}

void
pool_evict(struct pool *p, pool_ms now, struct pool_waiter *w,
    struct pool_owner *owner, struct pool_model *m, bool force)
{
	struct pool_server *srv = m->server;
	struct pool_answer a = { .err = PROTO_OK };

	waiter_init(w, POOL_WAIT_EVICT, owner, m, now);
	w->deadline = INT64_MAX;
	if (m->priority == POOL_PRIO_PINNED) {
		answer_error(p, w, PROTO_E_BUSY, "model '%s' is pinned; UNPIN "
		    "it first", m->name);
		return;
	}
	if (srv == NULL && (srv = stopping_server_of(p, m)) != NULL) {
		waiter_link(p, w, &srv->evicts);
		return;
	}
	if (srv == NULL) {
		if (m->failures > 0) {	/* an admin's word ends the backoff */
			m->failures = 0;
			m->retry_at = 0;
			plog(p, "evict %s: backoff cleared", m->name);
			p->ops->answer(p->ctx, w, &a);
			return;
		}
		answer_error(p, w, PROTO_E_NOT_FOUND, "'%s' is not running",
		    m->name);
		return;
	}
	if (srv->leases > 0 && !force) {
		answer_error(p, w, PROTO_E_BUSY, "'%s' has %u lease%s; add "
		    "\"force\":true to stop it anyway", m->name, srv->leases,
		    srv->leases == 1 ? "" : "s");
		return;
	}
	plog(p, "evict %s: asked by a client%s (%u lease%s)", m->name,
	    force ? ", forced" : "", srv->leases, srv->leases == 1 ? "" : "s");
	waiter_link(p, w, &srv->evicts);
	stop_server(p, now, srv, POOL_STOP_ADMIN);
	/* What it frees counts now: the head may need fewer evictions. */
	schedule(p, now);
}

/* --- from supervision --- */

/* The bucket of pool_load_bounds a load time falls in. */
static unsigned
load_bucket(pool_ms ms)
{
	unsigned b;

	for (b = 0; b < POOL_LOAD_BUCKETS - 1; b++)
		if (ms <= pool_load_bounds[b])
			break;
	return b;
}

/* A start of m became ready after load_ms. */
static void
load_counted(struct pool *p, struct pool_model *m, pool_ms load_ms)
{
	unsigned b = load_bucket(load_ms);

	if (load_ms < 0)
		load_ms = 0;	/* a clock that went back */
	p->counters.load_hist[b]++;
	m->counters.load_hist[b]++;
	m->counters.load_ms_total += (uint64_t)load_ms;
	m->usage.loads++;
	m->usage.load_ms_total += (uint64_t)load_ms;
	m->usage.last_load_ms = load_ms;
}

void
pool_ready(struct pool *p, pool_ms now, struct pool_server *srv)
{
	struct pool_model *m = srv->model;
	struct pool_waiter *w;
	struct pool_event ev = { .load_ms = 0 };

	if (srv->state != POOL_STARTING)
		return;
	srv->state = POOL_READY;
	srv->ready_at = srv->last_used = now;
	m->last_load_ms = ev.load_ms = now - srv->spawned_at;
	load_counted(p, m, m->last_load_ms);
	gds_credit(p, srv);
	srv->check_due = now + p->lim.health_interval;
	/* m->failures stays until the server proves itself (exits after
	 * POOL_CRASH_EARLY_MS, or is stopped by poold): a crash soon after
	 * ready counts as a failed start. */
	m->retry_at = 0;
	p->counters.load_ms_total += (uint64_t)m->last_load_ms;
	plog(p, "ready %s in %" PRId64 " ms", m->name, m->last_load_ms);
	emit(p, POOL_EV_READY, m, srv, &ev);
	while ((w = TAILQ_FIRST(&srv->waiters)) != NULL) {
		waiter_unlink(p, w);
		grant(p, now, w, srv, true);
	}
	/* Unleased, it may be what the head of the queue can evict. */
	schedule(p, now);
}

/*
 * Servers grew past the budget: stop idle ones to get back under it;
 * stopping ones already count as gone.
 */
static void
shed_growth(struct pool *p, pool_ms now)
{
	static const struct eviction e = {
		.for_ = "the budget", .reason = POOL_STOP_LRU,
	};
	const struct pool_server *other;
	struct shortfall s;
	int64_t over = (int64_t)(p->used - p->lim.budget);
	char grown[32], by[32];

	memset(&s, 0, sizeof(s));
	TAILQ_FOREACH(other, &p->servers, link)
		if (other->state == POOL_STOPPING)
			over -= (int64_t)other->mem;
	s.mem = over;
	if (over > 0 && !evict_lru(p, now, &s, &e))
		plog(p, "over budget by %s: servers grew to %s and the rest "
		    "are leased, starting or pinned", pool_format_size(
		    (uint64_t)over, by, sizeof(by)), pool_format_size(p->used,
		    grown, sizeof(grown)));
}

/* The same for each GPU past its budget: idle servers on it stop. */
static void
shed_gpu_growth(struct pool *p, pool_ms now)
{
	static const struct eviction e = {
		.for_ = "the GPU budget", .reason = POOL_STOP_LRU,
	};
	const struct pool_server *other;
	struct shortfall s;
	unsigned d;
	char grown[32], by[32];

	memset(&s, 0, sizeof(s));
	for (d = 0; d < p->lim.ngpus; d++)
		s.gpu[d] = (int64_t)(p->gpu_dev_used[d] -
		    p->lim.gpu_budgets[d]);
	TAILQ_FOREACH(other, &p->servers, link)
		if (other->state == POOL_STOPPING)
			for (d = 0; d < p->lim.ngpus; d++)
				s.gpu[d] -= (int64_t)other->gpu_dev[d];
	if (gpus_short_mask(&s) == 0 || evict_lru(p, now, &s, &e))
		return;
	for (d = 0; d < p->lim.ngpus; d++)
		if (s.gpu[d] > 0)
			plog(p, "over the budget of GPU %u by %s: servers grew "
			    "to %s there and the rest are leased, starting or "
			    "pinned", d,
			    pool_format_size((uint64_t)s.gpu[d], by,
			    sizeof(by)), pool_format_size(p->gpu_dev_used[d],
			    grown, sizeof(grown)));
}

void
pool_measured(struct pool *p, pool_ms now, struct pool_server *srv,
    uint64_t rss)
{
	uint64_t acc;

	srv->rss = rss;
	if (rss > srv->peak_rss)
		srv->peak_rss = rss;
	acc = rss > srv->estimate ? rss : srv->estimate;
	p->used = p->used - srv->mem + acc;
	srv->mem = acc;
	if (p->used > p->lim.budget && srv->state != POOL_STOPPING)
		shed_growth(p, now);
	/* Room may have come (a server shrank, other programs exited). */
	schedule(p, now);
}

void
pool_measured_gpu(struct pool *p, pool_ms now, struct pool_server *srv,
    const uint64_t *bytes, size_t n)
{
	uint64_t acc[POOL_GPUS_MAX] = { 0 }, b;

	if (p->lim.gpu_budget == 0)
		return;
	srv->gpu_measured = 0;
	for (unsigned d = 0; d < p->lim.ngpus; d++) {
		b = d < n ? bytes[d] : 0;
		srv->gpu_dev_measured[d] = b;
		srv->gpu_measured += b;
		acc[d] = b > srv->gpu_dev_estimate[d] ? b :
		    srv->gpu_dev_estimate[d];
	}
	gpus_account(p, srv, acc);
	if (srv->state != POOL_STOPPING)
		shed_gpu_growth(p, now);
	schedule(p, now);
}

void
pool_exited(struct pool *p, pool_ms now, struct pool_server *srv,
    const char *why)
{
	struct pool_model *m = srv->model;
	struct pool_answer a = { .err = PROTO_OK, .server = srv };
	struct pool_event ev = { .message = why };
	struct pool_waiter *w;
	char msg[POOL_ERROR_MAX];

	server_remove(p, srv);
	ev.reason = srv->state == POOL_STOPPING ? srv->stop_reason :
	    POOL_STOP_NONE;
	emit(p, POOL_EV_EXIT, m, srv, &ev);
	switch (srv->state) {
	case POOL_STARTING:
		snprintf(msg, sizeof(msg), "'%s' failed to start: %s",
		    m->name, why);
		start_failed(p, now, m, srv, msg);
		fail_all(p, &srv->waiters, PROTO_E_START_FAILED, msg);
		break;
	case POOL_READY:
		p->counters.crashes++;
		m->counters.crashes++;
		plog(p, "exit %s: %s (not asked to stop, %.1f s after ready; %u "
		    "lease%s lost)", m->name, why,
		    (double)(now - srv->ready_at) / 1000, srv->leases,
		    srv->leases == 1 ? "" : "s");
		snprintf(msg, sizeof(msg), "'%s' exited %.1f s after it was "
		    "ready: %s", m->name, (double)(now - srv->ready_at) / 1000,
		    why);
		if (now - srv->ready_at < POOL_CRASH_EARLY_MS) {
			model_failure(p, now, m, msg);
			fail_all(p, &srv->waiters, PROTO_E_START_FAILED, msg);
		} else {
			model_proven(m);
			snprintf(m->last_error, sizeof(m->last_error), "%s",
			    msg);
			requeue_waiters(p, srv);
		}
		break;
	case POOL_STOPPING:
		plog(p, "exit %s: %s (%s)", m->name, why,
		    pool_stop_reason_name(srv->stop_reason));
		break;
	}
	leases_orphan(p, now, srv, why);
	while ((w = TAILQ_FIRST(&srv->evicts)) != NULL) {
		waiter_unlink(p, w);
		p->ops->answer(p->ctx, w, &a);
	}
	free(srv);
	schedule(p, now);
}

/* --- time --- */

/* The earlier of two instants; -1 stands for "none". */
static pool_ms
earliest(pool_ms a, pool_ms b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return b < a ? b : a;
}

/* Does srv stop once idle for its model's idle_timeout (pinned never)? */
static bool
idle_stoppable(const struct pool_server *srv)
{
	return srv->state == POOL_READY && srv->leases == 0 &&
	    TAILQ_EMPTY(&srv->waiters) && srv->model->idle_timeout > 0 &&
	    srv->model->priority != POOL_PRIO_PINNED;
}

static pool_ms
server_deadline(const struct pool *p, const struct pool_server *srv)
{
	const struct pool_waiter *w;
	pool_ms t = -1;

	if (srv->state == POOL_STARTING)
		t = srv->spawned_at + p->lim.start_timeout;
	else if (idle_stoppable(srv))
		t = srv->last_used + srv->model->idle_timeout;
	if (srv->state == POOL_READY && watched(p) && !srv->checking)
		t = earliest(t, srv->check_due);
	TAILQ_FOREACH(w, &srv->waiters, link)
		t = earliest(t, w->deadline);
	return t;
}

pool_ms
pool_next_deadline(const struct pool *p, pool_ms now)
{
	const struct pool_server *srv;
	const struct pool_model *m;
	const struct pool_waiter *w;
	pool_ms t = -1;

	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->state != POOL_STOPPING)
			t = earliest(t, server_deadline(p, srv));
	TAILQ_FOREACH(m, &p->pending, pending)
		TAILQ_FOREACH(w, &m->queued, link)
			t = earliest(t, w->deadline);
	/* A pinned model backing off or failed starts again at its
	 * retry_at, and is owed that retry until schedule() has made it
	 * (start_pinned clears retry_at): the loop may look at the clock
	 * at retry_at itself, or later, without a tick in between, and must
	 * still tick.  One waiting for room waits for an event instead. */
	TAILQ_FOREACH(m, &p->pinned, pinned_link)
		if (m->server == NULL && !m->retired && m->retry_at > 0 &&
		    !p->shutting_down)
			t = earliest(t, m->retry_at > p->resource_retry_at ?
			    m->retry_at : p->resource_retry_at);
	/* Until schedule() has made the retry owed (then it is 0): a tick
	 * that comes a hair late must still find it due. */
	if ((!TAILQ_EMPTY(&p->pending) || !TAILQ_EMPTY(&p->pinned)) &&
	    p->resource_retry_at > 0 && !p->shutting_down)
		t = earliest(t, p->resource_retry_at);
	if (t >= 0 && t < now)
		t = now;
	return t;
}

/*
 * Why m, still queued, found no room: the truth as the pool sees it now,
 * written into buf.
 */
/* Ports kept for lost leases. */
static unsigned
ports_lost(const struct pool *p)
{
	const struct pool_lost *g;
	unsigned n = 0;

	TAILQ_FOREACH(g, &p->lost, link)
		n++;
	return n;
}

static bool
any_port_free(const struct pool *p)
{
	struct port_rank *r;
	size_t n;

	r = free_ports(p, &n);
	free(r);
	return r == NULL || n > 0;
}

/*
 * The pinned models, for messages: " (a, b)" of those running (live),
 * or "a 20.0 GiB, b 16.0 GiB" of all; "" if none.  Cut short with
 * ", ..." to fit buf.
 */
static void
pinned_names(const struct pool *p, bool live, char *buf, size_t len)
{
	const struct pool_model *m;
	size_t n = 0;
	char size[32], item[PROTO_MODEL_NAME_MAX + 48];
	const char *sep;

	buf[0] = '\0';
	if (len < 16)
		return;
	TAILQ_FOREACH(m, &p->pinned, pinned_link) {
		if (live && m->server == NULL)
			continue;
		sep = n > 0 ? ", " : live ? " (" : "";
		if (live)
			snprintf(item, sizeof(item), "%s%s", sep, m->name);
		else
			snprintf(item, sizeof(item), "%s%s %s", sep, m->name,
			    pool_format_size(m->mem, size, sizeof(size)));
		/* Room is kept for ", ...)" and the NUL. */
		if (n + strlen(item) + 8 > len) {
			snprintf(buf + n, len - n, "%s...", sep);
			n += strlen(buf + n);
			break;
		}
		memcpy(buf + n, item, strlen(item) + 1);
		n += strlen(item);
	}
	if (live && n > 0)
		snprintf(buf + n, len - n, ")");
}

static const char *
busy_reason(const struct pool *p, const struct pool_model *m, char *buf,
    size_t len)
{
	unsigned lost;
	const struct pool_server *srv;
	const struct pool_model *head = TAILQ_FIRST(&p->pending);
	uint64_t leased = 0, stopping = 0, starting = 0, pinned = 0;
	uint64_t gpu_need[POOL_GPUS_MAX];
	char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32];
	char names[160];
	int gpu;

	if ((lost = ports_lost(p)) > 0 && !any_port_free(p)) {
		snprintf(buf, len, "every port of %d-%d is held, %u of them "
		    "for leases whose servers are gone (a port is not reused "
		    "while a lease names it: their owners must RELEASE them)",
		    p->lim.port_min, p->lim.port_max, lost);
		return buf;
	}
	if (m->put_off) {
		snprintf(buf, len, "poold is short of its own resources, not "
		    "the model's fault (its start is tried again every %.0f s): "
		    "%s", (double)POOL_RESOURCE_RETRY_MS / 1000,
		    p->resource_error);
		return buf;
	}
	if (p->used + m->mem <= p->lim.budget && system_short(p, m) > 0) {
		snprintf(buf, len, "the system lacks %s of free memory (other "
		    "programs hold it)", pool_format_size((uint64_t)
		    system_short(p, m), a, sizeof(a)));
		return buf;
	}
	if ((gpu = gpus_short(p, m)) >= 0) {
		gpus_need(p, m, gpu_need);
		snprintf(buf, len, "it needs %s of GPU memory on GPU %d; of "
		    "its budget %s, %s is taken", pool_format_size(
		    gpu_need[gpu], a, sizeof(a)), gpu, pool_format_size(
		    p->lim.gpu_budgets[gpu], b, sizeof(b)), pool_format_size(
		    p->gpu_dev_used[gpu], c, sizeof(c)));
		return buf;
	}
	if (head != NULL && head != m && fits(p, m)) {
		snprintf(buf, len, "it waits behind '%s' (needs %s), first in "
		    "the queue", head->name,
		    pool_format_size(head->mem, a, sizeof(a)));
		return buf;
	}
	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->state == POOL_STOPPING)
			stopping += srv->mem;
		else if (srv->model->priority == POOL_PRIO_PINNED)
			pinned += srv->mem;
		else if (srv->state == POOL_STARTING)
			starting += srv->mem;
		else if (srv->leases > 0)
			leased += srv->mem;
	pinned_names(p, true, names, sizeof(names));
	if (p->nservers >= p->lim.max_servers)
		snprintf(buf, len, "all %u servers max_servers allows are "
		    "running (%s leased, %s pinned%s, %s stopping, %s "
		    "starting)", p->lim.max_servers,
		    pool_format_size(leased, a, sizeof(a)),
		    pool_format_size(pinned, h, sizeof(h)), names,
		    pool_format_size(stopping, b, sizeof(b)),
		    pool_format_size(starting, c, sizeof(c)));
	else
		snprintf(buf, len, "it needs %s; of the budget %s, %s is "
		    "leased, %s pinned%s, %s stopping, %s starting, %s idle, "
		    "%s free", pool_format_size(m->mem, a, sizeof(a)),
		    pool_format_size(p->lim.budget, b, sizeof(b)),
		    pool_format_size(leased, c, sizeof(c)),
		    pool_format_size(pinned, h, sizeof(h)), names,
		    pool_format_size(stopping, d, sizeof(d)),
		    pool_format_size(starting, e, sizeof(e)),
		    pool_format_size(p->used - leased - pinned - stopping -
		    starting, f, sizeof(f)), pool_format_size(p->used <
		    p->lim.budget ? p->lim.budget - p->used : 0, g, sizeof(g)));
	return buf;
}

static void
expire_waiters(struct pool *p, pool_ms now, struct pool_waiter_list *list)
{
	struct pool_waiter *w, *tw;
	struct pool_model *m;
	char why[POOL_ERROR_MAX + 160];

	TAILQ_FOREACH_SAFE(w, list, link, tw) {
		if (w->deadline > now)
			continue;
		m = w->model;
		waiter_unlink(p, w);
		if (w->queued && m->server == NULL) {
			p->counters.busy++;
			answer_error(p, w, PROTO_E_BUSY, "no room for '%s' "
			    "within %" PRId64 " ms: %s", m->name,
			    now - w->since, busy_reason(p, m, why,
			    sizeof(why)));
		} else if (m->server != NULL &&
		    m->server->state == POOL_READY) {
			p->counters.timeouts++;
			answer_error(p, w, PROTO_E_TIMEOUT, "'%s' did not "
			    "answer its health check within %" PRId64 " ms; "
			    "ask again", m->name, now - w->since);
		} else {
			p->counters.timeouts++;
			answer_error(p, w, PROTO_E_TIMEOUT, "'%s' is still "
			    "starting after %" PRId64 " ms; it goes on "
			    "loading, ask again", m->name, now - w->since);
		}
	}
}

static void
tick_server(struct pool *p, pool_ms now, struct pool_server *srv)
{
	struct pool_model *m = srv->model;
	char msg[POOL_ERROR_MAX];

	if (srv->state == POOL_STARTING &&
	    now >= srv->spawned_at + p->lim.start_timeout) {
		snprintf(msg, sizeof(msg), "'%s' was not ready within %.1f s",
		    m->name, (double)p->lim.start_timeout / 1000);
		start_failed(p, now, m, srv, msg);
		stop_server(p, now, srv, POOL_STOP_START_TIMEOUT);
		return;
	}
	if (idle_stoppable(srv) &&
	    now >= srv->last_used + m->idle_timeout) {
		plog(p, "stop idle %s after %.0f s", m->name,
		    (double)(now - srv->last_used) / 1000);
		stop_server(p, now, srv, POOL_STOP_IDLE);
		return;
	}
	if (srv->state == POOL_READY && watched(p) && now >= srv->check_due)
		check_now(p, srv);
	expire_waiters(p, now, &srv->waiters);
}

void
pool_tick(struct pool *p, pool_ms now)
{
	struct pool_server *srv, *tsrv;
	struct pool_model *m, *tm;

	TAILQ_FOREACH_SAFE(srv, &p->servers, link, tsrv)
		tick_server(p, now, srv);
	/* A model leaves the queue when its last waiter expires. */
	TAILQ_FOREACH_SAFE(m, &p->pending, pending, tm)
		expire_waiters(p, now, &m->queued);
	schedule(p, now);
}

void
pool_shutdown(struct pool *p, pool_ms now)
{
	struct pool_server *srv, *tsrv;
	struct pool_model *m;

	if (p->shutting_down)
		return;
	p->shutting_down = true;
	while ((m = TAILQ_FIRST(&p->pending)) != NULL)
		fail_all(p, &m->queued, PROTO_E_SHUTTING_DOWN,
		    "poold is shutting down");
	TAILQ_FOREACH_SAFE(srv, &p->servers, link, tsrv)
		stop_server(p, now, srv, POOL_STOP_SHUTDOWN);
}

/* --- the catalog: a model whose file is gone --- */

int
pool_model_remove(struct pool *p, struct pool_model *m)
{
	struct pool_model **slot;
	const struct pool_server *srv;

	if (m->server != NULL || m->is_pending || !TAILQ_EMPTY(&m->queued))
		return -1;
	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->model == m)
			return -1;	/* stopping, not yet reaped */
	if (m->priority == POOL_PRIO_PINNED)
		unpin(p, 0, m);
	slot = &p->models[hash_name(m->name) % p->nbuckets];
	while (*slot != m)
		slot = &(*slot)->hash_next;
	*slot = m->hash_next;
	p->nmodels--;
	if (p->last_failed == m)
		p->last_failed = NULL;
	free(m->name);
	free(m);
	return 0;
}

/* --- issue 12: limits, priorities, preload, retire, usage --- */

const pool_ms pool_load_bounds[POOL_LOAD_BUCKETS - 1] = {
	1000, 2500, 5000, 10000, 20000, 30000, 60000, 120000, 300000,
};

/*
 * Over the limits (they shrank; or servers grew, or a leased one kept
 * the pool over and is idle now): every idle READY server over them goes
 * (in eviction order), even if leased, starting or pinned ones keep the
 * pool over them; those finish, and nothing starts while it is over.
 * say: log what is still over (at the change itself; schedule() calls
 * this after every change and must not repeat it).
 */
static void
shed_shrunk(struct pool *p, pool_ms now, bool say)
{
	static const struct eviction shrunk = {
		.for_ = "the limits", .reason = POOL_STOP_BUDGET,
		.ready_only = true, .partial = true,
	};
	const struct pool_server *srv;
	struct shortfall s;
	unsigned d;
	char by[32];

	memset(&s, 0, sizeof(s));
	s.mem = (int64_t)p->used - (int64_t)p->lim.budget;
	s.count = (int64_t)p->nservers - (int64_t)p->lim.max_servers;
	for (d = 0; d < p->lim.ngpus; d++)
		s.gpu[d] = (int64_t)p->gpu_dev_used[d] -
		    (int64_t)p->lim.gpu_budgets[d];
	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->state == POOL_STOPPING) {
			s.mem -= (int64_t)srv->mem;
			s.count--;
			for (d = 0; d < p->lim.ngpus; d++)
				s.gpu[d] -= (int64_t)srv->gpu_dev[d];
		}
	if (covered(&s) || (evict_lru(p, now, &s, &shrunk) && covered(&s)) ||
	    !say)
		return;
	plog(p, "over the limits (%s over the budget, %" PRId64 " server%s "
	    "over max_servers) until leased, starting and pinned servers "
	    "stop", pool_format_size(s.mem > 0 ? (uint64_t)s.mem : 0, by,
	    sizeof(by)), s.count > 0 ? s.count : 0, s.count == 1 ? "" : "s");
}

void
pool_set_limits(struct pool *p, pool_ms now, const struct pool_limits *lim)
{
	struct pool_limits nl = *lim;
	char was[32], is[32];

	nl.port_min = p->lim.port_min;
	nl.port_max = p->lim.port_max;
	gpus_limits(&nl);
	if (nl.ngpus != p->lim.ngpus) {
		plog(p, "limits: the GPUs counted stay %u (asked %u): that "
		    "takes a restart", p->lim.ngpus, nl.ngpus);
		nl.ngpus = p->lim.ngpus;
		nl.gpu_budget = p->lim.gpu_budget;
		memcpy(nl.gpu_budgets, p->lim.gpu_budgets,
		    sizeof(nl.gpu_budgets));
	}
	if (nl.budget != p->lim.budget)
		plog(p, "limits: budget %s (was %s)", pool_format_size(
		    nl.budget, is, sizeof(is)), pool_format_size(p->lim.budget,
		    was, sizeof(was)));
	if (nl.max_servers != p->lim.max_servers)
		plog(p, "limits: max_servers %u (was %u)", nl.max_servers,
		    p->lim.max_servers);
	p->lim = nl;
	if (pool_pinned_mem(p) > p->lim.budget)
		plog(p, "limits: the pinned models take %s, more than the "
		    "budget %s: not all of them can run", pool_format_size(
		    pool_pinned_mem(p), was, sizeof(was)), pool_format_size(
		    p->lim.budget, is, sizeof(is)));
	if (!p->shutting_down)
		shed_shrunk(p, now, true);
	schedule(p, now);
}

/* m is no longer pinned: its server lives by the normal rules, its idle
 * time counted from now. */
static void
unpin(struct pool *p, pool_ms now, struct pool_model *m)
{
	TAILQ_REMOVE(&p->pinned, m, pinned_link);
	m->priority = POOL_PRIO_NORMAL;
	if (!m->is_pending)
		m->pressured = false;	/* its wait as a pinned model ends */
	if (m->server != NULL && m->server->state == POOL_READY)
		m->server->last_used = now;
}

int
pool_set_priority(struct pool *p, pool_ms now, struct pool_model *m,
    enum pool_priority prio, char *err, size_t errlen)
{
	char size[32], total[32], budget[32], names[512];
	enum pool_priority was = m->priority;
	uint64_t held = pool_pinned_mem(p);

	if ((unsigned)prio >= POOL_PRIO__COUNT) {
		snprintf(err, errlen, "no such priority (%d)", (int)prio);
		return -1;
	}
	if (prio == was)
		return 0;
	if (prio == POOL_PRIO_PINNED && m->retired) {
		snprintf(err, errlen, "model '%s' was removed", m->name);
		return -1;
	}
	if (prio == POOL_PRIO_PINNED &&
	    pool_sat_add(held, m->mem) > p->lim.budget) {
		pinned_names(p, false, names, sizeof(names));
		snprintf(err, errlen, "pinning '%s' (%s) would pin %s, more "
		    "than the budget %s; pinned now: %s", m->name,
		    pool_format_size(m->mem, size, sizeof(size)),
		    pool_format_size(pool_sat_add(held, m->mem), total,
		    sizeof(total)), pool_format_size(p->lim.budget, budget,
		    sizeof(budget)), names[0] != '\0' ? names : "none");
		return -1;
	}
	if (was == POOL_PRIO_PINNED)
		unpin(p, now, m);
	if (prio == POOL_PRIO_PINNED) {
		TAILQ_INSERT_TAIL(&p->pinned, m, pinned_link);
	}
	m->priority = prio;
	plog(p, "priority %s: %s (was %s)", m->name, pool_priority_name(prio),
	    pool_priority_name(was));
	/* Pinned: it starts now.  Lower: the head may stop it now. */
	schedule(p, now);
	return 0;
}

const char *
pool_priority_name(enum pool_priority prio)
{
	switch (prio) {
	case POOL_PRIO_LOW:	return "low";
	case POOL_PRIO_NORMAL:	return "normal";
	case POOL_PRIO_HIGH:	return "high";
	case POOL_PRIO_PINNED:	return "pinned";
	case POOL_PRIO__COUNT:	break;
	}
	return "unknown";
}

int
pool_priority_from_name(const char *name)
{
	int i;

	for (i = 0; i < POOL_PRIO__COUNT; i++)
		if (strcmp(name, pool_priority_name((enum pool_priority)i)) == 0)
			return i;
	return -1;
}

/* A pinned model waits for room (it starts before anything else). */
static const struct pool_model *
pinned_waiting(const struct pool *p, pool_ms now)
{
	const struct pool_model *m;

	TAILQ_FOREACH(m, &p->pinned, pinned_link)
		if (pinned_due(p, m, now))
			return m;
	return NULL;
}

/* Why m may not be preloaded now; NULL: it may. */
static const char *
preload_refused(const struct pool *p, pool_ms now,
    const struct pool_model *m, char *why, size_t len)
{
	const struct pool_model *other;
	char need[32], free_[32];

	if (p->shutting_down)
		snprintf(why, len, "poold is shutting down");
	else if (m->retired)
		snprintf(why, len, "model '%s' was removed", m->name);
	else if (now < m->retry_at)
		snprintf(why, len, "'%s' is %s after %u failed start%s (next "
		    "try in %.1f s): %s", m->name, model_failed(p, m) ?
		    "failed" : "backing off", m->failures, m->failures == 1 ?
		    "" : "s", (double)(m->retry_at - now) / 1000,
		    m->last_error);
	else if ((other = TAILQ_FIRST(&p->pending)) != NULL)
		snprintf(why, len, "'%s' waits for room: requests go first",
		    other->name);
	else if ((other = pinned_waiting(p, now)) != NULL)
		snprintf(why, len, "pinned '%s' waits for room", other->name);
	else if (now < p->resource_retry_at)
		snprintf(why, len, "poold is short of its own resources: %s",
		    p->resource_error);
	else if (!fits(p, m))
		snprintf(why, len, "'%s' does not fit without stopping a "
		    "server (it needs %s, %s of the budget is free)", m->name,
		    pool_format_size(m->mem, need, sizeof(need)),
		    pool_format_size(p->used < p->lim.budget ? p->lim.budget -
		    p->used : 0, free_, sizeof(free_)));
	else
		return NULL;
	return why;
}

int
pool_preload(struct pool *p, pool_ms now, struct pool_model *m, char *why,
    size_t whylen)
{
	unsigned failures = m->failures;

	if (m->server != NULL && !m->retired && !p->shutting_down)
		return 0;		/* already running */
	if (preload_refused(p, now, m, why, whylen) != NULL)
		return -1;
	if (!start(p, now, m)) {
		snprintf(why, whylen, "%s", m->put_off ? p->resource_error :
		    "every port is held by servers not yet reaped");
		return -1;
	}
	if (m->server == NULL) {
		if (m->failures != failures)
			snprintf(why, whylen, "%s", m->last_error);
		else
			snprintf(why, whylen, "no free port in %d-%d",
			    p->lim.port_min, p->lim.port_max);
		return -1;
	}
	return 0;
}

void
pool_model_retire(struct pool *p, pool_ms now, struct pool_model *m)
{
	struct pool_server *srv = m->server;
	char msg[PROTO_MODEL_NAME_MAX + 64];

	if (m->retired)
		return;
	m->retired = true;
	if (m->priority == POOL_PRIO_PINNED)
		unpin(p, now, m);
	snprintf(msg, sizeof(msg), "model '%s' was removed", m->name);
	fail_all(p, &m->queued, PROTO_E_UNKNOWN_MODEL, msg);
	if (srv != NULL) {
		fail_all(p, &srv->waiters, PROTO_E_UNKNOWN_MODEL, msg);
		if (srv->leases == 0) {
			plog(p, "stop retired %s: it was removed", m->name);
			stop_server(p, now, srv, POOL_STOP_RETIRED);
		} else
			plog(p, "retired %s: it stops when its %u lease%s "
			    "end", m->name, srv->leases, srv->leases == 1 ?
			    "" : "s");
	}
	schedule(p, now);
}

uint64_t
pool_usage_leased_ms(const struct pool *p, const struct pool_model *m,
    pool_ms now)
{
	const struct pool_server *srv;
	const struct pool_lease *l;
	uint64_t t = m->usage.leased_ms;

	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->model == m)
			TAILQ_FOREACH(l, &srv->lease_list, server_link)
				if (now > l->since)
					t += (uint64_t)(now - l->since);
	return t;
}

void
pool_usage_restore(struct pool *p, struct pool_model *m,
    const struct pool_usage *u)
{
	(void)p;
	m->usage = *u;
	/*
	 * A state file is input: no NaN, negative or infinite frequency,
	 * and none above the acquires (each adds 1, then decays).
	 */
	if (!(m->usage.freq >= 0 && m->usage.freq < 1e300))
		m->usage.freq = 0;
	if (m->usage.freq > (double)m->usage.acquires)
		m->usage.freq = (double)m->usage.acquires;
}
