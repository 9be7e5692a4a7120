// NetmemKernel module.
