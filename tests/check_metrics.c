/*
 * check_metrics.c — GET /metrics, METRICS, `poolc stats --prometheus`
 * and the status page (issue 12), against the real poold with stand-in
 * servers.
 *
 * The text is read by a parser of the exposition format written here
 * (every line a HELP, a TYPE or a sample; names and labels valid; every
 * sample's family typed before it and its samples together; counters
 * end in _total; histograms cumulative with +Inf equal to _count), and
 * by promtool when it is installed (in CI it must be).  The status page
 * is loaded in headless Chromium, driven through the DevTools protocol
 * over a pipe (--remote-debugging-pipe): the test waits for the DOM to
 * show what poold holds, keeps a screenshot in
 * build/artifacts/status-page.png, and stops Chromium by its pid.
 *
 * Environment: POOLD_BIN, POOLC_BIN, FAKELLAMA_BIN (make check sets
 * them); CHROMIUM_BIN, PROMTOOL_BIN to use others.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "poold.h"
#include "sha256.h"
#include "testlib.h"

#define WAIT_MS			10000	/* for a condition to hold */
#define BROWSER_WAIT_MS		30000	/* Chromium starts slowly here */
#define SAMPLES_MAX		4096
#define FAMILIES_MAX		256

/* --- the exposition format, parsed --------------------------------- */

struct msample {
	char	 name[128];
	char	 labels[512];	/* as written, without the braces */
	char	 le[32];	/* its "le" label, "" if none */
	char	 rest[512];	/* its labels without "le" */
	double	 value;
};

struct mfamily {
	char	 name[128];
	char	 type[16];
	bool	 help;
	bool	 closed;	/* another family's samples came after */
};

struct mtext {
	struct msample	*s;
	size_t		 ns;
	struct mfamily	 f[FAMILIES_MAX];
	size_t		 nf;
};

static bool
metric_name_ok(const char *p, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)p[0]) || p[0] == '_' ||
	    p[0] == ':'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)p[i]) || p[i] == '_' ||
		    p[i] == ':'))
			return false;
	return true;
}

static bool
label_name_ok(const char *p, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)p[0]) || p[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)p[i]) || p[i] == '_'))
			return false;
	return true;
}

static struct mfamily *
family_find(struct mtext *t, const char *name)
{
	for (size_t i = 0; i < t->nf; i++)
		if (strcmp(t->f[i].name, name) == 0)
			return &t->f[i];
	return NULL;
}

static struct mfamily *
family_get(struct mtext *t, const char *name, size_t len, int line)
{
	char n[128];
	struct mfamily *f;

	TL_ASSERT(len < sizeof(n), "line %d: name too long", line);
	memcpy(n, name, len);
	n[len] = '\0';
	if ((f = family_find(t, n)) != NULL)
		return f;
	TL_ASSERT(t->nf < FAMILIES_MAX, "too many families");
	f = &t->f[t->nf++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", n);
	return f;
}

/* The family a sample belongs to: its name, or a histogram's base. */
static struct mfamily *
sample_family(struct mtext *t, const char *name)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	struct mfamily *f;
	char base[128];
	size_t n = strlen(name), k;

	if ((f = family_find(t, name)) != NULL && f->type[0] != '\0')
		return f;
	for (size_t i = 0; i < 3; i++) {
		k = strlen(sfx[i]);
		if (n <= k || strcmp(name + n - k, sfx[i]) != 0)
			continue;
		snprintf(base, sizeof(base), "%.*s", (int)(n - k), name);
		if ((f = family_find(t, base)) != NULL &&
		    (strcmp(f->type, "histogram") == 0 ||
		    (i > 0 && strcmp(f->type, "summary") == 0)))
			return f;
	}
	return NULL;
}

/* Labels {a="x",b="y"}: names valid, values escaped only as \\ \" \n,
 * no label twice; le and the rest split out.  Returns past the '}'. */
static const char *
parse_labels(const char *p, struct msample *s, int line)
{
	char names[16][64];
	size_t nnames = 0, rl = 0;
	const char *start = p;

	p++;					/* '{' */
	while (*p != '}') {
		const char *n = p, *v;
		size_t nl, vl;

		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		nl = (size_t)(p - n);
		TL_ASSERT(label_name_ok(n, nl), "line %d: bad label name",
		    line);
		TL_ASSERT(nl < 64 && nnames < 16, "line %d: labels", line);
		for (size_t i = 0; i < nnames; i++)
			TL_ASSERT(strncmp(names[i], n, nl) != 0 ||
			    names[i][nl] != '\0', "line %d: label %.*s twice",
			    line, (int)nl, n);
		memcpy(names[nnames], n, nl);
		names[nnames++][nl] = '\0';
		TL_ASSERT(p[0] == '=' && p[1] == '"', "line %d: label %.*s "
		    "without =\"", line, (int)nl, n);
		p += 2;
		v = p;
		while (*p != '"') {
			TL_ASSERT(*p != '\0' && *p != '\n', "line %d: label "
			    "value not closed", line);
			if (*p == '\\') {
				TL_ASSERT(p[1] == '\\' || p[1] == '"' ||
				    p[1] == 'n', "line %d: bad escape \\%c",
				    line, p[1]);
				p++;
			}
			p++;
		}
		vl = (size_t)(p - v);
		p++;
		if (nl == 2 && memcmp(n, "le", 2) == 0) {
			TL_ASSERT(vl < sizeof(s->le), "line %d: le", line);
			memcpy(s->le, v, vl);
			s->le[vl] = '\0';
		} else {
			TL_ASSERT(rl + (size_t)(p - n) + 1 < sizeof(s->rest),
			    "line %d: labels too long", line);
			if (rl > 0)
				s->rest[rl++] = ',';
			memcpy(s->rest + rl, n, (size_t)(p - n));
			rl += (size_t)(p - n);
			s->rest[rl] = '\0';
		}
		if (*p == ',')
			p++;
		else
			TL_ASSERT(*p == '}', "line %d: labels: ',' or '}' "
			    "expected", line);
	}
	TL_ASSERT((size_t)(p - start - 1) < sizeof(s->labels), "line %d: "
	    "labels too long", line);
	memcpy(s->labels, start + 1, (size_t)(p - start - 1));
	s->labels[p - start - 1] = '\0';
	return p + 1;
}

static double
parse_value(const char *p, int line)
{
	char *end;
	double v;

	if (strcmp(p, "+Inf") == 0)
		return INFINITY;
	if (strcmp(p, "-Inf") == 0)
		return -INFINITY;
	if (strcmp(p, "NaN") == 0)
		return NAN;
	errno = 0;
	v = strtod(p, &end);
	TL_ASSERT(end != p && *end == '\0' && errno == 0, "line %d: bad "
	    "value '%s'", line, p);
	return v;
}

static void
parse_sample(struct mtext *t, const char *line, int lno,
    struct mfamily **last)
{
	struct msample *s;
	struct mfamily *f;
	const char *p = line;
	size_t n;

