/*
 * The real `openai` package (pinned in package-lock.json) against poold's
 * HTTP front door: the real poold (POOLD_BIN) with stand-in servers
 * (FAKELLAMA_BIN) in their streaming mode.  Run by tests/t_openai.sh.
 *
 * The client has maxRetries 0, so every answer is poold's first.  The
 * release of a request's lease is asserted through STATS on poold's
 * socket, and the upstream's close through the stand-in's /debug/stats.
 */

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const POOLD_BIN = path.resolve(process.env.POOLD_BIN || path.join(ROOT, 'build', 'poold'));
const FAKELLAMA_BIN = path.resolve(process.env.FAKELLAMA_BIN ||
    path.join(ROOT, 'build', 'fakellama'));
const WAIT_MS = 15000;
const MESSAGES = [{ role: 'user', content: 'hi' }];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, cond, ms = WAIT_MS) {
	const end = Date.now() + ms;
	for (;;) {
		const v = await cond();
		if (v)
			return v;
		if (Date.now() > end)
			throw new Error(`timed out after ${ms} ms waiting for ${what}`);
		await sleep(25);
	}
}

let work, sock, poold, logFile, client;

/* One STATS over the socket: its reply, parsed. */
function stats() {
	return new Promise((resolve, reject) => {
		const s = net.createConnection({ path: sock });
		let buf = '';
		s.setEncoding('utf8');
		s.on('data', (d) => {
			buf += d;
			const nl = buf.indexOf('\n');
			if (nl >= 0) {
				s.destroy();
				try {
					resolve(JSON.parse(buf.slice(0, nl)));
				} catch (e) {
					reject(e);
				}
			}
		});
		s.on('error', reject);
		s.write(JSON.stringify({ cmd: 'STATS', id: 1 }) + '\n');
	});
}

async function server(model) {
	return (await stats()).servers.find((s) => s.model === model);
}

/* The leases of model's server; 0 when it is not running. */
async function leases(model) {
	const s = await server(model);
	return s ? s.leases : 0;
}

async function standinStats(port) {
	const r = await fetch(`http://127.0.0.1:${port}/debug/stats`);
	assert.equal(r.status, 200);
	return r.json();
}

function log() {
	try {
		return fs.readFileSync(logFile, 'utf8');
	} catch {
		return '';
	}
}

before(async () => {
	const base = process.env.POOLD_TEST_TMPDIR || os.tmpdir();
	work = fs.mkdtempSync(path.join(base, 'openai.'));
	sock = path.join(work, 'poold.sock');
	logFile = path.join(work, 'poold.log');
	fs.mkdirSync(path.join(work, 'models'));
	fs.writeFileSync(path.join(work, 'models', 'chat.gguf'),
	    'load_ms=50\nmem=1M\nstream_tokens=6\nstream_delay_ms=20\n');
	fs.writeFileSync(path.join(work, 'models', 'long.gguf'),
	    'load_ms=50\nmem=1M\nstream_tokens=100000\nstream_delay_ms=20\n');
	// This test's own 100 ports (tests/testlib.c: the C suites lock
	// slots below 32000, which may run beside it).
	const port = 32400;
	fs.writeFileSync(path.join(work, 'poold.json'), JSON.stringify({
		socket: sock,
		state_file: path.join(work, 'state.json'),
		models_dir: path.join(work, 'models'),
		command: [FAKELLAMA_BIN, '-m', '{path}', '--host', '127.0.0.1',
		    '--port', '{port}'],
		memory_limit: '256M',
		reserved: '0',
		per_model: '8M',
		rss_interval: '0',
		ports: [port, port + 99],
		stop_timeout: '2s',
		aliases: { 'gpt-4o-mini': 'chat' },
		http: { listen: '127.0.0.1:0' },
	}, null, 2));
	const out = fs.openSync(logFile, 'a');
	poold = spawn(POOLD_BIN, ['-f', path.join(work, 'poold.json')],
	    { stdio: ['ignore', out, out] });
	fs.closeSync(out);
	poold.on('exit', (code, sig) => {
		poold.exited = { code, sig };
	});
	const listen = await waitFor('the front door in STATS', async () => {
		if (poold.exited)
			throw new Error(`poold exited: ${JSON.stringify(poold.exited)}\n${log()}`);
		try {
			return (await stats()).http?.listen;
		} catch {
			return undefined;
		}
	});
	client = new OpenAI({
		baseURL: `http://${listen}/v1`,
		apiKey: 'unused-no-token-configured',
		maxRetries: 0,
		timeout: 30000,
	});
});

