import CNetmemCRC32C
import Glibc

/// The 128-byte handle `listen` writes and the peer's `connect` reads, possibly in another
/// process. All integers little-endian:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic "NMNH" |
/// | 4 | 1 | version, 1 |
/// | 5 | 1 | address family: 4 or 6 |
/// | 6 | 1 | data sockets per comm, 1–16 |
/// | 7 | 1 | flags (bit 0: payload CRC-32C) |
/// | 8 | 2 | port |
/// | 10 | 2 | reserved, 0 |
/// | 12 | 16 | address (IPv4 in the first 4 bytes) |
/// | 28 | 8 | listener token (random; every connection's hello repeats it) |
/// | 36 | 4 | CRC-32C of bytes 0–35 |
/// | 40 | 24 | reserved, 0 |
/// | 64 | 64 | connect state: `connect` keeps its progress here between calls |
///
/// A handle that is random, zeroed or damaged fails its magic, version or CRC check and
/// `connect` rejects it at once.
public struct NCCLConnectionHandle: Sendable, Equatable {
    public static let size = 128
    static let magic: UInt32 = 0x484E_4D4E
    static let version: UInt8 = 1
    static let stateOffset = 64
    static let stateMagic: UInt32 = 0x5343_4D4E

    public var address: NCCLAddress
    public var sockets: Int
    public var crc: Bool
    public var token: UInt64

    public init(address: NCCLAddress, sockets: Int, crc: Bool, token: UInt64) {
        self.address = address
        self.sockets = sockets
        self.crc = crc
        self.token = token
    }

    /// Writes all 128 bytes (the connect state zeroed).
    public func encode(into handle: UnsafeMutableRawPointer) {
        let b = UnsafeMutableRawBufferPointer(start: handle, count: Self.size)
        b.initializeMemory(as: UInt8.self, repeating: 0)
        b.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        b[4] = Self.version
        b[5] = address.family == AF_INET6 ? 6 : 4
        b[6] = UInt8(sockets)
        b[7] = crc ? 1 : 0
        b.storeBytes(of: address.port.littleEndian, toByteOffset: 8, as: UInt16.self)
        for (i, v) in address.bytes.enumerated() { b[12 + i] = v }
        b.storeBytes(of: token.littleEndian, toByteOffset: 28, as: UInt64.self)
        let check = cnm_crc32c(0, handle, 36)
        b.storeBytes(of: check.littleEndian, toByteOffset: 36, as: UInt32.self)
    }

    /// Reads and checks a handle; the error says which field was wrong.
    public init(decoding handle: UnsafeRawPointer) throws(NCCLError) {
        let b = UnsafeRawBufferPointer(start: handle, count: Self.size)
        func le<T: FixedWidthInteger>(_ o: Int, _: T.Type) -> T { T(littleEndian: b.loadUnaligned(fromByteOffset: o, as: T.self)) }
        let magic = le(0, UInt32.self)
        guard magic == Self.magic else {
            throw NCCLError(.invalidArgument, "connection handle has magic 0x\(String(magic, radix: 16)), not Netmem's (was it written by this plugin's listen?)")
        }
        guard b[4] == Self.version else {
            throw NCCLError(.invalidArgument, "connection handle version \(b[4]); this plugin reads version \(Self.version)")
        }
        let check = le(36, UInt32.self)
        let actual = cnm_crc32c(0, handle, 36)
        guard check == actual else {
            throw NCCLError(.invalidArgument, "connection handle is damaged (CRC-32C 0x\(String(check, radix: 16)), computed 0x\(String(actual, radix: 16)))")
        }
        let family: Int32
        switch b[5] {
        case 4: family = AF_INET
        case 6: family = AF_INET6
        default: throw NCCLError(.invalidArgument, "connection handle names address family \(b[5]) (4 or 6)")
        }
        let sockets = Int(b[6])
        guard (1...16).contains(sockets) else {
            throw NCCLError(.invalidArgument, "connection handle asks for \(sockets) sockets (1 to 16)")
        }
        let port = le(8, UInt16.self)
        guard port != 0 else { throw NCCLError(.invalidArgument, "connection handle has port 0") }
        let bytes = Array(b[12..<(family == AF_INET ? 16 : 28)])
        address = NCCLAddress(family: family, bytes: bytes, port: port)
        self.sockets = sockets
        crc = b[7] & 1 != 0
        token = le(28, UInt64.self)
    }

    /// The id of a connect in progress that an earlier `connect` call stored in the
    /// handle, if any.
    static func pendingConnect(in handle: UnsafeRawPointer) -> UInt64? {
        let b = UnsafeRawBufferPointer(start: handle + stateOffset, count: 16)
        guard UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == stateMagic else { return nil }
        return UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    /// Stores (id) or clears (nil) the connect state.
    static func setPendingConnect(_ id: UInt64?, in handle: UnsafeMutableRawPointer) {
        let b = UnsafeMutableRawBufferPointer(start: handle + stateOffset, count: 16)
        b.initializeMemory(as: UInt8.self, repeating: 0)
        if let id {
            b.storeBytes(of: stateMagic.littleEndian, toByteOffset: 0, as: UInt32.self)
            b.storeBytes(of: id.littleEndian, toByteOffset: 8, as: UInt64.self)
        }
    }
}
