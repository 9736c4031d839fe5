/*
 * check_proto.c — unit tests for protocol/proto.c.
 *
 * Mostly tables: a line and what it must decode to, or the error it must
 * give.  JSON in the tables is written with ' for " so it stays readable;
 * dq() swaps them back (a test that needs a real ' writes \u0027).
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
/* A string literal and its length, so lines may hold NUL bytes. */
#define L(s)		s, sizeof(s) - 1
#define LINE_BUF	2048
/* Long strings for the limits. */
#define E10	"0123456789"
#define E100	E10 E10 E10 E10 E10 E10 E10 E10 E10 E10
#define E299	E100 E100 E10 E10 E10 E10 E10 E10 E10 E10 E10 "012345678"
#define E300	E299 "9"

/* --- helpers --- */

/* Copies s[0..len) into buf with every ' turned into ". */
static const char *
dq(char *buf, const char *s, size_t len)
{
	size_t	 i;

	ck_assert_uint_lt(len, LINE_BUF);
	for (i = 0; i < len; i++)
		buf[i] = s[i] == '\'' ? '"' : s[i];
	buf[len] = '\0';
	return buf;
}

/* Parses the JSON text of an expected value (written with '). */
static json_t *
expect_json(const char *text)
{
	char	 buf[LINE_BUF];
	json_t	*v;

	v = json_loads(dq(buf, text, strlen(text)), JSON_DECODE_ANY, NULL);
	ck_assert_msg(v != NULL, "bad expected JSON in the table: %s", text);
	return v;
}

/* got is the id the table says (NULL: no id). */
static void
assert_id(const json_t *got, const char *want, int i)
{
	json_t	*w;

	if (want == NULL) {
		ck_assert_msg(got == NULL, "case %d: expected no id", i);
		return;
	}
	w = expect_json(want);
	ck_assert_msg(got != NULL && json_equal(got, w),
	    "case %d: expected id %s", i, want);
	json_decref(w);
}

/* A message a person can read: not empty, fits, printable, valid UTF-8. */
static void
assert_readable(const char *m, size_t cap, int i)
{
	const unsigned char	*p;
	json_t			*s;

	ck_assert_msg(m[0] != '\0', "case %d: empty message", i);
	ck_assert_msg(strlen(m) < cap, "case %d: message too long", i);
	for (p = (const unsigned char *)m; *p != '\0'; p++)
		ck_assert_msg(*p >= 0x20 && *p != 0x7f,
		    "case %d: control byte 0x%02x in message '%s'", i, *p, m);
	s = json_string(m);
	ck_assert_msg(s != NULL, "case %d: message is not UTF-8", i);
	json_decref(s);
}

/* Encodes a line, checks its text and strips its newline. */
static void
assert_line(char *got, const char *want_q)
{
	char	 want[LINE_BUF];
	size_t	 n;

	ck_assert_ptr_nonnull(got);
	n = strlen(got);
	ck_assert_msg(n > 0 && got[n - 1] == '\n', "no newline: %s", got);
	got[n - 1] = '\0';
	ck_assert_str_eq(got, dq(want, want_q, strlen(want_q)));
}

/* --- requests that decode --- */

static const struct good_case {
	const char	*line;
	size_t		 len;
	enum proto_cmd	 cmd;
	const char	*model;
	int64_t		 lease;
	int64_t		 timeout_ms;
	bool		 hold;
	bool		 force;
	const char	*id;		/* as JSON; NULL: none */
} good_cases[] = {
	/* each command */
	{ L("{'cmd':'PING'}"), PROTO_CMD_PING, "", 0, -1, true, false, NULL },
	{ L("{'cmd':'STATS'}"), PROTO_CMD_STATS, "", 0, -1, true, false, NULL },
	{ L("{'cmd':'MODELS'}"), PROTO_CMD_MODELS, "", 0, -1, true, false,
	    NULL },
	{ L("{'cmd':'ACQUIRE','model':'llama-3.1-8b.Q4_K_M'}"),
	    PROTO_CMD_ACQUIRE, "llama-3.1-8b.Q4_K_M", 0, -1, true, false, NULL },
	{ L("{'cmd':'ACQUIRE','model':'m','timeout_ms':0}"),
	    PROTO_CMD_ACQUIRE, "m", 0, 0, true, false, NULL },
	{ L("{'cmd':'ACQUIRE','model':'m','timeout_ms':86400000,'hold':false}"),
	    PROTO_CMD_ACQUIRE, "m", 0, 86400000, false, false, NULL },
	{ L("{'cmd':'ACQUIRE','model':'m','hold':true}"),
	    PROTO_CMD_ACQUIRE, "m", 0, -1, true, false, NULL },
	{ L("{'cmd':'RELEASE','lease':1}"), PROTO_CMD_RELEASE, "", 1, -1, true,
	    false, NULL },
	{ L("{'cmd':'RELEASE','lease':9223372036854775807}"), PROTO_CMD_RELEASE,
	    "", INT64_MAX, -1, true, false, NULL },
	{ L("{'cmd':'LEASE','lease':9007199254740991}"), PROTO_CMD_LEASE,
	    "", PROTO_LEASE_MAX, -1, true, false, NULL },
	{ L("{'cmd':'lease','lease':4294967297,'model':'m'}"), PROTO_CMD_LEASE,
	    "", 4294967297, -1, true, false, NULL },
	{ L("{'cmd':'EVICT','model':'m'}"), PROTO_CMD_EVICT, "m", 0, -1, true,
	    false, NULL },
	{ L("{'cmd':'EVICT','model':'m','force':true}"), PROTO_CMD_EVICT, "m",
	    0, -1, true, true, NULL },
	{ L("{'cmd':'EVICT','model':'m','force':false}"), PROTO_CMD_EVICT, "m",
	    0, -1, true, false, NULL },
	/* the command is case-insensitive */
	{ L("{'cmd':'ping'}"), PROTO_CMD_PING, "", 0, -1, true, false, NULL },
	{ L("{'cmd':'Stats'}"), PROTO_CMD_STATS, "", 0, -1, true, false, NULL },
	{ L("{'cmd':'acquire','model':'m'}"), PROTO_CMD_ACQUIRE, "m", 0, -1,
	    true, false, NULL },
	{ L("{'cmd':'rElEaSe','lease':3}"), PROTO_CMD_RELEASE, "", 3, -1, true,
	    false, NULL },
	{ L("{'cmd':'evict','model':'m'}"), PROTO_CMD_EVICT, "m", 0, -1, true,
	    false, NULL },
	{ L("{'cmd':'models'}"), PROTO_CMD_MODELS, "", 0, -1, true, false,
	    NULL },
	/* ids of every scalar type */
	{ L("{'cmd':'PING','id':'abc'}"), PROTO_CMD_PING, "", 0, -1, true,
	    false, "'abc'" },
	{ L("{'cmd':'PING','id':''}"), PROTO_CMD_PING, "", 0, -1, true, false,
	    "''" },
	{ L("{'cmd':'PING','id':'\xc3\xa9t\xc3\xa9'}"), PROTO_CMD_PING, "", 0,
	    -1, true, false, "'\xc3\xa9t\xc3\xa9'" },
	{ L("{'cmd':'PING','id':7}"), PROTO_CMD_PING, "", 0, -1, true, false,
	    "7" },
	{ L("{'cmd':'PING','id':-3}"), PROTO_CMD_PING, "", 0, -1, true, false,
	    "-3" },
	{ L("{'cmd':'PING','id':9223372036854775807}"), PROTO_CMD_PING, "", 0,
	    -1, true, false, "9223372036854775807" },
	{ L("{'cmd':'PING','id':1.5}"), PROTO_CMD_PING, "", 0, -1, true, false,
	    "1.5" },
	{ L("{'cmd':'PING','id':true}"), PROTO_CMD_PING, "", 0, -1, true, false,
	    "true" },
	{ L("{'cmd':'PING','id':false}"), PROTO_CMD_PING, "", 0, -1, true,
	    false, "false" },
	{ L("{'cmd':'PING','id':null}"), PROTO_CMD_PING, "", 0, -1, true, false,
	    "null" },
	{ L("{'id':42,'cmd':'ACQUIRE','model':'m'}"), PROTO_CMD_ACQUIRE, "m", 0,
	    -1, true, false, "42" },
	/* unknown keys are ignored, and so are fields the command does not
	 * use */
	{ L("{'cmd':'PING','future':{'a':[1,{'b':null}]}}"), PROTO_CMD_PING, "",
	    0, -1, true, false, NULL },
	{ L("{'cmd':'PING','model':'../x','lease':'x','hold':3}"),
	    PROTO_CMD_PING, "", 0, -1, true, false, NULL },
	{ L("{'cmd':'RELEASE','lease':5,'model':7,'timeout_ms':-9}"),
	    PROTO_CMD_RELEASE, "", 5, -1, true, false, NULL },
	{ L("{'cmd':'EVICT','model':'m','hold':false,'timeout_ms':5}"),
	    PROTO_CMD_EVICT, "m", 0, -1, true, false, NULL },
	{ L("{'cmd':'ACQUIRE','model':'m','force':true,'lease':9}"),
	    PROTO_CMD_ACQUIRE, "m", 0, -1, true, false, NULL },
	/* whitespace, key order */
	{ L(" \t{ 'cmd' : 'PING' } \t"), PROTO_CMD_PING, "", 0, -1, true,
	    false, NULL },
	{ L("{'hold':false,'model':'m','id':'z','cmd':'ACQUIRE'}"),
	    PROTO_CMD_ACQUIRE, "m", 0, -1, false, false, "'z'" },
	/* exactly PROTO_DEPTH_MAX levels: the object and 7 arrays */
	{ L("{'cmd':'PING','x':[[[[[[[1]]]]]]]}"), PROTO_CMD_PING, "", 0, -1,
	    true, false, NULL },
	/* a model name of the longest length */
	{ L("{'cmd':'EVICT','model':'"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	    "'}"), PROTO_CMD_EVICT,
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    0, -1, true, false, NULL },
};

START_TEST(decode_accepts)
{
	const struct good_case	*c = &good_cases[_i];
	struct proto_request	 req;
	char			 buf[LINE_BUF], msg[PROTO_MESSAGE_MAX];
	enum proto_err		 err;

	err = proto_decode_request(dq(buf, c->line, c->len), c->len, &req,
	    msg, sizeof(msg));
	ck_assert_msg(err == PROTO_OK, "case %d %s: %s: %s", _i, buf,
	    proto_err_name(err), msg);
	ck_assert_str_eq(msg, "");
	ck_assert_int_eq(req.cmd, c->cmd);
	ck_assert_str_eq(req.model, c->model);
	ck_assert_int_eq(req.lease, c->lease);
	ck_assert_int_eq(req.timeout_ms, c->timeout_ms);
	ck_assert_int_eq(req.hold, c->hold);
	ck_assert_int_eq(req.force, c->force);
	assert_id(req.id, c->id, _i);
	proto_request_clear(&req);
	ck_assert_ptr_null(req.id);
}
END_TEST

/* --- requests that are refused --- */

