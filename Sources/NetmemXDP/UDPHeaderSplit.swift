/// Software header split for UDP: finds where the Ethernet (optionally VLAN-tagged),
/// IPv4 or IPv6, and UDP headers end and the UDP payload begins, checking every length
/// against the bytes actually received. Never reads outside the frame.
public enum UDPHeaderSplit {
    /// Why a frame is not a well-formed UDP datagram.
    public enum Malformed: String, Error, Sendable, CaseIterable, CustomStringConvertible {
        /// Shorter than the headers it announces.
        case truncated
        /// Neither IPv4 nor IPv6 (ARP, LLDP, …).
        case notIP = "not_ip"
        /// IP, but not UDP (TCP, ICMP, IPv6 extension headers).
        case notUDP = "not_udp"
        /// A bad IP version or IPv4 header length field.
        case badIPHeader = "bad_ip_header"
        /// The IPv4 header checksum does not match.
        case badChecksum = "bad_checksum"
        /// IP total/payload length or UDP length inconsistent with each other or the frame.
        case badLength = "bad_length"
        /// An IPv4 fragment (no UDP header split is possible).
        case fragmented
        /// More than two VLAN tags.
        case tooManyVLANTags = "too_many_vlan_tags"

        public var description: String { rawValue }
    }

    /// Where the parts of a well-formed datagram are, as offsets into the frame.
    public struct Layout: Sendable, Equatable {
        /// Bytes of headers (Ethernet + VLAN + IP + UDP): the payload starts here.
        public var headerLength: Int
        /// UDP payload bytes (from the UDP length field; link padding excluded).
        public var payloadLength: Int
        /// Offset of the IP header.
        public var networkOffset: Int
        /// 4 or 6.
        public var ipVersion: Int
        /// The 802.1Q VLAN ID of the outer tag, if tagged.
        public var vlanID: UInt16?
        /// The UDP source port, in host byte order.
        public var sourcePort: UInt16
        /// The UDP destination port, in host byte order.
        public var destinationPort: UInt16
    }

    static let ethernetHeader = 14
    static let udpHeader = 8

    /// Parses a frame. Mirrors what `eth_type_trans` + `ip_rcv` + `udp_rcv` check.
    public static func parse(_ frame: UnsafeRawBufferPointer) -> Result<Layout, Malformed> {
        let n = frame.count
        @inline(__always) func u8(_ i: Int) -> Int { Int(frame[i]) }
        @inline(__always) func be16(_ i: Int) -> Int { Int(frame[i]) << 8 | Int(frame[i + 1]) }

        guard n >= ethernetHeader else { return .failure(.truncated) }
        var offset = 12
        var etherType = be16(offset)
        var vlan: UInt16? = nil
        var tags = 0
        while etherType == 0x8100 || etherType == 0x88A8 {
            tags += 1
            guard tags <= 2 else { return .failure(.tooManyVLANTags) }
            guard n >= offset + 6 else { return .failure(.truncated) }
            if vlan == nil { vlan = UInt16(be16(offset + 2) & 0x0FFF) }
            offset += 4
            etherType = be16(offset)
        }
        let l3 = offset + 2
        let l4: Int
        let ipPayloadEnd: Int
        let version: Int
        switch etherType {
        case 0x0800:
            version = 4
            guard n >= l3 + 20 else { return .failure(.truncated) }
            let vihl = u8(l3)
            guard vihl >> 4 == 4 else { return .failure(.badIPHeader) }
            let ihl = (vihl & 0x0F) * 4
            guard ihl >= 20 else { return .failure(.badIPHeader) }
            guard n >= l3 + ihl else { return .failure(.truncated) }
            let total = be16(l3 + 2)
            guard total >= ihl, l3 + total <= n else { return .failure(.badLength) }
            guard checksum(frame, from: l3, count: ihl) == 0xFFFF else { return .failure(.badChecksum) }
            let fragment = be16(l3 + 6)
            guard fragment & 0x3FFF == 0 else { return .failure(.fragmented) }  // MF or offset
            guard u8(l3 + 9) == 17 else { return .failure(.notUDP) }
            l4 = l3 + ihl
            ipPayloadEnd = l3 + total
        case 0x86DD:
            version = 6
            guard n >= l3 + 40 else { return .failure(.truncated) }
            guard u8(l3) >> 4 == 6 else { return .failure(.badIPHeader) }
            let payload = be16(l3 + 4)
            guard l3 + 40 + payload <= n else { return .failure(.badLength) }
            guard u8(l3 + 6) == 17 else { return .failure(.notUDP) }
            l4 = l3 + 40
            ipPayloadEnd = l4 + payload
        default:
            return .failure(.notIP)
        }
        guard ipPayloadEnd - l4 >= udpHeader else {
            return .failure(ipPayloadEnd <= n && n >= l4 + udpHeader ? .badLength : .truncated)
        }
        let udpLength = be16(l4 + 4)
        guard udpLength >= udpHeader, l4 + udpLength <= ipPayloadEnd else { return .failure(.badLength) }
        return .success(Layout(
            headerLength: l4 + udpHeader, payloadLength: udpLength - udpHeader, networkOffset: l3,
            ipVersion: version, vlanID: vlan,
            sourcePort: UInt16(be16(l4)), destinationPort: UInt16(be16(l4 + 2))))
    }

    /// The ones'-complement sum of `count` bytes (even) from `from`; 0xFFFF for a header
    /// whose checksum is right. Mirrors `ip_fast_csum`.
    static func checksum(_ bytes: UnsafeRawBufferPointer, from: Int, count: Int) -> Int {
        var sum = 0
        var i = from
        while i < from + count {
            sum += Int(bytes[i]) << 8 | Int(bytes[i + 1])
            i += 2
        }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return sum
    }
}

/// Frames dropped as malformed, by reason (their buffers went straight back to the pool).
public struct MalformedCounts: Sendable, Equatable, CustomStringConvertible {
    var counts = [Int](repeating: 0, count: UDPHeaderSplit.Malformed.allCases.count)
    /// No frames counted.
    public init() {}

    /// Frames dropped for `reason`.
    public subscript(_ reason: UDPHeaderSplit.Malformed) -> Int {
        get { counts[Self.index(reason)] }
        set { counts[Self.index(reason)] = newValue }
    }

    /// Frames dropped for any reason.
    public var total: Int { counts.reduce(0, +) }

    static func index(_ r: UDPHeaderSplit.Malformed) -> Int {
        UDPHeaderSplit.Malformed.allCases.firstIndex(of: r)!
    }

    public var description: String {
        UDPHeaderSplit.Malformed.allCases.filter { self[$0] > 0 }.map { "\($0)=\(self[$0])" }.joined(separator: " ")
    }
}
