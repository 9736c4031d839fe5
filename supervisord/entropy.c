/*
 * entropy.c — random bytes from the system, for what must not be guessed.
 *
 * Lease ids carry an epoch drawn here at each start (pool_lease_epoch()),
 * so an id kept from an earlier run of poold names nothing in this one.
 * arc4random_buf() where the system has it (the BSDs, macOS), else
 * getentropy() (glibc 2.25 and later), else /dev/urandom.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 25)
#include <sys/random.h>
#define HAVE_GETENTROPY	1
#endif
#if defined(__OpenBSD__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__APPLE__)
#define HAVE_ARC4RANDOM	1
#endif

#include "poold.h"

static int
urandom_fill(void *buf, size_t len)
{
	unsigned char *p = buf;
	ssize_t n;
	int fd, saved;

	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while (len > 0) {
		if ((n = read(fd, p, len)) <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			saved = n == 0 ? EIO : errno;
			close(fd);
			errno = saved;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	close(fd);
	return 0;
}

int
entropy_fill(void *buf, size_t len)
{
#if defined(HAVE_ARC4RANDOM)
	arc4random_buf(buf, len);
	return 0;
#else
#if defined(HAVE_GETENTROPY)
	/* At most 256 bytes a call; ENOSYS on kernels before 3.17. */
	if (len <= 256 && getentropy(buf, len) == 0)
		return 0;
#endif
	return urandom_fill(buf, len);
#endif
}

uint32_t
entropy_lease_epoch(void)
{
	struct timespec ts;
	uint32_t epoch;

	if (entropy_fill(&epoch, sizeof(epoch)) == 0)
		return epoch;
	/* Ownership still guards every lease; only the ids of two runs
	 * may now be alike.  Say so, and do not refuse to serve. */
	log_warn("no random bytes for lease ids (lease ids of an earlier run "
	    "may be guessed)");
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^
	    (uint32_t)getpid() << 16;
}
