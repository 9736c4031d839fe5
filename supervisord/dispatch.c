/*
 * dispatch.c — the commands: a request line in, reply lines out.
 *
 * No sockets, buffers or timers here.  A connection is a struct session:
 * what the pool holds for it (its owner record, its waiting requests),
 * who is at the other end, and a function that sends it a line.
 * control.c makes sessions of socket clients; a test or a fuzzer can make
 * them of anything, with a stand-in for the daemon's few functions
 * (daemon_model, daemon_stats, daemon_models, daemon_now).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

/* A request the pool answers later. */
struct request {
	struct pool_waiter	 w;	/* first: the pool hands back &w */
	struct session		*s;
	json_t			*id;
	enum proto_cmd		 cmd;
	TAILQ_ENTRY(request)	 link;
};

/* --- sessions --- */

void
session_init(struct session *s, struct daemon *d, unsigned long serial,
    void (*send)(struct session *, char *))
{
	memset(s, 0, sizeof(*s));
	s->d = d;
	s->serial = serial;
	s->peer.pid = -1;
	s->send = send;
	pool_owner_init(&s->owner);
	TAILQ_INIT(&s->requests);
	TAILQ_INIT(&s->rleases);
	TAILQ_INIT(&s->fwds);
}

/*
 * Spare request records: a pipelining client asks and is answered
 * thousands of times a second, and a malloc/free pair per request showed
 * in the profile.  Bounded, and off under AddressSanitizer so that it
 * still sees a use after free.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_REQUESTS_MAX	0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARE_REQUESTS_MAX	0
#endif
#endif
#ifndef SPARE_REQUESTS_MAX
#define SPARE_REQUESTS_MAX	64
#endif

static struct request	*spare[SPARE_REQUESTS_MAX + 1];
static size_t		 nspare;
static const size_t	 spare_max = SPARE_REQUESTS_MAX;	/* may be 0 */

static struct request *
request_new(struct session *s, const struct proto_request *req)
{
	struct request *r;

	if (nspare > 0) {
		r = spare[--nspare];
		memset(r, 0, sizeof(*r));
	} else if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->s = s;
	r->cmd = req->cmd;
	r->id = req->id != NULL ? json_incref(req->id) : NULL;
	TAILQ_INSERT_TAIL(&s->requests, r, link);
	s->npending++;
	return r;
}

static void
request_free(struct request *r)
{
	TAILQ_REMOVE(&r->s->requests, r, link);
	r->s->npending--;
	json_decref(r->id);
	if (nspare < spare_max)
		spare[nspare++] = r;
	else
		free(r);
}

void
session_end(struct session *s)
{
	struct request *r;

	/* The pool forgets the waiters first, so none is answered later. */
	pool_owner_gone(s->d->pool, daemon_now(), &s->owner);
	if (s->d->cluster != NULL)
		cluster_session_end(s);
	events_session_end(s);
	while ((r = TAILQ_FIRST(&s->requests)) != NULL)
		request_free(r);
	free(s->peer.groups);
	s->peer.groups = NULL;
	s->peer.ngroups = 0;
}

bool
session_idle(const struct session *s)
{
	return TAILQ_EMPTY(&s->owner.leases) && TAILQ_EMPTY(&s->requests) &&
	    TAILQ_EMPTY(&s->rleases) && TAILQ_EMPTY(&s->fwds) &&
	    !s->subscribed;
}

void
dispatch_error(struct session *s, json_t *id, enum proto_err err,
    const char *msg)
{
	s->send(s, proto_encode_error(id, err, msg));
}

/* --- answers from the pool --- */

/* "http://HOST:PORT": where clients reach the server. */
static void
server_endpoint(const struct config *conf, const struct pool_server *srv,
    char *buf, size_t len)
{
	char host[CONFIG_HOST_PORT_BYTES];

	config_host_port(conf, srv->port, host, sizeof(host));
	snprintf(buf, len, "http://%s", host);
}

