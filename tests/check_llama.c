/*
 * check_llama.c — the real poold driving the REAL llama.cpp llama-server.
 *
 * The server is $LLAMA_SERVER, else `llama-server` on PATH; the models are
 * written by make-tiny-gguf ($MAKE_TINY_GGUF, else beside llama-server,
 * else on PATH): llama-architecture GGUF files with random weights of
 * 0.5, 20, 100 and 300 MB, made once per run into a temporary folder and
 * symlinked into each test's models folder.  tests/llama-setup.sh
 * installs both (see ../shared/tools/README.md).
 *
 * Without llama-server this suite prints one line and passes, on a user's
 * machine; with CI set in the environment, that is a failure.
 *
 * Every test starts its own poold (testlib.c) with the command
 *   LLAMA_SERVER -m {path} --host 127.0.0.1 --port {port}
 *                -c 512 -np 1 -t 1
 * and ends with tl_daemon_finish(): no zombie, SIGTERM makes poold exit 0
 * within stop_timeout + 2 s, no server it started is left.  What was
 * measured (load times, RSS, stop times) is printed to stdout in lines
 * that start with "check_llama:".
 *
 * Environment: POOLD_BIN (make check sets it), LLAMA_SERVER,
 * MAKE_TINY_GGUF, CI.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "testlib.h"

#define MIB		(1024LL * 1024)

static char	 llama_bin[PATH_MAX];	/* llama-server */
static char	 tiny_bin[PATH_MAX];	/* make-tiny-gguf */
static char	 models_src[PATH_MAX];	/* the generated models */

/*
 * The test models.  Their memory is not declared in the config: poold
 * estimates it from each GGUF header (-c 512 -np 1 here: about 28.8,
 * 57.0, 149.4 and 357.8 MiB against a measured 25.8, 50.5, 138.1 and
 * 341.7 MiB after load and a short completion), then learns each one's
 * measured peak for its next start.
 */
struct model {
	const char	*name;
	const char	*size_mb;	/* make-tiny-gguf's SIZE_MB */
	long long	 file_size;	/* filled in by make_models() */
};

static struct model models[] = {
	{ "tiny", "1",   0 },
	{ "s20",  "20",  0 },
	{ "m100", "100", 0 },
	{ "l300", "300", 0 },
};
#define NMODELS	(sizeof(models) / sizeof(models[0]))

/* --- helpers: files, config --------------------------------------- */

static struct model *
model_get(const char *name)
{
	size_t i;

	for (i = 0; i < NMODELS; i++)
		if (strcmp(models[i].name, name) == 0)
			return &models[i];
	return NULL;
}

/* Puts the generated model name into the test's models folder. */
static void
link_model(struct tl_daemon *d, const char *name)
{
	char src[PATH_MAX + 64], dst[TL_PATH_MAX + 64];

	snprintf(src, sizeof(src), "%s/%s.gguf", models_src, name);
	snprintf(dst, sizeof(dst), "%s/%s.gguf", d->models_dir, name);
	TL_ASSERT(symlink(src, dst) == 0, "symlink %s %s: %s", src, dst,
	    strerror(errno));
}

/*
 * Starts poold with the real llama-server as its command, its memory
 * estimated (GGUF, then learned) and sampled every 200 ms, and the keys
 * of extra (a JSON object text, may be NULL) on top.
 */
static void
start_real(struct tl_daemon *d, const char *extra)
{
	json_t *over, *x;
	json_error_t jerr;
	const char *key;
	json_t *val;
	char *text;

	over = json_pack("{s:[s,s,s,s,s,s,s,s,s,s,s,s,s], s:s, s:s, s:s,"
	    " s:s, s:i, s:s}",
	    "command", llama_bin, "-m", "{path}", "--host", "127.0.0.1",
	    "--port", "{port}", "-c", "512", "-np", "1", "-t", "1",
	    "rss_interval", "200ms",
	    "memory_limit", "4G",
	    "reserved", "0",
	    "per_model", "400M",
	    "max_servers", 16,
	    "start_timeout", "30s");
	TL_ASSERT(over != NULL, "json_pack of the config failed");
	if (extra != NULL) {
		x = json_loads(extra, 0, &jerr);
		TL_ASSERT(json_is_object(x), "bad extra config %s: %s", extra,
		    jerr.text);
		json_object_foreach(x, key, val)
			json_object_set(over, key, val);
		json_decref(x);
	}
	text = json_dumps(over, JSON_COMPACT);
	json_decref(over);
	TL_ASSERT(text != NULL, "json_dumps of the config failed");
	tl_daemon_start(d, text);
	free(text);
}

/* VmRSS, RssAnon, RssFile of pid in bytes (-1 each if unknown). */
static void
proc_rss3(pid_t pid, long long *rss, long long *anon, long long *file)
{
	char path[64], line[256];
	long long kb;
	FILE *f;

	*rss = *anon = *file = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
			*rss = kb * 1024;
		else if (sscanf(line, "RssAnon: %lld kB", &kb) == 1)
			*anon = kb * 1024;
		else if (sscanf(line, "RssFile: %lld kB", &kb) == 1)
			*file = kb * 1024;
	}
	fclose(f);
}

static double
mib(long long b)
{
	return (double)b / (double)MIB;
}

/* --- helpers: a tiny HTTP/1.1 client ------------------------------ */

static int
http_connect(int port, long long timeout_ms)
{
	struct sockaddr_in sin;
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, err = 0;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	if (poll(&pfd, 1, (int)timeout_ms) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1 || err != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
send_all(int fd, const char *p, size_t len, long long deadline)
{
	struct pollfd pfd;
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (tl_now_ms() >= deadline)
			return -1;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		poll(&pfd, 1, 100);
	}
	return 0;
}

/* Sends POST path with a JSON body and Connection: close. */
static int
http_send_post(int fd, int port, const char *path, const char *body,
    long long deadline)
{
	char head[512];
	int n;

	n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\n"
	    "Host: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", path, port,
	    strlen(body));
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	if (send_all(fd, head, (size_t)n, deadline) == -1)
		return -1;
	return send_all(fd, body, strlen(body), deadline);
}

