/*
 * events.c — the event stream: SUBSCRIBE on the socket, GET /events.
 * (Scaffold: replaced by issue 12's implementation.)
 */
#include "poold.h"

void
events_pool(void *ctx, const struct pool_event *ev)
{
	usage_pool_event(ctx, ev);
}

void
events_emit(struct daemon *d, const char *kind, json_t *fields)
{
	(void)d; (void)kind;
	json_decref(fields);
}

void
cmd_subscribe(struct session *s, const struct proto_request *req)
{
	dispatch_error(s, req->id, PROTO_E_UNKNOWN_COMMAND, "not yet");
}

void
events_session_end(struct session *s)
{
	(void)s;
}

void
events_fini(struct daemon *d)
{
	(void)d;
}

json_t *
events_stats(struct daemon *d)
{
	(void)d;
	return json_pack("{s:i, s:i, s:i}", "subscribers", 0, "sent", 0,
	    "dropped", 0);
}
