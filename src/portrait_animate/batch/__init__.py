"""Batch animation: many jobs in one command, resumable, on local workers or a Ray cluster
(``portrait-animate batch``). It reuses the pipeline (``animate``), its options and the
engines; each distinct driver is analysed once and shared by the jobs that use it."""

from .jobs import Job, JobProblem, cross_jobs, read_jobs
from .run import BatchInputError, BatchOptions, BatchResult, run_batch

__all__ = ["BatchInputError", "BatchOptions", "BatchResult", "Job", "JobProblem", "cross_jobs",
           "read_jobs", "run_batch"]
