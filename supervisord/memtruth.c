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
 * - llama.cpp common/arg.cpp: -ngl, --device, LLAMA_ARG_N_GPU_LAYERS,
 *   --split-mode, --main-gpu, --tensor-split; src/llama.cpp and
 *   src/llama-model.cpp: which devices a model uses and how it splits;
 * - CUDA's programming guide: CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER;
 * - nvml.h: NVML_VALUE_NOT_AVAILABLE in usedGpuMemory.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* --- which GPUs a server uses --- */

/*
 * The value of the last of flags in argv ("-f v", "-f=v"), else of var
 * in env, else NULL.
 */
static const char *
arg_value(char *const *argv, const char *const *flags, char *const *env,
    const char *var)
{
	const char *v = NULL;
	size_t len, vlen = strlen(var);

	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
		for (size_t f = 0; flags[f] != NULL; f++) {
			len = strlen(flags[f]);
			if (strncmp(argv[i], flags[f], len) != 0)
				continue;
			if (argv[i][len] == '=')
				v = argv[i] + len + 1;
			else if (argv[i][len] == '\0' && argv[i + 1] != NULL)
				v = argv[i + 1];
		}
	for (size_t i = 0; v == NULL && env != NULL && env[i] != NULL; i++)
		if (strncmp(env[i], var, vlen) == 0 && env[i][vlen] == '=')
			v = env[i] + vlen + 1;
	return v;
}

/* "12" → 12; -1 for anything but a decimal number. */
static long
index_value(const char *s, size_t len)
{
	long n = 0;

	if (len == 0 || len > 6)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (s[i] - '0');
	}
	return n;
}

#define UNKNOWN_GPU	(-2)	/* a device poold cannot name */

/*
 * CUDA_VISIBLE_DEVICES: the GPUs CUDA numbers 0, 1, ... (UNKNOWN_GPU for
 * a UUID).  Unset: all of them.  How many went into vis.
 */
static unsigned
visible_gpus(char *const *env, unsigned ngpus, int *vis)
{
	static const char *const no_flags[] = { NULL };
	const char *v = arg_value(NULL, no_flags, env, "CUDA_VISIBLE_DEVICES");
	unsigned n = 0;
	size_t len;
	long idx;

	if (v == NULL) {
		for (; n < ngpus; n++)
			vis[n] = (int)n;
		return n;
	}
	for (; *v != '\0' && n < MEMTRUTH_GPUS_MAX; v += len + (v[len] != '\0')) {
		len = strcspn(v, ",");
		idx = index_value(v, len);
		if (strncmp(v, "GPU-", 4) == 0 || strncmp(v, "MIG-", 4) == 0)
			vis[n++] = UNKNOWN_GPU;
		else if (idx < 0 || idx >= (long)ngpus)
			break;		/* CUDA ignores the rest */
		else
			vis[n++] = (int)idx;
	}
	return n;
}

/*
 * --device: the list of GPUs it names, from the visible ones (RPC
 * servers are elsewhere; other backends' devices are UNKNOWN_GPU).
 * Without it, every visible GPU.  -1: "none".
 */
static int
device_list(char *const *argv, char *const *env, const int *vis,
    unsigned nvis, int *list)
{
	static const char *const flags[] = { "-dev", "--device", NULL };
	const char *v = arg_value(argv, flags, env, "LLAMA_ARG_DEVICE");
	unsigned n = 0;
	size_t len;
	long ord;

	if (v == NULL) {
		memcpy(list, vis, nvis * sizeof(*list));
		return (int)nvis;
	}
	if (strcmp(v, "none") == 0)
		return -1;
	for (; *v != '\0' && n < MEMTRUTH_GPUS_MAX; v += len + (v[len] != '\0')) {
		len = strcspn(v, ",");
		if (len >= 4 && strncasecmp(v, "CUDA", 4) == 0 &&
		    (ord = index_value(v + 4, len - 4)) >= 0) {
			if (ord < (long)nvis)
				list[n++] = vis[ord];
		} else if (len >= 3 && strncasecmp(v, "RPC", 3) == 0)
			continue;
		else if (len > 0)
			list[n++] = UNKNOWN_GPU;
	}
	return (int)n;
}

