/*
 * check_peer.c — poold-to-poold links (peer.c) and their hashes
 * (sha256.c).
 *
 * Both ends run in the test process on one libev loop, over real TCP on
 * 127.0.0.1; a listener that stops answering is a forked child of ours
 * stopped with SIGSTOP, and a misbehaving origin is a raw socket that
 * does the handshake by hand.  The logs (stderr) go to a file per case,
 * which the cases read.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <ev.h>
#include <jansson.h>

#include "poold.h"
#include "peer.h"
#include "sha256.h"
#include "testlib.h"

static const unsigned char SECRET[] = "0123456789abcdef0123456789abcdef";
#define SECRET_LEN	32
static const unsigned char OTHER[] = "fedcba9876543210fedcba9876543210";

static struct ev_loop	*loop;
static ev_timer		 tick;
static char		 logpath[128];
static char		 addr[64];
static bool		 in_request;	/* a callback must never run inside */

/* --- the loop, the log --- */

static void
tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
}

static void
setup(void)
{
	int	 fd;

	loop = ev_loop_new(EVFLAG_AUTO);
	ev_timer_init(&tick, tick_cb, 0.005, 0.005);
	ev_timer_start(loop, &tick);
	signal(SIGPIPE, SIG_IGN);
	snprintf(logpath, sizeof(logpath), "/tmp/check_peer.%ld.log",
	    (long)getpid());
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ne(fd, -1);
	dup2(fd, STDERR_FILENO);
	close(fd);
	peer_set_handshake_ms(0);
}

static void
teardown(void)
{
	ev_timer_stop(loop, &tick);
	ev_loop_destroy(loop);
	unlink(logpath);
}

/* Turns the loop until cond holds or ms passed; whether it held. */
#define RUN_UNTIL(cond, ms) do {					\
	long long dl_ = tl_now_ms() + (ms);				\
	while (!(cond) && tl_now_ms() < dl_)				\
		ev_run(loop, EVRUN_ONCE);				\
	ck_assert_msg((cond), "timed out: %s", #cond);			\
} while (0)

static void
run_for(long long ms)
{
	long long dl = tl_now_ms() + ms;

	while (tl_now_ms() < dl)
		ev_run(loop, EVRUN_ONCE);
}

static int
log_count(const char *what)
{
	char	*s, *p;
	int	 n = 0;
	FILE	*f = fopen(logpath, "r");
	size_t	 len;

	if (f == NULL)
		return 0;
	s = calloc(1, 1 << 20);
	len = fread(s, 1, (1 << 20) - 1, f);
	s[len] = '\0';
	fclose(f);
	for (p = s; (p = strstr(p, what)) != NULL; p++)
		n++;
	free(s);
	return n;
}

/* A port free now on 127.0.0.1 ("127.0.0.1:PORT" into addr). */
static void
pick_addr(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	int			 fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sin.sin_port));
	close(fd);
}

/* --- a listener that echoes, or holds, or answers big --- */

enum lmode { ECHO, HOLD, REVERSE, BIG };

struct lis {
	struct peer_listener	*l;
	enum lmode		 mode;
	struct peer_in		*pin;
	char			 node[64];
	unsigned		 opened, closed, lines;
	char			 closed_why[128];
	char			**held;
	size_t			 nheld;
	char			 last[256];
};

/* One link's context. */
struct lin {
	struct lis	*L;
	struct peer_in	*pin;
};

static void *
lis_open(void *arg, struct peer_in *pin, const char *node, const char *a)
{
	struct lis	*L = arg;
	struct lin	*k = calloc(1, sizeof(*k));

	k->L = L;
	k->pin = L->pin = pin;
	snprintf(L->node, sizeof(L->node), "%s", node);
	L->opened++;
	return k;
}

static char *
with_nl(const char *line, size_t len)
{
	char	*s = malloc(len + 2);

	memcpy(s, line, len);
	s[len] = '\n';
	s[len + 1] = '\0';
	return s;
}

