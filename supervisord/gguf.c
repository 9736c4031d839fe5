/*
 * gguf.c — a model's memory, estimated from its GGUF header (see gguf.h).
 *
 * The reader walks the header with a cursor that checks every length
 * against the bytes left before it takes them.  A claim that reaches past
 * GGUF_HEADER_MAX_BYTES is a lie (-1); one that merely reaches past the
 * buffer may be true (-2: read more).  Counts are bounded by the bytes the
 * smallest encodings would need, arithmetic is checked, arrays are skipped
 * without allocating, nothing is allocated at all while parsing.
 *
 * The estimate (gguf_estimate) is what llama-server's resident set is once
 * the model is loaded and has served a request, calibrated against the
 * real llama-server (CPU build, Debian llama.cpp 0.7.0 / build 11669):
 *
 *   weights   Σ tensor bytes.  llama-server mmaps the file; its warm-up
 *             pass touches every tensor, so the pages show in RSS
 *             (RssFile) right after load.
 *   kv_cache  cells × Σ_layers head_count_kv × (key_length × K bytes +
 *             value_length × V bytes).  -c is the TOTAL context: llama-server
 *             gives each of -np slots n_ctx/np cells (or one unified cache of
 *             n_ctx when the slot count is auto or -kvu), each padded up to
 *             256 cells.  Without -c, the model's context_length.
 *   compute   the ggml compute buffer, fitted to the sizes llama-server
 *             logs:  ubatch × (20 × n_embd + 12 × n_ff + per_cell × cells),
 *             per_cell 2 (the f16 KQ mask) with flash attention (auto: on,
 *             on CPU), 4 × n_head + 2 without.  ubatch = min(-ub, -b, -c).
 *             Only part of it is touched at load; a long prompt touches it
 *             all, so it is counted whole.
 *   runtime   26 MiB (the program and its libraries ~20 MiB file-backed,
 *             ~6 MiB heap) + 256 bytes per vocabulary token (measured ~200
 *             with a 150k-token SentencePiece vocabulary; BPE merges add).
 *
 * Not counted, said in the struct: the prompt cache (--cache-ram, default
 * 8192 MiB) grows by a KV-cache image of each prompt it keeps.  Over-
 * estimates, knowingly: sliding-window and recurrent layers (their KV is
 * smaller), MLA; -fit shrinking an unset context.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gguf.h"

#define GGUF_DEFAULT_ALIGNMENT		32
#define GGUF_MAX_DIMS			4
#define GGUF_KEY_MAX_BYTES		65535
#define GGUF_TENSOR_NAME_MAX_BYTES	256
#define GGUF_FIRST_READ_BYTES		(1u << 20)
/* Smallest encodings: bound counts by the bytes they would need. */
#define GGUF_FIXED_HEADER_BYTES		(4 + 4 + 8 + 8)
#define GGUF_KV_MIN_BYTES		(8 + 4 + 1)	/* "" key, u8 value */
#define GGUF_TENSOR_MIN_BYTES		(8 + 4 + 4 + 8)	/* no name, no dims */
#define GGUF_STRING_MIN_BYTES		8

/* The estimate's constants; see the comment at the top. */
#define EST_RUNTIME_BYTES		(26ull << 20)
#define EST_PER_TOKEN_BYTES		256
#define EST_EMBD_BYTES			20	/* per ubatch token, × n_embd */
#define EST_FF_BYTES			12	/* per ubatch token, × n_ff */
#define EST_MASK_BYTES			2	/* per ubatch token and cell */
#define EST_KQ_BYTES			4	/* × n_head, without flash attn */
#define LLAMA_DEFAULT_UBATCH		512
#define LLAMA_DEFAULT_BATCH		2048
#define LLAMA_DEFAULT_CTX		4096	/* no -c and no context_length */
#define LLAMA_AUTO_SLOTS		4
#define LLAMA_KV_PAD_CELLS		256
#define LLAMA_DEFAULT_CACHE_RAM_MIB	8192

enum {
	PARSE_OK	=  0,
	PARSE_BAD	= -1,
	PARSE_SHORT	= -2,
};

enum gguf_value_type {
	VT_UINT8, VT_INT8, VT_UINT16, VT_INT16, VT_UINT32, VT_INT32,
	VT_FLOAT32, VT_BOOL, VT_STRING, VT_ARRAY, VT_UINT64, VT_INT64,
	VT_FLOAT64,
	VT_COUNT
};

/* --- ggml types: elements per block, bytes per block --- */

struct ggml_traits {
	uint16_t	blck;
	uint16_t	size;
};

#define QK_K	256

/*
 * From ggml's type_traits (ggml.c) and gguf-py's GGML_QUANT_SIZES.  A zero
 * entry is a type we cannot size (removed, or newer than this table).
 */
static const struct ggml_traits ggml_traits_table[] = {
	[0]  = { 1, 4 },			/* F32 */
	[1]  = { 1, 2 },			/* F16 */
	[2]  = { 32, 2 + 16 },			/* Q4_0 */
	[3]  = { 32, 2 + 2 + 16 },		/* Q4_1 */
	[6]  = { 32, 2 + 4 + 16 },		/* Q5_0 */
	[7]  = { 32, 2 + 2 + 4 + 16 },		/* Q5_1 */
	[8]  = { 32, 2 + 32 },			/* Q8_0 */
	[9]  = { 32, 4 + 4 + 32 },		/* Q8_1 */
	[10] = { QK_K, 2 + 2 + QK_K / 16 + QK_K / 4 },		/* Q2_K */
	[11] = { QK_K, 2 + QK_K / 4 + QK_K / 8 + 12 },		/* Q3_K */
	[12] = { QK_K, 2 + 2 + QK_K / 2 + 12 },			/* Q4_K */
	[13] = { QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12 },	/* Q5_K */
	[14] = { QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16 },	/* Q6_K */
	[15] = { QK_K, 4 + QK_K + QK_K / 8 },			/* Q8_K */
	[16] = { QK_K, 2 + QK_K / 4 },				/* IQ2_XXS */
	[17] = { QK_K, 2 + QK_K / 4 + QK_K / 32 },		/* IQ2_XS */
	[18] = { QK_K, 2 + QK_K / 4 + QK_K / 8 },		/* IQ3_XXS */
	[19] = { QK_K, 2 + QK_K / 8 + QK_K / 16 },		/* IQ1_S */
	[20] = { 32, 2 + 16 },					/* IQ4_NL */
	[21] = { QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4 }, /* IQ3_S */
	[22] = { QK_K, 2 + QK_K / 4 + QK_K / 16 },		/* IQ2_S */
	[23] = { QK_K, 2 + 2 + QK_K / 2 + QK_K / 64 },		/* IQ4_XS */
	[24] = { 1, 1 },			/* I8 */
	[25] = { 1, 2 },			/* I16 */
	[26] = { 1, 4 },			/* I32 */
	[27] = { 1, 8 },			/* I64 */
	[28] = { 1, 8 },			/* F64 */
	[29] = { QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32 },	/* IQ1_M */
	[30] = { 1, 2 },			/* BF16 */
	[34] = { QK_K, 2 + 4 * 13 },		/* TQ1_0 */
	[35] = { QK_K, 2 + 64 },		/* TQ2_0 */
	[39] = { 32, 1 + 16 },			/* MXFP4 */
	[40] = { 64, 4 + 32 },			/* NVFP4 */
	[41] = { 128, 2 + 16 },			/* Q1_0 */
};

