"""Ingest job records in Redis: totals, per-item outcomes, failures with reasons.

Outcomes are recorded per item index with HSETNX inside one Lua script, so a chunk
redelivered after a worker crash (acks_late) never counts an item twice.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum

import redis
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

PREFIX = "lookalike:job:"

_RECORD = """
local new = redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
if new == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
  if ARGV[3] == 'failed' then redis.call('RPUSH', KEYS[3], ARGV[4]) end
  redis.call('HSET', KEYS[1], 'updated', ARGV[5])
end
redis.call('EXPIRE', KEYS[1], ARGV[6]); redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return new
"""


class JobState(str, Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"


@dataclass(frozen=True)
class Failure:
    index: int
    product_id: str
    image_id: str
    reason: str


@dataclass
class JobReport:
    job_id: str
    total: int
    done: int
    failed: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def state(self) -> JobState:
        if self.done + self.failed >= self.total:
            return JobState.DONE
        return JobState.RUNNING if self.done + self.failed else JobState.QUEUED


class JobStore:
    def __init__(self, client: redis.Redis, ttl_s: int = 7 * 24 * 3600) -> None:
        self.redis, self.ttl_s = client, ttl_s
        self._record = client.register_script(_RECORD)

    @classmethod
    def from_url(cls, url: str, ttl_s: int = 7 * 24 * 3600) -> JobStore:
        return cls(redis.Redis.from_url(url), ttl_s)

    @staticmethod
    def _keys(job_id: str) -> list[str]:
        base = PREFIX + job_id
        return [base, base + ":items", base + ":failures"]

    def create(self, total: int) -> str:
        job_id = uuid.uuid4().hex
        key = self._keys(job_id)[0]
        now = time.time()
        self.redis.hset(key, mapping={"total": total, "done": 0, "failed": 0, "created": now,
                                      "updated": now})
        self.redis.expire(key, self.ttl_s)
        return job_id

    def record_ok(self, job_id: str, index: int) -> bool:
        return self._run(job_id, index, "done", "")

    def record_failure(self, job_id: str, index: int, product_id: str, image_id: str,
                       reason: str) -> bool:
        entry = json.dumps({"index": index, "product_id": product_id, "image_id": image_id,
                            "reason": reason})
        return self._run(job_id, index, "failed", entry)

    # A worker must not drop an outcome because Redis restarts: wait for it to come back.
    @retry(retry=retry_if_exception_type((redis.ConnectionError, redis.TimeoutError)),
           wait=wait_exponential_jitter(multiplier=0.2, max=5), stop=stop_after_delay(120),
           reraise=True)
    def _run(self, job_id: str, index: int, outcome: str, entry: str) -> bool:
        args = [index, outcome, outcome, entry, time.time(), self.ttl_s]
        return bool(self._record(keys=self._keys(job_id), args=args))

    def get(self, job_id: str) -> JobReport | None:
        key, _, failures_key = self._keys(job_id)
        with self.redis.pipeline() as pipe:
            pipe.hgetall(key)
            pipe.lrange(failures_key, 0, -1)
            record, failures = pipe.execute()
        if not record:
            return None
        return JobReport(
            job_id=job_id,
            total=int(record[b"total"]),
            done=int(record[b"done"]),
            failed=int(record[b"failed"]),
            failures=[Failure(**json.loads(f)) for f in failures],
        )
