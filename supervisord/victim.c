/*
 * victim.c — which idle server the pool stops first.
 *
 * LRU (the default): the least recently used.  GreedyDual-Size: the one
 * with the lowest credit H = L + cost/size, set at each use, where L (the
 * pool's inflation) is the credit of the last victim, so servers unused
 * for long sink below fresh ones.  Pure: no I/O, no clock.
 */
#include "victim.h"

bool
victim_evictable(const struct pool_server *srv)
{
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

/* The least recently used of equals under GDS; LRU alone otherwise. */
struct pool_server *
victim_pick(const struct pool *p, unsigned gpu_mask)
{
	struct pool_server *srv, *v = NULL;
	bool gds = p->lim.policy == POOL_POLICY_GDS;

	TAILQ_FOREACH(srv, &p->servers, link)
		if (victim_evictable(srv) && on_gpus(srv, gpu_mask) &&
		    (v == NULL ||
		    (gds && srv->credit < v->credit) ||
		    ((!gds || srv->credit == v->credit) &&
		    srv->last_used < v->last_used)))
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
	if (p->lim.policy == POOL_POLICY_GDS)
		p->inflation = srv->credit;	/* L = H(victim) */
}
