"""HEAR 2021 evaluation on today's Python: the eval kit's embedding files, prediction protocol and leaderboard row.

* :mod:`.embed` (``m2d-eval hear-embed``) writes embeddings of HEAR task folders in the eval kit's on-disk format;
* :mod:`.predict` (``m2d-eval hear-predict``) trains the kit's downstream MLP with its grid, splits, early stopping
  and metrics, and writes ``test.predicted-scores.json``;
* :mod:`.leaderboard` (``m2d-eval hear-leaderboard``) turns the scores into a row of the HEAR leaderboard CSV.

The official kit (hearbenchmark/hear-eval-kit 2021.1.3) was read for the facts; this is an independent
implementation in plain PyTorch (no Lightning).
"""
