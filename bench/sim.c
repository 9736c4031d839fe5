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
 *	sim [-n requests] [-m models] [-r seeds] [-B budget_gb]
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

enum ev_kind { EV_READY, EV_EXIT };

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
	lim.port_max = cat->n;	/* one server per model at most */
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
			else
				pool_exited(p, s.now, e.srv, "stopped");
		}
		/* reaps due now (nothing else is pending between requests) */
		while (s.nheap > 0 && s.heap[0].t <= s.now) {
			struct event e = pop(&s);

			if (e.kind == EV_READY)
				pool_ready(p, s.now, e.srv);
			else
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
	lim.port_max = cat->n;	/* one server per model at most */
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
			else
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

int
main(int argc, char **argv)
{
	int nreq = 20000, nmodels = 300, seeds = 5, ch;
	double budget_gb = 256;
	struct result r[T__COUNT][P__COUNT][SEEDS_MAX];
	unsigned count = 0, count_min = UINT32_MAX, count_max = 0;
	int *trace;

	while ((ch = getopt(argc, argv, "n:m:r:B:")) != -1) {
		switch (ch) {
		case 'n': nreq = atoi(optarg); break;
		case 'm': nmodels = atoi(optarg); break;
		case 'r': seeds = atoi(optarg); break;
		case 'B': budget_gb = atof(optarg); break;
		default:
			fprintf(stderr, "usage: sim [-n requests] [-m models] "
			    "[-r seeds] [-B budget_gb]\n");
			return 1;
		}
	}
	if (seeds < 1 || seeds > SEEDS_MAX)
		seeds = 5;
	if (nreq < 100 || (trace = calloc((size_t)nreq, sizeof(int))) == NULL)
		return 1;
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
	cluster_rows(nreq, nmodels, seeds, budget_gb, trace);
	printf("NOTE\tsim: %d models, sizes log-uniform 1-70 GB, load = "
	    "(2 s + size / 2 GB/s) x 0.7-1.3 (last trace: size / 2 GB/s "
	    "only), byte budget %.0f GB, LRU-count max_servers = budget / "
	    "mean size; %d requests per trace, %d seeds (medians, LRU-bytes "
	    "with min-max); the pool is supervisord/pool.c itself; Belady = "
	    "farthest next use first, by bytes\n", nmodels, budget_gb, nreq,
	    seeds);
	free(trace);
	return 0;
}
