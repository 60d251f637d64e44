"""PyTorch peers of the benchmarked models and train steps (never imports JAX).

Same shapes, same synthetic data sizes and the same optimiser as the JAX side:
Adam with coupled weight decay (`torch.optim.Adam(weight_decay=...)`). Modes:
'eager', 'channels_last' (eager, NHWC memory format; conv models only) and
'compile' (`torch.compile` of the model).

Dimension key: B batch, C channels, H height, W width, T time, V vocabulary.
"""

import math
import time
from typing import Any, Callable

import torch
from torch import nn
import torch.nn.functional as F

from benchmarks import measure

MODES = ('eager', 'channels_last', 'compile')


class CNN(nn.Module):
  """The seed's MY_NET: conv32-conv64-pool-conv128-pool-dropout-fc-dropout-fc."""

  def __init__(self, image: int, channels: int, hidden: int, classes: int):
    super().__init__()
    self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
    self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
    self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
    self.fc1 = nn.Linear(128 * (image // 4) ** 2, hidden)
    self.fc2 = nn.Linear(hidden, classes)
    self.dropout = nn.Dropout(0.5)

  def forward(self, x_BxCxHxW):
    x = F.relu(self.conv2(F.relu(self.conv1(x_BxCxHxW))))
    x = F.relu(self.conv3(F.max_pool2d(x, 2)))
    x = self.dropout(torch.flatten(F.max_pool2d(x, 2), 1))
    return self.fc2(self.dropout(F.relu(self.fc1(x))))


class CharLM(nn.Module):
  """Embedding, one LSTM or GRU layer (PyTorch's fused kernels), vocabulary dense."""

  def __init__(self, cell: str, vocab: int, embed: int, hidden: int):
    super().__init__()
    self.embed = nn.Embedding(vocab, embed)
    rnn_cls = nn.LSTM if cell == 'lstm' else nn.GRU
    self.rnn = rnn_cls(embed, hidden, batch_first=True)
    self.out = nn.Linear(hidden, vocab)

  def forward(self, tokens_BxT):
    h_BxTxH, _ = self.rnn(self.embed(tokens_BxT))
    return self.out(h_BxTxH)


def _sinusoidal(length: int, dim: int) -> torch.Tensor:
  half = dim // 2
  inv_freq = torch.exp(-math.log(10_000.0) * torch.arange(half) / max(half - 1, 1))
  angles = torch.arange(length)[:, None] * inv_freq[None, :]
  table = torch.zeros(length, dim)
  table[:, :half], table[:, half : 2 * half] = torch.sin(angles), torch.cos(angles)
  return table


class Seq2SeqTransformer(nn.Module):
  """Pre-norm encoder-decoder (`nn.Transformer`), sinusoidal positions, untied output."""

  def __init__(self, vocab, d, heads, enc_layers, dec_layers, ff, src_len, tgt_len):
    super().__init__()
    self.scale = d**0.5
    self.src_embed = nn.Embedding(vocab, d)
    self.tgt_embed = nn.Embedding(vocab, d)
    self.register_buffer('pos', _sinusoidal(max(src_len, tgt_len), d))
    self.core = nn.Transformer(
      d, heads, enc_layers, dec_layers, ff, dropout=0.0, batch_first=True, norm_first=True
    )
    self.out = nn.Linear(d, vocab)

  def forward(self, src_BxS, tgt_in_BxT):
    s, t = src_BxS.shape[1], tgt_in_BxT.shape[1]
    x = self.src_embed(src_BxS) * self.scale + self.pos[:s]
    y = self.tgt_embed(tgt_in_BxT) * self.scale + self.pos[:t]
    pad = src_BxS == 0
    causal = nn.Transformer.generate_square_subsequent_mask(t, device=y.device)
    h = self.core(
      x,
      y,
      tgt_mask=causal,
      src_key_padding_mask=pad,
      memory_key_padding_mask=pad,
      tgt_is_causal=True,
    )
    return self.out(h)


def _timestep_embedding(t_B, dim):
  half = dim // 2
  freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t_B.device) / half)
  angles = t_B.float()[:, None] * freqs[None, :]
  return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class ResBlock(nn.Module):
  def __init__(self, cin, cout, emb, groups):
    super().__init__()
    self.norm1, self.norm2 = nn.GroupNorm(groups, cin), nn.GroupNorm(groups, cout)
    self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
    self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
    self.emb = nn.Linear(emb, cout)
    self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

  def forward(self, x, emb):
    h = self.conv1(F.silu(self.norm1(x))) + self.emb(F.silu(emb))[:, :, None, None]
    return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class SelfAttention(nn.Module):
  def __init__(self, c, heads, groups):
    super().__init__()
    self.heads = heads
    self.norm = nn.GroupNorm(groups, c)
    self.qkv = nn.Linear(c, 3 * c)
    self.out = nn.Linear(c, c)

  def forward(self, x):
    b, c, h, w = x.shape
    t = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
    q, k, v = self.qkv(t).view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
    return x + self.out(y).transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
  """The layout of `research.models.unet.UNet`: same blocks, widths and attention."""

  def __init__(self, channels, widths, num_res_blocks, attention_resolutions, heads, groups, image):
    super().__init__()
    self.w0 = widths[0]
    e = 4 * widths[0]
    self.time = nn.Sequential(nn.Linear(widths[0], e), nn.SiLU(), nn.Linear(e, e))
    self.conv_in = nn.Conv2d(channels, widths[0], 3, padding=1)
    attn = lambda c, side: (
      SelfAttention(c, heads, groups) if side in attention_resolutions else nn.Identity()
    )
    self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
    c, side = widths[0], image
    for level, width in enumerate(widths):
      blocks = nn.ModuleList()
      for _ in range(num_res_blocks):
        blocks.append(nn.ModuleList([ResBlock(c, width, e, groups), attn(width, side)]))
        c = width
      self.down.append(blocks)
      if level < len(widths) - 1:
        self.downsample.append(nn.Conv2d(4 * c, widths[level + 1], 1))
        c, side = widths[level + 1], side // 2
    self.mid1 = ResBlock(c, c, e, groups)
    self.mid_attn = SelfAttention(c, heads, groups)
    self.mid2 = ResBlock(c, c, e, groups)
    self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
    for level in reversed(range(len(widths))):
      if level < len(widths) - 1:
        self.upsample.append(nn.Conv2d(c, widths[level], 1))
        c, side = widths[level], side * 2
      blocks = nn.ModuleList()
      cin = c + widths[level]
      for _ in range(num_res_blocks):
        blocks.append(
          nn.ModuleList([ResBlock(cin, widths[level], e, groups), attn(widths[level], side)])
        )
        cin = c = widths[level]
      self.up.append(blocks)
    self.norm_out = nn.GroupNorm(groups, c)
    self.conv_out = nn.Conv2d(c, channels, 3, padding=1)

  def forward(self, x, t_B):
    emb = self.time(_timestep_embedding(t_B, self.w0))
    h = self.conv_in(x)
    skips = []
    for level, blocks in enumerate(self.down):
      for block, attn in blocks:
        h = attn(block(h, emb))
      skips.append(h)
      if level < len(self.downsample):
        h = self.downsample[level](F.pixel_unshuffle(h, 2))
    h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
    for i, blocks in enumerate(self.up):
      if i > 0:
        h = F.interpolate(self.upsample[i - 1](h), scale_factor=2, mode='nearest')
      h = torch.cat([h, skips.pop()], dim=1)
      for block, attn in blocks:
        h = attn(block(h, emb))
    return self.conv_out(F.silu(self.norm_out(h)))


