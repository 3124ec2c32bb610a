"""``python -m runtrack``: the same as the ``runtrack`` command."""

from runtrack.cli import main

if __name__ == "__main__":
    main()
