#!/usr/bin/env node
// Summarize bench/out/nat/raw.csv (round,system,metric,value) of bench/nat.sh as markdown:
// medians per system with the ratio to the kernel path, the details, the flow tests and
// the per-round values.
//
//   node bench/nat/summarize.mjs [RAW_CSV=bench/out/nat/raw.csv] [--baseline kernel-nat] [--env ENV_TXT]
import { readFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
let csvPath = join(here, '..', 'out', 'nat', 'raw.csv')
let baseline = 'kernel-nat'
let envPath = null
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--baseline') baseline = args[++i]
  else if (args[i] === '--env') envPath = args[++i]
  else if (args[i] === '-h' || args[i] === '--help') {
    console.log('usage: node bench/nat/summarize.mjs [RAW_CSV] [--baseline SYSTEM] [--env ENV_TXT]')
    process.exit(0)
  } else csvPath = args[i]
}
if (envPath === null && existsSync(join(dirname(csvPath), 'env.txt'))) envPath = join(dirname(csvPath), 'env.txt')

/** system -> metric -> [{round, v}] */
const values = new Map()
const errors = new Map()
const systems = []
const rounds = []
for (const [n, line] of readFileSync(csvPath, 'utf8').split('\n').entries()) {
  if (!line.trim() || (n === 0 && line.startsWith('round,'))) continue
  const [round, system, metric, value] = line.split(',')
  if (value === undefined) continue
  if (!systems.includes(system)) systems.push(system)
  if (!rounds.includes(round)) rounds.push(round)
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
  m.get(metric).push({ round, v })
}
const order = [baseline, ...systems.filter((s) => s !== baseline)].filter((s) => systems.includes(s))

