// NetmemXDP module.
