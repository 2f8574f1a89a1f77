/**
 * The learning switch as the control plane sees it: networks (broadcast domains), ports on
 * them, the FDB and the counters. Frames never pass through this class: the TAP poller calls
 * the forwarder directly with each batch.
 *
 *   const sw = new Switch({ io: new TapIo() })
 *   sw.addNetwork('default', { mtu: 1500 })
 *   sw.addTapPort('sy0', 'default')
 */
import { batchClock, type Poller } from '../native/binding.js'
import { PORT_GONE_ERRNOS, type TapIo, type TapOpenOptions } from '../dataplane/tap-port.js'
import { macToString } from '../packet/mac.js'
import { errnoName } from '../util/errno.js'
import type { Logger } from '../util/log.js'
import { C, CounterTable, type PortCounters } from './counters.js'
import { Forwarder, type LocalStack } from './forwarder.js'
import { MacTable, type MacTableOptions } from './mac-table.js'
import { KIND_VTEP, PORT_GONE, PORT_UP, PortTable } from './ports.js'

export interface SwitchOptions {
  io: TapIo
  fdb?: MacTableOptions
  log?: Logger
}

export interface NetworkPortsOptions {
  mtu: number
}

export interface PortInfo {
  name: string
  index: number
  network: string
  state: 'up' | 'gone'
  goneReason?: string
  counters: PortCounters
}

export interface FdbView {
  network: string
  mac: string
  port: string
  ageSeconds: number
  static?: boolean
}

export class SwitchError extends Error {
  constructor(
    readonly code: 'NO_SUCH_NETWORK' | 'NO_SUCH_PORT' | 'PORT_EXISTS' | 'NETWORK_EXISTS' | 'NETWORK_IN_USE',
    message: string,
  ) {
    super(message)
  }
}

interface NetState {
  index: number
  mtu: number
  ports: Set<number>
}

interface PortState {
  fd: number
  attach: 'tun' | 'packet'
  poller?: Poller
  network: string
  goneReason?: string
}

export class Switch {
  readonly fdb: MacTable
  readonly ports = new PortTable()
  readonly counters = new CounterTable()
  readonly forwarder: Forwarder
  private readonly nets = new Map<string, NetState>()
  private readonly netNames: string[] = []
  private readonly byName = new Map<string, number>()
  private readonly portState = new Map<number, PortState>()
  readonly io: TapIo
  private readonly log?: Logger
  private agingTimer?: NodeJS.Timeout
  /** Ports whose device vanished under us (deleted, fd failed). */
  portsLost = 0

  constructor(opts: SwitchOptions) {
    this.io = opts.io
    this.log = opts.log
    // The FDB reads the time the pollers stamp before each batch (a time passed per frame would be boxed).
    this.fdb = new MacTable({ ...opts.fdb, clock: batchClock })
    this.forwarder = new Forwarder(this.fdb, this.ports, this.counters, opts.io.writeBatch)
    // Sweep a few times per aging period so memory follows the table's real contents.
    const sweep = Math.max(1000, Math.min(30_000, this.fdb.agingMs / 4))
    this.agingTimer = setInterval(() => this.fdb.age(Date.now()), sweep)
    this.agingTimer.unref()
  }

  addNetwork(name: string, opts: NetworkPortsOptions): void {
    if (this.nets.has(name)) throw new SwitchError('NETWORK_EXISTS', `network ${name} already exists in the switch`)
    let index = this.netNames.indexOf('')
    if (index < 0) index = this.netNames.length
    this.netNames[index] = name
    this.nets.set(name, { index, mtu: opts.mtu, ports: new Set() })
    this.forwarder.setMembers(index, [])
  }

  removeNetwork(name: string): void {
    const n = this.net(name)
    if (n.ports.size > 0) throw new SwitchError('NETWORK_IN_USE', `network ${name} still has ${n.ports.size} port(s)`)
    this.fdb.flushNetwork(n.index)
    this.forwarder.setLocalStack(n.index, undefined)
    this.nets.delete(name)
    this.netNames[n.index] = ''
  }

  hasNetwork(name: string): boolean {
    return this.nets.has(name)
  }

