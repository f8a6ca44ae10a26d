import asyncio
import io
import socket
from urllib.parse import quote

import httpx
import numpy as np
import pytest

from omnireid.client import GalleryClient
from omnireid.data.images import list_images
from omnireid.serve.server import bind
from tests.helpers import handmade_png
from tests.serve.conftest import THRESHOLD
from tests.serve.helpers import READ_KEY, WRITE_KEY, b64, png_bytes, unit_rows

READ, WRITE = {"X-API-Key": READ_KEY}, {"X-API-Key": WRITE_KEY}


@pytest.fixture(scope="module")
def http(url):
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def gallery_images(tiny_world):
    return list_images(tiny_world / "bounding_box_test")[:3]


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (its data is one empty row)."""
    return handmade_png(width, height, b"\0")


def test_health_is_open_and_the_rest_needs_a_key(http):
    assert http.get("/health").json()["status"] == "ok"
    answer = http.get("/stats")
    assert answer.status_code == 401 and "X-API-Key" in answer.json()["detail"]
    assert http.get("/stats", headers={"X-API-Key": "x" * 20}).status_code == 401
    stats = http.get("/stats", headers=READ).json()
    assert stats["backend"] == "faiss" and stats["dim"] == 512
    assert stats["threshold"]["value"] == THRESHOLD and stats["store"]["journal"] == "wal"
    assert stats["store"]["search"] == "exact, int8 first pass"


def test_answers_do_not_wait_for_delayed_acks():
    """Without TCP_NODELAY each answer stalled ~40 ms on the client's delayed ACK: the
    server's socket is a TCP one with it set, and so is every connection asyncio accepts on it."""
    listening = bind("127.0.0.1", 0)
    assert listening.proto == socket.IPPROTO_TCP
    assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    accepted = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = writer.get_extra_info("socket")
        accepted.append(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    async def connect_once() -> None:
        server = await asyncio.start_server(handle, sock=listening)
        port = listening.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read() == b""  # the handler has run and closed
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(connect_once())
    assert len(accepted) == 1 and accepted[0] != 0


def test_identify_needs_a_key_and_refuses_bodies_that_are_not_json(http):
    body = {"features": [[1.0] * 512]}
    answer = http.post("/identify", json=body)
    assert answer.status_code == 401 and "X-API-Key" in answer.json()["detail"]
    answer = http.post("/identify", json=body, headers={"X-API-Key": "y" * 20})
    assert answer.status_code == 401 and answer.json()["detail"] == "unknown API key"
    answer = http.post("/identify", content=b"{not json", headers=READ)
    assert answer.status_code == 422 and answer.json()["detail"].startswith("body")
    assert http.post("/identify", content=b"", headers=READ).status_code == 422


def test_a_read_key_cannot_change_the_gallery(http):
    body = {"items": [{"feature": unit_rows(1, 512, 0)[0].tolist(), "id": "by-reader"}]}
    answer = http.post("/gallery", json=body, headers=READ)
    assert answer.status_code == 403 and "may read but not change" in answer.json()["detail"]
    assert http.delete("/gallery/anything", headers=READ).status_code == 403
    assert http.get("/gallery/by-reader", headers=READ).status_code == 404  # nothing was stored


def test_enrolled_images_identify_themselves_with_their_metadata(http, gallery_images):
    items = [
        {"image": b64(p.read_bytes()), "camera": 2, "timestamp": 1.5, "track_id": "t9",
         "labels": {"file": p.name}}
        for p in gallery_images
    ]  # fmt: skip
    answer = http.post("/gallery", json={"items": items}, headers=WRITE)
    assert answer.status_code == 201
    ids = answer.json()["ids"]
    assert len(set(ids)) == 3
    query = {"images": [b64(gallery_images[1].read_bytes())], "k": 3}
    result = http.post("/identify", json=query, headers=READ).json()
    best = result["results"][0]["matches"][0]
    assert best["id"] == ids[1] and best["score"] == pytest.approx(1.0, abs=1e-4)
    assert best["same_person"] is True and result["results"][0]["match"] == ids[1]
    assert (best["camera"], best["timestamp"], best["track_id"]) == (2, 1.5, "t9")
    assert best["labels"] == {"file": gallery_images[1].name}
    assert result["threshold"] == THRESHOLD
    assert http.get(f"/gallery/{ids[0]}", headers=READ).json()["labels"]["file"] == (
        gallery_images[0].name
    )


def test_embed_gives_the_extractors_features(http, gallery_images, toy_extractor):
    body = {"images": [b64(p.read_bytes()) for p in gallery_images[:2]]}
    answer = http.post("/embed", json=body, headers=READ).json()
    feats = np.asarray(answer["features"], np.float32)
    assert answer["dim"] == 512 and feats.shape == (2, 512)
    np.testing.assert_allclose(feats, toy_extractor(gallery_images[:2]), atol=1e-5)


def test_features_enrol_identify_and_delete(http):
    feats = unit_rows(3, 512, seed=7)
    items = [{"feature": f.tolist(), "id": f"feat-{i}"} for i, f in enumerate(feats)]
    assert http.post("/gallery", json={"items": items}, headers=WRITE).json()["ids"] == [
        "feat-0", "feat-1", "feat-2"
    ]  # fmt: skip
    other = unit_rows(1, 512, seed=8)[0]  # unrelated: far below the threshold
    body = {"features": [feats[2].tolist(), other.tolist()], "k": 2}
    first, second = http.post("/identify", json=body, headers=READ).json()["results"]
    assert first["match"] == "feat-2" and first["matches"][1]["same_person"] is False
    assert second["match"] is None and not any(m["same_person"] for m in second["matches"])
    again = http.post("/gallery", json={"items": items[:1]}, headers=WRITE)
    assert again.status_code == 409 and "'feat-0' is already enrolled" in again.json()["detail"]
    assert http.delete("/gallery/feat-2", headers=WRITE).json() == {"id": "feat-2", "removed": True}
    assert http.delete("/gallery/feat-2", headers=WRITE).status_code == 404
    assert http.get("/gallery/feat-2", headers=READ).status_code == 404
    hits = http.post("/identify", json={"features": [feats[2].tolist()], "k": 50}, headers=READ)
    assert "feat-2" not in [m["id"] for m in hits.json()["results"][0]["matches"]]


def corrupt_jpeg(path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("make", "status", "reason"),
    [
        (lambda p: b"\x00garbage" * 50, 422, "image 0 is not a readable"),
        (corrupt_jpeg, 422, "image 0 is corrupt"),
        (lambda p: png_bytes(600, 20), 413, "600x20; the limit is 512 pixels a side"),
        (lambda p: png_claiming(100_000, 100_000), 413, "image 0 is too large"),
        (lambda p: png_claiming(400, 400), 413, "400x400"),
    ],
    ids=["garbage", "truncated", "too-wide", "decompression-bomb", "too-many-pixels"],
)
def test_bad_images_are_refused_with_a_reason(http, gallery_images, make, status, reason):
    data = make(gallery_images[0])
    for path, body, headers in [
        ("/embed", {"images": [b64(data)]}, READ),
        ("/identify", {"images": [b64(data)]}, READ),
        ("/gallery", {"items": [{"image": b64(data), "id": "bad-image"}]}, WRITE),
    ]:
        answer = http.post(path, json=body, headers=headers)
        assert answer.status_code == status and reason in answer.json()["detail"], answer.text
    assert http.get("/gallery/bad-image", headers=READ).status_code == 404


def test_a_tiff_is_not_decoded(http):
    buf = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(buf, format="TIFF")
    answer = http.post("/embed", json={"images": [b64(buf.getvalue())]}, headers=READ)
    assert answer.status_code == 422 and "JPEG/PNG/WEBP/BMP" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/identify", {"features": [[0.1] * 300]}, 422, "feature 0 has 300 values; this gallery"),
        ("/gallery", {"items": [{"feature": [0.0] * 512}]}, 422, "all-zero"),
        ("/identify", {"features": [[1.0] * 512], "k": 1000}, 422, "k must be 1 to 100"),
        ("/identify", {"features": [[1.0] * 512], "images": ["AA=="]}, 422, "either images or"),
        ("/identify", {}, 422, "either images or features"),
        ("/embed", {"images": ["not base64!"]}, 422, "not valid base64"),
        ("/embed", {"images": [b64(b"x")] * 5}, 413, "5 images in one request; the limit is 4"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "image": "AA=="}]}, 422, "either an"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "camera": -1}]}, 422, "items.0.camera"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "id": "a b"}]}, 422, "items.0.id"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "id": "."}]}, 422, "items.0.id"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "id": ".."}]}, 422, "items.0.id"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "id": "..."}]}, 422, "items.0.id"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "id": "x" * 65}]}, 422, "items.0.id"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "camera": 2**70}]}, 422, "items.0.camera"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "camera": 2**31}]}, 422, "items.0.camera"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "timestamp": 2**70}]}, 422, "timestamp"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "timestamp": -1.7e18}]}, 422, "timestamp"),
        ("/identify", {"features": [[1.0] * 512], "k": 2**70}, 422, "k must be 1 to 100"),
        ("/identify", {"features": [[1.0] * 512], "k": 0}, 422, "body.k: Input should be greater"),
        ("/identify", {"features": [[1.0] * 512], "extra": 1}, 422, "body.extra: Extra inputs"),
        ("/identify", {"features": [["a"] * 512]}, 422, "body.features.0.0: Input should be"),
        ("/identify", {"features": []}, 422, "no features given"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "extra": 1}]}, 422, "items.0.extra"),
        ("/gallery", {"items": []}, 422, "items"),
        # no value is converted from another JSON type
        ("/identify", {"features": [[1.0] * 512], "k": "5"}, 422, "body.k: Input should be"),
        ("/identify", {"features": [[1.0] * 512], "k": True}, 422, "body.k: Input should be"),
        ("/identify", {"features": [[1.0] * 512], "k": 5.0}, 422, "body.k: Input should be"),
        ("/identify", {"features": [["0.1"] * 512]}, 422, "features.0.0: Input should be a valid"),
        ("/identify", {"features": [[True] * 512]}, 422, "features.0.0: Input should be a valid"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "camera": "3"}]}, 422, "items.0.camera"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "camera": True}]}, 422, "items.0.camera"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "timestamp": "1"}]}, 422, "timestamp"),
        ("/gallery", {"items": [{"image": ""}]}, 422, "items.0.image: String should have at least"),
        ("/embed", {"images": [""]}, 422, "body.images.0: String should have at least 1"),
        # 2^53 + 1 would be stored as 2^53
        ("/gallery", {"items": [{"feature": [1.0] * 512, "timestamp": 2**53 + 1}]}, 422, "timest"),
        ("/gallery", {"items": [{"feature": [1.0] * 512, "timestamp": -(2**53)}]}, 422, "timest"),
    ],
)  # fmt: skip
def test_bad_requests_are_4xx_with_a_reason(http, path, body, status, reason):
    headers = WRITE if path == "/gallery" else READ
    answer = http.post(path, json=body, headers=headers)
    assert answer.status_code == status and reason in answer.json()["detail"], answer.text


