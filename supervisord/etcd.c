/*
 * etcd.c — an asynchronous etcd v3 client: etcd's JSON gateway over
 * libcurl's multi interface, driven by libev watchers (curl's
 * evhiperfifo.c pattern: CURLMOPT_SOCKETFUNCTION puts an ev_io on each
 * socket curl wants watched, CURLMOPT_TIMERFUNCTION arms one ev_timer).
 *
 * No user callback ever runs inside a curl call or inside the etcd_*
 * call that queued it: curl only buffers (the write callbacks append),
 * and dispatch() hands out complete lines and finished transfers after
 * curl_multi_socket_action() has returned.  Callbacks may queue more
 * requests or cancel watches: a watch cancelled while callbacks are on
 * the stack is only marked, and freed when the last of them returns.
 */
#include <sys/queue.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "etcd.h"

#define ETCD_DEADLINE_DEFAULT_MS	2000
#define ETCD_REPLY_MAX_BYTES		(1024 * 1024)
#define ETCD_RANGE_REPLY_MAX_BYTES	(16 * 1024 * 1024)
#define ETCD_WATCH_LINE_MAX_BYTES	(4 * 1024 * 1024)
#define ETCD_MESSAGE_MAX		512
/* A dead peer under a watch is noticed by TCP keepalives. */
#define ETCD_TCP_KEEPIDLE_S		10
#define ETCD_TCP_KEEPINTVL_S		5

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

enum xfer_kind {
	XK_PUT, XK_CREATE, XK_DELETE, XK_RANGE, XK_GRANT, XK_REVOKE,
	XK_KEEPALIVE, XK_AUTH, XK_WATCH,
};

static const char *const xfer_path[] = {
	[XK_PUT] = "/v3/kv/put",
	[XK_CREATE] = "/v3/kv/txn",
	[XK_DELETE] = "/v3/kv/deleterange",
	[XK_RANGE] = "/v3/kv/range",
	[XK_GRANT] = "/v3/lease/grant",
	[XK_REVOKE] = "/v3/lease/revoke",
	[XK_KEEPALIVE] = "/v3/lease/keepalive",
	[XK_AUTH] = "/v3/auth/authenticate",
	[XK_WATCH] = "/v3/watch",
};

/* One HTTP exchange: a request waiting for a token, or running in curl. */
struct xfer {
	TAILQ_ENTRY(xfer)	 link;	/* on etcd.waiting or etcd.running */
	struct etcd		*e;
	enum xfer_kind		 kind;
	CURL			*easy;
	struct curl_slist	*hdrs;
	char			*body;
	char			*buf;	/* the answer so far */
	size_t			 len, cap, max;
	bool			 overflow;	/* the answer passed max */
	bool			 running;	/* on etcd.running, in curl */
	bool			 waiting;	/* on etcd.waiting */
	bool			 relogged;	/* re-authenticated once */
	unsigned		 token_gen;	/* the token it was sent with */
	size_t			 endpoint;
	ev_tstamp		 queued;	/* the deadline's start */
	etcd_cb			*cb;
	void			*arg;
	unsigned		 ka_gen;	/* XK_KEEPALIVE: whose */
	struct etcd_watch	*watch;		/* XK_WATCH */
	char			 curl_err[CURL_ERROR_SIZE];
};
TAILQ_HEAD(xfer_list, xfer);

struct etcd_watch {
	TAILQ_ENTRY(etcd_watch)	 link;
	struct etcd		*e;
	struct xfer		*x;	/* NULL once it ended */
	struct etcd_watch_ops	 ops;
	void			*arg;
	ev_timer		 created_timer;	/* the connect deadline */
	bool			 created;
	bool			 dead;	/* ended or cancelled: no more calls */
	bool			 relogin;	/* denied: log in, then again */
};
TAILQ_HEAD(watch_list, etcd_watch);

struct sock_watcher {
	ev_io			 io;
	struct etcd		*e;
	LIST_ENTRY(sock_watcher) link;
};

struct keepalive {
	bool			 on;
	bool			 busy;		/* one in flight for gen */
	unsigned		 gen;
	int64_t			 lease, ttl_s;
	ev_timer		 tick;		/* every ttl/3 */
	ev_timer		 loss;		/* ttl after the last success */
	ev_tstamp		 sent;		/* the one in flight */
	enum etcd_err		 last_err;
	void			(*lost)(void *, enum etcd_err);
	void			*arg;
};

struct etcd {
	struct ev_loop		*loop;
	CURLM			*multi;
	ev_timer		 curl_timer;
	LIST_HEAD(, sock_watcher) socks;
	char			*endpoints[ETCD_ENDPOINTS_MAX];
	size_t			 n_endpoints, cur;
	long			 deadline_ms;
	char			*user, *password;
	char			*ca_file, *cert_file, *key_file;
	char			*token;		/* "" once auth is off */
	unsigned		 token_gen;
	bool			 authing;
	struct xfer_list	 waiting, running;
	struct watch_list	 watches;
	int			 depth;		/* callbacks on the stack */
	struct keepalive	 ka;
};

struct reply_store {
	struct etcd_reply	 r;
	char			 message[ETCD_MESSAGE_MAX];
	char			*token;		/* XK_AUTH */
	bool			 token_bad;	/* log in again and retry */
};

static void	dispatch(struct etcd *);
static void	reap(struct etcd *);
static int	xfer_submit(struct etcd *, struct xfer *);
static void	xfer_fail(struct etcd *, struct xfer *, enum etcd_err,
		    const char *);
static void	xfer_free(struct xfer *);
static void	watch_end(struct etcd_watch *, enum etcd_err, const char *);
static void	ka_reply(struct etcd *, unsigned gen,
		    const struct etcd_reply *);

