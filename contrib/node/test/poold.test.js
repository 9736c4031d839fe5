'use strict';
/*
 * The client against the real poold (POOLD_BIN, default build/poold) with
 * stand-in servers (FAKELLAMA_BIN, default build/fakellama).  Skipped with a
 * note when they are not built; tests/t_node.sh insists that they are.
 */

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const {
	PoolClient, getModelEndpoint, getModelTarget, acquireEndpoint,
	closeDefaultClients,
} = require('..');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const POOLD_BIN = path.resolve(process.env.POOLD_BIN || path.join(ROOT, 'build', 'poold'));
const FAKELLAMA_BIN = path.resolve(process.env.FAKELLAMA_BIN ||
    path.join(ROOT, 'build', 'fakellama'));
const FALLBACK = 'http://127.0.0.1:11434/v1/chat/completions';

function executable(p) {
	try {
		fs.accessSync(p, fs.constants.X_OK);
		return fs.statSync(p).isFile();
	} catch {
		return false;
	}
}

const missing = [POOLD_BIN, FAKELLAMA_BIN].filter((p) => !executable(p));
const SKIP = missing.length ? `not built: ${missing.join(', ')}` : false;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, cond, ms) {
	const end = Date.now() + ms;
	for (;;) {
		if (await cond())
			return;
		if (Date.now() > end)
			throw new Error(`timed out after ${ms} ms waiting for ${what}`);
		await sleep(20);
	}
}

function canConnect(p) {
	return new Promise((resolve) => {
		const s = net.createConnection({ path: p });
		s.once('connect', () => { s.destroy(); resolve(true); });
		s.once('error', () => resolve(false));
	});
}

/* pids whose command line mentions needle (not this process). */
function procsMatching(needle) {
	const out = [];
	if (fs.existsSync('/proc/self/cmdline')) {
		for (const d of fs.readdirSync('/proc')) {
			if (!/^\d+$/.test(d) || Number(d) === process.pid)
				continue;
			let cmd;
			try {
				cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
			} catch {
				continue;
			}
			if (cmd.includes(needle))
				out.push({ pid: Number(d), cmd: cmd.split('\0').join(' ').trim() });
		}
		return out;
	}
	try {
		const txt = execFileSync('pgrep', ['-fl', needle], { encoding: 'utf8' });
		for (const line of txt.split('\n').filter(Boolean)) {
			const pid = Number(line.split(' ')[0]);
			if (pid !== process.pid)
				out.push({ pid, cmd: line });
		}
	} catch { /* pgrep exits 1 when nothing matches */ }
	return out;
}

function alive(pid) {
	try {
		process.kill(pid, 0);
		return true;
	} catch (e) {
		return e.code === 'EPERM';
	}
}

/* The test's pool: a temp folder with config, models and socket. */
class Pool {
	static made = 0;

	/* extra: more keys of poold.json. */
	constructor(extra) {
		const base = process.env.POOLD_TEST_TMPDIR || os.tmpdir();
		this.dir = fs.mkdtempSync(path.join(base, 'pnt-'));
		this.sock = path.join(this.dir, 'poold.sock');
		this.models = path.join(this.dir, 'models');
		this.conf = path.join(this.dir, 'poold.json');
		// This test's own ports, 32200-32399 (tests/testlib.c: the C
		// suites lock slots below 32000, which may run beside it); two
		// slots, so that a Pool never starts on its stopping one's.
		this.portMin = 32200 + (Pool.made++ % 2) * 100;
		this.portMax = this.portMin + 99;
		this.proc = null;
		this.log = '';
		fs.mkdirSync(this.models);
		for (const [name, body] of Object.entries({
			alpha: 'load_ms=100\nmem=8M\n',
			beta: 'load_ms=150\nmem=8M\n',
			gamma: 'load_ms=200\nmem=8M\n',
		}))
			fs.writeFileSync(path.join(this.models, `${name}.gguf`), body);
		fs.writeFileSync(this.conf, JSON.stringify({
			socket: this.sock,
			state_file: path.join(this.dir, 'state.json'),
			models_dir: this.models,
			command: [FAKELLAMA_BIN, '-m', '{path}', '--host', '127.0.0.1',
			    '--port', '{port}'],
			memory_limit: '256M',
			reserved: '0',
			per_model: '32M',
			ports: [this.portMin, this.portMax],
			idle_timeout: '5m',
			stop_timeout: '2s',
			...(extra || {}),
		}, null, 2));
	}

