/*
 * metrics.c — the pool in Prometheus' text exposition format (0.0.4),
 * for GET /metrics and the METRICS command.
 *
 * Every family has its HELP and TYPE, then its samples.  Pool-wide
 * figures are poold_*; a model's are poold_model_* with a model label,
 * so that summing a model family never counts a pool total twice.
 *
 * A pool may have 10,000 models; only those with something to say are
 * written (a server, a waiter, or any use this run), and at most
 * METRICS_MODELS_MAX of them, those with servers first, then the most
 * acquired.  A model takes at most ~30 lines of ~200 bytes (a name of
 * 128, every stop reason): 500 of them stay under 3 MiB, under a
 * client's 4 MiB reply limit (POOLC_REPLY_MAX_BYTES) once quoted in JSON.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "poold.h"

#define METRICS_MODELS_MAX	500
#define STR_(x)			#x
#define STR(x)			STR_(x)
#define METRICS_INITIAL_BYTES	8192

/* A growing text; on out of memory it stops growing and says so once. */
struct mtext {
	char	*buf;
	size_t	 len, cap;
	bool	 failed;
};

static void
mt_reserve(struct mtext *t, size_t more)
{
	size_t cap;
	char *p;

	if (t->failed || t->len + more + 1 <= t->cap)
		return;
	cap = t->cap != 0 ? t->cap : METRICS_INITIAL_BYTES;
	while (cap < t->len + more + 1)
		cap *= 2;
	if ((p = realloc(t->buf, cap)) == NULL) {
		t->failed = true;
		return;
	}
	t->buf = p;
	t->cap = cap;
}

