/**
 * The DHCP server's state machine (RFC 2131 section 4.3), transport-agnostic: it takes a
 * client's UDP payload and returns the reply to send, if any. Leases live in an injected
 * backend (the network's IPAM: an endpoint's address is its lease), so the server itself
 * keeps only short-lived offers and survives restarts without losing anything.
 *
 *   const dhcp = new DhcpServer(backend)
 *   const reply = dhcp.handle(network.id, network.dhcp, udpPayload)
 *   if (reply) sendUdp(reply.dstMac, reply.dstIp, 67, 68, reply.payload)
 */
import { macToString } from '../../packet/mac.js'
import { decode } from './codec.js'
import { checkDhcpConfig, type DhcpNetworkConfig } from './config.js'
import { MalformedDhcpError } from './errors.js'
import { inSubnet, tryParseIpv4 } from './ipv4.js'
import { DhcpMessageType } from './options.js'
import { informReply, leaseReply, nakReply, type DhcpReply } from './reply.js'
import { readClientRequest, type ClientRequest } from './request.js'

export type { DhcpNetworkConfig } from './config.js'
export type { DhcpReply } from './reply.js'

/** Where addresses come from: the network's IPAM, seen per client MAC. */
export interface DhcpLeaseBackend {
  /**
   * Finds or creates the address for this client on this network: for a known MAC the
   * endpoint's address, for an unknown MAC a new allocation (the control plane creates an
   * endpoint). `requested` is a hint (option 50 or ciaddr), already checked to be on-link.
   */
  offer(networkId: string, mac: number, requested: string | undefined, hostname: string | undefined): { address: string } | { error: string }
  /**
   * Commits the lease (REQUEST). Returns false if that address is not this client's to have:
   * the server NAKs; 'pending' if the backend cannot say yet (a cluster claim on its way): the
   * REQUEST is dropped and the client's retransmission gets the answer.
   */
  commit(networkId: string, mac: number, address: string, leaseSeconds: number, hostname: string | undefined): boolean | 'pending'
  /** The client gave the address back (RELEASE). */
  release(networkId: string, mac: number, address: string): void
  /** The client found the address in use (DECLINE): mark it unusable for a while. */
  decline(networkId: string, mac: number, address: string): void
  /**
   * Optional: the client took another server's offer, so what offer() reserved for it may
   * be undone if nothing was committed. Called at most once per pending offer.
   */
  forgetOffer?(networkId: string, mac: number, address: string): void
}

/** What the server saw and did; every handled payload lands in `received` and in one other counter. */
export interface DhcpCounters {
  /** Payloads handed to handle(). */
  received: number
  /** OFFERs sent. */
  offers: number
  /** ACKs sent for REQUESTs (ACKs to INFORM count in `informs`). */
  acks: number
  /** NAKs sent. */
  naks: number
  /** RELEASEs applied. */
  releases: number
  /** DECLINEs applied. */
  declines: number
  /** INFORMs answered. */
  informs: number
  /** Dropped: not a well-formed client message. */
  malformed: number
  /** Dropped: well-formed but not ours to answer (disabled network, another server, no address, ...). */
  ignored: number
}

/** Options of a DhcpServer. */
export interface DhcpServerInit {
  /** How long an OFFER is remembered for the client's REQUEST; default 60 s. */
  offerTimeoutMs?: number
  /** Most offers remembered at once (a DISCOVER flood must not grow memory); default 4096. */
  maxPendingOffers?: number
  /** Told why a well-formed request got no answer (pool exhausted, backend gave a bad address). */
  log?: (message: string) => void
}

interface PendingOffer {
  address: string
  expiresAt: number
}

/** Answers DHCP for the networks whose config it is handed; one instance serves them all. */
export class DhcpServer {
  /** Running totals; read them, do not write them. */
  readonly counters: DhcpCounters = {
    received: 0, offers: 0, acks: 0, naks: 0, releases: 0, declines: 0, informs: 0, malformed: 0, ignored: 0,
  }

  private readonly backend: DhcpLeaseBackend
  private readonly offerTimeoutMs: number
  private readonly maxPendingOffers: number
  private readonly log: (message: string) => void
  /** Offers awaiting a REQUEST, oldest first (Map keeps insertion order). Key: networkId + MAC. */
  private readonly pending = new Map<string, PendingOffer>()

  constructor(backend: DhcpLeaseBackend, init: DhcpServerInit = {}) {
    this.backend = backend
    this.offerTimeoutMs = init.offerTimeoutMs ?? 60_000
    this.maxPendingOffers = Math.max(1, init.maxPendingOffers ?? 4096)
    this.log = init.log ?? (() => {})
  }

  /** Offers currently remembered (for stats and tests). */
  get pendingOffers(): number {
    return this.pending.size
  }

  /**
   * Handles one client message (the UDP payload sent to port 67) on a network and returns
   * the reply to send, or null. Never throws for anything in `payload`: bad input is
   * counted in `malformed`. Throws InvalidDhcpConfigError for a bad `net`, and whatever
   * the backend throws.
   */
  handle(networkId: string, net: DhcpNetworkConfig, payload: Uint8Array, now: number = Date.now()): DhcpReply | null {
    this.counters.received++
    if (!net.enabled) return this.ignore()
    checkDhcpConfig(net)
    let req: ClientRequest | null
    try {
      req = readClientRequest(decode(payload))
    } catch (err) {
      if (err instanceof MalformedDhcpError) {
        this.counters.malformed++
        return null
      }
      throw err
    }
    if (req === null) return this.ignore()

    switch (req.type) {
      case DhcpMessageType.DISCOVER: return this.discover(networkId, net, req, now)
      case DhcpMessageType.REQUEST: return this.request(networkId, net, req, now)
      case DhcpMessageType.DECLINE: return this.decline(networkId, net, req)
      case DhcpMessageType.RELEASE: return this.release(networkId, net, req)
      case DhcpMessageType.INFORM: return this.inform(net, req)
      // Types from later RFCs (leasequery, ...) that this server does not speak.
      default: return this.ignore()
    }
  }

