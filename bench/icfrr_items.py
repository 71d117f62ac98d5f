"""ICFRR on item-to-item retrieval with class relevance (no trained model involved).

  PYTHONPATH=. python bench/icfrr_items.py --data_dir=data/ikea --icfrr_kg=10 --icfrr_kq=15
  PYTHONPATH=. python bench/icfrr_items.py --data_dir=data/ikea --icfrr_shortlist=100

Queries are the items of --query_split, the gallery is every item of --gallery_split
(disjoint splits, so no query finds itself), a gallery item is relevant when its category
is the query's. This is ICFRR's own setting (class-level relevance); the features are the
dataset's item features, so the figures do not depend on any trained model or seed.
Each query's top --icfrr_shortlist items are re-ranked (`protocols.class_level_summaries`);
with a shortlist at least the gallery size this is ICFRR over the whole list.
"""

from __future__ import annotations

from absl import app
from absl import flags

from keras_models import configs
from keras_models import data_files
from keras_models import evaluator as evaluator_lib
from keras_models.rerank import protocols

_ICFRR = configs.IcfrrConfig()
DATA_DIR = flags.DEFINE_string("data_dir", None, "Shards folder.", required=True)
QUERY_SPLIT = flags.DEFINE_string("query_split", "val", "Split of the query items.")
GALLERY_SPLIT = flags.DEFINE_string("gallery_split", "test", "Split of the gallery items.")
KG = flags.DEFINE_integer("icfrr_kg", _ICFRR.k_g, "K_G.")
KQ = flags.DEFINE_integer("icfrr_kq", _ICFRR.k_q, "K_Q.")
BETA = flags.DEFINE_float("icfrr_beta", _ICFRR.beta, "beta.")
ITERATIONS = flags.DEFINE_integer("icfrr_iterations", _ICFRR.iterations, "Iterations.")
MODE = flags.DEFINE_enum("icfrr_mode", _ICFRR.mode, list(configs.ICFRR_MODES), "Form.")
SHORTLIST = flags.DEFINE_integer("icfrr_shortlist", _ICFRR.shortlist, "T, items re-ranked.")


def main(argv: list[str]) -> None:
  del argv
  config = configs.IcfrrConfig(k_g=KG.value, k_q=KQ.value, beta=BETA.value,
                               iterations=ITERATIONS.value, mode=MODE.value,
                               shortlist=SHORTLIST.value)
  config.validate()
  manifest = data_files.load_manifest(DATA_DIR.value)
  queries = data_files.load_item_table(manifest, QUERY_SPLIT.value)
  gallery = data_files.load_item_table(manifest, GALLERY_SPLIT.value)
  query_features = evaluator_lib.l2_normalize(queries.features)
  gallery_features = evaluator_lib.l2_normalize(gallery.features)
  print(f"{manifest.data_label()}: {len(query_features)} {QUERY_SPLIT.value} items -> "
        f"{len(gallery_features)} {GALLERY_SPLIT.value} items, {config}")
  ranker, chunk_size = protocols.list_ranker(configs.GALLERY_CHUNK_SIZE)
  summaries = protocols.class_level_summaries(
      ranker, query_features, queries.categories, gallery_features, gallery.categories,
      config, chunk_size)
  for iteration, summary in enumerate(summaries):
    print(f"iteration {iteration}: " + "  ".join(f"{k} {v:.4f}" for k, v in summary.items()))


if __name__ == "__main__":
  app.run(main)
