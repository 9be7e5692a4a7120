import CNetmemLinux
import SystemPackage

/// Builds one netlink request: `nlmsghdr`, optional `genlmsghdr`, attributes (nested
/// ones included), every piece aligned to 4 bytes. The length field is filled by `bytes`.
public struct NetlinkMessageBuilder: Sendable {
    private var buffer: [UInt8] = []
    private var openNests: [Int] = []

    /// Starts a message of netlink `type` (a generic-netlink family id) with `flags`
    /// (`NLM_F_*`) and sequence number `sequence`.
    public init(type: UInt16, flags: UInt16, sequence: UInt32) {
        append(UInt32(0))  // nlmsg_len, filled at the end
        append(type)
        append(flags)
        append(sequence)
        append(UInt32(0))  // nlmsg_pid: the kernel fills it
    }

    /// Appends the generic-netlink header (`struct genlmsghdr`).
    public mutating func genl(command: UInt8, version: UInt8 = 1) {
        buffer.append(command)
        buffer.append(version)
        append(UInt16(0))
    }

    private mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v) { buffer.append(contentsOf: $0) }
    }

    private mutating func pad() {
        while buffer.count % 4 != 0 { buffer.append(0) }
    }

    /// Appends an attribute with raw payload bytes. Mirrors `nla_put`.
    public mutating func put(_ type: Int32, bytes: [UInt8]) {
        precondition(bytes.count + 4 <= Int(UInt16.max), "netlink attribute \(type) too large (\(bytes.count) bytes)")
        append(UInt16(bytes.count + Int(CNM_NLA_HDRLEN)))
        append(UInt16(truncatingIfNeeded: type))
        buffer.append(contentsOf: bytes)
        pad()
    }

    public mutating func put(_ type: Int32, u8 v: UInt8) { put(type, bytes: [v]) }
    public mutating func put(_ type: Int32, u16 v: UInt16) { put(type, bytes: withUnsafeBytes(of: v) { Array($0) }) }
    public mutating func put(_ type: Int32, u32 v: UInt32) { put(type, bytes: withUnsafeBytes(of: v) { Array($0) }) }
    public mutating func put(_ type: Int32, u64 v: UInt64) { put(type, bytes: withUnsafeBytes(of: v) { Array($0) }) }
    /// A NUL-terminated string. Mirrors `nla_put_string`.
    public mutating func put(_ type: Int32, string: String) { put(type, bytes: Array(string.utf8) + [0]) }

    /// Opens a nested attribute (`NLA_F_NESTED` set). Mirrors `nla_nest_start`.
    public mutating func beginNest(_ type: Int32) {
        openNests.append(buffer.count)
        append(UInt16(0))
        append(UInt16(truncatingIfNeeded: type) | UInt16(CNM_NLA_F_NESTED))
    }

    /// Closes the innermost nest and writes its length. Mirrors `nla_nest_end`.
    public mutating func endNest() {
        guard let start = openNests.popLast() else { preconditionFailure("endNest without beginNest") }
        let len = UInt16(buffer.count - start)
        buffer[start] = UInt8(len & 0xff)
        buffer[start + 1] = UInt8(len >> 8)
    }

    /// The finished message with `nlmsg_len` set.
    public var bytes: [UInt8] {
        precondition(openNests.isEmpty, "netlink message finished with \(openNests.count) nests still open")
        var out = buffer
        let len = UInt32(out.count)
        withUnsafeBytes(of: len) { for i in 0..<4 { out[i] = $0[i] } }
        return out
    }
}

/// One received netlink message (`struct nlmsghdr` + payload).
public struct NetlinkMessage: Sendable {
    public let type: UInt16
    public let flags: UInt16
    public let sequence: UInt32
    public let portID: UInt32
    /// Bytes after the 16-byte header.
    public let payload: [UInt8]

