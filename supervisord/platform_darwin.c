/*
 * platform_darwin.c — memory facts from sysctl, Mach and libproc, the
 * GPU's working-set limit, parent death.
 *
 * Thin wrappers: the figures go to memtruth.c, which decides.  Never
 * compiled on the Mac it is for here: `make check` type-checks it on
 * Linux against tests/darwin-stubs/ (declarations mirroring the SDK's).
 */
#ifdef __APPLE__

#include <sys/types.h>
#include <sys/event.h>
#include <sys/sysctl.h>
#include <sys/proc.h>
#include <sys/wait.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libproc.h>
#include <mach/mach.h>
#include <signal.h>
#include <unistd.h>

#include <string.h>

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

/*
 * What the machine gives without pressure: free, file-backed and
 * volatile purgeable pages, capped by the kernel's memorystatus_level
 * (memtruth_darwin_available says why).
 */
int
platform_available_memory(uint64_t *out)
{
	vm_statistics64_data_t	 vm;
	mach_msg_type_number_t	 count = HOST_VM_INFO64_COUNT;
	mach_port_t		 host = mach_host_self();
	vm_size_t		 page;
	kern_return_t		 kr;
	struct darwin_vm_facts	 f;
	int			 level;
	size_t			 len = sizeof(level);

	kr = host_page_size(host, &page);
	if (kr == KERN_SUCCESS)
		kr = host_statistics64(host, HOST_VM_INFO64,
		    (host_info64_t)&vm, &count);
	mach_port_deallocate(mach_task_self(), host);
	if (kr != KERN_SUCCESS || platform_total_memory(&f.total) == -1) {
		errno = EIO;
		return -1;
	}
	f.page_size = page;
	f.free_pages = vm.free_count;
	f.external_pages = vm.external_page_count;
	f.purgeable_pages = vm.purgeable_count;
	if (sysctlbyname("kern.memorystatus_level", &level, &len, NULL, 0)
	    == -1)
		level = -1;
	f.level = level;
	*out = memtruth_darwin_available(&f);
	return 0;
}

/* The larger of the physical footprint (Metal buffers included) and the
 * resident size (mapped weights included). */
