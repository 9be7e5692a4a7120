import CNetmemLinux
import Glibc
import NetmemDevice
import Synchronization
import SystemPackage

/// A TCP socket receiving with devmem TCP: `recvmsg(MSG_SOCK_DEVMEM)` yields linear bytes
/// in host memory plus fragments left in the bound dma-buf, each with a token; tokens go
/// back with `setsockopt(SO_DEVMEM_DONTNEED)`, in batches within the kernel's limits.
///
/// On a socket whose data is readable (any socket not steered to a bound queue, such as
/// loopback) the kernel sends no devmem control messages and everything is linear.
/// Owns the socket and closes it on deinit, which also frees every token still held.
/// The messages it returns own their tokens and keep the socket alive until they go.
// @unchecked: the receive buffers are used by the one thread that calls `receive`; token
// returns (any thread) touch only the socket and atomics.
public final class DevmemSocket: TokenReturning, @unchecked Sendable {
    public let fileDescriptor: FileDescriptor
    /// Bytes of control buffer per receive.
    public let controlCapacity: Int
    /// Bytes of linear buffer per receive.
    public let linearCapacity: Int
    /// The dma-buf region bound to the queue this socket's flow is steered to, if known:
    /// messages name it, so their fragments can be copied out.
    public let region: DeviceMemoryRegion?
    private let control: UnsafeMutableRawBufferPointer
    private let linear: UnsafeMutableRawBufferPointer
    private let received = Atomic<Int>(0)
    private let freed = Atomic<Int>(0)
    /// Fragments received and tokens returned (for tests and stats).
    public var fragmentsReceived: Int { received.load(ordering: .relaxed) }
    public var tokensFreed: Int { freed.load(ordering: .relaxed) }

    /// Takes ownership of a connected TCP socket. `controlCapacity` must hold at least
    /// one devmem control message (`DevmemControlMessages.spacePerMessage` bytes); each
    /// fragment of a receive needs that much, so size it for the fragments one receive of
    /// `linearCapacity`… bytes may bring.
    public init(adopting fd: FileDescriptor, controlCapacity: Int = 64 * DevmemControlMessages.spacePerMessage,
                linearCapacity: Int = 64 << 10, region: DeviceMemoryRegion? = nil) throws(DevmemError) {
        guard controlCapacity >= DevmemControlMessages.spacePerMessage else {
            throw .controlBufferTooSmall(given: controlCapacity, minimum: DevmemControlMessages.spacePerMessage)
        }
        precondition(linearCapacity > 0, "DevmemSocket needs a linear buffer of at least one byte")
        self.fileDescriptor = fd
        self.controlCapacity = controlCapacity
        self.linearCapacity = linearCapacity
        self.region = region
        control = .allocate(byteCount: controlCapacity, alignment: 8)
        linear = .allocate(byteCount: linearCapacity, alignment: 16)
    }

    deinit {
        control.deallocate()
        linear.deallocate()
        _ = try? fileDescriptor.close()
    }

    /// Receives once with `MSG_SOCK_DEVMEM`. Returns nil at end of stream. A receive that
    /// would block with `dontWait` returns an empty message.
    ///
    /// When the control buffer was too small (`MSG_CTRUNC`), the tokens of the fragments
    /// that did fit are given back at once and `controlTruncated` is thrown: the message
    /// is incomplete, and the tokens of the fragments that did not fit stay held by the
    /// kernel until the socket closes.
    /// Mirrors `recvmsg(2)` with `MSG_SOCK_DEVMEM`.
    public func receive(dontWait: Bool = false) throws(DevmemError) -> Message? {
        var msgFlags: Int32 = 0
        var controlLength = 0
        let flags = CNM_MSG_SOCK_DEVMEM | (dontWait ? CNM_MSG_DONTWAIT : 0)
        let n = cnm_recvmsg_control(fileDescriptor.rawValue, linear.baseAddress, linear.count,
                                    control.baseAddress, control.count, flags, &msgFlags, &controlLength)
        if n < 0 {
            let e = Errno(rawValue: Int32(-n))
            if dontWait && (e == .wouldBlock || e == .resourceTemporarilyUnavailable) { return Message() }
            throw .systemCall("recvmsg(MSG_SOCK_DEVMEM)", e)
        }
        if n == 0 && controlLength == 0 { return nil }
        let controls = try DevmemControlMessages.parse(UnsafeRawBufferPointer(rebasing: control[0..<min(controlLength, control.count)]))
        if msgFlags & CNM_MSG_CTRUNC != 0 {
            let parsed = controls.compactMap { c -> UInt32? in if case let .dmabuf(f) = c { return f.token }; return nil }
            giveBack(parsed)
            throw .controlTruncated(bufferSize: controlCapacity, parsedFragments: parsed.count)
        }
        let message = try DevmemControlMessages.message(received: n, data: UnsafeRawBufferPointer(linear), controls: controls,
                                                        region: region, returningTokensTo: self)
        received.add(message.fragments.count, ordering: .relaxed)
        return message
    }

