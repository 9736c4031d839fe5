/*
 * check_memtruth.c — memory truth on Apple Silicon and with CUDA GPUs,
 * tested where there is neither: the pure decisions of memtruth.c with
 * figures recorded on real machines or from Apple's and NVIDIA's
 * documentation (the source is cited next to each), and the pool core's
 * second budget, the GPU one (driven like check_pool.c drives it, with
 * the recorder of pool_recorder.h).
 */
#include <inttypes.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "memtruth.h"
#include "poold.h"
#include "pool.h"
#include "pool_recorder.h"
#include "testlib.h"

#define G		(UINT64_C(1) << 30)
#define M		(UINT64_C(1) << 20)
#define T0		((pool_ms)1000000)
#define LONG_MS		((pool_ms)600000)

/* --- macOS: the GPU working-set limit --- */

/*
 * recommendedMaxWorkingSetSize as ggml-metal logs it, in MiB, on Macs
 * with the sysctl left alone (macOS 13-15):
 * - 32 GiB M2 Max: 21845.34 MB (ollama/ollama issue #434);
 * - 96 GiB M2 Max: 73728.00 MB (ggml-org/llama.cpp issue #3213);
 * - 64 GiB M3 Max: 48 GB, 128 GiB M3 Max: 96 GB, 192 GiB M2 Ultra: 144 GB
 *   (raullenchai/Rapid-MLX pull request #183, the max_recommended table).
 * The default share must reproduce them to the MiB.  The same table
 * gives 239 GB for a 256 GiB M3 Ultra (a newer macOS, more than 3/4):
 * the share, a fallback, must err low there.
 */
START_TEST(metal_default_share_matches_recorded_macs)
{
	static const struct { uint64_t ram_gib; double mib; } mac[] = {
		{ 32, 21845.34 }, { 64, 49152.0 },
		{ 96, 73728.0 }, { 128, 98304.0 }, { 192, 147456.0 },
	};

	for (size_t i = 0; i < sizeof(mac) / sizeof(mac[0]); i++) {
		double got = (double)memtruth_metal_default_share(
		    mac[i].ram_gib * G) / (double)M;

		ck_assert_msg(got > mac[i].mib - 0.01 &&
		    got < mac[i].mib + 0.01,
		    "%" PRIu64 " GiB: %.2f MiB, the Mac said %.2f",
		    mac[i].ram_gib, got, mac[i].mib);
	}
	ck_assert_uint_lt(memtruth_metal_default_share(256 * G),
	    UINT64_C(239000000000));
}
END_TEST

/*
 * macOS 26 on a 128 GiB M5 Max reports 107.52 GiB stock, and 112.00 GiB
 * with iogpu.wired_limit_mb = 114688 (antirez/ds4 pull request #893):
 * newer systems give the GPU more than the old share.  What Metal
 * reports therefore wins over the share, the sysctl over both, and the
 * share (the fallback) errs low, never high.
 */
START_TEST(darwin_gpu_limit_order)
{
	struct darwin_gpu_facts f = { .ram = 128 * G,
	    .metal_working_set = (uint64_t)(107.52 * (double)G) };
	enum gpu_limit_source src;
	uint64_t lim;

	lim = memtruth_darwin_gpu_limit(&f, 0, &src);
	ck_assert_int_eq(src, GPU_LIMIT_METAL);
	ck_assert_uint_eq(lim, f.metal_working_set);
	ck_assert_uint_lt(memtruth_metal_default_share(f.ram), lim);

	f.wired_limit_mb = 114688;		/* 112 GiB */
	lim = memtruth_darwin_gpu_limit(&f, 0, &src);
	ck_assert_int_eq(src, GPU_LIMIT_WIRED_SYSCTL);
	ck_assert_uint_eq(lim, 112 * G);

	lim = memtruth_darwin_gpu_limit(&f, 64 * G, &src);
	ck_assert_int_eq(src, GPU_LIMIT_CONFIG);
	ck_assert_uint_eq(lim, 64 * G);

	/* Nothing to read: the share.  A 512 GB Mac Studio: 384 GiB. */
	f = (struct darwin_gpu_facts){ .ram = 512 * G };
	lim = memtruth_darwin_gpu_limit(&f, 0, &src);
	ck_assert_int_eq(src, GPU_LIMIT_DEFAULT_SHARE);
	ck_assert_uint_eq(lim, 384 * G);
	ck_assert_str_eq(gpu_limit_source_name(src), "default share of RAM");
}
END_TEST

/* A wild sysctl or config value is held to the RAM, without overflow. */
START_TEST(darwin_gpu_limit_at_most_ram)
{
	struct darwin_gpu_facts f = { .ram = 16 * G,
	    .wired_limit_mb = UINT64_MAX / 2 };
	enum gpu_limit_source src;

	ck_assert_uint_eq(memtruth_darwin_gpu_limit(&f, 0, &src), 16 * G);
	f.wired_limit_mb = 0;
	ck_assert_uint_eq(memtruth_darwin_gpu_limit(&f, 1000 * G, &src),
	    16 * G);
	f.metal_working_set = 20 * G;
	ck_assert_uint_eq(memtruth_darwin_gpu_limit(&f, 0, &src), 16 * G);
}
END_TEST

/* --- macOS: one process --- */

/*
 * A Metal llama-server's KV cache and compute buffers are IOKit-mapped
 * and count in phys_footprint (XNU osfmk/kern/task.c, the phys_footprint
 * ledger: internal + compressed + iokit_mapped + purgeable_nonvolatile +
 * page_table), not in the resident size; mmap'd weights are file-backed
 * and count in the resident size only.  Measured on a node process: 58.4
 * MB resident, 91 MB footprint (metaproc's memory accounting reference).
 */
START_TEST(darwin_process_is_the_larger)
{
	ck_assert_uint_eq(memtruth_darwin_process_bytes(91 * M, 58 * M),
	    91 * M);
	/* weights mmap'd, little else: resident leads */
	ck_assert_uint_eq(memtruth_darwin_process_bytes(2 * G, 20 * G),
	    20 * G);
	ck_assert_uint_eq(memtruth_darwin_process_bytes(0, 0), 0);
}
END_TEST

/* --- macOS: available without pressure --- */

/*
 * The same instant on a 34.36 GB Apple Silicon host (metaproc's memory
 * accounting reference): kern.memorystatus_level 49, i.e. 16.84 GB by
 * the kernel's gauge, while only 0.49 GB were free and 11.58 GB were in
 * the compressor.  The gauge counts active pages (XNU vm_page.h:
 * AVAILABLE_NON_COMPRESSED_MEMORY = active + inactive + free +
 * speculative); our figure must stay far below it.  Pages are 16 KiB.
 */
