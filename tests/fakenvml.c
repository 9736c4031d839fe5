/*
 * fakenvml.c — a stand-in for NVIDIA's libnvidia-ml.so.1, for
 * check_memtruth's daemon cases on machines with no NVIDIA card.
 *
 * Built as build/fakenvml/libnvidia-ml.so.1; a test puts that folder in
 * LD_LIBRARY_PATH, and poold's dlopen() finds it as it would the driver's.
 * It answers exactly the calls gpu_nvml.c makes, with the types of nvml.h:
 * - FAKENVML_TOTALS="157286400,157286400": the devices and their total
 *   memory, in bytes;
 * - FAKENVML_PROCS=file: lines "device pid bytes", read at each call,
 *   the compute processes and their usedGpuMemory (no file: none).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NVML_SUCCESS			0
#define NVML_ERROR_INVALID_ARGUMENT	2
#define NVML_ERROR_INSUFFICIENT_SIZE	7
#define FAKE_DEVICES_MAX		16

struct nvml_memory {
	unsigned long long	total, free, used;
};

struct nvml_process {
	unsigned int		pid;
	unsigned long long	used_gpu_memory;
	unsigned int		gpu_instance_id;
	unsigned int		compute_instance_id;
};

static unsigned long long totals[FAKE_DEVICES_MAX];
static unsigned ndevices;
static int index_of[FAKE_DEVICES_MAX];	/* handles point here */

int	nvmlInit_v2(void);
int	nvmlDeviceGetCount_v2(unsigned int *);
int	nvmlDeviceGetHandleByIndex_v2(unsigned int, void **);
int	nvmlDeviceGetMemoryInfo(void *, struct nvml_memory *);
int	nvmlDeviceGetComputeRunningProcesses_v3(void *, unsigned int *,
	    struct nvml_process *);

int
nvmlInit_v2(void)
{
	const char *v = getenv("FAKENVML_TOTALS");
	char *end;

	for (ndevices = 0; v != NULL && *v != '\0' &&
	    ndevices < FAKE_DEVICES_MAX; ndevices++) {
		totals[ndevices] = strtoull(v, &end, 10);
		index_of[ndevices] = (int)ndevices;
		v = *end == ',' ? end + 1 : end;
		if (end == v && *end != '\0')
			break;
	}
	return NVML_SUCCESS;
}

int
nvmlDeviceGetCount_v2(unsigned int *n)
{
	*n = ndevices;
	return NVML_SUCCESS;
}

int
nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **dev)
{
	if (i >= ndevices)
		return NVML_ERROR_INVALID_ARGUMENT;
	*dev = &index_of[i];
	return NVML_SUCCESS;
}

int
nvmlDeviceGetMemoryInfo(void *dev, struct nvml_memory *m)
{
	int d = *(int *)dev;

	m->total = totals[d];
	m->used = 0;
	m->free = totals[d];
	return NVML_SUCCESS;
}

int
nvmlDeviceGetComputeRunningProcesses_v3(void *dev, unsigned int *count,
    struct nvml_process *out)
{
	const char *path = getenv("FAKENVML_PROCS");
	unsigned int n = 0, d, pid;
	unsigned long long bytes;
	FILE *f;

	if (path == NULL || (f = fopen(path, "r")) == NULL) {
		*count = 0;
		return NVML_SUCCESS;
	}
	while (fscanf(f, "%u %u %llu", &d, &pid, &bytes) == 3) {
		if ((int)d != *(int *)dev)
			continue;
		if (n == *count) {
			fclose(f);
			return NVML_ERROR_INSUFFICIENT_SIZE;
		}
		memset(&out[n], 0, sizeof(out[n]));
		out[n].pid = pid;
		out[n++].used_gpu_memory = bytes;
	}
	fclose(f);
	*count = n;
	return NVML_SUCCESS;
}