const char *
etcd_err_name(enum etcd_err err)
{
	switch (err) {
	case ETCD_OK:		return "ok";
	case ETCD_ETIMEDOUT:	return "timed out";
	case ETCD_EUNREACHABLE:	return "unreachable";
	case ETCD_EAUTH:	return "auth";
	case ETCD_ENOTFOUND:	return "not found";
	case ETCD_EREJECTED:	return "rejected";
	case ETCD_EPROTO:	return "protocol";
	case ETCD_ECOMPACTED:	return "compacted";
	case ETCD_EBROKEN:	return "broken";
	case ETCD_ENOMEM:	return "out of memory";
	}
	return "?";
}

/* --- base64 (RFC 4648, padded) --- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *
b64_encode(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out, *o;
	size_t i;
	uint32_t v;

	if ((out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	o = out;
	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64_alphabet[v >> 18 & 63];
		*o++ = b64_alphabet[v >> 12 & 63];
		*o++ = b64_alphabet[v >> 6 & 63];
		*o++ = b64_alphabet[v & 63];
	}
	if (i < len) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = b64_alphabet[v >> 18 & 63];
		*o++ = b64_alphabet[v >> 12 & 63];
		*o++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int
b64_value(char c)
{
	const char *p;

	if (c == '\0' || (p = strchr(b64_alphabet, c)) == NULL)
		return -1;
	return (int)(p - b64_alphabet);
}

/* Decodes text (padding optional) into a NUL-terminated malloc'd copy. */
static char *
b64_decode(const char *text, size_t *lenp)
{
	size_t n = strlen(text), i, len = 0;
	uint32_t acc = 0;
	int bits = 0, v;
	char *out;

	while (n > 0 && text[n - 1] == '=')
		n--;
	if ((out = malloc(n / 4 * 3 + 3)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if ((v = b64_value(text[i])) == -1) {
			free(out);
			errno = EINVAL;
			return NULL;
		}
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[len++] = (char)(acc >> bits & 0xff);
		}
	}
	out[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return out;
}

/* --- JSON helpers --- */

/* The gateway writes int64 as strings and omits zeros. */
static int64_t
json_i64(const json_t *obj, const char *name)
{
	const json_t *v = json_object_get(obj, name);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

static json_t *
json_b64(const char *s, size_t len)
{
	char *enc = b64_encode(s, len);
	json_t *j;

	if (enc == NULL)
		return NULL;
	j = json_string(enc);
	free(enc);
	return j;
}

static json_t *
json_i64_string(int64_t v)
{
	char num[32];

	snprintf(num, sizeof(num), "%" PRId64, v);
	return json_string(num);
}

/* The end of the range of keys that start with prefix ("\0": all). */
static json_t *
json_prefix_end(const char *prefix)
{
	size_t len = strlen(prefix);
	char *end;
	json_t *j;

	if ((end = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(end, prefix, len + 1);
	while (len > 0 && (unsigned char)end[len - 1] == 0xff)
		len--;
	if (len == 0) {
		free(end);
		return json_b64("", 1);
	}
	end[len - 1]++;
	j = json_b64(end, len);
	free(end);
	return j;
}

static void
kvs_free(struct etcd_kv *kvs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free((char *)kvs[i].key);
		free((char *)kvs[i].value);
	}
	free(kvs);
}

static int
kv_decode(const json_t *j, struct etcd_kv *kv)
{
	const char *k = json_string_value(json_object_get(j, "key"));
	const char *v = json_string_value(json_object_get(j, "value"));

	memset(kv, 0, sizeof(*kv));
	if ((kv->key = b64_decode(k != NULL ? k : "", NULL)) == NULL ||
	    (kv->value = b64_decode(v != NULL ? v : "",
	    &kv->value_len)) == NULL)
		return -1;
	kv->create_revision = json_i64(j, "create_revision");
	kv->mod_revision = json_i64(j, "mod_revision");
	kv->version = json_i64(j, "version");
	kv->lease = json_i64(j, "lease");
	return 0;
}

static int
kvs_decode(const json_t *arr, struct etcd_kv **kvsp, size_t *np)
{
	size_t i, n = json_array_size(arr);
	struct etcd_kv *kvs;

	*kvsp = NULL;
	*np = 0;
	if (n == 0)
		return 0;
	if ((kvs = calloc(n, sizeof(*kvs))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (kv_decode(json_array_get(arr, i), &kvs[i]) == -1) {
			kvs_free(kvs, i + 1);
			return -1;
		}
	}
	*kvsp = kvs;
	*np = n;
	return 0;
}

/*
 * An error object of the gateway: unary calls answer
 * {"error":"...","code":N,"message":"..."}, streams a line
 * {"error":{"grpc_code":N,"message":"..."}}.  Returns ETCD_OK if there
 * is none.
 */
static enum etcd_err
error_classify(const json_t *root, struct reply_store *st)
{
	const json_t *err = json_object_get(root, "error");
	const char *msg;
	int64_t code;

	if (err == NULL)
		return ETCD_OK;
	if (json_is_object(err)) {
		msg = json_string_value(json_object_get(err, "message"));
		code = json_i64(err, "grpc_code");
	} else {
		msg = json_string_value(json_object_get(root, "message"));
		if (msg == NULL)
			msg = json_string_value(err);
		code = json_i64(root, "code");
	}
	if (msg == NULL)
		msg = "etcd said error";
	snprintf(st->message, sizeof(st->message), "%s", msg);
	if (strstr(msg, "invalid auth token") != NULL ||
	    strstr(msg, "user name is empty") != NULL || code == 16) {
		st->token_bad = true;
		return ETCD_EAUTH;
	}
	if (strstr(msg, "permission denied") != NULL ||
	    strstr(msg, "authentication failed") != NULL || code == 7)
		return ETCD_EAUTH;
	if (strstr(msg, "lease not found") != NULL || code == 5)
		return ETCD_ENOTFOUND;
	if (code == 14 || code == 4)	/* Unavailable, DeadlineExceeded */
		return ETCD_EUNREACHABLE;
	return ETCD_EREJECTED;
}

/* --- parsing the answers --- */

static enum etcd_err
parse_kind(enum xfer_kind kind, const json_t *root, struct reply_store *st)
{
	struct etcd_reply *r = &st->r;
	const json_t *resp, *tok;

	r->revision = json_i64(json_object_get(root, "header"), "revision");
	switch (kind) {
	case XK_RANGE:
		if (kvs_decode(json_object_get(root, "kvs"), &r->kvs,
		    &r->nkvs) == -1)
			return errno == ENOMEM ? ETCD_ENOMEM : ETCD_EPROTO;
		break;
	case XK_CREATE:
		r->created = json_is_true(json_object_get(root, "succeeded"));
		if (r->created)
			break;
		resp = json_object_get(json_array_get(json_object_get(root,
		    "responses"), 0), "response_range");
		if (kvs_decode(json_object_get(resp, "kvs"), &r->kvs,
		    &r->nkvs) == -1)
			return errno == ENOMEM ? ETCD_ENOMEM : ETCD_EPROTO;
		break;
	case XK_DELETE:
		r->deleted = json_i64(root, "deleted");
		break;
	case XK_GRANT:
	case XK_KEEPALIVE:
		r->lease = json_i64(root, "ID");
		r->ttl = json_i64(root, "TTL");
		tok = json_object_get(root, "error");
		if (json_is_string(tok) && json_string_length(tok) > 0) {
			snprintf(st->message, sizeof(st->message), "%s",
			    json_string_value(tok));
			return ETCD_EREJECTED;
		}
		if (kind == XK_KEEPALIVE && r->ttl <= 0) {
			snprintf(st->message, sizeof(st->message),
			    "lease %" PRId64 " not found", r->lease);
			return ETCD_ENOTFOUND;
		}
		break;
	case XK_AUTH:
		tok = json_object_get(root, "token");
		if (!json_is_string(tok))
			return ETCD_EPROTO;
		if ((st->token = strdup(json_string_value(tok))) == NULL)
			return ETCD_ENOMEM;
		break;
	case XK_PUT:
	case XK_REVOKE:
	case XK_WATCH:
		break;
	}
	return ETCD_OK;
}

static enum etcd_err
curl_classify(CURLcode rc, const struct xfer *x, struct reply_store *st)
{
	snprintf(st->message, sizeof(st->message), "%.200s: %.250s",
	    x->e->endpoints[x->endpoint],
	    x->curl_err[0] != '\0' ? x->curl_err : curl_easy_strerror(rc));
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return ETCD_ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return ETCD_ENOMEM;
	case CURLE_WRITE_ERROR:
		if (x->overflow) {
			snprintf(st->message, sizeof(st->message),
			    "answer larger than %zu bytes", x->max);
			return ETCD_EPROTO;
		}
		return ETCD_ENOMEM;
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_WEIRD_SERVER_REPLY:
		return ETCD_EPROTO;
	default:
		return ETCD_EUNREACHABLE;
	}
}

/* Reads a finished exchange's answer into st. */
static enum etcd_err
xfer_parse(struct xfer *x, CURLcode rc, struct reply_store *st)
{
	json_t *root, *body;
	json_error_t jerr;
	enum etcd_err err;
	long status = 0;

	if (rc != CURLE_OK)
		return curl_classify(rc, x, st);
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	root = json_loadb(x->buf != NULL ? x->buf : "", x->len,
	    JSON_DISABLE_EOF_CHECK, &jerr);
	if (root == NULL || !json_is_object(root)) {
		snprintf(st->message, sizeof(st->message),
		    "HTTP %ld, unreadable answer: %s", status, jerr.text);
		json_decref(root);
		return ETCD_EPROTO;
	}
	if ((err = error_classify(root, st)) != ETCD_OK) {
		json_decref(root);
		return err;
	}
	body = root;
	if (x->kind == XK_KEEPALIVE)
		body = json_object_get(root, "result");
	if (status != 200 || !json_is_object(body)) {
		snprintf(st->message, sizeof(st->message),
		    "HTTP %ld without an answer", status);
		json_decref(root);
		return ETCD_EPROTO;
	}
	err = parse_kind(x->kind, body, st);
	json_decref(root);
	return err;
}

/* --- curl on libev --- */

static void
sock_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct sock_watcher *sw = container_of(io, struct sock_watcher, io);
	struct etcd *e = sw->e;
	int action = 0, running;

	if (revents & EV_READ)
		action |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(e->multi, io->fd, action, &running);
	dispatch(e);
}

static int
sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct etcd *e = userp;
	struct sock_watcher *sw = sockp;
	int events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (sw != NULL) {
			ev_io_stop(e->loop, &sw->io);
			LIST_REMOVE(sw, link);
			free(sw);
		}
		return 0;
	}
	if (sw == NULL) {
		if ((sw = calloc(1, sizeof(*sw))) == NULL)
			return -1;
		sw->e = e;
		LIST_INSERT_HEAD(&e->socks, sw, link);
		curl_multi_assign(e->multi, fd, sw);
	} else
		ev_io_stop(e->loop, &sw->io);
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	ev_io_init(&sw->io, sock_io_cb, fd, events);
	ev_io_start(e->loop, &sw->io);
	return 0;
}

