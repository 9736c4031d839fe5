/*
 * poolc_main.c — poolc(1), the command line over libpoolc.
 *
 * A thin shell: it parses the command line, makes one or two library
 * calls and formats what comes back.  Requests are encoded only by the
 * library; jansson is used here to read the STATS and MODELS replies.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "poolc.h"

#define EXIT_SERVER		1	/* poold reported an error */
#define EXIT_USAGE		2
#define EXIT_CONNECT		3	/* cannot connect, or I/O failure */
/* exec(3) failures, as sh(1) reports them. */
#define EXIT_NOEXEC		126
#define EXIT_NOTFOUND		127

#define DEFAULT_TIMEOUT_MS	30000
#define TIMEOUT_MAX_S		86400.0
#define CELL_MAX		64
#define LINE_COLS		100	/* what a table line should fit */

static const char usage_line[] =
    "usage: poolc [-hV] [-s socket] [-t timeout] command [argument ...]\n";
static const char usage_commands[] =
    "commands:\n"
    "  acquire model                        start or touch model, print its endpoint\n"
    "  run model -- command [argument ...]  run command while holding a lease\n"
    "  stats | ps [--json] [--cluster | --usage]\n"
    "                                       the servers and their memory,\n"
    "                                       or the models' use\n"
    "  stats --prometheus                   the pool in Prometheus' text format\n"
    "  models [--json]                      the catalog\n"
    "  budget                               the memory budget\n"
    "  evict model [--force]                stop model's server\n"
    "  pin model | unpin model              keep model running, or not\n"
    "  ping                                 check that poold answers\n"
    "  reload [--json]                      re-read poold's config, rescan\n"
    "  events [--json]                      print poold's events as they come\n";

/* --- command line --- */

enum {
	ARG_MODEL	= 1 << 0,	/* one model name */
	ARG_COMMAND	= 1 << 1,	/* then [--] command [argument ...] */
	OPT_JSON	= 1 << 2,
	OPT_FORCE	= 1 << 3,
	OPT_CLUSTER	= 1 << 4,
	OPT_USAGE	= 1 << 5,
	OPT_PROMETHEUS	= 1 << 6,
};

struct args {
	const char	*model;
	char		**command;	/* NULL-terminated */
	bool		 json;
	bool		 force;
	bool		 cluster;
	bool		 usage;
	bool		 prometheus;
	int		 timeout_ms;	/* 0: none given */
};

struct cmd {
	const char	*name;
	unsigned	 takes;
	int		(*run)(struct poolc *, const struct args *);
};

static _Noreturn void
usage(const char *problem)
{
	if (problem != NULL)
		fprintf(stderr, "poolc: %s\n", problem);
	fputs(usage_line, stderr);
	exit(EXIT_USAGE);
}

static _Noreturn void
help(void)
{
	fputs(usage_line, stdout);
	fputs(usage_commands, stdout);
	exit(0);
}

/* getopt_long() returned ':' or '?'. */
static _Noreturn void
bad_option(int ch, const char *arg)
{
	char	 msg[256];

	if (ch == ':')
		snprintf(msg, sizeof(msg), "option %s needs an argument", arg);
	else if (optopt != 0)
		snprintf(msg, sizeof(msg), "unknown option -%c", optopt);
	else
		snprintf(msg, sizeof(msg), "unknown option %s", arg);
	usage(msg);
}

/* Seconds, fractions allowed, as milliseconds. */
static int
parse_timeout(const char *s)
{
	char	*end;
	double	 sec;

	errno = 0;
	sec = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(sec > 0) ||
	    sec > TIMEOUT_MAX_S)
		usage("timeout must be a number of seconds from 0.001 to 86400");
	/* No libm for lround(): poolc links only libpoolc and jansson. */
	return sec < 0.001 ? 1 : (int)(sec * 1000 + 0.5);
}

/* One option of a command; false if the command does not take it. */
static bool
command_option(const struct cmd *cmd, const char *arg, struct args *a)
{
	if ((cmd->takes & OPT_JSON) && strcmp(arg, "--json") == 0)
		a->json = true;
	else if ((cmd->takes & OPT_FORCE) && strcmp(arg, "--force") == 0)
		a->force = true;
	else if ((cmd->takes & OPT_CLUSTER) && strcmp(arg, "--cluster") == 0)
		a->cluster = true;
	else if ((cmd->takes & OPT_USAGE) && strcmp(arg, "--usage") == 0)
		a->usage = true;
	else if ((cmd->takes & OPT_PROMETHEUS) &&
	    strcmp(arg, "--prometheus") == 0)
		a->prometheus = true;
	else
		return false;
	return true;
}

static _Noreturn void
command_usage(const struct cmd *cmd, const char *problem, const char *arg)
{
	char	 msg[256];

	snprintf(msg, sizeof(msg), "%s: %s%s", cmd->name, problem, arg);
	usage(msg);
}

/* Options may come before or after the model; run's command starts
 * right after the model, behind an optional "--". */
