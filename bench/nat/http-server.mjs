// A minimal HTTP server for bench/nat.sh: answers every request with 200 "ok" and
// closes the connection (so each request is a new TCP connection and TIME_WAIT stays
// on this side).  Prints READY once listening.
//
//   node http-server.mjs HOST PORT
import http from 'node:http'

const [host = '0.0.0.0', port = '8080'] = process.argv.slice(2)
let served = 0
const server = http.createServer((req, res) => {
  served++
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '2', Connection: 'close' })
  res.end('ok')
})
server.keepAliveTimeout = 0
server.maxConnections = 100000
server.listen({ host, port: Number(port), backlog: 4096 }, () => console.log('READY'))
const bye = () => {
  console.log(JSON.stringify({ served }))
  process.exit(0)
}
process.on('SIGTERM', bye)
process.on('SIGINT', bye)
