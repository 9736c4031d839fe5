/*
 * etcd.h — an asynchronous etcd v3 client on the libev loop (etcd.c).
 *
 * etcd's JSON gateway (/v3/kv/range, /v3/kv/put, /v3/kv/txn,
 * /v3/kv/deleterange, /v3/lease/grant, /v3/lease/revoke,
 * /v3/lease/keepalive, /v3/watch, /v3/auth/authenticate) over HTTP/1.1
 * through libcurl's multi interface driven by libev watchers
 * (curl_multi_socket_action; CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION), as
 * curl's own libev example does.  Keys and values are plain C strings
 * here; base64 is done inside.  Every call has a deadline (cfg.deadline_ms);
 * on a failure the next endpoint is tried for the next call.
 */
#ifndef POOLD_ETCD_H
#define POOLD_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#define ETCD_ENDPOINTS_MAX	8

enum etcd_err {
	ETCD_OK = 0,
	ETCD_ETIMEDOUT,		/* no answer within the deadline */
	ETCD_EUNREACHABLE,	/* connection refused, no route, TLS failure */
	ETCD_EAUTH,		/* bad user/password, or permission denied */
	ETCD_ENOTFOUND,		/* lease not found (keepalive/revoke) */
	ETCD_EREJECTED,		/* etcd answered with an error (message says) */
	ETCD_EPROTO,		/* an answer we cannot read */
	ETCD_ECOMPACTED,	/* watch: start revision compacted away */
	ETCD_EBROKEN,		/* watch: the stream ended */
	ETCD_ENOMEM,
};
const char *etcd_err_name(enum etcd_err);

struct etcd_config {
	const char	*endpoints[ETCD_ENDPOINTS_MAX];	/* "http://h:2379" or https */
	size_t		 n_endpoints;
	long		 deadline_ms;		/* 0: 2000 */
	const char	*user, *password;	/* NULL: no auth */
	const char	*ca_file, *cert_file, *key_file;	/* NULL: none */
};

struct etcd_kv {
	const char	*key, *value;	/* decoded, NUL-terminated */
	size_t		 value_len;
	int64_t		 create_revision, mod_revision, version, lease;
};

/* Valid only during the callback. */
struct etcd_reply {
	enum etcd_err	 err;
	const char	*message;	/* for errors: curl's or etcd's words */
	int64_t		 revision;	/* the header's revision */
	struct etcd_kv	*kvs;		/* range: the keys; create: kvs[0] is
					   the holder when !created */
	size_t		 nkvs;
	bool		 created;	/* create: the key was absent and is ours */
	int64_t		 lease;		/* lease_grant: the id */
	int64_t		 ttl;		/* lease_grant: granted TTL, seconds */
	int64_t		 deleted;	/* delete: how many */
};

typedef void etcd_cb(void *arg, const struct etcd_reply *);

struct etcd;
/* NULL with a message if the config is unusable (no endpoint, curl). */
struct etcd *etcd_new(struct ev_loop *, const struct etcd_config *,
	    char *err, size_t errlen);
/* Every pending callback is dropped (not called); never from a callback. */
void	 etcd_free(struct etcd *);

/* Each returns 0 and later calls cb exactly once (cb may be NULL), or -1
 * with errno (EINVAL, ENOMEM) and never calls it. */
int	 etcd_put(struct etcd *, const char *key, const char *value,
	    int64_t lease, etcd_cb *, void *arg);
/* A txn: put key=value with lease only if the key does not exist
 * (create_revision == 0); else reply.created false and kvs[0] the holder. */
int	 etcd_create(struct etcd *, const char *key, const char *value,
	    int64_t lease, etcd_cb *, void *arg);
int	 etcd_delete(struct etcd *, const char *key, etcd_cb *, void *arg);
/* Every key under prefix, at the reply's revision. */
int	 etcd_range_prefix(struct etcd *, const char *prefix, etcd_cb *,
	    void *arg);
int	 etcd_lease_grant(struct etcd *, int64_t ttl_s, etcd_cb *, void *arg);
int	 etcd_lease_revoke(struct etcd *, int64_t lease, etcd_cb *, void *arg);

/*
 * Keeps lease alive: a keepalive every ttl_s/3 seconds.  lost(arg, why)
 * is called once when etcd says the lease is gone (ETCD_ENOTFOUND, TTL 0)
 * or when no keepalive succeeded for ttl_s seconds (the lease must be
 * taken as gone); the keepalive then stops.  One per etcd handle; a new
 * start replaces the old.  etcd_keepalive_stop() stops it (no call).
 */
int	 etcd_keepalive_start(struct etcd *, int64_t lease, int64_t ttl_s,
	    void (*lost)(void *arg, enum etcd_err why), void *arg);
void	 etcd_keepalive_stop(struct etcd *);

/* A watch of every key under prefix from start_rev (inclusive). */
struct etcd_watch_ops {
	/* One change: deleted, or put with kv's new value. */
	void	(*event)(void *arg, bool deleted, const struct etcd_kv *,
		    int64_t revision);
	/* The watch ended and will not call again (ECOMPACTED, EBROKEN,
	 * EUNREACHABLE, ETIMEDOUT, EAUTH, EPROTO): re-read and watch
	 * again.  The handle is freed when broken() returns: do not cancel
	 * it after (cancelling it inside broken() is harmless). */
	void	(*broken)(void *arg, enum etcd_err, const char *message);
};
struct etcd_watch;
struct etcd_watch *etcd_watch_prefix(struct etcd *, const char *prefix,
	    int64_t start_rev, const struct etcd_watch_ops *, void *arg);
/* Ends it; no call after.  From its own callbacks is fine too. */
void	 etcd_watch_cancel(struct etcd_watch *);

#endif /* POOLD_ETCD_H */
