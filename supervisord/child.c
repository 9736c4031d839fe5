/*
 * child.c — server processes: spawn, watch, stop, reap.
 *
 * Each server runs in its own session and process group, dies with poold
 * (parent-death signal), and is signalled only while it is an unreaped
 * child of ours.  Its memory is given back to the pool only at the reap.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

#define TAIL_LINES_IN_ERRORS	3

extern char **environ;

/* --- the command line --- */

/* Replaces every {model}, {path} and {port} in tmpl. */
static char *
expand(const char *tmpl, const char *model, const char *path, int port)
{
	char portstr[16], *out, *o;
	const char *t, *val;
	size_t len = 1, vlen;

	snprintf(portstr, sizeof(portstr), "%d", port);
	for (int pass = 0; pass < 2; pass++) {
		o = out = pass == 0 ? NULL : malloc(len);
		if (pass == 1 && out == NULL)
			return NULL;
		for (t = tmpl; *t != '\0'; ) {
			val = NULL;
			if (strncmp(t, "{model}", 7) == 0)
				val = model, t += 7;
			else if (strncmp(t, "{path}", 6) == 0)
				val = path, t += 6;
			else if (strncmp(t, "{port}", 6) == 0)
				val = portstr, t += 6;
			vlen = val != NULL ? strlen(val) : 1;
			if (pass == 0)
				len += vlen;
			else if (val != NULL)
				o = (char *)memcpy(o, val, vlen) + vlen;
			else
				*o++ = *t++;
			if (pass == 0 && val == NULL)
				t++;
		}
		if (pass == 1)
			*o = '\0';
	}
	return out;
}

