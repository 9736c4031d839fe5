/*
 * poold.h — the daemon's private header, prototypes grouped by file.
 */
#ifndef POOLD_POOLD_H
#define POOLD_POOLD_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/resource.h>

#include <limits.h>
#include <time.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memtruth.h"

#define POOLD_VERSION		"0.1.0"

/* Defaults of the config file; see poold.json(5). */
#define CONF_DEFAULT_MODELS_DIR		"/srv/models"
#define CONF_DEFAULT_HEALTH_PATH	"/health"
#define CONF_DEFAULT_SERVER_HOST	"127.0.0.1"
#define CONF_DEFAULT_PORT_MIN		8080
#define CONF_DEFAULT_PORT_MAX		8179
#define CONF_DEFAULT_RESERVED		(20ULL << 30)
#define CONF_DEFAULT_PER_MODEL		(18ULL << 30)
#define CONF_DEFAULT_IDLE_MS		(30LL * 60 * 1000)
#define CONF_DEFAULT_LOW_IDLE_MS	(5LL * 60 * 1000)	/* "low" models */
#define CONF_DEFAULT_USAGE_HALF_LIFE_MS	(6LL * 3600 * 1000)
#define CONF_DEFAULT_PRELOAD		4	/* the most used, at start */
#define CONF_DEFAULT_START_MS		(120LL * 1000)
#define CONF_DEFAULT_STOP_MS		(10LL * 1000)
#define CONF_DEFAULT_ACQUIRE_MS		(120LL * 1000)
#define CONF_DEFAULT_MAX_CLIENTS	1024
#define CONF_DEFAULT_MAX_PENDING	64	/* unanswered requests per client */
#define CONF_DEFAULT_MAX_WAITERS	4096	/* waiting ACQUIREs in total */
#define CONF_DEFAULT_MAX_LEASES		65536	/* held and asked for, in all */
#define CONF_DEFAULT_MAX_CLIENT_LEASES	1024	/* ... per connection */
#define CONF_DEFAULT_OUTBUF_BYTES	(1024 * 1024)
#define CONF_DEFAULT_SOCKET_MODE	0660
#define CONF_DEFAULT_MAX_LINE_BYTES	(64 * 1024)
#define CONF_DEFAULT_LINE_MS		(10LL * 1000)
#define CONF_DEFAULT_IDLE_CLIENT_MS	(10LL * 60 * 1000) /* holding nothing */
#define CONF_DEFAULT_RSS_INTERVAL_MS	(2LL * 1000)
#define CONF_DEFAULT_MAX_FAILURES	5	/* failed starts in a row */
#define CONF_DEFAULT_FAILED_COOLDOWN_MS	(10LL * 60 * 1000)
#define CONF_DEFAULT_HEALTH_INTERVAL_MS	(10LL * 1000)
#define CONF_MIN_HEALTH_INTERVAL_MS	100
#define CONF_DEFAULT_MIN_AVAILABLE	(1ULL << 30)
#define CONF_DEFAULT_STATE_FILE		"/var/lib/poold/state.json" /* root's */
/* The HTTP front door ("http"; off unless set). */
#define CONF_DEFAULT_HTTP_MAX_BODY	(32ULL << 20)
#define CONF_DEFAULT_HTTP_MAX_CONNS	256
#define CONF_DEFAULT_HTTP_IDLE_MS	(60LL * 1000)	/* keep-alive */
#define CONF_DEFAULT_HTTP_HEAD_MS	(10LL * 1000)	/* to send a head */
#define CONF_HTTP_MAX_BODY_MAX		(1ULL << 30)
/* Request bodies held at once, all connections: at least max_body. */
#define CONF_DEFAULT_HTTP_BODIES	(256ULL << 20)

/* Per-model settings from the "models" object; unset fields are 0/NULL. */
struct model_conf {
	char		 *name;
	uint64_t	  memory;		/* 0: per_model */
	int64_t		  idle_timeout_ms;	/* -1: the global one */
	char		**command;		/* NULL-terminated; NULL: global */
	char		**env;			/* "K=V", NULL-terminated */
	int		  priority;		/* enum pool_priority; -1: unset
						 * (normal) */
};

/* The "http" object: the OpenAI-compatible front door. */
struct http_conf {
	char		 *listen;		/* "ADDR:PORT"; NULL: off */
	char		 *token_file;		/* NULL: none */
	uint64_t	  max_body;
	uint64_t	  max_body_total;	/* 0: the larger of 256M, max_body */
	unsigned	  max_conns;
	unsigned	  max_event_streams;	/* 0: a quarter of max_conns */
	char		**cors_origins;		/* NULL-terminated, or NULL */
	size_t		  ncors;
	int64_t		  idle_timeout_ms;	/* keep-alive; 0: never */
	int64_t		  head_timeout_ms;
};

