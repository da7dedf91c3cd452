"""MiFID as Kaggle computes it: FID of Inception features, divided by a memorisation penalty.

    FID      = |mu_g - mu_r|^2 + Tr(S_g + S_r - 2 sqrtm(S_g S_r))      (np.cov, N-1; float64)
    d        = mean over generated of min over real of 1 - |cos(g, r)|  (zero-sum rows dropped)
    d_thr    = d if d < epsilon else 1
    MiFID    = FID / (d_thr + 1e-14)

The matrix square root is taken in the symmetric eigen form: with any factor F, F^T F = S_r,
Tr sqrtm(S_g S_r) = sum sqrt(eig(F S_g F^T)), a symmetric PSD matrix, so `eigh` applies and tiny
negative eigenvalues of a singular product are clipped instead of failing the way `scipy.linalg.sqrtm`
does. With features at hand F can be the centred samples (300 x 2048 for the Monets), which makes
the eigen problem 300 x 300: exact, and seconds faster than any 2048 x 2048 square root.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .features import ImageSet, InceptionFeatures, open_images


@dataclass(frozen=True)
class Score:
    fid: float
    distance: float  # memorisation distance d (before thresholding)
    mifid: float
    n_gen: int
    n_real: int

    def as_dict(self) -> dict[str, float | int]:
        return {"fid": self.fid, "distance": self.distance, "mifid": self.mifid,
                "n_gen": self.n_gen, "n_real": self.n_real}


def _sum_sqrt_eig(m: np.ndarray) -> float:
    """Tr sqrtm(m) of a symmetric PSD matrix; round-off negatives (singular m) count as zero."""
    return float(np.sqrt(np.linalg.eigvalsh((m + m.T) / 2).clip(min=0)).sum())


def _sample_factor(feats: np.ndarray) -> np.ndarray:
    """F with F^T F = np.cov(feats, rowvar=False): the centred rows over sqrt(N - 1)."""
    return (feats - feats.mean(axis=0)) / np.sqrt(len(feats) - 1)


def _eigen_factor(sigma: np.ndarray) -> np.ndarray:
    """F with F^T F = sigma, from its eigen decomposition (F = sigma^1/2 up to a rotation)."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(w.clip(min=0))).T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """FID from statistics, as pytorch-fid's `calculate_frechet_distance` defines it (same fallback)."""
    for a in (mu1, sigma1, mu2, sigma2):
        if not np.isfinite(a).all():
            raise ValueError("FID statistics contain NaN or inf (fp16 overflow? try score.half=false)")
    f2 = _eigen_factor(sigma2)
    tr_covmean = _sum_sqrt_eig(f2 @ sigma1 @ f2.T)
    if not np.isfinite(tr_covmean):  # pytorch-fid's answer to a product it cannot take the root of
        offset = np.eye(len(sigma1)) * eps
        f2 = _eigen_factor(sigma2 + offset)
        tr_covmean = _sum_sqrt_eig(f2 @ (sigma1 + offset) @ f2.T)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid_from_features(gen: np.ndarray, real: np.ndarray) -> float:
    """FID of two feature sets (rows = images); exact, in float64."""
    gen, real = np.asarray(gen, np.float64), np.asarray(real, np.float64)
    if min(len(gen), len(real)) < 2:
        raise ValueError("FID needs at least 2 images in each set")
    if not (np.isfinite(gen).all() and np.isfinite(real).all()):
        raise ValueError("Inception features contain NaN or inf (fp16 overflow? try score.half=false)")
    if min(len(gen), len(real)) > gen.shape[1]:  # both sets outnumber the dimensions: d x d is the small side
        return frechet_distance(gen.mean(0), np.cov(gen, rowvar=False),
                                real.mean(0), np.cov(real, rowvar=False))
    fg, fr = _sample_factor(gen), _sample_factor(real)
    c = fr @ fg.T  # F_r S_g F_r^T = c c^T, whose eigenvalues are those of c^T c too: take the smaller
    tr_covmean = _sum_sqrt_eig(c @ c.T if c.shape[0] <= c.shape[1] else c.T @ c)
    diff = gen.mean(0) - real.mean(0)
    return float(diff @ diff + (fg * fg).sum() + (fr * fr).sum() - 2 * tr_covmean)


def _unit_rows(feats: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1; an all-zero row stays zero (it is then at distance 1 from everything)."""
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return np.divide(feats, norms, out=np.zeros_like(feats, dtype=np.float64), where=norms > 0)


def nearest_real_distance(gen_feats: np.ndarray, real_feats: np.ndarray) -> np.ndarray:
    """For each generated image, 1 - |cos| to its nearest real image (the memorisation guard's measure)."""
    real = np.asarray(real_feats, np.float64)
    real = _unit_rows(real[real.sum(axis=1) != 0])  # Kaggle drops feature rows that sum to zero
    gen = _unit_rows(np.asarray(gen_feats, np.float64))
    # In blocks of generated rows, so that 10,000 x 10,000 sets never hold the whole matrix.
    return np.concatenate([(1.0 - np.abs(gen[i:i + 2048] @ real.T)).min(axis=1)
                           for i in range(0, len(gen), 2048)] or [np.zeros(0)])


def memorization_distance(gen_feats: np.ndarray, real_feats: np.ndarray) -> float:
    """Kaggle's d: the mean over generated images (zero-sum rows dropped) of the nearest-real distance."""
    gen = np.asarray(gen_feats, np.float64)
    return float(nearest_real_distance(gen[gen.sum(axis=1) != 0], real_feats).mean())


def mifid(fid: float, distance: float, epsilon: float = 0.1) -> float:
    """FID divided by the thresholded distance: only sets closer than epsilon to the real ones pay."""
    d_thr = distance if distance < epsilon else 1.0
    return fid / (d_thr + 1e-14)


def score_features(gen: np.ndarray, real: np.ndarray, epsilon: float = 0.1) -> Score:
    fid = fid_from_features(gen, real)
    distance = memorization_distance(gen, real)
    return Score(fid, distance, mifid(fid, distance, epsilon), len(gen), len(real))


def real_features(images: Path | ImageSet, extractor: InceptionFeatures, cache_dir: Path) -> np.ndarray:
    """Features of the real set (a folder, a zip, or a set already chosen from one), cached per image."""
    if isinstance(images, ImageSet):
        return extractor.of_set(images, desc="real features", cache_dir=cache_dir)
    with open_images(images) as image_set:
        return real_features(image_set, extractor, cache_dir)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] quantised as the generate stage writes them, so scores match files."""
    return images.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
