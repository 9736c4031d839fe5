/*
 * check_client.c — libpoolc and poolc(1) against a scripted fake poold.
 *
 * Each test forks a fake daemon: a child that listens on a UNIX socket in
 * a fresh directory, accepts connections one after the other and runs a
 * script for each, decoding requests with protocol/ (so the library's
 * requests are checked to be valid) and writing canned replies.  A
 * script that sees something unexpected exits non-zero, which
 * fake_stop() turns into a test failure.  No real poold is needed; tests
 * against one live elsewhere.
 *
 * The CLI tests run $POOLC_BIN (set by "make check") against the same
 * fake; they are skipped when it is not set.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "proto.h"
#include "poolc.h"
#include "testlib.h"

#define FAKE_STOP_WAIT_MS	5000
/* A fake left behind by a failed test dies on its own. */
#define FAKE_LIFETIME_S		30
#define TIMEOUT_MS		2000	/* the clients' timeout in most tests */

/* The STATS reply of poold-protocol(7), after "ok" and "id". */
#define STATS_BODY \
	"\"version\":\"0.1.0\",\"pid\":123,\"uptime_ms\":5000," \
	"\"memory\":{\"total\":25769803776,\"reserved\":0," \
	"\"budget\":268435456,\"used\":100663296,\"free\":167772160," \
	"\"accounted\":100663296,\"measured\":80740352," \
	"\"system_available\":12884901888}," \
	"\"max_servers\":5,\"running\":2,\"waiting\":0,\"clients\":1," \
	"\"servers\":[{\"model\":\"tiny-a\",\"state\":\"ready\"," \
	"\"port\":18080,\"pid\":4242,\"leases\":1,\"idle_ms\":0," \
	"\"uptime_ms\":4000,\"load_ms\":310,\"mem\":50331648," \
	"\"estimate\":33554432,\"estimate_source\":\"learned\"," \
	"\"rss\":50331648}," \
	"{\"model\":\"qwen2.5-coder-32b\",\"state\":\"starting\"," \
	"\"port\":18081,\"pid\":4250,\"leases\":0,\"idle_ms\":192000," \
	"\"uptime_ms\":7384000,\"load_ms\":0,\"mem\":19327352832," \
	"\"estimate\":19327352832,\"estimate_source\":\"gguf\"," \
	"\"rss\":0}]," \
	"\"counters\":{\"acquires\":3,\"hits\":1,\"misses\":2}," \
	"\"models\":[{\"model\":\"tiny-a\",\"state\":\"ready\"," \
	"\"start_failures\":0,\"failures\":0,\"last_error\":\"\"}," \
	"{\"model\":\"mistral-7b\",\"state\":\"failed\"," \
	"\"start_failures\":5,\"failures\":5,\"last_error\":" \
	"\"'mistral-7b' failed to start: exit status 1\"}," \
	"{\"model\":\"llama-70b\",\"state\":\"backoff\"," \
	"\"start_failures\":1,\"failures\":1,\"last_error\":" \
	"\"'llama-70b' failed to start: exit status 1; gguf_init_from_" \
	"reader: invalid magic characters: 'garb', expected 'GGUF'; " \
	"last output: llama_server: exiting due to model loading error\"}]"

/* The same from a poold before measured memory: no estimates, no RSS. */
#define OLD_STATS_BODY \
	"\"version\":\"0.1.0\",\"pid\":123,\"uptime_ms\":5000," \
	"\"memory\":{\"total\":25769803776,\"reserved\":0," \
	"\"budget\":268435456,\"used\":100663296,\"free\":167772160}," \
	"\"max_servers\":5,\"running\":2,\"waiting\":1,\"clients\":1," \
	"\"servers\":[{\"model\":\"tiny-a\",\"state\":\"ready\"," \
	"\"port\":18080,\"pid\":4242,\"leases\":1,\"idle_ms\":0," \
	"\"uptime_ms\":4000,\"load_ms\":310,\"mem\":50331648}," \
	"{\"model\":\"qwen2.5-coder-32b\",\"state\":\"starting\"," \
	"\"port\":18081,\"pid\":4250,\"leases\":0,\"idle_ms\":192000," \
	"\"uptime_ms\":7384000,\"load_ms\":0,\"mem\":19327352832}]," \
	"\"counters\":{\"acquires\":3,\"hits\":1,\"misses\":2}," \
	"\"models\":[{\"model\":\"tiny-a\",\"hits\":1,\"failures\":0," \
	"\"last_error\":\"\"}]"

#define MODELS_BODY \
	"\"models_dir\":\"/srv/models\",\"models\":[" \
	"{\"model\":\"tiny-a\",\"path\":\"/srv/models/tiny-a.gguf\"," \
	"\"memory\":50331648,\"source\":\"learned\",\"state\":\"ready\"," \
	"\"port\":18080}," \
	"{\"model\":\"big\",\"path\":\"/srv/models/big.gguf\"," \
	"\"memory\":19327352832,\"source\":\"gguf\",\"state\":\"stopped\"}," \
	"{\"model\":\"broken\",\"path\":\"/srv/models/broken.gguf\"," \
	"\"memory\":6442450944,\"source\":\"default\"," \
	"\"state\":\"failed\"}]"

#define OLD_MODELS_BODY \
	"\"models_dir\":\"/srv/models\",\"models\":[" \
	"{\"model\":\"tiny-a\",\"path\":\"/srv/models/tiny-a.gguf\"," \
	"\"memory\":50331648,\"state\":\"ready\",\"port\":18080}," \
	"{\"model\":\"big\",\"path\":\"/srv/models/big.gguf\"," \
	"\"memory\":19327352832,\"state\":\"stopped\"}]"

/* A script runs in the fake daemon for its conn'th connection. */
typedef void	(*script_fn)(int fd, int conn);

static struct {
	char	 dir[64];
	char	 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pid_t	 pid;
} fake;

/* --- the fake daemon (runs in the child: no ck_* here) --- */

#define EXPECT(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fake poold: %s:%d: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		_exit(10);						\
	}								\
} while (0)

static void
sleep_ms(int ms)
{
	poll(NULL, 0, ms);
}

/* Reads one request line; -1 at EOF.  Byte by byte: requests are short
 * and nothing is read past the line. */
static int
fake_read(int fd, struct proto_request *req)
{
	char		 line[PROTO_LINE_MAX_BYTES + 2], msg[PROTO_MESSAGE_MAX];
	size_t		 n = 0;
	ssize_t		 r;

	for (;;) {
		r = read(fd, line + n, 1);
		if (r == 0 && n == 0)
			return -1;
		EXPECT(r == 1);
		if (line[n] == '\n')
			break;
		EXPECT(++n < sizeof(line));
	}
	EXPECT(proto_decode_request(line, n, req, msg, sizeof(msg)) ==
	    PROTO_OK);
	EXPECT(json_is_integer(req->id));
	return 0;
}

