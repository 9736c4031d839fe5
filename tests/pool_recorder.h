/*
 * pool_recorder.h — a fake struct pool_ops for the unit tests of pool.c.
 *
 * It records every effect the pool asks for (spawn, stop, answer, log,
 * event),
 * hands out fake pids, can be told to fail the next spawns and to report
 * ports as taken, and checks on the spot what must hold whenever the pool
 * calls out: a spawned server's port is in range, unused and was reported
 * free; a server is stopped once and never while leased unless the test
 * allowed it (forced EVICT, shutdown); a log line has no newline; an
 * event finds its server in the state it tells of.
 *
 * Header-only (everything static): included by tests/check_pool.c alone.
 */
#ifndef POOLD_POOL_RECORDER_H
#define POOLD_POOL_RECORDER_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

#define REC_MSG_MAX	(POOL_ERROR_MAX + PROTO_MESSAGE_MAX)
#define REC_PORTS	65536

struct rec_spawn {
	struct pool_server	*srv;		/* do not follow once reaped */
	struct pool_model	*model;
	int			 port;
	uint64_t		 mem;
	long			 pid;		/* 0 when it failed */
	bool			 failed;
	pool_ms			 at;
};

struct rec_stop {
	struct pool_server	*srv;		/* do not follow once reaped */
	struct pool_model	*model;
	int			 port;
	unsigned		 leases;
	enum pool_state		 state;		/* as seen inside ops->stop */
	pool_ms			 at;
};

struct rec_answer {
	struct pool_waiter	*w;		/* identity only */
	enum proto_err		 err;
	bool			 has_message;
	char			 message[REC_MSG_MAX];
	const struct pool_server *server;	/* identity only */
	struct pool_model	*server_model;
	int			 port;
	enum pool_state		 server_state;
	int64_t			 lease;
	bool			 cold;
	pool_ms			 wait_ms;
	pool_ms			 at;
};

/* One ops->event, copied (the pointers are identities only). */
struct rec_event {
	enum pool_event_kind	 kind;
	const struct pool_model	*model;
	const struct pool_server *server;
	enum pool_stop_reason	 reason;
	bool			 preload;
	pool_ms			 load_ms;
	uint64_t		 need;
	bool			 has_message;
	char			 message[REC_MSG_MAX];
	pool_ms			 at;
};

struct rec;
typedef void rec_answer_hook(struct rec *, struct pool_waiter *,
    const struct pool_answer *);

struct rec {
	struct pool		*pool;		/* read only, for checks */
	const pool_ms		*now;
	long			 next_pid;

	/* The system's available memory ops->available reports; 0: unknown. */
	uint64_t		 avail;

	/* Fault injection. */
	unsigned		 fail_spawns;	/* fail this many next spawns */
	unsigned		 again_spawns;	/* ... with POOL_SPAWN_AGAIN */
	char			 fail_msg[128];
	unsigned char		 taken[REC_PORTS];	/* port_free says no */
	unsigned		 deny_permille;	/* ... and at random */
	uint64_t		*rng;
	unsigned char		 asked[REC_PORTS];	/* 1 free, 2 not */

	/* Leased servers may be stopped: all, or those of one model. */
	bool			 allow_leased_stop;
	struct pool_model	*allow_leased_model;

	/* Stopped and not yet reaped (the test removes them on reap). */
	struct pool_server	**stopped;
	size_t			 nstopped, capstopped;

	struct rec_spawn	*spawns;
	size_t			 nspawns, capspawns;
	struct rec_stop		*stops;
	size_t			 nstops, capstops;
	struct rec_answer	*answers;
	size_t			 nanswers, capanswers;
	struct rec_event	*events;
	size_t			 nevents, capevents;
	struct pool_server	*last_check;	/* identity only */
	size_t			 nchecks;
	size_t			 nlogs;
	char			 lastlog[512];
	bool			 verbose;

	rec_answer_hook		*hook;
	void			*hook_ctx;
};

#define REC_PUSH(arr, n, cap) do {					\
	if ((n) == (cap)) {						\
		(cap) = (cap) ? (cap) * 2 : 64;				\
		(arr) = realloc((arr), (cap) * sizeof(*(arr)));		\
		ck_assert_ptr_nonnull(arr);				\
	}								\
	memset(&(arr)[(n)], 0, sizeof(*(arr)));				\
	(n)++;								\
} while (0)

