"""Incremental layering and bipartite: only the alerts the touched accounts can change are recomputed, exactly.

Layering's scope (``fundtrace.detect.scopes``) keys scatter-gather alerts by source and sink and
gather-scatter alerts by hub, and narrows the payments to those the key accounts' alerts read; bipartite
recomputes every window of its span. Each case loads a first batch, runs, loads a second batch and runs again; the
stored raw and published alerts, episodes and hops must equal a full run over both batches, the case's
alerts must have changed as described, and a bystander scatter-gather alert after the cutoff, far from the
new payments, must have been kept, not recomputed. Each case fails when the rule it is about is broken
(checked by breaking each once)."""

from __future__ import annotations

import pytest

import fundtrace.detect as detect
from test_detect_incremental_state import _full, _incremental, _raw

B = 3840  # minutes after T0: a layering bucket (6 h, from 12:00 UTC) starts here
_NOISE = [(f"n{k}", 2000 + 37 * k, f"p{k % 9}", f"p{(k + 4) % 9}", 40.0 + k) for k in range(30)]


def _sg(tag: str, src: str, sink: str, mids, t0: int, amount: float = 1000.0) -> list[tuple]:
    """Two-hop paths src -> mid -> sink: a payment in to each mid, about the same amount on an hour later."""
    rows = []
    for j, m in enumerate(mids):
        rows.append((f"{tag}a{j}", t0 + j, src, m, amount + j))
        rows.append((f"{tag}b{j}", t0 + 60 + j, m, sink, (amount + j) * 0.98))
    return rows


def _gs(tag: str, hub: str, payers, payees, t0: int) -> list[tuple]:
    """A hub paid by each payer (1000), then paying each payee 650 (gathered, then scattered)."""
    rows = [(f"{tag}i{j}", t0 + 10 * j, p, hub, 1000.0) for j, p in enumerate(payers)]
    rows += [(f"{tag}o{j}", t0 + 60 + 5 * j, hub, q, 650.0) for j, q in enumerate(payees)]
    return rows


def _hub(tag: str, acct: str, t0: int, out: bool = True) -> list[tuple]:
    """61 payments of ``acct`` with new accounts within 2 hours: more than layer_max in the bucket."""
    return [
        (f"{tag}{i}", t0 + 2 * i, acct, f"{tag}z{i}", 20.0 + i)
        if out
        else (f"{tag}{i}", t0 + 2 * i, f"{tag}z{i}", acct, 20.0 + i)
        for i in range(61)
    ]


BYSTANDER = _sg("by", "bs", "bk", ["bm1", "bm2", "bm3"], B + 200)  # after the cutoff, untouched


def _case_path_to_untouched_source():
    """A new payment m1 -> k2 (both ends new to nothing else) completes a third path s2 -> m1 -> k2: the source s2
    is untouched, its payment to m1 old. The alert of s -> {m1, m2, m3} -> k through m1 stays as it was."""
    first = _sg("a", "s", "k", ["m1", "m2", "m3"], B) + _sg("c", "s2", "k2", ["m4", "m5"], B + 5)
    first += [("c9", B + 7, "s2", "m1", 1010.0)]
    later = [("n1", B + 80, "m1", "k2", 1000.0)]
    return first, later, {("scatter_gather", "s2", "k2"): "new", ("scatter_gather", "s", "k"): "kept"}


def _case_key_source_recomputed_from_its_mids():
    """A key source's alert is recomputed whole: a new payment of s3 elsewhere makes it a key, and its paths run
    through intermediates no new payment touches (their payments on must be read)."""
    first = _sg("d", "s3", "k3", ["m6", "m7", "m8"], B)
    later = [("n2", B + 30, "s3", "elsewhere", 70.0)]
    return first, later, {("scatter_gather", "s3", "k3"): "kept"}


def _case_path_from_untouched_sink():
    """The mirror: a new payment s4 -> m9 completes a third path s4 -> m9 -> k4 whose sink is untouched, its payment
    in from m9 old."""
    first = _sg("e", "s4", "k4", ["m10", "m11"], B) + [("e9", B + 65, "m9", "k4", 990.0)]
    later = [("n3", B + 5, "s4", "m9", 1000.0)]
    return first, later, {("scatter_gather", "s4", "k4"): "new"}


