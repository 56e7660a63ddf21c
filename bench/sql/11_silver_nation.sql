-- silver.nation: typed, valid rows whose region exists, the latest landed version of each key.
COPY (
    SELECT *
    FROM (
        SELECT
            as_int(n_nationkey) AS n_nationkey,
            n_name,
            as_int(n_regionkey) AS n_regionkey,
            n_comment,
            _batch_date,
            _source_file
        FROM landed_nation
        WHERE has_key(n_nationkey)
            AND parses(n_nationkey, as_int(n_nationkey))
            AND parses(n_regionkey, as_int(n_regionkey))
    )
    WHERE n_regionkey IN (SELECT r_regionkey FROM read_parquet('${out}/silver/region.parquet'))
    QUALIFY row_number() OVER (PARTITION BY n_nationkey ORDER BY _batch_date DESC, _source_file) = 1
) TO '${out}/silver/nation.parquet' (FORMAT parquet, COMPRESSION zstd);
