/*
 * peer.c — poold-to-poold links over TCP (see peer.h for the handshake
 * and the limits).  The listener side: accepted connections, each a
 * small state machine (handshake → open → closed).  The origin side: one
 * pipelined connection per other node (down → connecting → handshake →
 * up), reconnected on demand with a capped backoff.
 *
 * Objects are freed only when no callback of theirs is running (busy):
 * a callback may close its own link or send on it.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"
#include "proto.h"
#include "peer.h"
#include "sha256.h"

#define PEER_NONCE_BYTES	32
#define PEER_NAME_MAX		63
#define PEER_ADDR_MAX		80
#define PEER_READ_BYTES		(64 * 1024)
#define PEER_BACKOFF_MIN_MS	100
#define PEER_BACKOFF_MAX_MS	5000
#define PEER_ID_SLOTS		(2 * PEER_INFLIGHT_MAX)
#define PEER_GREETING		"poold-peer 1 "
#define PEER_CTX_ORIGIN		"poold-peer 1 origin\n"
#define PEER_CTX_LISTENER	"poold-peer 1 listener\n"

static int64_t	 peer_handshake_ms = PEER_HANDSHAKE_MS;

void
peer_set_handshake_ms(int64_t ms)
{
	peer_handshake_ms = ms > 0 ? ms : PEER_HANDSHAKE_MS;
}

/* --- shared pieces --- */

/* Bytes read but not yet a whole line. */
struct inbuf {
	char	*buf;
	size_t	 len, cap;
};

/* Reads what the socket has; 1 data, 0 EOF, -1 error, -2 nothing yet,
 * -3 a line longer than PEER_LINE_MAX. */
static int
inbuf_read(struct inbuf *in, int fd)
{
	size_t	 want = PEER_READ_BYTES, cap;
	ssize_t	 n;
	char	*nb;

	if (in->len > PEER_LINE_MAX &&
	    memchr(in->buf, '\n', in->len) == NULL)
		return -3;
	if (in->cap - in->len < want) {
		for (cap = in->cap ? in->cap : want; cap - in->len < want;
		    cap *= 2)
			;
		if ((nb = realloc(in->buf, cap)) == NULL)
			return -1;
		in->buf = nb;
		in->cap = cap;
	}
	do
		n = recv(fd, in->buf + in->len, want, 0);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
	if (n == 0)
		return 0;
	in->len += (size_t)n;
	return 1;
}

/* The next whole line (NUL ended in place), or NULL; -3 via *toolong. */
static char *
inbuf_line(struct inbuf *in, size_t *off, size_t *len, bool *toolong)
{
	size_t	 consumed;
	long	 n;
	char	*p = in->buf + *off;

	*toolong = false;
	n = proto_line(p, in->len - *off, &consumed);
	if (n < 0) {
		*toolong = in->len - *off > PEER_LINE_MAX;
		return NULL;
	}
	if ((size_t)n >= PEER_LINE_MAX) {
		*toolong = true;
		return NULL;
	}
	p[n] = '\0';
	*len = (size_t)n;
	*off += consumed;
	return p;
}

static void
inbuf_drop(struct inbuf *in, size_t off)
{
	memmove(in->buf, in->buf + off, in->len - off);
	in->len -= off;
	if (in->len == 0 && in->cap > OUTBUF_KEEP_BYTES) {
		free(in->buf);
		in->buf = NULL;
		in->cap = 0;
	}
}

static void
inbuf_free(struct inbuf *in)
{
	free(in->buf);
	memset(in, 0, sizeof(*in));
}

static int64_t
now_ms(struct ev_loop *loop)
{
	return (int64_t)(ev_now(loop) * 1000);
}

static void
mac(const unsigned char *secret, size_t secret_len, const char *ctx,
    const unsigned char *ns, const unsigned char *nc,
    unsigned char out[SHA256_BYTES])
{
	const void	*parts[3] = { ctx, ns, nc };
	size_t		 lens[3] = { strlen(ctx), PEER_NONCE_BYTES,
			    PEER_NONCE_BYTES };

	hmac_sha256(secret, secret_len, 3, parts, lens, out);
}

