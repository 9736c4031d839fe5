/*
 * proto.h — poold's wire format, shared by the daemon and libpoolc.
 *
 * One request per line, one JSON object per line, one compact JSON object
 * per reply line.  This module does no I/O, no logging and keeps no state:
 * it finds lines in a buffer, decodes them into plain C structs and encodes
 * structs back into lines.  Both sides link it, so they agree by
 * construction.  See poold-protocol(7).
 */
#ifndef POOLD_PROTO_H
#define POOLD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define PROTO_VERSION		1
/*
 * The hard cap on a line (without its newline): longer is always refused.
 * The daemon's own limit, max_line_bytes in poold.json(5), is at most
 * this and 64 KiB by default.
 */
#define PROTO_LINE_MAX_BYTES	(1024 * 1024)
/* Model names: [A-Za-z0-9._+-], not starting with '.', at most this long. */
#define PROTO_MODEL_NAME_MAX	128
#define PROTO_MESSAGE_MAX	1024
/* A model server's API key, as poold makes them: 64 hex digits. */
#define PROTO_API_KEY_MAX	128
#define PROTO_NODE_MAX		63
#define PROTO_ENDPOINT_MAX	299
/*
 * Lease ids are below 2^53, so that any JSON reader (JavaScript's numbers
 * included) carries them exactly.
 */
#define PROTO_LEASE_MAX		((INT64_C(1) << 53) - 1)
/* JSON nesting deeper than this in a request is refused. */
#define PROTO_DEPTH_MAX		8

enum proto_cmd {
	PROTO_CMD_NONE = 0,
	PROTO_CMD_ACQUIRE,
	PROTO_CMD_RELEASE,
	PROTO_CMD_STATS,
	PROTO_CMD_EVICT,
	PROTO_CMD_MODELS,
	PROTO_CMD_PING,
	PROTO_CMD_LEASE,
	PROTO_CMD_SUBSCRIBE,	/* the event stream on this connection */
	PROTO_CMD_METRICS,	/* Prometheus text in "text" */
	PROTO_CMD_RELOAD,	/* admin: re-read the config, rescan */
	PROTO_CMD_PIN,		/* admin: "model" pinned until UNPIN */
	PROTO_CMD_UNPIN,	/* admin: back to its configured class */
};

/* Stable error codes; their strings are the "error" field of a reply. */
enum proto_err {
	PROTO_OK = 0,
	PROTO_E_BAD_REQUEST,
	PROTO_E_UNKNOWN_COMMAND,
	PROTO_E_UNKNOWN_MODEL,
	PROTO_E_BUSY,
	PROTO_E_TOO_LARGE,
	PROTO_E_START_FAILED,
	PROTO_E_TIMEOUT,
	PROTO_E_NOT_FOUND,
	PROTO_E_SHUTTING_DOWN,
	PROTO_E_FORBIDDEN,
	PROTO_E_INTERNAL,
	PROTO_E_LEASE_LOST,	/* the lease's server is gone */
	PROTO_E__COUNT
};

/* A decoded request.  Fields a command does not use are left at their
 * defaults: lease 0, timeout_ms -1 (use the daemon's default), hold true,
 * force false. */
struct proto_request {
	enum proto_cmd	 cmd;
	json_t		*id;		/* owned (a reference); NULL if absent */
	char		 model[PROTO_MODEL_NAME_MAX + 1];
	int64_t		 lease;
	int64_t		 timeout_ms;
	bool		 hold;
	bool		 force;
};

/* What a successful ACQUIRE answers. */
struct proto_acquired {
	char		 model[PROTO_MODEL_NAME_MAX + 1];
	int		 port;
	/* "http://HOST:PORT", e.g. "http://127.0.0.1:8080" */
	char		 endpoint[PROTO_ENDPOINT_MAX + 1];
	int64_t		 lease;		/* 0 when "hold":false */
	bool		 cold;		/* this request waited for a start */
	int64_t		 wait_ms;
	/* The server's "Authorization: Bearer" key; "": it needs none. */
	char		 api_key[PROTO_API_KEY_MAX + 1];
	/* The node that runs the server; "": this one. */
	char		 node[PROTO_NODE_MAX + 1];
};

/* A decoded reply (client side). */
struct proto_reply {
	bool		 ok;
	json_t		*id;		/* borrowed from body; NULL if absent */
	enum proto_err	 err;		/* PROTO_OK when ok */
	char		 message[PROTO_MESSAGE_MAX];
	json_t		*body;		/* owned: the whole reply object */
};

