/*
 * check_gguf.c — the GGUF header reader and the memory estimate.
 *
 * The GGUF files are written here, byte by byte, by a tiny writer (gw_*):
 * valid v2 and v3 headers with known tensors, then every corruption we
 * could think of, every truncation, every single-byte mutation, and what
 * the fuzzer (fuzz/fuzz_gguf.c) finds.  Nothing here needs the
 * real llama-server; one case reads a model made by make-tiny-gguf when
 * ../shared/tools/setup-real-llama.sh has installed it, and says so when
 * it has not.
 *
 * Calibration (2 cores, warm page cache; Debian llama.cpp 0.7.0 build
 * 11669, CPU).  Models from make-tiny-gguf (f32, 440-token vocabulary),
 * run as `llama-server -m M -c CTX -np 1 -t 2`; RSS is VmRSS once /health
 * answers 200, "+chat" after one short chat completion, "+prompt" after a
 * ~450-token prompt with --cache-ram 0.  Estimates are gguf_estimate's
 * total.  Tolerance: ±15 % or ±32 MiB, whichever is larger.
 *
 *   model   size    ctx   estimate  RSS load  +chat  +prompt  error
 *   m0      0.5 MB   512    28.8     25.4     26.1            +3.3 MiB
 *   m0      0.5 MB  2048    31.0     26.1     26.8    30      +4.9 MiB
 *   m0      0.5 MB  8192    40.0     29.5     30.1            +10.6 MiB
 *   m20     21 MB    512    57.0     49.6     51.1            +14.8 %
 *   m20     21 MB   2048    70.5     61.7     63.1    69      +14.3 %
 *   m20     21 MB   8192   124.5    109.9    111.4            +13.2 %
 *   m100    102 MB   512   149.4    136.8    139.0            +9.2 %
 *   m100    102 MB  2048   180.9    166.8    169.0   179      +8.5 %
 *   m100    102 MB  8192   306.9    286.9    289.2            +6.9 %
 *   m300    295 MB   512   357.8    339.8    342.8            +5.3 %
 *   m300    295 MB  2048   417.8    398.3    401.4   415      +4.9 %
 *   m300    295 MB  8192   657.8    632.6    635.7            +4.0 %
 *   f16, 20 layers, 101 MB, 8192   466.1    447.0    449.2   +4.3 %
 *   150k-token vocab, 78 MB, 4096  143.9    128.5    130.7   +12.0 %
 *   n_ff = 4 n_embd, 162 MB, 2048  246.9    226.4    230.2   +9.1 %
 *
 * Every estimate is above the RSS after load, by about the part of the
 * compute buffer a short request leaves untouched; after a long prompt
 * they agree within 1-4 %.  The KV and compute figures equal what
 * llama-server logs ("llama_kv_cache: size", "CPU compute buffer size").
 * Not in the estimate: the prompt cache (--cache-ram, 8192 MiB by
 * default) grew m20 at -c 2048 from 61 to 127 MiB over eight different
 * 300-word prompts; gguf_estimate reports its limit as prompt_cache_max.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "gguf.h"
#include "testlib.h"

#define MiB		(1ull << 20)
#define ERR_BYTES	256

/* ggml type ids used below */
enum {
	T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q8_0 = 8, T_Q4_K = 12,
	T_Q5_K = 13, T_Q6_K = 14, T_IQ2_XXS = 16, T_IQ4_XS = 23, T_BF16 = 30
};

/* gguf value types */
enum {
	V_U8, V_I8, V_U16, V_I16, V_U32, V_I32, V_F32, V_BOOL, V_STR, V_ARR,
	V_U64, V_I64, V_F64
};

/* --- a tiny GGUF writer --- */

struct gw {
	unsigned char	*b;
	size_t		 len, cap;
};

static void
gw_put(struct gw *w, const void *p, size_t n)
{
	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2 + 64;
		ck_assert_ptr_nonnull(w->b = realloc(w->b, w->cap));
	}
	if (n > 0)
		memcpy(w->b + w->len, p, n);
	w->len += n;
}

