import Glibc

/// The plugin's settings, read from `NETMEM_NCCL_*` environment variables when NCCL calls
/// `init` (see the README's table). A value that does not parse or is out of range makes
/// `init` fail with a message naming the variable.
public struct NCCLConfiguration: Sendable, Equatable {
    /// Data sockets per comm (`NETMEM_NCCL_SOCKETS`, 1–16). A message is split into up to
    /// this many pieces, one per socket, each sent by its own thread and received by its
    /// own receive engine. Two by default: even on a 2-vCPU machine two sockets beat one
    /// in `netmem bench nccl` (the figures are in the README's performance section).
    public var sockets = 2
    /// The smallest piece a message is split into (`NETMEM_NCCL_MIN_CHUNK`, bytes).
    public var minChunk = 64 << 10
    /// When payloads go with io_uring SEND_ZC (`NETMEM_NCCL_ZEROCOPY`: auto, 1, 0).
    public enum ZeroCopy: String, Sendable, Equatable {
        /// Always SEND_ZC.
        case on = "1"
        /// Never: plain sends.
        case off = "0"
        /// SEND_ZC until the kernel has reported, for each of a socket's first 32 sends,
        /// that it copied the data anyway (loopback, or a route without zero-copy); then
        /// plain sends on that socket, which cost less when a copy happens regardless.
        case auto
    }

    public var zeroCopy = ZeroCopy.auto
    /// Payloads shorter than this go as one plain send with their header
    /// (`NETMEM_NCCL_ZEROCOPY_MIN`, bytes).
    public var zeroCopyMin = 16 << 10
    /// Bytes per receive buffer (`NETMEM_NCCL_RX_CHUNK`, a power of two, 4 KiB–2 MiB).
    public var rxChunk = 256 << 10
    /// Payloads of at least this many bytes are received straight into NCCL's buffer;
    /// shorter ones through the receive pool and a copy (`NETMEM_NCCL_PLACE_MIN`, bytes;
    /// 0 receives every payload through the pool).
    public var placeMin = 16 << 10
    /// Receive buffers per comm (`NETMEM_NCCL_RX_BUFFERS`, 2–4096).
    public var rxBuffers = 16
    /// The network interface to use (`NETMEM_NCCL_IFNAME`, else NCCL's
    /// `NCCL_SOCKET_IFNAME`: a comma list of name prefixes, `=name` for an exact name,
    /// `^` in front to exclude). Nil: the first interface that is up and not loopback,
    /// loopback when there is none.
    public var interface: String? = nil
    /// How long a peer may stay silent with data outstanding before its comm fails
    /// (`NETMEM_NCCL_PEER_TIMEOUT_S`, seconds; TCP_USER_TIMEOUT and keepalive probes).
    public var peerTimeoutSeconds = 30
    /// Put a CRC-32C of each piece's payload in its header and check it on receive
    /// (`NETMEM_NCCL_CRC`, 1/0).
    public var crc = false
    /// SO_SNDBUF / SO_RCVBUF of data sockets (`NETMEM_NCCL_SOCKBUF`, bytes); nil leaves the
    /// kernel's autotuning.
    public var socketBuffer: Int? = nil

    public init() {}

    /// Reads the variables through `lookup` (the process environment by default).
    public init(lookup: (String) -> String?) throws(NCCLError) {
        func int(_ name: String, _ range: ClosedRange<Int>, _ fallback: Int) throws(NCCLError) -> Int {
            guard let text = lookup(name), !text.isEmpty else { return fallback }
            guard let v = Self.parseSize(text) else {
                throw NCCLError(.invalidArgument, "\(name)=\(text): not a number (sizes may end in K, M or G)")
            }
            guard range.contains(v) else {
                throw NCCLError(.invalidArgument, "\(name)=\(text): must be from \(range.lowerBound) to \(range.upperBound)")
            }
            return v
        }
        func bool(_ name: String, _ fallback: Bool) throws(NCCLError) -> Bool {
            guard let text = lookup(name), !text.isEmpty else { return fallback }
            switch text.lowercased() {
            case "1", "yes", "true", "on": return true
            case "0", "no", "false", "off": return false
            default: throw NCCLError(.invalidArgument, "\(name)=\(text): must be 1 or 0")
            }
        }
        sockets = try int("NETMEM_NCCL_SOCKETS", 1...16, sockets)
        minChunk = try int("NETMEM_NCCL_MIN_CHUNK", 4096...(256 << 20), minChunk)
        if let text = lookup("NETMEM_NCCL_ZEROCOPY"), !text.isEmpty {
            switch text.lowercased() {
            case "auto": zeroCopy = .auto
            case "1", "yes", "true", "on": zeroCopy = .on
            case "0", "no", "false", "off": zeroCopy = .off
            default: throw NCCLError(.invalidArgument, "NETMEM_NCCL_ZEROCOPY=\(text): must be auto, 1 or 0")
            }
        }
        zeroCopyMin = try int("NETMEM_NCCL_ZEROCOPY_MIN", 0...(1 << 30), zeroCopyMin)
        rxChunk = try int("NETMEM_NCCL_RX_CHUNK", 4096...(2 << 20), rxChunk)
        guard rxChunk & (rxChunk - 1) == 0 else {
            throw NCCLError(.invalidArgument, "NETMEM_NCCL_RX_CHUNK=\(rxChunk): must be a power of two")
        }
        rxBuffers = try int("NETMEM_NCCL_RX_BUFFERS", 2...4096, rxBuffers)
        placeMin = try int("NETMEM_NCCL_PLACE_MIN", 0...(1 << 30), placeMin)
        peerTimeoutSeconds = try int("NETMEM_NCCL_PEER_TIMEOUT_S", 1...3600, peerTimeoutSeconds)
        crc = try bool("NETMEM_NCCL_CRC", crc)
        if lookup("NETMEM_NCCL_SOCKBUF")?.isEmpty == false {
            socketBuffer = try int("NETMEM_NCCL_SOCKBUF", 4096...(1 << 30), 0)
        }
        if let name = lookup("NETMEM_NCCL_IFNAME"), !name.isEmpty {
            interface = "=" + name
        } else if let list = lookup("NCCL_SOCKET_IFNAME"), !list.isEmpty {
            interface = list
        }
    }

    /// The process environment (`getenv`).
    public static func environment(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }

    /// "65536", "64K", "4M", "1G" → bytes.
    static func parseSize(_ text: String) -> Int? {
        var digits = Substring(text)
        var scale = 1
        switch text.last {
        case "k", "K": scale = 1 << 10
        case "m", "M": scale = 1 << 20
        case "g", "G": scale = 1 << 30
        default: break
        }
        if scale != 1 { digits = digits.dropLast() }
        guard let v = Int(digits), v >= 0 else { return nil }
        let (r, overflow) = v.multipliedReportingOverflow(by: scale)
        return overflow ? nil : r
    }
}
