"""The imu cue's encoder: CSV rows ``t,ax,ay,az`` into (16, 6) per-window mean and std."""

import numpy as np
import torch

from llavidal_core.encoder import CueEncoder
from llavidal_imu_stats import IMU


class ImuStatsEncoder(CueEncoder):
    input_suffixes = (".csv",)  # what `llavidal extract imu FOLDER` picks up

    @property
    def spec(self):
        return IMU

    def prepare(self, path):  # CPU, in DataLoader workers: read one file
        samples = torch.from_numpy(np.loadtxt(path, delimiter=",", ndmin=2)[:, 1:4]).float()
        if len(samples) < IMU.num_tokens:
            raise ValueError(f"{path}: {len(samples)} samples, the imu cue needs at least {IMU.num_tokens}")
        return samples

    def forward(self, batch):  # one (16, 6) tensor per prepared recording
        return [torch.stack([torch.cat([w.mean(0), w.std(0, correction=0)])
                             for w in torch.tensor_split(samples, IMU.num_tokens)]) for samples in batch]
