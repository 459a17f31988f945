"""Scheduling: cron schedules, dataset triggers and webhook subscriptions.

* :mod:`.spec` - the ``schedule:`` and ``trigger:`` nodes of a pipeline file.
* :mod:`.cron` - tick arithmetic: time zones, DST, catch-up policies (pure functions).
* :mod:`.queue` - the metadata side: leader lease, fired ticks, the run queue,
  subscriptions and webhook deliveries.
* :mod:`.scheduler` - the ``headwater scheduler`` loop.
* :mod:`.triggers` - the workspace graph of dataset triggers, loop detection, and the
  hook that queues triggered pipelines and notifies subscribers after a run.
* :mod:`.webhooks` - signed JSON notices with retries.

This package imports nothing heavy at import time; import the submodules.
"""
