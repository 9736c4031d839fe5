/*
 * cluster_state.c — this node's mirror of the cluster's keys in etcd, and
 * where a cold ACQUIRE goes.
 *
 * Pure: no I/O, no clock, no libev.  Nodes are at most CS_NODES_MAX, kept
 * by name in an array; a node's models are sorted for bsearch (a node may
 * have 10,000).  Servers, claims and back-offs are arrays of pointers
 * sorted by their key (model first), so the entries of one model are
 * found by bsearch and lie side by side.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cluster_state.h"
#include "proto.h"

#define NODE_ALPHABET	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" \
			"0123456789._-"
#define ERROR_MAX	256	/* a back-off's error, as cs_placement keeps it */

/* A server with its key first, as the tables want it. */
struct server {
	char		 model[PROTO_MODEL_NAME_MAX + 1];
	char		 node[CS_NODE_NAME_MAX + 1];
	struct cs_server s;
};

struct claim {
	char	 model[PROTO_MODEL_NAME_MAX + 1];
	char	 node[CS_NODE_NAME_MAX + 1];
	char	 by[CS_NODE_NAME_MAX + 1];
	int64_t	 until;
};

struct backoff {
	char	 model[PROTO_MODEL_NAME_MAX + 1];
	char	 node[CS_NODE_NAME_MAX + 1];
	int64_t	 until;
	int64_t	 mod_revision;	/* which error is the last */
	char	 error[ERROR_MAX];
};

/* A sorted array of pointers to entries whose key starts (model, node). */
struct table {
	void	**v;
	size_t	  n, cap;
};

struct cluster_state {
	char		*prefix;
	size_t		 prefixlen;
	int64_t		 read_revision;	/* of the last full read */
	int64_t		 revision;	/* the last event's, or the read's */
	struct cs_node	 nodes[CS_NODES_MAX];	/* by name */
	size_t		 nnodes;
	size_t		 ignored;
	struct table	 servers;	/* struct server, by model, node */
	struct table	 claims;	/* struct claim, by model */
	struct table	 backoffs;	/* struct backoff, by model, node */
};

/* --- names --- */

bool
cs_node_name_ok(const char *name)
{
	size_t n;

	if (name == NULL)
		return false;
	n = strnlen(name, CS_NODE_NAME_MAX + 1);
	return n >= 1 && n <= CS_NODE_NAME_MAX &&
	    strspn(name, NODE_ALPHABET) == n;
}

/* --- the sorted tables --- */

/*
 * Every entry struct begins with model[] then node[] (claims: node is not
 * part of the key, bynode false).
 */
struct key {
	const char	*model, *node;
};

static int
key_cmp(const struct key *k, const void *entry, bool bynode)
{
	const char *model = entry;
	const char *node = model + PROTO_MODEL_NAME_MAX + 1;
	int c;

	if ((c = strcmp(k->model, model)) != 0 || !bynode)
		return c;
	return strcmp(k->node, node);
}

/* The index of k, or where it would go (*found false). */
static size_t
table_find(const struct table *t, const struct key *k, bool bynode,
    bool *found)
{
	size_t lo = 0, hi = t->n, mid;
	int c;

	*found = false;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = key_cmp(k, t->v[mid], bynode)) == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* The first entry of model (tables keyed by model then node). */
static size_t
table_first_of(const struct table *t, const char *model)
{
	size_t lo = 0, hi = t->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp((const char *)t->v[mid], model) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
table_insert(struct table *t, size_t at, void *entry)
{
	void **v;
	size_t cap;

	if (t->n == t->cap) {
		cap = t->cap ? t->cap * 2 : 16;
		if ((v = realloc(t->v, cap * sizeof(*v))) == NULL)
			return -1;
		t->v = v;
		t->cap = cap;
	}
	memmove(t->v + at + 1, t->v + at, (t->n - at) * sizeof(*t->v));
	t->v[at] = entry;
	t->n++;
	return 0;
}

static void
table_remove(struct table *t, size_t at)
{
	free(t->v[at]);
	memmove(t->v + at, t->v + at + 1, (t->n - at - 1) * sizeof(*t->v));
	t->n--;
}

/* Replaces the entry of entry's key, or inserts it; takes entry. */
static int
table_put(struct table *t, void *entry, bool bynode)
{
	const char *model = entry;
	struct key k = { model, model + PROTO_MODEL_NAME_MAX + 1 };
	bool found;
	size_t at = table_find(t, &k, bynode, &found);

	if (found) {
		free(t->v[at]);
		t->v[at] = entry;
		return 0;
	}
	if (table_insert(t, at, entry) == -1) {
		free(entry);
		return -1;
	}
	return 0;
}

static void
table_delete(struct table *t, const char *model, const char *node,
    bool bynode)
{
	struct key k = { model, node };
	bool found;
	size_t at = table_find(t, &k, bynode, &found);

	if (found)
		table_remove(t, at);
}

static void
table_clear(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i]);
	t->n = 0;
}

