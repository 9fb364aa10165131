"""LLM judge against a local fake OpenAI-compatible server: verdicts, cache, timeouts, retries."""
import time

import pytest

from fake_openai import FakeOpenAI, Reject, user_text
from medmo.eval.judge import Judge, JudgeConfig, parse_verdict


@pytest.mark.parametrize("reply,verdict", [
    ("yes", True),  # bare word
    ("Yes. The answers agree.", True),  # leading word with an explanation
    ("**No** - different organ", False),  # markdown around the word
    ("Nope", None),  # not a yes/no word
    ("The answer is yes", None),  # the verdict must lead
    ("", None),  # empty reply
])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict


def _same_answer(body):
    text = user_text(body)
    ref = text.split("Reference answer: ")[1].split("\n")[0]
    resp = text.split("Model answer: ")[1].split("\n")[0]
    return "yes" if ref.lower() in resp.lower() else "no"


ITEMS = [{"question": "What organ?", "reference": "liver", "response": "The liver."},
         {"question": "What organ?", "reference": "liver", "response": "spleen"},
         {"question": "Which side?", "reference": "left", "response": "left side"}]


def test_verdicts_and_cache_make_a_rerun_free(tmp_path):
    with FakeOpenAI(_same_answer) as fake:
        cfg = JudgeConfig(model="judge-1", base_url=fake.base_url, concurrency=2)
        judge = Judge(cfg, tmp_path / "cache.jsonl")
        assert judge.judge(ITEMS) == [True, False, True]
        assert len(fake.bodies) == 3 and fake.max_active <= 2
        assert fake.bodies[0]["model"] == "judge-1"
        again = Judge(cfg, tmp_path / "cache.jsonl")  # a new process: the cache is on disk
        assert again.judge(ITEMS) == [True, False, True]
        assert len(fake.bodies) == 3  # nothing asked twice
        other = Judge(JudgeConfig(model="judge-2", base_url=fake.base_url), tmp_path / "cache.jsonl")
        other.judge(ITEMS[:1])
        assert len(fake.bodies) == 4  # the cache is keyed by judge model too


def test_timeout_is_counted_after_retries(tmp_path):
    def slow(body):
        time.sleep(1.0)
        return "yes"

    with FakeOpenAI(slow) as fake:
        cfg = JudgeConfig(model="j", base_url=fake.base_url, timeout=0.2, retries=1, backoff=0.01)
        judge = Judge(cfg, tmp_path / "c.jsonl")
        assert judge.judge(ITEMS[:1]) == [None]
        assert judge.last_errors == {0: "judge_timeout"}
        assert len(fake.bodies) == 2  # one try + one retry
    assert not (tmp_path / "c.jsonl").exists() or (tmp_path / "c.jsonl").read_text() == ""  # failures not cached


def test_retry_recovers_from_a_server_error(tmp_path):
    calls = []

    def flaky(body):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("overloaded")
        return "yes"

    with FakeOpenAI(flaky) as fake:
        judge = Judge(JudgeConfig(model="j", base_url=fake.base_url, retries=2, backoff=0.01), tmp_path / "c.jsonl")
        assert judge.judge(ITEMS[:1]) == [True]
        assert judge.last_errors == {}


def test_unparsable_reply_is_counted(tmp_path):
    with FakeOpenAI(lambda body: "maybe") as fake:
        judge = Judge(JudgeConfig(model="j", base_url=fake.base_url), tmp_path / "c.jsonl")
        assert judge.judge(ITEMS[:1]) == [None]
        assert judge.last_errors == {0: "judge_unparsable"}


def test_misconfigured_judge_fails_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="base URL"):
        Judge(JudgeConfig(model="j"), tmp_path / "c.jsonl")
    with pytest.raises(ValueError, match="judge-model"):
        Judge(JudgeConfig(), tmp_path / "c.jsonl")
    with pytest.raises(ValueError, match="concurrency"):
        JudgeConfig(model="j", concurrency=0)


def test_adapts_to_endpoints_refusing_max_tokens_and_temperature(tmp_path):
    def strict_endpoint(body):  # like newer OpenAI models
        if "max_tokens" in body:
            raise Reject("Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead.")
        if "temperature" in body:
            raise Reject("Unsupported value: 'temperature' does not support 0 with this model.")
        return "yes"

    with FakeOpenAI(strict_endpoint) as fake:
        judge = Judge(JudgeConfig(model="j", base_url=fake.base_url, retries=0), tmp_path / "c.jsonl")
        assert judge.judge(ITEMS) == [True, True, True]
        assert judge.last_errors == {}
        assert "max_completion_tokens" in fake.bodies[-1] and "temperature" not in fake.bodies[-1]


def test_a_rejected_request_is_not_retried(tmp_path):
    with FakeOpenAI(lambda body: (_ for _ in ()).throw(Reject("model not found"))) as fake:
        judge = Judge(JudgeConfig(model="j", base_url=fake.base_url, retries=3, backoff=0.01), tmp_path / "c.jsonl")
        assert judge.judge(ITEMS[:1]) == [None]
        assert judge.last_errors == {0: "judge_error"} and len(fake.bodies) == 1
