-- name: detect_bipartite_blocks
-- kind: detect
-- description: The candidate edges of bipartite layers in components that can be dense blocks: layer_min payers or more, two payees or more, and edges for at least min_density of the payer-payee pairs. detect_bipartite judges these (and only these: in a mesh of busy accounts one component of a window can hold most of a million candidate edges, all of which Python read before).
-- inputs: bp_edges, bp_node (detect_bipartite_candidates), bp_comp(node, component): the connected components of bp_graph
-- outputs: bp_block: bp_edges' columns and the component
-- param: layer_min DOUBLE = 3  Fewest payers paying the same payees.
-- param: min_density DOUBLE = 0.8  Smallest share of the payer-payee pairs of a component that must be paid.
-- step: bp_block
-- The density test again in Python decides (1e-9 of slack: this only leaves out what it would reject).
WITH e AS (
  SELECT e.*, c.component FROM bp_edges e
  JOIN bp_node s ON s.wb = e.wb AND s.side = 0 AND s.acct = e.src
  JOIN bp_comp c ON c.node = s.node
),
dense AS (
  SELECT component FROM e GROUP BY component
  HAVING count(DISTINCT src) >= $layer_min AND count(DISTINCT dst) >= 2
     AND count(*) >= ($min_density - 1e-9) * count(DISTINCT src) * count(DISTINCT dst)
)
SELECT * FROM e WHERE component IN (SELECT component FROM dense)