/* The "cluster" object: several machines through etcd (cluster.c). */
#define CONF_DEFAULT_CLUSTER_PREFIX	"/poold/v1/default"
#define CONF_DEFAULT_CLUSTER_TTL_MS	(10LL * 1000)	/* the node's lease */
#define CONF_DEFAULT_CLUSTER_DEADLINE_MS (2LL * 1000)	/* each etcd call */
#define CONF_DEFAULT_CLUSTER_PING_MS	(1LL * 1000)	/* peer links */
#define CONF_CLUSTER_ETCD_MAX		8
struct cluster_conf {
	char		**etcd;			/* endpoints; NULL: no cluster */
	size_t		  netcd;
	char		 *name;			/* this node's */
	char		 *listen;		/* peers' "ADDR:PORT" */
	char		 *advertise;		/* where others reach us */
	char		 *secret_file;
	char		 *prefix;
	int64_t		  lease_ttl_ms;
	int64_t		  deadline_ms;
	int64_t		  ping_ms;
	char		 *etcd_user;
	char		 *etcd_password_file;
	char		 *etcd_ca_file, *etcd_cert_file, *etcd_key_file;
};

struct config {
	char		 *path;			/* the file read, or NULL */
	char		 *socket;
	unsigned	  socket_mode;
	char		 *socket_group;		/* as written; NULL: poold's */
	gid_t		  socket_gid;		/* when socket_group is set */
	char		 *admin_group;		/* as written; NULL: none */
	gid_t		  admin_gid;		/* when admin_group is set */
	char		 *models_dir;
	char		**command;		/* NULL-terminated argv template */
	char		 *health_path;
	/* Numeric IPv4 or IPv6: where servers listen ({host}) and where
	 * poold and its clients reach them. */
	char		 *server_host;
	bool		  api_keys;		/* a key per start */
	int		  port_min, port_max;
	bool		  memory_limit_auto;
	uint64_t	  memory_limit;		/* when not auto */
	uint64_t	  reserved;
	uint64_t	  per_model;
	int		  eviction;		/* enum pool_policy, pool.h */
	bool		  max_servers_auto;
	unsigned	  max_servers;		/* when not auto */
	int64_t		  idle_timeout_ms;	/* 0: never */
	int64_t		  start_timeout_ms;
	int64_t		  stop_timeout_ms;
	int64_t		  acquire_timeout_ms;
	char		 *log_dir;		/* per-model server logs; NULL: none */
	unsigned	  max_clients;
	unsigned	  max_pending;
	unsigned	  max_waiters;
	unsigned	  max_leases;		/* held + waiting with hold */
	unsigned	  max_leases_per_client;
	size_t		  outbuf_bytes;
	size_t		  max_line_bytes;
	int64_t		  line_timeout_ms;	/* to finish a started line */
	int64_t		  idle_client_timeout_ms; /* 0: never */
	char		 *state_file;		/* NULL: none */
	bool		  state_file_default;	/* not in the file: per socket */
	int64_t		  rss_interval_ms;	/* 0: no sampling */
	unsigned	  max_failures;
	int64_t		  failed_cooldown_ms;
	uint64_t	  min_available;	/* memory left to others */
	int64_t		  health_interval_ms;	/* checks of ready servers; 0: none */
	bool		  cgroup_off;		/* "cgroup": "off": groups only */
	uint64_t	  gpu_limit;		/* the GPU budget; 0: detected */
	struct model_conf *models;
	size_t		  nmodels;
	/* Usage and preloading (issue 12; see poold.json(5)). */
	int64_t		  low_idle_timeout_ms;	/* "low" models' default */
	int64_t		  usage_half_life_ms;	/* the decayed frequency's */
	unsigned	  preload_n;		/* "preload": N most used */
	char		**preload_list;		/* "preload": [names]; or NULL */
	size_t		  npreload_list;
	int64_t		  preload_refill_ms;	/* quiet this long: refill; 0 off */
	struct http_conf  http;
	struct cluster_conf cluster;
	char		**aliases;		/* pairs: alias, model */
	size_t		  naliases;		/* pairs */
};

/* config.c */
void	 config_defaults(struct config *);
/* Reads path over the defaults.  -1 with a message naming the key. */
int	 config_load(struct config *, const char *path, char *err, size_t);
void	 config_free(struct config *);
const struct model_conf *config_model(const struct config *, const char *);
/* The command a model's servers run: its own (mc may be NULL), else the
 * default. */
char	*const *config_command(const struct config *,
	    const struct model_conf *mc);
/* Sets server_host; -1 with a message unless it is a numeric address. */
int	 config_set_server_host(struct config *, const char *host, char *err,
	    size_t errlen);
/* "127.0.0.1:8080" or "[::1]:8080": server_host and port, for a URL or a
 * Host header (CONFIG_HOST_PORT_BYTES with the NUL). */
