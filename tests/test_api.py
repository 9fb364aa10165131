"""The HTTP API against the tiny model: every endpoint, streaming, the official `openai`
client over a real uvicorn server, dynamic batching, and every bad-input case (each
followed by a good request, to show the server keeps serving)."""
from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medmo.serve.api import ServeConfig, create_app

PATIENT_NAME = "CompressedSamples"  # PatientName of pydicom's CT_small.dcm: CompressedSamples^CT1


def _data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def _file_url(path) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(open(path, "rb").read()).decode()


GRAY = _data_url(Image.new("RGB", (300, 200), (128, 128, 128)))


@pytest.fixture(scope="module")
def trained_dir(tiny_dir, tmp_path_factory):
    """The tiny model fine-tuned to answer in known forms (serve_model.py)."""
    from serve_model import train_fixed_answers

    return train_fixed_answers(tiny_dir, tmp_path_factory.getbasetemp() / "fixed_answers")


@pytest.fixture(scope="module")
def client(tiny_dir):
    app = create_app(ServeConfig(model=str(tiny_dir), max_new_tokens=4, max_body_mb=1, max_image_pixels=600 * 600))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def trained_client(trained_dir):
    with TestClient(create_app(ServeConfig(model=str(trained_dir), max_new_tokens=32))) as c:
        yield c


def _ok(client) -> None:
    """A good request right after a bad one: the server keeps serving."""
    r = client.post("/v1/vqa", json={"image": GRAY, "question": "Is it normal?"})
    assert r.status_code == 200, r.text


# ----------------------------------------------------------------------------- endpoints
def test_health_and_models(client):
    assert client.get("/healthz").json()["status"] == "ok"
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["object"] == "model"


def test_ground_returns_pixel_and_grid_boxes_with_labels(trained_client):
    from serve_model import BOX_ANSWER, BOX_GRID, TARGET

    r = trained_client.post("/v1/ground", json={"image": GRAY, "target": TARGET})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] == BOX_ANSWER and body["image_size"] == [300, 200]
    assert body["boxes"] == [{"bbox": [37.5, 50.0, 142.5, 138.0], "grid": BOX_GRID, "label": "lesion"}]
    assert body["labels"] == ["lesion"] and body["target"] == TARGET


def test_report_returns_findings_and_impression(client):
    from medmo.infer import split_report

    body = client.post("/v1/report", json={"image": GRAY}).json()
    assert isinstance(body["answer"], str) and body["task"] == "report"
    assert {k: body[k] for k in ("findings", "impression")} == split_report(body["answer"])


def test_vqa(trained_client):
    from serve_model import BOX_ANSWER

    body = trained_client.post("/v1/vqa", json={"image": GRAY, "question": "Is there a lesion?"}).json()
    assert body["answer"] == BOX_ANSWER and len(body["boxes"]) == 1  # boxes are read from any task's answer


def test_chat_completion_openai_shape(client):
    r = client.post("/v1/chat/completions", json={"model": "any", "max_tokens": 3, "messages": [
        {"role": "system", "content": "You are a radiologist."},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": GRAY}},
                                     {"type": "text", "text": "Describe."}]}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(body["choices"][0]["message"]["content"], str)
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_sampling_is_seeded(client):
    def ask(stream=False, **sampling):
        body = {"max_tokens": 4, "stream": stream, **sampling, "messages": [{"role": "user", "content": "Describe."}]}
        if stream:
            with client.stream("POST", "/v1/chat/completions", json=body) as r:
                events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
            return "".join(e["choices"][0]["delta"].get("content", "") for e in events).strip()
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"]

    greedy = ask()
    assert ask(temperature=0) == greedy
    seeded = [ask(temperature=2.0, top_p=1.0, seed=s) for s in (1, 1, 2, 3, 4)]
    assert seeded[0] == seeded[1] == ask(stream=True, temperature=2.0, top_p=1.0, seed=1)  # same seed, same answer
    assert any(answer != greedy for answer in seeded)  # at temperature 2 sampling leaves the argmax path
    r = client.post("/v1/chat/completions", json={"max_tokens": 4, "temperature": 2.0, "top_p": 1.0, "seed": 1, "n": 3,
                                                  "messages": [{"role": "user", "content": "Describe."}]})
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    assert choices[0]["message"]["content"] == seeded[0]  # seeds 1, 2, 3: the same answers as asked one by one
    assert [c["message"]["content"] for c in choices[1:]] == seeded[2:4]
    usage = r.json()["usage"]
    cut = [c["finish_reason"] == "length" for c in choices]  # tokens as generated: 4 each when cut
    assert usage["completion_tokens"] <= 3 * 4 and (usage["completion_tokens"] == 3 * 4) == all(cut)
    for bad, words in (({"temperature": 3}, "temperature"), ({"top_p": 0}, "top_p"), ({"n": 17}, "n"),
                       ({"n": 2, "stream": True}, "n: 1")):
        r = client.post("/v1/chat/completions", json={**bad, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400 and words in r.json()["error"]["message"], r.text


@pytest.mark.parametrize("size", [(300, 200), (64, 64), (1000, 90)])
def test_prompt_tokens_equal_what_the_model_reads(client, size):
    """usage.prompt_tokens (from the template and the image size) vs the processor's real encoding."""
    from medmo.serve.api import chat_request, prompt_tokens

    backend = client.app.state.backend
    image = _data_url(Image.new("RGB", size, (90, 90, 90)))
    req = chat_request([{"role": "system", "content": "You are a radiologist."},
                        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}},
                                                     {"type": "text", "text": "Describe."}]}],
                       client.app.state.cfg.image_budget(), 8)
    real = backend.processor(text=[backend._prompt(req)], images=req.images, return_tensors="pt")
    assert prompt_tokens(backend.processor, req) == real["input_ids"].shape[1]


