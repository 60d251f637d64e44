"""Side-by-side training benchmarks of our JAX models and PyTorch peers."""