/* INET6_ADDRSTRLEN and "[]:65535", rounded up. */
#define CONFIG_HOST_PORT_BYTES	64
void	 config_host_port(const struct config *, int port, char *buf,
	    size_t len);
/* "18G", "512M", 1024 → bytes; -1 on a bad value. */
int	 parse_size(const char *, uint64_t *);
/* "30m", "2h", "1500ms", "10s", 10 (seconds) → ms; -1 on a bad value. */
int	 parse_duration(const char *, int64_t *);

/* budget.c: the memory calculator (poold --budget) and the limits */
struct budget {
	uint64_t	total;		/* RAM (cgroup-limited) or memory_limit */
	uint64_t	reserved;
	uint64_t	budget;		/* total - reserved, or 0 */
	uint64_t	per_model;
	unsigned	max_servers;	/* per_model-sized servers that fit */
	unsigned	server_cap;	/* the pool's count limit */
	bool		total_detected;
	uint64_t	gpu_budget;	/* the GPUs', all together; 0: none */
	enum gpu_limit_source gpu_source;
	unsigned	ngpus;		/* GPUs accounted, each a budget */
	uint64_t	gpu_budgets[MEMTRUTH_GPUS_MAX];
	size_t		gpus_found;	/* more than ngpus: the rest left out */
};
int	 budget_compute(const struct config *, struct budget *, char *, size_t);
void	 budget_print(const struct config *, const struct budget *, FILE *);

/* catalog.c: which models the folder holds */
/*
 * If filename is a model ("x.gguf", or the first part "x-00001-of-00003.gguf"
 * of a split model), writes its name and returns 0; else -1.
 */
int	 catalog_model_name(const char *filename, char *name, size_t);
/* Calls found() for every model in dir.  -1 with a message if unreadable. */
int	 catalog_scan(const char *dir,
	    void (*found)(void *ctx, const char *name, const char *path),
	    void *ctx, char *err, size_t);

/* platform_linux.c, platform_darwin.c */
int	 platform_total_memory(uint64_t *);	/* RAM, lowered by a cgroup limit */
int	 platform_available_memory(uint64_t *);
int	 platform_process_rss(pid_t, uint64_t *);
/* The process and its descendants (a server's helpers count too). */
int	 platform_tree_rss(pid_t, uint64_t *);
/* An opaque start instant: with the pid, it names one process; -1 for
 * one that has ended, even if not yet reaped. */
int	 platform_process_start_time(pid_t, uint64_t *);
/* In a child before exec: close every descriptor from 3 on but keep. */
void	 platform_close_fds(int keep);
/* In a child after fork: die when poold dies.  -1 if unsupported. */
int	 platform_die_with_parent(pid_t parent);
/* The most RLIMIT_NOFILE's soft limit may be raised to, given the hard. */
rlim_t	 platform_nofile_max(rlim_t hard);
/* Orphaned descendants come to us, not to init.  -1 if unsupported. */
int	 platform_become_subreaper(void);
/* The children of pid; how many were put in out (at most max). */
size_t	 platform_child_pids(pid_t, pid_t *out, size_t max);
/*
 * The GPU budgets, one per device (see memtruth.h), at most max: macOS,
 * one, Metal's working-set limit (config_limit, nonzero, wins); Linux,
 * each CUDA device's memory through NVML, at most config_limit (nonzero;
 * one of it without NVML).  found: the devices there are.  0 and
 * GPU_LIMIT_NONE: no GPU to account.
 */
size_t	 platform_gpu_budgets(uint64_t config_limit, uint64_t *budgets,
	    size_t max, size_t *found, enum gpu_limit_source *);
/* The GPU memory of pid and its children on each of the first ndev
 * devices; -1 if it cannot be measured. */
int	 platform_tree_gpu(pid_t, uint64_t *per_device, size_t ndev);

/* gpu_nvml.c: NVML, loaded at run time (Linux; absent: no GPU figures) */
/* The devices' total memory; how many were put in out.  0: no NVML. */
size_t	 gpu_nvml_totals(uint64_t *out, size_t max);
/* Every device's compute processes; how many were put in out, or -1
 * without NVML. */
ssize_t	 gpu_nvml_processes(struct gpu_process *out, size_t max);

/* cgroup.c: one cgroup v2 per server where poold may (Linux) */
/* Sets up the server cgroups' parent; -1 (why says so) if not usable. */
int	 cgroup_init(bool wanted, char *why, size_t);
bool	 cgroup_enabled(void);
int	 cgroup_create(char *path, size_t);
int	 cgroup_procs_fd(const char *path);	/* the child writes "0" */
bool	 cgroup_populated(const char *path);
int	 cgroup_kill(const char *path);		/* SIGKILL to all of it */
int	 cgroup_remove(const char *path);
int	 cgroup_of(pid_t, char *path, size_t);	/* where pid is */