/* The key of its current start; "" if it has none. */
static void
server_api_key(const struct pool_server *srv, char *buf, size_t len)
{
	const struct child *c = srv->udata;

	snprintf(buf, len, "%s", c != NULL ? c->api_key : "");
}

static char *
encode_answer(const struct request *r, const struct pool_answer *a)
{
	struct proto_acquired acq;
	const struct pool_server *srv = a->server;
	json_t *body;
	char *line;

	if (a->err != PROTO_OK)
		return proto_encode_error(r->id, a->err, a->message);
	if (r->cmd == PROTO_CMD_ACQUIRE) {
		memset(&acq, 0, sizeof(acq));
		snprintf(acq.model, sizeof(acq.model), "%s", srv->model->name);
		acq.port = srv->port;
		server_endpoint(r->s->d->conf, srv, acq.endpoint,
		    sizeof(acq.endpoint));
		server_api_key(srv, acq.api_key, sizeof(acq.api_key));
		if (r->s->d->cluster != NULL)
			snprintf(acq.node, sizeof(acq.node), "%s",
			    cluster_name(r->s->d->cluster));
		acq.lease = a->lease;
		acq.cold = a->cold;
		acq.wait_ms = a->wait_ms;
		return proto_encode_acquired(r->id, &acq);
	}
	body = json_pack("{s:s, s:I}", "model", r->w.model->name, "freed",
	    (json_int_t)(srv != NULL ? srv->mem : 0));
	line = proto_encode_ok(r->id, body);
	json_decref(body);
	return line;
}

void
dispatch_answer(void *ctx, struct pool_waiter *w, const struct pool_answer *a)
{
	struct request *r = (struct request *)w;	/* w is the first member */
	struct session *s = r->s;

	s->send(s, encode_answer(r, a));
	request_free(r);
}

/* --- who may do what --- */

static bool
in_group(const struct peer *p, gid_t gid)
{
	int i;

	if (p->gid == gid)
		return true;
	for (i = 0; i < p->ngroups; i++)
		if (p->groups[i] == gid)
			return true;
	return false;
}

/* poold's own user and root, and the members of admin_group. */
static bool
peer_is_admin(const struct config *conf, const struct peer *p)
{
	if (!p->known)
		return false;
	if (p->uid == 0 || p->uid == geteuid())
		return true;
	return conf->admin_group != NULL && in_group(p, conf->admin_gid);
}

/* Commands that stop what others may be using. */
static bool
cmd_needs_admin(enum proto_cmd cmd)
{
	return cmd == PROTO_CMD_EVICT || cmd == PROTO_CMD_RELOAD ||
	    cmd == PROTO_CMD_PIN || cmd == PROTO_CMD_UNPIN;
}

/* "poold's user (uid 1000), root or group wheel": who may. */
static void
admins_text(const struct config *conf, char *buf, size_t len)
{
	char users[64] = "root";

	if (geteuid() != 0)
		snprintf(users, sizeof(users), "poold's user (uid %u)%sroot",
		    (unsigned)geteuid(), conf->admin_group != NULL ? ", " :
		    " or ");
	if (conf->admin_group != NULL)
		snprintf(buf, len, "%s or group %s", users, conf->admin_group);
	else
		snprintf(buf, len, "%s", users);
}

static void
send_forbidden(struct session *s, const struct proto_request *req)
{
	char who[64] = "unknown (the system does not say)";
	char admins[256], msg[PROTO_MESSAGE_MAX];

	if (s->peer.known)
		snprintf(who, sizeof(who), "uid %u gid %u",
		    (unsigned)s->peer.uid, (unsigned)s->peer.gid);
	admins_text(s->d->conf, admins, sizeof(admins));
	snprintf(msg, sizeof(msg), "%s needs %s; you are %s",
	    proto_cmd_name(req->cmd), admins, who);
	log_info("client %lu: forbidden: %s", s->serial, msg);
	dispatch_error(s, req->id, PROTO_E_FORBIDDEN, msg);
}

