import Foundation
import Glibc

/// The built `netmem` executable and plugin library next to the test bundle, and a way to
/// run programs with a time limit.
enum NCCLTestSupport {
    /// The build directory holding the test bundle (…/debug).
    static let buildDirectory: String? = {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        var dir = String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        while let slash = dir.lastIndex(of: "/") {
            dir = String(dir[..<slash])
            if access(dir + "/netmem", X_OK) == 0 { return dir }
            if dir.hasSuffix("/debug") || dir.hasSuffix("/release") || dir.isEmpty { break }
        }
        return nil
    }()

    static var netmem: String? { buildDirectory.map { $0 + "/netmem" } }

    static var plugin: String? {
        guard let d = buildDirectory, access(d + "/libnccl-net-netmem.so", R_OK) == 0 else { return nil }
        return d + "/libnccl-net-netmem.so"
    }

    /// The executable and plugin, or nil after printing why the test is skipped.
    static func binaries() -> (netmem: String, plugin: String)? {
        guard let n = netmem else {
            print("SKIP: the netmem executable was not found next to the test bundle (build it with `swift build`)")
            return nil
        }
        guard let p = plugin else {
            print("SKIP: libnccl-net-netmem.so was not found next to the test bundle (build it with `swift build --product nccl-net-netmem`)")
            return nil
        }
        return (n, p)
    }

    static func tool(_ name: String) -> String? {
        for dir in ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin"] where access(dir + "/" + name, X_OK) == 0 {
            return dir + "/" + name
        }
        return nil
    }

    struct Output {
        let status: Int32
        let stdout: String
        let stderr: String
        var exited: Bool { status & 0x7F == 0 }
        var exitCode: Int32 { (status >> 8) & 0xFF }
    }

    /// Runs `argv` with `environment` added, killing it after `seconds`.
    static func run(_ argv: [String], environment: [String: String] = [:], seconds: Double = 300) throws -> Output {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let killer = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: killer)
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        killer.cancel()
        let status: Int32 = p.terminationReason == .uncaughtSignal ? p.terminationStatus : p.terminationStatus << 8
        return Output(status: status, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// The JSON object a command printed.
    static func json(_ text: String) -> [String: Any]? {
        guard let start = text.firstIndex(of: "{") else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(text[start...].utf8))) as? [String: Any]
    }

    static func temporaryDirectory() -> String {
        var template = Array("/tmp/netmem-nccl-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }
}