struct buf {
	char	*p;
	size_t	 len, cap;
};

/*
 * Reads what is there into b, waiting until deadline for something.
 * Returns bytes read, 0 on EOF, -1 on timeout or error.
 */
static ssize_t
recv_some(int fd, struct buf *b, long long deadline)
{
	struct pollfd pfd;
	long long left;
	ssize_t n;

	for (;;) {
		if (b->cap - b->len < 65536) {
			b->cap = b->cap ? b->cap * 2 : 131072;
			b->p = realloc(b->p, b->cap + 1);
			TL_ASSERT(b->p != NULL, "out of memory");
		}
		n = recv(fd, b->p + b->len, b->cap - b->len, 0);
		if (n >= 0) {
			b->len += (size_t)n;
			b->p[b->len] = '\0';
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		left = deadline - tl_now_ms();
		if (left <= 0)
			return -1;
		pfd.fd = fd;
		pfd.events = POLLIN;
		poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
	}
}

/* Decodes a chunked body in place; -1 if it is malformed or cut short. */
static long
dechunk(char *p, size_t len)
{
	size_t in = 0, out = 0;
	unsigned long n;
	char *end;

	for (;;) {
		if (in >= len)
			return -1;
		n = strtoul(p + in, &end, 16);
		if (end == p + in)
			return -1;
		if ((end = strstr(end, "\r\n")) == NULL)
			return -1;
		in = (size_t)(end - p) + 2;
		if (n == 0)
			return (long)out;
		if (in + n + 2 > len)
			return -1;
		memmove(p + out, p + in, n);
		out += n;
		in += n + 2;
	}
}

/*
 * POST path with body to 127.0.0.1:port, read the whole reply (the
 * connection closes after it).  Returns the HTTP status (-1: no complete
 * reply within timeout_ms) and the body, malloc'd, in *bodyp.
 */
static int
http_post(int port, const char *path, const char *body, long long timeout_ms,
    char **bodyp)
{
	long long dl = tl_now_ms() + timeout_ms;
	struct buf b = { 0 };
	char *hend, *te, *bstart;
	ssize_t n;
	long blen;
	int fd, status = -1;

	*bodyp = NULL;
	if ((fd = http_connect(port, timeout_ms)) == -1)
		return -1;
	if (http_send_post(fd, port, path, body, dl) == -1) {
		close(fd);
		return -1;
	}
	while ((n = recv_some(fd, &b, dl)) > 0)
		;
	close(fd);
	if (n == -1 || b.p == NULL || (hend = strstr(b.p, "\r\n\r\n")) == NULL ||
	    sscanf(b.p, "HTTP/1.%*d %d", &status) != 1) {
		free(b.p);
		return -1;
	}
	*hend = '\0';
	bstart = hend + 4;
	blen = (long)(b.len - (size_t)(bstart - b.p));
	te = strcasestr(b.p, "\r\ntransfer-encoding:");
	if (te != NULL && strcasestr(te, "chunked") != NULL &&
	    (blen = dechunk(bstart, (size_t)blen)) < 0) {
		free(b.p);
		return -1;
	}
	*bodyp = strndup(bstart, (size_t)blen);
	free(b.p);
	return status;
}

#define CHAT_BODY(max_tokens, stream)					\
	"{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"	\
	"\"max_tokens\":" #max_tokens ",\"stream\":" #stream "}"

/*
 * A short chat completion that must succeed: 200, a JSON object with a
 * non-empty choices[] whose first has a message.  Returns its time in ms.
 */
static long long
chat_ok(int port, const char *what, json_t **replyp)
{
	long long t0 = tl_now_ms();
	json_error_t jerr;
	json_t *j, *ch;
	char *body;
	int st;

	st = http_post(port, "/v1/chat/completions", CHAT_BODY(8, false),
	    20000, &body);
	TL_ASSERT(st == 200, "%s: POST /v1/chat/completions on port %d: HTTP"
	    " status %d, body %.300s", what, port, st, body ? body : "(none)");
	j = json_loads(body, 0, &jerr);
	TL_ASSERT(json_is_object(j), "%s: completion is not a JSON object (%s):"
	    " %.300s", what, jerr.text, body);
	ch = json_object_get(j, "choices");
	TL_ASSERT(json_is_array(ch) && json_array_size(ch) >= 1 &&
	    json_is_object(json_object_get(json_array_get(ch, 0), "message")),
	    "%s: no choices[0].message in %.300s", what, body);
	free(body);
	if (replyp != NULL)
		*replyp = j;
	else
		json_decref(j);
	return tl_now_ms() - t0;
}

/* --- the RSS sampler (a thread: only /proc reads, no assertions) --- */

struct sampler {
	pthread_t	 th;
	pid_t		 poold;
	long long	 interval_ms;
	atomic_int	 stop;
	/* Written by the thread, read after the join. */
	long long	 samples;
	long long	 max_sum;
	long long	 max_gap_ms;	/* longest time between two samples */
	char		 at_max[512];	/* the children at the maximum */
};

static void *
sampler_run(void *arg)
{
	struct sampler *s = arg;
	pid_t kids[256];
	char comm[64], one[96], desc[512];
	long long sum, r, last = 0, now;
	int i, n, o;

	while (!atomic_load(&s->stop)) {
		n = tl_children(s->poold, kids, 256);
		sum = 0;
		o = 0;
		desc[0] = '\0';
		for (i = 0; i < n; i++) {
			if ((r = tl_proc_rss(kids[i])) <= 0)
				continue;
			sum += r;
			if (tl_proc_comm(kids[i], comm, sizeof(comm)) == -1)
				snprintf(comm, sizeof(comm), "?");
			snprintf(one, sizeof(one), "%s%d %s %.1f MiB",
			    o ? ", " : "", (int)kids[i], comm, mib(r));
			if (o + strlen(one) < sizeof(desc)) {
				memcpy(desc + o, one, strlen(one) + 1);
				o += (int)strlen(one);
			}
		}
		now = tl_now_ms();
		if (last != 0 && now - last > s->max_gap_ms)
			s->max_gap_ms = now - last;
		last = now;
		s->samples++;
		if (sum > s->max_sum) {
			s->max_sum = sum;
			snprintf(s->at_max, sizeof(s->at_max), "%s", desc);
		}
		tl_sleep_ms(s->interval_ms);
	}
	return NULL;
}

static void
sampler_start(struct sampler *s, pid_t poold, long long interval_ms)
{
	memset(s, 0, sizeof(*s));
	s->poold = poold;
	s->interval_ms = interval_ms;
	atomic_init(&s->stop, 0);
	TL_ASSERT(pthread_create(&s->th, NULL, sampler_run, s) == 0,
	    "cannot start the RSS sampler thread");
}

static void
sampler_stop(struct sampler *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->th, NULL);
}

