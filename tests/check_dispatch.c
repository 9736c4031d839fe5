/*
 * check_dispatch.c — the command dispatcher driven with a fake supervisor.
 *
 * No socket, no fork, no clock: a session whose send() keeps the reply
 * lines, a real pool whose spawn and stop only count, and stand-ins for
 * the four daemon functions dispatch.c calls.  This is the harness a
 * fuzzer of decode → dispatch → reply can reuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "poold.h"
#include "testlib.h"

#define MB		(UINT64_C(1) << 20)
#define MAX_REPLIES	16

/* --- the fake supervisor --- */

static struct fake {
	struct config		 conf;
	struct daemon		 d;
	struct session		 s;
	pool_ms			 now;
	unsigned		 spawns, stops;
	struct pool_server	*spawned;	/* the last one */
	json_t			*replies[MAX_REPLIES];
	size_t			 nreplies;
	size_t			 seen;		/* replies looked at */
} F;

pool_ms
daemon_now(void)
{
	return F.now;
}

struct pool_model *
daemon_model(struct daemon *d, const char *name)
{
	return pool_model_find(d->pool, name);
}

/* The catalog has no file that goes here: EVICT finds what ACQUIRE does. */
struct pool_model *
catalog_model_running(struct daemon *d, const char *name)
{
	return NULL;
}

json_t *
daemon_stats(struct daemon *d)
{
	return json_pack("{s:i}", "running", (int)d->pool->nservers);
}

/* No cluster here (d->cluster is NULL): cluster.c stays out of the link. */
int
cluster_acquire(struct session *s, const struct proto_request *req)
{
	return 0;
}

int
cluster_lease_cmd(struct session *s, const struct proto_request *req)
{
	return 0;
}

void
cluster_session_end(struct session *s)
{
}

/* The commands of other files: only their dispatching is tested here. */
void
cmd_subscribe(struct session *s, const struct proto_request *req)
{
	cmd_reply_json(s, req, json_pack("{s:b}", "subscribed", 1));
}

void
cmd_metrics(struct session *s, const struct proto_request *req)
{
	cmd_reply_json(s, req, json_pack("{s:s}", "text", ""));
}

void
cmd_reload(struct session *s, const struct proto_request *req)
{
	cmd_reply_json(s, req, json_object());
}

void
cmd_pin(struct session *s, const struct proto_request *req, bool pin)
{
	cmd_reply_json(s, req, json_pack("{s:b}", "pinned", pin));
}

void
events_session_end(struct session *s)
{
}

const char *
cluster_name(const struct cluster *cl)
{
	return NULL;
}

json_t *
daemon_models(struct daemon *d)
{
	return json_pack("{s:[]}", "models");
}

static int
fake_spawn(void *ctx, struct pool_server *srv, char *err, size_t len)
{
	srv->pid = 1000 + (long)++F.spawns;
	F.spawned = srv;
	return 0;
}

static void
fake_stop(void *ctx, struct pool_server *srv)
{
	F.stops++;
}

static const struct pool_ops fake_ops = {
	.spawn = fake_spawn,
	.stop = fake_stop,
	.answer = dispatch_answer,
};

/* session.send: every reply must be one JSON object and one line. */
static void
fake_send(struct session *s, char *line)
{
	json_error_t je;
	json_t *o;

	ck_assert_ptr_nonnull(line);
	ck_assert_msg(strchr(line, '\n') == line + strlen(line) - 1,
	    "not one line: %s", line);
	o = json_loads(line, 0, &je);
	ck_assert_msg(json_is_object(o), "not an object: %s", line);
	ck_assert_uint_lt(F.nreplies, MAX_REPLIES);
	F.replies[F.nreplies++] = o;
	free(line);
}

