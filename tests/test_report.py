"""`evokd report`: the HTML page is rendered in real headless Chromium (Debian's `chromium`, which
`make test` installs) driven over the DevTools protocol on a pipe; runs are real short runs with
the scripted TEST DOUBLE teacher (see tests/made_runs.py)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from evokd.cli import main
from made_runs import made_run, teacher_lm


# ---------------------------------------------------------------------------------------------
# headless Chromium over the DevTools protocol (no webdriver, nothing downloaded)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """Headless Chromium with `--remote-debugging-pipe`: DevTools commands go in on fd 3 and
    answers and events come back on fd 4, each a JSON message ended by a NUL byte."""

    def __init__(self, binary: str, workdir: Path, width: int = 1280, height: int = 1600):
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-pipe",
                f"--user-data-dir={workdir / 'profile'}", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={width},{height}",
                "about:blank"]
        self.log = workdir / "chromium.log"
        with self.log.open("wb") as log:
            # bash only moves the pipe ends to fds 3 and 4, where Chromium expects them (dash refuses fds > 9)
            self.proc = subprocess.Popen(["bash", "-c", f'exec "$@" 3<&{cmd_r} 4>&{res_w}', "bash", *args],
                                         pass_fds=(cmd_r, res_w), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.close(cmd_r)
        os.close(res_w)
        self.width, self.height = width, height
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from Chromium; its log: {self.log.read_text(errors='replace')[-2000:]}")
            ready, _, _ = select.select([self._res_r], [], [], left)
            if ready:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe; its log: {self.log.read_text(errors='replace')[-2000:]}")
                self._buf += chunk
        message, self._buf = self._buf.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._read(deadline))

    def open(self, url: str) -> str:
        """A new tab at `url`, loaded; returns its session id (console, log and network recorded)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False}, session)
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired")
        return session

    def evaluate(self, session: str, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                           session)
        assert "exceptionDetails" not in result, result
        return result["result"]["value"]

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif m == "Runtime.exceptionThrown":
                out.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == "Network.loadingFailed":
                out.append(f"load failed: {p.get('errorText')}")
        return out

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._res_r)


@pytest.fixture
def chromium(tmp_path):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("Chromium is not installed and could not be: `make test` installs Debian's `chromium` "
                    "(apt-get, as root); install it to render the report")
    browser = Chromium(binary, tmp_path)
    yield browser
    browser.close()


_PAGE_FACTS = """(() => {
  const imgs = [...document.images].map(img => {
    const r = img.getBoundingClientRect(), cs = getComputedStyle(img);
    return {figure: img.closest('figure') ? img.closest('figure').id : null, complete: img.complete,
            naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
            left: r.left + parseFloat(cs.borderLeftWidth), top: r.top + parseFloat(cs.borderTopWidth),
            width: img.clientWidth, height: img.clientHeight, src: img.src.slice(0, 21)};
  });
  return {imgs, text: document.body.innerText, innerHeight: window.innerHeight,
          scripts: document.scripts.length, links: [...document.querySelectorAll('link[href], [src]')]
            .map(e => e.getAttribute('href') || e.getAttribute('src')).filter(u => !u.startsWith('data:'))};
})()"""


def render(chromium: Chromium, page: Path) -> tuple[dict, np.ndarray, bytes]:
    """(facts about the rendered page, screenshot as an RGB array, screenshot PNG)."""
    from matplotlib.image import imread

    session = chromium.open(page.resolve().as_uri())
    facts = chromium.evaluate(session, _PAGE_FACTS)
    png = base64.b64decode(chromium.send("Page.captureScreenshot", {"format": "png"}, session)["data"])
    return facts, imread(io.BytesIO(png), format="png")[..., :3], png


# ---------------------------------------------------------------------------------------------
# tests


