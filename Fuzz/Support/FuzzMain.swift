import CNetmemFuzzSupport
import Glibc

/// What libFuzzer calls with one input (`LLVMFuzzerTestOneInput`).
public typealias FuzzTest = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

/// The `main` of a fuzz target. Built with `-sanitize=fuzzer -DFUZZING` it hands the
/// command line to libFuzzer. Built normally it replays inputs through the same test:
/// the files and directories given as arguments, or the target's seed corpus
/// (`Fuzz/Corpus/<name>` of the checkout it was built from). A broken invariant traps, so
/// the replay exits non-zero and names the input it was running.
///
/// `--write-seeds DIR` (normal builds) writes the target's seed inputs, as `seeds` makes
/// them, into DIR: how the corpus in the repository was made.
public enum FuzzMain {
    public static func run(_ name: String, seeds: () -> [(name: String, bytes: [UInt8])], test: FuzzTest,
                           sourceFile: String = #filePath) -> Never {
        #if FUZZING
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, test))
        #else
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--write-seeds" {
            guard arguments.count == 2 else { fail("usage: \(name) --write-seeds DIR") }
            let made = seeds()
            for seed in made { writeFile(arguments[1] + "/" + seed.name, seed.bytes) }
            print("\(name): wrote \(made.count) seeds to \(arguments[1])")
            exit(0)
        }
        if arguments.first == "-h" || arguments.first == "--help" {
            print("usage: \(name) [FILE|DIR ...]   replays the inputs (default: the seed corpus) through the fuzz test")
            print("       \(name) --write-seeds DIR   writes the seed corpus")
            exit(0)
        }
        let paths = arguments.isEmpty ? [defaultCorpus(name, sourceFile: sourceFile)] : arguments
        var files: [String] = []
        for path in paths { files += inputs(at: path) }
        guard !files.isEmpty else { fail("\(name): no inputs in \(paths.joined(separator: " "))") }
        var bytes = 0
        for file in files {
            let input = readFile(file)
            bytes += input.count
            say("\(name): \(file) (\(input.count) bytes)")
            input.withUnsafeBufferPointer { _ = test($0.baseAddress, $0.count) }
        }
        print("\(name): \(files.count) inputs (\(bytes) bytes) replayed; every invariant held")
        exit(0)
        #endif
    }

    /// `Fuzz/Corpus/<name>`, found from this target's source file (`Fuzz/<Target>/Main.swift`).
    static func defaultCorpus(_ name: String, sourceFile: String) -> String {
        var parts = sourceFile.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)
        let corpusName = name.hasPrefix("fuzz-") ? String(name.dropFirst(5)) : name
        return parts.joined(separator: "/") + "/Corpus/" + corpusName
    }

    /// Writes a line to standard output at once (unbuffered, so it precedes a trap's report).
    static func say(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        var at = 0
        while at < bytes.count {
            let n = bytes[at...].withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            at += n
        }
        bytes.removeAll()
    }

    static func fail(_ message: String) -> Never {
        print(message)
        exit(2)
    }

    /// The files at `path`: the file itself, or a directory's regular files, sorted.
    static func inputs(at path: String) -> [String] {
        var st = stat()
        guard stat(path, &st) == 0 else { fail("cannot read \(path): \(String(cString: strerror(errno)))") }
        if st.st_mode & S_IFMT != S_IFDIR { return [path] }
        guard let dir = opendir(path) else { fail("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix(".") { continue }
            var est = stat()
            if stat(path + "/" + name, &est) == 0, est.st_mode & S_IFMT == S_IFREG { names.append(name) }
        }
        return names.sorted().map { path + "/" + $0 }
    }

    static func readFile(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { fail("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { fail("cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { return out }
            out += buffer[0..<n]
        }
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { fail("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var at = 0
        while at < bytes.count {
            let n = bytes[at...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { fail("cannot write \(path): \(String(cString: strerror(errno)))") }
            at += n
        }
    }
}

/// Traps with `message` when an invariant of a fuzz test does not hold: libFuzzer then
/// saves the input as a crash, and a replay exits non-zero.
@inline(never)
public func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    // NULs escaped: the report is printed as a C string.
    if !condition {
        fatalError("broken invariant: " + message().replacingNUL, file: file, line: line)
    }
}

extension String {
    var replacingNUL: String {
        String(decoding: utf8.flatMap { $0 == 0 ? Array("\\0".utf8) : [$0] }, as: UTF8.self)
    }
}

/// Reads a fuzz input front to back; past the end every read gives zeros (so any input
/// decodes to something).
public struct FuzzReader {
    public let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    }

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - position }
    public var isAtEnd: Bool { position >= bytes.count }

    public mutating func u8() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    public mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    public mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// Up to `count` bytes (fewer at the end).
    public mutating func take(_ count: Int) -> [UInt8] {
        let n = max(0, min(count, remaining))
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] { take(remaining) }
}