static bool
name_ok(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > PEER_NAME_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') &&
		    !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') &&
		    s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* "1.2.3.4:80", "[::1]:80"; host NULL: the port alone (bind to any). */
static int
parse_addr(const char *addr, bool want_port, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	char		 host[PEER_ADDR_MAX];
	const char	*port = "0", *end;
	struct addrinfo	 hints, *res;
	size_t		 hl;
	bool		 bracketed = addr[0] == '[';

	if (bracketed) {
		if ((end = strchr(addr, ']')) == NULL)
			return -1;
		hl = (size_t)(end - addr - 1);
		addr++;
		end++;
		if (*end == ':')
			port = end + 1;
		else if (*end != '\0' || want_port)
			return -1;
	} else if ((end = strrchr(addr, ':')) != NULL && want_port) {
		hl = (size_t)(end - addr);
		port = end + 1;
	} else if (want_port)
		return -1;
	else
		hl = strlen(addr);
	if (hl >= sizeof(host) || *port == '\0')
		return -1;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	/* An IPv6 address and a port: only in brackets, never ambiguous. */
	if (want_port && !bracketed && strchr(host, ':') != NULL)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void
addr_name(const struct sockaddr_storage *ss, socklen_t len, char *buf,
    size_t size)
{
	char	 host[INET6_ADDRSTRLEN + 1], port[8];

	if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host),
	    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(buf, size, "?");
	else if (ss->ss_family == AF_INET6)
		snprintf(buf, size, "[%s]:%s", host, port);
	else
		snprintf(buf, size, "%s:%s", host, port);
}

int
peer_secret_load(const char *path, unsigned char *secret, size_t *len,
    char *err, size_t errlen)
{
	struct stat	 st;
	ssize_t		 n;
	size_t		 got = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "%s: mode %04o: the secret must be "
		    "readable by its owner only (chmod 600)", path,
		    (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	while (got < PEER_SECRET_MAX + 1) {
		n = read(fd, secret + got, PEER_SECRET_MAX - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == PEER_SECRET_MAX) {
			char	 extra;

			if (read(fd, &extra, 1) == 1)
				got++;
			break;
		}
	}
	if (got < PEER_SECRET_MIN || got > PEER_SECRET_MAX) {
		snprintf(err, errlen, "%s: %zu bytes: a secret is %d to %d "
		    "bytes", path, got, PEER_SECRET_MIN, PEER_SECRET_MAX);
		goto fail;
	}
	close(fd);
	*len = got;
	return 0;
fail:
	close(fd);
	memset(secret, 0, PEER_SECRET_MAX);
	return -1;
}

/* --- the listener --- */

enum peer_in_state { IN_HANDSHAKE, IN_OPEN, IN_CLOSED };

struct peer_in {
	LIST_ENTRY(peer_in)	 entry;
	struct peer_listener	*l;
	int			 fd;
	enum peer_in_state	 state;
	ev_io			 rio, wio;
	ev_timer		 timer;		/* handshake, then idle */
	int64_t			 last_line_ms;
	unsigned char		 ns[PEER_NONCE_BYTES];
	char			 addr[PEER_ADDR_MAX];
	struct inbuf		 in;
	struct outbuf		 out;
	void			*ctx;
	int			 busy;
};

struct peer_listener {
	struct ev_loop			*loop;
	int				 fd;
	ev_io				 io;
	unsigned char			 secret[PEER_SECRET_MAX];
	size_t				 secret_len;
	int64_t				 idle_ms;
	const struct peer_listener_ops	*ops;
	void				*arg;
	LIST_HEAD(, peer_in)		 links;
	unsigned			 nlinks;
};

static void
in_free(struct peer_in *pin)
{
	LIST_REMOVE(pin, entry);
	pin->l->nlinks--;
	inbuf_free(&pin->in);
	outbuf_free(&pin->out);
	free(pin);
}

static void
in_close(struct peer_in *pin, const char *why)
{
	struct peer_listener	*l = pin->l;
	enum peer_in_state	 was = pin->state;

	if (was == IN_CLOSED)
		return;
	pin->state = IN_CLOSED;
	ev_io_stop(l->loop, &pin->rio);
	ev_io_stop(l->loop, &pin->wio);
	ev_timer_stop(l->loop, &pin->timer);
	close(pin->fd);
	pin->fd = -1;
	if (was == IN_OPEN) {
		log_info("peer %s: link closed: %s", pin->addr, why);
		pin->busy++;
		l->ops->closed(pin->ctx, why);
		pin->busy--;
	}
	if (pin->busy == 0)
		in_free(pin);
}

static void
in_flush(struct peer_in *pin)
{
	if (outbuf_unsent(&pin->out) > 0)
		ev_io_start(pin->l->loop, &pin->wio);
}

static void
in_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct peer_in	*pin = w->data;

	if (outbuf_write(&pin->out, pin->fd) == -1) {
		in_close(pin, strerror(errno));
		return;
	}
	if (outbuf_unsent(&pin->out) == 0)
		ev_io_stop(loop, w);
}

void
peer_in_send(struct peer_in *pin, char *line)
{
	if (pin->state != IN_OPEN) {
		free(line);
		return;
	}
	if (line == NULL || !outbuf_add(&pin->out, line, strlen(line))) {
		free(line);
		in_close(pin, "out of memory");
		return;
	}
	free(line);
	if (outbuf_unsent(&pin->out) > PEER_OUT_MAX) {
		in_close(pin, "output full (the peer does not read)");
		return;
	}
	in_flush(pin);
}

/* The origin's answer: hex(Nc) " " hex(MAC) " " NAME. */
static void
in_handshake_line(struct peer_in *pin, char *line, size_t len)
{
	struct peer_listener	*l = pin->l;
	unsigned char		 nc[PEER_NONCE_BYTES], want[SHA256_BYTES];
	unsigned char		 got[SHA256_BYTES];
	char			 reply[3 + 2 * SHA256_BYTES + 2];
	const char		*name = line + 2 * (PEER_NONCE_BYTES +
				    SHA256_BYTES) + 2;
	void			*ctx;

	if (len <= 2 * (PEER_NONCE_BYTES + SHA256_BYTES) + 2 ||
	    line[2 * PEER_NONCE_BYTES] != ' ' ||
	    name[-1] != ' ' ||
	    sha256_unhex(line, 2 * PEER_NONCE_BYTES, nc, sizeof(nc)) == -1 ||
	    sha256_unhex(line + 2 * PEER_NONCE_BYTES + 1, 2 * SHA256_BYTES,
	    got, sizeof(got)) == -1 ||
	    !name_ok(name, strlen(name))) {
		log_warnx("peer %s: handshake failed: not a poold peer",
		    pin->addr);
		in_close(pin, "bad handshake");
		return;
	}
	mac(l->secret, l->secret_len, PEER_CTX_ORIGIN, pin->ns, nc, want);
	if (!sha256_equal(want, got, sizeof(want))) {
		/* Best effort: the origin learns why, then the link ends. */
		(void)send(pin->fd, "denied\n", 7, MSG_NOSIGNAL);
		log_warnx("peer %s: handshake failed: wrong secret",
		    pin->addr);
		in_close(pin, "wrong secret");
		return;
	}
	mac(l->secret, l->secret_len, PEER_CTX_LISTENER, pin->ns, nc, want);
	memcpy(reply, "ok ", 3);
	sha256_hex(want, sizeof(want), reply + 3);
	strcat(reply, "\n");
	if (!outbuf_add(&pin->out, reply, strlen(reply))) {
		in_close(pin, "out of memory");
		return;
	}
	pin->busy++;
	ctx = l->ops->open(l->arg, pin, name, pin->addr);
	pin->busy--;
	if (ctx == NULL) {
		in_close(pin, "refused");
		return;
	}
	pin->ctx = ctx;
	pin->state = IN_OPEN;
	pin->last_line_ms = now_ms(l->loop);
	ev_timer_stop(l->loop, &pin->timer);
	if (l->idle_ms > 0) {
		ev_timer_set(&pin->timer, l->idle_ms / 1000.0, 0.);
		ev_timer_start(l->loop, &pin->timer);
	}
	log_info("peer %s: link from %s open", pin->addr, name);
	in_flush(pin);
}

/*
 * A link's PING is answered here, not by ops->line: the link's liveness
 * does not depend on what the application does with its lines.
 */
static bool
in_ping(struct peer_in *pin, const char *line, size_t len)
{
	static const char	 tail[] = ",\"cmd\":\"PING\"}";
	size_t			 tl = sizeof(tail) - 1, idl;
	char			*reply;

	if (len < 7 + tl || strncmp(line, "{\"id\":", 6) != 0 ||
	    strcmp(line + len - tl, tail) != 0)
		return false;
	idl = len - tl - 6;
	if (idl > 20 || strspn(line + 6, "0123456789") != idl)
		return false;
	if ((reply = malloc(idl + 32)) == NULL) {
		in_close(pin, "out of memory");
		return true;
	}
	snprintf(reply, idl + 32, "{\"id\":%.*s,\"ok\":true}\n", (int)idl,
	    line + 6);
	peer_in_send(pin, reply);
	return true;
}

static void
in_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct peer_in	*pin = w->data;
	size_t		 off = 0, len;
	char		*line;
	bool		 toolong;
	int		 r;

	r = inbuf_read(&pin->in, pin->fd);
	if (r == -2)
		return;
	if (r == -3) {
		in_close(pin, "line too long");
		return;
	}
	if (r <= 0) {
		in_close(pin, r == 0 ? (pin->in.len > 0 ?
		    "closed mid-line" : "closed by the peer") : strerror(errno));
		return;
	}
	pin->busy++;
	while (pin->state != IN_CLOSED &&
	    (line = inbuf_line(&pin->in, &off, &len, &toolong)) != NULL) {
		if (pin->state == IN_HANDSHAKE) {
			in_handshake_line(pin, line, len);
			continue;
		}
		pin->last_line_ms = now_ms(loop);
		if (!in_ping(pin, line, len))
			pin->l->ops->line(pin->ctx, line, len);
	}
	pin->busy--;
	if (pin->state != IN_CLOSED && toolong) {
		in_close(pin, "line too long");
		return;
	}
	if (pin->state == IN_CLOSED) {
		if (pin->busy == 0)
			in_free(pin);
		return;
	}
	inbuf_drop(&pin->in, off);
}

