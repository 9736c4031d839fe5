/*
 * http.c — the OpenAI-compatible front door: the listener, the clients,
 * each request's way through.
 *
 * A client connection is a client of the pool like a socket's: it embeds
 * a dispatch session and sends it ACQUIRE (with hold) and RELEASE lines,
 * so leases, limits, the log and STATS are the socket's.  A request goes
 *
 *	HEAD → BODY → WAIT (the ACQUIRE) → PROXY (upstream.c) → back to HEAD
 *
 * or to REPLY when poold answers itself (errors, /v1/models, /health).
 * The lease is released once the response's last byte is written to the
 * client, or at once if the client goes away or the server fails.
 *
 * The pool answers inside its own calls; an answer is only recorded and
 * the connection queued, and http_reap() acts on it before the loop
 * sleeps, so that nothing is closed or released inside a pool callback.
 * Everything is non-blocking and bounded: the head, the body, the
 * pipelined input kept while a request runs, the output (past high water
 * the server's response is not read until the client has taken most of
 * it).
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>			/* malloc_trim */
#endif
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"
#include "http.h"
#include "upstream.h"

#define IN_BYTES		HTTP_HEAD_MAX	/* a client's unread input */
#define READ_MAX_PER_EVENT	(64 * 1024)	/* fairness between clients */
#define OUT_HIGH_WATER		(64 * 1024)	/* stop reading the server */
#define OUT_LOW_WATER		(16 * 1024)	/* read it again */
#define HANGUP_CHECK_S		1.0	/* a client not read: gone? */
#define ACCEPT_RETRY_S		1.0	/* after EMFILE / ENFILE */
#define ACCEPT_MAX_PER_EVENT	64	/* fairness with the open ones */
#define REFUSED_LOG_S		1.0	/* a flood logs once a second */
#define TRIM_AFTER_CONNS	32	/* a burst: see give_back() */
#define LISTEN_BACKLOG		SOMAXCONN	/* the kernel caps it anyway */
#define RETRY_AFTER_S		1	/* busy, shutting down */
#define LINGER_MS		2000	/* an unread body drained after an */
#define LINGER_MAX_BYTES	(1024 * 1024)	/* error, at most this */
#define ID_ACQUIRE		1	/* request ids of the session's lines */
#define ID_RELEASE		2

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

enum hstate {
	HS_HEAD,	/* reading a head (or idle between requests) */
	HS_BODY,	/* reading a proxied request's body */
	HS_WAIT,	/* ACQUIRE sent: waiting for the pool */
	HS_PROXY,	/* the server's response on its way */
	HS_REPLY,	/* poold's own response on its way */
	HS_LINGER,	/* answered, closing: the unread rest is drained */
	HS_EVENTS,	/* GET /events: the stream, until the client goes */
};

struct hconn {
	struct http		*h;
	struct session		 s;
	int			 fd;
	ev_io			 rio, wio;
	ev_timer		 timer;		/* idle, head or body progress */
	ev_timer		 hangup;	/* input not read: gone? */
	enum hstate		 state;
	struct http_msg		 req;
	struct http_verdict	 v;
	char			*in;		/* IN_BYTES */
	size_t			 in_len;
	struct outbuf		 out;
	bool			 dead;		/* close in http_reap() */
	bool			 keep_alive;	/* after this response */
	bool			 reply_done;	/* all of it is in out */
	bool			 queued;	/* on h->ready */
	bool			 answered;	/* the ACQUIRE's reply is in */
	bool			 counted;	/* in h->inflight */
	bool			 timing_head;	/* timer: head_timeout */
	bool			 up_failed;	/* the server cut its response */
	bool			 took;		/* the client took bytes just now */
	bool			 send_timed;	/* timer: the client's reading */
	bool			 shut_wr;	/* its FIN is sent */
	bool			 stream;	/* counted in h->nstreams */
	size_t			 drained;	/* HS_LINGER */
	/* The request's way through the pool. */
	char			 model[PROTO_MODEL_NAME_MAX + 1];
	int64_t			 lease;		/* 0: none held */
	char			 host[64];	/* numeric */
	int			 port;
	/* The server's key ("": none), sent in the client's stead. */
	char			 api_key[PROTO_API_KEY_MAX + 1];
	enum proto_err		 err;
	char			 errmsg[PROTO_MESSAGE_MAX];
	struct upstream		 up;
	/* For the log line. */
	pool_ms			 t_start, t_first;
	int			 status;
	uint64_t		 bytes;
	uint64_t		 body_held;	/* counted in h->body_bytes */
	TAILQ_ENTRY(hconn)	 link;
	TAILQ_ENTRY(hconn)	 ready_link;
};

struct http {
	struct daemon		*d;
	int			 fd;
	char			 listen[INET6_ADDRSTRLEN + 16];
	ev_io			 accept_watcher;
	ev_timer		 accept_retry;
	ev_idle			 idle;		/* http_reap() soon */
	TAILQ_HEAD(, hconn)	 conns;
	TAILQ_HEAD(, hconn)	 ready;
	unsigned		 nconns;
	unsigned		 nstreams;	/* of those, GET /events */
	unsigned		 conns_peak;	/* since the last give_back() */
	unsigned		 inflight;	/* requests past their head */
	unsigned long		 serial;
	uint64_t		 requests;	/* answered, in all */
	uint64_t		 errors;	/* of those, not 2xx/3xx */
	uint64_t		 refused;	/* connections: too many */
	ev_tstamp		 refused_logged;
	uint64_t		 bytes_out;
	uint64_t		 body_bytes;	/* held by all requests' bodies */
	uint64_t		 body_refused;	/* requests: max_body_total */
	char			*token;
	struct http_policy	 pol;
	bool			 loopback;	/* the listener's address */
};

static void	conn_close(struct hconn *);
static void	conn_close_gently(struct hconn *);
static void	conn_next(struct hconn *);

static const struct http_conf *
hconf(const struct hconn *c)
{
	return &c->h->d->conf->http;
}

/* The session's lines are named "http N" in the log, not "client N". */
#define SERIAL_BASE	1000000000UL

static void
conn_queue(struct hconn *c)
{
	struct http *h = c->h;

	if (!c->queued) {
		c->queued = true;
		TAILQ_INSERT_TAIL(&h->ready, c, ready_link);
		ev_idle_start(h->d->loop, &h->idle);
	}
}

static void
conn_kill(struct hconn *c)
{
	c->dead = true;
	conn_queue(c);
}

/* --- timers --- */

static void
timer_set(struct hconn *c, int64_t ms)
{
	struct ev_loop *loop = c->h->d->loop;

	ev_timer_stop(loop, &c->timer);
	if (ms > 0) {
		ev_timer_set(&c->timer, (double)ms / 1000, 0);
		ev_timer_start(loop, &c->timer);
	}
}

/* The message may quote a server's stderr, which need not be UTF-8. */
static char *
error_body(const char *message, const char *type, const char *code)
{
	json_t *text = proto_text(message);
	char *body;

	body = text != NULL ? http_error_body(json_string_value(text), type,
	    code) : NULL;
	json_decref(text);
	return body;
}

