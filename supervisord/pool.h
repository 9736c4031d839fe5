/*
 * pool.h — the pool's decisions, with no I/O.
 *
 * Who starts, who waits, who is evicted, when a server is idle, whether a
 * start fits the budget.  Time comes in as an argument (monotonic ms);
 * effects go out through struct pool_ops, which the daemon implements with
 * fork/signals/sockets and the unit tests implement with a recorder.  No
 * fork, socket, libev or clock in pool.c.  See docs/DESIGN.md.
 *
 * The ops callbacks must not call back into the pool.
 */
#ifndef POOLD_POOL_H
#define POOLD_POOL_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* glibc's <sys/queue.h> lacks the _SAFE variants. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) && ((tvar) = TAILQ_NEXT(var, field), 1);		\
	    (var) = (tvar))
#endif

typedef int64_t pool_ms;	/* monotonic milliseconds */

#define POOL_BACKOFF_MIN_MS	1000
#define POOL_BACKOFF_MAX_MS	60000
#define POOL_ERROR_MAX		512

/* ops->spawn: the start failed for lack of poold's own resources
 * (descriptors, memory, processes), not the model's fault. */
#define POOL_SPAWN_AGAIN	(-2)
/* No start for this long after a POOL_SPAWN_AGAIN. */
#define POOL_RESOURCE_RETRY_MS	1000
/* A ready server that exits on its own within this of its ready counts
 * as a failed start (backoff, failed): a model that crashes on its first
 * request must not restart in a loop. */
#define POOL_CRASH_EARLY_MS	30000
/* Health checks of a ready server failed in a row before it is stopped;
 * after a failed one the next comes this soon. */
#define POOL_HEALTH_FAILURES	2
#define POOL_HEALTH_RETRY_MS	1000
/* Starts that may overtake a queue head that can only wait (for leases
 * or other programs' memory) before the queue is strict FIFO again. */
#define POOL_HEAD_PASSES_MAX	8
/* GPUs the pool accounts one by one; a machine with more has the rest
 * left out (poold --budget says so). */
#define POOL_GPUS_MAX		8

enum pool_state {
	POOL_STARTING,		/* spawned, not yet healthy */
	POOL_READY,		/* healthy; may be leased */
	POOL_STOPPING,		/* told to stop; memory and port held until reaped */
};

enum pool_stop_reason {
	POOL_STOP_NONE = 0,
	POOL_STOP_LRU,		/* evicted to make room */
	POOL_STOP_IDLE,		/* idle timeout */
	POOL_STOP_ADMIN,	/* EVICT */
	POOL_STOP_START_TIMEOUT,/* never became ready */
	POOL_STOP_SHUTDOWN,
	POOL_STOP_UNHEALTHY,	/* failed its health checks while ready */
	POOL_STOP_BUDGET,	/* the budget shrank (pool_set_limits) */
	POOL_STOP_RETIRED,	/* its model was retired (pool_model_retire) */
	POOL_STOP__COUNT
};

/*
 * A model's class (docs/DESIGN.md "Priorities").  Eviction takes low
 * before normal before high, least recently used (or by the policy)
 * within a class; pinned is never evicted or stopped for idleness, is
 * started as soon as it is pinned and restarted (with the usual backoff)
 * when it dies.  Ordered: a higher value is kept longer.
 */
enum pool_priority {
	POOL_PRIO_LOW = 0,
	POOL_PRIO_NORMAL,	/* pool_model_add's */
	POOL_PRIO_HIGH,
	POOL_PRIO_PINNED,
	POOL_PRIO__COUNT
};

/* What the pool tells the daemon happened (ops->event). */
enum pool_event_kind {
	POOL_EV_START,		/* a server was spawned (server, preload) */
	POOL_EV_READY,		/* it passed its first health check (load_ms) */
	POOL_EV_EVICT,		/* poold began stopping it (reason) */
	POOL_EV_EXIT,		/* it was reaped (reason: NONE if it left on
				 * its own; message: how it ended) */
	POOL_EV_FAILED,		/* a start failed (model, message; server
				 * NULL when the spawn itself failed) */
	POOL_EV_PRESSURE,	/* a model must wait for room that only
				 * leased or pinned servers, or other programs,
				 * hold (model, need, message); once per wait */
};

struct pool_event {
	enum pool_event_kind	 kind;
	const struct pool_model	*model;
	const struct pool_server *server;	/* may be NULL */
	enum pool_stop_reason	 reason;
	bool			 preload;	/* START: without a request */
	pool_ms			 load_ms;	/* READY */
	uint64_t		 need;		/* PRESSURE: bytes */
	const char		*message;	/* may be NULL */
};

