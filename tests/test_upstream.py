"""`medmo serve --upstream URL`: the medical front end over another real `medmo serve` (the
tiny model, on 127.0.0.1), as it would sit in front of vLLM or SGLang. The front end lists
its --served-model-name, answers /v1/ground and /v1/report from the upstream's text (boxes
mapped to the image's pixels), passes chats through (plain and streamed, images as PNG or JPEG data
URLs, finish reasons and refusals kept), and a long stream never stalls batched requests,
upstream or on the local engine (they are answered while the stream is still open)."""
from __future__ import annotations

import asyncio
import base64
import io
import json

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medmo.serve.api import ServeConfig, create_app


def _png(size=(300, 200)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


GRAY = _png()


@pytest.fixture(scope="module")
def trained_dir(tiny_dir, tmp_path_factory):
    from serve_model import train_fixed_answers

    return train_fixed_answers(tiny_dir, tmp_path_factory.getbasetemp() / "fixed_answers")


@pytest.fixture(scope="module")
def upstream(trained_dir):
    """A real `medmo serve` of the trained tiny model, with a key (the front end must send it)."""
    from serve_model import running_server

    with running_server(create_app(ServeConfig(model=str(trained_dir), max_new_tokens=32, api_key="up-key"))) as url:
        yield url


@pytest.fixture(scope="module")
def front(upstream):
    import os

    os.environ["MEDMO_UPSTREAM_API_KEY"] = "up-key"
    try:
        cfg = ServeConfig(upstream=f"{upstream}/v1", served_model_name="medmo-x", max_new_tokens=32)
        with TestClient(create_app(cfg)) as c:
            yield c
    finally:
        del os.environ["MEDMO_UPSTREAM_API_KEY"]


def _box_chat(**fields) -> dict:
    from serve_model import GROUND_PROMPT

    return {"max_tokens": 32, **fields, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": GRAY}}, {"type": "text", "text": "\n" + GROUND_PROMPT}]}]}


def test_models_list_the_served_name(front):
    assert [m["id"] for m in front.get("/v1/models").json()["data"]] == ["medmo-x"]
    assert front.get("/healthz").json()["upstream"].endswith("/v1")


def test_ground_and_report_answer_from_the_upstream(front):
    from medmo.infer import split_report
    from serve_model import BOX_ANSWER, BOX_GRID, TARGET

    r = front.post("/v1/ground", json={"image": GRAY, "target": TARGET})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] == BOX_ANSWER and body["image_size"] == [300, 200]
    assert body["boxes"] == [{"bbox": [37.5, 50.0, 142.5, 138.0], "grid": BOX_GRID, "label": "lesion"}]
    r = front.post("/v1/report", json={"image": GRAY})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("findings", "impression")} == split_report(r.json()["answer"])


def test_dicom_is_decoded_by_the_front_end(front):
    from pydicom.data import get_testdata_file

    raw = open(get_testdata_file("CT_small.dcm"), "rb").read()
    r = front.post("/v1/vqa", json={"image": "data:application/dicom;base64," + base64.b64encode(raw).decode(),
                                    "question": "Is it normal?", "window": "lung"})
    assert r.status_code == 200, r.text
    assert r.json()["image_size"] == [128, 128] and r.json()["image_format"] == "dicom"


def test_chat_passes_through_plain_and_streamed(front):
    from serve_model import BOX_ANSWER

    r = front.post("/v1/chat/completions", json=_box_chat())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "medmo-x" and body["choices"][0]["message"]["content"] == BOX_ANSWER
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"]["completion_tokens"] > 0
    with front.stream("POST", "/v1/chat/completions", json=_box_chat(stream=True)) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip() == BOX_ANSWER
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[0]["model"] == "medmo-x"


