/*
 * fuzz_gguf.c — libFuzzer target for the GGUF header reader.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isupervisord \
 *       -Iprotocol fuzz/fuzz_gguf.c supervisord/gguf.c -o build/fuzz_gguf
 *   build/fuzz_gguf -max_total_time=300 -rss_limit_mb=2048 fuzz/corpus/gguf
 *
 * Parses the input; when it parses, estimates it under the default
 * parameters and under parameters taken from the input's last bytes, so
 * the estimate's arithmetic is fuzzed too.  Anything but 0, -1 or -2, or
 * a message that is not a terminated string, is a bug.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static uint32_t
tail_u32(const uint8_t *data, size_t size, size_t from_end)
{
	uint32_t	 v = 0;
	size_t		 i;

	for (i = 0; i < 4 && from_end + i < size; i++)
		v = v << 8 | data[size - 1 - from_end - i];
	return v;
}

/* Parameters from the input's tail: wild values the argv parser allows. */
static void
params_from_tail(const uint8_t *data, size_t size, struct gguf_params *p)
{
	gguf_params_default(p);
	p->ctx = tail_u32(data, size, 0);
	p->parallel = tail_u32(data, size, 4) & 0xffff;
	p->ubatch = tail_u32(data, size, 8);
	p->batch = tail_u32(data, size, 12);
	p->k_type = tail_u32(data, size, 16) & 0x3f;
	p->v_type = tail_u32(data, size, 20) & 0x3f;
	p->kv_unified = (int)(tail_u32(data, size, 24) % 3) - 1;
	p->flash_attn = (int)(tail_u32(data, size, 28) & 1);
	p->cache_ram_mib = (int64_t)(int32_t)tail_u32(data, size, 32);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gguf_model	 m;
	struct gguf_params	 p;
	struct gguf_estimate	 e;
	char			 err[128];
	int			 rc;

	memset(err, 'x', sizeof(err));
	rc = gguf_parse(data, size, &m, err, sizeof(err));
	if (rc != 0 && rc != -1 && rc != -2)
		abort();
	if (rc != 0 && memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	if (rc != 0)
		return 0;
	if (m.arch[sizeof(m.arch) - 1] != '\0')
		abort();
	gguf_params_default(&p);
	gguf_estimate(&m, &p, &e);
	if (e.total < e.weights || e.overhead < e.runtime)
		abort();
	params_from_tail(data, size, &p);
	gguf_estimate(&m, &p, &e);
	if (e.total < e.kv_cache || e.overhead < e.compute)
		abort();
	return 0;
}
