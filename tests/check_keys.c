/*
 * check_keys.c — "api_keys" (issue 11): each server start gets a fresh
 * key, which poold passes to the server (LLAMA_API_KEY, {api_key}) and
 * hands to whoever acquires it, and which the front door sends in the
 * client's stead.  Against the real poold with stand-in servers
 * (build/fakellama answers 401 without the key, as llama-server does,
 * and its GET /debug/stats shows the head of the last POST it got).
 *
 * Also the pieces in isolation: the server address (numeric IPv4 or
 * IPv6), as a URL's host and as a socket address, and the front door's
 * upstream.c and the port check against a stand-in on [::1] (until a
 * config key sets server_host, poold itself reaches servers at
 * 127.0.0.1 only).
 *
 * Environment: POOLD_BIN, POOLC_BIN, FAKELLAMA_BIN (make check sets them).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "poold.h"
#include "http.h"
#include "upstream.h"
#include "poolc.h"
#include "testlib.h"

#define WAIT_MS		10000
#define KEY_HEX		64
#define CHAT_PATH	"/v1/chat/completions"
#define CHAT(model)	"{\"model\":\"" model "\",\"messages\":[{\"role\":" \
			"\"user\",\"content\":\"hi\"}]}"
#define JSON_HEADER	"Content-Type: application/json\r\n"

/* --- helpers ------------------------------------------------------ */

/* The config's keys for these tests: the stand-in reached at {host}. */
static void
start_keys(struct tl_daemon *d, const char *extra)
{
	const char *fake = getenv("FAKELLAMA_BIN");
	char over[4096];

	ck_assert_msg(fake != NULL, "FAKELLAMA_BIN is not set");
	snprintf(over, sizeof(over), "{\"api_keys\":true,\"command\":[\"%s\","
	    "\"-m\",\"{path}\",\"--host\",\"{host}\",\"--port\",\"{port}\"]"
	    "%s}", fake, extra != NULL ? extra : "");
	tl_daemon_start(d, over);
}

static bool
is_key(const char *s)
{
	if (s == NULL || strlen(s) != KEY_HEX)
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s) && !(*s >= 'a' && *s <= 'f'))
			return false;
	return true;
}

/* ACQUIRE that must succeed and carry a key: the reply (the caller's). */
static json_t *
acquire_keyed(struct tl_conn *c, const char *model, bool hold)
{
	json_t *rep = tl_acquire(c, model, 20000, hold);
	char want[64];

	TL_ASSERT(tl_ok(rep), "ACQUIRE %s: %s", model, tl_dump(rep));
	TL_ASSERT(is_key(tl_str(rep, "api_key")), "ACQUIRE %s: no 64-hex "
	    "api_key: %s", model, tl_dump(rep));
	snprintf(want, sizeof(want), "http://127.0.0.1:%lld",
	    tl_int(rep, "port"));
	TL_ASSERT(strcmp(tl_str(rep, "endpoint"), want) == 0, "endpoint: %s",
	    tl_dump(rep));
	TL_ASSERT(tl_get(rep, "node") == NULL, "a local server has no "
	    "\"node\": %s", tl_dump(rep));
	return rep;
}

/* POST a chat completion straight to the server; key NULL: none. */
static int
chat_status(int port, const char *key, const char *model_body)
{
	char hdr[256];
	struct tl_http *h;
	int status;

	snprintf(hdr, sizeof(hdr), JSON_HEADER "%s%s%s", key ? "Authorization:"
	    " Bearer " : "", key ? key : "", key ? "\r\n" : "");
	h = tl_http_request(port, "POST", CHAT_PATH, hdr, model_body, WAIT_MS);
	status = h->status;
	if (status == 401) {
		/* llama-server's words, which clients may match on. */
		json_t *j = tl_http_json(h);
		const char *msg = tl_str(j, "error.message");
		const char *type = tl_str(j, "error.type");

		TL_ASSERT(tl_int(j, "error.code") == 401 && msg != NULL &&
		    strcmp(msg, "Invalid API Key") == 0 && type != NULL &&
		    strcmp(type, "authentication_error") == 0,
		    "401 body: %s", tl_dump(j));
		json_decref(j);
	}
	tl_http_close(h);
	return status;
}

