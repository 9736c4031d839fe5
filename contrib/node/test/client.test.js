'use strict';
/*
 * The client against a tiny fake poold written here: framing, id matching,
 * timeouts, disconnects and the fallback rules, without the real daemon.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const {
	PoolClient, PoolError, getModelEndpoint, acquireEndpoint,
	defaultSocketPath, getDefaultClient, closeDefaultClients,
} = require('..');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'poold-node-'));
let nsock = 0;
const sockPath = () => path.join(tmp, `f${++nsock}.sock`);

test.after(async () => {
	await closeDefaultClients();
	fs.rmSync(tmp, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/*
 * A fake poold.  handler(req, conn) is called for each request line;
 * conn.reply(obj) writes one reply line, conn.raw(str) writes bytes as
 * they are.  Every request is recorded in server.requests.
 */
async function fakePoold(handler, where) {
	const p = where || sockPath();
	const conns = new Set();
	const requests = [];
	const server = net.createServer((sock) => {
		const conn = {
			sock,
			reply: (obj) => { if (!sock.destroyed) sock.write(JSON.stringify(obj) + '\n'); },
			raw: (s) => { if (!sock.destroyed) sock.write(s); },
		};
		conns.add(conn);
		sock.on('close', () => conns.delete(conn));
		sock.on('error', () => {});
		let buf = '';
		sock.setEncoding('utf8');
		sock.on('data', (d) => {
			buf += d;
			let i;
			while ((i = buf.indexOf('\n')) !== -1) {
				const line = buf.slice(0, i);
				buf = buf.slice(i + 1);
				const req = JSON.parse(line);
				requests.push(req);
				handler(req, conn);
			}
		});
	});
	await new Promise((res, rej) => {
		server.once('error', rej);
		server.listen(p, res);
	});
	return {
		path: p,
		requests,
		conns,
		dropAll() { for (const c of conns) c.sock.destroy(); },
		async close() {
			for (const c of conns)
				c.sock.destroy();
			await new Promise((r) => server.close(r));
			fs.rmSync(p, { force: true });
		},
	};
}

/* A handler that acquires anything on port 9000+n with lease n. */
function simpleHandler() {
	let n = 0;
	return (req, conn) => {
		switch (req.cmd) {
		case 'ACQUIRE': {
			n++;
			const r = { ok: true, id: req.id, model: req.model, port: 9000 + n,
			    endpoint: `http://127.0.0.1:${9000 + n}`, cold: false, wait_ms: 0 };
			if (req.hold !== false)
				r.lease = n;
			conn.reply(r);
			break;
		}
		case 'RELEASE':
			conn.reply({ ok: true, id: req.id });
			break;
		case 'PING':
			conn.reply({ ok: true, id: req.id, version: '0.1.0' });
			break;
		case 'STATS':
			conn.reply({ ok: true, id: req.id, memory: { budget: 1 },
			    servers: [], counters: { acquires: n } });
			break;
		case 'MODELS':
			conn.reply({ ok: true, id: req.id, models: [{ model: 'a', state: 'idle' }] });
			break;
		case 'EVICT':
			conn.reply({ ok: true, id: req.id, model: req.model, freed: 0 });
			break;
		default:
			conn.reply({ ok: false, id: req.id, error: 'unknown_command', message: 'no' });
		}
	};
}

test('default socket path follows POOLD_SOCKET, XDG_RUNTIME_DIR, /tmp', () => {
	assert.equal(defaultSocketPath({ POOLD_SOCKET: '/x/y.sock' }), '/x/y.sock');
	if (process.getuid() === 0) {
		assert.equal(defaultSocketPath({}), '/run/poold/poold.sock');
	} else {
		assert.equal(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/5' }),
		    '/run/user/5/poold/poold.sock');
		assert.equal(defaultSocketPath({}), `/tmp/poold-${process.getuid()}/poold.sock`);
	}
});

