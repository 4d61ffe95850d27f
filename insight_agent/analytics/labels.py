"""Propensity models from the marketer's own label: a yes/no column of the customers table
(responded to the offer, churned, bought the product) predicted from every usable attribute.

This is the most common thing a marketer has — a customer table with an outcome column and
attributes (job, balance, contract type, tenure, previous outcome …) — and needs no orders.

How a :class:`LabelModel` is made (:func:`train_label_model`):

1. **Features** from every column but the id and the label: numbers as they are (scaled for
   the linear model), dates as ages in days before the data's last date, text with few
   distinct values one-hot encoded with rare levels pooled (< 1% of rows); identifiers and
   free text (more than 50 distinct values and more than 5% of rows), contact details (name,
   email, phone, address) and constant columns are dropped with a note. Order-derived
   features (recency, frequency, spend …) join in when orders exist.
2. **Leakage guard**: a column that alone ranks the label almost perfectly (single-column
   ROC-AUC >= 0.95, out of fold) or whose name says it is known only after the outcome
   (``duration``, ``churn_date``, ``cancel…_date`` …) is reported and excluded, unless the user
   keeps it (``keep``); ``exclude`` drops any column.
3. **Model choice**: logistic regression vs HistGradientBoosting by stratified 5-fold CV
   ROC-AUC on a stratified sample (at most ``max_train`` rows), the better one refitted on all
   of it and calibrated by Platt scaling of its out-of-fold scores; probabilities clipped to
   [0.001, 0.999] — never exactly 0 or 1.
4. **Card**: the chosen model's out-of-fold ROC-AUC, PR-AUC, Brier, lift and capture by
   decile, CV spread, the comparison, drivers (permutation importance with direction) and the
   dropped / excluded columns with reasons.
5. **Reasons** per customer: the features whose value moves this customer's score most
   towards the predicted outcome, found by setting each feature to its typical value and
   measuring the change — so a reason always agrees with the model's direction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import (  # this module is imported lazily
    BaseEstimator,
    ClassifierMixin,
    OneToOneFeatureMixin,
    TransformerMixin,
)

from insight_agent.engine.metrics import PII_COLUMN
from insight_agent.errors import ConfigError, InsufficientData
from insight_agent.formatting import short_number

FORMAT_VERSION = 1
PROB_FLOOR, PROB_CEIL = 0.001, 0.999
MAX_LEVELS = 50
LEAK_AUC = 0.95
# Known only after the outcome (by name): the call that sold the deposit lasted long because
# it sold it. Matched against normalised column names.
AFTER_OUTCOME = re.compile(
    r"^(?:duration|call_duration|last_call_duration|contact_duration|churn_date|churned_at|"
    r"churn_reason|cancel\w*_(?:date|at|reason)|termination_date|end_date|closed_(?:date|at)|"
    r"refund_date|response_date|responded_at|converted_at|conversion_date|outcome_date)$"
)
POSITIVE_WORDS = ("yes", "y", "true", "t", "1", "1.0", "positive", "churned", "responded",
                  "converted", "bought", "purchased", "subscribed", "won", "success")  # fmt: skip


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


@dataclass
class FeaturePlan:
    """Which columns become features, how, and which were left out and why."""

    numeric: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # column -> reason
    reference: str | None = None  # ISO date ages are measured from

    @property
    def columns(self) -> list[str]:
        """Every input column used."""
        return [*self.numeric, *self.dates, *self.categorical]


def binary_label(values: pd.Series, positive: str | None, column: str) -> np.ndarray:
    """The label as 0/1; ``positive`` names the positive value (else yes/true/1/… or the
    rarer of two values). ConfigError when the column is not two-valued."""
    text = values.astype("string").str.strip()
    levels = sorted(text.dropna().unique().tolist())
    if len(levels) != 2:
        shown = ", ".join(levels[:8]) + (" …" if len(levels) > 8 else "")
        raise ConfigError(
            f"label column '{column}' must have exactly two values, found {len(levels)}: {shown}",
            hint="choose a yes/no column, or say which value is positive with --positive",
        )
    if positive is not None:
        match = [lv for lv in levels if lv.lower() == str(positive).strip().lower()]
        if not match:
            raise ConfigError(
                f"label column '{column}' has no value '{positive}'",
                hint=f"its values: {', '.join(levels)}",
            )
        chosen = match[0]
    else:
        known = [lv for lv in levels if lv.lower() in POSITIVE_WORDS]
        if len(known) == 1:
            chosen = known[0]
        else:  # the rarer value is the event being predicted
            counts = text.value_counts()
            chosen = str(counts.idxmin())
    y = (text == chosen).fillna(False).to_numpy(dtype=bool)
    keep = text.notna().to_numpy()
    out = np.where(keep, y.astype(float), np.nan)
    return out


def plan_features(
    frame: pd.DataFrame,
    *,
    label: str,
    exclude: list[str] | None = None,
    keep: list[str] | None = None,
) -> FeaturePlan:
    """Sort the customer table's columns into numeric / date / categorical features and
    dropped ones (with the reason)."""
    plan = FeaturePlan()
    exclude = {c.lower() for c in exclude or []}
    keep = {c.lower() for c in keep or []}
    n = len(frame)
    dates_seen: list[pd.Series] = []
    for col in frame.columns:
        if col in ("customer_id", label) or col.startswith("_"):
            continue
        low = col.lower()
        if low in exclude:
            plan.dropped[col] = "excluded in the settings"
            continue
        s = frame[col]
        if low not in keep and PII_COLUMN.search(col) and not pd.api.types.is_numeric_dtype(s):
            plan.dropped[col] = "contact detail (never a feature)"
            continue
        if low not in keep and AFTER_OUTCOME.match(_norm(col)):
            plan.dropped[col] = "known only after the outcome (by its name); keep it to use it"
            continue
        nonnull = s.dropna()
        levels = nonnull.nunique()
        if levels <= 1:
            plan.dropped[col] = "constant"
            continue
        if low not in keep and _row_number(col, nonnull, levels):
            plan.dropped[col] = (
                "a row or record number (its order says nothing about the customer); keep it "
                "to use it"
            )
            continue
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            plan.numeric.append(col)
        elif pd.api.types.is_datetime64_any_dtype(s):
            plan.dates.append(col)
            dates_seen.append(s)
        else:
            if levels > MAX_LEVELS and _numeric_share(nonnull) >= 0.98:
                plan.numeric.append(col)
            elif levels > MAX_LEVELS and levels > 0.05 * n:
                plan.dropped[col] = (
                    f"{levels:,} distinct values (an id or free text); map it to fewer values "
                    "to use it"
                )
            else:
                plan.categorical.append(col)
    if dates_seen:
        plan.reference = str(max(s.max() for s in dates_seen).date())
    return plan


def _row_number(col: str, values: pd.Series, levels: int) -> bool:
    """A row or record number: named like one ("Seq#", "row", "index"), or whole numbers
    that are all different and run without gaps (1, 2, 3 … in any order)."""
    from insight_agent.engine.metrics import ROW_NUMBER

    if ROW_NUMBER.match(_norm(col)):
        return True
    if not pd.api.types.is_integer_dtype(values) or levels != len(values) or levels < 50:
        return False
    return int(values.max()) - int(values.min()) + 1 == levels


def _numeric_share(values: pd.Series) -> float:
    """Share of ``values`` that read as numbers (each distinct value is parsed once)."""
    counts = values.value_counts(dropna=True)
    parsed = pd.to_numeric(counts.index.to_series(), errors="coerce")
    return float(counts[parsed.notna().to_numpy()].sum() / max(len(values), 1))


def _matrix(frame: pd.DataFrame, plan: FeaturePlan) -> pd.DataFrame:
    """The raw feature frame: numbers as float, dates as days before the reference, text."""
    out = pd.DataFrame(index=frame.index)
    for col in plan.numeric:
        out[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    ref = pd.Timestamp(plan.reference) if plan.reference else None
    for col in plan.dates:
        out[f"{col}_age_days"] = (ref - pd.to_datetime(frame[col])).dt.days.astype(float)
    for col in plan.categorical:
        out[col] = frame[col].astype("string").fillna("(missing)").astype(object)
    return out


class LevelCodes(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Text columns as integer codes of their levels in sorted order (unseen levels: -1).

    Placed before the one-hot encoder it gives the same columns in the same order as
    encoding the text itself (levels sorted, counts for rare-level pooling, unseen levels
    pooled or ignored), but scikit-learn counts and checks integers in numpy instead of
    Python objects one by one — most of the build time at 20k rows."""

    def fit(self, X: Any, y: Any = None) -> LevelCodes:
        """Learn each column's sorted levels (missing values are not a level)."""
        frame = pd.DataFrame(X)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.levels_ = [sorted(set(pd.unique(frame.iloc[:, i].dropna()))) for i in
                        range(frame.shape[1])]  # fmt: skip
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Codes per cell: the level's position in ``levels_``, -1 when unseen or missing."""
        frame = pd.DataFrame(X)
        out = np.empty(frame.shape, dtype=np.int64)
        for i, levels in enumerate(self.levels_):
            out[:, i] = pd.Index(levels, dtype=object).get_indexer(frame.iloc[:, i].astype(object))
        return out


