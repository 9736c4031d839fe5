'use strict';
/*
 * poold-client — talk to poold over its UNIX socket from Node.js.
 *
 * One persistent connection per PoolClient; requests are pipelined and
 * matched to replies by their integer "id" (poold may answer in any order).
 * Leases live as long as the connection: when it drops, poold releases them,
 * so this client never reconnects silently behind a lease holder's back —
 * every request in flight is rejected with code 'disconnected' and every
 * outstanding lease is marked dead (its release() becomes a no-op and its
 * signal aborts).  A lease whose server poold saw die is "lost": check()
 * and release() reject with code 'lease_lost' and its signal aborts.
 * See README.md and poold-protocol(7).
 *
 * No dependencies beyond Node's own modules.
 */

const net = require('node:net');
const path = require('node:path');
const { EventEmitter } = require('node:events');

const VERSION = '0.1.0';

const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
const DEFAULT_REQUEST_TIMEOUT_MS = 10000;
const DEFAULT_ACQUIRE_TIMEOUT_MS = 120000;	/* poold's own default */
const DEFAULT_EVICT_TIMEOUT_MS = 60000;
const DEFAULT_RECONNECT_MIN_MS = 100;
const DEFAULT_RECONNECT_MAX_MS = 5000;
const DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024;
const CHAT_PATH = '/v1/chat/completions';

/*
 * Errors after which getModelEndpoint() falls back without complaint: poold
 * is not there, or it cannot give this model a server right now.
 */
const QUIET_FALLBACK = new Set([
	'ENOENT', 'ECONNREFUSED', 'disconnected', 'closed', 'shutting_down',
	'busy', 'too_large', 'unknown_model',
]);

/* poold's default socket path; the same rule as proto_default_socket(). */
function defaultSocketPath(env) {
	const e = env || process.env;
	if (e.POOLD_SOCKET)
		return e.POOLD_SOCKET;
	const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
	if (uid === 0)
		return '/run/poold/poold.sock';
	if (e.XDG_RUNTIME_DIR)
		return path.join(e.XDG_RUNTIME_DIR, 'poold', 'poold.sock');
	return `/tmp/poold-${uid}/poold.sock`;
}

class PoolError extends Error {
	/*
	 * code: poold's error code ("busy", "unknown_model", "lease_lost", …), or
	 * 'ECONNREFUSED', 'ENOENT' (and other system codes) when poold cannot
	 * be reached, 'timeout' when no answer came in time, 'disconnected'
	 * when the connection dropped with the request in flight, 'closed'
	 * after close().
	 */
	constructor(code, message, extra) {
		super(message);
		this.name = 'PoolError';
		this.code = code;
		if (extra) {
			if (extra.reply !== undefined)
				this.reply = extra.reply;
			if (extra.cause !== undefined)
				this.cause = extra.cause;
		}
	}
}

function nonNegInt(v, name, dflt) {
	if (v === undefined || v === null)
		return dflt;
	if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
		throw new TypeError(`${name} must be a non-negative number`);
	return Math.floor(v);
}

