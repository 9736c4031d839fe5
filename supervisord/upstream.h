/*
 * upstream.h — the model server's side of one proxied request
 * (upstream.c), for http.c.
 */
#ifndef POOLD_UPSTREAM_H
#define POOLD_UPSTREAM_H

#include <ev.h>

#include "http.h"

/* What the client's side does with the response. */
struct upstream_ops {
	/* The response's head is complete (resp's spans are valid until
	 * the next read); -1: out of memory. */
	int	(*head)(void *ctx, const struct http_msg *resp);
	/* Bytes of the body, framing included, as they came. */
	void	(*data)(void *ctx, const char *p, size_t len);
	/* The end of one read: what head and data handed on may go out
	 * now, in one write. */
	void	(*flush)(void *ctx);
	/* The response is complete (all of it handed on: flush it too);
	 * the connection is closed. */
	void	(*done)(void *ctx);
	/* The connection failed; relaying: the head was handed on already. */
	void	(*fail)(void *ctx, const char *why, bool relaying);
};

struct upstream {
	struct ev_loop			*loop;
	const struct upstream_ops	*ops;
	void				*ctx;
	int				 fd;	/* -1: none */
	int				 port;
	char				 where[64];	/* "HOST:PORT" */
	ev_io				 rio, wio;
	char				*head;	/* malloc'd, until written */
	size_t				 head_len;
	const char			*body;	/* the client's, borrowed */
	size_t				 body_len;
	size_t				 sent;
	bool				 connected;
	bool				 relaying;
	bool				 paused;
	struct http_msg			 resp;
};

void	 upstream_init(struct upstream *, struct ev_loop *,
	    const struct upstream_ops *, void *ctx);
/*
 * Connects to host (a numeric IPv4 or IPv6 address) at port and sends
 * head (taken: freed here) and body (borrowed until the response ends).
 * dechunk: the client speaks HTTP/1.0, so a chunked response reaches it
 * as plain data.  -1 with a message if it could not even start; else the
 * ops report how it ends.
 */
int	 upstream_start(struct upstream *, const char *host, int port,
	    bool dechunk, char *head, size_t head_len, const char *body,
	    size_t body_len, char *err, size_t errlen);
/* Stops reading the response (the client's output is past high water). */
void	 upstream_pause(struct upstream *);
void	 upstream_resume(struct upstream *);
/* Closes the connection at once (the client went away): no op called. */
void	 upstream_close(struct upstream *);
void	 upstream_free(struct upstream *);
bool	 upstream_active(const struct upstream *);

#endif /* POOLD_UPSTREAM_H */
