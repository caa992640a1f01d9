"""llavidal-imu-stats: the `imu` cue, wearable accelerometer CSV files as 16 rows of window statistics."""

from llavidal_core import CueSpec, hookimpl

IMU = CueSpec(
    name="imu",
    placeholder="<imu>",
    patch_token="<imu_patch>",
    start_token="<imu_start>",
    end_token="<imu_end>",
    feature_dim=6,
    num_tokens=16,
    description="per-window mean and std of 3-axis acceleration",
)


@hookimpl
def llavidal_register_cues(register):
    register(IMU, encoder="llavidal_imu_stats.encoder:ImuStatsEncoder")