	TL_ASSERT(t->ns < SAMPLES_MAX, "too many samples");
	s = &t->s[t->ns++];
	memset(s, 0, sizeof(*s));
	while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
		p++;
	n = (size_t)(p - line);
	TL_ASSERT(metric_name_ok(line, n) && n < sizeof(s->name),
	    "line %d: bad metric name: %s", lno, line);
	memcpy(s->name, line, n);
	s->name[n] = '\0';
	if (*p == '{')
		p = parse_labels(p, s, lno);
	TL_ASSERT(*p == ' ', "line %d: no value: %s", lno, line);
	p++;
	/* No timestamps: poold's figures are of now. */
	TL_ASSERT(strchr(p, ' ') == NULL, "line %d: a timestamp or junk: %s",
	    lno, line);
	s->value = parse_value(p, lno);
	f = sample_family(t, s->name);
	TL_ASSERT(f != NULL, "line %d: %s has no TYPE before it", lno,
	    s->name);
	TL_ASSERT(f->help, "line %d: %s has no HELP", lno, f->name);
	TL_ASSERT(!f->closed, "line %d: %s's samples are not together",
	    lno, f->name);
	if (*last != NULL && *last != f)
		(*last)->closed = true;
	*last = f;
	if (strcmp(f->type, "counter") == 0) {
		n = strlen(s->name);
		TL_ASSERT(n > 6 && strcmp(s->name + n - 6, "_total") == 0,
		    "line %d: counter %s does not end in _total", lno,
		    s->name);
		TL_ASSERT(s->value >= 0, "line %d: negative counter", lno);
	}
	TL_ASSERT(strncmp(s->name, "poold_", 6) == 0, "line %d: %s without "
	    "the poold_ prefix", lno, s->name);
	for (size_t i = 0; i + 1 < t->ns; i++)
		TL_ASSERT(strcmp(t->s[i].name, s->name) != 0 ||
		    strcmp(t->s[i].labels, s->labels) != 0,
		    "line %d: %s{%s} twice", lno, s->name, s->labels);
}

static void
parse_comment(struct mtext *t, const char *line, int lno,
    struct mfamily **last)
{
	const char *p, *name;
	struct mfamily *f;
	size_t n;
	bool help = strncmp(line, "# HELP ", 7) == 0;

	TL_ASSERT(help || strncmp(line, "# TYPE ", 7) == 0, "line %d: a "
	    "comment that is neither HELP nor TYPE: %s", lno, line);
	name = p = line + 7;
	while (*p != ' ' && *p != '\0')
		p++;
	n = (size_t)(p - name);
	TL_ASSERT(metric_name_ok(name, n), "line %d: bad name", lno);
	TL_ASSERT(*p == ' ' && p[1] != '\0', "line %d: nothing after the "
	    "name", lno);
	f = family_get(t, name, n, lno);
	TL_ASSERT(f != *last || *last == NULL || !help,
	    "line %d: HELP after samples", lno);
	if (help) {
		TL_ASSERT(!f->help, "line %d: second HELP of %s", lno,
		    f->name);
		f->help = true;
		return;
	}
	TL_ASSERT(f->type[0] == '\0', "line %d: second TYPE of %s", lno,
	    f->name);
	p++;
	TL_ASSERT(strcmp(p, "counter") == 0 || strcmp(p, "gauge") == 0 ||
	    strcmp(p, "histogram") == 0 || strcmp(p, "summary") == 0 ||
	    strcmp(p, "untyped") == 0, "line %d: bad type %s", lno, p);
	snprintf(f->type, sizeof(f->type), "%s", p);
	TL_ASSERT(f->help, "line %d: TYPE of %s before its HELP", lno,
	    f->name);
	if (*last != NULL)
		(*last)->closed = true;
	*last = NULL;
}

static double
le_value(const char *le)
{
	return strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
}

/* Every histogram: per label set, buckets ascending and cumulative,
 * +Inf last and equal to _count, a _sum. */
static void
check_histograms(struct mtext *t)
{
	char name[160];

	for (size_t i = 0; i < t->nf; i++) {
		struct mfamily *f = &t->f[i];

		if (strcmp(f->type, "histogram") != 0)
			continue;
		snprintf(name, sizeof(name), "%s_bucket", f->name);
		for (size_t a = 0; a < t->ns; a++) {
			struct msample *b = &t->s[a];
			double prev_le = -INFINITY, prev = 0, inf = -1;
			bool seen = false, has_sum = false, has_count = false;
			double count = -1;

			if (strcmp(b->name, name) != 0)
				continue;
			/* The first bucket of a label set only. */
			for (size_t k = 0; k < a; k++)
				if (strcmp(t->s[k].name, name) == 0 &&
				    strcmp(t->s[k].rest, b->rest) == 0)
					seen = true;
			if (seen)
				continue;
			for (size_t k = a; k < t->ns; k++) {
				struct msample *x = &t->s[k];
				size_t fl = strlen(f->name);

				if (strncmp(x->name, f->name, fl) != 0 ||
				    strcmp(x->rest, b->rest) != 0)
					continue;
				if (strcmp(x->name + fl, "_bucket") == 0) {
					TL_ASSERT(x->le[0] != '\0', "%s{%s}: "
					    "no le", x->name, x->labels);
					TL_ASSERT(le_value(x->le) > prev_le,
					    "%s{%s}: le not ascending",
					    x->name, x->labels);
					TL_ASSERT(x->value >= prev, "%s{%s}: "
					    "not cumulative", x->name,
					    x->labels);
					prev_le = le_value(x->le);
					prev = x->value;
					if (isinf(prev_le))
						inf = x->value;
				} else if (strcmp(x->name + fl, "_sum") == 0)
					has_sum = true;
				else if (strcmp(x->name + fl, "_count") == 0) {
					has_count = true;
					count = x->value;
				}
			}
			TL_ASSERT(inf >= 0, "%s{%s}: no +Inf bucket", name,
			    b->rest);
			TL_ASSERT(has_sum && has_count, "%s{%s}: _sum or "
			    "_count missing", f->name, b->rest);
			TL_ASSERT(inf == count, "%s{%s}: +Inf %g != _count %g",
			    f->name, b->rest, inf, count);
		}
	}
}

/* Parses the whole text; fails the test on anything out of format. */
static struct mtext *
mtext_parse(const char *text)
{
	struct mtext *t = calloc(1, sizeof(*t));
	struct mfamily *last = NULL;
	const char *p = text, *nl;
	char line[2048];
	int lno = 0;

	TL_ASSERT(t != NULL, "calloc");
	t->s = calloc(SAMPLES_MAX, sizeof(*t->s));
	TL_ASSERT(t->s != NULL, "calloc");
	TL_ASSERT(*text != '\0', "empty text");
	while (*p != '\0') {
		lno++;
		nl = strchr(p, '\n');
		TL_ASSERT(nl != NULL, "line %d: no newline at the end", lno);
		TL_ASSERT((size_t)(nl - p) < sizeof(line), "line %d: too "
		    "long", lno);
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		TL_ASSERT(line[0] != '\0', "line %d: empty", lno);
		TL_ASSERT(strchr(line, '\r') == NULL, "line %d: CR", lno);
		if (line[0] == '#')
			parse_comment(t, line, lno, &last);
		else
			parse_sample(t, line, lno, &last);
		p = nl + 1;
	}
	for (size_t i = 0; i < t->nf; i++)
		TL_ASSERT(t->f[i].type[0] != '\0', "%s: HELP without TYPE",
		    t->f[i].name);
	check_histograms(t);
	return t;
}

