/*
 * daemon.c — the running daemon: the pool's effects, the catalog, STATS.
 *
 * It implements struct pool_ops with child.c and control.c, keeps one
 * ev_timer at the pool's next deadline, and turns the pool's state into
 * the JSON of STATS and MODELS.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "poold.h"

#ifdef __APPLE__
#define MTIME_NSEC(st)	((st).st_mtimespec.tv_nsec)
#else
#define MTIME_NSEC(st)	((st).st_mtim.tv_nsec)
#endif

pool_ms
daemon_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (pool_ms)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the pool's effects --- */

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
	return child_port_free(port);
}

static void
op_log(void *ctx, const char *line)
{
	log_info("%s", line);
}

static const struct pool_ops daemon_ops = {
	.spawn = op_spawn,
	.stop = op_stop,
	.answer = dispatch_answer,	/* finds its session from the waiter */
	.port_free = op_port_free,
	.log = op_log,
	.available = measure_available,
};

/* --- the catalog --- */

static uint64_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}


static void
catalog_found(void *ctx, const char *name, const char *path)
{
	struct daemon *d = ctx;
	const struct model_conf *mc;
	struct model_entry *e;
	struct pool_model *m;
	pool_ms idle;

	if (pool_model_find(d->pool, name) != NULL)
		return;
	if (!proto_model_name_ok(name)) {
		log_warnx("%s: skipped: '%s' is not a usable model name "
		    "(letters, digits, '.', '_', '-', '+')", path, name);
		return;
	}
	mc = config_model(d->conf, name);
	idle = mc != NULL && mc->idle_timeout_ms >= 0 ? mc->idle_timeout_ms :
	    d->conf->idle_timeout_ms;
	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->path = strdup(path)) == NULL ||
	    (m = pool_model_add(d->pool, name, d->conf->per_model, idle))
	    == NULL) {
		if (e != NULL)
			free(e->path);
		free(e);
		log_warnx("%s: out of memory", path);
		return;
	}
	e->conf = mc;
	e->size = file_size(path);
	m->udata = e;
	/* The header is read when the model is first asked for (lazily:
	 * 10,000 files must not delay the start). */
	estimate_model(d, m, false);
	log_debug("model %s: %s", name, path);
}

/* The folder's mtime changes when a file is added, renamed or removed. */
static bool
models_dir_changed(struct daemon *d)
{
	struct stat st;

	if (stat(d->conf->models_dir, &st) == -1)
		return true;
	return st.st_mtime != d->scan_mtime.tv_sec ||
	    MTIME_NSEC(st) != d->scan_mtime.tv_nsec;
}

int
daemon_rescan(struct daemon *d, char *err, size_t len)
{
	size_t before = d->pool->nmodels;
	struct stat st;

	d->last_scan = daemon_now();
	if (stat(d->conf->models_dir, &st) == 0) {
		d->scan_mtime.tv_sec = st.st_mtime;
		d->scan_mtime.tv_nsec = MTIME_NSEC(st);
	}
	if (catalog_scan(d->conf->models_dir, catalog_found, d, err, len) == -1)
		return -1;
	if (d->pool->nmodels != before)
		log_info("catalog: %zu models in %s (%zu new)",
		    d->pool->nmodels, d->conf->models_dir,
		    d->pool->nmodels - before);
	return 0;
}

struct pool_model *
daemon_model(struct daemon *d, const char *name)
{
	struct pool_model *m;
	char err[256];

	if ((m = pool_model_find(d->pool, name)) != NULL) {
		estimate_first_use(d, m);
		return m;
	}
	/*
	 * A new file can be used without a restart.  Unknown names cost a
	 * stat(2), a full scan only when the folder changed (or, for file
	 * systems with coarse times, when the last scan is a while ago).
	 */
	if (!models_dir_changed(d) &&
	    daemon_now() - d->last_scan < CATALOG_RESCAN_MIN_MS)
		return NULL;
	if (daemon_rescan(d, err, sizeof(err)) == -1)
		log_warnx("%s", err);
	if ((m = pool_model_find(d->pool, name)) != NULL)
		estimate_first_use(d, m);
	return m;
}

