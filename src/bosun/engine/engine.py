"""The Bosun engine: continuous batching over a paged KV cache.

A worker thread runs the loop: the scheduler (``scheduler.py``) picks this step's tokens
(prompt chunks of newly admitted requests, one token of every decoding one), the runner
computes them in one forward pass, and the engine samples, detokenizes, checks stops and
emits. The asyncio side only queues requests and receives events. Requests join and leave
the batch at every step; when the cache runs out the newest is preempted and recomputed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bosun.engine.blocks import BlockManager
from bosun.engine.chat_template import probe, render
from bosun.engine.client import (
    EngineError,
    EngineOverloadedError,
    EngineStats,
    FinishReason,
    GenerationRequest,
    InvalidRequestError,
    ModelInfo,
    SamplingParams,
    TokenEvent,
    UnknownAdapterError,
)
from bosun.engine.cpus import keep_freed_memory, usable_cpus
from bosun.engine.detokenize import IncrementalDetokenizer
from bosun.engine.loader import LocalModel, load_tokenizer, resolve_model
from bosun.engine.quant import int8_batch, wide_precision
from bosun.engine.runner import ModelRunner, RunnerOptions, load_runner, run_batch
from bosun.engine.sampling import Sampler, choose, is_plain_greedy
from bosun.engine.scheduler import Batch, Scheduled, Scheduler, SequenceState
from bosun.engine.scheduler import Sequence as CacheSequence
from bosun.engine.stops import StopMatcher
from bosun.engine.structured import TokenizerGrammar

__all__ = ["PREFIX_CACHE_TOKENS", "BosunEngine", "EngineOptions", "retained_blocks"]

log = logging.getLogger("bosun.engine")


@dataclass(frozen=True)
class EngineOptions:
    model: str
    served_name: str | None = None
    max_model_len: int | None = None
    max_num_seqs: int = 16
    max_waiting: int = 256
    dtype: str = "auto"
    device: str = "cpu"
    # CPU threads of the engine's team; None: the CPUs this process may use (its affinity
    # mask capped by its cgroup's quota, :func:`bosun.engine.cpus.usable_cpus`).
    threads: int | None = None
    # int8: weight-only int8 linear layers (CPU; perplexity within 0.5% of float32, see
    # benchmarks/quality.py). auto: int8 on CPU, none elsewhere.
    quantization: str = "auto"
    # bosun: the Bosun decoder (Llama family); transformers: any Hugging Face causal LM,
    # sequence by sequence; auto: bosun where it runs the architecture.
    backend: str = "auto"
    # Tokens one step computes at most: a longer prompt is prefilled in chunks of this,
    # beside the other requests' decoding (chunked prefill). None: 512 on CPUs, 2,048
    # elsewhere (see step_budget).
    max_batched_tokens: int | None = None
    # On CUDA, decode steps replay CUDA graphs captured per batch size at load.
    cuda_graphs: bool = True
    # Where the KV cache's memory is touched lazily (CPUs): tokens of finished requests'
    # prompts the prefix cache keeps for later requests that begin alike (a tenant's
    # system prompt), beyond what running requests hold. None: PREFIX_CACHE_TOKENS. The
    # memory they take was sized into the plan with the whole cache.
    prefix_cache_tokens: int | None = None
    # LoRA adapters served beside the base model: (name, PEFT directory, strength).
    adapters: tuple[tuple[str, str, float], ...] = ()


@dataclass(frozen=True)
class _Adapter:
    name: str
    path: str
    strength: float
    slot: int  # the runner's
    salt: int  # the prefix cache's hash seed: its blocks are its own


@dataclass(eq=False)
class _Seq:
    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[TokenEvent | BaseException]
    sampler: Sampler
    stops: StopMatcher
    detokenizer: IncrementalDetokenizer
    prompt: list[int]
    cache: CacheSequence  # the scheduler's view: tokens, blocks, progress
    generated: list[int] = field(default_factory=list)
    cancelled: bool = False
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def params(self) -> SamplingParams:
        return self.request.params


def _grammar_for(tokenizer: Any) -> TokenizerGrammar | None:
    try:
        return TokenizerGrammar(tokenizer)
    except ImportError:  # structured output is refused with a clear message instead
        return None


# The default step budget on CPUs. A step's time grows with its tokens: at 2,048 a
# prefill step of SmolLM2 takes about 0.66 s on 2 cores, and every decoding request waits
# that long for its next token. At 512, 32 concurrent requests over HTTP got their first
# token sooner (TTFT p50 680-727 ms against 955) at the same throughput (298-311 against
# 311 tok/s); at 256 throughput fell 5% and TTFT p99 rose to 2.3 s (serve_bench.py).
CPU_STEP_BUDGET = 512
# Tokens of finished requests' prompts a CPU server's prefix cache keeps by default: a few
# dozen system prompts. SmolLM2's float32 cache holds 45 KB a token: 370 MB at most.
PREFIX_CACHE_TOKENS = 8192
STEP_BUDGET = 2048


def retained_blocks(options: EngineOptions, num_blocks: int, block_size: int) -> int:
    """KV blocks the prefix cache may keep for finished requests where memory is touched
    lazily: ``prefix_cache_tokens`` (default PREFIX_CACHE_TOKENS), at most the cache."""
    tokens = options.prefix_cache_tokens
    tokens = PREFIX_CACHE_TOKENS if tokens is None else max(tokens, 0)
    return min(num_blocks, -(-tokens // block_size))


def step_budget(options: EngineOptions) -> int:
    """Tokens one step computes at most: ``max_batched_tokens``, else the device's default."""
    if options.max_batched_tokens is not None:
        return max(options.max_batched_tokens, 1)
    return CPU_STEP_BUDGET if options.device == "cpu" else STEP_BUDGET


