"""Options shared by every stage command, and the one driver that runs a stage.

`run_stage` is the whole life of a command: resolve the config (defaults < YAML < --set < options), prepare the
output folder, save `config.yaml`, call `r1cli.stages.<stage>.run(cfg, run)`, write `manifest.json` last, and
print the results (a table, or one JSON object with `--json`) on stdout.

Under `accelerate launch` / torchrun every rank runs this same driver: rank 0 alone prepares the output, writes
config.yaml and manifest.json and prints the results; the other ranks train in step with it (DDP) and write only to
a scratch folder (see `r1cli.artifacts`, and `debug_rank_hash` there for checking that the ranks agree).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

RecipeOpt = Annotated[
    Optional[Path], typer.Option("--recipe", "-r", help="YAML recipe; its keys override the defaults.")
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override one config key: --set key=value (repeatable; dots for nesting)."),
]
InputOpt = Annotated[
    Optional[str], typer.Option("--input", "-i", help="Input artifact: an r1cli run folder, a HF folder or a hub id.")
]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Output run folder.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --output.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run in --output.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results as one JSON object on stdout.")]
PrintConfigOpt = Annotated[
    bool, typer.Option("--print-config", help="Print the resolved config as YAML (with help) and exit.")
]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Print the first examples exactly as the stage would feed them (token ids, "
                 "trained tokens, checks) and exit; loads the tokenizer only, writes nothing."),
]
DryRunRowsOpt = Annotated[int, typer.Option("--dry-run-rows", min=1, help="Examples shown by --dry-run.")]
PreflightOpt = Annotated[
    bool,
    typer.Option("--preflight", help="Only sample G completions for preflight_prompts training prompts with the run's "
                 "sampler and rewards, print the report (reward means, flat groups, answers, lengths) and exit; "
                 "exit 4 when no group has reward variance. Writes nothing."),
]

# stage -> (config module, config class, stage module, output kind)
STAGES: dict[str, tuple[str, str, str, str]] = {
    "base": ("r1cli.configs", "BaseConfig", "r1cli.stages.base", "model"),
    "data": ("r1cli.configs", "DataConfig", "r1cli.stages.data", "dataset"),
    "eval": ("r1cli.configs", "EvalConfig", "r1cli.stages.eval", "eval"),
    "coldstart": ("r1cli.configs", "ColdstartConfig", "r1cli.stages.coldstart", "model"),
    "rl": ("r1cli.configs", "RLConfig", "r1cli.stages.rl", "model"),
    "reject-sample": ("r1cli.configs", "RejectSampleConfig", "r1cli.stages.reject_sample", "dataset"),
    "align": ("r1cli.configs", "AlignConfig", "r1cli.stages.align", "model"),
    "distill": ("r1cli.configs", "DistillConfig", "r1cli.stages.distill", "model"),
    "reward-model": ("r1cli.configs", "RewardModelConfig", "r1cli.stages.reward_model", "model"),
    "merge": ("r1cli.configs", "MergeConfig", "r1cli.stages.merge", "model"),
}


def config_class(stage: str) -> type:
    from r1cli.errors import NotImplementedStage

    mod, cls, _, _ = STAGES[stage]
    c = getattr(importlib.import_module(mod), cls, None)
    if c is None:
        raise NotImplementedStage(stage)
    return c


def _print_config(cfg: Any) -> None:
    import yaml

    from r1cli.config import describe_fields, to_plain

    plain = to_plain(cfg)
    lines = []
    for name, tp, _default, help_ in describe_fields(type(cfg)):
        if help_:
            lines.append(f"# {help_} ({tp})")
        lines.append(yaml.safe_dump({name: plain.get(name)}, sort_keys=False, allow_unicode=True).rstrip())
    typer.echo("\n".join(lines))


def run_stage(
    stage: str,
    *,
    recipe: Path | None,
    sets: list[str] | None,
    overrides: dict[str, Any],
    resume: bool = False,
    overwrite: bool = False,
    debug: bool = False,
    as_json: bool = False,
    print_config: bool = False,
    dry_run: bool = False,
    dry_run_rows: int = 2,
    preflight: bool = False,
) -> None:
    from r1cli.artifacts import setup_processes
    from r1cli.config import load_config
    from r1cli.errors import NotImplementedStage, UsageError

    setup_processes()  # before any trainer config: a multi-process launch on CPU must pick gloo
    if debug:
        os.environ["R1CLI_DEBUG"] = "1"
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other", hint="pick one")
    _, _, stage_mod, kind = STAGES[stage]
    cls = config_class(stage)
    cfg = load_config(cls, recipe, sets, overrides)
    if print_config:
        _print_config(cfg)
        return
    try:
        module = importlib.import_module(stage_mod)
    except ModuleNotFoundError as e:
        if e.name == stage_mod:
            raise NotImplementedStage(stage) from None
        raise
    if dry_run:
        _dry_run(module, cfg, stage, dry_run_rows, as_json)
        return
    if preflight:
        _preflight(module, cfg, stage, as_json)
        return
    if not getattr(cfg, "output", None):
        raise UsageError(f"`r1 {stage}` needs --output", hint="e.g. --output runs/demo/" + stage.replace("-", "_"))
    execute(stage, module, cfg, kind, resume=resume, overwrite=overwrite, as_json=as_json)


def _dry_run(module: Any, cfg: Any, stage: str, rows: int, as_json: bool) -> None:
    from r1cli.dryrun import InputRecorder, report
    from r1cli.errors import UsageError

    if not hasattr(module, "dry_run"):
        raise UsageError(f"`r1 {stage}` has no --dry-run", hint="it feeds no prompts or training sequences")
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the report alone
        d = module.dry_run(cfg, rows, InputRecorder())
    report(d, as_json=as_json)


def _preflight(module: Any, cfg: Any, stage: str, as_json: bool) -> None:
    from r1cli.dryrun import InputRecorder
    from r1cli.errors import UsageError
    from r1cli.grpo.preflight import judge, print_report

    if not hasattr(module, "preflight"):
        raise UsageError(f"`r1 {stage}` has no --preflight", hint="it runs for `r1 rl` and `r1 align`")
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the report alone
        report = module.preflight(cfg, InputRecorder())
    print_report(report, as_json=as_json)
    judge(report, cfg.preflight_max_zero_std)


def execute(stage: str, module: Any, cfg: Any, kind: str, *, resume: bool, overwrite: bool, as_json: bool) -> dict:
    """Prepare the run folder, run the stage, write the manifest (last), print results."""
    import shutil

    from r1cli.artifacts import RunDir, end_processes
    from r1cli.console import emit_json, log
    from r1cli.errors import ConfigError, InputArtifactError, UsageError

    try:
        run = RunDir.prepare(cfg.output, stage, kind, overwrite=overwrite, resume=resume)
        try:
            run.write_config(cfg)
            # stdout carries results only: trainers' own prints (TRL/transformers log dicts) go to stderr
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    result = module.run(cfg, run) or {}
            except (ConfigError, UsageError, InputArtifactError):
                # a config or input error: nothing was produced, so a folder this command created goes again
                # (a corrected rerun then needs no --overwrite); a resumed or pre-existing folder stays as it was
                if run.fresh and run.is_main and not (run.path / "manifest.json").exists():
                    shutil.rmtree(run.path, ignore_errors=True)
                raise
            metrics = result.get("metrics", {})
            man = run.complete(cfg, metrics=metrics, data=result.get("data"), extra=result.get("manifest_extra"))
        finally:
            run.close()
    except BaseException:
        end_processes(wait=False)
        raise
    end_processes()  # every rank leaves after rank 0 wrote the manifest
    if not run.is_main:
        return man
    summary = {"stage": stage, "output": str(run.path), "metrics": metrics, "timings": man["timings"]}
    if as_json:
        emit_json(result.get("json", summary))
    else:
        _print_summary(stage, result.get("table") or metrics, run.path)
    log(f"[green]done[/]: r1 {stage} -> {run.path}")
    return man


def _print_summary(stage: str, metrics: dict[str, Any], path: Path) -> None:
    from rich.table import Table

    from r1cli.console import out

    if not metrics:
        out().print(f"{stage}: {path}")
        return
    t = Table(title=f"r1 {stage}: {path}", title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in _flatten(metrics).items():
        t.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    out().print(t)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out
