"""The benchmark suite: every pipeline, uniform against the error-guided strategies, 3 seeds each.

One ``foveate compare`` per case (image fields on 10 photos, radiance fields and NeuS on 3 rendered
meshes at clean and noisy targets, a radiance field on a bunny with fine checkered ears, splats, PBR
samples, two motions, one of them with rare hard bins), each with dense validation and paired seeds,
and the star universe's budget over cells (``benchmarks/universe.py --strategies``: seeds of the
draws alone, one validation at the end). The summary reads every run's curve the way the comparison
reports do: a run's quality is its *settled* value (the mean of its last 3 validations: finals
swing), compared with uniform's seed by seed; steps and wall-clock to uniform's settled quality are
read on best-so-far curves of means of 3 consecutive validations (one lucky validation is not an
arrival). It writes ``summary.md`` and ``summary.json`` and, with ``--readme``, replaces the block
between ``<!-- suite:begin -->`` and ``<!-- suite:end -->`` in the README.

Cases already done (their ``report.json`` exists) are skipped, so an interrupted suite resumes.
``--rerun adaptive`` trains that strategy again in the chosen cases that are done and pools the
new runs with the case's other variants (the earlier report is kept in ``previous/``): a change to
one strategy is measured against the same uniform runs, seed by seed. ``--null`` trains uniform
again with other draws (``--sampling.draw-seed-offset``; same seeds, so the same initialisations) into
each case's ``null/``: its deltas to uniform are what the draws' luck alone moves a run, the
yardstick for every other delta in the case. ``--more-seeds 3`` trains seeds 3-5 (after the
highest seed there) of every variant of done cases, and of their nulls, and pools them with the
runs there (the earlier report kept in ``before-seeds-3/``). ``--budgets`` trains the guided strategies again for
fractions of uniform's steps, each with its own schedule (``budget-F/``): the fraction at which
they match uniform's full run is the steps ratio under matched schedules, which also charges the
shorter schedule's own cost (their figures are not kept). The scenes it needs are rendered first
with Mitsuba (``foveate data render``; cached in ``--scenes``), the PBR dataset written with
``foveate pbr data``.

    python benchmarks/suite.py                           # CPU sizes: about an hour on 2 cores
    python benchmarks/suite.py --size gpu --workers 1    # GPU sizes
    python benchmarks/suite.py --only image --size preset --out benchmarks/results/suite_preset   # 4x the work
    python benchmarks/suite.py --only image nerf         # some pipelines (or case names)
    python benchmarks/suite.py --rerun adaptive          # one strategy again, against the same uniform runs
    python benchmarks/suite.py --null --only nerf        # uniform with other draws: the spread of luck alone
    python benchmarks/suite.py --only nerf --more-seeds 3   # seeds 3-5 of every variant and the null, pooled
    python benchmarks/suite.py --only image --budgets 0.5 0.6 0.7 0.85   # matched schedules
    python benchmarks/suite.py --only image-logo --images logo.png       # an image of your own as a case
    python benchmarks/suite.py --summarise benchmarks/results/suite --readme README.md
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from foveate.report.compare import machine, pool_saved
from foveate.report.pooling import RunRecord, best_so_far, crossing, pool_budgets, settled, smoothed

PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "text",
    "microaneurysms",
)
"""scikit-image's photos: portraits, a grey scene, objects, a microscope slide, a sky survey (1000 x 872),
a fundus image (1411 x 1411), printed text (448 x 172) and a 102 x 102 retinal crop, fewer pixels than
a step draws (the memorising regime)."""
MESHES = ("bunny", "cow", "airplane")
"""pymeshlab's sample bunny (the renderer's ``bunny``), cow and airplane."""
CHECKER_SCENE = "checker64-clean"
"""The bunny with a fine checker on its ears (``paint_checker``): error concentrated in a small region."""
GUIDED = ("error_weighted", "adaptive")
IMAGE_CPU = ("--preset", "cpu", "--steps", "300", "--batch-size", "8192", "--train.validate-every", "15", "--no-ssim")
IMAGE_PRESET = ("--preset", "cpu", "--train.validate-every", "30", "--no-ssim")
"""``--size preset``: the image ``cpu`` preset at its own 600 steps of 16,384 pixels (4x ``cpu``'s work)."""
NULL = "uniform, other draws"
"""The null variant: uniform with draws seeded apart from the model (``--null``)."""
NULL_DRAW_OFFSET = 1000
DB_TOLERANCE = 0.1
"""A guided strategy 'hurts' when it settles this many dB below uniform (PSNR metrics)."""
RELATIVE_TOLERANCE = 0.01
"""... or, for other metrics, this fraction worse than uniform."""
STEPLESS = ("universe", "motion", "pbr")
"""Pipelines whose budget is not a --steps count (rounds, iterations, epochs): no budget sweep."""
UNIVERSE = Path(__file__).with_name("universe.py")
"""The universe's case runs this benchmark (the budget over cells is no `foveate compare` pipeline)."""


@dataclass(frozen=True)
class Case:
    """One comparison: a pipeline on one input, at a CPU and a GPU size (and the CPU preset's own, if other)."""

    name: str
    pipeline: str
    inputs: tuple[str, ...]
    cpu: tuple[str, ...]
    gpu: tuple[str, ...]
    strategies: tuple[str, ...] = ("uniform", *GUIDED)
    preset: tuple[str, ...] | None = None
    """The pipeline's ``cpu`` preset at the size it is made for, where ``cpu`` shortens it (None: ``cpu``)."""

    def settings(self, size: str) -> tuple[str, ...]:
        """The arguments of one size: ``cpu``, ``preset`` or ``gpu``."""
        if size == "gpu":
            return self.gpu
        return self.preset if size == "preset" and self.preset is not None else self.cpu

    def with_args(self, *extra: str) -> Case:
        """The same case with ``extra`` arguments at every size."""
        preset = None if self.preset is None else (*self.preset, *extra)
        return replace(self, cpu=(*self.cpu, *extra), gpu=(*self.gpu, *extra), preset=preset)

    def cut(self, steps: int) -> Case:
        """The same case trained for ``steps`` steps at every size, each on its own schedule."""
        preset = None if self.preset is None else _with_steps(self.preset, steps)
        return replace(self, cpu=_with_steps(self.cpu, steps), gpu=_with_steps(self.gpu, steps), preset=preset)


def scene_dir(scenes: Path, mesh: str, noisy: bool) -> Path:
    return scenes / f"{mesh}64-{'noisy' if noisy else 'clean'}"


def cases(scenes: Path, pbr_data: Path, images: tuple[Path, ...] = ()) -> list[Case]:
    """Every case of the suite; ``images`` adds an image case per file (named ``image-STEM``)."""
    found: list[Case] = []
    for name, photo in [*((p, p) for p in PHOTOS), *((p.stem, str(p)) for p in images)]:
        found.append(
            Case(
                f"image-{name}",
                "image",
                ("--image", photo),
                IMAGE_CPU,
                ("--preset", "default", "--train.validate-every", "50"),
                preset=IMAGE_PRESET,
            )
        )
    for mesh in MESHES:
        for noisy in (False, True):
            found.append(
                Case(
                    f"nerf-{mesh}-{'noisy' if noisy else 'clean'}",
                    "nerf",
                    ("--scene", str(scene_dir(scenes, mesh, noisy))),
                    ("--preset", "cpu", "--steps", "300", "--train.validate-every", "15"),
                    ("--preset", "default", "--train.validate-every", "100"),
                )
            )
    for noisy in (False, True):
        for mesh in MESHES:
            found.append(
                Case(
                    f"neus-{mesh}{'-noisy' if noisy else ''}",
                    "neus",
                    ("--scene", str(scene_dir(scenes, mesh, noisy))),
                    ("--preset", "cpu", "--steps", "100", "--train.validate-every", "20"),
                    ("--preset", "fast", "--train.validate-every", "250"),
                )
            )
    found.append(
        Case(
            "nerf-checker-clean",
            "nerf",
            ("--scene", str(scenes / CHECKER_SCENE)),
            ("--preset", "cpu", "--steps", "300", "--train.validate-every", "15"),
            ("--preset", "default", "--train.validate-every", "100"),
        )
    )
    found.append(
        Case(
            "splat-bunny",
            "splat",
            ("--scene", str(scene_dir(scenes, "bunny", False))),
            ("--preset", "cpu", "--steps", "500", "--train.validate-every", "25"),
            ("--preset", "default", "--train.validate-every", "500"),
        )
    )
    found.append(
        Case(
            "pbr",
            "pbr",
            ("--data-root", str(pbr_data)),
            ("--preset", "tiny", "--epochs", "8", "--training.val-every-n-epochs", "1"),
            ("--preset", "quick_test", "--image-size", "128"),
        )
    )
    found.append(
        Case(
            "universe-landmarks",
            "universe",
            ("--max-mag", "8", "--neighbors", "0", "--work", "runs/suite-universe"),
            ("--iterations", "100", "--chunk", "25", "--image-size", "64"),
            ("--iterations", "1000", "--chunk", "100", "--image-size", "256"),
        )
    )
    found.append(
        Case(
            "motion-walker2d",
            "motion",
            ("--preset", "walker2d"),
            ("--steps", "60", "--train.validate-every", "5"),
            ("--steps", "500", "--num-envs", "4096"),
            strategies=("uniform", "paper", "official"),
        )
    )
    found.append(
        Case(
            "motion-walker2d-long",
            "motion",
            ("--preset", "walker2d-long", "--train.no-stop-at-target"),
            ("--steps", "400", "--train.validate-every", "20"),
            ("--steps", "400", "--num-envs", "4096", "--train.validate-every", "20"),
            strategies=("uniform", "paper", "official"),
        )
    )
    return found


def prepare(scenes: Path, pbr_data: Path, chosen: list[Case]) -> None:
    """Render the scenes and write the dataset the chosen cases need (once)."""
    needed = {a for case in chosen for a in case.inputs if a.startswith(str(scenes))}
    for mesh in MESHES:
        for noisy in (False, True):
            out = scene_dir(scenes, mesh, noisy)
            if str(out) not in needed or (out / "render.json").exists():
                continue
            import pymeshlab  # the cow and the airplane ship with it

            samples = Path(pymeshlab.__file__).parent / "tests" / "sample_meshes"
            sources = {"bunny": "bunny", "cow": str(samples / "cow.obj"), "airplane": str(samples / "airplane.obj")}
            spp = ["--spp", "8", "--noise"] if noisy else ["--spp", "256"]
            command = ["foveate", "data", "render", "--out", str(out), "--scene", sources[mesh], "--views", "32"]
            command += ["--val-views", "8", "--test-views", "0", "--width", "64", "--height", "64", *spp]
            _run(command, None)
    checker = scenes / CHECKER_SCENE
    if str(checker) in needed and not (checker / "render.json").exists():
        from foveate.data.render import bunny_mesh_path

        painted = scenes / "bunny-checker.ply"
        paint_checker(bunny_mesh_path(), painted)
        command = ["foveate", "data", "render", "--out", str(checker), "--scene", str(painted), "--views", "32"]
        command += ["--val-views", "8", "--test-views", "0", "--width", "64", "--height", "64", "--spp", "256"]
        _run(command, None)
    if any(case.pipeline == "pbr" for case in chosen) and not (pbr_data / "output").exists():
        _run(["foveate", "pbr", "data", "--out", str(pbr_data), "--samples", "64", "--size", "64"], None)


def paint_checker(source: Path, out: Path, top: float = 0.16, cells: int = 18) -> None:
    """Write ``source`` with vertex colours: the bunny's clay, and a black-and-white 3-D checker of
    ``cells`` cells across the mesh's height on its highest ``top`` of vertices (the ears).

    A scene whose error concentrates in a small detailed region: about 2 pixels a cell at 64 x 64.
    """
    import numpy as np
    import trimesh

    mesh = trimesh.load(source, process=False, force="mesh")
    vertices = mesh.vertices
    cell = np.ptp(vertices[:, 1]) / cells
    parity = np.floor((vertices - vertices.min(axis=0)) / cell).astype(np.int64).sum(axis=1) % 2 == 1
    painted = vertices[:, 1] > np.quantile(vertices[:, 1], 1.0 - top)
    colours = np.tile(np.array([0.72, 0.5, 0.32, 1.0]), (len(vertices), 1))
    colours[painted & parity, :3] = 0.95
    colours[painted & ~parity, :3] = 0.05
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.rint(colours * 255).astype(np.uint8))
    out.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(out)