/* fd.c */
int	 fd_cloexec(int);
int	 fd_nonblock(int);
int	 fd_pipe(int[2]);		/* close-on-exec */
int	 fd_socket(int domain, int type);	/* close-on-exec, non-blocking */
int	 fd_accept(int listener);	/* close-on-exec, non-blocking */
/* host (a numeric IPv4 or IPv6 address) and port as a socket address;
 * -1 with EINVAL if host is not one. */
int	 fd_tcp_addr(const char *host, int port, struct sockaddr_storage *,
	    socklen_t *);

/* log.c */
void	 log_init(const char *progname, bool verbose);
/* Only warnings from now on (poold -n, --budget: their output is stdout). */
void	 log_quiet(void);
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * The running daemon.  One of each; the loop is libev's default loop
 * (ev_child works only there).
 */
#include <ev.h>
#include <jansson.h>
#include "pool.h"

#define CHILD_TAIL_BYTES	4096	/* last output of a server, for errors */
#define CHILD_TERM_AGAIN_MS	1000	/* second SIGTERM (llama-server needs it) */
#define PROBE_TIMEOUT_MS	1000	/* one health probe, connect to status */
#define PROBE_SHORT_RETRY_MS	250	/* a check poold had no socket for */
#define PROBE_INTERVAL_MIN_MS	5
#define PROBE_INTERVAL_MAX_MS	1000	/* ×1.5 from the min while loading */
#define CATALOG_RESCAN_MIN_MS	1000	/* a folder that changed within this of
					   its scan is scanned again (coarse
					   file times) */
/* The most of a GGUF header read on the loop; longer ones are not read. */
#define ESTIMATE_HEADER_MAX_BYTES	(16u << 20)
/* The system's available memory is sampled this often while requests
 * wait or servers start (never inside the pool's decisions). */
#define SYSTEM_SAMPLE_MS	500
#define CHILD_TREE_MAX		32	/* descendants of a server in the state file */
#define CHILD_SWEEP_MAX		4096	/* children listed by one orphan sweep */
#define CHILD_TREE_POLL_MS	10	/* the rest of a stopped tree: is it gone? */
#define CHILD_CENSUS_MS		1000	/* how often they are listed (no cgroup) */

struct daemon;

/* Where a model's memory estimate came from (see measure.c). */
enum estimate_source { EST_DEFAULT, EST_GGUF, EST_LEARNED, EST_CONFIG };

/* A model file of the catalog; the udata of its pool_model. */
struct model_entry {
	char			*path;
	const struct model_conf	*conf;		/* NULL: defaults */
	int			 priority_override; /* PIN/UNPIN: enum
						   pool_priority; -1: none */
	enum estimate_source	 source;
	bool			 gguf_read;	/* header read (once) */
	bool			 header_too_long; /* past ESTIMATE_HEADER_MAX_BYTES */
	bool			 asked_for;	/* looked up by a client once */
	bool			 gone;		/* its file went; hidden, kept
						   while a server refers to it */
	uint64_t		 seen;		/* scan generation that found it */
	/* The file's identity: a file with another one is another model. */
	uint64_t		 size;
	int64_t			 mtime_ns;
	uint64_t		 ino;
	pool_ms			 identity_since; /* servers spawned before ran
						   another file */
	uint64_t		 gguf;		/* its estimate; 0: none */
};

/* A health probe of one starting server, or a check of a ready one. */
/* What the starting server's output says: probe sooner, or at once. */
enum probe_hint {
	PROBE_HINT_NONE,
	PROBE_HINT_OUTPUT,	/* it printed something: soon (the 5 ms floor) */
	PROBE_HINT_READY,	/* it printed that it is loaded: now */
};

struct probe {
	ev_timer	 timer;		/* next probe, or this probe's timeout */
	ev_io		 io;
	int		 fd;
	bool		 in_flight;
	bool		 wrote;
	bool		 checking;	/* a check for pool_checked() */
	bool		 starved;	/* no socket (EMFILE): said once */
	enum probe_hint	 hint;		/* output seen while a probe was out */
	pool_ms		 interval;
	pool_ms		 last_sent;
	unsigned	 sent;
	char		 buf[64];
	size_t		 len;
};

/* A descendant of a server, named by pid and start time (state file). */
struct child_member {
	pid_t		 pid;
	uint64_t	 start;
};

/* A server process; the udata of its pool_server. */
/* Random bytes in a server's API key (64 hex digits). */
#define CHILD_API_KEY_BYTES	32

