"""The typed paper spec: one YAML file per paper in ``specs/<id>.yaml``.

Validated by Pydantic v2 with ``extra="forbid"`` so a misspelt key is an error, not a silent
default. This module imports no torch: the catalogue, status and docs start fast.

A spec holds what we say about a paper (title, family, kind, our own summary, its central claim)
and, for implemented papers, how to run it: the experiment entry point, its Hydra config, seeds,
a full and a ``quick`` budget, the arms and metrics it produces, and the claims, each a
machine-checked condition over those metrics, written before any result exists.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Family",
    "Kind",
    "Condition",
    "VerdictRule",
    "Claim",
    "Superseded",
    "SmallScale",
    "Reproduction",
    "Spec",
    "ID_PATTERN",
]

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_METRIC_REF = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


class Family(str, Enum):
    """What a paper is about; one page per family in the docs."""

    optimizer = "optimizer"
    loss = "loss"
    regularizer = "regularizer"
    pruning = "pruning"
    quantization = "quantization"
    data_selection = "data_selection"
    generative = "generative"
    guidance = "guidance"
    unlearning = "unlearning"
    robustness = "robustness"
    noisy_labels = "noisy_labels"
    self_supervised = "self_supervised"
    distillation = "distillation"
    architecture = "architecture"
    nas = "nas"
    operator_learning = "operator_learning"
    rl = "rl"
    preference_alignment = "preference_alignment"
    federated = "federated"
    continual = "continual"
    theory_dynamics = "theory_dynamics"
    theory_generalization = "theory_generalization"
    learning_theory = "learning_theory"
    hyperparameter_transfer = "hyperparameter_transfer"
    hyperparameter_optimization = "hyperparameter_optimization"
    scaling_laws = "scaling_laws"
    survey = "survey"
    other = "other"


FAMILY_TITLES: dict[str, str] = {
    "optimizer": "Optimizers",
    "loss": "Losses",
    "regularizer": "Regularizers",
    "pruning": "Pruning and sparsity",
    "quantization": "Quantization and compression",
    "data_selection": "Data pruning and selection",
    "generative": "Diffusion and generative models",
    "guidance": "Guidance",
    "unlearning": "Unlearning",
    "robustness": "Robustness",
    "noisy_labels": "Noisy labels",
    "self_supervised": "Self-supervised and contrastive",
    "distillation": "Distillation",
    "architecture": "Architectures and layers",
    "nas": "Neural architecture search",
    "operator_learning": "Operator learning and PDEs",
    "rl": "Reinforcement learning",
    "preference_alignment": "Preference alignment",
    "federated": "Federated learning",
    "continual": "Continual learning",
    "theory_dynamics": "Theory of learning dynamics",
    "theory_generalization": "Theory of generalization",
    "learning_theory": "Learning theory",
    "hyperparameter_transfer": "Hyperparameter transfer and muP",
    "hyperparameter_optimization": "Hyperparameter optimisation",
    "scaling_laws": "Scaling laws",
    "survey": "Surveys and position papers",
    "other": "Other",
}


class Kind(str, Enum):
    """What sort of contribution the paper makes, which decides what reproducing it means."""

    method = "method"
    numeric_theory = "numeric_theory"
    theory = "theory"
    empirical_study = "empirical_study"
    survey = "survey"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """A machine-checked condition over named metrics ``arm.metric``.

    The tested value is, per seed, ``metric`` (minus ``minus`` when given: a paired difference),
    then summarised over seeds. ``op`` compares it with ``threshold``; ``within`` asks that it lie
    in ``threshold ± tolerance``.
    """

    metric: str = Field(description="`arm.metric` whose per-seed values are tested")
    minus: str | None = Field(default=None, description="`arm.metric` subtracted seed by seed")
    op: Literal[">=", "<=", "within"]
    threshold: float
    tolerance: float | None = Field(default=None, description="half-width, for op `within`")

    @field_validator("metric", "minus")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        if v is not None and not _METRIC_REF.match(v):
            raise ValueError(f"{v!r} is not a metric reference; write it as `arm.metric`")
        return v

    @model_validator(mode="after")
    def _tolerance(self) -> "Condition":
        if self.op == "within" and (self.tolerance is None or self.tolerance <= 0):
            raise ValueError("op `within` needs a positive `tolerance`")
        if self.op != "within" and self.tolerance is not None:
            raise ValueError("`tolerance` only applies to op `within`; remove it")
        return self

    def refs(self) -> list[str]:
        return [r for r in (self.metric, self.minus) if r is not None]

    def describe(self) -> str:
        lhs = self.metric if self.minus is None else f"{self.metric} − {self.minus}"
        if self.op == "within":
            return f"{lhs} within {self.threshold:g} ± {self.tolerance:g}"
        return f"{lhs} {self.op} {self.threshold:g}"


class VerdictRule(_Strict):
    """How per-seed values become a verdict.

    ``student_t`` (the default for every claim registered from now on): with mean ``m``, standard
    error ``s`` and ``n`` seeds, the two-sided Student-t interval
    ``m ± t_{(1+confidence)/2, n-1} · s`` at ``confidence`` (0.95 unless stated). An interval
    entirely satisfying the condition is *verified*, entirely violating it *refuted*, and one
    straddling the threshold *inconclusive*. It needs at least 5 seeds.
    ``interval``: the same with a fixed half-width ``k·s`` (kept for claims registered with it;
    with few seeds it is much looser than it looks: ``k = 2`` over 3 seeds is about 80%).
    ``every_seed``: every seed satisfies it -> verified; none does -> refuted; else inconclusive.
    """

    rule: Literal["student_t", "interval", "every_seed"] = "student_t"
    confidence: float | None = Field(default=None, gt=0.5, lt=1.0, description="student_t: two-sided level")
    k: float | None = Field(default=None, gt=0, description="interval: half-width in standard errors")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        rule = data.get("rule", "student_t")
        if rule == "student_t":
            if data.get("k") is not None:
                raise ValueError("`k` belongs to rule `interval`; the Student-t rule takes `confidence`")
            data.setdefault("confidence", 0.95)
        elif rule == "interval":
            if data.get("confidence") is not None:
                raise ValueError("`confidence` belongs to rule `student_t`; rule `interval` takes `k`")
            data.setdefault("k", 2.0)
        elif rule == "every_seed" and (data.get("k") is not None or data.get("confidence") is not None):
            raise ValueError("rule `every_seed` takes neither `k` nor `confidence`; remove them")
        return data

    def describe(self) -> str:
        if self.rule == "student_t":
            return f"Student-t {100 * (self.confidence or 0.95):g}% interval"
        if self.rule == "interval":
            return f"mean ± {self.k:g}·sem"
        return "every seed"


MIN_SEEDS_STUDENT_T = 5


class Superseded(_Strict):
    """A claim retired in favour of another: it stays on the page, struck through, with the reason."""

    by: str = Field(description="id of the claim that replaces it, in the same spec")
    reason: str = Field(min_length=10, description="one sentence: why it was replaced")


class Claim(_Strict):
    """One of the paper's claims, scaled down to something we can run and check."""

    id: str
    paper: str = Field(description="what the paper reports, its figures paraphrased")
    statement: str = Field(description="the scaled-down statement we test")
    condition: Condition
    requires: list[Condition] = Field(
        default_factory=list,
        description="preconditions that make the test meaningful (e.g. the baseline is below a ceiling); "
        "when one is not verified under the claim's rule, the verdict is `untestable`",
    )
    verdict_rule: VerdictRule = VerdictRule()
    superseded: Superseded | None = Field(default=None, description="set when a newer claim replaces this one")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError(f"claim id {v!r} must be snake_case")
        return v

    def registered(self) -> dict[str, Any]:
        """What may never change once a verdict is recorded: condition, preconditions and rule."""
        return self.model_dump(mode="json", include={"condition", "requires", "verdict_rule"})

    def refs(self) -> list[str]:
        return [r for c in (self.condition, *self.requires) for r in c.refs()]

    @property
    def active(self) -> bool:
        return self.superseded is None