static void
gw_le(struct gw *w, uint64_t v, int bytes)
{
	unsigned char	 b[8];
	int		 i;

	for (i = 0; i < bytes; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	gw_put(w, b, (size_t)bytes);
}

static void gw_u8(struct gw *w, uint8_t v)	{ gw_le(w, v, 1); }
static void gw_u16(struct gw *w, uint16_t v)	{ gw_le(w, v, 2); }
static void gw_u32(struct gw *w, uint32_t v)	{ gw_le(w, v, 4); }
static void gw_u64(struct gw *w, uint64_t v)	{ gw_le(w, v, 8); }

static void
gw_str(struct gw *w, const char *s)
{
	gw_u64(w, strlen(s));
	gw_put(w, s, strlen(s));
}

static void
gw_header(struct gw *w, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	gw_put(w, "GGUF", 4);
	gw_u32(w, version);
	gw_u64(w, n_tensors);
	gw_u64(w, n_kv);
}

static void
gw_key(struct gw *w, const char *key, uint32_t type)
{
	gw_str(w, key);
	gw_u32(w, type);
}

static void
gw_kv_u32(struct gw *w, const char *key, uint32_t v)
{
	gw_key(w, key, V_U32);
	gw_u32(w, v);
}

static void
gw_kv_str(struct gw *w, const char *key, const char *v)
{
	gw_key(w, key, V_STR);
	gw_str(w, v);
}

static void
gw_tensor(struct gw *w, const char *name, uint32_t n_dims,
    const uint64_t *dims, uint32_t type, uint64_t offset)
{
	uint32_t	 i;

	gw_str(w, name);
	gw_u32(w, n_dims);
	for (i = 0; i < n_dims; i++)
		gw_u64(w, dims[i]);
	gw_u32(w, type);
	gw_u64(w, offset);
}

static void
gw_pad(struct gw *w, size_t align)
{
	static const unsigned char	 zero[64];

	while (w->len % align != 0)
		gw_put(w, zero, 1);
}

static void
gw_free(struct gw *w)
{
	free(w->b);
	memset(w, 0, sizeof(*w));
}

/* Parses a copy the exact size of the data, so ASan sees any overread. */
static int
parse_bytes(const unsigned char *b, size_t len, struct gguf_model *m,
    char *err)
{
	unsigned char	*copy = malloc(len > 0 ? len : 1);
	int		 rc;

	ck_assert_ptr_nonnull(copy);
	if (len > 0)
		memcpy(copy, b, len);
	err[0] = '\0';
	rc = gguf_parse(copy, len, m, err, ERR_BYTES);
	free(copy);
	return rc;
}

static int
parse_gw(const struct gw *w, struct gguf_model *m, char *err)
{
	return parse_bytes(w->b, w->len, m, err);
}

/* Parses w, expects rc and (if not NULL) a piece of the message. */
static void
expect_parse_at(const struct gw *w, int want, const char *needle, int line)
{
	struct gguf_model	 m;
	char			 err[ERR_BYTES];
	int			 rc = parse_gw(w, &m, err);

	ck_assert_msg(rc == want, "line %d: rc %d, want %d (%s)", line, rc,
	    want, err);
	if (needle != NULL)
		ck_assert_msg(strstr(err, needle) != NULL,
		    "line %d: message \"%s\" lacks \"%s\"", line, err, needle);
}

#define EXPECT_PARSE(w, want, needle) \
	expect_parse_at((w), (want), (needle), __LINE__)

/* --- the valid model --- */

struct tspec {
	const char	*name;
	uint32_t	 n_dims;
	uint64_t	 dims[4];
	uint32_t	 type;
	uint64_t	 bytes;		/* computed by hand */
};

static const struct tspec valid_tensors[] = {
	{ "token_embd.weight", 2, { 256, 6 }, T_F16, 256 * 6 * 2 },
	{ "blk.0.attn_q.weight", 2, { 256, 256 }, T_Q4_0, 8 * 18 * 256 },
	{ "blk.0.ffn_up.weight", 2, { 256, 1024 }, T_Q4_K, 144 * 1024 },
	{ "blk.0.attn_norm.weight", 1, { 256 }, T_F32, 1024 },
	{ "blk.1.ffn_down.weight", 2, { 1024, 256 }, T_Q6_K, 4 * 210 * 256 },
	{ "blk.1.attn_k.weight", 2, { 512, 64 }, T_IQ2_XXS, 2 * 66 * 64 },
	{ "blk.1.attn_v.weight", 2, { 256, 64 }, T_Q8_0, 8 * 34 * 64 },
	{ "output_norm.weight", 1, { 256 }, T_BF16, 512 },
	{ "scalar", 0, { 0 }, T_F32, 4 },
	{ "output.weight", 3, { 256, 3, 2 }, T_IQ4_XS, 136 * 6 },
	{ "four_dims", 4, { 256, 1, 2, 3 }, T_Q5_K, 176 * 6 },
};
#define N_VALID_TENSORS	(sizeof(valid_tensors) / sizeof(valid_tensors[0]))

static uint64_t
valid_tensor_bytes(void)
{
	uint64_t	 sum = 0;
	size_t		 i;

	for (i = 0; i < N_VALID_TENSORS; i++)
		sum += valid_tensors[i].bytes;
	return sum;
}

struct build {
	uint32_t	 version;
	uint32_t	 alignment;	/* 0: no general.alignment key */
	bool		 arch_last;	/* ARCH.* keys before the arch name */
	bool		 with_data;	/* append the tensor data */
};

static const char *const vocab[] = { "<unk>", "<s>", "</s>", "a", "b", "c" };

static uint32_t
write_arch_kvs(struct gw *w)
{
	gw_kv_u32(w, "llama.block_count", 2);
	gw_key(w, "llama.context_length", V_U64);
	gw_u64(w, 4096);
	gw_key(w, "llama.embedding_length", V_I32);
	gw_u32(w, 256);
	gw_key(w, "llama.feed_forward_length", V_U16);
	gw_u16(w, 1024);
	gw_key(w, "llama.attention.head_count", V_U8);
	gw_u8(w, 8);
	gw_key(w, "llama.attention.head_count_kv", V_I64);
	gw_u64(w, 2);
	gw_kv_u32(w, "qwen2.block_count", 99);	/* another arch: ignored */
	return 7;
}

static uint32_t
write_other_kvs(struct gw *w)
{
	size_t	 i, n = sizeof(vocab) / sizeof(vocab[0]);

	gw_kv_str(w, "general.name", "tiny");
	gw_key(w, "llama.rope.freq_base", V_F32);
	gw_u32(w, 0x461c4000);
	gw_key(w, "general.flag", V_BOOL);
	gw_u8(w, 1);
	gw_key(w, "general.double", V_F64);
	gw_u64(w, 0x3ff0000000000000ull);
	gw_key(w, "general.negative", V_I16);
	gw_u16(w, 0xfffb);
	gw_key(w, "tokenizer.ggml.tokens", V_ARR);
	gw_u32(w, V_STR);
	gw_u64(w, n);
	for (i = 0; i < n; i++)
		gw_str(w, vocab[i]);
	gw_key(w, "tokenizer.ggml.scores", V_ARR);
	gw_u32(w, V_F32);
	gw_u64(w, n);
	for (i = 0; i < n; i++)
		gw_u32(w, 0);
	gw_key(w, "general.tags", V_ARR);	/* an empty array */
	gw_u32(w, V_U8);
	gw_u64(w, 0);
	return 8;
}

/*
 * Writes the valid model; returns where the tensor infos end (the header
 * proper, before the padding).
 */
static size_t
build_valid(struct gw *w, const struct build *o)
{
	struct gw	 kvs = { 0 };
	uint32_t	 n_kv = 0, align = o->alignment ? o->alignment : 32;
	uint64_t	 off = 0;
	size_t		 i, end;

	if (o->arch_last)
		n_kv += write_arch_kvs(&kvs);
	gw_kv_str(&kvs, "general.architecture", "llama");
	n_kv++;
	if (o->alignment) {
		gw_kv_u32(&kvs, "general.alignment", o->alignment);
		n_kv++;
	}
	if (!o->arch_last)
		n_kv += write_arch_kvs(&kvs);
	n_kv += write_other_kvs(&kvs);
	gw_header(w, o->version, N_VALID_TENSORS, n_kv);
	gw_put(w, kvs.b, kvs.len);
	gw_free(&kvs);
	for (i = 0; i < N_VALID_TENSORS; i++) {
		const struct tspec *t = &valid_tensors[i];

		gw_tensor(w, t->name, t->n_dims, t->dims, t->type, off);
		off += (t->bytes + align - 1) / align * align;
	}
	end = w->len;
	if (o->with_data) {
		unsigned char	*zeros = calloc(1, off);

		ck_assert_ptr_nonnull(zeros);
		gw_pad(w, align);
		gw_put(w, zeros, off);
		free(zeros);
	}
	return end;
}

static void
check_valid_fields(const struct gguf_model *m, uint32_t version,
    uint32_t align, size_t header_end)
{
	ck_assert_uint_eq(m->version, version);
	ck_assert_str_eq(m->arch, "llama");
	ck_assert_uint_eq(m->alignment, align);
	ck_assert_uint_eq(m->n_tensors, N_VALID_TENSORS);
	ck_assert_uint_eq(m->unknown_tensors, 0);
	ck_assert_uint_eq(m->tensor_bytes, valid_tensor_bytes());
	ck_assert_uint_eq(m->data_offset,
	    (header_end + align - 1) / align * align);
	ck_assert_uint_eq(m->block_count, 2);
	ck_assert_uint_eq(m->context_length, 4096);
	ck_assert_uint_eq(m->embedding_length, 256);
	ck_assert_uint_eq(m->feed_forward_length, 1024);
	ck_assert_uint_eq(m->head_count, 8);
	ck_assert_uint_eq(m->head_count_kv, 2);
	ck_assert_uint_eq(m->kv_heads_total, 4);
	ck_assert_uint_eq(m->key_length, 32);		/* 256 / 8 */
	ck_assert_uint_eq(m->value_length, 32);
	ck_assert_uint_eq(m->vocab_size, 6);
}

START_TEST(parse_valid_v3)
{
	struct build	 o = { 3, 64, false, false };
	struct gw	 w = { 0 };
	struct gguf_model m;
	char		 err[ERR_BYTES];
	size_t		 end = build_valid(&w, &o);

	ck_assert_int_eq(parse_gw(&w, &m, err), 0);
	check_valid_fields(&m, 3, 64, end);
	gw_free(&w);
}
END_TEST

/* v2, default alignment, and the ARCH.* keys before general.architecture. */
START_TEST(parse_valid_v2)
{
	struct build	 o = { 2, 0, true, false };
	struct gw	 w = { 0 };
	struct gguf_model m;
	char		 err[ERR_BYTES];
	size_t		 end = build_valid(&w, &o);

	ck_assert_int_eq(parse_gw(&w, &m, err), 0);
	check_valid_fields(&m, 2, 32, end);
	gw_free(&w);
}
END_TEST

/* Every prefix of a valid header is "read more"; never a crash. */
START_TEST(parse_truncated_everywhere)
{
	struct build	 o = { 3, 64, false, true };
	struct gw	 w = { 0 };
	struct gguf_model m;
	char		 err[ERR_BYTES];
	size_t		 end = build_valid(&w, &o), i;
	int		 rc;

	for (i = 0; i < end; i++) {
		rc = parse_bytes(w.b, i, &m, err);
		ck_assert_msg(rc == -2, "prefix %zu: rc %d (%s)", i, rc, err);
	}
	/* The padding and the data are not needed. */
	ck_assert_int_eq(parse_bytes(w.b, end, &m, err), 0);
	ck_assert_int_eq(parse_bytes(w.b, end + 1, &m, err), 0);
	ck_assert_int_eq(parse_bytes(w.b, w.len, &m, err), 0);
	ck_assert_int_eq(gguf_parse(NULL, 0, &m, err, sizeof(err)), -2);
	ck_assert_int_eq(gguf_parse(w.b, 10, &m, NULL, 0), -2);
	gw_free(&w);
}
END_TEST

/* Every byte set to each of a few values: any answer but a crash. */
START_TEST(parse_mutated_everywhere)
{
	static const int	 values[] = { 0x00, 0xff, 0x80, 0x7f, 0x01,
				    -1 /* flip the low bit */ };
	struct build		 o = { 3, 32, false, false };
	struct gw		 w = { 0 };
	struct gguf_model	 m;
	struct gguf_params	 p;
	struct gguf_estimate	 e;
	char			 err[ERR_BYTES];
	unsigned char		*copy;
	size_t			 i, v, ok = 0;
	int			 rc;

	build_valid(&w, &o);
	gguf_params_default(&p);
	ck_assert_ptr_nonnull(copy = malloc(w.len));
	for (i = 0; i < w.len; i++) {
		for (v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
			memcpy(copy, w.b, w.len);
			copy[i] = values[v] < 0 ? copy[i] ^ 1 :
			    (unsigned char)values[v];
			rc = parse_bytes(copy, w.len, &m, err);
			ck_assert_msg(rc == 0 || rc == -1 || rc == -2,
			    "byte %zu: rc %d", i, rc);
			if (rc == 0) {
				gguf_estimate(&m, &p, &e);
				ok++;
			}
		}
	}
	ck_assert_uint_gt(ok, 0);	/* many values are don't-cares */
	free(copy);
	gw_free(&w);
}
END_TEST

/* --- corruptions, one at a time --- */

START_TEST(bad_magic)
{
	struct gw	 w = { 0 };

	gw_put(&w, "GGML", 4);
	gw_u32(&w, 3);
	gw_u64(&w, 0);
	gw_u64(&w, 0);
	EXPECT_PARSE(&w, -1, "magic");
	gw_free(&w);
	gw_put(&w, "model=x\nmemory=1G\n", 18);	/* the stand-in's models */
	EXPECT_PARSE(&w, -1, "magic");
	gw_free(&w);
	gw_put(&w, "GX", 2);		/* too short, but already wrong */
	EXPECT_PARSE(&w, -1, "magic");
	gw_free(&w);
	gw_put(&w, "GG", 2);		/* could still be GGUF */
	EXPECT_PARSE(&w, -2, NULL);
	gw_free(&w);
}
END_TEST

START_TEST(bad_version)
{
	static const struct {
		uint32_t	 version;
		const char	*needle;
	} cases[] = {
		{ 0, "version 0" }, { 1, "version 1" }, { 4, "version 4" },
		{ 99, "version 99" }, { 0x03000000, "big-endian" },
		{ 0xffffffff, "version" },
	};
	struct gw	 w = { 0 };
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_header(&w, cases[i].version, 0, 0);
		EXPECT_PARSE(&w, -1, cases[i].needle);
		gw_free(&w);
	}
	gw_header(&w, 3, 0, 0);		/* the smallest valid file */
	EXPECT_PARSE(&w, 0, NULL);
	gw_free(&w);
}
END_TEST