static void
mtext_free(struct mtext *t)
{
	if (t != NULL)
		free(t->s);
	free(t);
}

/* The value of name{labels} (labels as written), or NAN if absent. */
static double
mval(const struct mtext *t, const char *name, const char *labels)
{
	for (size_t i = 0; i < t->ns; i++)
		if (strcmp(t->s[i].name, name) == 0 &&
		    strcmp(t->s[i].labels, labels != NULL ? labels : "") == 0)
			return t->s[i].value;
	return NAN;
}

static bool
mhas_family(const struct mtext *t, const char *name)
{
	for (size_t i = 0; i < t->nf; i++)
		if (strcmp(t->f[i].name, name) == 0)
			return true;
	return false;
}

/* How many samples carry model="name". */
static size_t
mcount_model(const struct mtext *t, const char *model)
{
	char want[160];
	size_t n = 0;

	snprintf(want, sizeof(want), "model=\"%s\"", model);
	for (size_t i = 0; i < t->ns; i++)
		if (strstr(t->s[i].labels, want) != NULL)
			n++;
	return n;
}

#define MVAL_IS(t, name, labels, want) do {				\
	double v_ = mval((t), (name), (labels));			\
	TL_ASSERT(v_ == (double)(want), "%s{%s} is %g, not %g", (name),	\
	    (labels) != NULL ? (labels) : "", v_, (double)(want));	\
} while (0)

/* --- poold with its front door ------------------------------------- */

/* Starts poold with "http" on 127.0.0.1:0 (plus http_extra) and returns
 * the port, from STATS. */
static int
start_door(struct tl_daemon *d, struct tl_conn **cp, const char *http_extra)
{
	char over[2048];
	const char *listen, *colon;
	json_t *st;
	long long dl;
	int port = 0;

	snprintf(over, sizeof(over), "{\"http\":{\"listen\":\"127.0.0.1:0\""
	    "%s}}", http_extra != NULL ? http_extra : "");
	tl_daemon_start(d, over);
	*cp = tl_connect(d);
	dl = tl_now_ms() + WAIT_MS;
	do {
		st = tl_stats(d, *cp);
		listen = tl_str(st, "http.listen");
		if (listen != NULL && (colon = strrchr(listen, ':')) != NULL)
			port = atoi(colon + 1);
		json_decref(st);
		if (port > 0)
			break;
		tl_sleep_ms(50);
	} while (tl_now_ms() < dl);
	TL_ASSERT(port > 0, "no port in STATS http.listen");
	return port;
}

/* GET /metrics: checks the head, parses the body. */
static struct mtext *
get_metrics(int port, const char *headers)
{
	struct tl_http *h;
	struct mtext *t;
	const char *ct;

	h = tl_http_request(port, "GET", "/metrics", headers, NULL, WAIT_MS);
	TL_ASSERT(h->status == 200, "GET /metrics: HTTP %d: %.300s",
	    h->status, h->body != NULL ? h->body : "");
	ct = tl_http_header(h, "Content-Type");
	TL_ASSERT(ct != NULL && strcmp(ct, "text/plain; version=0.0.4; "
	    "charset=utf-8") == 0, "GET /metrics: Content-Type %s",
	    ct != NULL ? ct : "(none)");
	t = mtext_parse(h->body);
	tl_http_close(h);
	return t;
}

/* METRICS on the socket: its "text". */
static char *
metrics_cmd(struct tl_conn *c)
{
	json_t *r = tl_call(c, json_pack("{s:s}", "cmd", "METRICS"),
	    WAIT_MS);
	const char *text = tl_str(r, "text");
	char *copy;

	TL_ASSERT(tl_ok(r) && text != NULL, "METRICS: %s", tl_dump(r));
	copy = strdup(text);
	json_decref(r);
	return copy;
}

/* promtool's path, or NULL if it is not installed. */
static const char *
promtool_path(void)
{
	static char found[TL_PATH_MAX];
	const char *p = getenv("PROMTOOL_BIN"), *path = getenv("PATH");
	char dirs[4096], *dir, *save = NULL;

	if (p != NULL && *p != '\0')
		return p;
	if (access("/usr/bin/promtool", X_OK) == 0)
		return "/usr/bin/promtool";
	snprintf(dirs, sizeof(dirs), "%s", path != NULL ? path : "");
	for (dir = strtok_r(dirs, ":", &save); dir != NULL;
	    dir = strtok_r(NULL, ":", &save)) {
		snprintf(found, sizeof(found), "%s/promtool", dir);
		if (access(found, X_OK) == 0)
			return found;
	}
	return NULL;
}

/* `promtool check metrics` on text: it must pass, lint warnings too. */
static void
promtool_check(struct tl_daemon *d, const char *text)
{
	char in[TL_PATH_MAX], out[TL_PATH_MAX], cmd[4 * TL_PATH_MAX];
	const char *pt = promtool_path();
	char *report;
	FILE *f;
	int rc;

	if (pt == NULL) {
		tl_skip("promtool", "promtool not installed (Debian: apt-get "
		    "install prometheus)");
		return;
	}
	snprintf(in, sizeof(in), "%s/metrics.txt", d->dir);
	snprintf(out, sizeof(out), "%s/promtool.out", d->dir);
	tl_write_file(in, "%s", text);
	snprintf(cmd, sizeof(cmd), "'%s' check metrics < '%s' > '%s' 2>&1",
	    pt, in, out);
	rc = system(cmd);
	f = fopen(out, "r");
	report = calloc(1, 65536);
	TL_ASSERT(report != NULL, "calloc");
	if (f != NULL) {
		(void)!fread(report, 1, 65535, f);
		fclose(f);
	}
	TL_ASSERT(rc == 0 && report[0] == '\0', "promtool check metrics "
	    "(rc %d): %s", rc, report);
	free(report);
}

/* --- 1. the escaper --------------------------------------------------- */

