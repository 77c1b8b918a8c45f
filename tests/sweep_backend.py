"""A simulator that logs every measurement it really makes (one line per job, O_APPEND), so a sweep test
can count measurements across all the processes and hosts of a launcher."""

from __future__ import annotations

import os

from ofa_hw.backends.base import ProfileJob, ProfileOutcome
from ofa_hw.backends.sim import SimBackend

#: Environment variable naming the log file.
LOG_ENV = "OFA_HW_TEST_MEASURE_LOG"


class LoggingSim(SimBackend):
    """``backend._target_=sweep_backend.LoggingSim``: the simulator, logging each job it runs."""

    def profile(self, job: ProfileJob) -> ProfileOutcome:
        fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {job.space_name} {job.arch_id} {job.runs} {job.seed}\n".encode())
        finally:
            os.close(fd)
        return super().profile(job)
