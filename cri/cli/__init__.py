"""The ``pinnace`` command line: talks to pinnaced over its socket, for people and scripts."""
