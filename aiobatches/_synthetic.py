"""Seeded synthetic batches shaped like the real API's, for the fake server and benchmarks.

Each status gets the timestamps, counts, files and errors it has in real
life; optional fields are sent as `null`, as the API does (so is `usage` of
batches that never started). Keys are omitted where real servers omit them:
older batches predate `model` and `usage`, and the official example response
lacks both; some servers send a failed batch's `errors.object` as `null`.
Each endpoint runs the models that serve it; file ids are shaped as
OpenAI's; metadata is written by people, in many scripts and with quotes.
`as_azure_publishes` reshapes a batch as Azure OpenAI's published spec has it.
Living batches (`_fake.timelines`) draw their keys, models and file ids with the
same helpers (`draw_keys`, `draw_model`, `file_id`), so both follow one set of shares.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, Final

from attrs import frozen

EPOCH: Final = 1_763_000_000
"""Creation time of the newest synthetic batch (November 2025), fixed for reproducibility."""

_DAY: Final = 86_400
_STATUS_WEIGHTS: Final = {
    "completed": 50,
    "in_progress": 10,
    "failed": 8,
    "expired": 5,
    "cancelled": 7,
    "validating": 7,
    "finalizing": 6,
    "cancelling": 7,
}
ENDPOINTS: Final = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions")
MODELS_BY_ENDPOINT: Final = {
    "/v1/chat/completions": (
        "gpt-5-2025-08-07",
        "gpt-4.1-mini-2025-04-14",
        "gpt-4o-2024-08-06",
        "gpt-4o-mini-2024-07-18",
    ),
    "/v1/responses": (
        "gpt-5-2025-08-07",
        "gpt-5-mini-2025-08-07",
        "o4-mini-2025-04-16",
        "gpt-4.1-2025-04-14",
    ),
    "/v1/embeddings": (
        "text-embedding-3-large",
        "text-embedding-3-small",
        "text-embedding-3-small",
        "text-embedding-ada-002",
    ),
    "/v1/completions": ("gpt-3.5-turbo-instruct", "davinci-002", "babbage-002", "davinci-002"),
}
"""The models each endpoint runs, each drawn as often as it is listed."""
LEGACY_SHARE: Final = 1 / 13
"""Batches with neither `model` nor `usage` key, like the official example response."""
NO_USAGE_SHARE: Final = 1 / 66
"""Of the other batches, those with a `model` but no `usage` key (created before usage
existed): with the legacy ones, one batch in eleven has no `usage` key."""
NULL_MODEL_SHARE: Final = 0.03
"""Of the batches with a `model` key, those whose `model` is `null`."""
NULL_ERRORS_OBJECT_SHARE: Final = 0.5
"""Failed batches whose `errors.object` is `null` rather than `"list"`."""
_FAILURES: Final = (
    ("invalid_json_line", "This line is not parseable as valid JSON.", None),
    ("missing_required_parameter", "The request is missing a required parameter.", "body.model"),
    ("invalid_request", "The request's endpoint does not match the batch's endpoint.", "url"),
)


def synthetic_batches(count: int, *, seed: int = 0, newest: int = EPOCH) -> list[dict[str, Any]]:
    """`count` batches as the API would send them, newest first; same seed, same batches."""
    return list(draw_batches(count, seed=seed, newest=newest))


def draw_batches(count: int, *, seed: int = 0, newest: int = EPOCH) -> Iterator[dict[str, Any]]:
    """The batches of `synthetic_batches`, one at a time: a server encodes each and lets it
    go, instead of holding them all as dicts."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    # Which keys are left out is drawn from a stream of its own, so that every
    # value stays what the same seed gave before keys were ever omitted.
    shapes = random.Random(f"{seed}-shapes")  # noqa: S311 - as above
    statuses = list(_STATUS_WEIGHTS)
    weights = list(_STATUS_WEIGHTS.values())
    created = newest
    for _ in range(count):
        status = rng.choices(statuses, weights)[0]
        yield _omit_keys(shapes, _batch(rng, status, created))
        created -= rng.randint(30, 3_600)


@frozen
class Keys:
    """Which of the keys real servers may leave out a batch has, and whether its `model`,
    when it has one, is `null`."""

    model: bool
    usage: bool
    null_model: bool


def draw_keys(rng: random.Random, nulls: random.Random) -> Keys:
    """A batch's keys in the shares real servers send them: `LEGACY_SHARE` lack `model`
    and `usage`, `NO_USAGE_SHARE` of the others lack `usage`, and `NULL_MODEL_SHARE` of
    those with a `model` send it as `null`.

    Which keys it has is one draw from `rng`; whether its model is null is drawn next from
    `nulls` (which may be `rng` itself), so a caller can keep its own stream as it was.
    """
    draw = rng.random()
    legacy = draw < LEGACY_SHARE
    usage = not legacy and draw >= LEGACY_SHARE + (1 - LEGACY_SHARE) * NO_USAGE_SHARE
    null_model = not legacy and nulls.random() < NULL_MODEL_SHARE
    return Keys(model=not legacy, usage=usage, null_model=null_model)


def draw_model(rng: random.Random, endpoint: str) -> str:
    """A model that `endpoint` runs."""
    models = MODELS_BY_ENDPOINT[endpoint]
    return models[rng.randrange(len(models))]


def _omit_keys(rng: random.Random, batch: dict[str, Any]) -> dict[str, Any]:
    """Leave out the keys that real servers leave out, in realistic shares."""
    keys = draw_keys(rng, rng)
    if not keys.model:
        del batch["model"]
    if not keys.usage:
        del batch["usage"]
    if keys.null_model:
        batch["model"] = None
    if batch["errors"] is not None and rng.random() < NULL_ERRORS_OBJECT_SHARE:
        batch["errors"]["object"] = None
    return batch