START_TEST(test_escape)
{
	char buf[64];

	ck_assert_uint_eq(metrics_escape_label("tiny-1.5b_q4+x", buf,
	    sizeof(buf)), 14);
	ck_assert_str_eq(buf, "tiny-1.5b_q4+x");
	ck_assert_uint_eq(metrics_escape_label("a\\b\"c\nd", buf,
	    sizeof(buf)), 10);
	ck_assert_str_eq(buf, "a\\\\b\\\"c\\nd");
	/* Cut to the buffer, NUL-terminated; the length is the whole. */
	ck_assert_uint_eq(metrics_escape_label("\"\"\"\"", buf, 4), 8);
	ck_assert_str_eq(buf, "\\\"\\");
	ck_assert_uint_eq(metrics_escape_label("x\n", NULL, 0), 3);
	ck_assert_uint_eq(metrics_escape_label("", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "");
}
END_TEST

/* --- 2. the text, three ways ------------------------------------------ */

START_TEST(test_exposition)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct mtext *t, *u;
	char *text, out[TL_PATH_MAX], cmd[3 * TL_PATH_MAX], *poolc_text;
	const char *poolc = getenv("POOLC_BIN");
	long long lease;
	int port, rc;
	FILE *f;
	long n;

	tl_daemon_init(&d, 1);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	tl_model(&d, "b", "load_ms=50\nmem=1M\n");
	port = start_door(&d, &c, NULL);

	lease = tl_acquire_ok(c, "a", true, NULL);
	tl_acquire_ok(c, "b", false, NULL);

	t = get_metrics(port, NULL);
	MVAL_IS(t, "poold_build_info", "version=\"" POOLD_VERSION "\"", 1);
	TL_ASSERT(mval(t, "poold_uptime_seconds", NULL) >= 0, "uptime");
	MVAL_IS(t, "poold_memory_budget_bytes", NULL,
	    (double)tl_stats_int(&d, c, "memory.budget"));
	MVAL_IS(t, "poold_memory_accounted_bytes", NULL,
	    (double)tl_stats_int(&d, c, "memory.accounted"));
	TL_ASSERT(!isnan(mval(t, "poold_memory_measured_bytes", NULL)),
	    "measured");
	TL_ASSERT(mhas_family(t, "poold_memory_system_available_bytes"),
	    "system available");
	MVAL_IS(t, "poold_servers", "state=\"ready\"", 2);
	MVAL_IS(t, "poold_servers", "state=\"starting\"", 0);
	MVAL_IS(t, "poold_servers", "state=\"stopping\"", 0);
	MVAL_IS(t, "poold_leases", NULL, 1);
	MVAL_IS(t, "poold_waiters", NULL, 0);
	TL_ASSERT(mval(t, "poold_clients", NULL) >= 1, "clients");
	MVAL_IS(t, "poold_acquires_total", NULL, 2);
	MVAL_IS(t, "poold_cold_starts_total", NULL, 2);
	MVAL_IS(t, "poold_model_acquires_total", "model=\"a\"", 1);
	MVAL_IS(t, "poold_model_cold_starts_total", "model=\"b\"", 1);
	MVAL_IS(t, "poold_model_hits_total", "model=\"a\"", 0);
	MVAL_IS(t, "poold_model_waiters", "model=\"a\"", 0);
	MVAL_IS(t, "poold_model_busy_total", "model=\"a\"", 0);
	MVAL_IS(t, "poold_model_failed_starts_total", "model=\"a\"", 0);
	MVAL_IS(t, "poold_evictions_total", "reason=\"lru\"", 0);
	TL_ASSERT(mhas_family(t, "poold_model_load_seconds") &&
	    mhas_family(t, "poold_load_seconds") &&
	    mhas_family(t, "poold_model_evictions_total"), "families");
	TL_ASSERT(mhas_family(t, "poold_http_requests_total"), "http");

	/* METRICS: the same text, the same families. */
	text = metrics_cmd(c);
	u = mtext_parse(text);
	TL_ASSERT(u->nf == t->nf, "METRICS: %zu families, GET /metrics %zu",
	    u->nf, t->nf);
	MVAL_IS(u, "poold_model_acquires_total", "model=\"a\"", 1);
	promtool_check(&d, text);
	free(text);
	mtext_free(u);

	/* poolc stats --prometheus prints it as is. */
	TL_ASSERT(poolc != NULL, "POOLC_BIN not set");
	snprintf(out, sizeof(out), "%s/poolc.prom", d.dir);
	snprintf(cmd, sizeof(cmd), "'%s' -s '%s' stats --prometheus > '%s'",
	    poolc, d.sock, out);
	rc = system(cmd);
	TL_ASSERT(rc == 0, "poolc stats --prometheus: rc %d", rc);
	f = fopen(out, "r");
	TL_ASSERT(f != NULL, "%s", out);
	poolc_text = calloc(1, 1 << 20);
	TL_ASSERT(poolc_text != NULL, "calloc");
	n = (long)fread(poolc_text, 1, (1 << 20) - 1, f);
	fclose(f);
	TL_ASSERT(n > 0, "poolc printed nothing");
	u = mtext_parse(poolc_text);
	MVAL_IS(u, "poold_model_acquires_total", "model=\"b\"", 1);
	mtext_free(u);
	free(poolc_text);
	/* A write that fails fails the command: no cut file is moved in. */
	if (access("/dev/full", W_OK) == 0) {
		snprintf(cmd, sizeof(cmd), "'%s' -s '%s' stats --prometheus "
		    "> /dev/full 2>/dev/null", poolc, d.sock);
		rc = system(cmd);
		TL_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 3, "poolc stats "
		    "--prometheus > /dev/full: rc %d", rc);
	}
	/* Its options: alone. */
	snprintf(cmd, sizeof(cmd), "'%s' -s '%s' stats --prometheus --json "
	    "> /dev/null 2>&1", poolc, d.sock);
	rc = system(cmd);
	TL_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "--prometheus "
	    "--json: rc %d", rc);

	mtext_free(t);
	tl_release(c, lease);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 3. counters move --------------------------------------------------- */

START_TEST(test_counters_move)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct mtext *t;
	json_t *r;
	char *text;

	tl_daemon_init(&d, 2);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	tl_model(&d, "b", "load_ms=50\nmem=1M\n");
	start_door(&d, &c, NULL);

	text = metrics_cmd(c);
	t = mtext_parse(text);
	MVAL_IS(t, "poold_acquires_total", NULL, 0);
	TL_ASSERT(mcount_model(t, "a") == 0, "an unused model has lines");
	MVAL_IS(t, "poold_load_seconds_count", NULL, 0);
	mtext_free(t);
	free(text);

	tl_acquire_ok(c, "a", false, NULL);
	tl_acquire_ok(c, "a", false, NULL);	/* ready: a hit */
	text = metrics_cmd(c);
	t = mtext_parse(text);
	MVAL_IS(t, "poold_model_acquires_total", "model=\"a\"", 2);
	MVAL_IS(t, "poold_model_hits_total", "model=\"a\"", 1);
	MVAL_IS(t, "poold_model_cold_starts_total", "model=\"a\"", 1);
	MVAL_IS(t, "poold_model_load_seconds_count", "model=\"a\"", 1);
	MVAL_IS(t, "poold_model_load_seconds_bucket",
	    "model=\"a\",le=\"+Inf\"", 1);
	MVAL_IS(t, "poold_load_seconds_count", NULL, 1);
	TL_ASSERT(mval(t, "poold_model_load_seconds_sum", "model=\"a\"") > 0,
	    "load seconds sum");
	MVAL_IS(t, "poold_servers", "state=\"ready\"", 1);
	TL_ASSERT(mcount_model(t, "b") == 0, "b has lines before its use");
	mtext_free(t);
	free(text);

	r = tl_evict(c, "a", false, WAIT_MS);
	TL_ASSERT(tl_ok(r), "EVICT a: %s", tl_dump(r));
	json_decref(r);
	text = metrics_cmd(c);
	t = mtext_parse(text);
	MVAL_IS(t, "poold_model_evictions_total",
	    "model=\"a\",reason=\"evict\"", 1);
	MVAL_IS(t, "poold_evictions_total", "reason=\"evict\"", 1);
	MVAL_IS(t, "poold_servers", "state=\"ready\"", 0);
	/* No server now, but used this run: still written. */
	MVAL_IS(t, "poold_model_acquires_total", "model=\"a\"", 2);
	promtool_check(&d, text);
	mtext_free(t);
	free(text);

	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 4. 500 models, two used: two models' lines ---------------------- */

