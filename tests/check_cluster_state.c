/*
 * check_cluster_state.c — the cluster mirror and cs_place(), driven
 * directly: keys and values as etcd would give them, times as numbers.
 * No fork, no socket, no clock (a NOFORK suite).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "cluster_state.h"

#define P	"/poold/v1/test"
#define G	(UINT64_C(1) << 30)
#define NOW	((int64_t)1700000000000)

static struct cluster_state	*cs;
static int64_t			 rev;

static void
setup(void)
{
	ck_assert_ptr_nonnull(cs = cs_new(P));
	cs_read_begin(cs);
	cs_read_end(cs, 100);
	rev = 100;
}

static void
teardown(void)
{
	cs_free(cs);
	cs = NULL;
}

/* --- helpers: each puts one key as a watch event at the next revision --- */

static enum cs_event_result
ev(const char *key, const char *value)
{
	return cs_event(cs, key, value, ++rev);
}

/* A node with room free + evictable (GiB) and models "a,b,c". */
static enum cs_event_result
node(const char *name, unsigned free_g, unsigned evict_g, const char *models)
{
	char key[256], val[8192], list[8000] = "", *tok, *save, *m;
	size_t len = 0;

	if ((m = strdup(models)) == NULL)
		abort();
	for (tok = strtok_r(m, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save))
		len += (size_t)snprintf(list + len, sizeof(list) - len,
		    "%s\"%s\"", len ? "," : "", tok);
	free(m);
	snprintf(key, sizeof(key), P "/nodes/%s", name);
	snprintf(val, sizeof(val), "{\"addr\":\"10.0.0.1:7070\",\"host\":"
	    "\"10.0.0.1\",\"budget\":%" PRIu64 ",\"used\":0,\"free\":%" PRIu64
	    ",\"evictable\":%" PRIu64 ",\"models\":[%s],\"version\":\"0.1.0\"}",
	    (uint64_t)100 * G, (uint64_t)free_g * G, (uint64_t)evict_g * G,
	    list);
	return ev(key, val);
}

static enum cs_event_result
server(const char *nd, const char *model, const char *state)
{
	char key[256], val[128];

	snprintf(key, sizeof(key), P "/servers/%s/%s", nd, model);
	snprintf(val, sizeof(val), "{\"state\":\"%s\",\"port\":8001,"
	    "\"mem\":1024}", state);
	return ev(key, val);
}

static enum cs_event_result
claim(const char *model, const char *nd, int64_t until)
{
	char key[256], *val = cs_encode_claim(nd, nd, until);
	enum cs_event_result r;

	ck_assert_ptr_nonnull(val);
	snprintf(key, sizeof(key), P "/claims/%s", model);
	r = ev(key, val);
	free(val);
	return r;
}

static enum cs_event_result
backoff(const char *model, const char *nd, int64_t until, const char *error)
{
	char key[256], *val = cs_encode_backoff(until, error);
	enum cs_event_result r;

	ck_assert_ptr_nonnull(val);
	snprintf(key, sizeof(key), P "/backoff/%s/%s", model, nd);
	r = ev(key, val);
	free(val);
	return r;
}

static enum cs_event_result
del(const char *fmt, const char *a, const char *b)
{
	char key[256];

	snprintf(key, sizeof(key), fmt, a, b);
	return ev(key, NULL);
}

static struct cs_placement
place(const char *model, const char *self, bool has, bool admit,
    unsigned need_g)
{
	struct cs_place_query q = { model, self, has, admit,
	    (uint64_t)need_g * G, NOW };
	struct cs_placement pl;

	cs_place(cs, &q, &pl);
	return pl;
}

/* pl is kind with exactly the nodes of the list "a,b,c" ("" none). */
static void
expect(const struct cs_placement *pl, enum cs_place_kind kind,
    const char *nodes)
{
	char got[4096] = "";
	size_t len = 0;

	for (size_t i = 0; i < pl->nnodes; i++)
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s",
		    i ? "," : "", pl->nodes[i]);
	ck_assert_int_eq(pl->kind, kind);
	ck_assert_str_eq(got, nodes);
}

/* --- the mirror --- */