/* --- 1. a real chat completion ------------------------------------ */

/*
 * Pass: ACQUIRE tiny answers ok with a port and endpoint
 * http://127.0.0.1:PORT; POST /v1/chat/completions there answers 200
 * with a JSON object whose choices[0] has a message; RELEASE answers ok.
 */
START_TEST(test_chat_completion)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep, *st, *cmpl;
	char want[64];
	long long lease, wait_ms, ms;
	int port;

	tl_daemon_init(&d, 1);
	link_model(&d, "tiny");
	start_real(&d, NULL);
	c = tl_connect(&d);

	rep = tl_acquire(c, "tiny", 30000, true);
	TL_ASSERT(tl_ok(rep), "ACQUIRE tiny: %s", tl_dump(rep));
	port = (int)tl_int(rep, "port");
	lease = tl_int(rep, "lease");
	wait_ms = tl_int(rep, "wait_ms");
	snprintf(want, sizeof(want), "http://127.0.0.1:%d", port);
	TL_ASSERT(tl_str(rep, "endpoint") != NULL &&
	    strcmp(tl_str(rep, "endpoint"), want) == 0,
	    "ACQUIRE tiny: endpoint is not %s: %s", want, tl_dump(rep));
	json_decref(rep);
	st = tl_stats(&d, c);
	TL_ASSERT(tl_server(st, "tiny") != NULL, "no server in %s",
	    tl_dump(st));

	ms = chat_ok(port, "tiny", &cmpl);
	printf("check_llama: [chat] tiny: cold ACQUIRE %lld ms (load_ms %lld),"
	    " chat completion %lld ms, %lld tokens: %.120s\n", wait_ms,
	    tl_int(tl_server(st, "tiny"), "load_ms"), ms,
	    json_integer_value(tl_get(cmpl, "usage.completion_tokens")),
	    tl_dump(tl_get(cmpl, "choices")));
	fflush(stdout);
	json_decref(cmpl);
	json_decref(st);
	tl_release(c, lease);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 2. stopping a server in the middle of a stream -------------- */

/*
 * Pass: with a streamed completion of m100 (max_tokens 2000: about 500
 * tokens until the 512 context is full, ~3.5 s here) under way and its
 * connection kept open and unread, EVICT m100 with force (stop_timeout
 * 5 s) is answered ok within stop_timeout + 1 s, the server's pid no
 * longer exists then, the stream's connection ends (EOF) within 2 s,
 * and the lease's RELEASE answers lease_lost (its server is gone).
 *
 * Measured here (10 runs): the EVICT took 1006–1018 ms in 9 — the first
 * SIGTERM stops the generation (no more events come) but llama-server
 * waits for the client to disconnect; the second one, which poold sends
 * after 1 s, ends it — and 127 ms once, when the first SIGTERM was
 * enough.  The stream must not have finished ([DONE]) before the EVICT.
 */
START_TEST(test_stop_mid_stream)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct buf b = { 0 };
	json_t *rep, *req;
	long long lease, id, t0, tfirst, dt, dl;
	ssize_t n;
	pid_t pid;
	int port, fd, st = 0;

	tl_daemon_init(&d, 2);
	link_model(&d, "m100");
	start_real(&d, "{\"stop_timeout\":\"5s\"}");
	c = tl_connect(&d);

	lease = tl_acquire_ok(c, "m100", true, &port);
	pid = tl_stats_pid(&d, c, "m100");
	TL_ASSERT(pid > 0, "no pid for m100");

	t0 = tl_now_ms();
	fd = http_connect(port, 5000);
	TL_ASSERT(fd != -1, "connect to m100 on port %d: %s", port,
	    strerror(errno));
	TL_ASSERT(http_send_post(fd, port, "/v1/chat/completions",
	    CHAT_BODY(2000, true), t0 + 5000) == 0, "send the stream request");
	/* The headers and the first event carrying a choice. */
	dl = t0 + 20000;
	while (b.p == NULL || strstr(b.p, "data: {") == NULL ||
	    strstr(strstr(b.p, "data: {"), "\n\n") == NULL) {
		n = recv_some(fd, &b, dl);
		TL_ASSERT(n > 0, "stream: no first event within 20 s (%s): %.300s",
		    n == 0 ? "EOF" : "timeout", b.p ? b.p : "");
	}
	tfirst = tl_now_ms() - t0;
	(void)sscanf(b.p, "HTTP/1.%*d %d", &st);
	TL_ASSERT(st == 200, "stream: HTTP status %d: %.300s", st, b.p);
	TL_ASSERT(strstr(b.p, "[DONE]") == NULL, "stream finished before the"
	    " EVICT: %.300s", b.p);

	/* The connection stays open, unread, while poold stops the server. */
	t0 = tl_now_ms();
	req = json_pack("{s:s, s:s, s:b}", "cmd", "EVICT", "model", "m100",
	    "force", true);
	id = tl_send_req(c, req);
	rep = tl_recv_id(c, id, d.stop_timeout_ms + 1000);
	dt = tl_now_ms() - t0;
	TL_ASSERT(rep != NULL, "EVICT m100 mid-stream: no reply within"
	    " stop_timeout + 1 s = %lld ms", d.stop_timeout_ms + 1000);
	TL_ASSERT(tl_ok(rep), "EVICT m100 mid-stream: %s", tl_dump(rep));
	json_decref(rep);
	TL_ASSERT(!tl_pid_exists(pid), "m100's server %d still exists (state"
	    " %c) when EVICT answered", (int)pid, tl_proc_state(pid));

	dl = tl_now_ms() + 2000;
	while ((n = recv_some(fd, &b, dl)) > 0)
		;
	TL_ASSERT(n == 0, "stream connection not closed 2 s after the server"
	    " was reaped");
	close(fd);
	printf("check_llama: [stream-stop] m100: first event after %lld ms;"
	    " EVICT force mid-stream answered in %lld ms (stop_timeout %lld"
	    " ms); %zu bytes of stream read in all, finished: %s\n", tfirst,
	    dt, d.stop_timeout_ms, b.len,
	    strstr(b.p, "[DONE]") ? "yes" : "no");
	fflush(stdout);
	free(b.p);
	rep = tl_call(c, json_pack("{s:s, s:I}", "cmd", "RELEASE", "lease",
	    (json_int_t)lease), TL_REPLY_TIMEOUT_MS);
	tl_expect_error(rep, "lease_lost", NULL, "RELEASE after EVICT force");
	json_decref(rep);
	TL_ASSERT(tl_stats_pid(&d, c, "m100") == 0, "m100 still in STATS");
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 3. corrupt model files --------------------------------------- */

