"""Building the miniature ADL world on disk: videos, skeletons, object tracks, instructions and MCQs.

Each video shows one performer doing ``actions_per_video`` different actions one after the other (as
ADL-X stitches NTU clips of one person). Performers are split: the held-out ones only appear in the
multiple-choice test, so the test is cross-subject. Everything is drawn from one seed, so the same config
gives the same world, file for file; a world already on disk with the same config and generator version
is reused.

Layout of ``DIR``::

    world.json               config, generator version, and the truth of every video
    videos/<id>.mp4          rendered stick figures with coloured held objects
    skeletons/<id>.skeleton  the same motion as NTU RGB+D text files
    objects/<id>.json        object tracks: label and per-frame pixel boxes
    train.json               ADL-X instruction JSON (training performers)
    mcq_test.json            ADLMCQ (current schema) about held-out performers, with a "category" per question
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from llavidal_core.atomic_files import atomic_write_bytes
from llavidal_core.world.actions import ACTIONS_BY_NAME, WORLD_ACTIONS
from llavidal_core.world.render import draw_frame, object_box, write_video

GENERATOR_VERSION = "4"  # 2: multiple-choice prompts put the placeholders after the choices; 3: byte-identical
# videos; 4: three instruction records per training video (what happens, first and last as multiple choice)
PLACEHOLDERS = "<video><object><human_pose>"
LETTERS = "ABCD"


@dataclass(frozen=True)
class WorldConfig:
    num_performers: int = 12
    videos_per_performer: int = 10
    held_out_performers: int = 3
    actions_per_video: int = 2
    frames_per_action: int = 40
    fps: int = 20
    image_size: int = 112
    joint_noise_metres: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class VideoTruth:
    video_id: str
    performer: int
    actions: tuple[str, ...]
    held_out: bool


def _require_pose_plugin():
    try:
        from llavidal_pose import skeleton, synthetic
    except ImportError:
        from llavidal_core.errors import MissingPluginError

        raise MissingPluginError("the miniature world draws its people with llavidal-pose: "
                                 "pip install llavidal-pose") from None
    return skeleton, synthetic


def plan_videos(config: WorldConfig, rng: np.random.Generator) -> list[VideoTruth]:
    """Which actions each video shows: every action about equally often, two in a row never the same."""
    plans = []
    names = [action.name for action in WORLD_ACTIONS]
    for performer in range(1, config.num_performers + 1):
        held_out = performer > config.num_performers - config.held_out_performers
        for number in range(1, config.videos_per_performer + 1):
            chosen = tuple(rng.choice(names, size=config.actions_per_video, replace=False).tolist())
            plans.append(VideoTruth(f"{performer:03d}_video_{number:03d}", performer, chosen, held_out))
    return plans


def render_video(plan: VideoTruth, performer, config: WorldConfig, rng: np.random.Generator, synthetic):
    """Joints ``(T, 25, 3)``, frames ``(T, H, W, 3)`` and object tracks of one planned video."""
    segments, tracks = [], []
    for action_name in plan.actions:
        action = ACTIONS_BY_NAME[action_name]
        joints = synthetic.animate(action.motion, rng, config.frames_per_action, performer)
        if action.held_object is not None:
            first = sum(len(s) for s in segments)
            boxes = object_box(joints, action.held_object, config.image_size)
            tracks.append({"label": action.held_object, "first_frame": first,
                           "boxes": np.round(boxes, 1).tolist()})
        segments.append(joints)
    joints = np.concatenate(segments) + rng.normal(0.0, config.joint_noise_metres, (sum(map(len, segments)), 25, 3))
    frames = []
    for t in range(len(joints)):
        held = [(track["label"], np.array(track["boxes"][t - track["first_frame"]])) for track in tracks
                if 0 <= t - track["first_frame"] < len(track["boxes"])]
        frames.append(draw_frame(joints[t], held, config.image_size))
    return joints.astype(np.float32), np.stack(frames), tracks


ORDER_QUESTIONS = (("What does the person do first?", 0), ("What does the person do last?", -1))


def choice_question(plan: VideoTruth, position: int, rng: np.random.Generator) -> tuple[dict[str, str], str, str]:
    """Four lettered choices for the action at ``position``, its twin always among the distractors.

    Returns the choices, the right letter and the question's category: ``"pose-twin"`` or
    ``"object-twin"`` when only that cue tells the answer from its twin, else ``"other"``.
    """
    truth = ACTIONS_BY_NAME[plan.actions[position]]
    distractors = [truth.twin] if truth.twin else []
    others = [a.name for a in WORLD_ACTIONS if a.name not in (truth.name, *distractors, *plan.actions)]
    distractors += rng.choice(others, size=3 - len(distractors), replace=False).tolist()
    options = [truth.name, *distractors]
    rng.shuffle(options)
    category = f"{truth.told_apart_by}-twin" if truth.twin else "other"
    return {LETTERS[i]: name for i, name in enumerate(options)}, LETTERS[options.index(truth.name)], category


def instruction_records(plan: VideoTruth, index: int, rng: np.random.Generator) -> list[dict]:
    """ADL-X records for one training video: what happens (placeholders before or after the question, in turn),
    and which action comes first and last, asked as multiple choice in the wording `llavidal eval mcq` uses.

    Three records per video: the earlier open questions (first, last, which objects) repeated what these say
    and doubled the training time without raising the held-out accuracy (docs/demo-lab-notes.md).
    """
    from llavidal_core.evaluation.mcq_files import MCQuestion
    from llavidal_core.evaluation.mcq_scoring import mcq_prompt, option_answer

    sentence = ", then ".join(ACTIONS_BY_NAME[name].third_person for name in plan.actions)
    question = "What does the person do in the video?"
    human = f"{PLACEHOLDERS}\n{question}" if index % 2 == 0 else f"{question}\n{PLACEHOLDERS}"
    records = [_record(plan, human, f"The person {sentence}.")]
    for question, position in ORDER_QUESTIONS:
        choices, letter, _ = choice_question(plan, position, rng)
        prompt = mcq_prompt(MCQuestion("", "", question, choices, letter, ""), [PLACEHOLDERS])
        records.append(_record(plan, prompt, option_answer(letter, choices[letter])))
    return records


def _record(plan: VideoTruth, human: str, answer: str) -> dict:
    return {
        "id": plan.video_id, "video": f"{plan.video_id}.pkl", "object": f"{plan.video_id}_object.pkl",
        "pose": f"{plan.video_id}_pose.pkl",
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": answer}],
    }


def mcq_records(plan: VideoTruth, rng: np.random.Generator) -> list[dict]:
    """ADLMCQ records for one held-out video: its first and its last action, four choices each."""
    records = []
    for question, position in ORDER_QUESTIONS:
        choices, letter, category = choice_question(plan, position, rng)
        records.append({"video_filename": f"{plan.video_id}.mp4", "question": question, "answer_choices": choices,
                        "ground_truth_letter": letter, "category": category})
    return records


def world_is_built(directory: Path, config: WorldConfig) -> bool:
    """Whether ``directory`` already holds the world ``config`` makes (same config, same generator version)."""
    manifest = directory / "world.json"
    if not manifest.exists():
        return False
    saved = json.loads(manifest.read_text())
    return saved.get("config") == asdict(config) and saved.get("generator_version") == GENERATOR_VERSION


def build_world(directory: str | Path, config: WorldConfig = WorldConfig()) -> Path:
    """Write the world into ``directory`` (reused when already there with the same config); returns it."""
    skeleton, synthetic = _require_pose_plugin()
    directory = Path(directory)
    if world_is_built(directory, config):
        return directory
    for sub in ("videos", "skeletons", "objects"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    plans = plan_videos(config, rng)
    performers = {p: synthetic.Performer.random(rng) for p in range(1, config.num_performers + 1)}
    instructions, questions = [], []
    for index, plan in enumerate(tqdm(plans, desc="miniature world", unit="video", disable=None)):
        joints, frames, tracks = render_video(plan, performers[plan.performer], config, rng, synthetic)
        write_video(directory / "videos" / f"{plan.video_id}.mp4", frames, config.fps)
        skeleton.write_skeleton_file(directory / "skeletons" / f"{plan.video_id}.skeleton",
                                     skeleton.SkeletonSequence.from_joints(joints[:, None]))
        atomic_write_bytes(directory / "objects" / f"{plan.video_id}.json", json.dumps(tracks).encode("utf-8"))
        if plan.held_out:
            questions += mcq_records(plan, rng)
        else:
            instructions += instruction_records(plan, index, rng)
    atomic_write_bytes(directory / "train.json", json.dumps(instructions, indent=1).encode("utf-8"))
    atomic_write_bytes(directory / "mcq_test.json", json.dumps(questions, indent=1).encode("utf-8"))
    manifest = {"generator_version": GENERATOR_VERSION, "config": asdict(config),
                "videos": [asdict(plan) for plan in plans]}
    atomic_write_bytes(directory / "world.json", json.dumps(manifest, indent=1).encode("utf-8"))
    return directory
