/*
 * main.c — poold: options, config, signals, the loop.
 */
#include <sys/resource.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poold.h"

#define DEFAULT_CONFIG	"/etc/poold/poold.json"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: poold [-nv] [-f file] [-m dir] [-s socket] "
	    "[--http addr:port]\n"
	    "       poold --budget [-f file]\n"
	    "       poold --version\n");
}

struct options {
	const char	*config;
	const char	*models_dir;
	const char	*socket;
	const char	*http;		/* --http ADDR:PORT */
	bool		 check;
	bool		 budget;
	bool		 verbose;
};

static void
parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_BUDGET = 256, OPT_VERSION, OPT_HTTP };
	static const struct option longopts[] = {
		{ "config",	required_argument,	NULL, 'f' },
		{ "models-dir",	required_argument,	NULL, 'm' },
		{ "socket",	required_argument,	NULL, 's' },
		{ "check",	no_argument,		NULL, 'n' },
		{ "verbose",	no_argument,		NULL, 'v' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "budget",	no_argument,		NULL, OPT_BUDGET },
		{ "version",	no_argument,		NULL, OPT_VERSION },
		{ "http",	required_argument,	NULL, OPT_HTTP },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "f:m:s:nvh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'f':
			o->config = optarg;
			break;
		case 'm':
			o->models_dir = optarg;
			break;
		case 's':
			o->socket = optarg;
			break;
		case 'n':
			o->check = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_BUDGET:
			o->budget = true;
			break;
		case OPT_HTTP:
			o->http = optarg;
			break;
		case OPT_VERSION:
			printf("poold %s\n", POOLD_VERSION);
			exit(0);
		default:
			usage(stderr);
			exit(1);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(1);
	}
}

static int
replace(char **field, const char *value)
{
	char *s;

	if ((s = strdup(value)) == NULL)
		return -1;
	free(*field);
	*field = s;
	return 0;
}

/*
 * The default state file is named after the socket: two poolds on two
 * sockets must never share one (each would kill the other's servers as
 * leftovers).  /run/poold/poold.sock → STATE_DIR/run-poold-poold.sock.json
 */
static void
state_file_for_socket(struct config *conf)
{
	char *dir, *path, *name, *p;

	if (!conf->state_file_default || conf->state_file == NULL)
		return;
	if ((dir = strdup(conf->state_file)) == NULL ||
	    (name = strdup(conf->socket + (conf->socket[0] == '/'))) == NULL)
		fatal("options");
	for (p = name; *p != '\0'; p++)
		if (*p == '/')
			*p = '-';
	if ((p = strrchr(dir, '/')) != NULL)
		*p = '\0';
	if (asprintf(&path, "%s/%s.json", dir, name) == -1)
		fatal("options");
	free(conf->state_file);
	conf->state_file = path;
	free(dir);
	free(name);
}

/* Config file (given, or the default one if it exists), then flags. */
static void
load_config(const struct options *o, struct config *conf)
{
	const char *path = o->config;
	char err[1024], sock[512];

	config_defaults(conf);
	if (path == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
		path = DEFAULT_CONFIG;
	if (path != NULL && config_load(conf, path, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (o->models_dir != NULL && replace(&conf->models_dir,
	    o->models_dir) == -1)
		fatal("options");
	if (o->socket != NULL && replace(&conf->socket, o->socket) == -1)
		fatal("options");
	if (o->http != NULL && replace(&conf->http.listen, o->http) == -1)
		fatal("options");
	if (conf->socket == NULL) {
		if (proto_default_socket(sock, sizeof(sock)) == NULL)
			fatalx("the default socket path is too long; set "
			    "\"socket\" in the config");
		if (replace(&conf->socket, sock) == -1)
			fatal("options");
	}
	state_file_for_socket(conf);
}

/*
 * Every client, server pipe, log file and probe takes a descriptor, and
 * the usual soft limit (1024; 256 on macOS) is far below the hard one:
 * take all the system lets a process have.
 */
static void
raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want, was;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit RLIMIT_NOFILE");
		return;
	}
	want = platform_nofile_max(rl.rlim_max);
	if (want <= rl.rlim_cur)
		return;
	was = rl.rlim_cur;
	child_set_nofile(was, rl.rlim_max);
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("cannot raise the descriptor limit from %llu to %llu",
		    (unsigned long long)was, (unsigned long long)want);
	else
		log_info("descriptor limit raised from %llu to %llu",
		    (unsigned long long)was, (unsigned long long)want);
}

/*
 * The memory calculator and the catalog; 1 if poold would refuse to start
 * with them (-n runs the checks a start runs that have no side effects).
 */
static int
print_budget(struct config *conf)
{
	struct budget b;
	char err[512], cerr[512];
	int rc, crc;

	rc = budget_compute(conf, &b, err, sizeof(err));
	if (rc == -1 && b.total == 0)
		fatalx("%s", err);
	budget_print(conf, &b, stdout);
	crc = daemon_print_catalog(conf, &b, stdout, cerr, sizeof(cerr));
	if (conf->cluster.etcd != NULL)
		cluster_print_budget(conf, stdout);
	if (rc == -1) {
		printf("\npoold will not start: %s; lower \"reserved\" or "
		    "\"per_model\", or set \"memory_limit\"\n", err);
		return 1;
	}
	if (crc == -1) {
		printf("\npoold will not start: %s\n", cerr);
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct options o;
	struct config conf;
	struct daemon d;
	struct ev_loop *loop;
	char err[1024];

	parse_options(argc, argv, &o);
	log_init("poold", o.verbose);
	load_config(&o, &conf);
	if (o.budget || o.check) {
		int rc;

		log_quiet();
		rc = print_budget(&conf);

		if (o.check && rc == 0)
			printf("configuration OK\n");
		config_free(&conf);
		return rc;
	}
	/* A client that hangs up mid-reply is an EPIPE, not our death. */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if ((loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot initialise libev");
	if (daemon_init(&d, loop, &conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	log_info("poold %s ready on %s: %zu models in %s, budget %s for at "
	    "most %u servers", POOLD_VERSION, conf.socket, d.pool->nmodels,
	    conf.models_dir, pool_format_size(d.budget.budget, err,
	    sizeof(err)), d.budget.server_cap);
	ev_run(loop, 0);
	log_info("stopped; bye");
	daemon_fini(&d);
	config_free(&conf);
	ev_loop_destroy(loop);
	return 0;
}
