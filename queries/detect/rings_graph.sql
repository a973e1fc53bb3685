-- name: rings_graph
-- kind: detect
-- description: The bipartite graph of accounts and the identifiers they share (phone card, bank card, device, ID card, IP), hubs removed, as an integer edge table for connected components.
-- inputs: links, accounts
-- outputs: rg_pairs(account_id, bank, account, kind, value), rg_idents(kind, value, n_accounts, weight, ident_no), rg_accounts(account_id, bank, account, node), rg_edges(a, b)
-- param: kinds VARCHAR = phone_card,bank_card,device,id_card,ip  Comma-separated link kinds that count as shared identifiers.
-- param: use_account_phone BOOLEAN = true  Treat accounts.phone (the registered number) as a phone_card identifier.
-- param: use_holder_id BOOLEAN = false  Treat accounts.holder_id as an identifier (links one holder's own accounts).
-- param: max_accounts_per_identifier INTEGER = 20  An identifier used by more accounts than this is a hub (public IP, office device) and ignored.
--
-- Accounts are linked THROUGH identifier nodes: an identifier used by d accounts adds d edges, not
-- d*(d-1)/2 (never a self-join on shared identifiers). Identifiers used by a single account cannot
-- link anything and are dropped; so are hubs. Node ids are dense: accounts 1..A in account_id order,
-- identifiers A+1.. in (kind, value) order, so a component's label is its smallest account.
-- Weight is Fraudar's column weight 1/ln(d + 5): rare identifiers count more than common ones.
-- step: rg_pairs
SELECT DISTINCT account_id, bank, account, kind, value
FROM (
    SELECT account_id, bank, account, kind, value
    FROM links
    WHERE position(',' || kind || ',' IN ',' || replace($kinds, ' ', '') || ',') > 0
    UNION ALL
    SELECT account_id, bank, account, 'phone_card' AS kind, phone AS value
    FROM accounts
    WHERE $use_account_phone AND phone IS NOT NULL AND trim(phone) <> ''
    UNION ALL
    SELECT account_id, bank, account, 'holder_id' AS kind, holder_id AS value
    FROM accounts
    WHERE $use_holder_id AND holder_id IS NOT NULL AND trim(holder_id) <> ''
) AS p
-- step: rg_degree
-- Every identifier used by two or more accounts, hubs included (rings_score reports how many hubs were ignored).
SELECT kind, value, count(*) AS n_accounts
FROM rg_pairs
GROUP BY kind, value
HAVING count(*) >= 2
-- step: rg_idents
SELECT kind, value, n_accounts, 1.0 / ln(n_accounts + 5) AS weight,
       row_number() OVER (ORDER BY kind, value) AS ident_no
FROM rg_degree
WHERE n_accounts <= $max_accounts_per_identifier
-- step: rg_linked
SELECT p.account_id, p.bank, p.account, i.kind, i.value, i.weight, i.ident_no
FROM rg_pairs AS p
JOIN rg_idents AS i ON p.kind = i.kind AND p.value = i.value
-- step: rg_accounts
SELECT account_id, min(bank) AS bank, min(account) AS account,
       row_number() OVER (ORDER BY account_id) AS node
FROM rg_linked
GROUP BY account_id
-- step: rg_edges
SELECT a.node AS a, n.n_accounts + l.ident_no AS b
FROM rg_linked AS l
JOIN rg_accounts AS a ON a.account_id = l.account_id
CROSS JOIN (SELECT count(*) AS n_accounts FROM rg_accounts) AS n