  networkIndex(name: string): number {
    return this.net(name).index
  }

  setLocalStack(network: string, stack: LocalStack | undefined): void {
    this.forwarder.setLocalStack(this.net(network).index, stack)
  }

  /** Opens or creates the TAP `name` and puts it on `network`. */
  addTapPort(name: string, network: string, open: TapOpenOptions = {}): PortInfo {
    if (this.byName.has(name)) throw new SwitchError('PORT_EXISTS', `port ${name} already exists`)
    const n = this.net(network)
    const fd = this.io.open(name, open)
    const p = this.ports.alloc(name)
    this.counters.ensure(p)
    this.counters.reset(p)
    this.ports.fd[p] = fd
    this.ports.net[p] = n.index
    this.ports.hdr[p] = this.io.hdr
    this.ports.maxFrame[p] = n.mtu + 18
    const st: PortState = { fd, network, attach: open.attach ?? 'tun' }
    this.portState.set(p, st)
    this.byName.set(name, p)
    n.ports.add(p)
    this.forwarder.setMembers(n.index, [...n.ports])
    st.poller = this.io.poll(fd, (count) => {
      if (count >= 0) this.forwarder.process(p, this.io.slab, this.io.meta, count)
      else this.portLost(p, count)
    })
    this.log?.info('port added', { port: name, network, index: p })
    return this.portInfo(p)
  }

  /**
   * A remote VTEP of overlay network `network` as a port: frames the FDB sends to it are
   * VXLAN-encapsulated to `ip`. Returns its port number (for the overlay's receive path).
   */
  addVtepPort(network: string, ip: number, name: string): number {
    const n = this.net(network)
    const p = this.ports.alloc(name)
    this.counters.ensure(p)
    this.counters.reset(p)
    this.ports.kind[p] = KIND_VTEP
    this.ports.vtepIp[p] = ip
    this.ports.fd[p] = -1
    this.ports.net[p] = n.index
    this.ports.hdr[p] = this.io.hdr
    // Frames arrive decapsulated with a zeroed header: no offload, the overlay MTU applies.
    this.ports.maxFrame[p] = n.mtu + 18
    this.portState.set(p, { fd: -1, network, attach: 'tun' })
    this.byName.set(name, p)
    n.ports.add(p)
    this.forwarder.setMembers(n.index, [...n.ports])
    return p
  }

  /** Creates a persistent TAP nobody holds (for a hypervisor); attach it with `attach: 'packet'`. */
  createFreeTap(name: string): void {
    this.io.createFree(name)
  }

  /** Removes a port; `removeDevice` also deletes a persistent TAP device. */
  removePort(name: string, removeDevice = true): void {
    const p = this.byName.get(name)
    if (p === undefined) throw new SwitchError('NO_SUCH_PORT', `no port named ${name}`)
    const st = this.portState.get(p)!
    this.detach(p, st)
    try {
      if (st.fd >= 0) this.io.close(st.fd, removeDevice, st.attach)
    } catch (e) {
      this.log?.warn('closing port fd failed', { port: name, error: String(e) })
    }
    this.fdb.flushPort(p)
    this.portState.delete(p)
    this.byName.delete(name)
    this.ports.release(p)
    this.log?.info('port removed', { port: name })
  }

  /** Writes one frame the switch made itself (gateway replies) to a port, counting it. */
  sendFrame = (port: number, buf: Uint8Array, len: number): boolean => {
    if (this.ports.state[port] !== PORT_UP) return false
    return this.sent(port, this.io.writeFrame(this.ports.fd[port], buf, 0, len))
  }

  /** sendFrame for a frame in two pieces, headers and a payload kept elsewhere (NAT's TCP send ring). */
  sendFrameParts = (port: number, head: Uint8Array, headLen: number, data: Uint8Array, offset: number, length: number): boolean => {
    if (this.ports.state[port] !== PORT_UP) return false
    return this.sent(port, this.io.writeFrameParts(this.ports.fd[port], head, headLen, data, offset, length))
  }

