"""vemscope training: pack annotated sections, fit the 2D U-Net, export ONNX + a model card.

Driven by `vemscope train` (scripts/train/command.ts), which prints the progress; usable by hand too:
  python3 train.py pack --spec spec.json --out data.npz
  python3 train.py pack --spec spec.json --out data.npz --compact   # LZMA + delta: ~25% smaller, to carry to a GPU
  python3 train.py fit --data data.npz [more.npz ...] --out DIR [--iters N] [--minutes M] [--seed S]
  python3 train.py export --weights DIR/best.pt --out DIR            # ONNX + card from saved best weights

Progress and results go to stdout as JSON lines ({"event": ...}); errors to stderr with a non-zero exit.

Partial labels: a source annotates only some classes (the real mitochondria data: only "mito"). Its other
pixels are "none of the annotated classes", so the loss compares each annotated class against the merged
probability of every class it does not annotate (marginal cross-entropy), and Dice is taken on annotated
classes only. Fully annotated sources (a class volume) use all seven classes.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet import CLASS_NAMES, NORMALISATION, SIZE_MULTIPLE, UNet  # noqa: E402

CODES = {name: i for i, name in enumerate(CLASS_NAMES)}
UNLABELLED = 255  # a pixel no one vouches for (a pseudo-label the model was unsure of): no loss there


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def fail(msg: str) -> None:
    print(f"vemscope train: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


# ---------------------------------------------------------------- reading sources

def read_stack(path: str) -> np.ndarray:
    """A multi-page TIFF or a folder of PNG/TIFF sections sorted by name -> [z, y, x]."""
    import tifffile
    from skimage import io

    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith((".png", ".tif", ".tiff")))
        if not names:
            fail(f"{path}: folder has no .png/.tif sections")
        planes = []
        for n in names:
            a = io.imread(os.path.join(path, n))
            if a.ndim == 3:  # RGB(A) screenshots of masks: take the first channel
                a = a[..., 0]
            planes.append(a)
        shapes = {p.shape for p in planes}
        if len(shapes) != 1:
            fail(f"{path}: sections differ in size: {sorted(shapes)}")
        return np.stack(planes)
    if not os.path.exists(path):
        fail(f"{path}: no such file or folder")
    a = tifffile.imread(path)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        fail(f"{path}: expected a 2D or 3D greyscale stack, got shape {a.shape}")
    return a


def load_source(src: dict) -> dict:
    name = src.get("name") or os.path.basename(os.path.normpath(src["images"]))
    images = read_stack(src["images"])
    zr = src.get("z_range")
    if zr is not None and not (isinstance(zr, list) and len(zr) == 2 and 0 <= zr[0] < zr[1] <= images.shape[0]):
        fail(f"source {name}: z_range must be [start, stop) within 0..{images.shape[0]}, got {zr!r}")
    sel = slice(zr[0], zr[1]) if zr else slice(None)
    images = images[sel]
    if images.dtype not in (np.uint8, np.uint16):
        fail(f"{src['images']}: images must be 8- or 16-bit, got {images.dtype}")
    px = src.get("pixel_nm")
    if px is not None:
        px = [px, px] if isinstance(px, (int, float)) else px
        if not (isinstance(px, list) and len(px) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in px)):
            fail(f"source {name}: pixel_nm must be a positive number or [x, y] in nm, got {src.get('pixel_nm')!r}")
    common = {"weight": float(src.get("weight", 1.0)), **({"pixel_nm": [float(v) for v in px]} if px else {})}
    if "unlabelled" in src:
        return unlabelled_source(src, name, images) | common
    if "labels" in src:
        labels = read_stack(src["labels"]).astype(np.uint8)[sel]
        if labels.max() >= len(CLASS_NAMES):
            fail(f"{src['labels']}: class codes must be 0-{len(CLASS_NAMES) - 1}, found {int(labels.max())}")
        known = list(range(1, len(CLASS_NAMES)))
    else:
        masks = src.get("masks") or {}
        if not masks:
            fail(f"source {name}: give 'labels' (a class volume) or 'masks' (one folder per class)")
        labels = np.zeros(images.shape, np.uint8)
        known = []
        for cls, folder in masks.items():
            if cls not in CODES or cls == "background":
                fail(f"source {name}: unknown class {cls!r} (one of {CLASS_NAMES[1:]})")
            m = read_stack(folder)[sel]
            if m.shape != images.shape:
                fail(f"{folder}: mask shape {m.shape} differs from images {images.shape}")
            labels[m > 0] = CODES[cls]
            known.append(CODES[cls])
    if labels.shape != images.shape:
        fail(f"source {name}: labels shape {labels.shape} differs from images {images.shape}")
    z = images.shape[0]
    if "val_slices" in src:
        val = sorted(int(i) for i in src["val_slices"])
    else:  # a contiguous block at the end: neighbours of training sections would leak into validation
        n_val = max(1, round(z * float(src.get("val_fraction", 0.15)))) if z > 1 else 0
        val = list(range(z - n_val, z))
    if any(i < 0 or i >= z for i in val):
        fail(f"source {name}: validation slice outside 0..{z - 1}")
    train = [i for i in range(z) if i not in set(val)]
    return {"name": name, "images": images, "labels": labels, "known": sorted(known), "train": train, "val": val} | common


def unlabelled_source(src: dict, name: str, images: np.ndarray) -> dict:
    """Images of the data to adapt to, no annotation: every pixel UNLABELLED until fit pseudo-labels them with
    --init's model (pseudo_label) for the classes listed. All sections train; there is nothing to validate on.
    (load_source adds the weight and pixel size.)"""
    classes = src["unlabelled"]
    if "labels" in src or "masks" in src:
        fail(f"source {name}: 'unlabelled' sources have no 'labels' or 'masks'")
    if not (isinstance(classes, list) and classes and all(c in CODES and c != "background" for c in classes)):
        fail(f"source {name}: 'unlabelled' lists the classes to adapt to (of {CLASS_NAMES[1:]}), got {classes!r}")
    return {"name": name, "images": images, "labels": np.full(images.shape, UNLABELLED, np.uint8),
            "known": sorted({CODES[c] for c in classes}), "train": list(range(images.shape[0])), "val": [], "pseudo": True}


def pack(args) -> None:
    with open(args.spec) as f:
        spec = json.load(f)
    arrays, meta = {}, []
    for k, src in enumerate(spec["sources"]):
        s = load_source(src)
        arrays[f"images_{k}"] = s["images"]
        arrays[f"labels_{k}"] = s["labels"]
        meta.append({key: s[key] for key in ("name", "known", "train", "val", "weight", "pixel_nm", "pseudo") if key in s} | {"shape": list(s["images"].shape)})
        emit("packed", source=s["name"], shape=list(s["images"].shape), known=[CLASS_NAMES[c] for c in s["known"]],
             train=len(s["train"]), val=len(s["val"]))
    tmp = args.out + ".tmp.npz"
    meta_arr = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    if args.compact:
        write_compact(tmp, {"meta": meta_arr, **arrays})
    else:
        np.savez_compressed(tmp, meta=meta_arr, **arrays)
    os.replace(tmp, args.out)
    emit("pack_done", out=args.out, bytes=os.path.getsize(args.out))


def write_compact(path: str, arrays: dict) -> None:
    """An .npz that np.load reads, with LZMA members; images stored as differences along x (EM sections are
    smooth at that scale, so the differences compress ~10% better than the pixels)."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as zf:
        for name, a in arrays.items():
            if name.startswith("images_"):
                name, a = "xdelta_" + name, np.diff(a, axis=-1, prepend=np.zeros_like(a[..., :1]))
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(a))
            zf.writestr(name + ".npy", buf.getvalue())


