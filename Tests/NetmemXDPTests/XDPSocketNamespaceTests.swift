import Foundation
import Netmem
import NetmemDevice
import NetmemNamespace
import NetmemLab
import Testing
@testable import NetmemXDP

/// End-to-end tests over a veth pair between two namespaces the test creates. They need
/// root; without it they are skipped and the reason is printed.
@Suite("AF_XDP over veth", .serialized)
struct XDPSocketNamespaceTests {
    /// The payload of datagram `seq`: 4-byte sequence, then a pattern that depends on it.
    /// The sequence number in the first four bytes of a test payload (-1 when shorter).
    static func sequence(_ bytes: [UInt8]) -> Int {
        guard bytes.count >= 4 else { return -1 }
        let b0 = Int(bytes[0]) << 24, b1 = Int(bytes[1]) << 16
        let b2 = Int(bytes[2]) << 8, b3 = Int(bytes[3])
        return b0 | b1 | b2 | b3
    }

    static func payload(seq: Int, length: Int) -> [UInt8] {
        var p: [UInt8] = [UInt8(seq >> 24 & 0xFF), UInt8(seq >> 16 & 0xFF), UInt8(seq >> 8 & 0xFF), UInt8(seq & 0xFF)]
        for j in 4..<length { p.append(UInt8((seq &* 31 &+ j &* 7) & 0xFF)) }
        return p
    }

    static func length(seq: Int) -> Int { 4 + (seq * 37) % 1400 }

    static let pythonPayload = """
    def payload(seq, n):
        return bytes([(seq >> 24) & 255, (seq >> 16) & 255, (seq >> 8) & 255, seq & 255]) + bytes(((seq * 31 + j * 7) & 255) for j in range(4, n))
    """

    /// A Python sender of `count` datagrams of `length(seq:)` bytes to `address`:9999,
    /// pausing every 50 so a small ring keeps up.
    static func udpSenderScript(count: Int, to address: String) -> String {
        """
        import socket, time
        \(pythonPayload)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for seq in range(\(count)):
            s.sendto(payload(seq, 4 + (seq * 37) % 1400), ("\(address)", 9999))
            if seq % 50 == 49: time.sleep(0.01)
        """
    }

    @Test("UDP datagrams from the peer namespace arrive byte for byte; tokens return every frame",
          .enabled(if: VethLab.pythonUnavailableReason == nil, "needs root, iproute2 and python3"))
    func receivesDatagrams() throws {
        let lab = try VethLab(tag: "xr", layout: .twoNamespaces)
        defer { lab.remove() }
        let count = 300
        var config = XDPConfiguration(interfaceName: lab.ifA, queue: 0, mode: .copy, frameSize: 2048, headroom: 64)
        config.frameCount = 512
        config.receiveRingSize = 256
        var socket = try NetworkNamespace.run(in: lab.namespaceA!) { () throws(XDPError) -> XDPSocket in try XDPSocket(config) }
        let pool = socket.pool
        print("redirect program attached \(socket.programIsNative ? "in the driver" : "as generic XDP")")

        let script = Self.udpSenderScript(count: count, to: lab.ipA)
        let (sender, pipe) = try lab.startPython(in: lab.namespaceB!, script)
        var seen = Set<Int>()
        var mismatches = 0
        var messages: [Message] = []
        let deadline = ContinuousClock.now + .seconds(15)
        while seen.count < count && ContinuousClock.now < deadline {
            _ = socket.wait(timeoutMilliseconds: 100)
            messages.removeAll(keepingCapacity: true)
            _ = socket.receive(into: &messages, limit: 64)
            for m in messages {
                #expect(m.linear.count == 42)
                guard let f = m.fragments.first else { continue }
                let bytes = try m.payloadBytes()
                let seq = Self.sequence(bytes)
                seen.insert(seq)
                if bytes.count != Self.length(seq: seq) || bytes != Self.payload(seq: seq, length: bytes.count) { mismatches += 1 }
                #expect(f.regionID == socket.regions.region.id)
            }
            // Each message gives its frame back when it goes.
            messages.removeAll(keepingCapacity: true)
        }
        sender.waitUntilExit()
        let senderOutput = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(sender.terminationStatus == 0, "sender: \(senderOutput)")
        let stats = try socket.statistics()
        #expect(seen.count == count, "received \(seen.count) of \(count); kernel: \(stats.fields)")
        // Nothing more is coming: a wait under the default coalescing sleeps its pause,
        // finds the ring still empty and goes on to poll(2); a zero timeout polls without a pause.
        #expect(config.coalescingMicroseconds == 50)
        let before = socket.counters
        let readyAtOnce = socket.wait(timeoutMilliseconds: 0)
        let readyLater = socket.wait(timeoutMilliseconds: 1)
        #expect(!readyAtOnce && !readyLater)
        #expect(socket.counters.coalescingPauses == before.coalescingPauses + 1)
        #expect(socket.counters.pollWaits == before.pollWaits + 2)
        #expect(mismatches == 0)
        #expect(socket.counters.malformed.total == 0, "\(socket.counters.malformed)")
        #expect(socket.tokens.heldCount == 0)
        // Everything not returned by the application is in the kernel's rings.
        #expect(pool.inFlight == socket.framesInKernel)
        _ = consume socket
        #expect(pool.inFlight == 0)
    }