START_TEST(darwin_available_below_the_gauge)
{
	const uint64_t page = 16384;
	struct darwin_vm_facts f = {
		.page_size = page, .total = 34359738368ULL,
		.free_pages = 490000000ULL / page,
		.external_pages = 3000000000ULL / page,
		.purgeable_pages = 200000000ULL / page,
		.level = 49,
	};
	uint64_t avail = memtruth_darwin_available(&f);

	ck_assert_uint_eq(avail, (f.free_pages + f.external_pages +
	    f.purgeable_pages) * page);
	ck_assert_uint_lt(avail, f.total / 100 * 49);

	/* The gauge caps it: a host at 5 % has at most 5 % to give. */
	f.level = 5;
	ck_assert_uint_eq(memtruth_darwin_available(&f), f.total / 100 * 5);
	/* Unread gauge: the pages alone. */
	f.level = -1;
	ck_assert_uint_eq(memtruth_darwin_available(&f), avail);
}
END_TEST

/*
 * The page size is the host's, not assumed: Apple Silicon reports 16384,
 * Intel 4096 (host_page_size; vm_stat's header) — a 4x error otherwise.
 */
START_TEST(darwin_available_page_size)
{
	struct darwin_vm_facts f = { .page_size = 4096, .total = 8 * G,
	    .free_pages = 1000, .level = -1 };

	ck_assert_uint_eq(memtruth_darwin_available(&f), 1000 * 4096);
	f.page_size = 16384;
	ck_assert_uint_eq(memtruth_darwin_available(&f), 1000 * 16384);
}
END_TEST

/* --- who uses the GPU --- */

#define ARGV(...)	((char *[]){ __VA_ARGS__, NULL })

/*
 * llama.cpp common/arg.cpp: "-ngl, --gpu-layers, --n-gpu-layers N" (env
 * LLAMA_ARG_N_GPU_LAYERS), default -1 = all, also "auto" and "all";
 * "-dev, --device <dev1,dev2,..>" with "none" for no offload.  The
 * server's README: an argument takes precedence over its variable.
 */
START_TEST(gpu_layers_from_argv_and_env)
{
	char *none[] = { NULL };

	ck_assert_int_eq(memtruth_gpu_layers(ARGV("llama-server", "-m",
	    "{model}"), none, NULL), -1);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("llama-server", "-ngl",
	    "0"), none, NULL), 0);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("llama-server",
	    "--n-gpu-layers", "0"), none, NULL), 0);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("llama-server",
	    "--gpu-layers=0"), none, NULL), 0);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-ngl", "99"),
	    none, NULL),
	    99);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-ngl", "auto"),
	    none, NULL),
	    -1);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-ngl", "all"),
	    none, NULL),
	    -1);
	/* the last one wins, as llama.cpp parses them in order */
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-ngl", "0", "-ngl",
	    "20"), none, NULL), 20);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-ngl", "20", "-ngl",
	    "0"), none, NULL), 0);
	/* the variable, and the flag over it */
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x"),
	    ARGV("PATH=/bin", "LLAMA_ARG_N_GPU_LAYERS=0"), NULL), 0);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-ngl", "10"),
	    ARGV("LLAMA_ARG_N_GPU_LAYERS=0"), NULL), 10);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-ngl", "0"),
	    ARGV("LLAMA_ARG_N_GPU_LAYERS=99"), NULL), 0);
	/* the model's variable over poold's own, which counts alone too */
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x"),
	    ARGV("LLAMA_ARG_N_GPU_LAYERS=auto"),
	    ARGV("LLAMA_ARG_N_GPU_LAYERS=0")), -1);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x"), none,
	    ARGV("LLAMA_ARG_N_GPU_LAYERS=0")), 0);
	/* no device: CPU whatever the layers */
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-ngl", "99", "-dev",
	    "none"), none, NULL), 0);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "--device=none"),
	    none, NULL), 0);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "--device", "CUDA0"),
	    none, NULL), -1);
	/* a flag with no value, a value that is no number, NULLs */
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-ngl"), none, NULL),
	    -1);
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-ngl", "lots"),
	    none, NULL),
	    -1);
	ck_assert_int_eq(memtruth_gpu_layers(NULL, NULL, NULL), -1);
	/* a longer flag that merely starts the same is not it */
	ck_assert_int_eq(memtruth_gpu_layers(ARGV("x", "-nglx", "0"),
	    none, NULL),
	    -1);
}
END_TEST

START_TEST(gpu_bytes_cpu_only_is_zero)
{
	ck_assert_uint_eq(memtruth_gpu_bytes(8 * G, 0), 0);
	ck_assert_uint_eq(memtruth_gpu_bytes(8 * G, -1), 8 * G);
	ck_assert_uint_eq(memtruth_gpu_bytes(8 * G, 10), 8 * G);
}
END_TEST

/* --- CUDA: NVML figures --- */

/*
 * nvmlDeviceGetComputeRunningProcesses fills nvmlProcessInfo_t {pid,
 * usedGpuMemory}; usedGpuMemory is NVML_VALUE_NOT_AVAILABLE (ULL ~0)
 * when it cannot be read (nvml.h; "Under WDDM ... not available" and for
 * processes of other containers).  Such an entry counts nothing.
 */
START_TEST(cuda_tree_bytes)
{
	const struct gpu_process procs[] = {
		{ 4242, 0, 6 * G },		/* the server, GPU 0 */
		{ 4243, 0, 512 * M },		/* its child */
		{ 999, 0, 20 * G },		/* somebody else */
		{ 4242, 1, 5 * G },		/* the server, GPU 1 */
		{ 4244, 1, MEMTRUTH_NVML_VALUE_NOT_AVAILABLE },
		{ 4242, 9, 1 * G },		/* a GPU past those asked */
	};
	const pid_t tree[] = { 4242, 4243, 4244 };
	uint64_t dev[2] = { 7, 7 };

	ck_assert_uint_eq(memtruth_tree_gpu_bytes(procs, 6, tree, 3, dev, 2),
	    12 * G + 512 * M);
	ck_assert_uint_eq(dev[0], 6 * G + 512 * M);
	ck_assert_uint_eq(dev[1], 5 * G);
	ck_assert_uint_eq(memtruth_tree_gpu_bytes(procs, 6, tree, 0, dev, 2),
	    0);
	ck_assert_uint_eq(dev[0] + dev[1], 0);
	ck_assert_uint_eq(memtruth_tree_gpu_bytes(NULL, 0, tree, 3, NULL, 0),
	    0);
}
END_TEST