/* --- STATS and MODELS --- */

static json_t *
counters_json(const struct pool_counters *k)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
	    " s:I, s:I}",
	    "acquires", (json_int_t)k->acquires, "hits", (json_int_t)k->hits,
	    "misses", (json_int_t)k->misses,
	    "releases", (json_int_t)k->releases,
	    "starts", (json_int_t)k->starts,
	    "start_failures", (json_int_t)k->start_failures,
	    "crashes", (json_int_t)k->crashes,
	    "evictions", (json_int_t)k->evictions,
	    "idle_stops", (json_int_t)k->idle_stops,
	    "admin_stops", (json_int_t)k->admin_stops,
	    "busy", (json_int_t)k->busy, "timeouts", (json_int_t)k->timeouts);
}

static json_t *
server_json(const struct pool_server *srv, pool_ms now)
{
	pool_ms idle = srv->leases == 0 && srv->state == POOL_READY ?
	    now - srv->last_used : 0;
	pool_ms load = srv->state == POOL_STARTING ? now - srv->spawned_at :
	    srv->ready_at > 0 ? srv->ready_at - srv->spawned_at : 0;

	const struct model_entry *e = srv->model->udata;

	return json_pack("{s:s, s:s, s:i, s:I, s:i, s:I, s:I, s:I, s:I, s:I,"
	    " s:s, s:I}",
	    "model", srv->model->name, "state", pool_state_name(srv->state),
	    "port", srv->port, "pid", (json_int_t)srv->pid,
	    "leases", (int)srv->leases, "idle_ms", (json_int_t)idle,
	    "uptime_ms", (json_int_t)(now - srv->spawned_at),
	    "load_ms", (json_int_t)load, "mem", (json_int_t)srv->mem,
	    "estimate", (json_int_t)srv->estimate,
	    "estimate_source", estimate_source_name(e->source),
	    "rss", (json_int_t)srv->rss);
}

static json_t *
model_counters_json(const struct pool *p, const struct pool_model *m,
    pool_ms now)
{
	const struct pool_counters *k = &m->counters;

	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
	    "model", m->name, "state", pool_model_state(p, m, now),
	    "hits", (json_int_t)k->hits,
	    "misses", (json_int_t)k->misses,
	    "evictions", (json_int_t)k->evictions,
	    "crashes", (json_int_t)k->crashes,
	    "start_failures", (json_int_t)k->start_failures,
	    "last_load_ms", (json_int_t)m->last_load_ms,
	    "failures", (json_int_t)m->failures, "last_error", m->last_error);
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

json_t *
daemon_stats(struct daemon *d)
{
	const struct pool *p = d->pool;
	const struct pool_server *srv;
	pool_ms now = daemon_now();
	json_t *servers = json_array(), *o;

	TAILQ_FOREACH(srv, &p->servers, link)
		json_array_append_new(servers, server_json(srv, now));
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
	return o;
}

static int
by_name(const void *a, const void *b)
{
	const struct pool_model *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static json_t *
model_json(const struct pool *p, const struct pool_model *m)
{
	const struct model_entry *e = m->udata;
	json_t *o;

	o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "model", m->name, "path",
	    e->path, "memory", (json_int_t)m->mem, "source",
	    estimate_source_name(e->source), "state",
	    pool_model_state(p, m, daemon_now()));
	if (o != NULL && m->server != NULL)
		json_object_set_new(o, "port", json_integer(m->server->port));
	return o;
}

static int
by_size(const void *a, const void *b)
{
	const struct pool_model *const *x = a, *const *y = b;

	return (*x)->mem < (*y)->mem ? -1 : (*x)->mem > (*y)->mem;
}

/* The catalog, by name: people read it. */
json_t *
daemon_models(struct daemon *d)
{
	struct pool_model *m, **all;
	size_t n = 0;
	json_t *a;
	char err[256];

	if (daemon_rescan(d, err, sizeof(err)) == -1)
		log_warnx("%s", err);
	if ((a = json_array()) == NULL ||
	    (all = calloc(d->pool->nmodels + 1, sizeof(*all))) == NULL) {
		json_decref(a);
		return NULL;
	}
	for (size_t i = 0; i < d->pool->nbuckets; i++)
		for (m = d->pool->models[i]; m != NULL; m = m->hash_next)
			all[n++] = m;
	qsort(all, n, sizeof(*all), by_name);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, model_json(d->pool, all[i]));
	free(all);
	return json_pack("{s:s, s:o}", "models_dir", d->conf->models_dir,
	    "models", a);
}