static const struct ggml_traits *
ggml_traits(uint32_t type)
{
	size_t	 n = sizeof(ggml_traits_table) / sizeof(ggml_traits_table[0]);

	if (type >= n || ggml_traits_table[type].blck == 0)
		return NULL;
	return &ggml_traits_table[type];
}

/* --- checked arithmetic --- */

static bool
mul_ok(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_mul_overflow(a, b, r);
}

static bool
add_ok(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_add_overflow(a, b, r);
}

/* For the estimate: a figure too big to hold is "everything". */
static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	uint64_t	 r;

	return mul_ok(a, b, &r) ? r : UINT64_MAX;
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	uint64_t	 r;

	return add_ok(a, b, &r) ? r : UINT64_MAX;
}

static uint64_t
round_up(uint64_t n, uint64_t to)
{
	uint64_t	 r = n % to;

	return r == 0 ? n : sat_add(n, to - r);
}

/* --- the cursor --- */

struct cursor {
	const unsigned char	*buf;
	size_t			 len;
	size_t			 off;
	char			*err;
	size_t			 errlen;
	uint64_t		 need;	/* when short: bytes the take needed */
};

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#define BAD(c, ...)	(set_err((c)->err, (c)->errlen, __VA_ARGS__), PARSE_BAD)

static int
ended(struct cursor *c)
{
	set_err(c->err, c->errlen, "header goes on past byte %zu", c->len);
	return PARSE_SHORT;
}

/*
 * Takes n bytes.  A claim past the header limit cannot be true; one past
 * the buffer may be.
 */
static int
take(struct cursor *c, uint64_t n, const char *what,
    const unsigned char **p)
{
	uint64_t	 end;

	if (!add_ok(c->off, n, &end) || end > GGUF_HEADER_MAX_BYTES)
		return BAD(c, "%s at byte %zu claims %llu bytes, past the "
		    "%u MiB header limit", what, c->off,
		    (unsigned long long)n, GGUF_HEADER_MAX_BYTES >> 20);
	if (end > c->len) {
		c->need = end;
		return ended(c);
	}
	if (p != NULL)
		*p = c->buf + c->off;
	c->off = (size_t)end;
	return PARSE_OK;
}

static int
read_u32(struct cursor *c, const char *what, uint32_t *v)
{
	const unsigned char	*p;
	int			 rc;

	if ((rc = take(c, 4, what, &p)) != PARSE_OK)
		return rc;
	*v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
	return PARSE_OK;
}

static int
read_u64(struct cursor *c, const char *what, uint64_t *v)
{
	uint32_t	 lo, hi;
	int		 rc;

	if ((rc = read_u32(c, what, &lo)) != PARSE_OK ||
	    (rc = read_u32(c, what, &hi)) != PARSE_OK)
		return rc;
	*v = (uint64_t)hi << 32 | lo;
	return PARSE_OK;
}

/* A gguf string: u64 length, then bytes (not NUL-terminated). */
static int
read_string(struct cursor *c, const char *what, uint64_t max,
    const unsigned char **s, uint64_t *slen)
{
	int	 rc;

	if ((rc = read_u64(c, what, slen)) != PARSE_OK)
		return rc;
	if (*slen > max)
		return BAD(c, "%s at byte %zu is %llu bytes long (limit %llu)",
		    what, c->off - 8, (unsigned long long)*slen,
		    (unsigned long long)max);
	return take(c, *slen, what, s);
}

/* --- values --- */

/* Bytes of a fixed-size value type; 0 for string, array, unknown. */
static unsigned
value_size(uint32_t type)
{
	switch (type) {
	case VT_UINT8: case VT_INT8: case VT_BOOL:
		return 1;
	case VT_UINT16: case VT_INT16:
		return 2;
	case VT_UINT32: case VT_INT32: case VT_FLOAT32:
		return 4;
	case VT_UINT64: case VT_INT64: case VT_FLOAT64:
		return 8;
	default:
		return 0;
	}
}

static bool
is_int_type(uint32_t type)
{
	return type <= VT_INT32 || type == VT_UINT64 || type == VT_INT64;
}

/* Reads an integer of any width; *negative when a signed one is < 0. */
static int
read_int(struct cursor *c, uint32_t type, uint64_t *v, bool *negative)
{
	const unsigned char	*p;
	unsigned		 n = value_size(type), i;
	uint64_t		 u = 0;
	int			 rc;

	if ((rc = take(c, n, "integer", &p)) != PARSE_OK)
		return rc;
	for (i = 0; i < n; i++)
		u |= (uint64_t)p[i] << (8 * i);
	*negative = false;
	if ((type == VT_INT8 || type == VT_INT16 || type == VT_INT32 ||
	    type == VT_INT64) && (p[n - 1] & 0x80))
		*negative = true;
	*v = u;
	return PARSE_OK;
}

