/*
 * sim.c — part 5: the eviction policy against the optimum.
 *
 * A trace-driven simulator that drives the daemon's own pool core
 * (supervisord/pool.c, linked from libpoold.a) with fake ops and a
 * virtual clock: spawn schedules "ready" after the model's load time,
 * stop schedules the reap at once.  Requests are served one after the
 * other (ACQUIRE without a lease, then the next), so the pool behaves as
 * a cache and Belady's rule can be computed offline on the same trace.
 *
 * Policies: LRU by bytes (poold's default: a byte budget), LRU by count
 * (max_servers with an unlimited byte budget: what llama.cpp's router
 * does), GreedyDual-Size (POOL_POLICY_GDS), Belady (offline: on a miss,
 * evict the resident models used farthest in the future until it fits;
 * optimal for equal sizes, the standard reference for unequal ones).
 *
 * Issue 12 adds a restart (day 1 teaches the pool each model's usage,
 * days 2-7 are measured) with POOL_POLICY_FREQ, preloading and poold's
 * quiet refill, on a clock with idle timeouts and a day and a night.
 *
 *	sim [--quick] [--part NAME[,NAME]] [--list] [-v] [-n requests]
 *	    [-m models] [-r seeds] [-B budget_gb]
 *
 * --list names the parts (all run without --part); --quick is 5,000
 * requests and 3 seeds: a check that it runs, not figures to quote;
 * -v adds the preload part's figures of every run (RAW lines).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

#define GB		(1ULL << 30)
#define DAYS		7
#define SEEDS_MAX	16

enum policy { P_LRU_BYTES, P_LRU_COUNT, P_GDS, P_BELADY, P__COUNT };

enum trace_kind { T_ZIPF06, T_ZIPF09, T_ZIPF12, T_BURSTS, T_DAILY,
    T_PROP, T__COUNT };
static const char *trace_name[] = {
	"Zipf s=0.6", "Zipf s=0.9", "Zipf s=1.2", "bursts on Zipf 0.9",
	"daily shift, Zipf 0.9", "Zipf 0.9, load only prop. to size",
};

struct catalog {
	int		 n;
	uint64_t	*size;		/* bytes */
	pool_ms		*load_ms;
	double		 mean_size;
};

struct result {
	double	 hit_pct, cold, load_h;
	double	 peak_gb, over_pct;	/* accounted bytes vs the budget */
};

/* --- randomness (xorshift64*), seeded per run --- */

static uint64_t rng;

static uint64_t
rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

static double
unif(void)
{
	return (double)(rnd() >> 11) / (double)(1ULL << 53);
}

/* --- the catalog and the traces --- */

/*
 * Sizes log-uniform over 1-70 GB (many small quantized models, a few
 * huge ones).  Load time: 2 s to start a server plus size at 2 GB/s,
 * times 0.7-1.3 for the disk and format; prop: size at 2 GB/s only.
 */
