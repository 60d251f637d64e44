"""One process of a two-process CPU job (gloo), started by test_preemption_sync.py.

    python -m tests.workers.preemption_sync_worker PORT PROCESS_ID [MAX_SECONDS]

Loops until `agreed_stop` says stop, printing 'iteration N' as it goes (the test
sends SIGTERM to one process once both are looping), then prints one JSON line:
the iteration at which it stopped and whether its own stop request was set.
"""

import json
import sys
import time

from research.train import distributed
from research.train import preemption

MAX_ITERATIONS = 3000  # ~5 minutes at 0.1 s: far beyond what the test waits.


def main():
  port, pid = sys.argv[1], int(sys.argv[2])
  max_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else None
  distributed.initialize(f'localhost:{port}', 2, pid)
  stopped_at = None
  with preemption.StopOnSignal(max_seconds=max_seconds) as stop:
    for i in range(MAX_ITERATIONS):
      if stop.agreed_stop_requested():
        stopped_at = i
        break
      print(f'iteration {i}', flush=True)
      time.sleep(0.1)
    print(
      json.dumps(
        {
          'process': pid,
          'stopped_at': stopped_at,
          'signalled': stop.signalled(),
          'over_time_budget': stop.over_time_budget(),
        }
      ),
      flush=True,
    )


if __name__ == '__main__':
  main()