static const struct bad_case {
	const char	*line;
	size_t		 len;
	enum proto_err	 err;
	const char	*id;		/* the id the error echoes; NULL: none */
	const char	*says;		/* part of the message (real quotes) */
} bad_cases[] = {
	/* not JSON */
	{ L(""), PROTO_E_BAD_REQUEST, NULL, "line is not JSON" },
	{ L("   "), PROTO_E_BAD_REQUEST, NULL, "line is not JSON" },
	{ L("PING"), PROTO_E_BAD_REQUEST, NULL, "line is not JSON" },
	{ L("{'cmd':"), PROTO_E_BAD_REQUEST, NULL, "at column 7" },
	{ L("{'cmd':'PING'"), PROTO_E_BAD_REQUEST, NULL, "line is not JSON" },
	{ L("{cmd:'PING'}"), PROTO_E_BAD_REQUEST, NULL, "line is not JSON" },
	{ L("{'cmd':'PING',}"), PROTO_E_BAD_REQUEST, NULL, "line is not JSON" },
	/* trailing garbage */
	{ L("{'cmd':'PING'} x"), PROTO_E_BAD_REQUEST, NULL,
	    "end of file expected near 'x' at column 16" },
	{ L("{'cmd':'PING'}{}"), PROTO_E_BAD_REQUEST, NULL, "end of file" },
	{ L("{'cmd':'PING'},"), PROTO_E_BAD_REQUEST, NULL, "end of file" },
	{ L("{'cmd':'PING'}]"), PROTO_E_BAD_REQUEST, NULL, "end of file" },
	{ L("{'cmd':'PING'}\n{'cmd':'PING'}"), PROTO_E_BAD_REQUEST, NULL,
	    "end of file" },
	/* the top level must be an object */
	{ L("[]"), PROTO_E_BAD_REQUEST, NULL,
	    "request must be a JSON object, not an array" },
	{ L("[{'cmd':'PING'}]"), PROTO_E_BAD_REQUEST, NULL, "not an array" },
	{ L("42"), PROTO_E_BAD_REQUEST, NULL, "not 42" },
	{ L("4.5"), PROTO_E_BAD_REQUEST, NULL, "not a real number" },
	{ L("'PING'"), PROTO_E_BAD_REQUEST, NULL, "not a string" },
	{ L("null"), PROTO_E_BAD_REQUEST, NULL, "not null" },
	{ L("true"), PROTO_E_BAD_REQUEST, NULL, "not true" },
	/* duplicate keys */
	{ L("{'cmd':'PING','cmd':'PING'}"), PROTO_E_BAD_REQUEST, NULL,
	    "duplicate object key" },
	{ L("{'cmd':'PING','id':1,'id':2}"), PROTO_E_BAD_REQUEST, NULL,
	    "duplicate" },
	{ L("{'cmd':'PING','x':{'a':1,'a':1}}"), PROTO_E_BAD_REQUEST, NULL,
	    "duplicate" },
	/* NUL bytes, raw or escaped */
	{ L("{'cmd':'PI\0NG'}"), PROTO_E_BAD_REQUEST, NULL,
	    "NUL byte at byte 11" },
	{ L("{'cmd':'PING'}\0"), PROTO_E_BAD_REQUEST, NULL, "NUL byte" },
	{ L("\0{'cmd':'PING'}"), PROTO_E_BAD_REQUEST, NULL, "NUL byte at byte 1" },
	{ L("{'cmd':'PING','x':'\\u0000'}"), PROTO_E_BAD_REQUEST, NULL,
	    "line is not JSON" },
	/* invalid UTF-8, and raw control characters in strings */
	{ L("{'cmd':'PING','x':'\xff" "'}"), PROTO_E_BAD_REQUEST, NULL,
	    "line is not JSON" },
	{ L("{'cmd':'PING','x':'\xc0\xaf" "'}"), PROTO_E_BAD_REQUEST, NULL,
	    "line is not JSON" },
	{ L("{'cmd':'PING','x':'\xed\xa0\x80" "'}"), PROTO_E_BAD_REQUEST, NULL,
	    "line is not JSON" },
	{ L("{'cmd':'PING','x':'\xe2\x82" "'}"), PROTO_E_BAD_REQUEST, NULL,
	    "line is not JSON" },
	{ L("{'cmd':'PING','x':'\x80" "'}"), PROTO_E_BAD_REQUEST, NULL,
	    "line is not JSON" },
	{ L("{'\xfe" "':1,'cmd':'PING'}"), PROTO_E_BAD_REQUEST, NULL,
	    "line is not JSON" },
	{ L("{'cmd':'PI\x01NG'}"), PROTO_E_BAD_REQUEST, NULL,
	    "control character" },
	/* nesting */
	{ L("{'cmd':'PING','x':[[[[[[[[1]]]]]]]]}"), PROTO_E_BAD_REQUEST, NULL,
	    "nested deeper than 8 levels" },
	{ L("{'id':5,'cmd':'PING','x':{'a':{'b':{'c':{'d':{'e':{'f':{'g':{}}}}}"
	    "}}}}"), PROTO_E_BAD_REQUEST, "5", "nested deeper" },
	/* the id */
	{ L("{'cmd':'PING','id':{}}"), PROTO_E_BAD_REQUEST, NULL,
	    "\"id\" must be a string, number, true, false or null, not an "
	    "object" },
	{ L("{'cmd':'PING','id':[1]}"), PROTO_E_BAD_REQUEST, NULL,
	    "not an array" },
	/* the command */
	{ L("{}"), PROTO_E_BAD_REQUEST, NULL, "request needs \"cmd\"" },
	{ L("{'id':3}"), PROTO_E_BAD_REQUEST, "3", "needs \"cmd\"" },
	{ L("{'cmd':1}"), PROTO_E_BAD_REQUEST, NULL,
	    "\"cmd\" must be a string, not 1" },
	{ L("{'cmd':null}"), PROTO_E_BAD_REQUEST, NULL, "not null" },
	{ L("{'cmd':['PING']}"), PROTO_E_BAD_REQUEST, NULL, "not an array" },
	{ L("{'cmd':true,'id':'t'}"), PROTO_E_BAD_REQUEST, "'t'", "not true" },
	{ L("{'cmd':'FOO','id':'x'}"), PROTO_E_UNKNOWN_COMMAND, "'x'",
	    "unknown command 'FOO' (try ACQUIRE, RELEASE, LEASE, STATS, EVICT, "
	    "MODELS, PING, SUBSCRIBE, METRICS, RELOAD, PIN, UNPIN)" },
	{ L("{'cmd':''}"), PROTO_E_UNKNOWN_COMMAND, NULL, "command ''" },
	{ L("{'cmd':'PINCH'}"), PROTO_E_UNKNOWN_COMMAND, NULL, "'PINCH'" },
	{ L("{'cmd':'PINGS'}"), PROTO_E_UNKNOWN_COMMAND, NULL, "'PINGS'" },
	{ L("{'cmd':'PING '}"), PROTO_E_UNKNOWN_COMMAND, NULL, "'PING '" },
	{ L("{'cmd':'NONE'}"), PROTO_E_UNKNOWN_COMMAND, NULL, "'NONE'" },
	{ L("{'cmd':'P\\u0130NG'}"), PROTO_E_UNKNOWN_COMMAND, NULL,
	    "'P\xc4\xb0NG'" },
	{ L("{'cmd':'ping\\n\\u0007\\u0085'}"), PROTO_E_UNKNOWN_COMMAND, NULL,
	    "'ping\?\?\?'" },
	{ L("{'cmd':'it\\u0027s'}"), PROTO_E_UNKNOWN_COMMAND, NULL, "'it's'" },
	{ L("{'cmd':'AAAAAAAAAABBBBBBBBBBCCCCCCCCCCDDDDDDDDDDEEEEEEEEEE'}"),
	    PROTO_E_UNKNOWN_COMMAND, NULL,
	    "'AAAAAAAAAABBBBBBBBBBCCCCCCCCCCDDDDDDDDDD\xe2\x80\xa6'" },
	/* ACQUIRE and EVICT need a model */
	{ L("{'cmd':'ACQUIRE'}"), PROTO_E_BAD_REQUEST, NULL,
	    "ACQUIRE needs \"model\"" },
	{ L("{'cmd':'EVICT','id':9}"), PROTO_E_BAD_REQUEST, "9",
	    "EVICT needs \"model\"" },
	{ L("{'cmd':'ACQUIRE','model':7}"), PROTO_E_BAD_REQUEST, NULL,
	    "\"model\" must be a string, not 7" },
	{ L("{'cmd':'ACQUIRE','model':null}"), PROTO_E_BAD_REQUEST, NULL,
	    "not null" },
	{ L("{'cmd':'EVICT','model':['m']}"), PROTO_E_BAD_REQUEST, NULL,
	    "not an array" },
	{ L("{'cmd':'ACQUIRE','model':''}"), PROTO_E_UNKNOWN_MODEL, NULL,
	    "'' is not a model name" },
	{ L("{'cmd':'ACQUIRE','model':'../x','id':2.5}"), PROTO_E_UNKNOWN_MODEL,
	    "2.5", "'../x' is not a model name (letters, digits, '.', '_', '-', "
	    "'+'" },
	{ L("{'cmd':'ACQUIRE','model':'/abs'}"), PROTO_E_UNKNOWN_MODEL, NULL,
	    "'/abs'" },
	{ L("{'cmd':'EVICT','model':'a/b'}"), PROTO_E_UNKNOWN_MODEL, NULL,
	    "'a/b'" },
	{ L("{'cmd':'ACQUIRE','model':'.hidden'}"), PROTO_E_UNKNOWN_MODEL, NULL,
	    "'.hidden'" },
	{ L("{'cmd':'ACQUIRE','model':'-rf'}"), PROTO_E_UNKNOWN_MODEL, NULL,
	    "'-rf'" },
	{ L("{'cmd':'ACQUIRE','model':'a b'}"), PROTO_E_UNKNOWN_MODEL, NULL,
	    "'a b'" },
	{ L("{'cmd':'ACQUIRE','model':'a\\tb'}"), PROTO_E_UNKNOWN_MODEL, NULL,
	    "'a?b'" },
	{ L("{'cmd':'ACQUIRE','model':'a\\u0000b'}"), PROTO_E_BAD_REQUEST, NULL,
	    "line is not JSON" },
	{ L("{'cmd':'ACQUIRE','model':'"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	    "X'}"), PROTO_E_UNKNOWN_MODEL, NULL,
	    "'0123456789abcdef0123456789abcdef01234567\xe2\x80\xa6' is not" },
	/* timeout_ms */
	{ L("{'cmd':'ACQUIRE','model':'m','timeout_ms':-1}"),
	    PROTO_E_BAD_REQUEST, NULL,
	    "\"timeout_ms\" must be an integer from 0 to 86400000, not -1" },
	{ L("{'cmd':'ACQUIRE','model':'m','timeout_ms':86400001}"),
	    PROTO_E_BAD_REQUEST, NULL, "not 86400001" },
	{ L("{'cmd':'ACQUIRE','model':'m','timeout_ms':'5'}"),
	    PROTO_E_BAD_REQUEST, NULL, "not a string" },
	{ L("{'cmd':'ACQUIRE','model':'m','timeout_ms':5.5}"),
	    PROTO_E_BAD_REQUEST, NULL, "not a real number" },
	{ L("{'cmd':'ACQUIRE','model':'m','timeout_ms':1e3}"),
	    PROTO_E_BAD_REQUEST, NULL, "not a real number" },
	{ L("{'cmd':'ACQUIRE','model':'m','timeout_ms':null}"),
	    PROTO_E_BAD_REQUEST, NULL, "not null" },
	{ L("{'cmd':'ACQUIRE','model':'m','timeout_ms':-9223372036854775808}"),
	    PROTO_E_BAD_REQUEST, NULL, "not -9223372036854775808" },
	/* hold and force */
	{ L("{'cmd':'ACQUIRE','model':'m','hold':'yes'}"), PROTO_E_BAD_REQUEST,
	    NULL, "\"hold\" must be true or false, not a string" },
	{ L("{'cmd':'ACQUIRE','model':'m','hold':1}"), PROTO_E_BAD_REQUEST,
	    NULL, "not 1" },
	{ L("{'cmd':'ACQUIRE','model':'m','hold':null}"), PROTO_E_BAD_REQUEST,
	    NULL, "not null" },
	{ L("{'cmd':'EVICT','model':'m','force':'true'}"), PROTO_E_BAD_REQUEST,
	    NULL, "\"force\" must be true or false, not a string" },
	{ L("{'cmd':'EVICT','model':'m','force':0}"), PROTO_E_BAD_REQUEST,
	    NULL, "not 0" },
	/* RELEASE needs a positive integer lease */
	{ L("{'cmd':'RELEASE'}"), PROTO_E_BAD_REQUEST, NULL,
	    "RELEASE needs \"lease\"" },
	{ L("{'cmd':'LEASE'}"), PROTO_E_BAD_REQUEST, NULL,
	    "LEASE needs \"lease\"" },
	{ L("{'cmd':'LEASE','lease':0}"), PROTO_E_BAD_REQUEST, NULL,
	    "\"lease\" must be a positive integer, not 0" },
	{ L("{'cmd':'RELEASE','lease':0}"), PROTO_E_BAD_REQUEST, NULL,
	    "\"lease\" must be a positive integer, not 0" },
	{ L("{'cmd':'RELEASE','lease':-1}"), PROTO_E_BAD_REQUEST, NULL,
	    "not -1" },
	{ L("{'cmd':'RELEASE','lease':-9223372036854775808}"),
	    PROTO_E_BAD_REQUEST, NULL, "not -9223372036854775808" },
	{ L("{'cmd':'RELEASE','lease':'1'}"), PROTO_E_BAD_REQUEST, NULL,
	    "not a string" },
	{ L("{'cmd':'RELEASE','lease':1.0}"), PROTO_E_BAD_REQUEST, NULL,
	    "not a real number" },
	{ L("{'cmd':'RELEASE','lease':true}"), PROTO_E_BAD_REQUEST, NULL,
	    "not true" },
	{ L("{'cmd':'RELEASE','lease':null}"), PROTO_E_BAD_REQUEST, NULL,
	    "not null" },
	{ L("{'cmd':'RELEASE','lease':{'id':1}}"), PROTO_E_BAD_REQUEST, NULL,
	    "not an object" },
	/* numbers too big for jansson are not JSON to us */
	{ L("{'cmd':'RELEASE','lease':9223372036854775808}"),
	    PROTO_E_BAD_REQUEST, NULL, "too big integer" },
	{ L("{'cmd':'RELEASE','lease':99999999999999999999999}"),
	    PROTO_E_BAD_REQUEST, NULL, "too big integer" },
	{ L("{'cmd':'RELEASE','lease':1e400}"), PROTO_E_BAD_REQUEST, NULL,
	    "real number overflow" },
	/* every kind of id is echoed in errors */
	{ L("{'id':'abc','cmd':'RELEASE'}"), PROTO_E_BAD_REQUEST, "'abc'",
	    "needs \"lease\"" },
	{ L("{'cmd':'RELEASE','lease':0,'id':''}"), PROTO_E_BAD_REQUEST, "''",
	    "positive" },
	{ L("{'cmd':'RELEASE','id':-7,'lease':'x'}"), PROTO_E_BAD_REQUEST, "-7",
	    "positive" },
	{ L("{'cmd':'FOO','id':null}"), PROTO_E_UNKNOWN_COMMAND, "null",
	    "'FOO'" },
	{ L("{'id':true,'cmd':'EVICT','model':'..'}"), PROTO_E_UNKNOWN_MODEL,
	    "true", "'..'" },
	{ L("{'id':false,'cmd':3}"), PROTO_E_BAD_REQUEST, "false", "not 3" },
	{ L("{'id':0.25,'cmd':'ACQUIRE','model':'m','hold':0}"),
	    PROTO_E_BAD_REQUEST, "0.25", "\"hold\"" },
	{ L("{'id':'\xe2\x9c\x93','cmd':'ACQUIRE','model':'m','timeout_ms':-5}"),
	    PROTO_E_BAD_REQUEST, "'\xe2\x9c\x93'", "\"timeout_ms\"" },
};

