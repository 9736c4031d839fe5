/*
 * etcdlib.c — a real etcd for the tests.  See etcdlib.h.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcdlib.h"

#define ETCD_STOP_MS	5000
#define ETCD_HTTP_MAX	(16u << 20)	/* bytes of one reply */

/* --- base64, as the gateway wants keys and values --- */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *
b64_encode(const unsigned char *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
	unsigned v;
	size_t i;

	TL_ASSERT(out != NULL, "out of memory");
	for (i = 0; i + 2 < n; i += 3) {
		v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = b64[v >> 6 & 63];
		*o++ = b64[v & 63];
	}
	if (n - i == 1) {
		v = (unsigned)p[i] << 16;
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = b64[v >> 6 & 63];
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* Decodes s (padding and junk skipped) into a NUL-terminated string. */
static char *
b64_decode(const char *s)
{
	char *out = malloc(strlen(s) * 3 / 4 + 4), *o = out;
	const char *q;
	unsigned v = 0;
	int bits = 0;

	TL_ASSERT(out != NULL, "out of memory");
	for (; *s != '\0'; s++) {
		if ((q = strchr(b64, *s)) == NULL || *s == '\0')
			continue;
		v = v << 6 | (unsigned)(q - b64);
		if ((bits += 6) >= 8) {
			bits -= 8;
			*o++ = (char)(v >> bits & 0xff);
		}
	}
	*o = '\0';
	return out;
}

/* --- the process --- */

const char *
tl_etcd_bin(void)
{
	static char found[TL_PATH_MAX];
	const char *env = getenv("ETCD_BIN"), *path = getenv("PATH");
	const char *p, *colon;
	size_t n;

	if (env != NULL && env[0] != '\0')
		return access(env, X_OK) == 0 ? env : NULL;
	for (p = path ? path : "/usr/bin:/bin"; *p != '\0'; p = colon + 1) {
		colon = strchr(p, ':');
		n = colon ? (size_t)(colon - p) : strlen(p);
		snprintf(found, sizeof(found), "%.*s/etcd", (int)n, p);
		if (n > 0 && access(found, X_OK) == 0)
			return found;
		if (colon == NULL)
			break;
	}
	return access("/usr/bin/etcd", X_OK) == 0 ? "/usr/bin/etcd" : NULL;
}

int
tl_free_port(const char *host)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd, port;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	TL_ASSERT(inet_pton(AF_INET, host, &sin.sin_addr) == 1,
	    "bad address %s", host);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	TL_ASSERT(fd != -1, "socket: %s", strerror(errno));
	TL_ASSERT(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0,
	    "bind %s:0: %s", host, strerror(errno));
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static void
etcd_spawn(struct tl_etcd *e)
{
	char curl[128], purl[128], init[160];
	const char *bin = tl_etcd_bin();

	TL_ASSERT(bin != NULL, "no etcd binary (ETCD_BIN, PATH)");
	snprintf(curl, sizeof(curl), "http://%s:%d", e->host, e->client_port);
	snprintf(purl, sizeof(purl), "http://%s:%d", e->host, e->peer_port);
	snprintf(init, sizeof(init), "ctest=%s", purl);
	e->pid = tl_spawn_logged(e->log, bin, (char *const []){ "etcd",
	    "--name", "ctest", "--data-dir", e->data, "--listen-client-urls",
	    curl, "--advertise-client-urls", curl, "--listen-peer-urls", purl,
	    "--initial-advertise-peer-urls", purl, "--initial-cluster", init,
	    "--log-level", "warn", NULL });
	tl_track(e->pid);
}

/* Starts and waits for health; fails the test with the log if not. */
static void
etcd_run(struct tl_etcd *e)
{
	long long dl = tl_now_ms() + TL_ETCD_READY_MS;

	etcd_spawn(e);
	for (;;) {
		if (tl_etcd_healthy(e, 500))
			return;
		if (waitpid(e->pid, &e->status, WNOHANG) == e->pid) {
			e->pid = 0;
			tl_etcd_print_log(e, 8192);
			TL_ASSERT(0, "etcd exited at its start (status 0x%x)",
			    e->status);
		}
		if (tl_now_ms() >= dl) {
			tl_etcd_print_log(e, 8192);
			TL_ASSERT(0, "etcd on %s not healthy within %d ms",
			    e->url, TL_ETCD_READY_MS);
		}
		tl_sleep_ms(50);
	}
}

void
tl_etcd_start(struct tl_etcd *e, const char *host)
{
	char tmpl[] = "/tmp/poold-etcd.XXXXXX";

	memset(e, 0, sizeof(*e));
	TL_ASSERT(mkdtemp(tmpl) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(e->dir, sizeof(e->dir), "%s", tmpl);
	snprintf(e->data, sizeof(e->data), "%s/data", e->dir);
	snprintf(e->log, sizeof(e->log), "%s/etcd.log", e->dir);
	snprintf(e->host, sizeof(e->host), "%s", host);
	e->client_port = tl_free_port(host);
	do
		e->peer_port = tl_free_port(host);
	while (e->peer_port == e->client_port);
	snprintf(e->url, sizeof(e->url), "http://%s:%d", host,
	    e->client_port);
	etcd_run(e);
}

void
tl_etcd_restart(struct tl_etcd *e)
{
	TL_ASSERT(e->pid == 0, "etcd %d is still running", (int)e->pid);
	etcd_run(e);
}

/* Waits for e->pid to exit; true if it did within ms. */
static bool
etcd_reap(struct tl_etcd *e, long long ms)
{
	long long dl = tl_now_ms() + ms;

	for (;;) {
		if (waitpid(e->pid, &e->status, WNOHANG) == e->pid) {
			e->pid = 0;
			return true;
		}
		if (tl_now_ms() >= dl)
			return false;
		tl_sleep_ms(10);
	}
}

void
tl_etcd_stop(struct tl_etcd *e)
{
	if (e->pid <= 0)
		return;
	kill(e->pid, SIGTERM);
	if (!etcd_reap(e, ETCD_STOP_MS))
		tl_etcd_kill(e);
}

void
tl_etcd_kill(struct tl_etcd *e)
{
	if (e->pid <= 0)
		return;
	kill(e->pid, SIGKILL);
	TL_ASSERT(etcd_reap(e, ETCD_STOP_MS), "etcd %d survives SIGKILL",
	    (int)e->pid);
}

void
tl_etcd_free(struct tl_etcd *e)
{
	tl_etcd_stop(e);
	tl_rm_rf(e->dir);
	e->dir[0] = '\0';
}

void
tl_etcd_print_log(const struct tl_etcd *e, size_t max)
{
	char buf[4096];
	long size, off;
	size_t n;
	FILE *f;

	if (e->log[0] == '\0' || (f = fopen(e->log, "r")) == NULL)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	off = size > (long)max ? size - (long)max : 0;
	fseek(f, off, SEEK_SET);
	fprintf(stderr, "---- etcd log %s (%ld bytes%s) ----\n", e->log, size,
	    off > 0 ? ", tail" : "");
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fprintf(stderr, "---- end of etcd log ----\n");
	fclose(f);
}

/* --- HTTP --- */

static int
http_connect(const char *host, int port, long long dl)
{
	struct sockaddr_in sin;
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, err = 0;
	long long left;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		return -1;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	left = dl - tl_now_ms();
	if (left <= 0 || poll(&pfd, 1, (int)left) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1 || err != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
http_write_all(int fd, const char *p, size_t n, long long dl)
{
	struct pollfd pfd;
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR)
			return -1;
		if (tl_now_ms() >= dl)
			return -1;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		poll(&pfd, 1, 50);
	}
	return 0;
}

/* Reads to EOF (Connection: close); NULL on timeout or error. */
static char *
http_read_all(int fd, long long dl, size_t *lenp)
{
	struct pollfd pfd;
	size_t len = 0, cap = 8192;
	char *buf = malloc(cap + 1);
	long long left;
	ssize_t r;

	TL_ASSERT(buf != NULL, "out of memory");
	for (;;) {
		if (cap - len < 4096 && cap < ETCD_HTTP_MAX) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			TL_ASSERT(buf != NULL, "out of memory");
		}
		r = recv(fd, buf + len, cap - len, 0);
		if (r > 0) {
			len += (size_t)r;
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) || len == cap)
			break;
		if ((left = dl - tl_now_ms()) <= 0) {
			free(buf);
			return NULL;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		poll(&pfd, 1, (int)(left > 200 ? 200 : left));
	}
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

int
tl_etcd_http(const char *host, int port, const char *method,
    const char *path, const char *headers, const char *body,
    long long timeout_ms, char **bodyp)
{
	long long dl = tl_now_ms() + timeout_ms;
	char *req, *reply, *sep;
	size_t len = 0;
	int fd, status = -1, n;

	if (bodyp != NULL)
		*bodyp = NULL;
	if ((fd = http_connect(host, port, dl)) == -1)
		return -1;
	n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%s"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", method, path, host, port,
	    headers ? headers : "", body ? strlen(body) : 0,
	    body ? body : "");
	TL_ASSERT(n >= 0, "out of memory");
	if (http_write_all(fd, req, (size_t)n, dl) == -1 ||
	    (reply = http_read_all(fd, dl, &len)) == NULL) {
		free(req);
		close(fd);
		return -1;
	}
	free(req);
	close(fd);
	if (sscanf(reply, "HTTP/1.%*d %d", &status) != 1)
		status = -1;
	if (bodyp != NULL && (sep = strstr(reply, "\r\n\r\n")) != NULL)
		*bodyp = strdup(sep + 4);
	free(reply);
	return status;
}

bool
tl_etcd_healthy(struct tl_etcd *e, long long timeout_ms)
{
	char *body = NULL;
	bool ok;

	ok = tl_etcd_http(e->host, e->client_port, "GET", "/health", NULL,
	    NULL, timeout_ms, &body) == 200 && body != NULL &&
	    strstr(body, "\"true\"") != NULL;
	free(body);
	return ok;
}

json_t *
tl_etcd_post(struct tl_etcd *e, const char *path, const char *body,
    long long timeout_ms)
{
	char *reply = NULL;
	json_t *j = NULL;

	if (tl_etcd_http(e->host, e->client_port, "POST", path, NULL, body,
	    timeout_ms, &reply) == 200 && reply != NULL)
		j = json_loads(reply, 0, NULL);
	free(reply);
	return j;
}

json_t *
tl_etcd_range(struct tl_etcd *e, const char *prefix, long long timeout_ms)
{
	size_t n = strlen(prefix);
	unsigned char *end = malloc(n + 1);
	char *k64, *e64, *body;
	json_t *rep, *out, *kv;
	size_t i;

	TL_ASSERT(end != NULL && n > 0, "bad prefix");
	/* The range end of a prefix: its last byte plus one. */
	memcpy(end, prefix, n);
	end[n - 1]++;
	k64 = b64_encode((const unsigned char *)prefix, n);
	e64 = b64_encode(end, n);
	TL_ASSERT(asprintf(&body, "{\"key\":\"%s\",\"range_end\":\"%s\"}",
	    k64, e64) >= 0, "out of memory");
	rep = tl_etcd_post(e, "/v3/kv/range", body, timeout_ms);
	free(end);
	free(k64);
	free(e64);
	free(body);
	if (rep == NULL)
		return NULL;
	out = json_array();
	json_array_foreach(json_object_get(rep, "kvs"), i, kv) {
		const char *k = json_string_value(json_object_get(kv, "key"));
		const char *v = json_string_value(json_object_get(kv,
		    "value"));
		const char *l = json_string_value(json_object_get(kv,
		    "lease"));
		char *dk = b64_decode(k ? k : ""), *dv = b64_decode(v ? v :
		    "");

		json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "key",
		    dk, "value", dv, "lease", l ? l : "0"));
		free(dk);
		free(dv);
	}
	json_decref(rep);
	return out;
}

int
tl_etcd_count(json_t *kvs, const char *needle)
{
	json_t *kv;
	size_t i;
	int n = 0;

	json_array_foreach(kvs, i, kv)
		if (strstr(json_string_value(json_object_get(kv, "key")),
		    needle) != NULL)
			n++;
	return n;
}
