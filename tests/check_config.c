/*
 * check_config.c — config file, sizes and durations, the memory
 * calculator, the model folder, logging and the platform facts.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "poold.h"
#include "testlib.h"

#define G	(1ULL << 30)
#define M	(1ULL << 20)
#define K	(1ULL << 10)

#define TMPDIR_TEMPLATE	"/tmp/check_config.XXXXXX"

static char	 tmpdir[] = TMPDIR_TEMPLATE;
static char	 confpath[sizeof(tmpdir) + 32];

static void
setup(void)
{
	memcpy(tmpdir, TMPDIR_TEMPLATE, sizeof(tmpdir));
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(confpath, sizeof(confpath), "%s/poold.json", tmpdir);
}

static void
teardown(void)
{
	char	 cmd[sizeof(tmpdir) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

static void
write_file(const char *path, const char *text)
{
	FILE	*fp;

	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	fputs(text, fp);
	ck_assert_int_eq(fclose(fp), 0);
}

/* Loads text as the config; returns config_load's result. */
static int
load(struct config *cfg, const char *text, char *err, size_t len)
{
	write_file(confpath, text);
	config_defaults(cfg);
	err[0] = '\0';
	return config_load(cfg, confpath, err, len);
}

/* --- sizes, durations --- */

static const struct { const char *s; int rc; uint64_t v; } sizes[] = {
	{ "0", 0, 0 },
	{ "1024", 0, 1024 },
	{ "900B", 0, 900 },
	{ "900 B", 0, 900 },
	{ "1K", 0, K },
	{ "1k", 0, K },
	{ "18G", 0, 18 * G },
	{ "18g", 0, 18 * G },
	{ "18GB", 0, 18 * G },
	{ "18GiB", 0, 18 * G },
	{ "18.0 GiB", 0, 18 * G },
	{ "512MiB", 0, 512 * M },
	{ "512mib", 0, 512 * M },
	{ "1.5G", 0, 3 * G / 2 },
	{ "0.5K", 0, 512 },
	{ "2T", 0, 2048 * G },
	{ "0.1K", 0, 102 },		/* rounded down */
	{ "15.999999999999999999999T", 0, 16 * 1024 * G - 1 },
	{ "16777215T", 0, 0xffffff0000000000ULL },
	{ "18446744073709551615", 0, UINT64_MAX },
	{ "18446744073709551616", -1, 0 },	/* overflow */
	{ "16777216T", -1, 0 },			/* overflow */
	{ "99999999999999999999999G", -1, 0 },
	{ "", -1, 0 },
	{ "G", -1, 0 },
	{ "-1", -1, 0 },
	{ "-1G", -1, 0 },
	{ "+1G", -1, 0 },
	{ " 1G", -1, 0 },
	{ "1.5", -1, 0 },		/* no fractions of a byte */
	{ ".5G", -1, 0 },
	{ "5.G", -1, 0 },
	{ "1X", -1, 0 },
	{ "1iB", -1, 0 },
	{ "1Gi", -1, 0 },
	{ "1GBB", -1, 0 },
	{ "1G ", -1, 0 },
	{ "1P", -1, 0 },
	{ "1e9", -1, 0 },
	{ "0x10", -1, 0 },
	{ "1,5G", -1, 0 },
};

START_TEST(test_parse_size)
{
	uint64_t	 v = 12345;
	int		 rc = parse_size(sizes[_i].s, &v);

	ck_assert_msg(rc == sizes[_i].rc, "parse_size(\"%s\") = %d",
	    sizes[_i].s, rc);
	if (rc == 0)
		ck_assert_msg(v == sizes[_i].v, "parse_size(\"%s\") = %llu",
		    sizes[_i].s, (unsigned long long)v);
}
END_TEST

static const struct { const char *s; int rc; int64_t v; } durations[] = {
	{ "0", 0, 0 },
	{ "10", 0, 10000 },
	{ "10s", 0, 10000 },
	{ "1500ms", 0, 1500 },
	{ "30m", 0, 30 * 60000 },
	{ "2h", 0, 2 * 3600000 },
	{ "1.5s", 0, 1500 },
	{ "0.5h", 0, 1800000 },
	{ "2.5", 0, 2500 },
	{ "10 s", 0, 10000 },
	{ "9223372036854775807ms", 0, INT64_MAX },
	{ "9223372036854775808ms", -1, 0 },	/* overflow */
	{ "9223372036854776s", -1, 0 },
	{ "99999999999999999999h", -1, 0 },
	{ "-1", -1, 0 },
	{ "-5s", -1, 0 },
	{ "", -1, 0 },
	{ "s", -1, 0 },
	{ "10x", -1, 0 },
	{ "10S", -1, 0 },
	{ "1d", -1, 0 },
	{ "10sec", -1, 0 },
	{ "10mss", -1, 0 },
	{ "1.s", -1, 0 },
	{ "1e3", -1, 0 },
};

START_TEST(test_parse_duration)
{
	int64_t	 v = 12345;
	int	 rc = parse_duration(durations[_i].s, &v);

	ck_assert_msg(rc == durations[_i].rc, "parse_duration(\"%s\") = %d",
	    durations[_i].s, rc);
	if (rc == 0)
		ck_assert_msg(v == durations[_i].v,
		    "parse_duration(\"%s\") = %lld", durations[_i].s,
		    (long long)v);
}
END_TEST

static const struct { uint64_t v; const char *s; } formats[] = {
	{ 0, "0 B" },
	{ 900, "900 B" },
	{ 1023, "1023 B" },
	{ 1024, "1.0 KiB" },
	{ 1536, "1.5 KiB" },
	{ 512 * M, "512.0 MiB" },
	{ 18 * G, "18.0 GiB" },
	{ 492 * G, "492.0 GiB" },
	{ 2048 * G, "2.0 TiB" },
	{ UINT64_MAX, "16.0 EiB" },
};

START_TEST(test_format_size)
{
	char	 buf[32];

	ck_assert_str_eq(pool_format_size(formats[_i].v, buf, sizeof(buf)),
	    formats[_i].s);
}
END_TEST

/* --- config_load --- */

