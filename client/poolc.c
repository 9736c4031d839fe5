/*
 * poolc.c — libpoolc, the C client of poold.  See poolc.h and libpoolc(3).
 *
 * Synchronous: a call encodes one request with protocol/, writes it, and
 * reads lines until the reply that carries its id.  The socket is
 * non-blocking and every wait is a poll() bounded by the call's deadline,
 * so a stuck daemon costs a timeout, never a hang.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "poolc.h"

/* The public sizes mirror the protocol's; poolc.h cannot include it. */
_Static_assert(POOLC_MODEL_MAX == PROTO_MODEL_NAME_MAX,
    "POOLC_MODEL_MAX must equal PROTO_MODEL_NAME_MAX");
_Static_assert(POOLC_ENDPOINT_MAX ==
    sizeof(((struct proto_acquired *)0)->endpoint),
    "POOLC_ENDPOINT_MAX must match struct proto_acquired");
_Static_assert(POOLC_API_KEY_MAX == PROTO_API_KEY_MAX &&
    POOLC_NODE_MAX == sizeof(((struct proto_acquired *)0)->node),
    "POOLC_API_KEY_MAX and POOLC_NODE_MAX must match struct proto_acquired");
_Static_assert(POOLC_REPLY_MAX_BYTES >= PROTO_LINE_MAX_BYTES,
    "replies may be longer than requests, not shorter");

#define READ_CHUNK_BYTES	(64 * 1024)
/* Linux answers a full listen backlog with EAGAIN rather than waiting. */
#define CONNECT_RETRY_MS	10
#define ERRSTR_MAX		(PROTO_MESSAGE_MAX + 256)
#define SERVER_ERROR_MAX	64

#ifdef MSG_NOSIGNAL
#define SEND_FLAGS		MSG_NOSIGNAL
#else
#define SEND_FLAGS		0	/* SO_NOSIGPIPE is set instead */
#endif

struct poolc {
	int		 fd;		/* -1 when not connected */
	char		*path;
	int		 timeout_ms;	/* <= 0: no limit */
	int64_t		 last_id;
	int64_t		 span_ms;	/* the current call's wait, for messages */

	/* Bytes read and not yet handled; the first scanned of them hold no
	 * newline, so a long line is not searched again on every read. */
	char		*buf;
	size_t		 len, cap, scanned;

	/* The last error poold sent without an id (one it could not tie to
	 * a request, such as a line too long, before it hangs up); told
	 * when the connection then closes. */
	char		 farewell[PROTO_MESSAGE_MAX + 64];

	bool		 subscribed;	/* events only (poolc_subscribe) */

	enum poolc_err	 err;
	int		 err_errno;
	char		 errstr[ERRSTR_MAX];
	char		 server_error[SERVER_ERROR_MAX];
};

/* --- errors --- */

static int set_error(struct poolc *, enum poolc_err, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));

/* Records an error and returns -1, so callers can return its value. */
static int
set_error(struct poolc *c, enum poolc_err err, int errnum, const char *fmt,
    ...)
{
	va_list	 ap;

	c->err = err;
	c->err_errno = errnum;
	c->server_error[0] = '\0';
	va_start(ap, fmt);
	if (vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap) < 0)
		c->errstr[0] = '\0';
	va_end(ap);
	return -1;
}

static void
clear_error(struct poolc *c)
{
	c->err = POOLC_OK;
	c->err_errno = 0;
	c->errstr[0] = '\0';
	c->server_error[0] = '\0';
}

static bool
is_sticky(enum poolc_err err)
{
	return err == POOLC_ERR_IO || err == POOLC_ERR_PROTOCOL ||
	    err == POOLC_ERR_TIMEOUT;
}

/* strerror() may share a buffer between threads; the two strerror_r()s
 * differ between glibc with _GNU_SOURCE and everybody else. */
static const char *
errno_text(int errnum, char *buf, size_t len)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
	return strerror_r(errnum, buf, len);
