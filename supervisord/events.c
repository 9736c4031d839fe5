/*
 * events.c — the event stream: SUBSCRIBE on the socket, GET /events.
 *
 * Every pool event (ops->event) and every event of the daemon's own
 * (events_emit: reload, pin, unpin) becomes one JSON object,
 *
 *	{"event":KIND,"seq":N,"time":UNIX_MS, ...}
 *
 * encoded once and handed, the same bytes, to every subscriber; each
 * connection frames it its own way (a line on the socket, an SSE event
 * over HTTP) and queues it in its output buffer, written before the loop
 * sleeps.  seq counts every event of this poold's run from 1, whether
 * anyone listens or not; time is the wall clock (people read it), the
 * order is seq's.
 *
 * A subscriber that does not keep up is dropped, never waited for: past
 * EVENTS_UNSENT_MAX of events unsent (its replies have their own limit)
 * its connection is closed and its backlog
 * discarded, logged once and counted (STATS events.dropped).  Waiting
 * would make poold's memory grow with the slowest reader; dropping costs
 * that reader the events it had not read, which it could not have had
 * in time anyway.
 *
 * The subscribers are a list in this file: there is one daemon per
 * process, as there is one loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "poold.h"

static struct {
	TAILQ_HEAD(, session)	 subs;
	bool			 ready;		/* subs initialised */
	unsigned		 nsubs;
	uint64_t		 seq;		/* the last event's */
	uint64_t		 sent;		/* events queued, all subscribers */
	uint64_t		 dropped;	/* subscribers dropped */
} ev;

static void
events_init(void)
{
	if (!ev.ready) {
		TAILQ_INIT(&ev.subs);
		ev.ready = true;
	}
}

static long long
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
unlink_sub(struct session *s)
{
	if (!s->subscribed)
		return;
	TAILQ_REMOVE(&ev.subs, s, subscriber);
	s->subscribed = false;
	ev.nsubs--;
}

/* The reader is too slow: it goes, once; the sink logs and closes. */
static void
drop(struct session *s, size_t unsent)
{
	char why[160];

	unlink_sub(s);
	ev.dropped++;
	if (unsent == SIZE_MAX)
		snprintf(why, sizeof(why), "dropped from the event stream: "
		    "out of memory for its events");
	else
		snprintf(why, sizeof(why), "dropped from the event stream: "
		    "%zu bytes unread (limit %d); closing the connection",
		    unsent, EVENTS_UNSENT_MAX);
	s->events_sink->drop(s, why);
}

bool
events_check_unsent(struct session *s, size_t unsent)
{
	if (!s->subscribed || unsent <= EVENTS_UNSENT_MAX)
		return false;
	drop(s, unsent);
	return true;
}

/* The same bytes to everyone. */
static void
broadcast(const char *json, size_t len, uint64_t seq)
{
	struct session *s, *next;
	size_t unsent;

	TAILQ_FOREACH_SAFE(s, &ev.subs, subscriber, next) {
		unsent = s->events_sink->queue(s, json, len, seq);
		if (unsent == SIZE_MAX || unsent > EVENTS_UNSENT_MAX) {
			drop(s, unsent);
			continue;
		}
		ev.sent++;
	}
}

/*
 * Numbers fields (taken) as the next event of kind and sends it.  The
 * number is taken even with no subscriber: seq says how many events
 * there were, and a gap says a subscriber missed some.
 */
static void
publish(const char *kind, json_t *fields)
{
	uint64_t seq = ++ev.seq;
	json_t *o;
	char *text;

	events_init();
	if (TAILQ_EMPTY(&ev.subs)) {
		json_decref(fields);
		return;
	}
	/* "event", "seq", "time" first: jansson keeps the order. */
	o = json_pack("{s:s, s:I, s:I}", "event", kind, "seq",
	    (json_int_t)seq, "time", (json_int_t)wall_ms());
	if (o != NULL && fields != NULL)
		json_object_update_missing(o, fields);
	json_decref(fields);
	text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (text == NULL) {
		log_warnx("events: out of memory for event %llu (%s); not "
		    "sent", (unsigned long long)seq, kind);
		return;
	}
	broadcast(text, strlen(text), seq);
	free(text);
}

/* --- pool events --- */