static void
in_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct peer_in	*pin = w->data;
	int64_t		 left;

	if (pin->state == IN_HANDSHAKE) {
		log_warnx("peer %s: handshake failed: no answer in %" PRId64
		    " ms", pin->addr, peer_handshake_ms);
		in_close(pin, "handshake timed out");
		return;
	}
	left = pin->last_line_ms + pin->l->idle_ms - now_ms(loop);
	if (left > 0) {
		ev_timer_set(w, left / 1000.0, 0.);
		ev_timer_start(loop, w);
		return;
	}
	in_close(pin, "idle");
}

static void
listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct peer_listener	*l = w->data;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	struct peer_in		*pin;
	char			 greet[sizeof(PEER_GREETING) +
				    2 * PEER_NONCE_BYTES + 1];
	int			 fd, one = 1;

	if ((fd = fd_accept(l->fd)) == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("peer: accept");
		return;
	}
	if (getpeername(fd, (struct sockaddr *)&ss, &sslen) == -1)
		ss.ss_family = AF_UNSPEC;
	if (l->nlinks >= PEER_CONNS_MAX) {
		char	 a[PEER_ADDR_MAX];

		addr_name(&ss, sslen, a, sizeof(a));
		log_warnx("peer %s: refused: %d links already", a,
		    PEER_CONNS_MAX);
		close(fd);
		return;
	}
	if ((pin = calloc(1, sizeof(*pin))) == NULL) {
		close(fd);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pin->l = l;
	pin->fd = fd;
	addr_name(&ss, sslen, pin->addr, sizeof(pin->addr));
	LIST_INSERT_HEAD(&l->links, pin, entry);
	l->nlinks++;
	ev_io_init(&pin->rio, in_read_cb, fd, EV_READ);
	ev_io_init(&pin->wio, in_write_cb, fd, EV_WRITE);
	ev_timer_init(&pin->timer, in_timer_cb, peer_handshake_ms / 1000.0, 0.);
	pin->rio.data = pin->wio.data = pin->timer.data = pin;
	if (entropy_fill(pin->ns, sizeof(pin->ns)) == -1) {
		log_warn("peer %s: no random bytes", pin->addr);
		in_close(pin, "no random bytes");
		return;
	}
	memcpy(greet, PEER_GREETING, sizeof(PEER_GREETING) - 1);
	sha256_hex(pin->ns, sizeof(pin->ns), greet + sizeof(PEER_GREETING) - 1);
	strcat(greet, "\n");
	if (!outbuf_add(&pin->out, greet, strlen(greet))) {
		in_close(pin, "out of memory");
		return;
	}
	ev_io_start(loop, &pin->rio);
	ev_timer_start(loop, &pin->timer);
	in_flush(pin);
}

