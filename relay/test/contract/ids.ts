/** Fresh ids per test, so suites sharing one Redis never see each other's data. */
let counter = 0;

export function uniqueId(prefix: string): string {
  counter++;
  return `${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Ids that must be refused before they become keys or channels. */
export const BAD_IDS = ['', 'UPPER', '{hash}', 'a*', '-x', 'x'.repeat(65), '__proto__', 'site:1', 'a b', 'é'];