START_TEST(decode_refuses)
{
	const struct bad_case	*c = &bad_cases[_i];
	struct proto_request	 req;
	struct proto_reply	 rep;
	char			 buf[LINE_BUF], msg[PROTO_MESSAGE_MAX];
	char			 rmsg[PROTO_MESSAGE_MAX], *line;
	enum proto_err		 err;

	err = proto_decode_request(dq(buf, c->line, c->len), c->len, &req,
	    msg, sizeof(msg));
	ck_assert_msg(err == c->err, "case %d %s: got %s (%s), want %s", _i,
	    buf, proto_err_name(err), msg, proto_err_name(c->err));
	ck_assert_msg(strstr(msg, c->says) != NULL,
	    "case %d %s: message '%s' lacks '%s'", _i, buf, msg, c->says);
	assert_readable(msg, sizeof(msg), _i);
	assert_id(req.id, c->id, _i);

	/* Whatever came in, the daemon can answer it. */
	line = proto_encode_error(req.id, err, msg);
	ck_assert_ptr_nonnull(line);
	ck_assert_int_eq(proto_decode_reply(line, strlen(line) - 1, &rep, rmsg,
	    sizeof(rmsg)), PROTO_OK);
	ck_assert(!rep.ok);
	ck_assert_int_eq(rep.err, err);
	ck_assert_str_eq(rep.message, msg);
	assert_id(rep.id, c->id, _i);
	proto_reply_clear(&rep);
	free(line);
	proto_request_clear(&req);
}
END_TEST

/* A line of exactly n bytes: a PING padded with spaces. */
static char *
padded_ping(size_t n)
{
	char	*s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, ' ', n);
	memcpy(s, "{\"cmd\":\"PING\"}", 14);
	s[n] = '\0';
	return s;
}

START_TEST(decode_line_length_limit)
{
	struct proto_request	 req;
	char			 msg[PROTO_MESSAGE_MAX], want[128];
	char			*s = padded_ping(PROTO_LINE_MAX_BYTES + 1);

	ck_assert_int_eq(proto_decode_request(s, PROTO_LINE_MAX_BYTES, &req,
	    msg, sizeof(msg)), PROTO_OK);
	ck_assert_int_eq(req.cmd, PROTO_CMD_PING);
	proto_request_clear(&req);
	ck_assert_int_eq(proto_decode_request(s, PROTO_LINE_MAX_BYTES + 1,
	    &req, msg, sizeof(msg)), PROTO_E_BAD_REQUEST);
	snprintf(want, sizeof(want), "line is %d bytes, the limit is %d",
	    PROTO_LINE_MAX_BYTES + 1, PROTO_LINE_MAX_BYTES);
	ck_assert_str_eq(msg, want);
	proto_request_clear(&req);
	free(s);
}
END_TEST

START_TEST(decode_small_message_buffers)
{
	struct proto_request	 req;
	const char		*line = "{\"cmd\":\"\xc3\xa9\xc3\xa9\"}";
	char			 msg[32];

	/* "unknown command '" is 17 bytes; 19 cuts the é in two. */
	memset(msg, 'x', sizeof(msg));
	ck_assert_int_eq(proto_decode_request(line, strlen(line), &req, msg,
	    19), PROTO_E_UNKNOWN_COMMAND);
	ck_assert_str_eq(msg, "unknown command '");
	proto_request_clear(&req);

	ck_assert_int_eq(proto_decode_request(line, strlen(line), &req, msg,
	    1), PROTO_E_UNKNOWN_COMMAND);
	ck_assert_str_eq(msg, "");
	proto_request_clear(&req);

	/* No buffer at all is fine too. */
	ck_assert_int_eq(proto_decode_request(line, strlen(line), &req, NULL,
	    0), PROTO_E_UNKNOWN_COMMAND);
	proto_request_clear(&req);
}
END_TEST

START_TEST(request_init_and_clear)
{
	struct proto_request	 req;
	char			 msg[PROTO_MESSAGE_MAX];
	const char		*line = "{\"cmd\":\"ACQUIRE\",\"model\":\"m\","
				    "\"id\":\"x\",\"hold\":false}";

	proto_request_init(&req);
	ck_assert_int_eq(req.cmd, PROTO_CMD_NONE);
	ck_assert_ptr_null(req.id);
	ck_assert_str_eq(req.model, "");
	ck_assert_int_eq(req.lease, 0);
	ck_assert_int_eq(req.timeout_ms, -1);
	ck_assert(req.hold);
	ck_assert(!req.force);

	ck_assert_int_eq(proto_decode_request(line, strlen(line), &req, msg,
	    sizeof(msg)), PROTO_OK);
	ck_assert_ptr_nonnull(req.id);
	proto_request_clear(&req);
	ck_assert_ptr_null(req.id);
	ck_assert_int_eq(req.cmd, PROTO_CMD_NONE);
	ck_assert_str_eq(req.model, "");
	ck_assert(req.hold);
	proto_request_clear(&req);	/* twice is harmless */
}
END_TEST

/* --- model names --- */

static const struct name_case {
	const char	*name;
	bool		 ok;
} name_cases[] = {
	{ "a", true },
	{ "0", true },
	{ "llama-3.1-8b-instruct.Q4_K_M", true },
	{ "Qwen2.5-7B", true },
	{ "phi+3", true },
	{ "+x", true },
	{ "_x", true },
	{ "x-", true },
	{ "x.", true },
	{ "a..b", true },
	{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	  true },
	{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	  "x", false },
	{ NULL, false },
	{ "", false },
	{ ".", false },
	{ "..", false },
	{ ".hidden", false },
	{ "../x", false },
	{ "-x", false },
	{ "--help", false },
	{ "/abs", false },
	{ "a/b", false },
	{ "a\\b", false },
	{ "a b", false },
	{ " a", false },
	{ "a\tb", false },
	{ "a\nb", false },
	{ "a:b", false },
	{ "a*", false },
	{ "~x", false },
	{ "$HOME", false },
	{ "caf\xc3\xa9", false },
	{ "a\xff", false },
};

START_TEST(model_name_allow_list)
{
	const struct name_case	*c = &name_cases[_i];

	ck_assert_msg(proto_model_name_ok(c->name) == c->ok, "case %d '%s': "
	    "want %s", _i, c->name ? c->name : "(null)", c->ok ? "ok" : "no");
}
END_TEST

