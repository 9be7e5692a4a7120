import Testing
@testable import NetmemXDP

/// Builds test frames: Ethernet (+VLAN) / IPv4 or IPv6 / UDP with correct checksums and
/// lengths, which the tests then damage one field at a time.
enum FrameBuilder {
    static func ipv4UDP(payload: [UInt8], vlan: UInt16? = nil, srcPort: UInt16 = 1234, dstPort: UInt16 = 9999) -> [UInt8] {
        var f: [UInt8] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]
        if let vlan { f += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] }
        f += [0x08, 0x00]
        let total = 20 + 8 + payload.count
        var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, 0x40, 0, 64, 17, 0, 0,
                           10, 0, 0, 2, 10, 0, 0, 1]
        let sum = ip.withUnsafeBytes { UDPHeaderSplit.checksum($0, from: 0, count: 20) }
        let csum = 0xFFFF - sum
        ip[10] = UInt8(csum >> 8)
        ip[11] = UInt8(csum & 0xFF)
        f += ip
        let ul = 8 + payload.count
        f += [UInt8(srcPort >> 8), UInt8(srcPort & 0xFF), UInt8(dstPort >> 8), UInt8(dstPort & 0xFF),
              UInt8(ul >> 8), UInt8(ul & 0xFF), 0, 0]
        return f + payload
    }

    static func ipv6UDP(payload: [UInt8], nextHeader: UInt8 = 17) -> [UInt8] {
        var f: [UInt8] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xDD]
        let pl = 8 + payload.count
        f += [0x60, 0, 0, 0, UInt8(pl >> 8), UInt8(pl & 0xFF), nextHeader, 64]
        f += [UInt8](repeating: 0, count: 15) + [2] + [UInt8](repeating: 0, count: 15) + [1]
        f += [0x04, 0xD2, 0x27, 0x0F, UInt8(pl >> 8), UInt8(pl & 0xFF), 0, 0]
        return f + payload
    }

    static func parse(_ f: [UInt8]) -> Result<UDPHeaderSplit.Layout, UDPHeaderSplit.Malformed> {
        f.withUnsafeBytes { UDPHeaderSplit.parse($0) }
    }
}

@Suite("UDP header split")
struct UDPHeaderSplitTests {
    @Test("IPv4 UDP: headers end at 42, payload length from the UDP header, link padding ignored")
    func ipv4() throws {
        let payload: [UInt8] = Array(0..<10)
        var f = FrameBuilder.ipv4UDP(payload: payload)
        f += [0, 0, 0, 0, 0, 0, 0, 0]  // Ethernet padding to the minimum frame size
        let layout = try FrameBuilder.parse(f).get()
        #expect(layout.headerLength == 42)
        #expect(layout.payloadLength == 10)
        #expect(layout.ipVersion == 4)
        #expect(layout.destinationPort == 9999)
        #expect(layout.sourcePort == 1234)
        #expect(layout.vlanID == nil)
    }

    @Test("VLAN-tagged IPv4 and plain IPv6")
    func vlanAndIPv6() throws {
        let v = try FrameBuilder.parse(FrameBuilder.ipv4UDP(payload: [1, 2, 3], vlan: 42)).get()
        #expect(v.headerLength == 46)
        #expect(v.vlanID == 42)
        #expect(v.payloadLength == 3)
        let six = try FrameBuilder.parse(FrameBuilder.ipv6UDP(payload: [9, 9, 9, 9])).get()
        #expect(six.headerLength == 62)
        #expect(six.payloadLength == 4)
        #expect(six.ipVersion == 6)
    }

    @Test("every kind of damage is named, and no prefix of a frame crashes the parser")
    func malformed() {
        let good = FrameBuilder.ipv4UDP(payload: Array(repeating: 7, count: 20))
        var badChecksum = good
        badChecksum[24] ^= 0xFF
        #expect(FrameBuilder.parse(badChecksum) == .failure(.badChecksum))

        var tcp = good
        tcp[23] = 6
        // Fix the checksum so only the protocol is wrong.
        tcp[24] = 0; tcp[25] = 0
        let sum = tcp.withUnsafeBytes { UDPHeaderSplit.checksum($0, from: 14, count: 20) }
        tcp[24] = UInt8((0xFFFF - sum) >> 8); tcp[25] = UInt8((0xFFFF - sum) & 0xFF)
        #expect(FrameBuilder.parse(tcp) == .failure(.notUDP))

        var longUDP = good
        longUDP[38] = 0x01  // UDP length 256+ beyond the IP payload
        #expect(FrameBuilder.parse(longUDP) == .failure(.badLength))

        var longIP = good
        longIP[16] = 0x05  // IP total length beyond the frame (checksum no longer matters)
        #expect(FrameBuilder.parse(longIP) == .failure(.badLength))

        var arp = good
        arp[12] = 0x08; arp[13] = 0x06
        #expect(FrameBuilder.parse(arp) == .failure(.notIP))

        var ihl = good
        ihl[14] = 0x43
        #expect(FrameBuilder.parse(ihl) == .failure(.badIPHeader))

        #expect(FrameBuilder.parse(FrameBuilder.ipv6UDP(payload: [1], nextHeader: 6)) == .failure(.notUDP))
        #expect(FrameBuilder.parse(Array(good[0..<30])) == .failure(.truncated))
        #expect(FrameBuilder.parse(Array(good[0..<40])) == .failure(.badLength))  // IP says longer

        var triple: [UInt8] = Array(good[0..<12])
        for _ in 0..<3 { triple += [0x81, 0x00, 0, 1] }
        triple += Array(good[12...])
        #expect(FrameBuilder.parse(triple) == .failure(.tooManyVLANTags))

        // Every prefix of valid frames parses to some result without reading past the end.
        for frame in [good, FrameBuilder.ipv6UDP(payload: [1, 2]), FrameBuilder.ipv4UDP(payload: [3], vlan: 7)] {
            var failures = 0
            for n in 0..<frame.count {
                if case .failure = FrameBuilder.parse(Array(frame[0..<n])) { failures += 1 }
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
