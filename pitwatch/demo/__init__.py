"""The demo trading platform: the stand-in for the real one, on one machine.

- ``platform.init(dir)``   a self-contained folder: config, seeded WAL database,
                           good and bad releases, TLS cert, auth log, secrets
- ``app.create_app(cfg)``  the Flask app; ``app.serve(cfg)`` runs it under gunicorn
- ``lifecycle``            stop / start / restart / graceful reload of the app by its pid file
- ``traffic.Traffic``      a realistic request mix that outlives app outages
- ``stack.run(dir)``       everything as child processes (``pitwatch demo DIR``)
"""
