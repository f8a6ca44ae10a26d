"""The built-in synthetic re-ID world: drawn pedestrians seen by cameras with their own styles.

``generate_world(root)`` writes a Market-1501 layout (``load_dataset("market1501", root)``
parses it unchanged) and, beside the split folders, ``world.json`` (parameters, camera styles,
the trait table per identity) and ``attributes.csv`` (binary attributes per image).

An identity is a set of traits at several scales: global (top/bottom colours, skin, height,
width) and local (shirt logo shape and colour, shoes, bag, hat, glasses). A fraction of the
identities are *impostors*: a copy of another identity of the same split with exactly one local
trait changed, so the whole-body look alone cannot tell them apart. Each camera has its own
background, per-channel gain, blur, noise, person scale, position jitter and flip probability.
All randomness comes from ``np.random.default_rng`` seeded by (seed, purpose, ids): the same
seed gives byte-identical files, whatever else the process has done.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from omnireid.data.datasets.market1501 import FOLDER, SPLIT_DIRS

HEIGHT, WIDTH = 128, 64
MAX_CAMS = 6
JPEG_QUALITY = 90
FORMAT_VERSION = 1
PAD = 8  # background margin, cropped at a random offset per image

COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25),
    "white": (235, 235, 230),
    "grey": (128, 128, 128),
    "red": (200, 30, 35),
    "green": (40, 150, 60),
    "blue": (35, 70, 200),
    "yellow": (235, 210, 40),
    "purple": (125, 50, 155),
    "orange": (245, 135, 30),
    "brown": (115, 70, 40),
    "pink": (245, 150, 195),
    "navy": (20, 30, 90),
}
SKINS: dict[str, tuple[int, int, int]] = {
    "light": (240, 205, 175),
    "medium": (200, 150, 110),
    "dark": (120, 80, 55),
}
LOGO_SHAPES = ("square", "circle", "triangle", "cross")
BAGS = ("none", "left", "right")  # side in the unflipped image
LOCAL_TRAITS = ("logo_shape", "logo_colour", "shoes", "bag", "hat", "glasses")
ATTRIBUTES: dict[str, str] = {
    "hat": "wears a hat",
    "glasses": "wears glasses",
    "bag": "carries a bag (either side)",
    "top_dark": "top colour luminance (0.299R + 0.587G + 0.114B) below 100",
    "bottom_dark": "bottom colour luminance below 100",
    "shoes_dark": "shoe colour luminance below 100",
    "logo_round": "the shirt logo is a circle",
    "slim": "body width factor below 1.0",
}
# Per camera index: background colour and texture (well apart, so cameras differ).
BACKGROUNDS = (
    (95, 120, 90),
    (165, 150, 120),
    (70, 85, 125),
    (140, 90, 80),
    (185, 185, 190),
    (60, 60, 60),
)
TEXTURES = ("plain", "hstripes", "vstripes", "checker", "gradient", "noise")
# Seed-stream tags, so each purpose draws from its own generator.
_IDS, _CAMS, _IMAGE, _DISTRACTOR = 1, 2, 3, 4


@dataclass(frozen=True)
class Identity:
    """One pedestrian's traits; colours are keys of ``COLOURS``/``SKINS``."""

    top: str
    bottom: str
    skin: str
    height: float  # fraction of the camera's person height, 0.88..1.0
    width: float  # body width factor, 0.8..1.2
    logo_shape: str
    logo_colour: str
    shoes: str
    bag: str
    bag_colour: str
    hat: bool
    glasses: bool


@dataclass(frozen=True)
class CameraStyle:
    """How one camera sees: background, lighting gain (RGB), blur, noise, scale and jitter."""

    background: tuple[int, int, int]
    texture: str
    gain: tuple[float, float, float]
    blur: float  # box blur radius in pixels
    noise: float  # pixel noise standard deviation
    scale: float  # person height relative to the largest camera's
    shift: int  # maximum position jitter in pixels
    flip_prob: float


def _luma(colour: str) -> float:
    r, g, b = COLOURS[colour]
    return 0.299 * r + 0.587 * g + 0.114 * b


