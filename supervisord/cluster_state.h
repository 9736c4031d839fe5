/*
 * cluster_state.h — this node's mirror of the cluster in etcd, and the
 * placement of a cold ACQUIRE (cluster_state.c).  Pure: no I/O, no clock
 * (times come in), no libev, no etcd calls.  cluster.c feeds it the
 * prefix's keys (a read, then watch events) and asks it where to go.
 *
 * Keys under the prefix P (values JSON objects):
 *   P/nodes/NODE           {"addr":"10.0.0.110:7070","host":"10.0.0.110",
 *                           "budget":N,"used":N,"free":N,"evictable":N,
 *                           "models":["a","b",...],"version":"0.1.0"}
 *   P/servers/NODE/MODEL   {"state":"starting"|"ready","port":N,"mem":N}
 *   P/claims/MODEL         {"node":"NODE","by":"NODE","until":WALL_MS}
 *   P/backoff/MODEL/NODE   {"until":WALL_MS,"error":"..."}
 * All written under the writing node's lease: a dead node's keys vanish.
 * Names: node names [A-Za-z0-9._-]{1,63}; model names as proto.h.
 */
#ifndef POOLD_CLUSTER_STATE_H
#define POOLD_CLUSTER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_NODE_NAME_MAX	63
#define CS_NODES_MAX		64	/* more are ignored (logged once by the caller) */
#define CS_ADDR_MAX		128

enum cs_server_state { CS_STARTING, CS_READY };

struct cs_node {
	char		 name[CS_NODE_NAME_MAX + 1];
	char		 addr[CS_ADDR_MAX];	/* peer listener HOST:PORT */
	char		 host[CS_ADDR_MAX];	/* where its servers listen */
	uint64_t	 budget, used, free, evictable;
	char		**models;	/* sorted, for bsearch; owned */
	size_t		 nmodels;
	int64_t		 mod_revision;
};

struct cs_server {
	char			 node[CS_NODE_NAME_MAX + 1];
	char			 model[129];
	enum cs_server_state	 state;
	int			 port;
	uint64_t		 mem;
};

struct cluster_state;

/* NULL if out of memory.  prefix without a trailing '/'. */
struct cluster_state *cs_new(const char *prefix);
void	 cs_free(struct cluster_state *);

/* A full read: forget everything, then cs_read_kv() for each key, then
 * cs_read_end(revision). */
void	 cs_read_begin(struct cluster_state *);
void	 cs_read_kv(struct cluster_state *, const char *key, const char *value);
void	 cs_read_end(struct cluster_state *, int64_t revision);
int64_t	 cs_revision(const struct cluster_state *);	/* 0: never read */

enum cs_event_result { CS_APPLIED, CS_STALE, CS_UNKNOWN_KEY, CS_INVALID };
/*
 * A watch event (value NULL: deleted).  Events at or below the read's
 * revision, or below the last event's, are CS_STALE and ignored.  Events
 * AT the last event's revision are applied: etcd gives one revision to
 * every key of a txn and of a lease's expiry (a dead node's keys are
 * deleted one event each, all at one revision).  CS_UNKNOWN_KEY and
 * CS_INVALID (the entry is left as it was; also out of memory, errno
 * ENOMEM: re-read) still move the revision on.
 */
enum cs_event_result cs_event(struct cluster_state *, const char *key,
	    const char *value, int64_t mod_revision);

/* Key and value builders: malloc'd strings, NULL if out of memory or a
 * name is invalid. */
char	*cs_key_node(const struct cluster_state *, const char *node);
char	*cs_key_server(const struct cluster_state *, const char *node,
	    const char *model);
char	*cs_key_claim(const struct cluster_state *, const char *model);
char	*cs_key_backoff(const struct cluster_state *, const char *model,
	    const char *node);
char	*cs_encode_node(const struct cs_node *);	/* models included */
char	*cs_encode_server(enum cs_server_state, int port, uint64_t mem);
char	*cs_encode_claim(const char *node, const char *by, int64_t until_ms);
char	*cs_encode_backoff(int64_t until_ms, const char *error);

/* true if name is a valid node name: [A-Za-z0-9._-]{1,63}. */
bool	 cs_node_name_ok(const char *name);
/* Nodes left out because CS_NODES_MAX were known (the caller logs once). */
size_t	 cs_nodes_ignored(const struct cluster_state *);

/* Lookups (pointers valid until the next change).  Nodes by name. */
const struct cs_node *cs_node(const struct cluster_state *, const char *name);
const struct cs_node *cs_node_at(const struct cluster_state *, size_t i);
size_t	 cs_nnodes(const struct cluster_state *);
/* Servers of model, any node (absent ones too: the mirror as it is),
 * by node name; how many were put in out. */
size_t	 cs_servers_of(const struct cluster_state *, const char *model,
	    const struct cs_server **out, size_t max);
const struct cs_server *cs_server_at(const struct cluster_state *, size_t i);
size_t	 cs_nservers(const struct cluster_state *);
bool	 cs_node_has_model(const struct cs_node *, const char *model);
/* The claim of model, if any and not past until at now_wall_ms, and its
 * node is present: its node name; else NULL. */
const char *cs_claim(const struct cluster_state *, const char *model,
	    int64_t now_wall_ms);

/* --- placement of an ACQUIRE --- */

enum cs_place_kind {
	CS_PLACE_READY,		/* a ready server: nodes[0] has it */
	CS_PLACE_STARTING,	/* starting or claimed: on nodes[0] */
	CS_PLACE_COLD,		/* start it: try nodes[0], then nodes[1]... */
	CS_PLACE_BACKOFF,	/* every node with it is in back-off: error */
	CS_PLACE_NOWHERE,	/* no node has the model */
};
#define CS_PLACE_MAX	CS_NODES_MAX
struct cs_place_query {
	const char	*model;
	const char	*self;		/* our node name */
	bool		 self_has;	/* in our catalog */
	bool		 self_can_admit;/* fits without touching leased servers */
	uint64_t	 need;		/* the model's estimate (ours) */
	int64_t		 now_wall_ms;	/* claims' and back-offs' until */
};
struct cs_placement {
	enum cs_place_kind kind;
	size_t		 nnodes;
	char		 nodes[CS_PLACE_MAX][CS_NODE_NAME_MAX + 1];
	char		 error[256];	/* BACKOFF: the last error */
};
/*
 * Servers and claims of nodes absent from P/nodes are ignored (their
 * keys vanish one event at a time); self counts as present.
 * READY: a ready server (ours first, then the node with most free;
 * nodes[] lists every node with one).  STARTING: a starting server
 * (ours first, then most free), then a live claim's node.  COLD: among
 * nodes having the model (self: self_has) and not in a live back-off for
 * it: self first if self_can_admit, then the others by free + evictable,
 * most first (ties: name), those with less than need after those that
 * fit; self last if it has the model but cannot admit.  BACKOFF: every
 * node having it is in back-off; error is the last one written.
 */
void	 cs_place(const struct cluster_state *, const struct cs_place_query *,
	    struct cs_placement *);

#endif /* POOLD_CLUSTER_STATE_H */