#else
	if (strerror_r(errnum, buf, len) != 0)
		snprintf(buf, len, "error %d", errnum);
	return buf;
#endif
}

static int
io_error(struct poolc *c, const char *what, int errnum)
{
	char	 text[128];

	return set_error(c, POOLC_ERR_IO, errnum, "cannot %s %s: %s", what,
	    c->path, errno_text(errnum, text, sizeof(text)));
}

static int
timed_out(struct poolc *c)
{
	return set_error(c, POOLC_ERR_TIMEOUT, ETIMEDOUT,
	    "no reply from poold within %" PRId64 " ms", c->span_ms);
}

/* --- time --- */

static int64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -1 means no deadline. */
static int64_t
deadline_after(int64_t ms)
{
	return ms > 0 ? now_ms() + ms : -1;
}

/* What is left until deadline, as poll() wants it. */
static int
remaining_ms(int64_t deadline)
{
	int64_t	 left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* 1 when fd is ready (or has an error to report), 0 at the deadline,
 * -1 with errno. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd	 pfd;
	int		 n;

	for (;;) {
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, remaining_ms(deadline));
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* --- connecting --- */

/*
 * Makes fd close-on-exec and non-blocking and keeps it from raising
 * SIGPIPE, where socket() could not do it at once.
 */
static int
set_flags(int fd)
{
#if !defined(SOCK_CLOEXEC) || !defined(SOCK_NONBLOCK)
	int	 fl;

	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 ||
	    (fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
#endif
#ifdef SO_NOSIGPIPE
	int	 on = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof(on)) == -1)
		return -1;
#endif
	(void)fd;
	return 0;
}

