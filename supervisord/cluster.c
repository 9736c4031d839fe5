/*
 * cluster.c — several machines as one pool, through etcd.
 *
 * Each poold keeps its own budget; this file only decides where an
 * ACQUIRE goes and keeps the others told.  It publishes this node and its
 * servers in etcd under one lease (cluster_state.h has the keys), mirrors
 * everyone's keys (a read, then a watch from that revision), places a
 * cold ACQUIRE with cs_place() after a claim (an etcd txn that only one
 * node wins), and forwards it over a peer link (peer.c) to the node
 * chosen.  The lease the other node gives belongs to our link there; our
 * client gets a lease of ours that maps to it.  See docs/DESIGN.md,
 * "Several machines".
 */
#include <sys/socket.h>

#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "poold.h"
#include "cluster_state.h"
#include "etcd.h"
#include "peer.h"

#define CLUSTER_RETRY_MIN_MS	500	/* etcd down: register again after */
#define CLUSTER_RETRY_MAX_MS	5000
#define CLUSTER_PUBLISH_MS	1000	/* the node's key at most this often */
#define CLUSTER_RESYNC_MS	30000	/* a full read this often anyway */
#define CLUSTER_RESYNC_DOWN_MS	1000	/* ... or this, while a node whose
					   link is down is still listed */
#define CLUSTER_CLAIM_SLACK_MS	5000	/* a claim outlives start_timeout */
#define CLUSTER_SERIAL_BASE	2000000000UL	/* "peer N" in the log */

enum phase {
	PHASE_CONNECTING,	/* no lease yet, or lost: registering */
	PHASE_CONNECTED,	/* lease, keys published, mirror current */
	PHASE_LOCAL_ONLY,	/* etcd unreachable: this node's models only */
};

/* Our link to one other node. */
struct link {
	struct cluster		*cl;
	char			 name[CS_NODE_NAME_MAX + 1];
	char			 addr[CS_ADDR_MAX];
	struct peer_out		*out;
	bool			 up;
	bool			 down;		/* failed since it was last up */
};

/* A lease another node holds for one of our clients. */
struct rlease {
	int64_t			 id;		/* our client's */
	int64_t			 remote;	/* the node's */
	char			 node[CS_NODE_NAME_MAX + 1];
	char			 model[PROTO_MODEL_NAME_MAX + 1];
	bool			 lost;
	char			 why[256];
	struct session		*s;
	TAILQ_ENTRY(rlease)	 s_link;
	TAILQ_ENTRY(rlease)	 all_link;
};

enum fwd_kind { FWD_ACQUIRE, FWD_RELEASE, FWD_LEASE };

/* A request of ours out to etcd or another node. */
struct fwd {
	struct cluster		*cl;
	enum fwd_kind		 kind;
	struct session		*s;		/* NULL: the client is gone */
	struct proto_request	 req;		/* its id is a reference */
	pool_ms			 since, deadline;
	struct cs_placement	 pl;		/* ACQUIRE: where to try */
	size_t			 next;		/* ... the next of pl.nodes */
	char			 node[CS_NODE_NAME_MAX + 1];	/* asked now */
	struct link		*lk;
	uint64_t		 handle;	/* a peer request out, or 0 */
	bool			 claiming;	/* an etcd create out */
	struct claim		*claim;		/* ours for this start */
	int64_t			 lease;		/* RELEASE/LEASE: ours */
	enum proto_err		 err;
	char			 msg[PROTO_MESSAGE_MAX];
	TAILQ_ENTRY(fwd)	 s_link;
};

/* A claim we created; deleted once its server is ready, or failed. */
struct claim {
	char			 model[PROTO_MODEL_NAME_MAX + 1];
	char			 node[CS_NODE_NAME_MAX + 1];
	int64_t			 until;		/* wall ms */
	bool			 done, ok;
	TAILQ_ENTRY(claim)	 link;
};

/* A server as we last published it. */
struct pub {
	char			 model[PROTO_MODEL_NAME_MAX + 1];
	enum cs_server_state	 state;
	int			 port;
	bool			 keep;
};

/* A link from another node: its requests are a session. */
struct pin {
	struct session		 s;
	struct cluster		*cl;
	struct peer_in		*in;		/* NULL once closed */
	char			 node[CS_NODE_NAME_MAX + 1];
	char			 addr[CS_ADDR_MAX];
	TAILQ_ENTRY(pin)	 link;
};

struct cluster {
	struct daemon		*d;
	const struct cluster_conf *conf;
	struct etcd		*etcd;
	struct cluster_state	*cs;
	struct peer_listener	*listener;
	unsigned char		 secret[PEER_SECRET_MAX];
	size_t			 secret_len;
	char			 addr[CS_ADDR_MAX];	/* ours, advertised */
	enum phase		 phase;
	bool			 said_local;	/* "local-only" logged */
	bool			 stopping;
	int64_t			 lease;		/* 0: none */
	int64_t			 old_lease;	/* revoked once re-registered */
	bool			 registering;
	struct etcd_watch	*watch;
	bool			 reading;	/* a full read is out */
	pool_ms			 read_at;	/* the last one sent */
	ev_timer		 retry;
	pool_ms			 retry_ms;
	ev_timer		 tick;		/* node key, claims */
	char			*node_value;	/* last published */
	pool_ms			 node_at;
	struct pub		*pubs;
	size_t			 npubs;
	uint64_t		 pub_sig;	/* servers' signature published */
	uint64_t		 failure_seq;	/* the pool's, last told */
	struct link		*links[CS_NODES_MAX];
	size_t			 nlinks;
	TAILQ_HEAD(, rlease)	 rleases;
	TAILQ_HEAD(, claim)	 claims;
	TAILQ_HEAD(, pin)	 pins;
	unsigned long		 pin_serial;
	unsigned		 nremote;
	uint64_t		 forwarded, forward_failures;
};

static void	 fwd_try(struct fwd *);
static void	 fwd_free(struct fwd *);
static void	 register_node(struct cluster *);
static void	 publish_all(struct cluster *);

/* --- small helpers --- */

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
self_name(const struct cluster *cl)
{
	return cl->conf->name;
}

static void
go_local_only(struct cluster *cl, const char *why)
{
	if (cl->phase == PHASE_LOCAL_ONLY)
		return;
	cl->phase = PHASE_LOCAL_ONLY;
	if (!cl->said_local)
		log_warnx("cluster: etcd unreachable (%s); serving this node's "
		    "models only", why);
	cl->said_local = true;
}

static bool
etcd_down(enum etcd_err e)
{
	return e == ETCD_ETIMEDOUT || e == ETCD_EUNREACHABLE ||
	    e == ETCD_EAUTH || e == ETCD_ENOMEM;
}

/* Register again soon (backing off while etcd stays away). */
static void
schedule_retry(struct cluster *cl)
{
	if (cl->stopping || ev_is_active(&cl->retry))
		return;
	cl->retry_ms = cl->retry_ms == 0 ? CLUSTER_RETRY_MIN_MS :
	    cl->retry_ms * 2 > CLUSTER_RETRY_MAX_MS ? CLUSTER_RETRY_MAX_MS :
	    cl->retry_ms * 2;
	ev_timer_set(&cl->retry, (double)cl->retry_ms / 1000, 0);
	ev_timer_start(cl->d->loop, &cl->retry);
}

