"""Generation from trained models: decoding, text sampling and diffusion sampling.

Every loop here is pure and compiles once (`lax.while_loop` or `lax.scan`), except
the next-word search, which ranks a few words on the host. Modules and their names:

- `decoding`: `greedy` and `beam_search`, model-agnostic loops over a
  `step_fn(cache, token_B, index) -> (logits_BxV, cache)`; `decode_transformer`
  runs them with the `research.models.Transformer` key/value cache.
- `char_sampling`: `sample_chars` continues prompts under a `research.models.CharLM`
  (temperature and top-k sampling, one compiled scan); `sample_logits` draws one
  id per row of logits.
- `next_words`: the module's `next_words(model, params, vocab, prompt)` lists the
  likeliest next words after a prompt under a `CharLM` (a beam search over
  characters); the package exports the module, so its name stays the module's.
- `diffusion`: noise schedules (`Schedule`, `make_schedule`), the forward process
  `q_sample`, the `ddpm_sample` and `ddim_sample` samplers and
  `classifier_free_guidance`.

Loss functions that use these (the DDPM noise loss, the seq2seq decoding
evaluation, language-model prompt completion) are in `research.tasks`.
"""

from research.generation import char_sampling
from research.generation import decoding
from research.generation import diffusion
from research.generation import next_words
from research.generation.char_sampling import sample_chars
from research.generation.char_sampling import sample_logits
from research.generation.decoding import beam_search
from research.generation.decoding import decode_transformer
from research.generation.decoding import greedy
from research.generation.diffusion import Schedule
from research.generation.diffusion import classifier_free_guidance
from research.generation.diffusion import ddim_sample
from research.generation.diffusion import ddpm_sample
from research.generation.diffusion import make_schedule
from research.generation.diffusion import q_sample

__all__ = [
  'Schedule',
  'beam_search',
  'char_sampling',
  'classifier_free_guidance',
  'ddim_sample',
  'ddpm_sample',
  'decode_transformer',
  'decoding',
  'diffusion',
  'greedy',
  'make_schedule',
  'next_words',
  'q_sample',
  'sample_chars',
  'sample_logits',
]