test('requests carry integer ids and the commands fields', async () => {
	const srv = await fakePoold(simpleHandler());
	const c = new PoolClient({ socketPath: srv.path });
	try {
		assert.deepEqual(await c.ping(), { version: '0.1.0' });
		const l = await c.acquire('m1', { timeoutMs: 5000 });
		assert.equal(l.model, 'm1');
		assert.equal(l.endpoint, 'http://127.0.0.1:9001');
		assert.equal(l.port, 9001);
		assert.equal(l.lease, 1);
		assert.equal(l.alive, true);
		assert.equal(l.url(), 'http://127.0.0.1:9001/v1/chat/completions');
		const s = await c.stats();
		assert.deepEqual(s.counters, { acquires: 1 });
		assert.equal(s.ok, undefined);
		assert.deepEqual(await c.models(), [{ model: 'a', state: 'idle' }]);
		assert.deepEqual(await c.evict('m1', { force: true }), { model: 'm1', freed: 0 });
		await l.release();
		const [ping, acq, , , evict, rel] = srv.requests;
		assert.ok(Number.isInteger(ping.id));
		assert.equal(acq.cmd, 'ACQUIRE');
		assert.equal(acq.timeout_ms, 5000);
		assert.equal(acq.hold, true);
		assert.equal(evict.force, true);
		assert.deepEqual({ cmd: rel.cmd, lease: rel.lease }, { cmd: 'RELEASE', lease: 1 });
		assert.equal(new Set(srv.requests.map((r) => r.id)).size, srv.requests.length);
		assert.equal(srv.conns.size, 1, 'one persistent connection');
	} finally {
		await c.close();
		await srv.close();
	}
});

test('pipelined requests are matched by id when answered out of order', async () => {
	const held = [];
	const srv = await fakePoold((req, conn) => {
		held.push([req, conn]);
		if (held.length < 4)
			return;
		/* Answer all four in reverse order, in one write. */
		let out = '';
		for (const [r] of held.reverse()) {
			if (r.cmd === 'PING')
				out += JSON.stringify({ ok: true, id: r.id, version: 'v' }) + '\n';
			else
				out += JSON.stringify({ ok: true, id: r.id, model: r.model,
				    port: Number(r.model.slice(1)), lease: r.id,
				    endpoint: `http://127.0.0.1:${r.model.slice(1)}`,
				    cold: true, wait_ms: 7 }) + '\n';
		}
		conn.raw(out);
	});
	const c = new PoolClient({ socketPath: srv.path });
	try {
		const [a, b, p, d] = await Promise.all([
			c.acquire('p101'), c.acquire('p102'), c.ping(), c.acquire('p103'),
		]);
		assert.equal(a.port, 101);
		assert.equal(b.port, 102);
		assert.equal(d.port, 103);
		assert.equal(p.version, 'v');
		assert.equal(a.cold, true);
		assert.equal(a.waitMs, 7);
		assert.equal(c.leaseCount, 3);
	} finally {
		await c.close();
		await srv.close();
	}
});

test('replies split anywhere, CRLF and multi-byte UTF-8 are framed right', async () => {
	const srv = await fakePoold((req, conn) => {
		const a = Buffer.from(JSON.stringify({ ok: false, id: req.id,
		    error: 'busy', message: 'plein — ✓ 满' }) + '\r\n');
		/* One byte per write, with pauses, so UTF-8 characters split. */
		(async () => {
			for (let i = 0; i < a.length; i++) {
				conn.sock.write(a.subarray(i, i + 1));
				if (i % 7 === 0)
					await sleep(1);
			}
		})();
	});
	const c = new PoolClient({ socketPath: srv.path });
	try {
		await assert.rejects(c.acquire('x'), (e) => {
			assert.ok(e instanceof PoolError);
			assert.equal(e.code, 'busy');
			assert.equal(e.message, 'plein — ✓ 满');
			assert.equal(e.reply.error, 'busy');
			return true;
		});
	} finally {
		await c.close();
		await srv.close();
	}
});

test('a reply line over maxLineBytes drops the connection', async () => {
	const srv = await fakePoold((req, conn) => {
		if (req.cmd === 'PING' && srv.requests.length === 1)
			conn.raw('{"ok":true,"id":' + req.id + ',"pad":"' + 'x'.repeat(5000));
		else
			conn.reply({ ok: true, id: req.id, version: 'again' });
	});
	const c = new PoolClient({ socketPath: srv.path, maxLineBytes: 1024 });
	try {
		await assert.rejects(c.ping(), (e) => {
			assert.equal(e.code, 'disconnected');
			assert.match(e.message, /longer than 1024/);
			return true;
		});
		/* It reconnects on its own and works again. */
		await waitFor(() => c.connected, 3000);
		assert.equal((await c.ping()).version, 'again');
	} finally {
		await c.close();
		await srv.close();
	}
});