  private sent(port: number, r: number): boolean {
    if (r < 0) {
      this.counters.add(port, C.DROP_TX_ERROR, 1)
      return false
    }
    this.counters.add(port, C.TX_PACKETS, 1)
    this.counters.add(port, C.TX_BYTES, r - this.ports.hdr[port])
    return true
  }

  /** The port number of `name`, for code that addresses frames to it. */
  portIndex(name: string): number | undefined {
    return this.byName.get(name)
  }

  hasPort(name: string): boolean {
    return this.byName.has(name)
  }

  portInfo(p: number): PortInfo {
    const st = this.portState.get(p)!
    return {
      name: this.ports.names[p]!,
      index: p,
      network: st.network,
      state: this.ports.state[p] === PORT_UP ? 'up' : 'gone',
      ...(st.goneReason ? { goneReason: st.goneReason } : {}),
      counters: this.counters.snapshot(p),
    }
  }

  port(name: string): PortInfo {
    const p = this.byName.get(name)
    if (p === undefined) throw new SwitchError('NO_SUCH_PORT', `no port named ${name}`)
    return this.portInfo(p)
  }

  listPorts(network?: string): PortInfo[] {
    const out: PortInfo[] = []
    for (const p of this.byName.values()) {
      const info = this.portInfo(p)
      if (network === undefined || info.network === network) out.push(info)
    }
    return out.sort((a, b) => a.name.localeCompare(b.name))
  }

  fdbEntries(network?: string): FdbView[] {
    const net = network === undefined ? undefined : this.net(network).index
    return this.fdb.entries(Date.now(), net).map((e) => ({
      network: this.netNames[e.network],
      mac: macToString(e.mac),
      port: this.ports.names[e.port] ?? `#${e.port}`,
      ageSeconds: Math.floor(e.ageMs / 1000),
      ...(e.static ? { static: true } : {}),
    }))
  }

  /** A user's flush: learned entries go, the control plane's static ones stay. */
  flushFdb(network?: string): number {
    return network === undefined ? this.fdb.flushAll(true) : this.fdb.flushNetwork(this.net(network).index, true)
  }

  /** Programs a static FDB entry: `mac` of `network` lives behind port `port` (a remote endpoint behind its VTEP). */
  pinMac(network: string, mac: number, port: number): boolean {
    return this.fdb.pin(this.net(network).index, mac, port, Date.now())
  }

  unpinMac(network: string, mac: number): boolean {
    const n = this.nets.get(network)
    return n ? this.fdb.unpin(n.index, mac) : false
  }

  stats() {
    return {
      fdb: { entries: this.fdb.count, capacity: this.fdb.capacity, portLimit: this.fdb.portLimit, agingSeconds: this.fdb.agingMs / 1000, ...this.fdb.stats },
      ports: this.listPorts(),
      portsLost: this.portsLost,
      busyPoll: this.io.busyPollStats(),
    }
  }

  close(removeDevices: (name: string) => boolean): void {
    clearInterval(this.agingTimer)
    for (const name of [...this.byName.keys()]) this.removePort(name, removeDevices(name))
  }

  private detach(p: number, st: PortState): void {
    st.poller?.close()
    st.poller = undefined
    const n = this.nets.get(st.network)
    if (n && n.ports.delete(p)) this.forwarder.setMembers(n.index, [...n.ports])
  }

  /** The device vanished or its fd failed: stop using it, keep serving the others. */
  private portLost(p: number, errno: number): void {
    const st = this.portState.get(p)
    if (!st || this.ports.state[p] !== PORT_UP) return
    const reason = errnoName(errno)
    this.portsLost++
    st.goneReason = PORT_GONE_ERRNOS.has(reason) ? `device gone (${reason})` : `read failed (${reason})`
    this.ports.state[p] = PORT_GONE
    this.detach(p, st)
    this.fdb.flushPort(p)
    this.log?.warn('port lost', { port: this.ports.names[p], reason: st.goneReason })
  }

  private net(name: string): NetState {
    const n = this.nets.get(name)
    if (!n) throw new SwitchError('NO_SUCH_NETWORK', `no network named ${name}`)
    return n
  }
}