START_TEST(read_then_events)
{
	const struct cs_node *n;
	const struct cs_server *out[4];
	char *v;

	cs_read_begin(cs);
	cs_read_kv(cs, P "/nodes/a", "{\"addr\":\"h:1\",\"host\":\"h\","
	    "\"budget\":10,\"used\":1,\"free\":9,\"evictable\":0,"
	    "\"models\":[\"zeta\",\"alpha\",\"alpha\"]}");
	cs_read_kv(cs, P "/servers/a/alpha", "{\"state\":\"ready\","
	    "\"port\":9000,\"mem\":5}");
	cs_read_end(cs, 500);
	ck_assert_int_eq(cs_revision(cs), 500);
	ck_assert_uint_eq(cs_nnodes(cs), 1);
	ck_assert_ptr_nonnull(n = cs_node(cs, "a"));
	ck_assert_int_eq(n->mod_revision, 500);
	ck_assert_uint_eq(n->free, 9);
	ck_assert_str_eq(n->addr, "h:1");
	ck_assert_uint_eq(n->nmodels, 2);	/* sorted, no repeats */
	ck_assert_str_eq(n->models[0], "alpha");
	ck_assert_str_eq(n->models[1], "zeta");
	ck_assert(cs_node_has_model(n, "zeta"));
	ck_assert(!cs_node_has_model(n, "beta"));
	ck_assert_uint_eq(cs_servers_of(cs, "alpha", out, 4), 1);
	ck_assert_int_eq(out[0]->port, 9000);
	ck_assert_int_eq(out[0]->state, CS_READY);
	ck_assert_str_eq(out[0]->node, "a");

	/* events at or below the read's revision: stale */
	v = cs_encode_server(CS_STARTING, 9001, 7);
	ck_assert_int_eq(cs_event(cs, P "/servers/a/zeta", v, 500), CS_STALE);
	ck_assert_int_eq(cs_event(cs, P "/servers/a/zeta", v, 499), CS_STALE);
	ck_assert_uint_eq(cs_nservers(cs), 1);
	ck_assert_int_eq(cs_event(cs, P "/servers/a/zeta", v, 501), CS_APPLIED);
	ck_assert_uint_eq(cs_nservers(cs), 2);
	/* another key of the same revision (one txn): applied */
	ck_assert_int_eq(cs_event(cs, P "/servers/a/alpha", v, 501),
	    CS_APPLIED);
	ck_assert_int_eq(cs_servers_of(cs, "alpha", out, 4), 1);
	ck_assert_int_eq(out[0]->port, 9001);
	/* below the last event's: stale */
	ck_assert_int_eq(cs_event(cs, P "/servers/a/alpha", NULL, 500),
	    CS_STALE);
	ck_assert_int_eq(cs_revision(cs), 501);
	free(v);

	/* a new full read forgets everything before it */
	cs_read_begin(cs);
	cs_read_end(cs, 600);
	ck_assert_uint_eq(cs_nnodes(cs), 0);
	ck_assert_uint_eq(cs_nservers(cs), 0);
	ck_assert_int_eq(cs_revision(cs), 600);
}
END_TEST

START_TEST(deletes)
{
	const struct cs_server *out[4];

	ck_assert_int_eq(node("a", 10, 0, "m"), CS_APPLIED);
	ck_assert_int_eq(node("b", 10, 0, "m"), CS_APPLIED);
	ck_assert_int_eq(server("a", "m", "ready"), CS_APPLIED);
	ck_assert_int_eq(server("b", "m", "ready"), CS_APPLIED);
	ck_assert_int_eq(claim("m", "a", NOW + 1000), CS_APPLIED);
	ck_assert_int_eq(backoff("m", "a", NOW + 1000, "boom"), CS_APPLIED);
	ck_assert_uint_eq(cs_servers_of(cs, "m", out, 4), 2);
	ck_assert_str_eq(out[0]->node, "a");
	ck_assert_str_eq(out[1]->node, "b");

	/* a's lease expires: each key deleted, all at one revision */
	rev++;
	ck_assert_int_eq(cs_event(cs, P "/nodes/a", NULL, rev), CS_APPLIED);
	ck_assert_ptr_null(cs_node(cs, "a"));
	/* meanwhile, placement ignores a's server and claim */
	{
		struct cs_placement pl = place("m", "c", false, false, 1);

		expect(&pl, CS_PLACE_READY, "b");
	}
	ck_assert_ptr_null(cs_claim(cs, "m", NOW));
	ck_assert_int_eq(cs_event(cs, P "/servers/a/m", NULL, rev), CS_APPLIED);
	ck_assert_int_eq(cs_event(cs, P "/claims/m", NULL, rev), CS_APPLIED);
	ck_assert_int_eq(cs_event(cs, P "/backoff/m/a", NULL, rev),
	    CS_APPLIED);
	ck_assert_uint_eq(cs_servers_of(cs, "m", out, 4), 1);
	ck_assert_str_eq(out[0]->node, "b");
	/* deleting what is not there is harmless */
	ck_assert_int_eq(del(P "/servers/%s/%s", "zz", "m"), CS_APPLIED);
	ck_assert_int_eq(del(P "/nodes/%s%s", "zz", ""), CS_APPLIED);
	ck_assert_uint_eq(cs_nnodes(cs), 1);
	ck_assert_uint_eq(cs_nservers(cs), 1);
}
END_TEST