static void
argv_free(char **argv)
{
	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

static char **
argv_build(const struct config *conf, const struct pool_server *srv)
{
	const struct model_entry *e = srv->model->udata;
	char **tmpl = e->conf != NULL && e->conf->command != NULL ?
	    e->conf->command : conf->command;
	char **argv;
	size_t n = 0;

	while (tmpl[n] != NULL)
		n++;
	if ((argv = calloc(n + 1, sizeof(*argv))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if ((argv[i] = expand(tmpl[i], srv->model->name, e->path,
		    srv->port)) == NULL) {
			argv_free(argv);
			return NULL;
		}
	return argv;
}

/* --- the environment --- */

/*
 * What a server inherits from poold: the basics a program expects, and
 * nothing else — llama-server reads any LLAMA_ARG_* variable as a flag,
 * so a stray one in poold's own environment must not reach it.  The
 * model's "env" comes on top.
 */
static bool
env_kept(const char *kv)
{
	static const char *const keep[] = {
		"PATH=", "HOME=", "USER=", "LOGNAME=", "LANG=", "TZ=",
		"TMPDIR=", "LC_", NULL
	};

	for (size_t i = 0; keep[i] != NULL; i++)
		if (strncmp(kv, keep[i], strlen(keep[i])) == 0)
			return true;
	return false;
}

static bool
env_overridden(const char *kv, char *const *extra)
{
	size_t klen = strcspn(kv, "=");

	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
		if (strncmp(kv, extra[i], klen + 1) == 0)
			return true;
	return false;
}

/* A NULL-terminated array of borrowed strings; free only the array. */
static char **
env_build(char *const *extra)
{
	size_t n = 0, m = 0, i;
	char **env;

	for (i = 0; environ[i] != NULL; i++)
		n++;
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		n++;
	if ((env = calloc(n + 1, sizeof(*env))) == NULL)
		return NULL;
	for (i = 0; environ[i] != NULL; i++)
		if (env_kept(environ[i]) && !env_overridden(environ[i], extra))
			env[m++] = environ[i];
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		env[m++] = extra[i];
	return env;
}

/* --- in the child, between fork and exec --- */

static void
child_reset_signals(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);	/* EINVAL for KILL/STOP */
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * Never returns.  Its own session and process group, death with poold,
 * default signals, fds 0-2 only, the cleaned environment.  Reports an
 * exec failure's errno through errpipe (close-on-exec: EOF means exec).
 */
static void
child_exec(char **argv, char **env, pid_t parent, int outfd, int errpipe)
{
	int err, nullfd;

	(void)setsid();
	if (platform_die_with_parent(parent) == -1 && errno == ESRCH)
		_exit(127);	/* poold died before we got here */
	child_reset_signals();
	if ((nullfd = open("/dev/null", O_RDONLY)) != -1) {
		(void)dup2(nullfd, STDIN_FILENO);
		if (nullfd > STDERR_FILENO)
			(void)close(nullfd);
	}
	(void)dup2(outfd, STDOUT_FILENO);
	(void)dup2(outfd, STDERR_FILENO);
	/* Ours are close-on-exec; these are what poold itself inherited. */
	platform_close_fds(errpipe);
	environ = env;
	execvp(argv[0], argv);
	err = errno;
	(void)!write(errpipe, &err, sizeof(err));
	_exit(127);
}

/* --- output of a server --- */

static void
tail_append(struct child *c, const char *buf, size_t n)
{
	if (n >= sizeof(c->tail)) {
		buf += n - sizeof(c->tail);
		n = sizeof(c->tail);
	}
	if (c->tail_len + n > sizeof(c->tail)) {
		size_t drop = c->tail_len + n - sizeof(c->tail);
		memmove(c->tail, c->tail + drop, c->tail_len - drop);
		c->tail_len -= drop;
	}
	memcpy(c->tail + c->tail_len, buf, n);
	c->tail_len += n;
}

static void
output_close(struct child *c)
{
	if (c->out_fd == -1)
		return;
	ev_io_stop(c->d->loop, &c->out_watcher);
	close(c->out_fd);
	c->out_fd = -1;
}

/* Reads what is there; returns after EAGAIN, EOF or 64 KiB. */
static void
output_drain(struct child *c)
{
	char buf[16384];
	ssize_t n;
	int rounds = 4;

	while (c->out_fd != -1 && rounds-- > 0) {
		n = read(c->out_fd, buf, sizeof(buf));
		if (n > 0) {
			tail_append(c, buf, (size_t)n);
			if (c->log_fd != -1 && write(c->log_fd, buf, (size_t)n)
			    != n) {
				log_warn("log of %s: write", c->srv->model->name);
				close(c->log_fd);
				c->log_fd = -1;
			}
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		output_close(c);	/* EOF or error: nothing more to read */
	}
}

static void
output_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct child *c = w->data;

	output_drain(c);
	if (c->srv->state == POOL_STARTING)
		probe_hint(c);
}

/* Appends line[0..n) to out, control characters made blanks. */
static size_t
append_clean(char *out, size_t o, size_t len, const char *line, size_t n)
{
	for (size_t i = 0; i < n && o + 1 < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		out[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	out[o] = '\0';
	return o;
}

/* The line of tail ending before end: its start; 0-length lines skipped. */
static size_t
line_before(const struct child *c, size_t *end)
{
	size_t start;

	while (*end > 0 && (c->tail[*end - 1] == '\n' ||
	    c->tail[*end - 1] == '\r'))
		(*end)--;
	start = *end;
	while (start > 0 && c->tail[start - 1] != '\n')
		start--;
	return start;
}

/*
 * The last lines of output, one line, " | " between them: for error
 * messages a person reads.
 */
static void
tail_lines(const struct child *c, char *out, size_t len)
{
	size_t end = c->tail_len, start, n = 0, o = 0;
	const char *line[TAIL_LINES_IN_ERRORS];
	size_t llen[TAIL_LINES_IN_ERRORS];

	while (n < TAIL_LINES_IN_ERRORS && end > 0) {
		start = line_before(c, &end);
		if (end > start) {
			line[n] = c->tail + start;
			llen[n++] = end - start;
		}
		end = start;
	}
	out[0] = '\0';
	while (n-- > 0 && o + 4 < len) {
		if (o > 0)
			o = append_clean(out, o, len, " | ", 3);
		o = append_clean(out, o, len, line[n], llen[n]);
	}
}

static bool
says_error(const char *line, size_t n)
{
	static const char *const words[] = { "error", "invalid", "corrupt",
	    "failed", NULL };
	char low[512];

	n = n < sizeof(low) - 1 ? n : sizeof(low) - 1;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)line[i]);
	low[n] = '\0';
	for (size_t i = 0; words[i] != NULL; i++)
		if (strstr(low, words[i]) != NULL)
			return true;
	return false;
}

/*
 * The cause: the first line that reads like an error, before the
 * generic "failed to load model … exiting" lines a server ends with.
 */
static void
first_error(const struct child *c, char *out, size_t len)
{
	size_t end = c->tail_len, start, found = 0, found_len = 0;

	while (end > 0) {
		start = line_before(c, &end);
		if (end > start && says_error(c->tail + start, end - start)) {
			found = start;
			found_len = end - start;
		}
		end = start;
	}
	out[0] = '\0';
	if (found_len > 0)
		(void)append_clean(out, 0, len, c->tail + found, found_len);
}

/* --- the end of a server --- */

static void
describe_status(int status, const struct child *c, char *out, size_t len)
{
	char tail[1024], cause[512];
	size_t n;

	if (WIFEXITED(status))
		snprintf(out, len, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, len, "killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(out, len, "ended with status 0x%x", status);
	if (c->stop_stage != 0)
		return;		/* asked to stop: its last words are no news */
	first_error(c, cause, sizeof(cause));
	tail_lines(c, tail, sizeof(tail));
	n = strlen(out);
	if (cause[0] != '\0' && strstr(tail, cause) == NULL)
		n += (size_t)snprintf(out + n, len - n, "; %s", cause);
	if (tail[0] != '\0' && n < len)
		snprintf(out + n, len - n, "; last output: %s", tail);
}

static void
child_free(struct child *c)
{
	probe_stop(c);
	output_close(c);
	ev_timer_stop(c->d->loop, &c->stop_timer);
	ev_child_stop(c->d->loop, &c->exit_watcher);
	if (c->log_fd != -1)
		close(c->log_fd);
	free(c);
}

static void
exit_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct child *c = w->data;
	struct daemon *d = c->d;
	struct pool_server *srv = c->srv;
	char why[POOL_ERROR_MAX];

	/* The leader is gone; its group must not outlive it. */
	(void)kill(-c->pid, SIGKILL);
	output_drain(c);
	describe_status(w->rstatus, c, why, sizeof(why));
	srv->udata = NULL;
	child_free(c);
	measure_learn(d, srv);
	pool_exited(d->pool, daemon_now(), srv, why);
	d->state_dirty = true;
}

static void
stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;
	const struct config *conf = c->d->conf;
	double kill_after;

	if (c->stop_stage == 1) {
		/* llama-server exits on a second SIGTERM while serving. */
		(void)kill(-c->pid, SIGTERM);
		c->stop_stage = 2;
		kill_after = (double)(conf->stop_timeout_ms -
		    CHILD_TERM_AGAIN_MS) / 1000;
		if (kill_after > 0) {
			ev_timer_set(w, kill_after, 0);
			ev_timer_start(loop, w);
			return;
		}
	}
	log_warnx("kill %s pid %ld: no exit %" PRId64 " ms after SIGTERM",
	    c->srv->model->name, (long)c->pid, conf->stop_timeout_ms);
	(void)kill(-c->pid, SIGKILL);
	c->stop_stage = 3;
}

void
child_stop(struct daemon *d, struct pool_server *srv)
{
	struct child *c = srv->udata;
	double first;

	if (c == NULL || c->stop_stage != 0)
		return;
	probe_stop(c);
	(void)kill(-c->pid, SIGTERM);
	c->stop_stage = 1;
	first = (double)(d->conf->stop_timeout_ms < CHILD_TERM_AGAIN_MS ?
	    d->conf->stop_timeout_ms : CHILD_TERM_AGAIN_MS) / 1000;
	ev_timer_init(&c->stop_timer, stop_timer_cb, first, 0);
	c->stop_timer.data = c;
	if (d->conf->stop_timeout_ms <= CHILD_TERM_AGAIN_MS)
		c->stop_stage = 2;	/* the next firing kills */
	ev_timer_start(d->loop, &c->stop_timer);
}

void
child_kill_all(struct daemon *d)
{
	struct pool_server *srv;
	struct child *c;

	TAILQ_FOREACH(srv, &d->pool->servers, link)
		if ((c = srv->udata) != NULL) {
			(void)kill(-c->pid, SIGKILL);
			c->stop_stage = 3;
		}
}

/* --- the start --- */

static int
open_log(const struct config *conf, const char *model)
{
	char path[PATH_MAX];
	int fd;

	if (conf->log_dir == NULL)
		return -1;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.log", conf->log_dir,
	    model) >= sizeof(path))
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
	    O_NONBLOCK, 0640);
	if (fd == -1)
		log_warn("%s: cannot open server log", path);
	return fd;
}