static void
curl_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct etcd *e = container_of(t, struct etcd, curl_timer);
	int running;

	curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	dispatch(e);
}

/* curl asks for one timer; 0 fires on the next turn of the loop, which
 * is what keeps every callback off the stack of the call that queued. */
static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct etcd *e = userp;

	ev_timer_stop(e->loop, &e->curl_timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&e->curl_timer, (double)timeout_ms / 1000.0, 0.);
		ev_timer_start(e->loop, &e->curl_timer);
	}
	return 0;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nmemb, cap;
	char *p;

	if (x->len + n > x->max) {
		x->overflow = true;
		return 0;
	}
	if (x->len + n + 1 > x->cap) {
		cap = x->cap == 0 ? 4096 : x->cap;
		while (cap < x->len + n + 1)
			cap *= 2;
		if ((p = realloc(x->buf, cap)) == NULL)
			return 0;
		x->buf = p;
		x->cap = cap;
	}
	memcpy(x->buf + x->len, data, n);
	x->len += n;
	x->buf[x->len] = '\0';
	return n;
}

/* --- exchanges --- */

static struct xfer *
xfer_new(struct etcd *e, enum xfer_kind kind, json_t *body, etcd_cb *cb,
    void *arg)
{
	struct xfer *x;

	if (body == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL ||
	    (x->body = json_dumps(body, JSON_COMPACT)) == NULL) {
		free(x);
		json_decref(body);
		errno = ENOMEM;
		return NULL;
	}
	json_decref(body);
	x->e = e;
	x->kind = kind;
	x->cb = cb;
	x->arg = arg;
	x->queued = ev_now(e->loop);
	x->max = kind == XK_RANGE ? ETCD_RANGE_REPLY_MAX_BYTES :
	    kind == XK_WATCH ? 2 * ETCD_WATCH_LINE_MAX_BYTES :
	    ETCD_REPLY_MAX_BYTES;
	return x;
}

