import CNetmemLinux
import NetmemDevice

/// One devmem control message, as `recvmsg(MSG_SOCK_DEVMEM)` delivers it.
public enum DevmemControl: Sendable, Hashable {
    /// `SCM_DEVMEM_LINEAR`: `length` bytes were copied into the caller's buffer.
    case linear(length: Int)
    /// `SCM_DEVMEM_DMABUF`: payload left in the dma-buf, with its token.
    case dmabuf(Fragment)
    /// A control message of another level/type (kept so callers can log it).
    case other(level: Int32, type: Int32, length: Int)
}

/// Parses the control buffer of a devmem receive. Pure and bounds-checked: every
/// `cmsg_len` is checked against what remains and against the payload size its type
/// needs, so a truncated or corrupt buffer is a typed error, never a read out of bounds.
/// Mirrors the kernel's `put_cmsg` layout (`struct cmsghdr` + `struct dmabuf_cmsg`,
/// each message aligned to 8 bytes).
public enum DevmemControlMessages {
    static let headerLength = Int(CNM_CMSG_HDRLEN)
    static let dmabufLength = MemoryLayout<cnm_dmabuf_cmsg>.size

    @inline(__always) static func align(_ n: Int) -> Int { (n + Int(CNM_CMSG_ALIGNTO) - 1) & ~(Int(CNM_CMSG_ALIGNTO) - 1) }

    /// `CMSG_SPACE(sizeof(struct dmabuf_cmsg))`: the room one devmem message takes.
    public static let spacePerMessage = align(headerLength) + align(dmabufLength)

    /// Parses `buffer` (the first `msg_controllen` bytes of the control buffer).
    public static func parse(_ buffer: UnsafeRawBufferPointer) throws(DevmemError) -> [DevmemControl] {
        var out: [DevmemControl] = []
        var offset = 0
        while offset < buffer.count {
            let remaining = buffer.count - offset
            guard remaining >= headerLength else {
                throw .malformedControlMessage(offset: offset, reason: "\(remaining) bytes left, a cmsghdr needs \(headerLength)")
            }
            let rawLen = buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            guard rawLen <= UInt64(remaining) else {
                throw .malformedControlMessage(offset: offset, reason: "cmsg_len \(rawLen) runs past the \(remaining) bytes left")
            }
            let len = Int(rawLen)
            let level = buffer.loadUnaligned(fromByteOffset: offset + 8, as: Int32.self)
            let type = buffer.loadUnaligned(fromByteOffset: offset + 12, as: Int32.self)
            guard len >= headerLength else {
                throw .malformedControlMessage(offset: offset, reason: "cmsg_len \(len) is below the \(headerLength)-byte header")
            }
            let dataLength = len - headerLength
            if level == CNM_SOL_SOCKET && (type == CNM_SCM_DEVMEM_LINEAR || type == CNM_SCM_DEVMEM_DMABUF) {
                guard dataLength == dmabufLength else {
                    throw .malformedControlMessage(offset: offset,
                                                   reason: "devmem message of type \(type) carries \(dataLength) bytes, expected \(dmabufLength)")
                }
                let d = offset + headerLength
                let fragOffset = buffer.loadUnaligned(fromByteOffset: d, as: UInt64.self)
                let fragSize = buffer.loadUnaligned(fromByteOffset: d + 8, as: UInt32.self)
                let token = buffer.loadUnaligned(fromByteOffset: d + 12, as: UInt32.self)
                let dmabufID = buffer.loadUnaligned(fromByteOffset: d + 16, as: UInt32.self)
                if type == CNM_SCM_DEVMEM_LINEAR {
                    out.append(.linear(length: Int(fragSize)))
                } else {
                    out.append(.dmabuf(Fragment(regionOffset: fragOffset, length: Int(fragSize), token: token, regionID: dmabufID)))
                }
            } else {
                out.append(.other(level: level, type: type, length: dataLength))
            }
            offset += align(len)
        }
        return out
    }

    /// Builds a `Message` from a receive: `received` bytes reported by recvmsg, the
    /// linear bytes in `data`, and the parsed control messages. Without any devmem
    /// control message all received bytes are linear (a readable skb). The message's
    /// tokens go back to `returner` (the socket) when it goes away; `region` is the
    /// dma-buf bound to the queue, when the caller has it.
    public static func message(received: Int, data: UnsafeRawBufferPointer, controls: [DevmemControl],
                               region: DeviceMemoryRegion? = nil,
                               returningTokensTo returner: (any TokenReturning)? = nil) throws(DevmemError) -> Message {
        var fragments: [Fragment] = []
        var linearDeclared = 0
        for c in controls {
            switch c {
            case let .linear(length): linearDeclared += length
            case let .dmabuf(f): fragments.append(f)
            case .other: break
            }
        }
        let payload = fragments.reduce(0) { $0 + $1.length }
        // A negative count is no byte count at all (and `received - payload` would overflow).
        guard received >= 0 else {
            throw .inconsistentLengths(received: received, linear: linearDeclared, payload: payload)
        }
        let linear = received - payload
        guard linear >= 0, linear <= data.count, linearDeclared <= linear else {
            throw .inconsistentLengths(received: received, linear: linearDeclared, payload: payload)
        }
        return Message(linear: Array(data[0..<linear]), fragments: fragments, region: region,
                       returningTokensTo: fragments.isEmpty ? nil : returner)
    }

    /// Encodes control messages (for tests, and the TX path's `SCM_DEVMEM_DMABUF`).
    public static func encode(_ controls: [DevmemControl]) -> [UInt8] {
        var out: [UInt8] = []
        func put<T>(_ v: T) { withUnsafeBytes(of: v) { out.append(contentsOf: $0) } }
        func pad() { while out.count % Int(CNM_CMSG_ALIGNTO) != 0 { out.append(0) } }
        for c in controls {
            switch c {
            case let .linear(length):
                put(UInt64(headerLength + dmabufLength)); put(Int32(CNM_SOL_SOCKET)); put(Int32(CNM_SCM_DEVMEM_LINEAR))
                put(cnm_dmabuf_cmsg(frag_offset: 0, frag_size: UInt32(length), frag_token: 0, dmabuf_id: 0, flags: 0))
            case let .dmabuf(f):
                put(UInt64(headerLength + dmabufLength)); put(Int32(CNM_SOL_SOCKET)); put(Int32(CNM_SCM_DEVMEM_DMABUF))
                put(cnm_dmabuf_cmsg(frag_offset: f.regionOffset, frag_size: UInt32(f.length), frag_token: f.token,
                                    dmabuf_id: f.regionID, flags: 0))
            case let .other(level, type, length):
                put(UInt64(headerLength + length)); put(level); put(type)
                out.append(contentsOf: [UInt8](repeating: 0, count: length))
            }
            pad()
        }
        return out
    }

    /// The `SCM_DEVMEM_DMABUF` control message a devmem send carries: the TX binding id.
    public static func encodeTX(bindingID: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        func put<T>(_ v: T) { withUnsafeBytes(of: v) { out.append(contentsOf: $0) } }
        put(UInt64(headerLength + 4)); put(Int32(CNM_SOL_SOCKET)); put(Int32(CNM_SCM_DEVMEM_DMABUF))
        put(bindingID)
        while out.count % Int(CNM_CMSG_ALIGNTO) != 0 { out.append(0) }
        return out
    }
}