/* --- framing --- */

/*
 * Returns the length of the first complete line in buf (the bytes before
 * '\n', a trailing '\r' not counted), or -1 if buf holds no '\n' yet.
 * *consumed is set to the bytes to drop after handling the line
 * (including the newline).
 */
long	 proto_line(const char *buf, size_t len, size_t *consumed);

/* --- names --- */

const char	*proto_cmd_name(enum proto_cmd);
const char	*proto_err_name(enum proto_err);
/* PROTO_E__COUNT if the string names no code. */
enum proto_err	 proto_err_from_name(const char *);
/* true if name is a syntactically valid model name (see above). */
bool		 proto_model_name_ok(const char *name);

/* --- requests --- */

/*
 * Decodes one line (without its newline) into req.  Returns PROTO_OK, or
 * an error code with a one-line message in msg.  Even on error, req->id
 * holds the request's id when one could be read, so the reply can echo it.
 * The caller always calls proto_request_clear().
 */
enum proto_err	 proto_decode_request(const char *line, size_t len,
		    struct proto_request *req, char *msg, size_t msglen);
void		 proto_request_init(struct proto_request *);
void		 proto_request_clear(struct proto_request *);
/* Encodes req as a line ending in '\n'.  Returns malloc'd text or NULL. */
char		*proto_encode_request(const struct proto_request *req);

/* --- replies (daemon side) --- */

/* {"ok":false,"id":…,"error":"code","message":"…"}\n, malloc'd. */
char	*proto_encode_error(json_t *id, enum proto_err, const char *message);
/*
 * A JSON string of text, which may hold anything (a server's stderr, a
 * message cut at a byte count): as it is if it is UTF-8, else made
 * printable UTF-8 ('?' for what is not, cut at PROTO_MESSAGE_MAX).
 * NULL only if out of memory.
 */
json_t	*proto_text(const char *text);
/*
 * {"ok":true,"id":…, …fields of body…}\n, malloc'd.  body may be NULL;
 * it is not modified and stays the caller's.
 */
char	*proto_encode_ok(json_t *id, json_t *body);
char	*proto_encode_acquired(json_t *id, const struct proto_acquired *);

/* --- replies (client side) --- */

/*
 * Decodes a reply line.  Returns PROTO_OK, or PROTO_E_BAD_REQUEST with a
 * message if the line is not a reply.  The caller calls
 * proto_reply_clear().
 */
enum proto_err	 proto_decode_reply(const char *line, size_t len,
		    struct proto_reply *rep, char *msg, size_t msglen);
void		 proto_reply_clear(struct proto_reply *);
/* Reads an ACQUIRE reply's fields; PROTO_OK or PROTO_E_BAD_REQUEST. */
enum proto_err	 proto_reply_acquired(const struct proto_reply *,
		    struct proto_acquired *);

/*
 * The client's fast path for the flat replies the daemon writes: an
 * error, an ok without a body or, if a is not NULL, an ACQUIRE's reply.
 * Returns true if the line is one of those as the daemon writes them:
 * then rep is what proto_decode_reply() would give, but with no body and
 * no id (nothing to clear; an error's code is proto_err_name(rep->err)),
 * the id is in *id_kind and *id, and if a is not NULL and rep->ok, *a is
 * what proto_reply_acquired() would give.  Returns false for any other
 * line, and for anything those two would refuse: then decode it with
 * proto_decode_reply().
 */
enum proto_id_kind {
	PROTO_ID_ABSENT, PROTO_ID_NULL, PROTO_ID_INTEGER, PROTO_ID_OTHER,
};
bool	 proto_decode_reply_flat(const char *line, size_t len,
	    struct proto_reply *rep, enum proto_id_kind *id_kind, int64_t *id,
	    struct proto_acquired *a);

/* --- defaults shared by daemon and clients --- */

/*
 * The default socket path: $POOLD_SOCKET if set; else for root
 * /run/poold/poold.sock; else $XDG_RUNTIME_DIR/poold/poold.sock; else
 * /tmp/poold-UID/poold.sock.  Writes into buf; returns buf, or NULL if
 * it does not fit.
 */
char	*proto_default_socket(char *buf, size_t len);

#endif /* POOLD_PROTO_H */