/* etcd failed us: local-only, the lease is renewed when it is back. */
static void
etcd_failed(struct cluster *cl, const struct etcd_reply *r, const char *what)
{
	char why[256];

	snprintf(why, sizeof(why), "%s: %s%s%s", what, etcd_err_name(r->err),
	    r->message != NULL ? ": " : "", r->message != NULL ?
	    r->message : "");
	if (!etcd_down(r->err)) {
		log_warnx("cluster: %s", why);
		return;
	}
	go_local_only(cl, why);
	if (cl->watch != NULL) {
		etcd_watch_cancel(cl->watch);
		cl->watch = NULL;
	}
	/* Whatever we published may be gone when etcd is back. */
	if (cl->lease != 0) {
		etcd_keepalive_stop(cl->etcd);
		cl->old_lease = cl->lease;
		cl->lease = 0;
	}
	schedule_retry(cl);
}

/* --- links to other nodes --- */

static void
link_down(void *arg, struct peer_out *out, const char *why)
{
	struct link *lk = arg;
	struct cluster *cl = lk->cl;
	struct rlease *rl;

	(void)out;
	if (lk->up)
		log_warnx("cluster: link to %s (%s) down: %s", lk->name,
		    lk->addr, why);
	lk->up = false;
	lk->down = true;
	TAILQ_FOREACH(rl, &cl->rleases, all_link)
		if (!rl->lost && strcmp(rl->node, lk->name) == 0) {
			rl->lost = true;
			snprintf(rl->why, sizeof(rl->why), "node %s is "
			    "unreachable (%s)", lk->name, why);
		}
}

static void
link_up(void *arg, struct peer_out *out)
{
	struct link *lk = arg;

	(void)out;
	log_info("cluster: link to %s (%s) up", lk->name, lk->addr);
	lk->up = true;
	lk->down = false;
}

static const struct peer_out_ops link_ops = { link_down, link_up };

/* Our link to node, made (or remade at a new address) on first use. */
static struct link *
link_for(struct cluster *cl, const char *node)
{
	const struct cs_node *n;
	struct link *lk = NULL;
	size_t i;

	if ((n = cs_node(cl->cs, node)) == NULL)
		return NULL;
	for (i = 0; i < cl->nlinks; i++)
		if (strcmp(cl->links[i]->name, node) == 0)
			lk = cl->links[i];
	if (lk != NULL && strcmp(lk->addr, n->addr) != 0) {
		peer_out_free(lk->out);		/* its node moved */
		lk->out = NULL;
	}
	if (lk == NULL) {
		if (cl->nlinks == CS_NODES_MAX ||
		    (lk = calloc(1, sizeof(*lk))) == NULL)
			return NULL;
		lk->cl = cl;
		snprintf(lk->name, sizeof(lk->name), "%s", node);
		cl->links[cl->nlinks++] = lk;
	}
	if (lk->out == NULL) {
		snprintf(lk->addr, sizeof(lk->addr), "%s", n->addr);
		lk->out = peer_out_new(cl->d->loop, lk->addr,
		    cl->conf->advertise, self_name(cl), cl->secret,
		    cl->secret_len, cl->conf->ping_ms, &link_ops, lk);
		if (lk->out == NULL)
			return NULL;
	}
	return lk;
}

/* A request whose answer nobody waits for (a RELEASE of a gone client). */
static void
ignore_reply(void *arg, const char *reply, size_t len, const char *why)
{
	(void)arg; (void)reply; (void)len; (void)why;
}

static void
send_release(struct cluster *cl, const char *node, int64_t remote)
{
	struct link *lk;
	char line[128];
	int n;

	if ((lk = link_for(cl, node)) == NULL)
		return;		/* its node is gone: so is the lease */
	n = snprintf(line, sizeof(line), "{\"cmd\":\"RELEASE\",\"lease\":%lld}",
	    (long long)remote);
	(void)peer_request(lk->out, line, (size_t)n, ignore_reply, NULL);
}

/* --- remote leases --- */

static struct rlease *
rlease_find(struct session *s, int64_t id)
{
	struct rlease *rl;

	TAILQ_FOREACH(rl, &s->rleases, s_link)
		if (rl->id == id)
			return rl;
	return NULL;
}

static void
rlease_free(struct cluster *cl, struct rlease *rl)
{
	TAILQ_REMOVE(&rl->s->rleases, rl, s_link);
	TAILQ_REMOVE(&cl->rleases, rl, all_link);
	rl->s->nremote--;
	cl->nremote--;
	free(rl);
}

/* --- claims --- */

static void
claim_deleted(void *arg, const struct etcd_reply *r)
{
	struct cluster *cl = arg;

	if (r->err != ETCD_OK)
		etcd_failed(cl, r, "deleting a claim");
}

static void
claim_end(struct cluster *cl, struct claim *c)
{
	char *key;

	if ((key = cs_key_claim(cl->cs, c->model)) != NULL &&
	    cl->phase == PHASE_CONNECTED)
		(void)etcd_delete(cl->etcd, key, claim_deleted, cl);
	free(key);
	TAILQ_REMOVE(&cl->claims, c, link);
	free(c);
}

/* Is model's server on node ready, as the mirror (or our pool) says? */
static bool
ready_on(struct cluster *cl, const char *model, const char *node)
{
	const struct cs_server *srv[CS_NODES_MAX];
	size_t i, n;

	n = cs_servers_of(cl->cs, model, srv, CS_NODES_MAX);
	for (i = 0; i < n; i++)
		if (strcmp(srv[i]->node, node) == 0 &&
		    srv[i]->state == CS_READY)
			return true;
	return false;
}

/* Our own start: is the local model still on its way? */
static bool
starting_here(struct cluster *cl, const char *model)
{
	struct pool_model *m = pool_model_find(cl->d->pool, model);

	return m != NULL && (!TAILQ_EMPTY(&m->queued) ||
	    (m->server != NULL && m->server->state == POOL_STARTING));
}

/*
 * A claim ends once others can see the server it was for (its key says
 * ready), when the start failed, or at its time: never before the
 * server's key is there, so no second node starts it meanwhile.
 */
static void
claims_sweep(struct cluster *cl)
{
	struct claim *c, *tmp;
	int64_t now = wall_ms();
	bool self;

	TAILQ_FOREACH_SAFE(c, &cl->claims, link, tmp) {
		self = strcmp(c->node, self_name(cl)) == 0;
		if (now >= c->until || (c->done && (!c->ok ||
		    ready_on(cl, c->model, c->node) ||
		    (self && !starting_here(cl, c->model)))))
			claim_end(cl, c);
	}
}

static void
claim_finish(struct fwd *f, bool ok)
{
	if (f->claim == NULL)
		return;
	f->claim->done = true;
	f->claim->ok = ok;
	f->claim = NULL;
	claims_sweep(f->cl);
}

/* --- forwarding --- */