static void
make_catalog(struct catalog *c, int n, bool prop)
{
	double sum = 0, gb;

	c->n = n;
	c->size = calloc((size_t)n, sizeof(*c->size));
	c->load_ms = calloc((size_t)n, sizeof(*c->load_ms));
	if (c->size == NULL || c->load_ms == NULL)
		exit(1);
	for (int i = 0; i < n; i++) {
		gb = exp(log(1) + unif() * (log(70) - log(1)));
		c->size[i] = (uint64_t)(gb * (double)GB);
		sum += gb;
		if (prop)
			c->load_ms[i] = (pool_ms)(gb * 500);
		else
			c->load_ms[i] = (pool_ms)((2000 + gb * 500) *
			    (0.7 + 0.6 * unif()));
	}
	c->mean_size = sum / n * (double)GB;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The port range the pool needs: one port per server that can be up at
 * once (as many of the smallest models as fit, and one more), no more.
 * pool.c's pick_port() sorts the free ports of the range at every spawn,
 * so 1-65535 made the simulator ~700x slower.
 */
static int
catalog_ports(const struct catalog *c, uint64_t budget)
{
	uint64_t *v = calloc((size_t)c->n, sizeof(*v)), sum = 0;
	int k;

	if (v == NULL)
		exit(1);
	memcpy(v, c->size, (size_t)c->n * sizeof(*v));
	qsort(v, (size_t)c->n, sizeof(*v), cmp_u64);
	for (k = 0; k < c->n && sum + v[k] <= budget; k++)
		sum += v[k];
	free(v);
	return k < c->n ? k + 1 : c->n;
}

static void
shuffle(int *v, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(rnd() % (uint64_t)(i + 1)), t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

struct zipf {
	double	*cdf;
	int	 n;
};

static void
zipf_init(struct zipf *z, int n, double s)
{
	double sum = 0;

	z->n = n;
	if ((z->cdf = calloc((size_t)n, sizeof(double))) == NULL)
		exit(1);
	for (int i = 0; i < n; i++)
		sum += 1 / pow(i + 1, s);
	for (int i = 0; i < n; i++) {
		z->cdf[i] = (i ? z->cdf[i - 1] : 0) + 1 / pow(i + 1, s) / sum;
	}
}

static int
zipf_rank(const struct zipf *z)
{
	double u = unif();
	int lo = 0, hi = z->n - 1;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (z->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The requested models, in order. */
static void
make_trace(int *out, int len, enum trace_kind k, int nmodels)
{
	struct zipf z;
	int *perm = calloc((size_t)nmodels, sizeof(int));
	int burst_model = 0, burst_left = 0, per_day = len / DAYS;
	double s = k == T_ZIPF06 ? 0.6 : k == T_ZIPF12 ? 1.2 : 0.9;

	if (perm == NULL)
		exit(1);
	for (int i = 0; i < nmodels; i++)
		perm[i] = i;
	shuffle(perm, nmodels);		/* popularity is not size */
	zipf_init(&z, nmodels, s);
	for (int i = 0; i < len; i++) {
		int rank = zipf_rank(&z);

		switch (k) {
		case T_BURSTS:
			/* now and then a model nobody used gets a burst */
			if (burst_left == 0 && unif() < 0.01) {
				burst_model = (int)(rnd() % (uint64_t)nmodels);
				burst_left = 20 + (int)(rnd() % 41);
			}
			if (burst_left > 0 && unif() < 0.5) {
				burst_left--;
				out[i] = burst_model;
				continue;
			}
			out[i] = perm[rank];
			break;
		case T_DAILY:
			/* each day the popular models are others */
			out[i] = perm[(rank + (i / (per_day ? per_day : 1)) *
			    (nmodels / 10)) % nmodels];
			break;
		default:
			out[i] = perm[rank];
			break;
		}
	}
	free(z.cdf);
	free(perm);
}

/* --- the pool, driven with a virtual clock --- */

enum ev_kind { EV_READY, EV_EXIT, EV_NONE };

struct event {
	pool_ms			 t;
	uint64_t		 seq;
	enum ev_kind		 kind;
	struct pool_server	*srv;
};

struct sim {
	const struct catalog	*cat;
	struct event		*heap;
	size_t			 nheap, capheap;
	uint64_t		 seq;
	pool_ms			 now;
	long			 pid;
	bool			 answered, cold;
	enum proto_err		 err;
};

static void
push(struct sim *s, pool_ms t, enum ev_kind kind, struct pool_server *srv)
{
	size_t i;

	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? s->capheap * 2 : 256;
		if ((s->heap = realloc(s->heap, s->capheap *
		    sizeof(*s->heap))) == NULL)
			exit(1);
	}
	i = s->nheap++;
	s->heap[i] = (struct event){ t, s->seq++, kind, srv };
	while (i > 0) {
		size_t up = (i - 1) / 2;
		struct event tmp;

		if (s->heap[up].t < s->heap[i].t || (s->heap[up].t ==
		    s->heap[i].t && s->heap[up].seq < s->heap[i].seq))
			break;
		tmp = s->heap[up];
		s->heap[up] = s->heap[i];
		s->heap[i] = tmp;
		i = up;
	}
}

static struct event
pop(struct sim *s)
{
	struct event top = s->heap[0], tmp;
	size_t i = 0;

	s->heap[0] = s->heap[--s->nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < s->nheap && (s->heap[l].t < s->heap[m].t ||
		    (s->heap[l].t == s->heap[m].t &&
		    s->heap[l].seq < s->heap[m].seq)))
			m = l;
		if (r < s->nheap && (s->heap[r].t < s->heap[m].t ||
		    (s->heap[r].t == s->heap[m].t &&
		    s->heap[r].seq < s->heap[m].seq)))
			m = r;
		if (m == i)
			break;
		tmp = s->heap[m];
		s->heap[m] = s->heap[i];
		s->heap[i] = tmp;
		i = m;
	}
	return top;
}

static int
op_spawn(void *ctx, struct pool_server *srv, char *err, size_t len)
{
	struct sim *s = ctx;
	int i = (int)(intptr_t)srv->model->udata;

	srv->pid = ++s->pid;
	push(s, s->now + s->cat->load_ms[i], EV_READY, srv);
	return 0;
}

static void
op_stop(void *ctx, struct pool_server *srv)
{
	struct sim *s = ctx;

	/* A start stopped before it was ready (a preload that yielded its
	 * room) never becomes ready: its server is freed at the reap. */
	for (size_t i = 0; i < s->nheap; i++)
		if (s->heap[i].srv == srv && s->heap[i].kind == EV_READY)
			s->heap[i].kind = EV_NONE;
	push(s, s->now, EV_EXIT, srv);		/* reaped at once */
}

static void
op_answer(void *ctx, struct pool_waiter *w, const struct pool_answer *a)
{
	struct sim *s = ctx;

	s->answered = true;
	s->cold = a->cold;
	s->err = a->err;
}

static const struct pool_ops sim_ops = {
	.spawn = op_spawn,
	.stop = op_stop,
	.answer = op_answer,
};

static struct result
run_pool(const struct catalog *cat, const int *trace, int len,
    enum policy pol, uint64_t budget, unsigned count)
{
	struct pool_limits lim;
	struct pool_model **models;
	struct pool_owner owner;
	struct pool_waiter w;
	struct result res = { 0 };
	struct sim s;
	struct pool *p;
	char name[32];
	long hits = 0, cold = 0, over = 0;
	double load_ms = 0;
	uint64_t peak = 0;
	pool_ms t = 0;

	memset(&s, 0, sizeof(s));
	s.cat = cat;
	memset(&lim, 0, sizeof(lim));
	lim.budget = pol == P_LRU_COUNT ? UINT64_MAX / 4 : budget;
	lim.max_servers = pol == P_LRU_COUNT ? count : 1000000;
	lim.port_min = 1;
	lim.port_max = pol == P_LRU_COUNT ? (int)count + 1 :
	    catalog_ports(cat, budget);
	lim.start_timeout = INT64_MAX / 4;
	lim.max_waiters = 1000000;
	lim.policy = pol == P_GDS ? POOL_POLICY_GDS : POOL_POLICY_LRU;
	if ((p = pool_new(&lim, &sim_ops, &s, 0)) == NULL ||
	    (models = calloc((size_t)cat->n, sizeof(*models))) == NULL)
		exit(1);
	for (int i = 0; i < cat->n; i++) {
		snprintf(name, sizeof(name), "m%03d", i);
		if ((models[i] = pool_model_add(p, name, cat->size[i], 0)) ==
		    NULL)
			exit(1);
		models[i]->udata = (void *)(intptr_t)i;
	}
	pool_owner_init(&owner);
	for (int i = 0; i < len; i++) {
		/* requests ~30 s apart; a slow load delays the next ones */
		t += 1 + (pool_ms)(-log(1 - unif()) * 30000);
		if (s.now < t)
			s.now = t;
		pool_ms asked = s.now;

		s.answered = false;
		memset(&w, 0, sizeof(w));
		pool_acquire(p, s.now, &w, &owner, models[trace[i]], false,
		    INT64_MAX / 2);
		while (!s.answered && s.nheap > 0) {
			struct event e = pop(&s);

			s.now = e.t;
			if (e.kind == EV_READY)
				pool_ready(p, s.now, e.srv);
			else if (e.kind == EV_EXIT)
				pool_exited(p, s.now, e.srv, "stopped");
		}
		/* reaps due now (nothing else is pending between requests) */
		while (s.nheap > 0 && s.heap[0].t <= s.now) {
			struct event e = pop(&s);

			if (e.kind == EV_READY)
				pool_ready(p, s.now, e.srv);
			else if (e.kind == EV_EXIT)
				pool_exited(p, s.now, e.srv, "stopped");
		}
		if (!s.answered || s.err != PROTO_OK) {
			fprintf(stderr, "sim: request %d for m%03d not served "
			    "(%d)\n", i, trace[i], s.err);
			exit(1);
		}
		if (s.cold) {
			cold++;
			load_ms += (double)(s.now - asked);
		} else
			hits++;
		if (p->used > peak)
			peak = p->used;
		if (p->used > budget)
			over++;
	}
	res.hit_pct = 100.0 * (double)hits / len;
	res.cold = (double)cold;
	res.load_h = load_ms / 3600000;
	res.peak_gb = (double)peak / (double)GB;
	res.over_pct = 100.0 * (double)over / len;
	pool_free(p);
	free(models);
	free(s.heap);
	return res;
}

/* --- two machines against one twice as large (issue 11) --- */

#define NODES_MAX	4

/*
 * Each node runs the pool core with its own events; the clock is shared
 * (a request waits for its node).  A request arrives at one node at
 * random (the bot asks its local poold) and is placed as cs_place()
 * does: a ready server anywhere, ours first; else a cold start here,
 * since nothing is leased in this trace, so this node can always admit
 * (self_can_admit) and comes first among the nodes that have the model
 * (every node has every model).
 */
static struct result
run_cluster(const struct catalog *cat, const int *trace, int len,
    uint64_t budget, int nnodes)
{
	struct pool_limits lim;
	struct pool_model **models[NODES_MAX];
	struct pool_owner owner;
	struct pool_waiter w;
	struct result res = { 0 };
	struct sim s[NODES_MAX];
	struct pool *p[NODES_MAX];
	char name[32];
	long hits = 0, cold = 0;
	double load_ms = 0;
	pool_ms t = 0, now = 0;

	memset(&lim, 0, sizeof(lim));
	lim.budget = budget;
	lim.max_servers = 1000000;
	lim.port_min = 1;
	lim.port_max = catalog_ports(cat, budget);
	lim.start_timeout = INT64_MAX / 4;
	lim.max_waiters = 1000000;
	for (int k = 0; k < nnodes; k++) {
		memset(&s[k], 0, sizeof(s[k]));
		s[k].cat = cat;
		if ((p[k] = pool_new(&lim, &sim_ops, &s[k], 0)) == NULL ||
		    (models[k] = calloc((size_t)cat->n,
		    sizeof(*models[k]))) == NULL)
			exit(1);
		for (int i = 0; i < cat->n; i++) {
			snprintf(name, sizeof(name), "m%03d", i);
			if ((models[k][i] = pool_model_add(p[k], name,
			    cat->size[i], 0)) == NULL)
				exit(1);
			models[k][i]->udata = (void *)(intptr_t)i;
		}
	}
	pool_owner_init(&owner);
	for (int i = 0; i < len; i++) {
		int self = (int)(rnd() % (uint64_t)nnodes), k = self;

		t += 1 + (pool_ms)(-log(1 - unif()) * 30000);
		if (now < t)
			now = t;
		/* ready anywhere wins, ours first */
		for (int j = 0; j < nnodes; j++) {
			int c = (self + j) % nnodes;
			const struct pool_server *srv = models[c][trace[i]]->server;

			if (srv != NULL && srv->state == POOL_READY) {
				k = c;
				break;
			}
		}
		struct sim *sk = &s[k];

		if (sk->now < now)
			sk->now = now;
		pool_ms asked = sk->now;

		sk->answered = false;
		memset(&w, 0, sizeof(w));
		pool_acquire(p[k], sk->now, &w, &owner, models[k][trace[i]],
		    false, INT64_MAX / 2);
		while (sk->nheap > 0 && (!sk->answered ||
		    sk->heap[0].t <= sk->now)) {
			struct event e = pop(sk);

			if (e.t > sk->now)
				sk->now = e.t;
			if (e.kind == EV_READY)
				pool_ready(p[k], sk->now, e.srv);
			else if (e.kind == EV_EXIT)
				pool_exited(p[k], sk->now, e.srv, "stopped");
		}
		if (!sk->answered || sk->err != PROTO_OK) {
			fprintf(stderr, "sim: cluster request %d not served\n",
			    i);
			exit(1);
		}
		now = sk->now;
		if (sk->cold) {
			cold++;
			load_ms += (double)(sk->now - asked);
		} else
			hits++;
	}
	res.hit_pct = 100.0 * (double)hits / len;
	res.cold = (double)cold;
	res.load_h = load_ms / 3600000;
	for (int k = 0; k < nnodes; k++) {
		pool_free(p[k]);
		free(models[k]);
		free(s[k].heap);
	}
	return res;
}

/* --- Belady, offline --- */

static struct result
run_belady(const struct catalog *cat, const int *trace, int len,
    uint64_t budget)
{
	int *next = calloc((size_t)len, sizeof(int));
	int *last = calloc((size_t)cat->n, sizeof(int));
	int *nextuse = calloc((size_t)cat->n, sizeof(int));
	bool *resident = calloc((size_t)cat->n, sizeof(bool));
	int *res_list = calloc((size_t)cat->n, sizeof(int));
	int nres = 0;
	uint64_t used = 0;
	long hits = 0, cold = 0;
	double load_ms = 0;
	struct result r = { 0 };

	if (!next || !last || !nextuse || !resident || !res_list)
		exit(1);
	for (int m = 0; m < cat->n; m++)
		last[m] = len;			/* never again */
	for (int i = len - 1; i >= 0; i--) {
		next[i] = last[trace[i]];
		last[trace[i]] = i;
	}
	for (int i = 0; i < len; i++) {
		int m = trace[i];

		nextuse[m] = next[i];
		if (resident[m]) {
			hits++;
			continue;
		}
		cold++;
		load_ms += (double)cat->load_ms[m];
		while (used + cat->size[m] > budget) {
			int victim = -1, vi = -1;

			for (int k = 0; k < nres; k++) {
				int c = res_list[k];

				if (victim < 0 || nextuse[c] > nextuse[victim] ||
				    (nextuse[c] == nextuse[victim] &&
				    cat->size[c] > cat->size[victim])) {
					victim = c;
					vi = k;
				}
			}
			resident[victim] = false;
			used -= cat->size[victim];
			res_list[vi] = res_list[--nres];
		}
		resident[m] = true;
		used += cat->size[m];
		res_list[nres++] = m;
	}
	r.hit_pct = 100.0 * (double)hits / len;
	r.cold = (double)cold;
	r.load_h = load_ms / 3600000;
	r.peak_gb = (double)used / (double)GB;
	free(next);
	free(last);
	free(nextuse);
	free(resident);
	free(res_list);
	return r;
}

/* --- issue 12: restarts, preloading, quiet refill, POOL_POLICY_FREQ --- */

#define HOUR_MS		(3600LL * 1000)
#define DAY_MS		(24 * HOUR_MS)
#define WINDOW_MS	(2 * HOUR_MS)	/* "just after the restart" */
#define IDLE_MS		(30 * 60 * 1000LL)	/* poold's default */
#define REFILL_MS	(10 * 60 * 1000LL)
#define NEVER		INT64_MAX

/*
 * The traces of this part: a stationary Zipf, the daily shift above
 * (yesterday's favourites are today's tail: frequency is wrong for a
 * while every day), new releases (every 6 h the least popular model
 * becomes the most popular and the others move one rank down: frequency
 * lags, recency does not), the bursts, and Zipf 0.9 with a request
 * every 5 min instead of 30 s (servers time out; refill has room).
 */
enum rtrace { R_ZIPF09, R_DAILY, R_RELEASES, R_BURSTS, R_QUIET,
    R__COUNT };
static const char *rtrace_name[] = {
	"Zipf 0.9", "daily shift", "new release every 6 h", "bursts",
	"Zipf 0.9, 10x quieter",
};

struct rconf {
	const char	*name;
	enum pool_policy policy;
	pool_ms		 half_life;	/* 0: POOL_FREQ_HALF_LIFE_DEFAULT */
};
static const struct rconf rconf[] = {
	{ "LRU", POOL_POLICY_LRU, 0 },
	{ "GDS", POOL_POLICY_GDS, 0 },
	{ "FREQ 24h", POOL_POLICY_FREQ, 0 },
	{ "FREQ 6h", POOL_POLICY_FREQ, 6 * HOUR_MS },
	{ "FREQ 2h", POOL_POLICY_FREQ, 2 * HOUR_MS },
};
#define NRCONF		(int)(sizeof(rconf) / sizeof(rconf[0]))
#define RC_BELADY	NRCONF		/* the offline reference */

/*
 * Refill "not idled" skips a model whose server its idle timeout stopped
 * since its last request: without that, refill reloads at night what
 * idle_timeout has just stopped, which times out again unused.
 */
enum rmode { M_NONE, M_PRELOAD_FEW, M_PRELOAD, M_REFILL, M_REFILL_NOIDLE,
    M__COUNT };
static const char *rmode_name[] = { "no preload", "preload 4", "preload",
    "preload + refill", "preload + refill (not idled)" };
#define PRELOAD_FEW	4	/* "preload": 4, the head of the Zipf */

/* One run after the restart: the whole rest, and its first WINDOW_MS. */
struct rres {
	double	 hit_pct, cold, wait_mean_s, wait_med_s;
	double	 w_hit_pct, w_cold, w_wait_mean_s;
	double	 loads, wasted;		/* every start; preloads never used */
	double	 refills;		/* quiet refill's starts */
};

/* The requested models (make_trace's releases and daily shift by time). */
static void
make_rtrace(int *out, int len, enum rtrace k, int nmodels)
{
	struct zipf z;
	int *perm = calloc((size_t)nmodels, sizeof(int));
	int burst_model = 0, burst_left = 0, per_day = len / DAYS;
	int per_release = per_day / 4;

	if (perm == NULL)
		exit(1);
	for (int i = 0; i < nmodels; i++)
		perm[i] = i;
	shuffle(perm, nmodels);
	zipf_init(&z, nmodels, 0.9);
	for (int i = 0; i < len; i++) {
		int rank = zipf_rank(&z), shift;

		switch (k) {
		case R_DAILY:
			out[i] = perm[(rank + (i / (per_day ? per_day : 1)) *
			    (nmodels / 10)) % nmodels];
			break;
		case R_RELEASES:
			/* model perm[j] has rank j + shift (mod n) */
			shift = (i / (per_release ? per_release : 1)) % nmodels;
			out[i] = perm[(rank - shift + nmodels) % nmodels];
			break;
		case R_BURSTS:
			if (burst_left == 0 && unif() < 0.01) {
				burst_model = (int)(rnd() % (uint64_t)nmodels);
				burst_left = 20 + (int)(rnd() % 41);
			}
			if (burst_left > 0 && unif() < 0.5) {
				burst_left--;
				out[i] = burst_model;
				break;
			}
			out[i] = perm[rank];
			break;
		default:
			out[i] = perm[rank];
			break;
		}
	}
	free(z.cdf);
	free(perm);
}

/*
 * Arrivals with a day and a night: the rate swings 0.2-1.8x around one
 * request per 30 s over 24 h, so nights have quiet periods (refill's
 * chance) and idle servers time out.
 */
static pool_ms
next_arrival(pool_ms t, double mean_ms)
{
	double rate = 1 + 0.8 * sin(2 * M_PI * (double)(t % DAY_MS) /
	    (double)DAY_MS);

	return t + 1 + (pool_ms)(-log(1 - unif()) * mean_ms / rate);
}

/*
 * The pool with its clock, its timers (pool_next_deadline) and poold's
 * quiet refill, as the daemon would drive it.
 */
static double freq_check_max;	/* pool_usage_freq against our own sum */
static bool verbose;		/* -v: RAW lines, one per run */

struct rsim {
	struct sim		 s;		/* first: the ops' ctx */
	struct pool		*p;
	struct pool_model	**models;
	const struct catalog	*cat;
	uint64_t		 budget;
	pool_ms			 refill_ms;	/* 0: off */
	pool_ms			 last_req, last_refill;
	bool			*fresh;		/* preloaded, not yet asked for */
	bool			*idled;		/* idle-stopped since asked for */
	bool			 in_preload, skip_idled;
	long			 loads, wasted, refills;
};

static int
rop_spawn(void *ctx, struct pool_server *srv, char *err, size_t len)
{
	struct rsim *r = ctx;
	int i = (int)(intptr_t)srv->model->udata;

	r->loads++;
	if (r->in_preload)
		r->fresh[i] = true;
	return op_spawn(ctx, srv, err, len);
}

static void
rop_stop(void *ctx, struct pool_server *srv)
{
	struct rsim *r = ctx;
	int i = (int)(intptr_t)srv->model->udata;

	if (r->fresh[i]) {
		r->fresh[i] = false;
		r->wasted++;
	}
	if (srv->stop_reason == POOL_STOP_IDLE)
		r->idled[i] = true;
	op_stop(ctx, srv);
}

static const struct pool_ops rsim_ops = {
	.spawn = rop_spawn,
	.stop = rop_stop,
	.answer = op_answer,
};

static void
rsim_init(struct rsim *r, const struct catalog *cat, uint64_t budget,
    const struct rconf *rc, pool_ms refill_ms, pool_ms now)
{
	struct pool_limits lim;
	char name[32];

	memset(r, 0, sizeof(*r));
	r->s.cat = cat;
	r->s.now = now;
	r->cat = cat;
	r->budget = budget;
	r->refill_ms = refill_ms;
	r->last_req = r->last_refill = now;
	memset(&lim, 0, sizeof(lim));
	lim.budget = budget;
	lim.max_servers = 1000000;
	lim.port_min = 1;
	lim.port_max = catalog_ports(cat, budget);
	lim.start_timeout = INT64_MAX / 4;
	lim.max_waiters = 1000000;
	lim.policy = rc->policy;
	lim.freq_half_life = rc->half_life;
	if ((r->p = pool_new(&lim, &rsim_ops, r, now)) == NULL ||
	    (r->models = calloc((size_t)cat->n, sizeof(*r->models))) == NULL ||
	    (r->fresh = calloc((size_t)cat->n, sizeof(bool))) == NULL ||
	    (r->idled = calloc((size_t)cat->n, sizeof(bool))) == NULL)
		exit(1);
	for (int i = 0; i < cat->n; i++) {
		snprintf(name, sizeof(name), "m%03d", i);
		if ((r->models[i] = pool_model_add(r->p, name, cat->size[i],
		    IDLE_MS)) == NULL)
			exit(1);
		r->models[i]->udata = (void *)(intptr_t)i;
	}
}

static void
rsim_free(struct rsim *r)
{
	pool_free(r->p);
	free(r->models);
	free(r->fresh);
	free(r->idled);
	free(r->s.heap);
}

static int
by_freq_desc(const void *a, const void *b)
{
	const double *x = a, *y = b;

	return x[0] < y[0] ? 1 : x[0] > y[0] ? -1 : (x[1] > y[1]) -
	    (x[1] < y[1]);
}

/*
 * Starts, without a request, the most popular models (decayed
 * frequency, as pool_usage_freq says now) that have no server and fit:
 * up to n of them.  Returns how many started.
 */
static int
rsim_preload(struct rsim *r, int n)
{
	double (*order)[2];
	char why[POOL_ERROR_MAX];
	int started = 0;

	if ((order = calloc((size_t)r->cat->n, sizeof(*order))) == NULL)
		exit(1);
	for (int i = 0; i < r->cat->n; i++) {
		order[i][0] = pool_usage_freq(r->p, r->models[i], r->s.now);
		order[i][1] = i;
	}
	qsort(order, (size_t)r->cat->n, sizeof(*order), by_freq_desc);
	r->in_preload = true;
	for (int k = 0; k < r->cat->n && started < n; k++) {
		struct pool_model *m = r->models[(int)order[k][1]];

		if (order[k][0] <= 0)
			break;		/* never used: not popular */
		if (m->server != NULL || r->p->used + m->mem > r->budget ||
		    (r->skip_idled && r->idled[(int)order[k][1]]))
			continue;
		if (pool_preload(r->p, r->s.now, m, why, sizeof(why)) == 0)
			started++;
	}
	r->in_preload = false;
	free(order);
	return started;
}

static void
rsim_event(struct rsim *r)
{
	struct event e = pop(&r->s);

	if (e.t > r->s.now)
		r->s.now = e.t;
	if (e.kind == EV_READY)
		pool_ready(r->p, r->s.now, e.srv);
	else if (e.kind == EV_EXIT)
		pool_exited(r->p, r->s.now, e.srv, "stopped");
}

/*
 * The next thing due: a spawned server's ready or reap, a pool timer,
 * or a refill after a quiet period.  Done if it is due by until;
 * false if nothing is.
 */
static bool
rsim_step(struct rsim *r, pool_ms until)
{
	pool_ms te = NEVER, td, tr = NEVER, t;

	if (r->s.nheap > 0)
		te = r->s.heap[0].t;
	if ((td = pool_next_deadline(r->p, r->s.now)) < 0)
		td = NEVER;
	if (r->refill_ms > 0)
		tr = (r->last_req > r->last_refill ? r->last_req :
		    r->last_refill) + r->refill_ms;
	t = te < td ? te : td;
	t = t < tr ? t : tr;
	if (t == NEVER || t > until)
		return false;
	if (t > r->s.now)
		r->s.now = t;
	if (t == te)
		rsim_event(r);
	else if (t == td)
		pool_tick(r->p, r->s.now);
	else {
		r->refills += rsim_preload(r, 1);
		r->last_refill = r->s.now;
	}
	return true;
}

/* One ACQUIRE at t (or once the previous one is served); its wait. */
static pool_ms
rsim_request(struct rsim *r, int model, pool_ms t, bool *hit)
{
	struct pool_waiter w;
	struct pool_owner owner;
	pool_ms asked;
	long guard = 0;

	while (rsim_step(r, t))
		;
	if (r->s.now < t)
		r->s.now = t;
	asked = r->last_req = r->s.now;
	r->s.answered = false;
	memset(&w, 0, sizeof(w));
	pool_owner_init(&owner);
	pool_acquire(r->p, r->s.now, &w, &owner, r->models[model], false,
	    INT64_MAX / 2);
	while (!r->s.answered && rsim_step(r, NEVER - 1))
		if (++guard > 10000000)
			break;
	if (!r->s.answered || r->s.err != PROTO_OK) {
		fprintf(stderr, "sim: request for m%03d not served (%d)\n",
		    model, r->s.err);
		exit(1);
	}
	r->fresh[model] = false;
	r->idled[model] = false;
	*hit = r->s.now == asked;
	return r->s.now - asked;
}

static int
cmp_ms(const void *a, const void *b)
{
	pool_ms x = *(const pool_ms *)a, y = *(const pool_ms *)b;

	return x < y ? -1 : x > y;
}

struct racc {
	long	 n, hits, cold, wn, whits, wcold;
	double	 wait, wwait;
	pool_ms	*waits;
};

static void
racc_add(struct racc *a, pool_ms wait, bool hit, bool in_window)
{
	a->waits[a->n++] = wait;
	a->wait += (double)wait;
	a->hits += hit;
	a->cold += !hit;
	if (in_window) {
		a->wn++;
		a->wwait += (double)wait;
		a->whits += hit;
		a->wcold += !hit;
	}
}

static struct rres
racc_result(struct racc *a)
{
	struct rres res = { 0 };

	qsort(a->waits, (size_t)a->n, sizeof(*a->waits), cmp_ms);
	res.hit_pct = 100.0 * (double)a->hits / (double)a->n;
	res.cold = (double)a->cold;
	res.wait_mean_s = a->wait / (double)a->n / 1000;
	res.wait_med_s = (double)(a->n % 2 ? a->waits[a->n / 2] :
	    (a->waits[a->n / 2 - 1] + a->waits[a->n / 2]) / 2) / 1000;
	res.w_hit_pct = a->wn ? 100.0 * (double)a->whits / (double)a->wn : 0;
	res.w_cold = (double)a->wcold;
	res.w_wait_mean_s = a->wn ? a->wwait / (double)a->wn / 1000 : 0;
	return res;
}

/*
 * The first day as poold's earlier run: the pool learns each model's
 * usage (usage.freq with this policy's half-life); at t0 poold restarts
 * and gives it back (pool_usage_restore), preloads (or not) and serves
 * the other six days.  Arrival times: arrivals[] (the same for every
 * policy, each request served no earlier than the previous one ends).
 */
static struct rres
run_restart(const struct catalog *cat, const int *trace, const pool_ms *arr,
    int len, int train, uint64_t budget, const struct rconf *rc,
    enum rmode mode)
{
	struct rsim r;
	struct pool_usage *u;
	struct racc acc = { 0 };
	struct rres res;
	pool_ms t0, *answered, hl = rc->half_life ? rc->half_life :
	    POOL_FREQ_HALF_LIFE_DEFAULT;
	double *own;
	bool hit;

	if ((u = calloc((size_t)cat->n, sizeof(*u))) == NULL ||
	    (acc.waits = calloc((size_t)len, sizeof(pool_ms))) == NULL)
		exit(1);
	if ((own = calloc((size_t)cat->n, sizeof(double))) == NULL ||
	    (answered = calloc((size_t)train, sizeof(pool_ms))) == NULL)
		exit(1);
	rsim_init(&r, cat, budget, rc, 0, 0);
	for (int i = 0; i < train; i++) {
		rsim_request(&r, trace[i], arr[i], &hit);
		answered[i] = r.s.now;	/* usage counts it then */
	}
	t0 = r.s.now > arr[train - 1] ? r.s.now : arr[train - 1];
	for (int i = 0; i < train; i++)
		own[trace[i]] += exp2(-(double)(t0 - answered[i]) /
		    (double)hl);
	for (int i = 0; i < cat->n; i++) {
		u[i] = r.models[i]->usage;
		u[i].freq = pool_usage_freq(r.p, r.models[i], t0);
		u[i].freq_at = t0;
		if (own[i] > 0 && fabs(u[i].freq - own[i]) / own[i] >
		    freq_check_max)
			freq_check_max = fabs(u[i].freq - own[i]) / own[i];
	}
	free(own);
	free(answered);
	rsim_free(&r);

	rsim_init(&r, cat, budget, rc, mode >= M_REFILL ? REFILL_MS : 0, t0);
	r.skip_idled = mode == M_REFILL_NOIDLE;
	for (int i = 0; i < cat->n; i++)
		pool_usage_restore(r.p, r.models[i], &u[i]);
	if (mode != M_NONE)
		rsim_preload(&r, mode == M_PRELOAD_FEW ? PRELOAD_FEW : cat->n);
	for (int i = train; i < len; i++) {
		pool_ms wait = rsim_request(&r, trace[i], arr[i], &hit);

		racc_add(&acc, wait, hit, arr[i] < t0 + WINDOW_MS);
	}
	res = racc_result(&acc);
	res.loads = (double)r.loads;
	res.wasted = (double)r.wasted;
	res.refills = (double)r.refills;
	rsim_free(&r);
	free(u);
	free(acc.waits);
	return res;
}

/*
 * Belady after the same restart: empty, or holding what preloading
 * would take (up to npreload of the most frequent of the first day, 24 h
 * half-life, that fit), loaded at t0 for free; no idle timeout.  The
 * offline bound.
 */
static struct rres
run_restart_belady(const struct catalog *cat, const int *trace,
    const pool_ms *arr, int len, int train, uint64_t budget, int npreload)
{
	int n = len - train, *next, *last, *nextuse, *res_list, nres = 0;
	int npre = 0;
	bool *resident;
	double (*order)[2];
	struct racc acc = { 0 };
	struct rres res;
	uint64_t used = 0;
	pool_ms t0 = arr[train - 1];

	next = calloc((size_t)n, sizeof(int));
	last = calloc((size_t)cat->n, sizeof(int));
	nextuse = calloc((size_t)cat->n, sizeof(int));
	res_list = calloc((size_t)cat->n, sizeof(int));
	resident = calloc((size_t)cat->n, sizeof(bool));
	order = calloc((size_t)cat->n, sizeof(*order));
	acc.waits = calloc((size_t)n, sizeof(pool_ms));
	if (!next || !last || !nextuse || !res_list || !resident || !order ||
	    !acc.waits)
		exit(1);
	for (int m = 0; m < cat->n; m++) {
		last[m] = n;
		order[m][1] = m;
	}
	for (int i = n - 1; i >= 0; i--) {
		next[i] = last[trace[train + i]];
		last[trace[train + i]] = i;
	}
	for (int m = 0; m < cat->n; m++)
		nextuse[m] = last[m];
	for (int i = 0; i < train; i++)
		order[trace[i]][0] += exp2(-(double)(t0 - arr[i]) /
		    (double)POOL_FREQ_HALF_LIFE_DEFAULT);
	qsort(order, (size_t)cat->n, sizeof(*order), by_freq_desc);
	for (int k = 0; npre < npreload && k < cat->n && order[k][0] > 0;
	    k++) {
		int m = (int)order[k][1];

		if (used + cat->size[m] <= budget) {
			resident[m] = true;
			used += cat->size[m];
			res_list[nres++] = m;
			npre++;
		}
	}
	for (int i = 0; i < n; i++) {
		int m = trace[train + i];
		bool win = arr[train + i] < t0 + WINDOW_MS;

		nextuse[m] = next[i];
		if (resident[m]) {
			racc_add(&acc, 0, true, win);
			continue;
		}
		racc_add(&acc, cat->load_ms[m], false, win);
		while (used + cat->size[m] > budget) {
			int victim = -1, vi = -1;

			for (int k = 0; k < nres; k++) {
				int c = res_list[k];

				if (victim < 0 || nextuse[c] > nextuse[victim] ||
				    (nextuse[c] == nextuse[victim] &&
				    cat->size[c] > cat->size[victim])) {
					victim = c;
					vi = k;
				}
			}
			resident[victim] = false;
			used -= cat->size[victim];
			res_list[vi] = res_list[--nres];
		}
		resident[m] = true;
		used += cat->size[m];
		res_list[nres++] = m;
	}
	res = racc_result(&acc);
	res.loads = res.cold + npre;
	res.wasted = 0;
	free(next);
	free(last);
	free(nextuse);
	free(res_list);
	free(resident);
	free(order);
	free(acc.waits);
	return res;
}

/* --- the table --- */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct summary {
	double	 med, min, max;
};

static struct summary
summarize(double *v, int n)
{
	struct summary s;

	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	s.min = v[0];
	s.max = v[n - 1];
	return s;
}

static struct summary
field(struct result r[][SEEDS_MAX], int pol, int n, size_t off)
{
	double v[SEEDS_MAX];

	for (int i = 0; i < n; i++)
		v[i] = *(double *)((char *)&r[pol][i] + off);
	return summarize(v, n);
}

/*
 * One metric of one trace.  GDS against LRU-bytes seed by seed (same
 * catalog, same trace): better only if better on every seed.
 */
static void
row(const char *trace, const char *metric, const char *fmt,
    struct result r[][SEEDS_MAX], int n, size_t off, bool higher_better)
{
	struct summary s[P__COUNT], q;
	char what[160], lru[128], base[256], a[32], b[32], c[32], ratio[64];
	const char *verdict;
	double v[SEEDS_MAX];

	for (int p = 0; p < P__COUNT; p++)
		s[p] = field(r, p, n, off);
	for (int i = 0; i < n; i++) {
		double g = *(double *)((char *)&r[P_GDS][i] + off);
		double l = *(double *)((char *)&r[P_LRU_BYTES][i] + off);

		v[i] = l != 0 ? g / l : 1;
	}
	q = summarize(v, n);
	snprintf(what, sizeof(what), "%s: %s", trace, metric);
	snprintf(a, sizeof(a), fmt, s[P_LRU_BYTES].med);
	snprintf(b, sizeof(b), fmt, s[P_LRU_BYTES].min);
	snprintf(c, sizeof(c), fmt, s[P_LRU_BYTES].max);
	snprintf(lru, sizeof(lru), "%s [%s-%s]", a, b, c);
	snprintf(a, sizeof(a), fmt, s[P_LRU_COUNT].med);
	snprintf(b, sizeof(b), fmt, s[P_GDS].med);
	snprintf(c, sizeof(c), fmt, s[P_BELADY].med);
	snprintf(base, sizeof(base), "count %s; GDS %s; Belady %s", a, b, c);
	snprintf(ratio, sizeof(ratio), "GDS %.2fx [%.2f-%.2f]", q.med, q.min,
	    q.max);
	if (higher_better ? q.min > 1 : q.max < 1)
		verdict = "GDS better";
	else if (higher_better ? q.max < 1 : q.min > 1)
		verdict = "LRU better";
	else
		verdict = "mixed: no winner";
	printf("ROW\t5 eviction sim\t%s\t%s\t%s\t%s\t-\t%s\n", what, lru, base,
	    ratio, verdict);
}

/*
 * Issue 11: 2 nodes of budget B/2 each against 1 node of B, the same
 * Zipf 0.9 trace and catalog, LRU by bytes on every node.
 */
static void
cluster_rows(int nreq, int nmodels, int seeds, double budget_gb, int *trace)
{
	double hit[2][SEEDS_MAX], cold[2][SEEDS_MAX], load[2][SEEDS_MAX];
	struct summary a, b;
	uint64_t budget = (uint64_t)(budget_gb * (double)GB);

	for (int sd = 0; sd < seeds; sd++) {
		struct catalog cat;
		uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(sd + 1);
		struct result r;

		rng = seed;
		make_catalog(&cat, nmodels, false);
		make_trace(trace, nreq, T_ZIPF09, nmodels);
		for (int n = 0; n < 2; n++) {
			rng = seed ^ 0x5555;	/* same arrivals */
			r = run_cluster(&cat, trace, nreq, n == 0 ? budget :
			    budget / 2, n == 0 ? 1 : 2);
			hit[n][sd] = r.hit_pct;
			cold[n][sd] = r.cold;
			load[n][sd] = r.load_h;
		}
		free(cat.size);
		free(cat.load_ms);
	}
	a = summarize(hit[1], seeds);
	b = summarize(hit[0], seeds);
	printf("ROW\t5 eviction sim\tZipf s=0.9, 2 nodes x %.0f GB vs 1 x "
	    "%.0f GB: hit ratio (%%)\t%.1f [%.1f-%.1f]\t1 node %.1f "
	    "[%.1f-%.1f]\t-\t-\t%s\n", budget_gb / 2, budget_gb, a.med,
	    a.min, a.max, b.med, b.min, b.max,
	    a.max < b.min ? "1 node better" : a.min > b.max ? "2 nodes better" :
	    "overlap");
	a = summarize(cold[1], seeds);
	b = summarize(cold[0], seeds);
	printf("ROW\t5 eviction sim\tZipf s=0.9, 2 nodes x %.0f GB vs 1 x "
	    "%.0f GB: cold starts\t%.0f [%.0f-%.0f]\t1 node %.0f "
	    "[%.0f-%.0f]\t-\t-\t%s\n", budget_gb / 2, budget_gb, a.med,
	    a.min, a.max, b.med, b.min, b.max,
	    a.min > b.max ? "1 node better" : a.max < b.min ? "2 nodes better" :
	    "overlap");
	a = summarize(load[1], seeds);
	b = summarize(load[0], seeds);
	printf("ROW\t5 eviction sim\tZipf s=0.9, 2 nodes x %.0f GB vs 1 x "
	    "%.0f GB: load time (h)\t%.1f [%.1f-%.1f]\t1 node %.1f "
	    "[%.1f-%.1f]\t-\t-\t-\n", budget_gb / 2, budget_gb, a.med,
	    a.min, a.max, b.med, b.min, b.max);
}

/* --- issue 12: the table --- */

static const char *
rverdict(const double *ratio, int n)
{
	double lo = ratio[0], hi = ratio[0];

	for (int i = 1; i < n; i++) {
		lo = ratio[i] < lo ? ratio[i] : lo;
		hi = ratio[i] > hi ? ratio[i] : hi;
	}
	if (lo == 1 && hi == 1)
		return "same";
	return hi < 1 ? "less wait on every seed" : lo > 1 ?
	    "more wait on every seed" : "mixed";
}

/* The median over the seeds of one field of struct rres. */
static double
rmed(const struct rres *r, int n, size_t off)
{
	double v[SEEDS_MAX];

	for (int i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&r[i] + off);
	return summarize(v, n).med;
}
#define RMED(f)	rmed(r, n, offsetof(struct rres, f))

static void
rrow(const char *trace, const char *conf, const char *mode,
    const struct rres *r, const struct rres *base, int n)
{
	double ratio[SEEDS_MAX];
	struct summary q;
	bool is_base = r == base;

	for (int i = 0; i < n; i++)
		ratio[i] = base[i].wait_mean_s > 0 ? r[i].wait_mean_s /
		    base[i].wait_mean_s : 1;
	q = summarize(ratio, n);
	printf("ROW\t12 preload sim\t%s: %s, %s\thit %.1f%%, cold %.0f, "
	    "wait mean %.2f s, median %.2f s\tfirst 2 h: hit %.1f%%, cold "
	    "%.0f, wait mean %.2f s; loads %.0f (%.0f refills, %.0f "
	    "preloads unused)\t"
	    "%.2fx [%.2f-%.2f]\t-\t%s\n", trace, conf, mode, RMED(hit_pct),
	    RMED(cold), RMED(wait_mean_s), RMED(wait_med_s), RMED(w_hit_pct),
	    RMED(w_cold), RMED(w_wait_mean_s), RMED(loads), RMED(refills),
	    RMED(wasted),
	    q.med, q.min, q.max, is_base ? "baseline" : rverdict(ratio, n));
}

/* One run's figures, for a closer look (-v). */
static void
rraw(const char *trace, const char *conf, const char *mode, int seed,
    const struct rres *r)
{
	printf("RAW\t%s\t%s\t%s\t%d\t%.3f\t%.0f\t%.4f\t%.4f\t%.3f\t%.0f"
	    "\t%.4f\t%.0f\t%.0f\t%.0f\n", trace, conf, mode, seed,
	    r->hit_pct, r->cold, r->wait_mean_s, r->wait_med_s, r->w_hit_pct,
	    r->w_cold, r->w_wait_mean_s, r->loads, r->refills, r->wasted);
}

static void
part_preload(int nreq, int nmodels, int seeds, double budget_gb)
{
	static struct rres r[R__COUNT][NRCONF + 1][M__COUNT][SEEDS_MAX];
	uint64_t budget = (uint64_t)(budget_gb * (double)GB);
	int *trace = calloc((size_t)nreq, sizeof(int)), train = nreq / DAYS;
	pool_ms *arr = calloc((size_t)nreq, sizeof(pool_ms));

	if (trace == NULL || arr == NULL)
		exit(1);
	for (int k = 0; k < R__COUNT; k++)
		for (int sd = 0; sd < seeds; sd++) {
			struct catalog cat;
			uint64_t seed = 0x9e3779b97f4a7c15ULL *
			    (uint64_t)(sd + 1);

			rng = seed;
			make_catalog(&cat, nmodels, false);
			make_rtrace(trace, nreq, (enum rtrace)k, nmodels);
			rng = seed ^ 0x5555;
			for (int i = 0; i < nreq; i++)
				arr[i] = next_arrival(i ? arr[i - 1] : 0,
				    k == R_QUIET ? 300000 : 30000);
			for (int c = 0; c < NRCONF; c++)
				for (int m = 0; m < M__COUNT; m++)
					r[k][c][m][sd] = run_restart(&cat,
					    trace, arr, nreq, train, budget,
					    &rconf[c], (enum rmode)m);
			for (int m = 0; m < M__COUNT; m++)
				r[k][RC_BELADY][m][sd] = run_restart_belady(
				    &cat, trace, arr, nreq, train, budget,
				    m == M_NONE ? 0 : m == M_PRELOAD_FEW ?
				    PRELOAD_FEW : nmodels);
			free(cat.size);
			free(cat.load_ms);
		}
	for (int k = 0; verbose && k < R__COUNT; k++)
		for (int c = 0; c <= NRCONF; c++)
			for (int m = 0; m < M__COUNT; m++)
				for (int sd = 0; sd < seeds; sd++)
					rraw(rtrace_name[k], c == RC_BELADY ?
					    "Belady" : rconf[c].name,
					    rmode_name[m], sd, &r[k][c][m][sd]);
	for (int k = 0; k < R__COUNT; k++) {
		for (int c = 0; c < NRCONF; c++)
			for (int m = 0; m < M__COUNT; m++)
				rrow(rtrace_name[k], rconf[c].name,
				    rmode_name[m], r[k][c][m],
				    r[k][0][M_NONE], seeds);
		for (int m = 0; m < M_REFILL; m++)
			rrow(rtrace_name[k], "Belady", rmode_name[m],
			    r[k][RC_BELADY][m], r[k][0][M_NONE], seeds);
	}
	printf("NOTE\tpreload sim: %d models, budget %.0f GB, %d requests "
	    "over ~7 days (one per 30 s on average, the rate 0.2-1.8x over "
	    "the day), idle_timeout 30 min; day 1 is the run before a "
	    "restart (the pool learns usage), days 2-7 are measured; "
	    "preload = every model of the first day's usage, most frequent "
	    "first, that fits at the restart; refill = after %lld min "
	    "without a request, the most frequent one that fits; %d seeds "
	    "(medians); wait ratio = mean wait against LRU without preload, "
	    "same seed; pool_usage_freq vs the sim's own sum: max relative "
	    "difference %.2g\n", nmodels, budget_gb, nreq,
	    (long long)(REFILL_MS / 60000), seeds, freq_check_max);
	free(trace);
	free(arr);
}

/* Issue 10: LRU (bytes, count), GDS and Belady on six traces. */
static void
part_policies(int nreq, int nmodels, int seeds, double budget_gb)
{
	static struct result r[T__COUNT][P__COUNT][SEEDS_MAX];
	unsigned count = 0, count_min = UINT32_MAX, count_max = 0;
	int *trace;

	if ((trace = calloc((size_t)nreq, sizeof(int))) == NULL)
		exit(1);
	for (int k = 0; k < T__COUNT; k++)
		for (int sd = 0; sd < seeds; sd++) {
			struct catalog cat;
			uint64_t budget = (uint64_t)(budget_gb * (double)GB);
			uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(sd +
			    1);

			/* the same catalog and trace for every policy */
			rng = seed;
			make_catalog(&cat, nmodels, k == T_PROP);
			make_trace(trace, nreq, k, nmodels);
			/* the router's count: as many as fit on average */
			count = (unsigned)((double)budget / cat.mean_size + 0.5);
			if (count < 1)
				count = 1;
			if (count < count_min)
				count_min = count;
			if (count > count_max)
				count_max = count;
			for (int p = 0; p < P__COUNT; p++) {
				rng = seed ^ 0x5555;	/* same arrivals */
				r[k][p][sd] = p == P_BELADY ? run_belady(&cat,
				    trace, nreq, budget) : run_pool(&cat,
				    trace, nreq, (enum policy)p, budget,
				    count);
			}
			free(cat.size);
			free(cat.load_ms);
		}
	for (int k = 0; k < T__COUNT; k++) {
		struct summary pk, ov;

		row(trace_name[k], "hit ratio (%)", "%.1f", r[k], seeds,
		    offsetof(struct result, hit_pct), true);
		row(trace_name[k], "cold starts", "%.0f", r[k], seeds,
		    offsetof(struct result, cold), false);
		row(trace_name[k], "load time (h)", "%.1f", r[k], seeds,
		    offsetof(struct result, load_h), false);
		pk = field(r[k], P_LRU_COUNT, seeds,
		    offsetof(struct result, peak_gb));
		ov = field(r[k], P_LRU_COUNT, seeds,
		    offsetof(struct result, over_pct));
		printf("NOTE\tsim, %s: LRU-count (max %u-%u servers, no byte "
		    "budget) peaks at %.0f GB [%.0f-%.0f] and serves %.0f%% "
		    "[%.0f-%.0f] of requests while over the %.0f GB budget\n",
		    trace_name[k], count_min, count_max, pk.med, pk.min, pk.max, ov.med,
		    ov.min, ov.max, budget_gb);
	}
	printf("NOTE\tsim: %d models, sizes log-uniform 1-70 GB, load = "
	    "(2 s + size / 2 GB/s) x 0.7-1.3 (last trace: size / 2 GB/s "
	    "only), byte budget %.0f GB, LRU-count max_servers = budget / "
	    "mean size; %d requests per trace, %d seeds (medians, LRU-bytes "
	    "with min-max); the pool is supervisord/pool.c itself; Belady = "
	    "farthest next use first, by bytes\n", nmodels, budget_gb, nreq,
	    seeds);
	free(trace);
}

static void
part_cluster(int nreq, int nmodels, int seeds, double budget_gb)
{
	int *trace;

	if ((trace = calloc((size_t)nreq, sizeof(int))) == NULL)
		exit(1);
	cluster_rows(nreq, nmodels, seeds, budget_gb, trace);
	free(trace);
}

static const struct part {
	const char	*name;
	void		(*run)(int, int, int, double);
	const char	*what;
} parts[] = {
	{ "policies", part_policies, "LRU by bytes and by count, GDS, "
	    "Belady on six traces (issue 10)" },
	{ "cluster", part_cluster, "2 nodes x B/2 against 1 node x B "
	    "(issue 11)" },
	{ "preload", part_preload, "a restart: LRU, GDS, FREQ, Belady, "
	    "without and with preloading and quiet refill (issue 12)" },
};
#define NPARTS	(int)(sizeof(parts) / sizeof(parts[0]))

static void
usage(void)
{
	fprintf(stderr, "usage: sim [--quick] [--part NAME[,NAME]] [--list] "
	    "[-v] [-n requests] [-m models] [-r seeds] [-B budget_gb]\n");
	exit(1);
}

/* Marks the parts named in a comma-separated list; false if one is not. */
static bool
parts_pick(char *list, bool *want)
{
	char *name;

	while ((name = strsep(&list, ",")) != NULL) {
		int k;

		for (k = 0; k < NPARTS; k++)
			if (strcmp(name, parts[k].name) == 0)
				break;
		if (k == NPARTS) {
			fprintf(stderr, "sim: no part %s (--list)\n", name);
			return false;
		}
		want[k] = true;
	}
	return true;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "part", required_argument, NULL, 'p' },
		{ "list", no_argument, NULL, 'l' },
		{ "quick", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 }
	};
	int nreq = 20000, nmodels = 300, seeds = 5, ch;
	double budget_gb = 256;
	bool want[NPARTS] = { false }, any = false;

	while ((ch = getopt_long(argc, argv, "n:m:r:B:v", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'n': nreq = atoi(optarg); break;
		case 'm': nmodels = atoi(optarg); break;
		case 'r': seeds = atoi(optarg); break;
		case 'B': budget_gb = atof(optarg); break;
		case 'v': verbose = true; break;
		case 'p':
			if (!parts_pick(optarg, want))
				return 1;
			break;
		case 'l':
			for (int k = 0; k < NPARTS; k++)
				printf("%-9s %s\n", parts[k].name,
				    parts[k].what);
			return 0;
		case 'q':
			/* a check that it runs, not figures to quote */
			nreq = 5000;
			seeds = 3;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (seeds < 1 || seeds > SEEDS_MAX)
		seeds = 5;
	if (nreq < 7 * 100 || nmodels < 10)
		usage();
	for (int k = 0; k < NPARTS; k++)
		any |= want[k];
	for (int k = 0; k < NPARTS; k++)
		if (want[k] || !any)
			parts[k].run(nreq, nmodels, seeds, budget_gb);
	return 0;
}