def test_bodies_that_are_not_json_or_too_large_are_refused(http):
    headers = {**WRITE, "content-type": "application/json"}
    nan = '{"items": [{"feature": [NaN' + ", 1.0" * 511 + "]}]}"
    answer = http.post("/gallery", content=nan, headers=headers)
    assert answer.status_code == 422 and "NaN" in answer.json()["detail"]
    assert http.post("/gallery", content=b"{not json", headers=headers).status_code == 422
    big = b'{"images": ["' + b"A" * (2 << 20) + b'"]}'
    answer = http.post("/embed", content=big, headers={**READ, "content-type": "application/json"})
    assert answer.status_code == 413 and "over the limit of 1048576 bytes" in answer.text

    def chunks():  # no Content-Length: the limit is counted as the body streams in
        yield b'{"images": ["'
        for _ in range(40):
            yield b"A" * 65536
        yield b'"]}'

    answer = http.post(
        "/embed", content=chunks(), headers={**READ, "content-type": "application/json"}
    )
    assert answer.status_code == 413


def test_every_id_enrolment_accepts_can_be_read_and_deleted_by_the_client(url, http):
    """An id is one URL path segment: '.' and '..' are not (clients resolve them away, so
    they could be enrolled but never looked up or deleted); ids that are are all reachable."""
    ids = [".x", "x.", "a..b", "a:b", "-x", "_", "9" * 64]
    feats = unit_rows(len(ids), 512, seed=3)
    items = [{"id": i, "feature": f.tolist()} for i, f in zip(ids, feats, strict=True)]
    assert http.post("/gallery", json={"items": items}, headers=WRITE).json()["ids"] == ids
    with GalleryClient(url, api_key=WRITE_KEY) as client:
        assert [client.get(i)["id"] for i in ids] == ids
        for i in ids:
            client.remove(i)
    assert [http.get(f"/gallery/{quote(i)}", headers=READ).status_code for i in ids] == [404] * 7


