-- name: rings_score
-- kind: detect
-- description: Score each connected component of the account-identifier graph as a card-farm ring and collect its members, shared identifiers and a sample of its transactions.
-- inputs: rg_cc(node, component) from connected components over rg_edges; rg_accounts, rg_linked (rings_graph); accounts, transactions, detect_fx
-- outputs: rs_rings(ring, n_accounts, n_banks, n_holders, n_kinds, n_identifiers, first_opened, last_opened, s_link, s_kinds, s_banks, s_opened, holder_factor, score, start_ts, end_ts, amount, n_txns), rs_out_members(ring, account_id, bank, account), rs_out_shared(ring, kind, value, n_accounts, weight), rs_out_evidence(ring, txn_id)
-- param: min_ring_size INTEGER = 3  Fewest accounts a component needs to be a ring.
-- param: max_ring_size INTEGER = 200  Components with more accounts are meshes of ordinary sharing, not one farm, and are skipped.
-- param: open_window_days DOUBLE = 7  Accounts opened within this many days of each other count as opened together.
-- param: min_score DOUBLE = 0.5  Rings scoring below this are not reported.
-- param: evidence_txns INTEGER = 20  At most this many of the members' transactions (the earliest) are kept as evidence per ring.
--
-- The score (in [0, 1]) is holder_factor * (0.35 + 0.65 sharing) * (0.2 + 0.8 s_opened), where
-- sharing = 0.4 s_link + 0.3 s_kinds + 0.3 s_banks says how much the members share, and opening together
-- is a gate, not one more term: sharing alone is what families and offices do, so a ring whose accounts
-- were opened years apart keeps at most 0.2 of its score whatever it shares.
--   s_link        mean over members of 1 - exp(-2 * sum of the Fraudar weights 1/ln(d + 5) of the shared
--                 identifiers the member holds): rare identifiers, and several of them, count most;
--   s_kinds       mean over members of (distinct kinds of identifier the member shares - 1) / 2, capped at 1:
--                 one account on a shared phone card AND a shared device, not one phone or one IP;
--   s_banks       (distinct banks - 1) / 2, capped at 1: farms spread bought cards over banks;
--   s_opened      q^2, q = share of the other members opened within open_window_days after the member whose
--                 window holds the most (unknown opening dates count as not together); squared so that a
--                 chance pair in a ring of three (q = 0.5) counts 0.25 and a ring opened together counts 1;
--   holder_factor 0.5 + 0.5 * min(1, (distinct holders - 1) / 2): one person's own accounts score half, two
--                 holders three quarters, three or more in full (a farm's bought or forged ID cards may each
--                 open several accounts; unknown holders count as distinct).
-- A family sharing one phone (one kind, one bank, opened years apart) scores about 0.1; an office sharing
-- a device about 0.1; strangers sharing a home IP, a tablet and a phone at three banks, opened years apart,
-- at most 0.2 (0.4 with a chance pair opened the same week); one person's three accounts opened the same
-- week about 0.35; five cards on one phone card and one device, at three banks, opened the same week 0.85.
-- step: rs_all
SELECT cc.component AS ring, a.account_id, a.bank, a.account
FROM rg_cc AS cc
JOIN rg_accounts AS a ON a.node = cc.node
-- step: rs_sized
SELECT ring, count(*) AS n_accounts
FROM rs_all
GROUP BY ring
HAVING count(*) >= $min_ring_size AND count(*) <= $max_ring_size
-- step: rs_members
SELECT m.ring, m.account_id, m.bank, m.account, acc.holder_id, acc.opened_at
FROM rs_all AS m
JOIN rs_sized AS s ON s.ring = m.ring
LEFT JOIN accounts AS acc ON acc.account_id = m.account_id
-- step: rs_links
SELECT m.ring, l.account_id, l.kind, l.value, l.weight
FROM rg_linked AS l
JOIN rs_members AS m ON m.account_id = l.account_id
-- step: rs_shared
-- Every account of a kept identifier lies in the identifier's component, so n_accounts is its degree d.
SELECT ring, kind, value, count(*) AS n_accounts, min(weight) AS weight
FROM rs_links
GROUP BY ring, kind, value
-- step: rs_account_weight
SELECT ring, account_id, sum(weight) AS w, count(DISTINCT kind) AS n_kinds
FROM rs_links
GROUP BY ring, account_id
-- step: rs_opened
-- Within-ring pairs only; rings hold at most max_ring_size accounts.
SELECT a.ring, a.account_id, count(*) AS near
FROM rs_members AS a
JOIN rs_members AS b ON a.ring = b.ring
WHERE b.opened_at >= a.opened_at
  AND epoch(b.opened_at) - epoch(a.opened_at) <= $open_window_days * 86400
