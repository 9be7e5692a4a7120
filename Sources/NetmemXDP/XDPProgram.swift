import CNetmemLinux
import Glibc
import SystemPackage

/// The XSKMAP and the minimal redirect program that steers a queue into an AF_XDP
/// socket, attached through a BPF link: the link goes away with its descriptor, so
/// nothing stays attached to the interface when the process dies. Detached on `deinit`.
///
/// The program, hand-assembled (the same as libxdp's default without the pass-through
/// dance):
///
///     r2 = *(u32 *)(r1 + offsetof(struct xdp_md, rx_queue_index))
///     r1 = &xskmap
///     r3 = XDP_PASS
///     call bpf_redirect_map      ; redirect to the socket of this queue, else XDP_PASS
///     exit
public struct XDPProgram: ~Copyable {
    /// The XSKMAP's descriptor: a slot per queue, pointing at that queue's socket (`register`).
    public let mapFD: Int32
    /// The loaded redirect program's descriptor.
    public let programFD: Int32
    /// The BPF link that attaches the program to the interface; closing it detaches the program.
    public let linkFD: Int32
    /// The index of the interface the program is attached to.
    public let interfaceIndex: UInt32
    /// Whether the program runs in the driver (`true`) or as generic XDP.
    public let isNative: Bool

    static let xdpPass: Int32 = 2
    static let redirectMapHelper: Int32 = 51  // BPF_FUNC_redirect_map
    static let rxQueueIndexOffset: Int16 = 16  // offsetof(struct xdp_md, rx_queue_index)

    /// The program's instructions for an XSKMAP at `mapFD`.
    static func instructions(mapFD: Int32) -> [UInt64] {
        [
            cnm_bpf_insn(0x61, 2, 1, rxQueueIndexOffset, 0),  // ldxw r2, [r1 + 16]
            cnm_bpf_insn(0x18, 1, 1, 0, mapFD),               // lddw r1, map_fd (BPF_PSEUDO_MAP_FD)
            cnm_bpf_insn(0x00, 0, 0, 0, 0),                   //   (second half of lddw)
            cnm_bpf_insn(0xB7, 3, 0, 0, xdpPass),             // mov r3, XDP_PASS
            cnm_bpf_insn(0x85, 0, 0, 0, redirectMapHelper),   // call bpf_redirect_map
            cnm_bpf_insn(0x95, 0, 0, 0, 0),                   // exit
        ]
    }

    /// Creates the map (`entries` queues), loads the program and attaches it to the
    /// interface. Mirrors `bpf(BPF_MAP_CREATE)`, `bpf(BPF_PROG_LOAD)` and
    /// `bpf(BPF_LINK_CREATE)`.
    public init(interfaceIndex: UInt32, interfaceName: String, entries: UInt32,
                attachMode: XDPConfiguration.AttachMode) throws(XDPError) {
        let map = cnm_bpf_xskmap_create(entries, "netmem_xsks")
        guard map >= 0 else { throw XDPError.from(map, "bpf(BPF_MAP_CREATE, XSKMAP)") }
        let insns = Self.instructions(mapFD: map)
        var log = [CChar](repeating: 0, count: 4096)
        let prog = insns.withUnsafeBufferPointer { i in
            log.withUnsafeMutableBufferPointer { l in
                cnm_bpf_prog_load_xdp(i.baseAddress, UInt32(i.count), "netmem_xsk", l.baseAddress, UInt32(l.count))
            }
        }
        guard prog >= 0 else {
            close(map)
            let e = Errno(rawValue: -prog)
            if e == .notPermitted { throw .notPermitted(operation: "bpf(BPF_PROG_LOAD)", e) }
            let text = log.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw .programRejected(errno: e, log: text)
        }
        var tries: [(UInt32, Bool)] = []
        switch attachMode {
        case .automatic: tries = [(UInt32(CNM_XDP_FLAGS_DRV_MODE), true), (UInt32(CNM_XDP_FLAGS_SKB_MODE), false)]
        case .native: tries = [(UInt32(CNM_XDP_FLAGS_DRV_MODE), true)]
        case .generic: tries = [(UInt32(CNM_XDP_FLAGS_SKB_MODE), false)]
        }
        var link: Int32 = -1
        var native = false
        var lastError: Int32 = 0
        for (flags, isNative) in tries {
            var waited = 0
            var delay = 1
            while true {
                link = cnm_bpf_link_create_xdp(prog, interfaceIndex, flags)
                // EBUSY right after another program's link closed: retry briefly.
                guard link == -EBUSY, waited < 500 else { break }
                usleep(UInt32(delay * 1000))
                waited += delay
                delay = Swift.min(delay * 2, 64)
            }
            if link >= 0 { native = isNative; break }
            lastError = link
            if link == -EPERM || link == -EBUSY { break }
        }
        guard link >= 0 else {
            close(prog)
            close(map)
            if lastError == -EBUSY {
                throw .queueBusy(interface: interfaceName, queue: 0, waitedMilliseconds: 500)
            }
            throw XDPError.from(lastError, "bpf(BPF_LINK_CREATE, BPF_XDP) on '\(interfaceName)'")
        }
        mapFD = map
        programFD = prog
        linkFD = link
        self.interfaceIndex = interfaceIndex
        isNative = native
    }

    /// Points the map's slot for `queue` at an AF_XDP socket. Mirrors
    /// `bpf(BPF_MAP_UPDATE_ELEM)`.
    public func register(socket fd: Int32, queue: UInt32) throws(XDPError) {
        let r = cnm_bpf_map_update_u32(mapFD, queue, UInt32(bitPattern: fd))
        guard r == 0 else { throw XDPError.from(r, "bpf(BPF_MAP_UPDATE_ELEM) for queue \(queue)") }
    }

    deinit {
        close(linkFD)  // detaches the program
        close(programFD)
        close(mapFD)
    }
}
