import Netmem
import CNetmemLinux
import Glibc
import NetmemDevice
import SystemPackage
import Testing
@testable import NetmemKernel

/// A connected loopback TCP pair (client, server), closed by the caller.
func loopbackTCPPair() throws -> (client: Int32, server: Int32) {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #expect(listener >= 0)
    defer { close(listener) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    try withUnsafeMutablePointer(to: &addr) { p in
        try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            guard bind(listener, sa, len) == 0, listen(listener, 1) == 0, getsockname(listener, sa, &len) == 0 else {
                throw Errno(rawValue: errno)
            }
        }
    }
    let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try withUnsafePointer(to: &addr) { p in
        try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            guard connect(client, sa, len) == 0 else { throw Errno(rawValue: errno) }
        }
    }
    let server = accept(listener, nil, nil)
    guard server >= 0 else { throw Errno(rawValue: errno) }
    return (client, server)
}

@Suite struct DevmemControlMessageTests {
    let frags = [
        Fragment(regionOffset: 4096, length: 1448, token: 10, regionID: 3),
        Fragment(regionOffset: 8192, length: 1448, token: 11, regionID: 3),
        Fragment(regionOffset: 65536, length: 200, token: 12, regionID: 3),
    ]

    func parse(_ bytes: [UInt8]) throws(DevmemError) -> [DevmemControl] {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        defer { copy.deallocate() }
        copy.copyBytes(from: bytes)
        return try DevmemControlMessages.parse(UnsafeRawBufferPointer(rebasing: copy[0..<bytes.count]))
    }

    @Test func layoutMatchesTheKernelABI() {
        #expect(MemoryLayout<cnm_dmabuf_cmsg>.size == 24)
        #expect(MemoryLayout<cnm_dmabuf_token>.size == 8)
        #expect(DevmemControlMessages.spacePerMessage == 40)  // CMSG_SPACE(24) on LP64
        #expect(CNM_SO_DEVMEM_LINEAR == 78 && CNM_SO_DEVMEM_DMABUF == 79 && CNM_SO_DEVMEM_DONTNEED == 80)
        #expect(CNM_MSG_SOCK_DEVMEM == 0x2000000)
    }

    @Test func wellFormedSeveralFragments() throws {
        let controls: [DevmemControl] = [.linear(length: 52)] + frags.map { .dmabuf($0) }
        let bytes = DevmemControlMessages.encode(controls)
        #expect(bytes.count == 4 * DevmemControlMessages.spacePerMessage)
        let parsed = try parse(bytes)
        #expect(parsed == controls)
        let linear = [UInt8](repeating: 0xab, count: 52)
        let message = try linear.withUnsafeBytes { raw in
            try DevmemControlMessages.message(received: 52 + 1448 + 1448 + 200, data: raw, controls: parsed)
        }
        #expect(message.linear == linear)
        #expect(message.fragments == frags)
        #expect(message.payloadLength == 3096)
    }

    @Test func unknownTypesAreKeptAndSkipped() throws {
        let controls: [DevmemControl] = [.other(level: 0, type: 99, length: 12), .dmabuf(frags[0]),
                                         .other(level: 1, type: 77, length: 4)]
        let parsed = try parse(DevmemControlMessages.encode(controls))
        #expect(parsed == controls)
    }

    @Test func truncatedBuffersAreTypedErrors() {
        let bytes = DevmemControlMessages.encode(frags.map { .dmabuf($0) })
        var failures = 0
        for cut in 1..<bytes.count where cut % DevmemControlMessages.spacePerMessage != 0 {
            do {
                let parsed = try parse(Array(bytes.prefix(cut)))
                // A cut inside the trailing padding of a message still parses (the padding
                // is not part of cmsg_len): then the complete messages must be right.
                #expect(parsed.count <= frags.count)
            } catch {
                failures += 1
                #expect(error.description.contains("malformed control message"))
            }
        }
        #expect(failures > 0)
    }