static void
xfer_free(struct xfer *x)
{
	if (x == NULL)
		return;
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	free(x->body);
	free(x->buf);
	free(x);
}

/* Takes x out of curl and off its list. */
static void
xfer_stop(struct xfer *x)
{
	if (x->waiting) {
		TAILQ_REMOVE(&x->e->waiting, x, link);
		x->waiting = false;
	}
	if (!x->running)
		return;
	curl_multi_remove_handle(x->e->multi, x->easy);
	TAILQ_REMOVE(&x->e->running, x, link);
	x->running = false;
}

static int
xfer_headers(struct etcd *e, struct xfer *x)
{
	struct curl_slist *h = NULL, *n;
	char auth[4096];

	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	if ((n = curl_slist_append(h, "Content-Type: application/json"))
	    == NULL)
		return -1;
	h = n;
	if ((n = curl_slist_append(h, "Expect:")) == NULL)
		goto fail;
	h = n;
	if (x->kind != XK_AUTH && e->token != NULL && e->token[0] != '\0') {
		if ((size_t)snprintf(auth, sizeof(auth), "Authorization: %s",
		    e->token) >= sizeof(auth) ||
		    (n = curl_slist_append(h, auth)) == NULL)
			goto fail;
		h = n;
	}
	x->hdrs = h;
	x->token_gen = e->token_gen;
	return 0;
fail:
	curl_slist_free_all(h);
	return -1;
}

/* Hands x to curl now, on the current endpoint. */
static int
xfer_start(struct etcd *e, struct xfer *x)
{
	char url[1024];
	long left_ms;
	CURL *c;

	x->endpoint = e->cur;
	x->len = 0;
	x->overflow = false;
	x->curl_err[0] = '\0';
	snprintf(url, sizeof(url), "%s%s", e->endpoints[x->endpoint],
	    xfer_path[x->kind]);
	left_ms = e->deadline_ms -
	    (long)((ev_now(e->loop) - x->queued) * 1000.0);
	if (left_ms < 1)
		left_ms = 1;
	if (x->easy == NULL && (x->easy = curl_easy_init()) == NULL)
		goto nomem;
	c = x->easy;
	if (xfer_headers(e, x) == -1)
		goto nomem;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PRIVATE, x);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->curl_err);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, left_ms);
	/* A watch lives on: its own timer waits for "created". */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
	    x->kind == XK_WATCH ? 0L : left_ms);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, (long)ETCD_TCP_KEEPIDLE_S);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL,
	    (long)ETCD_TCP_KEEPINTVL_S);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	if (e->ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, e->ca_file);
	if (e->cert_file != NULL)
		curl_easy_setopt(c, CURLOPT_SSLCERT, e->cert_file);
	if (e->key_file != NULL)
		curl_easy_setopt(c, CURLOPT_SSLKEY, e->key_file);
	if (curl_multi_add_handle(e->multi, c) != CURLM_OK)
		goto nomem;
	TAILQ_INSERT_TAIL(&e->running, x, link);
	x->running = true;
	return 0;
nomem:
	errno = ENOMEM;
	return -1;
}

static void
auth_start(struct etcd *e)
{
	struct xfer *x;
	json_t *body;

	body = json_pack("{s:s, s:s}", "name", e->user, "password",
	    e->password != NULL ? e->password : "");
	if ((x = xfer_new(e, XK_AUTH, body, NULL, NULL)) == NULL) {
		/* The waiting ones fail on the next turn. */
		e->authing = false;
		ev_feed_event(e->loop, &e->curl_timer, EV_TIMER);
		return;
	}
	if (xfer_start(e, x) == -1) {
		xfer_free(x);
		e->authing = false;
		ev_feed_event(e->loop, &e->curl_timer, EV_TIMER);
		return;
	}
	e->authing = true;
}

/* Starts x, or queues it behind the login when there is no token. */
static int
xfer_submit(struct etcd *e, struct xfer *x)
{
	if (x->kind == XK_AUTH || e->user == NULL || e->token != NULL)
		return xfer_start(e, x);
	TAILQ_INSERT_TAIL(&e->waiting, x, link);
	x->waiting = true;
	if (!e->authing)
		auth_start(e);
	return 0;
}

/* The login ended: the waiting ones go, or fail with its error. */
static void
auth_done(struct etcd *e, enum etcd_err err, struct reply_store *st)
{
	struct xfer_list list;
	struct xfer *x;

	e->authing = false;
	if (err == ETCD_EREJECTED &&
	    strstr(st->message, "authentication is not enabled") != NULL) {
		err = ETCD_OK;
		st->token = strdup("");
		if (st->token == NULL)
			err = ETCD_ENOMEM;
	}
	if (err == ETCD_OK) {
		free(e->token);
		e->token = st->token;
		st->token = NULL;
		e->token_gen++;
	}
	TAILQ_INIT(&list);
	TAILQ_CONCAT(&list, &e->waiting, link);
	while ((x = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, x, link);
		x->waiting = false;
		if (err != ETCD_OK)
			xfer_fail(e, x, err, st->message);
		else if (xfer_start(e, x) == -1)
			xfer_fail(e, x, ETCD_ENOMEM, "out of memory");
	}
}