def test_finish_reasons_stop_strings_and_refusals_pass_through(front):
    from serve_model import BOX_ANSWER

    cut = front.post("/v1/chat/completions", json=_box_chat(max_tokens=3)).json()["choices"][0]
    assert cut["finish_reason"] == "length" and BOX_ANSWER.startswith(cut["message"]["content"])
    stopped = front.post("/v1/chat/completions", json=_box_chat(stop=["<box>"])).json()["choices"][0]
    assert (stopped["message"]["content"].strip(), stopped["finish_reason"]) == ("lesion", "stop")
    r = front.post("/v1/chat/completions", json=_box_chat(logprobs=True))  # refused by the front end
    assert r.status_code == 400 and "logprobs" in r.json()["error"]["message"]
    r = front.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi <|image_pad|>"}]})
    assert r.status_code == 400 and "<|image_pad|>" in r.json()["error"]["message"]  # the upstream's refusal
    assert front.post("/v1/chat/completions", json=_box_chat()).status_code == 200


def test_with_tokenizer_the_front_end_checks_prompts_itself(trained_dir):
    """--tokenizer: prompt budgets and special tokens are refused by the front end, before any
    upstream is asked (here there is none: a port nothing listens on)."""
    cfg = ServeConfig(upstream="http://127.0.0.1:9/v1", model="m", tokenizer=str(trained_dir), max_prompt_tokens=64)
    with TestClient(create_app(cfg)) as c:
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi <|im_start|>"}]})
        assert r.status_code == 400 and "<|im_start|>" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "word " * 200}]})
        assert r.status_code == 400 and "max_prompt_tokens" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 502  # within budget: it goes upstream, which is not there
    with pytest.raises(ValueError, match="--tokenizer is for --upstream"):
        ServeConfig(model=str(trained_dir), tokenizer=str(trained_dir))


def test_an_unreachable_upstream_is_a_clear_error():
    import socket

    with socket.socket() as s:  # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValueError, match="could not read its model"):
        create_app(ServeConfig(upstream=f"http://127.0.0.1:{port}/v1"))
    with TestClient(create_app(ServeConfig(upstream=f"http://127.0.0.1:{port}/v1", model="m"))) as c:
        r = c.post("/v1/vqa", json={"image": GRAY, "question": "q"})
    assert r.status_code == 502 and "did not answer" in r.json()["error"]["message"]