static struct fwd *
fwd_new(struct cluster *cl, struct session *s, const struct proto_request *req,
    enum fwd_kind kind)
{
	struct fwd *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->cl = cl;
	f->kind = kind;
	f->s = s;
	f->req = *req;
	if (req->id != NULL)
		json_incref(req->id);
	f->since = daemon_now();
	f->deadline = f->since + (req->timeout_ms >= 0 ? req->timeout_ms :
	    cl->d->conf->acquire_timeout_ms);
	f->err = PROTO_E_UNKNOWN_MODEL;
	TAILQ_INSERT_TAIL(&s->fwds, f, s_link);
	s->npending++;
	return f;
}

/* The client is answered, or gone: forget it (the callbacks may still
 * be out; then the record lives until they come). */
static void
fwd_detach(struct fwd *f)
{
	if (f->s == NULL)
		return;
	TAILQ_REMOVE(&f->s->fwds, f, s_link);
	f->s->npending--;
	f->s = NULL;
}

static void
fwd_free(struct fwd *f)
{
	fwd_detach(f);
	claim_finish(f, false);
	json_decref(f->req.id);
	free(f);
}

static void
fwd_reply(struct fwd *f, char *line)
{
	if (f->s != NULL)
		f->s->send(f->s, line);
	else
		free(line);
}

static void
fwd_fail(struct fwd *f, enum proto_err err, const char *msg)
{
	f->cl->forward_failures++;
	fwd_reply(f, proto_encode_error(f->req.id, err, msg));
	fwd_free(f);
}

/* Hands the request to our own pool, as if it had never left. */
static void
fwd_local(struct fwd *f)
{
	struct cluster *cl = f->cl;
	struct session *s = f->s;
	struct proto_request req = f->req;
	struct claim *c = f->claim;
	pool_ms now = daemon_now();

	f->claim = NULL;
	req.timeout_ms = f->deadline > now ? f->deadline - now : 0;
	if (req.id != NULL)
		json_incref(req.id);
	fwd_free(f);
	if (s != NULL)
		dispatch_acquire_local(s, &req);
	json_decref(req.id);
	/* Ours now: swept once our pool has started it, or failed to. */
	if (c != NULL) {
		c->done = true;
		c->ok = s != NULL;
		claims_sweep(cl);
	}
}

/* The node's ACQUIRE answer: our client gets it, with a lease of ours. */
static void
fwd_acquired(struct fwd *f, struct proto_reply *rep)
{
	struct cluster *cl = f->cl;
	struct proto_acquired acq;
	struct rlease *rl;
	int64_t remote;

	if (proto_reply_acquired(rep, &acq) != PROTO_OK) {
		snprintf(f->msg, sizeof(f->msg), "node %s sent an ACQUIRE "
		    "reply poold cannot read", f->node);
		fwd_fail(f, PROTO_E_INTERNAL, f->msg);
		return;
	}
	remote = acq.lease;
	if (acq.node[0] == '\0')
		snprintf(acq.node, sizeof(acq.node), "%s", f->node);
	if (f->s == NULL) {		/* the client went meanwhile */
		if (remote != 0)
			send_release(cl, f->node, remote);
		fwd_free(f);
		return;
	}
	if (remote != 0) {
		if ((rl = calloc(1, sizeof(*rl))) == NULL) {
			send_release(cl, f->node, remote);
			fwd_fail(f, PROTO_E_INTERNAL, "out of memory");
			return;
		}
		rl->id = pool_lease_id(cl->d->pool);
		rl->remote = remote;
		rl->s = f->s;
		snprintf(rl->node, sizeof(rl->node), "%s", f->node);
		snprintf(rl->model, sizeof(rl->model), "%s", acq.model);
		TAILQ_INSERT_TAIL(&f->s->rleases, rl, s_link);
		TAILQ_INSERT_TAIL(&cl->rleases, rl, all_link);
		f->s->nremote++;
		cl->nremote++;
		acq.lease = rl->id;
	}
	acq.wait_ms = daemon_now() - f->since;
	acq.cold = acq.cold || f->pl.kind == CS_PLACE_COLD;
	cl->forwarded++;
	claim_finish(f, true);
	fwd_reply(f, proto_encode_acquired(f->req.id, &acq));
	fwd_free(f);
}

/* Errors after which the next node may do better. */
static bool
worth_next(enum proto_err err)
{
	return err == PROTO_E_BUSY || err == PROTO_E_START_FAILED ||
	    err == PROTO_E_UNKNOWN_MODEL || err == PROTO_E_SHUTTING_DOWN ||
	    err == PROTO_E_TOO_LARGE || err == PROTO_E_INTERNAL ||
	    err == PROTO_E_TIMEOUT;
}

static void
fwd_acquire_reply(struct fwd *f, struct proto_reply *rep, const char *why)
{
	if (rep == NULL) {
		f->err = PROTO_E_BUSY;
		snprintf(f->msg, sizeof(f->msg), "node %s is unreachable (%s)",
		    f->node, why != NULL ? why : "link down");
	} else if (rep->ok) {
		fwd_acquired(f, rep);
		return;
	} else {
		f->err = rep->err;
		snprintf(f->msg, sizeof(f->msg), "node %s: %.900s", f->node,
		    rep->message);
	}
	if (f->s == NULL) {
		fwd_free(f);
		return;
	}
	if (rep != NULL && !worth_next(rep->err)) {
		fwd_fail(f, f->err, f->msg);
		return;
	}
	fwd_try(f);
}

/* RELEASE and LEASE: the node's answer, in our client's words. */
static void
fwd_lease_reply(struct fwd *f, struct proto_reply *rep, const char *why)
{
	char msg[PROTO_MESSAGE_MAX];
	json_t *body;

	if (rep == NULL) {
		snprintf(msg, sizeof(msg), "lease %lld is lost: node %s is "
		    "unreachable (%s)%s", (long long)f->lease, f->node,
		    why != NULL ? why : "link down", f->kind == FWD_RELEASE ?
		    "; the lease has ended" : "; RELEASE it");
		fwd_reply(f, proto_encode_error(f->req.id,
		    PROTO_E_LEASE_LOST, msg));
	} else if (!rep->ok) {
		snprintf(msg, sizeof(msg), "node %s: %.900s", f->node,
		    rep->message);
		fwd_reply(f, proto_encode_error(f->req.id, rep->err, msg));
	} else if (f->kind == FWD_RELEASE)
		fwd_reply(f, proto_encode_ok(f->req.id, NULL));
	else {
		body = json_deep_copy(rep->body);
		if (body != NULL) {
			json_object_del(body, "ok");
			json_object_del(body, "id");
			json_object_set_new(body, "lease",
			    json_integer(f->lease));
			json_object_set_new(body, "node", json_string(f->node));
		}
		fwd_reply(f, body != NULL ? proto_encode_ok(f->req.id, body) :
		    proto_encode_error(f->req.id, PROTO_E_INTERNAL,
		    "out of memory"));
		json_decref(body);
	}
	fwd_free(f);
}

static void
fwd_peer_reply(void *arg, const char *line, size_t len, const char *why)
{
	struct fwd *f = arg;
	struct proto_reply rep, *r = NULL;
	char msg[PROTO_MESSAGE_MAX];

	f->handle = 0;
	if (line != NULL) {
		if (proto_decode_reply(line, len, &rep, msg, sizeof(msg)) ==
		    PROTO_OK)
			r = &rep;
		else
			why = "a reply poold cannot read";
	}
	if (f->kind == FWD_ACQUIRE)
		fwd_acquire_reply(f, r, why);
	else
		fwd_lease_reply(f, r, why);
	if (r != NULL)
		proto_reply_clear(r);
}

