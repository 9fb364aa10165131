"""How responses are scored: the scoring modes, the grounding protocols and `ScoringOptions`.

Every scorer that works on a sample (medmo.eval.tasks.score_by_task, a registered
benchmark's `score`, and through them medmo.eval.scoring and medmo.eval.grounding) takes
one `ScoringOptions`, so what a number depends on travels as one declared value instead
of riding inside the sample dict.

- `mode`: the answer rules, "strict" (medmo's) or "medevalkit" (MedEvalKit's, to compare
  with published tables); medmo.eval.scoring documents both.
- `box_format`: how a response writes coordinates (medmo.model.families: grid, pixels,
  resized:F:MIN:MAX); None = the benchmark's own convention (grid for record files).
- `grounding_protocol`: "set" (set IoU over every predicted box, clamped) or "medsg"
  (MedSG-Bench's first-box rule); None = the mode's: "medevalkit" applies a benchmark's
  published protocol, everything else is "set" (medmo.eval.grounding).

Not to be confused with the evaluation protocol (`medmo eval --protocol default|paper`):
that one picks the item sets, the budget and the judge, and reaches scoring only through
the mode it selects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Mode = Literal["strict", "medevalkit"]  # config fields take these types, so the CLI's choices come from here too
GroundingProtocol = Literal["set", "medsg"]
MODES: tuple[str, ...] = get_args(Mode)
GROUNDING_PROTOCOLS: tuple[str, ...] = get_args(GroundingProtocol)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown scoring mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


@dataclass(frozen=True)
class ScoringOptions:
    """The scoring inputs besides the sample and the response (module docstring)."""

    mode: str = "strict"
    box_format: str | None = None
    grounding_protocol: str | None = None

    def __post_init__(self):
        check_mode(self.mode)
        if self.grounding_protocol not in (None, *GROUNDING_PROTOCOLS):
            raise ValueError(f"grounding protocol must be one of {GROUNDING_PROTOCOLS}, "
                             f"got {self.grounding_protocol!r}")

    @classmethod
    def of(cls, options: ScoringOptions | str) -> ScoringOptions:
        """Options as given, or a bare mode name ("strict") as options with that mode."""
        return options if isinstance(options, ScoringOptions) else cls(mode=options)

    def grounding(self, published: str = "set") -> str:
        """The grounding protocol to score with, given a benchmark's `published` one."""
        return self.grounding_protocol or (published if self.mode == "medevalkit" else "set")