async def _stream_beside_batched(url: str) -> tuple[list[tuple[str, int]], int]:
    """A long stream and four short requests, sent together: the order in which things end,
    each with the stream's chunks so far, and the stream's chunks in all."""
    order: list[tuple[str, int]] = []
    chunks = 0

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        async def stream() -> None:
            nonlocal chunks
            body = {"stream": True, "max_tokens": 400, "messages": [{"role": "user", "content": "Describe."}]}
            async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: {"):
                        chunks += 1
                    if line == "data: [DONE]":
                        order.append(("stream", chunks))

        async def short(i: int) -> None:
            r = await http.post("/v1/vqa", json={"image": GRAY, "question": f"q{i}?", "max_new_tokens": 2})
            order.append((f"short {r.status_code}", chunks))

        await asyncio.gather(stream(), *(short(i) for i in range(4)))
    return order, chunks


@pytest.mark.parametrize("where", ["local", "upstream"])
def test_a_long_stream_does_not_stall_batched_requests(tiny_dir, where):
    """Requests that share a batch with a 400-token stream are answered after their own 2
    tokens, while the stream is still open (order, not timing)."""
    from serve_model import running_server

    local = ServeConfig(model=str(tiny_dir), max_new_tokens=400, max_wait_ms=1000, max_request_tokens=512)
    with running_server(create_app(local)) as url:
        if where == "upstream":
            with running_server(create_app(ServeConfig(upstream=f"{url}/v1", max_new_tokens=400))) as front:
                order, chunks = asyncio.run(_stream_beside_batched(front))
        else:
            order, chunks = asyncio.run(_stream_beside_batched(url))
    assert [what for what, _ in order] == ["short 200"] * 4 + ["stream"], order
    # answered early in the stream (a stall would answer them with its last chunks), which went on
    assert chunks > 100 and max(seen for _, seen in order[:4]) < chunks // 2, (order, chunks)


def test_engine_and_upstream_options_are_checked(tiny_dir):
    import importlib.util

    with pytest.raises(ValueError, match="http"):
        ServeConfig(upstream="127.0.0.1:8001/v1")
    with pytest.raises(ValueError, match="give one of them"):
        ServeConfig(upstream="http://127.0.0.1:8001/v1", engine="vllm")
    if importlib.util.find_spec("vllm") is None:  # CI: vLLM is not installed, the error says what to do
        with pytest.raises(ValueError, match="--engine vllm needs vLLM"):
            create_app(ServeConfig(model=str(tiny_dir), engine="vllm"))


def test_images_over_max_pixels_shrink_before_they_are_sent():
    from medmo.model.generate import Request
    from medmo.serve.engines import UpstreamEngine

    engine = UpstreamEngine("http://127.0.0.1:9/v1", "m", None, 8, 10, 8, max_pixels=64 * 64)
    big, small = Image.new("RGB", (1000, 500)), Image.new("RGB", (40, 30))
    req = Request(messages=[{"role": "user", "content": "<image><image> compare"}], images=[big, small])
    parts = engine._params(req, None)["messages"][0]["content"]
    sizes = [Image.open(io.BytesIO(base64.b64decode(p["image_url"]["url"].split(",", 1)[1]))).size
             for p in parts if p["type"] == "image_url"]
    assert sizes[1] == (40, 30) and sizes[0][0] * sizes[0][1] <= 64 * 64  # the small one is sent as it is
    assert abs(sizes[0][0] / sizes[0][1] - 2) < 0.5  # the aspect is kept


def _jpeg_bytes(size=(1024, 768), mode="RGB") -> bytes:
    import numpy as np

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0]), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("source, sent", [("jpeg", "image/jpeg"), ("jpeg-grey", "image/png"), ("png", "image/png")])
def test_a_jpeg_travels_as_jpeg_anything_else_as_png(source, sent):
    """An RGB JPEG (lossy already) goes upstream as a JPEG, shrunk or not; a PNG, and a grey JPEG
    (converted to RGB by the decoder, so no longer the file's pixels as read), as a lossless PNG."""
    from medmo.imaging import Budget, Limits
    from medmo.model.generate import Request
    from medmo.serve.engines import UpstreamEngine
    from medmo.serve.inputs import decode_image

    engine = UpstreamEngine("http://127.0.0.1:9/v1", "m", None, 8, 10, 8, max_pixels=256 * 256)
    if source == "png":
        data = base64.b64decode(_png((1024, 768)).split(",", 1)[1])
    else:
        data = _jpeg_bytes(mode="RGB" if source == "jpeg" else "L")
    for size in ((1024, 768), (200, 150)):  # shrunk, and sent at its own size
        raw = data if size == (1024, 768) else _resized(data, size)
        img = decode_image(raw, budget=Budget(Limits()), draft=engine.shrink_to).image
        req = Request(messages=[{"role": "user", "content": "<image> what is it?"}], images=[img])
        url = engine._params(req, None)["messages"][0]["content"][0]["image_url"]["url"]
        assert url.startswith(f"data:{sent};base64,")
        got = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert got.width * got.height <= max(256 * 256, size[0] * size[1]) and got.mode == "RGB"
        assert abs(got.width / got.height - 4 / 3) < 0.2  # budget_size rounds sides to 32 px


def _resized(data: bytes, size) -> bytes:
    im = Image.open(io.BytesIO(data))
    buf = io.BytesIO()
    im.resize(size).save(buf, format=im.format)
    return buf.getvalue()


def test_max_pixels_under_one_patch_is_refused():
    with pytest.raises(ValueError, match="--max-pixels must be at least"):
        ServeConfig(upstream="http://127.0.0.1:8001/v1", max_pixels=500)