def identity_attributes(ident: Identity) -> dict[str, int]:
    """The ``ATTRIBUTES`` of an identity, each 0 or 1."""
    values = {
        "hat": ident.hat,
        "glasses": ident.glasses,
        "bag": ident.bag != "none",
        "top_dark": _luma(ident.top) < 100,
        "bottom_dark": _luma(ident.bottom) < 100,
        "shoes_dark": _luma(ident.shoes) < 100,
        "logo_round": ident.logo_shape == "circle",
        "slim": ident.width < 1.0,
    }
    return {name: int(values[name]) for name in ATTRIBUTES}


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str], *avoid: str) -> str:
    allowed = [o for o in options if o not in avoid]
    return allowed[int(rng.integers(len(allowed)))]


def random_identity(rng: np.random.Generator) -> Identity:
    """Draw every trait independently (the logo colour always differs from the top's)."""
    names = list(COLOURS)
    top = _pick(rng, names)
    return Identity(
        top=top,
        bottom=_pick(rng, names),
        skin=_pick(rng, list(SKINS)),
        height=round(float(rng.uniform(0.88, 1.0)), 3),
        width=round(float(rng.uniform(0.8, 1.2)), 3),
        logo_shape=_pick(rng, LOGO_SHAPES),
        logo_colour=_pick(rng, names, top),
        shoes=_pick(rng, names),
        bag=BAGS[int(rng.choice(3, p=[0.5, 0.25, 0.25]))],
        bag_colour=_pick(rng, names),
        hat=bool(rng.random() < 0.3),
        glasses=bool(rng.random() < 0.3),
    )


def make_impostor(base: Identity, rng: np.random.Generator) -> tuple[Identity, str]:
    """``base`` with one of ``LOCAL_TRAITS`` changed to another visible value; (copy, trait)."""
    trait = LOCAL_TRAITS[int(rng.integers(len(LOCAL_TRAITS)))]
    current = getattr(base, trait)
    if trait in ("hat", "glasses"):
        new: str | bool = not current
    elif trait == "logo_shape":
        new = _pick(rng, LOGO_SHAPES, current)
    elif trait == "logo_colour":
        new = _pick(rng, list(COLOURS), current, base.top)
    elif trait == "shoes":
        new = _pick(rng, list(COLOURS), current)
    else:
        new = _pick(rng, BAGS, current)
    return replace(base, **{trait: new}), trait


