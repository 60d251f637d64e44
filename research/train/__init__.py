"""The shared training core: steps, drivers, optimisers, loop, checkpoints, metrics."""
