import Glibc
import Netmem
import SystemPackage
import Testing

@Suite struct ProviderTests {
    @Test(arguments: [2048, 4096, 65536, 2 << 20])
    func hostProviderHandsOutEveryChunkOnce(chunkSize: Int) throws {
        let provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: 8)
        var refs = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: 10)
        let n = refs.withUnsafeMutableBufferPointer { provider.allocateChunks(into: $0) }
        #expect(n == 8)
        #expect(Set(refs[0..<8].map(\.chunk)) == Set(0..<8))
        #expect(provider.describe().available == 0)
        // The memory is real and writable.
        provider.area.withUnsafeMutableBytes(of: refs[7]) { bytes in
            bytes[0] = 0xAB
            bytes[chunkSize - 1] = 0xCD
            #expect(bytes[0] == 0xAB && bytes[chunkSize - 1] == 0xCD)
        }
        for r in refs[0..<8] { #expect(provider.releaseChunk(r) == .reusable) }
        #expect(provider.describe().available == 8)
    }

    @Test(arguments: [0, 1000, 3000, 1024, 4 << 20])
    func hostProviderRejectsBadChunkSizes(chunkSize: Int) {
        #expect(throws: NetmemError.self) { try HostPageProvider(chunkSize: chunkSize, chunkCount: 4) }
    }

    @Test func hostProviderRejectsZeroChunks() {
        #expect(throws: NetmemError.invalidChunkCount(0)) { try HostPageProvider(chunkSize: 4096, chunkCount: 0) }
    }

    @Test func lockedHostMemoryIsDescribedAsLocked() throws {
        let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 4, options: [.lock, .transparentHugePages])
        #expect(provider.describe().details.contains { $0 == ("locked", "yes") })
    }

    @Test func memoryLockErrorSaysHowToFixIt() {
        let e = NetmemError.memoryLockFailed(bytes: 1 << 20, limit: 65536, errno: .resourceTemporarilyUnavailable)
        #expect(e.description.contains("ulimit -l"))
        #expect(e.description.contains("65536 bytes"))
    }

    @Test func hugePagesWithoutReservationFailOrFallBack() throws {
        let free = HugePageProvider.freeHugePages()
        if free == 0 {
            let e = #expect(throws: NetmemError.self) { try HugePageProvider(chunkCount: 2) }
            if case .hugePagesUnavailable = e {} else { Issue.record("wrong error \(String(describing: e))") }
            #expect(e?.description.contains("/proc/sys/vm/nr_hugepages") == true)
        } else {
            let p = try HugePageProvider(chunkCount: 1)
            #expect(!p.usesFallback)
        }
        // With the fallback allowed it always works.
        let p = try HugePageProvider(chunkSize: 65536, chunkCount: 64, allowTransparentFallback: true)
        #expect(p.usesFallback == (free == 0))
        #expect(p.describe().chunkCount == 64)
    }

    @Test func memfdRegionIsSealedAndSharedThroughItsDescriptor() throws {
        let provider = try SharedMemoryProvider(name: "netmem-test", chunkSize: 4096, chunkCount: 16)
        let fd = provider.fileDescriptor.rawValue
        // Sealed against shrinking.
        #expect(ftruncate(fd, 4096) != 0)
        #expect(errno == EPERM)
        // Write through the provider's mapping, read through a second, independent mapping
        // of the fd (what another process does after receiving it).
        var refs = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: 1)
        _ = refs.withUnsafeMutableBufferPointer { provider.allocateChunks(into: $0) }
        let ref = refs[0]
        provider.area.withUnsafeMutableBytes(of: ref) { b in
            for i in 0..<64 { b[i] = UInt8(i) }
        }
        let other = mmap(nil, provider.length, PROT_READ, MAP_SHARED, fd, 0)!
        defer { munmap(other, provider.length) }
        let offset = Int(ref.chunk) * 4096
        let seen = (0..<64).map { other.load(fromByteOffset: offset + $0, as: UInt8.self) }
        #expect(seen == (0..<64).map { UInt8($0) })
    }

    @Test func memfdIsReadableFromAnotherProcess() throws {
        let provider = try SharedMemoryProvider(chunkSize: 4096, chunkCount: 4)
        var refs = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: 1)
        _ = refs.withUnsafeMutableBufferPointer { provider.allocateChunks(into: $0) }
        let text = Array("shared-through-memfd".utf8)
        provider.area.withUnsafeMutableBytes(of: refs[0]) { b in
            for (i, c) in text.enumerated() { b[i] = c }
        }
        let offset = Int(refs[0].chunk) * 4096
        let path = "/proc/\(getpid())/fd/\(provider.fileDescriptor.rawValue)"
        let script = "import mmap,os;f=open('\(path)','rb');m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ);print(m[\(offset):\(offset + text.count)].decode())"
        let out = try runProcess("/usr/bin/env", ["python3", "-c", script])
        #expect(out.trimmingSuffix() == "shared-through-memfd")
    }

    @Test func areasResolveFromReferences() throws {
        let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 4)
        let ref = provider.area.ref(chunk: 3)
        #expect(ref.area === provider.area)
        #expect(ref.chunk == 3)
        #expect(provider.area.address(of: ref) == provider.area.baseAddress! + 3 * 4096)
        #expect(provider.area.deviceAddress(of: ref) == provider.area.deviceBase + 3 * 4096)
    }
}

extension String {
    func trimmingSuffix() -> String {
        var s = self
        while let last = s.last, last == "\n" || last == " " { s.removeLast() }
        return s
    }
}

/// Runs a program and returns its standard output.
func runProcess(_ path: String, _ args: [String]) throws -> String {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    let argv = ([path] + args).map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
    posix_spawn_file_actions_destroy(&actions)
    close(fds[1])
    guard rc == 0 else { close(fds[0]); throw Errno(rawValue: rc) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fds[0], &buf, buf.count)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    close(fds[0])
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return String(decoding: out, as: UTF8.self)
}
