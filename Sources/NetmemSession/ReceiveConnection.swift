import NetmemFraming
import NetmemURing
import Synchronization

/// How one connection went.
public struct ConnectionSummary: Sendable, Equatable {
    public var statistics: FrameParser.Statistics
    /// Why the connection failed, or nil when it ended cleanly (at a frame boundary).
    public var error: FrameError?
    public var end: ConnectionEnd

    public init(statistics: FrameParser.Statistics, error: FrameError?, end: ConnectionEnd) {
        self.statistics = statistics
        self.error = error
        self.end = end
    }
}

/// One connection of a receive session, for the async API: its frames (raw mode: runs of
/// bytes) as an `AsyncSequence` with backpressure. When the consumer falls behind by
/// `Configuration.maxQueuedFrames`, the session stops reading this connection (the data
/// waits in the socket) until the consumer has taken half of them; other connections go
/// on. Cancelling the task that iterates `frames` closes the connection.
public final class ReceiveConnection: Sendable, Identifiable, CustomStringConvertible {
    public let id: ConnectionID
    let queue: AsyncFrameQueue<ReceivedFrame, FrameError>
    private let receiver: StreamReceiver
    private let summaryBox = Mutex<ConnectionSummary?>(nil)

    init(id: ConnectionID, receiver: StreamReceiver, limit: Int) {
        self.id = id
        self.receiver = receiver
        queue = AsyncFrameQueue(limit: limit)
    }

    /// The frames of this connection, in order. The sequence ends after the last frame
    /// when the peer closed cleanly, and throws the `FrameError` that ended the
    /// connection otherwise (a bad frame, a reset, a local close in mid-frame). One task
    /// iterates it.
    public var frames: Frames { Frames(connection: self) }

    /// How the connection went, once it ended (nil before).
    public var summary: ConnectionSummary? { summaryBox.withLockChecked { $0 } }

    /// Closes the connection (any thread): frames still queued stay readable; nothing
    /// more arrives.
    public func close() { receiver.close(id) }

    public var description: String { id.description }

    func ended(_ summary: ConnectionSummary) {
        summaryBox.withLockChecked { $0 = summary }
        queue.finish(summary.error.map { .failure($0) } ?? .success(()))
    }

    /// The frames of one connection.
    public struct Frames: AsyncSequence, Sendable {
        public typealias Element = ReceivedFrame
        public typealias Failure = FrameError
        let connection: ReceiveConnection

        public func makeAsyncIterator() -> Iterator { Iterator(connection: connection) }

        public struct Iterator: AsyncIteratorProtocol {
            let connection: ReceiveConnection

            public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async throws(FrameError) -> ReceivedFrame? {
                let c = connection
                let result = await c.queue.next(onCancel: { [receiver = c.receiver, id = c.id] in
                    c.queue.cancel()
                    receiver.close(id)
                }, pressure: { p in
                    if case .low = p { c.receiver.resume(c.id, reason: .consumer) }
                })
                return try result.get()
            }

            public mutating func next() async throws(FrameError) -> ReceivedFrame? {
                try await next(isolation: nil)
            }
        }
    }
}
