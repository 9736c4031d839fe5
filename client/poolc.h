/*
 * poolc.h — libpoolc, the C client of poold.  See libpoolc(3).
 *
 * A connection is an opaque struct poolc.  Every call is synchronous: it
 * sends one request and waits for the reply carrying that request's id
 * (replies to other ids are skipped).  Calls return 0 on success and -1 on
 * failure; poolc_error(), poolc_errstr(), poolc_errno() and
 * poolc_server_error() then say why.
 *
 * Errors that leave the byte stream in an unknown state are sticky: after
 * POOLC_ERR_IO, POOLC_ERR_PROTOCOL or POOLC_ERR_TIMEOUT every call fails
 * at once with the same error until poolc_reconnect().  The socket stays
 * open until then, and with it the leases the connection holds.
 * POOLC_ERR_SERVER, POOLC_ERR_LEASE_LOST, POOLC_ERR_ARG and POOLC_ERR_NOMEM
 * are not sticky: the next call clears them.
 *
 * Leases belong to the connection: poold ends them when it closes, so
 * poolc_free() and poolc_reconnect() release every lease it held, and no
 * other connection can release or look at them.
 *
 * A lease whose server is gone (it crashed, or was evicted with force)
 * is lost: poolc_lease() and poolc_release() of it fail with
 * POOLC_ERR_LEASE_LOST and say why.  Until it is released its port is
 * given to no other model.
 *
 * The library keeps no global state, never prints, never exits and never
 * raises SIGPIPE; its socket is close-on-exec.  One connection must not be
 * used by two threads at once; different connections are independent.
 * Every function but poolc_free() needs a connection, never NULL.
 */
#ifndef POOLC_H
#define POOLC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POOLC_VERSION		"0.1.0"

/* Longest model name, in bytes, without the NUL. */
#define POOLC_MODEL_MAX		128
/* Room for an endpoint such as "http://127.0.0.1:65535" or
 * "http://[fd00::1]:8080", with the NUL. */
#define POOLC_ENDPOINT_MAX	300
/* Longest API key of a model server, in bytes, without the NUL. */
#define POOLC_API_KEY_MAX	128
/* Room for the name of the node that runs a server, with the NUL. */
#define POOLC_NODE_MAX		64
/* A reply line longer than this is a protocol error (a large MODELS
 * catalog must still fit). */
#define POOLC_REPLY_MAX_BYTES	(4 * 1024 * 1024)

enum poolc_err {
	POOLC_OK = 0,
	POOLC_ERR_IO,		/* connect, read or write failed, poold
				 * closed the connection, or memory ran out
				 * in the middle of a reply; sticky */
	POOLC_ERR_PROTOCOL,	/* a reply that is not poold's protocol, or a
				 * line over POOLC_REPLY_MAX_BYTES; sticky */
	POOLC_ERR_TIMEOUT,	/* no connection or no reply in time; sticky */
	POOLC_ERR_SERVER,	/* poold answered "ok":false; see
				 * poolc_server_error() */
	POOLC_ERR_ARG,		/* a bad argument (model name, lease); nothing
				 * was sent */
	POOLC_ERR_NOMEM,	/* out of memory; nothing was lost */
	POOLC_ERR_LEASE_LOST,	/* poold answered "lease_lost": the lease's
				 * server is gone (crash, forced EVICT);
				 * poolc_errstr() says why */
};

/* What a successful ACQUIRE answers.  All fields are copies. */
struct poolc_server {
	char		model[POOLC_MODEL_MAX + 1];
	int		port;
	/* "http://HOST:PORT", e.g. "http://127.0.0.1:8080" */
	char		endpoint[POOLC_ENDPOINT_MAX];
	int64_t		lease;		/* 0 when no lease is held */
	bool		cold;		/* the request waited for a start */
	int64_t		wait_ms;	/* how long poold took to answer */
	/* Send "Authorization: Bearer API_KEY" to the server; "": the
	 * server needs no key. */
	char		api_key[POOLC_API_KEY_MAX + 1];
	/* The node that runs the server; "": poold's own machine. */
	char		node[POOLC_NODE_MAX];
};

/* Options of poolc_acquire().  All zeros (or a NULL pointer) means: hold
 * a lease, use the daemon's acquire_timeout. */
struct poolc_acquire_opts {
	int		timeout_ms;	/* > 0: poold answers "busy" or
					 * "timeout" after this long */
	bool		no_lease;	/* start or touch the model only */
};

struct poolc;

/*
 * Connects to poold's socket at path, or at the default path when path is
 * NULL ($POOLD_SOCKET, then /run/poold/poold.sock for root, then
 * $XDG_RUNTIME_DIR/poold/poold.sock, then /tmp/poold-UID/poold.sock).
 * timeout_ms bounds the connect and the wait for each reply; 0 or less
 * waits without limit.  An ACQUIRE with a timeout_ms of its own waits that
 * long plus this; one without waits for as long as poold takes.
 *
 * Returns NULL only when out of memory.  Otherwise the caller owns the
 * connection, frees it with poolc_free() whether or not it connected, and
 * checks poolc_error(): a failed connect is a sticky POOLC_ERR_IO (or
 * POOLC_ERR_TIMEOUT) that poolc_reconnect() retries.
 */
struct poolc	*poolc_connect(const char *path, int timeout_ms);
/* Closes the socket (ending its leases) and frees c.  NULL is allowed. */
void		 poolc_free(struct poolc *c);
/* Closes the socket (ending its leases), forgets any error and connects
 * again to the same path.  0, or -1 with the error set. */
