"""valley workloads: data, train, eval and grader, run inside pods and locally."""

__version__ = "0.1.0"
