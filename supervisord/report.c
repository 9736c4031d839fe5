/*
 * report.c — the JSON of STATS and MODELS, read from the pool and catalog.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

static json_t *
counters_json(const struct pool_counters *k)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
	    " s:I, s:I, s:I, s:I}",
	    "acquires", (json_int_t)k->acquires, "hits", (json_int_t)k->hits,
	    "misses", (json_int_t)k->misses,
	    "releases", (json_int_t)k->releases,
	    "starts", (json_int_t)k->starts,
	    "start_failures", (json_int_t)k->start_failures,
	    "crashes", (json_int_t)k->crashes,
	    "evictions", (json_int_t)k->evictions,
	    "idle_stops", (json_int_t)k->idle_stops,
	    "admin_stops", (json_int_t)k->admin_stops,
	    "busy", (json_int_t)k->busy, "timeouts", (json_int_t)k->timeouts,
	    "unhealthy_stops", (json_int_t)k->unhealthy_stops,
	    "resource_failures", (json_int_t)k->resource_failures);
}

static json_t *
server_json(const struct daemon *d, const struct pool_server *srv,
    pool_ms now)
{
	pool_ms idle = srv->leases == 0 && srv->state == POOL_READY ?
	    now - srv->last_used : 0;
	pool_ms load = srv->state == POOL_STARTING ? now - srv->spawned_at :
	    srv->ready_at > 0 ? srv->ready_at - srv->spawned_at : 0;

	const struct model_entry *e = srv->model->udata;

	return json_pack("{s:s, s:s, s:i, s:I, s:i, s:I, s:I, s:I, s:I, s:I,"
	    " s:s, s:I, s:s}",
	    "model", srv->model->name, "state", pool_state_name(srv->state),
	    "port", srv->port, "pid", (json_int_t)srv->pid,
	    "leases", (int)srv->leases, "idle_ms", (json_int_t)idle,
	    "uptime_ms", (json_int_t)(now - srv->spawned_at),
	    "load_ms", (json_int_t)load, "mem", (json_int_t)srv->mem,
	    "estimate", (json_int_t)srv->estimate,
	    "estimate_source", estimate_source_name(e->source),
	    "rss", (json_int_t)srv->rss,
	    /* a reload changed what a start would run: "old" */
	    "config", child_config_current(d, srv) ? "current" : "old");
}

static json_t *
model_counters_json(const struct pool *p, const struct pool_model *m,
    pool_ms now)
{
	const struct pool_counters *k = &m->counters;

	/* last_error may quote a server's stderr: not always UTF-8. */
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
	    "model", m->name, "state", pool_model_state(p, m, now),
	    "hits", (json_int_t)k->hits,
	    "misses", (json_int_t)k->misses,
	    "evictions", (json_int_t)k->evictions,
	    "crashes", (json_int_t)k->crashes,
	    "start_failures", (json_int_t)k->start_failures,
	    "last_load_ms", (json_int_t)m->last_load_ms,
	    "failures", (json_int_t)m->failures, "last_error",
	    proto_text(m->last_error));
}

/* Only models that have seen use: 10,000 idle files are not news. */
static json_t *
models_activity_json(const struct pool *p, pool_ms now)
{
	json_t *a = json_array();
	const struct pool_model *m;

	for (size_t i = 0; a != NULL && i < p->nbuckets; i++)
		for (m = p->models[i]; m != NULL; m = m->hash_next)
			if (m->counters.acquires + m->counters.starts +
			    m->failures > 0)
				json_array_append_new(a,
				    model_counters_json(p, m, now));
	return a;
}

/* Each GPU's budget and what servers hold there: [{index, budget, used}]. */
static json_t *
gpus_json(const struct pool *p)
{
	json_t *a = json_array();

	for (unsigned d = 0; a != NULL && d < p->lim.ngpus; d++)
		json_array_append_new(a, json_pack("{s:i, s:I, s:I}", "index",
		    (int)d, "budget", (json_int_t)p->lim.gpu_budgets[d], "used",
		    (json_int_t)p->gpu_dev_used[d]));
	return a;
}