struct peer_listener *
peer_listen(struct ev_loop *loop, const char *addr,
    const unsigned char *secret, size_t secret_len, int64_t idle_ms,
    const struct peer_listener_ops *ops, void *arg, char *err, size_t errlen)
{
	struct peer_listener	*l;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 one = 1;

	if (secret_len < PEER_SECRET_MIN || secret_len > PEER_SECRET_MAX) {
		snprintf(err, errlen, "a secret is %d to %d bytes",
		    PEER_SECRET_MIN, PEER_SECRET_MAX);
		return NULL;
	}
	if (parse_addr(addr, true, &ss, &sslen) == -1) {
		snprintf(err, errlen, "%s: not a numeric ADDR:PORT", addr);
		return NULL;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((l->fd = fd_socket(ss.ss_family, SOCK_STREAM)) == -1 ||
	    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) == -1 ||
	    bind(l->fd, (struct sockaddr *)&ss, sslen) == -1 ||
	    listen(l->fd, PEER_CONNS_MAX) == -1) {
		snprintf(err, errlen, "%s: %s", addr, strerror(errno));
		if (l->fd != -1)
			close(l->fd);
		free(l);
		return NULL;
	}
	l->loop = loop;
	memcpy(l->secret, secret, secret_len);
	l->secret_len = secret_len;
	l->idle_ms = idle_ms;
	l->ops = ops;
	l->arg = arg;
	LIST_INIT(&l->links);
	ev_io_init(&l->io, listener_accept_cb, l->fd, EV_READ);
	l->io.data = l;
	ev_io_start(loop, &l->io);
	return l;
}

void
peer_listener_free(struct peer_listener *l)
{
	struct peer_in	*pin;

	if (l == NULL)
		return;
	while ((pin = LIST_FIRST(&l->links)) != NULL)
		in_close(pin, "listener closed");
	ev_io_stop(l->loop, &l->io);
	close(l->fd);
	memset(l->secret, 0, sizeof(l->secret));
	free(l);
}

unsigned
peer_listener_links(const struct peer_listener *l)
{
	const struct peer_in	*pin;
	unsigned		 n = 0;

	LIST_FOREACH(pin, &l->links, entry)
		if (pin->state == IN_OPEN)
			n++;
	return n;
}

/* --- links to other nodes --- */

enum peer_out_state { OUT_DOWN, OUT_CONNECTING, OUT_HANDSHAKE, OUT_UP };

struct peer_req {
	TAILQ_ENTRY(peer_req)	 entry;		/* oldest first */
	uint64_t		 id;
	peer_reply_cb		*cb;		/* NULL: our PING */
	void			*arg;
	int64_t			 sent_ms;
};
TAILQ_HEAD(peer_reqs, peer_req);

struct peer_out {
	struct ev_loop		*loop;
	char			 addr[PEER_ADDR_MAX];
	struct sockaddr_storage	 sa, bind_sa;
	socklen_t		 salen, bind_salen;	/* bind_salen 0: any */
	char			 name[PEER_NAME_MAX + 1];
	unsigned char		 secret[PEER_SECRET_MAX];
	size_t			 secret_len;
	int64_t			 ping_ms;
	const struct peer_out_ops *ops;
	void			*arg;

