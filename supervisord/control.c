/*
 * control.c — the UNIX socket: clients, their buffers, their limits and
 * timeouts.  What a request line means is dispatch.c's job; the socket's
 * folder is sockdir.c's.
 *
 * Replies are queued on the client and written in one go before the loop
 * sleeps (as Redis does), so a burst of pipelined requests costs one
 * write.  Nothing here closes a client from inside a pool callback: a
 * client that must go is marked dead and closed before the loop sleeps.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#ifdef __APPLE__
#include <sys/ucred.h>
#endif

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

#define READ_CHUNK_BYTES	16384
#define READ_MAX_PER_EVENT	(64 * 1024)	/* fairness between clients */
#define ACCEPT_RETRY_S		1.0		/* after EMFILE / ENFILE */
#define LISTEN_BACKLOG		128
#define PEER_GROUPS_GUESS	64		/* grown if the peer has more */
#define REFUSED_LOG_S		1.0		/* a flood logs once a second */
#define HANGUP_CHECK_S		1.0		/* a half-closed client gone? */
/*
 * Descriptors kept from clients, so that starts and probes never run out:
 * per server that may run, its output pipe, its log file and its health
 * probe, and one for the exec-report pipe of a start; and a margin for
 * what poold opens for a moment (the state file, /proc, the catalog).
 */
#define FDS_PER_SERVER		4
#define FDS_MARGIN		32

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

struct client {
	struct control		*ctl;
	struct session		 s;
	int			 fd;
	ev_io			 read_watcher, write_watcher;
	ev_timer		 line_timer;	/* armed while a line is partial */
	ev_timer		 idle_timer;	/* idle_client_timeout */
	ev_timer		 hangup_timer;	/* while half-closed */
	pool_ms			 last_active;	/* last byte in or reply out */
	char			*in;
	size_t			 in_len, in_cap;
	struct outbuf		 out;		/* replies not yet written */
	uint64_t		 replies_end;	/* out.added after the last */
	bool			 dead;		/* close before the loop sleeps */
	bool			 closing;	/* close once the output is out */
	bool			 eof;		/* it sent all it will send */
	bool			 flush_queued;
	TAILQ_ENTRY(client)	 link;
	TAILQ_ENTRY(client)	 flush_link;
};

struct control {
	struct daemon		*d;
	int			 fd;
	char			*path;
	ev_io			 accept_watcher;
	ev_timer		 accept_retry;
	TAILQ_HEAD(, client)	 clients;
	TAILQ_HEAD(, client)	 to_flush;
	unsigned		 nclients;
	unsigned long		 serial;
	ev_tstamp		 refused_logged;	/* last "too many clients" */
	unsigned long		 refused;	/* since then */
	int			 base_fds;	/* poold's own, at the start */
};

static void	client_close(struct client *);

static const struct config *
client_conf(const struct client *c)
{
	return c->ctl->d->conf;
}

/* --- activity and the idle timeout --- */

/*
 * The idle timer is not moved on every byte (that would cost a heap
 * update per read); it runs out, looks at last_active and sleeps again
 * for what is left, as ev.pod advises.  last_active is on the monotonic
 * clock: ev_now() follows the wall clock, and a clock set back a day
 * kept an idle client for a day more.
 */
static void
client_touch(struct client *c)
{
	struct ev_loop *loop = c->ctl->d->loop;
	int64_t ms = client_conf(c)->idle_client_timeout_ms;

	c->last_active = daemon_now();
	if (ms > 0 && !ev_is_active(&c->idle_timer)) {
		ev_timer_set(&c->idle_timer, (double)ms / 1000, 0);
		ev_timer_start(loop, &c->idle_timer);
	}
}

