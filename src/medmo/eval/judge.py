"""LLM judge for open answers, over any OpenAI-compatible endpoint.

The judge reads (question, reference answer, model response) and answers "yes" or "no":
does the response mean the same as the reference? MedMO's tables used an LLM judge for
open VQA answers and reports (MedEvalKit plus gpt-5-mini); medmo lets the user pick any
served model (`--judge-model`, `--judge-base-url`, key from an environment variable),
and records the judge model in results.json, because numbers from different judges are
not comparable.

- async, at most `concurrency` requests in flight;
- each request has a timeout and is retried with exponential backoff;
- replies are cached on disk (JSONL, keyed by a hash of judge model + prompt), so a
  re-run, a resumed run or a run with more samples costs only the new prompts;
- an endpoint that refuses `max_tokens` or temperature 0 (newer OpenAI models) gets
  `max_completion_tokens` / its default temperature instead, once, without a failed try;
- a request that still fails gives verdict None and a reason ("judge_timeout",
  "judge_error", "judge_unparsable"); the runner keeps the rule-based score for that
  sample and counts the reason. Nothing raises for a bad endpoint once configured.

Departure from MedEvalKit: its judge prompt asks for a 0/1 score inside free text; medmo
asks for a single leading yes/no word and reads only that word.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PROMPT = (
    "You are grading an answer to a medical question against the reference answer.\n"
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Model answer: {response}\n"
    "Does the model answer mean the same as the reference answer (synonyms, abbreviations and "
    "extra correct detail are fine; a different or contradicting finding is not)? "
    "Reply with one word: yes or no."
)
_VERDICT = re.compile(r"^\W*(yes|no)\b", re.I)


@dataclass
class JudgeConfig:
    """Judge settings; the judge is off while `model` is empty."""

    model: str | None = None  # judge model name as the endpoint knows it (e.g. gpt-5-mini); None = no judge
    base_url: str | None = None  # OpenAI-compatible base URL, e.g. https://api.openai.com/v1 (or OPENAI_BASE_URL)
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the key (never put keys in recipes)
    concurrency: int = 8  # requests in flight at once
    timeout: float = 60.0  # seconds per request
    retries: int = 3  # extra attempts after a failure, with exponential backoff
    backoff: float = 1.0  # seconds before the first retry; doubled each time
    temperature: float | None = 0.0  # None: let the endpoint choose (some models reject 0)
    max_tokens: int = 16  # the verdict is one word; reasoning judges (gpt-5*, o*) need ~2048 for their thinking
    cache: str | None = None  # cache file; None = judge_cache.jsonl in the run folder

    def __post_init__(self):
        if self.concurrency < 1:
            raise ValueError(f"judge.concurrency must be >= 1, got {self.concurrency}")
        if self.retries < 0 or self.timeout <= 0:
            raise ValueError("judge.retries must be >= 0 and judge.timeout > 0")

    @property
    def enabled(self) -> bool:
        return bool(self.model)


def judge_prompt(item: dict) -> str:
    return PROMPT.format(question=item.get("question", ""), reference=item.get("reference", ""),
                         response=item.get("response", ""))


def parse_verdict(text: str | None) -> bool | None:
    """The reply's leading yes/no word; None when it has none ("Yes." -> True, "Nope" -> None)."""
    m = _VERDICT.match(text or "")
    return None if m is None else m.group(1).lower() == "yes"


