/*
 * fakellama — a stand-in for llama.cpp's llama-server in poold's tests.
 *
 * It answers the HTTP endpoints poold and its tests touch, takes as long
 * to load and as much memory as its model file says, and misbehaves on
 * request (crashes, never gets ready, ignores SIGTERM, leaves a
 * grandchild ...), so every path of the supervisor can be driven without
 * a real model.  Its messages copy llama-server's where poold or a test
 * reads them.
 *
 * The model file given with -m is text, one key=value a line, '#' starts
 * a comment.  A file starting with "GGUF" is a real model: defaults.
 * FAKELLAMA_<KEY> in the environment, if not empty, overrides the file's
 * KEY.
 *
 *	load_ms=100		process start to /health 200
 *	mem=4M			bytes allocated and touched during the load
 *	listen_delay_ms=0	no listening socket before this
 *	mode=normal		normal crash_start crash_later never_ready
 *				ignore_term slow_exit term_twice fork_child
 *				escape_child (its grandchild calls setsid())
 *				daemon_child (a child forks that grandchild,
 *				then exits: the grandchild loses its parent)
 *	crash_after_ms=		crash_start: 50 after start;
 *				crash_later: 500 after ready
 *	crash_signal=0		crash_later dies of this signal; 0: exits
 *	exit_code=1		exit status of crash_start and crash_later
 *	exit_delay_ms=2000	slow_exit: from SIGTERM to exit 0
 *	stream_delay_ms=0	between chunks of a streamed reply
 *	health_fail_after_ms=	/health answers 503 from this long after
 *				ready on (the rest keeps serving); empty:
 *				never
 *	stream_tokens=3		events of a streamed reply (the request's
 *				"max_tokens" overrides it)
 *	stream_token_bytes=0	each event's text is padded with 'x' to
 *				this many bytes (at most 64K): big streams
 *	crash_after_events=	crash (exit_code, or crash_signal) once K
 *				events of a stream were written: the
 *				stream ends without its final chunk
 *	client_idle_ms=10000	a client that neither sends nor reads for
 *				this long is dropped
 *
 * The same keys can be given on the command line, after the file and
 * the environment: "--fake KEY=VALUE" (repeatable); "--tokens N" is
 * stream_tokens and "--token-ms MS" stream_delay_ms.
 *
 * Endpoints: GET /health, GET /v1/models; POST /v1/chat/completions and
 * /v1/completions answer a JSON completion, or with "stream": true a
 * text/event-stream, Transfer-Encoding: chunked, of N events
 * "data: {...OpenAI chunk...}\n\n" stream_delay_ms apart, then
 * "data: [DONE]\n\n" and the last chunk; POST /v1/embeddings a small
 * embedding (base64 when "encoding_format" asks for it).  Request
 * bodies come with Content-Length or chunked.  A non-streamed reply
 * carries "fakellama": {"body_bytes": N}, the body length it got.
 *
 * GET /debug/stats answers what the tests assert on the upstream side:
 *	{"requests", "streams_started", "streams_finished", "events_sent",
 *	 "open_streams", "disconnects", "stalls", "unauthorized", "last_head",
 *	 "last_body_bytes"}
 * "disconnects" counts streams whose client went away (EOF, reset)
 * before the last event, "stalls" streams dropped after client_idle_ms
 * without progress; each also logs a line on stderr ("client
 * disconnected mid-stream after K of N events").  "last_head" is the
 * head of the last POST as received (hop-by-hop checks).
 *
 * With an API key (--api-key KEY, or LLAMA_API_KEY in the environment,
 * as llama-server reads it) every path but llama-server's public ones
 * (/health, /v1/health, /models, /v1/models, /api/tags, /) answers 401
 * and llama-server's body {"error":{"code":401,"message":"Invalid API
 * Key","type":"authentication_error"}} unless the request carries
 * "Authorization: Bearer KEY"; such requests count in "unauthorized" of
 * /debug/stats (which needs the key too).
 *
 * When it becomes ready it logs how many /health requests it answered
 * while loading ("ready port P at T after N health requests").
 *
 * One process, one poll() loop: every timer (load progress, crash, slow
 * exit, stream chunks, idle clients) is a deadline the loop sleeps to, so
 * a slow client never holds up /health.
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define CONN_MAX		256
#define REQUEST_MAX_BYTES	(64 * 1024)	/* head and body together */
#define REQUEST_LINE_MAX_BYTES	2048
#define METHOD_MAX_BYTES	16
#define TARGET_MAX_BYTES	1024
#define REPLY_MAX_BYTES		8192
#define NAME_JSON_MAX_BYTES	1024		/* the model name, escaped */
#define MODEL_FILE_MAX_BYTES	(64 * 1024)
#define DEFAULT_CLIENT_IDLE_MS	10000		/* a stalled client is dropped */
#define DRAIN_MS		1000		/* see conn_finish_reply() */
#define TOUCH_TICK_MS		10
#define ACCEPT_PAUSE_MS		100
#define GRANDCHILD_MAX_S	3600
#define NS_PER_MS		1000000LL
#define STREAM_TOKEN_MAX_BYTES	(64 * 1024)
#define STREAM_TOKENS_MAX	100000000LL
#define EVENT_MAX_BYTES		(STREAM_TOKEN_MAX_BYTES + 2048)
/* A reply, or one event with its chunk framing and the last chunk. */
#define OUT_MAX_BYTES		(EVENT_MAX_BYTES + 4 * REPLY_MAX_BYTES)
#define LAST_HEAD_MAX_BYTES	2048
#define DEFAULT_STREAM_TOKENS	3

#define DEFAULT_LOAD_MS		100
#define DEFAULT_MEM_BYTES	(4LL << 20)
#define DEFAULT_EXIT_CODE	1
#define DEFAULT_EXIT_DELAY_MS	2000
#define DEFAULT_CRASH_START_MS	50
#define DEFAULT_CRASH_LATER_MS	500

#define LOADING_BODY \
	"{\"error\":{\"code\":503,\"message\":\"Loading model\"," \
	"\"type\":\"unavailable_error\"}}"

enum mode {
	MODE_NORMAL,
	MODE_CRASH_START,
	MODE_CRASH_LATER,
	MODE_NEVER_READY,
	MODE_IGNORE_TERM,
	MODE_SLOW_EXIT,
	MODE_TERM_TWICE,
	MODE_FORK_CHILD,
	MODE_ESCAPE_CHILD,
	MODE_DAEMON_CHILD,
};

static const char *const mode_names[] = {
	[MODE_NORMAL] = "normal",
	[MODE_CRASH_START] = "crash_start",
	[MODE_CRASH_LATER] = "crash_later",
	[MODE_NEVER_READY] = "never_ready",
	[MODE_IGNORE_TERM] = "ignore_term",
	[MODE_SLOW_EXIT] = "slow_exit",
	[MODE_TERM_TWICE] = "term_twice",
	[MODE_FORK_CHILD] = "fork_child",
	[MODE_ESCAPE_CHILD] = "escape_child",
	[MODE_DAEMON_CHILD] = "daemon_child",
};

/* What the command line and the model file ask for. */
struct settings {
	const char	*path;
	const char	*host;
	int		 port;
	const char	*api_key;	/* NULL: every request is let in */
	char		 name[NAME_JSON_MAX_BYTES];	/* basename, as JSON */
	enum mode	 mode;
	long long	 load_ms;
	long long	 mem_bytes;
	long long	 listen_delay_ms;
	long long	 crash_after_ms;	/* -1: the mode's default */
	long long	 crash_signal;
	long long	 exit_code;
	long long	 exit_delay_ms;
	long long	 stream_delay_ms;
	long long	 health_fail_after_ms;	/* -1: never */
	long long	 stream_tokens;
	long long	 stream_token_bytes;
	long long	 crash_after_events;	/* -1: never */
	long long	 client_idle_ms;
};

enum key_kind {
	KEY_NUMBER,
	KEY_SIZE,	/* a number with an optional K, M or G */
	KEY_MODE,
};

struct key {
	const char	*name;
	enum key_kind	 kind;
	size_t		 offset;	/* of a long long in struct settings */
	long long	 max;
};

