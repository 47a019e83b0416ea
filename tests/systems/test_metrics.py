"""Quality metrics against reference implementations, and the metric systems.

References (test-only dependencies, skipped when missing): scikit-image's
``structural_similarity`` and ``pytorch_msssim`` (on CPU torch).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage

from vaerans_ecs.components import RGB, BlurRGB, ReconRGB, Residual
from vaerans_ecs.core import SYSTEMS, World
from vaerans_ecs.errors import ConfigError, MissingComponentError, VaeransError
from vaerans_ecs.systems import ComputeResidual
from vaerans_ecs.systems.metrics import (
    GaussianBlur,
    Metrics,
    QualityMetrics,
    luma,
    ms_ssim,
    ms_ssim_db,
    mse,
    psnr,
    psnr_y,
    ssim,
)

U8 = npt.NDArray[np.uint8]
KODAK = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "kodak"


def natural(h: int, w: int, seed: int = 0) -> U8:
    """Smooth structures plus texture, like a photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([128 + 70 * np.sin(xx / 11 + yy / 17), 120 + 60 * np.cos(yy / 9), 130 + 50 * np.sin(xx / 6)], -1)
    texture = ndimage.gaussian_filter(rng.normal(0, 40, (h, w, 3)), sigma=(1.5, 1.5, 0))
    out: U8 = np.clip(base + texture, 0, 255).astype(np.uint8)
    return out


def degrade(img: U8, noise: float, seed: int = 1) -> U8:
    rng = np.random.default_rng(seed)
    blurred = ndimage.gaussian_filter(img.astype(np.float64), sigma=(1.0, 1.0, 0))
    out: U8 = np.clip(np.rint(blurred + rng.normal(0, noise, img.shape)), 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------- PSNR
def test_psnr_known_values() -> None:
    a = np.zeros((4, 5, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 6  # one error of 6 over 60 values: MSE 36/60
    assert mse(a, b) == pytest.approx(0.6)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 0.6))
    assert psnr(a, a) == math.inf
    assert psnr(a.astype(np.float32) / 255, b.astype(np.float32) / 255, data_range=1.0) == pytest.approx(psnr(a, b))


def test_psnr_y_uses_bt601_luma() -> None:
    a = natural(16, 24)
    b = degrade(a, 5.0)
    y = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    yb = 0.299 * b[..., 0] + 0.587 * b[..., 1] + 0.114 * b[..., 2]
    np.testing.assert_allclose(luma(a), y)
    assert psnr_y(a, b) == pytest.approx(10 * math.log10(255**2 / np.mean((y - yb) ** 2)))
    # A pure chroma change that keeps luma: infinite luma PSNR, finite RGB PSNR.
    c = a.astype(np.float64)
    c[..., 0] += 0.587 * 2
    c[..., 1] -= 0.299 * 2
    assert psnr_y(a, c) > 200 and psnr(a, c) < 60


def test_shape_checks() -> None:
    with pytest.raises(VaeransError, match="differ in shape"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
    with pytest.raises(VaeransError, match="HxW"):
        ssim(np.zeros(5), np.zeros(5))
    with pytest.raises(VaeransError, match="channels"):
        ssim(np.zeros((20, 20, 3)), np.zeros((20, 20, 3)), channels="lab")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- SSIM
def test_ssim_identity_and_range() -> None:
    a = natural(40, 50)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ms_ssim(a, a) == pytest.approx(1.0)
    b = degrade(a, 20.0)
    assert 0.0 < ssim(a, b) < 1.0
    assert 0.0 < ms_ssim(a, b) < 1.0


@pytest.mark.parametrize(("h", "w", "noise"), [(64, 80, 4.0), (97, 61, 25.0), (33, 200, 60.0)])
def test_ssim_matches_scikit_image(h: int, w: int, noise: float) -> None:
    skm = pytest.importorskip("skimage.metrics", reason="scikit-image (test reference) not installed")
    a = natural(h, w, seed=h)
    b = degrade(a, noise, seed=w)
    kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255}
    ref = skm.structural_similarity(a, b, channel_axis=2, **kw)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-4)
    ref_y = skm.structural_similarity(luma(a), luma(b), **kw)
    assert ssim(a, b, channels="y") == pytest.approx(ref_y, abs=1e-4)
    ref_gray = skm.structural_similarity(a[..., 1], b[..., 1], **kw)
    assert ssim(a[..., 1], b[..., 1]) == pytest.approx(ref_gray, abs=1e-4)


def _torch_ms_ssim(a: U8, b: U8) -> tuple[float, float]:
    torch = pytest.importorskip("torch")
    pm = pytest.importorskip("pytorch_msssim", reason="pytorch-msssim (test reference) not installed")
    x = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]
    y = torch.from_numpy(b.astype(np.float64)).permute(2, 0, 1)[None]
    return float(pm.ms_ssim(x, y, data_range=255)), float(pm.ssim(x, y, data_range=255))


@pytest.mark.parametrize(("h", "w", "noise"), [(192, 256, 6.0), (200, 176, 30.0)])
def test_ms_ssim_matches_pytorch_msssim(h: int, w: int, noise: float) -> None:
    a = natural(h, w, seed=3)
    b = degrade(a, noise, seed=4)
    ref_ms, ref_ssim = _torch_ms_ssim(a, b)
    assert ms_ssim(a, b) == pytest.approx(ref_ms, abs=1e-4)
    assert ssim(a, b) == pytest.approx(ref_ssim, abs=1e-4)


