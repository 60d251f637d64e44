"""The large seq2seq config's train step, scaled down, compiled for 8 forced CPU devices.

Run by tests/experiments/test_large_config.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8:

  python -m tests.workers.large_memory_worker

Compiles (never runs) `benchmarks.large_memory`'s step for the large config with D, F
and the batch divided by SCALE and the depths by LAYER_SCALE, and prints one JSON line:
its per-device `memory_analysis` bytes and the state's bytes.
"""

import json

from benchmarks import large_memory

SCALE = 16  # D 2048 -> 128, F 8192 -> 512, 16 heads -> 1, batch 256 -> 16.
LAYER_SCALE = 8  # 8 + 8 layers -> 1 + 1.

if __name__ == '__main__':
  print(json.dumps(large_memory.memory_report(large_memory.Setup(SCALE, LAYER_SCALE))))
