import Glibc

enum CLIOutput {
    static func error(_ text: String, newline: Bool = true) {
        let s = newline ? text + "\n" : text
        var bytes = Array(s.utf8)
        _ = bytes.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
