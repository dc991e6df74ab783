"""A real aiohttp.web server with the semantics of `GET /v1/batches`, for tests and demos.

`FakeBatchesServer` serves seeded synthetic batches newest first, validates
`limit` and `after` with OpenAI-shaped 400 errors, serves `GET /v1/batches/{id}`,
checks Bearer auth when a key is configured, counts every request and records the
latest, and misbehaves on demand: a `FaultPlan` picks per list request (by index or
seeded chance) a `Fault` to serve. On a clock (`ManualClock` for tests,
`AcceleratedClock` for demos) its batches live: they move through their statuses,
new ones arrive, and old ones vanish, so it can run for hours in bounded memory.
"""

from __future__ import annotations

from ._fake.clocks import AcceleratedClock, ManualClock
from ._fake.faults import Fault, FaultKind, FaultPlan
from ._fake.server import FakeBatchesServer, RecordedRequest
from ._retry import recorded_sleeps
from ._synthetic import synthetic_batches
from ._webhooks import sign_webhook

__all__ = [
    "AcceleratedClock",
    "FakeBatchesServer",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "ManualClock",
    "RecordedRequest",
    "recorded_sleeps",
    "sign_webhook",
    "synthetic_batches",
]
