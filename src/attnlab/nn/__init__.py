"""Modules: thin nn.Module wrappers over the functional core."""
