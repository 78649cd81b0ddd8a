"""vemscope training: pack annotated sections, fit the 2D U-Net, export ONNX + a model card.

Driven by `vemscope train` (scripts/train/command.ts), which prints the progress; usable by hand too:
  python3 train.py pack --spec spec.json --out data.npz
  python3 train.py fit --data data.npz --out DIR [--iters N] [--minutes M] [--seed S]

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
    if images.dtype not in (np.uint8, np.uint16):
        fail(f"{src['images']}: images must be 8- or 16-bit, got {images.dtype}")
    if "labels" in src:
        labels = read_stack(src["labels"]).astype(np.uint8)
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
            m = read_stack(folder)
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
    return {"name": name, "images": images, "labels": labels, "known": sorted(known), "train": train, "val": val,
            "weight": float(src.get("weight", 1.0))}


def pack(args) -> None:
    with open(args.spec) as f:
        spec = json.load(f)
    arrays, meta = {}, []
    for k, src in enumerate(spec["sources"]):
        s = load_source(src)
        arrays[f"images_{k}"] = s["images"]
        arrays[f"labels_{k}"] = s["labels"]
        meta.append({key: s[key] for key in ("name", "known", "train", "val", "weight")} | {"shape": list(s["images"].shape)})
        emit("packed", source=s["name"], shape=list(s["images"].shape), known=[CLASS_NAMES[c] for c in s["known"]],
             train=len(s["train"]), val=len(s["val"]))
    tmp = args.out + ".tmp.npz"
    np.savez_compressed(tmp, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    os.replace(tmp, args.out)
    emit("pack_done", out=args.out, bytes=os.path.getsize(args.out))


# ---------------------------------------------------------------- data

def zscore(section: np.ndarray) -> np.ndarray:
    x = section.astype(np.float32)
    return (x - x.mean()) / max(float(x.std()), 1e-3)


class Data:
    def __init__(self, path: str):
        z = np.load(path)
        self.meta = json.loads(bytes(z["meta"]).decode())
        self.sources = []
        for k, m in enumerate(self.meta):
            imgs = z[f"images_{k}"]
            labels = z[f"labels_{k}"]
            # Normalise whole sections once, exactly as inference does (tiles must see the same numbers).
            norm = np.stack([zscore(s) for s in imgs])
            self.sources.append({**m, "x": norm, "y": labels})
        weights = np.array([s["weight"] * len(s["train"]) for s in self.sources], np.float64)
        if weights.sum() <= 0:
            fail("no training sections")
        self.p = weights / weights.sum()

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


def augment(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator):
    """Flips, 90-degree rotations, scale 0.8-1.25, rotation, elastic, intensity. x [B,1,H,W] float, y [B,H,W] long."""
    b, _, h, w = x.shape
    if rng.random() < 0.5:
        x, y = x.flip(-1), y.flip(-1)
    if rng.random() < 0.5:
        x, y = x.flip(-2), y.flip(-2)
    k = int(rng.integers(4))
    if k and h == w:
        x, y = torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))
    # One grid_sample for scale + small rotation + elastic (smooth coarse displacement, bicubic upsampled).
    theta = torch.zeros(b, 2, 3)
    for i in range(b):
        s = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
        a = rng.uniform(-0.3, 0.3)
        theta[i] = torch.tensor([[math.cos(a) / s, -math.sin(a) / s, 0.0], [math.sin(a) / s, math.cos(a) / s, 0.0]])
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    coarse = torch.from_numpy(rng.normal(0, 0.03, (b, 2, 5, 5)).astype(np.float32))
    disp = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    grid = grid + disp
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="reflection", align_corners=False)[:, 0].long()
    # Intensity: contrast, brightness, gamma-like curve, blur or noise (all on z-scored values).
    for i in range(b):
        xi = x[i] * rng.uniform(0.7, 1.4) + rng.uniform(-0.4, 0.4)
        if rng.random() < 0.3:
            g = rng.uniform(-0.15, 0.15)
            xi = xi + g * (xi * xi - 1)
        if rng.random() < 0.25:
            xi = F.avg_pool2d(xi[None], 3, 1, 1, count_include_pad=False)[0]
        if rng.random() < 0.4:
            xi = xi + torch.randn_like(xi) * rng.uniform(0.05, 0.35)
        x[i] = xi
    return x, y


def losses(logits: torch.Tensor, y: torch.Tensor, kmask: torch.Tensor, class_w: torch.Tensor):
    """Marginal cross-entropy (class weighted) + soft Dice on annotated classes."""
    logp = F.log_softmax(logits, dim=1)  # [B,C,H,W]
    unknown = (1 - kmask)[:, :, None, None]
    # log P(background or any class this source does not annotate)
    other = torch.logsumexp(torch.where(unknown > 0, logp, torch.full_like(logp, -1e4)), dim=1)
    other = torch.logaddexp(other, logp[:, 0])
    picked = logp.gather(1, y[:, None])[:, 0]
    tgt_logp = torch.where(y == 0, other, picked)
    w = class_w[y]
    ce = -(w * tgt_logp).sum() / w.sum()
    p = logp.exp()
    onehot = F.one_hot(y, len(CLASS_NAMES)).permute(0, 3, 1, 2).float()
    inter = (p * onehot).sum((2, 3))
    denom = p.sum((2, 3)) + onehot.sum((2, 3))
    dice = (2 * inter + 1) / (denom + 1)  # [B,C]
    m = kmask.clone()
    m[:, 0] = 0
    present = m * (onehot.sum((2, 3)) > 0).float()
    dice_loss = ((1 - dice) * present).sum() / present.sum().clamp_min(1)
    return ce + dice_loss, ce.item(), dice_loss.item()


# ---------------------------------------------------------------- evaluation and export

def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    h, w = x.shape
    ph, pw = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
    t = torch.from_numpy(np.pad(x, ((0, ph), (0, pw)), mode="reflect"))[None, None]
    with torch.no_grad():
        return model(t)[0, :, :h, :w].argmax(0).numpy().astype(np.uint8)


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
        out[s["name"]] = {CLASS_NAMES[c]: {"dice": float(2 * inter[c] / max(psum[c] + tsum[c], 1)),
                                           "iou": float(inter[c] / max(psum[c] + tsum[c] - inter[c], 1))} for c in s["known"]}
    model.train()
    return out


def score(val: dict) -> float:
    """Early-stopping score: mean Dice over every (source, class) validated; real mitochondria count double."""
    vals = []
    for src, classes in val.items():
        for cls, m in classes.items():
            vals += [m["dice"]] * (2 if cls == "mito" and len(classes) == 1 else 1)
    return float(np.mean(vals)) if vals else 0.0


def export_onnx(model: torch.nn.Module, out_dir: str, card: dict) -> None:
    import onnx

    model.eval()
    path = os.path.join(out_dir, "model.onnx")
    tmp = path + ".tmp"
    dummy = torch.zeros(1, 1, 256, 256)
    torch.onnx.export(model, dummy, tmp, input_names=["image"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}})
    m = onnx.load(tmp)
    meta = {"classes": CLASS_NAMES, "normalisation": NORMALISATION, "size_multiple": SIZE_MULTIPLE,
            "input": "float32 [n,1,h,w]", "output": "float32 logits [n,7,h,w]"}
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

def fit(args) -> None:
    os.makedirs(args.out, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)
    data = Data(args.data)
    model = UNet().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    state = {"iter": 0, "best": -1.0, "since_best": 0, "history": [], "seconds": 0.0, "hardware": []}
    if os.path.exists(ckpt_path) and not args.fresh:
        ck = torch.load(ckpt_path, map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        rng = np.random.default_rng(args.seed + state["iter"])  # resumed runs continue a different, seeded stream
        emit("resumed", iter=state["iter"], best=state["best"])
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
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(it / total, 1.0)))
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
        x, y = augment(x, y, rng)
        x, y = x.to(device), y.to(device)
        loss, ce, dl = losses(model(x), y, known_mask(ks, device), class_w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["iter"] = it + 1
        per_iter = (time.time() - t_start) / max(1, state["iter"] - it0)
        if state["iter"] % args.log_every == 0:
            emit("iter", iter=state["iter"], total=total, loss=round(loss.item(), 4), ce=round(ce, 4), dice_loss=round(dl, 4),
                 lr=lr, s_per_iter=round(per_iter, 3), eta_s=round(per_iter * (total - state["iter"])))
        done = state["iter"] >= total or time.time() >= deadline
        if state["iter"] % args.val_every == 0 or done:
            val = validate(model, data)
            sc = score(val)
            state["history"].append({"iter": state["iter"], "score": sc, "val": val})
            improved = sc > state["best"]
            if improved:
                state["best"], state["since_best"] = sc, 0
                state["best_val"] = val
                state["best_iter"] = state["iter"]
                state["seconds"] = seconds0 + (time.time() - t_start)
                export_onnx(model, args.out, model_card(args, data, state))
            else:
                state["since_best"] += 1
            emit("val", iter=state["iter"], score=round(sc, 4), best=round(state["best"], 4), improved=improved, val=val)
            if state["since_best"] >= args.patience:
                emit("early_stop", iter=state["iter"], best=state["best"])
                done = True
        if time.time() - last_save > args.save_seconds or done:
            state["seconds"] = seconds0 + (time.time() - t_start)
            save_checkpoint(ckpt_path, model, opt, state)
            last_save = time.time()
        if done:
            break
    state["seconds"] = seconds0 + (time.time() - t_start)
    save_checkpoint(ckpt_path, model, opt, state)
    card = model_card(args, data, state)
    write_json(os.path.join(args.out, "model-card.json"), card)
    if os.path.exists(os.path.join(args.out, "model.onnx")):
        # Re-embed the final card (hardware, time) in the best model without changing its weights.
        import onnx
        m = onnx.load(os.path.join(args.out, "model.onnx"))
        for p in m.metadata_props:
            if p.key == "model_card":
                p.value = json.dumps(card)
        tmp = os.path.join(args.out, "model.onnx.tmp")
        onnx.save(m, tmp)
        os.replace(tmp, os.path.join(args.out, "model.onnx"))
    emit("done", iter=state["iter"], best=state["best"], out=args.out)


def save_checkpoint(path: str, model, opt, state) -> None:
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
    os.replace(tmp, path)


def model_card(args, data: Data, state: dict) -> dict:
    return {
        "format": "vemscope-model-card", "version": 1,
        "architecture": "2D U-Net, 4 levels (16-32-64-128) + 128 bottleneck, BN, bilinear upsampling, 7-class logits",
        "classes": CLASS_NAMES, "normalisation": NORMALISATION,
        "data": [{"name": s["name"], "shape_zyx": s["shape"], "annotated": [CLASS_NAMES[c] for c in s["known"]],
                  "train_slices": s["train"], "val_slices": s["val"], "weight": s["weight"]} for s in data.sources],
        "training": {"iterations": state["iter"], "best_iteration": state.get("best_iter"), "batch": args.batch,
                     "crop": args.crop, "lr": args.lr, "seed": args.seed, "seconds": round(state["seconds"]),
                     "hardware": state["hardware"], "torch": torch.__version__,
                     "loss": "class-weighted marginal cross-entropy + soft Dice on annotated classes",
                     "augmentation": "flips, 90-degree rotations, scale 0.8-1.25, rotation +-17 deg, elastic, contrast/brightness/gamma, blur, noise"},
        "validation": state.get("best_val", {}), "validation_score": state["best"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="train.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--spec", required=True)
    p.add_argument("--out", required=True)
    f = sub.add_parser("fit")
    f.add_argument("--data", required=True)
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
    args = ap.parse_args()
    if args.cmd == "pack":
        pack(args)
    else:
        if args.crop % SIZE_MULTIPLE:
            fail(f"--crop must be a multiple of {SIZE_MULTIPLE}")
        fit(args)


if __name__ == "__main__":
    main()