/* Skips count strings; the count was bounded by the caller. */
static int
skip_strings(struct cursor *c, uint64_t count)
{
	const unsigned char	*s;
	uint64_t		 i, slen;
	int			 rc;

	for (i = 0; i < count; i++)
		if ((rc = read_string(c, "array string", GGUF_HEADER_MAX_BYTES,
		    &s, &slen)) != PARSE_OK) {
			/* The rest need at least their lengths: a reader
			 * with a cap knows at once it will not get there. */
			if (rc == PARSE_SHORT)
				c->need = sat_add(c->need, sat_mul(count - i -
				    1, GGUF_STRING_MIN_BYTES));
			return rc;
		}
	return PARSE_OK;
}

/* Reads an array's element type and count; the count is bounded. */
static int
read_array_head(struct cursor *c, uint32_t *elem, uint64_t *count)
{
	uint64_t	 need;
	unsigned	 min;
	int		 rc;

	if ((rc = read_u32(c, "array type", elem)) != PARSE_OK ||
	    (rc = read_u64(c, "array count", count)) != PARSE_OK)
		return rc;
	if (*elem == VT_ARRAY)
		return BAD(c, "nested array at byte %zu", c->off - 12);
	if (*elem == VT_STRING)
		min = GGUF_STRING_MIN_BYTES;
	else if ((min = value_size(*elem)) == 0)
		return BAD(c, "array of unknown type %u at byte %zu", *elem,
		    c->off - 12);
	if (!mul_ok(*count, min, &need) ||
	    need > GGUF_HEADER_MAX_BYTES - c->off)
		return BAD(c, "array at byte %zu claims %llu elements, past "
		    "the header limit", c->off - 12,
		    (unsigned long long)*count);
	return PARSE_OK;
}

/* Skips an array's elements: fixed-size ones in one step. */
static int
skip_array_body(struct cursor *c, uint32_t elem, uint64_t count)
{
	if (elem == VT_STRING)
		return skip_strings(c, count);
	/* read_array_head bounded count × size. */
	return take(c, count * value_size(elem), "array", NULL);
}

static int
skip_value(struct cursor *c, uint32_t type)
{
	const unsigned char	*s;
	uint64_t		 slen, count;
	uint32_t		 elem;
	int			 rc;

	if (type == VT_STRING)
		return read_string(c, "string value", GGUF_HEADER_MAX_BYTES,
		    &s, &slen);
	if (type == VT_ARRAY) {
		if ((rc = read_array_head(c, &elem, &count)) != PARSE_OK)
			return rc;
		return skip_array_body(c, elem, count);
	}
	if (value_size(type) == 0)
		return BAD(c, "unknown value type %u at byte %zu", type,
		    c->off - 4);
	return take(c, value_size(type), "value", NULL);
}

/*
 * A number the estimate wants: an integer, or an array of them (per-layer
 * values); anything else is skipped and stays unset.
 */
struct number {
	bool		 set;
	bool		 negative;
	bool		 array;
	uint64_t	 max;
	uint64_t	 sum;	/* of the array's elements; = max for a scalar */
};

static int
read_int_array(struct cursor *c, uint32_t elem, uint64_t count,
    struct number *num)
{
	uint64_t	 i, v;
	bool		 neg;
	int		 rc;

	num->array = true;
	for (i = 0; i < count; i++) {
		if ((rc = read_int(c, elem, &v, &neg)) != PARSE_OK)
			return rc;
		if (neg) {
			num->negative = true;
			continue;
		}
		if (v > num->max)
			num->max = v;
		if (!add_ok(num->sum, v, &num->sum))
			return BAD(c, "array sum overflows at byte %zu",
			    c->off);
	}
	num->set = true;
	return PARSE_OK;
}

static int
read_number(struct cursor *c, uint32_t type, struct number *num)
{
	uint64_t	 count;
	uint32_t	 elem;
	int		 rc;

	memset(num, 0, sizeof(*num));
	if (is_int_type(type)) {
		if ((rc = read_int(c, type, &num->max, &num->negative)) !=
		    PARSE_OK)
			return rc;
		num->sum = num->max;
		num->set = true;
		return PARSE_OK;
	}
	if (type != VT_ARRAY)
		return skip_value(c, type);
	if ((rc = read_array_head(c, &elem, &count)) != PARSE_OK)
		return rc;
	if (!is_int_type(elem))
		return skip_array_body(c, elem, count);
	return read_int_array(c, elem, count, num);
}

/* --- key/value pairs --- */

struct key {
	const unsigned char	*s;
	uint64_t		 len;
};

static bool
key_is(const struct key *k, const char *name)
{
	size_t	 n = strlen(name);

	return k->len == n && memcmp(k->s, name, n) == 0;
}

/* key == ARCH "." suffix */
static bool
arch_key_is(const struct key *k, const char *arch, const char *suffix)
{
	size_t	 a = strlen(arch), s = strlen(suffix);

	return a > 0 && k->len == a + 1 + s && memcmp(k->s, arch, a) == 0 &&
	    k->s[a] == '.' && memcmp(k->s + a + 1, suffix, s) == 0;
}

static int
read_arch_name(struct cursor *c, uint32_t type, struct gguf_model *m)
{
	const unsigned char	*s;
	uint64_t		 len;
	int			 rc;

	if (type != VT_STRING)
		return BAD(c, "general.architecture is not a string");
	if ((rc = read_string(c, "general.architecture",
	    sizeof(m->arch) - 1, &s, &len)) != PARSE_OK)
		return rc;
	if (memchr(s, '\0', len) != NULL)
		return BAD(c, "general.architecture holds a NUL byte");
	memcpy(m->arch, s, len);
	m->arch[len] = '\0';
	return PARSE_OK;
}

static int
read_alignment(struct cursor *c, uint32_t type, struct gguf_model *m)
{
	uint32_t	 a;
	int		 rc;

	if (type != VT_UINT32)
		return BAD(c, "general.alignment is not a uint32");
	if ((rc = read_u32(c, "general.alignment", &a)) != PARSE_OK)
		return rc;
	if (a == 0 || (a & (a - 1)) != 0)
		return BAD(c, "general.alignment %u is not a power of two", a);
	m->alignment = a;
	return PARSE_OK;
}