/* Reads a request that must be cmd; returns its id. */
static long long
fake_expect(int fd, enum proto_cmd cmd, struct proto_request *req)
{
	struct proto_request	 local;
	long long		 id;

	if (req == NULL)
		req = &local;
	EXPECT(fake_read(fd, req) == 0);
	EXPECT(req->cmd == cmd);
	id = json_integer_value(req->id);
	proto_request_clear(req);
	return id;
}

static void
fake_write(int fd, const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;		/* the client may have given up */
		p += n;
		len -= (size_t)n;
	}
}

static void fake_say(int, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
fake_say(int fd, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	EXPECT(n >= 0);
	fake_write(fd, s, (size_t)n);
	free(s);
}

/* The client must send nothing more: the next read is EOF. */
static void
fake_expect_eof(int fd)
{
	struct proto_request	 req;

	EXPECT(fake_read(fd, &req) == -1);
}

static void
fake_serve(int lfd, script_fn script, int conns)
{
	int	 i, fd;

	signal(SIGPIPE, SIG_IGN);
	alarm(FAKE_LIFETIME_S);
	for (i = 0; i < conns; i++) {
		EXPECT((fd = accept(lfd, NULL, NULL)) != -1);
		script(fd, i);
		close(fd);
	}
	_exit(0);
}

/* Starts a fake daemon that serves conns connections with script. */
static void
fake_start(script_fn script, int conns)
{
	struct sockaddr_un	 sun;
	int			 lfd;

	snprintf(fake.dir, sizeof(fake.dir), "/tmp/poolc-check-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fake.dir));
	snprintf(fake.path, sizeof(fake.path), "%s/poold.sock", fake.dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fake.path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ne(lfd, -1);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	fake.pid = fork();
	ck_assert_int_ne(fake.pid, -1);
	if (fake.pid == 0)
		fake_serve(lfd, script, conns);
	close(lfd);
}

/* A directory without a daemon, for tests that need only a path. */
static void
fake_dir(void)
{
	snprintf(fake.dir, sizeof(fake.dir), "/tmp/poolc-check-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fake.dir));
	snprintf(fake.path, sizeof(fake.path), "%s/poold.sock", fake.dir);
	fake.pid = 0;
}

static void
fake_cleanup(void)
{
	char	 p[256];

	unlink(fake.path);
	snprintf(p, sizeof(p), "%s/out", fake.dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/err", fake.dir);
	unlink(p);
	rmdir(fake.dir);
}

/* Waits for the fake daemon to finish its script; fails if it did not. */
static void
fake_stop(void)
{
	int	 status = 0, waited;
	pid_t	 r = 0;

	for (waited = 0; fake.pid > 0 && waited < FAKE_STOP_WAIT_MS;
	    waited += 10) {
		if ((r = waitpid(fake.pid, &status, WNOHANG)) != 0)
			break;
		sleep_ms(10);
	}
	if (fake.pid > 0 && r == 0) {
		kill(fake.pid, SIGKILL);
		waitpid(fake.pid, &status, 0);
		fake_cleanup();
		ck_abort_msg("the fake poold did not finish its script");
	}
	fake_cleanup();
	if (fake.pid > 0) {
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "the fake poold saw something unexpected (status %d)",
		    status);
	}
}

static struct poolc *
connect_fake(int timeout_ms)
{
	struct poolc	*c = poolc_connect(fake.path, timeout_ms);

	ck_assert_ptr_nonnull(c);
	ck_assert_msg(poolc_error(c) == POOLC_OK, "connect: %s",
	    poolc_errstr(c));
	return c;
}

static void
assert_ok(struct poolc *c)
{
	ck_assert_int_eq(poolc_error(c), POOLC_OK);
	ck_assert_str_eq(poolc_errstr(c), "");
	ck_assert_str_eq(poolc_server_error(c), "");
	ck_assert_int_eq(poolc_errno(c), 0);
}

/* --- ACQUIRE --- */

static void
script_acquire(int fd, int conn)
{
	struct proto_request	 req;
	long long		 id;

	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_ACQUIRE);
	EXPECT(strcmp(req.model, "tiny-a") == 0);
	EXPECT(req.hold && req.timeout_ms == -1);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
	    "\"port\":18080,\"endpoint\":\"http://127.0.0.1:18080\","
	    "\"lease\":7,\"cold\":true,\"wait_ms\":310}\n", id);
	fake_expect_eof(fd);
}

START_TEST(acquire_ok)
{
	struct poolc_server	 s;
	struct poolc		*c;

	fake_start(script_acquire, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_acquire(c, "tiny-a", NULL, &s), 0);
	assert_ok(c);
	ck_assert_str_eq(s.model, "tiny-a");
	ck_assert_int_eq(s.port, 18080);
	ck_assert_str_eq(s.endpoint, "http://127.0.0.1:18080");
	ck_assert_int_eq(s.lease, 7);
	ck_assert(s.cold);
	ck_assert_int_eq(s.wait_ms, 310);
	poolc_free(c);
	fake_stop();
}
END_TEST

static void
script_acquire_no_lease(int fd, int conn)
{
	struct proto_request	 req;
	long long		 id;

	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_ACQUIRE && !req.hold);
	EXPECT(req.timeout_ms == 1500);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
	    "\"port\":18080,\"endpoint\":\"http://127.0.0.1:18080\","
	    "\"cold\":false,\"wait_ms\":0}\n", id);
	fake_expect_eof(fd);
}

START_TEST(acquire_no_lease)
{
	struct poolc_acquire_opts	 opts = { .timeout_ms = 1500,
					    .no_lease = true };
	struct poolc_server		 s;
	struct poolc			*c;

	fake_start(script_acquire_no_lease, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_acquire(c, "tiny-a", &opts, &s), 0);
	ck_assert_int_eq(s.lease, 0);
	ck_assert(!s.cold);
	poolc_free(c);
	fake_stop();
}
END_TEST

static void
script_acquire_incomplete(int fd, int conn)
{
	long long	 id = fake_expect(fd, PROTO_CMD_ACQUIRE, NULL);

	/* No port. */
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
	    "\"endpoint\":\"x\",\"cold\":false,\"wait_ms\":0}\n", id);
	fake_expect_eof(fd);
}

START_TEST(acquire_incomplete_reply)
{
	struct poolc_server	 s;
	struct poolc		*c;

	fake_start(script_acquire_incomplete, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_acquire(c, "tiny-a", NULL, &s), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_PROTOCOL);
	ck_assert_int_eq(s.port, 0);
	poolc_free(c);
	fake_stop();
}
END_TEST

/* --- errors from poold --- */

static void
script_server_error(int fd, int conn)
{
	long long	 id;

	id = fake_expect(fd, PROTO_CMD_ACQUIRE, NULL);
	fake_say(fd, "{\"ok\":false,\"id\":%lld,\"error\":\"busy\","
	    "\"message\":\"no room for tiny-b\"}\n", id);
	id = fake_expect(fd, PROTO_CMD_EVICT, NULL);
	/* A code this client does not know yet, and no message. */
	fake_say(fd, "{\"ok\":false,\"id\":%lld,\"error\":\"quota\"}\n", id);
	id = fake_expect(fd, PROTO_CMD_PING, NULL);
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"version\":\"0.1.0\"}\n", id);
	fake_expect_eof(fd);
}

