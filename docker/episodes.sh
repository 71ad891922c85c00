#!/usr/bin/env bash
# Run N closed-loop episodes against a running sim graph (`ros2 launch stare_bringup policy.launch.py
# sim:=true`, docker/compose.yaml's `sim` service), one after another, as `stare-bringup --episodes N`
# does in one process: start each through /episode/start (the sim_bridge picks the next seed) and wait
# for the episode_logger's SAVED event, which carries the outcome and the bag.
#   stare-episodes [N]          (default 5)
set -eo pipefail
episodes=${1:-5}
timeout_s=${EPISODE_TIMEOUT_S:-900}
saved=2  # stare_interfaces/msg/EpisodeEvent.SAVED

for ((i = 1; i <= episodes; i++)); do
  # Listen before starting, so that the SAVED event cannot pass unseen.
  timeout "${timeout_s}" ros2 topic echo --once --filter "m.event == ${saved}" \
    /episode/events stare_interfaces/msg/EpisodeEvent > /tmp/stare-saved.yaml &
  listener=$!
  # Waits until the graph is up (the first start also waits for ManiSkill3 to load).
  ros2 service call /episode/start stare_interfaces/srv/StartEpisode "{seed: -1}" > /dev/null
  if ! wait "${listener}"; then
    echo "episode ${i}/${episodes}: no SAVED event within ${timeout_s} s" >&2
    exit 1
  fi
  outcome=$(sed -n "s/^outcome: *//p" /tmp/stare-saved.yaml)
  steps=$(sed -n "s/^steps: *//p" /tmp/stare-saved.yaml)
  bag=$(sed -n "s/^bag_path: *//p" /tmp/stare-saved.yaml)
  echo "episode ${i}/${episodes}: ${outcome} in ${steps} steps | bag ${bag}"
done