START_TEST(huge_counts)
{
	struct gw	 w = { 0 };

	gw_header(&w, 3, 0, 1ull << 62);
	EXPECT_PARSE(&w, -1, "cannot fit");
	gw_free(&w);
	gw_header(&w, 3, UINT64_MAX, 0);
	EXPECT_PARSE(&w, -1, "cannot fit");
	gw_free(&w);
	gw_header(&w, 3, 10000000, 10000000);	/* each fits, not both */
	EXPECT_PARSE(&w, -1, "cannot fit");
	gw_free(&w);
	gw_header(&w, 3, 0, 1000);	/* plausible: the buffer just ends */
	EXPECT_PARSE(&w, -2, NULL);
	gw_free(&w);
}
END_TEST

START_TEST(huge_strings)
{
	struct gw	 w = { 0 };

	gw_header(&w, 3, 0, 1);		/* a key of 2^63 bytes */
	gw_u64(&w, 1ull << 63);
	EXPECT_PARSE(&w, -1, "key");
	gw_free(&w);
	gw_header(&w, 3, 0, 1);		/* a key over the key limit */
	gw_u64(&w, 70000);
	EXPECT_PARSE(&w, -1, "key");
	gw_free(&w);
	gw_header(&w, 3, 0, 1);		/* a value of 2^63 bytes */
	gw_key(&w, "general.name", V_STR);
	gw_u64(&w, 1ull << 63);
	EXPECT_PARSE(&w, -1, "string value");
	gw_free(&w);
	gw_header(&w, 3, 0, 1);		/* UINT64_MAX: offset + len wraps */
	gw_key(&w, "general.name", V_STR);
	gw_u64(&w, UINT64_MAX);
	EXPECT_PARSE(&w, -1, NULL);
	gw_free(&w);
	gw_header(&w, 3, 0, 1);		/* longer than the buffer: maybe */
	gw_key(&w, "general.name", V_STR);
	gw_u64(&w, 1000);
	gw_put(&w, "abc", 3);
	EXPECT_PARSE(&w, -2, NULL);
	gw_free(&w);
	gw_header(&w, 3, 0, 1);		/* past the header limit: a lie */
	gw_key(&w, "general.name", V_STR);
	gw_u64(&w, GGUF_HEADER_MAX_BYTES);
	EXPECT_PARSE(&w, -1, "header limit");
	gw_free(&w);
}
END_TEST

static void
array_header(struct gw *w, uint32_t elem, uint64_t count)
{
	gw_header(w, 3, 0, 1);
	gw_key(w, "tokenizer.ggml.tokens", V_ARR);
	gw_u32(w, elem);
	gw_u64(w, count);
}

START_TEST(bad_arrays)
{
	struct gw	 w = { 0 };

	array_header(&w, V_U32, 1ull << 62);	/* count × 4 overflows */
	EXPECT_PARSE(&w, -1, "elements");
	gw_free(&w);
	array_header(&w, V_U8, UINT64_MAX);
	EXPECT_PARSE(&w, -1, "elements");
	gw_free(&w);
	array_header(&w, V_STR, 1ull << 61);	/* 8 bytes each at least */
	EXPECT_PARSE(&w, -1, "elements");
	gw_free(&w);
	array_header(&w, V_U8, 100);		/* fits; the buffer ends */
	EXPECT_PARSE(&w, -2, NULL);
	gw_free(&w);
	array_header(&w, V_ARR, 1);		/* nested */
	gw_u32(&w, V_U8);
	gw_u64(&w, 1);
	gw_u8(&w, 0);
	EXPECT_PARSE(&w, -1, "nested");
	gw_free(&w);
	array_header(&w, 13, 1);		/* unknown element type */
	EXPECT_PARSE(&w, -1, "unknown type 13");
	gw_free(&w);
	array_header(&w, V_STR, 2);		/* a lying string inside */
	gw_str(&w, "ok");
	gw_u64(&w, 1ull << 62);
	EXPECT_PARSE(&w, -1, "array string");
	gw_free(&w);
}
END_TEST

START_TEST(unknown_value_types)
{
	static const uint32_t	 types[] = { 13, 255, 0x80000000u, UINT32_MAX };
	struct gw		 w = { 0 };
	size_t			 i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		gw_header(&w, 3, 0, 1);
		gw_key(&w, "general.x", types[i]);
		gw_u64(&w, 0);
		EXPECT_PARSE(&w, -1, "unknown value type");
		gw_free(&w);
	}
}
END_TEST

