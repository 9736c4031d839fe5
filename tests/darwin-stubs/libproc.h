/*
 * Stub: mirrors MacOSX.sdk <libproc.h> and, for proc_pid_rusage's
 * types, <sys/resource.h> (which cannot be shadowed here: glibc's gives
 * rlim_t) and <sys/proc_info.h> (struct proc_bsdinfo).
 */
#ifndef DARWIN_STUB_LIBPROC_H
#define DARWIN_STUB_LIBPROC_H
#include <stdint.h>
#include <sys/types.h>

#define PROC_PIDTBSDINFO	3
#define MAXCOMLEN		16

struct proc_bsdinfo {
	uint32_t	pbi_flags;
	uint32_t	pbi_status;
	uint32_t	pbi_xstatus;
	uint32_t	pbi_pid;
	uint32_t	pbi_ppid;
	uid_t		pbi_uid;
	gid_t		pbi_gid;
	uid_t		pbi_ruid;
	gid_t		pbi_rgid;
	uid_t		pbi_svuid;
	gid_t		pbi_svgid;
	uint32_t	rfu_1;
	char		pbi_comm[MAXCOMLEN];
	char		pbi_name[2 * MAXCOMLEN];
	uint32_t	pbi_nfiles;
	uint32_t	pbi_pgid;
	uint32_t	pbi_pjobc;
	uint32_t	e_tdev;
	uint32_t	e_tpgid;
	int32_t		pbi_nice;
	uint64_t	pbi_start_tvsec;
	uint64_t	pbi_start_tvusec;
};

/* <sys/resource.h> */
#define RUSAGE_INFO_V2	2
typedef void *rusage_info_t;
struct rusage_info_v2 {
	uint8_t		ri_uuid[16];
	uint64_t	ri_user_time;
	uint64_t	ri_system_time;
	uint64_t	ri_pkg_idle_wkups;
	uint64_t	ri_interrupt_wkups;
	uint64_t	ri_pageins;
	uint64_t	ri_wired_size;
	uint64_t	ri_resident_size;
	uint64_t	ri_phys_footprint;
	uint64_t	ri_proc_start_abstime;
	uint64_t	ri_proc_exit_abstime;
	uint64_t	ri_child_user_time;
	uint64_t	ri_child_system_time;
	uint64_t	ri_child_pkg_idle_wkups;
	uint64_t	ri_child_interrupt_wkups;
	uint64_t	ri_child_pageins;
	uint64_t	ri_child_elapsed_abstime;
	uint64_t	ri_diskio_bytesread;
	uint64_t	ri_diskio_byteswritten;
};

int	proc_pidinfo(int pid, int flavor, uint64_t arg, void *buffer,
	    int buffersize);
int	proc_listchildpids(pid_t ppid, void *buffer, int buffersize);
int	proc_pid_rusage(int pid, int flavor, rusage_info_t *buffer);
#endif
