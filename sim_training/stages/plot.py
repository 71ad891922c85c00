"""Stage timeline of one episode: stage bands over time from both separators, with the signals they read
(gripper opening and command, TCP height) and, in simulation, the object distances behind the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim_training.stages.evaluate import LabelledEpisode
from stare_policy.stages import ChainFK, TaskStages
from stare_policy.stages.proprioceptive import N_ARM


def plot_timeline(stages: TaskStages, episode: LabelledEpisode, out: str | Path, title: str = "",
                  rate_hz: float = 20.0, fk: ChainFK | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    arrays = episode.arrays
    t = np.arange(len(arrays["qpos"])) / rate_hz
    colours = plt.get_cmap("tab10")(np.arange(len(stages)))
    rows = [("proprioceptive", episode.proprio)]
    if episode.privileged is not None:
        rows.insert(0, ("privileged", episode.privileged))
    fig, axes = plt.subplots(4 if episode.measures is not None else 3, 1, figsize=(10, 7.5), sharex=True,
                             gridspec_kw={"height_ratios": [0.9, 1, 1, 1][: 4 if episode.measures is not None else 3]})

    bands = axes[0]
    for y, (name, seg) in enumerate(rows):
        for k in range(len(stages)):
            on = seg.labels == k
            starts = np.flatnonzero(on & ~np.r_[False, on[:-1]])
            ends = np.flatnonzero(on & ~np.r_[on[1:], False])
            bands.broken_barh([(t[s], t[e] - t[s] + 1 / rate_hz) for s, e in zip(starts, ends)], (y - 0.4, 0.8),
                              color=colours[k])
        for step, event in seg.events:
            bands.annotate(event, (t[step], y + 0.42), fontsize=7, ha="center", va="bottom")
    bands.set_yticks(range(len(rows)), [name for name, _ in rows])
    bands.set_ylim(-0.6, len(rows) - 0.1)
    bands.legend(handles=[Patch(color=colours[k], label=n) for k, n in enumerate(stages.names)],
                 loc="upper center", bbox_to_anchor=(0.5, 1.35), ncol=len(stages), frameon=False)

    q = np.nan_to_num(np.asarray(arrays["qpos"], dtype=np.float64))
    axes[1].plot(t, q[:, N_ARM] + q[:, N_ARM + 1], label="finger opening (m)")
    axes[1].plot(t, 0.04 * (arrays["action"][:, -1] > 0), "--", lw=1, label="command open (scaled)")
    axes[1].set_ylabel("gripper")
    axes[1].legend(fontsize=7, loc="upper right")
    z = (fk or ChainFK()).batch(q[:, :N_ARM])[0][:, 2]
    axes[2].plot(t, z, color="tab:green")
    axes[2].set_ylabel("TCP height (m)")
    if episode.measures is not None:
        axes[3].plot(t, episode.measures.reach, label="TCP to object")
        if np.isfinite(episode.measures.target).any():
            axes[3].plot(t, episode.measures.target, label="object to target")
        axes[3].set_ylabel("distance (m)")
        axes[3].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title, y=0.995)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
