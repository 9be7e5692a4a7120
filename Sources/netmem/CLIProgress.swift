import Glibc

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
