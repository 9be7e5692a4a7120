import Glibc
import Netmem
import NetmemDevice
import SystemPackage

/// Joins a `StreamReceiver` to a frame parser per connection: feed it every event on the
/// RX thread, and it hands back frames (or raw fragments) and one summary per ended
/// connection. A connection with bad input is closed at once, with an error naming what
/// was wrong; other connections go on. Segments come back to the receiver when the
/// parser and the consumer (through `ledger.dontNeed`) are done with them.
public final class StreamFramer: @unchecked Sendable {
    /// What the framer tells its caller, on the RX thread.
    public enum Event: Sendable {
        /// A frame (raw mode: a run of bytes) of a connection, in stream order. Give its
        /// fragments' tokens back with `ledger.dontNeed` when done (any thread).
        case frame(ConnectionID, ReceivedFrame)
        /// A connection ended; `error` is nil when it ended cleanly at a frame boundary.
        case ended(ConnectionID, ConnectionSummary)
    }

    /// How one connection went.
    public struct ConnectionSummary: Sendable {
        public var statistics: FrameParser<ReceivedSegment>.Statistics
        /// Why the connection failed, or nil when it ended cleanly.
        public var error: FrameError?
        public var end: ConnectionEnd
    }

    final class Connection {
        var parser: FrameParser<ReceivedSegment>
        var error: FrameError?
        init(parser: consuming FrameParser<ReceivedSegment>) { self.parser = parser }
    }

    public let mode: FrameParser<ReceivedSegment>.Mode
    /// The token table for every fragment this framer hands out.
    public let ledger: SegmentLedger<ReceivedSegment>
    private let receiver: StreamReceiver
    private var connections: [ConnectionID: Connection] = [:]
    /// Summed statistics of ended connections.
    public private(set) var endedConnections = 0
    public private(set) var failedConnections = 0

    public init(mode: FrameParser<ReceivedSegment>.Mode, receiver: StreamReceiver) {
        self.mode = mode
        self.receiver = receiver
        self.ledger = SegmentLedger { [receiver] segment in receiver.release(segment) }
    }

    /// The largest frame payload this receiver can assemble: half the memory of its
    /// provided-buffer ring. A frame's payload stays in the ring's buffers until the
    /// whole frame is there, so a larger one could never complete (the ring would run dry
    /// with every buffer held by the half frame).
    public static func largestPayload(for receiver: StreamReceiver) -> Int {
        receiver.configuration.bufferCount * receiver.pool.configuration.chunkSize / 2
    }

    /// Connections open now.
    public var openConnections: Int { connections.count }

    /// Handles one receiver event (call from the receiver's handler).
    public func handle(_ event: ReceiveEvent, _ body: (Event) -> Void) {
        switch event {
        case let .connected(id):
            _ = connection(id)
        case let .data(segment):
            let id = segment.connection
            let c = connection(id)
            do throws(FrameError) {
                try c.parser.consume(segment) { frame in body(.frame(id, frame)) }
            } catch {
                if c.error == nil {
                    c.error = error
                    receiver.close(id)
                }
            }
        case let .closed(id, end):
            let c = connection(id)
            if c.error == nil {
                switch end {
                case .endOfStream:
                    do throws(FrameError) { try c.parser.finish() } catch { c.error = error }
                case .reset:
                    c.error = .connectionFailed(errno: ECONNRESET, "connection reset by peer")
                    c.parser.fail(c.error!)
                case let .failed(e):
                    c.error = .connectionFailed(errno: e.rawValue, e.description)
                    c.parser.fail(c.error!)
                case .closedLocally:
                    if c.parser.referencesHeld > 0 || !isAtBoundary(c) {
                        c.error = .aborted
                    }
                    c.parser.abort()
                }
            } else {
                c.parser.abort()
            }
            connections[id] = nil
            endedConnections += 1
            if c.error != nil { failedConnections += 1 }
            body(.ended(id, ConnectionSummary(statistics: c.parser.statistics, error: c.error, end: end)))
        case .listenerFailed:
            break
        }
    }

    /// Ends every open connection locally (dropping half frames); call after the
    /// receiver's `run` returned.
    public func abortAll() {
        for (_, c) in connections { c.parser.abort() }
        connections.removeAll()
    }

    private func isAtBoundary(_ c: Connection) -> Bool {
        c.parser.isAtFrameBoundary
    }

    private func connection(_ id: ConnectionID) -> Connection {
        if let c = connections[id] { return c }
        let c = Connection(parser: FrameParser(mode: mode, ledger: ledger))
        connections[id] = c
        return c
    }
}