struct child {
	struct daemon		*d;
	struct pool_server	*srv;
	pid_t			 pid;
	ev_child		 exit_watcher;
	ev_io			 out_watcher;	/* its stdout and stderr */
	int			 out_fd;
	int			 log_fd;	/* log_dir/MODEL.log, or -1 */
	char			 tail[CHILD_TAIL_BYTES];
	size_t			 tail_len;
	ev_timer		 stop_timer;	/* escalation; then the tree's end */
	int			 stop_stage;	/* 0 running, 1 TERM, 2 TERM again, 3 KILL */
	bool			 reaped;	/* the leader: never signal its pid */
	int			 rstatus;	/* the leader's, once reaped */
	pool_ms			 reaped_at;
	uint64_t		 start_time;	/* with pid: this process (state file) */
	struct probe		 probe;
	int			 exec_fd;	/* exec report (close-on-exec), or -1 */
	ev_io			 exec_watcher;
	int			 exec_errno;	/* exec failed with it; 0: not */
	int			 exec_stage;	/* what failed (child.c) */
	char			 exec_prog[128];
	/* Its API key (api_keys), new at each start; "": none. */
	char			 api_key[2 * CHILD_API_KEY_BYTES + 1];
	char			 cgroup[PATH_MAX];	/* "" if none */
	/* child_config_hash() at its spawn: a reload that changes what a
	 * start would run makes it "old" in STATS. */
	uint64_t		 config_hash;
	/* Its descendants as last seen (no cgroup: the next poold finds
	 * leftovers whose leader is gone by these). */
	size_t			 ntree;
	struct child_member	 tree[CHILD_TREE_MAX];
};

struct daemon {
	struct ev_loop		*loop;
	struct config		*conf;
	struct budget		 budget;
	struct pool		*pool;
	ev_timer		 pool_timer;	/* the pool's next deadline */
	ev_prepare		 prepare;	/* re-arms pool_timer, reaps clients */
	ev_signal		 sig_term, sig_int, sig_hup;
	struct control		*control;
	struct http		*http;		/* the front door, or NULL */
	struct cluster		*cluster;	/* several machines, or NULL */
	ev_timer		 sampler;	/* RSS, while servers run */
	uint64_t		 measured;	/* RSS sum at the last sample */
	uint64_t		 sys_available;	/* at the last look */
	json_t			*learned;	/* model -> {"peak_rss": N} */
	bool			 state_warned;
	bool			 state_dirty;	/* saved before the loop sleeps */
	ev_tstamp		 sample_every;	/* backs off while all is quiet */
	uint64_t		 sample_activity;	/* counters at the last sample */
	pool_ms			 last_scan;
	struct timespec		 scan_mtime;	/* models_dir's, at last_scan */
	bool			 scan_racy;	/* the folder changed in the
						   second of the scan */
	uint64_t		 scan_gen;
	ev_timer		 sys_sampler;	/* system memory, while busy */
	pool_ms			 sys_sampled_at;
	bool			 offline;	/* poold --budget: no loop */
	bool			 stopping;
	int			 lock_fd;
	char			*lock_path;
	ev_child		 orphans;	/* any reap: adopted orphans are swept */
	ev_timer		 census;	/* lists each server's descendants */
	/* reload.c: the config file's JSON as last applied (what a reload
	 * compares with); NULL: none. */
	json_t			*conf_json;
	uint64_t		 models_added;	/* by scans, in all (catalog.c) */
	uint64_t		 models_removed;
};

/* daemon.c: start and end, lock, signals, the loop's upkeep */
pool_ms	 daemon_now(void);
int	 daemon_init(struct daemon *, struct ev_loop *, struct config *,
	    char *err, size_t);
void	 daemon_fini(struct daemon *);
void	 daemon_shutdown(struct daemon *);

/* effects.c: struct pool_ops of the running daemon */
extern const struct pool_ops effects_ops;

/* catalog.c: the folder's models in the pool (see also above) */
/* Looks a model up, rescanning the folder (rate-limited) on a miss. */
struct pool_model *daemon_model(struct daemon *, const char *name);
/* name's model if a server of it runs or stops, even if its file is gone
 * (EVICT); else NULL.  Touches no file. */
struct pool_model *catalog_model_running(struct daemon *, const char *name);
int	 daemon_rescan(struct daemon *, char *err, size_t);
/* Rescans if the folder changed since the last scan (MODELS, misses). */
void	 catalog_refresh(struct daemon *);
/* The class m runs in: PIN/UNPIN's, else its config's, else normal. */
enum pool_priority catalog_priority(const struct model_entry *);
/* Every model, by name; malloc'd, NULL if out of memory. */
struct pool_model **catalog_sorted(struct daemon *, size_t *n);
/* m's settings from d->conf now: its model_conf, its idle timeout (a
 * reload re-points them; usage_apply then refines the timeout). */
void	 catalog_apply_conf(struct daemon *, struct pool_model *);

/* report.c: the JSON of STATS and MODELS */
json_t	*daemon_stats(struct daemon *);
json_t	*daemon_models(struct daemon *);

/* budget.c (see also above) */
/*
 * poold --budget: every model of the catalog, its size and estimate.  -1
 * with a message if the folder cannot be read (poold would not start).
 */
