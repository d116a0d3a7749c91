"""Reference workloads: the MLP, a small CNN and a transformer block (built by the offload work)."""