/* One tensor info after the arch name; returns through the writer. */
static void
one_tensor(struct gw *w, uint32_t n_dims, const uint64_t *dims,
    uint32_t type, uint64_t offset)
{
	gw_header(w, 3, 1, 1);
	gw_kv_str(w, "general.architecture", "llama");
	gw_tensor(w, "t", n_dims, dims, type, offset);
}

START_TEST(bad_tensors)
{
	static const uint64_t	 d5[5] = { 1, 1, 1, 1, 1 };
	static const uint64_t	 big[2] = { 1ull << 32, 1ull << 32 };
	static const uint64_t	 neg[1] = { 1ull << 63 };
	static const uint64_t	 f64_big[1] = { 1ull << 62 };
	static const uint64_t	 odd[2] = { 100, 2 };
	static const uint64_t	 ok[1] = { 32 };
	struct gw		 w = { 0 };

	one_tensor(&w, 5, d5, T_F32, 0);
	EXPECT_PARSE(&w, -1, "5 dimensions");
	gw_free(&w);
	gw_header(&w, 3, 1, 0);
	gw_str(&w, "t");
	gw_u32(&w, UINT32_MAX);
	EXPECT_PARSE(&w, -1, "dimensions");
	gw_free(&w);
	one_tensor(&w, 2, big, T_F32, 0);	/* 2^64 elements */
	EXPECT_PARSE(&w, -1, "overflows");
	gw_free(&w);
	one_tensor(&w, 1, neg, T_F32, 0);	/* negative as int64 */
	EXPECT_PARSE(&w, -1, "overflows");
	gw_free(&w);
	one_tensor(&w, 1, f64_big, 28, 0);	/* F64: 2^62 × 8 bytes */
	EXPECT_PARSE(&w, -1, "size overflows");
	gw_free(&w);
	one_tensor(&w, 2, odd, T_Q4_0, 0);	/* 100 not blocks of 32 */
	EXPECT_PARSE(&w, -1, "whole blocks");
	gw_free(&w);
	one_tensor(&w, 1, ok, T_F32, 7);	/* misaligned offset */
	EXPECT_PARSE(&w, -1, "multiple of the alignment");
	gw_free(&w);
	one_tensor(&w, 1, ok, T_F32, UINT64_MAX - 31);	/* offset + size */
	EXPECT_PARSE(&w, -1, "overflows");
	gw_free(&w);
	gw_header(&w, 3, 1, 0);			/* a name too long */
	gw_u64(&w, 1000);
	EXPECT_PARSE(&w, -1, "tensor name");
	gw_free(&w);
	one_tensor(&w, 1, ok, T_F32, 0);	/* and the good one */
	EXPECT_PARSE(&w, 0, NULL);
	gw_free(&w);
}
END_TEST

START_TEST(unknown_tensor_types)
{
	static const uint64_t	 dims[2] = { 33, 3 };	/* not blocks: fine */
	static const uint32_t	 types[] = { 4, 31, 36, 42, 1000, UINT32_MAX };
	struct gw		 w = { 0 };
	struct gguf_model	 m;
	char			 err[ERR_BYTES];
	size_t			 i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		one_tensor(&w, 2, dims, types[i], 64);
		ck_assert_int_eq(parse_gw(&w, &m, err), 0);
		ck_assert_uint_eq(m.unknown_tensors, 1);
		ck_assert_uint_eq(m.tensor_bytes, 0);
		ck_assert_uint_eq(m.data_end, 64);
		gw_free(&w);
	}
}
END_TEST

START_TEST(bad_alignment)
{
	static const uint32_t	 bad[] = { 0, 3, 48, 0xffffffff };
	struct gw		 w = { 0 };
	struct gguf_model	 m;
	char			 err[ERR_BYTES];
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gw_header(&w, 3, 0, 1);
		gw_kv_u32(&w, "general.alignment", bad[i]);
		EXPECT_PARSE(&w, -1, "power of two");
		gw_free(&w);
	}
	gw_header(&w, 3, 0, 1);			/* not a uint32 */
	gw_kv_str(&w, "general.alignment", "32");
	EXPECT_PARSE(&w, -1, "not a uint32");
	gw_free(&w);
	gw_header(&w, 3, 0, 1);			/* absurd but legal */
	gw_kv_u32(&w, "general.alignment", 1u << 31);
	ck_assert_int_eq(parse_gw(&w, &m, err), 0);
	ck_assert_uint_eq(m.data_offset, 1ull << 31);
	gw_free(&w);
	gw_header(&w, 3, 0, 1);
	gw_kv_u32(&w, "general.alignment", 1);
	ck_assert_int_eq(parse_gw(&w, &m, err), 0);
	ck_assert_uint_eq(m.data_offset, w.len);
	gw_free(&w);
}
END_TEST

START_TEST(bad_arch_values)
{
	char		 long_arch[80];
	struct gw	 w = { 0 };

	memset(long_arch, 'a', sizeof(long_arch) - 1);
	long_arch[sizeof(long_arch) - 1] = '\0';
	gw_header(&w, 3, 0, 1);
	gw_kv_str(&w, "general.architecture", long_arch);
	EXPECT_PARSE(&w, -1, "general.architecture");
	gw_free(&w);
	gw_header(&w, 3, 0, 1);
	gw_kv_u32(&w, "general.architecture", 1);
	EXPECT_PARSE(&w, -1, "not a string");
	gw_free(&w);
	gw_header(&w, 3, 0, 1);
	gw_key(&w, "general.architecture", V_STR);
	gw_u64(&w, 3);
	gw_put(&w, "a\0b", 3);
	EXPECT_PARSE(&w, -1, "NUL");
	gw_free(&w);
	gw_header(&w, 3, 0, 2);			/* negative layers */
	gw_kv_str(&w, "general.architecture", "llama");
	gw_key(&w, "llama.block_count", V_I32);
	gw_u32(&w, (uint32_t)-1);
	EXPECT_PARSE(&w, -1, "llama.block_count out of range");
	gw_free(&w);
	gw_header(&w, 3, 0, 2);			/* more than 32 bits */
	gw_kv_str(&w, "general.architecture", "llama");
	gw_key(&w, "llama.context_length", V_U64);
	gw_u64(&w, 1ull << 40);
	EXPECT_PARSE(&w, -1, "out of range");
	gw_free(&w);
}
END_TEST

/* Keys the estimate reads in other shapes: floats, per-layer arrays. */
START_TEST(arch_value_shapes)
{
	struct gw		 w = { 0 };
	struct gguf_model	 m;
	char			 err[ERR_BYTES];

	gw_header(&w, 3, 0, 8);
	gw_kv_str(&w, "general.architecture", "hybrid");
	gw_kv_u32(&w, "hybrid.block_count", 4);
	gw_kv_u32(&w, "hybrid.embedding_length", 512);
	gw_key(&w, "hybrid.attention.head_count", V_F32);	/* ignored */
	gw_u32(&w, 0x41000000);
	gw_key(&w, "hybrid.attention.head_count_kv", V_ARR);
	gw_u32(&w, V_I32);
	gw_u64(&w, 4);
	gw_u32(&w, 0);
	gw_u32(&w, 4);
	gw_u32(&w, 0);
	gw_u32(&w, 2);
	gw_kv_u32(&w, "hybrid.attention.key_length", 128);
	gw_kv_u32(&w, "hybrid.attention.value_length", 64);
	gw_key(&w, "hybrid.feed_forward_length", V_ARR);
	gw_u32(&w, V_U16);
	gw_u64(&w, 2);
	gw_u16(&w, 1000);
	gw_u16(&w, 3000);
	ck_assert_int_eq(parse_gw(&w, &m, err), 0);
	ck_assert_uint_eq(m.head_count, 0);
	ck_assert_uint_eq(m.head_count_kv, 4);		/* the largest */
	ck_assert_uint_eq(m.kv_heads_total, 6);		/* 0 + 4 + 0 + 2 */
	ck_assert_uint_eq(m.key_length, 128);
	ck_assert_uint_eq(m.value_length, 64);
	ck_assert_uint_eq(m.feed_forward_length, 3000);
	gw_free(&w);
}
END_TEST