def _preprocessor(X: pd.DataFrame, categorical: list[str], scale: bool) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in X.columns if c not in categorical]
    steps = [SimpleImputer(strategy="median", add_indicator=True)]
    if scale:
        steps.append(StandardScaler())
    onehot = OneHotEncoder(
        handle_unknown="infrequent_if_exist", min_frequency=0.01, sparse_output=False
    )
    return ColumnTransformer(
        [
            ("num", make_pipeline(*steps), numeric),
            ("cat", make_pipeline(LevelCodes(), onehot), categorical),
        ],
        verbose_feature_names_out=False,
    )


def _families(X: pd.DataFrame, categorical: list[str], seed: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return {
        "logistic_regression": make_pipeline(
            _preprocessor(X, categorical, scale=True), LogisticRegression(max_iter=2000, C=1.0)
        ),
        "hist_gradient_boosting": make_pipeline(
            _preprocessor(X, categorical, scale=False),
            HistGradientBoostingClassifier(
                max_iter=100, learning_rate=0.1, early_stopping=False, random_state=seed
            ),
        ),
    }


def _single_column_auc(x: pd.Series, y: np.ndarray, seed: int) -> float:
    """How well one column alone ranks the label (out of fold for text columns)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    if x.dtype == object:
        score = np.zeros(len(y))
        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        for fit, held in folds.split(np.zeros(len(y)), y):
            means = pd.Series(y[fit]).groupby(x.iloc[fit].to_numpy()).mean()
            score[held] = x.iloc[held].map(means).fillna(y[fit].mean()).to_numpy()
    else:
        score = x.fillna(x.median()).to_numpy()
    if np.unique(score).size < 2:
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1 - auc)


class PlattScaler:
    """Maps raw scores to probabilities with a logistic fit on their log-odds."""

    def fit(self, scores: np.ndarray, y: np.ndarray) -> PlattScaler:
        """Fit on out-of-fold ``scores`` and labels ``y``."""
        from sklearn.linear_model import LogisticRegression

        self.model_ = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(scores), y)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for ``scores``."""
        return self.model_.predict_proba(_logit(scores))[:, 1]


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q)).reshape(-1, 1)