def _split_identities(
    num_ids: int, impostor_fraction: float, seed: int, split: int
) -> list[tuple[Identity, int | None, str | None]]:
    """``num_ids`` (identity, index of its original or None, changed trait) in a shuffled order."""
    rng = np.random.default_rng([seed, _IDS, split])
    num_imp = min(round(impostor_fraction * num_ids), num_ids // 2)
    originals = [random_identity(rng) for _ in range(num_ids - num_imp)]
    bases = rng.choice(len(originals), size=num_imp, replace=False)
    rows: list[tuple[Identity, int | None, str | None]] = [(o, None, None) for o in originals]
    for b in bases:
        ident, trait = make_impostor(originals[int(b)], rng)
        rows.append((ident, int(b), trait))
    order = [int(i) for i in rng.permutation(num_ids)]  # new position -> old index
    position = {old: new for new, old in enumerate(order)}
    return [
        (rows[old][0], None if rows[old][1] is None else position[rows[old][1]], rows[old][2])
        for old in order
    ]


def camera_styles(seed: int) -> list[CameraStyle]:
    """The ``MAX_CAMS`` camera styles of a world; camera c keeps its style whatever num_cams."""
    perm = np.random.default_rng([seed, _CAMS]).permutation(MAX_CAMS)
    styles = []
    for c in range(MAX_CAMS):
        rng = np.random.default_rng([seed, _CAMS, c + 1])
        styles.append(
            CameraStyle(
                background=BACKGROUNDS[int(perm[c])],
                texture=TEXTURES[(int(perm[c]) + c) % len(TEXTURES)],
                gain=tuple(round(float(g), 3) for g in rng.uniform(0.75, 1.25, 3)),  # type: ignore[arg-type]
                blur=round(float(rng.uniform(0.0, 1.2)), 3),
                noise=round(float(rng.uniform(2.0, 8.0)), 3),
                scale=round(float(rng.uniform(0.78, 1.0)), 3),
                shift=int(rng.integers(1, 6)),
                flip_prob=round(float(rng.uniform(0.0, 0.3)), 3),
            )
        )
    return styles


def background(style: CameraStyle, seed: int, cam: int) -> np.ndarray:
    """``(HEIGHT + 2 PAD, WIDTH + 2 PAD, 3)`` uint8 textured backdrop with a darker floor."""
    h, w = HEIGHT + 2 * PAD, WIDTH + 2 * PAD
    y, x = np.mgrid[0:h, 0:w]
    amp = 18.0
    texture = {
        "plain": np.zeros((h, w)),
        "hstripes": (((y // 6) % 2) * 2 - 1) * amp,
        "vstripes": (((x // 5) % 2) * 2 - 1) * amp,
        "checker": ((((y // 8) + (x // 8)) % 2) * 2 - 1) * amp,
        "gradient": (y / h - 0.5) * 2 * amp,
        "noise": np.random.default_rng([seed, _CAMS, cam, 0]).normal(0, amp, (h, w)),
    }[style.texture]
    img = np.asarray(style.background, dtype=np.float64) + texture[..., None]
    img[int(0.82 * h) :] *= 0.75
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_person(
    draw: ImageDraw.ImageDraw, ident: Identity, cx: float, foot: float, ph: float, stride: float
) -> None:
    """Draw ``ident`` standing on ``foot`` (y), centred on ``cx``, ``ph`` pixels tall."""
    u, t = ph / 8, foot - ph  # body unit (about a head), top of the head
    hw, sy, hy = 0.9 * u * ident.width, t + 1.25 * u, t + 4.0 * u  # half width, shoulders, hips
    top, bottom, skin = COLOURS[ident.top], COLOURS[ident.bottom], SKINS[ident.skin]
    for side in (-1, 1):  # legs and shoes, then torso and arms over them
        fx = cx + side * (0.45 * hw + stride * 0.5 * u)
        leg = [(cx + side * 0.45 * hw, hy), (fx, foot - 0.3 * u)]
        draw.line(leg, fill=bottom, width=max(3, round(0.65 * hw)))
        draw.rectangle([fx - 0.42 * u, foot - 0.45 * u, fx + 0.42 * u, foot], COLOURS[ident.shoes])
    draw.rectangle([cx - 0.85 * hw, hy - 1, cx + 0.85 * hw, hy + 0.6 * u], fill=bottom)
    draw.polygon([(cx - hw, sy), (cx + hw, sy), (cx + 0.85 * hw, hy), (cx - 0.85 * hw, hy)], top)
    for side in (-1, 1):
        hx, hy2 = cx + side * (hw + 0.15 * u - stride * 0.4 * u), hy + 0.3 * u
        arm = [(cx + side * (hw - 0.2 * u), sy + 0.1 * u), (hx, hy2)]
        draw.line(arm, fill=top, width=max(2, round(0.42 * u)))
        draw.ellipse([hx - 0.25 * u, hy2 - 0.1 * u, hx + 0.25 * u, hy2 + 0.4 * u], fill=skin)
    if ident.bag != "none":
        side, bag = (-1 if ident.bag == "left" else 1), COLOURS[ident.bag_colour]
        bx = cx + side * (hw + 0.35 * u)
        draw.line([(bx, hy - 0.6 * u), (cx - side * 0.7 * hw, sy)], fill=bag, width=1)
        draw.rectangle([bx - 0.5 * u, hy - 0.7 * u, bx + 0.5 * u, hy + 0.6 * u], fill=bag)
    lx, ly, s, logo = cx, sy + 0.95 * u, 0.38 * u, COLOURS[ident.logo_colour]
    if ident.logo_shape == "square":
        draw.rectangle([lx - s, ly - s, lx + s, ly + s], fill=logo)
    elif ident.logo_shape == "circle":
        draw.ellipse([lx - s, ly - s, lx + s, ly + s], fill=logo)
    elif ident.logo_shape == "triangle":
        draw.polygon([(lx, ly - s), (lx + s, ly + s), (lx - s, ly + s)], fill=logo)
    else:
        draw.rectangle([lx - s, ly - 0.3 * s, lx + s, ly + 0.3 * s], fill=logo)
        draw.rectangle([lx - 0.3 * s, ly - s, lx + 0.3 * s, ly + s], fill=logo)
    draw.ellipse([cx - 0.42 * u, t, cx + 0.42 * u, t + 1.15 * u], fill=skin)
    if ident.hat:  # drawn in the bottom colour
        draw.rectangle([cx - 0.48 * u, t - 0.1 * u, cx + 0.48 * u, t + 0.35 * u], fill=bottom)
        draw.rectangle([cx - 0.7 * u, t + 0.3 * u, cx + 0.7 * u, t + 0.45 * u], fill=bottom)
    ey = t + 0.5 * u
    if ident.glasses:
        draw.rectangle([cx - 0.38 * u, ey - 0.08 * u, cx + 0.38 * u, ey + 0.12 * u], (10, 10, 10))
    else:
        draw.point([(cx - 0.17 * u, ey), (cx + 0.17 * u, ey)], fill=(30, 20, 20))


def render(
    ident: Identity, style: CameraStyle, backdrop: np.ndarray, rng: np.random.Generator
) -> Image.Image:
    """One ``HEIGHT x WIDTH`` RGB view of ``ident`` through a camera with ``style``."""
    oy, ox = (int(v) for v in rng.integers(0, 2 * PAD + 1, 2))
    img = Image.fromarray(np.ascontiguousarray(backdrop[oy : oy + HEIGHT, ox : ox + WIDTH]))
    dx, dy = rng.uniform(-style.shift, style.shift, 2)
    ph = 0.86 * HEIGHT * ident.height * style.scale * rng.uniform(0.95, 1.05)
    draw_person(ImageDraw.Draw(img), ident, WIDTH / 2 + dx, HEIGHT - 4 + dy, ph, rng.uniform(-1, 1))
    arr = np.asarray(img, dtype=np.float32)
    if rng.random() < style.flip_prob:
        arr = arr[:, ::-1]
    gain = np.asarray(style.gain, dtype=np.float32) * np.float32(rng.uniform(0.9, 1.1))
    arr = arr * gain + rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(style.noise)
    img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    if style.blur > 0.05:
        img = img.filter(ImageFilter.BoxBlur(style.blur * rng.uniform(0.7, 1.3)))
    return img


class WorldExistsError(FileExistsError):
    """The target folder already holds a different world (or something that is not one)."""


def world_manifest(
    *,
    num_ids_train: int,
    num_ids_test: int,
    images_per_id_per_cam: int,
    num_cams: int,
    num_distractors: int,
    impostor_fraction: float,
    seed: int,
) -> dict:
    """The ``world.json`` content: parameters, attribute names, cameras and the trait table.

    Identities are listed by pid (train ``1..num_ids_train``, then test); an impostor names the
    pid it copies (``impostor_of``) and the one local trait it changes (``impostor_trait``).
    """
    if not 2 <= num_cams <= MAX_CAMS:
        raise ValueError(f"num_cams must be in 2..{MAX_CAMS}, got {num_cams}")
    if min(num_ids_train, num_ids_test, images_per_id_per_cam) < 1 or num_distractors < 0:
        raise ValueError("id and image counts must be >= 1 (num_distractors >= 0)")
    if num_ids_train + num_ids_test > 9999 or not 0.0 <= impostor_fraction <= 0.5:
        raise ValueError("at most 9999 ids in all, and impostor_fraction must be in [0, 0.5]")
    params = {
        "num_ids_train": num_ids_train,
        "num_ids_test": num_ids_test,
        "images_per_id_per_cam": images_per_id_per_cam,
        "num_cams": num_cams,
        "num_distractors": num_distractors,
        "impostor_fraction": impostor_fraction,
        "seed": seed,
    }
    identities = []
    for split, (count, offset) in enumerate(
        [(num_ids_train, 1), (num_ids_test, num_ids_train + 1)]
    ):
        for i, (ident, base, trait) in enumerate(
            _split_identities(count, impostor_fraction, seed, split)
        ):
            identities.append(
                {
                    "pid": offset + i,
                    "split": ("train", "test")[split],
                    "impostor_of": None if base is None else offset + base,
                    "impostor_trait": trait,
                    "traits": asdict(ident),
                }
            )
    return {
        "format_version": FORMAT_VERSION,
        "params": params,
        "image_size": [HEIGHT, WIDTH],
        "jpeg_quality": JPEG_QUALITY,
        "attributes": ATTRIBUTES,
        "local_traits": list(LOCAL_TRAITS),
        "cameras": [asdict(s) for s in camera_styles(seed)[:num_cams]],
        "identities": identities,
    }


def _plan(manifest: dict) -> list[tuple[str, int, int, int, Identity]]:
    """Every image as (split folder, pid, camera 1-based, index k, identity), in writing order.

    Test ids get one query per camera (k = 0) and ``images_per_id_per_cam`` gallery images per
    camera, so each query has gallery matches in every other camera.
    """
    p = manifest["params"]
    ipc, cams = p["images_per_id_per_cam"], range(1, p["num_cams"] + 1)
    jobs = []
    for row in manifest["identities"]:
        ident, pid = Identity(**row["traits"]), row["pid"]
        for cam in cams:
            if row["split"] == "train":
                jobs += [(SPLIT_DIRS["train"], pid, cam, k, ident) for k in range(ipc)]
            else:
                jobs.append((SPLIT_DIRS["query"], pid, cam, 0, ident))
                jobs += [(SPLIT_DIRS["gallery"], pid, cam, k, ident) for k in range(1, ipc + 1)]
    for d in range(p["num_distractors"]):
        ident = random_identity(np.random.default_rng([p["seed"], _DISTRACTOR, d]))
        jobs.append((SPLIT_DIRS["gallery"], 0, d % p["num_cams"] + 1, d, ident))
    return jobs


def generate_world(
    root: str | Path,
    *,
    num_ids_train: int = 100,
    num_ids_test: int = 50,
    images_per_id_per_cam: int = 5,
    num_cams: int = 4,
    num_distractors: int = 50,
    impostor_fraction: float = 0.2,
    seed: int = 0,
) -> Path:
    """Write a synthetic world under ``root``; returns ``root/Market-1501-v15.09.15``.

    Images: train ``num_ids_train * num_cams * images_per_id_per_cam``; query
    ``num_ids_test * num_cams``; gallery ``num_ids_test * num_cams * images_per_id_per_cam +
    num_distractors`` (pid 0000). The defaults give 2,000 + 200 + 1,050 images. An existing
    world with the same manifest is reused; any other content there raises
    ``WorldExistsError``. The folder is written beside and renamed into place when complete.
    """
    manifest = world_manifest(
        num_ids_train=num_ids_train,
        num_ids_test=num_ids_test,
        images_per_id_per_cam=images_per_id_per_cam,
        num_cams=num_cams,
        num_distractors=num_distractors,
        impostor_fraction=impostor_fraction,
        seed=seed,
    )
    manifest = json.loads(json.dumps(manifest))  # the form it takes on disk
    base = Path(root).expanduser() / FOLDER
    if base.exists():
        _check_existing(base, manifest)
        return base
    tmp = base.with_name(FOLDER + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in SPLIT_DIRS.values():
        (tmp / sub).mkdir(parents=True)
    styles = [CameraStyle(**{**s, "gain": tuple(s["gain"])}) for s in manifest["cameras"]]
    backdrops = [background(s, seed, c + 1) for c, s in enumerate(styles)]
    frames = [0] * (num_cams + 1)
    rows = []
    for sub, pid, cam, k, ident in _plan(manifest):
        frames[cam] += 25
        name = f"{pid:04d}_c{cam}s1_{frames[cam]:06d}_01.jpg"
        rng = np.random.default_rng([seed, _IMAGE, pid, cam, k])
        img = render(ident, styles[cam - 1], backdrops[cam - 1], rng)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=JPEG_QUALITY)
        (tmp / sub / name).write_bytes(buf.getvalue())
        rows.append([f"{sub}/{name}", pid, cam, *identity_attributes(ident).values()])
    with open(tmp / "attributes.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["image", "pid", "camera", *ATTRIBUTES])
        writer.writerows(rows)
    (tmp / "world.json").write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, base)
    return base


def _check_existing(base: Path, manifest: dict) -> None:
    path = base / "world.json"
    if not path.is_file():
        raise WorldExistsError(
            f"{base} exists but holds no world.json (not a synthetic world); "
            "remove it or generate under another root"
        )
    old = json.loads(path.read_text())
    if old != manifest:
        changed = sorted(
            k
            for k in {*old.get("params", {}), *manifest["params"]}
            if old.get("params", {}).get(k) != manifest["params"].get(k)
        )
        raise WorldExistsError(
            f"{base} holds a different synthetic world (differs in {changed or 'format'}); "
            "remove it or generate under another root rather than mixing worlds"
        )


def read_attributes(base: str | Path) -> dict[str, dict[str, int]]:
    """``attributes.csv`` of a world folder: ``"split_dir/file.jpg" -> {attribute: 0/1}``."""
    with open(Path(base) / "attributes.csv", newline="") as f:
        return {r["image"]: {a: int(r[a]) for a in ATTRIBUTES} for r in csv.DictReader(f)}
