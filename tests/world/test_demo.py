"""``llavidal demo`` end to end on a very small world: every step runs, results.json has its shape, reruns reuse."""

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

for module in ("llavidal_video", "llavidal_pose", "llavidal_object"):
    pytest.importorskip(module, reason="the demo uses every cue plugin")

from llavidal_core.cli import main  # noqa: E402
from llavidal_core.world.build import WorldConfig  # noqa: E402
from llavidal_core.world import demo  # noqa: E402
from llavidal_core.world.demo import CUE_SETS, DemoConfig, cue_set_name, llm_folder_name, run_demo  # noqa: E402

SMALL = DemoConfig(world=WorldConfig(num_performers=3, videos_per_performer=3, held_out_performers=1,
                                     frames_per_action=8),
                   pose_steps=5, llm_hidden=32, epochs=1, video_frames=4)


@pytest.fixture
def cue_plugins(llavidal_plugins):
    """The three cue plugins, registered as their entry points register them."""
    import llavidal_object.plugin
    import llavidal_pose.plugin
    import llavidal_video.plugin

    for cue, module in (("video", llavidal_video.plugin), ("pose", llavidal_pose.plugin),
                        ("object", llavidal_object.plugin)):
        llavidal_plugins.register(module, name=cue, distribution=f"llavidal-{cue}")
    return llavidal_plugins


@pytest.mark.slow
def test_demo_runs_every_step_and_reuses_its_cache(tmp_path, cue_plugins, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)  # a relative output folder, as `make demo` gives it
    caplog.set_level(logging.INFO, logger="llavidal.demo")  # what the CLI shows on stderr as the demo goes
    out = Path("llavidal-demo")
    summary = run_demo(out, SMALL)
    assert "building the miniature world in" in caplog.text
    caplog.clear()
    assert list(summary["cue_sets"]) == ["video", "video+pose", "video+object", "video+pose+object"]
    for result in summary["cue_sets"].values():
        assert result["n"] == 3 * 2 and 0.0 <= result["ci95"][0] <= result["accuracy"] <= result["ci95"][1] <= 1.0
        assert set(result["by_category"]) <= {"pose-twin", "object-twin", "other"}
    assert not list(out.rglob("llavidal-demo")), "video ids must not carry the output folder"
    written = json.loads((out / "results.json").read_text())
    assert written["cue_sets"] == summary["cue_sets"] and written["sample_conversation"][0]["turns"]
    runs = next(out.glob("runs-*"))
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/model.safetensors")}
    assert len(stamps) == len(CUE_SETS) and {p.parent.name for p in stamps} == {cue_set_name(c) for c in CUE_SETS}
    assert run_demo(out, SMALL)["cue_sets"] == summary["cue_sets"]  # evaluated again, nothing retrained
    said = caplog.text
    assert "using the miniature world already built in" in said and "building the miniature world" not in said
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/model.safetensors")} == stamps

    other = Path("second-run")  # the same seed from scratch in another folder: the same world, features, results
    run_demo(other, SMALL)
    assert (other / "results.json").read_bytes() == (out / "results.json").read_bytes()
    for kind in ("videos/*.mp4", "skeletons/*.skeleton", "*.json"):
        first, second = sorted(out.glob(f"world-*/{kind}")), sorted(other.glob(f"world-*/{kind}"))
        assert first and [p.read_bytes() for p in first] == [p.read_bytes() for p in second], kind
    import torch

    from llavidal_core.features import FeatureStore

    first, second = (FeatureStore(next(folder.glob("features-*"))) for folder in (out, other))
    assert first.video_ids() and first.video_ids() == second.video_ids()
    for video_id in first.video_ids():  # the tensors (their metadata names the folder they came from)
        ours, theirs = first.read_all(video_id), second.read_all(video_id)
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[c], theirs[c]) for c in ours), video_id


