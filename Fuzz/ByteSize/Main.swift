import NetmemCommandLine
import NetmemFuzzSupport

// The CLI's byte-size parser (`--chunk 64K`, `--bytes 1.5G`) on arbitrary text.
//
// Invariants: no trap; an accepted size is never negative; it survives being written back
// (as plain digits, and as a whole number of each unit it divides by, with every suffix
// spelling); letter case never matters; and against the floating-point parser the CLI
// had before, it accepts the same texts in the documented forms and agrees within one
// byte (that one rounded through a Double; this one is exact).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzByteSize(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    checkByteSize(text)
    return 0
}

func parse(_ text: String) -> Int? { try? ByteSize(parsing: text).bytes }

func checkByteSize(_ text: String) {
    let result = Result { () throws(ByteSizeError) in try ByteSize(parsing: text).bytes }
    let ascii = text.utf8.allSatisfy { $0 < 0x80 }
    let swapped = String(decoding: text.utf8.map { c -> UInt8 in
        switch c {
        case 0x41...0x5A: return c | 0x20
        case 0x61...0x7A: return c & ~0x20
        default: return c
        }
    }, as: UTF8.self)
    fuzzCheck(parse(swapped) == (try? result.get()), "'\(text)' and '\(swapped)' parse differently")

    let old = previousCLIParser(text)
    switch result {
    case let .failure(error):
        if case .negative = error { fuzzCheck(text.utf8.first == 0x2D, "'\(text)' called negative") }
        if let old {
            // The old parser also took exponents, hex floats, signs, Unicode case folds
            // ("1e3", "0x1p3", "+5", "-0", the Kelvin sign for K) and anything after a NUL
            // ("2\0junk", read as 2 by strtod); nothing else.
            let outside = !ascii || text.utf8.contains { "+-eExXpP\0".utf8.contains($0) }
            fuzzCheck(outside, "'\(text)' was accepted before (as \(old)) and is rejected now: \(error)")
        }
    case let .success(bytes):
        fuzzCheck(bytes >= 0, "'\(text)' parsed to \(bytes)")
        fuzzCheck(parse(String(bytes)) == bytes, "\(bytes) written as digits does not parse back")
        for (shift, unit) in [(10, "K"), (20, "M"), (30, "G"), (40, "T")] where bytes & ((1 << shift) - 1) == 0 {
            for suffix in ["", "B", "iB", "b", "ib", "IB"] {
                let written = "\(bytes >> shift)\(unit)\(suffix)"
                fuzzCheck(parse(written) == bytes, "'\(text)' is \(bytes) bytes, but '\(written)' parses to \(String(describing: parse(written)))")
            }
        }
        fuzzCheck(old != nil || bytes >= 1 << 53, "'\(text)' (\(bytes) bytes) was rejected before")
        if let old, bytes < 1 << 52 {
            fuzzCheck(abs(old - bytes) <= 1, "'\(text)' is \(bytes) bytes, the old parser said \(old)")
        }
    }
}

/// The parser the CLI used before `ByteSize` (a Double times the unit), kept as the
/// reference for what the CLI accepted.
func previousCLIParser(_ argument: String) -> Int? {
    var text = argument.lowercased()
    for suffix in ["ib", "b"] where text.hasSuffix(suffix) && text.count > suffix.count {
        text.removeLast(suffix.count)
        break
    }
    var multiplier = 1.0
    if let last = text.last, let power = ["k": 1, "m": 2, "g": 3, "t": 4][String(last)] {
        multiplier = Double(1 << (10 * power))
        text.removeLast()
    }
    guard let value = Double(text), value >= 0, value * multiplier < Double(Int.max) else { return nil }
    return Int(value * multiplier)
}

let seeds: [(name: String, bytes: [UInt8])] = [
    "4096", "64K", "1M", "2G", "1.5GiB", "512kb", ".5M", "1.", "2.25t", "00012k",
    "9223372036854775807", "8388607T", "9007199254740993", "1.9999999999999999999999",
    "-1", "1e3", "0x1b", "", "kb", "1.2.3", "1 K", "8388608T",
].enumerated().map { (name: String(format2($0.offset)) + "-size", bytes: Array($0.element.utf8)) }

func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

@main struct FuzzByteSize {
    static func main() {
        FuzzMain.run("fuzz-byte-size", seeds: { seeds }, test: fuzzByteSize)
    }
}
