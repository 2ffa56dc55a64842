/**
 * Skipping a test that needs something this machine lacks: on a developer's machine it is
 * skipped with a line that says what is missing and how to get it; in CI (`CI=true`), which
 * provisions everything the suite needs, the same lack is a failure, never a silent skip.
 */
export function skipUnlessCi(context: Mocha.Context, reason: string): never {
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must provide it`);
  console.log(`      skipped: ${reason}`);
  context.skip();
}

/** Skips for a reason no machine can fix (another platform, a tool this machine need not have); says which. */
export function skipBecause(context: Mocha.Context, reason: string): never {
  console.log(`      skipped: ${reason}`);
  context.skip();
}
