import CNetmemLinux
import Glibc
import Netmem
import SystemPackage

/// Reads a file into pool chunks through io_uring, several reads in flight: the "read()
/// into device pages" path of `netmem load`. Uses `O_DIRECT` when the file system allows
/// it (the data goes from the device straight into the chunks) and falls back to
/// buffered reads when it does not (EINVAL at open or on a read).
public enum FileLoader {
    /// What landed: chunk i holds `lengths[i]` bytes of the file starting at
    /// `i * chunkSize`. The chunks belong to the caller: give them back with
    /// `release(to:)` (or `PagePool.recycle`).
    public struct LoadedFile: Sendable {
        public var chunks: [NetmemRef]
        public var lengths: [Int]
        public var totalBytes: Int
        /// Whether every read went through O_DIRECT.
        public var direct: Bool
        public var chunkSize: Int

        /// Returns every chunk to `pool` (the pool that supplied them).
        public func release(to pool: PagePool) {
            chunks.withUnsafeBufferPointer { pool.recycle($0) }
        }
    }

    public struct Options: Sendable {
        /// Reads kept in flight.
        public var inFlight: Int = 8
        /// Try O_DIRECT first.
        public var direct: Bool = true
        public init(inFlight: Int = 8, direct: Bool = true) {
            self.inFlight = inFlight
            self.direct = direct
        }
    }

    /// Reads all of the file at `path` into chunks from `pool` (call on the pool's owner
    /// thread). Throws `outOfBuffers` when the pool cannot hold the file (every chunk
    /// taken so far goes back), and `systemCall` errors naming the file.
    public static func load(path: String, pool: PagePool, options: Options = Options()) throws(URingError) -> LoadedFile {
        var direct = options.direct
        var fd: Int32 = -1
        if direct {
            fd = open(path, O_RDONLY | O_CLOEXEC | cnm_o_direct())
            if fd < 0 && errno == EINVAL { direct = false }
            else if fd < 0 { throw .systemCall("open '\(path)'", Errno(rawValue: errno)) }
        }
        if !direct {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw .systemCall("open '\(path)'", Errno(rawValue: errno)) }
        }
        defer { if fd >= 0 { close(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .systemCall("fstat '\(path)'", Errno(rawValue: errno)) }
        let size = Int(st.st_size)
        let chunkSize = pool.configuration.chunkSize
        let count = (size + chunkSize - 1) / chunkSize

        var chunks: [NetmemRef] = []
        chunks.reserveCapacity(count)
        for _ in 0..<count {
            guard let ref = pool.allocate() else {
                chunks.withUnsafeBufferPointer { pool.recycle($0) }
                throw .outOfBuffers("'\(path)' needs \(count) chunks of \(chunkSize) bytes; pool '\(pool.configuration.name)' gave \(chunks.count)")
            }
            guard ref.area.isReadable else {
                pool.recycle(ref)
                chunks.withUnsafeBufferPointer { pool.recycle($0) }
                throw .invalidConfiguration("pool '\(pool.configuration.name)' hands out memory the CPU cannot address; file reads need host memory")
            }
            chunks.append(ref)
        }
        var lengths = [Int](repeating: 0, count: count)
        var ring: IOURing
        do throws(URingError) {
            ring = try IOURing(IOURing.Options(entries: UInt32(max(2, min(options.inFlight, 256)))))
        } catch {
            chunks.withUnsafeBufferPointer { pool.recycle($0) }
            throw error
        }
        var active = 0        // reads in flight
        do throws(URingError) {
            var next = 0          // next chunk to start
            var done = 0          // chunks complete
            var buffered: Int32 = -1
            defer { if buffered >= 0 { close(buffered) } }

            func expected(_ i: Int) -> Int { min(chunkSize, size - i * chunkSize) }
            func submitRead(_ ring: inout IOURing, _ i: Int, _ file: Int32) throws(URingError) {
                let ref = chunks[i]
                let base = ref.area.address(of: ref)! + lengths[i]
                // O_DIRECT wants block-aligned lengths: ask for the whole chunk.
                let want = file == fd && direct ? chunkSize - lengths[i] : expected(i) - lengths[i]
                try ring.prepareRead(file: FileDescriptor(rawValue: file),
                                     buffer: UnsafeMutableRawBufferPointer(start: base, count: want),
                                     offset: UInt64(i * chunkSize + lengths[i]), userData: UInt64(i))
            }

            let deadline = ContinuousClock.now + .seconds(600)
            while done < count {
                while active < options.inFlight && next < count {
                    try submitRead(&ring, next, direct ? fd : (buffered >= 0 ? buffered : fd))
                    next += 1
                    active += 1
                }
                try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(100))
                guard ContinuousClock.now < deadline else { throw URingError.timedOut("reading '\(path)'") }
                var completions: [Completion] = []
                ring.reap { completions.append($0) }
                for c in completions {
                    let i = Int(c.userData)
                    active -= 1
                    if c.result == -EINVAL && direct {
                        // The file system refuses O_DIRECT for this read: go buffered.
                        direct = false
                        buffered = open(path, O_RDONLY | O_CLOEXEC)
                        if buffered < 0 { throw URingError.systemCall("open '\(path)'", Errno(rawValue: errno)) }
                    }
                    if c.result == -EINVAL || c.result == -EAGAIN || c.result == -EINTR {
                        try submitRead(&ring, i, direct ? fd : buffered)
                        active += 1
                        continue
                    }
                    if c.result < 0 {
                        throw URingError.systemCall("read of '\(path)' at offset \(i * chunkSize)", Errno(rawValue: -c.result))
                    }
                    lengths[i] += Int(c.result)
                    if lengths[i] >= expected(i) {
                        lengths[i] = expected(i)
                        done += 1
                    } else if c.result == 0 {
                        throw URingError.systemCall("read of '\(path)': file shrank while being read", .ioError)
                    } else {
                        try submitRead(&ring, i, direct ? fd : (buffered >= 0 ? buffered : fd))
                        active += 1
                    }
                }
            }
            let usedDirect = direct
            return LoadedFile(chunks: chunks, lengths: lengths, totalBytes: size, direct: usedDirect, chunkSize: chunkSize)
        } catch {
            // No chunk goes back while the kernel may still write into it.
            let drainUntil = ContinuousClock.now + .seconds(10)
            while active > 0 && ContinuousClock.now < drainUntil {
                _ = try? ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(100))
                active -= ring.reap { _ in }
            }
            if active == 0 { chunks.withUnsafeBufferPointer { pool.recycle($0) } }
            throw error
        }
    }
}