/* The values the first pass keeps: general.*, split.*, the vocabulary. */
static int
read_general_value(struct cursor *c, const struct key *k, uint32_t type,
    struct gguf_model *m)
{
	struct number	 num;
	uint64_t	 count;
	uint32_t	 elem;
	int		 rc;

	if (key_is(k, "general.architecture"))
		return read_arch_name(c, type, m);
	if (key_is(k, "general.alignment"))
		return read_alignment(c, type, m);
	if (key_is(k, "tokenizer.ggml.tokens") && type == VT_ARRAY) {
		if ((rc = read_array_head(c, &elem, &count)) != PARSE_OK)
			return rc;
		m->vocab_size = count;
		return skip_array_body(c, elem, count);
	}
	if (key_is(k, "split.count")) {
		if ((rc = read_number(c, type, &num)) != PARSE_OK)
			return rc;
		if (num.set && !num.array) {
			if (num.negative || num.max > UINT32_MAX)
				return BAD(c, "split.count out of range");
			m->split_count = (uint32_t)num.max;
		}
		return PARSE_OK;
	}
	return skip_value(c, type);
}

/* ARCH.suffix → a field of the model: per-layer arrays give their max. */
struct arch_field {
	const char	*suffix;
	size_t		 offset;	/* of a uint32_t in struct gguf_model */
};

static const struct arch_field arch_fields[] = {
	{ "block_count", offsetof(struct gguf_model, block_count) },
	{ "context_length", offsetof(struct gguf_model, context_length) },
	{ "embedding_length", offsetof(struct gguf_model, embedding_length) },
	{ "feed_forward_length",
	    offsetof(struct gguf_model, feed_forward_length) },
	{ "expert_feed_forward_length",
	    offsetof(struct gguf_model, expert_ff_length) },
	{ "expert_used_count",
	    offsetof(struct gguf_model, expert_used_count) },
	{ "attention.head_count", offsetof(struct gguf_model, head_count) },
	{ "attention.head_count_kv",
	    offsetof(struct gguf_model, head_count_kv) },
	{ "attention.key_length", offsetof(struct gguf_model, key_length) },
	{ "attention.value_length",
	    offsetof(struct gguf_model, value_length) },
};

static int
store_arch_number(struct cursor *c, const struct arch_field *f,
    const struct number *num, struct gguf_model *m)
{
	uint32_t	*field = (uint32_t *)((char *)m + f->offset);

	if (num->negative || num->max > UINT32_MAX)
		return BAD(c, "%s.%s out of range", m->arch, f->suffix);
	*field = (uint32_t)num->max;
	/* Per-layer KV heads: hybrid models give 0 to recurrent layers. */
	if (f->offset == offsetof(struct gguf_model, head_count_kv) &&
	    num->array)
		m->kv_heads_total = num->sum;
	return PARSE_OK;
}

/* The values the second pass keeps: ARCH.*, now that ARCH is known. */
static int
read_arch_value(struct cursor *c, const struct key *k, uint32_t type,
    struct gguf_model *m)
{
	struct number	 num;
	size_t		 i;
	int		 rc;

	for (i = 0; i < sizeof(arch_fields) / sizeof(arch_fields[0]); i++) {
		if (!arch_key_is(k, m->arch, arch_fields[i].suffix))
			continue;
		if ((rc = read_number(c, type, &num)) != PARSE_OK)
			return rc;
		if (!num.set)
			return PARSE_OK;
		return store_arch_number(c, &arch_fields[i], &num, m);
	}
	if (arch_key_is(k, m->arch, "vocab_size") && m->vocab_size == 0) {
		if ((rc = read_number(c, type, &num)) != PARSE_OK)
			return rc;
		if (num.set && !num.array && !num.negative)
			m->vocab_size = num.max;
		return PARSE_OK;
	}
	return skip_value(c, type);
}

enum kv_pass { PASS_GENERAL, PASS_ARCH };

/*
 * Walks the n_kv pairs.  Two passes, because general.architecture need
 * not come before the ARCH.* keys it names.
 */
static int
read_kvs(struct cursor *c, uint64_t n_kv, enum kv_pass pass,
    struct gguf_model *m)
{
	struct key	 k;
	uint64_t	 i;
	uint32_t	 type;
	int		 rc;

	for (i = 0; i < n_kv; i++) {
		if ((rc = read_string(c, "key", GGUF_KEY_MAX_BYTES, &k.s,
		    &k.len)) != PARSE_OK ||
		    (rc = read_u32(c, "value type", &type)) != PARSE_OK)
			return rc;
		if (type >= VT_COUNT)
			return BAD(c, "unknown value type %u at byte %zu", type,
			    c->off - 4);
		if (pass == PASS_GENERAL)
			rc = read_general_value(c, &k, type, m);
		else
			rc = read_arch_value(c, &k, type, m);
		if (rc != PARSE_OK)
			return rc;
	}
	return PARSE_OK;
}

/* --- tensor infos --- */

/* Reads the dims; *elems gets their product, *ne0 the first. */
static int
read_dims(struct cursor *c, uint64_t *elems, uint64_t *ne0)
{
	uint64_t	 d;
	uint32_t	 n_dims, i;
	int		 rc;

	if ((rc = read_u32(c, "n_dims", &n_dims)) != PARSE_OK)
		return rc;
	if (n_dims > GGUF_MAX_DIMS)
		return BAD(c, "tensor at byte %zu has %u dimensions (max %d)",
		    c->off - 4, n_dims, GGUF_MAX_DIMS);
	*elems = 1;
	*ne0 = 1;
	for (i = 0; i < n_dims; i++) {
		if ((rc = read_u64(c, "dimension", &d)) != PARSE_OK)
			return rc;
		/* ggml keeps dims in int64_t. */
		if (!mul_ok(*elems, d, elems) || *elems > INT64_MAX)
			return BAD(c, "tensor at byte %zu: element count "
			    "overflows", c->off - 8);
		if (i == 0)
			*ne0 = d;
	}
	return PARSE_OK;
}

