"""The runtime support schedule: schedule.yaml's decisions, the lock of what machines fetched, and the runtimes they join into."""