START_TEST(model_name_stops_at_nul)
{
	/* Only the bytes before the NUL are the name. */
	ck_assert(proto_model_name_ok("ab\0../x"));
}
END_TEST

/* --- encode and decode requests --- */

static const struct trip_case {
	enum proto_cmd	 cmd;
	const char	*id;		/* as JSON; NULL: none */
	const char	*model;
	int64_t		 lease;
	int64_t		 timeout_ms;
	bool		 hold;
	bool		 force;
	const char	*line;		/* what encoding gives */
} trip_cases[] = {
	{ PROTO_CMD_PING, NULL, "", 0, -1, true, false, "{'cmd':'PING'}" },
	{ PROTO_CMD_PING, "7", "", 0, -1, true, false,
	    "{'cmd':'PING','id':7}" },
	{ PROTO_CMD_STATS, "'s'", "", 0, -1, true, false,
	    "{'cmd':'STATS','id':'s'}" },
	{ PROTO_CMD_MODELS, "null", "", 0, -1, true, false,
	    "{'cmd':'MODELS','id':null}" },
	{ PROTO_CMD_ACQUIRE, "1.5", "m", 0, -1, true, false,
	    "{'cmd':'ACQUIRE','id':1.5,'model':'m'}" },
	{ PROTO_CMD_ACQUIRE, NULL, "llama-3.1-8b", 0, 0, false, false,
	    "{'cmd':'ACQUIRE','model':'llama-3.1-8b','timeout_ms':0,"
	    "'hold':false}" },
	{ PROTO_CMD_ACQUIRE, "true", "m", 0, 86400000, true, false,
	    "{'cmd':'ACQUIRE','id':true,'model':'m','timeout_ms':86400000}" },
	{ PROTO_CMD_RELEASE, "false", "", 42, -1, true, false,
	    "{'cmd':'RELEASE','id':false,'lease':42}" },
	{ PROTO_CMD_RELEASE, NULL, "", INT64_MAX, -1, true, false,
	    "{'cmd':'RELEASE','lease':9223372036854775807}" },
	{ PROTO_CMD_EVICT, "'e'", "m", 0, -1, true, true,
	    "{'cmd':'EVICT','id':'e','model':'m','force':true}" },
	{ PROTO_CMD_EVICT, "-1", "m+2", 0, -1, true, false,
	    "{'cmd':'EVICT','id':-1,'model':'m+2'}" },
};

static void
fill_request(struct proto_request *req, const struct trip_case *c)
{
	proto_request_init(req);
	req->cmd = c->cmd;
	req->id = c->id != NULL ? expect_json(c->id) : NULL;
	snprintf(req->model, sizeof(req->model), "%s", c->model);
	req->lease = c->lease;
	req->timeout_ms = c->timeout_ms;
	req->hold = c->hold;
	req->force = c->force;
}

START_TEST(request_round_trip)
{
	const struct trip_case	*c = &trip_cases[_i];
	struct proto_request	 in, out;
	char			*line, msg[PROTO_MESSAGE_MAX];

	fill_request(&in, c);
	line = proto_encode_request(&in);
	ck_assert_int_eq(proto_decode_request(line, strlen(line) - 1, &out,
	    msg, sizeof(msg)), PROTO_OK);
	assert_line(line, c->line);
	ck_assert_int_eq(out.cmd, in.cmd);
	ck_assert_str_eq(out.model, in.model);
	ck_assert_int_eq(out.lease, in.lease);
	ck_assert_int_eq(out.timeout_ms, in.timeout_ms);
	ck_assert_int_eq(out.hold, in.hold);
	ck_assert_int_eq(out.force, in.force);
	ck_assert(in.id == NULL ? out.id == NULL : json_equal(in.id, out.id));
	free(line);
	proto_request_clear(&in);
	proto_request_clear(&out);
}
END_TEST

START_TEST(encode_request_leaves_out_unused_fields)
{
	struct proto_request	 req;
	char			*line;

	proto_request_init(&req);
	req.cmd = PROTO_CMD_PING;
	snprintf(req.model, sizeof(req.model), "m");
	req.lease = 5;
	req.timeout_ms = 10;
	req.hold = false;
	req.force = true;
	assert_line(line = proto_encode_request(&req), "{'cmd':'PING'}");
	free(line);
	req.cmd = PROTO_CMD_RELEASE;
	assert_line(line = proto_encode_request(&req),
	    "{'cmd':'RELEASE','lease':5}");
	free(line);
	/* A negative timeout other than -1 also means "the default". */
	req.cmd = PROTO_CMD_ACQUIRE;
	req.timeout_ms = -20;
	assert_line(line = proto_encode_request(&req),
	    "{'cmd':'ACQUIRE','model':'m','hold':false}");
	free(line);
}
END_TEST

START_TEST(encode_request_refuses)
{
	struct proto_request	 req;
	char			*big;

	proto_request_init(&req);
	ck_assert_ptr_null(proto_encode_request(&req));	/* no command */
	ck_assert_int_eq(errno, EINVAL);
	req.cmd = (enum proto_cmd)99;
	ck_assert_ptr_null(proto_encode_request(&req));

	/* A line the daemon would refuse as too long. */
	req.cmd = PROTO_CMD_PING;
	big = padded_ping(PROTO_LINE_MAX_BYTES);
	memset(big, 'i', PROTO_LINE_MAX_BYTES);
	req.id = json_string(big);
	ck_assert_ptr_null(proto_encode_request(&req));
	ck_assert_int_eq(errno, EMSGSIZE);
	proto_request_clear(&req);
	free(big);

	/* A model that is not UTF-8 cannot be encoded. */
	req.cmd = PROTO_CMD_EVICT;
	snprintf(req.model, sizeof(req.model), "m\xff");
	ck_assert_ptr_null(proto_encode_request(&req));
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* --- replies --- */

START_TEST(encode_error_text)
{
	json_t	*id = json_integer(7);
	char	*line;

	assert_line(line = proto_encode_error(id, PROTO_E_BUSY,
	    "no room for m: 12.0 GiB used"),
	    "{'ok':false,'id':7,'error':'busy',"
	    "'message':'no room for m: 12.0 GiB used'}");
	free(line);
	json_decref(id);
}
END_TEST

START_TEST(encode_error_edge_cases)
{
	char	*line;

	assert_line(line = proto_encode_error(NULL, PROTO_E_TIMEOUT, "slow"),
	    "{'ok':false,'error':'timeout','message':'slow'}");
	free(line);
	/* "ok" and strays are no error codes: they become internal. */
	assert_line(line = proto_encode_error(NULL, PROTO_OK, "x"),
	    "{'ok':false,'error':'internal','message':'x'}");
	free(line);
	assert_line(line = proto_encode_error(NULL, PROTO_E__COUNT, "x"),
	    "{'ok':false,'error':'internal','message':'x'}");
	free(line);
	assert_line(line = proto_encode_error(NULL, PROTO_E_FORBIDDEN, NULL),
	    "{'ok':false,'error':'forbidden','message':'forbidden'}");
	free(line);
	/* A child's stderr may be anything; the reply is still sent. */
	assert_line(line = proto_encode_error(NULL, PROTO_E_START_FAILED,
	    "bad \xff byte\x01 \xc3\xa9"),
	    "{'ok':false,'error':'start_failed','message':'bad ? byte? \xc3\xa9'}");
	free(line);
}
END_TEST

START_TEST(error_reply_round_trip)
{
	enum proto_err		 e = (enum proto_err)_i;
	json_t			*id = json_pack("{s:s}", "k", "v");
	struct proto_reply	 rep;
	char			*line, msg[PROTO_MESSAGE_MAX];
	char			*text = "what went wrong, \xc3\xa9";

	/* A reply's id is whatever the request sent; even an object here. */
	line = proto_encode_error(id, e, text);
	ck_assert_ptr_nonnull(line);
	ck_assert_int_eq(proto_decode_reply(line, strlen(line) - 1, &rep, msg,
	    sizeof(msg)), PROTO_OK);
	ck_assert(!rep.ok);
	ck_assert_int_eq(rep.err, e);
	ck_assert_str_eq(rep.message, text);
	ck_assert(json_equal(rep.id, id));
	ck_assert_ptr_nonnull(rep.body);
	proto_reply_clear(&rep);
	ck_assert_ptr_null(rep.body);
	free(line);
	json_decref(id);
}
END_TEST

START_TEST(encode_ok_text)
{
	json_t	*id = json_string("x");
	json_t	*body = json_pack("{s:b, s:i, s:[s,s]}", "pong", 1,
		    "version", 1, "models", "a", "b");
	json_t	*sneaky = json_pack("{s:b, s:i, s:s}", "ok", 0, "id", 9, "z",
		    "last");
	char	*line;

	assert_line(line = proto_encode_ok(id, body),
	    "{'ok':true,'id':'x','pong':true,'version':1,'models':['a','b']}");
	free(line);
	ck_assert_uint_eq(json_object_size(body), 3);	/* left alone */
	ck_assert_uint_eq(body->refcount, 1);
	assert_line(line = proto_encode_ok(NULL, NULL), "{'ok':true}");
	free(line);
	/* A body cannot override ok or id. */
	assert_line(line = proto_encode_ok(id, sneaky),
	    "{'ok':true,'id':'x','z':'last'}");
	free(line);
	ck_assert_ptr_null(proto_encode_ok(id, id));	/* not an object */
	json_decref(sneaky);
	json_decref(body);
	json_decref(id);
}
END_TEST

START_TEST(ok_reply_round_trip)
{
	json_t			*id = json_integer(3);
	json_t			*body = json_pack("{s:i, s:s}", "used", 5,
				    "unit", "GiB");
	struct proto_reply	 rep;
	char			*line, msg[PROTO_MESSAGE_MAX];

	line = proto_encode_ok(id, body);
	ck_assert_int_eq(proto_decode_reply(line, strlen(line) - 1, &rep, msg,
	    sizeof(msg)), PROTO_OK);
	ck_assert(rep.ok);
	ck_assert_int_eq(rep.err, PROTO_OK);
	ck_assert_str_eq(rep.message, "");
	ck_assert_int_eq(json_integer_value(rep.id), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(rep.body, "used")),
	    5);
	ck_assert_str_eq(json_string_value(json_object_get(rep.body, "unit")),
	    "GiB");
	proto_reply_clear(&rep);
	free(line);
	json_decref(body);
	json_decref(id);
}
END_TEST

