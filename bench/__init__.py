"""Benchmarks: netra-resilience against its peers, in the same process and run."""