START_TEST(invalid_values)
{
	static const char *bad_nodes[] = {
		"not json", "[1,2]", "{}", "",
		"{\"addr\":\"h:1\",\"host\":\"h\",\"budget\":-1,\"used\":0,"
		    "\"free\":0,\"evictable\":0,\"models\":[]}",
		"{\"addr\":\"h:1\",\"host\":\"h\",\"budget\":1,\"used\":0,"
		    "\"free\":0,\"evictable\":0,\"models\":[\"../x\"]}",
		"{\"addr\":\"h:1\",\"host\":\"h\",\"budget\":1,\"used\":0,"
		    "\"free\":0,\"evictable\":0,\"models\":[\"ok\",3]}",
		"{\"addr\":\"h:1\",\"addr\":\"h:2\",\"host\":\"h\",\"budget\":1,"
		    "\"used\":0,\"free\":0,\"evictable\":0,\"models\":[]}",
	};
	const struct cs_server *out[2];

	ck_assert_int_eq(node("a", 7, 0, "m"), CS_APPLIED);
	for (size_t i = 0; i < sizeof(bad_nodes) / sizeof(*bad_nodes); i++)
		ck_assert_int_eq(ev(P "/nodes/a", bad_nodes[i]), CS_INVALID);
	/* the entry is as it was */
	ck_assert_uint_eq(cs_node(cs, "a")->free, 7 * G);
	ck_assert(cs_node_has_model(cs_node(cs, "a"), "m"));

	ck_assert_int_eq(server("a", "m", "ready"), CS_APPLIED);
	ck_assert_int_eq(server("a", "m", "sleeping"), CS_INVALID);
	ck_assert_int_eq(ev(P "/servers/a/m", "{\"state\":\"ready\","
	    "\"port\":70000,\"mem\":1}"), CS_INVALID);
	ck_assert_int_eq(ev(P "/servers/a/m", "{\"state\":\"ready\","
	    "\"port\":80}"), CS_INVALID);
	ck_assert_uint_eq(cs_servers_of(cs, "m", out, 2), 1);
	ck_assert_int_eq(out[0]->state, CS_READY);
	ck_assert_int_eq(out[0]->port, 8001);

	ck_assert_int_eq(ev(P "/claims/m", "{\"node\":\"a b\",\"by\":\"a\","
	    "\"until\":1}"), CS_INVALID);
	ck_assert_int_eq(ev(P "/claims/m", "{\"node\":\"a\",\"by\":\"a\","
	    "\"until\":\"soon\"}"), CS_INVALID);
	ck_assert_int_eq(ev(P "/backoff/m/a", "{\"until\":1}"), CS_INVALID);
	ck_assert_ptr_null(cs_claim(cs, "m", NOW));

	/* bad names in our keys */
	ck_assert_int_eq(ev(P "/nodes/a%20b", "{}"), CS_INVALID);
	ck_assert_int_eq(ev(P "/nodes/", "{}"), CS_INVALID);
	ck_assert_int_eq(ev(P "/servers/a/.hidden", "{}"), CS_INVALID);
	ck_assert_int_eq(ev(P "/claims/-x", NULL), CS_INVALID);
	{
		char key[300];

		memset(key, 'n', sizeof(key));
		memcpy(key, P "/nodes/", strlen(P "/nodes/"));
		key[strlen(P "/nodes/") + 64] = '\0';	/* 64 > 63 */
		ck_assert_int_eq(ev(key, NULL), CS_INVALID);
	}
	ck_assert_uint_eq(cs_nnodes(cs), 1);
	/* the revision moved on all the same */
	ck_assert_int_eq(cs_revision(cs), rev);
}
END_TEST

