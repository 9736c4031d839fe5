/*
 * gpus.c — the pool's GPU budgets, one per device: a pool of CUDA
 * servers must not overfill one card while the sum of the cards looks
 * fine.  Pure: no I/O, no clock (see gpus.h and docs/DESIGN.md).
 */
#include <string.h>

#include "gpus.h"

void
gpus_limits(struct pool_limits *l)
{
	uint64_t sum = 0;

	if (l->ngpus > POOL_GPUS_MAX)
		l->ngpus = POOL_GPUS_MAX;
	if (l->ngpus == 0 && l->gpu_budget > 0) {
		l->ngpus = 1;
		l->gpu_budgets[0] = l->gpu_budget;
	}
	for (unsigned d = 0; d < l->ngpus; d++)
		sum += l->gpu_budgets[d];
	l->gpu_budget = sum;
	if (sum == 0)
		l->ngpus = 0;
}

static uint64_t
part(uint64_t bytes, double fraction)
{
	return (uint64_t)((double)bytes * fraction + 0.5);
}

/* llama.cpp's default: split by free memory over its devices. */
static bool
by_free(const struct pool *p, const struct pool_model *m)
{
	if (m->gpu_by_free)
		return true;
	for (unsigned d = 0; d < p->lim.ngpus; d++)
		if (m->gpu_share[d] > 0)
			return false;
	return true;
}

/* The GPUs of a model split by free memory: those with a share, or all. */
static bool
on_gpu(const struct pool *p, const struct pool_model *m, unsigned d)
{
	for (unsigned i = 0; i < p->lim.ngpus; i++)
		if (m->gpu_share[i] > 0)
			return m->gpu_share[d] > 0;
	return true;
}

/*
 * Its fixed shares as they are; split by free memory, in proportion to
 * the budgets of its GPUs.  When the start is admitted each GPU has room
 * for its share, so the whole fits in their free room together, and
 * llama.cpp's split by free memory (share f_d / F of the model on a GPU
 * with f_d free of F) then puts at most f_d on each: no card overfills.
 */
void
gpus_need(const struct pool *p, const struct pool_model *m, uint64_t *need)
{
	double sum = 0;
	unsigned d, n = p->lim.ngpus;

	memset(need, 0, POOL_GPUS_MAX * sizeof(*need));
	if (m->gpu_mem == 0)
		return;
	if (!by_free(p, m)) {
		for (d = 0; d < n; d++)
			need[d] = part(m->gpu_mem, m->gpu_share[d]);
		return;
	}
	for (d = 0; d < n; d++)
		if (on_gpu(p, m, d))
			sum += (double)p->lim.gpu_budgets[d];
	for (d = 0; d < n && sum > 0; d++)
		if (on_gpu(p, m, d))
			need[d] = part(m->gpu_mem,
			    (double)p->lim.gpu_budgets[d] / sum);
}

int
gpus_short(const struct pool *p, const struct pool_model *m)
{
	uint64_t need[POOL_GPUS_MAX];

	gpus_need(p, m, need);
	for (unsigned d = 0; d < p->lim.ngpus; d++)
		if (p->gpu_dev_used[d] + need[d] > p->lim.gpu_budgets[d])
			return (int)d;
	return -1;
}

int
gpus_too_large(const struct pool *p, const struct pool_model *m)
{
	uint64_t need[POOL_GPUS_MAX];

	gpus_need(p, m, need);
	for (unsigned d = 0; d < p->lim.ngpus; d++)
		if (need[d] > p->lim.gpu_budgets[d])
			return (int)d;
	return -1;
}

void
gpus_account(struct pool *p, struct pool_server *srv, const uint64_t *acc)
{
	srv->gpu_mem = 0;
	for (unsigned d = 0; d < POOL_GPUS_MAX; d++) {
		p->gpu_dev_used[d] = p->gpu_dev_used[d] - srv->gpu_dev[d] +
		    acc[d];
		p->gpu_used = p->gpu_used - srv->gpu_dev[d] + acc[d];
		srv->gpu_dev[d] = acc[d];
		srv->gpu_mem += acc[d];
	}
}

/*
 * Split by free memory, a server takes on each GPU the share llama.cpp
 * will give it from the room it finds (what the pool leaves free there),
 * or its share by budget if that is more: the larger of the two is
 * counted, so neither a card that is fuller nor one that is emptier than
 * the others is undercounted.  Both fit (see gpus_need()).
 */
void
gpus_spawned(struct pool *p, struct pool_server *srv)
{
	const struct pool_model *m = srv->model;
	uint64_t need[POOL_GPUS_MAX], room[POOL_GPUS_MAX], free_sum = 0;
	unsigned d;

	gpus_need(p, m, need);
	if (by_free(p, m)) {
		for (d = 0; d < p->lim.ngpus; d++) {
			room[d] = need[d] > 0 && p->lim.gpu_budgets[d] >
			    p->gpu_dev_used[d] ? p->lim.gpu_budgets[d] -
			    p->gpu_dev_used[d] : 0;
			free_sum += room[d];
		}
		for (d = 0; d < p->lim.ngpus && free_sum > 0; d++)
			if (part(m->gpu_mem, (double)room[d] /
			    (double)free_sum) > need[d])
				need[d] = part(m->gpu_mem, (double)room[d] /
				    (double)free_sum);
	}
	memcpy(srv->gpu_dev_estimate, need, sizeof(need));
	gpus_account(p, srv, need);
	srv->gpu_estimate = srv->gpu_mem;
}
