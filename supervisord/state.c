/*
 * state.c — what poold remembers across its own restarts.
 *
 * One JSON file, written whole and renamed into place (never half
 * written): the servers running now (pid + start time of the leader and
 * of the descendants last seen, the process group, the cgroup; so a poold
 * that was SIGKILLed has its leftovers killed by the next one before it
 * serves), each model's peak measured memory (the next start's
 * estimate), each model's use and the PIN/UNPIN decisions (usage.c).
 *
 *   {"version":1,"pid":4240,
 *    "servers":[{"model":"1984","pid":4242,"start":123456,"pgid":4242,
 *      "port":8080,"tree":[[4250,123470]],
 *      "cgroup":"/sys/fs/cgroup/poold.4240.1"}],
 *    "models":{"1984":{"peak_rss":19327352832,"size":17179869184,
 *                      "mtime_ns":1733300000000000000,"ino":131074}},
 *    "usage":{"1984":{"acquires":12,"hits":9,"cold_starts":3,
 *      "failed_starts":0,"loads":3,"load_ms_total":2400,"last_load_ms":790,
 *      "leased_ms":86000,"last_used":1764925000000,"freq":3.2,
 *      "freq_at":1764925100000}},
 *    "pins":{"1984":"pinned","7b":"unpinned"}}
 *
 * Usage changes with every ACQUIRE: it is written at most every 30 s
 * while it changes and at the end (usage.c), so a kill -9 loses at most
 * the last 30 s of counts; a PIN or UNPIN is written before it is
 * answered.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "poold.h"

#define STATE_VERSION		1
#define LEFTOVER_POLL_MS	10

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Still the same process?  (A zombie or a reused pid is not.) */
static bool
same_process(pid_t pid, uint64_t start)
{
	uint64_t now_start;

	return platform_process_start_time(pid, &now_start) == 0 &&
	    now_start == start;
}

/*
 * A leftover server of an earlier poold: the processes we may signal.
 * Only a process whose pid and start time both match what was recorded
 * is one of them; its group may be signalled while such a member of it
 * is alive (a live member keeps the group's id from being reused).
 */
#define LEFTOVER_PIDS_MAX	(CHILD_TREE_MAX + 1)

struct leftover {
	const char	*model;
	pid_t		 pgid;
	size_t		 n;
	pid_t		 pid[LEFTOVER_PIDS_MAX];
	uint64_t	 start[LEFTOVER_PIDS_MAX];
};

/* How many recorded processes are still the same processes. */
static size_t
leftover_alive(const struct leftover *l)
{
	size_t alive = 0;

	for (size_t i = 0; i < l->n; i++)
		if (same_process(l->pid[i], l->start[i]))
			alive++;
	return alive;
}

static void
leftover_signal(const struct leftover *l, int sig)
{
	bool group = false;

	for (size_t i = 0; i < l->n; i++) {
		if (!same_process(l->pid[i], l->start[i]))
			continue;
		if (getpgid(l->pid[i]) == l->pgid)
			group = true;
		(void)kill(l->pid[i], sig);
	}
	if (group && l->pgid > 1)
		(void)kill(-l->pgid, sig);
}

/* Waits up to ms for every recorded process to go; true if they went. */
static bool
leftover_wait(const struct leftover *l, long ms)
{
	for (long waited = 0; waited < ms; waited += LEFTOVER_POLL_MS) {
		if (leftover_alive(l) == 0)
			return true;
		sleep_ms(LEFTOVER_POLL_MS);
	}
	return leftover_alive(l) == 0;
}

/* A server of a poold that died without stopping it: end its tree. */
static void
kill_leftover(const struct config *conf, const struct leftover *l)
{
	size_t alive = leftover_alive(l);

	if (alive == 0)
		return;
	log_warnx("leftover %s pid %ld from an earlier poold: stopping it "
	    "(%zu of its processes)", l->model, (long)l->pid[0], alive);
	leftover_signal(l, SIGTERM);
	if (leftover_wait(l, (long)conf->stop_timeout_ms))
		return;
	leftover_signal(l, SIGKILL);
	if (!leftover_wait(l, 1000))
		log_warnx("leftover %s pid %ld does not die", l->model,
		    (long)l->pid[0]);
}

