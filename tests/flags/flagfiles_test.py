"""Every experiments/**/*.flags file parses and converts to a valid config."""

from __future__ import annotations

import glob
import os

from absl import flags
from absl.testing import flagsaver
import pytest

from flags import builder_flags
from flags import conditional_flags
from flags import eval_flags
from flags import index_flags
from flags import serve_flags
from flags import train_flags

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAGFILES = sorted(glob.glob(os.path.join(ROOT, "experiments", "**", "*.flags"), recursive=True))


def _parse(path: str, *extra: str) -> None:
  FLAGS.unparse_flags()
  FLAGS(["prog", f"--flagfile={path}", *extra])


def test_there_are_experiments():
  names = {os.path.relpath(p, ROOT) for p in FLAGFILES}
  for dataset in ("synthetic", "ikea"):
    for method in ("cst", "cycle", "tpaneg", "integrated"):
      assert f"experiments/{dataset}/{method}.flags" in names
      assert f"experiments/smoke/{method}.flags" in names


@pytest.mark.parametrize("path", FLAGFILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_flagfile_parses(path, monkeypatch):
  monkeypatch.chdir(ROOT)
  with flagsaver.flagsaver():
    if "/build/" in path:
      _parse(path)
      config = builder_flags.builder_config_from_flags()
      assert config.output_dir
    elif "/serve/" in path:
      _parse(path)
      index = index_flags.index_config_from_flags()
      serve = serve_flags.serve_config_from_flags()
      assert index.output_dir == serve.index_dir
      assert serve.model.hidden_dim == train_flags.train_config_from_flags().model.hidden_dim
    elif "/common/" in path:
      _parse(path, "--data_dir=d", "--model_dir=m")
      train_flags.train_config_from_flags()
    elif "/conditional/" in path:
      _parse(path)
      assert conditional_flags.conditional_config_from_flags().data_dir
    else:
      _parse(path, "--data_dir=d", "--model_dir=m")
      train = train_flags.train_config_from_flags()
      evaluation = eval_flags.eval_config_from_flags()
      assert train.model == evaluation.model
      assert (evaluation.rerank == "icfrr") == ("/rerank/" in path)
      if path.endswith(("tpaneg.flags", "integrated.flags")):
        assert train.loss.use_tpaneg
      if path.endswith(("cycle.flags", "integrated.flags")):
        assert train.loss.use_cycle_loss


def test_misspelled_flag_fails(tmp_path):
  bad = tmp_path / "bad.flags"
  bad.write_text("--use_cycle_los\n")
  with flagsaver.flagsaver():
    with pytest.raises(flags.UnrecognizedFlagError, match="use_cycle_los"):
      _parse(str(bad))


def test_wrong_type_fails(tmp_path):
  bad = tmp_path / "bad.flags"
  bad.write_text("--batch_size=many\n")
  with flagsaver.flagsaver():
    with pytest.raises(flags.IllegalFlagValueError, match="batch_size"):
      _parse(str(bad))


@pytest.mark.parametrize("extra, message", [
    (["--use_tpaneg", "--candidate_neg_num=0"], "candidate_neg_num"),
    (["--hidden_dim=30", "--num_heads=4"], "divisible"),
    (["--tpaneg_gamma_start=0.9", "--tpaneg_gamma_end=0.5", "--use_tpaneg"], "gamma"),
    (["--model=nope"], "unknown model 'nope'"),
    (["--batch_size=1"], "batch_size"),
])
def test_contradictions_fail_before_work(extra, message):
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["prog", "--data_dir=d", "--model_dir=m", *extra])
    with pytest.raises(ValueError, match=message):
      # No shards at d: the data-sized defaults are given the train sets to size for.
      train_flags.train_config_from_flags(num_train_sets=400)


def test_missing_required_flag():
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["prog", "--model_dir=m"])
    with pytest.raises(flags.ValidationError, match="--data_dir is required"):
      train_flags.train_config_from_flags()
