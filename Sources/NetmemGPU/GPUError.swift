import NetmemDevice

/// Why a GPU operation failed. Missing pieces (no driver, no device, no dma-buf export)
/// say what is missing; driver failures carry the call and the driver's own words.
public enum GPUError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libcuda.so.1 does not load; the associated text is dlerror()'s.
    case driverNotFound(String)
    /// The driver library lacks an entry point Netmem needs (a driver too old).
    case missingEntryPoint(String)
    /// The driver loaded but sees no device.
    case noDevice
    /// `--provider cuda:N` with N past the last device.
    case noSuchDevice(ordinal: Int, count: Int)
    /// The device or driver cannot export memory as a dma-buf.
    case dmaBufUnsupported(device: String)
    /// A driver call failed: the call, its CUresult, and the driver's name and text for it.
    case driver(call: String, code: Int32, name: String, message: String)
    /// A device address range that no allocation (or registration) covers.
    case invalidDeviceAddress(UInt64, count: Int)
    case outOfDeviceMemory(requested: Int)
    case invalidArgument(String)
    /// A fragment that does not lie in the region it names.
    case fragmentOutsideRegion(index: Int, offset: UInt64, length: Int, regionSize: Int)
    /// A fragment from a region other than the one being copied from.
    case fragmentFromOtherRegion(index: Int, regionID: UInt32, expected: UInt32)
    /// A fragment whose bytes are not in host memory the CPU may read (bounce needs them there).
    case fragmentNotInHostMemory(index: Int)
    /// The destination cannot hold the message.
    case destinationTooSmall(needed: Int, capacity: Int)
    /// More bytes than the bounce ring holds at all.
    case messageLargerThanRing(length: Int, ringSize: Int)
    /// Every copy slot or all ring space is taken and the caller asked not to wait.
    case wouldBlock
    /// A stand-in failure injected by a test.
    case injected(String)
    case region(DeviceMemoryError)

    public var description: String {
        switch self {
        case let .driverNotFound(why):
            return "libcuda.so.1 not found (no NVIDIA driver)" + (why.isEmpty ? "" : ": \(why)")
        case let .missingEntryPoint(name):
            return "libcuda.so.1 lacks \(name): the NVIDIA driver is too old; install a newer one"
        case .noDevice:
            return "no CUDA device: the driver loaded but sees no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
        case let .noSuchDevice(n, count):
            return "no CUDA device \(n): this machine has \(count) (use cuda:0 to cuda:\(max(count - 1, 0)))"
        case let .dmaBufUnsupported(device):
            return "dma-buf export not supported by this driver/device (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED) on \(device); "
                + "use the open NVIDIA kernel modules and CUDA 11.7 or later, or the pinned/bounce paths"
        case let .driver(call, code, name, message):
            return "\(call) failed: \(name) (\(code)): \(message)"
        case let .invalidDeviceAddress(a, n):
            return "device address range 0x\(String(a, radix: 16)) + \(n) bytes is not in any allocation"
        case let .outOfDeviceMemory(n):
            return "out of device memory allocating \(n) bytes"
        case let .invalidArgument(why):
            return "invalid argument: \(why)"
        case let .fragmentOutsideRegion(i, off, len, size):
            return "fragment \(i) (bytes \(off)..<\(off + UInt64(len))) is outside the \(size)-byte region"
        case let .fragmentFromOtherRegion(i, id, expected):
            return "fragment \(i) is in region \(id), not in region \(expected)"
        case let .fragmentNotInHostMemory(i):
            return "fragment \(i) is not in host memory the CPU may read; bounce copies need host chunks"
        case let .destinationTooSmall(needed, capacity):
            return "the message needs \(needed) bytes but the destination holds \(capacity)"
        case let .messageLargerThanRing(len, ring):
            return "a \(len)-byte message does not fit the \(ring)-byte device ring; make the ring larger"
        case .wouldBlock:
            return "every copy slot is busy (backpressure); poll for completions and try again"
        case let .injected(why):
            return "injected failure: \(why)"
        case let .region(e):
            return e.description
        }
    }
}