	enum peer_out_state	 state;
	int			 fd;
	ev_io			 rio, wio;
	ev_timer		 timer;		/* handshake, then liveness */
	ev_timer		 later;		/* fails requests outside peer_request */
	unsigned char		 ns[PEER_NONCE_BYTES], nc[PEER_NONCE_BYTES];
	struct inbuf		 in;
	struct outbuf		 out;		/* on the wire once up */
	struct outbuf		 queued;	/* requests made before up */
	struct peer_reqs	 reqs;		/* sent or queued, oldest first */
	struct peer_req		*slots[PEER_ID_SLOTS];
	unsigned		 inflight;
	uint64_t		 next_id;
	struct peer_req		*ping;
	int64_t			 last_sent_ms, up_ms;
	int64_t			 backoff_ms, retry_ms;
	char			 why[256];	/* why the link is down */
	bool			 fail_queued;	/* later: fail all, down */
	int			 busy;
	bool			 freed;
};

static void	out_fail(struct peer_out *, const char *why);

static void
out_set_why(struct peer_out *po, const char *why)
{
	if (why != po->why)
		snprintf(po->why, sizeof(po->why), "%s", why);
}

static void
req_remove(struct peer_out *po, struct peer_req *r)
{
	TAILQ_REMOVE(&po->reqs, r, entry);
	po->slots[r->id % PEER_ID_SLOTS] = NULL;
	po->inflight--;
	if (po->ping == r)
		po->ping = NULL;
}

static struct peer_req *
req_new(struct peer_out *po, peer_reply_cb *cb, void *arg)
{
	struct peer_req	*r;

	if (po->inflight >= PEER_INFLIGHT_MAX) {
		errno = ENOBUFS;
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	/* A slot free: at most half of them are taken. */
	do
		r->id = ++po->next_id;
	while (po->slots[r->id % PEER_ID_SLOTS] != NULL);
	r->cb = cb;
	r->arg = arg;
	r->sent_ms = now_ms(po->loop);
	po->slots[r->id % PEER_ID_SLOTS] = r;
	TAILQ_INSERT_TAIL(&po->reqs, r, entry);
	po->inflight++;
	return r;
}

/* Frees po if peer_out_free() came while a callback ran. */
static bool
out_release(struct peer_out *po)
{
	if (--po->busy > 0 || !po->freed)
		return false;
	outbuf_free(&po->out);
	outbuf_free(&po->queued);
	inbuf_free(&po->in);
	memset(po->secret, 0, sizeof(po->secret));
	free(po);
	return true;
}

static void
out_close_fd(struct peer_out *po)
{
	ev_io_stop(po->loop, &po->rio);
	ev_io_stop(po->loop, &po->wio);
	ev_timer_stop(po->loop, &po->timer);
	if (po->fd != -1)
		close(po->fd);
	po->fd = -1;
	po->in.len = 0;
	outbuf_free(&po->out);
	outbuf_free(&po->queued);
}

/* Calls back every request with NULL; true if po was freed meanwhile. */
static bool
out_fail_reqs(struct peer_out *po, const char *why)
{
	struct peer_reqs	 failing;
	struct peer_req		*r;

	TAILQ_INIT(&failing);
	while ((r = TAILQ_FIRST(&po->reqs)) != NULL) {
		req_remove(po, r);
		TAILQ_INSERT_TAIL(&failing, r, entry);
	}
	po->busy++;
	while ((r = TAILQ_FIRST(&failing)) != NULL) {
		TAILQ_REMOVE(&failing, r, entry);
		if (r->cb != NULL && !po->freed)
			r->cb(r->arg, NULL, 0, why);
		free(r);
	}
	return out_release(po);
}

/* The link failed: requests fail, then ops->down; a backoff starts. */
static void
out_fail(struct peer_out *po, const char *why)
{
	bool	 was_down = po->state == OUT_DOWN;

	out_set_why(po, why);
	out_close_fd(po);
	po->state = OUT_DOWN;
	po->retry_ms = now_ms(po->loop) + po->backoff_ms;
	po->backoff_ms = po->backoff_ms * 2 > PEER_BACKOFF_MAX_MS ?
	    PEER_BACKOFF_MAX_MS : po->backoff_ms * 2;
	if (!was_down)
		log_warnx("peer %s: down: %s", po->addr, why);
	po->busy++;
	if (out_fail_reqs(po, po->why)) {
		/* not reached: busy held */
	}
	if (!was_down && !po->freed && po->ops->down != NULL)
		po->ops->down(po->arg, po, po->why);
	(void)out_release(po);
}

static void
out_fail_later(struct peer_out *po, const char *why)
{
	out_set_why(po, why);
	po->fail_queued = true;
	ev_timer_set(&po->later, 0., 0.);
	ev_timer_start(po->loop, &po->later);
}

static void
out_later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct peer_out	*po = w->data;
	char		 why[sizeof(po->why) + PEER_ADDR_MAX + 32];

	if (!po->fail_queued)
		return;
	po->fail_queued = false;
	if (po->state != OUT_DOWN) {
		out_fail(po, po->why);
		return;
	}
	/* In backoff: fail fast what was asked meanwhile. */
	snprintf(why, sizeof(why), "peer %s unreachable: %s", po->addr,
	    po->why);
	(void)out_fail_reqs(po, why);
}

