"""Aggregation-gate analysis: hooked gate vectors, seeded k-means, the grid and the bar plot."""

import json

import numpy as np
import pytest
import torch

from omnireid.cli import main
from omnireid.models import build
from omnireid.visualize.gates import cluster_gates, collect_gates, draw_clusters, plot_stage_means
from tests.visualize.images import check_image, write_fake_images


def test_hooked_gates_are_the_last_blocks_stream_gates(tmp_path):
    paths = write_fake_images(tmp_path, [f"{i}.png" for i in range(3)], 64, 32)
    torch.manual_seed(0)
    model = build("osnet_x0_25").eval()
    record = collect_gates(model, paths, height=64, width=32, batch_size=2)
    mid = 128 // 4  # conv4 width 128, bottleneck reduction 4
    assert record.last_block().shape == (3, 4 * mid)
    assert record.stage_means().shape == (3, 4)
    # Recompute the last block's gates directly: G(x^t) of each stream output.
    from omnireid.data.images import read_image
    from omnireid.data.transforms import build_eval_transform

    images = torch.stack([build_eval_transform(64, 32)(read_image(p)) for p in paths])
    block, inputs = model.conv4[-1], []
    handle = block.register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
    with torch.inference_mode():
        model(images)
        handle.remove()
        mid_x = block.conv1(inputs[0])
        gates = block.stream_gates([stream(mid_x) for stream in block.conv2])
    expected = torch.cat([g.flatten(1) for g in gates], 1).numpy()
    np.testing.assert_allclose(record.last_block(), expected, atol=1e-5)


def test_gateless_fusion_is_refused(tmp_path):
    paths = write_fake_images(tmp_path, ["a.png"])
    with pytest.raises(ValueError, match="no input-dependent gates"):
        collect_gates(build("osnet_x0_25", fusion="add"), paths, 64, 32)


def test_kmeans_recovers_separated_groups_and_orders_by_distance():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    data = np.concatenate([c + rng.normal(0, 0.1, (5, 2)) for c in centres])
    _, labels, nearest = cluster_gates(data, 3, seed=0, per_cluster=3)
    groups = [set(labels[5 * i : 5 * i + 5]) for i in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3
    for c, members in enumerate(nearest):
        d = np.linalg.norm(data[members] - data[labels == c].mean(0), axis=1)
        assert len(members) == 3 and np.all(np.diff(d) >= 0)
    again = cluster_gates(data, 3, seed=0, per_cluster=3)[1]
    assert np.array_equal(labels, again)
    with pytest.raises(ValueError, match="N >= k"):
        cluster_gates(data[:2], 3)


def test_grid_and_bars(tmp_path):
    paths = write_fake_images(tmp_path, [f"{i}.png" for i in range(5)])
    nearest = [np.array([0, 1, 2]), np.array([3, 4])]
    labels = np.array([0, 0, 0, 1, 1])
    grid = draw_clusters(paths, nearest, labels, tmp_path / "g.png", height=40, width=20)
    # Rows: a 20 px label cell (2 caption lines of 14 px under 40 px), an 8 px gap, up to 3
    # cells with 3 px gaps; rows 8 px apart.
    check_image(grid, (20 + 8 + 3 * 20 + 2 * 3, 2 * (40 + 2 * 14) + 8))
    check_image(plot_stage_means(np.full((3, 4), 0.5), tmp_path / "b.png"), (600, 350))


def test_gates_command(tmp_path, tiny_world, toy_weights):
    out = tmp_path / "gates"
    argv = ["gates", "--weights", str(toy_weights)]
    argv += ["--images", str(tiny_world / "query"), "--out", str(out), "--clusters", "3"]
    argv += ["--show", "4", "--height", "128", "--width", "64"]
    assert main(argv) == 0
    summary = json.loads((out / "gates.json").read_text())
    assert summary["images"] == 32 and sum(summary["cluster_sizes"]) == 32
    check_image(out / "clusters.png")
    check_image(out / "stage_means.png", (600, 350))
