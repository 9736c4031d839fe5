/*
 * check_door.c — what the HTTP front door costs on the wire, against the
 * real poold and the stand-in server (issue 10, "Measured").
 *
 * Failures go through TL_ASSERT, which first prints poold's log and kills
 * every process the test started.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/tcp.h>		/* tcpi_data_segs_in: not in glibc's */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "testlib.h"

#define WAIT_MS		10000	/* for a condition to hold */
#define REQUESTS	5

/* poold with the front door on a port the kernel picks: that port. */
static int
door_port(struct tl_daemon *d, struct tl_conn **cp)
{
	const char *listen, *colon;
	long long until = tl_now_ms() + WAIT_MS;
	json_t *st;
	int port = 0;

	tl_daemon_start(d, "{\"http\":{\"listen\":\"127.0.0.1:0\"}}");
	*cp = tl_connect(d);
	while (port == 0 && tl_now_ms() < until) {
		st = tl_stats(d, *cp);
		listen = tl_str(st, "http.listen");
		if (listen != NULL && (colon = strrchr(listen, ':')) != NULL)
			port = atoi(colon + 1);
		json_decref(st);
		if (port == 0)
			tl_sleep_ms(50);
	}
	TL_ASSERT(port > 0, "no http.listen in STATS within %d ms", WAIT_MS);
	return port;
}

/*
 * A response the server wrote at once reaches the client in one segment:
 * the rewritten head and the body go out in one write, not one each
 * (the client would wake twice, and with TCP_NODELAY pay two segments).
 * The end is the server's FIN right after it (Connection: close).
 */
START_TEST(test_one_write)
{
	static const char body[] = "{\"model\":\"a\",\"messages\":[{\"role\":"
	    "\"user\",\"content\":\"hi\"}],\"max_tokens\":4}";
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	struct tcp_info ti;
	socklen_t len;
	int port;

	tl_daemon_init(&d, 1);
	tl_model(&d, "a", "load_ms=0\nmem=1M\n");
	port = door_port(&d, &c);
	for (int i = 0; i < REQUESTS; i++) {
		h = tl_http_open(port);
		TL_ASSERT(tl_http_sendf(h, "POST /v1/chat/completions "
		    "HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\nConnection: "
		    "close\r\n\r\n%s", strlen(body), body) == 0, "send: %s",
		    strerror(errno));
		TL_ASSERT(tl_http_wait_done(h, WAIT_MS) && h->status == 200,
		    "request %d: HTTP %d: %.300s", i, h->status,
		    h->body != NULL ? h->body : "");
		while (!h->eof && tl_http_read(h, WAIT_MS) > 0)
			;
		TL_ASSERT(h->eof, "request %d: no end after the response", i);
		len = sizeof(ti);
		memset(&ti, 0, sizeof(ti));
		TL_ASSERT(getsockopt(h->fd, IPPROTO_TCP, TCP_INFO, &ti, &len)
		    == 0, "TCP_INFO: %s", strerror(errno));
		TL_ASSERT(ti.tcpi_data_segs_in == 1, "request %d of %d: the "
		    "response came in %u segments, not 1", i + 1, REQUESTS,
		    ti.tcpi_data_segs_in);
		tl_http_close(h);
	}
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("door");

	tl_add(s, "one_write", test_one_write);
	return tl_run(s, CK_NORMAL);
}