static int
new_socket(void)
{
	int	 fd, saved;

#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
	/* Atomic, so a fork in another thread cannot inherit it. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
#else
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
#endif
	if (fd == -1 || set_flags(fd) == 0)
		return fd;
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* After a connect in progress: its outcome, as 0 or -1 with errno. */
static int
connect_result(int fd, int64_t deadline)
{
	socklen_t	 sl = sizeof(int);
	int		 r, soerr = 0;

	if ((r = wait_fd(fd, POLLOUT, deadline)) <= 0) {
		if (r == 0)
			errno = ETIMEDOUT;
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
		return -1;
	if (soerr != 0) {
		errno = soerr;
		return -1;
	}
	return 0;
}

static int
connect_until(int fd, const struct sockaddr_un *sun, int64_t deadline)
{
	int	 left;

	for (;;) {
		if (connect(fd, (const struct sockaddr *)sun,
		    sizeof(*sun)) == 0)
			return 0;
		if (errno == EINPROGRESS || errno == EALREADY ||
		    errno == EINTR)
			return connect_result(fd, deadline);
		if (errno != EAGAIN)
			return -1;
		if ((left = remaining_ms(deadline)) == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (left < 0 || left > CONNECT_RETRY_MS)
			left = CONNECT_RETRY_MS;
		poll(NULL, 0, left);
	}
}

static int
connect_failed(struct poolc *c, int errnum)
{
	char	 text[128];

	return set_error(c, errnum == ETIMEDOUT ? POOLC_ERR_TIMEOUT :
	    POOLC_ERR_IO, errnum, "cannot connect to %s: %s", c->path,
	    errno_text(errnum, text, sizeof(text)));
}

static int
open_socket(struct poolc *c)
{
	struct sockaddr_un	 sun;
	int64_t			 deadline = deadline_after(c->timeout_ms);
	int			 saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (c->path[0] == '\0')
		return set_error(c, POOLC_ERR_IO, ENAMETOOLONG,
		    "cannot connect: the default socket path is too long");
	if (strlen(c->path) >= sizeof(sun.sun_path))
		return connect_failed(c, ENAMETOOLONG);
	memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
	if ((c->fd = new_socket()) == -1)
		return connect_failed(c, errno);
	if (connect_until(c->fd, &sun, deadline) == -1) {
		saved = errno;
		close(c->fd);
		c->fd = -1;
		return connect_failed(c, saved);
	}
	return 0;
}

static void
close_socket(struct poolc *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->len = c->scanned = 0;
	c->farewell[0] = '\0';
	c->subscribed = false;
}

struct poolc *
poolc_connect(const char *path, int timeout_ms)
{
	struct poolc	*c;
	char		 def[1024];

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fd = -1;
	c->timeout_ms = timeout_ms;
	/* "" stands for a default path too long to use. */
	if (path == NULL && (path = proto_default_socket(def,
	    sizeof(def))) == NULL)
		path = "";
	if ((c->path = strdup(path)) == NULL) {
		free(c);
		return NULL;
	}
	open_socket(c);
	return c;
}

void
poolc_free(struct poolc *c)
{
	if (c == NULL)
		return;
	close_socket(c);
	free(c->buf);
	free(c->path);
	free(c);
}

int
poolc_reconnect(struct poolc *c)
{
	close_socket(c);
	clear_error(c);
	return open_socket(c);
}

void
poolc_set_timeout(struct poolc *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms;
}

const char *
poolc_path(const struct poolc *c)
{
	return c->path;
}

/* --- errors, for callers --- */

enum poolc_err
poolc_error(const struct poolc *c)
{
	return c->err;
}

const char *
poolc_errstr(const struct poolc *c)
{
	return c->errstr;
}

int
poolc_errno(const struct poolc *c)
{
	return c->err_errno;
}

const char *
poolc_server_error(const struct poolc *c)
{
	return c->server_error;
}

/* --- one request, one reply --- */

/* Every call starts here: a sticky error stays, any other is forgotten. */
static int
begin(struct poolc *c)
{
	if (is_sticky(c->err))
		return -1;
	clear_error(c);
	if (c->fd == -1)
		return set_error(c, POOLC_ERR_IO, ENOTCONN, "not connected");
	/* Its replies would come between events: one job per connection. */
	if (c->subscribed)
		return set_error(c, POOLC_ERR_ARG, EINVAL, "this connection "
		    "is subscribed to events; use another for commands");
	return 0;
}

/* 0 when sent; 1 when poold has hung up, so what it said before is
 * still to be read; -1 with the error set. */
static int
send_all(struct poolc *c, const char *p, size_t len, int64_t deadline)
{
	ssize_t	 n;
	int	 r;

	while (len > 0) {
		if ((n = send(c->fd, p, len, SEND_FLAGS)) >= 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET)
			return 1;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return io_error(c, "write to", errno);
		if ((r = wait_fd(c->fd, POLLOUT, deadline)) == 0)
			return timed_out(c);
		if (r == -1)
			return io_error(c, "write to", errno);
	}
	return 0;
}

/* Room for one more read; never more than a maximal line needs. */
static int
grow_buffer(struct poolc *c)
{
	size_t	 want = c->len + READ_CHUNK_BYTES, cap;
	char	*p;

	if (c->cap >= want)
		return 0;
	cap = c->cap * 2 > want ? c->cap * 2 : want;
	if ((p = realloc(c->buf, cap)) == NULL)
		/* Part of a reply may be read already: the stream is lost. */
		return set_error(c, POOLC_ERR_IO, ENOMEM,
		    "out of memory reading a reply from poold");
	c->buf = p;
	c->cap = cap;
	return 0;
}

/* Reads what the socket has, waiting for it until deadline. */
static int
fill(struct poolc *c, int64_t deadline)
{
	ssize_t	 n;
	int	 r;

	if (grow_buffer(c) == -1)
		return -1;
	for (;;) {
		if ((n = recv(c->fd, c->buf + c->len, c->cap - c->len,
		    0)) > 0) {
			c->len += (size_t)n;
			return 0;
		}
		if (n == 0 && c->farewell[0] != '\0')
			return set_error(c, POOLC_ERR_IO, 0,
			    "connection closed by poold: %s", c->farewell);
		if (n == 0)
			return set_error(c, POOLC_ERR_IO, 0,
			    "connection closed by poold");
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return io_error(c, "read from", errno);
		if ((r = wait_fd(c->fd, POLLIN, deadline)) == 0)
			return timed_out(c);
		if (r == -1)
			return io_error(c, "read from", errno);
	}
}

static int
too_long(struct poolc *c)
{
	return set_error(c, POOLC_ERR_PROTOCOL, EMSGSIZE,
	    "reply from poold is longer than %d bytes", POOLC_REPLY_MAX_BYTES);
}

/*
 * The length of the next complete line in c->buf, reading as needed;
 * *consumed is what to drop once it is handled.  -1 with the error set.
 */
static long
next_line(struct poolc *c, int64_t deadline, size_t *consumed)
{
	long	 n;

	for (;;) {
		/* No memchr() on an empty, maybe NULL, buffer. */
		if (c->len > c->scanned && memchr(c->buf + c->scanned, '\n',
		    c->len - c->scanned) != NULL) {
			n = proto_line(c->buf, c->len, consumed);
			if (n > POOLC_REPLY_MAX_BYTES)
				return too_long(c);
			return n;
		}
		c->scanned = c->len;
		/* +1: a '\r' before the newline is not part of the line. */
		if (c->len > (size_t)POOLC_REPLY_MAX_BYTES + 1)
			return too_long(c);
		if (fill(c, deadline) == -1)
			return -1;
	}
}

static void
consume(struct poolc *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	c->scanned = 0;
}

/*
 * ACQUIRE and RELEASE read their replies with proto_decode_reply_flat(),
 * which needs no jansson objects; a reply it does not take goes through
 * proto_decode_reply() as any other.  flat->a receives an ACQUIRE's
 * fields; flat->used says the reply was read that way (rep->body NULL).
 */
struct flat {
	struct proto_acquired	*a;
	bool			 used;
};

/* The "error" code of an ok:false reply, as poold wrote it. */
static const char *
reply_code(const struct proto_reply *rep)
{
	/* The fast path takes only codes whose names are this string. */
	if (rep->body == NULL)
		return proto_err_name(rep->err);
	return json_string_value(json_object_get(rep->body, "error"));
}

/* 1 if the line is the reply to id (rep filled), 0 if it answers some
 * other id (skipped), -1 if it is no reply at all. */
static int
match_reply(struct poolc *c, const char *line, size_t len, int64_t id,
    struct proto_reply *rep, struct flat *flat)
{
	char			 msg[PROTO_MESSAGE_MAX];
	enum proto_id_kind	 kind;
	int64_t			 got;

	if (flat != NULL && proto_decode_reply_flat(line, len, rep, &kind,
	    &got, flat->a)) {
		flat->used = true;
		if (kind == PROTO_ID_INTEGER && got == id)
			return 1;
		if (!rep->ok && (kind == PROTO_ID_ABSENT ||
		    kind == PROTO_ID_NULL))
			snprintf(c->farewell, sizeof(c->farewell), "%s: %s",
			    reply_code(rep), rep->message);
		proto_reply_clear(rep);
		return 0;
	}
	if (flat != NULL)
		flat->used = false;
	if (proto_decode_reply(line, len, rep, msg, sizeof(msg)) != PROTO_OK)
		return set_error(c, POOLC_ERR_PROTOCOL, 0,
		    "bad reply from poold: %s", msg);
	if (json_is_integer(rep->id) && json_integer_value(rep->id) == id)
		return 1;
	if (!rep->ok && (rep->id == NULL || json_is_null(rep->id)))
		snprintf(c->farewell, sizeof(c->farewell), "%s: %s",
		    reply_code(rep), rep->message);
	proto_reply_clear(rep);
	return 0;
}

/*
 * Reads up to the reply to id.  On success rep holds it and, if raw is
 * not NULL, *raw a malloc'd copy of its line.
 */
static int
read_reply(struct poolc *c, int64_t id, int64_t deadline,
    struct proto_reply *rep, char **raw, struct flat *flat)
{
	size_t	 consumed;
	long	 n;
	int	 r;

	do {
		if ((n = next_line(c, deadline, &consumed)) == -1)
			return -1;
		/* poold-protocol(7): empty lines are ignored. */
		r = n == 0 ? 0 : match_reply(c, c->buf, (size_t)n, id, rep,
		    flat);
		if (r == 1 && raw != NULL && (*raw = strndup(c->buf,
		    (size_t)n)) == NULL) {
			proto_reply_clear(rep);
			r = set_error(c, POOLC_ERR_NOMEM, ENOMEM,
			    "out of memory");
		}
		consume(c, consumed);
	} while (r == 0);
	return r == 1 ? 0 : -1;
}

/* ok:false from poold: its code and message, not sticky. */
static int
server_error(struct poolc *c, const struct proto_reply *rep)
{
	/* The daemon's own string: a newer daemon may have newer codes. */
	const char	*code = reply_code(rep);

	if (code == NULL)
		code = proto_err_name(rep->err);
	/* A lost lease is news the caller acts on: a code of its own. */
	enum poolc_err	 err = strcmp(code, proto_err_name(PROTO_E_LEASE_LOST))
	    == 0 ? POOLC_ERR_LEASE_LOST : POOLC_ERR_SERVER;

	if (strcmp(rep->message, code) == 0 || rep->message[0] == '\0')
		set_error(c, err, 0, "%s", code);
	else
		set_error(c, err, 0, "%s: %s", code, rep->message);
	snprintf(c->server_error, sizeof(c->server_error), "%s", code);
	return -1;
}

/*
 * Sends req (its id is set here) and waits for its reply until wait_ms
 * (<= 0: no limit).  On success rep is the caller's to clear, and it says
 * "ok":true.  req is cleared in any case.
 */
static int
request(struct poolc *c, struct proto_request *req, int64_t wait_ms,
    struct proto_reply *rep, char **raw, struct flat *flat)
{
	int64_t	 id = ++c->last_id, deadline;
	char	*line;
	int	 r, saved;

	c->span_ms = wait_ms;
	deadline = deadline_after(wait_ms);
	if ((req->id = json_integer(id)) == NULL) {
		proto_request_clear(req);
		return set_error(c, POOLC_ERR_NOMEM, ENOMEM, "out of memory");
	}
	line = proto_encode_request(req);
	saved = errno;
	proto_request_clear(req);
	if (line == NULL)
		return set_error(c, saved == ENOMEM ? POOLC_ERR_NOMEM :
		    POOLC_ERR_ARG, saved, "cannot encode the request");
	r = send_all(c, line, strlen(line), deadline);
	free(line);
	/* After a hang-up, reading ends at EOF with poold's last words. */
	if (r == -1 || read_reply(c, id, deadline, rep, raw, flat) == -1)
		return -1;
	if (rep->ok)
		return 0;
	server_error(c, rep);
	proto_reply_clear(rep);
	if (raw != NULL) {
		free(*raw);
		*raw = NULL;
	}
	return -1;
}

/* Sends a request with nothing but a command. */
static int
simple_request(struct poolc *c, enum proto_cmd cmd, struct proto_reply *rep,
    char **raw)
{
	struct proto_request	 req;

	proto_request_init(&req);
	req.cmd = cmd;
	return request(c, &req, c->timeout_ms, rep, raw, NULL);
}

static int
set_model(struct poolc *c, struct proto_request *req, const char *model)
{
	if (model == NULL || !proto_model_name_ok(model))
		return set_error(c, POOLC_ERR_ARG, EINVAL,
		    "invalid model name \"%.*s\"", POOLC_MODEL_MAX,
		    model != NULL ? model : "(null)");
	memcpy(req->model, model, strlen(model) + 1);
	return 0;
}

/* --- commands --- */

/*
 * poold answers an ACQUIRE by its own deadline (busy, timeout), which
 * may be far beyond ours: with a timeout of its own, wait for that plus
 * the round trip; with the daemon's default, which we do not know, for as
 * long as it takes.
 */
static int64_t
acquire_wait_ms(const struct poolc *c, int timeout_ms)
{
	if (timeout_ms <= 0 || c->timeout_ms <= 0)
		return -1;
	return (int64_t)timeout_ms + c->timeout_ms;
}

static void
copy_acquired(struct poolc_server *out, const struct proto_acquired *a)
{
	memcpy(out->model, a->model, sizeof(out->model));
	out->port = a->port;
	memcpy(out->endpoint, a->endpoint, sizeof(out->endpoint));
	out->lease = a->lease;
	out->cold = a->cold;
	out->wait_ms = a->wait_ms;
	memcpy(out->api_key, a->api_key, sizeof(out->api_key));
	memcpy(out->node, a->node, sizeof(out->node));
}

int
poolc_acquire(struct poolc *c, const char *model,
    const struct poolc_acquire_opts *opts, struct poolc_server *out)
{
	struct proto_request	 req;
	struct proto_reply	 rep;
	struct proto_acquired	 a;
	struct flat		 flat = { &a, false };
	int			 timeout_ms = opts != NULL ? opts->timeout_ms : 0;
	enum proto_err		 perr;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (begin(c) == -1)
		return -1;
	proto_request_init(&req);
	if (set_model(c, &req, model) == -1)
		return -1;
	req.cmd = PROTO_CMD_ACQUIRE;
	req.hold = opts == NULL || !opts->no_lease;
	req.timeout_ms = timeout_ms > 0 ? timeout_ms : -1;
	if (request(c, &req, acquire_wait_ms(c, timeout_ms), &rep, NULL,
	    &flat) == -1)
		return -1;
	/* Read by the fast path, the reply's fields are in a already. */
	perr = flat.used ? PROTO_OK : proto_reply_acquired(&rep, &a);
	proto_reply_clear(&rep);
	if (perr != PROTO_OK)
		return set_error(c, POOLC_ERR_PROTOCOL, 0,
		    "bad reply from poold: ACQUIRE reply lacks model, port, "
		    "endpoint, cold or wait_ms");
	if (out != NULL)
		copy_acquired(out, &a);
	return 0;
}

/* RELEASE or LEASE of one lease: the request and its reply. */
static int
lease_request(struct poolc *c, enum proto_cmd cmd, int64_t lease,
    struct proto_reply *rep, struct flat *flat)
{
	struct proto_request	 req;

	if (begin(c) == -1)
		return -1;
	if (lease <= 0)
		return set_error(c, POOLC_ERR_ARG, EINVAL,
		    "invalid lease %" PRId64, lease);
	proto_request_init(&req);
	req.cmd = cmd;
	req.lease = lease;
	return request(c, &req, c->timeout_ms, rep, NULL, flat);
}

int
poolc_release(struct poolc *c, int64_t lease)
{
	struct proto_reply	 rep;
	struct flat		 flat = { NULL, false };

	if (lease_request(c, PROTO_CMD_RELEASE, lease, &rep, &flat) == -1)
		return -1;
	proto_reply_clear(&rep);
	return 0;
}

int
poolc_lease(struct poolc *c, int64_t lease, struct poolc_server *out)
{
	struct proto_reply	 rep;
	const char		*model, *endpoint, *key = "", *node = "";
	json_int_t		 got, port;
	int			 bad;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (lease_request(c, PROTO_CMD_LEASE, lease, &rep, NULL) == -1)
		return -1;
	bad = json_unpack(rep.body, "{s:I, s:s, s:I, s:s, s?s, s?s}", "lease",
	    &got, "model", &model, "port", &port, "endpoint", &endpoint,
	    "api_key", &key, "node", &node) != 0 ||
	    got != lease || port < 1 || port > 65535 ||
	    strlen(model) > POOLC_MODEL_MAX ||
	    strlen(endpoint) >= POOLC_ENDPOINT_MAX ||
	    strlen(key) > POOLC_API_KEY_MAX || strlen(node) >= POOLC_NODE_MAX;
	if (!bad && out != NULL) {
		snprintf(out->model, sizeof(out->model), "%s", model);
		snprintf(out->endpoint, sizeof(out->endpoint), "%s", endpoint);
		snprintf(out->api_key, sizeof(out->api_key), "%s", key);
		snprintf(out->node, sizeof(out->node), "%s", node);
		out->port = (int)port;
		out->lease = lease;
	}
	proto_reply_clear(&rep);
	if (bad)
		return set_error(c, POOLC_ERR_PROTOCOL, 0, "bad reply from "
		    "poold: LEASE reply lacks lease, model, port or endpoint");
	return 0;
}

int
poolc_evict(struct poolc *c, const char *model, bool force, int64_t *freed)
{
	struct proto_request	 req;
	struct proto_reply	 rep;
	json_t			*v;

	if (freed != NULL)
		*freed = 0;
	if (begin(c) == -1)
		return -1;
	proto_request_init(&req);
	if (set_model(c, &req, model) == -1)
		return -1;
	req.cmd = PROTO_CMD_EVICT;
	req.force = force;
	if (request(c, &req, c->timeout_ms, &rep, NULL, NULL) == -1)
		return -1;
	v = json_object_get(rep.body, "freed");
	if (freed != NULL && json_is_integer(v))
		*freed = json_integer_value(v);
	proto_reply_clear(&rep);
	return 0;
}

int
poolc_pin(struct poolc *c, const char *model, bool pin, char *priority,
    size_t len)
{
	struct proto_request	 req;
	struct proto_reply	 rep;
	const char		*p;

	if (priority != NULL && len > 0)
		priority[0] = '\0';
	if (begin(c) == -1)
		return -1;
	proto_request_init(&req);
	if (set_model(c, &req, model) == -1)
		return -1;
	req.cmd = pin ? PROTO_CMD_PIN : PROTO_CMD_UNPIN;
	if (request(c, &req, c->timeout_ms, &rep, NULL, NULL) == -1)
		return -1;
	p = json_string_value(json_object_get(rep.body, "priority"));
	if (priority != NULL && len > 0)
		snprintf(priority, len, "%s", p != NULL ? p : "");
	proto_reply_clear(&rep);
	return 0;
}

static int
raw_command(struct poolc *c, enum proto_cmd cmd, char **json)
{
	struct proto_reply	 rep;

	if (json != NULL)
		*json = NULL;
	if (begin(c) == -1)
		return -1;
	if (json == NULL)
		return set_error(c, POOLC_ERR_ARG, EINVAL, "json is NULL");
	if (simple_request(c, cmd, &rep, json) == -1)
		return -1;
	proto_reply_clear(&rep);
	return 0;
}

int
poolc_metrics(struct poolc *c, char **text)
{
	struct proto_reply	 rep;
	json_t			*v;

	if (text != NULL)
		*text = NULL;
	if (begin(c) == -1)
		return -1;
	if (text == NULL)
		return set_error(c, POOLC_ERR_ARG, EINVAL, "text is NULL");
	if (simple_request(c, PROTO_CMD_METRICS, &rep, NULL) == -1)
		return -1;
	v = json_object_get(rep.body, "text");
	if (!json_is_string(v)) {
		proto_reply_clear(&rep);
		return set_error(c, POOLC_ERR_PROTOCOL, 0,
		    "METRICS reply without \"text\"");
	}
	*text = strndup(json_string_value(v), json_string_length(v));
	proto_reply_clear(&rep);
	if (*text == NULL)
		return set_error(c, POOLC_ERR_NOMEM, ENOMEM, "out of memory");
	return 0;
}

int
poolc_stats(struct poolc *c, char **json)
{
	return raw_command(c, PROTO_CMD_STATS, json);
}

int
poolc_models(struct poolc *c, char **json)
{
	return raw_command(c, PROTO_CMD_MODELS, json);
}

int
poolc_reload(struct poolc *c, char **json)
{
	return raw_command(c, PROTO_CMD_RELOAD, json);
}

int
poolc_ping(struct poolc *c, char *version, size_t len)
{
	struct proto_reply	 rep;
	const char		*v;

	if (version != NULL && len > 0)
		version[0] = '\0';
	if (begin(c) == -1)
		return -1;
	if (simple_request(c, PROTO_CMD_PING, &rep, NULL) == -1)
		return -1;
	v = json_string_value(json_object_get(rep.body, "version"));
	if (version != NULL && len > 0 && v != NULL)
		snprintf(version, len, "%s", v);
	proto_reply_clear(&rep);
	return 0;
}

/* --- events --- */

int
poolc_subscribe(struct poolc *c)
{
	struct proto_reply	 rep;

	if (begin(c) == -1)
		return -1;
	if (simple_request(c, PROTO_CMD_SUBSCRIBE, &rep, NULL) == -1)
		return -1;
	proto_reply_clear(&rep);
	c->subscribed = true;
	return 0;
}

/*
 * One line of a subscribed connection: 1 and *json for an event, 0 for
 * a line to skip (empty; an error poold sent without an id before it
 * hangs up, kept for the message), -1 for anything else.
 */
static int
event_line(struct poolc *c, const char *line, size_t len, char **json)
{
	struct proto_reply	 rep;
	char			 msg[PROTO_MESSAGE_MAX];
	json_t			*o;
	int			 r;

	if (len == 0)
		return 0;
	if ((o = json_loadb(line, len, 0, NULL)) == NULL)
		return set_error(c, POOLC_ERR_PROTOCOL, 0,
		    "bad event from poold: not JSON");
	r = json_is_string(json_object_get(o, "event")) ? 1 : -1;
	json_decref(o);
	if (r == 1) {
		if ((*json = strndup(line, len)) == NULL)
			return set_error(c, POOLC_ERR_NOMEM, ENOMEM,
			    "out of memory");
		return 1;
	}
	if (proto_decode_reply(line, len, &rep, msg, sizeof(msg)) ==
	    PROTO_OK) {
		if (!rep.ok)
			snprintf(c->farewell, sizeof(c->farewell), "%s: %s",
			    reply_code(&rep), rep.message);
		proto_reply_clear(&rep);
		return 0;
	}
	return set_error(c, POOLC_ERR_PROTOCOL, 0,
	    "bad event from poold: no \"event\"");
}

int
poolc_event(struct poolc *c, int timeout_ms, char **json)
{
	int64_t		 deadline;
	size_t		 consumed;
	long		 n;
	int		 r;

	if (json == NULL)
		return set_error(c, POOLC_ERR_ARG, EINVAL, "json is NULL");
	*json = NULL;
	if (is_sticky(c->err))
		return -1;
	clear_error(c);
	if (c->fd == -1)
		return set_error(c, POOLC_ERR_IO, ENOTCONN, "not connected");
	if (!c->subscribed)
		return set_error(c, POOLC_ERR_ARG, EINVAL,
		    "not subscribed: call poolc_subscribe() first");
	deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	for (;;) {
		if (c->len > c->scanned && memchr(c->buf + c->scanned, '\n',
		    c->len - c->scanned) != NULL) {
			if ((n = proto_line(c->buf, c->len, &consumed)) >
			    POOLC_REPLY_MAX_BYTES)
				return too_long(c);
			r = event_line(c, c->buf, (size_t)n, json);
			consume(c, consumed);
			if (r != 0)
				return r == 1 ? 0 : -1;
			continue;
		}
		c->scanned = c->len;
		if (c->len > (size_t)POOLC_REPLY_MAX_BYTES + 1)
			return too_long(c);
		/* A wait that ends empty is no error: nothing came. */
		if ((r = wait_fd(c->fd, POLLIN, deadline)) == 0)
			return 0;
		if (r == -1)
			return io_error(c, "read from", errno);
		if (fill(c, deadline) == -1)
			return -1;
	}
}