def _run(command: list[str], log: Path | None) -> None:
    command = [sys.executable, "-m", "foveate", *command[1:]] if command[0] == "foveate" else command
    print("$", shlex.join(command), flush=True)
    if log is None:
        subprocess.run(command, check=True)
        return
    with log.open("w") as stream:
        subprocess.run(command, check=True, stdout=stream, stderr=subprocess.STDOUT)


def _compare(case: Case, strategies: tuple[str, ...], target: Path, size: str, seeds: int, workers: int) -> float:
    """Run ``foveate compare`` for one case into ``target``; returns the seconds it took."""
    target.mkdir(parents=True, exist_ok=True)
    tool = [sys.executable, str(UNIVERSE)] if case.pipeline == "universe" else ["foveate", "compare", case.pipeline]
    command = [*tool, *case.inputs, *case.settings(size)]
    command += ["--strategies", *strategies, "--seeds", str(seeds), "--workers", str(workers)]
    command += ["--out", str(target)]
    started = time.perf_counter()
    _run(command, target / "suite.log")
    return time.perf_counter() - started


def rerun(case: Case, strategies: tuple[str, ...], target: Path, size: str, seeds: int, workers: int) -> None:
    """Train ``strategies`` again for a done case and pool them with its other variants' runs."""
    if case.pipeline == "universe":
        print(f"{case.name}: --rerun needs `foveate compare --pool`, which the universe has not; skipped", flush=True)
        return
    previous = target / "previous"
    if not (previous / "report.json").exists():
        previous.mkdir(exist_ok=True)
        for name in ("report.json", "report.md", *(figure.name for figure in target.glob("*.png"))):
            (target / name).replace(previous / name)
    earlier = json.loads((previous / "report.json").read_text())
    kept = dict(earlier, runs=[r for r in earlier["runs"] if r["variant"] not in strategies])
    (previous / "kept.json").write_text(json.dumps(kept) + "\n")
    fresh = target / f"rerun-{'-'.join(strategies)}"
    if not (fresh / "report.json").exists():
        seconds = _compare(case, strategies, fresh, size, seeds, workers)
        print(f"{case.name}: {', '.join(strategies)} again in {seconds / 60:.1f} min", flush=True)
    command = ["foveate", "compare", case.pipeline, "--pool", str(previous / "kept.json"), str(fresh)]
    _run([*command, "--out", str(target)], target / "pool.log")