def _case_mid_becomes_hub_first():
    """61 new payments into m13 make it a hub in the bucket of the payments in to the intermediates (those on
    leave in the next bucket): the path s5 -> m13 -> k5 goes and with it the alert, though neither s5 nor k5 is
    touched (s5 is m13's counterparty in that bucket, k5 is not)."""
    first = _sg("f", "s5", "k5", ["m12", "m13", "m14"], B + 300)
    later = _hub("h", "m13", B + 100, out=False)
    return first, later, {("scatter_gather", "s5", "k5"): "gone"}


def _case_mid_becomes_hub_second():
    """As above, but m13 becomes a hub in the next bucket, that of the payments on (k5 is its counterparty there,
    s5 is not)."""
    first = _sg("f", "s5", "k5", ["m12", "m13", "m14"], B + 300)
    later = _hub("h", "m13", B + 400, out=False)
    return first, later, {("scatter_gather", "s5", "k5"): "gone"}


def _case_counterparty_becomes_hub():
    """Gather-scatter hubs whose counterparties become hubs (61 new payments of each, elsewhere): hub g1 loses its
    payer c1 (one payer left: no alert); hub g2's late payment in from c4 no longer counts, so every payment in
    now comes before every payment out (an alert); hub g3 loses its payee d7 (two payees left: no alert). None of
    g1, g2, g3 is touched."""
    first = _gs("g", "g1", ["c1", "c2"], ["d1", "d2", "d3"], B)
    first += _gs("j", "g2", ["c5", "c6"], ["e1", "e2", "e3"], B) + [("j9", B + 100, "c4", "g2", 50.0)]
    first += _gs("q", "g3", ["c8", "c9"], ["d7", "d8", "d9"], B)
    later = _hub("u", "c1", B + 120) + _hub("v", "c4", B + 120) + _hub("w", "d7", B + 120, out=False)
    expect = {("gather_scatter", "g1", None): "gone", ("gather_scatter", "g2", None): "new"}
    return first, later, expect | {("gather_scatter", "g3", None): "gone"}


def _case_bipartite_block_read_whole():
    """Bipartite reads every payment of its context whatever layering narrowed: an old block (payers that received
    money an hour before paying the same payees, who pass it on) is recomputed from the cutoff and stays."""
    block = [(f"bu{i}", B - 60 + i, f"bu{i}", f"bN{i}", 4000.0) for i in range(3)]
    block += [(f"bc{i}{q}", B + 10 * i + 5 * q, f"bN{i}", f"bM{q}", 2000.0) for i in range(3) for q in range(2)]
    block += [(f"bp{q}", B + 130 + q, f"bM{q}", f"by{q}", 5900.0) for q in range(2)]
    # wa passes on money it received five hours before the new batch: the changed episode takes bipartite's cutoff
    # back to layering's, so that bipartite reuses layering's hub buckets (and must not read its narrowed payments)
    block += [("w0", B - 150, "wv", "wa", 500.0)]
    later = [("n4", B + 150, "wa", "wz", 490.0)]
    return block, later, {("bipartite", "bN0", None): "kept"}


def _block(tag: str, payers, payees, t0: int, extra=()) -> list[tuple]:
    """Payers that receive money an hour before paying it to every payee (2000 each), payees that pass on all they
    received; ``extra``: further (payer, payee) pairs."""
    pairs = [(p, q) for p in payers for q in payees] + list(extra)
    rows = []
    for i, p in enumerate(sorted({p for p, _ in pairs})):
        n = sum(1 for a, _ in pairs if a == p)
        rows.append((f"{tag}u{i}", t0 - 60 + i, f"{tag}v{i}", p, 2000.0 * n))
    for j, (p, q) in enumerate(pairs):
        rows.append((f"{tag}c{j}", t0 + 2 * j, p, q, 2000.0))
    for j, q in enumerate(sorted({q for _, q in pairs})):
        n = sum(1 for _, b in pairs if b == q)
        rows.append((f"{tag}o{j}", t0 + 130 + j, q, f"{tag}y{j}", 1960.0 * n))
    return rows


