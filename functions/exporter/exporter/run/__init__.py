"""The run protocol, one stage per module (docs/architecture.md draws the flow).

* `start`    — plan one run per brand, fan its windows out, run the first inline
* `messages` — one queue message: continue its window; errors -> reject / fail / redeliver
* `step`     — one step of a window: chain check, `walk`, stage, record, hand over
* `finish`   — lease, then `commit` (copy in, replace older, manifest) and notify once
* `ledger`   — the one owner of a run's state in S3: one method per protocol move
* `context`  — what the stages share: settings, ports, clock (and `ctx.ledger`)
* `records`, `keys`, `counters` — the state that crosses invocations, where it lives, its counts
"""