/* Sends f's request to f->node. */
static void
fwd_send(struct fwd *f, const char *line, size_t len)
{
	if ((f->lk = link_for(f->cl, f->node)) == NULL ||
	    (f->handle = peer_request(f->lk->out, line, len, fwd_peer_reply,
	    f)) == 0) {
		/* Never from inside: a caller may hold f. */
		f->handle = 0;
		if (f->kind == FWD_ACQUIRE) {
			f->err = PROTO_E_BUSY;
			snprintf(f->msg, sizeof(f->msg), "node %s is not "
			    "reachable from here (%s)", f->node, f->lk == NULL ?
			    "gone from the cluster" : strerror(errno));
			fwd_try(f);
		} else
			fwd_lease_reply(f, NULL, "gone from the cluster");
	}
}

/* The next candidate node, or the last error when none is left. */
static void
fwd_try(struct fwd *f)
{
	pool_ms left = f->deadline - daemon_now();
	char line[PROTO_MODEL_NAME_MAX + 128];
	int n;

	if (f->s == NULL) {
		fwd_free(f);
		return;
	}
	if (f->next >= f->pl.nnodes || left <= 0) {
		fwd_fail(f, left <= 0 && f->err == PROTO_E_BUSY ?
		    PROTO_E_TIMEOUT : f->err, f->msg[0] != '\0' ? f->msg :
		    "no node could serve it");
		return;
	}
	snprintf(f->node, sizeof(f->node), "%s", f->pl.nodes[f->next++]);
	if (strcmp(f->node, self_name(f->cl)) == 0) {
		fwd_local(f);
		return;
	}
	n = snprintf(line, sizeof(line), "{\"cmd\":\"ACQUIRE\",\"model\":\"%s\","
	    "\"hold\":%s,\"timeout_ms\":%lld}", f->req.model,
	    f->req.hold ? "true" : "false", (long long)left);
	fwd_send(f, line, (size_t)n);
}

/* The claim's answer: ours, or someone else's start to join. */
static void
claim_created(void *arg, const struct etcd_reply *r)
{
	struct fwd *f = arg;
	struct cluster *cl = f->cl;
	struct claim *c;
	json_t *v;
	const char *holder = NULL;

	f->claiming = false;
	if (r->err != ETCD_OK) {
		etcd_failed(cl, r, "claiming a model");
		/* Without etcd: only this node may start it. */
		f->pl.nnodes = 0;
		if (pool_model_find(cl->d->pool, f->req.model) != NULL) {
			snprintf(f->pl.nodes[0], sizeof(f->pl.nodes[0]), "%s",
			    self_name(cl));
			f->pl.nnodes = 1;
		} else
			snprintf(f->msg, sizeof(f->msg), "'%s' is not on this "
			    "node and etcd is unreachable", f->req.model);
		f->next = 0;
		fwd_try(f);
		return;
	}
	if (r->created) {
		if ((c = calloc(1, sizeof(*c))) != NULL) {
			snprintf(c->model, sizeof(c->model), "%s",
			    f->req.model);
			snprintf(c->node, sizeof(c->node), "%s",
			    f->pl.nodes[0]);
			c->until = wall_ms() + cl->d->conf->start_timeout_ms +
			    CLUSTER_CLAIM_SLACK_MS;
			TAILQ_INSERT_TAIL(&cl->claims, c, link);
			f->claim = c;
		}
	} else if (r->nkvs > 0 && (v = json_loads(r->kvs[0].value, 0,
	    NULL)) != NULL) {
		holder = json_string_value(json_object_get(v, "node"));
		/* Someone is starting it: go there, and only there. */
		if (holder != NULL && cs_node(cl->cs, holder) != NULL) {
			snprintf(f->pl.nodes[0], sizeof(f->pl.nodes[0]), "%s",
			    holder);
			f->pl.nnodes = 1;
			f->pl.kind = CS_PLACE_STARTING;
		}
		json_decref(v);
	}
	f->next = 0;
	fwd_try(f);
}

static int
claim_start(struct fwd *f)
{
	struct cluster *cl = f->cl;
	char *key, *value;
	int rc = -1;

	key = cs_key_claim(cl->cs, f->req.model);
	value = cs_encode_claim(f->pl.nodes[0], self_name(cl), wall_ms() +
	    cl->d->conf->start_timeout_ms + CLUSTER_CLAIM_SLACK_MS);
	if (key != NULL && value != NULL &&
	    etcd_create(cl->etcd, key, value, cl->lease, claim_created,
	    f) == 0) {
		f->claiming = true;
		rc = 0;
	}
	free(key);
	free(value);
	return rc;
}

/* --- what dispatch.c asks --- */

static bool
live_here(const struct pool_model *m)
{
	return m != NULL && m->server != NULL &&
	    m->server->state != POOL_STOPPING;
}

int
cluster_acquire(struct session *s, const struct proto_request *req)
{
	struct cluster *cl = s->d->cluster;
	struct cs_place_query q;
	struct pool_model *m;
	struct fwd *f;
	char msg[PROTO_MESSAGE_MAX];

	if (cl == NULL || s->from_peer)
		return 0;
	m = daemon_model(s->d, req->model);
	if (live_here(m))
		return 0;
	if (cl->phase != PHASE_CONNECTED) {
		if (m != NULL)
			return 0;
		snprintf(msg, sizeof(msg), "no model named '%s' on this node, "
		    "and the cluster is out of reach (etcd unreachable): "
		    "this node serves its own models only", req->model);
		dispatch_error(s, req->id, PROTO_E_UNKNOWN_MODEL, msg);
		return 1;
	}
	memset(&q, 0, sizeof(q));
	q.model = req->model;
	q.self = self_name(cl);
	q.self_has = m != NULL;
	q.self_can_admit = m != NULL && pool_can_admit(s->d->pool, m);
	q.need = m != NULL ? m->mem : s->d->conf->per_model;
	q.now_wall_ms = wall_ms();
	if ((f = fwd_new(cl, s, req, FWD_ACQUIRE)) == NULL) {
		dispatch_error(s, req->id, PROTO_E_INTERNAL, "out of memory");
		return 1;
	}
	cs_place(cl->cs, &q, &f->pl);
	switch (f->pl.kind) {
	case CS_PLACE_READY:
	case CS_PLACE_STARTING:
		if (strcmp(f->pl.nodes[0], q.self) == 0 && m != NULL)
			break;
		fwd_try(f);
		return 1;
	case CS_PLACE_COLD:
		if (claim_start(f) == 0)
			return 1;
		if (m != NULL)
			break;
		fwd_try(f);
		return 1;
	case CS_PLACE_BACKOFF:
		if (m != NULL)
			break;
		snprintf(msg, sizeof(msg), "'%s' failed to start on every "
		    "node that has it: %s", req->model, f->pl.error);
		fwd_fail(f, PROTO_E_START_FAILED, msg);
		return 1;
	case CS_PLACE_NOWHERE:
		if (m != NULL)
			break;
		snprintf(msg, sizeof(msg), "no model named '%s' on any node "
		    "of the cluster (a model is a file NAME.gguf in a node's "
		    "models_dir)", req->model);
		fwd_fail(f, PROTO_E_UNKNOWN_MODEL, msg);
		return 1;
	}
	fwd_free(f);
	return 0;
}

