"""Which sets get a collage: those with their own photo first, drawn with the eval seed."""

import numpy as np

from keras_models.reporting import figures


def test_sets_with_a_photo_are_drawn_first():
  candidates = np.array([0, 2, 3, 5, 8, 9])
  photos = np.array(["", "", "", "r3.jpg", "", "r5.jpg", "", "", "", "r9.jpg"])
  assert figures._choose_sets(candidates, photos, 2, seed=0) in ([3, 5], [3, 9], [5, 9])
  chosen = figures._choose_sets(candidates, photos, 4, seed=0)
  assert len(chosen) == 4 and {3, 5, 9} < set(chosen) and chosen == sorted(chosen)
  assert sorted(figures._choose_sets(candidates, photos, 10, seed=0)) == candidates.tolist()


def test_without_photos_the_draw_is_the_seeded_choice():
  candidates = np.arange(40, 60)
  expected = sorted(np.random.default_rng(7).choice(candidates, 5, replace=False).tolist())
  assert figures._choose_sets(candidates, np.full(60, ""), 5, seed=7) == expected
  assert figures._choose_sets(candidates, np.full(60, ""), 0, seed=7) == []
