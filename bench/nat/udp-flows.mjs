// Many UDP flows for bench/nat.sh: from every source port in [FIRST, FIRST+COUNT) sends one
// small datagram to each destination, then closes the socket.  Destinations are every DST
// address x every DPORT (address-major), or only the first --per-port N of them; DST and
// DPORT may be inclusive ranges (10.82.0.100-10.82.0.149, 20000-20499).  So COUNT x
// destinations distinct flows: many source ports to two ports (the default tests), or a
// few source ports to many remotes each (what a NAT's endpoint-independent mapping serves
// from one host port per source port).  At most --window source ports are open at once
// (512), and flows start at most --rate per second (0 = as fast as it goes: a burst larger
// than the sandbox interface's queue is dropped there).  Prints
//   {"flows":N,"sent":N,"errors":N,"seconds":S,"first_error":".."}
//
//   node udp-flows.mjs DST[-DST] FIRST COUNT DPORT[-DPORT]... [--per-port N] [--window N] [--rate FLOWS_PER_S]
import dgram from 'node:dgram'

const args = process.argv.slice(2)
function opt(name, dflt) {
  const i = args.indexOf(name)
  if (i < 0) return dflt
  const v = Number(args[i + 1])
  args.splice(i, 2)
  return v
}
const window = opt('--window', 512)
const rate = opt('--rate', 0)
const perPortOpt = opt('--per-port', 0)
const [dstS, firstS, countS, ...dportsS] = args
if (!dstS || !firstS || !countS || !dportsS.length) {
  console.error('usage: node udp-flows.mjs DST[-DST] FIRST COUNT DPORT[-DPORT]... [--per-port N] [--window N] [--rate FLOWS_PER_S]')
  process.exit(2)
}

const ipNum = (s) => s.split('.').reduce((a, b) => a * 256 + Number(b), 0)
const ipStr = (n) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
/** "A-B" or "A" as [A, B], with `parse` for each end. */
function range(s, parse) {
  const [a, b = a] = s.split('-')
  return [parse(a), parse(b)]
}
const addrs = []
const [a0, a1] = range(dstS, ipNum)
for (let a = a0; a <= a1; a++) addrs.push(ipStr(a))
const ports = []
for (const d of dportsS) {
  const [p0, p1] = range(d, Number)
  for (let p = p0; p <= p1; p++) ports.push(p)
}
const perPort = perPortOpt || addrs.length * ports.length
if (perPort > addrs.length * ports.length) {
  console.error(`--per-port ${perPort}: only ${addrs.length * ports.length} destinations given`)
  process.exit(2)
}
/** Destination k (address-major). */
const dest = (k) => [addrs[Math.floor(k / ports.length)], ports[k % ports.length]]

const first = Number(firstS)
const count = Number(countS)
const payload = Buffer.from('switchyard-bench-nat-flow')
let sent = 0
let errors = 0
let firstError = ''
let started = 0 // flows given a start time
const t0 = Number(process.hrtime.bigint()) / 1e6
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** Waits for the next flow's turn: flow number n (from 0) may start at t0 + n / rate. */
async function pace() {
  if (rate <= 0) return
  const wait = t0 + (started++ / rate) * 1000 - Number(process.hrtime.bigint()) / 1e6
  if (wait > 1) await sleep(wait)
}

function one(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4')
    let pending = 0
    let sending = true
    const done = () => {
      if (!sending && pending === 0) s.close(resolve)
    }
    s.on('error', (e) => {
      errors++
      firstError ||= `${port}: ${e.code || e.message}`
      try { s.close(resolve) } catch { resolve() }
    })
    s.bind({ port, exclusive: true }, async () => {
      for (let k = 0; k < perPort; k++) {
        if (k > 0) await pace() // the first flow's turn came before the socket
        const [addr, dport] = dest(k)
        pending++
        s.send(payload, dport, addr, (e) => {
          if (e) {
            errors++
            firstError ||= `${port}->${addr}:${dport}: ${e.code || e.message}`
          } else sent++
          pending--
          done()
        })
      }
      sending = false
      done()
    })
  })
}

let next = first
const end = first + count
async function lane() {
  while (next < end) {
    const port = next++
    await pace()
    await one(port)
  }
}
await Promise.all(Array.from({ length: Math.min(window, count) }, lane))
const secs = (Number(process.hrtime.bigint()) / 1e6 - t0) / 1e3
console.log(JSON.stringify({ flows: count * perPort, sent, errors, seconds: +secs.toFixed(3), first_error: firstError }))
