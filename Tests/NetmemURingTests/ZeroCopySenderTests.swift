import Glibc
import Netmem
import NetmemURing
import Synchronization
import SystemPackage
import NetmemTestSupport
import Testing

@Suite("ZeroCopySender over loopback", .serialized)
struct ZeroCopySenderTests {
    /// Receives everything on `fd` until EOF (plain blocking recv) into a byte array.
    final class Sink: @unchecked Sendable {
        var bytes: [UInt8] = []
        func drain(_ fd: FileDescriptor) {
            var buf = [UInt8](repeating: 0, count: 256 << 10)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(fd.rawValue, $0.baseAddress, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                bytes.append(contentsOf: buf[0..<n])
            }
        }
    }

    func roundTrip(zeroCopy: Bool, registered: Bool) throws -> ZeroCopySender.Statistics {
        let (listener, port) = try Loopback.listener()
        defer { try? listener.close() }
        let client = try Loopback.connect(port: port)
        let server = try Loopback.accept(listener)
        let sink = Sink()
        let reader = TestThread {
            sink.drain(server)
            try? server.close()
        }
        let provider = try HostPageProvider(chunkSize: 1 << 20, chunkCount: 4)
        let area = provider.area
        let sender = try ZeroCopySender(socket: client, zeroCopy: zeroCopy)
        if registered { try sender.register(area: area) }
        var expected: [UInt8] = []
        for round in 0..<6 {
            let chunk = round % 4
            let base = area.baseAddress! + chunk * area.chunkSize
            // Only write a buffer again once its previous send's notification came.
            try sender.waitUntilReusable(tag: UInt32(chunk))
            let data = URingTest.bytes(count: area.chunkSize - round * 1000, seed: UInt64(50 + round))
            data.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            try sender.send(UnsafeRawBufferPointer(start: base, count: data.count), tag: UInt32(chunk))
            expected += data
        }
        let small = URingTest.bytes(count: 333, seed: 99)
        try small.withUnsafeBytes { try sender.sendPlain($0) }
        expected += small
        try sender.drain()
        #expect(sender.notificationsOutstanding == 0)
        try? client.close()
        reader.join()
        #expect(sink.bytes == expected)
        print("send zeroCopy=\(zeroCopy) registered=\(registered): \(sender.statistics)")
        return sender.statistics
    }

    @Test("SEND_ZC from registered buffers: every send gets its notification, copies are counted",
          .enabled(if: URingTest.hasSendZC || URingTest.skipReason("IORING_OP_SEND_ZC")))
    func zeroCopyRegistered() throws {
        let s = try roundTrip(zeroCopy: true, registered: true)
        #expect(s.zeroCopySends >= 6)
        #expect(s.fixedBufferSends == s.zeroCopySends)
        #expect(s.notifications == s.zeroCopySends)
        #expect(s.plainSends == 1)
        // Loopback always copies; the kernel says so when it can report usage.
        if s.usageReported { #expect(s.copiedByKernel == s.notifications) }
    }

    @Test("SEND_ZC from unregistered memory",
          .enabled(if: URingTest.hasSendZC || URingTest.skipReason("IORING_OP_SEND_ZC")))
    func zeroCopyUnregistered() throws {
        let s = try roundTrip(zeroCopy: true, registered: false)
        #expect(s.fixedBufferSends == 0)
        #expect(s.notifications == s.zeroCopySends && s.zeroCopySends >= 6)
    }

    @Test("plain sends when zero-copy is off")
    func plain() throws {
        let s = try roundTrip(zeroCopy: false, registered: false)
        #expect(s.zeroCopySends == 0 && s.notifications == 0)
        #expect(s.plainSends >= 7)
    }
}
