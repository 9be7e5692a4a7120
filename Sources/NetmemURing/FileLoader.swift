import CNetmemLinux
import Glibc
import Netmem
import NetmemDevice
import SystemPackage

/// Reads a file into pool chunks through io_uring, several reads in flight: the "read()
/// into device pages" path of `netmem load`. Uses `O_DIRECT` when the file system allows
/// it (the data goes from the device straight into the chunks) and falls back to
/// buffered reads when it does not (EINVAL at open or on a read). Files whose size the
/// kernel does not know (procfs, sysfs, pipes report 0) are read to end of file.
public enum FileLoader {
    /// What landed: the file's bytes as a `Message` whose fragments are its chunks in
    /// order, in the region of the pool's memory. The message owns the chunks: they go
    /// back to the pool when it goes away.
    public struct LoadedFile: Sendable {
        /// The file's bytes, one fragment per chunk in file order. Holds the chunks until the
        /// message goes away.
        public let contents: Message
        /// Whether every read went through O_DIRECT.
        public let direct: Bool
        /// Bytes of the file.
        public var totalBytes: Int { contents.payloadLength }
    }

    /// How `load` reads the file.
    public struct Options: Sendable {
        /// Reads kept in flight (1 to 256).
        public var inFlight: Int = 8
        /// Try O_DIRECT first.
        public var direct: Bool = true
        /// Options with these values; `load` checks that `inFlight` is 1 to 256.
        public init(inFlight: Int = 8, direct: Bool = true) {
            self.inFlight = inFlight
            self.direct = direct
        }
    }

    /// Reads all of the file at `path` into chunks from `pool` (call on the pool's owner
    /// thread), whose chunks `regions` locates.
    ///
    /// - Returns: The file's bytes, owned by the returned message.
    /// - Throws: `invalidConfiguration` for options that cannot work, `outOfBuffers`
    ///   when the pool cannot hold the file (every chunk taken so far goes back), and
    ///   `systemCall` errors naming the file.
    public static func load(path: String, pool: PagePool, regions: RegionMap,
                            options: Options = Options()) throws(URingError) -> LoadedFile {
        guard options.inFlight >= 1, options.inFlight <= 256 else {
            throw .invalidConfiguration("reads in flight \(options.inFlight): must be 1 to 256")
        }
        let raw = try loadChunks(path: path, pool: pool, options: options)
        let tokens = TokenTable(name: "file \(path)")
        var fragments: [Fragment] = []
        fragments.reserveCapacity(raw.chunks.count)
        for (ref, length) in zip(raw.chunks, raw.lengths) {
            pool.setFragmentReferences(of: ref, to: 1)
            fragments.append(tokens.issue(NetmemFragment(ref: ref, offset: 0, length: UInt32(length)), owner: pool, regions: regions))
        }
        return LoadedFile(contents: Message(fragments: fragments, region: regions.region, returningTokensTo: tokens),
                          direct: raw.direct)
    }

    struct RawChunks {
        var chunks: [NetmemRef]
        var lengths: [Int]
        var direct: Bool
    }

    static func loadChunks(path: String, pool: PagePool, options: Options) throws(URingError) -> RawChunks {
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
        guard (st.st_mode & S_IFMT) != S_IFDIR else { throw .systemCall("read '\(path)'", .isDirectory) }
        if st.st_size == 0 || (st.st_mode & S_IFMT) != S_IFREG {
            // The size is unknown (procfs, sysfs, a pipe): read to end of file.
            return try readToEnd(path: path, pool: pool)
        }
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
            return RawChunks(chunks: chunks, lengths: lengths, direct: direct)
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

    /// Reads a file of unknown size chunk by chunk, buffered, until a read returns 0.
    static func readToEnd(path: String, pool: PagePool) throws(URingError) -> RawChunks {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .systemCall("open '\(path)'", Errno(rawValue: errno)) }
        defer { close(fd) }
        let chunkSize = pool.configuration.chunkSize
        var chunks: [NetmemRef] = []
        var lengths: [Int] = []
        func giveBack() { chunks.withUnsafeBufferPointer { pool.recycle($0) } }
        var atEnd = false
        while !atEnd {
            guard let ref = pool.allocate() else {
                giveBack()
                throw .outOfBuffers("'\(path)' needs more than the \(chunks.count) chunks of \(chunkSize) bytes pool '\(pool.configuration.name)' gave")
            }
            guard let base = ref.area.address(of: ref) else {
                pool.recycle(ref)
                giveBack()
                throw .invalidConfiguration("pool '\(pool.configuration.name)' hands out memory the CPU cannot address; file reads need host memory")
            }
            var filled = 0
            while filled < chunkSize {
                let n = read(fd, base + filled, chunkSize - filled)
                if n < 0 && errno == EINTR { continue }
                if n < 0 {
                    let e = Errno(rawValue: errno)
                    pool.recycle(ref)
                    giveBack()
                    throw .systemCall("read of '\(path)' at offset \(chunks.count * chunkSize + filled)", e)
                }
                if n == 0 { atEnd = true; break }
                filled += n
            }
            if filled == 0 {
                pool.recycle(ref)
            } else {
                chunks.append(ref)
                lengths.append(filled)
            }
        }
        return RawChunks(chunks: chunks, lengths: lengths, direct: false)
    }
}
