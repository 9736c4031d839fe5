/*
 * memtruth.h — what a Metal or CUDA llama-server really takes, and what
 * the machine can give: pure functions, figures in, figures out.
 *
 * The system calls that gather the figures are thin wrappers elsewhere
 * (platform_darwin.c, gpu_nvml.c); everything that decides is here, so
 * it compiles and is unit-tested on every platform (tests/check_memtruth.c,
 * with figures recorded from real Macs and from Apple's and NVIDIA's
 * documentation).
 */
#ifndef POOLD_MEMTRUTH_H
#define POOLD_MEMTRUTH_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the GPU budget comes from (poold --budget says it). */
enum gpu_limit_source {
	GPU_LIMIT_NONE = 0,	/* no GPU accounted */
	GPU_LIMIT_CONFIG,	/* "gpu_limit" */
	GPU_LIMIT_WIRED_SYSCTL,	/* iogpu.wired_limit_mb, an admin's */
	GPU_LIMIT_METAL,	/* Metal's recommendedMaxWorkingSetSize */
	GPU_LIMIT_DEFAULT_SHARE,/* the documented share of RAM */
	GPU_LIMIT_NVML,		/* the CUDA devices' memory, from NVML */
};
const char	*gpu_limit_source_name(enum gpu_limit_source);

/* --- macOS: the GPU's part of unified memory --- */

/* RAM up to this gets two thirds for the GPU by default, more gets 3/4. */
#define MEMTRUTH_METAL_SMALL_RAM	(36ULL << 30)

/*
 * What macOS lets the GPU wire by default on a Mac with ram bytes: 2/3
 * up to 36 GiB, 3/4 above (the recommendedMaxWorkingSetSize macOS 13-15
 * report).  Newer macOS may give more; this is only the fallback when
 * neither the sysctl nor Metal answers, and it errs low.
 */
uint64_t	 memtruth_metal_default_share(uint64_t ram);

struct darwin_gpu_facts {
	uint64_t	ram;			/* hw.memsize */
	/* iogpu.wired_limit_mb; 0: the default */
	uint64_t	wired_limit_mb;
	/* Metal's recommendedMaxWorkingSetSize; 0: not known */
	uint64_t	metal_working_set;
};

/*
 * The GPU working-set limit: the config's gpu_limit (nonzero) wins, then
 * a nonzero iogpu.wired_limit_mb, then what Metal reports, then the
 * default share.  Never more than the RAM.
 */
uint64_t	 memtruth_darwin_gpu_limit(const struct darwin_gpu_facts *,
		    uint64_t config_limit, enum gpu_limit_source *);

/*
 * What one process takes on macOS: the larger of its physical footprint
 * (ri_phys_footprint: what Activity Monitor's Memory column shows, Metal
 * buffers and compressed pages included) and its resident size (which
 * counts the mapped file pages of the weights the footprint leaves out).
 */
uint64_t	 memtruth_darwin_process_bytes(uint64_t phys_footprint,
		    uint64_t resident);

/* host_statistics64(HOST_VM_INFO64) and sysctl figures, in pages. */
struct darwin_vm_facts {
	uint64_t	page_size;	/* host_page_size: 16384 on Apple
					 * Silicon, 4096 on Intel */
	uint64_t	total;		/* hw.memsize, bytes */
	uint64_t	free_pages;	/* free_count (+ speculative) */
	uint64_t	external_pages;	/* external_page_count: files */
	uint64_t	purgeable_pages;/* purgeable_count: volatile, dropped
					 * at will */
	int		level;		/* kern.memorystatus_level,
					 * 0-100; -1: not read */
};

/*
 * What other programs' memory leaves to poold without pressure: free
 * pages, file-backed pages (dropped and read again, never compressed or
 * swapped) and volatile purgeable ones; never more than the kernel's own
 * gauge (memorystatus_level % of RAM, which also counts active pages and
 * so is an upper bound, never a budget).
 */
uint64_t	 memtruth_darwin_available(const struct darwin_vm_facts *);

/* --- which servers use the GPU --- */

