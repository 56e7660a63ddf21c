"""Lakehouse core: catalog, table specs, landing zone, transforms, audited writes. No Prefect, no Soda."""
