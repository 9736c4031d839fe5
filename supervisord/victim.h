/*
 * victim.h — which server the pool stops first (victim.c).
 *
 * Private to pool.c: the one decision of the eviction order, kept apart
 * so a policy can change without touching the scheduling.  Pure, like
 * pool.c.
 */
#ifndef POOLD_VICTIM_H
#define POOLD_VICTIM_H

#include "pool.h"

/*
 * What may be stopped for room: a preloaded server still starting that
 * no ACQUIRE waits for (unless ready_only), and a READY server with no
 * lease and nobody waiting for its health check; never a pinned one.
 */
bool		 victim_evictable(const struct pool_server *, bool ready_only);
/*
 * The evictable server to stop first, or NULL if there is none: starting
 * preloads first, then READY servers by class (low, normal, high), by
 * the policy within a class.  With a gpu_mask, only those holding memory
 * on one of its GPUs (bit d: GPU d).
 */
struct pool_server *victim_pick(const struct pool *, pool_ms now,
		    unsigned gpu_mask, bool ready_only);
/* srv was used now (or started, or became ready): set its GDS credit. */
void		 gds_credit(struct pool *, struct pool_server *);
/* srv is being stopped as a victim: under GDS, inflation L = its credit. */
void		 victim_chosen(struct pool *, const struct pool_server *);
/* "LRU", "GDS", "FREQ": for the log. */
const char	*victim_policy_name(enum pool_policy);

#endif /* POOLD_VICTIM_H */
