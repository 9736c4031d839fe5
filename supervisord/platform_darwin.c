/*
 * platform_darwin.c — memory facts from sysctl and Mach, parent death.
 */
#ifdef __APPLE__

#include <sys/types.h>
#include <sys/sysctl.h>
#include <sys/proc.h>

#include <errno.h>
#include <limits.h>
#include <libproc.h>
#include <mach/mach.h>
#include <unistd.h>

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

/* The process and its children (one level: llama-server forks none). */
int
platform_tree_rss(pid_t pid, uint64_t *out)
{
	pid_t kids[64];
	uint64_t rss, sum;
	int n;

	if (platform_process_rss(pid, &sum) == -1)
		return -1;
	n = proc_listchildpids(pid, kids, (int)sizeof(kids));
	for (int i = 0; i < n && i < 64; i++)
		if (platform_process_rss(kids[i], &rss) == 0)
			sum += rss;
	*out = sum;
	return 0;
}

int
platform_process_start_time(pid_t pid, uint64_t *out)
{
	struct proc_bsdinfo bi;

	if (proc_pidinfo(pid, PROC_PIDTBSDINFO, 0, &bi, sizeof(bi)) !=
	    (int)sizeof(bi) || bi.pbi_status == SZOMB)
		return -1;
	*out = (uint64_t)bi.pbi_start_tvsec * 1000000 + bi.pbi_start_tvusec;
	return 0;
}

void
platform_close_fds(int keep)
{
	for (int fd = 3, max = getdtablesize(); fd < max; fd++)
		if (fd != keep)
			(void)close(fd);
}

/*
 * No PR_SET_PDEATHSIG here: a poold killed with SIGKILL leaves its
 * servers, and the next poold kills them from its state file.
 */
int
platform_die_with_parent(pid_t parent)
{
	(void)parent;
	errno = ENOSYS;
	return -1;
}

/* No child subreaper on macOS: orphans go to launchd. */
int
platform_become_subreaper(void)
{
	errno = ENOSYS;
	return -1;
}

size_t
platform_child_pids(pid_t pid, pid_t *out, size_t max)
{
	int n = proc_listchildpids(pid, out, (int)(max * sizeof(*out)));

	return n > 0 ? ((size_t)n < max ? (size_t)n : max) : 0;
}

/* macOS refuses a soft limit above kern.maxfilesperproc, RLIM_INFINITY
 * (the usual hard limit) included. */
rlim_t
platform_nofile_max(rlim_t hard)
{
	int perproc;
	size_t len = sizeof(perproc);

	if (sysctlbyname("kern.maxfilesperproc", &perproc, &len, NULL, 0) == 0
	    && perproc > 0 && (rlim_t)perproc < hard)
		return (rlim_t)perproc;
	return hard == RLIM_INFINITY ? OPEN_MAX : hard;
}

#endif /* __APPLE__ */