/* Spawn-to-ready times are counted in these buckets (upper bounds, ms;
 * the last bucket, POOL_LOAD_BUCKETS - 1, is everything slower). */
#define POOL_LOAD_BUCKETS	10
extern const pool_ms pool_load_bounds[POOL_LOAD_BUCKETS - 1];

/* The decayed frequency's half-life when lim.freq_half_life is 0: only
 * the simulator's and check_pool's; poold always gives its
 * usage_half_life (default 6 h, CONF_DEFAULT_USAGE_HALF_LIFE_MS). */
#define POOL_FREQ_HALF_LIFE_DEFAULT	(24LL * 3600 * 1000)

/* Which idle server make_room() stops first. */
enum pool_policy {
	POOL_POLICY_LRU = 0,	/* least recently used (the default) */
	POOL_POLICY_GDS,	/* GreedyDual-Size: lowest credit, see credit */
	POOL_POLICY_FREQ,	/* lowest decayed frequency (usage.freq),
				 * least recently used among equals */
};

struct pool_server;
struct pool_waiter;

TAILQ_HEAD(pool_waiter_list, pool_waiter);
TAILQ_HEAD(pool_lease_list, pool_lease);

struct pool_counters {
	uint64_t	acquires;	/* ACQUIREs answered with a server */
	uint64_t	hits;		/* ... that found it ready */
	uint64_t	misses;		/* ... that waited for a start */
	uint64_t	releases;
	uint64_t	starts;		/* processes spawned */
	uint64_t	start_failures;	/* crashed, never ready, spawn failed */
	uint64_t	crashes;	/* exits nobody asked for, after ready */
	uint64_t	evictions;	/* LRU stops to make room */
	uint64_t	idle_stops;
	uint64_t	admin_stops;
	uint64_t	busy;		/* waits that ran out of time in the queue */
	uint64_t	timeouts;	/* waits that ran out of time while starting */
	uint64_t	load_ms_total;	/* sum of spawn-to-ready times */
	uint64_t	unhealthy_stops;/* ready servers that failed checks */
	uint64_t	resource_failures; /* starts put off: POOL_SPAWN_AGAIN */
	uint64_t	stops[POOL_STOP__COUNT]; /* servers poold stopped, by why */
	uint64_t	load_hist[POOL_LOAD_BUCKETS]; /* spawn-to-ready times
					 * per bucket (not cumulative) */
	uint64_t	preloads;	/* starts without a request (pinned,
					 * pool_preload) */
};

/*
 * What a model has been used for, across poold's restarts (the daemon
 * keeps it in the state file and gives it back with pool_usage_restore).
 * Times are the pool's monotonic ms; the daemon converts them.
 */
struct pool_usage {
	uint64_t	acquires;	/* ACQUIREs answered with a server */
	uint64_t	hits;		/* ... that found it ready */
	uint64_t	cold_starts;	/* starts for a request */
	uint64_t	failed_starts;
	uint64_t	loads;		/* starts that became ready */
	uint64_t	load_ms_total;	/* their spawn-to-ready times */
	pool_ms		last_load_ms;
	uint64_t	leased_ms;	/* time under lease, ended leases */
	pool_ms		last_used;	/* last ACQUIRE; 0: never */
	double		freq;		/* ACQUIREs, each decayed by
					 * lim.freq_half_life, as of freq_at */
	pool_ms		freq_at;
};

struct pool_model {
	char			*name;
	uint64_t		 mem;		/* accounted per server, bytes */
	uint64_t		 gpu_mem;	/* of it on the GPU (VRAM, or Metal's
						 * working set); 0: CPU only */
	/*
	 * How gpu_mem spreads over the GPUs (pool_limits.gpu_budgets): the
	 * fraction of it counted on each.  All 0, or gpu_by_free: llama.cpp's
	 * default split, by free memory when it loads, over every device
	 * (all 0) or those with a share; counted in proportion to their
	 * budgets, and at spawn the larger of that and their free room.
	 */
	double			 gpu_share[POOL_GPUS_MAX];
	bool			 gpu_by_free;
	pool_ms			 idle_timeout;	/* 0: never stopped for idleness */
	void			*udata;		/* the daemon's catalog entry */

	struct pool_server	*server;	/* live server (not stopping) */
	struct pool_waiter_list	 queued;	/* waiting for room to start */
	TAILQ_ENTRY(pool_model)	 pending;	/* on pool.pending while queued */
	bool			 is_pending;
	unsigned		 passes;	/* starts that overtook it as head */

