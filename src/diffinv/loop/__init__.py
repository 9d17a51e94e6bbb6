"""The optimisation loop shared by everything that trains: the built-in model's stages and the probe
(:mod:`diffinv.train`) and the personalization methods (:mod:`diffinv.personalization`): configs ↔ JSON, learning
rates, seeds of batches, EMA, checkpoints (:mod:`~diffinv.loop.common`) and the stage loop with resume, SIGTERM and
time budget (:mod:`~diffinv.loop.stage`)."""
