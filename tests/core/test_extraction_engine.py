"""The one extraction engine: any registered cue gets ``llavidal extract CUE``; failures stay per input; decoding
in workers overlaps encoding."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from llavidal_core.cli import main
from llavidal_core.cues import CueSpec
from llavidal_core.encoder import CueEncoder, EncodedFeatures
from llavidal_core.extraction_engine import ExtractionSettings, FeatureWriter, extract_features, run_extraction
from llavidal_core.features import FeatureStore

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "example_plugin"


@pytest.fixture
def imu_plugin(llavidal_plugins, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    import llavidal_imu_stats

    llavidal_plugins.register(llavidal_imu_stats, name="imu", distribution="llavidal-imu-stats", version="0.1.0")
    return llavidal_plugins


def write_csv(path, rows, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(seed)
    np.savetxt(path, np.column_stack([np.arange(rows) / 50.0, generator.normal(size=(rows, 3))]), delimiter=",")
    return path


def test_a_cue_plugin_with_only_an_encoder_gets_extract(imu_plugin, tmp_path, capsys):
    inputs = tmp_path / "wrist"
    for index in range(3):
        write_csv(inputs / "day1" / f"rec{index}.csv", 64, seed=index)
    write_csv(inputs / "short.csv", 5)
    (inputs / "notes.txt").write_text("not a recording\n")
    out = tmp_path / "features"
    assert main(["extract", "imu", str(inputs), "--out", str(out), "--workers", "2", "--batch-size", "2"]) == 3
    err = capsys.readouterr().err
    assert "llavidal extract imu: 3 written, 0 already done, 1 failed" in err
    store = FeatureStore(out)
    assert store.video_ids() == ["day1/rec0", "day1/rec1", "day1/rec2"]
    features = store.read("day1/rec1", "imu")
    assert features.shape == (16, 6)
    expected = imu_plugin.cue("imu").encoder_factory()().encode([inputs / "day1" / "rec1.csv"])[0]
    assert torch.equal(features, expected)
    metadata = store.metadata("day1/rec1", "imu")
    assert json.loads(metadata["spec"])["name"] == "imu" and metadata["source_file"] == "rec1.csv"
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["video_id"], e["error"]) for e in errors] == [
        ("short", f"ValueError: {inputs / 'short.csv'}: 5 samples, the imu cue needs at least 16")]

    assert main(["extract", "imu", str(inputs), "--out", str(out)]) == 3  # resumed: only the failure is retried
    assert "0 written, 3 already done, 1 failed" in capsys.readouterr().err
    assert len((out / "errors.jsonl").read_text().splitlines()) == 1
    (inputs / "short.csv").unlink()
    assert main(["extract", "imu", str(inputs), "--out", str(out)]) == 0
    assert "nothing to do (3 already done)" in capsys.readouterr().err


def test_generic_extract_usage_errors_exit_2_and_write_nothing(imu_plugin, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["extract", "imu", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no input files (.csv) for the imu cue" in capsys.readouterr().err
    csv = write_csv(tmp_path / "a.csv", 32)
    assert main(["extract", "imu", str(csv), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "nowhere")]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["extract", "imu", str(csv), "--out", str(tmp_path / "o"), "--batch-size", "0"]) == 2
    assert "--batch-size must be positive" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


SPEC = CueSpec(name="scripted", placeholder="<scripted>", patch_token="<scripted_patch>",
               start_token="<scripted_start>", end_token="<scripted_end>", feature_dim=4, num_tokens=2)


class ScriptedEncoder(CueEncoder):
    """An input file's text says what happens: ``ok``, ``nan``, ``shape``, ``boom`` (forward raises), ``slow``."""

    def __init__(self, prepare_seconds=0.0, forward_seconds=0.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.prepare_seconds = prepare_seconds
        self.forward_seconds = forward_seconds
        self.batches = []

    @property
    def spec(self):
        return SPEC

    def prepare(self, path):
        time.sleep(self.prepare_seconds)
        return Path(path).read_text().strip()

    def forward(self, samples):
        self.batches.append(list(samples))
        time.sleep(self.forward_seconds)
        if "boom" in samples:
            raise RuntimeError("the model fell over")
        outputs = []
        for sample in samples:
            rows = torch.full((2, 4), float(len(self.batches))) * self.weight
            if sample == "nan":
                rows[0, 0] = float("nan")
            if sample == "shape":
                rows = torch.zeros(3, 4)
            outputs.append(EncodedFeatures(rows, {"said": sample}))
        return outputs


def inputs_saying(folder, *words):
    folder.mkdir(parents=True, exist_ok=True)
    todo = []
    for index, word in enumerate(words):
        path = folder / f"in{index}.txt"
        path.write_text(word)
        todo.append((f"in{index}", path))
    return todo


def test_a_failing_batch_is_retried_input_by_input(tmp_path):
    todo = inputs_saying(tmp_path / "in", "ok", "boom", "ok", "nan", "shape", "ok")
    encoder = ScriptedEncoder()
    report = extract_features(encoder, todo, FeatureWriter(tmp_path / "out", "scripted"), batch_size=3)
    assert (report.written, report.failed) == (3, 3)
    assert [len(batch) for batch in encoder.batches] == [3, 1, 1, 1, 3]  # the batch holding "boom", one by one
    store = FeatureStore(tmp_path / "out")
    assert store.video_ids() == ["in0", "in2", "in5"]
    assert store.metadata("in5", "scripted")["said"] == "ok"
    errors = {e["video_id"]: e["error"] for e in map(json.loads, (tmp_path / "out" / "errors.jsonl").open())}
    assert errors["in1"] == "RuntimeError: the model fell over"
    assert "NaN" in errors["in3"] or "nan" in errors["in3"].lower()
    assert "returned 3 rows" in errors["in4"]


def test_decoding_in_workers_overlaps_encoding(tmp_path):
    todo = inputs_saying(tmp_path / "in", *["ok"] * 6)
    encoder = ScriptedEncoder(prepare_seconds=0.3, forward_seconds=0.3)
    started = time.monotonic()
    report = extract_features(encoder, todo, FeatureWriter(tmp_path / "out", "scripted"), workers=2, batch_size=1)
    elapsed = time.monotonic() - started
    assert report.written == 6
    prepares = [event for event in report.timeline if event[0] == "prepare"]
    forwards = [event for event in report.timeline if event[0] == "forward"]
    main_pid = forwards[0][4]
    assert {pid for *_, pid in prepares} - {main_pid}, "prepare ran in worker processes"
    overlaps = [(p[1], f[1]) for f in forwards for p in prepares if p[1] != f[1] and p[2] < f[3] and f[2] < p[3]]
    assert overlaps, report.timeline  # the next inputs were decoded while the encoder ran
    prepared_at = {video: end for _, video, _, end, _ in prepares}
    encoded_at = [end for _, _, _, end, _ in forwards]
    # from the second input on, each input was ready before the encoder finished the one before it: no waiting
    assert all(prepared_at[f"in{k + 1}"] <= encoded_at[k] + 0.05 for k in range(5)), report.timeline
    assert elapsed < 6 * 0.45  # serial would be 6 x (0.3 + 0.3) s


def test_run_extraction_settings_are_checked_before_anything(tmp_path):
    inputs_saying(tmp_path / "in", "ok")
    with pytest.raises(Exception, match="--workers must be 0 or more"):
        run_extraction("scripted", [tmp_path / "in"], tmp_path / "out", lambda d, t: ScriptedEncoder(),
                       ExtractionSettings(workers=-1))
    with pytest.raises(Exception, match="no 'scripted' features"):
        run_extraction("scripted", [tmp_path / "in"], tmp_path / "out", lambda d, t: ScriptedEncoder(),
                       ExtractionSettings(output_format="videochatgpt"))
    report = run_extraction("scripted", [tmp_path / "in"], tmp_path / "out", lambda d, t: ScriptedEncoder(),
                            input_suffixes=(".txt",))
    assert (report.written, report.exit_code) == (1, 0)