	unsigned		 failures;	/* consecutive failed starts */
	bool			 put_off;	/* its last start: POOL_SPAWN_AGAIN */
	pool_ms			 retry_at;	/* no start before this */
	char			 last_error[POOL_ERROR_MAX];
	pool_ms			 last_load_ms;	/* last spawn-to-ready time */
	pool_ms			 last_used;	/* last ACQUIRE/RELEASE, any server */
	struct pool_counters	 counters;	/* this run */
	struct pool_usage	 usage;		/* all runs (pool_usage_restore) */
	enum pool_priority	 priority;	/* pool_set_priority */
	bool			 retired;	/* pool_model_retire */
	bool			 pressured;	/* POOL_EV_PRESSURE sent for this
						 * wait */
	TAILQ_ENTRY(pool_model)	 pinned_link;	/* on pool.pinned while pinned */

	struct pool_model	*hash_next;
};

struct pool_server {
	struct pool_model	*model;
	enum pool_state		 state;
	enum pool_stop_reason	 stop_reason;
	int			 port;
	long			 pid;		/* set by ops->spawn */
	uint64_t		 mem;		/* accounted until reaped:
						 * max(estimate, rss) */
	uint64_t		 estimate;	/* the model's mem at spawn */
	uint64_t		 rss;		/* last measured; 0: not yet */
	uint64_t		 peak_rss;
	uint64_t		 gpu_mem;	/* accounted on the GPUs until reaped:
						 * the sum of gpu_dev */
	uint64_t		 gpu_estimate;	/* the sum of gpu_dev_estimate */
	uint64_t		 gpu_measured;	/* last measured, all GPUs */
	/* Per GPU: max(estimate, measured), the model's share at spawn, the
	 * last measured (0: not yet). */
	uint64_t		 gpu_dev[POOL_GPUS_MAX];
	uint64_t		 gpu_dev_estimate[POOL_GPUS_MAX];
	uint64_t		 gpu_dev_measured[POOL_GPUS_MAX];
	unsigned		 leases;
	bool			 checking;	/* a health check is out */
	unsigned		 check_failures;/* failed checks in a row */
	pool_ms			 check_due;	/* next periodic check */
	pool_ms			 spawned_at;
	pool_ms			 ready_at;
	pool_ms			 stop_at;
	pool_ms			 last_used;
	double			 credit;	/* GDS: H = L + cost/size, set at
						 * each use; cost = last load ms */
	bool			 preloaded;	/* started without a request
						 * (pinned, pool_preload) */
	struct pool_waiter_list	 waiters;	/* ACQUIREs waiting for ready,
						 * or for a health check */
	struct pool_waiter_list	 evicts;	/* EVICTs waiting for the reap */
	struct pool_lease_list	 lease_list;
	void			*udata;		/* the daemon's child record */
	TAILQ_ENTRY(pool_server) link;
};

/* Everything a client connection holds in the pool; embedded by the daemon. */
struct pool_owner {
	struct pool_lease_list	 leases;
	struct pool_waiter_list	 waiters;
	/* What its lease limit counts, kept so the check costs nothing:
	 * leases held, and ACQUIREs with hold still waiting. */
	unsigned		 nleases;
	unsigned		 nwaiting_holds;
};

enum pool_wait_kind { POOL_WAIT_ACQUIRE, POOL_WAIT_EVICT };

/* A request the pool answers later; embedded by the daemon in its own record. */
struct pool_waiter {
	enum pool_wait_kind	 kind;
	struct pool_model	*model;
	struct pool_owner	*owner;
	bool			 hold;
	bool			 queued;	/* waited for room (not only the start) */
	pool_ms			 since;
	pool_ms			 deadline;
	struct pool_waiter_list	*list;		/* the list link is on */
	TAILQ_ENTRY(pool_waiter) link;		/* on a model, server or evicts */
	TAILQ_ENTRY(pool_waiter) owner_link;
};

/*
 * A server that went (crash, forced EVICT) while leases named it.  Its
 * port stays held, so no other model answers there, until the last of
 * those leases ends; the leases are "lost" and say why when asked.
 * There is at most one per port.
 */
struct pool_lost {
	int			 port;
	unsigned		 leases;	/* lost leases still naming it */
	char			 model[PROTO_MODEL_NAME_MAX + 1];
	char			 why[POOL_ERROR_MAX];
	TAILQ_ENTRY(pool_lost)	 link;
};

