"""The summary as text: the machine and plan, each step's outcome, perf's figures against the targets,
the three runs beside the paper's numbers, the 200-epoch time, and the bf16-vs-fp32 rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# the speed targets (pipeline against the model-only ceiling and against a 16-worker DataLoader),
# set for one H200 with the CIFAR ResNet-18 at batch 512
RATIO_TARGETS = {"pipeline_vs_ceiling": 0.80, "pipeline_vs_dataloader": 4.0}
RULE = "=" * 100


def _fmt(value: Any, spec: str = ".4f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_summary(summary: dict, out: Path) -> str:
    lines = ["", RULE, "gpu-check summary"]
    env = summary.get("environment") or {}
    if env:
        lines.append(
            f"device: {env.get('device_name')} | torch {env.get('torch')} | python {env.get('python')} | "
            f"{env.get('cpu_count')} CPUs | host {env.get('host')}"
        )
    plan = summary.get("plan") or {}
    if plan:
        lines.append("plan: " + ", ".join(f"{k} {v}" for k, v in plan.items()))
    lines += _step_lines(summary.get("steps") or {})
    lines += _perf_lines(summary.get("perf"))
    lines += _run_lines(summary)
    lines += _extrapolation_lines(summary.get("extrapolated_200_epochs"))
    lines += _precision_lines(summary.get("precision"))
    files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")) if out.is_dir() else []
    lines += [f"files in {out}: " + ", ".join(files), RULE]
    return "\n".join(lines)


def _step_lines(steps: dict) -> list[str]:
    if not steps:
        return []
    lines = [f"{'step':<11}{'outcome':<34}{'seconds':>9}  limit"]
    for name, step in steps.items():
        lines.append(
            f"{name:<11}{step.get('outcome', '?'):<34}{_fmt(step.get('seconds'), '.0f'):>9}  "
            f"{_fmt(step.get('limit'), '.0f')}" + (f"  ({step['note']})" if step.get("note") else "")
        )
    return lines


def _perf_lines(perf: dict | None) -> list[str]:
    lines = ["", "-- 1. gpsbench perf --quick (torch.compile on)"]
    if not perf:
        return lines + ["   nothing measured (not run, or cut off before its first phase ended)"]
    if perf.get("partial"):
        lines.append("   CUT OFF: the phases measured before it stopped (perf-phases.json):")
    step = perf.get("step") or {}
    figures = perf.get("figures_images_per_s") or step.get("figures") or {}
    setup = perf.get("setup") or step.get("setup") or {}
    if setup:
        lines.append(
            f"   {setup.get('backbone')} {setup.get('method')} {setup.get('aug')} DA, batch "
            f"{setup.get('batch_size')}, {setup.get('train_images')} images, precision "
            f"{setup.get('precision')}, compile {setup.get('compile')} (graphs "
            f"{setup.get('compiled_graphs')}, graph breaks {setup.get('graph_breaks')}), DataLoader "
            f"workers {setup.get('dataloader_workers')}"
        )
    if figures:
        lines.append("   views/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in figures.items()))
        lines += _ratio_lines(perf.get("ratios"), figures)
    syncs = perf.get("pipeline_host_syncs", step.get("host_syncs"))
    if syncs is not None:
        where = "none" if not syncs else "; ".join(f"{n} x {at}" for at, n in syncs.items())
        lines.append(f"   host syncs per pipeline step: {where}")
    knn = perf.get("knn")
    if knn:
        shown = (f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in knn.items() if k != "embedding")
        lines.append("   knn: " + ", ".join(shown))
    registry = perf.get("registry")
    if registry:
        lines.append(
            f"   registry: plan {registry.get('plan_seconds', 0):.2f} s, states "
            f"{registry.get('states_seconds', 0):.2f} s, table {registry.get('table_seconds', 0):.2f} s"
        )
    if perf.get("phase_seconds"):
        lines.append("   seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in perf["phase_seconds"].items()))
    return lines


def _ratio_lines(ratios: dict | None, figures: dict) -> list[str]:
    if not ratios:  # a cut-off perf: the ratios from the step's figures
        ceiling, loader = figures.get("ceiling"), figures.get("dataloader_train")
        ratios = {
            "pipeline_vs_ceiling": figures["pipeline"] / ceiling if ceiling else None,
            "pipeline_vs_dataloader": figures["pipeline"] / loader if loader else None,
        }
    lines = []
    for name, value in ratios.items():
        target = RATIO_TARGETS.get(name)
        verdict = ""
        if target is not None and value is not None:
            verdict = f"  (H200 target >= {target:g}: {'met' if value >= target else 'NOT met'})"
        lines.append(f"   {name:<30}{_fmt(value, '.3g')}{verdict}")
    return lines


def _run_lines(summary: dict) -> list[str]:
    runs = summary.get("runs") or []
    lines = ["", "-- 2. the paper's claim: sweeps/gpu-check.yaml (CIFAR-10, SimCLR, batch and sizes in the plan)"]
    if not runs:
        return lines + ["   no sweep folder (not run, or cut off before it planned)"]
    paper = summary.get("paper_linear_acc") or {}
    lines.append(
        f"   {'run':<40}{'state':<9}{'epochs':>7}{'knn':>8}{'linear':>8}{'paper':>7}{'s/epoch':>9}"
        f"{'wall s':>8}  val kNN curve"
    )
    linear: dict[str, Any] = {}
    for run in runs:
        result = run.get("result") or {}
        key = f"{run['label'].split()[1]}{' gps' if run['label'].startswith('GPS') else ''}"
        linear[key] = result.get("linear_acc")
        curve = " ".join(f"{m['epoch']}:{m['val_knn_acc']:.3f}" for m in run["metrics"] if "val_knn_acc" in m)
        lines.append(
            f"   {run['label']:<40}{run['state']:<9}"
            f"{run['epochs_done']:>3}/{_fmt(run['epochs_planned'], 'd', '?'):<3}"
            f"{_fmt(result.get('knn_acc'), '.2%'):>8}{_fmt(result.get('linear_acc'), '.2%'):>8}"
            f"{_fmt(paper.get(key), '.1f'):>7}{_fmt(run['steady_epoch_seconds'], '.2f'):>9}"
            f"{_fmt(run['wall_seconds'], '.0f'):>8}  {curve or '-'}"
        )
        if run.get("error"):
            lines.append(f"      error: {run['error']}")
            lines += [f"      | {line}" for line in (run.get("traceback") or "").strip().splitlines()[-6:]]
    if linear.get("weak gps") is not None and linear.get("weak") is not None:
        gain = 100 * (linear["weak gps"] - linear["weak"])
        paper_gain = paper["weak gps"] - paper["weak"] if "weak gps" in paper and "weak" in paper else None
        lines.append(
            f"   GPS gain with weak DA: {gain:+.2f} points linear probe (paper, at its full schedule and by "
            f"its online classifier chosen on test: {_fmt(paper_gain, '+.2f')})"
        )
    return lines


def _extrapolation_lines(extrapolated: dict | None) -> list[str]:
    lines = ["", "-- the 200-epoch strong-DA SimCLR run, extrapolated from the measured epochs (target < 7 min):"]
    if not extrapolated:
        return lines + ["   not enough measured epochs (two are needed)"]
    verdict = "meets" if extrapolated["meets_target"] else "does NOT meet"
    partial = "" if extrapolated["complete"] else " (partial: the run did not finish)"
    return (
        lines
        + [f"   {line}" for line in extrapolated["formula_lines"]]
        + [f"   {verdict} the 7-minute target{partial}"]
    )


def _precision_lines(precision: dict | None) -> list[str]:
    lines = ["", "-- 3. bf16 autocast vs fp32 (gpsbench perf --precision-check)"]
    if not precision:
        return lines + ["   not measured (not asked for, or perf stopped before that phase)"]
    from benchmark.perf.precision import precision_lines

    return lines + ["   " + line for line in precision_lines(precision)]
