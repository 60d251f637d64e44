"""Rematerialised transformer layers (`TransformerConfig.remat`): the same parameters,
loss and gradients as without remat, with each layer under the named policy."""

import chex
import jax
import jax.numpy as jnp
import pytest

from research.models import transformer
from research.tasks import seq2seq


def _config(remat: str, layers: int = 2) -> transformer.TransformerConfig:
  return transformer.TransformerConfig(
    input_vocab_size=12,
    output_vocab_size=12,
    emb_dim=16,
    num_heads=2,
    num_encoder_layers=layers,
    num_decoder_layers=layers,
    mlp_dim=32,
    max_input_length=6,
    max_target_length=5,
    dropout_rate=0.1,  # Remat must replay the same dropout masks.
    remat=remat,
  )


def _batch():
  keys = jax.random.split(jax.random.key(0), 2)
  return {
    'inputs': jax.random.randint(keys[0], (4, 6), 1, 12),
    'targets': jax.random.randint(keys[1], (4, 5), 1, 12),
    'mask': jnp.ones(4),
  }


def _params(layers: int = 2):
  model = transformer.Transformer(_config('none', layers))
  src, tgt = jnp.ones((1, 6), jnp.int32), jnp.ones((1, 5), jnp.int32)
  return model.init({'params': jax.random.key(1)}, src, tgt, train=False)['params']


def _loss_and_grad(remat: str, params, layers: int):
  loss_fn = seq2seq.make_loss_fn(transformer.Transformer(_config(remat, layers)))

  def loss(p):
    metrics, _ = loss_fn(p, _batch(), jax.random.key(2), True)
    return metrics['loss'][0]

  return jax.jit(jax.value_and_grad(loss))(params)


def _checkpoint_policies(jaxpr) -> list:
  """The `policy` of every checkpoint (remat) op in a jaxpr, sub-jaxprs included."""
  found = []
  for eqn in jaxpr.eqns:
    if 'policy' in eqn.params and eqn.primitive.name in ('checkpoint', 'remat2'):
      found.append(eqn.params['policy'])
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(sub, 'jaxpr', sub)
        if hasattr(inner, 'eqns'):
          found += _checkpoint_policies(inner)
  return found


def test_remat_keeps_parameters_loss_and_gradients():
  # One encoder and one decoder layer: three compiles of the gradient, each about half
  # as long as with 2 + 2 (that each layer is wrapped is checked on the jaxpr below).
  layers = 1
  params = _params(layers)
  src, tgt = jnp.ones((1, 6), jnp.int32), jnp.ones((1, 5), jnp.int32)
  ref_loss, ref_grads = _loss_and_grad('none', params, layers)
  for remat in ('full', 'dots'):
    model = transformer.Transformer(_config(remat, layers))
    shapes = jax.eval_shape(
      lambda model=model: model.init({'params': jax.random.key(1)}, src, tgt, train=False)['params']
    )
    chex.assert_trees_all_equal_shapes(shapes, params)  # The same names and shapes.
    loss, grads = _loss_and_grad(remat, params, layers)
    chex.assert_trees_all_close(loss, ref_loss, rtol=1e-6)
    chex.assert_trees_all_close(grads, ref_grads, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('remat', list(transformer.REMAT_POLICIES))
def test_each_layer_is_rematerialised_under_its_policy(remat):
  loss_fn = seq2seq.make_loss_fn(transformer.Transformer(_config(remat)))
  jaxpr = jax.make_jaxpr(lambda p: loss_fn(p, _batch(), jax.random.key(2), True))(_params())
  policies = _checkpoint_policies(jaxpr.jaxpr)
  expected = transformer.REMAT_POLICIES[remat]
  assert policies == ([] if remat == 'none' else [expected] * 4)  # 2 + 2 layers.


def test_unknown_remat_names_the_policies():
  with pytest.raises(ValueError, match="unknown remat 'some'.*'none', 'full', 'dots'"):
    _config('some')
