import NetmemCommandLine
import Testing

@Suite("Byte sizes on the command line")
struct ByteSizeTests {
    func bytes(_ text: String) throws -> Int { try ByteSize(parsing: text).bytes }

    @Test("Plain numbers, binary units in either case, with or without B / iB")
    func accepted() throws {
        let cases: [(String, Int)] = [
            ("0", 0), ("4096", 4096), ("00012", 12),
            ("64K", 64 << 10), ("64k", 64 << 10), ("64KB", 64 << 10), ("64kb", 64 << 10), ("64KiB", 64 << 10), ("64kIB", 64 << 10),
            ("1M", 1 << 20), ("1MiB", 1 << 20), ("2G", 2 << 30), ("2g", 2 << 30), ("3T", 3 << 40), ("3TB", 3 << 40),
            ("1B", 1), ("1b", 1), ("1iB", 1),
            ("1.5G", 1_610_612_736), ("1.5GiB", 1_610_612_736), (".5M", 512 << 10), ("1.K", 1024), ("2.25t", 9 << 38),
            // A fraction of a byte is dropped, exactly.
            ("1.5", 1), ("1.1K", 1126), ("0.9999999999999999999999K", 1023), ("1.9999999999999999999999", 1),
            // Whole numbers are exact up to Int.max (no rounding through a Double).
            ("9007199254740993", 9_007_199_254_740_993), ("9223372036854775807", Int.max),
            ("8388607T", 8_388_607 << 40), ("8388607.99999999T", 9_223_372_036_854_764_812), ("8388607.999999999999T", Int.max - 1),
        ]
        for (text, expected) in cases {
            #expect(try bytes(text) == expected, "\(text)")
        }
    }

    @Test("Negatives, garbage, other notations and overflow are refused with a reason")
    func rejected() {
        #expect(throws: ByteSizeError.empty) { try bytes("") }
        for text in ["-1", "-0", "-1K", "-.5M"] {
            #expect(throws: ByteSizeError.negative(text)) { try bytes(text) }
        }
        for text in ["b", "K", "kb", "KiB", "ib", ".", ".K", "1.2.3", "1KK", "1bb", "1P", "1 K", " 1", "1 ", "+5", "1e3", "1E3",
                     "0x10", "0x1b", "inf", "nan", "1_000", "1,5G", "1\u{212A}", "١", "12abc", "K1",
                     // Found by fuzz-byte-size against the former parser, which read these as 0 and 2
                     // (strtod stops at the NUL).
                     "0\u{0}\u{4}b", "2\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}914"] {
            #expect(throws: ByteSizeError.notANumber(text)) { try bytes(text) }
        }
        for text in ["9223372036854775808", "8388608T", "8388608.5T", "99999999999999999999999", "9007199254740992G"] {
            #expect(throws: ByteSizeError.tooLarge(text)) { try bytes(text) }
        }
        #expect(ByteSizeError.negative("-1").description.contains("negative"))
        #expect(ByteSizeError.notANumber("x").description.contains("'x' is not a byte size"))
    }
}