int	 daemon_print_catalog(struct config *, const struct budget *, FILE *,
	    char *err, size_t);
/* The pool's limits from conf and b (at the start, at each reload). */
void	 budget_limits(const struct config *, const struct budget *,
	    struct pool_limits *);

/* measure.c */
const char *estimate_source_name(enum estimate_source);
/* Sets m->mem from the best source; read_file: may read the GGUF header. */
void	 estimate_model(struct daemon *, struct pool_model *, bool read_file);
/* On a lookup: the first one may read the header; the rest cost nothing. */
void	 estimate_first_use(struct daemon *, struct pool_model *);
uint64_t estimate_under(const struct daemon *, const struct config *,
	    const struct pool_model *);
/* A server is about to be forgotten: remember its peak memory. */
void	 measure_learn(struct daemon *, const struct pool_server *);
/* struct pool_ops.available: the last sample, no I/O. */
uint64_t measure_available(void *ctx);
/* Samples the system's available memory now (the daemon, not the pool). */
void	 measure_system(struct daemon *);
/* Samples it if the last sample is older than SYSTEM_SAMPLE_MS. */
void	 measure_system_fresh(struct daemon *);
void	 measure_update(struct daemon *);

/* state.c */
/* Kills leftovers of an earlier poold, loads what it learned. */
int	 state_load(struct daemon *);
json_t	*state_read_models(const char *path);
/* The usage and pins alone (poold -n, --budget), into usage_load(). */
void	 state_read_usage(const char *path);
void	 state_save(struct daemon *);
/* Keyed with the file's identity (size, mtime, inode): a replaced file
 * is not judged by the old one. */
uint64_t state_learned(const struct daemon *, const char *model,
	    const struct model_entry *);
void	 state_learn(struct daemon *, const char *model,
	    const struct model_entry *, uint64_t peak);

/* child.c */
/* The descriptor limits a server gets (poold's own, before it raised them). */
void	 child_set_nofile(rlim_t soft, rlim_t hard);
/* Cgroups or the subreaper, the orphan watcher; before state_load. */
void	 child_init(struct daemon *);
/* At exit: orphans still on their way are stopped and reaped. */
void	 child_fini(struct daemon *);
int	 child_spawn(struct daemon *, struct pool_server *, char *, size_t);
void	 child_stop(struct daemon *, struct pool_server *);
/* Sends SIGKILL to every server's process group (a second SIGTERM). */
void	 child_kill_all(struct daemon *);
bool	 child_port_free(const struct config *, int port);
/* What a start of m would run under d->conf (its command template,
 * file, host, env, api_keys), hashed: not the port or the key. */
uint64_t child_config_hash(const struct daemon *, const struct pool_model *);
/* Does srv run what a start would run now (no reload changed it)? */
bool	 child_config_current(const struct daemon *,
	    const struct pool_server *);

/* probe.c */
void	 probe_start(struct child *);
void	 probe_stop(struct child *);
/* The child wrote something: it may be ready; probe soon, or at once. */
void	 probe_hint(struct child *, enum probe_hint);
/* ops->check: one probe of a ready server, answered with pool_checked(). */
void	 probe_check(void *ctx, struct pool_server *);

/* outbuf.c: a connection's output, written as the socket takes it */
#define OUTBUF_KEEP_BYTES	(64 * 1024)	/* kept once all is written */
struct outbuf {
	char		*buf;
	size_t		 len, off, cap;		/* off: written already */
	uint64_t	 added, written;	/* bytes, since it began */
};
size_t	 outbuf_unsent(const struct outbuf *);
/* Queues n bytes; false if out of memory. */
bool	 outbuf_add(struct outbuf *, const void *, size_t n);
/* Writes what fd takes now (MSG_NOSIGNAL): how many bytes, 0 if none,
 * or -1 on an error (errno) but EAGAIN. */
ssize_t	 outbuf_write(struct outbuf *, int fd);
void	 outbuf_free(struct outbuf *);

/* sockdir.c */
/*
 * Makes the socket's folder if missing, else checks that it is poold's
 * user's and that no one else can write in it.  -1 with a message.
 */
int	 control_socket_dir(const struct config *, char *err, size_t);

/* control.c */
struct control;
/* Listens on the socket of d->conf. */
struct control *control_open(struct daemon *, char *err, size_t);
/* Stop accepting; existing clients stay until they close. */
void	 control_close_listener(struct control *);
void	 control_free(struct control *);
unsigned control_clients(const struct control *);
/* Before the loop blocks: close clients marked dead. */
void	 control_reap(struct control *);