    @Test func wrongLengthsAreTypedErrors() {
        var belowHeader = DevmemControlMessages.encode([.dmabuf(frags[0])])
        belowHeader[0] = 8  // cmsg_len 8 < 16
        #expect(throws: DevmemError.self) { try parse(belowHeader) }

        var pastEnd = DevmemControlMessages.encode([.dmabuf(frags[0])])
        pastEnd[0] = 200  // cmsg_len past the buffer
        #expect(throws: DevmemError.self) { try parse(pastEnd) }

        var shortPayload = DevmemControlMessages.encode([.dmabuf(frags[0])])
        shortPayload[0] = 16 + 20  // a devmem message with 20 bytes instead of 24
        #expect(throws: DevmemError.self) { try parse(shortPayload) }

        // Fragments describing more bytes than recvmsg returned.
        let parsed = frags.map { DevmemControl.dmabuf($0) }
        #expect(throws: DevmemError.self) {
            try [UInt8](repeating: 0, count: 8).withUnsafeBytes { raw in
                try DevmemControlMessages.message(received: 100, data: raw, controls: parsed)
            }
        }
    }

    @Test func fuzzedControlBuffersNeverTrap() {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("devmem cmsg fuzz seed: \(seed)")
        var rng = SplitMix64(seed: seed)
        let good = DevmemControlMessages.encode([.linear(length: 40)] + frags.map { .dmabuf($0) })
        var rejected = 0
        for _ in 0..<3000 {
            var bytes = good
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            do { _ = try parse(bytes) } catch { rejected += 1 }
        }
        #expect(rejected > 0, "seed \(seed)")
    }

    /// Found by the fuzz target fuzz-devmem-cmsg: a byte count of Int.min (with a
    /// fragment) overflowed `received - payload` and trapped instead of being refused.
    @Test func aNegativeByteCountIsATypedError() {
        let controls = frags.map { DevmemControl.dmabuf($0) }
        for received in [Int.min, Int.min + 1, -1] {
            #expect(throws: DevmemError.inconsistentLengths(received: received, linear: 0, payload: 3096)) {
                try [UInt8](repeating: 0, count: 8).withUnsafeBytes { raw in
                    try DevmemControlMessages.message(received: received, data: raw, controls: controls)
                }
            }
        }
    }

    @Test func buildsTheTXControlMessage() {
        let tx = DevmemControlMessages.encodeTX(bindingID: 0x0102_0304)
        #expect(tx.count == 24)  // CMSG_SPACE(4)
        #expect(tx[0] == 20)     // CMSG_LEN(4)
        #expect(tx[8] == UInt8(CNM_SOL_SOCKET) && tx[12] == UInt8(CNM_SCM_DEVMEM_DMABUF))
        #expect(Array(tx[16..<20]) == [4, 3, 2, 1])
    }
}

