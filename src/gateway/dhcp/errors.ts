/**
 * The one error a DHCP packet from the wire can cause: it is malformed. The server turns
 * it into a counted drop; nothing else in the DHCP code throws on wire input.
 *
 *   try { decode(payload) } catch (err) { if (err instanceof MalformedDhcpError) drops++ }
 */

/** A BOOTP/DHCP message that cannot be decoded or breaks a MUST of RFC 2131/2132. */
export class MalformedDhcpError extends Error {
  override readonly name = 'MalformedDhcpError'
  readonly code = 'MALFORMED_DHCP'
  /** What is wrong, in a few words (also the message). */
  readonly reason: string
  constructor(reason: string) {
    super(`malformed DHCP message: ${reason}`)
    this.reason = reason
  }
}
