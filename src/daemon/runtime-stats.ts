/**
 * The daemon's own runtime for `stats`: memory, and the garbage collections V8 ran. An
 * allocation on the frame path shows up here first — as young-generation collections, each a
 * pause every frame in flight waits for — so an operator (and the tests) can see one.
 */
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'

export interface RuntimeStats {
  rssBytes: number
  heapUsedBytes: number
  heapTotalBytes: number
  /** Memory outside V8's heap held by JS objects: the switch's slabs, buffers of sockets. */
  externalBytes: number
  gc: {
    /** Young-generation collections (scavenges). */
    minor: number
    /** Full mark-compact collections. */
    major: number
    /** Incremental marking steps of a major collection. */
    incremental: number
    /** Time the process stood still in all of them, in ms. */
    pauseMs: number
  }
}

export class RuntimeMonitor {
  private minor = 0
  private major = 0
  private incremental = 0
  private pauseMs = 0
  private readonly observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) this.count(e)
  })

  start(): void {
    this.observer.observe({ entryTypes: ['gc'] })
  }

  stop(): void {
    this.observer.disconnect()
  }

  stats(): RuntimeStats {
    const m = process.memoryUsage()
    return {
      rssBytes: m.rss,
      heapUsedBytes: m.heapUsed,
      heapTotalBytes: m.heapTotal,
      externalBytes: m.external,
      gc: { minor: this.minor, major: this.major, incremental: this.incremental, pauseMs: Math.round(this.pauseMs * 1000) / 1000 },
    }
  }

  private count(e: PerformanceEntry): void {
    // Node 20 puts the kind in `detail` (this @types/node does not know it yet).
    const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) this.minor++
    else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) this.major++
    else if (kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) this.incremental++
    this.pauseMs += e.duration
  }
}
