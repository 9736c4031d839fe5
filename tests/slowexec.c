/*
 * slowexec — an LD_PRELOAD stand-in for an exec that hangs (a binary on
 * a hung NFS or FUSE mount), for check_tree.
 *
 * Preloaded into poold, it holds every execvp() of a forked server for
 * as long as the file named by SLOWEXEC_GATE (read once, when poold
 * starts: the child's environment is already cleaned when it execs)
 * exists.  poold's own code is not changed: the child blocks exactly
 * where a hung exec would, before the close-on-exec report is sent.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char gate[4096];

__attribute__((constructor)) static void
slowexec_init(void)
{
	const char *g = getenv("SLOWEXEC_GATE");

	if (g != NULL)
		snprintf(gate, sizeof(gate), "%s", g);
}

int
execvp(const char *file, char *const argv[])
{
	struct timespec tick = { 0, 10 * 1000000L };
	int (*real)(const char *, char *const[]);

	while (gate[0] != '\0' && access(gate, F_OK) == 0)
		(void)nanosleep(&tick, NULL);
	real = (int (*)(const char *, char *const[]))dlsym(RTLD_NEXT,
	    "execvp");
	return real(file, argv);
}
