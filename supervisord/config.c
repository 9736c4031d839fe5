/*
 * config.c — the JSON config file; see poold.json(5).
 *
 * Unknown keys are errors: a typo must not silently fall back to a default.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "poold.h"
#include "proto.h"

#define CONF_OUTBUF_MIN_BYTES	(64 * 1024)
#define CONF_LINE_MIN_BYTES	1024
#define CONF_LINE_MAX_BYTES	PROTO_LINE_MAX_BYTES	/* the hard cap */
#define CONF_GID_MAX		INT_MAX
#define CONF_COUNT_MAX		INT_MAX
#define SUN_PATH_BYTES		sizeof(((struct sockaddr_un *)0)->sun_path)

static const char *const default_command[] = {
	"llama-server", "-m", "{path}", "--host", "{host}",
	"--port", "{port}", "-c", "8192", NULL
};

/* Where we are in the file, for error messages. */
struct loadctx {
	const char	*path;
	const char	*model;		/* inside "models", else NULL */
	const char	*key;
	char		*err;
	size_t		 errlen;
};

enum keytype {
	K_FUNC,		/* fn does it all */
	K_PATH,		/* char *, non-empty string */
	K_PATH_OR_NULL,
	K_SIZE,		/* uint64_t */
	K_SIZE_POS,
	K_IDLE,		/* int64_t ms, 0 allowed */
	K_DURATION,	/* int64_t ms, > 0 */
	K_COUNT,	/* unsigned, >= 1 */
};

struct key {
	const char	*name;
	enum keytype	 type;
	size_t		 off;
	int		(*fn)(void *, json_t *, struct loadctx *);
};

static int	 keyerr(struct loadctx *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		fatal("strdup");
	return p;
}

static void *
xcalloc(size_t n, size_t size)
{
	void	*p;

	if ((p = calloc(n, size)) == NULL)
		fatal("calloc");
	return p;
}

static void
strv_free(char **v)
{
	size_t	 i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* Writes 'file: [model "m": ]"key": message' and returns -1. */
static int
keyerr(struct loadctx *lc, const char *fmt, ...)
{
	char	 msg[512], where[256] = "";
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (lc->model != NULL)
		snprintf(where, sizeof(where), "model \"%s\": ", lc->model);
	snprintf(lc->err, lc->errlen, "%s: %s\"%s\": %s",
	    lc->path, where, lc->key, msg);
	return -1;
}

/* --- sizes and durations --- */

struct decimal {
	uint64_t	 ip;		/* integer part */
	const char	*frac;		/* digits after '.', or NULL */
	size_t		 nfrac;
};

/* Reads "123" or "123.45" at s; returns what follows, or NULL. */
static const char *
scan_decimal(const char *s, struct decimal *d)
{
	memset(d, 0, sizeof(*d));
	if (!isdigit((unsigned char)*s))
		return NULL;
	for (; isdigit((unsigned char)*s); s++) {
		if (d->ip > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return NULL;
		d->ip = d->ip * 10 + (uint64_t)(*s - '0');
	}
	if (*s == '.') {
		d->frac = ++s;
		for (; isdigit((unsigned char)*s); s++)
			d->nfrac++;
		if (d->nfrac == 0)
			return NULL;
	}
	while (*s == ' ')
		s++;
	return s;
}

/* d * mult, the fraction rounded down; -1 on overflow. */
static int
decimal_scale(const struct decimal *d, uint64_t mult, uint64_t *out)
{
	uint64_t	 acc = 0;
	size_t		 i;

	if (d->ip > UINT64_MAX / mult)
		return -1;
	/* floor(0.d1d2...dn * mult), last digit first: exact, no overflow */
	for (i = d->nfrac; i-- > 0; )
		acc = (acc + (uint64_t)(d->frac[i] - '0') * mult) / 10;
	if (d->ip * mult > UINT64_MAX - acc)
		return -1;
	*out = d->ip * mult + acc;
	return 0;
}

/* "", "K", "KB", "KiB" … "T", "B": the multiplier, or 0. */
static uint64_t
size_unit(const char *u)
{
	static const char	 prefixes[] = "KMGT";
	const char		*p;
	int			 shift = 0;

	if (*u != '\0' && (p = strchr(prefixes,
	    toupper((unsigned char)*u))) != NULL) {
		shift = 10 * (int)(p - prefixes + 1);
		if (*++u == 'i' || *u == 'I') {
			if (*++u != 'B' && *u != 'b')
				return 0;
		}
	}
	if (*u == 'B' || *u == 'b')
		u++;
	return *u == '\0' ? 1ULL << shift : 0;
}

int
parse_size(const char *s, uint64_t *out)
{
	struct decimal	 d;
	const char	*u;
	uint64_t	 mult;

	if ((u = scan_decimal(s, &d)) == NULL || (mult = size_unit(u)) == 0)
		return -1;
	if (mult == 1 && d.nfrac > 0)
		return -1;		/* no fractions of a byte */
	return decimal_scale(&d, mult, out);
}

int
parse_duration(const char *s, int64_t *out)
{
	static const struct { const char *name; uint64_t ms; } units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 },
		{ "h", 60 * 60 * 1000 },
	};
	struct decimal	 d;
	const char	*u;
	uint64_t	 ms;
	size_t		 i;

	if ((u = scan_decimal(s, &d)) == NULL)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(u, units[i].name) != 0)
			continue;
		if (decimal_scale(&d, units[i].ms, &ms) == -1 ||
		    ms > INT64_MAX)
			return -1;
		*out = (int64_t)ms;
		return 0;
	}
	return -1;
}

/* --- typed values --- */

static int
get_size(json_t *v, struct loadctx *lc, uint64_t *out)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && parse_size(json_string_value(v), out) == 0)
		return 0;
	return keyerr(lc, "expected a size like \"18G\", \"512MiB\" "
	    "or a number of bytes");
}