def more_seeds(chosen: list[Case], out: Path, size: str, count: int, workers: int) -> None:
    """Train ``count`` more seeds of every variant (and of the null, where there is one) in done cases, pooled."""
    for case in chosen:
        target = out / case.name
        if not (target / "report.json").exists():
            print(f"{case.name}: not trained yet; train it before adding seeds", flush=True)
            continue
        start = 1 + max(r["seed"] for r in json.loads((target / "report.json").read_text())["runs"])
        null = target / "null"
        parts = [(case, target)]
        if (null / "report.json").exists():
            offset = ("--sampling.draw-seed-offset", str(NULL_DRAW_OFFSET))
            parts.append((case.with_args(*offset), null))
        for part, folder in parts:
            strategies = part.strategies if folder == target else ("uniform",)
            seeded = part.with_args("--seed", str(start))
            fresh = folder / f"seeds-{start}-{start + count - 1}"
            before = folder / f"before-seeds-{start}"
            try:
                if not (fresh / "report.json").exists():
                    seconds = _compare(seeded, strategies, fresh, size, count, workers)
                    print(f"{case.name}: seeds {start}-{start + count - 1} in {seconds / 60:.1f} min ({folder.name})")
            except subprocess.CalledProcessError:
                print(f"{case.name}: more seeds FAILED, see {fresh / 'suite.log'}; going on", flush=True)
                continue
            if not (before / "report.json").exists():
                before.mkdir(exist_ok=True)
                (folder / "report.json").replace(before / "report.json")
            command = ["foveate", "compare", case.pipeline, "--pool", str(before / "report.json"), str(fresh)]
            if case.pipeline == "universe":  # no `foveate compare` pipeline: pool its reports here
                pool_saved([before / "report.json", fresh], folder, shlex.join([*command, "--out", str(folder)]))
            else:
                _run([*command, "--out", str(folder)], folder / "pool.log")


