// NetmemURing module.
