/*
 * victim.h — which idle server the pool stops first (victim.c).
 *
 * Private to pool.c: the one decision of the eviction policy, LRU or
 * GreedyDual-Size, kept apart so a policy can change without touching
 * the scheduling.  Pure, like pool.c.
 */
#ifndef POOLD_VICTIM_H
#define POOLD_VICTIM_H

#include "pool.h"

/* READY, no lease, nobody waiting for its health check: the only kind
 * of server make_room() may stop. */
bool		 victim_evictable(const struct pool_server *);
/* The evictable server to stop first, or NULL if there is none; with a
 * gpu_mask, the first of those holding memory on one of its GPUs (bit d:
 * GPU d). */
struct pool_server *victim_pick(const struct pool *, unsigned gpu_mask);
/* srv was used now (or started, or became ready): set its GDS credit. */
void		 gds_credit(struct pool *, struct pool_server *);
/* srv is being stopped as a victim: under GDS, inflation L = its credit. */
void		 victim_chosen(struct pool *, const struct pool_server *);

#endif /* POOLD_VICTIM_H */
