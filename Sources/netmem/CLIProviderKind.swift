import ArgumentParser
import Netmem

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