START_TEST(unknown_keys)
{
	ck_assert_int_eq(ev(P "/other/x", "{}"), CS_UNKNOWN_KEY);
	ck_assert_int_eq(ev(P "/nodes", "{}"), CS_UNKNOWN_KEY);
	ck_assert_int_eq(ev(P "/nodes/a/extra", "{}"), CS_UNKNOWN_KEY);
	ck_assert_int_eq(ev(P "/servers/a", "{}"), CS_UNKNOWN_KEY);
	ck_assert_int_eq(ev(P "/claims/m/x", "{}"), CS_UNKNOWN_KEY);
	ck_assert_int_eq(ev(P "/backoff/m", NULL), CS_UNKNOWN_KEY);
	ck_assert_int_eq(ev(P "x/nodes/a", "{}"), CS_UNKNOWN_KEY);
	ck_assert_int_eq(ev("/elsewhere/nodes/a", "{}"), CS_UNKNOWN_KEY);
	/* unknown keys in a read are skipped too */
	cs_read_begin(cs);
	cs_read_kv(cs, P "/future/thing", "{}");
	cs_read_kv(cs, P "/nodes/bad name", "{}");
	cs_read_end(cs, 1000);
	ck_assert_uint_eq(cs_nnodes(cs), 0);
}
END_TEST

START_TEST(keys_and_values_round_trip)
{
	struct cs_node n;
	char *models[] = { "a", "b" };
	char *k, *v;

	ck_assert_ptr_null(cs_key_node(cs, "bad/name"));
	ck_assert_ptr_null(cs_key_server(cs, "a", ".m"));
	ck_assert_ptr_null(cs_key_claim(cs, ""));
	ck_assert_ptr_null(cs_key_backoff(cs, "m", ""));
	ck_assert_ptr_null(cs_encode_claim("a", "no way", 1));
	ck_assert(cs_node_name_ok("studio-a.local_2"));
	ck_assert(!cs_node_name_ok("studio+a"));

	memset(&n, 0, sizeof(n));
	snprintf(n.addr, sizeof(n.addr), "10.0.0.110:7070");
	snprintf(n.host, sizeof(n.host), "10.0.0.110");
	n.budget = 64 * G;
	n.used = 8 * G;
	n.free = 56 * G;
	n.evictable = 4 * G;
	n.models = models;
	n.nmodels = 2;
	ck_assert_ptr_nonnull(k = cs_key_node(cs, "studio-a"));
	ck_assert_str_eq(k, P "/nodes/studio-a");
	ck_assert_ptr_nonnull(v = cs_encode_node(&n));
	ck_assert_int_eq(ev(k, v), CS_APPLIED);
	free(k);
	free(v);
	ck_assert_uint_eq(cs_node(cs, "studio-a")->evictable, 4 * G);
	ck_assert_str_eq(cs_node(cs, "studio-a")->host, "10.0.0.110");
	ck_assert(cs_node_has_model(cs_node(cs, "studio-a"), "b"));

	k = cs_key_server(cs, "studio-a", "b");
	v = cs_encode_server(CS_READY, 8123, 3 * G);
	ck_assert_str_eq(k, P "/servers/studio-a/b");
	ck_assert_int_eq(ev(k, v), CS_APPLIED);
	free(k);
	free(v);
	ck_assert_int_eq(cs_server_at(cs, 0)->port, 8123);
	ck_assert_uint_eq(cs_server_at(cs, 0)->mem, 3 * G);
	ck_assert_ptr_null(cs_server_at(cs, 1));

	k = cs_key_backoff(cs, "b", "studio-a");
	ck_assert_str_eq(k, P "/backoff/b/studio-a");
	free(k);
	k = cs_key_claim(cs, "b");
	ck_assert_str_eq(k, P "/claims/b");
	v = cs_encode_claim("studio-a", "studio-b", NOW + 5);
	ck_assert_int_eq(ev(k, v), CS_APPLIED);
	free(k);
	free(v);
	ck_assert_str_eq(cs_claim(cs, "b", NOW), "studio-a");
	ck_assert_ptr_null(cs_claim(cs, "b", NOW + 5));	/* until passed */
}
END_TEST