static void
out_flush(struct peer_out *po)
{
	if (outbuf_unsent(&po->out) > 0)
		ev_io_start(po->loop, &po->wio);
}

static void
out_arm_timer(struct peer_out *po, int64_t ms)
{
	ev_timer_stop(po->loop, &po->timer);
	ev_timer_set(&po->timer, ms / 1000.0, 0.);
	ev_timer_start(po->loop, &po->timer);
}

static void
out_up(struct peer_out *po)
{
	po->state = OUT_UP;
	po->backoff_ms = PEER_BACKOFF_MIN_MS;
	po->up_ms = po->last_sent_ms = now_ms(po->loop);
	if (outbuf_unsent(&po->queued) > 0 &&
	    !outbuf_add(&po->out, po->queued.buf + po->queued.off,
	    outbuf_unsent(&po->queued))) {
		out_fail(po, "out of memory");
		return;
	}
	outbuf_free(&po->queued);
	log_info("peer %s: up", po->addr);
	out_arm_timer(po, po->ping_ms > 0 ? po->ping_ms : 0);
	if (po->ping_ms <= 0)
		ev_timer_stop(po->loop, &po->timer);
	out_flush(po);
	if (po->ops->up != NULL) {
		po->busy++;
		po->ops->up(po->arg, po);
		(void)out_release(po);
	}
}

static void
out_handshake_line(struct peer_out *po, const char *line, size_t len)
{
	unsigned char	 m[SHA256_BYTES], got[SHA256_BYTES];
	char		 answer[2 * (PEER_NONCE_BYTES + SHA256_BYTES) + 2 +
			    PEER_NAME_MAX + 2];
	size_t		 gl = sizeof(PEER_GREETING) - 1;

	if (strcmp(line, "denied") == 0) {
		out_fail(po, "handshake refused (wrong secret?)");
		return;
	}
	if (len == gl + 2 * PEER_NONCE_BYTES &&
	    strncmp(line, PEER_GREETING, gl) == 0 &&
	    sha256_unhex(line + gl, 2 * PEER_NONCE_BYTES, po->ns,
	    sizeof(po->ns)) == 0) {
		if (entropy_fill(po->nc, sizeof(po->nc)) == -1) {
			out_fail(po, "no random bytes");
			return;
		}
		mac(po->secret, po->secret_len, PEER_CTX_ORIGIN, po->ns,
		    po->nc, m);
		sha256_hex(po->nc, sizeof(po->nc), answer);
		answer[2 * PEER_NONCE_BYTES] = ' ';
		sha256_hex(m, sizeof(m), answer + 2 * PEER_NONCE_BYTES + 1);
		snprintf(answer + 2 * (PEER_NONCE_BYTES + SHA256_BYTES) + 1,
		    sizeof(answer) - 2 * (PEER_NONCE_BYTES + SHA256_BYTES) - 1,
		    " %s\n", po->name);
		if (!outbuf_add(&po->out, answer, strlen(answer))) {
			out_fail(po, "out of memory");
			return;
		}
		out_flush(po);
		return;
	}
	if (len == 3 + 2 * SHA256_BYTES && strncmp(line, "ok ", 3) == 0 &&
	    sha256_unhex(line + 3, 2 * SHA256_BYTES, got, sizeof(got)) == 0) {
		mac(po->secret, po->secret_len, PEER_CTX_LISTENER, po->ns,
		    po->nc, m);
		if (!sha256_equal(m, got, sizeof(m))) {
			out_fail(po, "the listener's proof is wrong "
			    "(wrong secret?)");
			return;
		}
		out_up(po);
		return;
	}
	out_fail(po, "handshake: not a poold peer");
}

/* A reply: its integer "id" names the request. */
static void
out_reply_line(struct peer_out *po, const char *line, size_t len)
{
	struct proto_reply	 rep;
	enum proto_id_kind	 kind;
	int64_t			 id = -1;
	struct peer_req		*r;
	json_t			*o, *jid;

	if (!proto_decode_reply_flat(line, len, &rep, &kind, &id, NULL)) {
		if ((o = json_loadb(line, len, 0, NULL)) != NULL &&
		    json_is_integer(jid = json_object_get(o, "id")))
			id = json_integer_value(jid);
		json_decref(o);
	} else if (kind != PROTO_ID_INTEGER)
		id = -1;
	if (id <= 0 || (r = po->slots[(uint64_t)id % PEER_ID_SLOTS]) == NULL ||
	    r->id != (uint64_t)id) {
		log_debug("peer %s: a reply to no request", po->addr);
		return;
	}
	req_remove(po, r);
	if (r->cb != NULL)
		r->cb(r->arg, line, len, NULL);
	free(r);
}