/*
 * Two 24 GiB cards and a 16 GiB one (nvmlDeviceGetMemoryInfo total):
 * a budget each, gpu_limit holding each to it (per device); with no
 * device known, gpu_limit is one GPU's budget.
 */
START_TEST(cuda_gpu_budgets)
{
	const uint64_t cards[] = { 24 * G, 24 * G, 16 * G };
	uint64_t b[MEMTRUTH_GPUS_MAX];
	enum gpu_limit_source src;

	ck_assert_uint_eq(memtruth_cuda_gpu_budgets(cards, 3, 0, b,
	    MEMTRUTH_GPUS_MAX, &src), 3);
	ck_assert_int_eq(src, GPU_LIMIT_NVML);
	ck_assert_uint_eq(b[0], 24 * G);
	ck_assert_uint_eq(b[2], 16 * G);
	ck_assert_uint_eq(memtruth_cuda_gpu_budgets(cards, 3, 20 * G, b,
	    MEMTRUTH_GPUS_MAX, &src), 3);
	ck_assert_int_eq(src, GPU_LIMIT_CONFIG);
	ck_assert_uint_eq(b[0], 20 * G);
	ck_assert_uint_eq(b[1], 20 * G);
	ck_assert_uint_eq(b[2], 16 * G);
	ck_assert_uint_eq(memtruth_cuda_gpu_budgets(cards, 3, 0, b, 2,
	    &src), 2);
	ck_assert_uint_eq(memtruth_cuda_gpu_budgets(NULL, 0, 40 * G, b,
	    MEMTRUTH_GPUS_MAX, &src), 1);
	ck_assert_uint_eq(b[0], 40 * G);
	ck_assert_int_eq(src, GPU_LIMIT_CONFIG);
	ck_assert_uint_eq(memtruth_cuda_gpu_budgets(NULL, 0, 0, b,
	    MEMTRUTH_GPUS_MAX, &src), 0);
	ck_assert_int_eq(src, GPU_LIMIT_NONE);
}
END_TEST

/* --- which GPUs a server uses --- */

/* The placement of argv/env on two GPUs is want (share 0/1), by_free. */
static void
placed(char *const *argv, char *const *env, unsigned ngpus, unsigned used,
    double s0, double s1, bool by_free)
{
	struct gpu_placement pl;
	unsigned got = memtruth_gpu_placement(argv, env, ngpus, &pl);

	ck_assert_msg(got == used && pl.share[0] == s0 && pl.share[1] == s1 &&
	    pl.by_free == by_free, "%s %s ...: %u GPUs, shares %.2f %.2f, "
	    "by_free %d; want %u, %.2f %.2f, %d", argv[1] ? argv[1] : "",
	    argv[1] && argv[2] ? argv[2] : "", got, pl.share[0], pl.share[1],
	    (int)pl.by_free, used, s0, s1, (int)by_free);
}

/*
 * llama.cpp src/llama.cpp (llama_model_load_from_splits): without
 * --device every GPU device is used; with split mode none only
 * devices[main_gpu] is kept, main_gpu < 0 clears them all (CPU).
 * src/llama-model.cpp (load_tensors): "default split, by free memory"
 * when tensor_split is all 0, else the proportions, over that list.
 * common/arg.cpp: "-dev, --device <dev1,dev2,..>" (none = don't
 * offload; env LLAMA_ARG_DEVICE), "-sm, --split-mode {none,layer,row}"
 * (LLAMA_ARG_SPLIT_MODE), "-ts, --tensor-split N0,N1,N2,..." split by
 * "," and "/" (LLAMA_ARG_TENSOR_SPLIT), "-mg, --main-gpu INDEX" (default
 * 0, LLAMA_ARG_MAIN_GPU).  ggml-cuda names its devices CUDA0, CUDA1, ...
 * by CUDA ordinal, which CUDA_VISIBLE_DEVICES renumbers (CUDA C
 * Programming Guide, "CUDA Environment Variables": a list of indices or
 * UUIDs; an invalid index hides it and every later one).
 */
START_TEST(gpu_placement_from_argv_and_env)
{
	char *none[] = { NULL };

	/* the default: both, by free memory */
	placed(ARGV("x", "-m", "{model}"), none, 2, 2, 1, 1, true);
	/* CUDA_VISIBLE_DEVICES, the model's own: renumbers */
	placed(ARGV("x", ""), ARGV("CUDA_VISIBLE_DEVICES=1"), 2, 1, 0, 1,
	    false);
	placed(ARGV("x", "--device", "CUDA0"),
	    ARGV("CUDA_VISIBLE_DEVICES=1,0"), 2, 1, 0, 1, false);
	placed(ARGV("x", ""), ARGV("CUDA_VISIBLE_DEVICES="), 2, 0, 0, 0,
	    false);
	placed(ARGV("x", ""), ARGV("CUDA_VISIBLE_DEVICES=0,7,1"), 2, 1, 1, 0,
	    false);
	/* a UUID poold cannot map: the whole on each */
	placed(ARGV("x", ""), ARGV("CUDA_VISIBLE_DEVICES=GPU-8f3c2a1e-0b"), 2,
	    2, 1, 1, false);
	/* --device, the flag over its variable */
	placed(ARGV("x", "--device", "CUDA1"), none, 2, 1, 0, 1, false);
	placed(ARGV("x", "-dev=CUDA0,CUDA1"), none, 2, 2, 1, 1, true);
	placed(ARGV("x", ""), ARGV("LLAMA_ARG_DEVICE=CUDA1"), 2, 1, 0, 1,
	    false);
	placed(ARGV("x", "-dev", "CUDA0"), ARGV("LLAMA_ARG_DEVICE=CUDA1"), 2,
	    1, 1, 0, false);
	placed(ARGV("x", "--device", "none"), none, 2, 0, 0, 0, false);
	placed(ARGV("x", "--device", "RPC[10.0.0.2:50052],CUDA0"), none, 2,
	    1, 1, 0, false);
	placed(ARGV("x", "--device", "Vulkan0"), none, 2, 2, 1, 1, false);
	/* split mode none: the main GPU of the list alone */
	placed(ARGV("x", "-sm", "none"), none, 2, 1, 1, 0, false);
	placed(ARGV("x", "-sm", "none", "-mg", "1"), none, 2, 1, 0, 1, false);
	placed(ARGV("x", "--split-mode", "none", "--main-gpu", "1",
	    "--device", "CUDA1,CUDA0"), none, 2, 1, 1, 0, false);
	placed(ARGV("x", ""), ARGV("LLAMA_ARG_SPLIT_MODE=none",
	    "LLAMA_ARG_MAIN_GPU=1"), 2, 1, 0, 1, false);
	placed(ARGV("x", "-sm", "none", "-mg", "-1"), none, 2, 0, 0, 0,
	    false);
	placed(ARGV("x", "-mg", "1"), none, 2, 2, 1, 1, true);	/* layer */
	/* tensor split: proportions over the list */
	placed(ARGV("x", "-ts", "3,1"), none, 2, 2, 0.75, 0.25, false);
	placed(ARGV("x", "--tensor-split=3/1"), none, 2, 2, 0.75, 0.25,
	    false);
	placed(ARGV("x", "-ts", "1,0"), none, 2, 1, 1, 0, false);
	placed(ARGV("x", "-ts", "0,0"), none, 2, 2, 1, 1, true);
	/* one llama-server refuses: counted as the default */
	placed(ARGV("x", "-ts", "3x1"), none, 2, 2, 1, 1, true);
	placed(ARGV("x", ""), ARGV("LLAMA_ARG_TENSOR_SPLIT=1,3"), 2, 2, 0.25,
	    0.75, false);
	placed(ARGV("x", "-dev", "CUDA1,CUDA0", "-ts", "3,1"), none, 2, 2,
	    0.25, 0.75, false);
	/* one GPU, none at all */
	placed(ARGV("x", ""), none, 1, 1, 1, 0, false);
	placed(ARGV("x", ""), none, 0, 0, 0, 0, false);
}
END_TEST

