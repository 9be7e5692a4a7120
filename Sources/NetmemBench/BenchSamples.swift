/// Samples of named figures over repeated runs; the best of each is reported.
package struct BenchSamples {
    package enum Better { case lower, higher }
    package init() {}

    private var order: [String] = []
    private var values: [String: (Double, Better)] = [:]

    package mutating func add(_ key: String, _ value: Double, _ better: Better) {
        guard let (old, b) = values[key] else {
            order.append(key)
            values[key] = (value, better)
            return
        }
        values[key] = (b == .lower ? Swift.min(old, value) : Swift.max(old, value), b)
    }

    package func value(_ key: String) -> Double? { values[key]?.0 }

    package var best: [(String, Double)] { order.map { ($0, values[$0]!.0) } }
}
