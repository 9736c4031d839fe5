/*
 * reload.c — SIGHUP and RELOAD: a new config without a restart.
 *
 * The file is parsed into a new struct config and checked as a start
 * would check it (the budget, the GPUs, the pins, the aliases, the
 * front door's token); only when every check has passed does anything
 * change, so a refused reload leaves the running config as it was.
 * Then the new config takes the old one's place (d->conf keeps its
 * address: cluster.c and others point into it), the catalog's entries
 * are re-pointed into it, the limits go to the pool, and the old one is
 * freed.  Servers and connections stay: a smaller budget stops idle
 * servers (the pool core), a changed command applies at the next start.
 *
 * Some keys name things made once at the start (the socket, the ports,
 * the state file, the cluster's links, the HTTP listener): their running
 * values are kept, and the reply and the log say a restart is needed.
 * poold.json(5) has the table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "poold.h"

/* Where a key of the file takes effect. */
enum reload_when { AT_ONCE, NEXT_START, RESTART };

/* Keys not listed apply at once: they are read from d->conf where used. */
static const struct {
	const char		*key;
	enum reload_when	 when;
} reload_keys[] = {
	{ "socket",		RESTART },
	{ "socket_mode",	RESTART },
	{ "socket_group",	RESTART },
	{ "state_file",		RESTART },
	{ "ports",		RESTART },
	{ "models_dir",		RESTART },
	{ "cgroup",		RESTART },
	{ "cluster",		RESTART },
	{ "http.listen",	RESTART },
	{ "command",		NEXT_START },
	{ "api_keys",		NEXT_START },
	{ "log_dir",		NEXT_START },
};

static enum reload_when
key_when(const char *key)
{
	for (size_t i = 0; i < sizeof(reload_keys) / sizeof(reload_keys[0]);
	    i++)
		if (strcmp(reload_keys[i].key, key) == 0)
			return reload_keys[i].when;
	return AT_ONCE;
}

/* The file as JSON, for the comparison; NULL if it cannot be read. */
static json_t *
read_file_json(const char *path)
{
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);

	if (root != NULL && !json_is_object(root)) {
		json_decref(root);
		root = NULL;
	}
	return root;
}

void
reload_init(struct daemon *d)
{
	d->conf_json = d->conf->path != NULL ?
	    read_file_json(d->conf->path) : NULL;
}

/* Appends prefix+key to changed or to restart, by when it applies. */
static void
note_key(const char *prefix, const char *key, json_t *changed,
    json_t *restart)
{
	char name[256];

	snprintf(name, sizeof(name), "%s%s", prefix, key);
	json_array_append_new(key_when(name) == RESTART ? restart : changed,
	    json_string(name));
}

/* A section compared key by key ("http.max_body", "models.NAME"). */
static bool
by_subkey(const char *key)
{
	return strcmp(key, "http") == 0 || strcmp(key, "models") == 0;
}

/*
 * The keys whose values differ between the file as last applied and as
 * read now (an added or removed key differs too).  What the file says,
 * not the effective values: "20G" for "20480M" is a change, and a flag
 * (-m, -s, --http) that overrides the file is never one.
 */
static void
diff_keys(json_t *was, json_t *now, const char *prefix, json_t *changed,
    json_t *restart)
{
	const char *key;
	json_t *a, *b, *empty = json_object();
	char sub[64];

	json_object_foreach(now, key, b) {
		a = json_object_get(was, key);
		if (a != NULL && json_equal(a, b))
			continue;
		if (prefix[0] == '\0' && by_subkey(key) &&
		    (a == NULL || json_is_object(a)) && json_is_object(b)) {
			snprintf(sub, sizeof(sub), "%s.", key);
			diff_keys(a != NULL ? a : empty, b, sub, changed,
			    restart);
		} else
			note_key(prefix, key, changed, restart);
	}
	json_object_foreach(was, key, a) {
		if (json_object_get(now, key) != NULL)
			continue;
		if (prefix[0] == '\0' && by_subkey(key) && json_is_object(a)) {
			snprintf(sub, sizeof(sub), "%s.", key);
			diff_keys(a, empty, sub, changed, restart);
		} else
			note_key(prefix, key, changed, restart);
	}
	json_decref(empty);
}