def train(chosen: list[Case], out: Path, size: str, seeds: int, workers: int, again: tuple[str, ...] = ()) -> None:
    for case in chosen:
        target = out / case.name
        redo = tuple(s for s in again if s in case.strategies)
        try:
            if (target / "report.json").exists() or (target / "previous" / "report.json").exists():
                if redo:
                    rerun(case, redo, target, size, seeds, workers)
                else:
                    print(f"{case.name}: done already, skipped", flush=True)
                continue
            seconds = _compare(case, case.strategies, target, size, seeds, workers)
        except subprocess.CalledProcessError:
            print(f"{case.name}: FAILED, see the logs in {target}; going on", flush=True)
            continue
        (target / "suite.json").write_text(json.dumps({"seconds": seconds, "size": size}, indent=1) + "\n")
        print(f"{case.name}: {seconds / 60:.1f} min", flush=True)


def train_null(chosen: list[Case], out: Path, size: str, seeds: int, workers: int) -> None:
    """Uniform again with other draws, in each chosen case's ``null/``."""
    for case in chosen:
        target = out / case.name / "null"
        if "uniform" not in case.strategies or (target / "report.json").exists():
            continue
        null = replace(case.with_args("--sampling.draw-seed-offset", str(NULL_DRAW_OFFSET)), strategies=("uniform",))
        try:
            seconds = _compare(null, ("uniform",), target, size, seeds, workers)
        except subprocess.CalledProcessError:
            print(f"{case.name}: the null FAILED, see {target / 'suite.log'}; going on", flush=True)
            continue
        print(f"{case.name}: null in {seconds / 60:.1f} min", flush=True)


def _with_steps(args: tuple[str, ...], steps: int) -> tuple[str, ...]:
    """``args`` with the run cut to ``steps`` steps (replacing a ``--steps`` already there)."""
    changed = list(args)
    if "--steps" in changed:
        changed[changed.index("--steps") + 1] = str(steps)
    else:
        changed += ["--steps", str(steps)]
    return tuple(changed)