@Suite struct DevmemKernelTests {
    @Test func aTooSmallControlBufferIsRefused() throws {
        let (c, s) = try loopbackTCPPair()
        defer { close(c) }
        #expect(throws: DevmemError.controlBufferTooSmall(given: 16, minimum: 40)) {
            _ = try DevmemSocket(adopting: FileDescriptor(rawValue: s), controlCapacity: 16)
        }
        close(s)
    }

    /// On loopback the data is readable: MSG_SOCK_DEVMEM receives give linear bytes and no
    /// fragments, and SO_DEVMEM_DONTNEED frees nothing (no tokens were issued).
    @Test func loopbackReceiveIsLinearAndDontNeedFreesNothing() throws {
        let (c, s) = try loopbackTCPPair()
        defer { close(c) }
        let socket = try DevmemSocket(adopting: FileDescriptor(rawValue: s))
        let payload = Array("netmem devmem over loopback".utf8)
        #expect(write(c, payload, payload.count) == payload.count)
        var got: [UInt8] = []
        for _ in 0..<100 where got.count < payload.count {
            do {
                guard let m = try socket.receive() else { break }
                #expect(m.fragments.isEmpty)
                got += m.linear
            } catch {
                // A kernel that refuses MSG_SOCK_DEVMEM on a plain socket must say so as a
                // typed error; record what it said.
                print("MSG_SOCK_DEVMEM on loopback: \(error)")
                #expect(error.description.contains("recvmsg"))
                return
            }
        }
        #expect(got == payload)
        do {
            let freed = try socket.dontNeed([TokenRange(start: 1, count: 3), TokenRange(token: 99)])
            #expect(freed == 0)
        } catch {
            #expect(error.description.contains("SO_DEVMEM_DONTNEED"))
        }
    }

    /// A real MSG_CTRUNC from the kernel: loopback TCP with SO_TIMESTAMPNS and TCP_INQ
    /// makes two control messages (32 + 24 bytes) that do not fit the 40-byte minimum.
    @Test func truncatedControlMessagesAreATypedError() throws {
        let (c, s) = try loopbackTCPPair()
        defer { close(c) }
        var one: Int32 = 1
        #expect(setsockopt(s, SOL_SOCKET, 35 /* SO_TIMESTAMPNS */, &one, 4) == 0)
        #expect(setsockopt(s, Int32(IPPROTO_TCP), 36 /* TCP_INQ */, &one, 4) == 0)
        let socket = try DevmemSocket(adopting: FileDescriptor(rawValue: s), controlCapacity: DevmemControlMessages.spacePerMessage)
        let payload = Array("truncate me".utf8)
        #expect(write(c, payload, payload.count) == payload.count)
        do {
            let m = try socket.receive()
            // A kernel that stamped no timestamp sends only TCP_INQ, which fits.
            #expect(m?.linear == payload)
            print("note: the kernel sent control messages that fit; MSG_CTRUNC was not provoked")
        } catch {
            guard case let .controlTruncated(size, parsed) = error else {
                Issue.record("expected controlTruncated, got \(error)")
                return
            }
            #expect(size == DevmemControlMessages.spacePerMessage)
            #expect(parsed == 0)
            #expect(error.description.contains("MSG_CTRUNC"))
        }
    }

    @Test(.enabled(if: geteuid() == 0, "bind-rx needs CAP_NET_ADMIN; run as root"))
    func bindRXOnLoopbackNamesTheMissingPieces() throws {
        let memfd = cnm_memfd_create("netmem-devmem-test", CNM_MFD_CLOEXEC)
        #expect(memfd >= 0)
        defer { close(memfd) }
        #expect(ftruncate(memfd, 1 << 20) == 0)
        do {
            let binding = try KernelDevmemRXBinding(interface: "lo", queues: [0], dmabufFD: memfd)
            Issue.record("bind-rx on lo unexpectedly succeeded (binding \(binding.id))")
        } catch {
            guard case let .bindRefused(interface, missing, kernel) = error else {
                Issue.record("expected bindRefused, got \(error)")
                return
            }
            print("bind-rx on lo: \(error)")
            #expect(interface == "lo")
            #expect(kernel.kernelErrno != nil, "the kernel's refusal must be kept: \(kernel)")
            #expect(missing.contains { if case .notADmabuf = $0 { return true }; return false })
            #expect(missing.contains { if case .noQueueManagement = $0 { return true }; return false })
            #expect(missing.contains { if case .headerSplitOff = $0 { return true }; return false })
            #expect(error.description.contains("tcp-data-split on"))
            #expect(error.description.contains("udmabuf"))
        }
    }

    @Test(.enabled(if: geteuid() == 0, "bind-tx needs CAP_NET_ADMIN; run as root"))
    func bindTXAndDevmemSendAreRefusedWithTypedErrors() throws {
        let memfd = cnm_memfd_create("netmem-devmem-tx", CNM_MFD_CLOEXEC)
        defer { close(memfd) }
        #expect(ftruncate(memfd, 1 << 20) == 0)
        #expect(throws: DevmemError.self) { _ = try KernelDevmemTXBinding(interface: "lo", dmabufFD: memfd) }

        // The send path up to the kernel: SO_ZEROCOPY on, SCM_DEVMEM_DMABUF naming a
        // binding the kernel does not have.
        let (c, s) = try loopbackTCPPair()
        defer { close(c); close(s) }
        try DevmemTransmit.enableZeroCopy(FileDescriptor(rawValue: c))
        do {
            let n = try DevmemTransmit.send(FileDescriptor(rawValue: c), bindingID: 4242, regionOffset: 0, length: 4096)
            Issue.record("a devmem send without a binding was accepted (\(n) bytes)")
        } catch {
            guard case let .sendRefused(id, errno, _) = error else {
                Issue.record("expected sendRefused, got \(error)")
                return
            }
            print("devmem send on loopback: \(error)")
            #expect(id == 4242)
            #expect(errno.rawValue != 0)
        }
    }

    @Test func missingInterfaceIsTyped() {
        #expect(throws: DevmemError.noSuchInterface("nmk-none0")) {
            _ = try KernelDevmemRXBinding(interface: "nmk-none0", queues: [0], dmabufFD: 0)
        }
    }
}