static void
idle_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = container_of(w, struct client, idle_timer);
	int64_t ms = client_conf(c)->idle_client_timeout_ms;
	pool_ms left = c->last_active + ms - daemon_now();

	if (left > 0) {
		ev_timer_set(w, (double)left / 1000, 0);
		ev_timer_start(loop, w);
		return;
	}
	/* A lease or a waiting request is use.  The timer rests until the
	 * reply or the RELEASE that ends it touches the client again. */
	if (!session_idle(&c->s))
		return;
	log_info("client %lu: closed: idle for %g s", c->s.serial,
	    (double)ms / 1000);
	client_close(c);
}

/* --- output --- */

static void
client_queue_flush(struct client *c)
{
	if (!c->flush_queued) {
		c->flush_queued = true;
		TAILQ_INSERT_TAIL(&c->ctl->to_flush, c, flush_link);
	}
}

static void
client_kill(struct client *c)
{
	c->dead = true;
	client_queue_flush(c);
}

/* Writes what the socket takes now; never closes (callers may be deep in
 * a pool callback).  -1 on a write error: the flush finds it again. */
static int
write_some(struct client *c)
{
	return outbuf_write(&c->out, c->fd) == -1 ? -1 : 0;
}

/*
 * A subscriber's output is replies and events, each with its own limit:
 * the events queued after the last reply are the events' backlog (those
 * before it go out with the replies, which outbuf_bytes bounds).
 */
static size_t
events_unsent(const struct client *c)
{
	uint64_t from = c->replies_end > c->out.written ? c->replies_end :
	    c->out.written;

	return (size_t)(c->out.added - from);
}

static size_t
replies_unsent(const struct client *c)
{
	return outbuf_unsent(&c->out) - events_unsent(c);
}

/* session.send: takes line (malloc'd, ends in '\n'); NULL: out of memory. */
static void
client_send(struct session *s, char *line)
{
	struct client *c = container_of(s, struct client, s);
	size_t len, unsent, limit = client_conf(c)->outbuf_bytes;

	if (line == NULL) {
		log_warnx("client %lu: out of memory for a reply; dropped",
		    s->serial);
		client_kill(c);
		return;
	}
	if (c->dead) {
		free(line);
		return;
	}
	len = strlen(line);
	unsent = replies_unsent(c);
	/*
	 * The limit is on replies piling up unread: first try to hand the
	 * kernel what is queued; one reply on its own (MODELS of 10,000
	 * models is over 1 MiB) still goes to a client that reads.
	 */
	if (unsent > 0 && unsent + len > limit) {
		(void)write_some(c);
		unsent = replies_unsent(c);
	}
	if (unsent > 0 && unsent + len > limit) {
		/* It does not read: its replies must not grow without end. */
		log_warnx("client %lu: dropped: %zu bytes of replies unread "
		    "(limit %zu)", s->serial, unsent + len, limit);
		free(line);
		client_kill(c);
		return;
	}
	if (!outbuf_add(&c->out, line, len)) {
		free(line);
		client_kill(c);
		return;
	}
	c->replies_end = c->out.added;
	free(line);
	client_touch(c);
	client_queue_flush(c);
}

/* --- the event stream (events.c) --- */

/* events_sink.queue: one line, written with the replies before the loop
 * sleeps; past the limit, what the socket takes is written first.  The
 * events' backlog, replies apart. */
static size_t
client_event(struct session *s, const char *json, size_t len, uint64_t seq)
{
	struct client *c = container_of(s, struct client, s);
	size_t unsent;

	if (c->dead)
		return 0;
	if (!outbuf_add(&c->out, json, len) || !outbuf_add(&c->out, "\n", 1))
		return SIZE_MAX;
	client_queue_flush(c);
	if ((unsent = events_unsent(c)) > EVENTS_UNSENT_MAX) {
		(void)write_some(c);
		unsent = events_unsent(c);
	}
	return unsent;
}

/* events_sink.drop: its backlog is discarded; closed in control_reap. */
static void
client_event_drop(struct session *s, const char *why)
{
	struct client *c = container_of(s, struct client, s);

	log_warnx("client %lu: %s", s->serial, why);
	client_kill(c);
}