static void
mt_add(struct mtext *t, const char *s, size_t n)
{
	mt_reserve(t, n);
	if (t->failed)
		return;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void mt_printf(struct mtext *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
mt_printf(struct mtext *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->failed = true;
		return;
	}
	mt_reserve(t, (size_t)n);
	if (t->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

size_t
metrics_escape_label(const char *in, char *out, size_t outlen)
{
	size_t need = 0, o = 0;
	const char *esc;
	char one[2] = { 0, 0 };

	for (; *in != '\0'; in++) {
		switch (*in) {
		case '\\':	esc = "\\\\"; break;
		case '"':	esc = "\\\""; break;
		case '\n':	esc = "\\n"; break;
		default:	one[0] = *in; esc = one; break;
		}
		for (; *esc != '\0'; esc++, need++)
			if (o + 1 < outlen)
				out[o++] = *esc;
	}
	if (outlen > 0)
		out[o] = '\0';
	return need;
}

/* A label value, escaped, into t. */
static void
mt_label(struct mtext *t, const char *value)
{
	size_t n = metrics_escape_label(value, NULL, 0);

	mt_reserve(t, n);
	if (t->failed)
		return;
	metrics_escape_label(value, t->buf + t->len, n + 1);
	t->len += n;
}

static void
family(struct mtext *t, const char *name, const char *type, const char *help)
{
	mt_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
sample(struct mtext *t, const char *name, uint64_t v)
{
	mt_printf(t, "%s %" PRIu64 "\n", name, v);
}

static void
sample_seconds(struct mtext *t, const char *name, const char *labels,
    pool_ms ms)
{
	mt_printf(t, "%s%s %.3f\n", name, labels, (double)ms / 1000.0);
}

/* name{model="m"} v, or name{model="m",key="kv"} v */
static void
model_sample(struct mtext *t, const char *name, const char *model,
    const char *key, const char *kv, uint64_t v)
{
	mt_printf(t, "%s{model=\"", name);
	mt_label(t, model);
	if (key != NULL) {
		mt_printf(t, "\",%s=\"", key);
		mt_label(t, kv);
	}
	mt_printf(t, "\"} %" PRIu64 "\n", v);
}

/* The models worth a line, and how many were left out. */
struct mset {
	const struct pool_model	**m;
	size_t			  n;
	size_t			  omitted;
};

static unsigned
model_waiters(const struct pool_model *m)
{
	const struct pool_waiter *w;
	unsigned n = 0;

	TAILQ_FOREACH(w, &m->queued, link)
		n++;
	if (m->server != NULL)
		TAILQ_FOREACH(w, &m->server->waiters, link)
			n++;
	return n;
}

/* Anything to say this run?  A model with a server, stopping ones too,
 * has started this run: its counters say so. */
static bool
model_active(const struct pool_model *m)
{
	const struct pool_counters *k = &m->counters;

	return m->server != NULL || !TAILQ_EMPTY(&m->queued) ||
	    k->acquires + k->starts + k->start_failures + k->busy +
	    k->timeouts + k->preloads > 0 || m->failures > 0;
}

/* Servers first, then the most acquired, then by name: a stable order. */
static int
model_order(const void *a, const void *b)
{
	const struct pool_model *x = *(const struct pool_model *const *)a;
	const struct pool_model *y = *(const struct pool_model *const *)b;

	if ((x->server != NULL) != (y->server != NULL))
		return x->server != NULL ? -1 : 1;
	if (x->counters.acquires != y->counters.acquires)
		return x->counters.acquires > y->counters.acquires ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
name_order(const void *a, const void *b)
{
	const struct pool_model *x = *(const struct pool_model *const *)a;
	const struct pool_model *y = *(const struct pool_model *const *)b;

	return strcmp(x->name, y->name);
}

static int
models_pick(const struct pool *p, struct mset *ms)
{
	const struct pool_model *m;
	size_t n = 0, cap = 0;

	memset(ms, 0, sizeof(*ms));
	for (size_t i = 0; i < p->nbuckets; i++)
		for (m = p->models[i]; m != NULL; m = m->hash_next)
			if (model_active(m))
				cap++;
	if (cap == 0)
		return 0;
	if ((ms->m = calloc(cap, sizeof(*ms->m))) == NULL)
		return -1;
	for (size_t i = 0; i < p->nbuckets; i++)
		for (m = p->models[i]; m != NULL; m = m->hash_next)
			if (n < cap && model_active(m))
				ms->m[n++] = m;
	qsort(ms->m, n, sizeof(*ms->m), model_order);
	if (n > METRICS_MODELS_MAX) {
		ms->omitted = n - METRICS_MODELS_MAX;
		n = METRICS_MODELS_MAX;
	}
	/* By name in the text: people read it, and diffs stay small. */
	qsort(ms->m, n, sizeof(*ms->m), name_order);
	ms->n = n;
	return 0;
}

static uint64_t
cold_starts(const struct pool_counters *k)
{
	return k->starts > k->preloads ? k->starts - k->preloads : 0;
}

static uint64_t
failed_starts(const struct pool_counters *k)
{
	return k->start_failures;
}

static uint64_t
busy_replies(const struct pool_counters *k)
{
	return k->busy;
}

static uint64_t
acquires(const struct pool_counters *k)
{
	return k->acquires;
}

static uint64_t
hits(const struct pool_counters *k)
{
	return k->hits;
}

static uint64_t
preloads(const struct pool_counters *k)
{
	return k->preloads;
}

/* The per-model counter families, each from one field. */
static const struct model_counter {
	const char	*name;
	const char	*help;
	uint64_t	(*get)(const struct pool_counters *);
} model_counters[] = {
	{ "poold_model_acquires_total",
	  "ACQUIREs answered with a server of the model.", acquires },
	{ "poold_model_hits_total",
	  "ACQUIREs of the model that found its server ready.", hits },
	{ "poold_model_cold_starts_total",
	  "Servers of the model started for a request.", cold_starts },
	{ "poold_model_preloads_total",
	  "Servers of the model started without a request (pinned, "
	  "preload).", preloads },
	{ "poold_model_failed_starts_total",
	  "Starts of the model that failed (spawn failed, exited or timed "
	  "out before ready, crashed early).", failed_starts },
	{ "poold_model_busy_total",
	  "ACQUIREs of the model answered busy (no room in time).",
	  busy_replies },
};

static void
load_histogram(struct mtext *t, const char *name, const char *model,
    const struct pool_counters *k)
{
	uint64_t cum = 0;
	char le[32];

	for (size_t b = 0; b < POOL_LOAD_BUCKETS; b++) {
		cum += k->load_hist[b];
		if (b < POOL_LOAD_BUCKETS - 1)
			snprintf(le, sizeof(le), "%g",
			    (double)pool_load_bounds[b] / 1000.0);
		else
			snprintf(le, sizeof(le), "+Inf");
		if (model != NULL) {
			mt_printf(t, "%s_bucket{model=\"", name);
			mt_label(t, model);
			mt_printf(t, "\",le=\"%s\"} %" PRIu64 "\n", le, cum);
		} else
			mt_printf(t, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
			    le, cum);
	}
	if (model != NULL) {
		mt_printf(t, "%s_sum{model=\"", name);
		mt_label(t, model);
		mt_printf(t, "\"} %.3f\n%s_count{model=\"", (double)
		    k->load_ms_total / 1000.0, name);
		mt_label(t, model);
		mt_printf(t, "\"} %" PRIu64 "\n", cum);
	} else
		mt_printf(t, "%s_sum %.3f\n%s_count %" PRIu64 "\n", name,
		    (double)k->load_ms_total / 1000.0, name, cum);
}

static void
write_models(struct mtext *t, const struct mset *ms)
{
	const struct pool_model *m;

	for (size_t c = 0; c < sizeof(model_counters) /
	    sizeof(model_counters[0]); c++) {
		family(t, model_counters[c].name, "counter",
		    model_counters[c].help);
		for (size_t i = 0; i < ms->n; i++)
			model_sample(t, model_counters[c].name, ms->m[i]->name,
			    NULL, NULL, model_counters[c].get(
			    &ms->m[i]->counters));
	}
	family(t, "poold_model_evictions_total", "counter",
	    "Servers of the model poold stopped, by reason (reasons never "
	    "seen are left out).");
	for (size_t i = 0; i < ms->n; i++) {
		m = ms->m[i];
		for (int r = POOL_STOP_NONE + 1; r < POOL_STOP__COUNT; r++)
			if (m->counters.stops[r] > 0)
				model_sample(t, "poold_model_evictions_total",
				    m->name, "reason",
				    pool_stop_reason_name(r),
				    m->counters.stops[r]);
	}
	family(t, "poold_model_waiters", "gauge",
	    "ACQUIREs of the model waiting now (for room, a start or a "
	    "health check).");
	for (size_t i = 0; i < ms->n; i++)
		model_sample(t, "poold_model_waiters", ms->m[i]->name, NULL,
		    NULL, model_waiters(ms->m[i]));
	family(t, "poold_model_load_seconds", "histogram",
	    "Spawn-to-ready times of the model's servers.");
	for (size_t i = 0; i < ms->n; i++)
		load_histogram(t, "poold_model_load_seconds", ms->m[i]->name,
		    &ms->m[i]->counters);
	family(t, "poold_models_omitted", "gauge",
	    "Active models left out of the poold_model_* families (at most "
	    STR(METRICS_MODELS_MAX) " are written).");
	sample(t, "poold_models_omitted", ms->omitted);
}

static void
write_memory(struct mtext *t, struct daemon *d)
{
	const struct pool *p = d->pool;

	family(t, "poold_memory_total_bytes", "gauge",
	    "The machine's (or the cgroup's) memory.");
	sample(t, "poold_memory_total_bytes", d->budget.total);
	family(t, "poold_memory_budget_bytes", "gauge",
	    "What all servers may take together.");
	sample(t, "poold_memory_budget_bytes", p->lim.budget);
	family(t, "poold_memory_accounted_bytes", "gauge",
	    "What the servers are accounted (estimate or measured, whichever "
	    "is larger, from spawn until reaped).");
	sample(t, "poold_memory_accounted_bytes", p->used);
	family(t, "poold_memory_measured_bytes", "gauge",
	    "The servers' resident memory at the last sample.");
	sample(t, "poold_memory_measured_bytes", d->measured);
	family(t, "poold_memory_system_available_bytes", "gauge",
	    "The system's available memory at the last look (absent if "
	    "unknown).");
	if (d->sys_available != UINT64_MAX)
		sample(t, "poold_memory_system_available_bytes",
		    d->sys_available);
	if (p->lim.gpu_budget == 0)
		return;
	family(t, "poold_gpu_memory_budget_bytes", "gauge",
	    "What the servers may take on each GPU.");
	for (unsigned g = 0; g < p->lim.ngpus; g++)
		mt_printf(t, "poold_gpu_memory_budget_bytes{gpu=\"%u\"} %"
		    PRIu64 "\n", g, p->lim.gpu_budgets[g]);
	family(t, "poold_gpu_memory_used_bytes", "gauge",
	    "What the servers are accounted on each GPU.");
	for (unsigned g = 0; g < p->lim.ngpus; g++)
		mt_printf(t, "poold_gpu_memory_used_bytes{gpu=\"%u\"} %"
		    PRIu64 "\n", g, p->gpu_dev_used[g]);
}

static void
write_pool(struct mtext *t, struct daemon *d)
{
	const struct pool *p = d->pool;
	const struct pool_counters *k = &p->counters;
	const struct pool_server *srv;
	unsigned by_state[3] = { 0, 0, 0 };
	static const enum pool_state states[] = { POOL_STARTING, POOL_READY,
	    POOL_STOPPING };

	TAILQ_FOREACH(srv, &p->servers, link)
		if ((unsigned)srv->state < 3)
			by_state[srv->state]++;
	family(t, "poold_servers", "gauge", "Servers by state (a stopping "
	    "one holds its memory until reaped).");
	for (size_t i = 0; i < 3; i++)
		mt_printf(t, "poold_servers{state=\"%s\"} %u\n",
		    pool_state_name(states[i]), by_state[states[i]]);
	family(t, "poold_max_servers", "gauge", "Servers that may run at "
	    "once.");
	sample(t, "poold_max_servers", p->lim.max_servers);
	family(t, "poold_clients", "gauge", "Connections to the control "
	    "socket.");
	sample(t, "poold_clients", control_clients(d->control));
	family(t, "poold_leases", "gauge", "Leases held (with lost ones "
	    "not yet released).");
	sample(t, "poold_leases", p->nleases);
	family(t, "poold_waiters", "gauge", "ACQUIREs waiting now.");
	sample(t, "poold_waiters", pool_waiting(p));

	family(t, "poold_acquires_total", "counter", "ACQUIREs answered with "
	    "a server.");
	sample(t, "poold_acquires_total", k->acquires);
	family(t, "poold_hits_total", "counter", "ACQUIREs that found their "
	    "server ready.");
	sample(t, "poold_hits_total", k->hits);
	family(t, "poold_releases_total", "counter", "Leases released.");
	sample(t, "poold_releases_total", k->releases);
	family(t, "poold_starts_total", "counter", "Server processes "
	    "spawned.");
	sample(t, "poold_starts_total", k->starts);
	family(t, "poold_cold_starts_total", "counter", "Servers started "
	    "for a request.");
	sample(t, "poold_cold_starts_total", cold_starts(k));
	family(t, "poold_preloads_total", "counter", "Servers started "
	    "without a request (pinned, preload).");
	sample(t, "poold_preloads_total", k->preloads);
	family(t, "poold_failed_starts_total", "counter", "Starts that "
	    "failed.");
	sample(t, "poold_failed_starts_total", k->start_failures);
	family(t, "poold_crashes_total", "counter", "Ready servers that "
	    "exited without being asked.");
	sample(t, "poold_crashes_total", k->crashes);
	family(t, "poold_busy_total", "counter", "ACQUIREs answered busy "
	    "(no room in time).");
	sample(t, "poold_busy_total", k->busy);
	family(t, "poold_timeouts_total", "counter", "ACQUIREs that ran out "
	    "of time while their server started.");
	sample(t, "poold_timeouts_total", k->timeouts);
	family(t, "poold_resource_failures_total", "counter", "Starts put "
	    "off for lack of poold's own resources.");
	sample(t, "poold_resource_failures_total", k->resource_failures);
	family(t, "poold_evictions_total", "counter", "Servers poold "
	    "stopped, by reason.");
	for (int r = POOL_STOP_NONE + 1; r < POOL_STOP__COUNT; r++)
		mt_printf(t, "poold_evictions_total{reason=\"%s\"} %" PRIu64
		    "\n", pool_stop_reason_name(r), k->stops[r]);
	family(t, "poold_load_seconds", "histogram", "Spawn-to-ready times "
	    "of all servers.");
	load_histogram(t, "poold_load_seconds", NULL, k);
}

/* Figures of the front door and the event stream, from their STATS. */
static void
write_json_counter(struct mtext *t, json_t *o, const char *key,
    const char *name, const char *type, const char *help)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return;
	family(t, name, type, help);
	sample(t, name, (uint64_t)json_integer_value(v));
}

static void
write_others(struct mtext *t, struct daemon *d)
{
	json_t *o;

	if (d->http != NULL && (o = http_stats(d->http)) != NULL) {
		write_json_counter(t, o, "conns", "poold_http_connections",
		    "gauge", "Connections to the HTTP front door.");
		write_json_counter(t, o, "requests_total",
		    "poold_http_requests_total", "counter",
		    "HTTP requests answered.");
		write_json_counter(t, o, "errors_total",
		    "poold_http_errors_total", "counter",
		    "HTTP requests answered with an error (not 2xx/3xx).");
		write_json_counter(t, o, "refused_total",
		    "poold_http_refused_total", "counter",
		    "HTTP connections refused (max_conns).");
		write_json_counter(t, o, "bytes_out",
		    "poold_http_sent_bytes_total", "counter",
		    "Bytes sent to HTTP clients.");
		json_decref(o);
	}
	if ((o = events_stats(d)) != NULL) {
		write_json_counter(t, o, "subscribers",
		    "poold_event_subscribers", "gauge",
		    "Connections subscribed to the event stream.");
		write_json_counter(t, o, "sent", "poold_events_sent_total",
		    "counter", "Events sent to subscribers.");
		write_json_counter(t, o, "dropped",
		    "poold_event_subscribers_dropped_total", "counter",
		    "Subscribers dropped for not reading.");
		json_decref(o);
	}
}

char *
metrics_text(struct daemon *d, size_t *len)
{
	struct mtext t = { 0 };
	struct mset ms;
	const struct pool *p = d->pool;

	*len = 0;
	if (models_pick(p, &ms) == -1)
		return NULL;
	family(&t, "poold_build_info", "gauge", "poold's version (always 1).");
	mt_add(&t, "poold_build_info{version=\"", 26);
	mt_label(&t, POOLD_VERSION);
	mt_add(&t, "\"} 1\n", 5);
	family(&t, "poold_uptime_seconds", "gauge", "Time since poold "
	    "started.");
	sample_seconds(&t, "poold_uptime_seconds", "",
	    daemon_now() - p->started_at);
	write_memory(&t, d);
	write_pool(&t, d);
	write_models(&t, &ms);
	write_others(&t, d);
	free(ms.m);
	if (t.failed || t.buf == NULL) {
		free(t.buf);
		return NULL;
	}
	*len = t.len;
	return t.buf;
}

void
cmd_metrics(struct session *s, const struct proto_request *req)
{
	char *text;
	size_t len;

	if ((text = metrics_text(s->d, &len)) == NULL) {
		cmd_reply_json(s, req, NULL);
		return;
	}
	cmd_reply_json(s, req, json_pack("{s:s%}", "text", text, len));
	free(text);
}
