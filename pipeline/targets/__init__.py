"""The targets, one folder each (settings, payload mapping, client), named in
:mod:`pipeline.registry`; what they share is in :mod:`pipeline.targets.base`."""
