-- name: case_flow
-- kind: analyst
-- description: Where one reported case's money went, payment by payment in time order, with the victim's part under a tracing rule.
-- inputs: trace_flows
-- outputs: hop, ts, txn_id, from_account, to_account, amount, victim_amount, channel, stop
-- param: case_id VARCHAR          The reported case (see the `cases` query).
-- param: rule VARCHAR = lifo      The tracing rule of victim_amount: one of poison|haircut|fifo|lifo|libr.
SELECT hop, ts, txn_id,
       CASE WHEN src_bank IS NULL THEN NULL ELSE src_bank || ':' || src_account END AS from_account,
       dst_bank || ':' || dst_account AS to_account, amount,
       CASE $rule WHEN 'poison' THEN taint_poison WHEN 'haircut' THEN taint_haircut WHEN 'fifo' THEN taint_fifo
                  WHEN 'lifo' THEN taint_lifo WHEN 'libr' THEN taint_libr END AS victim_amount,
       channel, stop
FROM trace_flows
WHERE case_id = $case_id
ORDER BY ts, hop, txn_id