class SmallScale(_Strict):
    """Whether the paper's central claim can be checked at small scale, offline, and how."""

    level: Literal["yes", "partial", "no"] = Field(
        description="yes: the central claim itself; partial: part of it or a proxy; no: not at small scale"
    )
    how: str = Field(min_length=3, description="one line: the scaled-down setting, or why not")


class Budget(_Strict):
    """Config overrides and seeds for one budget (the quick one, for CI)."""

    config: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] | None = None


class Reproduction(_Strict):
    """How to run the scaled-down experiment."""

    experiment: str = Field(description="`module:NAME` of the experiment's `zoo.harness.Experiment`")
    config: dict[str, Any] = Field(description="Hydra config defaults: the full budget")
    seeds: list[int] = Field(min_length=1)
    quick: Budget = Field(description="overrides for `--quick`: seconds on a 2-core CPU")
    data: list[str] = Field(default_factory=list, description="datasets under data/ it reads")
    arms: dict[str, str] = Field(description="arm name -> what it is")
    metrics: dict[str, str] = Field(description="metric name -> what it measures")
    baselines: list[str] = Field(default_factory=list, description="arms that are baselines")
    code: list[str] = Field(default_factory=list, description="extra source files it depends on")

    @field_validator("arms", "metrics")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not ID_PATTERN.match(k):
                raise ValueError(f"name {k!r} must be snake_case")
        return v

    @model_validator(mode="after")
    def _baselines(self) -> "Reproduction":
        for b in self.baselines:
            if b not in self.arms:
                raise ValueError(f"baselines: {b!r} is not one of the arms {sorted(self.arms)}")
        return self