/* Waits for exec: a failure shows in milliseconds, not at start_timeout. */
static int
await_exec(pid_t pid, int errpipe, const char *prog, char *err, size_t len)
{
	int child_errno;
	ssize_t n;

	do
		n = read(errpipe, &child_errno, sizeof(child_errno));
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)sizeof(child_errno))
		return 0;		/* EOF: exec succeeded */
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
	snprintf(err, len, "cannot run '%s': %s", prog, strerror(child_errno));
	return -1;
}

static struct child *
child_new(struct daemon *d, struct pool_server *srv, int out_fd)
{
	struct child *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->d = d;
	c->srv = srv;
	c->out_fd = out_fd;
	c->log_fd = open_log(d->conf, srv->model->name);
	c->probe.fd = -1;
	return c;
}

int
child_spawn(struct daemon *d, struct pool_server *srv, char *err, size_t len)
{
	const struct model_entry *e = srv->model->udata;
	char **argv, **env;
	int out[2] = { -1, -1 }, ep[2] = { -1, -1 };
	struct child *c = NULL;
	pid_t pid, parent = getpid();

	if ((argv = argv_build(d->conf, srv)) == NULL ||
	    (env = env_build(e->conf != NULL ? e->conf->env : NULL)) == NULL) {
		argv_free(argv);
		snprintf(err, len, "out of memory");
		return -1;
	}
	if (fd_pipe(out) == -1 || fd_pipe(ep) == -1 ||
	    (c = child_new(d, srv, out[0])) == NULL) {
		snprintf(err, len, "cannot make pipes: %s", strerror(errno));
		goto fail;
	}
	if ((pid = fork()) == -1) {
		snprintf(err, len, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0)
		child_exec(argv, env, parent, out[1], ep[1]);
	free(env);
	/* libev reaps it; the watcher must exist before we return. */
	ev_child_init(&c->exit_watcher, exit_cb, pid, 0);
	c->exit_watcher.data = c;
	close(out[1]);
	close(ep[1]);
	if (await_exec(pid, ep[0], argv[0], err, len) == -1) {
		close(ep[0]);
		argv_free(argv);
		c->out_fd = -1;
		close(out[0]);
		if (c->log_fd != -1)
			close(c->log_fd);
		free(c);
		return -1;
	}
	close(ep[0]);
	argv_free(argv);
	c->pid = pid;
	srv->pid = pid;
	srv->udata = c;
	ev_child_start(d->loop, &c->exit_watcher);
	(void)fd_nonblock(c->out_fd);
	ev_io_init(&c->out_watcher, output_cb, c->out_fd, EV_READ);
	c->out_watcher.data = c;
	ev_io_start(d->loop, &c->out_watcher);
	probe_start(c);
	/* A SIGKILLed poold's successor must know this pid: saved before
	 * the loop sleeps, once for a burst of starts. */
	if (platform_process_start_time(pid, &c->start_time) == 0)
		d->state_dirty = true;
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (out[i] != -1)
			close(out[i]);
		if (ep[i] != -1)
			close(ep[i]);
	}
	if (c != NULL && c->log_fd != -1)
		close(c->log_fd);
	free(c);
	free(env);
	argv_free(argv);
	return -1;
}

/* A port another process holds is skipped (llama-server would exit 1). */
bool
child_port_free(int port)
{
	struct sockaddr_in sin;
	int fd, one = 1;
	bool ok;

	if ((fd = fd_socket(AF_INET, SOCK_STREAM)) == -1)
		return true;		/* can't tell; let the server try */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}