/*
 * A cgroup of an earlier poold's server: everything in it is that
 * server's tree (a grandchild that called setsid() included).
 */
static void
kill_leftover_cgroup(const char *model, const char *path)
{
	long waited;

	if (!cgroup_populated(path)) {
		(void)cgroup_remove(path);
		return;
	}
	log_warnx("leftover %s in cgroup %s from an earlier poold: killing it",
	    model, path);
	for (waited = 0; waited < 5000 && cgroup_populated(path);
	    waited += LEFTOVER_POLL_MS) {
		(void)cgroup_kill(path);
		sleep_ms(LEFTOVER_POLL_MS);
	}
	if (cgroup_remove(path) == -1 && errno != ENOENT)
		log_warn("leftover %s: cgroup %s", model, path);
}

/* {"model", "pid", "start", "pgid", "tree": [[pid, start], ...]} */
static int
leftover_parse(json_t *s, struct leftover *l)
{
	json_int_t pid, start, pgid = 0, tp, ts;
	json_t *tree = NULL, *t;
	size_t i;

	memset(l, 0, sizeof(*l));
	if (json_unpack(s, "{s:s, s:I, s:I, s?I, s?o}", "model", &l->model,
	    "pid", &pid, "start", &start, "pgid", &pgid, "tree", &tree) == -1 ||
	    pid <= 1)
		return -1;
	l->pgid = (pid_t)(pgid > 1 ? pgid : pid);	/* version 1: setsid */
	l->pid[0] = (pid_t)pid;
	l->start[0] = (uint64_t)start;
	l->n = 1;
	json_array_foreach(tree, i, t) {
		if (l->n == LEFTOVER_PIDS_MAX)
			break;
		if (json_unpack(t, "[II]", &tp, &ts) == -1 || tp <= 1)
			continue;
		l->pid[l->n] = (pid_t)tp;
		l->start[l->n++] = (uint64_t)ts;
	}
	return 0;
}

static void
kill_leftovers(const struct config *conf, json_t *servers)
{
	struct leftover l;
	const char *cg;
	json_t *s;
	size_t i;

	json_array_foreach(servers, i, s) {
		if (leftover_parse(s, &l) == -1)
			continue;
		if (json_unpack(s, "{s:s}", "cgroup", &cg) == 0 &&
		    strncmp(cg, "/", 1) == 0 && strstr(cg, "/poold.") != NULL)
			kill_leftover_cgroup(l.model, cg);
		kill_leftover(conf, &l);
	}
}