int
cluster_lease_cmd(struct session *s, const struct proto_request *req)
{
	struct cluster *cl = s->d->cluster;
	struct rlease *rl;
	struct fwd *f;
	char msg[PROTO_MESSAGE_MAX], line[128];
	int n;

	if (cl == NULL || (rl = rlease_find(s, req->lease)) == NULL)
		return 0;
	if (rl->lost) {
		snprintf(msg, sizeof(msg), "lease %lld is lost: %s; %s",
		    (long long)rl->id, rl->why, req->cmd == PROTO_CMD_RELEASE ?
		    "the lease has ended" : "RELEASE it");
		dispatch_error(s, req->id, PROTO_E_LEASE_LOST, msg);
		if (req->cmd == PROTO_CMD_RELEASE)
			rlease_free(cl, rl);
		return 1;
	}
	f = fwd_new(cl, s, req, req->cmd == PROTO_CMD_RELEASE ? FWD_RELEASE :
	    FWD_LEASE);
	if (f == NULL) {
		dispatch_error(s, req->id, PROTO_E_INTERNAL, "out of memory");
		return 1;
	}
	f->lease = rl->id;
	snprintf(f->node, sizeof(f->node), "%s", rl->node);
	n = snprintf(line, sizeof(line), "{\"cmd\":\"%s\",\"lease\":%lld}",
	    proto_cmd_name(req->cmd), (long long)rl->remote);
	if (req->cmd == PROTO_CMD_RELEASE)
		rlease_free(cl, rl);	/* ended here whatever it answers */
	fwd_send(f, line, (size_t)n);
	return 1;
}

void
cluster_session_end(struct session *s)
{
	struct cluster *cl = s->d->cluster;
	struct rlease *rl;
	struct fwd *f;

	while ((f = TAILQ_FIRST(&s->fwds)) != NULL) {
		fwd_detach(f);
		if (f->handle == 0 && !f->claiming)
			fwd_free(f);
	}
	while ((rl = TAILQ_FIRST(&s->rleases)) != NULL) {
		if (!rl->lost)
			send_release(cl, rl->node, rl->remote);
		rlease_free(cl, rl);
	}
}

/* --- links from other nodes --- */

static void
pin_send(struct session *s, char *line)
{
	struct pin *p = (struct pin *)s;	/* s is the first member */

	if (p->in == NULL) {
		free(line);
		return;
	}
	peer_in_send(p->in, line);
}