static const struct events_sink client_events = {
	client_event, client_event_drop,
};

/* 0: all written or waiting for POLLOUT; -1: the client is gone. */
static int
client_flush(struct client *c)
{
	struct ev_loop *loop = c->ctl->d->loop;

	/* Half-closed and nothing more to answer: go once this is out.  A
	 * subscriber stays (`… SUBSCRIBE | nc -U` is a way to watch) until
	 * it hangs up for good, which hangup_check_cb sees. */
	if (c->eof && c->s.npending == 0 && !c->s.subscribed)
		c->closing = true;
	if (write_some(c) == -1)
		return -1;
	if (outbuf_unsent(&c->out) > 0) {
		ev_io_start(loop, &c->write_watcher);	/* the rest on POLLOUT */
		return 0;
	}
	ev_io_stop(loop, &c->write_watcher);
	return c->closing ? -1 : 0;
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;

	if (client_flush(c) == -1)
		client_close(c);
}

/* --- input --- */

/* One last error line, then the connection closes; nothing more is read. */
static void
client_refuse_input(struct client *c, const char *msg)
{
	log_warnx("client %lu: %s", c->s.serial, msg);
	dispatch_error(&c->s, NULL, PROTO_E_BAD_REQUEST, msg);
	c->closing = true;
	ev_io_stop(c->ctl->d->loop, &c->read_watcher);
	ev_timer_stop(c->ctl->d->loop, &c->line_timer);
}

static void
line_too_long(struct client *c)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "line longer than %zu bytes; closing the "
	    "connection", client_conf(c)->max_line_bytes);
	client_refuse_input(c, msg);
}

/* A client that starts a line and never ends it (slowloris). */
static void
line_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = container_of(w, struct client, line_timer);
	char msg[128];

	snprintf(msg, sizeof(msg), "incomplete line for %g s (a request is "
	    "one line ending in a newline); closing the connection",
	    (double)client_conf(c)->line_timeout_ms / 1000);
	client_refuse_input(c, msg);
}

/*
 * The clock runs from a partial line's first read: it is restarted when
 * a line completes (progress) and stopped when no partial line is left,
 * so a client dripping one byte at a time cannot hold it off.
 */
static void
line_timer_update(struct client *c, bool line_done)
{
	struct ev_loop *loop = c->ctl->d->loop;

	if (line_done || c->in_len == 0 || c->closing || c->dead)
		ev_timer_stop(loop, &c->line_timer);
	if (c->in_len == 0 || c->closing || c->dead ||
	    ev_is_active(&c->line_timer))
		return;
	ev_timer_set(&c->line_timer,
	    (double)client_conf(c)->line_timeout_ms / 1000, 0);
	ev_timer_start(loop, &c->line_timer);
}

/* Hands the complete lines to the dispatcher; true if there was one. */
static bool
handle_lines(struct client *c)
{
	size_t off = 0, consumed, max = client_conf(c)->max_line_bytes;
	bool any = false;
	long len;

	while (!c->dead && !c->closing) {
		len = proto_line(c->in + off, c->in_len - off, &consumed);
		if (len < 0) {
			/* +1: the '\r' of a "\r\n" still to come */
			if (c->in_len - off > max + 1)
				line_too_long(c);
			break;
		}
		any = true;
		if ((size_t)len > max) {
			line_too_long(c);
			break;
		}
		if (len > 0)
			dispatch_line(&c->s, c->in + off, (size_t)len);
		off += consumed;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return any;
}

/* Room for another read; the buffer grows up to one line's limit. */
static bool
input_room(struct client *c)
{
	size_t max = client_conf(c)->max_line_bytes + 2, cap;
	char *nb;

	if (c->in_cap - c->in_len >= READ_CHUNK_BYTES || c->in_cap >= max)
		return c->in_len < c->in_cap;
	cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK_BYTES;
	if (cap > max)
		cap = max;
	if ((nb = realloc(c->in, cap)) == NULL)
		return c->in_len < c->in_cap;
	c->in = nb;
	c->in_cap = cap;
	return true;
}

/*
 * Did the client close the connection, not only its writing side?  On
 * Linux (and the BSDs) a stream socket reports POLLHUP only once both
 * directions are shut, so a shutdown(SHUT_WR) leaves it out.  macOS's
 * poll() raises POLLHUP for any EV_EOF of the read filter, a half-close
 * included: there every end of input counts as a half-close, and a closed
 * client is found when a reply to it cannot be written.
 */
static bool
peer_hung_up(int fd)
{
#ifdef __APPLE__
	(void)fd;
	return false;
#else
	struct pollfd pfd;
	int n;

	pfd.fd = fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	while ((n = poll(&pfd, 1, 0)) == -1 && errno == EINTR)
		;
	return n == 1 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL));
