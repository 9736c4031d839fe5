/*
 * platform_linux.c — memory facts from /proc and the cgroup, parent death.
 */
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

#define PROC_READ_MAX_BYTES	16384
#define CGROUP_ROOT		"/sys/fs/cgroup"
#define CGROUP_V1_MEMORY	"/sys/fs/cgroup/memory/"
#define CGROUP_V1_ABSURD	(1ULL << 60)	/* v1's "no limit" */

/* Reads at most len - 1 bytes of path into buf, NUL-terminated. */
static int
read_small(const char *path, char *buf, size_t len)
{
	size_t	 off = 0;
	ssize_t	 n;
	int	 fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while (off < len - 1) {
		if ((n = read(fd, buf + off, len - 1 - off)) == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	close(fd);
	return 0;
}

/* A decimal number, then only whitespace; -1 otherwise. */
static int
parse_u64(const char *s, const char **end, uint64_t *out)
{
	unsigned long long	 v;
	char			*e;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno == ERANGE)
		return -1;
	*out = v;
	if (end != NULL)
		*end = e;
	return 0;
}

/* "Key:   123 kB" in a /proc file → bytes. */
static int
proc_field_kb(const char *path, const char *key, uint64_t *out)
{
	char		 buf[PROC_READ_MAX_BYTES], *p;
	const char	*e;
	size_t		 klen = strlen(key);
	uint64_t	 kb;

	if (read_small(path, buf, sizeof(buf)) == -1)
		return -1;
	for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, key, klen) != 0 || p[klen] != ':')
			continue;
		if (parse_u64(p + klen + 1, &e, &kb) == -1 ||
		    strncmp(e, " kB", 3) != 0 || kb > UINT64_MAX / 1024)
			break;
		*out = kb * 1024;
		return 0;
	}
	errno = ENOENT;
	return -1;
}

/* A cgroup file holding one number; "max" and the like are -1. */
static int
cgroup_value(const char *path, uint64_t *out)
{
	char		 buf[64];
	const char	*e;

	if (read_small(path, buf, sizeof(buf)) == -1 ||
	    parse_u64(buf, &e, out) == -1 || (*e != '\n' && *e != '\0'))
		return -1;
	return 0;
}

/* Our cgroup v2 path ("0::/a/b" in /proc/self/cgroup) into buf. */
static int
cgroup2_path(char *buf, size_t len)
{
	char	 file[4096], *p, *nl;

	if (read_small("/proc/self/cgroup", file, sizeof(file)) == -1)
		return -1;
	for (p = file; p != NULL; p = nl) {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		if (strncmp(p, "0::/", 4) != 0)
			continue;
		/* outside our cgroup namespace: only the root is visible */
		if (strstr(p, "/..") != NULL)
			p = "0::/";
		if (snprintf(buf, len, "%s", p + 3) >= (int)len)
			return -1;
		return 0;
	}
	return -1;
}

/*
 * Our cgroup v1 memory path ("4:memory:/a/b", or the controller in a
 * list, "4:cpu,memory:/a/b") into buf; "/" outside our namespace.
 */
static int
cgroup1_memory_path(char *buf, size_t len)
{
	char	 file[4096], *p, *nl, *ctl, *path;
	size_t	 n;

	if (read_small("/proc/self/cgroup", file, sizeof(file)) == -1)
		return -1;
	for (p = file; p != NULL; p = nl) {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		if ((ctl = strchr(p, ':')) == NULL ||
		    (path = strchr(++ctl, ':')) == NULL)
			continue;
		*path++ = '\0';
		for (n = strlen("memory"); (ctl = strstr(ctl, "memory")) !=
		    NULL; ctl += n)
			if ((ctl == p + strcspn(p, ":") + 1 || ctl[-1] == ',') &&
			    (ctl[n] == '\0' || ctl[n] == ','))
				break;
		if (ctl == NULL || path[0] != '/')
			continue;
		if (strstr(path, "/..") != NULL)
			path = "/";
		return snprintf(buf, len, "%s", path) >= (int)len ? -1 : 0;
	}
	return -1;
}