function median(xs) {
  if (!xs || xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const k = s.length >> 1
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2
}
const vals = (s, m) => values.get(s)?.get(m)?.map((x) => x.v)
const med = (s, m) => median(vals(s, m))
const has = (m) => systems.some((s) => med(s, m) !== null)

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '-'
  const a = Math.abs(v)
  if (a === 0) return '0'
  if (a >= 100) return v.toFixed(0)
  if (a >= 10) return v.toFixed(1)
  if (a >= 1) return v.toFixed(2)
  return v.toPrecision(2)
}
function withRatio(s, m) {
  const v = med(s, m)
  if (v === null) return '-'
  if (s === baseline) return fmt(v)
  const b = med(baseline, m)
  return b ? `${fmt(v)} (${(v / b).toFixed(2)}x)` : fmt(v)
}
const table = (head, rows) =>
  [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')

const out = []
out.push('# NAT and published ports: kernel path (Docker-like), Switchyard, pasta\n')
if (envPath && existsSync(envPath)) {
  out.push('```')
  out.push(readFileSync(envPath, 'utf8').trim())
  out.push('```\n')
}
const n = rounds.length
out.push(`Medians over ${n} round${n === 1 ? '' : 's'}; in parentheses the ratio to \`${baseline}\`.\n`)

const main = [
  ['tcp_egress_gbps', 'TCP egress Gbit/s'],
  ['tcp_published_gbps', 'TCP published Gbit/s'],
  ['conn_egress_per_s', 'new conn/s egress'],
  ['conn_published_per_s', 'new conn/s published'],
].filter(([m]) => has(m))
if (main.length) {
  out.push(table(['system', ...main.map(([, h]) => h)], order.map((s) => [s, ...main.map(([m]) => withRatio(s, m))])))
  out.push('')
  out.push('TCP = `iperf3 -t T -O 1 -J`, 1 stream, receiver throughput; egress = sandbox -> server in the outside netns, published = client in the outside netns -> host port -> server in the sandbox. new conn/s = HTTP GETs, each on a new TCP connection, 8 at a time (bench/nat/http-client.mjs).\n')

  const det = [
    ['tcp_egress_retr', 'retr egress'],
    ['tcp_published_retr', 'retr published'],
    ['tcp_egress_min_1s_gbps', 'slowest 1 s egress Gbit/s'],
    ['tcp_published_min_1s_gbps', 'slowest 1 s published Gbit/s'],
    ['tcp_egress_cpu_pct', 'NAT CPU % egress'],
    ['tcp_published_cpu_pct', 'NAT CPU % published'],
    ['tcp_egress_cpu_s_per_gbit', 'NAT CPU s/Gbit egress'],
    ['tcp_published_cpu_s_per_gbit', 'NAT CPU s/Gbit published'],
    ['tcp_egress_busy_pct', 'machine busy % egress'],
    ['tcp_published_busy_pct', 'machine busy % published'],
  ].filter(([m]) => has(m))
  if (det.length) {
    out.push('### TCP details (medians)\n')
    out.push(table(['system', ...det.map(([, h]) => h)], order.map((s) => [s, ...det.map(([m]) => fmt(med(s, m)))])))
    out.push('\nNAT CPU = utime+stime of the NAT process (Switchyard daemon, pasta) over the test, 100 % = one core; the kernel path has none (its cost is softirq time, see machine busy, 100 % = both cores).\n')
  }
  const cdet = [
    ['conn_egress_errors', 'failed egress'],
    ['conn_published_errors', 'failed published'],
    ['conn_egress_p50_ms', 'p50 ms egress'],
    ['conn_egress_p99_ms', 'p99 ms egress'],
    ['conn_published_p50_ms', 'p50 ms published'],
    ['conn_published_p99_ms', 'p99 ms published'],
    ['conn_egress_cpu_us_per_conn', 'NAT CPU µs/conn egress'],
    ['conn_published_cpu_us_per_conn', 'NAT CPU µs/conn published'],
    ['conn_egress_busy_pct', 'machine busy % egress'],
    ['conn_published_busy_pct', 'machine busy % published'],
  ].filter(([m]) => has(m))
  if (cdet.length) {
    out.push('### Connection details (medians)\n')
    out.push(table(['system', ...cdet.map(([, h]) => h)], order.map((s) => [s, ...cdet.map(([m]) => fmt(med(s, m)))])))
    out.push('\nfailed = requests that got no answer within the client\'s 5 s timeout or failed (the client then starts the next one).\n')
  }
}

// flow tests: metrics flows_<dir>_<n>[_sp<source ports>]_<what>
const flowTests = [...new Set(systems.flatMap((s) => [...(values.get(s)?.keys() ?? [])]).map((m) => m.match(/^flows_((?:egress|published)_\d+(?:_sp\d+)?)_/)?.[1]).filter(Boolean))]
for (const t of flowTests) {
  const [dir, count, spS] = t.split('_')
  const sp = spS ? Number(spS.slice(2)) : 0
  const m = (w) => `flows_${t}_${w}`
  out.push(`### ${Number(count).toLocaleString('en')} UDP flows, ${dir}${sp ? ` from ${sp} source ports` : ''} (medians)\n`)
  const rows = order.map((s) => {
    const tr = med(s, m('tracked'))
    const r0 = med(s, m('rss_before_mb'))
    const r1 = med(s, m('rss_after_mb'))
    const perFlow = tr && r0 !== null && r1 !== null ? ((r1 - r0) * 1048576) / tr : null
    const api = vals(s, m('api_ok'))
    const back = med(s, m('api_back_s'))
    return [
      s,
      fmt(tr),
      fmt(med(s, m('delivered'))),
      r0 === null ? '-' : `${fmt(r0)} -> ${fmt(r1)}`,
      perFlow === null ? '-' : fmt(perFlow),
      med(s, m('fds_after')) === null ? '-' : `${fmt(med(s, m('fds_before')))} -> ${fmt(med(s, m('fds_after')))}`,
      fmt(med(s, m('slab_delta_mb'))),
      s === baseline ? fmt(med(s, m('ct_slab_delta_mb'))) : '-',
      api ? `${api.filter((x) => x === 1).length}/${api.length}${back !== null ? ` (back after ~${fmt(back)} s)` : ''}` : '-',
      fmt(med(s, m('gen_s'))),
    ]
  })
  out.push(table(['system', 'tracked', 'delivered', 'RSS MiB before -> after', 'RSS B/tracked flow', 'fds before -> after', 'kernel slab Δ MiB', 'conntrack slab Δ MiB', 'API answered', 'generator s'], rows))
  const per = Number(count) / sp
  const shape = sp
    ? `From the sandbox: ${sp} source ports (10000..), each to ${per.toLocaleString('en')} destinations (${Math.ceil(per / Math.min(per, 500))} addresses of the outside netns x ${Math.min(per, 500)} ports)`
    : `${dir === 'egress' ? 'From the sandbox: source ports ' : 'From the outside netns to two published UDP host ports: source ports '}10000.. (${Number(count) / 2} of them) x 2 destination ports`
  out.push(
    `\n${shape}, one datagram each, paced; read 2 s after the generator ends. tracked = Switchyard \`stats\` nat.flows / the kernel's nf_conntrack_count in its host netns (pasta has no count); delivered = datagrams the sink received. RSS = the NAT process (Switchyard daemon, pasta). kernel slab Δ = /proc/meminfo Slab, whole machine (indicative: anything else running moves it); conntrack slab Δ = the nf_conntrack cache. API answered = Switchyard's \`stats\` answered right after the flows were made.\n`,
  )
}

// per-round values of the main figures
const perRound = [
  ['tcp_egress_gbps', 'TCP egress'],
  ['tcp_published_gbps', 'TCP published'],
  ['conn_egress_per_s', 'conn/s egress'],
  ['conn_published_per_s', 'conn/s published'],
  ...flowTests.map((t) => [`flows_${t}_tracked`, `tracked ${t.replaceAll('_', ' ')}`]),
].filter(([m]) => has(m))
if (perRound.length) {
  out.push('### Per round\n')
  out.push(table(['system', ...perRound.map(([, h]) => h)], order.map((s) => [s, ...perRound.map(([m]) => (values.get(s)?.get(m) ?? []).map((x) => fmt(x.v)).join(' / ') || '-')])))
  out.push('')
}

if (errors.size) {
  out.push('### Errors\n')
  for (const s of order) if (errors.has(s)) out.push(`- ${s}: ${errors.get(s).join(', ')}`)
  out.push('')
}

// the issue's target
const sy = 'switchyard'
if (systems.includes(sy) && systems.includes(baseline)) {
  out.push('### Target: TCP >= 0.5x the kernel path and ahead of pasta\n')
  for (const [m, h] of [['tcp_egress_gbps', 'egress'], ['tcp_published_gbps', 'published']]) {
    const v = med(sy, m)
    const b = med(baseline, m)
    const p = med('pasta', m)
    if (v === null || !b) continue
    out.push(`- ${h}: ${(v / b).toFixed(2)}x the kernel path (${v / b >= 0.5 ? 'met' : 'NOT met'})${p !== null ? `; ${p > 0 ? (v / p).toFixed(2) + 'x' : 'vs 0'} pasta (${v > p ? 'ahead' : 'NOT ahead'})` : ''}`)
  }
  out.push('')
}
console.log(out.join('\n'))