/* --- commands --- */

static struct pool_model *
find_model(struct session *s, const struct proto_request *req)
{
	struct daemon *d = s->d;
	struct pool_model *m;
	char msg[PROTO_MESSAGE_MAX];

	if ((m = daemon_model(d, req->model)) != NULL)
		return m;
	snprintf(msg, sizeof(msg), "no model named '%s' in %s (a model is a "
	    "file NAME.gguf there)", req->model, d->conf->models_dir);
	dispatch_error(s, req->id, PROTO_E_UNKNOWN_MODEL, msg);
	return NULL;
}

/*
 * A lease keeps a server's memory from others and costs poold a record:
 * leases are bounded per connection and in all.  ACQUIREs that wait with
 * hold count too, so pipelining cannot pass the limit.  An ACQUIRE
 * without hold takes no lease and is not counted.
 */
static bool
too_many_leases(struct session *s, const struct proto_request *req)
{
	const struct config *conf = s->d->conf;
	const struct pool *p = s->d->pool;
	char msg[PROTO_MESSAGE_MAX];

	if (!req->hold)
		return false;
	if (s->owner.nleases + s->owner.nwaiting_holds + s->nremote >=
	    conf->max_leases_per_client)
		snprintf(msg, sizeof(msg), "this connection holds or waits "
		    "for %u leases (max_leases_per_client); release one first",
		    conf->max_leases_per_client);
	else if (p->nleases + pool_waiting(p) >= conf->max_leases)
		snprintf(msg, sizeof(msg), "poold holds or waits for %u "
		    "leases in all (max_leases); try again later",
		    conf->max_leases);
	else
		return false;
	log_debug("client %lu: ACQUIRE %s refused: %s", s->serial, req->model,
	    msg);
	dispatch_error(s, req->id, PROTO_E_BUSY, msg);
	return true;
}

