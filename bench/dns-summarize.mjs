#!/usr/bin/env node
// Summarize bench/out/dns/raw.csv (round,system,metric,value; metric =
// MIX_LOAD_NAME, e.g. local_max_qps) as markdown: medians over rounds per
// system and test, the ratio Switchyard / dnsmasq, details, and per-round values.
//
//   node bench/dns-summarize.mjs [RAW_CSV=bench/out/dns/raw.csv] [--env ENV_TXT] [--notes NOTES_TXT]
import { readFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
let csvPath = join(here, 'out', 'dns', 'raw.csv')
let envPath = null
let notesPath = null
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--env') envPath = args[++i]
  else if (args[i] === '--notes') notesPath = args[++i]
  else if (args[i] === '-h' || args[i] === '--help') {
    console.log('usage: node bench/dns-summarize.mjs [RAW_CSV] [--env ENV_TXT] [--notes NOTES_TXT]')
    process.exit(0)
  } else csvPath = args[i]
}
if (envPath === null && existsSync(join(dirname(csvPath), 'env.txt'))) envPath = join(dirname(csvPath), 'env.txt')
if (notesPath === null && existsSync(join(dirname(csvPath), 'notes.txt'))) notesPath = join(dirname(csvPath), 'notes.txt')

const BASE = 'dnsmasq'
const SUBJECT = 'switchyard'
/** system -> metric -> Map(round -> value) */
const values = new Map()
const errors = []
const systems = []
const rounds = []
for (const [n, line] of readFileSync(csvPath, 'utf8').split('\n').entries()) {
  if (!line.trim() || (n === 0 && line.startsWith('round,'))) continue
  const [round, system, metric, value] = line.split(',')
  if (value === undefined) continue
  if (!systems.includes(system)) systems.push(system)
  if (!rounds.includes(round)) rounds.push(round)
  if (metric.endsWith('error')) {
    errors.push(`round ${round}, ${system}: ${metric.replace(/_?error$/, '') || '-'} ${value}`)
    continue
  }
  const v = Number(value)
  if (value.trim() === '' || !Number.isFinite(v)) continue
  if (!values.has(system)) values.set(system, new Map())
  const m = values.get(system)
  if (!m.has(metric)) m.set(metric, new Map())
  m.get(metric).set(round, v)
}
systems.sort((a, b) => (a === SUBJECT ? -1 : b === SUBJECT ? 1 : a.localeCompare(b)))

const env = envPath && existsSync(envPath) ? readFileSync(envPath, 'utf8') : ''
const rate = (env.match(/BENCH_DNS_RATE=(\d+)/) || [])[1] || '?'
const clients = (env.match(/BENCH_DNS_CLIENTS=(\d+)/) || [])[1] || '?'
const outstanding = (env.match(/BENCH_DNS_OUTSTANDING=(\d+)/) || [])[1] || '?'
const secs = (env.match(/BENCH_DNS_T=(\d+)/) || [])[1] || '?'
const names = (env.match(/BENCH_DNS_NAMES=(\d+)/) || [])[1] || '?'

