/**
 * Several test "hosts" on one L2 underlay: a bridge in its own namespace, each host's `ul0`
 * plugged into it by veth with the given address. Returns the bridge's namespace (which can
 * carry an address of its own on br0, e.g. for a cluster store).
 */
import type { Test } from 'tap'
import { makeNs } from './netns.js'
import { must, mustInNs } from './sh.js'

export async function underlay(t: Test, hosts: { ns: string; ip: string }[]): Promise<string> {
  const sw = await makeNs(t, 'ul')
  await mustInNs(sw, ['sh', '-c', 'for f in iptables ip6tables arptables; do echo 0 > /proc/sys/net/bridge/bridge-nf-call-$f; done'])
  await must('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge'])
  await must('ip', ['-n', sw, 'link', 'set', 'br0', 'up'])
  for (const [i, h] of hosts.entries()) {
    await must('ip', ['link', 'add', `u${i}`, 'netns', sw, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', h.ns])
    await must('ip', ['-n', sw, 'link', 'set', `u${i}`, 'master', 'br0', 'up'])
    await must('ip', ['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'ul0'])
    await must('ip', ['-n', h.ns, 'link', 'set', 'ul0', 'up'])
  }
  return sw
}
