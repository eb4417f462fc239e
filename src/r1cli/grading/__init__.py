"""Grading shared by the rewards, `r1 eval`, `r1 reject-sample`, `r1 distill` and the RL preflight:

- `answers.py` — final answers taken out of a completion (rules that make them hard to game), golds normalised;
- `engine.py` — the math-verify process pool: `grade`, `grade_completions`, `cluster_answers` (workers in
  `_mv_worker.py`, started from a forkserver that preloads it by its module name);
- `sandbox.py` — the sandbox that runs model-written Python against test inputs (its harness, `_sandbox_harness.py`,
  is read as a file and run with `python -c`).

Importing the package costs nothing: each module is imported by the caller that needs it.
"""