static int
get_duration(json_t *v, struct loadctx *lc, int64_t *out)
{
	json_int_t	 i;
	double		 r;

	if (json_is_integer(v) && (i = json_integer_value(v)) >= 0 &&
	    i <= INT64_MAX / 1000) {
		*out = (int64_t)i * 1000;
		return 0;
	}
	if (json_is_real(v) && (r = json_real_value(v)) >= 0 &&
	    r < (double)(INT64_MAX / 1000)) {
		*out = (int64_t)(r * 1000 + 0.5);
		return 0;
	}
	if (json_is_string(v) &&
	    parse_duration(json_string_value(v), out) == 0)
		return 0;
	return keyerr(lc, "expected a duration like \"30m\", \"1500ms\" "
	    "or a number of seconds");
}

static int
get_count(json_t *v, struct loadctx *lc, unsigned *out)
{
	json_int_t	 i;

	if (!json_is_integer(v) || (i = json_integer_value(v)) < 1 ||
	    i > CONF_COUNT_MAX)
		return keyerr(lc, "expected an integer from 1 to %d",
		    CONF_COUNT_MAX);
	*out = (unsigned)i;
	return 0;
}

static int
get_path(json_t *v, struct loadctx *lc, char **out, bool nullok)
{
	if (nullok && json_is_null(v)) {
		free(*out);
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0)
		return keyerr(lc, "expected a non-empty string%s",
		    nullok ? " or null" : "");
	free(*out);
	*out = xstrdup(json_string_value(v));
	return 0;
}

/* An argv template: non-empty strings, naming {path} and {port}. */
static int
get_command(json_t *v, struct loadctx *lc, char ***out)
{
	static const char	*need[] = { "{path}", "{port}" };
	json_t			*arg;
	char			**argv;
	size_t			 i, j;

	if (!json_is_array(v) || json_array_size(v) == 0)
		return keyerr(lc, "expected a non-empty array of strings");
	json_array_foreach(v, i, arg) {
		if (!json_is_string(arg) || json_string_length(arg) == 0)
			return keyerr(lc, "argument %zu is not a non-empty "
			    "string", i);
	}
	for (j = 0; j < 2; j++) {
		json_array_foreach(v, i, arg)
			if (strstr(json_string_value(arg), need[j]) != NULL)
				break;
		if (i == json_array_size(v))
			return keyerr(lc, "no %s in the command", need[j]);
	}
	argv = xcalloc(json_array_size(v) + 1, sizeof(*argv));
	json_array_foreach(v, i, arg)
		argv[i] = xstrdup(json_string_value(arg));
	strv_free(*out);
	*out = argv;
	return 0;
}

/* --- top-level keys that need more than a type --- */

static int
set_socket(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;

	if (json_is_string(v) && json_string_length(v) >= SUN_PATH_BYTES)
		return keyerr(lc, "path longer than %zu bytes",
		    SUN_PATH_BYTES - 1);
	return get_path(v, lc, &c->socket, false);
}

static int
set_socket_mode(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;
	const char	*s;
	char		*end;
	long		 mode = -1;

	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= 0777)
		mode = (long)json_integer_value(v);
	else if (json_is_string(v) && (s = json_string_value(v))[0] >= '0' &&
	    s[0] <= '7' && strlen(s) <= 4) {
		mode = strtol(s, &end, 8);
		if (*end != '\0' || mode > 0777)
			mode = -1;
	}
	if (mode == -1)
		return keyerr(lc, "expected an octal mode like \"0660\"");
	c->socket_mode = (unsigned)mode;
	return 0;
}

static int
set_command(void *base, json_t *v, struct loadctx *lc)
{
	return get_command(v, lc, &((struct config *)base)->command);
}

static int
set_api_keys(void *base, json_t *v, struct loadctx *lc)
{
	if (!json_is_boolean(v))
		return keyerr(lc, "expected true or false");
	((struct config *)base)->api_keys = json_is_true(v);
	return 0;
}

static int
set_health_path(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;
	const char	*s;

	if (!json_is_string(v) || (s = json_string_value(v))[0] != '/')
		return keyerr(lc, "expected a string starting with \"/\"");
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return keyerr(lc, "spaces and control characters "
			    "are not allowed");
	return get_path(v, lc, &c->health_path, false);
}

static int
set_ports(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;
	json_t		*lo, *hi;

	if (!json_is_array(v) || json_array_size(v) != 2 ||
	    !json_is_integer(lo = json_array_get(v, 0)) ||
	    !json_is_integer(hi = json_array_get(v, 1)) ||
	    json_integer_value(lo) < 1 ||
	    json_integer_value(lo) > json_integer_value(hi) ||
	    json_integer_value(hi) > 65535)
		return keyerr(lc, "expected [min, max] with "
		    "1 <= min <= max <= 65535");
	c->port_min = (int)json_integer_value(lo);
	c->port_max = (int)json_integer_value(hi);
	return 0;
}

static bool
is_auto(json_t *v)
{
	return json_is_string(v) && strcmp(json_string_value(v), "auto") == 0;
}

static int
set_memory_limit(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;

	if ((c->memory_limit_auto = is_auto(v)))
		return 0;
	if (get_size(v, lc, &c->memory_limit) == -1 || c->memory_limit == 0)
		return keyerr(lc, "expected \"auto\" or a size like \"64G\"");
	return 0;
}

static int
set_max_servers(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;

	if ((c->max_servers_auto = is_auto(v)))
		return 0;
	if (get_count(v, lc, &c->max_servers) == -1)
		return keyerr(lc, "expected \"auto\" or an integer >= 1");
	return 0;
}

/*
 * "freq" (the default: the lowest decayed frequency first), "lru" or
 * "gds" (GreedyDual-Size); BENCHMARKS.md, issue 12, says why freq.
 */
static int
set_eviction(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;
	const char	*s = json_is_string(v) ? json_string_value(v) : "";

	if (strcmp(s, "freq") == 0)
		c->eviction = POOL_POLICY_FREQ;
	else if (strcmp(s, "lru") == 0)
		c->eviction = POOL_POLICY_LRU;
	else if (strcmp(s, "gds") == 0)
		c->eviction = POOL_POLICY_GDS;
	else
		return keyerr(lc, "expected \"freq\", \"lru\" or \"gds\"");
	return 0;
}

