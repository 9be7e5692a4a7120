// NetmemGPU module: see issue 7.