/*
 * Over cg and every cgroup above it (root/cg/limit_file, usage_file):
 * lowers *limit to the tightest limit and *room to the least room left
 * under one.  true if any level has a limit (below absurd: v1 writes a
 * huge number for "none").
 */
static bool
cgroup_walk(const char *root, char *cg, const char *limit_file,
    const char *usage_file, uint64_t absurd, uint64_t *limit, uint64_t *room)
{
	char		 file[PATH_MAX + 128], *slash;
	uint64_t	 max, cur;
	bool		 found = false;

	while (cg[0] == '/') {
		snprintf(file, sizeof(file), "%s%s/%s", root, cg, limit_file);
		if (cgroup_value(file, &max) == 0 && max < absurd) {
			found = true;
			snprintf(file, sizeof(file), "%s%s/%s", root, cg,
			    usage_file);
			if (cgroup_value(file, &cur) == -1)
				cur = 0;
			*limit = max < *limit ? max : *limit;
			cur = cur < max ? max - cur : 0;
			*room = cur < *room ? cur : *room;
		}
		if ((slash = strrchr(cg, '/')) == NULL || cg[1] == '\0')
			break;
		slash[slash == cg ? 1 : 0] = '\0';
	}
	return found;
}

/*
 * The tightest cgroup limit on us and the room left under it (limit
 * minus usage), over every level of the v2 hierarchy, else v1.
 * -1 when nothing limits us.
 */
static int
cgroup_limit(uint64_t *limit, uint64_t *room)
{
	char	 cg[PATH_MAX];

	*limit = *room = UINT64_MAX;
	if (cgroup2_path(cg, sizeof(cg)) == -1)
		cg[0] = '\0';
	if (cgroup_walk(CGROUP_ROOT, cg, "memory.max", "memory.current",
	    UINT64_MAX, limit, room))
		return 0;
	/* v1: our own memory cgroup and each above it, as for v2. */
	if (cgroup1_memory_path(cg, sizeof(cg)) == -1)
		snprintf(cg, sizeof(cg), "/");
	return cgroup_walk(CGROUP_V1_MEMORY, cg, "memory.limit_in_bytes",
	    "memory.usage_in_bytes", CGROUP_V1_ABSURD, limit, room) ? 0 : -1;
}

int
platform_total_memory(uint64_t *out)
{
	uint64_t	 total, limit, room;

	if (proc_field_kb("/proc/meminfo", "MemTotal", &total) == -1)
		return -1;
	if (cgroup_limit(&limit, &room) == 0 && limit < total)
		total = limit;
	*out = total;
	return 0;
}

int
platform_available_memory(uint64_t *out)
{
	uint64_t	 avail, limit, room;

	if (proc_field_kb("/proc/meminfo", "MemAvailable", &avail) == -1)
		return -1;
	if (cgroup_limit(&limit, &room) == 0 && room < avail)
		avail = room;
	*out = avail;
	return 0;
}

int
platform_process_rss(pid_t pid, uint64_t *out)
{
	char	 path[64];

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	return proc_field_kb(path, "VmRSS", out);
}

/*
 * The children of pid's main thread: a server's helpers, or poold's own
 * (servers and the orphans it adopted as a subreaper).
 */
size_t
platform_child_pids(pid_t pid, pid_t *out, size_t max)
{
	char path[64], *buf, *p, *end;
	size_t n = 0, len = 64 * 1024;
	long v;

	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", (long)pid,
	    (long)pid);
	if ((buf = malloc(len)) == NULL)
		return 0;
	if (read_small(path, buf, len) == -1) {
		free(buf);
		return 0;
	}
	for (p = buf; n < max; p = end) {
		v = strtol(p, &end, 10);
		if (end == p || v <= 0)
			break;
		out[n++] = (pid_t)v;
	}
	free(buf);
	return n;
}

