/*
 * reload.c — SIGHUP and RELOAD: a new config without a restart.
 * (Scaffold: replaced by issue 12's implementation.)
 */
#include <stdio.h>

#include "poold.h"

int
daemon_reload(struct daemon *d, json_t **report, char *err, size_t len)
{
	if (report != NULL)
		*report = NULL;
	return daemon_rescan(d, err, len);
}

void
cmd_reload(struct session *s, const struct proto_request *req)
{
	dispatch_error(s, req->id, PROTO_E_UNKNOWN_COMMAND, "not yet");
}
