import ArgumentParser
import Crypto
import Glibc
import Netmem
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

    @Option(help: "Chunk size, a power of two from 4K to 2M.")
    var chunk: CLIByteSize = CLIByteSize(bytes: 1 << 20)

    @Option(help: "Reads kept in flight.")
    var depth: Int = 8

    @Flag(name: .customLong("no-direct"), help: "Do not try O_DIRECT.")
    var noDirect = false

    func run() throws {
        var st = stat()
        guard stat(file, &st) == 0 else {
            throw CLIError("cannot read '\(file)': \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw CLIError("'\(file)' is not a regular file") }
        let size = Int(st.st_size)
        let chunks = max(1, (size + chunk.bytes - 1) / chunk.bytes)
        if let spec = self.provider.gpu {
            for line in try CLIGPULoad.run(file: file, spec: spec, chunkSize: chunk.bytes, depth: depth, direct: !noDirect) { print(line) }
            return
        }
        let provider = try self.provider.standardKind!.make(chunkSize: chunk.bytes, count: chunks)
        let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, name: "load"))
        let t0 = CLIClock.now
        let loaded = try FileLoader.load(path: file, pool: pool, options: FileLoader.Options(inFlight: depth, direct: !noDirect))
        let seconds = CLIClock.now - t0
        var sha = SHA256()
        for (ref, length) in zip(loaded.chunks, loaded.lengths) {
            guard let base = ref.area.address(of: ref) else { continue }
            sha.update(bufferPointer: UnsafeRawBufferPointer(start: base, count: length))
        }
        let digest = CLIFormat.hex(sha.finalize())
        loaded.release(to: pool)
        let gbps = seconds > 0 ? Double(loaded.totalBytes) / seconds / 1e9 : 0
        print("loaded \(CLIFormat.bytes(loaded.totalBytes)) into \(loaded.chunks.count) × \(CLIFormat.bytes(chunk.bytes)) "
            + "\(self.provider.rawValue) chunks in \(CLIFormat.fixed(seconds, 3)) s: \(CLIFormat.fixed(gbps, 2)) GB/s "
            + "(\(loaded.direct ? "O_DIRECT" : "buffered"))")
        print("sha256 \(digest)  \(file)")
        print("pool: \(pool.stats)")
        if pool.inFlight != 0 { throw CLIError("\(pool.inFlight) chunks still in flight after release") }
    }
}