static void
parse_command(const struct cmd *cmd, int argc, char **argv, struct args *a)
{
	int	 i;

	for (i = 1; i < argc; i++) {
		if ((cmd->takes & ARG_COMMAND) && a->model != NULL) {
			if (strcmp(argv[i], "--") == 0)
				i++;
			break;
		}
		if (strcmp(argv[i], "--") == 0)
			continue;
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			if (!command_option(cmd, argv[i], a))
				command_usage(cmd, "unknown option ", argv[i]);
		} else if ((cmd->takes & ARG_MODEL) && a->model == NULL)
			a->model = argv[i];
		else
			command_usage(cmd, "unexpected argument ", argv[i]);
	}
	if ((cmd->takes & ARG_MODEL) && a->model == NULL)
		command_usage(cmd, "a model is needed", "");
	if (cmd->takes & ARG_COMMAND) {
		if (i >= argc)
			command_usage(cmd, "a command is needed", "");
		a->command = argv + i;
	}
}

/* --- reporting --- */

/* Prints c's error in one line and returns the exit status it means. */
static int
report(struct poolc *c)
{
	fprintf(stderr, "poolc: %s\n", poolc_errstr(c));
	switch (poolc_error(c)) {
	case POOLC_ERR_SERVER:
	case POOLC_ERR_LEASE_LOST:
		return EXIT_SERVER;
	case POOLC_ERR_ARG:
		return EXIT_USAGE;
	default:
		return EXIT_CONNECT;
	}
}

static int
report_connect(struct poolc *c)
{
	int	 e = poolc_errno(c);

	fprintf(stderr, "poolc: %s%s\n", poolc_errstr(c),
	    e == ENOENT || e == ECONNREFUSED ? " (is poold running?)" : "");
	return EXIT_CONNECT;
}

/* --- formatting --- */

/* 18.0G, 512.0M, 900B: binary units, one decimal. */
static const char *
human_size(char *buf, size_t len, int64_t bytes)
{
	static const char	 units[] = "KMGTPE";
	double			 v = (double)bytes;
	size_t			 u = 0;

	if (bytes < 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	if (bytes < 1024) {
		snprintf(buf, len, "%" PRId64 "B", bytes);
		return buf;
	}
	v /= 1024;
	/* 1023.96K would print as "1024.0K". */
	while (v >= 1023.95 && u + 1 < sizeof(units) - 1) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f%c", v, units[u]);
	return buf;
}

/* 45s, 3m12s, 2h05m, 3d04h. */
static const char *
human_duration(char *buf, size_t len, int64_t ms)
{
	int64_t	 s = ms / 1000;

	if (ms < 0)
		snprintf(buf, len, "-");
	else if (s < 60)
		snprintf(buf, len, "%" PRId64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600,
		    s % 3600 / 60);
	else
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400,
		    s % 86400 / 3600);
	return buf;
}

static int64_t
jint(const json_t *o, const char *key, int64_t def)
{
	json_t	*v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : def;
}

static const char *
jstr(const json_t *o, const char *key, const char *def)
{
	const char	*s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : def;
}

/* A number, or "-" when the field is absent or not positive. */
static const char *
cell_int(char *buf, size_t len, const json_t *o, const char *key)
{
	int64_t	 v = jint(o, key, -1);

	if (v <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%" PRId64, v);
	return buf;
}

/*
 * A size, or "-" when the field is absent (an older poold) or, with
 * zero_unknown, 0 (an RSS not sampled yet, an available memory the
 * system does not tell).
 */
static const char *
cell_size(char *buf, size_t len, const json_t *o, const char *key,
    bool zero_unknown)
{
	int64_t	 v = jint(o, key, -1);

	if (v < 0 || (zero_unknown && v == 0)) {
		snprintf(buf, len, "-");
		return buf;
	}
	return human_size(buf, len, v);
}

/* The accounted memory; an older poold called it only "used". */
static int64_t
memory_accounted(const json_t *m)
{
	int64_t	 v = jint(m, "accounted", -1);

	return v >= 0 ? v : jint(m, "used", -1);
}

/* --- tables --- */

#define TABLE_COLS_MAX	12

/* Rows of copied strings, printed in columns two spaces apart. */
struct table {
	size_t		 ncols, nrows, cap;
	unsigned	 right;		/* bit i: right-align column i */
	char		**cells;
};

static int
table_add(struct table *t, const char *const *row)
{
	char	**p;
	size_t	 i;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		if ((p = realloc(t->cells, t->cap * t->ncols *
		    sizeof(*p))) == NULL)
			return -1;
		t->cells = p;
	}
	for (i = 0; i < t->ncols; i++)
		if ((t->cells[t->nrows * t->ncols + i] =
		    strdup(row[i])) == NULL)
			return -1;	/* the row's cells leak; we exit */
	t->nrows++;
	return 0;
}

