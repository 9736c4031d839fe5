/*
 * budget.c — the memory calculator: how much poold may spend on servers
 * and how many it may run.  Printed by poold --budget.
 */
#include <string.h>

#include "poold.h"

#define SIZE_STR	32

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
	if (!cfg->max_servers_auto) {
		/* every server holds a port until reaped */
		if (cfg->max_servers > nports) {
			snprintf(err, errlen, "max_servers %u is more than "
			    "the %llu ports %d-%d", cfg->max_servers,
			    (unsigned long long)nports, cfg->port_min,
			    cfg->port_max);
			return -1;
		}
		b->max_servers = cfg->max_servers;
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
	return 0;
}

static void
budget_line(FILE *fp, const char *label, uint64_t n, const char *note)
{
	char	 s[SIZE_STR];

	fprintf(fp, "%-16s %10s%s%s\n", label, pool_format_size(n, s, sizeof(s)),
	    note[0] != '\0' ? "   " : "", note);
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
	fprintf(fp, "%-16s %10u   %s\n", "max servers", b->max_servers, note);
	for (i = 0; i < cfg->nmodels; i++) {
		if (cfg->models[i].memory == 0)
			continue;
		snprintf(label, sizeof(label), "model %s",
		    cfg->models[i].name);
		budget_line(fp, label, cfg->models[i].memory,
		    cfg->models[i].memory > b->budget ?
		    "(more than the budget: never starts)" : "");
	}
}