/* Writes len bytes of deterministic noise (not starting with GGUF). */
static void
write_noise(const char *path, size_t len)
{
	unsigned long long x = 0x9e3779b97f4a7c15ULL;
	FILE *f = fopen(path, "wb");
	size_t i;

	TL_ASSERT(f != NULL, "cannot write %s: %s", path, strerror(errno));
	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		fputc(i == 0 ? 'X' : (int)(x & 0xff), f);
	}
	TL_ASSERT(fclose(f) == 0, "cannot write %s", path);
}

/* Copies the first len bytes of src to dst. */
static void
write_prefix(const char *src, const char *dst, size_t len)
{
	char buf[65536];
	size_t n, left = len;
	FILE *in, *out;

	in = fopen(src, "rb");
	out = fopen(dst, "wb");
	TL_ASSERT(in != NULL && out != NULL, "cannot copy %s to %s", src, dst);
	while (left > 0 && (n = fread(buf, 1, left < sizeof(buf) ? left :
	    sizeof(buf), in)) > 0) {
		TL_ASSERT(fwrite(buf, 1, n, out) == n, "write %s", dst);
		left -= n;
	}
	fclose(in);
	TL_ASSERT(fclose(out) == 0, "write %s", dst);
}

static void
expect_load_failure(struct tl_conn *c, const char *model, const char *what)
{
	json_t *rep;
	const char *msg;
	long long t0 = tl_now_ms();

	rep = tl_acquire(c, model, 30000, true);
	msg = tl_str(rep, "message");
	TL_ASSERT(!tl_ok(rep) && strcmp(tl_err(rep), "start_failed") == 0,
	    "ACQUIRE %s (%s): expected start_failed, got %s", model, what,
	    tl_dump(rep));
	/*
	 * llama-server's last lines for any model it cannot load end in
	 * "load_model: failed to load model, 'PATH'" and "exiting due to
	 * model loading error"; the reason (e.g. "invalid magic
	 * characters", "data is not within the file bounds") comes ~10
	 * lines earlier.
	 */
	TL_ASSERT(msg != NULL && strstr(msg, "failed to load model") != NULL,
	    "ACQUIRE %s (%s): start_failed without llama-server's error line"
	    " \"failed to load model\": %s", model, what, tl_dump(rep));
	printf("check_llama: [corrupt] %s (%s): start_failed after %lld ms:"
	    " %s\n", model, what, tl_now_ms() - t0, msg);
	fflush(stdout);
	json_decref(rep);
}

/*
 * Pass: ACQUIRE of a file of random bytes and of a truncated copy of a
 * real model (the first 40 % of s20) each answer start_failed, whose
 * message holds llama-server's own line "failed to load model"; no
 * server of theirs is left in STATS; and a good model still starts and
 * completes a chat afterwards.
 */
START_TEST(test_corrupt_model)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *st;
	char src[PATH_MAX + 64], dst[TL_PATH_MAX + 64];
	long long lease;
	int port;

	tl_daemon_init(&d, 3);
	snprintf(dst, sizeof(dst), "%s/bad.gguf", d.models_dir);
	write_noise(dst, 1 << 20);
	snprintf(src, sizeof(src), "%s/s20.gguf", models_src);
	snprintf(dst, sizeof(dst), "%s/truncated.gguf", d.models_dir);
	write_prefix(src, dst, (size_t)(model_get("s20")->file_size * 2 / 5));
	link_model(&d, "tiny");
	start_real(&d, NULL);
	c = tl_connect(&d);

	expect_load_failure(c, "bad", "1 MiB of random bytes");
	expect_load_failure(c, "truncated", "first 40% of s20");
	st = tl_stats(&d, c);
	TL_ASSERT(tl_server(st, "bad") == NULL && tl_server(st, "truncated") ==
	    NULL, "a failed server is still in STATS: %s", tl_dump(st));
	json_decref(st);

	lease = tl_acquire_ok(c, "tiny", true, &port);
	chat_ok(port, "tiny after the failures", NULL);
	tl_release(c, lease);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 4. LRU under a budget, real RSS sampled ---------------------- */

#define LRU_BUDGET	(515 * MIB)

/*
 * ACQUIRE model (hold), a short chat completion, RELEASE.  Checks that
 * the model's real RSS is within what poold accounts for it (the premise
 * of the RSS check: the estimates bound the real use) and that its
 * server's estimate came from want_src ("gguf" on a model's first run,
 * "learned" once a server of it was reaped).
 */
