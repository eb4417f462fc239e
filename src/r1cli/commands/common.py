"""Options shared by every stage command, and the one driver that runs a stage.

`run_stage` is the whole life of a command: resolve the config (defaults < YAML < --set < options), prepare the
output folder, save `config.yaml`, call `r1cli.stages.<stage>.run(cfg, run)`, write `manifest.json` last, and
print the results (a table, or one JSON object with `--json`) on stdout.

Under `accelerate launch` / torchrun every rank runs this same driver: rank 0 alone prepares the output, writes
config.yaml and manifest.json and prints the results; the other ranks train in step with it (DDP) and write only to
a scratch folder (see `r1cli.runs.folder`, and `r1cli.runs.ranks.debug_rank_hash` for checking that the ranks agree).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer


@dataclass(frozen=True)
class Option:
    """One command-line option: its flags, help and type, and the config key it sets (`key`), or the `run_stage`
    argument it feeds (`arg`). A `switch` passes True or nothing, so an unset switch leaves the recipe's value."""

    flags: tuple[str, ...]
    help: str
    type: Any = Optional[str]
    key: str | None = None
    arg: str | None = None
    switch: bool = False
    default: Any = None
    min: int | None = None

    @property
    def param(self) -> str:
        return self.flags[0].lstrip("-").replace("-", "_") + "_"


def opt(flags: str | tuple[str, ...], help: str, **kw: Any) -> Option:
    """An option that sets a config key (default: the flag's name with `-` as `_`)."""
    flags = (flags,) if isinstance(flags, str) else flags
    kw.setdefault("key", None if kw.get("arg") else flags[0].lstrip("-").replace("-", "_"))
    return Option(flags, help, **kw)


def switch(flag: str, help: str, **kw: Any) -> Option:
    return opt(flag, help, type=bool, switch=True, default=False, **kw)


# Every stage command takes these (in this order, after its own).
COMMON: tuple[Option, ...] = (
    opt(("--recipe", "-r"), "YAML recipe; its keys override the defaults.", type=Optional[Path], arg="recipe"),
    opt(("--set", "-s"), "Override one config key: --set key=value (repeatable; dots for nesting).",
        type=Optional[list[str]], arg="sets"),
    opt(("--output", "-o"), "Output run folder.", type=Optional[Path]),
    opt("--seed", "Random seed.", type=Optional[int]),
    switch("--resume", "Continue an interrupted run in --output.", arg="resume", key=None),
    switch("--overwrite", "Replace an existing run in --output.", arg="overwrite", key=None),
    switch("--debug", "Show tracebacks on errors.", arg="debug", key=None),
    switch("--json", "Print the results as one JSON object on stdout.", arg="as_json", key=None),
    switch("--print-config", "Print the resolved config as YAML (with help) and exit.", arg="print_config",
           key=None),
)
DRY_RUN: tuple[Option, ...] = (
    switch("--dry-run", "Print the first examples exactly as the stage would feed them (token ids, trained tokens, "
           "checks) and exit; loads the tokenizer only, writes nothing.", arg="dry_run", key=None),
    opt("--dry-run-rows", "Examples shown by --dry-run.", type=int, default=2, min=1, arg="dry_run_rows"),
)
PREFLIGHT = switch("--preflight", "Only sample G completions for preflight_prompts training prompts with the run's "
                   "sampler and rewards, print the report (reward means, flat groups, answers, lengths) and exit; "
                   "exit 4 when no group has reward variance. Writes nothing.", arg="preflight", key=None)
MODEL = opt(("--model", "-m"), "Model: a preset (tiny), an r1cli run, a HF folder or a hub id.")
INPUT = opt(("--input", "-i"), "Input artifact: an r1cli run folder, a dataset file or folder, or a hub id.")


def make_command(stage: str, doc: str, options: tuple[Option, ...], *, context: bool = False) -> Any:
    """The typer command of `stage`: its `options` then `COMMON`, each mapped to a config key (an override) or a
    `run_stage` argument. `context` adds typer's Context first (a group callback: runs only without a subcommand)."""
    import inspect

    every = (*options, *COMMON)

    def command(*args: Any, **kw: Any) -> None:
        ctx = kw.pop("ctx", None) or (args[0] if args else None)
        if context and ctx is not None and ctx.invoked_subcommand is not None:
            return
        run_args: dict[str, Any] = {}
        overrides: dict[str, Any] = {}
        for o in every:
            value = kw.get(o.param)
            if o.arg:
                run_args[o.arg] = value
            elif o.key:
                if isinstance(value, Path):
                    value = str(value)
                overrides[o.key] = (value or None) if o.switch else value
        run_stage(stage, overrides=overrides, **run_args)

    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)] \
        if context else []
    for o in every:
        info = typer.Option(o.default, *o.flags, help=o.help, min=o.min) if o.min is not None else \
            typer.Option(o.default, *o.flags, help=o.help)
        params.append(inspect.Parameter(o.param, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=o.type))
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = stage.replace("-", "_")
    command.__doc__ = doc
    return command