class BosunEngine:
    """An :class:`~bosun.engine.client.EngineClient` over a local model."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self._info: list[ModelInfo] = []
        self._tokenizer: Any = None
        self._runner: ModelRunner | None = None
        self._incoming: queue.SimpleQueue[_Seq] = queue.SimpleQueue()
        self._scheduler: Scheduler | None = None
        self._seqs: dict[int, _Seq] = {}  # scheduled (waiting or running), by id
        self._ids = itertools.count()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._eos: set[int] = set()
        self._pending = 0  # submitted, not yet handed to the scheduler
        self.local: LocalModel | None = None
        self.quantization = "none"
        self.backend = "none"
        self._grammar: Future[TokenizerGrammar | None] | None = None
        self._adapters: dict[str, _Adapter] = {}  # served, by name
        self._slots = itertools.count(1)
        self._retired: set[int] = set()  # unloaded slots still used by running requests
        self._calls: queue.SimpleQueue[tuple[Callable[[], None], Future[None]]] = (
            queue.SimpleQueue()
        )

    # ------------------------------------------------------------------ loading

    @property
    def models(self) -> Sequence[ModelInfo]:
        if not self._info:
            name = self.options.served_name or self.options.model
            return [ModelInfo(name, self.options.max_model_len or 0, int(time.time()))]
        base = self._info[0]
        return [
            base,
            *(
                ModelInfo(
                    a.name,
                    base.max_model_len,
                    base.created,
                    parent=base.name,
                    vocab_size=base.vocab_size,
                    template=base.template,
                )
                for a in self._adapters.values()
            ),
        ]

    # ------------------------------------------------------------------ adapters

    def _add_adapter(self, name: str, path: str, strength: float) -> None:
        """In the worker thread (or before it loops): load into a new runner slot."""
        assert self._runner is not None
        if not 0 <= strength <= 1:
            raise InvalidRequestError(
                f"adapter {name}: strength {strength} is not in [0, 1]", "strength"
            )
        try:
            folder = Path(path).expanduser()
            found = folder.is_dir()
        except (RuntimeError, ValueError, OSError) as exc:  # ~nobody, a NUL byte, too long
            raise InvalidRequestError(
                f"adapter {name}: {path!r} is not a usable path: {exc}", "lora_path"
            ) from None
        if not found:
            raise InvalidRequestError(f"adapter {name}: {folder} is not a directory", "lora_path")
        slot = next(self._slots)
        self._runner.load_adapter(slot, folder, strength)
        salt = zlib.crc32(f"{slot}:{name}".encode())
        self._adapters[name] = _Adapter(name, str(folder), strength, slot, salt)

    def _check_adapter_name(self, name: str) -> None:
        if not name or name == self.models[0].name or name in self._adapters:
            raise InvalidRequestError(
                f"the model name {name!r} is already served (or empty): choose another",
                "lora_name",
            )

    async def load_adapter(self, name: str, path: str, strength: float = 1.0) -> None:
        self._check_adapter_name(name)
        await self._in_worker(lambda: self._add_adapter(name, path, strength))
        log.info("LoRA adapter %s loaded from %s (strength %g)", name, path, strength)
        if self.quantization == "int8":
            log.warning(
                "LoRA adapter %s runs over int8 weights, not the ones it was trained against: "
                "its effect may be weaker (serve with --quantization none, or give it with "
                "--adapter at start, for exact adapters)",
                name,
            )

    async def unload_adapter(self, name: str) -> None:
        adapter = self._adapters.get(name)
        if adapter is None:
            raise UnknownAdapterError(f"no LoRA adapter named {name!r} is loaded", "lora_name")

        def retire() -> None:
            self._adapters.pop(name, None)
            self._retired.add(adapter.slot)  # freed once no running request uses it

        await self._in_worker(retire)
        log.info("LoRA adapter %s unloaded", name)

    async def _in_worker(self, call: Callable[[], None]) -> None:
        """Run ``call`` in the worker thread between two steps (it owns the model)."""
        done: Future[None] = Future()
        self._calls.put((call, done))
        self._wake.set()
        await asyncio.wrap_future(done)

    def _run_calls(self) -> None:
        while True:
            try:
                call, done = self._calls.get_nowait()
            except queue.Empty:
                break
            try:
                call()
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)
        if self._retired and self._runner is not None:
            in_use = {s.cache.adapter for s in self._seqs.values()}
            for slot in self._retired - in_use:
                self._runner.unload_adapter(slot)
            self._retired &= in_use

    async def start(self) -> None:
        """Load in the worker thread itself: one thread does all torch work, so OpenMP
        keeps one team of threads (two teams on two cores halve decode speed)."""
        loop = asyncio.get_running_loop()
        loaded: asyncio.Future[None] = loop.create_future()

        def work() -> None:
            try:
                self._load()
            except BaseException as exc:
                loop.call_soon_threadsafe(loaded.set_exception, exc)
                return
            loop.call_soon_threadsafe(loaded.set_result, None)
            self._loop()

        self._thread = threading.Thread(target=work, name="bosun-engine", daemon=True)
        self._thread.start()
        await loaded

    def _load(self) -> None:
        options = self.options
        if options.device == "cpu" or options.threads:
            torch.set_num_threads(options.threads or usable_cpus())
        if options.device == "cpu":
            keep_freed_memory()
            try:  # a wrong BOSUN_CPU_* fails the start, not the first step it governs
                wide_precision()
                int8_batch()
            except ValueError as exc:
                raise EngineError(str(exc)) from None
        local = resolve_model(options.model)
        self.local = local
        runner = load_runner(
            local,
            RunnerOptions(
                backend=options.backend,
                dtype=options.dtype,
                device=options.device,
                # LoRA adapters learned their update against the unquantized weights; on
                # the former dynamic int8 a lightly trained adapter lost its effect
                # (an 8-step adapter's habit on 3 of 3 unseen prompts in float32, 1 of 3
                # in int8; not re-measured on today's weight-only int8). auto keeps them
                # exact; --quantization int8 still applies.
                quantization="none"
                if options.adapters and options.quantization == "auto"
                else options.quantization,
                slots=options.max_num_seqs,
                max_model_len=options.max_model_len,
                cuda_graphs=options.cuda_graphs,
                max_batched_tokens=step_budget(options),
            ),
        )
        self.quantization = runner.quantization
        self.backend = runner.backend
        self._tokenizer = load_tokenizer(local)
        # The grammar engine's view of the tokenizer takes half a second to build: build it
        # in the background; the first structured-output request waits for it if need be.
        helper = ThreadPoolExecutor(1, thread_name_prefix="bosun-grammar")
        self._grammar = helper.submit(_grammar_for, self._tokenizer)
        helper.shutdown(wait=False)
        self._scheduler = Scheduler(
            BlockManager(
                runner.num_blocks,
                runner.block_size,
                runner.prefix_caching,
                runner.lazy_memory,
                retain_blocks=retained_blocks(options, runner.num_blocks, runner.block_size),
            ),
            max_num_seqs=options.max_num_seqs,
            max_batched_tokens=step_budget(options),
        )
        eos = local.config.get("eos_token_id", self._tokenizer.eos_token_id)
        self._eos = set(eos if isinstance(eos, list) else [eos]) - {None}
        name = options.served_name or local.name
        vocab = local.config.get("vocab_size")
        self._info = [
            ModelInfo(
                name,
                runner.max_len,
                int(time.time()),
                vocab_size=vocab and int(vocab),
                template=probe(self._render),
            )
        ]
        self._runner = runner
        for name, path, strength in options.adapters:
            self._check_adapter_name(name)
            try:
                self._add_adapter(name, path, strength)
            except InvalidRequestError as exc:
                raise EngineError(f"--adapter {name}: {exc}") from None
        engine = "the Bosun engine" if runner.backend == "bosun" else "transformers"
        log.info(
            "%s is served by %s on %s (%s weights); KV cache: %d tokens in blocks of %d%s;"
            " attention: %s",
            name,
            engine,
            options.device,
            runner.quantization if runner.quantization != "none" else "unquantized",
            runner.num_blocks * runner.block_size,
            runner.block_size,
            ", prefix caching" if runner.prefix_caching else "",
            runner.attention,
        )

    # ------------------------------------------------------------------ EngineClient

    def tokenize(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def apply_chat_template(
        self, messages: list[dict[str, object]], tools: list[dict[str, object]] | None = None
    ) -> list[int]:
        return self.tokenize(self._render(messages, tools))

    def _render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        return render(self._tokenizer, messages, tools)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise InvalidRequestError(
            f"{self.models[0].name} is a generative model; /v1/embeddings needs an embedding model",
            "model",
        )

    def stats(self) -> EngineStats:
        scheduler = self._scheduler
        if scheduler is None:
            return EngineStats(waiting=self._pending)
        blocks = scheduler.blocks
        # A sequence runs from the moment it holds cache blocks (its prefill included).
        return EngineStats(
            running=len(scheduler.running),
            waiting=len(scheduler.waiting) + self._pending,
            kv_cache_usage=blocks.usage,
            preemptions=scheduler.preemptions,
            prefix_cache_queries=blocks.stats.queries,
            prefix_cache_hits=blocks.stats.hits,
        )

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        runner, scheduler = self._runner, self._scheduler
        if runner is None or scheduler is None:
            raise EngineError("the engine is not started")
        queued = len(scheduler.waiting) + self._pending
        free = self.options.max_num_seqs - len(scheduler.running)
        if queued >= self.options.max_waiting + free:
            raise EngineOverloadedError(
                f"{self.options.max_waiting} requests are already waiting", retry_after=1.0
            )
        adapter = None
        if request.adapter is not None:
            adapter = self._adapters.get(request.adapter)
            if adapter is None:
                raise UnknownAdapterError(
                    f"no LoRA adapter named {request.adapter!r} is loaded", "model"
                )
        prompt = list(request.prompt_token_ids)
        vocab = self._info[0].vocab_size if self._info else None
        if not prompt:
            raise InvalidRequestError("the prompt is empty", "prompt")
        if vocab is not None and any(not 0 <= t < vocab for t in prompt):
            raise InvalidRequestError(
                f"the prompt holds token ids outside the vocabulary (0 to {vocab - 1})", "prompt"
            )
        needed = len(prompt) + request.params.max_tokens
        limit = min(runner.max_len, runner.num_blocks * runner.block_size)
        if needed > limit:
            raise InvalidRequestError(
                f"the prompt ({len(prompt)} tokens) plus max_tokens "
                f"({request.params.max_tokens}) exceeds the context of {limit}",
                "max_tokens",
            )
        constraint = None
        if request.params.json_schema is not None or request.params.json_object:
            grammar = await asyncio.wrap_future(self._grammar) if self._grammar else None
            if grammar is None:
                raise InvalidRequestError(
                    "response_format needs llguidance: pip install llguidance", "response_format"
                )
            constraint = grammar.constraint(request.params)
        loop = asyncio.get_running_loop()
        seq = _Seq(
            request=request,
            loop=loop,
            events=asyncio.Queue(),
            sampler=Sampler(request.params, prompt, self._eos, constraint),
            stops=StopMatcher(request.params.stop),
            detokenizer=IncrementalDetokenizer(self._tokenizer),
            prompt=prompt,
            cache=CacheSequence(next(self._ids), list(prompt), request.params.max_tokens),
        )
        if adapter is not None:
            seq.cache.adapter, seq.cache.salt = adapter.slot, adapter.salt
        self._pending += 1
        self._incoming.put(seq)
        self._wake.set()
        try:
            while True:
                item = await seq.events.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            seq.cancelled = True  # the worker frees its blocks at the next step
            self._wake.set()

    async def shutdown(self, drain_s: float = 20.0) -> None:
        """Let running and waiting requests finish for up to ``drain_s`` seconds, then
        stop the worker and end whatever is left with an error: a shutdown is bounded."""
        deadline = time.monotonic() + drain_s
        while self._thread is not None and (self._seqs or self._pending):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
        left = list(self._seqs.values())
        while True:
            try:
                left.append(self._incoming.get_nowait())
            except queue.Empty:
                break
        for seq in left:
            self._emit(seq, EngineError("the server shut down before this request finished"))

    # ------------------------------------------------------------------ worker

    def _emit(self, seq: _Seq, item: TokenEvent | BaseException) -> None:
        seq.loop.call_soon_threadsafe(seq.events.put_nowait, item)

    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        scheduler = self._scheduler
        assert scheduler is not None
        while not self._stop:
            self._run_calls()
            while True:
                try:
                    seq = self._incoming.get_nowait()
                except queue.Empty:
                    break
                self._seqs[seq.cache.id] = seq
                scheduler.add(seq.cache)
                self._pending -= 1
            for seq in [s for s in self._seqs.values() if s.cancelled]:
                self._finish(seq)
            if scheduler.idle:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                continue
            try:
                self._step(scheduler)
            except Exception as exc:  # outside any one sequence's work (a scheduler
                # bug): nothing tells whose it is, so the running ones end with it
                log.exception("an engine step failed outside any one request")
                for seq in list(self._seqs.values()):
                    if seq.cache.state is SequenceState.RUNNING:
                        self._fail(seq, exc)

    def _finish(self, seq: _Seq) -> None:
        """The request is done (or gone): free its blocks and whatever the runner keeps."""
        assert self._scheduler is not None and self._runner is not None
        self._scheduler.finish(seq.cache)
        self._runner.release(seq.cache.id)
        self._seqs.pop(seq.cache.id, None)

    def _fail(self, seq: _Seq, exc: BaseException) -> None:
        """This request alone ends with ``exc`` (a server fault: the client sees a 500)."""
        log.error("request %s failed: %s", seq.request.request_id, exc, exc_info=exc)
        self._emit(seq, EngineError(f"generation failed: {exc}"))
        self._finish(seq)

    def _step(self, scheduler: Scheduler) -> None:
        """One forward pass and what follows it. A failure that belongs to one sequence
        (its forward pass, its sampling, its detokenizing) ends that sequence alone; the
        others go on as if it had never been in the batch."""
        computed = self._forward(scheduler.schedule())
        if computed is None:
            return
        batch, logits = computed
        rows = [(row, self._seqs[i.seq.id]) for row, i in enumerate(batch.items) if i.samples]
        chosen = self._choose(logits, rows)
        sampled: dict[int, int] = {}
        done = []
        for row, seq in rows:
            if row not in chosen:
                continue  # failed while choosing
            try:
                token, finished = self._accept(seq, logits[row], chosen[row])
            except Exception as exc:  # this sequence's own fault
                self._fail(seq, exc)
                continue
            sampled[seq.cache.id] = token
            if finished:
                done.append(seq)
        alive = [i for i in batch.items if i.seq.state is SequenceState.RUNNING]
        scheduler.update(Batch(alive, batch.preempted), sampled)
        for seq in done:
            self._finish(seq)

    def _forward(self, batch: Batch) -> tuple[Batch, torch.Tensor] | None:
        """The batch's logits, one row per item; None when nothing was scheduled. When the
        pass raises, the batch is split in halves and each retried, down to the items that
        fail on their own: those sequences are failed, and the batch that comes back holds
        the others (with their logits). Retrying is safe: a pass only writes the keys and
        values of the positions it computes, and ``update`` has not yet moved anything."""
        runner = self._runner
        assert runner is not None
        try:
            logits = run_batch(runner, batch)
        except Exception as exc:  # whose is it? found below, outside this handler
            error = exc
        else:
            return None if logits is None else (batch, logits)
        if len(batch.items) == 1:
            self._fail(self._seqs[batch.items[0].seq.id], error)
            return Batch([], batch.preempted), torch.empty(0)
        log.warning(
            "a step of %d sequences failed (%s): retrying in halves", len(batch.items), error
        )
        half = len(batch.items) // 2
        kept: list[Scheduled] = []
        parts: list[torch.Tensor] = []
        for items in (batch.items[:half], batch.items[half:]):
            result = self._forward(Batch(items, []))
            assert result is not None  # items were scheduled
            if result[0].items:
                kept += result[0].items
                parts.append(result[1])
        return Batch(kept, batch.preempted), torch.cat(parts) if parts else torch.empty(0)

    def _choose(self, logits: torch.Tensor, rows: list[tuple[int, _Seq]]) -> dict[int, int]:
        """Each sampling row's next token (row -> token). A row whose processing fails
        ends its sequence and is left out."""
        greedy = [row for row, seq in rows if is_plain_greedy(seq.params)]
        chosen: dict[int, int] = {}
        if greedy:  # plain argmax, nothing to apply first: one op for all of them
            picks = torch.argmax(logits[greedy], dim=-1).tolist()
            chosen = dict(zip(greedy, picks, strict=True))
        others: list[tuple[int, _Seq, torch.Tensor]] = []
        for row, seq in rows:
            if row in chosen:
                continue
            try:  # penalties, biases, grammar masks: this sequence's own
                others.append((row, seq, seq.sampler.process(logits[row], len(seq.generated))))
            except Exception as exc:  # this sequence's own fault
                self._fail(seq, exc)
        if not others:
            return chosen
        try:  # one draw for all of them, on the device
            picks = choose(torch.stack([p for *_, p in others]), [s.sampler for _, s, _ in others])
            return chosen | {row: pick for (row, *_), pick in zip(others, picks, strict=True)}
        except Exception:  # whose is it? draw row by row
            for row, seq, processed in others:
                try:
                    chosen[row] = choose(processed[None], [seq.sampler])[0]
                except Exception as exc:  # this sequence's own fault
                    self._fail(seq, exc)
            return chosen

    def _accept(self, seq: _Seq, logits: torch.Tensor, token: int) -> tuple[int, bool]:
        """Record the chosen token, detokenize, check stops, emit: (the token, finished)."""
        params = seq.params
        logprob_info: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = ()
        if params.logprobs is not None:
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            top: tuple[tuple[str, float], ...] = ()
            if params.logprobs:
                values, ids = torch.topk(logprobs, params.logprobs)
                top = tuple(
                    (self._tokenizer.decode([int(t)]), float(v))
                    for v, t in zip(values, ids, strict=True)
                )
            logprob_info = ((self._tokenizer.decode([token]), float(logprobs[token]), top),)
        seq.sampler.record(token)
        seq.generated.append(token)
        finish: FinishReason | None = None
        if (
            not params.ignore_eos and token in self._eos and len(seq.generated) > params.min_tokens
        ) or token in params.stop_token_ids:
            finish = "stop"
        elif seq.sampler.constraint is not None and seq.sampler.constraint.finished:
            finish = "stop"  # the JSON value is complete
        new = seq.detokenizer.feed(seq.generated)
        text, hit = seq.stops.feed(new)
        if hit:
            finish = "stop"
        elif finish is None and len(seq.generated) >= params.max_tokens:
            finish = "length"
        if finish is not None and not hit:
            text += seq.stops.flush()
        self._emit(
            seq,
            TokenEvent(
                text=text,
                token_ids=(token,),
                finish_reason=finish,
                logprobs=logprob_info,
                prompt_tokens=len(seq.prompt),
            ),
        )
        return token, finish is not None

    def cpu_threads(self) -> int:
        return torch.get_num_threads() or os.cpu_count() or 1
