"""Loss functions (and reports) per task, plugged into `research.train.steps`.

Each task is a module whose `make_loss_fn(model, ...)` returns the `LossFn` that
`research.train.train_step` and `eval_step` take:

- `classification`: softmax cross-entropy and accuracy on preprocessed images, a
  `SplitLoss` (preprocessing and augmentation, then the model);
  `classification_report` adds the per-class report and confusion matrix (sklearn,
  imported on first use).
- `language_model`: next-character loss on text windows, perplexity and bits per
  character, prompt completion; `next_words` lists the likeliest next words
  after a prompt (beam search over characters).
- `seq2seq`: teacher-forced loss with label smoothing, greedy and beam decoding.
- `diffusion`: the prompt-conditioned DDPM noise loss, an EMA of the parameters,
  guided sampling and sample grids.
"""

from typing import TYPE_CHECKING

from research._lazy import lazy_attributes
from research.tasks import classification
from research.tasks import diffusion
from research.tasks import language_model
from research.tasks import next_words
from research.tasks import seq2seq

if TYPE_CHECKING:
  from research.tasks import classification_report

__getattr__, __dir__ = lazy_attributes(
  __name__, {'classification_report': 'research.tasks.classification_report'}
)

__all__ = [
  'classification',
  'classification_report',
  'diffusion',
  'language_model',
  'next_words',
  'seq2seq',
]