    @Test("the callback API lends headers and payload in place; every frame is back when the call returns",
          .enabled(if: VethLab.pythonUnavailableReason == nil, "needs root, iproute2 and python3"))
    func callbackReceiveLendsDatagramsInPlace() throws {
        let lab = try VethLab(tag: "xc", layout: .twoNamespaces)
        defer { lab.remove() }
        let count = 200
        var config = XDPConfiguration(interfaceName: lab.ifA, queue: 0, mode: .copy, frameSize: 2048)
        config.frameCount = 256
        config.receiveRingSize = 128
        // Without wake-up coalescing: every wait on an empty ring goes straight to poll(2).
        config.coalescingMicroseconds = 0
        var socket = try NetworkNamespace.run(in: lab.namespaceA!) { () throws(XDPError) -> XDPSocket in try XDPSocket(config) }
        let pool = socket.pool
        let script = Self.udpSenderScript(count: count, to: lab.ipA)
        let (sender, pipe) = try lab.startPython(in: lab.namespaceB!, script)
        var seen = Set<Int>()
        var bad: [String] = []
        let deadline = ContinuousClock.now + .seconds(15)
        while seen.count < count && ContinuousClock.now < deadline {
            _ = socket.wait(timeoutMilliseconds: 100)
            _ = socket.receive(limit: 32) { headers, payload, layout in
                // Ethernet + IPv4 + UDP, destination port 9999 in the lent header bytes.
                if headers.count != 42 || layout.destinationPort != 9999
                    || Int(headers[36]) << 8 | Int(headers[37]) != 9999 {
                    bad.append("headers \(headers.count) bytes, layout \(layout)")
                }
                guard payload.count >= 4 else {
                    bad.append("payload of \(payload.count) bytes")
                    return
                }
                let seq = Int(payload[0]) << 24 | Int(payload[1]) << 16 | Int(payload[2]) << 8 | Int(payload[3])
                seen.insert(seq)
                // The payload follows the headers in the same frame.
                if payload.baseAddress != headers.baseAddress! + 42 || Array(payload) != Self.payload(seq: seq, length: payload.count) {
                    bad.append("payload of datagram \(seq)")
                }
            }
            // Lent frames are back once the call returns.
            #expect(pool.inFlight == socket.framesInKernel)
        }
        sender.waitUntilExit()
        let senderOutput = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(sender.terminationStatus == 0, "sender: \(senderOutput)")
        #expect(seen.count == count, "received \(seen.count) of \(count)")
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        #expect(socket.counters.coalescingPauses == 0)
        #expect(socket.tokens.heldCount == 0)
        #expect(pool.inFlight == socket.framesInKernel)
        _ = consume socket
        #expect(pool.inFlight == 0)
    }

