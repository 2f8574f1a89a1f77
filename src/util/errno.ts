import os from 'node:os'

const names = new Map<number, string>()
for (const [name, n] of Object.entries(os.constants.errno)) names.set(n, name)

/** 'EIO' for -5 or 5. */
export function errnoName(n: number): string {
  return names.get(Math.abs(n)) ?? `errno ${Math.abs(n)}`
}