/* "auto" (the default): a cgroup per server where poold may; "off". */
/* 0 turns checks off; a shorter period than this would be a probe flood. */
static int
set_health_interval(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;

	if (get_duration(v, lc, &c->health_interval_ms) == -1)
		return -1;
	if (c->health_interval_ms != 0 &&
	    c->health_interval_ms < CONF_MIN_HEALTH_INTERVAL_MS)
		return keyerr(lc, "must be 0 (off) or at least %lld ms",
		    (long long)CONF_MIN_HEALTH_INTERVAL_MS);
	return 0;
}

static int
set_cgroup(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;
	const char	*s = json_is_string(v) ? json_string_value(v) : "";

	if (strcmp(s, "auto") == 0)
		c->cgroup_off = false;
	else if (strcmp(s, "off") == 0)
		c->cgroup_off = true;
	else
		return keyerr(lc, "expected \"auto\" or \"off\"");
	return 0;
}

static int
set_outbuf_bytes(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;
	uint64_t	 n;

	if (get_size(v, lc, &n) == -1)
		return -1;
	if (n < CONF_OUTBUF_MIN_BYTES || n > SIZE_MAX / 2)
		return keyerr(lc, "must be at least 64K");
	c->outbuf_bytes = (size_t)n;
	return 0;
}

static int
set_max_line_bytes(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;
	uint64_t	 n;

	if (get_size(v, lc, &n) == -1)
		return -1;
	if (n < CONF_LINE_MIN_BYTES || n > CONF_LINE_MAX_BYTES)
		return keyerr(lc, "must be from 1K to %dK",
		    CONF_LINE_MAX_BYTES / 1024);
	c->max_line_bytes = (size_t)n;
	return 0;
}

/* "123" → 0 and *gid; anything but digits → -1. */
static int
parse_gid(const char *s, gid_t *gid)
{
	unsigned long long	 n = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		if ((n = n * 10 + (unsigned)(*s - '0')) > CONF_GID_MAX)
			return -1;
	}
	*gid = (gid_t)n;
	return 0;
}

/*
 * A group: a number, a string of digits, or a name looked up now, so
 * that "poold -n" catches a misspelt one.  The text is kept for messages.
 */
static int
get_group(json_t *v, struct loadctx *lc, char **name, gid_t *gid)
{
	char		 num[32];
	const char	*s;
	struct group	*gr;
	gid_t		 g;

	if (json_is_null(v)) {
		free(*name);
		*name = NULL;
		return 0;
	}
	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		s = num;
	} else if (json_is_string(v))
		s = json_string_value(v);
	else
		return keyerr(lc, "expected a group name or number, or null");
	if (parse_gid(s, &g) == -1) {
		if (json_is_integer(v) || *s == '\0')
			return keyerr(lc, "expected a group name or a number "
			    "from 0 to %d", CONF_GID_MAX);
		if ((gr = getgrnam(s)) == NULL)
			return keyerr(lc, "no group named \"%s\"", s);
		g = gr->gr_gid;
	}
	free(*name);
	*name = xstrdup(s);
	*gid = g;
	return 0;
}

static int
set_socket_group(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;

	return get_group(v, lc, &c->socket_group, &c->socket_gid);
}

static int
set_admin_group(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;

	return get_group(v, lc, &c->admin_group, &c->admin_gid);
}

/* --- models --- */

/* "auto" (0) leaves the estimate to the daemon. */
static int
set_model_memory(void *base, json_t *v, struct loadctx *lc)
{
	struct model_conf	*m = base;

	if (is_auto(v)) {
		m->memory = 0;
		return 0;
	}
	if (get_size(v, lc, &m->memory) == -1 || m->memory == 0)
		return keyerr(lc, "expected \"auto\" or a size like \"24G\"");
	return 0;
}

static int
set_model_command(void *base, json_t *v, struct loadctx *lc)
{
	return get_command(v, lc, &((struct model_conf *)base)->command);
}

