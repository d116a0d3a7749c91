"""Reference workloads (the MLP, a small CNN, a transformer block); filled in by the offload work."""