static const struct acquired_case {
	struct proto_acquired	 a;
	const char		*line;
} acquired_cases[] = {
	{ { "llama-3.1-8b", 41001, "http://127.0.0.1:41001", 17, true, 5120,
	    "", "" },
	    "{'ok':true,'id':'a1','model':'llama-3.1-8b','port':41001,"
	    "'endpoint':'http://127.0.0.1:41001','lease':17,'cold':true,"
	    "'wait_ms':5120}" },
	{ { "m", 1, "http://127.0.0.1:1", 0, false, 0, "", "" },
	    "{'ok':true,'id':'a1','model':'m','port':1,"
	    "'endpoint':'http://127.0.0.1:1','cold':false,'wait_ms':0}" },
	/* The largest id poold gives: exact in any JSON reader. */
	{ { "m", 8080, "http://127.0.0.1:8080", PROTO_LEASE_MAX, true, 2,
	    "", "" },
	    "{'ok':true,'id':'a1','model':'m','port':8080,"
	    "'endpoint':'http://127.0.0.1:8080','lease':9007199254740991,"
	    "'cold':true,'wait_ms':2}" },
	{ { "m", 65535, "http://127.0.0.1:65535", INT64_MAX, false, 1, "", "" },
	    "{'ok':true,'id':'a1','model':'m','port':65535,"
	    "'endpoint':'http://127.0.0.1:65535','lease':9223372036854775807,"
	    "'cold':false,'wait_ms':1}" },
	/* A server with a key, on another node, over IPv6. */
	{ { "m", 8080, "http://[fd00::1]:8080", 3, false, 1,
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "gpu-2" },
	    "{'ok':true,'id':'a1','model':'m','port':8080,"
	    "'endpoint':'http://[fd00::1]:8080','lease':3,'cold':false,"
	    "'wait_ms':1,'api_key':'0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef','node':'gpu-2'}" },
};

START_TEST(acquired_round_trip)
{
	const struct acquired_case	*c = &acquired_cases[_i];
	json_t				*id = json_string("a1");
	struct proto_reply		 rep;
	struct proto_acquired		 got;
	char				*line, msg[PROTO_MESSAGE_MAX];

	line = proto_encode_acquired(id, &c->a);
	ck_assert_int_eq(proto_decode_reply(line, strlen(line) - 1, &rep, msg,
	    sizeof(msg)), PROTO_OK);
	ck_assert_int_eq(proto_reply_acquired(&rep, &got), PROTO_OK);
	ck_assert_str_eq(got.model, c->a.model);
	ck_assert_int_eq(got.port, c->a.port);
	ck_assert_str_eq(got.endpoint, c->a.endpoint);
	ck_assert_int_eq(got.lease, c->a.lease);
	ck_assert_int_eq(got.cold, c->a.cold);
	ck_assert_int_eq(got.wait_ms, c->a.wait_ms);
	ck_assert_str_eq(json_string_value(rep.id), "a1");
	assert_line(line, c->line);
	proto_reply_clear(&rep);
	free(line);
	json_decref(id);
}
END_TEST

static const struct reply_case {
	const char	*line;
	size_t		 len;
	enum proto_err	 result;	/* of proto_decode_reply */
	enum proto_err	 err;		/* rep.err when it decodes */
	const char	*message;	/* rep.message, or part of msg */
} reply_cases[] = {
	{ L("{'ok':true}"), PROTO_OK, PROTO_OK, "" },
	{ L("{'ok':false,'error':'busy','message':'full'}"), PROTO_OK,
	    PROTO_E_BUSY, "full" },
	/* a code from a newer daemon: internal, but its message kept */
	{ L("{'ok':false,'error':'brand_new','message':'try later'}"), PROTO_OK,
	    PROTO_E_INTERNAL, "try later" },
	{ L("{'ok':false,'error':'ok','message':'odd'}"), PROTO_OK,
	    PROTO_E_INTERNAL, "odd" },
	{ L("{'ok':false,'error':'not_found'}"), PROTO_OK, PROTO_E_NOT_FOUND,
	    "not_found" },
	{ L("{'ok':false,'error':'timeout','message':'','extra':[1]}"), PROTO_OK,
	    PROTO_E_TIMEOUT, "" },
	/* not replies */
	{ L(""), PROTO_E_BAD_REQUEST, PROTO_OK, "not JSON" },
	{ L("{'ok':true} x"), PROTO_E_BAD_REQUEST, PROTO_OK, "end of file" },
	{ L("{'ok':true,'ok':true}"), PROTO_E_BAD_REQUEST, PROTO_OK,
	    "duplicate" },
	{ L("[true]"), PROTO_E_BAD_REQUEST, PROTO_OK, "boolean \"ok\"" },
	{ L("{}"), PROTO_E_BAD_REQUEST, PROTO_OK, "boolean \"ok\"" },
	{ L("{'ok':1}"), PROTO_E_BAD_REQUEST, PROTO_OK, "boolean \"ok\"" },
	{ L("{'ok':'true'}"), PROTO_E_BAD_REQUEST, PROTO_OK, "boolean \"ok\"" },
	{ L("{'ok':false}"), PROTO_E_BAD_REQUEST, PROTO_OK, "string \"error\"" },
	{ L("{'ok':false,'error':5}"), PROTO_E_BAD_REQUEST, PROTO_OK,
	    "string \"error\"" },
	{ L("{'ok':false,'error':'busy','message':5}"), PROTO_E_BAD_REQUEST,
	    PROTO_OK, "\"message\"" },
};

START_TEST(decode_reply_table)
{
	const struct reply_case	*c = &reply_cases[_i];
	struct proto_reply	 rep;
	char			 buf[LINE_BUF], msg[PROTO_MESSAGE_MAX];
	enum proto_err		 result;

	result = proto_decode_reply(dq(buf, c->line, c->len), c->len, &rep,
	    msg, sizeof(msg));
	ck_assert_msg(result == c->result, "case %d %s: got %s (%s)", _i, buf,
	    proto_err_name(result), msg);
	if (result == PROTO_OK) {
		ck_assert_int_eq(rep.err, c->err);
		ck_assert_int_eq(rep.ok, c->err == PROTO_OK);
		ck_assert_str_eq(rep.message, c->message);
		ck_assert_ptr_nonnull(rep.body);
	} else {
		ck_assert_msg(strstr(msg, c->message) != NULL, "case %d: '%s' "
		    "lacks '%s'", _i, msg, c->message);
		assert_readable(msg, sizeof(msg), _i);
		ck_assert_ptr_null(rep.body);
	}
	proto_reply_clear(&rep);
}
END_TEST

START_TEST(decode_reply_cuts_long_messages)
{
	struct proto_reply	 rep;
	json_t			*m;
	char			*text, *line;
	size_t			 i, n = 3 * PROTO_MESSAGE_MAX;

	/* 'é' is 2 bytes and the limit odd, so a cut falls inside one. */
	text = malloc(n + 1);
	ck_assert_ptr_nonnull(text);
	for (i = 0; i < n; i += 2)
		memcpy(text + i, "\xc3\xa9", 2);
	text[n] = '\0';
	line = proto_encode_error(NULL, PROTO_E_BUSY, text);
	ck_assert_int_eq(proto_decode_reply(line, strlen(line), &rep, NULL, 0),
	    PROTO_OK);
	ck_assert_uint_eq(strlen(rep.message), PROTO_MESSAGE_MAX - 2);
	m = json_string(rep.message);
	ck_assert_ptr_nonnull(m);
	json_decref(m);
	proto_reply_clear(&rep);
	free(line);
	free(text);
}
END_TEST

static const struct bad_acquired_case {
	const char	*line;
} bad_acquired_cases[] = {
	{ "{'ok':false,'error':'busy','message':'m'}" },
	{ "{'ok':true}" },
	{ "{'ok':true,'port':1,'endpoint':'e','cold':true,'wait_ms':0}" },
	{ "{'ok':true,'model':7,'port':1,'endpoint':'e','cold':true,"
	  "'wait_ms':0}" },
	{ "{'ok':true,'model':'m','endpoint':'e','cold':true,'wait_ms':0}" },
	{ "{'ok':true,'model':'m','port':'1','endpoint':'e','cold':true,"
	  "'wait_ms':0}" },
	{ "{'ok':true,'model':'m','port':0,'endpoint':'e','cold':true,"
	  "'wait_ms':0}" },
	{ "{'ok':true,'model':'m','port':65536,'endpoint':'e','cold':true,"
	  "'wait_ms':0}" },
	{ "{'ok':true,'model':'m','port':1,'cold':true,'wait_ms':0}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'" E300 "','cold':true,"
	  "'wait_ms':0}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'e','cold':true,"
	  "'wait_ms':0,'api_key':'" E100 E10 E10 "123456789'}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'e','cold':true,"
	  "'wait_ms':0,'api_key':7}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'e','cold':true,"
	  "'wait_ms':0,'node':'" E10 E10 E10 E10 E10 E10 "0123'}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'e','wait_ms':0}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'e','cold':1,"
	  "'wait_ms':0}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'e','cold':true}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'e','cold':true,"
	  "'wait_ms':-1}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'e','cold':true,"
	  "'wait_ms':1.5}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'e','cold':true,"
	  "'wait_ms':0,'lease':'1'}" },
	{ "{'ok':true,'model':'m','port':1,'endpoint':'e','cold':true,"
	  "'wait_ms':0,'lease':-1}" },
	{ "{'ok':true,'model':'"
	  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	  "x','port':1,'endpoint':'e','cold':true,'wait_ms':0}" },
};

START_TEST(reply_acquired_refuses)
{
	const char		*q = bad_acquired_cases[_i].line;
	struct proto_reply	 rep;
	struct proto_acquired	 a;
	char			 buf[LINE_BUF], msg[PROTO_MESSAGE_MAX];

	ck_assert_int_eq(proto_decode_reply(dq(buf, q, strlen(q)), strlen(q),
	    &rep, msg, sizeof(msg)), PROTO_OK);
	ck_assert_msg(proto_reply_acquired(&rep, &a) == PROTO_E_BAD_REQUEST,
	    "case %d %s: accepted", _i, buf);
	ck_assert_str_eq(a.model, "");
	ck_assert_int_eq(a.port, 0);
	proto_reply_clear(&rep);
}
END_TEST

/* --- names --- */

START_TEST(error_names)
{
	static const char *const want[] = {
		"ok", "bad_request", "unknown_command", "unknown_model", "busy",
		"too_large", "start_failed", "timeout", "not_found",
		"shutting_down", "forbidden", "internal", "lease_lost",
	};
	size_t	 i;

	ck_assert_uint_eq(NELEM(want), PROTO_E__COUNT);
	for (i = 0; i < NELEM(want); i++) {
		ck_assert_str_eq(proto_err_name((enum proto_err)i), want[i]);
		ck_assert_uint_eq(proto_err_from_name(want[i]), i);
	}
	ck_assert_str_eq(proto_err_name(PROTO_E__COUNT), "internal");
	ck_assert_int_eq(proto_err_from_name("BUSY"), PROTO_E__COUNT);
	ck_assert_int_eq(proto_err_from_name("nope"), PROTO_E__COUNT);
	ck_assert_int_eq(proto_err_from_name(""), PROTO_E__COUNT);
	ck_assert_int_eq(proto_err_from_name(NULL), PROTO_E__COUNT);
}
END_TEST

START_TEST(command_names)
{
	ck_assert_str_eq(proto_cmd_name(PROTO_CMD_ACQUIRE), "ACQUIRE");
	ck_assert_str_eq(proto_cmd_name(PROTO_CMD_RELEASE), "RELEASE");
	ck_assert_str_eq(proto_cmd_name(PROTO_CMD_STATS), "STATS");
	ck_assert_str_eq(proto_cmd_name(PROTO_CMD_EVICT), "EVICT");
	ck_assert_str_eq(proto_cmd_name(PROTO_CMD_MODELS), "MODELS");
	ck_assert_str_eq(proto_cmd_name(PROTO_CMD_PING), "PING");
	ck_assert_str_eq(proto_cmd_name(PROTO_CMD_NONE), "NONE");
	ck_assert_str_eq(proto_cmd_name((enum proto_cmd)99), "NONE");
}
END_TEST

