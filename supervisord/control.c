/*
 * control.c — the UNIX socket: clients, their buffers, their requests.
 *
 * Replies are queued on the client and written in one go before the loop
 * sleeps (as Redis does), so a burst of pipelined requests costs one
 * write.  Nothing here closes a client from inside a pool callback: a
 * client that must go is marked dead and closed before the loop sleeps.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

#define READ_CHUNK_BYTES	16384
#define READ_MAX_PER_EVENT	(64 * 1024)	/* fairness between clients */
#define ACCEPT_RETRY_S		1.0		/* after EMFILE / ENFILE */

struct client;

/* A request the pool answers later. */
struct request {
	struct pool_waiter	 w;
	struct client		*c;
	json_t			*id;
	enum proto_cmd		 cmd;
	TAILQ_ENTRY(request)	 link;
};

struct client {
	struct control		*ctl;
	unsigned long		 serial;
	int			 fd;
	ev_io			 read_watcher, write_watcher;
	char			*in;
	size_t			 in_len, in_cap;
	char			*out;
	size_t			 out_len, out_off, out_cap;
	struct pool_owner	 owner;
	TAILQ_HEAD(, request)	 requests;
	unsigned		 npending;
	bool			 dead;		/* close before the loop sleeps */
	bool			 closing;	/* close once the output is out */
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
};

static void	client_close(struct client *);

/* --- output --- */

static void
client_queue_flush(struct client *c)
{
	if (!c->flush_queued) {
		c->flush_queued = true;
		TAILQ_INSERT_TAIL(&c->ctl->to_flush, c, flush_link);
	}
}

