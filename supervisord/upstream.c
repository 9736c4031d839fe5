/*
 * upstream.c — one request to a model's server: a non-blocking connect to
 * HOST:PORT (numeric), the rewritten head and the body written, the response
 * read and framed with llhttp so that its end is known, its bytes handed
 * to the client's side as they come (http.c) — never buffered here
 * beyond one read.  The client's side pauses the reading when its output
 * is past high water.
 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"
#include "http.h"
#include "upstream.h"

#define UP_READ_BYTES		16384	/* one read */
#define UP_READ_MAX_PER_EVENT	(64 * 1024)	/* fairness between streams */
#define UP_RELAY_PRIORITY	1		/* libev: above the default 0 */

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

void
upstream_init(struct upstream *u, struct ev_loop *loop,
    const struct upstream_ops *ops, void *ctx)
{
	memset(u, 0, sizeof(*u));
	u->loop = loop;
	u->ops = ops;
	u->ctx = ctx;
	u->fd = -1;
	http_msg_init(&u->resp, true, HTTP_RESP_HEAD_MAX, 0);
}

/* Closes the connection; the response's state is kept until the next. */
void
upstream_close(struct upstream *u)
{
	if (u->fd == -1)
		return;
	ev_io_stop(u->loop, &u->rio);
	ev_io_stop(u->loop, &u->wio);
	close(u->fd);
	u->fd = -1;
	free(u->head);
	u->head = NULL;
}

void
upstream_free(struct upstream *u)
{
	upstream_close(u);
	http_msg_free(&u->resp);
}

static void
fail(struct upstream *u, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The connection ends in error; the client's side decides what it says. */
static void
fail(struct upstream *u, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	upstream_close(u);
	u->ops->fail(u->ctx, why, u->relaying);
}

static void
finished(struct upstream *u)
{
	upstream_close(u);
	u->ops->done(u->ctx);
}

/* Hands buf[0..n) on: the head once rewritten, then the body's bytes as
 * they are.  -1 if the connection ended (done or failed). */
static int
take(struct upstream *u, const char *buf, size_t n)
{
	size_t off = 0, used;
	enum http_scan r;

	while (off < n) {
		r = http_msg_feed(&u->resp, buf + off, n - off, &used);
		if (r == HTTP_SCAN_ERROR) {
			fail(u, "%s", u->resp.err);
			return -1;
		}
		if (u->relaying && u->resp.dechunk && u->resp.chunked) {
			if (u->resp.body_len > 0)
				u->ops->data(u->ctx, u->resp.body,
				    u->resp.body_len);
			u->resp.body_len = 0;
		} else if (u->relaying && used > 0)
			u->ops->data(u->ctx, buf + off, used);
		off += used;
		if (r == HTTP_SCAN_HEAD) {
			u->relaying = true;
			if (u->ops->head(u->ctx, &u->resp) == -1) {
				fail(u, "out of memory for the response head");
				return -1;
			}
			if (u->resp.done) {
				finished(u);
				return -1;
			}
		} else if (r == HTTP_SCAN_DONE) {
			finished(u);
			return -1;
		} else if (r == HTTP_SCAN_MORE && used == 0)
			break;
	}
	u->ops->flush(u->ctx);
	return 0;
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct upstream *u = container_of(w, struct upstream, rio);
	char buf[UP_READ_BYTES];
	size_t total = 0;
	ssize_t n;

	while (total < UP_READ_MAX_PER_EVENT && !u->paused) {
		n = read(u->fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == -1) {
			fail(u, "read from the model's server: %s",
			    strerror(errno));
			return;
		}
		if (n == 0) {
			/* A response without length ends here; others not. */
			if (http_msg_finish(&u->resp))
				finished(u);
			else
				fail(u, "the model's server closed the "
				    "connection before the end of its "
				    "response");
			return;
		}
		total += (size_t)n;
		if (take(u, buf, (size_t)n) == -1)
			return;
	}
}

/*
 * Writes what is left of the head and the body, with as few calls as the
 * socket allows.  0: all of it; 1: the socket is full (or still
 * connecting); -1: failed, errno says why.
 */
static int
send_request(struct upstream *u)
{
	struct iovec iov[2];
	size_t total = u->head_len + u->body_len, boff;
	int n_iov;
	ssize_t n;

	while (u->sent < total) {
		n_iov = 0;
		if (u->sent < u->head_len) {
			iov[n_iov].iov_base = u->head + u->sent;
			iov[n_iov++].iov_len = u->head_len - u->sent;
		}
		if (u->body_len > 0) {
			boff = u->sent > u->head_len ? u->sent - u->head_len :
			    0;
			iov[n_iov].iov_base = (char *)u->body + boff;
			iov[n_iov++].iov_len = u->body_len - boff;
		}
		n = writev(u->fd, iov, n_iov);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
		if (!u->connected) {
			/* A byte taken: the connection is up. */
			u->connected = true;
			ev_io_start(u->loop, &u->rio);
		}
		u->sent += (size_t)n;
	}
	free(u->head);
	u->head = NULL;
	return 0;
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct upstream *u = container_of(w, struct upstream, wio);
	socklen_t len = sizeof(int);
	int err = 0;

	if (!u->connected) {
		if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			fail(u, "connect to %s: %s", u->where, strerror(err));
			return;
		}
		u->connected = true;
		ev_io_start(loop, &u->rio);
	}
	switch (send_request(u)) {
	case -1:
		fail(u, "write to the model's server: %s", strerror(errno));
		return;
	case 0:
		ev_io_stop(loop, &u->wio);
		return;
	default:
		return;
	}
}