/* --- the pool's GPU budget --- */

static struct {
	struct pool		*p;
	struct rec		 r;
	pool_ms			 now;
	struct pool_owner	 own;
} F;

/* The invariant of the second dimension: gpu_used is the sum of what
 * every unreaped server holds, like used. */
static void
inv(void)
{
	const struct pool_server *s;
	uint64_t used = 0, gpu = 0, dev[POOL_GPUS_MAX] = { 0 }, sum;

	TAILQ_FOREACH(s, &F.p->servers, link) {
		used += s->mem;
		gpu += s->gpu_mem;
		ck_assert_uint_ge(s->gpu_mem, s->gpu_estimate);
		sum = 0;
		for (unsigned d = 0; d < POOL_GPUS_MAX; d++) {
			dev[d] += s->gpu_dev[d];
			sum += s->gpu_dev[d];
			ck_assert_uint_ge(s->gpu_dev[d],
			    s->gpu_dev_estimate[d]);
		}
		ck_assert_uint_eq(sum, s->gpu_mem);
	}
	ck_assert_uint_eq(used, F.p->used);
	ck_assert_uint_eq(gpu, F.p->gpu_used);
	for (unsigned d = 0; d < POOL_GPUS_MAX; d++)
		ck_assert_uint_eq(dev[d], F.p->gpu_dev_used[d]);
	if (F.p->lim.gpu_budget == 0)
		ck_assert_uint_eq(F.p->gpu_used, 0);
}

/* Without gpu0 and gpu1, one GPU of gpu_budget; with, two GPUs. */
static void
setup_gpus(uint64_t budget, uint64_t gpu_budget, uint64_t gpu0,
    uint64_t gpu1)
{
	struct pool_limits l;

	memset(&F, 0, sizeof(F));
	memset(&l, 0, sizeof(l));
	l.budget = budget;
	l.gpu_budget = gpu_budget;
	l.ngpus = gpu0 > 0 ? 2 : 0;
	l.gpu_budgets[0] = gpu0;
	l.gpu_budgets[1] = gpu1;
	l.max_servers = 8;
	l.port_min = 8000;
	l.port_max = 8099;
	l.start_timeout = 30000;
	l.max_waiters = 100;
	F.now = T0;
	rec_init(&F.r, &F.now);
	F.p = pool_new(&l, &rec_ops, &F.r, F.now);
	ck_assert_ptr_nonnull(F.p);
	F.r.pool = F.p;
	pool_owner_init(&F.own);
}

static void
setup_budgets(uint64_t budget, uint64_t gpu_budget)
{
	setup_gpus(budget, gpu_budget, 0, 0);
}

static void
teardown(void)
{
	pool_owner_gone(F.p, F.now, &F.own);
	pool_free(F.p);
	rec_free(&F.r);
}

static struct pool_model *
model(const char *name, uint64_t mem, uint64_t gpu_mem)
{
	struct pool_model *m = pool_model_add(F.p, name, mem, 0);

	ck_assert_ptr_nonnull(m);
	m->gpu_mem = gpu_mem;
	return m;
}

static void
acquire(struct pool_waiter *w, struct pool_model *m, bool hold)
{
	memset(w, 0, sizeof(*w));
	pool_acquire(F.p, F.now, w, &F.own, m, hold, F.now + LONG_MS);
	inv();
}

static struct pool_server *
ready(struct pool_model *m)
{
	struct pool_server *s = m->server;

	ck_assert_ptr_nonnull(s);
	pool_ready(F.p, F.now, s);
	inv();
	return s;
}

static void
reap(struct pool_server *s)
{
	rec_forget(&F.r, s);
	pool_exited(F.p, F.now, s, "exited 0");
	inv();
}

static const struct rec_answer *
last_answer(void)
{
	ck_assert_uint_gt(F.r.nanswers, 0);
	return &F.r.answers[F.r.nanswers - 1];
}

/* A model on two GPUs with these shares (both 0: llama.cpp's default). */
static struct pool_model *
model_on(const char *name, uint64_t gpu_mem, double s0, double s1,
    bool by_free)
{
	struct pool_model *m = model(name, gpu_mem, gpu_mem);

	m->gpu_share[0] = s0;
	m->gpu_share[1] = s1;
	m->gpu_by_free = by_free;
	return m;
}

/* Starts m, makes it ready and releases it: an idle server. */
static struct pool_server *
idle_server(struct pool_model *m)
{
	struct pool_waiter w;
	struct pool_server *s;

	acquire(&w, m, true);
	s = ready(m);
	ck_assert_int_eq(pool_release(F.p, F.now, &F.own,
	    last_answer()->lease), 0);
	inv();
	F.now += 1000;
	return s;
}

static bool
was_stopped(const struct pool_model *m)
{
	for (size_t i = 0; i < F.r.nstops; i++)
		if (F.r.stops[i].model == m)
			return true;
	return false;
}

/*
 * Plenty of RAM, a GPU for one of two GPU models: the second waits for
 * the GPU budget, not the RAM one, and a CPU-only model starts beside
 * them both.
 */
