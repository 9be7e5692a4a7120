import Netmem

func makeHostPool(chunkSize: Int = 4096, chunks: Int = 256, poolSize: Int? = nil, fragmentSize: Int? = nil,
                  ringSize: Int? = nil, cacheSize: Int = 128) throws -> (PagePool, HostPageProvider) {
    let provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks)
    var config = PagePool.Configuration(provider: provider, poolSize: poolSize ?? chunks, fragmentSize: fragmentSize)
    config.ringSize = ringSize
    config.cacheSize = cacheSize
    return (try PagePool(config), provider)
}