def _bridged_blocks():
    """Two dense blocks (N1..N3 x M0, M1 and R1..R3 x P0, P1) that N0, paying M0, P0 and P1, joins into one sparse
    component: no alert while N0 counts."""
    return _block("k", ["N1", "N2", "N3"], ["M0", "M1"], B) + _block(
        "r", ["R1", "R2", "R3"], ["P0", "P1"], B, [("N0", "M0"), ("N0", "P0"), ("N0", "P1")]
    )


def _case_block_joined_by_a_new_payer():
    """A new payer (received money, then paid both payees of an old block, who pass that on too): the block's alert
    is replaced by one with four payers, read from the old payments of its untouched payers too."""
    first = _block("k", ["N1", "N2", "N3"], ["M0", "M1"], B)
    later = [("nu", B - 30, "nv", "N4", 4000.0)]
    later += [(f"nc{q}", B + 20 + q, "N4", f"M{q}", 2000.0) for q in range(2)]
    later += [(f"no{q}", B + 140 + q, f"M{q}", f"kz{q}", 1960.0) for q in range(2)]
    return first, later, {("bipartite", "N1", None): "changed", ("bipartite", "N4", None): "new"}


def _case_bridge_becomes_a_hub():
    """N0 becomes a hub in the bucket (61 new payments): its payments leave the graph and the two blocks it joined
    are alerts, though none of their accounts is touched."""
    return (
        _bridged_blocks(),
        _hub("h", "N0", B + 150),
        {("bipartite", "N1", None): "new", ("bipartite", "R1", None): "new"},
    )


def _case_bridge_no_longer_passes_money_through():
    """A late payment out of N0 (more than it received) ends its pass-through episode: as above, the blocks it joined
    are alerts."""
    later = [("late", B + 100, "N0", "w", 9000.0)]
    return _bridged_blocks(), later, {("bipartite", "N1", None): "new", ("bipartite", "R1", None): "new"}


CASES = {
    "path to an untouched source": _case_path_to_untouched_source,
    "key source recomputed from its mids": _case_key_source_recomputed_from_its_mids,
    "path from an untouched sink": _case_path_from_untouched_sink,
    "intermediate becomes a hub where paid": _case_mid_becomes_hub_first,
    "intermediate becomes a hub where paying on": _case_mid_becomes_hub_second,
    "gather-scatter counterparty becomes a hub": _case_counterparty_becomes_hub,
    "bipartite block read whole": _case_bipartite_block_read_whole,
    "bipartite block joined by a new payer": _case_block_joined_by_a_new_payer,
    "bipartite bridge becomes a hub": _case_bridge_becomes_a_hub,
    "bipartite bridge no longer passes money through": _case_bridge_no_longer_passes_money_through,
}


def _alerts_of(state: tuple, typology: str, account: str) -> set[str]:
    """Ids of the stored raw alerts of ``typology`` with ``account`` as source (scatter-gather, bipartite) or hub."""
    names = {m[0] for m in state[2] if m[2] == account and m[4] in ("source", "hub")}
    return {a[0] for a in _raw(state, typology) if a[0] in names}


@pytest.mark.parametrize("name", list(CASES))
def test_layering_scope_equals_a_full_run(tmp_path, monkeypatch, name):
    monkeypatch.setattr(detect, "DENSE_SHARE", 2.0)  # the scope is under test: never the dense fallback
    first, later, expect = CASES[name]()
    first = first + BYSTANDER + _NOISE
    before = _full(tmp_path / "b.duckdb", [first])
    got, result = _incremental(tmp_path / "i.duckdb", [first, later])
    expected = _full(tmp_path / "f.duckdb", [first, later])
    assert got == expected
    for (typology, account, _), what in expect.items():
        old, new = _alerts_of(before, typology, account), _alerts_of(expected, typology, account)
        assert {
            "new": not old and new,
            "gone": old and not new,
            "kept": old and old == new,
            "changed": old and new and old != new,
        }[what], (account, what)
    # the bystander was kept as stored: fewer scatter-gather alerts recomputed than there are after the cutoff
    assert _alerts_of(expected, "scatter_gather", "bs")
    assert result["recomputed"].get("scatter_gather", 0) < len(_raw(expected, "scatter_gather"))