START_TEST(gpu_budget_admits)
{
	struct pool_model *a, *b, *cpu;
	struct pool_waiter wa, wb, wc;

	setup_budgets(100 * G, 30 * G);
	a = model("a", 20 * G, 20 * G);
	b = model("b", 20 * G, 20 * G);
	cpu = model("cpu", 20 * G, 0);
	acquire(&wa, a, true);
	ready(a);
	ck_assert_uint_eq(F.p->gpu_used, 20 * G);
	acquire(&wb, b, true);		/* a is leased: b must wait */
	ck_assert_ptr_null(b->server);
	ck_assert_uint_eq(F.r.nspawns, 1);
	acquire(&wc, cpu, true);	/* RAM only: starts at once */
	ck_assert_ptr_nonnull(cpu->server);
	ck_assert_uint_eq(F.p->gpu_used, 20 * G);
	ck_assert_uint_eq(F.p->used, 40 * G);
	teardown();
}
END_TEST

/*
 * Only the GPU is short: the idle GPU server goes, not the least recently
 * used one, which runs on the CPU and would free no GPU memory.  Its GPU
 * memory is counted until it is reaped.
 */
START_TEST(gpu_short_evicts_a_gpu_server)
{
	struct pool_model *a, *b, *cpu;
	struct pool_server *sa;
	struct pool_waiter wb;

	setup_budgets(100 * G, 30 * G);
	a = model("a", 20 * G, 20 * G);
	b = model("b", 20 * G, 20 * G);
	cpu = model("cpu", 20 * G, 0);
	(void)idle_server(cpu);		/* the least recently used */
	sa = idle_server(a);
	acquire(&wb, b, false);
	ck_assert_msg(was_stopped(a), "a, the GPU server, was not stopped");
	ck_assert_msg(!was_stopped(cpu), "the CPU server was stopped");
	ck_assert_ptr_null(b->server);	/* until a is reaped */
	ck_assert_uint_eq(F.p->gpu_used, 20 * G);
	reap(sa);
	ck_assert_ptr_nonnull(b->server);
	ck_assert_uint_eq(F.p->gpu_used, 20 * G);
	ck_assert_ptr_nonnull(cpu->server);
	teardown();
}
END_TEST

/* More than the whole GPU budget: too_large at once, like the RAM one. */
START_TEST(gpu_too_large)
{
	struct pool_model *big;
	struct pool_waiter w;

	setup_budgets(100 * G, 30 * G);
	big = model("big", 40 * G, 40 * G);
	acquire(&w, big, false);
	ck_assert_int_eq(last_answer()->err, PROTO_E_TOO_LARGE);
	ck_assert_msg(strstr(last_answer()->message, "GPU") != NULL, "%s",
	    last_answer()->message);
	ck_assert_uint_eq(F.r.nspawns, 0);
	teardown();
}
END_TEST

/* No GPU budget (no GPU found, none configured): gpu_mem means nothing. */
START_TEST(gpu_budget_zero_ignores_gpu_mem)
{
	struct pool_model *a, *b;
	struct pool_waiter wa, wb;

	setup_budgets(100 * G, 0);
	a = model("a", 20 * G, 90 * G);
	b = model("b", 20 * G, 90 * G);
	acquire(&wa, a, true);
	acquire(&wb, b, true);
	ck_assert_ptr_nonnull(a->server);
	ck_assert_ptr_nonnull(b->server);
	ck_assert_uint_eq(F.p->gpu_used, 0);
	pool_measured_gpu(F.p, F.now, a->server, (uint64_t[]){ 50 * G }, 1);
	inv();
	ck_assert_uint_eq(F.p->gpu_used, 0);
	teardown();
}
END_TEST

/*
 * NVML says a server holds more than its estimate: it is accounted the
 * measured figure, and an idle GPU server is stopped to get back under
 * the GPU budget; a measured figure below the estimate changes nothing.
 */
START_TEST(gpu_measured_grows)
{
	struct pool_model *a, *b;
	struct pool_server *sa, *sb;

	setup_budgets(100 * G, 30 * G);
	a = model("a", 10 * G, 10 * G);
	b = model("b", 10 * G, 10 * G);
	sa = idle_server(a);
	sb = idle_server(b);
	pool_measured_gpu(F.p, F.now, sb, (uint64_t[]){ 5 * G }, 1);
	inv();
	ck_assert_uint_eq(sb->gpu_mem, 10 * G);
	ck_assert_uint_eq(F.p->gpu_used, 20 * G);
	pool_measured_gpu(F.p, F.now, sb, (uint64_t[]){ 25 * G }, 1);
	inv();
	ck_assert_uint_eq(sb->gpu_mem, 25 * G);
	ck_assert_uint_eq(sb->gpu_measured, 25 * G);
	ck_assert_msg(was_stopped(a), "a was not stopped for the GPU budget");
	ck_assert_msg(!was_stopped(b), "b itself was stopped");
	reap(sa);
	ck_assert_uint_eq(F.p->gpu_used, 25 * G);
	teardown();
}
END_TEST

/* A queue head short of GPU memory says so when its wait runs out. */
START_TEST(gpu_busy_reason)
{
	struct pool_model *a, *b;
	struct pool_waiter wa, wb;

	setup_budgets(100 * G, 30 * G);
	a = model("a", 20 * G, 20 * G);
	b = model("b", 20 * G, 20 * G);
	acquire(&wa, a, true);
	ready(a);
	memset(&wb, 0, sizeof(wb));
	pool_acquire(F.p, F.now, &wb, &F.own, b, false, F.now + 1000);
	F.now += 2000;
	pool_tick(F.p, F.now);
	inv();
	ck_assert_int_eq(last_answer()->err, PROTO_E_BUSY);
	ck_assert_msg(strstr(last_answer()->message, "GPU memory") != NULL,
	    "%s", last_answer()->message);
	teardown();
}
END_TEST

/* --- one budget per GPU --- */

/*
 * Two cards of 10G.  a holds 8G of card 0 (leased); b, pinned to card 0
 * too, needs 6G there: it waits, though card 1 is empty and the GPUs
 * together (8G + 6G of 20G) would look fine.  c, on card 1, starts.
 */