static void
use_model(struct tl_daemon *d, struct tl_conn *c, const char *name,
    const char *want_src)
{
	struct model *m = model_get(name);
	long long lease, t0 = tl_now_ms(), rss;
	pid_t pid;
	int port;

	json_t *st;
	long long acc;
	const char *src;

	(void)m;
	lease = tl_acquire_ok(c, name, true, &port);
	chat_ok(port, name, NULL);
	pid = tl_stats_pid(d, c, name);
	rss = tl_proc_rss(pid);
	st = tl_stats(d, c);
	acc = tl_int(tl_server(st, name), "estimate");
	src = tl_str(tl_server(st, name), "estimate_source");
	/* A learned peak is a sample of the last run: allow 2 % over it
	 * (poold accounts the measured figure anyway once it samples). */
	TL_ASSERT(rss > 0 && rss <= acc + acc / 50, "%s: its RSS %.1f MiB is "
	    "above its %s estimate %.1f MiB", name, mib(rss), src, mib(acc));
	TL_ASSERT(src != NULL && strcmp(src, want_src) == 0, "%s: its "
	    "server's estimate is from %s, not %s", name, src, want_src);
	printf("check_llama: [lru] used %s: ACQUIRE+chat+RELEASE %lld ms, RSS"
	    " %.1f MiB (%s estimate %.1f MiB)\n", name, tl_now_ms() - t0,
	    mib(rss), src, mib(acc));
	json_decref(st);
	tl_release(c, lease);
	fflush(stdout);
}

/*
 * The servers in STATS are exactly the models of want (space-separated);
 * each server's pid is written into pids[] at its models[] index (0 for
 * those not running).
 */
static void
expect_running(struct tl_daemon *d, struct tl_conn *c, const char *want,
    pid_t pids[NMODELS], const char *step)
{
	json_t *st = tl_stats(d, c);
	char list[64], needle[32];
	size_t i, nwant = 0;
	bool in;

	snprintf(list, sizeof(list), " %s ", want);
	for (i = 0; i < NMODELS; i++) {
		snprintf(needle, sizeof(needle), " %s ", models[i].name);
		in = strstr(list, needle) != NULL;
		nwant += in;
		pids[i] = tl_server_pid(st, models[i].name);
		TL_ASSERT(in == (pids[i] != 0), "%s: expected exactly {%s}"
		    " running, but %s is %s: %s", step, want, models[i].name,
		    in ? "not running" : "running", tl_dump(st));
	}
	TL_ASSERT(json_array_size(tl_get(st, "servers")) == nwant,
	    "%s: expected exactly {%s} running: %s", step, want, tl_dump(st));
	json_decref(st);
}

/*
 * Pass: the models' GGUF estimates (28.8 tiny, 57.0 s20, 149.4 m100,
 * 357.8 l300 MiB; on a restart the learned peak, a little lower) under a
 * budget of 515 MiB (the four together really use ~556 MiB, so a pool
 * that did not evict would break it).  "use" is ACQUIRE, a short chat
 * completion, RELEASE.  After each step exactly the servers named run,
 * the survivors keep their pids, and the evicted ones' processes are gone:
 *   use tiny, s20, m100, tiny         → {tiny s20 m100}   (235 MiB)
 *   use l300: s20 then m100, the LRU  → {tiny l300}       (387)
 *   use m100 (learned ~138): tiny     → {l300 m100}       (496)
 *   use s20 (learned ~50):  l300      → {m100 s20}        (189)
 *   use tiny (learned): fits          → {m100 s20 tiny}   (215)
 * (each server accounted its GGUF estimate on its model's first run, its
 * learned peak after a server of it was reaped),
 * evictions == 4, and the real RSS of poold's children (VmRSS from /proc),
 * summed by a thread every 20 ms from poold's start to the end, never
 * exceeds the budget.
 */
START_TEST(test_lru_real_rss)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct sampler smp;
	json_t *st;
	char over[256];
	pid_t p[NMODELS], q[NMODELS];
	long long t0;
	enum { TINY, S20, M100, L300 };

	tl_daemon_init(&d, 4);
	link_model(&d, "tiny");
	link_model(&d, "s20");
	link_model(&d, "m100");
	link_model(&d, "l300");
	/* LRU order; check_usage.c freq_order tests the default, freq. */
	snprintf(over, sizeof(over), "{\"memory_limit\":%lld,"
	    "\"eviction\":\"lru\"}", LRU_BUDGET);
	start_real(&d, over);
	sampler_start(&smp, d.pid, 20);
	c = tl_connect(&d);
	t0 = tl_now_ms();

	use_model(&d, c, "tiny", "gguf");
	use_model(&d, c, "s20", "gguf");
	use_model(&d, c, "m100", "gguf");
	use_model(&d, c, "tiny", "gguf");
	expect_running(&d, c, "tiny s20 m100", p, "after tiny s20 m100 tiny");

	use_model(&d, c, "l300", "gguf");
	expect_running(&d, c, "tiny l300", q, "l300 evicts s20 and m100");
	TL_ASSERT(q[TINY] == p[TINY], "tiny was restarted (pid %d, was %d)",
	    (int)q[TINY], (int)p[TINY]);
	TL_ASSERT(!tl_pid_exists(p[S20]) && !tl_pid_exists(p[M100]),
	    "evicted s20 %d / m100 %d still exist", (int)p[S20], (int)p[M100]);
	memcpy(p, q, sizeof(p));

	use_model(&d, c, "m100", "learned");
	expect_running(&d, c, "l300 m100", q, "m100 evicts tiny");
	TL_ASSERT(q[L300] == p[L300], "l300 was restarted");
	TL_ASSERT(!tl_pid_exists(p[TINY]), "evicted tiny %d still exists",
	    (int)p[TINY]);
	memcpy(p, q, sizeof(p));

	use_model(&d, c, "s20", "learned");
	expect_running(&d, c, "m100 s20", q, "s20 evicts l300");
	TL_ASSERT(q[M100] == p[M100], "m100 was restarted");
	TL_ASSERT(!tl_pid_exists(p[L300]), "evicted l300 %d still exists",
	    (int)p[L300]);
	memcpy(p, q, sizeof(p));

	use_model(&d, c, "tiny", "learned");
	expect_running(&d, c, "m100 s20 tiny", q, "tiny fits");
	TL_ASSERT(q[M100] == p[M100] && q[S20] == p[S20],
	    "m100 or s20 was restarted");

	st = tl_stats(&d, c);
	TL_ASSERT(tl_int(st, "counters.evictions") == 4, "evictions %lld, not"
	    " 4: %s", tl_int(st, "counters.evictions"), tl_dump(st));
	json_decref(st);
	sampler_stop(&smp);
	printf("check_llama: [lru] budget %.0f MiB: sequence took %lld ms;"
	    " %lld RSS samples (longest gap %lld ms); max real RSS sum %.1f"
	    " MiB (%s); max accounted %.0f MiB\n", mib(LRU_BUDGET),
	    tl_now_ms() - t0, smp.samples, smp.max_gap_ms, mib(smp.max_sum),
	    smp.at_max, mib((long long)d.max_used_seen));
	fflush(stdout);
	TL_ASSERT(smp.samples >= 10, "only %lld RSS samples", smp.samples);
	TL_ASSERT(smp.max_sum <= LRU_BUDGET, "the real RSS of poold's children"
	    " summed to %.1f MiB > budget %.0f MiB: %s", mib(smp.max_sum),
	    mib(LRU_BUDGET), smp.at_max);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 5. memory after load ----------------------------------------- */

