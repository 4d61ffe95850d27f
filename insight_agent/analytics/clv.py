"""Customer lifetime value: the BG/NBD purchase model and the Gamma-Gamma spend model.

* :func:`rfm_summary` turns an orders table into the per-customer summary the models need:
  ``frequency`` (repeat purchase periods), ``recency`` and ``T`` (in periods of ``period_days``)
  and ``monetary_value`` (mean spend of the repeat periods), following the conventions of the
  ``lifetimes`` package and of Fader & Hardie's CDNOW summaries.
* :class:`BetaGeo` is the BG/NBD model of Fader, Hardie & Lee (2005), "Counting your customers
  the easy way: an alternative to the Pareto/NBD model", Marketing Science 24(2).
* :class:`GammaGamma` is the spend model of Fader, Hardie & Lee (2005), "RFM and CLV: using
  iso-value curves for customer base analysis", Journal of Marketing Research 42(4), in the
  parameterisation of Fader & Hardie's note "The Gamma-Gamma model of monetary value" (2013).
* :func:`fit_clv` runs all three on an orders table and returns per-customer CLV;
  :func:`summarise_clv` condenses it per segment, rounded as it should be quoted.

Both models are fitted by maximum likelihood over log-parameters with an analytic gradient, on
identical customer rows grouped with weights, so a million customers fit in seconds. On the
CDNOW calibration data they reproduce the published estimates (see tests/test_clv.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import integrate, optimize, special

from insight_agent import __version__
from insight_agent.data.ids import isin
from insight_agent.errors import ConfigError, DataError, InsufficientData

ORDER_COLUMNS = ("customer_id", "order_date", "amount")
SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")
CUSTOMER_COLUMNS = (
    *SUMMARY_COLUMNS,
    "p_alive",
    "expected_purchases",
    "expected_avg_spend",
    "clv",
)

# Parameters are optimised as logs inside these bounds (about 1.5e-8 .. 6.6e7), where every
# likelihood term is finite. An optimum on the edge is the model's limiting case (a → 0: no one
# drops out; r, α → ∞: everyone buys at the same rate); it is kept and named in
# ``diagnostics_["at_limit"]`` rather than refused, since its predictions are still the best fit.
_LOG_BOUND = 18.0
_AT_BOUND = _LOG_BOUND - 1e-3
_DAYS_PER_YEAR = 365.25
_DAYS_PER_MONTH = _DAYS_PER_YEAR / 12


# --------------------------------------------------------------------------------------------
# RFM summary
# --------------------------------------------------------------------------------------------


def _require_columns(orders: pd.DataFrame) -> None:
    for column in ORDER_COLUMNS:
        if column not in orders.columns:
            raise DataError(
                "the orders table has no such column (needed for CLV)",
                column=column,
                hint=f"CLV needs the columns {', '.join(ORDER_COLUMNS)}.",
            )
    for column in ORDER_COLUMNS:
        n_missing = int(orders[column].isna().sum())
        if n_missing:
            raise DataError(f"{n_missing} order rows have no value", column=column)


def _naive(stamp: pd.Timestamp) -> pd.Timestamp:
    """Wall-clock time without the zone, as the marketer reads the dates."""
    return stamp.tz_localize(None) if stamp.tz is not None else stamp


def rfm_summary(
    orders: pd.DataFrame,
    cutoff: pd.Timestamp | None = None,
    *,
    period_days: float = 1.0,
) -> pd.DataFrame:
    """Per-customer frequency, recency, T and monetary value from an orders table.

    ``orders`` needs ``customer_id``, ``order_date`` and ``amount`` (positive spend; order
    lines are fine, they are summed). Dates are taken at day resolution; orders dated after
    ``cutoff`` (default: the last order date) are ignored, orders on the cutoff day count.

    Time is cut into periods of ``period_days`` counted back from the cutoff day (the cutoff
    day is the last day of period 0), and all purchases in one period count as one:

    * ``frequency``: number of distinct purchase periods after the first (repeat purchases);
    * ``recency``: periods from the first to the last purchase (0 when frequency is 0);
    * ``T``: periods from the first purchase to the cutoff;
    * ``monetary_value``: mean spend per repeat period, the first period excluded (0 when
      frequency is 0).

    With ``period_days=1`` this is ``lifetimes.utils.summary_data_from_transaction_data`` with
    ``freq="D"``; divide recency and T by 7 for the weekly units of the CDNOW literature.
    Returns a frame indexed by ``customer_id`` (in order of first appearance in ``orders``).
    """
    if not (math.isfinite(period_days) and period_days > 0):
        raise ConfigError(f"period_days must be a positive number of days, got {period_days!r}")
    _require_columns(orders)

    dates = pd.to_datetime(orders["order_date"])
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)  # wall-clock days, as the marketer reads them
    # pandas may hold any resolution (s/ms/us/ns); days since the epoch are the common unit.
    day = dates.to_numpy().astype("datetime64[D]").astype(np.int64)
    if cutoff is None:
        cutoff_day = int(day.max()) if len(day) else 0
    else:
        stamp = _naive(pd.Timestamp(cutoff))
        cutoff_day = int(np.datetime64(stamp.to_datetime64(), "D").astype(np.int64))

    customer = orders["customer_id"]
    amount = orders["amount"].to_numpy(dtype=np.float64)
    keep = day <= cutoff_day
    if not keep.all():
        customer, amount, day = customer[keep], amount[keep], day[keep]
    age = cutoff_day - day  # whole days before the cutoff day, >= 0
    if float(period_days).is_integer():
        period = age // int(period_days)
    else:
        period = np.floor(age / period_days).astype(np.int64)

    # Series.factorize keeps pandas' fast path for Arrow-backed strings.
    codes, ids = pd.factorize(customer)
    n = len(ids)
    index = pd.Index(ids, name="customer_id")
    if n == 0:
        return pd.DataFrame(
            {
                "frequency": np.zeros(0, np.int64),
                "recency": np.zeros(0),
                "T": np.zeros(0),
                "monetary_value": np.zeros(0),
            },
            index=index,
        )

    # Everything below is O(rows) except one sort of an int64 key (no per-customer Python).
    first_period = np.zeros(n, np.int64)  # the oldest purchase: largest age
    np.maximum.at(first_period, codes, period)
    last_period = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(last_period, codes, period)
    width = int(first_period.max()) + 1
    key = codes.astype(np.int64) * width + period
    key.sort()
    distinct = np.empty(len(key), dtype=bool)
    distinct[0] = True
    np.not_equal(key[1:], key[:-1], out=distinct[1:])
    frequency = np.bincount(key[distinct] // width, minlength=n) - 1
    # Spend of the repeat periods, summed directly (no total-minus-first cancellation).
    repeat = period != first_period[codes]
    repeat_spend = np.bincount(codes, weights=np.where(repeat, amount, 0.0), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, repeat_spend / np.maximum(frequency, 1), 0.0)
    return pd.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": (first_period - last_period).astype(np.float64),
            "T": first_period.astype(np.float64),
            "monetary_value": monetary.astype(np.float64),
        },
        index=index,
    )


# --------------------------------------------------------------------------------------------
# Shared fitting machinery
# --------------------------------------------------------------------------------------------


def _vector(values: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains missing or infinite values")
    return arr


def _weights(weights: npt.ArrayLike | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = _vector(weights, "weights")
    if len(w) != n:
        raise ValueError(f"weights has {len(w)} values for {n} customers")
    if np.any(w < 0):
        raise ValueError("weights must be non-negative")
    return w


def _group(
    columns: dict[str, np.ndarray], w: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Collapse identical rows, summing their weights (drops zero-weight rows)."""
    frame = pd.DataFrame(columns)
    frame["_w"] = w
    frame = frame[frame["_w"] > 0]
    grouped = frame.groupby(list(columns), sort=True, as_index=False)["_w"].sum()
    return {c: grouped[c].to_numpy(np.float64) for c in columns}, grouped["_w"].to_numpy()