#define TREE_DEPTH_MAX	4
#define TREE_WIDTH_MAX	64

static uint64_t
tree_rss(pid_t pid, int depth)
{
	pid_t kids[TREE_WIDTH_MAX];
	uint64_t rss = 0, sum;
	size_t n;

	if (platform_process_rss(pid, &rss) == -1)
		return 0;
	sum = rss;
	if (depth >= TREE_DEPTH_MAX)
		return sum;
	n = platform_child_pids(pid, kids, TREE_WIDTH_MAX);
	for (size_t i = 0; i < n; i++)
		sum += tree_rss(kids[i], depth + 1);
	return sum;
}

int
platform_tree_rss(pid_t pid, uint64_t *out)
{
	uint64_t rss;

	if (platform_process_rss(pid, &rss) == -1)
		return -1;
	*out = tree_rss(pid, 0);
	return 0;
}

/*
 * Field 22 of /proc/PID/stat: start time in clock ticks since boot.  -1
 * for a process that has ended (a zombie included).
 */
int
platform_process_start_time(pid_t pid, uint64_t *out)
{
	char path[64], buf[1024], *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (read_small(path, buf, sizeof(buf)) == -1)
		return -1;
	/* comm may hold spaces and parentheses: count from the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	if (p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
		return -1;	/* dead, only not reaped: gone for us */
	for (field = 2; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || parse_u64(p + 1, NULL, out) == -1)
		return -1;
	return 0;
}

/* In a child before exec: close every descriptor from 3 on but keep. */
void
platform_close_fds(int keep)
{
#ifdef SYS_close_range
	if (keep > 3)
		(void)syscall(SYS_close_range, 3U, (unsigned)keep - 1, 0U);
	if (syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U) == 0)
		return;
#endif
	for (long fd = 3, max = sysconf(_SC_OPEN_MAX); fd < max &&
	    fd < 65536; fd++)
		if (fd != keep)
			(void)close((int)fd);
}

int
platform_die_with_parent(pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
		return -1;
	/* the parent died before prctl: no signal will come */
	if (getppid() != parent) {
		errno = ESRCH;
		return -1;
	}
	return 0;
}

/*
 * Orphans of a server's tree (a grandchild whose parent died, one that
 * called setsid() included) are re-parented to poold, not init, so poold
 * sees them, stops them and reaps them.
 */
int
platform_become_subreaper(void)
{
	return prctl(PR_SET_CHILD_SUBREAPER, 1);
}

rlim_t
platform_nofile_max(rlim_t hard)
{
	return hard;	/* never above fs.nr_open, which caps the hard one */
}

/* --- GPU: CUDA devices through NVML (gpu_nvml.c) --- */

#define GPU_DEVICES_MAX		64
#define GPU_PROCESSES_MAX	1024

size_t
platform_gpu_budgets(uint64_t config_limit, uint64_t *budgets, size_t max,
    size_t *found, enum gpu_limit_source *src)
{
	uint64_t totals[GPU_DEVICES_MAX];
	size_t n = gpu_nvml_totals(totals, GPU_DEVICES_MAX);

	*found = n;
	return memtruth_cuda_gpu_budgets(totals, n, config_limit, budgets,
	    max, src);
}

/* The server and its children, as NVML names them (host pids). */
int
platform_tree_gpu(pid_t pid, uint64_t *per_device, size_t ndev)
{
	static struct gpu_process procs[GPU_PROCESSES_MAX];
	pid_t tree[1 + TREE_WIDTH_MAX];
	ssize_t n;

	if ((n = gpu_nvml_processes(procs, GPU_PROCESSES_MAX)) == -1)
		return -1;
	tree[0] = pid;
	(void)memtruth_tree_gpu_bytes(procs, (size_t)n, tree, 1 +
	    platform_child_pids(pid, tree + 1, TREE_WIDTH_MAX), per_device,
	    ndev);
	return 0;
}