static void *
pin_open(void *arg, struct peer_in *in, const char *node, const char *addr)
{
	struct cluster *cl = arg;
	struct pin *p;

	if (cl->stopping || (p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	session_init(&p->s, cl->d, CLUSTER_SERIAL_BASE + ++cl->pin_serial,
	    pin_send);
	p->s.from_peer = true;
	p->cl = cl;
	p->in = in;
	snprintf(p->node, sizeof(p->node), "%s", node);
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	TAILQ_INSERT_TAIL(&cl->pins, p, link);
	log_info("cluster: node %s (%s) connected", node, addr);
	return p;
}

static void
pin_line(void *ctx, const char *line, size_t len)
{
	struct pin *p = ctx;

	if (p->in != NULL)
		dispatch_line(&p->s, line, len);
}

/* Ended at the next reap: this may be inside a pool answer. */
static void
pin_closed(void *ctx, const char *why)
{
	struct pin *p = ctx;

	log_info("cluster: node %s (%s) disconnected: %s; its leases end",
	    p->node, p->addr, why);
	p->in = NULL;
}

static const struct peer_listener_ops pin_ops = {
	pin_open, pin_line, pin_closed
};

/* --- publishing --- */

static void
put_done(void *arg, const struct etcd_reply *r)
{
	struct cluster *cl = arg;

	if (r->err != ETCD_OK)
		etcd_failed(cl, r, "publishing");
}

static void
put_key(struct cluster *cl, char *key, char *value)
{
	if (key != NULL && value != NULL && cl->lease != 0)
		(void)etcd_put(cl->etcd, key, value, cl->lease, put_done, cl);
	free(key);
	free(value);
}

/* Idle ready servers without leases: what this node could give back. */
static uint64_t
evictable(const struct pool *p)
{
	const struct pool_server *srv;
	uint64_t sum = 0;

	TAILQ_FOREACH(srv, &p->servers, link)
		if (srv->state == POOL_READY && srv->leases == 0)
			sum += srv->mem;
	return sum;
}

static char *
node_value(struct cluster *cl)
{
	struct pool *p = cl->d->pool;
	struct pool_model **all;
	struct cs_node n;
	char *v;
	size_t i, count, k = 0;

	memset(&n, 0, sizeof(n));
	snprintf(n.name, sizeof(n.name), "%s", self_name(cl));
	snprintf(n.addr, sizeof(n.addr), "%s", cl->addr);
	snprintf(n.host, sizeof(n.host), "%s", cl->conf->advertise);
	n.budget = p->lim.budget;
	n.used = p->used;
	n.free = p->used < p->lim.budget ? p->lim.budget - p->used : 0;
	n.evictable = evictable(p);
	if ((all = catalog_sorted(cl->d, &count)) == NULL)
		return NULL;
	if ((n.models = calloc(count + 1, sizeof(char *))) == NULL) {
		free(all);
		return NULL;
	}
	for (i = 0; i < count; i++) {
		const struct model_entry *e = all[i]->udata;

		if (e != NULL && !e->gone)
			n.models[k++] = all[i]->name;
	}
	n.nmodels = k;
	v = cs_encode_node(&n);
	free(n.models);
	free(all);
	return v;
}

static void
publish_node(struct cluster *cl, bool force)
{
	char *v;

	if (cl->lease == 0 || (!force && daemon_now() - cl->node_at <
	    CLUSTER_PUBLISH_MS))
		return;
	/* A model dropped into the folder is news for the others too, even
	 * if no client of ours asks for it (a stat of the folder). */
	catalog_refresh(cl->d);
	if ((v = node_value(cl)) == NULL)
		return;
	cl->node_at = daemon_now();
	if (!force && cl->node_value != NULL &&
	    strcmp(cl->node_value, v) == 0) {
		free(v);
		return;
	}
	free(cl->node_value);
	cl->node_value = strdup(v);
	put_key(cl, cs_key_node(cl->cs, self_name(cl)), v);
}

static uint64_t
servers_signature(const struct pool *p)
{
	const struct pool_server *srv;
	uint64_t h = 1469598103934665603ULL;

	TAILQ_FOREACH(srv, &p->servers, link) {
		h = (h ^ (uint64_t)(uintptr_t)srv) * 1099511628211ULL;
		h = (h ^ (uint64_t)srv->state) * 1099511628211ULL;
		h = (h ^ (uint64_t)srv->port) * 1099511628211ULL;
	}
	return h;
}

static struct pub *
pub_find(struct cluster *cl, const char *model)
{
	size_t i;

	for (i = 0; i < cl->npubs; i++)
		if (strcmp(cl->pubs[i].model, model) == 0)
			return &cl->pubs[i];
	return NULL;
}

/* Our servers' keys, brought in line with the pool: puts and deletes. */
static void
publish_servers(struct cluster *cl, bool force)
{
	struct pool *p = cl->d->pool;
	struct pool_server *srv;
	struct pub *pub, *grown;
	enum cs_server_state st;
	uint64_t sig = servers_signature(p);
	size_t i;

	if (cl->lease == 0 || (!force && sig == cl->pub_sig))
		return;
	cl->pub_sig = sig;
	for (i = 0; i < cl->npubs; i++)
		cl->pubs[i].keep = false;
	TAILQ_FOREACH(srv, &p->servers, link) {
		if (srv->state == POOL_STOPPING)
			continue;
		st = srv->state == POOL_READY ? CS_READY : CS_STARTING;
		if ((pub = pub_find(cl, srv->model->name)) == NULL) {
			grown = realloc(cl->pubs, (cl->npubs + 1) *
			    sizeof(*grown));
			if (grown == NULL)
				continue;
			cl->pubs = grown;
			pub = &cl->pubs[cl->npubs++];
			snprintf(pub->model, sizeof(pub->model), "%s",
			    srv->model->name);
			pub->port = -1;
		}
		pub->keep = true;
		if (!force && pub->state == st && pub->port == srv->port)
			continue;
		pub->state = st;
		pub->port = srv->port;
		put_key(cl, cs_key_server(cl->cs, self_name(cl),
		    srv->model->name), cs_encode_server(st, srv->port,
		    srv->mem));
	}
	for (i = 0; i < cl->npubs; ) {
		if (cl->pubs[i].keep) {
			i++;
			continue;
		}
		char *key = cs_key_server(cl->cs, self_name(cl),
		    cl->pubs[i].model);
		if (key != NULL)
			(void)etcd_delete(cl->etcd, key, put_done, cl);
		free(key);
		cl->pubs[i] = cl->pubs[--cl->npubs];
	}
}

static void
publish_all(struct cluster *cl)
{
	publish_node(cl, true);
	publish_servers(cl, true);
}

/* --- the mirror --- */

static void
watch_event(void *arg, bool deleted, const struct etcd_kv *kv,
    int64_t revision)
{
	struct cluster *cl = arg;

	(void)revision;
	(void)cs_event(cl->cs, kv->key, deleted ? NULL : kv->value,
	    kv->mod_revision);
}

static void read_mirror(struct cluster *);

static void
watch_broken(void *arg, enum etcd_err err, const char *message)
{
	struct cluster *cl = arg;
	struct etcd_reply r;

	cl->watch = NULL;
	memset(&r, 0, sizeof(r));
	r.err = err;
	r.message = message;
	if (etcd_down(err)) {
		etcd_failed(cl, &r, "watching");
		return;
	}
	log_info("cluster: watch ended (%s); reading again",
	    etcd_err_name(err));
	read_mirror(cl);
}

static const struct etcd_watch_ops watch_ops = { watch_event, watch_broken };

static void
mirror_read(void *arg, const struct etcd_reply *r)
{
	struct cluster *cl = arg;
	char *prefix;
	size_t i;

	cl->reading = false;
	if (r->err != ETCD_OK) {
		etcd_failed(cl, r, "reading the cluster");
		return;
	}
	cs_read_begin(cl->cs);
	for (i = 0; i < r->nkvs; i++)
		cs_read_kv(cl->cs, r->kvs[i].key, r->kvs[i].value);
	cs_read_end(cl->cs, r->revision);
	if (cl->watch != NULL)
		etcd_watch_cancel(cl->watch);
	if (asprintf(&prefix, "%s/", cl->conf->prefix) == -1)
		return;
	cl->watch = etcd_watch_prefix(cl->etcd, prefix, r->revision + 1,
	    &watch_ops, cl);
	free(prefix);
	if (cl->lease != 0 && cl->phase != PHASE_CONNECTED) {
		cl->phase = PHASE_CONNECTED;
		cl->said_local = false;
		cl->retry_ms = 0;
		log_info("cluster: registered as %s (%zu nodes)",
		    self_name(cl), cs_nnodes(cl->cs));
	}
}

static void
read_mirror(struct cluster *cl)
{
	char *prefix;

	if (cl->reading || asprintf(&prefix, "%s/", cl->conf->prefix) == -1)
		return;
	cl->read_at = daemon_now();
	if (etcd_range_prefix(cl->etcd, prefix, mirror_read, cl) == -1)
		schedule_retry(cl);
	else
		cl->reading = true;
	free(prefix);
}

/* --- registration --- */

static void
lease_lost(void *arg, enum etcd_err why)
{
	struct cluster *cl = arg;
	struct etcd_reply r;

	log_warnx("cluster: lease lost (%s); registering again",
	    etcd_err_name(why));
	cl->lease = 0;
	cl->phase = PHASE_CONNECTING;
	memset(&r, 0, sizeof(r));
	r.err = ETCD_EUNREACHABLE;
	r.message = "lease lost";
	if (etcd_down(why))
		etcd_failed(cl, &r, "keepalive");
	else
		schedule_retry(cl);
}

static void
granted(void *arg, const struct etcd_reply *r)
{
	struct cluster *cl = arg;

	cl->registering = false;
	if (r->err != ETCD_OK) {
		etcd_failed(cl, r, "registering");
		return;
	}
	cl->lease = r->lease;
	if (cl->old_lease != 0) {	/* what it held now belongs to lease */
		(void)etcd_lease_revoke(cl->etcd, cl->old_lease, NULL, NULL);
		cl->old_lease = 0;
	}
	(void)etcd_keepalive_start(cl->etcd, cl->lease,
	    (cl->conf->lease_ttl_ms + 999) / 1000, lease_lost, cl);
	/* Our truth first: stale keys of ours are overwritten or gone. */
	cl->npubs = 0;
	free(cl->node_value);
	cl->node_value = NULL;
	publish_all(cl);
	read_mirror(cl);
}

static void
register_node(struct cluster *cl)
{
	int64_t ttl = (cl->conf->lease_ttl_ms + 999) / 1000;

	if (cl->registering || cl->stopping)
		return;
	if (etcd_lease_grant(cl->etcd, ttl < 2 ? 2 : ttl, granted, cl) == 0)
		cl->registering = true;
	else
		schedule_retry(cl);
}

static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cluster *cl = w->data;

	(void)loop; (void)revents;
	if (cl->lease == 0)
		register_node(cl);
	else
		read_mirror(cl);
}

/*
 * A start that failed here: others see a back-off mark and try another
 * node first until it passes.  It is under our lease; cs_place()
 * ignores it once its time is past.
 */
static void
publish_backoff(struct cluster *cl)
{
	struct pool *p = cl->d->pool;
	struct pool_model *m = p->last_failed;
	pool_ms now = daemon_now();

	if (p->failure_seq == cl->failure_seq || cl->lease == 0)
		return;
	cl->failure_seq = p->failure_seq;
	if (m == NULL || m->retry_at <= now)
		return;
	put_key(cl, cs_key_backoff(cl->cs, m->name, self_name(cl)),
	    cs_encode_backoff(wall_ms() + (m->retry_at - now),
	    m->last_error));
}

/*
 * The watch is the mirror's news, but a watch stream can stall without
 * breaking (a hung connection is not a closed one): a full read now and
 * then, and soon while a node we cannot reach is still listed, so that a
 * dead node leaves the placement within about its lease's TTL.
 */
static void
resync(struct cluster *cl)
{
	pool_ms since = daemon_now() - cl->read_at;
	size_t i;

	if (cl->phase != PHASE_CONNECTED || cl->reading)
		return;
	if (since >= CLUSTER_RESYNC_MS) {
		read_mirror(cl);
		return;
	}
	if (since < CLUSTER_RESYNC_DOWN_MS)
		return;
	for (i = 0; i < cl->nlinks; i++)
		if (cl->links[i]->down && cs_node(cl->cs,
		    cl->links[i]->name) != NULL) {
			read_mirror(cl);
			return;
		}
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cluster *cl = w->data;

	(void)loop; (void)revents;
	resync(cl);
	publish_node(cl, false);
	publish_backoff(cl);
	claims_sweep(cl);
}

/* --- the daemon's side --- */

/* The peer address others reach: advertise with listen's port. */
static int
own_addr(struct cluster *cl, char *err, size_t len)
{
	const char *colon = strrchr(cl->conf->listen, ':');
	unsigned char a[16];

	if (inet_pton(AF_INET6, cl->conf->advertise, a) == 1)
		snprintf(cl->addr, sizeof(cl->addr), "[%s]%s",
		    cl->conf->advertise, colon);
	else
		snprintf(cl->addr, sizeof(cl->addr), "%s%s",
		    cl->conf->advertise, colon);
	if (strcmp(colon, ":0") == 0) {
		snprintf(err, len, "cluster.listen: a port of 0 cannot be "
		    "told to other nodes; give one");
		return -1;
	}
	return 0;
}

static char *
read_password(const char *path, char *err, size_t len)
{
	char buf[1024];
	size_t n;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return strdup(buf);
}

/*
 * The etcd client's settings from "cluster"; the password read from its
 * file (malloc'd in ec->password, the caller frees it).  -1 with a
 * message if that file cannot be read.
 */
static int
etcd_settings(const struct cluster_conf *k, struct etcd_config *ec,
    char *err, size_t len)
{
	size_t i;

	memset(ec, 0, sizeof(*ec));
	for (i = 0; i < k->netcd && i < ETCD_ENDPOINTS_MAX; i++)
		ec->endpoints[ec->n_endpoints++] = k->etcd[i];
	ec->deadline_ms = k->deadline_ms;
	ec->user = k->etcd_user;
	ec->ca_file = k->etcd_ca_file;
	ec->cert_file = k->etcd_cert_file;
	ec->key_file = k->etcd_key_file;
	if (k->etcd_password_file != NULL &&
	    (ec->password = read_password(k->etcd_password_file, err,
	    len)) == NULL)
		return -1;
	return 0;
}

static bool
has_host(char **argv)
{
	for (; argv != NULL && *argv != NULL; argv++)
		if (strstr(*argv, "{host}") != NULL)
			return true;
	return false;
}

/* Servers that listen on loopback only cannot serve the other nodes. */
static void
warn_without_host(const struct config *conf)
{
	size_t i;

	if (!has_host(conf->command))
		log_warnx("cluster: \"command\" has no {host}: its servers may "
		    "not listen on %s, where other nodes reach them",
		    conf->cluster.advertise);
	for (i = 0; i < conf->nmodels; i++)
		if (conf->models[i].command != NULL &&
		    !has_host(conf->models[i].command))
			log_warnx("cluster: model %s's \"command\" has no "
			    "{host}: its servers may not listen on %s",
			    conf->models[i].name, conf->cluster.advertise);
}

struct cluster *
cluster_open(struct daemon *d, char *err, size_t len)
{
	const struct cluster_conf *k = &d->conf->cluster;
	struct etcd_config ec;
	struct cluster *cl;

	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	cl->d = d;
	cl->conf = k;
	TAILQ_INIT(&cl->rleases);
	TAILQ_INIT(&cl->claims);
	TAILQ_INIT(&cl->pins);
	if (own_addr(cl, err, len) == -1 ||
	    peer_secret_load(k->secret_file, cl->secret, &cl->secret_len,
	    err, len) == -1)
		goto fail;
	if (etcd_settings(k, &ec, err, len) == -1)
		goto fail;
	cl->etcd = etcd_new(d->loop, &ec, err, len);
	free((char *)ec.password);
	if (cl->etcd == NULL || (cl->cs = cs_new(k->prefix)) == NULL)
		goto fail;
	/* Links idle past three pings are dead: the origin pings. */
	cl->listener = peer_listen(d->loop, k->listen, cl->secret,
	    cl->secret_len, 3 * k->ping_ms, &pin_ops, cl, err, len);
	if (cl->listener == NULL)
		goto fail;
	ev_timer_init(&cl->retry, retry_cb, 0, 0);
	cl->retry.data = cl;
	ev_timer_init(&cl->tick, tick_cb, 0.25, 0.25);
	cl->tick.data = cl;
	ev_timer_start(d->loop, &cl->tick);
	warn_without_host(d->conf);
	log_info("cluster: node %s, peers on %s, etcd %s%s", k->name,
	    k->listen, k->etcd[0], k->netcd > 1 ? " (and others)" : "");
	register_node(cl);
	return cl;
fail:
	cluster_free(cl);
	return NULL;
}

/* Before the loop sleeps: our servers' keys, links that closed. */
void
cluster_reap(struct cluster *cl)
{
	struct pin *p, *tmp;

	if (cl == NULL)
		return;
	TAILQ_FOREACH_SAFE(p, &cl->pins, link, tmp)
		if (p->in == NULL) {
			TAILQ_REMOVE(&cl->pins, p, link);
			session_end(&p->s);
			free(p);
		}
	if (cl->phase == PHASE_CONNECTED)
		publish_servers(cl, false);
}

/* Shutting down: our keys go at once, not at the lease's end. */
void
cluster_shutdown(struct cluster *cl)
{
	if (cl == NULL || cl->stopping)
		return;
	cl->stopping = true;
	ev_timer_stop(cl->d->loop, &cl->retry);
	if (cl->lease != 0) {
		etcd_keepalive_stop(cl->etcd);
		(void)etcd_lease_revoke(cl->etcd, cl->lease, NULL, NULL);
		cl->lease = 0;
	}
}

void
cluster_free(struct cluster *cl)
{
	struct pin *p;
	struct claim *c;
	size_t i;

	if (cl == NULL)
		return;
	if (cl->d->loop != NULL) {
		ev_timer_stop(cl->d->loop, &cl->retry);
		ev_timer_stop(cl->d->loop, &cl->tick);
	}
	/* The listener first: closing its links calls pin_closed(). */
	if (cl->listener != NULL)
		peer_listener_free(cl->listener);
	while ((p = TAILQ_FIRST(&cl->pins)) != NULL) {
		TAILQ_REMOVE(&cl->pins, p, link);
		p->in = NULL;
		session_end(&p->s);
		free(p);
	}
	for (i = 0; i < cl->nlinks; i++) {
		if (cl->links[i]->out != NULL)
			peer_out_free(cl->links[i]->out);
		free(cl->links[i]);
	}
	while ((c = TAILQ_FIRST(&cl->claims)) != NULL) {
		TAILQ_REMOVE(&cl->claims, c, link);
		free(c);
	}
	if (cl->watch != NULL)
		etcd_watch_cancel(cl->watch);
	if (cl->etcd != NULL)
		etcd_free(cl->etcd);
	cs_free(cl->cs);
	free(cl->node_value);
	free(cl->pubs);
	free(cl);
}

const char *
cluster_name(const struct cluster *cl)
{
	return cl != NULL ? cl->conf->name : NULL;
}

static const char *
phase_name(enum phase ph)
{
	switch (ph) {
	case PHASE_CONNECTING:
		return "connecting";
	case PHASE_CONNECTED:
		return "connected";
	case PHASE_LOCAL_ONLY:
		return "local-only";
	}
	return "?";
}

static json_t *
link_state(const struct cluster *cl, const char *node)
{
	size_t i;

	if (strcmp(node, self_name(cl)) == 0)
		return json_null();
	for (i = 0; i < cl->nlinks; i++)
		if (strcmp(cl->links[i]->name, node) == 0)
			return json_string(cl->links[i]->up ? "up" : "down");
	return json_null();
}

json_t *
cluster_stats(const struct cluster *cl)
{
	const struct cs_node *n;
	const struct cs_server *srv;
	json_t *o, *nodes, *servers;
	size_t i;

	if (cl == NULL)
		return NULL;
	nodes = json_array();
	servers = json_array();
	for (i = 0; i < cs_nnodes(cl->cs); i++) {
		n = cs_node_at(cl->cs, i);
		json_array_append_new(nodes, json_pack("{s:s, s:s, s:s, s:I, "
		    "s:I, s:I, s:I, s:I, s:b, s:o}", "name", n->name,
		    "addr", n->addr, "host", n->host,
		    "budget", (json_int_t)n->budget,
		    "used", (json_int_t)n->used,
		    "free", (json_int_t)n->free,
		    "evictable", (json_int_t)n->evictable,
		    "models", (json_int_t)n->nmodels,
		    "self", strcmp(n->name, self_name(cl)) == 0,
		    "link", link_state(cl, n->name)));
	}
	for (i = 0; i < cs_nservers(cl->cs); i++) {
		srv = cs_server_at(cl->cs, i);
		json_array_append_new(servers, json_pack("{s:s, s:s, s:s, "
		    "s:i}", "node", srv->node, "model", srv->model,
		    "state", srv->state == CS_READY ? "ready" : "starting",
		    "port", srv->port));
	}
	o = json_pack("{s:s, s:s, s:s, s:I, s:o, s:o, s:I, s:I, s:I, s:I}",
	    "name", self_name(cl), "state", phase_name(cl->phase),
	    "addr", cl->addr, "revision", (json_int_t)cs_revision(cl->cs),
	    "nodes", nodes, "servers", servers,
	    "forwarded", (json_int_t)cl->forwarded,
	    "forward_failures", (json_int_t)cl->forward_failures,
	    "remote_leases", (json_int_t)cl->nremote,
	    "peer_links", (json_int_t)peer_listener_links(cl->listener));
	return o;
}

/* --- poold --budget --- */

struct budget_read {
	struct cluster_state	*cs;
	bool			 done;
	enum etcd_err		 err;
	char			 msg[256];
};

static void
budget_read_cb(void *arg, const struct etcd_reply *r)
{
	struct budget_read *b = arg;
	size_t i;

	b->done = true;
	b->err = r->err;
	if (r->err != ETCD_OK) {
		snprintf(b->msg, sizeof(b->msg), "%s%s%s", etcd_err_name(r->err),
		    r->message != NULL ? ": " : "", r->message != NULL ?
		    r->message : "");
		return;
	}
	cs_read_begin(b->cs);
	for (i = 0; i < r->nkvs; i++)
		cs_read_kv(b->cs, r->kvs[i].key, r->kvs[i].value);
	cs_read_end(b->cs, r->revision);
}

/* The cluster's capacity as etcd tells it now: one line per node. */
void
cluster_print_budget(const struct config *conf, FILE *fp)
{
	const struct cluster_conf *k = &conf->cluster;
	struct budget_read b;
	struct etcd_config ec;
	struct ev_loop *loop;
	struct etcd *e;
	const struct cs_node *n;
	uint64_t budget = 0, used = 0, fr = 0, ev = 0;
	char err[256], prefix[256], s1[32], s2[32], s3[32], s4[32];
	size_t i;

	memset(&b, 0, sizeof(b));
	if (etcd_settings(k, &ec, err, sizeof(err)) == -1) {
		fprintf(fp, "\ncluster %s: capacity unknown: %s\n", k->prefix,
		    err);
		return;
	}
	snprintf(prefix, sizeof(prefix), "%s/", k->prefix);
	fprintf(fp, "\ncluster %s (etcd %s):\n", k->prefix, k->etcd[0]);
	if ((loop = ev_loop_new(EVFLAG_AUTO)) == NULL ||
	    (e = etcd_new(loop, &ec, err, sizeof(err))) == NULL ||
	    (b.cs = cs_new(k->prefix)) == NULL) {
		fprintf(fp, "  capacity unknown: the etcd client could not "
		    "start\n");
		goto out;
	}
	if (etcd_range_prefix(e, prefix, budget_read_cb, &b) == 0)
		while (!b.done)
			ev_run(loop, EVRUN_ONCE);
	etcd_free(e);
	if (!b.done || b.err != ETCD_OK) {
		fprintf(fp, "  capacity unknown: etcd unreachable (%s)\n",
		    b.msg);
		goto out;
	}
	fprintf(fp, "  %-16s %-22s %10s %10s %10s %10s %7s\n", "NODE", "ADDR",
	    "BUDGET", "USED", "FREE", "EVICTABLE", "MODELS");
	for (i = 0; i < cs_nnodes(b.cs); i++) {
		n = cs_node_at(b.cs, i);
		budget += n->budget;
		used += n->used;
		fr += n->free;
		ev += n->evictable;
		fprintf(fp, "  %-16s %-22s %10s %10s %10s %10s %7zu\n", n->name,
		    n->addr, pool_format_size(n->budget, s1, sizeof(s1)),
		    pool_format_size(n->used, s2, sizeof(s2)),
		    pool_format_size(n->free, s3, sizeof(s3)),
		    pool_format_size(n->evictable, s4, sizeof(s4)), n->nmodels);
	}
	fprintf(fp, "  %-16s %-22s %10s %10s %10s %10s\n", "all",
	    cs_nnodes(b.cs) == 1 ? "1 node" : "", pool_format_size(budget, s1,
	    sizeof(s1)), pool_format_size(used, s2, sizeof(s2)),
	    pool_format_size(fr, s3, sizeof(s3)), pool_format_size(ev, s4,
	    sizeof(s4)));
	if (cs_nnodes(b.cs) == 0)
		fprintf(fp, "  no node is registered now\n");
out:
	free((char *)ec.password);
	cs_free(b.cs);
	if (loop != NULL)
		ev_loop_destroy(loop);
}