after(async () => {
	if (poold && !poold.exited) {
		const gone = new Promise((r) => poold.once('exit', r));
		poold.kill('SIGTERM');
		await Promise.race([gone, sleep(10000)]);
		if (!poold.exited)
			poold.kill('SIGKILL');
		assert.deepEqual(poold.exited, { code: 0, sig: null },
		    `poold did not exit 0 on SIGTERM:\n${log()}`);
	}
	if (work)
		fs.rmSync(work, { recursive: true, force: true });
});

describe('the openai package against poold', () => {
	it('chat completion', async () => {
		const r = await client.chat.completions.create({
			model: 'chat', messages: MESSAGES,
		});
		assert.equal(r.object, 'chat.completion');
		assert.equal(r.choices[0].message.content, 'hello from fakellama chat.gguf');
		assert.equal(r.choices[0].finish_reason, 'stop');
		assert.equal(await leases('chat'), 0);
	});

	it('chat completion through an alias', async () => {
		const r = await client.chat.completions.create({
			model: 'gpt-4o-mini', messages: MESSAGES,
		});
		assert.equal(r.choices[0].message.content, 'hello from fakellama chat.gguf');
	});

	it('streamed chat completion, chunk by chunk', async () => {
		const stream = await client.chat.completions.create({
			model: 'chat', messages: MESSAGES, stream: true,
		});
		let text = '', chunks = 0, finish = null;
		for await (const chunk of stream) {
			chunks++;
			text += chunk.choices[0].delta.content ?? '';
			finish = chunk.choices[0].finish_reason ?? finish;
		}
		assert.equal(chunks, 6);
		assert.equal(text, 'hello from fakellama chat.gguf tok3 tok4 tok5');
		assert.equal(finish, 'stop');
		await waitFor('the stream\'s lease to end', async () =>
		    await leases('chat') === 0);
	});

	it('embeddings', async () => {
		const r = await client.embeddings.create({ model: 'chat', input: 'hello' });
		assert.equal(r.object, 'list');
		assert.deepEqual(Array.from(r.data[0].embedding), [0.25, -0.5, 0.125, 1]);
	});

	it('models list', async () => {
		const ids = [];
		for await (const m of client.models.list())
			ids.push(m.id);
		for (const want of ['chat', 'long', 'gpt-4o-mini'])
			assert.ok(ids.includes(want), `${want} not in ${JSON.stringify(ids)}`);
	});

	it('an unknown model is a NotFoundError, code model_not_found', async () => {
		await assert.rejects(client.chat.completions.create({
			model: 'nosuch', messages: MESSAGES,
		}), (e) => {
			assert.ok(e instanceof OpenAI.NotFoundError, `${e}`);
			assert.equal(e.status, 404);
			assert.equal(e.code, 'model_not_found');
			return true;
		});
	});

	it('an abort mid-stream releases the lease and closes the upstream', async () => {
		const ac = new AbortController();
		const stream = await client.chat.completions.create({
			model: 'long', messages: MESSAGES, stream: true,
		}, { signal: ac.signal });
		let chunks = 0, held = -1;
		/* The package ends the iteration quietly on its own abort. */
		for await (const chunk of stream) {
			assert.ok(chunk.choices.length > 0);
			if (++chunks === 2)
				held = await leases('long');
			if (chunks === 3)
				ac.abort();
		}
		assert.ok(ac.signal.aborted);
		assert.equal(held, 1, 'no lease on long while it streamed');
		assert.equal(chunks, 3);
		await waitFor('the lease to be released', async () =>
		    await leases('long') === 0);
		const port = (await server('long')).port;
		await waitFor('the stand-in to see its client go', async () =>
		    (await standinStats(port)).disconnects === 1);
		assert.equal((await standinStats(port)).streams_finished, 0);
	});
});
