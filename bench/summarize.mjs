#!/usr/bin/env node
// Summarize bench/out/raw.csv (round,system,metric,value) as markdown:
// medians per system with the ratio to the kernel bridge, then details
// (switch CPU per test, CPU ns per frame, CPU seconds per Gbit, sanity figures)
// and the per-round values.
//
//   node bench/summarize.mjs [RAW_CSV=bench/out/raw.csv] [--baseline kernel-bridge] [--env ENV_TXT]
import { readFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
let csvPath = join(here, 'out', 'raw.csv')
let baseline = 'kernel-bridge'
let envPath = null
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--baseline') baseline = args[++i]
  else if (args[i] === '--env') envPath = args[++i]
  else if (args[i] === '-h' || args[i] === '--help') {
    console.log('usage: node bench/summarize.mjs [RAW_CSV] [--baseline SYSTEM] [--env ENV_TXT]')
    process.exit(0)
  } else csvPath = args[i]
}
if (envPath === null && existsSync(join(dirname(csvPath), 'env.txt'))) envPath = join(dirname(csvPath), 'env.txt')

/** @type {Map<string, Map<string, number[]>>} system -> metric -> values in round order */
const values = new Map()
/** @type {Map<string, string[]>} */
const errors = new Map()
const systems = []
const rounds = new Set()
for (const [n, line] of readFileSync(csvPath, 'utf8').split('\n').entries()) {
  if (!line.trim() || (n === 0 && line.startsWith('round,'))) continue
  const [round, system, metric, value] = line.split(',')
  if (value === undefined) continue
  if (!systems.includes(system)) systems.push(system)
  rounds.add(round)
  if (metric === 'error') {
    if (!errors.has(system)) errors.set(system, [])
    errors.get(system).push(`round ${round}: ${value}`)
    continue
  }
  const v = Number(value)
  if (value.trim() === '' || !Number.isFinite(v)) continue
  if (!values.has(system)) values.set(system, new Map())
  const m = values.get(system)
  if (!m.has(metric)) m.set(metric, [])
  m.get(metric).push(v)
}

function median (xs) {
  if (!xs || xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const k = s.length >> 1
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2
}
const med = (system, metric) => median(values.get(system)?.get(metric))
const has = (metric) => systems.some((s) => med(s, metric) !== null)

function fmt (x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '-'
  const a = Math.abs(x)
  if (Number.isInteger(x) || a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  if (a >= 0.1 || a === 0) return x.toFixed(2)
  return x.toPrecision(2)
}

function table (columns, withRatio) {
  const cols = columns.filter((c) => c.metrics.some(has))
  if (cols.length === 0) return []
  const out = []
  out.push('| system | ' + cols.map((c) => c.title).join(' | ') + ' |')
  out.push('|---|' + cols.map(() => '---:|').join(''))
  for (const s of systems) {
    const cells = cols.map((c) => {
      const parts = c.metrics.map((m) => {
        const x = med(s, m)
        let cell = fmt(x)
        const b = med(baseline, m)
        if (withRatio && s !== baseline && x !== null && b) cell += ` (${(x / b).toFixed(2)}x)`
        return cell
      })
      return parts.join(' / ')
    })
    out.push(`| ${s} | ${cells.join(' | ')} |`)
  }
  return out
}

const MAIN = [
  { metrics: ['tcp1_gbps'], title: 'TCP 1 stream Gbit/s' },
  { metrics: ['tcp4_gbps'], title: 'TCP 4 streams Gbit/s' },
  { metrics: ['pps_rx_kpps'], title: 'small frames kpps (64 B UDP, received)' },
  { metrics: ['ping_avg_us'], title: 'ping RTT avg µs' }
]
const CPU = [
  { metrics: ['tcp1_cpu_pct'], title: 'CPU % TCP 1' },
  { metrics: ['tcp1_cpu_s_per_gbit'], title: 'CPU s/Gbit TCP 1' },
  { metrics: ['tcp4_cpu_pct'], title: 'CPU % TCP 4' },
  { metrics: ['tcp4_cpu_s_per_gbit'], title: 'CPU s/Gbit TCP 4' },
  { metrics: ['pps_cpu_pct'], title: 'CPU % small frames' },
  { metrics: ['pps_cpu_ns_per_frame'], title: 'CPU ns/frame small frames' },
  { metrics: ['ping_cpu_pct'], title: 'CPU % ping' }
]
const SANITY = [
  { metrics: ['tcp1_busy_pct', 'tcp4_busy_pct', 'pps_busy_pct', 'ping_busy_pct'], title: 'machine busy % TCP1 / TCP4 / frames / ping' },
  { metrics: ['tcp1_retr', 'tcp4_retr'], title: 'TCP retransmits 1 / 4' },
  { metrics: ['pps_tx_kpps', 'pps_udp_rx_kpps', 'pps_loss_pct'], title: 'frames: sent kpps / UDP stack rx kpps / lost %' },
  { metrics: ['pps_enobufs'], title: 'generator ENOBUFS' },
  { metrics: ['ping_p50_us', 'ping_min_us', 'ping_max_us', 'ping_mdev_us'], title: 'ping p50 / min / max / mdev µs' },
  { metrics: ['ping_loss_pct'], title: 'ping loss %' }
]

const lines = []
lines.push(`# Switchyard benchmark: medians of ${rounds.size} round${rounds.size === 1 ? '' : 's'}`)
lines.push('')
if (envPath && existsSync(envPath)) {
  for (const l of readFileSync(envPath, 'utf8').split('\n')) if (l.trim()) lines.push(`- ${l}`)
  lines.push('')
}
lines.push(...table(MAIN, true))
lines.push('')
lines.push(`In parentheses: median of the system / median of \`${baseline}\` (for ping, above 1x = slower).`)
lines.push('')
const cpu = table(CPU, false)
if (cpu.length) {
  lines.push('## Switch CPU time during each test')
  lines.push('')
  lines.push(...cpu)
  lines.push('')
  lines.push('CPU = utime+stime of the switch process (all threads) over the test\'s wall time; 100 % = one core. ' +
    'A kernel data plane has no process to charge (`-`): its cost is in the senders\' and receivers\' softirq time, ' +
    'see machine busy below. CPU s/Gbit = switch CPU seconds per Gbit carried (CPU % / 100 / Gbit/s). ' +
    'CPU ns/frame = switch CPU time / frames received in sbB.')
  lines.push('')
}
lines.push('## Sanity figures')
lines.push('')
lines.push(...table(SANITY, false))
lines.push('')
lines.push('Machine busy = user+nice+system+irq+softirq over all cores (100 % = all cores busy), same windows.')
lines.push('')
lines.push('## Per round')
lines.push('')
const perRound = [['tcp1_gbps', 'tcp1 Gbit/s'], ['tcp4_gbps', 'tcp4 Gbit/s'], ['pps_rx_kpps', 'frames kpps'], ['ping_avg_us', 'ping µs']]
for (const s of systems) {
  const parts = perRound
    .map(([m, t]) => [t, values.get(s)?.get(m)])
    .filter(([, v]) => v && v.length)
    .map(([t, v]) => `${t} [${v.join(', ')}]`)
  const err = errors.get(s)
  lines.push(`- ${s}: ${parts.join('; ') || 'no values'}${err ? `; **errors**: ${err.join(', ')}` : ''}`)
}
console.log(lines.join('\n'))
