"""The run protocol, one stage per module (docs/architecture.md draws the flow).

* `start`    — plan one run per brand, fan its windows out, run the first inline
* `messages` — one queue message: continue its window; errors -> reject / fail / redeliver
* `step`     — one step of a window: chain check, `walk`, stage, record, hand over
* `finish`   — lease, then `commit` (copy in, replace older, manifest) and notify once
* `context`  — what the stages share: ports, clock, plans, status, "send, then mark"
* `records`, `keys` — the state that crosses invocations, and where it lives in S3
"""
