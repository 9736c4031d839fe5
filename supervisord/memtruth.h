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

/* --- CUDA: NVML figures --- */

/* NVML's "not available" for usedGpuMemory (nvml.h). */
#define MEMTRUTH_NVML_VALUE_NOT_AVAILABLE	UINT64_MAX

struct gpu_process {
	unsigned	pid;
	uint64_t	used;	/* usedGpuMemory, or NOT_AVAILABLE */
};

/*
 * The GPU memory of a process tree (pids: the server and its children)
 * from every device's process list; a pid listed on several devices
 * counts on each.  Entries NVML cannot measure count nothing.
 */
uint64_t	 memtruth_tree_gpu_bytes(const struct gpu_process *, size_t n,
		    const pid_t *pids, size_t npids);

/*
 * The pool's GPU budget from the devices' total memory: config_limit
 * when nonzero, else the sum of the devices (llama.cpp spreads layers
 * over every visible device), 0 with no device.
 */
uint64_t	 memtruth_cuda_gpu_limit(const uint64_t *totals, size_t n,
		    uint64_t config_limit, enum gpu_limit_source *);

#endif /* POOLD_MEMTRUTH_H */