static const char *
kind_name(enum pool_event_kind k)
{
	switch (k) {
	case POOL_EV_START:	return "start";
	case POOL_EV_READY:	return "ready";
	case POOL_EV_EVICT:	return "evict";
	case POOL_EV_EXIT:	return "exit";
	case POOL_EV_FAILED:	return "failed";
	case POOL_EV_PRESSURE:	return "pressure";
	}
	return "unknown";
}

/* model, and port and pid when the event is about a server. */
static json_t *
server_fields(const struct pool_event *pe)
{
	const struct pool_server *srv = pe->server;
	const struct pool_model *m = pe->model != NULL ? pe->model :
	    srv != NULL ? srv->model : NULL;
	json_t *o;

	o = json_pack("{s:s}", "model", m != NULL ? m->name : "");
	if (o != NULL && srv != NULL) {
		json_object_set_new(o, "port", json_integer(srv->port));
		json_object_set_new(o, "pid", json_integer(srv->pid));
	}
	return o;
}

static json_t *
pool_event_json(const struct pool_event *pe)
{
	const char *msg = pe->message != NULL ? pe->message : "";
	json_t *o = server_fields(pe);

	if (o == NULL)
		return NULL;
	switch (pe->kind) {
	case POOL_EV_START:
		json_object_set_new(o, "preload", json_boolean(pe->preload));
		break;
	case POOL_EV_READY:
		json_object_set_new(o, "load_ms",
		    json_integer((json_int_t)pe->load_ms));
		break;
	case POOL_EV_EVICT:
		json_object_set_new(o, "reason",
		    json_string(pool_stop_reason_name(pe->reason)));
		break;
	case POOL_EV_EXIT:
		json_object_set_new(o, "reason",
		    json_string(pool_stop_reason_name(pe->reason)));
		json_object_set_new(o, "status", proto_text(msg));
		break;
	case POOL_EV_FAILED:
		json_object_set_new(o, "message", proto_text(msg));
		break;
	case POOL_EV_PRESSURE:
		json_object_set_new(o, "need",
		    json_integer((json_int_t)pe->need));
		json_object_set_new(o, "message", proto_text(msg));
		break;
	}
	return o;
}

void
events_pool(void *ctx, const struct pool_event *pe)
{
	usage_pool_event(ctx, pe);
	events_init();
	if (TAILQ_EMPTY(&ev.subs)) {
		ev.seq++;	/* numbered all the same, not encoded */
		return;
	}
	publish(kind_name(pe->kind), pool_event_json(pe));
}

void
events_emit(struct daemon *d, const char *kind, json_t *fields)
{
	(void)d;
	publish(kind, fields);
}

/* --- subscribers --- */

void
events_subscribe(struct session *s)
{
	events_init();
	if (s->subscribed || s->events_sink == NULL)
		return;
	TAILQ_INSERT_TAIL(&ev.subs, s, subscriber);
	s->subscribed = true;
	ev.nsubs++;
}

/*
 * The reply comes first, then the events from the next one on, on the
 * same connection, which may still send commands (their replies come
 * between events, in order).  SUBSCRIBE again is answered the same and
 * changes nothing.
 */
void
cmd_subscribe(struct session *s, const struct proto_request *req)
{
	if (s->events_sink == NULL) {
		dispatch_error(s, req->id, PROTO_E_BAD_REQUEST,
		    "this connection cannot subscribe to events");
		return;
	}
	cmd_reply_json(s, req, json_pack("{s:b}", "subscribed", 1));
	if (!s->subscribed)
		log_info("client %lu: subscribed to events", s->serial);
	events_subscribe(s);
}

void
events_session_end(struct session *s)
{
	unlink_sub(s);
}

void
events_fini(struct daemon *d)
{
	struct session *s;

	(void)d;
	events_init();
	while ((s = TAILQ_FIRST(&ev.subs)) != NULL)
		unlink_sub(s);
}

json_t *
events_stats(struct daemon *d)
{
	(void)d;
	return json_pack("{s:i, s:I, s:I, s:I}", "subscribers", (int)ev.nsubs,
	    "seq", (json_int_t)ev.seq, "sent", (json_int_t)ev.sent,
	    "dropped", (json_int_t)ev.dropped);
}
