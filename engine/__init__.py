"""The run engine: coordinator loop, strategies, model client and events.

Nothing here imports Django; the service feeds it plain specs and an event
sink, and stores what it reports.
"""