def _maximise(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    names: tuple[str, ...],
    model: str,
) -> np.ndarray:
    """Minimise ``objective`` (mean negative log-likelihood and its gradient, both in
    log-parameters) and return the log-parameters; raise InsufficientData if it fails."""
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(start)
    hint = "Use more order history or more customers; lowering min_repeat_buyers will not help."
    options = {"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9}
    try:
        with np.errstate(all="ignore"):
            res = optimize.minimize(
                objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options=options
            )
            if not res.success:
                # A line-search failure usually means the optimum is reached to the precision
                # the likelihood can be computed with (flat ridges, e.g. r and α both large);
                # a restart that cannot improve the fit confirms it, one that can goes on.
                again = optimize.minimize(
                    objective, res.x, jac=True, method="L-BFGS-B", bounds=bounds, options=options
                )
                stalled = res.fun - again.fun <= 1e-10 * max(1.0, abs(res.fun))
                if not (again.success or stalled):
                    raise InsufficientData(
                        f"The {model} model did not converge ({again.message}).", hint=hint
                    )
                res = again
            x = res.x
    except (ValueError, FloatingPointError, ArithmeticError) as exc:
        raise InsufficientData(
            f"The {model} model could not be fitted ({exc}).", hint=hint
        ) from exc
    if not np.all(np.isfinite(x)):
        raise InsufficientData(f"The {model} model did not converge.", hint=hint)
    return x


def _at_limit(logp: np.ndarray, names: tuple[str, ...]) -> list[str]:
    """Parameters whose optimum lies on the edge of the search box (see _LOG_BOUND)."""
    return [n for n, v in zip(names, logp, strict=True) if abs(v) >= _AT_BOUND]


def _result_shape(value: np.ndarray, *inputs: Any) -> np.ndarray | float:
    """A float when every input was a scalar, else the array."""
    if all(np.ndim(i) == 0 for i in inputs):
        return float(value)
    return value


def _check_version(data: dict[str, Any], model: str) -> None:
    saved = data.get("insight_version")
    if saved != __version__:
        warnings.warn(
            f"{model} parameters were saved by Insight {saved}, this is {__version__}; "
            "refit if results look wrong.",
            UserWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------------


def _bgnbd_parts(
    logp: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log-likelihood and its gradient in log-parameters (rows × 4).

    LL = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b)
         + ln[(α+T)^−(r+x) + 1{x>0} · a/(b+x−1) · (α+tₓ)^−(r+x)]     (FHL 2005, eq. 6)
    """
    r, alpha, a, b = np.exp(logp)
    pos = x > 0
    bx1 = np.where(pos, b + x - 1.0, 1.0)  # only used where x > 0
    log_at = np.log(alpha + T)
    log_ax = np.log(alpha + tx)
    c3 = -(r + x) * log_at
    c4 = np.where(pos, np.log(a) - np.log(bx1) - (r + x) * log_ax, -np.inf)
    lse = np.logaddexp(c3, c4)
    ll = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.betaln(a, b + x)
        - special.betaln(a, b)
        + lse
    )
    w3 = np.exp(c3 - lse)
    w4 = np.exp(c4 - lse)  # 0 where x == 0
    psi_abx = special.digamma(a + b + x)
    psi_ab = special.digamma(a + b)
    d_r = special.digamma(r + x) - special.digamma(r) + np.log(alpha) - w3 * log_at - w4 * log_ax
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + tx)
    d_a = psi_ab - psi_abx + w4 / a
    d_b = special.digamma(b + x) - special.digamma(b) + psi_ab - psi_abx - w4 / bx1
    grad = np.column_stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
    return ll, grad


def _bgnbd_if_alive_fallback(
    t: np.ndarray, x: np.ndarray, T: np.ndarray, r: float, alpha: float, a: float, b: float
) -> np.ndarray:
    """E[Y(t) | alive at T] without ₂F₁, for the arguments where scipy's ₂F₁ fails.

    With λ integrated out, E[Y(t) | alive] = E_p[(1 − (1 + p·s)^−(r+x)) / p], s = t/(α+T),
    p ~ Beta(a, b+x). Expanding in s gives the series
    Σ_{n≥1} (−1)^(n+1) (r+x)_n / n! · (a)_(n−1) / (a+b+x)_(n−1) · s^n,
    used where it converges without cancellation; the rest are integrated numerically.
    """
    k, bx, s = r + x, b + x, t / (alpha + T)
    term = k * s
    total = term.copy()
    biggest = np.abs(term)
    with np.errstate(all="ignore"):  # diverging series (s ≥ 1) overflow; caught below
        for n in range(1, 400):
            term = term * (-(k + n) / (n + 1) * (a + n - 1) / (a + bx + n - 1) * s)
            total += term
            biggest = np.maximum(biggest, np.abs(term))
            if np.all(np.abs(term) <= 1e-17 * np.abs(total)):
                break
        ok = (
            np.isfinite(total)
            & (total >= 0)
            & (np.abs(term) <= 1e-15 * np.abs(total))
            & (biggest <= 1e6 * np.abs(total))
        )
    for i in np.flatnonzero(~ok):
        total[i] = _bgnbd_if_alive_integral(s[i], k[i], bx[i], a)
    return total


def _bgnbd_if_alive_integral(s: float, k: float, bx: float, a: float) -> float:
    """The integral of :func:`_bgnbd_if_alive_fallback` by quadrature (slow, sure).

    Split at p = ½. Where the Beta density is singular at an end (a < 1 at 0, b+x < 1 at 1),
    p = u^(1/a) or 1 − p = v^(1/(b+x)) absorbs the singularity; elsewhere p is used as is.
    """
    log_beta = special.betaln(a, bx)

    def density_times(p: float) -> float:
        per_p = -math.expm1(-k * math.log1p(p * s)) / p if p > 0 else k * s
        log_density = (a - 1.0) * math.log(p) if p > 0 else 0.0
        return math.exp(log_density + (bx - 1.0) * math.log1p(-p) - log_beta) * per_p

    def near_zero(u: float) -> float:  # p = u^(1/a): p^(a−1) dp = du / a
        p = u ** (1.0 / a)
        per_p = -math.expm1(-k * math.log1p(p * s)) / p if p > 0 else k * s
        return math.exp((bx - 1.0) * math.log1p(-p) - log_beta) * per_p / a

    def near_one(v: float) -> float:  # 1 − p = v^(1/(b+x)): (1−p)^(b+x−1) dp = −dv / (b+x)
        p = 1.0 - v ** (1.0 / bx)
        per_p = -math.expm1(-k * math.log1p(p * s)) / p
        return math.exp((a - 1.0) * math.log(p) - log_beta) * per_p / bx

    # Where the integrand turns: the Beta mode and mean, and where p·s·(r+x) reaches 1.
    marks = [a / (a + bx), 1.0 / (s * k) if s * k > 0 else 0.5]
    if a > 1 and bx > 1:
        marks.append((a - 1.0) / (a + bx - 2.0))
    low = [m for m in marks if 0 < m < 0.5]
    high = [m for m in marks if 0.5 < m < 1]
    opts: dict[str, Any] = {"limit": 500, "epsabs": 0.0, "epsrel": 1e-10}
    if a < 1:
        points = sorted({m**a for m in low}) or None
        lo, _ = integrate.quad(near_zero, 0.0, 0.5**a, points=points, **opts)
    else:
        lo, _ = integrate.quad(density_times, 0.0, 0.5, points=sorted(low) or None, **opts)
    if bx < 1:
        points = sorted({(1.0 - m) ** bx for m in high}) or None
        hi, _ = integrate.quad(near_one, 0.0, 0.5**bx, points=points, **opts)
    else:
        hi, _ = integrate.quad(density_times, 0.5, 1.0, points=sorted(high) or None, **opts)
    return float(lo + hi)


def _check_rfm(
    frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _vector(frequency, "frequency")
    tx = _vector(recency, "recency")
    t_obs = _vector(T, "T")
    if not len(x) == len(tx) == len(t_obs):
        raise ValueError("frequency, recency and T must have the same length")
    if np.any(x < 0) or np.any(tx < 0):
        raise ValueError("frequency and recency must be non-negative")
    if np.any(tx > t_obs + 1e-9 * np.maximum(t_obs, 1.0)):
        raise ValueError("recency cannot exceed T (last purchase after the cutoff?)")
    return x, np.where(x > 0, tx, 0.0), t_obs


class _SavedModel:
    """Shared state of the two CLV models: parameters, fit statistics, save/load as JSON."""

    model_name = ""
    param_names: tuple[str, ...] = ()

    def __init__(self, *, penalizer: float = 0.0) -> None:
        if not (math.isfinite(penalizer) and penalizer >= 0):
            raise ValueError(f"penalizer must be >= 0, got {penalizer!r}")
        self.penalizer = float(penalizer)
        self.params_: dict[str, float] | None = None
        self.log_likelihood_: float | None = None
        self.n_customers_: float | None = None
        self.diagnostics_: dict[str, Any] = {}

    def __repr__(self) -> str:
        name = type(self).__name__
        if self.params_ is None:
            return f"{name}(penalizer={self.penalizer}) [not fitted]"
        inner = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{name}({inner})"

    def _params(self) -> tuple[float, ...]:
        if self.params_ is None:
            raise RuntimeError(
                f"{type(self).__name__} is not fitted; call fit() or from_dict() first"
            )
        return tuple(self.params_[k] for k in self.param_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fitted state (parameters, fit statistics, diagnostics, Insight version)."""
        self._params()
        return {
            "model": self.model_name,
            "params": dict(self.params_ or {}),
            "penalizer": self.penalizer,
            "log_likelihood": self.log_likelihood_,
            "n_customers": self.n_customers_,
            "diagnostics": dict(self.diagnostics_),
            "insight_version": __version__,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a fitted model from :meth:`to_dict` output (warns on another version)."""
        if data.get("model") != cls.model_name:
            raise ValueError(f"not a saved {cls.model_name} model: model={data.get('model')!r}")
        _check_version(data, cls.model_name)
        model = cls(penalizer=float(data.get("penalizer", 0.0)))
        model.params_ = {k: float(data["params"][k]) for k in cls.param_names}
        model.log_likelihood_ = data.get("log_likelihood")
        model.n_customers_ = data.get("n_customers")
        model.diagnostics_ = dict(data.get("diagnostics", {}))
        return model


class BetaGeo(_SavedModel):
    """BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    While alive a customer buys at Poisson rate λ ~ Gamma(r, α) (α is in the time unit of
    recency and T); after each purchase they drop out with probability p ~ Beta(a, b).

    ``penalizer`` adds ``penalizer · Σ params²`` to the mean negative log-likelihood (the
    ``lifetimes`` convention); 0 gives the plain maximum-likelihood fit. After fitting,
    ``diagnostics_["at_limit"]`` names parameters whose optimum is a limiting case (e.g. ``a``
    when the data show no one dropping out).
    """

    model_name = "BG/NBD"
    param_names = ("r", "alpha", "a", "b")

    def fit(
        self,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> BetaGeo:
        """Fit by maximum likelihood; ``weights`` counts customers sharing a row.

        Raises InsufficientData when there are no customers or the fit does not converge.
        """
        x, tx, t_obs = _check_rfm(frequency, recency, T)
        w = _weights(weights, len(x))
        cols, w = _group({"x": x, "tx": tx, "T": t_obs}, w)
        total = float(w.sum())
        if total <= 0:
            raise InsufficientData("BG/NBD needs at least one customer; got none.")
        x, tx, t_obs = cols["x"], cols["tx"], cols["T"]
        penalizer = self.penalizer

        def objective(logp: np.ndarray) -> tuple[float, np.ndarray]:
            ll, grad = _bgnbd_parts(logp, x, tx, t_obs)
            params = np.exp(logp)
            value = -(w @ ll) / total + penalizer * float(params @ params)
            gradient = -(w @ grad) / total + 2 * penalizer * params * params
            return float(value), gradient

        # α is a time scale: start it at the typical observation length.
        start = np.log([1.0, max(float(w @ t_obs) / total, 1e-3), 1.0, 1.0])
        logp = _maximise(objective, start, self.param_names, "BG/NBD")
        self.params_ = dict(zip(self.param_names, map(float, np.exp(logp)), strict=True))
        self.log_likelihood_ = float(w @ _bgnbd_parts(logp, x, tx, t_obs)[0])
        self.n_customers_ = total
        self.diagnostics_ = {"at_limit": _at_limit(logp, self.param_names)}
        return self

    def _log_odds_dead(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        """ln[a/(b+x−1) · ((α+T)/(α+tₓ))^(r+x)], the log-odds of having dropped out
        (−inf for x = 0)."""
        r, alpha, a, b = self._params()
        pos = x > 0
        bx1 = np.where(pos, b + x - 1.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.log(a) - np.log(bx1) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
        return np.where(pos, d, -np.inf)

    def probability_alive(
        self, frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike
    ) -> np.ndarray | float:
        """P(still active at T | x, tₓ, T) = 1 / (1 + 1{x>0} · a/(b+x−1) · ((α+T)/(α+tₓ))^(r+x)).

        It is 1 for customers with no repeat purchase (BG/NBD customers can only drop out
        right after a purchase) and falls as the last purchase recedes.
        """
        x, tx, t_obs = np.broadcast_arrays(
            *(np.asarray(v, np.float64) for v in (frequency, recency, T))
        )
        d = self._log_odds_dead(x, tx, t_obs)
        return _result_shape(np.exp(-np.logaddexp(0.0, d)), frequency, recency, T)

    def expected_purchases(
        self,
        t: npt.ArrayLike,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,
    ) -> np.ndarray | float:
        """Expected number of purchases in the next ``t`` periods given x, tₓ, T (FHL eq. 10).

        E[Y(t)] = (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; z)]
                  · P(alive),   z = t/(α+T+t).

        Evaluated through Euler's transformation, (1−z)^(r+x) ₂F₁(r+x, b+x; c; z) =
        (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; c; z), whose parameters stay moderate for any x, so
        heavy buyers neither overflow nor lose precision (the paper's form overflows ₂F₁ for
        large x). Where scipy's ₂F₁ still fails, a series or quadrature takes over.
        """
        r, alpha, a, b = self._params()
        tt, x, tx, t_obs = np.broadcast_arrays(
            *(np.asarray(v, np.float64) for v in (t, frequency, recency, T))
        )
        if np.any(tt < 0):
            raise ValueError("t must be non-negative")
        if abs(a - 1.0) < 1e-7:  # removable singularity at a = 1
            a = 1.0 + math.copysign(1e-7, a - 1.0)
        c = a + b + x - 1.0
        z = tt / (alpha + t_obs + tt)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            tail = np.exp((a - 1.0) * np.log1p(-z)) * special.hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
            if_alive = (c / (a - 1.0)) * (1.0 - tail)
        if_alive = np.where(tt == 0, 0.0, if_alive)
        # scipy's ₂F₁ gives up (nan/inf) in a few corners: horizons a thousand times α + T
        # with b + x > ~170, or huge r (a population with one shared purchase rate).
        failed = ~np.isfinite(if_alive) | (if_alive < 0)
        if failed.any():
            flat = if_alive.reshape(-1).copy()
            where = np.flatnonzero(failed)
            # Customers sharing (t, x, T) share the value: solve each combination once.
            keys = np.column_stack([v.reshape(-1)[where] for v in (tt, x, t_obs)])
            combos, inverse = _distinct_rows(keys)
            values = _bgnbd_if_alive_fallback(*combos.T, r, alpha, a, b)
            flat[where] = values[inverse]
            if_alive = flat.reshape(failed.shape)
        d = self._log_odds_dead(x, tx, t_obs)
        expected = if_alive * np.exp(-np.logaddexp(0.0, d))
        return _result_shape(expected, t, frequency, recency, T)


def _distinct_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a 2-D float array and each row's number among them (as
    ``np.unique(keys, axis=0, return_inverse=True)``, in order of first appearance). By
    hashing: ``np.unique`` sorts the rows as opaque bytes, 4.5 s of a 1M-customer build
    whose fitted BG/NBD sent most customers to the fallback."""
    if not len(keys):
        return keys, np.zeros(0, dtype=np.int64)
    frame = pd.DataFrame(keys)
    groups = frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup()
    inverse = groups.to_numpy(dtype=np.int64)
    first = np.unique(inverse, return_index=True)[1]
    return keys[first], inverse


# --------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------


def _gg_log_likelihood(
    x: np.ndarray, m: np.ndarray, w: np.ndarray
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Total log-likelihood of repeat buyers' mean spend and its gradient in log-parameters.

    LL = Σ w·[ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln v + (px−1) ln m + px ln x − (px+q) ln(v+xm)]

    Spend is continuous, so rows rarely repeat; instead the Γ terms are evaluated once per
    distinct frequency and the parameter-free sums are precomputed, leaving one log per row.
    """
    ux, inv = np.unique(x, return_inverse=True)
    wx = np.bincount(inv, weights=w)  # customers per distinct frequency
    n = float(w.sum())
    log_m, log_x = np.log(m), np.log(x)
    s_x_log = float(w @ (x * (log_m + log_x)))
    s_log_m = float(w @ log_m)
    wx_row = w * x

    def value(logp: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, v = np.exp(logp)
        pu = p * ux
        log_vxm = np.log(v + x * m)
        s_wx_l, s_w_l = float(wx_row @ log_vxm), float(w @ log_vxm)
        psi_puq = special.digamma(pu + q)
        ll = (
            float(wx @ (special.gammaln(pu + q) - special.gammaln(pu)))
            + n * (q * math.log(v) - special.gammaln(q))
            + p * (s_x_log - s_wx_l)
            - s_log_m
            - q * s_w_l
        )
        d_p = float(wx @ (ux * (psi_puq - special.digamma(pu)))) + s_x_log - s_wx_l
        d_q = float(wx @ psi_puq) + n * (math.log(v) - special.digamma(q)) - s_w_l
        d_v = n * q / v - float(w @ ((p * x + q) / (v + x * m)))
        return float(ll), np.array([d_p * p, d_q * q, d_v * v])

    return value


class GammaGamma(_SavedModel):
    """Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005; Fader & Hardie
    2013 note).

    Each transaction's value is Gamma(p, ν) around the customer's mean p/ν, and ν varies across
    customers as Gamma(q, v); the population mean spend is p·v/(q−1). The model assumes spend is
    independent of purchase frequency: ``diagnostics_["frequency_monetary_corr"]`` reports the
    correlation among the fitted repeat buyers (Fader & Hardie find 0.11 on CDNOW and call that
    acceptable; |ρ| well above ~0.3 is a warning sign).
    """

    model_name = "Gamma-Gamma"
    param_names = ("p", "q", "v")

    def fit(
        self,
        frequency: npt.ArrayLike,
        monetary_value: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> GammaGamma:
        """Fit on the repeat buyers (frequency > 0; the others are ignored).

        ``monetary_value`` is each customer's mean spend per repeat purchase and must be
        positive for the repeat buyers. Raises InsufficientData when there are fewer than two
        repeat buyers or the fit does not converge.
        """
        x = _vector(frequency, "frequency")
        m = _vector(monetary_value, "monetary_value")
        if len(x) != len(m):
            raise ValueError("frequency and monetary_value must have the same length")
        w = _weights(weights, len(x))
        repeat = (x > 0) & (w > 0)
        x, m, w = x[repeat], m[repeat], w[repeat]
        if np.any(m <= 0):
            raise ValueError("monetary_value must be positive for every repeat buyer")
        total = float(w.sum())
        if len(x) < 2:
            raise InsufficientData(
                f"The spend model needs at least 2 repeat buyers; got {len(x)}.",
                hint="Use a longer order history.",
            )
        mean_m = float(w @ m) / total
        sd_x = math.sqrt(float(w @ (x - float(w @ x) / total) ** 2) / total)
        sd_m = math.sqrt(float(w @ (m - mean_m) ** 2) / total)
        corr = (
            float(w @ ((x - float(w @ x) / total) * (m - mean_m))) / total / (sd_x * sd_m)
            if sd_x > 0 and sd_m > 0
            else float("nan")
        )
        log_likelihood = _gg_log_likelihood(x, m, w)
        penalizer = self.penalizer

        def objective(logp: np.ndarray) -> tuple[float, np.ndarray]:
            ll, grad = log_likelihood(logp)
            params = np.exp(logp)
            value = -ll / total + penalizer * float(params @ params)
            gradient = -grad / total + 2 * penalizer * params * params
            return float(value), gradient

        # v is a money scale: start it at the mean spend.
        start = np.log([1.0, 1.0, mean_m])
        logp = _maximise(objective, start, self.param_names, "Gamma-Gamma spend")
        self.params_ = dict(zip(self.param_names, map(float, np.exp(logp)), strict=True))
        self.log_likelihood_ = log_likelihood(logp)[0]
        self.n_customers_ = total
        self.diagnostics_ = {
            "at_limit": _at_limit(logp, self.param_names),
            "n_repeat_buyers": total,
            "frequency_monetary_corr": corr,
            "mean_monetary_value": mean_m,
        }
        return self

    @property
    def population_mean_spend(self) -> float:
        """p·v/(q−1), the mean spend per transaction across customers (inf when q ≤ 1)."""
        p, q, v = self._params()
        return p * v / (q - 1.0) if q > 1.0 else math.inf

    def expected_average_spend(
        self, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
    ) -> np.ndarray | float:
        """E[spend per transaction | x, m̄] = (p·(v + x·m̄)) / (p·x + q − 1).

        A weighted mean of the population mean p·v/(q−1) and the customer's own average m̄,
        leaning on m̄ the more purchases back it; customers with frequency 0 get the
        population mean.
        """
        p, q, v = self._params()
        x, m = np.broadcast_arrays(
            np.asarray(frequency, np.float64), np.asarray(monetary_value, np.float64)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            own = p * (v + x * m) / (p * x + q - 1.0)
        spend = np.where(x > 0, own, self.population_mean_spend)
        return _result_shape(spend, frequency, monetary_value)


# --------------------------------------------------------------------------------------------
# CLV
# --------------------------------------------------------------------------------------------


@dataclass
class ClvResult:
    """Per-customer CLV and the two fitted models behind it.

    ``customers`` is indexed by customer_id with the columns of :data:`CUSTOMER_COLUMNS`
    (recency and T in periods of ``period_days``; expected_purchases and clv over
    ``horizon_days``). ``params`` holds the seven model parameters (α in periods).
    """

    customers: pd.DataFrame
    bgnbd: BetaGeo
    gamma_gamma: GammaGamma
    params: dict[str, float]
    horizon_days: float
    cutoff: pd.Timestamp
    period_days: float
    annual_discount_rate: float
    diagnostics: dict[str, Any] = field(default_factory=dict)
    # customers with orders up to the cutoff, none of them with a positive amount ($0 orders,
    # free items): nothing to value, so they have no row in ``customers``
    without_value: pd.Index = field(default_factory=lambda: pd.Index([], name="customer_id"))


# What the numbers cannot say, in words a customer's facts can carry (see docs/analytics.md).
ONE_TIME_NOTE = (
    "P(alive) is 1 by construction: BG/NBD lets a customer drop out only after a repeat "
    "purchase and this customer has none yet; their expected purchases and CLV (low when the "
    "one purchase was long ago) and the churn probability say how likely they are to return"
)
ZERO_VALUE_NOTE = "only zero-value orders: no CLV (there is no spend to value)"
NO_ORDERS_NOTE = "no orders: no CLV"


def _discount_factor(horizon_days: float, annual_discount_rate: float) -> float:
    """Mean discount factor of purchases spread evenly over the horizon, paid monthly."""
    months = max(1, round(horizon_days / _DAYS_PER_MONTH))
    step_years = horizon_days / months / _DAYS_PER_YEAR
    ends = np.arange(1, months + 1) * step_years
    return float(np.mean((1.0 + annual_discount_rate) ** -ends))


@dataclass
class ClvInputs:
    """What the CLV models are fitted on, from the order lines up to a cutoff day: the
    :func:`rfm_summary` of the lines with a positive amount, the customers whose lines there
    are all non-positive (``without_value``) and how many lines (of all) were non-positive.

    :func:`clv_inputs` computes it from pandas frames; the engine's
    :meth:`~insight_agent.engine.features.FeatureEngine.clv_inputs` with queries."""

    summary: pd.DataFrame
    cutoff: pd.Timestamp  # midnight of the cutoff day (its orders count)
    without_value: pd.Index
    nonpositive_lines: int


def clv_inputs(
    orders: pd.DataFrame, cutoff: pd.Timestamp | None = None, *, period_days: float = 7.0
) -> ClvInputs:
    """:class:`ClvInputs` from order lines (cutoff default: the last order's day)."""
    if len(orders) == 0:
        raise InsufficientData("There are no orders to estimate customer lifetime value from.")
    amounts = pd.to_numeric(orders["amount"], errors="coerce") if "amount" in orders else None
    positive = orders if amounts is None or (amounts > 0).all() else orders[amounts > 0]
    if cutoff is None:
        _require_columns(orders)
        cut = _naive(pd.Timestamp(pd.to_datetime(orders["order_date"]).max())).normalize()
    else:
        cut = _naive(pd.Timestamp(cutoff)).normalize()
    # The cutoff comes from all orders, so a trailing refund does not move it. Sorted by id,
    # as the engine returns it: the fit then sums its likelihood in the same order.
    summary = rfm_summary(positive, cut, period_days=period_days).sort_index()
    return ClvInputs(
        summary=summary,
        cutoff=cut,
        without_value=_without_value(orders, cut, summary.index),
        nonpositive_lines=int(len(orders) - len(positive)),
    )


def fit_clv(
    orders: pd.DataFrame | ClvInputs,
    cutoff: pd.Timestamp | None = None,
    *,
    horizon_days: float = 365,
    period_days: float = 7.0,
    annual_discount_rate: float = 0.10,
    min_repeat_buyers: int = 30,
) -> ClvResult:
    """Fit BG/NBD and Gamma-Gamma on ``orders`` up to ``cutoff`` and value every customer.

    ``orders`` is the order lines, or the :class:`ClvInputs` already computed from them (by
    the engine; ``cutoff`` is then the inputs' own).

    Orders with a non-positive amount (returns, free items) are left out and counted in
    ``diagnostics``; customers whose orders all have a non-positive amount get no CLV and
    are listed in ``without_value`` (counted as ``n_customers_without_value``). For each
    customer, with H = ``horizon_days``:

    * ``p_alive`` = P(active at the cutoff), ``expected_purchases`` = E[Y(H / period_days)]
      from BG/NBD, ``expected_avg_spend`` = E[spend | x, m̄] from Gamma-Gamma;
    * ``clv`` = expected_avg_spend · expected_purchases · D, where the purchases are spread
      evenly over n = round(H / 30.44) monthly steps and each step is discounted at its end:
      D = (1/n) · Σ_{k=1..n} (1 + annual_discount_rate)^(−k·H/(n·365.25)).
      For H = 365 that is twelve months discounted at the monthly-compounded annual rate.

    ``diagnostics`` reports the customer and repeat-buyer counts, the one-time buyers (no
    repeat period: BG/NBD gives them P(alive) = 1 by construction, see :data:`ONE_TIME_NOTE`),
    the frequency-spend correlation (the spend model assumes none), the discount factor D,
    log-likelihoods and any parameters at a limiting value (``params_at_limit``, e.g. ``a``
    when no one seems to lapse).

    Raises InsufficientData when there are no orders, fewer than ``min_repeat_buyers``
    customers bought in two or more periods, or a model does not converge.
    """
    if not (math.isfinite(horizon_days) and horizon_days > 0):
        raise ConfigError(f"horizon_days must be positive, got {horizon_days!r}")
    if not (math.isfinite(annual_discount_rate) and annual_discount_rate > -1):
        raise ConfigError(f"annual_discount_rate must be > -1, got {annual_discount_rate!r}")
    if min_repeat_buyers < 1:
        raise ConfigError(f"min_repeat_buyers must be at least 1, got {min_repeat_buyers!r}")
    hint = (
        "CLV needs customers who came back: use a longer order history, or a shorter "
        "period_days so that purchases in the same week count separately."
    )
    inputs = (
        orders
        if isinstance(orders, ClvInputs)
        else clv_inputs(orders, cutoff, period_days=period_days)
    )
    summary, cut = inputs.summary, inputs.cutoff
    n_customers = len(summary)
    if n_customers == 0:
        raise InsufficientData(
            f"There are no orders with a positive amount on or before {cut.date()} to estimate "
            "customer lifetime value from."
        )
    n_repeat = int((summary["frequency"] > 0).sum())
    unit = (
        "day"
        if period_days == 1
        else ("week" if period_days == 7 else f"{period_days:g}-day period")
    )
    if n_repeat < min_repeat_buyers:
        raise InsufficientData(
            f"CLV needs at least {min_repeat_buyers} repeat buyers (customers who bought in two "
            f"or more separate {unit}s up to {cut.date()}); found {n_repeat} among "
            f"{n_customers} customer{'s' if n_customers != 1 else ''}.",
            hint=hint,
        )

    x = summary["frequency"].to_numpy(np.float64)
    tx = summary["recency"].to_numpy()
    t_obs = summary["T"].to_numpy()
    m = summary["monetary_value"].to_numpy()
    try:
        bgnbd = BetaGeo().fit(x, tx, t_obs)
        gamma_gamma = GammaGamma().fit(x, m)
    except InsufficientData as exc:
        raise InsufficientData(
            f"{exc.message} (data: {n_repeat} repeat buyers among {n_customers} customers)",
            hint=exc.hint,
        ) from exc
    if gamma_gamma.params_ is None or gamma_gamma.params_["q"] <= 1.0:
        raise InsufficientData(
            "The spend model found no finite average order value (q ≤ 1): a few customers' "
            "spend dwarfs everyone else's.",
            hint="Check the amount column for outliers (e.g. wholesale orders or typos).",
        )

    horizon_periods = horizon_days / period_days
    purchases = np.asarray(bgnbd.expected_purchases(horizon_periods, x, tx, t_obs))
    spend = np.asarray(gamma_gamma.expected_average_spend(x, m))
    discount = _discount_factor(horizon_days, annual_discount_rate)
    customers = summary.copy()
    customers["p_alive"] = bgnbd.probability_alive(x, tx, t_obs)
    customers["expected_purchases"] = purchases
    customers["expected_avg_spend"] = spend
    customers["clv"] = spend * purchases * discount

    params = {**(bgnbd.params_ or {}), **(gamma_gamma.params_ or {})}
    without_value = inputs.without_value
    diagnostics = {
        "n_customers": n_customers,
        "n_repeat_buyers": n_repeat,
        "n_one_time_buyers": n_customers - n_repeat,
        "n_customers_without_value": len(without_value),
        "n_orders_nonpositive_amount": inputs.nonpositive_lines,
        "frequency_monetary_corr": gamma_gamma.diagnostics_["frequency_monetary_corr"],
        "params_at_limit": bgnbd.diagnostics_["at_limit"] + gamma_gamma.diagnostics_["at_limit"],
        "discount_factor": discount,
        "bgnbd_log_likelihood": bgnbd.log_likelihood_,
        "gamma_gamma_log_likelihood": gamma_gamma.log_likelihood_,
    }
    return ClvResult(
        customers=customers,
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        params=params,
        horizon_days=float(horizon_days),
        cutoff=cut,
        period_days=float(period_days),
        annual_discount_rate=float(annual_discount_rate),
        diagnostics=diagnostics,
        without_value=without_value,
    )


def _without_value(orders: pd.DataFrame, cut: pd.Timestamp, valued: pd.Index) -> pd.Index:
    """Customers with an order on or before ``cut`` but none with a positive amount."""
    dates = pd.to_datetime(orders["order_date"])
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    seen = pd.Index(orders.loc[(dates.dt.normalize() <= cut).to_numpy(), "customer_id"].unique())
    return seen.difference(valued, sort=False).rename("customer_id")


def customer_values(result: ClvResult, index: pd.Index) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-customer CLV figures for the customers in ``index``, rounded as they are quoted,
    with a ``note`` wherever a figure is missing or holds by construction; and a report that
    counts those customers (nobody's CLV goes missing silently).

    Columns: ``clv`` (money, 2 decimals), ``p_alive`` (3 decimals; within [0.001, 0.999]
    for repeat buyers, whose rounding must not read as certainty; one-time buyers keep
    BG/NBD's 1 with :data:`ONE_TIME_NOTE`), ``expected_purchases`` (2 decimals) and ``note``
    (:data:`ONE_TIME_NOTE`, :data:`ZERO_VALUE_NOTE`, :data:`NO_ORDERS_NOTE` or None).
    """
    per = result.customers.reindex(index)
    one_time = per["frequency"].eq(0).to_numpy()
    zero_value = isin(index, result.without_value)
    no_orders = per["clv"].isna().to_numpy() & ~zero_value
    p_alive = per["p_alive"].round(3)
    out = pd.DataFrame(
        {
            "clv": per["clv"].round(2),
            "p_alive": p_alive.where(one_time, p_alive.clip(0.001, 0.999)),
            "expected_purchases": per["expected_purchases"].round(2),
        },
        index=index,
    )
    note = np.full(len(index), None, dtype=object)
    note[one_time] = ONE_TIME_NOTE
    note[zero_value] = ZERO_VALUE_NOTE
    note[no_orders] = NO_ORDERS_NOTE
    out["note"] = note
    counts = {"only_zero_value_orders": int(zero_value.sum()), "no_orders": int(no_orders.sum())}
    notes = []
    if counts["only_zero_value_orders"]:
        notes.append(f"{_people(counts['only_zero_value_orders'])} only zero-value orders: no CLV")
    if counts["no_orders"]:
        notes.append(f"{_people(counts['no_orders'])} no orders: no CLV")
    if one_time.any():
        notes.append(
            f"{_people(int(one_time.sum()), 'one-time buyer')} P(alive) 1 by construction (BG/NBD)"
        )
    report = {
        "customers_without_clv": counts,
        "one_time_buyers": int(one_time.sum()),
        "notes": notes,
    }
    return out, report


def _people(n: int, noun: str = "customer") -> str:
    """Subject and verb with the count: "1 customer has", "68 customers have"."""
    return f"{n:,} {noun}{'s have' if n != 1 else ' has'}"


def holdout_check(
    orders: pd.DataFrame,
    calibration_end: pd.Timestamp,
    holdout_end: pd.Timestamp | None = None,
    *,
    period_days: float = 7.0,
) -> pd.DataFrame:
    """Fit BG/NBD on orders up to ``calibration_end`` and compare its predictions with what
    the calibration customers actually bought in (calibration_end, holdout_end].

    Returns one row per calibration frequency (0..6 and "7+") and a "total" row with columns
    customers, actual (mean purchase periods per customer in the holdout) and predicted
    (mean expected purchases): the conditional-expectations check of FHL 2005.
    """
    cal_end = pd.Timestamp(calibration_end).normalize()
    dates = pd.to_datetime(orders["order_date"]).dt.normalize()
    end = dates.max() if holdout_end is None else pd.Timestamp(holdout_end).normalize()
    if end <= cal_end:
        raise InsufficientData(f"No holdout period: the orders end on {end.date()}.")
    summary = rfm_summary(orders, cal_end, period_days=period_days)
    if summary.empty:
        raise InsufficientData(f"There are no orders on or before {cal_end.date()}.")
    model = BetaGeo().fit(summary["frequency"], summary["recency"], summary["T"])

    # Holdout purchase periods, counted forward from the day after calibration_end.
    later = (dates > cal_end) & (dates <= end)
    age = (dates[later] - cal_end).dt.days.to_numpy() - 1
    holdout = pd.DataFrame(
        {"customer_id": orders["customer_id"].to_numpy()[later], "p": age // period_days}
    ).drop_duplicates()
    actual = holdout.groupby("customer_id").size().reindex(summary.index, fill_value=0)
    horizon = ((end - cal_end).days) / period_days
    predicted = model.expected_purchases(
        horizon, summary["frequency"], summary["recency"], summary["T"]
    )
    frame = pd.DataFrame(
        {
            "bucket": np.where(summary["frequency"] >= 7, "7+", summary["frequency"].astype(str)),
            "actual": actual.to_numpy(np.float64),
            "predicted": predicted,
        }
    )
    by = frame.groupby("bucket").agg(
        customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")
    )
    by.loc["total"] = [len(frame), frame["actual"].mean(), frame["predicted"].mean()]
    by["customers"] = by["customers"].astype(int)
    return by


def summarise_clv(customers: pd.DataFrame, segments: pd.Series | None = None) -> pd.DataFrame:
    """CLV per segment (or overall), sorted by total CLV, rounded as it should be quoted.

    ``customers`` is :attr:`ClvResult.customers`; ``segments`` maps customer_id to a segment
    (customers it does not cover are reported as "(no segment)"). Columns: customers,
    mean_clv, median_clv, total_clv (money, 2 decimals; over the result's horizon, 12 months
    by default), mean_p_alive and share_of_clv (fractions, 3 decimals).
    """
    if segments is None:
        labels = pd.Series("all", index=customers.index)
        name = "segment"
    else:
        labels = segments.reindex(customers.index).astype(object).fillna("(no segment)")
        name = segments.name if isinstance(segments.name, str) else "segment"
    frame = pd.DataFrame(
        {
            "segment": labels.to_numpy(),
            "clv": customers["clv"].to_numpy(np.float64),
            "p_alive": customers["p_alive"].to_numpy(np.float64),
        }
    )
    grouped = frame.groupby("segment", sort=False)
    out = pd.DataFrame(
        {
            "customers": grouped.size(),
            "mean_clv": grouped["clv"].mean(),
            "median_clv": grouped["clv"].median(),
            "total_clv": grouped["clv"].sum(),
            "mean_p_alive": grouped["p_alive"].mean(),
        }
    )
    grand = float(frame["clv"].sum())
    out["share_of_clv"] = out["total_clv"] / grand if grand > 0 else 0.0
    out = out.sort_values("total_clv", ascending=False, kind="stable")
    out.index.name = name
    out["customers"] = out["customers"].astype(int)
    money = ["mean_clv", "median_clv", "total_clv"]
    out[money] = out[money].round(2)
    out[["mean_p_alive", "share_of_clv"]] = out[["mean_p_alive", "share_of_clv"]].round(3)
    return out