/*
 * Pass: every model loads (all four at once, budget 4 GiB); for m100 and
 * l300, VmRSS right after ready is ≥ 0.8 × the file size; each model's
 * GGUF estimate is at least its VmRSS after a short completion and at
 * most 15 % (or 32 MiB, for the small ones) above it.
 *
 * Verified here: llama-server mmaps the weights and touches them all at
 * load (its warm-up run), so they are resident as RssFile right when
 * /health says ok: RssFile (121, 314 MiB) > file size (102, 295 MiB) for
 * m100 and l300, the rest of RssFile being the binary and its libraries
 * (~20 MiB); RssAnon is the KV cache (-c 512), compute buffers and the
 * runtime (5–27 MiB).  The
 * numbers (after load, and after a short completion) are printed for the
 * issue's note; only the ≥ 0.8 × file size bound is asserted.
 */
START_TEST(test_memory_after_load)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *st, *rep;
	long long rss, anon, file, rss2, anon2, file2, wait_ms, sum = 0;
	long long lease, est;
	const char *src;
	size_t i;
	pid_t pid;
	int port;

	tl_daemon_init(&d, 5);
	for (i = 0; i < NMODELS; i++)
		link_model(&d, models[i].name);
	start_real(&d, NULL);
	c = tl_connect(&d);
	for (i = 0; i < NMODELS; i++) {
		struct model *m = &models[i];

		rep = tl_acquire(c, m->name, 30000, true);
		TL_ASSERT(tl_ok(rep), "ACQUIRE %s: %s", m->name, tl_dump(rep));
		port = (int)tl_int(rep, "port");
		lease = tl_int(rep, "lease");
		wait_ms = tl_int(rep, "wait_ms");
		json_decref(rep);
		st = tl_stats(&d, c);
		pid = tl_server_pid(st, m->name);
		proc_rss3(pid, &rss, &anon, &file);
		printf("check_llama: [memory] %-4s file %6.1f MiB: ready in %lld"
		    " ms (load_ms %lld); after load VmRSS %6.1f MiB (anon %5.1f,"
		    " file %6.1f)", m->name, mib(m->file_size), wait_ms,
		    tl_int(tl_server(st, m->name), "load_ms"), mib(rss),
		    mib(anon), mib(file));
		json_decref(st);
		chat_ok(port, m->name, NULL);
		proc_rss3(pid, &rss2, &anon2, &file2);
		st = tl_stats(&d, c);
		est = tl_int(tl_server(st, m->name), "estimate");
		src = tl_str(tl_server(st, m->name), "estimate_source");
		printf("; after a chat VmRSS %6.1f MiB (anon %5.1f, file %6.1f);"
		    " %s estimate %.1f MiB (%+.1f%%)\n", mib(rss2), mib(anon2),
		    mib(file2), src, mib(est), 100.0 * (double)(est - rss2) /
		    (double)rss2);
		fflush(stdout);
		/* Issue 4's tolerance: within +15 % or +32 MiB, never under. */
		TL_ASSERT(strcmp(src, "gguf") == 0, "%s: estimate from %s, not "
		    "the GGUF header", m->name, src);
		TL_ASSERT(est >= rss2 && est - rss2 <= (rss2 * 15 / 100 >
		    32 * MIB ? rss2 * 15 / 100 : 32 * MIB), "%s: GGUF estimate "
		    "%.1f MiB vs measured %.1f MiB: out of tolerance", m->name,
		    mib(est), mib(rss2));
		json_decref(st);
		sum += rss2;
		if (m->file_size >= 100 * 1000 * 1000)
			TL_ASSERT(rss >= m->file_size * 8 / 10, "%s: VmRSS %.1f"
			    " MiB after load < 0.8 x its file size %.1f MiB",
			    m->name, mib(rss), mib(m->file_size));
		tl_release(c, lease);
	}
	printf("check_llama: [memory] all four running: RSS sum %.1f MiB\n",
	    mib(sum));
	fflush(stdout);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 6. learned estimates ------------------------------------------ */

/* The MODELS entry of model (a new reference), NULL if not listed. */
static json_t *
models_entry_of(struct tl_conn *c, const char *model)
{
	json_t *rep, *m, *found = NULL;
	size_t i;

	rep = tl_call(c, json_pack("{s:s}", "cmd", "MODELS"),
	    TL_REPLY_TIMEOUT_MS);
	TL_ASSERT(tl_ok(rep), "MODELS: %s", tl_dump(rep));
	json_array_foreach(tl_get(rep, "models"), i, m)
		if (tl_str(m, "model") && strcmp(tl_str(m, "model"), model) == 0)
			found = json_incref(m);
	json_decref(rep);
	return found;
}

/*
 * Pass (the real llama-server, s20, rss_interval 200ms): its first
 * server is accounted the GGUF estimate; after a chat and once it is
 * evicted, MODELS says s20's estimate is learned, at least the highest
 * resident memory STATS showed for it and at most twice that; the next
 * server is accounted exactly that learned figure (STATS estimate,
 * estimate_source learned).
 */
