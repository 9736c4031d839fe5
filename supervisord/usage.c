/*
 * usage.c — what models are used for, across restarts; pins; preloading.
 *
 * The pool counts each model's use (struct pool_usage, monotonic times).
 * This file keeps it across poold's restarts: the state file holds it
 * with wall-clock times (unix ms), converted both ways here, and is
 * written at most every USAGE_SAVE_MS while use changes, and at the end.
 * It also gives each model its class (priority) and idle timeout, takes
 * PIN and UNPIN, and preloads: at start the models of "preload", later
 * (preload_refill) the next most popular one when the pool is quiet.
 *
 * Pool events reach usage_pool_event() from inside the pool, which must
 * not be called back: anything it starts waits for a 0 s timer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "poold.h"

/* Usage is written at most this often while it changes (and at exit). */
#define USAGE_SAVE_MS		(30LL * 1000)
/* The usage of a model whose file is gone is forgotten once it has not
 * been used for this long; past USAGE_GONE_MAX such models, the least
 * recently used go first. */
#define USAGE_FORGET_MS		(30LL * 24 * 3600 * 1000)
#define USAGE_GONE_MAX		1024
#define USAGE_COUNT_MAX		(UINT64_C(1) << 53)
/* STATS "usage": this many models, the most used first. */
#define USAGE_STATS_MAX		50
/* A preloader that must wait (ACQUIREs want the room) looks again. */
#define USAGE_PRELOAD_RETRY_MS	1000

/* The state file's "pins": what PIN and UNPIN decided. */
#define PIN_PINNED		"pinned"
#define PIN_UNPINNED		"unpinned"	/* config pins it; UNPIN said no */

/* One running poold per process: its usage bookkeeping. */
static struct usage {
	struct daemon	*d;		/* serving, once usage_start() ran */
	json_t		*saved;		/* model -> usage, wall clock */
	json_t		*pins;		/* model -> PIN_PINNED / PIN_UNPINNED */
	json_t		*final;		/* usage_fini()'s, for the last save */
	ev_prepare	 watch;		/* notices use and quiet */
	ev_timer	 save_timer;
	uint64_t	 saved_mark;	/* activity() at the last save */
	/* Preloading: one start at a time. */
	char		**queue;	/* "preload"'s models, in order */
	size_t		 nqueue, next;
	unsigned	 preload_left;	/* "preload": N, still to load */
	char		 loading[PROTO_MODEL_NAME_MAX + 1]; /* "": none */
	ev_timer	 step_timer;	/* the next step, out of pool events */
	/* Refill when quiet. */
	ev_timer	 refill_timer;
	pool_ms		 refill_seen;	/* pool->last_request when armed */
	bool		 refill_kick;	/* the last refill is in: next one */
	bool		 refilling;	/* loading is the refill's */
} U;

/* --- clocks --- */

static int64_t
wall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A pool time as unix ms (0 stays 0: never). */
static int64_t
to_wall(pool_ms t, pool_ms now, int64_t wall)
{
	return t == 0 ? 0 : wall - (now - t);
}

/* Unix ms as a pool time; a time in the future (the clock was set back)
 * is now.  Never 0, which means never. */
static pool_ms
to_mono(int64_t w, pool_ms now, int64_t wall)
{
	pool_ms t;

	if (w <= 0)
		return 0;
	t = w >= wall ? now : now - (wall - w);
	return t == 0 ? -1 : t;
}

/* --- classes and idle timeouts --- */

static enum pool_priority
conf_priority(const struct model_conf *mc)
{
	return mc != NULL && mc->priority >= 0 ?
	    (enum pool_priority)mc->priority : POOL_PRIO_NORMAL;
}

/*
 * PIN leaves override = pinned, UNPIN of a model the config pins leaves
 * override = normal ("unpinned"); an override the config makes pointless
 * (a PIN of what the config pins now, an UNPIN of what it no longer
 * pins) is dropped, so the config decides again.
 */