START_TEST(server_error_not_sticky)
{
	struct poolc_server	 s;
	struct poolc		*c;
	char			 version[16];

	fake_start(script_server_error, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_acquire(c, "tiny-b", NULL, &s), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_SERVER);
	ck_assert_str_eq(poolc_server_error(c), "busy");
	ck_assert_str_eq(poolc_errstr(c), "busy: no room for tiny-b");
	ck_assert_int_eq(poolc_errno(c), 0);
	ck_assert_int_eq(s.port, 0);

	ck_assert_int_eq(poolc_evict(c, "tiny-b", false, NULL), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_SERVER);
	ck_assert_str_eq(poolc_server_error(c), "quota");
	ck_assert_str_eq(poolc_errstr(c), "quota");

	ck_assert_int_eq(poolc_ping(c, version, sizeof(version)), 0);
	assert_ok(c);
	ck_assert_str_eq(version, "0.1.0");
	poolc_free(c);
	fake_stop();
}
END_TEST

/* ACQUIRE and RELEASE read flat replies without jansson, and hand
 * anything else to it: the same results either way. */
static void
script_flat_replies(int fd, int conn)
{
	long long	 id;

	id = fake_expect(fd, PROTO_CMD_ACQUIRE, NULL);
	fake_say(fd, "{\"ok\":true,\"id\":%lld}\n"
	    "{\"ok\":false,\"id\":\"%lld\",\"error\":\"busy\"}\n"
	    "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\",\"port\":8080,"
	    "\"endpoint\":\"http://127.0.0.1:8080\",\"lease\":5,"
	    "\"cold\":false,\"wait_ms\":2}\n", id + 100, id, id);
	id = fake_expect(fd, PROTO_CMD_RELEASE, NULL);
	fake_say(fd, "{\"ok\":false,\"id\":%lld,\"error\":\"not_found\","
	    "\"message\":\"no lease 5\"}\n", id);
	id = fake_expect(fd, PROTO_CMD_RELEASE, NULL);
	fake_say(fd, "{\"ok\":false,\"id\":%lld,\"error\":\"quota\","
	    "\"message\":\"caf\\u00e9 \\\"x\\\"\"}\n", id);
	id = fake_expect(fd, PROTO_CMD_RELEASE, NULL);
	fake_say(fd, "{\"ok\":true,\"id\":%lld}\n", id);
	id = fake_expect(fd, PROTO_CMD_ACQUIRE, NULL);
	fake_say(fd, "{ \"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
	    "\"port\":9,\"endpoint\":\"http:\\/\\/127.0.0.1:9\","
	    "\"cold\":true,\"wait_ms\":0,\"extra\":[1]}\n", id);
	fake_expect(fd, PROTO_CMD_ACQUIRE, NULL);
	fake_say(fd, "{\"ok\":false,\"id\":null,\"error\":\"shutting_down\","
	    "\"message\":\"bye\"}\n");
}

START_TEST(flat_replies)
{
	struct poolc_server	 s;
	struct poolc		*c;

	fake_start(script_flat_replies, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_acquire(c, "tiny-a", NULL, &s), 0);
	assert_ok(c);
	ck_assert_str_eq(s.model, "tiny-a");
	ck_assert_int_eq(s.port, 8080);
	ck_assert_str_eq(s.endpoint, "http://127.0.0.1:8080");
	ck_assert_int_eq(s.lease, 5);
	ck_assert(!s.cold);
	ck_assert_int_eq(s.wait_ms, 2);

	ck_assert_int_eq(poolc_release(c, 5), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_SERVER);
	ck_assert_str_eq(poolc_server_error(c), "not_found");
	ck_assert_str_eq(poolc_errstr(c), "not_found: no lease 5");
	ck_assert_int_eq(poolc_release(c, 5), -1);
	ck_assert_str_eq(poolc_server_error(c), "quota");
	ck_assert_str_eq(poolc_errstr(c), "quota: caf\xc3\xa9 \"x\"");
	ck_assert_int_eq(poolc_release(c, 5), 0);
	assert_ok(c);

	ck_assert_int_eq(poolc_acquire(c, "tiny-a", NULL, &s), 0);
	ck_assert_int_eq(s.port, 9);
	ck_assert_str_eq(s.endpoint, "http://127.0.0.1:9");
	ck_assert_int_eq(s.lease, 0);
	ck_assert(s.cold);

	ck_assert_int_eq(poolc_acquire(c, "tiny-a", NULL, &s), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_IO);
	ck_assert_str_eq(poolc_errstr(c), "connection closed by poold: "
	    "shutting_down: bye");
	poolc_free(c);
	fake_stop();
}
END_TEST

/* --- replies out of order --- */

static void
script_other_ids(int fd, int conn)
{
	long long	 id;

	id = fake_expect(fd, PROTO_CMD_STATS, NULL);
	/* Replies to other requests, all in one write: another number, a
	 * string, none at all (an id-less error is remembered for a
	 * hang-up, which does not come here). */
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"x\":1}\n"
	    "{\"ok\":false,\"id\":\"%lld\",\"error\":\"busy\"}\n"
	    "{\"ok\":false,\"error\":\"internal\"}\n", id + 100, id);
	/* Empty lines are ignored, poold-protocol(7) says. */
	fake_say(fd, "\n\r\n");
	/* Then ours, cut in two. */
	fake_say(fd, "{\"ok\":true,\"id\":%lld,", id);
	sleep_ms(50);
	fake_say(fd, "\"mine\":true}\n");
	id = fake_expect(fd, PROTO_CMD_PING, NULL);
	/* A late reply to the STATS, then ours with CRLF. */
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"late\":true}\n"
	    "{\"ok\":true,\"id\":%lld,\"version\":\"9\"}\r\n", id - 1, id);
	fake_expect_eof(fd);
}

START_TEST(other_ids_ignored)
{
	struct poolc	*c;
	char		*json, version[8];

	fake_start(script_other_ids, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_stats(c, &json), 0);
	ck_assert_ptr_nonnull(strstr(json, "\"mine\":true}"));
	ck_assert_ptr_null(strchr(json, '\n'));
	free(json);
	ck_assert_int_eq(poolc_ping(c, version, sizeof(version)), 0);
	ck_assert_str_eq(version, "9");
	poolc_free(c);
	fake_stop();
}
END_TEST

/* --- sticky errors --- */

static void
script_garbage(int fd, int conn)
{
	long long	 id = fake_expect(fd, PROTO_CMD_PING, NULL);

	if (conn == 0) {
		fake_say(fd, "this is not json\n");
		/* The client must not send anything more on this one. */
		fake_expect_eof(fd);
		return;
	}
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"version\":\"0.1.0\"}\n", id);
	fake_expect_eof(fd);
}

