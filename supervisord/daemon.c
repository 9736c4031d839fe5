/*
 * daemon.c — the running daemon's upkeep: start and end, the lock, the
 * signals, and the loop's timer and prepare watcher.
 *
 * The pool's effects are in effects.c, the catalog in catalog.c, STATS
 * and MODELS in report.c, the --budget printout in budget.c.
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

pool_ms
daemon_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (pool_ms)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

	http_reap(d->http);	/* first: it may answer socket clients */
	control_reap(d->control);
	cluster_reap(d->cluster);
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
	http_close_listener(d->http);
	cluster_shutdown(d->cluster);
	pool_shutdown(d->pool, daemon_now());
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	char err[256];

	/* daemon_reload logs what it did or why it refused. */
	if (w->signum == SIGHUP) {
		log_info("SIGHUP: reloading %s", d->conf->path != NULL ?
		    d->conf->path : "(no config file: rescan only)");
		(void)daemon_reload(d, NULL, err, sizeof(err));
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
	reload_init(d);
	if (budget_compute(conf, &d->budget, err, len) == -1)
		return -1;
	budget_limits(conf, &d->budget, &lim);
	if ((d->pool = pool_new(&lim, &effects_ops, d, daemon_now())) == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	pool_lease_epoch(d->pool, entropy_lease_epoch());
	if (control_socket_dir(conf, err, len) == -1 ||
	    take_lock(d, conf->socket, err, len) == -1)
		return -1;
	/*
	 * Signals are caught from here, before any socket listens: a
	 * SIGTERM sent as soon as the socket answers (pm2, systemd, a
	 * test) must end in a clean shutdown, not the default death.
	 */
	watch_signal(d, &d->sig_term, SIGTERM);
	watch_signal(d, &d->sig_int, SIGINT);
	watch_signal(d, &d->sig_hup, SIGHUP);
	/* Under the lock, before serving: leftovers die, estimates load. */
	child_init(d);
	state_load(d);
	measure_system(d);
	if (daemon_rescan(d, err, len) == -1)
		return -1;
	/* Pinned models that can never fit together: a config error. */
	if (usage_check_pins(d, conf, d->budget.budget, err, len) == -1)
		return -1;
	state_save(d);
	/* The front door first: a start it refuses leaves no socket. */
	if (http_check_aliases(d, err, len) == -1)
		return -1;
	if (conf->http.listen != NULL &&
	    (d->http = http_open(d, err, len)) == NULL)
		return -1;
	if ((d->control = control_open(d, err, len)) == NULL)
		return -1;
	if (conf->cluster.etcd != NULL &&
	    (d->cluster = cluster_open(d, err, len)) == NULL)
		return -1;
	ev_timer_init(&d->pool_timer, pool_timer_cb, 0, 0);
	d->pool_timer.data = d;
	ev_prepare_init(&d->prepare, prepare_cb);
	d->prepare.data = d;
	ev_prepare_start(loop, &d->prepare);
	/* Pinned models start, then preloading. */
	usage_start(d);
	return 0;
}

void
daemon_fini(struct daemon *d)
{
	struct pool_model *m;
	struct model_entry *e;

	usage_fini(d);		/* its last save needs the catalog */
	events_fini(d);		/* no event goes out while all is torn down */
	child_fini(d);
	cluster_free(d->cluster);
	d->cluster = NULL;
	http_free(d->http);
	d->http = NULL;
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
		ev_timer_stop(d->loop, &d->sys_sampler);
	}
	pool_free(d->pool);
	d->pool = NULL;
	json_decref(d->learned);
	json_decref(d->conf_json);
	d->conf_json = NULL;
}
