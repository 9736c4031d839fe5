/*
 * testlib.h — helpers for tests that drive the real poold binary.
 *
 * Linked into every tests/check_*.c binary, so it holds helpers only
 * (prefix tl_), no main and no suites.  A test makes a temporary folder
 * with a config and model files, starts $POOLD_BIN on a socket in it,
 * talks to it with newline-delimited JSON and looks at the processes it
 * started through /proc.
 *
 * Failures go through TL_ASSERT, which first prints poold's log and kills
 * every process the test started (Check's fork mode _exit()s the test on a
 * failed assertion, so no teardown would run otherwise).
 */
#ifndef POOLD_TESTLIB_H
#define POOLD_TESTLIB_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>
#include <jansson.h>

/* How long a test may take before its watchdog dumps the log and exits. */
#define TL_TEST_TIMEOUT_S	60
#define TL_READY_TIMEOUT_MS	5000
#define TL_REPLY_TIMEOUT_MS	10000
#define TL_PATH_MAX		512

struct tl_daemon {
	char		 dir[TL_PATH_MAX / 2];	/* the temporary folder T */
	char		 models_dir[TL_PATH_MAX];
	char		 sock[TL_PATH_MAX];
	char		 config[TL_PATH_MAX];
	char		 log[TL_PATH_MAX];	/* poold's stderr */
	int		 port_min, port_max;
	int		 port_lock;		/* flock on the slot, or -1 */
	pid_t		 pid;			/* poold; 0 once reaped */
	pid_t		 started_pid;		/* poold, kept after reaping */
	int		 status;		/* wait status once reaped */
	bool		 exited;
	long long	 stop_timeout_ms;	/* from the config written */
	/* What the STATS samples saw. */
	unsigned	 max_servers_seen;
	unsigned long long max_used_seen;
	unsigned long long max_rss_seen;	/* bytes, summed over children */
	unsigned	 samples;
	int		 rss_sanitized;		/* 1: stand-ins run under ASan */
};

struct tl_conn {
	int		 fd;
	char		*buf;
	size_t		 len, cap;
	json_t		*stash;		/* replies read but not claimed yet */
	long long	 next_id;
	bool		 eof;
};

/* --- suites --- */

/* Adds test t as a TCase of its own, with the TL_TEST_TIMEOUT_S limit. */
void	 tl_add(Suite *, const char *name, const TTest *t);
/*
 * Runs every test of the suite (mode: CK_ENV where CK_VERBOSITY may ask
 * for more, else CK_NORMAL) and frees the runner; returns EXIT_SUCCESS if
 * none failed, else EXIT_FAILURE: the body of every check_* main.
 */
int	 tl_run(Suite *, enum print_output mode);

/* --- failing --- */

/* Prints poold's log and kills every process the test started. */
void	 tl_on_failure(const char *file, int line);

#define TL_ASSERT(cond, ...) do {					\
	if (!(cond)) {							\
		tl_on_failure(__FILE__, __LINE__);			\
		ck_abort_msg(__VA_ARGS__);				\
	}								\
} while (0)

/* --- skipping --- */

/*
 * true if the environment variable CI is set to anything but "", "0" or
 * "false".  .ci/run exports CI=true.
 */
bool	 tl_in_ci(void);
/*
 * A case that cannot run here says so, by name, on stderr:
 * "SKIP name: reason".  Outside CI it then returns and the caller returns
 * (the case counts as passed, its line in the output says it did not
 * run).  In CI a skip is a failure (the CI machine is root, with the real
 * llama-server and make-tiny-gguf): it fails the test at once, unless
 * name is on TL_SKIP_CI_OK, the documented list of cases that cannot run
 * in CI at all (empty today).  Must be called inside a Check test.
 */