    /// Splits a datagram into messages. Mirrors `NLMSG_OK` / `NLMSG_NEXT` with every
    /// length checked against what remains.
    public static func parseAll(_ bytes: [UInt8]) throws(NetlinkError) -> [NetlinkMessage] {
        let buf = NetlinkBytes(bytes)
        var out: [NetlinkMessage] = []
        var offset = 0
        let hdr = Int(CNM_NLMSG_HDRLEN)
        while offset < buf.count {
            let remaining = buf.count - offset
            guard remaining >= hdr else {
                throw .truncated(what: "netlink message header", needed: hdr, available: remaining)
            }
            let len = Int(try buf.load(UInt32.self, at: offset, what: "nlmsg_len"))
            guard len >= hdr else {
                throw .badLength(what: "netlink message", length: len, reason: "below the 16-byte header")
            }
            guard len <= remaining else {
                throw .truncated(what: "netlink message", needed: len, available: remaining)
            }
            out.append(NetlinkMessage(
                type: try buf.load(UInt16.self, at: offset + 4, what: "nlmsg_type"),
                flags: try buf.load(UInt16.self, at: offset + 6, what: "nlmsg_flags"),
                sequence: try buf.load(UInt32.self, at: offset + 8, what: "nlmsg_seq"),
                portID: try buf.load(UInt32.self, at: offset + 12, what: "nlmsg_pid"),
                payload: buf.slice(offset + hdr, len - hdr).array))
            offset += netlinkAlign(len)
        }
        return out
    }

    /// For a generic-netlink message: the command and the attributes after `genlmsghdr`.
    public func genericPayload() throws(NetlinkError) -> (command: UInt8, attributes: [NetlinkAttribute]) {
        guard payload.count >= Int(CNM_GENL_HDRLEN) else {
            throw .truncated(what: "generic netlink header", needed: Int(CNM_GENL_HDRLEN), available: payload.count)
        }
        let attrs = try NetlinkAttribute.parseAll(Array(payload[Int(CNM_GENL_HDRLEN)...]))
        return (payload[0], attrs)
    }

    /// What an `NLMSG_ERROR` / `NLMSG_DONE` message says: the errno (0 for an ACK) and
    /// the extended-ACK text and offset. Mirrors the layout of `struct nlmsgerr` followed
    /// by `NLMSGERR_ATTR_*` attributes when `NLM_F_ACK_TLVS` is set.
    public func errorStatus() throws(NetlinkError) -> (errno: Int32, message: String?, offset: UInt32?) {
        let buf = NetlinkBytes(payload)
        let code = Int32(bitPattern: try buf.load(UInt32.self, at: 0, what: "nlmsgerr.error"))
        var tlvStart: Int
        if type == UInt16(CNM_NLMSG_DONE) {
            tlvStart = 4
        } else {
            // struct nlmsgerr: int error; struct nlmsghdr msg (the request's header, and
            // its payload too unless the kernel capped it).
            let hdr = Int(CNM_NLMSG_HDRLEN)
            let origLen = Int(try buf.load(UInt32.self, at: 4, what: "nlmsgerr.msg.nlmsg_len"))
            if flags & UInt16(CNM_NLM_F_CAPPED) != 0 {
                tlvStart = 4 + hdr
            } else {
                guard origLen >= hdr else {
                    throw .badLength(what: "echoed request in nlmsgerr", length: origLen, reason: "below the 16-byte header")
                }
                tlvStart = 4 + netlinkAlign(origLen)
            }
            guard tlvStart <= payload.count else {
                throw .truncated(what: "nlmsgerr", needed: tlvStart, available: payload.count)
            }
        }
        var message: String?
        var offset: UInt32?
        if flags & UInt16(CNM_NLM_F_ACK_TLVS) != 0, tlvStart < payload.count {
            let attrs = try NetlinkAttribute.parseAll(Array(payload[tlvStart...]))
            message = attrs.first(CNM_NLMSGERR_ATTR_MSG)?.string()
            offset = try attrs.first(CNM_NLMSGERR_ATTR_OFFS)?.u32()
        }
        return (code, message, offset)
    }
}
