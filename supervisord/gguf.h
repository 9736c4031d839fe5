/*
 * gguf.h — a model's memory, estimated from its GGUF header.
 *
 * A small, bounds-checked reader of our own: magic, version, metadata
 * key/values, tensor infos.  It never trusts a length in the file, never
 * reads past what it was given, and answers -1 (the caller falls back to
 * per_model) for anything that is not a well-formed GGUF.
 */
#ifndef POOLD_GGUF_H
#define POOLD_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* How the server will run the model: from its command line. */
struct gguf_params {
	uint32_t	ctx;		/* -c/--ctx-size; 0: the model's own */
	uint32_t	parallel;	/* -np/--parallel; 0: 1 */
	/* bytes per KV element ×1000: f16 2000, q8_0 1063, q4_0 563 … */
	uint32_t	k_milli, v_milli;
};

/* What the header says (only what the estimate needs). */
struct gguf_model {
	uint32_t	version;
	char		arch[64];	/* general.architecture */
	uint64_t	n_tensors;
	uint64_t	tensor_bytes;	/* sum of the tensors' data sizes */
	uint64_t	data_offset;	/* where tensor data starts */
	uint32_t	block_count;	/* ARCH.block_count */
	uint32_t	context_length;	/* ARCH.context_length */
	uint32_t	embedding_length;
	uint32_t	head_count;
	uint32_t	head_count_kv;	/* = head_count when absent */
	uint32_t	key_length;	/* ARCH.attention.key_length, or embd/heads */
	uint32_t	value_length;
	uint64_t	vocab_size;	/* tokenizer.ggml.tokens length */
};

struct gguf_estimate {
	uint64_t	weights;
	uint64_t	kv_cache;
	uint64_t	overhead;	/* compute buffers and runtime, documented */
	uint64_t	total;
	uint32_t	ctx;		/* the context it assumed (all slots) */
};

/*
 * Parses a GGUF header held in buf[0..len).  Returns 0, or -1 with a
 * message; -2 if buf ends before the header does (read more and retry).
 * Pure: no I/O; the fuzz target drives this.
 */
int	gguf_parse(const unsigned char *buf, size_t len, struct gguf_model *,
	    char *err, size_t errlen);

/* Reads a file's header (bounded) and parses it.  0, or -1 with a message. */
int	gguf_read_file(const char *path, struct gguf_model *, char *err,
	    size_t errlen);

/* The estimate for a parsed model run with params. */
void	gguf_estimate(const struct gguf_model *, const struct gguf_params *,
	    struct gguf_estimate *);

/* Fills params from a server's argv (-c, --ctx-size, -np, --parallel,
 * -ctk/--cache-type-k, -ctv/--cache-type-v, and their --x=N forms). */
void	gguf_params_from_argv(char *const argv[], struct gguf_params *);

#endif /* POOLD_GGUF_H */
