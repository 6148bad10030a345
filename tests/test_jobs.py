"""The background job queue: states, waiting, consistent progress snapshots (no models run)."""

import threading
import time

from mucomp.execution import JobQueue


class Stopped(Exception):
    def __init__(self, status):
        super().__init__(f"stopped: {status}")
        self.status = status


class Done:
    id = "abc123"


def test_only_stopped_statuses_map_and_an_exception_never_completes_a_job():
    def run(config, progress, cancel, owner):
        if config == "ok":
            return Done()
        raise Stopped(config)

    queue = JobQueue(run)
    ids = queue.submit(["ok", "diverged", "cancelled", "failed", "completed", "weird"])
    assert queue.wait(10)
    jobs = {j["id"]: j for j in queue.jobs()}
    assert [jobs[i]["state"] for i in ids] == ["completed", "diverged", "cancelled", "failed", "failed", "failed"]
    assert jobs[ids[0]]["experiment_id"] == "abc123"
    assert all(jobs[i]["experiment_id"] is None for i in ids[1:])
    assert jobs[ids[4]]["message"] == "stopped: completed"


def test_wait_wakes_when_the_last_job_finishes_and_times_out_while_busy():
    release = threading.Event()

    def run(config, progress, cancel, owner):
        release.wait(10)
        return Done()

    queue = JobQueue(run)
    queue.submit(["slow"])
    start = time.monotonic()
    assert queue.wait(0.2) is False and time.monotonic() - start < 2
    threading.Timer(0.1, release.set).start()
    assert queue.wait(10) is True and not queue.busy()
    assert queue.wait(0) is True  # nothing queued: returns at once


def test_a_snapshot_never_pairs_a_stage_with_another_stages_fraction():
    stop = threading.Event()

    def run(config, progress, cancel, owner):
        while not stop.is_set():
            for stage, fraction in (("unlearning", 0.25), ("privacy", 0.75)):
                progress(stage, fraction, step=stage)
        return Done()

    queue = JobQueue(run)
    [job] = queue.submit(["busy"])
    seen = set()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        snapshot = queue.get(job)
        if snapshot["stage"]:
            seen.add((snapshot["stage"], snapshot["fraction"], snapshot["figures"]["step"]))
    stop.set()
    assert queue.wait(10)
    assert seen <= {("unlearning", 0.25, "unlearning"), ("privacy", 0.75, "privacy")}
