import NetmemFraming
import NetmemURing
import Synchronization

/// How one connection went.
public struct ConnectionSummary: Sendable, Equatable {
    /// The connection's parser counters at its end.
    public var statistics: FrameParser.Statistics
    /// Why the connection failed, or nil when it ended cleanly (at a frame boundary).
    public var error: FrameError?
    /// How the socket side ended: end of stream, reset, closed locally, or a failed receive.
    public var end: ConnectionEnd

    /// A summary from its parts.
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
    /// The connection's identifier, as the session's events and its `StreamReceiver` name it.
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
        /// `AsyncSequence` requirement.
        public typealias Element = ReceivedFrame
        /// `AsyncSequence` requirement.
        public typealias Failure = FrameError
        let connection: ReceiveConnection

        /// `AsyncSequence` requirement.
        public func makeAsyncIterator() -> Iterator { Iterator(connection: connection) }

        /// Takes the connection's frames in order; one task uses it. Cancelling that task while it
        /// waits closes the connection.
        public struct Iterator: AsyncIteratorProtocol {
            let connection: ReceiveConnection

            /// The next frame; nil after the last one when the peer closed cleanly. Throws the
            /// `FrameError` that ended the connection otherwise. Taking frames lets a held connection
            /// resume once the queue is down to half.
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

            /// `AsyncIteratorProtocol` requirement; calls `next(isolation:)`.
            public mutating func next() async throws(FrameError) -> ReceivedFrame? {
                try await next(isolation: nil)
            }
        }
    }
}