def test_ms_ssim_small_images_use_fewer_scales() -> None:
    a = natural(48, 60)
    b = degrade(a, 10.0)
    # 48 -> 24 -> 12: three scales, weights renormalised; equals the explicit 3-weight call.
    w3 = tuple(w / (0.0448 + 0.2856 + 0.3001) for w in (0.0448, 0.2856, 0.3001))
    assert ms_ssim(a, b) == pytest.approx(ms_ssim(a, b, weights=w3), abs=1e-12)
    tiny = natural(6, 7)
    assert 0.0 < ms_ssim(tiny, degrade(tiny, 10.0)) <= 1.0


def test_ms_ssim_db() -> None:
    assert ms_ssim_db(0.9) == pytest.approx(10.0)
    assert ms_ssim_db(1.0) == math.inf


@pytest.mark.skipif(not KODAK.is_dir(), reason=f"Kodak images not found at {KODAK}")
def test_metrics_on_kodak_jpeg_against_references() -> None:
    import io

    from PIL import Image

    skm = pytest.importorskip("skimage.metrics", reason="scikit-image (test reference) not installed")
    with Image.open(KODAK / "kodim05.png") as im:
        a = np.ascontiguousarray(np.asarray(im.convert("RGB"))[128:384, 192:576])  # 256x384 crop: fast
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=15)
    with Image.open(buf) as im:
        b = np.asarray(im.convert("RGB"))
    ref_ms, _ = _torch_ms_ssim(a, b)
    assert ms_ssim(a, b) == pytest.approx(ref_ms, abs=1e-4)
    ref = skm.structural_similarity(
        a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(a, b) == pytest.approx(ref, abs=1e-4)
    assert psnr(a, b) == pytest.approx(skm.peak_signal_noise_ratio(a, b), abs=1e-9)


# ---------------------------------------------------------------------------------------- systems
def _world_pair(h: int = 24, w: int = 32) -> tuple[World, int, U8, U8]:
    world = World(arena_bytes=1 << 22)
    a = natural(h, w)
    b = degrade(a, 12.0)
    eid = world.spawn_image(a)
    ref = world.alloc(b.shape, np.uint8)
    world.view(ref)[...] = b
    world.add_component(eid, ReconRGB(ref=ref))
    return world, eid, a, b


def test_systems_are_registered() -> None:
    assert SYSTEMS.get("GaussianBlur") is GaussianBlur
    assert SYSTEMS.get("Residual") is ComputeResidual
    assert SYSTEMS.get("Metrics") is Metrics


def test_gaussian_blur_reads_rgb_or_recon() -> None:
    world, eid, a, b = _world_pair()
    blur = (world.pipe(eid) | GaussianBlur(sigma=1.5)).out(BlurRGB)
    expect = ndimage.gaussian_filter(a.astype(np.float32), sigma=(1.5, 1.5, 0), mode="reflect")
    np.testing.assert_allclose(world.view(blur.ref), expect, atol=1e-4)
    assert blur.sigma == 1.5
    blur2 = (world.pipe(eid).use(ReconRGB) | GaussianBlur()).out(BlurRGB)
    expect2 = ndimage.gaussian_filter(b.astype(np.float32), sigma=(1.0, 1.0, 0), mode="reflect")
    np.testing.assert_allclose(world.view(blur2.ref), expect2, atol=1e-4)
    assert GaussianBlur(sigma=0.0).get_config() == {"id": "GaussianBlur", "sigma": 0.0}
    with pytest.raises(ConfigError):
        GaussianBlur(sigma=-1.0)


def test_gaussian_blur_only_recon() -> None:
    world = World(arena_bytes=1 << 20)
    b = natural(10, 12)
    ref = world.alloc(b.shape, np.uint8)
    world.view(ref)[...] = b
    eid = world.spawn(ReconRGB(ref=ref))
    out = (world.pipe(eid) | GaussianBlur(sigma=0.0)).out(BlurRGB)
    np.testing.assert_array_equal(world.view(out.ref), b.astype(np.float32))


def test_residual_is_exact_int16() -> None:
    world, eid, a, b = _world_pair()
    res = (world.pipe(eid) | ComputeResidual()).out(Residual)
    arr = world.view(res.ref)
    assert arr.dtype == np.int16
    np.testing.assert_array_equal(arr, a.astype(np.int16) - b.astype(np.int16))


def test_metrics_system_matches_functions() -> None:
    world, eid, a, b = _world_pair(40, 48)
    m = (world.pipe(eid) | Metrics()).out(QualityMetrics)
    assert m.psnr == pytest.approx(psnr(a, b))
    assert m.psnr_y == pytest.approx(psnr_y(a, b))
    assert m.ms_ssim == pytest.approx(ms_ssim(a, b))
    assert m.mse == pytest.approx(mse(a, b))
    fast = (world.pipe(eid) | Metrics(ms_ssim=False)).out(QualityMetrics)
    assert math.isnan(fast.ms_ssim) and fast.psnr == m.psnr


def test_metrics_system_needs_both_images() -> None:
    world = World(arena_bytes=1 << 20)
    eid = world.spawn(RGB(ref=world.arena.copy_in(natural(8, 8))))
    with pytest.raises(MissingComponentError):
        (world.pipe(eid) | Metrics()).run()
