"""Show actors that a ManiSkill3 task hides from its sensor cameras.

PickCube hides its goal marker from sensors (state-based policies get the goal position instead); a
vision-language policy has no other way to know where the goal is, so the policy camera must see it.
"""

from __future__ import annotations

import gymnasium as gym


class RevealActors(gym.Wrapper):
    def __init__(self, env: gym.Env, actor_names: tuple[str, ...]):
        super().__init__(env)
        self.actor_names = actor_names

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        # The scene (and its hidden list) is rebuilt on reconfiguration, which happens inside reset:
        # un-hide again and re-render the observation that was taken with the actors hidden.
        if self._unhide():
            obs = self.env.unwrapped.get_obs(info)
        return obs, info

    def _unhide(self) -> bool:
        base = self.env.unwrapped
        hidden = base._hidden_objects
        actors = [getattr(base, name) for name in self.actor_names]
        found = [obj for obj in hidden if any(obj is actor for actor in actors)]
        for obj in found:
            hidden.remove(obj)
            obj.show_visual()
        return bool(found)