static void
override_normalize(struct model_entry *e, const struct model_conf *mc)
{
	bool conf_pins = conf_priority(mc) == POOL_PRIO_PINNED;

	if ((e->priority_override == POOL_PRIO_PINNED && conf_pins) ||
	    (e->priority_override == POOL_PRIO_NORMAL && !conf_pins) ||
	    (e->priority_override != POOL_PRIO_PINNED &&
	    e->priority_override != POOL_PRIO_NORMAL))
		e->priority_override = -1;
}

static void
pins_record(const char *model, const struct model_entry *e)
{
	if (U.pins == NULL && (U.pins = json_object()) == NULL)
		return;
	if (e->priority_override == POOL_PRIO_PINNED)
		json_object_set_new(U.pins, model, json_string(PIN_PINNED));
	else if (e->priority_override == POOL_PRIO_NORMAL)
		json_object_set_new(U.pins, model, json_string(PIN_UNPINNED));
	else
		json_object_del(U.pins, model);
}

/* The shorter of two idle timeouts, 0 being never. */
static int64_t
shorter(int64_t a, int64_t b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

/* The model's own, else low_idle_timeout for low ones (never longer
 * than idle_timeout), else idle_timeout. */
static pool_ms
idle_for(const struct config *conf, const struct model_entry *e,
    enum pool_priority prio)
{
	if (e->conf != NULL && e->conf->idle_timeout_ms >= 0)
		return e->conf->idle_timeout_ms;
	if (prio == POOL_PRIO_LOW)
		return shorter(conf->low_idle_timeout_ms,
		    conf->idle_timeout_ms);
	return conf->idle_timeout_ms;
}

/*
 * m's class and idle timeout as the catalog says.  Pinning starts a
 * server, so it waits for usage_start() (and never happens offline).
 * -1 if a pin did not fit (m runs as high; logged), the reason in err
 * (which may be NULL).
 */
static int
class_apply(struct daemon *d, struct pool_model *m, char *err, size_t len)
{
	struct model_entry *e = m->udata;
	enum pool_priority prio = catalog_priority(e);
	char why[POOL_ERROR_MAX];

	m->idle_timeout = idle_for(d->conf, e, prio);
	if (prio == POOL_PRIO_PINNED && (U.d != d || e->gone))
		return 0;
	if (m->priority == prio)
		return 0;
	/* A pin is checked against the budget: with the header's figure,
	 * not per_model's guess. */
	if (prio == POOL_PRIO_PINNED)
		estimate_first_use(d, m);
	if (pool_set_priority(d->pool, daemon_now(), m, prio, why,
	    sizeof(why)) == 0)
		return 0;
	log_warnx("model %s: not pinned: %s; it runs as high", m->name, why);
	snprintf(err, len, "model %s runs as high, not pinned: %s", m->name,
	    why);
	(void)pool_set_priority(d->pool, daemon_now(), m, POOL_PRIO_HIGH, why,
	    sizeof(why));
	return -1;
}

/* --- usage as JSON --- */

static bool
has_usage(const struct pool_usage *u)
{
	return u->acquires + u->cold_starts + u->failed_starts + u->loads +
	    u->leased_ms > 0 || u->freq > 0;
}

/* The state file's form: times in unix ms, freq as of freq_at. */
static json_t *
usage_saved_json(const struct pool *p, const struct pool_model *m,
    pool_ms now, int64_t wall)
{
	const struct pool_usage *u = &m->usage;

	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f,"
	    " s:I}",
	    "acquires", (json_int_t)u->acquires, "hits", (json_int_t)u->hits,
	    "cold_starts", (json_int_t)u->cold_starts,
	    "failed_starts", (json_int_t)u->failed_starts,
	    "loads", (json_int_t)u->loads,
	    "load_ms_total", (json_int_t)u->load_ms_total,
	    "last_load_ms", (json_int_t)u->last_load_ms,
	    "leased_ms", (json_int_t)pool_usage_leased_ms(p, m, now),
	    "last_used", (json_int_t)to_wall(u->last_used, now, wall),
	    "freq", pool_usage_freq(p, m, now),
	    "freq_at", (json_int_t)wall);
}

