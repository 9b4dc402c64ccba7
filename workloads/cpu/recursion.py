"""cpu-6: recursive algorithms and tree traversal.

Iterations rotate over four kinds of recursion, each on a size that grows over a cycle of
iterations, all written as plain recursive Python functions (the interpreter's calls are the
named work):

- memo: memoised recursions over a grid of states, binomial coefficients by Pascal's rule and
  Delannoy numbers; each result must equal its closed form.
- ackermann: the Ackermann function A(m, n) for m <= 3 by its definition (hundreds of thousands
  of calls, a thousand deep); each value must equal its closed form (A(3, n) = 2^(n+3) - 3).
- hanoi: the Tower of Hanoi with real pegs; every move must be legal, the number of moves must
  be 2^n - 1, and all disks must end on the target peg in order.
- tree: a random binary search tree built by recursive insertion and walked in order, pre-order
  and post-order, or a perfect binary tree built and walked recursively; node counts, the
  in-order sequence, and the perfect tree's leaves and depth sum must match their closed forms.

The primary metric counts nodes visited: every recursive call that does work (a state, an
Ackermann call, a disk moved, a tree node inserted past or walked through).
"""

from __future__ import annotations

import sys
from math import comb, log2

from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, per_operation_rates, timed

# Sizes at scale 1, the largest chosen so an iteration takes about 0.2 s on one core. Sizes whose
# work grows exponentially (disks, heights, Ackermann's n) shift with log2 of the scale.
_MEMO_STATES = (2_000, 200_000)
_ACKERMANN_N = (3, 7)  # A(3, n) takes about 4^(n+1) calls
_ACKERMANN_DEEPEST = 11  # A(3, n) recurses about 2^(n+3) deep: 16,000 at most, under the limit
_HANOI_DISKS = (10, 19)
_TREE_KEYS = (2_000, 50_000)
_PERFECT_HEIGHT = (10, 17)
_TREE_NODE_BYTES = 200  # a node (a list of three) and its key, with headroom
_MEMO_STATE_BYTES = 300  # a memoised state: its dict entry, tuple key and big integer
_CHECK_EVERY = 1 << 16  # calls between stop checks
# Iterations per growth cycle: coprime with the four operations (and their variants),
# so each meets every size in turn.
_GROWTH_PERIOD = 9
_RECURSION_LIMIT = 20_000  # A(3, 7) recurses about 1,030 deep; trees and memos less
_OPERATIONS = ("memo", "ackermann", "hanoi", "tree")

Node = list  # [key, left, right]: lists keep a node small and mutable


class Visits:
    """Counts recursive calls and checks for a stop every so many."""

    __slots__ = ("checkpoint", "count")

    def __init__(self, iteration: Iteration) -> None:
        self.count, self.checkpoint = 0, iteration.checkpoint

    def tick(self) -> None:
        self.count += 1
        if self.count % _CHECK_EVERY == 0:
            self.checkpoint()


# -- memoised recursion --------------------------------------------------------------------------
def binomial(n: int, k: int, visits: Visits) -> int:
    memo: dict[tuple[int, int], int] = {}

    def c(n: int, k: int) -> int:
        if k in (0, n):
            return 1
        if (n, k) not in memo:
            visits.tick()
            memo[n, k] = c(n - 1, k - 1) + c(n - 1, k)
        return memo[n, k]

    return c(n, k)


def delannoy(m: int, n: int, visits: Visits) -> int:
    """Lattice paths from (0, 0) to (m, n) with steps east, north and north-east."""
    memo: dict[tuple[int, int], int] = {}

    def d(m: int, n: int) -> int:
        if m == 0 or n == 0:
            return 1
        if (m, n) not in memo:
            visits.tick()
            memo[m, n] = d(m - 1, n) + d(m, n - 1) + d(m - 1, n - 1)
        return memo[m, n]

    return d(m, n)


def delannoy_closed_form(m: int, n: int) -> int:
    return sum(comb(m, k) * comb(n, k) * 2**k for k in range(min(m, n) + 1))


# -- Ackermann ---------------------------------------------------------------------------------
def ackermann(m: int, n: int, visits: Visits) -> int:
    def a(m: int, n: int) -> int:
        visits.tick()
        if m == 0:
            return n + 1
        if n == 0:
            return a(m - 1, 1)
        return a(m - 1, a(m, n - 1))

    return a(m, n)


def ackermann_closed_form(m: int, n: int) -> int:
    return {0: n + 1, 1: n + 2, 2: 2 * n + 3, 3: 2 ** (n + 3) - 3}[m]


