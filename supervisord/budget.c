/*
 * budget.c — the memory calculator: how much poold may spend on servers
 * and how many it may run.  Printed by poold --budget.
 */
#include <stdlib.h>
#include <string.h>

#include "poold.h"

#define SIZE_STR	32

_Static_assert(MEMTRUTH_GPUS_MAX == POOL_GPUS_MAX,
    "memtruth.c and the pool tell the same GPUs apart");

int
budget_compute(const struct config *cfg, struct budget *b, char *err,
    size_t errlen)
{
	char		 s1[SIZE_STR], s2[SIZE_STR];
	uint64_t	 n, nports;

	nports = (uint64_t)(cfg->port_max - cfg->port_min + 1);
	memset(b, 0, sizeof(*b));
	b->reserved = cfg->reserved;
	b->per_model = cfg->per_model;
	if (!cfg->memory_limit_auto)
		b->total = cfg->memory_limit;
	else if (platform_total_memory(&b->total) == 0)
		b->total_detected = true;
	else {
		snprintf(err, errlen, "cannot read the memory size; "
		    "set \"memory_limit\"");
		return -1;
	}
	if (b->reserved >= b->total) {
		snprintf(err, errlen, "reserved %s is %s the total %s",
		    pool_format_size(b->reserved, s1, sizeof(s1)),
		    b->reserved > b->total ? "more than" : "all of",
		    pool_format_size(b->total, s2, sizeof(s2)));
		return -1;
	}
	b->budget = b->total - b->reserved;
	/* A second budget, for servers that offload to a GPU: one per GPU. */
	b->ngpus = (unsigned)platform_gpu_budgets(cfg->gpu_limit,
	    b->gpu_budgets, POOL_GPUS_MAX, &b->gpus_found, &b->gpu_source);
	for (unsigned d = 0; d < b->ngpus; d++)
		b->gpu_budget += b->gpu_budgets[d];
	if (!cfg->max_servers_auto) {
		/* every server holds a port until reaped */
		if (cfg->max_servers > nports) {
			snprintf(err, errlen, "max_servers %u is more than "
			    "the %llu ports %d-%d", cfg->max_servers,
			    (unsigned long long)nports, cfg->port_min,
			    cfg->port_max);
			return -1;
		}
		b->max_servers = b->server_cap = cfg->max_servers;
		return 0;
	}
	if ((n = b->budget / b->per_model) == 0) {
		snprintf(err, errlen, "no model fits: per model %s is more "
		    "than the budget %s",
		    pool_format_size(b->per_model, s1, sizeof(s1)),
		    pool_format_size(b->budget, s2, sizeof(s2)));
		return -1;
	}
	b->max_servers = (unsigned)(n < nports ? n : nports);
	/*
	 * Models have estimates of their own: small ones must not be held
	 * to what per_model-sized ones allow.  Ports and bytes limit them.
	 */
	b->server_cap = (unsigned)nports;
	return 0;
}

/*
 * The pool's limits from a config and its budget: at the start and at
 * each reload (pool_set_limits), built in one place so both agree.
 */
void
budget_limits(const struct config *conf, const struct budget *b,
    struct pool_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->budget = b->budget;
	lim->max_servers = b->server_cap;
	lim->port_min = conf->port_min;
	lim->port_max = conf->port_max;
	lim->start_timeout = conf->start_timeout_ms;
	lim->max_waiters = conf->max_waiters;
	lim->max_failures = conf->max_failures;
	lim->failed_cooldown = conf->failed_cooldown_ms;
	lim->min_available = conf->min_available;
	lim->gpu_budget = b->gpu_budget;
	lim->ngpus = b->ngpus;
	memcpy(lim->gpu_budgets, b->gpu_budgets, sizeof(lim->gpu_budgets));
	lim->policy = conf->eviction;
	lim->health_interval = conf->health_interval_ms;
	lim->freq_half_life = conf->usage_half_life_ms;
}

static void
budget_line(FILE *fp, const char *label, uint64_t n, const char *note)
{
	char	 s[SIZE_STR];

	fprintf(fp, "%-16s %10s%s%s\n", label, pool_format_size(n, s, sizeof(s)),
	    note[0] != '\0' ? "   " : "", note);
}

/*
 * The GPU budget beside the RAM one, and which binds: servers on the GPU
 * count against both, CPU-only ones (-ngl 0) against the RAM alone.
 */
static void
gpu_budget_print(const struct budget *b, FILE *fp)
{
	char note[96], label[32];

	if (b->gpu_budget == 0) {
		budget_line(fp, "gpu budget", 0, "(none: no GPU accounted)");
		return;
	}
	snprintf(note, sizeof(note), "(%s%s)",
	    gpu_limit_source_name(b->gpu_source), b->ngpus > 1 ?
	    ", all GPUs together" : "");
	budget_line(fp, "gpu budget", b->gpu_budget, note);
	for (unsigned d = 0; d < b->ngpus && b->ngpus > 1; d++) {
		snprintf(label, sizeof(label), "gpu %u", d);
		budget_line(fp, label, b->gpu_budgets[d], "(its own budget)");
	}
	if (b->gpus_found > b->ngpus && b->ngpus > 0)
		fprintf(fp, "%-16s %10zu   (more than %d: GPU %u and above are "
		    "not accounted)\n", "gpus found", b->gpus_found,
		    POOL_GPUS_MAX, b->ngpus);
	budget_line(fp, "binds", b->gpu_budget < b->budget ? b->gpu_budget :
	    b->budget, b->gpu_budget < b->budget ? "(the GPU budget, for "
	    "servers on the GPU; CPU-only: the budget)" : "(the budget)");
}

