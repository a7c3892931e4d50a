"""Job records in a real Redis: an item's outcome counts once, however often it is redelivered."""

from lookalike.pipeline.jobs import JobState, JobStore


def test_outcomes_count_once(redis_url: str) -> None:
    jobs = JobStore.from_url(redis_url, ttl_s=60)
    job_id = jobs.create(3)
    assert jobs.get(job_id).state is JobState.QUEUED
    assert jobs.record_ok(job_id, 0)
    assert not jobs.record_ok(job_id, 0)  # a redelivered chunk
    assert jobs.record_failure(job_id, 1, "p", "i", "bad bytes")
    assert not jobs.record_failure(job_id, 1, "p", "i", "bad bytes")
    report = jobs.get(job_id)
    assert (report.done, report.failed, report.state) == (1, 1, JobState.RUNNING)
    assert [(f.index, f.reason) for f in report.failures] == [(1, "bad bytes")]
    jobs.record_ok(job_id, 2)
    assert jobs.get(job_id).state is JobState.DONE


def test_unknown_job(redis_url: str) -> None:
    assert JobStore.from_url(redis_url).get("nope") is None
