-- gold.daily_revenue: revenue, orders and customers per order date, market segment and nation.
-- The customer's current segment and nation (the lakehouse takes the SCD2 version as of the order
-- date: groups of customers who changed segment differ).
COPY (
    SELECT
        s.o_orderdate,
        c.c_mktsegment,
        n.n_name AS c_nation,
        CAST(sum(s.revenue) AS DECIMAL(18, 4)) AS revenue,
        count(DISTINCT s.l_orderkey) AS orders,
        count(DISTINCT s.o_custkey) AS customers,
        min(s._batch_date) AS _batch_date
    FROM read_parquet('${out}/gold/fct_sales.parquet') AS s
    LEFT JOIN read_parquet('${out}/silver/customer.parquet') AS c ON c.c_custkey = s.o_custkey
    LEFT JOIN read_parquet('${out}/silver/nation.parquet') AS n ON n.n_nationkey = c.c_nationkey
    GROUP BY s.o_orderdate, c.c_mktsegment, n.n_name
    ORDER BY s.o_orderdate, c.c_mktsegment, n.n_name
) TO '${out}/gold/daily_revenue.parquet' (FORMAT parquet, COMPRESSION zstd);
