"""``python -m engramdb``: the ``engramdb`` command line."""

from engramdb.cli.app import main

if __name__ == "__main__":
    main()
