// New connections per second for bench/nat.sh: short HTTP GETs, each over a new TCP
// connection (no keep-alive), CONCURRENCY at a time, for SECONDS.  Prints one JSON line:
//   {"ok":N,"errors":N,"seconds":S,"conn_per_s":R,"p50_ms":..,"p99_ms":..,"max_ms":..,"first_error":".."}
//
//   node http-client.mjs HOST PORT SECONDS [CONCURRENCY=8]
import http from 'node:http'

const [host, portS, secondsS, concS = '8'] = process.argv.slice(2)
if (!host || !portS || !secondsS) {
  console.error('usage: node http-client.mjs HOST PORT SECONDS [CONCURRENCY]')
  process.exit(2)
}
const port = Number(portS)
const seconds = Number(secondsS)
const conc = Number(concS)
const lat = []
let ok = 0
let errors = 0
let firstError = ''
const t0 = process.hrtime.bigint()
const deadline = t0 + BigInt(Math.round(seconds * 1e9))

function one() {
  return new Promise((resolve) => {
    const s = process.hrtime.bigint()
    const req = http.get({ host, port, path: '/', agent: false, timeout: 5000, headers: { Connection: 'close' } }, (res) => {
      res.resume()
      res.on('end', () => {
        if (res.statusCode === 200) {
          ok++
          lat.push(Number(process.hrtime.bigint() - s) / 1e6)
        } else {
          errors++
          firstError ||= `HTTP ${res.statusCode}`
        }
        resolve()
      })
      res.on('error', (e) => {
        errors++
        firstError ||= e.code || e.message
        resolve()
      })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', (e) => {
      errors++
      firstError ||= e.code || e.message
      resolve()
    })
  })
}

async function worker() {
  while (process.hrtime.bigint() < deadline) await one()
}

await Promise.all(Array.from({ length: conc }, worker))
const wall = Number(process.hrtime.bigint() - t0) / 1e9
lat.sort((a, b) => a - b)
const q = (p) => (lat.length ? +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3) : null)
console.log(JSON.stringify({ ok, errors, seconds: +wall.toFixed(3), conn_per_s: +(ok / wall).toFixed(1), p50_ms: q(0.5), p99_ms: q(0.99), max_ms: lat.length ? +lat[lat.length - 1].toFixed(3) : null, concurrency: conc, first_error: firstError }))