START_TEST(test_learned_real)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *st, *m, *rep;
	long long lease, rss, max_rss = 0, gguf, learned, dl;
	int port;

	tl_daemon_init(&d, 6);
	link_model(&d, "s20");
	start_real(&d, NULL);
	c = tl_connect(&d);
	lease = tl_acquire_ok(c, "s20", true, &port);
	st = tl_stats(&d, c);
	TL_ASSERT(strcmp(tl_str(tl_server(st, "s20"), "estimate_source"),
	    "gguf") == 0, "s20's first server: %s", tl_dump(st));
	gguf = tl_int(tl_server(st, "s20"), "estimate");
	json_decref(st);
	chat_ok(port, "s20", NULL);
	/* 1.5 s of samples (every 200 ms) after the chat. */
	for (dl = tl_now_ms() + 1500; tl_now_ms() < dl; tl_sleep_ms(50)) {
		st = tl_stats(&d, c);
		rss = tl_int(tl_server(st, "s20"), "rss");
		max_rss = rss > max_rss ? rss : max_rss;
		json_decref(st);
	}
	TL_ASSERT(max_rss > 0, "no RSS of s20 in STATS");
	tl_release(c, lease);
	rep = tl_evict(c, "s20", false, 15000);
	TL_ASSERT(tl_ok(rep), "EVICT s20: %s", tl_dump(rep));
	json_decref(rep);

	m = models_entry_of(c, "s20");
	TL_ASSERT(m != NULL && strcmp(tl_str(m, "source"), "learned") == 0,
	    "s20's estimate is not learned after its run: %s", tl_dump(m));
	learned = tl_int(m, "memory");
	json_decref(m);
	printf("check_llama: [learned] s20: GGUF estimate %.1f MiB, highest "
	    "RSS in STATS %.1f MiB, learned %.1f MiB\n", mib(gguf),
	    mib(max_rss), mib(learned));
	fflush(stdout);
	TL_ASSERT(learned >= max_rss && learned <= 2 * max_rss, "learned "
	    "%.1f MiB, but STATS showed up to %.1f MiB resident",
	    mib(learned), mib(max_rss));

	lease = tl_acquire_ok(c, "s20", true, NULL);
	st = tl_stats(&d, c);
	TL_ASSERT(tl_int(tl_server(st, "s20"), "estimate") == learned &&
	    strcmp(tl_str(tl_server(st, "s20"), "estimate_source"),
	    "learned") == 0, "s20's next server is not accounted the learned"
	    " %lld: %s", learned, tl_dump(st));
	json_decref(st);
	tl_release(c, lease);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 7. a streamed chat through the HTTP front door --------------- */

/*
 * Each "data: " line of an event stream parsed; fails unless every one
 * but [DONE] is a chat.completion.chunk.  Returns how many there were.
 */
static int
stream_chunks(const char *body, char *text, size_t textlen)
{
	const char *p = body, *eol;
	json_error_t jerr;
	json_t *j;
	const char *s;
	size_t used = 0;
	int n = 0;

	text[0] = '\0';
	while ((p = strstr(p, "data: ")) != NULL) {
		p += 6;
		eol = strchr(p, '\n');
		if (strncmp(p, "[DONE]", 6) == 0)
			break;
		j = json_loadb(p, eol ? (size_t)(eol - p) : strlen(p), 0, &jerr);
		TL_ASSERT(j != NULL && tl_str(j, "object") != NULL &&
		    strcmp(tl_str(j, "object"), "chat.completion.chunk") == 0,
		    "event %d is not a chat.completion.chunk (%s): %.200s", n,
		    jerr.text, p);
		s = json_string_value(tl_get(json_array_get(json_object_get(j,
		    "choices"), 0), "delta.content"));
		if (s != NULL && used + strlen(s) < textlen) {
			memcpy(text + used, s, strlen(s) + 1);
			used += strlen(s);
		}
		json_decref(j);
		n++;
		p = eol ? eol : p + strlen(p);
	}
	return n;
}

/*
 * Pass: with the front door on 127.0.0.1:0 (its port from STATS), a
 * streamed chat completion for tiny (cold: the request starts it) is
 * 200 text/event-stream with X-Accel-Buffering: no, every event a
 * chat.completion.chunk of the real server, then [DONE] and the final
 * chunk; the request's lease is gone after it.
 */
START_TEST(test_front_door_stream)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	const char *listen, *ct, *xab;
	const char *body = "{\"model\":\"tiny\",\"messages\":[{\"role\":"
	    "\"user\",\"content\":\"hello\"}],\"max_tokens\":16,"
	    "\"stream\":true}";
	char text[4096];
	long long t0, leases = -2;
	json_t *st;
	int port, n;
	bool ok;

	tl_daemon_init(&d, 7);
	link_model(&d, "tiny");
	start_real(&d, "{\"http\":{\"listen\":\"127.0.0.1:0\"}}");
	c = tl_connect(&d);
	st = tl_stats(&d, c);
	listen = tl_str(st, "http.listen");
	TL_ASSERT(listen != NULL && strrchr(listen, ':') != NULL,
	    "no http.listen in STATS: %s", tl_dump(st));
	port = atoi(strrchr(listen, ':') + 1);
	json_decref(st);

	t0 = tl_now_ms();
	h = tl_http_open(port);
	TL_ASSERT(tl_http_sendf(h, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", port,
	    strlen(body), body) == 0, "send the request");
	TL_ASSERT(tl_http_wait_done(h, 60000), "no whole stream within 60 s"
	    " (HTTP %d, eof %d, bad %d): %.300s", h->status, h->eof, h->bad,
	    h->body ? h->body : "");
	ct = tl_http_header(h, "Content-Type");
	xab = tl_http_header(h, "X-Accel-Buffering");
	TL_ASSERT(h->status == 200 && ct != NULL &&
	    strncmp(ct, "text/event-stream", 17) == 0, "HTTP %d, Content-Type"
	    " %s: %.300s", h->status, ct ? ct : "(none)", h->body);
	TL_ASSERT(xab != NULL && strcasecmp(xab, "no") == 0,
	    "X-Accel-Buffering %s:\n%s", xab ? xab : "(none)", h->head);
	n = stream_chunks(h->body, text, sizeof(text));
	TL_ASSERT(n >= 2 && strstr(h->body, "data: [DONE]") != NULL,
	    "%d chunks, [DONE] %s: %.300s", n,
	    strstr(h->body, "[DONE]") ? "there" : "missing", h->body);
	printf("check_llama: [front door] tiny: cold streamed chat in %lld ms,"
	    " %d chunks: %.80s\n", tl_now_ms() - t0, n, text);
	fflush(stdout);
	tl_http_close(h);
	TL_WAIT_UNTIL(ok, (leases = tl_server_leases(&d, c, "tiny")) == 0,
	    10000);
	TL_ASSERT(ok, "tiny has %lld leases after its stream", leases);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- finding llama-server, making the models ----------------------- */

