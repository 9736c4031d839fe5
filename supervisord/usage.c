/*
 * usage.c — what models are used for, across restarts; pins; preloading.
 * (Scaffold: replaced by issue 12's implementation.)
 */
#include "poold.h"

void
cmd_pin(struct session *s, const struct proto_request *req, bool pin)
{
	(void)pin;
	dispatch_error(s, req->id, PROTO_E_UNKNOWN_COMMAND, "not yet");
}