static void
setup(void)
{
	struct pool_limits lim;

	memset(&F, 0, sizeof(F));
	log_init("check_dispatch", false);
	config_defaults(&F.conf);
	F.now = 1000000;
	memset(&lim, 0, sizeof(lim));
	lim.budget = 64 * MB;
	lim.max_servers = 4;
	lim.port_min = 9000;
	lim.port_max = 9009;
	lim.start_timeout = 10000;
	lim.max_waiters = 100;
	F.d.conf = &F.conf;
	F.d.pool = pool_new(&lim, &fake_ops, &F.d, F.now);
	ck_assert_ptr_nonnull(F.d.pool);
	ck_assert_ptr_nonnull(pool_model_add(F.d.pool, "a", 8 * MB, 60000));
	session_init(&F.s, &F.d, 1, fake_send);
	/* Someone who is neither poold's user nor root. */
	F.s.peer.known = true;
	F.s.peer.uid = geteuid() == 4242 ? 4243 : 4242;
	F.s.peer.gid = 4242;
}

static void
teardown(void)
{
	size_t i;

	session_end(&F.s);
	pool_free(F.d.pool);
	config_free(&F.conf);
	for (i = 0; i < F.nreplies; i++)
		json_decref(F.replies[i]);
}

static void
line(const char *text)
{
	dispatch_line(&F.s, text, strlen(text));
}

/* The one new reply since the last look; the fake keeps ownership. */
static json_t *
reply_at(int lineno)
{
	ck_assert_msg(F.nreplies == F.seen + 1, "line %d: %zu replies, "
	    "expected 1", lineno, F.nreplies - F.seen);
	return F.replies[F.seen++];
}
#define reply()	reply_at(__LINE__)

static void
expect_error(json_t *r, const char *code)
{
	const char *got = json_string_value(json_object_get(r, "error"));

	ck_assert(json_is_false(json_object_get(r, "ok")));
	ck_assert_msg(got != NULL && strcmp(got, code) == 0,
	    "error %s, expected %s", got, code);
}

static const char *
message(json_t *r)
{
	const char *m = json_string_value(json_object_get(r, "message"));

	return m != NULL ? m : "(no message)";
}

/* Not json_is_true(json_object_get(reply(), …)): it evaluates twice. */
static void
expect_ok(json_t *r)
{
	ck_assert_msg(json_is_true(json_object_get(r, "ok")), "%s",
	    message(r));
}

/* --- tests --- */

START_TEST(test_ping_and_bad_lines)
{
	json_t *r;

	line("{\"cmd\":\"PING\",\"id\":1}");
	r = reply();
	ck_assert(json_is_true(json_object_get(r, "ok")));
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(r, "version")),
	    POOLD_VERSION);

	line("{\"cmd\":\"ACQUIRE\",\"id\":7}");	/* no model */
	r = reply();
	expect_error(r, "bad_request");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 7);

	line("{\"cmd\":\"FROB\"}");
	expect_error(reply(), "unknown_command");
	line("{\"cmd\":\"ACQUIRE\",\"model\":\"nope\"}");
	expect_error(reply(), "unknown_model");
	line("[1,2");
	expect_error(reply(), "bad_request");
}
END_TEST

/* ACQUIRE waits for the start; RELEASE ends the lease; idle again. */
START_TEST(test_acquire_release)
{
	json_t *r;
	char text[128];
	json_int_t lease;

	ck_assert(session_idle(&F.s));
	line("{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"id\":\"x\"}");
	ck_assert_uint_eq(F.spawns, 1);
	ck_assert_uint_eq(F.nreplies, 0);	/* waits for ready */
	ck_assert_uint_eq(F.s.npending, 1);
	ck_assert(!session_idle(&F.s));
	F.now += 50;
	pool_ready(F.d.pool, F.now, F.spawned);
	r = reply();
	ck_assert(json_is_true(json_object_get(r, "ok")));
	ck_assert_str_eq(json_string_value(json_object_get(r, "id")), "x");
	ck_assert(json_is_true(json_object_get(r, "cold")));
	lease = json_integer_value(json_object_get(r, "lease"));
	ck_assert_int_gt(lease, 0);
	ck_assert_uint_eq(F.s.npending, 0);
	ck_assert(!session_idle(&F.s));		/* it holds a lease */

	snprintf(text, sizeof(text), "{\"cmd\":\"RELEASE\",\"lease\":%"
	    JSON_INTEGER_FORMAT "}", lease);
	line(text);
	expect_ok(reply());
	ck_assert(session_idle(&F.s));
	line(text);
	expect_error(reply(), "not_found");
}
END_TEST

