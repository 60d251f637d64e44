"""Loss functions (and reports) per task, plugged into `research.train.steps`."""
