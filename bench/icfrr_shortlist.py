"""How ICFRR's results move with the shortlist T, for one trained model.

  python -m bench.icfrr_shortlist --flagfile=experiments/rerank/ikea.flags \
      --model_dir=runs/ikea/cst --split=test --shortlists=25,50,100,200,1000000

The model's predictions are made once; each T re-ranks them under both protocols
(`keras_models.rerank.protocols`). A T at least the largest gallery is ICFRR over the whole
list (the exact reference), so the rows show what a shorter list changes. Prints, per T,
the task protocol's Top-10% and MRR and the category-level mAP (map_all, or
map_all_truncated when the list of max(T, 200) items is shorter than the gallery) and
precision@100, before re-ranking and after the last iteration, with the seconds taken.
"""

from __future__ import annotations

import dataclasses
import json
import time

from absl import app
from absl import flags

from flags import eval_flags
# Experiment flagfiles hold training flags too; defining them lets one file drive both.
from flags import train_flags  # pylint: disable=unused-import
from keras_models import data_files
from keras_models import evaluation
from keras_models import evaluator as evaluator_lib
from keras_models.rerank import protocols

_SHORTLISTS = flags.DEFINE_list("shortlists", ["25", "50", "100", "200", "1000000"],
                                "Values of T to compare.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", "", "Also write the rows here.")


def _row(shortlist: int, task: list[dict], category: list[dict], seconds: float) -> dict:
  map_name = "map_all" if "map_all" in category[0] else "map_all_truncated"
  return {"shortlist": shortlist, "seconds": round(seconds, 1), "map_name": map_name,
          **{f"{name}/{when}": rows[index][name]
             for when, index in (("before", 0), ("after", -1))
             for rows, names in ((task, ("top_10_percent", "mrr")),
                                 (category, (map_name, "precision_at_100")))
             for name in names}}


def main(argv: list[str]) -> None:
  del argv
  config = eval_flags.eval_config_from_flags()
  manifest = data_files.load_manifest(config.data_dir)
  encoder = evaluation.load_encoder(config, manifest)
  evaluator = evaluator_lib.Evaluator(
      manifest, config.split, batch_size=config.batch_size, gallery=config.gallery,
      chunk_size=config.gallery_chunk_size, seed=config.eval_split_seed)
  vectors = evaluator.predictions(encoder)
  ranks = evaluator.ranks(vectors)
  print(f"{manifest.data_label()} / {config.split}: {len(vectors)} queries, gallery "
        f"{len(evaluator.gallery_rows)} (largest category "
        f"{int(evaluator.category_gallery_sizes.max())}), {config.icfrr}")
  rows = []
  for shortlist in (int(value) for value in _SHORTLISTS.value):
    icfrr_config = dataclasses.replace(config.icfrr, shortlist=shortlist)
    start = time.perf_counter()
    task = protocols.task_summaries(evaluator, vectors, ranks, icfrr_config)
    category = protocols.category_level_summaries(evaluator, vectors, icfrr_config)
    rows.append(_row(shortlist, task, category, time.perf_counter() - start))
    print("  ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                    for key, value in rows[-1].items()), flush=True)
  if _OUTPUT_JSON.value:
    with open(_OUTPUT_JSON.value, "w", encoding="utf-8") as stream:
      json.dump({"data": manifest.data_label(), "split": config.split,
                 "icfrr": dataclasses.asdict(config.icfrr), "rows": rows}, stream, indent=1)


if __name__ == "__main__":
  app.run(main)