def test_chat_streaming_server_sent_events(trained_client):
    from serve_model import BOX_ANSWER, GROUND_PROMPT

    with trained_client.stream("POST", "/v1/chat/completions", json={"stream": True, "max_tokens": 32, "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": GRAY}},
                                         {"type": "text", "text": "\n" + GROUND_PROMPT}]}]}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip() == BOX_ANSWER


# ----------------------------------------------------------------------------- vLLM's habits
def _ask_box(client, stream: bool = False, **fields) -> tuple[str, str]:
    """The trained model's box answer, asked with `fields`: (text, finish_reason)."""
    from serve_model import GROUND_PROMPT

    body = {"stream": stream, "max_tokens": 32, **fields, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": GRAY}},
                                     {"type": "text", "text": "\n" + GROUND_PROMPT}]}]}
    if not stream:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"].strip(), r.json()["choices"][0]["finish_reason"]
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    return text.strip(), chunks[-1]["choices"][0]["finish_reason"]


@pytest.mark.parametrize("stream", [False, True])
def test_stop_cuts_at_the_first_stop_string_and_a_cut_answer_says_length(trained_client, stream):
    from serve_model import BOX_ANSWER

    assert _ask_box(trained_client, stream) == (BOX_ANSWER, "stop")  # ended by the model
    assert _ask_box(trained_client, stream, stop=["]]", "<box>"]) == ("lesion", "stop")  # the earliest stop wins
    assert _ask_box(trained_client, stream, stop="not in it") == (BOX_ANSWER, "stop")
    text, finish = _ask_box(trained_client, stream, max_tokens=3)
    assert finish == "length" and BOX_ANSWER.startswith(text) and text != BOX_ANSWER


