/*
 * measure.c — how much memory a model takes: estimated, then measured.
 *
 * The estimate a server is accounted at its start comes from, in order:
 * the config's explicit "memory" (always wins), the peak measured on the
 * model's last run (the state file), the GGUF header, and per_model.
 * While servers run, their resident memory is sampled every rss_interval
 * and each is accounted max(estimate, measured); nothing is sampled when
 * nothing runs.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <string.h>

#include "gguf.h"
#include "poold.h"

#define SAMPLE_QUIET_MAX_S	64.0

const char *
estimate_source_name(enum estimate_source s)
{
	switch (s) {
	case EST_CONFIG:	return "config";
	case EST_LEARNED:	return "learned";
	case EST_GGUF:		return "gguf";
	case EST_DEFAULT:	return "default";
	}
	return "default";
}

/*
 * The header's estimate with tmpl's -c, -np and cache types; 0 if the
 * file is not a GGUF we understand, or its header is too long to read on
 * the loop (*too_long).
 */
static uint64_t
header_estimate(const struct daemon *d, const char *path,
    char *const *tmpl, bool *too_long)
{
	struct gguf_model gm;
	struct gguf_params gp;
	struct gguf_estimate ge;
	char err[256];
	int rc;

	*too_long = false;
	/* On the loop, a bounded read: a giant header must not stall it. */
	rc = gguf_read_file_max(path, d->offline ? GGUF_HEADER_MAX_BYTES :
	    ESTIMATE_HEADER_MAX_BYTES, &gm, err, sizeof(err));
	if (rc == GGUF_HEADER_TOO_LONG) {
		*too_long = true;
		log_info("estimate %s: %s; not read while serving: using the "
		    "file's size or per_model, whichever is more", path, err);
		return 0;
	}
	if (rc != 0) {
		log_debug("estimate %s: %s; using per_model", path, err);
		return 0;
	}
	gguf_params_from_argv(tmpl, &gp);	/* sets the defaults first */
	gguf_estimate(&gm, &gp, &ge);
	return ge.total;
}

/* Reads the header once. */
static uint64_t
gguf_bytes(const struct daemon *d, struct model_entry *e)
{
	if (!e->gguf_read) {
		e->gguf_read = true;
		e->gguf = header_estimate(d, e->path,
		    config_command(d->conf, e->conf), &e->header_too_long);
	}
	return e->gguf;
}

/* A model takes at least its weights: the file, near enough. */
static uint64_t
default_estimate(const struct config *conf, const struct model_entry *e,
    bool too_long)
{
	return too_long && e->size > conf->per_model ? e->size :
	    conf->per_model;
}

/*
 * Does the model's server offload to the GPU, and to which GPUs?  Its
 * command and env say: a server does not inherit poold's environment
 * (child.c).  With no GPU it takes, it takes nothing there.
 */
static void
model_gpus(const struct daemon *d, const struct model_entry *e,
    struct pool_model *m)
{
	char *const *tmpl = config_command(d->conf, e->conf);
	char *const *env = e->conf != NULL ? e->conf->env : NULL;
	struct gpu_placement pl;

	m->gpu_mem = memtruth_gpu_bytes(m->mem, memtruth_gpu_layers(tmpl, env,
	    NULL));
	if (d->budget.ngpus > 1 && m->gpu_mem > 0 &&
	    memtruth_gpu_placement(tmpl, env, d->budget.ngpus, &pl) == 0)
		m->gpu_mem = 0;
	else if (d->budget.ngpus > 1 && m->gpu_mem > 0) {
		memcpy(m->gpu_share, pl.share, sizeof(m->gpu_share));
		m->gpu_by_free = pl.by_free;
	}
}

void
estimate_model(struct daemon *d, struct pool_model *m, bool read_file)
{
	struct model_entry *e = m->udata;
	uint64_t learned;

	if (e->conf != NULL && e->conf->memory > 0) {
		m->mem = e->conf->memory;
		e->source = EST_CONFIG;
	} else if ((learned = state_learned(d, m->name, e)) > 0) {
		m->mem = learned;
		e->source = EST_LEARNED;
	} else if ((read_file || e->gguf_read) && gguf_bytes(d, e) > 0) {
		m->mem = e->gguf;
		e->source = EST_GGUF;
	} else {
		m->mem = default_estimate(d->conf, e, e->header_too_long);
		e->source = EST_DEFAULT;
	}
	model_gpus(d, e, m);
}

/*
 * What m would be accounted at its first start under conf, the header
 * read (a reload checks a new config's pins with this before it commits;
 * at the commit, estimate_model() gives the same figure).  Changes
 * nothing.
 */
uint64_t
estimate_under(const struct daemon *d, const struct config *conf,
    const struct pool_model *m)
{
	const struct model_entry *e = m->udata;
	const struct model_conf *mc = config_model(conf, m->name);
	char *const *tmpl = config_command(conf, mc);
	uint64_t v;
	bool too_long;

	if (mc != NULL && mc->memory > 0)
		return mc->memory;
	if ((v = state_learned(d, m->name, e)) > 0)
		return v;
	if ((v = header_estimate(d, e->path, tmpl, &too_long)) > 0)
		return v;
	return default_estimate(conf, e, too_long);
}

/*
 * The first time a model is asked for, its header may be read.  Later
 * lookups (every ACQUIRE) do nothing: a learned peak updates the
 * estimate when it is learned (measure_learn).
 */
void
estimate_first_use(struct daemon *d, struct pool_model *m)
{
	struct model_entry *e = m->udata;

	if (!e->asked_for) {
		e->asked_for = true;
		estimate_model(d, m, true);
	}
}

