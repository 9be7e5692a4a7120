/// Ethernet frames carrying UDP datagrams, with right lengths and IPv4 header checksums
/// (UDP checksum 0, which IPv4 allows): what the AF_XDP tests damage one field at a
/// time, the fuzz target's seeds, and what `netmem bench xdp` transmits. The one frame
/// builder of its kind.
package enum UDPFrames {
    /// Who sends to whom.
    package struct Addresses: Sendable {
        package var destinationMAC: [UInt8]
        package var sourceMAC: [UInt8]
        package var sourceIPv4: [UInt8]
        package var destinationIPv4: [UInt8]
        package var sourcePort: UInt16
        package var destinationPort: UInt16

        package init(destinationMAC: [UInt8], sourceMAC: [UInt8], sourceIPv4: [UInt8], destinationIPv4: [UInt8],
                     sourcePort: UInt16 = 1234, destinationPort: UInt16 = 9999) {
            self.destinationMAC = destinationMAC
            self.sourceMAC = sourceMAC
            self.sourceIPv4 = sourceIPv4
            self.destinationIPv4 = destinationIPv4
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
        }

        /// 02:00:00:00:00:02 (10.0.0.2:1234) to 02:00:00:00:00:01 (10.0.0.1:9999).
        package static let test = Addresses(destinationMAC: [0x02, 0, 0, 0, 0, 1], sourceMAC: [0x02, 0, 0, 0, 0, 2],
                                            sourceIPv4: [10, 0, 0, 2], destinationIPv4: [10, 0, 0, 1])

        /// From end B of `lab` to end A.
        package static func bToA(_ lab: VethLab, sourcePort: UInt16 = 12345, destinationPort: UInt16 = 9999) -> Addresses {
            func octets(_ ip: String) -> [UInt8] { ip.split(separator: ".").map { UInt8($0)! } }
            return Addresses(destinationMAC: lab.macA, sourceMAC: lab.macB, sourceIPv4: octets(lab.ipB),
                             destinationIPv4: octets(lab.ipA), sourcePort: sourcePort, destinationPort: destinationPort)
        }
    }

    /// An IPv4 datagram: `vlans` tags outermost first (two or more make the first an
    /// 802.1ad S-tag), `options` 4-byte words of IPv4 options.
    package static func ipv4(payload: [UInt8], vlans: [UInt16] = [], options: Int = 0,
                             addresses a: Addresses = .test) -> [UInt8] {
        var f = a.destinationMAC + a.sourceMAC
        for (i, vlan) in vlans.enumerated() {
            let outer = i == 0 && vlans.count > 1
            f += [outer ? 0x88 : 0x81, outer ? 0xA8 : 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)]
        }
        f += [0x08, 0x00]
        let headerLength = 20 + 4 * options
        let total = headerLength + 8 + payload.count
        var ip: [UInt8] = [UInt8(0x40 | headerLength / 4), 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, 0x40, 0, 64, 17, 0, 0]
        ip += a.sourceIPv4 + a.destinationIPv4 + [UInt8](repeating: 1, count: 4 * options)
        let checksum = 0xFFFF - onesComplementSum(ip)
        ip[10] = UInt8(checksum >> 8)
        ip[11] = UInt8(checksum & 0xFF)
        f += ip
        return f + udp(payload: payload, addresses: a)
    }

    /// An IPv6 datagram from 0…02 to 0…01; `nextHeader` other than 17 makes it not UDP.
    package static func ipv6(payload: [UInt8], nextHeader: UInt8 = 17, addresses a: Addresses = .test) -> [UInt8] {
        var f = a.destinationMAC + a.sourceMAC + [0x86, 0xDD]
        let payloadLength = 8 + payload.count
        f += [0x60, 0, 0, 0, UInt8(payloadLength >> 8), UInt8(payloadLength & 0xFF), nextHeader, 64]
        f += [UInt8](repeating: 0, count: 15) + [2] + [UInt8](repeating: 0, count: 15) + [1]
        return f + udp(payload: payload, addresses: a)
    }

    private static func udp(payload: [UInt8], addresses a: Addresses) -> [UInt8] {
        let length = 8 + payload.count
        return [UInt8(a.sourcePort >> 8), UInt8(a.sourcePort & 0xFF), UInt8(a.destinationPort >> 8),
                UInt8(a.destinationPort & 0xFF), UInt8(length >> 8), UInt8(length & 0xFF), 0, 0] + payload
    }

    /// The 16-bit ones' complement sum of `bytes` (an even count), folded.
    private static func onesComplementSum(_ bytes: [UInt8]) -> Int {
        var sum = 0
        for i in stride(from: 0, to: bytes.count, by: 2) { sum += Int(bytes[i]) << 8 | Int(bytes[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return sum
    }
}
