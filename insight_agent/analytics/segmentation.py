"""Customer segmentation: k-means on log-scaled behaviour, RFM scores, names and rules.

* Features: the behavioural columns of :data:`features.SEGMENT_FEATURES`, log1p-transformed
  (spend and counts are heavily skewed) and standardised.
* k: chosen by silhouette on a sample (default range 3–8) unless forced; KMeans with fixed
  seeds (MiniBatchKMeans above ``minibatch_above`` customers) so segments are stable. Above
  ``K_CHOICE_SAMPLE`` customers the candidate k are fitted on a sample of that many and only
  the chosen k on more: everyone up to ``FIT_SAMPLE`` customers, else a sample of that many,
  and every customer is then assigned to its nearest centre in batches.
* "One segment" check: the best silhouette is compared with that of k-means on a Gaussian with
  the same mean and covariance; data that clusters no better than a single blob is refused with
  a clear message instead of being cut into arbitrary pieces.
* Segments get stable ids ordered by revenue (S1 = most revenue), a plain-English name derived
  from how the segment differs from everyone else, and human-readable rules from a shallow
  decision tree trained to reproduce the segments (with its fidelity).
* Names say the lifecycle first when recency and frequency say it: a segment whose median
  customer has one order is "one-time buyers"; one whose median recency is far beyond its
  purchase cycle is "lapsed" — never "steady" or "loyal" (see :func:`_names`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from insight_agent.analytics.features import SEGMENT_FEATURES
from insight_agent.errors import InsufficientData

MIN_CUSTOMERS = 20
SILHOUETTE_SAMPLE = 5000
# Above this many customers, k is chosen on a sample of them (fixed seed) and only the chosen
# k is fitted on everyone: six fits on every customer were a third of the segments stage.
K_CHOICE_SAMPLE = 50_000
# Above this many customers the chosen k is fitted on a sample of this many and everyone is
# assigned to the nearest of its centres (``predict``, a batch at a time), and the rules' tree
# is grown on a sample of this many (its leaves then counted over everyone): at 2M customers
# the full mini-batch fit was 18 s and the tree 5 s of the 47 s stage, growing linearly.
FIT_SAMPLE = 500_000
ASSIGN_BATCH = 1_000_000
ONE_SEGMENT_MARGIN = 0.05  # best silhouette must beat the single-Gaussian reference by this
# Lapsed: the median customer's last order is this many purchase cycles ago. A customer buying
# at a steady (Poisson) rate goes three mean gaps without an order 5% of the time (e^-3).
LAPSED_CYCLES = 3.0

LABELS = {
    "recency_days": ("last order", "days ago"),
    "frequency": ("orders", ""),
    "monetary_total": ("total spend", ""),
    "avg_order_value": ("average order", ""),
    "tenure_days": ("customer for", "days"),
    "spend_90d": ("spend in last 90 days", ""),
    "mean_gap_days": ("typical gap between orders", "days"),
}
MONEY = {"monetary_total", "avg_order_value", "spend_90d"}


@dataclass
class SegmentationResult:
    """Fitted segmentation. ``labels`` maps customer_id to segment id ("S1", "S2", ...)."""

    labels: pd.Series
    names: dict[str, str]
    profiles: pd.DataFrame  # one row per segment id, sorted by revenue share
    rules: dict[str, list[dict[str, Any]]]
    tree_fidelity: float
    k: int
    silhouette: dict[int, float]
    reference_silhouette: float | None
    rfm: pd.DataFrame  # per customer: R, F, M (1-5) and rfm code
    features: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    model: Any = None  # (scaler, kmeans) for assigning new customers
    center_order: list[int] = field(default_factory=list)

    def name_of(self, segment_id: str) -> str:
        """Human name of a segment id."""
        return self.names[segment_id]


def _prepare(X: pd.DataFrame, features: list[str]) -> np.ndarray:
    return np.log1p(X[features].clip(lower=0).to_numpy(dtype=float))


def segment_customers(
    X: pd.DataFrame,
    *,
    k: int | None = None,
    k_range: tuple[int, int] = (3, 8),
    seed: int = 0,
    minibatch_above: int = 200_000,
    category_spend: pd.Series | None = None,
    revenue: pd.Series | None = None,
    spend_by_segment: Callable[[pd.Series], pd.DataFrame | None] | None = None,
) -> SegmentationResult:
    """Segment the customers in feature frame ``X`` (index customer_id).

    ``category_spend`` (spend indexed by customer_id and category, as
    :func:`insight_agent.analytics.features.category_spend` gives it) gives each segment's top
    categories; or ``spend_by_segment``, which sums it per segment itself (given each
    customer's segment, it returns columns ``segment``, ``item``, ``amount``: the engine's
    query, so that the per-customer spend, ~45M rows at 10M customers, is never in memory);
    ``revenue`` (per customer) its revenue share (default: ``monetary_total``).
    Raises :class:`InsufficientData` for too few customers, features without variation, or
    data with no segment structure.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.preprocessing import StandardScaler

    features = [f for f in SEGMENT_FEATURES if f in X]
    buyers = X[X["frequency"] > 0] if "frequency" in X else X
    n = len(buyers)
    if n < MIN_CUSTOMERS:
        raise InsufficientData(
            f"segmentation needs at least {MIN_CUSTOMERS} customers with orders; found {n}"
        )
    raw = _prepare(buyers, features)
    spread = raw.std(axis=0)
    varying = spread > 1e-9
    if not varying.any():
        raise InsufficientData(
            "every customer has the same recency, frequency and spend: there is nothing to "
            "segment on"
        )
    features = [f for f, v in zip(features, varying, strict=True) if v]
    raw = raw[:, varying]
    scaler = StandardScaler().fit(raw)
    Z = scaler.transform(raw)
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, size=min(n, SILHOUETTE_SAMPLE), replace=False)

    def fit(data: np.ndarray, kk: int, n_init: int | None = None) -> Any:
        if len(data) > minibatch_above:
            return MiniBatchKMeans(n_clusters=kk, random_state=seed, n_init=5, batch_size=4096).fit(
                data
            )
        inits = n_init or (10 if len(data) <= 50_000 else 4)
        return KMeans(n_clusters=kk, random_state=seed, n_init=inits).fit(data)

    lo, hi = k_range
    candidates = [k] if k else list(range(lo, min(hi, n - 1) + 1))
    if not candidates or (k is not None and not 2 <= k < n):
        raise InsufficientData(f"cannot make {k} segments from {n} customers")
    # many customers: each candidate k on a sample (the silhouette is read on a sample of
    # that), then the chosen k on everyone; up to K_CHOICE_SAMPLE, exactly as before
    pick, pick_sample = Z, sample
    if k is None and n > K_CHOICE_SAMPLE:
        pick = Z[np.sort(rng.choice(n, size=K_CHOICE_SAMPLE, replace=False))]
        pick_sample = rng.choice(len(pick), size=min(len(pick), SILHOUETTE_SAMPLE), replace=False)
    elif k is not None and n > FIT_SAMPLE:  # a forced k: fitted once, on the fit sample
        pick = Z[np.sort(rng.choice(n, size=FIT_SAMPLE, replace=False))]
        pick_sample = rng.choice(len(pick), size=min(len(pick), SILHOUETTE_SAMPLE), replace=False)
    scores: dict[int, float] = {}
    models: dict[int, Any] = {}
    for kk in candidates:
        models[kk] = fit(pick, kk, None if pick is Z else 4)
    # every candidate is read on the same sample rows: their distances once for all
    rows = pick[pick_sample]
    found = _silhouettes(rows, [models[kk].labels_[pick_sample] for kk in candidates])
    scores.update(zip(candidates, found, strict=True))
    best_k = k or max(scores, key=lambda kk: (round(scores[kk], 3), -kk))
    if pick is not Z and k is None:
        if n > FIT_SAMPLE:
            models[best_k] = fit(Z[np.sort(rng.choice(n, size=FIT_SAMPLE, replace=False))], best_k)
        else:
            models[best_k] = fit(Z, best_k)
    reference = None
    if k is None:
        reference = _reference_silhouette(pick[pick_sample], best_k, seed)
        if scores[best_k] < reference + ONE_SEGMENT_MARGIN:
            raise InsufficientData(
                f"no distinct segments: the customers cluster no better than a single group "
                f"(silhouette {scores[best_k]:.2f} vs {reference:.2f} for one Gaussian blob); "
                "pass --k to force a split"
            )
    model = models[best_k]

    # Stable ids: S1 = most revenue. Centres are sorted so the same data gives the same ids.
    labels_raw = model.labels_
    if len(labels_raw) != n:  # fitted on a sample: everyone goes to the nearest centre
        labels_raw = np.concatenate(
            [model.predict(Z[lo : lo + ASSIGN_BATCH]) for lo in range(0, n, ASSIGN_BATCH)]
        )
    rev = (
        revenue.reindex(buyers.index).fillna(0.0)
        if revenue is not None
        else buyers["monetary_total"]
    )
    totals = pd.Series(rev.to_numpy()).groupby(labels_raw).sum()
    order = sorted(range(best_k), key=lambda c: (-totals.get(c, 0.0), c))
    remap = {old: f"S{i + 1}" for i, old in enumerate(order)}
    names_of = np.array([remap[c] for c in range(best_k)], dtype=object)
    labels = pd.Series(names_of[labels_raw], index=buyers.index, name="segment")
    labels = _add_non_buyers(X, labels)

    if spend_by_segment is not None:
        category_spend = spend_by_segment(labels)
    profiles = _profiles(X, labels, features, category_spend, revenue)
    names, stages = _names_and_stages(profiles, cycle_days=purchase_cycle(X))
    profiles.insert(0, "lifecycle", [stages[s] for s in profiles.index])
    profiles.insert(0, "name", [names[s] for s in profiles.index])
    same_rows = labels.index.equals(X.index)  # the usual case: no lookup of every id
    rules, fidelity = _rules(X if same_rows else X.loc[labels.index], labels, features)
    return SegmentationResult(
        labels=labels,
        names=names,
        profiles=profiles,
        rules=rules,
        tree_fidelity=fidelity,
        k=best_k + (1 if (labels == "S0").any() else 0),
        silhouette=scores,
        reference_silhouette=reference,
        rfm=rfm_scores(X),
        features=features,
        params={
            "k": k,
            "k_range": list(k_range),
            "seed": seed,
            "minibatch": n > minibatch_above,
            "log1p": True,
            "scaled": True,
        },
        model=(scaler, model),
        center_order=order,
    )


