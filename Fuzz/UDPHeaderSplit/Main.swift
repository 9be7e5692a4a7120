import NetmemFuzzSupport
import NetmemLab
import NetmemXDP

// The software header split of AF_XDP frames (Ethernet, up to two VLAN tags, IPv4 or
// IPv6, UDP) on arbitrary frames, placed at an arbitrary alignment.
//
// Invariants: no trap and no read outside the frame (the frame lies in a buffer of
// exactly its size, so AddressSanitizer sees any overread); a layout describes a
// datagram inside the frame (headers of the sizes their version has, the UDP length
// and ports as the UDP header says); appending link padding changes nothing; cutting
// the frame one byte short of the datagram's end makes it malformed.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUDPHeaderSplit(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzReader(data, size)
    let shift = Int(input.u8() % 8)
    checkFrame(input.rest(), alignment: shift)
    return 0
}

func parse(_ frame: [UInt8], alignment: Int) -> Result<UDPHeaderSplit.Layout, UDPHeaderSplit.Malformed> {
    // Exactly the frame's bytes, `alignment` bytes past an 8-byte boundary.
    let raw = UnsafeMutableRawPointer.allocate(byteCount: frame.count + alignment, alignment: 8)
    defer { raw.deallocate() }
    let buffer = UnsafeMutableRawBufferPointer(start: raw + alignment, count: frame.count)
    buffer.copyBytes(from: frame)
    return UDPHeaderSplit.parse(UnsafeRawBufferPointer(buffer))
}

func be16(_ f: [UInt8], _ i: Int) -> Int { Int(f[i]) << 8 | Int(f[i + 1]) }

func checkFrame(_ frame: [UInt8], alignment: Int) {
    let result = parse(frame, alignment: alignment)
    guard case let .success(layout) = result else { return }
    let end = layout.headerLength + layout.payloadLength
    fuzzCheck(layout.payloadLength >= 0 && end <= frame.count,
              "layout \(layout) runs past the \(frame.count)-byte frame")
    fuzzCheck([14, 18, 22].contains(layout.networkOffset), "network header at \(layout.networkOffset)")
    fuzzCheck((layout.networkOffset == 14) == (layout.vlanID == nil), "VLAN tag \(String(describing: layout.vlanID)) at offset \(layout.networkOffset)")
    let l4 = layout.headerLength - 8
    switch layout.ipVersion {
    case 4:
        let ihl = Int(frame[layout.networkOffset] & 0x0F) * 4
        fuzzCheck(frame[layout.networkOffset] >> 4 == 4 && ihl >= 20 && l4 == layout.networkOffset + ihl,
                  "IPv4 layout \(layout) with IHL \(ihl)")
        fuzzCheck(frame[layout.networkOffset + 9] == 17, "IPv4 protocol \(frame[layout.networkOffset + 9]) taken for UDP")
    case 6:
        fuzzCheck(frame[layout.networkOffset] >> 4 == 6 && l4 == layout.networkOffset + 40, "IPv6 layout \(layout)")
        fuzzCheck(frame[layout.networkOffset + 6] == 17, "IPv6 next header \(frame[layout.networkOffset + 6]) taken for UDP")
    default:
        fuzzCheck(false, "IP version \(layout.ipVersion)")
    }
    fuzzCheck(be16(frame, l4 + 4) == layout.payloadLength + 8, "UDP length \(be16(frame, l4 + 4)) vs \(layout)")
    fuzzCheck(Int(layout.sourcePort) == be16(frame, l4) && Int(layout.destinationPort) == be16(frame, l4 + 2),
              "ports of \(layout)")
    let padded = parse(frame + [0, 0, 0, 0, 0, 0, 0, 0x55], alignment: (alignment + 3) % 8)
    fuzzCheck(padded == result, "link padding changed \(result) into \(padded)")
    if case .success = parse(Array(frame[0..<(end - 1)]), alignment: alignment) {
        fuzzCheck(false, "a frame cut one byte short of its \(end)-byte datagram still parses")
    }
}

var seedFrames: [(String, [UInt8])] {
    let payload = (0..<64).map { UInt8($0) }
    var fragmented = UDPFrames.ipv4(payload: payload)
    fragmented[20] = 0x20  // MF set (checksum then wrong too)
    var arp = UDPFrames.ipv4(payload: [])
    arp[12] = 0x08; arp[13] = 0x06
    return [
        ("ipv4", UDPFrames.ipv4(payload: payload)),
        ("ipv4-empty", UDPFrames.ipv4(payload: [])),
        ("ipv4-padded", UDPFrames.ipv4(payload: [1, 2, 3]) + [UInt8](repeating: 0, count: 15)),
        ("ipv4-options", UDPFrames.ipv4(payload: payload, options: 3)),
        ("ipv4-vlan", UDPFrames.ipv4(payload: payload, vlans: [42])),
        ("ipv4-qinq", UDPFrames.ipv4(payload: payload, vlans: [100, 42])),
        ("ipv6", UDPFrames.ipv6(payload: payload)),
        ("ipv6-tcp", UDPFrames.ipv6(payload: payload, nextHeader: 6)),
        ("ipv4-fragmented", fragmented),
        ("arp", arp),
    ].map { ($0.0, [0] + $0.1) }  // first byte: the alignment
}

@main struct FuzzUDPHeaderSplit {
    static func main() {
        FuzzMain.run("fuzz-udp-header-split", seeds: { seedFrames.map { (name: $0.0, bytes: $0.1) } },
                     test: fuzzUDPHeaderSplit)
    }
}