/* --- framing --- */

static const struct frame_case {
	const char	*buf;
	size_t		 len;
	long		 line;		/* length of the first line, or -1 */
	size_t		 consumed;
} frame_cases[] = {
	{ L("PING\n"), 4, 5 },
	{ L("PING\r\n"), 4, 6 },
	{ L("PING"), -1, 0 },
	{ L("PING\r"), -1, 0 },
	{ L(""), -1, 0 },
	{ L("\n"), 0, 1 },
	{ L("\r\n"), 0, 2 },
	{ L("\r\r\n"), 1, 3 },
	{ L("a\rb\n"), 3, 4 },
	{ L("a\nb\n"), 1, 2 },
	{ L("a\0b\nc"), 3, 4 },
	{ L("\n\n"), 0, 1 },
};

START_TEST(framing_table)
{
	const struct frame_case	*c = &frame_cases[_i];
	size_t			 consumed = 12345;

	ck_assert_int_eq(proto_line(c->buf, c->len, &consumed), c->line);
	ck_assert_uint_eq(consumed, c->consumed);
}
END_TEST

START_TEST(framing_several_lines)
{
	static const char	 buf[] = "{\"cmd\":\"PING\"}\n\r\n\n"
				    "{\"cmd\":\"STATS\"}\r\n{\"cmd\":\"MOD";
	static const char *const want[] = {
		"{\"cmd\":\"PING\"}", "", "", "{\"cmd\":\"STATS\"}",
	};
	size_t			 off = 0, consumed, n = 0;
	long			 len;

	while ((len = proto_line(buf + off, sizeof(buf) - 1 - off,
	    &consumed)) >= 0) {
		ck_assert_uint_lt(n, NELEM(want));
		ck_assert_uint_eq((size_t)len, strlen(want[n]));
		ck_assert(memcmp(buf + off, want[n], (size_t)len) == 0);
		off += consumed;
		n++;
	}
	ck_assert_uint_eq(n, NELEM(want));
	ck_assert_str_eq(buf + off, "{\"cmd\":\"MOD");	/* waits for more */
}
END_TEST

/* --- the default socket --- */

static const char *
socket_path(char *buf, size_t len, const char *poold_socket, const char *xdg)
{
	if (poold_socket != NULL)
		setenv("POOLD_SOCKET", poold_socket, 1);
	else
		unsetenv("POOLD_SOCKET");
	if (xdg != NULL)
		setenv("XDG_RUNTIME_DIR", xdg, 1);
	else
		unsetenv("XDG_RUNTIME_DIR");
	return proto_default_socket(buf, len);
}

/* The paths for an ordinary user; run as root, as that user for a while. */
static void
check_user_paths(void)
{
	char	 buf[256], want[64];

	ck_assert_str_eq(socket_path(buf, sizeof(buf), NULL, "/run/user/1000"),
	    "/run/user/1000/poold/poold.sock");
	snprintf(want, sizeof(want), "/tmp/poold-%lu/poold.sock",
	    (unsigned long)geteuid());
	ck_assert_str_eq(socket_path(buf, sizeof(buf), NULL, NULL), want);
	ck_assert_str_eq(socket_path(buf, sizeof(buf), NULL, ""), want);
	ck_assert_str_eq(socket_path(buf, sizeof(buf), "/x.sock", "/r"),
	    "/x.sock");
}

START_TEST(default_socket)
{
	char	 buf[256];

	ck_assert_str_eq(socket_path(buf, sizeof(buf), "/srv/p.sock", "/run/u"),
	    "/srv/p.sock");
	/* Set but empty counts as unset. */
	ck_assert_ptr_nonnull(socket_path(buf, sizeof(buf), "", NULL));
	ck_assert_str_ne(buf, "");
	if (geteuid() == 0) {
		ck_assert_str_eq(socket_path(buf, sizeof(buf), NULL, "/run/u"),
		    "/run/poold/poold.sock");
		ck_assert_str_eq(socket_path(buf, sizeof(buf), NULL, NULL),
		    "/run/poold/poold.sock");
		ck_assert_int_eq(seteuid(65534), 0);
		check_user_paths();
		ck_assert_int_eq(seteuid(0), 0);
	} else
		check_user_paths();
}
END_TEST

START_TEST(default_socket_too_long)
{
	char	 buf[16];

	/* "/a/b/poold.sock" is 15 bytes: fits in 16, not in 15. */
	ck_assert_str_eq(socket_path(buf, 16, "/a/b/poold.sock", NULL),
	    "/a/b/poold.sock");
	ck_assert_ptr_null(socket_path(buf, 15, "/a/b/poold.sock", NULL));
	ck_assert_ptr_null(socket_path(buf, 0, "/a", NULL));
	ck_assert_ptr_null(socket_path(buf, sizeof(buf), NULL, NULL));
}
END_TEST

/* --- the fast encoders and decoder against jansson --- */

/* Ids of every kind; the text is jansson's (JSON_DECODE_ANY). */
static const char *const fast_ids[] = {
	NULL, "0", "1", "-1", "42", "9223372036854775807",
	"-9223372036854775808", "123456789012345678", "-99999", "true",
	"false", "null", "\"\"", "\"abc\"", "\"a\\\"b\\\\c\"",
	"\"tab\\tnl\\ncr\\r\\u0001\\u001f\\u007f\"", "\"caf\\u00e9 \\u2026\"",
	"\"\\ud83d\\ude00\"", "\"/slash/\"", "1.5", "-0.0", "1e300", "0.1",
	"3.0", "-2.5e-7", "\"9223372036854775808\"",
};

/* The id as an object, as a decoded request holds it. */
static json_t *
fast_id(int i)
{
	json_t	*v;

	if (fast_ids[i] == NULL)
		return NULL;
	v = json_loads(fast_ids[i], JSON_DECODE_ANY, NULL);
	ck_assert_msg(v != NULL, "bad id %s", fast_ids[i]);
	return v;
}

/* What the jansson-only encoders wrote, byte for byte. */
static char *
ref_line(json_t *o)
{
	char	*s, *line;

	ck_assert_ptr_nonnull(o);
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	ck_assert_ptr_nonnull(s);
	line = malloc(strlen(s) + 2);
	ck_assert_ptr_nonnull(line);
	sprintf(line, "%s\n", s);
	free(s);
	return line;
}

static void
assert_same(char *got, char *want, const char *what, int i)
{
	ck_assert_msg(got != NULL && strcmp(got, want) == 0,
	    "%s, id %s:\n got %s\nwant %s", what,
	    fast_ids[i] ? fast_ids[i] : "(none)", got ? got : "NULL", want);
	free(got);
	free(want);
}

START_TEST(fast_ok_matches_jansson)
{
	json_t	*id = fast_id(_i);

	assert_same(proto_encode_ok(id, NULL),
	    ref_line(json_pack("{s:b, s:O*}", "ok", 1, "id", id)), "ok", _i);
	json_decref(id);
}
END_TEST

START_TEST(fast_error_matches_jansson)
{
	static const char *const msgs[] = {
		"", "plain", "quote \" backslash \\ slash /",
		"ctl \x01\x1f\x7f tab\tnl\n", "caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x98\x80",
		"not utf-8 \xff\xfe end", "no model named 'x' in /m",
	};
	json_t	*id = fast_id(_i), *m;
	char	 clean[PROTO_MESSAGE_MAX];
	size_t	 k;
	int	 e;

	for (k = 0; k < NELEM(msgs); k++)
		for (e = PROTO_E_BAD_REQUEST; e < PROTO_E__COUNT; e++) {
			m = json_string(msgs[k]);
			if (m == NULL) {
				/* what message_string() does with bad UTF-8 */
				char *r = proto_encode_error(id, e, msgs[k]);
				json_t *b = json_loads(r, 0, NULL);
				ck_assert_ptr_nonnull(b);
				snprintf(clean, sizeof(clean), "%s",
				    json_string_value(json_object_get(b,
				    "message")));
				json_decref(b);
				free(r);
				ck_assert_ptr_null(strchr(clean, '\xff'));
				m = json_string(clean);
			}
			assert_same(proto_encode_error(id, e, msgs[k]),
			    ref_line(json_pack("{s:b, s:O*, s:s, s:o}", "ok", 0,
			    "id", id, "error", proto_err_name(e), "message", m)),
			    "error", _i);
		}
	json_decref(id);
}
END_TEST

START_TEST(fast_acquired_matches_jansson)
{
	static const struct { const char *model; int port; int64_t lease;
	    bool cold; int64_t wait_ms; } acqs[] = {
		{ "m", 1, 0, false, 0 },
		{ "tiny-1.5B_q4+k.gguf", 65535, 1, true, 1 },
		{ "a", 8080, INT64_MAX, false, INT64_MAX },
		{ "Z9", 40000, 123456789, true, 86400000 },
		{ "x", 0, -1, false, -5 },
	};
	struct proto_acquired	 a;
	json_t			*id = fast_id(_i), *o;
	size_t			 k;

	for (k = 0; k < NELEM(acqs); k++) {
		memset(&a, 0, sizeof(a));
		snprintf(a.model, sizeof(a.model), "%s", acqs[k].model);
		a.port = acqs[k].port;
		snprintf(a.endpoint, sizeof(a.endpoint), "http://127.0.0.1:%d",
		    a.port);
		a.lease = acqs[k].lease;
		a.cold = acqs[k].cold;
		a.wait_ms = acqs[k].wait_ms;
		o = json_pack("{s:b, s:O*, s:s, s:i, s:s, s:I, s:b, s:I}",
		    "ok", 1, "id", id, "model", a.model, "port", a.port,
		    "endpoint", a.endpoint, "lease", (json_int_t)a.lease,
		    "cold", a.cold, "wait_ms", (json_int_t)a.wait_ms);
		if (a.lease == 0)
			json_object_del(o, "lease");
		assert_same(proto_encode_acquired(id, &a), ref_line(o),
		    "acquired", _i);
	}
	/* A name of the longest length, and text that needs escaping
	 * (not a model name, but the encoder must still get it right). */
	memset(a.model, 'n', PROTO_MODEL_NAME_MAX);
	a.model[PROTO_MODEL_NAME_MAX] = '\0';
	snprintf(a.endpoint, sizeof(a.endpoint), "http://\"q\\\"/\x01");
	a.lease = 7;
	o = json_pack("{s:b, s:O*, s:s, s:i, s:s, s:I, s:b, s:I}", "ok", 1,
	    "id", id, "model", a.model, "port", a.port, "endpoint", a.endpoint,
	    "lease", (json_int_t)a.lease, "cold", a.cold, "wait_ms",
	    (json_int_t)a.wait_ms);
	assert_same(proto_encode_acquired(id, &a), ref_line(o), "acquired",
	    _i);
	json_decref(id);
}
END_TEST

/*
 * Lines the fast decoder may take, and lines it must leave to jansson.
 * Each decodes as is and with a leading space (which only jansson
 * accepts): the request, the id, the code and the message must be the
 * same.
 */
