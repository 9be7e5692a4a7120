import CNetmemNCCL
import Glibc
import Netmem
@testable import NetmemNCCL
import Testing

@Suite("NCCL plugin: connection handle and wire frames")
struct NCCLHandleAndFrameTests {
    func encoded(_ h: NCCLConnectionHandle) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xCC, count: 128)
        bytes.withUnsafeMutableBytes { h.encode(into: $0.baseAddress!) }
        return bytes
    }

    func decode(_ bytes: [UInt8]) throws(NCCLError) -> NCCLConnectionHandle {
        try bytes.withUnsafeBytes { raw in Result { () throws(NCCLError) in try NCCLConnectionHandle(decoding: raw.baseAddress!) } }.get()
    }

    @Test("a handle survives encode and decode, IPv4 and IPv6")
    func handleRoundTrip() throws {
        let v4 = NCCLConnectionHandle(address: NCCLAddress(family: AF_INET, bytes: [10, 1, 2, 3], port: 4242),
                                      sockets: 4, crc: true, token: 0x1234_5678_9ABC_DEF0)
        let v6 = NCCLConnectionHandle(address: NCCLAddress(family: AF_INET6, bytes: Array(1...16), port: 65535),
                                      sockets: 16, crc: false, token: 1)
        for h in [v4, v6] {
            let bytes = encoded(h)
            #expect(bytes.count == Int(CNM_NCCL_NET_HANDLE_MAXSIZE))
            #expect(try decode(bytes) == h)
            #expect(bytes[64...].allSatisfy { $0 == 0 }, "the connect state starts zeroed")
        }
    }

    @Test("zeroed, random and damaged handles are rejected with a message")
    func badHandles() throws {
        let good = encoded(NCCLConnectionHandle(address: .loopback.withPort(9), sockets: 1, crc: false, token: 77))
        var g = SplitMix64(seed: 13)
        var cases: [(String, [UInt8])] = [("zeroed", [UInt8](repeating: 0, count: 128))]
        for i in 0..<50 { cases.append(("random \(i)", g.bytes(128))) }
        for i in [5, 9, 12, 20, 30, 37] {  // one flipped bit in each covered field
            var b = good
            b[i] ^= 0x10
            cases.append(("byte \(i) damaged", b))
        }
        for (what, bytes) in cases {
            do {
                _ = try decode(bytes)
                Issue.record("\(what) handle was accepted")
            } catch {
                #expect(error.kind == .invalidArgument, "\(what)")
                #expect(!error.message.isEmpty)
            }
        }
    }

    @Test("connect keeps its state in the handle's last 64 bytes, not in the checked part")
    func connectState() throws {
        var bytes = encoded(NCCLConnectionHandle(address: .loopback.withPort(9), sockets: 2, crc: false, token: 5))
        bytes.withUnsafeMutableBytes { NCCLConnectionHandle.setPendingConnect(42, in: $0.baseAddress!) }
        #expect(bytes.withUnsafeBytes { NCCLConnectionHandle.pendingConnect(in: $0.baseAddress!) } == 42)
        #expect(try decode(bytes).sockets == 2, "the handle still decodes with a connect state in it")
        bytes.withUnsafeMutableBytes { NCCLConnectionHandle.setPendingConnect(nil, in: $0.baseAddress!) }
        #expect(bytes.withUnsafeBytes { NCCLConnectionHandle.pendingConnect(in: $0.baseAddress!) } == nil)
    }

    @Test("every wire frame kind round-trips through 48 bytes")
    func frames() throws {
        let frames: [NCCLWireFrame] = [
            .hello(nonce: 99, token: 0xFEED, index: 3, count: 8),
            .credit(sequence: 7, capacity: 1 << 30),
            .data(sequence: 12, total: 5_000_000, offset: 2_500_000, length: 2_500_000, crc: 0xDEAD_BEEF),
            .data(sequence: 0, total: 0, offset: 0, length: 0, crc: nil),
            .refused(sequence: 4, sendSize: 8192, receiveSize: 4096),
        ]
        for f in frames {
            var bytes = [UInt8](repeating: 0, count: NCCLWireFrame.size)
            bytes.withUnsafeMutableBytes { f.encode(into: $0.baseAddress!) }
            let back = try bytes.withUnsafeBytes { raw in Result { () throws(NCCLError) in try NCCLWireFrame.decode(raw) } }.get()
            #expect(back == f)
        }
    }

    @Test("a bad frame from the peer is a remote error naming what was wrong")
    func badFrames() throws {
        var bytes = [UInt8](repeating: 0, count: NCCLWireFrame.size)
        bytes.withUnsafeMutableBytes { NCCLWireFrame.credit(sequence: 1, capacity: 10).encode(into: $0.baseAddress!) }
        var unknownKind = bytes
        unknownKind[8] = 0x77
        var badMagic = bytes
        badMagic[0] = 0
        var payloadOnCredit = bytes
        payloadOnCredit[12] = 1
        for (what, b, word) in [("unknown kind", unknownKind, "kind"), ("bad magic", badMagic, "magic"),
                                ("credit with payload", payloadOnCredit, "payload")] {
            do {
                _ = try b.withUnsafeBytes { raw in Result { () throws(NCCLError) in try NCCLWireFrame.decode(raw) } }.get()
                Issue.record("\(what) was accepted")
            } catch {
                #expect(error.kind == .remote, "\(what)")
                #expect(error.message.contains(word), "\(what): \(error.message)")
            }
        }
    }
}

extension NCCLAddress {
    func withPort(_ p: UInt16) -> NCCLAddress {
        var a = self
        a.port = p
        return a
    }
}