#define HOUR_MS		(3600LL * 1000)
static const struct key keys[] = {
	{ "load_ms", KEY_NUMBER, offsetof(struct settings, load_ms), HOUR_MS },
	{ "mem", KEY_SIZE, offsetof(struct settings, mem_bytes), 1LL << 40 },
	{ "listen_delay_ms", KEY_NUMBER,
	    offsetof(struct settings, listen_delay_ms), HOUR_MS },
	{ "mode", KEY_MODE, 0, 0 },
	{ "crash_after_ms", KEY_NUMBER,
	    offsetof(struct settings, crash_after_ms), HOUR_MS },
	{ "crash_signal", KEY_NUMBER,
	    offsetof(struct settings, crash_signal), 64 },
	{ "exit_code", KEY_NUMBER, offsetof(struct settings, exit_code), 255 },
	{ "exit_delay_ms", KEY_NUMBER,
	    offsetof(struct settings, exit_delay_ms), HOUR_MS },
	{ "stream_delay_ms", KEY_NUMBER,
	    offsetof(struct settings, stream_delay_ms), HOUR_MS },
	{ "health_fail_after_ms", KEY_NUMBER,
	    offsetof(struct settings, health_fail_after_ms), HOUR_MS },
	{ "stream_tokens", KEY_NUMBER,
	    offsetof(struct settings, stream_tokens), STREAM_TOKENS_MAX },
	{ "stream_token_bytes", KEY_SIZE,
	    offsetof(struct settings, stream_token_bytes),
	    STREAM_TOKEN_MAX_BYTES },
	{ "crash_after_events", KEY_NUMBER,
	    offsetof(struct settings, crash_after_events), STREAM_TOKENS_MAX },
	{ "client_idle_ms", KEY_NUMBER,
	    offsetof(struct settings, client_idle_ms), HOUR_MS },
};

enum conn_state {
	CONN_READING,	/* collecting the request */
	CONN_WRITING,	/* sending the reply; stream chunks may follow */
	CONN_DRAINING,	/* reply sent and shut down, waiting for the EOF */
};

enum stream_kind {
	STREAM_CHAT,		/* chat.completion.chunk */
	STREAM_TEXT,		/* text_completion */
};

/* One client; one request per connection, like Connection: close. */
struct conn {
	int		 fd;
	enum conn_state	 state;
	int64_t		 deadline_ns;	/* when a stalled client is dropped */
	enum stream_kind kind;
	long long	 stream_total;	/* events to send; 0: not a stream */
	long long	 events;	/* of the stream, made so far */
	int64_t		 next_chunk_ns;
	size_t		 in_len;
	size_t		 out_len;
	size_t		 out_sent;
	char		 in[REQUEST_MAX_BYTES];
	char		 out[OUT_MAX_BYTES];
};

struct request {
	char		 method[METHOD_MAX_BYTES];
	char		 path[TARGET_MAX_BYTES];	/* without the query */
	const char	*head;
	size_t		 head_len;
	char		*body;		/* in the connection's buffer */
	size_t		 body_len;
	bool		 chunked;	/* Transfer-Encoding: chunked */
};

/* The whole process.  One instance; the signal handler only needs the pipe. */
struct fake {
	struct settings	 set;
	int64_t		 start_ns;
	int64_t		 listen_ns;	/* when the socket may open */
	int64_t		 load_ns;	/* when the load is done */
	bool		 loaded;
	bool		 ready;		/* /health answers 200 */
	int64_t		 ready_ns;
	unsigned long	 health_requests;	/* answered so far */
	int64_t		 crash_ns;	/* 0: no crash planned */
	int64_t		 exit_ns;	/* 0: no exit planned */
	int64_t		 accept_resume_ns;	/* 0: accepting */
	int		 listen_fd;
	int		 terms;		/* SIGTERMs and SIGINTs seen */
	unsigned char	*mem;
	size_t		 mem_touched;
	size_t		 page_bytes;
	unsigned long	 completions;	/* numbers the reply ids */
	/* What GET /debug/stats tells. */
	unsigned long	 requests;
	unsigned long	 streams_started;
	unsigned long	 streams_finished;
	unsigned long	 disconnects;
	unsigned long	 stalls;
	unsigned long	 unauthorized;	/* answered 401 */
	unsigned long long events_sent;
	size_t		 last_body_bytes;
	char		 last_head[LAST_HEAD_MAX_BYTES];
	size_t		 nconns;
	struct conn	*conns[CONN_MAX];
};

static struct fake	 fk;
static int		 sig_pipe[2] = { -1, -1 };

static void	 log_event(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
static _Noreturn void finish(int);
static _Noreturn void usage_error(const char *, ...)
		    __attribute__((format(printf, 1, 2)));

/* --- time, logging, exit ------------------------------------------- */

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One write per line, so lines from several processes do not mix. */
static void
write_line(const char *line)
{
	size_t	 len = strlen(line);
	ssize_t	 n;

	while (len > 0) {
		n = write(STDERR_FILENO, line, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		line += n;
		len -= (size_t)n;
	}
}

static void
log_event(const char *fmt, ...)
{
	char	 line[1024];
	int	 n;
	va_list	 ap;

	n = snprintf(line, sizeof(line), "fakellama[%ld]: ", (long)getpid());
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	write_line(line);
}

static void
usage_error(const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_event("%s", msg);
	write_line("usage: fakellama -m model --port port [--host host] "
	    "[llama-server options]\n");
	exit(1);
}

static void
conn_free(size_t i)
{
	struct conn *c = fk.conns[i];

	close(c->fd);
	free(c);
	fk.conns[i] = fk.conns[--fk.nconns];
}

/* Frees everything, so valgrind sees a clean exit. */
static void
release_all(void)
{
	while (fk.nconns > 0)
		conn_free(fk.nconns - 1);
	if (fk.listen_fd != -1)
		close(fk.listen_fd);
	fk.listen_fd = -1;
	if (fk.mem != NULL)
		munmap(fk.mem, (size_t)fk.set.mem_bytes);
	fk.mem = NULL;
}

static void
finish(int status)
{
	log_event("exiting status %d", status);
	release_all();
	if (sig_pipe[0] != -1) {
		close(sig_pipe[0]);
		close(sig_pipe[1]);
	}
	exit(status);
}

/* Dies of signo itself, as a real crash would, but leaves no core file. */
static _Noreturn void
die_of_signal(int signo)
{
	struct rlimit	 no_core = { 0, 0 };
	sigset_t	 set;

	setrlimit(RLIMIT_CORE, &no_core);
	signal(signo, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, signo);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(signo);
	_exit(128 + signo);
}

/*
 * Started with stdout closed, the listening socket would become fd 1 and
 * get the "listening" line: park /dev/null on any missing stdio fd first.
 */
static void
keep_stdio_open(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR)) != -1 && fd <= STDERR_FILENO)
		;
	if (fd > STDERR_FILENO)
		close(fd);
}

/* --- settings ------------------------------------------------------ */

static void
set_defaults(struct settings *s)
{
	memset(s, 0, sizeof(*s));
	s->host = "127.0.0.1";
	s->port = -1;
	s->mode = MODE_NORMAL;
	s->load_ms = DEFAULT_LOAD_MS;
	s->mem_bytes = DEFAULT_MEM_BYTES;
	s->crash_after_ms = -1;
	s->exit_code = DEFAULT_EXIT_CODE;
	s->exit_delay_ms = DEFAULT_EXIT_DELAY_MS;
	s->health_fail_after_ms = -1;
	s->stream_tokens = DEFAULT_STREAM_TOKENS;
	s->crash_after_events = -1;
	s->client_idle_ms = DEFAULT_CLIENT_IDLE_MS;
}

/* "NAME VALUE" or "NAME=VALUE" at argv[*i]: the value, *i past it. */
static const char *
take_value(int argc, char **argv, int *i, const char *name)
{
	const char	*arg = argv[*i];
	size_t		 len = strlen(name);

	if (strncmp(arg, name, len) != 0)
		return NULL;
	if (arg[len] == '=')
		return arg + len + 1;
	if (arg[len] != '\0')
		return NULL;
	if (*i + 1 >= argc)
		usage_error("option %s needs a value", name);
	return argv[++*i];
}

