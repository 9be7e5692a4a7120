import Glibc
import NetmemFraming
import NetmemURing
import SystemPackage

/// Why a send failed.
public enum StreamSenderError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidPlan(String)
    /// Reading the source file failed.
    case read(Errno)
    /// Sending failed (the peer went away, the socket broke).
    case send(Errno)
    /// Setting up or using io_uring zero-copy send failed.
    case zeroCopy(URingError)
    /// Zero-copy notifications never came: the kernel may still read the buffers, which
    /// are kept allocated.
    case notificationsLost(Int)

    public var description: String {
        switch self {
        case let .invalidPlan(why): return "invalid send plan: \(why)"
        case let .read(e): return "reading the source failed: \(e) (errno \(e.rawValue))"
        case let .send(e): return "sending failed: \(e) (errno \(e.rawValue))"
        case let .zeroCopy(e): return "zero-copy send: \(e)"
        case let .notificationsLost(n):
            return "zero-copy send: \(n) notifications never came; the memory may still be in use (kept allocated)"
        }
    }
}

/// A blocking sender of raw bytes or Netmem frames on a connected TCP socket: a pattern
/// of pseudo-random bytes or a file's contents, `sendmsg` of header and payload per
/// frame, or io_uring SEND_ZC from registered buffers (headers go plain). The
/// counterpart of a receive session, for tests, benches and tools.
public enum StreamSender {
    /// What to send.
    public struct Plan: Sendable {
        /// Where the bytes come from.
        public enum Source: Sendable {
            /// Pseudo-random bytes (so checksums see varied data).
            case pattern
            /// A file's contents, read from this descriptor (the caller opens it before
            /// connecting, so a missing file is found first, and closes it after).
            case file(FileDescriptor)
        }

        /// Where the payload bytes come from.
        public var source: Source = .pattern
        /// Payload bytes to send; nil sends until `duration` passed (pattern), or to the
        /// end of the file.
        public var totalBytes: Int?
        /// How long a pattern source sends, at most; a file source ignores it. The clock is read
        /// every 16 messages.
        public var duration: Duration?
        /// Bytes per send (per frame when framed).
        public var messageSize = 1 << 20
        /// Whether to send Netmem frames (header, then payload) rather than raw bytes.
        public var framed = false
        /// Frames carry a CRC-32C of their payload.
        public var checksums = true
        /// Payloads go with io_uring SEND_ZC from registered buffers.
        public var zeroCopy = false
        /// The stream ID in every frame header (framed sends); sequence numbers start at 0.
        public var streamID: UInt32 = 1

        /// A plan with checksums on and zero-copy off. `send` validates it: a message size of 1 byte
        /// to 4 GiB - 1, and a pattern source needs `totalBytes` or `duration`.
        public init(source: Source = .pattern, totalBytes: Int? = nil, messageSize: Int = 1 << 20, framed: Bool = false) {
            self.source = source
            self.totalBytes = totalBytes
            self.messageSize = messageSize
            self.framed = framed
        }

        func validate() throws(StreamSenderError) {
            guard messageSize > 0, messageSize <= Int(UInt32.max) else {
                throw .invalidPlan("message size \(messageSize): must be 1 byte to 4 GiB - 1")
            }
            if let t = totalBytes, t < 0 { throw .invalidPlan("total bytes \(t) is negative") }
            if case .pattern = source, totalBytes == nil, duration == nil {
                throw .invalidPlan("a pattern source needs a byte count or a duration")
            }
        }
    }

    /// What was sent.
    public struct Result: Sendable {
        /// Payload bytes sent (frame headers not counted).
        public var bytes = 0
        /// Sends made: one per frame when framed.
        public var messages = 0
        /// Time from the start of `send` to its end.
        public var duration: Duration = .zero
        /// The zero-copy sender's counters (with `zeroCopy`).
        public var zeroCopy: ZeroCopySender.Statistics?
        /// An empty result.
        public init() {}
    }

    /// Sees what is sent, in order: every payload (before it goes) and every frame header.
    public struct Observer {
        /// Called with each payload before it is sent, on the sending thread; the bytes are valid
        /// only during the call.
        public var payload: ((UnsafeRawBufferPointer) -> Void)?
        /// Called with each frame header before it is sent (framed sends), on the sending thread.
        public var frame: ((FrameHeader) -> Void)?
        /// An observer with either callback, or none.
        public init(payload: ((UnsafeRawBufferPointer) -> Void)? = nil, frame: ((FrameHeader) -> Void)? = nil) {
            self.payload = payload
            self.frame = frame
        }
    }

