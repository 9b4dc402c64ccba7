"""CPU-intensive workloads: one module each, named in workloads.yaml."""