/* Calls x's owner with r; x is freed after. */
static void
xfer_deliver(struct etcd *e, struct xfer *x, const struct etcd_reply *r)
{
	if (x->kind == XK_WATCH) {
		if (x->watch != NULL)
			watch_end(x->watch, r->err, r->message);
		return;
	}
	if (x->kind == XK_KEEPALIVE)
		ka_reply(e, x->ka_gen, r);
	else if (x->cb != NULL)
		x->cb(x->arg, r);
	xfer_free(x);
}

/* x failed before or without curl (login failed, no memory). */
static void
xfer_fail(struct etcd *e, struct xfer *x, enum etcd_err err,
    const char *msg)
{
	struct etcd_reply r;

	memset(&r, 0, sizeof(r));
	r.err = err;
	r.message = msg;
	xfer_deliver(e, x, &r);
}

static void
endpoint_failed(struct etcd *e, size_t endpoint)
{
	if (e->cur == endpoint)
		e->cur = (e->cur + 1) % e->n_endpoints;
}

static void watch_feed(struct etcd_watch *, bool at_end);

/* curl finished x (it was taken out of curl already). */
static void
xfer_done(struct etcd *e, struct xfer *x, CURLcode rc)
{
	struct reply_store st;
	enum etcd_err err;

	memset(&st, 0, sizeof(st));
	if (x->kind == XK_WATCH) {
		if (x->watch != NULL && !x->watch->dead) {
			watch_feed(x->watch, true);
			if (x->running || x->waiting)
				return;		/* again, after a login */
			if (!x->watch->dead) {
				err = rc == CURLE_OK ? ETCD_EBROKEN :
				    curl_classify(rc, x, &st);
				if (err != ETCD_EBROKEN)
					endpoint_failed(e, x->endpoint);
				if (rc == CURLE_OK)
					snprintf(st.message,
					    sizeof(st.message),
					    "%.200s: the watch stream ended",
					    e->endpoints[x->endpoint]);
				watch_end(x->watch, err, st.message);
			}
		}
		return;
	}
	err = xfer_parse(x, rc, &st);
	if (err == ETCD_ETIMEDOUT || err == ETCD_EUNREACHABLE)
		endpoint_failed(e, x->endpoint);
	if (st.token_bad && e->user != NULL && !x->relogged &&
	    x->kind != XK_AUTH) {
		/* The token expired (or etcd restarted): log in once more. */
		x->relogged = true;
		if (x->token_gen == e->token_gen) {
			free(e->token);
			e->token = NULL;
		}
		if (xfer_submit(e, x) == 0)
			return;
		err = ETCD_ENOMEM;
	}
	st.r.err = err;
	st.r.message = err == ETCD_OK ? NULL : st.message;
	if (x->kind == XK_AUTH) {
		auth_done(e, err, &st);
		xfer_free(x);
	} else
		xfer_deliver(e, x, &st.r);
	free(st.token);
	kvs_free(st.r.kvs, st.r.nkvs);
}

/* After curl: whole watch lines, then finished exchanges. */
static void
dispatch(struct etcd *e)
{
	struct etcd_watch *w;
	struct xfer *x;
	CURLMsg *msg;
	CURLcode rc;
	CURL *easy;
	int left;

	e->depth++;
	TAILQ_FOREACH(w, &e->watches, link)
		if (!w->dead && w->x != NULL && w->x->len > 0)
			watch_feed(w, false);
	while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		easy = msg->easy_handle;
		rc = msg->data.result;
		x = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		if (x == NULL)
			continue;
		xfer_stop(x);
		xfer_done(e, x, rc);
	}
	/* auth_start's failure feeds the timer: fail who waits. */
	if (!e->authing && !TAILQ_EMPTY(&e->waiting) && e->token == NULL) {
		struct reply_store st;

		memset(&st, 0, sizeof(st));
		snprintf(st.message, sizeof(st.message), "out of memory");
		auth_done(e, ETCD_ENOMEM, &st);
	}
	e->depth--;
	reap(e);
}

/* --- the calls --- */

