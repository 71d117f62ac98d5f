"""Flags of index_main.py (and the index location of serve_main.py)."""

from __future__ import annotations

from absl import flags

from flags import common_flags
from search import configs

_INDEX = configs.IndexConfig(data_dir="", output_dir="")

BACKEND = flags.DEFINE_enum("backend", _INDEX.backend, list(configs.BACKENDS),
                            "Nearest-neighbour backend: exact (our chunked TF scorer), "
                            "faiss_flat, faiss_ivf, faiss_hnsw or scann.")
INDEX_DIR = flags.DEFINE_string("index_dir", "", "Index folder; default "
                                "<model_dir>/index/<backend>.")
GALLERY_SPLIT = flags.DEFINE_enum("gallery_split", _INDEX.split, list(configs.GALLERY_SPLITS),
                                  "Items to index: one split's item table or all splits.")
INDEX_FEATURES = flags.DEFINE_string("index_features", _INDEX.features,
                                     "Optional generic features.npz whose vectors are "
                                     "indexed instead of the item tables'.")
INDEX_OVERWRITE = flags.DEFINE_bool("index_overwrite", _INDEX.overwrite,
                                    "Replace an existing index folder.")
EXACT_CHUNK_SIZE = flags.DEFINE_integer("exact_chunk_size", _INDEX.exact_chunk_size,
                                        "exact: gallery rows per compiled call (widened for "
                                        "small query batches).")
IVF_NLIST = flags.DEFINE_integer("ivf_nlist", _INDEX.ivf_nlist,
                                 "faiss_ivf: lists per category; 0 = 4 sqrt(n).")
IVF_NPROBE = flags.DEFINE_integer("ivf_nprobe", _INDEX.ivf_nprobe,
                                  "faiss_ivf: lists visited per query.")
HNSW_M = flags.DEFINE_integer("hnsw_m", _INDEX.hnsw_m, "faiss_hnsw: links per node.")
HNSW_EF_CONSTRUCTION = flags.DEFINE_integer("hnsw_ef_construction",
                                            _INDEX.hnsw_ef_construction,
                                            "faiss_hnsw: candidate list while building.")
HNSW_EF_SEARCH = flags.DEFINE_integer("hnsw_ef_search", _INDEX.hnsw_ef_search,
                                      "faiss_hnsw: candidate list while searching.")
SCANN_NUM_LEAVES = flags.DEFINE_integer("scann_num_leaves", _INDEX.scann_num_leaves,
                                        "scann: partitions; 0 = sqrt(n).")
SCANN_LEAVES_TO_SEARCH = flags.DEFINE_integer("scann_leaves_to_search",
                                              _INDEX.scann_leaves_to_search,
                                              "scann: partitions per query; 0 = leaves / 10.")
SCANN_REORDER = flags.DEFINE_integer("scann_reorder", _INDEX.scann_reorder,
                                     "scann: candidates re-scored exactly.")
SCANN_MIN_PARTITIONED = flags.DEFINE_integer(
    "scann_min_partitioned", _INDEX.scann_min_partitioned,
    "scann: smaller categories use brute force.")


def index_dir() -> str:
  """--index_dir, or <model_dir>/index/<backend> next to the model."""
  if INDEX_DIR.value:
    return INDEX_DIR.value
  return configs.default_index_dir(common_flags.require(common_flags.MODEL_DIR), BACKEND.value)


def input_path_flags() -> list[flags.FlagHolder]:
  """Flags naming paths that must exist: data, the model's run folder, --index_features."""
  return [common_flags.DATA_DIR, common_flags.MODEL_DIR, INDEX_FEATURES]


def index_config_from_flags() -> configs.IndexConfig:
  """Converts the parsed flags into a validated IndexConfig.

  Without --data_dir the data folder is the one the run in --model_dir trained on.
  """
  config = configs.IndexConfig(
      data_dir=common_flags.data_dir_of_run(common_flags.saved_run()), output_dir=index_dir(),
      backend=BACKEND.value, split=GALLERY_SPLIT.value, features=INDEX_FEATURES.value,
      overwrite=INDEX_OVERWRITE.value, model_dir=common_flags.MODEL_DIR.value or "",
      exact_chunk_size=EXACT_CHUNK_SIZE.value, ivf_nlist=IVF_NLIST.value,
      ivf_nprobe=IVF_NPROBE.value, hnsw_m=HNSW_M.value,
      hnsw_ef_construction=HNSW_EF_CONSTRUCTION.value, hnsw_ef_search=HNSW_EF_SEARCH.value,
      scann_num_leaves=SCANN_NUM_LEAVES.value,
      scann_leaves_to_search=SCANN_LEAVES_TO_SEARCH.value, scann_reorder=SCANN_REORDER.value,
      scann_min_partitioned=SCANN_MIN_PARTITIONED.value)
  config.validate()
  return config
