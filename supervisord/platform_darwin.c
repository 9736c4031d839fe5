/*
 * platform_darwin.c — memory facts from sysctl and Mach, parent death.
 */
#ifdef __APPLE__

#include <sys/types.h>
#include <sys/sysctl.h>

#include <errno.h>
#include <libproc.h>
#include <mach/mach.h>

#include "poold.h"

int
platform_total_memory(uint64_t *out)
{
	uint64_t	 mem;
	size_t		 len = sizeof(mem);

	if (sysctlbyname("hw.memsize", &mem, &len, NULL, 0) == -1)
		return -1;
	*out = mem;
	return 0;
}

/* Free plus inactive pages: what can be had without swapping. */
int
platform_available_memory(uint64_t *out)
{
	vm_statistics64_data_t	 vm;
	mach_msg_type_number_t	 count = HOST_VM_INFO64_COUNT;
	mach_port_t		 host = mach_host_self();
	vm_size_t		 page;
	kern_return_t		 kr;

	kr = host_page_size(host, &page);
	if (kr == KERN_SUCCESS)
		kr = host_statistics64(host, HOST_VM_INFO64,
		    (host_info64_t)&vm, &count);
	mach_port_deallocate(mach_task_self(), host);
	if (kr != KERN_SUCCESS) {
		errno = EIO;
		return -1;
	}
	*out = ((uint64_t)vm.free_count + vm.inactive_count) * page;
	return 0;
}

int
platform_process_rss(pid_t pid, uint64_t *out)
{
	struct rusage_info_v2	 ri;

	if (proc_pid_rusage(pid, RUSAGE_INFO_V2, (rusage_info_t *)&ri) != 0)
		return -1;
	*out = ri.ri_resident_size;
	return 0;
}

/* No PR_SET_PDEATHSIG here; the daemon watches a pipe instead. */
int
platform_die_with_parent(pid_t parent)
{
	(void)parent;
	errno = ENOSYS;
	return -1;
}

#endif /* __APPLE__ */