static void
out_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct peer_out	*po = w->data;
	size_t		 off = 0, len;
	char		*line, why[128];
	bool		 toolong;
	int		 r;

	r = inbuf_read(&po->in, po->fd);
	if (r == -2)
		return;
	if (r == -3) {
		out_fail(po, "line too long");
		return;
	}
	if (r <= 0) {
		if (r == 0)
			snprintf(why, sizeof(why), "%s",
			    po->state == OUT_HANDSHAKE ?
			    "closed during the handshake" :
			    po->in.len > 0 ? "closed mid-line" :
			    "closed by the peer");
		else
			snprintf(why, sizeof(why), "%s", strerror(errno));
		out_fail(po, why);
		return;
	}
	po->busy++;
	while (!po->freed && (po->state == OUT_HANDSHAKE ||
	    po->state == OUT_UP) &&
	    (line = inbuf_line(&po->in, &off, &len, &toolong)) != NULL) {
		if (po->state == OUT_HANDSHAKE)
			out_handshake_line(po, line, len);
		else
			out_reply_line(po, line, len);
	}
	if (po->freed || po->state == OUT_DOWN) {
		(void)out_release(po);
		return;
	}
	if (toolong) {
		out_fail(po, "line too long");
		(void)out_release(po);
		return;
	}
	inbuf_drop(&po->in, off);
	(void)out_release(po);
}

static void
out_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct peer_out	*po = w->data;
	int		 err = 0;
	socklen_t	 errlen = sizeof(err);
	char		 why[128];

	if (po->state == OUT_CONNECTING) {
		if (getsockopt(po->fd, SOL_SOCKET, SO_ERROR, &err,
		    &errlen) == -1)
			err = errno;
		if (err != 0) {
			snprintf(why, sizeof(why), "connect: %s",
			    strerror(err));
			out_fail(po, why);
			return;
		}
		po->state = OUT_HANDSHAKE;
		ev_io_start(loop, &po->rio);
	}
	if (outbuf_write(&po->out, po->fd) == -1) {
		snprintf(why, sizeof(why), "%s", strerror(errno));
		out_fail(po, why);
		return;
	}
	if (outbuf_unsent(&po->out) == 0)
		ev_io_stop(loop, w);
}

/* Handshake deadline, then the PING and liveness check when up. */
static void
out_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct peer_out	*po = w->data;
	struct peer_req	*old;
	int64_t		 now = now_ms(loop), since, next;
	char		 why[128], line[64];
	int		 n;

	if (po->state != OUT_UP) {
		snprintf(why, sizeof(why), "no handshake in %" PRId64 " ms",
		    peer_handshake_ms);
		out_fail(po, why);
		return;
	}
	if ((old = TAILQ_FIRST(&po->reqs)) != NULL) {
		since = old->sent_ms > po->up_ms ? old->sent_ms : po->up_ms;
		if (now - since >= 2 * po->ping_ms) {
			snprintf(why, sizeof(why), "no answer in %" PRId64
			    " ms", now - since);
			out_fail(po, why);
			return;
		}
	}
	if (po->ping == NULL && now - po->last_sent_ms >= po->ping_ms) {
		if ((po->ping = req_new(po, NULL, NULL)) != NULL) {
			n = snprintf(line, sizeof(line),
			    "{\"id\":%" PRIu64 ",\"cmd\":\"PING\"}\n",
			    po->ping->id);
			if (!outbuf_add(&po->out, line, (size_t)n)) {
				out_fail(po, "out of memory");
				return;
			}
			po->last_sent_ms = now;
			out_flush(po);
		}
	}
	/* Next look: when the oldest request or the idle time is due. */
	next = po->last_sent_ms + po->ping_ms - now;
	if ((old = TAILQ_FIRST(&po->reqs)) != NULL) {
		since = old->sent_ms > po->up_ms ? old->sent_ms : po->up_ms;
		if (since + 2 * po->ping_ms - now < next)
			next = since + 2 * po->ping_ms - now;
	}
	out_arm_timer(po, next > 1 ? next : 1);
}