/* --- nodes --- */

static void
node_clear(struct cs_node *n)
{
	for (size_t i = 0; i < n->nmodels; i++)
		free(n->models[i]);
	free(n->models);
	n->models = NULL;
	n->nmodels = 0;
}

static size_t
node_find(const struct cluster_state *cs, const char *name, bool *found)
{
	size_t lo = 0, hi = cs->nnodes, mid;
	int c;

	*found = false;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(name, cs->nodes[mid].name)) == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void
nodes_clear(struct cluster_state *cs)
{
	for (size_t i = 0; i < cs->nnodes; i++)
		node_clear(&cs->nodes[i]);
	cs->nnodes = 0;
	cs->ignored = 0;
}

/* Takes n's models.  -1 if full (the node is ignored). */
static int
node_put(struct cluster_state *cs, struct cs_node *n)
{
	bool found;
	size_t at = node_find(cs, n->name, &found);

	if (found) {
		node_clear(&cs->nodes[at]);
		cs->nodes[at] = *n;
		return 0;
	}
	if (cs->nnodes == CS_NODES_MAX) {
		node_clear(n);
		cs->ignored++;
		return -1;
	}
	memmove(cs->nodes + at + 1, cs->nodes + at,
	    (cs->nnodes - at) * sizeof(*cs->nodes));
	cs->nodes[at] = *n;
	cs->nnodes++;
	return 0;
}

static void
node_delete(struct cluster_state *cs, const char *name)
{
	bool found;
	size_t at = node_find(cs, name, &found);

	if (!found)
		return;
	node_clear(&cs->nodes[at]);
	memmove(cs->nodes + at, cs->nodes + at + 1,
	    (cs->nnodes - at - 1) * sizeof(*cs->nodes));
	cs->nnodes--;
}

/* --- life --- */

struct cluster_state *
cs_new(const char *prefix)
{
	struct cluster_state *cs;

	if ((cs = calloc(1, sizeof(*cs))) == NULL)
		return NULL;
	if ((cs->prefix = strdup(prefix)) == NULL) {
		free(cs);
		return NULL;
	}
	cs->prefixlen = strlen(prefix);
	return cs;
}

static void
forget(struct cluster_state *cs)
{
	nodes_clear(cs);
	table_clear(&cs->servers);
	table_clear(&cs->claims);
	table_clear(&cs->backoffs);
}

void
cs_free(struct cluster_state *cs)
{
	if (cs == NULL)
		return;
	forget(cs);
	free(cs->servers.v);
	free(cs->claims.v);
	free(cs->backoffs.v);
	free(cs->prefix);
	free(cs);
}

/* --- values --- */

