"""The grader: LiveCodeBench-exact verdicts for untrusted programs, run in gVisor or a confined process.

Modules: `problem` (LCB/TACO rows -> Problem), `extract` (code from a raw response), `harness`
(runs inside the sandbox), `sandbox` (runsc and process sandboxes), `verdict` (comparisons and
verdicts), `grading` (grade, grade_batch, pass_at_k), `server`/`client` (the sidecar), `cli`.
Everything except `cli` imports with the standard library alone (the grader image is slim).
"""
