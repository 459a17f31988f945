"""What the client-server SQL connectors (``postgres``, ``mariadb``) share.

Only the logic that is the same for both lives here: SQLAlchemy-style URL parsing and
redaction, the checks of a merge's keys and options against the data's schema, and the
wording of driver errors. What depends on the server stays in each connector.
"""