#endif
}

/* A half-closed client still waiting for replies may close for good;
 * libev has no event for that (its socket is readable for ever). */
static void
hangup_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = container_of(w, struct client, hangup_timer);

	if (!c->dead && peer_hung_up(c->fd)) {
		log_info("client %lu: hung up while half-closed", c->s.serial);
		client_close(c);
	}
}

/*
 * The end of the client's input.  A client that closed the connection is
 * gone: its leases end and its waiting requests are dropped at once.  One
 * that only shut its writing side (`echo … | nc -U`, shutdown(SHUT_WR))
 * is answered: a last line without a newline still counts, and the
 * connection, with its leases, stays until every request it sent is
 * answered.
 */
static void
input_ended(struct client *c)
{
	struct ev_loop *loop = c->ctl->d->loop;

	c->eof = true;
	ev_io_stop(loop, &c->read_watcher);
	ev_timer_stop(loop, &c->line_timer);
	if (c->in_len > 0 && !c->closing && !c->dead) {
		if (c->in_len > client_conf(c)->max_line_bytes)
			line_too_long(c);
		else
			dispatch_line(&c->s, c->in, c->in_len);
		c->in_len = 0;
	}
	if (peer_hung_up(c->fd)) {
		client_close(c);
		return;
	}
	ev_timer_set(&c->hangup_timer, HANGUP_CHECK_S, HANGUP_CHECK_S);
	ev_timer_start(loop, &c->hangup_timer);
	client_queue_flush(c);
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;
	size_t total = 0;
	bool line_done = false;
	ssize_t n;

	while (total < READ_MAX_PER_EVENT && !c->dead && !c->closing &&
	    input_room(c)) {
		n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n == 0) {
			input_ended(c);
			return;
		}
		if (n == -1) {
			log_warn("client %lu: read", c->s.serial);
			client_close(c);
			return;
		}
		c->in_len += (size_t)n;
		total += (size_t)n;
		client_touch(c);
		line_done |= handle_lines(c);
	}
	line_timer_update(c, line_done);
}

/* --- clients --- */

static void
client_close(struct client *c)
{
	struct control *ctl = c->ctl;
	struct ev_loop *loop = ctl->d->loop;

	log_info("client %lu: closed (%u pending, leases released)",
	    c->s.serial, c->s.npending);
	session_end(&c->s);
	ev_io_stop(loop, &c->read_watcher);
	ev_io_stop(loop, &c->write_watcher);
	ev_timer_stop(loop, &c->line_timer);
	ev_timer_stop(loop, &c->idle_timer);
	ev_timer_stop(loop, &c->hangup_timer);
	close(c->fd);
	if (c->flush_queued)
		TAILQ_REMOVE(&ctl->to_flush, c, flush_link);
	TAILQ_REMOVE(&ctl->clients, c, link);
	ctl->nclients--;
	free(c->in);
	outbuf_free(&c->out);
	free(c);
}

