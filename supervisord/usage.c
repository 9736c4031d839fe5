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

void
usage_model_added(struct daemon *d, struct pool_model *m)
{
	(void)d; (void)m;
}

int
usage_check_pins(struct daemon *d, const struct config *conf, uint64_t budget,
    char *err, size_t len)
{
	(void)d; (void)conf; (void)budget; (void)err; (void)len;
	return 0;
}

int
usage_apply(struct daemon *d, char *err, size_t len)
{
	(void)d; (void)err; (void)len;
	return 0;
}

void
usage_start(struct daemon *d)
{
	(void)d;
}

void
usage_fini(struct daemon *d)
{
	(void)d;
}

void
usage_pool_event(struct daemon *d, const struct pool_event *ev)
{
	(void)d; (void)ev;
}