def _keyed(det, keys: set) -> set:
    """(alert id, typology, sorted members with roles, sorted evidence) of the alerts a key account keys."""
    members, evidence = {}, {}
    for r in det.members.to_pylist():
        members.setdefault(r["alert_id"], []).append((r["account_id"], r["role"]))
    for r in det.evidence.to_pylist():
        evidence.setdefault(r["alert_id"], []).append(r["txn_id"])
    roles = {"scatter_gather": ("source", "sink"), "gather_scatter": ("hub",)}
    return {
        (a["alert_id"], a["typology"], tuple(sorted(members[a["alert_id"]])), tuple(sorted(evidence[a["alert_id"]])))
        for a in det.alerts.to_pylist()
        if any(acct in keys and role in roles[a["typology"]] for acct, role in members[a["alert_id"]])
    }


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("options", [{}, {"layer_tolerance": 0.05}, {"layer_tolerance": 1.5}, {"layer_max": 1e9}])
def test_scoped_paths_are_the_key_accounts_paths_of_a_full_run(tmp_path, seed, options):
    """The scope's sg_paths, built from the key accounts' payments against every payment, are exactly the paths of
    layering's own sg_paths over every payment with a key source or sink, and the layering run on the narrowed
    payments finds exactly the full run's alerts with a key source, sink or hub (random payments with hub
    buckets, random touched accounts; tolerances below, between and above the band widths)."""
    import random

    import pyarrow as pa

    from fundtrace import queries
    from fundtrace.detect.base import params_for
    from fundtrace.detect.scopes import layering_scope
    from fundtrace.detect.settings import DetectSettings
    from fundtrace.detect.sqlfamilies import detect_layering
    from test_detect_oracle import _engine_for, _layering_rows

    settings = DetectSettings(**({"layer_window_hours": 6, "layer_max": 14} | options))
    ws, engine = _engine_for(tmp_path, _layering_rows(seed), settings)
    engine.materialise("dt_all", "SELECT * FROM dt_tx")  # as an incremental run: dt_tx a view the scope replaces
    engine.execute("DROP TABLE dt_tx")
    engine.execute("CREATE TEMP VIEW dt_tx AS SELECT * FROM dt_all")
    q = queries.get("detect_layering")
    engine.run_steps(
        [s for s in q.steps if s[0] in ("ly_band", "ly_acct", "ly_hub", "sg_paths")], q.bind(params_for(q, settings))
    )
    engine.materialise("ref_paths", "SELECT * FROM sg_paths")
    for name in ("ly_band", "ly_acct", "ly_hub", "sg_paths"):
        engine.execute(f'DROP TABLE "{name}"')
    full = detect_layering(engine, settings)
    for name in ("ly_acct", "ly_hub"):
        engine.execute(f'DROP TABLE "{name}"')
    accounts = sorted(r[0] for r in ws.con.execute("SELECT DISTINCT src_id FROM dt_all").fetchall())
    touched = random.Random(seed).sample(accounts, 3)
    engine.register("dx_touched", pa.table({"account_id": pa.array(touched, pa.uint64())}))
    layering_scope(engine, settings, "keys")
    keys = {r[0] for r in ws.con.execute("SELECT account_id FROM keys").fetchall()}
    assert set(touched) <= keys < set(accounts)
    ref = "SELECT * FROM ref_paths WHERE src IN (SELECT account_id FROM keys) OR sink IN (SELECT account_id FROM keys)"
    assert ws.con.execute(f"SELECT count(*) FROM ({ref})").fetchall()[0][0] > 0
    cols = "SELECT src, mid, sink, b, t1, t2, a1, a2 FROM sg_paths"  # layering's columns (the scope adds x1, x2)
    for a, b in ((ref, cols), (cols, ref)):
        assert ws.con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchall() == [(0,)]
    scoped = detect_layering(engine, settings)
    assert not ws.con.execute("SELECT * FROM duckdb_tables() WHERE table_name = 'sg_paths'").fetchall()
    assert _keyed(scoped, keys) == _keyed(full, keys)
    assert _keyed(full, keys) or options.get("layer_tolerance") == 0.05
