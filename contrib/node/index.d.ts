// Type definitions for poold-client 0.1.0 (CommonJS entry).
/// <reference types="node" />

import { EventEmitter } from 'node:events';

/**
 * Error codes: poold's own ("busy", "unknown_model", …) or the client's:
 * 'ECONNREFUSED' / 'ENOENT' (and other system codes) when poold cannot be
 * reached, 'timeout' when no answer came in time, 'disconnected' when the
 * connection dropped with the request in flight, 'closed' after close().
 */
export type PoolErrorCode =
	| 'bad_request'
	| 'unknown_command'
	| 'unknown_model'
	| 'busy'
	| 'too_large'
	| 'start_failed'
	| 'timeout'
	| 'not_found'
	| 'shutting_down'
	| 'forbidden'
	| 'internal'
	| 'lease_lost'
	| 'ECONNREFUSED'
	| 'ENOENT'
	| 'disconnected'
	| 'closed'
	| (string & {});

export declare class PoolError extends Error {
	constructor(code: PoolErrorCode, message: string,
	    extra?: { reply?: Record<string, unknown>; cause?: unknown });
	readonly name: 'PoolError';
	code: PoolErrorCode;
	/** poold's whole error reply, when poold answered. */
	reply?: Record<string, unknown>;
	cause?: unknown;
}

export interface ReconnectOptions {
	/** First delay after a failed connect (default 100). */
	minMs?: number;
	/** Cap of the exponential backoff (default 5000). */
	maxMs?: number;
}

export interface PoolClientOptions {
	/** Default: defaultSocketPath(). */
	socketPath?: string;
	/** Default 2000. */
	connectTimeoutMs?: number;
	/** Deadline of STATS, MODELS, PING, RELEASE; slack added to ACQUIRE's (default 10000). */
	requestTimeoutMs?: number;
	/** timeout_ms sent with ACQUIRE when none is given (default 120000). */
	acquireTimeoutMs?: number;
	/** Longest reply line accepted; a longer one drops the connection (default 4 MiB). */
	maxLineBytes?: number;
	/** Backoff of background reconnects; false: reconnect only on the next request. */
	reconnect?: ReconnectOptions | false;
}

export interface AcquireOptions {
	/** How long poold may wait for room and the start (timeout_ms). */
	timeoutMs?: number;
	/** Hold a lease (default true). */
	hold?: boolean;
}

export interface Logger {
	warn?(message: string): void;
	debug?(message: string): void;
	log?(message: string): void;
}
export type LoggerLike = Logger | ((message: string, err?: unknown) => void);

export interface WithModelOptions extends Omit<AcquireOptions, 'hold'> {
	/**
	 * Told when the release after fn fails (the failure is not thrown,
	 * but for 'lease_lost' after fn succeeded: withModel rejects with it).
	 */
	logger?: LoggerLike;
}

export declare class Lease {
	readonly model: string;
	/** "http://HOST:PORT", e.g. "http://127.0.0.1:8080" */
	readonly endpoint: string;
	readonly port: number;
	/** The lease number; null when acquired with hold:false. */
	readonly lease: number | null;
	/** This ACQUIRE waited for a start. */
	readonly cold: boolean;
	readonly waitMs: number;
	/** The server's API key (poold.json "api_keys"); null: it needs none. */
	readonly apiKey: string | null;
	/** The node that runs the server; null: poold's own machine. */
	readonly node: string | null;
	/** True while the lease is held and its server runs, as far as the client knows. */
	readonly alive: boolean;
	/** The PoolError 'lease_lost' once poold said the lease's server is gone, else null. */
	readonly lost: PoolError | null;
	/**
	 * Aborted when the lease is lost: with a PoolError 'disconnected' when
	 * its connection drops, 'lease_lost' when poold says its server is gone.
	 */
	readonly signal: AbortSignal;
	/** endpoint + path (default "/v1/chat/completions"). */
	url(path?: string): string;
	/** { authorization: "Bearer KEY" } for a server with a key, else {}. */
	headers(): Record<string, string>;
	/** fetch() of url(path), with the server's key as "Authorization: Bearer". */
	fetch(path?: string, init?: RequestInit): Promise<Response>;
	/**
	 * LEASE: the lease's server while it runs; rejects with 'lease_lost'
	 * (and marks the lease lost; it stays held until release()) once it is gone.
	 */
	check(): Promise<LeaseState>;
	/**
	 * Gives the lease back; idempotent; a no-op once the lease is gone with
	 * its connection.  Rejects with 'lease_lost' if its server died while held
	 * (the lease is given back all the same).
	 */
	release(): Promise<void>;
}

/** LEASE's answer, without ok/id. */
export interface LeaseState {
	lease: number;
	model: string;
	port: number;
	endpoint: string;
	/** Present when the server has a key. */
	api_key?: string;
	state: 'ready' | 'stopping' | (string & {});
}

export interface ServerStats {
	model: string;
	state: 'starting' | 'ready' | 'stopping' | (string & {});
	port: number;
	pid: number;
	leases: number;
	idle_ms: number;
	uptime_ms: number;
	load_ms: number;
	mem: number;
	[key: string]: unknown;
}