def train_budgets(
    chosen: list[Case],
    out: Path,
    size: str,
    seeds: int,
    workers: int,
    fractions: list[float],
    strategies: tuple[str, ...],
) -> None:
    """Guided strategies trained for fractions of uniform's steps, each with its own schedule.

    Into each done case's ``budget-F/``. The stricter reading of the steps ratio: the curves compare
    the samplers on one schedule, this one also charges a run the cost of its shorter schedule
    (``--budget-strategies uniform`` shows what that costs uniform).
    """
    for case in chosen:
        report = out / case.name / "report.json"
        if case.pipeline in STEPLESS or not report.exists():
            print(f"{case.name}: no budget sweep ({'no steps to cut' if report.exists() else 'not done'})")
            continue
        steps = json.loads(report.read_text())["steps"]
        for fraction in fractions:
            target = out / case.name / f"budget-{fraction:g}"
            if (target / "report.json").exists():
                continue
            cut = max(1, round(fraction * steps))
            sized = case.cut(cut)
            try:
                seconds = _compare(sized, strategies, target, size, seeds, workers)
            except subprocess.CalledProcessError:
                print(f"{case.name}: budget {fraction:g} FAILED, see {target}; going on", flush=True)
                continue
            for figure in target.glob("*.png"):  # the summary reads report.json; figures would double the results
                figure.unlink()
            print(f"{case.name}: {', '.join(strategies)} at {cut} steps in {seconds / 60:.1f} min", flush=True)


def _ratio(run: list, base: list, goal: float, higher: bool, column: int) -> float | None:
    mine = crossing(best_so_far(smoothed(run), higher), goal, higher, column)
    theirs = crossing(best_so_far(smoothed(base), higher), goal, higher, column)
    if mine is None or theirs is None or theirs <= 0:
        return None
    return mine / theirs


def _median(values: list[float | None]) -> float | None:
    """Median with 'never reached' as +infinity; None when the median itself is not reached."""
    if not values:
        return None
    middle = statistics.median(float("inf") if v is None else v for v in values)
    return None if middle == float("inf") else middle


def read_case(report: dict, seconds: float | None) -> dict:
    """Per guided strategy: settled deltas (mean, worst seed), step and wall ratios, seeds reached."""
    metric = report["metric"]
    higher = metric["higher_is_better"]
    sign = 1.0 if higher else -1.0
    reference = report["reference"]
    runs = {(r["variant"], r["seed"]): r for r in report["runs"]}
    base = {seed: r for (variant, seed), r in runs.items() if variant == reference}
    result = {
        "pipeline": report["pipeline"],
        "source": report["source"],
        "metric": metric["label"],
        "higher_is_better": higher,
        "seeds": sorted(base),
        "minutes": None if seconds is None else seconds / 60,
        "uniform_settled": statistics.fmean(settled(r["curve"]) for r in base.values()),
        "strategies": {},
    }
    for variant in dict.fromkeys(v for v, _ in runs):
        if variant == reference:
            continue
        deltas, finals, relative, steps, walls = [], [], [], [], []
        for seed, ref in base.items():
            run = runs.get((variant, seed))
            if run is None:
                continue
            mine, theirs = settled(run["curve"]), settled(ref["curve"])
            deltas.append(mine - theirs)
            finals.append(run["curve"][-1][1] - ref["curve"][-1][1])
            relative.append(sign * (mine - theirs) / max(abs(theirs), 1e-12))
            steps.append(_ratio(run["curve"], ref["curve"], theirs, higher, 0))
            walls.append(_ratio(run["curve"], ref["curve"], theirs, higher, 2))
        worst = min(range(len(deltas)), key=lambda i: sign * deltas[i])
        curve = any(len(r["curve"]) > 1 for r in report["runs"])  # else validated once, at the end
        if not curve:
            steps, walls = [], []
        result["strategies"][variant] = {
            "settled_delta_mean": statistics.fmean(deltas),
            "settled_delta_worst": deltas[worst],
            "settled_delta_sd": statistics.pstdev(deltas),
            "relative_worst": relative[worst],
            "settled_deltas": deltas,
            "relative_deltas": relative,
            "final_delta_mean": statistics.fmean(finals),
            "steps_ratio_median": _median(steps),
            "wall_ratio_median": _median(walls),
            "reached": sum(s is not None for s in steps),
            "curve": curve,
        }
    return result


def read_budgets(case: Path, report: dict) -> dict:
    """Per strategy of the ``budget-F/`` runs: settled vs uniform's full run at each fraction, and the match.

    The full run on uniform's own schedule (the case's report) is the point at 1; the numbers are
    :func:`foveate.report.pooling.pool_budgets`'s, as ``foveate compare --budgets`` reports them.
    """
    budgets = {}
    for directory in case.glob("budget-*"):
        path = directory / "report.json"
        if path.exists():
            runs = json.loads(path.read_text())["runs"]
            budgets[float(directory.name.removeprefix("budget-"))] = [RunRecord.from_dict(r) for r in runs]
    if not budgets:
        return {}
    records = [RunRecord.from_dict(r) for r in report["runs"]]
    return pool_budgets(records, budgets, report["reference"], report["metric"]["higher_is_better"])


