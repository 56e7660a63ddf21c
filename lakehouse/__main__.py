"""``python -m lakehouse``: the lakehouse command line (see :mod:`lakehouse.cli`)."""

from lakehouse.cli import main

if __name__ == "__main__":
    main()