def read_member(z, name: str) -> np.ndarray:
    if name in z.files:
        return z[name]
    d = z["xdelta_" + name]  # unsigned wrap-around makes the running sum exact
    return np.cumsum(d, axis=-1, dtype=d.dtype)


# ---------------------------------------------------------------- data

def zscore(section: np.ndarray) -> np.ndarray:
    x = section.astype(np.float32)
    return (x - x.mean()) / max(float(x.std()), 1e-3)


class Data:
    def __init__(self, paths: list, holdout: list | None = None):
        self.meta, self.sources = [], []
        for path in paths:
            if not os.path.exists(path):
                fail(f"{path}: no such packed data file")
            z = np.load(path)
            meta = json.loads(bytes(z["meta"]).decode())
            for k, m in enumerate(meta):
                imgs = read_member(z, f"images_{k}")
                labels = z[f"labels_{k}"]
                # Normalise whole sections once, exactly as inference does (tiles must see the same numbers).
                norm = np.stack([zscore(s) for s in imgs])
                self.sources.append({**m, "x": norm, "y": labels})
            self.meta += meta
        names = [s["name"] for s in self.sources]
        for h in holdout or []:
            if h not in names:
                fail(f"--holdout {h}: no source of that name (have {', '.join(names)})")
        for s in self.sources:  # a held-out source is validated on, never trained on (cross-dataset score)
            s["held_out"] = s["name"] in (holdout or [])
            if s["held_out"]:
                s["weight"] = 0.0
        weights = np.array([s["weight"] * len(s["train"]) for s in self.sources], np.float64)
        if weights.sum() <= 0:
            fail("no training sections")
        self.p = weights / weights.sum()

    def pseudo_label(self, model: torch.nn.Module, origin: str) -> None:
        """Labels for the 'unlabelled' sources from a model trained elsewhere (self-training): its confident
        answers become the truth to fit, the rest stays UNLABELLED."""
        for s in self.sources:
            if not s.get("pseudo"):
                continue
            s["y"] = np.stack([pseudo_label(model, x, s["known"]) for x in s["x"]])
            share = {CLASS_NAMES[c]: round(float((s["y"] == c).mean()), 4) for c in [0] + s["known"]}
            s["pseudo_labels"] = {"from": origin, "sure": PSEUDO_SURE, "none_below": PSEUDO_NONE, "share": share,
                                  "unlabelled": round(float((s["y"] == UNLABELLED).mean()), 4)}
            emit("pseudo_labelled", source=s["name"], **s["pseudo_labels"])

    def crop(self, rng: np.random.Generator, size: int):
        s = self.sources[rng.choice(len(self.sources), p=self.p)]
        zi = s["train"][rng.integers(len(s["train"]))]
        x, y = s["x"][zi], s["y"][zi]
        h, w = x.shape
        ch, cw = min(size, h), min(size, w)
        # A third of crops centred on an annotated (rare) class so thin and small classes are seen often.
        if rng.random() < 0.33 and s["known"]:
            cls = s["known"][rng.integers(len(s["known"]))]
            ys, xs = np.nonzero(y[:: 4, :: 4] == cls)
            if len(ys):
                j = rng.integers(len(ys))
                cy, cx = ys[j] * 4, xs[j] * 4
                y0 = int(np.clip(cy - ch // 2 + rng.integers(-ch // 4, ch // 4 + 1), 0, h - ch))
                x0 = int(np.clip(cx - cw // 2 + rng.integers(-cw // 4, cw // 4 + 1), 0, w - cw))
                return x[y0:y0 + ch, x0:x0 + cw], y[y0:y0 + ch, x0:x0 + cw], s["known"]
        y0, x0 = rng.integers(h - ch + 1), rng.integers(w - cw + 1)
        return x[y0:y0 + ch, x0:x0 + cw], y[y0:y0 + ch, x0:x0 + cw], s["known"]


def known_mask(known_lists, device) -> torch.Tensor:
    """[B, C] 1 where the class is annotated in that crop's source (background always)."""
    m = torch.zeros(len(known_lists), len(CLASS_NAMES), device=device)
    m[:, 0] = 1
    for i, k in enumerate(known_lists):
        m[i, k] = 1
    return m


# Self-training on unlabelled sections of the data to adapt to (pseudo-labels): a class where its probability, the
# mean of the section and its three mirror images, reaches PSEUDO_SURE; "none of the listed classes" where every
# listed class's is at most PSEUDO_NONE; the rest UNLABELLED. Measured with VNC held out (README, "Adapting to
# unlabelled data"): there the model is confidently wrong often (p >= 0.97 is mitochondrion only 76% of the time),
# and "none" at p <= 0.1 still covered 32% of the true mitochondria, 0.003 only 10%, hence the strict floor.
PSEUDO_SURE = 0.9
PSEUDO_NONE = 0.003


def mirrored_probabilities(model: torch.nn.Module, x: np.ndarray) -> torch.Tensor:
    """Softmax [C,H,W] averaged over the section and its mirror images (flips in y, x, both)."""
    acc = None
    for fy in (False, True):
        for fx in (False, True):
            dims = [d for d, f in ((0, fy), (1, fx)) if f]
            v = np.ascontiguousarray(np.flip(x, dims)) if dims else x
            p = torch.softmax(logits(model, v), 0).cpu()
            p = torch.flip(p, [d + 1 for d in dims]) if dims else p
            acc = p if acc is None else acc + p
    return acc / 4


def pseudo_label(model: torch.nn.Module, x: np.ndarray, known: list) -> np.ndarray:
    """A section's pseudo-labels for the classes `known` (codes), UNLABELLED where the model is unsure."""
    p = mirrored_probabilities(model, x)[known]
    lab = np.full(x.shape, UNLABELLED, np.uint8)
    lab[(p <= PSEUDO_NONE).all(0).numpy()] = 0
    top, which = p.max(0)
    sure = (top >= PSEUDO_SURE).numpy()
    lab[sure] = np.asarray(known, np.uint8)[which.numpy()[sure]]
    return lab


# Augmentation profiles. "domain" widens what one source can look like, for data from a microscope the
# training sources do not cover (cross-dataset): a wider scale range, a random monotone intensity curve (the
# modalities differ in more than contrast and brightness: FIB-SEM is flat, ssTEM has dark, thick membranes),
# Gaussian blur of random width and unsharp masking (their sharpness differs).
AUGMENTATIONS = {
    "standard": {"scale": (0.8, 1.25), "curve": 0.0, "blur_sigma": (0.0, 0.0), "sharpen": 0.0,
                 "text": "flips, 90-degree rotations, scale 0.8-1.25, rotation +-17 deg, elastic, contrast/brightness/gamma, blur, noise"},
    "domain": {"scale": (0.65, 1.5), "curve": 0.6, "blur_sigma": (0.5, 2.0), "sharpen": 0.2,
               "text": "flips, 90-degree rotations, scale 0.65-1.5, rotation +-17 deg, elastic, contrast/brightness/gamma, "
                       "random monotone intensity curve, Gaussian blur sigma 0.5-2 px, unsharp masking, noise"},
}


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """x [C,H,W]; separable, reflect-padded."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t * t) / (2 * sigma * sigma))
    k = k / k.sum()
    y = F.pad(x[None], (r, r, 0, 0), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(x.shape[0], 1, 1, -1), groups=x.shape[0])
    y = F.pad(y, (0, 0, r, r), mode="reflect")
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(x.shape[0], 1, -1, 1), groups=x.shape[0])[0]


def monotone_curve(x: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """Piecewise-linear, increasing map of z-scored values: slopes exp(U(-s, s)) between knots at -3..3, identity
    at 0, so the image keeps its order of grey levels and its mean grey but not their spacing."""
    knots = torch.linspace(-3, 3, 7, dtype=x.dtype, device=x.device)
    slopes = torch.from_numpy(np.exp(rng.uniform(-strength, strength, 8)).astype(np.float32)).to(x.device)
    # value at each knot: integral of the slopes from 0, so the curve passes near the origin
    seg = slopes[1:-1] * (knots[1:] - knots[:-1])
    vals = torch.cat([torch.zeros(1, device=x.device), torch.cumsum(seg, 0)])
    vals = vals - vals[3]
    idx = torch.bucketize(x.clamp(-3, 3), knots[1:-1])  # 0..5 inside, segment index
    lo, vlo = knots[idx], vals[idx]
    inside = vlo + (x.clamp(-3, 3) - lo) * slopes[1:-1][idx]
    # linear tails beyond +-3 with the end slopes
    return torch.where(x < -3, vals[0] + (x + 3) * slopes[0], torch.where(x > 3, vals[-1] + (x - 3) * slopes[-1], inside))


def augment(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, profile: str = "standard"):
    """Flips, 90-degree rotations, scale, rotation, elastic, intensity (AUGMENTATIONS[profile]). x [B,1,H,W] float,
    y [B,H,W] long. Runs on x's device: on a GPU the augmentation costs far less than the host-side crops."""
    a_cfg = AUGMENTATIONS[profile]
    b, _, h, w = x.shape
    dev = x.device
    if rng.random() < 0.5:
        x, y = x.flip(-1), y.flip(-1)
    if rng.random() < 0.5:
        x, y = x.flip(-2), y.flip(-2)
    k = int(rng.integers(4))
    if k and h == w:
        x, y = torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))
    # One grid_sample for scale + small rotation + elastic (smooth coarse displacement, bicubic upsampled).
    theta = torch.zeros(b, 2, 3)
    lo, hi = a_cfg["scale"]
    for i in range(b):
        s = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        a = rng.uniform(-0.3, 0.3)
        theta[i] = torch.tensor([[math.cos(a) / s, -math.sin(a) / s, 0.0], [math.sin(a) / s, math.cos(a) / s, 0.0]])
    grid = F.affine_grid(theta.to(dev), (b, 1, h, w), align_corners=False)
    coarse = torch.from_numpy(rng.normal(0, 0.03, (b, 2, 5, 5)).astype(np.float32)).to(dev)
    disp = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    grid = grid + disp
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="reflection", align_corners=False)[:, 0].long()
    # Intensity: contrast, brightness, gamma-like curve, blur or noise (all on z-scored values).
    for i in range(b):
        xi = x[i]
        if a_cfg["curve"] and rng.random() < 0.5:
            xi = monotone_curve(xi, rng, a_cfg["curve"])
        xi = xi * rng.uniform(0.7, 1.4) + rng.uniform(-0.4, 0.4)
        if rng.random() < 0.3:
            g = rng.uniform(-0.15, 0.15)
            xi = xi + g * (xi * xi - 1)
        if rng.random() < 0.25:
            if a_cfg["blur_sigma"][1]:
                xi = gaussian_blur(xi, rng.uniform(*a_cfg["blur_sigma"]))
            else:
                xi = F.avg_pool2d(xi[None], 3, 1, 1, count_include_pad=False)[0]
        elif a_cfg["sharpen"] and rng.random() < a_cfg["sharpen"]:  # (standard draws nothing here: seeds replay)
            xi = xi + rng.uniform(0.3, 1.0) * (xi - gaussian_blur(xi, rng.uniform(1.0, 2.0)))
        if rng.random() < 0.4:
            xi = xi + torch.randn_like(xi) * rng.uniform(0.05, 0.35)
        x[i] = xi
    return x, y


def losses(logits: torch.Tensor, y: torch.Tensor, kmask: torch.Tensor, class_w: torch.Tensor):
    """Marginal cross-entropy (class weighted) + soft Dice on annotated classes; UNLABELLED pixels count in neither."""
    logp = F.log_softmax(logits, dim=1)  # [B,C,H,W]
    labelled = y != UNLABELLED
    y = torch.where(labelled, y, torch.zeros_like(y))
    unknown = (1 - kmask)[:, :, None, None]
    # log P(background or any class this source does not annotate)
    other = torch.logsumexp(torch.where(unknown > 0, logp, torch.full_like(logp, -1e4)), dim=1)
    other = torch.logaddexp(other, logp[:, 0])
    picked = logp.gather(1, y[:, None])[:, 0]
    tgt_logp = torch.where(y == 0, other, picked)
    w = class_w[y] * labelled
    ce = -(w * tgt_logp).sum() / w.sum().clamp_min(1e-6)
    p = logp.exp() * labelled[:, None]
    onehot = F.one_hot(y, len(CLASS_NAMES)).permute(0, 3, 1, 2).float() * labelled[:, None]
    inter = (p * onehot).sum((2, 3))
    denom = p.sum((2, 3)) + onehot.sum((2, 3))
    dice = (2 * inter + 1) / (denom + 1)  # [B,C]
    m = kmask.clone()
    m[:, 0] = 0
    present = m * (onehot.sum((2, 3)) > 0).float()
    dice_loss = ((1 - dice) * present).sum() / present.sum().clamp_min(1)
    return ce + dice_loss, ce.item(), dice_loss.item()


# ---------------------------------------------------------------- evaluation and export

def logits(model: torch.nn.Module, x: np.ndarray) -> torch.Tensor:
    h, w = x.shape
    ph, pw = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
    dev = next(model.parameters()).device
    t = torch.from_numpy(np.pad(x, ((0, ph), (0, pw)), mode="reflect"))[None, None].to(dev)
    with torch.no_grad():
        return model(t)[0, :, :h, :w].float()


def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return logits(model, x).argmax(0).cpu().numpy().astype(np.uint8)


THRESHOLD_GRID = [round(0.30 + 0.05 * i, 2) for i in range(14)]  # 0.30 .. 0.95
AREA_GRID = [2500, 5000, 7500, 10000, 12500, 15000, 20000]  # nm^2: least fragment area per section (cleanup.ts removeSmallAreas)
CALIBRATION_SECTIONS = 16  # per source, spread evenly over its training sections


def calibration_sections(s: dict) -> list:
    """Up to CALIBRATION_SECTIONS of a source's training sections, spread evenly (where decisions are chosen)."""
    return s["train"][:: max(1, len(s["train"]) // CALIBRATION_SECTIONS)][:CALIBRATION_SECTIONS]


def choose_decision(model: torch.nn.Module, data: Data) -> dict:
    """Decision thresholds (segment.ts `decide`) for the classes learnt marginally: annotated alone on some source,
    every other class merged into "not it", with class weights and soft Dice, which push their probability up, so
    argmax over-calls them. Per such class: the probability threshold with the best mean Dice over those sources'
    training sections (never the validation ones); none when no threshold beats argmax. Fully annotated sources
    learnt argmax and get no thresholds; with the pixel size, every class gets a minimum area (choose_min_area)."""
    model.eval()
    every = set(range(1, len(CLASS_NAMES)))
    marginal: dict = {}
    for s in data.sources:
        if s.get("held_out") or s.get("pseudo") or not s["train"] or every <= set(s["known"]):
            continue
        for c in s["known"]:
            if c != 0:
                marginal.setdefault(c, []).append(s)
    thresholds, sweep, min_areas, area_sweep = {}, {}, {}, {}
    for c, sources in sorted(marginal.items()):
        dice, kept = [], []
        # The area sweep reuses the sections' maps; kept only when it will run (they are whole sections).
        sweep_areas = all("pixel_nm" in s for s in sources)
        for s in sources:
            zs = calibration_sections(s)
            k = np.zeros((len(THRESHOLD_GRID) + 1, 3))  # tp, fp, fn per threshold, then argmax
            sections = []
            for zi in zs:
                lg = logits(model, s["x"][zi])
                p, arg = torch.softmax(lg, 0)[c].cpu().numpy(), (lg.argmax(0) == c).cpu().numpy()
                t = s["y"][zi] == c
                for j, pred in enumerate([p >= g for g in THRESHOLD_GRID] + [arg]):
                    k[j] += [np.logical_and(pred, t).sum(), np.logical_and(pred, ~t).sum(), np.logical_and(~pred, t).sum()]
                if sweep_areas:
                    sections.append((p, arg, t))
            dice.append(2 * k[:, 0] / np.maximum(2 * k[:, 0] + k[:, 1] + k[:, 2], 1))
            kept.append(sections)
        mean = np.mean(dice, axis=0)
        best = int(np.argmax(mean[:-1]))
        if mean[best] > mean[-1]:
            thresholds[CLASS_NAMES[c]] = THRESHOLD_GRID[best]
        sweep[CLASS_NAMES[c]] = {"sources": [s["name"] for s in sources], "argmax_dice": round(float(mean[-1]), 4),
                                 "dice": {str(g): round(float(d), 4) for g, d in zip(THRESHOLD_GRID, mean[:-1])}}
        if sweep_areas:
            t_c = thresholds.get(CLASS_NAMES[c])
            masks = [[(p >= t_c if t_c is not None else arg, t) for p, arg, t in sec] for sec in kept]
            area, table = choose_min_area(masks, [s["pixel_nm"] for s in sources])
            if area is not None:
                min_areas[CLASS_NAMES[c]] = area
            area_sweep[CLASS_NAMES[c]] = table
    # Sources annotating every class learnt argmax, but a 2D network's specks are specks there too: each class only
    # such sources annotate (every other class is in `marginal`) gets a minimum area swept after argmax, where they
    # all give the pixel size. A source's argmax maps are made once, for all its classes.
    maps: dict = {}
    for c in sorted(every - marginal.keys()):
        sources = [s for s in data.sources if not s.get("held_out") and not s.get("pseudo") and s["train"] and c in s["known"]]
        if not sources or not all("pixel_nm" in s for s in sources):
            continue
        for s in sources:
            if id(s) not in maps:
                maps[id(s)] = [(predict(model, s["x"][zi]), s["y"][zi]) for zi in calibration_sections(s)]
        masks = [[(arg == c, y == c) for arg, y in maps[id(s)]] for s in sources]
        area, table = choose_min_area(masks, [s["pixel_nm"] for s in sources])
        if area is not None:
            min_areas[CLASS_NAMES[c]] = area
        area_sweep[CLASS_NAMES[c]] = table
    model.train()
    out = {"thresholds": thresholds,
           "rule": "a class with a threshold wins where its probability reaches it; the others by argmax",
           "how": f"train.py: per marginally annotated class, the best mean Dice over its sources' training sections "
                  f"(up to {CALIBRATION_SECTIONS} each), thresholds {THRESHOLD_GRID[0]}-{THRESHOLD_GRID[-1]}",
           "sweep": sweep}
    if area_sweep:
        out |= {"min_area_nm2": min_areas,
                "min_area_rule": "per section, 8-connected fragments of the class smaller than this (nm^2) take the class they border most",
                "min_area_how": f"train.py: with the chosen threshold (argmax for classes annotated only with all the others), "
                                f"the best mean Dice over the same sections of the areas {AREA_GRID[0]}-{AREA_GRID[-1]} nm^2 "
                                "(none where no area beats keeping every fragment; only classes whose sources all give pixel_nm)",
                "min_area_sweep": area_sweep}
    return out


def choose_min_area(masks: list, pixel_nm: list) -> tuple:
    """masks[source] = [(predicted, truth) per section]: the AREA_GRID entry with the best mean Dice after removing
    8-connected predicted fragments below it (cleanup.ts removeSmallAreas; for the class's Dice only removal matters),
    or None when none beats keeping them all. Also the sweep, for the card."""
    from scipy import ndimage

    dice = np.zeros((len(masks), len(AREA_GRID) + 1))
    for i, (sections, (px, py)) in enumerate(zip(masks, pixel_nm)):
        k = np.zeros((len(AREA_GRID) + 1, 3))
        for pred, t in sections:
            lab, n = ndimage.label(pred, structure=np.ones((3, 3), bool))
            size = np.bincount(lab.ravel(), minlength=n + 1)
            for j, a in enumerate([0] + AREA_GRID):
                keep = size >= a / (px * py)
                keep[0] = False
                q = keep[lab]
                k[j] += [np.logical_and(q, t).sum(), np.logical_and(q, ~t).sum(), np.logical_and(~q, t).sum()]
        dice[i] = 2 * k[:, 0] / np.maximum(2 * k[:, 0] + k[:, 1] + k[:, 2], 1)
    mean = dice.mean(axis=0)
    best = int(np.argmax(mean[1:])) + 1
    table = {"none": round(float(mean[0]), 4), **{str(a): round(float(d), 4) for a, d in zip(AREA_GRID, mean[1:])}}
    return (AREA_GRID[best - 1] if mean[best] > mean[0] else None), table


def validate(model: torch.nn.Module, data: Data) -> dict:
    model.eval()
    out = {}
    for s in data.sources:
        if not s["val"]:
            continue
        inter = np.zeros(len(CLASS_NAMES))
        psum = np.zeros(len(CLASS_NAMES))
        tsum = np.zeros(len(CLASS_NAMES))
        for zi in s["val"]:
            pred, truth = predict(model, s["x"][zi]), s["y"][zi]
            for c in s["known"]:
                p, t = pred == c, truth == c
                inter[c] += np.logical_and(p, t).sum()
                psum[c] += p.sum()
                tsum[c] += t.sum()
        # A class absent from truth and prediction has no score (not a Dice of 0).
        out[s["name"] + HELD_OUT_SUFFIX * bool(s.get("held_out"))] = {
            CLASS_NAMES[c]: {"dice": float(2 * inter[c] / (psum[c] + tsum[c])), "iou": float(inter[c] / (psum[c] + tsum[c] - inter[c]))}
            for c in s["known"] if psum[c] + tsum[c] > 0}
    model.train()
    return out


HELD_OUT_SUFFIX = " (held out)"


def score(val: dict) -> float:
    """Early-stopping score: mean Dice over every (source, class) validated; real mitochondria count double.
    Held-out sources are left out: choosing the iteration on them would leak into the cross-dataset score."""
    vals = []
    for src, classes in val.items():
        if src.endswith(HELD_OUT_SUFFIX):
            continue
        for cls, m in classes.items():
            vals += [m["dice"]] * (2 if cls == "mito" and len(classes) == 1 else 1)
    return float(np.mean(vals)) if vals else 0.0


CARD_METADATA_KEYS = ("thresholds", "min_area_nm2", "pixel_nm")


def card_metadata(card: dict) -> dict:
    """What the model metadata carries from the card (model.ts): the decision (`thresholds`, `min_area_nm2`) and
    `pixel_nm`, the span of the trained-on sources' pixel sizes and, widened by the augmentation's zoom range, the
    span inference accepts without resampling (segment.ts `inferenceGrid`); absent where no source gave its size."""
    d = card.get("decision", {})
    meta = {k: d[k] for k in ("thresholds", "min_area_nm2") if d.get(k)}
    sizes = [v for s in card.get("data", []) if not s.get("held_out") for v in s.get("pixel_nm", [])]
    if sizes:
        zoom = card.get("training", {}).get("zoom", AUGMENTATIONS["standard"]["scale"])
        lo, hi = min(sizes), max(sizes)
        meta["pixel_nm"] = {"trained": [lo, hi], "accepts": [round(lo / zoom[1], 3), round(hi / zoom[0], 3)]}
    return meta


def export_onnx(model: torch.nn.Module, out_dir: str, card: dict) -> None:
    """ONNX + card; the card's `decision` thresholds (choose_decision), if any, go into the metadata too."""
    import onnx

    model.eval()
    path = os.path.join(out_dir, "model.onnx")
    tmp = path + ".tmp"
    dummy = torch.zeros(1, 1, 256, 256)
    torch.onnx.export(model, dummy, tmp, input_names=["image"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}})
    m = onnx.load(tmp)
    meta = {"classes": CLASS_NAMES, "normalisation": NORMALISATION, "size_multiple": SIZE_MULTIPLE,
            "input": "float32 [n,1,h,w]", "output": "float32 logits [n,7,h,w]",
            **card_metadata(card)}
    for k, v in {"vemscope": json.dumps(meta), "model_card": json.dumps(card)}.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, tmp)
    os.replace(tmp, path)
    write_json(os.path.join(out_dir, "model-card.json"), card)
    model.train()


def write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- fit

def ema_decay(decay: float, it: int) -> float:
    """Warm-up as in timm's ModelEma: early weights are forgotten fast, so the average does not start from noise."""
    return min(decay, (1 + it) / (10 + it))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Exponential moving average of every floating tensor, batch-norm running statistics included (they move with
    each batch's mix of sources, the swing the average is for); integer buffers (BN's batch count) are copied."""
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.is_floating_point():
            e.mul_(decay).add_(m.detach(), alpha=1 - decay)
        else:
            e.copy_(m)


def fit(args) -> None:
    os.makedirs(args.out, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    else:
        torch.set_num_threads(2)  # host work is crops only; leave the cores to concurrent runs
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)
    # bf16 autocast on GPUs: the small-channel convolutions are memory-bound, half the bytes is most of the gain.
    amp = device.type == "cuda" and not args.no_amp
    data = Data(args.data, args.holdout)
    if any(s.get("pseudo") for s in data.sources):
        if args.init_weights is None:
            fail("an 'unlabelled' source needs --init WEIGHTS.pt: that model's confident answers become its labels")
        if not any(not s.get("pseudo") and not s["held_out"] and s["train"] for s in data.sources):
            fail("'unlabelled' sources need annotated ones beside them: on its own answers alone nothing corrects the model")
        data.pseudo_label(load_weights(args.init_weights).to(device).eval(), os.path.basename(args.init))
    model = UNet(args.widths, args.bottleneck).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ema = None
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    state = {"iter": 0, "best": -1.0, "since_best": 0, "history": [], "seconds": 0.0, "hardware": []}
    if os.path.exists(ckpt_path) and not args.fresh:
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ck.get("arch", {"widths": [16, 32, 64, 128], "bottleneck": 128}) != arch(args):
            fail(f"{ckpt_path}: checkpoint is of another architecture ({ck.get('arch')}); use --fresh or the same --widths")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        if args.ema and "ema" in ck:
            ema = UNet(args.widths, args.bottleneck).to(device)
            ema.load_state_dict(ck["ema"])
        rng = np.random.default_rng(args.seed + state["iter"])  # resumed runs continue a different, seeded stream
        emit("resumed", iter=state["iter"], best=state["best"])
    elif args.init:  # weights only (e.g. best.pt from a GPU run): a fresh optimiser and schedule fine-tune them
        ck = args.init_weights
        if ck["arch"] != arch(args):
            fail(f"--init {args.init}: weights are of another architecture ({ck.get('arch')}); pass the same --widths/--bottleneck")
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()})
        state["init"] = {"from": os.path.basename(args.init), "iterations": ck["card"]["training"].get("best_iteration"),
                         "hardware": ck["card"]["training"].get("hardware")}
        emit("initialised", weights=args.init)
    if args.ema and ema is None:  # fresh, --init or a checkpoint saved without one: the average starts here
        ema = UNet(args.widths, args.bottleneck).to(device)
        ema.load_state_dict(model.state_dict())
    if ema is not None:
        ema.eval()
    hw = f"{device.type}:{torch.cuda.get_device_name(0) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}"
    state["hardware"].append({"device": hw, "from_iter": state["iter"]})
    # Class weights: rare and thin classes count more (inverse sqrt frequency over annotated pixels).
    freq = np.ones(len(CLASS_NAMES))
    for s in data.sources:
        for c in range(len(CLASS_NAMES)):
            freq[c] += (s["y"][s["train"]] == c).sum()
    class_w = torch.tensor(np.clip((freq.max() / freq) ** 0.5, 1, 10), dtype=torch.float32, device=device)
    total = args.iters
    t_start = time.time()
    seconds0 = state["seconds"]
    deadline = t_start + args.minutes * 60 if args.minutes else math.inf
    model.train()
    last_save = time.time()
    it0 = state["iter"]
    while state["iter"] < total and time.time() < deadline:
        it = state["iter"]
        # Cosine decay over whichever budget binds first: iterations, or this run's minutes.
        progress = max(it / total, (time.time() - t_start) / (deadline - t_start) if args.minutes else 0.0)
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        lr = max(lr, args.lr * 0.01) * min(1.0, (it + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = lr
        xs, ys, ks = [], [], []
        for _ in range(args.batch):
            x, y, k = data.crop(rng, args.crop)
            if x.shape != (args.crop, args.crop):  # small sections: pad to the crop size
                ph, pw = args.crop - x.shape[0], args.crop - x.shape[1]
                x = np.pad(x, ((0, ph), (0, pw)), mode="reflect")
                y = np.pad(y, ((0, ph), (0, pw)), mode="reflect")
            xs.append(x)
            ys.append(y)
            ks.append(k)
        x = torch.from_numpy(np.stack(xs))[:, None]
        y = torch.from_numpy(np.stack(ys).astype(np.int64))
        x, y = augment(x.to(device), y.to(device), rng, args.augment)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss, ce, dl = losses(logits.float(), y, known_mask(ks, device), class_w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema_update(ema, model, ema_decay(args.ema, it))
        state["iter"] = it + 1
        per_iter = (time.time() - t_start) / max(1, state["iter"] - it0)
        if state["iter"] % args.log_every == 0:
            emit("iter", iter=state["iter"], total=total, loss=round(loss.item(), 4), ce=round(ce, 4), dice_loss=round(dl, 4),
                 lr=lr, s_per_iter=round(per_iter, 3), eta_s=round(per_iter * (total - state["iter"])))
        done = state["iter"] >= total or time.time() >= deadline
        if state["iter"] % args.val_every == 0 or done:
            # With --ema the average is validated, chosen and exported; the raw weights' scores are logged beside it.
            raw = validate(model, data) if ema is not None else None
            chosen = ema if ema is not None else model
            val = validate(chosen, data)
            sc = score(val)
            state["history"].append({"iter": state["iter"], "score": sc, "val": val})
            improved = sc > state["best"]
            if improved:
                state["best"], state["since_best"] = sc, 0
                state["best_val"] = val
                state["best_iter"] = state["iter"]
                state["seconds"] = seconds0 + (time.time() - t_start)
                save_weights(os.path.join(args.out, "best.pt"), chosen, args, model_card(args, data, state))
                if not args.no_onnx:
                    export_onnx(chosen, args.out, model_card(args, data, state))
            else:
                state["since_best"] += 1
            emit("val", iter=state["iter"], score=round(sc, 4), best=round(state["best"], 4), improved=improved, val=val,
                 **({"raw": {"score": round(score(raw), 4), "val": raw}} if raw is not None else {}))
            if state["since_best"] >= args.patience:
                emit("early_stop", iter=state["iter"], best=state["best"])
                done = True
        if time.time() - last_save > args.save_seconds or done:
            state["seconds"] = seconds0 + (time.time() - t_start)
            save_checkpoint(ckpt_path, model, opt, state, args, ema)
            last_save = time.time()
        if done:
            break
    state["seconds"] = seconds0 + (time.time() - t_start)
    save_checkpoint(ckpt_path, model, opt, state, args, ema)
    card = model_card(args, data, state)
    best = os.path.join(args.out, "best.pt")
    onnx_path = os.path.join(args.out, "model.onnx")
    if os.path.exists(best) and os.path.exists(onnx_path):  # thresholds of the best weights, as exported
        card["decision"] = choose_decision(load_weights(torch.load(best, map_location="cpu", weights_only=False)).to(device), data)
        emit("decision", thresholds=card["decision"]["thresholds"], min_area_nm2=card["decision"].get("min_area_nm2", {}))
    write_json(os.path.join(args.out, "model-card.json"), card)
    if os.path.exists(best):  # the final card (hardware, time) goes with the best weights
        ck = torch.load(best, map_location="cpu", weights_only=False)
        save_blob(best, {**ck, "card": card})
    if os.path.exists(onnx_path):
        # Re-embed the final card (hardware, time, decision) in the best model without changing its weights.
        import onnx
        m = onnx.load(onnx_path)
        for p in m.metadata_props:
            if p.key == "model_card":
                p.value = json.dumps(card)
            elif p.key == "vemscope":
                meta = {k: v for k, v in json.loads(p.value).items() if k not in CARD_METADATA_KEYS}
                p.value = json.dumps(meta | card_metadata(card))
        tmp = os.path.join(args.out, "model.onnx.tmp")
        onnx.save(m, tmp)
        os.replace(tmp, os.path.join(args.out, "model.onnx"))
    emit("done", iter=state["iter"], best=state["best"], out=args.out)


def arch(args) -> dict:
    return {"widths": list(args.widths), "bottleneck": args.bottleneck}


def save_blob(path: str, obj) -> None:
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(path: str, model, opt, state, args, ema=None) -> None:
    save_blob(path, {"model": model.state_dict(), "opt": opt.state_dict(), "state": state, "arch": arch(args),
                     **({"ema": ema.state_dict()} if ema is not None else {})})


def save_weights(path: str, model, args, card: dict) -> None:
    """The best weights alone (no optimiser state): small enough to fetch back from a GPU machine."""
    save_blob(path, {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "arch": arch(args), "card": card})


def cross_dataset(log_path: str) -> dict:
    """From a `fit --holdout` run's log: the held-out scores at the iteration its other sources chose."""
    best = None
    with open(log_path) as f:
        for line in f:
            e = json.loads(line) if line.startswith("{") else {}
            if e.get("event") != "val":
                continue
            held = {k[: -len(HELD_OUT_SUFFIX)]: v for k, v in e["val"].items() if k.endswith(HELD_OUT_SUFFIX)}
            sc = score(e["val"])
            if held and (best is None or sc > best["selection_score"]):
                best = {"held_out": held, "iteration": e["iter"], "selection_score": round(sc, 4)}
    if best is None:
        fail(f"{log_path}: no validation of a held-out source in this log")
    return {**best, "log": os.path.basename(log_path)}


def export(args) -> None:
    ck = torch.load(args.weights, map_location="cpu", weights_only=False)
    model = load_weights(ck)
    os.makedirs(args.out, exist_ok=True)
    card = ck["card"]
    if args.cross_dataset:
        card = {**card, "cross_dataset": [cross_dataset(log) for log in args.cross_dataset]}
    if args.data:  # float32 on this machine, as inference runs: checks the GPU's bf16-trained numbers hold
        torch.set_num_threads(os.cpu_count() or 1)
        val = validate(model, Data(args.data))
        card = {**card, "validation": val, "validation_score": score(val), "validation_note": "recomputed at export in float32 on CPU"}
        emit("revalidated", score=round(score(val), 4), val=val)
        # Sources the fit held out stay out of the choice too (they score the cross-dataset result).
        card["decision"] = choose_decision(model, Data(args.data, [d["name"] for d in card.get("data", []) if d.get("held_out")]))
        emit("decision", thresholds=card["decision"]["thresholds"], min_area_nm2=card["decision"].get("min_area_nm2", {}))
    export_onnx(model, args.out, card)
    emit("exported", out=os.path.join(args.out, "model.onnx"), iteration=ck["card"]["training"].get("best_iteration"))


def init_weights(path: str) -> dict:
    """--init's blob (save_weights' form), refused with its path when it is not one."""
    if not os.path.isfile(path):
        fail(f"--init {path}: no such file")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # pickle, zip and torch errors alike: the file is not a weights blob
        fail(f"--init {path}: not a weights file saved by train.py ({type(e).__name__}: {e})")
    if not (isinstance(ck, dict) and isinstance(ck.get("model"), dict) and isinstance(ck.get("arch"), dict) and "card" in ck):
        fail(f"--init {path}: not a weights file saved by train.py (expected best.pt's model, arch and card)")
    return ck


def load_weights(ck: dict) -> torch.nn.Module:
    """A float32 UNet with a saved blob's weights (best.pt or a checkpoint)."""
    a = ck.get("arch", {"widths": [16, 32, 64, 128], "bottleneck": 128})
    model = UNet(a["widths"], a["bottleneck"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()})
    return model


def model_card(args, data: Data, state: dict) -> dict:
    return {
        "format": "vemscope-model-card", "version": 1,
        "architecture": f"2D U-Net, {len(args.widths)} levels ({'-'.join(map(str, args.widths))}) + {args.bottleneck} bottleneck, "
                        "BN, bilinear upsampling, 7-class logits",
        "classes": CLASS_NAMES, "normalisation": NORMALISATION,
        "data": [{"name": s["name"], "shape_zyx": s["shape"], "annotated": [CLASS_NAMES[c] for c in s["known"]],
                  "train_slices": [] if s["held_out"] else s["train"], "val_slices": s["val"], "weight": s["weight"],
                  **({"pixel_nm": s["pixel_nm"]} if "pixel_nm" in s else {}),
                  **({"pseudo_labels": s["pseudo_labels"]} if "pseudo_labels" in s else {}),
                  **({"held_out": True} if s["held_out"] else {})} for s in data.sources],
        "training": {"iterations": state["iter"], "best_iteration": state.get("best_iter"), "batch": args.batch,
                     **({"initialised_from": state["init"]} if "init" in state else {}),
                     "crop": args.crop, "lr": args.lr, "seed": args.seed, "seconds": round(state["seconds"]),
                     "hardware": state["hardware"], "torch": torch.__version__,
                     "precision": "bf16 autocast" if any(h["device"].startswith("cuda") for h in state["hardware"]) and not args.no_amp else "float32",
                     "loss": "class-weighted marginal cross-entropy + soft Dice on annotated classes",
                     **({"ema_decay": args.ema} if args.ema else {}),
                     "augmentation": AUGMENTATIONS[args.augment]["text"], "zoom": list(AUGMENTATIONS[args.augment]["scale"])},
        "validation": state.get("best_val", {}), "validation_score": state["best"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="train.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--spec", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--compact", action="store_true", help="LZMA members, images delta-coded along x")
    e = sub.add_parser("export")
    e.add_argument("--weights", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--cross-dataset", nargs="*", default=[], help="logs of `fit --holdout` runs to cite in the card")
    e.add_argument("--data", nargs="*", default=[], help="packs to re-validate on before export (float32)")
    f = sub.add_parser("fit")
    f.add_argument("--data", required=True, nargs="+")
    f.add_argument("--out", required=True)
    f.add_argument("--iters", type=int, default=20000)
    f.add_argument("--minutes", type=float, default=0)
    f.add_argument("--batch", type=int, default=8)
    f.add_argument("--crop", type=int, default=192)
    f.add_argument("--lr", type=float, default=2e-3)
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--threads", type=int, default=0)
    f.add_argument("--val-every", type=int, default=250)
    f.add_argument("--log-every", type=int, default=10)
    f.add_argument("--patience", type=int, default=12)
    f.add_argument("--save-seconds", type=float, default=120)
    f.add_argument("--cpu", action="store_true")
    f.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    f.add_argument("--widths", type=lambda v: [int(t) for t in v.split(",")], default=None,
                   help="channels per level, comma-separated (4 levels: the shipped size multiple is 16); "
                        "default 16,32,64,128, or --init's")
    f.add_argument("--bottleneck", type=int, default=None, help="default 128, or --init's")
    f.add_argument("--holdout", nargs="*", default=[], help="source names validated on but never trained on")
    f.add_argument("--no-amp", action="store_true", help="float32 on GPUs too")
    f.add_argument("--no-onnx", action="store_true", help="keep best.pt only; `export` makes the ONNX later")
    f.add_argument("--augment", choices=sorted(AUGMENTATIONS), default="standard",
                   help="augmentation profile (domain: wider scale, intensity curves, blur/sharpen for other microscopes)")
    # Default on since session 15: on a source held out of the fit the average scored higher at every validation
    # (20 of 20, two seeds, +0.06 Dice on average), on the trained-on sources the same (README, "Weight averaging").
    f.add_argument("--ema", type=float, default=0.999,
                   help="validate, choose and export an exponential moving average of the weights with this decay; 0: the raw weights")
    f.add_argument("--init", help="start from these weights (best.pt of another run, or a shipped models/*.pt), "
                                  "with a fresh optimiser; their architecture unless --widths/--bottleneck say otherwise")
    args = ap.parse_args()
    if args.cmd == "pack":
        pack(args)
    elif args.cmd == "export":
        export(args)
    else:
        if args.crop % SIZE_MULTIPLE:
            fail(f"--crop must be a multiple of {SIZE_MULTIPLE}")
        if not 0 <= args.ema < 1:
            fail(f"--ema must be in [0, 1) (0: off), got {args.ema}")
        # Read once: its architecture fills in --widths/--bottleneck, its weights start the fit.
        args.init_weights = init_weights(args.init) if args.init else None
        init_arch = args.init_weights["arch"] if args.init_weights else {}
        args.widths = args.widths or init_arch.get("widths") or [16, 32, 64, 128]
        args.bottleneck = args.bottleneck or init_arch.get("bottleneck") or 128
        if len(args.widths) != 4:
            fail("--widths needs 4 levels (the exported model's size multiple is 16)")
        fit(args)


if __name__ == "__main__":
    main()