/* Best effort, once: the connection closes right after. */
static void
send_last_words(int fd, int status, const char *type, const char *code,
    const char *message, const char *extra)
{
	char *body, *r = NULL;
	size_t len;

	if ((body = error_body(message, type, code)) != NULL)
		r = http_response(status, "application/json", extra, body,
		    strlen(body), false, &len);
	if (r != NULL)
		(void)!send(fd, r, len, MSG_NOSIGNAL);
	free(r);
	free(body);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hconn *c = container_of(w, struct hconn, timer);
	char msg[128];

	if (c->state == HS_PROXY || c->state == HS_REPLY) {
		/* A client that stops reading would hold its lease, and
		 * with it a server's memory, for ever. */
		log_info("http %lu: %s: closed: took nothing of its response "
		    "for %g s (idle_timeout)", c->s.serial - SERIAL_BASE,
		    c->model[0] != '\0' ? c->model : "-",
		    (double)hconf(c)->idle_timeout_ms / 1000);
		conn_close(c);
		return;
	}
	if (c->state == HS_LINGER ||
	    (c->state == HS_HEAD && c->in_len == 0 && !c->timing_head)) {
		log_debug("http %lu: closed: idle", c->s.serial - SERIAL_BASE);
		conn_close(c);
		return;
	}
	/* A client that starts a request and never ends it (slowloris). */
	snprintf(msg, sizeof(msg), "request not sent within %g s "
	    "(head_timeout)", (double)hconf(c)->head_timeout_ms / 1000);
	log_info("http %lu: closed: %s", c->s.serial - SERIAL_BASE, msg);
	send_last_words(c->fd, 408, "invalid_request_error", "request_timeout",
	    msg, NULL);
	conn_close(c);
}

/* --- output --- */

/* Writes what the socket takes now.  -1: the client is gone. */
static int
write_some(struct hconn *c)
{
	ssize_t n = outbuf_write(&c->out, c->fd);

	if (n == -1)
		return -1;
	if (n > 0) {
		c->took = true;
		c->bytes += (size_t)n;
		c->h->bytes_out += (size_t)n;
	}
	return 0;
}

/*
 * While a response is on its way, a client that takes none of what waits
 * for it for idle_timeout is closed.  Only the client is timed: a server
 * may think for minutes before its first token (nothing waits then).
 */
static void
time_reader(struct hconn *c, size_t unsent)
{
	int64_t ms = hconf(c)->idle_timeout_ms;

	if (c->state != HS_PROXY && c->state != HS_REPLY)
		return;
	if (unsent == 0 || ms == 0) {
		ev_timer_stop(c->h->d->loop, &c->timer);
		c->send_timed = false;
	} else if (c->took || !c->send_timed) {
		timer_set(c, ms);
		c->send_timed = true;
	}
}

/* After a write: the response may be over, the server read again. */
static void
after_write(struct hconn *c)
{
	struct ev_loop *loop = c->h->d->loop;
	size_t unsent = outbuf_unsent(&c->out);

	if (unsent > 0)
		ev_io_start(loop, &c->wio);
	else
		ev_io_stop(loop, &c->wio);
	time_reader(c, unsent);
	c->took = false;
	if (c->state == HS_PROXY && upstream_active(&c->up) && c->up.paused &&
	    unsent <= OUT_LOW_WATER)
		upstream_resume(&c->up);
	if (unsent == 0 && c->reply_done) {
		/* The client's end of a response framed by the close is the
		 * FIN: it goes now, before the lease, the log line and the
		 * close (conn_close_gently() would shut the same side). */
		if (!c->keep_alive && !c->shut_wr &&
		    shutdown(c->fd, SHUT_WR) == 0)
			c->shut_wr = true;
		conn_queue(c);	/* the end: released in http_reap() */
	}
}

/* Queues bytes for the client, written by out_flush().  Never closes:
 * out of memory marks it dead. */
static void
out_queue(struct hconn *c, const char *p, size_t len)
{
	if (c->dead)
		return;
	if (!outbuf_add(&c->out, p, len)) {
		log_warnx("http %lu: out of memory for a response",
		    c->s.serial - SERIAL_BASE);
		conn_kill(c);
	}
}

/* Writes what the client takes now.  Never closes: a write error marks
 * it dead. */
static void
out_flush(struct hconn *c)
{
	if (c->dead)
		return;
	if (write_some(c) == -1) {
		conn_kill(c);
		return;
	}
	after_write(c);
}

static void
out_add(struct hconn *c, const char *p, size_t len)
{
	out_queue(c, p, len);
	out_flush(c);
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hconn *c = container_of(w, struct hconn, wio);

	if (write_some(c) == -1) {
		conn_close(c);
		return;
	}
	after_write(c);
}

/* --- poold's own responses --- */

static void
log_request(struct hconn *c)
{
	pool_ms now = daemon_now();

	log_info("http: %s %d %llu ttfb=%lldms total=%lldms",
	    c->model[0] != '\0' ? c->model : "-", c->status,
	    (unsigned long long)c->bytes,
	    (long long)(c->t_first > 0 ? c->t_first - c->t_start : 0),
	    (long long)(now - c->t_start));
}

/* A whole response from poold; the connection goes on if keep_alive. */
static void
reply(struct hconn *c, int status, const char *ctype, const char *extra,
    const char *body, size_t bodylen)
{
	size_t len;
	char *r;

	c->state = HS_REPLY;
	c->status = status;
	ev_timer_stop(c->h->d->loop, &c->timer);
	if ((r = http_response(status, ctype, extra, body, bodylen,
	    c->keep_alive, &len)) == NULL) {
		conn_kill(c);
		return;
	}
	c->t_first = daemon_now();
	c->reply_done = true;
	out_add(c, r, len);
	free(r);
}

static void
reply_error(struct hconn *c, int status, const char *type, const char *code,
    const char *message, const char *extra)
{
	char *body;

	if ((body = error_body(message, type, code)) == NULL) {
		conn_kill(c);
		return;
	}
	reply(c, status, "application/json", extra, body, strlen(body));
	free(body);
}

static void
reply_verdict(struct hconn *c)
{
	char allow[64];

	snprintf(allow, sizeof(allow), "Allow: %s\r\n",
	    c->v.route == HTTP_ROUTE_PROXY ? "POST" : "GET");
	reply_error(c, c->v.status, c->v.type, c->v.code, c->v.message,
	    c->v.status == 405 ? allow : NULL);
}

static void
reply_json(struct hconn *c, json_t *o)
{
	char *body;

	body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (body == NULL) {
		reply_error(c, 500, "server_error", "internal_error",
		    "out of memory", NULL);
		return;
	}
	reply(c, 200, "application/json", NULL, body, strlen(body));
	free(body);
}

/* OPTIONS from an allowed Origin. */
static void
reply_preflight(struct hconn *c)
{
	char extra[512];

	snprintf(extra, sizeof(extra), "Access-Control-Allow-Origin: %.*s\r\n"
	    "Vary: Origin\r\n"
	    "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
	    "Access-Control-Allow-Headers: Authorization, Content-Type, "
	    "x-api-key, OpenAI-Organization, OpenAI-Project\r\n"
	    "Access-Control-Max-Age: 600\r\n",
	    (int)(c->v.origin.len > 256 ? 256 : c->v.origin.len),
	    c->v.origin.p);
	reply(c, 204, NULL, extra, NULL, 0);
}

