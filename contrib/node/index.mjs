// ESM entry of poold-client: the CommonJS module, re-exported.
import cjs from './index.js';

export const {
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
} = cjs;

export default cjs;
