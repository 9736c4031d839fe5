/*
 * proto.c — framing and the request/reply codec.  See proto.h.
 *
 * No I/O, no logging, no state.  Whatever a client sends may end up in a
 * message, so it is cut short and made printable, valid UTF-8 before it is
 * quoted: a reply must always be encodable, whatever the request was.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"

#define TIMEOUT_MAX_MS		86400000	/* one day */
#define STR(x)			#x
#define XSTR(x)			STR(x)
#define QUOTE_MAX_CHARS		40	/* of user input in a message */
#define QUOTE_MAX_BYTES		(QUOTE_MAX_CHARS * 4 + 8)
#define ELLIPSIS		"\xe2\x80\xa6"		/* U+2026 */
#define DUMP_FLAGS		(JSON_COMPACT | JSON_PRESERVE_ORDER)
#define MODEL_ALPHABET		"ABCDEFGHIJKLMNOPQRSTUVWXYZ" \
				"abcdefghijklmnopqrstuvwxyz0123456789._+-"

/* A request's fields besides "cmd" and "id", in their order on the wire. */
enum { FLD_MODEL, FLD_LEASE, FLD_TIMEOUT, FLD_HOLD, FLD_FORCE, FLD_COUNT };
#define F(fld)		(1u << FLD_##fld)

static const struct field {
	const char	*key;
	json_type	 type;		/* JSON_TRUE: a boolean */
	int64_t		 min, max;	/* for integers */
	const char	*what;		/* for "must be …" */
} fields[FLD_COUNT] = {
	[FLD_MODEL]   = { "model", JSON_STRING, 0, 0, "a string" },
	[FLD_LEASE]   = { "lease", JSON_INTEGER, 1, INT64_MAX,
			  "a positive integer" },
	[FLD_TIMEOUT] = { "timeout_ms", JSON_INTEGER, 0, TIMEOUT_MAX_MS,
			  "an integer from 0 to " XSTR(TIMEOUT_MAX_MS) },
	[FLD_HOLD]    = { "hold", JSON_TRUE, 0, 0, "true or false" },
	[FLD_FORCE]   = { "force", JSON_TRUE, 0, 0, "true or false" },
};

/* The fields each command reads; it ignores the others. */
static const struct cmd_info {
	const char	*name;
	unsigned	 uses;
	unsigned	 needs;
} cmds[] = {
	[PROTO_CMD_ACQUIRE] = { "ACQUIRE", F(MODEL) | F(TIMEOUT) | F(HOLD),
				F(MODEL) },
	[PROTO_CMD_RELEASE] = { "RELEASE", F(LEASE), F(LEASE) },
	[PROTO_CMD_STATS]   = { "STATS", 0, 0 },
	[PROTO_CMD_EVICT]   = { "EVICT", F(MODEL) | F(FORCE), F(MODEL) },
	[PROTO_CMD_MODELS]  = { "MODELS", 0, 0 },
	[PROTO_CMD_PING]    = { "PING", 0, 0 },
	[PROTO_CMD_LEASE]   = { "LEASE", F(LEASE), F(LEASE) },
	[PROTO_CMD_SUBSCRIBE] = { "SUBSCRIBE", 0, 0 },
	[PROTO_CMD_METRICS] = { "METRICS", 0, 0 },
	[PROTO_CMD_RELOAD]  = { "RELOAD", 0, 0 },
	[PROTO_CMD_PIN]     = { "PIN", F(MODEL), F(MODEL) },
	[PROTO_CMD_UNPIN]   = { "UNPIN", F(MODEL), F(MODEL) },
};
#define CMD_COUNT	(sizeof(cmds) / sizeof(cmds[0]))

static const char *const err_names[PROTO_E__COUNT] = {
	"ok", "bad_request", "unknown_command", "unknown_model", "busy",
	"too_large", "start_failed", "timeout", "not_found", "shutting_down",
	"forbidden", "internal", "lease_lost",
};
_Static_assert(PROTO_E_LEASE_LOST == 12 && PROTO_E__COUNT == 13,
    "err_names must follow enum proto_err");

/* --- text helpers --- */

