/**
 * Output of listings: `--format table` (aligned columns, for people) or `--format json`.
 */
export type Format = 'table' | 'json'

export interface Column<T> {
  header: string
  get: (row: T) => unknown
}

export function render<T>(rows: T[], columns: Column<T>[], format: Format): string {
  if (format === 'json') return JSON.stringify(rows, null, 2)
  const cells = rows.map((r) => columns.map((c) => cellText(c.get(r))))
  const headers = columns.map((c) => c.header)
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i].length)))
  const line = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]))).join('   ').trimEnd()
  return [line(headers), ...cells.map(line)].join('\n')
}

function cellText(v: unknown): string {
  if (v === undefined || v === null) return ''
  if (Array.isArray(v)) return v.join(',')
  return String(v)
}

/** A single object: JSON either way, as `docker inspect` does. */
export function renderObject(obj: unknown): string {
  return JSON.stringify(obj, null, 2)
}