static int
parse_port(const char *s)
{
	char	*end;
	long	 port;

	errno = 0;
	port = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || port < 0 ||
	    port > 65535)
		usage_error("bad port '%s'", s);
	return (int)port;
}

/*
 * Takes what poold and the tests pass; any other llama-server option is
 * skipped with its value, if the next word does not look like an option.
 */
static void
parse_args(int argc, char **argv, struct settings *s)
{
	const char	*v;
	int		 i;

	for (i = 1; i < argc; i++) {
		if (argv[i][0] != '-')
			continue;
		if ((v = take_value(argc, argv, &i, "-m")) != NULL ||
		    (v = take_value(argc, argv, &i, "--model")) != NULL)
			s->path = v;
		else if ((v = take_value(argc, argv, &i, "--port")) != NULL)
			s->port = parse_port(v);
		else if ((v = take_value(argc, argv, &i, "--host")) != NULL)
			s->host = v;
		else if ((v = take_value(argc, argv, &i, "--api-key")) != NULL)
			s->api_key = v;
		else if (strchr(argv[i], '=') == NULL && i + 1 < argc &&
		    argv[i + 1][0] != '-')
			i++;
	}
	/* llama-server: the flag, else its variable. */
	if (s->api_key == NULL && (v = getenv("LLAMA_API_KEY")) != NULL &&
	    *v != '\0')
		s->api_key = v;
	if (s->path == NULL)
		usage_error("no model file (-m)");
	if (s->port == -1)
		usage_error("no port (--port)");
}

static const struct key *
find_key(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* Decimal, with K, M or G (powers of 1024) when size is set. */
static int
parse_number(const char *s, bool size, long long max, long long *out)
{
	char		*end;
	long long	 v, unit = 1;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return -1;
	if (size && *end != '\0') {
		switch (*end++) {
		case 'k': case 'K': unit = 1LL << 10; break;
		case 'm': case 'M': unit = 1LL << 20; break;
		case 'g': case 'G': unit = 1LL << 30; break;
		default: return -1;
		}
	}
	if (*end != '\0' || v > max / unit)
		return -1;
	*out = v * unit;
	return 0;
}

static int
parse_mode(const char *s, enum mode *out)
{
	size_t i;

	for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (strcmp(mode_names[i], s) == 0) {
			*out = (enum mode)i;
			return 0;
		}
	}
	return -1;
}

/* A wrong key or value is fatal: a typo must not pass for a mode. */
static void
apply_key(struct settings *s, const char *where, const char *name,
    const char *value)
{
	const struct key	*k;
	long long		*field;
	int			 rc;

	if ((k = find_key(name)) == NULL) {
		log_event("%s: unknown key '%s'", where, name);
		finish(1);
	}
	if (k->kind == KEY_MODE)
		rc = parse_mode(value, &s->mode);
	else {
		field = (long long *)(void *)((char *)s + k->offset);
		rc = parse_number(value, k->kind == KEY_SIZE, k->max, field);
	}
	if (rc == -1) {
		log_event("%s: bad value '%s' for %s", where, value, name);
		finish(1);
	}
}

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r'))
		*--end = '\0';
	return s;
}

static void
apply_line(struct settings *s, char *line, int lineno)
{
	char	 where[PATH_MAX + 32];
	char	*eq;

	if ((eq = strchr(line, '#')) != NULL)
		*eq = '\0';
	line = trim(line);
	if (*line == '\0')
		return;
	snprintf(where, sizeof(where), "%s:%d", s->path, lineno);
	if ((eq = strchr(line, '=')) == NULL) {
		log_event("%s: expected key=value", where);
		finish(1);
	}
	*eq = '\0';
	apply_key(s, where, trim(line), trim(eq + 1));
}

/* Reads at most MODEL_FILE_MAX_BYTES: a real GGUF may be gigabytes. */
static size_t
read_model_file(const char *path, char *buf, size_t size)
{
	size_t	 len = 0;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		goto fail;
	while (len < size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			close(fd);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return len;
fail:
	/* The words llama-server uses, in case a test greps for them. */
	fprintf(stderr, "error: failed to open model file '%s': %s\n", path,
	    strerror(errno));
	finish(1);
}

static void
load_model_file(struct settings *s)
{
	char	*buf, *line, *next;
	size_t	 len;
	int	 lineno = 1;

	if ((buf = malloc(MODEL_FILE_MAX_BYTES)) == NULL) {
		log_event("out of memory");
		finish(1);
	}
	len = read_model_file(s->path, buf, MODEL_FILE_MAX_BYTES);
	if (len >= 4 && memcmp(buf, "GGUF", 4) == 0) {
		free(buf);
		return;
	}
	for (line = buf; line != NULL; line = next, lineno++) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		apply_line(s, line, lineno);
	}
	free(buf);
}

static void
apply_environment(struct settings *s)
{
	char		 var[64], *p;
	const char	*value;
	size_t		 i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(var, sizeof(var), "FAKELLAMA_%s", keys[i].name);
		for (p = var; *p != '\0'; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		/* Empty counts as unset, so a harness can clear a key. */
		if ((value = getenv(var)) != NULL && *value != '\0')
			apply_key(s, var, keys[i].name, value);
	}
}

/*
 * "--fake KEY=VALUE", "--tokens N", "--token-ms MS": last, so a command
 * line in poold's config wins over the file and the environment.
 */
static void
apply_flags(struct settings *s, int argc, char **argv)
{
	const char	*v;
	char		 kv[256], *eq;
	int		 i;

	for (i = 1; i < argc; i++) {
		if ((v = take_value(argc, argv, &i, "--tokens")) != NULL)
			apply_key(s, "--tokens", "stream_tokens", v);
		else if ((v = take_value(argc, argv, &i, "--token-ms")) != NULL)
			apply_key(s, "--token-ms", "stream_delay_ms", v);
		else if ((v = take_value(argc, argv, &i, "--fake")) != NULL) {
			snprintf(kv, sizeof(kv), "%s", v);
			if ((eq = strchr(kv, '=')) == NULL)
				usage_error("--fake %s: expected KEY=VALUE", v);
			*eq = '\0';
			apply_key(s, "--fake", kv, eq + 1);
		}
	}
}

/* Writes src as the inside of a JSON string, cut short to fit. */
static void
json_escape(char *dst, size_t size, const char *src)
{
	size_t		 len = 0;
	unsigned char	 ch;
	char		 esc[8];

	for (; *src != '\0'; src++) {
		ch = (unsigned char)*src;
		if (ch == '"' || ch == '\\')
			snprintf(esc, sizeof(esc), "\\%c", ch);
		else if (ch < 0x20)
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
		else
			snprintf(esc, sizeof(esc), "%c", ch);
		if (len + strlen(esc) >= size)
			break;
		memcpy(dst + len, esc, strlen(esc));
		len += strlen(esc);
	}
	dst[len] = '\0';
}

static void
resolve_defaults(struct settings *s)
{
	const char *base = strrchr(s->path, '/');

	json_escape(s->name, sizeof(s->name), base != NULL ? base + 1 :
	    s->path);
	if (s->crash_after_ms == -1)
		s->crash_after_ms = s->mode == MODE_CRASH_START ?
		    DEFAULT_CRASH_START_MS : DEFAULT_CRASH_LATER_MS;
}

/* --- signals ------------------------------------------------------- */

/* Async-signal-safe: the loop learns of the signal from the pipe. */
static void
on_signal(int signo)
{
	int		 saved = errno;
	unsigned char	 b = (unsigned char)signo;
	ssize_t		 n;

	/* A full pipe already holds a wakeup: nothing is lost. */
	n = write(sig_pipe[1], &b, 1);
	(void)n;
	errno = saved;
}

static int
set_nonblocking(int fd)
{
	int flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return -1;
	return 0;
}