int
platform_process_rss(pid_t pid, uint64_t *out)
{
	struct rusage_info_v2	 ri;

	if (proc_pid_rusage(pid, RUSAGE_INFO_V2, (rusage_info_t *)&ri) != 0)
		return -1;
	*out = memtruth_darwin_process_bytes(ri.ri_phys_footprint,
	    ri.ri_resident_size);
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

/* The watcher's SIGTERM, then its SIGKILL this much later. */
#define WATCHER_GRACE_S	5

/*
 * The watcher: waits for poold's exit or the server's, whichever comes
 * first (kqueue EVFILT_PROC NOTE_EXIT on both), and on poold's takes the
 * server's process group down.  Never returns.
 */
static void
watch_parent(pid_t parent, pid_t server)
{
	struct kevent ev[2], got;
	int kq, null;

	/* Nothing of poold's or the server's open: a server's log pipe
	 * must see its end when the server goes. */
	platform_close_fds(-1);
	if ((null = open("/dev/null", O_RDWR)) != -1) {
		for (int fd = 0; fd <= 2; fd++)
			(void)dup2(null, fd);
		if (null > 2)
			(void)close(null);
	}
	/* It is in the server's group: the SIGTERM it sends, or poold's,
	 * must not end it before its SIGKILL. */
	(void)signal(SIGTERM, SIG_IGN);
	if ((kq = kqueue()) == -1)
		_exit(1);
	EV_SET(&ev[0], parent, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
	EV_SET(&ev[1], server, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
	/* A pid already gone cannot be added (ESRCH): act on it now. */
	if (kevent(kq, &ev[1], 1, NULL, 0, NULL) == -1)
		_exit(0);
	if (kevent(kq, &ev[0], 1, NULL, 0, NULL) == 0) {
		while (kevent(kq, NULL, 0, &got, 1, NULL) == -1 &&
		    errno == EINTR)
			;
		if ((pid_t)got.ident == server)
			_exit(0);
	}
	(void)kill(-server, SIGTERM);
	sleep(WATCHER_GRACE_S);
	(void)kill(-server, SIGKILL);
	_exit(0);
}

/*
 * No PR_SET_PDEATHSIG here.  The choice: a tiny watcher process (double
 * forked, so launchd, not the server, is its parent) holds a kqueue
 * EVFILT_PROC NOTE_EXIT watch on poold and on the server, and stops the
 * server's group when poold goes, SIGKILL included.  A pipe whose EOF
 * the watcher reads would work too, but the pipe's write end would have
 * to stay open in poold across every later fork; kqueue needs nothing
 * of poold.  Called in the child after setsid(): the server leads its
 * group.
 */
int
platform_die_with_parent(pid_t parent)
{
	pid_t server = getpid(), mid;
	int status;

	if (getppid() != parent) {
		errno = ESRCH;
		return -1;
	}
	if ((mid = fork()) == -1)
		return -1;
	if (mid == 0) {
		if (fork() == 0)
			watch_parent(parent, server);
		_exit(0);
	}
	while (waitpid(mid, &status, 0) == -1 && errno == EINTR)
		;
	return 0;
}

/* --- the GPU: Metal's share of unified memory --- */

/* id MTLCreateSystemDefaultDevice(void), from Metal.framework. */
typedef void *(*mtl_create_fn)(void);
/* objc_msgSend cast to what -recommendedMaxWorkingSetSize returns. */
typedef uint64_t (*msg_u64_fn)(void *, void *);

/*
 * [MTLCreateSystemDefaultDevice() recommendedMaxWorkingSetSize], what
 * ggml-metal reads, through dlopen: no link against Metal or libobjc.
 * 0 if any part is missing (no GPU, a headless build host).
 */
static uint64_t
metal_working_set(void)
{
	void *metal, *objc, *dev, *sel;
	mtl_create_fn create;
	msg_u64_fn send;
	void *(*sel_register)(const char *);
	uint64_t n = 0;

	metal = dlopen("/System/Library/Frameworks/Metal.framework/Metal",
	    RTLD_LAZY | RTLD_LOCAL);
	objc = dlopen("/usr/lib/libobjc.A.dylib", RTLD_LAZY | RTLD_LOCAL);
	if (metal == NULL || objc == NULL)
		goto out;
	*(void **)&create = dlsym(metal, "MTLCreateSystemDefaultDevice");
	*(void **)&send = dlsym(objc, "objc_msgSend");
	*(void **)&sel_register = dlsym(objc, "sel_registerName");
	if (create == NULL || send == NULL || sel_register == NULL ||
	    (dev = create()) == NULL)
		goto out;
	sel = sel_register("recommendedMaxWorkingSetSize");
	n = send(dev, sel);
out:
	/* Metal stays loaded: frameworks are not unloaded anyway. */
	return n;
}

static uint64_t
sysctl_u64(const char *name)
{
	uint64_t v = 0;
	uint32_t v32;
	size_t len = sizeof(v);

	if (sysctlbyname(name, &v, &len, NULL, 0) == -1)
		return 0;
	if (len == sizeof(v32)) {
		memcpy(&v32, &v, sizeof(v32));
		return v32;
	}
	return v;
}

/* One Metal device, its part of unified memory. */
size_t
platform_gpu_budgets(uint64_t config_limit, uint64_t *budgets, size_t max,
    size_t *found, enum gpu_limit_source *src)
{
	struct darwin_gpu_facts f = { 0, 0, 0 };

	*found = 0;
	if (max == 0 || platform_total_memory(&f.ram) == -1) {
		*src = GPU_LIMIT_NONE;
		return 0;
	}
	/* Sonoma and later; 0 means "the default". */
	f.wired_limit_mb = sysctl_u64("iogpu.wired_limit_mb");
	if (config_limit == 0 && f.wired_limit_mb == 0)
		f.metal_working_set = metal_working_set();
	*found = 1;
	budgets[0] = memtruth_darwin_gpu_limit(&f, config_limit, src);
	return budgets[0] > 0;
}

/* Unified memory: what a Metal server takes of the GPU is its footprint. */
int
platform_tree_gpu(pid_t pid, uint64_t *per_device, size_t ndev)
{
	if (ndev == 0)
		return -1;
	for (size_t d = 1; d < ndev; d++)
		per_device[d] = 0;
	return platform_tree_rss(pid, &per_device[0]);
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
