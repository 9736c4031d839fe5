/*
 * echo.c — the physical limit of the transport: a single-threaded epoll
 * UNIX-socket server that answers each line at once.
 *
 *	echo SOCKET
 *
 * A line that starts with "R<n> " is answered with a line of n bytes
 * (newline included), so the hot-path bench can send exactly the bytes
 * poold would get and read back exactly the bytes poold would answer.
 * Any other line is echoed.  Replies to one read go out in one write, as
 * poold does.  It stops on SIGTERM.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVENTS_MAX	256
#define IN_BYTES	65536
#define REPLY_MAX	65536

struct conn {
	int	 fd;
	char	 in[IN_BYTES];
	size_t	 in_len;
	char	*out;
	size_t	 out_len, out_cap;
};

static char	 filler[REPLY_MAX];

static void
out_append(struct conn *c, const char *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		while (c->out_len + n > c->out_cap)
			c->out_cap = c->out_cap ? c->out_cap * 2 : 65536;
		if ((c->out = realloc(c->out, c->out_cap)) == NULL)
			abort();
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void
answer(struct conn *c, const char *line, size_t len)
{
	size_t n;

	if (len > 1 && line[0] == 'R' && line[1] >= '0' && line[1] <= '9') {
		n = strtoul(line + 1, NULL, 10);
		if (n == 0 || n > REPLY_MAX)
			n = 1;
		out_append(c, filler, n - 1);
		out_append(c, "\n", 1);
		return;
	}
	out_append(c, line, len);
	out_append(c, "\n", 1);
}

/* 0, or -1 when the connection is done. */
static int
on_readable(struct conn *c)
{
	ssize_t n;
	size_t off, sent;
	char *nl;

	n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	c->in_len += (size_t)n;
	off = 0;
	while ((nl = memchr(c->in + off, '\n', c->in_len - off)) != NULL) {
		answer(c, c->in + off, (size_t)(nl - (c->in + off)));
		off = (size_t)(nl - c->in) + 1;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	if (c->in_len == sizeof(c->in))
		return -1;		/* a line longer than the buffer */
	/* Blocking-ish write: the clients read what they asked for. */
	for (sent = 0; sent < c->out_len; ) {
		n = send(c->fd, c->out + sent, c->out_len - sent, MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			usleep(10);
			continue;
		}
		if (n <= 0)
			return -1;
		sent += (size_t)n;
	}
	c->out_len = 0;
	return 0;
}

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	stop = 1;
}

int
main(int argc, char **argv)
{
	struct sockaddr_un sun;
	struct epoll_event ev, evs[EVENTS_MAX];
	struct conn *c;
	int lfd, ep, n, fd;

	if (argc != 2) {
		fprintf(stderr, "usage: echo socket\n");
		return 1;
	}
	memset(filler, 'x', sizeof(filler));
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", argv[1]);
	(void)unlink(argv[1]);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1 ||
	    bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(lfd, 1024) == -1) {
		perror(argv[1]);
		return 1;
	}
	if ((ep = epoll_create1(0)) == -1) {
		perror("epoll_create1");
		return 1;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	while (!stop) {
		if ((n = epoll_wait(ep, evs, EVENTS_MAX, -1)) == -1) {
			if (errno == EINTR)
				continue;
			perror("epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			if ((c = evs[i].data.ptr) == NULL) {
				while ((fd = accept4(lfd, NULL, NULL,
				    SOCK_NONBLOCK)) != -1) {
					if ((c = calloc(1, sizeof(*c))) == NULL)
						abort();
					c->fd = fd;
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (on_readable(c) == -1) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				free(c->out);
				free(c);
			}
		}
	}
	unlink(argv[1]);
	return 0;
}
