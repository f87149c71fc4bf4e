"""The Tensor's operators, one module per family; each op's forward and backward sit together."""