static void
lis_line(void *ctx, const char *line, size_t len)
{
	struct lin	*k = ctx;
	struct lis	*L = k->L;
	char		*big;
	size_t		 i;

	L->lines++;
	snprintf(L->last, sizeof(L->last), "%.*s", (int)len, line);
	switch (L->mode) {
	case ECHO:
		peer_in_send(k->pin, with_nl(line, len));
		break;
	case HOLD:
		break;
	case REVERSE:
		L->held = realloc(L->held, (L->nheld + 1) * sizeof(char *));
		L->held[L->nheld++] = with_nl(line, len);
		if (L->nheld == 1000) {
			for (i = L->nheld; i > 0; i--)
				peer_in_send(k->pin, L->held[i - 1]);
			L->nheld = 0;
		}
		break;
	case BIG:
		big = malloc(PEER_LINE_MAX + 100);
		memset(big, 'x', PEER_LINE_MAX + 98);
		memcpy(big, "{\"id\":1,\"pad\":\"", 15);
		big[PEER_LINE_MAX + 98] = '\n';
		big[PEER_LINE_MAX + 99] = '\0';
		peer_in_send(k->pin, big);
		break;
	}
}

static void
lis_closed(void *ctx, const char *why)
{
	struct lin	*k = ctx;
	struct lis	*L = k->L;

	L->closed++;
	snprintf(L->closed_why, sizeof(L->closed_why), "%s", why);
	if (L->pin == k->pin)
		L->pin = NULL;
	free(k);
}

static const struct peer_listener_ops lis_ops = {
	lis_open, lis_line, lis_closed,
};

static void
lis_start(struct lis *L, const unsigned char *secret, int64_t idle_ms)
{
	char	 err[256];

	L->l = peer_listen(loop, addr, secret, SECRET_LEN, idle_ms, &lis_ops,
	    L, err, sizeof(err));
	ck_assert_msg(L->l != NULL, "peer_listen: %s", err);
}

/* --- an origin --- */

struct org {
	struct peer_out	*po;
	unsigned	 ups, downs;
	char		 down_why[256];
};

static void
org_down(void *arg, struct peer_out *po, const char *why)
{
	struct org *O = arg;

	O->downs++;
	snprintf(O->down_why, sizeof(O->down_why), "%s", why);
}

static void
org_up(void *arg, struct peer_out *po)
{
	((struct org *)arg)->ups++;
}

static const struct peer_out_ops org_ops = { org_down, org_up };

static void
org_new(struct org *O, const unsigned char *secret, int64_t ping_ms)
{
	memset(O, 0, sizeof(*O));
	O->po = peer_out_new(loop, addr, "127.0.0.1", "node-a", secret,
	    SECRET_LEN, ping_ms, &org_ops, O);
	ck_assert_ptr_nonnull(O->po);
}

/* One request's outcome. */
struct res {
	bool	 done, failed;
	char	 reply[256], why[256];
};

static void
res_cb(void *arg, const char *reply, size_t len, const char *why)
{
	struct res *r = arg;

	ck_assert_msg(!in_request, "callback inside peer_request");
	ck_assert(!r->done);
	r->done = true;
	r->failed = reply == NULL;
	if (reply != NULL)
		snprintf(r->reply, sizeof(r->reply), "%.*s", (int)len, reply);
	else
		snprintf(r->why, sizeof(r->why), "%s", why);
}

static uint64_t
req(struct org *O, const char *line, struct res *r)
{
	uint64_t	 h;

	memset(r, 0, sizeof(*r));
	in_request = true;
	h = peer_request(O->po, line, strlen(line), res_cb, r);
	in_request = false;
	return h;
}

/* --- SHA-256, HMAC --- */

static void
hex_is(const unsigned char *d, const char *want)
{
	char	 got[2 * SHA256_BYTES + 1];

	sha256_hex(d, SHA256_BYTES, got);
	ck_assert_str_eq(got, want);
}