/* --- poold --budget --- */

static void
print_model_line(FILE *f, const struct pool_model *m, const struct budget *b)
{
	const struct model_entry *e = m->udata;
	char disk[32], est[32];

	fprintf(f, "%-32s %10s %10s  %s%s\n", m->name,
	    pool_format_size(file_size(e->path), disk, sizeof(disk)),
	    pool_format_size(m->mem, est, sizeof(est)),
	    estimate_source_name(e->source),
	    m->mem > b->budget ? "   (more than the budget)" : "");
}

/*
 * Reads every header (an offline command may take its time) and says how
 * many of the smallest would fit at once.
 */
int
daemon_print_catalog(struct config *conf, const struct budget *b, FILE *f)
{
	static const struct pool_ops no_ops;
	struct pool_limits lim = { .budget = b->budget, .port_min = 1,
	    .port_max = 1 };
	struct daemon d;
	struct pool_model *m, **all;
	uint64_t sum = 0;
	size_t n = 0, fit = 0;
	char err[256];

	memset(&d, 0, sizeof(d));
	d.lock_fd = -1;
	d.conf = conf;
	d.learned = state_read_models(conf->state_file);
	if ((d.pool = pool_new(&lim, &no_ops, &d, 0)) == NULL ||
	    daemon_rescan(&d, err, sizeof(err)) == -1 ||
	    (all = calloc(d.pool->nmodels + 1, sizeof(*all))) == NULL) {
		fprintf(f, "\ncatalog: %s\n", d.pool ? err : "out of memory");
		daemon_fini(&d);
		return -1;
	}
	for (size_t i = 0; i < d.pool->nbuckets; i++)
		for (m = d.pool->models[i]; m != NULL; m = m->hash_next) {
			estimate_model(&d, m, true);
			all[n++] = m;
		}
	qsort(all, n, sizeof(*all), by_size);
	for (size_t i = 0; i < n && sum + all[i]->mem <= b->budget &&
	    fit < b->max_servers; i++, fit++)
		sum += all[i]->mem;
	qsort(all, n, sizeof(*all), by_name);
	fprintf(f, "\n%zu models in %s; the %zu smallest fit at once\n\n"
	    "%-32s %10s %10s  %s\n", n, conf->models_dir, fit, "MODEL",
	    "ON DISK", "ESTIMATE", "SOURCE");
	for (size_t i = 0; i < n; i++)
		print_model_line(f, all[i], b);
	free(all);
	daemon_fini(&d);
	return 0;
}

/* --- the loop's housekeeping --- */

static void
pool_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	pool_tick(d->pool, daemon_now());
}

/* Before the loop sleeps: replies out, dead clients closed, timer set. */
static void
prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct daemon *d = w->data;
	pool_ms now, next;

	control_reap(d->control);
	measure_update(d);
	if (d->state_dirty) {
		state_save(d);
		d->state_dirty = false;
	}
	if (d->stopping && d->pool->nservers == 0) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	now = daemon_now();
	next = pool_next_deadline(d->pool, now);
	ev_timer_stop(loop, &d->pool_timer);
	if (next >= 0) {
		/* +1 ms: libev may fire a hair early; the tick must see it due. */
		ev_timer_set(&d->pool_timer, (double)(next - now + 1) / 1000, 0);
		ev_timer_start(loop, &d->pool_timer);
	}
}

void
daemon_shutdown(struct daemon *d)
{
	if (d->stopping) {
		log_warnx("second signal: killing %u servers now",
		    d->pool->nservers);
		child_kill_all(d);
		return;
	}
	log_info("shutting down: stopping %u servers", d->pool->nservers);
	d->stopping = true;
	control_close_listener(d->control);
	pool_shutdown(d->pool, daemon_now());
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	char err[256];

	if (w->signum == SIGHUP) {
		log_info("SIGHUP: rescanning %s", d->conf->models_dir);
		if (daemon_rescan(d, err, sizeof(err)) == -1)
			log_warnx("%s", err);
		return;
	}
	daemon_shutdown(d);
}

