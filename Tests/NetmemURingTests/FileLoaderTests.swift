import Glibc
import Netmem
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

    /// FNV-1a, as a simple checksum of what landed.
    func checksum(_ parts: [UnsafeRawBufferPointer]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for p in parts { for b in p { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 } }
        return h
    }

    func check(direct: Bool, dir: String, size: Int) throws {
        let data = URingTest.bytes(count: size, seed: UInt64(size))
        try withTempFile(data, dir: dir) { path in
            let (pool, _) = try URingTest.pool(chunkSize: 64 << 10, chunks: 64, name: "load-test")
            let file = try FileLoader.load(path: path, pool: pool, options: .init(inFlight: 4, direct: direct))
            #expect(file.totalBytes == size)
            #expect(file.lengths.reduce(0, +) == size)
            #expect(file.chunks.count == (size + (64 << 10) - 1) / (64 << 10))
            let parts = zip(file.chunks, file.lengths).map { ref, len in
                UnsafeRawBufferPointer(start: ref.area.address(of: ref), count: len)
            }
            let landed = parts.flatMap { Array($0) }
            #expect(landed == data)
            #expect(checksum(parts) == data.withUnsafeBytes { checksum([$0]) })
            print("load \(dir) \(size) bytes: direct=\(file.direct) chunks=\(file.chunks.count)")
            file.release(to: pool)
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
            let (pool, _) = try URingTest.pool(chunkSize: 64 << 10, chunks: 2, name: "small")
            #expect(throws: URingError.self) { _ = try FileLoader.load(path: path, pool: pool) }
            #expect(pool.inFlight == 0)
        }
    }

    @Test("a missing file is a named error")
    func missing() throws {
        let (pool, _) = try URingTest.pool(chunkSize: 64 << 10, chunks: 2, name: "none")
        do {
            _ = try FileLoader.load(path: "/nonexistent/netmem-file", pool: pool)
            Issue.record("loading a missing file succeeded")
        } catch {
            #expect("\(error)".contains("/nonexistent/netmem-file"))
        }
    }
}
