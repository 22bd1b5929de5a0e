"""`python -m evokd.cli`: the `evokd` command."""

from evokd.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