static void
setup_signals(void)
{
	struct sigaction sa;

	if (pipe(sig_pipe) == -1 || set_nonblocking(sig_pipe[0]) == -1 ||
	    set_nonblocking(sig_pipe[1]) == -1) {
		log_event("signal pipe: %s", strerror(errno));
		finish(1);
	}
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

static void
on_term(int signo, int64_t now)
{
	fk.terms++;
	log_event("got %s", signo == SIGTERM ? "SIGTERM" : "SIGINT");
	switch (fk.set.mode) {
	case MODE_IGNORE_TERM:
		log_event("ignoring it (mode ignore_term)");
		break;
	case MODE_SLOW_EXIT:
		if (fk.exit_ns == 0) {
			fk.exit_ns = now + fk.set.exit_delay_ms * NS_PER_MS;
			log_event("exiting in %lld ms (mode slow_exit)",
			    fk.set.exit_delay_ms);
		}
		break;
	case MODE_TERM_TWICE:
		/* llama-server waits for open requests on the first one. */
		if (fk.terms == 1) {
			log_event("requests open, exiting on the next one "
			    "(mode term_twice)");
			break;
		}
		finish(1);
	default:
		finish(0);
	}
}

static void
read_signals(int64_t now)
{
	unsigned char	 sigs[16];
	ssize_t		 n, i;

	while ((n = read(sig_pipe[0], sigs, sizeof(sigs))) > 0)
		for (i = 0; i < n; i++)
			on_term(sigs[i], now);
}

/* --- the model's life: memory, listening, ready, crash -------------- */

static void
map_memory(void)
{
	size_t bytes = (size_t)fk.set.mem_bytes;

	fk.page_bytes = (size_t)sysconf(_SC_PAGESIZE);
	if (bytes == 0)
		return;
	fk.mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fk.mem == MAP_FAILED) {
		fk.mem = NULL;
		log_event("cannot map %zu bytes: %s", bytes, strerror(errno));
		finish(1);
	}
}

/* Writes a page at a time in step with the load, so RSS grows steadily. */
static void
touch_memory(int64_t now)
{
	size_t	 bytes = (size_t)fk.set.mem_bytes, target = bytes;
	int64_t	 load = fk.load_ns - fk.start_ns, done = now - fk.start_ns;

	if (fk.mem == NULL)
		return;
	if (done < load)
		target = (size_t)((double)bytes * (double)done /
		    (double)load);
	while (fk.mem_touched < target) {
		fk.mem[fk.mem_touched] = 1;
		fk.mem_touched += fk.page_bytes;
	}
	if (fk.mem_touched > bytes)
		fk.mem_touched = bytes;
}

static _Noreturn void
bind_failed(void)
{
	int saved = errno;

	fprintf(stderr, "error: couldn't bind HTTP server socket, "
	    "hostname: %s, port: %d\n", fk.set.host, fk.set.port);
	log_event("bind: %s", strerror(saved));
	finish(1);
}

/* The port actually bound: --port 0 asks the kernel for one. */
static int
bound_port(int fd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return fk.set.port;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return fk.set.port;
}

static int
listen_on(const struct addrinfo *ai)
{
	int fd, on = 1;

	if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) ==
	    -1)
		return -1;
	/* As llama-server does: a port in TIME_WAIT is free to reuse. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
	    listen(fd, SOMAXCONN) == -1 || set_nonblocking(fd) == -1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static void
start_listening(void)
{
	struct addrinfo	 hints, *res, *ai;
	char		 port[16];
	int		 fd = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%d", fk.set.port);
	if (getaddrinfo(fk.set.host, port, &hints, &res) != 0) {
		errno = EADDRNOTAVAIL;
		bind_failed();
	}
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
		fd = listen_on(ai);
	freeaddrinfo(res);
	if (fd == -1)
		bind_failed();
	fk.listen_fd = fd;
	fk.set.port = bound_port(fd);
	printf("fakellama: listening on %s:%d\n", fk.set.host, fk.set.port);
	fflush(stdout);
}

/*
 * The grandchild keeps only its process group and the inherited stdio,
 * like a helper a real server leaves behind.  It ignores SIGTERM, so only
 * the SIGKILL poold sends the group after reaping the leader ends it; the
 * alarm ends it anyway if a broken run forgets it.
 */
static _Noreturn void
grandchild_main(void)
{
	release_all();
	close(sig_pipe[0]);
	close(sig_pipe[1]);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	/* escape_child: out of the server's session and process group. */
	if ((fk.set.mode == MODE_ESCAPE_CHILD ||
	    fk.set.mode == MODE_DAEMON_CHILD) && setsid() == -1)
		log_event("setsid: %s", strerror(errno));
	log_event("grandchild of %ld sleeping in pgid %ld, ignoring SIGTERM",
	    (long)getppid(), (long)getpgrp());
	alarm(GRANDCHILD_MAX_S);
	for (;;)
		pause();
}

/* daemon_child: a child that forks the grandchild and exits at once,
 * as a daemon's double fork does; we reap it. */
static void
fork_daemon_grandchild(void)
{
	pid_t pid;

	switch (pid = fork()) {
	case -1:
		log_event("fork: %s", strerror(errno));
		return;
	case 0:
		if (fork() == 0)
			grandchild_main();
		_exit(0);
	default:
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		log_event("daemon child %ld left a grandchild", (long)pid);
	}
}

static void
fork_grandchild(void)
{
	pid_t pid;

	switch (pid = fork()) {
	case -1:
		log_event("fork: %s", strerror(errno));
		break;
	case 0:
		grandchild_main();
	default:
		log_event("forked grandchild %ld", (long)pid);
	}
}

static void
become_loaded(void)
{
	int64_t now = mono_ns();

	fk.loaded = true;
	if (fk.set.mode == MODE_CRASH_START)
		return;		/* it crashes before it is ever ready */
	if (fk.set.mode == MODE_NEVER_READY) {
		log_event("loaded, but never ready (mode never_ready)");
		return;
	}
	fk.ready = true;
	fk.ready_ns = now;
	log_event("ready port %d at %lld after %lu health requests",
	    fk.set.port, (long long)now, fk.health_requests);
	if (fk.set.mode == MODE_CRASH_LATER)
		fk.crash_ns = now + fk.set.crash_after_ms * NS_PER_MS;
	if (fk.set.mode == MODE_FORK_CHILD || fk.set.mode == MODE_ESCAPE_CHILD)
		fork_grandchild();
	else if (fk.set.mode == MODE_DAEMON_CHILD)
		fork_daemon_grandchild();
}

static _Noreturn void
crash(void)
{
	if (fk.set.mode == MODE_CRASH_START) {
		write_line("error: fakellama crash_start: cannot load model\n");
		finish((int)fk.set.exit_code);
	}
	write_line("fakellama: crashing\n");
	if (fk.set.crash_signal != 0)
		die_of_signal((int)fk.set.crash_signal);
	finish((int)fk.set.exit_code);
}

/* --- replies ------------------------------------------------------- */

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 501: return "Not Implemented";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

static void
out_printf(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends to the reply; sizes are bounded so it always fits. */
static void
out_printf(struct conn *c, const char *fmt, ...)
{
	size_t	 room = sizeof(c->out) - c->out_len;
	int	 n;
	va_list	 ap;

	va_start(ap, fmt);
	n = vsnprintf(c->out + c->out_len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= room) {
		log_event("reply truncated");
		n = (int)room - 1;
	}
	c->out_len += (size_t)n;
}

static void
reply(struct conn *c, int status, const char *body)
{
	out_printf(c, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json; charset=utf-8\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: close\r\n"
	    "Server: fakellama\r\n"
	    "\r\n%s", status, status_text(status), strlen(body), body);
	c->state = CONN_WRITING;
}

static void
reply_error(struct conn *c, int status, const char *message,
    const char *type)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"error\":{\"code\":%d,"
	    "\"message\":\"%s\",\"type\":\"%s\"}}", status, message, type);
	reply(c, status, body);
}

static void
reply_bad_request(struct conn *c, int status)
{
	reply_error(c, status, status_text(status), "invalid_request_error");
}

