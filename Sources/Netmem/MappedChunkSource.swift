import Synchronization

/// One mapping cut into chunks, with its free list: the common body of the host,
/// huge-page and shared-memory providers (they differ only in how they map).
final class MappedChunkSource: @unchecked Sendable {
    let memory: MappedMemory
    let area: NetmemArea
    private let free: Mutex<ChunkStack>

    init(memory: consuming MappedMemory, name: String, chunkSize: Int, chunkCount: Int) throws(NetmemError) {
        let base = memory.base
        self.memory = memory
        area = try NetmemArea(name: name, chunkSize: chunkSize, chunkCount: chunkCount,
                              baseAddress: base, deviceBase: UInt64(UInt(bitPattern: base)))
        free = Mutex(ChunkStack(count: chunkCount))
    }

    func allocate(into buffer: UnsafeMutableBufferPointer<NetmemRef>) -> Int {
        free.withLockChecked { stack in
            var n = 0
            while n < buffer.count, let c = stack.pop() {
                buffer[n] = NetmemRef(area: area.id, chunk: c)
                n += 1
            }
            return n
        }
    }

    func release(_ ref: NetmemRef) -> ChunkRelease {
        precondition(area.contains(ref), "\(ref) was released to a provider that does not own it (\(area))")
        free.withLockChecked { $0.push(ref.chunk) }
        return .reusable
    }

    var available: Int { free.withLockChecked { $0.count } }

    func describe(kind: String, details: [(String, String)]) -> ProviderDescription {
        ProviderDescription(kind: kind, chunkSize: area.chunkSize, chunkCount: area.chunkCount,
                            available: available, readable: true,
                            details: [("area", "\(area.id)"), ("locked", memory.locked ? "yes" : "no")] + details)
    }
}
