"""How the papers' released checkpoints map onto msdet models: the rules
the scripts in ``tools/model_converters/`` run through
``msdet.models.converters.Converter`` (one module per release)."""
