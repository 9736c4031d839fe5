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

int
catalog_scan(const char *dir,
    void (*found)(void *ctx, const char *name, const char *path),
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
		found(ctx, name, path);
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

/* --- the daemon's catalog: the folder's models in the pool --- */

#ifdef __APPLE__
#define MTIME_NSEC(st)	((st).st_mtimespec.tv_nsec)
#else
#define MTIME_NSEC(st)	((st).st_mtim.tv_nsec)
#endif

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
			all[n++] = m;
	qsort(all, n, sizeof(*all), by_name);
	*np = n;
	return all;
}