    @Test("malformed frames injected with a raw socket are counted by reason and returned",
          .enabled(if: VethLab.pythonUnavailableReason == nil, "needs root, iproute2 and python3"))
    func malformedFrames() throws {
        let lab = try VethLab(tag: "xm", layout: .twoNamespaces)
        defer { lab.remove() }
        var config = XDPConfiguration(interfaceName: lab.ifA, queue: 0, mode: .copy, frameSize: 4096, headroom: 0)
        config.frameCount = 256
        config.receiveRingSize = 128
        var socket = try NetworkNamespace.run(in: lab.namespaceA!) { () throws(XDPError) -> XDPSocket in try XDPSocket(config) }
        let pool = socket.pool
        let dst = lab.macA.map { String(format: "0x%02x", $0) }.joined(separator: ",")
        let src = lab.macB.map { String(format: "0x%02x", $0) }.joined(separator: ",")
        // Each malformed kind is sent twice; a good datagram last marks the end.
        let script = """
        import socket, struct
        def csum(b):
            s = sum((b[i] << 8) + b[i+1] for i in range(0, len(b), 2))
            while s > 0xffff: s = (s & 0xffff) + (s >> 16)
            return 0xffff - s
        def ip4(proto, payload, fix=True, total=None):
            t = total if total is not None else 20 + len(payload)
            h = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, t, 1, 0x4000, 64, proto, 0, bytes([10,0,0,2]), bytes([10,0,0,1])))
            if fix: h[10:12] = struct.pack('!H', csum(bytes(h)))
            return bytes(h) + payload
        eth = bytes([\(dst)]) + bytes([\(src)])
        good_udp = struct.pack('!HHHH', 1000, 9999, 8 + 6, 0) + b'netmem'
        frames = [
            eth + b'\\x08\\x00' + b'\\x45\\x00\\x00',                                   # truncated
            eth + b'\\x88\\xb5' + b'hello, not ip' * 4,                                 # not_ip
            eth + b'\\x08\\x00' + ip4(6, b'\\x00' * 20),                                 # not_udp
            eth + b'\\x08\\x00' + ip4(17, good_udp, fix=False),                          # bad_checksum
            eth + b'\\x08\\x00' + ip4(17, struct.pack('!HHHH', 1000, 9999, 500, 0) + b'x' * 10),  # bad_length
            eth + b'\\x08\\x00' + ip4(17, good_udp, total=900),                          # bad_length
        ]
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind(("\(lab.ifB)", 0))
        for f in frames * 2:
            s.send(f)
        s.send(eth + b'\\x08\\x00' + ip4(17, good_udp))
        """
        let (sender, pipe) = try lab.startPython(in: lab.namespaceB!, script)
        var messages: [Message] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while messages.isEmpty && ContinuousClock.now < deadline {
            _ = socket.wait(timeoutMilliseconds: 100)
            _ = socket.receive(into: &messages, limit: 64)
        }
        sender.waitUntilExit()
        let senderOutput = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(sender.terminationStatus == 0, "sender: \(senderOutput)")
        let m = socket.counters.malformed
        #expect(m[.truncated] == 2)
        #expect(m[.notIP] == 2)
        #expect(m[.notUDP] == 2)
        #expect(m[.badChecksum] == 2)
        #expect(m[.badLength] == 4)
        #expect(m.total == 12)
        #expect(messages.count == 1)
        #expect(try messages.first?.payloadBytes() == Array("netmem".utf8))
        #expect(socket.tokens.heldCount == 1)
        messages.removeAll()
        #expect(socket.tokens.heldCount == 0)
        #expect(pool.inFlight == socket.framesInKernel)
        _ = consume socket
        #expect(pool.inFlight == 0)
    }

    @Test("zero-copy on veth is refused with an error that says so and suggests copy mode; the queue is free again after close",
          .enabled(if: VethLab.pythonUnavailableReason == nil, "needs root, iproute2 and python3"))
    func zeroCopyRefusedAndRebind() throws {
        let lab = try VethLab(tag: "xz", layout: .twoNamespaces)
        defer { lab.remove() }
        var config = XDPConfiguration(interfaceName: lab.ifA, queue: 0, mode: .zeroCopy)
        config.frameCount = 128
        config.receiveRingSize = 64
        do {
            _ = try NetworkNamespace.run(in: lab.namespaceA!) { () throws(XDPError) -> XDPSocket in try XDPSocket(config) }
            Issue.record("zero-copy bind on veth unexpectedly succeeded")
        } catch let error as XDPError {
            guard case .zeroCopyUnsupported = error else {
                Issue.record("unexpected error: \(error)")
                return
            }
            print("zero-copy refused as expected: \(error)")
            #expect(error.description.contains("no AF_XDP zero-copy support"))
            #expect(error.description.contains("--mode copy"))
        }
        // The failed attempt left nothing attached: copy mode binds at once, twice in a row.
        config.mode = .copy
        for _ in 0..<2 {
            let socket = try NetworkNamespace.run(in: lab.namespaceA!) { () throws(XDPError) -> XDPSocket in try XDPSocket(config) }
            let pool = socket.pool
            _ = consume socket
            #expect(pool.inFlight == 0)
        }
        let links = try VethLab.run("ip -n \(lab.namespaceA!) link show \(lab.ifA)")
        #expect(!links.contains("xdp"), "an XDP program stayed attached: \(links)")
    }