def _silhouette(Z: np.ndarray, labels: np.ndarray) -> float:
    return _silhouettes(Z, [labels])[0]


def _silhouettes(Z: np.ndarray, labellings: list[np.ndarray], chunk: int = 512) -> list[float]:
    """Mean silhouette of each labelling of the rows ``Z`` (-1 for fewer than two clusters),
    as scikit-learn's ``silhouette_score`` computes it (a singleton cluster's row scores 0).

    The rows' distances are computed once, a block of rows at a time, and each block's
    distance sums per cluster are a product with the labelling's one-hot matrix: comparing
    six candidate k on 5,000 rows never holds the 200 MB distance matrix."""
    from sklearn.metrics import pairwise_distances

    n = len(Z)
    codes, onehots, sizes = [], [], []
    for labels in labellings:
        _, code = np.unique(labels, return_inverse=True)
        onehot = np.zeros((n, code.max() + 1))
        onehot[np.arange(n), code] = 1.0
        codes.append(code)
        onehots.append(onehot)
        sizes.append(onehot.sum(axis=0))
    scores = [np.zeros(n) for _ in labellings]
    for lo in range(0, n, chunk):
        rows = slice(lo, min(lo + chunk, n))
        block = pairwise_distances(Z[rows], Z)
        within = np.arange(block.shape[0])
        block[within, lo + within] = 0.0  # a row's distance to itself (rounding leaves ~1e-8)
        for code, onehot, size, score in zip(codes, onehots, sizes, scores, strict=True):
            if len(size) < 2:
                continue
            sums = block @ onehot  # each row's total distance to each cluster
            own = code[rows]
            at = np.arange(len(own))
            own_size = size[own]
            a = sums[at, own] / np.maximum(own_size - 1, 1)
            sums[at, own] = np.inf
            b = (sums / size).min(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                s = np.nan_to_num((b - a) / np.maximum(a, b))
            score[rows] = np.where(own_size > 1, s, 0.0)
    return [
        -1.0 if len(size) < 2 else float(score.mean())
        for size, score in zip(sizes, scores, strict=True)
    ]


def _reference_silhouette(Z: np.ndarray, k: int, seed: int) -> float:
    """Silhouette of k-means on a Gaussian with Z's mean and covariance (no clusters)."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed + 1)
    cov = np.cov(Z, rowvar=False) + 1e-9 * np.eye(Z.shape[1])
    ref = rng.multivariate_normal(Z.mean(axis=0), cov, size=len(Z))
    labels = KMeans(n_clusters=k, random_state=seed, n_init=4).fit_predict(ref)
    return _silhouette(ref, labels)


def _add_non_buyers(X: pd.DataFrame, labels: pd.Series) -> pd.Series:
    """Customers with no orders yet (signed up, never bought) form their own segment S0."""
    if "frequency" not in X:
        return labels
    never = X.index[X["frequency"] <= 0]
    if len(never) == 0:
        return labels
    return pd.concat([labels, pd.Series("S0", index=never, name="segment")]).reindex(X.index)


def rfm_scores(X: pd.DataFrame) -> pd.DataFrame:
    """Classic RFM quintile scores (5 = best): R from recency, F frequency, M monetary."""

    def quintile(values: pd.Series, ascending: bool) -> pd.Series:
        ranks = values.rank(method="first", ascending=ascending)
        return np.ceil(ranks / len(values) * 5).clip(1, 5).astype(int)

    out = pd.DataFrame(index=X.index)
    out["R"] = quintile(-X["recency_days"], True)
    out["F"] = quintile(X["frequency"], True)
    out["M"] = quintile(X["monetary_total"], True)
    # the 125 codes made once and shared: at 10M customers, concatenating each row's three
    # digits as text made 40M short-lived strings (~2 GB)
    codes = np.array([f"{r}{f}{m}" for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)])
    at = (out["R"].to_numpy() - 1) * 25 + (out["F"].to_numpy() - 1) * 5 + out["M"].to_numpy() - 1
    out["rfm"] = codes.astype(object)[at]
    return out


def _profiles(
    X: pd.DataFrame,
    labels: pd.Series,
    features: list[str],
    category_spend: pd.Series | pd.DataFrame | None,
    revenue: pd.Series | None,
) -> pd.DataFrame:
    rev = revenue.reindex(X.index).fillna(0.0) if revenue is not None else X["monetary_total"]
    groups = labels.reindex(X.index)
    by_segment = _segment_spend(category_spend, groups)
    overall = X[features].mean()
    rows = {}
    total_rev = float(rev.sum()) or 1.0
    # row positions, not labels: looking a million customer ids up again per segment was
    # most of this function at that size
    for seg, idx in groups.groupby(groups).indices.items():
        members = X.iloc[idx]
        part = members[features]
        row: dict[str, Any] = {
            "customers": len(idx),
            "share_customers": len(idx) / len(X),
            "share_revenue": float(rev.iloc[idx].sum()) / total_rev,
        }
        means = part.mean()
        medians = part.median()
        for f in features:
            row[f"mean_{f}"] = float(means[f])
            row[f"median_{f}"] = float(medians[f])
            row[f"ratio_{f}"] = float(means[f] / overall[f]) if overall[f] else float("nan")
        for f in ("recency_days", "frequency"):  # lifecycle needs them even when not clustered
            if f"median_{f}" not in row and f in X:
                row[f"median_{f}"] = float(members[f].median())
        row["median_cycle_days"] = purchase_cycle(members)
        if by_segment is not None:
            spend = by_segment.get(seg, pd.Series(dtype="float64"))
            total = float(spend.sum())
            share = (spend / total).sort_values(ascending=False, kind="stable") if total else spend
            row["top_categories"] = [
                (str(c), round(float(s), 3)) for c, s in share.head(3).items() if s > 0
            ]
        rows[seg] = row
    profiles = pd.DataFrame.from_dict(rows, orient="index")
    profiles.index.name = "segment"
    return profiles.sort_values(["share_revenue", "customers"], ascending=False)


def _segment_spend(
    category_spend: pd.Series | pd.DataFrame | None, groups: pd.Series
) -> dict[Any, pd.Series] | None:
    """Each segment's spend per category (categories alphabetical), from spend indexed by
    (customer_id, category), or already summed per segment (columns ``segment``, ``item``,
    ``amount``); None without categories."""
    if category_spend is None or not len(category_spend):
        return None
    if isinstance(category_spend, pd.DataFrame):
        per = category_spend.set_index(["segment", "item"])["amount"].sort_index()
        return {seg: part.droplevel(0) for seg, part in per.groupby(level=0, sort=False)}
    customers = category_spend.index.get_level_values(0)
    segment = groups.reindex(customers).to_numpy()
    known = pd.notna(segment)
    spend = category_spend[known]
    per = spend.groupby([segment[known], spend.index.get_level_values(1)], sort=True).sum()
    return {seg: part.droplevel(0) for seg, part in per.groupby(level=0, sort=False)}


def purchase_cycle(X: pd.DataFrame) -> float:
    """Median days between orders among customers with two or more orders (NaN if none):
    the purchase cycle recency is compared with. One-order customers are left out, their
    gap is undefined (the feature code fills it with their tenure)."""
    if "mean_gap_days" not in X or "frequency" not in X:
        return float("nan")
    repeat = X.loc[X["frequency"] >= 2, "mean_gap_days"]
    return float(repeat.median()) if len(repeat) else float("nan")


def _names(profiles: pd.DataFrame, cycle_days: float = float("nan")) -> dict[str, str]:
    """Plain-English segment names (see :func:`_names_and_stages`)."""
    return _names_and_stages(profiles, cycle_days)[0]


def _names_and_stages(
    profiles: pd.DataFrame, cycle_days: float = float("nan")
) -> tuple[dict[str, str], dict[str, str]]:
    """Plain-English names from how each segment differs from the customer base (medians),
    and each segment's lifecycle stage (no purchase, new, one-time, lapsing, lapsed, active).

    Lifecycle comes first, so a name never contradicts recency and frequency: new customers
    (short tenure), then one-time buyers (median one order), lapsing (last order twice as
    long ago as everyone's) and lapsed (last order more than LAPSED_CYCLES purchase cycles
    ago: the segment's own median gap, else ``cycle_days``, the customer base's); only
    segments still buying on their cycle are called loyal, steady, regular and so on.
    """
    overall = {
        f: profiles[f"median_{f}"].mul(profiles["customers"]).sum() / profiles["customers"].sum()
        for f in LABELS
        if f"median_{f}" in profiles
    }
    names: dict[str, str] = {}
    stages: dict[str, str] = {}
    for seg, row in profiles.iterrows():
        if seg == "S0":
            names[seg], stages[seg] = "Signed up, no purchase yet", "no purchase"
            continue

        def ratio(f: str, row: pd.Series = row) -> float:
            base = overall.get(f)
            return float(row[f"median_{f}"] / base) if base else 1.0

        r, f, m = ratio("recency_days"), ratio("frequency"), ratio("monetary_total")
        a, t = ratio("avg_order_value"), ratio("tenure_days")
        orders = float(row.get("median_frequency", np.nan))
        own_cycle = float(row.get("median_cycle_days", np.nan))
        cycle = own_cycle if orders > 1 and np.isfinite(own_cycle) else cycle_days
        recency = float(row.get("median_recency_days", np.nan))
        lapsed = bool(np.isfinite(cycle) and cycle > 0 and recency > LAPSED_CYCLES * cycle)
        stage = "active"
        if t <= 0.4:
            name = "New big-basket customers" if a >= 1.5 else "New customers"
            stage = "new"
        elif orders <= 1:
            name = "Lapsed one-time buyers" if lapsed or r >= 2.0 else "One-time buyers"
            stage = "one-time"
        elif r >= 2.0:
            name = "Lapsing big spenders" if m >= 1.3 else "Lapsing customers"
            stage = "lapsing"
        elif lapsed:
            name = "Lapsed big spenders" if m >= 1.3 else "Lapsed customers"
            stage = "lapsed"
        elif m >= 1.8 and f >= 1.3:
            name = "High-value loyal"
        elif f >= 1.0 and a <= 0.75:
            name = "Bargain hunters"
        elif f <= 0.6:
            name = "Occasional big-basket shoppers" if a >= 1.3 else "Occasional shoppers"
        elif m >= 1.3:
            name = "Steady high spenders"
        else:
            name = "Regular customers"
        names[str(seg)] = name
        stages[str(seg)] = stage
    # Same name twice: tell them apart by spend.
    seen: dict[str, list[str]] = {}
    for seg, name in names.items():
        seen.setdefault(name, []).append(seg)
    for name, segs in seen.items():
        if len(segs) > 1:
            ordered = sorted(segs, key=lambda s: -profiles.loc[s, "median_monetary_total"])
            for i, seg in enumerate(ordered):
                names[seg] = (
                    f"{name} ({'higher' if i == 0 else 'lower'} spend)"
                    if len(segs) == 2
                    else f"{name} {i + 1}"
                )
    return names, stages


def _conditions(feature: str, threshold: float, smallest_positive: float) -> tuple[str, str]:
    """The two sides of a tree split in words: ("orders ≤ 5", "orders ≥ 6")."""
    label, unit = LABELS.get(feature, (feature, ""))
    unit = f" {unit}" if unit else ""
    if 0 <= threshold < smallest_positive:  # splits zero from everything else
        return f"no {label}", f"some {label}"
    if feature == "frequency":  # whole orders: 5.5 reads as "≤ 5" / "≥ 6"
        whole = int(np.floor(threshold))
        return f"{label} ≤ {whole}", f"{label} ≥ {whole + 1}"
    text = f"{threshold:,.0f}" if feature in MONEY or abs(threshold) >= 10 else f"{threshold:.1f}"
    return f"{label} ≤ {text}{unit}", f"{label} > {text}{unit}"


def _rules(
    X: pd.DataFrame, labels: pd.Series, features: list[str], max_depth: int = 4
) -> tuple[dict[str, list[dict[str, Any]]], float]:
    """Readable rules from a shallow tree that reproduces the segments; returns its fidelity.

    At most two leaves per segment and four conditions per rule keep the rules readable.
    """
    from sklearn.tree import DecisionTreeClassifier

    data = X[features].to_numpy(dtype=float)
    # the tree learns integer codes in the labels' sorted order (the order it would give the
    # labels themselves, so the same tree): sorting a million text labels was ~2 s
    codes, names = pd.factorize(labels, sort=True)
    n_segments = len(names)
    fit_data, fit_codes = data, codes
    if len(codes) > FIT_SAMPLE:  # grown on a sample, its leaves counted over everyone
        rows = np.sort(np.random.default_rng(0).choice(len(codes), FIT_SAMPLE, replace=False))
        fit_data, fit_codes = data[rows], codes[rows]
    tree = DecisionTreeClassifier(
        max_depth=max_depth,
        max_leaf_nodes=2 * n_segments,
        random_state=0,
        min_samples_leaf=max(5, len(fit_codes) // 200),
    ).fit(fit_data, fit_codes)
    t = tree.tree_
    # customers of each segment in each leaf, over everyone: a leaf's rule names its largest
    # segment, so fidelity (the share of customers in their rule's segment) is the sum of
    # the leaves' largest counts
    counts = np.bincount(
        tree.apply(data) * n_segments + codes, minlength=t.node_count * n_segments
    ).reshape(t.node_count, n_segments)
    fidelity = float(counts.max(axis=1).sum() / max(len(codes), 1))
    classes = np.asarray(names, dtype=object)
    rules: dict[str, list[dict[str, Any]]] = {str(c): [] for c in classes}
    seg_sizes = counts.sum(axis=0)

    smallest = np.array(
        [col[col > 0].min() if (col > 0).any() else np.inf for col in data.T], dtype=float
    )

    def describe(path: list[tuple[int, bool, float]]) -> str:
        # Along one path a feature can be split several times: keep the tightest bounds.
        upper: dict[int, float] = {}
        lower: dict[int, float] = {}
        for j, is_left, thr in path:
            if is_left:
                upper[j] = min(thr, upper.get(j, np.inf))
            else:
                lower[j] = max(thr, lower.get(j, -np.inf))
        parts = []
        for j in dict.fromkeys(j for j, _, _ in path):  # first-split order
            if j in lower:
                parts.append(_conditions(features[j], lower[j], smallest[j])[1])
            if j in upper:
                parts.append(_conditions(features[j], upper[j], smallest[j])[0])
        return " and ".join(parts) or "all customers"

    def walk(node: int, path: list[tuple[int, bool, float]]) -> None:
        if t.children_left[node] == -1:
            n_node = int(counts[node].sum())
            best = int(np.argmax(counts[node]))
            seg = str(classes[best])
            rules[seg].append(
                {
                    "rule": describe(path),
                    "precision": round(float(counts[node, best] / max(n_node, 1)), 3),
                    "coverage": round(float(counts[node, best] / seg_sizes[best]), 3),
                    "customers": n_node,
                }
            )
            return
        j, thr = int(t.feature[node]), float(t.threshold[node])
        walk(t.children_left[node], [*path, (j, True, thr)])
        walk(t.children_right[node], [*path, (j, False, thr)])

    walk(0, [])
    for seg in rules:
        rules[seg].sort(key=lambda r: -r["coverage"])
    return rules, fidelity