static bool
executable(const char *p)
{
	struct stat sb;

	return stat(p, &sb) == 0 && S_ISREG(sb.st_mode) && access(p, X_OK) == 0;
}

/* name on PATH into out; false if not there. */
static bool
on_path(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH"), *p, *e;
	char cand[PATH_MAX];

	for (p = path; p != NULL && *p != '\0'; p = *e ? e + 1 : e) {
		e = strchr(p, ':');
		if (e == NULL)
			e = p + strlen(p);
		snprintf(cand, sizeof(cand), "%.*s/%s", (int)(e - p),
		    e == p ? "." : p, name);
		if (executable(cand)) {
			if (realpath(cand, out) == NULL)
				snprintf(out, len, "%s", cand);
			return true;
		}
	}
	return false;
}

/* Runs argv, its output to stderr; returns its exit status (-1: none). */
static int
run(char *const argv[], bool quiet)
{
	pid_t pid;
	int status, fd;

	fflush(stdout);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		dup2(2, 1);
		if (quiet && (fd = open("/dev/null", O_WRONLY)) != -1) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Finds llama-server and make-tiny-gguf; exits if it cannot. */
static void
find_tools(void)
{
	const char *v = getenv("LLAMA_SERVER"), *t = getenv("MAKE_TINY_GGUF");
	char dir[PATH_MAX - 32], *slash;

	if (v != NULL && v[0] != '\0') {
		if (!executable(v)) {
			fprintf(stderr, "check_llama: LLAMA_SERVER=%s is not an"
			    " executable file\n", v);
			exit(1);
		}
		snprintf(llama_bin, sizeof(llama_bin), "%s", v);
	} else if (!on_path("llama-server", llama_bin, sizeof(llama_bin))) {
		exit(tl_skip_main("check_llama", "llama-server not found (set"
		    " LLAMA_SERVER or run tests/llama-setup.sh); real-server"
		    " tests not run") ? 1 : 0);
	}
	if (t != NULL && t[0] != '\0') {
		snprintf(tiny_bin, sizeof(tiny_bin), "%s", t);
	} else {
		snprintf(dir, sizeof(dir), "%.*s", (int)sizeof(dir) - 1,
		    llama_bin);
		if ((slash = strrchr(dir, '/')) != NULL)
			*slash = '\0';
		snprintf(tiny_bin, sizeof(tiny_bin), "%s/make-tiny-gguf", dir);
		if (!executable(tiny_bin))
			(void)on_path("make-tiny-gguf", tiny_bin,
			    sizeof(tiny_bin));
	}
	if (!executable(tiny_bin)) {
		exit(tl_skip_main("check_llama", "make-tiny-gguf not found"
		    " beside %s (set MAKE_TINY_GGUF or run"
		    " tests/llama-setup.sh); real-server tests not run",
		    llama_bin) ? 1 : 0);
	}
}

/* Writes the test models into a temporary folder; exits on failure. */
static void
make_models(void)
{
	char tmpl[] = "/tmp/poold-llama-models.XXXXXX", out[PATH_MAX + 64];
	char *argv[4];
	struct stat sb;
	size_t i;

	if (mkdtemp(tmpl) == NULL) {
		fprintf(stderr, "check_llama: mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
	snprintf(models_src, sizeof(models_src), "%s", tmpl);
	for (i = 0; i < NMODELS; i++) {
		snprintf(out, sizeof(out), "%s/%s.gguf", models_src,
		    models[i].name);
		argv[0] = tiny_bin;
		argv[1] = out;
		argv[2] = (char *)models[i].size_mb;
		argv[3] = NULL;
		if (run(argv, false) != 0 || stat(out, &sb) == -1) {
			fprintf(stderr, "check_llama: %s %s %s failed\n",
			    tiny_bin, out, models[i].size_mb);
			tl_rm_rf(models_src);
			exit(1);
		}
		models[i].file_size = (long long)sb.st_size;
	}
}

int
main(void)
{
	Suite *s = suite_create("llama");
	char *argv[3];
	long long t0;
	int failed;

	find_tools();
	argv[0] = llama_bin;
	argv[1] = "--version";
	argv[2] = NULL;
	printf("check_llama: llama-server %s, models by %s\n", llama_bin,
	    tiny_bin);
	fflush(stdout);
	if (run(argv, false) != 0) {
		fprintf(stderr, "check_llama: %s --version failed\n", llama_bin);
		return 1;
	}
	t0 = tl_now_ms();
	make_models();
	printf("check_llama: made the test models in %lld ms\n",
	    tl_now_ms() - t0);
	fflush(stdout);

	tl_add(s, "chat", test_chat_completion);
	tl_add(s, "stream_stop", test_stop_mid_stream);
	tl_add(s, "corrupt", test_corrupt_model);
	tl_add(s, "lru_rss", test_lru_real_rss);
	tl_add(s, "memory", test_memory_after_load);
	tl_add(s, "learned", test_learned_real);
	tl_add(s, "front_door_stream", test_front_door_stream);
	failed = tl_run(s, CK_ENV);
	tl_rm_rf(models_src);
	return failed;
}