static const char *const fast_lines[] = {
	"{'cmd':'ACQUIRE','id':1,'model':'m'}",
	"{'cmd':'RELEASE','id':2,'lease':7}",
	"{'cmd':'release','lease':9223372036854775807}",
	"{'cmd':'RELEASE','lease':922337203685477580}",
	"{'cmd':'RELEASE','lease':1234567890123456789}",
	"{'cmd':'RELEASE','lease':0}", "{'cmd':'RELEASE','lease':-1}",
	"{'cmd':'RELEASE','lease':-0}", "{'cmd':'RELEASE','lease':01}",
	"{'cmd':'RELEASE','lease':1.0}", "{'cmd':'RELEASE','lease':1e3}",
	"{'cmd':'RELEASE','lease':'1'}", "{'cmd':'RELEASE'}",
	"{'cmd':'RELEASE','lease':1,'lease':2}",
	"{'cmd':'ACQUIRE','model':'m','timeout_ms':0,'hold':false}",
	"{'cmd':'ACQUIRE','model':'m','timeout_ms':86400000,'hold':true}",
	"{'cmd':'ACQUIRE','model':'m','timeout_ms':86400001}",
	"{'cmd':'ACQUIRE','model':'m','timeout_ms':-1}",
	"{'cmd':'ACQUIRE','model':'m','hold':null}",
	"{'cmd':'ACQUIRE','model':'m','hold':1}",
	"{'cmd':'ACQUIRE','model':'.m'}", "{'cmd':'ACQUIRE','model':'-m'}",
	"{'cmd':'ACQUIRE','model':'a b'}", "{'cmd':'ACQUIRE','model':''}",
	"{'cmd':'ACQUIRE','model':'a/b'}", "{'cmd':'ACQUIRE','model':7}",
	"{'cmd':'ACQUIRE','model':'m','lease':'x','force':3}",
	"{'cmd':'ACQUIRE'}", "{'cmd':'EVICT','model':'m','force':true}",
	"{'cmd':'EVICT','model':'m','force':'yes'}",
	"{'cmd':'PING','id':'a','model':'.bad','lease':-4}",
	"{'cmd':'STATS','id':null}", "{'cmd':'MODELS','id':true}",
	"{'cmd':'pInG','id':false}", "{'cmd':'PONG'}", "{'cmd':''}",
	"{'cmd':'ACQUIRExxxxxxxxxxxxxxxxxxxxxx'}", "{'cmd':5}",
	"{'cmd':null}", "{'id':1}", "{}", "{'cmd':'PING','x':1}",
	"{'cmd':'PING','id':-42}", "{'cmd':'PING','id':1.5}",
	"{'cmd':'PING','id':[1]}", "{'cmd':'PING','id':{}}",
	"{'cmd':'PING','id':'\\u00e9'}", "{'cmd':'PING','id':'a\\\"b'}",
	"{'cmd':'PING','id':'caf\xc3\xa9'}", "{'cmd':'PING','id':'\x01'}",
	"{'cmd':'PING','id':tru}", "{'cmd':'PING','id':nul}",
	"{'cmd':'PING','id':truex}", "{'cmd':'PING'} ", "{'cmd':'PING'}}",
	"{'cmd':'PING',}", "{'cmd':'PING'", "{'cmd' :'PING'}",
	"{'cmd':'PING','id':1,'id':1}", "{'cmd':'PING','id':99999999999999999999}",
	"{'cmd':'PING','id':-}", "{'cmd':'PING','id':}", "{'cmd':'PING','id'}",
	"{'cmd':'PING','id':1x}", "{\"cmd\":'PING'}", "{'cmd':'PI\\u004eG'}",
	"[1]", "{", "}", "{'cmd':'PING'}x",
};

START_TEST(fast_decode_matches_jansson)
{
	struct proto_request	 a, b;
	char			 line[LINE_BUF], spaced[LINE_BUF + 1];
	char			 ma[PROTO_MESSAGE_MAX], mb[PROTO_MESSAGE_MAX];
	enum proto_err		 ea, eb;
	size_t			 n;

	dq(line, fast_lines[_i], strlen(fast_lines[_i]));
	n = strlen(line);
	spaced[0] = ' ';
	memcpy(spaced + 1, line, n + 1);
	ea = proto_decode_request(line, n, &a, ma, sizeof(ma));
	eb = proto_decode_request(spaced, n + 1, &b, mb, sizeof(mb));
	ck_assert_msg(ea == eb, "%s: %d vs %d (%s)", line, ea, eb, mb);
	/* jansson's column numbers move with the space. */
	if (strstr(mb, "column") == NULL)
		ck_assert_str_eq(ma, mb);
	ck_assert_int_eq(a.cmd, b.cmd);
	ck_assert_str_eq(a.model, b.model);
	ck_assert_int_eq(a.lease, b.lease);
	ck_assert_int_eq(a.timeout_ms, b.timeout_ms);
	ck_assert_int_eq(a.hold, b.hold);
	ck_assert_int_eq(a.force, b.force);
	ck_assert_msg((a.id == NULL) == (b.id == NULL) &&
	    (a.id == NULL || (json_typeof(a.id) == json_typeof(b.id) &&
	    json_equal(a.id, b.id))), "%s: ids differ", line);
	proto_request_clear(&a);
	proto_request_clear(&b);
}
END_TEST


/* --- the client's fast encoder and reply decoder against jansson --- */

/* proto_encode_request() as it was, jansson only. */
static char *
ref_request(const struct proto_request *req)
{
	static const char *const keys[] = { "model", "lease", "timeout_ms",
	    "hold", "force" };
	/* Sized for every command: MODELS, PING and the rest use none. */
	static const unsigned uses[PROTO_CMD_PING + 1] = {
		[PROTO_CMD_ACQUIRE] = 1 | 4 | 8, [PROTO_CMD_RELEASE] = 2,
		[PROTO_CMD_EVICT] = 1 | 16,
	};
	const bool	 omit[] = { false, false, req->timeout_ms < 0,
			    req->hold, !req->force };
	json_t		*o;
	size_t		 i;

	o = json_pack("{s:s, s:O*, s:s, s:I, s:I, s:b, s:b}", "cmd",
	    proto_cmd_name(req->cmd), "id", req->id, "model", req->model,
	    "lease", (json_int_t)req->lease, "timeout_ms",
	    (json_int_t)req->timeout_ms, "hold", req->hold, "force",
	    req->force);
	ck_assert_ptr_nonnull(o);
	for (i = 0; i < NELEM(keys); i++)
		if (!(uses[req->cmd] & 1u << i) || omit[i])
			json_object_del(o, keys[i]);
	return ref_line(o);
}

START_TEST(fast_request_matches_jansson)
{
	static const char *const models[] = { "", "m", "tiny-1.5B_q4+k.gguf",
	    "a b\"c\\d", "caf\xc3\xa9", "\x01", "Z9.x" };
	static const int64_t leases[] = { 0, 1, -1, 42, INT64_MAX, INT64_MIN };
	static const int64_t timeouts[] = { -1, 0, 1, 86400000, INT64_MAX };
	struct proto_request	 req;
	json_t			*id = fast_id(_i);
	size_t			 m, l, t;
	int			 cmd, hf;
	char			*got, *want;

	for (cmd = PROTO_CMD_ACQUIRE; cmd <= PROTO_CMD_PING; cmd++)
	for (m = 0; m < NELEM(models); m++)
	for (l = 0; l < NELEM(leases); l++)
	for (t = 0; t < NELEM(timeouts); t++)
	for (hf = 0; hf < 4; hf++) {
		proto_request_init(&req);
		req.cmd = cmd;
		req.id = id;
		snprintf(req.model, sizeof(req.model), "%s", models[m]);
		req.lease = leases[l];
		req.timeout_ms = timeouts[t];
		req.hold = hf & 1;
		req.force = hf & 2;
		got = proto_encode_request(&req);
		want = ref_request(&req);
		ck_assert_msg(got != NULL && strcmp(got, want) == 0,
		    "id %s:\n got %s\nwant %s", fast_ids[_i] ? fast_ids[_i] :
		    "(none)", got ? got : "NULL", want);
		free(got);
		free(want);
	}
	/* The longest model name. */
	proto_request_init(&req);
	req.cmd = PROTO_CMD_EVICT;
	req.id = id;
	memset(req.model, 'n', PROTO_MODEL_NAME_MAX);
	req.force = true;
	got = proto_encode_request(&req);
	want = ref_request(&req);
	ck_assert_str_eq(got, want);
	free(got);
	free(want);
	json_decref(id);
}
END_TEST

/* Checks proto_decode_reply_flat() against proto_decode_reply() and
 * proto_reply_acquired(); returns whether the fast path took the line. */
static bool
flat_agrees(const char *line, size_t n, bool acquired)
{
	struct proto_reply	 f, r;
	struct proto_acquired	 fa, ra;
	enum proto_id_kind	 kind;
	int64_t			 id;
	char			 msg[PROTO_MESSAGE_MAX];
	bool			 took;

	memset(&f, 0x5a, sizeof(f));
	took = proto_decode_reply_flat(line, n, &f, &kind, &id,
	    acquired ? &fa : NULL);
	if (!took)
		return false;
	ck_assert_msg(proto_decode_reply(line, n, &r, msg, sizeof(msg)) ==
	    PROTO_OK, "fast took %s, jansson: %s", line, msg);
	ck_assert_ptr_null(f.body);
	ck_assert_ptr_null(f.id);
	ck_assert_int_eq(f.ok, r.ok);
	ck_assert_int_eq(f.err, r.err);
	ck_assert_str_eq(f.message, r.message);
	if (!r.ok)
		ck_assert_str_eq(proto_err_name(f.err), json_string_value(
		    json_object_get(r.body, "error")));
	switch (kind) {
	case PROTO_ID_ABSENT:
		ck_assert_ptr_null(r.id);
		break;
	case PROTO_ID_NULL:
		ck_assert(json_is_null(r.id));
		break;
	case PROTO_ID_INTEGER:
		ck_assert(json_is_integer(r.id));
		ck_assert_int_eq(id, json_integer_value(r.id));
		break;
	default:
		ck_assert(r.id != NULL && !json_is_null(r.id) &&
		    !json_is_integer(r.id));
	}
	if (acquired && r.ok) {
		ck_assert_int_eq(proto_reply_acquired(&r, &ra), PROTO_OK);
		ck_assert_int_eq(memcmp(&fa, &ra, sizeof(fa)), 0);
	}
	proto_reply_clear(&r);
	return true;
}