START_TEST(gpus_one_card_full_waits_there)
{
	struct pool_model *a, *b, *c;
	struct pool_waiter wa, wb, wc;

	setup_gpus(100 * G, 0, 10 * G, 10 * G);
	ck_assert_uint_eq(F.p->lim.gpu_budget, 20 * G);
	a = model_on("a", 8 * G, 1, 0, false);
	b = model_on("b", 6 * G, 1, 0, false);
	c = model_on("c", 6 * G, 0, 1, false);
	acquire(&wa, a, true);
	ready(a);
	ck_assert_uint_eq(F.p->gpu_dev_used[0], 8 * G);
	acquire(&wb, b, true);
	ck_assert_msg(b->server == NULL, "b started on a full card 0");
	acquire(&wc, c, true);
	ck_assert_ptr_nonnull(c->server);
	ck_assert_uint_eq(F.p->gpu_dev_used[1], 6 * G);
	ck_assert_uint_eq(F.p->gpu_dev_used[0], 8 * G);
	/* its wait says which card */
	F.now += LONG_MS + 1;
	pool_tick(F.p, F.now);
	ck_assert_int_eq(last_answer()->err, PROTO_E_BUSY);
	ck_assert_msg(strstr(last_answer()->message, "on GPU 0") != NULL,
	    "%s", last_answer()->message);
	teardown();
}
END_TEST

/*
 * Card 0 is short for b: the idle server on card 0 goes, not the least
 * recently used one, which holds card 1 and would free nothing where b
 * goes.
 */
START_TEST(gpus_evict_on_the_short_card)
{
	struct pool_model *a, *b, *c;
	struct pool_server *sa;
	struct pool_waiter wb;

	setup_gpus(100 * G, 0, 10 * G, 10 * G);
	a = model_on("a", 8 * G, 1, 0, false);
	b = model_on("b", 6 * G, 1, 0, false);
	c = model_on("c", 8 * G, 0, 1, false);
	(void)idle_server(c);		/* the least recently used */
	sa = idle_server(a);
	acquire(&wb, b, false);
	ck_assert_msg(was_stopped(a), "a, on the short card, was not stopped");
	ck_assert_msg(!was_stopped(c), "c, on the other card, was stopped");
	ck_assert_ptr_null(b->server);	/* until a is reaped */
	reap(sa);
	ck_assert_ptr_nonnull(b->server);
	ck_assert_uint_eq(F.p->gpu_dev_used[0], 6 * G);
	ck_assert_uint_eq(F.p->gpu_dev_used[1], 8 * G);
	teardown();
}
END_TEST

/*
 * s splits 8G half and half (-ts 1,1): it needs 4G on each card.  With
 * a holding 8G of card 0, it waits, though card 1 is empty and 12G is
 * free in all; once a is idle, a goes for it.  Started, s holds 4G on
 * each.
 */
START_TEST(gpus_split_needs_both)
{
	struct pool_model *a, *sp;
	struct pool_server *sa;
	struct pool_waiter wa, ws;

	setup_gpus(100 * G, 0, 10 * G, 10 * G);
	a = model_on("a", 8 * G, 1, 0, false);
	sp = model_on("s", 8 * G, 0.5, 0.5, false);
	acquire(&wa, a, true);
	sa = ready(a);
	acquire(&ws, sp, false);
	ck_assert_msg(sp->server == NULL, "s started without 4G on card 0");
	ck_assert_int_eq(pool_release(F.p, F.now, &F.own,
	    F.r.answers[0].lease), 0);
	inv();
	ck_assert_msg(was_stopped(a), "a was not stopped for s");
	reap(sa);
	ck_assert_ptr_nonnull(sp->server);
	ck_assert_uint_eq(F.p->gpu_dev_used[0], 4 * G);
	ck_assert_uint_eq(F.p->gpu_dev_used[1], 4 * G);
	teardown();
}
END_TEST

/*
 * llama.cpp's default split is by free memory: with a holding 4G of
 * card 0, a 10G model d is admitted on 5G a card (in proportion to the
 * budgets, and both have that much room), and at spawn is counted the
 * larger of that and its share of the room it finds: 6G free of 16G on
 * card 0 (3.75G, less than 5G), 10G of 16G on card 1 (6.25G).  So
 * neither card is undercounted whichever way llama.cpp splits.
 */
START_TEST(gpus_by_free_counts_the_larger)
{
	struct pool_model *a, *d;
	struct pool_waiter wa, wd;

	setup_gpus(100 * G, 0, 10 * G, 10 * G);
	a = model_on("a", 4 * G, 1, 0, false);
	d = model_on("d", 10 * G, 0, 0, false);	/* the default */
	acquire(&wa, a, true);
	ready(a);
	acquire(&wd, d, true);
	ck_assert_ptr_nonnull(d->server);
	ck_assert_uint_eq(d->server->gpu_dev[0], 5 * G);
	ck_assert_uint_eq(d->server->gpu_dev[1], 6 * G + 256 * M);
	ck_assert_uint_eq(F.p->gpu_dev_used[0], 9 * G);
	ck_assert_uint_eq(F.p->gpu_dev_used[1], 6 * G + 256 * M);
	teardown();
}
END_TEST

/*
 * NVML says b holds 9G of card 1, more than its 5G there: card 1 is
 * over its budget and the idle server on card 1 goes, not the one on
 * card 0.
 */
START_TEST(gpus_measured_per_card)
{
	struct pool_model *a, *b, *c;
	struct pool_server *sb;

	setup_gpus(100 * G, 0, 10 * G, 10 * G);
	a = model_on("a", 5 * G, 1, 0, false);
	c = model_on("c", 5 * G, 0, 1, false);
	b = model_on("b", 5 * G, 0, 1, false);
	(void)idle_server(a);
	(void)idle_server(c);
	sb = idle_server(b);
	pool_measured_gpu(F.p, F.now, sb, (uint64_t[]){ 0, 9 * G }, 2);
	inv();
	ck_assert_uint_eq(sb->gpu_dev[1], 9 * G);
	ck_assert_uint_eq(sb->gpu_dev_measured[1], 9 * G);
	ck_assert_msg(was_stopped(c), "c, on card 1, was not stopped");
	ck_assert_msg(!was_stopped(a), "a, on card 0, was stopped");
	ck_assert_msg(!was_stopped(b), "b itself was stopped");
	teardown();
}
END_TEST

/* 12G pinned to one 10G card: too large, though the cards hold 20G. */
START_TEST(gpus_too_large_for_one_card)
{
	struct pool_model *big;
	struct pool_waiter w;

	setup_gpus(100 * G, 0, 10 * G, 10 * G);
	big = model_on("big", 12 * G, 0, 1, false);
	acquire(&w, big, false);
	ck_assert_int_eq(last_answer()->err, PROTO_E_TOO_LARGE);
	ck_assert_msg(strstr(last_answer()->message, "GPU 1") != NULL, "%s",
	    last_answer()->message);
	ck_assert_uint_eq(F.r.nspawns, 0);
	teardown();
}
END_TEST

/* --- the config --- */