START_TEST(garbage_is_sticky)
{
	struct poolc	*c;
	char		*json = (char *)"x";

	fake_start(script_garbage, 2);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_ping(c, NULL, 0), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_PROTOCOL);
	ck_assert_msg(strncmp(poolc_errstr(c), "bad reply from poold: ",
	    22) == 0, "errstr: %s", poolc_errstr(c));
	/* Sticky: fails at once, sends nothing. */
	ck_assert_int_eq(poolc_stats(c, &json), -1);
	ck_assert_ptr_null(json);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_PROTOCOL);
	ck_assert_int_eq(poolc_release(c, 1), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_PROTOCOL);

	ck_assert_int_eq(poolc_reconnect(c), 0);
	assert_ok(c);
	ck_assert_int_eq(poolc_ping(c, NULL, 0), 0);
	poolc_free(c);
	fake_stop();
}
END_TEST

static void
script_not_a_reply(int fd, int conn)
{
	long long	 id = fake_expect(fd, PROTO_CMD_PING, NULL);

	fake_say(fd, "{\"id\":%lld,\"version\":\"0.1.0\"}\n", id);
	fake_expect_eof(fd);
}

START_TEST(json_without_ok_is_protocol_error)
{
	struct poolc	*c;

	fake_start(script_not_a_reply, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_ping(c, NULL, 0), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_PROTOCOL);
	poolc_free(c);
	fake_stop();
}
END_TEST

static void
script_close(int fd, int conn)
{
	long long	 id = fake_expect(fd, PROTO_CMD_PING, NULL);

	if (conn == 0)
		return;			/* hang up without a word */
	if (conn == 1) {
		fake_say(fd, "{\"ok\":true,\"id\":%lld,", id);
		return;			/* hang up mid-line */
	}
	fake_say(fd, "{\"ok\":true,\"id\":%lld}\n", id);
	fake_expect_eof(fd);
}

START_TEST(close_is_sticky)
{
	struct poolc	*c;

	fake_start(script_close, 3);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_ping(c, NULL, 0), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_IO);
	ck_assert_int_eq(poolc_errno(c), 0);
	ck_assert_str_eq(poolc_errstr(c), "connection closed by poold");
	ck_assert_int_eq(poolc_ping(c, NULL, 0), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_IO);

	ck_assert_int_eq(poolc_reconnect(c), 0);
	ck_assert_int_eq(poolc_ping(c, NULL, 0), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_IO);

	ck_assert_int_eq(poolc_reconnect(c), 0);
	ck_assert_int_eq(poolc_ping(c, NULL, 0), 0);
	poolc_free(c);
	fake_stop();
}
END_TEST

static void
script_hang_up_at_once(int fd, int conn)
{
}

static void
script_forbidden(int fd, int conn)
{
	fake_say(fd, "{\"ok\":false,\"id\":null,\"error\":\"forbidden\","
	    "\"message\":\"uid 1000 may not connect\"}\n");
	if (conn == 1)
		fake_expect(fd, PROTO_CMD_PING, NULL);
}

/* poold's last words before it hangs up reach the caller, whether the
 * request was written before the hang-up or not. */
START_TEST(farewell_is_reported)
{
	struct poolc	*c;
	int		 i;

	fake_start(script_forbidden, 2);
	c = connect_fake(TIMEOUT_MS);
	for (i = 0; i < 2; i++) {
		if (i == 0)
			sleep_ms(100);	/* closed before the request */
		else
			ck_assert_int_eq(poolc_reconnect(c), 0);
		ck_assert_int_eq(poolc_ping(c, NULL, 0), -1);
		ck_assert_int_eq(poolc_error(c), POOLC_ERR_IO);
		ck_assert_str_eq(poolc_errstr(c), "connection closed by poold: "
		    "forbidden: uid 1000 may not connect");
	}
	poolc_free(c);
	fake_stop();
}
END_TEST

/* Writing to a closed socket must be EPIPE, not a SIGPIPE that kills
 * the test. */
START_TEST(no_sigpipe)
{
	struct poolc	*c;

	fake_start(script_hang_up_at_once, 1);
	c = connect_fake(TIMEOUT_MS);
	fake_stop();
	ck_assert_int_eq(poolc_ping(c, NULL, 0), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_IO);
	ck_assert_msg(poolc_errno(c) == EPIPE || poolc_errno(c) ==
	    ECONNRESET || poolc_errno(c) == 0, "errno %d", poolc_errno(c));
	poolc_free(c);
}
END_TEST

/* --- timeouts --- */

static void
script_silent(int fd, int conn)
{
	fake_expect(fd, PROTO_CMD_PING, NULL);
	fake_expect_eof(fd);
}

START_TEST(timeout_is_sticky)
{
	struct poolc	*c;
	int64_t		 t0, dt;

	fake_start(script_silent, 1);
	c = connect_fake(200);
	t0 = tl_now_ms();
	ck_assert_int_eq(poolc_ping(c, NULL, 0), -1);
	dt = tl_now_ms() - t0;
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_TIMEOUT);
	ck_assert_int_eq(poolc_errno(c), ETIMEDOUT);
	ck_assert_str_eq(poolc_errstr(c), "no reply from poold within 200 ms");
	ck_assert_msg(dt >= 190 && dt < 1500, "waited %" PRId64 " ms", dt);
	t0 = tl_now_ms();
	ck_assert_int_eq(poolc_ping(c, NULL, 0), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_TIMEOUT);
	ck_assert_int_lt(tl_now_ms() - t0, 50);
	poolc_free(c);
	fake_stop();
}
END_TEST

static void
script_slow_acquire(int fd, int conn)
{
	long long	 id;

	id = fake_expect(fd, PROTO_CMD_ACQUIRE, NULL);
	sleep_ms(300);
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
	    "\"port\":18080,\"endpoint\":\"http://127.0.0.1:18080\","
	    "\"lease\":1,\"cold\":true,\"wait_ms\":300}\n", id);
	id = fake_expect(fd, PROTO_CMD_ACQUIRE, NULL);
	sleep_ms(300);
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
	    "\"port\":18080,\"endpoint\":\"http://127.0.0.1:18080\","
	    "\"lease\":2,\"cold\":false,\"wait_ms\":300}\n", id);
	fake_expect_eof(fd);
}

/* A cold start outlasts the connection's timeout: ACQUIRE waits for its
 * own timeout plus that, or without limit when it has none. */
START_TEST(acquire_outwaits_connection_timeout)
{
	struct poolc_acquire_opts	 opts = { .timeout_ms = 2000 };
	struct poolc_server		 s;
	struct poolc			*c;

	fake_start(script_slow_acquire, 1);
	c = connect_fake(100);
	ck_assert_int_eq(poolc_acquire(c, "tiny-a", &opts, &s), 0);
	ck_assert_int_eq(s.lease, 1);
	ck_assert_int_eq(poolc_acquire(c, "tiny-a", NULL, &s), 0);
	ck_assert_int_eq(s.lease, 2);
	poolc_free(c);
	fake_stop();
}
END_TEST

/* --- connecting --- */