static void
table_print(const struct table *t)
{
	size_t	 w[TABLE_COLS_MAX] = { 0 }, r, i, n;
	char	*s;

	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++)
			if ((n = strlen(t->cells[r * t->ncols + i])) > w[i])
				w[i] = n;
	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i < t->ncols; i++) {
			s = t->cells[r * t->ncols + i];
			if (i + 1 == t->ncols && !(t->right & 1u << i))
				printf("%s", s);
			else
				printf(t->right & 1u << i ? "%*s" : "%-*s",
				    (int)w[i], s);
			if (i + 1 < t->ncols)
				fputs("  ", stdout);
		}
		putchar('\n');
	}
}

static void
table_free(struct table *t)
{
	size_t	 i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* The head, then a row of each element of rows; printed, freed.  Exit
 * status: 0, or EXIT_CONNECT if memory ran out. */
static int
table_print_rows(struct table *t, const char *const *head,
    const json_t *rows, int (*add_row)(struct table *, const json_t *))
{
	json_t	*row;
	size_t	 i;
	int	 r;

	r = table_add(t, head);
	json_array_foreach(rows, i, row)
		if (r == 0)
			r = add_row(t, row);
	if (r == 0)
		table_print(t);
	else
		fprintf(stderr, "poolc: out of memory\n");
	table_free(t);
	return r == 0 ? 0 : EXIT_CONNECT;
}

/* --- commands --- */

static int
cmd_acquire(struct poolc *c, const struct args *a)
{
	struct poolc_acquire_opts	 opts = { a->timeout_ms, true };
	struct poolc_server		 s;

	if (poolc_acquire(c, a->model, &opts, &s) == -1)
		return report(c);
	/* The key on a line of its own, only when the server wants one. */
	printf("%s\n", s.endpoint);
	if (s.api_key[0] != '\0')
		printf("%s\n", s.api_key);
	return 0;
}

static volatile sig_atomic_t	 run_child;

/* poolc is killed, not the terminal: pass it on so CMD can clean up. */
static void
forward_signal(int sig)
{
	if (run_child > 0)
		kill((pid_t)run_child, sig);
}

static void
handle(int sig, void (*fn)(int))
{
	struct sigaction	 sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(sig, &sa, NULL);
}

static int
export_server(const struct poolc_server *s)
{
	char	 port[16];

	snprintf(port, sizeof(port), "%d", s->port);
	/* No key: none inherited either, or the command would send it. */
	if (setenv("POOLD_ENDPOINT", s->endpoint, 1) == -1 ||
	    setenv("POOLD_PORT", port, 1) == -1 ||
	    setenv("POOLD_MODEL", s->model, 1) == -1 ||
	    (s->api_key[0] != '\0' ? setenv("POOLD_API_KEY", s->api_key, 1) :
	    unsetenv("POOLD_API_KEY")) == -1) {
		fprintf(stderr, "poolc: setenv: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Never returns: execs argv or exits as sh(1) would. */
static _Noreturn void
exec_child(char **argv, const sigset_t *mask)
{
	int	 e;

	sigprocmask(SIG_SETMASK, mask, NULL);
	execvp(argv[0], argv);
	e = errno;
	fprintf(stderr, "poolc: %s: %s\n", argv[0], strerror(e));
	_exit(e == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC);
}

/*
 * Runs argv and waits for it.  Like system(3), poolc ignores the
 * terminal's SIGINT and SIGQUIT meanwhile (the child gets them too) and
 * passes SIGTERM and SIGHUP on.  They stay blocked across fork() so no
 * signal can slip in before the handlers are set.
 */
static int
spawn_and_wait(char **argv, int *status)
{
	sigset_t	 block, old;
	pid_t		 pid;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	fflush(NULL);
	sigprocmask(SIG_BLOCK, &block, &old);
	if ((pid = fork()) == -1) {
		fprintf(stderr, "poolc: fork: %s\n", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		return -1;
	}
	if (pid == 0)
		exec_child(argv, &old);
	run_child = pid;
	handle(SIGINT, SIG_IGN);
	handle(SIGQUIT, SIG_IGN);
	handle(SIGTERM, forward_signal);
	handle(SIGHUP, forward_signal);
	sigprocmask(SIG_SETMASK, &old, NULL);
	while (waitpid(pid, status, 0) == -1) {
		if (errno != EINTR) {
			fprintf(stderr, "poolc: waitpid: %s\n",
			    strerror(errno));
			return -1;
		}
	}
	run_child = 0;
	return 0;
}

static int
cmd_run(struct poolc *c, const struct args *a)
{
	struct poolc_acquire_opts	 opts = { a->timeout_ms, false };
	struct poolc_server		 s;
	int				 status;

	/* The connection stays open while the command runs: closing it
	 * would end the lease. */
	if (poolc_acquire(c, a->model, &opts, &s) == -1)
		return report(c);
	if (export_server(&s) == -1 || spawn_and_wait(a->command,
	    &status) == -1)
		return EXIT_CONNECT;
	/*
	 * Not fatal: the lease ends when poolc exits anyway.  But a server
	 * that died under the command may have left its work undone: a
	 * command that says it succeeded does not make poolc say so too.
	 */
	if (poolc_release(c, s.lease) == -1) {
		fprintf(stderr, "poolc: release of lease %" PRId64 ": %s\n",
		    s.lease, poolc_errstr(c));
		if (poolc_error(c) == POOLC_ERR_LEASE_LOST && WIFEXITED(status)
		    && WEXITSTATUS(status) == 0)
			return EXIT_SERVER;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return EXIT_CONNECT;
}

/* Fetches STATS or MODELS, prints it raw with --json or parses it. */
static int
fetch(struct poolc *c, int (*call)(struct poolc *, char **), bool raw,
    json_t **root, int *status)
{
	json_error_t	 jerr;
	char		*text;

	*root = NULL;
	if (call(c, &text) == -1) {
		*status = report(c);
		return -1;
	}
	if (raw) {
		printf("%s\n", text);
		free(text);
		*status = 0;
		return -1;
	}
	*root = json_loads(text, 0, &jerr);
	free(text);
	if (*root == NULL) {
		fprintf(stderr, "poolc: cannot read the reply: %s\n",
		    jerr.text);
		*status = EXIT_CONNECT;
		return -1;
	}
	return 0;
}

/*
 * Two lines: the budget and what is accounted against it, then what the
 * servers really hold and what the rest of the machine has left.
 */
static void
print_budget_lines(const json_t *root)
{
	const json_t	*m = json_object_get(root, "memory");
	char		 t[CELL_MAX], r[CELL_MAX], b[CELL_MAX], a[CELL_MAX],
			 f[CELL_MAX], me[CELL_MAX], av[CELL_MAX];

	printf("total %s  reserved %s  budget %s  accounted %s  free %s\n",
	    human_size(t, sizeof(t), jint(m, "total", -1)),
	    human_size(r, sizeof(r), jint(m, "reserved", -1)),
	    human_size(b, sizeof(b), jint(m, "budget", -1)),
	    human_size(a, sizeof(a), memory_accounted(m)),
	    human_size(f, sizeof(f), jint(m, "free", -1)));
	printf("measured %s  system available %s  servers %" PRId64 "/%"
	    PRId64,
	    cell_size(me, sizeof(me), m, "measured", false),
	    cell_size(av, sizeof(av), m, "system_available", true),
	    jint(root, "running", 0), jint(root, "max_servers", 0));
	if (jint(root, "waiting", 0) > 0)
		printf("  waiting %" PRId64, jint(root, "waiting", 0));
	putchar('\n');
}

static int
add_server_row(struct table *t, const json_t *s)
{
	char		 port[CELL_MAX], pid[CELL_MAX], leases[CELL_MAX],
			 idle[CELL_MAX], est[CELL_MAX], rss[CELL_MAX],
			 mem[CELL_MAX], up[CELL_MAX];
	const char	*row[11];

	snprintf(leases, sizeof(leases), "%" PRId64, jint(s, "leases", 0));
	row[0] = jstr(s, "model", "?");
	row[1] = jstr(s, "state", "?");
	row[2] = cell_int(port, sizeof(port), s, "port");
	row[3] = cell_int(pid, sizeof(pid), s, "pid");
	row[4] = leases;
	row[5] = human_duration(idle, sizeof(idle), jint(s, "idle_ms", -1));
	row[6] = cell_size(est, sizeof(est), s, "estimate", false);
	row[7] = jstr(s, "estimate_source", "-");
	row[8] = cell_size(rss, sizeof(rss), s, "rss", true);
	row[9] = cell_size(mem, sizeof(mem), s, "mem", false);
	row[10] = human_duration(up, sizeof(up), jint(s, "uptime_ms", -1));
	return table_add(t, row);
}

/*
 * EST (the estimate and its SRC) and RSS (measured) beside MEM, which is
 * what the budget counts: the larger of the two.
 */
static int
print_servers(const json_t *servers)
{
	static const char *const head[] = { "MODEL", "STATE", "PORT", "PID",
	    "LEASES", "IDLE", "EST", "SRC", "RSS", "MEM", "UPTIME" };
	struct table	 t = { .ncols = 11, .right = 0x77c };

	if (json_array_size(servers) == 0) {
		printf("no servers running\n");
		return 0;
	}
	return table_print_rows(&t, head, servers, add_server_row);
}

/*
 * Models whose starts keep failing: no server to show, but news.  One
 * line each, the error cut to fit LINE_COLS (--json has all of it).
 */
static void
print_failing(const json_t *models)
{
	const json_t	*m;
	const char	*state, *err;
	char		 head[CELL_MAX * 4];
	size_t		 i, room, n;
	int64_t		 fails;
	int		 len;

	json_array_foreach(models, i, m) {
		state = jstr(m, "state", "");
		if (strcmp(state, "backoff") != 0 &&
		    strcmp(state, "failed") != 0)
			continue;
		fails = jint(m, "failures", 0);
		err = jstr(m, "last_error", "");
		len = snprintf(head, sizeof(head), "%s %s: %" PRId64
		    " failed start%s in a row", state, jstr(m, "model", "?"),
		    fails, fails == 1 ? "" : "s");
		if (len < 0)
			continue;
		fputs(head, stdout);
		room = (size_t)len + 2 < LINE_COLS ? LINE_COLS - (size_t)len -
		    2 : 0;
		if ((n = strlen(err)) == 0 || room < 8) {
			putchar('\n');
			continue;
		}
		if (n <= room) {
			printf(": %s\n", err);
			continue;
		}
		/* "...", and never half of a UTF-8 character. */
		n = room - 3;
		while (n > 0 && ((unsigned char)err[n] & 0xc0) == 0x80)
			n--;
		printf(": %.*s...\n", (int)n, err);
	}
}

/* The nodes of a cluster, then who serves what where. */
static int
print_cluster(const json_t *cl)
{
	static const char *const nhead[] = { "NODE", "ADDR", "LINK", "MODELS",
	    "BUDGET", "USED", "FREE", "EVICTABLE" };
	static const char *const shead[] = { "MODEL", "NODE", "STATE",
	    "PORT" };
	struct table	 nt = { .ncols = 8, .right = 0xf8 };
	struct table	 st = { .ncols = 4, .right = 0x8 };
	char		 cell[4][CELL_MAX], models[32], port[16];
	const char	*row[8], *link;
	const json_t	*n, *s;
	size_t		 i;
	int		 r;

	if (cl == NULL) {
		printf("poolc: this poold is not in a cluster (no \"cluster\" "
		    "in its config)\n");
		return 0;
	}
	printf("cluster: node %s, %s, etcd revision %" PRId64 ", %" PRId64
	    " forwarded, %" PRId64 " remote leases\n", jstr(cl, "name", "?"),
	    jstr(cl, "state", "?"), jint(cl, "revision", 0),
	    jint(cl, "forwarded", 0), jint(cl, "remote_leases", 0));
	r = table_add(&nt, nhead);
	json_array_foreach(json_object_get(cl, "nodes"), i, n) {
		link = json_is_true(json_object_get(n, "self")) ? "self" :
		    jstr(n, "link", "-");
		snprintf(models, sizeof(models), "%" PRId64,
		    jint(n, "models", 0));
		row[0] = jstr(n, "name", "?");
		row[1] = jstr(n, "addr", "?");
		row[2] = link;
		row[3] = models;
		row[4] = human_size(cell[0], CELL_MAX, jint(n, "budget", -1));
		row[5] = human_size(cell[1], CELL_MAX, jint(n, "used", -1));
		row[6] = human_size(cell[2], CELL_MAX, jint(n, "free", -1));
		row[7] = human_size(cell[3], CELL_MAX, jint(n, "evictable",
		    -1));
		if (r == 0)
			r = table_add(&nt, row);
	}
	if (r == 0)
		table_print(&nt);
	if (r == 0 && json_array_size(json_object_get(cl, "servers")) > 0) {
		putchar('\n');
		r = table_add(&st, shead);
		json_array_foreach(json_object_get(cl, "servers"), i, s) {
			snprintf(port, sizeof(port), "%" PRId64,
			    jint(s, "port", 0));
			row[0] = jstr(s, "model", "?");
			row[1] = jstr(s, "node", "?");
			row[2] = jstr(s, "state", "?");
			row[3] = port;
			if (r == 0)
				r = table_add(&st, row);
		}
		if (r == 0)
			table_print(&st);
	}
	table_free(&nt);
	table_free(&st);
	if (r != 0)
		fprintf(stderr, "poolc: out of memory\n");
	return r == 0 ? 0 : EXIT_CONNECT;
}

/* --- usage --- */

static int64_t
wall_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 850ms, 2.4s, then as human_duration. */
static const char *
human_load(char *buf, size_t len, int64_t ms)
{
	if (ms < 0)
		snprintf(buf, len, "-");
	else if (ms < 1000)
		snprintf(buf, len, "%" PRId64 "ms", ms);
	else if (ms < 60000)
		snprintf(buf, len, "%" PRId64 ".%" PRId64 "s", ms / 1000,
		    ms % 1000 / 100);
	else
		human_duration(buf, len, ms);
	return buf;
}

/* "3m12s ago", "never" (0), "now" (a clock set back). */
static const char *
human_ago(char *buf, size_t len, int64_t unix_ms)
{
	char	 d[CELL_MAX];
	int64_t	 ago = wall_ms() - unix_ms;

	if (unix_ms <= 0)
		snprintf(buf, len, "never");
	else if (ago < 1000)
		snprintf(buf, len, "now");
	else
		snprintf(buf, len, "%s ago", human_duration(d, sizeof(d),
		    ago));
	return buf;
}

/* hits as a share of acquires: "75%", "-" without acquires. */
static const char *
hit_share(char *buf, size_t len, const json_t *u)
{
	int64_t	 acq = jint(u, "acquires", 0), hits = jint(u, "hits", 0);

	if (acq <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%" PRId64 "%%", hits * 100 / acq);
	return buf;
}

static int
add_usage_row(struct table *t, const json_t *u)
{
	char		 acq[CELL_MAX], hits[CELL_MAX], cold[CELL_MAX],
			 failed[CELL_MAX], load[CELL_MAX], leased[CELL_MAX],
			 last[CELL_MAX], freq[CELL_MAX];
	const char	*row[10];
	int64_t		 loads = jint(u, "loads", 0);
	json_t		*f = json_object_get(u, "freq");

	snprintf(acq, sizeof(acq), "%" PRId64, jint(u, "acquires", 0));
	snprintf(cold, sizeof(cold), "%" PRId64, jint(u, "cold_starts", 0));
	snprintf(failed, sizeof(failed), "%" PRId64,
	    jint(u, "failed_starts", 0));
	snprintf(freq, sizeof(freq), "%.2f", json_is_number(f) ?
	    json_number_value(f) : 0.0);
	row[0] = jstr(u, "model", "?");
	row[1] = jstr(u, "priority", "-");
	row[2] = acq;
	row[3] = hit_share(hits, sizeof(hits), u);
	row[4] = cold;
	row[5] = failed;
	row[6] = human_load(load, sizeof(load), loads > 0 ?
	    jint(u, "load_ms_total", 0) / loads : -1);
	row[7] = human_duration(leased, sizeof(leased),
	    jint(u, "leased_ms", 0));
	row[8] = human_ago(last, sizeof(last), jint(u, "last_used", 0));
	row[9] = freq;
	return table_add(t, row);
}

/* STATS "usage": the most used models, most used first. */
static int
print_usage(const json_t *usage)
{
	static const char *const head[] = { "MODEL", "PRIORITY", "ACQUIRES",
	    "HITS", "COLD", "FAILED", "AVG LOAD", "LEASED", "LAST USED",
	    "FREQ" };
	struct table	 t = { .ncols = 10, .right = 0x3fc };

	if (usage == NULL) {
		printf("poolc: this poold keeps no usage (an older version)\n");
		return 0;
	}
	if (json_array_size(usage) == 0) {
		printf("no model used yet\n");
		return 0;
	}
	return table_print_rows(&t, head, usage, add_usage_row);
}

/*
 * METRICS, printed as it comes, for node_exporter's textfile collector:
 * a failed write must fail the command, or a cut file would be moved
 * into place (poolc(1) shows the temporary file and mv).
 */
static int
print_prometheus(struct poolc *c)
{
	char	*text;

	if (poolc_metrics(c, &text) == -1)
		return report(c);
	fputs(text, stdout);
	free(text);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "poolc: writing the metrics: %s\n",
		    strerror(errno));
		return EXIT_CONNECT;
	}
	return 0;
}

static int
cmd_stats(struct poolc *c, const struct args *a)
{
	json_t	*root;
	int	 status;

	if (a->prometheus) {
		if (a->json || a->cluster || a->usage)
			usage("stats: --prometheus goes alone");
		return print_prometheus(c);
	}
	if (a->cluster && a->usage)
		usage("stats: --cluster or --usage, not both");
	if (fetch(c, poolc_stats, a->json, &root, &status) == -1)
		return status;
	if (a->usage) {
		status = print_usage(json_object_get(root, "usage"));
		json_decref(root);
		return status;
	}
	if (a->cluster) {
		status = print_cluster(json_object_get(root, "cluster"));
		json_decref(root);
		return status;
	}
	print_budget_lines(root);
	status = print_servers(json_object_get(root, "servers"));
	print_failing(json_object_get(root, "models"));
	json_decref(root);
	return status;
}

static int
cmd_budget(struct poolc *c, const struct args *a)
{
	const json_t	*m;
	json_t		*root;
	char		 size[CELL_MAX];
	int		 status;

	if (fetch(c, poolc_stats, false, &root, &status) == -1)
		return status;
	m = json_object_get(root, "memory");
	printf("%-17s %s\n", "total",
	    human_size(size, sizeof(size), jint(m, "total", -1)));
	printf("%-17s %s\n", "reserved",
	    human_size(size, sizeof(size), jint(m, "reserved", -1)));
	printf("%-17s %s\n", "budget",
	    human_size(size, sizeof(size), jint(m, "budget", -1)));
	printf("%-17s %s\n", "accounted",
	    human_size(size, sizeof(size), memory_accounted(m)));
	printf("%-17s %s\n", "measured",
	    cell_size(size, sizeof(size), m, "measured", false));
	printf("%-17s %s\n", "free",
	    human_size(size, sizeof(size), jint(m, "free", -1)));
	printf("%-17s %s\n", "system available",
	    cell_size(size, sizeof(size), m, "system_available", true));
	printf("%-17s %" PRId64 "/%" PRId64 "\n", "servers",
	    jint(root, "running", 0), jint(root, "max_servers", 0));
	json_decref(root);
	return 0;
}

/*
 * With a poold that keeps usage, PRIORITY after STATE and ACQUIRES and
 * LAST USED before PATH; an older one's table stays as it was.
 */
static int
add_model_row(struct table *t, const json_t *m, bool with_usage)
{
	char		 port[CELL_MAX], mem[CELL_MAX], acq[CELL_MAX],
			 last[CELL_MAX];
	const char	*row[9];
	const json_t	*u = json_object_get(m, "usage");
	size_t		 n = 0;

	row[n++] = jstr(m, "model", "?");
	row[n++] = jstr(m, "state", "?");
	if (with_usage)
		row[n++] = jstr(m, "priority", "-");
	row[n++] = cell_int(port, sizeof(port), m, "port");
	row[n++] = cell_size(mem, sizeof(mem), m, "memory", false);
	row[n++] = jstr(m, "source", "-");
	if (with_usage) {
		snprintf(acq, sizeof(acq), "-");
		snprintf(last, sizeof(last), "-");
		if (u != NULL) {
			snprintf(acq, sizeof(acq), "%" PRId64,
			    jint(u, "acquires", 0));
			human_ago(last, sizeof(last), jint(u, "last_used", 0));
		}
		row[n++] = acq;
		row[n++] = last;
	}
	row[n++] = jstr(m, "path", "-");
	return table_add(t, row);
}

static int
cmd_models(struct poolc *c, const struct args *a)
{
	static const char *const head[] = { "MODEL", "STATE", "PORT",
	    "MEMORY", "SOURCE", "PATH" };
	static const char *const head_usage[] = { "MODEL", "STATE",
	    "PRIORITY", "PORT", "MEMORY", "SOURCE", "ACQUIRES", "LAST USED",
	    "PATH" };
	struct table	 t = { .ncols = 6, .right = 0x0c };
	json_t		*root, *models, *m;
	size_t		 i;
	int		 r, status;
	bool		 with_usage = false;

	if (fetch(c, poolc_models, a->json, &root, &status) == -1)
		return status;
	models = json_object_get(root, "models");
	if (json_array_size(models) == 0) {
		printf("no models in %s\n", jstr(root, "models_dir", "?"));
		json_decref(root);
		return 0;
	}
	json_array_foreach(models, i, m)
		if (json_object_get(m, "usage") != NULL)
			with_usage = true;
	if (with_usage) {
		t.ncols = 9;
		t.right = 0xd8;
	}
	r = table_add(&t, with_usage ? head_usage : head);
	json_array_foreach(models, i, m)
		if (r == 0)
			r = add_model_row(&t, m, with_usage);
	if (r == 0)
		table_print(&t);
	else
		fprintf(stderr, "poolc: out of memory\n");
	table_free(&t);
	json_decref(root);
	return r == 0 ? 0 : EXIT_CONNECT;
}

static int
cmd_evict(struct poolc *c, const struct args *a)
{
	int64_t	 freed;
	char	 size[CELL_MAX];

	if (poolc_evict(c, a->model, a->force, &freed) == -1)
		return report(c);
	printf("evicted %s, freed %s\n", a->model,
	    human_size(size, sizeof(size), freed));
	return 0;
}

/* One line per list: "changed: a, b"; nothing if it is empty. */
static void
print_key_list(const char *label, const json_t *keys)
{
	const json_t	*k;
	size_t		 i;

	if (json_array_size(keys) == 0)
		return;
	printf("%s:", label);
	json_array_foreach(keys, i, k)
		printf("%s %s", i > 0 ? "," : "", json_string_value(k) != NULL ?
		    json_string_value(k) : "?");
	putchar('\n');
}

static int
cmd_reload(struct poolc *c, const struct args *a)
{
	const json_t	*models;
	json_t		*root;
	int		 status;

	if (fetch(c, poolc_reload, a->json, &root, &status) == -1)
		return status;
	models = json_object_get(root, "models");
	printf("reloaded: %" PRId64 " models added, %" PRId64 " removed\n",
	    jint(models, "added", 0), jint(models, "removed", 0));
	print_key_list("changed", json_object_get(root, "changed"));
	print_key_list("needs a restart (kept as they run)",
	    json_object_get(root, "restart_needed"));
	if (json_string_value(json_object_get(root, "warning")) != NULL)
		fprintf(stderr, "poolc: warning: %s\n",
		    json_string_value(json_object_get(root, "warning")));
	json_decref(root);
	return 0;
}

static int
pin_or_unpin(struct poolc *c, const struct args *a, bool pin)
{
	char	 prio[32];

	if (poolc_pin(c, a->model, pin, prio, sizeof(prio)) == -1)
		return report(c);
	printf("%s %s: %s\n", pin ? "pinned" : "unpinned", a->model,
	    prio[0] != '\0' ? prio : "?");
	return 0;
}

static int
cmd_pin(struct poolc *c, const struct args *a)
{
	return pin_or_unpin(c, a, true);
}

static int
cmd_unpin(struct poolc *c, const struct args *a)
{
	return pin_or_unpin(c, a, false);
}

static int
cmd_ping(struct poolc *c, const struct args *a)
{
	char	 version[64];

	if (poolc_ping(c, version, sizeof(version)) == -1)
		return report(c);
	printf("poold %s at %s\n", version[0] ? version : "(unknown version)",
	    poolc_path(c));
	return 0;
}

/* --- events --- */

/* Printed to the end: SIGINT and SIGTERM end the watch, not an error.
 * Every line is flushed as it is printed, so nothing is lost here. */
static void
events_stop(int sig)
{
	(void)sig;
	_exit(0);
}

/* "2026-12-05 09:01:02.123", local time, from unix ms. */
static const char *
event_time(char *buf, size_t len, int64_t ms)
{
	struct tm	 tm;
	time_t		 t = (time_t)(ms / 1000);
	char		 day[32];

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(day, sizeof(day), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "%" PRId64, ms);
	else
		snprintf(buf, len, "%s.%03d", day, (int)(ms % 1000));
	return buf;
}

/* time, event, model, then every other field as key=value. */
static void
print_event(const char *line)
{
	json_t		*o, *v;
	const char	*key;
	char		 when[64], *text;

	if ((o = json_loads(line, 0, NULL)) == NULL) {
		printf("%s\n", line);
		return;
	}
	printf("%s %-8s %s", event_time(when, sizeof(when),
	    jint(o, "time", 0)), jstr(o, "event", "?"),
	    jstr(o, "model", "-"));
	json_object_foreach(o, key, v) {
		if (strcmp(key, "event") == 0 || strcmp(key, "seq") == 0 ||
		    strcmp(key, "time") == 0 || strcmp(key, "model") == 0)
			continue;
		if (json_is_string(v))
			printf(" %s=%s", key, json_string_value(v));
		else if ((text = json_dumps(v, JSON_COMPACT |
		    JSON_ENCODE_ANY)) != NULL) {
			printf(" %s=%s", key, text);
			free(text);
		}
	}
	printf("\n");
	json_decref(o);
}

static int
cmd_events(struct poolc *c, const struct args *a)
{
	char	*line;

	if (poolc_subscribe(c) == -1)
		return report(c);
	handle(SIGINT, events_stop);
	handle(SIGTERM, events_stop);
	for (;;) {
		if (poolc_event(c, -1, &line) == -1) {
			fprintf(stderr, "poolc: events: %s\n",
			    poolc_errstr(c));
			return EXIT_CONNECT;
		}
		if (line == NULL)
			continue;
		if (a->json)
			printf("%s\n", line);
		else
			print_event(line);
		free(line);
		if (fflush(stdout) == EOF)
			return EXIT_CONNECT;	/* main() says why */
	}
}

static const struct cmd cmds[] = {
	{ "acquire",	ARG_MODEL,		cmd_acquire },
	{ "run",	ARG_MODEL | ARG_COMMAND, cmd_run },
	{ "stats",	OPT_JSON | OPT_CLUSTER | OPT_USAGE | OPT_PROMETHEUS,
	    cmd_stats },
	{ "ps",		OPT_JSON | OPT_CLUSTER | OPT_USAGE | OPT_PROMETHEUS,
	    cmd_stats },
	{ "models",	OPT_JSON,		cmd_models },
	{ "budget",	0,			cmd_budget },
	{ "evict",	ARG_MODEL | OPT_FORCE,	cmd_evict },
	{ "pin",	ARG_MODEL,		cmd_pin },
	{ "unpin",	ARG_MODEL,		cmd_unpin },
	{ "ping",	0,			cmd_ping },
	{ "reload",	OPT_JSON,		cmd_reload },
	{ "events",	OPT_JSON,		cmd_events },
};

static const struct cmd *
find_command(const char *name)
{
	char	 msg[256];
	size_t	 i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	snprintf(msg, sizeof(msg), "unknown command %s", name);
	usage(msg);
	return NULL;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help",	no_argument,		NULL, 'h' },
		{ "socket",	required_argument,	NULL, 's' },
		{ "timeout",	required_argument,	NULL, 't' },
		{ "version",	no_argument,		NULL, 'V' },
		{ NULL,		0,			NULL, 0 }
	};
	const struct cmd	*cmd;
	struct args		 a;
	struct poolc		*c;
	const char		*socket = NULL;
	int			 ch, status;

	memset(&a, 0, sizeof(a));
	/* "+": stop at the command, whose arguments are its own; ":" and
	 * opterr = 0: our own messages, which say "poolc", not argv[0]. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:hs:t:V", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'h':
			help();
			break;
		case 's':
			socket = optarg;
			break;
		case 't':
			a.timeout_ms = parse_timeout(optarg);
			break;
		case 'V':
			printf("poolc %s\n", POOLC_VERSION);
			return 0;
		default:
			bad_option(ch, argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage("a command is needed");
	cmd = find_command(argv[0]);
	parse_command(cmd, argc, argv, &a);

	c = poolc_connect(socket, a.timeout_ms > 0 ? a.timeout_ms :
	    DEFAULT_TIMEOUT_MS);
	if (c == NULL) {
		fprintf(stderr, "poolc: out of memory\n");
		return EXIT_CONNECT;
	}
	if (poolc_error(c) != POOLC_OK)
		status = report_connect(c);
	else
		status = cmd->run(c, &a);
	poolc_free(c);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "poolc: stdout: %s\n", strerror(errno));
		if (status == 0)
			status = EXIT_CONNECT;
	}
	return status;
}
