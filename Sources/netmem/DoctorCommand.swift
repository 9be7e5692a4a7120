import ArgumentParser
import NetmemDoctor

#if canImport(Glibc)
import Glibc
#endif

/// `netmem doctor [--json]`: one report of what this machine can do. Always exits 0.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Report what this machine can do (io_uring, memory, AF_XDP, devmem, zcrx, dma-buf, CUDA) and how to fix what is missing."
    )

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() {
        let report = DoctorReport.build()
        if json {
            print(ReportJSON.array(report.checks.map { c in
                .object([
                    ("area", .string(c.area)), ("subject", .string(c.subject)), ("status", .string(c.status.rawValue)),
                    ("detail", .string(c.detail)), ("checked", .string(c.checked)),
                    ("fix", c.fix.map { .string($0) } ?? .null), ("value", c.value.map { .string($0) } ?? .null),
                ])
            }).rendered)
            return
        }
        var area = ""
        for c in report.checks {
            if c.area != area {
                area = c.area
                print("\n\(area)")
            }
            let mark: String
            switch c.status {
            case .ok: mark = "ok     "
            case .missing: mark = "MISSING"
            case .limited: mark = "limited"
            case .info: mark = "info   "
            }
            print("  [\(mark)] \(c.subject): \(c.detail)")
            print("            checked: \(c.checked)")
            if let fix = c.fix { print("            fix: \(fix)") }
        }
    }
}

func printKernelError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// A small JSON value for the kernel and doctor commands' `--json` output.
indirect enum ReportJSON {
    case null
    case bool(Bool)
    case int(Int)
    case string(String)
    case array([ReportJSON])
    case object([(String, ReportJSON)])

    var rendered: String {
        switch self {
        case .null: return "null"
        case let .bool(b): return b ? "true" : "false"
        case let .int(i): return String(i)
        case let .string(s): return ReportJSON.quote(s)
        case let .array(a): return "[" + a.map(\.rendered).joined(separator: ",") + "]"
        case let .object(o): return "{" + o.map { ReportJSON.quote($0.0) + ":" + $0.1.rendered }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
