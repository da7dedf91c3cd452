"""The generate stage: photos -> Monet (CycleGAN) or noise -> Monet (DCGAN), written as JPEGs.

Which of the two a run does is its family's answer (`family.takes_photos`, `family.noise_dim`), read from
the checkpoint: this module never tests a model by name.

Speed comes from never letting the model wait: a thread pool reads (and on a CPU decodes) the
photos of the next batches ahead of it and writes (on a CPU encodes) the finished JPEGs behind it,
with bounded queues so memory stays flat however many images there are; on CUDA the JPEG codec runs
on the GPU (see Renderer). The model runs batched under inference mode, with AMP and channels_last
on CUDA as pipeline.training.runtime decides.

A provenance record (run, family, config hash, checkpoint step, raw or EMA weights) is left beside the
images as a hidden file (see provenance.py), so scoring them files the row under the run that made them.

Optionally (`generate.max_memorization`) every image is compared with the training Monets in
Inception feature space and near-copies are made again from a perturbed input, because MiFID
multiplies the score of a set that memorises (see pipeline/metrics/mifid.py).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision.io import ImageReadMode

from ..config import Config
from ..engine.errors import StageSkipped, UserError
from ..engine.progress import progress
from ..images import encode_jpeg, list_images, read_rgb
from ..metrics.extractor import inception_features
from ..metrics.features import ImageSet, InceptionFeatures, decode_rgb, find_weights
from ..metrics.mifid import nearest_real_distance, real_features, to_uint8
from ..training.checkpoint import LoadedGenerator, load_generator
from ..training.runtime import Runtime
from ..training.runtime import setup as setup_runtime
from . import provenance
from .subset import subset

PREVIEW = ".preview.png"  # hidden: neither fingerprinted as an output image nor zipped
GUARD_ATTEMPTS = 4  # perturbed re-makes of a near-copy before it is removed


@dataclass(frozen=True)
class Job:
    """One image to make: its file name and what the model turns into it."""

    name: str
    photo: Path | None = None  # a photo family: the photo to translate
    variant: int = 0  # a photo family: 0 = the photo as is, k > 0 = its k-th perturbation (see `perturb`)
    z: torch.Tensor | None = None  # a noise family: the noise vector


def build(cfg: Config, out: Path) -> str:
    """Write one JPEG per photo (a photo family) or generate.count JPEGs (a noise family) into `out`, plus a
    preview grid."""
    start = time.perf_counter()
    runtime = setup_runtime(cfg.hardware)
    loaded = load_generator(cfg.checkpoint_path, runtime.device, cfg.generate.use_ema)
    if loaded.kind != cfg.train.model:
        raise UserError(f"{cfg.checkpoint_path} holds a {loaded.kind} but train.model is {cfg.train.model}; "
                        "set train.model to match or point generate.checkpoint at the right run")
    out.mkdir(parents=True)
    renderer = Renderer(cfg, loaded, runtime)
    noise = torch.Generator().manual_seed(cfg.generate.seed)
    jobs = initial_jobs(cfg, loaded, noise)
    guard_note = ""
    with ThreadPoolExecutor(max_workers=renderer.workers) as pool:
        renderer.render(jobs, out, pool, desc="generate")
        rate = len(jobs) / (time.perf_counter() - start)  # model loading included, the guard not
        if cfg.generate.max_memorization > 0:
            replaced, removed = guard_memorization(cfg, renderer, jobs, out, pool, noise)
            guard_note = (f"; memorisation guard (< {cfg.generate.max_memorization}): "
                          f"{replaced} near-copies made again, {removed} removed")
    write_preview(out, jobs)
    provenance.write(out, provenance.for_generator(cfg, loaded, cfg.checkpoint_path))
    n = len(list_images(out))
    weights = "averaged (EMA) weights" if loaded.ema else "raw weights"
    return (f"{n:,} {loaded.kind} images from step {loaded.step:,}, {weights} ({rate:.3g} images/s on "
            f"{runtime.device}){guard_note}")


def initial_jobs(cfg: Config, loaded: LoadedGenerator, noise: torch.Generator) -> list[Job]:
    """Every photo of the data set under its own name (a photo family), or generate.count noise vectors; with
    generate.subset, that many of them (see subset.py)."""
    size = cfg.generate.subset
    if loaded.family.takes_photos:
        photos = subset(list_images(cfg.raw_dir / "photo_jpg"), size, cfg.generate.seed)
        jobs = [Job(p.stem + ".jpg", photo=p) for p in photos]
        if len({j.name for j in jobs}) < len(jobs):
            raise UserError(f"{cfg.raw_dir / 'photo_jpg'}: two photos share a name up to the extension "
                            "(x.jpg and x.jpeg); rename one so that every output name is unique")
        return jobs
    # All noise drawn up front: an image depends on its index and the seed, never on the batch size.
    count = size or cfg.generate.count
    z = torch.randn(count, loaded.z_dim, generator=noise)
    return [Job(f"{i:05d}.jpg", z=z[i]) for i in range(count)]


def replacement(job: Job, attempt: int, noise: torch.Generator) -> Job:
    """The job again from a changed input: the photo's attempt-th perturbation, or fresh noise."""
    if job.photo is not None:
        return dataclasses.replace(job, variant=attempt)
    return dataclasses.replace(job, z=torch.randn(job.z.shape, generator=noise))