static uint64_t
count_at(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	json_int_t i = json_is_integer(v) ? json_integer_value(v) : 0;

	/* The state file is input: a count or a time past 2^53 (285,000
	 * years of ms) is no real one, and sums of it must not overflow. */
	if (i <= 0)
		return 0;
	return (uint64_t)i < USAGE_COUNT_MAX ? (uint64_t)i : USAGE_COUNT_MAX;
}

/* Back from the state file: times made the pool's, freq decayed over
 * the time poold was away. */
static void
usage_from_saved(json_t *o, struct pool_usage *u, pool_ms now, int64_t wall,
    int64_t half_life)
{
	json_t *f = json_object_get(o, "freq");
	int64_t at = (int64_t)count_at(o, "freq_at");
	double freq = json_is_number(f) ? json_number_value(f) : 0;

	memset(u, 0, sizeof(*u));
	u->acquires = count_at(o, "acquires");
	u->hits = count_at(o, "hits");
	u->cold_starts = count_at(o, "cold_starts");
	u->failed_starts = count_at(o, "failed_starts");
	u->loads = count_at(o, "loads");
	u->load_ms_total = count_at(o, "load_ms_total");
	u->last_load_ms = (pool_ms)count_at(o, "last_load_ms");
	u->leased_ms = count_at(o, "leased_ms");
	u->last_used = to_mono((int64_t)count_at(o, "last_used"), now, wall);
	if (!isfinite(freq) || freq < 0)
		freq = 0;
	if (at > 0 && at < wall && half_life > 0)
		freq *= exp2(-(double)(wall - at) / (double)half_life);
	u->freq = freq;
	u->freq_at = now;
}

json_t *
usage_json(struct daemon *d, const struct pool_model *m)
{
	const struct pool_usage *u = &m->usage;
	pool_ms now = daemon_now();

	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}",
	    "acquires", (json_int_t)u->acquires, "hits", (json_int_t)u->hits,
	    "cold_starts", (json_int_t)u->cold_starts,
	    "failed_starts", (json_int_t)u->failed_starts,
	    "loads", (json_int_t)u->loads,
	    "load_ms_total", (json_int_t)u->load_ms_total,
	    "last_load_ms", (json_int_t)u->last_load_ms,
	    "leased_ms", (json_int_t)pool_usage_leased_ms(d->pool, m, now),
	    "last_used", (json_int_t)to_wall(u->last_used, now, wall_now_ms()),
	    "freq", pool_usage_freq(d->pool, m, now));
}

/* --- the most used --- */

struct ranked {
	struct pool_model	*m;
	double			 freq;
};

static int
by_freq(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->freq != y->freq)
		return x->freq < y->freq ? 1 : -1;
	if (x->m->usage.last_used != y->m->usage.last_used)
		return x->m->usage.last_used < y->m->usage.last_used ? 1 : -1;
	return strcmp(x->m->name, y->m->name);
}

/* The catalog's models that were ever used, most used first (malloc'd;
 * NULL if out of memory). */
static struct ranked *
ranked_models(struct daemon *d, size_t *np)
{
	struct pool_model *m;
	struct model_entry *e;
	struct ranked *r;
	pool_ms now = daemon_now();
	size_t n = 0;

	if ((r = calloc(d->pool->nmodels + 1, sizeof(*r))) == NULL)
		return NULL;
	for (size_t i = 0; i < d->pool->nbuckets; i++)
		for (m = d->pool->models[i]; m != NULL; m = m->hash_next) {
			e = m->udata;
			if (e == NULL || e->gone || !has_usage(&m->usage))
				continue;
			r[n].m = m;
			r[n++].freq = pool_usage_freq(d->pool, m, now);
		}
	qsort(r, n, sizeof(*r), by_freq);
	*np = n;
	return r;
}

