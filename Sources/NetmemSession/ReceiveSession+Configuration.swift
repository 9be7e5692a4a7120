import Netmem
import NetmemDevice
import NetmemFraming
import NetmemGPU
import NetmemURing

extension ReceiveSession {
    /// Which memory received data lands in.
    public typealias Memory = MemoryKind

    /// Everything a session is made from.
    public struct Configuration: Sendable {
        /// Where to accept connections; nil when the session only reads sockets handed to
        /// `adopt`.
        public var listen: SocketAddress?
        /// Accept backlog; nil takes the system maximum.
        public var backlog: Int32?
        /// The memory data lands in.
        public var memory: Memory = .host
        /// Bytes per buffer (a power of two from 4 KiB to 2 MiB; a memfd region or pinned
        /// GPU landing takes 4 KiB, 64 KiB or 2 MiB).
        public var chunkSize = 64 << 10
        /// Buffers in the kernel's provided-buffer ring.
        public var bufferCount = 64
        /// Chunks the pool may hand out at once: the ring's buffers plus what consumers
        /// hold; nil takes twice `bufferCount`.
        public var poolSize: Int?
        /// Scatter-gather segments of a memfd region (`Memory.memfdRegion`).
        public var segments = 3
        /// Raw bytes, or frames in the Netmem frame format.
        public var mode: FrameParser.Mode = .raw
        /// Frames (raw mode: segments) a connection's `frames` sequence buffers before the
        /// session stops reading that connection until the consumer catches up.
        public var maxQueuedFrames = 64
        /// Incremental buffer consumption (nil: when the kernel has it and chunks are at
        /// least 64 KiB).
        public var incremental: Bool?
        /// The RX loop's longest wait in the kernel.
        public var idleWait: Duration = .milliseconds(10)
        /// Payload bytes incomplete frames may hold across all connections (framed mode);
        /// nil takes half the memory, and never less than the maximum payload. A frame
        /// whose length does not fit waits its turn: its connection is not read until
        /// frames before it completed, so a completing frame always has memory.
        public var pendingBudget: Int?
        /// The longest a frame may stay incomplete once it got its turn (framed mode); a
        /// peer slower than that is ended with `FrameError.partialFrameTimedOut`, and only
        /// that connection.
        public var partialFrameTimeout: Duration = .seconds(60)
        /// Staging memory: the bytes of a frame waiting for its turn, and under memory
        /// pressure the few bytes of an incomplete frame that pin receive chunks, are
        /// copied here (in 4 KiB chunks) so the receive chunks can recycle; nil takes as
        /// much as the receive memory (at least 2 MiB).
        public var stagingBytes: Int?
        /// A name for logs, pools and regions.
        public var name = "netmem"

        /// A configuration with the default sizes, listening on `listen` (nil: only adopted
        /// sockets). The session validates it when it is made.
        public init(listen: SocketAddress? = nil, memory: Memory = .host, mode: FrameParser.Mode = .raw) {
            self.listen = listen
            self.memory = memory
            self.mode = mode
        }

        /// The largest frame payload a ring of `bufferCount` × `chunkSize` can assemble:
        /// half its memory (a frame's payload stays in the ring's buffers until the whole
        /// frame is there).
        public var largestPayload: Int { bufferCount * chunkSize / 2 }

        /// Chunks of the memory: `poolSize`, or twice `bufferCount`.
        public var chunkCount: Int { poolSize ?? bufferCount * 2 }

        /// The pending budget in effect.
        public var effectivePendingBudget: Int {
            var maxPayload = 0
            if case let .framed(m) = mode { maxPayload = m }
            return pendingBudget ?? max(maxPayload, chunkCount * chunkSize / 2)
        }

        /// Staging memory in effect, in 4 KiB chunks.
        var stagingChunks: Int { max(16, (stagingBytes ?? max(2 << 20, chunkCount * chunkSize)) / 4096) }

        func validate() throws(ReceiveSessionError) {
            guard chunkSize >= 4096, chunkSize <= 2 << 20, chunkSize & (chunkSize - 1) == 0 else {
                throw .invalidConfiguration("chunk size \(chunkSize): must be a power of two from 4 KiB to 2 MiB")
            }
            guard bufferCount >= 1, bufferCount <= 32768 else {
                throw .invalidConfiguration("buffer count \(bufferCount): must be 1 to 32768")
            }
            guard chunkCount >= bufferCount else {
                throw .invalidConfiguration("pool size \(chunkCount) is below the buffer count \(bufferCount): the ring could never be filled")
            }
            guard segments >= 1, segments <= 4096 else {
                throw .invalidConfiguration("segments \(segments): must be 1 to 4096")
            }
            if let b = pendingBudget {
                var maxPayload = 0
                if case let .framed(m) = mode { maxPayload = m }
                guard b >= maxPayload else {
                    throw .invalidConfiguration("pending budget \(b) is below the maximum payload \(maxPayload): such a frame could never complete")
                }
            }
            guard partialFrameTimeout > .zero else {
                throw .invalidConfiguration("partial frame timeout \(partialFrameTimeout): must be positive")
            }
            if let s = stagingBytes, s < 0 { throw .invalidConfiguration("staging bytes \(s) is negative") }
            guard maxQueuedFrames >= 1 else {
                throw .invalidConfiguration("max queued frames \(maxQueuedFrames): must be at least 1")
            }
            if case let .framed(maxPayload) = mode {
                guard maxPayload >= 0 else { throw .invalidConfiguration("maximum payload \(maxPayload) is negative") }
                guard maxPayload <= largestPayload else {
                    throw .invalidConfiguration("a maximum payload of \(maxPayload) bytes does not fit the receive ring "
                        + "(\(bufferCount) × \(chunkSize) bytes holds frames up to \(largestPayload) bytes); "
                        + "raise the buffer count or chunk size, or lower the maximum payload")
                }
            }
            switch memory {
            case .memfdRegion, .gpu(_, .pinned):
                guard DevmemBinding.allowedChunkSizes.contains(chunkSize) else {
                    throw .invalidConfiguration("a bound region uses 4 KiB, 64 KiB or 2 MiB chunks, not \(chunkSize) bytes")
                }
                if case .memfdRegion = memory, segments > chunkCount {
                    throw .invalidConfiguration("\(segments) segments cannot each hold a chunk of a \(chunkCount)-chunk region")
                }
            default:
                break
            }
        }
    }
}