/* --- /v1/models --- */

static json_t *
model_entry_json(struct daemon *d, struct pool_model *m, const char *id,
    pool_ms now)
{
	const struct model_entry *e = m->udata;
	json_t *o;

	o = json_pack("{s:s, s:s, s:I, s:s, s:{s:s, s:I, s:s, s:I}}",
	    "id", id, "object", "model",
	    "created", (json_int_t)(e->mtime_ns / 1000000000),
	    "owned_by", "poold",
	    "poold", "state", pool_model_state(d->pool, m, now),
	    "memory", (json_int_t)m->mem,
	    "source", estimate_source_name(e->source),
	    "accounted", (json_int_t)(m->server != NULL ?
	    m->server->mem : 0));
	if (o != NULL && strcmp(id, m->name) != 0)
		json_object_set_new(json_object_get(o, "poold"), "alias_of",
		    json_string(m->name));
	return o;
}

static json_t *
models_json(struct daemon *d)
{
	const struct config *conf = d->conf;
	struct pool_model **all, *m;
	json_t *a;
	pool_ms now = daemon_now();
	size_t n, i;

	catalog_refresh(d);
	if ((a = json_array()) == NULL ||
	    (all = catalog_sorted(d, &n)) == NULL) {
		json_decref(a);
		return NULL;
	}
	for (i = 0; i < n; i++)
		json_array_append_new(a, model_entry_json(d, all[i],
		    all[i]->name, now));
	free(all);
	for (i = 0; i < conf->naliases; i++)
		if ((m = daemon_model(d, conf->aliases[2 * i + 1])) != NULL)
			json_array_append_new(a, model_entry_json(d, m,
			    conf->aliases[2 * i], now));
	return json_pack("{s:s, s:o}", "object", "list", "data", a);
}

/* --- the pool --- */

/*
 * A reply line into its id, its outcome and, for an ACQUIRE, the server:
 * the flat decoder for the replies the daemon writes, the full one
 * otherwise.  false if the line is no reply.
 */
static bool
decode_reply(const char *line, size_t len, int64_t *id, struct proto_reply *out,
    struct proto_acquired *a)
{
	struct proto_reply rep;
	enum proto_id_kind kind;
	char msg[PROTO_MESSAGE_MAX];

	memset(a, 0, sizeof(*a));
	if (proto_decode_reply_flat(line, len, out, &kind, id, a))
		return true;
	if (proto_decode_reply(line, len, &rep, msg, sizeof(msg)) != PROTO_OK)
		return false;
	*id = rep.id != NULL && json_is_integer(rep.id) ?
	    json_integer_value(rep.id) : 0;
	if (rep.ok && *id == ID_ACQUIRE)
		(void)proto_reply_acquired(&rep, a);
	*out = rep;
	out->body = NULL;		/* kept in rep until cleared */
	out->id = NULL;
	proto_reply_clear(&rep);
	return true;
}

/*
 * The host of an endpoint "http://HOST:PORT" or "http://[V6]:PORT", as
 * the ACQUIRE answered it (the server may run on another node).  -1 if
 * it is no such URL.
 */
static int
endpoint_host(const char *endpoint, char *host, size_t len)
{
	const char *p = endpoint, *end;
	size_t n;

	if (strncmp(p, "http://", 7) != 0)
		return -1;
	p += 7;
	if (*p == '[')
		end = strchr(++p, ']');
	else
		end = strchr(p, ':');
	if (end == NULL || (n = (size_t)(end - p)) == 0 || n >= len)
		return -1;
	memcpy(host, p, n);
	host[n] = '\0';
	return 0;
}

/* session.send: an answer of the pool, maybe inside its call: recorded. */
static void
session_send(struct session *s, char *line)
{
	struct hconn *c = container_of(s, struct hconn, s);
	struct proto_acquired a;
	struct proto_reply rep;
	int64_t id = 0;
	bool ok;

	if (line == NULL) {
		conn_kill(c);
		return;
	}
	ok = decode_reply(line, strlen(line) - 1, &id, &rep, &a);
	free(line);
	if (!ok) {
		log_warnx("http %lu: a reply poold cannot read",
		    s->serial - SERIAL_BASE);
		conn_kill(c);
		return;
	}
	if (id != ID_ACQUIRE || c->state != HS_WAIT || c->answered)
		return;		/* a RELEASE's: nothing to do */
	c->answered = true;
	c->err = rep.ok ? PROTO_OK : rep.err;
	snprintf(c->errmsg, sizeof(c->errmsg), "%s", rep.message);
	if (rep.ok) {
		c->lease = a.lease;
		c->port = a.port;
		memcpy(c->api_key, a.api_key, sizeof(c->api_key));
		if (endpoint_host(a.endpoint, c->host, sizeof(c->host)) == -1) {
			c->err = PROTO_E_INTERNAL;
			snprintf(c->errmsg, sizeof(c->errmsg), "no server "
			    "address in the endpoint \"%s\"", a.endpoint);
		}
	}
	conn_queue(c);
}

static void
send_line(struct hconn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
send_line(struct hconn *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(line))
		dispatch_line(&c->s, line, (size_t)n);
}

static void
release_lease(struct hconn *c)
{
	if (c->lease > 0)
		send_line(c, "{\"cmd\":\"RELEASE\",\"id\":%d,\"lease\":%lld}",
		    ID_RELEASE, (long long)c->lease);
	c->lease = 0;
}

/* The model is known by its name: ask the pool for its server. */
static void
acquire(struct hconn *c)
{
	c->state = HS_WAIT;
	c->answered = false;
	send_line(c, "{\"cmd\":\"ACQUIRE\",\"id\":%d,\"model\":\"%s\","
	    "\"hold\":true}", ID_ACQUIRE, c->model);
}

static void
reply_pool_error(struct hconn *c)
{
	char retry[64];

	snprintf(retry, sizeof(retry), "Retry-After: %d\r\n", RETRY_AFTER_S);
	switch (c->err) {
	case PROTO_E_BUSY:
		reply_error(c, 503, "server_error", "busy", c->errmsg, retry);
		break;
	case PROTO_E_SHUTTING_DOWN:
		reply_error(c, 503, "server_error", "shutting_down",
		    c->errmsg, retry);
		break;
	case PROTO_E_TIMEOUT:
		reply_error(c, 504, "server_error", "timeout", c->errmsg,
		    NULL);
		break;
	case PROTO_E_START_FAILED:
		reply_error(c, 502, "server_error", "start_failed", c->errmsg,
		    NULL);
		break;
	case PROTO_E_UNKNOWN_MODEL:
		/* Not the socket's message: it names poold's folder. */
		snprintf(c->errmsg, sizeof(c->errmsg), "the model '%s' does "
		    "not exist", c->model);
		reply_error(c, 404, "invalid_request_error", "model_not_found",
		    c->errmsg, NULL);
		break;
	case PROTO_E_TOO_LARGE:
		/* The request is fine; the machine cannot hold the model. */
		reply_error(c, 507, "server_error", "too_large", c->errmsg,
		    NULL);
		break;
	default:
		reply_error(c, 500, "server_error", proto_err_name(c->err),
		    c->errmsg, NULL);
		break;
	}
}

