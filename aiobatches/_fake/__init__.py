"""The fake batches server behind `aiobatches.testing`, in rooms a reader can guess.

`server` is the public server (settings, lifecycle, the requests it counts and
records); `endpoints` answers those requests; `dialects` names how each API
differs; `faults` picks and serves misbehaviours; `living` holds the batches and
`timelines` draws how each one lives; `clocks` tells the time they live by.
"""
