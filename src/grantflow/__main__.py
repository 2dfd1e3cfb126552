"""``python -m grantflow``: the ``grantflow`` command."""

from grantflow.cli import main

if __name__ == "__main__":
    main()