/* A server's class and whether it was started without a request. */
static json_t *
server_usage_json(const struct pool_server *srv, json_t *o)
{
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "priority",
	    json_string(pool_priority_name(srv->model->priority)));
	json_object_set_new(o, "preloaded", json_boolean(srv->preloaded));
	return o;
}

json_t *
daemon_stats(struct daemon *d)
{
	const struct pool *p = d->pool;
	const struct pool_server *srv;
	pool_ms now = daemon_now();
	json_t *servers = json_array(), *o, *mem;

	TAILQ_FOREACH(srv, &p->servers, link)
		json_array_append_new(servers, server_usage_json(srv,
		    server_json(d, srv, now)));
	o = json_pack("{s:s, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
	    " s:I}, s:i, s:i, s:i, s:i, s:o, s:o, s:o}",
	    "version", POOLD_VERSION, "pid", (json_int_t)getpid(),
	    "uptime_ms", (json_int_t)(now - p->started_at),
	    "memory",
	    "total", (json_int_t)d->budget.total,
	    "reserved", (json_int_t)d->budget.reserved,
	    "budget", (json_int_t)p->lim.budget,
	    "used", (json_int_t)p->used,
	    "free", (json_int_t)(p->used < p->lim.budget ?
	    p->lim.budget - p->used : 0),
	    "accounted", (json_int_t)p->used,
	    "measured", (json_int_t)d->measured,
	    "system_available", (json_int_t)(d->sys_available == UINT64_MAX ?
	    0 : d->sys_available),
	    "max_servers", (int)p->lim.max_servers,
	    "running", (int)p->nservers,
	    "waiting", (int)pool_waiting(p),
	    "clients", (int)control_clients(d->control),
	    "servers", servers,
	    "counters", counters_json(&p->counters),
	    "models", models_activity_json(p, now));
	/* The GPU budget, a second one (0: none). */
	mem = json_object_get(o, "memory");
	json_object_set_new(mem, "gpu_budget",
	    json_integer((json_int_t)p->lim.gpu_budget));
	json_object_set_new(mem, "gpu_used",
	    json_integer((json_int_t)p->gpu_used));
	json_object_set_new(mem, "gpus", gpus_json(p));
	if (o != NULL && d->http != NULL)
		json_object_set_new(o, "http", http_stats(d->http));
	if (d->cluster != NULL)
		json_object_set_new(o, "cluster", cluster_stats(d->cluster));
	if (o != NULL) {
		json_object_set_new(o, "usage", usage_stats(d));
		json_object_set_new(o, "events", events_stats(d));
	}
	return o;
}

static json_t *
model_json(struct daemon *d, const struct pool *p, const struct pool_model *m)
{
	const struct model_entry *e = m->udata;
	json_t *o;

	o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "model", m->name, "path",
	    e->path, "memory", (json_int_t)m->mem, "source",
	    estimate_source_name(e->source), "state",
	    pool_model_state(p, m, daemon_now()));
	if (o != NULL && m->server != NULL)
		json_object_set_new(o, "port", json_integer(m->server->port));
	if (o != NULL) {
		json_object_set_new(o, "priority",
		    json_string(pool_priority_name(usage_priority(d, m))));
		json_object_set_new(o, "usage", usage_json(d, m));
	}
	return o;
}

/* The catalog, by name: people read it. */
json_t *
daemon_models(struct daemon *d)
{
	struct pool_model **all;
	size_t n;
	json_t *a;
	catalog_refresh(d);
	if ((a = json_array()) == NULL ||
	    (all = catalog_sorted(d, &n)) == NULL) {
		json_decref(a);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, model_json(d, d->pool, all[i]));
	free(all);
	return json_pack("{s:s, s:o}", "models_dir", d->conf->models_dir,
	    "models", a);
}