START_TEST(connect_missing_path)
{
	struct poolc	*c;
	char		 want[256];

	fake_dir();
	c = poolc_connect(fake.path, TIMEOUT_MS);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_IO);
	ck_assert_int_eq(poolc_errno(c), ENOENT);
	snprintf(want, sizeof(want), "cannot connect to %s: %s", fake.path,
	    strerror(ENOENT));
	ck_assert_str_eq(poolc_errstr(c), want);
	ck_assert_str_eq(poolc_path(c), fake.path);
	/* Sticky, and reconnect tries again. */
	ck_assert_int_eq(poolc_ping(c, NULL, 0), -1);
	ck_assert_int_eq(poolc_errno(c), ENOENT);
	ck_assert_int_eq(poolc_reconnect(c), -1);
	ck_assert_int_eq(poolc_errno(c), ENOENT);
	poolc_free(c);
	fake_cleanup();
}
END_TEST

START_TEST(connect_refused)
{
	struct sockaddr_un	 sun;
	struct poolc		*c;
	int			 fd;

	fake_dir();
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fake.path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);			/* a stale socket file */
	c = poolc_connect(fake.path, TIMEOUT_MS);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_IO);
	ck_assert_int_eq(poolc_errno(c), ECONNREFUSED);
	poolc_free(c);
	fake_cleanup();
}
END_TEST

START_TEST(connect_path_too_long)
{
	struct poolc	*c;
	char		 path[300];

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	c = poolc_connect(path, TIMEOUT_MS);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_IO);
	ck_assert_int_eq(poolc_errno(c), ENAMETOOLONG);
	poolc_free(c);
}
END_TEST

static void
script_ping(int fd, int conn)
{
	long long	 id = fake_expect(fd, PROTO_CMD_PING, NULL);

	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"version\":\"0.1.0\"}\n", id);
	fake_expect_eof(fd);
}

START_TEST(connect_default_path)
{
	struct poolc	*c;

	fake_start(script_ping, 1);
	setenv("POOLD_SOCKET", fake.path, 1);
	c = poolc_connect(NULL, TIMEOUT_MS);
	ck_assert_int_eq(poolc_error(c), POOLC_OK);
	ck_assert_str_eq(poolc_path(c), fake.path);
	ck_assert_int_eq(poolc_ping(c, NULL, 0), 0);
	poolc_free(c);
	unsetenv("POOLD_SOCKET");
	fake_stop();
}
END_TEST

/* The socket must not leak into a child that execs. */
START_TEST(socket_is_cloexec)
{
	struct poolc	*c;
	int		 fd, flags;

	fake_start(script_ping, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_ping(c, NULL, 0), 0);
	/* The socket is the newest descriptor: find it by probing. */
	for (fd = 3; fd < 64; fd++) {
		struct sockaddr_un	 sun;
		socklen_t		 sl = sizeof(sun);

		if (getpeername(fd, (struct sockaddr *)&sun, &sl) == 0 &&
		    sun.sun_family == AF_UNIX &&
		    strcmp(sun.sun_path, fake.path) == 0)
			break;
	}
	ck_assert_int_lt(fd, 64);
	flags = fcntl(fd, F_GETFD);
	ck_assert(flags & FD_CLOEXEC);
	poolc_free(c);
	fake_stop();
}
END_TEST

/* --- size limits --- */

static void
script_long_line(int fd, int conn)
{
	long long	 id = fake_expect(fd, PROTO_CMD_STATS, NULL);
	size_t		 n = POOLC_REPLY_MAX_BYTES + 16;
	char		*pad = malloc(n + 1);

	EXPECT(pad != NULL);
	memset(pad, 'x', n);
	pad[n] = '\0';
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"pad\":\"%s\"}\n", id, pad);
	free(pad);
	fake_expect_eof(fd);
}

START_TEST(reply_over_limit)
{
	struct poolc	*c;
	char		*json;

	fake_start(script_long_line, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_stats(c, &json), -1);
	ck_assert_ptr_null(json);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_PROTOCOL);
	ck_assert_int_eq(poolc_errno(c), EMSGSIZE);
	poolc_free(c);
	fake_stop();
}
END_TEST

static void
script_big_line(int fd, int conn)
{
	long long	 id = fake_expect(fd, PROTO_CMD_MODELS, NULL);
	size_t		 n = 1024 * 1024;
	char		*pad = malloc(n + 1);

	EXPECT(pad != NULL);
	memset(pad, 'y', n);
	pad[n] = '\0';
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"pad\":\"%s\"}\n", id, pad);
	free(pad);
	fake_expect_eof(fd);
}

/* Replies are not held to the request limit: a big catalog must pass. */
START_TEST(big_reply_under_limit)
{
	struct poolc	*c;
	char		*json;

	fake_start(script_big_line, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_models(c, &json), 0);
	ck_assert_uint_gt(strlen(json), 1024 * 1024);
	ck_assert_uint_lt(strlen(json), 1024 * 1024 + 64);
	free(json);
	poolc_free(c);
	fake_stop();
}
END_TEST

/* --- the other commands --- */

static void
script_commands(int fd, int conn)
{
	struct proto_request	 req;
	long long		 id;

	id = fake_expect(fd, PROTO_CMD_STATS, NULL);
	fake_say(fd, "{\"ok\":true,\"id\":%lld," STATS_BODY "}\n", id);
	id = fake_expect(fd, PROTO_CMD_MODELS, NULL);
	fake_say(fd, "{\"ok\":true,\"id\":%lld," MODELS_BODY "}\n", id);

	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_RELEASE && req.lease == 42);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":true,\"id\":%lld}\n", id);

	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_EVICT && req.force);
	EXPECT(strcmp(req.model, "tiny-a") == 0);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
	    "\"freed\":50331648}\n", id);

	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_EVICT && !req.force);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
	    "\"freed\":0}\n", id);
	fake_expect_eof(fd);
}

START_TEST(stats_models_release_evict)
{
	struct poolc	*c;
	char		*json, want[2048];
	int64_t		 freed = -1;

	fake_start(script_commands, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_stats(c, &json), 0);
	/* The reply's text exactly, without the newline. */
	snprintf(want, sizeof(want), "{\"ok\":true,\"id\":1," STATS_BODY "}");
	ck_assert_str_eq(json, want);
	free(json);
	ck_assert_int_eq(poolc_models(c, &json), 0);
	ck_assert_ptr_nonnull(strstr(json, "\"models_dir\":\"/srv/models\""));
	free(json);
	ck_assert_int_eq(poolc_release(c, 42), 0);
	ck_assert_int_eq(poolc_evict(c, "tiny-a", true, &freed), 0);
	ck_assert_int_eq(freed, 50331648);
	ck_assert_int_eq(poolc_evict(c, "tiny-a", false, NULL), 0);
	assert_ok(c);
	poolc_free(c);
	fake_stop();
}
END_TEST