/* --- placement --- */

START_TEST(place_ready_wins)
{
	struct cs_placement pl;

	node("a", 5, 0, "m");
	node("b", 9, 0, "m");
	node("c", 20, 0, "m");
	node("self", 1, 0, "m");
	server("a", "m", "ready");
	server("b", "m", "ready");
	server("c", "m", "starting");
	claim("m", "c", NOW + 1000);
	backoff("m", "a", NOW + 1000, "x");	/* a ready server still wins */
	pl = place("m", "self", true, true, 1);
	expect(&pl, CS_PLACE_READY, "b,a");	/* most free first */
	server("self", "m", "ready");
	pl = place("m", "self", true, true, 1);
	expect(&pl, CS_PLACE_READY, "self,b,a");	/* ours first */
}
END_TEST

START_TEST(place_ready_ties_and_self_unregistered)
{
	struct cs_placement pl;

	node("b", 9, 0, "m");
	node("a", 9, 0, "m");
	server("b", "m", "ready");
	server("a", "m", "ready");
	pl = place("m", "self", false, false, 1);
	expect(&pl, CS_PLACE_READY, "a,b");	/* ties: by name */
	/* our own server counts before our node key is in the mirror */
	server("self", "m", "ready");
	pl = place("m", "self", true, true, 1);
	expect(&pl, CS_PLACE_READY, "self,a,b");
}
END_TEST

START_TEST(place_starting_then_claim)
{
	struct cs_placement pl;

	node("a", 5, 0, "m");
	node("b", 9, 0, "m");
	server("a", "m", "starting");
	claim("m", "b", NOW + 1000);
	pl = place("m", "self", true, true, 1);
	expect(&pl, CS_PLACE_STARTING, "a,b");
	del(P "/servers/%s/%s", "a", "m");
	pl = place("m", "self", true, true, 1);
	expect(&pl, CS_PLACE_STARTING, "b");
	/* our own claim, self not yet in nodes */
	claim("m", "self", NOW + 1000);
	pl = place("m", "self", true, true, 1);
	expect(&pl, CS_PLACE_STARTING, "self");
}
END_TEST

START_TEST(place_stale_claims)
{
	struct cs_placement pl;

	node("a", 5, 0, "m");
	node("b", 9, 0, "m");
	/* until reached: not live */
	claim("m", "a", NOW);
	pl = place("m", "self", false, false, 1);
	expect(&pl, CS_PLACE_COLD, "b,a");
	ck_assert_ptr_null(cs_claim(cs, "m", NOW));
	ck_assert_str_eq(cs_claim(cs, "m", NOW - 1), "a");
	/* a claim of a node that is gone: not live */
	claim("m", "ghost", NOW + 100000);
	ck_assert_ptr_null(cs_claim(cs, "m", NOW));
	pl = place("m", "self", false, false, 1);
	expect(&pl, CS_PLACE_COLD, "b,a");
	/* a starting server of an absent node: ignored too */
	server("ghost", "m", "starting");
	pl = place("m", "self", false, false, 1);
	expect(&pl, CS_PLACE_COLD, "b,a");
}
END_TEST