class Calibrated(ClassifierMixin, BaseEstimator):
    """A fitted pipeline whose scores pass through a calibrator fitted on out-of-fold
    scores: a scikit-learn classifier (permutation importance, joblib)."""

    def __init__(self, base: Any = None, calibrator: Any = None) -> None:
        self.base = base
        self.calibrator = calibrator

    def fit(self, X: Any = None, y: Any = None) -> Calibrated:
        """Both parts arrive fitted; this only sets ``classes_``."""
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated [P(0), P(1)] per row, P(1) within [0.001, 0.999]."""
        p = self.calibrator.predict(self.base.predict_proba(X)[:, 1])
        p = np.clip(p, PROB_FLOOR, PROB_CEIL)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where P(1) >= 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


@dataclass
class LabelModel:
    """A fitted label model: what it predicts, from which columns, and how well.

    Saved with joblib; ``format_version`` and ``versions`` say what wrote it. Score new
    customers with :meth:`predict_proba` (a customers-table frame; missing columns are
    treated as missing values).
    """

    label: str
    positive: str
    family: str
    plan: FeaturePlan
    pipeline_: Any
    typical_: dict[str, Any]
    metrics: dict[str, Any]
    comparison: dict[str, dict[str, float]]
    drivers: list[dict[str, Any]]
    leakage: list[dict[str, Any]]
    threshold: float
    n_train: int
    format_version: int = FORMAT_VERSION
    versions: dict[str, str] = field(default_factory=dict)
    # The training customers' calibrated out-of-fold probabilities (customer_id -> p): what
    # the build scores them with, since the final model has seen their labels. Not saved.
    oof_: Any = None

    @property
    def target_name(self) -> str:
        """The target name used for files and columns: ``label:<column>``."""
        return f"label:{self.label}"

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input frame for customers in ``frame`` (same columns as in training)."""
        missing = [c for c in self.plan.columns if c not in frame.columns]
        if missing:
            frame = frame.assign(**{c: np.nan for c in missing})
        return _matrix(frame, self.plan)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(label is positive) per row of ``frame``, clipped to [0.001, 0.999]."""
        p = self.pipeline_.predict_proba(self.features(frame))[:, 1]
        return np.clip(p, PROB_FLOOR, PROB_CEIL)

    def reasons(self, frame: pd.DataFrame, n: int = 3, batch: int = 50_000) -> list[list[str]]:
        """Per row, up to ``n`` reasons: the features whose value moves the score most
        towards the predicted side (positive when p >= threshold), by setting each to its
        typical value (median / most common) and measuring the change."""
        return self.explain(frame, n, batch)[1]

    def explain(
        self, frame: pd.DataFrame, n: int = 3, batch: int = 50_000
    ) -> tuple[np.ndarray, list[list[str]]]:
        """P(label is positive) and up to ``n`` reasons per row of ``frame`` (see
        :meth:`reasons`), in batches of ``batch`` rows so memory stays flat.

        The pipeline's preprocessing is column-wise, so each batch is transformed once and a
        feature set to its typical value only rewrites that feature's own output columns
        (its number and missing flag, or its one-hot block) before the classifier predicts
        again — the same probabilities as transforming a changed copy, at a fraction of the
        cost. Pipelines of another shape take the general route (:meth:`_explain_slow`)."""
        X = self.features(frame)
        names = [
            c
            for c in ([d["feature"] for d in self.drivers] or list(self.typical_))
            if c in X and c in self.typical_
        ]  # the drivers: a feature that barely moves the model is never a reason
        layout = _output_columns(self.pipeline_, list(X.columns)) if n else None
        p_out = np.empty(len(X))
        out: list[list[str]] = []
        for start in range(0, len(X), batch):
            part = X.iloc[start : start + batch]
            if not n:
                p_out[start : start + len(part)] = self.pipeline_.predict_proba(part)[:, 1]
                out += [[] for _ in range(len(part))]
                continue
            if layout is None:
                p, effects = self._effects_slow(part, names)
            else:
                p, effects = self._effects(part, names, layout)
            p_out[start : start + len(part)] = p
            out += self._reason_lists(part, names, effects, n)
        return np.clip(p_out, PROB_FLOOR, PROB_CEIL), out

    def _effects(
        self, part: pd.DataFrame, names: list[str], layout: dict[str, list[int]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """P(1) per row and, per candidate feature, how far its value pushes the score
        towards the predicted side (p minus p with the feature at its typical value)."""
        calibrated = self.pipeline_
        transform, classifier = calibrated.base[0], calibrated.base[-1]
        typical = pd.DataFrame([{c: self.typical_[c] for c in part.columns}]).astype(
            part.dtypes.to_dict()
        )
        z_typical = np.asarray(transform.transform(typical))[0]
        Z = np.asarray(transform.transform(part))

        def prob(matrix: np.ndarray) -> np.ndarray:
            q = calibrated.calibrator.predict(classifier.predict_proba(matrix)[:, 1])
            return np.clip(q, PROB_FLOOR, PROB_CEIL)

        p = prob(Z)
        toward = np.where(p >= self.threshold, 1.0, -1.0)
        M = np.empty((len(part), len(names)))
        for j, col in enumerate(names):
            cols = layout[col]
            saved = Z[:, cols].copy()
            Z[:, cols] = z_typical[cols]
            M[:, j] = (p - prob(Z)) * toward  # > 0: this value pushes towards the call
            Z[:, cols] = saved
        return p, M

    def _effects_slow(self, part: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_effects` for any pipeline: one prediction over a changed copy per feature."""
        p = self.pipeline_.predict_proba(part)[:, 1]
        toward = np.where(p >= self.threshold, 1.0, -1.0)
        M = np.empty((len(part), len(names)))
        for j, col in enumerate(names):
            changed = part.copy()
            changed[col] = self.typical_[col]
            M[:, j] = (p - self.pipeline_.predict_proba(changed)[:, 1]) * toward
        return p, M

    def _reason_lists(
        self, part: pd.DataFrame, names: list[str], M: np.ndarray, n: int
    ) -> list[list[str]]:
        """Per row, the texts of the (up to ``n``) features that push it most, strongest
        first; a push of 0.005 or less is no reason. Each distinct value is worded once."""
        if not names:
            return [[] for _ in range(len(part))]
        order = np.argsort(-M, axis=1)[:, :n]
        strong = np.cumprod(np.take_along_axis(M, order, axis=1) > 0.005, axis=1).astype(bool)
        texts = np.full(order.shape, None, dtype=object)
        for j, col in enumerate(names):
            where = (order == j) & strong
            if not where.any():
                continue
            rows = where.any(axis=1)
            values = part[col].to_numpy()[rows]  # row access by position: fast
            codes, uniques = pd.factorize(values, use_na_sentinel=False)
            worded = np.array([_reason(col, v, self.typical_[col]) for v in uniques], dtype=object)
            per_row = worded[codes]
            full = np.full(len(part), None, dtype=object)
            full[rows] = per_row
            texts[where] = full[np.nonzero(where)[0]]
        counts = strong.sum(axis=1).tolist()
        return [row[:k] for row, k in zip(texts.tolist(), counts, strict=True)]


