import NetmemSession
import ServiceLifecycle

/// A receive session as a swift-service-lifecycle `Service`: `run()` starts the session
/// and returns when it ends; a graceful shutdown of the service group (SIGTERM, say)
/// stops it cleanly — connections close, the pool is destroyed, the region unbound — and
/// so does cancellation.
///
/// ```swift
/// let session = try ReceiveSession(configuration)
/// let group = ServiceGroup(services: [session.service], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
public struct ReceiveSessionService: Service {
    /// The session `run()` runs and stops.
    public let session: ReceiveSession

    /// Wraps `session`; it starts when the service runs.
    public init(session: ReceiveSession) { self.session = session }

    /// Runs the session until it ends, stopping it at graceful shutdown.
    ///
    /// - Throws: `ReceiveSessionError` when the session could not start or ended with an
    ///   error.
    public func run() async throws {
        let session = self.session
        try await withGracefulShutdownHandler {
            try await session.run()
        } onGracefulShutdown: {
            session.stop()
        }
    }
}

extension ReceiveSession {
    /// This session as a swift-service-lifecycle `Service`.
    public var service: ReceiveSessionService { ReceiveSessionService(session: self) }
}