START_TEST(test_bounded)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct mtext *t;
	char name[32], *text;
	size_t len;

	tl_daemon_init(&d, 3);
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "m%03d", i);
		tl_model(&d, name, "load_ms=20\nmem=1M\n");
	}
	start_door(&d, &c, NULL);
	tl_acquire_ok(c, "m007", false, NULL);
	tl_acquire_ok(c, "m123", false, NULL);
	text = metrics_cmd(c);
	len = strlen(text);
	t = mtext_parse(text);
	TL_ASSERT(mcount_model(t, "m007") > 0 && mcount_model(t, "m123") > 0,
	    "the used models are missing");
	for (size_t i = 0; i < t->ns; i++)
		TL_ASSERT(strstr(t->s[i].labels, "model=") == NULL ||
		    strstr(t->s[i].labels, "model=\"m007\"") != NULL ||
		    strstr(t->s[i].labels, "model=\"m123\"") != NULL,
		    "an unused model in %s{%s}", t->s[i].name,
		    t->s[i].labels);
	MVAL_IS(t, "poold_models_omitted", NULL, 0);
	TL_ASSERT(len < 64 * 1024, "%zu bytes for two models", len);
	mtext_free(t);
	free(text);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 5. the page's head, the token ------------------------------------ */

/* The 'sha256-…' of the text between open and close in body. */
static void
expect_hash(const char *csp, const char *body, const char *open,
    const char *close)
{
	unsigned char h[SHA256_BYTES];
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
	    "opqrstuvwxyz0123456789+/";
	char want[64], enc[48];
	const char *a = strstr(body, open), *b;
	size_t o = 0, i;
	unsigned v;

	TL_ASSERT(a != NULL, "the page has no %s", open);
	a += strlen(open);
	b = strstr(a, close);
	TL_ASSERT(b != NULL, "the page has no %s", close);
	sha256(a, (size_t)(b - a), h);
	for (i = 0; i + 2 < SHA256_BYTES; i += 3) {
		v = (unsigned)h[i] << 16 | (unsigned)h[i + 1] << 8 | h[i + 2];
		enc[o++] = b64[v >> 18 & 63];
		enc[o++] = b64[v >> 12 & 63];
		enc[o++] = b64[v >> 6 & 63];
		enc[o++] = b64[v & 63];
	}
	v = (unsigned)h[i] << 16 | (unsigned)h[i + 1] << 8;
	enc[o++] = b64[v >> 18 & 63];
	enc[o++] = b64[v >> 12 & 63];
	enc[o++] = b64[v >> 6 & 63];
	enc[o++] = '=';
	enc[o] = '\0';
	snprintf(want, sizeof(want), "'sha256-%s'", enc);
	TL_ASSERT(strstr(csp, want) != NULL, "CSP %s lacks %s", csp, want);
}

START_TEST(test_status_head)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct tl_http *h;
	struct mtext *t;
	char tok[TL_PATH_MAX], extra[TL_PATH_MAX + 32];
	const char *v, *csp;
	int port;

	tl_daemon_init(&d, 4);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	snprintf(tok, sizeof(tok), "%s/token", d.dir);
	tl_write_file(tok, "s3cret\n");
	TL_ASSERT(chmod(tok, 0600) == 0, "chmod %s", tok);
	snprintf(extra, sizeof(extra), ",\"token_file\":\"%s\"", tok);
	port = start_door(&d, &c, extra);

	/* The page holds no data: no token needed. */
	h = tl_http_request(port, "GET", "/", NULL, NULL, WAIT_MS);
	TL_ASSERT(h->status == 200, "GET /: HTTP %d", h->status);
	v = tl_http_header(h, "Content-Type");
	TL_ASSERT(v != NULL && strcmp(v, "text/html; charset=utf-8") == 0,
	    "GET /: Content-Type %s", v != NULL ? v : "(none)");
	v = tl_http_header(h, "X-Content-Type-Options");
	TL_ASSERT(v != NULL && strcmp(v, "nosniff") == 0, "nosniff");
	csp = tl_http_header(h, "Content-Security-Policy");
	TL_ASSERT(csp != NULL, "no Content-Security-Policy");
	csp = strdup(csp);
	TL_ASSERT(strstr(csp, "default-src 'none'") != NULL &&
	    strstr(csp, "connect-src 'self'") != NULL &&
	    strstr(csp, "frame-ancestors 'none'") != NULL &&
	    strstr(csp, "unsafe-inline") == NULL, "CSP: %s", csp);
	expect_hash(csp, h->body, "<script>", "</script>");
	expect_hash(csp, h->body, "<style>", "</style>");
	/* Nothing from elsewhere: no URL, no src, no link. */
	TL_ASSERT(strstr(h->body, "http://") == NULL &&
	    strstr(h->body, "https://") == NULL &&
	    strstr(h->body, " src=") == NULL &&
	    strstr(h->body, "<link") == NULL &&
	    strstr(h->body, "@import") == NULL &&
	    strstr(h->body, "url(") == NULL, "the page loads something");
	free((void *)csp);
	tl_http_close(h);

	/* The data needs the token. */
	h = tl_http_request(port, "GET", "/metrics", NULL, NULL, WAIT_MS);
	TL_ASSERT(h->status == 401, "GET /metrics without token: HTTP %d",
	    h->status);
	tl_http_close(h);
	h = tl_http_request(port, "GET", "/v1/pool/stats", NULL, NULL,
	    WAIT_MS);
	TL_ASSERT(h->status == 401, "GET /v1/pool/stats without token: "
	    "HTTP %d", h->status);
	tl_http_close(h);
	t = get_metrics(port, "Authorization: Bearer s3cret\r\n");
	MVAL_IS(t, "poold_servers", "state=\"ready\"", 0);
	mtext_free(t);
	h = tl_http_request(port, "GET", "/v1/pool/stats",
	    "Authorization: Bearer s3cret\r\n", NULL, WAIT_MS);
	TL_ASSERT(h->status == 200, "GET /v1/pool/stats: HTTP %d",
	    h->status);
	{
		json_t *st = tl_http_json(h);

		TL_ASSERT(tl_str(st, "version") != NULL &&
		    json_is_object(tl_get(st, "memory")) &&
		    json_is_array(tl_get(st, "servers")), "stats: %s",
		    tl_dump(st));
		json_decref(st);
	}
	tl_http_close(h);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* --- 6. the page in a browser ------------------------------------------ */

