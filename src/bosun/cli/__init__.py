"""The ``bosun`` command line: parses arguments, calls the library, renders with rich.

Heavy modules are imported inside commands so that ``bosun --help`` and ``bosun plan``
start fast.
"""