json_t *
usage_stats(struct daemon *d)
{
	struct ranked *r;
	json_t *a = json_array(), *o;
	size_t n;

	if (a == NULL || (r = ranked_models(d, &n)) == NULL)
		return a;
	for (size_t i = 0; i < n && i < USAGE_STATS_MAX; i++) {
		if ((o = usage_json(d, r[i].m)) == NULL)
			continue;
		json_object_set_new(o, "model", json_string(r[i].m->name));
		json_object_set_new(o, "priority", json_string(
		    pool_priority_name(catalog_priority(r[i].m->udata))));
		json_array_append_new(a, o);
	}
	free(r);
	return a;
}

/* --- the state file --- */

void
usage_load(json_t *usage, json_t *pins)
{
	json_decref(U.saved);
	json_decref(U.pins);
	U.saved = json_is_object(usage) ? json_deep_copy(usage) : NULL;
	U.pins = json_is_object(pins) ? json_deep_copy(pins) : NULL;
	if (U.saved == NULL)
		U.saved = json_object();
	if (U.pins == NULL)
		U.pins = json_object();
}

struct gone_entry {
	const char	*model;
	int64_t		 last_used;
};

static int
by_last_used(const void *a, const void *b)
{
	const struct gone_entry *x = a, *y = b;

	return x->last_used < y->last_used ? -1 : x->last_used > y->last_used;
}

/*
 * Models that left the catalog keep their usage (a file moved away and
 * back is the same model to its users) until it is USAGE_FORGET_MS old;
 * past USAGE_GONE_MAX of them the oldest go.
 */
static void
forget_gone(struct daemon *d, int64_t wall)
{
	struct gone_entry *g;
	struct pool_model *m;
	const char *k;
	json_t *v;
	void *tmp;
	size_t n = 0;

	json_object_foreach_safe(U.saved, tmp, k, v) {
		if ((m = pool_model_find(d->pool, k)) != NULL &&
		    !((struct model_entry *)m->udata)->gone)
			continue;
		if ((int64_t)count_at(v, "last_used") + USAGE_FORGET_MS < wall)
			json_object_del(U.saved, k);
		else
			n++;
	}
	if (n <= USAGE_GONE_MAX || (g = calloc(n, sizeof(*g))) == NULL)
		return;
	n = 0;
	json_object_foreach(U.saved, k, v)
		if ((m = pool_model_find(d->pool, k)) == NULL ||
		    ((struct model_entry *)m->udata)->gone) {
			g[n].model = k;
			g[n++].last_used = (int64_t)count_at(v, "last_used");
		}
	qsort(g, n, sizeof(*g), by_last_used);
	/* Keys are deleted after the walk: g points into them. */
	for (size_t i = 0; i + USAGE_GONE_MAX < n; i++)
		g[i].model = strdup(g[i].model);
	for (size_t i = 0; i + USAGE_GONE_MAX < n; i++)
		if (g[i].model != NULL) {
			json_object_del(U.saved, g[i].model);
			free((char *)g[i].model);
		}
	free(g);
}

/* Every model's usage now into U.saved, the gone ones' trimmed. */
static void
remember_all(struct daemon *d)
{
	struct pool_model *m;
	pool_ms now = daemon_now();
	int64_t wall = wall_now_ms();

	if (U.saved == NULL && (U.saved = json_object()) == NULL)
		return;
	for (size_t i = 0; i < d->pool->nbuckets; i++)
		for (m = d->pool->models[i]; m != NULL; m = m->hash_next)
			if (has_usage(&m->usage))
				json_object_set_new(U.saved, m->name,
				    usage_saved_json(d->pool, m, now, wall));
	forget_gone(d, wall);
}

void
usage_state_json(struct daemon *d, json_t *root)
{
	if (U.final != NULL) {
		json_object_set(root, "usage", U.final);
	} else if (d->pool != NULL && !d->offline) {
		remember_all(d);
		if (U.saved != NULL)
			json_object_set(root, "usage", U.saved);
	}
	if (U.pins != NULL)
		json_object_set(root, "pins", U.pins);
}

/* --- the catalog --- */

