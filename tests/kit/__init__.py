"""The test kit: what many test modules build, run and check, in one place.

- :mod:`tests.kit.records`: customers, MAN records, pages;
- :mod:`tests.kit.passes`: a whole pass against the emulators of a test;
- :mod:`tests.kit.oracles`: what the stores must hold after a pass, written apart from the
  pipeline's mapping;
- :mod:`tests.kit.feeds`: feed files for the pipeline run as a process;
- :mod:`tests.kit.servers`: small hostile or scripted servers;
- :mod:`tests.kit.clock`: a fake clock for rate limits, backoff and timeouts.

Test modules import from here (and from ``conftest``), never from each other.
"""