    /// Gives back the tokens in `ranges` in one `SO_DEVMEM_DONTNEED` call and returns
    /// how many fragments the kernel freed (tokens it does not know are skipped, not
    /// counted). At most `TokenLimits.maxRanges` ranges and `TokenLimits.maxFragments`
    /// tokens; `giveBack` batches any number. Mirrors `setsockopt(SO_DEVMEM_DONTNEED)`.
    public func dontNeed(_ ranges: [TokenRange]) throws(TokenError) -> Int {
        guard ranges.count <= TokenLimits.maxRanges else { throw .tooManyRanges(ranges.count) }
        let total = ranges.reduce(0) { $0 + Int($1.count) }
        guard total <= TokenLimits.maxFragments else { throw .tooManyFragments(total) }
        guard !ranges.isEmpty else { return 0 }
        let tokens = ranges.map { cnm_dmabuf_token(token_start: $0.start, token_count: $0.count) }
        let r = tokens.withUnsafeBytes {
            cnm_setsockopt(fileDescriptor.rawValue, CNM_SOL_SOCKET, CNM_SO_DEVMEM_DONTNEED, $0.baseAddress, UInt32($0.count))
        }
        guard r >= 0 else {
            throw .kernel("SO_DEVMEM_DONTNEED with \(ranges.count) ranges failed: \(Errno(rawValue: -r))")
        }
        freed.add(Int(r), ordering: .relaxed)
        return Int(r)
    }
}

/// Devmem TCP transmit: a send that names dma-buf offsets instead of addresses.
public enum DevmemTransmit {
    /// Turns on `SO_ZEROCOPY`, which devmem sends need. Mirrors `setsockopt(SO_ZEROCOPY)`.
    public static func enableZeroCopy(_ fd: FileDescriptor) throws(DevmemError) {
        var one: Int32 = 1
        let r = cnm_setsockopt(fd.rawValue, CNM_SOL_SOCKET, CNM_SO_ZEROCOPY, &one, 4)
        guard r >= 0 else { throw .systemCall("setsockopt(SO_ZEROCOPY)", Errno(rawValue: -r)) }
    }

    /// Sends `length` bytes starting at `regionOffset` of the dma-buf bound for TX as
    /// `bindingID`: `sendmsg(MSG_ZEROCOPY)` whose iovec base is the offset and whose
    /// control message is `SCM_DEVMEM_DMABUF` with the binding id. Returns bytes queued.
    /// Mirrors the devmem TX path of `sendmsg(2)`.
    public static func send(_ fd: FileDescriptor, bindingID: UInt32, regionOffset: UInt64, length: Int) throws(DevmemError) -> Int {
        let control = DevmemControlMessages.encodeTX(bindingID: bindingID)
        let r = control.withUnsafeBytes {
            cnm_sendmsg_control(fd.rawValue, regionOffset, length, $0.baseAddress, $0.count, CNM_MSG_ZEROCOPY)
        }
        guard r >= 0 else {
            let e = Errno(rawValue: Int32(-r))
            let hint: String
            switch e {
            case .invalidArgument, .operationNotSupportedByDevice, .badFileDescriptor:
                hint = "the kernel knows no TX binding \(bindingID) for this socket's device, or the offset is outside the "
                    + "dma-buf; bind it with `bind-tx` on the device the route uses, and turn SO_ZEROCOPY on"
            case .notSupported:
                hint = "this socket or kernel does not support devmem TX (needs Linux 6.16+ and a capable NIC)"
            case .badAddress:
                hint = "the kernel treated the offset as an address: no devmem TX binding took effect"
            default:
                hint = "see `netmem doctor`"
            }
            throw .sendRefused(bindingID: bindingID, errno: e, hint: hint)
        }
        return r
    }
}
