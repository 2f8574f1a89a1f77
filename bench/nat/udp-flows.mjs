// Many UDP flows for bench/nat.sh: from every source port in [FIRST, FIRST+COUNT) sends one
// small datagram to DST:DPORT for each DPORT given, so COUNT x (number of DPORTs) distinct
// flows, then closes the socket.  At most --window sockets are open at once (512), and new
// source ports start at most --rate per second (0 = as fast as it goes: a burst larger
// than the sandbox interface's queue is dropped there).  Prints
//   {"flows":N,"sent":N,"errors":N,"seconds":S,"first_error":".."}
//
//   node udp-flows.mjs DST FIRST COUNT DPORT... [--window N] [--rate PORTS_PER_S]
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
const [dst, firstS, countS, ...dports] = args
if (!dst || !firstS || !countS || !dports.length) {
  console.error('usage: node udp-flows.mjs DST FIRST COUNT DPORT... [--window N]')
  process.exit(2)
}
const first = Number(firstS)
const count = Number(countS)
const payload = Buffer.from('switchyard-bench-nat-flow')
let sent = 0
let errors = 0
let firstError = ''
const t0 = process.hrtime.bigint()

function one(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4')
    let left = dports.length
    const done = () => {
      if (--left === 0) s.close(resolve)
    }
    s.on('error', (e) => {
      errors++
      firstError ||= `${port}: ${e.code || e.message}`
      try { s.close(resolve) } catch { resolve() }
    })
    s.bind({ port, exclusive: true }, () => {
      for (const d of dports) {
        s.send(payload, Number(d), dst, (e) => {
          if (e) {
            errors++
            firstError ||= `${port}->${d}: ${e.code || e.message}`
          } else sent++
          done()
        })
      }
    })
  })
}

let next = first
const end = first + count
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function lane() {
  while (next < end) {
    const port = next++
    if (rate > 0) {
      // port number k (from 0) may start at t0 + k / rate
      const due = Number(t0) / 1e6 + ((port - first) / rate) * 1000
      const wait = due - Number(process.hrtime.bigint()) / 1e6
      if (wait > 1) await sleep(wait)
    }
    await one(port)
  }
}
await Promise.all(Array.from({ length: Math.min(window, count) }, lane))
const secs = Number(process.hrtime.bigint() - t0) / 1e9
console.log(JSON.stringify({ flows: count * dports.length, sent, errors, seconds: +secs.toFixed(3), first_error: firstError }))
