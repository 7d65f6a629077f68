"""The management frontend: the original's ``/admin/*`` REST API on :1338, over Redis.

:mod:`.app` holds the Tornado application and process entry point; :mod:`.ops` validates and carries out each
operation; :mod:`.schema` checks request bodies.
"""