START_TEST(test_sha256_vectors)
{
	unsigned char	 d[SHA256_BYTES], key[131], back[4];
	struct sha256	 c;
	const void	*parts[2];
	size_t		 lens[2], i;
	char		 a[1000];

	/* FIPS 180-4's examples (NIST CSRC "SHA256.pdf"). */
	sha256("abc", 3, d);
	hex_is(d, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
	sha256("", 0, d);
	hex_is(d, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");
	sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	    56, d);
	hex_is(d, "248d6a61d20638b8e5c026930c3e6039"
	    "a33ce45964ff2167f6ecedd419db06c1");
	memset(a, 'a', sizeof(a));
	sha256_init(&c);
	for (i = 0; i < 1000; i++)
		sha256_update(&c, a, sizeof(a));
	sha256_final(&c, d);
	hex_is(d, "cdc76e5c9914fb9281a1c7e284d73e67"
	    "f1809a48a497200e046d39ccc7112cd0");

	/* HMAC-SHA256: RFC 4231's cases 1, 2 and 6 (a key over a block). */
	memset(key, 0x0b, 20);
	parts[0] = "Hi There";
	lens[0] = 8;
	hmac_sha256(key, 20, 1, parts, lens, d);
	hex_is(d, "b0344c61d8db38535ca8afceaf0bf12b"
	    "881dc200c9833da726e9376c2e32cff7");
	parts[0] = "what do ya ";
	lens[0] = 11;
	parts[1] = "want for nothing?";
	lens[1] = 17;
	hmac_sha256("Jefe", 4, 2, parts, lens, d);
	hex_is(d, "5bdcc146bf60754e6a042426089575c7"
	    "5a003f089d2739839dec58b964ec3843");
	memset(key, 0xaa, sizeof(key));
	parts[0] = "Test Using Larger Than Block-Size Key - Hash Key First";
	lens[0] = strlen(parts[0]);
	hmac_sha256(key, sizeof(key), 1, parts, lens, d);
	hex_is(d, "60e431591ee0b67f0d8a26aacbf5b77f"
	    "8e0bc6213728c5140546040f0ee37f54");

	ck_assert(sha256_equal("abcd", "abcd", 4));
	ck_assert(!sha256_equal("abcd", "abce", 4));
	ck_assert_int_eq(sha256_unhex("00fF7a10", 8, back, 4), 0);
	ck_assert(back[1] == 0xff && back[2] == 0x7a);
	ck_assert_int_eq(sha256_unhex("00fg7a10", 8, back, 4), -1);
	ck_assert_int_eq(sha256_unhex("00f", 3, back, 4), -1);
}
END_TEST

/* --- links --- */

START_TEST(test_handshake_and_lines)
{
	struct lis	 L = { .mode = ECHO };
	struct org	 O;
	struct res	 r1, r2;

	pick_addr();
	lis_start(&L, SECRET, 0);
	org_new(&O, SECRET, 0);
	ck_assert(!peer_out_up(O.po));
	ck_assert_str_eq(peer_out_addr(O.po), addr);
	ck_assert(req(&O, "{\"cmd\":\"STATS\"}", &r1) != 0);
	ck_assert(req(&O, " {} ", &r2) != 0);
	RUN_UNTIL(r1.done && r2.done, 3000);
	ck_assert(!r1.failed && !r2.failed);
	ck_assert_str_eq(r1.reply, "{\"id\":1,\"cmd\":\"STATS\"}");
	ck_assert_str_eq(r2.reply, "{\"id\":2}");
	ck_assert(peer_out_up(O.po));
	ck_assert_uint_eq(O.ups, 1);
	ck_assert_str_eq(L.node, "node-a");
	ck_assert_uint_eq(peer_listener_links(L.l), 1);
	ck_assert_int_eq(log_count("link from node-a open"), 1);

	/* Not objects, and a newline inside: refused at once. */
	errno = 0;
	ck_assert(req(&O, "[1]", &r1) == 0 && errno == EINVAL);
	ck_assert(req(&O, "{\"a\":\n1}", &r1) == 0 && errno == EINVAL);

	/* A cancelled request's reply is dropped. */
	ck_assert(req(&O, "{\"n\":1}", &r1) != 0);
	peer_cancel(O.po, 3);
	ck_assert(req(&O, "{\"n\":2}", &r2) != 0);
	RUN_UNTIL(r2.done, 3000);
	run_for(50);
	ck_assert(!r1.done);

	peer_out_free(O.po);
	RUN_UNTIL(L.closed == 1, 3000);
	ck_assert_uint_eq(peer_listener_links(L.l), 0);
	peer_listener_free(L.l);
}
END_TEST

START_TEST(test_ipv6)
{
	struct lis	 L = { .mode = ECHO };
	struct org	 O;
	struct res	 r;

	pick_addr();
	snprintf(addr, sizeof(addr), "[::1]:%s", strchr(addr, ':') + 1);
	lis_start(&L, SECRET, 0);
	memset(&O, 0, sizeof(O));
	O.po = peer_out_new(loop, addr, "::1", "node-6", SECRET, SECRET_LEN,
	    0, &org_ops, &O);
	ck_assert_ptr_nonnull(O.po);
	req(&O, "{\"cmd\":\"PING\"}", &r);
	RUN_UNTIL(r.done, 3000);
	ck_assert_msg(!r.failed, "%s", r.why);
	ck_assert_str_eq(L.node, "node-6");
	ck_assert_int_eq(log_count("peer [::1]:"), 2);	/* open, up */
	peer_out_free(O.po);
	peer_listener_free(L.l);
	ck_assert_ptr_null(peer_out_new(loop, "::1:80", NULL, "n", SECRET,
	    SECRET_LEN, 0, &org_ops, &O));
	ck_assert_ptr_null(peer_out_new(loop, "localhost:80", NULL, "n",
	    SECRET, SECRET_LEN, 0, &org_ops, &O));
	ck_assert_ptr_null(peer_out_new(loop, "127.0.0.1:80", NULL, "a b",
	    SECRET, SECRET_LEN, 0, &org_ops, &O));
}
END_TEST

struct many {
	unsigned	 ok, bad;
};
struct one {
	struct many	*m;
	int		 n;
};

static void
many_cb(void *arg, const char *reply, size_t len, const char *why)
{
	struct one	*o = arg;
	char		 want[32];

	snprintf(want, sizeof(want), "\"n\":%d}", o->n);
	if (reply != NULL && len > strlen(want) &&
	    memcmp(reply + len - strlen(want), want, strlen(want)) == 0)
		o->m->ok++;
	else
		o->m->bad++;
}

START_TEST(test_pipelined_out_of_order)
{
	struct lis	 L = { .mode = REVERSE };
	struct org	 O;
	struct many	 m = { 0, 0 };
	struct one	 ones[1000];
	char		 line[64];
	int		 i;

	pick_addr();
	lis_start(&L, SECRET, 0);
	org_new(&O, SECRET, 0);
	for (i = 0; i < 1000; i++) {
		ones[i].m = &m;
		ones[i].n = i;
		snprintf(line, sizeof(line), "{\"cmd\":\"X\",\"n\":%d}", i);
		ck_assert(peer_request(O.po, line, strlen(line), many_cb,
		    &ones[i]) != 0);
	}
	RUN_UNTIL(m.ok + m.bad == 1000, 10000);
	ck_assert_uint_eq(m.ok, 1000);
	peer_out_free(O.po);
	peer_listener_free(L.l);
	free(L.held);
}
END_TEST

START_TEST(test_wrong_secret)
{
	struct lis	 L = { .mode = ECHO };
	struct org	 O;
	struct res	 r;

	pick_addr();
	lis_start(&L, SECRET, 0);
	org_new(&O, OTHER, 0);
	req(&O, "{\"cmd\":\"PING\"}", &r);
	RUN_UNTIL(r.done, 3000);
	ck_assert(r.failed);
	ck_assert_str_eq(r.why, "handshake refused (wrong secret?)");
	ck_assert_uint_eq(O.downs, 1);
	ck_assert_str_eq(O.down_why, "handshake refused (wrong secret?)");
	ck_assert_uint_eq(O.ups, 0);
	ck_assert_uint_eq(L.opened, 0);
	run_for(50);
	ck_assert_int_eq(log_count("handshake failed: wrong secret"), 1);
	ck_assert_int_eq(log_count("peer 127.0.0.1:"), 2);	/* and down */
	peer_out_free(O.po);
	peer_listener_free(L.l);
}
END_TEST

START_TEST(test_secret_file)
{
	unsigned char	 s[PEER_SECRET_MAX];
	char		 path[128], err[256];
	size_t		 len;

	snprintf(path, sizeof(path), "/tmp/check_peer.%ld.secret",
	    (long)getpid());
	tl_write_file(path, "%s", "0123456789abcdef0123456789abcdef\n");
	chmod(path, 0644);
	ck_assert_int_eq(peer_secret_load(path, s, &len, err, sizeof(err)),
	    -1);
	ck_assert_msg(strstr(err, "mode 0644") != NULL, "%s", err);
	chmod(path, 0600);
	ck_assert_int_eq(peer_secret_load(path, s, &len, err, sizeof(err)), 0);
	ck_assert_uint_eq(len, 33);
	chmod(path, 0400);
	ck_assert_int_eq(peer_secret_load(path, s, &len, err, sizeof(err)), 0);
	unlink(path);
	tl_write_file(path, "%s", "short");
	chmod(path, 0600);
	ck_assert_int_eq(peer_secret_load(path, s, &len, err, sizeof(err)),
	    -1);
	ck_assert_msg(strstr(err, "5 bytes") != NULL, "%s", err);
	unlink(path);
	ck_assert_int_eq(peer_secret_load(path, s, &len, err, sizeof(err)),
	    -1);
	ck_assert_int_eq(peer_secret_load("/tmp", s, &len, err, sizeof(err)),
	    -1);
}
END_TEST

START_TEST(test_silent_listener)
{
	struct sockaddr_in	 sin;
	socklen_t		 sl = sizeof(sin);
	struct org		 O;
	struct res		 r;
	long long		 t0;
	int			 fd = socket(AF_INET, SOCK_STREAM, 0);

	/* The kernel completes the connections; nobody ever speaks. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sin.sin_port));
	peer_set_handshake_ms(300);
	org_new(&O, SECRET, 0);
	/* The handshake timer counts from the loop's cached time: fresh,
	 * or a loaded machine makes it look early. */
	ev_now_update(loop);
	t0 = tl_now_ms();
	req(&O, "{}", &r);
	RUN_UNTIL(r.done, 3000);
	ck_assert(r.failed);
	ck_assert_msg(tl_now_ms() - t0 >= 290 && tl_now_ms() - t0 < 1000,
	    "%lld ms", tl_now_ms() - t0);
	ck_assert_str_eq(r.why, "no handshake in 300 ms");
	/* In backoff: the next one fails fast, outside peer_request. */
	req(&O, "{}", &r);
	ck_assert(!r.done);
	RUN_UNTIL(r.done, 50);
	ck_assert_msg(strncmp(r.why, "peer 127.0.0.1:", 15) == 0 &&
	    strstr(r.why, " unreachable: no handshake") != NULL, "%s", r.why);
	peer_out_free(O.po);
	close(fd);
}
END_TEST

/* A listener in a child of ours, so that it can be stopped. */
static pid_t
child_listener(int64_t idle_ms)
{
	struct lis	 L = { .mode = ECHO };
	pid_t		 pid;
	int		 p[2];
	char		 c;

	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		ev_loop_destroy(loop);
		loop = ev_loop_new(EVFLAG_AUTO);
		lis_start(&L, SECRET, idle_ms);
		(void)write(p[1], "r", 1);
		ev_run(loop, 0);
		_exit(0);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

START_TEST(test_stopped_peer)
{
	struct org	 O;
	struct res	 r, r2;
	long long	 t0;
	pid_t		 pid;

	pick_addr();
	pid = child_listener(0);
	org_new(&O, SECRET, 200);
	req(&O, "{\"cmd\":\"X\"}", &r);
	RUN_UNTIL(r.done, 3000);
	ck_assert(!r.failed);
	/* Idle a while: PINGs keep it up. */
	run_for(700);
	ck_assert(peer_out_up(O.po));
	ck_assert_uint_eq(O.downs, 0);

	kill(pid, SIGSTOP);
	t0 = tl_now_ms();
	req(&O, "{\"cmd\":\"X\"}", &r);
	RUN_UNTIL(r.done, 3000);
	ck_assert(r.failed);
	ck_assert_msg(tl_now_ms() - t0 <= 2 * 200 + 400, "%lld ms",
	    tl_now_ms() - t0);
	ck_assert_msg(strncmp(r.why, "no answer in ", 13) == 0, "%s", r.why);
	ck_assert_uint_eq(O.downs, 1);

	/* Idle, stopped: the PING goes unanswered. */
	kill(pid, SIGCONT);
	run_for(200);
	req(&O, "{\"cmd\":\"X\"}", &r);
	RUN_UNTIL(r.done, 3000);
	ck_assert(!r.failed);
	ck_assert_uint_eq(O.ups, 2);
	kill(pid, SIGSTOP);
	t0 = tl_now_ms();
	RUN_UNTIL(O.downs == 2, 3000);
	ck_assert_msg(tl_now_ms() - t0 <= 3 * 200 + 400, "%lld ms",
	    tl_now_ms() - t0);
	(void)r2;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	peer_out_free(O.po);
}
END_TEST

START_TEST(test_listener_idle_close)
{
	struct lis	 L = { .mode = ECHO };
	struct org	 O, P;
	struct res	 r;

	pick_addr();
	lis_start(&L, SECRET, 300);
	org_new(&O, SECRET, 0);		/* never PINGs */
	req(&O, "{}", &r);
	RUN_UNTIL(r.done, 3000);
	ck_assert(!r.failed);
	RUN_UNTIL(O.downs == 1, 1000);
	ck_assert_str_eq(L.closed_why, "idle");
	ck_assert_str_eq(O.down_why, "closed by the peer");

	org_new(&P, SECRET, 100);	/* idle_ms / 3 */
	req(&P, "{}", &r);
	RUN_UNTIL(r.done, 3000);
	ck_assert(!r.failed);
	run_for(1000);
	ck_assert_uint_eq(P.downs, 0);
	ck_assert_uint_eq(L.closed, 1);
	ck_assert_uint_eq(peer_listener_links(L.l), 1);
	peer_out_free(O.po);
	peer_out_free(P.po);
	peer_listener_free(L.l);
}
END_TEST

START_TEST(test_conns_max)
{
	struct lis	 L = { .mode = ECHO };
	struct org	*O = calloc(PEER_CONNS_MAX + 1, sizeof(*O));
	struct res	*r = calloc(PEER_CONNS_MAX + 1, sizeof(*r));
	int		 i, ok = 0;

	pick_addr();
	lis_start(&L, SECRET, 0);
	for (i = 0; i < PEER_CONNS_MAX; i++) {
		org_new(&O[i], SECRET, 0);
		req(&O[i], "{}", &r[i]);
	}
	for (i = 0; i < PEER_CONNS_MAX; i++)
		RUN_UNTIL(r[i].done, 5000);
	for (i = 0; i < PEER_CONNS_MAX; i++)
		ok += !r[i].failed;
	ck_assert_int_eq(ok, PEER_CONNS_MAX);
	org_new(&O[i], SECRET, 0);
	req(&O[i], "{}", &r[i]);
	RUN_UNTIL(r[i].done, 3000);
	ck_assert(r[i].failed);
	ck_assert_int_eq(log_count("links already"), 1);
	ck_assert_uint_eq(peer_listener_links(L.l), PEER_CONNS_MAX);
	for (i = 0; i <= PEER_CONNS_MAX; i++)
		peer_out_free(O[i].po);
	peer_listener_free(L.l);
	free(O);
	free(r);
}
END_TEST

/* Some bytes from fd, the loop turning meanwhile. */
static size_t
raw_recv(int fd, char *buf, size_t size)
{
	long long	 dl = tl_now_ms() + 3000;
	ssize_t		 n;

	while ((n = recv(fd, buf, size, 0)) <= 0) {
		ck_assert_msg(n == -1 && errno == EAGAIN &&
		    tl_now_ms() < dl, "raw recv: %zd", n);
		ev_run(loop, EVRUN_ONCE);
	}
	return (size_t)n;
}

/* A raw origin: the handshake by hand, then what the case writes. */
static int
raw_origin(void)
{
	struct sockaddr_in	 sin;
	unsigned char		 ns[32], nc[32], m[SHA256_BYTES];
	const void		*parts[3];
	size_t			 lens[3], got = 0;
	char			 buf[256], out[256], hex[65];
	int			 fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t			 n;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	sin.sin_port = htons(atoi(strchr(addr, ':') + 1));
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (got == 0 || buf[got - 1] != '\n') {
		got += raw_recv(fd, buf + got, sizeof(buf) - got);
	}
	ck_assert_uint_eq(got, 13 + 64 + 1);
	ck_assert_int_eq(sha256_unhex(buf + 13, 64, ns, 32), 0);
	memset(nc, 7, sizeof(nc));
	parts[0] = "poold-peer 1 origin\n";
	lens[0] = strlen(parts[0]);
	parts[1] = ns;
	parts[2] = nc;
	lens[1] = lens[2] = 32;
	hmac_sha256(SECRET, SECRET_LEN, 3, parts, lens, m);
	sha256_hex(nc, 32, hex);
	n = snprintf(out, sizeof(out), "%s ", hex);
	sha256_hex(m, 32, hex);
	n += snprintf(out + n, sizeof(out) - n, "%s raw\n", hex);
	ck_assert_int_eq(send(fd, out, n, 0), n);
	got = 0;
	while (got == 0 || buf[got - 1] != '\n') {
		got += raw_recv(fd, buf + got, sizeof(buf) - got);
	}
	ck_assert(strncmp(buf, "ok ", 3) == 0);
	return fd;
}

START_TEST(test_line_too_long)
{
	struct lis	 L = { .mode = ECHO };
	struct org	 O;
	struct res	 r;
	char		*big = malloc(PEER_LINE_MAX + 2);
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd;

	pick_addr();
	lis_start(&L, SECRET, 0);
	fd = raw_origin();
	RUN_UNTIL(L.opened == 1, 3000);
	memset(big, 'x', PEER_LINE_MAX + 2);
	while (off < PEER_LINE_MAX + 2 && L.closed == 0) {
		n = send(fd, big + off, PEER_LINE_MAX + 2 - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		ev_run(loop, EVRUN_NOWAIT);
	}
	RUN_UNTIL(L.closed == 1, 3000);
	ck_assert_str_eq(L.closed_why, "line too long");
	ck_assert_uint_eq(L.lines, 0);
	close(fd);
	free(big);

	/* And a reply too long ends the origin's link. */
	L.mode = BIG;
	org_new(&O, SECRET, 0);
	req(&O, "{}", &r);
	RUN_UNTIL(r.done, 5000);
	ck_assert(r.failed);
	ck_assert_str_eq(r.why, "line too long");
	peer_out_free(O.po);
	peer_listener_free(L.l);
}
END_TEST

START_TEST(test_half_lines)
{
	struct lis	 L = { .mode = HOLD };
	int		 fd;

	pick_addr();
	lis_start(&L, SECRET, 0);
	fd = raw_origin();
	RUN_UNTIL(L.opened == 1, 3000);
	ck_assert_int_eq(send(fd, "{\"cmd\":\"ST", 10, 0), 10);
	run_for(100);
	ck_assert_uint_eq(L.lines, 0);
	ck_assert_int_eq(send(fd, "ATS\"}\n{\"a\"", 11, 0), 11);
	RUN_UNTIL(L.lines == 1, 3000);
	ck_assert_str_eq(L.last, "{\"cmd\":\"STATS\"}");
	close(fd);
	RUN_UNTIL(L.closed == 1, 3000);
	ck_assert_str_eq(L.closed_why, "closed mid-line");
	ck_assert_uint_eq(L.lines, 1);
	peer_listener_free(L.l);
}
END_TEST

START_TEST(test_reconnect)
{
	struct lis	 L = { .mode = ECHO };
	struct org	 O;
	struct res	 r;
	bool		 fast_fail = false;
	long long	 t0;

	pick_addr();
	lis_start(&L, SECRET, 0);
	org_new(&O, SECRET, 1000);
	req(&O, "{}", &r);
	RUN_UNTIL(r.done, 3000);
	ck_assert(!r.failed);
	peer_listener_free(L.l);
	RUN_UNTIL(O.downs == 1, 3000);
	ck_assert(!peer_out_up(O.po));

	memset(&L, 0, sizeof(L));
	L.mode = ECHO;
	lis_start(&L, SECRET, 0);
	t0 = tl_now_ms();
	for (;;) {
		req(&O, "{}", &r);
		RUN_UNTIL(r.done, 3000);
		if (!r.failed)
			break;
		fast_fail |= strstr(r.why, "unreachable") != NULL;
		ck_assert(tl_now_ms() - t0 < 3000);
		run_for(20);
	}
	ck_assert(peer_out_up(O.po));
	ck_assert_uint_eq(O.ups, 2);
	(void)fast_fail;
	peer_out_free(O.po);
	peer_listener_free(L.l);
}
END_TEST

static Suite *
peer_suite(void)
{
	Suite	*s = suite_create("peer");
	TCase	*tc = tcase_create("peer");

	tcase_set_timeout(tc, TL_TEST_TIMEOUT_S);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_sha256_vectors);
	tcase_add_test(tc, test_handshake_and_lines);
	tcase_add_test(tc, test_ipv6);
	tcase_add_test(tc, test_pipelined_out_of_order);
	tcase_add_test(tc, test_wrong_secret);
	tcase_add_test(tc, test_secret_file);
	tcase_add_test(tc, test_silent_listener);
	tcase_add_test(tc, test_stopped_peer);
	tcase_add_test(tc, test_listener_idle_close);
	tcase_add_test(tc, test_conns_max);
	tcase_add_test(tc, test_line_too_long);
	tcase_add_test(tc, test_half_lines);
	tcase_add_test(tc, test_reconnect);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(peer_suite(), CK_NORMAL);
}
