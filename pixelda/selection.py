"""Ranking runs and their checkpoints (evaluation steps) by a label-free validator, from each run's
metrics.jsonl, and flagging runs whose generator stopped keeping labels (python -m pixelda.select,
pixelda.select)."""

from pathlib import Path

from .errors import UserError
from .rundir import RunDir
from .validators import HIGHER_IS_BETTER, im_kept, keeping_flag

DEFAULT = "im_kept"  # the config's --select-by default


def evaluations(run: str | Path) -> list[dict]:
    """The eval records of a run folder's metrics.jsonl; a UserError if there are none."""
    path = Path(run).expanduser()
    if not path.is_dir():
        raise UserError(f"{run}: no such run folder")
    records = [r for r in RunDir(path).read_metrics() if r.get("kind") == "eval"]
    if not records:
        raise UserError(f"{run}: no evaluations in {path / 'metrics.jsonl'}")
    for r in records:  # runs logged before im_kept existed: the same value from its two parts
        if "validator_im" in r and "validator_im_kept" not in r:
            r["validator_im_kept"] = im_kept(r["validator_im"], r.get("validator_label_keeping"))
    return records


def keeping_flags(records: list[dict]) -> list[str]:
    """Per eval record, "" or why its label_keeping is flagged (validators.keeping_flag)."""
    flags, best = [], None
    for r in records:
        value = r.get("validator_label_keeping")
        flag = ""
        if value is not None:
            best = value if best is None else max(best, value)
            flag = keeping_flag(value, best)
        flags.append(flag)
    return flags


def select(runs: list, by: str = DEFAULT) -> list[dict]:
    """Every checkpoint of every run, best first by validator `by` -> a list of dicts with
    run, step, value, target_val_acc (None when not logged; shown for comparison only, never
    used to rank), label_keeping (None when not logged) and flag ("" or why label keeping is
    flagged). A UserError for a missing folder, a run without evaluations, an unknown validator
    or a run that does not log it."""
    if by not in HIGHER_IS_BETTER:
        raise UserError(f"--by: unknown validator {by!r}; expected one of {list(HIGHER_IS_BETTER)}")
    key = f"validator_{by}"
    rows = []
    for run in runs:
        records = evaluations(run)
        if not any(key in r for r in records):
            logged = sorted({k.removeprefix("validator_") for r in records for k in r})
            logged = [k for k in logged if k in HIGHER_IS_BETTER]
            raise UserError(f"{run}: logs no {key} (its validators: {', '.join(logged) or 'none'})")
        for r, flag in zip(records, keeping_flags(records)):
            if key in r:
                rows.append(
                    {
                        "run": str(run),
                        "step": r["step"],
                        "value": r[key],
                        "target_val_acc": r.get("target_val_acc"),
                        "label_keeping": r.get("validator_label_keeping"),
                        "flag": flag,
                    }
                )
    sign = -1 if HIGHER_IS_BETTER[by] else 1
    return sorted(rows, key=lambda row: sign * row["value"])


def table(rows: list[dict], by: str) -> str:
    """The ranking as text, one checkpoint a line; flagged ones end with '!' and the reason."""
    runs = max(len(r["run"]) for r in rows)
    show_acc = any(r["target_val_acc"] is not None for r in rows)
    way = "higher" if HIGHER_IS_BETTER[by] else "lower"
    head = f"rank  {'run':<{runs}}  {'step':>7}  {by + ' (' + way + ' better)':>24}"
    head += "  target_val_acc" * show_acc + "  label_keeping"
    lines = [head]
    for i, r in enumerate(rows, 1):
        line = f"{i:>4}  {r['run']:<{runs}}  {r['step']:>7}  {r['value']:>24.6g}"
        if show_acc:
            acc = r["target_val_acc"]
            line += f"  {'' if acc is None else f'{acc:.4f}':>14}"
        keep = r["label_keeping"]
        line += f"  {'' if keep is None else f'{keep:.4f}':>13}"
        lines.append(line + (f"  ! {r['flag']}" if r["flag"] else ""))
    return "\n".join(lines)


def summary(rows: list[dict], by: str) -> str:
    """Each run's chosen checkpoint, and the runs with a flagged checkpoint."""
    lines, seen = [], set()
    for r in rows:  # best first, so a run's first row is its pick
        if r["run"] not in seen:
            seen.add(r["run"])
            lines.append(f"{r['run']}: best checkpoint by {by} is step {r['step']}")
    for run in dict.fromkeys(r["run"] for r in rows if r["flag"]):
        steps = sorted(r["step"] for r in rows if r["run"] == run and r["flag"])
        lines.append(
            f"! {run}: its generator may have stopped keeping labels (flagged at step"
            f"{'s' * (len(steps) > 1)} {', '.join(map(str, steps))})"
        )
    return "\n".join(lines)
