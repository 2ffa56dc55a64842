/** Running a bin under a chosen umask, as a shell or service manager with that umask would. */

/**
 * The command line that runs `bin args` under `umask` (octal text such as '000'), through a
 * shell that sets it and then execs the bin: the child keeps the shell's pid and that umask.
 */
export function withUmask(umask: string | undefined, bin: string, args: readonly string[]): [string, string[]] {
  if (umask === undefined) return [bin, [...args]];
  if (!/^[0-7]{3,4}$/.test(umask)) throw new Error(`umask ${umask} is not octal`);
  return ['/bin/sh', ['-c', `umask ${umask} && exec "$0" "$@"`, bin, ...args]];
}