def test_values_at_the_ends_of_their_ranges_are_kept_exactly(http):
    item = {"feature": [1.0] * 512, "id": "ends", "camera": 2**31 - 1, "timestamp": 1 - 2**53}
    assert http.post("/gallery", json={"items": [item]}, headers=WRITE).status_code == 201
    entry = http.get("/gallery/ends", headers=READ).json()
    assert (entry["camera"], entry["timestamp"]) == (2**31 - 1, 1 - 2.0**53)
    assert http.delete("/gallery/ends", headers=WRITE).status_code == 200


@pytest.mark.parametrize("scale", [1e-30, 1e-40, 1e30, 1e38, 1e39])
def test_a_feature_counts_by_its_direction_however_small_or_large_its_values(http, scale):
    """Squares of 1e-30 vanish in float32 and those of 1e38 overflow: neither is "all zero"."""
    row = unit_rows(1, 512, seed=11)[0].astype(np.float64)
    item = {"feature": row.tolist(), "id": f"scaled-{np.log10(scale):.0f}"}
    assert http.post("/gallery", json={"items": [item]}, headers=WRITE).status_code == 201
    scaled = (row * scale).tolist()
    answer = http.post("/identify", json={"features": [scaled], "k": 1}, headers=READ)
    assert answer.status_code == 200, answer.text
    best = answer.json()["results"][0]["matches"][0]
    assert best["id"] == item["id"] and best["score"] == pytest.approx(1.0, abs=1e-5)
    again = {"feature": scaled, "id": f"scaled-again-{np.log10(scale):.0f}"}
    assert http.post("/gallery", json={"items": [again]}, headers=WRITE).status_code == 201
    for entry_id in (item["id"], again["id"]):
        assert http.delete(f"/gallery/{entry_id}", headers=WRITE).status_code == 200


