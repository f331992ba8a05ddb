"""The grader: LiveCodeBench-exact verdicts for untrusted programs, run in gVisor or a confined process.

Modules: `problem` (LCB/TACO rows -> Problem), `extract` (code from a raw response), `isolation`
(the sandbox kinds, and whether one works here), `launch` (starting the harness in each kind),
`session` (the harness's protocol), `cpu` (sandboxes' CPU from the host), `pool` (warm
sandboxes), `harness` and `confine` (run inside the sandbox), `values` (return values decoded
within a budget), `verdict` (comparisons and verdicts), `grading` (grade, grade_batch, pass_at_k),
`server`/`client` (the sidecar), `command` (the command line), `cli` (its `valley` wiring).
Everything except `cli` imports with the standard library alone (the grader image is slim).
"""