void
usage_model_added(struct daemon *d, struct pool_model *m)
{
	struct model_entry *e = m->udata;
	struct pool_usage u;
	const char *pin;
	json_t *saved;

	pin = json_string_value(json_object_get(U.pins, m->name));
	if (pin != NULL && strcmp(pin, PIN_PINNED) == 0)
		e->priority_override = POOL_PRIO_PINNED;
	else if (pin != NULL && strcmp(pin, PIN_UNPINNED) == 0)
		e->priority_override = POOL_PRIO_NORMAL;
	override_normalize(e, e->conf);
	if (pin != NULL)
		pins_record(m->name, e);
	if ((saved = json_object_get(U.saved, m->name)) != NULL &&
	    json_is_object(saved)) {
		usage_from_saved(saved, &u, daemon_now(), wall_now_ms(),
		    d->conf->usage_half_life_ms);
		pool_usage_restore(d->pool, m, &u);
	}
	(void)class_apply(d, m, NULL, 0);
}

/*
 * The class the pool gives m: the catalog's, but a pin that could not
 * be applied (it did not fit beside the others) runs as what it got.
 */
enum pool_priority
usage_priority(const struct daemon *d, const struct pool_model *m)
{
	const struct model_entry *e = m->udata;
	enum pool_priority prio = catalog_priority(e);

	if (prio == POOL_PRIO_PINNED && U.d == d && !e->gone &&
	    m->priority != POOL_PRIO_PINNED)
		return m->priority;
	return prio;
}

/* The class a model would have under conf (a reload checks a new one). */
static enum pool_priority
priority_under(const struct config *conf, const struct pool_model *m)
{
	const struct model_entry *e = m->udata;
	const struct model_conf *mc = config_model(conf, m->name);
	bool conf_pins = conf_priority(mc) == POOL_PRIO_PINNED;

	if (e->priority_override == POOL_PRIO_PINNED)
		return POOL_PRIO_PINNED;
	if (e->priority_override == POOL_PRIO_NORMAL && conf_pins)
		return POOL_PRIO_NORMAL;
	return conf_priority(mc);
}

int
usage_check_pins(struct daemon *d, const struct config *conf,
    uint64_t budget, char *err, size_t len)
{
	struct pool_model **all;
	char names[768] = "", s1[32], s2[32];
	uint64_t sum = 0, mem;
	size_t n, at = 0;
	int w;

	if ((all = catalog_sorted(d, &n)) == NULL)
		return 0;	/* out of memory: the pool still refuses */
	for (size_t i = 0; i < n; i++) {
		if (priority_under(conf, all[i]) != POOL_PRIO_PINNED)
			continue;
		/* The header's figure, not per_model's guess. */
		mem = estimate_under(d, conf, all[i]);
		sum = pool_sat_add(sum, mem);
		w = snprintf(names + at, sizeof(names) - at, "%s%s (%s)",
		    at > 0 ? ", " : "", all[i]->name,
		    pool_format_size(mem, s1, sizeof(s1)));
		if (w > 0 && at + (size_t)w < sizeof(names))
			at += (size_t)w;
	}
	free(all);
	if (sum <= budget)
		return 0;
	snprintf(err, len, "the pinned models need %s together, more than "
	    "the budget %s: %s", pool_format_size(sum, s1, sizeof(s1)),
	    pool_format_size(budget, s2, sizeof(s2)), names);
	return -1;
}

/* Unpins first, so the pins that follow find the room they free. */
int
usage_apply(struct daemon *d, char *err, size_t len)
{
	struct pool_model **all;
	struct model_entry *e;
	size_t n;
	int rc = 0;

	if (usage_check_pins(d, d->conf, d->pool->lim.budget, err, len) == -1)
		return -1;
	if ((all = catalog_sorted(d, &n)) == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		e = all[i]->udata;
		override_normalize(e, e->conf);
		pins_record(all[i]->name, e);
		if (catalog_priority(e) != POOL_PRIO_PINNED)
			(void)class_apply(d, all[i], NULL, 0);
	}
	/* Every pin is tried; the first that did not fit is the error. */
	for (size_t i = 0; i < n; i++)
		if (catalog_priority(all[i]->udata) == POOL_PRIO_PINNED &&
		    class_apply(d, all[i], rc == 0 ? err : NULL,
		    rc == 0 ? len : 0) == -1)
			rc = -1;
	free(all);
	if (U.d == d && d->conf->preload_refill_ms > 0)
		U.refill_kick = true;
	return rc;
}