/* "gpu_limit": a size, 0 for detected; anything else names the key. */
START_TEST(config_gpu_limit)
{
	char dir[] = "/tmp/check_memtruth.XXXXXX", path[64], err[256];
	static const char *const bad[] = { "\"lots\"", "-1", "\"12X\"",
	    "true", "[]" };
	struct config cfg;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/poold.json", dir);
	tl_write_file(path, "{\"gpu_limit\": \"96G\"}");
	config_defaults(&cfg);
	ck_assert_uint_eq(cfg.gpu_limit, 0);
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.gpu_limit, 96 * G);
	config_free(&cfg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tl_write_file(path, "{\"gpu_limit\": %s}", bad[i]);
		config_defaults(&cfg);
		ck_assert_int_eq(config_load(&cfg, path, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, "gpu_limit") != NULL, "%s: %s",
		    bad[i], err);
		config_free(&cfg);
	}
	tl_rm_rf(dir);
}
END_TEST

/* --- the real poold --- */

#define MIB		(1024LL * 1024)

/* poold --budget's line that starts with label contains want. */
static bool
budget_says(const struct tl_daemon *d, const char *label, const char *want)
{
	char cmd[2 * TL_PATH_MAX], line[512];
	bool said = false;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "'%s' --budget -f '%s' 2>&1",
	    getenv("POOLD_BIN"), d->config);
	TL_ASSERT((f = popen(cmd, "r")) != NULL, "popen %s", cmd);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, label, strlen(label)) == 0)
			said = said || strstr(line, want) != NULL;
	TL_ASSERT(pclose(f) == 0, "%s failed", cmd);
	return said;
}

/*
 * A configured GPU budget of 150M and three 100M models in a 400M
 * budget: a and b offload (llama.cpp's default), cpu runs with
 * LLAMA_ARG_N_GPU_LAYERS=0.  With a leased, b cannot start (the GPU is
 * short, not the RAM) and says why; cpu starts beside a.  With both idle
 * and cpu the least recently used, b's start stops a, not cpu.  huge
 * (200M) fits the RAM but not the GPU: too_large, and poold --budget
 * says so beforehand.
 */
START_TEST(daemon_gpu_budget)
{
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	json_t *rep, *st, *gpus;
	long long la, lc;
	pid_t pa, pcpu;

	tl_daemon_init(&d, 6);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	tl_model(&d, "cpu", "load_ms=20\nmem=4M\n");
	tl_model(&d, "huge", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, "{\"memory_limit\":\"400M\","
	    "\"gpu_limit\":\"150M\",\"models\":{"
	    "\"huge\":{\"memory\":\"200M\"},"
	    "\"a\":{\"memory\":\"100M\"},\"b\":{\"memory\":\"100M\"},"
	    "\"cpu\":{\"memory\":\"100M\",\"env\":"
	    "{\"LLAMA_ARG_N_GPU_LAYERS\":\"0\"}}}}");
	TL_ASSERT(budget_says(&d, "gpu budget", "150.0 MiB   (gpu_limit)"),
	    "poold --budget does not show the GPU budget");
	TL_ASSERT(budget_says(&d, "binds", "150.0 MiB   (the GPU budget"),
	    "poold --budget does not say the GPU budget binds");
	TL_ASSERT(budget_says(&d, "huge ", "(more than the GPU budget)"),
	    "poold --budget does not mark huge as more than the GPU budget");
	c = tl_connect(&d);
	mon = tl_connect(&d);

	rep = tl_acquire(c, "huge", 5000, false);
	tl_expect_error(rep, "too_large", NULL, "ACQUIRE huge");
	TL_ASSERT(strstr(tl_str(rep, "message"), "GPU budget") != NULL,
	    "too_large does not name the GPU budget: %s", tl_dump(rep));
	json_decref(rep);

	la = tl_acquire_ok(c, "a", true, NULL);
	rep = tl_acquire(c, "b", 300, true);
	tl_expect_error(rep, "busy", NULL, "ACQUIRE b with a leased");
	TL_ASSERT(strstr(tl_str(rep, "message"), "GPU memory") != NULL,
	    "the busy message does not name the GPU: %s", tl_dump(rep));
	json_decref(rep);
	lc = tl_acquire_ok(c, "cpu", true, NULL);
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_int(st, "memory.gpu_budget") == 150 * MIB &&
	    tl_int(st, "memory.gpu_used") == 100 * MIB &&
	    tl_int(st, "memory.used") == 200 * MIB &&
	    tl_int(st, "running") == 2,
	    "a on the GPU, cpu beside it: %s", tl_dump(st));
	gpus = json_array_get(tl_get(st, "memory.gpus"), 0);
	TL_ASSERT(json_array_size(tl_get(st, "memory.gpus")) == 1 &&
	    tl_int(gpus, "index") == 0 && tl_int(gpus, "budget") == 150 * MIB &&
	    tl_int(gpus, "used") == 100 * MIB,
	    "gpu_limit without NVML: one GPU in memory.gpus: %s", tl_dump(st));
	pa = tl_server_pid(st, "a");
	pcpu = tl_server_pid(st, "cpu");
	json_decref(st);

	tl_release(c, lc);		/* cpu: the least recently used */
	tl_sleep_ms(20);
	tl_release(c, la);
	tl_acquire_ok(c, "b", false, NULL);
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_server_pid(st, "cpu") == pcpu &&
	    tl_server(st, "a") == NULL && tl_server_pid(st, "b") > 0 &&
	    tl_int(st, "counters.evictions") == 1 &&
	    tl_int(st, "memory.gpu_used") == 100 * MIB,
	    "b's start should stop a (on the GPU), not cpu: %s", tl_dump(st));
	json_decref(st);
	TL_ASSERT(tl_wait_gone(pa, 10000), "a's server %d still runs",
	    (int)pa);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST

#ifdef __linux__
/* GPU d of STATS memory.gpus has this budget and used. */
static bool
gpu_is(json_t *st, size_t d, long long budget, long long used)
{
	json_t *g = json_array_get(tl_get(st, "memory.gpus"), d);

	return g != NULL && tl_int(g, "index") == (long long)d &&
	    tl_int(g, "budget") == budget && tl_int(g, "used") == used;
}

/*
 * The real poold with two cards of 150M (NVML faked by
 * tests/fakenvml.c, dlopen()ed as the driver's would be).  a and b are
 * pinned to card 0 by CUDA_VISIBLE_DEVICES, c to card 1 by --device's
 * variable.  With a leased, b waits for card 0 and says so, though card
 * 1 has room and the cards together (300M) would take both; c starts.
 * Then NVML says a's server holds 60M of card 1 too: card 1 is over its
 * budget, and c, idle there, is stopped (a is leased).
 */