/* In obj, key ("a" or "a.b") takes its value in from (or goes). */
static void
json_keep(json_t *obj, json_t *from, const char *key)
{
	const char *dot = strchr(key, '.');
	char top[64];
	json_t *sub, *fsub, *v;

	if (dot == NULL) {
		if ((v = json_object_get(from, key)) != NULL)
			json_object_set(obj, key, v);
		else
			json_object_del(obj, key);
		return;
	}
	snprintf(top, sizeof(top), "%.*s", (int)(dot - key), key);
	fsub = json_object_get(from, top);
	if ((sub = json_object_get(obj, top)) == NULL) {
		if (fsub == NULL || (v = json_object_get(fsub, dot + 1)) ==
		    NULL)
			return;
		json_object_set_new(obj, top, json_object());
		sub = json_object_get(obj, top);
	}
	json_keep(sub, fsub, dot + 1);	/* fsub NULL: no value there */
}

/*
 * What a reload leaves as "the file as applied": the file, but with the
 * running values of the keys that need a restart, so that the next
 * reload reports them again while the file still differs from what runs.
 */
static json_t *
as_applied(json_t *root, json_t *was, json_t *restart)
{
	json_t *out = json_deep_copy(root), *k;
	size_t i;

	if (out == NULL)
		return NULL;
	json_array_foreach(restart, i, k)
		json_keep(out, was, json_string_value(k));
	return out;
}

/* Every alias names a model and none is one: http_check_aliases's rule,
 * on the catalog just scanned, touching no file. */
static int
check_aliases(struct daemon *d, const struct config *nc, char *err,
    size_t len)
{
	const struct pool_model *m;

	for (size_t i = 0; i < nc->naliases; i++) {
		const char *alias = nc->aliases[2 * i];
		const char *model = nc->aliases[2 * i + 1];

		m = pool_model_find(d->pool, alias);
		if (config_model(nc, alias) != NULL || (m != NULL &&
		    !((const struct model_entry *)m->udata)->gone)) {
			snprintf(err, len, "alias \"%s\" is also the name of "
			    "a model", alias);
			return -1;
		}
		m = pool_model_find(d->pool, model);
		if (config_model(nc, model) == NULL && (m == NULL ||
		    ((const struct model_entry *)m->udata)->gone)) {
			snprintf(err, len, "alias \"%s\" names an unknown "
			    "model \"%s\" (not in %s nor in \"models\")",
			    alias, model, d->conf->models_dir);
			return -1;
		}
	}
	return 0;
}

/*
 * The checks a start makes, on the new config; nothing changes here but
 * the catalog (a rescan of the folder, which any lookup may do) and, last
 * of all, the front door's token and origins.
 */
static int
check_new(struct daemon *d, struct config *nc, struct budget *nb, char *err,
    size_t len)
{
	/* What the budget's server count is made of stays. */
	nc->port_min = d->conf->port_min;
	nc->port_max = d->conf->port_max;
	if (budget_compute(nc, nb, err, len) == -1)
		return -1;
	if (nb->ngpus != d->budget.ngpus) {
		snprintf(err, len, "the GPUs accounted went from %u to %u: "
		    "that takes a restart", d->budget.ngpus, nb->ngpus);
		return -1;
	}
	/* The folder first: a new file may be a model the new config pins. */
	if (daemon_rescan(d, err, len) == -1)
		return -1;
	if (usage_check_pins(d, nc, nb->budget, err, len) == -1)
		return -1;
	if (check_aliases(d, nc, err, len) == -1)
		return -1;
	return http_reconfigure(d->http, nc, err, len);
}

static void
swap_str(char **a, char **b)
{
	char *t = *a;

	*a = *b;
	*b = t;
}