function median (xs) {
  if (!xs || xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const k = s.length >> 1
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2
}
const series = (s, m) => values.get(s)?.get(m)
const med = (s, m) => {
  const x = series(s, m)
  return x ? median([...x.values()]) : null
}

function fmt (x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '-'
  const a = Math.abs(x)
  if (Number.isInteger(x) || a >= 100) return Math.round(x).toString()
  if (a >= 10) return x.toFixed(1)
  if (a >= 0.1 || a === 0) return x.toFixed(2)
  return x.toPrecision(2)
}
const ratio = (a, b) => (a === null || b === null || b === 0 ? '-' : `${(a / b).toFixed(2)}x`)

// tests present, in a fixed order
const MIXES = [['local', 'local names (sandboxes + aliases)'], ['cached', `forwarded names from the cache (${names} names under bench.test)`]]
const LOADS = [['max', 'max rate'], ['rate', `${rate} q/s`]]
const tests = []
for (const [mix, mixTitle] of MIXES) {
  for (const [load, loadTitle] of LOADS) {
    const p = `${mix}_${load}_`
    if (systems.some((s) => med(s, p + 'qps') !== null)) tests.push({ p, mix, load, title: `${mixTitle}, ${loadTitle}` })
  }
}

const out = []
out.push('## Embedded DNS: Switchyard vs dnsmasq')
out.push('')
if (env) {
  const pick = (k) => (env.match(new RegExp(`^${k}: (.*)$`, 'm')) || [])[1]
  out.push(`- ${pick('date') ?? ''}; ${pick('host') ?? ''}`)
  out.push(`- ${pick('node') ?? ''}; switchyard ${pick('repo') ?? ''}`)
  out.push(`- rounds: ${rounds.length}; dnsperf ${secs} s per run, -c ${clients} -q ${outstanding}; order alternates per round`)
  for (const w of env.match(/^warning: .*$/gm) || []) out.push(`- **${w}**`)
  out.push(`- load average at start: ${pick('loadavg at start') ?? '?'}; at end: ${pick('loadavg at end') ?? '?'}; machine busy in the 2 s before: ${pick('machine busy in the 2 s before start') ?? '?'}`)
  out.push('')
}

out.push(`Medians over ${rounds.length} round(s). Ratio = Switchyard / dnsmasq (for latency and CPU per query, above 1x = worse).`)
out.push('')
out.push('| test | system | queries/s | lost | avg latency µs | p99 latency µs | max latency µs | server CPU % | server CPU µs/query |')
out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|')
for (const t of tests) {
  let first = true
  for (const s of systems) {
    const lost = med(s, t.p + 'lost')
    const lostPct = med(s, t.p + 'lost_pct')
    out.push(`| ${first ? t.title : ''} | ${s} | ${fmt(med(s, t.p + 'qps'))} | ${lost === null ? '-' : `${fmt(lost)} (${fmt(lostPct)} %)`} | ${fmt(med(s, t.p + 'lat_avg_us'))} | ${fmt(med(s, t.p + 'lat_p99_us'))} | ${fmt(med(s, t.p + 'lat_max_us'))} | ${fmt(med(s, t.p + 'server_cpu_pct'))} | ${fmt(med(s, t.p + 'server_cpu_us_per_q'))} |`)
    first = false
  }
  if (systems.includes(SUBJECT) && systems.includes(BASE)) {
    const r = (m) => ratio(med(SUBJECT, t.p + m), med(BASE, t.p + m))
    out.push(`| | **ratio** | **${r('qps')}** | | **${r('lat_avg_us')}** | **${r('lat_p99_us')}** | ${r('lat_max_us')} | ${r('server_cpu_pct')} | **${r('server_cpu_us_per_q')}** |`)
  }
}
out.push('')
out.push(`queries/s, lost, avg and max latency: dnsperf's own summary. p99: from dnsperf -v's per-query latencies, only in the paced runs (${rate} q/s; completed queries only). ` +
  'Server CPU: utime+stime of the Switchyard daemon (all threads) or of the peer dnsmasq, over the run\'s wall time (100 % = one core); µs/query = that CPU time / completed queries. ' +
  'Max rate = dnsperf with no -Q, -c clients and -q queries outstanding.')
out.push('')

// details
out.push('### Details')
out.push('')
out.push('| test | system | p50 µs | p99.9 µs | latency stddev µs | NOERROR % | client (dnsperf) CPU % | machine busy % (softirq) | server counters during the run |')
out.push('|---|---|---:|---:|---:|---:|---:|---:|---|')
for (const t of tests) {
  let first = true
  for (const s of systems) {
    let counters = '-'
    if (s === SUBJECT) {
      const c = ['queries', 'answeredLocal', 'forwarded', 'cacheHits', 'dropped', 'refused', 'servfail']
        .map((k) => [k, med(s, t.p + 'sy_' + k)]).filter(([, v]) => v !== null)
      if (c.length) counters = c.map(([k, v]) => `${k} ${fmt(v)}`).join(', ')
    } else if (s === BASE) {
      const f = med(s, t.p + 'dm_forwarded')
      const l = med(s, t.p + 'dm_answered_locally')
      if (f !== null) counters = `forwarded ${fmt(f)}, answered locally ${fmt(l)}`
    }
    out.push(`| ${first ? t.title : ''} | ${s} | ${fmt(med(s, t.p + 'lat_p50_us'))} | ${fmt(med(s, t.p + 'lat_p999_us'))} | ${fmt(med(s, t.p + 'lat_sd_us'))} | ${fmt(med(s, t.p + 'rcode_NOERROR_pct'))} | ${fmt(med(s, t.p + 'client_cpu_pct'))} | ${fmt(med(s, t.p + 'busy_pct'))} (${fmt(med(s, t.p + 'softirq_pct'))}) | ${counters} |`)
    first = false
  }
}
out.push('')
out.push('Server counters (medians of per-run deltas): Switchyard `stats` .dns; dnsmasq\'s own statistics (SIGUSR1 to its log, "queries forwarded / answered locally"; it counts answers from its cache of forwarded names as answered locally). ' +
  'Forwarded 0 during the cached runs = every answer came from the cache. Machine busy = user+nice+system+irq+softirq over all cores (100 % = all busy), softirq in brackets: ' +
  'kernel network work done in softirq context (the veth/UDP path to dnsmasq, the TAP path to Switchyard) is charged to no process, so it is in neither server CPU column. ' +
  'Client CPU = dnsperf\'s utime+stime (all threads), sampled every 0.2 s until it exits.')
out.push('')

// per round
out.push('### Per round')
out.push('')
out.push('Max rate: queries/s; avg latency µs. Paced: avg; p99 latency µs. Machine load average (1 min) when the run started in brackets.')
out.push('')
out.push('| test | system | ' + rounds.map((r) => `round ${r}`).join(' | ') + ' |')
out.push('|---|---|' + rounds.map(() => '---:|').join(''))
for (const t of tests) {
  let first = true
  for (const s of systems) {
    const [a, b] = t.load === 'max' ? ['qps', 'lat_avg_us'] : ['lat_avg_us', 'lat_p99_us']
    const cell = (r) => {
      const x = series(s, t.p + a)?.get(r) ?? null
      const y = series(s, t.p + b)?.get(r) ?? null
      const l = series(s, t.p + 'loadavg1')?.get(r) ?? null
      return `${fmt(x)}; ${fmt(y)}${l === null ? '' : ` [${l.toFixed(2)}]`}`
    }
    out.push(`| ${first ? t.title : ''} | ${s} | ` + rounds.map(cell).join(' | ') + ' |')
    first = false
  }
}
out.push('')

if (errors.length) {
  out.push('### Errors')
  out.push('')
  for (const e of errors) out.push(`- ${e}`)
  out.push('')
}
console.log(out.join('\n'))