/* A 150k-token vocabulary is skipped, only counted. */
START_TEST(big_vocabulary)
{
	struct gw		 w = { 0 };
	struct gguf_model	 m;
	char			 err[ERR_BYTES], tok[16];
	size_t			 i, n = 150000;

	gw_header(&w, 3, 0, 2);
	gw_kv_str(&w, "general.architecture", "llama");
	gw_key(&w, "tokenizer.ggml.tokens", V_ARR);
	gw_u32(&w, V_STR);
	gw_u64(&w, n);
	for (i = 0; i < n; i++) {
		snprintf(tok, sizeof(tok), "t%zu", i);
		gw_str(&w, tok);
	}
	ck_assert_int_eq(parse_gw(&w, &m, err), 0);
	ck_assert_uint_eq(m.vocab_size, n);
	ck_assert_int_eq(parse_bytes(w.b, w.len - 1, &m, err), -2);
	gw_free(&w);
}
END_TEST

/* Arch keys in shapes the estimate cannot use, or out of range. */
START_TEST(arch_value_odd_shapes)
{
	struct gw		 w = { 0 };
	struct gguf_model	 m;
	char			 err[ERR_BYTES];

	gw_header(&w, 3, 0, 3);		/* strings where numbers go: skipped */
	gw_kv_str(&w, "general.architecture", "llama");
	gw_kv_str(&w, "llama.block_count", "2");
	gw_key(&w, "llama.attention.head_count", V_ARR);
	gw_u32(&w, V_STR);
	gw_u64(&w, 1);
	gw_str(&w, "8");
	ck_assert_int_eq(parse_gw(&w, &m, err), 0);
	ck_assert_uint_eq(m.block_count, 0);
	ck_assert_uint_eq(m.head_count, 0);
	gw_free(&w);
	gw_header(&w, 3, 0, 2);		/* a negative layer in an array */
	gw_kv_str(&w, "general.architecture", "llama");
	gw_key(&w, "llama.attention.head_count_kv", V_ARR);
	gw_u32(&w, V_I8);
	gw_u64(&w, 2);
	gw_u8(&w, 0xff);
	gw_u8(&w, 2);
	EXPECT_PARSE(&w, -1, "head_count_kv out of range");
	gw_free(&w);
	gw_header(&w, 3, 0, 2);		/* a sum past 64 bits */
	gw_kv_str(&w, "general.architecture", "llama");
	gw_key(&w, "llama.attention.head_count_kv", V_ARR);
	gw_u32(&w, V_U64);
	gw_u64(&w, 2);
	gw_u64(&w, 1ull << 63);
	gw_u64(&w, 1ull << 63);
	EXPECT_PARSE(&w, -1, "sum overflows");
	gw_free(&w);
	gw_header(&w, 3, 0, 2);		/* no token list: ARCH.vocab_size */
	gw_kv_str(&w, "general.architecture", "llama");
	gw_kv_u32(&w, "llama.vocab_size", 32000);
	ck_assert_int_eq(parse_gw(&w, &m, err), 0);
	ck_assert_uint_eq(m.vocab_size, 32000);
	gw_free(&w);
	gw_header(&w, 3, 0, 1);
	gw_key(&w, "split.count", V_I32);
	gw_u32(&w, (uint32_t)-3);
	EXPECT_PARSE(&w, -1, "split.count out of range");
	gw_free(&w);
}
END_TEST

/*
 * The fuzzer (fuzz/fuzz_gguf.c) keeps its crashers here.  32 million runs
 * found none; this one guards the estimate's saturation, which the
 * fuzzer's parameters from the input's tail exercise.
 */
START_TEST(estimate_saturates)
{
	struct gw		 w = { 0 };
	struct gguf_model	 m;
	struct gguf_params	 p;
	struct gguf_estimate	 e;
	char			 err[ERR_BYTES];

	gw_header(&w, 3, 0, 6);
	gw_kv_str(&w, "general.architecture", "x");
	gw_kv_u32(&w, "x.block_count", UINT32_MAX);
	gw_kv_u32(&w, "x.attention.head_count", UINT32_MAX);
	gw_kv_u32(&w, "x.embedding_length", UINT32_MAX);
	gw_kv_u32(&w, "x.context_length", UINT32_MAX);
	gw_kv_u32(&w, "x.feed_forward_length", UINT32_MAX);
	ck_assert_int_eq(parse_gw(&w, &m, err), 0);
	gguf_params_default(&p);
	p.flash_attn = 0;
	p.parallel = 65535;
	p.kv_unified = 0;
	gguf_estimate(&m, &p, &e);
	ck_assert_uint_eq(e.total, UINT64_MAX);
	ck_assert_uint_eq(e.ctx, UINT32_MAX);
	gw_free(&w);
}
END_TEST

/* --- files --- */

#define TMPDIR_TEMPLATE	"/tmp/check_gguf.XXXXXX"

static char	 tmpdir[] = TMPDIR_TEMPLATE;

