"""Training settings chosen from the size of the data, for the settings a user leaves out.

One fixed set of defaults cannot suit both 400 and 40,000 train sets: the old ones (hidden
256, 2 layers, batch 64, constant 1e-3, 30 epochs) were too large for a few hundred sets
and had not converged when their epoch cap ended the run (issue 24; measured in
docs/training_defaults.md). `resolve` is the documented rule
(docs/training_defaults.md); train_main applies it to every setting of `RULE_SETTINGS`
whose flag was not given, logs the result and writes it to flags.txt, and the architecture
goes to model_config.json, so readers of the run rebuild it without flags.

The rule, n = number of train sets:

  n          hidden  layers  dropout  batch   measured on
  < 1,000    128     1       0.3      32      IKEA (410), a held-out real dataset (349)
  < 10,000   128     2       0.1      64      SYNTHETIC (2,100)
  larger     256     2       0.1      64      not measured: the previous library default

Every size: Adam, cosine decay from 2e-3 to 0 over the epoch budget, after a linear warmup
of min(100, budget steps / 20) steps. The budget is a number of optimizer steps, so the
epoch cap falls as the data grows: epochs = clip(ceil(BUDGET_STEPS / steps per epoch),
MIN_EPOCHS, MAX_EPOCHS). The cap is a budget, not the end: early stopping on the
validation Top-10 % (patience: a tenth of the budget, at least MIN_PATIENCE epochs) ends
the run, and a run whose best epoch is its last warns that it was still improving.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from keras_models import configs

# Settings the rule chooses, named as their flags and config fields.
MODEL_SETTINGS = ("hidden_dim", "num_layers", "dropout_rate")
RULE_SETTINGS = MODEL_SETTINGS + ("batch_size", "learning_rate", "lr_schedule",
                                  "warmup_steps", "epochs", "early_stopping_patience")
LEARNING_RATE = 2e-3
BUDGET_STEPS = 3000
MIN_EPOCHS, MAX_EPOCHS = 20, 300
MIN_PATIENCE = 10
MAX_WARMUP_STEPS = 100


@dataclasses.dataclass(frozen=True)
class Tier:
  """Capacity and regularisation for data with fewer than `below` train sets."""

  name: str
  below: float
  hidden_dim: int
  num_layers: int
  dropout_rate: float
  batch_size: int


TIERS = (Tier("small", 1_000, 128, 1, 0.3, 32),
         Tier("medium", 10_000, 128, 2, 0.1, 64),
         Tier("large", math.inf, 256, 2, 0.1, 64))


def tier_of(num_train_sets: int) -> Tier:
  """The tier of data with `num_train_sets` train sets."""
  if num_train_sets < 1:
    raise ValueError(f"need at least one train set, got {num_train_sets}")
  return next(t for t in TIERS if num_train_sets < t.below)


def epoch_budget(steps_per_epoch: int) -> int:
  """Epoch cap: BUDGET_STEPS optimizer steps, clipped to [MIN_EPOCHS, MAX_EPOCHS]."""
  return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(BUDGET_STEPS / steps_per_epoch)))


def resolve(num_train_sets: int, given: Mapping[str, Any] | None = None,
            steps_per_epoch: int = 0) -> dict[str, Any]:
  """Every setting of `RULE_SETTINGS`: the given ones kept, the others from the rule.

  The rule's later settings follow the earlier ones as resolved: the epoch budget from the
  batch size (or `steps_per_epoch`), the patience from the epochs, and the warmup from the
  schedule (0 with a constant one, which has none) and the epochs.

  Args:
    num_train_sets: Sets in the train split.
    given: Settings the user chose (flag or field name -> value); None values are unset.
    steps_per_epoch: Steps of one epoch; 0 = one pass over the train sets, as training.

  Raises:
    ValueError: an unknown setting name, or no train set.
  """
  given = {k: v for k, v in (given or {}).items() if v is not None}
  unknown = sorted(set(given) - set(RULE_SETTINGS))
  if unknown:
    raise ValueError(f"'{unknown[0]}' is not a setting of the rule {RULE_SETTINGS}")
  tier = tier_of(num_train_sets)
  out = {name: given.get(name, getattr(tier, name))
         for name in MODEL_SETTINGS + ("batch_size",)}
  out["learning_rate"] = given.get("learning_rate", LEARNING_RATE)
  out["lr_schedule"] = given.get("lr_schedule", "cosine")
  steps = steps_per_epoch or max(1, num_train_sets // max(1, out["batch_size"]))
  out["epochs"] = given.get("epochs", epoch_budget(steps))
  out["early_stopping_patience"] = given.get(
      "early_stopping_patience", max(MIN_PATIENCE, round(out["epochs"] / 10)))
  default_warmup = (min(MAX_WARMUP_STEPS, out["epochs"] * steps // 20)
                    if out["lr_schedule"] == "cosine" else 0)
  out["warmup_steps"] = given.get("warmup_steps", default_warmup)
  return {name: out[name] for name in RULE_SETTINGS}


def describe(num_train_sets: int, chosen: Mapping[str, Any]) -> str:
  """One log line: the data's size and tier, and the settings the rule chose."""
  values = " ".join(f"--{name}={chosen[name]}" for name in RULE_SETTINGS if name in chosen)
  return (f"settings chosen from the data ({num_train_sets} train sets, tier "
          f"{tier_of(num_train_sets).name}; rule in keras_models/defaults.py): {values}; "
          "a flag overrides any of them")


def train_config(data_dir: str, model_dir: str, num_train_sets: int,
                 loss: configs.LossConfig = configs.LossConfig(),
                 **given: Any) -> configs.TrainConfig:
  """A TrainConfig whose `RULE_SETTINGS` not in `given` come from the rule.

  For library callers that want what train_main gives a user who types no setting (a
  TrainConfig built directly keeps its own field defaults). `given` holds TrainConfig
  fields (seed, verbose, epochs, ...) and the rule's model fields.
  """
  settings = resolve(num_train_sets, {k: v for k, v in given.items() if k in RULE_SETTINGS},
                     given.get("steps_per_epoch", 0))
  rest = {k: v for k, v in given.items() if k not in RULE_SETTINGS}
  model = configs.ModelConfig(**{name: settings[name] for name in MODEL_SETTINGS})
  return configs.TrainConfig(
      data_dir=data_dir, model_dir=model_dir, model=model, loss=loss, **rest,
      **{name: settings[name] for name in RULE_SETTINGS if name not in MODEL_SETTINGS})
