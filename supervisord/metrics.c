/*
 * metrics.c — the pool in Prometheus' text format.
 * (Scaffold: replaced by issue 12's implementation.)
 */
#include <stdlib.h>
#include <string.h>

#include "poold.h"

char *
metrics_text(struct daemon *d, size_t *len)
{
	(void)d;
	*len = 0;
	return strdup("");
}

void
cmd_metrics(struct session *s, const struct proto_request *req)
{
	dispatch_error(s, req->id, PROTO_E_UNKNOWN_COMMAND, "not yet");
}
