enum NCCLCheckPlaceholder {}
