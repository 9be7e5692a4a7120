/// `--provider cuda[:N]`: which GPU memory a command uses. `cuda` is device 0; `cuda:N`
/// device N; `cuda:standin` the host stand-in (runs the GPU paths without a GPU).
public struct GPUProviderSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Backend: Sendable, Equatable { case cuda, standIn }
    public var backend: Backend
    public var device: Int

    public init(backend: Backend = .cuda, device: Int = 0) {
        self.backend = backend
        self.device = device
    }

    /// Why a `--provider` value is not a GPU provider.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var value: String
        public var description: String {
            "'\(value)' is not a GPU provider: use cuda, cuda:N (N a device number from 0) or cuda:standin"
        }
    }

    /// Whether `text` asks for a GPU provider at all ("cuda" or "cuda:…").
    public static func isGPU(_ text: String) -> Bool { text == "cuda" || text.hasPrefix("cuda:") }

    /// Parses "cuda", "cuda:N" or "cuda:standin".
    public init(parsing text: String) throws(ParseError) {
        guard Self.isGPU(text) else { throw ParseError(value: text) }
        if text == "cuda" { self.init(); return }
        let rest = text.dropFirst("cuda:".count)
        if rest == "standin" { self.init(backend: .standIn); return }
        guard !rest.isEmpty, rest.count <= 4, rest.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(rest) else {
            throw ParseError(value: text)
        }
        self.init(backend: .cuda, device: n)
    }

    /// Opens the CUDA driver for this spec's device (`CUDADriver` errors say what is
    /// missing). The stand-in is a test double in its own module (NetmemGPUStandIn): a
    /// program that offers `cuda:standin` makes a `HostStandInDriver` itself.
    ///
    /// - Throws: `GPUError` when the CUDA driver or device is missing, or for `standIn`.
    public func makeDriver(requireDmaBuf: Bool = false) throws(GPUError) -> any GPUDriver {
        switch backend {
        case .cuda: return try CUDADriver(device: device, requireDmaBuf: requireDmaBuf)
        case .standIn:
            throw .invalidArgument("cuda:standin is the host stand-in of module NetmemGPUStandIn; make a HostStandInDriver")
        }
    }

    public var description: String { backend == .standIn ? "cuda:standin" : "cuda:\(device)" }
}

/// How received payload reaches the GPU.
public enum GPULanding: String, Sendable, CaseIterable {
    /// Receive into pinned host memory the GPU reads in place.
    case pinned
    /// Receive into host chunks, then copy to device memory (tokens back on completion).
    case bounce
}
