import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metadataCap, openRegularFile, readCappedFile } from '../../../verifier/bundle-file.ts';
import { BundleInputError } from '../../../verifier/problems.ts';

function refusal(check: string, message: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof BundleInputError, String(err));
    assert.equal(err.problem.check, check);
    assert.match(err.problem.message, message);
    return true;
  };
}

describe('bundle-file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sakshya-bundle-file-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a regular file under its cap, and gives undefined for a missing one', async () => {
    writeFileSync(join(dir, 'keys.json'), '{"a":1}');
    assert.equal(readCappedFile(join(dir, 'keys.json'), 7)?.toString(), '{"a":1}');
    assert.equal(readCappedFile(join(dir, 'nope'), 7), undefined);
    assert.equal(await openRegularFile(join(dir, 'nope')), undefined);
    const handle = await openRegularFile(join(dir, 'keys.json'));
    assert.ok(handle);
    await handle.close();
  });

  it('refuses a file one byte over its cap without reading it', () => {
    writeFileSync(join(dir, 'manifest.json'), 'x'.repeat(8));
    assert.throws(() => readCappedFile(join(dir, 'manifest.json'), 7), refusal('file.too_large', /larger than 7 bytes/));
  });

  it('refuses a FIFO at once instead of waiting for a writer', async () => {
    execFileSync('mkfifo', [join(dir, 'manifest.json')]);
    assert.throws(() => readCappedFile(join(dir, 'manifest.json'), 1024), refusal('file.not_regular', /FIFO/));
    await assert.rejects(openRegularFile(join(dir, 'manifest.json')), refusal('file.not_regular', /FIFO/));
  });

  it('refuses a symlink, even to a regular file', async () => {
    writeFileSync(join(dir, 'real.json'), '{}');
    symlinkSync(join(dir, 'real.json'), join(dir, 'keys.json'));
    assert.throws(() => readCappedFile(join(dir, 'keys.json'), 1024), refusal('file.not_regular', /symbolic link/));
    await assert.rejects(openRegularFile(join(dir, 'keys.json')), refusal('file.not_regular', /symbolic link/));
  });

  it('refuses a directory and a device', async () => {
    mkdirSync(join(dir, 'keys.json'));
    assert.throws(() => readCappedFile(join(dir, 'keys.json'), 1024), refusal('file.not_regular', /a directory/));
    await assert.rejects(openRegularFile('/dev/null'), refusal('file.not_regular', /a device/));
  });

  it('caps the metadata files only, manifest.jws at 4/3 of the cap for its base64url payload', () => {
    assert.equal(metadataCap('manifest.json', 3000), 3000);
    assert.equal(metadataCap('keys.json', 3000), 3000);
    assert.equal(metadataCap('checkpoint', 3000), 3000);
    assert.equal(metadataCap('manifest.jws', 3000), 4000 + 4096);
    assert.equal(metadataCap('records.jsonl', 3000), undefined);
  });
});
