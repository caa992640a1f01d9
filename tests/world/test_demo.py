"""``llavidal demo`` end to end on a very small world: every step runs, results.json has its shape, reruns reuse."""

import json

import pytest

for module in ("llavidal_video", "llavidal_pose", "llavidal_object"):
    pytest.importorskip(module, reason="the demo uses every cue plugin")

from llavidal_core.cli import main  # noqa: E402
from llavidal_core.world.build import WorldConfig  # noqa: E402
from llavidal_core.world.demo import CUE_SETS, DemoConfig, cue_set_name, run_demo  # noqa: E402

SMALL = DemoConfig(world=WorldConfig(num_performers=3, videos_per_performer=3, held_out_performers=1,
                                     frames_per_action=8),
                   pose_steps=5, llm_hidden=32, epochs=1, video_frames=4)


@pytest.mark.slow
def test_demo_runs_every_step_and_reuses_its_cache(tmp_path, llavidal_plugins):
    summary = run_demo(tmp_path, SMALL)
    assert list(summary["cue_sets"]) == ["video", "video+pose", "video+object", "video+pose+object"]
    for result in summary["cue_sets"].values():
        assert result["n"] == 3 * 2 and 0.0 <= result["ci95"][0] <= result["accuracy"] <= result["ci95"][1] <= 1.0
        assert set(result["by_category"]) <= {"pose-twin", "object-twin", "other"}
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["cue_sets"] == summary["cue_sets"] and written["sample_conversation"][0]["turns"]
    runs = next(tmp_path.glob("runs-*"))
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/model.safetensors")}
    assert len(stamps) == len(CUE_SETS) and {p.parent.name for p in stamps} == {cue_set_name(c) for c in CUE_SETS}
    assert run_demo(tmp_path, SMALL)["cue_sets"] == summary["cue_sets"]  # evaluated again, nothing retrained
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/model.safetensors")} == stamps


def test_demo_usage_errors(llavidal_plugins, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--epochs", "0"])
    assert exit_info.value.code == 2 and "--epochs must be positive" in capsys.readouterr().err