def _output_columns(calibrated: Any, columns: list[str]) -> dict[str, list[int]] | None:
    """For each input column of a fitted ``Calibrated(Pipeline(ColumnTransformer(num, cat),
    classifier))``, the positions of the transformed columns computed from it alone; None
    when the pipeline has another shape (or the positions do not add up)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    base = getattr(calibrated, "base", None)
    if not isinstance(base, Pipeline) or len(base.steps) != 2:
        return None
    transform = base[0]
    if not isinstance(transform, ColumnTransformer) or transform.sparse_output_:
        return None
    layout: dict[str, list[int]] = {c: [] for c in columns}
    covered = 0
    for name, step, cols in transform.transformers_:
        if step == "drop" or len(cols) == 0:
            continue
        cols = list(cols)
        if any(c not in layout for c in cols):
            return None
        where = transform.output_indices_[name]
        pos = where.start
        steps = list(step) if isinstance(step, Pipeline) else [step]
        if isinstance(steps[0], SimpleImputer) and all(
            isinstance(later, StandardScaler) for later in steps[1:]
        ):
            imputer = steps[0]  # the scaler keeps one column per column
            kept = range(len(cols))
            if not imputer.keep_empty_features:
                kept = [i for i, v in enumerate(imputer.statistics_) if not pd.isna(v)]
            for i in kept:
                layout[cols[i]].append(pos)
                pos += 1
            if imputer.indicator_ is not None:
                for i in imputer.indicator_.features_:
                    layout[cols[i]].append(pos)
                    pos += 1
        elif (
            isinstance(steps[-1], OneHotEncoder)
            and steps[-1].drop is None
            and all(isinstance(first, LevelCodes) for first in steps[:-1])
        ):
            onehot = steps[-1]  # one block of columns per column
            for i, levels in enumerate(onehot.categories_):
                rare = onehot.infrequent_categories_[i]
                width = len(levels) - (0 if rare is None else len(rare) - 1)
                layout[cols[i]].extend(range(pos, pos + width))
                pos += width
        else:
            return None
        if pos != where.stop:
            return None
        covered += where.stop - where.start
    if covered != sum(len(v) for v in layout.values()):
        return None
    return layout


def _reason(col: str, value: Any, typical: Any) -> str:
    label = col.replace("_", " ")
    if isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool):
        if pd.isna(value):
            return f"{label} unknown"
        return f"{label} {short_number(value)} (typical {short_number(typical)})"
    return f"{label} = {value}"


def _sample(y: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Indices of a stratified sample of at most ``max_rows`` rows (all when fewer)."""
    idx = np.arange(len(y))
    if len(y) <= max_rows:
        return idx
    from sklearn.model_selection import train_test_split

    take, _ = train_test_split(idx, train_size=max_rows, stratify=y, random_state=seed)
    return np.sort(take)


