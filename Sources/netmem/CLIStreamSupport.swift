import ArgumentParser
import CNetmemLinux
import Glibc
import Netmem
import NetmemCommandLine
import Synchronization

/// A byte count from the command line: "4096", "64K", "1M", "2G", "1.5GiB" (the forms
/// `ByteSize` parses).
struct CLIByteSize: ExpressibleByArgument, Sendable, CustomStringConvertible {
    var bytes: Int

    init(bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        guard let size = try? ByteSize(parsing: argument) else { return nil }
        bytes = size.bytes
    }

    var description: String { CLIFormat.bytes(bytes) }
    static var defaultCompletionKind: CompletionKind { .default }
}

/// Which memory a receive path lands data in.
enum CLIProviderKind: String, ExpressibleByArgument, CaseIterable, Sendable {
    case host, hugepage, memfd

    /// A provider with `count` chunks of `chunkSize` bytes.
    func make(chunkSize: Int, count: Int) throws -> any MemoryProvider {
        switch self {
        case .host: return try HostPageProvider(chunkSize: chunkSize, chunkCount: count)
        case .hugepage:
            return try HugePageProvider(chunkSize: chunkSize, chunkCount: count, allowTransparentFallback: true)
        case .memfd: return try SharedMemoryProvider(name: "netmem-recv", chunkSize: chunkSize, chunkCount: count)
        }
    }
}

enum CLIFormat {
    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : fixed(v, 2) + " " + units[u]
    }

    /// `value` with `digits` decimals, without Foundation.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (abs(value) * scale).rounded()
        let whole = Int(rounded / scale)
        var frac = String(Int(rounded.truncatingRemainder(dividingBy: scale)))
        while frac.count < digits { frac = "0" + frac }
        return (value < 0 && rounded != 0 ? "-" : "") + "\(whole)" + (digits > 0 ? "." + frac : "")
    }

    static func gbit(bytes: Int, seconds: Double) -> Double {
        seconds > 0 ? Double(bytes) * 8 / seconds / 1e9 : 0
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Monotonic and CPU clocks.
enum CLIClock {
    static var now: Double { Double(cnm_now_ns()) / 1e9 }
    static var processCPU: Double { Double(cnm_process_cpu_ns()) / 1e9 }
}

/// Ctrl-C (SIGINT) and SIGTERM: the first sets a flag that loops look at; the second
/// exits at once.
enum CLIStopSignal {
    static let requested = Atomic<Int>(0)

    static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            if CLIStopSignal.requested.add(1, ordering: .relaxed).newValue > 1 { _exit(130) }
        }
        sigemptyset(&action.sa_mask)
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    static var isRequested: Bool { requested.load(ordering: .relaxed) > 0 }
}

/// Progress for long runs: a live line rewritten in place on a terminal, plain periodic
/// lines otherwise.
struct CLIProgress {
    let live: Bool
    let interval: Double
    private var lastTime: Double
    private var lastBytes = 0
    private var printedLive = false

    init(interval: Double? = nil) {
        live = isatty(STDERR_FILENO) == 1
        self.interval = interval ?? (live ? 0.25 : 5)
        lastTime = CLIClock.now
    }

    /// Prints a line when the interval passed. `bytes` is the running total.
    mutating func update(bytes: Int, extra: String) {
        let now = CLIClock.now
        guard now - lastTime >= interval else { return }
        let rate = CLIFormat.gbit(bytes: bytes - lastBytes, seconds: now - lastTime)
        let line = "\(CLIFormat.bytes(bytes)) received, \(CLIFormat.fixed(rate, 2)) Gbit/s, \(extra)"
        if live {
            CLIOutput.error("\r\u{1B}[2K" + line, newline: false)
            printedLive = true
        } else {
            CLIOutput.error(line)
        }
        lastTime = now
        lastBytes = bytes
    }

    /// Ends the live line (so the next output starts on a fresh line).
    mutating func finish() {
        if printedLive { CLIOutput.error("") }
        printedLive = false
    }
}

enum CLIOutput {
    static func error(_ text: String, newline: Bool = true) {
        let s = newline ? text + "\n" : text
        var bytes = Array(s.utf8)
        _ = bytes.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
