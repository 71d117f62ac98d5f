"""Exports a trained model and a gallery as a SavedModel with in-graph per-category retrieval.

  python export_main.py --flagfile=experiments/serve/demo.flags
  python export_main.py --flagfile=experiments/serve/ikea.flags --gallery_split=test \
      --export_dir=runs/ikea/cst/seed0/export/7
  saved_model_cli show --all --dir runs/demo/cst/export/1

Writes <model_dir>/export/<version>/ (next free version, or --export_dir) atomically: a
SavedModel loadable with `tf.saved_model.load` or TF Serving and no package of ours, with
the signatures predict, complete (= serving_default), complete_by_name, search, metadata
(see docs/export.md). The gallery flags are index_main.py's.
"""

from __future__ import annotations

from flags import entry_flags
from flags import export_flags
# Experiment flagfiles hold training and index flags too; defining them lets one file drive all.
from flags import train_flags  # pylint: disable=unused-import
from search import saved_model_export


def main(argv: list[str]) -> None:
  del argv  # entry_flags refuses positional arguments.
  entry_flags.check_input_paths(export_flags.input_path_flags())
  config = export_flags.export_config_from_flags()
  manifest = saved_model_export.export(config)
  print(f"SavedModel of {manifest['num_items']} gallery items x {manifest['feature_dim']} "
        f"({manifest['bytes'] / 2**20:.1f} MiB) exported in {manifest['export_seconds']} s "
        f"-> {config.export_dir}")
  print(f"signatures: {', '.join(manifest['signatures'])} (serving_default = complete)")


if __name__ == "__main__":
  entry_flags.run(main)