/* --- the server's response --- */

static int
up_head(void *ctx, const struct http_msg *resp)
{
	struct hconn *c = ctx;
	size_t len;
	char *head;

	if ((head = http_client_head(resp, &c->v.origin, &c->keep_alive,
	    &len)) == NULL)
		return -1;
	c->status = resp->status;
	c->t_first = daemon_now();
	out_queue(c, head, len);
	free(head);
	return 0;
}

static void
up_data(void *ctx, const char *p, size_t len)
{
	out_queue(ctx, p, len);
}

/* The end of one read from the server: what it brought goes out in one
 * write (a response's head and its first bytes together). */
static void
up_flush(void *ctx)
{
	struct hconn *c = ctx;

	out_flush(c);
	if (c->dead || outbuf_unsent(&c->out) > OUT_HIGH_WATER)
		upstream_pause(&c->up);
}

static void
up_done(void *ctx)
{
	struct hconn *c = ctx;

	c->reply_done = true;
	out_flush(c);
}

static void
up_fail(void *ctx, const char *why, bool relaying)
{
	struct hconn *c = ctx;

	log_warnx("http %lu: %s: %s", c->s.serial - SERIAL_BASE, c->model,
	    why);
	/* The lease ends now; the client is told in http_reap(). */
	if (relaying) {
		/* The response is cut: the client must see an error, not a
		 * short answer, so it ends without its last chunk (what came
		 * before the cut is still passed on). */
		c->keep_alive = false;
		c->up_failed = true;
		if (!c->dead)
			(void)write_some(c);
		conn_kill(c);
		return;
	}
	c->answered = true;
	c->err = PROTO_E__COUNT;
	snprintf(c->errmsg, sizeof(c->errmsg), "the server of '%s' failed: "
	    "%s", c->model, why);
	conn_queue(c);
}

static const struct upstream_ops up_ops = {
	up_head, up_data, up_flush, up_done, up_fail,
};

static void
proxy(struct hconn *c)
{
	char *head, err[256], where[sizeof(c->host) + 16];
	size_t len;
	bool v6 = strchr(c->host, ':') != NULL;

	snprintf(where, sizeof(where), "%s%s%s:%d", v6 ? "[" : "", c->host,
	    v6 ? "]" : "", c->port);
	head = http_upstream_head(&c->req, where, c->api_key,
	    c->req.body_len, &len);
	if (head == NULL) {
		release_lease(c);
		reply_error(c, 500, "server_error", "internal_error",
		    "out of memory", NULL);
		return;
	}
	c->state = HS_PROXY;
	/* HTTP/1.0 knows no chunks: the response is de-chunked for it. */
	if (upstream_start(&c->up, c->host, c->port, c->req.minor == 0, head,
	    len, c->req.body, c->req.body_len, err, sizeof(err)) == -1)
		up_fail(c, err, false);	/* answered in this http_reap() */
}

/* The ACQUIRE's answer, or a server that failed before its response. */
static void
act_on_answer(struct hconn *c)
{
	c->answered = false;
	if (c->state == HS_WAIT && c->err == PROTO_OK) {
		proxy(c);
		return;
	}
	release_lease(c);
	if (c->err == PROTO_E__COUNT)
		reply_error(c, 502, "server_error", "upstream_failed",
		    c->errmsg, NULL);
	else
		reply_pool_error(c);
}

/* The response is all written: the lease ends, the next request. */
static void
response_done(struct hconn *c)
{
	release_lease(c);
	log_request(c);
	c->h->requests++;
	if (c->status >= 400)
		c->h->errors++;
	if (c->counted) {
		c->h->inflight--;
		c->counted = false;
	}
	if (!c->keep_alive) {
		conn_close_gently(c);
		return;
	}
	conn_next(c);
}

void
http_reap(struct http *h)
{
	struct hconn *c;

	if (h == NULL)
		return;
	while ((c = TAILQ_FIRST(&h->ready)) != NULL) {
		TAILQ_REMOVE(&h->ready, c, ready_link);
		c->queued = false;
		if (c->dead)
			conn_close(c);
		else if (c->answered)
			act_on_answer(c);
		else if (c->reply_done && outbuf_unsent(&c->out) == 0)
			response_done(c);
	}
	ev_idle_stop(h->d->loop, &h->idle);
}

static void
idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	http_reap(w->data);
}

/* --- requests --- */

/* What all request bodies may hold at once (http.max_body_total). */
static uint64_t
bodies_max(const struct http *h)
{
	const struct http_conf *hc = &h->d->conf->http;

	if (hc->max_body_total != 0)
		return hc->max_body_total;
	return hc->max_body > CONF_DEFAULT_HTTP_BODIES ? hc->max_body :
	    CONF_DEFAULT_HTTP_BODIES;
}

/*
 * Counts what c's body holds, or will by its Content-Length, in the
 * bodies' total.  false if that would pass max_body_total: max_conns
 * clients each sending max_body must not take max_conns × max_body.
 */
static bool
body_admit(struct hconn *c)
{
	struct http *h = c->h;
	uint64_t want = c->req.body_cap;

	if (c->req.has_length && c->req.length > want)
		want = c->req.length;
	if (want <= c->body_held)
		return true;
	if (h->body_bytes - c->body_held + want > bodies_max(h))
		return false;
	h->body_bytes += want - c->body_held;
	c->body_held = want;
	return true;
}

static void
body_unheld(struct hconn *c)
{
	c->h->body_bytes -= c->body_held;
	c->body_held = 0;
}

static void
reply_bodies_full(struct hconn *c)
{
	char retry[64], msg[160];

	c->h->body_refused++;
	c->keep_alive = false;
	snprintf(retry, sizeof(retry), "Retry-After: %d\r\n", RETRY_AFTER_S);
	snprintf(msg, sizeof(msg), "request bodies being read take all of "
	    "max_body_total (%llu bytes); try again",
	    (unsigned long long)bodies_max(c->h));
	reply_error(c, 503, "server_error", "busy", msg, retry);
}

/* The body is in: its model, then the pool. */
static void
body_done(struct hconn *c)
{
	const char *name;
	char model[PROTO_MODEL_NAME_MAX + 2];
	const struct config *conf = c->h->d->conf;

	ev_timer_stop(c->h->d->loop, &c->timer);
	if (http_body_model(c->req.body, c->req.body_len, model,
	    sizeof(model), &c->v) == -1) {
		reply_verdict(c);
		return;
	}
	name = http_alias_resolve(conf->aliases, conf->naliases, model);
	snprintf(c->model, sizeof(c->model), "%s", name);
	if (!proto_model_name_ok(name)) {
		reply_error(c, 404, "invalid_request_error", "model_not_found",
		    "no such model (a model's name is letters, digits and "
		    "\"._+-\")", NULL);
		return;
	}
	acquire(c);
}

