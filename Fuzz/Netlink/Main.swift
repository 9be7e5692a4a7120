import CNetmemLinux
import NetmemFuzzSupport
import NetmemKernel

// The netlink codec on arbitrary bytes: a datagram split into messages, generic-netlink
// payloads into attributes (nested ones too), error/ACK messages, the netdev records a
// reply holds, and what a request/reply exchange makes of a datagram.
//
// Invariants: no trap, every malformed input a typed `NetlinkError`; what parses
// round-trips: messages re-encoded parse to the same messages, attributes written again
// with `NetlinkMessageBuilder` parse to the same types and payloads (nested ones to the
// same children), and writing what was read back once more gives the same bytes;
// fixed-size accessors succeed exactly when the payload has their size.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNetlink(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size > 0 ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    // Longer inputs could make a nest that, padded again, no longer fits its 16-bit length.
    guard bytes.count <= 60_000 else { return 0 }
    checkDatagram(bytes)
    if let attributes = try? NetlinkAttribute.parseAll(bytes) {
        checkAttributes(attributes, depth: 0)
        checkRoundTrip(attributes)
    }
    return 0
}

func checkDatagram(_ bytes: [UInt8]) {
    let messages: [NetlinkMessage]
    do {
        messages = try NetlinkMessage.parseAll(bytes)
    } catch {
        _ = error.description
        return
    }
    fuzzCheck(messages.count <= bytes.count / 16, "\(messages.count) messages in \(bytes.count) bytes")
    // Messages re-encoded (aligned, zero padding) parse to the same messages.
    var encoded: [UInt8] = []
    for m in messages {
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { encoded += $0 } }
        put(UInt32(16 + m.payload.count)); put(m.type); put(m.flags); put(m.sequence); put(m.portID)
        encoded += m.payload
        while encoded.count % 4 != 0 { encoded.append(0) }
    }
    let again = try? NetlinkMessage.parseAll(encoded)
    fuzzCheck(again.map { same($0, messages) } == true, "\(messages.count) messages re-encoded parse differently")

    for m in messages {
        if let status = try? m.errorStatus() { _ = status }
        if let (command, attributes) = try? m.genericPayload() {
            checkAttributes(attributes, depth: 0)
            checkRecords(attributes)
            // The same message written by the builder.
            var b = NetlinkMessageBuilder(type: m.type, flags: m.flags, sequence: m.sequence)
            b.genl(command: command, version: m.payload[1])
            write(attributes, into: &b)
            let built = b.bytes
            guard let parsed = try? NetlinkMessage.parseAll(built), parsed.count == 1,
                  let (command2, attributes2) = try? parsed[0].genericPayload() else {
                fuzzCheck(false, "a message the builder wrote does not parse")
                return
            }
            fuzzCheck(parsed[0].type == m.type && parsed[0].flags == m.flags && parsed[0].sequence == m.sequence
                      && command2 == command, "builder header round trip")
            compare(attributes, attributes2, depth: 0)
        }
    }
    // What a request/reply exchange makes of it (for the first message's sequence).
    var replies: [NetlinkMessage] = []
    do {
        let ended = try GenericNetlinkSocket.collect(datagram: bytes, sequence: messages.first?.sequence ?? 0,
                                                     what: "fuzz", into: &replies)
        _ = ended
    } catch {
        _ = error.description
        _ = error.kernelErrno
    }
    fuzzCheck(replies.count <= messages.count, "\(replies.count) replies from \(messages.count) messages")
}

func same(_ a: [NetlinkMessage], _ b: [NetlinkMessage]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy {
        $0.type == $1.type && $0.flags == $1.flags && $0.sequence == $1.sequence && $0.portID == $1.portID
            && $0.payload == $1.payload
    }
}

