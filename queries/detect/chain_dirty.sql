-- name: detect_chain_dirty
-- kind: detect
-- description: For an incremental chain run: the roots whose chain alert can differ from the stored one. A chain is the walk from its root over the hops; it changes only when the walk reaches a hop that was added or removed (within max_hops), or when its root gains or loses a hop feeding it. Walking backwards from the changed hops over the old and the new hops finds exactly those roots.
-- inputs: ch_hops (new hops of the accounts new payments touched), ch_old (the stored hops they replace), ch_all (the hops after the change)
-- outputs: ch_changed(in_txn, out_txn): hops added or removed; ch_up(txn_id): payments from which a changed hop is reachable within max_hops, and the changed hops' own payments (every stored chain keyed by one of them is replaced); ch_roots(root_txn): those that are roots now.
-- param: max_hops INTEGER = 6  Longest path walked, in payments after the root.
-- step: ch_changed
(SELECT in_txn, out_txn FROM ch_hops EXCEPT SELECT in_txn, out_txn FROM ch_old)
UNION ALL
(SELECT in_txn, out_txn FROM ch_old EXCEPT SELECT in_txn, out_txn FROM ch_hops)
-- step: ch_up
-- A root reaches a changed hop's first payment at depth < max_hops over hops that exist before or after the
-- change, so at most max_hops - 1 steps back from it; a changed hop's second payment may become or stop being a root.
WITH RECURSIVE up(txn_id, depth) AS (
  SELECT txn_id, 0 FROM (SELECT in_txn AS txn_id FROM ch_changed UNION SELECT out_txn FROM ch_changed)
  UNION
  SELECT h.in_txn, u.depth + 1
  FROM up u JOIN (SELECT in_txn, out_txn FROM ch_all UNION ALL SELECT in_txn, out_txn FROM ch_old) h
    ON h.out_txn = u.txn_id
  WHERE u.depth < $max_hops
)
SELECT DISTINCT txn_id FROM up
-- step: ch_roots
SELECT DISTINCT in_txn AS root_txn FROM ch_all
WHERE in_txn IN (SELECT txn_id FROM ch_up) AND in_txn NOT IN (SELECT out_txn FROM ch_all)