class TorchBench:
  """A PyTorch step (`step()` runs one) with the `compile`/`run` worker interface."""

  def __init__(self, step: Callable[[], Any], params: int | None):
    self._step = step
    self._params = params

  def compile(self) -> dict[str, Any]:
    # torch.compile compiles lazily: the first step's time includes it.
    start = time.perf_counter()
    self._step()
    return {'first_step_s': time.perf_counter() - start, 'params': self._params}

  def run(self, num_steps: int) -> None:
    for _ in range(num_steps):
      self._step()


def _train_step(model, loss_fn):
  opt = torch.optim.Adam(
    model.parameters(), lr=measure.LEARNING_RATE, weight_decay=measure.WEIGHT_DECAY
  )

  def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    opt.step()
    return loss.detach()

  return step


def _prepare(model, mode, *inputs):
  if mode == 'channels_last':
    model = model.to(memory_format=torch.channels_last)
    inputs = tuple(
      x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs
    )
  fwd = torch.compile(model) if mode == 'compile' else model
  return model, fwd, inputs


def _num_params(model):
  return sum(p.numel() for p in model.parameters())


def _cnn(s, mode, train: bool):
  b, hw, c = s['batch'], s['image'], s['channels']
  model = CNN(hw, c, s['hidden'], s['classes'])
  x = torch.randn(b, c, hw, hw)
  labels = torch.randint(0, s['classes'], (b,))
  model, fwd, (x,) = _prepare(model, mode, x)
  if train:
    model.train()
    return _train_step(model, lambda: F.cross_entropy(fwd(x), labels)), model
  model.eval()

  def step():
    with torch.inference_mode():
      logits = fwd(x)
      return F.cross_entropy(logits, labels), logits.argmax(-1)

  return step, model