def test_the_pixels_of_all_images_of_a_request_are_limited_before_decoding(http):
    """Each 300x300 image is within the per-image limit (131,072 pixels); three together
    (270,000) are over the request's 200,000, and are refused from their headers alone (the
    claimed images hold no pixel data: decoding them would be a 422)."""
    two = [b64(png_bytes(300, 300))] * 2
    assert http.post("/embed", json={"images": two}, headers=READ).status_code == 200
    three = [b64(png_claiming(300, 300))] * 3
    for path, body, headers in [
        ("/embed", {"images": three}, READ),
        ("/identify", {"images": three}, READ),
        (
            "/gallery",
            {"items": [{"image": d, "id": f"px-{i}"} for i, d in enumerate(three)]},
            WRITE,
        ),
    ]:
        answer = http.post(path, json=body, headers=headers)
        assert answer.status_code == 413, answer.text
        assert answer.json()["detail"] == (
            "the 3 images of this request have 270000 pixels together; the limit is 200000 "
            "(--max-request-megapixels)"
        )
    assert http.get("/gallery/px-0", headers=READ).status_code == 404


def test_unknown_and_malformed_ids(http):
    assert http.get("/gallery/no-such-id", headers=READ).status_code == 404
    answer = http.delete("/gallery/bad%20id", headers=WRITE)
    assert answer.status_code == 422 and "must be 1-64 letters" in answer.json()["detail"]
    assert http.get("/gallery/feat-0%0A", headers=READ).status_code == 422  # no line ends


def test_openapi_describes_every_endpoint(http):
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/health", "/stats", "/embed", "/gallery", "/gallery/{entry_id}", "/identify"} <= set(
        paths
    )
    assert set(paths["/gallery/{entry_id}"]) == {"get", "delete"}
    body = paths["/identify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"images", "features", "k"} == set(body["properties"])  # the route reads it itself
