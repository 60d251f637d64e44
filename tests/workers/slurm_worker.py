"""An entry point whose training only reports the job it joined, for
tests/train/test_scheduler.py (started the way srun starts a task, SLURM's
variables in its environment):

    python -m tests.workers.slurm_worker --distributed_auto --workdir=DIR

Goes through `cli.run` (joining the job, the allocation check) like every
experiment; prints one JSON line: this process's index and what JAX sees. Process 0
writes the run's manifest into --workdir.
"""

import json

from absl import app

from research import cli
from research.train import distributed
from research.train import manifest


def _report(config, workdir, resume, log):
  del resume, log
  summary = manifest.device_summary()
  if distributed.is_primary():
    manifest.write_manifest(workdir, 'slurm_worker', config.to_dict(), {})
  print(json.dumps(summary), flush=True)


main = cli.define_experiment('experiments/cnn/configs/default.py', _report)

if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
