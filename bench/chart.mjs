// Draws the ratios to the kernel bridge (medians from bench/out/raw.csv) as an SVG bar
// chart: one group per metric, one bar per system. Run by bench/run.sh after summarize.mjs;
// by hand: node bench/chart.mjs [bench/out] > chart.svg
import fs from 'node:fs'
import path from 'node:path'

const dir = process.argv[2] ?? path.join(path.dirname(new URL(import.meta.url).pathname), 'out')
const rows = fs.readFileSync(path.join(dir, 'raw.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','))
const BASE = 'kernel-bridge'
const METRICS = [
  ['tcp1_gbps', 'TCP 1 stream', false],
  ['tcp4_gbps', 'TCP 4 streams', false],
  ['pps_rx_kpps', 'small frames/s', false],
  ['ping_avg_us', 'ping RTT (inverted: kernel/system)', true],
]

const values = new Map()
for (const [, system, metric, value] of rows) {
  const v = Number(value)
  if (!Number.isFinite(v)) continue
  const k = `${system}|${metric}`
  if (!values.has(k)) values.set(k, [])
  values.get(k).push(v)
}
const median = (xs) => {
  if (!xs?.length) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const systems = [...new Set(rows.map((r) => r[1]))].filter((s) => s !== BASE)
const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b']

const W = 760
const H = 360
const left = 50
const top = 40
const bottom = 70
const plotH = H - top - bottom
const groupW = (W - left - 20) / METRICS.length
const barW = Math.min(28, (groupW - 20) / Math.max(1, systems.length))
const maxRatio = 1.5
const y = (r) => top + plotH - (Math.min(r, maxRatio) / maxRatio) * plotH

let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">\n`
svg += `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">Ratio to the Linux kernel bridge (medians, same run; 1.0 = kernel)</text>\n`
for (const r of [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5]) {
  svg += `<line x1="${left}" x2="${W - 20}" y1="${y(r)}" y2="${y(r)}" stroke="${r === 1 ? '#000' : '#ddd'}"/>`
  svg += `<text x="${left - 6}" y="${y(r) + 4}" text-anchor="end">${r.toFixed(2)}</text>\n`
}
METRICS.forEach(([metric, title, inverted], gi) => {
  const base = median(values.get(`${BASE}|${metric}`))
  const gx = left + gi * groupW + 10
  systems.forEach((s, si) => {
    const v = median(values.get(`${s}|${metric}`))
    if (base === undefined || v === undefined || v === 0) return
    const ratio = inverted ? base / v : v / base
    const x = gx + si * barW
    svg += `<rect x="${x}" y="${y(ratio)}" width="${barW - 3}" height="${top + plotH - y(ratio)}" fill="${colors[si % colors.length]}"><title>${s} ${title}: ${ratio.toFixed(2)}x</title></rect>`
    svg += `<text x="${x + (barW - 3) / 2}" y="${y(ratio) - 3}" text-anchor="middle" font-size="9">${ratio.toFixed(2)}</text>\n`
  })
  svg += `<text x="${gx + (systems.length * barW) / 2}" y="${top + plotH + 16}" text-anchor="middle">${title}</text>\n`
})
systems.forEach((s, si) => {
  const x = left + si * 150
  svg += `<rect x="${x}" y="${H - 24}" width="12" height="12" fill="${colors[si % colors.length]}"/><text x="${x + 16}" y="${H - 14}">${s}</text>\n`
})
svg += '</svg>\n'
process.stdout.write(svg)