/* --- PIN and UNPIN --- */

void
cmd_pin(struct session *s, const struct proto_request *req, bool pin)
{
	struct daemon *d = s->d;
	struct pool_model *m;
	struct model_entry *e;
	enum pool_priority prio, conf_prio;
	char msg[PROTO_MESSAGE_MAX], err[POOL_ERROR_MAX];

	if ((m = daemon_model(d, req->model)) == NULL) {
		snprintf(msg, sizeof(msg), "no model named '%s' in %s (a "
		    "model is a file NAME.gguf there)", req->model,
		    d->conf->models_dir);
		dispatch_error(s, req->id, PROTO_E_UNKNOWN_MODEL, msg);
		return;
	}
	e = m->udata;
	conf_prio = conf_priority(e->conf);
	if (pin) {
		estimate_first_use(d, m);
		if (m->priority != POOL_PRIO_PINNED &&
		    pool_set_priority(d->pool, daemon_now(), m,
		    POOL_PRIO_PINNED, err, sizeof(err)) == -1) {
			log_info("client %lu: PIN %s refused: %s", s->serial,
			    m->name, err);
			dispatch_error(s, req->id, PROTO_E_TOO_LARGE, err);
			return;
		}
		e->priority_override = conf_prio == POOL_PRIO_PINNED ? -1 :
		    POOL_PRIO_PINNED;
	} else {
		e->priority_override = conf_prio == POOL_PRIO_PINNED ?
		    POOL_PRIO_NORMAL : -1;
		(void)class_apply(d, m, NULL, 0);
	}
	prio = catalog_priority(e);
	m->idle_timeout = idle_for(d->conf, e, prio);
	pins_record(m->name, e);
	/* On disk before the answer: a PIN answered survives a kill -9. */
	state_save(d);
	log_info("client %lu: %s %s: now %s", s->serial, pin ? "PIN" :
	    "UNPIN", m->name, pool_priority_name(prio));
	events_emit(d, pin ? "pin" : "unpin", json_pack("{s:s}", "model",
	    m->name));
	cmd_reply_json(s, req, json_pack("{s:s, s:s}", "model", m->name,
	    "priority", pool_priority_name(prio)));
}

/* --- preloading --- */

static void
step_soon(void)
{
	if (U.d != NULL && !ev_is_active(&U.step_timer)) {
		ev_timer_set(&U.step_timer, 0, 0);
		ev_timer_start(U.d->loop, &U.step_timer);
	}
}

static bool
can_preload(const struct pool_model *m)
{
	const struct model_entry *e = m->udata;

	return e != NULL && !e->gone && !m->retired && m->server == NULL;
}

/*
 * Tries to start m without a request.  1: started, wait for its ready;
 * 0: nothing to wait for (already running, or it cannot start now).
 */
static int
preload_one(struct daemon *d, struct pool_model *m, bool refill)
{
	const char *why = refill ? "refill" : "preload";
	char err[POOL_ERROR_MAX];

	if (!can_preload(m))
		return 0;
	estimate_first_use(d, m);
	if (pool_preload(d->pool, daemon_now(), m, err, sizeof(err)) == -1) {
		/* A refill tries model after model: that is no news. */
		if (refill)
			log_debug("%s %s: not now: %s", why, m->name, err);
		else
			log_info("%s %s: not now: %s", why, m->name, err);
		return 0;
	}
	if (m->server == NULL)
		return 0;
	log_info("%s %s", why, m->name);
	snprintf(U.loading, sizeof(U.loading), "%s", m->name);
	U.refilling = refill;
	return 1;
}

static void
queue_free(void)
{
	for (size_t i = 0; i < U.nqueue; i++)
		free(U.queue[i]);
	free(U.queue);
	U.queue = NULL;
	U.nqueue = U.next = 0;
}