/// Accessors succeed exactly for payloads of their size; nested attributes parse or
/// throw, to a bounded depth.
func checkAttributes(_ attributes: [NetlinkAttribute], depth: Int) {
    for a in attributes {
        let n = a.payload.count
        fuzzCheck(((try? a.u8()) != nil) == (n == 1), "u8 of a \(n)-byte attribute")
        fuzzCheck(((try? a.u16()) != nil) == (n == 2), "u16 of a \(n)-byte attribute")
        fuzzCheck(((try? a.u32()) != nil) == (n == 4), "u32 of a \(n)-byte attribute")
        fuzzCheck(((try? a.u64()) != nil) == (n == 8), "u64 of a \(n)-byte attribute")
        fuzzCheck(((try? a.uint()) != nil) == (n == 4 || n == 8), "uint of a \(n)-byte attribute")
        if n == 4 { fuzzCheck(try! a.uint() == UInt64(try! a.u32()), "uint and u32 disagree") }
        _ = a.string()
        fuzzCheck(a.type & 0xC000 == 0, "attribute type \(a.type) keeps its flag bits")
        if depth < 8, let nested = try? a.nested() { checkAttributes(nested, depth: depth + 1) }
    }
}

/// The netdev records a reply could hold: made or refused with a typed error.
func checkRecords(_ a: [NetlinkAttribute]) {
    _ = try? NetdevDevice(attributes: a)
    _ = try? NetdevQueue(attributes: a)
    _ = try? NetdevNAPI(attributes: a)
    _ = try? NetdevPagePool(attributes: a)
    if let stats = try? NetdevPagePoolStats(attributes: a) { _ = stats.counters }
    for nested in a where nested.isNested {
        if let inner = try? nested.nested() {
            _ = try? NetdevQueue(attributes: inner)
            _ = try? NetdevPagePool(attributes: inner)
        }
    }
}

/// Writes attributes with the builder: nested ones whose payload parses as attributes
/// as a nest of their children, everything else as raw bytes.
func write(_ attributes: [NetlinkAttribute], into b: inout NetlinkMessageBuilder, depth: Int = 0) {
    for a in attributes {
        if a.isNested, depth < 8, let children = try? a.nested() {
            b.beginNest(Int32(a.type))
            write(children, into: &b, depth: depth + 1)
            b.endNest()
        } else {
            b.put(Int32(a.type), bytes: a.payload)
        }
    }
}

/// `written` is `original` read back after `write`: same types, raw payloads equal,
/// nests with the same children.
func compare(_ original: [NetlinkAttribute], _ written: [NetlinkAttribute], depth: Int) {
    fuzzCheck(original.count == written.count, "\(original.count) attributes written, \(written.count) read back")
    for (a, w) in zip(original, written) {
        fuzzCheck(a.type == w.type, "attribute type \(a.type) read back as \(w.type)")
        if a.isNested, depth < 8, let children = try? a.nested() {
            fuzzCheck(w.isNested, "nest \(a.type) read back without its flag")
            guard let writtenChildren = try? w.nested() else {
                fuzzCheck(false, "nest \(a.type) written does not parse")
                return
            }
            compare(children, writtenChildren, depth: depth + 1)
        } else {
            fuzzCheck(!w.isNested && a.payload == w.payload, "attribute \(a.type) payload changed")
        }
    }
}

/// Written, read back and written again: the same bytes.
func checkRoundTrip(_ attributes: [NetlinkAttribute]) {
    var first = NetlinkMessageBuilder(type: 0x20, flags: 0, sequence: 1)
    write(attributes, into: &first)
    let bytes = first.bytes
    guard let message = try? NetlinkMessage.parseAll(bytes), message.count == 1,
          let again = try? NetlinkAttribute.parseAll(message[0].payload) else {
        fuzzCheck(false, "attributes the builder wrote do not parse")
        return
    }
    compare(attributes, again, depth: 0)
    var second = NetlinkMessageBuilder(type: 0x20, flags: 0, sequence: 1)
    write(again, into: &second)
    fuzzCheck(second.bytes == bytes, "writing what was read back changed the bytes")
}