static int
request(struct etcd *e, enum xfer_kind kind, json_t *body, etcd_cb *cb,
    void *arg)
{
	struct xfer *x;

	if ((x = xfer_new(e, kind, body, cb, arg)) == NULL)
		return -1;
	if (xfer_submit(e, x) == -1) {
		xfer_free(x);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static json_t *
put_body(const char *key, const char *value, int64_t lease)
{
	json_t *o = json_object();

	if (o == NULL ||
	    json_object_set_new(o, "key", json_b64(key, strlen(key))) ||
	    json_object_set_new(o, "value",
	    json_b64(value, strlen(value))) ||
	    (lease != 0 &&
	    json_object_set_new(o, "lease", json_i64_string(lease)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
etcd_put(struct etcd *e, const char *key, const char *value, int64_t lease,
    etcd_cb *cb, void *arg)
{
	if (e == NULL || key == NULL || value == NULL || key[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	return request(e, XK_PUT, put_body(key, value, lease), cb, arg);
}

int
etcd_create(struct etcd *e, const char *key, const char *value,
    int64_t lease, etcd_cb *cb, void *arg)
{
	json_t *txn;

	if (e == NULL || key == NULL || value == NULL || key[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	txn = json_pack("{s:[{s:o, s:s, s:s, s:s}], s:[{s:o}], "
	    "s:[{s:{s:o}}]}",
	    "compare", "key", json_b64(key, strlen(key)), "target", "CREATE",
	    "result", "EQUAL", "create_revision", "0",
	    "success", "request_put", put_body(key, value, lease),
	    "failure", "request_range", "key", json_b64(key, strlen(key)));
	return request(e, XK_CREATE, txn, cb, arg);
}

int
etcd_delete(struct etcd *e, const char *key, etcd_cb *cb, void *arg)
{
	if (e == NULL || key == NULL || key[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	return request(e, XK_DELETE, json_pack("{s:o}", "key",
	    json_b64(key, strlen(key))), cb, arg);
}

int
etcd_range_prefix(struct etcd *e, const char *prefix, etcd_cb *cb,
    void *arg)
{
	if (e == NULL || prefix == NULL) {
		errno = EINVAL;
		return -1;
	}
	return request(e, XK_RANGE, json_pack("{s:o, s:o}",
	    "key", prefix[0] == '\0' ? json_b64("", 1) :
	    json_b64(prefix, strlen(prefix)),
	    "range_end", json_prefix_end(prefix)), cb, arg);
}

int
etcd_lease_grant(struct etcd *e, int64_t ttl_s, etcd_cb *cb, void *arg)
{
	if (e == NULL || ttl_s <= 0) {
		errno = EINVAL;
		return -1;
	}
	return request(e, XK_GRANT, json_pack("{s:o}", "TTL",
	    json_i64_string(ttl_s)), cb, arg);
}

int
etcd_lease_revoke(struct etcd *e, int64_t lease, etcd_cb *cb, void *arg)
{
	if (e == NULL || lease == 0) {
		errno = EINVAL;
		return -1;
	}
	return request(e, XK_REVOKE, json_pack("{s:o}", "ID",
	    json_i64_string(lease)), cb, arg);
}

/* --- keepalive --- */

static void
ka_lost(struct etcd *e, enum etcd_err why)
{
	void (*lost)(void *, enum etcd_err) = e->ka.lost;
	void *arg = e->ka.arg;

	etcd_keepalive_stop(e);
	if (lost != NULL) {
		e->depth++;
		lost(arg, why);
		e->depth--;
		reap(e);
	}
}

static void
ka_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct etcd *e = container_of(t, struct etcd, ka.tick);
	struct xfer *x;

	if (!e->ka.on || e->ka.busy)
		return;
	x = xfer_new(e, XK_KEEPALIVE, json_pack("{s:o}", "ID",
	    json_i64_string(e->ka.lease)), NULL, NULL);
	if (x == NULL)
		return;		/* the next tick tries again */
	x->ka_gen = e->ka.gen;
	if (xfer_submit(e, x) == -1) {
		xfer_free(x);
		return;
	}
	e->ka.busy = true;
	e->ka.sent = ev_now(e->loop);
}

static void
ka_loss_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct etcd *e = container_of(t, struct etcd, ka.loss);

	ka_lost(e, e->ka.last_err != ETCD_OK ? e->ka.last_err :
	    ETCD_ETIMEDOUT);
}

static void
ka_reply(struct etcd *e, unsigned gen, const struct etcd_reply *r)
{
	double left;

	if (!e->ka.on || gen != e->ka.gen)
		return;
	e->ka.busy = false;
	e->ka.last_err = r->err;
	if (r->err == ETCD_ENOTFOUND) {
		ka_lost(e, ETCD_ENOTFOUND);
		return;
	}
	if (r->err != ETCD_OK)
		return;		/* the loss timer decides */
	/* etcd renewed it at some time after we sent: count from then. */
	left = (double)e->ka.ttl_s - (ev_now(e->loop) - e->ka.sent);
	ev_timer_stop(e->loop, &e->ka.loss);
	ev_timer_set(&e->ka.loss, left > 0. ? left : 0., 0.);
	ev_timer_start(e->loop, &e->ka.loss);
}

int
etcd_keepalive_start(struct etcd *e, int64_t lease, int64_t ttl_s,
    void (*lost)(void *, enum etcd_err), void *arg)
{
	double every;

	if (e == NULL || lease == 0 || ttl_s <= 0) {
		errno = EINVAL;
		return -1;
	}
	etcd_keepalive_stop(e);
	e->ka.on = true;
	e->ka.busy = false;
	e->ka.gen++;
	e->ka.lease = lease;
	e->ka.ttl_s = ttl_s;
	e->ka.lost = lost;
	e->ka.arg = arg;
	e->ka.last_err = ETCD_OK;
	every = (double)ttl_s / 3.0;
	ev_timer_set(&e->ka.tick, every, every);
	ev_timer_start(e->loop, &e->ka.tick);
	ev_timer_set(&e->ka.loss, (double)ttl_s, 0.);
	ev_timer_start(e->loop, &e->ka.loss);
	return 0;
}

void
etcd_keepalive_stop(struct etcd *e)
{
	if (e == NULL || !e->ka.on)
		return;
	ev_timer_stop(e->loop, &e->ka.tick);
	ev_timer_stop(e->loop, &e->ka.loss);
	e->ka.on = false;
	e->ka.busy = false;
	e->ka.gen++;
	e->ka.lost = NULL;
	e->ka.arg = NULL;
}

/* --- watches --- */

static void
watch_free(struct etcd_watch *w)
{
	ev_timer_stop(w->e->loop, &w->created_timer);
	if (w->x != NULL) {
		xfer_stop(w->x);
		xfer_free(w->x);
	}
	TAILQ_REMOVE(&w->e->watches, w, link);
	free(w);
}

/* Frees what was cancelled or ended while callbacks were on the stack. */
static void
reap(struct etcd *e)
{
	struct etcd_watch *w, *next;

	if (e->depth > 0)
		return;
	for (w = TAILQ_FIRST(&e->watches); w != NULL; w = next) {
		next = TAILQ_NEXT(w, link);
		if (w->dead)
			watch_free(w);
	}
}

/* Stops w's exchange; if it was live, tells its owner once. */
static void
watch_end(struct etcd_watch *w, enum etcd_err err, const char *msg)
{
	struct etcd *e = w->e;
	bool tell = !w->dead;

	w->dead = true;
	ev_timer_stop(e->loop, &w->created_timer);
	if (w->x != NULL)
		xfer_stop(w->x);
	if (tell && w->ops.broken != NULL) {
		e->depth++;
		w->ops.broken(w->arg, err, msg);
		e->depth--;
	}
}

static void
watch_created_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct etcd_watch *w = container_of(t, struct etcd_watch,
	    created_timer);
	struct etcd *e = w->e;
	char msg[ETCD_MESSAGE_MAX];

	snprintf(msg, sizeof(msg), "%.200s: no watch created within %ld ms",
	    e->endpoints[w->x->endpoint], e->deadline_ms);
	endpoint_failed(e, w->x->endpoint);
	watch_end(w, ETCD_ETIMEDOUT, msg);
	reap(e);
}

/*
 * A watch sent with an expired token is cancelled ("invalid auth
 * token"): log in once more and watch again, as the other calls do.
 * watch_feed() restarts it after the line.
 */
static bool
watch_may_relogin(struct etcd_watch *w)
{
	if (w->e->user == NULL || w->x->relogged || w->created)
		return false;
	w->relogin = true;
	return true;
}

static void
watch_restart(struct etcd_watch *w)
{
	struct etcd *e = w->e;
	struct xfer *x = w->x;

	w->relogin = false;
	x->relogged = true;
	xfer_stop(x);
	if (x->token_gen == e->token_gen) {
		free(e->token);
		e->token = NULL;
	}
	x->len = 0;
	if (xfer_submit(e, x) == -1)
		watch_end(w, ETCD_ENOMEM, "out of memory");
}

/* Why etcd cancelled a watch, from its words. */
static enum etcd_err
cancel_reason_err(const char *reason, bool *token_bad)
{
	if (reason == NULL)
		return ETCD_EBROKEN;
	if (strstr(reason, "invalid auth token") != NULL ||
	    strstr(reason, "user name is empty") != NULL) {
		*token_bad = true;
		return ETCD_EAUTH;
	}
	if (strstr(reason, "permission denied") != NULL)
		return ETCD_EAUTH;
	return ETCD_EBROKEN;
}

/* One line of the stream: created, events, or the end of the watch. */
static void
watch_line(struct etcd_watch *w, const char *line, size_t len)
{
	struct reply_store st;
	struct etcd_kv kv;
	json_t *root, *res, *evs, *ev;
	json_error_t jerr;
	enum etcd_err err;
	const char *reason;
	size_t i;
	bool deleted;

	memset(&st, 0, sizeof(st));
	if ((root = json_loadb(line, len, 0, &jerr)) == NULL) {
		snprintf(st.message, sizeof(st.message),
		    "unreadable watch line: %s", jerr.text);
		watch_end(w, ETCD_EPROTO, st.message);
		return;
	}
	if ((err = error_classify(root, &st)) != ETCD_OK) {
		json_decref(root);
		if (st.token_bad && watch_may_relogin(w))
			return;
		watch_end(w, err, st.message);
		return;
	}
	res = json_object_get(root, "result");
	/* created and canceled at once: the create was refused. */
	if (json_is_true(json_object_get(res, "created")) &&
	    !json_is_true(json_object_get(res, "canceled"))) {
		w->created = true;
		ev_timer_stop(w->e->loop, &w->created_timer);
	}
	evs = json_object_get(res, "events");
	for (i = 0; i < json_array_size(evs) && !w->dead; i++) {
		ev = json_array_get(evs, i);
		if (kv_decode(json_object_get(ev, "kv"), &kv) == -1) {
			free((char *)kv.key);
			watch_end(w, ETCD_ENOMEM, "out of memory");
			break;
		}
		deleted = json_is_string(json_object_get(ev, "type")) &&
		    strcmp(json_string_value(json_object_get(ev, "type")),
		    "DELETE") == 0;
		w->e->depth++;
		w->ops.event(w->arg, deleted, &kv, kv.mod_revision);
		w->e->depth--;
		free((char *)kv.key);
		free((char *)kv.value);
	}
	if (!w->dead && json_is_true(json_object_get(res, "canceled"))) {
		reason = json_string_value(json_object_get(res,
		    "cancel_reason"));
		if (json_i64(res, "compact_revision") != 0) {
			snprintf(st.message, sizeof(st.message),
			    "compacted at revision %" PRId64,
			    json_i64(res, "compact_revision"));
			err = ETCD_ECOMPACTED;
		} else {
			snprintf(st.message, sizeof(st.message),
			    "watch canceled: %s",
			    reason != NULL ? reason : "no reason");
			err = cancel_reason_err(reason, &st.token_bad);
		}
		if (!st.token_bad || !watch_may_relogin(w))
			watch_end(w, err, st.message);
	}
	json_decref(root);
}

/* Hands out the whole lines buffered; at_end, the rest too. */
static void
watch_feed(struct etcd_watch *w, bool at_end)
{
	struct xfer *x = w->x;
	size_t start = 0;
	char *nl;

	while (!w->dead && !w->relogin && start < x->len) {
		nl = memchr(x->buf + start, '\n', x->len - start);
		if (nl == NULL) {
			if (!at_end)
				break;
			nl = x->buf + x->len;
		}
		if (nl > x->buf + start)
			watch_line(w, x->buf + start,
			    (size_t)(nl - (x->buf + start)));
		start = (size_t)(nl - x->buf) + 1;
	}
	if (w->dead)
		return;
	if (w->relogin) {
		watch_restart(w);
		return;
	}
	if (start >= x->len)
		x->len = 0;
	else if (start > 0) {
		memmove(x->buf, x->buf + start, x->len - start);
		x->len -= start;
	}
	if (x->len > ETCD_WATCH_LINE_MAX_BYTES)
		watch_end(w, ETCD_EPROTO, "watch line too long");
}

struct etcd_watch *
etcd_watch_prefix(struct etcd *e, const char *prefix, int64_t start_rev,
    const struct etcd_watch_ops *ops, void *arg)
{
	struct etcd_watch *w;
	json_t *req;

	if (e == NULL || prefix == NULL || ops == NULL || ops->event == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	req = json_pack("{s:o, s:o}", "key", prefix[0] == '\0' ?
	    json_b64("", 1) : json_b64(prefix, strlen(prefix)),
	    "range_end", json_prefix_end(prefix));
	if (req != NULL && start_rev > 0 && json_object_set_new(req,
	    "start_revision", json_i64_string(start_rev)) == -1) {
		json_decref(req);
		req = NULL;
	}
	if ((w->x = xfer_new(e, XK_WATCH, req == NULL ? NULL :
	    json_pack("{s:o}", "create_request", req), NULL, NULL)) == NULL) {
		free(w);
		errno = ENOMEM;
		return NULL;
	}
	w->e = e;
	w->ops = *ops;
	w->arg = arg;
	w->x->watch = w;
	if (xfer_submit(e, w->x) == -1) {
		xfer_free(w->x);
		free(w);
		errno = ENOMEM;
		return NULL;
	}
	TAILQ_INSERT_TAIL(&e->watches, w, link);
	ev_timer_init(&w->created_timer, watch_created_timeout,
	    (double)e->deadline_ms / 1000.0, 0.);
	ev_timer_start(e->loop, &w->created_timer);
	return w;
}

void
etcd_watch_cancel(struct etcd_watch *w)
{
	struct etcd *e;

	if (w == NULL)
		return;
	e = w->e;
	w->dead = true;
	ev_timer_stop(e->loop, &w->created_timer);
	if (w->x != NULL)
		xfer_stop(w->x);
	reap(e);
}

/* --- the handle --- */

static char *
strdup_or_null(const char *s, bool *failed)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*failed = true;
	return d;
}

static int
config_copy(struct etcd *e, const struct etcd_config *cfg, char *err,
    size_t errlen)
{
	bool failed = false;
	size_t i, n;

	if (cfg->n_endpoints == 0 || cfg->n_endpoints > ETCD_ENDPOINTS_MAX) {
		snprintf(err, errlen, "etcd: %zu endpoints (1 to %d)",
		    cfg->n_endpoints, ETCD_ENDPOINTS_MAX);
		return -1;
	}
	for (i = 0; i < cfg->n_endpoints; i++) {
		n = cfg->endpoints[i] != NULL ? strlen(cfg->endpoints[i]) : 0;
		if (n == 0 || n > 512 ||
		    (strncmp(cfg->endpoints[i], "http://", 7) != 0 &&
		    strncmp(cfg->endpoints[i], "https://", 8) != 0)) {
			snprintf(err, errlen, "etcd: endpoint %zu is not an "
			    "http:// or https:// URL", i + 1);
			return -1;
		}
		e->endpoints[i] = strdup_or_null(cfg->endpoints[i], &failed);
		/* "http://h:2379/" and "http://h:2379" alike */
		if (e->endpoints[i] != NULL && e->endpoints[i][n - 1] == '/')
			e->endpoints[i][n - 1] = '\0';
	}
	e->n_endpoints = cfg->n_endpoints;
	e->deadline_ms = cfg->deadline_ms > 0 ? cfg->deadline_ms :
	    ETCD_DEADLINE_DEFAULT_MS;
	e->user = strdup_or_null(cfg->user, &failed);
	e->password = strdup_or_null(cfg->password, &failed);
	e->ca_file = strdup_or_null(cfg->ca_file, &failed);
	e->cert_file = strdup_or_null(cfg->cert_file, &failed);
	e->key_file = strdup_or_null(cfg->key_file, &failed);
	if (failed) {
		snprintf(err, errlen, "etcd: out of memory");
		return -1;
	}
	return 0;
}

struct etcd *
etcd_new(struct ev_loop *loop, const struct etcd_config *cfg, char *err,
    size_t errlen)
{
	static bool curl_ready;
	struct etcd *e;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			snprintf(err, errlen, "etcd: curl_global_init failed");
			return NULL;
		}
		curl_ready = true;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		snprintf(err, errlen, "etcd: out of memory");
		return NULL;
	}
	e->loop = loop;
	TAILQ_INIT(&e->waiting);
	TAILQ_INIT(&e->running);
	TAILQ_INIT(&e->watches);
	LIST_INIT(&e->socks);
	ev_timer_init(&e->curl_timer, curl_timer_cb, 0., 0.);
	ev_timer_init(&e->ka.tick, ka_tick_cb, 0., 0.);
	ev_timer_init(&e->ka.loss, ka_loss_cb, 0., 0.);
	if (config_copy(e, cfg, err, errlen) == -1) {
		etcd_free(e);
		return NULL;
	}
	if ((e->multi = curl_multi_init()) == NULL) {
		snprintf(err, errlen, "etcd: curl_multi_init failed");
		etcd_free(e);
		return NULL;
	}
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
	return e;
}

void
etcd_free(struct etcd *e)
{
	struct sock_watcher *sw;
	struct etcd_watch *w;
	struct xfer *x;
	size_t i;

	if (e == NULL)
		return;
	etcd_keepalive_stop(e);
	while ((w = TAILQ_FIRST(&e->watches)) != NULL)
		watch_free(w);
	while ((x = TAILQ_FIRST(&e->running)) != NULL) {
		xfer_stop(x);
		xfer_free(x);
	}
	while ((x = TAILQ_FIRST(&e->waiting)) != NULL) {
		xfer_stop(x);
		xfer_free(x);
	}
	if (e->multi != NULL)
		curl_multi_cleanup(e->multi);
	while ((sw = LIST_FIRST(&e->socks)) != NULL) {
		ev_io_stop(e->loop, &sw->io);
		LIST_REMOVE(sw, link);
		free(sw);
	}
	ev_timer_stop(e->loop, &e->curl_timer);
	for (i = 0; i < e->n_endpoints; i++)
		free(e->endpoints[i]);
	free(e->user);
	free(e->password);
	free(e->ca_file);
	free(e->cert_file);
	free(e->key_file);
	free(e->token);
	free(e);
}