    /// Sends `plan` on `socket` (blocking) until it is done or `shouldStop` says so.
    ///
    /// - Throws: `StreamSenderError` for a bad plan, a failed read or send, or zero-copy
    ///   trouble.
    public static func send(_ plan: Plan, to socket: FileDescriptor, observer: Observer = Observer(),
                            shouldStop: () -> Bool = { false }) throws(StreamSenderError) -> Result {
        try plan.validate()
        var result = Result()
        var writer = FrameWriter(streamID: plan.streamID, firstSequence: 0, checksums: plan.checksums)
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = plan.duration.map { start + $0 }
        var headerBytes = [UInt8](repeating: 0, count: FrameHeader.size)
        let zc: ZeroCopySender?
        do { zc = plan.zeroCopy ? try ZeroCopySender(socket: socket) : nil } catch { throw .zeroCopy(error) }
        var tag: UInt32 = 0

        func sendOne(_ payload: UnsafeRawBufferPointer) throws(StreamSenderError) {
            observer.payload?(payload)
            if plan.framed {
                let header = writer.nextHeader(for: payload)
                observer.frame?(header)
                let r: Swift.Result<Void, StreamSenderError> = headerBytes.withUnsafeMutableBytes { h in
                    header.encode(into: h)
                    do throws(StreamSenderError) {
                        if let zc {
                            do throws(URingError) {
                                try zc.sendPlain(UnsafeRawBufferPointer(h))
                                if payload.count > 0 { try zc.send(payload, tag: tag) }
                            } catch { throw .zeroCopy(error) }
                        } else {
                            do throws(Errno) { try BlockingSocket.sendAll(socket, UnsafeRawBufferPointer(h), payload) } catch { throw .send(error) }
                        }
                        return .success(())
                    } catch { return .failure(error) }
                }
                try r.get()
            } else if let zc {
                do { try zc.send(payload, tag: tag) } catch { throw .zeroCopy(error) }
            } else {
                do { try BlockingSocket.sendAll(socket, payload) } catch { throw .send(error) }
            }
            result.bytes += payload.count
            result.messages += 1
        }

        // Memory the kernel may still read (zero-copy) must stay allocated: it is kept
        // when notifications never come.
        func finishZeroCopy() -> Bool {
            guard let zc else { return true }
            return (try? zc.drain(timeout: .seconds(10))) != nil
        }

        switch plan.source {
        case let .file(file):
            // Two buffers, so one can be read into while the kernel may still send from the other.
            let buffers = (0..<2).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: plan.messageSize, alignment: 4096) }
            var drained = false
            defer { if drained || zc == nil { for b in buffers { b.deallocate() } } }
            do { try zc?.register(buffers: buffers) } catch { throw .zeroCopy(error) }
            var which = 0
            while !shouldStop() {
                let buffer = buffers[which]
                tag = UInt32(which + 1)
                which ^= 1
                do { try zc?.waitUntilReusable(tag: tag) } catch { throw .zeroCopy(error) }
                var want = buffer.count
                if let total = plan.totalBytes { want = min(want, total - result.bytes) }
                if want <= 0 { break }
                var filled = 0
                while filled < want {
                    let n: Int
                    do { n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<want])) } catch {
                        throw .read(error as? Errno ?? .ioError)
                    }
                    if n == 0 { break }
                    filled += n
                }
                if filled == 0 { break }
                try sendOne(UnsafeRawBufferPointer(rebasing: buffer[..<filled]))
            }
            drained = finishZeroCopy()
            if !drained { throw .notificationsLost(zc?.notificationsOutstanding ?? 0) }
        case .pattern:
            let span = max(8 << 20, plan.messageSize * 2)
            let pattern = Self.pattern(span + plan.messageSize)
            var drained = false
            defer { if drained || zc == nil { pattern.deallocate() } }
            // The pattern never changes, so sends from it need not wait for notifications.
            do { try zc?.register(buffers: [pattern]) } catch { throw .zeroCopy(error) }
            var offset = 0
            while !shouldStop() {
                var size = plan.messageSize
                if let total = plan.totalBytes {
                    if result.bytes >= total { break }
                    size = min(size, total - result.bytes)
                }
                if let deadline, result.messages & 15 == 0, clock.now >= deadline { break }
                try sendOne(UnsafeRawBufferPointer(rebasing: pattern[offset..<(offset + size)]))
                offset = (offset + 4096 * 37) % span
            }
            drained = finishZeroCopy()
            if !drained { throw .notificationsLost(zc?.notificationsOutstanding ?? 0) }
        }
        result.zeroCopy = zc?.statistics
        result.duration = clock.now - start
        return result
    }

    /// A buffer of pseudo-random bytes (xorshift), 4 KiB aligned; the caller deallocates it.
    public static func pattern(_ count: Int) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 4096)
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        let words = buffer.bindMemory(to: UInt64.self)
        for i in words.indices {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            words[i] = x
        }
        for i in (words.count * 8)..<count { buffer[i] = UInt8(truncatingIfNeeded: i) }
        return UnsafeMutableRawBufferPointer(start: buffer.baseAddress, count: count)
    }
}
