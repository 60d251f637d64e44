"""Loss functions (and reports) per task, plugged into `research.train.steps`.

Each task is a module whose `make_loss_fn(model, ...)` returns the `LossFn` that
`research.train.train_step` and `eval_step` take:

- `classification`: softmax cross-entropy and accuracy on preprocessed images, a
  `SplitLoss` (preprocessing and augmentation, then the model);
  `classification_report` adds the per-class report and confusion matrix (sklearn,
  imported on first use).
- `language_model`: next-character loss on text windows, perplexity and bits per
  character, prompt completion (sampled by `research.generation.char_sampling`).
- `seq2seq`: teacher-forced loss with label smoothing, and an evaluation that also
  decodes greedily and with beam search (`research.generation.decoding`).
- `ddpm`: the prompt-conditioned DDPM noise loss, guided sampling (through
  `research.generation.diffusion`) and sample grids; `sample_quality` judges its
  samples with a trained classifier (prompt accuracy, Fréchet distance; scipy,
  imported on first use). The EMA of the parameters it samples with is not a task's:
  it is kept in the optimiser state (`research.train.optimizers.with_parameter_ema`,
  read back by `ema_params`), attached by the family `research.families.ddpm`.
"""

from typing import TYPE_CHECKING

from research._lazy import lazy_attributes
from research.tasks import classification
from research.tasks import ddpm
from research.tasks import language_model
from research.tasks import seq2seq

if TYPE_CHECKING:
  from research.tasks import classification_report
  from research.tasks import sample_quality

__getattr__, __dir__ = lazy_attributes(
  __name__,
  {
    'classification_report': 'research.tasks.classification_report',
    'sample_quality': 'research.tasks.sample_quality',
  },
)

__all__ = [
  'classification',
  'classification_report',
  'ddpm',
  'language_model',
  'sample_quality',
  'seq2seq',
]
