import ArgumentParser
import NetmemSHA256
import Glibc
import Netmem
import NetmemSession
import NetmemURing

struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Read a file into provider memory through io_uring and report GB/s and SHA-256.",
        discussion: """
        The "read() into device pages" case: the file lands in chunks of the chosen memory \
        (O_DIRECT when the file system allows it, buffered reads otherwise). The SHA-256 is \
        computed over what landed, so it can be compared with `sha256sum FILE`.
        """)

    @Argument(help: "The file to load.")
    var file: String

    @Option(help: "Memory to land the file in: host, hugepage, memfd, cuda[:N] (GPU memory), cuda:standin.")
    var provider: CLIMemoryProvider = .standard(.host)

    @Option(parsing: .unconditional, help: "Chunk size, a power of two from 4K to 2M.")
    var chunk: CLIByteSize = CLIByteSize(bytes: 1 << 20)

    @Option(parsing: .unconditional, help: "Reads kept in flight, 1 to 256.")
    var depth: Int = 8

    @Flag(name: .customLong("no-direct"), help: "Do not try O_DIRECT.")
    var noDirect = false

    func validate() throws {
        try CLIRange.check("--depth", depth, 1...256)
        try CLIRange.chunk(chunk)
    }

    func run() throws {
        var st = stat()
        guard stat(file, &st) == 0 else {
            throw CLIError("cannot read '\(file)': \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) != S_IFDIR else { throw CLIError("'\(file)' is a directory") }
        // Files of unknown size (procfs, sysfs report 0) are read to end of file: room
        // for 64 chunks then.
        let size = Int(st.st_size)
        let chunks = size > 0 && (st.st_mode & S_IFMT) == S_IFREG ? max(1, (size + chunk.bytes - 1) / chunk.bytes) : 64
        if let spec = self.provider.gpu {
            for line in try CLIGPULoad.run(file: file, spec: spec, chunkSize: chunk.bytes, depth: depth, direct: !noDirect) { print(line) }
            return
        }
        let memory: RegionMemory
        do {
            // memfd here is a shared memfd (any chunk size), not a bound region.
            let kind: MemoryKind = provider == .standard(.memfd) ? .sharedMemory : try provider.sessionMemory(landing: .pinned)
            memory = try RegionMemory(kind: kind, chunkSize: chunk.bytes,
                                      chunkCount: chunks, name: "load")
        } catch { throw CLIError("\(error)") }
        let pool = memory.pool
        let t0 = CLIClock.now
        let loaded: FileLoader.LoadedFile
        do {
            loaded = try FileLoader.load(path: file, pool: pool, regions: memory.regions,
                                         options: FileLoader.Options(inFlight: depth, direct: !noDirect))
        } catch { throw CLIError("\(error)") }
        let seconds = CLIClock.now - t0
        var sha = SHA256()
        try loaded.contents.withUnsafePayload { buffers in for b in buffers { sha.update(bufferPointer: b) } }
        let digest = CLIFormat.hex(sha.finalize())
        let total = loaded.totalBytes
        let pieces = loaded.contents.fragments.count
        let direct = loaded.direct
        _ = consume loaded
        let gbps = seconds > 0 ? Double(total) / seconds / 1e9 : 0
        print("loaded \(CLIFormat.bytes(total)) into \(pieces) × \(CLIFormat.bytes(chunk.bytes)) "
            + "\(self.provider.rawValue) chunks in \(CLIFormat.fixed(seconds, 3)) s: \(CLIFormat.fixed(gbps, 2)) GB/s "
            + "(\(direct ? "O_DIRECT" : "buffered"))")
        print("sha256 \(digest)  \(file)")
        print("region: \(memory.region)")
        print("pool: \(pool.stats)")
        if pool.inFlight != 0 { throw CLIError("\(pool.inFlight) chunks still in flight after release") }
    }
}
