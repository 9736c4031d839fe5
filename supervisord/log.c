/*
 * log.c — one line per event on stderr:
 *
 *	2026-11-27T14:47:33.123Z poold[PID]: message
 *
 * Each line goes out in a single write(2), at most LOG_LINE_MAX_BYTES,
 * so lines from several processes sharing stderr do not interleave.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "poold.h"

#define LOG_LINE_MAX_BYTES	4096

static const char	*log_progname = "poold";
static bool		 log_verbose;
static bool		 log_quiet_info;

void
log_init(const char *progname, bool verbose)
{
	if (progname != NULL)
		log_progname = progname;
	log_verbose = verbose;
}

/* Control characters would forge or break lines: show them as '?'. */
static void
log_sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			*s = '?';
}

static void
log_write(const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(STDERR_FILENO, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* prefix goes before the message; errnum != -1 appends strerror(errnum). */
static void
log_vlog(const char *prefix, int errnum, const char *fmt, va_list ap)
{
	char		 line[LOG_LINE_MAX_BYTES], *msg;
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 len, room;
	int		 n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line + len, sizeof(line) - len, ".%03ldZ %s[%ld]: %s",
	    ts.tv_nsec / 1000000, log_progname, (long)getpid(), prefix);
	len += n > 0 ? (size_t)n : 0;
	if (len >= sizeof(line) - 1)
		len = sizeof(line) - 2;
	msg = line + len;
	room = sizeof(line) - 1 - len;	/* keep a byte for '\n' */
	n = vsnprintf(msg, room, fmt, ap);
	if (n >= 0 && errnum != -1 && (size_t)n < room)
		snprintf(msg + n, room - (size_t)n, ": %s", strerror(errnum));
	log_sanitize(msg);
	len += strlen(msg);
	line[len++] = '\n';
	log_write(line, len);
}

#define LOG_BODY(prefix, errnum) do {		\
	int	 saved_errno = errno;		\
	va_list	 ap;				\
						\
	va_start(ap, fmt);			\
	log_vlog((prefix), (errnum), fmt, ap);	\
	va_end(ap);				\
	errno = saved_errno;			\
} while (0)

void
log_info(const char *fmt, ...)
{
	if (!log_quiet_info)
		LOG_BODY("", -1);
}

void
log_quiet(void)
{
	log_quiet_info = true;
}

void
log_debug(const char *fmt, ...)
{
	if (log_verbose)
		LOG_BODY("", -1);
}

void
log_warn(const char *fmt, ...)
{
	LOG_BODY("", saved_errno);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY("", -1);
}

void
fatal(const char *fmt, ...)
{
	LOG_BODY("fatal: ", saved_errno);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal: ", -1);
	exit(1);
}