START_TEST(test_max_pending)
{
	F.conf.max_pending = 1;
	line("{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"id\":1}");
	ck_assert_uint_eq(F.nreplies, 0);
	line("{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"id\":2}");
	expect_error(reply(), "busy");
	line("{\"cmd\":\"STATS\",\"id\":3}");	/* still served */
	expect_ok(reply());
}
END_TEST

START_TEST(test_shutting_down)
{
	F.d.stopping = true;
	line("{\"cmd\":\"PING\",\"id\":1}");
	expect_error(reply(), "shutting_down");
}
END_TEST

/* EVICT: forbidden to strangers, whatever the model. */
START_TEST(test_evict_forbidden)
{
	char want[64];
	json_t *r;

	line("{\"cmd\":\"EVICT\",\"model\":\"a\",\"id\":1}");
	r = reply();
	expect_error(r, "forbidden");
	snprintf(want, sizeof(want), "you are uid %u gid 4242",
	    (unsigned)F.s.peer.uid);
	ck_assert_msg(strstr(message(r), want) != NULL, "%s", message(r));
	ck_assert_msg(strstr(message(r), "EVICT needs") != NULL, "%s",
	    message(r));

	F.s.peer.known = false;	/* a system that would not say */
	line("{\"cmd\":\"EVICT\",\"model\":\"nope\"}");
	expect_error(reply(), "forbidden");

	/* Everything else is anyone's. */
	line("{\"cmd\":\"MODELS\"}");
	expect_ok(reply());
	ck_assert_uint_eq(F.stops, 0);
}
END_TEST

/* Allowed: poold's user, root, admin_group as primary or extra group. */
START_TEST(test_evict_allowed)
{
	gid_t extra[2] = { 10, 4343 };
	json_t *r;

	F.s.peer.uid = geteuid();
	line("{\"cmd\":\"EVICT\",\"model\":\"a\"}");
	expect_error(reply(), "not_found");	/* allowed; nothing runs */

	F.s.peer.uid = 0;
	line("{\"cmd\":\"EVICT\",\"model\":\"a\"}");
	expect_error(reply(), "not_found");

	F.s.peer.uid = geteuid() == 4242 ? 4243 : 4242;
	F.conf.admin_group = strdup("pool-admins");
	F.conf.admin_gid = 4242;		/* the peer's primary gid */
	line("{\"cmd\":\"EVICT\",\"model\":\"a\"}");
	expect_error(reply(), "not_found");

	F.conf.admin_gid = 4343;		/* a supplementary one */
	line("{\"cmd\":\"EVICT\",\"model\":\"a\"}");
	r = reply();
	expect_error(r, "forbidden");
	ck_assert_msg(strstr(message(r), "group pool-admins") != NULL, "%s",
	    message(r));
	F.s.peer.groups = malloc(sizeof(extra));
	memcpy(F.s.peer.groups, extra, sizeof(extra));
	F.s.peer.ngroups = 2;
	line("{\"cmd\":\"EVICT\",\"model\":\"a\"}");
	expect_error(reply(), "not_found");
}
END_TEST

/* A session that ends with a waiting request is never answered. */
START_TEST(test_end_with_pending)
{
	line("{\"cmd\":\"ACQUIRE\",\"model\":\"a\",\"id\":1}");
	ck_assert_uint_eq(F.s.npending, 1);
	session_end(&F.s);
	ck_assert_uint_eq(F.s.npending, 0);
	ck_assert(session_idle(&F.s));
	pool_ready(F.d.pool, F.now, F.spawned);
	ck_assert_uint_eq(F.nreplies, 0);
	session_init(&F.s, &F.d, 2, fake_send);	/* for teardown */
}
END_TEST