/* Bytes of a tensor of a known type, checked like ggml does. */
static int
tensor_size(struct cursor *c, const struct ggml_traits *t, uint64_t elems,
    uint64_t ne0, uint64_t *bytes)
{
	if (ne0 % t->blck != 0)
		return BAD(c, "tensor before byte %zu: row of %llu elements "
		    "is not whole blocks of %u", c->off,
		    (unsigned long long)ne0, t->blck);
	/* ne0 is a multiple of blck, so elems is too. */
	if (!mul_ok(elems / t->blck, t->size, bytes))
		return BAD(c, "tensor before byte %zu: size overflows",
		    c->off);
	return PARSE_OK;
}

static int
read_tensor_info(struct cursor *c, struct gguf_model *m)
{
	const struct ggml_traits	*t;
	const unsigned char		*name;
	uint64_t			 name_len, elems, ne0, offset;
	uint64_t			 bytes = 0, end;
	uint32_t			 type;
	int				 rc;

	if ((rc = read_string(c, "tensor name", GGUF_TENSOR_NAME_MAX_BYTES,
	    &name, &name_len)) != PARSE_OK ||
	    (rc = read_dims(c, &elems, &ne0)) != PARSE_OK ||
	    (rc = read_u32(c, "tensor type", &type)) != PARSE_OK ||
	    (rc = read_u64(c, "tensor offset", &offset)) != PARSE_OK)
		return rc;
	if (offset % m->alignment != 0)
		return BAD(c, "tensor offset %llu is not a multiple of the "
		    "alignment %u", (unsigned long long)offset, m->alignment);
	if ((t = ggml_traits(type)) == NULL)
		m->unknown_tensors++;
	else if ((rc = tensor_size(c, t, elems, ne0, &bytes)) != PARSE_OK)
		return rc;
	if (!add_ok(offset, bytes, &end) ||
	    !add_ok(m->tensor_bytes, bytes, &m->tensor_bytes))
		return BAD(c, "tensor data size overflows");
	if (end > m->data_end)
		m->data_end = end;
	return PARSE_OK;
}

/* --- the header --- */

static int
read_magic(struct cursor *c)
{
	static const unsigned char	 magic[4] = { 'G', 'G', 'U', 'F' };
	size_t				 n = c->len < 4 ? c->len : 4;

	if (n > 0 && memcmp(c->buf, magic, n) != 0)
		return BAD(c, "not a GGUF file (bad magic)");
	return take(c, 4, "magic", NULL);
}

static int
read_version(struct cursor *c, struct gguf_model *m)
{
	int	 rc;

	if ((rc = read_u32(c, "version", &m->version)) != PARSE_OK)
		return rc;
	if (m->version == 2 || m->version == 3)
		return PARSE_OK;
	if (m->version == 1)
		return BAD(c, "GGUF version 1 is not supported");
	if ((m->version & 0xffff) == 0 && m->version != 0)
		return BAD(c, "big-endian GGUF is not supported");
	return BAD(c, "unknown GGUF version %u", m->version);
}

static int
read_counts(struct cursor *c, uint64_t *n_tensors, uint64_t *n_kv)
{
	uint64_t	 room = GGUF_HEADER_MAX_BYTES - GGUF_FIXED_HEADER_BYTES;
	int		 rc;

	if ((rc = read_u64(c, "n_tensors", n_tensors)) != PARSE_OK ||
	    (rc = read_u64(c, "n_kv", n_kv)) != PARSE_OK)
		return rc;
	if (*n_kv > room / GGUF_KV_MIN_BYTES ||
	    *n_tensors > room / GGUF_TENSOR_MIN_BYTES ||
	    *n_kv * GGUF_KV_MIN_BYTES + *n_tensors * GGUF_TENSOR_MIN_BYTES >
	    room)
		return BAD(c, "%llu tensors and %llu keys cannot fit in the "
		    "header limit", (unsigned long long)*n_tensors,
		    (unsigned long long)*n_kv);
	return PARSE_OK;
}

/* Fills in what the header may leave out, as llama.cpp does. */
static void
apply_defaults(struct gguf_model *m)
{
	if (m->head_count_kv == 0 && m->kv_heads_total == 0)
		m->head_count_kv = m->head_count;
	if (m->kv_heads_total == 0)
		m->kv_heads_total = (uint64_t)m->block_count * m->head_count_kv;
	if (m->key_length == 0 && m->head_count > 0)
		m->key_length = m->embedding_length / m->head_count;
	if (m->value_length == 0 && m->head_count > 0)
		m->value_length = m->embedding_length / m->head_count;
}

/* gguf_parse; when short, *need is at least what the header needs. */
static int
parse_buf(const unsigned char *buf, size_t len, struct gguf_model *m,
    char *err, size_t errlen, uint64_t *need)
{
	struct cursor	 c = { buf, len, 0, err, errlen, 0 };
	uint64_t	 n_tensors, n_kv, i;
	size_t		 kv_start;
	int		 rc;

	*need = 0;
	memset(m, 0, sizeof(*m));
	m->alignment = GGUF_DEFAULT_ALIGNMENT;
	if (buf == NULL)
		c.len = 0;
	if ((rc = read_magic(&c)) != PARSE_OK ||
	    (rc = read_version(&c, m)) != PARSE_OK ||
	    (rc = read_counts(&c, &n_tensors, &n_kv)) != PARSE_OK)
		goto out;
	m->n_tensors = n_tensors;
	kv_start = c.off;
	if ((rc = read_kvs(&c, n_kv, PASS_GENERAL, m)) != PARSE_OK)
		goto out;
	c.off = kv_start;
	if ((rc = read_kvs(&c, n_kv, PASS_ARCH, m)) != PARSE_OK)
		goto out;
	for (i = 0; i < n_tensors; i++)
		if ((rc = read_tensor_info(&c, m)) != PARSE_OK)
			goto out;
	m->data_offset = round_up(c.off, m->alignment);
	apply_defaults(m);
out:
	*need = c.need;
	return rc;
}

int
gguf_parse(const unsigned char *buf, size_t len, struct gguf_model *m,
    char *err, size_t errlen)
{
	uint64_t	 need;

	return parse_buf(buf, len, m, err, errlen, &need);
}

/* --- files --- */

