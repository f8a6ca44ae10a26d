"""Drawn pedestrians and the cameras that see them: the parts of the synthetic world.

An identity is a set of traits at several scales: global (top/bottom colours, skin, height,
width) and local (shirt logo shape and colour, shoes, bag, hat, glasses); an *impostor* is a
copy of another identity with exactly one local trait changed. Each camera has its own
background, per-channel gain, blur, noise, person scale, position jitter and flip probability.
``omnireid.data.synthetic`` puts them together into a dataset on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HEIGHT, WIDTH = 128, 64
MAX_CAMS = 6
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
# The seed-stream tag of camera styles (the world's other purposes use 1, 3 and 4).
CAMS_STREAM = 2


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
    changed: dict[str, Any] = {trait: new}
    return replace(base, **changed), trait


def camera_styles(seed: int) -> list[CameraStyle]:
    """The ``MAX_CAMS`` camera styles of a world; camera c keeps its style whatever num_cams."""
    perm = np.random.default_rng([seed, CAMS_STREAM]).permutation(MAX_CAMS)
    styles = []
    for c in range(MAX_CAMS):
        rng = np.random.default_rng([seed, CAMS_STREAM, c + 1])
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
        "noise": np.random.default_rng([seed, CAMS_STREAM, cam, 0]).normal(0, amp, (h, w)),
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