static void
answer_health(struct conn *c)
{
	fk.health_requests++;
	if (fk.ready && fk.set.health_fail_after_ms >= 0 &&
	    mono_ns() >= fk.ready_ns + fk.set.health_fail_after_ms *
	    NS_PER_MS)
		reply(c, 503, "{\"error\":{\"code\":503,\"message\":"
		    "\"fakellama: unhealthy (health_fail_after_ms)\"}}");
	else if (fk.ready)
		reply(c, 200, "{\"status\":\"ok\"}");
	else
		reply(c, 503, LOADING_BODY);
}

static void
answer_models(struct conn *c)
{
	char body[REPLY_MAX_BYTES / 2];

	snprintf(body, sizeof(body), "{\"object\":\"list\",\"data\":"
	    "[{\"id\":\"%s\",\"object\":\"model\"}]}", fk.set.name);
	reply(c, 200, body);
}

/*
 * Where "KEY": starts its value in the body, past blanks and the colon;
 * NULL if the key is not there.  Good enough for the tests' bodies: the
 * first occurrence wins, nesting is not looked at.
 */
static const char *
body_value(const char *body, size_t len, const char *key)
{
	const char	*end = body + len, *p;
	char		 quoted[64];
	size_t		 n;

	n = (size_t)snprintf(quoted, sizeof(quoted), "\"%s\"", key);
	if ((p = memmem(body, len, quoted, n)) == NULL)
		return NULL;
	p += n;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' ||
	    *p == '\n' || *p == ':'))
		p++;
	return p;
}

static bool
body_starts(const char *body, size_t len, const char *value_at,
    const char *text)
{
	size_t n = strlen(text);

	return value_at != NULL && (size_t)(body + len - value_at) >= n &&
	    memcmp(value_at, text, n) == 0;
}

/* True if the request body asks for "stream": true. */
static bool
wants_stream(const char *body, size_t len)
{
	return body_starts(body, len, body_value(body, len, "stream"),
	    "true");
}

/* The request's "max_tokens", else stream_tokens; at least 1. */
static long long
stream_length(const char *body, size_t len)
{
	const char	*p = body_value(body, len, "max_tokens");
	long long	 n = 0;

	if (p == NULL || *p < '0' || *p > '9')
		n = fk.set.stream_tokens;
	else
		for (; p < body + len && *p >= '0' && *p <= '9'; p++)
			if ((n = n * 10 + (*p - '0')) > STREAM_TOKENS_MAX)
				n = STREAM_TOKENS_MAX;
	return n < 1 ? 1 : n;
}

static void
answer_completion(struct conn *c, const struct request *rq,
    enum stream_kind kind)
{
	char body[REPLY_MAX_BYTES / 2];

	if (kind == STREAM_CHAT)
		snprintf(body, sizeof(body), "{\"id\":\"chatcmpl-fakellama-%lu\","
		    "\"object\":\"chat.completion\",\"created\":%lld,"
		    "\"model\":\"%s\",\"choices\":[{\"index\":0,\"message\":"
		    "{\"role\":\"assistant\",\"content\":"
		    "\"hello from fakellama %s\"},\"finish_reason\":\"stop\"}],"
		    "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":4,"
		    "\"total_tokens\":5},\"fakellama\":{\"body_bytes\":%zu}}",
		    fk.completions, (long long)time(NULL), fk.set.name,
		    fk.set.name, rq->body_len);
	else
		snprintf(body, sizeof(body), "{\"id\":\"cmpl-fakellama-%lu\","
		    "\"object\":\"text_completion\",\"created\":%lld,"
		    "\"model\":\"%s\",\"choices\":[{\"index\":0,\"text\":"
		    "\"hello from fakellama %s\",\"logprobs\":null,"
		    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
		    "\"completion_tokens\":4,\"total_tokens\":5},"
		    "\"fakellama\":{\"body_bytes\":%zu}}", fk.completions,
		    (long long)time(NULL), fk.set.name, fk.set.name,
		    rq->body_len);
	reply(c, 200, body);
}

/*
 * The text of event i: "hello", " from fakellama", " NAME", then
 * " tokI"; padded with 'x' to stream_token_bytes.
 */
static void
event_text(char *buf, size_t size, long long i)
{
	static char	 pad[STREAM_TOKEN_MAX_BYTES + 1];
	size_t		 len, want = (size_t)fk.set.stream_token_bytes;

	if (i == 0)
		snprintf(buf, size, "hello");
	else if (i == 1)
		snprintf(buf, size, " from fakellama");
	else if (i == 2)
		snprintf(buf, size, " %s", fk.set.name);
	else
		snprintf(buf, size, " tok%lld", i);
	len = strlen(buf);
	if (want > len && want < size) {
		if (pad[0] == '\0')
			memset(pad, 'x', sizeof(pad) - 1);
		memcpy(buf + len, pad, want - len);
		buf[want] = '\0';
	}
}

/* Event i of c's stream, framed as one chunk; the last one ends it all. */
static void
append_event(struct conn *c, long long i)
{
	static char	 text[STREAM_TOKEN_MAX_BYTES + NAME_JSON_MAX_BYTES];
	static char	 ev[EVENT_MAX_BYTES];
	bool		 last = i == c->stream_total - 1;
	int		 n;

	event_text(text, sizeof(text), i);
	if (c->kind == STREAM_CHAT)
		n = snprintf(ev, sizeof(ev), "data: {\"id\":"
		    "\"chatcmpl-fakellama-%lu\",\"object\":"
		    "\"chat.completion.chunk\",\"created\":%lld,"
		    "\"model\":\"%s\",\"choices\":[{\"index\":0,\"delta\":"
		    "{%s\"content\":\"%s\"},\"finish_reason\":%s}]}\n\n%s",
		    fk.completions, (long long)time(NULL), fk.set.name,
		    i == 0 ? "\"role\":\"assistant\"," : "", text,
		    last ? "\"stop\"" : "null", last ? "data: [DONE]\n\n" : "");
	else
		n = snprintf(ev, sizeof(ev), "data: {\"id\":"
		    "\"cmpl-fakellama-%lu\",\"object\":\"text_completion\","
		    "\"created\":%lld,\"model\":\"%s\",\"choices\":[{\"index\":0,"
		    "\"text\":\"%s\",\"logprobs\":null,\"finish_reason\":%s}]}"
		    "\n\n%s", fk.completions, (long long)time(NULL),
		    fk.set.name, text, last ? "\"stop\"" : "null",
		    last ? "data: [DONE]\n\n" : "");
	if (n < 0 || (size_t)n >= sizeof(ev))
		n = (int)sizeof(ev) - 1;
	out_printf(c, "%x\r\n%s\r\n%s", n, ev, last ? "0\r\n\r\n" : "");
	c->events = i + 1;
	fk.events_sent++;
}

/* The first event is due at once, the others stream_delay_ms apart. */
static void
start_stream(struct conn *c, const struct request *rq,
    enum stream_kind kind, int64_t now)
{
	out_printf(c, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/event-stream\r\n"
	    "Cache-Control: no-cache\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "Connection: close\r\n"
	    "Server: fakellama\r\n"
	    "\r\n");
	c->kind = kind;
	c->stream_total = stream_length(rq->body, rq->body_len);
	c->events = 0;
	c->next_chunk_ns = now;
	c->state = CONN_WRITING;
	fk.streams_started++;
}

static void
answer_generation(struct conn *c, const struct request *rq,
    enum stream_kind kind, int64_t now)
{
	if (!fk.ready) {
		reply(c, 503, LOADING_BODY);
		return;
	}
	fk.completions++;
	if (wants_stream(rq->body, rq->body_len))
		start_stream(c, rq, kind, now);
	else
		answer_completion(c, rq, kind);
}

/* Standard base64 of len bytes; out holds 4 * ((len + 2) / 3) + 1. */
static void
base64(char *out, const unsigned char *in, size_t len)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t		 i;
	unsigned	 v;

	for (i = 0; i < len; i += 3) {
		v = (unsigned)in[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*out++ = abc[(v >> 18) & 63];
		*out++ = abc[(v >> 12) & 63];
		*out++ = i + 1 < len ? abc[(v >> 6) & 63] : '=';
		*out++ = i + 2 < len ? abc[v & 63] : '=';
	}
	*out = '\0';
}

/*
 * Four floats; as base64 of little-endian float32 when asked (the openai
 * package asks by default), as llama-server does.
 */
