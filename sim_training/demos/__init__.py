"""Expert demonstrations from ManiSkill3's motion planners."""