test('a reply that is not JSON drops the connection; one naming no server is refused', async () => {
	let n = 0;
	const srv = await fakePoold((req, conn) => {
		n++;
		if (n === 1)
			conn.raw('this is not json\n');
		else if (req.cmd === 'ACQUIRE')
			conn.reply({ ok: true, id: req.id, model: req.model, lease: 5 });
		else
			conn.reply({ ok: true, id: req.id, version: 'v' });
	});
	const c = new PoolClient({ socketPath: srv.path, reconnect: { minMs: 10, maxMs: 50 } });
	try {
		await assert.rejects(c.ping(), (e) => {
			assert.equal(e.code, 'disconnected');
			assert.match(e.message, /not JSON/);
			return true;
		});
		await waitFor(() => c.connected, 3000);
		await assert.rejects(c.acquire('m'), { code: 'internal' });
		await waitFor(() => srv.requests.some((r) => r.cmd === 'RELEASE' && r.lease === 5), 2000);
		assert.equal(c.leaseCount, 0);
	} finally {
		await c.close();
		await srv.close();
	}
});

test('a request with no answer times out; a late lease is given back', async () => {
	let late = null;
	const srv = await fakePoold((req, conn) => {
		if (req.cmd === 'ACQUIRE')
			late = () => conn.reply({ ok: true, id: req.id, model: req.model,
			    port: 1, endpoint: 'http://127.0.0.1:1', lease: 42 });
		else if (req.cmd === 'RELEASE')
			conn.reply({ ok: true, id: req.id });
		/* PING: never answered */
	});
	const c = new PoolClient({ socketPath: srv.path, requestTimeoutMs: 150 });
	try {
		const t0 = Date.now();
		await assert.rejects(c.ping(), { code: 'timeout' });
		assert.ok(Date.now() - t0 < 2000);
		await assert.rejects(c.acquire('m', { timeoutMs: 100 }), { code: 'timeout' });
		late();
		await waitFor(() => srv.requests.some((r) => r.cmd === 'RELEASE'), 2000);
		assert.equal(srv.requests.find((r) => r.cmd === 'RELEASE').lease, 42);
		assert.equal(c.connected, true, 'a timeout does not drop the connection');
	} finally {
		await c.close();
		await srv.close();
	}
});

test('a dropped connection fails requests in flight and kills leases', async () => {
	const h = simpleHandler();
	const srv = await fakePoold((req, conn) => {
		if (req.cmd !== 'PING')
			h(req, conn);	/* PING: left unanswered */
	});
	const c = new PoolClient({ socketPath: srv.path, reconnect: { minMs: 20, maxMs: 100 } });
	try {
		const l = await c.acquire('m');
		const events = [];
		c.on('disconnect', (err, info) => events.push([err.code, info.leasesLost]));
		const ping = c.ping();
		await waitFor(() => srv.requests.some((r) => r.cmd === 'PING'), 2000);
		srv.dropAll();
		await assert.rejects(ping, { code: 'disconnected' });
		assert.deepEqual(events, [['disconnected', 1]]);
		assert.equal(l.alive, false);
		assert.equal(l.signal.aborted, true);
		assert.equal(c.leaseCount, 0);
		const n = srv.requests.length;
		await l.release();
		await l.release();
		assert.equal(srv.requests.length, n, 'release of a lost lease sends nothing');
		/* Reconnected in the background; the next request goes through. */
		await waitFor(() => c.connected, 3000);
		const l2 = await c.acquire('m');
		assert.equal(l2.alive, true);
	} finally {
		await c.close();
		await srv.close();
	}
});

test('release() is idempotent and sends one RELEASE', async () => {
	const srv = await fakePoold(simpleHandler());
	const c = new PoolClient({ socketPath: srv.path });
	try {
		const l = await c.acquire('m');
		const p1 = l.release();
		const p2 = l.release();
		assert.equal(p1, p2);
		await p1;
		await l.release();
		assert.equal(srv.requests.filter((r) => r.cmd === 'RELEASE').length, 1);
		const free = await c.acquire('m', { hold: false });
		assert.equal(free.lease, null);
		assert.equal(srv.requests.at(-1).hold, false);
		await free.release();
		assert.equal(srv.requests.filter((r) => r.cmd === 'RELEASE').length, 1);
	} finally {
		await c.close();
		await srv.close();
	}
});