START_TEST(bad_arguments_send_nothing)
{
	struct poolc_server	 s;
	struct poolc		*c;
	char			 longname[POOLC_MODEL_MAX + 2];

	fake_start(script_ping, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_acquire(c, "../etc/passwd", NULL, &s), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_ARG);
	ck_assert_int_eq(poolc_errno(c), EINVAL);
	ck_assert_int_eq(poolc_acquire(c, NULL, NULL, &s), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_ARG);
	memset(longname, 'm', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(poolc_evict(c, longname, false, NULL), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_ARG);
	ck_assert_int_eq(poolc_release(c, 0), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_ARG);
	ck_assert_int_eq(poolc_stats(c, NULL), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_ARG);
	/* Not sticky: the connection still works, and the fake saw only
	 * this PING. */
	ck_assert_int_eq(poolc_ping(c, NULL, 0), 0);
	assert_ok(c);
	poolc_free(c);
	fake_stop();
}
END_TEST

START_TEST(free_null)
{
	poolc_free(NULL);
}
END_TEST

/* --- poolc(1) --- */

struct run {
	int	 status;	/* exit status, or 128 + signal */
	char	 out[8192];
	char	 err[2048];
};

static void
slurp(const char *path, char *buf, size_t len)
{
	FILE	*f = fopen(path, "r");
	size_t	 n = 0;

	if (f != NULL) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

/* Runs poolc with argv (NULL-terminated, without argv[0]). */
static void
run_poolc(struct run *r, const char *const *args)
{
	const char	*bin = getenv("POOLC_BIN");
	char		*argv[32], out[256], err[256];
	pid_t		 pid;
	int		 i, status;

	snprintf(out, sizeof(out), "%s/out", fake.dir);
	snprintf(err, sizeof(err), "%s/err", fake.dir);
	argv[0] = (char *)"poolc";
	for (i = 0; args[i] != NULL && i < 30; i++)
		argv[i + 1] = (char *)args[i];
	argv[i + 1] = NULL;
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		int	 o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int	 e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (o == -1 || e == -1 || dup2(o, 1) == -1 ||
		    dup2(e, 2) == -1)
			_exit(99);
		execv(bin, argv);
		_exit(98);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) :
	    128 + WTERMSIG(status);
	slurp(out, r->out, sizeof(r->out));
	slurp(err, r->err, sizeof(r->err));
}

#define NEED_POOLC() do {						\
	if (getenv("POOLC_BIN") == NULL) {				\
		fprintf(stderr, "%s: skipped, POOLC_BIN not set\n",	\
		    __func__);						\
		return;							\
	}								\
} while (0)

static void
script_cli_stats(int fd, int conn)
{
	long long	 id = fake_expect(fd, PROTO_CMD_STATS, NULL);

	fake_say(fd, "{\"ok\":true,\"id\":%lld," STATS_BODY "}\n", id);
	fake_expect_eof(fd);
}

/* The servers' estimates, sources and RSS; failing models below. */
START_TEST(cli_stats_table)
{
	struct run	 r;
	const char	*line;
	size_t		 len;

	NEED_POOLC();
	fake_start(script_cli_stats, 2);
	run_poolc(&r, (const char *[]){ "-s", fake.path, "stats", NULL });
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
	ck_assert_str_eq(r.err, "");
	ck_assert_str_eq(r.out,
	    "total 24.0G  reserved 0B  budget 256.0M  accounted 96.0M  "
	    "free 160.0M\n"
	    "measured 77.0M  system available 12.0G  servers 2/5\n"
	    "MODEL              STATE      PORT   PID  LEASES   IDLE    EST"
	    "  SRC        RSS    MEM  UPTIME\n"
	    "tiny-a             ready     18080  4242       1     0s  32.0M"
	    "  learned  48.0M  48.0M      4s\n"
	    "qwen2.5-coder-32b  starting  18081  4250       0  3m12s  18.0G"
	    "  gguf         -  18.0G   2h03m\n"
	    "failed mistral-7b: 5 failed starts in a row: 'mistral-7b' "
	    "failed to start: exit status 1\n"
	    "backoff llama-70b: 1 failed start in a row: 'llama-70b' failed "
	    "to start: exit status 1; gguf_init...\n");
	/* Every line fits 100 columns; the long error was cut to fit. */
	for (line = r.out; *line != '\0'; line += len + 1) {
		len = strcspn(line, "\n");
		ck_assert_msg(len <= 100, "line of %zu columns: %.*s", len,
		    (int)len, line);
	}
	run_poolc(&r, (const char *[]){ "-s", fake.path, "ps", "--json",
	    NULL });
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "{\"ok\":true,\"id\":1," STATS_BODY "}\n");
	fake_stop();
}
END_TEST

static void
script_cli_old_stats(int fd, int conn)
{
	long long	 id = fake_expect(fd, conn == 2 ? PROTO_CMD_MODELS :
			    PROTO_CMD_STATS, NULL);

	if (conn == 2)
		fake_say(fd, "{\"ok\":true,\"id\":%lld," OLD_MODELS_BODY "}\n",
		    id);
	else
		fake_say(fd, "{\"ok\":true,\"id\":%lld," OLD_STATS_BODY "}\n",
		    id);
	fake_expect_eof(fd);
}

/* A poold from before measured memory: what it does not say is "-". */
START_TEST(cli_old_replies)
{
	struct run	 r;

	NEED_POOLC();
	fake_start(script_cli_old_stats, 3);
	run_poolc(&r, (const char *[]){ "-s", fake.path, "stats", NULL });
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
	ck_assert_str_eq(r.err, "");
	ck_assert_str_eq(r.out,
	    "total 24.0G  reserved 0B  budget 256.0M  accounted 96.0M  "
	    "free 160.0M\n"
	    "measured -  system available -  servers 2/5  waiting 1\n"
	    "MODEL              STATE      PORT   PID  LEASES   IDLE  EST"
	    "  SRC  RSS    MEM  UPTIME\n"
	    "tiny-a             ready     18080  4242       1     0s    -"
	    "  -      -  48.0M      4s\n"
	    "qwen2.5-coder-32b  starting  18081  4250       0  3m12s    -"
	    "  -      -  18.0G   2h03m\n");
	run_poolc(&r, (const char *[]){ "-s", fake.path, "budget", NULL });
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
	ck_assert_str_eq(r.out,
	    "total             24.0G\n"
	    "reserved          0B\n"
	    "budget            256.0M\n"
	    "accounted         96.0M\n"
	    "measured          -\n"
	    "free              160.0M\n"
	    "system available  -\n"
	    "servers           2/5\n");
	run_poolc(&r, (const char *[]){ "-s", fake.path, "models", NULL });
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
	ck_assert_str_eq(r.out,
	    "MODEL   STATE     PORT  MEMORY  SOURCE  PATH\n"
	    "tiny-a  ready    18080   48.0M  -       /srv/models/tiny-a.gguf\n"
	    "big     stopped      -   18.0G  -       /srv/models/big.gguf\n");
	fake_stop();
}
END_TEST

static void
script_cli_models(int fd, int conn)
{
	long long	 id = fake_expect(fd, conn == 0 ? PROTO_CMD_MODELS :
			    PROTO_CMD_STATS, NULL);

	if (conn == 0)
		fake_say(fd, "{\"ok\":true,\"id\":%lld," MODELS_BODY "}\n", id);
	else
		fake_say(fd, "{\"ok\":true,\"id\":%lld," STATS_BODY "}\n", id);
	fake_expect_eof(fd);
}