/*
 * Chromium driven over --remote-debugging-pipe: it reads commands on fd 3
 * and writes replies and events on fd 4, JSON messages each ended by a
 * NUL.  No websocket, no port, no other program.
 */
struct cdp {
	pid_t	 pid;		/* the browser; its process group too */
	int	 to, from;
	char	*buf;
	size_t	 len, cap;
	long	 next_id;
	char	 session[128];
	char	 log[TL_PATH_MAX];
	char	 profile[TL_PATH_MAX];
};

static const char *
chromium_path(void)
{
	static const char *const names[] = { "/usr/bin/chromium",
	    "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium",
	    "/Applications/Chromium.app/Contents/MacOS/Chromium",
	    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" };
	const char *p = getenv("CHROMIUM_BIN");

	if (p != NULL && *p != '\0')
		return p;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (access(names[i], X_OK) == 0)
			return names[i];
	return NULL;
}

static void
cdp_start(struct cdp *b, struct tl_daemon *d, const char *bin)
{
	int to[2], from[2], logfd;
	pid_t parent = getpid();

	memset(b, 0, sizeof(*b));
	b->next_id = 1;
	snprintf(b->log, sizeof(b->log), "%s/chromium.log", d->dir);
	snprintf(b->profile, sizeof(b->profile), "%s/chromium", d->dir);
	TL_ASSERT(pipe(to) == 0 && pipe(from) == 0, "pipe: %s",
	    strerror(errno));
	logfd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	TL_ASSERT(logfd != -1, "open %s", b->log);
	b->pid = fork();
	TL_ASSERT(b->pid != -1, "fork: %s", strerror(errno));
	if (b->pid == 0) {
		char prof[TL_PATH_MAX + 32];
		sigset_t all;
		int nullfd;

		setpgid(0, 0);
#ifdef PR_SET_PDEATHSIG
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (getppid() != parent)
			_exit(127);
#endif
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		if ((nullfd = open("/dev/null", O_RDONLY)) != -1)
			dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		/* fd 3: what it reads; fd 4: what it writes. */
		if (dup2(to[0], 100) == -1 || dup2(from[1], 101) == -1 ||
		    dup2(100, 3) == -1 || dup2(101, 4) == -1)
			_exit(127);
		for (int fd = 5; fd < 1024; fd++)
			close(fd);
		snprintf(prof, sizeof(prof), "--user-data-dir=%s", b->profile);
		execl(bin, bin, "--headless", "--no-sandbox", "--disable-gpu",
		    "--remote-debugging-pipe", prof, "--no-first-run",
		    "--no-default-browser-check", "--disable-extensions",
		    "--disable-background-networking", "--disable-sync",
		    "--disable-component-update", "--mute-audio",
		    "--window-size=1200,1000", "about:blank", (char *)NULL);
		dprintf(2, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	setpgid(b->pid, b->pid);
	tl_track(b->pid);
	close(logfd);
	close(to[0]);
	close(from[1]);
	b->to = to[1];
	b->from = from[0];
	fcntl(b->to, F_SETFD, FD_CLOEXEC);
	fcntl(b->from, F_SETFD, FD_CLOEXEC);
}

/* Next whole message, parsed; NULL if none came by the deadline. */
static json_t *
cdp_read(struct cdp *b, long long deadline)
{
	struct pollfd pfd = { .fd = b->from, .events = POLLIN };
	json_error_t jerr;
	char *nul;
	ssize_t n;
	json_t *m;

	for (;;) {
		if (b->len > 0 && (nul = memchr(b->buf, '\0', b->len)) != NULL) {
			size_t mlen = (size_t)(nul - b->buf);

			m = json_loadb(b->buf, mlen, 0, &jerr);
			memmove(b->buf, nul + 1, b->len - mlen - 1);
			b->len -= mlen + 1;
			TL_ASSERT(m != NULL, "DevTools: not JSON: %s",
			    jerr.text);
			return m;
		}
		long long left = deadline - tl_now_ms();
		if (left <= 0)
			return NULL;
		if (poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) <= 0)
			continue;
		if (b->cap - b->len < 65536) {
			b->cap = b->cap * 2 + 65536;
			b->buf = realloc(b->buf, b->cap);
			TL_ASSERT(b->buf != NULL, "realloc");
		}
		n = read(b->from, b->buf + b->len, b->cap - b->len);
		if (n == -1 && errno == EINTR)
			continue;
		TL_ASSERT(n > 0, "DevTools pipe closed: Chromium is gone "
		    "(see %s)", b->log);
		b->len += (size_t)n;
	}
}

/* A command (params stolen); its "result", or fails the test. */
static json_t *
cdp_call(struct cdp *b, bool in_page, const char *method, json_t *params)
{
	long id = b->next_id++;
	long long deadline = tl_now_ms() + BROWSER_WAIT_MS;
	json_t *req, *m, *res;
	char *text;
	size_t len, off = 0;

	req = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "method",
	    method, "params", params != NULL ? params : json_object());
	if (in_page)
		json_object_set_new(req, "sessionId",
		    json_string(b->session));
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	TL_ASSERT(text != NULL, "json_dumps");
	len = strlen(text) + 1;			/* the NUL ends it */
	while (off < len) {
		ssize_t n = write(b->to, text + off, len - off);

		if (n == -1 && errno == EINTR)
			continue;
		TL_ASSERT(n > 0, "DevTools write: %s", strerror(errno));
		off += (size_t)n;
	}
	free(text);
	for (;;) {
		m = cdp_read(b, deadline);
		TL_ASSERT(m != NULL, "DevTools: no answer to %s", method);
		if (json_integer_value(json_object_get(m, "id")) == id)
			break;
		json_decref(m);			/* an event */
	}
	TL_ASSERT(json_object_get(m, "error") == NULL, "DevTools %s: %s",
	    method, tl_dump(m));
	res = json_incref(json_object_get(m, "result"));
	json_decref(m);
	return res;
}

/* A JavaScript expression's value in the page (a new reference). */
static json_t *
cdp_eval(struct cdp *b, const char *expr)
{
	json_t *r = cdp_call(b, true, "Runtime.evaluate", json_pack("{s:s, "
	    "s:b}", "expression", expr, "returnByValue", 1));
	json_t *v = json_incref(tl_get(r, "result.value"));

	json_decref(r);
	return v;
}

/* Polls expr (true when it holds) until it does; false past timeout. */
static bool
cdp_wait(struct cdp *b, const char *expr, long long timeout_ms)
{
	long long dl = tl_now_ms() + timeout_ms;
	json_t *v;

	for (;;) {
		v = cdp_eval(b, expr);
		if (json_is_true(v)) {
			json_decref(v);
			return true;
		}
		json_decref(v);
		if (tl_now_ms() >= dl)
			return false;
		tl_sleep_ms(100);
	}
}

static char *
cdp_dom(struct cdp *b)
{
	json_t *v = cdp_eval(b, "document.body ? document.body.outerHTML : "
	    "''");
	char *s = strdup(json_is_string(v) ? json_string_value(v) : "?");

	json_decref(v);
	return s;
}

static void
b64_decode_file(const char *text, const char *path)
{
	size_t n = strlen(text), o = 0;
	unsigned char *out = malloc(n / 4 * 3 + 3);
	unsigned acc = 0;
	int bits = 0;
	FILE *f;

	TL_ASSERT(out != NULL, "malloc");
	for (size_t i = 0; i < n && text[i] != '='; i++) {
		const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
		    "stuvwxyz0123456789+/", *p = strchr(a, text[i]);

		TL_ASSERT(p != NULL && text[i] != '\0', "base64");
		acc = acc << 6 | (unsigned)(p - a);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits & 0xff);
		}
	}
	f = fopen(path, "wb");
	TL_ASSERT(f != NULL, "%s: %s", path, strerror(errno));
	TL_ASSERT(fwrite(out, 1, o, f) == o && fclose(f) == 0, "write %s",
	    path);
	free(out);
}

