// Loads a file into region memory through io_uring and prints its SHA-256 (compare
// with `sha256sum FILE`).
//   swift run -c release example-load FILE
import ArgumentParser
import NetmemSHA256
import Glibc
import NetmemSession
import NetmemURing

@main
struct ExampleLoad: ParsableCommand {
    @Argument(help: "The file to load.") var file: String

    func run() throws {
        var st = stat()
        guard stat(file, &st) == 0 else { throw ValidationError("cannot read '\(file)'") }
        let chunk = 64 << 10
        let memory = try RegionMemory(kind: .memfdRegion, chunkSize: chunk,
                                      chunkCount: max(1, (Int(st.st_size) + chunk - 1) / chunk), segments: 3)
        let loaded = try FileLoader.load(path: file, pool: memory.pool, regions: memory.regions)
        var sha = SHA256()
        try loaded.contents.withUnsafePayload { for buffer in $0 { sha.update(bufferPointer: buffer) } }
        print("sha256 \(sha.finalize().map { String(Int($0) + 0x100, radix: 16).dropFirst() }.joined())  \(file)")
        print("\(loaded.totalBytes) bytes in \(loaded.contents.fragments.count) chunks of \(memory.region)")
    }
}