# stage -> (config class, output kind). The stage runs in `r1cli.stages.<stage>` (`-` as `_`), and its config class
# lives beside it, in `r1cli.stages.<stage>_config`.
STAGES: dict[str, tuple[str, str]] = {
    "base": ("BaseConfig", "model"),
    "data": ("DataConfig", "dataset"),
    "eval": ("EvalConfig", "eval"),
    "coldstart": ("ColdstartConfig", "model"),
    "rl": ("RLConfig", "model"),
    "reject-sample": ("RejectSampleConfig", "dataset"),
    "align": ("AlignConfig", "model"),
    "distill": ("DistillConfig", "model"),
    "reward-model": ("RewardModelConfig", "model"),
    "merge": ("MergeConfig", "model"),
}


def stage_module(stage: str) -> str:
    return "r1cli.stages." + stage.replace("-", "_")


def config_class(stage: str) -> type:
    """The stage's config class (importing a trainer stage's config imports TRL)."""
    return getattr(importlib.import_module(stage_module(stage) + "_config"), STAGES[stage][0])


def _print_config(cfg: Any) -> None:
    import yaml

    from r1cli.config_loader import describe_fields, to_plain

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
    recipe: Path | None = None,
    sets: list[str] | None = None,
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
    from r1cli.config_loader import build, config_values
    from r1cli.errors import UsageError
    from r1cli.runs import setup_processes
    from r1cli.thirdparty import (
        allow_bitsandbytes,
        defer_bitsandbytes,
        needs_bitsandbytes,
        no_download_counter,
        quiet_library_warnings,
        undefer_bitsandbytes,
    )

    if debug:
        os.environ["R1CLI_DEBUG"] = "1"
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other", hint="pick one")
    values = config_values(recipe, sets, overrides)  # YAML / --set errors: before torch or TRL is imported
    setup_processes()  # before any trainer config: a multi-process launch on CPU must pick gloo
    quiet_library_warnings()
    no_download_counter()
    # trainer configs import transformers, which imports peft, which imports bitsandbytes (a hub request for a
    # kernel, and warnings): blocked unless this config loads a 4-bit model or a bitsandbytes optimizer
    blocked = defer_bitsandbytes()
    try:
        cfg = build(config_class(stage), values)
        if print_config:
            _print_config(cfg)
            return
        if not (dry_run or preflight) and not getattr(cfg, "output", None):
            raise UsageError(f"`r1 {stage}` needs --output", hint="e.g. --output runs/demo/" + stage.replace("-", "_"))
        if needs_bitsandbytes(cfg):
            with contextlib.suppress(ImportError):  # not installed: the 4-bit loader or the optimizer says so
                allow_bitsandbytes()
        module = importlib.import_module(stage_module(stage))
        if dry_run:
            _dry_run(module, cfg, dry_run_rows, as_json)
            return
        if preflight:
            _preflight(module, cfg, as_json)
            return
        execute(stage, module, cfg, STAGES[stage][1], resume=resume, overwrite=overwrite, as_json=as_json)
    finally:
        if blocked:
            undefer_bitsandbytes()


def _dry_run(module: Any, cfg: Any, rows: int, as_json: bool) -> None:
    from r1cli.dryrun import InputRecorder, report

    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the report alone
        d = module.dry_run(cfg, rows, InputRecorder())
    report(d, as_json=as_json)


def _preflight(module: Any, cfg: Any, as_json: bool) -> None:
    from r1cli.dryrun import InputRecorder
    from r1cli.grpo.preflight import judge, print_report

    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the report alone
        report = module.preflight(cfg, InputRecorder())
    print_report(report, as_json=as_json)
    judge(report, cfg.preflight_max_zero_std)


def execute(stage: str, module: Any, cfg: Any, kind: str, *, resume: bool, overwrite: bool, as_json: bool) -> dict:
    """Prepare the run folder, run the stage, write the manifest (last), print results."""
    import shutil

    from r1cli.console import emit_json, log
    from r1cli.errors import ConfigError, InputArtifactError, UsageError
    from r1cli.runs import RunDir, end_processes
    from r1cli.thirdparty import no_weight_bars

    try:
        run = RunDir.prepare(cfg.output, stage, kind, overwrite=overwrite, resume=resume)
        try:
            run.write_config(cfg)
            # stdout carries results only: trainers' own prints (TRL/transformers log dicts) go to stderr
            try:
                bars = contextlib.nullcontext() if stage == "data" else no_weight_bars()  # data: no transformers
                with contextlib.redirect_stdout(sys.stderr), bars:
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
