import CoreMetrics
import Netmem
import NetmemSession
import Prometheus
import Synchronization

/// Publishes a receive session's pool, ring, token and connection counters through
/// swift-metrics into a Prometheus registry. Names follow the kernel's page_pool stats
/// where one exists (`netmem_page_pool_alloc_fast` is the kernel's `alloc_fast`).
/// Values are brought up to date at each scrape from the session's own counters, so the
/// receive path never touches a metrics backend.
public final class SessionMetrics: Sendable {
    /// The registry the metrics live in (scrape it with `render()`, or add your own).
    public let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let session: ReceiveSession

    private struct Published: ~Copyable {
        var last: [String: Int] = [:]
        var counters: [String: CoreMetrics.Counter] = [:]
        var gauges: [String: CoreMetrics.Gauge] = [:]
    }
    private let published = Mutex(Published())

    /// Metrics for `session`, in a registry of their own; the session is read only at `render()`.
    public init(session: ReceiveSession) {
        self.session = session
        factory = PrometheusMetricsFactory(registry: registry)
    }

    /// The current values, by metric name; `true` marks a counter, `false` a gauge.
    func sample() -> [(String, Int, Bool)] {
        let s = session.statistics
        let p = s.pool
        let r = s.receiver
        return [
            ("netmem_page_pool_alloc_fast", p.alloc.fast, true),
            ("netmem_page_pool_alloc_slow", p.alloc.slow, true),
            ("netmem_page_pool_alloc_slow_high_order", p.alloc.slowHighOrder, true),
            ("netmem_page_pool_alloc_empty", p.alloc.empty, true),
            ("netmem_page_pool_alloc_refill", p.alloc.refill, true),
            ("netmem_page_pool_alloc_waive", p.alloc.waive, true),
            ("netmem_page_pool_recycle_cached", p.recycle.cached, true),
            ("netmem_page_pool_recycle_cache_full", p.recycle.cacheFull, true),
            ("netmem_page_pool_recycle_ring", p.recycle.ring, true),
            ("netmem_page_pool_recycle_ring_full", p.recycle.ringFull, true),
            ("netmem_page_pool_recycle_released_refcnt", p.recycle.releasedRefcnt, true),
            ("netmem_page_pool_inflight", s.poolInFlight, false),
            ("netmem_page_pool_held", p.held, false),
            ("netmem_ring_bytes_received", r.bytesReceived, true),
            ("netmem_ring_completions", r.completions, true),
            ("netmem_ring_segments", r.segmentsDelivered, true),
            ("netmem_ring_rearms", r.rearms, true),
            ("netmem_ring_enobufs", r.backpressureEvents, true),
            ("netmem_ring_resumes", r.resumes, true),
            ("netmem_ring_buffers_in_ring", r.buffersInRing, false),
            ("netmem_ring_buffers_held_by_app", r.buffersHeldByApplication, false),
            ("netmem_tokens_outstanding", s.tokensOutstanding, false),
            ("netmem_rx_payload_bytes", s.payloadBytes, true),
            ("netmem_rx_frames", s.frames, true),
            ("netmem_rx_sequence_gaps", s.sequenceGaps, true),
            ("netmem_rx_holds", s.holds, true),
            ("netmem_rx_admission_waits", s.admissionWaits, true),
            ("netmem_rx_collapses", s.collapses, true),
            ("netmem_rx_bytes_staged", s.bytesStaged, true),
            ("netmem_rx_frame_timeouts", s.frameTimeouts, true),
            ("netmem_connections_accepted", s.connectionsAccepted, true),
            ("netmem_connections_ended", s.connectionsEnded, true),
            ("netmem_connections_failed", s.connectionsFailed, true),
            ("netmem_connections_open", s.connectionsOpen, false),
        ]
    }

    /// Brings every metric up to date and renders the registry in the Prometheus text
    /// format. Any thread.
    public func render() -> [UInt8] {
        let values = sample()
        return published.withLockChecked { p in
            for (name, value, isCounter) in values {
                if isCounter {
                    let counter = p.counters[name] ?? CoreMetrics.Counter(label: name, factory: factory)
                    p.counters[name] = counter
                    let delta = value - (p.last[name] ?? 0)
                    if delta > 0 { counter.increment(by: delta) }
                    if delta > 0 || p.last[name] == nil { p.last[name] = value }
                } else {
                    let gauge = p.gauges[name] ?? CoreMetrics.Gauge(label: name, factory: factory)
                    p.gauges[name] = gauge
                    gauge.record(value)
                }
            }
            return registry.emitToBuffer()
        }
    }
}
