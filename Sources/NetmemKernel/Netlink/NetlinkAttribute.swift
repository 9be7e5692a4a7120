import CNetmemLinux

/// Netlink aligns headers and attributes to 4 bytes (`NLA_ALIGN`, `NLMSG_ALIGN`).
@inline(__always)
func netlinkAlign(_ n: Int) -> Int { (n + 3) & ~3 }

/// Bounds-checked host-endian reads from a byte buffer; the one place netlink parsing
/// touches raw offsets.
struct NetlinkBytes {
    let bytes: [UInt8]
    let range: Range<Int>

    init(_ bytes: [UInt8], range: Range<Int>? = nil) {
        self.bytes = bytes
        self.range = range ?? bytes.indices
    }

    var count: Int { range.count }

    /// Reads an unsigned integer of `size` bytes at `offset` (relative to the range).
    func load<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, at offset: Int, what: String) throws(NetlinkError) -> T {
        let size = MemoryLayout<T>.size
        guard offset >= 0, offset <= count, count - offset >= size else {
            throw .truncated(what: what, needed: offset + size, available: count)
        }
        var v: T = 0
        let base = range.lowerBound + offset
        for i in 0..<size { v |= T(bytes[base + i]) << (8 * i) }
        return T(littleEndian: v)
    }

    func slice(_ offset: Int, _ length: Int) -> NetlinkBytes {
        NetlinkBytes(bytes, range: (range.lowerBound + offset)..<(range.lowerBound + offset + length))
    }

    var array: [UInt8] { Array(bytes[range]) }
}

/// One netlink attribute (`struct nlattr` + payload): its type (flags masked off) and
/// its payload. Accessors check the payload size and throw on a mismatch.
public struct NetlinkAttribute: Sendable {
    /// The attribute type with `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER` masked off.
    public let type: UInt16
    /// Whether the kernel flagged it as nested.
    public let isNested: Bool
    /// Payload bytes (without the header or padding).
    public let payload: [UInt8]

    public init(type: UInt16, isNested: Bool = false, payload: [UInt8]) {
        self.type = type
        self.isNested = isNested
        self.payload = payload
    }

    /// Parses a run of attributes. Mirrors the kernel's `nla_for_each_attr` with
    /// `nla_ok` checks: every length is checked against the bytes that remain.
    public static func parseAll(_ bytes: [UInt8]) throws(NetlinkError) -> [NetlinkAttribute] {
        try parseAll(NetlinkBytes(bytes))
    }

    static func parseAll(_ buf: NetlinkBytes) throws(NetlinkError) -> [NetlinkAttribute] {
        var out: [NetlinkAttribute] = []
        var offset = 0
        while offset < buf.count {
            let remaining = buf.count - offset
            guard remaining >= Int(CNM_NLA_HDRLEN) else {
                throw .truncated(what: "attribute header", needed: Int(CNM_NLA_HDRLEN), available: remaining)
            }
            let len = Int(try buf.load(UInt16.self, at: offset, what: "nla_len"))
            let rawType = try buf.load(UInt16.self, at: offset + 2, what: "nla_type")
            guard len >= Int(CNM_NLA_HDRLEN) else {
                throw .badLength(what: "attribute \(rawType & UInt16(CNM_NLA_TYPE_MASK))", length: len,
                                 reason: "below the 4-byte attribute header")
            }
            guard len <= remaining else {
                throw .truncated(what: "attribute \(rawType & UInt16(CNM_NLA_TYPE_MASK))", needed: len, available: remaining)
            }
            let payload = buf.slice(offset + Int(CNM_NLA_HDRLEN), len - Int(CNM_NLA_HDRLEN)).array
            out.append(NetlinkAttribute(type: rawType & UInt16(CNM_NLA_TYPE_MASK),
                                        isNested: rawType & UInt16(CNM_NLA_F_NESTED) != 0, payload: payload))
            offset += netlinkAlign(len)
        }
        return out
    }

    private func fixed<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws(NetlinkError) -> T {
        guard payload.count == MemoryLayout<T>.size else {
            throw .badLength(what: "attribute \(type)", length: payload.count,
                             reason: "expected \(MemoryLayout<T>.size) bytes")
        }
        return try NetlinkBytes(payload).load(T.self, at: 0, what: "attribute \(type)")
    }

    public func u8() throws(NetlinkError) -> UInt8 { try fixed(UInt8.self) }
    public func u16() throws(NetlinkError) -> UInt16 { try fixed(UInt16.self) }
    public func u32() throws(NetlinkError) -> UInt32 { try fixed(UInt32.self) }
    public func u64() throws(NetlinkError) -> UInt64 { try fixed(UInt64.self) }

    /// A variable-width unsigned integer (`NLA_UINT`: 4 or 8 bytes).
    public func uint() throws(NetlinkError) -> UInt64 {
        switch payload.count {
        case 4: return UInt64(try fixed(UInt32.self))
        case 8: return try fixed(UInt64.self)
        default:
            throw .badLength(what: "attribute \(type)", length: payload.count, reason: "a uint is 4 or 8 bytes")
        }
    }

    /// A NUL-terminated string (the NUL is dropped; a missing one is tolerated).
    public func string() -> String {
        let end = payload.firstIndex(of: 0) ?? payload.count
        return String(decoding: payload[..<end], as: UTF8.self)
    }

    /// The attributes nested inside this one.
    public func nested() throws(NetlinkError) -> [NetlinkAttribute] {
        try NetlinkAttribute.parseAll(payload)
    }
}

extension Array where Element == NetlinkAttribute {
    /// The first attribute of `type`, or nil.
    public func first(_ type: Int32) -> NetlinkAttribute? {
        first { $0.type == UInt16(truncatingIfNeeded: type) }
    }

    /// Every attribute of `type` (multi-attributes).
    public func all(_ type: Int32) -> [NetlinkAttribute] {
        filter { $0.type == UInt16(truncatingIfNeeded: type) }
    }

    /// The first attribute of `type`, or a typed error naming what lacked it.
    public func require(_ type: Int32, in what: String) throws(NetlinkError) -> NetlinkAttribute {
        guard let a = first(type) else { throw .missingAttribute(what: what, attribute: UInt16(truncatingIfNeeded: type)) }
        return a
    }
}
