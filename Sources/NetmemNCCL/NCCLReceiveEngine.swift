import Netmem
import NetmemURing
import SystemPackage

/// The plugin's only contact with `StreamReceiver` (keep it that way: the receive
/// session's delivery API may change, and this file is what follows it). A receive comm
/// owns one engine: a host-memory pool, a `StreamReceiver` reading the comm's sockets
/// with multishot receives into provided buffers, and the thread that runs it.
///
/// The handler runs on that thread and sees each received piece as borrowed bytes, valid
/// during the call; the engine gives the buffer back when the call returns. Every read is
/// one-shot: the handler says what the next one is, a read limited to a header or a short
/// payload, or a placement of a long payload straight into NCCL's buffer. (The host
/// path copies into NCCL's buffer inside the call. A device path that leaves payload in a
/// bound region would keep the segment instead and give it back on `irecvConsumed`.)
final class NCCLReceiveEngine: @unchecked Sendable {
    enum Event {
        /// A socket is being read (`connection` names it in later events).
        case opened(connection: UInt64)
        /// Bytes of that socket's stream, in order.
        case bytes(connection: UInt64, UnsafeRawBufferPointer)
        /// This many bytes of the stream landed where `placeNext` said.
        case placed(connection: UInt64, Int)
        /// The socket ended; `clean` when closed by us or by an orderly end of stream.
        case ended(connection: UInt64, reason: String, clean: Bool)
        /// The receive loop itself failed (every socket is closed).
        case failed(String)
    }

    struct Statistics {
        var bytes = 0
        var completions = 0
        var segments = 0
        var enobufs = 0
    }

    private let receiver: StreamReceiver
    private var sockets: [FileDescriptor]
    private var thread: NCCLThread?

    /// Sets up the pool and the receiver for `sockets` (connected TCP sockets the engine
    /// now owns and closes); `start` begins reading.
    init(sockets: [FileDescriptor], chunkSize: Int, buffers: Int, name: String) throws(NCCLError) {
        do {
            let provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: buffers)
            let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: buffers, name: name))
            receiver = try StreamReceiver(pool: pool, configuration: StreamReceiver.Configuration(bufferCount: buffers))
        } catch {
            for s in sockets { _ = try? s.close() }
            throw NCCLError(.system, "receive engine (\(buffers) × \(chunkSize) B): \(error)")
        }
        self.sockets = sockets
    }

    deinit {
        for s in sockets { _ = try? s.close() }  // never started: the sockets are still ours
    }

    /// Starts the receive thread; `handler` gets every event on it. The receiver owns the
    /// sockets from then on.
    func start(name: String, _ handler: @escaping (Event) -> Void) throws(NCCLError) {
        let receiver = self.receiver
        thread = try NCCLThread(name: name) {
            do {
                try receiver.run { event in
                    switch consume event {
                    case let .connected(id):
                        handler(.opened(connection: id.rawValue))
                    case let .data(segment):
                        // The segment gives its buffer back when it goes, after the call.
                        segment.withUnsafeBytes { handler(.bytes(connection: segment.connection.rawValue, $0)) }
                    case let .placed(id, n):
                        handler(.placed(connection: id.rawValue, n))
                    case let .closed(id, end):
                        let clean = end == .endOfStream || end == .closedLocally
                        handler(.ended(connection: id.rawValue, reason: end.description, clean: clean))
                    default:
                        break
                    }
                }
            } catch {
                handler(.failed("\(error)"))
            }
            receiver.pool.destroy()
        }
        // Every read is one-shot from the first, so a payload can be placed exactly.
        receiver.limitFirstReads(to: NCCLWireFrame.size)
        for s in sockets { receiver.adopt(s) }
        sockets = []
    }

    /// The next read of `connection` takes at most `bytes` bytes, through the pool (from
    /// the handler, on the receive thread).
    func limitNextRead(connection: UInt64, to bytes: Int) {
        receiver.limitNextRead(ConnectionID(rawValue: connection), to: bytes)
    }

    /// The next `buffer.count` bytes of `connection` land in `buffer` (from the handler,
    /// on the receive thread; `buffer` is a posted receive's, valid until the comm closes,
    /// and `stop` returns only after the kernel let go of it).
    func placeNext(connection: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        receiver.placeNext(ConnectionID(rawValue: connection), into: buffer)
    }

    /// Ends the receive loop (closing the sockets) and joins its thread.
    func stop() {
        receiver.stop()
        thread?.join()
        thread = nil
    }

    var statistics: Statistics {
        let s = receiver.statistics
        return Statistics(bytes: s.bytesReceived, completions: s.completions, segments: s.segmentsDelivered,
                          enobufs: s.backpressureEvents)
    }
}
