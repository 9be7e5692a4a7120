// NetmemDevice module.