	async start() {
		const proc = spawn(POOLD_BIN, ['-f', this.conf], {
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		this.proc = proc;
		const keep = (d) => { this.log = (this.log + d).slice(-20000); };
		proc.stdout.on('data', keep);
		proc.stderr.on('data', keep);
		proc.exited = new Promise((r) => proc.once('exit', (code, sig) => r({ code, sig })));
		let gone = null;
		proc.exited.then((x) => { gone = x; });
		try {
			await waitFor('poold to accept on its socket', async () => {
				if (gone)
					throw new Error(`poold exited (${JSON.stringify(gone)}) before accepting:\n${this.log}`);
				return canConnect(this.sock);
			}, 15000);
		} catch (e) {
			await this.stop();
			throw e;
		}
	}

	/* SIGTERM; SIGKILL if it has not exited in 15 s. */
	async stop() {
		const proc = this.proc;
		if (!proc)
			return;
		this.proc = null;
		if (proc.exitCode !== null || proc.signalCode !== null)
			return proc.exited;
		proc.kill('SIGTERM');
		const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
		const r = await proc.exited;
		clearTimeout(t);
		return r;
	}

	leftovers() {
		return procsMatching(this.dir + '/');
	}

	async cleanup() {
		await this.stop();
		/* Whatever is still around was started by this test: end it by pid. */
		const left = this.leftovers();
		for (const p of left) {
			try {
				process.kill(p.pid, 'SIGKILL');
			} catch { /* gone */ }
		}
		fs.rmSync(this.dir, { recursive: true, force: true });
		return left;
	}
}

function serverOf(stats, model) {
	return (stats.servers || []).find((s) => s.model === model);
}

describe('against a real poold', { skip: SKIP }, () => {
	let pool;
	let client;

	before(async () => {
		pool = new Pool();
		await pool.start();
		client = new PoolClient({ socketPath: pool.sock,
		    reconnect: { minMs: 50, maxMs: 400 } });
	});

	after(async () => {
		if (client)
			await client.close();
		await closeDefaultClients();
		if (pool) {
			const left = await pool.cleanup();
			assert.deepEqual(left, [], 'processes left behind after SIGTERM to poold');
		}
	});

	it('answers PING', async () => {
		const r = await client.ping();
		assert.equal(typeof r.version, 'string');
	});

	it('acquires (cold, then warm) and releases', async () => {
		const a = await client.acquire('alpha', { timeoutMs: 20000 });
		assert.equal(a.model, 'alpha');
		assert.ok(a.port >= pool.portMin && a.port <= pool.portMax, `port ${a.port}`);
		assert.equal(a.endpoint, `http://127.0.0.1:${a.port}`);
		assert.equal(typeof a.lease, 'number');
		assert.equal(a.cold, true);
		assert.equal(a.alive, true);
		const s = await client.stats();
		const srv = serverOf(s, 'alpha');
		assert.ok(srv, `alpha in STATS: ${JSON.stringify(s.servers)}`);
		if ('leases' in srv)
			assert.equal(srv.leases, 1);
		await a.release();
		await a.release();	/* idempotent */
		assert.equal(a.alive, false);
		const again = await client.acquire('alpha', { timeoutMs: 20000 });
		assert.equal(again.cold, false);
		assert.equal(again.port, a.port);
		await again.release();
		const s2 = await client.stats();
		const srv2 = serverOf(s2, 'alpha');
		if (srv2 && 'leases' in srv2)
			assert.equal(srv2.leases, 0);
	});

	it('answers pipelined concurrent acquires on one connection', async () => {
		const ls = await Promise.all([
			client.acquire('beta', { timeoutMs: 20000 }),
			client.acquire('gamma', { timeoutMs: 20000 }),
			client.acquire('beta', { timeoutMs: 20000 }),
			client.acquire('alpha', { timeoutMs: 20000, hold: false }),
		]);
		assert.deepEqual(ls.map((l) => l.model), ['beta', 'gamma', 'beta', 'alpha']);
		assert.equal(ls[0].port, ls[2].port, 'one server per model');
		assert.notEqual(ls[0].port, ls[1].port);
		assert.notEqual(ls[0].lease, ls[2].lease);
		assert.equal(ls[3].lease, null);
		assert.equal(client.leaseCount, 3);
		await Promise.all(ls.map((l) => l.release()));
		assert.equal(client.leaseCount, 0);
	});

	it('withModel releases the lease when fn throws', async () => {
		let seen;
		await assert.rejects(client.withModel('beta', (l) => {
			seen = l;
			throw new Error('bot failed');
		}, { timeoutMs: 20000 }), /bot failed/);
		assert.equal(seen.alive, false);
		assert.equal(client.leaseCount, 0);
		const srv = serverOf(await client.stats(), 'beta');
		assert.ok(srv);
		if ('leases' in srv)
			assert.equal(srv.leases, 0);
	});

	it('serves a real chat completion at the URL getModelEndpoint gives', async () => {
		const url = await getModelEndpoint('gamma', FALLBACK, { socketPath: pool.sock });
		assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions$/);
		const res = await fetch(url, {
			method: 'POST',
			headers: { 'content-type': 'application/json' },
			body: JSON.stringify({ model: 'gamma',
			    messages: [{ role: 'user', content: 'hello' }] }),
		});
		const body = await res.text();
		assert.equal(res.status, 200, body);
	});

	it('acquireEndpoint holds a lease until release()', async () => {
		const e = await acquireEndpoint('alpha', FALLBACK, { socketPath: pool.sock });
		assert.equal(e.pooled, true);
		assert.match(e.url, /\/v1\/chat\/completions$/);
		assert.equal(e.lease.alive, true);
		await e.release();
		assert.equal(e.lease.alive, false);
	});

	it('getModelEndpoint falls back for an unknown model', async () => {
		const warn = [];
		const url = await getModelEndpoint('no-such-model', FALLBACK, {
			socketPath: pool.sock, logger: { warn: (m) => warn.push(m) } });
		assert.equal(url, FALLBACK);
		assert.deepEqual(warn, []);
	});

	it('reports stats, models and evicts', async () => {
		const s = await client.stats();
		assert.equal(typeof s.memory, 'object');
		assert.ok(Array.isArray(s.servers));
		assert.equal(typeof s.counters, 'object');
		assert.ok(s.servers.length >= 3, JSON.stringify(s.servers));
		const ms = await client.models();
		assert.deepEqual(ms.map((m) => m.model).sort(), ['alpha', 'beta', 'gamma']);
		const ev = await client.evict('gamma');
		assert.equal(ev.model, 'gamma');
		assert.ok(!serverOf(await client.stats(), 'gamma'), 'gamma gone after EVICT');
	});

	it('reports a lease whose server died as lease_lost', async () => {
		const l = await client.acquire('beta', { timeoutMs: 20000 });
		assert.ok(Number.isSafeInteger(l.lease) && l.lease > 2 ** 32,
		    `lease id ${l.lease}: a random epoch above 2^32, below 2^53`);
		const st = await l.check();
		assert.equal(st.lease, l.lease);
		assert.equal(st.port, l.port);
		assert.equal(st.state, 'ready');
		const pid = serverOf(await client.stats(), 'beta').pid;
		process.kill(pid, 'SIGKILL');
		await waitFor('beta to be reaped', async () =>
		    !serverOf(await client.stats(), 'beta'), 10000);
		await assert.rejects(l.check(), (e) => {
			assert.equal(e.code, 'lease_lost');
			assert.match(e.message, /signal 9/);
			assert.match(e.message, new RegExp(`port ${l.port}\\b`));
			return true;
		});
		assert.equal(l.alive, false);
		assert.equal(l.signal.aborted, true);
		/* The port is kept for the lease: no other model gets it. */
		const other = await client.acquire('gamma', { timeoutMs: 20000, hold: false });
		assert.notEqual(other.port, l.port);
		await assert.rejects(l.release(), { code: 'lease_lost' });
		assert.equal(serverOf(await client.stats(), 'beta'), undefined);
	});

	it('survives a poold restart: leases are lost, the client reconnects', async () => {
		const held = await client.acquire('alpha', { timeoutMs: 20000 });
		const pids = (await client.stats()).servers.map((s) => s.pid)
		    .filter((p) => Number.isInteger(p) && p > 0);
		let lost = -1;
		client.once('disconnect', (err, info) => { lost = info.leasesLost; });

		await pool.stop();
		await waitFor('the client to notice', () => lost >= 0, 5000);
		assert.equal(lost, 1);
		assert.equal(held.alive, false);
		assert.equal(held.signal.aborted, true);
		await held.release();	/* a no-op, no throw */
		for (const pid of pids)
			assert.equal(alive(pid), false, `server pid ${pid} outlived poold`);
		assert.deepEqual(pool.leftovers(), []);

		/* poold is down: the fallback, quickly. */
		const t0 = Date.now();
		assert.equal(await getModelEndpoint('alpha', FALLBACK, { socketPath: pool.sock }),
		    FALLBACK);
		assert.equal(await getModelEndpoint('alpha', FALLBACK, { client }), FALLBACK);
		assert.ok(Date.now() - t0 < 3000, `fallback took ${Date.now() - t0} ms`);

		await pool.start();
		await waitFor('the client to reconnect', () => client.connected, 10000);
		assert.equal(typeof (await client.ping()).version, 'string');
		/* A new server: started for this request, or preloaded by the
		 * new poold ("preload" defaults to the 4 most used). */
		const a = await client.acquire('alpha', { timeoutMs: 20000 });
		const now = serverOf(await client.stats(), 'alpha');
		assert.ok(now !== undefined && !pids.includes(now.pid),
		    `a new poold starts a new server (pid ${now && now.pid}, old ${pids})`);
		await a.release();
		await waitFor('getModelEndpoint to use poold again', async () =>
		    (await getModelEndpoint('alpha', FALLBACK, { socketPath: pool.sock })) !== FALLBACK,
		    10000);
	});
});

describe('with "api_keys": true', { skip: SKIP }, () => {
	let pool;
	let client;
	const chat = (model) => ({
		method: 'POST',
		headers: { 'content-type': 'application/json' },
		body: JSON.stringify({ model,
		    messages: [{ role: 'user', content: 'hello' }] }),
	});

	before(async () => {
		pool = new Pool({ api_keys: true,
		    command: [FAKELLAMA_BIN, '-m', '{path}', '--host', '{host}',
			'--port', '{port}'] });
		await pool.start();
		client = new PoolClient({ socketPath: pool.sock, reconnect: false });
	});

	after(async () => {
		if (client)
			await client.close();
		await closeDefaultClients();
		if (pool) {
			const left = await pool.cleanup();
			assert.deepEqual(left, [], 'processes left behind after SIGTERM to poold');
		}
	});

	it('gives the key with the lease; the server wants it', async () => {
		const l = await client.acquire('alpha', { timeoutMs: 20000 });
		assert.match(l.apiKey, /^[0-9a-f]{64}$/);
		assert.equal(l.node, null);
		assert.deepEqual(l.headers(), { authorization: `Bearer ${l.apiKey}` });
		const bare = await fetch(l.url(), chat('alpha'));
		assert.equal(bare.status, 401);
		assert.equal((await bare.json()).error.type, 'authentication_error');
		const res = await l.fetch(undefined, chat('alpha'));
		assert.equal(res.status, 200, await res.clone().text());
		const st = await l.check();
		assert.equal(st.api_key, l.apiKey);
		await l.release();
	});

	it('getModelTarget and acquireEndpoint carry the headers', async () => {
		const t = await getModelTarget('beta', FALLBACK, { socketPath: pool.sock });
		assert.equal(t.pooled, true);
		assert.match(t.apiKey, /^[0-9a-f]{64}$/);
		const init = chat('beta');
		init.headers = { ...init.headers, ...t.headers };
		assert.equal((await fetch(t.url, init)).status, 200);
		const e = await acquireEndpoint('beta', FALLBACK, { socketPath: pool.sock });
		assert.equal(e.apiKey, t.apiKey, 'one server, one key');
		assert.deepEqual(e.headers, t.headers);
		await e.release();
		/* The fallback (Ollama's) needs no key. */
		const f = await getModelTarget('no-such-model', FALLBACK, { socketPath: pool.sock });
		assert.deepEqual(f, { url: FALLBACK, headers: {}, apiKey: null, pooled: false });
	});

	it('a new start has a new key', async () => {
		const a = await client.acquire('gamma', { timeoutMs: 20000, hold: false });
		await client.evict('gamma');
		const b = await client.acquire('gamma', { timeoutMs: 20000, hold: false });
		assert.equal(b.cold, true);
		assert.match(b.apiKey, /^[0-9a-f]{64}$/);
		assert.notEqual(a.apiKey, b.apiKey);
	});
});