class Judge:
    """`judge(items) -> verdicts` with `last_errors[index] = reason` for the failed ones."""

    def __init__(self, cfg: JudgeConfig, cache_path: str | Path):
        if not cfg.enabled:
            raise ValueError("judge.model is empty: set --judge-model (and --judge-base-url) to use a judge")
        self.cfg = cfg
        self.base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL")
        if not self.base_url:
            raise ValueError("judge needs a base URL: --judge-base-url (e.g. https://api.openai.com/v1) "
                             "or the OPENAI_BASE_URL environment variable")
        self.cache_path = Path(cfg.cache or cache_path)
        self.cache: dict[str, str] = self._load_cache()
        self.last_errors: dict[int, str] = {}
        self.requests_sent = 0
        self._params: dict = {"max_tokens": cfg.max_tokens}
        if cfg.temperature is not None:
            self._params["temperature"] = cfg.temperature

    def _key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.cfg.model}\n{prompt}".encode()).hexdigest()

    def _load_cache(self) -> dict[str, str]:
        cache: dict[str, str] = {}
        if self.cache_path.exists():
            for line in self.cache_path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    cache[row["key"]] = row["reply"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by an interrupted run: that prompt is asked again
        return cache

    def judge(self, items: list[dict]) -> list[bool | None]:
        self.last_errors = {}
        prompts = [judge_prompt(it) for it in items]
        todo = sorted({p for p in prompts if self._key(p) not in self.cache})
        if todo:
            replies = asyncio.run(self._ask_all(todo))
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a", encoding="utf-8") as f:
                for p, reply in zip(todo, replies):
                    if isinstance(reply, str):  # failures are not cached: a later run asks again
                        self.cache[self._key(p)] = reply
                        f.write(json.dumps({"key": self._key(p), "model": self.cfg.model, "reply": reply}) + "\n")
            failed = {p: r[1] for p, r in zip(todo, replies) if isinstance(r, tuple)}
        else:
            failed = {}
        verdicts: list[bool | None] = []
        for i, p in enumerate(prompts):
            if p in failed:
                self.last_errors[i] = failed[p]
                verdicts.append(None)
                continue
            v = parse_verdict(self.cache[self._key(p)])
            if v is None:
                self.last_errors[i] = "judge_unparsable"
            verdicts.append(v)
        return verdicts

    async def _ask_all(self, prompts: list[str]) -> list[str | tuple[None, str]]:
        from openai import AsyncOpenAI

        sem = asyncio.Semaphore(self.cfg.concurrency)
        key = os.environ.get(self.cfg.api_key_env) or "EMPTY"
        async with AsyncOpenAI(base_url=self.base_url, api_key=key, timeout=self.cfg.timeout,
                               max_retries=0) as client:
            async def one(prompt: str):
                async with sem:
                    return await self._ask(client, prompt)

            return list(await asyncio.gather(*(one(p) for p in prompts)))

    async def _ask(self, client, prompt: str) -> str | tuple[None, str]:
        import openai

        reason = "judge_error"
        attempt = 0
        while attempt <= self.cfg.retries:
            if attempt:
                await asyncio.sleep(self.cfg.backoff * 2 ** (attempt - 1))
            attempt += 1
            sent = dict(self._params)
            try:
                self.requests_sent += 1
                resp = await client.chat.completions.create(
                    model=self.cfg.model, messages=[{"role": "user", "content": prompt}], **sent)
                return resp.choices[0].message.content or ""
            except openai.BadRequestError as e:
                if sent != self._params or self._adapt(str(e)):  # adapted here or by a concurrent request
                    attempt -= 1  # a parameter the endpoint refuses is not a failed try
                    continue
                reason = "judge_error"
                logger.warning("judge request rejected: %s", e)
                break  # the same request would be rejected again
            except openai.APITimeoutError:
                reason = "judge_timeout"
            except (openai.APIError, OSError) as e:
                reason = "judge_error"
                logger.debug("judge request failed: %s", e)
        logger.warning("judge gave up after %d attempt(s) (%s)", attempt, reason)
        return (None, reason)

    def _adapt(self, message: str) -> bool:
        """Newer OpenAI models refuse `max_tokens` and a non-default temperature: switch once."""
        if "max_tokens" in message and "max_tokens" in self._params:
            self._params["max_completion_tokens"] = self._params.pop("max_tokens")
            return True
        if "temperature" in message and "temperature" in self._params:
            del self._params["temperature"]
            return True
        return False
