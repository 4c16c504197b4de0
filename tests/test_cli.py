"""The ``anypool`` command: ``info`` and ``bench`` in real subprocesses, bad usage, and the
pure logic that turns measurements into the bench's conclusion (on synthetic numbers).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import anypool._cli._main as cli
from anypool import _runtime
from anypool._backends import available_backends
from anypool._cli._bench import (
    DEFAULT_BACKENDS,
    BenchConfig,
    count_then_nap,
    count_up,
    make_workloads,
    run_bench,
)
from anypool._cli._format import format_bench, gil_phrase
from anypool._cli._info import collect_info
from anypool._cli._verdict import HELPS, Measurement, conclude, speedups_of

# Small enough that a bench with process pools finishes in a few seconds on 2 busy cores.
TINY = [
    "--counter", "20000", "--io-tasks", "6", "--io-ms", "1",
    "--io-workers", "3", "--mixed-tasks", "3", "--repeat", "1",
]  # fmt: skip
ROW = re.compile(
    r"^(?P<workload>cpu|io|mixed)\s+(?P<mode>\S+)\s+(?P<workers>\d+)\s+(?P<best>\d+\.\d+)"
    r"\s+(?P<speedup>\d+\.\d+)x\s+(?P<startup>\d+\.\d+|-)$"
)
RUN_TIMEOUT_S = 90


def run_cli(*args: str, script: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``anypool ARGS`` (the console script) or ``python -m anypool ARGS``."""
    if script:
        exe = shutil.which("anypool", path=str(Path(sys.executable).parent))
        assert exe is not None, "the anypool console script is not installed next to python"
        cmd = [exe, *args]
    else:
        cmd = [sys.executable, "-m", "anypool", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def default_modes() -> list[str]:
    available = {**available_backends(), "auto": True}
    return ["sequential", *(b for b in DEFAULT_BACKENDS if available[b])]


# -- anypool info ---------------------------------------------------------------------------
def fresh_available_backends() -> dict[str, bool]:
    """What a fresh interpreter (as the CLI is) sees: this test process may have
    registered test backends (tests/contract, tests/backends/test_registry.py)."""
    code = (
        "import json; from anypool._backends import available_backends as a; print(json.dumps(a()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    backends: dict[str, bool] = json.loads(out.stdout)
    return backends


def test_info_reports_this_interpreter():
    out = run_cli("info")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    impl, version = platform.python_implementation(), platform.python_version()
    assert re.search(rf"^Python:\s+{impl} {re.escape(version)} \(", text, re.M), text
    gil = "GIL enabled" if _runtime.gil_enabled() else "GIL disabled"
    assert gil in text
    assert re.search(rf"^CPUs:\s+{_runtime.usable_cpus()} usable \(os\.cpu_count\(\) ", text, re.M)
    assert re.search(rf"^Start method:\s+{_runtime.default_start_method()} ", text, re.M)
    backends_line = next(line for line in text.splitlines() if line.startswith("Backends:"))
    for name, ok in fresh_available_backends().items():
        assert name in backends_line
        ready_part = backends_line.split(";")[0]
        assert (name in ready_part) == ok, backends_line


def test_a_reader_that_stops_early_is_not_an_error() -> None:
    # `anypool info --json | head -c 10`: head exits first; no BrokenPipeError traceback
    proc = subprocess.Popen(
        [sys.executable, "-m", "anypool", "info", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before anything is written
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
    assert b"BrokenPipe" not in err, err.decode()
    assert proc.returncode == 141


def test_info_json_has_the_facts():
    out = run_cli("info", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    expected = {f.name for f in dataclasses.fields(collect_info())}
    assert set(data) == expected
    assert data["usable_cpus"] == _runtime.usable_cpus()
    assert data["gil_enabled"] is _runtime.gil_enabled()
    assert data["free_threaded_build"] is _runtime.free_threaded_build()
    assert data["backends"] == fresh_available_backends()
    assert data["python_version"] == sys.version.split()[0]
    assert data["packages"]["psutil"]  # a hard dependency, so always installed
    assert set(data["packages"]) >= {"cloudpickle", "psutil", "tqdm", "dask", "distributed", "ray"}


def test_gil_phrase_covers_free_threaded_builds():
    info = collect_info()
    ft = dataclasses.replace(info, free_threaded_build=True, gil_enabled=False)
    assert gil_phrase(ft) == "free-threaded build, GIL disabled"
    assert "GIL enabled" in gil_phrase(dataclasses.replace(ft, gil_enabled=True))
    std = dataclasses.replace(info, free_threaded_build=False, gil_enabled=True)
    assert gil_phrase(std) == "standard build, GIL enabled"


# -- anypool bench, for real ----------------------------------------------------------------
@pytest.mark.timeout(2 * RUN_TIMEOUT_S)
def test_bench_prints_table_and_conclusion():
    out = run_cli("bench", *TINY, script=True)
    assert out.returncode == 0, out.stderr
    rows = [m.groupdict() for m in map(ROW.match, out.stdout.splitlines()) if m]
    seen = {(r["workload"], r["mode"]) for r in rows}
    expected = {(w, mode) for w in ("cpu", "io", "mixed") for mode in default_modes()}
    assert seen == expected, out.stdout
    for row in rows:
        assert float(row["best"]) > 0
        assert float(row["speedup"]) > 0
        if row["mode"] == "sequential":
            assert row["speedup"] == "1.00"
            assert row["startup"] == "-"
            assert row["workers"] == "1"
        else:
            assert float(row["startup"]) > 0
            if row["mode"] != "auto":  # auto sizes its own pool
                assert int(row["workers"]) == (2 if row["workload"] == "cpu" else 3)
    conclusion = [line for line in out.stdout.splitlines() if line.startswith("Conclusion: ")]
    assert len(conclusion) == 1
    # both workloads are judged; the wording depends on which backend won each (a counter
    # of 20,000 is short enough that threads can win the cpu rows on a loaded machine:
    # "Threads for both IO-bound and CPU-bound work", seen once in CI on 3.13)
    assert "IO-bound" in conclusion[0], conclusion[0]
    assert "CPU-bound work" in conclusion[0], conclusion[0]


@pytest.mark.timeout(2 * RUN_TIMEOUT_S)
def test_bench_json_is_consistent_with_its_conclusion():
    out = run_cli("bench", *TINY, "--workloads", "cpu,io", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) == {
        "config", "runtime", "workloads", "results", "conclusion", "total_s", "load_before",
    }  # fmt: skip
    assert data["config"]["counter"] == 20000
    assert data["config"]["workloads"] == ["cpu", "io"]
    assert [w["name"] for w in data["workloads"]] == ["cpu", "io"]
    results = data["results"]
    assert {(r["workload"], r["mode"]) for r in results} == {
        (w, m) for w in ("cpu", "io") for m in default_modes()
    }
    measurements = [
        Measurement(r["workload"], r["mode"], r["workers"], tuple(r["runs_s"]), r["startup_s"])
        for r in results
    ]
    for r in results:
        assert len(r["runs_s"]) == 1
        assert r["best_s"] == min(r["runs_s"])
        assert r["speedup"] == pytest.approx(speedups_of(measurements, r["workload"])[r["mode"]])
    # the printed conclusion is the one the measured numbers lead to
    runtime = data["runtime"]
    again = conclude(
        measurements,
        gil_enabled=runtime["gil_enabled"],
        usable_cpus=runtime["usable_cpus"],
        load_before=data["load_before"],
    )
    assert data["conclusion"]["summary"] == again.summary
    assert [v["choice"] for v in data["conclusion"]["verdicts"]] == [
        v.choice for v in again.verdicts
    ]


@pytest.mark.timeout(2 * RUN_TIMEOUT_S)
def test_bench_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "bench.png"
    out = run_cli("bench", *TINY, "--backends", "thread", "--plot", str(target))
    assert out.returncode == 0, out.stderr
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 5000  # a drawn chart, not an empty canvas


def test_run_bench_in_process_measures_every_mode():
    config = BenchConfig(
        counter=5000, io_tasks=4, io_ms=1, io_workers=2, mixed_tasks=2, repeat=2,
        backends=("thread", "inline"),
    )  # fmt: skip
    report = run_bench(config)
    assert [w.name for w in report.workloads] == ["cpu", "io", "mixed"]
    by_key = {(m.workload, m.mode): m for m in report.measurements}
    assert set(by_key) == {
        (w, m) for w in ("cpu", "io", "mixed") for m in ("sequential", "thread", "inline")
    }
    for m in report.measurements:
        assert len(m.runs) == 2
        assert all(run > 0 for run in m.runs)
        assert (m.startup_s is None) == (m.mode == "sequential")
    # io and mixed both use 2 workers: the same warmed-up pool serves both
    assert by_key["io", "thread"].startup_s == by_key["mixed", "thread"].startup_s
    again = conclude(
        report.measurements,
        gil_enabled=report.runtime.gil_enabled,
        usable_cpus=report.runtime.usable_cpus,
        load_before=report.load_before,
    )
    assert report.conclusion == again
    json.dumps(report.to_dict())  # JSON-ready
    text = format_bench(report)
    assert f"Conclusion: {report.conclusion.summary}" in text


def test_workloads_follow_the_config():
    config = BenchConfig(counter=1000, workers=3, io_tasks=7, io_ms=2.5, mixed_tasks=4)
    cpu, io, mixed = make_workloads(config)
    assert cpu.items == ((1000,),) * 3
    assert cpu.workers == 3
    assert io.items == ((2.5,),) * 7
    assert mixed.items == ((250, 2.5),) * 4
    assert count_up(1234) == 1234
    assert count_then_nap(10, 0.1) == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"counter": 0}, "counter must be a positive number"),
        ({"io_ms": -1.0}, "io_ms must be a positive number"),
        ({"repeat": True}, "repeat must be a positive number"),
        ({"workloads": ("cpu", "disk")}, "unknown workloads: disk"),
        ({"workloads": ()}, "at least one"),
        ({"backends": ("thread", "thread")}, "twice"),
        ({"backends": ("sequential",)}, "always measured"),
    ],
)
def test_bench_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BenchConfig(**kwargs)


# -- bad usage ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "choose a command"),
        (["frobnicate"], "invalid choice"),
        (["info", "--bogus"], "unrecognized arguments"),
        (["bench", "--counter", "0"], "expected a positive integer, got '0'"),
        (["bench", "--counter", "many"], "expected a positive integer, got 'many'"),
        (["bench", "--io-ms", "-5"], "expected a positive number, got '-5'"),
        (["bench", "--io-ms", "nan"], "expected a positive number, got 'nan'"),
        (["bench", "--workloads", "cpu,disk"], "unknown workloads: disk"),
        (["bench", "--backends", "nosuch"], "backend 'nosuch' is not available here"),
        (["bench", "--backends", "thread,thread"], "lists an entry twice"),
        (["bench", "--workloads", ","], "expected comma-separated names"),
    ],
)
def test_bad_usage_exits_2_with_a_message(argv, message, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_bad_usage_exit_status_in_a_real_process():
    out = run_cli("bench", "--repeat", "-1", script=True)
    assert out.returncode == 2
    assert "--repeat" in out.stderr
    assert "expected a positive integer" in out.stderr
    assert out.stdout == ""
    assert run_cli().returncode == 2


@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_bench_and_its_workers():
    if not available_backends()["process"]:
        pytest.skip("needs the process backend")
    argv = ["bench", "--workloads", "cpu", "--counter", "400000000", "--backends", "process"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "anypool", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        me = psutil.Process(proc.pid)
        # the forkserver and 2 warmed-up workers exist: the bench is past start-up
        deadline = time.monotonic() + 30
        while len(me.children(recursive=True)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(me.children(recursive=True)) >= 3, "the bench never started its workers"
        workers = me.children(recursive=True)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers outlived the bench: {alive}"


def test_help_and_version_exit_0(capsys):
    assert cli.main(["--help"]) == 0
    assert "bench" in capsys.readouterr().out
    assert cli.main(["bench", "--help"]) == 0
    assert "--counter" in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("anypool ")


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, capsys):
    real = cli.importlib.util.find_spec

    def no_matplotlib(name: str, *args: object) -> object:
        return None if name == "matplotlib" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(cli.importlib.util, "find_spec", no_matplotlib)
    assert cli.main(["bench", *TINY, "--backends", "thread", "--plot", "x.png"]) == 1
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err
    assert "pip install 'anypool[plot]'" in err


# -- the conclusion, on synthetic measurements ----------------------------------------------
def synthetic(workload: str, sequential: float, **modes: float) -> list[Measurement]:
    """Measurements whose best times give the wanted speedups: modes are speedups."""
    rows = [Measurement(workload, "sequential", 1, (sequential * 1.1, sequential))]
    for mode, speedup in modes.items():
        rows.append(Measurement(workload, mode, 2, (sequential / speedup,), 0.01))
    return rows


def gil_world() -> list[Measurement]:
    return [
        *synthetic("cpu", 1.0, thread=0.97, process=1.92),
        *synthetic("io", 1.0, thread=9.6, process=9.1),
        *synthetic("mixed", 0.5, thread=1.6, process=2.8),
    ]


def test_conclusion_under_the_gil_is_threads_for_io_processes_for_cpu():
    c = conclude(gil_world(), gil_enabled=True, usable_cpus=2)
    assert c.summary.startswith("Threads for IO-bound work, processes for CPU-bound work")
    assert "GIL" in c.summary
    choices = {v.workload: v.choice for v in c.verdicts}
    assert choices == {"cpu": "process", "io": "thread", "mixed": "process"}
    cpu = c.verdicts[0]
    assert cpu.speedups["thread"] == pytest.approx(0.97)
    assert any("x0.97" in r and "GIL enabled" in r for r in cpu.reasons)
    assert any("x1.92" in r for r in cpu.reasons)


def test_conclusion_on_a_free_threaded_build_is_threads_for_both():
    measurements = [
        *synthetic("cpu", 1.0, thread=1.95, process=1.90),
        *synthetic("io", 1.0, thread=9.6, process=9.1),
    ]
    c = conclude(measurements, gil_enabled=False, usable_cpus=2)
    assert c.summary.startswith("Threads for both IO-bound and CPU-bound work")
    assert "no GIL" in c.summary
    assert c.verdicts[0].choice == "thread"
    assert any("GIL disabled" in r and "x1.95" in r for r in c.verdicts[0].reasons)


def test_cheaper_backend_wins_only_within_ten_percent():
    close = synthetic("cpu", 1.0, thread=1.80, process=1.95)  # 1.80 >= 0.9 * 1.95
    far = synthetic("cpu", 1.0, thread=1.70, process=1.95)  # 1.70 < 0.9 * 1.95
    assert conclude(close, gil_enabled=False, usable_cpus=2).verdicts[0].choice == "thread"
    assert conclude(far, gil_enabled=False, usable_cpus=2).verdicts[0].choice == "process"


def test_conclusion_follows_the_numbers_not_the_theory():
    # if processes had won the IO experiment and threads the CPU one, say so
    odd = [
        *synthetic("cpu", 1.0, thread=1.9, process=1.0),
        *synthetic("io", 1.0, thread=1.0, process=5.0),
    ]
    c = conclude(odd, gil_enabled=True, usable_cpus=2)
    assert {v.workload: v.choice for v in c.verdicts} == {"cpu": "thread", "io": "process"}
    assert c.summary == "Processes for IO-bound work; threads for CPU-bound work."


def test_nothing_helps_on_one_cpu():
    measurements = synthetic("cpu", 1.0, thread=1.0, process=1.05)
    c = conclude(measurements, gil_enabled=True, usable_cpus=1)
    verdict = c.verdicts[0]
    assert verdict.choice is None
    assert "keep it sequential" in verdict.reasons[0]
    assert any("only 1 CPU" in r for r in verdict.reasons)
    assert c.summary == "A plain loop for CPU-bound work."


def test_busy_machine_is_named_when_processes_do_not_help():
    measurements = synthetic("cpu", 1.0, thread=0.9, process=0.8)
    busy = conclude(measurements, gil_enabled=True, usable_cpus=2, load_before=2.5)
    assert any("load average 2.5 on 2 CPUs" in r for r in busy.verdicts[0].reasons)
    idle = conclude(measurements, gil_enabled=True, usable_cpus=2, load_before=0.2)
    assert not any("load average" in r for r in idle.verdicts[0].reasons)
    assert any("try a larger --counter" in r for r in idle.verdicts[0].reasons)


def test_help_threshold_is_inclusive_and_extra_columns_are_never_recommended():
    at = synthetic("io", 1.0, thread=HELPS)
    assert conclude(at, gil_enabled=True, usable_cpus=2).verdicts[0].choice == "thread"
    below = synthetic("io", 1.0, thread=HELPS * 0.99)
    assert conclude(below, gil_enabled=True, usable_cpus=2).verdicts[0].choice is None
    # an "auto" column is measured and reported, but the advice names a fixed backend
    with_auto = synthetic("io", 1.0, thread=8.0, auto=9.0)
    verdict = conclude(with_auto, gil_enabled=True, usable_cpus=2).verdicts[0]
    assert verdict.choice == "thread"
    assert verdict.speedups["auto"] == pytest.approx(9.0)


def test_io_reasons_compare_startup_costs():
    rows = synthetic("io", 1.0, thread=9.0, process=8.8)
    rows[2] = dataclasses.replace(rows[2], startup_s=0.4)
    reasons = conclude(rows, gil_enabled=True, usable_cpus=2).verdicts[0].reasons
    assert any("0.40 s to start" in r and "0.010 s for threads" in r for r in reasons)


def test_speedups_use_best_rounds_and_need_a_baseline():
    rows = [
        Measurement("cpu", "sequential", 1, (2.0, 1.0, 1.5)),
        Measurement("cpu", "process", 2, (0.9, 0.5), 0.2),
    ]
    assert speedups_of(rows, "cpu") == {"sequential": 1.0, "process": 2.0}
    with pytest.raises(ValueError, match="no sequential measurement for workload 'io'"):
        speedups_of(rows, "io")
