import Glibc
import CoreMetrics
import Metrics
import Netmem
import NetmemURing
import Prometheus
import Synchronization
import SystemPackage

/// Publishes a receive session's pool, ring, ledger and connection counters through
/// swift-metrics into a Prometheus registry. Names follow the kernel's page_pool stats
/// where one exists (`netmem_page_pool_alloc_fast` is the kernel's `alloc_fast`).
/// Counters are brought up to date at each scrape from the components' own counters.
final class CLIMetricsExporter: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let session: CLIReceiveSession
    private let state = Mutex<[String: Int]>([:])
    private var counters: [String: CoreMetrics.Counter] = [:]
    private var gauges: [String: CoreMetrics.Gauge] = [:]

    init(session: CLIReceiveSession) {
        self.session = session
        factory = PrometheusMetricsFactory(registry: registry)
    }

    /// The current values, by metric name; `true` marks a counter, `false` a gauge.
    private func sample() -> [(String, Int, Bool)] {
        let p = session.pool.stats
        let r = session.receiver.statistics
        let f = session.inFlight
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
            ("netmem_page_pool_inflight", f.pool, false),
            ("netmem_page_pool_held", p.held, false),
            ("netmem_ring_bytes_received", r.bytesReceived, true),
            ("netmem_ring_completions", r.completions, true),
            ("netmem_ring_segments", r.segmentsDelivered, true),
            ("netmem_ring_rearms", r.rearms, true),
            ("netmem_ring_enobufs", r.backpressureEvents, true),
            ("netmem_ring_resumes", r.resumes, true),
            ("netmem_ring_buffers_in_ring", r.buffersInRing, false),
            ("netmem_ring_buffers_held_by_app", r.buffersHeldByApplication, false),
            ("netmem_ledger_segments_held", f.segments, false),
            ("netmem_ledger_tokens_outstanding", f.tokens, false),
            ("netmem_rx_payload_bytes", session.payloadBytes.load(ordering: .relaxed), true),
            ("netmem_rx_frames", session.frames.load(ordering: .relaxed), true),
            ("netmem_connections_accepted", r.connectionsAccepted, true),
            ("netmem_connections_ended", session.connectionsEnded.load(ordering: .relaxed), true),
            ("netmem_connections_failed", session.connectionsFailed.load(ordering: .relaxed), true),
            ("netmem_connections_open", session.framer.openConnections, false),
        ]
    }

    /// Brings every metric up to date and renders the registry (Prometheus text format).
    func scrape() -> [UInt8] {
        state.withLockChecked { last in
            for (name, value, isCounter) in sample() {
                if isCounter {
                    let counter = counters[name] ?? CoreMetrics.Counter(label: name, factory: factory)
                    counters[name] = counter
                    let delta = value - (last[name] ?? 0)
                    if delta > 0 { counter.increment(by: delta) }
                    if delta > 0 || last[name] == nil { last[name] = value }
                } else {
                    let gauge = gauges[name] ?? CoreMetrics.Gauge(label: name, factory: factory)
                    gauges[name] = gauge
                    gauge.record(value)
                }
            }
            return registry.emitToBuffer()
        }
    }
}

/// A tiny HTTP/1.1 responder for `GET /metrics`: one request per connection, answered
/// and closed, on its own thread.
final class CLIMetricsServer: @unchecked Sendable {
    let address: SocketAddress
    private let listener: FileDescriptor
    private let exporter: CLIMetricsExporter
    private let stopping = Atomic<Bool>(false)
    private var thread: CLIThread?

    init(address: SocketAddress, exporter: CLIMetricsExporter) throws {
        listener = try BlockingSocket.listen(on: address, backlog: 16)
        self.address = try BlockingSocket.localAddress(of: listener)
        self.exporter = exporter
        thread = CLIThread(name: "netmem-metrics") { [self] in serve() }
    }

    func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        shutdown(listener.rawValue, Int32(SHUT_RDWR))
        thread?.join()
        try? listener.close()
    }

    private func serve() {
        while !stopping.load(ordering: .relaxed) {
            guard let client = try? BlockingSocket.accept(listener) else {
                if stopping.load(ordering: .relaxed) { return }
                continue
            }
            answer(client)
            try? client.close()
        }
    }

    private func answer(_ client: FileDescriptor) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(client.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while request.count < 8192 {
            let n = buffer.withUnsafeMutableBytes { (try? BlockingSocket.receive(client, into: $0)) ?? -1 }
            if n <= 0 { break }
            request += buffer[..<n]
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
            if containsHeaderEnd(request) { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let status: String
        var body: [UInt8]
        var type = "text/plain; charset=utf-8"
        if parts.count >= 2, parts[0] == "GET", parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            status = "200 OK"
            body = exporter.scrape()
            type = "text/plain; version=0.0.4; charset=utf-8"
        } else if parts.count >= 2, parts[0] != "GET" {
            status = "405 Method Not Allowed"
            body = Array("only GET /metrics is served\n".utf8)
        } else {
            status = "404 Not Found"
            body = Array("only GET /metrics is served\n".utf8)
        }
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var response = Array(head.utf8)
        response += body
        body = []
        response.withUnsafeBytes { try? BlockingSocket.sendAll(client, $0) }
    }

    private func containsHeaderEnd(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 4 else { return false }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return true
        }
        return false
    }
}
