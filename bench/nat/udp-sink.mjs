// UDP sink for bench/nat.sh: binds HOST:PORT for each PORT given (or each port of an
// inclusive range FIRST-LAST), counts datagrams and distinct sources, answers nothing.
// Prints READY once bound; on SIGUSR2 (and on SIGTERM, before exiting) prints
// {"datagrams":N,"sources":N}.
//
//   node udp-sink.mjs HOST PORT[-PORT]...
import dgram from 'node:dgram'

const [host, ...specs] = process.argv.slice(2)
const ports = specs.flatMap((s) => {
  const [a, b = a] = s.split('-').map(Number)
  return Array.from({ length: b - a + 1 }, (_, i) => String(a + i))
})
let datagrams = 0
const sources = new Set()
let bound = 0
for (const p of ports) {
  const s = dgram.createSocket('udp4')
  s.on('message', (_m, r) => {
    datagrams++
    sources.add(`${r.address}:${r.port}>${p}`)
  })
  s.bind({ address: host, port: Number(p) }, () => {
    s.setRecvBufferSize(8 << 20)
    if (++bound === ports.length) console.log('READY')
  })
}
const report = () => console.log(JSON.stringify({ datagrams, sources: sources.size }))
process.on('SIGUSR2', report)
process.on('SIGTERM', () => {
  report()
  process.exit(0)
})