START_TEST(test_defaults)
{
	struct config	 cfg;
	char		 err[512];
	const char	*cmd[] = { "llama-server", "-m", "{path}", "--host",
	    "{host}", "--port", "{port}", "-c", "8192", NULL };
	size_t		 i;

	ck_assert_int_eq(load(&cfg, "{}\n", err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.path, confpath);
	ck_assert_ptr_null(cfg.socket);
	ck_assert_uint_eq(cfg.socket_mode, 0660);
	ck_assert_str_eq(cfg.models_dir, CONF_DEFAULT_MODELS_DIR);
	for (i = 0; cmd[i] != NULL; i++)
		ck_assert_str_eq(cfg.command[i], cmd[i]);
	ck_assert_ptr_null(cfg.command[i]);
	ck_assert_str_eq(cfg.health_path, "/health");
	ck_assert_str_eq(cfg.server_host, "127.0.0.1");
	ck_assert(!cfg.api_keys);
	ck_assert_int_eq(cfg.port_min, 8080);
	ck_assert_int_eq(cfg.port_max, 8179);
	ck_assert(cfg.memory_limit_auto);
	ck_assert_uint_eq(cfg.reserved, 20 * G);
	ck_assert_uint_eq(cfg.per_model, 18 * G);
	ck_assert(cfg.max_servers_auto);
	ck_assert_int_eq(cfg.idle_timeout_ms, 30 * 60000);
	ck_assert_int_eq(cfg.start_timeout_ms, 120000);
	ck_assert_int_eq(cfg.stop_timeout_ms, 10000);
	ck_assert_int_eq(cfg.acquire_timeout_ms, 120000);
	ck_assert_ptr_null(cfg.log_dir);
	ck_assert_uint_eq(cfg.max_clients, CONF_DEFAULT_MAX_CLIENTS);
	ck_assert_uint_eq(cfg.max_pending, CONF_DEFAULT_MAX_PENDING);
	ck_assert_uint_eq(cfg.max_waiters, CONF_DEFAULT_MAX_WAITERS);
	ck_assert_uint_eq(cfg.outbuf_bytes, CONF_DEFAULT_OUTBUF_BYTES);
	ck_assert_ptr_null(cfg.socket_group);
	ck_assert_ptr_null(cfg.admin_group);
	ck_assert_uint_eq(cfg.max_line_bytes, 64 * K);
	ck_assert_int_eq(cfg.line_timeout_ms, 10000);
	ck_assert_int_eq(cfg.idle_client_timeout_ms, 10 * 60 * 1000);
	ck_assert_int_eq(cfg.rss_interval_ms, 2000);
	ck_assert_uint_eq(cfg.max_failures, 5);
	ck_assert_int_eq(cfg.failed_cooldown_ms, 10 * 60000);
	ck_assert_uint_eq(cfg.min_available, G);
	/* BENCHMARKS.md, issue 12: the defaults the simulator chose. */
	ck_assert_int_eq(cfg.eviction, POOL_POLICY_FREQ);
	ck_assert_int_eq(cfg.usage_half_life_ms, 6 * 3600 * 1000);
	ck_assert_uint_eq(cfg.preload_n, 4);
	ck_assert_ptr_null(cfg.preload_list);
	ck_assert_int_eq(cfg.preload_refill_ms, 0);
	ck_assert_uint_eq(cfg.nmodels, 0);
	ck_assert_ptr_null(config_model(&cfg, "x"));
	config_free(&cfg);
}
END_TEST

static const char full_config[] =
    "{\n"
    "  \"socket\": \"/tmp/p.sock\",\n"
    "  \"socket_mode\": \"0600\",\n"
    "  \"models_dir\": \"/models\",\n"
    "  \"command\": [\"srv\", \"--model={path}\", \"-p\", \"{port}\"],\n"
    "  \"health_path\": \"/v1/health\",\n"
    "  \"ports\": [9000, 9009],\n"
    "  \"memory_limit\": \"64G\",\n"
    "  \"reserved\": \"4GiB\",\n"
    "  \"per_model\": 1073741824,\n"
    "  \"max_servers\": 3,\n"
    "  \"eviction\": \"gds\",\n"
    "  \"idle_timeout\": 0,\n"
    "  \"start_timeout\": \"1500ms\",\n"
    "  \"stop_timeout\": 2.5,\n"
    "  \"acquire_timeout\": \"2h\",\n"
    "  \"log_dir\": \"/var/log/poold\",\n"
    "  \"max_clients\": 10,\n"
    "  \"max_pending\": 2,\n"
    "  \"max_waiters\": 1,\n"
    "  \"outbuf_bytes\": \"64K\",\n"
    "  \"socket_group\": 0,\n"
    "  \"admin_group\": \"12345\",\n"
    "  \"max_line_bytes\": \"1M\",\n"
    "  \"line_timeout\": \"2500ms\",\n"
    "  \"idle_client_timeout\": \"1h\",\n"
    "  \"state_file\": \"/var/tmp/poold-state.json\",\n"
    "  \"rss_interval\": 0,\n"
    "  \"health_interval\": 0,\n"
    "  \"max_failures\": 1,\n"
    "  \"failed_cooldown\": \"30s\",\n"
    "  \"min_available\": \"512M\",\n"
    "  \"models\": {}\n"
    "}\n";

START_TEST(test_all_keys)
{
	struct config	 cfg;
	char		 err[512];

	ck_assert_msg(load(&cfg, full_config, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_str_eq(cfg.socket, "/tmp/p.sock");
	ck_assert_uint_eq(cfg.socket_mode, 0600);
	ck_assert_str_eq(cfg.models_dir, "/models");
	ck_assert_str_eq(cfg.command[0], "srv");
	ck_assert_str_eq(cfg.command[3], "{port}");
	ck_assert_ptr_null(cfg.command[4]);
	ck_assert_str_eq(cfg.health_path, "/v1/health");
	ck_assert_int_eq(cfg.port_min, 9000);
	ck_assert_int_eq(cfg.port_max, 9009);
	ck_assert(!cfg.memory_limit_auto);
	ck_assert_uint_eq(cfg.memory_limit, 64 * G);
	ck_assert_uint_eq(cfg.reserved, 4 * G);
	ck_assert_uint_eq(cfg.per_model, G);
	ck_assert(!cfg.max_servers_auto);
	ck_assert_uint_eq(cfg.max_servers, 3);
	ck_assert_int_eq(cfg.idle_timeout_ms, 0);
	ck_assert_int_eq(cfg.start_timeout_ms, 1500);
	ck_assert_int_eq(cfg.stop_timeout_ms, 2500);
	ck_assert_int_eq(cfg.acquire_timeout_ms, 7200000);
	ck_assert_str_eq(cfg.log_dir, "/var/log/poold");
	ck_assert_uint_eq(cfg.max_clients, 10);
	ck_assert_uint_eq(cfg.max_pending, 2);
	ck_assert_uint_eq(cfg.max_waiters, 1);
	ck_assert_uint_eq(cfg.outbuf_bytes, 64 * K);
	ck_assert_str_eq(cfg.socket_group, "0");
	ck_assert_uint_eq(cfg.socket_gid, 0);
	ck_assert_str_eq(cfg.admin_group, "12345");
	ck_assert_uint_eq(cfg.admin_gid, 12345);
	ck_assert_uint_eq(cfg.max_line_bytes, M);
	ck_assert_int_eq(cfg.line_timeout_ms, 2500);
	ck_assert_int_eq(cfg.idle_client_timeout_ms, 3600000);
	ck_assert_str_eq(cfg.state_file, "/var/tmp/poold-state.json");
	ck_assert_int_eq(cfg.rss_interval_ms, 0);
	ck_assert_int_eq(cfg.health_interval_ms, 0);
	ck_assert_uint_eq(cfg.max_failures, 1);
	ck_assert_int_eq(cfg.failed_cooldown_ms, 30000);
	ck_assert_uint_eq(cfg.min_available, 512 * M);
	ck_assert_int_eq(cfg.eviction, POOL_POLICY_GDS);
	config_free(&cfg);
}
END_TEST

/* Other valid spellings. */
START_TEST(test_alternatives)
{
	struct config	 cfg;
	char		 err[512];

	ck_assert_msg(load(&cfg, "{\"socket_mode\": 384, \"memory_limit\": "
	    "\"auto\", \"max_servers\": \"auto\", \"log_dir\": null, "
	    "\"reserved\": 0, \"ports\": [1, 1], \"idle_timeout\": \"0\", "
	    "\"start_timeout\": 10}", err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.socket_mode, 0600);
	ck_assert(cfg.memory_limit_auto);
	ck_assert(cfg.max_servers_auto);
	ck_assert_ptr_null(cfg.log_dir);
	ck_assert_uint_eq(cfg.reserved, 0);
	ck_assert_int_eq(cfg.port_min, 1);
	ck_assert_int_eq(cfg.port_max, 1);
	ck_assert_int_eq(cfg.idle_timeout_ms, 0);
	ck_assert_int_eq(cfg.start_timeout_ms, 10000);
	config_free(&cfg);
	ck_assert_msg(load(&cfg, "{\"eviction\": \"lru\", \"preload\": 0}",
	    err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(cfg.eviction, POOL_POLICY_LRU);
	ck_assert_uint_eq(cfg.preload_n, 0);
	config_free(&cfg);
	ck_assert_msg(load(&cfg, "{\"eviction\": \"freq\"}", err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(cfg.eviction, POOL_POLICY_FREQ);
	config_free(&cfg);
}
END_TEST

/* Each bad value must be refused with an error naming its key. */
static const struct { const char *json; const char *key; } bad[] = {
	{ "\"socket\": \"\"", "socket" },
	{ "\"socket\": 5", "socket" },
	{ "\"socket\": null", "socket" },
	{ "\"socket\": \"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"",
	    "socket" },
	{ "\"socket_mode\": \"0888\"", "socket_mode" },
	{ "\"socket_mode\": \"01777\"", "socket_mode" },
	{ "\"socket_mode\": \"rw\"", "socket_mode" },
	{ "\"socket_mode\": \"\"", "socket_mode" },
	{ "\"socket_mode\": 512", "socket_mode" },
	{ "\"socket_mode\": -1", "socket_mode" },
	{ "\"models_dir\": \"\"", "models_dir" },
	{ "\"models_dir\": []", "models_dir" },
	{ "\"command\": []", "command" },
	{ "\"command\": \"llama-server\"", "command" },
	{ "\"command\": [\"x\", \"{path}\", 1, \"{port}\"]", "command" },
	{ "\"command\": [\"\", \"{path}\", \"{port}\"]", "command" },
	{ "\"command\": [\"srv\", \"-m\", \"{path}\"]", "command" },
	{ "\"command\": [\"srv\", \"--port\", \"{port}\"]", "command" },
	{ "\"health_path\": \"health\"", "health_path" },
	{ "\"health_path\": \"\"", "health_path" },
	{ "\"health_path\": \"/a b\"", "health_path" },
	{ "\"health_path\": \"/a\\r\\n\"", "health_path" },
	{ "\"health_path\": 1", "health_path" },
	{ "\"ports\": [0, 10]", "ports" },
	{ "\"ports\": [10, 9]", "ports" },
	{ "\"ports\": [10, 65536]", "ports" },
	{ "\"ports\": [10]", "ports" },
	{ "\"ports\": [1, 2, 3]", "ports" },
	{ "\"ports\": [\"1\", \"2\"]", "ports" },
	{ "\"ports\": 8080", "ports" },
	{ "\"memory_limit\": \"lots\"", "memory_limit" },
	{ "\"memory_limit\": 0", "memory_limit" },
	{ "\"memory_limit\": -1", "memory_limit" },
	{ "\"memory_limit\": \"Auto\"", "memory_limit" },
	{ "\"reserved\": -1", "reserved" },
	{ "\"reserved\": 1.5", "reserved" },
	{ "\"reserved\": \"20Q\"", "reserved" },
	{ "\"per_model\": 0", "per_model" },
	{ "\"per_model\": \"0G\"", "per_model" },
	{ "\"per_model\": true", "per_model" },
	{ "\"max_servers\": 0", "max_servers" },
	{ "\"eviction\": \"lfu\"", "eviction" },
	{ "\"eviction\": 1", "eviction" },
	{ "\"max_servers\": \"3\"", "max_servers" },
	{ "\"max_servers\": 2.0", "max_servers" },
	{ "\"max_servers\": 4294967296", "max_servers" },
	{ "\"idle_timeout\": -1", "idle_timeout" },
	{ "\"idle_timeout\": \"forever\"", "idle_timeout" },
	{ "\"idle_timeout\": -0.5", "idle_timeout" },
	{ "\"idle_timeout\": 1e300", "idle_timeout" },
	{ "\"start_timeout\": 0", "start_timeout" },
	{ "\"start_timeout\": \"0ms\"", "start_timeout" },
	{ "\"stop_timeout\": \"-1s\"", "stop_timeout" },
	{ "\"stop_timeout\": null", "stop_timeout" },
	{ "\"acquire_timeout\": 0.0", "acquire_timeout" },
	{ "\"acquire_timeout\": 9223372036854775807", "acquire_timeout" },
	{ "\"log_dir\": \"\"", "log_dir" },
	{ "\"log_dir\": false", "log_dir" },
	{ "\"max_clients\": 0", "max_clients" },
	{ "\"max_clients\": -3", "max_clients" },
	{ "\"max_pending\": \"many\"", "max_pending" },
	{ "\"max_waiters\": 1.5", "max_waiters" },
	{ "\"outbuf_bytes\": \"63K\"", "outbuf_bytes" },
	{ "\"outbuf_bytes\": 65535", "outbuf_bytes" },
	{ "\"outbuf_bytes\": \"big\"", "outbuf_bytes" },
	{ "\"socket_group\": \"no-such-group-xyzzy\"", "socket_group" },
	{ "\"socket_group\": \"\"", "socket_group" },
	{ "\"socket_group\": -1", "socket_group" },
	{ "\"socket_group\": 4294967296", "socket_group" },
	{ "\"socket_group\": \"99999999999\"", "socket_group" },
	{ "\"socket_group\": true", "socket_group" },
	{ "\"socket_group\": [0]", "socket_group" },
	{ "\"admin_group\": \"no-such-group-xyzzy\"", "admin_group" },
	{ "\"admin_group\": 1.5", "admin_group" },
	{ "\"max_line_bytes\": \"1023\"", "max_line_bytes" },
	{ "\"max_line_bytes\": 0", "max_line_bytes" },
	{ "\"max_line_bytes\": \"1025K\"", "max_line_bytes" },
	{ "\"max_line_bytes\": \"2M\"", "max_line_bytes" },
	{ "\"max_line_bytes\": \"long\"", "max_line_bytes" },
	{ "\"line_timeout\": 0", "line_timeout" },
	{ "\"line_timeout\": \"-1s\"", "line_timeout" },
	{ "\"line_timeout\": null", "line_timeout" },
	{ "\"idle_client_timeout\": -1", "idle_client_timeout" },
	{ "\"idle_client_timeout\": \"never\"", "idle_client_timeout" },
	{ "\"state_file\": \"\"", "state_file" },
	{ "\"state_file\": 1", "state_file" },
	{ "\"rss_interval\": \"fast\"", "rss_interval" },
	{ "\"rss_interval\": -2", "rss_interval" },
	{ "\"health_interval\": \"50ms\"", "health_interval" },
	{ "\"health_interval\": \"often\"", "health_interval" },
	{ "\"health_interval\": -1", "health_interval" },
	{ "\"max_failures\": 0", "max_failures" },
	{ "\"max_failures\": \"5\"", "max_failures" },
	{ "\"failed_cooldown\": 0", "failed_cooldown" },
	{ "\"failed_cooldown\": \"10d\"", "failed_cooldown" },
	{ "\"min_available\": -1", "min_available" },
	{ "\"min_available\": \"1Q\"", "min_available" },
	{ "\"min_available\": \"auto\"", "min_available" },
	{ "\"models\": []", "models" },
	{ "\"models\": {\"x\": 1}", "models" },
	{ "\"models\": {\"a b\": {}}", "models" },
	{ "\"models\": {\".hidden\": {}}", "models" },
	{ "\"models\": {\"\": {}}", "models" },
	{ "\"models\": {\"x\": {\"memory\": 0}}", "memory" },
	{ "\"models\": {\"x\": {\"memory\": \"lots\"}}", "memory" },
	{ "\"models\": {\"x\": {\"memory\": \"AUTO\"}}", "memory" },
	{ "\"models\": {\"x\": {\"memory\": null}}", "memory" },
	{ "\"models\": {\"x\": {\"idle_timeout\": -1}}", "idle_timeout" },
	{ "\"models\": {\"x\": {\"command\": [\"srv\"]}}", "command" },
	{ "\"models\": {\"x\": {\"command\": []}}", "command" },
	{ "\"models\": {\"x\": {\"env\": []}}", "env" },
	{ "\"models\": {\"x\": {\"env\": {\"1A\": \"v\"}}}", "env" },
	{ "\"models\": {\"x\": {\"env\": {\"A-B\": \"v\"}}}", "env" },
	{ "\"models\": {\"x\": {\"env\": {\"\": \"v\"}}}", "env" },
	{ "\"models\": {\"x\": {\"env\": {\"A\": 1}}}", "env" },
};

START_TEST(test_bad_value)
{
	struct config	 cfg;
	char		 err[512], text[512], key[64];

	snprintf(text, sizeof(text), "{%s}", bad[_i].json);
	snprintf(key, sizeof(key), "\"%s\": ", bad[_i].key);
	ck_assert_msg(load(&cfg, text, err, sizeof(err)) == -1,
	    "accepted %s", text);
	ck_assert_msg(strncmp(err, confpath, strlen(confpath)) == 0 &&
	    strstr(err, key) != NULL, "%s: error \"%s\" does not name %s",
	    text, err, key);
	/* the config is left as it was */
	ck_assert_str_eq(cfg.models_dir, CONF_DEFAULT_MODELS_DIR);
	ck_assert_ptr_null(cfg.path);
	config_free(&cfg);
}
END_TEST

START_TEST(test_command_without_port)
{
	struct config	 cfg;
	char		 err[512], want[512];

	ck_assert_int_eq(load(&cfg, "{\"command\": [\"srv\", \"{path}\"]}",
	    err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: \"command\": no {port} in the "
	    "command", confpath);
	ck_assert_str_eq(err, want);
	config_free(&cfg);
}
END_TEST

START_TEST(test_ports_message)
{
	struct config	 cfg;
	char		 err[512], want[512];

	ck_assert_int_eq(load(&cfg, "{\"ports\": [2, 1]}", err,
	    sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: \"ports\": expected [min, max] "
	    "with 1 <= min <= max <= 65535", confpath);
	ck_assert_str_eq(err, want);
	config_free(&cfg);
}
END_TEST

START_TEST(test_unknown_key)
{
	struct config	 cfg;
	char		 err[512], want[512];

	ck_assert_int_eq(load(&cfg, "{\"idle_timeout\": 5,\n"
	    "\"idle_timout\": 10}", err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: unknown key \"idle_timout\"",
	    confpath);
	ck_assert_str_eq(err, want);
	config_free(&cfg);

	ck_assert_int_eq(load(&cfg, "{\"models\": {\"m\": {\"memroy\": 5}}}",
	    err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: model \"m\": unknown key "
	    "\"memroy\"", confpath);
	ck_assert_str_eq(err, want);
	config_free(&cfg);
}
END_TEST

START_TEST(test_duplicate_key)
{
	struct config	 cfg;
	char		 err[512];

	ck_assert_int_eq(load(&cfg, "{\"reserved\": 1,\n\"reserved\": 2}",
	    err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "duplicate") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "line 2") != NULL, "%s", err);
	config_free(&cfg);

	ck_assert_int_eq(load(&cfg, "{\"models\": {\"m\": {\"memory\": 1, "
	    "\"memory\": 2}}}", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "duplicate") != NULL, "%s", err);
	config_free(&cfg);
}
END_TEST

START_TEST(test_syntax_error)
{
	struct config	 cfg;
	char		 err[512], want[512];

	ck_assert_int_eq(load(&cfg, "{\n  \"reserved\": 1,\n    x\n}",
	    err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: line 3 column 5: ", confpath);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	config_free(&cfg);

	ck_assert_int_eq(load(&cfg, "", err, sizeof(err)), -1);
	ck_assert_msg(strncmp(err, confpath, strlen(confpath)) == 0, "%s",
	    err);
	config_free(&cfg);

	ck_assert_int_eq(load(&cfg, "[1, 2]", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "expected a JSON object") != NULL, "%s",
	    err);
	config_free(&cfg);
}
END_TEST

START_TEST(test_missing_file)
{
	struct config	 cfg;
	char		 err[512], want[512];

	config_defaults(&cfg);
	snprintf(want, sizeof(want), "%s/nope.json", tmpdir);
	ck_assert_int_eq(config_load(&cfg, want, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "nope.json: No such file") != NULL, "%s",
	    err);
	ck_assert_int_eq(config_load(&cfg, tmpdir, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, ": Is a directory") != NULL, "%s", err);
	config_free(&cfg);
}
END_TEST

START_TEST(test_models)
{
	struct config		 cfg;
	const struct model_conf	*m;
	char			 err[512];

	ck_assert_msg(load(&cfg, "{\"models\": {\n"
	    "  \"llama-70b\": {\"memory\": \"40G\", \"idle_timeout\": \"5m\","
	    "    \"command\": [\"big\", \"{path}\", \"{port}\"],"
	    "    \"env\": {\"CUDA_VISIBLE_DEVICES\": \"0,1\", \"_X\": \"\"}},\n"
	    "  \"qwen2.5-7b\": {},\n"
	    "  \"tiny\": {\"idle_timeout\": 0}\n"
	    "}}", err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.nmodels, 3);

	ck_assert_ptr_nonnull(m = config_model(&cfg, "llama-70b"));
	ck_assert_uint_eq(m->memory, 40 * G);
	ck_assert_int_eq(m->idle_timeout_ms, 5 * 60000);
	ck_assert_str_eq(m->command[0], "big");
	ck_assert_ptr_null(m->command[3]);
	ck_assert_str_eq(m->env[0], "CUDA_VISIBLE_DEVICES=0,1");
	ck_assert_str_eq(m->env[1], "_X=");
	ck_assert_ptr_null(m->env[2]);

	ck_assert_ptr_nonnull(m = config_model(&cfg, "qwen2.5-7b"));
	ck_assert_uint_eq(m->memory, 0);
	ck_assert_int_eq(m->idle_timeout_ms, -1);
	ck_assert_ptr_null(m->command);
	ck_assert_ptr_null(m->env);

	ck_assert_ptr_nonnull(m = config_model(&cfg, "tiny"));
	ck_assert_int_eq(m->idle_timeout_ms, 0);
	ck_assert_ptr_null(config_model(&cfg, "llama"));
	config_free(&cfg);
}
END_TEST

/* A second load replaces the first; a failed one changes nothing. */
START_TEST(test_reload)
{
	struct config	 cfg;
	char		 err[512];

	ck_assert_int_eq(load(&cfg, "{\"models\": {\"a\": {}}, "
	    "\"reserved\": \"1G\"}", err, sizeof(err)), 0);
	write_file(confpath, "{\"reserved\": \"2G\", \"bogus\": 1}");
	ck_assert_int_eq(config_load(&cfg, confpath, err, sizeof(err)), -1);
	ck_assert_uint_eq(cfg.reserved, G);
	ck_assert_ptr_nonnull(config_model(&cfg, "a"));
	write_file(confpath, "{\"reserved\": \"2G\"}");
	ck_assert_int_eq(config_load(&cfg, confpath, err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.reserved, 2 * G);
	ck_assert_ptr_null(config_model(&cfg, "a"));
	config_free(&cfg);
	config_free(&cfg);	/* harmless twice */
}
END_TEST

/* Groups by name, by number and as a string of digits; null unsets. */
START_TEST(test_groups)
{
	struct config	 cfg;
	struct group	*gr;
	char		 err[512], text[256], name[128];
	gid_t		 gid;

	ck_assert_ptr_nonnull(gr = getgrgid(getgid()));
	snprintf(name, sizeof(name), "%s", gr->gr_name);
	gid = gr->gr_gid;
	snprintf(text, sizeof(text), "{\"socket_group\": \"%s\", "
	    "\"admin_group\": %u}", name, (unsigned)gid);
	ck_assert_msg(load(&cfg, text, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(cfg.socket_group, name);
	ck_assert_uint_eq(cfg.socket_gid, gid);
	ck_assert_uint_eq(cfg.admin_gid, gid);
	config_free(&cfg);

	ck_assert_msg(load(&cfg, "{\"socket_group\": null, \"admin_group\": "
	    "\"4242\"}", err, sizeof(err)) == 0, "%s", err);
	ck_assert_ptr_null(cfg.socket_group);
	ck_assert_str_eq(cfg.admin_group, "4242");
	ck_assert_uint_eq(cfg.admin_gid, 4242);
	config_free(&cfg);

	ck_assert_int_eq(load(&cfg, "{\"admin_group\": "
	    "\"no-such-group-xyzzy\"}", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "no group named \"no-such-group-xyzzy\"")
	    != NULL, "%s", err);
	config_free(&cfg);
}
END_TEST

START_TEST(test_line_limits)
{
	struct config	 cfg;
	char		 err[512];

	ck_assert_msg(load(&cfg, "{\"max_line_bytes\": \"1K\"}", err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.max_line_bytes, K);
	config_free(&cfg);
	ck_assert_msg(load(&cfg, "{\"max_line_bytes\": 1048576}", err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.max_line_bytes, PROTO_LINE_MAX_BYTES);
	config_free(&cfg);
	ck_assert_int_eq(load(&cfg, "{\"max_line_bytes\": 1048577}", err,
	    sizeof(err)), -1);
	ck_assert_msg(strstr(err, "\"max_line_bytes\": must be from 1K to "
	    "1024K") != NULL, "%s", err);
	config_free(&cfg);
}
END_TEST

/* "auto" is the default: the daemon estimates (memory 0). */
START_TEST(test_model_memory_auto)
{
	struct config		 cfg;
	const struct model_conf	*m;
	char			 err[512];

	ck_assert_msg(load(&cfg, "{\"models\": {\"a\": {\"memory\": "
	    "\"auto\"}, \"b\": {\"memory\": \"2G\"}}}", err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_ptr_nonnull(m = config_model(&cfg, "a"));
	ck_assert_uint_eq(m->memory, 0);
	ck_assert_ptr_nonnull(m = config_model(&cfg, "b"));
	ck_assert_uint_eq(m->memory, 2 * G);
	config_free(&cfg);
}
END_TEST

/* Root's state is under /var/lib; a user's under the XDG state folder. */
START_TEST(test_state_file_default)
{
	struct config	 cfg;
	char		 err[512];

	if (geteuid() == 0) {
		config_defaults(&cfg);
		ck_assert_str_eq(cfg.state_file, "/var/lib/poold/state.json");
		config_free(&cfg);
		return;
	}
	setenv("XDG_STATE_HOME", "/x/state", 1);
	config_defaults(&cfg);
	ck_assert_str_eq(cfg.state_file, "/x/state/poold/state.json");
	config_free(&cfg);
	setenv("XDG_STATE_HOME", "relative", 1);	/* ignored */
	setenv("HOME", "/home/u", 1);
	config_defaults(&cfg);
	ck_assert_str_eq(cfg.state_file,
	    "/home/u/.local/state/poold/state.json");
	config_free(&cfg);
	unsetenv("XDG_STATE_HOME");
	unsetenv("HOME");
	config_defaults(&cfg);
	ck_assert_ptr_null(cfg.state_file);
	config_free(&cfg);
	ck_assert_msg(load(&cfg, "{\"state_file\": null}", err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_ptr_null(cfg.state_file);
	config_free(&cfg);
}
END_TEST

/* --- budget --- */

static const struct {
	uint64_t	 limit, reserved, per_model;
	unsigned	 max;		/* 0: auto */
	int		 rc;
	uint64_t	 budget;
	unsigned	 servers;
} budgets[] = {
	{ 512 * G, 20 * G, 18 * G, 0, 0, 492 * G, 27 },
	{ 192 * G, 20 * G, 18 * G, 0, 0, 172 * G, 9 },
	{ 64 * G, 20 * G, 18 * G, 0, 0, 44 * G, 2 },
	{ 38 * G, 20 * G, 18 * G, 0, 0, 18 * G, 1 },
	{ 64 * G, 20 * G, 18 * G, 7, 0, 44 * G, 7 },
	{ 64 * G, 0, 1 * G, 0, 0, 64 * G, 64 },
	{ 4096 * G, 20 * G, 18 * G, 0, 0, 4076 * G, 100 },  /* 100 ports */
	{ 64 * G, 20 * G, 18 * G, 101, -1, 0, 0 },	/* > 100 ports */
	{ 37 * G, 20 * G, 18 * G, 0, -1, 0, 0 },	/* no model fits */
	{ 16 * G, 20 * G, 18 * G, 0, -1, 0, 0 },	/* reserved > total */
	{ 20 * G, 20 * G, 18 * G, 0, -1, 0, 0 },	/* reserved = total */
};

START_TEST(test_budget)
{
	struct config	 cfg;
	struct budget	 b;
	char		 err[256] = "";

	config_defaults(&cfg);
	cfg.memory_limit_auto = false;
	cfg.memory_limit = budgets[_i].limit;
	cfg.reserved = budgets[_i].reserved;
	cfg.per_model = budgets[_i].per_model;
	cfg.max_servers_auto = budgets[_i].max == 0;
	cfg.max_servers = budgets[_i].max;
	ck_assert_msg(budget_compute(&cfg, &b, err, sizeof(err)) ==
	    budgets[_i].rc, "row %d: %s", _i, err);
	if (budgets[_i].rc == 0) {
		ck_assert_uint_eq(b.total, budgets[_i].limit);
		ck_assert(!b.total_detected);
		ck_assert_uint_eq(b.budget, budgets[_i].budget);
		ck_assert_uint_eq(b.max_servers, budgets[_i].servers);
	} else
		ck_assert(err[0] != '\0');
	config_free(&cfg);
}
END_TEST

START_TEST(test_budget_messages)
{
	struct config	 cfg;
	struct budget	 b;
	char		 err[256];

	config_defaults(&cfg);
	cfg.memory_limit_auto = false;
	cfg.memory_limit = 16 * G;
	ck_assert_int_eq(budget_compute(&cfg, &b, err, sizeof(err)), -1);
	ck_assert_str_eq(err,
	    "reserved 20.0 GiB is more than the total 16.0 GiB");
	cfg.memory_limit = 30 * G;
	ck_assert_int_eq(budget_compute(&cfg, &b, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "no model fits") != NULL, "%s", err);
	config_free(&cfg);
}
END_TEST

START_TEST(test_budget_detected)
{
	struct config	 cfg;
	struct budget	 b;
	char		 err[256];

	config_defaults(&cfg);
	cfg.reserved = 0;
	cfg.per_model = 1;
	ck_assert_msg(budget_compute(&cfg, &b, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert(b.total_detected);
	ck_assert_uint_gt(b.total, 0);
	ck_assert_uint_eq(b.budget, b.total);
	config_free(&cfg);
}
END_TEST

START_TEST(test_budget_print)
{
	struct config	 cfg;
	struct budget	 b;
	char		 err[256], *out = NULL;
	size_t		 len = 0;
	FILE		*fp;

	ck_assert_int_eq(load(&cfg, "{\"memory_limit\": \"512G\", "
	    "\"models\": {\"big\": {\"memory\": \"40G\"}, \"small\": {}, "
	    "\"huge\": {\"memory\": \"1T\"}}}", err, sizeof(err)), 0);
	ck_assert_int_eq(budget_compute(&cfg, &b, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(fp = open_memstream(&out, &len));
	budget_print(&cfg, &b, fp);
	fclose(fp);
	ck_assert_msg(strstr(out, "total memory") != NULL &&
	    strstr(out, "512.0 GiB   (memory_limit)\n") != NULL &&
	    strstr(out, "reserved           20.0 GiB\n") != NULL &&
	    strstr(out, "492.0 GiB   (budget)\n") != NULL &&
	    strstr(out, "per model          18.0 GiB\n") != NULL &&
	    strstr(out, "max servers              27   (auto: budget / "
	    "per model)\n") != NULL &&
	    strstr(out, "model big          40.0 GiB\n") != NULL &&
	    strstr(out, "model huge") != NULL &&
	    strstr(out, "more than the budget") != NULL &&
	    strstr(out, "small") == NULL, "%s", out);
	free(out);
	config_free(&cfg);
}
END_TEST

/* --- platform --- */

START_TEST(test_platform)
{
	uint64_t	 total = 0, avail = 0, rss = 0;

	ck_assert_int_eq(platform_total_memory(&total), 0);
	ck_assert_uint_gt(total, 64 * M);
	ck_assert_int_eq(platform_available_memory(&avail), 0);
	ck_assert_uint_gt(avail, 0);
	ck_assert_uint_le(avail, total);
	ck_assert_int_eq(platform_process_rss(getpid(), &rss), 0);
	ck_assert_uint_gt(rss, 0);
	ck_assert_uint_lt(rss, total);
	ck_assert_int_eq(platform_process_rss(0x7ffffff0, &rss), -1);
}
END_TEST

START_TEST(test_die_with_parent)
{
	pid_t	 parent = getppid();

	ck_assert_int_eq(platform_die_with_parent(parent), 0);
	ck_assert_int_eq(platform_die_with_parent(parent + 100000), -1);
}
END_TEST

/* --- catalog --- */

static const struct { const char *file; const char *name; } names[] = {
	{ "x.gguf", "x" },
	{ "llama-3.1-8b-Q4_K_M.gguf", "llama-3.1-8b-Q4_K_M" },
	{ "x-00001-of-00003.gguf", "x" },
	{ "x-00001-of-00001.gguf", "x" },
	{ "x-00002-of-00003.gguf", NULL },
	{ "x-00003-of-00003.gguf", NULL },
	{ "-00001-of-00003.gguf", NULL },	/* no name left */
	{ "x-0001-of-00003.gguf", "x-0001-of-00003" },
	{ "x-00001-of-0003.gguf", "x-00001-of-0003" },
	{ "x-00002-0f-00003.gguf", "x-00002-0f-00003" },
	{ ".x.gguf", NULL },
	{ ".gguf", NULL },
	{ "gguf", NULL },
	{ "x.gguf.part", NULL },
	{ "x.GGUF", NULL },
	{ "x.bin", NULL },
	{ "x", NULL },
	{ "", NULL },
	{ "a-name-that-is-too-long-for-the-buffer.gguf", NULL },
};

START_TEST(test_model_name)
{
	char	 buf[32] = "";
	int	 rc = catalog_model_name(names[_i].file, buf, sizeof(buf));

	if (names[_i].name == NULL)
		ck_assert_msg(rc == -1, "\"%s\" gave \"%s\"", names[_i].file,
		    buf);
	else {
		ck_assert_msg(rc == 0, "\"%s\" refused", names[_i].file);
		ck_assert_str_eq(buf, names[_i].name);
	}
}
END_TEST

struct found {
	char	 seen[512];
	int	 n;
};

static void
found_cb(void *ctx, const char *name, const char *path)
{
	struct found	*f = ctx;
	const char	*slash = strrchr(path, '/');

	ck_assert_ptr_nonnull(slash);
	ck_assert_int_eq(strncmp(path, tmpdir, strlen(tmpdir)), 0);
	strncat(f->seen, " ", sizeof(f->seen) - strlen(f->seen) - 1);
	strncat(f->seen, name, sizeof(f->seen) - strlen(f->seen) - 1);
	strncat(f->seen, "=", sizeof(f->seen) - strlen(f->seen) - 1);
	strncat(f->seen, slash + 1, sizeof(f->seen) - strlen(f->seen) - 1);
	f->n++;
}

START_TEST(test_scan)
{
	static const char *files[] = {
		"a.gguf", "b-00001-of-00002.gguf", "b-00002-of-00002.gguf",
		".hidden.gguf", "notes.txt", "c.gguf.tmp", NULL
	};
	struct found	 f = { "", 0 };
	char		 path[256], err[256];
	int		 i;

	for (i = 0; files[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		write_file(path, "GGUF");
	}
	snprintf(path, sizeof(path), "%s/dir.gguf", tmpdir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/link.gguf", tmpdir);
	ck_assert_int_eq(symlink("a.gguf", path), 0);
	snprintf(path, sizeof(path), "%s/dangling.gguf", tmpdir);
	ck_assert_int_eq(symlink("nowhere.gguf", path), 0);
	snprintf(path, sizeof(path), "%s/dirlink.gguf", tmpdir);
	ck_assert_int_eq(symlink("dir.gguf", path), 0);

	ck_assert_int_eq(catalog_scan(tmpdir, found_cb, &f, err,
	    sizeof(err)), 0);
	ck_assert_msg(f.n == 3, "found:%s", f.seen);
	ck_assert_msg(strstr(f.seen, " a=a.gguf") != NULL, "%s", f.seen);
	ck_assert_msg(strstr(f.seen, " b=b-00001-of-00002.gguf") != NULL,
	    "%s", f.seen);
	ck_assert_msg(strstr(f.seen, " link=link.gguf") != NULL, "%s",
	    f.seen);

	snprintf(path, sizeof(path), "%s/absent", tmpdir);
	ck_assert_int_eq(catalog_scan(path, found_cb, &f, err, sizeof(err)),
	    -1);
	ck_assert_msg(strstr(err, "absent: No such file") != NULL, "%s", err);
}
END_TEST

/* --- log --- */

/* Runs fn with stderr going to a file; returns what it wrote. */
static char *
capture_stderr(void (*fn)(void))
{
	static char	 out[16384];
	char		 path[256];
	ssize_t		 n;
	int		 fd, saved;

	snprintf(path, sizeof(path), "%s/stderr", tmpdir);
	ck_assert_int_ne(fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600),
	    -1);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_int_ne(n = pread(fd, out, sizeof(out) - 1, 0), -1);
	out[n] = '\0';
	close(fd);
	return out;
}

static void
log_some(void)
{
	char	 big[8000];

	log_init("poold", false);
	errno = ENOENT;
	log_warn("open %s", "x");
	ck_assert_int_eq(errno, ENOENT);
	log_warnx("two\nlines");
	log_debug("hidden");
	log_init("poold", true);
	log_debug("shown %d", 7);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
	errno = EINTR;
	log_info("ok");
	ck_assert_int_eq(errno, EINTR);
}

START_TEST(test_log)
{
	char	*out = capture_stderr(log_some), *line, *nl, head[64];
	int	 lines = 0;

	snprintf(head, sizeof(head), " poold[%ld]: ", (long)getpid());
	for (line = out; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		lines++;
		/* 2026-11-27T14:47:33.123Z */
		ck_assert_msg(strlen(line) > 24 && line[4] == '-' &&
		    line[10] == 'T' && line[19] == '.' && line[23] == 'Z',
		    "bad stamp: %s", line);
		ck_assert_msg(strncmp(line + 24, head, strlen(head)) == 0,
		    "%s", line);
		ck_assert_uint_lt(strlen(line), 4096);
	}
	ck_assert_str_eq(line, "");
	ck_assert_int_eq(lines, 5);
	out[0] = '\0';
}
END_TEST

START_TEST(test_log_text)
{
	char	*out = capture_stderr(log_some);

	ck_assert_msg(strstr(out, "]: open x: No such file or directory\n")
	    != NULL, "%s", out);
	ck_assert_msg(strstr(out, "]: two?lines\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "hidden") == NULL, "%s", out);
	ck_assert_msg(strstr(out, "]: shown 7\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "aaaa\n") != NULL, "%s", out);
}
END_TEST

/* Exits, so no fixture: teardown would not run. */
START_TEST(test_fatalx)
{
	int	 fd;

	ck_assert_int_ne(fd = open("/dev/null", O_WRONLY), -1);
	dup2(fd, STDERR_FILENO);
	fatalx("bad %s", "thing");
}
END_TEST

/* --- main --- */

static Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc;

#define N(a)	((int)(sizeof(a) / sizeof((a)[0])))
	tc = tcase_create("values");
	tcase_add_loop_test(tc, test_parse_size, 0, N(sizes));
	tcase_add_loop_test(tc, test_parse_duration, 0, N(durations));
	tcase_add_loop_test(tc, test_format_size, 0, N(formats));
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_all_keys);
	tcase_add_test(tc, test_alternatives);
	tcase_add_loop_test(tc, test_bad_value, 0, N(bad));
	tcase_add_test(tc, test_command_without_port);
	tcase_add_test(tc, test_ports_message);
	tcase_add_test(tc, test_unknown_key);
	tcase_add_test(tc, test_duplicate_key);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_models);
	tcase_add_test(tc, test_reload);
	tcase_add_test(tc, test_groups);
	tcase_add_test(tc, test_line_limits);
	tcase_add_test(tc, test_model_memory_auto);
	tcase_add_test(tc, test_state_file_default);
	suite_add_tcase(s, tc);

	tc = tcase_create("budget");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_budget, 0, N(budgets));
	tcase_add_test(tc, test_budget_messages);
	tcase_add_test(tc, test_budget_detected);
	tcase_add_test(tc, test_budget_print);
	suite_add_tcase(s, tc);

	tc = tcase_create("platform");
	tcase_add_test(tc, test_platform);
	tcase_add_test(tc, test_die_with_parent);
	suite_add_tcase(s, tc);

	tc = tcase_create("catalog");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_model_name, 0, N(names));
	tcase_add_test(tc, test_scan);
	suite_add_tcase(s, tc);

	tc = tcase_create("log");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_log);
	tcase_add_test(tc, test_log_text);
	suite_add_tcase(s, tc);

	/* exit tests need check's fork mode */
	if (getenv("CK_FORK") == NULL || strcmp(getenv("CK_FORK"), "no") != 0) {
		tc = tcase_create("fatal");
		tcase_add_exit_test(tc, test_fatalx, 1);
		suite_add_tcase(s, tc);
	}
#undef N
	return s;
}

int
main(void)
{
	return tl_run(config_suite(), CK_NORMAL);
}