START_TEST(place_cold_order)
{
	struct cs_placement pl;

	node("self", 50, 50, "m");
	node("a", 4, 4, "m");		/* 8: fits 8 */
	node("b", 10, 0, "m");		/* 10 */
	node("c", 2, 8, "m");		/* 10: tie with b, by name */
	node("d", 3, 2, "m");		/* 5: does not fit */
	node("e", 6, 0, "m");		/* 6: does not fit */
	node("f", 90, 0, "other");	/* has not the model */
	pl = place("m", "self", true, true, 8);
	expect(&pl, CS_PLACE_COLD, "self,b,c,a,e,d");
	/* self cannot admit (leased servers): last, whatever its room */
	pl = place("m", "self", true, false, 8);
	expect(&pl, CS_PLACE_COLD, "b,c,a,e,d,self");
	/* self does not have it (even if its node key says so) */
	pl = place("m", "self", false, true, 8);
	expect(&pl, CS_PLACE_COLD, "b,c,a,e,d");
	/* nobody fits: the same order */
	pl = place("m", "self", false, true, 100);
	expect(&pl, CS_PLACE_COLD, "b,c,a,e,d");
	pl = place("nothere", "self", false, true, 1);
	expect(&pl, CS_PLACE_NOWHERE, "");
	pl = place("nothere", "self", true, false, 1);
	expect(&pl, CS_PLACE_COLD, "self");
}
END_TEST

START_TEST(place_backoff)
{
	struct cs_placement pl;

	node("a", 10, 0, "m");
	node("b", 5, 0, "m");
	backoff("m", "a", NOW + 5000, "a: out of memory");
	pl = place("m", "self", false, false, 1);
	expect(&pl, CS_PLACE_COLD, "b");
	backoff("m", "b", NOW + 3000, "b: bad file");
	backoff("m", "self", NOW + 3000, "self: crashed");
	pl = place("m", "self", true, true, 1);
	expect(&pl, CS_PLACE_BACKOFF, "");
	ck_assert_str_eq(pl.error, "self: crashed");	/* the last written */
	/* a back-off of a node without the model does not count */
	pl = place("m", "x", false, false, 1);
	expect(&pl, CS_PLACE_BACKOFF, "");
	ck_assert_str_eq(pl.error, "b: bad file");
	/* expiry: until reached, the node is back */
	pl = place("m", "self", true, true, 1);
	{
		struct cs_place_query q = { "m", "self", true, true, G,
		    NOW + 3000 };

		cs_place(cs, &q, &pl);
		expect(&pl, CS_PLACE_COLD, "self,b");
		q.now_wall_ms = NOW + 5000;
		cs_place(cs, &q, &pl);
		expect(&pl, CS_PLACE_COLD, "self,a,b");
	}
	/* the back-off key deleted */
	del(P "/backoff/%s/%s", "m", "b");
	pl = place("m", "x", false, false, 1);
	expect(&pl, CS_PLACE_COLD, "b");
}
END_TEST

START_TEST(many_nodes)
{
	struct cs_placement pl;
	char name[16];

	for (int i = 0; i < CS_NODES_MAX + 6; i++) {
		snprintf(name, sizeof(name), "n%03d", i);
		ck_assert_int_eq(node(name, (unsigned)i % 7, 0, "m"),
		    CS_APPLIED);
	}
	ck_assert_uint_eq(cs_nnodes(cs), CS_NODES_MAX);
	ck_assert_uint_eq(cs_nodes_ignored(cs), 6);
	ck_assert_ptr_null(cs_node(cs, "n064"));
	/* an update of a known node still applies when full */
	ck_assert_int_eq(node("n000", 99, 0, "m"), CS_APPLIED);
	ck_assert_uint_eq(cs_node(cs, "n000")->free, 99 * G);
	for (size_t i = 1; i < cs_nnodes(cs); i++)
		ck_assert_int_lt(strcmp(cs_node_at(cs, i - 1)->name,
		    cs_node_at(cs, i)->name), 0);
	ck_assert_ptr_null(cs_node_at(cs, CS_NODES_MAX));
	pl = place("m", "self", true, true, 1);
	ck_assert_int_eq(pl.kind, CS_PLACE_COLD);
	ck_assert_uint_eq(pl.nnodes, CS_PLACE_MAX);	/* capped */
	ck_assert_str_eq(pl.nodes[0], "self");
	ck_assert_str_eq(pl.nodes[1], "n000");
	/* most room first; ties by name */
	ck_assert_str_eq(pl.nodes[2], "n006");
	ck_assert_str_eq(pl.nodes[3], "n013");
	/* one leaves: room for a new one */
	del(P "/nodes/%s%s", "n001", "");
	ck_assert_int_eq(node("n100", 1, 0, "m"), CS_APPLIED);
	ck_assert_ptr_nonnull(cs_node(cs, "n100"));
}
END_TEST

