import CNetmemLinux
import Glibc
import NetmemNamespace
import SystemPackage

/// A generic-netlink socket talking to one family. Owns the socket; closing it (deinit)
/// also ends anything the kernel ties to the socket, such as a devmem binding.
///
/// Requests are synchronous: each sends one message and reads until the kernel's ACK
/// (or `NLMSG_DONE` for a dump), at most `maxDatagrams` datagrams and with a receive
/// timeout, so a misbehaving peer cannot hang the caller.
public struct GenericNetlinkSocket: ~Copyable {
    public let fileDescriptor: FileDescriptor
    /// The family's numeric id, resolved by name through the controller.
    public let familyID: UInt16
    public let familyName: String
    private var sequence: UInt32 = 1

    /// Upper bound on datagrams read for one request (a dump of thousands of queues fits).
    public static let maxDatagrams = 100_000
    /// Receive timeout per datagram.
    public static let receiveTimeoutMillis: Int32 = 5_000

    /// Opens a socket and resolves `family` (e.g. "netdev", "ethtool"). With
    /// `namespacePath` (such as `/var/run/netns/NAME`) the socket is made inside that
    /// network namespace (the calling thread enters it for the `socket` call and comes
    /// back); netdev requests then see that namespace's devices.
    /// Mirrors `socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC)` + `CTRL_CMD_GETFAMILY`.
    public init(family: String, namespacePath: String? = nil) throws(NetlinkError) {
        let opened: Result<FileDescriptor, NetlinkError>
        if let namespacePath {
            do throws(NetworkNamespaceError) {
                opened = try NetworkNamespace.run(path: namespacePath, returning: GenericNetlinkSocket.open)
            } catch {
                switch error {
                case .noSuchNamespace:
                    throw .systemCall("opening a netlink socket in \(namespacePath) (no such namespace; see `ip netns list`)", error.errno)
                case let .systemCall(call, errno):
                    throw .systemCall("opening a netlink socket in \(namespacePath): \(call)", errno)
                }
            }
        } else {
            opened = GenericNetlinkSocket.open()
        }
        let descriptor = try opened.get()
        do {
            let id = try GenericNetlinkSocket.resolve(family: family, fd: descriptor)
            self.fileDescriptor = descriptor
            self.familyID = id
            self.familyName = family
        } catch {
            _ = try? descriptor.close()
            throw error
        }
    }