/* --- start and end --- */

/* One poold per socket: a second one stops here, the first serves on. */
static int
take_lock(struct daemon *d, const char *sock, char *err, size_t len)
{
	char pid[32] = "";
	ssize_t n;
	int fd;

	if (asprintf(&d->lock_path, "%s.lock", sock) == -1) {
		d->lock_path = NULL;
		snprintf(err, len, "out of memory");
		return -1;
	}
	fd = open(d->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(err, len, "%s: %s", d->lock_path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		n = read(fd, pid, sizeof(pid) - 1);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, len, "another poold%s%s%s is serving %s",
		    pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", sock);
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || write(fd, pid, (size_t)n) != n)
		log_warn("%s", d->lock_path);
	d->lock_fd = fd;
	return 0;
}

static void
watch_signal(struct daemon *d, ev_signal *w, int sig)
{
	ev_signal_init(w, signal_cb, sig);
	w->data = d;
	ev_signal_start(d->loop, w);
}

int
daemon_init(struct daemon *d, struct ev_loop *loop, struct config *conf,
    char *err, size_t len)
{
	struct pool_limits lim;

	memset(d, 0, sizeof(*d));
	d->loop = loop;
	d->conf = conf;
	d->lock_fd = -1;
	if (budget_compute(conf, &d->budget, err, len) == -1)
		return -1;
	memset(&lim, 0, sizeof(lim));
	lim.budget = d->budget.budget;
	lim.max_servers = d->budget.max_servers;
	lim.port_min = conf->port_min;
	lim.port_max = conf->port_max;
	lim.start_timeout = conf->start_timeout_ms;
	lim.max_waiters = conf->max_waiters;
	lim.max_failures = conf->max_failures;
	lim.failed_cooldown = conf->failed_cooldown_ms;
	lim.min_available = conf->min_available;
	lim.policy = conf->eviction_gds ? POOL_POLICY_GDS : POOL_POLICY_LRU;
	if ((d->pool = pool_new(&lim, &daemon_ops, d, daemon_now())) == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	pool_lease_epoch(d->pool, entropy_lease_epoch());
	if (control_socket_dir(conf, err, len) == -1 ||
	    take_lock(d, conf->socket, err, len) == -1)
		return -1;
	/* Under the lock, before serving: leftovers die, estimates load. */
	state_load(d);
	if (daemon_rescan(d, err, len) == -1)
		return -1;
	state_save(d);
	if ((d->control = control_open(d, err, len)) == NULL)
		return -1;
	ev_timer_init(&d->pool_timer, pool_timer_cb, 0, 0);
	d->pool_timer.data = d;
	ev_prepare_init(&d->prepare, prepare_cb);
	d->prepare.data = d;
	ev_prepare_start(loop, &d->prepare);
	watch_signal(d, &d->sig_term, SIGTERM);
	watch_signal(d, &d->sig_int, SIGINT);
	watch_signal(d, &d->sig_hup, SIGHUP);
	return 0;
}

void
daemon_fini(struct daemon *d)
{
	struct pool_model *m;
	struct model_entry *e;

	control_free(d->control);
	d->control = NULL;
	/* The lock file stays: unlinking it would let two daemons lock two
	 * different files of one name. */
	free(d->lock_path);
	if (d->lock_fd != -1)
		close(d->lock_fd);
	for (size_t i = 0; d->pool != NULL && i < d->pool->nbuckets; i++)
		for (m = d->pool->models[i]; m != NULL; m = m->hash_next) {
			if ((e = m->udata) != NULL) {
				free(e->path);
				free(e);
			}
		}
	if (d->loop != NULL) {
		state_save(d);
		ev_timer_stop(d->loop, &d->sampler);
	}
	pool_free(d->pool);
	d->pool = NULL;
	json_decref(d->learned);
}
