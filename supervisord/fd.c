/*
 * fd.c — descriptors that are close-on-exec from birth where the system
 * allows it (Linux), and right after birth where it does not (macOS).
 * poold is single-threaded, so no fork can come in between.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

int
fd_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	return flags == -1 ? -1 : fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int
fd_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	return flags == -1 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int
fd_pipe(int fds[2])
{
#ifdef __linux__
	return pipe2(fds, O_CLOEXEC);
#else
	if (pipe(fds) == -1)
		return -1;
	(void)fd_cloexec(fds[0]);
	(void)fd_cloexec(fds[1]);
	return 0;
#endif
}

/* A close-on-exec, non-blocking socket. */
int
fd_socket(int domain, int type)
{
	int fd;

#ifdef SOCK_CLOEXEC
	fd = socket(domain, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
#else
	if ((fd = socket(domain, type, 0)) != -1) {
		(void)fd_cloexec(fd);
		(void)fd_nonblock(fd);
	}
#endif
	return fd;
}

int
fd_tcp_addr(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	errno = EINVAL;
	return -1;
}

/* accept(2), the new descriptor close-on-exec and non-blocking. */
int
fd_accept(int listener)
{
	int fd;

#ifdef __linux__
	fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
#else
	if ((fd = accept(listener, NULL, NULL)) != -1) {
		(void)fd_cloexec(fd);
		(void)fd_nonblock(fd);
	}
#endif
	return fd;
}