/* --- metrics, the status page, STATS as JSON --- */

static void
serve_metrics(struct hconn *c)
{
	char *text;
	size_t len;

	if ((text = metrics_text(c->h->d, &len)) == NULL) {
		reply_error(c, 500, "server_error", "internal_error",
		    "out of memory", NULL);
		return;
	}
	reply(c, 200, "text/plain; version=0.0.4; charset=utf-8",
	    "Cache-Control: no-store\r\n", text, len);
	free(text);
}

/*
 * The page holds no data (it needs no token); what it shows it fetches
 * with the token the user gives it.  Its policy lets only its own inline
 * script and style run and lets it talk only to poold.
 */
static void
serve_status(struct hconn *c)
{
	char extra[1024];
	const char *page;
	size_t len;

	page = status_page(&len);
	snprintf(extra, sizeof(extra), "Content-Security-Policy: %s\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "X-Frame-Options: DENY\r\n"
	    "Referrer-Policy: no-referrer\r\n"
	    "Cache-Control: no-store\r\n", status_csp());
	reply(c, 200, "text/html; charset=utf-8", extra, page, len);
}

static void
serve_pool(struct hconn *c)
{
	reply_json(c, daemon_stats(c->h->d));
}

/* --- issue 12: the event stream --- */

/*
 * GET /events: a response framed by the close (HTTP/1.1 with
 * "Connection: close" and neither a length nor chunks, which EventSource
 * and curl both take, HTTP/1.0 clients too), each event
 * "id: SEQ\ndata: JSON\n\n", a comment every SSE_KEEPALIVE_S so that
 * proxies and the client see the stream alive.  The connection is then
 * the stream's alone: it has no keep-alive or head timer (its timer
 * sends the comments), what the client sends is read and dropped (so
 * its close is seen at once), and a client too slow for its events is
 * dropped by events.c past EVENTS_UNSENT_MAX.
 */
#define SSE_KEEPALIVE_S		15.0
/*
 * The stream's kernel send buffer.  Loopback TCP's autotuning lets it
 * grow to megabytes, so a reader that stopped was seen (and dropped)
 * only after that much more; events are small and wanted now, never
 * bulk, so a fixed buffer costs nothing and bounds the kernel's part
 * too.
 */
#define SSE_SNDBUF_BYTES	(64 * 1024)

static size_t
sse_unsent(struct hconn *c)
{
	size_t unsent = outbuf_unsent(&c->out);

	if (unsent > EVENTS_UNSENT_MAX) {
		if (write_some(c) == -1) {
			conn_kill(c);
			return 0;
		}
		unsent = outbuf_unsent(&c->out);
	}
	/* The rest on POLLOUT: one write for all of this turn's events. */
	if (unsent > 0)
		ev_io_start(c->h->d->loop, &c->wio);
	return unsent;
}

/* events_sink.queue */
static size_t
sse_event(struct session *s, const char *json, size_t len, uint64_t seq)
{
	struct hconn *c = container_of(s, struct hconn, s);
	char id[48];
	int n;

	if (c->dead)
		return 0;
	n = snprintf(id, sizeof(id), "id: %llu\ndata: ",
	    (unsigned long long)seq);
	if (!outbuf_add(&c->out, id, (size_t)n) ||
	    !outbuf_add(&c->out, json, len) ||
	    !outbuf_add(&c->out, "\n\n", 2))
		return SIZE_MAX;
	return sse_unsent(c);
}

/* events_sink.drop: closed in http_reap, its backlog discarded. */
static void
sse_drop(struct session *s, const char *why)
{
	struct hconn *c = container_of(s, struct hconn, s);

	log_warnx("http %lu: %s", s->serial - SERIAL_BASE, why);
	conn_kill(c);
}

static const struct events_sink sse_sink = { sse_event, sse_drop };

static void
sse_keepalive_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	static const char ka[] = ": keepalive\n\n";
	struct hconn *c = container_of(w, struct hconn, timer);

	if (c->dead)
		return;
	if (!outbuf_add(&c->out, ka, sizeof(ka) - 1)) {
		conn_kill(c);
		return;
	}
	(void)events_check_unsent(&c->s, sse_unsent(c));
}

/* The client's input is not requests any more: read, dropped; its end
 * ends the stream at once. */
static void
sse_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hconn *c = container_of(w, struct hconn, rio);
	size_t total = 0;
	ssize_t n;

	while (total < READ_MAX_PER_EVENT && !c->dead) {
		n = read(c->fd, c->in, IN_BYTES);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			log_debug("http %lu: event stream closed by the client",
			    c->s.serial - SERIAL_BASE);
			conn_close(c);
			return;
		}
		total += (size_t)n;
	}
}

/* http.max_event_streams, else a quarter of max_conns (one of two or
 * three): streams never end on their own, and must not take the slots
 * requests need. */
static unsigned
streams_max(const struct http *h)
{
	const struct http_conf *hc = &h->d->conf->http;

	if (hc->max_event_streams > 0)
		return hc->max_event_streams;
	return hc->max_conns >= 4 ? hc->max_conns / 4 : hc->max_conns - 1;
}

static void
serve_events(struct hconn *c)
{
	struct http *h = c->h;
	struct ev_loop *loop = h->d->loop;
	char head[512], msg[160], retry[64];
	int n, sndbuf = SSE_SNDBUF_BYTES;

	if (h->nstreams >= streams_max(h)) {
		c->keep_alive = false;
		snprintf(retry, sizeof(retry), "Retry-After: %d\r\n",
		    RETRY_AFTER_S);
		snprintf(msg, sizeof(msg), "%u event streams are open, the "
		    "most http.max_event_streams allows; try again later",
		    h->nstreams);
		reply_error(c, 503, "server_error", "busy", msg, retry);
		return;
	}
	(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf));
	n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/event-stream\r\n"
	    "Cache-Control: no-cache\r\n"
	    "X-Accel-Buffering: no\r\n"
	    "%s%.*s%s"
	    "Connection: close\r\n\r\n",
	    c->v.origin.len > 0 ? "Access-Control-Allow-Origin: " : "",
	    (int)(c->v.origin.len > 256 ? 256 : c->v.origin.len),
	    c->v.origin.len > 0 ? c->v.origin.p : "",
	    c->v.origin.len > 0 ? "\r\nVary: Origin\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head)) {
		reply_error(c, 500, "server_error", "internal_error",
		    "response head too long", NULL);
		return;
	}
	/* Answered: the stream is no request in flight, and its end is no
	 * error. */
	c->state = HS_EVENTS;
	c->stream = true;
	h->nstreams++;
	c->status = 200;
	c->keep_alive = false;
	c->t_first = daemon_now();
	log_request(c);
	h->requests++;
	if (c->counted) {
		h->inflight--;
		c->counted = false;
	}
	c->in_len = 0;
	ev_timer_stop(loop, &c->hangup);
	ev_set_cb(&c->rio, sse_read_cb);
	ev_io_start(loop, &c->rio);
	ev_timer_stop(loop, &c->timer);
	ev_set_cb(&c->timer, sse_keepalive_cb);
	ev_timer_set(&c->timer, SSE_KEEPALIVE_S, SSE_KEEPALIVE_S);
	ev_timer_start(loop, &c->timer);
	c->s.events_sink = &sse_sink;
	out_add(c, head, (size_t)n);
	events_subscribe(&c->s);
}

