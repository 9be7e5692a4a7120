import Glibc
import Netmem
import NetmemDevice
import NetmemURing
import SystemPackage
import NetmemTestSupport
import Testing

@Suite("FileLoader")
struct FileLoaderTests {
    func withTempFile(_ bytes: [UInt8], dir: String, _ body: (String) throws -> Void) throws {
        var template = Array("\(dir)/netmem-load-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        let path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
        defer { unlink(path) }
        try bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                guard n > 0 else { close(fd); throw Errno(rawValue: errno) }
                off += n
            }
        }
        fsync(fd)
        close(fd)
        try body(path)
    }

    /// A host pool of `chunks` 64 KiB chunks and its region.
    func memory(chunks: Int) throws -> (PagePool, RegionMap) {
        let (pool, provider) = try URingTest.pool(chunkSize: 64 << 10, chunks: chunks, name: "load-test")
        return (pool, try RegionMap(hostArea: provider.area, kind: "host", keepingAlive: provider))
    }

    func check(direct: Bool, dir: String, size: Int) throws {
        let data = URingTest.bytes(count: size, seed: UInt64(size))
        try withTempFile(data, dir: dir) { path in
            let (pool, regions) = try memory(chunks: 64)
            let file = try FileLoader.load(path: path, pool: pool, regions: regions, options: .init(inFlight: 4, direct: direct))
            #expect(file.totalBytes == size)
            #expect(file.contents.fragments.count == (size + (64 << 10) - 1) / (64 << 10))
            #expect(file.contents.fragments.allSatisfy { $0.regionID == regions.region.id })
            #expect(try file.contents.payloadBytes() == data)
            print("load \(dir) \(size) bytes: direct=\(file.direct) chunks=\(file.contents.fragments.count)")
            _ = consume file
            #expect(pool.inFlight == 0)
        }
    }

    @Test("a file lands byte-exact in pool chunks (O_DIRECT where allowed)", arguments: [true, false])
    func load(direct: Bool) throws {
        try check(direct: direct, dir: "/tmp", size: 3 << 20 | 123)
        try check(direct: direct, dir: "/var/tmp", size: 1 << 20)
        try check(direct: direct, dir: "/dev/shm", size: 100_000)
    }

    @Test("an empty file loads as zero chunks")
    func empty() throws {
        try check(direct: true, dir: "/tmp", size: 0)
    }

    @Test("a file larger than the pool is refused, and nothing stays out")
    func tooLarge() throws {
        let data = URingTest.bytes(count: 300_000, seed: 5)
        try withTempFile(data, dir: "/tmp") { path in
            let (pool, regions) = try memory(chunks: 2)
            #expect(throws: URingError.self) { _ = try FileLoader.load(path: path, pool: pool, regions: regions) }
            #expect(pool.inFlight == 0)
        }
    }

    @Test("a missing file is a named error")
    func missing() throws {
        let (pool, regions) = try memory(chunks: 2)
        do {
            _ = try FileLoader.load(path: "/nonexistent/netmem-file", pool: pool, regions: regions)
            Issue.record("loading a missing file succeeded")
        } catch {
            #expect("\(error)".contains("/nonexistent/netmem-file"))
        }
    }

    @Test("a procfs file (size 0) is read to end of file")
    func procfs() throws {
        let (pool, regions) = try memory(chunks: 4)
        let file = try FileLoader.load(path: "/proc/self/status", pool: pool, regions: regions)
        let text = String(decoding: try file.contents.payloadBytes(), as: UTF8.self)
        #expect(text.hasPrefix("Name:"), "got \(text.prefix(40))")
        #expect(text.contains("\nPid:"))
        _ = consume file
        #expect(pool.inFlight == 0)
    }

    @Test("zero reads in flight is refused, not a hang")
    func zeroDepth() throws {
        let (pool, regions) = try memory(chunks: 2)
        #expect(throws: URingError.self) {
            _ = try FileLoader.load(path: "/proc/self/status", pool: pool, regions: regions, options: .init(inFlight: 0))
        }
    }
}