def test_demo_usage_errors(llavidal_plugins, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--epochs", "0"])
    assert exit_info.value.code == 2 and "--epochs must be positive" in capsys.readouterr().err


def test_demo_options_reach_its_config(llavidal_plugins, monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda out, config: seen.append((out, config)))
    assert main(["demo", "--out", str(tmp_path), "--seed", "3", "--epochs", "2", "--videos-per-performer", "5"]) == 0
    (out, config), = seen
    assert out == tmp_path and (config.seed, config.epochs, config.world.videos_per_performer) == (3, 2.0, 5)


def test_a_changed_language_model_knob_gets_its_own_cached_model():
    base = DemoConfig()
    assert llm_folder_name(base) == llm_folder_name(DemoConfig())
    changed = {llm_folder_name(replace(base, **{knob: value}))
               for knob, value in (("llm_hidden", 64), ("llm_layers", 3), ("llm_vocab", 300), ("seed", 1))}
    assert len(changed) == 4 and llm_folder_name(base) not in changed


def test_poseclip_s_text_tower_reads_every_motion_of_the_world_as_different_text(tmp_path):
    """Its vocabulary once held 'sitting_down' but not 'sitting': sit down and stand up were the same prompt."""
    from llavidal_core.world.actions import WORLD_ACTIONS
    from llavidal_pose.text import ActionTextEncoder, action_prompts

    prompts = action_prompts(sorted({action.motion for action in WORLD_ACTIONS}))
    text = ActionTextEncoder.from_pretrained(str(demo.save_world_text_tower(tmp_path / "text", prompts, seed=0)))
    assert text.indistinct_prompts(prompts) == []
    assert text.tokenizer.unk_token_id not in {i for p in prompts for i in text.tokenizer(p)["input_ids"]}


@pytest.mark.slow
def test_the_demo_model_answers_from_raw_inputs_with_the_training_features(tmp_path, cue_plugins, monkeypatch,
                                                                            capsys):
    """The encoders saved with the demo's model rebuild every cue's training features from the raw video and
    skeleton, and the commands the demo prints run as printed."""
    import io
    import shlex

    import torch

    from llavidal_core.features import FeatureStore
    from llavidal_core.inference import LlavidalPipeline

    monkeypatch.chdir(tmp_path)
    run_demo(Path("llavidal-demo"), SMALL)
    printed = capsys.readouterr().out
    commands = [line.strip() for line in printed.splitlines() if line.strip().startswith("llavidal ")]
    assert [c.split()[1] for c in commands] == ["ask", "chat", "serve"]
    model_dir = Path(shlex.split(commands[0])[2])
    assert model_dir.name == "video+pose+object" and (model_dir / "cue_encoders").is_dir()

    pipe = LlavidalPipeline.from_pretrained(model_dir, device="cpu")
    store = FeatureStore(next(Path("llavidal-demo").glob("features-*")))
    world = next(Path("llavidal-demo").glob("world-*"))
    held_out = demo.held_out_example(world)["video_id"]
    inputs = demo.held_out_inputs(world, held_out)
    computed, = pipe.compute_features([{"video": str(inputs["video"]), "object": str(inputs["video"]),
                                        "pose": str(inputs["pose"])}])
    assert set(computed) == {"video", "pose", "object"}
    for cue, tensor in computed.items():
        stored = store.read(held_out, cue)
        stored = stored.reshape(-1, stored.shape[-1])
        if cue == "pose":  # extraction encodes 8 skeletons per forward pass, this one alone: sums in another order
            torch.testing.assert_close(tensor, stored, rtol=0, atol=1e-5)
        else:
            assert torch.equal(tensor, stored), cue
    assert "CLIP layer" in next(spec for spec in pipe.processor.cues if spec.name == "video").description

    # `eval mcq --videos` computes the video and object features from the videos as the training ones were
    # made: the video+object model scores exactly what the demo's table says (from the stored features)
    results = json.loads(Path("llavidal-demo/results.json").read_text())["cue_sets"]
    report = tmp_path / "report.json"
    assert main(["eval", "mcq", str(model_dir.parent / "video+object"), "--questions", str(world / "mcq_test.json"),
                 "--videos", str(world / "videos"), "--device", "cpu", "--out", str(report)]) == 0
    (scored,) = json.loads(report.read_text())["accuracy"].values()
    assert scored["accuracy"] == results["video+object"]["accuracy"] and scored["n"] == results["video+object"]["n"]
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert notes == [f"llavidal: note: to put these results in the model card: llavidal card "
                     f"{model_dir.parent / 'video+object'} --eval {report}"]  # no cue left out
    assert main(["eval", "mcq", str(model_dir), "--questions", str(world / "mcq_test.json"),
                 "--videos", str(world / "videos"), "--device", "cpu"]) == 0
    assert "the cues ['pose'] take no video input; they are left out" in capsys.readouterr().err

    assert main(shlex.split(commands[0])[1:]) == 0  # ask
    answer = capsys.readouterr()
    assert answer.out.strip() and "Traceback" not in answer.err
    other_video = sorted((world / "videos").glob("*.mp4"))[-1]
    monkeypatch.setattr("sys.stdin", io.StringIO(f"What does the person do in the video?\n/video {other_video}\n"
                                                 "What does the person do in the video?\n/quit\n"))
    assert main(shlex.split(commands[1])[1:]) == 0  # chat
    said = capsys.readouterr()
    assert said.out.strip() and "UserWarning" not in said.err and f"(now talking about {other_video})" in said.err
    assert "the --input files (pose) were for the first video" in said.err  # not kept for another video


@pytest.mark.slow
def test_the_demo_model_is_served_as_printed_and_answers_on_the_page(tmp_path, cue_plugins, monkeypatch, capsys,
                                                                     browser):
    """`llavidal serve` exactly as the demo prints it, in its own process (plugins from their entry points),
    driven in headless Chromium: a held-out example video uploaded, a question asked, an answer shown."""
    import os
    import shlex
    import socket
    import subprocess
    import sys
    import time

    from web_page import free_port, upload_and_ask

    pytest.importorskip("gradio", reason="the web demo needs gradio (pip install 'llavidal-core[web]')")
    monkeypatch.chdir(tmp_path)
    run_demo(Path("llavidal-demo"), SMALL)
    serve = next(line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("llavidal serve"))
    arguments = shlex.split(serve)[1:]
    examples = Path(arguments[arguments.index("--examples") + 1])
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "LLAVIDAL_LOAD_PLUGINS"}
    server = subprocess.Popen([sys.executable, "-m", "llavidal_core", *arguments, "--port", str(port)],
                              env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stdout.read()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#llavidal-ask", timeout=60_000)
        video = sorted(examples.glob("*.mp4"))[0]
        assert upload_and_ask(page, video, "What does the person do first?").strip()
        assert "Sorry" not in page.locator("#llavidal-chat").inner_text()
    finally:
        server.terminate()
        server.wait(timeout=30)