START_TEST(cli_models_budget)
{
	struct run	 r;

	NEED_POOLC();
	fake_start(script_cli_models, 2);
	run_poolc(&r, (const char *[]){ "-s", fake.path, "models", NULL });
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
	ck_assert_str_eq(r.out,
	    "MODEL   STATE     PORT  MEMORY  SOURCE   PATH\n"
	    "tiny-a  ready    18080   48.0M  learned  /srv/models/tiny-a.gguf\n"
	    "big     stopped      -   18.0G  gguf     /srv/models/big.gguf\n"
	    "broken  failed       -    6.0G  default  "
	    "/srv/models/broken.gguf\n");
	run_poolc(&r, (const char *[]){ "-s", fake.path, "budget", NULL });
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
	ck_assert_str_eq(r.out,
	    "total             24.0G\n"
	    "reserved          0B\n"
	    "budget            256.0M\n"
	    "accounted         96.0M\n"
	    "measured          77.0M\n"
	    "free              160.0M\n"
	    "system available  12.0G\n"
	    "servers           2/5\n");
	fake_stop();
}
END_TEST

static void
script_cli_acquire(int fd, int conn)
{
	struct proto_request	 req;
	long long		 id;

	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_ACQUIRE && !req.hold);
	EXPECT(req.timeout_ms == (conn == 0 ? -1 : 2500));
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	if (conn == 0)
		fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
		    "\"port\":18080,\"endpoint\":\"http://127.0.0.1:18080\","
		    "\"cold\":false,\"wait_ms\":0}\n", id);
	else
		fake_say(fd, "{\"ok\":false,\"id\":%lld,\"error\":\"busy\","
		    "\"message\":\"no room for tiny-a (48.0M)\"}\n", id);
	fake_expect_eof(fd);
}

START_TEST(cli_acquire_and_errors)
{
	struct run	 r;
	char		 want[512];

	NEED_POOLC();
	fake_start(script_cli_acquire, 2);
	run_poolc(&r, (const char *[]){ "-s", fake.path, "acquire", "tiny-a",
	    NULL });
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
	ck_assert_str_eq(r.out, "http://127.0.0.1:18080\n");
	run_poolc(&r, (const char *[]){ "-s", fake.path, "-t", "2.5",
	    "acquire", "tiny-a", NULL });
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, "poolc: busy: no room for tiny-a (48.0M)\n");
	fake_stop();

	/* The fake is gone: cannot connect. */
	fake_dir();
	run_poolc(&r, (const char *[]){ "-s", fake.path, "ping", NULL });
	ck_assert_int_eq(r.status, 3);
	snprintf(want, sizeof(want), "poolc: cannot connect to %s: %s "
	    "(is poold running?)\n", fake.path, strerror(ENOENT));
	ck_assert_str_eq(r.err, want);

	run_poolc(&r, (const char *[]){ "evict", NULL });
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.err, "poolc: evict: a model is needed\n"
	    "usage: poolc [-hV] [-s socket] [-t timeout] command "
	    "[argument ...]\n");
	run_poolc(&r, (const char *[]){ "frobnicate", NULL });
	ck_assert_int_eq(r.status, 2);
	run_poolc(&r, (const char *[]){ "-h", NULL });
	ck_assert_int_eq(r.status, 0);
	ck_assert(strncmp(r.out, "usage: poolc [-hV]", 18) == 0);
	run_poolc(&r, (const char *[]){ "--version", NULL });
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "poolc " POOLC_VERSION "\n");
	fake_cleanup();
}
END_TEST

/* ACQUIRE with a lease, then the RELEASE of that lease after CMD. */
static void
script_cli_run(int fd, int conn)
{
	struct proto_request	 req;
	long long		 id;

	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_ACQUIRE && req.hold);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
	    "\"port\":18080,\"endpoint\":\"http://127.0.0.1:18080\","
	    "\"lease\":9,\"cold\":false,\"wait_ms\":0}\n", id);
	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_RELEASE && req.lease == 9);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":true,\"id\":%lld}\n", id);
	fake_expect_eof(fd);
}

START_TEST(cli_run)
{
	struct run	 r;

	NEED_POOLC();
	fake_start(script_cli_run, 3);
	run_poolc(&r, (const char *[]){ "-s", fake.path, "run", "tiny-a",
	    "--", "sh", "-c",
	    "echo \"$POOLD_ENDPOINT $POOLD_PORT $POOLD_MODEL\"; exit 7",
	    NULL });
	ck_assert_str_eq(r.err, "");
	ck_assert_str_eq(r.out, "http://127.0.0.1:18080 18080 tiny-a\n");
	ck_assert_int_eq(r.status, 7);

	run_poolc(&r, (const char *[]){ "-s", fake.path, "run", "tiny-a",
	    "sh", "-c", "kill -TERM $$", NULL });
	ck_assert_int_eq(r.status, 128 + SIGTERM);

	run_poolc(&r, (const char *[]){ "-s", fake.path, "run", "tiny-a",
	    "--", "/nonexistent/command", NULL });
	ck_assert_int_eq(r.status, 127);
	ck_assert_ptr_nonnull(strstr(r.err, "/nonexistent/command"));
	fake_stop();
}
END_TEST

static void
script_cli_evict_ping(int fd, int conn)
{
	struct proto_request	 req;
	long long		 id;

	EXPECT(fake_read(fd, &req) == 0);
	id = json_integer_value(req.id);
	if (conn == 0) {
		EXPECT(req.cmd == PROTO_CMD_EVICT && req.force);
		fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
		    "\"freed\":50331648}\n", id);
	} else if (conn == 1) {
		EXPECT(req.cmd == PROTO_CMD_EVICT && !req.force);
		fake_say(fd, "{\"ok\":false,\"id\":%lld,\"error\":"
		    "\"not_found\",\"message\":\"tiny-a is not running\"}\n",
		    id);
	} else {
		EXPECT(req.cmd == PROTO_CMD_PING);
		fake_say(fd, "{\"ok\":true,\"id\":%lld,\"version\":"
		    "\"0.1.0\"}\n", id);
	}
	proto_request_clear(&req);
	fake_expect_eof(fd);
}

START_TEST(cli_evict_ping)
{
	struct run	 r;
	char		 want[256];

	NEED_POOLC();
	fake_start(script_cli_evict_ping, 3);
	run_poolc(&r, (const char *[]){ "-s", fake.path, "evict", "tiny-a",
	    "--force", NULL });
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
	ck_assert_str_eq(r.out, "evicted tiny-a, freed 48.0M\n");
	run_poolc(&r, (const char *[]){ "-s", fake.path, "evict", "tiny-a",
	    NULL });
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.err, "poolc: not_found: tiny-a is not running\n");
	setenv("POOLD_SOCKET", fake.path, 1);
	run_poolc(&r, (const char *[]){ "ping", NULL });
	unsetenv("POOLD_SOCKET");
	ck_assert_int_eq(r.status, 0);
	snprintf(want, sizeof(want), "poold 0.1.0 at %s\n", fake.path);
	ck_assert_str_eq(r.out, want);
	fake_stop();
}
END_TEST

/* --- lost leases --- */

