import Testing
import NetmemLab
@testable import NetmemXDP

/// Parses a frame the tests built with `UDPFrames` (and then damaged).
enum TestFrames {
    static func parse(_ f: [UInt8]) -> Result<UDPHeaderSplit.Layout, UDPHeaderSplit.Malformed> {
        f.withUnsafeBytes { UDPHeaderSplit.parse($0) }
    }
}

@Suite("UDP header split")
struct UDPHeaderSplitTests {
    @Test("IPv4 UDP: headers end at 42, payload length from the UDP header, link padding ignored")
    func ipv4() throws {
        let payload: [UInt8] = Array(0..<10)
        var f = UDPFrames.ipv4(payload: payload)
        f += [0, 0, 0, 0, 0, 0, 0, 0]  // Ethernet padding to the minimum frame size
        let layout = try TestFrames.parse(f).get()
        #expect(layout.headerLength == 42)
        #expect(layout.payloadLength == 10)
        #expect(layout.ipVersion == 4)
        #expect(layout.destinationPort == 9999)
        #expect(layout.sourcePort == 1234)
        #expect(layout.vlanID == nil)
    }

    @Test("VLAN-tagged IPv4 and plain IPv6")
    func vlanAndIPv6() throws {
        let v = try TestFrames.parse(UDPFrames.ipv4(payload: [1, 2, 3], vlans: [42])).get()
        #expect(v.headerLength == 46)
        #expect(v.vlanID == 42)
        #expect(v.payloadLength == 3)
        let six = try TestFrames.parse(UDPFrames.ipv6(payload: [9, 9, 9, 9])).get()
        #expect(six.headerLength == 62)
        #expect(six.payloadLength == 4)
        #expect(six.ipVersion == 6)
    }

    @Test("every kind of damage is named, and no prefix of a frame crashes the parser")
    func malformed() {
        let good = UDPFrames.ipv4(payload: Array(repeating: 7, count: 20))
        var badChecksum = good
        badChecksum[24] ^= 0xFF
        #expect(TestFrames.parse(badChecksum) == .failure(.badChecksum))

        var tcp = good
        tcp[23] = 6
        // Fix the checksum so only the protocol is wrong.
        tcp[24] = 0; tcp[25] = 0
        let sum = tcp.withUnsafeBytes { UDPHeaderSplit.checksum($0, from: 14, count: 20) }
        tcp[24] = UInt8((0xFFFF - sum) >> 8); tcp[25] = UInt8((0xFFFF - sum) & 0xFF)
        #expect(TestFrames.parse(tcp) == .failure(.notUDP))

        var longUDP = good
        longUDP[38] = 0x01  // UDP length 256+ beyond the IP payload
        #expect(TestFrames.parse(longUDP) == .failure(.badLength))

        var longIP = good
        longIP[16] = 0x05  // IP total length beyond the frame (checksum no longer matters)
        #expect(TestFrames.parse(longIP) == .failure(.badLength))

        var arp = good
        arp[12] = 0x08; arp[13] = 0x06
        #expect(TestFrames.parse(arp) == .failure(.notIP))

        var ihl = good
        ihl[14] = 0x43
        #expect(TestFrames.parse(ihl) == .failure(.badIPHeader))

        #expect(TestFrames.parse(UDPFrames.ipv6(payload: [1], nextHeader: 6)) == .failure(.notUDP))
        #expect(TestFrames.parse(Array(good[0..<30])) == .failure(.truncated))
        #expect(TestFrames.parse(Array(good[0..<40])) == .failure(.badLength))  // IP says longer

        var triple: [UInt8] = Array(good[0..<12])
        for _ in 0..<3 { triple += [0x81, 0x00, 0, 1] }
        triple += Array(good[12...])
        #expect(TestFrames.parse(triple) == .failure(.tooManyVLANTags))

        // Every prefix of valid frames parses to some result without reading past the end.
        for frame in [good, UDPFrames.ipv6(payload: [1, 2]), UDPFrames.ipv4(payload: [3], vlans: [7])] {
            var failures = 0
            for n in 0..<frame.count {
                if case .failure = TestFrames.parse(Array(frame[0..<n])) { failures += 1 }
            }
            #expect(failures == frame.count)
        }
    }

    @Test("malformed counters count by reason")
    func counts() {
        var c = MalformedCounts()
        c[.notUDP] += 2
        c[.truncated] += 1
        #expect(c.total == 3)
        #expect(c[.notUDP] == 2)
        #expect(c.description == "truncated=1 not_udp=2")
    }
}