static void
route(struct hconn *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	switch (c->v.route) {
	case HTTP_ROUTE_PREFLIGHT:
		reply_preflight(c);
		break;
	case HTTP_ROUTE_HEALTH:
		reply(c, 200, "application/json", NULL, "{\"status\":\"ok\"}",
		    15);
		break;
	case HTTP_ROUTE_MODELS:
		reply_json(c, models_json(c->h->d));
		break;
	case HTTP_ROUTE_METRICS:
		serve_metrics(c);
		break;
	case HTTP_ROUTE_STATUS:
		serve_status(c);
		break;
	case HTTP_ROUTE_POOL:
		serve_pool(c);
		break;
	case HTTP_ROUTE_EVENTS:
		serve_events(c);
		break;
	case HTTP_ROUTE_PROXY:
		if (!body_admit(c)) {
			reply_bodies_full(c);
			break;
		}
		c->state = HS_BODY;
		/* Only now, after the checks, may the client send it. */
		if (c->req.expect_continue && !c->req.done)
			out_add(c, cont, sizeof(cont) - 1);
		timer_set(c, hconf(c)->head_timeout_ms);
		if (c->req.done)
			body_done(c);
		break;
	default:
		break;
	}
}

static void
head_done(struct hconn *c)
{
	struct http *h = c->h;

	c->t_start = daemon_now();
	c->keep_alive = c->req.keep_alive;
	c->counted = true;
	h->inflight++;
	http_check_head(&c->req, &h->pol, &c->v);
	/* A body not read cannot be told from the next request's head. */
	if (!c->req.done && (c->v.status != 0 ||
	    c->v.route != HTTP_ROUTE_PROXY))
		c->keep_alive = false;
	if (c->v.status != 0) {
		reply_verdict(c);
		return;
	}
	route(c);
}

static void
consume(struct hconn *c, size_t used)
{
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
}

/* Bad framing, a head too long, a body too large: said, then closed. */
static void
scan_failed(struct hconn *c)
{
	if (!c->counted) {
		c->t_start = daemon_now();
		c->counted = true;
		c->h->inflight++;
	}
	c->keep_alive = false;
	reply_error(c, c->req.err_status, c->req.err_status >= 500 ?
	    "server_error" : "invalid_request_error", c->req.err_code,
	    c->req.err, NULL);
}

/* Feeds the input to the request's scanner while a request is read. */
static void
process_input(struct hconn *c)
{
	enum http_scan r;
	size_t used;

	while (!c->dead && (c->state == HS_HEAD || c->state == HS_BODY) &&
	    c->in_len > 0) {
		r = http_msg_feed(&c->req, c->in, c->in_len, &used);
		consume(c, used);
		if (r == HTTP_SCAN_ERROR) {
			scan_failed(c);
			return;
		}
		if (c->state == HS_BODY && !body_admit(c)) {
			reply_bodies_full(c);
			return;
		}
		if (r == HTTP_SCAN_HEAD)
			head_done(c);
		else if (r == HTTP_SCAN_DONE && c->state == HS_BODY)
			body_done(c);
		else if (r == HTTP_SCAN_MORE)
			break;
	}
}

/*
 * Has the client gone?  Linux says so with POLLRDHUP even while its
 * input is unread; elsewhere only a full close (POLLHUP) is seen.
 */
static bool
peer_gone(int fd)
{
	struct pollfd pfd;
	int n;

	pfd.fd = fd;
	pfd.events = POLLIN;
#ifdef POLLRDHUP
	pfd.events |= POLLRDHUP;
#endif
	pfd.revents = 0;
	while ((n = poll(&pfd, 1, 0)) == -1 && errno == EINTR)
		;
#ifdef POLLRDHUP
	if (n == 1 && (pfd.revents & POLLRDHUP))
		return true;
#endif
	return n == 1 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL));
}

static void
hangup_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hconn *c = container_of(w, struct hconn, hangup);

	if (peer_gone(c->fd))
		conn_close(c);
}

/* Its input is full while a request runs: stop reading, watch for a
 * hang-up instead (the pipelined rest waits in the buffer). */
static void
stop_reading(struct hconn *c)
{
	struct ev_loop *loop = c->h->d->loop;

	ev_io_stop(loop, &c->rio);
	ev_timer_set(&c->hangup, HANGUP_CHECK_S, HANGUP_CHECK_S);
	ev_timer_start(loop, &c->hangup);
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hconn *c = container_of(w, struct hconn, rio);
	size_t total = 0;
	ssize_t n;

	while (total < READ_MAX_PER_EVENT && !c->dead) {
		if (c->state == HS_LINGER) {
			c->drained += c->in_len;
			c->in_len = 0;
			if (c->drained > LINGER_MAX_BYTES) {
				conn_close(c);
				return;
			}
		}
		if (c->in_len == IN_BYTES) {
			stop_reading(c);
			return;
		}
		n = read(c->fd, c->in + c->in_len, IN_BYTES - c->in_len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* Gone: its waiter is dropped, its lease ended. */
			conn_close(c);
			return;
		}
		c->in_len += (size_t)n;
		total += (size_t)n;
		if (c->state == HS_HEAD && !c->timing_head) {
			c->timing_head = true;
			timer_set(c, hconf(c)->head_timeout_ms);
		} else if (c->state == HS_BODY)
			timer_set(c, hconf(c)->head_timeout_ms);
		process_input(c);
		/* A request handed on: what else comes is read next turn,
		 * not tried now for an EAGAIN. */
		if (c->state != HS_HEAD && c->state != HS_BODY &&
		    c->state != HS_LINGER)
			break;
	}
}

/* Ready for the connection's next request. */
static void
conn_next(struct hconn *c)
{
	struct ev_loop *loop = c->h->d->loop;

	body_unheld(c);
	/* A big body is not kept by an idle connection. */
	if (c->req.body_cap > OUTBUF_KEEP_BYTES) {
		free(c->req.body);
		c->req.body = NULL;
		c->req.body_cap = 0;
	}
	http_msg_reset(&c->req);
	memset(&c->v, 0, sizeof(c->v));
	c->state = HS_HEAD;
	c->reply_done = c->answered = false;
	c->send_timed = c->took = false;
	c->model[0] = '\0';
	c->status = 0;
	c->bytes = 0;
	c->t_first = 0;
	c->timing_head = c->in_len > 0;
	timer_set(c, c->timing_head ? hconf(c)->head_timeout_ms :
	    hconf(c)->idle_timeout_ms);
	ev_timer_stop(loop, &c->hangup);
	ev_io_start(loop, &c->rio);
	process_input(c);
}

/*
 * The response is out and the connection ends.  If the client may still
 * be sending (a body not read after an error, pipelined requests), a
 * close now would make the kernel answer its data with a reset, which can
 * destroy the response before the client reads it: the writing side is
 * shut, and what comes is read and dropped (LINGER_MS, LINGER_MAX_BYTES)
 * until the client closes, as nginx's lingering close does.
 */