/* A server ended: its peak is the model's estimate next time. */
void
measure_learn(struct daemon *d, const struct pool_server *srv)
{
	struct pool_model *m = srv->model;
	const struct model_entry *e = m->udata;

	/* A server of a file since replaced says nothing of the new one. */
	if (srv->peak_rss == 0 || srv->ready_at == 0 ||
	    srv->spawned_at < e->identity_since)
		return;
	state_learn(d, m->name, m->udata, srv->peak_rss);
	estimate_model(d, m, false);
}

/* --- sampling --- */

static uint64_t
system_available(void)
{
	uint64_t avail;

	return platform_available_memory(&avail) == 0 ? avail : UINT64_MAX;
}

/*
 * The pool's decisions read this figure; they must not wait for /proc or
 * a cgroup file, so the daemon samples it (measure_system) and the pool
 * gets the sample.
 */
uint64_t
measure_available(void *ctx)
{
	struct daemon *d = ctx;

	return d->sys_available;
}

void
measure_system(struct daemon *d)
{
	d->sys_available = system_available();
	d->sys_sampled_at = daemon_now();
}

/* Before a decision that may start a server, if the sample is old. */
void
measure_system_fresh(struct daemon *d)
{
	if (daemon_now() - d->sys_sampled_at >= SYSTEM_SAMPLE_MS)
		measure_system(d);
}

static void
system_sample_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	measure_system(w->data);
}

/*
 * While requests wait or servers start, the figure is kept fresh for the
 * decisions a reap, a RELEASE or a tick may bring.  A quiet pool does not
 * sample: an ACQUIRE takes a fresh figure (measure_system_fresh), and so
 * does every RSS sample.
 */
static void
system_sampler_update(struct daemon *d)
{
	bool busy = pool_waiting(d->pool) > 0 ||
	    pool_any_in(d->pool, POOL_STARTING);

	if (busy && !ev_is_active(&d->sys_sampler)) {
		ev_timer_init(&d->sys_sampler, system_sample_cb,
		    (double)SYSTEM_SAMPLE_MS / 1000,
		    (double)SYSTEM_SAMPLE_MS / 1000);
		d->sys_sampler.data = d;
		ev_timer_start(d->loop, &d->sys_sampler);
	} else if (!busy && ev_is_active(&d->sys_sampler))
		ev_timer_stop(d->loop, &d->sys_sampler);
}

/* What changes memory: requests and starts. */
static uint64_t
activity(const struct pool *p)
{
	return p->counters.acquires + p->counters.releases +
	    p->counters.starts;
}

/*
 * Servers grow while they load and serve; an idle pool does not change.
 * So every rss_interval while anything happens, and twice as long after
 * each quiet sample, up to SAMPLE_QUIET_MAX_S: a quiet poold sleeps.
 */
static void
sample_schedule(struct daemon *d)
{
	ev_tstamp every = (double)d->conf->rss_interval_ms / 1000;
	uint64_t now_activity = activity(d->pool);

	if (now_activity != d->sample_activity || pool_any_in(d->pool, POOL_STARTING) ||
	    d->sample_every <= 0)
		d->sample_every = every;
	else if (d->sample_every < SAMPLE_QUIET_MAX_S)
		d->sample_every *= 2;
	if (d->sample_every > SAMPLE_QUIET_MAX_S && every < SAMPLE_QUIET_MAX_S)
		d->sample_every = SAMPLE_QUIET_MAX_S;
	d->sample_activity = now_activity;
	ev_timer_set(&d->sampler, d->sample_every, 0);
	ev_timer_start(d->loop, &d->sampler);
}

static void
sample_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	struct pool_server *srv, *tsrv;
	uint64_t rss, gpu[POOL_GPUS_MAX], sum = 0;
	pool_ms now = daemon_now();

	/* The system's figure of the same instant as the servers': a start
	 * decided on fresh RSS and a stale figure would count memory loaded
	 * in between as neither used nor still to come. */
	measure_system(d);
	TAILQ_FOREACH_SAFE(srv, &d->pool->servers, link, tsrv) {
		if (srv->udata == NULL || srv->pid <= 0 ||
		    ((const struct child *)srv->udata)->reaped ||
		    platform_tree_rss((pid_t)srv->pid, &rss) == -1)
			continue;
		sum += rss;
		/* Servers on the GPU: its figure too (NVML; on macOS the
		 * footprint again, the memory being one). */
		if (srv->gpu_estimate > 0 && platform_tree_gpu((pid_t)srv->pid,
		    gpu, d->pool->lim.ngpus) == 0)
			pool_measured_gpu(d->pool, now, srv, gpu,
			    d->pool->lim.ngpus);
		pool_measured(d->pool, now, srv, rss);
	}
	d->measured = sum;
	if (d->pool->nservers > 0)
		sample_schedule(d);
}

/* Called before the loop sleeps: sample only while servers run. */
void
measure_update(struct daemon *d)
{
	ev_tstamp every = (double)d->conf->rss_interval_ms / 1000;

	system_sampler_update(d);
	if (every <= 0)
		return;
	if (d->pool->nservers > 0 && !ev_is_active(&d->sampler)) {
		ev_init(&d->sampler, sample_cb);
		d->sampler.data = d;
		d->sample_every = 0;
		sample_schedule(d);
	} else if (d->pool->nservers == 0 && ev_is_active(&d->sampler)) {
		ev_timer_stop(d->loop, &d->sampler);
		d->measured = 0;
	} else if (ev_is_active(&d->sampler) && d->sample_every > every &&
	    activity(d->pool) != d->sample_activity) {
		/* It slept long and something happened: sample soon. */
		ev_timer_stop(d->loop, &d->sampler);
		d->sample_every = 0;
		sample_schedule(d);
	}
}