/** STATS, without ok/id; see poold-protocol(7). */
export interface Stats {
	version: string;
	pid: number;
	uptime_ms: number;
	memory: { total: number; reserved: number; budget: number; used: number;
	    free: number; [key: string]: unknown };
	max_servers: number;
	running: number;
	waiting: number;
	clients: number;
	servers: ServerStats[];
	counters: Record<string, number>;
	models: Array<{ model: string; [key: string]: unknown }>;
	[key: string]: unknown;
}

/** One entry of MODELS. */
export interface ModelInfo {
	model: string;
	path?: string;
	memory?: number;
	state: 'starting' | 'ready' | 'stopping' | 'failed' | 'stopped' | (string & {});
	port?: number;
	[key: string]: unknown;
}

export interface EvictResult {
	model: string;
	freed: number;
	[key: string]: unknown;
}

export type ClientState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed';

export declare class PoolClient extends EventEmitter {
	constructor(opts?: PoolClientOptions);
	readonly socketPath: string;
	readonly state: ClientState;
	readonly connected: boolean;
	/** Leases held on the current connection. */
	readonly leaseCount: number;

	/** Connects now (normally done by the first request). */
	connect(): Promise<void>;
	acquire(model: string, opts?: AcquireOptions): Promise<Lease>;
	/** Runs fn with a lease held; releases it even when fn throws or rejects. */
	withModel<T>(model: string, fn: (lease: Lease) => T | Promise<T>,
	    opts?: WithModelOptions): Promise<T>;
	stats(opts?: { timeoutMs?: number }): Promise<Stats>;
	models(opts?: { timeoutMs?: number }): Promise<ModelInfo[]>;
	evict(model: string, opts?: { force?: boolean; timeoutMs?: number }): Promise<EvictResult>;
	ping(opts?: { timeoutMs?: number }): Promise<{ version: string; [key: string]: unknown }>;
	/** Closes for good; requests in flight fail with 'closed'; poold drops the leases. */
	close(): Promise<void>;

	on(event: 'connect', listener: () => void): this;
	on(event: 'disconnect', listener: (err: PoolError, info: { leasesLost: number }) => void): this;
	on(event: 'reconnecting', listener: (info: { attempt: number }) => void): this;
	on(event: 'stray', listener: (reply: Record<string, unknown>) => void): this;
	on(event: string | symbol, listener: (...args: any[]) => void): this;
	once(event: 'connect', listener: () => void): this;
	once(event: 'disconnect', listener: (err: PoolError, info: { leasesLost: number }) => void): this;
	once(event: 'reconnecting', listener: (info: { attempt: number }) => void): this;
	once(event: string | symbol, listener: (...args: any[]) => void): this;
}

export interface EndpointOptions {
	/** Default: defaultSocketPath(). Ignored when client is given. */
	socketPath?: string;
	/** Use this client instead of the shared one. */
	client?: PoolClient;
	/** ACQUIRE's timeout_ms (default: the client's acquireTimeoutMs). */
	timeoutMs?: number;
	/** Appended to the endpoint (default "/v1/chat/completions"). */
	path?: string;
	/**
	 * Told why the fallback was used: debug() when poold is unreachable
	 * or answers busy/too_large/unknown_model, warn() for anything else.
	 */
	logger?: LoggerLike;
}

export interface ModelTarget {
	url: string;
	/** What the server needs: { authorization: "Bearer KEY" }, or {} (the fallback too). */
	headers: Record<string, string>;
	/** The server's API key; null: none (the fallback too). */
	apiKey: string | null;
	/** true: served by poold; false: the fallback. */
	pooled: boolean;
}

export interface HeldEndpoint {
	url: string;
	/** What the server needs: { authorization: "Bearer KEY" }, or {} (the fallback too). */
	headers: Record<string, string>;
	apiKey: string | null;
	/** true: served by poold; false: the fallback. */
	pooled: boolean;
	lease: Lease | null;
	/** Idempotent; a no-op for the fallback. Never rejects. */
	release(): Promise<void>;
}

/** POOLD_SOCKET, else /run/poold/poold.sock for root, else $XDG_RUNTIME_DIR/poold/poold.sock, else /tmp/poold-UID/poold.sock. */
export declare function defaultSocketPath(env?: NodeJS.ProcessEnv): string;
/** The client shared per socket path by getModelEndpoint() and acquireEndpoint(). */
export declare function getDefaultClient(socketPath?: string, opts?: PoolClientOptions): PoolClient;
export declare function closeDefaultClients(): Promise<void>;
/** poold's chat-completions URL for modelKey, or fallbackEndpoint. Never rejects. */
export declare function getModelEndpoint(modelKey: string, fallbackEndpoint: string,
    opts?: EndpointOptions): Promise<string>;
/** getModelEndpoint() with the headers a server with a key needs. Never rejects. */
export declare function getModelTarget(modelKey: string, fallbackEndpoint: string,
    opts?: EndpointOptions): Promise<ModelTarget>;
/** Like getModelEndpoint() but holds a lease until release(). Never rejects. */
export declare function acquireEndpoint(modelKey: string, fallbackEndpoint: string,
    opts?: EndpointOptions): Promise<HeldEndpoint>;
export declare const VERSION: string;