START_TEST(daemon_gpus_per_card)
{
	char procs[TL_PATH_MAX + 8], lib[TL_PATH_MAX + 32];
	struct tl_daemon d;
	struct tl_conn *c, *mon;
	json_t *rep, *st;
	pid_t pa, pc;
	bool ok;

	TL_ASSERT(getenv("FAKENVML_DIR") != NULL, "FAKENVML_DIR is not set "
	    "(make check sets it)");
	snprintf(lib, sizeof(lib), "%s/libnvidia-ml.so.1",
	    getenv("FAKENVML_DIR"));
	TL_ASSERT(access(lib, R_OK) == 0, "no %s", lib);
	tl_daemon_init(&d, 6);
	snprintf(procs, sizeof(procs), "%s.nvml", d.config);
	setenv("LD_LIBRARY_PATH", getenv("FAKENVML_DIR"), 1);
	setenv("FAKENVML_TOTALS", "157286400,157286400", 1);
	setenv("FAKENVML_PROCS", procs, 1);
	tl_model(&d, "a", "load_ms=20\nmem=4M\n");
	tl_model(&d, "b", "load_ms=20\nmem=4M\n");
	tl_model(&d, "c", "load_ms=20\nmem=4M\n");
	tl_daemon_start(&d, "{\"memory_limit\":\"1000M\","
	    "\"rss_interval\":\"200ms\",\"models\":{"
	    "\"a\":{\"memory\":\"100M\",\"env\":"
	    "{\"CUDA_VISIBLE_DEVICES\":\"0\"}},"
	    "\"b\":{\"memory\":\"100M\",\"env\":"
	    "{\"CUDA_VISIBLE_DEVICES\":\"0\"}},"
	    "\"c\":{\"memory\":\"100M\",\"env\":"
	    "{\"LLAMA_ARG_DEVICE\":\"CUDA1\"}}}}");
	TL_ASSERT(budget_says(&d, "gpu budget", "300.0 MiB   (NVML"),
	    "poold --budget does not show the GPUs' budget");
	TL_ASSERT(budget_says(&d, "gpu 0", "150.0 MiB") &&
	    budget_says(&d, "gpu 1", "150.0 MiB"),
	    "poold --budget does not list the GPUs");
	c = tl_connect(&d);
	mon = tl_connect(&d);

	(void)tl_acquire_ok(c, "a", true, NULL);
	rep = tl_acquire(c, "b", 300, true);
	tl_expect_error(rep, "busy", NULL, "ACQUIRE b with a on card 0");
	TL_ASSERT(strstr(tl_str(rep, "message"), "on GPU 0") != NULL,
	    "the busy message does not name card 0: %s", tl_dump(rep));
	json_decref(rep);
	tl_release(c, tl_acquire_ok(c, "c", true, NULL));
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_int(st, "memory.gpu_budget") == 300 * MIB &&
	    tl_int(st, "memory.gpu_used") == 200 * MIB &&
	    json_array_size(tl_get(st, "memory.gpus")) == 2 &&
	    gpu_is(st, 0, 150 * MIB, 100 * MIB) &&
	    gpu_is(st, 1, 150 * MIB, 100 * MIB),
	    "a on card 0, c on card 1: %s", tl_dump(st));
	pa = tl_server_pid(st, "a");
	pc = tl_server_pid(st, "c");
	json_decref(st);

	tl_write_file(procs, "0 %d 90000000\n1 %d 62914560\n", (int)pa,
	    (int)pa);
	TL_ASSERT(tl_wait_gone(pc, 20000), "c's server %d still runs with "
	    "card 1 over its budget", (int)pc);
	/* Listed (stopping, and counted) until poold has reaped it. */
	TL_WAIT_UNTIL(ok, !tl_has_server(&d, mon, "c"), 5000);
	TL_ASSERT(ok, "c is still listed after its process is gone");
	st = tl_stats(&d, mon);
	TL_ASSERT(tl_server_pid(st, "a") == pa && tl_server(st, "c") == NULL &&
	    gpu_is(st, 1, 150 * MIB, 60 * MIB) &&
	    gpu_is(st, 0, 150 * MIB, 100 * MIB),
	    "a measured on card 1, c stopped: %s", tl_dump(st));
	json_decref(st);
	tl_close(c);
	tl_close(mon);
	tl_daemon_finish(&d);
}
END_TEST
#endif

static Suite *
memtruth_suite(void)
{
	Suite *s = suite_create("memtruth");
	TCase *t;

	t = tcase_create("darwin");
	tcase_add_test(t, metal_default_share_matches_recorded_macs);
	tcase_add_test(t, darwin_gpu_limit_order);
	tcase_add_test(t, darwin_gpu_limit_at_most_ram);
	tcase_add_test(t, darwin_process_is_the_larger);
	tcase_add_test(t, darwin_available_below_the_gauge);
	tcase_add_test(t, darwin_available_page_size);
	suite_add_tcase(s, t);

	t = tcase_create("gpu_users");
	tcase_add_test(t, gpu_layers_from_argv_and_env);
	tcase_add_test(t, gpu_bytes_cpu_only_is_zero);
	tcase_add_test(t, cuda_tree_bytes);
	tcase_add_test(t, cuda_gpu_budgets);
	tcase_add_test(t, gpu_placement_from_argv_and_env);
	suite_add_tcase(s, t);

	t = tcase_create("pool_gpu");
	tcase_add_test(t, gpu_budget_admits);
	tcase_add_test(t, gpu_short_evicts_a_gpu_server);
	tcase_add_test(t, gpu_too_large);
	tcase_add_test(t, gpu_budget_zero_ignores_gpu_mem);
	tcase_add_test(t, gpu_measured_grows);
	tcase_add_test(t, gpu_busy_reason);
	suite_add_tcase(s, t);

	t = tcase_create("pool_gpus");
	tcase_add_test(t, gpus_one_card_full_waits_there);
	tcase_add_test(t, gpus_evict_on_the_short_card);
	tcase_add_test(t, gpus_split_needs_both);
	tcase_add_test(t, gpus_by_free_counts_the_larger);
	tcase_add_test(t, gpus_measured_per_card);
	tcase_add_test(t, gpus_too_large_for_one_card);
	suite_add_tcase(s, t);

	t = tcase_create("config");
	tcase_add_test(t, config_gpu_limit);
	suite_add_tcase(s, t);
	tl_add(s, "daemon_gpu_budget", daemon_gpu_budget);
#ifdef __linux__
	tl_add(s, "daemon_gpus_per_card", daemon_gpus_per_card);
#endif
	return s;
}

int
main(void)
{
	return tl_run(memtruth_suite(), CK_ENV);
}