int		 poolc_reconnect(struct poolc *c);
/* Changes the timeout given to poolc_connect() for the calls that follow. */
void		 poolc_set_timeout(struct poolc *c, int timeout_ms);
/* The socket path; owned by c, valid until poolc_free(). */
const char	*poolc_path(const struct poolc *c);
/*
 * The METRICS reply: the pool in Prometheus' text format (0.0.4), as
 * GET /metrics gives it.  On success *text is malloc'd, NUL-terminated,
 * and the caller frees it with free(); on failure *text is NULL.
 */
int		 poolc_metrics(struct poolc *c, char **text);

/*
 * Starts model if it is not running, waits until it is ready, and fills
 * *out.  opts may be NULL.  Unless opts->no_lease, out->lease is a lease
 * that keeps the server from being stopped for idleness or room until
 * poolc_release() or the end of the connection.  model is a name as in
 * poolc_models(); a name poold could never accept is POOLC_ERR_ARG.
 */
int		 poolc_acquire(struct poolc *c, const char *model,
		    const struct poolc_acquire_opts *opts,
		    struct poolc_server *out);
/*
 * Ends a lease from poolc_acquire().  A lost lease (its server is gone)
 * ends too, but the call fails with POOLC_ERR_LEASE_LOST, saying how the
 * server ended: whatever was asked of it meanwhile may not have been
 * answered.
 */
int		 poolc_release(struct poolc *c, int64_t lease);
/*
 * Checks a lease: 0 and *out (if not NULL) filled with its server while
 * that runs (out->lease is the lease; cold and wait_ms are 0); -1 with
 * POOLC_ERR_LEASE_LOST if the server is gone (the lease stays held, and
 * with it the port, until poolc_release()), or POOLC_ERR_SERVER
 * "not_found" if this connection holds no such lease.
 */
int		 poolc_lease(struct poolc *c, int64_t lease,
		    struct poolc_server *out);
/*
 * Stops model's server and waits until it is gone.  With force, a server
 * that holds leases is stopped too.  *freed (if not NULL) receives the
 * bytes of the budget given back.
 */
int		 poolc_evict(struct poolc *c, const char *model, bool force,
		    int64_t *freed);
/*
 * PIN (pin true) or UNPIN model: pinned, it is started now and never
 * stopped for idleness or room; unpinned, it goes back to its configured
 * class.  Allowed to poold's admins only (POOLC_ERR_SERVER "forbidden");
 * a pin the budget cannot hold with the other pinned models is
 * "too_large".  priority (if not NULL) receives the model's class now,
 * "pinned", "high", "normal" or "low" (at most len bytes, NUL-terminated).
 */
int		 poolc_pin(struct poolc *c, const char *model, bool pin,
		    char *priority, size_t len);
/*
 * The STATS (pool, budget, servers, counters) and MODELS (the catalog)
 * replies, as the JSON text of the reply line, NUL-terminated and without
 * the newline.  On success *json is malloc'd and the caller frees it with
 * free(); on failure *json is NULL.
 */
int		 poolc_stats(struct poolc *c, char **json);
int		 poolc_models(struct poolc *c, char **json);
/*
 * RELOAD (admin): poold re-reads its config and rescans its folder.  The
 * reply (changed, restart_needed, models added and removed) as with
 * poolc_stats; a refused reload fails with POOLC_ERR_SERVER and poold's
 * reason, and the running config stays.
 */
int		 poolc_reload(struct poolc *c, char **json);
/* Checks that poold answers.  If version is not NULL, poold's version is
 * copied into it (at most len bytes, NUL-terminated). */
int		 poolc_ping(struct poolc *c, char *version, size_t len);

/*
 * SUBSCRIBE: from now on poold sends c every event of the pool (a
 * server started, became ready, was evicted, exited, failed to start;
 * memory pressure; reloads and pins), one JSON object each, as
 * poold-protocol(7) describes them.  Read them with poolc_event().  A
 * subscribed connection is for events only: every other call on it fails
 * with POOLC_ERR_ARG (use a second connection for commands).
 */
int		 poolc_subscribe(struct poolc *c);
/*
 * The next event of a subscribed connection, waiting up to timeout_ms
 * (0: only what has come already; less than 0: as long as it takes).
 * 0 with *json the event's JSON text (malloc'd, NUL-terminated, no
 * newline; the caller frees it), or 0 with *json NULL if none came in
 * time (not an error).  -1 with the error set otherwise: POOLC_ERR_IO
 * once poold closed the connection (it shut down, or dropped c for
 * reading its events too slowly), POOLC_ERR_PROTOCOL for a line that is
 * no event.
 */
int		 poolc_event(struct poolc *c, int timeout_ms, char **json);

/* The last call's error; POOLC_OK after a call that succeeded. */
enum poolc_err	 poolc_error(const struct poolc *c);
/* A one-line message for a person, "" when there is no error, for
 * example "busy: no room for 18.0G" or "cannot connect to /run/poold/
 * poold.sock: No such file or directory".  Owned by c; valid until the
 * next call on c. */
const char	*poolc_errstr(const struct poolc *c);
/* The errno behind POOLC_ERR_IO, POOLC_ERR_TIMEOUT (ETIMEDOUT),
 * POOLC_ERR_ARG (EINVAL) and POOLC_ERR_NOMEM (ENOMEM); 0 otherwise,
 * and 0 when poold closed the connection. */
int		 poolc_errno(const struct poolc *c);
/* poold's error code after POOLC_ERR_SERVER ("busy", "unknown_model",
 * "timeout", … see poold-protocol(7)) or POOLC_ERR_LEASE_LOST
 * ("lease_lost"), else "".  Owned by c; valid until
 * the next call on c. */
const char	*poolc_server_error(const struct poolc *c);

#ifdef __cplusplus
}
#endif

#endif /* POOLC_H */