  private ignore(): null {
    this.counters.ignored++
    return null
  }

  private discover(networkId: string, net: DhcpNetworkConfig, req: ClientRequest, now: number): DhcpReply | null {
    const onLink = (a: string | undefined): string | undefined => (a !== undefined && inSubnet(a, net.serverIp, net.subnetMask) ? a : undefined)
    const hint = onLink(req.requestedIp) ?? onLink(req.ciaddr)
    const r = this.backend.offer(networkId, req.mac, hint, req.hostname)
    if ('error' in r) {
      this.log(`DHCP ${networkId}: no offer for ${macToString(req.mac)}: ${r.error}`)
      return this.ignore()
    }
    if (tryParseIpv4(r.address) === undefined || !inSubnet(r.address, net.serverIp, net.subnetMask)) {
      this.log(`DHCP ${networkId}: backend offered ${JSON.stringify(r.address)} to ${macToString(req.mac)}, not on ${net.serverIp}/${net.subnetMask}`)
      return this.ignore()
    }
    this.remember(key(networkId, req.mac), r.address, now)
    this.counters.offers++
    return leaseReply(req, net, DhcpMessageType.OFFER, r.address)
  }

  private request(networkId: string, net: DhcpNetworkConfig, req: ClientRequest, now: number): DhcpReply | null {
    if (req.serverId !== undefined) {
      // SELECTING. Another server's id means the client chose that server's offer.
      if (req.serverId !== net.serverIp) {
        this.forget(networkId, req.mac, now)
        return this.ignore()
      }
      // ciaddr MUST be 0 here, but some old clients put the address there instead of option 50.
      const address = req.requestedIp ?? req.ciaddr
      if (address === undefined) return this.malformed()
      return this.commit(networkId, net, req, address)
    }
    // INIT-REBOOT: the client remembers an address and asks to keep it.
    if (req.requestedIp !== undefined) return this.commit(networkId, net, req, req.requestedIp)
    // RENEWING (unicast) or REBINDING (broadcast): the payload is the same; both answered at ciaddr.
    if (req.ciaddr !== undefined) return this.commit(networkId, net, req, req.ciaddr)
    return this.malformed()
  }

  private commit(networkId: string, net: DhcpNetworkConfig, req: ClientRequest, address: string): DhcpReply | null {
    if (!inSubnet(address, net.serverIp, net.subnetMask)) {
      this.counters.naks++
      return nakReply(req, net, 'address not on this network')
    }
    const committed = this.backend.commit(networkId, req.mac, address, net.leaseSeconds, req.hostname)
    if (committed === 'pending') return this.ignore()
    if (!committed) {
      this.counters.naks++
      return nakReply(req, net, 'address not yours')
    }
    this.pending.delete(key(networkId, req.mac))
    this.counters.acks++
    return leaseReply(req, net, DhcpMessageType.ACK, address)
  }

  private decline(networkId: string, net: DhcpNetworkConfig, req: ClientRequest): null {
    if (req.requestedIp === undefined) return this.malformed()
    if (req.serverId !== undefined && req.serverId !== net.serverIp) return this.ignore()
    this.pending.delete(key(networkId, req.mac))
    this.backend.decline(networkId, req.mac, req.requestedIp)
    this.counters.declines++
    return null
  }

  private release(networkId: string, net: DhcpNetworkConfig, req: ClientRequest): null {
    if (req.ciaddr === undefined) return this.malformed()
    if (req.serverId !== undefined && req.serverId !== net.serverIp) return this.ignore()
    this.pending.delete(key(networkId, req.mac))
    this.backend.release(networkId, req.mac, req.ciaddr)
    this.counters.releases++
    return null
  }

  private inform(net: DhcpNetworkConfig, req: ClientRequest): DhcpReply | null {
    // A client configured on another subnet gets nothing from this network's settings.
    if (req.ciaddr !== undefined && !inSubnet(req.ciaddr, net.serverIp, net.subnetMask)) return this.ignore()
    this.counters.informs++
    return informReply(req, net)
  }

  private malformed(): null {
    this.counters.malformed++
    return null
  }

  private remember(k: string, address: string, now: number): void {
    this.pending.delete(k)
    // Oldest first: drop expired offers, then the oldest live ones while over the bound.
    for (const [old, offer] of this.pending) {
      if (offer.expiresAt > now && this.pending.size < this.maxPendingOffers) break
      this.pending.delete(old)
    }
    this.pending.set(k, { address, expiresAt: now + this.offerTimeoutMs })
  }

  private forget(networkId: string, mac: number, now: number): void {
    const k = key(networkId, mac)
    const offer = this.pending.get(k)
    if (offer === undefined) return
    this.pending.delete(k)
    // An expired offer promised nothing any more; the backend may already reuse it.
    if (offer.expiresAt > now) this.backend.forgetOffer?.(networkId, mac, offer.address)
  }
}

function key(networkId: string, mac: number): string {
  return `${networkId}/${mac}`
}

