# ruff: noqa: E501 - a snippet stays on one line, as it is in the code it must match
"""The planted bugs of `make mutants` (scripts/mutants.py runs them): one per claim of
the claims table in docs/reliability.md, named in its "mutant" column.

Each edit's `old` snippet must occur exactly once in its file; when the code moves,
retarget the snippet (`scripts/mutants.py --only NAME` checks one). A mutant's test
selections run in order, cheapest and closest to the planted module first, each with
`pytest -x`; the first failing one kills it and the rest are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

EXPORTER = "functions/exporter/exporter"


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the repository root
    old: str  # must occur exactly once
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str  # the planted bug, in one line
    edits: tuple[Edit, ...]
    # The tests that must catch it: pytest runs, one per tuple of arguments (a `-k`
    # applies to its own run only). The mutant is killed when one of them fails.
    tests: tuple[tuple[str, ...], ...]


def _m(
    name: str, bug: str, edits: list[tuple[str, str, str]], *tests: str | tuple[str, ...]
) -> Mutant:
    return Mutant(
        name,
        bug,
        tuple(Edit(f"{EXPORTER}/{path}", old, new) for path, old, new in edits),
        tuple((t,) if isinstance(t, str) else t for t in tests),
    )


_ROWS = "tests/unit/test_rows.py"
_RUNS = "tests/unit/test_runs.py"
_COVERAGE = "tests/unit/test_coverage.py"
_BASES = "tests/integration/test_selection_bases.py"
_EXPORT = "tests/integration/test_export.py"
_HOSTILE = "tests/integration/test_hostile_answers.py"

MUTANTS: tuple[Mutant, ...] = (
    _m("wrong-column", "bounces and walk_bys swapped: each metric lands in the other's column",
       [("schema.py", '    ("bounces", "bounces"),\n', '    ("bounces", "walk_bys"),\n'),
        ("schema.py", '    ("walkBys", "walk_bys"),\n', '    ("walkBys", "bounces"),\n')],
       f"{_ROWS}::test_every_value_lands_once_in_its_row",
       f"{_EXPORT}::test_on_demand_utc_multi_window"),
    _m("plain-put", "put_if_absent without If-None-Match: markers, leases and step records overwrite",
       [("aws.py", 'Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*"',
         "Bucket=self.bucket, Key=key, Body=body, ContentType=content_type")],
       "tests/integration/test_adapters.py",
       "tests/integration/test_long_runs.py::test_two_windows_finishing_together_commit_once"),
    _m("older-objects-left", "a rerun copies its objects in but leaves the older run's objects in its days",
       [("run/commit.py",
         "        lambda dt: _settle(\n",
         "        lambda dt: None and _settle(  # mutant: older runs' objects stay\n")],
       f"{_RUNS}::test_newest_run_owns_a_partition_whatever_the_commit_order",
       f"{_EXPORT}::test_rerun_replaces_partitions"),
    _m("failed-run-commits-part", "a failed run copies the steps it recorded into the table",
       [("run/finish.py",
         "    elif failure is not None:\n        subject, body = notify.failure_message(",
         "    elif failure is not None:\n"
         "        keys = ctx.keys(plan)  # mutant\n"
         "        for record in ledger.step_records(plan):\n"
         "            for obj in record.objects:\n"
         "                target = keys.data_object(record.window, record.step, obj.dt)\n"
         "                ctx.store.copy(obj.key, target)\n"
         "        subject, body = notify.failure_message(")],
       f"{_EXPORT}::test_failed_run_commits_nothing_and_keeps_earlier_data"),
    _m("resumed-commit-loses-rows", "a commit taken over after a kill skips the days the dead holder had begun",
       [("run/commit.py",
         "    each_at_once(lambda copy: ctx.store.copy(copy[1], copy[2]), copies)\n",
         "    begun = {  # mutant: days that hold one of this run's objects are done\n"
         "        c[0] for c in copies\n"
         "        if any(keys.run_id in k for k in ctx.store.list_keys(keys.partition(c[0])))\n"
         "    }\n"
         "    todo = [c for c in copies if c[0] not in begun]\n"
         "    each_at_once(lambda copy: ctx.store.copy(copy[1], copy[2]), todo)\n")],
       ("tests/chaos/test_kills.py", "-k", "test_killed and half"),
       ("tests/chaos/test_sigkill.py", "-k", "commit")),
    _m("local-selection-asks-utc", "a local-time selection asks the API for UTC days",
       [("run/walk.py",
         "    batches = selection.part_batches(window.part)\n"
         "    start, end = request_range(window, plan.basis)\n",
         "    batches = selection.part_batches(window.part)\n"
         '    start, end = request_range(window, "utc")  # mutant\n')],
       (_BASES, "-k", "local")),
    _m("v2-coverage-from-refused", "a v2 rerun covers the ids the API refused instead of those it answered",
       [("run/coverage.py", "if i not in no)", "if i in no)")],
       f"{_COVERAGE}::test_a_run_with_one_id_refused_and_one_left_out_succeeds_and_replaces_the_second",
       (_COVERAGE, "-k", "refus"),
       (_BASES, "-k", "v2_rerun")),
    _m("no-rows-no-place", "a run with no row of a day leaves nothing in the partition: an older run committing later keeps its rows",
       [("run/commit.py",
         "    empty = [dt for dt in days if not written[dt] and coverage.covers(dt) is not None]\n",
         "    empty: list[str] = []  # mutant\n")],
       (_COVERAGE, "-k", "without_rows")),
    _m("left-out-ids-not-covered", "a requested id the API left out keeps its older rows",
       [("run/coverage.py",
         "            covered.update(int(i) for i in selection.part_ids(window.part) if i not in no)\n",
         "            pass  # mutant\n")],
       f"{_COVERAGE}::test_a_run_with_one_id_refused_and_one_left_out_succeeds_and_replaces_the_second",
       (_COVERAGE, "-k", "refus"),
       (_BASES, "-k", "v2_rerun")),
    _m("zone-rows-replaced", "a locations rerun also removes the zone rows of its locations",
       [("run/coverage.py", "return lambda row: row[1] is None and row[0] in ids",
         "return lambda row: row[0] in ids")],
       f"{_COVERAGE}::test_location_coverage_leaves_zone_rows_and_other_days_alone",
       (_BASES, "-k", "v2_rerun")),
    _m("foreign-object-deleted", "committing deletes an object no run of ours wrote",
       [("run/commit.py",
         'logger.warning("foreign object in a partition left alone", extra={"key": key})',
         "ctx.store.delete([key])  # mutant")],
       f"{_RUNS}::test_newest_run_owns_a_partition_whatever_the_commit_order"),
    _m("staging-attempt-shared", "every delivery of a step stages under the same attempt id",
       [("run/step.py", "    attempt = secrets.token_hex(6)\n", '    attempt = "0" * 12  # mutant\n')],
       "tests/unit/test_duplicate_steps.py::test_two_deliveries_of_a_step_never_overwrite_each_other"),
    _m("duplicate-keeps-staging", "a delivery that lost the race to record its step keeps its staging",
       [("run/ledger.py", "        self._store.delete([o.key for o in record.objects])\n        return False\n", "        return False  # mutant: staging kept\n")],
       "tests/unit/test_duplicate_steps.py::"
       "test_the_losing_delivery_deletes_its_own_staging_and_only_its_own"),
    _m("chain-not-checked", "a checkpoint is run whatever cursor the recorded step ended at",
       [("run/step.py",
         "    if previous.next_cursor is None or previous.next_cursor != task.cursor:\n",
         "    if False:  # mutant\n")],
       f"{_RUNS}::test_checkpoints_must_continue_the_recorded_chain"),
    _m("location-twice", "a location the API returns twice in a window is exported twice",
       [("run/walk.py", "    if not seen.isdisjoint(ids) or len(set(ids)) != len(ids):\n",
         "    if False:  # mutant\n")],
       f"{_RUNS}::test_a_location_returned_twice_in_a_window_is_malformed"),
    _m("rows-into-neighbour-day", "a row outside the run's days is written instead of dropped",
       [("rows.py", "                page.dropped_rows += rows\n                start = stop\n                continue\n",
         "                page.dropped_rows += rows  # mutant: not skipped\n")],
       f"{_ROWS}::test_rows_outside_the_run_days_are_dropped_not_moved"),
    _m("column-digest-cut", "shaping by columns digests the run id too: every rerun reads as changed",
       [("rows.py", "                cut = itemgetter(slice(from_ts, -ends_at.pop()))\n",
         "                cut = itemgetter(slice(from_ts, None))  # mutant\n")],
       f"{_ROWS}::test_shaping_by_columns_gives_what_shaping_row_by_row_does"),
    _m("last-delivery-silent", "the last delivery does not fail the run: it goes to the DLQ silently",
       [("run/messages.py", "        if delivery >= ctx.settings.max_receive_count:\n            finish.fail_run(",
         "        if delivery > ctx.settings.max_receive_count:  # mutant\n            finish.fail_run(")],
       "tests/unit/test_messages.py::test_the_last_delivery_fails_the_run_instead_of_going_silent"),
    _m("redaction-after-cut", "error text is cut before it is redacted: a straddling secret leaks its start",
       [("redaction.py", '    clean = _CONTROL.sub(" ", _ESCAPES.sub("", redact(text)))\n', '    clean = _CONTROL.sub(" ", _ESCAPES.sub("", text))\n'),
        ("redaction.py", "        return clean  # so bounding", "        return redact(clean)  # so bounding"),
        ("redaction.py", "    return clean[: max(limit - len(note), 0)] + note\n",
         "    return redact(clean[: max(limit - len(note), 0)]) + note\n")],
       "tests/unit/test_redaction.py::test_error_text_redacts_before_it_cuts_a_straddling_secret"),
    _m("notification-too-big", "a notification over SNS's size is sent whole (SNS refuses it forever)",
       [("notify.py", "    while len(message) > limit:\n", "    while False:  # mutant\n")],
       "tests/unit/test_error_bounds.py::test_a_decade_of_partitions_still_fits_one_sns_message"),
    _m("schedule-time-ahead", "a scheduled event stamped hours ahead of the clock is accepted",
       [("events.py", "SCHEDULED_TIME_AHEAD: Final = timedelta(minutes=5)",
         "SCHEDULED_TIME_AHEAD: Final = timedelta(hours=7)")],
       "tests/unit/test_event_bounds.py::test_the_time_bounds_are_exact"),
    _m("run-id-from-event-time", "a scheduled run's id takes the event's time, not the clock",
       [("events.py", "settings.time_basis, now, key)", "settings.time_basis, when, key)")],
       "tests/unit/test_event_bounds.py::test_an_eventbridge_rule_event_is_accepted_with_the_real_clock",
       "tests/integration/test_forged_events.py::"
       "test_an_event_stamped_ahead_cannot_outrank_a_later_real_run"),
    _m("plain-http-remote", "plain http:// is accepted for a remote API host",
       [("config.py", '    if parts.scheme == "http" and not _is_loopback(parts.hostname):\n',
         "    if False:  # mutant\n")],
       "tests/unit/test_config.py::test_bad_settings_name_the_variable"),
    _m("token-not-b64", "a token outside RFC 6750's b64token set is used as a header",
       [("api_client.py", "        if not _BEARER_TOKEN.fullmatch(token):\n", "        if not token:  # mutant\n")],
       (_HOSTILE, "-k", "rfc_6750")),
    _m("compressed-answer-read", "a compressed answer is read instead of refused",
       [("api_answers.py", '            if encoding != "identity":\n                raise MalformedResponse(\n'
         '                    f"{what}: the answer is compressed',
         '            if False:  # mutant\n                raise MalformedResponse(\n'
         '                    f"{what}: the answer is compressed')],
       (_HOSTILE, "-k", "compressed_answer")),
    _m("hop-cap-off", "a window's chain of steps never stops at MAX_HOPS",
       [("run/step.py", "        if next_step > ctx.settings.max_hops:\n", "        if False:  # mutant\n")],
       "tests/integration/test_long_runs.py::test_hop_cap_fails_the_run"),
    _m("at-once-leaves-early", "at_once raises the first error before the other calls have ended",
       [("run/parallel.py",
         "    except BaseException as exc:  # raised below, once the others have ended\n"
         "        error = exc\n",
         "    except BaseException:  # mutant: raised at once\n        raise\n")],
       "tests/unit/test_parallel.py::test_an_error_is_raised_only_after_every_call_ended"),
    _m("5xx-not-retried", "a 5xx answer fails the run at once instead of being retried",
       [("http_transport.py", '                elif status >= 500:\n                    last_problem = f"HTTP {status}"\n',
         '                elif status >= 500:\n                    raise ApiRejected(f"HTTP {status}")  # mutant\n')],
       "tests/integration/test_api_client.py::test_transient_faults_are_retried_with_capped_backoff"),
    _m("storm-slept-inline", "a 429 storm is slept in the invocation instead of handed to the queue",
       [("http_transport.py",
         "                        throttled >= policy.max_throttled_attempts\n"
         "                        or hint > policy.max_inline_wait_s\n",
         "                        False  # mutant\n")],
       "tests/integration/test_rate_budget.py::test_three_429_in_a_row_hand_over_to_the_queue",
       "tests/integration/test_rate_budget.py::test_a_long_retry_after_is_not_slept_in_the_invocation"),
    _m("retry-past-deadline", "a retry sleeps into the time the invocation needs to hand over",
       [("http_transport.py",
         "            if wait + policy.connect_timeout_s >= remaining_s():\n                break\n", "")],
       "tests/integration/test_api_client.py::test_a_retry_that_would_eat_the_hand_over_time_is_not_slept"),
    _m("logs-unredacted", "log records reach handlers unredacted (only the JSON line is)",
       [("observability.py", "logger.addFilter(RedactingFilter())\n", "")],
       "tests/unit/test_redaction.py::test_the_logger_redacts_messages_fields_and_tracebacks",
       "tests/integration/test_secrets.py::test_nothing_secret_is_logged_stored_or_published"),
    _m("cancel-slot-left-open", "the finisher commits without closing the cancel slot: a late cancel is accepted",
       [("run/ledger.py",
         "        if self._store.put_if_absent(keys.cancel, closed_slot_doc(self.now_iso(), failed=failed)):\n",
         "        if self._store.get(keys.cancel) is None:  # mutant: the slot stays open\n")],
       "tests/unit/test_operations.py::test_the_finisher_closes_the_cancel_slot_before_committing"),
    _m("parquet-stale-after-selection", "a selection rerun commits its rows but leaves the days' Parquet objects as they were",
       [("run/commit.py",
         "    _rebuild_parquet(\n        ctx, keys, days,",
         "    if plan.selection is None:  # mutant: selections skip the Parquet table\n      _rebuild_parquet(\n        ctx, keys, days,")],
       "tests/integration/test_parquet.py::test_whole_brand_then_a_selection_rerun_leave_both_tables_equal"),
)  # fmt: skip

# The cheapest few, run on every push (tests/unit/test_claims.py): unit selections only.
CI_SAMPLE: tuple[str, ...] = (
    "v2-coverage-from-refused",
    "staging-attempt-shared",
    "chain-not-checked",
    "redaction-after-cut",
)
