/*
 * gpus.h — the pool's GPU budgets, one per device (gpus.c).
 *
 * Private to pool.c: what a model takes of each GPU, whether it fits,
 * and the accounting of a server's share on each.  Pure, like pool.c.
 * Without a GPU budget every figure here is 0 and nothing is short.
 */
#ifndef POOLD_GPUS_H
#define POOLD_GPUS_H

#include "pool.h"

/* pool_new(): one GPU of gpu_budget unless lim names several; then
 * gpu_budget is their sum. */
void		 gpus_limits(struct pool_limits *);
/* What m needs of each GPU to be admitted (need[POOL_GPUS_MAX]). */
void		 gpus_need(const struct pool *, const struct pool_model *,
		    uint64_t *need);
/* The first GPU m does not fit on now, or -1: it fits on every one. */
int		 gpus_short(const struct pool *, const struct pool_model *);
/* The first GPU m's share of is more than its whole budget, or -1. */
int		 gpus_too_large(const struct pool *, const struct pool_model *);
/* At spawn: srv holds its need on each GPU (see pool.h, gpu_by_free). */
void		 gpus_spawned(struct pool *, struct pool_server *);
/* srv now holds acc[d] on GPU d. */
void		 gpus_account(struct pool *, struct pool_server *,
		    const uint64_t *acc);

#endif /* POOLD_GPUS_H */