/*
 * The GPU layers a server is started with: 0 (CPU only), a positive
 * count, or -1 (llama.cpp's default or "auto"/"all": every layer it can).
 * From -ngl / --gpu-layers / --n-gpu-layers N (also =N) in argv, the last
 * one winning, else LLAMA_ARG_N_GPU_LAYERS in env, else in inherited
 * (what the server inherits besides env; poold passes NULL, as its
 * servers inherit none of its LLAMA_ARG_*; llama.cpp reads the variable
 * only when the flag is absent).  "--device none" (or -dev)
 * means CPU only whatever the layers say.  Any list may be NULL.
 */
int		 memtruth_gpu_layers(char *const *argv, char *const *env,
		    char *const *inherited);

/*
 * What a server of a model estimated at mem takes of the GPU: nothing
 * for a CPU-only one, else the whole estimate (weights and KV cache go
 * to the GPU with the layers; a partial offload is counted whole, the
 * safe side).
 */
uint64_t	 memtruth_gpu_bytes(uint64_t mem, int gpu_layers);

/* --- which GPUs a server uses --- */

/* GPUs told apart, in NVML's numbering; the pool's POOL_GPUS_MAX. */
#define MEMTRUTH_GPUS_MAX	8

struct gpu_placement {
	/* The fraction of the server's GPU memory counted on each GPU. */
	double	share[MEMTRUTH_GPUS_MAX];
	/* llama.cpp's default split, by the free memory it finds when it
	 * loads, over the GPUs with a share (each 1); the pool counts it in
	 * proportion to their budgets or more (pool.h, gpu_by_free). */
	bool	by_free;
};

/*
 * Which of the machine's ngpus GPUs a server of this command and env uses
 * (llama.cpp common/arg.cpp and src/llama.cpp; the flag wins over its
 * LLAMA_ARG_ variable, the last flag over earlier ones):
 * - CUDA_VISIBLE_DEVICES in env (the server inherits no other): CUDA
 *   ordinal i is the i-th GPU listed; an index out of range ends the
 *   list, as CUDA does; a UUID (GPU-..., MIG-...) is a card poold cannot
 *   name, so the whole counts on every GPU;
 * - --device/-dev (LLAMA_ARG_DEVICE): CUDAi by ordinal, RPC servers
 *   count nothing here, another backend's device the whole on every GPU;
 * - --split-mode/-sm none (LLAMA_ARG_SPLIT_MODE) with --main-gpu/-mg
 *   (LLAMA_ARG_MAIN_GPU, default 0): that device of the list alone;
 * - --tensor-split/-ts (LLAMA_ARG_TENSOR_SPLIT) "3,1" or "3/1":
 *   proportions over the list; without it (or all 0), by free memory.
 * GPU numbers are NVML's: CUDA numbers the same way with
 * CUDA_DEVICE_ORDER=PCI_BUS_ID.  Returns how many GPUs have a share; 0:
 * none (CPU only, or no visible device).
 */
unsigned	 memtruth_gpu_placement(char *const *argv, char *const *env,
		    unsigned ngpus, struct gpu_placement *);

/* --- CUDA: NVML figures --- */

/* NVML's "not available" for usedGpuMemory (nvml.h). */
#define MEMTRUTH_NVML_VALUE_NOT_AVAILABLE	UINT64_MAX

struct gpu_process {
	unsigned	pid;
	unsigned	device;	/* NVML's index of the device listing it */
	uint64_t	used;	/* usedGpuMemory, or NOT_AVAILABLE */
};

/*
 * The GPU memory of a process tree (pids: the server and its children)
 * from every device's process list, all devices together; per_device
 * (may be NULL) gets it device by device, for the first ndev.  A pid
 * listed on several devices counts on each.  Entries NVML cannot
 * measure count nothing.
 */
uint64_t	 memtruth_tree_gpu_bytes(const struct gpu_process *, size_t n,
		    const pid_t *pids, size_t npids, uint64_t *per_device,
		    size_t ndev);

/*
 * The pool's GPU budgets, one per device, from the devices' total memory
 * (n of them): each device's total, at most config_limit when that is
 * nonzero (gpu_limit is per device); with no device known, one of
 * config_limit.  Returns how many budgets were put in budgets (at most
 * max); 0: no GPU to account.
 */
size_t		 memtruth_cuda_gpu_budgets(const uint64_t *totals, size_t n,
		    uint64_t config_limit, uint64_t *budgets, size_t max,
		    enum gpu_limit_source *);

#endif /* POOLD_MEMTRUTH_H */
