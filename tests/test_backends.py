"""Backends: hf batching equals one-at-a-time under greedy; openai against a local fake server."""
import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from fake_openai import FakeOpenAI, user_text
from medmo.eval.backends import Generation, HFBackend, Request, get_backend


def _image(w, h, seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def _requests():
    reqs = []
    for i in range(5):
        if i % 3 == 2:  # text-only rows mixed into image batches
            reqs.append(Request([{"role": "user", "content": f"Is finding {i} present? Please answer yes or no."}]))
        else:  # images of different sizes -> different numbers of visual tokens and padding per row
            reqs.append(Request([{"role": "user", "content": "<image>Detect and localize all cells." + " Now." * i}],
                                [_image(64 + 32 * (i % 4), 96 + 32 * (i % 3), i)]))
    return reqs


@pytest.fixture(scope="module")
def hf(tiny_dir):
    return HFBackend(tiny_dir, batch_size=4, max_new_tokens=8)


def test_batched_equals_one_at_a_time(hf):
    reqs = _requests()
    hf.batch_size = 4
    batched = hf.generate(reqs)
    hf.batch_size = 1
    single = hf.generate(reqs)
    hf.batch_size = 4
    assert batched == single
    assert len(set(batched)) > 1  # different prompts give different text: outputs are not all empty


def test_per_request_token_limit_is_a_prefix(hf):
    reqs = _requests()[:3]
    full = hf.generate(reqs)
    short = hf.generate([Request(r.messages, r.images, max_new_tokens=3) for r in reqs])
    assert all(f.startswith(s) for f, s in zip(full, short))
    assert any(len(s) < len(f) for f, s in zip(full, short))


def test_hf_reports_cut_and_stopped_answers(hf):
    reqs = _requests()[:2]
    cut = hf.generations([Request(r.messages, r.images, max_new_tokens=3) for r in reqs])
    assert [(g.finish_reason, g.tokens, g.error) for g in cut] == [("length", 3, None)] * 2
    # make the first token the model writes for request 0 an end-of-answer token: it stops at once
    enc = hf.processor(text=[hf._prompt(reqs[0])], images=reqs[0].images, return_tensors="pt")
    first = int(hf.model.generate(**enc, max_new_tokens=1, do_sample=False)[0, -1])
    cfg = hf.model.generation_config
    saved = cfg.eos_token_id
    try:
        cfg.eos_token_id = first
        stopped = hf.generations([Request(reqs[0].messages, reqs[0].images, max_new_tokens=5)])
    finally:
        cfg.eos_token_id = saved
    assert stopped[0].finish_reason == "stop" and stopped[0].tokens == 0


def test_image_budget_bounds_visual_tokens(tiny_dir):
    b = HFBackend(tiny_dir, max_new_tokens=1, max_pixels=64 * 64)
    enc = b.processor(text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[_image(512, 512, 0)],
                      return_tensors="pt")
    # 64x64 px budget / (32x32 px per visual token) = 4 tokens, instead of 256 unbounded
    assert int((enc["input_ids"] == b.processor.image_token_id).sum()) <= 4


def test_request_checks_placeholders():
    with pytest.raises(ValueError, match="1 <image> placeholder"):
        Request([{"role": "user", "content": "<image>what?"}], [])


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_p": 0.0}, "top_p must be in"),
    ({"top_p": 1.5}, "top_p must be in"),
])
def test_request_checks_sampling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Request([{"role": "user", "content": "hi"}], **kwargs)


def test_sampling_is_seeded_and_never_mixes_with_greedy(hf):
    """A batch shares one decoding setting: greedy rows stay greedy next to sampled ones."""
    from dataclasses import replace

    hf.batch_size = 4
    reqs = _requests()
    greedy = hf.generate(reqs)
    sampled = [replace(r, temperature=5.0, seed=7) for r in reqs[:2]]
    mixed = hf.generate([reqs[2], sampled[0], reqs[3], sampled[1], reqs[4]])
    assert [mixed[0], mixed[2], mixed[4]] == [greedy[2], greedy[3], greedy[4]]
    assert [mixed[1], mixed[3]] == hf.generate(sampled)  # a seed gives the same answer, in any company
    assert [mixed[1], mixed[3]] != greedy[:2]  # at temperature 5 the tiny model leaves the argmax path
    other_seed = hf.generate([replace(r, seed=8) for r in sampled])
    assert other_seed != [mixed[1], mixed[3]]


