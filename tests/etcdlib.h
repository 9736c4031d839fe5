/*
 * etcdlib.h — a real etcd for the tests: started on free loopback ports
 * with a data folder of its own, stopped, killed and restarted by pid on
 * the same ports and data, and read through its JSON gateway.
 *
 * The binary is $ETCD_BIN, else "etcd" on the PATH (Debian's
 * etcd-server, Homebrew's etcd).  The process is our child, in a process
 * group of its own, and on Linux dies with the test process
 * (PR_SET_PDEATHSIG), so a test killed by its timeout leaves no etcd
 * behind.  Helpers prefixed tl_etcd_, next to testlib's tl_.
 */
#ifndef POOLD_ETCDLIB_H
#define POOLD_ETCDLIB_H

#include <sys/types.h>

#include <stdbool.h>

#include <jansson.h>

#include "testlib.h"

#define TL_ETCD_READY_MS	15000	/* from exec to a healthy member */

struct tl_etcd {
	char		 dir[TL_PATH_MAX / 2];	/* temporary; data and log */
	char		 data[TL_PATH_MAX];
	char		 log[TL_PATH_MAX];
	char		 host[64];		/* numeric IPv4 */
	int		 client_port, peer_port;
	char		 url[128];		/* http://HOST:CLIENT_PORT */
	pid_t		 pid;			/* 0 when not running */
	int		 status;		/* wait status once reaped */
};

/* The etcd binary's path, NULL if none is found. */
const char	*tl_etcd_bin(void);
/*
 * Makes the folder, picks two free ports on host ("127.0.0.1"), starts
 * etcd and waits until /health says true.  Fails the test if it cannot.
 */
void		 tl_etcd_start(struct tl_etcd *, const char *host);
/* Starts it again on the same ports and data (after stop or kill). */
void		 tl_etcd_restart(struct tl_etcd *);
/* SIGTERM, then SIGKILL after 5 s; reaped. */
void		 tl_etcd_stop(struct tl_etcd *);
/* SIGKILL and reap: etcd gone at once, as in a crash. */
void		 tl_etcd_kill(struct tl_etcd *);
/* Stops it if running and removes its folder. */
void		 tl_etcd_free(struct tl_etcd *);
/* true if /health answers {"health":"true"} within timeout_ms. */
bool		 tl_etcd_healthy(struct tl_etcd *, long long timeout_ms);
/* Prints the last max bytes of its log on stderr. */
void		 tl_etcd_print_log(const struct tl_etcd *, size_t max);

/*
 * POST path with the JSON body to the gateway; the reply's body parsed
 * (a new reference), NULL if no HTTP 200 with JSON came within
 * timeout_ms.
 */
json_t		*tl_etcd_post(struct tl_etcd *, const char *path,
		    const char *body, long long timeout_ms);
/*
 * Every key under prefix, decoded: an array of {"key", "value",
 * "lease"} (lease a string, "0" for none); NULL if etcd did not answer.
 */
json_t		*tl_etcd_range(struct tl_etcd *, const char *prefix,
		    long long timeout_ms);
/* How many keys of a range hold needle in their name. */
int		 tl_etcd_count(json_t *kvs, const char *needle);

/*
 * A raw HTTP/1.1 exchange with Connection: close on host:port: returns
 * the status (-1: no reply within timeout_ms); *body (may be NULL) gets
 * the body, malloc'd.  headers: extra lines each ending in "\r\n", or
 * NULL.  Used for the gateway and for the model servers' endpoints.
 */
int		 tl_etcd_http(const char *host, int port, const char *method,
		    const char *path, const char *headers, const char *body,
		    long long timeout_ms, char **bodyp);

/* A free TCP port on host (bound and let go: a race tests accept). */
int		 tl_free_port(const char *host);

#endif /* POOLD_ETCDLIB_H */