START_TEST(ten_thousand_models)
{
	size_t cap = 10000 * 16, len = 0;
	char *val = malloc(cap + 512), *list = malloc(cap);
	const struct cs_node *n;
	struct cs_placement pl;
	char name[32];

	ck_assert_ptr_nonnull(val);
	ck_assert_ptr_nonnull(list);
	/* in reverse order, to be sorted */
	for (int i = 9999; i >= 0; i--)
		len += (size_t)snprintf(list + len, cap - len, "%s\"m%05d\"",
		    len ? "," : "", i);
	snprintf(val, cap + 512, "{\"addr\":\"h:1\",\"host\":\"h\","
	    "\"budget\":1,\"used\":0,\"free\":1,\"evictable\":0,"
	    "\"models\":[%s]}", list);
	ck_assert_int_eq(ev(P "/nodes/big", val), CS_APPLIED);
	ck_assert_ptr_nonnull(n = cs_node(cs, "big"));
	ck_assert_uint_eq(n->nmodels, 10000);
	for (int i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "m%05d", i);
		ck_assert(cs_node_has_model(n, name));
		ck_assert_str_eq(n->models[i], name);
	}
	ck_assert(!cs_node_has_model(n, "m10000"));
	ck_assert(!cs_node_has_model(n, "m0"));
	/* 10,000 placements, each a bsearch */
	for (int i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "m%05d", i);
		pl = place(name, "self", false, false, 1);
		expect(&pl, CS_PLACE_COLD, "big");
	}
	/* and the encoder writes them all back */
	free(val);
	ck_assert_ptr_nonnull(val = cs_encode_node(n));
	ck_assert_int_eq(ev(P "/nodes/big2", val), CS_APPLIED);
	ck_assert_uint_eq(cs_node(cs, "big2")->nmodels, 10000);
	free(val);
	free(list);
}
END_TEST

START_TEST(servers_by_model)
{
	const struct cs_server *out[8];
	char name[32];

	/* 64 nodes x 40 servers each, inserted out of order */
	for (int k = 39; k >= 0; k--)
		for (int i = 0; i < CS_NODES_MAX; i++) {
			char nd[16];

			snprintf(nd, sizeof(nd), "n%02d", (i * 37) % 64);
			snprintf(name, sizeof(name), "m%02d", k);
			ck_assert_int_eq(server(nd, name, "ready"), CS_APPLIED);
		}
	ck_assert_uint_eq(cs_nservers(cs), 64 * 40);
	ck_assert_uint_eq(cs_servers_of(cs, "m07", out, 8), 8);
	ck_assert_str_eq(out[0]->node, "n00");
	ck_assert_str_eq(out[7]->node, "n07");
	for (int i = 0; i < 8; i++)
		ck_assert_str_eq(out[i]->model, "m07");
	ck_assert_uint_eq(cs_servers_of(cs, "m7", out, 8), 0);
	/* the same key again replaces, never duplicates */
	ck_assert_int_eq(server("n00", "m07", "starting"), CS_APPLIED);
	ck_assert_uint_eq(cs_nservers(cs), 64 * 40);
	ck_assert_uint_eq(cs_servers_of(cs, "m07", out, 1), 1);
	ck_assert_int_eq(out[0]->state, CS_STARTING);
}
END_TEST

static Suite *
cluster_state_suite(void)
{
	Suite *s = suite_create("cluster_state");
	TCase *tc;

	tc = tcase_create("mirror");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, read_then_events);
	tcase_add_test(tc, deletes);
	tcase_add_test(tc, invalid_values);
	tcase_add_test(tc, unknown_keys);
	tcase_add_test(tc, keys_and_values_round_trip);
	tcase_add_test(tc, servers_by_model);
	suite_add_tcase(s, tc);

	tc = tcase_create("place");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, place_ready_wins);
	tcase_add_test(tc, place_ready_ties_and_self_unregistered);
	tcase_add_test(tc, place_starting_then_claim);
	tcase_add_test(tc, place_stale_claims);
	tcase_add_test(tc, place_cold_order);
	tcase_add_test(tc, place_backoff);
	tcase_add_test(tc, many_nodes);
	tcase_add_test(tc, ten_thousand_models);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(cluster_state_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