# -- Tower of Hanoi ------------------------------------------------------------------------------
def hanoi(disks: int, visits: Visits) -> tuple[list[list[int]], int, bool]:
    """Move ``disks`` from peg 0 to peg 2; returns the pegs, the moves made, and whether every
    move put a disk on a larger one (or an empty peg)."""
    pegs: list[list[int]] = [list(range(disks, 0, -1)), [], []]
    moves, legal = 0, True

    def move(k: int, source: int, target: int, spare: int) -> None:
        nonlocal moves, legal
        if k == 0:
            return
        move(k - 1, source, spare, target)
        visits.tick()
        disk = pegs[source].pop()
        legal = legal and disk == k and (not pegs[target] or pegs[target][-1] > disk)
        pegs[target].append(disk)
        moves += 1
        move(k - 1, spare, target, source)

    move(disks, 0, 2, 1)
    return pegs, moves, legal


# -- trees -------------------------------------------------------------------------------------
def insert(node: Node | None, key: int, visits: Visits) -> Node:
    if node is None:
        return [key, None, None]
    visits.tick()
    if key < node[0]:
        node[1] = insert(node[1], key, visits)
    else:
        node[2] = insert(node[2], key, visits)
    return node


def in_order(node: Node | None, out: list[int], visits: Visits) -> None:
    if node is not None:
        in_order(node[1], out, visits)
        visits.tick()
        out.append(node[0])
        in_order(node[2], out, visits)


def pre_order(node: Node | None, out: list[int], visits: Visits) -> None:
    if node is not None:
        visits.tick()
        out.append(node[0])
        pre_order(node[1], out, visits)
        pre_order(node[2], out, visits)


def post_order(node: Node | None, out: list[int], visits: Visits) -> None:
    if node is not None:
        post_order(node[1], out, visits)
        post_order(node[2], out, visits)
        visits.tick()
        out.append(node[0])


def height(node: Node | None) -> int:
    return 0 if node is None else 1 + max(height(node[1]), height(node[2]))


def perfect_tree(levels: int, visits: Visits) -> Node | None:
    """A perfect binary tree with ``levels`` levels (2^levels - 1 nodes), keyed by depth."""

    def build(depth: int) -> Node | None:
        if depth == levels:
            return None
        visits.tick()
        return [depth, build(depth + 1), build(depth + 1)]

    return build(0)


def count_tree(node: Node | None, visits: Visits) -> tuple[int, int, int]:
    """(nodes, leaves, sum of depths) by a recursive walk; the depth is each node's key."""
    if node is None:
        return 0, 0, 0
    visits.tick()
    left, right = count_tree(node[1], visits), count_tree(node[2], visits)
    leaf = node[1] is None and node[2] is None
    return (
        1 + left[0] + right[0],
        int(leaf) + left[1] + right[1],
        node[0] + left[2] + right[2],
    )


# -- the operations ------------------------------------------------------------------------------
def _exponential_size(iteration: Iteration, bounds: tuple[int, int], base: float = 2.0) -> int:
    """A size whose work grows as base^size: the scale shifts the largest by log_base(scale)."""
    low, high = bounds
    high = max(low, round(high + log2(iteration.scale) / log2(base)))
    return round(iteration.grow(low, high, period=_GROWTH_PERIOD))


def _linear_size(iteration: Iteration, bounds: tuple[int, int], minimum: int = 100) -> int:
    """A size whose work grows in proportion to it: the scale multiplies it."""
    low, high = (max(minimum, bound * iteration.scale) for bound in bounds)
    return int(iteration.grow(low, high, period=_GROWTH_PERIOD))