#define LOST_MESSAGE	"lease 9007199254740991 is lost: the server of " \
	"'tiny-a' on port 18080 is gone (killed by signal 9)"

static void
script_lost_lease(int fd, int conn)
{
	struct proto_request	 req;
	long long		 id;

	/* LEASE of a live lease; ids up to 2^53 - 1 travel exactly. */
	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_LEASE && req.lease == PROTO_LEASE_MAX);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"lease\":9007199254740991,"
	    "\"model\":\"tiny-a\",\"port\":18080,\"endpoint\":"
	    "\"http://127.0.0.1:18080\",\"state\":\"ready\"}\n", id);
	/* LEASE and RELEASE of it once its server is gone. */
	id = fake_expect(fd, PROTO_CMD_LEASE, NULL);
	fake_say(fd, "{\"ok\":false,\"id\":%lld,\"error\":\"lease_lost\","
	    "\"message\":\"" LOST_MESSAGE "; RELEASE it to free the port\"}\n",
	    id);
	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_RELEASE && req.lease == PROTO_LEASE_MAX);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":false,\"id\":%lld,\"error\":\"lease_lost\","
	    "\"message\":\"" LOST_MESSAGE "; the lease has ended\"}\n", id);
	/* Then it is gone: an ordinary server error. */
	id = fake_expect(fd, PROTO_CMD_RELEASE, NULL);
	fake_say(fd, "{\"ok\":false,\"id\":%lld,\"error\":\"not_found\","
	    "\"message\":\"no lease\"}\n", id);
	fake_expect_eof(fd);
}

/*
 * A lost lease is POOLC_ERR_LEASE_LOST, not POOLC_ERR_SERVER: a caller
 * tells it from a refusal without reading strings; errstr carries the
 * cause; it is not sticky.
 */
START_TEST(lease_lost_is_its_own_error)
{
	struct poolc_server	 s;
	struct poolc		*c;

	fake_start(script_lost_lease, 1);
	c = connect_fake(TIMEOUT_MS);
	ck_assert_int_eq(poolc_lease(c, PROTO_LEASE_MAX, &s), 0);
	ck_assert(s.lease == PROTO_LEASE_MAX);
	ck_assert_str_eq(s.model, "tiny-a");
	ck_assert_int_eq(s.port, 18080);
	ck_assert_str_eq(s.endpoint, "http://127.0.0.1:18080");
	assert_ok(c);

	ck_assert_int_eq(poolc_lease(c, PROTO_LEASE_MAX, &s), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_LEASE_LOST);
	ck_assert_str_eq(poolc_server_error(c), "lease_lost");
	ck_assert_ptr_nonnull(strstr(poolc_errstr(c), "killed by signal 9"));
	ck_assert_int_eq(s.port, 0);

	ck_assert_int_eq(poolc_release(c, PROTO_LEASE_MAX), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_LEASE_LOST);
	ck_assert_ptr_nonnull(strstr(poolc_errstr(c), "has ended"));

	ck_assert_int_eq(poolc_release(c, PROTO_LEASE_MAX), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_SERVER);
	ck_assert_str_eq(poolc_server_error(c), "not_found");
	ck_assert_int_eq(poolc_lease(c, 0, NULL), -1);
	ck_assert_int_eq(poolc_error(c), POOLC_ERR_ARG);
	poolc_free(c);
	fake_stop();
}
END_TEST

static void
script_cli_run_lost(int fd, int conn)
{
	struct proto_request	 req;
	long long		 id;

	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_ACQUIRE && req.hold);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":true,\"id\":%lld,\"model\":\"tiny-a\","
	    "\"port\":18080,\"endpoint\":\"http://127.0.0.1:18080\","
	    "\"lease\":9007199254740991,\"cold\":false,\"wait_ms\":0}\n", id);
	EXPECT(fake_read(fd, &req) == 0);
	EXPECT(req.cmd == PROTO_CMD_RELEASE && req.lease == PROTO_LEASE_MAX);
	id = json_integer_value(req.id);
	proto_request_clear(&req);
	fake_say(fd, "{\"ok\":false,\"id\":%lld,\"error\":\"lease_lost\","
	    "\"message\":\"" LOST_MESSAGE "; the lease has ended\"}\n", id);
	fake_expect_eof(fd);
}

/* run: a command that "succeeded" while its server died exits 1, and the
 * cause is printed; a failing command keeps its own status. */
START_TEST(cli_run_lease_lost)
{
	struct run	 r;

	NEED_POOLC();
	fake_start(script_cli_run_lost, 2);
	run_poolc(&r, (const char *[]){ "-s", fake.path, "run", "tiny-a",
	    "--", "true", NULL });
	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "lease_lost"));
	ck_assert_ptr_nonnull(strstr(r.err, "killed by signal 9"));
	run_poolc(&r, (const char *[]){ "-s", fake.path, "run", "tiny-a",
	    "--", "sh", "-c", "exit 5", NULL });
	ck_assert_int_eq(r.status, 5);
	ck_assert_ptr_nonnull(strstr(r.err, "lease_lost"));
	fake_stop();
}
END_TEST

static Suite *
client_suite(void)
{
	Suite	*s = suite_create("client");
	TCase	*lib = tcase_create("libpoolc");
	TCase	*cli = tcase_create("poolc");

	tcase_add_test(lib, acquire_ok);
	tcase_add_test(lib, acquire_no_lease);
	tcase_add_test(lib, acquire_incomplete_reply);
	tcase_add_test(lib, server_error_not_sticky);
	tcase_add_test(lib, flat_replies);
	tcase_add_test(lib, other_ids_ignored);
	tcase_add_test(lib, garbage_is_sticky);
	tcase_add_test(lib, json_without_ok_is_protocol_error);
	tcase_add_test(lib, close_is_sticky);
	tcase_add_test(lib, no_sigpipe);
	tcase_add_test(lib, farewell_is_reported);
	tcase_add_test(lib, timeout_is_sticky);
	tcase_add_test(lib, acquire_outwaits_connection_timeout);
	tcase_add_test(lib, connect_missing_path);
	tcase_add_test(lib, connect_refused);
	tcase_add_test(lib, connect_path_too_long);
	tcase_add_test(lib, connect_default_path);
	tcase_add_test(lib, socket_is_cloexec);
	tcase_add_test(lib, reply_over_limit);
	tcase_add_test(lib, big_reply_under_limit);
	tcase_add_test(lib, stats_models_release_evict);
	tcase_add_test(lib, bad_arguments_send_nothing);
	tcase_add_test(lib, free_null);
	tcase_add_test(lib, lease_lost_is_its_own_error);
	suite_add_tcase(s, lib);

	tcase_add_test(cli, cli_stats_table);
	tcase_add_test(cli, cli_old_replies);
	tcase_add_test(cli, cli_models_budget);
	tcase_add_test(cli, cli_acquire_and_errors);
	tcase_add_test(cli, cli_run);
	tcase_add_test(cli, cli_evict_ping);
	tcase_add_test(cli, cli_run_lease_lost);
	suite_add_tcase(s, cli);
	return s;
}

int
main(void)
{
	return tl_run(client_suite(), CK_NORMAL);
}