static inline const char *
rec_model_name(const struct pool_model *m)
{
	return m != NULL && m->name != NULL ? m->name : "(null)";
}

static inline bool
rec_is_stopped(const struct rec *r, const struct pool_server *srv)
{
	size_t	 i;

	for (i = 0; i < r->nstopped; i++)
		if (r->stopped[i] == srv)
			return true;
	return false;
}

/* The test reaps srv: it may be stopped again (it no longer exists). */
static inline void
rec_forget(struct rec *r, const struct pool_server *srv)
{
	size_t	 i;

	for (i = 0; i < r->nstopped; i++)
		if (r->stopped[i] == srv) {
			r->stopped[i] = r->stopped[--r->nstopped];
			return;
		}
}

static inline uint64_t
rec_rand(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

static int
rec_spawn_cb(void *ctx, struct pool_server *srv, char *err, size_t errlen)
{
	struct rec		*r = ctx;
	struct rec_spawn	*s;
	struct pool_server	*o;
	struct pool		*p = r->pool;

	ck_assert_ptr_nonnull(srv);
	ck_assert_msg(srv->model != NULL, "spawn of a server with no model");
	REC_PUSH(r->spawns, r->nspawns, r->capspawns);
	s = &r->spawns[r->nspawns - 1];
	s->srv = srv;
	s->model = srv->model;
	s->port = srv->port;
	s->mem = srv->mem;
	s->at = *r->now;
	if (r->verbose)
		fprintf(stderr, "[%lld] SPAWN %s port %d mem %llu\n",
		    (long long)*r->now, rec_model_name(srv->model), srv->port,
		    (unsigned long long)srv->mem);

	ck_assert_msg(srv->mem == srv->model->mem,
	    "spawn %s: srv->mem %llu != model mem %llu",
	    rec_model_name(srv->model), (unsigned long long)srv->mem,
	    (unsigned long long)srv->model->mem);
	if (p != NULL) {
		ck_assert_msg(srv->port >= p->lim.port_min &&
		    srv->port <= p->lim.port_max,
		    "spawn %s on port %d, outside %d-%d",
		    rec_model_name(srv->model), srv->port, p->lim.port_min,
		    p->lim.port_max);
		TAILQ_FOREACH(o, &p->servers, link)
			ck_assert_msg(o == srv || o->port != srv->port,
			    "spawn %s on port %d, held by %s (%s)",
			    rec_model_name(srv->model), srv->port,
			    rec_model_name(o->model), pool_state_name(o->state));
		ck_assert_msg(r->asked[srv->port] == 1,
		    "spawn %s on port %d, which port_free did not report free",
		    rec_model_name(srv->model), srv->port);
	}
	if (r->again_spawns > 0) {
		r->again_spawns--;
		s->failed = true;
		snprintf(err, errlen, "cannot make pipes: Too many open files");
		return POOL_SPAWN_AGAIN;
	}
	if (r->fail_spawns > 0) {
		r->fail_spawns--;
		s->failed = true;
		snprintf(err, errlen, "%s", r->fail_msg);
		return -1;
	}
	srv->pid = s->pid = r->next_pid++;
	return 0;
}

static void
rec_stop_cb(void *ctx, struct pool_server *srv)
{
	struct rec	*r = ctx;
	struct rec_stop	*s;

	ck_assert_ptr_nonnull(srv);
	REC_PUSH(r->stops, r->nstops, r->capstops);
	s = &r->stops[r->nstops - 1];
	s->srv = srv;
	s->model = srv->model;
	s->port = srv->port;
	s->leases = srv->leases;
	s->state = srv->state;
	s->at = *r->now;
	if (r->verbose)
		fprintf(stderr, "[%lld] STOP %s port %d leases %u\n",
		    (long long)*r->now, rec_model_name(srv->model), srv->port,
		    srv->leases);

	ck_assert_msg(!rec_is_stopped(r, srv),
	    "ops->stop called twice on %s (port %d)",
	    rec_model_name(srv->model), srv->port);
	ck_assert_msg(srv->leases == 0 || r->allow_leased_stop ||
	    (r->allow_leased_model != NULL &&
	    srv->model == r->allow_leased_model),
	    "server %s (port %d) stopped with %u leases",
	    rec_model_name(srv->model), srv->port, srv->leases);
	/* Pinned: never stopped for room, idleness or an EVICT. */
	ck_assert_msg(srv->model->priority != POOL_PRIO_PINNED ||
	    srv->stop_reason == POOL_STOP_START_TIMEOUT ||
	    srv->stop_reason == POOL_STOP_UNHEALTHY ||
	    srv->stop_reason == POOL_STOP_SHUTDOWN, "pinned %s stopped (%s)",
	    rec_model_name(srv->model),
	    pool_stop_reason_name(srv->stop_reason));
	REC_PUSH(r->stopped, r->nstopped, r->capstopped);
	r->stopped[r->nstopped - 1] = srv;
}

static void
rec_answer_cb(void *ctx, struct pool_waiter *w, const struct pool_answer *a)
{
	struct rec		*r = ctx;
	struct rec_answer	*x;

	ck_assert_ptr_nonnull(w);
	ck_assert_ptr_nonnull(a);
	REC_PUSH(r->answers, r->nanswers, r->capanswers);
	x = &r->answers[r->nanswers - 1];
	x->w = w;
	x->err = a->err;
	if (a->message != NULL) {
		x->has_message = true;
		snprintf(x->message, sizeof(x->message), "%s", a->message);
	}
	x->server = a->server;
	if (a->server != NULL) {
		x->server_model = a->server->model;
		x->port = a->server->port;
		x->server_state = a->server->state;
	}
	x->lease = a->lease;
	x->cold = a->cold;
	x->wait_ms = a->wait_ms;
	x->at = *r->now;
	if (r->verbose)
		fprintf(stderr, "[%lld] ANSWER %p err %d lease %lld cold %d "
		    "wait %lld msg %s\n", (long long)*r->now, (void *)w,
		    (int)a->err, (long long)a->lease, (int)a->cold,
		    (long long)a->wait_ms, x->message);
	if (r->hook != NULL)
		r->hook(r, w, a);
}

static bool
rec_port_free_cb(void *ctx, int port)
{
	struct rec	*r = ctx;
	bool		 ok;

	ck_assert_msg(port >= 0 && port < REC_PORTS, "port_free(%d)", port);
	ok = !r->taken[port];
	if (ok && r->deny_permille > 0 && r->rng != NULL &&
	    rec_rand(r->rng) % 1000 < r->deny_permille)
		ok = false;
	r->asked[port] = ok ? 1 : 2;
	return ok;
}

static void
rec_log_cb(void *ctx, const char *line)
{
	struct rec	*r = ctx;

	ck_assert_ptr_nonnull(line);
	ck_assert_msg(strchr(line, '\n') == NULL, "log line with a newline: %s",
	    line);
	r->nlogs++;
	snprintf(r->lastlog, sizeof(r->lastlog), "%s", line);
	if (r->verbose)
		fprintf(stderr, "[%lld] log: %s\n", (long long)*r->now, line);
}

static uint64_t
rec_available_cb(void *ctx)
{
	struct rec	*r = ctx;

	return r->avail != 0 ? r->avail : UINT64_MAX;
}

/* A health check of a ready server, never two at once on one server. */
static void
rec_check_cb(void *ctx, struct pool_server *srv)
{
	struct rec	*r = ctx;

	ck_assert_ptr_nonnull(srv);
	ck_assert_msg(srv->state == POOL_READY, "check of %s while %s",
	    rec_model_name(srv->model), pool_state_name(srv->state));
	ck_assert_msg(srv->checking, "check of %s without checking set",
	    rec_model_name(srv->model));
	ck_assert_msg(!rec_is_stopped(r, srv), "check of stopped %s",
	    rec_model_name(srv->model));
	r->last_check = srv;
	r->nchecks++;
	if (r->verbose)
		fprintf(stderr, "[%lld] CHECK %s port %d\n",
		    (long long)*r->now, rec_model_name(srv->model), srv->port);
}

static const char *
rec_event_name(enum pool_event_kind k)
{
	static const char *const names[] = {
		"start", "ready", "evict", "exit", "failed", "pressure",
	};

	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] :
	    "?";
}