/* http.c: the OpenAI-compatible front door (see http.h) */
struct http;
/* Every alias names a model of the catalog or of "models"; -1 if not. */
int	 http_check_aliases(struct daemon *, char *err, size_t);
/* Listens on d->conf->http.listen; NULL with a message. */
struct http *http_open(struct daemon *, char *err, size_t);
void	 http_close_listener(struct http *);
void	 http_free(struct http *);
/* Before the loop blocks: act on the pool's answers, close the dead. */
void	 http_reap(struct http *);
json_t	*http_stats(const struct http *);
/*
 * A reload: conf's token file (re-read), CORS origins, max_body take the
 * place of the running ones; connections stay.  -1 with a message, and
 * nothing changes, if the token file cannot be read or the listener is
 * not on loopback and conf has no token.  conf must outlive h's use of
 * it (it becomes d->conf).
 */
int	 http_reconfigure(struct http *, const struct config *conf,
	    char *err, size_t);
unsigned http_conns(const struct http *);	/* 0 if NULL */
/* control.c: descriptors left for the front door's connections */
unsigned long long control_fds_room(const struct control *);

/* dispatch.c: the commands, with no I/O; control.c feeds it lines */
struct request;
TAILQ_HEAD(request_list, request);

/* Who is at the other end of a connection, as the kernel tells it. */
struct peer {
	bool		 known;		/* false: the system would not say */
	uid_t		 uid;
	gid_t		 gid;
	pid_t		 pid;		/* -1 if unknown */
	gid_t		*groups;	/* supplementary; malloc'd, or NULL */
	int		 ngroups;
};

/* A connection as the commands see it. */
TAILQ_HEAD(cluster_rlease_list, rlease);
TAILQ_HEAD(cluster_fwd_list, fwd);
struct session {
	struct daemon		*d;
	unsigned long		 serial;	/* "client N" in the log */
	struct peer		 peer;		/* freed by session_end */
	struct pool_owner	 owner;		/* its leases and waiters */
	struct request_list	 requests;	/* waiting for the pool */
	unsigned		 npending;
	/* A cluster's: another node's link (its requests stay here), and
	 * what other nodes hold or are asked for this connection. */
	bool			 from_peer;
	struct cluster_rlease_list rleases;
	struct cluster_fwd_list	 fwds;
	unsigned		 nremote;
	/* Takes a malloc'd line ending in '\n'; NULL means out of memory. */
	void			(*send)(struct session *, char *line);
	/* SUBSCRIBE: events go to it (events.c) */
	bool			 subscribed;
	TAILQ_ENTRY(session)	 subscriber;
	/* How events reach it; NULL: it cannot subscribe. */
	const struct events_sink *events_sink;
};

void	 session_init(struct session *, struct daemon *,
	    unsigned long serial, void (*send)(struct session *, char *));
/* The connection is gone: its waiters are dropped, its leases released. */
void	 session_end(struct session *);
/* No lease and nothing waiting: closing it takes nothing from anyone. */
bool	 session_idle(const struct session *);
/* Decodes one request line (without its newline) and carries it out. */
void	 dispatch_line(struct session *, const char *line, size_t len);
void	 dispatch_error(struct session *, json_t *id, enum proto_err,
	    const char *message);
/* The local half of ACQUIRE (cluster.c hands one back to it). */
void	 dispatch_acquire_local(struct session *,
	    const struct proto_request *);
/* {"ok":true,"id":…, …body…}; takes body (NULL: an internal error). */
void	 cmd_reply_json(struct session *, const struct proto_request *,
	    json_t *body);
/* struct pool_ops.answer: the waiter is a request of a session. */
void	 dispatch_answer(void *ctx, struct pool_waiter *,
	    const struct pool_answer *);

/* cluster.c: several machines through etcd (off without "cluster") */
struct cluster;
struct cluster *cluster_open(struct daemon *, char *err, size_t);
void	 cluster_free(struct cluster *);
/* Shutting down: the node's keys are withdrawn now. */
void	 cluster_shutdown(struct cluster *);
/* Before the loop sleeps: links gone, servers' keys to publish. */
void	 cluster_reap(struct cluster *);
/* Took the ACQUIRE (answered, or forwarded): 1; for our pool: 0. */
int	 cluster_acquire(struct session *, const struct proto_request *);
/* RELEASE or LEASE of a lease another node holds: 1 if it was one. */
int	 cluster_lease_cmd(struct session *, const struct proto_request *);
void	 cluster_session_end(struct session *);
json_t	*cluster_stats(const struct cluster *);	/* NULL without one */
const char *cluster_name(const struct cluster *); /* NULL without one */
/* poold --budget: the nodes registered now, read from etcd. */
void	 cluster_print_budget(const struct config *, FILE *);

/* events.c: the event stream (SUBSCRIBE, GET /events) */
/*
 * A subscriber with more than this of its output unsent (queued, not
 * yet taken by the kernel) is dropped: its connection is closed, the
 * bytes still queued are discarded.  So a reader that never reads
 * costs poold this much, once.
 */
