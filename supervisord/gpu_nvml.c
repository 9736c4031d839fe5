/*
 * gpu_nvml.c — CUDA devices' memory through NVML, loaded at run time.
 *
 * No build dependency: libnvidia-ml.so.1 comes with NVIDIA's driver and
 * is dlopen()ed the first time a figure is asked for.  Without it (no
 * NVIDIA driver, macOS) there are no GPU figures, which is said once in
 * the log.  Thin wrappers only: the decisions are memtruth.c's.
 *
 * The declarations below mirror nvml.h (NVML API reference, "Device
 * Queries"): nvmlReturn_t is an int, 0 NVML_SUCCESS; nvmlDevice_t is an
 * opaque pointer.
 */
#include <dlfcn.h>
#include <stdlib.h>

#include "poold.h"

#define NVML_SUCCESS			0
#define NVML_DEVICES_MAX		64
#define NVML_PROCESSES_MAX		256

typedef void *nvml_device;

struct nvml_memory {			/* nvmlMemory_t */
	unsigned long long	total, free, used;
};

struct nvml_process {			/* nvmlProcessInfo_t (v2 and v3) */
	unsigned int		pid;
	unsigned long long	used_gpu_memory;
	unsigned int		gpu_instance_id;
	unsigned int		compute_instance_id;
};

static struct {
	bool	tried, loaded;
	int	(*init)(void);
	int	(*count)(unsigned int *);
	int	(*handle)(unsigned int, nvml_device *);
	int	(*memory)(nvml_device, struct nvml_memory *);
	int	(*processes)(nvml_device, unsigned int *,
		    struct nvml_process *);
} nvml;

static void *
sym(void *lib, const char *a, const char *b)
{
	void *f = dlsym(lib, a);

	return f != NULL || b == NULL ? f : dlsym(lib, b);
}

static bool
nvml_load(void)
{
	void *lib;

	if (nvml.tried)
		return nvml.loaded;
	nvml.tried = true;
	lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		log_info("gpu: no NVML (%s): GPU memory is not measured",
		    dlerror());
		return false;
	}
	/* The function names of the struct above: _v2 and _v3 take it. */
	*(void **)&nvml.init = sym(lib, "nvmlInit_v2", "nvmlInit");
	*(void **)&nvml.count = sym(lib, "nvmlDeviceGetCount_v2", NULL);
	*(void **)&nvml.handle = sym(lib, "nvmlDeviceGetHandleByIndex_v2",
	    NULL);
	*(void **)&nvml.memory = sym(lib, "nvmlDeviceGetMemoryInfo", NULL);
	*(void **)&nvml.processes = sym(lib,
	    "nvmlDeviceGetComputeRunningProcesses_v3",
	    "nvmlDeviceGetComputeRunningProcesses_v2");
	if (nvml.init == NULL || nvml.count == NULL || nvml.handle == NULL ||
	    nvml.memory == NULL || nvml.processes == NULL ||
	    nvml.init() != NVML_SUCCESS) {
		log_info("gpu: NVML is too old or failed to start: GPU memory "
		    "is not measured");
		dlclose(lib);
		return false;
	}
	return nvml.loaded = true;
}

/* The devices by NVML's index (NULL: no handle), so that index d is the
 * same device in every figure. */
static unsigned
devices(nvml_device *out, unsigned max)
{
	unsigned n, count;

	if (!nvml_load() || nvml.count(&count) != NVML_SUCCESS)
		return 0;
	for (n = 0; n < count && n < max; n++)
		if (nvml.handle(n, &out[n]) != NVML_SUCCESS)
			out[n] = NULL;
	return n;
}

size_t
gpu_nvml_totals(uint64_t *out, size_t max)
{
	nvml_device dev[NVML_DEVICES_MAX];
	struct nvml_memory mem;
	unsigned n = devices(dev, NVML_DEVICES_MAX);
	size_t k;

	/* A device NVML cannot read has no room: nothing is put there. */
	for (k = 0; k < n && k < max; k++)
		out[k] = dev[k] != NULL && nvml.memory(dev[k], &mem) ==
		    NVML_SUCCESS ? mem.total : 0;
	return k;
}

ssize_t
gpu_nvml_processes(struct gpu_process *out, size_t max)
{
	static struct nvml_process procs[NVML_PROCESSES_MAX];
	nvml_device dev[NVML_DEVICES_MAX];
	unsigned n = devices(dev, NVML_DEVICES_MAX), count;
	size_t k = 0;

	if (!nvml.loaded)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		count = NVML_PROCESSES_MAX;
		/* A device with more processes than room answers
		 * NVML_ERROR_INSUFFICIENT_SIZE: its servers keep their
		 * estimates. */
		if (dev[i] == NULL ||
		    nvml.processes(dev[i], &count, procs) != NVML_SUCCESS)
			continue;
		for (unsigned j = 0; j < count && k < max; j++) {
			out[k].pid = procs[j].pid;
			out[k].device = i;
			out[k++].used = procs[j].used_gpu_memory;
		}
	}
	return (ssize_t)k;
}
