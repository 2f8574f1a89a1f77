// Many UDP flows for bench/nat.sh: from every source port in [FIRST, FIRST+COUNT) sends one
// small datagram to DST:DPORT for each DPORT given, so COUNT x (number of DPORTs) distinct
// flows, then closes the socket.  At most WINDOW sockets are open at once; PACE_US
// (optional) sleeps that long after each source port.  Prints
//   {"flows":N,"sent":N,"errors":N,"seconds":S,"first_error":".."}
//
//   node udp-flows.mjs DST FIRST COUNT DPORT... [--window N]
import dgram from 'node:dgram'

const args = process.argv.slice(2)
let window = 512
const wi = args.indexOf('--window')
if (wi >= 0) {
  window = Number(args[wi + 1])
  args.splice(wi, 2)
}
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
async function lane() {
  while (next < end) await one(next++)
}
await Promise.all(Array.from({ length: Math.min(window, count) }, lane))
const secs = Number(process.hrtime.bigint() - t0) / 1e9
console.log(JSON.stringify({ flows: count * dports.length, sent, errors, seconds: +secs.toFixed(3), first_error: firstError }))