/* Reads buf[have..want) from fd; returns the new fill, -1 on error. */
static ssize_t
read_more(int fd, unsigned char *buf, size_t have, size_t want)
{
	ssize_t	 n;

	while (have < want) {
		n = pread(fd, buf + have, want - have, (off_t)have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;		/* the file shrank */
		have += (size_t)n;
	}
	return (ssize_t)have;
}

/*
 * Parses the header of an open regular file of size bytes, reading 1 MiB
 * first and doubling while the header goes on.
 */
static int
parse_fd(int fd, uint64_t size, uint64_t max, const char *path,
    struct gguf_model *m, char *err, size_t errlen)
{
	unsigned char	*buf = NULL, *nbuf;
	uint64_t	 cap = max < GGUF_HEADER_MAX_BYTES ? max :
			    GGUF_HEADER_MAX_BYTES;
	uint64_t	 limit = size < cap ? size : cap, need = 0;
	size_t		 have = 0, want = GGUF_FIRST_READ_BYTES;
	ssize_t		 n;
	int		 rc;

	for (;;) {
		if (want > limit)
			want = (size_t)limit;
		if ((nbuf = realloc(buf, want > 0 ? want : 1)) == NULL) {
			set_err(err, errlen, "%s: out of memory", path);
			rc = PARSE_BAD;
			break;
		}
		buf = nbuf;
		if ((n = read_more(fd, buf, have, want)) < 0) {
			set_err(err, errlen, "%s: read: %s", path,
			    strerror(errno));
			rc = PARSE_BAD;
			break;
		}
		have = (size_t)n;
		rc = parse_buf(buf, have, m, err, errlen, &need);
		if (rc != PARSE_SHORT || have < want || want >= limit)
			break;
		/* What ends past the cap or the file is not read through. */
		if (need > limit)
			break;
		want = have * 2 > need ? have * 2 : (size_t)need;
	}
	free(buf);
	/* The caller's cap, not the file, ended the read. */
	if (rc == PARSE_SHORT && limit < size && (have == limit ||
	    need <= size)) {
		set_err(err, errlen, "%s: the header goes on past the %llu "
		    "bytes read", path, (unsigned long long)cap);
		return GGUF_HEADER_TOO_LONG;
	}
	/*
	 * Short with the whole file read.  (Not with GGUF_HEADER_MAX_BYTES
	 * read: a claim past that limit is refused before.)
	 */
	if (rc == PARSE_SHORT) {
		set_err(err, errlen, "%s: truncated: the header goes on past "
		    "the end of the file (%zu bytes)", path, have);
		rc = PARSE_BAD;
	}
	return rc;
}

/* The tensor data must be in the file; unknown types take all of it. */
static int
check_data(const char *path, uint64_t size, struct gguf_model *m,
    char *err, size_t errlen)
{
	bool	 has_data = m->data_end > 0 || m->unknown_tensors > 0;

	/* A file of no tensors may end before its padding. */
	if (has_data && (m->data_offset > size ||
	    m->data_end > size - m->data_offset)) {
		set_err(err, errlen, "%s: tensor data ends past the end of the "
		    "file (%llu + %llu > %llu bytes)", path,
		    (unsigned long long)m->data_offset,
		    (unsigned long long)m->data_end,
		    (unsigned long long)size);
		return -1;
	}
	if (m->unknown_tensors > 0)
		m->tensor_bytes = size - m->data_offset;
	return 0;
}

static int
read_one_file(const char *path, uint64_t max, struct gguf_model *m,
    char *err, size_t errlen)
{
	struct stat	 st;
	int		 fd, rc;

	memset(m, 0, sizeof(*m));
	/* O_NONBLOCK: a FIFO must not hang the daemon in open(2). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	rc = parse_fd(fd, (uint64_t)st.st_size, max, path, m, err, errlen);
	close(fd);
	if (rc == GGUF_HEADER_TOO_LONG)
		return rc;
	if (rc != 0)
		return -1;
	return check_data(path, (uint64_t)st.st_size, m, err, errlen);
}

#define SPLIT_SUFFIX		"-00001-of-00000.gguf"
#define SPLIT_SUFFIX_LEN	(sizeof(SPLIT_SUFFIX) - 1)

/* Reads n decimal digits at s; -1 if one is not a digit. */
static long
digits(const char *s, int n)
{
	long	 v = 0;
	int	 i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Writes v as n decimal digits at s (no NUL). */
static void
put_digits(char *s, long v, int n)
{
	while (n-- > 0) {
		s[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

/*
 * The number of parts when path names the first part of a split model
 * (llama.cpp's "%s-%05d-of-%05d.gguf"), else 1.
 */
static long
split_parts(const char *path)
{
	size_t		 len = strlen(path);
	const char	*s;
	long		 no, count;

	if (len <= SPLIT_SUFFIX_LEN)
		return 1;
	s = path + len - SPLIT_SUFFIX_LEN;
	if (s[0] != '-' || memcmp(s + 6, "-of-", 4) != 0 ||
	    strcmp(s + 15, ".gguf") != 0 || s[-1] == '/')
		return 1;
	no = digits(s + 1, 5);
	count = digits(s + 10, 5);
	if (no != 1 || count < 2)
		return 1;
	return count;
}

static int
add_part(struct gguf_model *m, const struct gguf_model *part)
{
	return add_ok(m->tensor_bytes, part->tensor_bytes, &m->tensor_bytes) &&
	    add_ok(m->n_tensors, part->n_tensors, &m->n_tensors) &&
	    add_ok(m->unknown_tensors, part->unknown_tensors,
	    &m->unknown_tensors) ? 0 : -1;
}

/* Adds the tensors of parts 2..count, which sit next to the first. */
static int
add_split_parts(const char *path, long count, uint64_t max,
    struct gguf_model *m, char *err, size_t errlen)
{
	struct gguf_model	 part;
	size_t			 len = strlen(path);
	char			*p;
	long			 k;
	int			 rc = 0;

	if (m->split_count != 0 && m->split_count != count) {
		set_err(err, errlen, "%s: split.count %u, but the name says %ld "
		    "parts", path, m->split_count, count);
		return -1;
	}
	if ((p = strdup(path)) == NULL) {
		set_err(err, errlen, "%s: out of memory", path);
		return -1;
	}
	for (k = 2; k <= count && rc == 0; k++) {
		/* NAME-0000k-of-0000N.gguf: only the part number changes. */
		put_digits(p + len - SPLIT_SUFFIX_LEN + 1, k, 5);
		if ((rc = read_one_file(p, max, &part, err, errlen)) != 0)
			break;
		if ((rc = add_part(m, &part)) != 0)
			set_err(err, errlen, "%s: tensor sizes overflow", p);
	}
	free(p);
	return rc;
}

int
gguf_read_file_max(const char *path, uint64_t max, struct gguf_model *m,
    char *err, size_t errlen)
{
	long	 parts;
	int	 rc;

	if ((rc = read_one_file(path, max, m, err, errlen)) != 0)
		return rc;
	if ((parts = split_parts(path)) > 1)
		return add_split_parts(path, parts, max, m, err, errlen);
	return 0;
}

int
gguf_read_file(const char *path, struct gguf_model *m, char *err,
    size_t errlen)
{
	return gguf_read_file_max(path, GGUF_HEADER_MAX_BYTES, m, err,
	    errlen) == 0 ? 0 : -1;
}

/* --- the estimate --- */

void
gguf_params_default(struct gguf_params *p)
{
	memset(p, 0, sizeof(*p));
	p->kv_unified = -1;
	p->flash_attn = 1;
	p->k_type = GGUF_CACHE_F16;
	p->v_type = GGUF_CACHE_F16;
	p->cache_ram_mib = LLAMA_DEFAULT_CACHE_RAM_MIB;
}

/* Bytes of n elements of a cache type (f16 for a type we cannot size). */
static uint64_t
row_bytes(uint32_t type, uint64_t n)
{
	const struct ggml_traits	*t = ggml_traits(type);

	if (t == NULL)
		t = ggml_traits(GGUF_CACHE_F16);
	return sat_mul((n + t->blck - 1) / t->blck, t->size);
}

static uint64_t
context_wanted(const struct gguf_model *m, const struct gguf_params *p)
{
	if (p->ctx > 0)
		return p->ctx;
	if (m->context_length > 0)
		return m->context_length;
	return LLAMA_DEFAULT_CTX;
}

/*
 * KV cells: one cache of ctx cells when unified, else ctx/slots per slot;
 * either padded up to 256 cells.
 */
static uint64_t
kv_cells(uint64_t ctx, const struct gguf_params *p)
{
	uint64_t	 slots = p->parallel > 0 ? p->parallel :
			    LLAMA_AUTO_SLOTS;
	bool		 unified = p->kv_unified >= 0 ? p->kv_unified != 0 :
			    p->parallel == 0;

	if (unified || slots == 1)
		return round_up(ctx, LLAMA_KV_PAD_CELLS);
	return sat_mul(slots,
	    round_up((ctx + slots - 1) / slots, LLAMA_KV_PAD_CELLS));
}

static uint64_t
kv_bytes(const struct gguf_model *m, const struct gguf_params *p,
    uint64_t cells)
{
	uint64_t	 k, v;

	k = row_bytes(p->k_type, sat_mul(m->kv_heads_total, m->key_length));
	v = row_bytes(p->v_type, sat_mul(m->kv_heads_total, m->value_length));
	return sat_mul(cells, sat_add(k, v));
}

/* The feed-forward width the compute buffer sees (MoE: the used experts). */
static uint64_t
ff_width(const struct gguf_model *m)
{
	uint64_t	 ff = m->feed_forward_length;
	uint64_t	 experts = (uint64_t)m->expert_ff_length *
			    m->expert_used_count;

	if (experts > ff)
		ff = experts;
	if (ff == 0)
		ff = 4 * (uint64_t)m->embedding_length;
	return ff;
}

static uint64_t
compute_bytes(const struct gguf_model *m, const struct gguf_params *p,
    uint64_t ctx, uint64_t cells)
{
	uint64_t	 ub = p->ubatch > 0 ? p->ubatch : LLAMA_DEFAULT_UBATCH;
	uint64_t	 batch = p->batch > 0 ? p->batch : LLAMA_DEFAULT_BATCH;
	uint64_t	 per_cell, per_token;

	/* llama.cpp: n_batch ≤ n_ctx, n_ubatch ≤ n_batch. */
	if (batch > ctx)
		batch = ctx;
	if (ub > batch)
		ub = batch;
	per_cell = EST_MASK_BYTES;
	if (!p->flash_attn)
		per_cell = sat_add(per_cell,
		    sat_mul(EST_KQ_BYTES, m->head_count));
	per_token = sat_add(sat_add(
	    sat_mul(EST_EMBD_BYTES, m->embedding_length),
	    sat_mul(EST_FF_BYTES, ff_width(m))),
	    sat_mul(per_cell, cells));
	return sat_mul(ub, per_token);
}

void
gguf_estimate(const struct gguf_model *m, const struct gguf_params *p,
    struct gguf_estimate *e)
{
	uint64_t	 ctx = context_wanted(m, p);
	uint64_t	 cells = kv_cells(ctx, p);

	memset(e, 0, sizeof(*e));
	e->ctx = cells > UINT32_MAX ? UINT32_MAX : (uint32_t)cells;
	e->weights = m->tensor_bytes;
	e->kv_known = m->kv_heads_total > 0 && m->key_length > 0 &&
	    m->value_length > 0;
	if (e->kv_known)
		e->kv_cache = kv_bytes(m, p, cells);
	if (m->embedding_length > 0)
		e->compute = compute_bytes(m, p, ctx, cells);
	e->runtime = sat_add(EST_RUNTIME_BYTES,
	    sat_mul(m->vocab_size, EST_PER_TOKEN_BYTES));
	e->overhead = sat_add(e->compute, e->runtime);
	e->total = sat_add(sat_add(e->weights, e->kv_cache), e->overhead);
	if (p->cache_ram_mib < 0)
		e->prompt_cache_max = UINT64_MAX;
	else
		e->prompt_cache_max = sat_mul((uint64_t)p->cache_ram_mib,
		    1u << 20);
}

/* --- the server's command line --- */

enum server_opt {
	OPT_CTX, OPT_PARALLEL, OPT_CACHE_K, OPT_CACHE_V, OPT_UBATCH,
	OPT_BATCH, OPT_FLASH_ATTN, OPT_KV_UNIFIED, OPT_NO_KV_UNIFIED,
	OPT_CACHE_RAM
};

enum opt_value { VALUE_NONE, VALUE_REQUIRED, VALUE_OPTIONAL };

static const struct server_option {
	const char	*short_name;
	const char	*long_name;
	enum server_opt	 opt;
	enum opt_value	 value;
} server_options[] = {
	{ "-c",		"--ctx-size",		OPT_CTX,	VALUE_REQUIRED },
	{ "-np",	"--parallel",		OPT_PARALLEL,	VALUE_REQUIRED },
	{ "-ctk",	"--cache-type-k",	OPT_CACHE_K,	VALUE_REQUIRED },
	{ "-ctv",	"--cache-type-v",	OPT_CACHE_V,	VALUE_REQUIRED },
	{ "-ub",	"--ubatch-size",	OPT_UBATCH,	VALUE_REQUIRED },
	{ "-b",		"--batch-size",		OPT_BATCH,	VALUE_REQUIRED },
	/* Older servers: a bare flag; newer: on|off|auto. */
	{ "-fa",	"--flash-attn",		OPT_FLASH_ATTN,	VALUE_OPTIONAL },
	{ "-kvu",	"--kv-unified",		OPT_KV_UNIFIED,	VALUE_NONE },
	{ "-no-kvu",	"--no-kv-unified",	OPT_NO_KV_UNIFIED, VALUE_NONE },
	{ "-cram",	"--cache-ram",		OPT_CACHE_RAM,	VALUE_REQUIRED },
};

static const struct {
	const char	*name;
	uint32_t	 type;
} cache_type_names[] = {
	{ "f32", GGUF_CACHE_F32 },	{ "f16", GGUF_CACHE_F16 },
	{ "bf16", GGUF_CACHE_BF16 },	{ "q8_0", GGUF_CACHE_Q8_0 },
	{ "q4_0", GGUF_CACHE_Q4_0 },	{ "q4_1", GGUF_CACHE_Q4_1 },
	{ "iq4_nl", GGUF_CACHE_IQ4_NL },{ "q5_0", GGUF_CACHE_Q5_0 },
	{ "q5_1", GGUF_CACHE_Q5_1 },
};

/* A decimal in [min, max]; false (and *v untouched) otherwise. */
static bool
parse_int(const char *s, long long min, long long max, long long *v)
{
	char		*end;
	long long	 n;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return false;
	*v = n;
	return true;
}

static void
set_u32(const char *s, uint32_t *field)
{
	long long	 v;

	if (parse_int(s, 0, UINT32_MAX, &v))
		*field = (uint32_t)v;
}

static void
set_cache_type(const char *s, uint32_t *field)
{
	size_t	 i;

	if (s == NULL)
		return;
	for (i = 0; i < sizeof(cache_type_names) /
	    sizeof(cache_type_names[0]); i++)
		if (strcasecmp(s, cache_type_names[i].name) == 0)
			*field = cache_type_names[i].type;
}

/* -1 if s is not a flash-attention value (a bare -fa then). */
static int
flash_attn_value(const char *s)
{
	static const char *const on[] = { "on", "auto", "1", "true",
	    "enabled" };
	static const char *const off[] = { "off", "0", "false",
	    "disabled" };
	size_t	 i;

	if (s == NULL)
		return -1;
	for (i = 0; i < sizeof(on) / sizeof(on[0]); i++)
		if (strcasecmp(s, on[i]) == 0)
			return 1;
	for (i = 0; i < sizeof(off) / sizeof(off[0]); i++)
		if (strcasecmp(s, off[i]) == 0)
			return 0;
	return -1;
}

static void
apply_option(enum server_opt opt, const char *value, struct gguf_params *p)
{
	long long	 v;
	int		 fa;

	switch (opt) {
	case OPT_CTX:		set_u32(value, &p->ctx); break;
	case OPT_PARALLEL:	set_u32(value, &p->parallel); break;
	case OPT_UBATCH:	set_u32(value, &p->ubatch); break;
	case OPT_BATCH:		set_u32(value, &p->batch); break;
	case OPT_CACHE_K:	set_cache_type(value, &p->k_type); break;
	case OPT_CACHE_V:	set_cache_type(value, &p->v_type); break;
	case OPT_KV_UNIFIED:	p->kv_unified = 1; break;
	case OPT_NO_KV_UNIFIED:	p->kv_unified = 0; break;
	case OPT_FLASH_ATTN:
		fa = flash_attn_value(value);
		p->flash_attn = fa == -1 ? 1 : fa;
		break;
	case OPT_CACHE_RAM:
		if (parse_int(value, -1, INT64_MAX >> 20, &v))
			p->cache_ram_mib = v;
		break;
	}
}

/* The option arg names, and where its "=VALUE" starts (NULL if none). */
static const struct server_option *
find_option(const char *arg, const char **inline_value)
{
	const char	*eq = NULL;
	size_t		 i, n;

	*inline_value = NULL;
	if (strncmp(arg, "--", 2) == 0)
		eq = strchr(arg, '=');
	n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
	for (i = 0; i < sizeof(server_options) / sizeof(server_options[0]);
	    i++) {
		const struct server_option *o = &server_options[i];

		if ((strlen(o->short_name) == n &&
		    strncmp(arg, o->short_name, n) == 0) ||
		    (strlen(o->long_name) == n &&
		    strncmp(arg, o->long_name, n) == 0)) {
			if (eq != NULL)
				*inline_value = eq + 1;
			return o;
		}
	}
	return NULL;
}

void
gguf_params_from_argv(char *const argv[], struct gguf_params *p)
{
	const struct server_option	*o;
	const char			*value;
	size_t				 i;

	gguf_params_default(p);
	if (argv == NULL)
		return;
	for (i = 0; argv[i] != NULL; i++) {
		if ((o = find_option(argv[i], &value)) == NULL)
			continue;
		if (value == NULL && o->value == VALUE_REQUIRED) {
			if (argv[i + 1] == NULL)
				break;
			value = argv[++i];
		} else if (value == NULL && o->value == VALUE_OPTIONAL &&
		    flash_attn_value(argv[i + 1]) != -1)
			value = argv[++i];
		apply_option(o->opt, value, p);
	}
}
