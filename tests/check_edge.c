/*
 * check_edge.c — the edge of the socket holds (issue 9, items 1-4): the
 * output buffer stays as small as the backlog, leases are bounded, a dead
 * client ends at once while a half-closed one is answered, and poold
 * keeps descriptors for its servers and closes idle clients.
 *
 * Every test drives the real poold over its real socket (testlib.c).
 *
 * Environment: POOLD_BIN, FAKELLAMA_BIN (make check sets them).
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "poold.h"
#include "testlib.h"

#define MIB		(1024LL * 1024)

/* --- small helpers ------------------------------------------------ */

/*
 * Under AddressSanitizer freed memory waits in a quarantine of 256 MiB,
 * which would hide whether poold's own buffers stay small: keep it small
 * for the poold this test starts (the test runs in a process of its own).
 */
static void
small_asan_quarantine(void)
{
	const char *old = getenv("ASAN_OPTIONS");
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s%squarantine_size_mb=1:"
	    "thread_local_quarantine_size_kb=64", old ? old : "",
	    old && *old ? ":" : "");
	setenv("ASAN_OPTIONS", buf, 1);
}

/* --- item 1: the output buffer ------------------------------------ */

#define FLAT_ID_BYTES	900	/* each reply ≈ 1 KiB */
#define FLAT_PRELOAD	600	/* replies left unread: ≈ 600 KiB backlog */
#define FLAT_BATCH	32
#define FLAT_WARMUP	100	/* rounds before the first RSS figure */
#define FLAT_ROUNDS	2000	/* ≈ 62 MiB of replies in all */
#define FLAT_GROWTH_MAX	(8 * MIB)

static void
send_pings(struct tl_conn *c, const char *line, size_t len, int n)
{
	char *batch;
	int i;

	batch = malloc(len * (size_t)n);
	TL_ASSERT(batch != NULL, "out of memory");
	for (i = 0; i < n; i++)
		memcpy(batch + (size_t)i * len, line, len);
	TL_ASSERT(tl_send(c, batch, len * (size_t)n) == 0,
	    "sending %d PINGs: %s", n, strerror(errno));
	free(batch);
}

static void
read_replies(struct tl_conn *c, int n, const char *what)
{
	char *line;
	int i;

	for (i = 0; i < n; i++) {
		line = tl_recv_line(c, TL_REPLY_TIMEOUT_MS, NULL);
		TL_ASSERT(line != NULL, "%s: reply %d of %d missing%s", what,
		    i, n, c->eof ? " (connection closed)" : "");
		TL_ASSERT(strncmp(line, "{\"ok\":true", 10) == 0,
		    "%s: %.200s", what, line);
		free(line);
	}
}

/*
 * Item 1.  A client pipelines PINGs and reads at the pace it asks, with
 * a steady backlog of about 600 KiB (under outbuf_bytes, 1 MiB): the
 * buffer never drains, so a buffer that only grows at its end takes poold
 * up by every byte it ever sent.  poold's RSS must stay flat.
 */
START_TEST(test_outbuf_flat)
{
	struct tl_daemon d;
	struct tl_conn *c;
	char id[FLAT_ID_BYTES + 1], line[FLAT_ID_BYTES + 64];
	long long before, after;
	size_t len;
	int r;

	small_asan_quarantine();
	tl_daemon_init(&d, 1);
	tl_daemon_start(&d, NULL);
	memset(id, 'x', FLAT_ID_BYTES);
	id[FLAT_ID_BYTES] = '\0';
	len = (size_t)snprintf(line, sizeof(line),
	    "{\"cmd\":\"PING\",\"id\":\"%s\"}\n", id);
	c = tl_connect(&d);
	send_pings(c, line, len, FLAT_PRELOAD);
	for (r = 0; r < FLAT_WARMUP; r++) {
		send_pings(c, line, len, FLAT_BATCH);
		read_replies(c, FLAT_BATCH, "warm-up");
	}
	before = tl_proc_rss(d.pid);
	for (r = 0; r < FLAT_ROUNDS; r++) {
		send_pings(c, line, len, FLAT_BATCH);
		read_replies(c, FLAT_BATCH, "steady backlog");
	}
	after = tl_proc_rss(d.pid);
	read_replies(c, FLAT_PRELOAD, "the backlog");
	fprintf(stderr, "outbuf_flat: poold RSS %.1f MiB before, %.1f MiB "
	    "after %d MiB of replies\n", (double)before / MIB,
	    (double)after / MIB,
	    (int)((long long)FLAT_ROUNDS * FLAT_BATCH * (long long)len / MIB));
	TL_ASSERT(before > 0 && after > 0, "no VmRSS for poold");
	TL_ASSERT(after - before < FLAT_GROWTH_MAX, "poold's RSS grew from "
	    "%.1f MiB to %.1f MiB under a steady backlog", (double)before / MIB,
	    (double)after / MIB);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("edge");

	tl_add(s, "outbuf_flat", test_outbuf_flat);
	return tl_run(s, CK_ENV);
}
