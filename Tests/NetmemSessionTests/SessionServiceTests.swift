import Logging
import NetmemMetrics
import NetmemServiceLifecycle
import NetmemSession
import NetmemTestSupport
import NetmemURing
import ServiceLifecycle
import Testing

@Suite("Receive session as a Service; its metrics", .serialized)
struct SessionServiceTests {
    @Test("A graceful shutdown of the service group stops the session cleanly",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func gracefulShutdown() async throws {
        let session = try SessionAsyncTests.session()
        let group = ServiceGroup(services: [session.service], gracefulShutdownSignals: [], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                // The application: reads every connection to its end.
                for try await connection in session.connections {
                    for try await _ in connection.frames {}
                }
            }
            // The group's task starts the session. It may wait for a thread of the
            // cooperative pool (two on a 2-core machine) while other suites' blocking tests
            // hold them; the bound is there only so a session that never starts fails.
            let deadline = ContinuousClock.now + .seconds(180)  // a bound, not a timing claim
            while !session.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
            #expect(session.isRunning)
            let client = try BlockingSocket.connect(to: session.localAddress!)
            try client.sendAll([UInt8](repeating: 1, count: 10_000))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            try client.close()
            #expect(session.statistics.payloadBytes <= 10_000)
        }
        #expect(!session.isRunning)
        #expect(session.statistics.connectionsOpen == 0)
        #expect(session.shutdownStatus.pool == .finished)
    }

    @Test("Metrics: a slow client does not delay a scrape; the page pool's names are used",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func metricsServer() throws {
        let session = try SessionAsyncTests.session()
        let metrics = SessionMetrics(session: session)
        let server = try MetricsServer(address: try SocketAddress(parsing: "127.0.0.1:0"), idleTimeout: .seconds(30),
                                       render: metrics.render)
        defer { server.stop() }
        // Ten idle clients and one sending a byte now and then, all connected at once.
        var idle = try (0..<10).map { _ in try BlockingSocket.connect(to: server.address) }
        let slow = try BlockingSocket.connect(to: server.address)
        try slow.sendAll(Array("GET /met".utf8))
        let start = ContinuousClock.now
        let body = try NetmemBinary.get(server.address, path: "/metrics")
        #expect(ContinuousClock.now - start < .seconds(5), "a scrape waited behind idle clients")
        #expect(body.hasPrefix("HTTP/1.1 200 OK"))
        #expect(body.contains("# TYPE netmem_page_pool_alloc_fast counter"))
        #expect(body.contains("netmem_connections_open 0"))
        #expect(try NetmemBinary.get(server.address, path: "/other").hasPrefix("HTTP/1.1 404"))
        for c in idle { try c.close() }
        idle.removeAll()
        try slow.close()
    }
}