void	 tl_skip(const char *name, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/*
 * Like tl_skip outside a Check test (a suite's main): prints the line and
 * returns true if the run must fail (in CI), false if it may go on.
 */
bool	 tl_skip_main(const char *name, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* --- time --- */

long long	 tl_now_ms(void);
/* The wall clock in ms, as poold stamps events and usage (not time(),
 * which may lag it by a tick). */
long long	 tl_wall_ms(void);
void		 tl_sleep_ms(long long);

/* Evaluates cond every 10 ms until it holds or timeout_ms passed. */
#define TL_WAIT_UNTIL(ok, cond, timeout_ms) do {			\
	long long tl_dl_ = tl_now_ms() + (timeout_ms);			\
	for (;;) {							\
		if (cond) { (ok) = true; break; }			\
		if (tl_now_ms() >= tl_dl_) { (ok) = false; break; }	\
		tl_sleep_ms(10);					\
	}								\
} while (0)

/* --- the daemon --- */

/*
 * Makes the temporary folder and picks a range of 100 ports, distinct
 * for this process and test number n.  Also makes this process a child subreaper,
 * so orphans of poold come back to us and can be checked and cleaned up.
 */
void	 tl_daemon_init(struct tl_daemon *, int n);
/* Writes T/models/NAME.gguf holding the printf-formatted text. */
void	 tl_model(struct tl_daemon *, const char *name, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/*
 * Writes T/models/NAME.gguf as a real GGUF (version 3, llama) of one F32
 * tensor of weights bytes (a hole): the header's estimate is weights and
 * the overhead, and the stand-in server loads it.
 */
void	 tl_model_gguf(struct tl_daemon *, const char *name,
	    uint64_t weights);
/* The model's entry of MODELS (a new reference), NULL if none. */
json_t	*tl_models_entry(struct tl_conn *, const char *model);
/* Removes dir and all below it, quietly; "" is left alone. */
void	 tl_rm_rf(const char *dir);
/* Writes any file under T (for paths outside the models folder). */
void	 tl_write_file(const char *path, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/*
 * Writes the config: the defaults (socket, models_dir, command with
 * $FAKELLAMA_BIN, memory_limit 216M, reserved 0, per_model 8M, ports,
 * timeouts) with the keys of the JSON object text overrides (may be NULL)
 * replacing them.  A key whose value is null is removed.
 */
void	 tl_write_config(struct tl_daemon *, const char *overrides);
/* Starts $POOLD_BIN -f CONFIG with stderr into T/poold.log. */
/* Forks and execs path (searched in PATH without a '/') with argv, stdout and stderr appended to log, in
 * a process group of its own that dies with the test; its pid. */
pid_t	 tl_spawn_logged(const char *log, const char *path,
	    char *const argv[]);
void	 tl_daemon_spawn(struct tl_daemon *);
/* tl_write_config + tl_daemon_spawn + wait until the socket accepts. */
void	 tl_daemon_start(struct tl_daemon *, const char *overrides);
/*
 * Waits up to timeout_ms for poold to exit.  Returns true if it did
 * (d->status holds its wait status).
 */
bool	 tl_daemon_wait(struct tl_daemon *, long long timeout_ms);
/*
 * The end of every test: no zombie among poold's children (they may be
 * there for a moment; they must go within a second), SIGTERM, poold exits
 * 0 within stop_timeout + 2 s, no process the test saw remains, the
 * socket is gone, the folder is removed.
 */
void	 tl_daemon_finish(struct tl_daemon *);
/* Kills poold and every tracked or adopted process; idempotent. */
void	 tl_cleanup(void);
/* Returns the content of poold's log (malloc'd, "" if none). */
char	*tl_daemon_log(const struct tl_daemon *);
/* true if poold's log holds the string. */
bool	 tl_log_has(const struct tl_daemon *, const char *);

/* --- connections --- */

/* Connects to the daemon's socket; fails the test if it cannot. */
struct tl_conn	*tl_connect(struct tl_daemon *);
/* -1 if the socket does not accept. */
int		 tl_connect_fd(const char *path);
void		 tl_close(struct tl_conn *);
/* Writes all of data; -1 on error (EPIPE is not fatal). */
int		 tl_send(struct tl_conn *, const void *data, size_t len);
int		 tl_sendf(struct tl_conn *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/*
 * Next line from the connection (without its newline), malloc'd; NULL if
 * none came within timeout_ms (0: only what is there now) or on EOF
 * (c->eof then set).  *len gets its length if len is not NULL.
 */
char		*tl_recv_line(struct tl_conn *, long long timeout_ms, size_t *len);
/*
 * Next reply (stashed ones first), parsed; NULL on timeout or EOF.  Fails
 * the test if a line is not a JSON object.
 */
json_t		*tl_recv(struct tl_conn *, long long timeout_ms);
/* The reply whose id is the integer id; others read meanwhile are stashed. */
json_t		*tl_recv_id(struct tl_conn *, long long id, long long timeout_ms);
/*
 * Sends req (stolen; an integer "id" is added if it has none) and returns
 * its reply.  Fails the test if no reply comes within timeout_ms.
 */
json_t		*tl_call(struct tl_conn *, json_t *req, long long timeout_ms);
/* Sends req (stolen) with a fresh id, returns the id; no waiting. */
long long	 tl_send_req(struct tl_conn *, json_t *req);

/*
 * The ACQUIRE request (not sent): timeout_ms is left out if negative,
 * so poold's default applies.
 */
json_t		*tl_acquire_req(const char *model, long long timeout_ms,
		    bool hold);
/* ACQUIRE; the reply is returned as is (ok or not). */
json_t		*tl_acquire(struct tl_conn *, const char *model,
		    long long timeout_ms, bool hold);
/* ACQUIRE that must succeed; returns the lease (0 if !hold), port in *port. */
long long	 tl_acquire_ok(struct tl_conn *, const char *model, bool hold,
		    int *port);
/* RELEASE that must succeed. */
void		 tl_release(struct tl_conn *, long long lease);
json_t		*tl_evict(struct tl_conn *, const char *model, bool force,
		    long long timeout_ms);
/*
 * STATS that must succeed.  Checks the accounting invariants on every
 * sample (used ≤ budget, servers ≤ max_servers, used = Σ servers' mem)
 * and records the pids it shows for the final checks.
 */
json_t		*tl_stats(struct tl_daemon *, struct tl_conn *);
/* The integer at path of a fresh STATS (tl_stats: the checks apply). */
long long	 tl_stats_int(struct tl_daemon *, struct tl_conn *,
		    const char *path);
/* STATS counters.NAME. */
long long	 tl_counter(struct tl_daemon *, struct tl_conn *,
		    const char *name);
/* The leases of model's server, -1 if it is not running. */
long long	 tl_server_leases(struct tl_daemon *, struct tl_conn *,
		    const char *model);
/* The pid of model's server, 0 if it is not running. */
pid_t		 tl_stats_pid(struct tl_daemon *, struct tl_conn *,
		    const char *model);

/*
 * GET path on 127.0.0.1:port with Connection: close; returns the HTTP
 * status, -1 if the connection or the reply failed within timeout_ms.
 */
int		 tl_http_status(int port, const char *path, long long timeout_ms);

/* --- JSON --- */

/* The value at a dotted path ("counters.starts"), NULL if absent. */
json_t		*tl_get(json_t *, const char *path);
/* Integer at path; fails the test if absent or not an integer. */
long long	 tl_int(json_t *, const char *path);
/* String at path, NULL if absent or not a string. */
const char	*tl_str(json_t *, const char *path);
bool		 tl_ok(json_t *reply);
/* The "error" code of a failed reply, "" if ok or absent. */
const char	*tl_err(json_t *reply);
/*
 * Fails the test unless rep is a failed reply with this error code and a
 * message, and, if id is not NULL, echoes that id.  what names the step.
 */
void		 tl_expect_error(json_t *rep, const char *code, json_t *id,
		    const char *what);
/* Compact text of j in a rotating static buffer, for messages. */
const char	*tl_dump(json_t *j);
/* The servers[] entry of model in a STATS reply, NULL if not there. */
json_t		*tl_server(json_t *stats, const char *model);
/* Does STATS list a server of model (in any state, stopping too)? */
bool		 tl_has_server(struct tl_daemon *, struct tl_conn *,
		    const char *model);
/* Its pid, 0 if not there. */
pid_t		 tl_server_pid(json_t *stats, const char *model);

/* --- processes (/proc) --- */

/* Children of ppid; returns how many were written (at most max). */
int		 tl_children(pid_t ppid, pid_t *out, int max);
/* Children of ppid that run the stand-in (comm "fakellama"). */
int		 tl_standins(pid_t ppid, pid_t *out, int max);
/* How many of d's stand-in children run model (each is tracked). */
int		 tl_standins_of(struct tl_daemon *d, const char *model);
/* The state file's record of the server led by pid (root: the file's
 * JSON), NULL if none; borrowed from root. */
json_t		*tl_state_server(json_t *root, pid_t pid);
/* The process state letter ('R', 'S', 'Z', …), 0 if no such process. */
char		 tl_proc_state(pid_t);
pid_t		 tl_proc_ppid(pid_t);
/* Clock ticks since boot at which it started; 0 if no such process. */
unsigned long long tl_proc_starttime(pid_t);
int		 tl_proc_comm(pid_t, char *buf, size_t len);
/* The model name from "-m DIR/NAME.gguf" in its command line. */
int		 tl_proc_model(pid_t, char *buf, size_t len);
/* Resident set in bytes (VmRSS), -1 if not known (gone, zombie). */
long long	 tl_proc_rss(pid_t);
/* true if a line of /proc/PID/maps holds needle ("libasan"). */
bool		 tl_proc_maps_has(pid_t, const char *needle);
/* Zombies among ppid's children. */
int		 tl_zombie_children(pid_t ppid);
/* true once no child of ppid is a zombie, within timeout_ms. */
bool		 tl_wait_no_zombies(pid_t ppid, long long timeout_ms);
/*
 * Remembers pid (with its start time, against pid reuse) as a process the
 * test started, so the final checks and the cleanup cover it.
 */
void		 tl_track(pid_t);
/*
 * true if the process that was pid (when tracked) still exists, in any
 * state, zombie included.  Untracked pids: whether /proc/PID exists.
 */
bool		 tl_pid_exists(pid_t);
/*
 * Like !tl_pid_exists, but a zombie adopted by us (we are a subreaper)
 * is reaped and counts as gone: for grandchildren whose parent died.
 */
bool		 tl_pid_gone_reap(pid_t);
/* Polls tl_pid_exists until false; true if it went within timeout_ms. */
bool		 tl_wait_gone(pid_t, long long timeout_ms);
/*
 * Sums the RSS of poold's stand-in children, records the maximum and
 * fails the test if the sum exceeds budget bytes (unless the stand-ins
 * run under AddressSanitizer, whose shadow memory inflates RSS).
 * Returns the sum.
 */
long long	 tl_check_rss(struct tl_daemon *, unsigned long long budget);

/* --- misc --- */

/* qsort comparator for long long, ascending. */
int		 tl_cmp_ll(const void *, const void *);

/* --- HTTP: a raw-socket client for the front door --- */

/*
 * One HTTP/1.1 exchange on 127.0.0.1:port, read as it comes: the head
 * (1xx interim heads are noted and skipped), then the body, decoded from
 * Content-Length or chunked framing, with its SSE events counted.
 */
struct tl_http {
	int		 fd;
	int		 port;
	char		*raw;		/* received, not yet decoded */
	size_t		 raw_len, raw_cap;
	bool		 head_done;
	bool		 saw_continue;	/* a "100 Continue" came first */
	int		 status;
	char		*head;		/* the final head, NUL-terminated */
	bool		 chunked;
	long long	 length;	/* Content-Length; -1: none */
	int		 chunk_state;	/* of the chunked decoder */
	unsigned long long chunk_left;
	char		*body;		/* decoded, NUL-terminated */
	size_t		 body_len, body_cap;
	bool		 keep_body;	/* false: only its tail is kept */
	unsigned long long body_total;	/* decoded bytes in all */
	long		 events;	/* "\n\n"-ended SSE events so far */
	char		 prev;		/* the body's last byte, for events */
	bool		 done;		/* the message is complete */
	bool		 eof;		/* the server closed */
	bool		 bad;		/* the framing is broken */
};

/* Connects to 127.0.0.1:port (non-blocking after); fails the test if it
 * cannot. */
struct tl_http	*tl_http_open(int port);
void		 tl_http_close(struct tl_http *);
/* Writes all of data within TL_REPLY_TIMEOUT_MS; -1 on error (the
 * server closed). */
int		 tl_http_send(struct tl_http *, const void *data, size_t len);
int		 tl_http_sendf(struct tl_http *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/*
 * Waits up to timeout_ms for bytes, reads what is there and decodes it.
 * Returns the bytes read, 0 on EOF, -1 on timeout or error.
 */
long		 tl_http_read(struct tl_http *, long long timeout_ms);
/* Reads until the head is in; false if not within timeout_ms. */
bool		 tl_http_wait_head(struct tl_http *, long long timeout_ms);
/* Reads until the message is complete or the server closed; h->done. */
bool		 tl_http_wait_done(struct tl_http *, long long timeout_ms);
/* The value of the header name in the final head, in a rotating static
 * buffer; NULL if absent. */
const char	*tl_http_header(const struct tl_http *, const char *name);
/*
 * Sends "METHOD path HTTP/1.1", Host 127.0.0.1:port unless headers (each
 * line ending in "\r\n", may be NULL) has a Host line, Connection:
 * close, Content-Length of body if body is not NULL, and waits up to
 * timeout_ms for the whole response.  Fails the test if none came.
 */
struct tl_http	*tl_http_request(int port, const char *method,
		    const char *path, const char *headers, const char *body,
		    long long timeout_ms);
/* The body as JSON (a new reference); fails the test if it is not. */
json_t		*tl_http_json(const struct tl_http *);
/* Ready for the next response on the same connection (keep-alive):
 * bytes already received past the last one are kept. */
void		 tl_http_next(struct tl_http *);

#endif /* POOLD_TESTLIB_H */
