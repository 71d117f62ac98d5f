"""Builds a per-category nearest-neighbour index of a gallery for a trained model.

  python index_main.py --flagfile=experiments/serve/demo.flags --backend=faiss_hnsw
  python index_main.py --flagfile=experiments/ikea/cst.flags --backend=exact \
      --gallery_split=test --index_dir=runs/ikea/cst/index/exact-test

Writes <model_dir>/index/<backend>/ (or --index_dir) atomically: the gallery items, one
backend index per category and index_manifest.json with the build parameters and times.
"""

from __future__ import annotations

from flags import entry_flags
from flags import index_flags
# Experiment flagfiles hold training flags too; defining them lets one file drive all.
from flags import train_flags  # pylint: disable=unused-import
from search import index


def main(argv: list[str]) -> None:
  del argv  # entry_flags refuses positional arguments.
  entry_flags.check_input_paths(index_flags.input_path_flags())
  config = index_flags.index_config_from_flags()
  manifest = index.build(config)
  sizes = {name: entry["items"] for name, entry in manifest["categories"].items()}
  print(f"{manifest['backend']} index of {manifest['num_items']} items "
        f"({index.gallery_label(manifest)}) built in {manifest['build_seconds']} s "
        f"-> {config.output_dir}")
  print(f"items per category: {sizes}")


if __name__ == "__main__":
  entry_flags.run(main)