def train_label_model(
    customers: pd.DataFrame,
    label: str,
    *,
    positive: str | None = None,
    exclude: list[str] | None = None,
    keep: list[str] | None = None,
    extra_features: pd.DataFrame | None = None,
    seed: int = 0,
    max_train: int = 20_000,
    folds: int = 5,
) -> LabelModel:
    """Train, compare, calibrate and card a model of ``label`` (a customers-table column).

    ``extra_features``: order-derived features indexed by customer_id (joined when given).
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if label not in customers.columns:
        cols = ", ".join(c for c in customers.columns if c != "customer_id")
        raise ConfigError(f"no column '{label}' in the customers table", hint=f"columns: {cols}")
    frame = customers.reset_index(drop=True)
    if extra_features is not None and "customer_id" in frame:
        extra = extra_features.add_prefix("orders_")
        frame = frame.join(extra, on="customer_id")
    y_all = binary_label(frame[label], positive, label)
    known = ~np.isnan(y_all)
    frame, y = frame[known].reset_index(drop=True), y_all[known].astype(int)
    positives = int(y.sum())
    if positives < 20 or len(y) - positives < 20:
        raise InsufficientData(
            f"label '{label}' has {positives:,} positive and {len(y) - positives:,} negative "
            "customers; at least 20 of each are needed"
        )
    plan = plan_features(frame, label=label, exclude=exclude, keep=keep)
    X_all = _matrix(frame, plan)
    pos_value = next(
        str(v) for v, t in zip(frame[label].astype("string").str.strip(), y, strict=True) if t
    )
    rows = _sample(y, max_train, seed)
    X, yy = X_all.iloc[rows].reset_index(drop=True), y[rows]
    # leakage guard: a column that alone ranks the label almost perfectly
    keep_set = {c.lower() for c in keep or []}
    leakage = []
    for col in list(X.columns):
        source = col.removesuffix("_age_days")
        auc = _single_column_auc(X[col], yy, seed)
        if auc >= LEAK_AUC and source.lower() not in keep_set:
            leakage.append({"column": source, "auc_alone": round(auc, 3),
                            "action": "excluded; keep it with --keep if it is known before the "
                                      "outcome"})  # fmt: skip
            X = X.drop(columns=col)
            X_all = X_all.drop(columns=col)
            for group in (plan.numeric, plan.dates, plan.categorical):
                if source in group:
                    group.remove(source)
            plan.dropped[source] = f"leaks the label (ROC-AUC {auc:.3f} alone)"
    for col, reason in plan.dropped.items():
        if "after the outcome" in reason:
            leakage.append({"column": col, "auc_alone": None, "action": reason})
    if X.shape[1] == 0:
        raise InsufficientData(f"no usable feature columns to predict '{label}'")
    categorical = [c for c in plan.categorical if c in X.columns]
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    from sklearn.metrics import roc_auc_score

    comparison: dict[str, dict[str, float]] = {}
    oof: dict[str, np.ndarray] = {}
    for name, est in _families(X, categorical, seed).items():
        p = cross_val_predict(est, X, yy, cv=cv, method="predict_proba")[:, 1]
        fold_aucs = [float(roc_auc_score(yy[h], p[h])) for _, h in cv.split(X, yy)]
        comparison[name] = {
            "roc_auc": round(float(np.mean(fold_aucs)), 3),
            "cv_std": round(float(np.std(fold_aucs)), 3),
        }
        oof[name] = p
    family = max(comparison, key=lambda k: (comparison[k]["roc_auc"], k))
    # Calibration on the chosen family's out-of-fold scores (monotone: the ranking and ROC-AUC
    # stay those of cross-validation), then one refit on every training row.
    # Platt scaling on the log-odds: smooth, so a handful of positives in the top score bin
    # does not become "probability 1.0" as isotonic steps made it.
    calibrator = PlattScaler().fit(oof[family], yy)
    p_cal = np.clip(calibrator.predict(oof[family]), PROB_FLOOR, PROB_CEIL)
    from insight_agent.analytics.propensity import _best_threshold, evaluate

    threshold = _best_threshold(yy, p_cal)
    metrics = evaluate(yy, p_cal, threshold)
    metrics["cv_roc_auc_mean"] = comparison[family]["roc_auc"]
    metrics["cv_roc_auc_std"] = comparison[family]["cv_std"]
    metrics["cv_folds"] = folds
    metrics["eval_window"] = f"{folds}-fold cross-validation (out of fold)"
    fitted = clone(_families(X, categorical, seed)[family]).fit(X, yy)
    calibrated = Calibrated(fitted, calibrator).fit()
    typical: dict[str, Any] = {}
    for col in X.columns:
        typical[col] = X[col].mode().iloc[0] if X[col].dtype == object else float(X[col].median())
    model = LabelModel(
        label=label,
        positive=pos_value,
        family=family,
        plan=plan,
        pipeline_=calibrated,
        typical_=typical,
        metrics=metrics,
        comparison=comparison,
        drivers=[],
        leakage=leakage,
        threshold=threshold,
        n_train=len(yy),
    )
    model.drivers = _drivers(model, X, yy, seed)
    if "customer_id" in frame.columns:
        ids = frame["customer_id"].iloc[rows].astype("string").to_numpy()
        model.oof_ = pd.Series(p_cal, index=ids)
    from insight_agent.analytics.artifacts import library_versions

    model.versions = library_versions()
    return model


def _drivers(model: LabelModel, X: pd.DataFrame, y: np.ndarray, seed: int) -> list[dict]:
    """Permutation importance (ROC-AUC drop) on at most 5,000 rows, with each feature's
    direction (how the mean score moves between its low and high values, or its best level)."""
    from sklearn.inspection import permutation_importance

    rows = _sample(y, 5000, seed)
    Xs, ys = X.iloc[rows], y[rows]
    result = permutation_importance(
        model.pipeline_, Xs, ys, scoring="roc_auc", n_repeats=3, random_state=seed
    )
    p = model.pipeline_.predict_proba(Xs)[:, 1]
    out = []
    for i in np.argsort(-result.importances_mean)[:8]:
        col = Xs.columns[i]
        imp = float(result.importances_mean[i])
        if imp <= 0.001:
            continue
        x = Xs[col]
        if x.dtype == object:
            means = pd.Series(p).groupby(x.to_numpy()).mean()
            direction = f"highest for {col} = {means.idxmax()}"
        else:
            # rank correlation, not above vs below the median: a count column that is mostly
            # 0 (ArtBks) has nothing below its median, and that empty mean read as "less"
            values = pd.to_numeric(x, errors="coerce").reset_index(drop=True)
            corr = values.corr(pd.Series(p), method="spearman") if values.nunique() > 1 else 0.0
            corr = 0.0 if pd.isna(corr) else float(corr)
            direction = "higher → more likely" if corr >= 0 else "higher → less likely"
        out.append(
            {
                "feature": col,
                "label": col.replace("_", " "),
                "importance": round(imp, 4),
                "direction": direction,
            }
        )
    return out


def label_card(model: LabelModel) -> dict[str, Any]:
    """The model card (same shape as the other targets' cards)."""
    return {
        "target": model.target_name,
        "label": model.label,
        "positive": model.positive,
        "meaning": f"{model.label} = {model.positive} (the customers table's own label)",
        "horizon_days": None,
        "family": model.family,
        "comparison": model.comparison,
        "metrics": model.metrics,
        "drivers": model.drivers,
        "n_features": len(model.plan.columns),
        "features": {
            "numeric": model.plan.numeric,
            "dates": model.plan.dates,
            "categorical": model.plan.categorical,
        },
        "dropped_columns": model.plan.dropped,
        "leakage": model.leakage,
        "params": {"threshold": round(model.threshold, 3), "n_train": model.n_train},
        "scored_at": model.plan.reference,
        # the customers table's own outcome: customers who already have it are not prospects
        # (audiences leave them out); a label derived from campaigns sets this to False
        "own_label": True,
    }


def score_label(model: LabelModel, customers: pd.DataFrame, n_reasons: int = 3) -> pd.DataFrame:
    """probability, decile (1 = highest) and reasons for every row of ``customers``.

    Customers the model was trained on get their out-of-fold probability (``model.oof_``):
    the final model has seen their labels, and its own scores of them would put the known
    positives first (on the Caravan data, a ROC-AUC of 0.99 in-sample against 0.73 out of
    fold), which is a list of who already said yes, not of who is likely to."""
    if n_reasons:
        p, reasons = model.explain(customers, n_reasons)
    else:
        p, reasons = model.predict_proba(customers), [[]] * len(customers)
    if model.oof_ is not None and "customer_id" in customers.columns:
        ids = customers["customer_id"].astype("string")
        held = ids.map(model.oof_).to_numpy(dtype=float, na_value=np.nan)
        p = np.where(np.isnan(held), p, held)
    ranks = pd.Series(p).rank(method="first", ascending=False)
    decile = np.ceil(ranks / len(p) * 10).clip(1, 10).astype(int)
    out = pd.DataFrame(
        {"probability": np.round(np.clip(p, PROB_FLOOR, PROB_CEIL), 4), "decile": decile.values},
        index=customers.index,
    )
    out["probability"] = out["probability"].clip(PROB_FLOOR, PROB_CEIL)
    out["reasons"] = reasons
    return out


__all__ = [
    "FeaturePlan",
    "LabelModel",
    "binary_label",
    "label_card",
    "plan_features",
    "score_label",
    "train_label_model",
]
