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
#include <sys/resource.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#ifdef __linux__
#include <linux/sched.h>	/* struct clone_args, CLONE_INTO_CGROUP */
#include <sys/syscall.h>
#endif

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

/* What a template's placeholders stand for in one server's start. */
struct placeholders {
	const char	*model;
	const char	*path;
	const char	*host;
	const char	*api_key;	/* "" without api_keys */
	char		 port[16];
};

/* The value of the placeholder at t, its length in *len; NULL if none. */
static const char *
placeholder(const struct placeholders *ph, const char *t, size_t *len)
{
	const struct { const char *name, *value; } names[] = {
		{ "{model}", ph->model }, { "{path}", ph->path },
		{ "{port}", ph->port }, { "{host}", ph->host },
		{ "{api_key}", ph->api_key },
	};

	if (*t != '{')
		return NULL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		*len = strlen(names[i].name);
		if (strncmp(t, names[i].name, *len) == 0)
			return names[i].value;
	}
	return NULL;
}

/* Replaces every {model}, {path}, {port}, {host} and {api_key} in tmpl. */
static char *
expand(const char *tmpl, const struct placeholders *ph)
{
	char *out, *o;
	const char *t, *val;
	size_t len = 1, vlen, nlen;

	for (int pass = 0; pass < 2; pass++) {
		o = out = pass == 0 ? NULL : malloc(len);
		if (pass == 1 && out == NULL)
			return NULL;
		for (t = tmpl; *t != '\0'; ) {
			if ((val = placeholder(ph, t, &nlen)) != NULL)
				t += nlen;
			vlen = val != NULL ? strlen(val) : 1;
			if (pass == 0)
				len += vlen;
			else if (val != NULL)
				o = (char *)memcpy(o, val, vlen) + vlen;
			else
				*o++ = *t;
			if (val == NULL)
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
argv_build(const struct config *conf, const struct pool_server *srv,
    const char *api_key)
{
	const struct model_entry *e = srv->model->udata;
	char *const *tmpl = config_command(conf, e->conf);
	struct placeholders ph = { srv->model->name, e->path,
	    conf->server_host, api_key, "" };
	char **argv;
	size_t n = 0;

	snprintf(ph.port, sizeof(ph.port), "%d", srv->port);
	while (tmpl[n] != NULL)
		n++;
	if ((argv = calloc(n + 1, sizeof(*argv))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if ((argv[i] = expand(tmpl[i], &ph)) == NULL) {
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

/*
 * A NULL-terminated array of borrowed strings; free only the array.
 * key_var ("LLAMA_API_KEY=…", or NULL) is poold's and wins over the
 * model's "env": a key poold does not know would lock poold out.
 */
static char **
env_build(char *const *extra, char *key_var)
{
	char *const ours[] = { key_var, NULL };
	size_t n = 1, m = 0, i;
	char **env;

	for (i = 0; environ[i] != NULL; i++)
		n++;
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		n++;
	if ((env = calloc(n + 1, sizeof(*env))) == NULL)
		return NULL;
	for (i = 0; environ[i] != NULL; i++)
		if (env_kept(environ[i]) &&
		    !env_overridden(environ[i], extra) &&
		    !env_overridden(environ[i], ours))
			env[m++] = environ[i];
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		if (!env_overridden(extra[i], ours))
			env[m++] = extra[i];
	if (key_var != NULL)
		env[m++] = key_var;
	return env;
}

/* A fresh key for one start: CHILD_API_KEY_BYTES random bytes in hex. */
static int
api_key_make(char out[2 * CHILD_API_KEY_BYTES + 1])
{
	unsigned char raw[CHILD_API_KEY_BYTES];

	if (entropy_fill(raw, sizeof(raw)) == -1)
		return -1;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return 0;
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

/* What the child reports on the exec pipe when it cannot exec. */
enum exec_stage { EXEC_STAGE_EXEC };

static _Noreturn void
child_fail(int errpipe, enum exec_stage stage, int err)
{
	int report[2] = { (int)stage, err };

	(void)!write(errpipe, report, sizeof(report));
	_exit(127);
}

/* The soft descriptor limit poold was started with (it raises its own):
 * servers get it back, as programs that use select(2) or close every
 * descriptor expect.  0: leave theirs as it is. */
static rlim_t child_nofile_soft, child_nofile_hard;

void
child_set_nofile(rlim_t soft, rlim_t hard)
{
	child_nofile_soft = soft;
	child_nofile_hard = hard;
}

/*
 * Never returns.  Its cgroup (if any) before anything can fork, its own
 * session and process group, death with poold, default signals, fds 0-2
 * only, the cleaned environment.  Reports a failure through errpipe
 * (close-on-exec: EOF means exec).
 */
static void
child_exec(char **argv, char **env, pid_t parent, int outfd, int errpipe,
    int cgfd)
{
	int nullfd;

	/* A cgroup that will not take us (EBUSY, ENOMEM, a controller's
	 * limit) is poold's trouble, not the model's: the process group
	 * still holds the tree. */
	if (cgfd != -1)
		(void)!write(cgfd, "0", 1);
	if (child_nofile_soft != 0)
		(void)setrlimit(RLIMIT_NOFILE, &(struct rlimit){
		    child_nofile_soft, child_nofile_hard });
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
	child_fail(errpipe, EXEC_STAGE_EXEC, errno);
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

/* Reads what is there; returns after EAGAIN, EOF or 64 KiB: the bytes
 * read. */
static size_t
output_drain(struct child *c)
{
	char buf[16384];
	ssize_t n;
	size_t got = 0;
	int rounds = 4;

	while (c->out_fd != -1 && rounds-- > 0) {
		n = read(c->out_fd, buf, sizeof(buf));
		if (n > 0) {
			got += (size_t)n;
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
			return got;
		output_close(c);	/* EOF or error: nothing more to read */
	}
	return got;
}

/*
 * Did the last n bytes of output finish a line that says the server is
 * loaded?  llama-server prints "model loaded" and "listening on http://…"
 * (older ones: "main: server is listening on http://…" after the load,
 * then "all slots are idle").  A match must end in the new bytes, so a
 * line is counted once however its pieces arrive (llama-server writes the
 * time stamp, the level and the text separately).
 */
static bool
says_ready(const struct child *c, size_t n)
{
	static const char *const words[] = { "model loaded",
	    "listening on http", "all slots are idle", NULL };
	size_t wlen, from;

	for (size_t i = 0; words[i] != NULL; i++) {
		wlen = strlen(words[i]);
		from = c->tail_len > n + wlen - 1 ? c->tail_len - n - wlen + 1 :
		    0;
		if (memmem(c->tail + from, c->tail_len - from, words[i], wlen)
		    != NULL)
			return true;
	}
	return false;
}

static void
output_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct child *c = w->data;
	size_t n = output_drain(c);

	if (c->srv->state == POOL_STARTING && n > 0)
		probe_hint(c, says_ready(c, n) ? PROBE_HINT_READY :
		    PROBE_HINT_OUTPUT);
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

/* --- the whole tree of a server --- */

/*
 * Cgroups whose leader was reaped but that still held processes: killed
 * again and removed at the next reap or census, until they are empty.
 */
#define CGROUP_DRAINING_MAX	64

static char	*draining[CGROUP_DRAINING_MAX];
static size_t	 ndraining;

static void
cgroup_drain(void)
{
	for (size_t i = 0; i < ndraining; ) {
		if (cgroup_remove(draining[i]) == 0 || errno == ENOENT) {
			free(draining[i]);
			draining[i] = draining[--ndraining];
			continue;
		}
		(void)cgroup_kill(draining[i]);
		i++;
	}
}

/* The server's cgroup: kill what is in it, remove it once empty. */
static void
cgroup_end(struct child *c)
{
	char *copy;

	if (c->cgroup[0] == '\0')
		return;
	(void)cgroup_kill(c->cgroup);
	if (cgroup_remove(c->cgroup) == 0 || errno == ENOENT)
		return;
	if (ndraining < CGROUP_DRAINING_MAX &&
	    (copy = strdup(c->cgroup)) != NULL)
		draining[ndraining++] = copy;
	else
		log_warnx("%s: cannot remove it", c->cgroup);
}

/*
 * SIGTERM to the server's group, and to the leader itself: a child that
 * has not reached setsid() yet has no group of its own.
 */
static void
tree_term(struct child *c)
{
	/* Only one SIGTERM: a second one ends llama-server at once.  Then
	 * SIGCONT: a stopped process (SIGSTOP, a health check that found it
	 * frozen) acts on SIGTERM only once it runs again. */
	if (kill(-c->pid, SIGTERM) == -1 && errno == ESRCH) {
		if (c->reaped)
			return;
		(void)kill(c->pid, SIGTERM);
		(void)kill(c->pid, SIGCONT);
	} else
		(void)kill(-c->pid, SIGCONT);
}

/* SIGKILL to all of a server: its cgroup, else its process group. */
static void
tree_kill(struct child *c)
{
	if (kill(-c->pid, SIGKILL) == -1 && errno == ESRCH && !c->reaped)
		(void)kill(c->pid, SIGKILL);	/* unreaped: still ours */
	if (c->cgroup[0] != '\0')
		(void)cgroup_kill(c->cgroup);
}

/*
 * After the leader's reap: does the rest of its tree still run (and hold
 * memory)?  The cgroup says so exactly.  Without one: its process group
 * (a live member keeps the id from being reused, and we look again
 * within CHILD_TREE_POLL_MS of the last one's end), and the members the
 * census recorded, each by pid and start time (a reused pid is not ours);
 * what is left is sent SIGKILL again.
 */
static bool
tree_left(struct child *c)
{
	uint64_t start;
	bool left = kill(-c->pid, SIGKILL) == 0;

	if (c->cgroup[0] != '\0') {
		if (!cgroup_populated(c->cgroup))
			return left;
		(void)cgroup_kill(c->cgroup);
		return true;
	}
	for (size_t i = 0; i < c->ntree; i++)
		if (platform_process_start_time(c->tree[i].pid, &start) == 0 &&
		    start == c->tree[i].start) {
			(void)kill(c->tree[i].pid, SIGKILL);
			left = true;
		}
	return left;
}

/* A live server whose tree pid belongs to (its group or its cgroup). */
static bool
orphan_owned(struct daemon *d, pid_t pid)
{
	const struct pool_server *srv;
	const struct child *c;
	pid_t pgid;
	char cg[PATH_MAX];
	bool in_cgroup;

	/* Nearly every child is a server's leader: no /proc read for it. */
	TAILQ_FOREACH(srv, &d->pool->servers, link)
		if ((c = srv->udata) != NULL && c->pid == pid)
			return true;
	pgid = getpgid(pid);
	in_cgroup = cgroup_of(pid, cg, sizeof(cg)) == 0;
	TAILQ_FOREACH(srv, &d->pool->servers, link) {
		if ((c = srv->udata) == NULL)
			continue;
		if (pgid != -1 && pgid == c->pid)
			return true;
		if (in_cgroup && c->cgroup[0] != '\0' &&
		    strcmp(c->cgroup, cg) == 0)
			return true;
	}
	return false;
}

/*
 * poold forks only servers, so a child of poold that is no server's
 * leader is an orphan of some server's tree, re-parented to us (we are a
 * subreaper).  One that still belongs to a running server (same group
 * or cgroup) is that server's; any other (it escaped with setsid() and
 * its parent died) is stopped here, with its group, and libev reaps it.
 * Its pid is safe to signal: it is our unreaped child.
 */
static void
orphans_sweep(struct daemon *d)
{
	pid_t kids[CHILD_SWEEP_MAX];
	size_t n = platform_child_pids(getpid(), kids, CHILD_SWEEP_MAX);

	for (size_t i = 0; i < n; i++) {
		if (orphan_owned(d, kids[i]))
			continue;
		log_info("orphan pid %ld of a stopped server: killing it",
		    (long)kids[i]);
		if (getpgid(kids[i]) == kids[i])
			(void)kill(-kids[i], SIGKILL);
		(void)kill(kids[i], SIGKILL);
	}
	cgroup_drain();
}

/* Every reap, a server's or an adopted orphan's. */
static void
orphans_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	orphans_sweep(w->data);
}

/* The descendants of one server as they are now; true if they changed. */
static bool
census_one(struct child *c)
{
	pid_t queue[CHILD_TREE_MAX + 1], kids[64];
	size_t head = 0, tail = 0, n, nt = 0;
	bool changed;
	uint64_t st;
	struct child_member tree[CHILD_TREE_MAX];

	queue[tail++] = c->pid;
	while (head < tail && nt < CHILD_TREE_MAX) {
		n = platform_child_pids(queue[head++], kids, 64);
		for (size_t i = 0; i < n && nt < CHILD_TREE_MAX; i++) {
			if (platform_process_start_time(kids[i], &st) == -1)
				continue;
			tree[nt].pid = kids[i];
			tree[nt++].start = st;
			if (tail < CHILD_TREE_MAX + 1)
				queue[tail++] = kids[i];
		}
	}
	changed = nt != c->ntree ||
	    memcmp(tree, c->tree, nt * sizeof(tree[0])) != 0;
	memcpy(c->tree, tree, nt * sizeof(tree[0]));
	c->ntree = nt;
	return changed;
}

/*
 * Without a cgroup, a poold killed with SIGKILL takes only the leaders
 * with it (parent-death signal); the next one finds the rest of each tree
 * by these pids and start times in the state file.
 */
static void
census_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	struct pool_server *srv;
	struct child *c;
	bool any = false;

	TAILQ_FOREACH(srv, &d->pool->servers, link) {
		/* A server in a cgroup needs no census: the cgroup lists
		 * its tree, and the timer runs only to remove cgroups. */
		if ((c = srv->udata) == NULL || c->exec_fd != -1 ||
		    c->reaped || c->cgroup[0] != '\0')
			continue;
		any = true;
		if (census_one(c))
			d->state_dirty = true;
	}
	/* An orphan adopted by the subreaper sends no SIGCHLD: look (with
	 * cgroups it stays in its server's, and goes with it). */
	if (!cgroup_enabled())
		orphans_sweep(d);
	else
		cgroup_drain();
	if (!any && ndraining == 0)
		ev_timer_stop(loop, w);
}

void
child_init(struct daemon *d)
{
	char why[PATH_MAX + 128];

	if (cgroup_init(!d->conf->cgroup_off, why, sizeof(why)) == 0)
		log_info("each server in its own cgroup below %s", why);
	else
		log_info("no cgroups (%s): process groups only", why);
	if (platform_become_subreaper() == -1 && errno != ENOSYS)
		log_warn("cannot become a child subreaper");
	ev_child_init(&d->orphans, orphans_cb, 0, 0);
	d->orphans.data = d;
	ev_child_start(d->loop, &d->orphans);
	ev_timer_init(&d->census, census_cb, (double)CHILD_CENSUS_MS / 1000,
	    (double)CHILD_CENSUS_MS / 1000);
	d->census.data = d;
}

#define CHILD_FINI_ROUNDS	100	/* of 10 ms: orphans left at exit */

/*
 * At exit, every server reaped: orphans that were still on their way to
 * us are stopped and reaped here, so none outlives poold.
 */
void
child_fini(struct daemon *d)
{
	struct timespec tick = { 0, 10 * 1000000L };
	pid_t kids[1];

	if (!ev_is_active(&d->orphans))
		return;
	ev_child_stop(d->loop, &d->orphans);
	ev_timer_stop(d->loop, &d->census);
	for (int round = 0; round < CHILD_FINI_ROUNDS && d->pool != NULL &&
	    d->pool->nservers == 0; round++) {
		orphans_sweep(d);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (platform_child_pids(getpid(), kids, 1) == 0 &&
		    ndraining == 0)
			break;
		(void)nanosleep(&tick, NULL);
	}
	while (ndraining > 0)
		free(draining[--ndraining]);
}

/* --- the end of a server --- */

static void
exec_close(struct child *c)
{
	if (c->exec_fd == -1)
		return;
	ev_io_stop(c->d->loop, &c->exec_watcher);
	close(c->exec_fd);
	c->exec_fd = -1;
}

static void
child_free(struct child *c)
{
	probe_stop(c);
	output_close(c);
	exec_close(c);
	ev_timer_stop(c->d->loop, &c->stop_timer);
	ev_child_stop(c->d->loop, &c->exit_watcher);
	if (c->log_fd != -1)
		close(c->log_fd);
	free(c);
}

/*
 * Reads the exec report if it is there: EOF (exec done) closes the pipe,
 * a failure is kept for the exit.  Never blocks: the pipe is
 * non-blocking, and the report is written before the child exits.
 */
static void
exec_report(struct child *c)
{
	int report[2];
	ssize_t n;

	if (c->exec_fd == -1)
		return;
	do
		n = read(c->exec_fd, report, sizeof(report));
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno == EAGAIN)
		return;
	if (n == (ssize_t)sizeof(report))
		c->exec_errno = report[1] != 0 ? report[1] : EIO,
		c->exec_stage = report[0];
	exec_close(c);
	if (c->exec_errno == 0 && c->stop_stage == 0 &&
	    c->srv->state == POOL_STARTING)
		probe_start(c);
}

static void
exec_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	exec_report(w->data);
}

/* The server is gone, all of it: the pool may count its memory free. */
static void
child_finish(struct child *c)
{
	struct daemon *d = c->d;
	struct pool_server *srv = c->srv;
	char why[POOL_ERROR_MAX];

	cgroup_end(c);
	exec_report(c);
	output_drain(c);
	if (c->exec_errno != 0)
		snprintf(why, sizeof(why), "cannot run '%s': %s",
		    c->exec_prog, strerror(c->exec_errno));
	else
		describe_status(c->rstatus, c, why, sizeof(why));
	srv->udata = NULL;
	child_free(c);
	measure_learn(d, srv);
	pool_exited(d->pool, daemon_now(), srv, why);
	d->state_dirty = true;
	/* Orphans of this server that came before its reap were its own
	 * until now (the pid-0 watcher may have run first). */
	orphans_sweep(d);
}

/* A stopped server's leader is reaped but its tree is not gone yet. */
static void
tree_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;
	pool_ms waited = daemon_now() - c->reaped_at;

	if (tree_left(c)) {
		if (waited >= c->d->conf->stop_timeout_ms &&
		    waited - CHILD_TREE_POLL_MS < c->d->conf->stop_timeout_ms)
			log_warnx("stop %s: processes of its tree still run "
			    "%" PRId64 " ms after SIGKILL (uninterruptible?); "
			    "their memory stays counted", c->srv->model->name,
			    waited);
		return;
	}
	ev_timer_stop(loop, w);
	child_finish(c);
}

static void
exit_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct child *c = w->data;

	/* The leader is gone (reaped: only its group may be signalled now,
	 * which its other members keep from being reused); its group and
	 * cgroup must not outlive it. */
	c->reaped = true;
	c->rstatus = w->rstatus;
	c->reaped_at = daemon_now();
	ev_child_stop(loop, &c->exit_watcher);
	(void)kill(-c->pid, SIGKILL);
	/*
	 * A server poold stopped (a wrapper such as sh -c exits first) keeps
	 * its memory counted until the rest of its tree is gone too: a
	 * llama-server that still unmaps 20 GB must not make room for the
	 * next one.  One that ended on its own is released at once.
	 */
	if (c->srv->state == POOL_STOPPING && tree_left(c)) {
		ev_timer_stop(loop, &c->stop_timer);
		ev_timer_init(&c->stop_timer, tree_wait_cb,
		    (double)CHILD_TREE_POLL_MS / 1000,
		    (double)CHILD_TREE_POLL_MS / 1000);
		c->stop_timer.data = c;
		ev_timer_start(loop, &c->stop_timer);
		return;
	}
	child_finish(c);
}

static void
stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;
	const struct config *conf = c->d->conf;
	double kill_after;

	if (c->stop_stage == 1) {
		/* llama-server exits on a second SIGTERM while serving. */
		tree_term(c);
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
	tree_kill(c);
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
	tree_term(c);
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
			tree_kill(c);
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

static struct child *
child_new(struct daemon *d, struct pool_server *srv, int out_fd)
{
	struct child *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->d = d;
	c->srv = srv;
	c->out_fd = out_fd;
	c->exec_fd = -1;
	c->log_fd = open_log(d->conf, srv->model->name);
	c->probe.fd = -1;
	return c;
}

/*
 * fork(), straight into the server's cgroup where the kernel can (clone3
 * with CLONE_INTO_CGROUP, Linux 5.7): a process moved into a cgroup by
 * writing cgroup.procs waits for an RCU grace period, 0.8-1.7 ms here on
 * every cold start's path, which a child born in it does not.  *placed:
 * it was.  Else (an older kernel, a cgroup clone3 refuses) a plain fork,
 * and the child moves itself.  The child only makes system calls before
 * its exec (child_exec), which is what a raw clone leaves safe.
 */
static pid_t
fork_into(const char *cgroup, bool *placed)
{
#if defined(__linux__) && defined(SYS_clone3) && defined(CLONE_INTO_CGROUP)
	struct clone_args args;
	long pid;
	int dirfd;

	*placed = false;
	if (cgroup[0] != '\0' && (dirfd = open(cgroup, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) != -1) {
		memset(&args, 0, sizeof(args));
		args.flags = CLONE_INTO_CGROUP;
		args.exit_signal = SIGCHLD;
		args.cgroup = (uint64_t)dirfd;
		pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid == 0) {
			*placed = true;
			return 0;
		}
		close(dirfd);
		if (pid > 0) {
			*placed = true;
			return (pid_t)pid;
		}
	}
#else
	(void)cgroup;
	*placed = false;
#endif
	return fork();
}

/* poold's own lack of descriptors or memory: not the model's failure. */
static int
spawn_error(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM ||
	    err == EAGAIN ? POOL_SPAWN_AGAIN : -1;
}

/*
 * Forks the server and returns at once: the exec report comes later on
 * a watched pipe (an exec stuck on a hung mount must not stop the loop),
 * the server is STARTING meanwhile, and an exec failure ends it as a
 * failed start (exit_cb), within start_timeout at the latest.
 */
int
child_spawn(struct daemon *d, struct pool_server *srv, char *err, size_t len)
{
	const struct model_entry *e = srv->model->udata;
	char **argv = NULL, **env = NULL;
	char key[2 * CHILD_API_KEY_BYTES + 1] = "";
	char key_var[sizeof("LLAMA_API_KEY=") + sizeof(key)];
	int out[2] = { -1, -1 }, ep[2] = { -1, -1 }, cgfd = -1, saved, rc = -1;
	struct child *c = NULL;
	pid_t pid, parent = getpid();
	bool placed;

	if (d->conf->api_keys && api_key_make(key) == -1) {
		saved = errno;
		snprintf(err, len, "no random bytes for its API key: %s",
		    strerror(saved));
		rc = spawn_error(saved);
		goto fail;
	}
	/* llama-server takes LLAMA_API_KEY as --api-key: not on its command
	 * line, where ps(1) shows it to every user. */
	snprintf(key_var, sizeof(key_var), "LLAMA_API_KEY=%s", key);
	if ((argv = argv_build(d->conf, srv, key)) == NULL ||
	    (env = env_build(e->conf != NULL ? e->conf->env : NULL,
	    key[0] != '\0' ? key_var : NULL)) == NULL) {
		snprintf(err, len, "out of memory");
		rc = POOL_SPAWN_AGAIN;
		goto fail;
	}
	if (fd_pipe(out) == -1 || fd_pipe(ep) == -1 ||
	    (c = child_new(d, srv, out[0])) == NULL) {
		saved = errno;
		snprintf(err, len, "cannot make pipes: %s", strerror(saved));
		rc = spawn_error(saved);
		goto fail;
	}
	if (cgroup_enabled() && (cgroup_create(c->cgroup, sizeof(c->cgroup))
	    == -1 || (cgfd = cgroup_procs_fd(c->cgroup)) == -1)) {
		/* A start without a cgroup still has its process group. */
		log_warn("%s: no cgroup for this server", c->cgroup);
		if (c->cgroup[0] != '\0')
			(void)cgroup_remove(c->cgroup);
		c->cgroup[0] = '\0';
	}
	if ((pid = fork_into(c->cgroup, &placed)) == -1) {
		saved = errno;
		snprintf(err, len, "fork: %s", strerror(saved));
		rc = spawn_error(saved);
		goto fail;
	}
	if (pid == 0)
		child_exec(argv, env, parent, out[1], ep[1], placed ? -1 :
		    cgfd);
	/* libev reaps it; the watcher must exist before we return. */
	ev_child_init(&c->exit_watcher, exit_cb, pid, 0);
	c->exit_watcher.data = c;
	ev_child_start(d->loop, &c->exit_watcher);
	close(out[1]);
	close(ep[1]);
	if (cgfd != -1)
		close(cgfd);
	snprintf(c->exec_prog, sizeof(c->exec_prog), "%s", argv[0]);
	memcpy(c->api_key, key, sizeof(c->api_key));
	c->config_hash = child_config_hash(d, srv->model);
	free(env);
	argv_free(argv);
	c->pid = pid;
	srv->pid = pid;
	srv->udata = c;
	c->exec_fd = ep[0];
	(void)fd_nonblock(c->exec_fd);
	ev_io_init(&c->exec_watcher, exec_cb, c->exec_fd, EV_READ);
	c->exec_watcher.data = c;
	ev_io_start(d->loop, &c->exec_watcher);
	(void)fd_nonblock(c->out_fd);
	ev_io_init(&c->out_watcher, output_cb, c->out_fd, EV_READ);
	c->out_watcher.data = c;
	ev_io_start(d->loop, &c->out_watcher);
	if (!ev_is_active(&d->census))
		ev_timer_start(d->loop, &d->census);
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
	if (cgfd != -1)
		close(cgfd);
	if (c != NULL) {
		if (c->cgroup[0] != '\0')
			(void)cgroup_remove(c->cgroup);
		if (c->log_fd != -1)
			close(c->log_fd);
		free(c);
	}
	free(env);
	argv_free(argv);
	return rc;
}

/* A port another process holds is skipped (llama-server would exit 1). */
bool
child_port_free(const struct config *conf, int port)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, one = 1;
	bool ok;

	if (fd_tcp_addr(conf->server_host, port, &ss, &sslen) == -1 ||
	    (fd = fd_socket(ss.ss_family, SOCK_STREAM)) == -1)
		return true;		/* can't tell; let the server try */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = bind(fd, (struct sockaddr *)&ss, sslen) == 0;
	close(fd);
	return ok;
}

/* --- which config a server runs under (a reload's "old" servers) --- */

#define FNV_OFFSET	14695981039346656037ULL
#define FNV_PRIME	1099511628211ULL

/* FNV-1a of s and a separator, so ["ab","c"] and ["a","bc"] differ. */
static uint64_t
hash_str(uint64_t h, const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * FNV_PRIME;
	return (h ^ (s == NULL ? 0xfe : 0xff)) * FNV_PRIME;
}

static uint64_t
hash_strv(uint64_t h, char *const *v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		h = hash_str(h, v[i]);
	return hash_str(h, NULL);
}

/*
 * The template, not the argv: the port and the API key differ at every
 * start and say nothing of the config.  The environment poold passes on
 * is its own and does not change while it runs: the model's env does.
 */
uint64_t
child_config_hash(const struct daemon *d, const struct pool_model *m)
{
	const struct model_entry *e = m->udata;
	const struct config *conf = d->conf;
	uint64_t h = FNV_OFFSET;

	h = hash_strv(h, config_command(conf, e->conf));
	h = hash_strv(h, e->conf != NULL ? e->conf->env : NULL);
	h = hash_str(h, e->path);
	h = hash_str(h, conf->server_host);
	h = hash_str(h, conf->api_keys ? "key" : "");
	return h;
}

bool
child_config_current(const struct daemon *d, const struct pool_server *srv)
{
	const struct child *c = srv->udata;
	const struct model_entry *e = srv->model->udata;

	if (c == NULL)
		return true;	/* not spawned yet: it will be current */
	/* A file replaced under its name since the spawn is another model. */
	if (e->identity_since > srv->spawned_at)
		return false;
	return c->config_hash == child_config_hash(d, srv->model);
}