def _lm(s, mode, cell):
  model = CharLM(cell, s['vocab'], s['embed'], s['hidden'])
  tokens = torch.randint(0, s['vocab'], (s['batch'], s['seq'] + 1))
  inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
  model, fwd, _ = _prepare(model, mode)
  loss = lambda: F.cross_entropy(fwd(inputs).flatten(0, 1), targets.flatten())
  return _train_step(model, loss), model


def _transformer(s, mode):
  model = Seq2SeqTransformer(
    s['vocab'],
    s['d'],
    s['heads'],
    s['enc_layers'],
    s['dec_layers'],
    s['ff'],
    s['src_len'],
    s['tgt_len'],
  )
  b = s['batch']
  src = torch.randint(3, s['vocab'], (b, s['src_len']))
  tgt = torch.randint(3, s['vocab'], (b, s['tgt_len']))
  tgt_in = torch.cat([torch.ones(b, 1, dtype=tgt.dtype), tgt[:, :-1]], dim=1)  # BOS=1
  model, fwd, _ = _prepare(model, mode)
  loss = lambda: F.cross_entropy(fwd(src, tgt_in).flatten(0, 1), tgt.flatten(), ignore_index=0)
  return _train_step(model, loss), model


def _unet(s, mode):
  model = UNet(
    s['channels'],
    s['widths'],
    s['num_res_blocks'],
    s['attention_resolutions'],
    s['heads'],
    s['groups'],
    s['image'],
  )
  b, hw, c = s['batch'], s['image'], s['channels']
  x0 = torch.rand(b, c, hw, hw) * 2 - 1
  betas = torch.linspace(1e-4, 0.02, s['timesteps'], dtype=torch.float64)
  alpha_bar = torch.cumprod(1 - betas, 0).float()
  model, fwd, (x0,) = _prepare(model, mode, x0)

  def loss():
    t_B = torch.randint(0, s['timesteps'], (b,))
    eps = torch.randn_like(x0)
    a = alpha_bar[t_B][:, None, None, None]
    return F.mse_loss(fwd(a.sqrt() * x0 + (1 - a).sqrt() * eps, t_B), eps)

  return _train_step(model, loss), model


def _matmul(s, mode):
  del mode
  a, b = torch.randn(s['n'], s['n']), torch.randn(s['n'], s['n'])
  return (lambda: torch.mm(a, b)), None


_BUILDERS = {
  'matmul': _matmul,
  'cnn_train': lambda s, m: _cnn(s, m, train=True),
  'cnn_eval': lambda s, m: _cnn(s, m, train=False),
  'lstm': lambda s, m: _lm(s, m, 'lstm'),
  'gru': lambda s, m: _lm(s, m, 'gru'),
  'transformer': _transformer,
  'unet': _unet,
}


def build(model: str, mode: str, quick: bool, threads: int = 2) -> TorchBench:
  """The PyTorch benchmark of `model` in `mode` at its full (or --quick) size."""
  if mode not in MODES:
    raise ValueError(f'unknown PyTorch mode {mode!r}: use one of {MODES}')
  if mode == 'channels_last' and model not in measure.CONV_MODELS:
    raise ValueError(f'channels_last applies to {measure.CONV_MODELS} only')
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  step, net = _BUILDERS[model](measure.spec(model, quick), mode)
  return TorchBench(step, None if net is None else _num_params(net))