#if defined(SO_PEERGROUPS)
/* The peer's supplementary groups as they were at connect (Linux 4.13). */
static void
peer_groups(int fd, struct peer *p)
{
	socklen_t len = PEER_GROUPS_GUESS * sizeof(gid_t);
	gid_t *g = NULL, *ng;
	int tries;

	for (tries = 0; tries < 2; tries++) {
		if ((ng = realloc(g, len > 0 ? len : 1)) == NULL)
			break;
		g = ng;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			p->groups = g;
			p->ngroups = (int)(len / sizeof(gid_t));
			return;
		}
		/* On ERANGE, len now says how much it takes. */
		if (errno != ERANGE)
			break;
	}
	free(g);
}
#elif defined(__APPLE__) && defined(LOCAL_PEERCRED)
static void
peer_groups(int fd, struct peer *p)
{
	struct xucred xu;
	socklen_t len = sizeof(xu);
	int i;

	if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERCRED, &xu, &len) == -1 ||
	    xu.cr_version != XUCRED_VERSION || xu.cr_ngroups <= 1)
		return;
	/* cr_groups[0] is the effective gid, which p->gid has already. */
	if ((p->groups = calloc((size_t)xu.cr_ngroups, sizeof(gid_t))) == NULL)
		return;
	for (i = 1; i < xu.cr_ngroups; i++)
		p->groups[p->ngroups++] = xu.cr_groups[i];
}
#else
static void
peer_groups(int fd, struct peer *p)
{
}
#endif

/* Who connected, as the kernel saw it at connect(2). */
static void
peer_credentials(int fd, struct peer *p)
{
#if defined(SO_PEERCRED)
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
		p->known = true;
		p->uid = uc.uid;
		p->gid = uc.gid;
		p->pid = uc.pid;
	}
#else
	if (getpeereid(fd, &p->uid, &p->gid) == 0)
		p->known = true;
#if defined(LOCAL_PEERPID)
	{
		pid_t pid;
		socklen_t len = sizeof(pid);

		if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0)
			p->pid = pid;
	}
#endif
#endif
	if (p->known)
		peer_groups(fd, p);
}

/* --- descriptors --- */

/* Servers that may run at once: the pool's cap, and one per port. */
static unsigned
servers_possible(const struct daemon *d)
{
	const struct pool_limits *lim = &d->pool->lim;
	unsigned ports = (unsigned)(lim->port_max - lim->port_min + 1);

	return lim->max_servers > 0 && lim->max_servers < ports ?
	    lim->max_servers : ports;
}

/* Descriptors clients may not take: poold's own, the reserve, and the
 * HTTP front door's (two a connection: the client, its server). */
static unsigned long long
fds_kept(const struct control *ctl)
{
	return (unsigned long long)ctl->base_fds + FDS_MARGIN +
	    (unsigned long long)FDS_PER_SERVER * servers_possible(ctl->d) +
	    2ULL * http_conns(ctl->d->http);
}

/* The soft descriptor limit, read each time: prlimit(1) may change it. */
static unsigned long long
fds_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return ULLONG_MAX;
	return (unsigned long long)rl.rlim_cur;
}

/*
 * How many clients may be connected: max_clients, and no more than the
 * descriptors left once poold's own and the reserve for every server
 * that may run are kept aside, so that a client is refused before a
 * start or a probe could fail for want of a descriptor.
 */
static unsigned
client_cap(const struct control *ctl, bool *by_fds)
{
	unsigned long long limit = fds_limit(), kept = fds_kept(ctl), room;
	unsigned max = ctl->d->conf->max_clients;

	room = limit > kept ? limit - kept : 0;
	*by_fds = room < max;
	return room < max ? (unsigned)room : max;
}

