"""Training throughput of the real trainer (sets/s) and its share of the dense-matmul rate.

  python -m bench.train_throughput --output_json=/tmp/train_throughput.json
  python -m bench.train_throughput --quick        # tiny shapes, under a minute

Times `trainer.fit` of the real trainer (bench/step_timer.py) on one fixed SYNTHETIC batch
held in memory (the input pipeline is measured apart, by bench/pipeline.py). Per variant:
median seconds per window of steps after a warm-up epoch, sets/s, achieved FLOP/s from the
analytic count of bench/flop_count.py, and that rate over the dense-matmul FLOP/s probed
in the same process just before and after each window (median over windows).
"""

from __future__ import annotations

from absl import app
from absl import flags

from bench import flop_count
from bench import harness
from bench import step_timer
from keras_models import configs

VARIANTS = step_timer.VARIANTS
COLUMNS = ("variant", "jit_compile", "mixed_precision", "sets_per_second", "step_ms",
           "achieved_gflops", "matmul_limit_gflops", "ratio_to_matmul_limit",
           "load_average_1min")
QUICK = dict(batch_size=16, half_size=5, feature_dim=64, hidden_dim=64,
             candidate_neg_num=10, window_steps=2, num_windows=2, matmul_size=256)

_VARIANTS = flags.DEFINE_multi_enum("variants", list(VARIANTS), list(VARIANTS),
                                    "Loss variants to time.")
_JIT = flags.DEFINE_multi_enum("jit_compile", ["false", "true"], ["false", "true"],
                               "Time the step without and/or with XLA (jit_compile).")
_PRECISION = flags.DEFINE_multi_enum("mixed_precision", ["none"],
                                     list(configs.MIXED_PRECISION), "Dtype policies to time.")
_QUICK = flags.DEFINE_bool("quick", False, f"Tiny run (overrides sizes: {QUICK}), jit off, "
                          "in_batch and integrated (which has every loss term) only.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Sets per step.")
_HALF = flags.DEFINE_integer("half_size", 10, "Padded items per half (sets of up to 2x).")
_K = flags.DEFINE_integer("num_categories", 11, "Categories K.")
_DIM = flags.DEFINE_integer("feature_dim", 512, "Item feature size D.")
_HIDDEN = flags.DEFINE_integer("hidden_dim", 512, "CST width.")
_LAYERS = flags.DEFINE_integer("num_layers", 2, "CST layers.")
_HEADS = flags.DEFINE_integer("num_heads", 2, "Attention heads.")
_NEGATIVES = flags.DEFINE_integer("candidate_neg_num", 100, "TPaNeg candidates per item.")
_WINDOW = flags.DEFINE_integer("window_steps", 3, "Steps per timed window (and warm-up).")
_WINDOWS = flags.DEFINE_integer("num_windows", 5, "Timed windows; the median is reported.")
_MATMUL = flags.DEFINE_integer("matmul_size", 1024, "Side of the square limit matmul.")
_STRATEGY = flags.DEFINE_enum("strategy", "mirrored", list(configs.STRATEGIES),
                              "Distribution strategy, as in training.")
_BREAKDOWN = flags.DEFINE_bool("breakdown", False, "Also time the parts of the in-batch "
                                "step alone (encoder passes, losses, Adam) at these sizes.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", "", "Also write the results here.")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  sizes = dict(batch_size=_BATCH.value, half_size=_HALF.value, feature_dim=_DIM.value,
               hidden_dim=_HIDDEN.value, candidate_neg_num=_NEGATIVES.value,
               window_steps=_WINDOW.value, num_windows=_WINDOWS.value,
               matmul_size=_MATMUL.value)
  jit_modes = [j == "true" for j in dict.fromkeys(_JIT.value)]
  variants = list(dict.fromkeys(_VARIANTS.value))
  if _QUICK.value:
    sizes, jit_modes, variants = dict(QUICK), [False], ["in_batch", "integrated"]
  window_steps, num_windows, matmul_size = (
      sizes.pop("window_steps"), sizes.pop("num_windows"), sizes.pop("matmul_size"))
  shape = flop_count.StepShape(num_categories=_K.value, num_layers=_LAYERS.value, **sizes)
  model_config = configs.ModelConfig(hidden_dim=shape.hidden_dim, num_layers=shape.num_layers,
                                     num_heads=_HEADS.value)
  rows = []
  for precision in dict.fromkeys(_PRECISION.value):
    for jit in jit_modes:
      for variant in variants:
        rows.append(step_timer.time_variant(variant, jit, precision, shape, model_config,
                                            window_steps, num_windows, matmul_size,
                                            _STRATEGY.value))
        print(harness.format_table(rows[-1:], COLUMNS), flush=True)
  parts = []
  if _BREAKDOWN.value:
    parts = step_timer.breakdown(shape, model_config)
    print(harness.format_table(parts, list(parts[0])), flush=True)
  payload = {"benchmark": "train_throughput", "data": "SYNTHETIC", "quick": _QUICK.value,
             "machine": harness.machine_info(), "shape": vars(shape) | {
                 "num_heads": _HEADS.value, "window_steps": window_steps,
                 "num_windows": num_windows, "matmul_size": matmul_size},
             "results": rows, "breakdown": parts}
  harness.emit("Training throughput (SYNTHETIC batch, CST)", rows, COLUMNS, payload,
               _OUTPUT_JSON.value)


if __name__ == "__main__":
  app.run(main)