void
dispatch_acquire_local(struct session *s, const struct proto_request *req)
{
	struct daemon *d = s->d;
	struct pool_model *m;
	struct request *r;
	pool_ms now, timeout;

	if ((m = find_model(s, req)) == NULL)
		return;
	if ((r = request_new(s, req)) == NULL) {
		dispatch_error(s, req->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	timeout = req->timeout_ms >= 0 ? req->timeout_ms :
	    d->conf->acquire_timeout_ms;
	now = daemon_now();
	/* r may be answered, and freed, before this returns. */
	pool_acquire(d->pool, now, &r->w, &s->owner, m, req->hold,
	    now + timeout);
}

static void
cmd_acquire(struct session *s, const struct proto_request *req)
{
	if (too_many_leases(s, req))
		return;
	/* In a cluster, a server elsewhere may serve it. */
	if (s->d->cluster != NULL && cluster_acquire(s, req))
		return;
	dispatch_acquire_local(s, req);
}

void
cmd_reply_json(struct session *s, const struct proto_request *req,
    json_t *body)
{
	if (body == NULL) {
		dispatch_error(s, req->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	s->send(s, proto_encode_ok(req->id, body));
	json_decref(body);
}

/* --- leases: each acts only on the connection's own --- */

/* "uid 1000 pid 4242", or what is known of it. */
static const char *
peer_text(const struct peer *p, char *buf, size_t len)
{
	if (!p->known)
		snprintf(buf, len, "uid unknown");
	else if (p->pid > 0)
		snprintf(buf, len, "uid %u pid %ld", (unsigned)p->uid,
		    (long)p->pid);
	else
		snprintf(buf, len, "uid %u", (unsigned)p->uid);
	return buf;
}

/*
 * The connection's lease req->lease, or NULL after answering not_found.
 * A lease of another connection gets the same answer as one that never
 * was, in the reply and in the log: neither says whose it is.
 */
static const struct pool_lease *
own_lease(struct session *s, const struct proto_request *req)
{
	const struct pool_lease *l;
	char msg[256], who[64];

	if ((l = pool_lease_find(s->d->pool, &s->owner, req->lease)) != NULL)
		return l;
	log_info("client %lu (%s): %s of lease %lld refused: not a lease of "
	    "this connection", s->serial, peer_text(&s->peer, who,
	    sizeof(who)), proto_cmd_name(req->cmd), (long long)req->lease);
	snprintf(msg, sizeof(msg), "no lease %lld on this connection "
	    "(released already, never given, or given to another connection "
	    "or an earlier poold)", (long long)req->lease);
	dispatch_error(s, req->id, PROTO_E_NOT_FOUND, msg);
	return NULL;
}

/* A lease another node holds for this connection: passed on there. */
static bool
remote_lease(struct session *s, const struct proto_request *req)
{
	return s->d->cluster != NULL && !TAILQ_EMPTY(&s->rleases) &&
	    pool_lease_find(s->d->pool, &s->owner, req->lease) == NULL &&
	    cluster_lease_cmd(s, req);
}

/* Answers lease_lost for a lease whose server is gone; tail ends it. */
static void
send_lost(struct session *s, const struct proto_request *req,
    const struct pool_lease *l, const char *tail)
{
	const struct pool_lost *g = l->lost;
	char msg[PROTO_MESSAGE_MAX];

	if (g != NULL)
		snprintf(msg, sizeof(msg), "lease %lld is lost: the server of "
		    "'%s' on port %d is gone (%s); %s", (long long)l->id,
		    g->model, g->port, g->why, tail);
	else
		snprintf(msg, sizeof(msg), "lease %lld is lost: its server is "
		    "gone; %s", (long long)l->id, tail);
	dispatch_error(s, req->id, PROTO_E_LEASE_LOST, msg);
}

/* RELEASE: ends the lease; one whose server is gone answers lease_lost. */
static void
cmd_release(struct session *s, const struct proto_request *req)
{
	const struct pool_lease *l;

	if (remote_lease(s, req))
		return;
	if ((l = own_lease(s, req)) == NULL)
		return;
	/* The reply first: ending a lost lease frees what it tells of. */
	if (l->server == NULL)
		send_lost(s, req, l, "the lease has ended");
	else
		s->send(s, proto_encode_ok(req->id, NULL));
	(void)pool_release(s->d->pool, daemon_now(), &s->owner, req->lease);
}

/* LEASE: the lease's server, or lease_lost (the lease stays held). */
static void
cmd_lease(struct session *s, const struct proto_request *req)
{
	const struct pool_lease *l;
	const struct pool_server *srv;
	char endpoint[PROTO_ENDPOINT_MAX + 1], key[PROTO_API_KEY_MAX + 1];
	json_t *body;

	if (remote_lease(s, req))
		return;
	if ((l = own_lease(s, req)) == NULL)
		return;
	if ((srv = l->server) == NULL) {
		send_lost(s, req, l, "RELEASE it to free the port");
		return;
	}
	server_endpoint(s->d->conf, srv, endpoint, sizeof(endpoint));
	server_api_key(srv, key, sizeof(key));
	body = json_pack("{s:I, s:s, s:i, s:s, s:s}",
	    "lease", (json_int_t)l->id, "model", srv->model->name,
	    "port", srv->port, "endpoint", endpoint,
	    "state", pool_state_name(srv->state));
	if (body != NULL && key[0] != '\0')
		(void)json_object_set_new(body, "api_key", json_string(key));
	if (body != NULL && s->d->cluster != NULL)
		(void)json_object_set_new(body, "node",
		    json_string(cluster_name(s->d->cluster)));
	cmd_reply_json(s, req, body);
}

static void
cmd_evict(struct session *s, const struct proto_request *req)
{
	struct pool_model *m;
	struct request *r;

	/* A server whose file is gone can still be stopped. */
	if ((m = catalog_model_running(s->d, req->model)) == NULL &&
	    (m = find_model(s, req)) == NULL)
		return;
	if ((r = request_new(s, req)) == NULL) {
		dispatch_error(s, req->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	pool_evict(s->d->pool, daemon_now(), &r->w, &s->owner, m,
	    req->force);
}

/* Commands that wait for the pool count against max_pending. */
static bool
too_many_pending(struct session *s, const struct proto_request *req)
{
	unsigned max = s->d->conf->max_pending;
	char msg[128];

	if (s->npending < max ||
	    (req->cmd != PROTO_CMD_ACQUIRE && req->cmd != PROTO_CMD_EVICT))
		return false;
	snprintf(msg, sizeof(msg), "too many requests waiting on this "
	    "connection (%u); wait for replies", max);
	dispatch_error(s, req->id, PROTO_E_BUSY, msg);
	return true;
}

/* What another node's poold may ask over its link: nothing that stops
 * or lists, and nothing it could forward again. */
static bool
peer_may(enum proto_cmd cmd)
{
	return cmd == PROTO_CMD_ACQUIRE || cmd == PROTO_CMD_RELEASE ||
	    cmd == PROTO_CMD_LEASE || cmd == PROTO_CMD_PING ||
	    cmd == PROTO_CMD_STATS;
}

static void
dispatch(struct session *s, const struct proto_request *req)
{
	struct daemon *d = s->d;
	char msg[128];

	if (s->from_peer && !peer_may(req->cmd)) {
		snprintf(msg, sizeof(msg), "%s is not for other nodes: peers "
		    "may ACQUIRE, RELEASE, LEASE, PING and STATS",
		    proto_cmd_name(req->cmd));
		dispatch_error(s, req->id, PROTO_E_FORBIDDEN, msg);
		return;
	}

	if (cmd_needs_admin(req->cmd) && !peer_is_admin(d->conf, &s->peer)) {
		send_forbidden(s, req);
		return;
	}
	if (too_many_pending(s, req))
		return;
	switch (req->cmd) {
	case PROTO_CMD_ACQUIRE:
		cmd_acquire(s, req);
		break;
	case PROTO_CMD_RELEASE:
		cmd_release(s, req);
		break;
	case PROTO_CMD_LEASE:
		cmd_lease(s, req);
		break;
	case PROTO_CMD_EVICT:
		cmd_evict(s, req);
		break;
	case PROTO_CMD_STATS:
		cmd_reply_json(s, req, daemon_stats(d));
		break;
	case PROTO_CMD_MODELS:
		cmd_reply_json(s, req, daemon_models(d));
		break;
	case PROTO_CMD_PING:
		cmd_reply_json(s, req, json_pack("{s:s}", "version",
		    POOLD_VERSION));
		break;
	case PROTO_CMD_SUBSCRIBE:
		cmd_subscribe(s, req);
		break;
	case PROTO_CMD_METRICS:
		cmd_metrics(s, req);
		break;
	case PROTO_CMD_RELOAD:
		cmd_reload(s, req);
		break;
	case PROTO_CMD_PIN:
	case PROTO_CMD_UNPIN:
		cmd_pin(s, req, req->cmd == PROTO_CMD_PIN);
		break;
	default:
		dispatch_error(s, req->id, PROTO_E_UNKNOWN_COMMAND,
		    "unknown command");
		break;
	}
}

void
dispatch_line(struct session *s, const char *line, size_t len)
{
	struct proto_request req;
	char msg[PROTO_MESSAGE_MAX];
	enum proto_err err;

	proto_request_init(&req);
	err = proto_decode_request(line, len, &req, msg, sizeof(msg));
	if (err != PROTO_OK) {
		log_debug("client %lu: %s: %s", s->serial,
		    proto_err_name(err), msg);
		dispatch_error(s, req.id, err, msg);
	} else if (s->d->stopping) {
		dispatch_error(s, req.id, PROTO_E_SHUTTING_DOWN,
		    "poold is shutting down");
	} else
		dispatch(s, &req);
	proto_request_clear(&req);
}
