/*
 * memtruth.c — the decisions behind poold's memory figures on macOS and
 * with GPUs.  Pure: no system call, no clock (see memtruth.h).
 *
 * Sources, quoted where each figure is used:
 * - XNU osfmk/vm/vm_page.h: which pages the kernel's memory-status gauge
 *   counts (AVAILABLE_NON_COMPRESSED_MEMORY on macOS; pageable external +
 *   free on jetsam systems);
 * - the SDK's mach/vm_statistics.h: free_count includes speculative pages;
 * - XNU osfmk/kern/task.c: what phys_footprint sums;
 * - llama.cpp common/arg.cpp: -ngl, --device, LLAMA_ARG_N_GPU_LAYERS;
 * - nvml.h: NVML_VALUE_NOT_AVAILABLE in usedGpuMemory.
 */
#include <stdlib.h>
#include <string.h>

#include "memtruth.h"

const char *
gpu_limit_source_name(enum gpu_limit_source s)
{
	switch (s) {
	case GPU_LIMIT_NONE:		return "none";
	case GPU_LIMIT_CONFIG:		return "gpu_limit";
	case GPU_LIMIT_WIRED_SYSCTL:	return "iogpu.wired_limit_mb";
	case GPU_LIMIT_METAL:		return "Metal working set";
	case GPU_LIMIT_DEFAULT_SHARE:	return "default share of RAM";
	case GPU_LIMIT_NVML:		return "NVML";
	}
	return "none";
}

uint64_t
memtruth_metal_default_share(uint64_t ram)
{
	return ram <= MEMTRUTH_METAL_SMALL_RAM ? ram / 3 * 2 : ram / 4 * 3;
}

static uint64_t
at_most(uint64_t n, uint64_t max)
{
	return n < max ? n : max;
}

uint64_t
memtruth_darwin_gpu_limit(const struct darwin_gpu_facts *f,
    uint64_t config_limit, enum gpu_limit_source *src)
{
	/* An admin's sysctl in MiB; a wild one must not overflow. */
	uint64_t wired = f->wired_limit_mb > f->ram >> 20 ? f->ram :
	    f->wired_limit_mb << 20;

	if (config_limit > 0) {
		*src = GPU_LIMIT_CONFIG;
		return at_most(config_limit, f->ram);
	}
	if (f->wired_limit_mb > 0) {
		*src = GPU_LIMIT_WIRED_SYSCTL;
		return wired;
	}
	if (f->metal_working_set > 0) {
		*src = GPU_LIMIT_METAL;
		return at_most(f->metal_working_set, f->ram);
	}
	*src = GPU_LIMIT_DEFAULT_SHARE;
	return memtruth_metal_default_share(f->ram);
}

uint64_t
memtruth_darwin_process_bytes(uint64_t phys_footprint, uint64_t resident)
{
	return phys_footprint > resident ? phys_footprint : resident;
}

uint64_t
memtruth_darwin_available(const struct darwin_vm_facts *f)
{
	/* free_count already holds the speculative pages (vm_statistics.h);
	 * purgeable pages are anonymous, so never also external. */
	uint64_t pages = f->free_pages + f->external_pages +
	    f->purgeable_pages;
	uint64_t avail = pages * f->page_size, gauge;

	if (f->level < 0 || f->level > 100)
		return avail;
	gauge = f->total / 100 * (uint64_t)f->level;
	return at_most(avail, gauge);
}

/* --- which servers use the GPU --- */

/* "0", "12", "-1", "auto", "all" → layers; -2 for anything else. */
static int
layers_value(const char *v)
{
	char *end;
	long n;

	if (strcmp(v, "auto") == 0 || strcmp(v, "all") == 0)
		return -1;
	n = strtol(v, &end, 10);
	if (end == v || *end != '\0')
		return -2;
	if (n < 0)
		return -1;
	return n > 100000 ? 100000 : (int)n;
}

static bool
is_layers_flag(const char *a, const char **inline_value)
{
	static const char *const flags[] = { "-ngl", "--gpu-layers",
	    "--n-gpu-layers" };
	size_t len;

	*inline_value = NULL;
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		len = strlen(flags[i]);
		if (strncmp(a, flags[i], len) != 0)
			continue;
		if (a[len] == '\0')
			return true;
		if (a[len] == '=') {
			*inline_value = a + len + 1;
			return true;
		}
	}
	return false;
}

static bool
is_device_none(char *const *argv, size_t i)
{
	const char *a = argv[i];

	if (strcmp(a, "-dev") == 0 || strcmp(a, "--device") == 0)
		return argv[i + 1] != NULL && strcmp(argv[i + 1], "none") == 0;
	return strcmp(a, "-dev=none") == 0 || strcmp(a, "--device=none") == 0;
}

/* LLAMA_ARG_N_GPU_LAYERS in env: its layers, or -2 if it is not there. */
static int
layers_in_env(char *const *env)
{
	static const char var[] = "LLAMA_ARG_N_GPU_LAYERS=";
	int n;

	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		if (strncmp(env[i], var, sizeof(var) - 1) == 0 &&
		    (n = layers_value(env[i] + sizeof(var) - 1)) != -2)
			return n;
	return -2;
}

int
memtruth_gpu_layers(char *const *argv, char *const *env,
    char *const *inherited)
{
	const char *v;
	int layers = -2;
	bool no_device = false;

	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++) {
		if (is_device_none(argv, i))
			no_device = true;
		if (!is_layers_flag(argv[i], &v))
			continue;
		if (v == NULL && (v = argv[i + 1]) == NULL)
			break;
		if (layers_value(v) != -2)
			layers = layers_value(v);
	}
	if (no_device)
		return 0;
	if (layers == -2)
		layers = layers_in_env(env);
	if (layers == -2)
		layers = layers_in_env(inherited);
	return layers == -2 ? -1 : layers;
}

uint64_t
memtruth_gpu_bytes(uint64_t mem, int gpu_layers)
{
	return gpu_layers == 0 ? 0 : mem;
}

/* --- CUDA --- */

static bool
in_tree(unsigned pid, const pid_t *pids, size_t npids)
{
	for (size_t i = 0; i < npids; i++)
		if (pids[i] > 0 && (unsigned)pids[i] == pid)
			return true;
	return false;
}

uint64_t
memtruth_tree_gpu_bytes(const struct gpu_process *procs, size_t n,
    const pid_t *pids, size_t npids)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		if (procs[i].used != MEMTRUTH_NVML_VALUE_NOT_AVAILABLE &&
		    in_tree(procs[i].pid, pids, npids))
			sum += procs[i].used;
	return sum;
}

uint64_t
memtruth_cuda_gpu_limit(const uint64_t *totals, size_t n,
    uint64_t config_limit, enum gpu_limit_source *src)
{
	uint64_t sum = 0;

	if (config_limit > 0) {
		*src = GPU_LIMIT_CONFIG;
		return config_limit;
	}
	for (size_t i = 0; i < n; i++)
		sum += totals[i];
	*src = sum > 0 ? GPU_LIMIT_NVML : GPU_LIMIT_NONE;
	return sum;
}
