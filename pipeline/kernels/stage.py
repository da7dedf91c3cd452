"""The kernel stage: kernels/<slug>/ = kernel-metadata.json + the notebook (builder.py), cached as stages are.

It lives here rather than in stages.py because it is the Kaggle side's own: the data stages below it never
need it, and the commands that push notebooks (submit, train-kaggle, sweep) and the CLI take it from here.
Its input is the pipeline package itself: the notebook carries the code, so any change to it rebuilds. The
FID weights' dataset it attaches counts among its settings as resolved (uploads.py): `make upload-weights`
rebuilds a kernel that had none.
"""
from __future__ import annotations

from pathlib import Path

from ..engine.keys import PACKAGE_ROOT
from ..engine.stage import Stage
from .uploads import weights_dataset

KERNEL = Stage(
    "kernel", "build the Kaggle notebook kernel that runs this pipeline on Kaggle, in kernels/<slug>",
    build=".kernels.builder:build", output=lambda c: Path("kernels") / c.kernel.kernel_slug,
    inputs=lambda c: [PACKAGE_ROOT],
    settings=lambda c: {"kernel": c.kernel, "competition": c.download.competition,
                        "sessions": c.train.sessions, "weights": weights_dataset(c)})
