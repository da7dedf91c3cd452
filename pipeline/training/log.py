"""What a run shows while and after it trains: losses.csv, loss_plot.png, samples/step_XXXXXX.png,
samples.gif, and the same rows and grids as TensorBoard event files where the package is installed
(tensorboard.py).

The loss plot draws every column but the bookkeeping ones; a `resolution` column (a family that grows,
ProGAN) is drawn as a labelled vertical line where it changes instead.

Only rank 0 writes (the others get a TrainLog with enabled=False). The CSV is appended a row at a time;
on resume, rows past the checkpoint's step (steps that will be trained again) are dropped first.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from ..engine import atomic
from .tensorboard import Board

GIF_FRAMES = 60  # at most this many grids in samples.gif, evenly spread over training
GIF_WIDTH = 768


class TrainLog:
    def __init__(self, run_dir: Path, enabled: bool, resume_step: int) -> None:
        self.run_dir, self.enabled = run_dir, enabled
        self.csv_path = run_dir / "losses.csv"
        self.samples_dir = run_dir / "samples"
        self.board: Board | None = None
        if enabled:
            self.samples_dir.mkdir(parents=True, exist_ok=True)
            self._truncate(resume_step)
            self.board = Board.open(run_dir, resume_step)

    def _truncate(self, step: int) -> None:
        kept = [r for r in read_csv(self.csv_path) if int(r["step"]) <= step]
        if not kept:
            self.csv_path.unlink(missing_ok=True)
            return
        buf = io.StringIO()  # rewritten whole: this also drops a last line cut short by a kill
        writer = csv.DictWriter(buf, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
        atomic.write_text(self.csv_path, buf.getvalue())

    def row(self, values: dict[str, float | int]) -> None:
        if not self.enabled:
            return
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(values))
            if new:
                writer.writeheader()
            writer.writerow(values)
        if self.board is not None:
            self.board.row(values)

    def grid(self, step: int, images: torch.Tensor, nrow: int) -> Path | None:
        """Save images in [-1, 1] as one PNG grid named by the step."""
        if not self.enabled:
            return None
        grid = make_grid(images.float().clamp(-1, 1).add(1).mul(127.5), nrow=nrow, padding=2, pad_value=255)
        pixels = grid.round().byte().cpu()
        buf = io.BytesIO()
        Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buf, "PNG")
        path = self.samples_dir / f"step_{step:06d}.png"
        atomic.write_bytes(path, buf.getvalue())
        if self.board is not None:
            self.board.grid(step, pixels)
        return path

    def finish(self) -> None:
        """The loss plot and the animated GIF of the grids, from everything written so far; the event files
        closed."""
        if not self.enabled:
            return
        if self.board is not None:
            self.board.close()
        plot_losses(self.csv_path, self.run_dir / "loss_plot.png")
        frames = sorted(self.samples_dir.glob("step_*.png"))
        if frames:
            write_gif(frames, self.run_dir / "samples.gif")


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of losses.csv; a last line cut short by a kill is dropped."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if None not in r.values() and all(v != "" for v in r.values())]


def plot_losses(csv_path: Path, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_csv(csv_path)
    if not rows:
        return
    names = [k for k in rows[0] if k not in ("step", "epoch", "seconds", "lr", "resolution")]
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.8 * len(names) + 0.6), sharex=True, squeeze=False)
    changes = phase_changes(rows)
    for ax, name in zip(axes[:, 0], names, strict=False):
        ax.plot(steps, [float(r[name]) for r in rows], lw=1)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        for step in changes:
            ax.axvline(step, color="0.5", lw=0.8, ls="--")
    for step, label in changes.items():
        axes[0, 0].annotate(label, (step, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -2),
                            textcoords="offset points", va="top", fontsize=8, color="0.3")
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(f"{csv_path.parent.name}: training losses (mean per log interval)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic.write_bytes(target, buf.getvalue())


def phase_changes(rows: list[dict[str, str]]) -> dict[int, str]:
    """{first logged step at a new resolution: "64x64"} from a `resolution` column (none without one)."""
    changes, before = {}, None
    for row in rows:
        res = row.get("resolution")
        if res is not None and before is not None and res != before:
            changes[int(row["step"])] = f"{float(res):g}x{float(res):g}"
        before = res
    return changes


def write_gif(frames: list[Path], target: Path) -> None:
    n = min(GIF_FRAMES, len(frames))
    images = []
    for path in (frames[round(i * (len(frames) - 1) / max(1, n - 1))] for i in range(n)):
        with Image.open(path) as img:
            scale = min(1.0, GIF_WIDTH / img.width)
            images.append(img.convert("RGB").resize((round(img.width * scale), round(img.height * scale))))
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=400, loop=0)
    atomic.write_bytes(target, buf.getvalue())
