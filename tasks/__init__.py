"""Steps of one window: extract, profile, evaluate, persist, show.

Each step is a plain function (testable without Prefect) and a Prefect task wrapping it
(``*_task``); only the I/O steps retry, and only on transient database errors.
"""