@pytest.mark.parametrize("field, value", [
    ("logprobs", True), ("top_logprobs", 2), ("response_format", {"type": "json_object"}),
    ("tools", [{"type": "function", "function": {"name": "f"}}]), ("tool_choice", "auto"),
    ("functions", [{"name": "f"}]), ("logit_bias", {"50256": -100}), ("presence_penalty", 0.5),
])
def test_fields_medmo_cannot_honour_are_refused_naming_them(client, field, value):
    r = client.post("/v1/chat/completions", json={field: value, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400, r.text
    assert set(r.json()["error"]) == {"message", "type", "code"} and field in r.json()["error"]["message"]


@pytest.mark.parametrize("field, value", [("logprobs", False), ("response_format", {"type": "text"}),
                                          ("tools", []), ("presence_penalty", 0), ("user", "someone")])
def test_fields_that_ask_for_nothing_are_accepted(client, field, value):
    r = client.post("/v1/chat/completions", json={field: value, "max_tokens": 1,
                                                  "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text


def test_bad_stop_values_are_400(client):
    for stop in (["a", "b", "c", "d", "e"], [""], 5):
        r = client.post("/v1/chat/completions", json={"stop": stop, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400 and "stop" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize("argv, model", [
    (["serve", "M"], "M"),                              # positional, as `vllm serve MODEL`
    (["serve", "--model", "M"], "M"),
    (["serve", "M", "--served-model-name", "medmo-8b"], "M"),
])
def test_cli_takes_the_model_as_vllm_does(monkeypatch, argv, model):
    import medmo.serve.api as api
    from medmo.cli import main

    seen = {}
    monkeypatch.setattr(api, "run", lambda cfg: seen.setdefault("cfg", cfg))
    assert main(argv) == 0
    assert seen["cfg"].model == model and seen["cfg"].dtype == "auto"
    assert seen["cfg"].served_model_name == ("medmo-8b" if "--served-model-name" in argv else "M")


def test_cli_refuses_two_models_and_none(capsys):
    from medmo.cli import main

    assert main(["serve", "A", "--model", "B"]) == 2 and "two models" in capsys.readouterr().err
    assert main(["serve"]) == 2 and "--upstream URL" in capsys.readouterr().err


def test_concurrent_requests_share_batches(client):
    from concurrent.futures import ThreadPoolExecutor

    batcher = client.app.state.batcher
    before_b, before_r = batcher.batches, batcher.requests
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: client.post("/v1/vqa", json={"image": GRAY, "question": "q?"}).status_code,
                              range(8)))
    assert codes == [200] * 8
    assert batcher.requests - before_r == 8
    assert batcher.batches - before_b < 8  # some requests were answered together


def test_dicom_upload_answers_without_patient_tags(client, caplog):
    from pydicom.data import get_testdata_file

    with caplog.at_level(logging.DEBUG):
        texts = [client.post("/v1/ground", json={"image": _file_url(get_testdata_file("CT_small.dcm")),
                                                 "target": "nodule", "window": "lung"}).text,
                 client.post("/v1/preview", json={"image": _file_url(get_testdata_file("CT_small.dcm"))}).text]
    assert json.loads(texts[0])["image_size"] == [128, 128]
    assert json.loads(texts[1])["dicom"]["Modality"] == "CT"
    for text in texts + [caplog.text]:
        assert PATIENT_NAME not in text and "1CT1" not in text


def test_nifti_upload_and_slice_choice(client):
    import nibabel

    from medmo.imaging import open_image

    nii = Path(nibabel.__file__).parent / "tests" / "data" / "example4d.nii.gz"
    r = client.post("/v1/vqa", json={"image": _file_url(nii), "question": "What is this?", "slice_index": 0})
    assert r.status_code == 200, r.text
    assert r.json()["image_size"] == list(open_image(nii, slice_index=0).size)
    assert r.json()["image_format"] == "nifti"


# ----------------------------------------------------------------------------- bad input
def _dicom_without_pixels() -> bytes:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


BAD = [
    # (what, request body or raw bytes, expected status, words the message must contain)
    ("malformed JSON", b'{"image": "abc", "target": ', 400, "malformed JSON"),
    ("body not an object", b"[1, 2]", 400, "JSON object"),
    ("missing field", {"target": "x"}, 400, "image"),
    ("malformed base64", {"image": "data:image/png;base64,@@not-base64@@", "target": "x"}, 400, "base64"),
    ("server path", {"image": "/etc/passwd", "target": "x"}, 400, "paths and URLs are not accepted"),
    ("file URL", {"image": "file:///etc/passwd", "target": "x"}, 400, "paths and URLs are not accepted"),
    ("http URL", {"image": "http://127.0.0.1/x.png", "target": "x"}, 400, "paths and URLs are not accepted"),
    ("relative path", {"image": "../data/img.png", "target": "x"}, 400, "paths and URLs are not accepted"),
    ("unsupported type", {"image": "data:text/plain;base64," + base64.b64encode(b"%PDF-1.4 hello").decode(),
                          "target": "x"}, 400, "expected PNG"),
    ("image over the pixel cap", {"image": _data_url(Image.new("RGB", (700, 700))), "target": "x"}, 413,
     "cap of 360000 pixels (max_image_pixels)"),
    ("image too elongated for the processor", {"image": _data_url(Image.new("RGB", (500, 2))), "target": "x"}, 400,
     "200:1"),
    ("unknown window preset", {"image": GRAY, "target": "x", "window": "lungs"}, 400, "lung"),
]


@pytest.mark.parametrize("what,body,status,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_400_with_a_clear_message(client, what, body, status, words):
    if isinstance(body, bytes):
        r = client.post("/v1/ground", content=body, headers={"content-type": "application/json"})
    else:
        r = client.post("/v1/ground", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]
    _ok(client)


def test_dicom_without_pixel_data_is_400_and_names_no_patient(client, caplog):
    url = "data:application/dicom;base64," + base64.b64encode(_dicom_without_pixels()).decode()
    with caplog.at_level(logging.DEBUG):
        r = client.post("/v1/vqa", json={"image": url, "question": "q"})
    assert r.status_code == 400 and "no pixel data" in r.json()["error"]["message"]
    assert PATIENT_NAME not in r.text and PATIENT_NAME not in caplog.text
    _ok(client)


def test_body_over_the_size_cap_is_413(client):
    big = "A" * (1024 * 1024 + 10)  # the client fixture caps bodies at 1 MB
    r = client.post("/v1/vqa", json={"image": big, "question": "q"})
    assert r.status_code == 413 and "1 MB" in r.json()["error"]["message"]
    _ok(client)


def test_chat_refuses_url_images_and_bad_parts(client):
    for content, words in [([{"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}], "not accepted"),
                           ([{"type": "audio", "audio": "x"}], "unsupported part"),
                           (42, "string or a list")]:
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": content}]})
        assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
    _ok(client)


@pytest.mark.parametrize("headers, status", [
    ({}, 401),                                          # no key at all
    ({"Authorization": "Bearer wrong"}, 401),            # a wrong key
    ({"Authorization": "s3cret"}, 401),                  # the key without the Bearer scheme
    ({"Authorization": "Bearer s3cret"}, 200),           # the right key
])
def test_api_key_guards_every_v1_endpoint(tiny_dir, monkeypatch, headers, status):
    monkeypatch.setenv("MEDMO_API_KEY", "s3cret")  # the default when --api-key is not given
    with TestClient(create_app(ServeConfig(model=str(tiny_dir), max_new_tokens=2))) as c:
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200  # open: the page asks
        for method, path, body in (("get", "/v1/models", None), ("post", "/v1/report", {"image": GRAY}),
                                   ("post", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})):
            r = c.request(method.upper(), path, json=body, headers=headers)
            assert r.status_code == status, (path, r.text)
            if status == 401:
                assert r.json()["error"]["type"] == "authentication_error"
                assert "Authorization: Bearer" in r.json()["error"]["message"]


def test_no_key_by_default(tiny_dir, monkeypatch):
    monkeypatch.delenv("MEDMO_API_KEY", raising=False)
    assert ServeConfig(model=str(tiny_dir)).api_key is None


# ----------------------------------------------------------------------------- real server
def test_openai_client_against_uvicorn(trained_dir, monkeypatch):
    """With an API key, as a shared server would run: the OpenAI clients send it as a Bearer token."""
    from openai import AuthenticationError, OpenAI
    from serve_model import BOX_ANSWER, GROUND_PROMPT, running_server

    app = create_app(ServeConfig(model=str(trained_dir), max_new_tokens=32, api_key="s3cret"))
    with running_server(app) as url:
        with pytest.raises(AuthenticationError, match="wrong API key"):
            OpenAI(base_url=f"{url}/v1", api_key="guess", timeout=60, max_retries=0).models.list()
        oa = OpenAI(base_url=f"{url}/v1", api_key="s3cret", timeout=60, max_retries=0)
        assert [m.id for m in oa.models.list()] == [trained_dir.name]  # --served-model-name: test_upstream.py
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": GRAY}},
                                                 {"type": "text", "text": "\n" + GROUND_PROMPT}]}]
        resp = oa.chat.completions.create(model=trained_dir.name, messages=messages, max_tokens=32)
        assert resp.choices[0].message.content == BOX_ANSWER
        stream = oa.chat.completions.create(model=trained_dir.name, messages=messages, max_tokens=32, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).strip() == BOX_ANSWER
        # eval-core's `openai` backend (medmo eval --backend openai) against this server
        from medmo.eval.backends import OpenAIBackend, Request

        monkeypatch.setenv("MEDMO_TEST_KEY", "s3cret")
        backend = OpenAIBackend(model=trained_dir.name, base_url=f"{url}/v1", max_new_tokens=32,
                                api_key_env="MEDMO_TEST_KEY")
        image = Image.new("RGB", (300, 200), (128, 128, 128))
        req = Request(messages=[{"role": "user", "content": "<image>\n" + GROUND_PROMPT}], images=[image])
        gens = backend.generations([req, req])
        assert [g.text for g in gens] == [BOX_ANSWER, BOX_ANSWER] and not any(g.error for g in gens)
