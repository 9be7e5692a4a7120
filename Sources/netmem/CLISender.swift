import Crypto
import Glibc
import NetmemURing
import SystemPackage

/// What a plain blocking sender sends.
struct CLISendPlan: Sendable {
    /// Payload bytes to send; nil sends until `seconds` passed (or Ctrl-C).
    var totalBytes: Int?
    var seconds: Double?
    /// Bytes per send (per frame when framed).
    var messageSize = 1 << 20
    var framed = false
    var crc = true
    /// Send this file's bytes instead of a generated pattern.
    var file: String?
    /// Compute the SHA-256 of the payload sent.
    var sha256 = false
    /// Keep a SHA-256 of every frame's CRC-32C, in order (the demo's end-to-end check).
    var digestFrameCRCs = false
    /// Send payloads with io_uring SEND_ZC from registered buffers (headers go plain).
    var zeroCopy = false
}

struct CLISendResult: Sendable {
    var bytes = 0
    var messages = 0
    var seconds = 0.0
    var sha256: String?
    var frameCRCDigest: String?
    /// The zero-copy sender's counters (with `zeroCopy`).
    var zeroCopy: ZeroCopySender.Statistics?
}

/// A plain blocking send loop (`sendmsg` of header + payload per frame, `send` per
/// message in raw mode).
enum CLISender {
    /// A pattern buffer: pseudo-random bytes, so checksums see varied data.
    static func pattern(_ count: Int) -> UnsafeMutableRawBufferPointer {
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

    static func send(_ plan: CLISendPlan, to socket: FileDescriptor) throws -> CLISendResult {
        precondition(plan.messageSize > 0, "message size must be positive")
        var result = CLISendResult()
        var writer = FrameWriter(streamID: 1, firstSequence: 0, checksums: plan.crc)
        var sha = plan.sha256 ? SHA256() : nil
        var crcDigest = plan.digestFrameCRCs ? SHA256() : nil
        let start = CLIClock.now
        let deadline = plan.seconds.map { start + $0 }
        var headerBytes = [UInt8](repeating: 0, count: FrameHeader.size)
        let zc: ZeroCopySender? = plan.zeroCopy ? try ZeroCopySender(socket: socket) : nil
        var tag: UInt32 = 0

        func sendOne(_ payload: UnsafeRawBufferPointer) throws {
            if plan.framed {
                let header = writer.nextHeader(for: payload)
                if crcDigest != nil {
                    withUnsafeBytes(of: header.payloadCRC32C.littleEndian) { crcDigest!.update(bufferPointer: $0) }
                }
                try headerBytes.withUnsafeMutableBytes { h in
                    header.encode(into: h)
                    if let zc {
                        // The header goes plain (copied); the payload without a copy.
                        try zc.sendPlain(UnsafeRawBufferPointer(h))
                        if payload.count > 0 { try zc.send(payload, tag: tag) }
                    } else {
                        try BlockingSocket.sendAll(socket, UnsafeRawBufferPointer(h), payload)
                    }
                }
            } else if let zc {
                try zc.send(payload, tag: tag)
            } else {
                try BlockingSocket.sendAll(socket, payload)
            }
            sha?.update(bufferPointer: payload)
            result.bytes += payload.count
            result.messages += 1
        }

        if let path = plan.file {
            let file = try FileDescriptor.open(FilePath(path), .readOnly)
            defer { try? file.close() }
            // Two buffers, so one can be read into while the kernel may still send from the other.
            let buffers = (0..<2).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: plan.messageSize, alignment: 4096) }
            defer {
                // Memory the kernel may still read must stay allocated: leak it then.
                if zc == nil || (try? zc!.drain(timeout: .seconds(10))) != nil { for b in buffers { b.deallocate() } }
            }
            try zc?.register(buffers: buffers)
            var which = 0
            while !CLIStopSignal.isRequested {
                let buffer = buffers[which]
                tag = UInt32(which + 1)
                which ^= 1
                try zc?.waitUntilReusable(tag: tag)
                var filled = 0
                while filled < buffer.count {
                    let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                    if n == 0 { break }
                    filled += n
                }
                if filled == 0 { break }
                try sendOne(UnsafeRawBufferPointer(rebasing: buffer[..<filled]))
                if let total = plan.totalBytes, result.bytes >= total { break }
            }
        } else {
            let span = max(8 << 20, plan.messageSize * 2)
            let pattern = Self.pattern(span + plan.messageSize)
            defer {
                if zc == nil || (try? zc!.drain(timeout: .seconds(10))) != nil { pattern.deallocate() }
            }
            // The pattern never changes, so sends from it need not wait for notifications.
            try zc?.register(buffers: [pattern])
            var offset = 0
            while !CLIStopSignal.isRequested {
                var size = plan.messageSize
                if let total = plan.totalBytes {
                    if result.bytes >= total { break }
                    size = min(size, total - result.bytes)
                }
                if let deadline, result.messages & 15 == 0, CLIClock.now >= deadline { break }
                try sendOne(UnsafeRawBufferPointer(rebasing: pattern[offset..<(offset + size)]))
                offset = (offset + 4096 * 37) % span
            }
        }
        if let zc {
            do {
                try zc.drain(timeout: .seconds(10))
            } catch {
                throw CLIError("zero-copy send: \(zc.notificationsOutstanding) notifications never came (\(error)); the memory may still be in use")
            }
        }
        result.zeroCopy = zc?.statistics
        result.seconds = CLIClock.now - start
        result.sha256 = sha.map { CLIFormat.hex($0.finalize()) }
        result.frameCRCDigest = crcDigest.map { CLIFormat.hex($0.finalize()) }
        return result
    }
}