GROUP BY a.ring, a.account_id
-- step: rs_stats
SELECT s.ring, s.n_accounts,
       count(DISTINCT m.bank) AS n_banks,
       count(DISTINCT coalesce(m.holder_id, m.bank || chr(31) || m.account)) AS n_holders,
       min(m.opened_at) AS first_opened,
       max(m.opened_at) AS last_opened,
       avg(1 - exp(-2 * coalesce(w.w, 0))) AS s_link,
       avg(least(1.0, (coalesce(w.n_kinds, 1) - 1) / 2.0)) AS s_kinds,
       coalesce(max(o.near), 1) AS open_max
FROM rs_sized AS s
JOIN rs_members AS m ON m.ring = s.ring
LEFT JOIN rs_account_weight AS w ON w.ring = m.ring AND w.account_id = m.account_id
LEFT JOIN rs_opened AS o ON o.ring = m.ring AND o.account_id = m.account_id
GROUP BY s.ring, s.n_accounts
-- step: rs_kinds
SELECT ring, count(DISTINCT kind) AS n_kinds, count(*) AS n_identifiers
FROM rs_shared
GROUP BY ring
-- step: rs_signals
SELECT st.ring, st.n_accounts, st.n_banks, st.n_holders, k.n_kinds, k.n_identifiers,
       st.first_opened, st.last_opened,
       st.s_link,
       st.s_kinds,
       least(1.0, (st.n_banks - 1) / 2.0) AS s_banks,
       ((st.open_max - 1) / (st.n_accounts - 1.0)) * ((st.open_max - 1) / (st.n_accounts - 1.0)) AS s_opened,
       0.5 + 0.5 * least(1.0, (st.n_holders - 1) / 2.0) AS holder_factor
FROM rs_stats AS st
JOIN rs_kinds AS k ON k.ring = st.ring
-- step: rs_scored
SELECT *,
       holder_factor * (0.35 + 0.65 * (0.4 * s_link + 0.3 * s_kinds + 0.3 * s_banks)) * (0.2 + 0.8 * s_opened)
           AS score
FROM rs_signals
-- step: rs_out_members
SELECT m.ring, m.account_id, m.bank, m.account
FROM rs_members AS m
JOIN rs_scored AS r ON r.ring = m.ring
WHERE r.score >= $min_score
-- step: rs_txns
-- Transactions into (incoming = 1) or out of a reported ring's members (amounts in one currency, detect_fx).
SELECT m.ring, t.txn_id, t.ts, CASE WHEN fx.rate IS NULL THEN t.amount ELSE CAST(CAST(t.amount AS DOUBLE) * fx.rate AS DECIMAL(38, 4)) END AS amount, 1 AS incoming
FROM transactions AS t
JOIN rs_out_members AS m ON t.dst_id = m.account_id
LEFT JOIN detect_fx AS fx ON fx.currency = t.currency
UNION ALL
SELECT m.ring, t.txn_id, t.ts, CASE WHEN fx.rate IS NULL THEN t.amount ELSE CAST(CAST(t.amount AS DOUBLE) * fx.rate AS DECIMAL(38, 4)) END, 0 AS incoming
FROM transactions AS t
JOIN rs_out_members AS m ON t.src_id = m.account_id
LEFT JOIN detect_fx AS fx ON fx.currency = t.currency
-- step: rs_activity
SELECT ring, min(ts) AS start_ts, max(ts) AS end_ts, count(DISTINCT txn_id) AS n_txns,
       sum(CASE WHEN incoming = 1 THEN amount END) AS amount
FROM rs_txns
GROUP BY ring
-- step: rs_out_evidence
SELECT ring, txn_id
FROM (
    SELECT ring, txn_id, row_number() OVER (PARTITION BY ring ORDER BY ts, txn_id) AS rn
    FROM (SELECT DISTINCT ring, txn_id, ts FROM rs_txns) AS d
) AS ranked
WHERE rn <= $evidence_txns
-- step: rs_out_shared
SELECT s.ring, s.kind, s.value, s.n_accounts, s.weight
FROM rs_shared AS s
JOIN rs_scored AS r ON r.ring = s.ring
WHERE r.score >= $min_score
-- step: rs_rings
SELECT r.*, a.start_ts, a.end_ts, coalesce(a.amount, 0) AS amount, coalesce(a.n_txns, 0) AS n_txns
FROM rs_scored AS r
LEFT JOIN rs_activity AS a ON a.ring = r.ring
WHERE r.score >= $min_score
