/*
 * victim.c — which server the pool stops first.
 *
 * First a preloaded server still starting that no ACQUIRE waits for: a
 * guess about the future yields to a request of the present.  Then idle
 * READY servers by class, low before normal before high (pinned never),
 * and within a class by the policy.  LRU (the default): the least
 * recently used.  GreedyDual-Size: the one with the lowest credit
 * H = L + cost/size, set at each use, where L (the pool's inflation) is
 * the credit of the last victim, so servers unused for long sink below
 * fresh ones.  FREQ: the lowest decayed frequency of use (usage.freq),
 * the least recently used among equals.  Pure: no I/O, no clock.
 */
#include "victim.h"

/* A start nobody asked for yet, which a request may take the room of. */
static bool
idle_preload(const struct pool_server *srv)
{
	return srv->state == POOL_STARTING && srv->preloaded &&
	    TAILQ_EMPTY(&srv->waiters);
}

bool
victim_evictable(const struct pool_server *srv, bool ready_only)
{
	if (srv->model->priority == POOL_PRIO_PINNED)
		return false;
	if (!ready_only && idle_preload(srv))
		return true;
	/* (Waiters on a ready server wait for its health check.) */
	return srv->state == POOL_READY && srv->leases == 0 &&
	    TAILQ_EMPTY(&srv->waiters);
}

/* Does srv hold memory on one of the GPUs of mask (0: any server)? */
static bool
on_gpus(const struct pool_server *srv, unsigned mask)
{
	for (unsigned d = 0; d < POOL_GPUS_MAX; d++)
		if (mask & (1U << d) && srv->gpu_dev[d] > 0)
			return true;
	return mask == 0;
}

/* Is a a better victim than b (the policy, within one class)? */
static bool
policy_first(const struct pool *p, pool_ms now, const struct pool_server *a,
    const struct pool_server *b)
{
	double fa, fb;

	switch (p->lim.policy) {
	case POOL_POLICY_GDS:
		if (a->credit != b->credit)
			return a->credit < b->credit;
		break;
	case POOL_POLICY_FREQ:
		fa = pool_usage_freq(p, a->model, now);
		fb = pool_usage_freq(p, b->model, now);
		if (fa != fb)
			return fa < fb;
		break;
	case POOL_POLICY_LRU:
		break;
	}
	return a->last_used < b->last_used;
}

/* Is a to be stopped before b? */
static bool
stops_first(const struct pool *p, pool_ms now, const struct pool_server *a,
    const struct pool_server *b)
{
	bool pa = idle_preload(a), pb = idle_preload(b);

	if (pa != pb)
		return pa;
	if (a->model->priority != b->model->priority)
		return a->model->priority < b->model->priority;
	if (pa)		/* the youngest has loaded the least */
		return a->spawned_at > b->spawned_at;
	return policy_first(p, now, a, b);
}

struct pool_server *
victim_pick(const struct pool *p, pool_ms now, unsigned gpu_mask,
    bool ready_only)
{
	struct pool_server *srv, *v = NULL;

	TAILQ_FOREACH(srv, &p->servers, link)
		if (victim_evictable(srv, ready_only) &&
		    on_gpus(srv, gpu_mask) &&
		    (v == NULL || stops_first(p, now, srv, v)))
			v = srv;
	return v;
}

/*
 * cost is the model's last load time, or ~1 ms per MiB (a 1 GB/s disk)
 * before its first load; per GiB only to keep the numbers readable.
 */
void
gds_credit(struct pool *p, struct pool_server *srv)
{
	double cost = srv->model->last_load_ms > 0 ?
	    (double)srv->model->last_load_ms : (double)(srv->mem >> 20) + 1;

	srv->credit = p->inflation + cost * (double)(1 << 30) /
	    (double)(srv->mem > 0 ? srv->mem : 1);
}

void
victim_chosen(struct pool *p, const struct pool_server *srv)
{
	if (p->lim.policy == POOL_POLICY_GDS && srv->state == POOL_READY)
		p->inflation = srv->credit;	/* L = H(victim) */
}

const char *
victim_policy_name(enum pool_policy policy)
{
	switch (policy) {
	case POOL_POLICY_LRU:	return "LRU";
	case POOL_POLICY_GDS:	return "GDS";
	case POOL_POLICY_FREQ:	return "FREQ";
	}
	return "?";
}
