/*
 * catalog.c — which models the folder holds.
 *
 * A model is "NAME.gguf", or the first part "NAME-00001-of-00003.gguf" of
 * a model split by gguf-split (llama-server finds the other parts itself).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "poold.h"

#define GGUF_SUFFIX	".gguf"
#define SPLIT_SUFFIX	"-00000-of-00000"	/* the shape of it */

static bool
digits5(const char *s)
{
	int	 i;

	for (i = 0; i < 5; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* base ends in "-NNNNN-of-NNNNN": its part number, else 0. */
static int
split_part(const char *base, size_t len)
{
	const char	*s;
	size_t		 slen = sizeof(SPLIT_SUFFIX) - 1;

	if (len < slen)
		return 0;
	s = base + len - slen;
	if (s[0] != '-' || !digits5(s + 1) || strncmp(s + 6, "-of-", 4) != 0 ||
	    !digits5(s + 10))
		return 0;
	return (s[1] - '0') * 10000 + (s[2] - '0') * 1000 +
	    (s[3] - '0') * 100 + (s[4] - '0') * 10 + (s[5] - '0');
}

int
catalog_model_name(const char *filename, char *name, size_t size)
{
	size_t	 len = strlen(filename), slen = sizeof(GGUF_SUFFIX) - 1;
	int	 part;

	if (filename[0] == '.' || len <= slen ||
	    strcmp(filename + len - slen, GGUF_SUFFIX) != 0)
		return -1;
	len -= slen;
	if ((part = split_part(filename, len)) > 1)
		return -1;
	if (part == 1)
		len -= sizeof(SPLIT_SUFFIX) - 1;
	if (len == 0 || len >= size)
		return -1;
	memcpy(name, filename, len);
	name[len] = '\0';
	return 0;
}

/* Calls found() with each model file's stat. */
static int
scan_dir(const char *dir,
    void (*found)(void *ctx, const char *name, const char *path,
    const struct stat *),
    void *ctx, char *err, size_t errlen)
{
	char		 name[NAME_MAX + 1], path[PATH_MAX];
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	int		 n;

	if ((d = opendir(dir)) == NULL) {
		snprintf(err, errlen, "models_dir %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		if (catalog_model_name(de->d_name, name, sizeof(name)) == -1)
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		/* stat, not lstat: a symlink to a model is a model */
		if (n < 0 || (size_t)n >= sizeof(path) ||
		    stat(path, &st) == -1 || !S_ISREG(st.st_mode))
			continue;
		found(ctx, name, path, &st);
	}
	if (errno != 0) {
		snprintf(err, errlen, "models_dir %s: %s", dir,
		    strerror(errno));
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

struct scan_plain {
	void	(*found)(void *ctx, const char *name, const char *path);
	void	 *ctx;
};

static void
found_plain(void *ctx, const char *name, const char *path,
    const struct stat *st)
{
	struct scan_plain *sp = ctx;

	sp->found(sp->ctx, name, path);
}

int
catalog_scan(const char *dir,
    void (*found)(void *ctx, const char *name, const char *path),
    void *ctx, char *err, size_t errlen)
{
	struct scan_plain sp = { found, ctx };

	return scan_dir(dir, found_plain, &sp, err, errlen);
}

/* --- the daemon's catalog: the folder's models in the pool --- */

#define TIMESPEC_NS(ts)	((int64_t)(ts).tv_sec * 1000000000 + (ts).tv_nsec)
#ifdef __APPLE__
#define MTIME_NS(st)	TIMESPEC_NS((st).st_mtimespec)
#else
#define MTIME_NS(st)	TIMESPEC_NS((st).st_mtim)
#endif

static void
set_identity(struct model_entry *e, const struct stat *st)
{
	e->size = (uint64_t)st->st_size;
	e->mtime_ns = MTIME_NS(*st);
	e->ino = (uint64_t)st->st_ino;
}

static bool
same_identity(const struct model_entry *e, const struct stat *st)
{
	return e->size == (uint64_t)st->st_size &&
	    e->mtime_ns == MTIME_NS(*st) && e->ino == (uint64_t)st->st_ino;
}

/*
 * Another file under the same name: nothing known of the old one holds
 * (its header estimate, its learned peak).  A server already running
 * keeps what it was accounted.
 */
static void
file_replaced(struct daemon *d, struct pool_model *m, const char *path,
    const struct stat *st)
{
	struct model_entry *e = m->udata;
	char *p;

	log_info("model %s: %s changed (size %llu, inode %llu): its "
	    "estimate starts again", m->name, path,
	    (unsigned long long)st->st_size, (unsigned long long)st->st_ino);
	if (strcmp(e->path, path) != 0 && (p = strdup(path)) != NULL) {
		free(e->path);
		e->path = p;
	}
	set_identity(e, st);
	e->identity_since = daemon_now();
	e->gguf_read = e->header_too_long = false;
	e->gguf = 0;
	e->asked_for = false;
	/* A pinned model restarts on its own: from the new header. */
	if (m->priority == POOL_PRIO_PINNED)
		estimate_first_use(d, m);
	else
		estimate_model(d, m, false);
}

/* Frees m and its entry if nothing refers to it any more; true if so. */
static bool
forget(struct daemon *d, struct pool_model *m)
{
	struct model_entry *e = m->udata;

	if (pool_model_remove(d->pool, m) == -1)
		return false;
	free(e->path);
	free(e);
	return true;
}

/*
 * Its file is gone: it is no longer offered, and retired: an idle server
 * of it stops now, a leased one when its last lease ends, waiters get
 * unknown_model (the pool core does that).  The pool forgets it once no
 * server or waiter refers to it (every rescan tries again).  The same
 * whether a rescan, a reload or a lookup found it gone.
 */
static void
file_gone(struct daemon *d, struct pool_model *m)
{
	struct model_entry *e = m->udata;

	if (!e->gone) {
		log_info("model %s: %s is gone: no longer offered%s", m->name,
		    e->path, m->server != NULL ? " (its server stops once "
		    "its leases end)" : "");
		d->models_removed++;
		e->gone = true;
		pool_model_retire(d->pool, daemon_now(), m);
	}
	(void)forget(d, m);
}

void
catalog_apply_conf(struct daemon *d, struct pool_model *m)
{
	struct model_entry *e = m->udata;
	const struct model_conf *mc = config_model(d->conf, m->name);

	e->conf = mc;
	m->idle_timeout = mc != NULL && mc->idle_timeout_ms >= 0 ?
	    mc->idle_timeout_ms : d->conf->idle_timeout_ms;
}

static void
catalog_found(void *ctx, const char *name, const char *path,
    const struct stat *st)
{
	struct daemon *d = ctx;
	struct model_entry *e;
	struct pool_model *m;

	if ((m = pool_model_find(d->pool, name)) != NULL) {
		e = m->udata;
		if (e->seen == d->scan_gen)
			return;		/* NAME.gguf and NAME-00001-of-… */
		e->seen = d->scan_gen;
		if (!e->gone) {
			if (!same_identity(e, st))
				file_replaced(d, m, path, st);
			return;
		}
		/* Retired when it went: it comes back as a new model once
		 * its old server and waiters are gone. */
		if (!forget(d, m)) {
			log_debug("model %s: %s is back; offered again once "
			    "its old server has stopped", name, path);
			return;
		}
		log_info("model %s: %s is back", name, path);
	}
	if (!proto_model_name_ok(name)) {
		log_warnx("%s: skipped: '%s' is not a usable model name "
		    "(letters, digits, '.', '_', '-', '+')", path, name);
		return;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->path = strdup(path)) == NULL ||
	    (m = pool_model_add(d->pool, name, d->conf->per_model, 0))
	    == NULL) {
		if (e != NULL)
			free(e->path);
		free(e);
		log_warnx("%s: out of memory", path);
		return;
	}
	e->priority_override = -1;
	e->seen = d->scan_gen;
	set_identity(e, st);
	m->udata = e;
	catalog_apply_conf(d, m);
	/* The header is read when the model is first asked for (lazily:
	 * 10,000 files must not delay the start). */
	estimate_model(d, m, false);
	d->models_added++;
	usage_model_added(d, m);
	log_debug("model %s: %s", name, path);
}

/* Models the last scan did not find: their files are gone. */
static void
drop_unseen(struct daemon *d)
{
	struct pool_model **all, *m;
	struct model_entry *e;
	size_t n = 0;

	if ((all = calloc(d->pool->nmodels + 1, sizeof(*all))) == NULL)
		return;		/* the next scan tries again */
	for (size_t i = 0; i < d->pool->nbuckets; i++)
		for (m = d->pool->models[i]; m != NULL; m = m->hash_next)
			if ((e = m->udata) != NULL && e->seen != d->scan_gen)
				all[n++] = m;
	for (size_t i = 0; i < n; i++)
		file_gone(d, all[i]);
	free(all);
}

int
daemon_rescan(struct daemon *d, char *err, size_t len)
{
	size_t before = d->pool->nmodels;
	struct stat st;
	time_t wall = time(NULL);

	d->last_scan = daemon_now();
	d->scan_racy = true;
	if (stat(d->conf->models_dir, &st) == 0) {
		bool again = st.st_mtime == d->scan_mtime.tv_sec &&
		    (long)(MTIME_NS(st) % 1000000000) == d->scan_mtime.tv_nsec;

		d->scan_mtime.tv_sec = st.st_mtime;
		d->scan_mtime.tv_nsec = (long)(MTIME_NS(st) % 1000000000);
		/* Once per folder time: a folder dated in the future (a
		 * clock set back, touch -d) must not make each MODELS a scan. */
		d->scan_racy = !again && st.st_mtime +
		    CATALOG_RESCAN_MIN_MS / 1000 >= wall;
	}
	d->scan_gen++;
	if (scan_dir(d->conf->models_dir, catalog_found, d, err, len) == -1)
		return -1;	/* unreadable: keep what we know */
	drop_unseen(d);
	if (d->pool->nmodels != before)
		log_info("catalog: %zu models in %s (was %zu)",
		    d->pool->nmodels, d->conf->models_dir, before);
	return 0;
}

/*
 * The catalog is served from memory.  It is scanned again on SIGHUP and
 * when the folder changed (its mtime changes when a file is added,
 * renamed or removed): that costs one stat(2) of the folder.  A file
 * system with coarse times may not show a change made in the same tick
 * as the scan, so such a scan (scan_racy) is repeated once, at least
 * CATALOG_RESCAN_MIN_MS later.  A file rewritten in place does not
 * change the folder: it is seen when the model is next started.
 */
void
catalog_refresh(struct daemon *d)
{
	struct stat st;
	bool due = daemon_now() - d->last_scan >= CATALOG_RESCAN_MIN_MS;
	char err[256];

	if (stat(d->conf->models_dir, &st) == -1) {
		if (!due)
			return;
	} else if (st.st_mtime == d->scan_mtime.tv_sec &&
	    MTIME_NS(st) % 1000000000 == d->scan_mtime.tv_nsec &&
	    !(d->scan_racy && due))
		return;
	if (daemon_rescan(d, err, sizeof(err)) == -1)
		log_warnx("%s", err);
}

/*
 * Before a start is planned for m: is its file still there, and still
 * the same file?  A stat(2); a gone file is unknown from now on.
 */
static bool
file_still_there(struct daemon *d, struct pool_model *m)
{
	struct model_entry *e = m->udata;
	struct stat st;

	if (stat(e->path, &st) == -1 || !S_ISREG(st.st_mode)) {
		file_gone(d, m);
		return false;
	}
	if (!same_identity(e, &st))
		file_replaced(d, m, e->path, &st);
	return true;
}

struct pool_model *
daemon_model(struct daemon *d, const char *name)
{
	struct pool_model *m;
	char err[256];

	/* A new file can be used without a restart. */
	if ((m = pool_model_find(d->pool, name)) == NULL ||
	    ((struct model_entry *)m->udata)->gone) {
		/* A retired model whose old server is gone now: forgotten,
		 * and its file, if back, found by a scan at once. */
		if (m != NULL && forget(d, m)) {
			if (daemon_rescan(d, err, sizeof(err)) == -1)
				log_warnx("%s", err);
		} else
			catalog_refresh(d);
		if ((m = pool_model_find(d->pool, name)) == NULL ||
		    ((struct model_entry *)m->udata)->gone)
			return NULL;
	}
	/*
	 * A ready or starting server needs nothing of the file.  Anything
	 * else may make room for a start: not for a file that is gone.
	 */
	if (m->server == NULL) {
		if (!file_still_there(d, m))
			return NULL;
		measure_system_fresh(d);
	}
	estimate_first_use(d, m);
	return m;
}

struct pool_model *
catalog_model_running(struct daemon *d, const char *name)
{
	struct pool_model *m = pool_model_find(d->pool, name);
	const struct pool_server *srv;

	if (m == NULL)
		return NULL;
	if (m->server != NULL)
		return m;
	TAILQ_FOREACH(srv, &d->pool->servers, link)
		if (srv->model == m)
			return m;	/* stopping: EVICT waits for its reap */
	return NULL;
}

static int
by_name(const void *a, const void *b)
{
	const struct pool_model *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}


/* Every model of the catalog, by name (malloc'd; NULL: out of memory). */
struct pool_model **
catalog_sorted(struct daemon *d, size_t *np)
{
	struct pool_model *m, **all;
	size_t n = 0;

	if ((all = calloc(d->pool->nmodels + 1, sizeof(*all))) == NULL)
		return NULL;
	for (size_t i = 0; i < d->pool->nbuckets; i++)
		for (m = d->pool->models[i]; m != NULL; m = m->hash_next)
			if (!((struct model_entry *)m->udata)->gone)
				all[n++] = m;
	qsort(all, n, sizeof(*all), by_name);
	*np = n;
	return all;
}

enum pool_priority
catalog_priority(const struct model_entry *e)
{
	if (e->priority_override >= 0)
		return (enum pool_priority)e->priority_override;
	if (e->conf != NULL && e->conf->priority >= 0)
		return (enum pool_priority)e->conf->priority;
	return POOL_PRIO_NORMAL;
}