/*
 * The keys that need a restart keep their running values: nc gets them,
 * old gets nc's (config_free of old frees those).  The cluster as a
 * whole: cluster.c holds &d->conf->cluster.
 */
static void
keep_running(struct config *nc, struct config *old, const json_t *root)
{
	struct cluster_conf k;

	swap_str(&nc->socket, &old->socket);
	nc->socket_mode = old->socket_mode;
	swap_str(&nc->socket_group, &old->socket_group);
	nc->socket_gid = old->socket_gid;
	swap_str(&nc->state_file, &old->state_file);
	nc->state_file_default = old->state_file_default;
	swap_str(&nc->models_dir, &old->models_dir);
	swap_str(&nc->server_host, &old->server_host);
	nc->cgroup_off = old->cgroup_off;
	swap_str(&nc->http.listen, &old->http.listen);
	k = nc->cluster;
	nc->cluster = old->cluster;
	old->cluster = k;
	/* In a cluster servers listen where others reach them: each must
	 * have a key unless the file says otherwise (as config_load). */
	if (nc->cluster.etcd != NULL && json_object_get(root, "api_keys") ==
	    NULL)
		nc->api_keys = true;
}

static bool
strv_equal(char *const *a, char *const *b)
{
	size_t i;

	for (i = 0; a != NULL && b != NULL && a[i] != NULL && b[i] != NULL;
	    i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return (a == NULL || a[i] == NULL) && (b == NULL || b[i] == NULL);
}

/* A new estimate, given to the pool through pool_model_add(), which
 * keeps the pinned models' sum right. */
static void
reestimate(struct daemon *d, struct pool_model *m, bool read_file)
{
	uint64_t was = m->mem, is;

	estimate_model(d, m, read_file);
	is = m->mem;
	m->mem = was;
	(void)pool_model_add(d->pool, m->name, is, m->idle_timeout);
}

/*
 * Every model, gone ones too, points into the new config; estimates
 * follow it (a changed command changes the header's estimate: -c, the
 * cache types).  Servers keep what they were accounted.
 */
static void
repoint_models(struct daemon *d, const struct config *old)
{
	struct pool_model *m;
	struct model_entry *e;
	bool again;

	for (size_t i = 0; i < d->pool->nbuckets; i++)
		for (m = d->pool->models[i]; m != NULL; m = m->hash_next) {
			e = m->udata;
			again = false;
			if (e->gguf_read) {
				char *const *was = config_command(old, e->conf);

				catalog_apply_conf(d, m);
				again = !strv_equal(was,
				    config_command(d->conf, e->conf));
			} else
				catalog_apply_conf(d, m);
			if (again) {
				e->gguf_read = e->header_too_long = false;
				e->gguf = 0;
			}
			/* Asked for: the header's figure (estimate_under()'s),
			 * even if a "memory" kept it unread until now. */
			reestimate(d, m, e->asked_for);
		}
}

/*
 * The new config is d->conf from here on.  The pins were checked with
 * the figures usage_apply() uses; should it fail all the same (out of
 * memory), the reload is applied and says what was not: -1, err.
 */
static int
commit(struct daemon *d, struct config *nc, const struct budget *nb,
    json_t *root, json_t *applied, char *err, size_t len)
{
	struct pool_limits lim;
	struct config old = *d->conf;
	int rc;
	bool sampling = d->conf->rss_interval_ms != nc->rss_interval_ms;

	keep_running(nc, &old, root);
	*d->conf = *nc;
	memset(nc, 0, sizeof(*nc));
	d->budget = *nb;
	repoint_models(d, &old);
	config_free(&old);
	budget_limits(d->conf, &d->budget, &lim);
	pool_set_limits(d->pool, daemon_now(), &lim);
	if ((rc = usage_apply(d, err, len)) == -1)
		log_warnx("reload: applied, but not the pins: %s", err);
	/* measure_update() starts it again on the new interval. */
	if (sampling)
		ev_timer_stop(d->loop, &d->sampler);
	json_decref(d->conf_json);
	d->conf_json = applied;
	return rc;
}

static void
log_keys(const char *what, const json_t *keys)
{
	char buf[1024];
	size_t i, off = 0;
	json_t *k;
	int n;

	if (json_array_size(keys) == 0)
		return;
	buf[0] = '\0';
	json_array_foreach(keys, i, k) {
		n = snprintf(buf + off, sizeof(buf) - off, "%s%s", i > 0 ?
		    ", " : "", json_string_value(k));
		if (n < 0 || (size_t)n >= sizeof(buf) - off)
			break;
		off += (size_t)n;
	}
	log_info("reload: %s: %s", what, buf);
}

static void
refused(struct daemon *d, const char *why)
{
	log_warnx("reload refused, the running config stays: %s", why);
	/* why may quote the file: it need not be UTF-8. */
	events_emit(d, "reload", json_pack("{s:b, s:o}", "refused", 1,
	    "message", proto_text(why)));
}

int
daemon_reload(struct daemon *d, json_t **report, char *err, size_t len)
{
	struct config nc;
	struct budget nb;
	json_t *root = NULL, *was, *changed, *restart, *out, *applied;
	uint64_t added = d->models_added, removed = d->models_removed;
	char size[32], pins_err[512];
	bool pins_failed = false;

	if (report != NULL)
		*report = NULL;
	if (d->stopping) {
		snprintf(err, len, "poold is shutting down");
		return -1;
	}
	changed = json_array();
	restart = json_array();
	config_defaults(&nc);
	if (d->conf->path == NULL) {
		/* Started without a file: the folder is all there is. */
		if (daemon_rescan(d, err, len) == -1)
			goto refuse;
		config_free(&nc);
	} else {
		/* Parsed twice (here for the keys, there for the config): a
		 * file changed in between is compared at the next reload. */
		if ((root = read_file_json(d->conf->path)) == NULL)
			root = json_object();
		if (config_load(&nc, d->conf->path, err, len) == -1 ||
		    check_new(d, &nc, &nb, err, len) == -1)
			goto refuse;
		was = d->conf_json != NULL ? json_incref(d->conf_json) :
		    json_object();
		diff_keys(was, root, "", changed, restart);
		applied = as_applied(root, was, restart);
		json_decref(was);
		if (commit(d, &nc, &nb, root, applied, pins_err,
		    sizeof(pins_err)) == -1)
			pins_failed = true;
	}
	added = d->models_added - added;
	removed = d->models_removed - removed;
	out = json_pack("{s:o, s:o, s:{s:I, s:I}}", "changed", changed,
	    "restart_needed", restart, "models", "added", (json_int_t)added,
	    "removed", (json_int_t)removed);
	if (pins_failed && out != NULL)
		json_object_set_new(out, "warning", proto_text(pins_err));
	log_keys("applied", changed);
	log_keys("kept until a restart", restart);
	log_info("reload: done: budget %s, %zu models (%llu added, %llu "
	    "removed)", pool_format_size(d->budget.budget, size, sizeof(size)),
	    d->pool->nmodels, (unsigned long long)added,
	    (unsigned long long)removed);
	events_emit(d, "reload", json_pack("{s:{s:O, s:O, s:O}}", "changed",
	    "keys", changed, "restart_needed", restart, "models",
	    json_object_get(out, "models")));
	if (report != NULL)
		*report = out;
	else
		json_decref(out);
	json_decref(root);
	return 0;
refuse:
	config_free(&nc);
	json_decref(root);
	json_decref(changed);
	json_decref(restart);
	refused(d, err);
	return -1;
}

void
cmd_reload(struct session *s, const struct proto_request *req)
{
	json_t *report;
	char err[PROTO_MESSAGE_MAX];

	if (daemon_reload(s->d, &report, err, sizeof(err)) == -1) {
		dispatch_error(s, req->id, s->d->stopping ?
		    PROTO_E_SHUTTING_DOWN : PROTO_E_BAD_REQUEST, err);
		return;
	}
	cmd_reply_json(s, req, report);
}