/* The stand-in's GET /debug/stats, with its key. */
static json_t *
fake_stats(int port, const char *key)
{
	char hdr[128];
	struct tl_http *h;
	json_t *j;

	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", key);
	h = tl_http_request(port, "GET", "/debug/stats", hdr, NULL, WAIT_MS);
	TL_ASSERT(h->status == 200, "GET /debug/stats on %d: %d", port,
	    h->status);
	j = tl_http_json(h);
	tl_http_close(h);
	return j;
}

/* The front door on 127.0.0.1:0 (its port from STATS). */
static int
door_port(struct tl_daemon *d, struct tl_conn *c)
{
	const char *listen, *colon;
	long long dl = tl_now_ms() + WAIT_MS;
	json_t *st;
	int port = 0;

	do {
		st = tl_stats(d, c);
		listen = tl_str(st, "http.listen");
		if (listen != NULL && (colon = strrchr(listen, ':')) != NULL)
			port = atoi(colon + 1);
		json_decref(st);
		if (port > 0)
			break;
		tl_sleep_ms(50);
	} while (tl_now_ms() < dl);
	TL_ASSERT(port > 0, "no port in STATS http.listen");
	return port;
}

/* --- 1. the key: per start, wanted by the server -------------------- */

/*
 * Pass: with "api_keys": true the ACQUIRE reply carries a 64-hex key; the
 * server answers 401 (llama-server's body) without it, 200 with it, and
 * /health without it (poold's checks need none: the server got ready);
 * LEASE tells the same key; a second ACQUIRE of the running server the
 * same key; after an EVICT the next start has another one.
 */
START_TEST(test_key_per_start)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *a, *b, *rep;
	char key[KEY_HEX + 1];
	int port;

	tl_daemon_init(&d, 1);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	start_keys(&d, NULL);
	c = tl_connect(&d);

	a = acquire_keyed(c, "a", true);
	port = (int)tl_int(a, "port");
	snprintf(key, sizeof(key), "%s", tl_str(a, "api_key"));
	TL_ASSERT(chat_status(port, NULL, CHAT("a")) == 401, "no key: not 401");
	TL_ASSERT(chat_status(port, "0123", CHAT("a")) == 401, "a wrong key: "
	    "not 401");
	TL_ASSERT(chat_status(port, key, CHAT("a")) == 200, "the key: not 200");
	TL_ASSERT(tl_http_status(port, "/health", WAIT_MS) == 200,
	    "/health is public");

	rep = tl_call(c, json_pack("{s:s, s:I}", "cmd", "LEASE", "lease",
	    (json_int_t)tl_int(a, "lease")), WAIT_MS);
	TL_ASSERT(tl_ok(rep) && tl_str(rep, "api_key") != NULL &&
	    strcmp(tl_str(rep, "api_key"), key) == 0, "LEASE: %s",
	    tl_dump(rep));
	json_decref(rep);

	b = acquire_keyed(c, "a", false);
	TL_ASSERT(strcmp(tl_str(b, "api_key"), key) == 0, "one start, one "
	    "key: %s", tl_dump(b));
	json_decref(b);
	tl_release(c, tl_int(a, "lease"));
	json_decref(a);

	json_decref(tl_evict(c, "a", false, WAIT_MS));
	b = acquire_keyed(c, "a", false);
	TL_ASSERT(strcmp(tl_str(b, "api_key"), key) != 0, "a new start kept "
	    "the old key");
	TL_ASSERT(chat_status((int)tl_int(b, "port"), key, CHAT("a")) == 401,
	    "the old key still works");
	TL_ASSERT(chat_status((int)tl_int(b, "port"), tl_str(b, "api_key"),
	    CHAT("a")) == 200, "the new key: not 200");
	json_decref(b);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 2. how the server gets it -------------------------------------- */

/*
 * Pass: the key reaches the server in LLAMA_API_KEY, not on its command
 * line (where every user sees it), over a model's "env" that names
 * LLAMA_API_KEY too; {api_key} in a model's command is the same key
 * (that server takes it as --api-key and accepts it).
 */
