/*
 * check_coldstart.c — how soon poold sees a starting server ready (issue
 * 10, "cold is only at parity"): output from the server that comes while
 * a health probe is out is not lost, and only a 200 makes it ready.
 *
 * The real poold on its real socket.  The server is this program itself
 * (check_coldstart --stand-in PORT FILE LINE MODEL): it answers GET /health 503
 * while "loading"; the first probe after the load it holds, prints LINE,
 * becomes ready and only then answers that probe 503 (it was asked
 * before), and writes when it did to FILE.  poold that forgot the output
 * waits out its back-off (1 s by then) before the next probe; poold that
 * kept it probes again at once (a "model loaded" line) or within 5 ms.
 * The bound is loose (a loaded 2-core machine): 500 ms against 1 s.
 *
 * Environment: POOLD_BIN (make check sets it).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "testlib.h"

/* The stand-in's load: long enough for poold's probes to back off to
 * their 1 s ceiling. */
#define LOAD_MS		2500
/* How long it holds the probe it prints during. */
#define HOLD_MS		100
/* From the held probe's 503 to ACQUIRE's answer: at once or 5 ms after,
 * against the 1 s back-off; loose for a loaded machine. */
#define SOON_MS		500

static char self[PATH_MAX];

/* --- the stand-in --- */

static long long
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
note(const char *file, const char *what)
{
	FILE *f = fopen(file, "a");

	if (f == NULL)
		return;
	fprintf(f, "%s %lld\n", what, mono_ns());
	fclose(f);
}

static void
answer(int fd, int status)
{
	char buf[256];
	int n;

	n = snprintf(buf, sizeof(buf), "HTTP/1.1 %d %s\r\nContent-Type: "
	    "application/json\r\nContent-Length: %d\r\nConnection: close\r\n"
	    "\r\n%s", status, status == 200 ? "OK" : status == 503 ?
	    "Service Unavailable" : "Not Found", status == 200 ? 15 : 2,
	    status == 200 ? "{\"status\":\"ok\"}" : "{}");
	(void)!write(fd, buf, (size_t)n);
	close(fd);
}

static int
stand_in(const char *portstr, const char *file, const char *line)
{
	struct sockaddr_in sin;
	char req[2048];
	size_t len;
	ssize_t n;
	long long start = mono_ns();
	int lfd, fd, one = 1;
	bool ready = false, held = false;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(portstr));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(lfd, 16) == -1) {
		fprintf(stderr, "stand-in: port %s: %s\n", portstr,
		    strerror(errno));
		return 1;
	}
	printf("stand-in: loading\n");
	fflush(stdout);
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			continue;
		for (len = 0; len < sizeof(req) - 1; len += (size_t)n) {
			if ((n = read(fd, req + len, sizeof(req) - 1 - len)) <= 0)
				break;
			req[len + (size_t)n] = '\0';
			if (strstr(req, "\r\n\r\n") != NULL)
				break;
		}
		if (strncmp(req, "GET /health ", 12) != 0)
			answer(fd, 404);
		else if (ready) {
			note(file, "ok");
			answer(fd, 200);
		} else if (held || mono_ns() - start < LOAD_MS * 1000000LL)
			answer(fd, 503);
		else {
			/* Asked while loading: the answer stays 503, but the
			 * line comes while poold still waits for it. */
			held = true;
			printf("%s\n", line);
			fflush(stdout);
			usleep(HOLD_MS * 1000);
			ready = true;
			note(file, "held");
			answer(fd, 503);
		}
	}
}

/* --- the tests --- */

/* FILE's "what NS" line: NS, or -1. */
static long long
noted(const char *file, const char *what)
{
	char buf[256], name[32];
	long long ns = -1, v;
	FILE *f = fopen(file, "r");

	while (f != NULL && fgets(buf, sizeof(buf), f) != NULL)
		if (sscanf(buf, "%31s %lld", name, &v) == 2 &&
		    strcmp(name, what) == 0 && ns == -1)
			ns = v;
	if (f != NULL)
		fclose(f);
	return ns;
}

static void
ready_soon_after(int n, const char *line)
{
	struct tl_daemon d;
	struct tl_conn *c;
	json_t *rep;
	char file[TL_PATH_MAX + 16], over[PATH_MAX + 2 * TL_PATH_MAX + 128];
	long long held, ok, replied;
	bool noted_ok;

	tl_daemon_init(&d, n);
	tl_model(&d, "m", "load_ms=0\n");
	snprintf(file, sizeof(file), "%s/noted", d.dir);
	snprintf(over, sizeof(over), "{\"command\": [\"%s\", \"--stand-in\", "
	    "\"{port}\", \"%s\", \"%s\", \"{path}\"], "
	    "\"health_interval\": 0}", self, file, line);
	tl_daemon_start(&d, over);
	c = tl_connect(&d);
	rep = tl_acquire(c, "m", 20000, false);
	replied = mono_ns();
	TL_ASSERT(tl_ok(rep), "ACQUIRE m: %s", tl_dump(rep));
	json_decref(rep);
	/* A poold that trusted the line is answered before the stand-in
	 * has even answered the probe it holds: wait for that first. */
	TL_WAIT_UNTIL(noted_ok, (held = noted(file, "held")) > 0, 5000);
	TL_ASSERT(noted_ok, "the stand-in never held a probe (%s)", file);
	ok = noted(file, "ok");
	/* Only a 200 makes it ready, whatever it printed. */
	TL_ASSERT(ok > held && replied >= ok, "ready without a 200 after "
	    "the line (held %lld, ok %lld, reply %lld)", held, ok, replied);
	fprintf(stderr, "\"%s\" during a probe: ready %.1f ms after that "
	    "probe's 503\n", line, (double)(replied - held) / 1e6);
	TL_ASSERT(replied - held < SOON_MS * 1000000LL, "\"%s\" while a probe "
	    "was out: ready %lld ms after its 503 (the back-off, not the "
	    "output)", line, (replied - held) / 1000000);
	tl_close(c);
	tl_daemon_finish(&d);
}

/* "model loaded": probed again at once. */
START_TEST(test_ready_line_during_probe)
{
	ready_soon_after(1, "srv  llama_server: model loaded");
}
END_TEST

/* Any output: probed again within the 5 ms floor. */
START_TEST(test_output_during_probe)
{
	ready_soon_after(2, "load_tensors: done");
}
END_TEST

int
main(int argc, char **argv)
{
	Suite *s;
	ssize_t n;

	if (argc == 6 && strcmp(argv[1], "--stand-in") == 0)
		return stand_in(argv[2], argv[3], argv[4]);
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0) {
		if (tl_skip_main("coldstart", "no /proc/self/exe: the "
		    "stand-in is this program"))
			return 1;
		return 0;
	}
	self[n] = '\0';
	s = suite_create("coldstart");
	tl_add(s, "ready_line_during_probe", test_ready_line_during_probe);
	tl_add(s, "output_during_probe", test_output_during_probe);
	return tl_run(s, CK_ENV);
}