#define EVENTS_UNSENT_MAX	(256 * 1024)
/* How events reach a connection: control.c's clients, http.c's streams. */
struct events_sink {
	/*
	 * Queues one event (json: len bytes, no newline; seq: its number)
	 * and returns the connection's bytes still unsent, after a try to
	 * write them if they pass EVENTS_UNSENT_MAX; SIZE_MAX if it could
	 * not be queued (out of memory).
	 */
	size_t	(*queue)(struct session *, const char *json, size_t len,
		    uint64_t seq);
	/* Logs why (once) and closes the connection before the loop sleeps
	 * (never inside the call: it may come from a pool callback). */
	void	(*drop)(struct session *, const char *why);
};
/* struct pool_ops.event */
void	 events_pool(void *ctx, const struct pool_event *);
/* An event of the daemon's own ("reload", ...): fields (taken; may be
 * NULL) get "event", "time" and "seq" added, then go to every
 * subscriber. */
void	 events_emit(struct daemon *, const char *kind, json_t *fields);
void	 cmd_subscribe(struct session *, const struct proto_request *);
/* s (its events_sink set) gets every event from now on (GET /events). */
void	 events_subscribe(struct session *);
/* A subscriber has unsent bytes of its own making (a keep-alive): it is
 * dropped as for an event if they pass EVENTS_UNSENT_MAX; true if so. */
bool	 events_check_unsent(struct session *, size_t unsent);
/* session_end: it stops getting events. */
void	 events_session_end(struct session *);
void	 events_fini(struct daemon *);
/* STATS "events": subscribers, sent, dropped. */
json_t	*events_stats(struct daemon *);

/* metrics.c: the Prometheus text format (GET /metrics, METRICS) */
/* malloc'd text, its length in *len; NULL if out of memory. */
char	*metrics_text(struct daemon *, size_t *len);
/* Escapes a label value (\\, \", \n) into out, NUL-terminated and cut
 * to outlen; returns the escaped length (without the NUL) however
 * much fitted. */
size_t	 metrics_escape_label(const char *in, char *out, size_t outlen);
void	 cmd_metrics(struct session *, const struct proto_request *);

/* statuspage.c: GET / (supervisord/status.html, built in) */
const char *status_page(size_t *len);
/* Its Content-Security-Policy: its own inline script and style only. */
const char *status_csp(void);

/* reload.c: SIGHUP and RELOAD */
/*
 * Re-reads the config file and rescans the folder; applies what changed.
 * -1 with the reason (the old config stays); else 0 and, if report is
 * not NULL, a JSON object of what changed is put in *report.
 */
int	 daemon_reload(struct daemon *, json_t **report, char *err, size_t);
/* At the start: the config file as loaded, for the next reload to
 * compare with. */
void	 reload_init(struct daemon *);
void	 cmd_reload(struct session *, const struct proto_request *);

/* usage.c: usage across restarts, pins, preloading */
void	 cmd_pin(struct session *, const struct proto_request *, bool pin);
/* A model joined the catalog (catalog.c): its class, its idle timeout
 * (low models: low_idle_timeout), its remembered usage. */
void	 usage_model_added(struct daemon *, struct pool_model *);
enum pool_priority usage_priority(const struct daemon *,
	    const struct pool_model *);
/* Would conf's pinned models (and those pinned by PIN) fit in budget?
 * -1 naming them if not (a config error at start and at reload). */
int	 usage_check_pins(struct daemon *, const struct config *,
	    uint64_t budget, char *err, size_t);
/* Every model's class and idle timeout from d->conf and the pins
 * (after a reload); -1 as usage_check_pins, nothing changed. */
int	 usage_apply(struct daemon *, char *err, size_t);
/* Once serving: pinned models started, then preload; the refill timer. */
void	 usage_start(struct daemon *);
void	 usage_fini(struct daemon *);
/* Every pool event, before the stream gets it (events_pool calls it):
 * the preloader starts its next model on a ready or an exit. */
void	 usage_pool_event(struct daemon *, const struct pool_event *);
/* MODELS' and STATS' "usage" of one model (a new reference). */
json_t	*usage_json(struct daemon *, const struct pool_model *);
/* STATS "usage": the most used models, most used first. */
json_t	*usage_stats(struct daemon *);
/* The state file's "usage" and "pins" (borrowed; NULL: none), read at
 * start before the catalog; state_save() asks for them back. */
void	 usage_load(json_t *usage, json_t *pins);
void	 usage_state_json(struct daemon *, json_t *root);

/* entropy.c: random bytes from the system */
/* 0, or -1 with errno: no source gave len bytes. */
int	 entropy_fill(void *buf, size_t len);
/* A random epoch for pool_lease_epoch(); logs if none could be had. */
uint32_t entropy_lease_epoch(void);

#endif /* POOLD_POOLD_H */
