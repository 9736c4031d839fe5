/*
 * peer.h — poold-to-poold links over TCP (peer.c): the listener that
 * other nodes' poolds connect to, and the one pipelined connection this
 * poold keeps to each other node.  Both sides speak the socket's protocol
 * (one JSON object per line) after a mutual HMAC-SHA256 challenge over
 * the cluster's shared secret (sha256.c):
 *
 *   listener → origin:  "poold-peer 1 " hex(Ns) "\n"            (Ns: 32 random bytes)
 *   origin → listener:  hex(Nc) " " hex(HMAC(S, "poold-peer 1 origin\n" ‖ Ns ‖ Nc)) " " NAME "\n"
 *   listener → origin:  "ok " hex(HMAC(S, "poold-peer 1 listener\n" ‖ Ns ‖ Nc)) "\n"
 *
 * A wrong MAC closes the connection (the listener writes "denied\n" first
 * and logs the address).  Compared in constant time.  Handshake deadline
 * PEER_HANDSHAKE_MS.  NAME: the origin's node name ([A-Za-z0-9._-], ≤ 63).
 *
 * Limits, and what happens past them:
 *   PEER_CONNS_MAX	links accepted at once (handshaking ones count): the
 *			next is closed at once, logged "refused".
 *   PEER_LINE_MAX	a line (either way) this long or longer without its
 *			newline closes the link ("line too long");
 *			peer_request() refuses such a line with EINVAL.
 *   PEER_INFLIGHT_MAX	peer_request() fails with ENOBUFS.
 *   PEER_OUT_MAX	peer_in_send() closes the link ("output full");
 *			peer_request() fails with ENOBUFS.
 *   PEER_HANDSHAKE_MS	either side closes a link not authenticated by then.
 * A link's PING ({"id":N,"cmd":"PING"}, exactly as the origin writes it)
 * is answered by peer.c itself ({"id":N,"ok":true}), never handed to
 * ops->line: a link's liveness does not depend on the application.  A
 * link that is down reconnects on the next request after a backoff of
 * 100 ms doubling to 5 s (back to 100 ms once up); a request made during
 * the backoff fails at once (from the loop, not from peer_request) with
 * why "peer ADDR unreachable: <why the link went down>".
 * Neither peer_listener_free() nor peer_out_free() may be called from one
 * of the listener's own callbacks; peer_out_free() may be called from the
 * origin's.
 */
#ifndef POOLD_PEER_H
#define POOLD_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#define PEER_SECRET_MIN		32	/* bytes of the secret file */
#define PEER_SECRET_MAX		4096
#define PEER_HANDSHAKE_MS	5000
#define PEER_CONNS_MAX		64	/* inbound links at once */
#define PEER_INFLIGHT_MAX	4096	/* requests unanswered on one link */
#define PEER_OUT_MAX		(8u << 20)	/* bytes queued on one link */
#define PEER_LINE_MAX		(1u << 20)

/* Reads the secret: the file must be a regular file, not readable or
 * writable by group or others (0600/0400), PEER_SECRET_MIN..MAX bytes.
 * -1 with a message. */
int	 peer_secret_load(const char *path, unsigned char *secret,
	    size_t *len, char *err, size_t errlen);

/* The handshake's deadline, PEER_HANDSHAKE_MS by default (tests make it
 * shorter); 0: the default. */
void	 peer_set_handshake_ms(int64_t ms);

/* --- the listener: links from other nodes --- */

struct peer_in;		/* one authenticated inbound link */
struct peer_listener_ops {
	/* A link is authenticated; return its context (NULL: refuse it). */
	void	*(*open)(void *arg, struct peer_in *, const char *node,
		    const char *addr);
	/* One request line (no newline), len < PEER_LINE_MAX. */
	void	 (*line)(void *ctx, const char *line, size_t len);
	/* The link is gone (closed, reset, idle past idle_ms, out full);
	 * ctx must not send any more. */
	void	 (*closed)(void *ctx, const char *why);
};
struct peer_listener;
/* Listens on "ADDR:PORT" ("10.0.0.110:7070", "[::1]:7070").  A link with
 * no line for idle_ms (0: never) is closed: origins PING every
 * idle_ms / 3.  NULL with a message. */
struct peer_listener *peer_listen(struct ev_loop *, const char *addr,
	    const unsigned char *secret, size_t secret_len, int64_t idle_ms,
	    const struct peer_listener_ops *, void *arg, char *err, size_t);
/* Sends a reply line (malloc'd, ending in '\n'; taken, NULL: out of
 * memory, the link is closed).  Past PEER_OUT_MAX the link is closed. */
void	 peer_in_send(struct peer_in *, char *line);
/* Closes every link (their closed() called) and the socket. */
void	 peer_listener_free(struct peer_listener *);
unsigned peer_listener_links(const struct peer_listener *);

/* --- links to other nodes --- */

struct peer_out;
/* reply: the reply line (no newline), or NULL when the link failed
 * before an answer (why says how); called once per request, never from
 * inside peer_request(). */
typedef void peer_reply_cb(void *arg, const char *reply, size_t len,
	    const char *why);
struct peer_out_ops {
	/* The link failed or was closed (the requests' callbacks have been
	 * called with NULL first).  It reconnects by itself on the next
	 * request. */
	void	(*down)(void *arg, struct peer_out *, const char *why);
	/* Authenticated (first time or again). */
	void	(*up)(void *arg, struct peer_out *);
};
/* A link to addr ("HOST:PORT", numeric), connecting from bind_host (NULL:
 * any) when first used.  ping_ms: a PING whenever the link is idle this
 * long, and a link whose PING or request is unanswered for 2 × ping_ms
 * is declared down (a peer that stopped answering, a one-way drop).
 * name: ours, sent in the handshake. */
struct peer_out *peer_out_new(struct ev_loop *, const char *addr,
	    const char *bind_host, const char *name,
	    const unsigned char *secret, size_t secret_len, int64_t ping_ms,
	    const struct peer_out_ops *, void *arg);
/*
 * Sends a request: line is a JSON object without "id" and without a
 * newline; the link adds its own integer "id" (first member) and matches
 * the reply by it; the reply is handed back as it came.  Connects first if need be; queued
 * until authenticated.  Returns a handle, or 0 with errno (ENOBUFS past
 * PEER_INFLIGHT_MAX, ENOMEM; EINVAL for a line not an object).
 */
uint64_t peer_request(struct peer_out *, const char *line, size_t len,
	    peer_reply_cb *, void *arg);
/* The callback of handle will not be called (the reply is dropped). */
void	 peer_cancel(struct peer_out *, uint64_t handle);
bool	 peer_out_up(const struct peer_out *);
const char *peer_out_addr(const struct peer_out *);
/* Fails every request (their callbacks called with NULL), closes. */
void	 peer_out_free(struct peer_out *);

#endif /* POOLD_PEER_H */