class Renderer:
    """The generator wrapped for throughput: jobs in, JPEG files out.

    On CUDA, JPEG decoding and encoding run on the GPU (nvJPEG through torchvision): PIL's encoder
    holds the GIL, so on a 16-core H100 host CPU threads top out near 1,000 encodes/s whatever their
    number, while the GPU encodes 4,000/s beside the model. Elsewhere PIL does both in worker threads.
    """

    def __init__(self, cfg: Config, loaded: LoadedGenerator, runtime: Runtime):
        self.G = runtime.place(loaded.family.for_generate(loaded.generator, cfg.generate.steps,
                                                          cfg.generate.seed))
        self.takes_photos = loaded.family.takes_photos
        self.runtime = runtime
        self.size = cfg.zip.image_size  # what the submission needs, whatever the model's native size
        self.quality = cfg.generate.quality
        self.batch_size = cfg.generate.batch_size
        self.workers = cfg.hardware.workers or os.cpu_count() or 1
        self.gpu_jpeg = runtime.device.type == "cuda" and _nvjpeg_works(runtime.device)
        self.progress_every_s = cfg.hardware.progress_every_s

    def prepare(self, jobs: list[Job]) -> torch.Tensor | list[torch.Tensor]:
        """A batch's input on the host (runs in a worker thread): noise, JPEG bytes, or decoded uint8 NCHW
        photos."""
        if not self.takes_photos:
            return torch.stack([j.z for j in jobs])
        if self.gpu_jpeg:
            return [torchvision.io.read_file(str(j.photo)) for j in jobs]
        photos = [read_rgb(j.photo) for j in jobs]
        # download checked them all; a file put into raw/ later was not
        for job, photo in zip(jobs, photos, strict=False):
            if photo.shape != photos[0].shape:
                first = photos[0].shape
                raise UserError(f"{job.photo}: {photo.shape[1]}x{photo.shape[0]}, but {jobs[0].photo.name} "
                                f"beside it is {first[1]}x{first[0]}: the photos must all have one size "
                                "(download.image_size); remove the odd one or re-run download")
        # NHWC arrays viewed as NCHW: channels_last in memory, as the model wants them.
        return torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2)

    @torch.inference_mode()
    def forward(self, jobs: list[Job], batch: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """uint8 N x 3 x size x size images on the device for one prepared batch."""
        dev = self.runtime.device
        if not self.takes_photos:
            x = batch.to(dev)
        else:
            photos = self.decode(batch) if self.gpu_jpeg else batch.to(dev, non_blocking=True)
            if any(j.variant for j in jobs):
                photos = torch.stack([perturb(p, j.variant) for p, j in zip(photos, jobs, strict=False)])
            x = photos.float().div_(127.5).sub_(1.0)
            fmt = torch.channels_last if self.runtime.channels_last else torch.contiguous_format
            x = x.contiguous(memory_format=fmt)
        with self.runtime.autocast():
            y = self.G(x)
        if y.shape[-2:] != (self.size, self.size):  # e.g. a 64 px DCGAN: the submission needs 256 px
            y = F.interpolate(y.float(), size=(self.size, self.size), mode="bicubic", antialias=True)
        return to_uint8(y)

    def decode(self, datas: list[torch.Tensor]) -> torch.Tensor:
        """JPEG files' bytes as a uint8 N x 3 x H x W batch on the device, decoded there by nvJPEG (the path
        where gpu_jpeg is on); a batch holding a flavour nvJPEG refuses is decoded by PIL."""
        try:
            decoded = torchvision.io.decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.runtime.device)
        except RuntimeError:  # a JPEG flavour nvJPEG refuses (e.g. progressive): PIL decodes that batch
            decoded = [torch.from_numpy(decode_rgb(bytes(d.numpy()))).permute(2, 0, 1) for d in datas]
        return torch.stack(decoded).to(self.runtime.device)

    def writers(self, images: torch.Tensor) -> list[Callable[[Path], None]]:
        """One callable per image that writes its JPEG to a path (run in worker threads)."""
        if self.gpu_jpeg:
            encoded = torchvision.io.encode_jpeg(list(images), quality=self.quality)
            return [functools.partial(_write_bytes, e.cpu().numpy()) for e in encoded]
        arrays = images.permute(0, 2, 3, 1).cpu().numpy()
        return [functools.partial(_write_jpeg, a, self.quality) for a in arrays]

    def render(self, jobs: list[Job], out: Path, pool: ThreadPoolExecutor, desc: str) -> None:
        """Read ahead, run the model, encode, write behind; at most a few batches in memory at once."""
        batches = [jobs[i:i + self.batch_size] for i in range(0, len(jobs), self.batch_size)]
        ahead = max(2, self.workers)  # enough work queued on each side to keep every worker busy
        writes: deque[Future] = deque()
        with progress(len(jobs), desc, "img", every_s=self.progress_every_s) as bar:
            for group, batch in zip(batches, _in_order(pool, self.prepare, batches, ahead), strict=False):
                for job, write in zip(group, self.writers(self.forward(group, batch)), strict=False):
                    writes.append(pool.submit(write, out / job.name))
                while len(writes) > ahead * self.batch_size:
                    writes.popleft().result()
                    bar.update()
            while writes:
                writes.popleft().result()
                bar.update()


