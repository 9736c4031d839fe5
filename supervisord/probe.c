/*
 * probe.c — is a starting server healthy yet?  Is a ready one still?
 *
 * GET health_path on server_host:port, non-blocking, one probe in flight per
 * server.  llama-server refuses connections at first, then answers 503
 * while loading, then 200.  Probes start 5 ms apart and back off ×1.5 to
 * 1 s, so a long load costs a probe a second, not forty; output from the
 * server brings the next probe forward, to at once (at most every 5 ms),
 * so a model that loads fast is still seen ready within milliseconds.
 * A line that says the model is loaded ("model loaded", "listening on
 * http", "all slots are idle": child.c) is probed at once, without the
 * 5 ms floor, and the back-off starts over.  Output that comes while a
 * probe is out is kept: if that probe fails, the next one goes at once
 * (or at the floor) rather than after the back-off, which by then may
 * be 50-100 ms.  Only a 200 to GET health_path makes a server ready:
 * the output only says when to ask.
 *
 * A ready server is checked when the pool asks (ops->check: every
 * health_interval, and before an idle one is handed out): one probe,
 * PROBE_CHECK_TIMEOUT_MS to answer 200, reported with pool_checked().
 * A stopped (SIGSTOP) server accepts the connection and never answers.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

/* A check of a ready server: long enough for a server busy generating. */
#define PROBE_CHECK_TIMEOUT_MS	2000

static void	probe_timer_cb(struct ev_loop *, ev_timer *, int);
static void	probe_io_cb(struct ev_loop *, ev_io *, int);
static int	probe_get(struct child *);
static void	probe_send(struct child *);

static void
probe_close(struct child *c)
{
	struct probe *pr = &c->probe;

	if (pr->fd != -1) {
		ev_io_stop(c->d->loop, &pr->io);
		close(pr->fd);
		pr->fd = -1;
	}
	pr->in_flight = false;
	pr->wrote = false;
	pr->len = 0;
}

/* The check of a ready server ended: tell the pool, last (it may stop
 * the server and free c). */
static void
check_done(struct child *c, bool healthy, const char *why)
{
	struct daemon *d = c->d;
	struct pool_server *srv = c->srv;

	probe_stop(c);
	c->probe.checking = false;
	log_debug("check %s: %s", srv->model->name, why);
	pool_checked(d->pool, daemon_now(), srv, healthy, why);
}

static void
probe_later(struct child *c, pool_ms after)
{
	struct probe *pr = &c->probe;

	ev_timer_stop(c->d->loop, &pr->timer);
	ev_timer_set(&pr->timer, (double)after / 1000, 0);
	ev_timer_start(c->d->loop, &pr->timer);
}

/* A probe after a hint: now if it is due now (not a turn of the loop
 * later, through a timer), else at its time. */
static void
probe_soon(struct child *c, pool_ms after)
{
	if (after > 0) {
		probe_later(c, after);
		return;
	}
	ev_timer_stop(c->d->loop, &c->probe.timer);
	probe_send(c);
}

/* How soon after a hint: at once for a server that says it is loaded,
 * else at once but not within PROBE_INTERVAL_MIN_MS of the last probe
 * (however much the server prints).  Takes the hint. */
static pool_ms
hinted_delay(struct child *c)
{
	struct probe *pr = &c->probe;
	pool_ms soonest = 0;

	if (pr->hint != PROBE_HINT_READY)
		soonest = pr->last_sent + PROBE_INTERVAL_MIN_MS - daemon_now();
	pr->hint = PROBE_HINT_NONE;
	return soonest > 0 ? soonest : 0;
}

/* Not healthy yet: try again, a little later each time.  A check of a
 * ready server is not retried here: the pool decides. */
static void
probe_retry(struct child *c, const char *why)
{
	struct probe *pr = &c->probe;

	if (pr->checking) {
		check_done(c, false, why);
		return;
	}
	probe_close(c);
	if (pr->hint != PROBE_HINT_NONE)
		probe_soon(c, hinted_delay(c));
	else
		probe_later(c, pr->interval);
	pr->interval += pr->interval / 2;
	if (pr->interval > PROBE_INTERVAL_MAX_MS)
		pr->interval = PROBE_INTERVAL_MAX_MS;
}

static void
probe_send(struct child *c)
{
	struct probe *pr = &c->probe;
	struct sockaddr_storage ss;
	socklen_t sslen;

	if (fd_tcp_addr(c->d->conf->server_host, c->srv->port, &ss, &sslen)
	    == -1) {
		probe_retry(c, "no address for the probe");
		return;
	}
	if ((pr->fd = fd_socket(ss.ss_family, SOCK_STREAM)) == -1) {
		if (!pr->starved)
			log_warn("probe %s", c->srv->model->name);
		/* poold's own lack of descriptors says nothing of the server:
		 * the check is tried again soon, neither failed nor passed
		 * (whoever waits on it waits, within its own deadline). */
		if (pr->checking && (errno == EMFILE || errno == ENFILE ||
		    errno == ENOBUFS || errno == ENOMEM)) {
			pr->starved = true;
			probe_later(c, PROBE_SHORT_RETRY_MS);
			return;
		}
		probe_retry(c, "no socket for the probe");
		return;
	}
	pr->starved = false;
	pr->sent++;
	pr->last_sent = daemon_now();
	if (connect(pr->fd, (struct sockaddr *)&ss, sslen) == -1 &&
	    errno != EINPROGRESS) {
		probe_retry(c, "connection refused");	/* not listening yet */
		return;
	}
	pr->in_flight = true;
	ev_io_init(&pr->io, probe_io_cb, pr->fd, EV_WRITE);
	pr->io.data = c;
	probe_later(c, pr->checking ? PROBE_CHECK_TIMEOUT_MS :
	    PROBE_TIMEOUT_MS);
	/* On the loopback the handshake is over when connect() returns
	 * (EINPROGRESS all the same): the GET goes now, not a turn of the
	 * loop later.  Still connecting: when it is writable. */
	if (probe_get(c) == 1)
		ev_io_start(c->d->loop, &pr->io);
}