/* The next of "preload", while none is loading. */
static void
preload_step(struct daemon *d)
{
	struct pool_model *m;

	if (U.loading[0] != '\0' || d->stopping)
		return;
	while (U.next < U.nqueue) {
		/* ACQUIREs wait for room: they go first, we look again. */
		if (!TAILQ_EMPTY(&d->pool->pending)) {
			ev_timer_set(&U.step_timer, (double)
			    USAGE_PRELOAD_RETRY_MS / 1000, 0);
			ev_timer_start(d->loop, &U.step_timer);
			return;
		}
		if (U.preload_left == 0)
			break;
		/* By name: a model whose file went meanwhile is freed. */
		if ((m = pool_model_find(d->pool, U.queue[U.next++])) == NULL)
			continue;
		if (m->server != NULL) {
			U.preload_left--;	/* running already: counts */
			continue;
		}
		if (preload_one(d, m, false) == 1) {
			U.preload_left--;
			return;
		}
	}
	if (U.nqueue > 0)
		log_info("preload: done");
	queue_free();
}

static void
step_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	preload_step(U.d);
}

/* "preload": the list as given, or the N most used, most used first. */
static void
preload_plan(struct daemon *d)
{
	const struct config *conf = d->conf;
	struct pool_model *m;
	struct ranked *r;
	size_t n;

	if (conf->npreload_list > 0) {
		U.queue = calloc(conf->npreload_list, sizeof(*U.queue));
		for (size_t i = 0; U.queue != NULL &&
		    i < conf->npreload_list; i++) {
			if ((m = pool_model_find(d->pool,
			    conf->preload_list[i])) == NULL ||
			    ((struct model_entry *)m->udata)->gone) {
				log_warnx("preload: no model %s in %s",
				    conf->preload_list[i], conf->models_dir);
				continue;
			}
			if ((U.queue[U.nqueue] = strdup(m->name)) != NULL)
				U.nqueue++;
		}
		U.preload_left = (unsigned)U.nqueue;
	} else if (conf->preload_n > 0 &&
	    (r = ranked_models(d, &n)) != NULL) {
		U.queue = calloc(n + 1, sizeof(*U.queue));
		for (size_t i = 0; U.queue != NULL && i < n; i++)
			if (r[i].freq > 0 && (U.queue[U.nqueue] =
			    strdup(r[i].m->name)) != NULL)
				U.nqueue++;
		free(r);
		U.preload_left = conf->preload_n;
	}
	if (U.nqueue > 0)
		log_info("preload: up to %u of %zu models, most used first",
		    U.preload_left, U.nqueue);
}

/* --- refill when quiet --- */

static void
refill_arm(struct daemon *d, pool_ms in)
{
	ev_timer_stop(d->loop, &U.refill_timer);
	ev_timer_set(&U.refill_timer, (double)(in > 0 ? in : 0) / 1000, 0);
	ev_timer_start(d->loop, &U.refill_timer);
}

static void
refill_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = U.d;
	struct pool *p = d->pool;
	pool_ms now = daemon_now(), quiet = d->conf->preload_refill_ms;
	pool_ms since = p->last_request > 0 ? p->last_request : p->started_at;
	struct ranked *r;
	size_t n;

	U.refill_seen = p->last_request;
	U.refill_kick = false;
	if (quiet <= 0 || d->stopping)
		return;
	if (now - since < quiet) {
		refill_arm(d, since + quiet - now);
		return;
	}
	/* One start at a time: the preloader's, or the last refill's. */
	if (U.loading[0] != '\0' || U.nqueue > 0 ||
	    !TAILQ_EMPTY(&p->pending) || (r = ranked_models(d, &n)) == NULL)
		return;
	/* The most popular that fits; once it is in, the next (kick). */
	for (size_t i = 0; i < n; i++)
		if (r[i].freq > 0 && preload_one(d, r[i].m, true) == 1)
			break;
	free(r);
}

/* --- watching use --- */

