/// A byte count as a user writes it on a command line: "4096", "64K", "1M", "2G",
/// "1.5GiB", "512kb". Binary units (K = 1024, M = 1024², G = 1024³, T = 1024⁴), letters in
/// either case, an optional "B" or "iB" after the unit, and a decimal fraction before it
/// ("1.5G", ".5M"). A fraction of a byte is dropped ("1.5" is 1 byte, "1.1K" 1126).
///
/// The value is computed exactly, in integers: no decimal string is rounded through a
/// floating-point number, so every whole number up to `Int.max` parses to itself.
/// Anything else (signs, exponents, hex, spaces, other units) is rejected with a
/// `ByteSizeError` that says what was wrong.
package struct ByteSize: Sendable, Hashable {
    package var bytes: Int

    package init(bytes: Int) {
        precondition(bytes >= 0, "a byte size is never negative (\(bytes))")
        self.bytes = bytes
    }

    /// Parses `text` (see the type's description for the forms).
    package init(parsing text: String) throws(ByteSizeError) {
        var s = Array(text.utf8)
        guard !s.isEmpty else { throw .empty }
        @inline(__always) func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }

        // The optional "b" / "ib" after the unit (only when something comes before it).
        if s.count > 2, lower(s[s.count - 2]) == 0x69 /* i */, lower(s[s.count - 1]) == 0x62 /* b */ {
            s.removeLast(2)
        } else if s.count > 1, lower(s[s.count - 1]) == 0x62 /* b */ {
            s.removeLast()
        }
        // The unit letter.
        var shift = 0
        if let last = s.last {
            switch lower(last) {
            case 0x6B: shift = 10  // k
            case 0x6D: shift = 20  // m
            case 0x67: shift = 30  // g
            case 0x74: shift = 40  // t
            default: break
            }
            if shift > 0 { s.removeLast() }
        }
        // The number: digits, optionally a point and more digits (at least one digit).
        let point = s.firstIndex(of: 0x2E)
        let whole = s[..<(point ?? s.count)]
        let fraction = point.map { s[($0 + 1)...] } ?? []
        guard !whole.isEmpty || !fraction.isEmpty else { throw .notANumber(text) }
        func isDigits(_ part: ArraySlice<UInt8>) -> Bool { part.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        guard isDigits(whole), isDigits(fraction) else {
            if s.first == 0x2D /* - */ { throw .negative(text) }
            throw .notANumber(text)
        }
        // Whole part times the unit.
        var value = 0
        for digit in whole {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(digit - 0x30))
            guard !o1, !o2 else { throw .tooLarge(text) }
            value = sum
        }
        guard value <= Int.max >> shift else { throw .tooLarge(text) }
        value <<= shift
        // The fraction times the unit, floored: the first `shift` binary digits of the
        // fraction, got by doubling its decimal digits and taking what carries out.
        if shift > 0, fraction.contains(where: { $0 != 0x30 }) {
            var digits = fraction.map { Int($0 - 0x30) }
            var bits = 0
            for _ in 0..<shift {
                var carry = 0
                for i in digits.indices.reversed() {
                    let d = digits[i] * 2 + carry
                    digits[i] = d % 10
                    carry = d / 10
                }
                bits = bits << 1 | carry
            }
            let (sum, overflow) = value.addingReportingOverflow(bits)
            guard !overflow else { throw .tooLarge(text) }
            value = sum
        }
        bytes = value
    }
}

/// Why a text is not a byte size.
package enum ByteSizeError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case negative(String)
    case notANumber(String)
    case tooLarge(String)

    package var description: String {
        switch self {
        case .empty:
            return "an empty byte size (write a number such as 4096, 64K, 1.5M or 2GiB)"
        case let .negative(text):
            return "'\(text)' is negative; a byte size is 0 or more"
        case let .notANumber(text):
            return "'\(text)' is not a byte size (write a number such as 4096, 64K, 1.5M or 2GiB; units K, M, G, T are powers of 1024)"
        case let .tooLarge(text):
            return "'\(text)' is more bytes than this machine can count (at most \(Int.max))"
        }
    }
}