test('withModel releases when fn throws, rejects or returns', async () => {
	const srv = await fakePoold(simpleHandler());
	const c = new PoolClient({ socketPath: srv.path });
	const releases = () => srv.requests.filter((r) => r.cmd === 'RELEASE').map((r) => r.lease);
	try {
		await assert.rejects(c.withModel('m', () => { throw new Error('boom'); }), /boom/);
		assert.deepEqual(releases(), [1]);
		await assert.rejects(c.withModel('m', async () => { await sleep(5); throw new Error('later'); }), /later/);
		assert.deepEqual(releases(), [1, 2]);
		const v = await c.withModel('m', (l) => {
			assert.equal(l.alive, true);
			return l.port;
		});
		assert.equal(v, 9003);
		assert.deepEqual(releases(), [1, 2, 3]);
		assert.equal(c.leaseCount, 0);
	} finally {
		await c.close();
		await srv.close();
	}
});

/*
 * poold's lease_lost: a lease whose server died.  check() and release()
 * reject with code 'lease_lost', the lease is marked lost and its signal
 * aborts; release() still sends RELEASE (poold keeps the port until
 * then).  Ids up to 2^53 - 1 travel exactly.
 */
test('a lost lease rejects check() and release() with lease_lost', async () => {
	const BIG = 2 ** 53 - 1;
	const lost = (req) => ({ ok: false, id: req.id, error: 'lease_lost',
	    message: `lease ${req.lease} is lost: the server of 'm' on port 9001 ` +
	    'is gone (killed by signal 9)' });
	let dead = false;
	const srv = await fakePoold((req, conn) => {
		if (req.cmd === 'ACQUIRE')
			conn.reply({ ok: true, id: req.id, model: 'm', port: 9001,
			    endpoint: 'http://127.0.0.1:9001', lease: BIG, cold: false,
			    wait_ms: 0 });
		else if (req.cmd === 'LEASE' && !dead)
			conn.reply({ ok: true, id: req.id, lease: req.lease, model: 'm',
			    port: 9001, endpoint: 'http://127.0.0.1:9001', state: 'ready' });
		else
			conn.reply(lost(req));
	});
	const c = new PoolClient({ socketPath: srv.path });
	try {
		const l = await c.acquire('m');
		assert.equal(l.lease, BIG);
		const st = await l.check();
		assert.deepEqual(st, { lease: BIG, model: 'm', port: 9001,
		    endpoint: 'http://127.0.0.1:9001', state: 'ready' });
		assert.equal(l.lost, null);
		dead = true;
		await assert.rejects(l.check(), (e) => {
			assert.equal(e.code, 'lease_lost');
			assert.match(e.message, /signal 9/);
			return true;
		});
		assert.equal(l.alive, false);
		assert.equal(l.lost.code, 'lease_lost');
		assert.equal(l.signal.aborted, true);
		assert.equal(l.signal.reason.code, 'lease_lost');
		const p1 = l.release();
		assert.equal(l.release(), p1, 'release() is idempotent');
		await assert.rejects(p1, { code: 'lease_lost' });
		const rel = srv.requests.filter((r) => r.cmd === 'RELEASE');
		assert.deepEqual(rel.map((r) => r.lease), [BIG],
		    'a lost lease is still given back, with its exact id');
		assert.equal(srv.requests.find((r) => r.cmd === 'LEASE').lease, BIG);
		assert.equal(c.leaseCount, 0);

		/* withModel: fn "succeeded" on a dead server → lease_lost; fn's
		 * own failure wins over it. */
		await assert.rejects(c.withModel('m', () => 'done'), { code: 'lease_lost' });
		await assert.rejects(c.withModel('m', () => { throw new Error('boom'); }),
		    /boom/);
		const free = await c.acquire('m', { hold: false });
		assert.equal(free.lease, BIG);
	} finally {
		await c.close();
		await srv.close();
	}
});

test('unreachable poold fails fast with ENOENT, then reconnects by itself', async () => {
	const p = sockPath();
	const c = new PoolClient({ socketPath: p, reconnect: { minMs: 20, maxMs: 80 } });
	let srv;
	try {
		const t0 = Date.now();
		await assert.rejects(c.ping(), { code: 'ENOENT' });
		await assert.rejects(c.acquire('m'), { code: 'ENOENT' });
		assert.ok(Date.now() - t0 < 1000, 'no waiting when poold is away');
		srv = await fakePoold(simpleHandler(), p);
		await waitFor(() => c.connected, 3000);
		assert.equal((await c.ping()).version, '0.1.0');
	} finally {
		await c.close();
		if (srv)
			await srv.close();
	}
});