static bool
env_name_ok(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return false;
	for (s++; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

static int
set_model_env(void *base, json_t *v, struct loadctx *lc)
{
	struct model_conf	*m = base;
	const char		*k;
	json_t			*val;
	size_t			 i = 0, len;

	if (!json_is_object(v))
		return keyerr(lc, "expected an object of strings");
	json_object_foreach(v, k, val) {
		if (!env_name_ok(k))
			return keyerr(lc, "bad variable name \"%s\"", k);
		if (!json_is_string(val))
			return keyerr(lc, "value of %s is not a string", k);
	}
	strv_free(m->env);
	m->env = xcalloc(json_object_size(v) + 1, sizeof(*m->env));
	json_object_foreach(v, k, val) {
		len = strlen(k) + json_string_length(val) + 2;
		m->env[i] = xcalloc(1, len);
		snprintf(m->env[i++], len, "%s=%s", k, json_string_value(val));
	}
	return 0;
}

static bool	 model_name_ok(const char *);

/* One more alias; a name may be an alias only once. */
static int
add_alias(struct config *c, struct loadctx *lc, const char *alias,
    const char *model)
{
	size_t	 i;

	if (!model_name_ok(alias) || !model_name_ok(model))
		return keyerr(lc, "bad alias \"%s\" of \"%s\": use letters, "
		    "digits and \"._+-\"", alias, model);
	for (i = 0; i < c->naliases; i++)
		if (strcmp(c->aliases[2 * i], alias) == 0)
			return keyerr(lc, "alias \"%s\" given twice", alias);
	c->aliases = realloc(c->aliases, (c->naliases + 1) * 2 *
	    sizeof(*c->aliases));
	if (c->aliases == NULL)
		fatal("realloc");
	c->aliases[2 * c->naliases] = xstrdup(alias);
	c->aliases[2 * c->naliases + 1] = xstrdup(model);
	c->naliases++;
	return 0;
}

/* "aliases": {"gpt-4o-mini": "qwen2.5-7b"} */
static int
set_aliases(void *base, json_t *v, struct loadctx *lc)
{
	const char	*k;
	json_t		*mv;

	if (!json_is_object(v))
		return keyerr(lc, "expected an object of alias: model");
	json_object_foreach(v, k, mv) {
		if (!json_is_string(mv))
			return keyerr(lc, "alias \"%s\": expected a model name",
			    k);
		if (add_alias(base, lc, k, json_string_value(mv)) == -1)
			return -1;
	}
	return 0;
}

/* A model's "aliases": ["small-chat"]; set_models() adds them. */
static int
check_model_aliases(void *base, json_t *v, struct loadctx *lc)
{
	json_t	*a;
	size_t	 i;

	if (!json_is_array(v))
		return keyerr(lc, "expected an array of names");
	json_array_foreach(v, i, a)
		if (!json_is_string(a))
			return keyerr(lc, "expected an array of names");
	return 0;
}

/* "pinned", "high", "normal" (the default) or "low": see poold(8). */
static int
set_model_priority(void *base, json_t *v, struct loadctx *lc)
{
	struct model_conf	*m = base;
	int			 prio;

	if (!json_is_string(v) ||
	    (prio = pool_priority_from_name(json_string_value(v))) == -1)
		return keyerr(lc, "expected \"pinned\", \"high\", "
		    "\"normal\" or \"low\"");
	m->priority = prio;
	return 0;
}

static const struct key model_keys[] = {
	{ "aliases", K_FUNC, 0, check_model_aliases },
	{ "priority", K_FUNC, 0, set_model_priority },
	{ "memory", K_FUNC, 0, set_model_memory },
	{ "idle_timeout", K_IDLE,
	    offsetof(struct model_conf, idle_timeout_ms), NULL },
	{ "command", K_FUNC, 0, set_model_command },
	{ "env", K_FUNC, 0, set_model_env },
	{ NULL, K_FUNC, 0, NULL }
};

static int	 apply_keys(const struct key *, void *, json_t *,
		    struct loadctx *);

/* As proto_model_name_ok(), which we do not link here. */
static bool
model_name_ok(const char *s)
{
	size_t	 n;

	if (*s == '.' || (n = strlen(s)) == 0 || n > PROTO_MODEL_NAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("._+-", *s) == NULL)
			return false;
	return true;
}

static void
model_free(struct model_conf *m)
{
	free(m->name);
	strv_free(m->command);
	strv_free(m->env);
}

static int
set_models(void *base, json_t *v, struct loadctx *lc)
{
	struct config		*c = base;
	struct model_conf	*m;
	const char		*name;
	json_t			*mv, *a;
	size_t			 i;

	if (!json_is_object(v))
		return keyerr(lc, "expected an object of models");
	json_object_foreach(v, name, mv) {
		if (!model_name_ok(name))
			return keyerr(lc, "bad model name \"%s\": use letters, "
			    "digits and \"._+-\"", name);
		if (!json_is_object(mv))
			return keyerr(lc, "model \"%s\" is not an object",
			    name);
	}
	while (c->nmodels > 0)
		model_free(&c->models[--c->nmodels]);
	free(c->models);
	c->models = xcalloc(json_object_size(v) + 1, sizeof(*c->models));
	json_object_foreach(v, name, mv) {
		m = &c->models[c->nmodels++];
		m->name = xstrdup(name);
		m->idle_timeout_ms = -1;
		m->priority = -1;
		lc->model = name;
		if (apply_keys(model_keys, m, mv, lc) == -1)
			return -1;
		json_array_foreach(json_object_get(mv, "aliases"), i, a) {
			lc->key = "aliases";
			if (add_alias(c, lc, json_string_value(a), name) == -1)
				return -1;
		}
	}
	lc->model = NULL;
	return 0;
}

static int
set_http_listen(void *base, json_t *v, struct loadctx *lc)
{
	struct http_conf	*h = base;
	const char		*s, *colon;

	if (!json_is_string(v) || (s = json_string_value(v)) == NULL ||
	    (colon = strrchr(s, ':')) == NULL || colon == s ||
	    colon[1] == '\0' || strspn(colon + 1, "0123456789") !=
	    strlen(colon + 1) || atol(colon + 1) > 65535)
		return keyerr(lc, "expected \"ADDRESS:PORT\", like "
		    "\"127.0.0.1:8080\" or \"[::1]:8080\" (port 0: any)");
	free(h->listen);
	h->listen = xstrdup(s);
	return 0;
}

static int
set_http_max_body(void *base, json_t *v, struct loadctx *lc)
{
	struct http_conf	*h = base;

	if (get_size(v, lc, &h->max_body) == -1)
		return -1;
	if (h->max_body == 0 || h->max_body > CONF_HTTP_MAX_BODY_MAX)
		return keyerr(lc, "must be from 1 byte to 1G");
	return 0;
}

static int
set_http_cors(void *base, json_t *v, struct loadctx *lc)
{
	struct http_conf	*h = base;
	json_t			*o;
	size_t			 i;

	if (!json_is_array(v))
		return keyerr(lc, "expected an array of origins like "
		    "\"http://localhost:3000\"");
	json_array_foreach(v, i, o)
		if (!json_is_string(o) || json_string_length(o) == 0)
			return keyerr(lc, "expected an array of origins like "
			    "\"http://localhost:3000\"");
	strv_free(h->cors_origins);
	h->cors_origins = xcalloc(json_array_size(v) + 1, sizeof(char *));
	h->ncors = 0;
	json_array_foreach(v, i, o)
		h->cors_origins[h->ncors++] = xstrdup(json_string_value(o));
	return 0;
}

static const struct key http_keys[] = {
#define HOFF(f)	offsetof(struct http_conf, f)
	{ "listen", K_FUNC, 0, set_http_listen },
	{ "token_file", K_PATH_OR_NULL, HOFF(token_file), NULL },
	{ "max_body", K_FUNC, 0, set_http_max_body },
	{ "max_body_total", K_SIZE_POS, HOFF(max_body_total), NULL },
	{ "max_conns", K_COUNT, HOFF(max_conns), NULL },
	{ "max_event_streams", K_COUNT, HOFF(max_event_streams), NULL },
	{ "cors_origins", K_FUNC, 0, set_http_cors },
	{ "idle_timeout", K_IDLE, HOFF(idle_timeout_ms), NULL },
	{ "head_timeout", K_DURATION, HOFF(head_timeout_ms), NULL },
	{ NULL, K_FUNC, 0, NULL }
#undef HOFF
};

/* An error in a section names its key "SECTION.KEY", not just "KEY". */
static int
section_keyerr(struct loadctx *lc, const char *section)
{
	char	 was[512], name[128], *at;

	snprintf(name, sizeof(name), "\"%s\"", lc->key);
	snprintf(was, sizeof(was), "%s", lc->err);
	if ((at = strstr(was, name)) != NULL)
		snprintf(lc->err, lc->errlen, "%.*s\"%s.%s", (int)(at - was),
		    was, section, at + 1);
	return -1;
}

/* "http": null is off; an object without "listen" too. */
static int
set_http(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;
	const char	*key = lc->key;

	if (json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return keyerr(lc, "expected an object or null");
	if (apply_keys(http_keys, &c->http, v, lc) == -1)
		return section_keyerr(lc, "http");
	if (c->http.max_body_total != 0 &&
	    c->http.max_body_total < c->http.max_body) {
		lc->key = "max_body_total";
		keyerr(lc, "must be at least max_body");
		return section_keyerr(lc, "http");
	}
	/* Streams stay open: they must leave room for requests. */
	if (c->http.max_event_streams >= c->http.max_conns) {
		lc->key = "max_event_streams";
		keyerr(lc, "must be below max_conns (%u)", c->http.max_conns);
		return section_keyerr(lc, "http");
	}
	lc->key = key;
	return 0;
}

/* --- "cluster" --- */

static int
set_cluster_etcd(void *base, json_t *v, struct loadctx *lc)
{
	struct cluster_conf	*k = base;
	json_t			*o;
	size_t			 i;

	if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > CONF_CLUSTER_ETCD_MAX)
		return keyerr(lc, "expected an array of 1 to %d etcd URLs like "
		    "\"http://10.0.0.110:2379\"", CONF_CLUSTER_ETCD_MAX);
	json_array_foreach(v, i, o)
		if (!json_is_string(o) ||
		    (strncmp(json_string_value(o), "http://", 7) != 0 &&
		    strncmp(json_string_value(o), "https://", 8) != 0))
			return keyerr(lc, "expected URLs like "
			    "\"http://10.0.0.110:2379\" or https://");
	strv_free(k->etcd);
	k->etcd = xcalloc(json_array_size(v) + 1, sizeof(char *));
	k->netcd = 0;
	json_array_foreach(v, i, o)
		k->etcd[k->netcd++] = xstrdup(json_string_value(o));
	return 0;
}

/* Node names go into etcd keys: [A-Za-z0-9._-], 1..63, no leading '.'. */
static int
set_cluster_name(void *base, json_t *v, struct loadctx *lc)
{
	struct cluster_conf	*k = base;
	const char		*s;

	if (!json_is_string(v) || (s = json_string_value(v))[0] == '\0' ||
	    s[0] == '.' || strlen(s) > 63 || strspn(s, "ABCDEFGHIJKLMNOPQRS"
	    "TUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(s))
		return keyerr(lc, "expected a node name of 1 to 63 letters, "
		    "digits, '.', '_' or '-' like \"studio-a\"");
	free(k->name);
	k->name = xstrdup(s);
	return 0;
}

static int
set_cluster_listen(void *base, json_t *v, struct loadctx *lc)
{
	struct cluster_conf	*k = base;
	const char		*s, *colon;

	if (!json_is_string(v) || (s = json_string_value(v)) == NULL ||
	    (colon = strrchr(s, ':')) == NULL || colon == s ||
	    colon[1] == '\0' || strspn(colon + 1, "0123456789") !=
	    strlen(colon + 1) || atol(colon + 1) < 1 ||
	    atol(colon + 1) > 65535)
		return keyerr(lc, "expected \"ADDRESS:PORT\", like "
		    "\"10.0.0.110:7070\"");
	free(k->listen);
	k->listen = xstrdup(s);
	return 0;
}

/* A numeric address: servers listen on it and peers reach them there. */
static int
set_cluster_advertise(void *base, json_t *v, struct loadctx *lc)
{
	struct cluster_conf	*k = base;
	unsigned char		 a[16];
	const char		*s;

	if (!json_is_string(v) || ((s = json_string_value(v)),
	    inet_pton(AF_INET, s, a) != 1 && inet_pton(AF_INET6, s, a) != 1))
		return keyerr(lc, "expected a numeric IPv4 or IPv6 address "
		    "like \"10.0.0.110\"");
	free(k->advertise);
	k->advertise = xstrdup(s);
	return 0;
}

static int
set_cluster_prefix(void *base, json_t *v, struct loadctx *lc)
{
	struct cluster_conf	*k = base;
	const char		*s;
	size_t			 n;

	if (!json_is_string(v) || (s = json_string_value(v))[0] != '/' ||
	    (n = strlen(s)) < 2 || n > 200 || s[n - 1] == '/' ||
	    strchr(s, '\n') != NULL)
		return keyerr(lc, "expected a key prefix like "
		    "\"/poold/v1/default\" (no trailing '/')");
	free(k->prefix);
	k->prefix = xstrdup(s);
	return 0;
}

static const struct key cluster_keys[] = {
#define COFF(f)	offsetof(struct cluster_conf, f)
	{ "etcd", K_FUNC, 0, set_cluster_etcd },
	{ "name", K_FUNC, 0, set_cluster_name },
	{ "listen", K_FUNC, 0, set_cluster_listen },
	{ "advertise", K_FUNC, 0, set_cluster_advertise },
	{ "secret_file", K_PATH, COFF(secret_file), NULL },
	{ "prefix", K_FUNC, 0, set_cluster_prefix },
	{ "lease_ttl", K_DURATION, COFF(lease_ttl_ms), NULL },
	{ "deadline", K_DURATION, COFF(deadline_ms), NULL },
	{ "ping", K_DURATION, COFF(ping_ms), NULL },
	{ "etcd_user", K_PATH_OR_NULL, COFF(etcd_user), NULL },
	{ "etcd_password_file", K_PATH_OR_NULL, COFF(etcd_password_file),
	    NULL },
	{ "etcd_ca_file", K_PATH_OR_NULL, COFF(etcd_ca_file), NULL },
	{ "etcd_cert_file", K_PATH_OR_NULL, COFF(etcd_cert_file), NULL },
	{ "etcd_key_file", K_PATH_OR_NULL, COFF(etcd_key_file), NULL },
	{ NULL, K_FUNC, 0, NULL }
#undef COFF
};

/* The advertised address: "advertise", else listen's if numeric and not
 * a wildcard. */
static int
cluster_advertise_default(struct cluster_conf *k, struct loadctx *lc)
{
	unsigned char	 a[16];
	char		 host[128];
	const char	*colon = strrchr(k->listen, ':');
	size_t		 n = (size_t)(colon - k->listen);

	if (k->advertise != NULL)
		return 0;
	if (n >= sizeof(host))
		n = sizeof(host) - 1;
	memcpy(host, k->listen, n);
	host[n] = '\0';
	if (host[0] == '[' && n > 1 && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	if ((inet_pton(AF_INET, host, a) == 1 && strcmp(host, "0.0.0.0")) ||
	    (inet_pton(AF_INET6, host, a) == 1 && strcmp(host, "::"))) {
		k->advertise = xstrdup(host);
		return 0;
	}
	lc->key = "advertise";
	return keyerr(lc, "is needed: \"listen\" names no address other "
	    "machines can reach (give the numeric address, like "
	    "\"10.0.0.110\")");
}

/* "cluster": null or absent is one machine, as without it. */
static int
set_cluster(void *base, json_t *v, struct loadctx *lc)
{
	struct config		*c = base;
	struct cluster_conf	*k = &c->cluster;
	static const char *const needed[] = { "etcd", "name", "listen",
	    "secret_file", NULL };
	size_t			 i;

	if (json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return keyerr(lc, "expected an object or null");
	if (apply_keys(cluster_keys, k, v, lc) == -1)
		return section_keyerr(lc, "cluster");
	for (i = 0; needed[i] != NULL; i++)
		if (json_object_get(v, needed[i]) == NULL) {
			lc->key = needed[i];
			keyerr(lc, "is needed in a cluster");
			return section_keyerr(lc, "cluster");
		}
	if (cluster_advertise_default(k, lc) == -1)
		return section_keyerr(lc, "cluster");
	lc->key = "cluster";
	return 0;
}

/* --- usage and preloading --- */

/* The most models "preload" may name or count: more would be a typo. */
#define CONF_PRELOAD_MAX	1024

/* "preload": N (the N most used) or ["name", ...]; 0 or [] is off. */
static int
set_preload(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;
	json_t		*a;
	size_t		 i, j;

	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= CONF_PRELOAD_MAX) {
		c->preload_n = (unsigned)json_integer_value(v);
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > CONF_PRELOAD_MAX)
		return keyerr(lc, "expected a number of models from 0 to %d "
		    "or an array of model names", CONF_PRELOAD_MAX);
	json_array_foreach(v, i, a) {
		if (!json_is_string(a) || !model_name_ok(json_string_value(a)))
			return keyerr(lc, "element %zu is not a model name "
			    "(letters, digits and \"._+-\")", i);
		for (j = 0; j < i; j++)
			if (strcmp(json_string_value(a),
			    json_string_value(json_array_get(v, j))) == 0)
				return keyerr(lc, "\"%s\" is named twice",
				    json_string_value(a));
	}
	strv_free(c->preload_list);
	c->preload_list = xcalloc(json_array_size(v) + 1, sizeof(char *));
	c->npreload_list = 0;
	json_array_foreach(v, i, a)
		c->preload_list[c->npreload_list++] =
		    xstrdup(json_string_value(a));
	c->preload_n = 0;
	return 0;
}

/* "preload_refill": a duration, or false or 0: off. */
static int
set_preload_refill(void *base, json_t *v, struct loadctx *lc)
{
	struct config	*c = base;

	if (json_is_false(v)) {
		c->preload_refill_ms = 0;
		return 0;
	}
	if (json_is_true(v))
		return keyerr(lc, "expected a duration like \"10m\", or "
		    "false");
	return get_duration(v, lc, &c->preload_refill_ms);
}

static const struct key top_keys[] = {
#define OFF(f)	offsetof(struct config, f)
	{ "socket", K_FUNC, 0, set_socket },
	{ "socket_mode", K_FUNC, 0, set_socket_mode },
	{ "socket_group", K_FUNC, 0, set_socket_group },
	{ "admin_group", K_FUNC, 0, set_admin_group },
	{ "models_dir", K_PATH, OFF(models_dir), NULL },
	{ "command", K_FUNC, 0, set_command },
	{ "health_path", K_FUNC, 0, set_health_path },
	{ "api_keys", K_FUNC, 0, set_api_keys },
	{ "ports", K_FUNC, 0, set_ports },
	{ "memory_limit", K_FUNC, 0, set_memory_limit },
	{ "reserved", K_SIZE, OFF(reserved), NULL },
	{ "per_model", K_SIZE_POS, OFF(per_model), NULL },
	{ "max_servers", K_FUNC, 0, set_max_servers },
	{ "eviction", K_FUNC, 0, set_eviction },
	{ "idle_timeout", K_IDLE, OFF(idle_timeout_ms), NULL },
	{ "start_timeout", K_DURATION, OFF(start_timeout_ms), NULL },
	{ "stop_timeout", K_DURATION, OFF(stop_timeout_ms), NULL },
	{ "acquire_timeout", K_DURATION, OFF(acquire_timeout_ms), NULL },
	{ "log_dir", K_PATH_OR_NULL, OFF(log_dir), NULL },
	{ "max_clients", K_COUNT, OFF(max_clients), NULL },
	{ "max_pending", K_COUNT, OFF(max_pending), NULL },
	{ "max_waiters", K_COUNT, OFF(max_waiters), NULL },
	{ "outbuf_bytes", K_FUNC, 0, set_outbuf_bytes },
	{ "max_line_bytes", K_FUNC, 0, set_max_line_bytes },
	{ "line_timeout", K_DURATION, OFF(line_timeout_ms), NULL },
	{ "idle_client_timeout", K_IDLE, OFF(idle_client_timeout_ms), NULL },
	{ "state_file", K_PATH_OR_NULL, OFF(state_file), NULL },
	{ "rss_interval", K_IDLE, OFF(rss_interval_ms), NULL },
	{ "max_failures", K_COUNT, OFF(max_failures), NULL },
	{ "failed_cooldown", K_DURATION, OFF(failed_cooldown_ms), NULL },
	{ "health_interval", K_FUNC, 0, set_health_interval },
	{ "min_available", K_SIZE, OFF(min_available), NULL },
	{ "gpu_limit", K_SIZE, OFF(gpu_limit), NULL },
	{ "max_leases", K_COUNT, OFF(max_leases), NULL },
	{ "max_leases_per_client", K_COUNT, OFF(max_leases_per_client), NULL },
	{ "models", K_FUNC, 0, set_models },
	{ "cgroup", K_FUNC, 0, set_cgroup },
	{ "http", K_FUNC, 0, set_http },
	{ "aliases", K_FUNC, 0, set_aliases },
	{ "cluster", K_FUNC, 0, set_cluster },
	{ "low_idle_timeout", K_IDLE, OFF(low_idle_timeout_ms), NULL },
	{ "usage_half_life", K_DURATION, OFF(usage_half_life_ms), NULL },
	{ "preload", K_FUNC, 0, set_preload },
	{ "preload_refill", K_FUNC, 0, set_preload_refill },
	{ NULL, K_FUNC, 0, NULL }
#undef OFF
};

static int
apply_key(const struct key *k, void *base, json_t *v, struct loadctx *lc)
{
	void	*p = (char *)base + k->off;

	switch (k->type) {
	case K_FUNC:
		return k->fn(base, v, lc);
	case K_PATH:
	case K_PATH_OR_NULL:
		return get_path(v, lc, p, k->type == K_PATH_OR_NULL);
	case K_SIZE:
		return get_size(v, lc, p);
	case K_SIZE_POS:
		if (get_size(v, lc, p) == -1)
			return -1;
		return *(uint64_t *)p > 0 ? 0 : keyerr(lc, "must be > 0");
	case K_IDLE:
		return get_duration(v, lc, p);
	case K_DURATION:
		if (get_duration(v, lc, p) == -1)
			return -1;
		return *(int64_t *)p > 0 ? 0 : keyerr(lc, "must be > 0");
	case K_COUNT:
		return get_count(v, lc, p);
	}
	return -1;
}

static int
apply_keys(const struct key *keys, void *base, json_t *obj,
    struct loadctx *lc)
{
	const struct key	*k;
	const char		*name;
	json_t			*v;

	json_object_foreach(obj, name, v) {
		for (k = keys; k->name != NULL; k++)
			if (strcmp(k->name, name) == 0)
				break;
		lc->key = name;
		if (k->name == NULL) {
			snprintf(lc->err, lc->errlen, "%s: %s%s%sunknown key "
			    "\"%s\"", lc->path, lc->model ? "model \"" : "",
			    lc->model ? lc->model : "",
			    lc->model ? "\": " : "", name);
			return -1;
		}
		if (apply_key(k, base, v, lc) == -1)
			return -1;
	}
	return 0;
}

/* --- the public face --- */

/* Root: CONF_DEFAULT_STATE_FILE; others: under the XDG state folder. */
static char *
default_state_file(void)
{
	const char	*base;
	char		*path;
	int		 n;

	if (geteuid() == 0)
		return xstrdup(CONF_DEFAULT_STATE_FILE);
	/* The XDG spec says to ignore a relative $XDG_STATE_HOME. */
	if ((base = getenv("XDG_STATE_HOME")) != NULL && base[0] == '/')
		n = asprintf(&path, "%s/poold/state.json", base);
	else if ((base = getenv("HOME")) != NULL && base[0] == '/')
		n = asprintf(&path, "%s/.local/state/poold/state.json", base);
	else
		return NULL;
	if (n == -1)
		fatal("asprintf");
	return path;
}

void
config_defaults(struct config *c)
{
	size_t	 i, n = sizeof(default_command) / sizeof(default_command[0]);

	memset(c, 0, sizeof(*c));
	c->socket_mode = CONF_DEFAULT_SOCKET_MODE;
	c->models_dir = xstrdup(CONF_DEFAULT_MODELS_DIR);
	c->command = xcalloc(n, sizeof(*c->command));
	for (i = 0; default_command[i] != NULL; i++)
		c->command[i] = xstrdup(default_command[i]);
	c->health_path = xstrdup(CONF_DEFAULT_HEALTH_PATH);
	c->server_host = xstrdup(CONF_DEFAULT_SERVER_HOST);
	c->port_min = CONF_DEFAULT_PORT_MIN;
	c->port_max = CONF_DEFAULT_PORT_MAX;
	c->memory_limit_auto = true;
	c->reserved = CONF_DEFAULT_RESERVED;
	c->per_model = CONF_DEFAULT_PER_MODEL;
	c->max_servers_auto = true;
	c->idle_timeout_ms = CONF_DEFAULT_IDLE_MS;
	c->low_idle_timeout_ms = CONF_DEFAULT_LOW_IDLE_MS;
	c->usage_half_life_ms = CONF_DEFAULT_USAGE_HALF_LIFE_MS;
	c->eviction = POOL_POLICY_FREQ;
	c->preload_n = CONF_DEFAULT_PRELOAD;
	c->start_timeout_ms = CONF_DEFAULT_START_MS;
	c->stop_timeout_ms = CONF_DEFAULT_STOP_MS;
	c->acquire_timeout_ms = CONF_DEFAULT_ACQUIRE_MS;
	c->max_clients = CONF_DEFAULT_MAX_CLIENTS;
	c->max_pending = CONF_DEFAULT_MAX_PENDING;
	c->max_waiters = CONF_DEFAULT_MAX_WAITERS;
	c->outbuf_bytes = CONF_DEFAULT_OUTBUF_BYTES;
	c->max_line_bytes = CONF_DEFAULT_MAX_LINE_BYTES;
	c->line_timeout_ms = CONF_DEFAULT_LINE_MS;
	c->idle_client_timeout_ms = CONF_DEFAULT_IDLE_CLIENT_MS;
	c->state_file = default_state_file();
	c->state_file_default = true;
	c->rss_interval_ms = CONF_DEFAULT_RSS_INTERVAL_MS;
	c->max_failures = CONF_DEFAULT_MAX_FAILURES;
	c->failed_cooldown_ms = CONF_DEFAULT_FAILED_COOLDOWN_MS;
	c->health_interval_ms = CONF_DEFAULT_HEALTH_INTERVAL_MS;
	c->min_available = CONF_DEFAULT_MIN_AVAILABLE;
	c->max_leases = CONF_DEFAULT_MAX_LEASES;
	c->max_leases_per_client = CONF_DEFAULT_MAX_CLIENT_LEASES;
	c->http.max_body = CONF_DEFAULT_HTTP_MAX_BODY;
	c->http.max_conns = CONF_DEFAULT_HTTP_MAX_CONNS;
	c->http.idle_timeout_ms = CONF_DEFAULT_HTTP_IDLE_MS;
	c->http.head_timeout_ms = CONF_DEFAULT_HTTP_HEAD_MS;
	c->cluster.prefix = xstrdup(CONF_DEFAULT_CLUSTER_PREFIX);
	c->cluster.lease_ttl_ms = CONF_DEFAULT_CLUSTER_TTL_MS;
	c->cluster.deadline_ms = CONF_DEFAULT_CLUSTER_DEADLINE_MS;
	c->cluster.ping_ms = CONF_DEFAULT_CLUSTER_PING_MS;
}

/* The file's top-level object, or NULL with a message. */
static json_t *
read_json(const char *path, char *err, size_t errlen)
{
	struct stat	 st;
	json_error_t	 je;
	json_t		*root;
	FILE		*fp;

	if ((fp = fopen(path, "r")) == NULL || fstat(fileno(fp), &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
		fclose(fp);
		return NULL;
	}
	root = json_loadf(fp, JSON_REJECT_DUPLICATES, &je);
	fclose(fp);
	if (root == NULL && je.line > 0)
		snprintf(err, errlen, "%s: line %d column %d: %s",
		    path, je.line, je.column, je.text);
	else if (root == NULL)
		snprintf(err, errlen, "%s: %s", path, je.text);
	else if (!json_is_object(root)) {
		snprintf(err, errlen, "%s: expected a JSON object", path);
		json_decref(root);
		root = NULL;
	}
	return root;
}

/* On error *cfg is left as it was. */
int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct loadctx	 lc = { path, NULL, NULL, err, errlen };
	struct config	 nc;
	json_t		*root;
	int		 rc;

	if ((root = read_json(path, err, errlen)) == NULL)
		return -1;
	config_defaults(&nc);
	nc.path = xstrdup(path);
	rc = apply_keys(top_keys, &nc, root, &lc);
	/* Unless named, the state file is one per socket (see main.c). */
	nc.state_file_default = json_object_get(root, "state_file") == NULL;
	/* In a cluster, servers listen where other machines reach them, so
	 * each must have a key (unless api_keys says false). */
	if (rc == 0 && nc.cluster.etcd != NULL) {
		if (json_object_get(root, "api_keys") == NULL)
			nc.api_keys = true;
		if (config_set_server_host(&nc, nc.cluster.advertise, err,
		    errlen) == -1)
			rc = -1;
	}
	json_decref(root);
	if (rc == -1) {
		config_free(&nc);
		return -1;
	}
	config_free(cfg);
	*cfg = nc;
	return 0;
}

void
config_free(struct config *c)
{
	size_t	 i;

	free(c->path);
	free(c->socket);
	free(c->socket_group);
	free(c->admin_group);
	free(c->models_dir);
	strv_free(c->command);
	free(c->health_path);
	free(c->server_host);
	free(c->log_dir);
	free(c->state_file);
	for (i = 0; i < c->nmodels; i++)
		model_free(&c->models[i]);
	free(c->models);
	free(c->http.listen);
	free(c->http.token_file);
	strv_free(c->http.cors_origins);
	strv_free(c->cluster.etcd);
	free(c->cluster.name);
	free(c->cluster.listen);
	free(c->cluster.advertise);
	free(c->cluster.secret_file);
	free(c->cluster.prefix);
	free(c->cluster.etcd_user);
	free(c->cluster.etcd_password_file);
	free(c->cluster.etcd_ca_file);
	free(c->cluster.etcd_cert_file);
	free(c->cluster.etcd_key_file);
	for (i = 0; i < 2 * c->naliases; i++)
		free(c->aliases[i]);
	free(c->aliases);
	strv_free(c->preload_list);
	memset(c, 0, sizeof(*c));
}

int
config_set_server_host(struct config *c, const char *host, char *err,
    size_t errlen)
{
	unsigned char	 addr[sizeof(struct in6_addr)];

	/* Numeric: poold connects to it from its loop, where a name lookup
	 * would block, and a name could mean another machine tomorrow. */
	if (inet_pton(AF_INET, host, addr) != 1 &&
	    inet_pton(AF_INET6, host, addr) != 1) {
		snprintf(err, errlen, "\"%s\" is not a numeric IPv4 or IPv6 "
		    "address", host);
		return -1;
	}
	free(c->server_host);
	c->server_host = xstrdup(host);
	return 0;
}

void
config_host_port(const struct config *c, int port, char *buf, size_t len)
{
	bool	 v6 = strchr(c->server_host, ':') != NULL;

	snprintf(buf, len, "%s%s%s:%d", v6 ? "[" : "", c->server_host,
	    v6 ? "]" : "", port);
}

char *const *
config_command(const struct config *c, const struct model_conf *mc)
{
	return mc != NULL && mc->command != NULL ? mc->command : c->command;
}

const struct model_conf *
config_model(const struct config *c, const char *name)
{
	size_t	 i;

	for (i = 0; i < c->nmodels; i++)
		if (strcmp(c->models[i].name, name) == 0)
			return &c->models[i];
	return NULL;
}