static json_t *
parse_object(const char *value)
{
	json_t *root;

	if ((root = json_loads(value, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return NULL;
	if (!json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	return root;
}

static int
get_u64(json_t *o, const char *field, uint64_t *out)
{
	json_t *v = json_object_get(o, field);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int
get_i64(json_t *o, const char *field, int64_t *out)
{
	json_t *v = json_object_get(o, field);

	if (!json_is_integer(v))
		return -1;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

/* A string field that fits len (with its NUL) and has no NUL inside. */
static int
get_str(json_t *o, const char *field, char *out, size_t len)
{
	json_t *v = json_object_get(o, field);

	if (!json_is_string(v) || json_string_length(v) >= len ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return -1;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The models, sorted, without repeats; -1 if one is not a model name. */
static int
get_models(json_t *o, struct cs_node *n)
{
	json_t *arr = json_object_get(o, "models"), *v;
	size_t i, k;

	if (!json_is_array(arr))
		return -1;
	if (json_array_size(arr) > 0 && (n->models = calloc(
	    json_array_size(arr), sizeof(*n->models))) == NULL)
		return -1;
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) ||
		    !proto_model_name_ok(json_string_value(v)) ||
		    (n->models[i] = strdup(json_string_value(v))) == NULL)
			return -1;
		n->nmodels++;
	}
	if (n->nmodels > 0)
		qsort(n->models, n->nmodels, sizeof(*n->models), cmp_str);
	for (i = k = 0; i < n->nmodels; i++) {
		if (k > 0 && strcmp(n->models[k - 1], n->models[i]) == 0)
			free(n->models[i]);
		else
			n->models[k++] = n->models[i];
	}
	n->nmodels = k;
	return 0;
}

static int
decode_node(const char *name, const char *value, struct cs_node *n)
{
	json_t *o;
	int rc = -1;

	memset(n, 0, sizeof(*n));
	if ((o = parse_object(value)) == NULL)
		return -1;
	snprintf(n->name, sizeof(n->name), "%s", name);
	if (get_str(o, "addr", n->addr, sizeof(n->addr)) == 0 &&
	    get_str(o, "host", n->host, sizeof(n->host)) == 0 &&
	    get_u64(o, "budget", &n->budget) == 0 &&
	    get_u64(o, "used", &n->used) == 0 &&
	    get_u64(o, "free", &n->free) == 0 &&
	    get_u64(o, "evictable", &n->evictable) == 0 &&
	    get_models(o, n) == 0)
		rc = 0;
	else
		node_clear(n);
	json_decref(o);
	return rc;
}

static struct server *
decode_server(const char *node, const char *model, const char *value)
{
	struct server *e;
	char state[16];
	int64_t port;
	json_t *o;

	if ((o = parse_object(value)) == NULL)
		return NULL;
	if ((e = calloc(1, sizeof(*e))) != NULL &&
	    get_str(o, "state", state, sizeof(state)) == 0 &&
	    (strcmp(state, "starting") == 0 || strcmp(state, "ready") == 0) &&
	    get_i64(o, "port", &port) == 0 && port >= 1 && port <= 65535 &&
	    get_u64(o, "mem", &e->s.mem) == 0) {
		snprintf(e->model, sizeof(e->model), "%s", model);
		snprintf(e->node, sizeof(e->node), "%s", node);
		memcpy(e->s.model, e->model, sizeof(e->s.model));
		memcpy(e->s.node, e->node, sizeof(e->s.node));
		e->s.state = state[0] == 'r' ? CS_READY : CS_STARTING;
		e->s.port = (int)port;
	} else {
		free(e);
		e = NULL;
	}
	json_decref(o);
	return e;
}

static struct claim *
decode_claim(const char *model, const char *value)
{
	struct claim *c;
	json_t *o;

	if ((o = parse_object(value)) == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) != NULL &&
	    get_str(o, "node", c->node, sizeof(c->node)) == 0 &&
	    cs_node_name_ok(c->node) &&
	    get_str(o, "by", c->by, sizeof(c->by)) == 0 &&
	    cs_node_name_ok(c->by) &&
	    get_i64(o, "until", &c->until) == 0)
		snprintf(c->model, sizeof(c->model), "%s", model);
	else {
		free(c);
		c = NULL;
	}
	json_decref(o);
	return c;
}

static struct backoff *
decode_backoff(const char *model, const char *node, const char *value,
    int64_t mod_revision)
{
	struct backoff *b;
	json_t *o, *e;

	if ((o = parse_object(value)) == NULL)
		return NULL;
	e = json_object_get(o, "error");
	if ((b = calloc(1, sizeof(*b))) != NULL &&
	    get_i64(o, "until", &b->until) == 0 && json_is_string(e)) {
		snprintf(b->model, sizeof(b->model), "%s", model);
		snprintf(b->node, sizeof(b->node), "%s", node);
		/* a long error is cut: it is only shown */
		snprintf(b->error, sizeof(b->error), "%s",
		    json_string_value(e));
		b->mod_revision = mod_revision;
	} else {
		free(b);
		b = NULL;
	}
	json_decref(o);
	return b;
}

/* --- keys --- */

enum key_kind { K_NODE, K_SERVER, K_CLAIM, K_BACKOFF };

struct parsed_key {
	enum key_kind	 kind;
	char		 node[CS_NODE_NAME_MAX + 1];
	char		 model[PROTO_MODEL_NAME_MAX + 1];
};

/* A name checked already: cut only if it does not fit. */
static void
copy(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Copies the part of s up to '/' or its end into out; returns past it. */
static const char *
segment(const char *s, char *out, size_t len, bool *ok)
{
	size_t n = strcspn(s, "/");

	if (n >= len) {
		*ok = false;
		n = 0;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return s + n;
}

/*
 * CS_APPLIED: pk is set; CS_UNKNOWN_KEY: not one of ours (wrong shape or
 * outside the prefix); CS_INVALID: our shape with a bad name.
 */
static enum cs_event_result
parse_key(const struct cluster_state *cs, const char *key,
    struct parsed_key *pk)
{
	static const struct {
		const char	*dir;
		enum key_kind	 kind;
		int		 parts;
	} dirs[] = {
		{ "nodes", K_NODE, 1 }, { "servers", K_SERVER, 2 },
		{ "claims", K_CLAIM, 1 }, { "backoff", K_BACKOFF, 2 },
	};
	char dir[16], a[PROTO_MODEL_NAME_MAX + 2], b[PROTO_MODEL_NAME_MAX + 2];
	const char *p;
	bool ok = true;
	size_t i;
	int parts;

	memset(pk, 0, sizeof(*pk));
	if (strncmp(key, cs->prefix, cs->prefixlen) != 0 ||
	    key[cs->prefixlen] != '/')
		return CS_UNKNOWN_KEY;
	p = segment(key + cs->prefixlen + 1, dir, sizeof(dir), &ok);
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (strcmp(dir, dirs[i].dir) == 0)
			break;
	if (!ok || i == sizeof(dirs) / sizeof(dirs[0]) || *p != '/')
		return CS_UNKNOWN_KEY;
	p = segment(p + 1, a, sizeof(a), &ok);
	parts = 1;
	b[0] = '\0';
	if (*p == '/') {
		p = segment(p + 1, b, sizeof(b), &ok);
		parts = 2;
	}
	if (*p != '\0' || parts != dirs[i].parts)
		return CS_UNKNOWN_KEY;
	pk->kind = dirs[i].kind;
	switch (pk->kind) {
	case K_NODE:
		ok = ok && cs_node_name_ok(a);
		copy(pk->node, sizeof(pk->node), ok ? a : "");
		break;
	case K_SERVER:
		ok = ok && cs_node_name_ok(a) && proto_model_name_ok(b);
		if (ok) {
			copy(pk->node, sizeof(pk->node), a);
			copy(pk->model, sizeof(pk->model), b);
		}
		break;
	case K_CLAIM:
		ok = ok && proto_model_name_ok(a);
		copy(pk->model, sizeof(pk->model), ok ? a : "");
		break;
	case K_BACKOFF:
		ok = ok && proto_model_name_ok(a) && cs_node_name_ok(b);
		if (ok) {
			copy(pk->model, sizeof(pk->model), a);
			copy(pk->node, sizeof(pk->node), b);
		}
		break;
	}
	return ok ? CS_APPLIED : CS_INVALID;
}

/* --- changes --- */

static enum cs_event_result
put(struct cluster_state *cs, const struct parsed_key *pk, const char *value,
    int64_t mod_revision)
{
	struct cs_node n;
	void *e = NULL;
	int rc = 0;

	switch (pk->kind) {
	case K_NODE:
		if (decode_node(pk->node, value, &n) == -1)
			return CS_INVALID;
		n.mod_revision = mod_revision;
		node_put(cs, &n);	/* full: ignored, and counted */
		return CS_APPLIED;
	case K_SERVER:
		if ((e = decode_server(pk->node, pk->model, value)) != NULL)
			rc = table_put(&cs->servers, e, true);
		break;
	case K_CLAIM:
		if ((e = decode_claim(pk->model, value)) != NULL)
			rc = table_put(&cs->claims, e, false);
		break;
	case K_BACKOFF:
		if ((e = decode_backoff(pk->model, pk->node, value,
		    mod_revision)) != NULL)
			rc = table_put(&cs->backoffs, e, true);
		break;
	}
	return e == NULL || rc == -1 ? CS_INVALID : CS_APPLIED;
}

static void
delete(struct cluster_state *cs, const struct parsed_key *pk)
{
	switch (pk->kind) {
	case K_NODE:
		node_delete(cs, pk->node);
		break;
	case K_SERVER:
		table_delete(&cs->servers, pk->model, pk->node, true);
		break;
	case K_CLAIM:
		table_delete(&cs->claims, pk->model, NULL, false);
		break;
	case K_BACKOFF:
		table_delete(&cs->backoffs, pk->model, pk->node, true);
		break;
	}
}

void
cs_read_begin(struct cluster_state *cs)
{
	forget(cs);
}

void
cs_read_kv(struct cluster_state *cs, const char *key, const char *value)
{
	struct parsed_key pk;

	/* Revisions are the read's: put 0 now, set in cs_read_end(). */
	if (value != NULL && parse_key(cs, key, &pk) == CS_APPLIED)
		put(cs, &pk, value, 0);
}

void
cs_read_end(struct cluster_state *cs, int64_t revision)
{
	for (size_t i = 0; i < cs->nnodes; i++)
		cs->nodes[i].mod_revision = revision;
	for (size_t i = 0; i < cs->backoffs.n; i++)
		((struct backoff *)cs->backoffs.v[i])->mod_revision = revision;
	cs->read_revision = cs->revision = revision;
}

int64_t
cs_revision(const struct cluster_state *cs)
{
	return cs->revision;
}

enum cs_event_result
cs_event(struct cluster_state *cs, const char *key, const char *value,
    int64_t mod_revision)
{
	struct parsed_key pk;
	enum cs_event_result r;

	if (mod_revision <= cs->read_revision || mod_revision < cs->revision)
		return CS_STALE;
	cs->revision = mod_revision;
	if ((r = parse_key(cs, key, &pk)) != CS_APPLIED)
		return r;
	if (value == NULL) {
		delete(cs, &pk);
		return CS_APPLIED;
	}
	return put(cs, &pk, value, mod_revision);
}

size_t
cs_nodes_ignored(const struct cluster_state *cs)
{
	return cs->ignored;
}

/* --- key and value builders --- */

static char *
printed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
printed(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

char *
cs_key_node(const struct cluster_state *cs, const char *node)
{
	if (!cs_node_name_ok(node))
		return NULL;
	return printed("%s/nodes/%s", cs->prefix, node);
}

char *
cs_key_server(const struct cluster_state *cs, const char *node,
    const char *model)
{
	if (!cs_node_name_ok(node) || !proto_model_name_ok(model))
		return NULL;
	return printed("%s/servers/%s/%s", cs->prefix, node, model);
}

char *
cs_key_claim(const struct cluster_state *cs, const char *model)
{
	if (!proto_model_name_ok(model))
		return NULL;
	return printed("%s/claims/%s", cs->prefix, model);
}

char *
cs_key_backoff(const struct cluster_state *cs, const char *model,
    const char *node)
{
	if (!proto_model_name_ok(model) || !cs_node_name_ok(node))
		return NULL;
	return printed("%s/backoff/%s/%s", cs->prefix, model, node);
}

static char *
dumped(json_t *o)
{
	char *s;

	if (o == NULL)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

char *
cs_encode_node(const struct cs_node *n)
{
	json_t *models;

	if ((models = json_array()) == NULL)
		return NULL;
	for (size_t i = 0; i < n->nmodels; i++)
		if (json_array_append_new(models,
		    json_string(n->models[i])) == -1) {
			json_decref(models);
			return NULL;
		}
	return dumped(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:s}",
	    "addr", n->addr, "host", n->host,
	    "budget", (json_int_t)n->budget, "used", (json_int_t)n->used,
	    "free", (json_int_t)n->free,
	    "evictable", (json_int_t)n->evictable, "models", models,
	    "version", "0.1.0"));
}

char *
cs_encode_server(enum cs_server_state state, int port, uint64_t mem)
{
	return dumped(json_pack("{s:s, s:i, s:I}", "state",
	    state == CS_READY ? "ready" : "starting", "port", port,
	    "mem", (json_int_t)mem));
}

char *
cs_encode_claim(const char *node, const char *by, int64_t until_ms)
{
	if (!cs_node_name_ok(node) || !cs_node_name_ok(by))
		return NULL;
	return dumped(json_pack("{s:s, s:s, s:I}", "node", node, "by", by,
	    "until", (json_int_t)until_ms));
}

char *
cs_encode_backoff(int64_t until_ms, const char *error)
{
	/* error may quote a server's stderr: not always UTF-8. */
	return dumped(json_pack("{s:I, s:o}", "until", (json_int_t)until_ms,
	    "error", proto_text(error)));
}

/* --- lookups --- */

const struct cs_node *
cs_node(const struct cluster_state *cs, const char *name)
{
	bool found;
	size_t at = node_find(cs, name, &found);

	return found ? &cs->nodes[at] : NULL;
}

const struct cs_node *
cs_node_at(const struct cluster_state *cs, size_t i)
{
	return i < cs->nnodes ? &cs->nodes[i] : NULL;
}

size_t
cs_nnodes(const struct cluster_state *cs)
{
	return cs->nnodes;
}

size_t
cs_servers_of(const struct cluster_state *cs, const char *model,
    const struct cs_server **out, size_t max)
{
	size_t i = table_first_of(&cs->servers, model), n = 0;

	for (; i < cs->servers.n && n < max; i++) {
		const struct server *e = cs->servers.v[i];

		if (strcmp(e->model, model) != 0)
			break;
		out[n++] = &e->s;
	}
	return n;
}

const struct cs_server *
cs_server_at(const struct cluster_state *cs, size_t i)
{
	return i < cs->servers.n ?
	    &((const struct server *)cs->servers.v[i])->s : NULL;
}

size_t
cs_nservers(const struct cluster_state *cs)
{
	return cs->servers.n;
}

bool
cs_node_has_model(const struct cs_node *n, const char *model)
{
	return n != NULL && n->nmodels > 0 && bsearch(&model, n->models,
	    n->nmodels, sizeof(*n->models), cmp_str) != NULL;
}

const char *
cs_claim(const struct cluster_state *cs, const char *model,
    int64_t now_wall_ms)
{
	struct key k = { model, NULL };
	const struct claim *c;
	bool found;
	size_t at = table_find(&cs->claims, &k, false, &found);

	if (!found)
		return NULL;
	c = cs->claims.v[at];
	if (c->until <= now_wall_ms || cs_node(cs, c->node) == NULL)
		return NULL;
	return c->node;
}

/* --- placement --- */

static bool
present(const struct cluster_state *cs, const struct cs_place_query *q,
    const char *node)
{
	return strcmp(node, q->self) == 0 || cs_node(cs, node) != NULL;
}

/* The claim of q->model if live: cs_claim(), our own counting as present. */
static const char *
live_claim(const struct cluster_state *cs, const struct cs_place_query *q)
{
	struct key k = { q->model, NULL };
	const struct claim *c;
	bool found;
	size_t at = table_find(&cs->claims, &k, false, &found);

	if (!found)
		return NULL;
	c = cs->claims.v[at];
	if (c->until <= q->now_wall_ms || !present(cs, q, c->node))
		return NULL;
	return c->node;
}

struct cand {
	const char	*name;
	uint64_t	 room;		/* free, or free + evictable */
	bool		 fits;
};

/* Fitting first, then most room, then by name. */
static int
cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->fits != y->fits)
		return x->fits ? -1 : 1;
	if (x->room != y->room)
		return x->room > y->room ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void
place_add(struct cs_placement *pl, const char *node)
{
	for (size_t i = 0; i < pl->nnodes; i++)
		if (strcmp(pl->nodes[i], node) == 0)
			return;
	if (pl->nnodes < CS_PLACE_MAX)
		snprintf(pl->nodes[pl->nnodes++], sizeof(pl->nodes[0]), "%s",
		    node);
}

static void
place_sorted(struct cs_placement *pl, struct cand *c, size_t n)
{
	qsort(c, n, sizeof(*c), cand_cmp);
	for (size_t i = 0; i < n; i++)
		place_add(pl, c[i].name);
}

/* Servers of q->model in state st on present nodes: ours, then most free. */
static void
place_servers(const struct cluster_state *cs, const struct cs_place_query *q,
    enum cs_server_state st, struct cs_placement *pl)
{
	struct cand c[CS_PLACE_MAX];
	const struct cs_node *n;
	bool self = false;
	size_t i = table_first_of(&cs->servers, q->model), nc = 0;

	for (; i < cs->servers.n; i++) {
		const struct cs_server *s =
		    &((const struct server *)cs->servers.v[i])->s;

		if (strcmp(s->model, q->model) != 0)
			break;
		if (s->state != st || !present(cs, q, s->node))
			continue;
		if (strcmp(s->node, q->self) == 0)
			self = true;
		else if (nc < CS_PLACE_MAX) {
			n = cs_node(cs, s->node);
			c[nc++] = (struct cand){ n->name, n->free, true };
		}
	}
	if (self)
		place_add(pl, q->self);
	place_sorted(pl, c, nc);
}

static const struct backoff *
backoff_of(const struct cluster_state *cs, const char *model,
    const char *node)
{
	struct key k = { model, node };
	bool found;
	size_t at = table_find(&cs->backoffs, &k, true, &found);

	return found ? cs->backoffs.v[at] : NULL;
}

/* In a live back-off; the last one written so far is kept in *last. */
static bool
backing_off(const struct cluster_state *cs, const struct cs_place_query *q,
    const char *node, const struct backoff **last)
{
	const struct backoff *b = backoff_of(cs, q->model, node);

	if (b == NULL || b->until <= q->now_wall_ms)
		return false;
	if (*last == NULL || b->mod_revision > (*last)->mod_revision ||
	    (b->mod_revision == (*last)->mod_revision &&
	    b->until > (*last)->until))
		*last = b;
	return true;
}

static void
place_cold(const struct cluster_state *cs, const struct cs_place_query *q,
    struct cs_placement *pl)
{
	struct cand c[CS_NODES_MAX];
	const struct backoff *last = NULL;
	bool self = q->self_has && !backing_off(cs, q, q->self, &last);
	bool any = q->self_has;
	size_t nc = 0;

	for (size_t i = 0; i < cs->nnodes; i++) {
		const struct cs_node *n = &cs->nodes[i];
		uint64_t room = n->free + n->evictable;

		if (strcmp(n->name, q->self) == 0 ||
		    !cs_node_has_model(n, q->model))
			continue;
		any = true;
		if (!backing_off(cs, q, n->name, &last))
			c[nc++] = (struct cand){ n->name, room,
			    room >= q->need };
	}
	pl->kind = CS_PLACE_COLD;
	if (self && q->self_can_admit)
		place_add(pl, q->self);
	place_sorted(pl, c, nc);
	if (self && !q->self_can_admit)
		place_add(pl, q->self);
	if (pl->nnodes > 0)
		return;
	if (!any) {
		pl->kind = CS_PLACE_NOWHERE;
		return;
	}
	pl->kind = CS_PLACE_BACKOFF;
	snprintf(pl->error, sizeof(pl->error), "%s",
	    last != NULL ? last->error : "");
}

void
cs_place(const struct cluster_state *cs, const struct cs_place_query *q,
    struct cs_placement *pl)
{
	const char *claimed;

	memset(pl, 0, sizeof(*pl));
	pl->kind = CS_PLACE_NOWHERE;
	place_servers(cs, q, CS_READY, pl);
	if (pl->nnodes > 0) {
		pl->kind = CS_PLACE_READY;
		return;
	}
	place_servers(cs, q, CS_STARTING, pl);
	if ((claimed = live_claim(cs, q)) != NULL)
		place_add(pl, claimed);
	if (pl->nnodes > 0) {
		pl->kind = CS_PLACE_STARTING;
		return;
	}
	place_cold(cs, q, pl);
}