test('close() fails requests in flight with "closed"', async () => {
	const srv = await fakePoold(() => {});
	const c = new PoolClient({ socketPath: srv.path });
	try {
		const p = assert.rejects(c.ping(), { code: 'closed' });
		await waitFor(() => srv.requests.length === 1, 2000);
		await c.close();
		await p;
		await assert.rejects(c.ping(), { code: 'closed' });
		assert.equal(c.state, 'closed');
	} finally {
		await srv.close();
	}
});

test('getModelEndpoint: pool URL, else the fallback; never throws', async () => {
	const srv = await fakePoold((req, conn) => {
		const err = { nope: 'unknown_model', big: 'too_large', full: 'busy',
		    weird: 'internal', slow: 'timeout' }[req.model];
		if (err)
			conn.reply({ ok: false, id: req.id, error: err, message: `${req.model}: ${err}` });
		else
			conn.reply({ ok: true, id: req.id, model: req.model, port: 8081,
			    endpoint: 'http://127.0.0.1:8081', cold: false, wait_ms: 0 });
	});
	const FB = 'http://127.0.0.1:11434/v1/chat/completions';
	const warn = [];
	const debug = [];
	const logger = { warn: (m) => warn.push(m), debug: (m) => debug.push(m) };
	const opts = { socketPath: srv.path, logger };
	try {
		assert.equal(await getModelEndpoint('m', FB, opts),
		    'http://127.0.0.1:8081/v1/chat/completions');
		assert.equal(srv.requests[0].hold, false, 'no lease for a bare URL');
		for (const m of ['nope', 'big', 'full'])
			assert.equal(await getModelEndpoint(m, FB, opts), FB);
		assert.equal(warn.length, 0, 'expected fallbacks are not warnings');
		assert.equal(debug.length, 3);
		assert.equal(await getModelEndpoint('weird', FB, opts), FB);
		assert.equal(await getModelEndpoint('slow', FB, opts), FB);
		assert.equal(warn.length, 2);
		assert.match(warn[0], /weird.*internal/);
		assert.equal(await getModelEndpoint('', FB, opts), FB);
		/* The shared client: one per socket path. */
		assert.equal(getDefaultClient(srv.path), getDefaultClient(srv.path));
		/* Without a logger it is silent, and it still falls back. */
		assert.equal(await getModelEndpoint('weird', FB, { socketPath: srv.path }), FB);
		/* Unreachable poold: the fallback, at once. */
		const t0 = Date.now();
		assert.equal(await getModelEndpoint('m', FB, { socketPath: path.join(tmp, 'none.sock') }), FB);
		assert.ok(Date.now() - t0 < 1500);
	} finally {
		await closeDefaultClients();
		await srv.close();
	}
});

test('acquireEndpoint holds a lease until release()', async () => {
	const srv = await fakePoold(simpleHandler());
	const FB = 'http://127.0.0.1:11434/v1/chat/completions';
	try {
		const e = await acquireEndpoint('m', FB, { socketPath: srv.path });
		assert.equal(e.pooled, true);
		assert.equal(e.url, 'http://127.0.0.1:9001/v1/chat/completions');
		assert.equal(srv.requests[0].hold, true);
		await e.release();
		await e.release();
		assert.equal(srv.requests.filter((r) => r.cmd === 'RELEASE').length, 1);
		const f = await acquireEndpoint('m', FB, { socketPath: path.join(tmp, 'none.sock') });
		assert.deepEqual([f.url, f.pooled, f.lease], [FB, false, null]);
		await f.release();
	} finally {
		await closeDefaultClients();
		await srv.close();
	}
});

test('an idle client does not keep the process alive', async () => {
	const srv = await fakePoold(simpleHandler());
	try {
		const { execFile } = require('node:child_process');
		const script = `
			const { getModelEndpoint } = require(${JSON.stringify(path.resolve(__dirname, '..'))});
			getModelEndpoint('m', 'fb', { socketPath: ${JSON.stringify(srv.path)} })
			    .then((u) => console.log(u));`;
		const out = await new Promise((res, rej) => {
			execFile(process.execPath, ['-e', script], { timeout: 5000 },
			    (err, stdout) => (err ? rej(err) : res(stdout)));
		});
		assert.equal(out.trim(), 'http://127.0.0.1:9001/v1/chat/completions');
	} finally {
		await srv.close();
	}
});

async function waitFor(cond, ms) {
	const end = Date.now() + ms;
	while (!cond()) {
		if (Date.now() > end)
			throw new Error('condition not met in time');
		await sleep(10);
	}
}