/* --tensor-split "3,1" or "3/1" into ts; how many proportions. */
static unsigned
tensor_split(char *const *argv, char *const *env, double *ts)
{
	static const char *const flags[] = { "-ts", "--tensor-split", NULL };
	const char *v = arg_value(argv, flags, env, "LLAMA_ARG_TENSOR_SPLIT");
	unsigned n = 0;
	char *end;

	while (v != NULL && *v != '\0' && n < MEMTRUTH_GPUS_MAX) {
		ts[n] = strtod(v, &end);
		if (end == v || ts[n] < 0 || ts[n] != ts[n])
			return 0;	/* llama-server refuses it */
		n++;
		v = end + strspn(end, ",/");
		if (end == v && *end != '\0')
			return 0;	/* "3x1" */
	}
	return n;
}

/* In single-GPU mode, the one of the list --main-gpu names; -1: CPU. */
static int
main_gpu(char *const *argv, char *const *env, int *list, int n)
{
	static const char *const sm_flags[] = { "-sm", "--split-mode", NULL };
	static const char *const mg_flags[] = { "-mg", "--main-gpu", NULL };
	const char *sm = arg_value(argv, sm_flags, env, "LLAMA_ARG_SPLIT_MODE");
	const char *mg = arg_value(argv, mg_flags, env, "LLAMA_ARG_MAIN_GPU");
	long i = mg != NULL ? strtol(mg, NULL, 10) : 0;

	if (sm == NULL || strcmp(sm, "none") != 0)
		return n;
	if (i < 0)
		return -1;
	if (i >= n)
		return n;	/* llama-server refuses to start */
	list[0] = list[i];
	return 1;
}

unsigned
memtruth_gpu_placement(char *const *argv, char *const *env,
    unsigned ngpus, struct gpu_placement *pl)
{
	int vis[MEMTRUTH_GPUS_MAX], list[MEMTRUTH_GPUS_MAX], n, i;
	double ts[MEMTRUTH_GPUS_MAX], sum = 0;
	unsigned nvis, nts = 0, used = 0;

	memset(pl, 0, sizeof(*pl));
	if (ngpus > MEMTRUTH_GPUS_MAX)
		ngpus = MEMTRUTH_GPUS_MAX;
	nvis = visible_gpus(env, ngpus, vis);
	if ((n = device_list(argv, env, vis, nvis, list)) <= 0 ||
	    (n = main_gpu(argv, env, list, n)) <= 0)
		return 0;
	for (i = 0; i < n; i++)
		if (list[i] == UNKNOWN_GPU) {
			/* Which card it is, poold cannot say: all of it
			 * counts on each one the server could be on. */
			for (i = 0; i < (int)ngpus; i++)
				pl->share[i] = 1;
			return ngpus;
		}
	if (n > 1)
		nts = tensor_split(argv, env, ts);
	for (i = 0; i < (int)nts && i < n; i++)
		sum += ts[i];
	pl->by_free = n > 1 && sum <= 0;	/* one GPU: all of it there */
	for (i = 0; i < n; i++)
		pl->share[list[i]] += sum <= 0 ? 1 :
		    i < (int)nts ? ts[i] / sum : 0;
	for (i = 0; i < (int)ngpus; i++)
		if (pl->share[i] > 0) {
			if (sum <= 0)
				pl->share[i] = 1;	/* listed twice */
			used++;
		}
	return used;
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
    const pid_t *pids, size_t npids, uint64_t *per_device, size_t ndev)
{
	uint64_t sum = 0;

	for (size_t d = 0; per_device != NULL && d < ndev; d++)
		per_device[d] = 0;
	for (size_t i = 0; i < n; i++)
		if (procs[i].used != MEMTRUTH_NVML_VALUE_NOT_AVAILABLE &&
		    in_tree(procs[i].pid, pids, npids)) {
			sum += procs[i].used;
			if (per_device != NULL && procs[i].device < ndev)
				per_device[procs[i].device] += procs[i].used;
		}
	return sum;
}

size_t
memtruth_cuda_gpu_budgets(const uint64_t *totals, size_t n,
    uint64_t config_limit, uint64_t *budgets, size_t max,
    enum gpu_limit_source *src)
{
	size_t k = 0;

	*src = config_limit > 0 ? GPU_LIMIT_CONFIG : GPU_LIMIT_NVML;
	if (n == 0 && config_limit > 0 && max > 0)
		budgets[k++] = config_limit;
	for (size_t d = 0; d < n && k < max; d++)
		budgets[k++] = config_limit > 0 ? at_most(totals[d],
		    config_limit) : totals[d];
	if (k == 0)
		*src = GPU_LIMIT_NONE;
	return k;
}