/* {authorization: 'Bearer KEY'} for a server with a key, else {}. */
function authHeaders(apiKey) {
	return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

function stripReply(msg) {
	const out = {};
	for (const k of Object.keys(msg))
		if (k !== 'ok' && k !== 'id')
			out[k] = msg[k];
	return out;
}

/* A server handed out by ACQUIRE.  Holds a lease unless acquired hold:false. */
class Lease {
	#client;
	#gen;
	#alive;		/* held by this connection, not released */
	#lost = null;	/* the 'lease_lost' PoolError, once poold said so */
	#releasing = null;
	#ac = new AbortController();

	constructor(client, msg, gen) {
		this.model = msg.model;
		this.endpoint = msg.endpoint;
		this.port = msg.port;
		this.lease = typeof msg.lease === 'number' && msg.lease > 0 ?
		    msg.lease : null;
		this.cold = Boolean(msg.cold);
		this.waitMs = typeof msg.wait_ms === 'number' ? msg.wait_ms : 0;
		/* The server's key ("api_keys" in poold.json), null: none needed. */
		this.apiKey = typeof msg.api_key === 'string' && msg.api_key ?
		    msg.api_key : null;
		/* The node that runs the server; null: poold's own machine. */
		this.node = typeof msg.node === 'string' && msg.node ? msg.node :
		    null;
		this.#client = client;
		this.#gen = gen;
		this.#alive = this.lease !== null;
	}

	/*
	 * true while the lease is held and its server runs, as far as this
	 * client knows (false for hold:false acquires).
	 */
	get alive() { return this.#alive && !this.#lost; }

	/* The PoolError 'lease_lost' once poold said the server is gone. */
	get lost() { return this.#lost; }

	/* Aborted when the lease is lost: the connection dropped, or poold
	 * said its server is gone. */
	get signal() { return this.#ac.signal; }

	get generation() { return this.#gen; }

	/* endpoint + path, by default the chat-completions URL. */
	url(p) { return this.endpoint + (p === undefined ? CHAT_PATH : p); }

	/* The headers a request to the server needs: its key, if any. */
	headers() { return authHeaders(this.apiKey); }

	/*
	 * fetch() of url(path) with the server's key sent as
	 * "Authorization: Bearer KEY" (over any the caller set).
	 */
	fetch(p, init) {
		const i = init || {};
		const h = new Headers(i.headers);
		for (const [k, v] of Object.entries(this.headers()))
			h.set(k, v);
		return fetch(this.url(p), { ...i, headers: h });
	}

	/*
	 * Asks poold about the lease (LEASE).  Resolves to {lease, model,
	 * port, endpoint, state} while its server runs; rejects with code
	 * 'lease_lost' (and marks the lease lost) once the server is gone:
	 * the lease is still held, and its port kept from other models,
	 * until release().
	 */
	check() {
		if (this.lease === null)
			return Promise.reject(new PoolError('not_found',
			    'acquired with hold:false: there is no lease to check'));
		if (!this.#alive)
			return Promise.reject(this.#lost || new PoolError('not_found',
			    `lease ${this.lease} is no longer held`));
		return this.#client._lease(this).catch((err) => {
			if (err.code === 'lease_lost')
				this._lost(err);
			throw err;
		});
	}

	/*
	 * Gives the lease back.  Idempotent: every call returns the same
	 * promise.  A lease already gone (connection dropped, client closed,
	 * hold:false) resolves at once.  A lost lease (its server died while
	 * held) is given back too, but the promise rejects with code
	 * 'lease_lost': what was asked of the server meanwhile may be lost.
	 */
	release() {
		if (this.#releasing)
			return this.#releasing;
		if (!this.#alive) {
			this.#releasing = Promise.resolve();
			return this.#releasing;
		}
		this.#alive = false;
		this.#releasing = this.#client._release(this).catch((err) => {
			if (err.code === 'lease_lost')
				this._lost(err);
			throw err;
		});
		return this.#releasing;
	}

	/* Called by the client when the connection that held it is gone. */
	_lose(err) {
		if (!this.#alive)
			return;
		this.#alive = false;
		this.#ac.abort(err);
	}

	/* poold says the server is gone; the lease stays held until released. */
	_lost(err) {
		if (this.#lost)
			return;
		this.#lost = err;
		this.#ac.abort(err);
	}
}

class PoolClient extends EventEmitter {
	#sock = null;		/* connecting or connected socket */
	#state = 'idle';	/* idle | connecting | connected | backoff | closed */
	#connecting = null;	/* promise of the connect in progress */
	#pending = new Map();	/* id -> entry */
	#nextId = 1;
	#leases = new Set();	/* held leases of the current connection */
	#gen = 0;		/* connection generation */
	#attempt = 0;		/* failed connects in a row */
	#retryTimer = null;
	#retryAt = 0;
	#lastError = null;
	#parts = [];		/* an incomplete reply line */
	#partsLen = 0;
	#dropReason = null;
	#closed = null;		/* promise returned by close() */

	constructor(opts) {
		super();
		const o = opts || {};
		this.socketPath = o.socketPath || defaultSocketPath();
		this.connectTimeoutMs = nonNegInt(o.connectTimeoutMs,
		    'connectTimeoutMs', DEFAULT_CONNECT_TIMEOUT_MS);
		this.requestTimeoutMs = nonNegInt(o.requestTimeoutMs,
		    'requestTimeoutMs', DEFAULT_REQUEST_TIMEOUT_MS);
		this.acquireTimeoutMs = nonNegInt(o.acquireTimeoutMs,
		    'acquireTimeoutMs', DEFAULT_ACQUIRE_TIMEOUT_MS);
		this.maxLineBytes = nonNegInt(o.maxLineBytes, 'maxLineBytes',
		    DEFAULT_MAX_LINE_BYTES);
		if (o.reconnect === false) {
			this.reconnect = null;
		} else {
			const r = o.reconnect || {};
			/* At least 10 ms: no busy loop while poold is away. */
			const min = Math.max(10, nonNegInt(r.minMs, 'reconnect.minMs',
			    DEFAULT_RECONNECT_MIN_MS));
			const max = nonNegInt(r.maxMs, 'reconnect.maxMs',
			    DEFAULT_RECONNECT_MAX_MS);
			this.reconnect = { minMs: min, maxMs: Math.max(min, max) };
		}
	}

	/* 'idle', 'connecting', 'connected', 'backoff' or 'closed'. */
	get state() { return this.#state; }
	get connected() { return this.#state === 'connected'; }
	/* Leases held on the current connection. */
	get leaseCount() { return this.#leases.size; }

	/* Opens the connection now instead of on the first request. */
	connect() {
		if (this.#state === 'connected')
			return Promise.resolve();
		if (this.#state === 'backoff') {
			this.#clearRetry();
			this.#state = 'idle';
		}
		return this.#ensureConnected();
	}

	/*
	 * ACQUIRE: a server for model, started if need be.  Resolves to a
	 * Lease {model, endpoint, port, lease, cold, waitMs, release()}.
	 */
	acquire(model, opts) {
		const o = opts || {};
		if (typeof model !== 'string' || model === '')
			return Promise.reject(new TypeError('model must be a non-empty string'));
		let timeoutMs;
		try {
			timeoutMs = nonNegInt(o.timeoutMs, 'timeoutMs',
			    this.acquireTimeoutMs);
		} catch (e) {
			return Promise.reject(e);
		}
		const hold = o.hold !== false;
		return this.#request({ cmd: 'ACQUIRE', model, timeout_ms: timeoutMs,
		    hold }, timeoutMs + this.requestTimeoutMs, (msg, gen) => {
			if (typeof msg.endpoint !== 'string' || !msg.endpoint) {
				if (Number.isInteger(msg.port) && msg.port > 0)
					msg.endpoint = `http://127.0.0.1:${msg.port}`;
				else {
					this.#strayLease(msg);
					throw new PoolError('internal',
					    `poold's answer to ACQUIRE ${model} names no server`,
					    { reply: msg });
				}
			}
			const lease = new Lease(this, msg, gen);
			if (lease.alive)
				this.#leases.add(lease);
			return lease;
		});
	}

	/*
	 * Runs fn(lease) with a lease held and releases it afterwards, also
	 * when fn throws or rejects.  Resolves to fn's result.
	 */
	async withModel(model, fn, opts) {
		if (typeof fn !== 'function')
			throw new TypeError('fn must be a function');
		const o = opts || {};
		const lease = await this.acquire(model, { ...o, hold: true });
		let result;
		let failure = null;
		try {
			result = await fn(lease);
		} catch (e) {
			failure = { error: e };
		}
		try {
			await lease.release();
		} catch (e) {
			/* fn "succeeded" on a server that died under it: say so. */
			if (e.code === 'lease_lost' && !failure)
				throw e;
			logTo(o.logger, 'warn',
			    `poold: releasing lease ${lease.lease} of ${model} failed: ${e.message}`, e);
		}
		if (failure)
			throw failure.error;
		return result;
	}

	/* STATS: the reply without ok/id ({memory, servers, counters, …}). */
	async stats(opts) {
		const msg = await this.#request({ cmd: 'STATS' }, this.#guard(opts));
		return stripReply(msg);
	}

	/* MODELS: the catalog, [{model, state, …}]. */
	async models(opts) {
		const msg = await this.#request({ cmd: 'MODELS' }, this.#guard(opts));
		return Array.isArray(msg.models) ? msg.models : [];
	}

	/* EVICT: stops model's server; answers once it is gone. {model, freed} */
	async evict(model, opts) {
		const o = opts || {};
		if (typeof model !== 'string' || model === '')
			throw new TypeError('model must be a non-empty string');
		const msg = await this.#request({ cmd: 'EVICT', model,
		    force: Boolean(o.force) },
		    nonNegInt(o.timeoutMs, 'timeoutMs', DEFAULT_EVICT_TIMEOUT_MS));
		return stripReply(msg);
	}

	/* PING: {version}. */
	async ping(opts) {
		const msg = await this.#request({ cmd: 'PING' }, this.#guard(opts));
		return stripReply(msg);
	}

	/*
	 * Closes the connection for good: requests in flight are rejected with
	 * code 'closed', leases are dropped (poold releases them).  Resolves
	 * once the socket is closed.
	 */
	close() {
		if (this.#closed)
			return this.#closed;
		const err = new PoolError('closed', 'poold client closed');
		this.#state = 'closed';
		this.#clearRetry();
		const sock = this.#sock;
		this.#closed = new Promise((resolve) => {
			if (!sock || sock.destroyed) {
				resolve();
				return;
			}
			sock.once('close', () => resolve());
			sock.destroy();
		});
		this.#failAll(err);
		return this.#closed;
	}

	/* --- internals --- */

	#guard(opts) {
		return nonNegInt(opts && opts.timeoutMs, 'timeoutMs',
		    this.requestTimeoutMs);
	}

	_lease(lease) {
		if (lease.generation !== this.#gen || this.#state !== 'connected')
			return Promise.reject(new PoolError('disconnected',
			    `connection to poold at ${this.socketPath} lost`));
		return this.#request({ cmd: 'LEASE', lease: lease.lease },
		    this.requestTimeoutMs).then(stripReply);
	}

	_release(lease) {
		this.#leases.delete(lease);
		if (lease.generation !== this.#gen || this.#state !== 'connected')
			return Promise.resolve();	/* gone with its connection */
		return this.#request({ cmd: 'RELEASE', lease: lease.lease },
		    this.requestTimeoutMs).then(() => undefined, (err) => {
			/* A dropped connection released it anyway. */
			if (err.code === 'not_found' || err.code === 'disconnected' ||
			    err.code === 'closed')
				return undefined;
			throw err;
		});
	}

	#request(fields, guardMs, map) {
		if (this.#state === 'closed')
			return Promise.reject(new PoolError('closed', 'poold client closed'));
		const id = this.#nextId++;
		const line = JSON.stringify({ ...fields, id }) + '\n';
		return new Promise((resolve, reject) => {
			const entry = { cmd: fields.cmd, resolve, reject, map,
			    timer: null };
			entry.timer = setTimeout(() => {
				if (this.#pending.get(id) !== entry)
					return;
				this.#pending.delete(id);
				this.#updateRef();
				/* A late ACQUIRE answer with a lease is released when it comes. */
				reject(new PoolError('timeout',
				    `poold did not answer ${fields.cmd} within ${guardMs} ms`));
			}, guardMs);
			this.#pending.set(id, entry);
			this.#updateRef();
			const fail = (err) => {
				if (this.#pending.get(id) !== entry)
					return;
				this.#pending.delete(id);
				clearTimeout(entry.timer);
				this.#updateRef();
				reject(err);
			};
			const send = () => {
				if (this.#pending.get(id) !== entry)
					return;
				if (this.#state !== 'connected') {
					fail(new PoolError('disconnected',
					    `connection to poold at ${this.socketPath} lost`));
					return;
				}
				this.#sock.write(line);
			};
			if (this.#state === 'connected')
				send();
			else
				this.#ensureConnected().then(send, fail);
		});
	}

	#ensureConnected() {
		switch (this.#state) {
		case 'connected':
			return Promise.resolve();
		case 'connecting':
			return this.#connecting;
		case 'closed':
			return Promise.reject(new PoolError('closed', 'poold client closed'));
		case 'backoff':
			return Promise.reject(this.#unreachable());
		default:
			return this.#startConnect();
		}
	}

	#unreachable() {
		const last = this.#lastError;
		const wait = Math.max(0, this.#retryAt - Date.now());
		const code = last ? last.code : 'ECONNREFUSED';
		const why = last ? last.message : 'not connected';
		return new PoolError(code, `${why} (next try in ${wait} ms)`,
		    { cause: last || undefined });
	}

	#startConnect() {
		this.#state = 'connecting';
		let sock;
		try {
			sock = net.createConnection({ path: this.socketPath });
		} catch (e) {
			const err = new PoolError(e.code || 'EINVAL',
			    `cannot connect to poold at ${this.socketPath}: ${e.message}`,
			    { cause: e });
			this.#connectFailed(err);
			return Promise.reject(err);
		}
		this.#sock = sock;
		this.#updateRef();
		const p = new Promise((resolve, reject) => {
			let done = false;
			const finish = (err) => {
				if (done)
					return;
				done = true;
				clearTimeout(timer);
				sock.removeListener('connect', onConnect);
				sock.removeListener('error', onError);
				if (err) {
					sock.on('error', () => {});
					sock.destroy();
					if (this.#sock === sock)
						this.#sock = null;
					this.#connectFailed(err);
					reject(err);
				} else {
					this.#attach(sock);
					resolve();
				}
			};
			const onConnect = () => {
				if (this.#state === 'closed')
					finish(new PoolError('closed', 'poold client closed'));
				else
					finish(null);
			};
			const onError = (e) => {
				finish(new PoolError(e.code || 'ECONNREFUSED',
				    `cannot connect to poold at ${this.socketPath}: ${e.message}`,
				    { cause: e }));
			};
			const timer = setTimeout(() => finish(new PoolError('timeout',
			    `connecting to poold at ${this.socketPath} took more than ${this.connectTimeoutMs} ms`)),
			    this.connectTimeoutMs);
			timer.unref();
			sock.once('connect', onConnect);
			sock.once('error', onError);
			sock.once('close', () => finish(new PoolError('closed',
			    'poold client closed')));
		});
		p.catch(() => {});	/* a background attempt has no one waiting */
		this.#connecting = p;
		return p;
	}

	#connectFailed(err) {
		this.#connecting = null;
		this.#lastError = err;
		if (this.#state === 'closed')
			return;
		if (!this.reconnect) {
			this.#state = 'idle';
			return;
		}
		this.#state = 'backoff';
		const { minMs, maxMs } = this.reconnect;
		const base = Math.min(maxMs, minMs * 2 ** Math.min(this.#attempt, 30));
		this.#attempt++;
		/* "Equal jitter": half fixed, half random, so clients spread out. */
		const delay = Math.round(base / 2 + Math.random() * base / 2);
		this.#retryAt = Date.now() + delay;
		this.#retryTimer = setTimeout(() => {
			this.#retryTimer = null;
			if (this.#state !== 'backoff')
				return;
			this.emit('reconnecting', { attempt: this.#attempt });
			this.#startConnect();
		}, delay);
		this.#retryTimer.unref();
	}

	#clearRetry() {
		if (this.#retryTimer) {
			clearTimeout(this.#retryTimer);
			this.#retryTimer = null;
		}
	}

	#attach(sock) {
		this.#connecting = null;
		this.#state = 'connected';
		this.#attempt = 0;
		this.#lastError = null;
		this.#gen++;
		this.#parts = [];
		this.#partsLen = 0;
		this.#dropReason = null;
		sock.on('data', (chunk) => this.#onData(sock, chunk));
		sock.on('error', (e) => {
			if (!this.#dropReason)
				this.#dropReason = e.message;
		});
		sock.on('close', () => this.#onClose(sock));
		this.#updateRef();
		this.emit('connect');
	}

	#onClose(sock) {
		if (this.#sock !== sock)
			return;
		this.#sock = null;
		const why = this.#dropReason ? `: ${this.#dropReason}` : '';
		const err = new PoolError('disconnected',
		    `connection to poold at ${this.socketPath} lost${why}`);
		const lost = this.#leases.size;
		if (this.#state === 'closed') {
			this.#failAll(new PoolError('closed', 'poold client closed'));
			return;
		}
		this.#failAll(err);
		this.emit('disconnect', err, { leasesLost: lost });
		if (this.#state === 'closed')	/* closed by a listener */
			return;
		this.#state = 'idle';
		if (this.reconnect) {
			this.#attempt = 0;
			this.#startConnect();
		}
	}

	/* Rejects everything in flight and drops every lease. */
	#failAll(err) {
		const pending = [...this.#pending.values()];
		this.#pending.clear();
		const leases = [...this.#leases];
		this.#leases.clear();
		for (const l of leases)
			l._lose(err);
		for (const e of pending) {
			clearTimeout(e.timer);
			e.reject(err);
		}
		this.#updateRef();
	}

	#drop(sock, reason) {
		if (!this.#dropReason)
			this.#dropReason = reason;
		sock.destroy();
	}

	#onData(sock, chunk) {
		let start = 0;
		while (start < chunk.length) {
			if (this.#sock !== sock || sock.destroyed)
				return;
			const nl = chunk.indexOf(10, start);
			if (nl === -1) {
				const rest = chunk.subarray(start);
				this.#partsLen += rest.length;
				if (this.#partsLen > this.maxLineBytes) {
					this.#drop(sock, `reply line longer than ${this.maxLineBytes} bytes`);
					return;
				}
				this.#parts.push(rest);
				return;
			}
			let line = chunk.subarray(start, nl);
			if (this.#partsLen > 0) {
				this.#parts.push(line);
				line = Buffer.concat(this.#parts, this.#partsLen + line.length);
				this.#parts = [];
				this.#partsLen = 0;
			}
			start = nl + 1;
			if (line.length > this.maxLineBytes) {
				this.#drop(sock, `reply line longer than ${this.maxLineBytes} bytes`);
				return;
			}
			this.#onLine(sock, line);
		}
	}

	#onLine(sock, buf) {
		let text = buf.toString('utf8');
		if (text.endsWith('\r'))
			text = text.slice(0, -1);
		if (text.trim() === '')
			return;
		let msg;
		try {
			msg = JSON.parse(text);
		} catch (e) {
			this.#drop(sock, `poold sent a line that is not JSON: ${text.slice(0, 80)}`);
			return;
		}
		if (msg === null || typeof msg !== 'object' || Array.isArray(msg) ||
		    typeof msg.ok !== 'boolean') {
			this.#drop(sock, `poold sent a line that is not a reply: ${text.slice(0, 80)}`);
			return;
		}
		const entry = typeof msg.id === 'number' ? this.#pending.get(msg.id) :
		    undefined;
		if (!entry) {
			/*
			 * Nobody waits for it: an ACQUIRE we gave up on.  A lease it
			 * carries would be held until the connection closes.
			 */
			this.#strayLease(msg);
			this.emit('stray', msg);
			return;
		}
		this.#pending.delete(msg.id);
		clearTimeout(entry.timer);
		this.#updateRef();
		if (!msg.ok) {
			const code = typeof msg.error === 'string' ? msg.error : 'internal';
			const text2 = typeof msg.message === 'string' && msg.message ?
			    msg.message : code;
			entry.reject(new PoolError(code, text2, { reply: msg }));
			return;
		}
		if (entry.map) {
			let v;
			try {
				v = entry.map(msg, this.#gen);
			} catch (e) {
				entry.reject(e);
				return;
			}
			entry.resolve(v);
		} else {
			entry.resolve(msg);
		}
	}

	/* Gives back the lease of a reply that nobody will hold. */
	#strayLease(msg) {
		if (msg.ok && typeof msg.lease === 'number' && msg.lease > 0)
			this.#request({ cmd: 'RELEASE', lease: msg.lease },
			    this.requestTimeoutMs).catch(() => {});
	}

	/* The socket keeps the process alive only while requests are in flight. */
	#updateRef() {
		const s = this.#sock;
		if (!s || s.destroyed)
			return;
		if (this.#pending.size > 0)
			s.ref();
		else
			s.unref();
	}
}

/* --- the bot's drop-in --- */

function logTo(logger, level, message, err) {
	if (!logger)
		return;
	if (typeof logger === 'function') {
		logger(message, err);
		return;
	}
	const f = logger[level] || (level === 'debug' ? null : logger.log);
	if (typeof f === 'function')
		f.call(logger, message);
}

const shared = new Map();

/*
 * The client shared by every getModelEndpoint()/acquireEndpoint() call for
 * a socket path (default: defaultSocketPath()).  It does not keep the
 * process alive when idle.
 */
function getDefaultClient(socketPath, opts) {
	const p = socketPath || defaultSocketPath();
	let c = shared.get(p);
	if (!c || c.state === 'closed') {
		c = new PoolClient({ connectTimeoutMs: 1000, ...(opts || {}),
		    socketPath: p });
		shared.set(p, c);
	}
	return c;
}

/* Closes every shared client (for tests and clean shutdowns). */
async function closeDefaultClients() {
	const all = [...shared.values()];
	shared.clear();
	await Promise.all(all.map((c) => c.close()));
}

function fallbackNote(logger, err, modelKey, fallback) {
	const code = err && err.code;
	const msg = `poold: ${modelKey}: ${code || 'error'}: ${err && err.message}; using ${fallback}`;
	logTo(logger, QUIET_FALLBACK.has(code) ? 'debug' : 'warn', msg, err);
}

/*
 * The URL to send modelKey's chat completions to: poold's server when it
 * serves the model, else fallbackEndpoint.  Acquires without a lease
 * (hold:false): see README.md for the trade-off.  Never rejects.  A URL
 * only: a server with a key ("api_keys") needs acquireEndpoint()'s
 * headers, or getModelTarget().
 */
async function getModelEndpoint(modelKey, fallbackEndpoint, opts) {
	const o = opts || {};
	try {
		const client = o.client || getDefaultClient(o.socketPath);
		const r = await client.acquire(modelKey, { hold: false,
		    timeoutMs: o.timeoutMs });
		return r.endpoint + (o.path === undefined ? CHAT_PATH : o.path);
	} catch (err) {
		fallbackNote(o.logger, err, modelKey, fallbackEndpoint);
		return fallbackEndpoint;
	}
}

/*
 * Like getModelEndpoint(), with the headers the server needs:
 * {url, headers, apiKey, pooled}; the fallback's headers are {}.  Never
 * rejects.
 */
async function getModelTarget(modelKey, fallbackEndpoint, opts) {
	const o = opts || {};
	try {
		const client = o.client || getDefaultClient(o.socketPath);
		const r = await client.acquire(modelKey, { hold: false,
		    timeoutMs: o.timeoutMs });
		return { url: r.url(o.path), headers: r.headers(),
		    apiKey: r.apiKey, pooled: true };
	} catch (err) {
		fallbackNote(o.logger, err, modelKey, fallbackEndpoint);
		return { url: fallbackEndpoint, headers: {}, apiKey: null,
		    pooled: false };
	}
}

/*
 * Like getModelEndpoint() but holds a lease, so poold will not stop the
 * server (idle, LRU) until release() is called.  Resolves to
 * {url, headers, apiKey, release(), pooled, lease}; release() is a no-op
 * for the fallback.  Never rejects.
 */
async function acquireEndpoint(modelKey, fallbackEndpoint, opts) {
	const o = opts || {};
	try {
		const client = o.client || getDefaultClient(o.socketPath);
		const l = await client.acquire(modelKey, { hold: true,
		    timeoutMs: o.timeoutMs });
		return {
			url: l.url(o.path),
			pooled: true,
			lease: l,
			apiKey: l.apiKey,
			headers: l.headers(),
			release: () => l.release().catch((e) => {
				logTo(o.logger, 'warn',
				    `poold: ${modelKey}: release failed: ${e.message}`, e);
			}),
		};
	} catch (err) {
		fallbackNote(o.logger, err, modelKey, fallbackEndpoint);
		return { url: fallbackEndpoint, pooled: false, lease: null,
		    apiKey: null, headers: {}, release: () => Promise.resolve() };
	}
}

module.exports = {
	PoolClient,
	PoolError,
	Lease,
	defaultSocketPath,
	getDefaultClient,
	closeDefaultClients,
	getModelEndpoint,
	getModelTarget,
	acquireEndpoint,
	VERSION,
};
