/*
 * state.c — what poold remembers across its own restarts.
 *
 * One JSON file, written whole and renamed into place (never half
 * written): the servers running now (pid + start time, so a poold that
 * was SIGKILLed has its leftovers killed by the next one before it
 * serves) and each model's peak measured memory (the next start's
 * estimate).
 *
 *   {"version":1,"pid":4240,
 *    "servers":[{"model":"1984","pid":4242,"start":123456,"port":8080}],
 *    "models":{"1984":{"peak_rss":19327352832,"size":17179869184,
 *                      "mtime_ns":1733300000000000000,"ino":131074}}}
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

/* Waits up to ms for the process to go; true if it went. */
static bool
wait_gone(pid_t pid, uint64_t start, long ms)
{
	for (long waited = 0; waited < ms; waited += LEFTOVER_POLL_MS) {
		if (!same_process(pid, start))
			return true;
		sleep_ms(LEFTOVER_POLL_MS);
	}
	return !same_process(pid, start);
}

/* A server of a poold that died without stopping it: end its group. */
static void
kill_leftover(const struct config *conf, const char *model, pid_t pid,
    uint64_t start)
{
	if (!same_process(pid, start))
		return;
	log_warnx("leftover %s pid %ld from an earlier poold: stopping it",
	    model, (long)pid);
	(void)kill(-pid, SIGTERM);
	(void)kill(pid, SIGTERM);
	if (wait_gone(pid, start, (long)conf->stop_timeout_ms))
		return;
	(void)kill(-pid, SIGKILL);
	(void)kill(pid, SIGKILL);
	if (!wait_gone(pid, start, 1000))
		log_warnx("leftover %s pid %ld does not die", model,
		    (long)pid);
}

static void
kill_leftovers(const struct config *conf, json_t *servers)
{
	json_t *s;
	size_t i;
	json_int_t pid, start;
	const char *model;

	json_array_foreach(servers, i, s) {
		if (json_unpack(s, "{s:s, s:I, s:I}", "model", &model, "pid",
		    &pid, "start", &start) == -1 || pid <= 1)
			continue;
		kill_leftover(conf, model, (pid_t)pid, (uint64_t)start);
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
	json_decref(root);
	return 0;
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
servers_json(const struct daemon *d)
{
	const struct pool_server *srv;
	const struct child *c;
	json_t *a = json_array();

	TAILQ_FOREACH(srv, &d->pool->servers, link) {
		if ((c = srv->udata) == NULL || c->start_time == 0)
			continue;
		json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:i}",
		    "model", srv->model->name, "pid", (json_int_t)c->pid,
		    "start", (json_int_t)c->start_time, "port", srv->port));
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