    /// Opens a NETLINK_GENERIC socket in the calling thread's namespace with extended
    /// ACKs (the kernel's reason in words) and capped ACKs (no echoed request), binds it,
    /// and sets the receive timeout. Mirrors `socket(2)` + `setsockopt(2)` + `bind(2)`.
    private static func open() -> Result<FileDescriptor, NetlinkError> {
        let fd = socket(CNM_AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), CNM_NETLINK_GENERIC)
        guard fd >= 0 else { return .failure(.systemCall("socket(AF_NETLINK, NETLINK_GENERIC)", Errno(rawValue: errno))) }
        var one: Int32 = 1
        let size = UInt32(MemoryLayout<Int32>.size)
        // Both are optional: an older kernel without them still answers, with less detail.
        _ = cnm_setsockopt(fd, CNM_SOL_NETLINK, CNM_NETLINK_EXT_ACK, &one, size)
        _ = cnm_setsockopt(fd, CNM_SOL_NETLINK, CNM_NETLINK_CAP_ACK, &one, size)
        let millis = receiveTimeoutMillis
        var timeout = timeval(tv_sec: Int(millis / 1000), tv_usec: Int(millis % 1000) * 1000)
        _ = cnm_setsockopt(fd, SOL_SOCKET, CNM_SO_RCVTIMEO, &timeout, UInt32(MemoryLayout<timeval>.size))
        var address = cnm_sockaddr_nl()
        address.nl_family = UInt16(CNM_AF_NETLINK)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<cnm_sockaddr_nl>.size))
            }
        }
        guard bound == 0 else {
            let e = Errno(rawValue: errno)
            close(fd)
            return .failure(.systemCall("bind(AF_NETLINK)", e))
        }
        return .success(FileDescriptor(rawValue: fd))
    }

    deinit {
        _ = try? fileDescriptor.close()
    }

    private static func resolve(family: String, fd: FileDescriptor) throws(NetlinkError) -> UInt16 {
        var b = NetlinkMessageBuilder(type: UInt16(CNM_GENL_ID_CTRL),
                                      flags: UInt16(CNM_NLM_F_REQUEST | CNM_NLM_F_ACK), sequence: 1)
        b.genl(command: UInt8(CNM_CTRL_CMD_GETFAMILY), version: 1)
        b.put(CNM_CTRL_ATTR_FAMILY_NAME, string: family)
        let replies: [NetlinkMessage]
        do {
            replies = try exchange(fd: fd, request: b.bytes, sequence: 1, dump: false,
                                   what: "CTRL_CMD_GETFAMILY '\(family)'")
        } catch {
            if error.kernelErrno == .noSuchFileOrDirectory { throw .familyNotFound(family) }
            throw error
        }
        for reply in replies {
            let (_, attrs) = try reply.genericPayload()
            if let id = attrs.first(CNM_CTRL_ATTR_FAMILY_ID) { return try id.u16() }
        }
        throw .familyNotFound(family)
    }

    /// Sends a `do` request for `command` with attributes written by `body` and returns
    /// the replies' attributes. Waits for the ACK.
    public mutating func request(
        _ command: UInt8, what: String, version: UInt8 = 1,
        _ body: (inout NetlinkMessageBuilder) -> Void = { _ in }
    ) throws(NetlinkError) -> [[NetlinkAttribute]] {
        try run(command, what: what, dump: false, version: version, body)
    }

    /// Sends a dump request (`NLM_F_DUMP`) and returns every reply's attributes.
    public mutating func dump(
        _ command: UInt8, what: String, version: UInt8 = 1,
        _ body: (inout NetlinkMessageBuilder) -> Void = { _ in }
    ) throws(NetlinkError) -> [[NetlinkAttribute]] {
        try run(command, what: what, dump: true, version: version, body)
    }

    private mutating func run(
        _ command: UInt8, what: String, dump: Bool, version: UInt8,
        _ body: (inout NetlinkMessageBuilder) -> Void
    ) throws(NetlinkError) -> [[NetlinkAttribute]] {
        sequence &+= 1
        let flags = CNM_NLM_F_REQUEST | CNM_NLM_F_ACK | (dump ? CNM_NLM_F_DUMP : 0)
        var b = NetlinkMessageBuilder(type: familyID, flags: UInt16(flags), sequence: sequence)
        b.genl(command: command, version: version)
        body(&b)
        let replies = try GenericNetlinkSocket.exchange(fd: fileDescriptor, request: b.bytes, sequence: sequence,
                                                        dump: dump, what: what)
        var out: [[NetlinkAttribute]] = []
        for reply in replies where reply.type == familyID {
            out.append(try reply.genericPayload().attributes)
        }
        return out
    }

    /// Sends `request` and collects the replies with `sequence` until the ACK (do) or
    /// `NLMSG_DONE` (dump). Kernel errors become `.kernel` with the extended ACK.
    static func exchange(fd: FileDescriptor, request: [UInt8], sequence: UInt32, dump: Bool,
                         what: String) throws(NetlinkError) -> [NetlinkMessage] {
        let sent = request.withUnsafeBytes { cnm_nl_send(fd.rawValue, $0.baseAddress, $0.count) }
        guard sent >= 0 else { throw .systemCall("send(\(what))", Errno(rawValue: Int32(-sent))) }
        var replies: [NetlinkMessage] = []
        for _ in 0..<maxDatagrams {
            let datagram = try receiveDatagram(fd: fd, what: what)
            if try collect(datagram: datagram, sequence: sequence, what: what, into: &replies) { return replies }
        }
        throw .noReply(request: what, reason: "more than \(maxDatagrams) datagrams without an end")
    }

    /// Reads one datagram of replies to the request numbered `sequence` (`what` names it
    /// in errors): appends its records to `replies` and says whether the exchange ended
    /// (the ACK of a do request, `NLMSG_DONE` of a dump). Kernel errors become `.kernel`
    /// with the extended ACK; messages of other requests are skipped. Pure: this is what
    /// `exchange` does with what it receives.
    package static func collect(datagram: [UInt8], sequence: UInt32, what: String,
                                into replies: inout [NetlinkMessage]) throws(NetlinkError) -> Bool {
        for message in try NetlinkMessage.parseAll(datagram) {
            guard message.sequence == sequence else { continue }  // a stale reply
            switch Int32(message.type) {
            case CNM_NLMSG_ERROR:
                let status = try message.errorStatus()
                if status.errno == 0 { return true }  // the ACK
                throw .kernel(request: what, errno: try kernelErrno(status.errno, in: "nlmsgerr.error"),
                              message: status.message, attributeOffset: status.offset)
            case CNM_NLMSG_DONE:
                let status = try message.errorStatus()
                if status.errno < 0 {
                    throw .kernel(request: what, errno: try kernelErrno(status.errno, in: "NLMSG_DONE error"),
                                  message: status.message, attributeOffset: status.offset)
                }
                // A dump with NLM_F_ACK still ends at DONE; the kernel sends no
                // separate ACK for dumps.
                return true
            case CNM_NLMSG_NOOP:
                continue
            case CNM_NLMSG_OVERRUN:
                throw .noReply(request: what, reason: "the kernel reported an overrun")
            default:
                replies.append(message)
            }
        }
        return false
    }

    /// The errno a kernel error code names (the code is `-errno`). A positive code, or
    /// `Int32.min` (whose negation does not exist), is a malformed reply, not an errno.
    static func kernelErrno(_ code: Int32, in what: String) throws(NetlinkError) -> Errno {
        guard code < 0, code != .min else {
            throw .badValue(what: what, value: Int(code), reason: "not a negated errno")
        }
        return Errno(rawValue: -code)
    }

    private static func receiveDatagram(fd: FileDescriptor, what: String) throws(NetlinkError) -> [UInt8] {
        var probe: UInt8 = 0
        let size = cnm_nl_recv(fd.rawValue, &probe, 0, Int32(MSG_PEEK | MSG_TRUNC))
        if size < 0 {
            let e = Errno(rawValue: Int32(-size))
            if e == .wouldBlock || e == .resourceTemporarilyUnavailable {
                throw .noReply(request: what, reason: "no reply within \(receiveTimeoutMillis) ms")
            }
            throw .systemCall("recv(\(what))", e)
        }
        var buffer = [UInt8](repeating: 0, count: max(Int(size), 16))
        let got = buffer.withUnsafeMutableBytes { cnm_nl_recv(fd.rawValue, $0.baseAddress, $0.count, 0) }
        guard got >= 0 else { throw .systemCall("recv(\(what))", Errno(rawValue: Int32(-got))) }
        return Array(buffer[0..<Int(got)])
    }
}
