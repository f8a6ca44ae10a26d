"""Drawn pedestrians: attribute labels, impostors and camera views, checked by hand."""

from __future__ import annotations

from dataclasses import asdict, fields

import numpy as np

from omnireid.data.pedestrians import (
    HEIGHT,
    LOCAL_TRAITS,
    WIDTH,
    Identity,
    background,
    camera_styles,
    identity_attributes,
    make_impostor,
    random_identity,
    render,
)


def test_identity_attributes_by_hand() -> None:
    ident = Identity(
        top="black",
        bottom="white",
        skin="light",
        height=0.9,
        width=0.95,
        logo_shape="circle",
        logo_colour="red",
        shoes="yellow",
        bag="left",
        bag_colour="red",
        hat=False,
        glasses=True,
    )
    assert {f.name for f in fields(Identity)} == set(asdict(ident))
    assert identity_attributes(ident) == {
        "hat": 0,
        "glasses": 1,
        "bag": 1,
        "top_dark": 1,
        "bottom_dark": 0,
        "shoes_dark": 0,
        "logo_round": 1,
        "slim": 1,
    }


def test_an_impostor_changes_one_local_trait_to_a_visible_other_value() -> None:
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(200):
        base = random_identity(rng)
        copy, trait = make_impostor(base, rng)
        changed = [k for k, v in asdict(copy).items() if asdict(base)[k] != v]
        assert changed == [trait] and trait in LOCAL_TRAITS
        assert copy.logo_colour != copy.top  # the logo stays visible on the shirt
        seen.add(trait)
    assert seen == set(LOCAL_TRAITS)


def test_a_view_is_the_camera_size_and_differs_between_cameras() -> None:
    ident = random_identity(np.random.default_rng(0))
    styles = camera_styles(seed=0)
    views = []
    for cam in (1, 2):
        style = styles[cam - 1]
        img = render(ident, style, background(style, 0, cam), np.random.default_rng(1))
        assert img.size == (WIDTH, HEIGHT) and img.mode == "RGB"
        views.append(np.asarray(img, dtype=np.float32))
    assert np.abs(views[0] - views[1]).mean() > 10  # other background, gain and scale
