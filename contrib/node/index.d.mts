// Type definitions for poold-client 0.1.0 (ESM entry).
import * as poold from './index.js';

export * from './index.js';
export default poold;
