"""What an incremental run of cycles recomputes: the cycles through the touched accounts.

The cycle family's ``scope`` (see :class:`fundtrace.detect.Family`). After a batch, a stored cycle alert
(temporal or static) none of whose accounts the batch touched is still exact: its payments are not new
(a new payment touches both its ends); whether a payment is a candidate depends on the pass-through
episodes of its two ends (only touched accounts' episodes are recomputed); the degree cap and the quiet
test count an account's own payments (only touched accounts have new ones), and a quiet member's
payments are all on the cycle's own edges; the trims of ``queries/detect/cycles.sql`` never remove a
payment of a cycle whose payments are all candidates. So the alerts with a touched member (role
``member``) are the only ones that can change. They are found by:

1. the candidate payments ``cy_tx`` and the degrees ``cy_deg`` of every account, exactly as a full run
   makes them, over every payment of the family's context (``queries/detect/cycles.sql`` up to ``cy_tx``);
2. per window (buckets ``w`` and ``w + 1``), the accounts on a walk of at most ``cycle_max_len``
   candidate edges from a touched account back to one (``queries/detect/cycles_scope.sql``: forward
   and backward distances that add up to at most the cycle length);
3. ``cy_tx`` narrowed to the payments between accounts of one window's reach (``cy_sc_tx``), and the
   usual search (temporal walk, static cycles, evidence) over those.

Every cycle through a touched account has all its accounts in its window's reach, so all its payments,
and every candidate payment of its members in the window, are in the narrowed ``cy_tx``: it is found,
with the same evidence and amounts. A member is quiet when all its payments in the window (``cy_deg``,
over every payment) are candidates on one edge in and one out, which then are the cycle's own edges:
the same over the narrowed payments. And every cycle found over them is one of a full run (a subset of
its candidates), through a touched account or dropped as not keyed by the runner.
"""

from __future__ import annotations

from fundtrace import queries
from fundtrace.detect.base import params_for
from fundtrace.detect.settings import DetectSettings

__all__ = ["cycles_scope"]

ROLES = {"cycle": ("member",)}


def cycles_scope(engine, settings: DetectSettings, table: str) -> dict[str, tuple[str, ...]]:
    """Make the candidate payments of cycles through the touched accounts (``cy_tx``); key those accounts.

    Parameters
    ----------
    engine : Engine
        With ``dt_tx`` (every payment of the family's context), ``pt_hits`` (complete) and
        ``dx_touched`` (``account_id``: the accounts new payments touched).
    settings : DetectSettings
    table : str
        The temp table to create with the key accounts (``account_id``): the touched accounts.

    Returns
    -------
    dict
        ``{"cycle": ("member",)}``: the cycle alerts with a touched member are the ones recomputed.

    Notes
    -----
    Leaves ``cy_tx`` (narrowed), ``cy_deg`` and ``cy_sc_tx``, from which
    :func:`fundtrace.detect.cycles.detect_cycles` starts; ``dt_tx`` is not narrowed, since the
    candidates and degrees need every payment of the context. The reach is two bounded recursive
    walks over the distinct edges of the candidates (~10 k at 10 M payments); the candidate test
    over every payment of the context is the largest part.
    """
    from fundtrace.detect.cycles import _run

    _run(engine, "detect_cycles", settings, upto="cy_tx")
    q = queries.get("detect_cycles_scope")
    engine.run_steps(q.steps, q.bind(params_for(q, settings)))
    engine.materialise("cy_tx", 'SELECT * FROM "cy_sc_tx"')
    steps = [n for n, _ in queries.get("detect_cycles").steps]
    for name in steps[: steps.index("cy_deg")]:  # the candidates before the degree cap: not read again
        engine.execute(f'DROP TABLE IF EXISTS "{name}"')
    engine.materialise(table, "SELECT account_id FROM dx_touched")
    return dict(ROLES)
