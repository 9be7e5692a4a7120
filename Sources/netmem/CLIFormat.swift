import Glibc

/// Numbers as the CLI prints them: byte counts with binary units, fixed decimals, rates.
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
