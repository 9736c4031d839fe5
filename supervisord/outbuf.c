/*
 * outbuf.c — a connection's output: bytes queued, then written as the
 * socket takes them.  The socket's clients (control.c) and the HTTP
 * front door's (http.c) both keep one per connection.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "poold.h"

size_t
outbuf_unsent(const struct outbuf *b)
{
	return b->len - b->off;
}

/*
 * Room for n more bytes; false if out of memory.  Bytes already written
 * are dropped once they are at least as many as the unsent ones (so each
 * byte moves at most once on average), else the buffer doubles.  Either
 * way it stays within about four times the unsent backlog, whatever the
 * peer's pace: a buffer that only ever grew at its end took a client that
 * read as fast as it asked, but never quite caught up, to hundreds of
 * MiB.
 */
static bool
outbuf_room(struct outbuf *b, size_t n)
{
	size_t unsent = outbuf_unsent(b), cap;
	char *nb;

	if (b->off > 0 && (b->off >= unsent || b->len + n > b->cap)) {
		memmove(b->buf, b->buf + b->off, unsent);
		b->off = 0;
		b->len = unsent;
	}
	if (b->len + n <= b->cap)
		return true;
	for (cap = b->cap ? b->cap : 4096; cap < b->len + n; cap *= 2)
		;
	if ((nb = realloc(b->buf, cap)) == NULL)
		return false;
	b->buf = nb;
	b->cap = cap;
	return true;
}

bool
outbuf_add(struct outbuf *b, const void *p, size_t n)
{
	if (!outbuf_room(b, n))
		return false;
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	b->added += n;
	return true;
}

/* All written: a buffer a big reply grew is not kept for ever. */
static void
outbuf_drained(struct outbuf *b)
{
	b->off = b->len = 0;
	if (b->cap > OUTBUF_KEEP_BYTES) {
		free(b->buf);
		b->buf = NULL;
		b->cap = 0;
	}
}

ssize_t
outbuf_write(struct outbuf *b, int fd)
{
	size_t written = 0;
	ssize_t n;

	while (b->off < b->len) {
		n = send(fd, b->buf + b->off, b->len - b->off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return (ssize_t)written;
		if (n == -1)
			return -1;
		b->off += (size_t)n;
		b->written += (size_t)n;
		written += (size_t)n;
	}
	outbuf_drained(b);
	return (ssize_t)written;
}

void
outbuf_free(struct outbuf *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}