/* build/artifacts/status-page.png: beside poold, so SANITIZE=1 runs keep
 * theirs apart (build/san/artifacts/). */
static void
screenshot(struct cdp *b, char *path, size_t len)
{
	const char *poold = getenv("POOLD_BIN");
	char dir[TL_PATH_MAX];
	json_t *r;

	snprintf(dir, sizeof(dir), "%s", poold != NULL ? poold :
	    "build/poold");
	snprintf(path, len, "%s/artifacts", dirname(dir));
	TL_ASSERT(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s",
	    path);
	strncat(path, "/status-page.png", len - strlen(path) - 1);
	r = cdp_call(b, true, "Page.captureScreenshot", json_pack("{s:s, "
	    "s:b}", "format", "png", "captureBeyondViewport", 1));
	TL_ASSERT(tl_str(r, "data") != NULL, "no screenshot");
	b64_decode_file(tl_str(r, "data"), path);
	json_decref(r);
}

/* The processes of Chromium's process group still there, zombies
 * adopted by us reaped on the way. */
static int
group_left(pid_t pgid, pid_t *out, int max)
{
	DIR *dir = opendir("/proc");
	struct dirent *e;
	char path[64], buf[1024], *p;
	int n = 0;

	if (dir == NULL)
		return 0;
	while ((e = readdir(dir)) != NULL) {
		pid_t pid = (pid_t)atol(e->d_name), ppid;
		long pgrp;
		char state;
		FILE *f;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
		    sscanf(p + 2, "%c %d %ld", &state, &ppid, &pgrp) != 3 ||
		    pgrp != (long)pgid)
			continue;
		if (state == 'Z' && ppid == getpid() &&
		    waitpid(pid, NULL, WNOHANG) == pid)
			continue;
		if (n < max)
			out[n++] = pid;
	}
	closedir(dir);
	return n;
}

/*
 * Browser.close, then the browser's pid must end (SIGTERM, then SIGKILL,
 * to that pid only), and nothing of its process group may be left.
 */
static void
cdp_stop(struct cdp *b)
{
	pid_t left[64];
	long long dl;
	int status, n = 0;
	bool gone;

	if (b->pid <= 0)
		return;
	json_decref(cdp_call(b, false, "Browser.close", NULL));
	close(b->to);
	close(b->from);
	dl = tl_now_ms() + WAIT_MS;
	while (waitpid(b->pid, &status, WNOHANG) == 0) {
		if (tl_now_ms() >= dl) {
			kill(b->pid, SIGKILL);
			waitpid(b->pid, &status, 0);
			TL_ASSERT(0, "Chromium %d did not end after "
			    "Browser.close", (int)b->pid);
		}
		tl_sleep_ms(20);
	}
	TL_WAIT_UNTIL(gone, (n = group_left(b->pid, left, 64)) == 0, WAIT_MS);
	for (int i = 0; i < n; i++)
		kill(left[i], SIGKILL);
	TL_ASSERT(gone, "%d of Chromium's processes were left (pid %d ...)",
	    n, n > 0 ? (int)left[0] : 0);
	b->pid = 0;
	free(b->buf);
	tl_rm_rf(b->profile);
}

/* Chromium with one page on poold's status page, its CSP watched. */
static void
cdp_open(struct cdp *b, struct tl_daemon *d, const char *bin, int port)
{
	char url[64];
	json_t *r, *a;

	cdp_start(b, d, bin);
	r = cdp_call(b, false, "Target.createTarget", json_pack("{s:s}",
	    "url", "about:blank"));
	a = cdp_call(b, false, "Target.attachToTarget", json_pack("{s:s, s:b}",
	    "targetId", tl_str(r, "targetId"), "flatten", 1));
	snprintf(b->session, sizeof(b->session), "%s",
	    tl_str(a, "sessionId"));
	json_decref(a);
	json_decref(r);
	json_decref(cdp_call(b, true, "Page.enable", NULL));
	/* Whatever the page's policy blocks is counted: nothing may be. */
	json_decref(cdp_call(b, true, "Page.addScriptToEvaluateOnNewDocument",
	    json_pack("{s:s}", "source", "window.cspBlocked = [];"
	    "document.addEventListener('securitypolicyviolation', function (e)"
	    " { window.cspBlocked.push(e.violatedDirective + ' ' +"
	    " e.blockedURI); });")));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	json_decref(cdp_call(b, true, "Page.navigate", json_pack("{s:s}",
	    "url", url)));
}

static void
expect_no_csp_block(struct cdp *b)
{
	json_t *v = cdp_eval(b, "JSON.stringify(window.cspBlocked)");

	TL_ASSERT(json_is_string(v) && strcmp(json_string_value(v), "[]") == 0,
	    "the page's policy blocked: %s", tl_dump(v));
	json_decref(v);
}

/* Is GET /events served (the event stream may come later than this)? */
static bool
events_served(int port)
{
	struct tl_http *h = tl_http_open(port);
	bool ok;

	tl_http_sendf(h, "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	    "Authorization: Bearer s3cret\r\nConnection: close\r\n\r\n",
	    port);
	TL_ASSERT(tl_http_wait_head(h, WAIT_MS), "GET /events: no head");
	ok = h->status == 200;
	tl_http_close(h);
	return ok;
}