/* The learned estimates alone, for poold --budget: nothing is killed. */
json_t *
state_read_models(const char *path)
{
	json_t *root, *models, *out = json_object();

	if (path == NULL ||
	    (root = json_load_file(path, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return out;
	if ((models = json_object_get(root, "models")) != NULL &&
	    json_is_object(models))
		json_object_update(out, models);
	json_decref(root);
	return out;
}

int
state_load(struct daemon *d)
{
	const char *path = d->conf->state_file;
	json_error_t jerr;
	json_t *root, *servers, *models;

	d->learned = json_object();
	if (path == NULL)
		return 0;
	if ((root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr))
	    == NULL) {
		if (access(path, F_OK) == 0)
			log_warnx("%s: ignored: %s", path, jerr.text);
		return 0;
	}
	if ((servers = json_object_get(root, "servers")) != NULL &&
	    json_is_array(servers))
		kill_leftovers(d->conf, servers);
	if ((models = json_object_get(root, "models")) != NULL &&
	    json_is_object(models))
		json_object_update(d->learned, models);
	usage_load(json_object_get(root, "usage"), json_object_get(root,
	    "pins"));
	json_decref(root);
	return 0;
}

void
state_read_usage(const char *path)
{
	json_t *root = NULL;

	if (path != NULL)
		root = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
	usage_load(json_object_get(root, "usage"), json_object_get(root,
	    "pins"));
	json_decref(root);
}

/* A recorded figure of the file's identity differs from the file's now. */
static bool
differs(json_t *m, const char *key, uint64_t now)
{
	json_t *v = json_object_get(m, key);

	return v != NULL && json_is_integer(v) &&
	    (uint64_t)json_integer_value(v) != now;
}

/*
 * A model's learned peak, if it was learned from the file that is there
 * now (same size, mtime and inode): a new file is a new model.  Records
 * of an older poold carry the size alone.
 */
uint64_t
state_learned(const struct daemon *d, const char *model,
    const struct model_entry *e)
{
	json_t *m = json_object_get(d->learned, model), *v;

	if (m == NULL || (v = json_object_get(m, "peak_rss")) == NULL ||
	    !json_is_integer(v) || json_integer_value(v) <= 0)
		return 0;
	if (e->size > 0 && (differs(m, "size", e->size) ||
	    differs(m, "mtime_ns", (uint64_t)e->mtime_ns) ||
	    differs(m, "ino", e->ino)))
		return 0;
	return (uint64_t)json_integer_value(v);
}

/*
 * The highest peak seen, so a short idle run does not talk the estimate
 * down below what a busy one needed.
 */
void
state_learn(struct daemon *d, const char *model, const struct model_entry *e,
    uint64_t peak)
{
	uint64_t before = state_learned(d, model, e);

	if (peak < before)
		peak = before;
	json_object_set_new(d->learned, model, json_pack("{s:I, s:I, s:I, s:I}",
	    "peak_rss", (json_int_t)peak, "size", (json_int_t)e->size,
	    "mtime_ns", (json_int_t)e->mtime_ns, "ino", (json_int_t)e->ino));
}

static json_t *
server_json(const struct pool_server *srv, const struct child *c)
{
	json_t *o, *tree = json_array();

	for (size_t i = 0; i < c->ntree; i++)
		json_array_append_new(tree, json_pack("[II]",
		    (json_int_t)c->tree[i].pid, (json_int_t)c->tree[i].start));
	o = json_pack("{s:s, s:I, s:I, s:I, s:i, s:o}", "model",
	    srv->model->name, "pid", (json_int_t)c->pid, "start",
	    (json_int_t)c->start_time, "pgid", (json_int_t)c->pid, "port",
	    srv->port, "tree", tree);
	if (o != NULL && c->cgroup[0] != '\0')
		json_object_set_new(o, "cgroup", json_string(c->cgroup));
	return o;
}

static json_t *
servers_json(const struct daemon *d)
{
	const struct pool_server *srv;
	const struct child *c;
	json_t *a = json_array();

	TAILQ_FOREACH(srv, &d->pool->servers, link) {
		if ((c = srv->udata) == NULL || c->start_time == 0)
			continue;
		json_array_append_new(a, server_json(srv, c));
	}
	return a;
}

static int
make_parent_dir(const char *path)
{
	char buf[PATH_MAX], *dir;

	snprintf(buf, sizeof(buf), "%s", path);
	dir = dirname(buf);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

void
state_save(struct daemon *d)
{
	const char *path = d->conf->state_file;
	char tmp[PATH_MAX];
	json_t *root;
	int rc;

	if (path == NULL || d->pool == NULL)
		return;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return;
	root = json_pack("{s:i, s:I, s:o, s:O}", "version", STATE_VERSION,
	    "pid", (json_int_t)getpid(), "servers", servers_json(d),
	    "models", d->learned);
	if (root == NULL)
		return;
	usage_state_json(d, root);
	(void)make_parent_dir(path);
	rc = json_dump_file(root, tmp, JSON_COMPACT);
	json_decref(root);
	if (rc == -1 || rename(tmp, path) == -1) {
		/* ENOSPC and friends: say it, keep serving. */
		if (!d->state_warned)
			log_warn("%s: cannot write the state file", path);
		d->state_warned = true;
		(void)unlink(tmp);
		return;
	}
	d->state_warned = false;
}