static void
answer_embeddings(struct conn *c, const struct request *rq)
{
	static const float	 vec[4] = { 0.25f, -0.5f, 0.125f, 1.0f };
	unsigned char		 raw[sizeof(vec)];
	char			 value[64], b64[4 * ((sizeof(raw) + 2) / 3) + 1];
	char			 body[REPLY_MAX_BYTES / 2];
	size_t			 i;

	if (!fk.ready) {
		reply(c, 503, LOADING_BODY);
		return;
	}
	if (body_starts(rq->body, rq->body_len, body_value(rq->body,
	    rq->body_len, "encoding_format"), "\"base64\"")) {
		for (i = 0; i < 4; i++) {
			uint32_t u;

			memcpy(&u, &vec[i], sizeof(u));
			raw[4 * i] = (unsigned char)u;
			raw[4 * i + 1] = (unsigned char)(u >> 8);
			raw[4 * i + 2] = (unsigned char)(u >> 16);
			raw[4 * i + 3] = (unsigned char)(u >> 24);
		}
		base64(b64, raw, sizeof(raw));
		snprintf(value, sizeof(value), "\"%s\"", b64);
	} else
		snprintf(value, sizeof(value), "[0.25,-0.5,0.125,1.0]");
	snprintf(body, sizeof(body), "{\"object\":\"list\",\"data\":"
	    "[{\"object\":\"embedding\",\"index\":0,\"embedding\":%s}],"
	    "\"model\":\"%s\",\"usage\":{\"prompt_tokens\":1,"
	    "\"total_tokens\":1},\"fakellama\":{\"body_bytes\":%zu}}",
	    value, fk.set.name, rq->body_len);
	reply(c, 200, body);
}

static unsigned long
open_streams(void)
{
	unsigned long	 n = 0;
	size_t		 i;

	for (i = 0; i < fk.nconns; i++)
		if (fk.conns[i]->stream_total > 0 &&
		    fk.conns[i]->state == CONN_WRITING)
			n++;
	return n;
}

static void
answer_debug_stats(struct conn *c)
{
	static char	 head[6 * LAST_HEAD_MAX_BYTES];
	static char	 body[6 * LAST_HEAD_MAX_BYTES + 1024];

	json_escape(head, sizeof(head), fk.last_head);
	snprintf(body, sizeof(body), "{\"requests\":%lu,"
	    "\"streams_started\":%lu,\"streams_finished\":%lu,"
	    "\"events_sent\":%llu,\"open_streams\":%lu,\"disconnects\":%lu,"
	    "\"stalls\":%lu,\"unauthorized\":%lu,\"last_head\":\"%s\","
	    "\"last_body_bytes\":%zu}",
	    fk.requests, fk.streams_started, fk.streams_finished,
	    fk.events_sent, open_streams(), fk.disconnects, fk.stalls,
	    fk.unauthorized, head, fk.last_body_bytes);
	reply(c, 200, body);
}

/* The value of header name (lowercase) in head, its length in *len. */
static const char *
header_value(const char *head, size_t head_len, const char *name,
    size_t *len)
{
	const char *p = head, *end = head + head_len, *nl, *v;
	size_t nlen = strlen(name);

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if ((size_t)(nl - p) > nlen && p[nlen] == ':' &&
		    strncasecmp(p, name, nlen) == 0) {
			for (v = p + nlen + 1; v < nl && *v == ' '; v++)
				;
			*len = (size_t)(nl - v);
			while (*len > 0 && (v[*len - 1] == '\r' ||
			    v[*len - 1] == ' '))
				(*len)--;
			return v;
		}
		p = nl + 1;
	}
	return NULL;
}

/*
 * llama-server's check (tools/server: middleware_validate_api_key): no key
 * set, a public path, or "Authorization: Bearer KEY".
 */
static bool
authorized(const struct request *rq)
{
	static const char *const public_paths[] = { "/health", "/v1/health",
	    "/models", "/v1/models", "/api/tags", "/", NULL };
	const char *v;
	size_t len, klen;

	if (fk.set.api_key == NULL)
		return true;
	for (size_t i = 0; public_paths[i] != NULL; i++)
		if (strcmp(rq->path, public_paths[i]) == 0)
			return true;
	klen = strlen(fk.set.api_key);
	v = header_value(rq->head, rq->head_len, "authorization", &len);
	return v != NULL && len == 7 + klen && strncmp(v, "Bearer ", 7) == 0 &&
	    memcmp(v + 7, fk.set.api_key, klen) == 0;
}

/* Keeps the head of a POST for GET /debug/stats. */
static void
remember_request(const struct request *rq)
{
	size_t n = rq->head_len;

	if (n >= sizeof(fk.last_head))
		n = sizeof(fk.last_head) - 1;
	memcpy(fk.last_head, rq->head, n);
	fk.last_head[n] = '\0';
	fk.last_body_bytes = rq->body_len;
}

static void
route_request(struct conn *c, const struct request *rq, int64_t now)
{
	bool get = strcmp(rq->method, "GET") == 0;
	bool post = strcmp(rq->method, "POST") == 0;

	fk.requests++;
	if (!authorized(rq)) {
		fk.unauthorized++;
		reply_error(c, 401, "Invalid API Key", "authentication_error");
		return;
	}
	if (post)
		remember_request(rq);
	if (get && strcmp(rq->path, "/health") == 0)
		answer_health(c);
	else if (get && strcmp(rq->path, "/v1/models") == 0)
		answer_models(c);
	else if (get && strcmp(rq->path, "/debug/stats") == 0)
		answer_debug_stats(c);
	else if (post && (strcmp(rq->path, "/v1/chat/completions") == 0 ||
	    strcmp(rq->path, "/chat/completions") == 0))
		answer_generation(c, rq, STREAM_CHAT, now);
	else if (post && (strcmp(rq->path, "/v1/completions") == 0 ||
	    strcmp(rq->path, "/completions") == 0))
		answer_generation(c, rq, STREAM_TEXT, now);
	else if (post && (strcmp(rq->path, "/v1/embeddings") == 0 ||
	    strcmp(rq->path, "/embeddings") == 0))
		answer_embeddings(c, rq);
	else
		reply_error(c, 404, "File Not Found", "not_found_error");
}

/* --- request parsing (no I/O) -------------------------------------- */