/* Grows whenever a model's use changes. */
static uint64_t
activity(const struct pool *p)
{
	const struct pool_counters *k = &p->counters;

	return k->acquires + k->releases + k->starts + k->start_failures +
	    k->crashes + p->nleases;
}

static void
save_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = U.d;

	U.saved_mark = activity(d->pool);
	state_save(d);
}

/*
 * Before the loop sleeps: a change of use schedules a save.  A request
 * (ACQUIRE, RELEASE) starts a new wait for quiet; after it, refill starts
 * one model after another while they fit, then waits for the next
 * request: a model refill started and idle_timeout stopped is not
 * started again for nothing.
 */
static void
watch_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct daemon *d = U.d;
	struct pool *p = d->pool;
	pool_ms since;

	if (activity(p) != U.saved_mark && !ev_is_active(&U.save_timer) &&
	    !d->stopping) {
		ev_timer_set(&U.save_timer, (double)USAGE_SAVE_MS / 1000, 0);
		ev_timer_start(loop, &U.save_timer);
	}
	if (d->conf->preload_refill_ms <= 0 || d->stopping ||
	    ev_is_active(&U.refill_timer) ||
	    (p->last_request == U.refill_seen && !U.refill_kick))
		return;
	since = p->last_request > 0 ? p->last_request : p->started_at;
	U.refill_seen = p->last_request;
	U.refill_kick = false;
	refill_arm(d, since + d->conf->preload_refill_ms - daemon_now());
}

void
usage_pool_event(struct daemon *d, const struct pool_event *ev)
{
	if (U.d != d || ev->model == NULL || U.loading[0] == '\0' ||
	    strcmp(ev->model->name, U.loading) != 0)
		return;
	if (ev->kind != POOL_EV_READY && ev->kind != POOL_EV_EXIT &&
	    ev->kind != POOL_EV_FAILED)
		return;
	U.loading[0] = '\0';
	/* Not from inside the pool: a timer, or the prepare watcher. */
	if (U.refilling)
		U.refill_kick = true;
	else
		step_soon();
	U.refilling = false;
}

/* --- start and end --- */

static void
warn_unknown_pins(struct daemon *d)
{
	const struct model_conf *mc;
	struct pool_model *m;

	for (size_t i = 0; i < d->conf->nmodels; i++) {
		mc = &d->conf->models[i];
		if (conf_priority(mc) != POOL_PRIO_PINNED)
			continue;
		if ((m = pool_model_find(d->pool, mc->name)) == NULL ||
		    ((struct model_entry *)m->udata)->gone)
			log_warnx("model %s is pinned but has no file in %s",
			    mc->name, d->conf->models_dir);
	}
}

void
usage_start(struct daemon *d)
{
	struct pool_model **all;
	size_t n;

	U.d = d;
	U.saved_mark = activity(d->pool);
	U.refill_seen = -1;
	ev_timer_init(&U.save_timer, save_cb, 0, 0);
	ev_timer_init(&U.step_timer, step_cb, 0, 0);
	ev_timer_init(&U.refill_timer, refill_cb, 0, 0);
	ev_prepare_init(&U.watch, watch_cb);
	ev_prepare_start(d->loop, &U.watch);
	warn_unknown_pins(d);
	/* Pinned first: they are started by being pinned. */
	if ((all = catalog_sorted(d, &n)) != NULL) {
		for (size_t i = 0; i < n; i++)
			if (catalog_priority(all[i]->udata) ==
			    POOL_PRIO_PINNED)
				(void)class_apply(d, all[i], NULL, 0);
		free(all);
	}
	preload_plan(d);
	preload_step(d);
}

void
usage_fini(struct daemon *d)
{
	if (U.d != d)
		return;
	ev_prepare_stop(d->loop, &U.watch);
	ev_timer_stop(d->loop, &U.save_timer);
	ev_timer_stop(d->loop, &U.step_timer);
	ev_timer_stop(d->loop, &U.refill_timer);
	queue_free();
	/* The last save comes after the catalog is freed: keep it now. */
	remember_all(d);
	U.final = U.saved;
	U.saved = NULL;
	state_save(d);
	U.d = NULL;
}