struct pool_lease {
	int64_t			 id;
	struct pool_server	*server;	/* NULL once the server is gone */
	struct pool_lost	*lost;		/* set once the server is gone */
	struct pool_owner	*owner;
	pool_ms			 since;		/* granted (usage.leased_ms) */
	TAILQ_ENTRY(pool_lease)	 server_link;
	TAILQ_ENTRY(pool_lease)	 owner_link;
	struct pool_lease	*hash_next;
};

/* How a waiter is answered. */
struct pool_answer {
	enum proto_err		 err;		/* PROTO_OK or the error */
	const char		*message;	/* for errors */
	const struct pool_server *server;	/* for PROTO_OK acquires */
	int64_t			 lease;		/* 0 when not held */
	bool			 cold;
	pool_ms			 wait_ms;
};

struct pool_ops {
	/*
	 * Start srv's process (srv->port and srv->mem are set).  Returns 0
	 * and sets srv->pid, or -1 with a message in err: the start failed
	 * and no process is left; or POOL_SPAWN_AGAIN (with a message): it
	 * failed for lack of poold's own resources, which is not the model's
	 * failure, and is tried again after POOL_RESOURCE_RETRY_MS.
	 */
	int	(*spawn)(void *ctx, struct pool_server *srv, char *err,
		    size_t errlen);
	/* Begin stopping srv; call pool_exited() once it has been reaped. */
	void	(*stop)(void *ctx, struct pool_server *srv);
	/* Answer w; the pool has already unlinked it. */
	void	(*answer)(void *ctx, struct pool_waiter *w,
		    const struct pool_answer *);
	/* Is this loopback TCP port free to give to a server?  May be NULL. */
	bool	(*port_free)(void *ctx, int port);
	/* One event, one line, no newline.  May be NULL. */
	void	(*log)(void *ctx, const char *line);
	/* The system's available memory (all programs), or UINT64_MAX if
	 * unknown.  May be NULL. */
	uint64_t (*available)(void *ctx);
	/* Check the health of READY srv now; report with pool_checked().
	 * May be NULL: ready servers are not watched. */
	void	(*check)(void *ctx, struct pool_server *srv);
	/* Something happened (the event stream, metrics).  May be NULL. */
	void	(*event)(void *ctx, const struct pool_event *);
};

struct pool_limits {
	uint64_t	budget;		/* bytes all servers may take together */
	unsigned	max_servers;
	int		port_min, port_max;
	pool_ms		start_timeout;
	unsigned	max_waiters;	/* ACQUIREs waiting at once, in total */
	unsigned	max_failures;	/* failed starts in a row → failed; 0: never */
	pool_ms		failed_cooldown;
	uint64_t	min_available;	/* system memory left to others */
	/* GPU memory all servers may take together, a second budget beside
	 * the first: a server counts its gpu_mem here too.  0: no GPU is
	 * accounted (gpu_mem is ignored).  With ngpus, it is the sum of
	 * gpu_budgets, each GPU a budget of its own; without, pool_new()
	 * makes it one GPU of gpu_budget. */
	uint64_t	gpu_budget;
	unsigned	ngpus;		/* 0: one, gpu_budget */
	uint64_t	gpu_budgets[POOL_GPUS_MAX];
	enum pool_policy policy;	/* eviction order; 0: LRU */
	pool_ms		health_interval;/* check ready servers this often, and
					 * before handing out one idle longer;
					 * 0: never */
	pool_ms		freq_half_life;	/* usage.freq; 0: the default */
};

struct pool {
	struct pool_limits	 lim;
	const struct pool_ops	*ops;
	void			*ctx;

	TAILQ_HEAD(, pool_server) servers;	/* every unreaped server */
	/* Models waiting for room, in order of their oldest waiter. */
	TAILQ_HEAD(pool_pending, pool_model) pending;
	unsigned		 nservers;
	unsigned		 nwaiters;
	uint64_t		 used;		/* accounted bytes, all servers */
	uint64_t		 gpu_used;	/* of them on the GPUs */
	uint64_t		 gpu_dev_used[POOL_GPUS_MAX];	/* per GPU */
	int64_t			 next_lease;	/* the last lease id given */
	/* Ports are reused least recently freed first: a sequence number
	 * per port of the range, 0 for never used. */
	uint64_t		*port_freed;
	uint64_t		 port_seq;
	TAILQ_HEAD(, pool_lost)	 lost;		/* ports held for lost leases */
	bool			 shutting_down;
	pool_ms			 started_at;
	double			 inflation;	/* GDS: L, the last victim's credit */
	pool_ms			 resource_retry_at; /* no start before this */
	char			 resource_error[POOL_ERROR_MAX]; /* the last one */

