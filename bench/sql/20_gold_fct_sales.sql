-- gold.fct_sales: lineitem grain with its order's date and customer;
-- revenue = extendedprice × (1 − discount).
COPY (
    SELECT
        l.l_orderkey,
        l.l_linenumber,
        o.o_orderdate,
        o.o_custkey,
        l.l_partkey,
        l.l_suppkey,
        l.l_quantity,
        l.l_extendedprice,
        l.l_discount,
        l.l_tax,
        CAST(l.l_extendedprice * (1 - l.l_discount) AS DECIMAL(18, 4)) AS revenue,
        l.l_returnflag,
        l.l_linestatus,
        l.l_shipdate,
        l._batch_date
    FROM read_parquet('${out}/silver/lineitem.parquet') AS l
    JOIN read_parquet('${out}/silver/orders.parquet') AS o ON o.o_orderkey = l.l_orderkey
) TO '${out}/gold/fct_sales.parquet' (FORMAT parquet, COMPRESSION zstd);