/* Length of the head up to and with its blank line; 0 if not all here. */
static size_t
head_length(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/*
 * "METHOD SP TARGET SP HTTP/1.x".  The method is checked byte by byte as
 * it comes, so garbage is refused without waiting for a line end that
 * never comes.
 */
static int
parse_request_line(const char *buf, size_t len, struct request *rq)
{
	const char	*nl, *p, *sp, *q;
	size_t		 n;

	for (n = 0; n < len && buf[n] >= 'A' && buf[n] <= 'Z'; n++)
		;
	if (n >= sizeof(rq->method) || (n < len && (n == 0 || buf[n] != ' ')))
		return 400;
	if ((nl = memchr(buf, '\n', len)) == NULL)
		return len >= REQUEST_LINE_MAX_BYTES ? 400 : 0;
	memcpy(rq->method, buf, n);
	rq->method[n] = '\0';

	p = buf + n + 1;
	sp = memchr(p, ' ', (size_t)(nl - p));
	if (sp == NULL || sp == p || (size_t)(sp - p) >= sizeof(rq->path))
		return 400;
	for (q = p; q < sp; q++)
		if ((unsigned char)*q < ' ' || *q == 0x7f)
			return 400;
	if ((q = memchr(p, '?', (size_t)(sp - p))) == NULL)
		q = sp;
	memcpy(rq->path, p, (size_t)(q - p));
	rq->path[q - p] = '\0';

	p = sp + 1;
	n = (size_t)(nl - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n != 8 || strncmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' ||
	    p[7] > '9')
		return 400;
	return 200;
}

/* "chunked" as the value of a Transfer-Encoding line; other codings: 0. */
static bool
value_is_chunked(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r'))
		end--;
	return end - p == 7 && strncasecmp(p, "chunked", 7) == 0;
}

/* Reads one header line into *content_length and *chunked; 200 or an
 * error status. */
static int
parse_header(const char *line, size_t len, long long *content_length,
    bool *chunked)
{
	const char	*colon = memchr(line, ':', len), *p;
	long long	 v = 0;
	size_t		 i;

	if (colon == NULL || colon == line)
		return 400;
	for (p = line; p < colon; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return 400;
	if ((size_t)(colon - line) == 17 &&
	    strncasecmp(line, "transfer-encoding", 17) == 0) {
		if (!value_is_chunked(colon + 1, line + len))
			return 501;
		*chunked = true;
		return 200;
	}
	if ((size_t)(colon - line) != 14 ||
	    strncasecmp(line, "content-length", 14) != 0)
		return 200;
	for (p = colon + 1; p < line + len && (*p == ' ' || *p == '\t'); p++)
		;
	for (i = 0; p < line + len && *p >= '0' && *p <= '9'; p++, i++)
		if ((v = v * 10 + (*p - '0')) > REQUEST_MAX_BYTES)
			return 413;
	while (p < line + len && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	if (i == 0 || p != line + len ||
	    (*content_length != -1 && *content_length != v))
		return 400;
	*content_length = v;
	return 200;
}

static int
parse_headers(const char *buf, size_t head_len, long long *content_length,
    bool *chunked)
{
	const char	*end = buf + head_len, *p, *nl;
	int		 status;

	*content_length = -1;
	*chunked = false;
	/* head_length() found a blank line, so there is a first line end. */
	p = (const char *)memchr(buf, '\n', head_len) + 1;
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == p || (nl == p + 1 && *p == '\r'))
			break;		/* the blank line */
		if ((status = parse_header(p, (size_t)(nl - p),
		    content_length, chunked)) != 200)
			return status;
	}
	if (*chunked && *content_length != -1)
		return 400;	/* RFC 9112 6.3: a request smuggling sign */
	return 200;
}

/*
 * Walks a chunked body at buf: 200 once the last chunk and the trailers
 * are all here (the data then moved together to the front of buf when
 * decode is set, its length in *body_len), 0 if more is needed, else an
 * error status.  Chunk extensions are skipped; trailers ignored.
 */
static int
dechunk(char *buf, size_t len, bool decode, size_t *body_len)
{
	const char	*nl;
	size_t		 at = 0, out = 0, size, digits;
	int		 d;

	for (;;) {
		if ((nl = memchr(buf + at, '\n', len - at)) == NULL)
			return len - at > 64 ? 400 : 0;
		size = 0;
		for (digits = 0; at + digits < (size_t)(nl - buf); digits++) {
			d = buf[at + digits];
			if (d >= '0' && d <= '9')
				d -= '0';
			else if ((d | 0x20) >= 'a' && (d | 0x20) <= 'f')
				d = (d | 0x20) - 'a' + 10;
			else
				break;
			if ((size = size * 16 + (size_t)d) > REQUEST_MAX_BYTES)
				return 413;
		}
		if (digits == 0)
			return 400;
		at = (size_t)(nl - buf) + 1;
		if (size == 0)
			break;
		if (len - at < size + 2)
			return 0;
		if (buf[at + size] == '\r' ? buf[at + size + 1] != '\n' :
		    buf[at + size] != '\n')
			return 400;
		if (decode)
			memmove(buf + out, buf + at, size);
		out += size;
		at += size + (buf[at + size] == '\r' ? 2 : 1);
	}
	/* Trailers, up to the blank line. */
	for (;;) {
		if ((nl = memchr(buf + at, '\n', len - at)) == NULL)
			return 0;
		if (nl == buf + at || (nl == buf + at + 1 && buf[at] == '\r'))
			break;
		at = (size_t)(nl - buf) + 1;
	}
	*body_len = out;
	return 200;
}

/* 200 with rq filled, 0 if more is needed, else the error status. */
static int
parse_request(char *buf, size_t len, struct request *rq)
{
	size_t		 head_len;
	long long	 content_length;
	int		 status;

	if ((status = parse_request_line(buf, len, rq)) != 200)
		return status;
	if ((head_len = head_length(buf, len)) == 0)
		return len >= REQUEST_MAX_BYTES ? 431 : 0;
	if ((status = parse_headers(buf, head_len, &content_length,
	    &rq->chunked)) != 200)
		return status;
	rq->head = buf;
	rq->head_len = head_len;
	rq->body = buf + head_len;
	if (rq->chunked) {
		if ((status = dechunk(rq->body, len - head_len, false,
		    &rq->body_len)) != 200)
			return status == 0 && len >= REQUEST_MAX_BYTES ? 413 :
			    status;
		return dechunk(rq->body, len - head_len, true, &rq->body_len);
	}
	if (content_length == -1)
		content_length = 0;
	if (head_len + (size_t)content_length > REQUEST_MAX_BYTES)
		return 413;
	if (len < head_len + (size_t)content_length)
		return 0;
	rq->body_len = (size_t)content_length;
	return 200;
}

/* --- connections --------------------------------------------------- */

static int64_t
idle_deadline(int64_t now)
{
	return now + fk.set.client_idle_ms * NS_PER_MS;
}

static void
conn_accept(int64_t now)
{
	struct conn	*c;
	int		 fd;

	while (fk.nconns < CONN_MAX) {
		if ((fd = accept(fk.listen_fd, NULL, NULL)) == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Level-triggered poll would spin: back off. */
				fk.accept_resume_ns = now +
				    ACCEPT_PAUSE_MS * NS_PER_MS;
				log_event("accept: %s", strerror(errno));
			}
			return;
		}
		if (set_nonblocking(fd) == -1 ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			return;
		}
		c->fd = fd;
		c->state = CONN_READING;
		c->deadline_ns = idle_deadline(now);
		fk.conns[fk.nconns++] = c;
	}
}

static bool
conn_streaming(const struct conn *c)
{
	return c->state == CONN_WRITING && c->stream_total > 0;
}

/* A stream whose client went away before its end: the tests' evidence
 * that a proxy closed the upstream. */
static void
record_disconnect(const struct conn *c, const char *why)
{
	fk.disconnects++;
	log_event("client disconnected mid-stream after %lld of %lld events"
	    " (%s)", c->events, c->stream_total, why);
}

/*
 * Half-closes and reads what the client still sends: closing with unread
 * input makes the kernel send a RST, which can destroy the reply before
 * the client has read it.
 */
static void
conn_finish_reply(struct conn *c, int64_t now)
{
	if (c->stream_total > 0)
		fk.streams_finished++;
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_DRAINING;
	c->deadline_ns = now + DRAIN_MS * NS_PER_MS;
}

/* -1 when the connection is done with. */
static int
conn_read(struct conn *c, int64_t now)
{
	struct request	 rq;
	ssize_t		 n;
	int		 status;

	n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
	if (n == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0) {
		if (c->in_len == 0)
			return -1;
		reply_bad_request(c, 400);	/* EOF inside a request */
		return 0;
	}
	c->in_len += (size_t)n;
	c->deadline_ns = idle_deadline(now);
	memset(&rq, 0, sizeof(rq));
	if ((status = parse_request(c->in, c->in_len, &rq)) == 200)
		route_request(c, &rq, now);
	else if (status != 0)
		reply_bad_request(c, status);
	return 0;
}

/*
 * While a stream runs, the client has nothing more to send: an EOF or an
 * error means it went away.  -1 then.
 */
static int
conn_watch_stream(struct conn *c)
{
	char	 buf[4096];
	ssize_t	 n;

	while ((n = read(c->fd, buf, sizeof(buf))) > 0)
		;
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	record_disconnect(c, n == 0 ? "EOF" : strerror(errno));
	return -1;
}

/* crash_after_events: dies once K events of a stream are on the wire. */
static void
maybe_crash_mid_stream(const struct conn *c)
{
	if (c->stream_total == 0 || fk.set.crash_after_events < 0 ||
	    c->events < fk.set.crash_after_events)
		return;
	log_event("crashing after %lld of %lld events (crash_after_events)",
	    c->events, c->stream_total);
	crash();
}

