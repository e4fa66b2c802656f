"""LLP-BP's settings: the schedule of its rounds (ScheduleSettings, a config group of its own), its
candidates' overrides, and LLPBPSettings (encoder and training, graph, bp and schedule)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from llp_jax.bp import BPSettings, check_settings
from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.graph import GraphSettings, check_graph_fits, check_graph_settings
from llp_jax.methods import countloss, dllp, easyllp
from llp_jax.methods.common import FitSettings

WARM_STARTS = {"dllp": dllp.fit, "easyllp": easyllp.fit, "countloss": countloss.fit}
WarmStart = enum.StrEnum("WarmStart", {name: name for name in ("none", *WARM_STARTS)})
PseudoLabels = enum.StrEnum("PseudoLabels", {name: name for name in ("threshold", "soft", "topk")})
ChooseBy = enum.StrEnum("ChooseBy", {name: name for name in ("first", "one_se", "lowest")})
NOT_PER_CANDIDATE = ("candidates", "choose_by")  # what a candidate's "key=value ..." cannot set


class ScheduleSettings(NamedTuple):
    """LLP-BP rounds. rounds: R; labels: the pseudo-labels trained on, `threshold` (marginal > tau),
    `soft` (the marginals) or `topk` (the round(k_b) members of each bag with the highest marginals, so
    that every bag's pseudo-labels agree with its count whatever the base rate); threshold: tau;
    strict_counts: with threshold labels, stop (CountGapError) when BP's marginals miss the bags' total
    count by more than 10% (false: warn and train on them, as the paper's code does); keep_best_round:
    return the round (the warm start included) with the best validation criterion instead of the last
    one; warm_start_gate: a significance level; the warm start is returned instead of the last round when
    the validation bags' count NLL (both encoders calibrated to the training bag counts) is higher for the
    round, by a paired one-sided t-test at this level (0 = off); lambda_agg: weight of the
    aggregate-embedding bag loss (0 = off); lambda_bag: weight of DLLP's bag-proportion loss on the round
    encoder's own predictions (0 = off);
    warm_start: none | dllp | easyllp | countloss, a round 0 on the bags alone; prior_weight: gamma, the
    weight of the previous encoder's logits as a BP unary (0 = off); calibrate: rescale those logits to
    the training bag counts first, and the final encoder's logit head likewise (no labels used).
    candidates (schedule=auto): variants of this schedule, each "key=value ..." over its fields (an empty
    string: the schedule as it is), and choose_by how one is returned: `first`, the first that runs to the
    end (a later candidate runs only when the earlier ones failed: a fallback); or each runs in full and
    the validation bags' count likelihood picks, `lowest` mean -log P(count), or `one_se`, the first
    candidate unless another's is lower by more than one standard error of the paired per-bag
    differences.
    The embedding is the encoder's (model.embedding_layer for the MLP). Why the defaults are what they
    are: docs/DESIGN.md section 2 and README (LLP-BP)."""

    rounds: int = 2
    threshold: float = 0.5
    labels: PseudoLabels = PseudoLabels.soft
    strict_counts: bool = True
    keep_best_round: bool = False
    warm_start_gate: float = 0.025
    lambda_agg: float = 0.0
    lambda_bag: float = 0.0
    warm_start: WarmStart = WarmStart.easyllp
    prior_weight: float = 1.0
    calibrate: bool = True
    candidates: tuple[str, ...] = ()
    choose_by: ChooseBy = ChooseBy.first


# The most rounds a schedule may run: each round builds a graph, runs BP and trains an encoder (with its
# checkpoints), and the paper's results come from 2; a run of 1e9 rounds wrote 455 checkpoint folders in
# 100 s before anyone noticed (issue 25).
MAX_ROUNDS = 100


def check_schedule(schedule: ScheduleSettings) -> None:
    """Raise ValueError naming the first bad schedule setting."""
    if schedule.rounds < 1:
        raise ValueError(f"schedule.rounds={schedule.rounds} must be at least 1")
    if schedule.rounds > MAX_ROUNDS:
        raise ValueError(
            f"schedule.rounds={schedule.rounds} is above {MAX_ROUNDS}, the most rounds a run may take (each "
            "trains an encoder and runs BP; the paper uses 2); use e.g. schedule.rounds=2"
        )
    if not 0.0 < schedule.threshold < 1.0:
        raise ValueError(f"schedule.threshold={schedule.threshold} must lie strictly between 0 and 1")
    if schedule.warm_start not in WarmStart.__members__:
        raise ValueError(
            f"schedule.warm_start={schedule.warm_start!r}; choose none or one of {sorted(WARM_STARTS)}"
        )
    if schedule.labels not in PseudoLabels.__members__:
        raise ValueError(
            f"schedule.labels={schedule.labels!r}; choose one of {list(PseudoLabels.__members__)}"
        )
    if not 0 <= schedule.warm_start_gate < 1:
        raise ValueError(
            f"schedule.warm_start_gate={schedule.warm_start_gate} is a significance level: give one in "
            "[0, 1), e.g. 0.025 (0 turns the gate off)"
        )
    for name in ("lambda_agg", "lambda_bag", "prior_weight"):
        if not getattr(schedule, name) >= 0:
            raise ValueError(f"schedule.{name}={getattr(schedule, name)} must be >= 0 (0 turns it off)")
    if schedule.choose_by not in ChooseBy.__members__:
        raise ValueError(
            f"schedule.choose_by={schedule.choose_by!r}; choose one of {list(ChooseBy.__members__)}"
        )
    for candidate in schedule.candidates:
        check_schedule(candidate_schedule(schedule, candidate))


def candidate_schedule(schedule: ScheduleSettings, candidate: str) -> ScheduleSettings:
    """The schedule with a candidate's "key=value ..." overrides (schedule=auto), without candidates.
    Raises ValueError naming an unknown key or a value of the wrong type."""
    values = {"candidates": ()}
    for item in candidate.split():
        key, _, text = item.partition("=")
        if key not in ScheduleSettings._fields or key in NOT_PER_CANDIDATE or not text:
            settable = [field for field in ScheduleSettings._fields if field not in NOT_PER_CANDIDATE]
            raise ValueError(
                f"schedule.candidates entry {candidate!r}: {item!r} is not key=value over {settable}"
            )
        default = ScheduleSettings._field_defaults[key]
        if isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(f"schedule.candidates entry {candidate!r}: {key} takes true or false")
            values[key] = text.lower() == "true"
        else:
            try:
                values[key] = type(default)(text) if not isinstance(default, enum.Enum) else text
            except ValueError:
                raise ValueError(
                    f"schedule.candidates entry {candidate!r}: {key}={text!r} is not "
                    f"a valid {type(default).__name__}"
                ) from None
    return schedule._replace(**values)


def multiclass_obstacle(schedule: ScheduleSettings) -> str | None:
    """What keeps `schedule` from running on K > 2 classes, or None: EasyLLP (a warm start) and top-k
    pseudo-labels are binary only. The K-class rounds run the K-state BP (llp_jax.bp.run_potts_bp) and
    train on its marginals as class distributions (threshold labels: the argmax class)."""
    if schedule.warm_start == WarmStart.easyllp:
        return "schedule.warm_start=easyllp is binary only (use dllp or countloss)"
    if schedule.labels == PseudoLabels.topk:
        return "schedule.labels=topk is binary only (use soft or threshold)"
    return None


def runnable_candidates(schedule: ScheduleSettings, n_classes: int) -> list[tuple[int, str, str | None]]:
    """(index, candidate, obstacle) of every candidate of `schedule` (schedule=auto), the obstacle
    (`multiclass_obstacle`) None where it runs on n_classes classes; ValueError, before anything trains,
    when none can."""
    entries = [
        (
            index,
            candidate,
            multiclass_obstacle(candidate_schedule(schedule, candidate)) if n_classes > 2 else None,
        )
        for index, candidate in enumerate(schedule.candidates)
    ]
    if entries and all(obstacle is not None for _, _, obstacle in entries):
        raise ValueError(
            f"no schedule.candidates entry runs on {n_classes} classes: "
            + "; ".join(f"{candidate!r}: {obstacle}" for _, candidate, obstacle in entries)
        )
    return entries


@dataclass(frozen=True)
class LLPBPSettings(FitSettings):
    """LLP-BP reads, beyond the encoder and its training, the graph, bp and schedule config groups."""

    graph: GraphSettings = GraphSettings()
    bp: BPSettings = BPSettings()
    schedule: ScheduleSettings = ScheduleSettings()

    def check(self) -> None:
        super().check()
        check_graph_settings(self.graph)
        check_settings(self.bp)
        check_schedule(self.schedule)

    def check_data(self, data: Dataset, train_bags: Bags) -> None:
        check_graph_fits(self.graph, data.train.n)
        if data.n_classes > 2 and not self.schedule.candidates:
            obstacle = multiclass_obstacle(self.schedule)
            if obstacle is not None:
                raise ValueError(f"these data have {data.n_classes} classes, and {obstacle}")
        runnable_candidates(self.schedule, data.n_classes)