class Spec(_Strict):
    """One paper of the catalogue."""

    id: str
    title: str = Field(description="the paper's exact title")
    family: Family
    kind: Kind
    listings: list[str] = Field(min_length=1, description="seed listings it appears in, e.g. ['000']")
    summary: str = Field(min_length=40, description="two or three sentences in our own words")
    central_claim: str = Field(description="the paper's central claim, its figures paraphrased")
    small_scale: SmallScale = Field(description="whether and how it reproduces at small scale offline")
    links: dict[str, str] = Field(default_factory=dict)
    implementation: list[str] = Field(default_factory=list, description="import paths, `module:Name`")
    usage: str | None = Field(default=None, description="a short Python example of using the implementation")
    reproduction: Reproduction | None = None
    claims: list[Claim] = Field(default_factory=list)
    related: list[str] = Field(default_factory=list, description="ids of related entries")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError(f"id {v!r} must be snake_case (lower-case letters, digits, _)")
        return v

    @field_validator("listings")
    @classmethod
    def _listings(cls, v: list[str]) -> list[str]:
        for lid in v:
            if not re.fullmatch(r"\d{3}", lid):
                raise ValueError(f"listing {lid!r} must be a three-digit listing number like '000'")
        return v

    @field_validator("implementation")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        for p in v:
            if not re.fullmatch(r"[a-zA-Z_][\w.]*:[A-Za-z_]\w*", p):
                raise ValueError(f"implementation {p!r} must be `package.module:Name`")
        return v

    @model_validator(mode="after")
    def _claims_need_metrics(self) -> "Spec":
        if self.claims and self.reproduction is None:
            raise ValueError("reproduction: claims need a `reproduction` that produces their metrics; add one")
        ids = [c.id for c in self.claims]
        if len(ids) != len(set(ids)):
            raise ValueError(f"claims: claim ids must be unique, got {ids}")
        if self.reproduction is not None:
            r = self.reproduction
            for i, c in enumerate(self.claims):
                where = [("condition", c.condition)] + [(f"requires.{j}", q) for j, q in enumerate(c.requires)]
                for field, cond in where:
                    for ref in cond.refs():
                        arm, metric = ref.split(".")
                        if arm not in r.arms or metric not in r.metrics:
                            raise ValueError(
                                f"claims.{i}.{field}: {ref!r} is not produced by the experiment; "
                                f"arms are {sorted(r.arms)}, metrics {sorted(r.metrics)}"
                            )
                if c.verdict_rule.rule == "student_t" and c.active and len(r.seeds) < MIN_SEEDS_STUDENT_T:
                    raise ValueError(
                        f"claims.{i}.verdict_rule: the Student-t rule needs at least {MIN_SEEDS_STUDENT_T} seeds "
                        f"but reproduction.seeds has {len(r.seeds)}; add seeds"
                    )
        for i, c in enumerate(self.claims):
            if c.superseded is None:
                continue
            if c.superseded.by == c.id or c.superseded.by not in ids:
                raise ValueError(
                    f"claims.{i}.superseded.by: {c.superseded.by!r} is not another claim of this spec; "
                    f"name the claim that replaces {c.id!r} (claims: {ids})"
                )
        return self

    def active_claims(self) -> list[Claim]:
        """Claims a run decides (superseded ones keep their recorded verdicts in the history)."""
        return [c for c in self.claims if c.active]

    def produced_metrics(self) -> list[str]:
        r = self.reproduction
        return [] if r is None else [f"{a}.{m}" for a in r.arms for m in r.metrics]
