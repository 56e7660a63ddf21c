-- silver.region: typed, valid rows only, the latest landed version of each key.
COPY (
    SELECT r_regionkey, r_name, r_comment, _batch_date, _source_file
    FROM (
        SELECT as_int(r_regionkey) AS r_regionkey, r_name, r_comment, _batch_date, _source_file
        FROM landed_region
        WHERE has_key(r_regionkey) AND parses(r_regionkey, as_int(r_regionkey))
    )
    QUALIFY row_number() OVER (PARTITION BY r_regionkey ORDER BY _batch_date DESC, _source_file) = 1
) TO '${out}/silver/region.parquet' (FORMAT parquet, COMPRESSION zstd);