/* The daemon's own replies: the fast path takes every one. */
START_TEST(fast_reply_takes_daemon_lines)
{
	static const int64_t ids[] = { 0, 1, -1, 42, 123456789012345678,
	    -123456789012345678 };
	struct proto_acquired	 a;
	json_t			*id;
	char			*line;
	size_t			 i;
	int			 e, k;

	for (i = 0; i < NELEM(ids); i++) {
		id = json_integer(ids[i]);
		line = proto_encode_ok(id, NULL);
		ck_assert(flat_agrees(line, strlen(line) - 1, false));
		ck_assert(flat_agrees(line, strlen(line) - 1, true) == false);
		free(line);
		for (e = PROTO_E_BAD_REQUEST; e < PROTO_E__COUNT; e++) {
			line = proto_encode_error(id, e, "no model 'x' (in /m)");
			ck_assert(flat_agrees(line, strlen(line) - 1, false));
			ck_assert(flat_agrees(line, strlen(line) - 1, true));
			free(line);
		}
		for (k = 0; k < 4; k++) {
			memset(&a, 0, sizeof(a));
			snprintf(a.model, sizeof(a.model), "tiny-1.5B_q4+k");
			a.port = k == 0 ? 1 : k == 1 ? 65535 : 8080 + k;
			snprintf(a.endpoint, sizeof(a.endpoint),
			    "http://127.0.0.1:%d", a.port);
			a.lease = k == 2 ? 0 : k == 3 ? PROTO_LEASE_MAX : 7 + k;
			a.cold = k & 1;
			a.wait_ms = k * 1000;
			line = proto_encode_acquired(id, &a);
			ck_assert(flat_agrees(line, strlen(line) - 1, true));
			free(line);
		}
		json_decref(id);
	}
	/* No id, and a null id (poold's farewell). */
	line = proto_encode_error(NULL, PROTO_E_SHUTTING_DOWN, "bye");
	ck_assert(flat_agrees(line, strlen(line) - 1, false));
	free(line);
	id = json_null();
	line = proto_encode_error(id, PROTO_E_SHUTTING_DOWN, "bye");
	ck_assert(flat_agrees(line, strlen(line) - 1, true));
	free(line);
}
END_TEST

/* Odd lines: the fast path takes them only if it reads them the same. */
static const struct { const char *line; int take; } flat_lines[] = {
	/* take: 1 taken, 0 left to jansson, -1 either */
	{ "{'ok':true,'id':1}", 1 },
	{ "{'ok':true}", 1 },
	{ "{'ok':true,'id':null}", 1 },
	{ "{'ok':true,'id':'a'}", 1 },
	{ "{'ok':true,'id':true}", 1 },
	{ "{'id':1,'ok':true}", 1 },
	{ "{'ok':false,'id':1,'error':'busy'}", 1 },
	{ "{'ok':false,'error':'busy','message':'m','id':2}", 1 },
	{ "{'ok':false,'id':1,'error':'nope','message':'m'}", 0 },
	{ "{'ok':false,'id':1,'error':'ok','message':'m'}", 0 },
	{ "{'ok':false,'id':1,'error':'','message':'m'}", 0 },
	{ "{'ok':false,'id':1,'message':'m'}", 0 },
	{ "{'ok':false,'id':1,'error':3}", 0 },
	{ "{'ok':false,'id':1,'error':'busy','message':null}", 0 },
	{ "{'ok':false,'id':1,'error':'busy','message':'a\\\"b'}", 0 },
	{ "{'ok':false,'id':1,'error':'busy','message':'caf\\u00e9'}", 0 },
	{ "{'ok':false,'id':1,'error':'busy','message':'caf\xc3\xa9'}", 0 },
	{ "{'ok':false,'id':1,'error':'bu\\u0073y'}", 0 },
	{ "{'ok':true,'id':1,'ok':true}", 0 },
	{ "{'ok':true,'id':1,'id':2}", 0 },
	{ "{'ok':1,'id':1}", 0 }, { "{'ok':null,'id':1}", 0 },
	{ "{'id':1}", 0 }, { "{}", 0 }, { "[]", 0 }, { "", 0 }, { "{", 0 },
	{ " {'ok':true,'id':1}", 0 }, { "{'ok':true,'id':1} ", 0 },
	{ "{'ok': true,'id':1}", 0 }, { "{'ok':true ,'id':1}", 0 },
	{ "{'ok':true,'id':1,}", 0 }, { "{'ok':true,'id':1}}", 0 },
	{ "{'ok':true,'id':1}x", 0 }, { "{'ok':true,'id':01}", 0 },
	{ "{'ok':true,'id':-0}", 0 }, { "{'ok':true,'id':1.0}", 0 },
	{ "{'ok':true,'id':1e2}", 0 }, { "{'ok':true,'id':[1]}", 0 },
	{ "{'ok':true,'id':{}}", 0 }, { "{'ok':true,'id':1234567890123456789}", 0 },
	{ "{'ok':true,'id':99999999999999999999}", 0 },
	{ "{'ok':true,'id':1,'x':1}", 0 },
	{ "{'ok':true,'id':1,'body':{'a':1}}", 0 },
	{ "{'ok':true,'id':1,'freed':3}", 0 },
	{ "{'ok':tru,'id':1}", 0 }, { "{'ok':truex,'id':1}", 0 },
	{ "{'o\\u006b':true,'id':1}", 0 },
	/* ACQUIRE replies (taken only when decoded as an ACQUIRE's) */
	{ "{'ok':true,'id':1,'model':'m','port':8080,'endpoint':'http://127.0.0.1:8080','lease':5,'cold':false,'wait_ms':0}", 1 },
	{ "{'ok':true,'id':1,'model':'m','port':8080,'endpoint':'e','cold':true,'wait_ms':3}", 1 },
	{ "{'wait_ms':3,'cold':true,'endpoint':'e','port':1,'model':'m','ok':true,'id':1}", 1 },
	{ "{'ok':true,'id':1,'model':'m','port':0,'endpoint':'e','cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':65536,'endpoint':'e','cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','lease':-1,'cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','lease':null,'cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':true,'wait_ms':-3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':1,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':true}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'port':80,'endpoint':'e','cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':5,'port':80,'endpoint':'e','cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':'80','endpoint':'e','cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80.0,'endpoint':'e','cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':true,'wait_ms':3,'x':1}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':true,'wait_ms':3,'port':81}", 0 },
	{ "{'ok':true,'id':1,'model':'m\\u0021','port':80,'endpoint':'e','cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'" E300 "','cold':true,'wait_ms':3}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'" E299 "','cold':true,'wait_ms':3}", 1 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':true,'wait_ms':3,'api_key':'k','node':'n'}", 1 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':true,'wait_ms':3,'api_key':1}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':true,'wait_ms':3,'api_key':'" E100 E10 E10 "123456789'}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':true,'wait_ms':3,'api_key':'" E100 E10 E10 "12345678'}", 1 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':true,'wait_ms':3,'node':'" E10 E10 E10 E10 E10 E10 "0123'}", 0 },
	{ "{'ok':true,'id':1,'model':'m','port':80,'endpoint':'e','cold':true,'wait_ms':3,'node':'k','node':'n'}", 0 },
	{ "{'ok':false,'id':1,'error':'busy','model':'m'}", 1 },
};

START_TEST(fast_reply_matches_jansson)
{
	char	 line[LINE_BUF];
	size_t	 n;
	bool	 t0, t1;

	dq(line, flat_lines[_i].line, strlen(flat_lines[_i].line));
	n = strlen(line);
	t0 = flat_agrees(line, n, false);
	t1 = flat_agrees(line, n, true);
	if (flat_lines[_i].take == 0)
		ck_assert_msg(!t0 && !t1, "%s: taken", line);
	/* An ACQUIRE's reply is taken only as one; an ok without fields
	 * only when no ACQUIRE's fields are wanted. */
	if (flat_lines[_i].take == 1)
		ck_assert_msg(strstr(line, "model") != NULL ? t1 : t0,
		    "%s: not taken", line);
}
END_TEST

START_TEST(fast_reply_cuts_long_messages)
{
	char	 line[PROTO_MESSAGE_MAX * 3];
	int	 n;

	n = snprintf(line, sizeof(line), "{\"ok\":false,\"id\":1,"
	    "\"error\":\"busy\",\"message\":\"");
	memset(line + n, 'x', PROTO_MESSAGE_MAX * 2);
	n += PROTO_MESSAGE_MAX * 2;
	n += snprintf(line + n, sizeof(line) - (size_t)n, "\"}");
	ck_assert(flat_agrees(line, (size_t)n, false));
}
END_TEST

/* --- the runner --- */

static Suite *
proto_suite(void)
{
	Suite	*s = suite_create("proto");
	TCase	*tc;

	tc = tcase_create("decode requests");
	tcase_add_loop_test(tc, decode_accepts, 0, NELEM(good_cases));
	tcase_add_loop_test(tc, decode_refuses, 0, NELEM(bad_cases));
	tcase_add_test(tc, decode_line_length_limit);
	tcase_add_test(tc, decode_small_message_buffers);
	tcase_add_test(tc, request_init_and_clear);
	suite_add_tcase(s, tc);

	tc = tcase_create("model names");
	tcase_add_loop_test(tc, model_name_allow_list, 0, NELEM(name_cases));
	tcase_add_test(tc, model_name_stops_at_nul);
	suite_add_tcase(s, tc);

	tc = tcase_create("encode requests");
	tcase_add_loop_test(tc, request_round_trip, 0, NELEM(trip_cases));
	tcase_add_test(tc, encode_request_leaves_out_unused_fields);
	tcase_add_test(tc, encode_request_refuses);
	suite_add_tcase(s, tc);

	tc = tcase_create("replies");
	tcase_add_test(tc, encode_error_text);
	tcase_add_test(tc, encode_error_edge_cases);
	tcase_add_loop_test(tc, error_reply_round_trip, PROTO_E_BAD_REQUEST,
	    PROTO_E__COUNT);
	tcase_add_test(tc, encode_ok_text);
	tcase_add_test(tc, ok_reply_round_trip);
	tcase_add_loop_test(tc, acquired_round_trip, 0, NELEM(acquired_cases));
	tcase_add_loop_test(tc, decode_reply_table, 0, NELEM(reply_cases));
	tcase_add_test(tc, decode_reply_cuts_long_messages);
	tcase_add_loop_test(tc, reply_acquired_refuses, 0,
	    NELEM(bad_acquired_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("fast paths");
	tcase_add_loop_test(tc, fast_ok_matches_jansson, 0, NELEM(fast_ids));
	tcase_add_loop_test(tc, fast_error_matches_jansson, 0,
	    NELEM(fast_ids));
	tcase_add_loop_test(tc, fast_acquired_matches_jansson, 0,
	    NELEM(fast_ids));
	tcase_add_loop_test(tc, fast_decode_matches_jansson, 0,
	    NELEM(fast_lines));
	tcase_add_loop_test(tc, fast_request_matches_jansson, 0,
	    NELEM(fast_ids));
	tcase_add_test(tc, fast_reply_takes_daemon_lines);
	tcase_add_loop_test(tc, fast_reply_matches_jansson, 0,
	    NELEM(flat_lines));
	tcase_add_test(tc, fast_reply_cuts_long_messages);
	suite_add_tcase(s, tc);

	tc = tcase_create("names");
	tcase_add_test(tc, error_names);
	tcase_add_test(tc, command_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("framing");
	tcase_add_loop_test(tc, framing_table, 0, NELEM(frame_cases));
	tcase_add_test(tc, framing_several_lines);
	suite_add_tcase(s, tc);

	tc = tcase_create("default socket");
	tcase_add_test(tc, default_socket);
	tcase_add_test(tc, default_socket_too_long);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(proto_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);	/* CK_VERBOSITY=verbose lists every case */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
