/// Memory NCCL registered (`regMr`); the mhandle NCCL passes back is this object.
final class NCCLMemoryRegion: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let size: Int
    /// CNM_NCCL_PTR_* of the memory.
    let type: Int32

    init(base: UnsafeMutableRawPointer, size: Int, type: Int32) {
        self.base = base
        self.size = size
        self.type = type
    }

    var buffer: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: size) }
}