def _batch(rng: random.Random, status: str, created: int) -> dict[str, Any]:
    total = rng.randint(1, 50_000)
    started = created + rng.randint(5, 600) if status not in ("validating", "failed") else None
    done = total if status in ("finalizing", "completed") else rng.randint(0, total)
    failed = rng.randint(0, done // 20) if started else 0
    times: dict[str, int | None] = dict.fromkeys(
        (
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
        )
    )
    finish = (started or created) + rng.randint(60, _DAY // 2)
    if status in ("finalizing", "completed"):
        times["finalizing_at"] = finish
    if status == "completed":
        times["completed_at"] = finish + rng.randint(1, 300)
    if status == "failed":
        times["failed_at"] = created + rng.randint(1, 30)
    if status == "expired":
        times["expired_at"] = created + _DAY
    if status in ("cancelling", "cancelled"):
        times["cancelling_at"] = finish
    if status == "cancelled":
        times["cancelled_at"] = finish + rng.randint(1, 600)
    has_output = status in ("completed", "expired", "cancelled") and done > failed
    # Every draw is made as before the values grew richer, so a seed keeps its batches.
    batch_id = f"batch_{rng.getrandbits(96):024x}"
    endpoint = rng.choice(ENDPOINTS)
    batch: dict[str, Any] = {
        "id": batch_id,
        "object": "batch",
        "endpoint": endpoint,
        "model": draw_model(rng, endpoint),
        "errors": draw_errors(rng) if status == "failed" else None,
        "input_file_id": file_id(rng),
        "completion_window": "24h",
        "status": status,
        "output_file_id": file_id(rng) if has_output else None,
        "error_file_id": file_id(rng) if has_output and failed else None,
        "created_at": created,
        "in_progress_at": started,
        "expires_at": created + _DAY,
        **times,
        "request_counts": {
            "total": 0 if status == "failed" else total,
            "completed": 0 if started is None else done - failed,
            "failed": failed,
        },
        "metadata": draw_metadata(rng),
    }
    # Usage only exists for batches that started after it was introduced (2025-09-07).
    batch["usage"] = _usage(rng) if started and rng.random() < 0.85 else None
    return batch


_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def file_id(rng: random.Random) -> str:
    """A file id shaped as OpenAI's: `file-` and 22 letters and digits."""
    bits = rng.getrandbits(88)
    value = (bits * 0x9E3779B97F4A7C15F39CC0605CEDC835 + bits) % 62**22
    digits = []
    for _ in range(22):
        value, digit = divmod(value, 62)
        digits.append(_BASE62[digit])
    return "file-" + "".join(digits)


_DESCRIPTIONS: Final = (
    "Nightly eval job",
    'Re-run of the "gold" set after the tokenizer fix',
    "Évaluation nocturne — modèle « fr-FR »",
    "夜間バッチの要約評価",
    "Resumen semanal de reseñas (España) ✓",
    "Ночная проверка качества ответов",
    'Customer\'s Q3 backfill, "priority": high',
    "Ünïcode tags: naïve café, 🚀 launch",
)
_TEAMS: Final = ("search", "support-bots", "ランキング", "données", "growth")
_SOURCES: Final = ("airflow", "cron", 'notebook "exp-41"', "ci/pipeline#1187")


def draw_metadata(rng: random.Random) -> dict[str, str] | None:
    """A batch's metadata: none, or what a job tags its batches with, written by people
    in many scripts and with quotes; two to five keys."""
    customer = rng.randint(1, 10**9)
    if rng.randrange(2) == 0:
        return None
    # The text is spread from the customer number: the draws stay those of the plain tags.
    metadata = {
        "customer_id": f"user_{customer}",
        "batch_description": _DESCRIPTIONS[customer % len(_DESCRIPTIONS)],
    }
    keys = customer // len(_DESCRIPTIONS) % 4
    if keys >= 1:
        metadata["team"] = _TEAMS[customer // 7 % len(_TEAMS)]
    if keys >= 2:
        metadata["source"] = _SOURCES[customer // 11 % len(_SOURCES)]
    if keys == 3:
        metadata["run"] = f"{customer % 1_000:03d}-of-{customer % 7 + 1}"
    return metadata


def draw_errors(rng: random.Random) -> dict[str, Any]:
    """A failed batch's `errors`: one to three lines that failed validation."""
    code, message, param = rng.choice(_FAILURES)
    lines = sorted(rng.sample(range(1, 1_000), rng.randint(1, 3)))
    return {
        "object": "list",
        "data": [
            {"code": code, "line": line, "message": message, "param": param} for line in lines
        ],
    }


def _usage(rng: random.Random) -> dict[str, Any]:
    input_tokens = rng.randint(1_000, 5_000_000)
    output_tokens = rng.randint(100, 2_000_000)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": rng.randint(0, input_tokens // 2)},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": rng.randint(0, output_tokens // 2)},
        "total_tokens": input_tokens + output_tokens,
    }


def as_azure_publishes(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch as Azure OpenAI's published REST spec (2024-10-21) shapes it.

    Its `BatchErrors.data` is one `BatchErrorData` object, not a list, so only the first
    error is sent; and that object's `line` is a string.
    """
    errors = batch.get("errors")
    if not isinstance(errors, dict):
        return batch
    data = errors.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return batch
    first = data[0]
    line = first.get("line")
    lone = {**first, "line": str(line)} if type(line) is int else first
    return {**batch, "errors": {**errors, "data": lone}}