	struct pool_model	**models;	/* hash by name */
	size_t			 nbuckets, nmodels;
	struct pool_lease	**leases;	/* hash by id */
	size_t			 nlease_buckets, nleases;

	struct pool_counters	 counters;
	/* Failed starts so far, and the model of the last (cluster.c tells
	 * other nodes). */
	uint64_t		 failure_seq;
	struct pool_model	*last_failed;
	pool_ms			 last_request;	/* last ACQUIRE or RELEASE; 0:
						 * none yet (quiet refill) */
	/* The pinned models, in the order they were pinned: started (and
	 * restarted) in that order, before the pending queue's head. */
	TAILQ_HEAD(, pool_model) pinned;
};

struct pool	*pool_new(const struct pool_limits *, const struct pool_ops *,
		    void *ctx, pool_ms now);
void		 pool_free(struct pool *);

/* The catalog.  Names are copied.  add returns NULL on ENOMEM. */
struct pool_model *pool_model_add(struct pool *, const char *name,
		    uint64_t mem, pool_ms idle_timeout);
struct pool_model *pool_model_find(const struct pool *, const char *name);
/*
 * The model's file is gone: forget it and free it (its udata is the
 * caller's).  -1, and nothing changes, while a server (stopping ones
 * too) or a waiter refers to it: try again later.
 */
int		 pool_model_remove(struct pool *, struct pool_model *);

void		 pool_owner_init(struct pool_owner *);
/* A client went away: drop its waiters unanswered, release its leases. */
void		 pool_owner_gone(struct pool *, pool_ms now, struct pool_owner *);

/*
 * ACQUIRE.  w is answered through ops->answer, at once (hot server or an
 * error) or later (start, room, timeout).  deadline is absolute.
 */
void		 pool_acquire(struct pool *, pool_ms now, struct pool_waiter *w,
		    struct pool_owner *, struct pool_model *, bool hold,
		    pool_ms deadline);
/*
 * Lease ids are EPOCH << 32 | sequence, below 2^53 (PROTO_LEASE_MAX), so
 * JSON carries them exactly.  The daemon draws the epoch at random at
 * each start, so the ids of one run mean nothing to the next; any value
 * is taken to 1 .. 2^21 - 1.  Without it, ids count from 1.
 */
void		 pool_lease_epoch(struct pool *, uint32_t epoch);
/* A fresh id of the same series, for a lease held elsewhere for one of
 * our clients (cluster.c): never one a pool lease has now. */
int64_t		 pool_lease_id(struct pool *);
/* Would m start now with only idle, unleased servers stopped for it
 * (the count and the memory budget; not the GPUs or the system)? */
bool		 pool_can_admit(const struct pool *, const struct pool_model *);
/*
 * owner's lease id, or NULL if owner holds no such lease (it never
 * existed, has ended, or is another owner's: the same answer for all).
 * Its server is l->server, or, once that is gone, l->lost says which
 * port it held and why it went.
 */
const struct pool_lease *pool_lease_find(const struct pool *,
		    const struct pool_owner *, int64_t lease);
/* RELEASE of owner's lease (live or lost): 0, or -1 if it holds none
 * such (see pool_lease_find). */
int		 pool_release(struct pool *, pool_ms now, struct pool_owner *,
		    int64_t lease);
/*
 * EVICT: answered through ops->answer once the server is reaped, or at
 * once: not_found, busy (leased, no force), or ok for a model that is not
 * running but backing off or failed (the EVICT clears that).
 */
void		 pool_evict(struct pool *, pool_ms now, struct pool_waiter *w,
		    struct pool_owner *, struct pool_model *, bool force);

/* From the daemon's supervision. */
void		 pool_ready(struct pool *, pool_ms now, struct pool_server *);
/*
 * A measurement of srv's resident memory.  It is accounted
 * max(estimate, rss); if that takes the pool over its budget, LRU idle
 * servers are stopped to get back under it.
 */
void		 pool_measured(struct pool *, pool_ms now, struct pool_server *,
		    uint64_t rss);
/*
 * A measurement of srv's GPU memory (NVML, per process), bytes[d] on GPU
 * d for d < n (n at most lim.ngpus; the rest count as 0).  Each GPU is
 * accounted max(its estimate, measured) against its budget, like
 * pool_measured() against the budget.  Ignored without a gpu_budget.
 */