    @Test("configuration errors name the value")
    func configurationErrors() {
        var c = XDPConfiguration(interfaceName: "lo", frameSize: 3000)
        #expect(throws: XDPError.self) { try c.validate() }
        c.frameSize = 2048
        c.headroom = 2000
        #expect((try? c.validate()) == nil)
        c.headroom = 0
        c.receiveRingSize = 100
        #expect((try? c.validate()) == nil)
        c.receiveRingSize = 2048
        #expect((try? c.validate()) != nil)
        for bad in [-1, 1_000_001] {
            c.coalescingMicroseconds = bad
            #expect(throws: XDPError.invalidConfiguration(name: "coalescing time", value: "\(bad)", reason: "must be 0 to 1000000 microseconds")) {
                try c.validate()
            }
        }
        c.coalescingMicroseconds = 0
        #expect((try? c.validate()) != nil)
        let missing = XDPConfiguration(interfaceName: "nmx-no-such0")
        #expect(throws: XDPError.noSuchInterface("nmx-no-such0")) { _ = try XDPSocket(missing) }
    }
}

@Suite("AF_XDP transmit over veth", .serialized)
struct XDPTransmitNamespaceTests {
    @Test("frames sent with AF_XDP TX from the peer arrive intact; sent frames return through the completion ring",
          .enabled(if: VethLab.pythonUnavailableReason == nil, "needs root, iproute2 and python3"))
    func transmitToReceiver() throws {
        let lab = try VethLab(tag: "xt", layout: .twoNamespaces)
        defer { lab.remove() }
        var rxConfig = XDPConfiguration(interfaceName: lab.ifA, queue: 0, mode: .copy)
        rxConfig.frameCount = 512
        rxConfig.receiveRingSize = 256
        var rx = try NetworkNamespace.run(in: lab.namespaceA!) { () throws(XDPError) -> XDPSocket in try XDPSocket(rxConfig) }
        var txConfig = XDPConfiguration(interfaceName: lab.ifB, queue: 0, mode: .copy)
        txConfig.attachProgram = false
        txConfig.frameCount = 256
        txConfig.receiveRingSize = 8
        txConfig.transmitRingSize = 128
        var tx = try NetworkNamespace.run(in: lab.namespaceB!) { () throws(XDPError) -> XDPSocket in try XDPSocket(txConfig) }
        let rxPool = rx.pool
        let txPool = tx.pool

        let count = 200
        let frames = (0..<count).map { seq -> [UInt8] in
            var f = UDPFrames.ipv4(payload: XDPSocketNamespaceTests.payload(seq: seq, length: 8 + seq % 300))
            f.replaceSubrange(0..<12, with: lab.macA + lab.macB)
            return f
        }
        var next = 0
        var seen = Set<Int>()
        var messages: [Message] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while seen.count < count && ContinuousClock.now < deadline {
            if next < count {
                next += try tx.transmit(upTo: Swift.min(16, count - next)) { i, buffer in
                    let f = frames[next + i]
                    buffer.copyBytes(from: f)
                    return f.count
                }
            } else {
                try tx.kickTransmit()
                tx.reapCompletions()
            }
            messages.removeAll(keepingCapacity: true)
            if rx.receive(into: &messages) == 0 { _ = rx.wait(timeoutMilliseconds: 10) }
            for m in messages where !m.fragments.isEmpty {
                let bytes = try m.payloadBytes()
                let seq = XDPSocketNamespaceTests.sequence(bytes)
                seen.insert(seq)
                #expect(bytes == XDPSocketNamespaceTests.payload(seq: seq, length: 8 + seq % 300))
            }
            messages.removeAll(keepingCapacity: true)
        }
        let end = ContinuousClock.now + .seconds(2)
        while tx.counters.completed < tx.counters.transmitted && ContinuousClock.now < end {
            try tx.kickTransmit()
            tx.reapCompletions()
        }
        let rxStats = try rx.statistics()
        #expect(seen.count == count, "received \(seen.count) of \(count); rx kernel \(rxStats.fields)")
        #expect(tx.counters.transmitted == count)
        #expect(tx.counters.completed == count)
        #expect(txPool.inFlight == tx.framesInKernel)
        _ = consume tx
        _ = consume rx
        #expect(txPool.inFlight == 0)
        #expect(rxPool.inFlight == 0)
    }
}
