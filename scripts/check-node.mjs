// Stops at once, with a message that says what to do, when this Node.js cannot run Sakshya.
//
// Sakshya's source is TypeScript that Node runs directly (`node scripts/demo.ts`, the tests, the
// benchmarks), and Node strips the types by default only from 22.18 (on the short-lived 23 line,
// from 23.6). An older Node fails later, deep inside a command, with ERR_UNKNOWN_FILE_EXTENSION
// ".ts". This file is plain JavaScript that old Node versions still run. It is the first step of
// `npm run demo`, `npm test`, `npm run bench` and `npm run soak`, and `.ci/run` asks it whether
// to provision Node 24. `npm ci` / `npm install` stop before it: package.json's `engines` with
// `engine-strict=true` (.npmrc).
//
//   node scripts/check-node.mjs     exit 0, silent, if this Node is supported; else a message and 1
//
// SAKSHYA_CHECK_NODE_VERSION=20.19.0 checks that version instead of this process's (for tests).
// test/unit/docs/node-gate.test.ts holds this rule, package.json's engines and .ci/run together.

/** The same range as package.json's `engines.node`. */
const SUPPORTED_RANGE = '^22.18.0 || >=23.6.0';
/** The lowest minor, per major, that runs .ts files by default; every major after the last listed does. */
const LOWEST_MINOR = { 22: 18, 23: 6 };

function supported(version) {
  const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!match) return false;
  const major = Number(match[1]);
  const minor = Number(match[2]);
  const majors = Object.keys(LOWEST_MINOR).map(Number);
  if (major < Math.min.apply(null, majors)) return false;
  if (major > Math.max.apply(null, majors)) return true;
  return minor >= LOWEST_MINOR[major];
}

const version = process.env.SAKSHYA_CHECK_NODE_VERSION || process.versions.node;
if (!supported(version)) {
  process.stderr.write(
    [
      'Sakshya needs Node.js 22.18 or newer (Node.js 24 LTS recommended); this is Node.js ' + version + '.',
      'Older versions cannot run its TypeScript files (ERR_UNKNOWN_FILE_EXTENSION ".ts"); supported: ' + SUPPORTED_RANGE + '.',
      'Get Node.js 24 LTS from https://nodejs.org/en/download (or `nvm install 24` with nvm, or your',
      "distribution's Node.js 24 packages), check `node --version`, then run `npm ci` again (native",
      'modules are built for the Node.js that installs them) and this command.',
      '',
    ].join('\n'),
  );
  process.exit(1);
}