def hurts(result: dict, strategy: dict) -> bool:
    """Whether a strategy's worst seed settles beyond the tolerance below uniform."""
    if "dB" in result["metric"]:
        return strategy["settled_delta_worst"] < -DB_TOLERANCE
    return strategy["relative_worst"] < -RELATIVE_TOLERANCE


def summarise(out: Path) -> dict:
    results = {}
    for report_path in sorted(out.glob("*/report.json")):
        timing = report_path.parent / "suite.json"
        seconds = json.loads(timing.read_text())["seconds"] if timing.exists() else None
        report = json.loads(report_path.read_text())
        null = report_path.parent / "null" / "report.json"
        if null.exists():
            others = [dict(r, variant=NULL) for r in json.loads(null.read_text())["runs"]]
            report = dict(report, runs=[*report["runs"], *others])
        results[report_path.parent.name] = read_case(report, seconds)
        budgets = read_budgets(report_path.parent, report)
        if budgets:
            results[report_path.parent.name]["budgets"] = budgets
    best_steps = []
    for result in results.values():
        strategies = {name: s for name, s in result["strategies"].items() if name != NULL and s["curve"]}
        if not strategies:
            continue
        reached = [s["steps_ratio_median"] for s in strategies.values() if s["steps_ratio_median"] is not None]
        best_steps.append(min(reached) if reached else None)
    adaptive = [r["strategies"]["adaptive"] for r in results.values() if "adaptive" in r["strategies"]]
    matched = [
        min((b["matched"] for b in r["budgets"].values() if b["matched"] is not None), default=None)
        for r in results.values()
        if r.get("budgets")
    ]
    return {
        "cases": results,
        "median_best_steps_ratio": _median(best_steps),
        "median_matched_ratio": _median(matched),
        "matched_cases": len(matched),
        "adaptive_hurts": [
            name
            for name, r in results.items()
            if "adaptive" in r["strategies"] and hurts(r, r["strategies"]["adaptive"])
        ],
        "adaptive_cases": len(adaptive),
        "adaptive_beyond_null": [
            name
            for name, r in results.items()
            if "adaptive" in r["strategies"] and NULL in r["strategies"] and beyond_null(r)
        ],
        "null_cases": sum(NULL in r["strategies"] for r in results.values()),
        "null_hurts": [
            name for name, r in results.items() if NULL in r["strategies"] and hurts(r, r["strategies"][NULL])
        ],
        "pooled": pooled(results),
    }


def pooled(results: dict) -> dict:
    """Per pipeline and strategy, every seed's settled delta to uniform pooled over the pipeline's cases.

    dB for PSNR metrics, else percent better than uniform (the relative deltas), so positive is
    better either way. With the mean comes a 95% interval (Student's t over all paired seeds, which
    treats the cases as one population) and a verdict on the tolerance: ``within`` when the whole
    interval is above minus the tolerance, ``below`` when it is wholly below, else ``undecided``;
    and its side of uniform: ``above`` or ``below`` when the interval excludes 0, else ``level``.
    """
    from scipy import stats

    table: dict[str, dict[str, dict]] = {}
    for result in results.values():
        db = "dB" in result["metric"]
        for name, strategy in result["strategies"].items():
            values = strategy["settled_deltas"] if db else [100.0 * r for r in strategy["relative_deltas"]]
            entry = table.setdefault(result["pipeline"], {}).setdefault(
                name, {"unit": "dB" if db else "%", "values": [], "cases": 0}
            )
            entry["values"] += values
            entry["cases"] += 1
    for strategies in table.values():
        for entry in strategies.values():
            values = entry.pop("values")
            n = len(values)
            mean = statistics.fmean(values)
            half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n) if n > 1 else math.inf
            tolerance = DB_TOLERANCE if entry["unit"] == "dB" else 100.0 * RELATIVE_TOLERANCE
            verdict = "within" if mean - half >= -tolerance else "below" if mean + half < -tolerance else "undecided"
            side = "above" if mean - half > 0 else "below" if mean + half < 0 else "level"
            entry.update(n=n, mean=mean, low=mean - half, high=mean + half, verdict=verdict, side=side)
    return table


def beyond_null(result: dict) -> bool:
    """Whether adaptive's worst seed hurts and is worse than the worst that other draws alone gave uniform."""
    sign = 1.0 if result["higher_is_better"] else -1.0
    adaptive, null = result["strategies"]["adaptive"], result["strategies"][NULL]
    worse = sign * adaptive["settled_delta_worst"] < min(0.0, sign * null["settled_delta_worst"])
    return worse and hurts(result, adaptive)


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "x", curve: bool = True) -> str:
    if not curve:
        return "one validation"
    return "not reached" if value is None else f"{value:{spec}}{suffix}"


