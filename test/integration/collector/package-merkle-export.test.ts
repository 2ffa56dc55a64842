/**
 * The published library: `sakshya/merkle` (package.json `exports` → dist/shared/merkle.js) is
 * what an external auditor imports to check our proofs without trusting the collector. This
 * runs a separate Node process from the repository root, as a consumer would, against the
 * built `dist/` (made by `npm run build`, which `npm ci` runs through `prepare`).
 */
import { skipUnlessCi } from '../../helpers/skip.ts';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../helpers/collector-process.ts';

const BUILT = join(REPO_ROOT, 'dist', 'shared', 'merkle.js');

/** The RFC 6962 / Certificate Transparency test leaves and the root of all eight. */
const CT_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
const CT_ROOT_8 = '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328';
const EMPTY_ROOT_HEX = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const CONSUMER = `
const merkle = await import('sakshya/merkle');
const leaves = ${JSON.stringify(CT_LEAVES)}.map((hex) => merkle.leafHash(Buffer.from(hex, 'hex')));
const root = merkle.rootHash(leaves);
const proof = merkle.inclusionProof(5, 8, (i) => leaves[i]);
merkle.verifyInclusion(leaves[5], 5, 8, proof, root);
proof[0][0] ^= 1;
let tampered = 'accepted';
try { merkle.verifyInclusion(leaves[5], 5, 8, proof, root); } catch (err) { tampered = err instanceof merkle.RootMismatchError ? 'RootMismatchError' : String(err); }
const consistency = merkle.consistencyProof(3, 8, (i) => leaves[i]);
merkle.verifyConsistency(3, 8, consistency, merkle.rootHash(leaves.slice(0, 3)), root);
console.log(JSON.stringify({
  resolved: import.meta.resolve('sakshya/merkle'),
  empty: merkle.rootHash([]).toString('hex'),
  emptyConstant: Buffer.from(merkle.EMPTY_ROOT).toString('hex'),
  root8: root.toString('hex'),
  tampered,
}));
`;

describe('the published library sakshya/merkle', function () {
  this.timeout(20_000);

  it('resolves from the repository root to the built dist/ and computes the RFC 6962 roots and proofs', function () {
    if (!existsSync(BUILT)) {
      skipUnlessCi(this, `${BUILT} is absent; run \`npm run build\` first (\`npm ci\` builds it)`);
    }
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', CONSUMER], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    const out = JSON.parse(result.stdout) as { resolved: string; empty: string; emptyConstant: string; root8: string; tampered: string };
    assert.match(out.resolved, /\/dist\/shared\/merkle\.js$/);
    assert.equal(out.empty, EMPTY_ROOT_HEX);
    assert.equal(out.emptyConstant, EMPTY_ROOT_HEX);
    assert.equal(out.root8, CT_ROOT_8);
    assert.equal(out.tampered, 'RootMismatchError');
  });
});