static void
conn_close_gently(struct hconn *c)
{
	struct ev_loop *loop = c->h->d->loop;

	if (c->in_len == 0 && c->req.done) {
		conn_close(c);
		return;
	}
	if (!c->shut_wr && shutdown(c->fd, SHUT_WR) == -1) {
		conn_close(c);
		return;
	}
	c->shut_wr = true;
	c->state = HS_LINGER;
	c->drained = c->in_len;
	c->in_len = 0;
	ev_timer_stop(loop, &c->hangup);
	timer_set(c, LINGER_MS);
	ev_io_start(loop, &c->rio);
}

/* --- connections --- */

/*
 * Many connections' buffers, freed, stay in the C library's heap: after
 * a burst of 1,000 streams poold kept 50 MiB it no longer used.  When
 * the last connection of a burst (TRIM_AFTER_CONNS at once or more)
 * closes, that memory goes back to the system; a lone client's closes
 * cost nothing.
 */
static void
give_back(struct http *h)
{
	if (h->conns_peak < TRIM_AFTER_CONNS)
		return;
	h->conns_peak = 0;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void
conn_close(struct hconn *c)
{
	struct http *h = c->h;
	struct ev_loop *loop = h->d->loop;

	if (c->counted) {
		if ((c->state == HS_WAIT || c->state == HS_PROXY) &&
		    !c->up_failed)
			log_info("http %lu: %s: the client went away%s",
			    c->s.serial - SERIAL_BASE, c->model,
			    c->lease > 0 ? "; lease released" : "");
		if (c->status == 0)
			c->status = 499;	/* nginx's "client closed" */
		log_request(c);
		h->inflight--;
		h->requests++;
		h->errors++;
	}
	upstream_free(&c->up);
	body_unheld(c);
	session_end(&c->s);		/* drops its waiter, ends its lease */
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_timer_stop(loop, &c->timer);
	ev_timer_stop(loop, &c->hangup);
	close(c->fd);
	if (c->queued)
		TAILQ_REMOVE(&h->ready, c, ready_link);
	TAILQ_REMOVE(&h->conns, c, link);
	h->nconns--;
	if (c->stream)
		h->nstreams--;
	http_msg_free(&c->req);
	free(c->in);
	outbuf_free(&c->out);
	free(c);
	if (h->nconns == 0)
		give_back(h);
}

static struct hconn *
conn_new(struct http *h, int fd)
{
	struct ev_loop *loop = h->d->loop;
	struct hconn *c;
	int one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->in = malloc(IN_BYTES)) == NULL) {
		free(c);
		return NULL;
	}
	c->h = h;
	c->fd = fd;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	session_init(&c->s, h->d, SERIAL_BASE + ++h->serial, session_send);
	http_msg_init(&c->req, false, HTTP_HEAD_MAX, hconf(c)->max_body);
	upstream_init(&c->up, loop, &up_ops, c);
	ev_io_init(&c->rio, read_cb, fd, EV_READ);
	ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
	ev_init(&c->timer, timer_cb);
	ev_init(&c->hangup, hangup_cb);
	TAILQ_INSERT_TAIL(&h->conns, c, link);
	h->nconns++;
	if (h->nconns > h->conns_peak)
		h->conns_peak = h->nconns;
	ev_io_start(loop, &c->rio);
	timer_set(c, hconf(c)->idle_timeout_ms);
	return c;
}

/* An HTTP request takes two descriptors: the client's, the server's. */
static bool
room_for_conn(struct http *h)
{
	return h->nconns < h->d->conf->http.max_conns &&
	    control_fds_room(h->d->control) >= 2;
}

static void
refuse_conn(struct http *h, int fd)
{
	ev_tstamp now = ev_now(h->d->loop);

	h->refused++;
	/* A flood is said once a second, not once a connection. */
	if (now - h->refused_logged >= REFUSED_LOG_S) {
		log_warnx("http: refused %llu connections in all: %u open "
		    "(max_conns %u, or the descriptor reserve)",
		    (unsigned long long)h->refused, h->nconns,
		    h->d->conf->http.max_conns);
		h->refused_logged = now;
	}
	send_last_words(fd, 503, "server_error", "busy", "too many "
	    "connections (http.max_conns, or descriptors); try again later",
	    "Retry-After: 1\r\n");
	close(fd);
}

static void
accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http *h = w->data;

	ev_io_start(loop, &h->accept_watcher);
}

/*
 * Takes up to ACCEPT_MAX_PER_EVENT waiting connections (a burst is not
 * one turn of the loop each) and reads each one's request at once: a
 * client writes right after its connect, so it is often there already,
 * and then it costs no second turn either.
 */
static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http *h = w->data;
	struct hconn *c;
	int fd, i;

	for (i = 0; i < ACCEPT_MAX_PER_EVENT; i++) {
		if ((fd = fd_accept(h->fd)) == -1) {
			if (errno == EMFILE || errno == ENFILE) {
				log_warn("http: accept: pausing for %.0f s",
				    ACCEPT_RETRY_S);
				ev_io_stop(loop, &h->accept_watcher);
				ev_timer_set(&h->accept_retry, ACCEPT_RETRY_S,
				    0);
				ev_timer_start(loop, &h->accept_retry);
			} else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("http: accept");
			return;
		}
		if (!room_for_conn(h)) {
			refuse_conn(h, fd);
			continue;
		}
		if ((c = conn_new(h, fd)) == NULL) {
			log_warnx("http: out of memory for a connection");
			close(fd);
			continue;
		}
		read_cb(loop, &c->rio, EV_READ);	/* may close c */
	}
}

/* --- the listener --- */

/* "127.0.0.1:8080", "[::1]:8080", "localhost:0" → host and port. */
static int
split_listen(const char *s, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	const char *colon, *end;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL || end[1] != ':')
			return -1;
		colon = end + 1;
		s++;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		end = colon;
	}
	if ((size_t)(end - s) >= hostlen || strlen(colon + 1) >= portlen ||
	    colon[1] == '\0')
		return -1;
	memcpy(host, s, (size_t)(end - s));
	host[end - s] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

static bool
addr_is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6;
	const uint8_t *b;

	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family != AF_INET6)
		return false;
	s6 = (const struct sockaddr_in6 *)(const void *)sa;
	b = s6->sin6_addr.s6_addr;
	if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && b[12] == 127;
}

static void
format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	} else {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	}
}

