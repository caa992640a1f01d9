"""The feature store and its temp files with other processes at work: two extractors adding different cues to one
folder at once, writers killed mid-write, and writers still running while a new run cleans up."""

import multiprocessing
import os
import subprocess
import sys
import time

import torch

from llavidal_core.atomic_files import remove_stale_temp_files
from llavidal_core.extraction import prepare_output_folder
from llavidal_core.features import FeatureStore

VIDEO_IDS = [f"clip_{number:02d}" for number in range(50)]


def write_one_cue_to_every_video(root, cue, start):
    """One 'extractor': waits for the other, then writes its cue into every video's file."""
    store = FeatureStore(root)
    start.wait()
    for video_id in VIDEO_IDS:
        store.write(video_id, cue, torch.full((64, 256), float(len(cue))))


def test_two_processes_adding_different_cues_to_the_same_videos_keep_both(tmp_path):
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [context.Process(target=write_one_cue_to_every_video, args=(str(tmp_path), cue, start))
               for cue in ("pose", "video")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0, 0]

    store = FeatureStore(tmp_path)
    assert store.video_ids() == VIDEO_IDS
    assert {video_id: store.cues(video_id) for video_id in VIDEO_IDS} == {v: ["pose", "video"] for v in VIDEO_IDS}
    assert all(float(store.read(v, "video")[0, 0]) == 5.0 and float(store.read(v, "pose")[0, 0]) == 4.0
               for v in VIDEO_IDS)
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


HOLD_A_TEMP_FILE = """
import fcntl, sys, time
handle = open(sys.argv[1], "ab")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_a_new_run_removes_only_the_temp_files_of_writers_that_are_gone(tmp_path):
    store = FeatureStore(tmp_path)
    store.write("done", "video", torch.zeros(2, 3))
    killed = tmp_path / ".killed.safetensors.4242.0badf00d.tmp"      # its writer was killed long ago
    killed.write_bytes(b"half a file")
    os.utime(killed, (time.time() - 3600, time.time() - 3600))
    (tmp_path / "P03").mkdir()
    killed_deeper = tmp_path / "P03" / ".clip_1.safetensors.4243.deadbeef.tmp"
    killed_deeper.write_bytes(b"half")
    os.utime(killed_deeper, (time.time() - 3600, time.time() - 3600))
    running = tmp_path / ".running.safetensors.4244.feedbeef.tmp"    # a writer in another process, still at it
    running.write_bytes(b"being written")
    os.utime(running, (time.time() - 3600, time.time() - 3600))
    not_ours = tmp_path / ".notes.tmp"                               # not a name the store gives its temp files
    not_ours.write_bytes(b"someone else's")
    os.utime(not_ours, (time.time() - 3600, time.time() - 3600))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_TEMP_FILE, str(running)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        prepare_output_folder(tmp_path)
        remaining = sorted(path.name for path in tmp_path.rglob(".*.tmp"))
        assert remaining == [not_ours.name, running.name]
    finally:
        holder.kill()
        holder.wait()
    assert store.video_ids() == ["done"]

    # once its writer is gone, the old one goes too; one written after the run started stays (its writer may
    # have only just opened it, before taking the lock)
    fresh = tmp_path / ".fresh.safetensors.4245.cafebabe.tmp"
    fresh.write_bytes(b"just opened")
    assert remove_stale_temp_files(tmp_path, before=time.time() - 60) == [running]
    assert sorted(path.name for path in tmp_path.rglob(".*.tmp")) == [fresh.name, not_ours.name]