def markdown(summary: dict, header: str) -> str:
    lines = [
        header,
        "",
        "| case | uniform (settled) | strategy | settled vs uniform: mean ± sd / worst seed | final vs uniform "
        "| steps to uniform's settled | wall-clock to it |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in summary["cases"].items():
        unit = (
            " dB"
            if "dB" in result["metric"]
            else f" ({result['metric']}, {'higher' if result['higher_is_better'] else 'lower'} is better)"
        )
        for i, (strategy, s) in enumerate(result["strategies"].items()):
            first = f"| {name} | {result['uniform_settled']:.3g}{unit} " if i == 0 else "| | "
            mark = " (hurts)" if strategy != NULL and hurts(result, s) else ""
            lines.append(
                f"{first}| {strategy} | {s['settled_delta_mean']:+.3g} ± {s['settled_delta_sd']:.2g} / "
                f"{s['settled_delta_worst']:+.3g}{mark} "
                f"| {s['final_delta_mean']:+.3g} | {_fmt(s['steps_ratio_median'], curve=s.get('curve', True))} "
                f"| {_fmt(s['wall_ratio_median'], curve=s.get('curve', True))} |"
            )
    hurt = summary["adaptive_hurts"]
    lines += [
        "",
        f"Median over the cases with a learning curve of the best strategy's steps to uniform's settled quality: "
        f"{_fmt(summary['median_best_steps_ratio'])}. `adaptive` settles more than {DB_TOLERANCE} dB "
        f"({RELATIVE_TOLERANCE:.0%} for other metrics) below uniform on its worst seed in "
        f"{len(hurt)} of {summary['adaptive_cases']} cases" + (f": {', '.join(hurt)}." if hurt else "."),
    ]
    if summary.get("null_cases"):
        beyond = summary["adaptive_beyond_null"]
        lines[-1] += (
            f" `{NULL}` is uniform again with draws seeded apart from the model: what luck alone moves a run. "
            f"By the same tolerance the null itself falls below uniform in {len(summary['null_hurts'])} of the "
            f"{summary['null_cases']} cases with a null. `adaptive`'s worst seed is below both the tolerance "
            f"and the null's worst in {len(beyond)} of the {summary['null_cases']}"
            + (f": {', '.join(beyond)}." if beyond else ".")
        )
    return "\n".join([*lines, *pooled_markdown(summary), *budget_markdown(summary)])


def pooled_markdown(summary: dict) -> list[str]:
    """The pooled table: each strategy's mean delta per pipeline with its 95% interval and verdict."""
    lines = [
        "",
        f"Pooled over each pipeline's cases, seed by seed: the mean settled delta to uniform (dB, or percent "
        f"better for other metrics; positive is better) with its 95% interval, and whether the interval lies "
        f"within {DB_TOLERANCE} dB ({RELATIVE_TOLERANCE:.0%}) of uniform or wholly below it, and whether it "
        f"excludes 0. Three seeds a case cannot place a worst seed; a pipeline's pooled seeds can place its mean.",
        "",
        "| pipeline | strategy | seeds (cases) | mean delta [95% interval] | vs uniform | vs the tolerance |",
        "|---|---|---|---|---|---|",
    ]
    for pipeline, strategies in summary["pooled"].items():
        for i, (name, e) in enumerate(strategies.items()):
            unit = " dB" if e["unit"] == "dB" else "%"
            lines.append(
                f"| {pipeline if i == 0 else ''} | {name} | {e['n']} ({e['cases']}) | "
                f"{e['mean']:+.2f}{unit} [{e['low']:+.2f}, {e['high']:+.2f}] | {e['side']} | {e['verdict']} |"
            )
    return lines


def budget_markdown(summary: dict) -> list[str]:
    """The matched-schedule table: each budget's settled delta to uniform's full run, and the match."""
    swept = {name: r for name, r in summary["cases"].items() if r.get("budgets")}
    if not swept:
        return []
    fractions = sorted({p["fraction"] for r in swept.values() for b in r["budgets"].values() for p in b["points"]})
    lines = [
        "",
        "Matched schedules: guided runs trained for a fraction of uniform's steps, each with its own schedule, "
        "settled against uniform's full run seed by seed (mean / worst seed; 1x is the same schedule as uniform's); "
        "'matched at' interpolates where the mean reaches uniform, with the wall-clock of that budget's runs.",
        "",
        "| case | strategy | " + " | ".join(f"{f:g}x" for f in fractions) + " | matched at |",
        "|---|---|" + "---|" * (len(fractions) + 1),
    ]
    for name, result in swept.items():
        for i, (strategy, budget) in enumerate(result["budgets"].items()):
            by_fraction = {p["fraction"]: p for p in budget["points"]}
            cells = [
                f"{by_fraction[f]['delta_mean']:+.2f} / {by_fraction[f]['delta_worst']:+.2f}"
                if f in by_fraction
                else ""
                for f in fractions
            ]
            match = budget["matched"]
            wall = budget["matched_wall"]
            where = "not matched" if match is None else f"{'<= ' if budget['at_most'] else ''}{match:.2f}x"
            where += f" (wall-clock {wall:.2f}x)" if match is not None and wall else ""
            lines.append(f"| {name if i == 0 else ''} | {strategy} | " + " | ".join(cells) + f" | {where} |")
    lines += [
        "",
        f"Median over the {summary['matched_cases']} swept cases of the best strategy's matched steps ratio: "
        f"{_fmt(summary['median_matched_ratio'])}.",
    ]
    return lines


def replace_block(readme: Path, block: str) -> None:
    text = readme.read_text()
    begin, end = "<!-- suite:begin -->", "<!-- suite:end -->"
    if begin not in text or end not in text:
        raise SystemExit(f"{readme}: no {begin} ... {end} block to replace")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{block}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--size",
        choices=("cpu", "preset", "gpu"),
        default="cpu",
        help="the cases' settings: cpu (short), preset (image fields at their cpu preset's own size), gpu",
    )
    parser.add_argument("--only", nargs="+", default=[], help="pipelines or case names to run")
    parser.add_argument(
        "--images", type=Path, nargs="+", default=[], help="image files to add as cases (image-STEM), e.g. line art"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="training processes in parallel per case")
    parser.add_argument("--scenes", type=Path, default=Path("scenes/suite"), help="where rendered scenes are kept")
    parser.add_argument("--pbr-data", type=Path, default=Path("runs/suite-pbr-data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/suite"))
    parser.add_argument("--summarise", type=Path, help="train nothing: summarise the cases in this folder")
    parser.add_argument("--readme", type=Path, help="replace the suite block of this README with the summary")
    parser.add_argument("--null", action="store_true", help="also train uniform with other draws (the null)")
    parser.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=[],
        help="also train guided strategies for these fractions of uniform's steps, each with its own schedule",
    )
    parser.add_argument(
        "--budget-strategies", nargs="+", default=["error_weighted"], help="the strategies --budgets trains"
    )
    parser.add_argument(
        "--rerun", nargs="+", default=[], help="strategies to train again in done cases, pooled with the other variants"
    )
    parser.add_argument(
        "--more-seeds",
        type=int,
        default=0,
        help="train this many more seeds of every variant (and the null) in done cases, pooled with their runs",
    )
    args = parser.parse_args()
    if not all(0.0 < f < 1.0 for f in args.budgets):
        parser.error(f"--budgets: fractions must lie in (0, 1), got {args.budgets}")
    missing = [str(image) for image in args.images if not image.is_file()]
    if missing:
        parser.error(f"--images: no such file: {', '.join(missing)}")
    out = args.summarise or args.out
    if args.summarise is None:
        chosen = [
            c
            for c in cases(args.scenes, args.pbr_data, tuple(args.images))
            if not args.only or {c.name, c.pipeline} & set(args.only)
        ]
        if not chosen:
            raise SystemExit(f"--only {' '.join(args.only)}: no such pipeline or case")
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        prepare(args.scenes, args.pbr_data, chosen)
        train(chosen, out, args.size, args.seeds, args.workers, tuple(args.rerun))
        if args.more_seeds:
            more_seeds(chosen, out, args.size, args.more_seeds, args.workers)
        if args.null:
            train_null(chosen, out, args.size, args.seeds, args.workers)
        if args.budgets:
            strategies = tuple(args.budget_strategies)
            train_budgets(chosen, out, args.size, args.seeds, args.workers, args.budgets, strategies)
        info = {
            "command": shlex.join(["python", "benchmarks/suite.py", *sys.argv[1:]]),
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d"),
        }
        info["minutes"] = (time.perf_counter() - started) / 60
        if (out / "run.json").exists():  # a later run into the same folder: the first stays the header
            first = json.loads((out / "run.json").read_text())
            info = dict(first, later=[*first.get("later", []), info])
        (out / "run.json").write_text(json.dumps(info, indent=1) + "\n")
    summary = summarise(out)
    run_info = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    host = run_info.get("machine", {})
    where = f"{host.get('cpu_model', '')} ({host.get('cpus', '?')} cores)"
    if host.get("device", "cpu") != "cpu":
        where = f"{host['device']}, torch {host.get('torch', '?')}, beside {where}"
    header = (
        f"Suite: `{run_info.get('command', 'python benchmarks/suite.py')}`, {run_info.get('date', '')}, {where}, "
        f"{len(summary['cases'])} cases x {len(next(iter(summary['cases'].values()), {}).get('seeds', []))} seeds"
    )
    for again in run_info.get("later", []):
        header += f"; then `{again['command']}`, {again['date']}"
    table = markdown(summary, header)
    (out / "summary.md").write_text(table + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(table)
    if args.readme:
        replace_block(args.readme, table)


if __name__ == "__main__":
    main()