/* Starts a connection; -1 with why set. */
static int
out_connect(struct peer_out *po)
{
	int	 one = 1;

	po->in.len = 0;
	if ((po->fd = fd_socket(po->sa.ss_family, SOCK_STREAM)) == -1) {
		snprintf(po->why, sizeof(po->why), "socket: %s",
		    strerror(errno));
		return -1;
	}
	(void)setsockopt(po->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (po->bind_salen > 0 && bind(po->fd,
	    (struct sockaddr *)&po->bind_sa, po->bind_salen) == -1) {
		snprintf(po->why, sizeof(po->why), "bind: %s", strerror(errno));
		goto fail;
	}
	if (connect(po->fd, (struct sockaddr *)&po->sa, po->salen) == -1 &&
	    errno != EINPROGRESS) {
		snprintf(po->why, sizeof(po->why), "connect: %s",
		    strerror(errno));
		goto fail;
	}
	po->state = OUT_CONNECTING;
	ev_io_set(&po->rio, po->fd, EV_READ);
	ev_io_set(&po->wio, po->fd, EV_WRITE);
	ev_io_start(po->loop, &po->wio);
	out_arm_timer(po, peer_handshake_ms);
	return 0;
fail:
	close(po->fd);
	po->fd = -1;
	return -1;
}

struct peer_out *
peer_out_new(struct ev_loop *loop, const char *addr, const char *bind_host,
    const char *name, const unsigned char *secret, size_t secret_len,
    int64_t ping_ms, const struct peer_out_ops *ops, void *arg)
{
	struct peer_out	*po;

	if (secret_len < PEER_SECRET_MIN || secret_len > PEER_SECRET_MAX ||
	    !name_ok(name, strlen(name)) ||
	    strlen(addr) >= PEER_ADDR_MAX) {
		errno = EINVAL;
		return NULL;
	}
	if ((po = calloc(1, sizeof(*po))) == NULL)
		return NULL;
	if (parse_addr(addr, true, &po->sa, &po->salen) == -1 ||
	    (bind_host != NULL && parse_addr(bind_host, false, &po->bind_sa,
	    &po->bind_salen) == -1)) {
		free(po);
		errno = EINVAL;
		return NULL;
	}
	po->loop = loop;
	snprintf(po->addr, sizeof(po->addr), "%s", addr);
	snprintf(po->name, sizeof(po->name), "%s", name);
	memcpy(po->secret, secret, secret_len);
	po->secret_len = secret_len;
	po->ping_ms = ping_ms;
	po->ops = ops;
	po->arg = arg;
	po->fd = -1;
	po->backoff_ms = PEER_BACKOFF_MIN_MS;
	TAILQ_INIT(&po->reqs);
	ev_io_init(&po->rio, out_read_cb, -1, EV_READ);
	ev_io_init(&po->wio, out_write_cb, -1, EV_WRITE);
	ev_timer_init(&po->timer, out_timer_cb, 0., 0.);
	ev_timer_init(&po->later, out_later_cb, 0., 0.);
	po->rio.data = po->wio.data = po->timer.data = po->later.data = po;
	return po;
}

uint64_t
peer_request(struct peer_out *po, const char *line, size_t len,
    peer_reply_cb *cb, void *arg)
{
	struct peer_req	*r;
	struct outbuf	*ob;
	char		 head[40];
	size_t		 s = 0, e = len;
	int		 n;

	while (s < e && (line[s] == ' ' || line[s] == '\t'))
		s++;
	while (e > s && (line[e - 1] == ' ' || line[e - 1] == '\t'))
		e--;
	if (e - s < 2 || line[s] != '{' || line[e - 1] != '}' ||
	    memchr(line, '\n', len) != NULL || len + 32 >= PEER_LINE_MAX) {
		errno = EINVAL;
		return 0;
	}
	ob = po->state == OUT_UP ? &po->out : &po->queued;
	if (outbuf_unsent(&po->out) + outbuf_unsent(&po->queued) + len >
	    PEER_OUT_MAX) {
		errno = ENOBUFS;
		return 0;
	}
	if ((r = req_new(po, cb, arg)) == NULL)
		return 0;
	s++;	/* past '{' */
	while (s < e && (line[s] == ' ' || line[s] == '\t'))
		s++;
	n = snprintf(head, sizeof(head), "{\"id\":%" PRIu64 "%s", r->id,
	    line[s] == '}' ? "" : ",");
	if (!outbuf_add(ob, head, (size_t)n) ||
	    !outbuf_add(ob, line + s, e - s) || !outbuf_add(ob, "\n", 1)) {
		/* The buffer may hold a part: the link cannot go on. */
		req_remove(po, r);
		free(r);
		if (po->state != OUT_DOWN)
			out_fail_later(po, "out of memory");
		errno = ENOMEM;
		return 0;
	}
	switch (po->state) {
	case OUT_UP:
		po->last_sent_ms = now_ms(po->loop);
		out_flush(po);
		break;
	case OUT_DOWN:
		if (now_ms(po->loop) < po->retry_ms)
			out_fail_later(po, po->why);
		else if (out_connect(po) == -1) {
			po->retry_ms = now_ms(po->loop) + po->backoff_ms;
			po->backoff_ms = po->backoff_ms * 2 >
			    PEER_BACKOFF_MAX_MS ? PEER_BACKOFF_MAX_MS :
			    po->backoff_ms * 2;
			out_fail_later(po, po->why);
		}
		break;
	default:
		break;
	}
	return r->id;
}

void
peer_cancel(struct peer_out *po, uint64_t handle)
{
	struct peer_req	*r = po->slots[handle % PEER_ID_SLOTS];

	/* Kept until answered, so that the liveness check sees it, but
	 * its callback is gone. */
	if (handle != 0 && r != NULL && r->id == handle)
		r->cb = NULL;
}

bool
peer_out_up(const struct peer_out *po)
{
	return po->state == OUT_UP;
}

const char *
peer_out_addr(const struct peer_out *po)
{
	return po->addr;
}

void
peer_out_free(struct peer_out *po)
{
	if (po == NULL)
		return;
	out_close_fd(po);
	ev_timer_stop(po->loop, &po->later);
	po->state = OUT_DOWN;
	po->busy++;
	(void)out_fail_reqs(po, "link closed");
	po->freed = true;
	(void)out_release(po);
}
