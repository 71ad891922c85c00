"""StARe in simulation: stage-labelled rollouts, dataset segmentation, the `stare-stages` CLI."""