static void
refuse_client(struct control *ctl, int fd, unsigned cap, bool by_fds)
{
	char *line, msg[192];

	if (by_fds)
		snprintf(msg, sizeof(msg), "too many clients (%u: poold keeps "
		    "the rest of its %llu descriptors for its servers); try "
		    "again later", cap, fds_limit());
	else
		snprintf(msg, sizeof(msg), "too many clients (%u); try again "
		    "later", cap);
	ctl->refused++;
	if (ev_now(ctl->d->loop) - ctl->refused_logged >= REFUSED_LOG_S) {
		log_warnx("refused %lu clients: %s", ctl->refused, msg);
		ctl->refused_logged = ev_now(ctl->d->loop);
		ctl->refused = 0;
	}
	if ((line = proto_encode_error(NULL, PROTO_E_BUSY, msg)) != NULL) {
		(void)!send(fd, line, strlen(line), MSG_NOSIGNAL);
		free(line);
	}
	close(fd);
}

static void
log_connect(const struct client *c)
{
	const struct peer *p = &c->s.peer;

	if (!p->known)
		log_info("client %lu: connected (peer unknown)", c->s.serial);
	else if (p->pid > 0)
		log_info("client %lu: uid %u pid %ld", c->s.serial,
		    (unsigned)p->uid, (long)p->pid);
	else
		log_info("client %lu: uid %u", c->s.serial, (unsigned)p->uid);
}

static struct client *
client_new(struct control *ctl, int fd)
{
	struct ev_loop *loop = ctl->d->loop;
	struct client *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->ctl = ctl;
	c->fd = fd;
	session_init(&c->s, ctl->d, ++ctl->serial, client_send);
	c->s.events_sink = &client_events;
	peer_credentials(fd, &c->s.peer);
	ev_io_init(&c->read_watcher, read_cb, fd, EV_READ);
	ev_io_init(&c->write_watcher, write_cb, fd, EV_WRITE);
	c->read_watcher.data = c->write_watcher.data = c;
	ev_init(&c->line_timer, line_timeout_cb);
	ev_init(&c->idle_timer, idle_timeout_cb);
	ev_init(&c->hangup_timer, hangup_check_cb);
	ev_io_start(loop, &c->read_watcher);
	client_touch(c);
	TAILQ_INSERT_TAIL(&ctl->clients, c, link);
	ctl->nclients++;
	return c;
}

static void
accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct control *ctl = w->data;

	ev_io_start(loop, &ctl->accept_watcher);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control *ctl = w->data;
	struct client *c;
	unsigned cap;
	bool by_fds;
	int fd;

	if ((fd = fd_accept(ctl->fd)) == -1) {
		if (errno == EMFILE || errno == ENFILE) {
			/* Out of descriptors: pause instead of spinning.  A
			 * timer that has run keeps its spent time: set it
			 * again, or the second pause would last 0 s. */
			log_warn("accept: pausing for %.0f s", ACCEPT_RETRY_S);
			ev_io_stop(loop, &ctl->accept_watcher);
			ev_timer_set(&ctl->accept_retry, ACCEPT_RETRY_S, 0);
			ev_timer_start(loop, &ctl->accept_retry);
		} else if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	if (ctl->nclients >= (cap = client_cap(ctl, &by_fds))) {
		refuse_client(ctl, fd, cap, by_fds);
		return;
	}
	if ((c = client_new(ctl, fd)) == NULL) {
		log_warnx("accept: out of memory for a client");
		close(fd);
		return;
	}
	log_connect(c);
}

void
control_reap(struct control *ctl)
{
	struct client *c;

	while ((c = TAILQ_FIRST(&ctl->to_flush)) != NULL) {
		TAILQ_REMOVE(&ctl->to_flush, c, flush_link);
		c->flush_queued = false;
		if (c->dead || client_flush(c) == -1)
			client_close(c);
	}
}

unsigned
control_clients(const struct control *ctl)
{
	return ctl->nclients;
}

/* --- the listener --- */

static int
bind_unix(int fd, const char *path, char *err, size_t len)
{
	struct sockaddr_un sun;
	mode_t old;
	int rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, len, "%s: socket path too long (max %zu)", path,
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* The lock is ours, so a socket file left here is stale. */
	(void)unlink(path);
	old = umask(0177);	/* never a moment with a wider mode */
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc == -1)
		snprintf(err, len, "bind %s: %s", path, strerror(errno));
	return rc;
}