START_TEST(test_key_delivery)
{
	struct tl_daemon d;
	struct tl_conn *c;
	const char *fake = getenv("FAKELLAMA_BIN");
	char extra[2048], path[64], buf[8192], want[KEY_HEX + 32];
	json_t *a, *b;
	ssize_t n;
	pid_t pid;
	int fd;

	tl_daemon_init(&d, 2);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	tl_model(&d, "b", "load_ms=50\nmem=1M\n");
	snprintf(extra, sizeof(extra), ",\"models\":{\"a\":{\"env\":"
	    "{\"LLAMA_API_KEY\":\"stale\"}},\"b\":{\"command\":[\"%s\",\"-m\","
	    "\"{path}\",\"--host\",\"{host}\",\"--port\",\"{port}\","
	    "\"--api-key\",\"{api_key}\"]}}", fake);
	start_keys(&d, extra);
	c = tl_connect(&d);

	a = acquire_keyed(c, "a", false);
	TL_ASSERT(chat_status((int)tl_int(a, "port"), "stale", CHAT("a")) ==
	    401, "the model's env won over poold's key");
	TL_ASSERT(chat_status((int)tl_int(a, "port"), tl_str(a, "api_key"),
	    CHAT("a")) == 200, "poold's key refused");
	b = acquire_keyed(c, "b", false);
	TL_ASSERT(chat_status((int)tl_int(b, "port"), tl_str(b, "api_key"),
	    CHAT("b")) == 200, "{api_key} is not the key");

#ifdef __linux__
	pid = tl_stats_pid(&d, c, "a");
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	TL_ASSERT((fd = open(path, O_RDONLY)) != -1, "%s", path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	TL_ASSERT(n > 0, "read %s", path);
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	TL_ASSERT(strstr(buf, tl_str(a, "api_key")) == NULL, "the key is on "
	    "the command line: %s", buf);
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	TL_ASSERT((fd = open(path, O_RDONLY)) != -1, "%s", path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	TL_ASSERT(n > 0, "read %s", path);
	snprintf(want, sizeof(want), "LLAMA_API_KEY=%s", tl_str(a, "api_key"));
	TL_ASSERT(memmem(buf, (size_t)n, want, strlen(want) + 1) != NULL,
	    "no %s in its environment", want);
	TL_ASSERT(memmem(buf, (size_t)n, "LLAMA_API_KEY=stale", 20) == NULL,
	    "the model's LLAMA_API_KEY is there too");
#else
	(void)pid; (void)path; (void)buf; (void)want; (void)n; (void)fd;
#endif
	json_decref(a);
	json_decref(b);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 3. the front door ---------------------------------------------- */

/*
 * Pass: through the front door with a token, a client's Bearer token and
 * x-api-key reach poold only: the server sees "Authorization: Bearer
 * KEY" (its own) and never the token; the response is 200, streamed or
 * not.  Without a key (api_keys false) and without a token, a client's
 * Authorization is still not passed on.
 */
START_TEST(test_door_sends_key)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	char tok[TL_PATH_MAX + 64], extra[TL_PATH_MAX + 128], want[128];
	const char *head;
	json_t *a, *st;
	int port;

	tl_daemon_init(&d, 3);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	snprintf(tok, sizeof(tok), "%s/token", d.dir);
	tl_write_file(tok, "door-s3cret\n");
	TL_ASSERT(chmod(tok, 0600) == 0, "chmod %s", tok);
	snprintf(extra, sizeof(extra), ",\"http\":{\"listen\":\"127.0.0.1:0\","
	    "\"token_file\":\"%s\"}", tok);
	start_keys(&d, extra);
	c = tl_connect(&d);
	port = door_port(&d, c);

	h = tl_http_request(port, "POST", CHAT_PATH, JSON_HEADER
	    "Authorization: Bearer door-s3cret\r\nx-api-key: door-s3cret\r\n",
	    CHAT("a"), WAIT_MS * 3);
	TL_ASSERT(h->status == 200, "through the door: HTTP %d: %.300s",
	    h->status, h->body ? h->body : "");
	tl_http_close(h);

	a = acquire_keyed(c, "a", false);
	st = fake_stats((int)tl_int(a, "port"), tl_str(a, "api_key"));
	head = tl_str(st, "last_head");
	snprintf(want, sizeof(want), "Authorization: Bearer %s\r\n",
	    tl_str(a, "api_key"));
	TL_ASSERT(head != NULL && strstr(head, want) != NULL, "the server did "
	    "not get its key: %s", head ? head : "(none)");
	TL_ASSERT(strstr(head, "door-s3cret") == NULL, "the door's token "
	    "reached the server: %s", head);
	TL_ASSERT(tl_int(st, "unauthorized") == 0, "the server refused %lld "
	    "requests", tl_int(st, "unauthorized"));
	json_decref(st);

	/* A stream too. */
	h = tl_http_request(port, "POST", CHAT_PATH, JSON_HEADER
	    "Authorization: Bearer door-s3cret\r\n", "{\"model\":\"a\","
	    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
	    "\"stream\":true}", WAIT_MS * 3);
	TL_ASSERT(h->status == 200 && h->events >= 2, "stream: HTTP %d, %ld "
	    "events", h->status, h->events);
	tl_http_close(h);
	json_decref(a);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

START_TEST(test_door_strips_credentials)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	json_t *rep;
	const char *head;
	int port, sport;

	tl_daemon_init(&d, 4);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	tl_daemon_start(&d, "{\"http\":{\"listen\":\"127.0.0.1:0\"}}");
	c = tl_connect(&d);
	port = door_port(&d, c);
	h = tl_http_request(port, "POST", CHAT_PATH, JSON_HEADER
	    "Authorization: Bearer users-own\r\n", CHAT("a"), WAIT_MS * 3);
	TL_ASSERT(h->status == 200, "HTTP %d: %.300s", h->status,
	    h->body ? h->body : "");
	tl_http_close(h);

	/* api_keys false: the reply as it always was, no key. */
	rep = tl_acquire(c, "a", WAIT_MS, false);
	TL_ASSERT(tl_ok(rep) && tl_get(rep, "api_key") == NULL &&
	    tl_get(rep, "node") == NULL, "ACQUIRE: %s", tl_dump(rep));
	sport = (int)tl_int(rep, "port");
	json_decref(rep);
	h = tl_http_request(sport, "GET", "/debug/stats", NULL, NULL, WAIT_MS);
	TL_ASSERT(h->status == 200, "no key wanted: HTTP %d", h->status);
	rep = tl_http_json(h);
	tl_http_close(h);
	head = tl_str(rep, "last_head");
	TL_ASSERT(head != NULL && strstr(head, "users-own") == NULL &&
	    strstr(head, "Authorization") == NULL, "credentials passed on: "
	    "%s", head ? head : "(none)");
	json_decref(rep);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 4. the clients ------------------------------------------------- */

/*
 * Pass: libpoolc's acquire and lease give the key; poolc acquire prints
 * it on a second line; poolc run exports POOLD_API_KEY.
 */
START_TEST(test_clients_get_key)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct poolc *pc;
	struct poolc_server s, l;
	const char *poolc = getenv("POOLC_BIN");
	char cmd[2048], out[512];
	FILE *fp;
	size_t n;

	tl_daemon_init(&d, 5);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	start_keys(&d, NULL);
	c = tl_connect(&d);

	pc = poolc_connect(d.sock, WAIT_MS);
	TL_ASSERT(pc != NULL && poolc_error(pc) == POOLC_OK, "connect: %s",
	    pc ? poolc_errstr(pc) : "no memory");
	TL_ASSERT(poolc_acquire(pc, "a", NULL, &s) == 0, "acquire: %s",
	    poolc_errstr(pc));
	TL_ASSERT(is_key(s.api_key) && s.node[0] == '\0', "api_key '%s', "
	    "node '%s'", s.api_key, s.node);
	TL_ASSERT(poolc_lease(pc, s.lease, &l) == 0 &&
	    strcmp(l.api_key, s.api_key) == 0, "LEASE: '%s'", l.api_key);
	TL_ASSERT(chat_status(s.port, s.api_key, CHAT("a")) == 200,
	    "libpoolc's key refused");

	if (poolc != NULL) {
		snprintf(cmd, sizeof(cmd), "'%s' -s '%s' acquire a", poolc,
		    d.sock);
		TL_ASSERT((fp = popen(cmd, "r")) != NULL, "popen");
		n = fread(out, 1, sizeof(out) - 1, fp);
		out[n] = '\0';
		TL_ASSERT(pclose(fp) == 0, "poolc acquire failed: %s", out);
		snprintf(cmd, sizeof(cmd), "%s\n%s\n", s.endpoint, s.api_key);
		TL_ASSERT(strcmp(out, cmd) == 0, "poolc acquire printed '%s'",
		    out);
		snprintf(cmd, sizeof(cmd), "POOLD_API_KEY=stale '%s' -s '%s' "
		    "run a -- sh -c 'echo \"$POOLD_API_KEY\"'", poolc, d.sock);
		TL_ASSERT((fp = popen(cmd, "r")) != NULL, "popen");
		n = fread(out, 1, sizeof(out) - 1, fp);
		out[n] = '\0';
		TL_ASSERT(pclose(fp) == 0, "poolc run failed: %s", out);
		snprintf(cmd, sizeof(cmd), "%s\n", s.api_key);
		TL_ASSERT(strcmp(out, cmd) == 0, "POOLD_API_KEY is '%s'", out);
	}
	poolc_free(pc);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 5. the pieces -------------------------------------------------- */

/*
 * Pass: server_host takes numeric addresses only (a name would need a
 * lookup in the loop); as a URL host an IPv6 one gets brackets; as a
 * socket address either family; "api_keys" must be a boolean; the
 * default command listens at {host}.
 */
START_TEST(test_server_host)
{
	struct config conf;
	struct sockaddr_storage ss;
	socklen_t len;
	char err[256], buf[CONFIG_HOST_PORT_BYTES], path[TL_PATH_MAX];
	struct tl_daemon d;
	bool host = false;

	config_defaults(&conf);
	ck_assert_str_eq(conf.server_host, "127.0.0.1");
	ck_assert(!conf.api_keys);
	for (size_t i = 0; conf.command[i] != NULL; i++)
		if (strcmp(conf.command[i], "--host") == 0)
			host = conf.command[i + 1] != NULL &&
			    strcmp(conf.command[i + 1], "{host}") == 0;
	ck_assert_msg(host, "the default command has no --host {host}");
	config_host_port(&conf, 8080, buf, sizeof(buf));
	ck_assert_str_eq(buf, "127.0.0.1:8080");
	ck_assert_int_eq(config_set_server_host(&conf, "localhost", err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "numeric"));
	ck_assert_int_eq(config_set_server_host(&conf, "10.0.0.1:80", err,
	    sizeof(err)), -1);
	ck_assert_int_eq(config_set_server_host(&conf, "fd00::17", err,
	    sizeof(err)), 0);
	config_host_port(&conf, 65535, buf, sizeof(buf));
	ck_assert_str_eq(buf, "[fd00::17]:65535");
	ck_assert_int_eq(config_set_server_host(&conf,
	    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", err, sizeof(err)),
	    0);
	config_host_port(&conf, 65535, buf, sizeof(buf));
	ck_assert_str_eq(buf,
	    "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535");
	config_free(&conf);

	ck_assert_int_eq(fd_tcp_addr("::1", 8080, &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
	ck_assert_int_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8080);
	ck_assert_int_eq(fd_tcp_addr("10.1.2.3", 80, &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	ck_assert_int_eq(fd_tcp_addr("example.com", 80, &ss, &len), -1);

	tl_daemon_init(&d, 6);
	tl_write_config(&d, "{\"api_keys\":\"yes\"}");
	config_defaults(&conf);
	snprintf(path, sizeof(path), "%s", d.config);
	ck_assert_int_eq(config_load(&conf, path, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "api_keys") != NULL, "%s", err);
	tl_write_config(&d, "{\"api_keys\":true}");
	ck_assert_int_eq(config_load(&conf, path, err, sizeof(err)), 0);
	ck_assert(conf.api_keys);
	config_free(&conf);
	tl_rm_rf(d.dir);
}
END_TEST

/* --- 6. a server on IPv6 ------------------------------------------- */

struct relay {
	int	 status;
	size_t	 bytes;
	bool	 done, failed;
	char	 why[256];
};

static int
relay_head(void *ctx, const struct http_msg *resp)
{
	((struct relay *)ctx)->status = resp->status;
	return 0;
}

static void
relay_data(void *ctx, const char *p, size_t len)
{
	((struct relay *)ctx)->bytes += len;
}

static void
relay_flush(void *ctx)
{
}

static void
relay_done(void *ctx)
{
	((struct relay *)ctx)->done = true;
}

static void
relay_fail(void *ctx, const char *why, bool relaying)
{
	struct relay *r = ctx;

	r->failed = true;
	snprintf(r->why, sizeof(r->why), "%s", why);
}

static const struct upstream_ops relay_ops = {
	relay_head, relay_data, relay_flush, relay_done, relay_fail,
};

/* One request through upstream.c to [::1]:port; the relay's record. */
static void
relay_once(int port, const char *key, struct relay *r)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct upstream u;
	char *head, err[256];
	long long dl = tl_now_ms() + WAIT_MS;
	int n;

	memset(r, 0, sizeof(*r));
	n = asprintf(&head, "POST %s HTTP/1.1\r\nHost: [::1]:%d\r\n"
	    "%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
	    CHAT_PATH, port, key ? "Authorization: Bearer " : "",
	    key ? key : "", key ? "\r\n" : "", strlen(CHAT("a")));
	TL_ASSERT(n > 0 && loop != NULL, "no memory");
	upstream_init(&u, loop, &relay_ops, r);
	TL_ASSERT(upstream_start(&u, "::1", port, false, head, (size_t)n,
	    CHAT("a"), strlen(CHAT("a")), err, sizeof(err)) == 0,
	    "upstream_start [::1]:%d: %s", port, err);
	while (!r->done && !r->failed && tl_now_ms() < dl)
		ev_run(loop, EVRUN_ONCE);
	upstream_free(&u);
	ev_loop_destroy(loop);
}

/*
 * Pass: upstream.c reaches a server listening on [::1] (401 without its
 * key, 200 with it), and child_port_free() sees its port taken at
 * server_host ::1.
 */
START_TEST(test_ipv6_server)
{
	const char *fake = getenv("FAKELLAMA_BIN");
	struct sockaddr_storage ss;
	struct config conf;
	struct tl_daemon d;
	struct relay r;
	char model[TL_PATH_MAX + 16], portstr[16], err[128];
	socklen_t len;
	pid_t pid;
	int fd, port = 0;

	/* A port of ours that is free on ::1 now. */
	TL_ASSERT(fd_tcp_addr("::1", 0, &ss, &len) == 0, "::1");
	if ((fd = socket(AF_INET6, SOCK_STREAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&ss, len) == -1) {
		tl_skip("ipv6_server", "no IPv6 loopback here: %s",
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return;
	}
	len = sizeof(ss);
	TL_ASSERT(getsockname(fd, (struct sockaddr *)&ss, &len) == 0,
	    "getsockname");
	port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	close(fd);

	tl_daemon_init(&d, 7);
	tl_model(&d, "a", "load_ms=0\nmem=1M\n");
	snprintf(model, sizeof(model), "%s/a.gguf", d.models_dir);
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((pid = fork()) == 0) {
		setenv("LLAMA_API_KEY", "v6-key", 1);
		execl(fake, fake, "-m", model, "--host", "::1", "--port",
		    portstr, (char *)NULL);
		_exit(127);
	}
	TL_ASSERT(pid > 0, "fork");
	tl_track(pid);

	config_defaults(&conf);
	TL_ASSERT(config_set_server_host(&conf, "::1", err, sizeof(err)) == 0,
	    "%s", err);
	/* Up once the port is taken (child_port_free's own view). */
	for (long long dl = tl_now_ms() + WAIT_MS;
	    child_port_free(&conf, port) && tl_now_ms() < dl; )
		tl_sleep_ms(10);
	TL_ASSERT(!child_port_free(&conf, port), "[::1]:%d is free, with the "
	    "stand-in listening", port);
	for (long long dl = tl_now_ms() + WAIT_MS; tl_now_ms() < dl; ) {
		relay_once(port, "v6-key", &r);
		if (r.done && r.status == 200)
			break;
		tl_sleep_ms(20);	/* still loading: 503 */
	}
	TL_ASSERT(r.done && r.status == 200 && r.bytes > 0, "with the key: "
	    "HTTP %d, %zu bytes, %s", r.status, r.bytes, r.why);
	relay_once(port, NULL, &r);
	TL_ASSERT(r.done && r.status == 401, "without the key: HTTP %d, %s",
	    r.status, r.why);
	config_free(&conf);
	kill(pid, SIGKILL);
	TL_ASSERT(waitpid(pid, NULL, 0) == pid, "waitpid");
	tl_rm_rf(d.dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("keys");

	tl_add(s, "key_per_start", test_key_per_start);
	tl_add(s, "key_delivery", test_key_delivery);
	tl_add(s, "door_sends_key", test_door_sends_key);
	tl_add(s, "door_strips_credentials", test_door_strips_credentials);
	tl_add(s, "clients_get_key", test_clients_get_key);
	tl_add(s, "server_host", test_server_host);
	tl_add(s, "ipv6_server", test_ipv6_server);
	return tl_run(s, CK_NORMAL);
}
