/*
 * effects.c — the pool's effects: struct pool_ops for the running daemon.
 *
 * The pool core decides; these carry its decisions out with child.c
 * (spawn, stop, ports), dispatch.c (answers), log.c and measure.c.
 */
#include "poold.h"

static int
op_spawn(void *ctx, struct pool_server *srv, char *err, size_t len)
{
	return child_spawn(ctx, srv, err, len);
}

static void
op_stop(void *ctx, struct pool_server *srv)
{
	child_stop(ctx, srv);
}

static bool
op_port_free(void *ctx, int port)
{
	struct daemon *d = ctx;

	return child_port_free(d->conf, port);
}

static void
op_log(void *ctx, const char *line)
{
	log_info("%s", line);
}

const struct pool_ops effects_ops = {
	.spawn = op_spawn,
	.stop = op_stop,
	.answer = dispatch_answer,	/* finds its session from the waiter */
	.port_free = op_port_free,
	.log = op_log,
	.available = measure_available,
	.check = probe_check,
	.event = events_pool,
};