static void
probe_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;
	char why[64];

	if (c->probe.in_flight) {	/* this probe timed out */
		snprintf(why, sizeof(why), "no answer within %d ms",
		    c->probe.checking ? PROBE_CHECK_TIMEOUT_MS :
		    PROBE_TIMEOUT_MS);
		probe_retry(c, why);
		return;
	}
	probe_send(c);
}

/*
 * Sends the GET on a connection made or being made.  0: sent, now read;
 * 1: still connecting; -1: failed (retried, or the check failed).
 */
static int
probe_get(struct child *c)
{
	struct probe *pr = &c->probe;
	char req[512], host[CONFIG_HOST_PORT_BYTES];
	int n;
	ssize_t sent;

	/* The health path is public: llama-server asks no key for it. */
	config_host_port(c->d->conf, c->srv->port, host, sizeof(host));
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s"
	    "\r\nConnection: close\r\n\r\n", c->d->conf->health_path,
	    host);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		probe_retry(c, "cannot send the request");
		return -1;
	}
	while ((sent = send(pr->fd, req, (size_t)n, MSG_NOSIGNAL)) == -1 &&
	    errno == EINTR)
		;
	if (sent == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 1;
	/* A fresh socket's buffer takes a few hundred bytes whole. */
	if (sent != n) {
		probe_retry(c, sent == -1 && errno == ECONNREFUSED ?
		    "connection refused" : "cannot send the request");
		return -1;
	}
	pr->wrote = true;
	ev_io_stop(c->d->loop, &pr->io);
	ev_io_set(&pr->io, pr->fd, EV_READ);
	ev_io_start(c->d->loop, &pr->io);
	return 0;
}

static void
probe_write(struct child *c)
{
	struct probe *pr = &c->probe;
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
	    err != 0) {
		probe_retry(c, "connection refused");
		return;
	}
	(void)probe_get(c);
}

/* -1: need more; else the status code (0 for garbage). */
static int
status_code(const struct probe *pr)
{
	int code;

	if (memchr(pr->buf, '\n', pr->len) == NULL &&
	    pr->len < sizeof(pr->buf) - 1)
		return -1;
	if (sscanf(pr->buf, "HTTP/%*d.%*d %3d", &code) != 1)
		return 0;
	return code;
}

static void
probe_read(struct child *c)
{
	struct probe *pr = &c->probe;
	struct pool_server *srv = c->srv;
	char why[32];
	ssize_t n;
	int code;

	n = read(pr->fd, pr->buf + pr->len, sizeof(pr->buf) - 1 - pr->len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		probe_retry(c, "connection closed without a status");
		return;
	}
	pr->len += (size_t)n;
	pr->buf[pr->len] = '\0';
	if ((code = status_code(pr)) == -1)
		return;
	if (code != 200) {
		snprintf(why, sizeof(why), "HTTP status %d", code);
		probe_retry(c, why);
		return;
	}
	if (pr->checking) {
		check_done(c, true, "HTTP status 200");
		return;
	}
	log_debug("probe %s: healthy after %u probes", srv->model->name,
	    pr->sent);
	probe_stop(c);
	pool_ready(c->d->pool, daemon_now(), srv);
}

static void
probe_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct child *c = w->data;

	if (!c->probe.wrote)
		probe_write(c);
	else
		probe_read(c);
}

void
probe_start(struct child *c)
{
	struct probe *pr = &c->probe;

	pr->fd = -1;
	pr->checking = false;
	pr->interval = PROBE_INTERVAL_MIN_MS;
	ev_timer_init(&pr->timer, probe_timer_cb, 0, 0);
	pr->timer.data = c;
	/* Output read before the exec report (same loop turn) counts. */
	probe_later(c, pr->hint == PROBE_HINT_READY ? 0 :
	    PROBE_INTERVAL_MIN_MS);
	pr->hint = PROBE_HINT_NONE;
}

void
probe_stop(struct child *c)
{
	probe_close(c);
	c->probe.hint = PROBE_HINT_NONE;
	ev_timer_stop(c->d->loop, &c->probe.timer);
}

void
probe_hint(struct child *c, enum probe_hint hint)
{
	struct probe *pr = &c->probe;
	pool_ms soonest;

	if (pr->checking || hint == PROBE_HINT_NONE)
		return;
	/* Nearly there: should the probe it brings still find it loading,
	 * the next ones come 5 ms apart again. */
	if (hint == PROBE_HINT_READY)
		pr->interval = PROBE_INTERVAL_MIN_MS;
	if (hint > pr->hint)
		pr->hint = hint;
	/* A probe is out (or none started yet): the hint waits for its
	 * answer (probe_retry) or for the start (probe_start). */
	if (pr->in_flight || !ev_is_active(&pr->timer))
		return;
	/* Otherwise the back-off goes on for the probes after this one: a
	 * chatty load must not bring back fast polling. */
	soonest = hinted_delay(c);
	if (ev_timer_remaining(c->d->loop, &pr->timer) * 1000 >
	    (double)soonest)
		probe_soon(c, soonest);
}

void
probe_check(void *ctx, struct pool_server *srv)
{
	struct child *c = srv->udata;

	if (c == NULL)
		fatalx("check of %s: no process record", srv->model->name);
	probe_stop(c);
	c->probe.checking = true;
	/* From the loop, not from inside the pool's call. */
	probe_later(c, 0);
}
