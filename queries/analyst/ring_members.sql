-- name: ring_members
-- kind: analyst
-- description: The accounts of one card-farm ring alert with the identifiers (phone cards, devices ...) they share with other members.
-- inputs: alerts, alert_members, accounts, links, account_scores
-- outputs: bank, account, role, holder_name, phone, opened_at, shared_identifiers, score, band
-- param: ring_id VARCHAR   The ring's alert id (typology card_farm_ring; see `fundtrace show account`).
WITH m AS (
    SELECT m.* FROM alert_members m JOIN alerts a USING (alert_id)
    WHERE a.alert_id = $ring_id AND a.typology = 'card_farm_ring'
), shared AS (
    SELECT l.account_id, string_agg(DISTINCT l.kind || ':' || l.value, '; ' ORDER BY l.kind || ':' || l.value) AS ids
    FROM links l JOIN m USING (account_id)
    WHERE (l.kind, l.value) IN (
        SELECT (l2.kind, l2.value) FROM links l2 JOIN m m2 USING (account_id)
        GROUP BY l2.kind, l2.value HAVING count(DISTINCT l2.account_id) > 1
    )
    GROUP BY l.account_id
)
SELECT m.bank, m.account, m.role, a.holder_name, a.phone, a.opened_at, shared.ids AS shared_identifiers,
       s.score, s.band
FROM m
LEFT JOIN accounts a ON a.bank = m.bank AND a.account = m.account
LEFT JOIN shared ON shared.account_id = m.account_id
LEFT JOIN account_scores s ON s.account_id = m.account_id
ORDER BY m.bank, m.account