var seedInputs: [(name: String, bytes: [UInt8])] {
    var out: [(String, [UInt8])] = []
    // A queue dump: three records, then NLMSG_DONE.
    var dump: [UInt8] = []
    for q in 0..<3 as Range<UInt32> {
        var b = NetlinkMessageBuilder(type: 0x1b, flags: UInt16(CNM_NLM_F_MULTI), sequence: 5)
        b.genl(command: UInt8(CNM_NETDEV_CMD_QUEUE_GET))
        b.put(CNM_NETDEV_A_QUEUE_ID, u32: q)
        b.put(CNM_NETDEV_A_QUEUE_IFINDEX, u32: 7)
        b.put(CNM_NETDEV_A_QUEUE_TYPE, u32: q % 2)
        b.put(CNM_NETDEV_A_QUEUE_NAPI_ID, u32: 8192 + q)
        dump += b.bytes
    }
    let done = message(type: UInt16(CNM_NLMSG_DONE), flags: UInt16(CNM_NLM_F_MULTI), sequence: 5, payload: le(UInt32(0)))
    out.append(("queue-dump", dump + done))
    // A bind request with nested queues.
    var bind = NetlinkMessageBuilder(type: 0x1b, flags: UInt16(CNM_NLM_F_REQUEST | CNM_NLM_F_ACK), sequence: 9)
    bind.genl(command: UInt8(CNM_NETDEV_CMD_BIND_RX))
    NetdevClient.encodeBind(&bind, ifindex: 3, queues: [1, 2], type: .rx, fd: 42)
    bind.put(99, string: "abc")
    bind.put(98, u8: 7)
    out.append(("bind-request", bind.bytes))
    // Page-pool stats: a nested info attribute and counters.
    var stats = NetlinkMessageBuilder(type: 0x1b, flags: 0, sequence: 11)
    stats.genl(command: 0)
    stats.beginNest(CNM_NETDEV_A_PAGE_POOL_STATS_INFO)
    stats.put(CNM_NETDEV_A_PAGE_POOL_ID, u64: 12)
    stats.put(CNM_NETDEV_A_PAGE_POOL_IFINDEX, u32: 2)
    stats.endNest()
    stats.put(CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_FAST, u64: 1000)
    stats.put(CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_RING, u32: 7)
    out.append(("page-pool-stats", stats.bytes))
    // An error with an extended ACK (NLM_F_ACK_TLVS, capped: struct nlmsgerr is the
    // error and the echoed request header), and a plain ACK echoing the whole request.
    var tlvs = NetlinkMessageBuilder(type: 0, flags: 0, sequence: 0)
    tlvs.put(CNM_NLMSGERR_ATTR_MSG, string: "no such device")
    tlvs.put(CNM_NLMSGERR_ATTR_OFFS, u32: 20)
    let echoed = message(type: 0x1b, flags: 5, sequence: 9, payload: [1, 1, 0, 0])
    out.append(("error-ack-tlvs", message(type: UInt16(CNM_NLMSG_ERROR), flags: UInt16(CNM_NLM_F_ACK_TLVS | CNM_NLM_F_CAPPED),
                                          sequence: 9, payload: le(UInt32(bitPattern: -19)) + echoed.prefix(16) + tlvs.bytes[16...])))
    out.append(("ack", message(type: UInt16(CNM_NLMSG_ERROR), flags: 0, sequence: 9, payload: le(UInt32(0)) + echoed)))
    out.append(("done-error", message(type: UInt16(CNM_NLMSG_DONE), flags: UInt16(CNM_NLM_F_MULTI), sequence: 3,
                                      payload: le(UInt32(bitPattern: -95)))))
    // Bare attributes with an odd length and a nest.
    var attrs = NetlinkMessageBuilder(type: 0, flags: 0, sequence: 0)
    attrs.put(1, bytes: [1, 2, 3])
    attrs.beginNest(2)
    attrs.put(3, u64: 0x0102_0304_0506_0708)
    attrs.endNest()
    out.append(("attributes", Array(attrs.bytes[16...])))
    return out.map { (name: $0.0, bytes: $0.1) }
}

/// One netlink message with a raw payload (the builder writes requests; replies such as
/// errors have no attributes up front).
func message(type: UInt16, flags: UInt16, sequence: UInt32, payload: [UInt8]) -> [UInt8] {
    var out = le(UInt32(16 + payload.count)) + le(type) + le(flags) + le(sequence) + le(UInt32(0)) + payload
    while out.count % 4 != 0 { out.append(0) }
    return out
}

func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

@main struct FuzzNetlink {
    static func main() {
        FuzzMain.run("fuzz-netlink", seeds: { seedInputs }, test: fuzzNetlink)
    }
}