static int
conn_write(struct conn *c, int64_t now)
{
	ssize_t n;

	while (c->out_sent < c->out_len) {
		n = write(c->fd, c->out + c->out_sent,
		    c->out_len - c->out_sent);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n == -1) {
			if (conn_streaming(c))
				record_disconnect(c, strerror(errno));
			return -1;
		}
		c->out_sent += (size_t)n;
		c->deadline_ns = idle_deadline(now);
	}
	c->out_len = c->out_sent = 0;
	maybe_crash_mid_stream(c);
	if (c->stream_total == 0 || c->events == c->stream_total)
		conn_finish_reply(c, now);
	return 0;
}

static int
conn_drain(struct conn *c)
{
	char	 buf[4096];
	ssize_t	 n;

	while ((n = read(c->fd, buf, sizeof(buf))) > 0)
		;
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return -1;
}

static int
conn_handle(struct conn *c, short revents, int64_t now)
{
	if (revents & (POLLERR | POLLNVAL)) {
		if (conn_streaming(c))
			record_disconnect(c, "socket error");
		return -1;
	}
	switch (c->state) {
	case CONN_READING:
		if ((revents & (POLLIN | POLLHUP)) && conn_read(c, now) == -1)
			return -1;
		/* A reply is ready: try to send it at once. */
		if (c->state == CONN_WRITING)
			return conn_write(c, now);
		return 0;
	case CONN_WRITING:
		if (c->stream_total > 0 && (revents & (POLLIN | POLLHUP)) &&
		    conn_watch_stream(c) == -1)
			return -1;
		if (revents & POLLOUT)
			return conn_write(c, now);
		return revents & POLLHUP ? -1 : 0;
	case CONN_DRAINING:
		return revents & (POLLIN | POLLHUP) ? conn_drain(c) : 0;
	}
	return -1;
}

/* Waiting on the client (not on our own stream timer) can time out. */
static bool
conn_waits_on_client(const struct conn *c)
{
	return c->state != CONN_WRITING || c->out_sent < c->out_len;
}

static bool
conn_stream_due(const struct conn *c, int64_t now)
{
	return conn_streaming(c) && c->out_len == 0 &&
	    c->events < c->stream_total && now >= c->next_chunk_ns;
}

/* -1 when the connection is done with. */
static int
conn_timers(struct conn *c, int64_t now)
{
	if (conn_waits_on_client(c) && now >= c->deadline_ns) {
		if (conn_streaming(c)) {
			fk.stalls++;
			log_event("client stalled mid-stream after %lld of "
			    "%lld events: dropped", c->events,
			    c->stream_total);
		}
		return -1;
	}
	if (conn_stream_due(c, now)) {
		append_event(c, c->events);
		c->next_chunk_ns = now + fk.set.stream_delay_ms * NS_PER_MS;
		c->deadline_ns = idle_deadline(now);
		/* Sends at once; poll only wakes us if the socket is full. */
		return conn_write(c, now);
	}
	return 0;
}

static short
conn_events(const struct conn *c)
{
	switch (c->state) {
	case CONN_READING:
	case CONN_DRAINING:
		return POLLIN;
	case CONN_WRITING:
		return (c->out_sent < c->out_len ? POLLOUT : 0) |
		    (c->stream_total > 0 ? POLLIN : 0);
	}
	return 0;
}

/* --- the loop ------------------------------------------------------ */

static void
run_timers(int64_t now)
{
	size_t i;

	if (fk.listen_fd == -1 && now >= fk.listen_ns)
		start_listening();
	if (!fk.loaded) {
		touch_memory(now);
		if (now >= fk.load_ns && fk.listen_fd != -1)
			become_loaded();
	}
	if (fk.crash_ns != 0 && now >= fk.crash_ns)
		crash();
	if (fk.exit_ns != 0 && now >= fk.exit_ns)
		finish(0);
	if (fk.accept_resume_ns != 0 && now >= fk.accept_resume_ns)
		fk.accept_resume_ns = 0;
	/* Backwards: conn_free() moves the last connection into slot i. */
	for (i = fk.nconns; i-- > 0; )
		if (conn_timers(fk.conns[i], now) == -1)
			conn_free(i);
}

static int64_t
earliest(int64_t a, int64_t b)
{
	return b != 0 && b < a ? b : a;
}

/* Milliseconds until the next thing to do, rounded up; -1: none. */
static int
poll_timeout(int64_t now)
{
	const struct conn	*c;
	int64_t			 next = INT64_MAX;
	size_t			 i;

	if (fk.listen_fd == -1)
		next = earliest(next, fk.listen_ns);
	if (!fk.loaded) {
		/* Loaded means listening too: wait for both. */
		if (fk.listen_fd != -1)
			next = earliest(next, fk.load_ns);
		if (fk.mem != NULL && fk.mem_touched < (size_t)fk.set.mem_bytes)
			next = earliest(next, now + TOUCH_TICK_MS * NS_PER_MS);
	}
	next = earliest(next, fk.crash_ns);
	next = earliest(next, fk.exit_ns);
	next = earliest(next, fk.accept_resume_ns);
	for (i = 0; i < fk.nconns; i++) {
		c = fk.conns[i];
		if (conn_waits_on_client(c))
			next = earliest(next, c->deadline_ns);
		else if (conn_streaming(c) && c->events < c->stream_total)
			next = earliest(next, c->next_chunk_ns);
	}
	if (next == INT64_MAX)
		return -1;
	if (next <= now)
		return 0;
	if ((next - now) / NS_PER_MS >= INT_MAX)
		return INT_MAX;
	return (int)((next - now + NS_PER_MS - 1) / NS_PER_MS);
}

/* pfd[0]: signals, pfd[1]: the listener, pfd[2 + i]: conns[i]. */
static nfds_t
fill_pollfds(struct pollfd *pfd)
{
	bool	 accepting;
	size_t	 i;

	accepting = fk.nconns < CONN_MAX && fk.accept_resume_ns == 0;
	pfd[0].fd = sig_pipe[0];
	pfd[0].events = POLLIN;
	pfd[1].fd = accepting ? fk.listen_fd : -1;
	pfd[1].events = POLLIN;
	for (i = 0; i < fk.nconns; i++) {
		pfd[2 + i].fd = fk.conns[i]->fd;
		pfd[2 + i].events = conn_events(fk.conns[i]);
	}
	return 2 + fk.nconns;
}

static void
handle_pollfds(const struct pollfd *pfd, nfds_t n, int64_t now)
{
	size_t i;

	for (i = n - 2; i-- > 0; )
		if (pfd[2 + i].revents != 0 &&
		    conn_handle(fk.conns[i], pfd[2 + i].revents, now) == -1)
			conn_free(i);
	if (pfd[0].revents != 0)
		read_signals(now);
	if (pfd[1].revents != 0)
		conn_accept(now);
}

static _Noreturn void
serve(void)
{
	static struct pollfd	 pfd[2 + CONN_MAX];
	int64_t			 now;
	nfds_t			 n;
	int			 timeout;

	for (;;) {
		now = mono_ns();
		run_timers(now);
		n = fill_pollfds(pfd);
		timeout = poll_timeout(now);
		if (poll(pfd, n, timeout) == -1) {
			if (errno == EINTR)
				continue;
			log_event("poll: %s", strerror(errno));
			finish(1);
		}
		handle_pollfds(pfd, n, mono_ns());
	}
}

int
main(int argc, char **argv)
{
	struct settings *s = &fk.set;

	keep_stdio_open();
	fk.listen_fd = -1;
	set_defaults(s);
	parse_args(argc, argv, s);
	load_model_file(s);
	apply_environment(s);
	apply_flags(s, argc, argv);
	resolve_defaults(s);
	log_event("loading %s (mem %lld bytes, load %lld ms, mode %s)",
	    s->path, s->mem_bytes, s->load_ms, mode_names[s->mode]);

	fk.start_ns = mono_ns();
	fk.listen_ns = fk.start_ns + s->listen_delay_ms * NS_PER_MS;
	fk.load_ns = fk.start_ns + s->load_ms * NS_PER_MS;
	if (s->mode == MODE_CRASH_START)
		fk.crash_ns = fk.start_ns + s->crash_after_ms * NS_PER_MS;
	setup_signals();
	map_memory();
	serve();
}