/* Sends text on session s; the reply is the next one kept. */
static void
line_on(struct session *s, const char *text)
{
	dispatch_line(s, text, strlen(text));
}

/*
 * Leases are their session's: another session's RELEASE and LEASE get
 * not_found, word for word what a lease that never was gets.  Once the
 * server is gone, LEASE answers lease_lost and keeps the lease, RELEASE
 * answers lease_lost and ends it.
 */
START_TEST(test_lease_owner_and_lost)
{
	struct session other;
	json_t *r;
	char rel[128], chk[128], none[128], m1[512];
	json_int_t lease;

	session_init(&other, &F.d, 2, fake_send);
	line("{\"cmd\":\"ACQUIRE\",\"model\":\"a\"}");
	pool_ready(F.d.pool, F.now, F.spawned);
	lease = json_integer_value(json_object_get(reply(), "lease"));
	snprintf(rel, sizeof(rel), "{\"cmd\":\"RELEASE\",\"lease\":%"
	    JSON_INTEGER_FORMAT "}", lease);
	snprintf(chk, sizeof(chk), "{\"cmd\":\"LEASE\",\"lease\":%"
	    JSON_INTEGER_FORMAT "}", lease);
	snprintf(none, sizeof(none), "{\"cmd\":\"RELEASE\",\"lease\":%"
	    JSON_INTEGER_FORMAT "}", lease + 1000);

	line_on(&other, rel);
	r = reply();
	expect_error(r, "not_found");
	snprintf(m1, sizeof(m1), "%s", message(r));
	line_on(&other, chk);
	expect_error(reply(), "not_found");
	line_on(&other, none);
	r = reply();
	expect_error(r, "not_found");
	/* Same words but the number: nothing tells whose the lease is. */
	ck_assert_ptr_nonnull(strstr(m1, " on this connection"));
	ck_assert_ptr_nonnull(strstr(message(r), " on this connection"));
	ck_assert_str_eq(strstr(m1, " on this connection"),
	    strstr(message(r), " on this connection"));
	ck_assert(strncmp(m1, "no lease ", 9) == 0 &&
	    strncmp(message(r), "no lease ", 9) == 0);
	ck_assert_uint_eq(F.spawned->leases, 1);

	line(chk);
	r = reply();
	expect_ok(r);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "lease")),
	    lease);
	ck_assert_str_eq(json_string_value(json_object_get(r, "state")),
	    "ready");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "port")),
	    F.spawned->port);

	pool_exited(F.d.pool, F.now, F.spawned, "killed by signal 9");
	line(chk);
	r = reply();
	expect_error(r, "lease_lost");
	ck_assert_msg(strstr(message(r), "killed by signal 9") != NULL &&
	    strstr(message(r), "port 9000") != NULL, "%s", message(r));
	line(chk);				/* still held */
	expect_error(reply(), "lease_lost");
	ck_assert(!session_idle(&F.s));
	line_on(&other, rel);			/* still not the other's */
	expect_error(reply(), "not_found");
	line(rel);
	r = reply();
	expect_error(r, "lease_lost");
	ck_assert_msg(strstr(message(r), "has ended") != NULL, "%s",
	    message(r));
	ck_assert(session_idle(&F.s));
	line(rel);
	expect_error(reply(), "not_found");
	session_end(&other);
}
END_TEST

static Suite *
dispatch_suite(void)
{
	Suite *s = suite_create("dispatch");
	TCase *tc = tcase_create("commands");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ping_and_bad_lines);
	tcase_add_test(tc, test_acquire_release);
	tcase_add_test(tc, test_max_pending);
	tcase_add_test(tc, test_shutting_down);
	tcase_add_test(tc, test_evict_forbidden);
	tcase_add_test(tc, test_evict_allowed);
	tcase_add_test(tc, test_end_with_pending);
	tcase_add_test(tc, test_lease_owner_and_lost);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(dispatch_suite(), CK_NORMAL);
}