static void
setup(void)
{
	memcpy(tmpdir, TMPDIR_TEMPLATE, sizeof(tmpdir));
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	char	 cmd[sizeof(tmpdir) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

static const char *
tmp_path(const char *name)
{
	static char	 path[4][256];
	static int	 next;

	next = (next + 1) % 4;
	snprintf(path[next], sizeof(path[next]), "%s/%s", tmpdir, name);
	return path[next];
}

static void
write_file(const char *path, const void *data, size_t len)
{
	FILE	*fp;

	ck_assert_ptr_nonnull(fp = fopen(path, "wb"));
	ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
}

/* gguf_read_file must fail with a message holding needle. */
static void
expect_read_fails(const char *path, const char *needle)
{
	struct gguf_model	 m;
	char			 err[ERR_BYTES] = "";

	ck_assert_int_eq(gguf_read_file(path, &m, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, needle) != NULL, "\"%s\" lacks \"%s\"", err,
	    needle);
}

START_TEST(read_file_not_gguf)
{
	const char	*text = "model=tiny\nmemory=8M\n";

	expect_read_fails(tmp_path("missing.gguf"), "No such file");
	write_file(tmp_path("empty.gguf"), "", 0);
	expect_read_fails(tmp_path("empty.gguf"), "truncated");
	ck_assert_int_eq(mkdir(tmp_path("dir.gguf"), 0755), 0);
	expect_read_fails(tmp_path("dir.gguf"), "not a regular file");
	ck_assert_int_eq(mkfifo(tmp_path("fifo.gguf"), 0644), 0);
	expect_read_fails(tmp_path("fifo.gguf"), "not a regular file");
	write_file(tmp_path("text.gguf"), text, strlen(text));
	expect_read_fails(tmp_path("text.gguf"), "magic");
	expect_read_fails(tmp_path("missing.gguf"), tmpdir);	/* the path */
}
END_TEST

START_TEST(read_file_valid)
{
	struct build		 o = { 3, 64, false, true };
	struct gw		 w = { 0 };
	struct gguf_model	 m;
	char			 err[ERR_BYTES];
	size_t			 end = build_valid(&w, &o);

	write_file(tmp_path("ok.gguf"), w.b, w.len);
	ck_assert_int_eq(gguf_read_file(tmp_path("ok.gguf"), &m, err,
	    sizeof(err)), 0);
	check_valid_fields(&m, 3, 64, end);
	/* Tensor data cut short: llama-server would not load it either. */
	/* (the last tensor's padding may go: 1056 bytes, 1088 padded) */
	write_file(tmp_path("pad.gguf"), w.b, w.len - 32);
	ck_assert_int_eq(gguf_read_file(tmp_path("pad.gguf"), &m, err,
	    sizeof(err)), 0);
	write_file(tmp_path("short.gguf"), w.b, w.len - 33);
	expect_read_fails(tmp_path("short.gguf"), "past the end of the file");
	/* Cut inside the header. */
	write_file(tmp_path("head.gguf"), w.b, end - 1);
	expect_read_fails(tmp_path("head.gguf"), "truncated");
	gw_free(&w);
}
END_TEST

/* A header over the first 1 MiB read: the reader grows and retries. */
START_TEST(read_file_big_header)
{
	struct gw		 w = { 0 };
	struct gguf_model	 m;
	char			 err[ERR_BYTES], tok[24];
	size_t			 i, n = 200000;

	gw_header(&w, 3, 0, 2);
	gw_kv_str(&w, "general.architecture", "llama");
	gw_key(&w, "tokenizer.ggml.tokens", V_ARR);
	gw_u32(&w, V_STR);
	gw_u64(&w, n);
	for (i = 0; i < n; i++) {
		snprintf(tok, sizeof(tok), "token-%zu", i);
		gw_str(&w, tok);
	}
	ck_assert_uint_gt(w.len, 3u << 20);
	write_file(tmp_path("big.gguf"), w.b, w.len);
	ck_assert_int_eq(gguf_read_file(tmp_path("big.gguf"), &m, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(m.vocab_size, n);
	write_file(tmp_path("bigcut.gguf"), w.b, w.len - 3);
	expect_read_fails(tmp_path("bigcut.gguf"), "truncated");
	gw_free(&w);
}
END_TEST

/* Unknown tensor types: the whole data section counts as weights. */
START_TEST(read_file_unknown_type)
{
	static const uint64_t	 dims[1] = { 10 };
	static const unsigned char data[1000];
	struct gw		 w = { 0 };
	struct gguf_model	 m;
	char			 err[ERR_BYTES];

	one_tensor(&w, 1, dims, 200, 0);
	gw_pad(&w, 32);
	gw_put(&w, data, sizeof(data));
	write_file(tmp_path("unknown.gguf"), w.b, w.len);
	ck_assert_int_eq(gguf_read_file(tmp_path("unknown.gguf"), &m, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(m.unknown_tensors, 1);
	ck_assert_uint_eq(m.tensor_bytes, sizeof(data));
	gw_free(&w);
}
END_TEST

/* Writes part k of n of a split model: one F32 tensor of k × 32 floats. */
static void
write_part(const char *name, uint32_t split_count, uint64_t floats)
{
	struct gw	 w = { 0 };
	unsigned char	*data = calloc(floats, 4);
	uint64_t	 dims[1] = { floats };

	ck_assert_ptr_nonnull(data);
	gw_header(&w, 3, 1, split_count ? 2 : 1);
	gw_kv_str(&w, "general.architecture", "llama");
	if (split_count) {
		gw_key(&w, "split.count", V_U16);
		gw_u16(&w, (uint16_t)split_count);
	}
	gw_tensor(&w, "t", 1, dims, T_F32, 0);
	gw_pad(&w, 32);
	gw_put(&w, data, floats * 4);
	write_file(tmp_path(name), w.b, w.len);
	gw_free(&w);
	free(data);
}

START_TEST(read_file_split)
{
	struct gguf_model	 m;
	char			 err[ERR_BYTES];

	write_part("m-00001-of-00003.gguf", 3, 32);
	write_part("m-00002-of-00003.gguf", 3, 64);
	write_part("m-00003-of-00003.gguf", 3, 96);
	ck_assert_int_eq(gguf_read_file(tmp_path("m-00001-of-00003.gguf"), &m,
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(m.tensor_bytes, (32 + 64 + 96) * 4);
	ck_assert_uint_eq(m.n_tensors, 3);
	ck_assert_uint_eq(m.split_count, 3);
	/* A later part alone is read alone. */
	ck_assert_int_eq(gguf_read_file(tmp_path("m-00002-of-00003.gguf"), &m,
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(m.tensor_bytes, 64 * 4);
	/* A missing part: llama-server would fail, so do we. */
	ck_assert_int_eq(unlink(tmp_path("m-00003-of-00003.gguf")), 0);
	expect_read_fails(tmp_path("m-00001-of-00003.gguf"),
	    "m-00003-of-00003.gguf");
	/* split.count against the name. */
	write_part("n-00001-of-00002.gguf", 3, 32);
	write_part("n-00002-of-00002.gguf", 3, 32);
	expect_read_fails(tmp_path("n-00001-of-00002.gguf"), "split.count");
	/* Names that only look split. */
	write_part("o-00001-of-00001.gguf", 0, 32);
	ck_assert_int_eq(gguf_read_file(tmp_path("o-00001-of-00001.gguf"), &m,
	    err, sizeof(err)), 0);
	write_part("p-0001-of-00002.gguf", 0, 32);
	ck_assert_int_eq(gguf_read_file(tmp_path("p-0001-of-00002.gguf"), &m,
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(m.tensor_bytes, 32 * 4);
}
END_TEST

/*
 * A model from the real make-tiny-gguf: $MAKE_TINY_GGUF (which .ci/run
 * and the README's command export), else $POOLD_LLAMA_PREFIX/bin, else
 * where tests/llama-setup.sh puts it.  Not found: a SKIP, which fails in
 * CI.
 */
START_TEST(read_file_real_model)
{
	char			 tool[512], cmd[1024];
	const char		*env = getenv("MAKE_TINY_GGUF");
	const char		*prefix = getenv("POOLD_LLAMA_PREFIX");
	const char		*home = getenv("HOME");
	struct gguf_model	 m;
	struct stat		 st;
	char			 err[ERR_BYTES];

	if (env != NULL && env[0] != '\0')
		snprintf(tool, sizeof(tool), "%s", env);
	else if (prefix != NULL)
		snprintf(tool, sizeof(tool), "%s/bin/make-tiny-gguf", prefix);
	else
		snprintf(tool, sizeof(tool), "%s/.cache/poold-llama/bin/"
		    "make-tiny-gguf", home != NULL ? home : "/root");
	if (access(tool, X_OK) != 0) {
		tl_skip("read_file_real_model", "%s not found (set "
		    "MAKE_TINY_GGUF or run tests/llama-setup.sh)", tool);
		return;
	}
	snprintf(cmd, sizeof(cmd), "%s %s 1 --ctx 1024 >/dev/null", tool,
	    tmp_path("real.gguf"));
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(gguf_read_file(tmp_path("real.gguf"), &m, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(stat(tmp_path("real.gguf"), &st), 0);
	ck_assert_str_eq(m.arch, "llama");
	ck_assert_uint_eq(m.version, 3);
	ck_assert_uint_eq(m.block_count, 2);
	ck_assert_uint_eq(m.context_length, 1024);
	ck_assert_uint_eq(m.embedding_length, 64);
	ck_assert_uint_eq(m.head_count, 4);
	ck_assert_uint_eq(m.key_length, 16);
	ck_assert_uint_eq(m.vocab_size, 440);
	ck_assert_uint_eq(m.unknown_tensors, 0);
	ck_assert_uint_gt(m.tensor_bytes, 0);
	ck_assert_uint_le(m.data_offset + m.tensor_bytes, (uint64_t)st.st_size);
	ck_assert_uint_eq(m.data_offset + m.data_end, (uint64_t)st.st_size);
}
END_TEST

/* --- the server's command line --- */

struct argv_case {
	const char	*argv[10];
	uint32_t	 ctx, parallel, ubatch, batch, k_type, v_type;
	int		 kv_unified, flash_attn;
	int64_t		 cache_ram_mib;
};

#define D_CTX	0, 0, 0, 0, GGUF_CACHE_F16, GGUF_CACHE_F16, -1, 1, 8192

static const struct argv_case argv_cases[] = {
	{ { "llama-server", NULL }, D_CTX },
	{ { "llama-server", "-m", "x.gguf", "-c", "4096", "--port", "8080",
	    NULL }, 4096, 0, 0, 0, 1, 1, -1, 1, 8192 },
	{ { "--ctx-size", "8192", NULL }, 8192, 0, 0, 0, 1, 1, -1, 1, 8192 },
	{ { "--ctx-size=1024", NULL }, 1024, 0, 0, 0, 1, 1, -1, 1, 8192 },
	{ { "-c", "512", "-c", "1024", NULL }, 1024, 0, 0, 0, 1, 1, -1, 1,
	    8192 },
	{ { "-c", "0", NULL }, D_CTX },
	{ { "-c", "abc", NULL }, D_CTX },
	{ { "-c", "-5", NULL }, D_CTX },
	{ { "-c", "99999999999", NULL }, D_CTX },
	{ { "-c", "12k", NULL }, D_CTX },
	{ { "-c", "", NULL }, D_CTX },
	{ { "-c", NULL }, D_CTX },
	{ { "--ctx-sizes", "5", "-cc", "5", "c", "5", NULL }, D_CTX },
	{ { "-np", "4", NULL }, 0, 4, 0, 0, 1, 1, -1, 1, 8192 },
	{ { "--parallel", "2", NULL }, 0, 2, 0, 0, 1, 1, -1, 1, 8192 },
	{ { "--parallel=3", NULL }, 0, 3, 0, 0, 1, 1, -1, 1, 8192 },
	{ { "-ctk", "q8_0", "-ctv", "q4_0", NULL }, 0, 0, 0, 0,
	    GGUF_CACHE_Q8_0, GGUF_CACHE_Q4_0, -1, 1, 8192 },
	{ { "--cache-type-k", "bf16", "--cache-type-v=iq4_nl", NULL }, 0, 0,
	    0, 0, GGUF_CACHE_BF16, GGUF_CACHE_IQ4_NL, -1, 1, 8192 },
	{ { "-ctk", "f32", "-ctv", "q5_1", NULL }, 0, 0, 0, 0,
	    GGUF_CACHE_F32, GGUF_CACHE_Q5_1, -1, 1, 8192 },
	{ { "-ctk", "q4_1", "-ctv", "q5_0", NULL }, 0, 0, 0, 0,
	    GGUF_CACHE_Q4_1, GGUF_CACHE_Q5_0, -1, 1, 8192 },
	{ { "-ctk", "bogus", "-ctv", "q2_k", NULL }, D_CTX },
	{ { "-ub", "128", "-b", "256", NULL }, 0, 0, 128, 256, 1, 1, -1, 1,
	    8192 },
	{ { "--ubatch-size=64", "--batch-size", "96", NULL }, 0, 0, 64, 96, 1,
	    1, -1, 1, 8192 },
	{ { "-fa", "off", NULL }, 0, 0, 0, 0, 1, 1, -1, 0, 8192 },
	{ { "--flash-attn=off", NULL }, 0, 0, 0, 0, 1, 1, -1, 0, 8192 },
	{ { "-fa", "off", "-fa", "auto", NULL }, D_CTX },
	{ { "-fa", "off", "-fa", NULL }, D_CTX },	/* bare: on */
	{ { "-fa", "-c", "10", NULL }, 10, 0, 0, 0, 1, 1, -1, 1, 8192 },
	{ { "-kvu", NULL }, 0, 0, 0, 0, 1, 1, 1, 1, 8192 },
	{ { "-kvu", "--no-kv-unified", NULL }, 0, 0, 0, 0, 1, 1, 0, 1, 8192 },
	{ { "-cram", "0", NULL }, 0, 0, 0, 0, 1, 1, -1, 1, 0 },
	{ { "--cache-ram=-1", NULL }, 0, 0, 0, 0, 1, 1, -1, 1, -1 },
	{ { "--cache-ram", "-2", NULL }, D_CTX },
	{ { "--cache-ram", "2048", NULL }, 0, 0, 0, 0, 1, 1, -1, 1, 2048 },
};

START_TEST(params_from_argv)
{
	const struct argv_case	*c = &argv_cases[_i];
	struct gguf_params	 p;

	memset(&p, 0xa5, sizeof(p));
	gguf_params_from_argv((char *const *)c->argv, &p);
	ck_assert_uint_eq(p.ctx, c->ctx);
	ck_assert_uint_eq(p.parallel, c->parallel);
	ck_assert_uint_eq(p.ubatch, c->ubatch);
	ck_assert_uint_eq(p.batch, c->batch);
	ck_assert_uint_eq(p.k_type, c->k_type);
	ck_assert_uint_eq(p.v_type, c->v_type);
	ck_assert_int_eq(p.kv_unified, c->kv_unified);
	ck_assert_int_eq(p.flash_attn, c->flash_attn);
	ck_assert_int_eq(p.cache_ram_mib, c->cache_ram_mib);
}
END_TEST

START_TEST(params_from_null_argv)
{
	struct gguf_params	 p;

	gguf_params_from_argv(NULL, &p);
	ck_assert_uint_eq(p.ctx, 0);
	ck_assert_uint_eq(p.k_type, GGUF_CACHE_F16);
}
END_TEST

/* --- the estimate --- */

/* make-tiny-gguf's 100 MB model: 10 layers, 512 wide, 8 heads. */
static struct gguf_model
m100(void)
{
	struct gguf_model	 m;

	memset(&m, 0, sizeof(m));
	m.tensor_bytes = 106702848;
	m.block_count = 10;
	m.context_length = 2048;
	m.embedding_length = 512;
	m.feed_forward_length = 1024;
	m.head_count = m.head_count_kv = 8;
	m.kv_heads_total = 80;
	m.key_length = m.value_length = 64;
	m.vocab_size = 440;
	return m;
}

#define RUNTIME_440	((26ull << 20) + 440 * 256)

struct estimate_case {
	const char	*argv[10];
	uint64_t	 cells, kv, compute;
};

/*
 * kv = cells × 80 heads × 64 × (K + V bytes); compute = ubatch ×
 * (20 × 512 + 12 × 1024 + per_cell × cells).  The first two equal what
 * llama-server logged for this model (40.00 MiB KV, 13.02 MiB compute).
 */
static const struct estimate_case estimate_cases[] = {
	{ { "-c", "2048", "-np", "1", NULL }, 2048, 2048 * 20480ull,
	    512 * (22528ull + 2 * 2048) },
	{ { NULL }, 2048, 2048 * 20480ull, 512 * (22528ull + 2 * 2048) },
	{ { "-c", "4096", "-np", "4", NULL }, 4096, 4096 * 20480ull,
	    512 * (22528ull + 2 * 4096) },
	/* 3 slots of 1000/3 cells, each padded to 256 (llama-server: 1536) */
	{ { "-c", "1000", "-np", "3", NULL }, 1536, 1536 * 20480ull,
	    512 * (22528ull + 2 * 1536) },
	/* unified: one cache of 300 → 512 cells; ubatch ≤ -c */
	{ { "-c", "300", "-np", "2", "-kvu", NULL }, 512, 512 * 20480ull,
	    300 * (22528ull + 2 * 512) },
	/* q8_0: 5120 elements are 160 blocks of 34 bytes, K and V */
	{ { "-c", "4096", "-np", "1", "-ctk", "q8_0", "-ctv", "q8_0", NULL },
	    4096, 4096 * 2 * 5440ull, 512 * (22528ull + 2 * 4096) },
	{ { "-c", "4096", "-np", "1", "-ctk", "q4_0", "-ctv", "f32", NULL },
	    4096, 4096 * (2880ull + 20480), 512 * (22528ull + 2 * 4096) },
	/* without flash attention the KQ matrix: 4 bytes × 8 heads a cell */
	{ { "-c", "4096", "-np", "1", "-fa", "off", NULL }, 4096,
	    4096 * 20480ull, 512 * (22528ull + 34 * 4096) },
	{ { "-c", "4096", "-np", "1", "-ub", "128", "-b", "64", NULL }, 4096,
	    4096 * 20480ull, 64 * (22528ull + 2 * 4096) },
};

START_TEST(estimate_table)
{
	const struct estimate_case	*c = &estimate_cases[_i];
	struct gguf_model		 m = m100();
	struct gguf_params		 p;
	struct gguf_estimate		 e;

	gguf_params_from_argv((char *const *)c->argv, &p);
	gguf_estimate(&m, &p, &e);
	ck_assert_uint_eq(e.ctx, c->cells);
	ck_assert_int_eq(e.kv_known, 1);
	ck_assert_uint_eq(e.weights, m.tensor_bytes);
	ck_assert_uint_eq(e.kv_cache, c->kv);
	ck_assert_uint_eq(e.compute, c->compute);
	ck_assert_uint_eq(e.runtime, RUNTIME_440);
	ck_assert_uint_eq(e.overhead, e.compute + e.runtime);
	ck_assert_uint_eq(e.total, e.weights + e.kv_cache + e.overhead);
	ck_assert_uint_eq(e.prompt_cache_max, 8192 * MiB);
}
END_TEST

START_TEST(estimate_edges)
{
	struct gguf_model	 m;
	struct gguf_params	 p;
	struct gguf_estimate	 e;

	/* No attention shape: weights and runtime only. */
	memset(&m, 0, sizeof(m));
	m.tensor_bytes = 1000;
	gguf_params_default(&p);
	gguf_estimate(&m, &p, &e);
	ck_assert_int_eq(e.kv_known, 0);
	ck_assert_uint_eq(e.kv_cache, 0);
	ck_assert_uint_eq(e.compute, 0);
	ck_assert_uint_eq(e.ctx, 4096);		/* nobody said */
	ck_assert_uint_eq(e.total, 1000 + (26ull << 20));
	/* MoE: the used experts' width, when wider than the dense one. */
	m = m100();
	m.feed_forward_length = 0;
	m.expert_ff_length = 1408;
	m.expert_used_count = 8;
	gguf_estimate(&m, &p, &e);
	ck_assert_uint_eq(e.compute, 512 * (20 * 512 + 12 * 11264ull +
	    2 * 2048));
	/* No feed-forward length at all: 4 × n_embd. */
	m.expert_ff_length = 0;
	gguf_estimate(&m, &p, &e);
	ck_assert_uint_eq(e.compute, 512 * (20 * 512 + 12 * 2048ull +
	    2 * 2048));
	/* An unknown cache type counts as f16. */
	m = m100();
	p.k_type = p.v_type = 77;
	gguf_estimate(&m, &p, &e);
	ck_assert_uint_eq(e.kv_cache, 2048 * 20480ull);
	/* The prompt cache's limit. */
	p.cache_ram_mib = -1;
	gguf_estimate(&m, &p, &e);
	ck_assert_uint_eq(e.prompt_cache_max, UINT64_MAX);
	p.cache_ram_mib = 0;
	gguf_estimate(&m, &p, &e);
	ck_assert_uint_eq(e.prompt_cache_max, 0);
	/* Sizes that do not fit in 64 bits saturate. */
	m.kv_heads_total = UINT64_MAX / 2;
	m.key_length = UINT32_MAX;
	gguf_estimate(&m, &p, &e);
	ck_assert_uint_eq(e.kv_cache, UINT64_MAX);
	ck_assert_uint_eq(e.total, UINT64_MAX);
}
END_TEST

/*
 * The calibration above, kept: the formula against the RSS llama-server
 * had after load, for make-tiny-gguf's models (shapes as they read).
 */
struct calibration {
	const char	*model;
	uint64_t	 tensor_bytes;
	uint32_t	 layers, embd, heads;
	uint32_t	 ctx;
	uint64_t	 rss_kib;	/* VmRSS after load */
};

static const struct calibration calibrations[] = {
	{ "m0", 554240, 2, 64, 4, 512, 26032 },
	{ "m0", 554240, 2, 64, 4, 2048, 26756 },
	{ "m0", 554240, 2, 64, 4, 8192, 30164 },
	{ "m20", 21890048, 8, 256, 4, 512, 50824 },
	{ "m20", 21890048, 8, 256, 4, 2048, 63164 },
	{ "m20", 21890048, 8, 256, 4, 8192, 112584 },
	{ "m100", 106702848, 10, 512, 8, 512, 140060 },
	{ "m100", 106702848, 10, 512, 8, 2048, 170756 },
	{ "m100", 106702848, 10, 512, 8, 8192, 293816 },
	{ "m300", 309494784, 13, 768, 12, 512, 347912 },
	{ "m300", 309494784, 13, 768, 12, 2048, 407876 },
	{ "m300", 309494784, 13, 768, 12, 8192, 647760 },
};

START_TEST(estimate_calibration)
{
	const struct calibration	*c = &calibrations[_i];
	struct gguf_model		 m;
	struct gguf_params		 p;
	struct gguf_estimate		 e;
	double				 rss = (double)c->rss_kib * 1024;
	double				 tol, err;

	memset(&m, 0, sizeof(m));
	m.tensor_bytes = c->tensor_bytes;
	m.block_count = c->layers;
	m.context_length = 2048;
	m.embedding_length = c->embd;
	m.feed_forward_length = 2 * c->embd;
	m.head_count = m.head_count_kv = c->heads;
	m.kv_heads_total = (uint64_t)c->layers * c->heads;
	m.key_length = m.value_length = c->embd / c->heads;
	m.vocab_size = 440;
	gguf_params_default(&p);
	p.ctx = c->ctx;
	p.parallel = 1;
	gguf_estimate(&m, &p, &e);
	err = (double)e.total - rss;
	tol = rss * 0.15 > 32.0 * MiB ? rss * 0.15 : 32.0 * MiB;
	ck_assert_msg(err >= -tol && err <= tol, "%s -c %u: estimate %.1f MiB, "
	    "measured %.1f MiB", c->model, c->ctx, (double)e.total / MiB,
	    rss / MiB);
	/* And on the safe side: never below what was measured. */
	ck_assert_msg(err >= 0, "%s -c %u: estimate below RSS", c->model,
	    c->ctx);
}
END_TEST

/* --- main --- */

#define N(a)	((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
gguf_suite(void)
{
	Suite	*s = suite_create("gguf");
	TCase	*tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, parse_valid_v3);
	tcase_add_test(tc, parse_valid_v2);
	tcase_add_test(tc, parse_truncated_everywhere);
	tcase_add_test(tc, parse_mutated_everywhere);
	tcase_add_test(tc, bad_magic);
	tcase_add_test(tc, bad_version);
	tcase_add_test(tc, huge_counts);
	tcase_add_test(tc, huge_strings);
	tcase_add_test(tc, bad_arrays);
	tcase_add_test(tc, unknown_value_types);
	tcase_add_test(tc, bad_tensors);
	tcase_add_test(tc, unknown_tensor_types);
	tcase_add_test(tc, bad_alignment);
	tcase_add_test(tc, bad_arch_values);
	tcase_add_test(tc, arch_value_shapes);
	tcase_add_test(tc, arch_value_odd_shapes);
	tcase_add_test(tc, big_vocabulary);
	tcase_add_test(tc, estimate_saturates);
	suite_add_tcase(s, tc);

	tc = tcase_create("file");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, read_file_not_gguf);
	tcase_add_test(tc, read_file_valid);
	tcase_add_test(tc, read_file_big_header);
	tcase_add_test(tc, read_file_unknown_type);
	tcase_add_test(tc, read_file_split);
	tcase_add_test(tc, read_file_real_model);
	suite_add_tcase(s, tc);

	tc = tcase_create("estimate");
	tcase_add_loop_test(tc, params_from_argv, 0, N(argv_cases));
	tcase_add_test(tc, params_from_null_argv);
	tcase_add_loop_test(tc, estimate_table, 0, N(estimate_cases));
	tcase_add_test(tc, estimate_edges);
	tcase_add_loop_test(tc, estimate_calibration, 0, N(calibrations));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(gguf_suite(), CK_NORMAL);
}
