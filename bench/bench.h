/*
 * bench.h — helpers shared by poold's benchmarks (the bench programs).
 *
 * Time, statistics, the one-table output, child processes that never
 * outlive the bench, /proc readers, UNIX and loopback TCP sockets, and a
 * small HTTP/1.1 client.  Not part of the daemon: the benches may block,
 * spawn threads and exit on errors.
 */
#ifndef POOLD_BENCH_H
#define POOLD_BENCH_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_PER_US	1000LL
#define NS_PER_MS	1000000LL
#define NS_PER_S	1000000000LL

/* --- time and statistics --- */

int64_t	 now_ns(void);
void	 sleep_ms(int64_t ms);

struct summary {
	double	 med, min, max;
	size_t	 n;
};

/* The p-th percentile (0..100) of v[0..n); sorts v. */
double	 percentile(double *v, size_t n, double p);
/* Median and range of v[0..n); sorts v. */
struct summary summarize(double *v, size_t n);
/* "12.3 [11.9-13.0]" with the given printf format for each number. */
char	*fmt_summary(char *buf, size_t len, const char *fmt, struct summary);

/*
 * One row of the table, on stdout, tab-separated:
 * section, what, poold, baseline, ratio, target, verdict.
 * Empty strings are printed as "-".
 */
void	 table_row(const char *section, const char *what, const char *poold,
	    const char *baseline, const char *ratio, const char *target,
	    const char *verdict);
/* A line for the notes under the table ("NOTE\t..."). */
void	 table_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Progress on stderr. */
void	 say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void die(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

/* --- processes --- */

/*
 * Forks and execs argv with stdout/stderr to logpath (or inherited if
 * NULL), pinned to cpu (-1: anywhere).  The child is tracked: it, and
 * every process below it, is killed when the bench exits for any reason.
 */
pid_t	 spawn(char *const argv[], const char *logpath, int cpu);
/* SIGTERM (then SIGKILL after timeout_ms), reap, forget.  Its descendants
 * that are still there afterwards are SIGKILLed by pid. */
void	 stop_process(pid_t pid, int timeout_ms);
/* Kills every tracked process and its descendants (also at exit). */
void	 kill_tracked(void);
/* Pids whose parent is ppid, into out[0..max); their count. */
size_t	 children_of(pid_t ppid, pid_t *out, size_t max);
/* Resident set in bytes (VmRSS), or 0. */
uint64_t proc_rss(pid_t pid);
/* utime + stime in seconds, or -1. */
double	 proc_cpu_s(pid_t pid);
bool	 proc_alive(pid_t pid);
/* Pins the calling thread to cpu; -1 does nothing. */
void	 pin_cpu(int cpu);
int	 ncpus(void);
/* Raises RLIMIT_NOFILE's soft limit to want (or the hard limit). */
long	 raise_nofile(long want);

/* A count from "perf stat -x," output: 0 for "<not counted>" (nothing
 * happened), -1 if the event is not there. */
long	 perf_value(const char *txt, const char *event);

/*
 * The llama-server binary under a setup-real-llama.sh PREFIX: the real
 * ELF file when it is there (PREFIX/bin/llama-server is a shell wrapper
 * that execs it; the router spawns its children from the real path, so
 * both sides start the same way), else the wrapper.  Static buffer.
 */
const char *llama_binary(const char *prefix);

/* --- files --- */

void	 write_file(const char *path, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* The whole file, malloc'd and NUL-terminated, or NULL. */
char	*read_file(const char *path, size_t *len);
/* mkdtemp of "/tmp/pbench-NAME.XXXXXX"; removed by rm_rf at exit. */
char	*make_tmpdir(const char *name);
void	 rm_rf(const char *path);

/* --- sockets --- */

int	 unix_connect(const char *path);
/* Connects until it works or timeout_ms passes; -1 on timeout. */
int	 unix_connect_wait(const char *path, int timeout_ms);
int	 tcp_connect(int port);
int	 write_all(int fd, const void *buf, size_t len);

/* A line reader over a blocking socket. */
struct linebuf {
	int	 fd;
	char	*buf;
	size_t	 len, off, cap;
};
void	 lb_init(struct linebuf *, int fd);
void	 lb_free(struct linebuf *);
/* The next line (NUL-terminated, without '\n') or NULL on EOF/error.
 * Valid until the next call. */
char	*lb_line(struct linebuf *, size_t *len);

/* Sends one request line and returns its reply line (malloc'd). */
char	*roundtrip(struct linebuf *, const char *line);
/* Extracts an integer field ("lease", "running", ...) from a JSON line;
 * the first occurrence of "key":N.  Returns def if absent. */
long long json_int(const char *line, const char *key, long long def);

/* --- HTTP --- */

struct http_result {
	int	 status;	/* 0 on error */
	int64_t	 first_byte_ns;	/* since the request was sent */
	int64_t	 first_data_ns;	/* the first "data: " (an SSE event), or 0 */
	int64_t	 total_ns;	/* until the connection closed */
	size_t	 bytes;
	char	 body[8192];	/* the start of the body */
};
/* One request with "Connection: close"; body may be NULL. */
int	 http_request(int port, const char *method, const char *path,
	    const char *body, struct http_result *);
/* The port of poold's HTTP front door from its STATS ("http": {"listen":
 * "127.0.0.1:PORT"}), or -1. */
struct poolc;
int	 poold_http_port(struct poolc *);
/* Polls GET path until 200 or timeout; the instant of the 200 or -1. */
int64_t	 http_wait_200(int port, const char *path, int timeout_ms);

#include "proto.h"
/* A request line (malloc'd, ends in '\n'); dies on failure. */
char	*request_line(enum proto_cmd, long long id, const char *model,
	    bool hold);

#endif /* POOLD_BENCH_H */
