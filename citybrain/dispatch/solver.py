"""Assign resource units to incident needs at least total travel time: a transportation problem.

Incident i needs d[i] units, resource r offers s[r] units (a vehicle or team is one unit, a shelter or a
supply depot its capacity), cost[i, r] is the travel time in minutes (inf where r lacks the capability).
Serving as many units as possible comes first, then the least total unit-minutes.

- `assignment`: exact; scipy.optimize.linear_sum_assignment on the capacity expansion (one row per
  needed unit, one column per offered unit), used when the expansion is small enough.
- `flow`: exact; the same problem as a linear program solved by HiGHS (scipy.optimize.linprog); the
  constraint matrix is totally unimodular, so the vertex optimum is integral (milp is the fallback).
- `greedy`: nearest pair first; a heuristic kept for comparison (its gap is measured in the tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, linprog, milp
from scipy.sparse import coo_matrix

EXPANSION_LIMIT = 6_000_000  # cells of the expanded assignment matrix before switching to `flow`


@dataclass
class Solution:
    """Flows (incident, resource, units, minutes each), the total unit-minutes and the unserved units."""

    flows: list[tuple[int, int, int, float]] = field(default_factory=list)
    total: float = 0.0
    unmet: list[int] = field(default_factory=list)
    method: str = ""
    seconds: float = 0.0

    @property
    def served(self) -> int:
        """Units served."""
        return sum(f[2] for f in self.flows)


def _clip(cost: np.ndarray, demand: np.ndarray, supply: np.ndarray) -> np.ndarray:
    """A resource never usefully offers more units than the capable incidents need together."""
    feasible = np.isfinite(cost)
    reach = (feasible * demand[:, None]).sum(axis=0)
    return np.minimum(supply, reach).astype(int)


def _finish(cost: np.ndarray, demand: np.ndarray, units: dict[tuple[int, int], int], method: str,
            began: float) -> Solution:
    flows = [(i, r, u, float(cost[i, r])) for (i, r), u in sorted(units.items()) if u > 0]
    served = np.zeros(len(demand), dtype=int)
    for i, _, u, _ in flows:
        served[i] += u
    return Solution(flows, float(sum(u * c for _, _, u, c in flows)), [int(x) for x in demand - served], method,
                    time.perf_counter() - began)


def solve_assignment(cost: np.ndarray, demand: np.ndarray, supply: np.ndarray) -> Solution:
    """Exact: linear_sum_assignment on the capacity expansion (unserved units get a dominating penalty)."""
    began = time.perf_counter()
    supply = _clip(cost, demand, supply)
    rows = np.repeat(np.arange(len(demand)), demand)
    cols = np.repeat(np.arange(len(supply)), supply)
    if len(rows) == 0:
        return _finish(cost, demand, {}, "assignment", began)
    finite = cost[np.isfinite(cost)]
    big = (float(finite.max()) + 1.0) * (len(rows) + 1) if finite.size else 1.0
    matrix = np.full((len(rows), len(cols) + len(rows)), big)
    if len(cols):
        sub = cost[np.ix_(rows, cols)]
        matrix[:, :len(cols)] = np.where(np.isfinite(sub), sub, big * 2)
    r_idx, c_idx = linear_sum_assignment(matrix)
    units: dict[tuple[int, int], int] = {}
    for ri, ci in zip(r_idx, c_idx, strict=True):
        if ci < len(cols) and matrix[ri, ci] < big:
            key = (int(rows[ri]), int(cols[ci]))
            units[key] = units.get(key, 0) + 1
    return _finish(cost, demand, units, "assignment", began)


def solve_flow(cost: np.ndarray, demand: np.ndarray, supply: np.ndarray) -> Solution:
    """Exact: the transportation problem as an integer program (HiGHS), with penalised unserved units."""
    began = time.perf_counter()
    n, m = cost.shape
    supply = _clip(cost, demand, supply)
    ii, rr = np.nonzero(np.isfinite(cost) & (supply[None, :] > 0) & (demand[:, None] > 0))
    k = len(ii)
    finite = cost[ii, rr]
    big = (float(finite.max()) + 1.0) * (int(demand.sum()) + 1) if k else 1.0
    c = np.concatenate([finite, np.full(n, big)])
    # rows 0..n-1: sum_r x_ir + u_i = d_i ; rows n..n+m-1: sum_i x_ir <= s_r
    a_rows = np.concatenate([ii, np.arange(n), n + rr])
    a_cols = np.concatenate([np.arange(k), k + np.arange(n), np.arange(k)])
    a = coo_matrix((np.ones(len(a_rows)), (a_rows, a_cols)), shape=(n + m, k + n)).tocsr()
    lo = np.concatenate([demand, np.zeros(m)]).astype(float)
    hi = np.concatenate([demand, supply]).astype(float)
    lp = linprog(c, A_ub=a[n:], b_ub=hi[n:], A_eq=a[:n], b_eq=lo[:n], bounds=(0, None), method="highs-ipm")
    xs = lp.x if lp.status == 0 else None
    if xs is None or np.abs(xs - np.rint(xs)).max() > 1e-6:  # not a vertex: solve as an integer program
        res = milp(c, constraints=LinearConstraint(a, lo, hi), integrality=np.ones(k + n), bounds=Bounds(0, np.inf))
        if res.x is None:
            raise RuntimeError(f"dispatch solver failed: {res.message}")
        xs = res.x
    x = np.rint(xs[:k]).astype(int)
    units = {(int(ii[j]), int(rr[j])): int(x[j]) for j in np.nonzero(x)[0]}
    return _finish(cost, demand, units, "flow", began)


def solve_greedy(cost: np.ndarray, demand: np.ndarray, supply: np.ndarray) -> Solution:
    """Heuristic: repeatedly serve the cheapest remaining (incident, resource) pair as far as it goes."""
    began = time.perf_counter()
    need = demand.astype(int).copy()
    left = supply.astype(int).copy()
    ii, rr = np.nonzero(np.isfinite(cost))
    order = np.argsort(cost[ii, rr], kind="stable")
    units: dict[tuple[int, int], int] = {}
    for j in order:
        i, r = int(ii[j]), int(rr[j])
        u = min(need[i], left[r])
        if u > 0:
            units[(i, r)] = u
            need[i] -= u
            left[r] -= u
    return _finish(cost, demand, units, "greedy", began)


def solve(cost: np.ndarray, demand: np.ndarray, supply: np.ndarray, method: str = "auto") -> Solution:
    """Solve with `method` (auto: exact assignment when the expansion is small enough, else exact flow)."""
    demand = np.asarray(demand, dtype=int)
    supply = np.asarray(supply, dtype=int)
    cost = np.asarray(cost, dtype=float)
    if method == "auto":
        units = int(demand.sum())
        cols = int(_clip(cost, demand, supply).sum()) + units
        method = "assignment" if units * cols <= EXPANSION_LIMIT else "flow"
    solver = {"assignment": solve_assignment, "flow": solve_flow, "greedy": solve_greedy}.get(method)
    if solver is None:
        raise ValueError(f"method: {method!r} is not one of auto, assignment, flow, greedy")
    return solver(cost, demand, supply)