void		 pool_measured_gpu(struct pool *, pool_ms now,
		    struct pool_server *, const uint64_t *bytes, size_t n);
/*
 * The health check ops->check asked for ended: healthy or not (why says
 * how).  POOL_HEALTH_FAILURES failures in a row stop the server
 * (POOL_STOP_UNHEALTHY); ACQUIREs waiting for the check then wait for a
 * fresh start.  Ignored unless srv is READY with a check out.
 */
void		 pool_checked(struct pool *, pool_ms now, struct pool_server *,
		    bool healthy, const char *why);
/* The process was reaped; why says how it ended (status, last stderr). */
void		 pool_exited(struct pool *, pool_ms now, struct pool_server *,
		    const char *why);

/* Time.  Next instant pool_tick() has work, or -1 for none. */
pool_ms		 pool_next_deadline(const struct pool *, pool_ms now);
/* The pinned models' estimates together (at most UINT64_MAX). */
uint64_t	 pool_pinned_mem(const struct pool *);
/* a + b, or UINT64_MAX: a sum of estimates (a config's "memory", a
 * header's) must not wrap into one that fits. */
static inline uint64_t
pool_sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}
void		 pool_tick(struct pool *, pool_ms now);

/* Refuse new work, answer every waiter shutting_down, stop every server. */
void		 pool_shutdown(struct pool *, pool_ms now);

/*
 * New limits, applied now (SIGHUP, RELOAD).  The port range must be the
 * one the pool was made with (a reload keeps it).  A smaller budget
 * stops idle servers, in eviction order, until used fits again
 * (POOL_STOP_BUDGET); leased, starting and pinned ones are left to
 * finish, and nothing new starts until used fits.
 */
void		 pool_set_limits(struct pool *, pool_ms now,
		    const struct pool_limits *);
/*
 * m's class.  Pinning starts m now, if it has no server, stopping idle
 * servers of lower classes for room if need be (it waits for leased ones
 * like a queued ACQUIRE, but never gets `busy`); -1, and nothing changes,
 * if the pinned models' memory would then pass the budget (err names
 * them).  Unpinning leaves the server running under the normal rules.
 */
int		 pool_set_priority(struct pool *, pool_ms now, struct pool_model *,
		    enum pool_priority, char *err, size_t errlen);
/* "pinned", "high", "normal", "low"; and back (-1: none of them). */
const char	*pool_priority_name(enum pool_priority);
int		 pool_priority_from_name(const char *);
/*
 * Starts m without a request (preload, refill): only if it has no server,
 * is not backing off or failed, nothing waits for room, and it fits now
 * without stopping anything.  0: started (or already running); -1 with
 * the reason.  A preloaded server that is still starting and that no
 * ACQUIRE waits for is the first to be stopped for room.
 */
int		 pool_preload(struct pool *, pool_ms now, struct pool_model *,
		    char *why, size_t whylen);
/*
 * m will go (its file was removed, or a reload dropped it): its idle
 * server is stopped now, a leased one when its last lease ends
 * (POOL_STOP_RETIRED); waiters for it get unknown_model; it is never
 * started again.  pool_model_remove() frees it once nothing refers to it.
 */
void		 pool_model_retire(struct pool *, pool_ms now, struct pool_model *);
/* usage.freq decayed to now. */
double		 pool_usage_freq(const struct pool *, const struct pool_model *,
		    pool_ms now);
/* usage.leased_ms plus the leases of m held now. */
uint64_t	 pool_usage_leased_ms(const struct pool *,
		    const struct pool_model *, pool_ms now);
/* Usage remembered from an earlier run, its times already made relative
 * to now (freq decayed to now, freq_at = now). */
void		 pool_usage_restore(struct pool *, struct pool_model *,
		    const struct pool_usage *);

/* Writes "18.0 GiB", "512.0 MiB", "900 B" into buf; returns buf. */
char		*pool_format_size(uint64_t bytes, char *buf, size_t len);

/* Helpers for readers of the pool (STATS). */
const char	*pool_state_name(enum pool_state);
/* "ready", "starting", "stopping", "stopped", "backoff" or "failed". */
const char	*pool_model_state(const struct pool *, const struct pool_model *,
		    pool_ms now);
const char	*pool_stop_reason_name(enum pool_stop_reason);
unsigned	 pool_waiting(const struct pool *);
bool		 pool_any_in(const struct pool *, enum pool_state);

#endif /* POOLD_POOL_H */