/*
 * An event, with what must hold when it is told: the server in the
 * state the event says (START: spawned, STARTING; READY: READY; EVICT:
 * STOPPING for that reason; EXIT: off the server list), a model always.
 */
static void
rec_event_cb(void *ctx, const struct pool_event *ev)
{
	struct rec		*r = ctx;
	struct rec_event	*x;
	const struct pool_server *o;
	bool			 listed = false;

	ck_assert_ptr_nonnull(ev);
	ck_assert_msg(ev->model != NULL, "event %s with no model",
	    rec_event_name(ev->kind));
	REC_PUSH(r->events, r->nevents, r->capevents);
	x = &r->events[r->nevents - 1];
	x->kind = ev->kind;
	x->model = ev->model;
	x->server = ev->server;
	x->reason = ev->reason;
	x->preload = ev->preload;
	x->load_ms = ev->load_ms;
	x->need = ev->need;
	if (ev->message != NULL) {
		x->has_message = true;
		snprintf(x->message, sizeof(x->message), "%s", ev->message);
	}
	x->at = *r->now;
	if (r->verbose)
		fprintf(stderr, "[%lld] EVENT %s %s reason %s preload %d "
		    "load %lld need %llu msg %s\n", (long long)*r->now,
		    rec_event_name(ev->kind), rec_model_name(ev->model),
		    pool_stop_reason_name(ev->reason), (int)ev->preload,
		    (long long)ev->load_ms, (unsigned long long)ev->need,
		    x->message);
	if (r->pool != NULL && ev->server != NULL)
		TAILQ_FOREACH(o, &r->pool->servers, link)
			if (o == ev->server)
				listed = true;
	switch (ev->kind) {
	case POOL_EV_START:
		ck_assert_msg(ev->server != NULL && ev->server->pid > 0 &&
		    ev->server->state == POOL_STARTING,
		    "start %s: no spawned, starting server",
		    rec_model_name(ev->model));
		ck_assert_int_eq(ev->preload, ev->server->preloaded);
		break;
	case POOL_EV_READY:
		ck_assert_msg(ev->server != NULL &&
		    ev->server->state == POOL_READY, "ready %s: server not "
		    "ready", rec_model_name(ev->model));
		break;
	case POOL_EV_EVICT:
		ck_assert_msg(ev->server != NULL &&
		    ev->server->state == POOL_STOPPING &&
		    ev->server->stop_reason == ev->reason, "evict %s: server "
		    "not stopping for %s", rec_model_name(ev->model),
		    pool_stop_reason_name(ev->reason));
		break;
	case POOL_EV_EXIT:
		ck_assert_msg(ev->server != NULL && !listed, "exit %s: "
		    "server missing or still listed",
		    rec_model_name(ev->model));
		ck_assert_msg(ev->message != NULL, "exit %s: no message",
		    rec_model_name(ev->model));
		break;
	case POOL_EV_FAILED:
		ck_assert_msg(ev->message != NULL && ev->message[0] != '\0',
		    "failed %s: no message", rec_model_name(ev->model));
		break;
	case POOL_EV_PRESSURE:
		ck_assert_msg(ev->server == NULL && ev->need > 0 &&
		    ev->message != NULL && ev->model->pressured,
		    "pressure %s: malformed", rec_model_name(ev->model));
		break;
	}
}

static const struct pool_ops rec_ops = {
	.spawn = rec_spawn_cb,
	.stop = rec_stop_cb,
	.answer = rec_answer_cb,
	.port_free = rec_port_free_cb,
	.log = rec_log_cb,
	.available = rec_available_cb,
	.check = rec_check_cb,
	.event = rec_event_cb,
};

static void
rec_init(struct rec *r, const pool_ms *now)
{
	memset(r, 0, sizeof(*r));
	r->now = now;
	r->next_pid = 1000;
	snprintf(r->fail_msg, sizeof(r->fail_msg), "exec llama-server: "
	    "No such file or directory");
	r->verbose = getenv("POOL_TEST_VERBOSE") != NULL;
}

static void
rec_free(struct rec *r)
{
	free(r->spawns);
	free(r->stops);
	free(r->answers);
	free(r->events);
	free(r->stopped);
	memset(r, 0, sizeof(*r));
}

#endif /* POOLD_POOL_RECORDER_H */