void
budget_print(const struct config *cfg, const struct budget *b, FILE *fp)
{
	char		 label[64];
	const char	*note;
	uint64_t	 avail;
	size_t		 i;

	budget_line(fp, "total memory", b->total,
	    b->total_detected ? "(detected)" : "(memory_limit)");
	if (platform_available_memory(&avail) == 0)
		budget_line(fp, "system available", avail, "(free right now)");
	budget_line(fp, "reserved", b->reserved, "");
	budget_line(fp, "available", b->budget, "(budget)");
	budget_line(fp, "per model", b->per_model, "");
	if (!cfg->max_servers_auto)
		note = "(max_servers)";
	else if (b->per_model > 0 &&
	    b->max_servers < b->budget / b->per_model)
		note = "(auto: one port each)";
	else
		note = "(auto: budget / per model)";
	gpu_budget_print(b, fp);
	fprintf(fp, "%-16s %10u   %s\n", "max servers", b->max_servers, note);
	if (cfg->max_servers_auto)
		fprintf(fp, "%-16s %10u   %s\n", "server cap", b->server_cap,
		    "(auto: one per port; the budget decides)");
	for (i = 0; i < cfg->nmodels; i++) {
		if (cfg->models[i].memory == 0)
			continue;
		snprintf(label, sizeof(label), "model %s",
		    cfg->models[i].name);
		budget_line(fp, label, cfg->models[i].memory,
		    cfg->models[i].memory > b->budget ?
		    "(more than the budget: never starts)" :
		    b->gpu_budget > 0 && cfg->models[i].memory > b->gpu_budget ?
		    "(more than the GPU budget: never starts on the GPU)" :
		    "");
	}
}

/* --- poold --budget: the catalog --- */

static int
by_size(const void *a, const void *b)
{
	const struct pool_model *const *x = a, *const *y = b;

	return (*x)->mem < (*y)->mem ? -1 : (*x)->mem > (*y)->mem;
}

static void
print_model_line(FILE *f, const struct pool_model *m, const struct budget *b)
{
	const struct model_entry *e = m->udata;
	char disk[SIZE_STR], est[SIZE_STR];

	fprintf(f, "%-32s %10s %10s  %s%s\n", m->name,
	    pool_format_size(e->size, disk, sizeof(disk)),
	    pool_format_size(m->mem, est, sizeof(est)),
	    estimate_source_name(e->source),
	    m->mem > b->budget ? "   (more than the budget)" :
	    b->gpu_budget > 0 && m->gpu_mem > b->gpu_budget ?
	    "   (more than the GPU budget)" : "");
}

/* How many of the smallest fit at once, by bytes and by max_servers. */
static size_t
smallest_that_fit(struct pool_model **all, size_t n, const struct budget *b)
{
	struct pool_model **bysize;
	uint64_t sum = 0;
	size_t fit = 0;

	if ((bysize = calloc(n + 1, sizeof(*bysize))) == NULL)
		return 0;
	memcpy(bysize, all, n * sizeof(*bysize));
	qsort(bysize, n, sizeof(*bysize), by_size);
	for (size_t i = 0; i < n && sum + bysize[i]->mem <= b->budget &&
	    fit < b->server_cap; i++, fit++)
		sum += bysize[i]->mem;
	free(bysize);
	return fit;
}

/*
 * Reads every header (an offline command may take its time) and says how
 * many of the smallest would fit at once.
 */
int
daemon_print_catalog(struct config *conf, const struct budget *b, FILE *f,
    char *err, size_t errlen)
{
	static const struct pool_ops no_ops;
	struct pool_limits lim = { .budget = b->budget, .port_min = 1,
	    .port_max = 1 };
	struct daemon d;
	struct pool_model **all = NULL;
	size_t n = 0, fit;
	int rc;

	snprintf(err, errlen, "out of memory");
	memset(&d, 0, sizeof(d));
	d.lock_fd = -1;
	d.conf = conf;
	d.offline = true;
	d.learned = state_read_models(conf->state_file);
	state_read_usage(conf->state_file);	/* PIN's pins count too */
	if ((d.pool = pool_new(&lim, &no_ops, &d, 0)) == NULL ||
	    daemon_rescan(&d, err, errlen) == -1 ||
	    (all = catalog_sorted(&d, &n)) == NULL) {
		fprintf(f, "\ncatalog: %s\n", err);
		daemon_fini(&d);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		estimate_model(&d, all[i], true);
	fit = smallest_that_fit(all, n, b);
	fprintf(f, "\n%zu models in %s; the %zu smallest fit at once\n\n"
	    "%-32s %10s %10s  %s\n", n, conf->models_dir, fit, "MODEL",
	    "ON DISK", "ESTIMATE", "SOURCE");
	for (size_t i = 0; i < n; i++)
		print_model_line(f, all[i], b);
	free(all);
	/* As at a start: pinned models that cannot fit together. */
	rc = usage_check_pins(&d, conf, b->budget, err, errlen);
	daemon_fini(&d);
	return rc;
}
