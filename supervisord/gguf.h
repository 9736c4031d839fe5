/*
 * gguf.h — a model's memory, estimated from its GGUF header.
 *
 * A small, bounds-checked reader of our own: magic, version, metadata
 * key/values, tensor infos.  It never trusts a length in the file, never
 * reads past what it was given, and answers -1 (the caller falls back to
 * per_model) for anything that is not a well-formed GGUF.
 *
 * The estimate is calibrated against the real llama-server (CPU build);
 * the formula and the measurements are in gguf.c and tests/check_gguf.c.
 */
#ifndef POOLD_GGUF_H
#define POOLD_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Headers bigger than this are refused (vocabularies make them large). */
#define GGUF_HEADER_MAX_BYTES	(256u << 20)

/* The ggml types a KV cache can have (llama-server's -ctk/-ctv). */
enum gguf_cache_type {
	GGUF_CACHE_F32		= 0,
	GGUF_CACHE_F16		= 1,
	GGUF_CACHE_Q4_0		= 2,
	GGUF_CACHE_Q4_1		= 3,
	GGUF_CACHE_Q5_0		= 6,
	GGUF_CACHE_Q5_1		= 7,
	GGUF_CACHE_Q8_0		= 8,
	GGUF_CACHE_IQ4_NL	= 20,
	GGUF_CACHE_BF16		= 30,
};

/*
 * How the server will run the model: from its command line.  Zero (and
 * -1 where noted) means "llama-server's default"; gguf_params_from_argv
 * starts from gguf_params_default.
 */
struct gguf_params {
	uint32_t	ctx;		/* -c: TOTAL context (all slots); 0: model's */
	uint32_t	parallel;	/* -np: slots; 0: auto (4 slots, unified KV) */
	int		kv_unified;	/* -kvu 1, -no-kvu 0; -1: auto */
	int		flash_attn;	/* -fa: 0 off; 1 on or auto (the default) */
	uint32_t	ubatch;		/* -ub; 0: 512 */
	uint32_t	batch;		/* -b; 0: 2048 */
	uint32_t	k_type, v_type;	/* enum gguf_cache_type; -ctk/-ctv */
	int64_t		cache_ram_mib;	/* --cache-ram: -1 no limit; default 8192 */
};

/* What the header says (only what the estimate needs). */
struct gguf_model {
	uint32_t	version;
	char		arch[64];	/* general.architecture */
	uint32_t	alignment;	/* general.alignment, default 32 */
	uint32_t	split_count;	/* split.count; 0 when absent */
	uint64_t	n_tensors;
	uint64_t	unknown_tensors; /* of a ggml type we cannot size */
	uint64_t	tensor_bytes;	/* sum of the known tensors' data sizes */
	uint64_t	data_offset;	/* where tensor data starts in the file */
	uint64_t	data_end;	/* bytes of data the tensors claim, from
					   data_offset (offset + size, largest) */
	uint32_t	block_count;	/* ARCH.block_count */
	uint32_t	context_length;	/* ARCH.context_length */
	uint32_t	embedding_length;
	uint32_t	feed_forward_length; /* largest, when per layer */
	uint32_t	expert_ff_length;   /* ARCH.expert_feed_forward_length */
	uint32_t	expert_used_count;
	uint32_t	head_count;	/* largest, when per layer */
	uint32_t	head_count_kv;	/* = head_count when absent */
	uint64_t	kv_heads_total;	/* Σ over layers of head_count_kv */
	uint32_t	key_length;	/* ARCH.attention.key_length, or embd/heads */
	uint32_t	value_length;
	uint64_t	vocab_size;	/* tokenizer.ggml.tokens length */
};

struct gguf_estimate {
	uint64_t	weights;	/* tensor data: mmapped, counted in RSS */
	uint64_t	kv_cache;
	uint64_t	compute;	/* ggml compute buffer (worst case) */
	uint64_t	runtime;	/* program, libraries, heap, vocabulary */
	uint64_t	overhead;	/* compute + runtime */
	uint64_t	total;		/* weights + kv_cache + overhead */
	uint32_t	ctx;		/* KV cells it assumed (all slots) */
	int		kv_known;	/* 0: the header lacked the attention
					   shape; kv_cache is 0 */
	/*
	 * What llama-server's prompt cache (--cache-ram) may add later, as
	 * requests come: not in total.  UINT64_MAX when unlimited.
	 */
	uint64_t	prompt_cache_max;
};

/*
 * Parses a GGUF header held in buf[0..len).  Returns 0, or -1 with a
 * message; -2 if buf ends before the header does (read more and retry).
 * Pure: no I/O; the fuzz target drives this.  err may be NULL.
 */
int	gguf_parse(const unsigned char *buf, size_t len, struct gguf_model *,
	    char *err, size_t errlen);

/*
 * Reads a file's header (at most GGUF_HEADER_MAX_BYTES) and parses it;
 * checks the tensor data fits in the file.  For the first part of a split
 * model (NAME-00001-of-0000N.gguf) the other parts' tensor bytes are
 * added.  0, or -1 with a message (errno is not meaningful).
 */
int	gguf_read_file(const char *path, struct gguf_model *, char *err,
	    size_t errlen);

/*
 * gguf_read_file reading at most max bytes of each file's header (max is
 * lowered to GGUF_HEADER_MAX_BYTES).  0; GGUF_HEADER_TOO_LONG if a header
 * goes on past max bytes (the file may be fine: the caller chose not to
 * read that much); -1 with a message for anything else.
 */
#define GGUF_HEADER_TOO_LONG	(-2)
int	gguf_read_file_max(const char *path, uint64_t max, struct gguf_model *,
	    char *err, size_t errlen);

/* llama-server's defaults: everything 0 or auto, f16 cache, 8192 MiB. */
void	gguf_params_default(struct gguf_params *);

/* The estimate for a parsed model run with params. */
void	gguf_estimate(const struct gguf_model *, const struct gguf_params *,
	    struct gguf_estimate *);

/*
 * Fills params from a server's argv (NULL-terminated): -c/--ctx-size,
 * -np/--parallel, -ctk/--cache-type-k, -ctv/--cache-type-v,
 * -ub/--ubatch-size, -b/--batch-size, -fa/--flash-attn,
 * -kvu/--kv-unified, -no-kvu/--no-kv-unified, -cram/--cache-ram, and the
 * --long=VALUE forms.  Starts from gguf_params_default; a value that does
 * not parse leaves the default; the last occurrence wins.
 */
void	gguf_params_from_argv(char *const argv[], struct gguf_params *);

#endif /* POOLD_GGUF_H */