static int
listen_tcp(struct http *h, const char *spec, bool have_token, char *err,
    size_t len)
{
	struct addrinfo hints, *res;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256], port[16];
	int fd, one = 1, rc;

	if (split_listen(spec, host, sizeof(host), port, sizeof(port)) == -1) {
		snprintf(err, len, "http.listen \"%s\": expected ADDRESS:PORT",
		    spec);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, len, "http.listen \"%s\": %s", spec,
		    gai_strerror(rc));
		return -1;
	}
	h->loopback = addr_is_loopback(res->ai_addr);
	if (!h->loopback && !have_token) {
		snprintf(err, len, "http.listen \"%s\" is not a loopback "
		    "address: anyone who reaches it could use the models; set "
		    "http.token_file", spec);
		freeaddrinfo(res);
		return -1;
	}
	if ((fd = fd_socket(res->ai_family, SOCK_STREAM)) == -1) {
		snprintf(err, len, "http: socket: %s", strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
		    sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		snprintf(err, len, "http: listen on %s: %s", spec,
		    strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	format_addr((struct sockaddr *)&ss, h->listen, sizeof(h->listen));
	h->fd = fd;
	return 0;
}

/* One line, the token; no one but poold's user may read the file. */
static int
read_token(struct http *h, const char *path, char *err, size_t len)
{
	char buf[4097];
	struct stat st;
	ssize_t n;
	size_t l;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, len, "http.token_file %s: %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, len, "http.token_file %s: mode %04o lets others "
		    "read or write it; chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, len, "http.token_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	buf[n] = '\0';
	l = strcspn(buf, "\r\n");
	if ((size_t)n == sizeof(buf) - 1 || l == 0 ||
	    buf[l + strspn(buf + l, "\r\n")] != '\0' ||
	    strpbrk(buf, " \t") != NULL) {
		snprintf(err, len, "http.token_file %s: expected one line, "
		    "the token (no blanks, at most 4096 bytes)", path);
		return -1;
	}
	buf[l] = '\0';
	if ((h->token = strdup(buf)) == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	h->pol.token = h->token;
	h->pol.token_len = l;
	return 0;
}

/*
 * An event stream never ends on its own: one a token let in must not
 * outlive the token.  Its client (EventSource) comes back with the one
 * it has now.
 */
static void
end_streams(struct http *h, const char *why)
{
	struct hconn *c;

	TAILQ_FOREACH(c, &h->conns, link)
		if (c->stream && !c->dead) {
			log_info("http %lu: event stream ended: %s",
			    c->s.serial - SERIAL_BASE, why);
			conn_kill(c);
		}
}

/*
 * A reload.  Only the listener stays as it was (http.listen needs a
 * restart); the rest is read from d->conf where it is used, except what
 * the policy holds: the token, the CORS origins and max_body.  A request
 * already past its head was judged by the old ones; the next is judged
 * by the new.  Event streams, which never end, end with their token.
 */
int
http_reconfigure(struct http *h, const struct config *conf, char *err,
    size_t len)
{
	const struct http_conf *hc = &conf->http;
	struct http fresh;

	if (h == NULL)
		return 0;
	memset(&fresh, 0, sizeof(fresh));
	if (hc->token_file != NULL &&
	    read_token(&fresh, hc->token_file, err, len) == -1)
		return -1;
	if (fresh.token == NULL && !h->loopback) {
		snprintf(err, len, "http.listen %s is not a loopback address: "
		    "http.token_file cannot be removed without a restart",
		    h->listen);
		return -1;
	}
	if (fresh.pol.token_len != h->pol.token_len || (fresh.token != NULL &&
	    memcmp(fresh.token, h->token, fresh.pol.token_len) != 0))
		end_streams(h, "the token changed");
	free(h->token);
	h->token = fresh.token;
	h->pol.token = fresh.pol.token;
	h->pol.token_len = fresh.pol.token_len;
	h->pol.cors_origins = hc->cors_origins;
	h->pol.ncors = hc->ncors;
	h->pol.max_body = hc->max_body;
	return 0;
}

int
http_check_aliases(struct daemon *d, char *err, size_t len)
{
	const struct config *conf = d->conf;
	const char *alias, *model;
	size_t i;

	for (i = 0; i < conf->naliases; i++) {
		alias = conf->aliases[2 * i];
		model = conf->aliases[2 * i + 1];
		if (config_model(conf, alias) != NULL ||
		    daemon_model(d, alias) != NULL) {
			snprintf(err, len, "alias \"%s\" is also the name of "
			    "a model", alias);
			return -1;
		}
		if (config_model(conf, model) == NULL &&
		    daemon_model(d, model) == NULL) {
			snprintf(err, len, "alias \"%s\" names an unknown "
			    "model \"%s\" (not in %s nor in \"models\")",
			    alias, model, conf->models_dir);
			return -1;
		}
	}
	return 0;
}

struct http *
http_open(struct daemon *d, char *err, size_t len)
{
	const struct http_conf *hc = &d->conf->http;
	struct http *h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	h->d = d;
	h->fd = -1;
	TAILQ_INIT(&h->conns);
	TAILQ_INIT(&h->ready);
	h->pol.cors_origins = hc->cors_origins;
	h->pol.ncors = hc->ncors;
	h->pol.max_body = hc->max_body;
	if ((hc->token_file != NULL &&
	    read_token(h, hc->token_file, err, len) == -1) ||
	    listen_tcp(h, hc->listen, h->token != NULL, err, len) == -1) {
		http_free(h);
		return NULL;
	}
	ev_io_init(&h->accept_watcher, accept_cb, h->fd, EV_READ);
	h->accept_watcher.data = h;
	ev_init(&h->accept_retry, accept_retry_cb);
	h->accept_retry.data = h;
	ev_idle_init(&h->idle, idle_cb);
	h->idle.data = h;
	ev_io_start(d->loop, &h->accept_watcher);
	log_info("http: listening on %s%s", h->listen, h->token != NULL ?
	    " (token required)" : "");
	return h;
}

void
http_close_listener(struct http *h)
{
	if (h == NULL || h->fd == -1)
		return;
	ev_io_stop(h->d->loop, &h->accept_watcher);
	ev_timer_stop(h->d->loop, &h->accept_retry);
	close(h->fd);
	h->fd = -1;
}

void
http_free(struct http *h)
{
	struct hconn *c;

	if (h == NULL)
		return;
	http_close_listener(h);
	/* An event stream's last events (the servers' exits at a shutdown)
	 * wait for POLLOUT, which will not come: what the socket takes now. */
	TAILQ_FOREACH(c, &h->conns, link)
		if (c->stream && !c->dead)
			(void)write_some(c);
	while ((c = TAILQ_FIRST(&h->conns)) != NULL)
		conn_close(c);
	ev_idle_stop(h->d->loop, &h->idle);
	free(h->token);
	free(h);
}

json_t *
http_stats(const struct http *h)
{
	return json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I,"
	    " s:I, s:I}",
	    "listen", h->listen, "conns", (int)h->nconns,
	    "max_conns", (int)h->d->conf->http.max_conns,
	    "event_streams", (int)h->nstreams,
	    "max_event_streams", (int)streams_max(h),
	    "requests", (int)h->inflight,
	    "requests_total", (json_int_t)h->requests,
	    "errors_total", (json_int_t)h->errors,
	    "refused_total", (json_int_t)h->refused,
	    "bytes_out", (json_int_t)h->bytes_out,
	    "body_bytes", (json_int_t)h->body_bytes,
	    "body_refused_total", (json_int_t)h->body_refused);
}

unsigned
http_conns(const struct http *h)
{
	return h != NULL ? h->nconns : 0;
}