@pytest.fixture
def distinct_teacher(sst2_pool):
    """`--teacher scripted-distinct`: the TEST DOUBLE whose analyses differ per round (tests/made_runs.py)."""
    from evokd.teacher import lm as lm_module

    lm_module.register_teacher("scripted-distinct",
                               lambda teacher, **settings: teacher_lm(sst2_pool, ["negative", "positive"], seed=3))
    yield "scripted-distinct"
    lm_module._registry.pop("scripted-distinct", None)


def test_report_after_a_short_run_renders_in_chromium(sst2_task, distinct_teacher, chromium, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(main, ["generate", str(sst2_task), "--teacher", distinct_teacher, "--rounds", "2",
                                  "--per-round", "8", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["report", str(out), "--ceiling", "0.84"])
    assert result.exit_code == 0, result.output
    page = out / "report.html"
    assert result.stdout.strip() == str(page)
    assert 0 < page.stat().st_size < 5_000_000

    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and "http://" not in html and "https://" not in html  # nothing to fetch
    facts, shot, png = render(chromium, page)
    (tmp_path / "screenshot.png").write_bytes(png)
    assert chromium.problems() == []
    assert all(u.startswith(("file:", "data:")) for u in chromium.requested_urls()), chromium.requested_urls()
    assert facts["links"] == []

    imgs = {i["figure"]: i for i in facts["imgs"]}
    # teacher_confidence: the scripted teacher gives each label a probability, as the embedded one does
    assert set(imgs) == {"plot-learning_curve", "plot-samples_per_round", "plot-label_distribution", "plot-hardness",
                         "plot-teacher_cost", "plot-student_eval", "plot-teacher_confidence"}
    for img in imgs.values():
        assert img["complete"] and img["naturalWidth"] > 100 and img["naturalHeight"] > 100, img
        assert img["src"] == "data:image/png;base64"

    # The learning curve is on the first screen, and the screenshot shows exactly the plot's pixels.
    curve = imgs["plot-learning_curve"]
    assert 0 <= curve["top"] and curve["top"] + curve["height"] <= facts["innerHeight"]
    assert (curve["width"], curve["height"]) == (curve["naturalWidth"], curve["naturalHeight"])
    assert shot.shape[:2] == (1600, 1280)
    top, left = round(curve["top"]), round(curve["left"])
    seen = shot[top: top + curve["height"], left: left + curve["width"]]
    from matplotlib.image import imread

    drawn = imread(out / "report_plots" / "learning_curve.png")[..., :3]
    assert seen.shape == drawn.shape
    assert np.abs(seen - drawn).mean() < 0.02
    assert seen.std() > 0.05  # not a blank box

    # Every round's weakness analysis, exactly as the teacher wrote it (quotes, < and & included).
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    # (the default strategy's round 1 is a warm-up without analysis)
    analyses = [a for (a,) in con.execute("SELECT analysis FROM rounds WHERE round > 0 AND analysis IS NOT NULL "
                                          "ORDER BY round").fetchall()]
    con.close()
    assert analyses and all("<negation> & \"irony\"" in a for a in analyses)
    for analysis in analyses:
        assert analysis in facts["text"]
    assert "ceiling (given)" in facts["text"] and "seed-only" in facts["text"]

    plots = sorted(p.name for p in (out / "report_plots").iterdir())
    assert plots == ["hardness.png", "label_distribution.png", "learning_curve.png", "samples_per_round.png",
                     "student_eval.png", "teacher_confidence.png", "teacher_cost.png"]
    assert all((out / "report_plots" / p).read_bytes().startswith(b"\x89PNG") for p in plots)


def test_report_numbers_come_from_the_store(tmp_path_factory, tmp_path):
    run = made_run(tmp_path_factory, "sst2")
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", str(run), "--out", str(out), "--json", "--examples", "3"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["report"] == str(out) and summary["student_eval"] == "eval" and summary["rounds"] == 3
    rounds = [json.loads(x) for x in (run / "rounds.jsonl").read_text().splitlines()]
    assert summary["seed_metric"] == rounds[0]["eval_accuracy"] and summary["final_metric"] == rounds[-1]["eval_accuracy"]
    html = out.read_text()
    # tfidf retrains deterministically: the recomputed latest student matches the stored last round
    assert f"Recomputed accuracy {rounds[-1]['eval_accuracy']:.3f} the same as" in html
    # the confusion matrix (also as a table) covers the 200 eval rows
    assert "on 200 eval rows" in html
    matrix = re.search(r'<table class="confusion">(.*?)</table>', html).group(1)
    assert sum(int(x) for x in re.findall(r'<td class="num">(\d+)</td>', matrix)) == 200
    # failed teacher calls (the double fails every 7th) are listed with their errors
    con = duckdb.connect(str(run / "evokd.duckdb"), read_only=True)
    n_failed = con.execute("SELECT count(*) FROM calls WHERE NOT ok").fetchall()[0][0]
    con.close()
    assert n_failed > 0 and f"Failed calls ({n_failed})" in html
    # three examples per round at most, with a pointer to the rest
    assert html.count('<table class="examples">') == 3
    assert "--round 1 --include-rejected" in html
    # no ceiling unless given
    assert "ceiling (given)" not in html and "No ceiling is drawn" in html
    assert (tmp_path / "r_plots" / "learning_curve.png").is_file()


def test_report_ner_run_shows_per_type_f1_and_entities(tmp_path_factory, tmp_path):
    run = made_run(tmp_path_factory, "ner")
    out = tmp_path / "ner.html"
    result = CliRunner().invoke(main, ["report", str(run), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    html = out.read_text()
    assert "Latest student: per-type F1" in html and "Entity types per round" in html
    assert any(f"<sup>{kind}</sup>" in html for kind in ("person", "location", "corporation", "group", "product"))
    assert ("&#x27;Atlantis&#x27; person: mention_not_in_text" in html
            or "'Atlantis' person: mention_not_in_text" in html)
    rounds = [json.loads(x) for x in (run / "rounds.jsonl").read_text().splitlines()]
    assert f"{rounds[-1]['eval_entity_f1']:.3f}" in html


def test_report_without_eval_data_scores_the_latest_batch(tmp_path_factory, tmp_path):
    run = made_run(tmp_path_factory, "sst2")
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    out = tmp_path / "x.html"
    result = CliRunner().invoke(main, ["report", str(copy), "--no-retrain", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["student_eval"] == "batch"
    assert "the student at the start of round 3" in out.read_text()


def test_report_bad_input_is_one_line(tmp_path_factory, tmp_path):
    runner = CliRunner()
    for args, needle in (
        ([str(tmp_path / "nope")], "nope: not found"),
        ([str(tmp_path)], "evokd.duckdb: not found"),
        ([str(made_run(tmp_path_factory, "sst2")), "--out", str(tmp_path)], "is a directory"),
    ):
        result = runner.invoke(main, ["report", *args])
        assert result.exit_code == 2, result.output
        err = result.stderr.strip()
        assert err.startswith("evokd: error: ") and "\n" not in err and needle in err, err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "evokd.duckdb").write_text("not a database")
    result = runner.invoke(main, ["report", str(bad)])
    assert result.exit_code == 2 and "evokd.duckdb" in result.stderr and "Traceback" not in result.output
    bad_eval = tmp_path / "eval.jsonl"
    bad_eval.write_text('{"text": "fine", "label": "meh"}\n')
    out = tmp_path / "never.html"
    result = runner.invoke(main, ["report", str(made_run(tmp_path_factory, "sst2")), "--eval", str(bad_eval), "--out", str(out)])
    assert result.exit_code == 2 and "eval.jsonl: line 1: field 'label'" in result.stderr
    assert not out.exists() and not (tmp_path / "never_plots").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_new_commands_have_help_with_an_example():
    runner = CliRunner()
    for cmd in (["report"], ["export"], ["runs"], ["calls"]):
        result = runner.invoke(main, [*cmd, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output and re.search(rf"evokd {cmd[0]} ", result.output)