def _nvjpeg_works(dev: torch.device) -> bool:
    """Whether this torchvision can encode JPEGs on the GPU (built with nvJPEG, and a recent enough
    version)."""
    try:
        torchvision.io.encode_jpeg([torch.zeros(3, 8, 8, dtype=torch.uint8, device=dev)], quality=90)
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    return True


def _in_order(pool: ThreadPoolExecutor, fn: Callable, items: Iterable, ahead: int) -> Iterator:
    """fn over items in the pool, results in order, never more than `ahead` submitted but not yet taken."""
    pending: deque[Future] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _write_jpeg(image: np.ndarray, quality: int, path: Path) -> None:
    path.write_bytes(encode_jpeg(image, quality))


def _write_bytes(data: np.ndarray, path: Path) -> None:
    path.write_bytes(data.tobytes())


def perturb(photo: torch.Tensor, variant: int) -> torch.Tensor:
    """A uint8 3 x H x W photo as is (variant 0), or its variant-th small change: mirrored (odd variants),
    centre-cropped by 5% a side per two variants and scaled back (variants 2 and up)."""
    if variant == 0:
        return photo
    h, w = photo.shape[-2:]
    dy, dx = int(h * 0.05 * (variant // 2)), int(w * 0.05 * (variant // 2))
    if dy or dx:
        crop = photo[None, :, dy:h - dy, dx:w - dx].float()
        photo = F.interpolate(crop, size=(h, w), mode="bicubic", antialias=True)[0].round().clamp(0,
                                                                                                  255).byte()
    return photo.flip(-1) if variant % 2 else photo


def guard_memorization(cfg: Config, renderer: Renderer, jobs: list[Job], out: Path, pool: ThreadPoolExecutor,
                       noise: torch.Generator) -> tuple[int, int]:
    """Make again every image closer than generate.max_memorization to a training Monet; (made again,
    removed).

    Each near-copy is re-made from a changed input (see `replacement`) up to GUARD_ATTEMPTS times;
    one that is still too close after that is removed rather than submitted.
    """
    try:
        weights = find_weights(cfg.score.weights)
    except StageSkipped as exc:
        raise UserError(f"generate.max_memorization needs the FID Inception weights: {exc}; "
                        "or set generate.max_memorization=0") from None
    extractor = inception_features(cfg, weights, renderer.runtime.device)
    real = real_features(cfg.raw_dir / "monet_jpg", extractor, cfg.cache_dir)
    threshold = cfg.generate.max_memorization
    close = near_copies(ImageSet(out, tuple(j.name for j in jobs)), extractor, real, threshold)
    found = len(close)
    by_name = {j.name: j for j in jobs}
    for attempt in range(1, GUARD_ATTEMPTS + 1):
        if not close:
            break
        remake = [replacement(by_name[name], attempt, noise) for name in close]
        renderer.render(remake, out, pool, desc=f"guard: making {len(close)} again")
        close = near_copies(ImageSet(out, tuple(close)), extractor, real, threshold)
    for name in close:
        (out / name).unlink()
    return found - len(close), len(close)


def near_copies(images: ImageSet, extractor: InceptionFeatures, real_feats: np.ndarray,
                threshold: float) -> list[str]:
    """Names of the images whose nearest real image lies closer than `threshold` (1 - |cos| of Inception
    features)."""
    feats = extractor.of_set(images, desc="memorisation guard")
    return [name for name, d in zip(images.names, nearest_real_distance(feats, real_feats),
                                    strict=False) if d < threshold]


def write_preview(out: Path, jobs: list[Job], tiles_max: int = 16, tile: int = 128, cols: int = 4) -> None:
    """A small grid PNG of the first outputs (each after its photo when translating) as out/.preview.png."""
    tiles: list[Path] = []
    for job in jobs:
        if len(tiles) >= tiles_max:
            break
        if (out / job.name).exists():  # the guard may have removed it
            tiles += [job.photo, out / job.name] if job.photo is not None else [out / job.name]
    rows = max(1, -(-len(tiles) // cols))
    sheet = Image.new("RGB", (cols * tile, rows * tile), "white")
    for i, path in enumerate(tiles):
        with Image.open(path) as img:
            sheet.paste(img.convert("RGB").resize((tile, tile), Image.BILINEAR),
                        ((i % cols) * tile, (i // cols) * tile))
    sheet.save(out / PREVIEW)