int
upstream_start(struct upstream *u, const char *host, int port, bool dechunk,
    char *head, size_t head_len, const char *body, size_t body_len, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int one = 1;

	u->resp.dechunk = dechunk;
	http_msg_reset(&u->resp);
	u->port = port;
	snprintf(u->where, sizeof(u->where), "%s%s%s:%d",
	    strchr(host, ':') != NULL ? "[" : "", host,
	    strchr(host, ':') != NULL ? "]" : "", port);
	u->head = head;
	u->head_len = head_len;
	u->body = body;
	u->body_len = body_len;
	u->sent = 0;
	u->connected = u->relaying = u->paused = false;
	if (fd_tcp_addr(host, port, &ss, &sslen) == -1) {
		snprintf(err, errlen, "%s: not a numeric address", u->where);
		free(head);
		u->head = NULL;
		return -1;
	}
	if ((u->fd = fd_socket(ss.ss_family, SOCK_STREAM)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		free(head);
		u->head = NULL;
		return -1;
	}
	(void)setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_init(&u->rio, read_cb, u->fd, EV_READ);
	ev_io_init(&u->wio, write_cb, u->fd, EV_WRITE);
	/* A running response goes before new requests in a busy turn. */
	ev_set_priority(&u->rio, UP_RELAY_PRIORITY);
	/*
	 * On the loopback the handshake is over when connect() returns
	 * (EINPROGRESS all the same): the request goes at once, not one
	 * turn of the loop later.  A write that finds the connection still
	 * in progress waits for it to be writable; one that fails has sent
	 * nothing, like a failed connect.
	 */
	if ((connect(u->fd, (struct sockaddr *)&ss, sslen) == -1 &&
	    errno != EINPROGRESS) || send_request(u) == -1) {
		snprintf(err, errlen, "%s %s: %s", u->sent > 0 ?
		    "write to" : "connect to", u->where, strerror(errno));
		upstream_close(u);
		return -1;
	}
	if (u->head != NULL)
		ev_io_start(u->loop, &u->wio);
	return 0;
}

void
upstream_pause(struct upstream *u)
{
	u->paused = true;
	if (u->fd != -1)
		ev_io_stop(u->loop, &u->rio);
}

void
upstream_resume(struct upstream *u)
{
	u->paused = false;
	if (u->fd != -1 && u->connected)
		ev_io_start(u->loop, &u->rio);
}

bool
upstream_active(const struct upstream *u)
{
	return u->fd != -1;
}
