'use strict';
/*
 * Runs poold under PM2:
 *
 *	pm2 start contrib/pm2/ecosystem.config.js
 *
 * poold runs in the foreground (-f) and is the parent of every
 * llama-server it starts.  On stop it stops them itself (SIGTERM, again
 * after 1 s, SIGKILL at stop_timeout) and exits only when all are reaped.
 * PM2 must let it: by default PM2 signals every descendant of the app at
 * once ("treekill") and SIGKILLs after 1.6 s, which would kill the servers
 * behind poold's back and poold before it has reaped them.
 *
 * The environment, read when PM2 loads this file:
 *	POOLD_BIN	the daemon (default /usr/local/sbin/poold, where
 *			`make install` puts it; else `poold` from PATH)
 *	POOLD_CONFIG	its config file (default /etc/poold/poold.json)
 *	POOLD_PM2_NAME	the app's name in PM2 (default "poold")
 */

const fs = require('node:fs');
const path = require('node:path');

function defaultBin() {
	const installed = '/usr/local/sbin/poold';
	try {
		fs.accessSync(installed, fs.constants.X_OK);
		return installed;
	} catch {
		return 'poold';
	}
}

/* Relative paths are taken from where `pm2 start` runs, not the app's cwd. */
const envBin = process.env.POOLD_BIN;
const bin = envBin ? (envBin.includes('/') ? path.resolve(envBin) : envBin) :
    defaultBin();
const config = path.resolve(process.env.POOLD_CONFIG || '/etc/poold/poold.json');

module.exports = {
	apps: [{
		name: process.env.POOLD_PM2_NAME || 'poold',
		script: bin,
		args: ['-f', config],
		interpreter: 'none',		/* a native binary, not node */
		exec_mode: 'fork',
		instances: 1,			/* one poold per socket and budget */

		/*
		 * Stopping: poold, and only poold, gets the signal ...  PM2
		 * sends SIGINT (PM2_KILL_SIGNAL in the PM2 daemon's
		 * environment; there is no per-app setting), which poold
		 * treats as SIGTERM: stop every server, remove the socket,
		 * exit 0.  See poold(8), SIGNALS.
		 */
		treekill: false,
		/*
		 * ... and this long to stop its servers before PM2 SIGKILLs it.
		 * Must exceed poold's stop_timeout (10 s by default; see
		 * poold.json(5)) plus the time to reap: a SIGKILLed poold
		 * leaves its servers to die of its death alone.  Raise it
		 * together with stop_timeout.
		 */
		kill_timeout: 30000,

		/*
		 * Restarting: after a crash, with a growing delay (100 ms,
		 * 150 ms, … up to 15 s), reset once it has run for 30 s.  A
		 * poold that cannot even stay up 5 s (a broken config) is
		 * given up on after 50 tries: see `pm2 logs poold`.
		 */
		autorestart: true,
		exp_backoff_restart_delay: 100,
		min_uptime: 5000,
		max_restarts: 50,
		/* Starting a pool is not a code change: no file watching. */
		watch: false,

		/* poold logs to stderr; PM2 keeps it (pm2 logs poold). */
		time: true,
		merge_logs: true,
	}],
};