/* Length of the valid UTF-8 character at s, or 0 (stray byte, overlong,
 * surrogate, past U+10FFFF, cut short). */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	static const uint32_t min_cp[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t		 need, i;
	uint32_t	 cp;

	need = s[0] < 0x80 ? 1 : s[0] < 0xc0 ? 0 : s[0] < 0xe0 ? 2 :
	    s[0] < 0xf0 ? 3 : s[0] < 0xf8 ? 4 : 0;
	if (need <= 1)
		return need;
	if (n < need)
		return 0;
	cp = s[0] & (0x7f >> need);
	for (i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min_cp[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

/*
 * Copies at most maxchars characters of src[0..n) into dst as printable
 * UTF-8: C0, DEL and C1 controls and bytes that are not UTF-8 become '?',
 * an ellipsis marks a cut.  Always NUL-terminates (dstlen >= 1).
 */
static void
clean_text(char *dst, size_t dstlen, const char *src, size_t n,
    size_t maxchars)
{
	const unsigned char	*s = (const unsigned char *)src;
	size_t			 i = 0, o = 0, chars, k;

	/* Keep room for the longest character plus the ellipsis. */
	for (chars = 0; i < n && chars < maxchars &&
	    o + 4 + sizeof(ELLIPSIS) < dstlen; chars++) {
		k = utf8_len(s + i, n - i);
		if (k == 0 || (k == 1 && (s[i] < 0x20 || s[i] == 0x7f)) ||
		    (k == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0)) {
			dst[o++] = '?';
			i += k ? k : 1;
		} else {
			memcpy(dst + o, s + i, k);
			o += k;
			i += k;
		}
	}
	if (i < n && o + sizeof(ELLIPSIS) <= dstlen) {
		memcpy(dst + o, ELLIPSIS, sizeof(ELLIPSIS) - 1);
		o += sizeof(ELLIPSIS) - 1;
	}
	dst[o] = '\0';
}

/* Drops a last UTF-8 character that a truncation cut in two. */
static void
utf8_trim(char *str)
{
	unsigned char	*s = (unsigned char *)str;
	size_t		 end = strlen(str), j = end;

	while (j > 0 && end - j < 3 && (s[j - 1] & 0xc0) == 0x80)
		j--;
	if (j > 0 && s[j - 1] >= 0xc0 && utf8_len(s + j - 1, end - j + 1) == 0)
		s[j - 1] = '\0';
}

/* A decoder's input and message buffer, to keep argument lists short. */
struct dec {
	json_t			*root;
	struct proto_request	*req;
	char			*msg;
	size_t			 msglen;
};

/* Writes the message, if there is a buffer, and returns err. */
static enum proto_err __attribute__((format(printf, 3, 4)))
fail(struct dec *d, enum proto_err err, const char *fmt, ...)
{
	va_list	 ap;

	if (d->msg == NULL || d->msglen == 0)
		return err;
	va_start(ap, fmt);
	if (vsnprintf(d->msg, d->msglen, fmt, ap) < 0)
		d->msg[0] = '\0';
	va_end(ap);
	utf8_trim(d->msg);
	return err;
}

/* What a value is, for "must be X, not Y": "a string", "-5", … */
static const char *
describe(const json_t *v, char *buf, size_t len)
{
	static const char *const names[] = {
		[JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array",
		[JSON_STRING] = "a string", [JSON_REAL] = "a real number",
		[JSON_TRUE] = "true", [JSON_FALSE] = "false",
		[JSON_NULL] = "null",
	};

	if (!json_is_integer(v))
		return names[json_typeof(v)];
	snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return buf;
}

static enum proto_err
must_be(struct dec *d, const char *key, const char *what, const json_t *v)
{
	char	 num[32];

	return fail(d, PROTO_E_BAD_REQUEST, "\"%s\" must be %s, not %s", key,
	    what, describe(v, num, sizeof(num)));
}

/* s equals the upper-case name, ignoring case: by hand, ASCII only, so
 * that no locale changes what "ping" means. */
static bool
cmd_eq(const char *s, const char *name)
{
	for (; *s != '\0' && *name != '\0'; s++, name++)
		if (*s != *name && !(*s >= 'a' && *s <= 'z' && *s - 32 == *name))
			return false;
	return *s == '\0' && *name == '\0';
}

/* --- framing --- */

long
proto_line(const char *buf, size_t len, size_t *consumed)
{
	const char	*nl = memchr(buf, '\n', len);
	size_t		 n;

	*consumed = 0;
	if (nl == NULL)
		return -1;
	n = (size_t)(nl - buf);
	*consumed = n + 1;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	return (long)n;
}

/* --- names --- */

const char *
proto_cmd_name(enum proto_cmd cmd)
{
	if ((size_t)cmd < CMD_COUNT && cmds[cmd].name != NULL)
		return cmds[cmd].name;
	return "NONE";
}

/* Never NULL: a reply must carry a code, so a stray value says "internal". */
const char *
proto_err_name(enum proto_err err)
{
	return err_names[(size_t)err < PROTO_E__COUNT ? err : PROTO_E_INTERNAL];
}

enum proto_err
proto_err_from_name(const char *name)
{
	size_t	 i;

	for (i = 0; name != NULL && i < PROTO_E__COUNT; i++)
		if (strcmp(name, err_names[i]) == 0)
			return (enum proto_err)i;
	return PROTO_E__COUNT;
}

/* A name becomes a file name and part of argv: a small alphabet, and no
 * leading '.' or '-' (hidden files, "..", options). */
bool
proto_model_name_ok(const char *name)
{
	size_t	 n;

	if (name == NULL || name[0] == '.' || name[0] == '-')
		return false;
	n = strnlen(name, PROTO_MODEL_NAME_MAX + 1);
	return n >= 1 && n <= PROTO_MODEL_NAME_MAX &&
	    strspn(name, MODEL_ALPHABET) == n;
}

/* --- requests --- */

void
proto_request_init(struct proto_request *req)
{
	memset(req, 0, sizeof(*req));	/* PROTO_CMD_NONE, no id, model "" */
	req->timeout_ms = -1;
	req->hold = true;
}

void
proto_request_clear(struct proto_request *req)
{
	json_decref(req->id);
	proto_request_init(req);
}

/* Parses a whole line as one JSON value of any type into d->root. */
static enum proto_err
parse_line(struct dec *d, const char *line, size_t len)
{
	json_error_t	 jerr;
	char		 text[sizeof(jerr.text) * 2];

	/* No JSON_DISABLE_EOF_CHECK: anything after the value is an error.
	 * Without JSON_ALLOW_NUL, jansson refuses NUL and invalid UTF-8. */
	d->root = json_loadb(line, len,
	    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (d->root != NULL)
		return PROTO_OK;
	/* jansson's text may quote the offending bytes. */
	clean_text(text, sizeof(text), jerr.text, strlen(jerr.text),
	    sizeof(jerr.text));
	if (jerr.column <= 0)
		return fail(d, PROTO_E_BAD_REQUEST, "line is not JSON: %s", text);
	return fail(d, PROTO_E_BAD_REQUEST, "line is not JSON: %s at column %d",
	    text, jerr.column);
}

/*
 * Counts nested objects and arrays ({"a":[1]} is 2 deep).  jansson's own
 * limit is far higher; ours keeps requests small, and the walk stops one
 * level past it, so its recursion is bounded too.
 */
static bool
too_deep(json_t *v, int depth)
{
	const char	*key;
	json_t		*child;
	size_t		 i;

	if (!json_is_object(v) && !json_is_array(v))
		return false;
	if (depth > PROTO_DEPTH_MAX)
		return true;
	json_object_foreach(v, key, child)
		if (too_deep(child, depth + 1))
			return true;
	json_array_foreach(v, i, child)
		if (too_deep(child, depth + 1))
			return true;
	return false;
}

static enum proto_err
get_id(struct dec *d)
{
	json_t	*id = json_object_get(d->root, "id");

	if (json_is_object(id) || json_is_array(id))
		return must_be(d, "id", "a string, number, true, false or null",
		    id);
	d->req->id = json_incref(id);
	return PROTO_OK;
}

static enum proto_err
get_cmd(struct dec *d)
{
	json_t	*v = json_object_get(d->root, "cmd");
	char	 q[QUOTE_MAX_BYTES];
	size_t	 i;

	if (v == NULL)
		return fail(d, PROTO_E_BAD_REQUEST, "request needs \"cmd\"");
	if (!json_is_string(v))
		return must_be(d, "cmd", "a string", v);
	for (i = 0; i < CMD_COUNT; i++)
		if (cmds[i].name != NULL &&
		    cmd_eq(json_string_value(v), cmds[i].name)) {
			d->req->cmd = (enum proto_cmd)i;
			return PROTO_OK;
		}
	clean_text(q, sizeof(q), json_string_value(v), json_string_length(v),
	    QUOTE_MAX_CHARS);
	return fail(d, PROTO_E_UNKNOWN_COMMAND, "unknown command '%s' "
	    "(try ACQUIRE, RELEASE, LEASE, STATS, EVICT, MODELS, PING, "
	    "SUBSCRIBE, METRICS, RELOAD, PIN, UNPIN)", q);
}

/* Type and range only; a model name is checked by get_model(). */
static bool
field_ok(const struct field *f, const json_t *v)
{
	if (f->type == JSON_TRUE)
		return json_is_boolean(v);
	if (f->type == JSON_INTEGER)
		return json_is_integer(v) && json_integer_value(v) >= f->min &&
		    json_integer_value(v) <= f->max;
	return json_typeof(v) == f->type;
}

static enum proto_err
get_model(struct dec *d, const json_t *v)
{
	char	 q[QUOTE_MAX_BYTES];

	/* The length check also catches an embedded NUL. */
	if (strlen(json_string_value(v)) != json_string_length(v) ||
	    !proto_model_name_ok(json_string_value(v))) {
		clean_text(q, sizeof(q), json_string_value(v),
		    json_string_length(v), QUOTE_MAX_CHARS);
		return fail(d, PROTO_E_UNKNOWN_MODEL, "'%s' is not a model name "
		    "(letters, digits, '.', '_', '-', '+', not starting with "
		    "'.' or '-'; at most %d bytes)", q, PROTO_MODEL_NAME_MAX);
	}
	memcpy(d->req->model, json_string_value(v), json_string_length(v) + 1);
	return PROTO_OK;
}

/* Reads the fields the command uses, checking them in wire order. */
static enum proto_err
get_fields(struct dec *d)
{
	const struct cmd_info	*ci = &cmds[d->req->cmd];
	struct proto_request	*req = d->req;
	json_t			*v[FLD_COUNT];
	size_t			 i;

	for (i = 0; i < FLD_COUNT; i++) {
		v[i] = ci->uses & 1u << i ?
		    json_object_get(d->root, fields[i].key) : NULL;
		if (v[i] == NULL && (ci->needs & 1u << i))
			return fail(d, PROTO_E_BAD_REQUEST, "%s needs \"%s\"",
			    ci->name, fields[i].key);
		if (v[i] != NULL && !field_ok(&fields[i], v[i]))
			return must_be(d, fields[i].key, fields[i].what, v[i]);
	}
	if (v[FLD_LEASE] != NULL)
		req->lease = json_integer_value(v[FLD_LEASE]);
	if (v[FLD_TIMEOUT] != NULL)
		req->timeout_ms = json_integer_value(v[FLD_TIMEOUT]);
	if (v[FLD_HOLD] != NULL)
		req->hold = json_is_true(v[FLD_HOLD]);
	if (v[FLD_FORCE] != NULL)
		req->force = json_is_true(v[FLD_FORCE]);
	return v[FLD_MODEL] != NULL ? get_model(d, v[FLD_MODEL]) : PROTO_OK;
}

/*
 * The fast path for the requests clients really send: one flat object,
 * no whitespace, known keys once each, values that are plain strings
 * (printable ASCII, no escapes), integers of at most 18 digits, true,
 * false or null.  For such a line jansson would read the same values, so
 * the checks below (those of get_cmd() and get_fields()) give the same
 * request; anything else, and any request these checks refuse, returns
 * false and goes through jansson, which writes the message.  It saves the
 * object, its hash table and a value per key.
 */
enum { FAST_CMD = FLD_COUNT, FAST_ID, FAST_KEYS };

struct fast_val {
	json_type	 type;		/* JSON_TRUE for true and false */
	const char	*s;		/* a string, not NUL-terminated */
	size_t		 n;
	json_int_t	 i;
	bool		 b;
	bool		 set;
};

static const char *
fast_string(const char *p, const char *end, size_t *n)
{
	const char	*q;

	for (q = p; q < end && *q != '"'; q++)
		if (*q < 0x20 || *q > 0x7e || *q == '\\')
			return NULL;
	if (q == end)
		return NULL;
	*n = (size_t)(q - p);
	return q + 1;
}

static const char *
fast_value(const char *p, const char *end, struct fast_val *v)
{
	static const struct { const char *word; size_t n; json_type t;
	    bool b; } words[] = {
		{ "true", 4, JSON_TRUE, true }, { "false", 5, JSON_TRUE, false },
		{ "null", 4, JSON_NULL, false },
	};
	const char	*q;
	bool		 neg;
	size_t		 i;

	if (*p == '"') {
		v->type = JSON_STRING;
		v->s = p + 1;
		return fast_string(p + 1, end, &v->n);
	}
	if (*p == '-' || (*p >= '0' && *p <= '9')) {
		neg = *p == '-';
		q = p + neg;
		v->type = JSON_INTEGER;
		v->i = 0;
		/* 18 digits cannot overflow; a 19th sends it to jansson. */
		for (i = 0; i < 19 && q + i < end && q[i] >= '0' &&
		    q[i] <= '9'; i++)
			if (i < 18)
				v->i = v->i * 10 + (q[i] - '0');
		/* No leading zero, no "-0", no overflow; not a real. */
		if (i == 0 || i > 18 || (q[0] == '0' && (i > 1 || neg)))
			return NULL;
		if (neg)
			v->i = -v->i;
		return q + i;
	}
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if ((size_t)(end - p) >= words[i].n &&
		    memcmp(p, words[i].word, words[i].n) == 0) {
			v->type = words[i].t;
			v->b = words[i].b;
			return p + words[i].n;
		}
	return NULL;
}

/* The key's slot in vals, or -1 if it is not one the fast path knows. */
static int
fast_key(const char *k, size_t n)
{
	size_t	 i;

	if (n == 3 && memcmp(k, "cmd", 3) == 0)
		return FAST_CMD;
	if (n == 2 && memcmp(k, "id", 2) == 0)
		return FAST_ID;
	for (i = 0; i < FLD_COUNT; i++)
		if (strlen(fields[i].key) == n && memcmp(k, fields[i].key, n) == 0)
			return (int)i;
	return -1;
}

/* field_ok() for a fast value. */
static bool
fast_field_ok(const struct field *f, const struct fast_val *v)
{
	if (f->type == JSON_INTEGER)
		return v->type == JSON_INTEGER && v->i >= f->min &&
		    v->i <= f->max;
	return v->type == f->type;
}

static bool
decode_fast(const char *p, size_t len, struct proto_request *req)
{
	const char		*end = p + len, *key;
	struct fast_val		 v[FAST_KEYS];
	const struct cmd_info	*ci = NULL;
	char			 cmd[16], model[PROTO_MODEL_NAME_MAX + 1] = "";
	size_t			 i, klen;
	int			 k;

	memset(v, 0, sizeof(v));
	if (len < 2 || p[0] != '{' || end[-1] != '}')
		return false;
	for (p++; ; p++) {
		if (p >= end || *p != '"' ||
		    (p = fast_string((key = p + 1), end, &klen)) == NULL ||
		    (k = fast_key(key, klen)) < 0 || v[k].set ||
		    p >= end || *p++ != ':' || p >= end ||
		    (p = fast_value(p, end, &v[k])) == NULL || p >= end)
			return false;
		v[k].set = true;
		if (*p == '}')
			break;
		if (*p != ',')
			return false;
	}
	if (p != end - 1 || !v[FAST_CMD].set || v[FAST_CMD].type != JSON_STRING ||
	    v[FAST_CMD].n >= sizeof(cmd))
		return false;
	memcpy(cmd, v[FAST_CMD].s, v[FAST_CMD].n);
	cmd[v[FAST_CMD].n] = '\0';
	for (i = 0; i < CMD_COUNT && ci == NULL; i++)
		if (cmds[i].name != NULL && cmd_eq(cmd, cmds[i].name))
			ci = &cmds[i];
	if (ci == NULL)
		return false;
	for (i = 0; i < FLD_COUNT; i++) {
		if (!(ci->uses & 1u << i))
			v[i].set = false;	/* ignored, as get_fields does */
		if ((ci->needs & 1u << i) && !v[i].set)
			return false;
		if (v[i].set && !fast_field_ok(&fields[i], &v[i]))
			return false;
	}
	if (v[FLD_MODEL].set) {
		if (v[FLD_MODEL].n >= sizeof(model))
			return false;
		memcpy(model, v[FLD_MODEL].s, v[FLD_MODEL].n);
		model[v[FLD_MODEL].n] = '\0';
		if (!proto_model_name_ok(model))
			return false;
	}
	if (v[FAST_ID].set) {
		switch (v[FAST_ID].type) {
		case JSON_INTEGER:
			req->id = json_integer(v[FAST_ID].i);
			break;
		case JSON_STRING:
			req->id = json_stringn(v[FAST_ID].s, v[FAST_ID].n);
			break;
		case JSON_TRUE:
			req->id = json_boolean(v[FAST_ID].b);
			break;
		default:
			req->id = json_null();
			break;
		}
		if (req->id == NULL)
			return false;	/* out of memory: let jansson try */
	}
	req->cmd = (enum proto_cmd)(ci - cmds);
	memcpy(req->model, model, sizeof(model));
	if (v[FLD_LEASE].set)
		req->lease = v[FLD_LEASE].i;
	if (v[FLD_TIMEOUT].set)
		req->timeout_ms = v[FLD_TIMEOUT].i;
	if (v[FLD_HOLD].set)
		req->hold = v[FLD_HOLD].b;
	if (v[FLD_FORCE].set)
		req->force = v[FLD_FORCE].b;
	return true;
}

/*
 * Unknown keys are ignored, and so are known keys that the command does
 * not use (PING with a "model"): a newer client may send fields this
 * daemon does not know yet, and should still be understood.
 */
enum proto_err
proto_decode_request(const char *line, size_t len, struct proto_request *req,
    char *msg, size_t msglen)
{
	struct dec	 d = { NULL, req, msg, msglen };
	enum proto_err	 err;
	const char	*nul;
	char		 num[32];

	proto_request_init(req);
	fail(&d, PROTO_OK, "%s", "");
	if (len > PROTO_LINE_MAX_BYTES)
		return fail(&d, PROTO_E_BAD_REQUEST, "line is %zu bytes, the "
		    "limit is %d", len, PROTO_LINE_MAX_BYTES);
	/* jansson refuses it too, but calls a trailing NUL "end of file". */
	if ((nul = memchr(line, '\0', len)) != NULL)
		return fail(&d, PROTO_E_BAD_REQUEST, "line holds a NUL byte "
		    "at byte %zu", (size_t)(nul - line) + 1);
	if (decode_fast(line, len, req))
		return PROTO_OK;
	if ((err = parse_line(&d, line, len)) != PROTO_OK)
		return err;
	if (!json_is_object(d.root))
		err = fail(&d, PROTO_E_BAD_REQUEST, "request must be a JSON "
		    "object, not %s", describe(d.root, num, sizeof(num)));
	/* The id first, so that every later error can echo it. */
	else if ((err = get_id(&d)) != PROTO_OK)
		;
	else if (too_deep(d.root, 1))
		err = fail(&d, PROTO_E_BAD_REQUEST, "request is nested deeper "
		    "than %d levels", PROTO_DEPTH_MAX);
	else if ((err = get_cmd(&d)) == PROTO_OK)
		err = get_fields(&d);
	json_decref(d.root);
	return err;
}

/* Dumps o as one line and drops the reference; NULL if o is NULL or the
 * build failed (!built), so a half-built object can be passed straight in. */
static char *
dump_line(json_t *o, bool built)
{
	char	*s = o != NULL && built ? json_dumps(o, DUMP_FLAGS) : NULL;
	char	*line;
	size_t	 n;

	json_decref(o);
	if (s == NULL)
		return NULL;
	n = strlen(s);
	if ((line = realloc(s, n + 2)) == NULL) {
		free(s);
		return NULL;
	}
	memcpy(line + n, "\n", 2);
	return line;
}

static bool	plain_text(const char *, size_t);
static char	*line_dup(const char *, size_t);
#define FAST_REQ_BYTES		512

/*
 * The requests libpoolc sends (an integer id or none, a model name that
 * needs no escaping) written with snprintf: the same bytes as the
 * jansson path below, fields in the same order.  NULL: use that path.
 */
static char *
encode_request_fast(const struct proto_request *req,
    const struct cmd_info *ci)
{
	char	 buf[FAST_REQ_BYTES];
	size_t	 mlen = strnlen(req->model, sizeof(req->model)), n;
	int	 w;

	if (req->id != NULL && !json_is_integer(req->id))
		return NULL;
	/* Even unused, a model that is not UTF-8 makes json_pack fail. */
	if (!plain_text(req->model, mlen))
		return NULL;
	w = snprintf(buf, sizeof(buf), "{\"cmd\":\"%s\"", ci->name);
	if (req->id != NULL)
		w += snprintf(buf + w, sizeof(buf) - (size_t)w,
		    ",\"id\":%" JSON_INTEGER_FORMAT, json_integer_value(req->id));
	if (ci->uses & F(MODEL))
		w += snprintf(buf + w, sizeof(buf) - (size_t)w,
		    ",\"model\":\"%.*s\"", (int)mlen, req->model);
	if (ci->uses & F(LEASE))
		w += snprintf(buf + w, sizeof(buf) - (size_t)w,
		    ",\"lease\":%" PRId64, req->lease);
	if ((ci->uses & F(TIMEOUT)) && req->timeout_ms >= 0)
		w += snprintf(buf + w, sizeof(buf) - (size_t)w,
		    ",\"timeout_ms\":%" PRId64, req->timeout_ms);
	if ((ci->uses & F(HOLD)) && !req->hold)
		w += snprintf(buf + w, sizeof(buf) - (size_t)w,
		    ",\"hold\":false");
	if ((ci->uses & F(FORCE)) && req->force)
		w += snprintf(buf + w, sizeof(buf) - (size_t)w,
		    ",\"force\":true");
	/* Every piece is short, so nothing was cut: buf holds 512 bytes
	 * and the longest request is well under 300. */
	n = (size_t)w;
	if (n + 3 > sizeof(buf))
		return NULL;
	memcpy(buf + n, "}\n", 3);
	return line_dup(buf, n + 2);
}

/* errno on failure: EINVAL (no command, text not UTF-8), EMSGSIZE (too
 * long for the daemon), ENOMEM. */
char *
proto_encode_request(const struct proto_request *req)
{
	const struct cmd_info	*ci;
	json_t			*o;
	char			*line;
	size_t			 i;
	/* Optional fields at their defaults are left out. */
	const bool		 omit[FLD_COUNT] = {
		[FLD_TIMEOUT] = req->timeout_ms < 0, [FLD_HOLD] = req->hold,
		[FLD_FORCE] = !req->force,
	};

	if ((size_t)req->cmd >= CMD_COUNT || cmds[req->cmd].name == NULL) {
		errno = EINVAL;
		return NULL;
	}
	ci = &cmds[req->cmd];
	if ((line = encode_request_fast(req, ci)) != NULL)
		return line;
	/* Every field, in wire order; then drop what is not wanted. */
	errno = 0;
	o = json_pack("{s:s, s:O*, s:s%, s:I, s:I, s:b, s:b}", "cmd", ci->name,
	    "id", req->id,
	    "model", req->model, strnlen(req->model, sizeof(req->model)),
	    "lease", (json_int_t)req->lease,
	    "timeout_ms", (json_int_t)req->timeout_ms,
	    "hold", req->hold, "force", req->force);
	for (i = 0; o != NULL && i < FLD_COUNT; i++)
		if (!(ci->uses & 1u << i) || omit[i])
			json_object_del(o, fields[i].key);
	/* Short of memory, or a string that is not UTF-8. */
	if (o == NULL && errno != ENOMEM)
		errno = EINVAL;
	line = dump_line(o, true);
	/* The daemon would refuse it; better to say so here. */
	if (line != NULL && strlen(line) - 1 > PROTO_LINE_MAX_BYTES) {
		free(line);
		errno = EMSGSIZE;
		return NULL;
	}
	return line;
}

/* --- replies (daemon side) --- */

/*
 * The hot replies (acquired, ok without a body) are written with snprintf
 * into one buffer instead of built as a jansson object and dumped: the
 * same bytes (tests/check_proto.c compares them with the jansson-built
 * reference), one malloc instead of a dozen.  Anything unusual (an id
 * that is not an integer, text that would need escaping) still goes
 * through jansson.
 */
#define FAST_LINE_BYTES		1024

/* Text that JSON carries as is: printable ASCII but '"' and '\\'. */
static bool
plain_text(const char *s, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

/* Appends ',"id":ID' as jansson writes it (nothing if id is NULL) at
 * buf[o]; returns the new length, or 0 if it does not fit. */
static size_t
put_id(char *buf, size_t len, size_t o, json_t *id)
{
	char	*s;
	size_t	 n;
	int	 w;

	if (id == NULL)
		return o;
	if (json_is_integer(id)) {
		w = snprintf(buf + o, len - o, ",\"id\":%" JSON_INTEGER_FORMAT,
		    json_integer_value(id));
		return w < 0 || (size_t)w >= len - o ? 0 : o + (size_t)w;
	}
	if (json_is_true(id) || json_is_false(id) || json_is_null(id)) {
		s = json_is_true(id) ? "true" : json_is_false(id) ? "false" :
		    "null";
		w = snprintf(buf + o, len - o, ",\"id\":%s", s);
		return w < 0 || (size_t)w >= len - o ? 0 : o + (size_t)w;
	}
	/* Strings and reals: jansson's own dump, so escapes and number
	 * formats stay exactly its. */
	if ((s = json_dumps(id, JSON_ENCODE_ANY | DUMP_FLAGS)) == NULL)
		return 0;
	n = strlen(s);
	if (o + 6 + n >= len) {
		free(s);
		return 0;
	}
	memcpy(buf + o, ",\"id\":", 6);
	memcpy(buf + o + 6, s, n);
	free(s);
	buf[o + 6 + n] = '\0';
	return o + 6 + n;
}

/* Copies the first len bytes of buf as a malloc'd line. */
static char *
line_dup(const char *buf, size_t len)
{
	char	*line;

	if ((line = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(line, buf, len + 1);
	return line;
}

/* A message may carry a child's stderr: make it valid UTF-8 rather than
 * fail to answer at all. */
json_t *
proto_text(const char *message)
{
	json_t	*m;
	char	 clean[PROTO_MESSAGE_MAX];

	if (message == NULL)
		message = "";
	if ((m = json_string(message)) != NULL)
		return m;
	clean_text(clean, sizeof(clean), message, strlen(message),
	    sizeof(clean));
	return json_string(clean);
}

/* The error reply without an object: jansson quotes only the message. */
static char *
encode_error_fast(json_t *id, enum proto_err err, const char *message)
{
	json_t	*m;
	char	 head[FAST_LINE_BYTES], *text, *line;
	size_t	 n, tlen;

	if ((n = put_id(head, sizeof(head), (size_t)snprintf(head,
	    sizeof(head), "{\"ok\":false"), id)) == 0)
		return NULL;
	n += (size_t)snprintf(head + n, sizeof(head) - n,
	    ",\"error\":\"%s\",\"message\":", proto_err_name(err));
	if (n >= sizeof(head) - 1 || (m = proto_text(message)) == NULL)
		return NULL;
	text = json_dumps(m, JSON_ENCODE_ANY | DUMP_FLAGS);
	json_decref(m);
	if (text == NULL)
		return NULL;
	tlen = strlen(text);
	if ((line = malloc(n + tlen + 3)) != NULL) {
		memcpy(line, head, n);
		memcpy(line + n, text, tlen);
		memcpy(line + n + tlen, "}\n", 3);
	}
	free(text);
	return line;
}

char *
proto_encode_error(json_t *id, enum proto_err err, const char *message)
{
	char	*line;

	/* "ok" is no error: a reply with ok:false must name a real one. */
	if (err == PROTO_OK || (size_t)err >= PROTO_E__COUNT)
		err = PROTO_E_INTERNAL;
	if (message == NULL)
		message = proto_err_name(err);
	if ((line = encode_error_fast(id, err, message)) != NULL)
		return line;
	/* json_pack fails, and frees what it took, if the message is NULL. */
	return dump_line(json_pack("{s:b, s:O*, s:s, s:o}", "ok", 0, "id", id,
	    "error", proto_err_name(err), "message", proto_text(message)),
	    true);
}

char *
proto_encode_ok(json_t *id, json_t *body)
{
	const char	*key;
	json_t		*o, *v;
	bool		 ok;

	char		 buf[FAST_LINE_BYTES];
	size_t		 n;

	if (body != NULL && !json_is_object(body)) {
		errno = EINVAL;
		return NULL;
	}
	if (body == NULL && (n = put_id(buf, sizeof(buf) - 2,
	    (size_t)snprintf(buf, sizeof(buf), "{\"ok\":true"), id)) != 0) {
		memcpy(buf + n, "}\n", 3);
		return line_dup(buf, n + 2);
	}
	o = json_pack("{s:b, s:O*}", "ok", 1, "id", id);
	ok = o != NULL;
	/* The body cannot override "ok" or "id". */
	json_object_foreach(body, key, v) {
		if (ok && strcmp(key, "ok") != 0 && strcmp(key, "id") != 0)
			ok = json_object_set(o, key, v) == 0;
	}
	return dump_line(o, ok);
}

/* ',"name":"text"' for a member only there when set, at buf[o]. */
static int
put_optional(char *buf, size_t len, const char *name, const char *text)
{
	if (text[0] == '\0')
		return 0;
	return snprintf(buf, len, ",\"%s\":\"%s\"", name, text);
}

char *
proto_encode_acquired(json_t *id, const struct proto_acquired *a)
{
	json_t	*o;
	char	 buf[FAST_LINE_BYTES], lease[32] = "";
	size_t	 mlen = strnlen(a->model, sizeof(a->model));
	size_t	 elen = strnlen(a->endpoint, sizeof(a->endpoint));
	size_t	 klen = strnlen(a->api_key, sizeof(a->api_key));
	size_t	 nlen = strnlen(a->node, sizeof(a->node));
	size_t	 n;
	int	 w, wk, wn;

	if (klen < sizeof(a->api_key) && nlen < sizeof(a->node) &&
	    plain_text(a->model, mlen) && plain_text(a->endpoint, elen) &&
	    plain_text(a->api_key, klen) && plain_text(a->node, nlen) &&
	    (n = put_id(buf, sizeof(buf), (size_t)snprintf(buf, sizeof(buf),
	    "{\"ok\":true"), id)) != 0) {
		/* No lease when not held: there is nothing to release. */
		if (a->lease != 0)
			snprintf(lease, sizeof(lease), ",\"lease\":%lld",
			    (long long)a->lease);
		w = snprintf(buf + n, sizeof(buf) - n, ",\"model\":\"%.*s\","
		    "\"port\":%d,\"endpoint\":\"%.*s\"%s,\"cold\":%s,"
		    "\"wait_ms\":%lld", (int)mlen, a->model, a->port,
		    (int)elen, a->endpoint, lease, a->cold ? "true" : "false",
		    (long long)a->wait_ms);
		if (w > 0 && (size_t)w < sizeof(buf) - n) {
			n += (size_t)w;
			wk = put_optional(buf + n, sizeof(buf) - n, "api_key",
			    a->api_key);
			n += wk >= 0 ? (size_t)wk : sizeof(buf);
			wn = n < sizeof(buf) ? put_optional(buf + n,
			    sizeof(buf) - n, "node", a->node) : -1;
			n += wn >= 0 ? (size_t)wn : sizeof(buf);
			if (n + 2 < sizeof(buf)) {
				memcpy(buf + n, "}\n", 3);
				return line_dup(buf, n + 2);
			}
		}
	}
	o = json_pack("{s:b, s:O*, s:s%, s:i, s:s%, s:I, s:b, s:I}", "ok", 1,
	    "id", id, "model", a->model, mlen, "port", a->port,
	    "endpoint", a->endpoint, elen,
	    "lease", (json_int_t)a->lease, "cold", a->cold,
	    "wait_ms", (json_int_t)a->wait_ms);
	/* No lease when not held: there is nothing to release. */
	if (o != NULL && a->lease == 0)
		json_object_del(o, "lease");
	/* Only when there is one: older clients see the reply they knew. */
	if (o != NULL && klen > 0 && json_object_set_new(o, "api_key",
	    json_stringn(a->api_key, klen)) != 0)
		return dump_line(o, false);
	if (o != NULL && nlen > 0 && json_object_set_new(o, "node",
	    json_stringn(a->node, nlen)) != 0)
		return dump_line(o, false);
	return dump_line(o, true);
}

/* --- replies (client side) --- */

void
proto_reply_clear(struct proto_reply *rep)
{
	json_decref(rep->body);
	memset(rep, 0, sizeof(*rep));	/* PROTO_OK, no id, no body */
}

/* Fills the error fields of a reply with "ok":false. */
static enum proto_err
reply_error(struct dec *d, struct proto_reply *rep)
{
	const char	*code, *text = NULL;

	if (json_unpack(d->root, "{s:s, s?s}", "error", &code,
	    "message", &text) != 0)
		return fail(d, PROTO_E_BAD_REQUEST, "a reply with \"ok\":false "
		    "needs a string \"error\" (and \"message\", if any, must be "
		    "a string)");
	/* A newer daemon may know codes we do not; its message still helps. */
	rep->err = proto_err_from_name(code);
	if (rep->err == PROTO_OK || rep->err == PROTO_E__COUNT)
		rep->err = PROTO_E_INTERNAL;
	/* No NUL inside: jansson refuses \u0000 without JSON_ALLOW_NUL. */
	snprintf(rep->message, sizeof(rep->message), "%s",
	    text != NULL ? text : code);
	utf8_trim(rep->message);
	return PROTO_OK;
}

enum proto_err
proto_decode_reply(const char *line, size_t len, struct proto_reply *rep,
    char *msg, size_t msglen)
{
	struct dec	 d = { NULL, NULL, msg, msglen };
	enum proto_err	 err;
	int		 ok;

	memset(rep, 0, sizeof(*rep));
	fail(&d, PROTO_OK, "%s", "");
	if ((err = parse_line(&d, line, len)) != PROTO_OK)
		return err;
	rep->body = d.root;
	if (json_unpack(rep->body, "{s:b}", "ok", &ok) != 0)
		err = fail(&d, PROTO_E_BAD_REQUEST,
		    "reply is not an object with a boolean \"ok\"");
	else if (!(rep->ok = ok))
		err = reply_error(&d, rep);
	if (err != PROTO_OK) {
		proto_reply_clear(rep);
		return err;
	}
	rep->id = json_object_get(rep->body, "id");
	return PROTO_OK;
}

/*
 * Fills a from an ACQUIRE reply's fields if they are in range; the one
 * check both decoders (jansson's and the flat one) apply.
 */
static bool
acquired_fill(struct proto_acquired *a, const char *model, size_t mlen,
    const char *endpoint, size_t elen, int64_t port, int64_t lease,
    bool cold, int64_t wait_ms)
{
	if (mlen >= sizeof(a->model) || elen >= sizeof(a->endpoint) ||
	    port < 1 || port > 65535 || lease < 0 || wait_ms < 0)
		return false;
	/* Not memset by the caller: the optional members stay "" unless
	 * acquired_extra() fills them. */
	memcpy(a->model, model, mlen);
	a->model[mlen] = '\0';
	memcpy(a->endpoint, endpoint, elen);
	a->endpoint[elen] = '\0';
	a->port = (int)port;
	a->lease = lease;
	a->cold = cold;
	a->wait_ms = wait_ms;
	return true;
}

/* The optional members; NULL: absent.  Text with a NUL is refused. */
static bool
acquired_extra(struct proto_acquired *a, const char *key, size_t klen,
    const char *node, size_t nlen)
{
	if ((key != NULL && (klen >= sizeof(a->api_key) ||
	    memchr(key, '\0', klen) != NULL)) || (node != NULL &&
	    (nlen >= sizeof(a->node) || memchr(node, '\0', nlen) != NULL)))
		return false;
	if (key != NULL) {
		memcpy(a->api_key, key, klen);
		a->api_key[klen] = '\0';
	}
	if (node != NULL) {
		memcpy(a->node, node, nlen);
		a->node[nlen] = '\0';
	}
	return true;
}

enum proto_err
proto_reply_acquired(const struct proto_reply *rep, struct proto_acquired *a)
{
	const char	*model, *endpoint, *key = NULL, *node = NULL;
	size_t		 mlen, elen, klen = 0, nlen = 0;
	json_int_t	 port, lease = 0, wait_ms;
	int		 cold;

	memset(a, 0, sizeof(*a));
	if (!rep->ok || rep->body == NULL ||
	    json_unpack(rep->body, "{s:s%, s:I, s:s%, s?I, s:b, s:I, s?s%, "
	    "s?s%}", "model", &model, &mlen, "port", &port, "endpoint",
	    &endpoint, &elen, "lease", &lease, "cold", &cold, "wait_ms",
	    &wait_ms, "api_key", &key, &klen, "node", &node, &nlen) != 0 ||
	    !acquired_fill(a, model, mlen, endpoint, elen, port, lease, cold,
	    wait_ms) || !acquired_extra(a, key, klen, node, nlen)) {
		memset(a, 0, sizeof(*a));
		return PROTO_E_BAD_REQUEST;
	}
	return PROTO_OK;
}

/*
 * The client's fast path for the flat replies the daemon writes (see
 * proto_encode_ok/_error/_acquired): one object, no whitespace, known
 * keys once each, plain strings (printable ASCII, no escapes), integers
 * of at most 18 digits.  Anything else, and anything that
 * proto_decode_reply() or proto_reply_acquired() would refuse or read
 * differently, returns false and is left to them.
 */
enum { RK_OK, RK_ID, RK_ERROR, RK_MESSAGE, RK_MODEL, RK_PORT, RK_ENDPOINT,
	RK_LEASE, RK_COLD, RK_WAIT, RK_API_KEY, RK_NODE, RK_COUNT };

static int
reply_key(const char *k, size_t n, bool acquired)
{
	static const char *const keys[RK_COUNT] = {
		"ok", "id", "error", "message", "model", "port", "endpoint",
		"lease", "cold", "wait_ms", "api_key", "node",
	};
	int	 i, last = acquired ? RK_COUNT : RK_MODEL;

	for (i = 0; i < last; i++)
		if (strlen(keys[i]) == n && memcmp(k, keys[i], n) == 0)
			return i;
	return -1;
}

bool
proto_decode_reply_flat(const char *line, size_t len, struct proto_reply *rep,
    enum proto_id_kind *id_kind, int64_t *id, struct proto_acquired *a)
{
	const char	*p = line, *end = line + len, *key;
	struct fast_val	 v[RK_COUNT];
	enum proto_err	 err;
	char		 code[32];
	size_t		 klen;
	int		 k;

	memset(v, 0, sizeof(v));
	if (len < 2 || p[0] != '{' || end[-1] != '}')
		return false;
	for (p++; ; p++) {
		if (p >= end || *p != '"' ||
		    (p = fast_string((key = p + 1), end, &klen)) == NULL ||
		    (k = reply_key(key, klen, a != NULL)) < 0 || v[k].set ||
		    p >= end || *p++ != ':' || p >= end ||
		    (p = fast_value(p, end, &v[k])) == NULL || p >= end)
			return false;
		v[k].set = true;
		if (*p == '}')
			break;
		if (*p != ',')
			return false;
	}
	if (p != end - 1 || !v[RK_OK].set || v[RK_OK].type != JSON_TRUE)
		return false;
	memset(rep, 0, sizeof(*rep));
	if (!v[RK_OK].b) {
		/* A code this library knows, not "ok": then the code and
		 * proto_err_name(rep->err) are the same string. */
		if (!v[RK_ERROR].set || v[RK_ERROR].type != JSON_STRING ||
		    v[RK_ERROR].n >= sizeof(code) || (v[RK_MESSAGE].set &&
		    v[RK_MESSAGE].type != JSON_STRING))
			return false;
		memcpy(code, v[RK_ERROR].s, v[RK_ERROR].n);
		code[v[RK_ERROR].n] = '\0';
		err = proto_err_from_name(code);
		if (err == PROTO_OK || err == PROTO_E__COUNT)
			return false;
		if (v[RK_MESSAGE].set)
			snprintf(rep->message, sizeof(rep->message), "%.*s",
			    (int)v[RK_MESSAGE].n, v[RK_MESSAGE].s);
		else
			snprintf(rep->message, sizeof(rep->message), "%s", code);
		rep->err = err;
	} else if (a != NULL) {
		/* proto_reply_acquired()'s checks. */
		memset(a, 0, sizeof(*a));
		if (!v[RK_MODEL].set || v[RK_MODEL].type != JSON_STRING ||
		    !v[RK_PORT].set || v[RK_PORT].type != JSON_INTEGER ||
		    !v[RK_ENDPOINT].set || v[RK_ENDPOINT].type != JSON_STRING ||
		    (v[RK_LEASE].set && v[RK_LEASE].type != JSON_INTEGER) ||
		    !v[RK_COLD].set || v[RK_COLD].type != JSON_TRUE ||
		    !v[RK_WAIT].set || v[RK_WAIT].type != JSON_INTEGER ||
		    !acquired_fill(a, v[RK_MODEL].s, v[RK_MODEL].n,
		    v[RK_ENDPOINT].s, v[RK_ENDPOINT].n, v[RK_PORT].i,
		    v[RK_LEASE].set ? v[RK_LEASE].i : 0, v[RK_COLD].b,
		    v[RK_WAIT].i) ||
		    (v[RK_API_KEY].set && v[RK_API_KEY].type != JSON_STRING) ||
		    (v[RK_NODE].set && v[RK_NODE].type != JSON_STRING) ||
		    !acquired_extra(a, v[RK_API_KEY].set ? v[RK_API_KEY].s :
		    NULL, v[RK_API_KEY].n, v[RK_NODE].set ? v[RK_NODE].s : NULL,
		    v[RK_NODE].n))
			return false;
	}
	rep->ok = v[RK_OK].b;
	*id = 0;
	if (!v[RK_ID].set)
		*id_kind = PROTO_ID_ABSENT;
	else if (v[RK_ID].type == JSON_NULL)
		*id_kind = PROTO_ID_NULL;
	else if (v[RK_ID].type == JSON_INTEGER) {
		*id_kind = PROTO_ID_INTEGER;
		*id = v[RK_ID].i;
	} else
		*id_kind = PROTO_ID_OTHER;
	return true;
}

/* --- defaults shared by daemon and clients --- */

char *
proto_default_socket(char *buf, size_t len)
{
	const char	*env;
	int		 n;

	if (buf == NULL || len == 0)
		return NULL;
	if ((env = getenv("POOLD_SOCKET")) != NULL && env[0] != '\0')
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/poold/poold.sock");
	else if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && env[0] != '\0')
		n = snprintf(buf, len, "%s/poold/poold.sock", env);
	else
		n = snprintf(buf, len, "/tmp/poold-%lu/poold.sock",
		    (unsigned long)geteuid());
	if (n < 0 || (size_t)n >= len)
		return NULL;
	return buf;
}
