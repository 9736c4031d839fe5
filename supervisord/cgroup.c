/*
 * cgroup.c — one cgroup v2 per server, on Linux, when poold may make them.
 *
 * A cgroup holds a server's whole tree: a grandchild that calls setsid()
 * or double-forks stays in it, and cgroup.kill (Linux 5.14) ends them
 * all at once.  poold makes the server's cgroup below its own ("server
 * cgroups" need no controller, so the no-internal-process rule does not
 * apply), the child joins it before exec, and the path goes into the
 * state file so the next poold can empty it after a kill -9.
 *
 * Elsewhere (macOS, no cgroup2 mount, a cgroup poold may not write,
 * "cgroup": "off") every function fails and poold falls back to process
 * groups (see child.c).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

#ifdef __linux__

#define MOUNTINFO_MAX_BYTES	(256 * 1024)
#define CGROUP_PROCS_MAX_BYTES	(64 * 1024)

static char	cg_base[PATH_MAX];	/* poold's own cgroup, "" if unusable */
static unsigned	cg_serial;
static uint64_t	cg_started;		/* poold's start time: names are unique */
static char	cg_mount[PATH_MAX];	/* where cgroup2 is mounted */

static ssize_t
read_file(const char *path, char *buf, size_t len)
{
	size_t off = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while (off < len - 1) {
		n = read(fd, buf + off, len - 1 - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	return (ssize_t)off;
}

static int
write_file(const char *path, const char *s)
{
	ssize_t n;
	int fd, saved;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	n = write(fd, s, strlen(s));
	saved = errno;
	close(fd);
	errno = saved;
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

/* Where cgroup2 is mounted (field 5 of the mountinfo line). */
static int
cgroup2_mount(char *out, size_t len)
{
	char *buf, *line, *next, *sep, mnt[PATH_MAX];
	int rc = -1;

	if ((buf = malloc(MOUNTINFO_MAX_BYTES)) == NULL ||
	    read_file("/proc/self/mountinfo", buf, MOUNTINFO_MAX_BYTES) <= 0) {
		free(buf);
		return -1;
	}
	for (line = buf; line != NULL && rc == -1; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((sep = strstr(line, " - ")) == NULL ||
		    strncmp(sep, " - cgroup2 ", 11) != 0)
			continue;
		/* id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 &&
		    strchr(mnt, '\\') == NULL &&	/* no escaped blanks */
		    (size_t)snprintf(out, len, "%s", mnt) < len)
			rc = 0;
	}
	free(buf);
	return rc;
}

/* Our cgroup ("0::/a/b" in /proc/self/cgroup). */
static int
own_cgroup(char *out, size_t len)
{
	char buf[4096], *p, *nl;

	if (read_file("/proc/self/cgroup", buf, sizeof(buf)) <= 0)
		return -1;
	for (p = buf; p != NULL; p = nl) {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		if (strncmp(p, "0::/", 4) != 0 || strstr(p, "/..") != NULL)
			continue;
		if ((size_t)snprintf(out, len, "%s", p + 3) >= len)
			return -1;
		return 0;
	}
	return -1;
}

int
cgroup_init(bool wanted, char *why, size_t len)
{
	char mnt[PATH_MAX], own[PATH_MAX], probe[PATH_MAX + 64];

	cg_base[0] = '\0';
	if (platform_process_start_time(getpid(), &cg_started) == -1)
		cg_started = 0;
	if (!wanted) {
		snprintf(why, len, "\"cgroup\": \"off\"");
		return -1;
	}
	if (cgroup2_mount(mnt, sizeof(mnt)) == -1) {
		snprintf(why, len, "no cgroup2 mount");
		return -1;
	}
	snprintf(cg_mount, sizeof(cg_mount), "%s", mnt);
	if (own_cgroup(own, sizeof(own)) == -1) {
		snprintf(why, len, "no cgroup v2 entry in /proc/self/cgroup");
		return -1;
	}
	if ((size_t)snprintf(cg_base, sizeof(cg_base), "%s%s", mnt,
	    strcmp(own, "/") == 0 ? "" : own) >= sizeof(cg_base))
		goto no;
	/* Try what a start will do: make one, and may we move into it? */
	snprintf(probe, sizeof(probe), "%s/poold.%ld.probe", cg_base,
	    (long)getpid());
	if (mkdir(probe, 0755) == -1 && errno != EEXIST) {
		snprintf(why, len, "%s: cannot make a cgroup: %s", cg_base,
		    strerror(errno));
		cg_base[0] = '\0';
		return -1;
	}
	strncat(probe, "/cgroup.procs", sizeof(probe) - strlen(probe) - 1);
	if (access(probe, W_OK) == -1) {
		snprintf(why, len, "%s: %s", probe, strerror(errno));
		*strrchr(probe, '/') = '\0';
		(void)rmdir(probe);
		cg_base[0] = '\0';
		return -1;
	}
	*strrchr(probe, '/') = '\0';
	(void)rmdir(probe);
	snprintf(why, len, "%s", cg_base);
	return 0;
no:
	cg_base[0] = '\0';
	snprintf(why, len, "cgroup path too long");
	return -1;
}

bool
cgroup_enabled(void)
{
	return cg_base[0] != '\0';
}

/*
 * A fresh cgroup for one server below poold's own: poold.PID.START.N, a
 * name no other poold (now or later) makes, so a leftover cgroup named
 * in a state file holds only that poold's server.
 */
int
cgroup_create(char *path, size_t len)
{
	for (int tries = 0; tries < 100; tries++) {
		if (!cgroup_enabled() || (size_t)snprintf(path, len,
		    "%s/poold.%ld.%llu.%u", cg_base, (long)getpid(),
		    (unsigned long long)cg_started, ++cg_serial) >=
		    len) {
			errno = ENOTSUP;
			return -1;
		}
		if (mkdir(path, 0755) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
		(void)rmdir(path);	/* an empty one of an earlier poold */
	}
	errno = EEXIST;
	return -1;
}

/* For the child, before fork: where it writes "0" to join. */
int
cgroup_procs_fd(const char *path)
{
	char file[PATH_MAX + 16];

	snprintf(file, sizeof(file), "%s/cgroup.procs", path);
	return open(file, O_WRONLY | O_CLOEXEC);
}

/* Does anything still run in it?  (Zombies do not count.) */
bool
cgroup_populated(const char *path)
{
	char file[PATH_MAX + 16], buf[4096], *p;

	snprintf(file, sizeof(file), "%s/cgroup.events", path);
	if (read_file(file, buf, sizeof(buf)) > 0 &&
	    (p = strstr(buf, "populated ")) != NULL)
		return p[10] == '1';
	snprintf(file, sizeof(file), "%s/cgroup.procs", path);
	return read_file(file, buf, sizeof(buf)) > 0;
}

/*
 * SIGKILL to everything in it: cgroup.kill where the kernel has it
 * (5.14), else each pid of cgroup.procs (the caller repeats while it is
 * populated: a fork may race the list).
 */
int
cgroup_kill(const char *path)
{
	char file[PATH_MAX + 16], *buf, *p, *end;
	long pid;

	snprintf(file, sizeof(file), "%s/cgroup.kill", path);
	if (write_file(file, "1") == 0)
		return 0;
	if (errno != ENOENT && errno != EACCES && errno != EPERM)
		return -1;
	snprintf(file, sizeof(file), "%s/cgroup.procs", path);
	if ((buf = malloc(CGROUP_PROCS_MAX_BYTES)) == NULL)
		return -1;
	if (read_file(file, buf, CGROUP_PROCS_MAX_BYTES) == -1) {
		free(buf);
		return -1;
	}
	for (p = buf; (pid = strtol(p, &end, 10)) > 0; p = end)
		(void)kill((pid_t)pid, SIGKILL);
	free(buf);
	return 0;
}

int
cgroup_remove(const char *path)
{
	return rmdir(path);
}

/* The cgroup pid is in, as a path like the ones cgroup_create makes. */
int
cgroup_of(pid_t pid, char *out, size_t len)
{
	char file[64], buf[4096], *p, *nl;

	snprintf(file, sizeof(file), "/proc/%ld/cgroup", (long)pid);
	if (!cgroup_enabled() || read_file(file, buf, sizeof(buf)) <= 0)
		return -1;
	for (p = buf; p != NULL; p = nl) {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		if (strncmp(p, "0::/", 4) != 0)
			continue;
		if ((size_t)snprintf(out, len, "%s%s", cg_mount, p + 3) >= len)
			return -1;
		return 0;
	}
	return -1;
}

#else /* !__linux__ */

int
cgroup_init(bool wanted, char *why, size_t len)
{
	(void)wanted;
	snprintf(why, len, "no cgroups on this system");
	return -1;
}

bool
cgroup_enabled(void)
{
	return false;
}

int
cgroup_create(char *path, size_t len)
{
	(void)path;
	(void)len;
	errno = ENOTSUP;
	return -1;
}

int
cgroup_procs_fd(const char *path)
{
	(void)path;
	errno = ENOTSUP;
	return -1;
}

bool
cgroup_populated(const char *path)
{
	(void)path;
	return false;
}

int
cgroup_kill(const char *path)
{
	(void)path;
	errno = ENOTSUP;
	return -1;
}

int
cgroup_remove(const char *path)
{
	(void)path;
	errno = ENOTSUP;
	return -1;
}

int
cgroup_of(pid_t pid, char *out, size_t len)
{
	(void)pid;
	(void)out;
	(void)len;
	errno = ENOTSUP;
	return -1;
}

#endif /* __linux__ */
