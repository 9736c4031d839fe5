/*
 * http.h — the HTTP front door's private header: httpscan.c (pure: the
 * request and response scanner, the checks, the rewritten heads, the
 * error bodies), upstream.c (the model server's side of a request) and
 * http.c (the listener and the clients).
 */
#ifndef POOLD_HTTP_H
#define POOLD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#define HTTP_HEAD_MAX		(16 * 1024)	/* a request's head */
#define HTTP_RESP_HEAD_MAX	(64 * 1024)	/* a server's response head */
#define HTTP_HEADERS_MAX	100		/* header lines in a head */

/* What a request asks for. */
enum http_route {
	HTTP_ROUTE_NONE = 0,
	HTTP_ROUTE_PROXY,	/* POST /v1/...: to the model's server */
	HTTP_ROUTE_MODELS,	/* GET /v1/models */
	HTTP_ROUTE_HEALTH,	/* GET /health */
	HTTP_ROUTE_PREFLIGHT,	/* OPTIONS: CORS */
	HTTP_ROUTE_METRICS,	/* GET /metrics: Prometheus text */
	HTTP_ROUTE_EVENTS,	/* GET /events: the event stream (SSE) */
	HTTP_ROUTE_STATUS,	/* GET /: the status page (no data in it) */
	HTTP_ROUTE_POOL,	/* GET /v1/pool/stats: STATS as JSON */
};

/* Where the scanner stopped. */
enum http_scan {
	HTTP_SCAN_MORE,		/* all input used; more is needed */
	HTTP_SCAN_HEAD,		/* the head is complete (stops there) */
	HTTP_SCAN_DONE,		/* the message is complete (stops there) */
	HTTP_SCAN_ERROR,	/* see msg->status, msg->code, msg->error */
};

struct http_span {
	const char	*p;
	size_t		 len;
};

struct http_header {
	struct http_span name, value;
};

/*
 * One HTTP message being read: a request from a client, or a response
 * from a server.  The head is copied in (at most head_max bytes); a
 * request's body is kept (decoded, at most max_body bytes); a response's
 * body is only framed (is it complete?), never kept.
 */
struct http_msg {
	llhttp_t		 parser;
	bool			 response;
	/* A response for an HTTP/1.0 client, which knows no chunks: its
	 * decoded data is kept in body, for the caller to take. */
	bool			 dechunk;
	size_t			 head_max;
	uint64_t		 max_body;	/* requests */
	char			*head;		/* malloc'd, head_max bytes */
	size_t			 head_len;
	size_t			 scanned;	/* of head: no blank line before */
	bool			 head_done;
	bool			 done;
	/* From the head, pointing into head. */
	struct http_span	 method, url, reason;
	int			 status;	/* responses */
	int			 minor;		/* HTTP/1.x */
	struct http_header	 headers[HTTP_HEADERS_MAX];
	size_t			 nheaders;
	bool			 chunked;
	bool			 has_length;
	uint64_t		 length;	/* Content-Length */
	bool			 keep_alive;
	bool			 expect_continue;
	size_t			 trailer_len;	/* a chunked body's trailers */
	/* A request's body. */
	char			*body;
	size_t			 body_len, body_cap;
	/* Why it failed (HTTP_SCAN_ERROR). */
	int			 err_status;
	const char		*err_code;
	char			 err[160];
};

void	 http_msg_init(struct http_msg *, bool response, size_t head_max,
	    uint64_t max_body);
/* Ready for the next message on the connection (keeps the buffers). */
void	 http_msg_reset(struct http_msg *);
void	 http_msg_free(struct http_msg *);
/*
 * Reads from data[0..len): the head (up to its blank line), then the
 * body.  *used is how many bytes it took: the rest belongs to the next
 * message.  Call again after HTTP_SCAN_HEAD for the body.
 */
enum http_scan http_msg_feed(struct http_msg *, const char *data,
	    size_t len, size_t *used);
/* The server closed its side: is the response complete?  (A response
 * without length ends there.) */
bool	 http_msg_finish(struct http_msg *);
/* The header's value (the first of that name), or NULL. */
const struct http_span *http_msg_header(const struct http_msg *,
	    const char *name);

/* What the front door allows; from the config. */
struct http_policy {
	const char	 *token;	/* NULL: no token, loopback Host only */
	size_t		  token_len;
	char *const	 *cors_origins;
	size_t		  ncors;
	uint64_t	  max_body;
};

/* The checks of a head, before any body is read. */
struct http_verdict {
	int		 status;	/* 0: go on; else the error to send */
	const char	*type, *code;	/* OpenAI's error fields */
	char		 message[256];
	enum http_route	 route;
	struct http_span origin;	/* an allowed Origin, or empty */
};

/* Host, token, route, method, length and CORS, in that order. */
void	 http_check_head(const struct http_msg *, const struct http_policy *,
	    struct http_verdict *);
/* true if a Host header value names the loopback (localhost,
 * 127.0.0.1, [::1], with or without a port). */
bool	 http_host_is_local(const char *, size_t);
/* Equal strings, in time that does not depend on where they differ. */
bool	 http_token_equal(const char *a, size_t alen, const char *b,
	    size_t blen);
/*
 * The top-level "model" of a JSON body into model (NUL-terminated).
 * 0, or -1 with v->status 400 and its message set.
 */
int	 http_body_model(const char *body, size_t len, char *model,
	    size_t modellen, struct http_verdict *v);
/* An alias's model; name itself if it is none.  aliases: pairs. */
const char *http_alias_resolve(char *const *aliases, size_t npairs,
	    const char *name);

/* {"error":{"message","type","code"}}: malloc'd, NUL-terminated. */
char	*http_error_body(const char *message, const char *type,
	    const char *code);
/*
 * A whole response: status line, Content-Type, Content-Length, the
 * extra header lines (each ending in "\r\n", or NULL), Connection, and
 * the body.  malloc'd; *len its length.
 */
char	*http_response(int status, const char *content_type,
	    const char *extra, const char *body, size_t bodylen,
	    bool keep_alive, size_t *len);
const char *http_reason(int status);
/* Hop-by-hop headers, which a proxy does not pass on. */
bool	 http_hop_by_hop(const char *name, size_t len);
/*
 * The head sent to the model's server: the request's method and path,
 * Host host_port ("127.0.0.1:8080", "[::1]:8080"), its end-to-end headers
 * but its credentials (Authorization, X-Api-Key), "Authorization: Bearer
 * api_key" if api_key is not NULL or "", Content-Length bodylen,
 * Connection: close.
 */
char	*http_upstream_head(const struct http_msg *req,
	    const char *host_port, const char *api_key, size_t bodylen,
	    size_t *len);
/*
 * The head relayed to the client from the server's: its status line and
 * end-to-end headers with its own framing (Content-Length or chunked),
 * X-Accel-Buffering: no for event streams, the CORS origin if any, and
 * Connection as keep_alive says.  *keep_alive is cleared if the response
 * is framed by the server's close, or de-chunked (resp->dechunk: for an
 * HTTP/1.0 client, its end is then the connection's).
 */
char	*http_client_head(const struct http_msg *resp,
	    const struct http_span *origin, bool *keep_alive, size_t *len);

#endif /* POOLD_HTTP_H */