def test_unknown_backend_suggests():
    with pytest.raises(ValueError, match="Did you mean 'openai'"):
        get_backend("opena1", model="m")


def test_vllm_missing_is_a_clear_error():
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed")
    except ImportError:
        pass
    with pytest.raises(ValueError, match="pip install"):
        get_backend("vllm", model="x")


def test_openai_backend_sends_data_urls_and_bounds_concurrency():
    def reply(body):
        time.sleep(0.05)
        return "echo:" + user_text(body)

    reqs = [Request([{"role": "user", "content": f"<image>q{i}"}], [_image(8, 8, i)]) for i in range(8)]
    with FakeOpenAI(reply) as fake:
        backend = get_backend("openai", model="served", base_url=fake.base_url, concurrency=3)
        out = backend.generate(reqs)
    assert out == [f"echo:q{i}" for i in range(8)]  # order kept
    assert 1 <= fake.max_active <= 3
    part = fake.bodies[0]["messages"][0]["content"][0]
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/png;base64,")
    png = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).size == (8, 8)
    assert fake.bodies[0]["temperature"] == 0.0 and "seed" not in fake.bodies[0]
    with FakeOpenAI(reply) as fake:  # a request's own sampling settings win over the backend's default
        get_backend("openai", model="served", base_url=fake.base_url).generate(
            [Request([{"role": "user", "content": "q"}], temperature=0.7, top_p=0.9, seed=3)])
    assert {k: fake.bodies[0][k] for k in ("temperature", "top_p", "seed")} == {"temperature": 0.7, "top_p": 0.9,
                                                                              "seed": 3}


def test_openai_backend_counts_failures_instead_of_raising():
    def reply(body):
        if "bad" in user_text(body):
            raise RuntimeError("boom")
        return "ok"

    reqs = [Request([{"role": "user", "content": t}]) for t in ("good", "bad", "good")]
    with FakeOpenAI(reply) as fake:
        backend = get_backend("openai", model="served", base_url=fake.base_url, max_retries=0)
        gens = backend.generations(reqs)
    assert [g.text for g in gens] == ["ok", "", "ok"]
    assert [i for i, g in enumerate(gens) if g.error] == [1] and "500" in gens[1].error
    with FakeOpenAI(reply) as fake:
        gens = get_backend("openai", model="served", base_url=fake.base_url, max_retries=0).generations(reqs)
    assert gens[0] == Generation("ok", finish_reason="stop", tokens=1)
    assert gens[1].text == "" and "500" in gens[1].error


def test_openai_backend_reports_cut_answers():
    def reply(body):
        return {"content": "The answer is", "finish_reason": "length", "completion_tokens": body["max_tokens"]}

    with FakeOpenAI(reply) as fake:
        gens = get_backend("openai", model="served", base_url=fake.base_url).generations(
            [Request([{"role": "user", "content": "q"}], max_new_tokens=7)])
    assert gens == [Generation("The answer is", finish_reason="length", tokens=7)]


def test_openai_backend_needs_a_url(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="base_url"):
        get_backend("openai", model="m")


def test_left_padded_rows_get_the_same_logits_as_alone(hf):
    """Stronger than equal text: every decoding step's logits match, so Qwen3-VL's 3-D rope
    positions (prefill from the attention mask, decode from rope_deltas) ignore the padding."""
    import torch

    reqs = _requests()[:3]  # two images of different sizes and a text-only row: different pad lengths
    prompts = [hf._prompt(r) for r in reqs]
    images = [im for r in reqs for im in r.images]

    def scores(texts, imgs):
        enc = hf.processor(text=texts, images=imgs or None, return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = hf.model.generate(**enc, max_new_tokens=3, do_sample=False, output_scores=True,
                                    return_dict_in_generate=True)
        return torch.stack(out.scores, 1)  # [batch, steps, vocab]

    batched = scores(prompts, images)
    assert int((hf.processor(text=prompts, images=images, padding=True, return_tensors="pt")["attention_mask"] == 0)
               .sum()) > 0  # the batch really is padded
    for i, r in enumerate(reqs):
        alone = scores([prompts[i]], list(r.images))
        torch.testing.assert_close(batched[i], alone[0], atol=1e-4, rtol=1e-4)