def _memo(iteration: Iteration, visits: Visits, result: IterationResult) -> None:
    states = min(
        _linear_size(iteration, _MEMO_STATES), iteration.memory_budget // _MEMO_STATE_BYTES
    )
    if iteration.rotate(("binomial", "delannoy"), every=len(_OPERATIONS)) == "binomial":
        n = int((4 * states) ** 0.5)  # C(n, n/2) memoises about n^2 / 4 states
        k = n // 2 - int(iteration.rng.integers(0, n // 8 + 1))
        value, expected, label = binomial(n, k, visits), comb(n, k), f"C({n}, {k})"
    else:
        m = int(states**0.5)
        n = m + int(iteration.rng.integers(0, m // 4 + 1))
        value, expected = delannoy(m, n, visits), delannoy_closed_form(m, n)
        label = f"D({m}, {n})"
    result.size = states
    result.check("memoised recursions equal their closed forms", value == expected, label)
    result.fingerprint_with("memo", label, value % (1 << 64))


def _ackermann(iteration: Iteration, visits: Visits, result: IterationResult) -> None:
    n = min(_exponential_size(iteration, _ACKERMANN_N, base=4.0), _ACKERMANN_DEEPEST)
    small = int(iteration.rng.integers(n, 20 * n))  # A(2, k) takes about 2 k^2 calls
    cases = [(3, n), (2, small), (1, small)]
    values = [ackermann(m, k, visits) for m, k in cases]
    expected = [ackermann_closed_form(m, k) for m, k in cases]
    result.size = n
    result.check(
        "Ackermann values equal the known closed forms",
        values == expected,
        f"A(3, {n}) = {values[0]}",
    )
    result.fingerprint_with("ackermann", cases, values)


def _hanoi(iteration: Iteration, visits: Visits, result: IterationResult) -> None:
    disks = _exponential_size(iteration, _HANOI_DISKS)
    pegs, moves, legal = hanoi(disks, visits)
    result.size = disks
    result.check(
        "Tower of Hanoi takes 2^n - 1 legal moves and ends in order",
        legal and moves == 2**disks - 1 and pegs == [[], [], list(range(disks, 0, -1))],
        f"{disks} disks, {moves} moves",
    )
    result.fingerprint_with("hanoi", disks, moves)


def _random_tree(iteration: Iteration, visits: Visits, result: IterationResult) -> None:
    count = min(_linear_size(iteration, _TREE_KEYS), iteration.memory_budget // _TREE_NODE_BYTES)
    keys = iteration.rng.permutation(count * 4)[:count].tolist()
    root = None
    for key in keys:
        root = insert(root, key, visits)
    walks: tuple[list[int], list[int], list[int]] = ([], [], [])
    in_order(root, walks[0], visits)
    pre_order(root, walks[1], visits)
    post_order(root, walks[2], visits)
    depth = height(root)
    visits.count += count  # the height walk visits every node too
    result.size = count
    result.check(
        "traversals visit every node, in order for the in-order walk",
        walks[0] == sorted(keys)
        and len(walks[1]) == len(walks[2]) == count
        and walks[1][0] == walks[2][-1] == keys[0],
        f"{count} nodes, height {depth}",
    )
    result.fingerprint_with("tree", count, depth, walks[1][: 1 << 10], walks[2][: 1 << 10])


def _perfect_tree(iteration: Iteration, visits: Visits, result: IterationResult) -> None:
    levels = _exponential_size(iteration, _PERFECT_HEIGHT)
    levels = min(levels, int(log2(max(2.0, iteration.memory_budget / _TREE_NODE_BYTES))))
    root = perfect_tree(levels, visits)
    nodes, leaves, depths = count_tree(root, visits)
    h = levels - 1  # the height of the tree, counted in edges
    result.size = nodes
    result.check(
        "perfect tree has 2^(h+1) - 1 nodes, 2^h leaves and depth sum (h-1) 2^(h+1) + 2",
        (nodes, leaves, depths) == (2 ** (h + 1) - 1, 2**h, (h - 1) * 2 ** (h + 1) + 2),
        f"height {h}: {nodes} nodes",
    )
    result.fingerprint_with("perfect", levels, nodes, leaves, depths)


def _tree(iteration: Iteration, visits: Visits, result: IterationResult) -> None:
    build = iteration.rotate((_random_tree, _perfect_tree), every=len(_OPERATIONS))
    build(iteration, visits, result)


_RUN = {"memo": _memo, "ackermann": _ackermann, "hanoi": _hanoi, "tree": _tree}


def one_iteration(iteration: Iteration) -> IterationResult:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), _RECURSION_LIMIT))
    operation = iteration.rotate(_OPERATIONS)
    result, visits = IterationResult(), Visits(iteration)
    with timed(result, operation):
        _RUN[operation](iteration, visits, result)
    result.add("nodes", visits.count)
    result.add(f"nodes_{operation}", visits.count)
    return result


def run(ctx: Context) -> None:
    rates = {"nodes_visited_per_s": Rate("nodes", _OPERATIONS, "nodes/s")}
    totals = ctx.run_iterations(one_iteration, rates=rates)
    ctx.report_rates(totals, per_operation_rates(totals, "nodes", _OPERATIONS, "nodes/s"))