/* Takes line (malloc'd, ends in '\n'); NULL means out of memory. */
static void
client_send(struct client *c, char *line)
{
	size_t len, need, cap;
	char *nb;

	if (line == NULL) {
		log_warnx("client %lu: out of memory for a reply; dropped",
		    c->serial);
		c->dead = true;
		client_queue_flush(c);
		return;
	}
	len = strlen(line);
	if (c->dead) {
		free(line);
		return;
	}
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	need = c->out_len + len;
	if (need - c->out_off > c->ctl->d->conf->outbuf_bytes) {
		log_warnx("client %lu: dropped: %zu bytes of replies unread "
		    "(limit %zu)", c->serial, need - c->out_off,
		    c->ctl->d->conf->outbuf_bytes);
		free(line);
		c->dead = true;
		client_queue_flush(c);
		return;
	}
	if (need > c->out_cap) {
		for (cap = c->out_cap ? c->out_cap : 4096; cap < need; cap *= 2)
			;
		if ((nb = realloc(c->out, cap)) == NULL) {
			free(line);
			c->dead = true;
			client_queue_flush(c);
			return;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, line, len);
	c->out_len += len;
	free(line);
	client_queue_flush(c);
}

static void
send_error(struct client *c, json_t *id, enum proto_err err, const char *msg)
{
	client_send(c, proto_encode_error(id, err, msg));
}

/* 0: all written or waiting for POLLOUT; -1: the client is gone. */
static int
client_flush(struct client *c)
{
	struct ev_loop *loop = c->ctl->d->loop;
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(loop, &c->write_watcher);
			return 0;
		}
		if (n == -1)
			return -1;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
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

/* --- requests --- */

static struct request *
request_new(struct client *c, const struct proto_request *req)
{
	struct request *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->c = c;
	r->cmd = req->cmd;
	r->id = req->id != NULL ? json_incref(req->id) : NULL;
	TAILQ_INSERT_TAIL(&c->requests, r, link);
	c->npending++;
	return r;
}

static void
request_free(struct request *r)
{
	TAILQ_REMOVE(&r->c->requests, r, link);
	r->c->npending--;
	json_decref(r->id);
	free(r);
}

static char *
encode_answer(const struct request *r, const struct pool_answer *a)
{
	struct proto_acquired acq;
	const struct pool_server *srv = a->server;
	json_t *body;
	char *line;

	if (a->err != PROTO_OK)
		return proto_encode_error(r->id, a->err, a->message);
	if (r->cmd == PROTO_CMD_ACQUIRE) {
		memset(&acq, 0, sizeof(acq));
		snprintf(acq.model, sizeof(acq.model), "%s", srv->model->name);
		acq.port = srv->port;
		snprintf(acq.endpoint, sizeof(acq.endpoint),
		    "http://127.0.0.1:%d", srv->port);
		acq.lease = a->lease;
		acq.cold = a->cold;
		acq.wait_ms = a->wait_ms;
		return proto_encode_acquired(r->id, &acq);
	}
	body = json_pack("{s:s, s:I}", "model", r->w.model->name, "freed",
	    (json_int_t)(srv != NULL ? srv->mem : 0));
	line = proto_encode_ok(r->id, body);
	json_decref(body);
	return line;
}

void
control_answer(void *ctx, struct pool_waiter *w, const struct pool_answer *a)
{
	struct request *r = (struct request *)w;	/* w is the first member */
	struct client *c = r->c;

	client_send(c, encode_answer(r, a));
	request_free(r);
}

/* --- commands --- */

static struct pool_model *
find_model(struct client *c, const struct proto_request *req)
{
	struct daemon *d = c->ctl->d;
	struct pool_model *m;
	char msg[PROTO_MESSAGE_MAX];

	if ((m = daemon_model(d, req->model)) != NULL)
		return m;
	snprintf(msg, sizeof(msg), "no model named '%s' in %s (a model is a "
	    "file NAME.gguf there)", req->model, d->conf->models_dir);
	send_error(c, req->id, PROTO_E_UNKNOWN_MODEL, msg);
	return NULL;
}

static void
cmd_acquire(struct client *c, const struct proto_request *req)
{
	struct daemon *d = c->ctl->d;
	struct pool_model *m;
	struct request *r;
	pool_ms now, timeout;

	if ((m = find_model(c, req)) == NULL)
		return;
	if ((r = request_new(c, req)) == NULL) {
		send_error(c, req->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	timeout = req->timeout_ms >= 0 ? req->timeout_ms :
	    d->conf->acquire_timeout_ms;
	now = daemon_now();
	/* r may be answered, and freed, before this returns. */
	pool_acquire(d->pool, now, &r->w, &c->owner, m, req->hold,
	    now + timeout);
}

static void
cmd_release(struct client *c, const struct proto_request *req)
{
	char msg[128];

	if (pool_release(c->ctl->d->pool, daemon_now(), req->lease) == 0) {
		client_send(c, proto_encode_ok(req->id, NULL));
		return;
	}
	snprintf(msg, sizeof(msg), "no lease %lld (released already, or "
	    "never given)", (long long)req->lease);
	send_error(c, req->id, PROTO_E_NOT_FOUND, msg);
}

static void
cmd_evict(struct client *c, const struct proto_request *req)
{
	struct pool_model *m;
	struct request *r;

	if ((m = find_model(c, req)) == NULL)
		return;
	if ((r = request_new(c, req)) == NULL) {
		send_error(c, req->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	pool_evict(c->ctl->d->pool, daemon_now(), &r->w, &c->owner, m,
	    req->force);
}

static void
cmd_reply_json(struct client *c, const struct proto_request *req,
    json_t *body)
{
	if (body == NULL) {
		send_error(c, req->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	client_send(c, proto_encode_ok(req->id, body));
	json_decref(body);
}

static void
dispatch(struct client *c, const struct proto_request *req)
{
	struct daemon *d = c->ctl->d;
	char msg[128];

	if (c->npending >= d->conf->max_pending &&
	    (req->cmd == PROTO_CMD_ACQUIRE || req->cmd == PROTO_CMD_EVICT)) {
		snprintf(msg, sizeof(msg), "too many requests waiting on this "
		    "connection (%u); wait for replies", d->conf->max_pending);
		send_error(c, req->id, PROTO_E_BUSY, msg);
		return;
	}
	switch (req->cmd) {
	case PROTO_CMD_ACQUIRE:
		cmd_acquire(c, req);
		break;
	case PROTO_CMD_RELEASE:
		cmd_release(c, req);
		break;
	case PROTO_CMD_EVICT:
		cmd_evict(c, req);
		break;
	case PROTO_CMD_STATS:
		cmd_reply_json(c, req, daemon_stats(d));
		break;
	case PROTO_CMD_MODELS:
		cmd_reply_json(c, req, daemon_models(d));
		break;
	case PROTO_CMD_PING:
		cmd_reply_json(c, req, json_pack("{s:s}", "version",
		    POOLD_VERSION));
		break;
	default:
		send_error(c, req->id, PROTO_E_UNKNOWN_COMMAND,
		    "unknown command");
		break;
	}
}

static void
handle_line(struct client *c, const char *line, size_t len)
{
	struct proto_request req;
	char msg[PROTO_MESSAGE_MAX];
	enum proto_err err;

	proto_request_init(&req);
	err = proto_decode_request(line, len, &req, msg, sizeof(msg));
	if (err != PROTO_OK) {
		log_debug("client %lu: %s: %s", c->serial,
		    proto_err_name(err), msg);
		send_error(c, req.id, err, msg);
	} else if (c->ctl->d->stopping) {
		send_error(c, req.id, PROTO_E_SHUTTING_DOWN,
		    "poold is shutting down");
	} else
		dispatch(c, &req);
	proto_request_clear(&req);
}

/* --- input --- */

static void
line_too_long(struct client *c)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "line longer than %d bytes; closing the "
	    "connection", PROTO_LINE_MAX_BYTES);
	log_warnx("client %lu: %s", c->serial, msg);
	send_error(c, NULL, PROTO_E_BAD_REQUEST, msg);
	c->closing = true;
	ev_io_stop(c->ctl->d->loop, &c->read_watcher);
}

static void
handle_lines(struct client *c)
{
	size_t off = 0, consumed;
	long len;

	while (!c->dead && !c->closing) {
		len = proto_line(c->in + off, c->in_len - off, &consumed);
		if (len < 0) {
			if (c->in_len - off > PROTO_LINE_MAX_BYTES)
				line_too_long(c);
			break;
		}
		if ((size_t)len > PROTO_LINE_MAX_BYTES) {
			line_too_long(c);
			break;
		}
		if (len > 0)
			handle_line(c, c->in + off, (size_t)len);
		off += consumed;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

/* Room for another read; the buffer grows up to one line's limit. */
static bool
input_room(struct client *c)
{
	size_t max = PROTO_LINE_MAX_BYTES + 2, cap;
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

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;
	size_t total = 0;
	ssize_t n;

	while (total < READ_MAX_PER_EVENT && !c->dead && !c->closing &&
	    input_room(c)) {
		n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			if (n == -1)
				log_warn("client %lu: read", c->serial);
			client_close(c);
			return;
		}
		c->in_len += (size_t)n;
		total += (size_t)n;
		handle_lines(c);
	}
}

/* --- clients --- */

static void
client_close(struct client *c)
{
	struct control *ctl = c->ctl;
	struct request *r;

	log_debug("client %lu: closed (%u pending, leases released)",
	    c->serial, c->npending);
	pool_owner_gone(ctl->d->pool, daemon_now(), &c->owner);
	while ((r = TAILQ_FIRST(&c->requests)) != NULL)
		request_free(r);
	ev_io_stop(ctl->d->loop, &c->read_watcher);
	ev_io_stop(ctl->d->loop, &c->write_watcher);
	close(c->fd);
	if (c->flush_queued)
		TAILQ_REMOVE(&ctl->to_flush, c, flush_link);
	TAILQ_REMOVE(&ctl->clients, c, link);
	ctl->nclients--;
	free(c->in);
	free(c->out);
	free(c);
}

static void
refuse_client(struct control *ctl, int fd)
{
	char *line, msg[128];

	snprintf(msg, sizeof(msg), "too many clients (%u); try again later",
	    ctl->d->conf->max_clients);
	if ((line = proto_encode_error(NULL, PROTO_E_BUSY, msg)) != NULL) {
		(void)!send(fd, line, strlen(line), MSG_NOSIGNAL);
		free(line);
	}
	close(fd);
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
	int fd;

	if ((fd = fd_accept(ctl->fd)) == -1) {
		if (errno == EMFILE || errno == ENFILE) {
			/* Out of descriptors: pause instead of spinning. */
			log_warn("accept: pausing for %.0f s", ACCEPT_RETRY_S);
			ev_io_stop(loop, &ctl->accept_watcher);
			ev_timer_start(loop, &ctl->accept_retry);
		} else if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	if (ctl->nclients >= ctl->d->conf->max_clients) {
		refuse_client(ctl, fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->ctl = ctl;
	c->fd = fd;
	c->serial = ++ctl->serial;
	pool_owner_init(&c->owner);
	TAILQ_INIT(&c->requests);
	ev_io_init(&c->read_watcher, read_cb, fd, EV_READ);
	ev_io_init(&c->write_watcher, write_cb, fd, EV_WRITE);
	c->read_watcher.data = c->write_watcher.data = c;
	ev_io_start(loop, &c->read_watcher);
	TAILQ_INSERT_TAIL(&ctl->clients, c, link);
	ctl->nclients++;
	log_debug("client %lu: connected", c->serial);
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
listen_unix(const char *path, unsigned mode, char *err, size_t len)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, len, "%s: socket path too long (max %zu)", path,
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = fd_socket(AF_UNIX, SOCK_STREAM)) == -1) {
		snprintf(err, len, "socket: %s", strerror(errno));
		return -1;
	}
	/* The lock is ours, so a socket file left here is stale. */
	(void)unlink(path);
	old = umask(0177);	/* never a moment with a wider mode */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(err, len, "bind %s: %s", path, strerror(errno));
		umask(old);
		close(fd);
		return -1;
	}
	umask(old);
	if (chmod(path, mode) == -1 || listen(fd, 128) == -1) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		close(fd);
		(void)unlink(path);
		return -1;
	}
	return fd;
}

struct control *
control_open(struct daemon *d, const char *path, unsigned mode, char *err,
    size_t len)
{
	struct control *ctl;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL ||
	    (ctl->path = strdup(path)) == NULL) {
		free(ctl);
		snprintf(err, len, "out of memory");
		return NULL;
	}
	ctl->d = d;
	TAILQ_INIT(&ctl->clients);
	TAILQ_INIT(&ctl->to_flush);
	if ((ctl->fd = listen_unix(path, mode, err, len)) == -1) {
		free(ctl->path);
		free(ctl);
		return NULL;
	}
	ev_io_init(&ctl->accept_watcher, accept_cb, ctl->fd, EV_READ);
	ctl->accept_watcher.data = ctl;
	ev_timer_init(&ctl->accept_retry, accept_retry_cb, ACCEPT_RETRY_S, 0);
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