static int
listen_unix(const struct config *conf, char *err, size_t len)
{
	const char *path = conf->socket;
	int fd;

	if ((fd = fd_socket(AF_UNIX, SOCK_STREAM)) == -1) {
		snprintf(err, len, "socket: %s", strerror(errno));
		return -1;
	}
	if (bind_unix(fd, path, err, len) == -1) {
		close(fd);
		return -1;
	}
	if (conf->socket_group != NULL &&
	    chown(path, (uid_t)-1, conf->socket_gid) == -1) {
		snprintf(err, len, "cannot give %s to group %s: %s", path,
		    conf->socket_group, strerror(errno));
		goto fail;
	}
	if (chmod(path, conf->socket_mode) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	(void)unlink(path);
	return -1;
}

/* At the start: say how many clients fit, and refuse to run if none do. */
static int
check_client_room(struct control *ctl, char *err, size_t len)
{
	unsigned cap;
	bool by_fds;

	/* Descriptors are handed out lowest first: the listener, just
	 * opened, is the last of poold's own. */
	ctl->base_fds = ctl->fd + 1;
	cap = client_cap(ctl, &by_fds);
	if (cap == 0) {
		snprintf(err, len, "the descriptor limit (%llu) leaves none for "
		    "clients: poold keeps %llu for itself and %u servers; "
		    "raise it (ulimit -n) or lower max_servers or ports",
		    fds_limit(), fds_kept(ctl), servers_possible(ctl->d));
		return -1;
	}
	if (by_fds)
		log_warnx("at most %u clients, not max_clients %u: the "
		    "descriptor limit is %llu and poold keeps %llu for itself "
		    "and %u servers", cap, ctl->d->conf->max_clients,
		    fds_limit(), fds_kept(ctl), servers_possible(ctl->d));
	return 0;
}

struct control *
control_open(struct daemon *d, char *err, size_t len)
{
	struct control *ctl;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL ||
	    (ctl->path = strdup(d->conf->socket)) == NULL) {
		free(ctl);
		snprintf(err, len, "out of memory");
		return NULL;
	}
	ctl->d = d;
	TAILQ_INIT(&ctl->clients);
	TAILQ_INIT(&ctl->to_flush);
	if ((ctl->fd = listen_unix(d->conf, err, len)) == -1) {
		free(ctl->path);
		free(ctl);
		return NULL;
	}
	if (check_client_room(ctl, err, len) == -1) {
		control_close_listener(ctl);
		free(ctl->path);
		free(ctl);
		return NULL;
	}
	ev_io_init(&ctl->accept_watcher, accept_cb, ctl->fd, EV_READ);
	ctl->accept_watcher.data = ctl;
	ev_init(&ctl->accept_retry, accept_retry_cb);
	ctl->accept_retry.data = ctl;
	ev_io_start(d->loop, &ctl->accept_watcher);
	return ctl;
}

void
control_close_listener(struct control *ctl)
{
	if (ctl->fd == -1)
		return;
	ev_io_stop(ctl->d->loop, &ctl->accept_watcher);
	ev_timer_stop(ctl->d->loop, &ctl->accept_retry);
	close(ctl->fd);
	ctl->fd = -1;
	(void)unlink(ctl->path);
}

void
control_free(struct control *ctl)
{
	struct client *c;

	if (ctl == NULL)
		return;
	control_close_listener(ctl);
	control_reap(ctl);	/* last replies (shutting_down) go out */
	while ((c = TAILQ_FIRST(&ctl->clients)) != NULL)
		client_close(c);
	free(ctl->path);
	free(ctl);
}

/* Descriptors left once poold's own, the servers', the clients' and the
 * front door's are counted: its next connection takes two of these. */
unsigned long long
control_fds_room(const struct control *ctl)
{
	unsigned long long limit = fds_limit(), used;

	used = fds_kept(ctl) + ctl->nclients;
	return limit > used ? limit - used : 0;
}