START_TEST(test_browser)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct cdp b;
	char tok[TL_PATH_MAX], extra[TL_PATH_MAX + 32];
	char shot[TL_PATH_MAX], *dom;
	const char *bin = chromium_path();
	long long lease;
	bool ok, with_events;
	int port;

	if (bin == NULL) {
#ifdef __APPLE__
		/* Homebrew has no Chromium of its own: optional there. */
		fprintf(stderr, "SKIP browser: no Chromium (set CHROMIUM_BIN)\n");
#else
		tl_skip("browser", "no Chromium (Debian: apt-get install "
		    "chromium; or set CHROMIUM_BIN)");
#endif
		return;
	}
	tl_daemon_init(&d, 5);
	tl_model(&d, "tiny-chat", "load_ms=300\nmem=2M\n");
	tl_model(&d, "other", "load_ms=50\nmem=1M\n");
	snprintf(tok, sizeof(tok), "%s/token", d.dir);
	tl_write_file(tok, "s3cret\n");
	TL_ASSERT(chmod(tok, 0600) == 0, "chmod %s", tok);
	snprintf(extra, sizeof(extra), ",\"token_file\":\"%s\"", tok);
	port = start_door(&d, &c, extra);
	with_events = events_served(port);

	cdp_open(&b, &d, bin, port);

	/* A token is needed: the page asks for it. */
	ok = cdp_wait(&b, "!!document.getElementById('login') && "
	    "!document.getElementById('login').hidden && "
	    "document.getElementById('conn').dataset.state === 'login'",
	    BROWSER_WAIT_MS);
	TL_ASSERT(ok, "the page did not ask for the token: %s", cdp_dom(&b));
	/* A wrong one is refused, and it asks again. */
	json_decref(cdp_eval(&b, "document.getElementById('token').value = "
	    "'nope'; document.getElementById('login').requestSubmit(); 1"));
	ok = cdp_wait(&b, "document.getElementById('login-error')"
	    ".textContent.indexOf('refused') >= 0 && "
	    "!document.getElementById('login').hidden", BROWSER_WAIT_MS);
	TL_ASSERT(ok, "a wrong token was not refused: %s", cdp_dom(&b));
	json_decref(cdp_eval(&b, "document.getElementById('token').value = "
	    "'s3cret'; document.getElementById('login').requestSubmit(); 1"));
	ok = cdp_wait(&b, "document.getElementById('conn').dataset.state === "
	    "'live' && document.getElementById('login').hidden && "
	    "sessionStorage.getItem('poold.token') === 's3cret'",
	    BROWSER_WAIT_MS);
	TL_ASSERT(ok, "the page did not go live with the token: %s",
	    cdp_dom(&b));
	if (with_events) {
		ok = cdp_wait(&b, "document.getElementById('events-state')"
		    ".dataset.state === 'open'", BROWSER_WAIT_MS);
		TL_ASSERT(ok, "the page did not open /events: %s",
		    cdp_dom(&b));
	}

	/* A model leased over the socket shows up, ready, with its lease. */
	lease = tl_acquire_ok(c, "tiny-chat", true, NULL);
	ok = cdp_wait(&b, "!!document.querySelector('#servers "
	    "tr[data-model=\"tiny-chat\"][data-state=\"ready\"]"
	    "[data-leases=\"1\"]')", BROWSER_WAIT_MS);
	TL_ASSERT(ok, "no ready row for tiny-chat: %s", cdp_dom(&b));
	ok = cdp_wait(&b, "!!document.querySelector('#usage "
	    "tr[data-model=\"tiny-chat\"]')", BROWSER_WAIT_MS);
	TL_ASSERT(ok, "tiny-chat is not among the most used: %s", cdp_dom(&b));
	/* The budget bar: accounted as STATS has it, drawn. */
	{
		char expr[512];

		snprintf(expr, sizeof(expr), "(function () { var b = "
		    "document.getElementById('budget'); return b.dataset."
		    "accounted === '%lld' && b.dataset.budget === '%lld' && "
		    "document.getElementById('bar-accounted')"
		    ".getBoundingClientRect().width > 0; })()",
		    tl_stats_int(&d, c, "memory.accounted"),
		    tl_stats_int(&d, c, "memory.budget"));
		ok = cdp_wait(&b, expr, BROWSER_WAIT_MS);
		TL_ASSERT(ok, "the budget bar: %s", cdp_dom(&b));
	}
	if (with_events) {
		ok = cdp_wait(&b, "!!document.querySelector('#events "
		    "li[data-event=\"ready\"][data-model=\"tiny-chat\"]') && "
		    "!!document.querySelector('#events li[data-event=\"start\"]"
		    "[data-model=\"tiny-chat\"]')", BROWSER_WAIT_MS);
		TL_ASSERT(ok, "no start/ready events of tiny-chat: %s",
		    cdp_dom(&b));
	} else
		fprintf(stderr, "check_metrics: [browser] GET /events is not "
		    "served by this poold: the page's events not checked\n");
	/* One server, one row. */
	ok = cdp_wait(&b, "document.querySelectorAll('#servers tbody tr')"
	    ".length === 1", WAIT_MS);
	TL_ASSERT(ok, "servers table: %s", cdp_dom(&b));

	expect_no_csp_block(&b);
	screenshot(&b, shot, sizeof(shot));
	fprintf(stderr, "check_metrics: [browser] screenshot in %s\n", shot);
	dom = cdp_dom(&b);
	TL_ASSERT(strstr(dom, "tiny-chat") != NULL, "DOM: %s", dom);
	free(dom);
	cdp_stop(&b);

	tl_release(c, lease);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

/* Without a token (poold on the loopback only): the page goes live at
 * once and follows the pool, an eviction included. */
START_TEST(test_browser_no_token)
{
	struct tl_daemon d;
	struct tl_conn *c;
	struct cdp b;
	const char *bin = chromium_path();
	json_t *r;
	bool ok;
	int port;

	if (bin == NULL) {
#ifdef __APPLE__
		fprintf(stderr, "SKIP browser_no_token: no Chromium\n");
#else
		tl_skip("browser_no_token", "no Chromium (Debian: apt-get "
		    "install chromium; or set CHROMIUM_BIN)");
#endif
		return;
	}
	tl_daemon_init(&d, 6);
	tl_model(&d, "a", "load_ms=50\nmem=1M\n");
	port = start_door(&d, &c, NULL);
	tl_acquire_ok(c, "a", false, NULL);
	cdp_open(&b, &d, bin, port);
	ok = cdp_wait(&b, "document.getElementById('conn').dataset.state === "
	    "'live' && document.getElementById('login').hidden && "
	    "!!document.querySelector('#servers tr[data-model=\"a\"]"
	    "[data-state=\"ready\"][data-leases=\"0\"]')",
	    BROWSER_WAIT_MS);
	TL_ASSERT(ok, "no ready row for a: %s", cdp_dom(&b));
	r = tl_evict(c, "a", false, WAIT_MS);
	TL_ASSERT(tl_ok(r), "EVICT a: %s", tl_dump(r));
	json_decref(r);
	ok = cdp_wait(&b, "!document.querySelector('#servers "
	    "tr[data-model=\"a\"]') && "
	    "!document.getElementById('no-servers').hidden", BROWSER_WAIT_MS);
	TL_ASSERT(ok, "a's row stayed after its eviction: %s", cdp_dom(&b));
	expect_no_csp_block(&b);
	cdp_stop(&b);
	tl_close(c);
	tl_daemon_finish(&d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("metrics");

	tl_add(s, "escape", test_escape);
	tl_add(s, "exposition", test_exposition);
	tl_add(s, "counters_move", test_counters_move);
	tl_add(s, "bounded", test_bounded);
	tl_add(s, "status_head", test_status_head);
	tl_add(s, "browser", test_browser);
	tl_add(s, "browser_no_token", test_browser_no_token);
	return tl_run(s, CK_NORMAL);
}
